"""jwst 3.0.0's persistence array file (ASDF): read the windows carried in, write the
windows carried out.

jwst's ``PersistenceStep`` keeps, per pixel, the time (Unix epoch seconds) at which
a persistence window ends (0: no window). It saves the pixels with an open window
to an ASDF file so that later exposures of the same detector go on flagging them
(``save_persistence`` writes, ``persistence_array_file`` reads). The tree holds one
entry per detector (``DETECTOR`` keyword)::

    NRCA1:
      filename: <name of the model that wrote it>   # str
      rows: int64 array (n,)                         # 0-based rows of the *exposure*
      cols: int64 array (n,)                         # 0-based columns of the exposure
      vals: float64 array (n,)                       # window end times, all non-zero
      pers_time: int                                 # the persistence_time used

``rows``/``cols`` index the exposure's own array (subarray pixel numbers, not
full-frame ones). Writing updates this detector's entry and keeps the others.

jwst's rules, reproduced here:

* the output name is ``save_persistence`` with its suffix replaced by ``.asdf``
  (relative names are relative to the working directory, not ``output_dir``);
* on input, a missing file, a file without this detector, or an entry whose
  ``pers_time`` differs from ``persistence_time`` all give an empty (all-zero)
  array.

The step itself never opens a file (:mod:`detflow.steps.persistence`): the pipeline
layer opens the incoming array with :func:`open_persistence_array` and hands it to
the step; the step returns the outgoing array as the lazy ``persistence_array``
variable, which the runner computes with the products and writes with
:func:`write_persistence_array`.
"""

import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detflow.errors import InputFileError, ProductWriteError
from detflow.io.atomic import atomic_path

__all__ = [
    "PersistenceEntry",
    "open_persistence_array",
    "persistence_file_path",
    "read_persistence_entry",
    "write_persistence_array",
]


@dataclass(frozen=True)
class PersistenceEntry:
    """One detector's entry of a persistence array file.

    Attributes
    ----------
    detector : str
    filename : str or None
    rows, cols : numpy.ndarray
        ``(n,)`` int64 0-based exposure pixel indices.
    vals : numpy.ndarray
        ``(n,)`` float64 window end times (Unix epoch seconds).
    pers_time : int or float or None
        The ``persistence_time`` the windows were made with.
    """

    detector: str
    filename: str | None
    rows: np.ndarray
    cols: np.ndarray
    vals: np.ndarray
    pers_time: object


def persistence_file_path(save_persistence):
    """The file jwst writes for ``save_persistence``: the suffix becomes ``.asdf``.

    Parameters
    ----------
    save_persistence : str or os.PathLike

    Returns
    -------
    pathlib.Path
        E.g. ``pers.fits`` -> ``pers.asdf``, ``pers`` -> ``pers.asdf``,
        ``a/pers.asdf`` unchanged. Relative paths stay relative (to the working
        directory, as in jwst).
    """
    path = Path(save_persistence)
    if path.suffix == ".asdf":
        return path
    return path.parent / f"{path.stem}.asdf"


def read_persistence_entry(path, detector):
    """Read one detector's entry of a persistence array file.

    Parameters
    ----------
    path : str or os.PathLike
    detector : str
        ``DETECTOR`` keyword of the exposure (jwst's ``meta.instrument.detector``).

    Returns
    -------
    PersistenceEntry or None
        None where the file does not exist or has no entry for ``detector`` (jwst then
        starts from an empty array).

    Raises
    ------
    InputFileError
        The file exists but is not a readable persistence array file.
    """
    import asdf

    path = Path(path)
    if not path.exists():
        return None
    try:
        with asdf.open(path, lazy_load=False, memmap=False) as af:
            if detector not in af.tree:
                return None
            node = af.tree[detector]
            return PersistenceEntry(
                detector=str(detector),
                filename=None if node.get("filename") is None else str(node.get("filename")),
                rows=np.asarray(node["rows"]).astype(np.int64, copy=True),
                cols=np.asarray(node["cols"]).astype(np.int64, copy=True),
                vals=np.asarray(node["vals"]).astype(np.float64, copy=True),
                pers_time=node["pers_time"],
            )
    except Exception as exc:  # asdf raises many kinds of errors on a bad file
        raise InputFileError(path, f"not a readable persistence array file ({exc})") from exc


def open_persistence_array(path, ds, persistence_time):
    """jwst's incoming persistence array for an exposure, as a lazy DataArray.

    Only the small sparse entry is read now; each spatial tile of the dense array is
    filled when it is computed.

    Parameters
    ----------
    path : str or os.PathLike
        ``persistence_array_file``.
    ds : xarray.Dataset
        The exposure (:mod:`detflow.contract`): its ``detector`` attribute picks the
        entry, its ``y``/``x`` coordinates and ``groupdq`` chunks shape the result.
    persistence_time : int
        The step's ``persistence_time``; an entry made with another one is ignored.

    Returns
    -------
    xarray.DataArray
        ``(ny, nx)`` float64 on ``(y, x)``: window end times, 0 where none (all zero
        where the file is missing, lacks the detector or has another ``pers_time``).

    Raises
    ------
    InputFileError
        Unreadable file, or pixel indices outside the exposure (jwst fails with an
        IndexError there).
    """
    import dask.array as da
    import xarray as xr

    ny, nx = int(ds.sizes["y"]), int(ds.sizes["x"])
    gdq = ds["groupdq"].transpose(..., "y", "x").data
    if isinstance(gdq, da.Array):
        chunks = gdq.chunks[-2:]
    else:
        chunks = ((ny,), (nx,))
    entry = read_persistence_entry(path, ds.attrs.get("detector"))
    if entry is None or entry.pers_time != persistence_time:
        arr = da.zeros((ny, nx), dtype=np.float64, chunks=chunks)
    else:
        rows, cols = entry.rows.copy(), entry.cols.copy()
        # numpy fancy indexing wraps negative indices and fails beyond the shape
        rows[rows < 0] += ny
        cols[cols < 0] += nx
        bad = (rows < 0) | (rows >= ny) | (cols < 0) | (cols >= nx)
        if bad.any():
            raise InputFileError(
                path, f"{ds.attrs.get('detector')} entry has pixels outside the exposure's "
                f"{ny}x{nx} array (a persistence array file from another subarray?)"
            )
        arr = _sparse_to_dask(rows, cols, entry.vals, chunks)
    return xr.DataArray(arr, dims=("y", "x"), coords={"y": ds["y"], "x": ds["x"]},
                        name="persistence_array")


def _sparse_to_dask(rows, cols, vals, chunks):
    """A lazy dense ``(ny, nx)`` float64 array from sparse entries: each tile is one task
    that holds only its own entries (later duplicates win, as in numpy's assignment)."""
    import dask
    import dask.array as da

    ybounds = np.cumsum((0,) + tuple(chunks[0]))
    xbounds = np.cumsum((0,) + tuple(chunks[1]))
    by = np.searchsorted(ybounds, rows, side="right") - 1
    bx = np.searchsorted(xbounds, cols, side="right") - 1
    grid = []
    for iy, hy in enumerate(chunks[0]):
        line = []
        for ix, hx in enumerate(chunks[1]):
            sel = (by == iy) & (bx == ix)
            if not sel.any():
                line.append(da.zeros((hy, hx), dtype=np.float64, chunks=(hy, hx)))
                continue
            block = dask.delayed(_fill_block, pure=True)(
                rows[sel] - ybounds[iy], cols[sel] - xbounds[ix], vals[sel], (hy, hx))
            line.append(da.from_delayed(block, (hy, hx), dtype=np.float64,
                                        meta=np.empty((0, 0), dtype=np.float64)))
        grid.append(line)
    return da.block(grid)


def _fill_block(rows, cols, vals, shape):
    """One dense tile from its sparse entries."""
    out = np.zeros(shape, dtype=np.float64)
    out[rows, cols] = vals
    return out


def write_persistence_array(save_persistence, array, *, detector, filename, persistence_time):
    """Write (or update) a persistence array file as jwst's ``write_persistence_array``.

    Parameters
    ----------
    save_persistence : str or os.PathLike
        The step's ``save_persistence``; the file written is
        :func:`persistence_file_path` of it.
    array : array-like
        ``(ny, nx)`` float64 window end times after the exposure (computed).
    detector : str
        ``DETECTOR``; the entry updated. Other detectors' entries are kept.
    filename : str
        What jwst records as ``filename`` (its model's ``meta.filename``).
    persistence_time : int
        The step's ``persistence_time`` (``pers_time``).

    Returns
    -------
    pathlib.Path
        The file written (atomically: a reader never sees a partial file).

    Raises
    ------
    ProductWriteError
        The file cannot be written.
    InputFileError
        An existing file at that path is not a readable ASDF file.
    """

    path = persistence_file_path(save_persistence)
    array = np.asarray(array, dtype=np.float64)
    rows, cols = np.nonzero(array)
    vals = array[rows, cols]
    with _update_lock(path):
        return _update_entry(path, detector, {
            "filename": filename,
            "rows": rows,
            "cols": cols,
            "vals": vals,
            "pers_time": persistence_time,
        })


_LOCKS = {}
_LOCKS_GUARD = threading.Lock()


@contextmanager
def _update_lock(path):
    """Serialise the read-modify-write of one persistence file: the chains of a program's
    detectors end at the same time and each updates its own entry. In a Dask worker, a
    lock of the whole cluster named after the file; elsewhere, one of this process."""
    name = f"detflow-persistence-{Path(path).resolve()}"
    lock = None
    if "distributed" in sys.modules:  # (not imported for it: a worker has it already)
        from distributed import Lock, get_worker

        try:
            get_worker()
            lock = Lock(name)
        except ValueError:  # not in a worker
            pass
    if lock is None:
        with _LOCKS_GUARD:
            lock = _LOCKS.setdefault(name, threading.Lock())
    with lock:
        yield


def _update_entry(path, detector, entry):
    import asdf

    if path.exists():
        try:
            tree = asdf.load(str(path))
        except Exception as exc:  # asdf raises many kinds of errors on a bad file
            raise InputFileError(path, f"not a readable persistence array file ({exc})") \
                from exc
    else:
        tree = {}
    tree[detector] = entry
    try:
        with atomic_path(path) as tmp:
            asdf.dump(tree, str(tmp))
    except OSError as exc:
        raise ProductWriteError(path, f"cannot write: {exc}") from exc
    return path
