"""firstframe: the first group of every integration DO_NOT_USE (jwst ``FirstFrameStep``,
MIRI; deprecated in jwst and skipped by default).

jwst 3.0.0 (``firstframe_sub.do_correction``): for MIRI data (DETECTOR starting with
``MIR``) with more than 3 groups, ``groupdq[:, 0] |= DO_NOT_USE`` and COMPLETE;
otherwise SKIPPED (too few groups, or not MIRI). With ``bright_use_group1`` (the step's
default) a pixel whose third group (index 2) is SATURATED in an integration keeps its
first group in that integration, and a pixel that keeps it in any integration gets
FLUX_ESTIMATED in its pixel DQ.

Chunk contract: blockwise over tiles (``group`` is never split); FLUX_ESTIMATED is an
``any`` over integrations, a small reduction across the integration tiles of each
spatial tile. No halo, no reference file.
"""

from detflow import dqflags
from detflow.steps.base import Param, StepDef, as_float32, record
from detflow.steps.lastframe import group_flag, skip_reason


def apply(ds, refs, params):
    """Lazy firstframe: the first group DO_NOT_USE (more than 3 groups, MIRI), or
    SKIPPED; see the module docstring for ``bright_use_group1``."""
    out = as_float32(ds)
    reason = skip_reason(ds, "First Frame Correction", 3)
    if reason:
        return record(out, STEP, "SKIPPED", params, reason=reason)
    ngroups = out.sizes["group"]
    gdq = out["groupdq"]
    flag = group_flag(ngroups, 0, dqflags.DO_NOT_USE)
    if params["bright_use_group1"]:
        # saturated at group 3: keep group 1 (its first-frame effect is small there)
        kept = (gdq.isel(group=2, drop=True) & dqflags.SATURATED) > 0
        flag = flag.where(~kept, 0).astype(gdq.dtype)
        pixeldq = out["pixeldq"]
        out["pixeldq"] = pixeldq.where(~kept.any("integration"),
                                       pixeldq | dqflags.FLUX_ESTIMATED).astype(pixeldq.dtype)
    out["groupdq"] = (gdq | flag).astype(gdq.dtype).transpose(*gdq.dims)
    return record(out, STEP, "COMPLETE", params)


STEP = StepDef(
    __name__,
    params={
        "bright_use_group1": Param("boolean", True,
                                   "do not flag group1 if group3 is saturated"),
    },
    reference_pixels="pointwise",
    apply=apply,
)
