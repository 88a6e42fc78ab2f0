"""The detector1 steps, one module each, each defining a :class:`~detflow.steps.base.StepDef`
named ``STEP``. Modules are imported on first use."""

import importlib
import importlib.util

from detflow.registry import STEPS
from detflow.steps.base import GENERIC_PARAMS, Param, StepDef, record, skipped

__all__ = ["GENERIC_PARAMS", "Param", "StepDef", "get_step", "is_implemented", "record",
           "skipped", "STEP_NAMES"]

#: Every detector1 step alias (near-IR and MIRI), from :mod:`detflow.registry`.
STEP_NAMES = tuple(STEPS)


def is_implemented(name):
    """Whether detflow has a module for the step ``name``."""
    return importlib.util.find_spec(f"detflow.steps.{name}") is not None


def get_step(name):
    """The :class:`StepDef` of a step, by jwst alias (e.g. ``"refpix"``)."""
    if name not in STEP_NAMES:
        from detflow.errors import ParameterError

        raise ParameterError(f"unknown step {name!r}; detector1 steps are: {', '.join(STEP_NAMES)}")
    if not is_implemented(name):
        from detflow.errors import DetflowError

        raise DetflowError(f"step {name} is not implemented in detflow yet")
    return importlib.import_module(f"detflow.steps.{name}").STEP
