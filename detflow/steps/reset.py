"""reset: subtract the RESET reference ramp (jwst ``ResetStep``, MIRI).

jwst 3.0.0 (``reset_sub.do_correction``):

* SKIPPED for a detector whose name does not start with ``MIR``, and for a RESET of N/A.
* The RESET reference (``ResetModel``: float32 ``(nints_ref, ngroups_ref, ny, nx)``, 2-D
  DQ) is never cut to a subarray: it has the science region's shape (the pipeline layer
  opens it with the exposure's exact region). NaN in it counts as 0.
* ``nints_ref`` and ``ngroups_ref`` are the reference's NINTS and NGROUPS keywords (its
  ``meta.exposure``), not its array shape. Only the first ``min(ngroups_ref, ngroups)``
  groups are corrected.
* The integration index rule, for segmented exposures too: jwst loops over the exposure's
  integrations ``i = INTSTART - 1 .. INTEND - 1`` (0 .. NINTS - 1 without those keywords);
  integration ``i`` is the segment's row ``i - (INTSTART - 1)`` and uses the reference's
  integration ``min(i, nints_ref - 1)``. So a later segment uses the last reference
  integration once ``i`` passes it. Rows of the array beyond that loop (a file holding
  more integrations than ``INTEND - INTSTART + 1``, or than ``NINTS - INTSTART + 1``
  without INTEND) are left as they are, as jwst leaves them.
* ``pixeldq |= reset dq`` (when the loop runs at least once).
* float32 arithmetic, as jwst's in-place ``data[i, j] -= reset[ir, j]``.

Chunk contract: blockwise, no halo, any tiling of the data (groups and integrations may be
split): the reference is indexed per science integration, padded with zero groups (a
float32 ``x - 0`` is ``x`` to the bit) and aligned with the data's tiles.
"""

from functools import partial

import dask.array as da
import numpy as np

from detflow.errors import InputFileError, ReferenceFileError
from detflow.steps.base import StepDef, as_float32, dask_array, record
from detflow.steps.lastframe import is_miri_detector, references_if_miri

DIMS = ("integration", "group", "y", "x")


def integration_map(ds, nints_ref):
    """Per row of the array, the reference integration jwst subtracts from it, or -1
    where jwst's loop does not reach that row (see the module docstring)."""
    nrows = ds.sizes["integration"]
    intstart = ds.attrs.get("intstart")
    intend = ds.attrs.get("intend")
    istart = int(intstart) - 1 if intstart is not None else 0
    iend = int(intend) if intend is not None else int(ds.attrs.get("nints") or nrows)
    if iend - istart > nrows:
        raise InputFileError(
            ds.attrs.get("source") or "the exposure",
            f"INTSTART = {intstart} and INTEND/NINTS = {iend} describe {iend - istart} "
            f"integrations, but the SCI array holds {nrows}")
    pick = np.full(nrows, -1, dtype=np.int64)
    for i in range(istart, iend):
        pick[i - istart] = min(i, nints_ref - 1)
    return pick


def _reference_counts(ref, label):
    """``(nints_ref, ngroups_ref)``: the reference's NINTS and NGROUPS (its array shape
    where a keyword is absent), checked against the array jwst indexes with them."""
    shape = ref["sci"].transpose(*DIMS).shape
    counts = []
    for key, size in (("nints", shape[0]), ("ngroups", shape[1])):
        value = ref.attrs.get(key)
        value = size if value is None else int(value)
        if not 0 < value <= size:
            raise ReferenceFileError(
                "RESET", label, f"{ref.attrs.get('filename', 'the RESET file')}: "
                f"{key.upper()} = {value} but the SCI array has {size} "
                f"{'integrations' if key == 'nints' else 'groups'} (shape {shape})")
        counts.append(value)
    return tuple(counts)


def apply(ds, refs, params):
    """Lazy reset subtraction (see the module docstring)."""
    out = as_float32(ds)
    if not is_miri_detector(ds):
        return record(out, STEP, "SKIPPED", params, reason="Reset Correction is only for MIRI data")
    ref = refs.get("reset")
    if ref is None:
        return record(out, STEP, "SKIPPED", params, reason="no RESET reference file (N/A)")
    nints_ref, ngroups_ref = _reference_counts(ref, ds.attrs.get("source") or "")
    pick = integration_map(ds, nints_ref)
    if (pick < 0).all():
        return record(out, STEP, "COMPLETE", params)

    dims = out["data"].dims
    data = dask_array(out["data"], DIMS)
    ngroups = data.shape[1]
    ncorr = min(ngroups_ref, ngroups)
    sci = dask_array(ref["sci"], DIMS)
    sci = da.where(da.isnan(sci), np.float32(0), sci).astype(np.float32)
    per_row = sci[np.maximum(pick, 0), :ncorr]
    if ncorr < ngroups:
        per_row = da.pad(per_row, ((0, 0), (0, ngroups - ncorr), (0, 0), (0, 0)))
    reached = da.from_array(pick >= 0, chunks=-1)[:, None, None, None]
    per_row = da.where(reached, per_row, np.float32(0)).rechunk(data.chunks)
    out["data"] = out["data"].transpose(*DIMS).copy(data=data - per_row).transpose(*dims)
    if "dq" in ref:
        pixeldq = out["pixeldq"]
        out["pixeldq"] = (pixeldq | ref["dq"].astype(pixeldq.dtype).transpose(
            *pixeldq.dims)).astype(pixeldq.dtype)
    return record(out, STEP, "COMPLETE", params)


STEP = StepDef(
    __name__,
    references_needed=partial(references_if_miri, ("reset",)),
    params={},
    reference_pixels="pointwise",
    apply=apply,
)
