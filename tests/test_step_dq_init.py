"""dq_init equals jwst 3.0.0's DQInitStep, and is lazy."""

import numpy as np
import pytest
from lazycheck import no_compute
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
    overrides = {"override_mask": str(sim_nircam_sub640.refs["MASK"])}
    with no_compute():
        ds = open_exposure(sim_nircam_sub640.uncal)
        lazy = apply_step("dq_init", ds, overrides)
    a = lazy.compute()
    b = apply_step("dq_init", open_exposure(sim_nircam_sub640.uncal,
                                            chunks={"y": 100, "x": 77}), overrides).compute()
    for name in ("pixeldq", "groupdq", "data"):
        np.testing.assert_array_equal(a[name].values, b[name].values)


def test_user_supplied_dq_file_matches_jwst(sim_nircam_sub640, tmp_path):
    """``user_supplied_dq`` names a FITS file: jwst ORs its first image into the MASK."""
    from astropy.io import fits
    from jwst.dq_init import DQInitStep
    from jwst_oracle import crds_environment, offline_crds

    from detflow.errors import InputFileError, ParameterError

    sim = sim_nircam_sub640
    ds = open_exposure(sim.uncal, chunks={"y": 100, "x": 77})
    rng = np.random.default_rng(3)
    user = np.where(rng.random((ds.sizes["y"], ds.sizes["x"])) < 0.01, 1 | 2**10, 0)
    user_file = tmp_path / "user_dq.fits"
    fits.PrimaryHDU(user.astype(np.int32)).writeto(user_file)
    mask = str(sim.refs["MASK"])
    with crds_environment(offline_crds(tmp_path / "crds")):
        theirs = DQInitStep.call(str(sim.uncal), override_mask=mask,
                                 user_supplied_dq=str(user_file))
    ours = apply_step("dq_init", ds, {"override_mask": mask,
                                       "user_supplied_dq": str(user_file)}).compute()
    try:
        mask_only = apply_step("dq_init", ds, {"override_mask": mask}).compute()
        assert not np.array_equal(ours["pixeldq"].values, mask_only["pixeldq"].values)
        np.testing.assert_array_equal(ours["pixeldq"].values, theirs.pixeldq)
        np.testing.assert_array_equal(ours["groupdq"].values, theirs.groupdq)
    finally:
        theirs.close()
    fits.PrimaryHDU(user[:-1].astype(np.int32)).writeto(tmp_path / "small.fits")
    with pytest.raises(ParameterError, match="small.fits"):
        apply_step("dq_init", ds, {"override_mask": mask,
                                   "user_supplied_dq": str(tmp_path / "small.fits")})
    with pytest.raises(InputFileError, match="missing.fits"):
        apply_step("dq_init", ds, {"override_mask": mask,
                                   "user_supplied_dq": str(tmp_path / "missing.fits")})
