"""MIRI's firstframe and lastframe equal jwst 3.0.0's FirstFrameStep and LastFrameStep,
and are lazy and chunk-independent."""

import numpy as np
import pytest
from jwst_oracle import crds_environment, offline_crds
from lazycheck import no_compute

from detflow import dqflags
from detflow.io.exposure import open_exposure
from detflow.pipeline.builder import apply_step

pytestmark = pytest.mark.jwst


@pytest.fixture(scope="module")
def miri_ramp(jwst_steps, tmp_path_factory):
    """jwst's MIRI ramp after saturation, with SATURATED set at group 3 (index 2) in some
    pixels of one or both integrations, and DO_NOT_USE in some pixels' DQ: the cases of
    ``bright_use_group1``. Returns ``(path, ngroups)``."""
    from stdatamodels.jwst import datamodels as dm

    _, products = jwst_steps("sim_miri")
    path = tmp_path_factory.mktemp("frames") / "jw01234001001_01101_00001_mirimage_ramp.fits"
    rng = np.random.default_rng(7)
    with dm.RampModel(str(products["saturation"])) as model:
        nints, ngroups, ny, nx = model.groupdq.shape
        assert nints >= 2 and ngroups > 3
        sat = rng.random((nints, ny, nx)) < 0.02
        sat[1] &= rng.random((ny, nx)) < 0.5  # some pixels saturate in one integration only
        model.groupdq[:, 2][sat] |= dqflags.SATURATED
        model.groupdq[:, 0][rng.random((nints, ny, nx)) < 0.01] |= dqflags.JUMP_DET
        model.pixeldq[rng.random((ny, nx)) < 0.01] |= dqflags.DO_NOT_USE
        model.save(str(path))
    return path, ngroups


def _jwst(step_class, path, tmp_path, **params):
    with crds_environment(offline_crds(tmp_path / "crds")):
        return step_class.call(str(path), **params)


def _assert_same(ours, theirs, step):
    np.testing.assert_array_equal(ours["groupdq"].values, theirs.groupdq, err_msg="groupdq")
    np.testing.assert_array_equal(ours["pixeldq"].values, theirs.pixeldq, err_msg="pixeldq")
    np.testing.assert_array_equal(ours["data"].values, theirs.data, err_msg="data")
    assert ours.attrs["cal_step"][step] == getattr(theirs.meta.cal_step, step)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("bright_use_group1", [True, False])
def test_firstframe_matches_jwst(miri_ramp, tmp_path, bright_use_group1):
    from jwst.firstframe import FirstFrameStep

    path, _ = miri_ramp
    theirs = _jwst(FirstFrameStep, path, tmp_path, skip=False,
                   bright_use_group1=bright_use_group1)
    ours = apply_step("firstframe", open_exposure(path),
                      {"skip": False, "bright_use_group1": bright_use_group1}).compute()
    _assert_same(ours, theirs, "firstframe")
    assert theirs.meta.cal_step.firstframe == "COMPLETE"
    before = open_exposure(path)
    flux = (ours["pixeldq"].values & dqflags.FLUX_ESTIMATED) > 0
    kept = (before["groupdq"].values[:, 2] & dqflags.SATURATED) > 0
    # the cases the ramp was made for are exercised
    assert flux.any() == bright_use_group1 and kept.any()
    theirs.close()


def test_lastframe_matches_jwst(miri_ramp, tmp_path):
    from jwst.lastframe import LastFrameStep

    path, _ = miri_ramp
    theirs = _jwst(LastFrameStep, path, tmp_path)
    ours = apply_step("lastframe", open_exposure(path), {}).compute()
    _assert_same(ours, theirs, "lastframe")
    assert theirs.meta.cal_step.lastframe == "COMPLETE"
    assert (ours["groupdq"].values[:, -1] & dqflags.DO_NOT_USE).all()
    theirs.close()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("step, ngroups", [("firstframe", 3), ("lastframe", 2)])
def test_too_few_groups_skip_as_jwst(miri_ramp, tmp_path, step, ngroups):
    """firstframe needs more than 3 groups, lastframe more than 2: else SKIPPED."""
    from jwst.firstframe import FirstFrameStep
    from jwst.lastframe import LastFrameStep
    from stdatamodels.jwst import datamodels as dm

    path, _ = miri_ramp
    short = tmp_path / path.name
    with dm.RampModel(str(path)) as model:
        model.data = model.data[:, :ngroups]
        model.groupdq = model.groupdq[:, :ngroups]
        if model.hasattr("refout"):
            model.refout = model.refout[:, :ngroups]
        model.meta.exposure.ngroups = ngroups
        model.save(str(short))
    step_class = {"firstframe": FirstFrameStep, "lastframe": LastFrameStep}[step]
    theirs = _jwst(step_class, short, tmp_path, skip=False)
    ours = apply_step(step, open_exposure(short), {"skip": False}).compute()
    _assert_same(ours, theirs, step)
    assert ours.attrs["cal_step"][step] == "SKIPPED"
    theirs.close()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("step", ["firstframe", "lastframe"])
def test_not_miri_skips_as_jwst(sim_nircam_sub640, tmp_path, step):
    """jwst skips both steps for a detector not named MIR*."""
    from jwst.firstframe import FirstFrameStep
    from jwst.lastframe import LastFrameStep

    step_class = {"firstframe": FirstFrameStep, "lastframe": LastFrameStep}[step]
    theirs = _jwst(step_class, sim_nircam_sub640.uncal, tmp_path, skip=False)
    ours = apply_step(step, open_exposure(sim_nircam_sub640.uncal), {"skip": False}).compute()
    assert ours.attrs["cal_step"][step] == getattr(theirs.meta.cal_step, step) == "SKIPPED"
    np.testing.assert_array_equal(ours["groupdq"].values, theirs.groupdq)
    theirs.close()


@pytest.mark.parametrize("step", ["firstframe", "lastframe"])
def test_frames_are_lazy_and_chunk_independent(miri_ramp, step):
    path, _ = miri_ramp
    params = {"skip": False}
    with no_compute():
        lazy = apply_step(step, open_exposure(path), params)
    a = lazy.compute()
    b = apply_step(step, open_exposure(path, chunks={"y": 100, "x": 77}), params).compute()
    for name in ("groupdq", "pixeldq", "data"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    assert lazy["groupdq"].chunks == open_exposure(path)["groupdq"].chunks
