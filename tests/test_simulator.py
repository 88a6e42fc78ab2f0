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
    with pytest.raises(ParameterError, match="FAST only"):
        simulate("miri", tmp_path, subarray="SUB64", readpatt="SLOW")
    with pytest.raises(ParameterError, match="segments 1 to 2"):
        simulate("miri", tmp_path, subarray="SUB64", nints=4, segment=3, ints_per_segment=2)
    with pytest.raises(ParameterError, match="MIRI"):
        simulate("nircam", tmp_path, showers=2)
    assert not any(tmp_path.glob("*.fits"))


# --- MIRI subarrays, read patterns, segments and showers ---------------------------------

MIRI_SIAF = "lib/tests/data/xml_data_siafxml/SIAFXML/MIRI_SIAF.xml"


def _siaf_corners():
    """``{subarray: (xstart, ystart, xsize, ysize)}`` from the MIRI SIAF jwst ships in its
    tests (corner = reference point in the full frame - in the subarray + 1)."""
    import xml.etree.ElementTree as ET
    from pathlib import Path

    import jwst

    path = Path(jwst.__file__).parent / MIRI_SIAF
    if not path.exists():
        pytest.skip("jwst's MIRI SIAF test file is not installed")
    out = {}
    for entry in ET.parse(path).getroot():
        d = {c.tag: c.text for c in entry}
        name = d.get("AperName", "")
        if name.startswith("MIRIM_") and d.get("AperType") in ("FULLSCA", "SUBARRAY"):
            x0 = float(d["XDetRef"]) - float(d["XSciRef"]) + 1
            y0 = float(d["YDetRef"]) - float(d["YSciRef"]) + 1
            out[name[6:]] = (x0, y0, int(d["XSciSize"]), int(d["YSciSize"]))
    return out


def test_miri_subarrays_and_frame_times_are_jwsts():
    """Every simulated MIRI subarray is one stdatamodels accepts, has the SIAF's size, lies
    on the detector, and its frame time is jwst's clock count (emicorr's table) x 10 us."""
    import yaml
    from jwst.emicorr.emicorr import subarray_clocks
    from stdatamodels.jwst.datamodels import schemas

    from detflow.simulator.instruments import MIRI_IM, MIRI_SUBARRAYS, frame_time

    schema_dir = __import__("pathlib").Path(schemas.__file__).parent
    names = yaml.safe_load((schema_dir / "subarray.schema.yaml").read_text())
    enums = names["properties"]["meta"]["properties"]["subarray"]["properties"]["name"]
    allowed = {v for alt in enums["anyOf"] for v in alt.get("enum", [])}
    siaf = _siaf_corners()
    assert set(MIRI_SUBARRAYS) == {"FULL", "BRIGHTSKY", "SUB256", "SUB128", "SUB64",
                                   "SLITLESSPRISM", "MASK1065", "MASK1140", "MASK1550",
                                   "MASKLYOT"}
    for name, sub in MIRI_SUBARRAYS.items():
        assert name in allowed
        assert (sub.xsize, sub.ysize) == siaf[name][2:]
        assert sub.xstart >= 1 and sub.xstart - 1 + sub.xsize <= 1032
        assert sub.ystart >= 1 and sub.ystart - 1 + sub.ysize <= 1024
        case = name if name != "FULL" else "FULL_FAST"
        rowclocks, frameclocks = subarray_clocks[case]["rowclocks"], \
            subarray_clocks[case]["frameclocks"]
        # the frame reads ysize rows and skips the others (7 clocks each)
        assert frameclocks == sub.ysize * rowclocks + (1024 - sub.ysize) * 7
        assert frame_time(MIRI_IM, sub, "FAST") == pytest.approx(frameclocks * 10e-6, rel=1e-12)
    full = MIRI_SUBARRAYS["FULL"]
    for patt in ("SLOW", "SLOWR1"):
        assert frame_time(MIRI_IM, full, patt) == pytest.approx(
            subarray_clocks["FULL_SLOW"]["frameclocks"] * 10e-6, rel=1e-12)
    # corners the SIAF's reference points confirm (the coronagraph ones are not corners)
    for name in ("FULL", "BRIGHTSKY", "SUB256", "SUB64", "SLITLESSPRISM"):
        sub = MIRI_SUBARRAYS[name]
        assert (sub.xstart, sub.ystart) == siaf[name][:2], name


@pytest.fixture(scope="module")
def miri_segment(tmp_path_factory):
    """Segment 2 (integrations 4-6) of a 6-integration MIRI SUB64 FAST exposure, and the
    whole exposure simulated unsegmented."""
    d = tmp_path_factory.mktemp("miri_seg")
    kw = dict(subarray="SUB64", ngroups=8, nints=6, seed=3)
    return (simulate("miri", d / "seg", segment=2, ints_per_segment=3, **kw),
            simulate("miri", d / "whole", **kw))


@pytest.fixture(scope="module")
def miri_grpavg(tmp_path_factory):
    """MIRI SUB128, FASTGRPAVG (4 frames averaged per group), 6 groups x 2 integrations."""
    return simulate("miri", tmp_path_factory.mktemp("miri_grpavg"), subarray="SUB128",
                    readpatt="FASTGRPAVG", ngroups=6, nints=2)


def test_miri_segment_is_a_slice_of_the_exposure(miri_segment):
    seg, whole = miri_segment
    assert "-seg002_mirimage" in seg.uncal.name
    with fits.open(seg.uncal) as s, fits.open(whole.uncal) as w:
        hs, hw = s[0].header, w[0].header
        assert (hs["NINTS"], hs["INTSTART"], hs["INTEND"]) == (6, 4, 6)
        assert (hs["EXSEGNUM"], hs["EXSEGTOT"]) == (2, 2)
        assert (hw["INTSTART"], hw["INTEND"]) == (1, 6)
        for key in ("EXPSTART", "EXPEND", "TFRAME", "TGROUP", "EFFINTTM", "SUBSTRT2"):
            assert hs[key] == hw[key], key
        # the same integrations, read for read: noise, cosmic rays, reset anomaly and RSCD
        np.testing.assert_array_equal(s["SCI"].data, w["SCI"].data[3:6])
        np.testing.assert_array_equal(s["REFOUT"].data, w["REFOUT"].data[3:6])
        it_s, it_w = s["INT_TIMES"].data, w["INT_TIMES"].data
        assert list(it_s["integration_number"]) == [4, 5, 6]
        assert it_s.tobytes() == it_w[3:6].tobytes()
        grp = s["GROUP"].data
        assert sorted(set(grp["integration_number"])) == [4, 5, 6]
        assert len(grp) == 3 * hs["NGROUPS"]
    for cls in (dm.Level1bModel, dm.RampModel):
        model = _validated(cls, seg.uncal)
        assert model.meta.exposure.integration_start == 4
        assert model.data.shape == (3, 8, 64, 72)
        model.close()
    manifest = json.loads(seg.manifest.read_text())
    assert (manifest["segment"], manifest["segments"]) == (2, 2)
    assert (manifest["intstart"], manifest["intend"], manifest["nints"]) == (4, 6, 6)
    # both exposures are calibrated with the same references
    assert {k: v.name for k, v in seg.refs.items()} == {k: v.name for k, v in whole.refs.items()}


@pytest.mark.parametrize("which", ["miri_segment", "miri_grpavg"])
def test_miri_subarray_references_are_what_jwst_reads(which, request):
    sim = request.getfixturevalue(which)
    sim = sim[0] if isinstance(sim, tuple) else sim
    for cls in (dm.Level1bModel, dm.RampModel):
        _validated(cls, sim.uncal).close()
    with fits.open(sim.uncal) as hdul:
        hdr = hdul[0].header
        sci_shape = hdul["SCI"].data.shape
    for reftype, path in sim.refs.items():
        cls = dm.DarkMIRIModel if reftype == "DARK" else REF_CLASSES[reftype]
        model = _validated(cls, path)
        if reftype in ("DARK", "RESET"):
            # jwst cuts neither: both have the science region and name its subarray
            assert model.data.shape[-2:] == sci_shape[-2:]
            assert model.meta.subarray.name == hdr["SUBARRAY"]
            assert (model.meta.subarray.xstart, model.meta.subarray.ystart) == (
                hdr["SUBSTRT1"], hdr["SUBSTRT2"])
        if reftype == "DARK":
            # per integration, read as the science (CRDS selects MIRI darks by READPATT):
            # stcal subtracts it group by group, nothing averaged or extrapolated
            assert model.data.ndim == 4 and model.data.shape[1] >= hdr["NGROUPS"]
            assert model.meta.exposure.readpatt == hdr["READPATT"]
            assert model.meta.exposure.nframes == hdr["NFRAMES"]
            assert model.meta.exposure.groupgap == hdr["GROUPGAP"]
        if reftype == "RSCD":
            # jwst looks the row up by SUBARRAY and READPATT (SKIPPED without one)
            rows = {(r["subarray"], r["readpatt"]) for r in model.rscd_group_skip_table}
            assert (hdr["SUBARRAY"], hdr["READPATT"]) in rows
            for sub in ("FULL", "BRIGHTSKY", "SUB256", "SUB128", "SUB64", "SLITLESSPRISM",
                        "MASK1065", "MASK1140", "MASK1550", "MASKLYOT"):
                for patt in ("FAST", "FASTR1", "SLOW", "SLOWR1", "FASTGRPAVG",
                             "FASTGRPAVG64"):
                    assert (sub, patt) in rows
        model.close()


def test_miri_fastgrpavg_averages_frames_and_inverts_linearity(miri_grpavg):
    sim = miri_grpavg
    with fits.open(sim.uncal) as hdul:
        hdr = hdul[0].header
        sci = hdul["SCI"].data.astype(np.float64)
    assert (hdr["READPATT"], hdr["NFRAMES"], hdr["FRMDIVSR"], hdr["GROUPGAP"]) == (
        "FASTGRPAVG", 4, 4, 0)
    assert hdr["TFRAME"] == pytest.approx(0.11904)
    assert hdr["TGROUP"] == pytest.approx(4 * 0.11904)
    # group to group, once the reset anomaly is removed with the RESET file, a pixel gains
    # TGROUP x its rate (pixels with some signal, far from saturation)
    sci -= fits.getdata(sim.refs["RESET"], "SCI")[0, :sci.shape[1]]
    truth = fits.getdata(sim.truth, "SCI")
    expected = truth * hdr["TGROUP"]
    sat = fits.getdata(sim.refs["SATURATION"], "SCI")[888:1016, :136]
    sel = (expected > 10) & (sci[0, -2] < 0.7 * sat)
    assert sel.sum() > 20
    ratio = (sci[0, 3] - sci[0, 2])[sel] / expected[sel]
    assert 0.9 < np.median(ratio) < 1.1
    # jwst's read-level correction needs INV_COEFFS to undo COEFFS: raw = INV(lin),
    # lin = COEFFS(raw), MIRI's pedestal included, to a fraction of a DN up to full well
    with fits.open(sim.refs["LINEARITY"]) as hdul:
        coeffs = hdul["COEFFS"].data[:, 888:1016, :136].astype(np.float64)
        inv = hdul["INV_COEFFS"].data[:, 888:1016, :136].astype(np.float64)
    good = np.all(np.isfinite(coeffs), axis=0)
    for q in (0.0, 5000.0, 20000.0, 38000.0):
        raw = sum(inv[k] * q**k for k in range(inv.shape[0]))
        lin = sum(coeffs[k] * raw**k for k in range(coeffs.shape[0]))
        assert np.max(np.abs(lin - q)[good]) < 1.0, q


def test_miri_showers_are_large_faint_and_change_nothing_else(tmp_path):
    kw = dict(subarray="SUB256", ngroups=6, nints=2, seed=5)
    plain = simulate("miri", tmp_path / "plain", **kw)
    shower = simulate("miri", tmp_path / "shower", showers=2, **kw)
    events = json.loads(shower.manifest.read_text())["showers"]
    assert len(events) == 2
    a = fits.getdata(plain.uncal, "SCI").astype(np.float64)
    b = fits.getdata(shower.uncal, "SCI").astype(np.float64)
    diff = b - a
    touched = np.zeros(diff.shape[:2], bool)
    for ev in events:
        touched[ev["integration"] - 1, ev["frame"]:] = True  # NFRAMES 1: frame k, group k
    for ev in events:
        i, g = ev["integration"] - 1, ev["frame"]
        step = diff[i, g] - (diff[i, g - 1] if g else 0)
        yy, xx = np.mgrid[0:256, 0:256]
        d = np.hypot(yy - ev["y"], xx - ev["x"])
        # far larger than a snowball (radius <= 9 px, ~250 px): hundreds of pixels lit ...
        lit = (step > 3) & (d > 3)
        assert lit.sum() > 300
        # ... faintly: a few times the read noise of a group difference, except the core
        assert np.median(step[(d > 3) & (d < ev["sigma"])]) < 45
    # everything else (before each shower arrives, the other integrations) is read for
    # read the exposure without showers
    assert np.all(diff[~touched] == 0)
