"""The detector1 steps of jwst 3.0.0: one row each, the single source of what every
layer knows of a step by name.

A row holds the step's identity as jwst declares it: its alias, its class name, its
``meta.cal_step`` attribute with that attribute's FITS keyword and title (stdatamodels'
``core.schema.yaml``), its reference types (those that may be N/A apart), whether it is
skipped by default (its product's suffix is its alias, as in jwst). Everything else
derives from these rows and from the two orders of :mod:`detflow.pipeline.order`: the
step aliases, the class names a parameter file may name, the products' ``S_*``
keywords, the command line's listing, jwst's step classes in :mod:`detflow.interfaces`.

What a step *does* (its parameters, chunk contract and lazy ``apply``) is its module in
:mod:`detflow.steps`, whose :class:`~detflow.steps.base.StepDef` takes the row by the
module's name. The rows live here, beside :mod:`detflow.contract` and
:mod:`detflow.dqflags`, and not in the step modules, because the io layer reads and
writes the ``S_*`` keywords and may not import the steps (DESIGN.md's layers).

Adding a step: a row here (if jwst has the step), its kernel, its step module, and its
name in an order.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class StepInfo:
    """One detector1 step as jwst 3.0.0 declares it."""

    name: str  # jwst alias, e.g. "dark_current"
    class_name: str  # jwst class, e.g. "DarkCurrentStep"
    cal_step: str  # meta.cal_step attribute, e.g. "dark_sub"
    keyword: str  # its FITS keyword, e.g. "S_DARK"
    title: str  # the keyword's title, e.g. "Dark Subtraction"
    reftypes: tuple = ()  # reference types, lower case, in jwst's order
    optional_refs: tuple = ()  # those whose N/A the step accepts
    skip_default: bool = False

    @property
    def product_suffix(self):
        """The suffix of the step's saved result, ``<root>_<suffix>.fits``: jwst's is the
        alias for every detector1 step (a step's own ``suffix`` parameter may change
        it)."""
        return self.name


_ROWS = (
    StepInfo("group_scale", "GroupScaleStep", "group_scale", "S_GRPSCL",
             "Group Scale Correction"),
    StepInfo("dq_init", "DQInitStep", "dq_init", "S_DQINIT", "Data Quality Initialization",
             ("mask",)),
    StepInfo("emicorr", "EmiCorrStep", "emicorr", "S_MIREMI", "MIRI EMI Correction",
             ("emicorr",), optional_refs=("emicorr",), skip_default=True),
    StepInfo("saturation", "SaturationStep", "saturation", "S_SATURA", "Saturation Checking",
             ("saturation", "superbias"), optional_refs=("superbias",)),
    StepInfo("ipc", "IPCStep", "ipc", "S_IPC", "Interpixel Capacitance Correction",
             ("ipc",), optional_refs=("ipc",)),
    StepInfo("superbias", "SuperBiasStep", "superbias", "S_SUPERB", "Superbias Subtraction",
             ("superbias",)),
    StepInfo("refpix", "RefPixStep", "refpix", "S_REFPIX", "Reference Pixel Correction",
             ("refpix", "sirskernel"), optional_refs=("refpix", "sirskernel")),
    StepInfo("firstframe", "FirstFrameStep", "firstframe", "S_FRSTFR",
             "First Frame Correction", skip_default=True),
    StepInfo("lastframe", "LastFrameStep", "lastframe", "S_LASTFR", "Last Frame Correction"),
    StepInfo("reset", "ResetStep", "reset", "S_RESET", "Reset Anomaly Correction",
             ("reset",)),
    StepInfo("linearity", "LinearityStep", "linearity", "S_LINEAR", "Linearity Correction",
             ("linearity",)),
    StepInfo("rscd", "RscdStep", "rscd", "S_RSCD", "RSCD Correction", ("rscd",)),
    StepInfo("dark_current", "DarkCurrentStep", "dark_sub", "S_DARK", "Dark Subtraction",
             ("dark",)),
    StepInfo("charge_migration", "ChargeMigrationStep", "charge_migration", "S_CHGMIG",
             "Charge Migration", skip_default=True),
    StepInfo("jump", "JumpStep", "jump", "S_JUMP", "Jump Detection", ("gain", "readnoise")),
    StepInfo("picture_frame", "PictureFrameStep", "picture_frame", "S_PCTFRM",
             "Picture Frame Correction", ("pictureframe",), skip_default=True),
    StepInfo("clean_flicker_noise", "CleanFlickerNoiseStep", "clean_flicker_noise",
             "S_CLNFNS", "Clean Flicker Noise", ("flat", "pastasoss"),
             optional_refs=("flat", "pastasoss"), skip_default=True),
    StepInfo("persistence", "PersistenceStep", "persistence", "S_PERSIS",
             "Persistence Correction", skip_default=True),
    StepInfo("ramp_fit", "RampFitStep", "ramp_fit", "S_RAMP", "Ramp Fitting",
             ("readnoise", "gain")),
    StepInfo("gain_scale", "GainScaleStep", "gain_scale", "S_GANSCL", "Gain Scale Correction",
             ("gain",)),
)

#: alias -> :class:`StepInfo`, for every detector1 step (near-IR and MIRI).
STEPS = {row.name: row for row in _ROWS}

#: jwst class name -> alias (what a parameter file's ``class`` names).
STEP_BY_CLASS = {row.class_name: row.name for row in _ROWS}
