"""Program throughput: detflow on 1 and 2 workers against jwst one exposure after another.

Usage::

    python benchmarks/program.py [--workdir DIR] [--n 8] [--big 32] [--skip-jwst]
        [--repeat R]

Makes ``n`` NIRCam full-frame exposures (10 groups x 1 integration; one simulation,
copied under ``n`` exposure names), then measures, each as separate processes on the
same files with the same reference files:

* jwst: ``strun jwst.pipeline.Detector1Pipeline`` on each file, one after the other;
* detflow: ``detflow run INPUTS/ --processes --n-workers W --threads-per-worker 1`` for
  W = 1 and 2 (a local cluster of worker processes, the program streamed through it);
* detflow on ``big`` exposures (the same files linked under more names) with 2 workers,
  to show that a worker's peak memory does not grow with the program.

It prints the wall time of each (start-up, reading and writing included), the
throughput in exposures per minute, the speed-ups, and the peak resident memory of
each Dask worker process (sampled every 50 ms). With ``--repeat R`` the detflow runs
are made R times, in turns (1 worker, 2 workers, 1 worker, ...), and the median wall
time is used (all of them printed; worker peaks: the highest over the runs): on a
shared machine one run can be 30 % off.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))


def measure_workers(cmd, env=None):
    """Run ``cmd``; returns (wall s, peak RSS MiB of the main process, peak RSS MiB of
    each worker process, return code, output)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            text=True)
    root = psutil.Process(proc.pid)
    main_peak, workers = 0, {}
    while proc.poll() is None:
        try:
            main_peak = max(main_peak, root.memory_info().rss)
            for child in root.children(recursive=True):
                try:
                    cmdline = " ".join(child.cmdline())
                    rss = child.memory_info().rss
                except psutil.Error:
                    continue
                if ("spawn_main" in cmdline or "forkserver" in cmdline) and \
                        "resource_tracker" not in cmdline:
                    workers[child.pid] = max(workers.get(child.pid, 0), rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    out = proc.stdout.read()
    peaks = sorted(v / 2**20 for v in workers.values())
    return time.perf_counter() - t0, main_peak / 2**20, peaks, proc.returncode, out


def main(argv=None):
    from detector1 import overrides_args
    from jwst_oracle import offline_crds

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--big", type=int, default=32)
    parser.add_argument("--skip-jwst", action="store_true")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)

    from detflow.simulator import simulate

    work = Path(args.workdir or tempfile.mkdtemp(prefix="detflow_program_"))
    src = work / "source"
    uncal = src / "jw01234001001_01101_00001_nrca1_uncal.fits"
    if uncal.exists():
        import json
        from types import SimpleNamespace

        manifest = json.loads((src / "manifest.json").read_text())
        refs = {k: src / "refs" / Path(v).name for k, v in manifest["references"].items()}
        sim = SimpleNamespace(uncal=uncal, refs=refs)
    else:
        sim = simulate("nircam", src, ngroups=10, nints=1)
    ov = overrides_args(sim.refs)
    env = dict(os.environ)
    env.update(offline_crds(work / "crds"))

    def inputs(n, name):
        folder = work / name
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir()
        for i in range(1, n + 1):
            target = folder / f"jw01234001001_01101_{i:05d}_nrca1_uncal.fits"
            os.symlink(sim.uncal, target)
        return folder

    small = inputs(args.n, f"inputs_{args.n}")
    rows = []
    if not args.skip_jwst:
        out = work / "jwst_out"
        out.mkdir(exist_ok=True)
        t0 = time.perf_counter()
        for path in sorted(small.iterdir()):
            rc = subprocess.run(["strun", "jwst.pipeline.Detector1Pipeline", str(path),
                                 f"--output_dir={out}", "--steps.ramp_fit.maximum_cores=1",
                                 *ov], env=env, capture_output=True).returncode
            if rc != 0:
                print(f"jwst failed on {path}")
                return 1
        rows.append(("jwst, one after another", args.n, time.perf_counter() - t0, None, []))

    runs = {}  # (name, n) -> [(wall, client MiB, worker peaks)]

    def detflow(folder, n, workers):
        out = work / f"detflow_out_{n}_{workers}"
        if out.exists():
            shutil.rmtree(out)
        res = measure_workers(["detflow", "run", str(folder), f"--output_dir={out}",
                               "--processes", f"--n-workers={workers}",
                               "--threads-per-worker=1", *ov], env=env)
        if res[3] != 0:
            print(res[4][-3000:])
            raise SystemExit(f"detflow failed ({n} exposures, {workers} workers)")
        runs.setdefault((f"detflow, {workers} worker(s)", n), []).append(res[:3])

    big = inputs(args.big, f"inputs_{args.big}") if args.big else None
    for _ in range(max(1, args.repeat)):
        detflow(small, args.n, 1)
        detflow(small, args.n, 2)
        if big is not None:
            detflow(big, args.big, 2)
    for (name, n), results in runs.items():
        results.sort(key=lambda r: r[0])
        wall, main_mib, peaks = results[len(results) // 2]
        peaks = [max(r[2][k] for r in results) for k in range(len(peaks))] if all(
            len(r[2]) == len(peaks) for r in results) else peaks
        rows.append((name, n, wall, main_mib, peaks))
        if len(results) > 1:
            print(f"{name}, {n} exposures: wall s {', '.join(f'{r[0]:.1f}' for r in results)}")

    print(f"{'run':<26} {'exposures':>9} {'wall s':>8} {'exp/min':>8} {'client MiB':>11}"
          "  worker peak MiB")
    for name, n, wall, main_mib, peaks in rows:
        client = "" if main_mib is None else f"{main_mib:.0f}"
        print(f"{name:<26} {n:>9} {wall:>8.1f} {60 * n / wall:>8.2f} {client:>11}  "
              + ", ".join(f"{p:.0f}" for p in peaks))
    rate = {(name, n): n / wall for name, n, wall, _, _ in rows}
    one = rate.get(("detflow, 1 worker(s)", args.n))
    two = rate.get(("detflow, 2 worker(s)", args.n))
    print(f"second worker: {two / one:.2f}x the throughput of one")
    jw = rate.get(("jwst, one after another", args.n))
    if jw:
        print(f"detflow (2 workers) vs jwst one after another: {two / jw:.2f}x the throughput")
    return 0


if __name__ == "__main__":
    sys.exit(main())
