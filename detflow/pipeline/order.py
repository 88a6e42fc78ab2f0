"""The detector1 step sequences of jwst 3.0.0, as lists of step names.

This is a description only (frozen data, no computation): the graph builder walks it;
the command line uses it to resolve and report reference files. What each name stands
for (class, reference types, default skip, ``cal_step`` keyword) is its row in
:mod:`detflow.registry`.
"""

from detflow.registry import STEPS, StepInfo

#: jwst 3.0.0's near-IR order (NIRCam, NIRISS, NIRSpec, FGS).
NIR_ORDER = (
    "group_scale", "dq_init", "saturation", "ipc", "superbias", "refpix", "linearity",
    "dark_current", "charge_migration", "jump", "picture_frame", "clean_flicker_noise",
    "persistence", "ramp_fit", "gain_scale",
)

#: jwst 3.0.0's MIRI order.
MIRI_ORDER = (
    "group_scale", "dq_init", "emicorr", "saturation", "ipc", "firstframe", "lastframe",
    "reset", "linearity", "rscd", "dark_current", "refpix", "charge_migration", "jump",
    "picture_frame", "clean_flicker_noise", "persistence", "ramp_fit", "gain_scale",
)

#: The orders as :class:`~detflow.registry.StepInfo` rows.
NIR_STEPS = tuple(STEPS[name] for name in NIR_ORDER)
MIRI_STEPS = tuple(STEPS[name] for name in MIRI_ORDER)

__all__ = ["MIRI_ORDER", "MIRI_STEPS", "NIR_ORDER", "NIR_STEPS", "StepInfo", "steps_for"]


def steps_for(instrument):
    """The ordered steps (:class:`~detflow.registry.StepInfo`) for an instrument name
    (``MIRI`` or a near-IR one)."""
    return MIRI_STEPS if str(instrument).upper() == "MIRI" else NIR_STEPS
