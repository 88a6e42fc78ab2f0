"""Where a program's time goes: worker compute by step, tasks, client and scheduler CPU.

Usage::

    python benchmarks/program_tasks.py FOLDER --refs DIR [--workers 2] [--n 8]
        [--steps.STEP.PARAM=VALUE ...]

Runs the first ``n`` exposures of FOLDER (``*_uncal.fits``, e.g. the ``inputs_8``
folder ``benchmarks/program.py --workdir DIR`` makes, with ``DIR/source/refs``) through
:func:`detflow.program.run_program` on a local cluster of ``workers`` single-thread
worker processes, as ``detflow run`` does, then prints from Dask's task stream the
compute time and task count per step and exposure, and the CPU time of this process
(the client and the scheduler) and of each worker. Products go to a temporary folder.
"""

import argparse
import collections
import glob
import os
import resource
import sys
import tempfile
import time
from functools import partial


def _cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--refs", required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--n", type=int, default=8)
    args, extra = parser.parse_known_args(argv)

    from detflow.interfaces import Detector1Pipeline
    from detflow.pipeline.params import parse_step_args
    from detflow.program import DONE, run_program
    from detflow.runtime.cluster import dask_client
    from detflow.runtime.warm import on_workers
    from detflow.tiling import Tiling

    inputs = sorted(glob.glob(os.path.join(args.folder, "*_uncal.fits")))[: args.n]
    if not inputs:
        sys.exit(f"{args.folder}: no *_uncal.fits")
    out = tempfile.mkdtemp(prefix="detflow_tasks_")
    pipe = Detector1Pipeline(refs_dir=args.refs, output_dir=out, save_results=True,
                             steps=parse_step_args(extra))
    with dask_client(None, args.workers, 1, processes=True) as client:
        on_workers(client)
        client.get_task_stream(start=time.time())  # (the scheduler records from now on)
        c0, w0 = _cpu(), client.run(_cpu)
        t0 = time.perf_counter()
        start = time.time()
        tiling = Tiling.for_run(cluster=True, exposures=len(inputs))  # as `detflow run`
        outcomes = run_program(inputs, partial(pipe.plan, tiling=tiling), client=client)
        wall = time.perf_counter() - t0
        stream = client.get_task_stream(start=start - 1)
        c1, w1 = _cpu(), client.run(_cpu)
        peaks = client.run(_peak_mib)
    n = len(inputs)
    done = sum(o.status == DONE for o in outcomes)
    by, count = collections.Counter(), collections.Counter()
    for task in stream:
        key = task["key"][0] if isinstance(task["key"], tuple) else task["key"]
        step = str(key).split("-")[0]
        for part in task["startstops"]:
            if part["action"] == "compute":
                by[step] += part["stop"] - part["start"]
                count[step] += 1
    print(f"{done}/{n} done in {wall:.2f} s on {args.workers} worker(s); "
          f"{sum(count.values()) / n:.0f} tasks per exposure")
    print(f"CPU s: client and scheduler {c1 - c0:.2f}; workers "
          f"{', '.join(f'{w1[k] - w0[k]:.2f}' for k in w0)}; worker peak MiB "
          f"{', '.join(str(v) for v in peaks.values())}")
    print(f"compute per exposure {sum(by.values()) / n:.2f} s")
    for step, seconds in by.most_common():
        print(f"  {step:14s} {seconds / n:6.3f} s  {count[step] / n:6.1f} tasks  "
              f"{1000 * seconds / count[step]:7.2f} ms/task")
    return 0


if __name__ == "__main__":
    sys.exit(main())
