"""The header index of a folder of reference files: the facts selection needs
from each file (selection keywords, USEAFTER, region), kept per folder and
re-read only for files whose size or modification time changed."""

from __future__ import annotations

import os
import threading

from detflow.io.fits import FitsSource, read_hdus
from detflow.io.references.exposure import _upper
from detflow.io.urls import is_remote, local_path
from detflow.io.values import json_value

__all__ = ["clear_reference_index", "reference_index"]

#: Selection keywords (besides INSTRUME and DETECTOR) a reference file in a folder must
#: match where it has them: attrs name -> (keyword, pattern keyword).
_SELECTORS = {
    "readpatt": ("READPATT", "P_READPA"),
    "subarray": ("SUBARRAY", "P_SUBARR"),
    "exp_type": ("EXP_TYPE", "P_EXP_TY"),
    "filter": ("FILTER", "P_FILTER"),
    "pupil": ("PUPIL", "P_PUPIL"),
}


def _scan(path, storage_options=None):
    """Parse a reference file's headers: ``(source, hdus)``, no data read.

    ``source`` is the file's :class:`~detflow.io.fits.FitsSource`; a
    gzip-compressed file is accepted (and read through a decompressing stream),
    as astropy accepts it.

    Raises
    ------
    InputFileError
        The file is missing, unreadable, not FITS or truncated.
    """
    source = FitsSource(path, storage_options).sniff()
    return source, read_hdus(source)


_INDEX_LOCK = threading.Lock()
_INDEX_CACHE: dict = {}


def clear_reference_index():
    """Forget every cached reference-directory index (they are rebuilt on demand)."""
    with _INDEX_LOCK:
        _INDEX_CACHE.clear()


def _index_entry(path, storage_options=None):
    """Header facts of one reference file used for selection, or None if unreadable."""
    try:
        _, hdus = _scan(path, storage_options)
    except Exception:
        return None
    if any(hdu.is_compressed_image for hdu in hdus):
        return None  # open_reference cannot read it: never select it
    primary = hdus[0].header
    entry = {"path": str(path), "name": os.path.basename(str(path))}
    for key in (
        "REFTYPE",
        "INSTRUME",
        "DETECTOR",
        "P_DETECT",
        "USEAFTER",
        "SUBSTRT1",
        "SUBSTRT2",
        "SUBSIZE1",
        "SUBSIZE2",
        "NFRAMES",
        "NGROUPS",
        "GROUPGAP",
    ):
        entry[key] = json_value(primary.get(key))
    for key, pattern in _SELECTORS.values():
        entry[key] = json_value(primary.get(key))
        entry[pattern] = json_value(primary.get(pattern))
    shapes = {}
    for hdu in hdus[1:]:
        if hdu.xtension == "IMAGE":
            shapes.setdefault(hdu.name, hdu.shape)
    entry["shapes"] = shapes
    rt = _upper(entry["REFTYPE"])
    main = None
    for name in ("SCI", "COEFFS", "DQ"):
        shape = shapes.get(name)
        if shape and len(shape) >= 2 and not (rt == "IPC" and len(shape) == 2):
            main = shape
            break
    if main is None:
        entry["region"] = None  # no spatial data: covers any exposure
    else:
        x0 = int(entry["SUBSTRT1"] or 1) - 1
        y0 = int(entry["SUBSTRT2"] or 1) - 1
        entry["region"] = (y0, main[-2], x0, main[-1])
    return entry


def reference_index(refs_dir, *, storage_options=None):
    """Header index of the FITS reference files in a directory (cached per directory).

    Files are re-read only when their size or modification time changes; files
    that are not readable FITS are left out.

    Parameters
    ----------
    refs_dir : str or os.PathLike
        Local directory or fsspec URL; ``*.fits`` and ``*.fits.gz`` are indexed.
    storage_options : dict, optional
        fsspec options for a URL.

    Returns
    -------
    list of dict
        One entry per file, sorted by name: ``path``, ``name``, the primary
        keywords used for selection (REFTYPE, INSTRUME, DETECTOR, P_DETECT,
        READPATT, SUBARRAY, EXP_TYPE, FILTER, PUPIL and their ``P_`` patterns,
        USEAFTER, SUBSTRT/SUBSIZE, NFRAMES, NGROUPS, GROUPGAP), ``shapes``
        (extname -> shape) and ``region`` (``(y0, ny, x0, nx)`` 0-based, or
        None when the file has no spatial data).
    """
    import fsspec

    refs_dir = os.fspath(refs_dir) if not isinstance(refs_dir, str) else refs_dir
    if is_remote(refs_dir):
        fs, root = fsspec.core.url_to_fs(refs_dir, **dict(storage_options or {}))
        files = {}
        for pattern in ("*.fits", "*.fits.gz"):
            for info in fs.glob(f"{root.rstrip('/')}/{pattern}", detail=True).values():
                stamp = (
                    info.get("size"),
                    str(info.get("mtime") or info.get("LastModified") or info.get("ETag")),
                )
                files[fs.unstrip_protocol(info["name"])] = stamp
        key = refs_dir.rstrip("/")
    else:
        root = os.path.abspath(local_path(refs_dir))
        files = {}
        with os.scandir(root) as it:
            for item in it:
                if item.is_file() and item.name.lower().endswith((".fits", ".fits.gz")):
                    st = item.stat()
                    files[os.path.join(root, item.name)] = (st.st_size, st.st_mtime_ns)
        key = root
    with _INDEX_LOCK:
        cached = dict(_INDEX_CACHE.get(key, {}))
    fresh = {}
    for path, stamp in files.items():
        hit = cached.get(path)
        if hit is not None and hit[0] == stamp:
            fresh[path] = hit
        else:
            fresh[path] = (stamp, _index_entry(path, storage_options))
    with _INDEX_LOCK:
        _INDEX_CACHE[key] = fresh
    return [fresh[p][1] for p in sorted(fresh) if fresh[p][1] is not None]
