"""Task names that read on the Dask dashboard: ``<step>-<exposure>-<token>``.

Dask names a task after the function that made its layer (``_detect_block-9f3c...``,
``astype-...``), so a program's task stream shows what ran but not for which step or
exposure. Before a graph is submitted, :func:`label_by_step` renames every task after
the step whose layer it belongs to and the exposure's root name, e.g.
``jump-jw01234001001_01101_00001_nrca1-1a2b3c4d``: the dashboard groups tasks by the
prefix (the step), and each task names its exposure.

The graph is optimised first (Dask's blockwise fusion), as ``compute`` would, and its
light tasks are folded into their users (:mod:`detflow.runtime.coarsen`); a fused task
keeps the name, hence the token, of its output layer, which tells the step.
"""

from __future__ import annotations

from dask.base import tokenize

#: Label of the tasks that read the exposure's file.
READ = "read"
#: Label of tasks outside every step (gathering and writing products).
WRITE = "write"


def _name(key):
    return key[0] if isinstance(key, tuple) else key


def _token(name):
    return str(name).rsplit("-", 1)[-1]


def step_owners(stages):
    """``{layer token: step}`` from the Datasets after each stage, in pipeline order
    (``stages``: ``[(label, Dataset)]``, e.g. ``[("read", raw), ("dq_init", ...), ...]``):
    a layer belongs to the first stage whose graph has it."""
    owners = {}
    for label, ds in stages:
        if ds is None:
            continue
        for name in ds.__dask_graph__().layers:
            owners.setdefault(_token(name), label)
    return owners


def label_by_step(delayed, owners, exposure):
    """``delayed`` (one lazy result, or a list of them) with its tasks renamed
    ``<step>-<exposure>-<token>``.

    Parameters
    ----------
    delayed : dask.delayed.Delayed or list of them
        The exposure's work (e.g. :func:`detflow.runtime.execute.write_task`). Several
        are optimised and renamed together: the tasks they share keep one name.
    owners : dict
        :func:`step_owners` of the exposure's stages.
    exposure : str
        The exposure's root name (``jw01234001001_01101_00001_nrca1``).

    Returns
    -------
    dask.delayed.Delayed or list of them
        The same computation under the new names (compute it with
        ``optimize_graph=False``: it is optimised already). Keys the graph depends on
        but does not hold (results already in a cluster's memory) keep their names.
    """
    import dask
    from dask.delayed import Delayed

    from detflow.runtime.coarsen import coarsen
    from detflow.runtime.taskspec import convert_legacy_graph

    many = isinstance(delayed, (list, tuple))
    optimized = dask.optimize(*(delayed if many else [delayed]))
    graph = {}
    for one in optimized:
        graph.update(one.__dask_graph__())
    graph = coarsen(convert_legacy_graph(graph), [one.key for one in optimized])
    renamed = {}

    def new_name(name):
        if name not in renamed:
            label = owners.get(_token(name)) or WRITE
            renamed[name] = f"{label}-{exposure}-{tokenize(name)[:8]}"
        return renamed[name]

    def new_key(key):
        if isinstance(key, tuple):
            return (new_name(key[0]),) + key[1:]
        return new_name(key)

    subs = {key: new_key(key) for key in graph}
    tasks = {subs[key]: node.substitute(subs, key=subs[key]) for key, node in graph.items()}
    out = [Delayed(subs[one.key], tasks) for one in optimized]
    return out if many else out[0]
