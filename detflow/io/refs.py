"""JWST reference files as lazy xarray Datasets, and reference-file resolution.

Opening
-------
:func:`open_reference` opens any JWST FITS reference file of calwebb_detector1
(MASK, SATURATION, SUPERBIAS, LINEARITY, DARK, GAIN, READNOISE, IPC, RESET,
RSCD, ...) as an :class:`xarray.Dataset` whose arrays are dask arrays: opening
reads headers (and the small binary tables) only, every image chunk is read
from the file when a task needs it. Each task re-opens the file, so the graph
holds no open file handle and ships to a distributed cluster as it is.

The spatial dimensions are ``y, x`` with the coordinates of the data contract
(:mod:`detflow.contract`): 0-based full-frame detector pixel numbers,
``x = SUBSTRT1 - 1 + arange(nx)``, ``y = SUBSTRT2 - 1 + arange(ny)``, so a
subarray reference and a full-frame one line up with an exposure by
coordinate. :func:`select_region` cuts a reference to an exposure.

Variables are the lower-cased extension names. Dimensions per reference type:

============  ==============================================================
reftype       variables (dims)
============  ==============================================================
MASK          ``dq (y, x)``
SATURATION    ``sci (y, x)``, ``dq (y, x)``
SUPERBIAS     ``sci``, ``err``, ``dq`` (each ``(y, x)``)
LINEARITY     ``coeffs (coeff, y, x)``, ``inv_coeffs (coeff, y, x)`` (optional),
              ``dq (y, x)``
DARK (NIR)    ``sci (group, y, x)``, ``err (group, y, x)``, ``dq (y, x)`` or
              ``(group, y, x)``, ``avdrkcur (y, x)`` (optional); NIRSpec also
              ``drk``, ``unc (y, x)``
DARK (MIRI)   ``sci``, ``err``, ``dq`` (each ``(integration, group, y, x)``)
RESET         ``sci``, ``err`` (``(integration, group, y, x)``), ``dq (y, x)``
GAIN          ``sci (y, x)``
READNOISE     ``sci (y, x)``
IPC           ``sci (ky, kx)`` (one kernel) or ``sci (ky, kx, y, x)`` (per pixel)
RSCD          no variables; ``attrs["tables"]["rscd_group_skip"]``
============  ==============================================================

Binary tables (``DQ_DEF``, ``RSCD_GROUP_SKIP``, ...) are kept as
``attrs["tables"][<lower-cased extname>] = {column: list}``. Non-spatial
dimensions carry 0-based integer coordinates, except ``ky``/``kx``, whose
coordinates are the kernel offsets from its centre (``arange(n) - n // 2``).

Resolution
----------
:func:`resolve_reference` finds the reference file of one type for an exposure,
in this order: an explicit override (jwst's ``override_<reftype>``), the
exposure's entry in the ``manifest.json`` beside it unless a reference folder
is given (how a simulated exposure keeps its own references in a folder shared
by several simulations), a
reference directory (explicit, or ``<folder of the exposure file>/refs`` when it
exists) searched as CRDS selects (selection keywords, then the latest USEAFTER
not after the exposure's start; files still tied are an error, never a choice
by name), then a CRDS cache through the ``crds`` client when ``CRDS_PATH`` is
set. With ``explain=True`` it also says why that file was chosen.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import logging
import os
import threading
from collections.abc import Mapping

import numpy as np

from detflow.contract import FULL_FRAME_SHAPE
from detflow.errors import InputFileError, ReferenceFileError
from detflow.io.chunks import array_chunks
from detflow.io.fitsio import (
    FitsImage,
    FitsSource,
    KeptByFile,
    header_to_dict,
    is_remote,
    json_value,
    local_path,
    read_hdus,
    read_table,
    typed_value,
)

log = logging.getLogger("detflow.io.refs")

__all__ = [
    "clear_reference_index",
    "open_reference",
    "open_reference_for",
    "reference_index",
    "resolve_reference",
    "select_region",
]

#: Reference types whose subarray shape jwst requires to equal the science shape
#: (no subarray cutting in jwst's dark_current and reset steps).
EXACT_SHAPE_REFTYPES = frozenset({"DARK", "RESET"})

#: Values of a selection keyword that match any exposure.
_WILDCARDS = frozenset({"", "ANY", "N/A", "GENERIC", "MULTIPLE", "NONE"})

#: Selection keywords (besides INSTRUME and DETECTOR) a reference file in a folder must
#: match where it has them: attrs name -> (keyword, pattern keyword).
_SELECTORS = {
    "readpatt": ("READPATT", "P_READPA"),
    "subarray": ("SUBARRAY", "P_SUBARR"),
    "exp_type": ("EXP_TYPE", "P_EXP_TY"),
    "filter": ("FILTER", "P_FILTER"),
    "pupil": ("PUPIL", "P_PUPIL"),
}

#: Primary-header keywords copied to attrs: attrs name -> (keyword, type).
_REF_KEYWORDS = {
    "reftype": ("REFTYPE", str),
    "instrument": ("INSTRUME", str),
    "detector": ("DETECTOR", str),
    "subarray": ("SUBARRAY", str),
    "readpatt": ("READPATT", str),
    "exp_type": ("EXP_TYPE", str),
    "filter": ("FILTER", str),
    "pupil": ("PUPIL", str),
    "nframes": ("NFRAMES", int),
    "groupgap": ("GROUPGAP", int),
    "ngroups": ("NGROUPS", int),
    "nints": ("NINTS", int),
    "noutputs": ("NOUTPUTS", int),
    "fastaxis": ("FASTAXIS", int),
    "slowaxis": ("SLOWAXIS", int),
    "gain_factor": ("GAINFACT", float),
    "average_dark_current": ("AVDRKCUR", float),
    "useafter": ("USEAFTER", str),
    "pedigree": ("PEDIGREE", str),
    "author": ("AUTHOR", str),
    "description": ("DESCRIP", str),
}


# --------------------------------------------------------------------------- helpers


def _path_exists(path, storage_options=None):
    if is_remote(path):
        import fsspec

        fs, root = fsspec.core.url_to_fs(str(path), **dict(storage_options or {}))
        return fs.exists(root)
    return os.path.exists(local_path(path))


def _scan(path, storage_options=None):
    """Parse a reference file's headers: ``(source, hdus)``, no data read.

    ``source`` is the file's :class:`~detflow.io.fitsio.FitsSource`; a
    gzip-compressed file is accepted (and read through a decompressing stream),
    as astropy accepts it.

    Raises
    ------
    InputFileError
        The file is missing, unreadable, not FITS or truncated.
    """
    source = FitsSource(path, storage_options).sniff()
    return source, read_hdus(source)


def _header_value(header, key, typ=str):
    """A header keyword as ``typ`` (:func:`~detflow.io.fitsio.typed_value`); ``None``
    when absent, undefined or not a valid ``typ`` (reference files are read leniently)."""
    try:
        return typed_value(header.get(key), typ)
    except (TypeError, ValueError):
        return None


def _upper(value):
    return "" if value is None else str(value).strip().upper()


def _is_dataset(obj):
    """Whether ``obj`` is an xarray Dataset (which is also a Mapping of its variables)."""
    return hasattr(obj, "data_vars") and hasattr(obj, "attrs") and hasattr(obj, "coords")


def _exposure_attrs(exposure):
    """The attrs mapping of an exposure given as a Dataset or a mapping (or None)."""
    if exposure is None or isinstance(exposure, str):
        return {}
    if _is_dataset(exposure):
        return exposure.attrs
    return exposure


def _exposure_path(attrs):
    """The exposure's own file, from attrs ``path``/``source``/``source_path``/``filepath``."""
    for key in ("path", "source", "source_path", "filepath"):
        value = attrs.get(key)
        if value and isinstance(value, str | os.PathLike):
            return os.fspath(value)
    return None


def _exposure_label(exposure):
    """A short name for an exposure in error messages."""
    if exposure is None:
        return "the exposure"
    if isinstance(exposure, str):
        return exposure
    attrs = _exposure_attrs(exposure)
    path = _exposure_path(attrs)
    if path:
        return os.path.basename(path.rstrip("/")) or path
    if attrs.get("filename"):
        return str(attrs["filename"])
    header = attrs.get("primary_header")
    if isinstance(header, Mapping) and header.get("FILENAME"):
        return str(header["FILENAME"])
    parts = [str(attrs[k]) for k in ("instrument", "detector") if attrs.get(k)]
    return " ".join(parts + ["exposure"]) if parts else "the exposure"


def _exposure_value(attrs, name):
    """An exposure keyword by attrs name, falling back on its primary header."""
    value = attrs.get(name)
    if value is None:
        header = attrs.get("primary_header")
        if isinstance(header, Mapping):
            from detflow.contract import KEYWORDS

            keyword = KEYWORDS.get(name, (name.upper(),))[0]
            value = header.get(keyword)
    return value


def _exposure_region(exposure):
    """The exposure's ``(y, x)`` detector coordinates, or ``(None, None)`` if unknown.

    Returns
    -------
    y, x : numpy.ndarray or None
        0-based full-frame pixel numbers, shapes ``(ny,)`` and ``(nx,)``.
    """
    if _is_dataset(exposure):
        coords = exposure.coords
        if "y" in coords and "x" in coords:
            return np.asarray(coords["y"].values), np.asarray(coords["x"].values)
    attrs = _exposure_attrs(exposure)
    vals = {k: _exposure_value(attrs, k) for k in ("substrt1", "substrt2", "subsize1", "subsize2")}
    full = FULL_FRAME_SHAPE.get(_upper(_exposure_value(attrs, "instrument")))
    x0 = int(vals["substrt1"]) if vals["substrt1"] is not None else 1
    y0 = int(vals["substrt2"]) if vals["substrt2"] is not None else 1
    nx, ny = vals["subsize1"], vals["subsize2"]
    if nx is None or ny is None:
        if full is None:
            return None, None
        ny = full[0] if ny is None else ny
        nx = full[1] if nx is None else nx
    return y0 - 1 + np.arange(int(ny)), x0 - 1 + np.arange(int(nx))


def _region_text(y, x):
    return f"rows {int(y[0])}-{int(y[-1])}, columns {int(x[0])}-{int(x[-1])}"


def _covers(ref_y, ref_x, exp_y, exp_x):
    """Whether the contiguous ranges ``ref_y``/``ref_x`` contain every exposure pixel."""
    if ref_y is None or exp_y is None:
        return True
    return bool(
        len(exp_y)
        and len(exp_x)
        and ref_y[0] <= exp_y.min()
        and exp_y.max() <= ref_y[-1]
        and ref_x[0] <= exp_x.min()
        and exp_x.max() <= ref_x[-1]
    )


def _require_covers(rt, label, what, ref_y, ref_x, exp_y, exp_x):
    """Raise :class:`ReferenceFileError` unless ``what`` covers every exposure pixel."""
    if not _covers(ref_y, ref_x, exp_y, exp_x):
        raise ReferenceFileError(
            rt,
            label,
            f"{what} covers {_region_text(ref_y, ref_x)} of the detector, "
            f"but the exposure needs {_region_text(exp_y, exp_x)}",
        )


def _match(ref_value, pattern, exp_value):
    """Score how a reference keyword matches an exposure value.

    Returns 2 for an exact match, 1 for a match through a ``P_`` pattern keyword
    (``"A|B|"``), 0 for a wildcard (absent, ANY, N/A, GENERIC, MULTIPLE) or an
    unknown exposure value, and -1 for a mismatch.
    """
    exp = _upper(exp_value)
    if not exp:
        return 0
    ref = _upper(ref_value)
    if ref and ref == exp:
        return 2
    pat = [p.strip() for p in _upper(pattern).split("|") if p.strip()]
    if pat:
        if exp in pat:
            return 1
        if any(p in _WILDCARDS for p in pat):
            return 0
        return -1
    if ref in _WILDCARDS:
        return 0
    return -1


def _parse_date(value):
    """An ISO ``datetime`` from a USEAFTER / DATE-OBS string, or None."""
    if not value:
        return None
    text = str(value).strip()
    for fmt in (None, "%b %d %Y %H:%M:%S", "%b %d %Y"):
        try:
            if fmt is None:
                return _dt.datetime.fromisoformat(text.replace("Z", "")).replace(tzinfo=None)
            return _dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def _exposure_date(attrs):
    header = attrs.get("primary_header")
    if isinstance(header, Mapping) and header.get("DATE-OBS"):
        date = _parse_date(f"{header['DATE-OBS']}T{header.get('TIME-OBS') or '00:00:00'}")
        if date is not None:
            return date
    mjd = _exposure_value(attrs, "expstart")
    if mjd is None:
        return None
    try:
        return _dt.datetime(1858, 11, 17) + _dt.timedelta(days=float(mjd))
    except (TypeError, ValueError, OverflowError):
        return None


# --------------------------------------------------------------------------- opening


def _leading_dims(reftype, var, ndim):
    """Names of the non-spatial dimensions of an ``ndim``-D array (spatial ones last)."""
    if ndim == 3:
        if var == "inv_coeffs":
            return ("inv_coeff",)  # may have another length than COEFFS
        if reftype == "LINEARITY" or var == "coeffs":
            return ("coeff",)
        if reftype in ("DARK", "RESET"):
            return ("group",)
        return ("plane",)
    if ndim == 4:
        if reftype == "IPC":
            return ("ky", "kx")
        if reftype in ("DARK", "RESET"):
            return ("integration", "group")
        return ("axis0", "axis1")
    return tuple(f"axis{i}" for i in range(ndim - 2))


def _reference_headers(path, storage_options, want, label, rt_name):
    """``(source, stamp, reftype, attrs, images, primary header)`` of a reference file
    from its headers and tables; the last few local files' are kept (by path, size and
    mtime): every exposure of a program opens the same references, several steps open
    the same file, and parsing headers is most of the cost of opening one. A kept entry
    is returned with its attrs copied (callers may change a Dataset's attrs)."""
    key = KeptByFile.identity(path) if not storage_options else None
    key = None if key is None else key + (want,)
    hit = _REFERENCES.get(key) if key is not None else None
    if hit is not None:
        source, stamp, rt, attrs, images, primary = hit
        return source, stamp, rt, copy.deepcopy(attrs), images, primary
    source, stamp, rt, attrs, images, primary = _read_reference_headers(
        path, storage_options, want, label, rt_name)
    if key is not None and key[1:3] == stamp:
        _REFERENCES.put(key, (source, stamp, rt, copy.deepcopy(attrs), images, primary))
    return source, stamp, rt, attrs, images, primary


_REFERENCES = KeptByFile(32)


def _read_reference_headers(path, storage_options, want, label, rt_name):
    try:
        source = FitsSource(path, storage_options).sniff()
        with source.reader() as reader:
            hdus = read_hdus(source, reader)
            stamp = reader.stamp()
            primary = hdus[0].header
            file_rt = _upper(_header_value(primary, "REFTYPE"))
            if want and file_rt and file_rt != want:
                raise ReferenceFileError(
                    want, label, f"{path} is a {file_rt} reference file, not {want}"
                )
            rt = file_rt or want or "UNKNOWN"
            attrs = {}
            for name, (key, typ) in _REF_KEYWORDS.items():
                value = _header_value(primary, key, typ)
                if value is not None:
                    attrs[name] = value
            attrs["reftype"] = rt
            attrs["path"] = str(path)
            attrs["filename"] = os.path.basename(str(path).rstrip("/"))
            attrs["primary_header"] = header_to_dict(primary)
            headers, tables, images = {}, {}, []
            seen = {}
            for hdu in hdus[1:]:
                key = (hdu.name or f"HDU{hdu.index}").lower()
                seen[key] = seen.get(key, 0) + 1
                if seen[key] > 1:
                    key = f"{key}_{seen[key]}"
                headers[key] = header_to_dict(hdu.header)
                if hdu.is_compressed_image:
                    raise ReferenceFileError(
                        rt,
                        label,
                        f"{path}: extension {key.upper()} is a tile-compressed image, "
                        "which detflow does not read; write it uncompressed",
                    )
                if hdu.xtension in ("BINTABLE", "TABLE"):
                    if key == "asdf":
                        continue
                    tables[key] = read_table(source, hdu, reader)
                elif hdu.is_image and hdu.shape and 0 not in hdu.shape:
                    images.append((key, hdu))
            attrs["headers"] = headers
            attrs["tables"] = tables
    except InputFileError as exc:
        raise ReferenceFileError(
            rt_name, label, f"cannot read {path} as FITS ({exc.problem})"
        ) from exc

    return source, stamp, rt, attrs, images, primary


def open_reference(path, reftype=None, chunks=None, *, exposure=None, storage_options=None):
    """Open a JWST FITS reference file as a lazy, dask-backed :class:`xarray.Dataset`.

    Nothing but headers and binary tables is read: each image extension becomes a
    dask array whose chunks are read from the file by the task that needs them.

    Parameters
    ----------
    path : str or os.PathLike
        Local path or fsspec URL of the reference file.
    reftype : str, optional
        Expected reference type (e.g. ``"dark"``); a file whose REFTYPE differs
        raises :class:`~detflow.errors.ReferenceFileError`. Used as the
        reference type when the file has no REFTYPE keyword.
    chunks : dict, int, str or tuple, optional
        Dask chunks. A dict maps dimension names (``y``, ``x``, ``group``, ...) to
        chunk sizes, dimensions not named keep the default; anything else is
        given to :func:`dask.array.from_array` for every variable. Default: the
        exposure's tiling (:func:`detflow.io.chunks.array_chunks`): one
        integration, all groups/coefficients, spatial tiles aligned to the
        amplifiers in full-frame coordinates (whole rows for MIRI), cut into
        bands of about 100 MB when larger than 150 MB (neighbouring amplifiers
        joined up to ``detflow.tiles.join-bytes``, see :mod:`detflow.io.chunks`).
    exposure : str, Mapping or xarray.Dataset, optional
        The exposure the file is opened for, only to name it in error messages.
    storage_options : dict, optional
        fsspec options for a URL.

    Returns
    -------
    xarray.Dataset
        Variables are the lower-cased extension names (``sci``, ``err``, ``dq``,
        ``coeffs``, ``inv_coeffs``, ``avdrkcur``, ...), spatial dims last as
        ``(..., y, x)`` with 0-based full-frame coordinates
        ``y = SUBSTRT2 - 1 + arange(ny)``, ``x = SUBSTRT1 - 1 + arange(nx)``
        (SUBSTRT defaults to 1; the array shape wins over SUBSIZE, as in jwst).
        Leading dims: ``coeff`` (LINEARITY), ``group`` / ``integration, group``
        (DARK, RESET), ``ky, kx`` (IPC). ``attrs`` holds ``reftype``,
        ``instrument``, ``detector``, ``subarray``, ``substrt1/2``, ``subsize1/2``,
        ``readpatt``, ``exp_type``, ``filter``, ``pupil``, ``nframes``,
        ``groupgap``, ``ngroups``, ``nints``, ``noutputs``, ``gain_factor``
        (GAINFACT), ``average_dark_current`` (the AVDRKCUR keyword), ``useafter``,
        ``pedigree``, ``author``, ``description`` where present; ``substrt1/2``
        and ``subsize1/2`` (the region of the data actually in the file)
        whenever it has spatial data; and always ``path``, ``filename``,
        ``primary_header`` (a JSON-friendly dict), ``headers`` (lower-cased
        extension name -> header dict) and ``tables`` (binary tables as
        ``{extname: {column: list}}``, e.g. ``dq_def``, ``rscd_group_skip``).

    Raises
    ------
    ReferenceFileError
        The file does not exist, is not readable FITS (gzip-compressed FITS is
        read; tile-compressed images are not), is of another type than
        ``reftype``, or its arrays disagree on the spatial shape.
    """
    import xarray as xr
    from dask.base import tokenize

    path = os.fspath(path) if not isinstance(path, str) else path
    label = _exposure_label(exposure)
    want = _upper(reftype)
    rt_name = want or "REFERENCE"
    if not _path_exists(path, storage_options):
        raise ReferenceFileError(rt_name, label, f"reference file {path} does not exist")
    source, stamp, rt, attrs, images, primary = _reference_headers(
        path, storage_options, want, label, rt_name)

    # spatial frame: the array shape wins over SUBSIZE (as in jwst's ref_matches_sci)
    spatial_shapes = {
        key: hdu.shape[-2:]
        for key, hdu in images
        if len(hdu.shape) >= 2 and not (rt == "IPC" and len(hdu.shape) == 2)
    }
    spatial = next(
        (spatial_shapes[k] for k in ("sci", "coeffs") if k in spatial_shapes),
        next(iter(spatial_shapes.values()), None),
    )
    x0 = int(_header_value(primary, "SUBSTRT1", int) or 1)
    y0 = int(_header_value(primary, "SUBSTRT2", int) or 1)
    if spatial is not None:
        attrs["substrt1"], attrs["substrt2"] = x0, y0
        attrs["subsize1"], attrs["subsize2"] = int(spatial[1]), int(spatial[0])
    else:  # no spatial data (one IPC kernel, RSCD): keep what the header says
        for name in ("substrt1", "substrt2", "subsize1", "subsize2"):
            value = _header_value(primary, name.upper(), int)
            if value is not None:
                attrs[name] = value

    if is_remote(path):
        identity = tokenize(path, attrs["primary_header"])
    else:
        size, mtime_ns = stamp  # the local file's (st_size, st_mtime_ns)
        identity = tokenize(os.path.abspath(local_path(path)), mtime_ns, size)

    data_vars = {}
    sizes = {}
    for key, hdu in images:
        image = FitsImage(source, hdu.image_layout(), hdu_name=hdu.name, stamp=stamp)
        shape, dtype, ndim = image.shape, image.dtype, image.ndim
        if ndim == 1:
            dims = (f"{key}_index",)
        elif rt == "IPC" and ndim == 2:
            dims = ("ky", "kx")
        else:
            dims = _leading_dims(rt, key, ndim) + ("y", "x")
            if shape[-2:] != tuple(spatial):
                raise ReferenceFileError(
                    rt,
                    label,
                    f"{path}: extension {key.upper()} has spatial shape {shape[-2:]}, "
                    f"but the file's data are {tuple(spatial)}",
                )
        # a non-spatial axis whose length differs from the same-named axis of another
        # extension (e.g. a MIRI dark DQ of (nints, 1, ny, nx) beside a (nints, ngroups,
        # ny, nx) SCI) gets a name of its own: extensions may legitimately differ there
        dims = tuple(
            f"{key}_{dim}" if dim not in ("y", "x") and sizes.get(dim, n) != n else dim
            for dim, n in zip(dims, shape, strict=True)
        )
        for dim, n in zip(dims, shape, strict=True):
            sizes.setdefault(dim, n)
        var_chunks = array_chunks(attrs, dims, shape, chunks, itemsize=dtype.itemsize)
        task_name = f"ref-{rt.lower()}-{key}-{tokenize(identity, hdu.index, var_chunks)}"
        arr = image.to_dask(var_chunks, task_name, fancy=False)
        data_vars[key] = xr.Variable(dims, arr, attrs={"extname": key.upper()})

    if "dq" in data_vars:
        mapping = dq_def_mapping(attrs["tables"].get("dq_def"))
        if mapping is not None:
            var = data_vars["dq"]
            data_vars["dq"] = var.copy(data=var.data.map_blocks(
                translate_dq, mapping, dtype=var.dtype,
                name=f"ref-{rt.lower()}-dq-def-{tokenize(identity, mapping, var.data.name)}"))

    coords = {}
    if spatial is not None:
        coords["y"] = ("y", y0 - 1 + np.arange(spatial[0], dtype=np.int64))
        coords["x"] = ("x", x0 - 1 + np.arange(spatial[1], dtype=np.int64))
    for dim, n in sizes.items():
        if dim in ("y", "x"):
            continue
        if dim in ("ky", "kx"):
            coords[dim] = (dim, np.arange(n, dtype=np.int64) - n // 2)
        else:
            coords[dim] = (dim, np.arange(n, dtype=np.int64))
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


# --------------------------------------------------------------------------- models


_MODEL_FILES = {}
_MODEL_LOCK = threading.Lock()


def reference_model_path(model, reftype=None):
    """A file holding a reference datamodel given as ``override_<reftype>`` (jwst
    accepts model objects there), so it is read lazily like any reference file.

    The model is saved once per object (a copy: the user's model is not changed) as
    FITS into a private temporary folder of this process, and that path is returned
    on later calls; the file lives as long as the process (removed at its exit). It
    is read by path, so with a cluster of other machines give a file every worker can
    read instead.
    """
    import atexit
    import shutil
    import tempfile

    key = id(model)
    with _MODEL_LOCK:
        hit = _MODEL_FILES.get(key)
        if hit is not None and hit[0] is model and os.path.exists(hit[1]):
            return hit[1]
    folder = tempfile.mkdtemp(prefix="detflow-refmodels-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)  # removed with the process
    rt = _upper(getattr(getattr(model, "meta", None), "reftype", None) or reftype or "ref")
    name = getattr(model.meta, "filename", None) or f"{rt.lower()}.fits"
    stem = os.path.splitext(os.path.basename(str(name)))[0] or rt.lower()
    path = os.path.join(folder, f"{stem}.fits")
    with model.copy() as copy_:
        copy_.save(path)
    with _MODEL_LOCK:
        _MODEL_FILES[key] = (model, path)
    return path


# --------------------------------------------------------------------------- DQ_DEF


def dq_def_mapping(table):
    """The ``((bit value in the file, standard JWST value), ...)`` translation of a
    reference file's ``DQ_DEF`` table, or None when the DQ is used as it is.

    stdatamodels (``DefaultDQMixin``, ``stdatamodels.dynamicdq.dynamic_mask``) translates
    the DQ of every MASK, SATURATION, SUPERBIAS, LINEARITY, DARK and RESET model with a
    non-empty ``DQ_DEF`` table when it opens the file: each row's ``VALUE`` bit of the
    file's DQ becomes the standard value of its ``NAME``; a NAME that is not a JWST pixel
    flag is ignored (jwst warns), and so is every DQ bit that no row names. A file
    without the table, or with an empty one, keeps its DQ.

    Parameters
    ----------
    table : dict or None
        ``{column: list}`` as :func:`detflow.io.fitsio.read_table` reads it (columns
        ``BIT``, ``VALUE``, ``NAME``, ``DESCRIPTION``; any case).
    """
    if not table:
        return None
    columns = {str(k).upper(): v for k, v in table.items()}
    values, names = columns.get("VALUE"), columns.get("NAME")
    if values is None or names is None or len(values) == 0:
        return None
    from stdatamodels.jwst.datamodels.dqflags import pixel

    mapping = []
    for value, name in zip(values, names, strict=True):
        standard = pixel.get(str(name).strip())
        if standard is not None:
            mapping.append((int(value), int(standard)))
    return tuple(mapping)


def translate_dq(dq, mapping):
    """A reference DQ block translated through :func:`dq_def_mapping`'s pairs
    (``dynamic_mask``'s arithmetic: same dtype, OR of the standard values)."""
    dq = np.asarray(dq)
    out = np.zeros(dq.shape, dtype=dq.dtype)
    for value, standard in mapping:
        out[np.bitwise_and(dq, value) != 0] |= standard
    return out


# --------------------------------------------------------------------------- regions


def select_region(ref_ds, exposure, *, match_chunks=True, require_exact=False):
    """Cut a reference Dataset to an exposure's detector region, by coordinate.

    Parameters
    ----------
    ref_ds : xarray.Dataset
        A reference opened by :func:`open_reference`; variables ``(..., y, x)``.
    exposure : xarray.Dataset or Mapping
        The exposure: a Dataset (its ``y``/``x`` coordinates are used) or its
        attrs (``substrt1/2``, ``subsize1/2``; a missing size means full frame).
    match_chunks : bool
        Rechunk ``y``/``x`` of the result to the exposure's spatial chunks when
        ``exposure`` is a dask-backed Dataset, so blockwise steps align.
    require_exact : bool
        Also require the reference to have exactly the exposure's region, as
        jwst's dark_current and reset steps do (no subarray cutting there).

    Returns
    -------
    xarray.Dataset
        The reference with ``y``/``x`` equal to the exposure's (shapes
        ``(..., ny, nx)``), still lazy. References without spatial dims (a
        single IPC kernel, RSCD tables) are returned unchanged. ``attrs``
        ``substrt1/2``/``subsize1/2`` describe the cut; the file's own region
        is kept in ``attrs["file_region"]``.

    Raises
    ------
    ReferenceFileError
        The reference is for another instrument or detector than the exposure,
        or does not cover the exposure's region (or differs from it, with
        ``require_exact``).
    """
    rt = str(ref_ds.attrs.get("reftype") or "REFERENCE")
    label = _exposure_label(exposure)
    fname = ref_ds.attrs.get("path") or ref_ds.attrs.get("filename") or "the reference file"
    attrs = _exposure_attrs(exposure)
    for name in ("instrument", "detector"):
        ref_value = ref_ds.attrs.get(name)
        pattern = (ref_ds.attrs.get("primary_header") or {}).get(
            "P_DETECT" if name == "detector" else "P_INSTRU"
        )
        exp_value = _exposure_value(attrs, name)
        if _match(ref_value, pattern, exp_value) < 0:
            raise ReferenceFileError(
                rt,
                label,
                f"{fname} is for {name} {ref_value}, but the exposure's {name} is {exp_value}",
            )
    if "y" not in ref_ds.dims or "x" not in ref_ds.dims:
        return ref_ds
    exp_y, exp_x = _exposure_region(exposure)
    if exp_y is None:
        raise ReferenceFileError(
            rt, label, "cannot tell the exposure's detector region (no SUBSTRT/SUBSIZE)"
        )
    ref_y = np.asarray(ref_ds["y"].values)
    ref_x = np.asarray(ref_ds["x"].values)
    header = ref_ds.attrs.get("primary_header") or {}
    full = FULL_FRAME_SHAPE.get(str(_exposure_value(attrs, "instrument") or "").upper())
    if _upper(rt) in EXACT_SHAPE_REFTYPES:
        if (len(ref_y), len(ref_x)) == (len(exp_y), len(exp_x)) and not (
                np.array_equal(ref_y, exp_y) and np.array_equal(ref_x, exp_x)):
            # jwst's dark_current and reset compare shapes only: a file of the science
            # shape is used as it is, whatever its SUBSTRT keywords say
            log.warning("%s: %s has the exposure's shape but %s; used as it is, as jwst "
                        "does", label, fname, _region_text(ref_y, ref_x))
            ref_ds = ref_ds.assign_coords(y=("y", exp_y), x=("x", exp_x))
            ref_y, ref_x = exp_y, exp_x
    elif _upper(rt) != "IPC" and full is not None and (len(ref_y), len(ref_x)) != full and any(
            header.get(k) is None for k in ("SUBSTRT1", "SUBSTRT2", "SUBSIZE1", "SUBSIZE2")):
        # jwst's ref_matches_sci: without the corner and size keywords only a full frame
        # can be placed ("Can't determine ref file subarray properties")
        raise ReferenceFileError(
            rt, label, f"{fname} is a {len(ref_y)}x{len(ref_x)} subarray without "
            "SUBSTRT1/SUBSTRT2/SUBSIZE1/SUBSIZE2 keywords: its place on the detector is "
            "unknown (jwst stops here too)")
    _require_covers(rt, label, fname, ref_y, ref_x, exp_y, exp_x)
    exact = (
        len(ref_y) == len(exp_y)
        and len(ref_x) == len(exp_x)
        and np.array_equal(ref_y, exp_y)
        and np.array_equal(ref_x, exp_x)
    )
    if require_exact and not exact:
        raise ReferenceFileError(
            rt,
            label,
            f"{fname} has {_region_text(ref_y, ref_x)}, but jwst requires the exposure's "
            f"own region ({_region_text(exp_y, exp_x)}) for {rt}",
        )
    if exact:
        out = ref_ds.copy()
    else:
        indexers = {}
        for dim, want, have in (("y", exp_y, ref_y), ("x", exp_x, ref_x)):
            start = int(want[0] - have[0])
            if np.array_equal(want, np.arange(want[0], want[0] + len(want))):
                indexers[dim] = slice(start, start + len(want))
            else:
                indexers[dim] = (want - have[0]).astype(np.intp)
        out = ref_ds.isel(indexers)
    if match_chunks and _is_dataset(exposure):
        target = {d: c for d, c in _spatial_chunks(exposure) if d in out.dims}
        if target:
            out = out.chunk(target)
    out.attrs = dict(ref_ds.attrs)
    out.attrs["file_region"] = {
        k: ref_ds.attrs.get(k) for k in ("substrt1", "substrt2", "subsize1", "subsize2")
    }
    out.attrs["substrt1"], out.attrs["substrt2"] = int(exp_x[0]) + 1, int(exp_y[0]) + 1
    out.attrs["subsize1"], out.attrs["subsize2"] = len(exp_x), len(exp_y)
    return out


def open_reference_for(path, reftype, exposure):
    """:func:`open_reference` then :func:`select_region` for an exposure Dataset.

    The result is kept (the last few, by the file's path, size and mtime and the
    exposure's instrument, detector, region and tiles): a program's exposures open the
    same references on the same region, and opening and cutting one is a few
    milliseconds each time, for every reference of every step of every exposure. A kept
    result is returned as a shallow copy with its attrs copied.
    """
    ident = KeptByFile.identity(path) if _is_dataset(exposure) else None
    key = None
    if ident is not None:
        attrs = _exposure_attrs(exposure)
        tiles = _spatial_chunks(exposure)
        key = ident + (_upper(reftype), _exposure_value(attrs, "instrument"),
                       _exposure_value(attrs, "detector"),
                       np.asarray(exposure["y"].values).tobytes(),
                       np.asarray(exposure["x"].values).tobytes(), tiles)
        hit = _CUT_REFERENCES.get(key)
        if hit is not None:
            return _fresh_copy(hit)
    out = select_region(open_reference(path, reftype, exposure=exposure), exposure)
    if key is not None:
        _CUT_REFERENCES.put(key, _fresh_copy(out))
    return out


def _spatial_chunks(exposure):
    """``((dim, chunks), ...)`` of ``y`` and ``x`` in an exposure Dataset: the first
    dask-backed variable's that has each."""
    target = {}
    for var in exposure.data_vars.values():
        if var.chunks is None:
            continue
        for dim, c in zip(var.dims, var.chunks, strict=True):
            if dim in ("y", "x"):
                target.setdefault(dim, c)
    return tuple(sorted(target.items()))


def _fresh_copy(ds):
    out = ds.copy(deep=False)
    out.attrs = copy.deepcopy(ds.attrs)
    return out


_CUT_REFERENCES = KeptByFile(64)


# --------------------------------------------------------------------------- index


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


# --------------------------------------------------------------------------- resolution


#: Selection keywords CRDS does not select on for a reference type and instrument,
#: although the files carry them (jwst's "Reference Selection Keywords" tables):
#: ``(REFTYPE, INSTRUME) -> attrs names``. A file whose value equals the exposure's is
#: preferred; another value does not exclude the file.
_NOT_SELECTED = {
    # CRDS selects NIRCam darks by DETECTOR, EXP_TYPE, NOUTPUTS and SUBARRAY: their
    # READPATT tells how the dark was read (stcal averages a RAPID dark to any pattern)
    ("DARK", "NIRCAM"): frozenset({"readpatt"}),
}

#: What decides between candidates, in order (after the selection keywords and the
#: region): each slot of :func:`_entry_rank`'s key, as the reason names it.
_RANK_CRITERIA = (
    "its region is the exposure's own (jwst does not cut {rt})",
    "its frames span the exposure's",
    "its READPATT equals the exposure's",
    "it matches more keywords exactly",
    "its region is the exposure's own",
)


def _ref_value_text(entry, key, pattern):
    """A reference file's selection value as the messages show it (its ``P_`` pattern
    when it has one)."""
    if entry.get(pattern):
        return f"{pattern}={entry[pattern]}"
    return f"{key}={entry.get(key)}"


def _entry_rank(entry, rt, attrs, exp_y, exp_x):
    """How a candidate file fits the exposure: ``(key, matched, None)`` or
    ``(None, None, why it cannot serve)``.

    The file must cover the exposure's region and match every selection keyword it
    carries (:data:`_SELECTORS`; a value or ``P_`` pattern of ANY, N/A, GENERIC, ...
    matches anything, a FULL file serves any subarray it covers); INSTRUME and
    DETECTOR are checked by the caller. ``key`` orders the candidates that do (larger
    is better, :data:`_RANK_CRITERIA`): the exposure's exact region first for DARK and
    RESET (jwst does not cut them), a DARK whose frames span the exposure's and do not
    average more frames per group (else stcal extrapolates or skips), the keywords of
    :data:`_NOT_SELECTED` equal to the exposure's, the specificity of the match (2 per
    keyword equal to the exposure's value, 1 per ``P_`` pattern naming it, 0 for a
    wildcard), then the exact region. USEAFTER is the caller's. ``matched`` lists the
    keywords matched by value or pattern (``"DETECTOR=NRCA1"``).
    """
    region = entry["region"]
    if region is not None and exp_y is not None:
        y0, ny, x0, nx = region
        ref_y = np.arange(y0, y0 + ny)
        ref_x = np.arange(x0, x0 + nx)
        if not _covers(ref_y, ref_x, exp_y, exp_x):
            return None, None, f"covers {_region_text(ref_y, ref_x)}, not the exposure's"
        exact = int(y0 == exp_y[0] and ny == len(exp_y) and x0 == exp_x[0] and nx == len(exp_x))
    else:
        exact = 0
    soft = _NOT_SELECTED.get((rt, _upper(_exposure_value(attrs, "instrument"))), ())
    matched, preferred = [], 0
    det_value = _exposure_value(attrs, "detector")
    specificity = max(_match(entry["DETECTOR"], entry["P_DETECT"], det_value), 0)
    if specificity:
        matched.append(f"DETECTOR={_upper(det_value)}")
    for name, (key, pattern) in _SELECTORS.items():
        exp_value = _exposure_value(attrs, name)
        if (name == "subarray" and _upper(entry.get(key)) == "FULL"
                and not entry.get(pattern) and _upper(exp_value) != "FULL"):
            continue  # a full-frame file serves any subarray (coverage is checked above)
        s = _match(entry.get(key), entry.get(pattern), exp_value)
        if name in soft:
            preferred += int(s > 0)
            continue
        if s < 0:
            return None, None, (
                f"{_ref_value_text(entry, key, pattern)}, the exposure's {key} is "
                f"{_upper(exp_value)}")
        if s > 0:
            matched.append(f"{key}={_upper(exp_value)}")
            specificity += s
    frame_misfits = 0
    if rt == "DARK":
        # as stcal's dark_sub: the dark should span the exposure's frames (else it is
        # extrapolated) and not average more frames per group (else the step skips)
        ngroups = _exposure_value(attrs, "ngroups")
        sci = entry["shapes"].get("SCI") or ()
        if ngroups is not None and len(sci) >= 3:
            nframes = int(_exposure_value(attrs, "nframes") or 1)
            gap = int(_exposure_value(attrs, "groupgap") or 0)
            d_nframes, d_gap = int(entry["NFRAMES"] or 1), int(entry["GROUPGAP"] or 0)
            d_total = sci[-3] * d_nframes + (sci[-3] - 1) * d_gap
            if d_total < int(ngroups) * nframes + (int(ngroups) - 1) * gap:
                frame_misfits += 1
            if d_nframes > nframes or d_gap > gap:
                frame_misfits += 1
    exact_first = exact if rt in EXACT_SHAPE_REFTYPES else 0
    return (exact_first, -frame_misfits, preferred, specificity, exact), matched, None


def _check_identity(path, rt, attrs, label, file_rt, instrument, detector, p_detect=None,
                    what="override"):
    """Raise if an override's (``what``'s) REFTYPE, instrument or detector do not fit
    the exposure."""
    if file_rt and file_rt != rt:
        raise ReferenceFileError(
            rt, label, f"{what} {path} is a {file_rt} reference file, not {rt}"
        )
    for name, value, pattern in (
        ("instrument", instrument, None),
        ("detector", detector, p_detect),
    ):
        exp_value = _exposure_value(attrs, name)
        if _match(value, pattern, exp_value) < 0:
            raise ReferenceFileError(
                rt,
                label,
                f"{what} {path} is a {rt} file for {name} {value}, "
                f"but the exposure's {name} is {exp_value}",
            )


def _check_header(path, rt, exposure, label, storage_options=None, what="override"):
    """Raise if an override's (``what``'s) REFTYPE/INSTRUME/DETECTOR/region do not fit
    the exposure."""
    attrs = _exposure_attrs(exposure)
    if str(path).lower().endswith(".asdf"):
        return _check_asdf(path, rt, attrs, label, what)
    key = KeptByFile.identity(path) if not storage_options else None
    entry = _CHECKED.get(key) if key is not None else None
    if entry is None:
        entry = _index_entry(path, storage_options)
        if entry is not None and key is not None:
            _CHECKED.put(key, entry)
    if entry is None:
        raise ReferenceFileError(rt, label, f"{what} {path} is not a readable FITS file")
    _check_identity(
        path,
        rt,
        attrs,
        label,
        _upper(entry["REFTYPE"]),
        entry["INSTRUME"],
        entry["DETECTOR"],
        entry["P_DETECT"],
        what,
    )
    exp_y, exp_x = _exposure_region(exposure)
    region = entry["region"]
    same_shape = region is not None and exp_y is not None and (
        region[1], region[3]) == (len(exp_y), len(exp_x))
    if rt in EXACT_SHAPE_REFTYPES and same_shape:
        return None  # jwst compares shapes only for DARK and RESET (see select_region)
    if region is not None and exp_y is not None:
        y0, ny, x0, nx = region
        ref_y, ref_x = np.arange(y0, y0 + ny), np.arange(x0, x0 + nx)
        _require_covers(rt, label, f"{what} {path}", ref_y, ref_x, exp_y, exp_x)
    return None


#: Header facts of the files given as overrides or manifest entries (every step of
#: every exposure of a program checks the same few files).
_CHECKED = KeptByFile(64)


def _check_asdf(path, rt, attrs, label, what="override"):
    """Best-effort REFTYPE/INSTRUME/DETECTOR check of an ASDF reference override."""
    try:
        import asdf

        with asdf.open(str(path), lazy_load=True, memmap=False) as af:
            meta = af.tree.get("meta") or {}
            file_rt = _upper(meta.get("reftype"))
            inst = meta.get("instrument") or {}
            ref_inst, ref_det = inst.get("name"), inst.get("detector")
    except Exception:
        return None
    _check_identity(path, rt, attrs, label, file_rt, ref_inst, ref_det, what=what)
    return None


def _default_refs_dir(attrs, storage_options=None):
    """``refs/`` beside the exposure's file, else beside the exposure a product was
    calibrated from (its primary header's :data:`detflow.contract.INPUT_KEYWORD`): a
    step resumed from ``out/<root>_superbias.fits`` finds the ``refs/`` of the uncal."""
    for path in (_exposure_path(attrs), _calibrated_from(attrs)):
        if not path:
            continue
        try:
            candidate = _sibling(path, "refs", storage_options)
            if _path_exists(candidate, storage_options):
                return candidate
        except Exception:
            continue
    return None


def _calibrated_from(attrs):
    """The exposure file a product was calibrated from (its primary header's
    :data:`~detflow.contract.INPUT_KEYWORD`), or None."""
    from detflow.contract import INPUT_KEYWORD

    header = attrs.get("primary_header")
    value = header.get(INPUT_KEYWORD) if isinstance(header, Mapping) else None
    if isinstance(value, list | tuple):  # (value, comment)
        value = value[0] if value else None
    return str(value) if value else None


#: The file beside an exposure that names its reference files (see :func:`resolve_reference`).
MANIFEST_NAME = "manifest.json"

_MANIFEST_LOCK = threading.Lock()
_MANIFESTS: dict = {}  # local path -> ((size, mtime_ns), parsed JSON)


def _sibling(path, name, storage_options=None):
    """``name`` in the folder of the file ``path`` (a local path or a URL)."""
    if is_remote(path):
        import fsspec

        fs, root = fsspec.core.url_to_fs(path, **dict(storage_options or {}))
        return fs.unstrip_protocol(f"{fs._parent(root).rstrip('/')}/{name}")
    return os.path.join(os.path.dirname(os.path.abspath(local_path(path))), name)


def _read_manifest(path, rt, label, storage_options=None):
    """The parsed manifest at ``path``, or None when there is none; kept per local
    file until it changes.

    Raises
    ------
    ReferenceFileError
        The file exists but is not JSON: it may name this exposure's references.
    """
    try:
        if is_remote(path):
            if not _path_exists(path, storage_options):
                return None
            import fsspec

            with fsspec.open(path, "rt", **dict(storage_options or {})) as f:
                text = f.read()
            stamp = None
        else:
            path = local_path(path)
            try:
                st = os.stat(path)
            except OSError:
                return None
            stamp = (st.st_size, st.st_mtime_ns)
            with _MANIFEST_LOCK:
                hit = _MANIFESTS.get(path)
            if hit is not None and hit[0] == stamp:
                return hit[1]
            with open(path, encoding="utf-8") as f:
                text = f.read()
    except OSError as exc:
        raise ReferenceFileError(rt, label, f"cannot read {path} ({exc})") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ReferenceFileError(
            rt, label, f"{path} is not valid JSON ({exc})",
            hint=f"fix or remove it (a {MANIFEST_NAME} beside an exposure names its "
                 "reference files)") from exc
    if stamp is not None:
        with _MANIFEST_LOCK:
            _MANIFESTS[path] = (stamp, data)
    return data


def _manifest_entry(data, name):
    """``(entry, key)``: the manifest's entry for the exposure file ``name``, or
    ``(None, None)``. Entries are ``data["exposures"][<file name>]``; the older
    single-exposure form (``uncal`` and ``references`` at the top) counts for its
    ``uncal``. A file of the same root with another suffix (``_ramp``,
    ``_dark_current``, ...) uses its exposure's entry."""
    if not isinstance(data, Mapping):
        return None, None
    entries = {}
    exposures = data.get("exposures")
    if isinstance(exposures, Mapping):
        entries.update({str(k): v for k, v in exposures.items() if isinstance(v, Mapping)})
    if isinstance(data.get("uncal"), str) and isinstance(data.get("references"), Mapping):
        entries.setdefault(data["uncal"], data)
    if name in entries:
        return entries[name], name
    from detflow.io.products import remove_suffix

    def root(file_name):
        stem = file_name
        for ext in (".fits.gz", ".fits"):
            if stem.lower().endswith(ext):
                stem = stem[: -len(ext)]
                break
        return remove_suffix(stem)

    wanted = root(name)
    found = [k for k in entries if root(k) == wanted]
    if len(found) == 1:
        return entries[found[0]], found[0]
    return None, None


def _resolve_manifest(rt, exposure, label, storage_options=None):
    """``(path, reason)`` from the manifest beside the exposure's file when it has an
    entry for this exposure naming a ``rt`` file; else None.

    Raises
    ------
    ReferenceFileError
        The manifest is not JSON, or the file it names is missing or does not fit the
        exposure.
    """
    exposure_path = _exposure_path(_exposure_attrs(exposure))
    if not exposure_path:
        return None
    try:
        manifest = _sibling(exposure_path, MANIFEST_NAME, storage_options)
    except Exception:
        return None
    data = _read_manifest(manifest, rt, label, storage_options)
    name = os.path.basename(exposure_path.split("?", 1)[0].rstrip("/"))
    entry, key = _manifest_entry(data, name)
    if entry is None or not isinstance(entry.get("references"), Mapping):
        return None
    value = {_upper(k): v for k, v in entry["references"].items()}.get(rt)
    if value is None or str(value).strip() == "":
        return None
    value = os.fspath(value) if not isinstance(value, str) else value
    reason = f"{MANIFEST_NAME} entry for " + ("this exposure" if key == name else key)
    if value.strip().upper() == "N/A":
        return "N/A", reason
    if is_remote(value) or os.path.isabs(value) or is_remote(manifest):
        path = value if (is_remote(value) or os.path.isabs(value)) else \
            f"{manifest.rsplit('/', 1)[0]}/{value}"
    else:
        path = os.path.join(os.path.dirname(manifest), value)
    if not _path_exists(path, storage_options):
        raise ReferenceFileError(
            rt, label, f"{manifest} names {value} for {key}, which does not exist",
            hint=f"fix the entry, or give override_{rt.lower()}=PATH")
    _check_header(path, rt, exposure, label, storage_options, what=f"{MANIFEST_NAME} entry")
    return path, reason


def _crds_parameters(attrs):
    """CRDS matching parameters (datamodel paths) from the exposure's primary header."""
    from detflow.contract import KEYWORDS

    header = attrs.get("primary_header")
    params = {}
    if isinstance(header, Mapping):
        params.update(
            {k: v for k, v in header.items() if v is not None and not isinstance(v, list)}
        )
    for name, (keyword, where, _) in KEYWORDS.items():
        if where == "primary" and keyword not in params and attrs.get(name) is not None:
            params[keyword] = attrs[name]
    params.setdefault("TELESCOP", "JWST")
    try:
        from crds.jwst.locate import fits_to_parkeys

        return fits_to_parkeys(params)
    except Exception:
        return {k.upper(): str(v) for k, v in params.items()}


class _CrdsEnvironment:
    """Temporarily default CRDS to the offline, local-cache mode."""

    def __enter__(self):
        self._old = os.environ.get("CRDS_MODE")
        if self._old is None:
            os.environ["CRDS_MODE"] = "local"
        return self

    def __exit__(self, *exc):
        if self._old is None:
            os.environ.pop("CRDS_MODE", None)
        return False


def _resolve_crds(rt, attrs, label):
    """Ask the CRDS client; returns a path, "N/A", or raises ReferenceFileError."""
    try:
        import crds
    except ImportError as exc:
        raise ReferenceFileError(
            rt, label, "CRDS_PATH is set but the crds package is not installed"
        ) from exc
    params = _crds_parameters(attrs)
    try:
        with _CrdsEnvironment():
            best = crds.getreferences(
                params,
                reftypes=[rt.lower()],
                observatory="jwst",
                context=os.environ.get("CRDS_CONTEXT") or None,
            )
    except Exception as exc:  # CrdsError and whatever the client lets through
        raise ReferenceFileError(
            rt,
            label,
            f"CRDS lookup in {os.environ.get('CRDS_PATH')} failed ({type(exc).__name__}: {exc})",
        ) from exc
    value = str(best.get(rt.lower(), best.get(rt, "")) if isinstance(best, Mapping) else "")
    if not value or "N/A" in value.upper():
        return "N/A"
    if value.upper().startswith("NOT FOUND"):
        raise ReferenceFileError(rt, label, f"CRDS: {value}")
    return value


def resolve_reference(
    reftype,
    exposure,
    *,
    override=None,
    refs_dir=None,
    use_crds=None,
    optional=False,
    storage_options=None,
    explain=False,
):
    """Find the reference file of one type for an exposure.

    Order: (a) ``override`` (jwst's ``override_<reftype>``; ``"N/A"`` passes
    through, anything else must exist and match the exposure's instrument,
    detector and region); (b) the exposure's entry in the ``manifest.json``
    beside its file, when it names a file of this type and no ``refs_dir`` is
    given (a folder the user names wins over the manifest); (c) a reference
    directory: ``refs_dir``, or ``<folder of the exposure file>/refs`` when it
    exists; (d) a CRDS cache through the ``crds`` client when ``CRDS_PATH`` is
    set (offline: ``CRDS_MODE`` defaults to ``local``; ``CRDS_CONTEXT`` is
    honoured).

    The manifest (b) is how a simulated exposure gets its own references however
    many simulations share its folder (:func:`detflow.simulate` writes one entry
    per exposure): ``{"exposures": {"<exposure file name>": {"references":
    {"dark": "refs/my_dark.fits", ...}}}}``, paths relative to the manifest's
    folder (or absolute, or ``"N/A"``); an older single-exposure manifest (its
    ``uncal`` and ``references`` at the top) counts for its ``uncal``, and an
    entry serves the files of the same root with another suffix (``_ramp``, a
    step's). The file named must exist and fit the exposure, as an override must.

    A directory (c) is searched as CRDS selects. Candidates are the ``*.fits``
    files whose REFTYPE equals ``reftype``, whose INSTRUME and DETECTOR match the
    exposure (or are ANY, N/A, MULTIPLE or absent; ``P_DETECT`` patterns such as
    ``"NRCA1|NRCA2|"`` are honoured), whose READPATT, SUBARRAY, EXP_TYPE, FILTER
    and PUPIL (or ``P_`` patterns), where the file has them, match the
    exposure's (wildcards match anything; a FULL file serves a subarray it
    covers; a NIRCam DARK's READPATT is not a selection keyword of CRDS: an equal
    one is only preferred), whose data cover the exposure's detector region, and
    whose USEAFTER is not after the exposure's start (DATE-OBS/TIME-OBS, else
    EXPSTART; when the start is unknown every USEAFTER counts). Among them wins,
    in order: the exposure's exact region for DARK and RESET (jwst does not cut
    them), a DARK whose frames span the exposure's, the more specific match (a
    keyword equal to the exposure's beats a ``P_`` pattern, which beats a
    wildcard), the exact region, then the latest USEAFTER. Files still equal on
    all of these are not chosen between by name: :class:`ReferenceFileError`
    lists them and says how to choose (``override_<reftype>``, a manifest entry,
    or a folder holding only the wanted file).

    Parameters
    ----------
    reftype : str
        Reference type, any case (``"dark"``, ``"GAIN"``...).
    exposure : Mapping or xarray.Dataset
        The exposure's attrs (:mod:`detflow.contract` names: ``instrument``,
        ``detector``, ``subarray``, ``substrt1/2``, ``subsize1/2``,
        ``readpatt``, ``exp_type``, ``filter``, ``pupil``, ``expstart``,
        ``primary_header``, and the file in ``path`` or ``source``), or the
        exposure Dataset itself.
    override : str or os.PathLike, optional
        Explicit file (local path or fsspec URL) or ``"N/A"``.
    refs_dir : str or os.PathLike, optional
        Directory of reference files; default ``<exposure folder>/refs``.
    use_crds : bool, optional
        Whether to ask CRDS; default: when the ``CRDS_PATH`` variable is set.
    optional : bool
        Return ``"N/A"`` instead of raising when nothing is found.
    storage_options : dict, optional
        fsspec options for URLs.
    explain : bool
        Return ``(path, reason)``: why this file (or N/A), e.g. ``"override_dark"``,
        ``"manifest.json entry for this exposure"``, ``"refs dir refs: matched
        DETECTOR=NRCA1 SUBARRAY=SUB160, USEAFTER 2022-01-01T00:00:00 (latest of 2
        not after 2023-12-20T06:00:00)"``, ``"CRDS"``.

    Returns
    -------
    str or tuple of str
        Path of the reference file, or ``"N/A"`` (not applicable); with
        ``explain``, ``(path, reason)``.

    Raises
    ------
    ReferenceFileError
        The override or manifest entry is missing or mismatched, the CRDS lookup
        failed, several directory files tie, or no file was found (the message
        says how to supply or choose one).
    """
    path, reason = _resolve(reftype, exposure, override, refs_dir, use_crds, optional,
                            storage_options)
    return (path, reason) if explain else path


def _resolve(reftype, exposure, override, refs_dir, use_crds, optional, storage_options):
    """:func:`resolve_reference`'s ``(path, reason)``."""
    rt = _upper(reftype)
    attrs = _exposure_attrs(exposure)
    label = _exposure_label(exposure)

    # (a) explicit override
    if override is not None and str(override).strip() != "":
        override = os.fspath(override) if not isinstance(override, str) else override
        if override.strip().upper() == "N/A":
            return "N/A", f"override_{rt.lower()}=N/A"
        if not _path_exists(override, storage_options):
            raise ReferenceFileError(
                rt,
                label,
                f"override_{rt.lower()}={override} does not exist",
                hint=f"give an existing file or 'N/A' as override_{rt.lower()}",
            )
        _check_header(override, rt, exposure, label, storage_options)
        return str(override), f"override_{rt.lower()}"

    # (b) the manifest beside the exposure, unless a reference folder was given: a
    # folder the user names is the more deliberate choice
    if refs_dir is None:
        found = _resolve_manifest(rt, exposure, label, storage_options)
        if found is not None:
            return found

    searched = []
    # (c) reference directory
    explicit_dir = refs_dir is not None
    if refs_dir is None:
        refs_dir = _default_refs_dir(attrs, storage_options)
    if refs_dir is not None:
        refs_dir = os.fspath(refs_dir) if not isinstance(refs_dir, str) else refs_dir
        if not _path_exists(refs_dir, storage_options):
            if explicit_dir:
                raise ReferenceFileError(
                    rt, label, f"reference directory {refs_dir} does not exist"
                )
        else:
            found, why = _resolve_dir(rt, exposure, refs_dir, storage_options)
            if found is not None:
                return found, why
            searched.append(why)

    # (d) CRDS cache
    if use_crds is None:
        use_crds = bool(os.environ.get("CRDS_PATH"))
    if use_crds:
        context = os.environ.get("CRDS_CONTEXT")
        crds_reason = "CRDS" + (f" (context {context})" if context else "")
        try:
            return _resolve_crds(rt, attrs, label), crds_reason
        except ReferenceFileError:
            if optional:
                return "N/A", "optional, and the CRDS lookup failed"
            raise
    else:
        searched.append("CRDS not consulted (CRDS_PATH is not set)")

    if optional:
        where = f" in {_folder_name(refs_dir)}/" if refs_dir is not None else ""
        return "N/A", f"optional, none found{where}" + ("" if use_crds else
                                                         " (CRDS not consulted)")
    raise ReferenceFileError(rt, label, "no reference file found: " + "; ".join(searched))


def _folder_name(refs_dir):
    return os.path.basename(str(refs_dir).rstrip("/")) or str(refs_dir)


def _resolve_dir(rt, exposure, refs_dir, storage_options=None):
    """``(path, reason)`` of the one best candidate in ``refs_dir`` (see
    :func:`resolve_reference`), or ``(None, why not)``; raises
    :class:`ReferenceFileError` when several tie."""
    entries = reference_index(refs_dir, storage_options=storage_options)
    attrs = _exposure_attrs(exposure)
    label = _exposure_label(exposure)
    exp_y, exp_x = _exposure_region(exposure)
    exp_date = _exposure_date(attrs)
    of_type = [e for e in entries if _upper(e["REFTYPE"]) == rt]
    matching = [
        e
        for e in of_type
        if _match(e["INSTRUME"], None, _exposure_value(attrs, "instrument")) >= 0
        and _match(e["DETECTOR"], e["P_DETECT"], _exposure_value(attrs, "detector")) >= 0
    ]
    candidates, excluded, late = [], [], []
    for entry in matching:
        key, matched, why = _entry_rank(entry, rt, attrs, exp_y, exp_x)
        if key is None:
            excluded.append(f"{entry['name']} ({why})")
            continue
        useafter = _parse_date(entry.get("USEAFTER"))
        if useafter is not None and exp_date is not None and useafter > exp_date:
            late.append(f"{entry['name']} (USEAFTER {entry.get('USEAFTER')})")
            continue
        candidates.append((key + (useafter or _dt.datetime.min,), matched, entry))
    det = _exposure_value(attrs, "detector")
    folder = _folder_name(refs_dir)
    if candidates:
        candidates.sort(key=lambda c: c[0], reverse=True)
        best_key, matched, best = candidates[0]
        tied = [c[2] for c in candidates if c[0] == best_key]
        what = " ".join(matched) or "wildcards only"
        useafter = best.get("USEAFTER") or "none"
        if len(tied) > 1:
            names = ", ".join(e["name"] for e in tied)
            raise ReferenceFileError(
                rt,
                label,
                f"{len(tied)} files in {refs_dir} match it equally well ({what}, "
                f"USEAFTER {useafter}): {names}; detflow does not choose between them by name",
                hint=(
                    f"choose one with override_{rt.lower()}=FILE (command line: "
                    f"--steps.<step>.override_{rt.lower()}=FILE), an entry for the "
                    f"exposure in a {MANIFEST_NAME} beside it ({{\"exposures\": "
                    f"{{\"<file>\": {{\"references\": {{\"{rt.lower()}\": \"FILE\"}}}}}}}}), "
                    "or a reference folder holding only the wanted file "
                    "(--refs DIR, refs_dir=DIR)"
                ),
            )
        reason = f"refs dir {folder}: matched {what}, USEAFTER {useafter}"
        if len(candidates) == 1:
            reason += " (the only match"
        else:
            runner = candidates[1][0]
            slot = next(i for i, (a, b) in enumerate(zip(best_key, runner, strict=True))
                        if a != b)
            if slot < len(_RANK_CRITERIA):
                reason += (f" (over {len(candidates) - 1} other match(es): "
                           + _RANK_CRITERIA[slot].format(rt=rt))
            elif exp_date is not None:
                reason += (f" (latest of {len(candidates)} not after the exposure start "
                           f"{exp_date.isoformat(timespec='seconds')}")
            else:
                reason += f" (latest of {len(candidates)}; the exposure start is unknown"
        if late:
            reason += f"; {len(late)} with a later USEAFTER left out"
        return best["path"], reason + ")"
    if not of_type:
        return None, f"{refs_dir} has no {rt} file"
    if not matching:
        return None, (
            f"{refs_dir} has {len(of_type)} {rt} file(s), none for "
            f"{_exposure_value(attrs, 'instrument')} {det}"
        )
    parts = []
    if excluded:
        parts.append("not matching the exposure: " + "; ".join(excluded))
    if late:
        start = exp_date.isoformat(timespec="seconds")
        parts.append(f"USEAFTER after the exposure start {start}: " + "; ".join(late))
    return None, (
        f"{refs_dir} has {len(matching)} {rt} file(s) for {det}, none usable: "
        + "; ".join(parts)
    )


def read_user_dq(path):
    """The DQ array of a user's ``dq_init.user_supplied_dq`` file, read as jwst reads it
    (``astropy.io.fits.getdata``: the first HDU with data).

    Raises
    ------
    InputFileError
        The file is missing, not FITS, or holds no image.
    """
    from astropy.io import fits

    try:
        data = fits.getdata(os.fspath(path))
    except FileNotFoundError:
        raise InputFileError(str(path), "user_supplied_dq file not found") from None
    except (OSError, IndexError, TypeError, ValueError) as exc:
        raise InputFileError(str(path), f"cannot read a DQ image from it: {exc}") from None
    array = np.asarray(data)
    if array.dtype.kind not in "iub":
        raise InputFileError(str(path), f"its data are {array.dtype}, not an integer DQ array")
    return array
