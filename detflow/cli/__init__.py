"""The ``detflow`` command line (also ``python -m detflow``).

Sub-commands: ``simulate``, ``info``, ``params``, ``run``. Every user error is reported
as one line ``detflow: error: ...`` on stderr with exit status 2, never as a raw
traceback (``--debug`` shows one).

Modules: this one (the parser, ``main``, logging); :mod:`.config` (one run's frozen
configuration, merged from the command line, a workflow or parameter file and the
defaults); :mod:`.run` (``detflow run``: a program, a single step, the dry run);
:mod:`.describe` (``simulate`` and ``info``).
"""

import argparse
import sys
from pathlib import Path

from detflow import __version__
from detflow.cli.describe import cmd_info, cmd_simulate
from detflow.cli.run import choose_scheduler, cmd_run
from detflow.errors import DetflowError

__all__ = ["choose_scheduler", "console_main", "main", "setup_logging",
           "step_parameter_help"]

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
                          "SUBGRISM128 (NIRCam); FULL, BRIGHTSKY, SUB256, SUB128, SUB64, "
                          "SLITLESSPRISM, MASK1065, MASK1140, MASK1550, MASKLYOT (MIRI)")
    sim.add_argument("--readpatt", default=None,
                     help="read pattern, e.g. RAPID, BRIGHT2, MEDIUM8 (NIRCam; default RAPID) "
                          "or FAST, FASTR1, SLOW, SLOWR1 (full frame), FASTGRPAVG, "
                          "FASTGRPAVG8 ... FASTGRPAVG64 (MIRI; default FAST)")
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
    sim.add_argument("--segment", type=int, default=None, metavar="N",
                     help="write only segment N (1-based) of the exposure, as JWST splits "
                          "time series: INTSTART > 1 for N > 1, NINTS the whole exposure's, "
                          "the name ..._00001-seg00N_<detector>")
    sim.add_argument("--ints-per-segment", type=int, default=None, metavar="M",
                     help="integrations per segment (default: segments of at most ~2 GiB)")
    sim.add_argument("--showers", default=None, metavar="N|auto",
                     help="MIRI cosmic-ray showers: N of them, or 'auto' for a Poisson "
                          "number at a realistic rate (default: none)")
    sim.add_argument("--emi", action="store_true",
                     help="MIRI: add EMI at the real MIRI frequencies and write the matching "
                          "EMICORR reference (refs/*.asdf) for the emicorr step")
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
            return cmd_simulate(args)
        if args.command == "info":
            return cmd_info(args)
        if args.command == "params":
            print(step_parameter_help(args.steps))
            return 0
        if args.command == "run":
            return cmd_run(args, extra)
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


def console_main():
    """Console-script entry point: exits with :func:`main`'s status."""
    sys.exit(main())
