"""Any Dataset to a Zarr v3 store: :func:`to_zarr`.

The store is written from the Dataset's Dask chunks (made regular where they are
not: Zarr needs equal chunks) under a temporary name and moved into place when
complete, replacing an older store only then. Attributes are made plain JSON.
With ``compute=False`` only the metadata is written at once; a lazy task writes
the chunks (each on the worker that computed it) and then moves the store.
"""

import datetime
import math
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import dask
import dask.array as da
import numpy as np

from detflow.errors import ParameterError, ProductWriteError
from detflow.io.atomic import atomic_path
from detflow.io.products.names import _check_writable
from detflow.io.values import plain_scalar

__all__ = ["to_zarr"]


def _jsonable(value):
    """``value`` with numpy types, tuples, paths and bytes made plain JSON.

    For any attribute on its way to Zarr: strings are kept as they are and
    anything unknown becomes its ``str``. Values read from FITS go through
    :func:`detflow.io.values.json_value` instead (FITS rules: trailing blanks
    stripped, undefined values to ``None``).
    """
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [_jsonable(v) for v in items]
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    value = plain_scalar(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    return str(value)


def _regular_chunks(chunks):
    """Chunks Zarr can hold: all equal but a smaller last one (``None`` when already so)."""
    new = []
    changed = False
    for axis in chunks:
        size = max(axis) if axis else 1
        regular = all(c == axis[0] for c in axis[:-1]) and (not axis or axis[-1] <= axis[0])
        if not regular:
            changed = True
        new.append(axis[0] if regular and axis else size)
    return tuple(new) if changed else None


def to_zarr(ds, path, mode="w", compute=True):
    """Write any Dataset to a Zarr v3 store, atomically and from its Dask chunks.

    Parameters
    ----------
    ds : xarray.Dataset
        Any Dataset (lazy or not); it is not modified. Irregular Dask chunks are
        made regular (Zarr needs equal chunks); attributes are made plain JSON
        (numpy scalars to Python, arrays and tuples to lists, NaN to null).
    path : str or Path
        Local path of the store (a folder, conventionally ``*.zarr``).
    mode : {"w", "w-"}
        ``"w"`` replaces an existing store (once the new one is complete); ``"w-"``
        refuses to.
    compute : bool
        False: write only the store's metadata now (under a temporary name) and
        return a lazy task that writes every chunk -- one task per chunk, on the
        worker that computed it -- then moves the store to ``path``.

    Returns
    -------
    pathlib.Path, or dask.delayed.Delayed (its result: the path as a string)
    """
    path = Path(path)
    if mode not in ("w", "w-"):
        raise ParameterError(f"to_zarr mode must be 'w' or 'w-', not {mode!r}")
    if mode == "w-" and path.exists():
        raise ProductWriteError(path, "exists (mode='w-')")
    if path.exists() and not path.is_dir():
        raise ProductWriteError(path, "a file exists under the store's name")
    _check_writable(path, directory=True)
    out = ds.copy(deep=False)
    out.attrs = _jsonable(dict(ds.attrs))
    for name in out.variables:
        var = out.variables[name]
        var.attrs = _jsonable(dict(var.attrs))
        var.encoding = {}
        if isinstance(var.data, da.Array):
            regular = _regular_chunks(var.data.chunks)
            if regular is not None:
                out[name] = var.chunk(dict(zip(var.dims, regular, strict=True)))
    if not compute:
        return _to_zarr_lazy(out, path)
    try:
        with atomic_path(path, directory=True) as tmp:
            out.to_zarr(tmp, mode="w-", zarr_format=3, consolidated=False)
    except PermissionError as exc:
        raise ProductWriteError(path, f"cannot write: {exc}") from exc
    return path


def _to_zarr_lazy(out, path):
    import uuid

    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.part"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        chunks = out.to_zarr(tmp, mode="w-", zarr_format=3, consolidated=False,
                             compute=False)
    except PermissionError as exc:
        raise ProductWriteError(path, f"cannot write: {exc}") from exc
    return dask.delayed(_finish_store, pure=False)(chunks, str(tmp), str(path))


def _finish_store(_written, tmp, path):
    """Move a completely written store from its temporary name to ``path`` (an older
    store there is replaced only now)."""
    tmp, path = Path(tmp), Path(path)
    old = None
    if path.exists():
        old = path.parent / f".{path.name}.old-{tmp.name.rsplit('.', 2)[-2]}"
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return str(path)
