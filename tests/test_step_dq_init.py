"""dq_init equals jwst 3.0.0's DQInitStep, and is lazy."""

import dask
import numpy as np
import pytest
from stepcheck import assert_ramp_matches, run_detflow_step, step_input

from detflow.io.exposure import open_exposure
from detflow.pipeline.builder import apply_step

pytestmark = pytest.mark.jwst


@pytest.mark.parametrize("which", ["sim_nircam_sub640", "sim_nircam_tso", "sim_nircam_bright2"])
def test_dq_init_matches_jwst(which, jwst_steps):
    sim, products = jwst_steps(which)
    ours = run_detflow_step("dq_init", step_input(products, "dq_init"), sim)
    assert_ramp_matches(ours, products["dq_init"], max_ulp=0)
    assert ours.attrs["cal_step"]["dq_init"] == "COMPLETE"


def test_dq_init_is_lazy_and_chunk_independent(sim_nircam_sub640):
    def raise_on_compute(*args, **kwargs):
        raise AssertionError("computed while building the graph")

    overrides = {"override_mask": str(sim_nircam_sub640.refs["MASK"])}
    with dask.config.set(scheduler=raise_on_compute):
        ds = open_exposure(sim_nircam_sub640.uncal)
        lazy = apply_step("dq_init", ds, overrides)
    a = lazy.compute()
    b = apply_step("dq_init", open_exposure(sim_nircam_sub640.uncal,
                                            chunks={"y": 100, "x": 77}), overrides).compute()
    for name in ("pixeldq", "groupdq", "data"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
