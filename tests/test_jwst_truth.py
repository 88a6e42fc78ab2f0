"""The official jwst 3.0.0 Detector1Pipeline, run offline on detflow's simulated exposures
with detflow's reference files, recovers the simulator's truth.

This proves the simulated data and reference files are realistic and mutually
consistent; it is the basis of every fidelity test of detflow's own steps.
"""

import pytest
from jwst_oracle import run_detector1, truth_agreement
from stdatamodels.jwst import datamodels as dm

pytestmark = [pytest.mark.jwst, pytest.mark.slow]

EXPECTED_STEPS = {
    "NIRCAM": ("dq_init", "saturation", "ipc", "superbias", "refpix", "linearity", "dark_sub",
               "jump", "ramp_fit"),
    "MIRI": ("dq_init", "saturation", "lastframe", "reset", "linearity", "rscd", "dark_sub",
             "refpix", "jump", "ramp_fit"),
}


@pytest.mark.parametrize(
    "which", ["sim_nircam_full", "sim_nircam_sub640", "sim_nircam_tso", "sim_miri"]
)
def test_jwst_recovers_truth(which, request, tmp_path, crds_offline):
    sim = request.getfixturevalue(which)
    rate = run_detector1(sim.uncal, sim.refs, tmp_path, crds_offline["CRDS_PATH"],
                         save_calibrated_ramp=True)
    instrument = rate.meta.instrument.name
    for step in EXPECTED_STEPS[instrument]:
        # every step really ran with our reference files (none skipped for want of one)
        assert getattr(rate.meta.cal_step, step) == "COMPLETE", step
    median, scatter, npix = truth_agreement(rate, sim.truth)
    print(f"{which}: median {median:+.4f}  robust scatter {scatter:.4f}  over {npix} pixels")
    assert npix > 0.9 * rate.data.size
    assert abs(median) <= 0.1
    assert 0.8 <= scatter <= 1.3
    # the products are where jwst puts them and readable
    root = sim.uncal.name.replace("_uncal.fits", "")
    assert isinstance(dm.open(tmp_path / f"{root}_rateints.fits"), dm.CubeModel)


def test_detflow_reads_and_rewrites_jwst_products(sim_nircam_sub640, tmp_path, crds_offline):
    """detflow's reader opens jwst's own intermediate ramp, and detflow's writers reproduce
    jwst's rate and rateints products (same arrays, same cal_step, same keywords)."""
    import numpy as np

    from detflow.io.exposure import open_exposure
    from detflow.io.products import open_product, write_rate, write_rateints

    sim = sim_nircam_sub640
    run_detector1(sim.uncal, sim.refs, tmp_path, crds_offline["CRDS_PATH"],
                  save_calibrated_ramp=True)
    root = sim.uncal.name.replace("_uncal.fits", "")

    ramp_path = tmp_path / f"{root}_ramp.fits"
    ds = open_exposure(ramp_path)
    with dm.RampModel(str(ramp_path)) as ramp:
        assert ds["data"].dtype == np.float32
        np.testing.assert_array_equal(ds["data"].values, ramp.data)
        np.testing.assert_array_equal(ds["groupdq"].values, ramp.groupdq)
        np.testing.assert_array_equal(ds["pixeldq"].values, ramp.pixeldq)
        assert ds.attrs["cal_step"]["jump"] == "COMPLETE"
        assert ds.attrs["cal_step"]["dark_sub"] == "COMPLETE"

    out = tmp_path / "rewritten"
    out.mkdir()
    for suffix, writer, names in (
        ("rate", write_rate, ("data", "err", "dq", "var_poisson", "var_rnoise")),
        ("rateints", write_rateints, ("data", "err", "dq", "var_poisson", "var_rnoise")),
    ):
        original = tmp_path / f"{root}_{suffix}.fits"
        product = open_product(original)
        written = writer(product, out / original.name)
        with dm.open(str(original)) as a, dm.open(str(written)) as b:
            assert type(a) is type(b)
            for name in names:
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
            assert a.meta.cal_step.instance == b.meta.cal_step.instance
            for attr in ("instrument.detector", "exposure.readpatt", "subarray.name",
                         "exposure.group_time", "exposure.ngroups"):
                head, tail = attr.split(".")
                assert getattr(getattr(a.meta, head), tail) == getattr(getattr(b.meta, head), tail)
