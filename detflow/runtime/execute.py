"""Run a built graph: compute the requested products together, then write them atomically."""

from pathlib import Path

import dask

from detflow.io import products as writers
from detflow.steps.jump import scalars_to_attrs
from detflow.steps.ramp_fit import NO_PRODUCT, trim_fitopt


def write_persistence(ds, path):
    """Write a persistence step's outgoing window array (``persistence_array`` of ``ds``)
    where jwst's ``save_persistence`` puts it (``path`` is that parameter's value)."""
    from detflow.io.persistence import write_persistence_array

    entry = next(p for p in reversed(ds.attrs["provenance"]) if p["step"] == "persistence")
    filename = ds.attrs.get("persistence_filename") or Path(str(ds.attrs["source"])).name
    return write_persistence_array(
        path, ds["persistence_array"].values, detector=ds.attrs["detector"],
        filename=filename, persistence_time=entry["parameters"]["persistence_time"])


#: Kind of an item that is computed, not written: the state a program's chain carries to
#: the next exposure (see :func:`detflow.program.run_program`).
CARRY = "carry"

WRITERS = {
    "rate": writers.write_rate,
    "rateints": writers.write_rateints,
    "fitopt": writers.write_fitopt,
    "ramp": writers.write_ramp,
    "dark": writers.write_dark,
    "persistence": write_persistence,
}


def compute_and_write(items):
    """Compute several lazy products in one pass over the graph, then write each one.

    Parameters
    ----------
    items : list of (kind, Dataset, path)
        ``kind`` is ``rate``, ``rateints``, ``fitopt``, ``ramp`` (any ramp-shaped
        intermediate, e.g. a step's output), ``dark`` (dark_current's
        ``dark_output``), ``persistence`` (the persistence step's output: its
        ``persistence_array`` is written to ``save_persistence``, the given path) or
        ``zarr`` (any Dataset, as a Zarr store written chunk by chunk) or
        :data:`CARRY` (any lazy value, computed with the others, not written; path None).

    Returns
    -------
    list of (kind, Dataset, Path)
        The computed Datasets and the paths written; ``(kind, None, None)`` for a
        ramp-fitting product jwst would not make (its ``no_product`` is True: nothing
        is written); ``(CARRY, value, None)`` for a carried value.
    """
    items = [(k, ds, p) for k, ds, p in items if ds is not None]
    if not items:
        return []
    products = [(k, ds, p) for k, ds, p in items if k != "zarr"]
    stores = _store_tasks(items)
    computed = dask.compute(*[ds for _, ds, _ in products], *stores)
    written = write_computed([(k, p) for k, _, p in products], computed[:len(products)])
    return written + [("zarr", None, Path(p)) for p in computed[len(products):]]


def _store_tasks(items):
    """Lazy Zarr writes (one task per chunk, then the store's atomic move) of the
    ``("zarr", Dataset, path)`` items."""
    return [writers.to_zarr(ds, path, compute=False) for k, ds, path in items
            if k == "zarr"]


def write_computed(targets, datasets):
    """Write computed products: ``targets`` ``[(kind, path)]``, ``datasets`` in the same
    order; returns ``[(kind, Dataset or None, Path or None)]`` (see
    :func:`compute_and_write`)."""
    out = []
    for (kind, path), ds in zip(targets, datasets, strict=True):
        if kind == CARRY:
            out.append((kind, ds, None))
            continue
        if NO_PRODUCT in ds.variables:
            if bool(ds[NO_PRODUCT]):
                out.append((kind, None, None))
                continue
            ds = ds.drop_vars(NO_PRODUCT)
        ds = scalars_to_attrs(ds)  # PRIMECRS/EXTNCRS, computed with the arrays
        if kind == "fitopt":
            ds = trim_fitopt(ds)  # jwst's number of segment and CR planes
        written = WRITERS[kind](ds, path)
        out.append((kind, ds, written))
    return out


def _write_on_worker(targets, datasets, stores=()):
    """The products, written here; ``stores``: the paths of the Zarr stores written
    chunk by chunk before this task runs."""
    return [(kind, None if path is None else str(path))
            for kind, _, path in write_computed(targets, datasets)] + [
        ("zarr", str(p)) for p in stores]


def write_task(items, name="write"):
    """One lazy task that computes ``items`` (as :func:`compute_and_write` takes them)
    and writes them where it runs -- on a worker of a cluster, so no product passes
    through the client. Its result is the small list ``[(kind, path or None)]``."""
    items = [(k, ds, p) for k, ds, p in items if ds is not None]
    products = [(k, ds, p) for k, ds, p in items if k != "zarr"]
    targets = [(k, p) for k, _, p in products]
    from dask.base import tokenize

    datasets = [ds for _, ds, _ in products]
    stores = _store_tasks(items)
    key = f"{name}-{tokenize(targets, *datasets, *stores)}"
    return dask.delayed(_write_on_worker, pure=True)(targets, datasets, stores,
                                                     dask_key_name=key)
