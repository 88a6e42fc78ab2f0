"""MIRI time series: detflow's peak memory stays flat as the integrations grow, jwst's
grows with the file (jwst#5310).

Usage::

    python benchmarks/miri_tso.py [--workdir DIR] [--subarray SLITLESSPRISM]
        [--readpatt FASTR1] [--ngroups 10] [--nints 100 500 2000] [--jwst-max-nints 500]
        [--emicorr]

For each number of integrations it simulates one MIRI subarray exposure (the LRS
time-series subarray by default), runs ``detflow run`` and, up to
``--jwst-max-nints`` integrations, ``strun jwst.pipeline.Detector1Pipeline`` on it as
separate processes with every reference file given as an override, and reports the wall
time and the peak memory of the whole process tree (sampled every 50 ms, see
``detector1.py``), the ratios, and whether the rateints agree (SCI, DQ). With
``--emicorr`` the emicorr step runs too (its reference comes with the simulation).
"""

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from detector1 import compare, measure, overrides_args  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--subarray", default="SLITLESSPRISM")
    parser.add_argument("--readpatt", default="FASTR1")
    parser.add_argument("--ngroups", type=int, default=10)
    parser.add_argument("--nints", type=int, nargs="+", default=[100, 500, 2000])
    parser.add_argument("--jwst-max-nints", type=int, default=500,
                        help="run jwst only up to this many integrations (its memory and "
                             "time grow with them)")
    parser.add_argument("--emicorr", action="store_true", help="run emicorr too")
    args = parser.parse_args()

    from jwst_oracle import offline_crds

    from detflow.simulator import simulate

    work = Path(args.workdir or tempfile.mkdtemp(prefix="detflow_tso_"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(offline_crds(work / "crds"))
    extra = ["--steps.emicorr.skip=false"] if args.emicorr else []
    rows = []
    for nints in args.nints:
        case = work / f"miri_{args.subarray.lower()}_{args.readpatt.lower()}_{args.ngroups}x{nints}"
        shutil.rmtree(case, ignore_errors=True)
        sim = simulate("miri", case, subarray=args.subarray, readpatt=args.readpatt,
                       ngroups=args.ngroups, nints=nints)
        root = sim.uncal.name.replace("_uncal.fits", "")
        ov = overrides_args(sim.refs)
        df_out, jw_out = case / "detflow", case / "jwst"
        df = measure(["detflow", "run", str(sim.uncal), f"--output_dir={df_out}", *ov,
                      *extra], env=env)
        if df[2] != 0:
            print(f"detflow failed on {case.name}:\n{df[3][-3000:]}")
            return 1
        jw = None
        if nints <= args.jwst_max_nints:
            jw = measure(["strun", "jwst.pipeline.Detector1Pipeline", str(sim.uncal),
                          f"--output_dir={jw_out}", "--steps.ramp_fit.maximum_cores=1",
                          *ov, *extra], env=env)
            if jw[2] != 0:
                print(f"jwst failed on {case.name}:\n{jw[3][-3000:]}")
                jw = None
        agree = (compare(df_out / f"{root}_rateints.fits", jw_out / f"{root}_rateints.fits")
                 if jw else None)
        rows.append((nints, case.stat().st_size, sim, df, jw, agree))
        shutil.rmtree(case / "jwst", ignore_errors=True)

    print(f"{'nints':>6} {'detflow s':>10} {'detflow MiB':>12} {'jwst s':>8} "
          f"{'jwst MiB':>9} {'speed-up':>9} {'mem ratio':>10}  rateints agreement")
    for nints, _, _, df, jw, agree in rows:
        line = f"{nints:>6} {df[0]:>10.1f} {df[1]:>12.0f}"
        if jw:
            same_nan, frac, dq_same = agree
            line += (f" {jw[0]:>8.1f} {jw[1]:>9.0f} {jw[0] / df[0]:>8.2f}x "
                     f"{df[1] / jw[1]:>10.2f}  NaN same {same_nan}, "
                     f"{100 * frac:.3f}% within 1e-5, DQ same {dq_same}")
        else:
            line += f" {'-':>8} {'-':>9} {'-':>9} {'-':>10}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
