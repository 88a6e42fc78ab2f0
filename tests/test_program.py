"""Programs: many exposures through one scheduler, failures isolated, resumable."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from lazycheck import no_compute

from detflow import cli
from detflow.errors import InputFileError
from detflow.program import CANCELLED, DONE, FAILED, SKIPPED, expand_inputs, run_program


def test_expand_inputs_files_globs_folders(tmp_path):
    a = tmp_path / "jw1_uncal.fits"
    b = tmp_path / "jw2_ramp.fits"
    c = tmp_path / "notes.txt"
    for p in (a, b, c):
        p.write_bytes(b"x")
    sub = tmp_path / "sub"
    sub.mkdir()
    d = sub / "jw3_uncal.fits"
    d.write_bytes(b"x")
    got = expand_inputs([str(b), str(tmp_path / "*_uncal.fits"), str(sub), str(a),
                         "https://example.org/jw4_uncal.fits"])
    assert got == [str(b), str(a), str(d), "https://example.org/jw4_uncal.fits"]
    assert expand_inputs([tmp_path]) == [str(a), str(b)]  # a folder: exposures only
    with pytest.raises(InputFileError, match="matches no file"):
        expand_inputs([str(tmp_path / "*_rate.fits")])
    with pytest.raises(InputFileError, match="file not found"):
        expand_inputs([str(tmp_path / "missing_uncal.fits")])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputFileError, match="no \\*_uncal.fits"):
        expand_inputs([str(empty)])


def _program(sim, tmp_path, n=3, truncated=True):
    """``n`` copies of a simulated exposure under their own names, and a truncated one."""
    folder = tmp_path / "in"
    folder.mkdir()
    paths = []
    for i in range(1, n + 1):
        p = folder / f"jw01234001001_01101_0000{i}_nrca1_uncal.fits"
        shutil.copy(sim.uncal, p)
        paths.append(p)
    if truncated:
        bad = folder / "jw01234001001_01101_00009_nrca1_uncal.fits"
        bad.write_bytes(Path(sim.uncal).read_bytes()[:200_000])
        paths.append(bad)
    return folder, paths


def _overrides(sim):
    return [f"--steps.{step}.override_{rt.lower()}={path}"
            for step, rt, path in _step_refs(sim)]


def _step_refs(sim):
    from detflow.pipeline.order import NIR_STEPS

    refs = {k.lower(): str(v) for k, v in sim.refs.items()}
    return [(spec.name, r, refs.get(r, "N/A")) for spec in NIR_STEPS for r in spec.reftypes]


def _steps(sim):
    """Detector1Pipeline ``steps``: every reference overridden with the simulation's."""
    steps = {}
    for step, rt, path in _step_refs(sim):
        steps.setdefault(step, {})[f"override_{rt}"] = path
    return steps


def _products(outdir, root):
    from astropy.io import fits

    out = {}
    for kind in ("rate", "rateints"):
        with fits.open(outdir / f"{root}_{kind}.fits") as hdul:
            out[kind] = {h.name: np.array(h.data) for h in hdul
                         if h.data is not None and h.is_image}
    return out


def test_program_on_a_local_cluster_isolates_failures_and_resumes(
        sim_nircam_sub640, tmp_path, capsys):
    sim = sim_nircam_sub640
    folder, paths = _program(sim, tmp_path)
    ref = tmp_path / "single"
    assert cli.main(["run", str(sim.uncal), "--output_dir", str(ref)] + _overrides(sim)) == 0
    out = tmp_path / "out"
    args = ["run", str(folder), "--output_dir", str(out), "--n-workers", "2",
            "--threads-per-worker", "1", "--max-in-flight", "2"] + _overrides(sim)
    capsys.readouterr()
    assert cli.main(args) == 1  # one exposure failed
    text = capsys.readouterr()
    assert "3 done, 1 failed" in text.out
    assert "truncated" in text.out and "00009" in text.out
    expected = _products(ref, sim.uncal.name.replace("_uncal.fits", ""))
    for p in paths[:3]:
        got = _products(out, p.name.replace("_uncal.fits", ""))
        for kind in expected:
            for name, arr in expected[kind].items():
                np.testing.assert_array_equal(got[kind][name], arr, err_msg=f"{p} {name}")
    assert not list(out.glob(".*part"))  # no temporary file left
    assert not list(out.glob("*00009*"))

    # again: the complete exposures are skipped, the failed one is tried again
    stamp = os.stat(out / "jw01234001001_01101_00001_nrca1_rate.fits").st_mtime_ns
    assert cli.main(args) == 1
    text = capsys.readouterr().out
    assert "3 skipped, 1 failed" in text
    assert os.stat(out / "jw01234001001_01101_00001_nrca1_rate.fits").st_mtime_ns == stamp
    # --overwrite redoes them (threaded scheduler, one exposure after the other)
    os.remove(paths[3])
    assert cli.main(["run", str(folder), "--output_dir", str(out), "--scheduler", "threads",
                     "--overwrite"] + _overrides(sim)) == 0
    assert "3 done" in capsys.readouterr().out
    assert os.stat(out / "jw01234001001_01101_00001_nrca1_rate.fits").st_mtime_ns != stamp


def test_interrupt_cancels_and_leaves_no_partial_product(sim_nircam_sub640, tmp_path):
    from detflow.interfaces import Detector1Pipeline

    sim = sim_nircam_sub640
    folder, paths = _program(sim, tmp_path, n=3, truncated=False)
    steps = _steps(sim)
    pipe = Detector1Pipeline(steps=steps, output_dir=str(tmp_path / "out"), save_results=True)
    calls = []

    def plan(exp):
        calls.append(exp)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return pipe.plan(exp)

    with pytest.raises(KeyboardInterrupt) as info:
        run_program([str(p) for p in paths], plan, products=pipe.product_paths)
    statuses = [o.status for o in info.value.outcomes]
    assert statuses == [DONE, CANCELLED, CANCELLED]
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["jw01234001001_01101_00001_nrca1_rate.fits",
                       "jw01234001001_01101_00001_nrca1_rateints.fits"]
    # the complete one is skipped next time
    outcomes = run_program([str(p) for p in paths], pipe.plan, products=pipe.product_paths)
    assert [o.status for o in outcomes] == [SKIPPED, DONE, DONE]


def test_graph_build_failure_is_that_exposures_only(sim_nircam_sub640, tmp_path):
    from detflow.interfaces import Detector1Pipeline

    sim = sim_nircam_sub640
    folder, paths = _program(sim, tmp_path, n=2, truncated=False)
    steps = _steps(sim)
    steps["dark_current"]["override_dark"] = str(tmp_path / "missing_dark.fits")
    pipe = Detector1Pipeline(steps=steps, output_dir=str(tmp_path / "out"), save_results=True)
    outcomes = run_program([str(p) for p in paths], pipe.plan, products=pipe.product_paths)
    assert [o.status for o in outcomes] == [FAILED, FAILED]
    assert all("missing_dark.fits" in o.error for o in outcomes)


def test_scheduler_sees_step_names_and_the_dashboard_answers(sim_nircam_sub640, tmp_path):
    """Tasks are named ``<step>-<exposure>-<token>``: the scheduler's task prefixes are
    the step names; the dashboard's HTTP endpoint answers during the run."""
    import urllib.request

    from distributed import Client, LocalCluster

    from detflow.interfaces import Detector1Pipeline

    sim = sim_nircam_sub640
    folder, paths = _program(sim, tmp_path, n=2, truncated=False)
    steps = _steps(sim)
    pipe = Detector1Pipeline(steps=steps, output_dir=str(tmp_path / "out"), save_results=True)
    answers, names = [], []
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=":0") as lc, Client(lc) as client:

        def on_event(outcome):
            with urllib.request.urlopen(client.dashboard_link, timeout=30) as resp:
                answers.append(resp.status)

        def during(dask_scheduler):
            return [str(k) for k in dask_scheduler.tasks]

        original = client.compute

        def compute(*args, **kwargs):  # the keys the scheduler gets
            future = original(*args, **kwargs)
            names.extend(client.run_on_scheduler(during))
            return future

        client.compute = compute
        outcomes = run_program([str(p) for p in paths], pipe.plan, client=client,
                               on_event=on_event)
        prefixes = set(client.run_on_scheduler(
            lambda dask_scheduler: list(dask_scheduler.task_prefixes)))
    assert [o.status for o in outcomes] == [DONE, DONE]
    assert answers == [200, 200]
    wanted = {"dq_init", "saturation", "ipc", "superbias", "refpix", "linearity",
              "dark_current", "jump", "ramp_fit", "write"}
    assert wanted <= prefixes, prefixes
    roots = {p.name.replace("_uncal.fits", "") for p in paths}
    assert any(n.startswith("('jump-") or n.startswith("jump-") for n in names)
    for n in names:  # every task names its exposure
        assert any(f"-{root}-" in n for root in roots), n


def test_performance_report_and_progress(sim_nircam_sub640, tmp_path, capsys):
    sim = sim_nircam_sub640
    folder, paths = _program(sim, tmp_path, n=2, truncated=False)
    report = tmp_path / "report.html"
    assert cli.main(["run", str(folder), "--output_dir", str(tmp_path / "out"),
                     "--performance-report", str(report)] + _overrides(sim)) == 0
    out = capsys.readouterr().out
    assert "[1/2] " in out and "[2/2] " in out and "2 done" in out
    assert "dask dashboard: http" in out
    text = report.read_text()
    assert "Dask Performance Report" in text and "jump" in text


def test_save_intermediates_as_zarr_from_the_workers(sim_nircam_sub640, tmp_path, capsys):
    import dask

    import detflow
    from detflow.interfaces import Detector1Pipeline
    from detflow.runtime.execute import write_task

    sim = sim_nircam_sub640
    folder, paths = _program(sim, tmp_path, n=2, truncated=False)
    out = tmp_path / "out"
    assert cli.main(["run", str(folder), "--output_dir", str(out), "--n-workers", "2",
                     "--threads-per-worker", "1", "--save-intermediates",
                     "zarr:jump,ramp_fit"] + _overrides(sim)) == 0
    root = paths[0].name.replace("_uncal.fits", "")
    assert sorted(p.name for p in out.glob(f"{root}*.zarr")) == [
        f"{root}_{s}.zarr" for s in ("jump", "rate", "rateints")]
    assert not list(out.glob(".*"))  # no temporary store left
    steps = _steps(sim)
    pipe = Detector1Pipeline(steps=steps)
    expected = pipe.build(str(paths[0]))["steps"]["jump"].compute()
    stored = detflow.open_product(out / f"{root}_jump.zarr")
    for var in ("data", "groupdq", "pixeldq"):
        np.testing.assert_array_equal(stored[var].values, expected[var].values)
    with detflow.open_product(out / f"{root}_rate.fits") as fits_rate:
        np.testing.assert_array_equal(
            detflow.open_product(out / f"{root}_rate.zarr")["data"].values,
            fits_rate["data"].values)

    # the store is written chunk by chunk (a task per chunk), not gathered anywhere
    pipe = Detector1Pipeline(steps=steps, save_intermediates=["jump"],
                             output_dir=str(tmp_path / "graph"))
    items = [i for i in pipe.plan(str(paths[0])) if i[0] == "zarr"]
    graph = dict(write_task(items).__dask_graph__())
    # (Dask may fuse a store with the rechunk before it: "rechunk-...-store-map-...")
    writes = [k for k in graph if isinstance(k, tuple) and "store-map" in str(k[0])]
    n_chunks = sum(np.prod([len(c) for c in v.chunks]) for v in (
        items[0][1][name].data for name in ("data", "groupdq", "pixeldq")))
    assert len(writes) >= n_chunks
    with dask.config.set(scheduler="threads"):
        assert cli.main(["run", str(paths[1]), "--output_dir", str(tmp_path / "all"),
                         "--save-intermediates", "zarr", "--overwrite"]
                        + _overrides(sim)) == 0
    stores = sorted(p.name.split("_nrca1_")[1] for p in (tmp_path / "all").glob("*.zarr"))
    assert stores == sorted(f"{s}.zarr" for s in (
        "dq_init", "saturation", "ipc", "superbias", "refpix", "linearity", "dark_current",
        "jump", "rate", "rateints"))
    capsys.readouterr()
    assert cli.main(["run", str(paths[1]), "--save-intermediates", "hdf5"]
                    + _overrides(sim)) == 2
    assert "the format is 'zarr'" in capsys.readouterr().err


class _FakeFuture:
    def __init__(self, key, task):
        self.key, self._task = key, task

    def result(self):
        return [("rate", f"{self.key}_rate.fits")]

    def release(self):
        self._task = None

    def cancel(self):
        self._task = None


class _FakeCompleted:
    """``distributed.as_completed`` for already finished futures, oldest first."""

    def __init__(self):
        self.futures = []

    def add(self, future):
        self.futures.append(future)

    def __iter__(self):
        while self.futures:
            yield self.futures.pop(0)


class _FakeClient:
    def __init__(self):
        self.n = 0
        self.placed = []
        self.futures = []
        self.most_held = 0  # most exposures whose graphs the client held at once

    def held(self):
        """Exposures whose futures (and so graphs) are not released yet."""
        return sum(any(f._task is not None for f in fs) for fs in self.futures)

    def compute(self, tasks, optimize_graph=True, workers=None, allow_other_workers=False):
        self.n += 1
        self.placed.append(workers[0])
        futures = [_FakeFuture(f"exp{self.n}-{i}", task) for i, task in enumerate(tasks)]
        self.futures.append(futures)
        self.most_held = max(self.most_held, self.held())
        return futures

    def nthreads(self):
        return {"w1": 2, "w2": 2}

    def scheduler_info(self):
        return {"workers": {"w1": {}, "w2": {}}}


def test_a_1000_exposure_program_is_admitted_a_few_at_a_time(monkeypatch):
    """The client builds an exposure's graph only when it is admitted and lets it go
    when the exposure is done: with 1,000 exposures, at most ``max_in_flight``
    exposures' graphs are held at once, so the client holds no more with 1,000
    exposures than with 100 (the admission code of :func:`run_program`, with a
    scheduler whose work finishes at once; nothing runs). Counted as the exposures
    whose futures the client still holds, not as allocator peaks: those depend on the
    allocator (the client's memory is measured in ``benchmarks/program.py``)."""
    import dask.array as da

    from detflow.runtime import executors as program

    monkeypatch.setattr(program, "_as_completed", _FakeCompleted)

    def plan(exp):
        # a graph over an exposure's tiles (not computed), a product to write
        tiles = da.ones((10, 2048, 2048), chunks=(10, 2048, 128), dtype="float32")
        rate = (tiles[-1] - tiles[0]) / 9.0
        ds = __import__("xarray").Dataset({"data": (("y", "x"), rate)})
        return [("rate", ds, f"{exp}_rate.fits")]

    def run(n):
        client = _FakeClient()
        outcomes = run_program([f"jw{i:05d}_uncal.fits" for i in range(n)], plan,
                               client=client, max_in_flight=3)
        # exposures go to the worker with the fewest in flight: both get their share
        assert abs(client.placed.count("w1") - client.placed.count("w2")) <= n // 10
        assert [o.status for o in outcomes] == [DONE] * n, outcomes[0].error
        return client.most_held, client.held()

    small_most, small_left = run(100)
    big_most, big_left = run(1000)
    assert small_most <= 3 and big_most <= 3  # max_in_flight
    assert small_left == big_left == 0  # every exposure's futures released when done


def test_a_program_on_a_cluster_joins_amplifiers_into_larger_tiles(sim_nircam_sub640):
    """A program's graphs for a distributed scheduler have neighbouring amplifiers
    joined (fewer, larger tasks), unless the user set ``detflow.tiles.join-bytes``; a
    single exposure, or a run on threads, keeps one amplifier per tile (its
    parallelism, less in memory). The tiling is the plan's input
    (``Detector1Pipeline.plan(..., tiling=)``), as ``detflow run`` binds it."""
    import dask

    from detflow.interfaces import Detector1Pipeline
    from detflow.io.chunks import JOIN_KEY, default_chunks
    from detflow.tiling import Tiling

    nir, shape = {"instrument": "NIRCAM"}, (1, 10, 2048, 2048)
    joined = Tiling.for_run(cluster=True, exposures=2)
    assert default_chunks(nir, shape, tiling=joined)["x"] == (1024, 1024)
    for alone in (Tiling.for_run(cluster=True, exposures=1),
                  Tiling.for_run(cluster=False, exposures=8), Tiling()):
        assert default_chunks(nir, shape, tiling=alone)["x"] == (512,) * 4
    with dask.config.set({JOIN_KEY: 0}):  # the user's own setting wins
        assert Tiling.for_run(cluster=True, exposures=2) == Tiling()
    # the plan's exposure is opened with the tiling it is given (SUB640: amplifiers
    # at x = 512, so 512 + 128 columns alone, one tile joined)
    sim = sim_nircam_sub640
    pipe = Detector1Pipeline(steps=_steps(sim), output_dir="unused", save_results=True)
    with no_compute():
        tiles = {t: dict(pipe.plan(str(sim.uncal), tiling=t).stages)["read"].chunks["x"]
                 for t in (joined, Tiling())}
    assert tiles == {joined: (640,), Tiling(): (512, 128)}
    # and its references are opened with it: on the exposure's tiles, no rechunk between
    from detflow.io.exposure import open_exposure
    from detflow.io.references import open_reference_for

    ds = open_exposure(sim.uncal, tiling=joined)

    def rechunks(tiling):
        gain = open_reference_for(sim.refs["GAIN"], "GAIN", ds, tiling)["sci"]
        assert gain.chunks == ds["pixeldq"].chunks
        return [k for k in gain.data.__dask_graph__().layers if k.startswith("rechunk")]

    assert rechunks(joined) == [] and rechunks(Tiling()) != []


def _retimed(src, dest, detector, minutes):
    """A copy of an exposure as if taken by ``detector``, ``minutes`` after the original
    (EXPSTART and the INT_TIMES table shifted)."""
    from astropy.io import fits

    shutil.copy(src, dest)
    shift = minutes / 1440.0
    with fits.open(dest, mode="update") as hdul:
        header = hdul[0].header
        header["DETECTOR"] = detector
        for key in ("EXPSTART", "EXPMID", "EXPEND"):
            if key in header:
                header[key] = header[key] + shift
        if "INT_TIMES" in hdul:
            table = hdul["INT_TIMES"].data
            for col in table.columns.names:
                if col.endswith("MJD_UTC"):
                    table[col] = table[col] + shift
    return dest


def _chained_program(sim, folder):
    """Three NRCA1 exposures 10 minutes apart and one NRCB1 exposure between them, in
    an order that is not their time order."""
    folder.mkdir()
    name = "jw01234001001_01101_{:05d}_{}_uncal.fits"
    a1 = _retimed(sim.uncal, folder / name.format(3, "nrca1"), "NRCA1", 0)
    a2 = _retimed(sim.uncal, folder / name.format(1, "nrca1"), "NRCA1", 10)
    a3 = _retimed(sim.uncal, folder / name.format(2, "nrca1"), "NRCA1", 20)
    b1 = _retimed(sim.uncal, folder / name.format(4, "nrcb1"), "NRCB1", 5)
    return [a1, a2, a3, b1]


def _two_detector_refs(sim, folder):
    """``--refs`` arguments: the simulation's reference files for NRCA1 and copies for
    NRCB1 in one folder (a program over two detectors cannot use one override per
    reference type), plus N/A for the types it has none of."""
    from astropy.io import fits

    folder.mkdir()
    for path in sim.refs.values():
        shutil.copy(path, folder / Path(path).name)
        copy = folder / Path(path).name.replace("nrca1", "nrcb1")
        shutil.copy(path, copy)
        fits.setval(copy, "DETECTOR", value="NRCB1")
    return ["--refs", str(folder)] + [f"--steps.{step}.override_{rt}=N/A"
                                      for step, rt, path in _step_refs(sim) if path == "N/A"]


def _persistence_args(save=None, incoming=None):
    out = ["--steps.persistence.skip=false", "--steps.persistence.persistence_time=3000",
           "--steps.persistence.persistence_dnu=true", "--save_calibrated_ramp=true"]
    if save:
        out.append(f"--steps.persistence.save_persistence={save}")
    if incoming:
        out.append(f"--steps.persistence.persistence_array_file={incoming}")
    return out


def _ramp_and_rates(outdir, path):
    from astropy.io import fits

    root = Path(path).name.replace("_uncal.fits", "")
    out = _products(outdir, root)
    with fits.open(outdir / f"{root}_ramp.fits") as hdul:
        out["ramp"] = {"GROUPDQ": np.array(hdul["GROUPDQ"].data),
                       "SCI": np.array(hdul["SCI"].data)}
    return out


def _assert_same(got, expected, what):
    for kind in expected:
        for name, arr in expected[kind].items():
            np.testing.assert_array_equal(got[kind][name], arr, err_msg=f"{what} {kind} {name}")


def test_persistence_is_chained_per_detector_in_time_order(sim_nircam_sub640, tmp_path,
                                                           capsys):
    """With persistence on, a program orders each detector's exposures by start time and
    hands each one the windows the previous one left -- what jwst gives run on them one
    after another through its persistence file, in time order -- on a cluster, with the
    exposures given out of order; another detector's exposure starts empty. The
    persistence file a program saves holds each detector's last windows."""
    from detflow.io.persistence import read_persistence_entry

    sim = sim_nircam_sub640
    a1, a2, a3, b1 = _chained_program(sim, tmp_path / "in")
    refs = _two_detector_refs(sim, tmp_path / "refs")
    given = [a3, b1, a1, a2]
    prog = tmp_path / "prog"
    assert cli.main(["run", *map(str, given), "--output_dir", str(prog), "--n-workers", "2",
                     "--threads-per-worker", "1", "--max-in-flight", "3"]
                    + _persistence_args(prog / "pers.asdf", prog / "pers.asdf") + refs) == 0
    assert "4 exposures chained in start-time order" in capsys.readouterr().out
    # the same command again would start each chain from the windows its own last
    # exposure left: refused, naming the file and the exposure, nothing run
    before = sorted(p.name for p in prog.iterdir())
    assert cli.main(["run", *map(str, given), "--output_dir", str(prog), "--overwrite"]
                    + _persistence_args(prog / "pers.asdf", prog / "pers.asdf") + refs) != 0
    err = capsys.readouterr().err
    assert "pers.asdf" in err and "an exposure of this program" in err, err
    assert "written by jw01234001001_01101_00002_nrca1" in err, err  # a3, NRCA1's last
    assert sorted(p.name for p in prog.iterdir()) == before

    seq = tmp_path / "seq"
    for p in (a1, b1, a2, a3):  # one after another in time order, through one file
        assert cli.main(["run", str(p), "--output_dir", str(seq)]
                        + _persistence_args(seq / "pers.asdf", seq / "pers.asdf") + refs) == 0
    for p in given:
        _assert_same(_ramp_and_rates(prog, p), _ramp_and_rates(seq, p), Path(p).name)
    for det in ("NRCA1", "NRCB1"):
        got = read_persistence_entry(prog / "pers.asdf", det)
        want = read_persistence_entry(seq / "pers.asdf", det)
        assert got.filename == want.filename
        for field in ("rows", "cols", "vals"):
            np.testing.assert_array_equal(getattr(got, field), getattr(want, field))
        assert len(got.vals) > 0

    # the chain matters: alone, the second exposure starts with no window
    alone = tmp_path / "alone"
    assert cli.main(["run", str(a2), "--output_dir", str(alone)] + _persistence_args()
                    + refs) == 0
    pers = 1 << 5
    chained = _ramp_and_rates(prog, a2)["ramp"]["GROUPDQ"] & pers
    single = _ramp_and_rates(alone, a2)["ramp"]["GROUPDQ"] & pers
    assert np.count_nonzero(chained) > np.count_nonzero(single)


@pytest.mark.parametrize("where", ["here", "cluster"])
def test_persistence_chain_resumes_and_fails_after_a_broken_exposure(
        where, sim_nircam_sub640, tmp_path):
    """Run again, a chain whose last exposure is missing recomputes the windows of the
    complete ones (nothing rewritten, reported skipped) and gives the same bits; an
    exposure that fails before its windows are made fails the rest of its chain with a
    message naming it, the other detector goes on -- one exposure after another here,
    and on a cluster, where the windows are an edge between the exposures' graphs."""
    import contextlib

    from detflow.interfaces import Detector1Pipeline

    if where == "cluster":
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                               dashboard_address=None)
        context = Client(cluster)
    else:
        context = contextlib.nullcontext()

    sim = sim_nircam_sub640
    a1, a2, a3, b1 = _chained_program(sim, tmp_path / "in")
    _two_detector_refs(sim, tmp_path / "refs")
    steps = {step: {f"override_{rt}": "N/A"} for step, rt, path in _step_refs(sim)
             if path == "N/A"}
    steps["persistence"] = {"skip": False, "persistence_time": 3000, "persistence_dnu": True}
    out = tmp_path / "out"
    pipe = Detector1Pipeline(steps=steps, output_dir=str(out), save_results=True,
                             save_calibrated_ramp=True, refs_dir=str(tmp_path / "refs"))
    inputs = [str(p) for p in (a3, b1, a1, a2)]
    with context as client:
        _resume_and_break(pipe, inputs, out, (a1, a2, a3, b1), client)
    if where == "cluster":
        cluster.close()


def _resume_and_break(pipe, inputs, out, exposures, client):
    a1, a2, a3, b1 = exposures

    def run():
        return run_program(inputs, pipe.plan, products=pipe.product_paths,
                           chains=pipe.persistence_chains, client=client, max_in_flight=3)

    assert [o.status for o in run()] == [DONE] * 4
    first = _ramp_and_rates(out, a3)
    stamp = os.stat(out / a1.name.replace("_uncal", "_rate")).st_mtime_ns
    for kind in ("rate", "rateints", "ramp"):
        os.remove(out / a3.name.replace("_uncal", f"_{kind}"))
    assert [o.status for o in run()] == [DONE, SKIPPED, SKIPPED, SKIPPED]
    _assert_same(_ramp_and_rates(out, a3), first, "a3 again")
    assert os.stat(out / a1.name.replace("_uncal", "_rate")).st_mtime_ns == stamp

    # the first NRCA1 exposure is cut short (its header still reads): NRCA1 fails. Here
    # before the run (its graph cannot be built); on the cluster once its graph is
    # built (its pixels cannot be read: the next exposures' graphs depend on it)
    data = Path(a1).read_bytes()

    def cut():
        Path(a1).write_bytes(data[: len(data) // 2])

    def plan(exp, **kwargs):
        items = pipe.plan(exp, **kwargs)
        if exp == str(a1):
            cut()
        return items

    if client is None:
        cut()
    outcomes = {Path(o.exposure).name: o for o in run_program(
        inputs, plan, products=pipe.product_paths, chains=pipe.persistence_chains,
        overwrite=True, client=client, max_in_flight=3)}
    assert outcomes[b1.name].status == DONE
    assert outcomes[a1.name].status == FAILED and "truncated" in outcomes[a1.name].error
    for p in (a2, a3):
        assert outcomes[p.name].status == FAILED
        assert f"previous exposure of this detector, {a1.name if p == a2 else a2.name}" \
            in outcomes[p.name].error




def test_dry_run_of_a_1000_full_frame_exposure_program(sim_nircam_full, tmp_path, capsys):
    """``--dry-run`` over 1,000 full-frame exposures checks every one (header, steps,
    references) and says what the scheduler will hold -- one exposure's graph times the
    exposures in flight -- without building more than one graph or running anything."""
    import re

    sim = sim_nircam_full
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(1, 1001):  # the same file under 1,000 exposure names
        (folder / f"jw01234001001_01101_{i:05d}_nrca1_uncal.fits").symlink_to(sim.uncal)
    out = tmp_path / "out"
    assert cli.main(["run", str(folder), "--dry-run", "--max-in-flight", "4",
                     "--output_dir", str(out), "--steps.persistence.skip=false",
                     "--steps.persistence.persistence_time=3000"] + _overrides(sim)) == 0
    text = capsys.readouterr().out
    assert text.count("same steps and references") == 999
    found = re.search(r"program: 1000 exposures; (\d+) tasks for \S+; .* at most 4 in the "
                      r"scheduler at once \(--max-in-flight\): at most ~(\d+) tasks", text)
    assert found, text[-2000:]
    per_exposure, bound = int(found[1]), int(found[2])
    assert 100 < per_exposure < 5000 and bound == 4 * per_exposure
    assert "1 chain(s) of 1000 exposure(s)" in text
    assert not out.exists()  # nothing run, nothing written


@pytest.mark.parametrize("where", ["here", "cluster"])
def test_a_failed_exposure_leaves_no_partial_store(where, sim_nircam_sub640, tmp_path):
    """Zarr intermediates are written under temporary names and moved into place when
    complete; an exposure that fails on the way (its file cut short after its graph was
    built) leaves none of them behind, and the others' stores are complete."""
    import contextlib

    from detflow.interfaces import Detector1Pipeline

    sim = sim_nircam_sub640
    folder, paths = _program(sim, tmp_path, n=2, truncated=False)
    out = tmp_path / "out"
    pipe = Detector1Pipeline(steps=_steps(sim), output_dir=str(out), save_results=True,
                             save_intermediates=["jump"])
    data = paths[0].read_bytes()

    def plan(exp, **kwargs):
        items = pipe.plan(exp, **kwargs)
        if exp == str(paths[0]):
            paths[0].write_bytes(data[: len(data) // 2])
        return items

    context = contextlib.nullcontext()
    if where == "cluster":
        from distributed import Client, LocalCluster

        context = Client(LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                      dashboard_address=None))
    with context as client:
        outcomes = run_program([str(p) for p in paths], plan, client=client)
        if client is not None:
            client.cluster.close()
    assert [o.status for o in outcomes] == [FAILED, DONE]
    assert not list(out.glob(".*"))  # no temporary store left
    assert sorted(p.name for p in out.glob("*.zarr")) == [
        paths[1].name.replace("_uncal.fits", "_jump.zarr")]
