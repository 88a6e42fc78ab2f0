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
                processes=False, cluster=None):
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
    cluster : dict, optional
        A cluster spec (:func:`read_cluster_spec`): the cluster it describes is started
        (local, SLURM through dask-jobqueue, Kubernetes through dask-kubernetes).
    processes : bool
        Workers as separate processes, or (default) threads in this process: the
        kernels are NumPy and compiled (numba, ``nogil``) code that release the GIL, so
        threads share the tiles without copies or serialisation, and nothing is
        imported or started twice.

    Yields
    ------
    distributed.Client or None
    """
    import dask

    from detflow.runtime.memory import (
        CLUSTER_MMAP_THRESHOLD,
        return_freed_memory,
        worker_environment,
    )

    if scheduler in LOCAL_SCHEDULERS:
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

    if cluster is not None:
        if cluster["cluster"] == "local" and not cluster["options"].get("processes", True):
            return_freed_memory(CLUSTER_MMAP_THRESHOLD)
        spawn = {f"distributed.nanny.pre-spawn-environ.{k}": v
                 for k, v in worker_environment(CLUSTER_MMAP_THRESHOLD).items()}
        with dask.config.set(spawn), cluster_from_spec(cluster) as running, \
                Client(running) as client:
            yield client
        return
    if scheduler:
        client = Client(scheduler)
        try:
            yield client
        finally:
            client.close()
        return
    if processes:
        environ = worker_environment(CLUSTER_MMAP_THRESHOLD)
    else:
        return_freed_memory(CLUSTER_MMAP_THRESHOLD)  # the workers are threads of this process
        environ = {}
    kwargs = {"processes": processes, "dashboard_address": ":0"}
    if n_workers is not None:
        kwargs["n_workers"] = n_workers
    if threads_per_worker is not None:
        kwargs["threads_per_worker"] = threads_per_worker
    if memory_limit is not None:
        kwargs["memory_limit"] = memory_limit
    spawn = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in environ.items()}
    with dask.config.set(spawn), LocalCluster(**kwargs) as cluster, Client(cluster) as client:
        yield client


# --------------------------------------------------------------------------- cluster specs

#: Cluster kinds a spec file may name, and the package each needs.
CLUSTER_KINDS = {"local": "distributed", "slurm": "dask_jobqueue",
                 "kubernetes": "dask_kubernetes"}


def _deploy_dirs():
    """Where ``--cluster NAME`` looks for ``NAME/cluster.yaml``: ``./deploy`` and the
    ``deploy/`` folder of the detflow checkout."""
    from pathlib import Path

    here = Path(__file__).resolve().parents[2] / "deploy"
    return [Path.cwd() / "deploy", here]


def read_cluster_spec(name_or_path):
    """A cluster spec (``deploy/<name>/cluster.yaml``, or any such file) as a dict.

    Parameters
    ----------
    name_or_path : str or Path
        ``local``, ``slurm``, ``kubernetes`` (looked up in ``./deploy`` and the
        checkout's ``deploy/``), or the path of a spec file.

    Returns
    -------
    dict
        ``cluster`` (the kind), ``options`` (keyword arguments of the cluster class),
        ``scale``/``adapt`` (SLURM: jobs to start), ``manifest`` (Kubernetes: the
        DaskCluster manifest, parsed), ``path``.

    Raises
    ------
    ParameterError
        No such spec, or a spec that is not valid (names the file and the problem).
    """
    from pathlib import Path

    from detflow.errors import ParameterError
    from detflow.io.yamlfile import read_yaml

    path = Path(name_or_path)
    if not path.suffix:
        found = [d / str(name_or_path) / "cluster.yaml" for d in _deploy_dirs()]
        found = [p for p in found if p.exists()]
        if not found:
            raise ParameterError(
                f"--cluster {name_or_path}: no deploy/{name_or_path}/cluster.yaml here or in "
                f"detflow's checkout; give a spec file's path, or one of "
                f"{', '.join(CLUSTER_KINDS)}")
        path = found[0]
    spec = read_yaml(path, "cluster spec")
    if not isinstance(spec, dict):
        raise ParameterError(f"cluster spec {path}: expected a mapping")
    unknown = set(spec) - {"cluster", "options", "scale", "adapt", "manifest"}
    if unknown:
        raise ParameterError(f"cluster spec {path}: unknown entries {sorted(unknown)}")
    kind = spec.get("cluster")
    if kind not in CLUSTER_KINDS:
        raise ParameterError(
            f"cluster spec {path}: 'cluster' must be one of {', '.join(CLUSTER_KINDS)}, "
            f"not {kind!r}")
    for key in ("options", "scale", "adapt"):
        if not isinstance(spec.get(key) or {}, dict):
            raise ParameterError(f"cluster spec {path}: '{key}' must be a mapping")
    out = {"cluster": kind, "options": dict(spec.get("options") or {}),
           "scale": spec.get("scale"), "adapt": spec.get("adapt"), "path": str(path)}
    if kind == "kubernetes":
        manifest = spec.get("manifest")
        if not manifest:
            raise ParameterError(f"cluster spec {path}: 'manifest' (a DaskCluster file) "
                                 "is required for kubernetes")
        mpath = path.parent / manifest
        if not mpath.exists():
            raise ParameterError(f"cluster spec {path}: manifest {mpath} not found")
        out["manifest"] = read_yaml(mpath, "DaskCluster manifest")
        check_daskcluster_manifest(out["manifest"], mpath)
    return out


def check_daskcluster_manifest(manifest, path="manifest"):
    """Raise :class:`~detflow.errors.ParameterError` unless ``manifest`` has what the
    dask-kubernetes operator requires of a DaskCluster: apiVersion, kind, a name, a
    worker with replicas and a pod spec with containers, a scheduler pod spec with
    containers and a service."""
    from detflow.errors import ParameterError

    def need(cond, what):
        if not cond:
            raise ParameterError(f"DaskCluster manifest {path}: {what}")

    need(isinstance(manifest, dict), "expected a mapping")
    need(manifest.get("apiVersion") == "kubernetes.dask.org/v1",
         "apiVersion must be kubernetes.dask.org/v1")
    need(manifest.get("kind") == "DaskCluster", "kind must be DaskCluster")
    need((manifest.get("metadata") or {}).get("name"), "metadata.name is required")
    spec = manifest.get("spec") or {}
    worker, scheduler = spec.get("worker") or {}, spec.get("scheduler") or {}
    need(isinstance(worker.get("replicas"), int) and worker["replicas"] >= 0,
         "spec.worker.replicas must be a non-negative integer")
    for role, part in (("worker", worker), ("scheduler", scheduler)):
        containers = (part.get("spec") or {}).get("containers") or []
        need(containers and all(c.get("image") for c in containers),
             f"spec.{role}.spec.containers need an image each")
    need(scheduler.get("service"), "spec.scheduler.service is required")


def job_script(spec):
    """The batch script a SLURM spec submits for each job (nothing is submitted; the
    cluster object is created and closed)."""
    from dask_jobqueue import SLURMCluster

    if spec["cluster"] != "slurm":
        raise ValueError("job_script: not a slurm spec")
    with SLURMCluster(**spec["options"]) as cluster:
        return cluster.job_script()


@contextlib.contextmanager
def cluster_from_spec(spec):
    """The cluster a spec describes, started for a block (and closed after it)."""
    import importlib

    from detflow.errors import ParameterError

    kind = spec["cluster"]
    try:
        importlib.import_module(CLUSTER_KINDS[kind])
    except ImportError:
        package = CLUSTER_KINDS[kind].replace("_", "-")
        raise ParameterError(
            f"cluster spec {spec['path']}: a {kind} cluster needs {package} "
            f"(pip install {package})") from None
    if kind == "local":
        from distributed import LocalCluster

        cluster = LocalCluster(**spec["options"])
    elif kind == "slurm":
        from dask_jobqueue import SLURMCluster

        cluster = SLURMCluster(**spec["options"])
    else:
        from dask_kubernetes.operator import KubeCluster

        cluster = KubeCluster(custom_cluster_spec=spec["manifest"], **spec["options"])
    try:
        if spec.get("adapt"):
            cluster.adapt(**spec["adapt"])
        elif spec.get("scale"):
            cluster.scale(**spec["scale"])
        yield cluster
    finally:
        cluster.close()
