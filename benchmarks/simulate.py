"""Time and peak memory of the simulator (full-frame NIRCam and MIRI exposures).

Usage::

    python benchmarks/simulate.py [--out DIR] [--ngroups 10] [--nints 1]

Each case runs in a fresh process; peak memory is the maximum resident set
size of that process (``resource.getrusage``), wall time includes writing the
exposure and all reference files.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time

CHILD = """
import json, resource, sys, time
from detflow.simulator import simulate
t0 = time.perf_counter()
res = simulate(sys.argv[1], sys.argv[2], subarray=sys.argv[3], ngroups=int(sys.argv[4]),
               nints=int(sys.argv[5]))
print(json.dumps({"seconds": time.perf_counter() - t0,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help="where to write (default: a temporary folder)")
    parser.add_argument("--ngroups", type=int, default=10)
    parser.add_argument("--nints", type=int, default=1)
    args = parser.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="detflow_bench_")
    cases = [("nircam", "FULL"), ("nircam", "SUB640"), ("miri", "FULL")]
    print(f"{'case':<16} {'shape':<28} {'wall s':>8} {'peak MiB':>9}")
    for instrument, subarray in cases:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, instrument, f"{out}/{instrument}_{subarray}", subarray,
             str(args.ngroups), str(args.nints)],
            capture_output=True, text=True, check=True,
        )
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        shape = f"{args.nints}x{args.ngroups}x" + ("2048x2048" if subarray == "FULL" and
                                                   instrument == "nircam" else
                                                   "640x640" if subarray == "SUB640" else
                                                   "1024x1032")
        print(f"{instrument + ' ' + subarray:<16} {shape:<28} {res['seconds']:>8.1f} "
              f"{res['peak_mib']:>9.0f}   (process {time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
