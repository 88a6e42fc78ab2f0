"""superbias equals jwst 3.0.0's SuperBiasStep, and is lazy.

The simulated SUPERBIAS files have NaN pixels flagged UNRELIABLE_BIAS, so the NaN -> 0
rule and the DQ propagation are exercised; sim_nircam_bright2 has a ZEROFRAME (with
zeros where saturation zeroed it).
"""

import numpy as np
import pytest
from lazycheck import no_compute
from stepcheck import assert_ramp_matches, run_detflow_step, step_input

from detflow.io.exposure import open_exposure
from detflow.pipeline.builder import apply_step

pytestmark = pytest.mark.jwst

SIMS = ["sim_nircam_sub640", "sim_nircam_tso", "sim_nircam_bright2"]


@pytest.mark.parametrize("which", SIMS)
def test_superbias_matches_jwst(which, jwst_steps):
    sim, products = jwst_steps(which)
    ours = run_detflow_step("superbias", step_input(products, "superbias"), sim)
    # bit-identical: one float32 subtraction per value, as in jwst
    assert_ramp_matches(ours, products["superbias"], max_ulp=0)
    assert ours["data"].dtype == np.float32
    assert ours.attrs["cal_step"]["superbias"] == "COMPLETE"
    if which == "sim_nircam_bright2":
        from stdatamodels.jwst import datamodels as dm

        with dm.RampModel(str(products["superbias"])) as theirs:
            np.testing.assert_array_equal(ours["zeroframe"].values, theirs.zeroframe)


def test_superbias_na_is_skipped(sim_nircam_sub640):
    ds = open_exposure(sim_nircam_sub640.uncal)
    out = apply_step("superbias", ds, {"override_superbias": "N/A"})
    assert out.attrs["cal_step"]["superbias"] == "SKIPPED"
    np.testing.assert_array_equal(out["data"].values, ds["data"].values)


def test_superbias_is_lazy_and_chunk_independent(sim_nircam_bright2):
    overrides = {"override_superbias": str(sim_nircam_bright2.refs["SUPERBIAS"])}

    with no_compute():
        lazy = apply_step("superbias", open_exposure(sim_nircam_bright2.uncal), overrides)
    a = lazy.compute()
    b = apply_step("superbias", open_exposure(sim_nircam_bright2.uncal,
                                              chunks={"y": 100, "x": 77}), overrides).compute()
    for name in ("pixeldq", "groupdq", "data", "zeroframe"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
