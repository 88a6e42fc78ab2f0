"""jump equals jwst 3.0.0's JumpStep (stcal 1.20 ``detect_jumps_data``), and is lazy.

Every case compares detflow, computed on deliberately uneven tiles, with jwst run on the
whole exposure: GROUPDQ and PIXELDQ identical, PRIMECRS/EXTNCRS equal to the last bit.
The cases cover stcal's three regimes (iterative, single pass, sigma clip), the 3- and
4-difference thresholds, snowballs, showers, after-jump flagging, the skipped detection
(-99 primary cosmic rays), bad gain values, and the global decisions a tile cannot take
alone (regime, sigma-clip plane clearing).
"""

import numpy as np
import pytest
from astropy.io import fits
from lazycheck import no_compute
from stepcheck import assert_ramp_matches, jwst_step_products, step_input

from detflow import dqflags
from detflow.io.exposure import open_exposure
from detflow.kernels import jump as kj
from detflow.pipeline.builder import apply_step
from detflow.steps.base import scalars_to_attrs
from detflow.steps.jump import STEP, _flags

pytestmark = pytest.mark.jwst

UNEVEN = {"y": 100, "x": 77}


def _overrides(sim):
    return {"override_gain": str(sim.refs["GAIN"]),
            "override_readnoise": str(sim.refs["READNOISE"])}


def _run(path, overrides, chunks=None, **params):
    ds = open_exposure(path, chunks=chunks) if chunks else open_exposure(path)
    return apply_step("jump", ds, {**overrides, **params}).compute()


def _regime(path, **params):
    """stcal's regime for the exposure in ``path`` (from its all-DNU planes)."""
    with fits.open(path) as hdul:
        gdq = hdul["GROUPDQ"].data
        nframes, tgroup = hdul[0].header["NFRAMES"], hdul[0].header["TGROUP"]
    plane_dnu = np.all(gdq & dqflags.DO_NOT_USE, axis=(2, 3))
    settings = kj.jump_settings({**STEP.defaults(), **params}, nframes, tgroup)
    return kj.regime(plane_dnu, settings, _flags())


def _assert_rates(ours, theirs_header):
    """PRIMECRS and EXTNCRS equal jwst's (NaN in detflow where jwst did not set them)."""
    for name, key in (("primary_cosmic_rays", "PRIMECRS"),
                      ("extended_emission_events", "EXTNCRS")):
        expected = theirs_header.get(key)
        if name not in ours.variables:  # SKIPPED: nothing computed, jwst sets nothing
            assert expected is None, name
            continue
        value = float(ours[name])
        if expected is None:
            assert np.isnan(value), name
        else:
            assert value == expected, (name, value, expected)


def _jwst_jump(path, overrides, crds, **params):
    """jwst's JumpStep alone on a ramp file (single core, as in the pipeline)."""
    from jwst.jump import JumpStep
    from jwst_oracle import crds_environment

    with crds_environment(crds):
        return JumpStep.call(str(path), maximum_cores="1", **overrides, **params)


def _assert_model_matches(ours, model):
    np.testing.assert_array_equal(ours["groupdq"].values, model.groupdq, err_msg="groupdq")
    np.testing.assert_array_equal(ours["pixeldq"].values, model.pixeldq, err_msg="pixeldq")
    np.testing.assert_array_equal(ours["data"].values, model.data, err_msg="data")
    e = model.meta.exposure
    _assert_rates(ours, {"PRIMECRS": e.primary_cosmic_rays,
                         "EXTNCRS": e.extended_emission_events})
    assert ours.attrs["cal_step"]["jump"] == model.meta.cal_step.jump


# --------------------------------------------------------------------- simulated exposures


@pytest.mark.parametrize("which", ["sim_nircam_sub640", "sim_nircam_tso", "sim_nircam_bright2"])
def test_jump_matches_jwst(which, jwst_steps):
    """The shared simulations (8, 6 and 6 groups: the iterative regime; TSO 20 ints,
    BRIGHT2 nframes=2) on uneven tiles."""
    sim, products = jwst_steps(which)
    assert _regime(products["dark_current"]) == "iterative"
    ours = _run(step_input(products, "jump"), _overrides(sim), chunks=UNEVEN)
    assert_ramp_matches(ours, products["jump"], max_ulp=0)
    _assert_rates(ours, fits.getheader(products["jump"]))
    assert ours.attrs["cal_step"]["jump"] == "COMPLETE"
    assert float(ours["primary_cosmic_rays"]) > 0


@pytest.fixture(scope="module")
def regime_cases(module_tmp, crds_offline):
    """Factory: simulated SUB160 exposures for the other regimes, each run through jwst
    once: 12 groups (single pass), 3 groups x 100 integrations (sigma clip), 4 groups x 1
    integration (three differences: four_group_rejection_threshold)."""
    from detflow.simulator import simulate

    shapes = {"single_pass": (12, 2), "sigma_clip": (3, 100), "three_diffs": (4, 1)}
    cache = {}

    def _get(name):
        if name not in cache:
            ngroups, nints = shapes[name]
            sim = simulate("nircam", module_tmp(f"jump_{name}"),
                           subarray="SUB160", ngroups=ngroups, nints=nints, seed=3)
            out = module_tmp(f"jump_{name}_jwst")
            cache[name] = (sim, jwst_step_products(sim, out, crds_offline["CRDS_PATH"]))
        return cache[name]

    return _get


@pytest.mark.parametrize("case, regime", [
    ("single_pass", "single_pass"), ("sigma_clip", "sigma_clip"), ("three_diffs", "iterative"),
])
def test_jump_regimes_match_jwst(case, regime, regime_cases):
    sim, products = regime_cases(case)
    assert _regime(products["dark_current"]) == regime
    ours = _run(products["dark_current"], _overrides(sim), chunks={"y": 50, "x": 37})
    assert_ramp_matches(ours, products["jump"], max_ulp=0)
    _assert_rates(ours, fits.getheader(products["jump"]))
    assert (ours["groupdq"].values & dqflags.JUMP_DET).any()


def test_jump_snowballs_match_jwst(jwst_steps, crds_offline):
    """expand_large_events on SUB640 (2 injected snowballs per integration; ellipses,
    saturated cores grown, cores carried into the next integration)."""
    sim, products = jwst_steps("sim_nircam_sub640")
    params = {"expand_large_events": True}
    theirs = _jwst_jump(products["dark_current"], _overrides(sim), crds_offline, **params)
    assert theirs.meta.exposure.extended_emission_events > 0
    ours = _run(products["dark_current"], _overrides(sim), chunks={"y": 150, "x": 111},
                **params)
    _assert_model_matches(ours, theirs)
    # the snowballs changed something beyond the default detection
    plain = fits.getdata(products["jump"], "GROUPDQ")
    assert (ours["groupdq"].values != plain).any()


def test_jump_lazy_and_chunk_independent(sim_nircam_sub640, jwst_steps):
    sim, products = jwst_steps("sim_nircam_sub640")
    path = products["dark_current"]
    with no_compute():
        lazy = apply_step("jump", open_exposure(path), _overrides(sim))
    a = lazy.compute()
    b = _run(path, _overrides(sim), chunks={"y": 211, "x": 333})
    for name in ("groupdq", "pixeldq", "data", "primary_cosmic_rays"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
    done = scalars_to_attrs(a)
    assert done.attrs["primary_cosmic_rays"] == fits.getheader(products["jump"])["PRIMECRS"]
    assert "primary_cosmic_rays" not in done.variables
    assert "extended_emission_events" in done.attrs


def test_jump_parameters_are_jwsts():
    from jwst.jump import JumpStep

    step = JumpStep()
    for name, param in STEP.params.items():
        assert getattr(step, name) == param.default, name
    spec_names = {line.split("=")[0].strip() for line in JumpStep.spec.strip().splitlines()}
    assert spec_names == set(STEP.params)
    assert STEP.reftypes == tuple(JumpStep.reference_file_types)


# --------------------------------------------------------------------- synthetic edge cases


def _write_refs(folder, gain, rnoise, substrt):
    from stdatamodels.jwst import datamodels as dm

    out = {}
    for name, cls, arr in (("GAIN", dm.GainModel, gain),
                           ("READNOISE", dm.ReadnoiseModel, rnoise)):
        m = cls(data=np.asarray(arr, np.float32))
        _subarray_meta(m, substrt, arr.shape)
        m.meta.reftype = name
        m.meta.author = m.meta.description = "detflow test"
        m.meta.pedigree = "DUMMY"
        m.meta.useafter = "2022-01-01T00:00:00"
        m.meta.exposure.type = "NRC_IMAGE"
        path = folder / f"synthetic_{name.lower()}.fits"
        m.save(str(path))
        out[name] = path
    return {"override_gain": str(out["GAIN"]), "override_readnoise": str(out["READNOISE"])}


def _subarray_meta(m, substrt, shape):
    m.meta.instrument.name = "NIRCAM"
    m.meta.instrument.detector = "NRCA1"
    m.meta.subarray.name = "SUB64P"
    m.meta.subarray.xstart, m.meta.subarray.ystart = substrt
    m.meta.subarray.ysize, m.meta.subarray.xsize = shape
    m.meta.subarray.fastaxis, m.meta.subarray.slowaxis = -1, 2


@pytest.fixture
def synthetic(tmp_path):
    """Factory: a small RampModel file (dark-subtracted ramps in DN with cosmic rays)
    and its GAIN/READNOISE overrides: ``synthetic(nints, ngroups, ny, nx, ...)``."""
    from stdatamodels.jwst import datamodels as dm

    def _make(nints, ngroups, ny, nx, *, seed=0, ncr=20, edit=None, gain_edit=None,
              tgroup=10.73677, substrt=(101, 201)):
        rng = np.random.default_rng(seed)
        gain = rng.uniform(1.8, 2.2, (ny, nx)).astype(np.float32)
        rnoise = rng.uniform(6, 9, (ny, nx)).astype(np.float32)
        if gain_edit is not None:
            gain_edit(gain)
        overrides = _write_refs(tmp_path, gain, rnoise, substrt)
        rate = rng.uniform(5, 60, (ny, nx))
        g = np.arange(ngroups)[None, :, None, None]
        data = 1000.0 + rate[None, None] * g + rng.normal(0, 10, (nints, ngroups, ny, nx))
        for _ in range(ncr):
            i, k = rng.integers(nints), rng.integers(1, ngroups)
            data[i, k:, rng.integers(ny), rng.integers(nx)] += rng.uniform(100, 3000)
        gdq = np.zeros(data.shape, np.uint8)
        pdq = np.zeros((ny, nx), np.uint32)
        if edit is not None:
            edit(data, gdq, pdq)
        m = dm.RampModel(data=data.astype(np.float32), groupdq=gdq, pixeldq=pdq)
        _subarray_meta(m, substrt, (ny, nx))
        e = m.meta.exposure
        e.type, e.readpatt, e.nframes, e.groupgap = "NRC_IMAGE", "RAPID", 1, 0
        e.ngroups, e.nints, e.integration_start, e.integration_end = ngroups, nints, 1, nints
        e.frame_time = e.group_time = tgroup
        e.start_time, e.zero_frame = 60000.0, False
        m.meta.exposure.noutputs = 1
        path = tmp_path / "synthetic_ramp.fits"
        m.save(str(path))
        m.close()
        return path, overrides

    return _make


def _compare(path, overrides, crds, chunks, **params):
    theirs = _jwst_jump(path, overrides, crds, **params)
    ours = _run(path, overrides, chunks=chunks, **params)
    _assert_model_matches(ours, theirs)
    return ours, theirs


def _jump_all_pixels_in_corner(i, g, size):
    def edit(data, gdq, pdq):
        data[i, g:, :size, :size] += 5000.0
    return edit


@pytest.mark.parametrize("only_use_ints", [True, False])
def test_jump_sigma_clip_plane_clearing(only_use_ints, synthetic, crds_offline):
    """Sigma clip: a tile whose plane is all JUMP must keep its flags when the whole
    plane is not (stcal clears JUMP-only flags only of planes all JUMP|DNU over the
    exposure); and a plane that is all JUMP everywhere is cleared."""
    nints = 100 if only_use_ints else 40
    edit_corner = _jump_all_pixels_in_corner(7, 2, 4)
    path, ov = synthetic(nints, 3, 8, 12, ncr=40, edit=edit_corner)
    params = {"only_use_ints": only_use_ints}
    assert _regime(path, **params) == "sigma_clip"
    ours, _ = _compare(path, ov, crds_offline, {"y": 4, "x": 4}, **params)
    assert (ours["groupdq"].values[7, 2, :4, :4] & dqflags.JUMP_DET).all()

    def edit_all(data, gdq, pdq):
        data[7, 2:] += 5000.0
        gdq[7, 2, 0, 0] = dqflags.DO_NOT_USE
    path, ov = synthetic(nints, 3, 8, 12, ncr=40, edit=edit_all)
    ours, _ = _compare(path, ov, crds_offline, {"y": 4, "x": 4}, **params)
    assert not (ours["groupdq"].values[7, 2] & dqflags.JUMP_DET).any()


def test_jump_two_diffs_and_skipped_detection(synthetic, crds_offline):
    """3 groups (two differences: three_group_rejection_threshold); then group 0 DNU
    everywhere: too few usable groups, no detection, and jwst's PRIMECRS from -99."""
    path, ov = synthetic(1, 3, 10, 11, ncr=30)
    _compare(path, ov, crds_offline, {"y": 3, "x": 4})

    def dnu_first(data, gdq, pdq):
        gdq[:, 0] = dqflags.DO_NOT_USE
    path, ov = synthetic(2, 3, 10, 11, ncr=30, edit=dnu_first)
    assert _regime(path) == "skip"
    ours, theirs = _compare(path, ov, crds_offline, {"y": 3, "x": 4})
    assert theirs.meta.exposure.primary_cosmic_rays < 0


def test_jump_after_jump_flags_and_thresholds(synthetic, crds_offline):
    """after_jump_flag_dn/time (threshold times the median gain of the exposure), other
    neighbour thresholds; then no neighbour flagging."""
    path, ov = synthetic(2, 10, 15, 13, ncr=40)
    params = {"after_jump_flag_dn1": 500.0, "after_jump_flag_time1": 25.0,
              "after_jump_flag_dn2": 2000.0, "after_jump_flag_time2": 60.0,
              "min_jump_to_flag_neighbors": 5.0, "max_jump_to_flag_neighbors": 200.0,
              "rejection_threshold": 3.5}
    _compare(path, ov, crds_offline, {"y": 4, "x": 5}, **params)
    _compare(path, ov, crds_offline, {"y": 4, "x": 5}, flag_4_neighbors=False)


def test_jump_bad_gain(synthetic, crds_offline):
    """Gain <= 0 or NaN: PIXELDQ NO_GAIN_VALUE|DO_NOT_USE, as jwst."""
    def bad(gain):
        gain[2, 3] = 0.0
        gain[5, 1] = -1.0
        gain[7, 7] = np.nan
    path, ov = synthetic(2, 6, 9, 10, gain_edit=bad)
    # tiles of one row: as thin as the neighbour halo
    ours, _ = _compare(path, ov, crds_offline, {"y": 1, "x": 3})
    want = dqflags.NO_GAIN_VALUE | dqflags.DO_NOT_USE
    assert all(ours["pixeldq"].values[y, x] & want == want for y, x in ((2, 3), (5, 1), (7, 7)))


def test_jump_showers(synthetic, crds_offline):
    """find_showers (whole-exposure task): a faint extended event is found and flagged."""
    def shower(data, gdq, pdq):
        yy, xx = np.mgrid[: data.shape[2], : data.shape[3]]
        data[0, 4:, (yy - 30) ** 2 + (xx - 25) ** 2 < 144] += 15.0
    path, ov = synthetic(2, 8, 60, 64, ncr=30, edit=shower)
    ours, theirs = _compare(path, ov, crds_offline, {"y": 17, "x": 25}, find_showers=True)
    assert theirs.meta.exposure.extended_emission_events > 0


def test_jump_skipped_for_two_groups(synthetic, crds_offline):
    path, ov = synthetic(2, 2, 6, 7)
    ours, theirs = _compare(path, ov, crds_offline, None)
    assert ours.attrs["cal_step"]["jump"] == "SKIPPED" == theirs.meta.cal_step.jump


def test_jump_miri_matches_jwst(jwst_steps):
    """MIRI (jump runs after refpix there); the last group is DO_NOT_USE everywhere."""
    sim, products = jwst_steps("sim_miri")
    ours = _run(products["refpix"], _overrides(sim), chunks={"y": 300, "x": 277})
    assert_ramp_matches(ours, products["jump"], max_ulp=0)
    _assert_rates(ours, fits.getheader(products["jump"]))
