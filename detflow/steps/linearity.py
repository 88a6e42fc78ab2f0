"""linearity: correct the detector's non-linear response (jwst ``LinearityStep``).

* ``pixeldq |= linearity dq``; coefficients become benign ``[0, 1, 0, ...]`` for pixels
  flagged NO_LIN_CORR in the reference, with any NaN coefficient, or with a linear term
  of 0 (the last two also get NO_LIN_CORR in the pixel DQ);
* every group becomes ``sum_k c_k x**k`` (Horner, float32), except SATURATED groups;
* when the reference has INV_COEFFS, NFRAMES > 1 and the exposure has no explicit read
  times, stcal's read-level correction of frame-averaged groups runs instead, with jwst's
  read pattern ``[[g*nframes + 1 ... g*nframes + nframes]]`` (GROUPGAP ignored), and the
  INV_COEFFS clean-up adds its own NO_LIN_CORR flags;
* the ZEROFRAME (when ``ZEROFRAM`` is true) is corrected with the polynomial; its zeros
  stay zero.

jwst records SKIPPED when the LINEARITY reference is N/A.

Chunk contract: no halo; every group of a pixel in one chunk, any
spatial tiling and any integration split. The per-tile work is
:mod:`detflow.kernels.linearity` (stcal's code on the tile), run with
:func:`dask.array.blockwise`.
"""

import dask.array as da
import numpy as np

from detflow import dqflags
from detflow.kernels import linearity as kernel
from detflow.kernels.readout import read_pattern
from detflow.steps.base import (
    StepDef,
    as_float32,
    dask_array,
    has_zeroframe,
    rechunk_spatial_like,
    record,
)


def uses_read_level(ds, ref):
    """Whether jwst runs the read-level (INV_COEFFS) correction for this exposure."""
    read_times = ds.attrs.get("read_times")
    nframes = ds.attrs.get("nframes")
    return (
        "inv_coeffs" in ref
        and nframes is not None
        and int(nframes) > 1
        and not read_times
    )


def apply(ds, refs, params):
    """Lazy linearity correction (see the module docstring)."""
    out = as_float32(ds)
    ref = refs.get("linearity")
    if ref is None:
        return record(out, STEP, "SKIPPED", params, reason="no LINEARITY reference file")
    dims = ds["data"].dims
    data = dask_array(out["data"], dims)
    data = data.rechunk({1: -1})
    gdq = dask_array(ds["groupdq"], dims).rechunk(data.chunks)
    pdq = dask_array(ds["pixeldq"], ("y", "x")).rechunk(data.chunks[2:])
    coeffs = rechunk_spatial_like(dask_array(ref["coeffs"], ("coeff", "y", "x")), data)
    if "dq" in ref:
        lin_dq = dask_array(ref["dq"], ("y", "x")).astype(np.uint32).rechunk(data.chunks[2:])
    else:
        lin_dq = da.zeros(data.shape[2:], dtype=np.uint32, chunks=data.chunks[2:])
    read_level = uses_read_level(ds, ref)
    inv = None
    if read_level:  # INV_COEFFS may have another number of coefficients than COEFFS
        lead = [d for d in ref["inv_coeffs"].dims if d not in ("y", "x")]
        inv = rechunk_spatial_like(dask_array(ref["inv_coeffs"], (*lead, "y", "x")), data)
    pattern = None
    if read_level:
        ngroups = int(ds.attrs.get("ngroups") or ds.sizes["group"])
        pattern = read_pattern(ngroups=ngroups, nframes=int(ds.attrs["nframes"]))
    bits = {"saturated": dqflags.SATURATED, "no_lin_corr": dqflags.NO_LIN_CORR}

    args = [data, "igyx", gdq, "igyx", lin_dq, "yx", coeffs, "cyx"]
    if read_level:
        args += [inv, "kyx"]
    new_data = da.blockwise(
        _ramp_block, "igyx", *args, dtype=np.float32, concatenate=True,
        meta=np.empty((0, 0, 0, 0), dtype=np.float32), read_pattern=pattern, **bits,
    )
    pd_args = [pdq, "yx", lin_dq, "yx", coeffs, "cyx"]
    if read_level:
        pd_args += [inv, "kyx"]
    new_pdq = da.blockwise(
        _pixeldq_block, "yx", *pd_args, dtype=np.uint32, concatenate=True,
        meta=np.empty((0, 0), dtype=np.uint32), no_lin_corr=dqflags.NO_LIN_CORR,
    )
    out["data"] = out["data"].transpose(*dims).copy(data=new_data).transpose(*ds["data"].dims)
    out["pixeldq"] = ds["pixeldq"].transpose("y", "x").copy(data=new_pdq).transpose(
        *ds["pixeldq"].dims)
    if has_zeroframe(out):
        zdims = ("integration", "y", "x")
        zf = dask_array(out["zeroframe"], zdims)
        zf = zf.rechunk({1: data.chunks[2], 2: data.chunks[3]})
        new_zf = da.blockwise(
            kernel.linearity_zeroframe, "iyx", zf, "iyx", lin_dq, "yx", coeffs, "cyx",
            dtype=np.float32, concatenate=True, meta=np.empty((0, 0, 0), dtype=np.float32),
            **bits,
        )
        out["zeroframe"] = out["zeroframe"].transpose(*zdims).copy(data=new_zf).transpose(
            *ds["zeroframe"].dims)
    return record(out, STEP, "COMPLETE", params, read_level=bool(read_level))


def _ramp_block(data, gdq, lin_dq, coeffs, inv=None, *, read_pattern, saturated, no_lin_corr):
    return kernel.linearity_ramp(data, gdq, lin_dq, coeffs, inv, read_pattern,
                                 saturated=saturated, no_lin_corr=no_lin_corr)


def _pixeldq_block(pdq, lin_dq, coeffs, inv=None, *, no_lin_corr):
    return kernel.linearity_pixeldq(pdq, lin_dq, coeffs, inv, no_lin_corr=no_lin_corr)


STEP = StepDef(
    __name__,
    reference_pixels="pointwise",
    params={},
    apply=apply,
)
