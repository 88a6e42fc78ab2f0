"""Workflow files: a program as YAML (``detflow run workflows/<name>.yaml``).

A workflow names its inputs (paths, globs, folders, URLs), the pipeline's parameters
in the names of the command line and of jwst's ASDF parameter files, the cluster, the
output folder and how to run::

    name: nircam-imaging
    inputs: ["demo/program/*_uncal.fits"]
    output_dir: demo/program/out
    refs: demo/program/refs            # a folder of reference files (optional)
    parameters: {save_calibrated_ramp: false}
    steps:
      jump: {rejection_threshold: 5.0}
    cluster: local                     # deploy/<name>, a spec file, or a mapping
    max_in_flight: 2

:data:`SCHEMA` is the JSON Schema a file must satisfy; :func:`read_workflow` checks
it and names the file, the entry and the problem. Relative paths are relative to the
current folder (run workflows from the repository's root).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from detflow.errors import ParameterError

_SCALAR = {"type": ["string", "number", "boolean", "null"]}
_VALUE = {"anyOf": [_SCALAR, {"type": "array"}, {"type": "object"}]}

#: JSON Schema of a workflow file.
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "detflow workflow",
    "type": "object",
    "additionalProperties": False,
    "required": ["inputs"],
    "properties": {
        "name": {"type": "string", "description": "a short name, for people"},
        "description": {"type": "string"},
        "inputs": {
            "description": "exposures: files, glob patterns, folders or URLs",
            "type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1},
        },
        "output_dir": {"type": "string", "minLength": 1},
        "refs": {"type": "string", "description": "a folder of reference files"},
        "parameters": {
            "description": "Detector1Pipeline parameters (save_calibrated_ramp, ...)",
            "type": "object", "additionalProperties": _VALUE,
        },
        "steps": {
            "description": "step -> parameter -> value, as --steps.STEP.PARAM=VALUE",
            "type": "object",
            "additionalProperties": {"type": "object", "additionalProperties": _VALUE},
        },
        "cluster": {
            "description": "a deploy/ spec name or file, or how to start or join one",
            "anyOf": [
                {"type": "string", "minLength": 1},
                {"type": "object", "additionalProperties": False, "properties": {
                    "scheduler": {"type": "string", "minLength": 1},
                    "n_workers": {"type": "integer", "minimum": 1},
                    "threads_per_worker": {"type": "integer", "minimum": 1},
                    "memory_limit": {"type": ["string", "integer"]},
                    "processes": {"type": "boolean"},
                }},
            ],
        },
        "intermediates": {
            "description": "steps whose output to keep as Zarr stores ('all' for every step)",
            "anyOf": [{"const": "all"},
                      {"type": "array", "items": {"type": "string"}, "uniqueItems": True}],
        },
        "overwrite": {"type": "boolean"},
        "max_in_flight": {"type": "integer", "minimum": 1},
        "performance_report": {"type": "string", "minLength": 1},
    },
}


@dataclass
class Workflow:
    """A checked workflow file."""

    path: str
    inputs: list
    name: str = ""
    output_dir: str | None = None
    refs: str | None = None
    parameters: dict = field(default_factory=dict)
    steps: dict = field(default_factory=dict)
    cluster: str | dict | None = None
    intermediates: list | str | None = None
    overwrite: bool = False
    max_in_flight: int | None = None
    performance_report: str | None = None


def is_workflow_file(path) -> bool:
    """Whether a command-line input names a workflow file (``.yaml``/``.yml``)."""
    return str(path).lower().endswith((".yaml", ".yml"))


def _where(error):
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "(top level)"


def read_workflow(path) -> Workflow:
    """Read and check a workflow file.

    Raises
    ------
    ParameterError
        The file is missing, not YAML, or does not follow :data:`SCHEMA`; or it names a
        step or parameter the pipeline does not have. The message names the file and
        the entry.
    """
    import jsonschema

    from detflow.io.yamlfile import read_yaml

    path = Path(path)
    doc = read_yaml(path, "workflow")
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{_where(e)}: {e.message}" for e in errors[:5]]
        raise ParameterError(f"workflow {path} does not follow the workflow schema:\n  "
                             + "\n  ".join(lines))
    flow = Workflow(path=str(path), **{k: v for k, v in doc.items() if k != "description"})
    _check_pipeline_names(flow)
    return flow


def _check_pipeline_names(flow):
    """Step and parameter names are the pipeline's (checked now, before any work)."""
    from detflow.interfaces import Detector1Pipeline

    try:
        Detector1Pipeline(steps=flow.steps, **flow.parameters)
    except ParameterError as exc:
        raise ParameterError(f"workflow {flow.path}: {exc}") from None
    intermediates = flow.intermediates
    if intermediates:
        names = list(Detector1Pipeline.step_defs) if intermediates == "all" else intermediates
        unknown = [n for n in names if n not in Detector1Pipeline.step_defs]
        if unknown:
            raise ParameterError(f"workflow {flow.path}: intermediates: unknown steps "
                                 f"{unknown}")
