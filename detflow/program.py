"""Programs: many exposures through one Dask scheduler, in bounded memory.

A program is a list of exposures (files, globs, folders). Each exposure's graph is
built on the client only when the exposure is admitted, and at most ``max_in_flight``
exposures are in the scheduler at a time: as one finishes, the next is built and
submitted. The client therefore never holds more than a few exposures' graphs, however
long the program; the workers get a steady stream of work.

Every exposure is independent: its products are computed and written by one task on a
worker (no product passes through the client), its failure is recorded with its error
and does not stop the others, and an exposure whose products all exist is skipped
(outputs are written atomically, so a product that exists is complete) unless
``overwrite`` is set. The result is one :class:`Outcome` per exposure.

Nothing here prints: progress goes to an ``on_event`` callback (the command line
prints it).
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from detflow.errors import DetflowError, InputFileError, ParameterError
from detflow.io.files import is_remote
from detflow.pipeline.plan import product_root
from detflow.runtime.executors import create_executor
from detflow.runtime.jobs import CANCELLED, DONE, FAILED, SKIPPED, order_jobs

#: File names a folder given as input contributes (raw and ramp exposures).
EXPOSURE_PATTERNS = ("*_uncal.fits", "*_ramp.fits")

__all__ = ["CANCELLED", "DONE", "FAILED", "SKIPPED", "Outcome", "expand_inputs",
           "is_complete", "persistence_chains", "run_program", "summary_rows"]


@dataclass
class Outcome:
    """What became of one exposure of a program."""

    exposure: str  # the input, as given (path or URL)
    status: str = ""  # done, skipped, failed, cancelled
    seconds: float = 0.0  # from admission to the end (0 for skipped)
    error: str = ""
    written: list = field(default_factory=list)  # paths written


def expand_inputs(specs: Iterable[str | os.PathLike]) -> list[str]:
    """Exposure inputs from files, URLs, glob patterns and folders, in the order given
    (a pattern's and a folder's matches sorted), each once.

    Raises
    ------
    InputFileError
        A file that does not exist, a pattern that matches nothing, or a folder with no
        ``*_uncal.fits``/``*_ramp.fits``.
    """
    out, seen = [], set()

    def add(item):
        if item not in seen:
            seen.add(item)
            out.append(item)

    for spec in specs:
        spec = os.fspath(spec)
        if is_remote(spec):
            add(spec)
        elif os.path.isdir(spec):
            found = sorted({p for pat in EXPOSURE_PATTERNS
                            for p in glob.glob(os.path.join(spec, pat))})
            if not found:
                raise InputFileError(spec, "the folder holds no *_uncal.fits or *_ramp.fits")
            for p in found:
                add(p)
        elif glob.has_magic(spec):
            found = sorted(glob.glob(spec))
            if not found:
                raise InputFileError(spec, "the pattern matches no file")
            for p in found:
                add(p)
        elif os.path.exists(spec):
            add(spec)
        else:
            raise InputFileError(spec, "file not found")
    return out


def is_complete(paths: Sequence[os.PathLike]) -> bool:
    """Whether every product path exists (products are written atomically: one that
    exists is whole)."""
    return bool(paths) and all(Path(p).exists() for p in paths)


def run_program(
    inputs: Sequence[str],
    plan: Callable[..., list],
    *,
    products: Callable[[str], list] | None = None,
    chains: Callable[[Sequence[str]], list | None] | None = None,
    client=None,
    max_in_flight: int | None = None,
    overwrite: bool = False,
    on_event: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Calibrate every exposure of a program.

    Parameters
    ----------
    inputs : sequence of str
        The exposures (see :func:`expand_inputs`).
    plan : callable
        ``plan(input) -> ProductPlan`` (or a list of ``(kind, lazy Dataset, path)``):
        builds one exposure's graph and says what to write (e.g.
        :meth:`detflow.Detector1Pipeline.plan`; its tiles are the plan's: a program on
        a cluster binds ``tiling=Tiling.for_run(cluster=True, exposures=n)``, fewer and
        larger tasks). In a chained program it is called ``plan(input,
        persistence_array=..., save_persistence=...)`` and the plan's ``carry`` is the
        state the next exposure takes in.
    products : callable, optional
        ``products(input) -> [path]``: the products that make an exposure complete; an
        exposure whose products all exist is skipped unless ``overwrite``.
    chains : callable, optional
        ``chains(inputs) -> [[input, ...], ...] or None`` (e.g.
        :meth:`detflow.Detector1Pipeline.persistence_chains`): exposures whose state
        runs from one to the next, in order. Each exposure's ``persistence_array`` is
        then the previous one's ``carry`` -- on a cluster an edge of the graph, so the
        chain's other steps still run side by side -- and only the last one of a chain
        gets ``save_persistence=True``. An exposure whose products exist but whose state
        a later one needs is computed up to its state (nothing written) and reported
        skipped. When an exposure fails before its state is made, the rest of its chain
        fails with a message naming it.
    client : distributed.Client, optional
        Run on this cluster, ``max_in_flight`` exposures at a time; None: one exposure
        after the other on Dask's current scheduler (each using every core).
    max_in_flight : int, optional
        Exposures in the scheduler at once (default: the cluster's threads, at least 2).
    overwrite : bool
        Redo exposures whose products exist.
    on_event : callable, optional
        Called with each exposure's :class:`Outcome` as it is decided.

    Returns
    -------
    list of Outcome
        In the order of ``inputs``. On Ctrl-C (KeyboardInterrupt) the work in flight
        is cancelled, exposures not finished are ``cancelled`` (no partial product is
        left: outputs are atomic), and the interrupt is raised again with the outcomes
        as its ``outcomes`` attribute.
    """
    outcomes = {exp: Outcome(exp) for exp in inputs}

    def decide(outcome, status, error="", written=()):
        outcome.status, outcome.error, outcome.written = status, error, list(written)
        if on_event is not None:
            on_event(outcome)

    def finish(job, status, error="", written=()):
        outcomes[job.exp].seconds = time.perf_counter() - job.t0
        decide(outcomes[job.exp], status, error, written)

    complete = {exp: not overwrite and products is not None and is_complete(products(exp))
                for exp in inputs}
    for exp in inputs:
        if complete[exp]:
            decide(outcomes[exp], SKIPPED)
    groups = chains(list(inputs)) if chains is not None and len(inputs) > 1 else None
    jobs = order_jobs(inputs, groups, complete)
    executor = create_executor("local") if client is None else create_executor(
        "cluster", client=client, max_in_flight=max_in_flight)
    try:
        executor.run(jobs, plan, finish)
    except KeyboardInterrupt as exc:
        for outcome in outcomes.values():
            if not outcome.status:
                decide(outcome, CANCELLED, "interrupted")
        exc.outcomes = [outcomes[e] for e in inputs]
        raise
    return [outcomes[e] for e in inputs]


def persistence_chains(inputs, params):
    """How a program's exposures are chained by persistence, or None.

    When the persistence step runs (``params``, its parameters: not skipped, a positive
    ``persistence_time``), the exposures of each detector are ordered by start time
    (``EXPSTART``; equal times keep the order given) and each one takes in the windows
    the one before it left (the plan's ``persistence_array``); exposures of different
    detectors are independent. jwst chains them through ``save_persistence`` /
    ``persistence_array_file``, one exposure after another; here the chain is an edge of
    the graph: the first exposure of each detector reads ``persistence_array_file`` (if
    given), the last one writes ``save_persistence``.

    Parameters
    ----------
    inputs : sequence of str
        The program's exposures (paths or URLs).
    params : dict
        The persistence step's parameters.

    Returns
    -------
    list of list of str, or None
        The chains, each in time order, in the order of their first input; None when
        persistence does not run. An input whose header cannot be read is a chain of
        its own (it fails with its error when its graph is built).
    """
    ptime = params.get("persistence_time")
    if params.get("skip") or ptime is None or not ptime > 0:
        return None
    from detflow.io.exposure import detector_and_start

    chains, order = {}, []
    for i, source in enumerate(inputs):
        try:
            detector, start = detector_and_start(source)
        except DetflowError:
            detector, start = None, None
        key = detector if detector is not None else ("unread", i)
        if key not in chains:
            chains[key] = []
            order.append(key)
        chains[key].append((start if start is not None else float("inf"), i, source))
    out = [[source for _, _, source in sorted(chains[key])] for key in order]
    if params.get("persistence_array_file"):
        for key, chain in zip(order, out, strict=True):
            if isinstance(key, str):
                _check_start_windows(params["persistence_array_file"], key, chain)
    return out


def _check_start_windows(path, detector, chain):
    """Refuse a ``persistence_array_file`` whose entry for ``detector`` was written by an
    exposure of ``chain`` (an earlier run of the same program saving to the same file):
    the chain's first exposure would start from windows left after it, counting its own
    and later exposures' charge as persistence. jwst has no such check (it would read
    them); detflow says so instead of giving wrong flags."""
    from detflow.io.persistence import read_persistence_entry

    entry = read_persistence_entry(path, detector)
    if entry is None or not entry.filename:
        return
    written = Path(entry.filename).name
    for source in chain:
        root = product_root(source)
        if written == Path(str(source)).name or written.startswith(root + "_"):
            raise ParameterError(
                f"persistence_array_file {path}: its {detector} entry was written by "
                f"{written}, an exposure of this program (an earlier run saving to the "
                f"same file): the first {detector} exposure, {Path(str(chain[0])).name}, "
                "would start from the windows left after it. Give the file saved before "
                "the program ran, or none.")



def summary_rows(outcomes: Sequence[Outcome]) -> list[tuple[str, str, str, str]]:
    """``(exposure, status, time, error)`` rows for a summary table."""
    return [(Path(o.exposure).name if not is_remote(o.exposure) else o.exposure, o.status,
             f"{o.seconds:.1f} s" if o.status in (DONE, FAILED) else "-",
             o.error.splitlines()[0] if o.error else "") for o in outcomes]
