"""What an exposure tells reference selection: its attrs, name, keyword values,
detector region and tiles, and how a reference file's keyword matches its value.

An exposure is given as an :class:`xarray.Dataset` or as its attrs (a mapping of
:mod:`detflow.contract` names, with the primary header in ``primary_header``);
these helpers read either form.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from detflow.contract import FULL_FRAME_SHAPE

#: Values of a selection keyword that match any exposure.
_WILDCARDS = frozenset({"", "ANY", "N/A", "GENERIC", "MULTIPLE", "NONE"})


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
