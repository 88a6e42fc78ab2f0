"""group_scale: rescale frame-averaged groups by FRMDIVSR/NFRAMES (jwst ``GroupScaleStep``).

On board, NFRAMES frames are summed and divided by FRMDIVSR, a power of 2; when the two
differ every group is off by NFRAMES/FRMDIVSR. jwst then multiplies the data by
``float(FRMDIVSR) / NFRAMES``; NumPy multiplies the float32 data by that Python float
rounded to float32 (NEP 50), and so does this step.

jwst records SKIPPED when NFRAMES is missing, when FRMDIVSR is missing (whether or not
NFRAMES is a power of 2: its ``do_correction`` skips too), or when FRMDIVSR == NFRAMES.

Chunk contract: blockwise, no halo, no reference file; one lazy multiplication.
"""

import numpy as np

from detflow.steps.base import StepDef, as_float32, record


def scale_factor(attrs):
    """The factor jwst applies, or ``(None, reason)`` when it skips.

    Returns
    -------
    (float or None, str)
        ``float(FRMDIVSR) / NFRAMES`` (float64) and ``""``, or ``None`` and why not.
    """
    nframes = attrs.get("nframes")
    divisor = attrs.get("frmdivsr")
    if nframes is None:
        return None, "NFRAMES value not found"
    if divisor is None:
        if nframes & (nframes - 1) == 0:
            return None, f"NFRAMES={nframes} is a power of 2; correction not needed"
        return None, "FRMDIVSR not found"
    if nframes == divisor:
        return None, "NFRAMES and FRMDIVSR are equal; correction not needed"
    return float(divisor) / nframes, ""


def apply(ds, refs, params):
    """Lazy group_scale: ``data *= float32(FRMDIVSR / NFRAMES)``, or SKIPPED.

    ``data`` becomes float32 either way (jwst's RampModel is float32).
    """
    out = as_float32(ds)
    scale, reason = scale_factor(ds.attrs)
    if scale is None:
        return record(out, STEP, "SKIPPED", params, reason=reason)
    out["data"] = out["data"] * np.float32(scale)
    return record(out, STEP, "COMPLETE", params, scale=scale)


STEP = StepDef(
    __name__,
    params={},
    reference_pixels="pointwise",
    apply=apply,
)
