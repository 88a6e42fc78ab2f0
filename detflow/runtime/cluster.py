"""Where the graph runs: a Dask distributed client on a local cluster or a running scheduler.

Executors are created by name and their modules imported only when asked for.
"""

import contextlib

#: Dask's own single-machine schedulers, usable in place of a distributed cluster.
LOCAL_SCHEDULERS = ("threads", "synchronous", "processes")


def _local_get(name):
    """The ``get`` function of one of Dask's single-machine schedulers."""
    if name == "threads":
        from dask.threaded import get
    elif name == "processes":
        from dask.multiprocessing import get
    else:
        from dask.local import get_sync as get
    return get


@contextlib.contextmanager
def dask_client(scheduler=None, n_workers=None, threads_per_worker=None, memory_limit=None,
                processes=False):
    """A ``distributed.Client`` for the duration of a block.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``), or the name of one of
        Dask's single-machine schedulers (:data:`LOCAL_SCHEDULERS`: no cluster, no
        dashboard, the least overhead; the block then gets ``None``); otherwise a local
        cluster is started (and closed at the end).
    n_workers, threads_per_worker : int, optional
        Local cluster size (defaults: one worker per core pair, as Dask chooses).
    memory_limit : str or int, optional
        Memory limit per worker (e.g. ``"4GiB"``).
    processes : bool
        Workers as separate processes, or (default) threads in this process: the
        kernels are NumPy and compiled (numba, ``nogil``) code that release the GIL, so
        threads share the tiles without copies or serialisation, and nothing is
        imported or started twice.

    Yields
    ------
    distributed.Client or None
    """
    from detflow.runtime.memory import return_freed_memory, worker_environment

    if scheduler in LOCAL_SCHEDULERS:
        import dask

        if scheduler != "processes":
            return_freed_memory()

        # the scheduler function itself, not its name: given a name, Dask imports
        # distributed at every compute to look for a client (~0.1 s and ~12 MiB)
        kwargs = {"scheduler": _local_get(scheduler)}
        if threads_per_worker or n_workers:
            kwargs["num_workers"] = (threads_per_worker or 1) * (n_workers or 1)
        with dask.config.set(kwargs):
            yield None
        return

    from distributed import Client, LocalCluster

    if scheduler:
        client = Client(scheduler)
        try:
            yield client
        finally:
            client.close()
        return
    if processes:
        environ = worker_environment()
    else:
        return_freed_memory()  # the workers are threads of this process
        environ = {}
    kwargs = {"processes": processes, "dashboard_address": ":0"}
    if n_workers is not None:
        kwargs["n_workers"] = n_workers
    if threads_per_worker is not None:
        kwargs["threads_per_worker"] = threads_per_worker
    if memory_limit is not None:
        kwargs["memory_limit"] = memory_limit
    import dask

    spawn = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in environ.items()}
    with dask.config.set(spawn), LocalCluster(**kwargs) as cluster, Client(cluster) as client:
        yield client
