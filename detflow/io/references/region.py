"""Cutting a reference to an exposure's detector region, by coordinate.

:func:`select_region` checks that a reference opened by
:func:`~detflow.io.references.open.open_reference` is for the exposure's instrument
and detector and covers its region, and cuts it there (jwst's ``ref_matches_sci``
and subarray extraction); :func:`_covers` and :func:`_require_covers` are the
coverage rule, shared with the checks of overrides and the folder selection.
"""

from __future__ import annotations

import logging

import numpy as np

from detflow.contract import FULL_FRAME_SHAPE
from detflow.errors import ReferenceFileError
from detflow.io.references.exposure import (
    _exposure_attrs,
    _exposure_label,
    _exposure_region,
    _exposure_value,
    _is_dataset,
    _match,
    _spatial_chunks,
    _upper,
)

log = logging.getLogger(__name__)

__all__ = ["EXACT_SHAPE_REFTYPES", "select_region"]

#: Reference types whose subarray shape jwst requires to equal the science shape
#: (no subarray cutting in jwst's dark_current and reset steps).
EXACT_SHAPE_REFTYPES = frozenset({"DARK", "RESET"})


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
