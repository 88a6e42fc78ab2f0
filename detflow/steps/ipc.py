"""ipc: inter-pixel capacitance deconvolution with the IPC reference kernel (jwst ``IPCStep``).

Chunk contract: every group of every integration is convolved on its own; a tile needs
``ky // 2`` rows and ``kx // 2`` columns of neighbours (one pixel for the usual 3 x 3
kernel), taken with :func:`~detflow.steps.halo.map_halo`; beyond the exposure the halo is
zero, as jwst pads the science region with zeros. Reference pixels (jwst's
``get_num_ref_pixels``, from the full-frame coordinates) are neither changed nor used.
Any chunking, including tiles smaller than the halo (rechunked up for the overlap, then
back), gives the same bits.
"""

import dask.array as da
import numpy as np

from detflow.contract import DIMS
from detflow.kernels.ipc import ipc_convolve_tile, ipc_halo, science_ranges
from detflow.steps.base import StepDef, as_float32, record, skipped
from detflow.steps.halo import map_halo


def _block(data, science, kernel, *, halo_arg):
    """One haloed tile and its science-pixel mask; a per-pixel kernel arrives with the
    halo too (keep its core), a single kernel whole."""
    if kernel.ndim == 4:
        hy, hx = halo_arg
        kernel = kernel[:, :, hy: kernel.shape[2] - hy, hx: kernel.shape[3] - hx]
    # the mask is rows x columns: its rows and columns are those of the outer product
    rows, cols = science.any(axis=1), science.any(axis=0)
    return ipc_convolve_tile(data, kernel, rows, cols, halo_arg)


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
    yc, xc = data.chunks[2], data.chunks[3]
    rows = da.from_array((y >= y0) & (y < y1), chunks=(yc,))
    cols = da.from_array((x >= x0) & (x < x1), chunks=(xc,))
    science = rows[:, None] & cols[None, :]
    kern = da.asarray(kern_xr.data).astype(np.float32)
    meta = np.empty((0, 0, 0, 0), dtype=np.float32)
    if per_pixel:
        kern = kern.rechunk({0: -1, 1: -1, 2: yc, 3: xc})
        result = map_halo(_block, data, science, kern, halo=(hy, hx), boundary=0,
                          dtype=np.float32, meta=meta, halo_arg=(hy, hx))
    else:
        result = map_halo(_block, data, science, halo=(hy, hx), boundary=0, extras=(kern,),
                          dtype=np.float32, meta=meta, halo_arg=(hy, hx))
    out["data"] = data_xr.copy(data=result).transpose(*out["data"].dims)
    return record(out, STEP, "COMPLETE", params)


STEP = StepDef(
    __name__,
    params={},
    reference_pixels="unchanged",
    apply=apply,
    halo=1,
)
