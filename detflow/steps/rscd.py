"""rscd: flag the first groups of each integration DO_NOT_USE (jwst ``RscdStep``, MIRI).

jwst 3.0.0 flags only; it no longer corrects the data (``rscd_sub.do_correction``):

* SKIPPED for a detector whose name does not start with ``MIR``, for an RSCD of N/A, when
  the RSCD table has no row for the exposure's SUBARRAY and READPATT (SUBPRISM is looked
  up as SLITLESSPRISM; the first matching row wins), and for fewer than 3 groups.
* The row gives ``group_skip1`` (the first integration; a negative value, from the
  deprecated table model, means 1) and ``group_skip`` (later integrations). With 5 groups
  or fewer both are 1. Each is capped at ``ngroups - 3`` (``group_skip`` only when NINTS,
  the whole exposure's, is above 1).
* The first row of the array is the exposure's first integration (``group_skip1``) only
  when INTSTART is 1 (or absent); every other row is "integration 2 and higher"
  (``group_skip``), which jwst flags only when NINTS > 1.
* Saturation back-off, per range of integrations (the first, the others), with
  ``s`` its skip: jwst lowers a pixel's skip by one for each group ``g = s+1, s, ...``
  where the pixel is SATURATED but not SATURATED at group 0, and goes on to the next
  lower group only while *some* pixel of the range (any integration of it) is such a
  pixel at the current group: the stop test is global, the result per pixel and
  integration. So the whole range is reduced to one boolean per group first (a small
  reduction), then the skip is applied blockwise.
* Groups below the skip become DO_NOT_USE; a pixel whose skip was lowered in any
  integration of the range gets FLUX_ESTIMATED.
* ``meta.rscd`` (INT1SKIP, INT2SKIP, INT1UGP1, INT2UGP1, INT1BORS, INT2BORS) holds the
  skips and, per range, the number of pixels backed off and the number left with a skip
  of 0 in some integration (jwst counts the latter only when some pixel needed the
  back-off, and 0 otherwise). The counts are whole-exposure sums: lazy 0-d variables,
  moved to ``attrs`` when computed (:func:`~detflow.steps.base.scalars_to_attrs`).

Chunk contract: blockwise over tiles (groups may be split: the skip is computed from the
group planes it needs), plus the small global reduction above. No halo.
"""

from functools import partial

import numpy as np
import xarray as xr

from detflow import dqflags
from detflow.steps.base import StepDef, as_float32, record
from detflow.steps.lastframe import is_miri_detector, references_if_miri

#: jwst's ``get_rscd_parameters``: the subarray names looked up under another row
SUBARRAY_ALIASES = {"SUBPRISM": "SLITLESSPRISM"}


def table_skips(ref, subarray, readpatt):
    """``(group_skip1, group_skip)`` of the first RSCD table row for ``subarray`` and
    ``readpatt``, or None (no such row)."""
    tables = ref.attrs.get("tables") or {}
    table = next((t for name, t in tables.items() if name.lower() == "rscd_group_skip"), {})
    columns = {name.lower(): values for name, values in table.items()}
    subarray = str(subarray or "").upper()
    subarray = SUBARRAY_ALIASES.get(subarray, subarray)
    rows = zip(columns.get("subarray", ()), columns.get("readpatt", ()),
               columns.get("group_skip1", ()), columns.get("group_skip", ()), strict=False)
    for sub, patt, skip1, skip in rows:
        if sub == subarray and patt == readpatt:
            return int(skip1), int(skip)
    return None


def skips_for(ngroups, nints, skip1, skip):
    """The skips jwst uses for the first and for later integrations (the few-groups rules,
    see the module docstring)."""
    if skip1 < 0:  # a table of the deprecated model
        skip1 = 1
    if ngroups <= 5:
        skip1 = skip = 1
    if ngroups < skip1 + 3:
        skip1 = max(0, ngroups - 3)
    if nints > 1 and ngroups < skip + 3:
        skip = max(0, ngroups - 3)
    return skip1, skip


def _saturated(gdq, group):
    return (gdq.isel(group=group, drop=True) & dqflags.SATURATED) > 0


def backed_off_skip(gdq, skip):
    """The per-pixel, per-integration skip after jwst's saturation back-off (``flag_rscd``)
    for the integrations of ``gdq`` ``(integration, group, y, x)``, and whether any pixel
    needed a back-off (a lazy 0-d boolean)."""
    not_sat0 = ~_saturated(gdq, 0)
    lowered = xr.zeros_like(not_sat0, dtype=np.int64)
    running = None  # jwst goes on to a lower group while any pixel is a problem there
    first = None
    for k in range(skip + 1):
        problem = _saturated(gdq, skip + 1 - k) & not_sat0
        anywhere = problem.any()
        running = anywhere if running is None else running & anywhere
        first = anywhere if first is None else first
        lowered = lowered + (problem & running)
    return np.maximum(skip - lowered, 0), first


def _flag_range(gdq, pixeldq, skip, label):
    """Flag one range of integrations; returns ``(groupdq, pixeldq, scalars)``."""
    group = xr.DataArray(np.arange(gdq.sizes["group"]), dims="group",
                         coords={"group": gdq["group"]} if "group" in gdq.coords else None)
    per_pixel, any_problem = backed_off_skip(gdq, skip)
    backed = (per_pixel < skip).any("integration")
    pixeldq = pixeldq.where(~backed, pixeldq | dqflags.FLUX_ESTIMATED).astype(pixeldq.dtype)
    flag = xr.where(group < per_pixel, np.uint8(dqflags.DO_NOT_USE), np.uint8(0))
    gdq = (gdq | flag).astype(np.uint8).transpose(*gdq.dims)
    one_group = xr.where(any_problem, (per_pixel == 0).any("integration").sum(), 0)
    scalars = {
        f"rscd_keep_bright_firstgroup_{label}": one_group.astype(np.float64),
        f"rscd_keep_groups_saturation_{label}": backed.sum().astype(np.float64),
    }
    return gdq, pixeldq, scalars


def apply(ds, refs, params):
    """Lazy RSCD flagging (see the module docstring)."""
    out = as_float32(ds)
    if not is_miri_detector(ds):
        return record(out, STEP, "SKIPPED", params, reason="RSCD correction is only for MIRI data")
    ref = refs.get("rscd")
    if ref is None:
        return record(out, STEP, "SKIPPED", params, reason="no RSCD reference file (N/A)")
    found = table_skips(ref, ds.attrs.get("subarray"), ds.attrs.get("readpatt"))
    if found is None:
        return record(out, STEP, "SKIPPED", params,
                      reason="READPATT, SUBARRAY combination not found in ref file")
    ngroups = ds.sizes["group"]
    if ngroups < 3:
        return record(out, STEP, "SKIPPED", params, reason="Too few groups to apply correction")
    nints = int(ds.attrs.get("nints") or ds.sizes["integration"])
    skip1, skip = skips_for(ngroups, nints, *found)

    dims = ds["groupdq"].dims
    gdq = out["groupdq"].transpose("integration", "group", "y", "x")
    pixeldq = out["pixeldq"]
    first_is_int1 = int(ds.attrs.get("intstart") or 1) == 1
    parts, scalars, attrs = [], {}, {}
    if first_is_int1:
        part, pixeldq, found1 = _flag_range(gdq.isel(integration=slice(0, 1)), pixeldq,
                                            skip1, "int1")
        parts.append(part)
        scalars.update(found1)
        attrs["rscd_ngroups_skip_int1"] = skip1
    rest = gdq.isel(integration=slice(1 if first_is_int1 else 0, None))
    if nints > 1:
        part, pixeldq, found2 = _flag_range(rest, pixeldq, skip, "int2p")
        parts.append(part)
        scalars.update(found2)
        attrs["rscd_ngroups_skip_int2p"] = skip
    elif rest.sizes["integration"]:
        parts.append(rest)
    new_gdq = parts[0] if len(parts) == 1 else xr.concat(parts, "integration")
    out["groupdq"] = new_gdq.transpose(*dims)
    out["pixeldq"] = pixeldq
    for name, value in scalars.items():
        out[name] = value.variable
    out.attrs = {**out.attrs, **attrs}
    return record(out, STEP, "COMPLETE", params)


STEP = StepDef(
    __name__,
    references_needed=partial(references_if_miri, ("rscd",)),
    params={},
    # data untouched, and its DO_NOT_USE goes to the group DQ: the reference pixels'
    # data and pixel DQ DO_NOT_USE (what refpix reads) are left as they are
    reference_pixels="unchanged",
    apply=apply,
)
