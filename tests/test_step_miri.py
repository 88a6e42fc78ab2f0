"""MIRI's ramp steps equal jwst 3.0.0's, step by step: on the simulated MIRI full frame
(jwst's own saved products, each step fed jwst's input of it), and on small cases cut from
them for the rules a full frame does not reach -- segmented files (INTSTART > 1), RESET
references with fewer integrations and groups than the science, RSCD's few-groups rules,
its SUBPRISM row, its saturation back-off with jwst's global stop test, and the
``meta.rscd`` counts."""

import numpy as np
import pytest
from jwst_oracle import crds_environment, offline_crds
from stepcheck import (
    MIRI_ORDER,
    assert_ramp_matches,
    run_detflow_step,
    step_input,
)

from detflow import dqflags
from detflow.io.exposure import open_exposure
from detflow.pipeline.builder import apply_step
from detflow.steps.base import scalars_to_attrs

pytestmark = pytest.mark.jwst

#: the steps compared here on the full frame (jump and ramp_fit have their own MIRI tests)
FULL_FRAME_STEPS = [s for s in MIRI_ORDER if s not in ("jump", "charge_migration",
                                                     "persistence", "firstframe", "emicorr")]

RSCD_KEYWORDS = {"rscd_ngroups_skip_int1": "INT1SKIP", "rscd_ngroups_skip_int2p": "INT2SKIP",
                 "rscd_keep_bright_firstgroup_int1": "INT1UGP1",
                 "rscd_keep_bright_firstgroup_int2p": "INT2UGP1",
                 "rscd_keep_groups_saturation_int1": "INT1BORS",
                 "rscd_keep_groups_saturation_int2p": "INT2BORS"}


@pytest.fixture(scope="module")
def miri_full(jwst_steps):
    return jwst_steps("sim_miri")


#: MIRI exposures compared step by step: full frame (2 integrations), the LRS time-series
#: subarray (FASTR1, 40 integrations, showers), a segment (INTSTART 4) read FASTGRPAVG
CASES = ["sim_miri", "sim_miri_tso", "sim_miri_segment"]
#: jwst's own skips: group_scale (NFRAMES 1, or FRMDIVSR = NFRAMES), ipc (no IPC for MIRI),
#: refpix on a subarray
JWST_SKIPS = {"group_scale", "ipc"}


@pytest.mark.parametrize("which", CASES)
@pytest.mark.parametrize("step", FULL_FRAME_STEPS)
def test_step_equals_jwst(step, which, jwst_steps):
    from stdatamodels.jwst import datamodels as dm

    sim, products = jwst_steps(which)
    assert step in products, f"jwst saved no {step} product"
    ours = run_detflow_step(step, step_input(products, step), sim)
    assert_ramp_matches(ours, products[step], max_ulp=0)
    with dm.RampModel(str(products[step])) as theirs:
        cal = ours.attrs["cal_step"]
        key = "dark_sub" if step == "dark_current" else step
        assert cal[key] == getattr(theirs.meta.cal_step, key)
        subarray = theirs.meta.subarray.name != "FULL"
        skipped = step in JWST_SKIPS or (step == "refpix" and subarray)
        assert cal[key] == ("SKIPPED" if skipped else "COMPLETE")
        if step == "rscd":
            _assert_rscd_meta(ours, theirs)


def test_showers_equal_jwst(jwst_steps, tmp_path):
    """jump with ``find_showers`` on the time series with simulated showers: jwst's flags
    (the whole-exposure shower search is detflow's one untiled jump task)."""
    from jwst.jump import JumpStep

    sim, products = jwst_steps("sim_miri_tso")
    refs = {f"override_{k}": str(sim.refs[k.upper()]) for k in ("gain", "readnoise")}
    source = step_input(products, "jump")
    theirs = _jwst(JumpStep, source, tmp_path, find_showers=True, **refs)
    ours = apply_step("jump", open_exposure(source, chunks={"y": 100, "x": 40}),
                      {"find_showers": True, **refs}).compute()
    np.testing.assert_array_equal(ours["groupdq"].values, theirs.groupdq)
    np.testing.assert_array_equal(ours["pixeldq"].values, theirs.pixeldq)
    assert theirs.meta.exposure.extended_emission_events > 0  # showers were found
    assert scalars_to_attrs(ours).attrs["extended_emission_events"] == (
        theirs.meta.exposure.extended_emission_events)
    theirs.close()


def test_full_frame_is_chunk_independent(miri_full):
    """reset and rscd on uneven tiles (row bands and columns that split MIRI's four
    interleaved amplifiers) give jwst's bits."""
    sim, products = miri_full
    for step in ("reset", "rscd"):
        ds = open_exposure(step_input(products, step), chunks={"y": 300, "x": 257})
        ref = {"reset": sim.refs["RESET"], "rscd": sim.refs["RSCD"]}[step]
        ours = apply_step(step, ds, {f"override_{step}": str(ref)}).compute()
        assert_ramp_matches(ours, products[step], max_ulp=0)


def _assert_rscd_meta(ours, theirs):
    """The meta.rscd values equal jwst's (absent where jwst leaves them unset)."""
    done = scalars_to_attrs(ours)
    for name in RSCD_KEYWORDS:
        want = getattr(theirs.meta.rscd, name.removeprefix("rscd_"), None)
        assert done.attrs.get(name) == want, name


# --------------------------------------------------------------------------- small cases

SHAPE = (40, 48)  # rows, columns of the cut


def _cut_ramp(src, dest, *, ngroups=None, nints=None, subarray="SUB64", readpatt=None,
              intstart=None, intend=None, exposure_nints=None, edit=None):
    """jwst's ramp ``src`` cut to a small region (the first ``SHAPE`` pixels past the
    reference columns, full-frame numbers kept in SUBSTRT), ``ngroups`` and ``nints``,
    with the exposure keywords given; ``edit(model)`` changes it further."""
    from stdatamodels.jwst import datamodels as dm

    ny, nx = SHAPE
    y0, x0 = 100, 8
    with dm.RampModel(str(src)) as model:
        g = slice(0, ngroups)
        i = slice(0, nints)
        cut = dm.RampModel(data=model.data[i, g, y0:y0 + ny, x0:x0 + nx].copy(),
                           groupdq=model.groupdq[i, g, y0:y0 + ny, x0:x0 + nx].copy(),
                           pixeldq=model.pixeldq[y0:y0 + ny, x0:x0 + nx].copy())
        cut.update(model)
        for key in ("int_times", "group"):
            if model.hasattr(key):
                setattr(cut, key, getattr(model, key))
    meta = cut.meta
    meta.subarray.name = subarray
    meta.subarray.xstart, meta.subarray.ystart = x0 + 1, y0 + 1
    meta.subarray.xsize, meta.subarray.ysize = nx, ny
    meta.exposure.ngroups = cut.data.shape[1]
    meta.exposure.nints = exposure_nints or cut.data.shape[0]
    meta.exposure.integration_start = intstart
    meta.exposure.integration_end = intend
    if readpatt:
        meta.exposure.readpatt = readpatt
    if edit:
        edit(cut)
    cut.save(str(dest))
    cut.close()
    return dest


def _reset_reference(src, dest, *, nints, ngroups):
    """The simulated RESET cut to :data:`SHAPE` (jwst does not cut it), with ``nints``
    and ``ngroups`` planes, a NaN and some DQ."""
    from stdatamodels.jwst import datamodels as dm

    ny, nx = SHAPE
    with dm.ResetModel(str(src)) as model:
        have = model.data[:, :, 100:100 + ny, 8:8 + nx]
        # as many planes as asked, each integration and group distinct
        data = np.stack([np.stack([have[i % have.shape[0], g % have.shape[1]] + 0.25 * i + g
                                   for g in range(ngroups)]) for i in range(nints)])
        data = data.astype(np.float32)
        dq = model.dq[100:100 + ny, 8:8 + nx].copy()
        ref = dm.ResetModel(data=data, dq=dq, err=np.zeros_like(data))
        ref.update(model)
        if model.hasattr("dq_def"):
            ref.dq_def = model.dq_def
    data[0, 1, 3, 4] = np.nan
    ref.dq[5, 6] |= dqflags.DO_NOT_USE
    ref.meta.exposure.nints, ref.meta.exposure.ngroups = nints, ngroups
    ref.meta.subarray.name = "SUB64"
    ref.meta.subarray.xstart, ref.meta.subarray.ystart = 9, 101
    ref.meta.subarray.xsize, ref.meta.subarray.ysize = nx, ny
    ref.save(str(dest))
    return dest


def _jwst(step_class, path, tmp_path, **params):
    with crds_environment(offline_crds(tmp_path / "crds")):
        return step_class.call(str(path), **params)


@pytest.mark.parametrize("case", [
    # (exposure NINTS, INTSTART, INTEND, reference nints, reference ngroups)
    pytest.param((2, None, None, 3, 10), id="two-ints"),
    pytest.param((6, 3, 4, 3, 6), id="segment-past-reference"),
    pytest.param((6, 2, 3, 5, 12), id="segment-within-reference"),
    pytest.param((2, 2, None, 1, 4), id="intstart-without-intend"),
])
def test_reset_cases_equal_jwst(case, miri_full, tmp_path):
    """The integration index rule (segments use the last reference integration past its
    end), fewer reference groups than science groups, NaN in the reference, the DQ OR,
    and jwst's loop that leaves rows past NINTS - INTSTART + 1 uncorrected."""
    from jwst.reset import ResetStep

    sim, products = miri_full
    exposure_nints, intstart, intend, ref_nints, ref_ngroups = case
    src = step_input(products, "reset")
    path = _cut_ramp(src, tmp_path / "jw01234002001_01101_00001_mirimage_lastframe.fits",
                     exposure_nints=exposure_nints, intstart=intstart, intend=intend)
    ref = _reset_reference(sim.refs["RESET"], tmp_path / "reset.fits", nints=ref_nints,
                           ngroups=ref_ngroups)
    theirs = _jwst(ResetStep, path, tmp_path, override_reset=str(ref))
    ours = apply_step("reset", open_exposure(path, chunks={"y": 17, "x": 20}),
                      {"override_reset": str(ref)}).compute()
    np.testing.assert_array_equal(ours["data"].values, theirs.data)
    np.testing.assert_array_equal(ours["pixeldq"].values, theirs.pixeldq)
    assert ours.attrs["cal_step"]["reset"] == theirs.meta.cal_step.reset == "COMPLETE"
    before = open_exposure(path)["data"].values.astype(np.float32)
    changed = (ours["data"].values != before).any(axis=(1, 2, 3))
    rows = 2 - (intstart or 1) + 1 if intend is None and intstart else 2
    assert changed[:rows].all() and not changed[rows:].any()  # the rows jwst's loop reaches
    theirs.close()


def _saturate(pattern):
    """An ``edit`` for :func:`_cut_ramp`: groupdq SATURATED per ``pattern`` ``{(int, y, x):
    groups}``, other SATURATED flags cleared."""
    def edit(model):
        model.groupdq &= np.uint8(~dqflags.SATURATED & 0xFF)
        for (i, y, x), groups in pattern.items():
            model.groupdq[i, list(groups), y, x] |= dqflags.SATURATED
    return edit


#: SATURATED groups per (integration, y, x): saturating from group 5 (backed off while
#: the global test holds), from group 1 or 2 (backed off further), from group 0 (never), in
#: one group only (not monotone: jwst's global stop decides), in the second integration only
BACK_OFF = {(0, 1, 1): range(5, 10), (1, 2, 2): range(2, 10), (1, 3, 3): range(1, 10),
            (0, 4, 4): range(0, 10), (1, 5, 5): [3], (1, 6, 6): range(5, 10),
            (0, 7, 7): range(3, 10), (1, 7, 7): range(4, 10)}
#: a gap: nothing saturated at group 4 of the later integrations, so jwst stops there
GAP = {(1, 1, 1): range(5, 10), (1, 2, 2): [3], (1, 3, 3): [2, 3]}


def _rscd_reference(path, rows):
    """An RSCD reference with ``rows`` ``(subarray, readpatt, group_skip1, group_skip)``."""
    from stdatamodels.jwst import datamodels as dm

    model = dm.RSCDModel()
    dtype = np.dtype([(name, fmt) for name, fmt in (
        ("subarray", "S15"), ("readpatt", "S15"), ("group_skip", "<i4"),
        ("group_skip1", "<i4"))])
    model.rscd_group_skip_table = np.array([(a, b, skip, skip1) for a, b, skip1, skip in rows],
                                           dtype=dtype)
    model.meta.reftype = "RSCD"
    model.meta.instrument.name = "MIRI"
    model.meta.instrument.detector = "MIRIMAGE"
    model.meta.author = model.meta.pedigree = "GROUND"
    model.meta.description = "test RSCD"
    model.meta.useafter = "2000-01-01T00:00:00"
    model.save(str(path))
    return path


#: a table whose first integration skips groups too (the simulated one skips none there)
SKIP_BOTH = [("SUB64", "FAST", 2, 3), ("SLITLESSPRISM", "FAST", 3, 2), ("SUB64", "FAST", 0, 0)]


@pytest.mark.parametrize("case", [
    # (ngroups, exposure NINTS, INTSTART, subarray, readpatt, saturation, table,
    #  FLUX_ESTIMATED expected)
    pytest.param((10, 2, None, "SUB64", None, BACK_OFF, None, True), id="back-off"),
    pytest.param((10, 2, None, "SUB64", None, BACK_OFF, SKIP_BOTH, True), id="back-off-int1"),
    pytest.param((10, 2, None, "SUB64", None, GAP, None, True), id="global-stop"),
    pytest.param((10, 4, 3, "SUB64", None, BACK_OFF, None, True), id="segment"),
    pytest.param((10, 1, None, "SUB64", None, BACK_OFF, SKIP_BOTH, True), id="one-int"),
    pytest.param((10, 2, None, "SUBPRISM", None, BACK_OFF, SKIP_BOTH, True), id="subprism"),
    pytest.param((3, 2, None, "SUB64", None, {}, None, False), id="3-groups"),
    pytest.param((4, 2, None, "SUB64", None, {}, SKIP_BOTH, False), id="4-groups"),
    pytest.param((6, 2, None, "SUB64", None, {(1, 1, 1): range(4, 6)}, SKIP_BOTH, True),
                 id="6-groups"),
    pytest.param((2, 2, None, "SUB64", None, {}, None, False), id="2-groups-skipped"),
    pytest.param((10, 2, None, "SUB64", "FASTR100", {}, None, False), id="no-row-skipped"),
])
def test_rscd_cases_equal_jwst(case, miri_full, tmp_path):
    """The table row (SUBPRISM as SLITLESSPRISM, the first match), the few-groups rules,
    integration 1 only when INTSTART is 1, and the saturation back-off with jwst's global
    stop test: DQ and meta.rscd equal to jwst's."""
    from jwst.rscd import RscdStep

    sim, products = miri_full
    ngroups, exposure_nints, intstart, subarray, readpatt, saturation, table, flux = case
    nints = 1 if exposure_nints == 1 else 2
    saturation = {k: [g for g in v if g < ngroups] for k, v in saturation.items()
                  if k[0] < nints}
    path = _cut_ramp(step_input(products, "rscd"),
                     tmp_path / "jw01234002001_01101_00001_mirimage_linearity.fits",
                     ngroups=ngroups, nints=nints, subarray=subarray, readpatt=readpatt,
                     exposure_nints=exposure_nints,
                     intstart=intstart, intend=(intstart + 1) if intstart else None,
                     edit=_saturate(saturation))
    ref = _rscd_reference(tmp_path / "rscd.fits", table) if table else sim.refs["RSCD"]
    theirs = _jwst(RscdStep, path, tmp_path, override_rscd=str(ref))
    ours = apply_step("rscd", open_exposure(path, chunks={"y": 13, "x": 48}),
                      {"override_rscd": str(ref)}).compute()
    np.testing.assert_array_equal(ours["groupdq"].values, theirs.groupdq)
    np.testing.assert_array_equal(ours["pixeldq"].values, theirs.pixeldq)
    np.testing.assert_array_equal(ours["data"].values, theirs.data)
    assert ours.attrs["cal_step"]["rscd"] == theirs.meta.cal_step.rscd
    _assert_rscd_meta(ours, theirs)
    # the case exercises what it was made for: a back-off (FLUX_ESTIMATED), and flagging
    assert ((ours["pixeldq"].values & dqflags.FLUX_ESTIMATED) > 0).any() == flux
    if theirs.meta.cal_step.rscd == "COMPLETE" and (intstart or 1) > 1 or table:
        assert (ours["groupdq"].values & dqflags.DO_NOT_USE).any()
    theirs.close()


def test_reset_and_rscd_skip_for_near_ir(sim_nircam_sub640, tmp_path):
    """Both steps are MIRI's: a NIRCam exposure is SKIPPED, untouched, as jwst does."""
    from jwst.reset import ResetStep
    from jwst.rscd import RscdStep

    for step, step_class in (("reset", ResetStep), ("rscd", RscdStep)):
        theirs = _jwst(step_class, sim_nircam_sub640.uncal, tmp_path)
        ours = apply_step(step, open_exposure(sim_nircam_sub640.uncal), {}).compute()
        assert ours.attrs["cal_step"][step] == getattr(theirs.meta.cal_step, step) == "SKIPPED"
        np.testing.assert_array_equal(ours["groupdq"].values, theirs.groupdq)
        theirs.close()
