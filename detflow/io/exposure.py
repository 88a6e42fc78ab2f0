"""Open a raw (``*_uncal.fits``) or ramp (``*_ramp.fits``) exposure as a lazy Dataset.

:func:`open_exposure` parses the FITS headers (no pixel is read), checks that
the file is a complete JWST level-1b or ramp product, and returns an
:class:`xarray.Dataset` following :mod:`detflow.contract` whose variables are
Dask arrays: one read task per tile, each reading only its own section of the
file when it runs (see :mod:`detflow.io.fits`). Default tiles are
amplifier-aligned (:func:`detflow.io.chunks.default_chunks`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

import numpy as np

from detflow.contract import DIMS, FULL_FRAME_SHAPE
from detflow.errors import InputFileError
from detflow.io.chunks import resolve_chunks
from detflow.io.files import KeptByFile
from detflow.io.fits import (
    FitsImage,
    FitsSource,
    find_hdu,
    read_hdus,
    read_primary_header,
    read_table,
)
from detflow.io.keywords import (
    REFOUT_X,
    REFOUT_Y,
    REQUIRED_KEYWORDS,
    TABLES,
    add_header_attrs,
    detector_coords,
    dimensions_from_data,
    keyword_attrs,
    subarray_corner,
)
from detflow.io.values import typed_value

__all__ = [
    "ExposureLayout",
    "VariableSpec",
    "detector_and_start",
    "inspect_exposure",
    "layout_chunks",
    "open_exposure",
    "open_exposure_lines",
]

# --------------------------------------------------------------------------
# the layout of an exposure file
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class VariableSpec:
    """One variable of the Dataset: dims, shape, dtype and where its pixels are.

    ``image`` is ``None`` for a variable the file lacks (zeros, e.g. ``groupdq``
    of a raw file).
    """

    name: str
    dims: tuple
    shape: tuple
    dtype: np.dtype
    image: FitsImage | None = None


@dataclass(frozen=True)
class ExposureLayout:
    """Everything :func:`open_exposure` knows after reading the headers.

    Attributes
    ----------
    source : FitsSource
    variables : tuple of VariableSpec
        ``data``, ``groupdq``, ``pixeldq``, then ``zeroframe`` and ``refout``
        when the file has them.
    coords : dict
        ``integration``, ``group``, ``y``, ``x`` -> 1-D int64 arrays.
    attrs : dict
        The Dataset attributes (JSON-friendly).
    sizes : dict
        Dimension name -> length.
    """

    source: FitsSource
    variables: tuple
    coords: dict = field(repr=False)
    attrs: dict = field(repr=False)
    sizes: dict

    @property
    def shape(self):
        """``(nints, ngroups, ny, nx)`` of ``data``."""
        return tuple(self.sizes[d] for d in DIMS)


def _image(source, hdu, cast, stamp):
    if not hdu.is_image:
        raise InputFileError(source.url, f"extension {hdu.name} is not an image HDU")
    layout = hdu.image_layout()
    return FitsImage(source=source, layout=layout, cast=cast, hdu_name=hdu.name, stamp=stamp)


def inspect_exposure(path_or_url, storage_options=None):
    """Read and check the headers of a raw or ramp exposure; no pixel is read.

    Parameters
    ----------
    path_or_url : str or os.PathLike
        Local path or fsspec URL.
    storage_options : dict, optional
        fsspec options for URLs.

    Returns
    -------
    ExposureLayout

    Raises
    ------
    InputFileError
        Missing, truncated, non-FITS, or not a JWST raw/ramp exposure.
    """
    source = FitsSource(path_or_url, storage_options or {})
    # (kept only for a plain local file: its stamp is its size and mtime)
    key = KeptByFile.identity(source.url) if not storage_options else None
    cached = _LAYOUTS.get(key) if key is not None else None
    if cached is not None:  # attrs copied: a caller may change its Dataset's attrs
        return replace(cached, attrs=copy.deepcopy(cached.attrs),
                       coords={k: v.copy() for k, v in cached.coords.items()})
    with source.reader() as reader:
        hdus = read_hdus(source, reader)
        stamp = reader.stamp()
        layout = _layout(source, hdus, stamp, reader)
    if key is not None and key[1:] == stamp:
        _LAYOUTS.put(key, replace(layout, attrs=copy.deepcopy(layout.attrs)))
    return layout


#: Layouts of the last local files inspected: building an exposure's graph opens its
#: file several times (the tiles, refpix's reference lines).
_LAYOUTS = KeptByFile(8)


def detector_and_start(path_or_url, storage_options=None):
    """``(DETECTOR, EXPSTART)`` of an exposure, from its primary header alone (a program
    orders the exposures of each detector by start time with it).

    Returns
    -------
    (str or None, float or None)
        The detector name (upper case) and the start time (MJD); None where the keyword
        is missing or undefined.

    Raises
    ------
    InputFileError
        Missing, truncated or non-FITS file, or an EXPSTART that is not a number.
    """
    source = FitsSource(path_or_url, storage_options or {}).sniff()
    primary = read_primary_header(source)
    detector = typed_value(primary.get("DETECTOR"), str)
    detector = detector.upper() if detector else None
    start = primary.get("EXPSTART")
    try:
        start = typed_value(start, float)
    except (TypeError, ValueError):
        raise InputFileError(
            source.url, f"keyword EXPSTART = {start!r} is not a valid float") from None
    return detector, start


def _layout(source, hdus, stamp, reader):
    url = source.url
    primary = hdus[0].header
    sci_hdu = find_hdu(hdus, "SCI")
    if sci_hdu is None:
        names = [h.name or str(h.index) for h in hdus]
        raise InputFileError(
            url, f"not a JWST raw or ramp exposure: no SCI extension (HDUs: {names})"
        )
    if not sci_hdu.is_image:
        raise InputFileError(url, "not a JWST raw or ramp exposure: SCI is not an image")
    shape = sci_hdu.shape
    if len(shape) != 4:
        raise InputFileError(
            url,
            f"not a JWST raw or ramp exposure: SCI has {len(shape)} dimensions {shape}, "
            "expected 4 (integration, group, y, x)",
        )
    if 0 in shape:
        raise InputFileError(url, f"SCI is empty (shape {shape})")
    missing = [k for k in REQUIRED_KEYWORDS if k not in primary]
    if missing:
        raise InputFileError(
            url, f"not a JWST raw or ramp exposure: primary header lacks {', '.join(missing)}"
        )
    instrument = str(primary["INSTRUME"]).strip().upper()
    if instrument not in FULL_FRAME_SHAPE:
        raise InputFileError(
            url,
            f"INSTRUME = {instrument!r} is not a JWST detector instrument "
            f"({', '.join(FULL_FRAME_SHAPE)})",
        )
    sci_header = sci_hdu.header
    attrs = keyword_attrs(primary, sci_header, url)

    nints, ngroups, ny, nx = shape
    dimensions_from_data(attrs, shape, url)
    data = _image(source, sci_hdu, None, stamp)
    if data.dtype not in (np.dtype("uint16"), np.dtype("float32")):
        data = FitsImage(source, data.layout, np.dtype("float32"), "SCI", stamp)
    variables = [VariableSpec("data", DIMS, shape, data.dtype, data)]

    def optional(name, dims, want_shape, cast):
        hdu = find_hdu(hdus, name)
        if hdu is None:
            return None
        if hdu.shape != want_shape:
            raise InputFileError(
                url, f"{name} has shape {hdu.shape}, expected {want_shape} to match SCI {shape}"
            )
        image = _image(source, hdu, cast, stamp)
        return VariableSpec(name.lower(), dims, want_shape, image.dtype, image)

    u8, u32 = np.dtype("uint8"), np.dtype("uint32")
    groupdq = optional("GROUPDQ", DIMS, shape, u8)
    variables.append(groupdq or VariableSpec("groupdq", DIMS, shape, u8))
    pixeldq = optional("PIXELDQ", ("y", "x"), (ny, nx), u32)
    variables.append(pixeldq or VariableSpec("pixeldq", ("y", "x"), (ny, nx), u32))
    zeroframe = optional("ZEROFRAME", ("integration", "y", "x"), (nints, ny, nx), None)
    if zeroframe is not None:
        variables.append(zeroframe)
    avdrkcur = optional("AVDRKCUR", ("y", "x"), (ny, nx), np.dtype("float32"))
    if avdrkcur is not None:  # a ramp product's average dark current (RampModel)
        variables.append(VariableSpec("average_dark_current", avdrkcur.dims, avdrkcur.shape,
                                      avdrkcur.dtype, avdrkcur.image))
    sizes = dict(zip(DIMS, shape, strict=True))
    refout_hdu = find_hdu(hdus, "REFOUT")
    if refout_hdu is not None:
        # MIRI's reference output: (nints, ngroups, ny/4, nx) in level-1b files, a layout of
        # its own that does not share the pixel coordinates
        rshape = refout_hdu.shape
        if len(rshape) != 4 or rshape[:2] != (nints, ngroups):
            raise InputFileError(
                url, f"REFOUT has shape {rshape}, expected ({nints}, {ngroups}, rows, columns)"
            )
        image = _image(source, refout_hdu, None, stamp)
        dims = ("integration", "group", REFOUT_Y, REFOUT_X)
        variables.append(VariableSpec("refout", dims, rshape, image.dtype, image))
        sizes[REFOUT_Y] = rshape[2]
        sizes[REFOUT_X] = rshape[3]

    tables = {}
    for extname, key in TABLES.items():
        hdu = find_hdu(hdus, extname)
        if hdu is not None and hdu.xtension in ("BINTABLE", "TABLE"):
            tables[key] = read_table(source, hdu, reader)

    x0, y0 = subarray_corner(attrs, (ny, nx), url)
    coords = detector_coords(dict(zip(DIMS, shape, strict=True)), x0, y0,
                             attrs.get("intstart", 1))
    datamodel = primary.get("DATAMODL")
    add_header_attrs(attrs, primary, sci_header, tables, url,
                     None if datamodel is None else str(datamodel).strip())
    return ExposureLayout(
        source=source, variables=tuple(variables), coords=coords, attrs=attrs, sizes=sizes
    )


# --------------------------------------------------------------------------
# the Dataset
# --------------------------------------------------------------------------


def _dask_variable(spec, chunks):
    import dask.array as da
    from dask.base import tokenize

    if spec.image is None:
        return da.zeros(spec.shape, dtype=spec.dtype, chunks=chunks)
    return spec.image.to_dask(chunks, f"detflow-read-{spec.name}-{tokenize(spec.image, chunks)}")


def layout_chunks(layout, chunks=None, tiling=None):
    """Chunk sizes per dimension of an exposure (its :class:`ExposureLayout`): the
    default tiles, or the user's ``chunks`` (see :func:`detflow.io.chunks.resolve_chunks`).
    The one rule :func:`open_exposure` and the xarray backend's preferred chunks share."""
    extra = {d: n for d, n in layout.sizes.items() if d not in DIMS}
    return resolve_chunks(chunks, layout.attrs, layout.shape, extra_dims=extra, tiling=tiling)


def open_exposure(path_or_url, chunks=None, storage_options=None, *, tiling=None):
    """Open a raw or ramp exposure as a lazy, chunked :class:`xarray.Dataset`.

    Nothing is computed and no pixel is read: every variable is a Dask array
    whose tasks each read their own tile from the file (by path or URL, so the
    graph runs on threads, processes or a distributed cluster).

    Parameters
    ----------
    path_or_url : str or os.PathLike
        A ``*_uncal.fits`` (level-1b, ``uint16``) or ``*_ramp.fits`` (RampModel,
        ``float32``) file: local path, ``file://`` or any fsspec URL
        (``memory://``, ``http(s)://``, ``s3://``, ...).
    chunks : None, "auto" or dict, optional
        ``None``/``"auto"``/``{}``: amplifier-aligned default tiles (one
        integration, all groups; :func:`detflow.io.chunks.default_chunks`).
        A dict by dimension name (int, ``-1``, or tuple of sizes) overrides
        some dimensions.
    storage_options : dict, optional
        Passed to fsspec for URLs (credentials, ``block_size``, ...).
    tiling : detflow.tiling.Tiling, optional
        The run's tile sizes (default tiles; see :func:`detflow.io.chunks.default_chunks`).

    Returns
    -------
    xarray.Dataset
        Dimensions ``(integration, group, y, x)`` with

        * ``data`` ``(nints, ngroups, ny, nx)``: ``uint16`` (raw) or ``float32`` (ramp);
        * ``groupdq`` ``(nints, ngroups, ny, nx)`` ``uint8`` (zeros if the file has none);
        * ``pixeldq`` ``(ny, nx)`` ``uint32`` (zeros if the file has none);
        * ``zeroframe`` ``(nints, ny, nx)`` when the file has a ZEROFRAME;
        * ``average_dark_current`` ``(ny, nx)`` ``float32`` when the file (a ramp
          product after dark_current) has an AVDRKCUR extension;
        * ``refout`` ``(nints, ngroups, refout_y, refout_x)`` when the file has a REFOUT;

        coordinates ``integration`` (``INTSTART - 1 + i``), ``group``, and
        full-frame 0-based ``y``/``x``; attributes as :mod:`detflow.contract`
        describes (keywords, ``primary_header``, ``sci_header``, ``tables``,
        ``cal_step``, ``provenance``, ``source``, ``datamodel``).

    Raises
    ------
    InputFileError
        The file is missing, truncated, not FITS, or not a JWST raw/ramp exposure.
    ParameterError
        Invalid ``chunks``.
    """
    import xarray as xr

    layout = inspect_exposure(path_or_url, storage_options)
    dim_chunks = layout_chunks(layout, chunks, tiling)
    data_vars = {}
    for spec in layout.variables:
        var_chunks = tuple(dim_chunks[d] for d in spec.dims)
        data_vars[spec.name] = (spec.dims, _dask_variable(spec, var_chunks))
    return xr.Dataset(data_vars, coords=layout.coords, attrs=layout.attrs)


def _runs(index):
    """Boundaries splitting ``0..max(index)`` so every contiguous run of the sorted
    ``index`` is a chunk of its own: chunk sizes along an axis of length ``n``."""
    bounds = {0}
    for i in index:
        if i - 1 not in index:
            bounds.add(i)
        if i + 1 not in index:
            bounds.add(i + 1)
    return bounds


def open_exposure_lines(ds, dim, index):
    """The lines ``index`` (positions along ``dim``, ``"y"`` or ``"x"``) of an exposure
    opened by :func:`open_exposure`, with read tasks of their own.

    Each task reads only its lines from the file, so what is computed from them neither
    waits for nor holds the tiles of ``ds`` (refpix's statistics read only the reference
    lines; :func:`detflow.steps.refpix.line_positions`).

    Parameters
    ----------
    ds : xarray.Dataset
        The exposure, exactly as :func:`open_exposure` returned it (any chunks).
    dim : str
        ``"y"`` or ``"x"``.
    index : sequence of int
        Positions along ``dim``.

    Returns
    -------
    xarray.Dataset or None
        ``data``, ``groupdq`` and ``pixeldq`` of ``ds`` at those lines (same values,
        coordinates and attrs); None when ``ds`` is not, variable for variable, the
        file's current content (an exposure built in memory or changed since it was
        opened, a file rewritten since, a remote file that cannot be opened again),
        in which case the lines can only be cut from the tiles of ``ds``.
    """
    source = ds.attrs.get("source")
    names = ("data", "groupdq", "pixeldq")
    if not source or dim not in ("y", "x") or any(n not in ds for n in names):
        return None
    if any(not hasattr(ds[n].data, "dask") for n in names):
        return None
    try:
        tiles = dict(ds.chunks)
        same = open_exposure(source, chunks=tiles)
    except Exception:  # the file moved, changed or cannot be reached: cut from the tiles
        return None
    if any(n not in same or same[n].data.name != ds[n].data.name for n in names):
        return None
    index = np.unique(np.asarray(index, dtype=np.int64))
    n = ds.sizes[dim]
    if index.size == 0 or index[0] < 0 or index[-1] >= n:
        return None
    bounds = sorted(_runs(set(index.tolist())) | {n})
    chunks = dict(tiles)
    chunks[dim] = tuple(np.diff(bounds).tolist())
    lines = open_exposure(source, chunks=chunks)[list(names)].isel({dim: index})
    for name in names:  # the graph of only the chunks the lines are in
        lines[name] = lines[name].copy(data=_culled(lines[name].data))
    lines.attrs = dict(ds.attrs)
    return lines


def _culled(arr):
    """``arr`` with a graph of only the tasks its own chunks need."""
    import dask.array as da
    from dask.core import flatten
    from dask.highlevelgraph import HighLevelGraph
    from dask.optimization import cull

    tasks, _ = cull(dict(arr.__dask_graph__()), list(flatten(arr.__dask_keys__())))
    graph = HighLevelGraph.from_collections(arr.name, tasks, dependencies=())
    return da.Array(graph, arr.name, arr.chunks, meta=arr._meta)
