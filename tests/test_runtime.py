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
    assert memory.worker_environment() == {"MALLOC_MMAP_THRESHOLD_": str(4 * 2**20)}
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert memory.return_freed_memory() is False
    assert memory.worker_environment() == {}


def test_local_cluster_worker_processes_get_the_setting(monkeypatch):
    """Worker processes of a local cluster start with the threshold in their
    environment (glibc reads it at start)."""
    if memory._mallopt() is None:
        pytest.skip("not glibc")
    # distributed leaves its pre-spawn variables in this process's environment: start
    # as a user would, and have them restored afterwards
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    from detflow.runtime.cluster import dask_client

    with dask_client(None, n_workers=1, threads_per_worker=1, processes=True) as client:
        seen = client.run(lambda: os.environ.get("MALLOC_MMAP_THRESHOLD_"))
    assert list(seen.values()) == [str(memory.MMAP_THRESHOLD)]
