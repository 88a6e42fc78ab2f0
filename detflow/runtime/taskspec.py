"""The one place detflow uses Dask's private task specification (``dask._task_spec``).

Why: before a program's graph goes to the scheduler, :mod:`detflow.runtime.coarsen`
folds light tasks into their users and :mod:`detflow.runtime.names` renames every task
after its step and exposure (what the dashboard shows). Both must read tasks (their
function, arguments, dependencies, constants) and rebuild them (fuse, substitute keys).
Dask (2025.1 onwards) represents tasks as the classes below and has no public API to
inspect or rebuild them. Everything detflow needs of them is imported here, and
``tests/test_runtime.py::test_dask_task_spec_still_offers_what_detflow_uses`` fails
loudly, naming what changed, when a Dask release renames or reshapes any of it.
"""

from dask._task_spec import (  # noqa: F401  (re-exported: the private API in one place)
    Alias,
    DataNode,
    GraphNode,
    Task,
    convert_legacy_graph,
)

__all__ = ["Alias", "DataNode", "GraphNode", "Task", "convert_legacy_graph"]

#: What detflow uses of each class (checked by the test named above).
USED = {
    "GraphNode": ("dependencies", "fuse", "substitute"),
    "Task": ("func", "args", "has_subgraph"),
    "DataNode": ("value",),
}
