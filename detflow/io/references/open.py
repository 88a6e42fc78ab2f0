"""JWST reference files opened as lazy xarray Datasets.

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
coordinate. :func:`~detflow.io.references.region.select_region` cuts a reference
to an exposure; :func:`open_reference_for` opens and cuts in one call, and keeps
the result.

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
EMICORR       an ASDF file (``EmiModel``, :func:`open_emicorr_reference`): no
              variables; ``attrs["frequencies"]`` and ``attrs["subarray_cases"]``
============  ==============================================================

Binary tables (``DQ_DEF``, ``RSCD_GROUP_SKIP``, ...) are kept as
``attrs["tables"][<lower-cased extname>] = {column: list}``. Non-spatial
dimensions carry 0-based integer coordinates, except ``ky``/``kx``, whose
coordinates are the kernel offsets from its centre (``arange(n) - n // 2``).

Parsed headers (:data:`_REFERENCES`) and references cut for an exposure
(:data:`_CUT_REFERENCES`) are kept per local file until it changes.

A reference DQ is translated through the file's ``DQ_DEF`` table to the standard
JWST bits (:func:`dq_def_mapping`, :func:`translate_dq`), as stdatamodels does when
it opens the file; :func:`read_user_dq` reads a ``dq_init.user_supplied_dq`` file as
jwst reads it. A reference datamodel given as an override (jwst accepts a model
object as ``override_<reftype>``) is saved once to a file
(:func:`reference_model_path`), so it is read lazily like any reference file.
"""

from __future__ import annotations

import copy
import functools
import os
import threading
import weakref

import numpy as np

from detflow.errors import InputFileError, ReferenceFileError
from detflow.io.chunks import array_chunks
from detflow.io.files import KeptByFile, is_remote, local_path
from detflow.io.fits import FitsImage, FitsSource, read_hdus, read_table
from detflow.io.references.exposure import (
    _exposure_attrs,
    _exposure_label,
    _exposure_value,
    _is_dataset,
    _spatial_chunks,
    _upper,
)
from detflow.io.references.region import select_region
from detflow.io.values import header_to_dict, typed_value

__all__ = [
    "dq_def_mapping",
    "open_emicorr_reference",
    "open_reference",
    "open_reference_for",
    "read_user_dq",
    "reference_model_path",
    "translate_dq",
]

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


def _path_exists(path, storage_options=None):
    if is_remote(path):
        import fsspec

        fs, root = fsspec.core.url_to_fs(str(path), **dict(storage_options or {}))
        return fs.exists(root)
    return os.path.exists(local_path(path))


def _header_value(header, key, typ=str):
    """A header keyword as ``typ`` (:func:`~detflow.io.values.typed_value`); ``None``
    when absent, undefined or not a valid ``typ`` (reference files are read leniently)."""
    try:
        return typed_value(header.get(key), typ)
    except (TypeError, ValueError):
        return None


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


def open_reference(path, reftype=None, chunks=None, *, exposure=None, storage_options=None,
                   tiling=None):
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
        joined as the run's ``tiling`` says, see :mod:`detflow.io.chunks`).
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
        var_chunks = array_chunks(attrs, dims, shape, chunks, itemsize=dtype.itemsize,
                                  tiling=tiling)
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


def open_reference_for(path, reftype, exposure, tiling=None):
    """:func:`open_reference` then :func:`select_region` for an exposure Dataset, opened
    with the run's ``tiling`` (:class:`~detflow.tiling.Tiling`; its tiles are then the
    exposure's, with no rechunk between them).

    The result is kept (the last few, by the file's path, size and mtime and the
    exposure's instrument, detector, region and tiles): a program's exposures open the
    same references on the same region, and opening and cutting one is a few
    milliseconds each time, for every reference of every step of every exposure. A kept
    result is returned as a shallow copy with its attrs copied.
    """
    if _is_asdf(path):  # EMICORR: small tables, nothing to cut
        return open_emicorr_reference(path, reftype, exposure=exposure)
    ident = KeptByFile.identity(path) if _is_dataset(exposure) else None
    key = None
    if ident is not None:
        attrs = _exposure_attrs(exposure)
        tiles = _spatial_chunks(exposure)
        key = ident + (_upper(reftype), _exposure_value(attrs, "instrument"),
                       _exposure_value(attrs, "detector"),
                       np.asarray(exposure["y"].values).tobytes(),
                       np.asarray(exposure["x"].values).tobytes(), tiles, tiling)
        hit = _CUT_REFERENCES.get(key)
        if hit is not None:
            return _fresh_copy(hit)
    out = select_region(open_reference(path, reftype, exposure=exposure, tiling=tiling),
                        exposure)
    if key is not None:
        _CUT_REFERENCES.put(key, _fresh_copy(out))
    return out


def _is_asdf(path):
    return str(path).lower().endswith(".asdf")


def _plain(value):
    """An ASDF tree node as plain Python: dicts, lists, str, int, float, and NumPy arrays
    (read into memory, in the file's dtype)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return np.array(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def open_emicorr_reference(path, reftype="EMICORR", *, exposure=None):
    """Open a MIRI EMICORR reference (an ASDF ``EmiModel``) as an :class:`xarray.Dataset`
    without variables, its content in ``attrs`` as small plain data. (Any other ASDF
    reference opens the same way: its top-level tree entries become ``attrs``.)

    Parameters
    ----------
    path : str or os.PathLike
        A local ASDF file.
    reftype : str, optional
        Expected type; a file whose ``meta.reftype`` is another raises.
    exposure : optional
        Only to name the exposure in errors.

    Returns
    -------
    xarray.Dataset
        ``attrs``: ``reftype`` (``"EMICORR"``), ``path``, ``filename``, ``instrument``,
        ``detector``, ``useafter``, ``pedigree``, ``author``, ``description`` where the
        file has them, ``meta`` (its whole ``meta`` tree), and

        * ``frequencies``: ``{name: {"frequency": float, "phase_amplitudes": ndarray}}``
          (the arrays in the file's dtype, as jwst reads them);
        * ``subarray_cases``: ``{case: {"rowclocks": int, "frameclocks": int, "freqs":
          {"FAST": [names], "SLOW": {detector: [names]}}}}``, as in the file;
        * any other top-level entry of the file's tree, as plain data.

    Raises
    ------
    ReferenceFileError
        The file is missing, not ASDF, of another REFTYPE, or has no ``frequencies`` or
        ``subarray_cases``.
    """
    import xarray as xr

    path = os.fspath(path) if not isinstance(path, str) else path
    label = _exposure_label(exposure)
    want = _upper(reftype) or "EMICORR"
    if not _path_exists(path):
        raise ReferenceFileError(want, label, f"reference file {path} does not exist")
    key = KeptByFile.identity(path)
    hit = _ASDF_REFERENCES.get(key) if key is not None else None
    if hit is None:
        try:
            import asdf

            with asdf.open(local_path(path) or path, lazy_load=False, memmap=False) as af:
                tree = {k: _plain(v) for k, v in af.tree.items()
                        if k not in ("asdf_library", "history")}
        except Exception as exc:  # asdf raises many kinds for a file that is not ASDF
            raise ReferenceFileError(want, label, f"cannot read {path} as ASDF ({exc})") from exc
        hit = tree
        if key is not None:
            _ASDF_REFERENCES.put(key, hit)
    meta = dict(hit.get("meta") or {})
    file_rt = _upper(meta.get("reftype"))
    if file_rt and file_rt != want:
        raise ReferenceFileError(want, label, f"{path} is a {file_rt} reference file, not {want}")
    if want == "EMICORR":
        for name in ("frequencies", "subarray_cases"):
            if not isinstance(hit.get(name), dict):
                raise ReferenceFileError(want, label, f"{path} has no {name} (not an EmiModel)")
    inst = meta.get("instrument") or {}
    attrs = {**copy.deepcopy({k: v for k, v in hit.items() if k != "meta"}),
             "reftype": want, "path": str(path),
             "filename": os.path.basename(str(path).rstrip("/")), "meta": copy.deepcopy(meta)}
    for name, value in (("instrument", inst.get("name")), ("detector", inst.get("detector")),
                        ("useafter", meta.get("useafter")), ("pedigree", meta.get("pedigree")),
                        ("author", meta.get("author")), ("description", meta.get("description"))):
        if value is not None:
            attrs[name] = value
    return xr.Dataset(attrs=attrs)


_ASDF_REFERENCES = KeptByFile(8)


def _fresh_copy(ds):
    out = ds.copy(deep=False)
    out.attrs = copy.deepcopy(ds.attrs)
    return out


_CUT_REFERENCES = KeptByFile(64)


# --------------------------------------------------------------------------
# DQ: a reference file's DQ_DEF translation, a user's DQ file
# --------------------------------------------------------------------------

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
        ``{column: list}`` as :func:`detflow.io.fits.read_table` reads it (columns
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


# --------------------------------------------------------------------------
# Reference datamodels given as overrides, saved once to a file
# --------------------------------------------------------------------------

#: The files written for models: ``id(model) -> (weak reference to the model, path)``.
#: An id is only unique among live objects, so an entry holds the model weakly and
#: counts only while that reference still gives the same object; the entry is dropped
#: when its model is collected (the file itself stays until exit: a graph built from
#: the model may still read it). Holding the model weakly keeps no model (and its
#: arrays) alive for the rest of the process.
_MODEL_FILES = {}
_MODEL_LOCK = threading.Lock()


def _forget_model(key, ref):
    """Drop ``key``'s entry once its model is collected (a weak-reference callback:
    runs during garbage collection, so it takes no lock; the entry is still this
    reference's, as no other object can have the model's id before it is freed)."""
    hit = _MODEL_FILES.get(key)
    if hit is not None and hit[0] is ref:
        _MODEL_FILES.pop(key, None)


def _weak(model, key):
    """A weak reference to ``model`` that forgets its entry when the model goes; a
    strong one (a closure) for an object that cannot be weakly referenced."""
    try:
        return weakref.ref(model, functools.partial(_forget_model, key))
    except TypeError:
        return lambda: model


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
        if hit is not None and hit[0]() is model and os.path.exists(hit[1]):
            return hit[1]
    folder = tempfile.mkdtemp(prefix="detflow-refmodels-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)  # removed with the process
    rt = _upper(getattr(getattr(model, "meta", None), "reftype", None) or reftype or "ref")
    name = getattr(model.meta, "filename", None) or f"{rt.lower()}.fits"
    stem = os.path.splitext(os.path.basename(str(name)))[0] or rt.lower()
    ext = ".asdf" if rt == "EMICORR" else ".fits"  # an EmiModel is ASDF only
    path = os.path.join(folder, f"{stem}{ext}")
    with model.copy() as copy_:
        copy_.save(path)
    ref = _weak(model, key)
    with _MODEL_LOCK:
        _MODEL_FILES[key] = (ref, path)
    return path
