"""dq_init: data-quality initialisation from the MASK reference file (jwst ``DQInitStep``).

Chunk contract: blockwise, no halo; the MASK is aligned to the exposure's tiles. The
work is two bitwise ORs, written as lazy xarray expressions (no kernel needed).
"""

import numpy as np
import xarray as xr

from detflow import dqflags
from detflow.errors import ParameterError
from detflow.steps.base import Param, StepDef, as_float32, record


def apply(ds, refs, params):
    """Lazy dq_init: ``pixeldq |= mask``, ``groupdq |= mask & DO_NOT_USE`` for every group.

    ``params["user_supplied_dq"]`` may be an array ``(ny, nx)`` (the pipeline layer
    opens a user file and passes its DQ array here).
    """
    if refs.get("mask") is None:  # override_mask="N/A": jwst skips the step
        return record(as_float32(ds), STEP, "SKIPPED", params, reason="no MASK reference file")
    mask = refs["mask"]["dq"].astype(np.uint32)
    user = params.get("user_supplied_dq")
    if isinstance(user, str):
        raise ParameterError(
            f"user_supplied_dq={user!r}: the step takes the array; the pipeline layer reads "
            "the file (detflow.pipeline.builder.apply_step)")
    if user is not None:
        user = xr.DataArray(np.asarray(user), dims=("y", "x")) if not isinstance(
            user, xr.DataArray) else user
        if user.shape != mask.shape:
            raise ParameterError(
                f"user_supplied_dq has shape {user.shape} but the exposure is {mask.shape}"
            )
        mask = mask | user.data.astype(np.uint32)
    mask = mask.transpose("y", "x")
    out = as_float32(ds)
    out["pixeldq"] = ds["pixeldq"] | mask
    out["groupdq"] = (ds["groupdq"] | (mask & dqflags.DO_NOT_USE).astype(np.uint8)).transpose(
        *ds["groupdq"].dims
    )
    return record(out, STEP, "COMPLETE", params)


STEP = StepDef(
    __name__,
    params={"user_supplied_dq": Param("string", None, "FITS user-supplied DQ file")},
    reference_pixels="pointwise",
    apply=apply,
)
