"""Start-up work done ahead of the first task.

A worker process imports what an exposure's tasks run (the steps, their compiled
kernels, the product writers) when the first task arrives: about a second and a half,
paid while the client is still building the first exposure's graph if it is asked for
as soon as the cluster is up (:func:`on_workers`).
"""

import importlib
import os

#: Modules of the compiled kernels every detector1 run calls (saturation, linearity,
#: jump, ramp fitting). numba compiles them on first use and keeps the result on disk
#: (``cache=True``); on a fresh install that takes a minute or more. (IPC's kernel is
#: left out: the step is N/A where no IPC reference applies, e.g. MIRI, so it may never
#: be compiled.)
KERNEL_MODULES = ("detflow.kernels.saturation", "detflow.kernels.linearity",
                  "detflow.kernels._jump_numba", "detflow.kernels._ramp_fit_numba")


def uncompiled_kernels(modules=KERNEL_MODULES):
    """The compiled kernels of ``modules`` that numba's on-disk cache does not hold for
    their current source and numba's version: what the next run compiles first.

    Parameters
    ----------
    modules : sequence of str
        Module names; their numba functions with ``cache=True`` are checked (those
        inlined into their callers are not compiled on their own and are skipped).

    Returns
    -------
    list of str
        ``module.function`` names; empty when every kernel is cached (its index file
        beside the module's ``__pycache__``, or in ``NUMBA_CACHE_DIR``, is present and
        fresh). Nothing is compiled.
    """
    from numba.core.dispatcher import Dispatcher

    out = []
    for name in modules:
        module = importlib.import_module(name)
        for attr, obj in vars(module).items():
            if not isinstance(obj, Dispatcher) or obj.targetoptions.get("inline") not in (
                    None, "never"):
                continue
            cache_file = getattr(getattr(obj, "_cache", None), "_cache_file", None)
            if cache_file is None:  # not cached on disk: compiled every run anyway
                continue
            try:
                cached = bool(cache_file._load_index())
            except Exception:  # an unreadable index: numba compiles again
                cached = False
            if not cached:
                out.append(f"{name.rsplit('.', 1)[-1]}.{attr}")
    return out


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
