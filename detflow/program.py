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

import contextlib
import glob
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from detflow.errors import DetflowError, InputFileError
from detflow.io.fitsio import is_remote
from detflow.runtime.execute import CARRY, compute_and_write, write_task

#: File names a folder given as input contributes (raw and ramp exposures).
EXPOSURE_PATTERNS = ("*_uncal.fits", "*_ramp.fits")

DONE, SKIPPED, FAILED, CANCELLED = "done", "skipped", "failed", "cancelled"


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


def _error_text(exc):
    if isinstance(exc, DetflowError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


@dataclass(eq=False, slots=True)
class _Job:
    """One exposure to run. In a chained program (persistence), ``prev`` is the
    exposure before it in its detector's chain, whose carried state it takes in."""

    exp: str
    prev: _Job | None = None
    last: bool = True  # last of its chain: writes the chain's shared file
    chained: bool = False
    carry_only: bool = False  # products complete: run only for the state it carries
    needed: bool = False  # the next exposure of the chain takes in its state
    carry: object = None  # its state: array (here), Future (cluster) or _BROKEN
    carry_shape: tuple = ()  # (shape, dtype) of a state held on the cluster
    error: str = ""  # why it failed (for the next one's message)
    stores: tuple = ()  # its Zarr stores (written under temporary names until complete)


class _Broken:
    """The state of an exposure that failed before making it."""


_BROKEN = _Broken()


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
        ``plan(input) -> [(kind, lazy Dataset, path)]``: builds one exposure's graph and
        says what to write (e.g. :meth:`detflow.Detector1Pipeline.plan`). In a chained
        program it is called ``plan(input, persistence_array=..., save_persistence=...)``
        and its result's ``carry`` attribute is the state the next exposure takes in.
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

    complete = {exp: not overwrite and products is not None and is_complete(products(exp))
                for exp in inputs}
    for exp in inputs:
        if complete[exp]:
            decide(outcomes[exp], SKIPPED)
    groups = chains(list(inputs)) if chains is not None and len(inputs) > 1 else None
    jobs = _jobs(inputs, groups, complete)
    try:
        if client is None:
            _run_here(jobs, plan, outcomes, decide)
        else:
            _run_on_cluster(jobs, plan, outcomes, decide, client, max_in_flight,
                            program=len(inputs) > 1)
    except KeyboardInterrupt as exc:
        for outcome in outcomes.values():
            if not outcome.status:
                decide(outcome, CANCELLED, "interrupted")
        exc.outcomes = [outcomes[e] for e in inputs]
        raise
    return [outcomes[e] for e in inputs]


def _jobs(inputs, groups, complete):
    """The exposures to run, in the order to admit them: as given, or, for chains,
    the first of every chain, then the second of every chain, ... (so each one's
    predecessor is admitted before it, and chains progress side by side)."""
    if groups is None:  # made as they are admitted: a long program holds none ahead
        return (_Job(exp) for exp in inputs if not complete[exp])
    if sorted(e for g in groups for e in g) != sorted(inputs):
        raise ValueError("the chains must hold every input once")
    columns = []
    for group in groups:
        # everything before the last exposure to redo makes its state for the next one
        last_todo = max((i for i, e in enumerate(group) if not complete[e]), default=-1)
        prev = None
        for i, exp in enumerate(group[: last_todo + 1]):
            job = _Job(exp, prev=prev, last=i == len(group) - 1, chained=True,
                       carry_only=complete[exp], needed=i < last_todo)
            if len(columns) <= i:
                columns.append([])
            columns[i].append(job)
            prev = job
    return [job for column in columns for job in column]


def _chain_error(job):
    """Why ``job`` cannot run: its predecessor failed before making its state (or "")."""
    prev = job.prev
    if prev is None or prev.carry is not _BROKEN:
        return ""
    name = Path(prev.exp).name if not is_remote(prev.exp) else prev.exp
    return (f"persistence chain: the previous exposure of this detector, {name}, "
            f"failed: {prev.error.splitlines()[0] if prev.error else 'no state'}")


def cluster_tiles():
    """Tiles for a program on a distributed scheduler, for the block: neighbouring
    amplifiers joined up to :data:`detflow.io.chunks.CLUSTER_JOIN_BYTES` (fewer, larger
    tasks; each costs the scheduler about a millisecond), unless the Dask setting
    ``detflow.tiles.join-bytes`` is the user's own."""
    import dask

    from detflow.io.chunks import CLUSTER_JOIN_BYTES, JOIN_KEY

    if dask.config.get(JOIN_KEY, None) is not None:
        return contextlib.nullcontext()
    return dask.config.set({JOIN_KEY: CLUSTER_JOIN_BYTES})


def _plan_job(plan, job, incoming):
    items = plan(job.exp) if not job.chained else plan(
        job.exp, persistence_array=incoming, save_persistence=job.last)
    job.stores = tuple(path for kind, _, path in items if kind == "zarr")
    return items


def _remove_partial_stores(job):
    """The Zarr stores a failed or cancelled exposure left half written under their
    temporary names (a complete store is moved to its name at the very end)."""
    for path in job.stores:
        path = Path(path)
        for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.part"):
            shutil.rmtree(tmp, ignore_errors=True)


def _carry_item(items):
    carry = getattr(items, "carry", None)
    return None if carry is None else (CARRY, carry, None)


def _run_here(jobs, plan, outcomes, decide):
    for job in jobs:
        outcome = outcomes[job.exp]
        t0 = time.perf_counter()
        items, reason = None, _chain_error(job)
        try:
            if reason:
                raise _ChainBroken(reason)
            items = _plan_job(plan, job, None if job.prev is None else job.prev.carry)
            todo = [] if job.carry_only else list(items)
            carry = _carry_item(items) if job.needed else None
            written = compute_and_write(todo + ([carry] if carry else []))
        except Exception as exc:  # one exposure's failure does not stop the program
            _remove_partial_stores(job)
            job.error = _error_text(exc)
            job.carry = _salvage_carry(items) if job.needed and items is not None else None
            if job.needed and job.carry is None:
                job.carry = _BROKEN
            if not job.carry_only:
                outcome.seconds = time.perf_counter() - t0
                decide(outcome, FAILED, job.error)
            continue
        except BaseException:  # Ctrl-C: no half-written store left behind
            _remove_partial_stores(job)
            raise
        finally:
            if job.prev is not None and job.prev.carry is not _BROKEN:
                job.prev.carry = None  # taken in: let it go
        if job.needed:
            job.carry = next((ds.values for kind, ds, _ in written if kind == CARRY), None)
        if not job.carry_only:
            outcome.seconds = time.perf_counter() - t0
            decide(outcome, DONE, written=[str(p) for k, _, p in written
                                           if p is not None and k != CARRY])


class _ChainBroken(DetflowError):
    """The previous exposure of a chain failed before making its state."""


def _salvage_carry(items):
    """An exposure failed after its graph was built: its state alone, when that part of
    the graph still computes (a later step failed), for the next exposure of the chain;
    None when it does not."""
    carry = getattr(items, "carry", None)
    if carry is None:
        return None
    try:
        return carry.values
    except Exception:
        return None


def named_tasks(items, carry=None, write=True):
    """``(write, keep)``: the tasks of one exposure on a worker -- ``write`` computes and
    writes ``items`` (None when ``write`` is False), ``keep`` holds the computed state
    ``carry`` (a lazy DataArray) in the cluster's memory for the next exposure of its
    chain (None without it) -- renamed together after the steps and the exposure when
    ``items`` tells them (a :class:`detflow.interfaces.Plan`), so what they share runs
    once."""
    import dask
    import numpy as np

    from detflow.runtime.names import label_by_step, step_owners

    stages, root = getattr(items, "stages", None), getattr(items, "root", None)
    tasks = (write_task(items) if write else None,
             None if carry is None else dask.delayed(np.asarray, pure=True)(carry.data))
    live = [t for t in tasks if t is not None]
    if stages and root:
        live = label_by_step(live, step_owners(stages), root)
    else:
        live = list(dask.optimize(*live))
    named = iter(live)
    return tuple(None if t is None else next(named) for t in tasks)


def _incoming(job):
    """The state ``job`` takes in: its predecessor's (a Future on a cluster) as a lazy
    array, or None."""
    if job.prev is None or job.prev.carry is None:
        return None
    carry = job.prev.carry
    if not hasattr(carry, "key"):  # an array computed here
        return carry
    import dask
    import dask.array as da

    shape, dtype = job.prev.carry_shape
    return da.from_delayed(dask.delayed(carry), shape, dtype=dtype)
def _least_busy_worker(client, busy, given=()):
    """The worker with the fewest exposures in flight (``busy``: their workers; ties go
    to the one given the fewest so far, ``given``), for the next exposure: its tasks
    prefer that worker (a loose restriction: another worker
    takes them if it is lost or idle), so an exposure's tiles mostly stay in one
    process instead of travelling between workers (measured: +24 % program
    throughput on two worker processes). None when the scheduler names no worker."""
    try:
        workers = sorted(client.scheduler_info()["workers"])
    except Exception:  # a scheduler that does not answer: let it place the tasks
        return None
    if not workers:
        return None
    given = list(given)
    return min(workers, key=lambda w: (busy.count(w), given.count(w), workers.index(w)))


def _default_in_flight(client):
    try:
        threads = sum(client.nthreads().values())
    except Exception:  # a scheduler that does not answer yet
        threads = 0
    return max(2, threads)


def _as_completed():
    from distributed import as_completed

    return as_completed()


def _run_on_cluster(jobs, plan, outcomes, decide, client, max_in_flight, program=True):
    limit = max_in_flight or _default_in_flight(client)
    # a program's parallelism is its exposures: larger tiles, fewer tasks; one exposure
    # alone keeps one amplifier per tile (its parallelism, and less in memory at once)
    tiles = cluster_tiles if program else contextlib.nullcontext
    queue = iter(jobs)
    holding = set()  # the exposures whose state the cluster holds for the next one
    active = {}  # future key -> (job, start, preferred worker)
    placed = []  # the preferred worker of every exposure admitted so far
    futures = _as_completed()

    def fail(job, t0, error):
        _remove_partial_stores(job)
        job.error = error
        if job.needed:
            job.carry = _BROKEN
        holding.discard(job.prev)
        _let_go_of_prev(job)
        if not job.carry_only:
            outcomes[job.exp].seconds = time.perf_counter() - t0
            decide(outcomes[job.exp], FAILED, error)

    def admit():
        while len(active) < limit:
            job = next(queue, None)
            if job is None:
                return
            t0 = time.perf_counter()
            reason = _chain_error(job)
            if reason:
                fail(job, t0, reason)
                continue
            try:
                worker = _least_busy_worker(client, [a[2] for a in active.values()],
                                            placed)
                placed.append(worker)
                where = {} if worker is None else {"workers": [worker],
                                                   "allow_other_workers": True}
                with tiles():
                    items = _plan_job(plan, job, _incoming(job))
                carry = getattr(items, "carry", None) if job.needed else None
                write, keep = named_tasks(items, carry, write=not job.carry_only)
                submitted = client.compute([t for t in (write, keep) if t is not None],
                                           optimize_graph=False, **where)
            except Exception as exc:  # building the graph failed: bad input, bad reference
                fail(job, t0, _error_text(exc))
                continue
            if keep is not None:
                job.carry, job.carry_shape = submitted[-1], (carry.shape, carry.dtype)
                holding.add(job)
            tracked = submitted[0]
            active[tracked.key] = (job, t0, worker)
            futures.add(tracked)

    try:
        admit()
        for future in futures:
            job, t0, _ = active.pop(future.key)
            outcome = outcomes[job.exp]
            try:
                written = future.result()
            except Exception as exc:
                _remove_partial_stores(job)
                error = _chain_failure(job) or _error_text(exc)
                job.error = error
                if job.needed and getattr(job.carry, "status", "") == "error":
                    job.carry = _BROKEN
                if not job.carry_only:
                    outcome.seconds = time.perf_counter() - t0
                    decide(outcome, FAILED, error)
            else:
                if not job.carry_only:
                    outcome.seconds = time.perf_counter() - t0
                    decide(outcome, DONE, written=[p for _, p in written if p is not None])
            finally:
                future.release()
                holding.discard(job.prev)
                _let_go_of_prev(job)
            admit()
    except BaseException:
        for future in list(futures.futures):
            future.cancel()
        for job, _, _ in active.values():
            _remove_partial_stores(job)
        for job in holding:
            if hasattr(job.carry, "cancel"):
                job.carry.cancel()
        raise


def _chain_failure(job):
    """The message when ``job`` failed because its predecessor's state did (a failed
    dependency on the cluster), else ""."""
    prev = job.prev
    if prev is not None and prev.carry is _BROKEN:
        return _chain_error(job)
    if prev is None or getattr(prev.carry, "status", "") != "error":
        return ""
    try:
        prev.carry.result()
    except Exception as exc:
        prev.error = prev.error or _error_text(exc)
    prev.carry = _BROKEN
    return _chain_error(job)


def _let_go_of_prev(job):
    """``job`` is finished: the state it took in is needed no more."""
    prev, job.prev = job.prev, None
    if prev is not None and hasattr(prev.carry, "release"):
        prev.carry.release()
        prev.carry = None


def summary_rows(outcomes: Sequence[Outcome]) -> list[tuple[str, str, str, str]]:
    """``(exposure, status, time, error)`` rows for a summary table."""
    return [(Path(o.exposure).name if not is_remote(o.exposure) else o.exposure, o.status,
             f"{o.seconds:.1f} s" if o.status in (DONE, FAILED) else "-",
             o.error.splitlines()[0] if o.error else "") for o in outcomes]
