"""group_scale equals jwst 3.0.0's GroupScaleStep, and is lazy."""

import numpy as np
import pytest
from astropy.io import fits
from lazycheck import no_compute
from stepcheck import assert_ramp_matches, run_detflow_step

from detflow.io.exposure import open_exposure
from detflow.pipeline.builder import apply_step

pytestmark = pytest.mark.jwst


@pytest.mark.parametrize("which", ["sim_nircam_sub640", "sim_nircam_tso", "sim_nircam_bright2"])
def test_group_scale_matches_jwst(which, jwst_steps):
    """The simulated exposures have FRMDIVSR == NFRAMES: jwst skips, and so do we (the
    data only become float32)."""
    sim, products = jwst_steps(which)
    ours = run_detflow_step("group_scale", products["uncal"], sim)
    assert ours["data"].dtype == np.float32
    assert ours.attrs["cal_step"]["group_scale"] == "SKIPPED"
    if "group_scale" in products:
        assert_ramp_matches(ours, products["group_scale"], max_ulp=0)
    from stdatamodels.jwst import datamodels as dm

    with dm.RampModel(str(products["dq_init"])) as theirs:
        assert theirs.meta.cal_step.group_scale == "SKIPPED"


def _edit(src, dst, **cards):
    """Copy ``src`` to ``dst`` with primary keywords set (value) or removed (None).

    The file is rewritten through stdatamodels so that its ASDF metadata agrees with the
    FITS header (stdatamodels fills a removed keyword back from the ASDF tree).
    """
    from stdatamodels.jwst import datamodels as dm

    names = {"NFRAMES": "nframes", "FRMDIVSR": "frame_divisor", "GROUPGAP": "groupgap"}
    with dm.open(str(src)) as model:
        for key, value in cards.items():
            if value is None:
                delattr(model.meta.exposure, names[key])
            else:
                setattr(model.meta.exposure, names[key], value)
        model.save(str(dst))
    with fits.open(dst) as hdul:
        for key, value in cards.items():
            assert hdul[0].header.get(key) == value, (key, value)
    return dst


@pytest.mark.parametrize(
    "cards, status",
    [
        ({"NFRAMES": 5, "FRMDIVSR": 4}, "COMPLETE"),  # NIRSpec-like: scale 0.8 (inexact)
        ({"NFRAMES": 3, "FRMDIVSR": 4}, "COMPLETE"),  # scale 4/3
        ({"NFRAMES": 2, "FRMDIVSR": 2}, "SKIPPED"),
        ({"NFRAMES": 4, "FRMDIVSR": None}, "SKIPPED"),  # power of 2, no divisor
        ({"NFRAMES": 3, "FRMDIVSR": None}, "SKIPPED"),  # do_correction skips too
        ({"NFRAMES": None, "FRMDIVSR": 4}, "SKIPPED"),
    ],
)
def test_group_scale_paths_match_jwst(cards, status, sim_nircam_bright2, tmp_path):
    from jwst.group_scale import GroupScaleStep
    from jwst_oracle import crds_environment, offline_crds

    path = _edit(sim_nircam_bright2.uncal, tmp_path / "jw01234001001_01101_00001_nrca1_uncal.fits",
                 **cards)
    with crds_environment(offline_crds(tmp_path / "crds")):
        theirs = GroupScaleStep.call(str(path))
    ours = apply_step("group_scale", open_exposure(path)).compute()
    assert theirs.meta.cal_step.group_scale == status
    assert ours.attrs["cal_step"]["group_scale"] == status
    assert ours["data"].dtype == np.float32
    # bit-identical: float32 data times the factor rounded to float32, as NumPy does
    np.testing.assert_array_equal(ours["data"].values, theirs.data)
    if status == "COMPLETE":
        assert not np.array_equal(ours["data"].values, open_exposure(path)["data"].values)
    np.testing.assert_array_equal(ours["zeroframe"].values,
                                  np.asarray(theirs.zeroframe, dtype=np.float32))
    theirs.close()


def test_group_scale_is_lazy_and_chunk_independent(sim_nircam_bright2, tmp_path):
    path = _edit(sim_nircam_bright2.uncal, tmp_path / "jw01234001001_01101_00001_nrca1_uncal.fits",
                 NFRAMES=5, FRMDIVSR=4)

    with no_compute():
        lazy = apply_step("group_scale", open_exposure(path))
    a = lazy.compute()
    b = apply_step("group_scale", open_exposure(path, chunks={"y": 100, "x": 77})).compute()
    assert a.attrs["cal_step"]["group_scale"] == "COMPLETE"
    np.testing.assert_array_equal(a["data"].values, b["data"].values)
