"""What an exposure's headers say: the keywords detector1 reads as ``attrs``
(:mod:`detflow.contract`), checked against the data (dimensions, subarray corner), the
full-frame coordinates, and the ``cal_step`` statuses; shared by the exposure reader
(:mod:`detflow.io.exposure`), the product reader and the datamodel conversions.
"""

from __future__ import annotations

import numpy as np

from detflow.contract import FULL_FRAME_SHAPE, KEYWORDS
from detflow.errors import InputFileError
from detflow.io.values import header_to_dict, typed_value

__all__ = [
    "REFOUT_X",
    "REFOUT_Y",
    "REQUIRED_KEYWORDS",
    "STEP_KEYWORDS",
    "TABLES",
    "add_header_attrs",
    "cal_step_from_header",
    "detector_coords",
    "dimensions_from_data",
    "keyword_attrs",
    "subarray_corner",
]


#: Dimensions of the reference output (``refout`` has a layout of its own, e.g. MIRI's
#: ``(nints, ngroups, 256, 1032)`` beside a ``(nints, ngroups, 1024, 1032)`` SCI).
REFOUT_Y = "refout_y"
REFOUT_X = "refout_x"

#: ``S_*`` FITS keyword -> ``cal_step`` name, as in stdatamodels' ``core.schema.yaml``
#: (``meta.cal_step``). Note ``S_DARK`` is ``dark_sub`` there (the step is ``dark_current``).
STEP_KEYWORDS = {
    "S_TRCMOD": "adaptive_trace_model",
    "S_PSFALI": "align_psfs",
    "S_AMIANA": "ami_analyze",
    "S_AMINOR": "ami_normalize",
    "S_WCS": "assign_wcs",
    "S_MTWCS": "assign_mtwcs",
    "S_BKDSUB": "bkg_subtract",
    "S_BPXSLF": "badpix_selfcal",
    "S_BARSHA": "barshadow",
    "S_CHGMIG": "charge_migration",
    "S_CLNFNS": "clean_flicker_noise",
    "S_COMB1D": "combine_1d",
    "S_IFUCUB": "cube_build",
    "S_DARK": "dark_sub",
    "S_DQINIT": "dq_init",
    "S_MIREMI": "emicorr",
    "S_TELEMI": "emission",
    "S_ERRINI": "err_init",
    "S_EXTR1D": "extract_1d",
    "S_EXTR2D": "extract_2d",
    "S_FRSTFR": "firstframe",
    "S_FLAT": "flat_field",
    "S_FRINGE": "fringe",
    "S_GANSCL": "gain_scale",
    "S_GRPSCL": "group_scale",
    "S_GUICDS": "guider_cds",
    "S_IMPRNT": "imprint",
    "S_IPC": "ipc",
    "S_JUMP": "jump",
    "S_KLIP": "klip",
    "S_LASTFR": "lastframe",
    "S_LINEAR": "linearity",
    "S_MSBSUB": "master_background",
    "S_MSAFLG": "msa_flagging",
    "S_OUTLIR": "outlier_detection",
    "S_PTHLOS": "pathloss",
    "S_PERSIS": "persistence",
    "S_PHOTOM": "photom",
    "S_PCTFRM": "picture_frame",
    "S_PXREPL": "pixel_replace",
    "S_RAMP": "ramp_fit",
    "S_REFPIX": "refpix",
    "S_RESAMP": "resample",
    "S_RESFRI": "residual_fringe",
    "S_RESET": "reset",
    "S_RSCD": "rscd",
    "S_SATURA": "saturation",
    "S_SKYMAT": "skymatch",
    "S_SRCCAT": "source_catalog",
    "S_SPLEAK": "spectral_leak",
    "S_SRCTYP": "srctype",
    "S_PSFSTK": "stack_psfs",
    "S_STRAY": "straylight",
    "S_SUPERB": "superbias",
    "S_TACNTR": "targ_centroid",
    "S_TSPHOT": "tso_photometry",
    "S_TWKREG": "tweakreg",
    "S_WAVCOR": "wavecorr",
    "S_WFSCOM": "wfs_combine",
    "S_CONTAM": "wfss_contam",
    "S_WHTLIT": "white_light",
}

#: Primary-header keywords a raw or ramp exposure must have. The dimensions (NGROUPS,
#: NINTS) are not required: as jwst does, they are read from the SCI array where the
#: header is silent, and a header that contradicts the array is rejected
#: (:func:`dimensions_from_data`).
REQUIRED_KEYWORDS = ("INSTRUME",)

#: Table extensions copied into ``attrs["tables"]`` (EXTNAME -> key).
TABLES = {"INT_TIMES": "int_times", "GROUP": "group"}


# --------------------------------------------------------------------------
# headers -> attrs (header_to_dict lives in detflow.io.values, with the other
# value helpers)
# --------------------------------------------------------------------------


def keyword_attrs(primary, sci, url=""):
    """The :data:`detflow.contract.KEYWORDS` attributes found in the headers, typed.

    Parameters
    ----------
    primary, sci : astropy.io.fits.Header
        Primary and SCI headers.
    url : str
        Named in errors.

    Returns
    -------
    dict
        Attribute name -> value for every keyword present (absent or undefined
        keywords are left out), typed by :func:`detflow.io.values.typed_value`.

    Raises
    ------
    InputFileError
        A keyword's value is not of its type (e.g. ``NGROUPS = 'two'``).
    """
    headers = {"primary": primary, "sci": sci}
    out = {}
    for name, (keyword, where, typ) in KEYWORDS.items():
        header = headers[where]
        if keyword not in header:
            continue
        value = header[keyword]
        try:
            value = typed_value(value, typ)
        except (TypeError, ValueError) as exc:
            raise InputFileError(
                url, f"keyword {keyword} = {value!r} is not a valid {typ.__name__}"
            ) from exc
        if value is not None:
            out[name] = value
    return out


def dimensions_from_data(attrs, shape, url=""):
    """Fill ``ngroups``/``nints`` from the SCI shape where the header is silent; raise
    where it contradicts the array.

    jwst takes the dimensions of an exposure from its data (``data.shape``), whatever
    NGROUPS and NINTS say; detflow does the same, and rejects a header that cannot
    describe the array: NGROUPS other than the array's groups, or NINTS (the whole
    exposure's integrations) smaller than the array's -- a segment of a TSO exposure
    holds INTSTART..INTEND of NINTS, so more is normal.

    Parameters
    ----------
    attrs : dict
        Keyword attributes (:func:`keyword_attrs`); changed in place.
    shape : tuple
        ``(nints, ngroups, ny, nx)`` of SCI.
    url : str
        Named in errors.

    Raises
    ------
    InputFileError
        A keyword contradicts the array, naming it.
    """
    nints, ngroups = int(shape[0]), int(shape[1])
    if attrs.get("ngroups") is None:
        attrs["ngroups"] = ngroups
    elif int(attrs["ngroups"]) != ngroups:
        raise InputFileError(
            url, f"keyword NGROUPS = {attrs['ngroups']} contradicts the SCI array, which "
            f"has {ngroups} groups (shape {tuple(shape)})")
    if attrs.get("nints") is None:
        attrs["nints"] = nints
    elif int(attrs["nints"]) < nints:
        raise InputFileError(
            url, f"keyword NINTS = {attrs['nints']} contradicts the SCI array, which has "
            f"{nints} integrations (shape {tuple(shape)})")
    return attrs


def subarray_corner(attrs, shape, url=""):
    """``(x0, y0)``: the 0-based full-frame pixel of the data's first pixel, from
    SUBSTRT1/SUBSTRT2.

    Without those keywords the data determine the corner only when they are full frame
    (it is then 1, 1, and is set in ``attrs``); a subarray that does not say where it
    lies is refused, as jwst refuses it ("Can't determine science file subarray
    properties") -- assuming the corner would cut every reference file at the wrong
    place.

    Parameters
    ----------
    attrs : dict
        Keyword attributes (:func:`keyword_attrs`); ``substrt1/2`` set in place when
        the data are full frame and they are absent.
    shape : tuple
        The data's shape; its last two are ``(ny, nx)``.
    url : str
        Named in errors.

    Raises
    ------
    InputFileError
        A subarray without SUBSTRT1/SUBSTRT2, or a corner below 1.
    """
    ny, nx = int(shape[-2]), int(shape[-1])
    corner = {"substrt1": attrs.get("substrt1"), "substrt2": attrs.get("substrt2")}
    missing = [k.upper() for k, v in corner.items() if v is None]
    if missing:
        full = FULL_FRAME_SHAPE.get(str(attrs.get("instrument") or "").upper())
        if full is None or (ny, nx) != tuple(full):
            raise InputFileError(
                url, f"primary header lacks {' and '.join(missing)}: the {ny} x {nx} data "
                "are not full frame, so where they lie on the detector is unknown (jwst "
                "stops too); add SUBSTRT1 and SUBSTRT2 (1-based corner)")
        for key in corner:
            if corner[key] is None:
                corner[key] = attrs[key] = 1
    x, y = int(corner["substrt1"]), int(corner["substrt2"])
    if x < 1 or y < 1:
        raise InputFileError(url, f"SUBSTRT1 = {x}, SUBSTRT2 = {y}: a corner is 1 or more")
    return x - 1, y - 1


def detector_coords(sizes, x0, y0, intstart=1):
    """The data contract's coordinates of the dimensions in ``sizes`` that have them.

    ``integration`` counts from ``intstart - 1`` (a segment of an exposure starts
    where it does), ``group`` from 0, ``y`` and ``x`` are full-frame detector
    pixels from the corner ``(x0, y0)`` (:func:`subarray_corner`); all int64.

    Parameters
    ----------
    sizes : Mapping
        Dimension name -> length; other dimensions get no coordinate.
    x0, y0 : int
        0-based full-frame pixel of the data's first column and row.
    intstart : int
        INTSTART, the 1-based number of the first integration.

    Returns
    -------
    dict
        In the order ``integration, group, y, x`` (those of them in ``sizes``).
    """
    starts = {"integration": int(intstart) - 1, "group": 0, "y": int(y0), "x": int(x0)}
    return {dim: np.arange(sizes[dim], dtype=np.int64) + start
            for dim, start in starts.items() if dim in sizes}


def cal_step_from_header(primary):
    """``cal_step`` (step name -> status) from the ``S_*`` keywords of a header.

    Parameters
    ----------
    primary : astropy.io.fits.Header

    Returns
    -------
    dict
        E.g. ``{"dq_init": "COMPLETE", "saturation": "COMPLETE"}``; empty for raw data.
    """
    out = {}
    for keyword, step in STEP_KEYWORDS.items():
        if keyword in primary:
            out[step] = str(primary[keyword]).strip()
    return out



def add_header_attrs(attrs, primary, sci_header, tables, source, datamodel):
    """Add to an exposure's ``attrs`` what every reader records beside the keywords:
    both headers (as dicts), the tables, the ``cal_step`` statuses, an empty provenance,
    the ``source`` (a path or URL) and the ``datamodel`` class name."""
    attrs.update(
        primary_header=header_to_dict(primary),
        sci_header=header_to_dict(sci_header),
        tables=tables,
        cal_step=cal_step_from_header(primary),
        provenance=[],
        source=source,
        datamodel=datamodel,
    )
    return attrs
