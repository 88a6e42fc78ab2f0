"""ipc equals jwst 3.0.0's IPCStep bit for bit -- one 3 x 3 (or 5 x 5) kernel and per-pixel
(4-D) kernels, reference pixels on every side, NIRCam and MIRI -- whatever the chunking,
and is lazy."""

import numpy as np
import pytest
from lazycheck import no_compute
from stepcheck import assert_ramp_matches, run_detflow_step, step_input

from detflow.io.exposure import open_exposure
from detflow.kernels.ipc import ipc_convolve_tile, science_ranges
from detflow.pipeline.builder import apply_step

# --------------------------------------------------------------------------- the kernel


@pytest.mark.parametrize("kshape", [(3, 3), (5, 5), (3, 5), (2, 2), (4, 4), (1, 1)])
@pytest.mark.parametrize("per_pixel", [False, True])
def test_kernel_equals_jwst_ipc_convolve(kshape, per_pixel):
    """The tile kernel against jwst's own function, any kernel shape (even ones too, where
    jwst's middle term has its own offset), reference pixels on any side."""
    from jwst.ipc.ipc_corr import NumRefPixels, ipc_convolve

    rng = np.random.default_rng(sum(kshape) + per_pixel)
    for _ in range(4):
        ny, nx = (int(v) for v in rng.integers(8, 30, 2))
        nref = NumRefPixels(*(int(v) for v in rng.integers(0, 5, 4)))
        data = rng.normal(1.2e4, 3e3, (ny, nx)).astype(np.float32)
        data[rng.random((ny, nx)) < 0.02] = np.nan
        k = rng.normal(0, 0.01, kshape).astype(np.float32)
        k[kshape[0] // 2, kshape[1] // 2] = 1.02
        if per_pixel:
            k = (k[:, :, None, None] + rng.normal(0, 1e-3, kshape + (ny, nx))).astype(np.float32)
        theirs = data.copy()
        ipc_convolve(theirs, k, nref)
        hy, hx = kshape[0] // 2, kshape[1] // 2
        pad = np.zeros((ny + 2 * hy, nx + 2 * hx), np.float32)
        pad[hy:hy + ny, hx:hx + nx] = data
        rows = np.zeros(ny + 2 * hy, bool)
        rows[hy + nref.bottom_rows: hy + ny - nref.top_rows] = True
        cols = np.zeros(nx + 2 * hx, bool)
        cols[hx + nref.left_columns: hx + nx - nref.right_columns] = True
        before = pad.copy()
        ours = ipc_convolve_tile(pad, k, rows, cols, (hy, hx))
        np.testing.assert_array_equal(pad, before)
        assert ours.dtype == np.float32
        np.testing.assert_array_equal(ours.view(np.uint32), theirs.view(np.uint32))


def test_science_ranges_are_jwst_reference_pixel_counts():
    from types import SimpleNamespace

    from jwst.ipc.ipc_corr import get_num_ref_pixels

    for instrument, full in (("NIRCAM", (2048, 2048)), ("MIRI", (1024, 1032))):
        for ystart, ysize, xstart, xsize in ((0, full[0], 0, full[1]), (0, 160, 0, 160),
                                             (2000, 48, 1990, 42), (1, 64, 3, 2045),
                                             (10, 20, 999, 33)):
            if ystart + ysize > full[0] or xstart + xsize > full[1]:
                continue
            model = SimpleNamespace(meta=SimpleNamespace(
                instrument=SimpleNamespace(name=instrument),
                subarray=SimpleNamespace(xstart=xstart + 1, ystart=ystart + 1, xsize=xsize,
                                         ysize=ysize)))
            n = get_num_ref_pixels(model)
            (y0, y1), (x0, x1) = science_ranges(instrument, ystart, ysize, xstart, xsize)
            assert (y0 - ystart, ystart + ysize - y1) == (n.bottom_rows, n.top_rows)
            assert (x0 - xstart, xstart + xsize - x1) == (n.left_columns, n.right_columns)


# --------------------------------------------------------------------------- jwst products


@pytest.mark.jwst
@pytest.mark.parametrize("which", ["sim_nircam_sub640", "sim_nircam_tso", "sim_nircam_bright2"])
def test_ipc_matches_jwst(which, jwst_steps):
    sim, products = jwst_steps(which)
    ours = run_detflow_step("ipc", step_input(products, "ipc"), sim)
    assert_ramp_matches(ours, products["ipc"], max_ulp=0)
    assert ours.attrs["cal_step"]["ipc"] == "COMPLETE"
    uneven = apply_step("ipc", open_exposure(step_input(products, "ipc"),
                                             chunks={"y": 100, "x": 77}),
                        {"override_ipc": str(sim.refs["IPC"])}).compute()
    assert_ramp_matches(uneven, products["ipc"], max_ulp=0)


# --------------------------------------------------------------------------- own cases


def _write_ipc(path, data, instrument="NIRCAM", detector="NRCA1"):
    from stdatamodels.jwst import datamodels as dm

    model = dm.IPCModel(data=np.asarray(data, dtype=np.float32))
    meta = model.meta
    meta.reftype = "IPC"
    meta.instrument.name = instrument
    meta.instrument.detector = detector
    meta.author = "detflow tests"
    meta.pedigree = "DUMMY"
    meta.description = "test IPC kernel"
    meta.useafter = "2022-01-01T00:00:00"
    meta.telescope = "JWST"
    model.save(str(path))
    model.close()
    return path


def _kernel(alpha=0.006, size=3):
    k = np.zeros((size, size), np.float32)
    c = size // 2
    k[c, c] = 1 + 4 * alpha
    k[c - 1, c] = k[c + 1, c] = k[c, c - 1] = k[c, c + 1] = -alpha
    if size == 5:
        k[0, :] = k[-1, :] = k[:, 0] = k[:, -1] = -1e-4
    return k


@pytest.fixture(scope="module")
def ipc_refs(module_tmp):
    """A 3 x 3 and a 5 x 5 kernel, and per-pixel kernels (3, 3, 2048, 2048) for NIRCam
    NRCA1; a 3 x 3 and per-pixel kernels (3, 3, 1024, 1032) for MIRI."""
    out = module_tmp("ipc_refs")
    rng = np.random.default_rng(7)
    refs = {
        "nrc3": _write_ipc(out / "ipc_nrc_3x3.fits", _kernel()),
        "nrc5": _write_ipc(out / "ipc_nrc_5x5.fits", _kernel(size=5)),
        "mir3": _write_ipc(out / "ipc_mir_3x3.fits", _kernel(0.01), "MIRI", "MIRIMAGE"),
    }
    for name, shape, inst, det in (("nrc4d", (2048, 2048), "NIRCAM", "NRCA1"),
                                   ("mir4d", (1024, 1032), "MIRI", "MIRIMAGE")):
        per = rng.standard_normal((3, 3) + shape, dtype=np.float32)
        per *= np.float32(2e-4)
        per += _kernel()[:, :, None, None]
        refs[name] = _write_ipc(out / f"ipc_{name}.fits", per, inst, det)
        del per
    return refs


@pytest.fixture(scope="module")
def sim_nircam_sub160(module_tmp):
    from detflow.simulator import simulate

    return simulate("nircam", module_tmp("nircam_sub160"), subarray="SUB160",
                    ngroups=4, nints=1)


def _jwst_ipc(crds_env, inp, outdir, ipc):
    from jwst.ipc import IPCStep
    from jwst_oracle import crds_environment

    with crds_environment(crds_env):
        result = IPCStep.call(str(inp), override_ipc=str(ipc))
    path = outdir / f"jwst_ipc_{inp.stem}_{ipc.stem if hasattr(ipc, 'stem') else ipc}.fits"
    status = result.meta.cal_step.ipc
    result.save(str(path))
    result.close()
    return path, status


CHUNKS = [None, {"y": 100, "x": 77}, {"y": (1, 2, 5, 1, 1), "x": (1, 1, 1, 7, 4, 1)}]


def _fit(chunks, ny, nx):
    """Shrink/stretch an explicit chunk tuple to a size (tests with tiny exposures)."""
    if chunks is None or not isinstance(chunks.get("y"), tuple):
        return chunks
    out = {}
    for dim, n in (("y", ny), ("x", nx)):
        c = list(chunks[dim])
        c[-1] += n - sum(c)
        out[dim] = tuple(c)
    return out


@pytest.mark.jwst
@pytest.mark.parametrize("kernel", ["nrc3", "nrc5", "nrc4d"])
@pytest.mark.parametrize("where", ["sub160", "top_right"])
def test_ipc_kernels_and_edges_match_jwst(kernel, where, ipc_refs, sim_nircam_sub160,
                                          make_uncal, crds_offline, tmp_path):
    """SUB160 at the (1, 1) corner (bottom and left reference pixels) and a small
    exposure at the top-right corner of the frame (top and right reference pixels), with
    one 3 x 3 kernel, one 5 x 5 kernel (halo 2) and per-pixel kernels (cut to the
    exposure by coordinate, as jwst's ``get_ipc_slice``)."""
    if where == "sub160":
        inp = sim_nircam_sub160.uncal
    else:
        inp, _ = make_uncal(shape=(2, 3, 32, 46), substrt=(2003, 2017), subarray="SUB160",
                            noutputs=1)
    from pathlib import Path

    inp = Path(inp)
    theirs, status = _jwst_ipc(crds_offline, inp, tmp_path, ipc_refs[kernel])
    assert status == "COMPLETE"
    ds = open_exposure(inp)
    for chunks in CHUNKS:
        ours = apply_step("ipc", open_exposure(inp, chunks=_fit(chunks, ds.sizes["y"],
                                                                 ds.sizes["x"])),
                          {"override_ipc": str(ipc_refs[kernel])}).compute()
        assert_ramp_matches(ours, theirs, max_ulp=0)
        assert ours.attrs["cal_step"]["ipc"] == "COMPLETE"


@pytest.mark.jwst
@pytest.mark.parametrize("kernel", ["mir3", "mir4d"])
@pytest.mark.parametrize("substrt", [(1, 5), (1000, 990)])
def test_ipc_miri_matches_jwst(kernel, substrt, ipc_refs, make_uncal, crds_offline, tmp_path):
    """MIRI: reference columns 0-3 and 1028-1031, no reference rows."""
    from pathlib import Path

    inp, _ = make_uncal(instrument="MIRI", detector="MIRIMAGE", shape=(1, 3, 30, 33),
                        substrt=substrt, subarray="SUB128", noutputs=1, readpatt="FAST")
    inp = Path(inp)
    theirs, status = _jwst_ipc(crds_offline, inp, tmp_path, ipc_refs[kernel])
    assert status == "COMPLETE"
    for chunks in CHUNKS:
        ours = apply_step("ipc", open_exposure(inp, chunks=_fit(chunks, 30, 33)),
                          {"override_ipc": str(ipc_refs[kernel])}).compute()
        assert_ramp_matches(ours, theirs, max_ulp=0)


@pytest.mark.jwst
def test_ipc_skipped_without_reference(sim_nircam_sub160, crds_offline):
    from jwst.ipc import IPCStep
    from jwst_oracle import crds_environment

    with crds_environment(crds_offline):
        result = IPCStep.call(str(sim_nircam_sub160.uncal), override_ipc="N/A")
        assert result.meta.cal_step.ipc == "SKIPPED"
        result.close()
    ds = open_exposure(sim_nircam_sub160.uncal)
    ours = apply_step("ipc", ds, {"override_ipc": "N/A"})
    assert ours.attrs["cal_step"]["ipc"] == "SKIPPED"
    np.testing.assert_array_equal(ours["data"].values, ds["data"].values.astype(np.float32))


# --------------------------------------------------------------------------- laziness


@pytest.mark.parametrize("kernel", ["nrc3", "nrc5", "nrc4d"])
def test_ipc_is_lazy_and_chunk_independent(kernel, sim_nircam_sub160, ipc_refs):
    inp = sim_nircam_sub160.uncal
    overrides = {"override_ipc": str(ipc_refs[kernel])}
    odd = {"y": (1, 1, 2, 150, 1, 5), "x": (1, 3, 1, 77, 78)}
    with no_compute():
        lazy = apply_step("ipc", open_exposure(inp), overrides)
        small = apply_step("ipc", open_exposure(inp, chunks={"y": 100, "x": 77}), overrides)
        tiny = apply_step("ipc", open_exposure(inp, chunks=odd), overrides)
    assert tiny["data"].chunks == open_exposure(inp, chunks=odd)["data"].chunks
    a, b, c = (d["data"].values for d in (lazy, small, tiny))
    assert not np.array_equal(a, open_exposure(inp)["data"].values)
    np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))
    np.testing.assert_array_equal(a.view(np.uint32), c.view(np.uint32))
