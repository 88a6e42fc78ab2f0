"""lastframe: the last group of every integration DO_NOT_USE (jwst ``LastFrameStep``,
MIRI).

jwst 3.0.0 (``lastframe_sub.do_correction``): for MIRI data (DETECTOR starting with
``MIR``) with more than 2 groups, ``groupdq[:, -1] |= DO_NOT_USE`` and COMPLETE;
otherwise SKIPPED (too few groups, or not MIRI), data unchanged.

Chunk contract: blockwise, no halo, no reference file (``group`` is never split, so
every tile holds the last group).
"""

import numpy as np
import xarray as xr

from detflow import dqflags
from detflow.steps.base import StepDef, as_float32, record


def is_miri_detector(ds):
    """jwst's MIRI test in its MIRI-only steps: the DETECTOR name starts with ``MIR``."""
    return str(ds.attrs.get("detector") or "").upper().startswith("MIR")


def references_if_miri(reftypes, ds, params):
    """A ``references_needed`` for jwst's MIRI-only steps with a reference file (reset,
    rscd): jwst skips a detector not named ``MIR*`` before it asks for ``reftypes``. Bind
    ``reftypes`` with :func:`functools.partial`."""
    return tuple(reftypes) if is_miri_detector(ds) else ()


def skip_reason(ds, title, min_groups):
    """Why jwst's frame steps skip ``ds``, or "": not MIRI (the detector name does not
    start with ``MIR``), or not more than ``min_groups`` groups."""
    if not is_miri_detector(ds):
        return f"{title} is only for MIRI data"
    if ds.sizes["group"] <= min_groups:
        return "Too few groups to apply correction"
    return ""


def group_flag(ngroups, index, value):
    """A ``(group,)`` uint8 DataArray: ``value`` at group ``index``, 0 elsewhere."""
    flag = np.zeros(ngroups, dtype=np.uint8)
    flag[index] = value
    return xr.DataArray(flag, dims=("group",))


def apply(ds, refs, params):
    """Lazy lastframe: the last group DO_NOT_USE (more than 2 groups, MIRI), or SKIPPED."""
    out = as_float32(ds)
    reason = skip_reason(ds, "Last Frame Correction", 2)
    if reason:
        return record(out, STEP, "SKIPPED", params, reason=reason)
    ngroups = out.sizes["group"]
    out["groupdq"] = (out["groupdq"] | group_flag(ngroups, -1, dqflags.DO_NOT_USE)).transpose(
        *ds["groupdq"].dims)
    return record(out, STEP, "COMPLETE", params)


STEP = StepDef(
    __name__,
    params={},
    reference_pixels="pointwise",
    apply=apply,
)
