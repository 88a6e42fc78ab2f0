"""Choosing a reference file in a folder as CRDS selects.

The folder's header index (:func:`reference_index`, :func:`clear_reference_index`)
holds the facts selection needs from each file (selection keywords, USEAFTER,
region), kept per folder and re-read only for files whose size or modification time
changed. The candidates are the files whose selection keywords match the exposure
and whose data cover its region, ranked (:data:`_RANK_CRITERIA`), then the latest
USEAFTER not after the exposure's start; ties are errors, never a choice by name.
:func:`_resolve_dir` also says why it chose a file, or why none serves."""

from __future__ import annotations

import datetime as _dt
import os
import threading
from collections.abc import Mapping

import numpy as np

from detflow.errors import ReferenceFileError
from detflow.io.files import is_remote, local_path
from detflow.io.fits import FitsSource, read_hdus
from detflow.io.references.exposure import (
    _exposure_attrs,
    _exposure_label,
    _exposure_region,
    _exposure_value,
    _match,
    _upper,
)
from detflow.io.references.manifest import MANIFEST_NAME
from detflow.io.references.region import EXACT_SHAPE_REFTYPES, _covers, _region_text
from detflow.io.values import json_value

__all__ = ["clear_reference_index", "reference_index"]

# --------------------------------------------------------------------------
# The header index of a folder of reference files
# --------------------------------------------------------------------------

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


#: The file names a reference folder's index reads: FITS (gzip-compressed too) and the
#: ASDF files some reference types are (MIRI's EMICORR).
_INDEXED_SUFFIXES = (".fits", ".fits.gz", ".asdf")


def _asdf_index_entry(path, storage_options=None):
    """The selection facts of an ASDF reference file (its ``meta`` tree: reftype,
    instrument, detector, useafter and the selectors), or None if unreadable. ASDF
    references carry no image to cut: they cover any exposure."""
    import asdf
    import fsspec

    try:
        with fsspec.open(str(path), "rb", **dict(storage_options or {})) as stream, \
                asdf.open(stream, lazy_load=True, memmap=False) as af:
            meta = dict(af.tree.get("meta") or {})
    except Exception:
        return None
    instrument = dict(meta.get("instrument") or {})
    exposure = dict(meta.get("exposure") or {})
    entry = {"path": str(path), "name": os.path.basename(str(path)), "shapes": {},
             "region": None}
    found = {"REFTYPE": meta.get("reftype"), "INSTRUME": instrument.get("name"),
             "DETECTOR": instrument.get("detector"), "P_DETECT": instrument.get("p_detector"),
             "USEAFTER": meta.get("useafter"), "READPATT": exposure.get("readpatt"),
             "P_READPA": exposure.get("p_readpatt"),
             "SUBARRAY": (meta.get("subarray") or {}).get("name"),
             "EXP_TYPE": exposure.get("type"), "P_EXP_TY": exposure.get("p_exptype"),
             "FILTER": instrument.get("filter"), "P_FILTER": instrument.get("p_filter"),
             "PUPIL": instrument.get("pupil"), "P_PUPIL": instrument.get("p_pupil")}
    for key in ("SUBSTRT1", "SUBSTRT2", "SUBSIZE1", "SUBSIZE2", "NFRAMES", "NGROUPS",
                "GROUPGAP", "P_SUBARR"):
        found.setdefault(key, None)
    entry.update({key: json_value(value) for key, value in found.items()})
    return entry


def _index_entry(path, storage_options=None):
    """Header facts of one reference file used for selection, or None if unreadable."""
    if str(path).lower().endswith(".asdf"):
        return _asdf_index_entry(path, storage_options)
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
    """Header index of the reference files in a directory (cached per directory).

    Files are re-read only when their size or modification time changes; files
    that are not readable FITS are left out.

    Parameters
    ----------
    refs_dir : str or os.PathLike
        Local directory or fsspec URL; ``*.fits``, ``*.fits.gz`` and ``*.asdf`` (the
        ASDF reference types, MIRI's EMICORR) are indexed.
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
        for pattern in ("*" + suffix for suffix in _INDEXED_SUFFIXES):
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
                if item.is_file() and item.name.lower().endswith(_INDEXED_SUFFIXES):
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


# --------------------------------------------------------------------------
# The choice among the folder's files
# --------------------------------------------------------------------------

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
