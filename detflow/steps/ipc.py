"""ipc: inter-pixel capacitance deconvolution with the IPC reference kernel (jwst ``IPCStep``).

Chunk contract: every group of every integration is convolved on its own; a tile needs
``ky // 2`` rows and ``kx // 2`` columns of neighbours (one pixel for the usual 3 x 3
kernel), taken with :func:`dask.array.overlap.overlap`; beyond the exposure the halo is
zero, as jwst pads the science region with zeros. Reference pixels (jwst's
``get_num_ref_pixels``, from the full-frame coordinates) are neither changed nor used.
Any chunking, including tiles smaller than the halo (rechunked up for the overlap, then
back), gives the same bits.
"""

import dask.array as da
import numpy as np
from dask.array.overlap import ensure_minimum_chunksize, overlap

from detflow.contract import DIMS
from detflow.kernels.ipc import ipc_convolve_tile, ipc_halo, science_ranges
from detflow.steps.base import StepDef, as_float32, record, skipped


def _block(data, rows, cols, kernel, *, halo):
    """One haloed tile: a per-pixel kernel arrives with the halo too; keep its core."""
    if kernel.ndim == 4:
        hy, hx = halo
        kernel = kernel[:, :, hy: kernel.shape[2] - hy, hx: kernel.shape[3] - hx]
    return ipc_convolve_tile(data, kernel, rows, cols, halo)


def apply(ds, refs, params):
    """Lazy IPC correction of ``data`` ``(nints, ngroups, ny, nx)``.

    ``refs["ipc"]`` holds ``sci`` with dims ``(ky, kx)`` (one kernel) or
    ``(ky, kx, y, x)`` (per-pixel kernels, already cut to the exposure); ``None`` (N/A)
    skips the step, as jwst does.
    """
    ref = refs.get("ipc")
    if ref is None:
        return skipped(as_float32(ds), STEP, "no IPC reference file (N/A)")
    out = as_float32(ds)
    data_xr = out["data"].transpose(*DIMS)
    data = data_xr.data
    if not isinstance(data, da.Array):
        data = da.from_array(data, chunks=(1, -1, -1, -1))
    kern_xr = ref["sci"]
    per_pixel = kern_xr.ndim == 4
    kern_xr = kern_xr.transpose("ky", "kx", "y", "x") if per_pixel else kern_xr.transpose(
        "ky", "kx")
    hy, hx = ipc_halo(kern_xr.shape)

    y = np.asarray(out["y"].values)
    x = np.asarray(out["x"].values)
    (y0, y1), (x0, x1) = science_ranges(
        out.attrs.get("instrument", ""), int(y[0]), len(y), int(x[0]), len(x))
    yc = ensure_minimum_chunksize(max(hy, 1), data.chunks[2])
    xc = ensure_minimum_chunksize(max(hx, 1), data.chunks[3])
    data = data.rechunk({2: yc, 3: xc})
    rows = da.from_array((y >= y0) & (y < y1), chunks=(yc,))
    cols = da.from_array((x >= x0) & (x < x1), chunks=(xc,))

    data_o = overlap(data, depth={0: 0, 1: 0, 2: hy, 3: hx}, boundary=0, allow_rechunk=False)
    rows_o = overlap(rows, depth={0: hy}, boundary=0, allow_rechunk=False)
    cols_o = overlap(cols, depth={0: hx}, boundary=0, allow_rechunk=False)
    kern = da.asarray(kern_xr.data).astype(np.float32)
    if per_pixel:
        kern = kern.rechunk({0: -1, 1: -1, 2: yc, 3: xc})
        kern = overlap(kern, depth={0: 0, 1: 0, 2: hy, 3: hx}, boundary=0, allow_rechunk=False)
        kern_ind = "abyx"
    else:
        kern = kern.rechunk(-1)
        kern_ind = "ab"
    result = da.blockwise(
        _block, "igyx",
        data_o, "igyx", rows_o, "y", cols_o, "x", kern, kern_ind,
        concatenate=True, adjust_chunks={"y": yc, "x": xc},
        dtype=np.float32, meta=np.empty((0, 0, 0, 0), dtype=np.float32),
        halo=(hy, hx),
    )
    result = result.rechunk(data_xr.data.chunks if isinstance(data_xr.data, da.Array)
                            else result.chunks)
    out["data"] = data_xr.copy(data=result).transpose(*out["data"].dims)
    return record(out, STEP, "COMPLETE", params)


STEP = StepDef(
    name="ipc",
    class_name="IPCStep",
    cal_step="ipc",
    reftypes=("ipc",),
    params={},
    apply=apply,
    optional_refs=("ipc",),
    halo=1,
)
