"""The detector1 step sequences of jwst 3.0.0, with their reference types.

This is a description only (frozen data, no computation): the graph builder
walks it; the command line uses it to resolve and report reference files.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class StepSpec:
    """One detector1 step as jwst declares it."""

    name: str  # jwst step alias, e.g. "dark_current"
    reftypes: tuple  # reference types, lower case, e.g. ("dark",)
    skip_default: bool = False
    optional_refs: tuple = ()  # reference types whose absence (N/A) skips the step


GROUP_SCALE = StepSpec("group_scale", ())
DQ_INIT = StepSpec("dq_init", ("mask",))
EMICORR = StepSpec("emicorr", ("emicorr",), skip_default=True)
SATURATION = StepSpec("saturation", ("saturation", "superbias"), optional_refs=("superbias",))
IPC = StepSpec("ipc", ("ipc",), optional_refs=("ipc",))
SUPERBIAS = StepSpec("superbias", ("superbias",))
REFPIX = StepSpec("refpix", ("refpix", "sirskernel"), optional_refs=("refpix", "sirskernel"))
FIRSTFRAME = StepSpec("firstframe", (), skip_default=True)
LASTFRAME = StepSpec("lastframe", ())
RESET = StepSpec("reset", ("reset",))
LINEARITY = StepSpec("linearity", ("linearity",))
RSCD = StepSpec("rscd", ("rscd",))
DARK_CURRENT = StepSpec("dark_current", ("dark",))
CHARGE_MIGRATION = StepSpec("charge_migration", (), skip_default=True)
JUMP = StepSpec("jump", ("gain", "readnoise"))
PICTURE_FRAME = StepSpec("picture_frame", ("pictureframe",), skip_default=True)
CLEAN_FLICKER_NOISE = StepSpec(
    "clean_flicker_noise", ("flat", "pastasoss"), skip_default=True,
    optional_refs=("flat", "pastasoss"),
)
PERSISTENCE = StepSpec("persistence", (), skip_default=True)
RAMP_FIT = StepSpec("ramp_fit", ("readnoise", "gain"))
GAIN_SCALE = StepSpec("gain_scale", ("gain",))

NIR_STEPS = (
    GROUP_SCALE, DQ_INIT, SATURATION, IPC, SUPERBIAS, REFPIX, LINEARITY, DARK_CURRENT,
    CHARGE_MIGRATION, JUMP, PICTURE_FRAME, CLEAN_FLICKER_NOISE, PERSISTENCE, RAMP_FIT,
    GAIN_SCALE,
)

MIRI_STEPS = (
    GROUP_SCALE, DQ_INIT, EMICORR, SATURATION, IPC, FIRSTFRAME, LASTFRAME, RESET, LINEARITY,
    RSCD, DARK_CURRENT, REFPIX, CHARGE_MIGRATION, JUMP, PICTURE_FRAME, CLEAN_FLICKER_NOISE,
    PERSISTENCE, RAMP_FIT, GAIN_SCALE,
)

ALL_STEPS = {s.name: s for s in MIRI_STEPS + NIR_STEPS}


def steps_for(instrument):
    """The ordered step list for an instrument name (``MIRI`` or a near-IR one)."""
    return MIRI_STEPS if str(instrument).upper() == "MIRI" else NIR_STEPS
