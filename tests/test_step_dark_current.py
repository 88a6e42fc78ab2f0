"""dark_current equals jwst 3.0.0's DarkCurrentStep (stcal 1.20 dark_sub), and is lazy.

The simulated exposures cover the matched pattern (RAPID dark, RAPID science:
sim_nircam_sub640, sim_nircam_tso) and the averaged, extrapolated pattern (BRIGHT2
science, a 10-frame RAPID dark: extrapolated to 12 frames in float64, then averaged in
pairs). Small synthetic exposures and random (non-linear) darks cover the other branches
of stcal's code: matched with extrapolation (a float64 dark), averaging with group gaps,
with and without extrapolation, 16-frame averages on one-pixel tiles, SKIPPED darks, NaN
and DQ in the dark, every source of the average dark current, and MIRI's per-integration
darks.
"""

import numpy as np
import pytest
from lazycheck import no_compute
from stepcheck import assert_float_equal, assert_ramp_matches, run_detflow_step, step_input

from detflow import dqflags
from detflow.io.exposure import open_exposure
from detflow.pipeline.builder import apply_step

pytestmark = pytest.mark.jwst

SIMS = ["sim_nircam_sub640", "sim_nircam_tso", "sim_nircam_bright2"]


@pytest.mark.parametrize("which", SIMS)
def test_dark_current_matches_jwst(which, jwst_steps):
    from stdatamodels.jwst import datamodels as dm

    sim, products = jwst_steps(which)
    ours = run_detflow_step("dark_current", step_input(products, "dark_current"), sim)
    # bit-identical: stcal's arithmetic in stcal's dtypes (float64 for the extrapolated dark)
    assert_ramp_matches(ours, products["dark_current"], max_ulp=0)
    assert ours.attrs["cal_step"]["dark_sub"] == "COMPLETE"
    prov = ours.attrs["provenance"][-1]
    if which == "sim_nircam_bright2":
        assert prov["dark_pattern"] == "averaged" and prov["dark_extrapolated"] == 2
    else:
        assert prov["dark_pattern"] == "matched" and prov["dark_extrapolated"] == 0
    with dm.RampModel(str(products["dark_current"])) as theirs:
        assert theirs.meta.cal_step.dark_sub == "COMPLETE"
        np.testing.assert_array_equal(
            np.full(ours["pixeldq"].shape, ours.attrs["average_dark_current"], np.float32),
            theirs.average_dark_current)
    assert "average_dark_current" not in ours  # the simulated DARK has no AVDRKCUR map


# --- small synthetic exposures against jwst's DarkCurrentStep ------------------------------

NY, NX = 32, 48


def _dark_file(path, *, ngroups, nframes, groupgap, seed, miri=False, nints=2, nan=True,
               dq=True, avdrkcur_map=None, avdrkcur=None):
    """A random, non-linear DARK file for the small exposure region (full-frame corner)."""
    from stdatamodels.jwst import datamodels as dm

    rng = np.random.default_rng(seed)
    shape = (nints, ngroups, NY, NX) if miri else (ngroups, NY, NX)
    steps = rng.uniform(0.01, 3.0, shape).astype(np.float32)
    data = np.cumsum(steps, axis=-3).astype(np.float32) + rng.normal(0, 0.5, shape).astype(
        np.float32)
    if nan:
        data[..., rng.random((NY, NX)) < 0.03] = np.nan
        data[..., 3, 4] = np.nan  # a NaN in one group only
        data[..., 1, 3, 5] = np.nan
    flags = np.zeros((NY, NX), np.uint32)
    if dq:
        flags[rng.random((NY, NX)) < 0.05] = dqflags.HOT
        flags[rng.random((NY, NX)) < 0.05] |= dqflags.UNRELIABLE_DARK
    if miri:
        dqarr = np.zeros(shape, np.uint32)
        dqarr[:, 0] = flags
        dqarr[1:, 0, 0, :4] |= dqflags.WARM  # only in a later integration's plane
        model = dm.DarkMIRIModel(data=data, dq=dqarr, err=np.zeros(shape, np.float32))
        model.meta.exposure.nints = nints
        model.meta.instrument.name, model.meta.instrument.detector = "MIRI", "MIRIMAGE"
    else:
        model = dm.DarkModel(data=data, dq=flags, err=np.zeros(shape, np.float32))
        model.meta.instrument.name, model.meta.instrument.detector = "NIRCAM", "NRCA1"
    if avdrkcur_map is not None:
        model.average_dark_current = avdrkcur_map.astype(np.float32)
    if avdrkcur is not None:
        model.meta.exposure.average_dark_current = avdrkcur
    model.meta.reftype = "DARK"
    model.meta.author = model.meta.pedigree = "test"
    model.meta.description = "random dark"
    model.meta.useafter = "2022-01-01T00:00:00"
    model.meta.telescope = "JWST"
    model.meta.exposure.readpatt = "ANY"
    model.meta.exposure.nframes = nframes
    model.meta.exposure.groupgap = groupgap
    model.meta.exposure.ngroups = ngroups
    model.meta.subarray.name = "FULL"
    model.meta.subarray.xstart = model.meta.subarray.ystart = 1
    model.meta.subarray.xsize, model.meta.subarray.ysize = NX, NY
    model.save(str(path))
    model.close()
    return str(path)


def _small_values(uncal):
    """Rewrite the raw ramps as small numbers (0..12 DN), so that a last-bit difference
    in the dark (values ~1-100) cannot hide in the rounding of ~10000 DN data."""
    from stdatamodels.jwst import datamodels as dm

    with dm.Level1bModel(uncal) as model:
        model.data = (model.data % 13).astype(np.uint16)
        model.save(uncal)
    return uncal


def _compare(uncal, dark, tmp_path, params=None, chunks=None, previous=None):
    """Run jwst's DarkCurrentStep and detflow on ``uncal`` with ``dark``; assert equal.
    ``previous``: an average dark current ``(ny, nx)`` the input already holds. jwst also
    saves the dark it subtracted (``dark_output``), compared with
    :func:`detflow.steps.dark_current.averaged_dark`.
    Returns (ours, theirs-status)."""
    from jwst.dark_current import DarkCurrentStep
    from jwst_oracle import crds_environment, offline_crds

    params = dict(params or {})
    ds = open_exposure(uncal, chunks=chunks)
    if previous is not None:
        from stdatamodels.jwst import datamodels as dm

        with dm.RampModel(uncal) as model:
            model.average_dark_current = previous
            uncal = str(tmp_path / "jw00001001001_01101_00001_nrca1_ramp.fits")
            model.save(uncal)
        ds["average_dark_current"] = (("y", "x"), previous)
    saved = tmp_path / "dark_used.fits"
    with crds_environment(offline_crds(tmp_path / "crds")):
        theirs = DarkCurrentStep.call(uncal, override_dark=dark, dark_output=saved.name,
                                      output_dir=str(tmp_path), **params)
    ours = apply_step("dark_current", ds, {"override_dark": dark, **params}).compute()
    _compare_saved_dark(ds, dark, saved)
    _compare_written_dark(ds, dark, saved, tmp_path, params)
    try:
        status = theirs.meta.cal_step.dark_sub
        assert ours.attrs["cal_step"]["dark_sub"] == status
        np.testing.assert_array_equal(ours["pixeldq"].values, theirs.pixeldq)
        np.testing.assert_array_equal(ours["groupdq"].values, theirs.groupdq)
        assert ours["data"].dtype == np.float32
        assert_float_equal(ours["data"].values, theirs.data, max_ulp=0)
        adc = ours["average_dark_current"].values if "average_dark_current" in ours else \
            np.full((NY, NX), ours.attrs["average_dark_current"], np.float32)
        # an unset value (None in jwst) is read as zeros by ramp_fit; detflow stores zeros
        expected = theirs.average_dark_current if theirs.hasattr("average_dark_current") \
            else np.zeros((NY, NX), np.float32)
        np.testing.assert_array_equal(adc, expected)
    finally:
        theirs.close()
    return ours, status


def _compare_saved_dark(ds, dark, saved):
    from stdatamodels.jwst import datamodels as dm

    from detflow.io.references import open_reference, select_region
    from detflow.steps.dark_current import averaged_dark

    ours = averaged_dark(ds, select_region(open_reference(dark, "DARK"), ds))
    if ours is None:
        assert not saved.exists()
        return
    model_cls = dm.DarkMIRIModel if ours.ndim == 4 else dm.DarkModel
    with model_cls(str(saved)) as theirs:
        # jwst's DarkModel stores float32 (a float64 dark is rounded when saved)
        np.testing.assert_array_equal(ours.values.astype(np.float32), theirs.data)
        assert theirs.meta.exposure.nframes == ours.attrs["nframes"]
        assert theirs.meta.exposure.groupgap == ours.attrs["groupgap"]
        assert theirs.meta.exposure.ngroups == ours.attrs["ngroups"]


def _compare_written_dark(ds, dark, saved, tmp_path, params):
    """detflow's DarkCurrentStep with ``dark_output`` writes the file jwst writes: same
    name rule (output_dir + the name's stem + .fits), model type, arrays and exposure
    keywords; nothing when the step is SKIPPED."""
    from stdatamodels.jwst import datamodels as dm

    from detflow.interfaces import DarkCurrentStep as DetflowDarkCurrentStep

    outdir = tmp_path / "detflow_dark"
    outdir.mkdir()
    DetflowDarkCurrentStep.call(ds, override_dark=dark, dark_output="sub/dark_used.asdf",
                                output_dir=str(outdir), **params)
    ours = outdir / saved.name
    if not saved.exists():
        assert not ours.exists()
        return
    with dm.open(str(saved)) as theirs, dm.open(str(ours)) as mine:
        assert type(mine) is type(theirs)
        np.testing.assert_array_equal(mine.data, theirs.data)
        assert mine.data.dtype == theirs.data.dtype
        np.testing.assert_array_equal(mine.dq, theirs.dq)
        for key in ("nframes", "groupgap", "ngroups"):
            assert getattr(mine.meta.exposure, key) == getattr(theirs.meta.exposure, key)
        assert mine.meta.reftype == theirs.meta.reftype


CASES = {
    # name: (science nframes, groupgap, ngroups), dark (ngroups, nframes, groupgap), status
    "matched": ((1, 0, 6), (8, 1, 0), "COMPLETE"),
    "matched_extrapolated": ((1, 0, 6), (4, 1, 0), "COMPLETE"),  # float64 dark
    "averaged": ((4, 1, 6), (30, 1, 0), "COMPLETE"),
    "averaged_extrapolated": ((2, 3, 6), (10, 1, 0), "COMPLETE"),
    "gap_copy": ((1, 2, 5), (16, 1, 0), "COMPLETE"),  # nframes 1, groupgap 2: copies
    "sixteen_frames": ((16, 0, 3), (50, 1, 0), "COMPLETE"),
    "dark_nframes_larger": ((1, 0, 6), (8, 2, 0), "SKIPPED"),
    "dark_groupgap_larger": ((2, 0, 4), (8, 2, 1), "SKIPPED"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_dark_patterns_match_jwst(case, make_uncal, tmp_path):
    (nframes, groupgap, ngroups), (dg, dnf, dgg), status = CASES[case]
    uncal, _ = make_uncal(shape=(2, ngroups, NY, NX), nframes=nframes, groupgap=groupgap,
                          readpatt="ANY")
    _small_values(uncal)
    dark = _dark_file(tmp_path / "jwst_nircam_dark_test.fits", ngroups=dg, nframes=dnf,
                      groupgap=dgg, seed=len(case))
    # sixteen_frames: the last row band is one row high, so 48 tiles are single pixels
    chunks = {"y": 31, "x": 1} if case == "sixteen_frames" else {"y": 13, "x": 20}
    ours, theirs_status = _compare(uncal, dark, tmp_path, chunks=chunks)
    assert theirs_status == status
    if status == "SKIPPED":
        np.testing.assert_array_equal(ours["data"].values,
                                      open_exposure(uncal)["data"].values.astype(np.float32))


@pytest.mark.parametrize("source", ["map", "map_with_previous", "zero_map", "keyword",
                                    "parameter", "none"])
def test_average_dark_current_matches_jwst(source, make_uncal, tmp_path):
    uncal, _ = make_uncal(shape=(1, 4, NY, NX), readpatt="ANY")
    rng = np.random.default_rng(9)
    kw = {}
    if source in ("map", "map_with_previous", "parameter"):
        kw["avdrkcur_map"] = rng.uniform(0.001, 0.05, (NY, NX))
    if source == "zero_map":
        kw["avdrkcur_map"] = np.zeros((NY, NX))
    if source in ("keyword", "zero_map", "parameter"):
        kw["avdrkcur"] = 0.0123
    dark = _dark_file(tmp_path / "jwst_nircam_dark_test.fits", ngroups=6, nframes=1,
                      groupgap=0, seed=3, **kw)
    params = {"average_dark_current": 0.37} if source == "parameter" else {}
    previous = rng.uniform(0, 1, (NY, NX)).astype(np.float32) \
        if source == "map_with_previous" else None
    ours, _ = _compare(uncal, dark, tmp_path, params, previous=previous)
    value = ours.attrs["average_dark_current"]
    # the scalar is float32-rounded, as jwst's float32 array holds it
    expected = {"map": 0.0, "map_with_previous": 0.0, "zero_map": 0.0123, "keyword": 0.0123,
                "parameter": 0.37, "none": 0.0}[source]
    assert value == float(np.float32(expected))
    assert ("average_dark_current" in ours) == (source in ("map", "map_with_previous",
                                                           "zero_map"))
    if source == "map_with_previous":  # only then does jwst apply the map
        np.testing.assert_array_equal(ours["average_dark_current"].values,
                                      kw["avdrkcur_map"].astype(np.float32))
    assert ours.attrs["provenance"][-1]["parameters"]["average_dark_current"] == (
        0.37 if source == "parameter" else None)


def test_skipped_dark_still_sets_average_dark_current(make_uncal, tmp_path):
    uncal, _ = make_uncal(shape=(1, 4, NY, NX), readpatt="ANY")
    dark = _dark_file(tmp_path / "jwst_nircam_dark_test.fits", ngroups=6, nframes=4,
                      groupgap=0, seed=4, avdrkcur=0.5)
    ours, status = _compare(uncal, dark, tmp_path)
    assert status == "SKIPPED" and ours.attrs["average_dark_current"] == 0.5


def test_dark_na_is_skipped(make_uncal):
    uncal, _ = make_uncal(shape=(1, 4, NY, NX))
    out = apply_step("dark_current", open_exposure(uncal), {"override_dark": "N/A"})
    assert out.attrs["cal_step"]["dark_sub"] == "SKIPPED"
    assert "average_dark_current" not in out.attrs


MIRI_CASES = {
    # name: (science nints, ngroups, groupgap), dark (nints, ngroups, groupgap)
    "per_integration": ((2, 5, 0), (2, 7, 0)),
    "last_dark_int_reused": ((3, 5, 0), (2, 7, 0)),
    "extrapolated": ((2, 6, 0), (2, 4, 0)),  # 4-D float64 dark
    "averaged_more_dark_ints": ((2, 4, 1), (3, 10, 0)),  # zero-filled third integration
}


@pytest.mark.parametrize("case", sorted(MIRI_CASES))
def test_miri_darks_match_jwst(case, make_uncal, tmp_path):
    (nints, ngroups, groupgap), (dints, dg, dgg) = MIRI_CASES[case]
    uncal, _ = make_uncal(name="jw01234002001_01101_00001_mirimage_uncal.fits",
                          instrument="MIRI", detector="MIRIMAGE", readpatt="FAST",
                          shape=(nints, ngroups, NY, NX), groupgap=groupgap, fastaxis=1,
                          slowaxis=2)
    _small_values(uncal)
    dark = _dark_file(tmp_path / "jwst_miri_dark_test.fits", ngroups=dg, nframes=1,
                      groupgap=dgg, seed=7, miri=True, nints=dints)
    _, status = _compare(uncal, dark, tmp_path, chunks={"y": 13, "x": 20, "group": 3})
    assert status == "COMPLETE"


def test_dark_current_is_lazy_and_chunk_independent(sim_nircam_bright2):
    overrides = {"override_dark": str(sim_nircam_bright2.refs["DARK"])}

    with no_compute():
        lazy = apply_step("dark_current", open_exposure(sim_nircam_bright2.uncal), overrides)
    a = lazy.compute()
    for chunks in ({"y": 100, "x": 77}, {"y": 100, "x": 77, "group": 4}):
        b = apply_step("dark_current", open_exposure(sim_nircam_bright2.uncal, chunks=chunks),
                       overrides).compute()
        for name in ("pixeldq", "groupdq", "data", "zeroframe"):
            np.testing.assert_array_equal(a[name].values, b[name].values)


def test_map_average_dark_current_is_lazy(make_uncal, tmp_path):
    uncal, _ = make_uncal(shape=(1, 4, NY, NX), readpatt="ANY")
    dark = _dark_file(tmp_path / "jwst_nircam_dark_test.fits", ngroups=6, nframes=1,
                      groupgap=0, seed=3, avdrkcur_map=np.full((NY, NX), 0.02))

    ds = open_exposure(uncal)
    ds.attrs["average_dark_current"] = 0.0  # an earlier value: jwst then applies the map
    with no_compute():
        lazy = apply_step("dark_current", ds, {"override_dark": dark})
    assert lazy["average_dark_current"].dtype == np.float32
    np.testing.assert_array_equal(lazy["average_dark_current"].values, np.float32(0.02))


def test_average_dark_current_travels_through_ramp_files(jwst_steps, tmp_path):
    """A ramp product's AVDRKCUR is read (``average_dark_current`` (y, x)) and written
    back, and detflow's own ramp after dark_current carries the value jwst stores."""
    from stdatamodels.jwst import datamodels as dm

    from detflow.io.products import write_ramp

    sim, products = jwst_steps("sim_nircam_sub640")
    theirs_path = products["dark_current"]
    ds = open_exposure(theirs_path)
    with dm.RampModel(str(theirs_path)) as theirs:
        expected = np.asarray(theirs.average_dark_current, np.float32)
    assert "average_dark_current" in ds
    np.testing.assert_array_equal(ds["average_dark_current"].values, expected)
    rewritten = write_ramp(ds, tmp_path / "again_ramp.fits")
    with dm.RampModel(str(rewritten)) as again:
        np.testing.assert_array_equal(again.average_dark_current, expected)
    # detflow's dark_current output (scalar attribute) written as jwst's RampModel has it
    ours = run_detflow_step("dark_current", step_input(products, "dark_current"), sim)
    mine = write_ramp(ours, tmp_path / "ours_ramp.fits")
    with dm.RampModel(str(mine)) as written:
        np.testing.assert_array_equal(written.average_dark_current, expected)
