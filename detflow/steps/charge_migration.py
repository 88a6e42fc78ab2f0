"""charge_migration: flag groups above a signal threshold and their 4 neighbours as
CHARGELOSS | DO_NOT_USE (jwst ``ChargeMigrationStep``, skipped by default).

Chunk contract: all groups of a pixel in one chunk (a group above the threshold flags
every later group); any integration and spatial chunking. The work is in three lazy
stages over the exposure's tiles:

1. blockwise, :func:`~detflow.kernels.charge_migration.chargeloss_seeds`: the groups at
   and after the first group above ``signal_threshold`` (not exactly DO_NOT_USE), a bool
   array;
2. :func:`~detflow.steps.halo.map_halo` with a halo of
   :data:`~detflow.kernels.charge_migration.CHARGE_MIGRATION_HALO` (1) pixel on that bool
   array only, :func:`~detflow.kernels.charge_migration.grow_4_neighbours`; the outer
   edge of the exposure gets no halo (``boundary="none"``), so nothing is flagged
   beyond it, as in jwst;
3. blockwise, ``groupdq | (CHARGELOSS | DO_NOT_USE)`` where flagged.

``data``, ``pixeldq`` and ``zeroframe`` are not changed. With fewer than 3 groups the
step is SKIPPED, as jwst's is.
"""

import dask.array as da
import numpy as np
import xarray as xr

from detflow import dqflags
from detflow.contract import DIMS
from detflow.errors import ParameterError
from detflow.kernels import charge_migration as kern
from detflow.steps.base import Param, StepDef, as_float32, dask_array, record, skipped
from detflow.steps.halo import map_halo


def apply(ds, refs, params):
    """Lazy charge-migration flagging of ``groupdq`` ``(nints, ngroups, ny, nx)``.

    ``refs`` is unused (the step has no reference file); ``params["signal_threshold"]``
    is in DN, compared with ``data`` (float32) as jwst does (``data > threshold``).

    Returns the Dataset with ``groupdq`` updated (chunked with all groups whole) and
    ``data`` as float32; recorded COMPLETE, or SKIPPED when there are fewer than 3
    groups.
    """
    threshold = params.get("signal_threshold")
    if threshold is None:
        raise ParameterError("charge_migration.signal_threshold must be a number, not None")
    out = as_float32(ds)
    if ds.sizes["group"] < 3:
        return skipped(out, STEP, "too few groups per integration")

    data_xr = out["data"].transpose(*DIMS)
    data = dask_array(data_xr).rechunk({1: -1})
    chunks = data.chunks
    gdq = dask_array(out["groupdq"].transpose(*DIMS), chunks=chunks).astype(np.uint8)
    meta_bool = np.empty((0, 0, 0, 0), dtype=bool)

    seeds = da.map_blocks(
        kern.chargeloss_seeds, data, gdq, signal_threshold=float(threshold),
        dnu=dqflags.DO_NOT_USE, dtype=bool, meta=meta_bool,
    )
    h = kern.CHARGE_MIGRATION_HALO
    grown = map_halo(kern.grow_4_neighbours, seeds, halo=h, boundary="none", trim=True,
                     dtype=bool, meta=meta_bool)
    new_gdq = da.map_blocks(
        kern.apply_chargeloss, gdq, grown, flag=dqflags.CHARGELOSS | dqflags.DO_NOT_USE,
        dtype=np.uint8, meta=np.empty((0, 0, 0, 0), dtype=np.uint8),
    )
    out["groupdq"] = xr.DataArray(new_gdq, dims=DIMS, coords=data_xr.coords).transpose(
        *out["groupdq"].dims)
    return record(out, STEP, "COMPLETE", params)


STEP = StepDef(
    __name__,
    params={
        "signal_threshold": Param(
            "float", 25000.0, "Science value above which a group will be flagged as CHARGELOSS"),
    },
    apply=apply,
    halo=kern.CHARGE_MIGRATION_HALO,
)
