"""detflow vs jwst 3.0.0 on the same exposures and reference files, from the command line.

Usage::

    python benchmarks/detector1.py [--workdir DIR] [--nints 1 2] [--n-workers 2]
    python benchmarks/detector1.py --instrument miri --ngroups 20 --nints 2

For each case (a simulated full frame, by default NIRCam with 10 groups and 1
and 2 integrations; MIRI with ``--instrument miri``) it runs
``strun jwst.pipeline.Detector1Pipeline`` and ``detflow run`` as separate
processes, with every reference file given as an override, and reports the wall
time and the peak memory of the whole process tree (the sum of the resident set
sizes of the process and all its children, Dask workers included, sampled every
50 ms), their ratios, and whether the rate products agree (SCI within 1e-5
relative, DQ identical).
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))


def measure(cmd, env=None, cwd=None):
    """Run ``cmd``; returns (wall seconds, peak tree RSS in MiB, returncode, output)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            cwd=cwd, text=True)
    root = psutil.Process(proc.pid)
    peak = 0
    chunks = []
    while proc.poll() is None:
        try:
            procs = [root] + root.children(recursive=True)
            rss = sum(p.memory_info().rss for p in procs if p.is_running())
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    out = proc.stdout.read()
    chunks.append(out)
    return time.perf_counter() - t0, peak / 2**20, proc.returncode, "".join(chunks)


def overrides_args(refs):
    from jwst_oracle import step_overrides

    args = []
    for step, params in step_overrides(refs).items():
        for key, value in params.items():
            args.append(f"--steps.{step}.{key}={value}")
    return args


def compare(ours, theirs):
    from stdatamodels.jwst import datamodels as dm

    with dm.open(str(ours)) as a, dm.open(str(theirs)) as b:
        sa, sb = np.asarray(a.data, float), np.asarray(b.data, float)
        same_nan = np.array_equal(np.isnan(sa), np.isnan(sb))
        ok = np.isfinite(sa) & np.isfinite(sb)
        rel = np.abs(sa[ok] - sb[ok]) / np.maximum(np.abs(sb[ok]), 1e-30)
        frac = float(np.mean(rel <= 1e-5)) if rel.size else 1.0
        dq_same = np.array_equal(a.dq, b.dq)
    return same_nan, frac, dq_same


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--instrument", choices=("nircam", "miri"), default="nircam")
    parser.add_argument("--ngroups", type=int, default=10)
    parser.add_argument("--emicorr", action="store_true",
                        help="MIRI: simulate EMI and run the emicorr step in both (joint, "
                             "jwst's default algorithm)")
    parser.add_argument("--nints", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--n-workers", type=int, default=None,
                        help="passed to detflow run (default: detflow's own)")
    parser.add_argument("--threads-per-worker", type=int, default=None)
    parser.add_argument("--processes", action="store_true",
                        help="detflow run --processes (workers as separate processes)")
    parser.add_argument("--scheduler", default=None,
                        help="detflow run --scheduler (e.g. 'threads': Dask's threaded "
                             "scheduler, no cluster)")
    parser.add_argument("--dashboard", action="store_true",
                        help="detflow run --dashboard (a local cluster with its dashboard)")
    parser.add_argument("--skip-jwst", action="store_true",
                        help="time detflow only (no ratios)")
    args = parser.parse_args()

    import os
    import shutil

    from jwst_oracle import offline_crds

    from detflow.simulator import simulate

    work = Path(args.workdir or tempfile.mkdtemp(prefix="detflow_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(offline_crds(work / "crds"))
    rows = []
    for nints in args.nints:
        case = work / (f"{args.instrument}_full_{args.ngroups}x{nints}"
                       + ("_emi" if args.emicorr else ""))
        uncal = next(iter(case.glob("*_uncal.fits")), case / "none")
        if uncal.exists():  # reuse an earlier run's simulation (same seed, same files)
            import json
            from types import SimpleNamespace

            manifest = json.loads((case / "manifest.json").read_text())
            refs = {k: case / "refs" / Path(v).name for k, v in manifest["references"].items()}
            sim = SimpleNamespace(uncal=uncal, refs=refs)
        else:
            sim = simulate(args.instrument, case, ngroups=args.ngroups, nints=nints,
                           emi=args.emicorr)
        root = sim.uncal.name.replace("_uncal.fits", "")
        jw_out, df_out = case / "jwst", case / "detflow"
        for out in (jw_out, df_out):  # no product of an earlier run: detflow would skip
            shutil.rmtree(out, ignore_errors=True)  # an exposure whose products exist
            out.mkdir()
        ov = overrides_args(sim.refs)
        if args.emicorr:
            ov.append("--steps.emicorr.skip=false")
        jw = None
        if not args.skip_jwst:
            jw = measure(["strun", "jwst.pipeline.Detector1Pipeline", str(sim.uncal),
                          f"--output_dir={jw_out}", "--steps.ramp_fit.maximum_cores=1", *ov],
                         env=env)
        dask_args = []
        if args.n_workers:
            dask_args.append(f"--n-workers={args.n_workers}")
        if args.threads_per_worker:
            dask_args.append(f"--threads-per-worker={args.threads_per_worker}")
        if args.processes:
            dask_args.append("--processes")
        if args.scheduler:
            dask_args.append(f"--scheduler={args.scheduler}")
        if args.dashboard:
            dask_args.append("--dashboard")
        df = measure(["detflow", "run", str(sim.uncal), f"--output_dir={df_out}", *dask_args,
                      *ov], env=env)
        if args.skip_jwst:
            print(f"{case.name}: detflow {df[0]:.1f} s, {df[1]:.0f} MiB (rc {df[2]})")
            if df[2] != 0:
                print(df[3][-3000:])
            continue
        for name, res in (("jwst", jw), ("detflow", df)):
            if res[2] != 0:
                print(f"{name} failed on {case.name}:\n{res[3][-3000:]}")
                return 1
        agree = compare(df_out / f"{root}_rate.fits", jw_out / f"{root}_rate.fits")
        rows.append((case.name, jw, df, agree))

    print(f"{'case':<22} {'jwst s':>8} {'detflow s':>10} {'speed-up':>9} "
          f"{'jwst MiB':>9} {'detflow MiB':>12} {'mem ratio':>10}  rate agreement")
    for name, jw, df, (same_nan, frac, dq_same) in rows:
        print(f"{name:<22} {jw[0]:>8.1f} {df[0]:>10.1f} {jw[0] / df[0]:>8.2f}x "
              f"{jw[1]:>9.0f} {df[1]:>12.0f} {df[1] / jw[1]:>10.2f}  "
              f"NaN same {same_nan}, {100 * frac:.3f}% within 1e-5, DQ same {dq_same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
