"""dark_current: subtract the DARK reference ramp (jwst ``DarkCurrentStep``, cal_step
``dark_sub``; stcal ``dark_sub``).

* The DARK is used on the science region as it is (jwst never cuts it; the pipeline layer
  opens it with the exposure's exact region).
* A dark with fewer frames than ``ngroups*nframes + (ngroups-1)*groupgap`` is extrapolated
  linearly from its last two groups.
* If the dark's NFRAMES or GROUPGAP exceeds the science one, the step is SKIPPED (the
  data are returned as they are).
* NaN in the dark becomes 0. Equal frame patterns: the dark is subtracted group by group;
  otherwise it is first averaged to the science pattern (mean of ``nframes`` dark frames,
  skipping ``groupgap``).
* Subtracted from every group of every integration, group 0 included. MIRI darks have one
  ramp per integration: science integration ``i`` uses dark integration ``i`` (when
  INTSTART is 1), later ones the last dark integration.
* ``pixeldq |= dark dq`` (MIRI: the OR of the integrations' first-group planes).

The arithmetic and dtypes are stcal's (see :mod:`detflow.kernels.dark_current`).

Average dark current (the Poisson-noise term ramp_fit adds, in e-/s), set as jwst 3.0.0's
``set_average_dark_current`` sets ``RampModel.average_dark_current`` (whenever a DARK is
given, even when the subtraction is SKIPPED), in this order:

1. the step parameter ``average_dark_current``, if given;
2. the DARK's 2-D ``AVDRKCUR`` extension, if present and its sum is not 0 -- but only
   if the input already holds an average dark current of the science shape: jwst
   compares ``np.shape`` of the two, and a RampModel that never had one holds ``None``
   (shape ``()``), so jwst warns and leaves it unset, which ramp_fit reads as zeros.
   In an ordinary detector1 run the map therefore has no effect; detflow does the same;
3. the DARK's scalar ``AVDRKCUR`` keyword (0 if absent).

jwst holds it as a float32 ``(ny, nx)`` array. detflow stores
``attrs["average_dark_current"]`` as the float32-rounded scalar of case 1 or 3 and, when
the DARK has an ``AVDRKCUR`` extension (case 2 possible), a lazy data variable
``average_dark_current`` ``(y, x)`` float32: where the map's sum is 0 the scalar, else
the map (input had a value) or the input's value (zeros where jwst leaves it unset). The
choice depends on the map's sum, so it is made lazily. A consumer (ramp_fit) uses the
variable when present, else the scalar attribute (0 when absent).

``dark_output`` (saving the averaged dark) is recorded but the file is written by the
pipeline layer, not here (steps do no I/O): :func:`averaged_dark` gives it the dark
jwst would save, lazily.

Chunk contract: blockwise, no halo, any tiling of the data (groups may be split): the
dark is prepared (extrapolated, averaged) on tiles that hold all its groups, aligned with
the data's y/x tiles, then cut to the data's group chunks.
"""

import dask.array as da
import numpy as np
import xarray as xr

from detflow.errors import ReferenceFileError
from detflow.kernels import dark_current as kernel
from detflow.steps.base import Param, StepDef, as_float32, dask_array, rechunk_spatial_like, record

AVERAGE_DARK_CURRENT = "average_dark_current"




def _ref_int(ref, name):
    value = ref.attrs.get(name)
    if value is None:
        raise ReferenceFileError(
            "DARK", "", f"{ref.attrs.get('filename', 'the DARK file')} has no "
            f"{name.upper()} keyword, which the dark subtraction needs")
    return int(value)


def set_average_dark_current(out, ds, ref, params):
    """``out`` with the average dark current set as jwst's ``set_average_dark_current``
    sets it (see the module docstring). Lazy; returns a new Dataset."""
    out = out.copy()
    user = params.get("average_dark_current")
    if user is not None:
        out.attrs[AVERAGE_DARK_CURRENT] = float(np.float32(user))
        return out.drop_vars(AVERAGE_DARK_CURRENT, errors="ignore")
    scalar = ref.attrs.get("average_dark_current")
    scalar = float(np.float32(0.0 if scalar is None else scalar))
    if "avdrkcur" not in ref or ref["avdrkcur"].ndim != 2:
        out.attrs[AVERAGE_DARK_CURRENT] = scalar
        return out.drop_vars(AVERAGE_DARK_CURRENT, errors="ignore")
    amap = ref["avdrkcur"].astype(np.float32).transpose("y", "x")
    # the map replaces a value the input already holds (a variable or a scalar, of the
    # science shape); never set: jwst's shape test fails, ramp_fit then uses zeros
    had_value = AVERAGE_DARK_CURRENT in ds or ds.attrs.get(AVERAGE_DARK_CURRENT) is not None
    applied = amap if had_value else xr.zeros_like(amap)
    # jwst tests np.sum(map) == 0.0 on the float32 map; the sum here is float64, which
    # differs only for a map whose float32 pairwise sum cancels exactly (never in practice).
    # A NaN in the map makes the sum NaN, which is "not 0" for jwst: NaNs are not skipped.
    nonzero = amap.astype(np.float64).sum(skipna=False) != 0.0
    out.attrs[AVERAGE_DARK_CURRENT] = scalar
    out[AVERAGE_DARK_CURRENT] = xr.where(nonzero, applied, np.float32(scalar)).astype(
        np.float32)
    return out


def _patterns(ds, ref):
    """(science pattern kwargs, the stcal plan) for an exposure and its DARK."""
    kw = dict(
        sci_nints=ds.sizes["integration"], sci_ngroups=ds.sizes["group"],
        sci_nframes=int(ds.attrs["nframes"]), sci_groupgap=int(ds.attrs.get("groupgap") or 0),
        drk_nframes=_ref_int(ref, "nframes"), drk_groupgap=_ref_int(ref, "groupgap"),
    )
    plan = kernel.dark_plan(kw["sci_ngroups"], kw["sci_nframes"], kw["sci_groupgap"],
                            ref["sci"].sizes["group"], kw["drk_nframes"], kw["drk_groupgap"])
    return kw, plan


def averaged_dark(ds, ref):
    """The dark jwst subtracts, lazily, as its ``dark_output`` option saves it.

    Parameters
    ----------
    ds : xarray.Dataset
        The exposure.
    ref : xarray.Dataset
        The DARK reference on the exposure's region.

    Returns
    -------
    xarray.DataArray or None
        ``(group, y, x)`` (near-IR) or ``(integration, group, y, x)`` (MIRI), in stcal's
        dtype (float64 for an extrapolated dark subtracted without averaging; jwst's
        DarkModel stores float32), chunked like the exposure in y/x, with attrs
        ``nframes``, ``groupgap``, ``ngroups`` as jwst writes them. ``None`` when the step
        is SKIPPED for the frame patterns. For the matched pattern this is the
        reference dark itself (extrapolated, NaN -> 0), with more groups than the science.
    """
    kw, plan = _patterns(ds, ref)
    if plan["skip"]:
        return None
    sci = ref["sci"]
    four_d = sci.ndim == 4
    ddims = ("integration", "group", "y", "x") if four_d else ("group", "y", "x")
    like = dask_array(ds["data"], ("integration", "group", "y", "x"))
    dark = rechunk_spatial_like(dask_array(sci, ddims), like)
    nd = dark.shape[0] if four_d else None
    ng = dark.shape[-3]
    ng_out = ng + plan["extrapolate"] if plan["match"] else kw["sci_ngroups"]
    if four_d:
        chunks = ((nd,), (ng_out,), dark.chunks[2], dark.chunks[3])
    else:
        chunks = ((ng_out,), dark.chunks[1], dark.chunks[2])
    prepared = da.map_blocks(
        kernel.dark_for_science, dark, dtype=plan["dtype"], chunks=chunks,
        meta=np.empty((0,) * dark.ndim, dtype=plan["dtype"]), **kw,
    )
    if plan["match"]:
        attrs = {"nframes": kw["drk_nframes"], "groupgap": kw["drk_groupgap"],
                 "ngroups": int((ref.attrs.get("ngroups") or ng) + plan["extrapolate"])}
    else:
        attrs = {"nframes": kw["sci_nframes"], "groupgap": kw["sci_groupgap"],
                 "ngroups": kw["sci_ngroups"]}
    attrs.update(pattern="matched" if plan["match"] else "averaged",
                 extrapolated=plan["extrapolate"])
    coords = {"y": ds["y"], "x": ds["x"]} if "y" in ds.coords else {}
    return xr.DataArray(prepared, dims=("integration",) * four_d + ("group", "y", "x"),
                        coords=coords, attrs=attrs, name="dark")


def apply(ds, refs, params):
    """Lazy dark subtraction (see the module docstring)."""
    out = as_float32(ds)
    ref = refs.get("dark")
    if ref is None:
        return record(out, STEP, "SKIPPED", params, reason="no DARK reference file")
    out = set_average_dark_current(out, ds, ref, params)
    dark = averaged_dark(out, ref)
    if dark is None:
        return record(out, STEP, "SKIPPED", params,
                      reason="the dark's nframes or groupgap exceeds the science data's")
    dims = ds["data"].dims
    data = dask_array(out["data"], ("integration", "group", "y", "x"))
    ngroups = ds.sizes["group"]
    prepared = dark.data
    if dark.ndim == 4:  # MIRI: dark integration i for science integration i, then the last
        int_start = ds.attrs.get("intstart") or 1
        ndark = prepared.shape[0]
        pick = [i if (i < ndark and int_start == 1) else ndark - 1
                for i in range(ds.sizes["integration"])]
        per_int = prepared[pick, :ngroups].rechunk({0: data.chunks[0], 1: data.chunks[1]})
        new_data = da.blockwise(
            kernel.subtract_dark, "igyx", data, "igyx", per_int, "igyx", dtype=np.float32,
            concatenate=True, meta=np.empty((0, 0, 0, 0), dtype=np.float32),
        )
    else:
        per_group = prepared[:ngroups].rechunk({0: data.chunks[1]})
        new_data = da.blockwise(
            kernel.subtract_dark, "igyx", data, "igyx", per_group, "gyx", dtype=np.float32,
            concatenate=True, meta=np.empty((0, 0, 0, 0), dtype=np.float32),
        )
    out["data"] = out["data"].transpose("integration", "group", "y", "x").copy(
        data=new_data).transpose(*dims)

    if "dq" in ref:
        dq = ref["dq"].astype(np.uint32)
        if dq.ndim == 4:  # MIRI: OR of the integrations' first-group planes
            dq = dq.isel({dq.dims[1]: 0})
            dq = _or_reduce(dq, dq.dims[0])
        elif dq.ndim != 2:
            raise ReferenceFileError(
                "DARK", "", f"{ref.attrs.get('filename', 'the DARK file')}: a near-IR DARK "
                "has a 2-D DQ array (jwst's DarkModel)")
        out["pixeldq"] = (ds["pixeldq"] | dq.transpose("y", "x")).transpose(
            *ds["pixeldq"].dims)
    return record(out, STEP, "COMPLETE", params, dark_pattern=dark.attrs["pattern"],
                  dark_extrapolated=dark.attrs["extrapolated"])


def _or_reduce(var, dim):
    result = var.isel({dim: 0})
    for i in range(1, var.sizes[dim]):
        result = result | var.isel({dim: i})
    return result


STEP = StepDef(
    __name__,
    reference_pixels="pointwise",
    params={
        "dark_output": Param("output_file", None,
                             "Dark model or averaged dark subtracted"),
        "average_dark_current": Param(
            "float", None, "The average dark current for this detector in units of e-/sec."),
    },
    apply=apply,
)
