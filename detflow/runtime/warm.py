"""Start-up work done ahead of the first task.

A worker process imports what an exposure's tasks run (the steps, their compiled
kernels, the product writers) when the first task arrives: about a second and a half,
paid while the client is still building the first exposure's graph if it is asked for
as soon as the cluster is up (:func:`on_workers`).
"""

import importlib
import os


def import_pipeline():
    """Import the modules detector1's tasks run; returns their number."""
    from detflow.steps import STEP_NAMES, is_implemented

    names = [f"detflow.steps.{n}" for n in STEP_NAMES if is_implemented(n)]
    names += ["detflow.io.products", "detflow.io.persistence", "detflow.runtime.execute"]
    for name in names:
        importlib.import_module(name)
    return len(names)


async def _import_pipeline_here():
    # (client.run only fires and forgets coroutines; the imports block the worker's loop
    # for their second or so, before its first task)
    return import_pipeline()


def on_workers(client):
    """Have every worker process other than this one import the pipeline now, without
    waiting for it (workers that are threads of this process share its imports)."""
    try:
        pids = client.run(os.getpid)
    except Exception:  # a scheduler that does not answer: the first task imports them
        return []
    others = [addr for addr, pid in pids.items() if pid != os.getpid()]
    if others:
        client.run(_import_pipeline_here, workers=others, wait=False)
    return others
