"""A program survives a worker that dies mid-run, on a real scheduler and real worker
processes (``dask scheduler`` / ``dask worker`` on loopback), with the same bits as a
clean run; a bad input fails only its exposure."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from test_program import _overrides, _products, _program, _step_refs

from detflow.program import DONE, FAILED, run_program


def _dask_command(*args):
    return [sys.executable, "-m", "distributed.cli.dask_" + args[0]] + list(args[1:])


@pytest.fixture
def cluster(tmp_path):
    """A scheduler and two single-thread workers (no nanny: a killed worker stays dead),
    each its own process; yields (address, {worker address: Popen})."""
    sched_file = tmp_path / "scheduler.json"
    logs = []
    procs = []

    def start(cmd, name):
        log = open(tmp_path / f"{name}.log", "w")
        logs.append(log)
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
        procs.append(p)
        return p

    start(_dask_command("scheduler", "--host", "127.0.0.1", "--port", "0",
                        "--no-dashboard", "--scheduler-file", str(sched_file)), "scheduler")
    deadline = time.time() + 60
    while not sched_file.exists() and time.time() < deadline:
        time.sleep(0.2)
    address = json.loads(sched_file.read_text())["address"]
    workers = [start(_dask_command("worker", address, "--nthreads", "1", "--no-nanny",
                                   "--no-dashboard", "--host", "127.0.0.1",
                                   "--name", f"w{i}"), f"worker{i}") for i in range(2)]
    from distributed import Client

    with Client(address, timeout=60) as client:
        client.wait_for_workers(2, timeout=60)
        info = client.scheduler_info()["workers"]
        by_name = {w["name"]: addr for addr, w in info.items()}
    try:
        yield address, {by_name[f"w{i}"]: workers[i] for i in range(2)}
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        for log in logs:
            log.close()


def _pipeline(sim, outdir):
    from detflow.interfaces import Detector1Pipeline

    steps = {}
    for step, rt, path in _step_refs(sim):
        steps.setdefault(step, {})[f"override_{rt}"] = path
    return Detector1Pipeline(steps=steps, output_dir=str(outdir), save_results=True)


def test_worker_killed_mid_run_same_bits(cluster, sim_nircam_tso, tmp_path):
    from detflow import cli

    address, workers = cluster
    sim = sim_nircam_tso
    folder, paths = _program(sim, tmp_path, n=4, truncated=False)
    clean = tmp_path / "clean"
    assert cli.main(["run", str(sim.uncal), "--output_dir", str(clean)]
                    + _overrides(sim)) == 0
    pipe = _pipeline(sim, tmp_path / "out")
    from distributed import Client

    victim = next(iter(workers))
    killed = []
    first_done = threading.Event()
    with Client(address) as client:

        def on_event(outcome):
            if outcome.status == DONE:
                first_done.set()

        def killer():
            # once an exposure is done, kill a worker while it is working on (or holds
            # the intermediate results of) the exposures in flight
            first_done.wait(timeout=300)
            deadline = time.time() + 120
            while time.time() < deadline:
                if client.processing().get(victim) or client.has_what().get(victim):
                    workers[victim].send_signal(signal.SIGKILL)
                    killed.append(victim)
                    return
                time.sleep(0.005)

        watcher = threading.Thread(target=killer, daemon=True)
        watcher.start()
        outcomes = run_program([str(p) for p in paths], pipe.plan, client=client,
                               max_in_flight=2, on_event=on_event)
        watcher.join(timeout=5)
        assert killed, "the worker was never caught working after the first exposure"
        assert workers[victim].wait(timeout=30) == -signal.SIGKILL
        deadline = time.time() + 30
        while len(client.scheduler_info()["workers"]) != 1 and time.time() < deadline:
            time.sleep(0.1)
        assert victim not in client.scheduler_info()["workers"]
    assert [o.status for o in outcomes] == [DONE] * 4, [o.error for o in outcomes]
    expected = _products(clean, sim.uncal.name.replace("_uncal.fits", ""))
    for p in paths:
        got = _products(tmp_path / "out", p.name.replace("_uncal.fits", ""))
        for kind in expected:
            for name, arr in expected[kind].items():
                np.testing.assert_array_equal(got[kind][name], arr, err_msg=f"{p} {name}")


def test_truncated_input_fails_alone_on_the_cluster(cluster, sim_nircam_sub640, tmp_path):
    address, _ = cluster
    sim = sim_nircam_sub640
    folder, paths = _program(sim, tmp_path, n=2, truncated=True)
    # and a file cut after its graph was built: the header was fine, a worker's read
    # of the pixels fails
    cut = folder / "jw01234001001_01101_00008_nrca1_uncal.fits"
    data = Path(sim.uncal).read_bytes()
    cut.write_bytes(data)
    pipe = _pipeline(sim, tmp_path / "out")
    from distributed import Client

    def plan(exp):
        items = pipe.plan(exp)
        if exp == str(cut):
            cut.write_bytes(data[:20_000])
        return items

    with Client(address) as client:
        outcomes = run_program([str(p) for p in paths] + [str(cut)], plan, client=client)
    statuses = {Path(o.exposure).name.split("_")[2]: o.status for o in outcomes}
    assert statuses == {"00001": DONE, "00002": DONE, "00009": FAILED, "00008": FAILED}
    errors = {Path(o.exposure).name.split("_")[2]: o.error for o in outcomes}
    assert "truncated" in errors["00009"] and "truncated" in errors["00008"]
    assert sorted(os.listdir(tmp_path / "out")) == [
        f"jw01234001001_01101_0000{i}_nrca1_{k}.fits" for i in (1, 2)
        for k in ("rate", "rateints")]
