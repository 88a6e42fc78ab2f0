"""ramp_fit: slopes from ramps with READNOISE and GAIN (jwst ``RampFitStep``, ``OLS_C``).

Chunk contract: per pixel, no halo, every integration and group of a tile together (the
exposure-level rate combines the integrations). One task fits one tile
(:func:`detflow.kernels.ramp_fit.fit_tile`: a numba port of stcal's OLS_C C fitter,
bit-identical to it and releasing the GIL, or stcal itself where numba is missing) and
its outputs are picked out lazily.

Unlike the other steps, ``apply`` returns the products, not a ramp::

    {"rate": Dataset, "rateints": Dataset, "fitopt": Dataset or None}

* ``rate``: ``data``, ``err``, ``dq`` (uint32), ``var_poisson``, ``var_rnoise`` on
  ``(y, x)``; ``rateints``: the same on ``(integration, y, x)``; both with the input's
  attrs (tables included), ``bunit`` ``DN/s``, ``gain_factor`` from the GAIN file
  when it has one, and ``cal_step.ramp_fit = COMPLETE``; any 0-d variable of the
  input (the jump step's ``primary_cosmic_rays``...) is carried along;
* ``fitopt`` (``save_opt``): ``slope``, ``sigslope``, ``var_poisson``, ``var_rnoise``,
  ``yint``, ``sigyint``, ``weights`` on ``(integration, segment, y, x)``, ``crmag`` on
  ``(integration, cr, y, x)``, ``pedestal`` on ``(integration, y, x)``. jwst's number of
  segment (CR) planes is the largest of any pixel, known only once computed: the lazy
  arrays have :func:`~detflow.kernels.ramp_fit.max_segments` planes (zeros beyond jwst's)
  and the 0-d variables ``max_num_segs``/``max_num_crs`` say how many to keep --
  :func:`trim_fitopt` cuts a computed Dataset to jwst's shape.

MIRI: the leading and trailing groups that are DO_NOT_USE in every pixel of every
integration (lastframe's last group) are dropped as stcal does, from a small reduction.

Where jwst makes no rate product at all -- group 0 SATURATED in every pixel of every
integration, or (MIRI) fewer than 2 groups left after the dropping -- which is known only
once computed, every product carries the 0-d bool variable ``no_product`` (True); the
runner then writes nothing and returns None, as jwst does. Otherwise it is False (and
dropped before writing). ``maximum_cores`` is accepted, and the single-core
result always returned.
"""

from functools import partial

import dask.array as da
import numpy as np
import xarray as xr

from detflow import dqflags
from detflow.contract import DIMS, is_miri
from detflow.errors import DetflowError
from detflow.kernels import ramp_fit as kr
from detflow.steps.base import Param, StepDef, dask_array, record
from detflow.steps.jump import working_chunks
from detflow.tiling import Tiling

#: ``ngroups`` from which jwst runs ``LIKELY`` (stcal ``LIKELY_MIN_NGROUPS``); below it
#: jwst falls back to ``OLS_C``.
LIKELY_MIN_NGROUPS = 4

#: 0-d bool variable of every product: jwst makes no product at all for this exposure
#: (the writers then write nothing; see :func:`detflow.kernels.ramp_fit.no_product`).
NO_PRODUCT = "no_product"

#: Output variable name -> stcal key, for rate and rateints.
RATE_VARIABLES = {"data": "slope", "err": "err", "dq": "dq", "var_poisson": "var_poisson",
                  "var_rnoise": "var_rnoise"}


def _flags():
    return {name: getattr(dqflags, name) for name in kr.FLAG_NAMES}


def _fit_block(data, gdq, pdq, gain, rn, dark, zeroframe, *, meta, flags, save_opt,
               suppress_one_group, group_all_dnu=None):
    return kr.fit_tile(data, gdq, pdq, gain, rn, dark, zeroframe, meta, flags,
                       save_opt=save_opt, suppress_one_group=suppress_one_group,
                       group_all_dnu=group_all_dnu)


def _no_product(group_all_sat, group_all_dnu=None):
    return np.asarray(kr.no_product(group_all_dnu, group_all_sat))


def _pick(block, product, name, dtype):
    return np.asarray(block[product][name], dtype=dtype)


def _pick_count(block, name):
    return np.full((1, 1), block[name], dtype=np.int64)



def _meta(attrs):
    header = attrs.get("primary_header") or {}
    drop = attrs.get("drop_frames1", header.get("DRPFRMS1"))
    return {
        "instrument": str(attrs.get("instrument", "")),
        "frame_time": float(attrs["frame_time"]),
        "group_time": float(attrs["group_time"]),
        "groupgap": int(attrs["groupgap"]),
        "nframes": int(attrs["nframes"]),
        "drop_frames1": None if drop is None else int(drop),
    }


def _scalars(ds):
    return {name: var for name, var in ds.data_vars.items() if var.ndim == 0}


def apply(ds, refs, params, tiling=None):
    """Lazy OLS_C ramp fit.

    Parameters
    ----------
    ds : xarray.Dataset
        Ramp with ``data`` ``(nints, ngroups, ny, nx)``, ``groupdq``, ``pixeldq``, and
        optionally ``zeroframe`` ``(nints, ny, nx)`` and ``average_dark_current``
        ``(ny, nx)`` (DN/s); without that variable, ``attrs["average_dark_current"]``
        (the dark step's scalar) fills it, and 0 when neither is set.
    refs : dict
        ``readnoise`` and ``gain``: Datasets with ``sci`` ``(ny, nx)``.
    params : dict
        Every RampFitStep parameter (jwst names).
    tiling : detflow.tiling.Tiling, optional
        The run's tile sizes: its working tiles hold at most ``working_bytes`` bytes
        (default :class:`~detflow.tiling.Tiling`'s).

    Returns
    -------
    dict
        ``{"rate": Dataset, "rateints": Dataset, "fitopt": Dataset or None}`` (see the
        module notes).

    Raises
    ------
    DetflowError
        ``algorithm='LIKELY'`` with ``ngroups >= 4`` (not implemented yet).
    """
    nints, ngroups = ds.sizes["integration"], ds.sizes["group"]
    ny, nx = ds.sizes["y"], ds.sizes["x"]
    algorithm = str(params["algorithm"]).upper()
    if algorithm == "LIKELY" and ngroups >= LIKELY_MIN_NGROUPS:
        raise DetflowError("ramp_fit algorithm 'LIKELY' is not implemented yet in detflow; "
                           "use algorithm='OLS_C'")
    save_opt = bool(params["save_opt"])
    suppress = bool(params["suppress_one_group"]) and ngroups != 1

    data_xr = ds["data"].transpose(*DIMS)
    gdq_xr = ds["groupdq"].transpose(*DIMS)
    in_chunks = gdq_xr.data.chunks if isinstance(gdq_xr.data, da.Array) else (
        (1,) * nints, (ngroups,), (ny,), (nx,))
    yc, xc = working_chunks(in_chunks[2], in_chunks[3], nints, ngroups,
                            (tiling or Tiling()).working_bytes)
    chunks4 = (nints, ngroups, yc, xc)
    data = dask_array(data_xr.data, chunks=chunks4).astype(np.float32)
    gdq = dask_array(gdq_xr.data, chunks=chunks4).astype(np.uint8)
    dnu_groups = kr.group_range_mask(params["firstgroup"], params["lastgroup"], ngroups)
    if dnu_groups.any():
        mask = da.from_array(np.where(dnu_groups, np.uint8(dqflags.DO_NOT_USE),
                                      np.uint8(0))[None, :, None, None])
        gdq = gdq | mask
    pdq = dask_array(ds["pixeldq"].transpose("y", "x").data, chunks=(yc, xc)).astype(np.uint32)
    gain = dask_array(refs["gain"]["sci"], ("y", "x"), chunks=(yc, xc)).astype(np.float32)
    rn = dask_array(refs["readnoise"]["sci"].transpose("y", "x").data, chunks=(yc, xc)).astype(
        np.float32)
    if "average_dark_current" in ds:
        dark = dask_array(ds["average_dark_current"].transpose("y", "x").data, chunks=(yc, xc))
        dark = dark.astype(np.float32)
    else:
        # jwst's dark_current fills RampModel.average_dark_current with the scalar (the
        # step parameter or the DARK's AVDRKCUR keyword); never set, stcal uses zeros
        scalar = ds.attrs.get("average_dark_current")
        dark = da.full((ny, nx), np.float32(0.0 if scalar is None else scalar),
                       dtype=np.float32, chunks=(yc, xc))
    if "zeroframe" in ds:
        zf = dask_array(ds["zeroframe"].transpose("integration", "y", "x").data,
                      (nints, yc, xc)).astype(np.float32)
        zf_args = (zf, "iyx")
    else:
        zf_args = (None, None)

    group_all_dnu = None
    if is_miri(ds.attrs) and ngroups > 1:
        # stcal discard_miri_groups: groups DO_NOT_USE in every pixel of every integration
        group_all_dnu = ((gdq & np.uint8(dqflags.DO_NOT_USE)) != 0).all(axis=(0, 2, 3))
    # stcal's exposure-wide "no product" decision, from two small reductions
    group_all_sat = ((gdq & np.uint8(dqflags.SATURATED)) != 0).all(axis=(0, 2, 3))
    # (blockwise, not dask.delayed: a delayed call would optimise and so duplicate the
    # whole upstream graph under new keys)
    if group_all_dnu is None:
        no_product = da.blockwise(_no_product, "", group_all_sat, "g", concatenate=True,
                                  dtype=bool, meta=np.empty((), dtype=bool))
    else:
        no_product = da.blockwise(_no_product, "", group_all_sat, "g", group_all_dnu, "g",
                                  concatenate=True, dtype=bool, meta=np.empty((), dtype=bool))
    blocks = da.blockwise(
        partial(_fit_block, meta=_meta(ds.attrs), flags=_flags(), save_opt=save_opt,
                suppress_one_group=suppress), "yx",
        data, "igyx", gdq, "igyx", pdq, "yx", gain, "yx", rn, "yx", dark, "yx", *zf_args,
        concatenate=True, dtype=object, meta=np.empty((0, 0), dtype=object),
        group_all_dnu=group_all_dnu,
    )

    def pick(product, name, dtype, lead=()):
        new_axis = list(range(len(lead)))
        chunks = tuple((n,) for n in lead) + blocks.chunks
        return da.map_blocks(_pick, blocks, product, name, dtype, new_axis=new_axis or None,
                             chunks=chunks, dtype=dtype,
                             meta=np.empty((0,) * (2 + len(lead)), dtype=dtype))

    attrs = dict(ds.attrs)
    attrs["bunit"] = "DN/s"
    gain_factor = (refs["gain"].attrs or {}).get("gain_factor")
    if gain_factor is not None:
        attrs["gain_factor"] = gain_factor
    coords_yx = {"y": ds["y"].values, "x": ds["x"].values}
    scalars = _scalars(ds)

    def product(lead_dims, lead):
        variables = {}
        for var, key in RATE_VARIABLES.items():
            dtype = np.uint32 if key == "dq" else np.float32
            arr = pick("rateints" if lead else "rate", key, dtype, lead)
            variables[var] = (lead_dims + ("y", "x"), arr.rechunk(
                tuple((n,) for n in lead) + (in_chunks[2], in_chunks[3])))
        variables.update(scalars)
        variables[NO_PRODUCT] = ((), no_product)
        coords = dict(coords_yx)
        if lead:
            coords["integration"] = ds["integration"].values
        out = xr.Dataset(variables, coords=coords, attrs=dict(attrs))
        return record(out, STEP, "COMPLETE", params)

    rate = product((), ())
    rateints = product(("integration",), (nints,))

    fitopt = None
    if save_opt:
        bound = kr.max_segments(ngroups)
        variables = {}
        for name in kr.FITOPT_NAMES:
            if name == "pedestal":
                variables[name] = (("integration", "y", "x"),
                                   pick("fitopt", name, np.float32, (nints,)))
            else:
                axis = "cr" if name == "crmag" else "segment"
                variables[name] = (("integration", axis, "y", "x"),
                                   pick("fitopt", name, np.float32, (nints, bound)))
        for name, key in (("max_num_segs", "nsegs"), ("max_num_crs", "ncrs")):
            counts = da.map_blocks(_pick_count, blocks, key,
                                   chunks=tuple((1,) * len(c) for c in blocks.chunks),
                                   dtype=np.int64, meta=np.empty((0, 0), dtype=np.int64))
            variables[name] = ((), counts.max())
        fitopt = xr.Dataset(variables, coords={**coords_yx,
                                               "integration": ds["integration"].values},
                            attrs=dict(ds.attrs))
        fitopt[NO_PRODUCT] = ((), no_product)
        fitopt = record(fitopt, STEP, "COMPLETE", params)
    return {"rate": rate, "rateints": rateints, "fitopt": fitopt}


def trim_fitopt(ds):
    """A fitopt Dataset cut to jwst's shape: ``max_num_segs`` segment planes and
    ``max_num_crs`` CR planes (what ``RampFitOutputModel`` holds); the two counts are
    dropped. Computes the counts if they are still lazy (best done on a computed
    Dataset, or with the arrays in the same ``dask.compute``).
    """
    nsegs, ncrs = (int(np.asarray(v)) for v in
                   da.compute(ds["max_num_segs"].data, ds["max_num_crs"].data))
    out = ds.drop_vars(["max_num_segs", "max_num_crs"])
    return out.isel(segment=slice(0, max(nsegs, 0)), cr=slice(0, max(ncrs, 0)))


STEP = StepDef(
    __name__,
    params={
        "algorithm": Param("option", "OLS_C", "ramp fitting algorithm ('LIKELY' not "
                           "implemented yet)", options=("OLS_C", "LIKELY")),
        "int_name": Param("string", ""),
        "save_opt": Param("boolean", False, "Save optional output"),
        "opt_name": Param("string", ""),
        "suppress_one_group": Param("boolean", True, "Suppress saturated ramps with good 0th "
                                    "group"),
        "firstgroup": Param("integer", None, "Ignore groups before this one (zero indexed)"),
        "lastgroup": Param("integer", None, "Ignore groups after this one (zero indexed)"),
        "maximum_cores": Param("string", "1", "cores for multiprocessing (detflow: the "
                               "single-core result always; Dask does the parallelism)"),
    },
    apply=apply,
    tiled=True,
)
