"""persistence: flag groups inside persistence time windows (jwst 3.0.0 ``PersistenceStep``).

jwst 3.0.0 has no persistence reference files: a pixel's first saturated group (or,
with ``dn_threshold``, a group above it) opens a window of ``persistence_time``
seconds, and every group inside an open window gets PERSISTENCE (plus DO_NOT_USE with
``persistence_dnu``). Windows still open at the end are carried to later exposures of
the detector through an ASDF file (see :mod:`detflow.io.persistence`). The step is
skipped by default; with ``persistence_time`` missing or not positive jwst records
``FAILED`` and changes nothing.

Chunk contract: per pixel, no halo; each task holds every integration and group of
a spatial tile (the window state runs through all of them in time order). Tiles are
split in ``y`` where that would make them large.

Inputs and outputs beyond the ramp. The step never opens a file:

* the incoming window array (jwst's ``persistence_array_file``) arrives opened, as
  ``refs["persistence_array"]``: an ``(ny, nx)`` float64 array or DataArray, window
  end times in Unix epoch seconds, 0 for none (the pipeline layer makes it with
  :func:`detflow.io.persistence.open_persistence_array`). Without it the windows start
  empty, as in jwst without ``persistence_array_file``.
* the outgoing array (what jwst writes to ``save_persistence``) is the lazy variable
  ``persistence_array`` ``(y, x)`` float64 of the result, for the runner to compute
  with the products and write with :func:`detflow.io.persistence.write_persistence_array`.
"""

import logging

import dask.array as da
import numpy as np
import xarray as xr

from detflow import dqflags
from detflow.contract import DIMS
from detflow.errors import ParameterError
from detflow.kernels import persistence as kp
from detflow.steps.base import Param, StepDef, as_float32, dask_array, record
from detflow.tiling import Tiling

log = logging.getLogger(__name__)

#: name of the outgoing window array in the step's result
OUTPUT_VARIABLE = "persistence_array"
#: key of the incoming window array in ``refs``
INPUT_REF = "persistence_array"


def exposure_group_times(attrs, nints, ngroups):
    """The time (Unix epoch s) of every group, from the exposure's attributes.

    Parameters
    ----------
    attrs : dict
        Dataset attributes: ``expstart``, ``integration_time``, ``group_time`` and
        ``tables["int_times"]["int_start_MJD_UTC"]`` where present.
    nints, ngroups : int

    Returns
    -------
    numpy.ndarray
        ``(nints, ngroups)`` float64 (see :func:`detflow.kernels.persistence.group_times`).
    """
    table = (attrs.get("tables") or {}).get("int_times") or {}
    int_start = table.get("int_start_MJD_UTC")
    if attrs.get("group_time") is None:
        raise ParameterError("persistence needs the group time (TGROUP) of the exposure")
    try:
        starts = kp.integration_start_times(
            nints, attrs.get("expstart"), attrs.get("integration_time"), int_start)
    except ValueError as exc:
        raise ParameterError(str(exc)) from None
    return kp.group_times(starts, attrs["group_time"], ngroups)


def _split_rows(ychunks, xchunks, bytes_per_pixel, limit):
    """y chunks so that no tile holds more than ``limit`` bytes."""
    widest = max(xchunks)
    most_rows = max(1, limit // max(1, widest * bytes_per_pixel))
    out = []
    for size in ychunks:
        while size > most_rows:
            out.append(most_rows)
            size -= most_rows
        out.append(size)
    return tuple(out)


def _tile(gdq, state, data=None, *, times, persistence_time, saturated, flag, dn_threshold):
    """Kernel call on one tile; returns the pair (groupdq, state) as one object block."""
    return kp.flag_persistence(gdq, times, state, persistence_time, saturated=saturated,
                               flag=flag, data=data, dn_threshold=dn_threshold)


def _pick_gdq(block):
    return block[0]


def _pick_state(block):
    return block[1][None, None]


def _incoming(refs, ny, nx):
    """The incoming window array as a dask array ``(ny, nx)`` float64, or None."""
    incoming = (refs or {}).get(INPUT_REF)
    if incoming is None:
        return None
    dims = ("y", "x") if isinstance(incoming, xr.DataArray) else None
    arr = dask_array(incoming, dims)
    if arr.shape != (ny, nx):
        raise ParameterError(
            f"the incoming persistence array has shape {arr.shape}, the exposure {(ny, nx)}"
        )
    return arr.astype(np.float64)


def apply(ds, refs, params, tiling=None):
    """Lazy persistence flagging.

    Parameters
    ----------
    ds : xarray.Dataset
        Ramp (:mod:`detflow.contract`): ``data`` ``(nints, ngroups, ny, nx)``, ``groupdq``.
    refs : dict
        ``{"persistence_array": (ny, nx) float64}`` when windows are carried in (see the
        module docstring); may be empty.
    params : dict
        The step's parameters (jwst's names).
    tiling : detflow.tiling.Tiling, optional
        The run's tile sizes: its working tiles hold at most ``persistence_bytes`` bytes
        (default :class:`~detflow.tiling.Tiling`'s).

    Returns
    -------
    xarray.Dataset
        ``groupdq`` with PERSISTENCE (|DO_NOT_USE) in the groups inside a window and
        ``persistence_array`` ``(y, x)`` float64, the windows carried out; or, when
        ``persistence_time`` is missing or not positive, the input recorded FAILED.
    """
    ptime = params.get("persistence_time")
    out = as_float32(ds)
    if ptime is None or ptime <= 0.0:
        log.warning(
            "persistence: %s, so the step is recorded FAILED and the data are unchanged "
            "(give persistence_time=SECONDS; command line: "
            "--steps.persistence.persistence_time=SECONDS)",
            "persistence_time is not set" if ptime is None
            else f"persistence_time={ptime} is not positive")
        # jwst resets a zero or negative persistence_time to None before it fails
        params = {**params, "persistence_time": None}
        return record(out, STEP, "FAILED", params, reason="invalid persistence_time")
    nints, ngroups, ny, nx = (int(ds.sizes[d]) for d in DIMS)
    incoming = _incoming(refs, ny, nx)
    if incoming is None and params.get("persistence_array_file") is not None:
        raise ParameterError(
            "persistence_array_file is set but the array was not opened: the pipeline "
            "layer passes it to the step as refs['persistence_array'] "
            "(detflow.io.persistence.open_persistence_array)"
        )
    times = exposure_group_times(ds.attrs, nints, ngroups)
    threshold = params.get("dn_threshold")
    flag = dqflags.PERSISTENCE | (dqflags.DO_NOT_USE if params.get("persistence_dnu") else 0)

    gdq_xr = ds["groupdq"]
    gdq4 = dask_array(gdq_xr, DIMS)
    in_chunks = gdq4.chunks
    per_pixel = nints * ngroups * (1 + (4 if threshold is not None else 0)) + 16
    yc = _split_rows(in_chunks[2], in_chunks[3], per_pixel,
                     (tiling or Tiling()).persistence_bytes)
    xc = in_chunks[3]
    gdq_t = gdq4.rechunk((nints, ngroups, yc, xc))
    state = incoming if incoming is not None else da.zeros((ny, nx), dtype=np.float64)
    args = [gdq_t, "igyx", state.rechunk((yc, xc)), "yx"]
    if threshold is not None:
        data = dask_array(out["data"], DIMS).rechunk((nints, ngroups, yc, xc))
        args += [data, "igyx"]
    blocks = da.blockwise(
        _tile, "igyx", *args, dtype=object, meta=np.empty((0, 0, 0, 0), dtype=object),
        times=times, persistence_time=ptime, saturated=dqflags.SATURATED, flag=flag,
        dn_threshold=threshold)
    # (no drop_axis on object blocks: dask would try to concatenate them)
    gdq_out = da.map_blocks(_pick_gdq, blocks, dtype=np.uint8,
                            meta=np.empty((0, 0, 0, 0), dtype=np.uint8))
    state_out = da.map_blocks(_pick_state, blocks, chunks=((1,), (1,), yc, xc),
                              dtype=np.float64, meta=np.empty((0, 0, 0, 0), dtype=np.float64))
    state_out = state_out[0, 0].rechunk(in_chunks[2:])

    out["groupdq"] = gdq_xr.transpose(*DIMS).copy(data=gdq_out.rechunk(in_chunks)).transpose(
        *gdq_xr.dims)
    out[OUTPUT_VARIABLE] = (("y", "x"), state_out)
    return record(out, STEP, "COMPLETE", params)


STEP = StepDef(
    __name__,
    params={
        "save_persistence": Param("string", None, "Name of ASDF output file to save the "
                                  "persistence array"),
        "persistence_time": Param("integer", None, "Time, in seconds, to use for persistence "
                                  "window"),
        "dn_threshold": Param("float", None, "A threshold above which to flag persistence."),
        "persistence_array_file": Param("string", None, "A path to an ASDF file containing a "
                                        "2-D array of persistence times per pixel"),
        "persistence_dnu": Param("boolean", False, "If True the set the DO_NOT_USE flag with "
                                 "PERSISTENCE"),
    },
    apply=apply,
    tiled=True,
)
