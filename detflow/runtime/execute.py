"""Run a built graph: compute the requested products together, then write them atomically."""

import dask

from detflow.io import products as writers

WRITERS = {
    "rate": writers.write_rate,
    "rateints": writers.write_rateints,
    "fitopt": writers.write_fitopt,
    "ramp": writers.write_ramp,
}


def compute_and_write(items):
    """Compute several lazy products in one pass over the graph, then write each one.

    Parameters
    ----------
    items : list of (kind, Dataset, path)
        ``kind`` is ``rate``, ``rateints``, ``fitopt`` or ``ramp`` (any ramp-shaped
        intermediate, e.g. a step's output).

    Returns
    -------
    list of (kind, Dataset, Path)
        The computed Datasets and the paths written.
    """
    items = [(k, ds, p) for k, ds, p in items if ds is not None]
    if not items:
        return []
    computed = dask.compute(*[ds for _, ds, _ in items])
    out = []
    for (kind, _, path), ds in zip(items, computed, strict=True):
        written = WRITERS[kind](ds, path)
        out.append((kind, ds, written))
    return out
