"""MIRI refpix equals jwst 3.0.0's RefPixStep (``MIRIDataset``) bit for bit, and is lazy
and independent of the chunking.

The input is the simulated MIRI full frame (FAST, 10 groups x 2 integrations) after
jwst's DQInitStep (the MASK flags the reference columns REFERENCE_PIXEL), with seeded
fractional values (as after linearity and dark) and, in the reference columns: outliers
(clipping), DO_NOT_USE pixels (excluded), group DQ flags (not read by jwst), and one
column whose even rows are constant after the first-read subtraction (jwst's float64
mean where the std is 0, mixed with a float32 mean). Variants of it -- NaN reference
pixel, an amplifier without usable reference pixels (jwst's state quirk), ZEROFRAME,
parameters, a subarray -- each go through ``RefPixStep.call`` on the same file.
"""

import numpy as np
import pytest
from jwst_oracle import crds_environment, offline_crds
from lazycheck import no_compute
from stepcheck import assert_float_equal, assert_ramp_matches, run_detflow_step

from detflow import dqflags
from detflow.io.exposure import open_exposure
from detflow.kernels import refpix as kernel
from detflow.pipeline.builder import apply_step

pytestmark = pytest.mark.jwst

DNU, SAT = dqflags.DO_NOT_USE, dqflags.SATURATED
NA = {"override_refpix": "N/A", "override_sirskernel": "N/A"}
NAME = "jw01234002001_01101_00001_mirimage_ramp.fits"


def _base_model(sim, crds):
    """The MIRI ramp after jwst's dq_init, made float and given the reference-pixel cases
    of the module docstring."""
    from jwst.dq_init import DQInitStep

    with crds_environment(offline_crds(crds)):
        model = DQInitStep.call(str(sim.uncal), override_mask=str(sim.refs["MASK"]))
    rng = np.random.default_rng(2026)
    data = model.data.astype(np.float64) * 1.0003 + rng.normal(0, 3, model.data.shape)
    data = data.astype(np.float32)
    nints, ngroups, ny, nx = data.shape
    # outliers in the reference columns, for the clipping
    for col in kernel.MIRI_REF_COLS:
        rows = rng.choice(ny, 6, replace=False)
        data[:, 1:, rows, col] += np.float32(500.0)
    # amplifier B's left column (1), even rows: constant after the first read is
    # subtracted (std 0: jwst's float64 mean), in every group, and far from the right
    # column's mean, so that their float64 average is not a float32 number
    offset = np.float32(1000.3333) + np.float32(3.7) * np.arange(ngroups, dtype=np.float32)
    offset[0] = 0
    data[:, :, 0::2, 1] = (np.float32(20000.0) + offset)[None, :, None]
    model.data = data
    # a few reference pixels DO_NOT_USE (pixel DQ), and group DQ on others (ignored)
    pdq = model.pixeldq
    for col in kernel.MIRI_REF_COLS:
        pdq[rng.choice(ny, 20, replace=False), col] |= DNU
    gdq = model.groupdq
    gdq[:, 2:, 100:140, 1028] |= DNU | SAT
    return model


@pytest.fixture(scope="module")
def miri(sim_miri, module_tmp):
    """``{variant: (path, jwst's RampModel)}`` (jwst run once per variant and module);
    ``variants[name]`` adds parameters."""
    from jwst.refpix import RefPixStep

    folder = module_tmp("refpix_miri")
    model = _base_model(sim_miri, folder / "crds")
    data, pdq = model.data.copy(), model.pixeldq.copy()
    out = {}

    def run(name, params=None):
        path = folder / name / NAME
        path.parent.mkdir()
        model.save(str(path))
        with crds_environment(offline_crds(folder / "crds")):
            out[name] = (path, RefPixStep.call(str(path), **NA, **(params or {})),
                         params or {})

    run("base")
    # MIRI's parameters changed, the near-IR ones ignored (jwst: "not applicable")
    run("rows_together", {"odd_even_rows": False, "siglimit": 2.0, "refpix_algorithm": "sirs",
                          "odd_even_columns": False, "use_side_ref_pixels": False,
                          "side_smoothing_length": 1})
    # a NaN reference pixel (amplifier C, right column, an odd row) in one group
    model.data[1, 4, 301, 1030] = np.nan
    run("nan")
    model.data = data.copy()
    # jwst's quirk: amplifier D's right column (1031) has no usable pixel in odd rows
    model.pixeldq[1::2, 1031] |= DNU
    run("quirk")
    model.pixeldq = pdq.copy()
    # a ZEROFRAME (zeros, an infinity), as jwst would carry it
    zf = data[:, 0] - np.float32(3.5)
    zf[:, 10:20, 30:40] = 0.0
    zf[0, 500, 500] = np.inf
    model.zeroframe = zf
    model.meta.exposure.zero_frame = True
    run("zeroframe")
    yield out
    for _, theirs, _ in out.values():
        theirs.close()
    model.close()


def _ours(path, params, chunks=None):
    return apply_step("refpix", open_exposure(path, chunks=chunks), {**NA, **params})


def _assert_equal_to_jwst(ours, theirs):
    np.testing.assert_array_equal(ours["pixeldq"].values, theirs.pixeldq, err_msg="pixeldq")
    np.testing.assert_array_equal(ours["groupdq"].values, theirs.groupdq, err_msg="groupdq")
    assert ours["data"].dtype == np.float32
    assert_float_equal(ours["data"].values, theirs.data, max_ulp=0)
    if theirs.meta.exposure.zero_frame:
        assert_float_equal(ours["zeroframe"].values, theirs.zeroframe, what="zeroframe")
    assert ours.attrs["cal_step"]["refpix"] == theirs.meta.cal_step.refpix


def _roundtrip(path):
    """What jwst leaves where it corrects nothing: float32(float32(x - x0) + x0)."""
    x = open_exposure(path)["data"].values.astype(np.float32)
    x0 = x[:, :1].astype(np.float64)
    return ((x.astype(np.float64) - x0).astype(np.float32) + x0).astype(np.float32)


@pytest.mark.parametrize("variant", [
    "base", "rows_together", "zeroframe",
    # the NaN makes the clipped mean of an empty selection: numpy warns, as in jwst
    pytest.param("nan", marks=pytest.mark.filterwarnings("ignore::RuntimeWarning")),
])
def test_miri_full_frame_matches_jwst(miri, variant):
    path, theirs, params = miri[variant]
    ours = _ours(path, params).compute()
    _assert_equal_to_jwst(ours, theirs)
    assert theirs.meta.cal_step.refpix == "COMPLETE"
    before = open_exposure(path)["data"].values
    changed = ours["data"].values[:, 1:] != before[:, 1:]
    assert changed.mean() > 0.5  # groups 1.. were corrected
    # group 0 is subtracted and added back: unchanged where finite
    np.testing.assert_array_equal(ours["data"].values[:, 0], before[:, 0])
    if variant == "nan":  # amplifier C, odd rows, integration 1, group 4: all NaN
        assert np.isnan(ours["data"].values[1, 4, 1::2, 2::4]).all()
        assert not np.isnan(ours["data"].values[1, 4, 0::2, 2::4]).any()
    if variant == "zeroframe":
        zf = ours["zeroframe"].values
        assert np.isnan(zf[0, 500, 500]) and (zf[:, 10:20, 30:40] == 0).all()


@pytest.mark.slow
def test_miri_refpix_in_jwsts_pipeline(jwst_steps):
    """jwst's own MIRI pipeline: refpix's input is dark_current's output (after
    linearity, RSCD, reset...); detflow gives jwst's saved refpix product bit for bit.
    (Slow alone: the jwst run is shared with the other MIRI step tests of a session.)"""
    sim, products = jwst_steps("sim_miri")
    ours = run_detflow_step("refpix", products["dark_current"], sim)
    assert_ramp_matches(ours, products["refpix"], max_ulp=0)
    assert ours.attrs["cal_step"]["refpix"] == "COMPLETE"


def test_miri_statistics_cover_jwsts_cases(miri):
    """The base input reaches jwst's float64 mean (std 0) for amplifier B's left column,
    even rows, mixed with a float32 mean on the right: the signal is float64 there and
    float32 elsewhere; DO_NOT_USE pixels change the means."""
    path, _, _ = miri["base"]
    ds = open_exposure(path)
    cols = list(kernel.MIRI_REF_COLS)
    data = ds["data"].values
    ref = kernel.subtract_first_read(data[0, 3][:, cols], data[0, 0][:, cols])
    dq = ds["pixeldq"].values[:, cols]
    left = kernel.sigma_clip_mean(ref[0::2, 1], dq[0::2, 1], 3.0, DNU)
    right = kernel.sigma_clip_mean(ref[0::2, 5], dq[0::2, 5], 3.0, DNU)
    assert left.dtype == np.float64 and right.dtype == np.float32
    other = kernel.sigma_clip_mean(ref[1::2, 1], dq[1::2, 1], 3.0, DNU)
    assert other.dtype == np.float32
    signals, missing = kernel.miri_group_signals(ref, dq, odd_even_rows=True, siglimit=3.0,
                                                 dnu=DNU)
    assert not missing and signals[1, 0] == 0.5 * (left + right)
    assert np.float32(signals[1, 0]) != signals[1, 0]  # a float32 signal would round
    everything = kernel.sigma_clip_mean(ref[1::2, 0], np.zeros(512, np.uint32), 3.0, DNU)
    assert everything != kernel.sigma_clip_mean(ref[1::2, 0], dq[1::2, 0], 3.0, DNU)


def test_miri_quirk_no_reference_pixels_matches_jwst(miri):
    """An amplifier whose right reference column has no usable pixel in odd rows: jwst
    raises ``bad_reference_pixels`` at integration 0, group 1, breaks, and never resets
    it, so no group of any integration is corrected, and says COMPLETE."""
    path, theirs, params = miri["quirk"]
    ours = _ours(path, params).compute()
    _assert_equal_to_jwst(ours, theirs)
    assert theirs.meta.cal_step.refpix == "COMPLETE"
    np.testing.assert_array_equal(ours["data"].values, _roundtrip(path))
    base = _ours(miri["base"][0], {}).compute()["data"].values
    assert (base[:, 1:] != ours["data"].values[:, 1:]).mean() > 0.5


def test_miri_corrected_groups_replays_jwsts_loop():
    """The sequential state: a group that lacks a mean stops its integration there, and
    every later integration at its first group; group 0 is never corrected."""
    missing = np.zeros((3, 5), bool)
    np.testing.assert_array_equal(kernel.miri_corrected_groups(missing),
                                  np.tile([False, True, True, True, True], (3, 1)))
    missing[1, 3] = True
    expected = np.array([[0, 1, 1, 1, 1], [0, 1, 1, 0, 0], [0, 0, 0, 0, 0]], bool)
    np.testing.assert_array_equal(kernel.miri_corrected_groups(missing), expected)
    missing[:] = True  # jwst's case: the pixel DQ decides, the same in every group
    assert not kernel.miri_corrected_groups(missing).any()
    assert not kernel.miri_corrected_groups(np.zeros((2, 1), bool)).any()


def test_miri_is_lazy_and_chunk_independent(miri):
    """Nothing computes while the graph is built; uneven row bands, column tiles, and
    split integrations and groups give the same bits."""
    path, theirs, _ = miri["base"]
    with no_compute():
        default = _ours(path, {})
        tiles = _ours(path, {}, chunks={"integration": 1, "group": 3, "y": 300, "x": 517})
        bands = _ours(path, {}, chunks={"y": 77, "x": -1})
    assert tiles["data"].chunks[2][:1] == (300,) and len(tiles["data"].chunks[3]) == 2
    assert default["data"].chunks == open_exposure(path)["data"].chunks
    a = default.compute()["data"].values
    np.testing.assert_array_equal(a, theirs.data)
    for other in (tiles, bands):
        np.testing.assert_array_equal(other.compute()["data"].values, a)


def test_miri_subarray_skipped_as_jwst(miri, tmp_path):
    """A MIRI subarray (smaller than 1024 x 1032): jwst skips refpix, data untouched."""
    from jwst.refpix import RefPixStep
    from stdatamodels.jwst import datamodels as dm

    path, _, _ = miri["base"]
    sub = tmp_path / NAME
    with dm.RampModel(str(path)) as model:
        model.data = model.data[:, :, 0:64, 0:72]
        model.groupdq = model.groupdq[:, :, 0:64, 0:72]
        model.pixeldq = model.pixeldq[0:64, 0:72]
        if model.hasattr("refout"):
            del model.refout
        model.meta.subarray.name = "SUB64"
        model.meta.subarray.xsize, model.meta.subarray.ysize = 72, 64
        model.save(str(sub))
    with crds_environment(offline_crds(tmp_path / "crds")):
        theirs = RefPixStep.call(str(sub), **NA)
    ours = _ours(sub, {}).compute()
    _assert_equal_to_jwst(ours, theirs)
    assert ours.attrs["cal_step"]["refpix"] == "SKIPPED"
    np.testing.assert_array_equal(ours["data"].values, open_exposure(sub)["data"].values)
    theirs.close()
