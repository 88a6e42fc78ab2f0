"""End to end against jwst 3.0.0 on the reference-file variants real CRDS files show.

Each case simulates a small NIRCam exposure whose references carry one variant of what
CRDS files carry (see :func:`detflow.simulator._write_references` for the table of
keywords and extensions a detector1 step reads): the average dark current as the DARK's
``AVDRKCUR`` keyword, as a 2-D ``AVDRKCUR`` extension, both, neither, or the step's
``average_dark_current`` parameter; full-frame or subarray-shaped references; ``DQ_DEF``
tables with the standard bit values, with compressed bit planes, or none. jwst's
Detector1Pipeline runs once per case; detflow's rate and rateints must equal its
products to the bit (SCI, ERR, VAR_POISSON, VAR_RNOISE and DQ).
"""

import numpy as np
import pytest
from jwst_oracle import assert_products_identical, run_detector1, step_overrides
from stdatamodels.jwst import datamodels as dm

from detflow import Detector1Pipeline

pytestmark = pytest.mark.jwst

#: case -> (simulate() variants, extra parameters of the dark_current step)
CASES = {
    # SUB160P: a subarray away from the origin (references cut at SUBSTRT 1889, its
    # reference pixels on the top and right)
    "avdrkcur_scalar": (dict(avdrkcur="scalar", ref_shape="full", dq_def="standard",
                             subarray="SUB160P"), {}),
    "avdrkcur_map": (dict(avdrkcur="map", ref_shape="subarray", dq_def="compressed"), {}),
    # with GAINFACT on the GAIN file: ramp_fit copies it, gain_scale runs
    "avdrkcur_both": (dict(avdrkcur="both", ref_shape="full", dq_def="none",
                           gain_factor=1.75), {}),
    "avdrkcur_none": (dict(avdrkcur="none", ref_shape="subarray", dq_def="standard",
                           subarray="SUB160P"), {}),
    "avdrkcur_parameter": (dict(avdrkcur="both", ref_shape="full", dq_def="compressed"),
                           {"average_dark_current": 0.25}),
}


@pytest.fixture(scope="module")
def variant_runs(module_tmp, crds_offline):
    """case -> (sim, {"rate": path, "rateints": path}) of jwst's products; each case is
    simulated and run through jwst once per module."""
    from detflow.simulator import simulate

    cache = {}

    def _get(case):
        if case not in cache:
            variants, dark_params = CASES[case]
            folder = module_tmp(case)
            sim = simulate("nircam", folder / "sim", ngroups=5, nints=2, seed=11,
                           **{"subarray": "SUB160", **variants})
            steps = {"dark_current": dict(dark_params)} if dark_params else None
            run_detector1(sim.uncal, sim.refs, folder / "jwst", crds_offline["CRDS_PATH"],
                          steps=steps)
            root = sim.uncal.name.replace("_uncal.fits", "")
            cache[case] = (sim, {k: folder / "jwst" / f"{root}_{k}.fits"
                                 for k in ("rate", "rateints")})
        return cache[case]

    return _get


@pytest.mark.parametrize("case", sorted(CASES))
def test_rate_and_rateints_equal_jwst_for_each_reference_variant(case, variant_runs, tmp_path):
    sim, theirs = variant_runs(case)
    steps = step_overrides(sim.refs)
    steps["dark_current"].update(CASES[case][1])
    Detector1Pipeline.call(str(sim.uncal), steps=steps, output_dir=str(tmp_path),
                           save_results=True)
    root = sim.uncal.name.replace("_uncal.fits", "")
    for kind in ("rate", "rateints"):
        assert_products_identical(tmp_path / f"{root}_{kind}.fits", theirs[kind])


def test_the_variants_reach_the_files(variant_runs):
    """The simulator writes what each case says (else the comparisons above prove
    nothing about it)."""
    from astropy.io import fits

    sim, _ = variant_runs("avdrkcur_map")
    with fits.open(sim.refs["DARK"]) as dark, fits.open(sim.refs["MASK"]) as mask:
        assert "AVDRKCUR" in dark and "AVDRKCUR" not in dark[0].header
        assert mask["DQ"].shape == (160, 160)
        values = mask["DQ_DEF"].data["VALUE"]
        np.testing.assert_array_equal(values, 1 << np.arange(len(values)))  # compressed
    sim, _ = variant_runs("avdrkcur_scalar")
    with fits.open(sim.refs["DARK"]) as dark, fits.open(sim.refs["MASK"]) as mask:
        assert "AVDRKCUR" not in dark and dark[0].header["AVDRKCUR"] > 0
        assert mask["DQ"].shape == (2048, 2048)
        assert dark[0].header["SUBSTRT1"] == dark[0].header["SUBSTRT2"] == 1889
    region = (slice(1888, 2048), slice(1888, 2048))  # SUB160P in the full-frame files
    for reftype, ext in (("SATURATION", "SCI"), ("SUPERBIAS", "SCI"), ("GAIN", "SCI"),
                         ("LINEARITY", "COEFFS")):  # NaNs reach every case's region
        assert np.isnan(fits.getdata(sim.refs[reftype], ext)[..., region[0], region[1]]
                        ).any(), reftype
    assert "GAINFACT" not in fits.getheader(sim.refs["GAIN"])
    sim, theirs = variant_runs("avdrkcur_both")
    assert fits.getheader(sim.refs["GAIN"])["GAINFACT"] == 1.75
    with dm.open(str(theirs["rate"])) as rate:  # jwst scaled the rates
        assert rate.meta.cal_step.gain_scale == "COMPLETE"
        assert rate.meta.exposure.gain_factor == 1.75
