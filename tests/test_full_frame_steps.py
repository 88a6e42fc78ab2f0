"""Every near-IR step on a full frame (NIRCam 2048 x 2048, RAPID, 10 groups x 1
integration: the README's demo exposure) equals jwst 3.0.0's step, fed jwst's input of
that step, on detflow's default (amplifier-aligned) tiles: DQ identical and data equal to
the bit; then ramp fitting gives jwst's rate and rateints to the bit.

The smaller exposures of the per-step tests cover the regimes; this one checks the same
code on the full detector (four outputs, reference pixels on every side, tiles joined by
halos) as users run it.
"""

import numpy as np
import pytest
from stepcheck import (
    NIR_ORDER,
    assert_float_equal,
    assert_ramp_matches,
    run_detflow_step,
    step_input,
)

from detflow.io.exposure import open_exposure
from detflow.pipeline.builder import apply_step

pytestmark = pytest.mark.jwst


@pytest.fixture(scope="module")
def full_frame(jwst_steps):
    return jwst_steps("sim_nircam_full")


@pytest.mark.parametrize("step", [s for s in NIR_ORDER if s not in (
    "charge_migration", "persistence")])  # default-skipped: jwst saves no product for them
def test_full_frame_step_equals_jwst(step, full_frame):
    sim, products = full_frame
    assert step in products, f"jwst saved no {step} product"
    ours = run_detflow_step(step, step_input(products, step), sim)
    assert_ramp_matches(ours, products[step], max_ulp=0)


def test_full_frame_ramp_fit_equals_jwst(full_frame):
    from stdatamodels.jwst import datamodels as dm

    sim, products = full_frame
    refs = {f"override_{k}": str(sim.refs[k.upper()]) for k in ("gain", "readnoise")}
    ours = apply_step("ramp_fit", open_exposure(products["ramp"]), refs)
    rate, rateints = (ours[k].compute() for k in ("rate", "rateints"))
    for got, kind in ((rate, "rate"), (rateints, "rateints")):
        with dm.open(str(products[kind])) as theirs:
            np.testing.assert_array_equal(got["dq"].values, theirs.dq, err_msg=kind)
            for var, attr in (("data", "data"), ("err", "err"), ("var_poisson", "var_poisson"),
                              ("var_rnoise", "var_rnoise")):
                assert_float_equal(got[var].values, getattr(theirs, attr), max_ulp=0,
                                   what=f"{kind} {var}")
