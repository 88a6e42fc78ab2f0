"""The FITS product writers: rate, rateints, fitopt, ramp and the dark_current dark.

The products are written in the layout that ``stdatamodels`` reads
(``stdatamodels.jwst.datamodels.open`` returns an ``ImageModel``, ``CubeModel``,
``RampFitOutputModel``, ``RampModel`` or ``DarkModel``), with the headers of
:mod:`detflow.io.products.headers` and no ASDF extension: stdatamodels then
builds the model's metadata from the FITS keywords, so every keyword it knows is
read and every other one is kept in ``extra_fits``.

Every file is written under a temporary name and renamed when complete
(:func:`detflow.io.atomic.atomic_path`). The small products (rate, rateints,
fitopt, dark) compute all their arrays in one :func:`dask.compute` call before
the file is opened. A ramp product is laid out first (headers written, data
space allocated, :func:`_write_fits`) and then filled chunk by chunk by one
:func:`dask.array.store` call writing into memory maps of the file; with a
distributed cluster the workers must see the output folder (a local cluster or a
shared file system).

Binary tables (``INT_TIMES``, ``GROUP``) travel in ``attrs["tables"]`` as
``{column: list}``; they are written with the dtypes of their jwst schema
(``int_times.schema``, ``group.schema``), and every column the schema has but the
Dataset lacks is added (zeros or empty strings), since stdatamodels needs them all.

The file layout is written directly, not through astropy's writer:
:func:`_write_fits` writes the headers and allocates each IMAGE extension's data
space; a NumPy array is written at once, a Dask array is returned with its
:class:`_FitsDataRegion` (a picklable, memory-mapped view of its place in the
file) for :func:`dask.array.store` to fill, so no more than the chunks in flight
is ever held in memory. Unsigned integers are stored as FITS stores them (signed,
with ``BZERO``).
"""

import io
import math
from pathlib import Path

import dask
import dask.array as da
import numpy as np
from astropy.io import fits

from detflow.errors import ProductContentError, ProductWriteError
from detflow.io.atomic import atomic_path
from detflow.io.fits import padded_nbytes
from detflow.io.products.headers import _primary_header, _sci_header, _unit_header
from detflow.io.products.names import _check_writable, _resolve_output
from detflow.io.values import plain_scalar

__all__ = [
    "FITOPT_VARIABLES",
    "MODEL_TYPES",
    "RATE_VARIABLES",
    "write_dark",
    "write_fitopt",
    "write_ramp",
    "write_rate",
    "write_rateints",
]

#: Rate/rateints variables: name -> (FITS extension, dtype written).
RATE_VARIABLES = {
    "data": ("SCI", np.float32),
    "err": ("ERR", np.float32),
    "dq": ("DQ", np.uint32),
    "var_poisson": ("VAR_POISSON", np.float32),
    "var_rnoise": ("VAR_RNOISE", np.float32),
}
#: Fitopt variables (written as float32): name -> number of dims.
FITOPT_VARIABLES = {
    "slope": 4,
    "sigslope": 4,
    "var_poisson": 4,
    "var_rnoise": 4,
    "yint": 4,
    "sigyint": 4,
    "pedestal": 3,
    "weights": 4,
    "crmag": 4,
}

#: Product kind -> the jwst model class its file holds (``DATAMODL``).
MODEL_TYPES = {
    "ramp": "RampModel",
    "rate": "ImageModel",
    "rateints": "CubeModel",
    "fitopt": "RampFitOutputModel",
}


def _variable(ds, name, dims, path, *, ndim=None, dtype=None):
    """``ds[name]`` as an array ordered as ``dims`` (lazy when Dask-backed)."""
    if name not in ds.variables:
        raise ProductContentError(path, f"the Dataset has no variable {name!r}")
    var = ds[name].variable
    if dims is not None and set(var.dims) == set(dims):
        var = var.transpose(*dims)
    want = len(dims) if dims is not None else ndim
    if want is not None and var.ndim != want:
        raise ProductContentError(
            path, f"variable {name!r} has dims {var.dims}; expected {want} dims {dims or ''}"
        )
    data = var.data
    if dtype is not None and data.dtype != dtype:
        data = data.astype(dtype)
    return data


def _finish_small(path, ds, model_type, arrays, table_names):
    """Compute the product's arrays at once and write them atomically.

    ``arrays``: ordered {extname: (data, dtype, header or None)}.
    """
    path = Path(path)
    _check_writable(path)
    tables = _table_hdus(ds.attrs, table_names, path)
    names = list(arrays)
    values = dask.compute(*[arrays[n][0] for n in names])
    primary = _primary_header(ds.attrs, path, model_type)
    hdus = [
        (n, np.asarray(v), arrays[n][1], arrays[n][2]) for n, v in zip(names, values, strict=True)
    ]
    hdus += tables
    try:
        with atomic_path(path) as tmp:
            _write_fits(tmp, primary, hdus)
    except OSError as exc:
        raise ProductWriteError(path, f"cannot write: {exc}") from exc
    return path


def _rate_arrays(ds, dims, path, bunit):
    arrays = {}
    for name, (extname, dtype) in RATE_VARIABLES.items():
        data = _variable(ds, name, dims, path, dtype=dtype)
        if extname == "SCI":
            header = _sci_header(ds.attrs, bunit)
        elif extname == "ERR":
            header = _unit_header(bunit)
        else:
            header = None
        arrays[extname] = (data, dtype, header)
    return arrays


def write_dark(ds, path):
    """Write the dark a dark_current step subtracted, as jwst's ``dark_output`` saves it
    (``DarkModel``, or ``DarkMIRIModel`` for a 4-D dark).

    Parameters
    ----------
    ds : xarray.Dataset
        ``data`` ``(ngroups, ny, nx)`` or ``(nints, ngroups, ny, nx)`` (written as
        float32, as jwst's model stores it), optional ``dq`` (the DARK's DQ, uint32);
        ``attrs``: the DARK reference's (its primary header is the product's), with
        ``nframes``, ``ngroups`` and ``groupgap`` of the dark as subtracted.
    path : str or Path
        The output file.

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    sci = ds["data"]
    model_type = "DarkMIRIModel" if sci.ndim == 4 else "DarkModel"
    arrays = {"SCI": (_variable(ds, "data", None, path, ndim=sci.ndim, dtype=np.float32),
                      np.float32, None)}
    if "dq" in ds.variables:
        arrays["DQ"] = (_variable(ds, "dq", None, path, ndim=ds["dq"].ndim, dtype=np.uint32),
                        np.uint32, None)
    return _finish_small(path, ds, model_type, arrays, ())


def write_rate(ds, path):
    """Write a rate product (JWST ``ImageModel``, ``*_rate.fits``).

    Parameters
    ----------
    ds : xarray.Dataset
        Variables ``data``, ``err``, ``var_poisson``, ``var_rnoise`` (float32) and
        ``dq`` (uint32), each ``(ny, nx)`` on dims ``(y, x)``; attributes as in
        :mod:`detflow.contract`.
    path : str or Path
        Output file, or a folder (the name is then :func:`product_path` with
        suffix ``rate``).

    Returns
    -------
    pathlib.Path
        The written file. Extensions SCI, ERR, DQ, VAR_POISSON, VAR_RNOISE; BUNIT
        ``DN/s`` on SCI and ERR. The five arrays are computed in one
        :func:`dask.compute` call.
    """
    path = _resolve_output(ds, path, "rate")
    arrays = _rate_arrays(ds, ("y", "x"), path, "DN/s")
    return _finish_small(path, ds, MODEL_TYPES["rate"], arrays, ())


def write_rateints(ds, path):
    """Write a per-integration rate product (JWST ``CubeModel``, ``*_rateints.fits``).

    Parameters
    ----------
    ds : xarray.Dataset
        Variables as for :func:`write_rate` on dims ``(integration, y, x)``, shape
        ``(nints, ny, nx)``; ``attrs["tables"]["int_times"]``, when present, is
        written as the INT_TIMES table.
    path : str or Path
        Output file, or a folder (suffix ``rateints``).

    Returns
    -------
    pathlib.Path
    """
    path = _resolve_output(ds, path, "rateints")
    arrays = _rate_arrays(ds, ("integration", "y", "x"), path, "DN/s")
    return _finish_small(path, ds, MODEL_TYPES["rateints"], arrays, ("int_times",))


def write_fitopt(ds, path):
    """Write the optional ramp-fitting product (``RampFitOutputModel``, ``*_fitopt.fits``).

    Parameters
    ----------
    ds : xarray.Dataset
        Variables ``slope``, ``sigslope``, ``var_poisson``, ``var_rnoise``, ``yint``,
        ``sigyint``, ``weights`` of shape ``(nints, nsegments, ny, nx)``, ``crmag``
        ``(nints, max_ncr, ny, nx)`` and ``pedestal`` ``(nints, ny, nx)``, all
        written as float32 (any dim names; ``y``, ``x`` last).
    path : str or Path
        Output file, or a folder (suffix ``fitopt``).

    Returns
    -------
    pathlib.Path
    """
    path = _resolve_output(ds, path, "fitopt")
    arrays = {}
    for name, ndim in FITOPT_VARIABLES.items():
        data = _variable(ds, name, None, path, ndim=ndim, dtype=np.float32)
        arrays[name.upper()] = (data, np.float32, None)
    return _finish_small(path, ds, MODEL_TYPES["fitopt"], arrays, ())


def write_ramp(ds, path, suffix="ramp"):
    """Write a ramp product (``RampModel``: ``*_ramp.fits`` or an intermediate step's).

    The file is laid out first, then filled chunk by chunk from Dask by one
    :func:`dask.array.store` call (every variable in the same graph, so shared
    work is done once and only the chunks in flight are in memory).

    Parameters
    ----------
    ds : xarray.Dataset
        ``data`` ``(nints, ngroups, ny, nx)`` on ``(integration, group, y, x)``
        (written as float32), ``groupdq`` (uint8, same shape), ``pixeldq``
        ``(ny, nx)`` (uint32); optional ``zeroframe`` ``(nints, ny, nx)``,
        ``refout`` ``(nints, ngroups, ny/4, nx)`` and ``average_dark_current``
        ``(ny, nx)`` (float32; else ``attrs["average_dark_current"]``, when set, fills
        AVDRKCUR as jwst does); tables ``group`` and
        ``int_times`` from ``attrs["tables"]``.
    path : str or Path
        Output file, or a folder: the file is then :func:`product_path` with
        ``suffix`` (e.g. ``jump`` for the jump step's output).
    suffix : str
        Suffix used when ``path`` is a folder.

    Returns
    -------
    pathlib.Path
    """
    path = _resolve_output(ds, path, suffix)
    _check_writable(path)
    dims4 = ("integration", "group", "y", "x")
    bunit = ds.attrs.get("bunit") or (ds.attrs.get("sci_header") or {}).get("BUNIT") or "DN"
    if isinstance(bunit, list | tuple):
        bunit = bunit[0]
    images = [
        (
            "SCI",
            _variable(ds, "data", dims4, path, dtype=np.float32),
            np.float32,
            _sci_header(ds.attrs, str(bunit)),
        )
    ]
    images.append(
        ("PIXELDQ", _variable(ds, "pixeldq", ("y", "x"), path, dtype=np.uint32), np.uint32, None)
    )
    images.append(
        ("GROUPDQ", _variable(ds, "groupdq", dims4, path, dtype=np.uint8), np.uint8, None)
    )
    if "zeroframe" in ds.variables:
        data = _variable(ds, "zeroframe", ("integration", "y", "x"), path, dtype=np.float32)
        images.append(("ZEROFRAME", data, np.float32, None))
    if "refout" in ds.variables:
        data = _variable(ds, "refout", None, path, ndim=4, dtype=np.float32)
        images.append(("REFOUT", data, np.float32, None))
    if "average_dark_current" in ds.variables:
        data = _variable(ds, "average_dark_current", ("y", "x"), path, dtype=np.float32)
        images.append(("AVDRKCUR", data, np.float32, None))
    elif ds.attrs.get("average_dark_current") is not None:
        # jwst's dark_current fills RampModel.average_dark_current with the scalar
        ny, nx = ds.sizes["y"], ds.sizes["x"]
        data = np.full((ny, nx), ds.attrs["average_dark_current"], dtype=np.float32)
        images.append(("AVDRKCUR", data, np.float32, None))
    hdus = images + _table_hdus(ds.attrs, ("group", "int_times"), path)
    primary = _primary_header(ds.attrs, path, MODEL_TYPES["ramp"])
    with atomic_path(path) as tmp:
        try:
            pending = _write_fits(tmp, primary, hdus)
        except OSError as exc:
            raise ProductWriteError(path, f"cannot write: {exc}") from exc
        if pending:
            sources, targets = zip(*pending, strict=True)
            da.store(list(sources), list(targets), lock=False, compute=True)
    return path


# --------------------------------------------------------------------------
# Binary tables (INT_TIMES, GROUP)
# --------------------------------------------------------------------------

# Table columns of the schemas (int_times.schema, group.schema).
_TABLE_DTYPES = {
    "int_times": [
        ("integration_number", "i4"),
        ("int_start_MJD_UTC", "f8"),
        ("int_mid_MJD_UTC", "f8"),
        ("int_end_MJD_UTC", "f8"),
        ("int_start_BJD_TDB", "f8"),
        ("int_mid_BJD_TDB", "f8"),
        ("int_end_BJD_TDB", "f8"),
    ],
    "group": [
        ("integration_number", "i4"),
        ("group_number", "i2"),
        ("end_day", "i2"),
        ("end_milliseconds", "i4"),
        ("end_submilliseconds", "i2"),
        ("group_end_time", "S26"),
        ("number_of_columns", "i2"),
        ("number_of_rows", "i2"),
        ("number_of_gaps", "i2"),
        ("completion_code_number", "i2"),
        ("completion_code_text", "S36"),
        ("bary_end_time", "f8"),
        ("helio_end_time", "f8"),
    ],
}


def _table_array(name, columns, path):
    """A structured array for ``columns`` ({column: list}), with the schema's dtypes."""
    columns = dict(columns)
    if not columns:
        return None
    known = dict(_TABLE_DTYPES.get(name, ()))
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise ProductContentError(path, f"table {name!r}: columns of different lengths")
    (nrows,) = lengths
    # stdatamodels needs every column of a schema table: missing ones are zero/empty
    order = [c for c, _ in _TABLE_DTYPES.get(name, ())]
    order += [c for c in columns if c not in order]
    fields = []
    values = {}
    for col in order:
        if col not in columns:
            fields.append((col, known[col]))
            continue
        raw = [plain_scalar(v) for v in columns[col]]
        if col in known:
            dtype = np.dtype(known[col])
        else:
            dtype = np.asarray(raw).dtype
            if dtype.kind == "U":
                dtype = np.dtype(f"S{max(dtype.itemsize // 4, 1)}")
            elif dtype.kind == "O":
                raise ProductContentError(path, f"table {name!r}: column {col!r} is not scalar")
        if dtype.kind == "S":
            raw = [("" if v is None else str(v)).encode("ascii", "replace") for v in raw]
        fields.append((col, dtype))
        values[col] = raw
    array = np.zeros(nrows, dtype=fields)
    for col, value in values.items():
        array[col] = value
    return array


def _table_hdus(attrs, names, path):
    hdus = []
    tables = attrs.get("tables") or {}
    for name in names:
        columns = tables.get(name)
        if columns:
            array = _table_array(name, columns, path)
            if array is not None:
                # the same HDU as BinTableHDU(data=array), whose constructor imports
                # astropy.table (~0.2 s) only to check whether the data are a Table
                hdu = fits.BinTableHDU(name=name.upper())
                hdu.data = array
                hdus.append(hdu)
    return hdus


# --------------------------------------------------------------------------
# The file layout, and the data regions Dask chunks fill
# --------------------------------------------------------------------------

# dtype -> (BITPIX, BZERO, stored big-endian dtype, sign-bit mask for the BZERO offset)
_FITS_TYPES = {
    np.dtype(np.uint8): (8, None, np.dtype(">u1"), None),
    np.dtype(np.int16): (16, None, np.dtype(">i2"), None),
    np.dtype(np.uint16): (16, 32768, np.dtype(">i2"), np.uint16(0x8000)),
    np.dtype(np.int32): (32, None, np.dtype(">i4"), None),
    np.dtype(np.uint32): (32, 2147483648, np.dtype(">i4"), np.uint32(0x80000000)),
    np.dtype(np.int64): (64, None, np.dtype(">i8"), None),
    np.dtype(np.float32): (-32, None, np.dtype(">f4"), None),
    np.dtype(np.float64): (-64, None, np.dtype(">f8"), None),
}


def _image_header(name, shape, dtype, extra=None):
    """The header of an IMAGE extension for an array of ``shape`` and ``dtype``."""
    bitpix, bzero, _, _ = _FITS_TYPES[np.dtype(dtype)]
    header = fits.Header()
    header["XTENSION"] = ("IMAGE", "Image extension")
    header["BITPIX"] = (bitpix, "array data type")
    header["NAXIS"] = (len(shape), "number of array dimensions")
    for i, n in enumerate(reversed(shape)):
        header[f"NAXIS{i + 1}"] = int(n)
    header["PCOUNT"] = (0, "number of parameters")
    header["GCOUNT"] = (1, "number of groups")
    if bzero is not None:
        header["BSCALE"] = 1
        header["BZERO"] = bzero
    header["EXTNAME"] = (name, "extension name")
    for card in extra.cards if extra is not None else ():
        header.append(card, end=True)
    return header


def _to_file_dtype(block, dtype):
    """``block`` cast to ``dtype`` and offset for FITS storage (unsigned -> BZERO)."""
    block = np.asarray(block).astype(dtype, copy=False)
    _, _, stored, mask = _FITS_TYPES[np.dtype(dtype)]
    if mask is not None:
        block = (block ^ mask).view(stored.newbyteorder("="))
    return block


class _FitsDataRegion:
    """A writable view of one HDU's data in a FITS file, for :func:`dask.array.store`.

    Picklable (path and offsets only): each assignment maps the region, writes
    the block and flushes, so workers of a distributed cluster can write too.
    """

    def __init__(self, path, offset, shape, dtype):
        self.path = str(path)
        self.offset = int(offset)
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)

    def _map(self, mode):
        stored = _FITS_TYPES[self.dtype][2]
        return np.memmap(self.path, dtype=stored, mode=mode, offset=self.offset, shape=self.shape)

    def __setitem__(self, key, value):
        if math.prod(self.shape) == 0:
            return
        mm = self._map("r+")
        try:
            mm[key] = _to_file_dtype(value, self.dtype)
            mm.flush()
        finally:
            del mm


def _write_fits(path, primary, hdus):
    """Write a FITS file at ``path`` (an already temporary name).

    Parameters
    ----------
    path : Path
        File to create.
    primary : astropy.io.fits.Header
        Cards of the primary header (structural cards are added here).
    hdus : list
        Each item is a :class:`~astropy.io.fits.BinTableHDU` (written as it is) or
        ``(name, array, dtype, header)`` for an IMAGE extension, where ``array`` is
        a NumPy or Dask array of any dtype (cast to ``dtype``).

    Returns
    -------
    list of (dask.array.Array, _FitsDataRegion)
        The Dask arrays still to store, with their regions of the file.
    """
    phdu = fits.PrimaryHDU()
    for card in primary.cards:  # in order, blank and commentary cards included
        phdu.header.append(card, end=True)
    pending = []
    with open(path, "wb") as f:
        f.write(phdu.header.tostring().encode("ascii"))
        for item in hdus:
            if isinstance(item, fits.BinTableHDU):
                buf = io.BytesIO()
                fits.HDUList([fits.PrimaryHDU(), item]).writeto(buf)
                with fits.open(io.BytesIO(buf.getvalue())) as check:
                    start = check.fileinfo(1)["hdrLoc"]
                f.write(buf.getvalue()[start:])
                continue
            name, array, dtype, extra = item
            dtype = np.dtype(dtype)
            header = _image_header(name, array.shape, dtype, extra)
            f.write(header.tostring().encode("ascii"))
            offset = f.tell()
            nbytes = math.prod(array.shape) * dtype.itemsize
            end = offset + padded_nbytes(nbytes)
            f.truncate(end)
            f.seek(end)
            region = _FitsDataRegion(path, offset, array.shape, dtype)
            if isinstance(array, da.Array):
                pending.append((array, region))
            elif nbytes:
                region[...] = np.asarray(array)
    return pending
