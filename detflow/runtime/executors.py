"""Executors: where a program's exposures are computed, created by name
(:func:`create_executor`, as cubed's ``create_executor``).

* ``"local"``: one exposure after the other on Dask's current scheduler (threads, each
  exposure using every core), products written from here;
* ``"cluster"``: a ``distributed.Client``; at most ``max_in_flight`` exposures in the
  scheduler at once, each exposure's graph built only when it is admitted, its
  products computed and written by one task on a worker (no product passes through the
  client), its tasks placed on the least busy worker.

Both take the jobs of :func:`detflow.runtime.jobs.order_jobs`, a ``plan`` callable
(``plan(input) -> ProductPlan``; chained: ``plan(input, persistence_array=...,
save_persistence=...)``) and a ``finish(job, status, error, written)`` callback, and
share the failure bookkeeping of :mod:`detflow.runtime.jobs`: one exposure's failure
never stops the others.
"""

from __future__ import annotations

import time

from detflow.pipeline.plan import Product, ProductPlan
from detflow.runtime.execute import CARRY, compute_and_write, write_task
from detflow.runtime.jobs import (
    ChainBroken,
    Handoff,
    chain_error,
    error_text,
    failed,
    remove_partial_stores,
    succeeded,
)

__all__ = ["ClusterExecutor", "LocalExecutor", "create_executor", "named_tasks"]


def create_executor(name, **options):
    """An executor by name: ``"local"`` (no options) or ``"cluster"`` (``client``,
    ``max_in_flight``; see :class:`ClusterExecutor`)."""
    executors = {"local": LocalExecutor, "cluster": ClusterExecutor}
    if name not in executors:
        raise ValueError(f"unknown executor {name!r}; executors are: {', '.join(executors)}")
    return executors[name](**options)


def as_plan(items):
    """A plan callable's result as a :class:`ProductPlan` (a plain list of
    ``(kind, Dataset, path)`` is a plan with nothing to name its tasks after)."""
    if isinstance(items, ProductPlan):
        return items
    return ProductPlan(root="", products=tuple(Product(*item) for item in items))


def plan_job(plan, job):
    """Build ``job``'s plan (its graph), taking in its predecessor's state."""
    items = plan(job.exp) if not job.chained else plan(
        job.exp, persistence_array=_incoming(job), save_persistence=job.last)
    items = as_plan(items)
    job.stores = items.stores
    return items


def _incoming(job):
    """The state ``job`` takes in: its predecessor's (a Future on a cluster, as a lazy
    array), or None."""
    handoff = None if job.prev is None else job.prev.handoff
    if handoff is None or handoff.value is None:
        return None
    if not hasattr(handoff.value, "key"):  # an array computed here
        return handoff.value
    import dask
    import dask.array as da

    return da.from_delayed(dask.delayed(handoff.value), handoff.shape, dtype=handoff.dtype)


def named_tasks(items, carry=None, write=True):
    """``(write, keep)``: the tasks of one exposure on a worker -- ``write`` computes and
    writes ``items`` (None when ``write`` is False), ``keep`` holds the computed state
    ``carry`` (a lazy DataArray) in the cluster's memory for the next exposure of its
    chain (None without it) -- renamed together after the steps and the exposure when
    the plan names them (its ``stages`` and ``root``), so what they share runs once."""
    import dask
    import numpy as np

    from detflow.runtime.names import label_by_step, step_owners

    items = as_plan(items)
    tasks = (write_task(items.products) if write else None,
             None if carry is None else dask.delayed(np.asarray, pure=True)(carry.data))
    live = [t for t in tasks if t is not None]
    if items.stages and items.root:
        live = label_by_step(live, step_owners(items.stages), items.root)
    else:
        live = list(dask.optimize(*live))
    named = iter(live)
    return tuple(None if t is None else next(named) for t in tasks)


class LocalExecutor:
    """One exposure after the other on Dask's current scheduler."""

    name = "local"

    def run(self, jobs, plan, finish):
        """Run ``jobs``; see the module's docstring."""
        for job in jobs:
            job.t0 = time.perf_counter()
            items = None
            try:
                reason = chain_error(job)
                if reason:
                    raise ChainBroken(reason)
                items = plan_job(plan, job)
                todo = [] if job.carry_only else list(items.products)
                if job.needed and items.carry is not None:
                    todo.append((CARRY, items.carry, None))
                written = compute_and_write(todo)
            except Exception as exc:  # one exposure's failure does not stop the program
                salvaged = _salvage(items) if job.needed else None
                if salvaged is not None:
                    job.handoff = Handoff(salvaged)
                failed(job, error_text(exc), finish, state_lost=salvaged is None)
                continue
            except BaseException:  # Ctrl-C: no half-written store left behind
                remove_partial_stores(job)
                raise
            finally:
                job.let_go_of_prev()
            if job.needed:
                job.handoff = Handoff(next((ds.values for kind, ds, _ in written
                                            if kind == CARRY), None))
            succeeded(job, [str(p) for k, _, p in written if p is not None and k != CARRY],
                      finish)


def _salvage(items):
    """An exposure failed after its graph was built: its state alone, when that part of
    the graph still computes (a later step failed), for the next exposure of the chain;
    None when it does not."""
    if items is None or items.carry is None:
        return None
    try:
        return items.carry.values
    except Exception:
        return None


def _least_busy_worker(client, busy, given=()):
    """The worker with the fewest exposures in flight (``busy``: their workers; ties go
    to the one given the fewest so far, ``given``), for the next exposure: its tasks
    prefer that worker (a loose restriction: another worker takes them if it is lost or
    idle), so an exposure's tiles mostly stay in one process instead of travelling
    between workers (measured: +24 % program throughput on two worker processes). None
    when the scheduler names no worker."""
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


class ClusterExecutor:
    """Exposures on a ``distributed.Client``, ``max_in_flight`` at a time (default: the
    cluster's threads, at least 2). The tiles are the plan's (its ``tiling``)."""

    name = "cluster"

    def __init__(self, client, max_in_flight=None):
        self.client = client
        self.max_in_flight = max_in_flight

    def run(self, jobs, plan, finish):
        """Run ``jobs``; see the module's docstring."""
        client = self.client
        limit = self.max_in_flight or _default_in_flight(client)
        queue = iter(jobs)
        holding = set()  # the exposures whose state the cluster holds for the next one
        active = {}  # future key -> (job, preferred worker)
        placed = []  # the preferred worker of every exposure admitted so far
        futures = _as_completed()

        def fail(job, error):
            failed(job, error, finish)
            holding.discard(job.prev)
            job.let_go_of_prev()

        def admit():
            while len(active) < limit:
                job = next(queue, None)
                if job is None:
                    return
                job.t0 = time.perf_counter()
                reason = chain_error(job)
                if reason:
                    fail(job, reason)
                    continue
                try:
                    worker = _least_busy_worker(client, [a[1] for a in active.values()],
                                                placed)
                    placed.append(worker)
                    where = {} if worker is None else {"workers": [worker],
                                                       "allow_other_workers": True}
                    items = plan_job(plan, job)
                    carry = items.carry if job.needed else None
                    write, keep = named_tasks(items, carry, write=not job.carry_only)
                    submitted = client.compute([t for t in (write, keep) if t is not None],
                                               optimize_graph=False, **where)
                except Exception as exc:  # building the graph failed: bad input, reference
                    fail(job, error_text(exc))
                    continue
                if keep is not None:
                    job.handoff = Handoff(submitted[-1], carry.shape, carry.dtype)
                    holding.add(job)
                tracked = submitted[0]
                active[tracked.key] = (job, worker)
                futures.add(tracked)

        try:
            admit()
            for future in futures:
                job, _ = active.pop(future.key)
                try:
                    written = future.result()
                except Exception as exc:
                    error = _chain_failure(job) or error_text(exc)
                    state = None if job.handoff is None else job.handoff.value
                    failed(job, error, finish,
                           state_lost=getattr(state, "status", "") == "error")
                else:  # (a job run only for its state tracks that state's future)
                    if not job.carry_only:
                        succeeded(job, [p for _, p in written if p is not None], finish)
                finally:
                    future.release()
                    holding.discard(job.prev)
                    job.let_go_of_prev()
                admit()
        except BaseException:
            for future in list(futures.futures):
                future.cancel()
            for job, _ in active.values():
                remove_partial_stores(job)
            for job in holding:
                state = None if job.handoff is None else job.handoff.value
                if hasattr(state, "cancel"):
                    state.cancel()
            raise


def _chain_failure(job):
    """The message when ``job`` failed because its predecessor's state did (a failed
    dependency on the cluster), else ""."""
    prev = job.prev
    handoff = None if prev is None else prev.handoff
    if handoff is not None and handoff.lost:
        return chain_error(job)
    if handoff is None or getattr(handoff.value, "status", "") != "error":
        return ""
    try:
        handoff.value.result()
    except Exception as exc:
        prev.error = prev.error or error_text(exc)
    prev.handoff = Handoff(lost=True)
    return chain_error(job)
