"""Product writers: JWST-format FITS (rate, rateints, fitopt, ramp) and Zarr.

The FITS products are written directly with astropy, in the layout that
``stdatamodels`` reads (``stdatamodels.jwst.datamodels.open`` returns an
``ImageModel``, ``CubeModel``, ``RampFitOutputModel`` or ``RampModel``):

* the primary header is the input's, card for card (``attrs["primary_header"]``),
  with ``DATAMODL``, ``FILENAME`` and ``DATE`` updated, the typed exposure
  keywords of :data:`detflow.contract.KEYWORDS` refreshed from ``attrs``, the
  ``S_*`` keyword of every step in ``attrs["cal_step"]`` and the ``R_*`` keyword
  of every reference file named in ``attrs["provenance"]``;
* the SCI header is the input's (``attrs["sci_header"]``: WCS and the like), with
  ``BUNIT`` set;
* no ASDF extension: stdatamodels then builds the model's metadata from the FITS
  keywords, so every keyword it knows is read and every other one is kept in
  ``extra_fits``.

Every file is written under a temporary name and renamed when complete
(:func:`detflow.io.atomic.atomic_path`). The small products (rate, rateints,
fitopt) compute all their arrays in one :func:`dask.compute` call before the
file is opened. A ramp product is laid out first (headers written, data space
allocated) and then filled chunk by chunk by one :func:`dask.array.store` call
writing into memory maps of the file, so no more than the chunks in flight is
ever held in memory; with a distributed cluster the workers must see the output
folder (a local cluster or a shared file system).
"""

import datetime
import io
import math
import os
import posixpath
import re
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import xarray as xr
from astropy.io import fits

from detflow.contract import INPUT_KEYWORD, KEYWORDS
from detflow.errors import (
    InputFileError,
    ParameterError,
    ProductContentError,
    ProductError,
    ProductWriteError,
)
from detflow.io.atomic import atomic_path
from detflow.io.exposure import cal_step_from_header, keyword_attrs
from detflow.io.fitsio import (
    FitsImage,
    FitsSource,
    header_to_dict,
    local_path,
    padded_nbytes,
    plain_scalar,
    read_hdus,
    read_table,
)
from detflow.registry import STEPS

__all__ = [
    "CAL_STEP_KEYWORDS",
    "ProductContentError",
    "ProductError",
    "ProductWriteError",
    "open_product",
    "dark_output_path",
    "product_path",
    "remove_suffix",
    "to_zarr",
    "write_dark",
    "write_fitopt",
    "write_ramp",
    "write_rate",
    "write_rateints",
]


# ProductError, ProductWriteError and ProductContentError live in detflow.errors
# and are re-exported here.

# --------------------------------------------------------------------------- keywords

#: detflow/jwst step name -> (attribute of ``meta.cal_step``, FITS keyword, title), from
#: :mod:`detflow.registry` (stdatamodels' ``core.schema.yaml``).
CAL_STEP_KEYWORDS = {name: (row.cal_step, row.keyword, row.title) for name, row in STEPS.items()}
# The schema's own attribute name is accepted as well (``dark_sub``).
_CAL_STEP_BY_NAME = dict(CAL_STEP_KEYWORDS)
_CAL_STEP_BY_NAME["dark_sub"] = CAL_STEP_KEYWORDS["dark_current"]
_CAL_STATUSES = ("COMPLETE", "SKIPPED", "FAILED")

#: Reference file type -> FITS keyword of ``meta.ref_file.<type>.name``.
REF_FILE_KEYWORDS = {
    "dark": "R_DARK",
    "emicorr": "R_MIREMI",
    "gain": "R_GAIN",
    "ipc": "R_IPC",
    "lastframe": "R_LASTFR",
    "linearity": "R_LINEAR",
    "mask": "R_MASK",
    "persat": "R_PERSAT",
    "readnoise": "R_READNO",
    "refpix": "R_REFPIX",
    "reset": "R_RESET",
    "rscd": "R_RSCD",
    "saturation": "R_SATURA",
    "sirskernel": "R_SIRSKL",
    "superbias": "R_SUPERB",
    "trapdensity": "R_TRPDEN",
    "trappars": "R_TRPPAR",
}

# Cards that describe an HDU's layout: never copied from an input header.
_STRUCTURAL = re.compile(
    r"^(SIMPLE|BITPIX|NAXIS\d*|EXTEND|XTENSION|PCOUNT|GCOUNT|BSCALE|BZERO|BLANK|"
    r"EXTNAME|EXTVER|EXTLEVEL|CHECKSUM|DATASUM|TFIELDS|THEAP|END|"
    r"(TTYPE|TFORM|TUNIT|TDIM|TNULL|TSCAL|TZERO|TDISP)\d+)$"
)
_COMMENTARY = ("COMMENT", "HISTORY", "")

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

# --------------------------------------------------------------------------- naming

# jwst.lib.suffix.KNOW_SUFFIXES (jwst 3.0.0): the suffixes jwst strips from a name.
_KNOWN_SUFFIXES = frozenset(
    """
    adaptive_trace_model adaptivetracemodelstep align_refs alignrefsstep ami ami-oi
    ami3pipeline ami_analyze ami_normalize amianalyzestep aminorm aminorm-oi
    aminormalizestep assign_mtwcs assign_wcs assignmtwcsstep assignwcsstep backgroundstep
    badpixselfcalstep barshadowstep bkg_subtract blot bsub bsubints c1d cal calints cat
    chargemigrationstep clean_flicker_noise cleanflickernoisestep combine1dstep combine_1d
    coron3pipeline crf crfints cube_build cubebuildstep dark dark_current darkcurrentstep
    darkpipeline detector1pipeline dq_init dqinitstep emicorr emicorrstep engdblog
    extract1dstep extract2dstep extract_1d extract_2d firstframe firstframestep flat_field
    flatfieldstep fringe fringestep gain_scale gainscalestep group_scale groupscalestep
    guider_cds guidercdsstep guiderpipeline hlsp hlspstep i2d image2pipeline image3pipeline
    imprint imprintstep ipc ipcstep jump jumpstep klip klipstep lastframe lastframestep
    linearity linearitystep master_background masterbackgroundmosstep masterbackgroundstep
    mbsub median msaflagopenstep outlier_detection outlierdetectionstep pathloss
    pathlossstep persistence persistencestep phot photom photomstep picture_frame
    pictureframestep pixelreplacestep psfalign psfstack psfsub ramp ramp_fit rampfitstep
    rate rateints refpix refpixstep resample resample_spec resamplespecstep resamplestep
    reset resetstep residual_fringe residualfringestep rscd rscdstep s2d s3d saturation
    saturationstep skymatch skymatchstep snr source_catalog sourcecatalogstep
    sourcetypestep spec2nrslamp spec2pipeline spec3pipeline spectral_leak
    spectralleakstep srctype stackrefs stackrefsstep straylight straylightstep superbias
    superbiasstep targ_centroid targcentroidstep tso3pipeline tsophotometrystep tweakreg
    tweakregstep uncal wavecorrstep wfscmb wfscombine wfscombinestep wfsscontamstep
    white_light whitelightstep whtlt x1d x1dints
    """.split()
)
_SUFFIX_RE = re.compile(
    r"^(?P<root>.+?)[_-](?:"
    + "|".join(re.escape(s) for s in sorted(_KNOWN_SUFFIXES, key=len, reverse=True))
    + r")$"
)
_EXTENSIONS = (".fits.gz", ".fits", ".fit", ".fts", ".asdf", ".zarr")


def remove_suffix(name):
    """Remove one known jwst suffix (``_uncal``, ``_ramp``, a step name...) from a root.

    Parameters
    ----------
    name : str
        A file name without its extension, e.g. ``jw01234001001_01101_00001_nrca1_uncal``.

    Returns
    -------
    str
        The name without its suffix, or ``name`` itself when it ends in none.
    """
    match = _SUFFIX_RE.match(name)
    return match.group("root") if match else name


def _input_name(source):
    """The input's file name (no folder) from a path, URL, Dataset or attrs."""
    if isinstance(source, xr.Dataset):
        source = source.attrs
    if isinstance(source, Mapping):
        name = source.get("filename")
        if not name:
            name = (source.get("primary_header") or {}).get("FILENAME")
            if isinstance(name, list | tuple):  # (value, comment)
                name = name[0]
        if not name:
            raise ParameterError(
                "cannot name the product: the attributes hold no 'filename' and the "
                "primary header no FILENAME"
            )
        source = name
    text = os.fspath(source)
    text = text.split("?", 1)[0].rstrip("/")
    return posixpath.basename(text.replace("\\", "/"))


def product_path(input_path_or_attrs, output_dir, suffix, *, ext=".fits"):
    """The path of a product, named as jwst names it.

    The extension and one known suffix are removed from the input's base name and
    ``_<suffix><ext>`` is appended:
    ``jw01234001001_01101_00001_nrca1_uncal.fits`` -> ``..._nrca1_rate.fits``.

    Parameters
    ----------
    input_path_or_attrs : str, Path, Mapping or xarray.Dataset
        The input's path or URL, or an exposure's attributes (``filename`` or the
        primary header's ``FILENAME``), or the Dataset itself.
    output_dir : str or Path or None
        Folder of the product; ``None``: the input's folder (for a path input) or
        the current folder.
    suffix : str
        Product suffix without underscore (``rate``, ``rateints``, ``fitopt``, ``jump``...).
    ext : str
        Extension of the product (``.fits``, or ``.zarr`` for a Zarr store).

    Returns
    -------
    pathlib.Path
    """
    name = _input_name(input_path_or_attrs)
    lower = name.lower()
    for known in _EXTENSIONS:
        if lower.endswith(known):
            name = name[: -len(known)]
            break
    root = remove_suffix(name)
    suffix = str(suffix).lstrip("_")
    if output_dir is None:
        is_path = isinstance(input_path_or_attrs, str | os.PathLike)
        if is_path and "://" not in os.fspath(input_path_or_attrs):
            output_dir = Path(input_path_or_attrs).parent
        else:
            output_dir = Path.cwd()
    return Path(output_dir) / f"{root}_{suffix}{ext}"


def dark_output_path(dark_output, output_dir=None):
    """Where jwst writes dark_current's ``dark_output``: stpipe's ``make_output_path``
    with no suffix -- the file name of ``dark_output`` (its folder is dropped), ``.fits``
    in place of its extension, in ``output_dir`` (the current folder when None)."""
    stem = Path(str(dark_output)).stem
    return Path(output_dir or "") / f"{stem}.fits"


def _resolve_output(ds, path, suffix):
    """``path`` itself, or the product name inside ``path`` when it is a folder."""
    path = Path(path)
    if path.is_dir() and path.suffix.lower() not in (".fits", ".fit"):
        return product_path(ds.attrs, path, suffix)
    return path


def _check_writable(path, *, directory=False):
    """Fail early (before any computing) when ``path`` cannot be created."""
    path = Path(path)
    parent = path.parent
    probe = parent
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise ProductWriteError(path, f"{probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ProductWriteError(path, f"folder {probe} is not writable")
    if path.is_dir() and not directory:
        raise ProductWriteError(path, "a folder exists under the product's name")


# --------------------------------------------------------------------------- headers


def _cards_from(header_like):
    """Yield ``(keyword, value, comment)`` from a header dict or astropy Header.

    A dict maps keyword -> value, or keyword -> ``[value, comment]``; ``COMMENT``
    and ``HISTORY`` may map to a string or a list of strings.
    """
    if header_like is None:
        return
    if isinstance(header_like, fits.Header):
        for card in header_like.cards:
            yield card.keyword, card.value, card.comment
        return
    for key, value in dict(header_like).items():
        key = str(key)
        if key.upper() in _COMMENTARY:
            values = value if isinstance(value, list | tuple) else [value]
            for item in values:
                yield key.upper(), "" if item is None else str(item), ""
            continue
        comment = ""
        if isinstance(value, list | tuple):
            if len(value) == 2 and isinstance(value[1], str):
                value, comment = value
            else:
                continue  # no FITS value is a list
        if isinstance(value, Mapping):
            continue
        yield key, value, comment


def _fits_card(key, value, comment=""):
    """An astropy Card, or None when the value cannot be a FITS value."""
    value = plain_scalar(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is not None and not isinstance(value, str | bool | int | float):
        return None
    if key.upper() in _COMMENTARY:
        value = "" if value is None else str(value)
    try:
        card = fits.Card(key, value, "")
        card.image  # noqa: B018  (formats the card: raises for unwritable values)
        if comment and key.upper() not in _COMMENTARY:
            # keep the comment only as far as it fits on the card (no truncation warning)
            room = 80 - len(card.image.rstrip()) - 3
            if room > 0:
                card = fits.Card(key, value, str(comment)[:room])
    except (ValueError, TypeError, fits.VerifyError):
        return None
    return card


def _header_from(header_like):
    """An astropy Header with the non-structural cards of ``header_like``."""
    header = fits.Header()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        for key, value, comment in _cards_from(header_like):
            upper = key.upper()
            if _STRUCTURAL.match(upper):
                continue
            card = _fits_card(key, value, comment)
            if card is None:
                continue
            if upper in _COMMENTARY:
                header.append(card, end=True)
            elif upper in header:
                header[upper] = (card.value, card.comment or header.comments[upper])
            else:
                header.append(card, end=True)
    return header


def _set(header, key, value, comment=None):
    """Set one keyword, keeping its position and comment when it exists (the comment
    cut to what fits on the card with the new value)."""
    if comment is None and key in header:
        comment = header.comments[key]
    card = _fits_card(key, value, comment or "")
    if card is None:
        return
    header[key] = (card.value, card.comment)


def _cal_step_status(value):
    if isinstance(value, Mapping):
        value = value.get("status")
    return str(plain_scalar(value)).upper() if value is not None else None


def _exposure_file(source):
    """The exposure's file (``attrs["source"]``) as an absolute path or a URL, or None."""
    if not isinstance(source, str | os.PathLike):
        return None
    source = os.fspath(source)
    local = local_path(source)  # (the package's one rule: detflow.io.fitsio.is_remote)
    return source if local is None else os.path.abspath(local)


def _primary_header(attrs, path, model_type):
    """The product's primary header: the input's, updated for the product."""
    header = _header_from(attrs.get("primary_header"))
    _set(
        header,
        "DATE",
        datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3],
        "UTC date file created",
    )
    _set(header, "FILENAME", Path(path).name, "Name of the file")
    _set(header, "DATAMODL", model_type, "Type of data model")
    if INPUT_KEYWORD not in header:  # kept from an input product: the chain's first file
        source = _exposure_file(attrs.get("source"))
        if source:
            _set(header, INPUT_KEYWORD, source, "detflow: exposure file calibrated")
    for name, (keyword, where, kind) in KEYWORDS.items():
        if where != "primary" or attrs.get(name) is None:
            continue
        value = plain_scalar(attrs[name])
        try:
            value = kind(value)
        except (TypeError, ValueError):
            continue
        _set(header, keyword, value)
    for step, value in (attrs.get("cal_step") or {}).items():
        known = _CAL_STEP_BY_NAME.get(str(step))
        status = _cal_step_status(value)
        if known is None or status not in _CAL_STATUSES:
            continue  # a detflow-only step: recorded in provenance only
        _, keyword, title = known
        _set(header, keyword, status, title)
    reasons = _reference_reasons(attrs.get("provenance"))
    history = {}
    for reftype, name in _reference_files(attrs.get("provenance")):
        keyword = REF_FILE_KEYWORDS.get(reftype.lower())
        if keyword is not None and name:
            _set(header, keyword, str(name), f"{reftype.upper()} reference file name")
            history[keyword] = reasons.get(reftype.lower())
    _reference_history(header, history)
    return header


def _reference_reasons(provenance):
    """reftype (lower case) -> why the file the provenance names last for it was chosen
    (``reference_reasons`` of the same entry; None where it has none)."""
    out = {}
    for entry in provenance or ():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("reference_files"),
                                                            Mapping):
            continue
        why = entry.get("reference_reasons")
        why = why if isinstance(why, Mapping) else {}
        for reftype in entry["reference_files"]:
            reason = why.get(reftype)
            out[str(reftype).lower()] = str(reason) if reason else None
    return out


def _reference_history(header, reasons):
    """Why each reference file was chosen, as ``HISTORY R_DARK: <reason>`` cards (the
    reason wrapped to whole cards, each line prefixed with its keyword). The lines an
    input product carried for these keywords are replaced."""
    import textwrap

    reasons = {k: v for k, v in reasons.items() if v}
    if not reasons:
        return
    prefixes = tuple(f"{keyword}: " for keyword in reasons)
    stale = [i for i, card in enumerate(header.cards)
             if card.keyword == "HISTORY" and str(card.value).startswith(prefixes)]
    for i in reversed(stale):
        del header[i]
    for keyword, reason in reasons.items():
        text = " ".join(str(reason).split()).encode("ascii", "replace").decode("ascii")
        for line in textwrap.wrap(text, width=72 - len(keyword) - 2):
            header.add_history(f"{keyword}: {line}")


def _reference_files(provenance):
    """``(reftype, name)`` pairs from the provenance entries that name reference files."""
    for entry in provenance or ():
        if not isinstance(entry, Mapping):
            continue
        for key in ("reference_files", "reffiles", "reference_file", "ref_files"):
            refs = entry.get(key)
            if isinstance(refs, Mapping):
                for reftype, name in refs.items():
                    if isinstance(name, Mapping):
                        name = name.get("name") or name.get("path")
                    if isinstance(name, str | os.PathLike):
                        yield str(reftype), os.fspath(name)


def _sci_header(attrs, bunit):
    header = _header_from(attrs.get("sci_header"))
    _set(header, "BUNIT", bunit, "physical units of the array values")
    return header


# --------------------------------------------------------------------------- tables


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


# --------------------------------------------------------------------------- FITS layout

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


# --------------------------------------------------------------------------- datasets


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


def _unit_header(bunit):
    header = fits.Header()
    header["BUNIT"] = (bunit, "physical units of the array values")
    return header


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
    return _finish_small(path, ds, "ImageModel", arrays, ())


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
    return _finish_small(path, ds, "CubeModel", arrays, ("int_times",))


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
    return _finish_small(path, ds, "RampFitOutputModel", arrays, ())


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
    primary = _primary_header(ds.attrs, path, "RampModel")
    with atomic_path(path) as tmp:
        try:
            pending = _write_fits(tmp, primary, hdus)
        except OSError as exc:
            raise ProductWriteError(path, f"cannot write: {exc}") from exc
        if pending:
            sources, targets = zip(*pending, strict=True)
            da.store(list(sources), list(targets), lock=False, compute=True)
    return path


# --------------------------------------------------------------------------- Zarr


def _jsonable(value):
    """``value`` with numpy types, tuples, paths and bytes made plain JSON.

    For any attribute on its way to Zarr: strings are kept as they are and
    anything unknown becomes its ``str``. Values read from FITS go through
    :func:`detflow.io.fitsio.json_value` instead (FITS rules: trailing blanks
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


# --------------------------------------------------------------------------- reading


_MODEL_DIMS = {
    "RampModel": {
        "SCI": ("integration", "group", "y", "x"),
        "GROUPDQ": ("integration", "group", "y", "x"),
        "REFOUT": ("integration", "group", "refout_y", "refout_x"),
    },
    "RampFitOutputModel": {
        "CRMAG": ("integration", "cr", "y", "x"),
        "PEDESTAL": ("integration", "y", "x"),
    },
}
_MODEL_DIMS["Level1bModel"] = _MODEL_DIMS["RampModel"]
_NDIM_DIMS = {
    2: ("y", "x"),
    3: ("integration", "y", "x"),
    4: ("integration", "segment", "y", "x"),
}
# ``meta.cal_step`` attribute (as cal_step_from_header names steps) -> detflow step name
_STEP_BY_SCHEMA_NAME = {attr: step for step, (attr, _, _) in CAL_STEP_KEYWORDS.items()}


def _header_dict(header):
    """A FITS header as ``{keyword: value}`` without structural or commentary cards."""
    return {
        key: value
        for key, value in header_to_dict(header).items()
        if key not in _COMMENTARY and not _STRUCTURAL.match(key)
    }


def _model_type(primary, hdus):
    """``DATAMODL``, or the model type guessed from the extensions."""
    model = primary.get("DATAMODL")
    if model is not None:
        return model
    sci = next((h for h in hdus if h.name == "SCI"), None)
    ndim = int(sci.header.get("NAXIS", 0)) if sci is not None else 0
    if any(h.name == "SLOPE" for h in hdus):
        return "RampFitOutputModel"
    return {2: "ImageModel", 3: "CubeModel", 4: "RampModel"}.get(ndim)


def _open_fits_product(path, chunks):
    from dask.base import tokenize

    path = Path(path)
    try:
        source = FitsSource(os.fspath(path)).sniff()  # a .fits.gz is read as a stream
        reader = source.reader()
    except InputFileError as exc:
        raise InputFileError(path, f"not a readable FITS product ({exc.problem})") from exc
    with reader:
        try:
            hdus = read_hdus(source, reader)
        except InputFileError as exc:
            raise InputFileError(path, f"not a readable FITS product ({exc.problem})") from exc
        stamp = reader.stamp()
        primary = hdus[0].header
        exts = [h for h in hdus[1:] if h.name != "ASDF"]
        sci_hdu = next((h for h in exts if h.name == "SCI"), None)
        sci_header = sci_hdu.header if sci_hdu is not None else fits.Header()
        model = _model_type(primary, exts)
        variables = {}
        tables = {}
        for hdu in exts:
            if hdu.is_compressed_image:
                raise InputFileError(path, "compressed images are not supported")
            if hdu.xtension == "BINTABLE":
                tables[hdu.name.lower()] = read_table(source, hdu, reader)
                continue
            if hdu.xtension != "IMAGE" or not hdu.shape:
                continue
            image = FitsImage(source, hdu.image_layout(), hdu_name=hdu.name, stamp=stamp)
            shape = image.shape
            dims = _MODEL_DIMS.get(model, {}).get(hdu.name) or _NDIM_DIMS.get(len(shape))
            if dims is None or len(dims) != len(shape):
                dims = tuple(f"{hdu.name.lower()}_{k}" for k in range(len(shape)))
            name = "data" if hdu.name == "SCI" else hdu.name.lower()
            if chunks is None:
                chunk = tuple(1 if d == "integration" else -1 for d in dims)
            else:
                chunk = chunks
            array = image.to_dask(chunk, f"detflow-fits-{name}-{tokenize(image, chunk)}")
            variables[name] = xr.Variable(dims, array)
    primary_dict = _header_dict(primary)
    sci_dict = _header_dict(sci_header)
    attrs = keyword_attrs(primary, sci_header, os.fspath(path))
    attrs["primary_header"] = primary_dict
    attrs["sci_header"] = sci_dict
    attrs["tables"] = tables
    found = cal_step_from_header(primary)
    attrs["cal_step"] = {
        step: found[attr] for attr, step in _STEP_BY_SCHEMA_NAME.items() if attr in found
    }
    attrs["provenance"] = []
    ds = xr.Dataset(variables, attrs=attrs)
    coords = {}
    if "y" in ds.dims:
        coords["y"] = int(attrs.get("substrt2", 1)) - 1 + np.arange(ds.sizes["y"])
    if "x" in ds.dims:
        coords["x"] = int(attrs.get("substrt1", 1)) - 1 + np.arange(ds.sizes["x"])
    if "integration" in ds.dims:
        coords["integration"] = (
            int(attrs.get("intstart", 1)) - 1 + np.arange(ds.sizes["integration"])
        )
    if "group" in ds.dims:
        coords["group"] = np.arange(ds.sizes["group"])
    return ds.assign_coords(coords)


def open_product(path, chunks=None):
    """Open a Zarr store or a product FITS file lazily as a Dataset.

    Parameters
    ----------
    path : str or Path
        A Zarr store written by :func:`to_zarr`, or a FITS product (rate,
        rateints, fitopt, ramp; any uncompressed JWST image product).
    chunks : dict or tuple, optional
        Dask chunks. Default: the store's chunks (Zarr), one integration per
        chunk (FITS).

    Returns
    -------
    xarray.Dataset
        Dask-backed. From FITS: variables named as the writers expect them
        (``data, err, dq, var_poisson, var_rnoise``; ``data, pixeldq, groupdq,
        zeroframe, refout`` for a ramp; lower-case extension names otherwise),
        coordinates ``y``/``x``/``integration``/``group`` as in
        :mod:`detflow.contract`, and attributes ``primary_header``,
        ``sci_header``, the typed keywords, ``tables``, ``cal_step``.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "no such file or store")
    if path.is_dir():
        try:
            return xr.open_zarr(
                path,
                consolidated=False,
                chunks=chunks if chunks is not None else {},
            )
        except (ValueError, KeyError, OSError) as exc:
            raise InputFileError(path, f"not a readable Zarr v3 store ({exc})") from exc
    return _open_fits_product(path, chunks)
