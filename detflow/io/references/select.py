"""Choosing a reference file in a folder as CRDS selects: the candidates of the
folder index (:mod:`detflow.io.references.index`) whose selection keywords match the
exposure and whose data cover its region, ranked (:data:`_RANK_CRITERIA`), then the
latest USEAFTER not after the exposure's start; ties are errors, never a choice by
name. :func:`_resolve_dir` also says why it chose a file, or why none serves."""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Mapping

import numpy as np

from detflow.errors import ReferenceFileError
from detflow.io.references.exposure import (
    _exposure_attrs,
    _exposure_label,
    _exposure_region,
    _exposure_value,
    _match,
    _upper,
)
from detflow.io.references.index import _SELECTORS, reference_index
from detflow.io.references.manifest import MANIFEST_NAME
from detflow.io.references.region import EXACT_SHAPE_REFTYPES, _covers, _region_text


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
