"""One ``detflow run``'s configuration: the command line, an optional workflow file or
jwst ASDF parameter file, and the defaults, merged once into a frozen
:class:`RunConfig`.

Precedence, highest first:

1. the command line: ``--steps.STEP.PARAM=VALUE`` and ``--PARAM=VALUE`` (the pipeline's
   own, or the single step's of a step parameter file), and the run options
   (``--output_dir``, ``--refs``, ``--max-in-flight``, ``--save-intermediates``,
   ``--performance-report``, the cluster options);
2. the workflow file (its steps, parameters and settings; its ``cluster`` only when
   the command line gives no cluster option at all; ``overwrite`` when either says
   so), or the ASDF parameter file (its steps and parameters);
3. the defaults (jwst's step defaults; detflow's run options' defaults).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from detflow.errors import ParameterError

__all__ = ["RunConfig", "run_config"]

#: Run options a workflow file may set, under the same names.
_WORKFLOW_OPTIONS = ("output_dir", "refs", "max_in_flight", "performance_report")
#: The command line's cluster options (any one given: the workflow's cluster is not used).
_CLUSTER_OPTIONS = ("cluster", "scheduler", "n_workers", "threads_per_worker", "processes",
                    "memory_limit")


def _frozen(mapping):
    return MappingProxyType({k: MappingProxyType(dict(v)) if isinstance(v, dict) else v
                             for k, v in mapping.items()})


@dataclass(frozen=True)
class RunConfig:
    """What one ``detflow run`` does (see the module's precedence).

    ``parameters`` are the pipeline's own (``save_calibrated_ramp``, ...); ``steps``
    ``{step: {param: value}}``; ``step`` the one step a step parameter file runs
    (None: the pipeline) and ``step_class`` the class the file names. The rest are the
    run options, named as ``detflow run``'s options are; ``workflow`` is the workflow
    file's name when one was given, with its number of input patterns.
    """

    inputs: tuple[str, ...]
    parameters: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    steps: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    step: str | None = None
    step_class: str = "Detector1Pipeline"
    workflow: str | None = None
    workflow_patterns: int = 0
    output_dir: str | None = None
    refs: str | None = None
    dry_run: bool = False
    save_intermediates: object = None
    max_in_flight: int | None = None
    performance_report: str | None = None
    overwrite: bool = False
    cluster: object = None
    scheduler: str | None = None
    n_workers: int | None = None
    threads_per_worker: int | None = None
    memory_limit: str | None = None
    processes: bool = False
    dashboard: bool = False

    def step_params(self):
        """``{step: {param: value}}`` as a new, mutable dict."""
        return {k: dict(v) for k, v in self.steps.items()}


def split_extra(extra):
    """argparse leaves inputs that follow an option among the unknown words: separate the
    ``--steps.STEP.PARAM[=]VALUE`` and ``--PARAM[=]VALUE`` items from the input files."""
    inputs, step_words = [], []
    i = 0
    while i < len(extra):
        word = extra[i]
        if word.startswith("--") and "=" not in word and i + 1 < len(extra):
            step_words += extra[i : i + 2]
            i += 2
            continue
        (step_words if word.startswith("-") else inputs).append(word)
        i += 1
    return inputs, step_words


def own_parameters(step):
    """The names ``--PARAM=VALUE`` may set, as strun takes them: the pipeline's own
    parameters, or, with a single-step parameter file, that step's (those with options
    of their own here, like --output_dir, are left to them)."""
    from detflow.interfaces import Detector1Pipeline
    from detflow.steps import get_step

    if step:
        names = set(get_step(step).params) | set(Detector1Pipeline._own)
    else:
        names = set(Detector1Pipeline._own)
    return names - {"output_dir", "save_results"}


def intermediates_arg(value):
    """``--save-intermediates zarr`` -> "all"; ``zarr:jump,ramp_fit`` -> those steps."""
    if value is None:
        return None
    if isinstance(value, list | tuple) or value == "all":  # from a workflow file
        return value if value == "all" else list(value)
    fmt, _, steps = str(value).partition(":")
    if fmt != "zarr":
        raise ParameterError(f"--save-intermediates {value}: the format is 'zarr' "
                             "(zarr, or zarr:STEP,STEP...)")
    return steps.split(",") if steps else "all"


def run_config(args, extra):
    """The :class:`RunConfig` of ``detflow run`` from its parsed ``args`` (left as they
    are) and the words argparse did not know (``extra``: more inputs,
    ``--steps.STEP.PARAM=VALUE`` and ``--PARAM=VALUE``). Inputs are not expanded yet."""
    from detflow.pipeline.params import parse_step_args, read_parameter_file
    from detflow.workflow import is_workflow_file, read_workflow

    more_inputs, step_words = split_extra(extra)
    inputs = list(args.inputs) + more_inputs
    options = {key: getattr(args, key) for key in (
        "output_dir", "refs", "dry_run", "save_intermediates", "max_in_flight",
        "performance_report", "overwrite", "dashboard", *_CLUSTER_OPTIONS)}
    pars = {"steps": {}, "parameters": {}, "step": None, "class": "Detector1Pipeline"}
    workflow, patterns = None, 0
    if inputs and is_workflow_file(inputs[0]):
        path = inputs.pop(0)
        flow = read_workflow(path)
        workflow = flow.name or Path(path).stem
        pars["steps"] = {k: dict(v) for k, v in flow.steps.items()}
        pars["parameters"] = dict(flow.parameters)
        inputs = list(flow.inputs) + inputs
        patterns = len(flow.inputs)
        options.update(_workflow_options(flow, options))
    elif inputs and inputs[0].lower().endswith(".asdf"):
        pars = read_parameter_file(inputs.pop(0))
    if not inputs:
        raise ParameterError("no input files given")
    steps = {k: dict(v) for k, v in pars["steps"].items()}
    parameters = dict(pars["parameters"])
    if pars["step"]:
        steps.setdefault(pars["step"], {}).update(parameters)
        parameters = {}
    for step, values in parse_step_args(step_words, own_parameters(pars["step"])).items():
        if step is None:  # --PARAM=VALUE: the pipeline's (or the one step's) own
            (steps.setdefault(pars["step"], {}) if pars["step"] else parameters).update(values)
        else:
            steps.setdefault(step, {}).update(values)
    options["save_intermediates"] = intermediates_arg(options["save_intermediates"])
    return RunConfig(inputs=tuple(inputs), parameters=_frozen(parameters),
                     steps=_frozen(steps), step=pars["step"], step_class=pars["class"],
                     workflow=workflow, workflow_patterns=patterns, **options)


def _workflow_options(flow, given):
    """The run options a workflow file sets where the command line (``given``) does not."""
    out = {key: getattr(flow, key) for key in _WORKFLOW_OPTIONS if given[key] is None}
    if given["save_intermediates"] is None and flow.intermediates:
        out["save_intermediates"] = flow.intermediates
    out["overwrite"] = bool(given["overwrite"] or flow.overwrite)
    if flow.cluster is not None and not any(given[k] for k in _CLUSTER_OPTIONS):
        if isinstance(flow.cluster, str):
            out["cluster"] = flow.cluster
        else:
            c = flow.cluster
            out.update(scheduler=c.get("scheduler"), n_workers=c.get("n_workers"),
                       threads_per_worker=c.get("threads_per_worker"),
                       memory_limit=c.get("memory_limit"),
                       processes=bool(c.get("processes", False)))
    return out
