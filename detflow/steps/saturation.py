"""saturation: saturation, A/D-floor and charge-spill flags (jwst ``SaturationStep``).

Chunk contract: all groups of a pixel in one chunk (the forward pass carries the
saturation to later groups); any integration and spatial chunking. Saturated pixels
flag their neighbours, so a tile takes a halo of
:func:`~detflow.kernels.saturation.saturation_halo` pixels (``n_pix_grow_sat``, twice
that when frame-averaged groups run jwst's backward pass) with
:func:`~detflow.steps.halo.map_halo`; the outer edge of the exposure gets no halo
(``boundary="none"``), so flags stop there as in jwst. Tiles smaller than the halo are
rechunked up for the overlap and back afterwards. The pixel DQ is blockwise; the
ZEROFRAME takes a halo of ``n_pix_grow_sat``.
"""

import dask.array as da
import numpy as np
import xarray as xr

from detflow import dqflags
from detflow.contract import DIMS
from detflow.kernels import saturation as kern
from detflow.kernels.readout import read_pattern
from detflow.steps.base import (
    Param,
    StepDef,
    as_float32,
    dask_array,
    has_zeroframe,
    record,
    skipped,
)
from detflow.steps.halo import map_halo

#: The DQ bits the kernels need, passed to them explicitly.
FLAGS = {name: dqflags.PIXEL[name] for name in ("DO_NOT_USE", "SATURATED", "AD_FLOOR",
                                                "NO_SAT_CHECK")}



def _groups_block(data, gdq, thresh, sat_dq, bias=None, **kwargs):
    return kern.flag_saturation_groups(data, gdq, thresh, sat_dq, bias, **kwargs)


def apply(ds, refs, params):
    """Lazy saturation flagging.

    ``refs["saturation"]`` (``sci``, ``dq``, each ``(y, x)``) is required -- None (N/A)
    skips the step, as jwst does; ``refs["superbias"]`` (``sci (y, x)``) is optional and
    feeds the group-2 check of frame-averaged data (0 when N/A).

    Returns the Dataset with ``groupdq`` ``(nints, ngroups, ny, nx)``, ``pixeldq``
    ``(ny, nx)`` and ``zeroframe`` ``(nints, ny, nx)`` (when ZEROFRAM is true) updated.
    """
    sat = refs.get("saturation")
    if sat is None:
        return skipped(as_float32(ds), STEP, "no SATURATION reference file (N/A)")
    if ds.sizes["x"] > 2048 and not str(ds.attrs.get("instrument", "")).upper() == "MIRI":
        raise NotImplementedError("saturation for NIRSpec IRS2 data is not implemented")
    out = as_float32(ds)
    n = int(params["n_pix_grow_sat"])
    nframes = int(ds.attrs.get("nframes") or 1)
    ngroups = int(ds.attrs.get("ngroups") or ds.sizes["group"])
    pattern = read_pattern(ngroups=ngroups, nframes=nframes) if params["use_readpatt"] else None
    halo = kern.saturation_halo(n, nframes, params["use_readpatt"])

    data_xr = out["data"].transpose(*DIMS)
    data = dask_array(data_xr).rechunk({1: -1})
    chunks = data.chunks
    ychunks, xchunks = chunks[2], chunks[3]
    gdq = dask_array(out["groupdq"].transpose(*DIMS), chunks=chunks)
    yx = (ychunks, xchunks)
    thresh = dask_array(sat["sci"], ("y", "x"), chunks=yx).astype(np.float32)
    if "dq" in sat:
        sat_dq = dask_array(sat["dq"], ("y", "x"), chunks=yx).astype(np.uint32)
    else:
        sat_dq = da.zeros(thresh.shape, dtype=np.uint32, chunks=(ychunks, xchunks))
    bias_ref = refs.get("superbias")
    arrays = [data, gdq, thresh, sat_dq]
    if bias_ref is not None:
        arrays.append(
            dask_array(bias_ref["sci"], ("y", "x"), chunks=yx).astype(np.float32))
    new_gdq = map_halo(
        _groups_block, *arrays, halo=halo, boundary="none", trim=True,
        dtype=np.uint8, meta=np.empty((0, 0, 0, 0), dtype=np.uint8),
        n_pix_grow_sat=n, read_pattern=pattern, dqflags=FLAGS, atod_limit=kern.ATOD_LIMIT,
    )
    out["groupdq"] = xr.DataArray(
        new_gdq, dims=DIMS, coords=data_xr.coords
    ).transpose(*out["groupdq"].dims)

    pdq_xr = out["pixeldq"].transpose("y", "x")
    pdq = da.map_blocks(
        kern.saturation_pixeldq, dask_array(pdq_xr, chunks=(ychunks, xchunks)), thresh, sat_dq,
        no_sat_check=FLAGS["NO_SAT_CHECK"], dtype=np.uint32,
        meta=np.empty((0, 0), dtype=np.uint32),
    )
    out["pixeldq"] = pdq_xr.copy(data=pdq).transpose(*out["pixeldq"].dims)

    if has_zeroframe(out):
        zf_xr = out["zeroframe"].transpose("integration", "y", "x")
        zint = zf_xr.data.chunks[0] if isinstance(zf_xr.data, da.Array) else -1
        zf = dask_array(zf_xr, chunks=(zint, ychunks, xchunks))
        zn = max(n, 0)
        new_zf = map_halo(
            kern.saturation_zeroframe, zf, thresh, sat_dq, halo=zn, boundary="none",
            trim=True, dtype=np.float32, meta=np.empty((0, 0, 0), dtype=np.float32),
            n_pix_grow_sat=n, no_sat_check=FLAGS["NO_SAT_CHECK"], atod_limit=kern.ATOD_LIMIT,
        )
        out["zeroframe"] = zf_xr.copy(data=new_zf).transpose(
            *out["zeroframe"].dims)
    return record(out, STEP, "COMPLETE", params)


STEP = StepDef(
    __name__,
    params={
        "n_pix_grow_sat": Param("integer", 1, "number of layers adjacent pixels to flag"),
        "use_readpatt": Param("boolean", True,
                              "Use grouped read pattern information to assist with flagging"),
    },
    reference_pixels="pointwise",
    apply=apply,
    halo=2,
)
