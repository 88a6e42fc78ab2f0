"""The simulator writes valid JWST exposures and reference files with realistic physics."""

import json
import warnings

import numpy as np
import pytest
from astropy.io import fits
from stdatamodels.jwst import datamodels as dm
from stdatamodels.validate import ValidationWarning

from detflow import dqflags
from detflow.errors import ParameterError
from detflow.simulator import physics, simulate
from detflow.simulator.instruments import NIRCAM_A1

REF_CLASSES = {
    "MASK": dm.MaskModel,
    "SATURATION": dm.SaturationModel,
    "SUPERBIAS": dm.SuperBiasModel,
    "LINEARITY": dm.LinearityModel,
    "GAIN": dm.GainModel,
    "READNOISE": dm.ReadnoiseModel,
    "IPC": dm.IPCModel,
    "RESET": dm.ResetModel,
    "RSCD": dm.RSCDModel,
}

REQUIRED_KEYWORDS = (
    "INSTRUME", "DETECTOR", "EXP_TYPE", "FILTER", "READPATT", "NFRAMES", "GROUPGAP", "NGROUPS",
    "NINTS", "INTSTART", "INTEND", "SUBARRAY", "SUBSTRT1", "SUBSTRT2", "SUBSIZE1", "SUBSIZE2",
    "FASTAXIS", "SLOWAXIS", "NOUTPUTS", "TFRAME", "TGROUP", "EFFINTTM", "FRMDIVSR", "EXPSTART",
    "EXPEND", "ZEROFRAM", "DATE-OBS", "TIME-OBS",
)


def _validated(cls, path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=ValidationWarning)
        model = cls(str(path), strict_validation=True)
        model.validate()
    return model


@pytest.mark.parametrize(
    "which", ["sim_nircam_full", "sim_nircam_sub640", "sim_nircam_tso", "sim_miri"]
)
def test_exposure_opens_as_jwst_raw_data(which, request):
    sim = request.getfixturevalue(which)
    manifest = json.loads(sim.manifest.read_text())
    for cls in (dm.Level1bModel, dm.RampModel):
        model = _validated(cls, sim.uncal)
        nints, ngroups = manifest["nints"], manifest["ngroups"]
        assert model.data.shape[:2] == (nints, ngroups)
        assert model.meta.exposure.ngroups == ngroups
        assert model.meta.exposure.nints == nints
        model.close()
    with fits.open(sim.uncal) as hdul:
        hdr = hdul[0].header
        for key in REQUIRED_KEYWORDS:
            assert key in hdr, key
        sci = hdul["SCI"]
        assert sci.data.dtype == np.uint16
        assert sci.header["BZERO"] == 32768
        ny, nx = hdr["SUBSIZE2"], hdr["SUBSIZE1"]
        assert sci.data.shape == (hdr["NINTS"], hdr["NGROUPS"], ny, nx)
        assert len(hdul["INT_TIMES"].data) == hdr["NINTS"]
        assert len(hdul["GROUP"].data) == hdr["NINTS"] * hdr["NGROUPS"]
        assert hdr["TGROUP"] == pytest.approx(
            (hdr["NFRAMES"] + hdr["GROUPGAP"]) * hdr["TFRAME"])


@pytest.mark.parametrize(
    "which", ["sim_nircam_full", "sim_nircam_sub640", "sim_nircam_tso", "sim_miri"]
)
def test_reference_files_validate_and_match(which, request):
    sim = request.getfixturevalue(which)
    with fits.open(sim.uncal) as hdul:
        hdr = hdul[0].header
        sci_shape = hdul["SCI"].data.shape
    expected = {"MASK", "SATURATION", "LINEARITY", "DARK", "GAIN", "READNOISE"}
    expected |= {"RESET", "RSCD"} if hdr["INSTRUME"] == "MIRI" else {"SUPERBIAS", "IPC"}
    assert expected <= set(sim.refs)
    for reftype, path in sim.refs.items():
        cls = REF_CLASSES.get(reftype)
        if reftype == "DARK":
            cls = dm.DarkMIRIModel if hdr["INSTRUME"] == "MIRI" else dm.DarkModel
        model = _validated(cls, path)
        assert model.meta.reftype == reftype
        assert model.meta.instrument.name == hdr["INSTRUME"]
        assert model.meta.instrument.detector == hdr["DETECTOR"]
        if reftype == "DARK":
            # jwst never cuts the dark to a subarray: it has the science region
            assert model.data.shape[-2:] == sci_shape[-2:]
        elif reftype not in ("IPC", "RSCD"):
            # everything else is full frame, cut by coordinates
            full = (1024, 1032) if hdr["INSTRUME"] == "MIRI" else (2048, 2048)
            assert model.meta.subarray.name == "FULL"
            arr = model.dq if reftype == "MASK" else (
                model.coeffs if reftype == "LINEARITY" else model.data)
            assert arr.shape[-2:] == full
        model.close()
    manifest = json.loads(sim.manifest.read_text())
    assert set(manifest["references"]) == set(sim.refs)


def test_truth_image(sim_nircam_sub640):
    with fits.open(sim_nircam_sub640.truth) as hdul:
        truth = hdul["SCI"].data
        assert hdul["SCI"].header["BUNIT"] == "DN/s"
        assert truth.shape == (640, 640)
    mask = fits.getdata(sim_nircam_sub640.refs["MASK"], "DQ")[:640, :640]
    ref = (mask & dqflags.REFERENCE_PIXEL) > 0
    # sky everywhere on light-sensitive pixels, nothing on reference pixels
    assert np.all(truth[ref] == 0)
    assert np.median(truth[~ref]) == pytest.approx(NIRCAM_A1.sky, rel=0.2)
    assert truth.max() > 1000  # bright sources are present


def test_linearity_inverts_the_nonlinearity():
    rng = np.random.default_rng(3)
    q = rng.uniform(0, 40000, 1000)
    alpha = rng.uniform(1.8e-6, 2.2e-6, 1000)
    beta = rng.uniform(1.3e-11, 1.7e-11, 1000)
    u = physics.invert_linearity(q, alpha, beta)
    assert np.all(u <= q + 1e-9)  # the response is sub-linear
    np.testing.assert_allclose(physics.linearity_correction(u, alpha, beta), q, rtol=1e-12)


def test_saturation_and_jumps_occur(sim_nircam_full):
    with fits.open(sim_nircam_full.uncal) as hdul:
        data = hdul["SCI"].data[0]
    thresh = fits.getdata(sim_nircam_full.refs["SATURATION"], "SCI")
    over = data >= thresh
    from_first = over[0].sum()
    part_way = (over[-1] & ~over[0]).sum()
    assert from_first > 10, "some pixels must saturate from the first group"
    assert part_way > 100, "some pixels must saturate part way up the ramp"
    manifest = json.loads(sim_nircam_full.manifest.read_text())
    assert manifest["cosmic_ray_hits"] > 1000


def test_one_over_f_is_seen_by_side_reference_pixels(sim_nircam_full):
    with fits.open(sim_nircam_full.uncal) as hdul:
        data = hdul["SCI"].data[0].astype(np.float64)
    # row means of the left and right reference columns, with the static bias and the
    # per-group (amplifier offset) level removed
    left = data[:, 8:-8, :4].mean(axis=2)
    right = data[:, 8:-8, -4:].mean(axis=2)
    for side in (left, right):
        side -= side.mean(axis=0)
        side -= side.mean(axis=1, keepdims=True)
    # 16-row block means beat the white read noise down; what is left is the 1/f noise,
    # common to the outputs and read at the same time on both sides ...
    bl = left.reshape(left.shape[0], -1, 16).mean(axis=2)
    br = right.reshape(right.shape[0], -1, 16).mean(axis=2)
    assert np.corrcoef(bl.ravel(), br.ravel())[0, 1] > 0.3
    # ... and correlated in readout time from one block of rows to the next (not white)
    lag1 = np.mean([np.corrcoef(g[:-1], g[1:])[0, 1] for g in bl])
    assert lag1 > 0.15


def test_zeroframe_and_frame_averaging(tmp_path):
    sim = simulate("nircam", tmp_path, subarray="SUB320", readpatt="BRIGHT2", ngroups=4, nints=2)
    with fits.open(sim.uncal) as hdul:
        hdr = hdul[0].header
        assert hdr["NFRAMES"] == 2 and hdr["FRMDIVSR"] == 2 and hdr["ZEROFRAM"]
        zf = hdul["ZEROFRAME"].data
        sci = hdul["SCI"].data
    truth = fits.getdata(sim.truth, "SCI")
    assert zf.shape == (2, 320, 320) and zf.dtype == np.uint16
    # group 0 averages frames 0 and 1, the zero frame is frame 0 alone: on bright,
    # unsaturated pixels group 0 is higher by half a frame of signal
    expected = 0.5 * truth * hdr["TFRAME"]
    sel = (expected > 50) & (sci[0, 1] < 30000)
    assert sel.sum() > 20
    ratio = (sci[0, 0][sel].astype(float) - zf[0][sel]) / expected[sel]
    assert 0.8 < np.median(ratio) < 1.2


def test_seed_reproducible(tmp_path):
    a = simulate("nircam", tmp_path / "a", subarray="SUB160", ngroups=3, seed=7)
    b = simulate("nircam", tmp_path / "b", subarray="SUB160", ngroups=3, seed=7)
    c = simulate("nircam", tmp_path / "c", subarray="SUB160", ngroups=3, seed=8)
    da, db, dc = (fits.getdata(s.uncal, "SCI") for s in (a, b, c))
    np.testing.assert_array_equal(da, db)
    assert not np.array_equal(da, dc)


def test_bad_parameters_are_clear_errors(tmp_path):
    with pytest.raises(ParameterError, match="read pattern"):
        simulate("nircam", tmp_path, readpatt="SLOWEST")
    with pytest.raises(ParameterError, match="subarray"):
        simulate("miri", tmp_path, subarray="SUB640")
    with pytest.raises(ParameterError, match="instrument"):
        simulate("nirspec2", tmp_path)
    assert not any(tmp_path.glob("*.fits"))
