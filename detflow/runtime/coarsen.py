"""Fewer, larger tasks for a distributed scheduler.

A Dask scheduler spends about a millisecond of its own time on every task (state
transitions, messages to and from a worker), whatever the task does. After Dask's
own optimisation an exposure's graph still holds hundreds of tasks that do almost
nothing: aliases, slices and concatenations that cut halos and edges out of tiles,
picks of one output out of a kernel's tuple, small constants. Measured on a NIRCam
full frame (10 groups): 504 tasks, of which 249 are such; the scheduler's time was
~1.4 ms per task, ~0.7 s per exposure -- a ceiling on a program's throughput however
many workers there are.

:func:`coarsen` folds each of them into the one task that uses it (Dask's
``GraphNode.fuse``: the task runs them as a small subgraph), and gives small
constants to every task that uses them. Nothing changes what is computed, and no task
that does real work (a kernel, a file read) is merged with another: parallelism is
untouched.
"""

from __future__ import annotations

import pickle

#: Functions that only slice, join, pick or make small arrays: folded into their user.
#: (``finalize`` joins an array's blocks for the task that takes the whole array, e.g.
#: a product's writer: see :func:`detflow.runtime.execute.lazy_parts`.)
LIGHT = frozenset({
    "_getitem", "getitem", "_pick", "concatenate_shaped", "concatenate_arrays",
    "zeros_like", "and_", "reshape", "finalize",
})
#: Largest constant (pickled bytes) given to each of several users.
SMALL_CONSTANT = 64 * 1024


def _is_light(node):
    from dask.utils import funcname

    from detflow.runtime.taskspec import Alias, DataNode, Task

    if isinstance(node, (Alias, DataNode)):
        return True
    if isinstance(node, Task) and node.has_subgraph():  # Dask's fusion of light tasks
        inner = node.args[0]
        return isinstance(inner, dict) and all(_is_light(n) for n in inner.values())
    return isinstance(node, Task) and funcname(node.func) in LIGHT


def _is_small_constant(node):
    from detflow.runtime.taskspec import DataNode

    if not isinstance(node, DataNode):
        return False
    try:
        return len(pickle.dumps(node.value, protocol=5)) <= SMALL_CONSTANT
    except Exception:  # not picklable here: leave it alone
        return False


def coarsen(graph, keys):
    """A graph with the light tasks folded into their users.

    Parameters
    ----------
    graph : dict
        ``{key: GraphNode}`` (new-style Dask tasks, e.g. from
        :func:`detflow.runtime.taskspec.convert_legacy_graph`), already optimised.
    keys : collection
        The keys asked for: they stay tasks of their own.

    Returns
    -------
    dict
        ``{key: GraphNode}``, with fewer keys. A light task (an alias, a slice, a
        concatenation, a pick, a constant) used by exactly one task is folded into
        that task, recursively; a small constant used by several tasks goes into each
        of them. Keys the graph refers to but does not hold (results already in a
        cluster's memory) stay references.
    """
    from detflow.runtime.taskspec import GraphNode

    keep = set(keys)
    users = {k: [] for k in graph}
    for k, node in graph.items():
        for dep in node.dependencies:
            if dep in users:
                users[dep].append(k)
    into = {}  # folded key -> the task it goes into
    shared = {}  # small constant -> its users
    for k, node in graph.items():
        if k in keep:
            continue
        if len(set(users[k])) == 1 and _is_light(node):
            into[k] = users[k][0]
        elif len(users[k]) > 1 and _is_small_constant(node):
            shared[k] = set(users[k])

    def final(k):
        while k in into:
            k = into[k]
        return k

    groups = {}
    for k in graph:
        if k not in shared:
            groups.setdefault(final(k), {})[k] = None
    for k, its_users in shared.items():  # (a constant depends on nothing: users are tasks)
        for user in its_users:
            groups[final(user)][k] = None
    out = {}
    for top, members in groups.items():
        if len(members) == 1:
            out[top] = graph[top]
        else:
            out[top] = GraphNode.fuse(*(graph[m] for m in members), key=top)
    return out
