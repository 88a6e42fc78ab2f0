"""The ``detflow`` command line (also ``python -m detflow``).

Sub-commands: ``simulate``, ``info``, ``run``. Every user error is reported as
one line ``detflow: error: ...`` on stderr with exit status 2, never as a raw
traceback (``--debug`` shows one).
"""

import argparse
import contextlib
import sys
import time
from pathlib import Path

from detflow import __version__
from detflow.errors import DetflowError

EPILOG = """examples:
  detflow simulate nircam demo                 # full-frame NIRCam exposure + reference files
  detflow simulate nircam demo640 --subarray SUB640 --nints 2
  detflow info demo/jw01234001001_01101_00001_nrca1_uncal.fits
  detflow run --dry-run demo/jw01234001001_01101_00001_nrca1_uncal.fits
"""


class _RunHelp(argparse.Action):
    """``detflow run --help``: the options, then every step's parameters with their
    defaults, as ``strun --help`` lists them (built only when asked: it imports the
    steps)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.epilog = step_parameter_help()
        parser.print_help()
        parser.exit()


def step_parameter_help(steps=None):
    """Every step's parameters as ``detflow run`` takes them, with jwst's defaults.

    Parameters
    ----------
    steps : sequence of str, optional
        Step aliases (``jump``, ...); default: every step detflow implements, in the
        near-IR order, then the pipeline's own parameters.

    Returns
    -------
    str
        Lines such as ``--steps.jump.rejection_threshold=4.0  CR sigma rejection
        threshold``, one block per step.
    """
    from detflow.errors import ParameterError
    from detflow.interfaces import Detector1Pipeline
    from detflow.pipeline.order import MIRI_STEPS, NIR_STEPS
    from detflow.steps import GENERIC_PARAMS, STEP_NAMES, get_step, is_implemented

    order = list(dict.fromkeys(s.name for s in NIR_STEPS + MIRI_STEPS))
    every = steps is None or len(steps) == 0
    names = [n for n in order if is_implemented(n)] if every else list(steps)
    unknown = [n for n in names if n not in STEP_NAMES]
    if unknown:
        raise ParameterError(f"unknown step(s) {', '.join(unknown)}; detector1 steps are: "
                             f"{', '.join(order)}")
    lines = ["step parameters (jwst's names and defaults; set one with "
             "--steps.STEP.PARAM=VALUE):"]
    for name in names:
        if not is_implemented(name):
            lines += ["", f"  {name}: not implemented in detflow yet (it can only be skipped)"]
            continue
        step = get_step(name)
        rows = [(f"--steps.{name}.skip={step.skip_default}", "skip the step")]
        rows += [(f"--steps.{name}.override_{r}=None", f"{r.upper()} reference file to use")
                 for r in step.reftypes]
        for key, par in step.params.items():
            doc = par.doc + (f" (one of {', '.join(map(str, par.options))})"
                             if par.kind == "option" else "")
            default = "''" if par.default == "" else par.default
            rows.append((f"--steps.{name}.{key}={default}", doc))
        width = min(max(len(flag) for flag, _ in rows), 60)
        lines += ["", f"  {name} ({step.class_name}):"]
        lines += [f"    {flag:<{width}}  {doc}".rstrip() for flag, doc in rows]
    if every:
        generic = ", ".join(k for k in GENERIC_PARAMS if k != "skip")
        missing = [n for n in order if not is_implemented(n)]
        own = [f"--{k}={v}" for k, v in Detector1Pipeline._own.items()
               if k not in GENERIC_PARAMS]
        lines += ["", f"  not implemented yet (skip only): {', '.join(missing)}",
                  f"  every step also takes jwst's generic parameters: {generic}",
                  "", "pipeline parameters: " + "  ".join(own)]
    return "\n".join(lines)


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="detflow",
        description=(
            "JWST Stage 1 (calwebb_detector1: ramps to slopes) as a lazy, distributed "
            "Dask workflow, with jwst's step names, parameters and products."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"detflow {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sim = sub.add_parser(
        "simulate",
        help="write a simulated raw exposure with its reference files and truth image",
        description=(
            "Simulate a raw JWST exposure (OUTDIR/<root>_uncal.fits), a consistent set of "
            "reference files (OUTDIR/refs/), the noiseless count-rate truth "
            "(OUTDIR/<root>_truth.fits) and OUTDIR/manifest.json."
        ),
    )
    sim.add_argument("instrument", choices=["nircam", "miri"])
    sim.add_argument("outdir")
    sim.add_argument("--subarray", default="FULL",
                     help="FULL (default), SUB640, SUB320, SUB160, SUB160P, SUBGRISM64, "
                          "SUBGRISM128 (NIRCam); FULL (MIRI)")
    sim.add_argument("--readpatt", default=None,
                     help="read pattern, e.g. RAPID, BRIGHT2, MEDIUM8 (NIRCam; default RAPID) "
                          "or FAST (MIRI)")
    sim.add_argument("--ngroups", type=int, default=10, help="groups per integration (10)")
    sim.add_argument("--nints", type=int, default=1, help="integrations (1)")
    sim.add_argument("--seed", type=int, default=1, help="random seed (1)")
    sim.add_argument("--root", default=None,
                     help="file root name, e.g. jw01234001001_01101_00002_nrca1 (default: "
                          "a JWST-like name for the detector, with _s<SEED> appended when "
                          "--seed is not 1, so several seeds share one folder)")
    sim.add_argument("--snowballs", type=int, default=2,
                     help="large cosmic-ray events to inject (2)")
    sim.add_argument("--avdrkcur", default="scalar", choices=["scalar", "map", "both", "none"],
                     help="how the DARK carries the average dark current, as CRDS darks "
                          "do: the AVDRKCUR keyword (default), a 2-D AVDRKCUR extension, "
                          "both, or neither")
    sim.add_argument("--ref-shape", default="full", choices=["full", "subarray"],
                     help="reference files full-frame (default; cut to the subarray with "
                          "SUBSTRT/SUBSIZE) or in the subarray's own shape and corner")
    sim.add_argument("--dq-def", default="standard",
                     choices=["standard", "compressed", "none"],
                     help="DQ_DEF table of the references with DQ: standard JWST bit "
                          "values (default), compressed bit planes translated by NAME, "
                          "or none")
    sim.add_argument("--gain-factor", type=float, default=None, metavar="G",
                     help="write GAINFACT=G on the GAIN file (as NIRSpec IRS2 gain files "
                          "carry): gain_scale multiplies the rates by it (default: none)")
    zf = sim.add_mutually_exclusive_group()
    zf.add_argument("--zeroframe", dest="zeroframe", action="store_true", default=None,
                    help="write a ZEROFRAME extension (default: when NFRAMES > 1)")
    zf.add_argument("--no-zeroframe", dest="zeroframe", action="store_false")

    info = sub.add_parser(
        "info", help="summarise an exposure or a product (uncal, ramp, a step's output, "
                     "rate, rateints, fitopt FITS, a Zarr store, or URL)")
    info.add_argument("file")

    params = sub.add_parser(
        "params", help="list the step parameters of 'detflow run' with their defaults",
        description="Every detector1 step's parameters with jwst's names and defaults, as "
                    "'detflow run' takes them (--steps.STEP.PARAM=VALUE); also at the end "
                    "of 'detflow run --help'.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    params.add_argument("steps", nargs="*", metavar="STEP",
                        help="step aliases (jump, dark_current, ...); default: every step")

    run = sub.add_parser(
        "run",
        help="calibrate exposures (detector1)",
        description=(
            "Run detector1 on INPUT files, with the arguments of\n"
            "'strun jwst.pipeline.Detector1Pipeline': an optional ASDF parameter file first,\n"
            "--output_dir, --save_results, the pipeline's own --PARAM=VALUE (e.g.\n"
            "--save_calibrated_ramp=true) and --steps.STEP.PARAM=VALUE.\n"
            "Every step's parameters and their defaults are listed at the end of this help\n"
            "(one step's: detflow params STEP)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,
    )
    run.add_argument("-h", "--help", action=_RunHelp,
                     help="show this help, with every step's parameters, and exit")
    run.add_argument("inputs", nargs="+", metavar="[PARAMFILE.asdf|WORKFLOW.yaml] INPUT",
                     help="exposures (files, glob patterns, folders, URLs), after an "
                          "optional jwst ASDF parameter file or a detflow workflow file")
    run.add_argument("--output_dir", "--output-dir", dest="output_dir", default=None)
    run.add_argument("--save_results", "--save-results", dest="save_results",
                     action="store_true")
    run.add_argument("--refs", default=None, help="folder of reference files to search")
    run.add_argument("--dry-run", action="store_true",
                     help="check inputs and resolve reference files, then print the plan")
    run.add_argument("--n-workers", type=int, default=None,
                     help="local cluster workers (default: one worker, threads in this "
                          "process; with --processes, as Dask chooses)")
    run.add_argument("--threads-per-worker", type=int, default=None)
    run.add_argument("--processes", action="store_true",
                     help="local cluster workers as separate processes (default: threads in "
                          "this process; detflow's kernels release the GIL)")
    run.add_argument("--scheduler", default=None,
                     help="address of a running Dask scheduler, or 'threads' / 'synchronous' "
                          "/ 'processes' for Dask's single-machine schedulers (no cluster). "
                          "Default: Dask's threaded scheduler for one input without cluster "
                          "options, else a local cluster")
    run.add_argument("--dashboard", action="store_true",
                     help="start a local Dask cluster, with its dashboard, even for one input")
    run.add_argument("--cluster", default=None, metavar="local|slurm|kubernetes|SPEC.yaml",
                     help="start the cluster a spec describes (deploy/<name>/cluster.yaml, "
                          "or a spec file): a LocalCluster, SLURM jobs through "
                          "dask-jobqueue, or a DaskCluster through dask-kubernetes")
    run.add_argument("--memory-limit", default=None,
                     help="memory limit per local-cluster worker, e.g. 4GiB (Dask spills "
                          "and pauses a worker near it)")
    run.add_argument("--max-in-flight", type=int, default=None,
                     help="exposures in the cluster at once (default: its threads, at "
                          "least 2); the next is built and submitted as one finishes")
    run.add_argument("--performance-report", default=None, metavar="REPORT.html",
                     help="save Dask's performance report of the run (task stream, "
                          "worker profiles, bandwidth) as an HTML file; runs on a cluster")
    run.add_argument("--save-intermediates", default=None, metavar="zarr[:STEP,...]",
                     help="keep each step's output (or only the steps named) as a Zarr "
                          "store <root>_<step>.zarr beside the products, written by the "
                          "workers chunk by chunk; open one with detflow.open_product")
    run.add_argument("--overwrite", action="store_true",
                     help="redo exposures whose products exist (default: skip them)")
    return parser


def choose_scheduler(args, n_inputs):
    """The ``--scheduler`` a run uses: the one given; else a local cluster (None) for
    several inputs, ``--dashboard`` or any local-cluster option; else Dask's threaded
    scheduler, which for a single exposure on one machine does the same work without a
    cluster's start-up and per-task costs."""
    if args.scheduler:
        return args.scheduler
    if getattr(args, "cluster", None):
        return None
    if n_inputs > 1 or args.dashboard or args.processes or args.n_workers \
            or args.threads_per_worker or getattr(args, "performance_report", None) \
            or getattr(args, "memory_limit", None):
        return None
    return "threads"


class _DashboardNoise:
    """A logging filter: drops the ``AssertionError`` traceback that Bokeh's server raises
    (through Tornado's or its own error log) when a dashboard tab is closed while the
    dashboard updates it -- the session is already detached from the connection
    (``bokeh.server.connection.ServerConnection.session``). Nothing is wrong with the run;
    every other record passes."""

    def filter(self, record):
        exc = record.exc_info
        if not exc or not isinstance(exc[1], AssertionError):
            return True
        tb = exc[2]
        while tb is not None:
            parts = Path(tb.tb_frame.f_code.co_filename).parts
            if "bokeh" in parts and "server" in parts[parts.index("bokeh"):]:
                return False
            tb = tb.tb_next
        return True


#: Loggers that report the dashboard's closed-tab AssertionError (see _DashboardNoise).
DASHBOARD_LOGGERS = ("tornado.application", "tornado.general", "bokeh.server.views.ws",
                     "bokeh.server", "asyncio")


def setup_logging():
    """The command line's logging: the terminal is kept free of the dashboard's noise
    (:class:`_DashboardNoise` on :data:`DASHBOARD_LOGGERS`). Idempotent."""
    import logging

    for name in DASHBOARD_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DashboardNoise) for f in logger.filters):
            logger.addFilter(_DashboardNoise())


def main(argv=None):
    """Entry point of the ``detflow`` command; returns the exit status."""
    setup_logging()
    parser = _build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if extra and args.command != "run":
        parser.error(f"unrecognised arguments: {' '.join(extra)}")
    try:
        if args.command == "simulate":
            return _cmd_simulate(args)
        if args.command == "info":
            return _cmd_info(args)
        if args.command == "params":
            print(step_parameter_help(args.steps))
            return 0
        if args.command == "run":
            return _cmd_run(args, extra)
    except DetflowError as exc:
        if args.debug:
            raise
        print(f"detflow: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("detflow: interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError) as exc:
        if args.debug:
            raise
        print(f"detflow: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _cmd_simulate(args):
    from detflow.simulator import simulate

    res = simulate(
        args.instrument,
        args.outdir,
        subarray=args.subarray,
        readpatt=args.readpatt,
        ngroups=args.ngroups,
        nints=args.nints,
        seed=args.seed,
        root=args.root,
        snowballs=args.snowballs,
        zeroframe=args.zeroframe,
        avdrkcur=args.avdrkcur,
        ref_shape=args.ref_shape,
        dq_def=args.dq_def,
        gain_factor=args.gain_factor,
    )
    print(f"exposure:   {res.uncal}")
    print(f"truth:      {res.truth}")
    for reftype, path in res.refs.items():
        print(f"{reftype.lower():<11} {path}")
    print(f"manifest:   {res.manifest}")
    print(f"simulated in {res.seconds:.1f} s")
    return 0


def describe_exposure(ds):
    """A readable multi-line summary of an exposure Dataset (see :mod:`detflow.contract`)."""
    from detflow import dqflags

    a = ds.attrs
    nints, ngroups, ny, nx = (ds.sizes[d] for d in ("integration", "group", "y", "x"))
    x0, y0 = int(ds.x.values[0]), int(ds.y.values[0])
    lines = [
        f"file:        {a.get('source', '?')}",
        f"model:       {a.get('datamodel', '?')}",
        _instrument_line(a),
        f"subarray:    {a.get('subarray', '?')}  x {x0}:{x0 + nx}  y {y0}:{y0 + ny} "
        f"(full-frame pixels)  outputs {a.get('noutputs', '?')}  "
        f"fast/slow axis {a.get('fastaxis', '?')}/{a.get('slowaxis', '?')}",
        f"shape:       {nints} integration(s) x {ngroups} group(s) x {ny} x {nx}  "
        f"({ds['data'].dtype})",
        f"read:        {a.get('readpatt', '?')}  nframes {a.get('nframes', '?')}  "
        f"groupgap {a.get('groupgap', '?')}  zeroframe {'yes' if 'zeroframe' in ds else 'no'}",
        f"timing:      frame {a.get('frame_time', float('nan')):.5f} s  "
        f"group {a.get('group_time', float('nan')):.5f} s  "
        f"integration {a.get('integration_time', float('nan')):.3f} s  "
        f"start MJD {a.get('expstart', float('nan')):.6f}",
    ]
    lines.append("variables:   " + _variables(ds))
    for label, var, flags in (("pixel DQ:    ", "pixeldq", dqflags.PIXEL),
                              ("group DQ:    ", "groupdq", dqflags.GROUP)):
        lines.append(label + _dq_counts(ds[var], flags))
    lines += _cal_step_lines(a)
    return "\n".join(lines)


def _instrument_line(attrs):
    """``instrument:  NIRCAM NRCA1  exp_type ...  filter ...  [pupil ...]``."""
    a = attrs
    return (f"instrument:  {a.get('instrument', '?')} {a.get('detector', '?')}  "
            f"exp_type {a.get('exp_type', '?')}  filter {a.get('filter', '-')}"
            + (f"  pupil {a['pupil']}" if a.get("pupil") else ""))


def _variables(ds):
    """``name (dims) dtype, ...`` of a Dataset's data variables."""
    return ", ".join(f"{name} ({', '.join(map(str, var.dims))}) {var.dtype}"
                     for name, var in ds.data_vars.items())


def _dq_counts(var, flags):
    """``FLAG count, ...`` of the bits set in a DQ array (computed), or ``none set``."""
    import numpy as np

    values = np.asarray(var.data)
    counts = [f"{name} {n}" for name, bit in flags.items()
              if (n := int(np.count_nonzero(values & bit)))]
    return ", ".join(counts) if counts else "none set"


def _cal_step_lines(attrs):
    done = dict(attrs.get("cal_step") or {})
    return ["cal_step:    " + ", ".join(f"{k}={v}" for k, v in done.items())] if done else []


def describe_product(ds, path):
    """A readable multi-line summary of a product (:func:`detflow.open_product`: rate,
    rateints, fitopt, a ramp-shaped intermediate, a Zarr store): its model, instrument
    and region, dimensions, variables, read pattern and timing, DQ flags, the jump
    step's cosmic-ray rates and the ``cal_step`` statuses."""
    from detflow import dqflags

    a = ds.attrs
    header = a.get("primary_header") or {}
    model = header.get("DATAMODL") or a.get("datamodel") or "?"
    model = model[0] if isinstance(model, list | tuple) else model
    kind = Path(str(path).rstrip("/")).stem.rsplit("_", 1)[-1]
    main = max(ds.data_vars.values(), key=lambda v: v.ndim)
    lines = [
        f"file:        {path}",
        f"product:     {kind}  model {model}",
        _instrument_line(a),
    ]
    if "y" in ds.coords and "x" in ds.coords and ds.sizes.get("y") and ds.sizes.get("x"):
        x0, y0 = int(ds.x.values[0]), int(ds.y.values[0])
        lines.append(f"subarray:    {a.get('subarray', '?')}  x {x0}:{x0 + ds.sizes['x']}  "
                     f"y {y0}:{y0 + ds.sizes['y']} (full-frame pixels)")
    lines += [
        f"shape:       {' x '.join(map(str, main.shape))} ({', '.join(map(str, main.dims))})"
        + (f"  {a['bunit']}" if a.get("bunit") else ""),
        "dims:        " + ", ".join(f"{d} {n}" for d, n in ds.sizes.items()),
        "variables:   " + _variables(ds),
        f"read:        {a.get('readpatt', '?')}  nframes {a.get('nframes', '?')}  "
        f"groupgap {a.get('groupgap', '?')}  ngroups {a.get('ngroups', '?')}  "
        f"nints {a.get('nints', '?')}",
        f"timing:      group {a.get('group_time', float('nan')):.5f} s  "
        f"integration {a.get('integration_time', float('nan')):.3f} s  "
        f"exposure {a.get('exposure_time', float('nan')):.3f} s  "
        f"start MJD {a.get('expstart', float('nan')):.6f}",
    ]
    for label, var, flags in (("DQ:          ", "dq", dqflags.PIXEL),
                              ("pixel DQ:    ", "pixeldq", dqflags.PIXEL),
                              ("group DQ:    ", "groupdq", dqflags.GROUP)):
        if var in ds.data_vars:
            lines.append(label + _dq_counts(ds[var], flags))
    rates = [f"{label} {a[name]:g}" for name, label in (
        ("primary_cosmic_rays", "PRIMECRS"), ("extended_emission_events", "EXTNCRS"))
        if isinstance(a.get(name), int | float)]
    if rates:
        lines.append("jump:        " + ", ".join(rates))
    lines += _cal_step_lines(a)
    return "\n".join(lines)


def _cmd_info(args):
    from detflow.errors import InputFileError
    from detflow.io.exposure import open_exposure
    from detflow.io.products import open_product

    try:
        ds = open_exposure(args.file)
    except InputFileError as as_exposure:  # a product (rate, rateints, fitopt, a store)?
        try:
            product = open_product(args.file)
        except InputFileError as as_product:
            if as_exposure.problem in as_product.problem:  # unreadable either way
                raise as_exposure from None
            raise InputFileError(
                args.file, f"neither a JWST exposure ({as_exposure.problem}) nor a "
                f"product ({as_product.problem})") from None
        if not product.data_vars or not product.attrs.get("instrument"):
            raise as_exposure from None
        print(describe_product(product, args.file))
        return 0
    print(describe_exposure(ds))
    return 0


def _split_extra(extra):
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


def _cmd_run(args, extra):
    from detflow.errors import ParameterError
    from detflow.pipeline.params import parse_step_args, read_parameter_file
    from detflow.workflow import is_workflow_file

    more_inputs, step_words = _split_extra(extra)
    inputs = list(args.inputs) + more_inputs
    paramfile = None
    pars = {"steps": {}, "parameters": {}, "step": None, "class": "Detector1Pipeline"}
    if inputs and is_workflow_file(inputs[0]):
        pars, inputs = _apply_workflow(inputs.pop(0), inputs, args)
    elif inputs and inputs[0].lower().endswith(".asdf"):
        paramfile = inputs.pop(0)
        pars = read_parameter_file(paramfile)
    if not inputs:
        raise ParameterError("no input files given")
    step_params = {k: dict(v) for k, v in pars["steps"].items()}
    if pars["step"]:
        step_params.setdefault(pars["step"], {}).update(pars["parameters"])
    own = _own_parameters(pars["step"])
    for step, values in parse_step_args(step_words, own).items():
        if step is None:  # --PARAM=VALUE: the pipeline's (or the one step's) own
            if pars["step"]:
                step_params[pars["step"]].update(values)
            else:
                pars["parameters"].update(values)
        else:
            step_params.setdefault(step, {}).update(values)

    from detflow.program import expand_inputs

    inputs = expand_inputs(inputs)
    if args.dry_run:
        return _dry_run(inputs, pars, step_params, args)
    compile_notice()
    if pars["step"]:
        return _run_step_file(inputs, pars, step_params, args)
    return _run_program(inputs, pars, step_params, args)


def compile_notice(stream=None):
    """Say once (on ``stream``, default stderr) that this run compiles detflow's kernels
    when numba's on-disk cache does not hold them yet (a fresh install: a minute or more
    of silence otherwise); see :func:`detflow.runtime.warm.uncompiled_kernels`. Returns
    whether it was said."""
    from detflow.runtime.warm import uncompiled_kernels

    try:
        missing = uncompiled_kernels()
    except Exception:  # numba's cache not readable here: say nothing
        return False
    if missing:
        print("detflow: compiling detflow's kernels, first run only (a minute or more)",
              file=stream or sys.stderr, flush=True)
    return bool(missing)


def _own_parameters(step):
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


def _apply_workflow(path, more_inputs, args):
    """A workflow file's program: its parameters, and its settings where the command
    line does not give them (the command line wins). Returns (pars, inputs)."""
    from detflow.workflow import read_workflow

    flow = read_workflow(path)
    if args.save_intermediates is None and flow.intermediates:
        args.save_intermediates = flow.intermediates
    print(f"workflow {flow.name or Path(path).stem}: {len(flow.inputs)} input pattern(s)")
    for key in ("output_dir", "refs", "max_in_flight", "performance_report"):
        if getattr(args, key) is None:
            setattr(args, key, getattr(flow, key))
    args.overwrite = args.overwrite or flow.overwrite
    cluster_given = args.cluster or args.scheduler or args.n_workers or \
        args.threads_per_worker or args.processes or args.memory_limit
    if flow.cluster is not None and not cluster_given:
        if isinstance(flow.cluster, str):
            args.cluster = flow.cluster
        else:
            c = flow.cluster
            args.scheduler = c.get("scheduler")
            args.n_workers = c.get("n_workers")
            args.threads_per_worker = c.get("threads_per_worker")
            args.memory_limit = c.get("memory_limit")
            args.processes = bool(c.get("processes", False))
    pars = {"steps": {k: dict(v) for k, v in flow.steps.items()},
            "parameters": dict(flow.parameters), "step": None,
            "class": "Detector1Pipeline"}
    return pars, list(flow.inputs) + list(more_inputs)


def _outcome_printer(total):
    """Print each exposure's outcome as it comes, with the program's progress."""
    seen = []

    def show(outcome):
        seen.append(outcome)
        _print_outcome(outcome, f"[{len(seen)}/{total}] " if total > 1 else "")

    return show


def _print_outcome(outcome, progress=""):
    from detflow.program import DONE, SKIPPED

    name = progress + Path(outcome.exposure).name
    if outcome.status == DONE:
        for item in outcome.written:
            print(f"  wrote {item}")
        print(f"{name}: done in {outcome.seconds:.1f} s")
    elif outcome.status == SKIPPED:
        print(f"{name}: skipped (its products exist; --overwrite redoes it)")
    else:
        print(f"{name}: {outcome.status}: {outcome.error}", file=sys.stderr)


def _print_summary(outcomes):
    from detflow.program import summary_rows

    rows = [("exposure", "status", "time", "error")] + summary_rows(outcomes)
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    print()
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3])
    counts = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    print(", ".join(f"{n} {status}" for status, n in counts.items()))


def _intermediates_arg(value):
    """``--save-intermediates zarr`` -> "all"; ``zarr:jump,ramp_fit`` -> those steps."""
    if value is None:
        return None
    if isinstance(value, list | tuple) or value == "all":  # from a workflow file
        return value if value == "all" else list(value)
    fmt, _, steps = str(value).partition(":")
    if fmt != "zarr":
        from detflow.errors import ParameterError

        raise ParameterError(f"--save-intermediates {value}: the format is 'zarr' "
                             "(zarr, or zarr:STEP,STEP...)")
    return steps.split(",") if steps else "all"


def _cluster_spec(args):
    if not args.cluster:
        return None
    if args.scheduler:
        from detflow.errors import ParameterError

        raise ParameterError("give --cluster or --scheduler, not both")
    from detflow.runtime.cluster import read_cluster_spec

    return read_cluster_spec(args.cluster)


def _pipeline(pars, step_params, args):
    """The Detector1Pipeline a run uses."""
    from detflow.interfaces import Detector1Pipeline

    own = {k: v for k, v in pars["parameters"].items()}
    pipe = Detector1Pipeline(steps=step_params, refs_dir=args.refs,
                             save_intermediates=_intermediates_arg(args.save_intermediates),
                             **own)
    pipe.output_dir = str(Path(args.output_dir or "."))
    pipe.save_results = True
    return pipe


def _run_program(inputs, pars, step_params, args):
    """Run the pipeline over every input (one exposure or a program); returns the exit
    status: 0, 1 when an exposure failed, 130 on Ctrl-C."""
    from detflow.program import FAILED, run_program

    pipe = _pipeline(pars, step_params, args)

    t_start = time.perf_counter()
    with _scheduler(args, len(inputs)) as client:
        if client is not None:
            from detflow.runtime.warm import on_workers

            on_workers(client)  # worker processes import the steps while we build
        report = contextlib.nullcontext()
        if args.performance_report:
            from distributed import performance_report

            report = performance_report(filename=args.performance_report)
        chains = pipe.persistence_chains(inputs) if len(inputs) > 1 else None
        if chains is not None:
            print(f"persistence: {len(inputs)} exposures chained in start-time order, "
                  f"{len(chains)} chain(s), one per detector")
        try:
            with report:
                outcomes = run_program(
                    inputs, pipe.plan, products=pipe.product_paths,
                    chains=None if chains is None else (lambda _: chains), client=client,
                    max_in_flight=args.max_in_flight, overwrite=args.overwrite,
                    on_event=_outcome_printer(len(inputs)))
        except KeyboardInterrupt as exc:
            _print_summary(getattr(exc, "outcomes", []))
            raise
        if args.performance_report:
            print(f"performance report: {args.performance_report}")
    if len(outcomes) > 1 or any(o.status == FAILED for o in outcomes):
        _print_summary(outcomes)
    print(f"total {time.perf_counter() - t_start:.1f} s")
    return 1 if any(o.status == FAILED for o in outcomes) else 0


@contextlib.contextmanager
def _scheduler(args, n_inputs):
    """Where a run computes (:func:`choose_scheduler`), for the block; prints the
    dashboard's address, or the single-machine scheduler used."""
    from detflow.runtime.cluster import dask_client

    scheduler = choose_scheduler(args, n_inputs)
    with dask_client(scheduler, args.n_workers, args.threads_per_worker,
                     memory_limit=args.memory_limit, processes=args.processes,
                     cluster=_cluster_spec(args)) as client:
        if client is not None:
            print(f"dask dashboard: {client.dashboard_link}")
        else:
            print(f"dask scheduler: {scheduler} (no cluster, no dashboard; "
                  "--dashboard starts a local cluster)")
        yield client


def _run_step_file(inputs, pars, step_params, args):
    """A single-step parameter file: that step alone on each input."""
    t_start = time.perf_counter()
    with _scheduler(args, len(inputs)):
        for path in inputs:
            t0 = time.perf_counter()
            written = _run_one(path, pars, step_params, args)
            for item in written:
                print(f"  wrote {item}")
            print(f"{Path(path).name}: done in {time.perf_counter() - t0:.1f} s")
    print(f"total {time.perf_counter() - t_start:.1f} s")
    return 0


def _run_one(path, pars, step_params, args):
    """Run the single step of a step parameter file on one input; returns the paths
    written."""
    from detflow.interfaces import STEP_CLASS_BY_NAME
    from detflow.io.exposure import open_exposure
    from detflow.io.products import product_path

    outdir = Path(args.output_dir or ".")
    ds = open_exposure(path)
    alias = pars["step"]
    step = STEP_CLASS_BY_NAME[alias](
        refs_dir=args.refs, **{"skip": False, **step_params.get(alias, {})}
    )
    step.output_dir = str(outdir)
    step.save_results = True
    step.run(ds)
    suffixes = ("rate", "rateints") if alias == "ramp_fit" else (step.product_suffix,)
    return [product_path(path, outdir, sfx) for sfx in suffixes]


def _dry_run(inputs, pars, step_params, args):
    """Check inputs and resolve every reference file; print the plan (each exposure's
    steps and references: in full for the first one and wherever they differ from
    it), and for a program what the scheduler will hold. Nothing is computed."""
    from detflow.io.exposure import open_exposure

    first = None
    for path in inputs:
        t0 = time.perf_counter()
        ds = open_exposure(path)
        rows = _dry_run_rows(ds, pars, step_params, args.refs)
        head = (f"{Path(path).name}: {ds.attrs.get('instrument')} {ds.attrs.get('detector')} "
                f"{dict(ds.sizes)}")
        if first is not None and rows == first:
            print(f"{head}: same steps and references ({time.perf_counter() - t0:.2f} s)")
            continue
        first = rows if first is None else first
        print(head)
        for row in rows:
            print(row)
        print(f"  checked in {time.perf_counter() - t0:.2f} s")
    if len(inputs) > 1 and not pars.get("step"):
        _dry_run_program(inputs, pars, step_params, args)
    return 0


def _dry_run_rows(ds, pars, step_params, refs_dir):
    """The plan's lines for one exposure: each step (run or skip) with its reference
    files, and under it one line per reference saying why that file was chosen."""
    from detflow.pipeline.builder import resolve_step_references
    from detflow.pipeline.order import steps_for
    from detflow.steps import get_step, is_implemented

    sequence = steps_for(ds.attrs.get("instrument"))
    if pars.get("step"):
        sequence = [s for s in sequence if s.name == pars["step"]]
    rows = []
    for spec in sequence:
        p = step_params.get(spec.name, {})
        skip = p.get("skip", spec.skip_default) and not pars.get("step")
        refs, whys = [], []
        step = get_step(spec.name) if is_implemented(spec.name) else spec
        chosen = {} if skip else resolve_step_references(step, ds, p, refs_dir)
        for reftype, (ref, why) in chosen.items():
            refs.append(f"{reftype}={Path(ref).name if ref != 'N/A' else 'N/A'}")
            whys.append(f"{' ' * 9}{reftype}: {why}")
        state = "skip" if skip else "run "
        rows.append(f"  {state} {spec.name:<20} {' '.join(refs)}")
        rows.extend(whys)
    return rows


def _dry_run_program(inputs, pars, step_params, args):
    """What a program puts in the scheduler: the first exposure's graph size, times the
    exposures admitted at once; and how persistence chains the exposures."""
    from detflow.program import cluster_tiles, named_tasks

    pipe = _pipeline(pars, step_params, args)
    chains = pipe.persistence_chains(inputs)
    with cluster_tiles():  # (the tiles a program has on a cluster)
        items = pipe.plan(inputs[0]) if chains is None else pipe.plan(
            inputs[0], save_persistence=False)
    carry = getattr(items, "carry", None) if chains is not None else None
    tasks = named_tasks(items, carry)
    graph = {}
    for task in tasks:
        if task is not None:
            graph.update(task.__dask_graph__())
    most = args.max_in_flight
    bound = (f"at most {most} in the scheduler at once (--max-in-flight): at most "
             f"~{most * len(graph)} tasks" if most else
             "at most --max-in-flight in the scheduler at once (default: the cluster's "
             "threads, at least 2)")
    print(f"program: {len(inputs)} exposures; {len(graph)} tasks for "
          f"{Path(inputs[0]).name}; each exposure's graph is built when it is admitted, "
          f"{bound}")
    if chains is None:
        print("persistence: off, exposures independent")
    else:
        sizes = ", ".join(str(len(c)) for c in chains)
        print(f"persistence: chained in start-time order, {len(chains)} chain(s) of "
              f"{sizes} exposure(s), one per detector")


def console_main():
    """Console-script entry point: exits with :func:`main`'s status."""
    sys.exit(main())
