"""``detflow run``: a program of exposures (one or many) on the scheduler a run chooses,
a single step of a step parameter file, or the dry run; from one frozen
:class:`~detflow.cli.config.RunConfig`."""

import contextlib
import sys
import time
from functools import partial
from pathlib import Path

from detflow.tiling import Tiling

__all__ = ["choose_scheduler", "cmd_run", "compile_notice"]


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


def cmd_run(args, extra):
    """``detflow run``; returns the exit status."""
    from detflow.cli.config import run_config
    from detflow.program import expand_inputs

    config = run_config(args, extra)
    if config.workflow:
        print(f"workflow {config.workflow}: {config.workflow_patterns} input pattern(s)")
    inputs = expand_inputs(config.inputs)
    if config.dry_run:
        return _dry_run(inputs, config)
    compile_notice()
    if config.step:
        return _run_step_file(inputs, config)
    return _run_program(inputs, config)


def compile_notice():
    """Say once on stderr that this run compiles detflow's kernels when numba's on-disk
    cache does not hold them yet (a fresh install: a minute or more of silence
    otherwise); see :func:`detflow.runtime.warm.uncompiled_kernels`. Returns whether it
    was said."""
    from detflow.runtime.warm import uncompiled_kernels

    try:
        missing = uncompiled_kernels()
    except Exception:  # numba's cache not readable here: say nothing
        return False
    if missing:
        print("detflow: compiling detflow's kernels, first run only (a minute or more)",
              file=sys.stderr, flush=True)
    return bool(missing)


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


def _cluster_spec(config):
    if not config.cluster:
        return None
    if config.scheduler:
        from detflow.errors import ParameterError

        raise ParameterError("give --cluster or --scheduler, not both")
    from detflow.runtime.cluster import read_cluster_spec

    return read_cluster_spec(config.cluster)


def _pipeline(config):
    """The Detector1Pipeline a run uses."""
    from detflow.interfaces import Detector1Pipeline

    pipe = Detector1Pipeline(steps=config.step_params(), refs_dir=config.refs,
                             save_intermediates=config.save_intermediates,
                             **config.parameters)
    pipe.output_dir = str(Path(config.output_dir or "."))
    pipe.save_results = True
    return pipe


def _run_program(inputs, config):
    """Run the pipeline over every input (one exposure or a program); returns the exit
    status: 0, 1 when an exposure failed, 130 on Ctrl-C."""
    from detflow.program import FAILED, run_program

    pipe = _pipeline(config)

    t_start = time.perf_counter()
    with _scheduler(config, len(inputs)) as client:
        if client is not None:
            from detflow.runtime.warm import on_workers

            on_workers(client)  # worker processes import the steps while we build
        report = contextlib.nullcontext()
        if config.performance_report:
            from distributed import performance_report

            report = performance_report(filename=config.performance_report)
        chains = pipe.persistence_chains(inputs) if len(inputs) > 1 else None
        if chains is not None:
            print(f"persistence: {len(inputs)} exposures chained in start-time order, "
                  f"{len(chains)} chain(s), one per detector")
        # a program's parallelism on a cluster is its exposures: larger tiles
        tiling = Tiling.for_run(cluster=client is not None, exposures=len(inputs))
        try:
            with report:
                outcomes = run_program(
                    inputs, partial(pipe.plan, tiling=tiling), products=pipe.product_paths,
                    chains=None if chains is None else (lambda _: chains), client=client,
                    max_in_flight=config.max_in_flight, overwrite=config.overwrite,
                    on_event=_outcome_printer(len(inputs)))
        except KeyboardInterrupt as exc:
            _print_summary(getattr(exc, "outcomes", []))
            raise
        if config.performance_report:
            print(f"performance report: {config.performance_report}")
    if len(outcomes) > 1 or any(o.status == FAILED for o in outcomes):
        _print_summary(outcomes)
    print(f"total {time.perf_counter() - t_start:.1f} s")
    return 1 if any(o.status == FAILED for o in outcomes) else 0


@contextlib.contextmanager
def _scheduler(config, n_inputs):
    """Where a run computes (:func:`choose_scheduler`), for the block; prints the
    dashboard's address, or the single-machine scheduler used."""
    from detflow.runtime.cluster import dask_client

    scheduler = choose_scheduler(config, n_inputs)
    with dask_client(scheduler, config.n_workers, config.threads_per_worker,
                     memory_limit=config.memory_limit, processes=config.processes,
                     cluster=_cluster_spec(config)) as client:
        if client is not None:
            print(f"dask dashboard: {client.dashboard_link}")
        else:
            print(f"dask scheduler: {scheduler} (no cluster, no dashboard; "
                  "--dashboard starts a local cluster)")
        yield client


def _run_step_file(inputs, config):
    """A single-step parameter file: that step alone on each input."""
    t_start = time.perf_counter()
    with _scheduler(config, len(inputs)):
        for path in inputs:
            t0 = time.perf_counter()
            written = _run_one(path, config)
            for item in written:
                print(f"  wrote {item}")
            print(f"{Path(path).name}: done in {time.perf_counter() - t0:.1f} s")
    print(f"total {time.perf_counter() - t_start:.1f} s")
    return 0


def _run_one(path, config):
    """Run the single step of a step parameter file on one input, as the step's
    :meth:`~detflow.interfaces.Step.run` does; returns the paths written."""
    from detflow.interfaces import STEP_CLASS_BY_NAME
    from detflow.runtime.execute import compute_and_write

    alias = config.step
    step = STEP_CLASS_BY_NAME[alias](
        refs_dir=config.refs, **{"skip": False, **config.steps.get(alias, {})})
    step.output_dir = str(Path(config.output_dir or "."))
    step.save_results = True
    return [p for _, _, p in compute_and_write(step.plan(path)) if p is not None]


def _dry_run(inputs, config):
    """Check inputs and resolve every reference file; print the plan (each exposure's
    steps and references: in full for the first one and wherever they differ from
    it), and for a program what the scheduler will hold. Nothing is computed."""
    from detflow.io.exposure import open_exposure

    first = None
    for path in inputs:
        t0 = time.perf_counter()
        ds = open_exposure(path)
        rows = _dry_run_rows(ds, config)
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
    if len(inputs) > 1 and not config.step:
        _dry_run_program(inputs, config)
    return 0


def _dry_run_rows(ds, config):
    """The plan's lines for one exposure: each step (run or skip) with its reference
    files, and under it one line per reference saying why that file was chosen; the
    steps and references as the run chooses them (the graph builder's)."""
    from detflow.pipeline.builder import resolve_step_references, step_sequence

    rows = []
    for step, params, skip in step_sequence(ds, config.steps, only=config.step):
        refs, whys = [], []
        chosen = {} if skip else resolve_step_references(step, ds, params, config.refs)
        for reftype, (ref, why) in chosen.items():
            refs.append(f"{reftype}={Path(ref).name if ref != 'N/A' else 'N/A'}")
            whys.append(f"{' ' * 9}{reftype}: {why}")
        state = "skip" if skip else "run "
        rows.append(f"  {state} {step.name:<20} {' '.join(refs)}")
        rows.extend(whys)
    return rows


def _dry_run_program(inputs, config):
    """What a program puts in the scheduler: the first exposure's graph size, times the
    exposures admitted at once; and how persistence chains the exposures."""
    from detflow.runtime.executors import named_tasks

    pipe = _pipeline(config)
    chains = pipe.persistence_chains(inputs)
    # (the tiles a program has on a cluster)
    tiling = Tiling.for_run(cluster=True, exposures=len(inputs))
    items = pipe.plan(inputs[0], tiling=tiling) if chains is None else pipe.plan(
        inputs[0], save_persistence=False, tiling=tiling)
    carry = items.carry if chains is not None else None
    tasks = named_tasks(items, carry)
    graph = {}
    for task in tasks:
        if task is not None:
            graph.update(task.__dask_graph__())
    most = config.max_in_flight
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
