"""Checks of a file named for an exposure (an override, a manifest entry): its
REFTYPE, instrument and detector fit the exposure, and its data cover the
exposure's region, before anything is computed."""

from __future__ import annotations

import numpy as np

from detflow.errors import ReferenceFileError
from detflow.io.cache import KeptByFile
from detflow.io.references.exposure import (
    _exposure_attrs,
    _exposure_region,
    _exposure_value,
    _match,
    _upper,
)
from detflow.io.references.index import _index_entry
from detflow.io.references.region import EXACT_SHAPE_REFTYPES, _require_covers


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
