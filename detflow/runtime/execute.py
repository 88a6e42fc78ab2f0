"""Run a built graph: compute the requested products together, then write them atomically."""

from pathlib import Path

import dask
import xarray as xr

from detflow.io import products as writers
from detflow.steps.base import scalars_to_attrs
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
    parts = [lazy_parts(ds) for _, ds, _ in products]
    arrays = [a for _, a in parts]
    computed = dask.compute(arrays, *stores)
    datasets = [from_parts(shell, values)
                for (shell, _), values in zip(parts, computed[0], strict=True)]
    written = write_computed([(k, p) for k, _, p in products], datasets)
    return written + [("zarr", None, Path(p)) for p in computed[1:]]


def compute_results(datasets):
    """Lazy results (Datasets), computed together in one pass and returned in memory
    as the writers receive them: Dask is given their arrays (:func:`lazy_parts`), and
    the steps' header scalars are moved to ``attrs`` (:func:`scalars_to_attrs`). For
    results returned rather than written (a jwst datamodel in, a model out)."""
    parts = [lazy_parts(ds) for ds in datasets]
    (values,) = dask.compute([arrays for _, arrays in parts])
    return [scalars_to_attrs(from_parts(shell, v))
            for (shell, _), v in zip(parts, values, strict=True)]


def lazy_parts(obj):
    """``(shell, arrays)``: a lazy Dataset (or DataArray, or any Dask collection) as the
    Dask arrays of its lazy variables, and a shell holding the rest, from which
    :func:`from_parts` rebuilds it once the arrays are computed.

    Dask is given the arrays, never a Dataset: a Dataset is one collection whose keys
    are all its variables', and Dask (2025.4 onwards) optimises such a collection for
    its one ``finalize`` key alone, so an output variable whose only other user in the
    same Dataset is a blockwise chain (jump's group DQ, which also gives the PRIMECRS
    count) is fused into that chain and its key disappears: "Missing dependency" on the
    threaded scheduler, "FutureCancelledError ... lost dependencies" on a cluster
    (pydata/xarray#11329). Arrays are each a collection of their own, optimised
    together, so each keeps its key. (xarray's own ``Dataset.compute`` does the same.)
    The shell holds no Dask graph: it is small to send to a worker.
    """
    if isinstance(obj, xr.DataArray):
        shell, arrays = lazy_parts(obj.to_dataset(name=_VALUE))
        return ("dataarray", obj.name, shell), arrays
    if not isinstance(obj, xr.Dataset):
        return ("value",), [obj]
    lazy = [name for name, var in obj.variables.items() if dask.is_dask_collection(var.data)]
    specs = [(name, name in obj.coords, obj.variables[name].dims,
              dict(obj.variables[name].attrs), dict(obj.variables[name].encoding))
             for name in lazy]
    return (("dataset", obj.drop_vars(lazy), specs, list(obj.data_vars)),
            [obj.variables[name].data for name in lazy])


def from_parts(shell, values):
    """The object :func:`lazy_parts` took apart, with its lazy arrays' computed
    ``values`` (in the same order)."""
    if shell[0] == "value":
        return values[0]
    if shell[0] == "dataarray":
        return from_parts(shell[2], values)[_VALUE].rename(shell[1])
    _, rest, specs, order = shell
    if not specs:
        return rest
    new = {}
    for (name, _, dims, attrs, encoding), value in zip(specs, values, strict=True):
        new[name] = xr.Variable(dims, value, attrs, encoding)
    coords = {name: new[name] for name, is_coord, *_ in specs if is_coord}
    out = rest.assign_coords(coords) if coords else rest
    out = out.assign({name: var for name, var in new.items() if name not in coords})
    if list(out.data_vars) != order:  # back in the order the Dataset had
        out = xr.Dataset({name: out.variables[name] for name in order},
                         coords=out.coords, attrs=out.attrs)
        out.encoding = dict(rest.encoding)
    return out


#: Name of a DataArray's values in the Dataset :func:`lazy_parts` makes of it.
_VALUE = "__detflow_value__"


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
        ds = scalars_to_attrs(ds)  # PRIMECRS, EXTNCRS, meta.rscd: computed with the arrays
        if kind == "fitopt":
            ds = trim_fitopt(ds)  # jwst's number of segment and CR planes
        written = WRITERS[kind](ds, path)
        out.append((kind, ds, written))
    return out


def _write_on_worker(targets, shells, arrays, stores=()):
    """The products, written here: ``shells`` and the computed ``arrays`` of each
    (:func:`lazy_parts`); ``stores``: the paths of the Zarr stores written chunk by
    chunk before this task runs."""
    datasets = [from_parts(shell, values) for shell, values in zip(shells, arrays,
                                                                  strict=True)]
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
    parts = [lazy_parts(ds) for ds in datasets]  # arrays, not Datasets (see lazy_parts)
    return dask.delayed(_write_on_worker, pure=True)(
        targets, [shell for shell, _ in parts], [arrays for _, arrays in parts], stores,
        dask_key_name=key)
