"""The runtime layer: where the graph runs, and the process settings it makes."""

import os
import subprocess
import sys

import pytest

from detflow.runtime import memory


def test_local_scheduler_does_not_import_distributed():
    """Dask given a scheduler *name* imports distributed at every compute to look for a
    client; detflow's single-machine runs pass the scheduler function."""
    code = (
        "import sys, dask.array as da\n"
        "from detflow.runtime.cluster import dask_client\n"
        "for name in ('threads', 'synchronous'):\n"
        "    with dask_client(name):\n"
        "        assert int(da.ones(10, chunks=3).sum().compute()) == 10\n"
        "print('distributed' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_mmap_threshold_set_unless_the_user_chose(monkeypatch):
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    if memory._mallopt() is None:
        pytest.skip("not glibc")
    assert memory.return_freed_memory() is True
    assert memory.worker_environment() == {"MALLOC_MMAP_THRESHOLD_": str(memory.MMAP_THRESHOLD)}
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert memory.return_freed_memory() is False
    assert memory.worker_environment() == {}


def test_local_cluster_worker_processes_get_the_setting(monkeypatch):
    """Worker processes of a local cluster start with the cluster's threshold in their
    environment (glibc reads it at start)."""
    if memory._mallopt() is None:
        pytest.skip("not glibc")
    # distributed leaves its pre-spawn variables in this process's environment: start
    # as a user would, and have them restored afterwards
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    from detflow.runtime.cluster import dask_client

    with dask_client(None, n_workers=1, threads_per_worker=1, processes=True) as client:
        seen = client.run(lambda: os.environ.get("MALLOC_MMAP_THRESHOLD_"))
    assert list(seen.values()) == [str(memory.CLUSTER_MMAP_THRESHOLD)]  # 32 MiB there


def test_coarsen_folds_light_tasks_and_keeps_the_work_apart():
    """Slices, joins, picks and aliases go into the one task that uses them; tasks
    doing work stay apart (no parallelism lost); the result is the same; a small
    constant used by several tasks goes into each; results held on a cluster (keys the
    graph only refers to) stay references."""
    import dask
    import dask.array as da
    import numpy as np
    from dask._task_spec import DataNode, Task, TaskRef, convert_legacy_graph
    from dask.core import get_dependencies

    from detflow.runtime.coarsen import coarsen

    x = da.arange(64.0, chunks=8).reshape(8, 8).rechunk((4, 8))
    y = (da.map_blocks(np.sqrt, x) + 1)[1:7].rechunk((3, 8))  # slices and joins
    total = y.sum()
    (opt,) = dask.optimize(total)
    graph = convert_legacy_graph(dict(opt.__dask_graph__()))
    key = opt.__dask_keys__()[0]
    out = coarsen(graph, [key])
    assert len(out) < len(graph)
    assert key in out
    assert dask.get(out, key) == dask.get(graph, key) == total.compute()

    def heavy(a, b):
        return a + b[:3]

    consts = {"c": DataNode("c", np.arange(3)), "d": DataNode("d", np.zeros(10**6))}
    g = dict(consts)
    g["w1"] = Task("w1", heavy, TaskRef("c"), TaskRef("d"))
    g["w2"] = Task("w2", heavy, TaskRef("c"), TaskRef("d"))
    g["pick"] = Task("pick", np.add, TaskRef("w1"), TaskRef("w2"))
    g["ext"] = Task("ext", heavy, TaskRef("pick"), TaskRef("held-on-cluster"))
    small = coarsen({k: v for k, v in g.items() if k != "ext"}, ["pick"])
    assert set(small) == {"d", "w1", "w2", "pick"}  # the small constant went in; big kept
    assert get_dependencies(small, "w1") == {"d"}
    np.testing.assert_array_equal(dask.get(small, "pick"), 2 * (np.arange(3) + 0.0))
    with_ref = coarsen(g, ["ext"])
    assert "held-on-cluster" in with_ref["ext"].dependencies


def test_worker_processes_import_the_pipeline_ahead():
    """As soon as a cluster is up, its worker processes import the steps (while the
    client builds the first graph); workers that are threads of this process are left
    alone."""
    import time

    from detflow.runtime.cluster import dask_client
    from detflow.runtime.warm import on_workers

    with dask_client(None, n_workers=1, threads_per_worker=1, processes=True) as client:
        assert not any(client.run(lambda: "detflow.steps.jump" in sys.modules).values())
        assert len(on_workers(client)) == 1
        deadline = time.time() + 60
        while not all(client.run(lambda: "detflow.steps.jump" in sys.modules).values()):
            assert time.time() < deadline, "the worker never imported the steps"
            time.sleep(0.2)
    with dask_client(None, n_workers=1, threads_per_worker=1) as client:
        assert on_workers(client) == []


def test_dask_task_spec_still_offers_what_detflow_uses():
    """detflow.runtime.taskspec is the one use of Dask's private ``dask._task_spec``:
    this fails, naming what changed, when a Dask release renames or reshapes it."""
    import dask
    import dask.array as da

    from detflow.runtime import taskspec

    for cls_name, attrs in taskspec.USED.items():
        cls = getattr(taskspec, cls_name)
        missing = [a for a in attrs if not hasattr(cls, a)]
        assert not missing, f"dask {dask.__version__}: {cls_name} lost {missing}"
    x = (da.ones((4, 4), chunks=2) + 1).sum()
    (opt,) = dask.optimize(x)
    graph = taskspec.convert_legacy_graph(dict(opt.__dask_graph__()))
    assert graph and all(isinstance(n, taskspec.GraphNode) for n in graph.values()), (
        f"dask {dask.__version__}: convert_legacy_graph no longer gives GraphNodes")
    tasks = [n for n in graph.values() if isinstance(n, taskspec.Task)]
    assert tasks and all(callable(t.func) for t in tasks)
    assert all(isinstance(n.dependencies, (set, frozenset)) for n in graph.values())
    (key,) = opt.__dask_keys__()  # a 0-d array: one key
    renamed = {k: (f"x-{k[0]}",) + k[1:] if isinstance(k, tuple) else f"x-{k}" for k in graph}
    moved = {renamed[k]: n.substitute(renamed, key=renamed[k]) for k, n in graph.items()}
    from dask.delayed import Delayed

    assert Delayed(renamed[key], moved).compute(optimize_graph=False) == 32.0
