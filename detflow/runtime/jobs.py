"""The jobs of a program: one per exposure to run, in the order to admit them, with the
bookkeeping both executors share (:mod:`detflow.runtime.executors`).

In a program chained by persistence, each exposure hands a state (its persistence
windows) to the next exposure of its detector. A :class:`Job` holds that state as
:class:`Handoff`: made (an array here, a Future on a cluster), or lost with the reason.
"""

from __future__ import annotations

import glob
import shutil
from dataclasses import dataclass
from pathlib import Path

from detflow.errors import DetflowError
from detflow.io.files import is_remote

DONE, SKIPPED, FAILED, CANCELLED = "done", "skipped", "failed", "cancelled"


class ChainBroken(DetflowError):
    """The previous exposure of a chain failed before making its state."""


@dataclass(eq=False, slots=True)
class Handoff:
    """The state an exposure of a chain makes for the next one: ``value`` (an array
    computed here, or a Future held by the cluster with its ``shape`` and ``dtype``),
    or ``lost`` (the exposure failed before making it)."""

    value: object = None
    shape: tuple = ()
    dtype: object = None
    lost: bool = False

    def release(self):
        """Let the value go (the next exposure has taken it in)."""
        if hasattr(self.value, "release"):
            self.value.release()
        self.value = None


@dataclass(eq=False, slots=True)
class Job:
    """One exposure to run. In a chained program (persistence), ``prev`` is the
    exposure before it in its detector's chain, whose :class:`Handoff` it takes in."""

    exp: str
    prev: Job | None = None
    last: bool = True  # last of its chain: writes the chain's shared file
    chained: bool = False
    carry_only: bool = False  # products complete: run only for the state it hands on
    needed: bool = False  # the next exposure of the chain takes in its state
    handoff: Handoff | None = None  # its state, once made (or lost)
    error: str = ""  # why it failed (for the next one's message)
    stores: tuple = ()  # its Zarr stores (written under temporary names until complete)
    t0: float = 0.0  # when it was admitted

    def lose_state(self):
        """It failed before making the state the next exposure needs."""
        if self.needed:
            if self.handoff is not None:
                self.handoff.release()
            self.handoff = Handoff(lost=True)

    def let_go_of_prev(self):
        """It is finished: the state it took in is needed no more."""
        prev, self.prev = self.prev, None
        if prev is not None and prev.handoff is not None and not prev.handoff.lost:
            prev.handoff.release()


def order_jobs(inputs, groups, complete):
    """The exposures to run, in the order to admit them: as given, or, for chains
    (``groups``), the first of every chain, then the second of every chain, ... (so
    each one's predecessor is admitted before it, and chains progress side by side).
    ``complete`` says which exposures' products all exist."""
    if groups is None:  # made as they are admitted: a long program holds none ahead
        return (Job(exp) for exp in inputs if not complete[exp])
    if sorted(e for g in groups for e in g) != sorted(inputs):
        raise ValueError("the chains must hold every input once")
    columns = []
    for group in groups:
        # everything before the last exposure to redo makes its state for the next one
        last_todo = max((i for i, e in enumerate(group) if not complete[e]), default=-1)
        prev = None
        for i, exp in enumerate(group[: last_todo + 1]):
            job = Job(exp, prev=prev, last=i == len(group) - 1, chained=True,
                      carry_only=complete[exp], needed=i < last_todo)
            if len(columns) <= i:
                columns.append([])
            columns[i].append(job)
            prev = job
    return [job for column in columns for job in column]


def chain_error(job):
    """Why ``job`` cannot run: its predecessor failed before making its state (or "")."""
    prev = job.prev
    if prev is None or prev.handoff is None or not prev.handoff.lost:
        return ""
    name = Path(prev.exp).name if not is_remote(prev.exp) else prev.exp
    return (f"persistence chain: the previous exposure of this detector, {name}, "
            f"failed: {prev.error.splitlines()[0] if prev.error else 'no state'}")


def error_text(exc):
    """One exposure's error as its outcome says it."""
    if isinstance(exc, DetflowError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def remove_partial_stores(job):
    """The Zarr stores a failed or cancelled exposure left half written under their
    temporary names (a complete store is moved to its name at the very end)."""
    for path in job.stores:
        path = Path(path)
        for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.part"):
            shutil.rmtree(tmp, ignore_errors=True)


def failed(job, error, finish, *, state_lost=True):
    """Record that ``job`` failed with ``error``: its partial stores removed, its state
    lost for the next exposure (unless ``state_lost`` is False: it was made), and
    ``finish(job, FAILED, error)`` unless it ran only for its state."""
    remove_partial_stores(job)
    job.error = error
    if state_lost:
        job.lose_state()
    if not job.carry_only:
        finish(job, FAILED, error)


def succeeded(job, written, finish):
    """Record that ``job`` wrote ``written`` (paths)."""
    if not job.carry_only:
        finish(job, DONE, "", written)
