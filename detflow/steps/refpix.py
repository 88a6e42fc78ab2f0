"""refpix: reference-pixel correction (jwst ``RefPixStep``): near-IR (median algorithm)
and MIRI full frame.

Chunk contract (near-IR): a small global reduction, then a blockwise apply.

1. Reduction. The statistics only read the reference lines of the detector frame: the
   four bottom and four top detector rows (top/bottom correction) and the four left and
   four right detector columns (side correction); for a one-output subarray, the pixels
   flagged REFERENCE_PIXEL, which jwst's masks put on those same border lines (plus, for
   NIRSpec's edgeless subarrays, their first and last four columns). Those lines (at most
   16 per group) are cut from the data lazily and, per block of integrations and groups,
   :func:`detflow.kernels.refpix.fullframe_block_stats` /
   :func:`~detflow.kernels.refpix.subarray_block_stats` compute what jwst subtracts: a
   value per detector column (top/bottom, per amplifier and column parity) and one per
   detector row (side). The values go through the same NumPy/SciPy calls, in the same
   order and dtype, as in jwst. In the pipeline the lines come from a small graph of
   their own: the graph builder reads them from the file and takes them through the
   steps before refpix (:func:`line_positions`, ``refs["reference_lines"]``), so each
   tile is corrected as soon as it is ready, instead of every tile of an integration
   waiting in memory for statistics that need all of them. Cut from the tiles
   otherwise (an exposure built in memory, an undeclared step before refpix).
2. Apply. Each data tile gets ``x - column value - row value`` with jwst's rounding
   (:func:`~detflow.kernels.refpix.apply_correction`); no halo, any chunking, bit-identical.

The ZEROFRAME gets the same treatment (pixels at 0 stay 0). DQ arrays are unchanged.
Not implemented yet (raise :class:`~detflow.errors.DetflowError`): NIRSpec IRS2,
``refpix_algorithm='sirs'``, multistripe subarrays.

MIRI (jwst ``MIRIDataset``; full frame only, 1024 x 1032: a smaller frame is a subarray,
SKIPPED as jwst does). In jwst: subtract group 0 of each integration (kept in float64);
for groups 1..n-1, per amplifier ``c`` (columns ``c::4``) and row parity, the mean of
the clipped means of its left (``c``) and right (``1028 + c``) reference columns,
pixels with DO_NOT_USE in the *pixel* DQ excluded (the group DQ is not read), is
subtracted from the amplifier's columns (reference columns included); then group 0 is
added back. Only ``odd_even_rows`` and ``siglimit`` act; the near-IR parameters are
ignored, as in jwst. Arithmetic and rounding: :func:`detflow.kernels.refpix.miri_apply`.

jwst's state quirk, reproduced: an amplifier whose left or right reference column has
no usable pixel (in rows of one parity) sets ``bad_reference_pixels``, which breaks out
of the group loop before that group is corrected and is never reset, so every later
integration is left uncorrected too; the step still says COMPLETE. As the flag comes
from the pixel DQ, it is raised at integration 0, group 1: nothing is corrected at all
(the first read is still subtracted and added back, which may round).
:func:`~detflow.kernels.refpix.miri_corrected_groups` replays the loop.

Chunk contract (MIRI): a small reduction, then a blockwise apply; any chunking, no halo,
bit-identical.

1. Reduction. The 8 reference columns are cut from the tiles (``(nints, ngroups, 1024,
   8)``, one chunk along rows and columns, the data's chunks along integrations and
   groups); per block of integrations and groups,
   :func:`~detflow.kernels.refpix.miri_block_stats` gives the signals ``(ni, ng, 4, 2)``
   (amplifier, row parity; float64 holding jwst's float32 or float64 value). Whether
   jwst corrects each group (the quirk's sequential state over integrations) comes
   from the reference columns' pixel DQ in one small task
   (:func:`~detflow.kernels.refpix.miri_missing_reference`,
   :func:`~detflow.kernels.refpix.miri_corrected_groups`); the signals of the groups
   jwst leaves alone are set to 0.
2. Apply. Each data tile ``(ni, ng, ny, nx)`` with group 0 of the same tile and
   integrations (the first read) and the small signals array:
   :func:`~detflow.kernels.refpix.miri_apply`, with ``da.blockwise``. A tile needs group
   0 of its integrations, so a block of later groups reads that group's tile too (by
   default ``group`` is not split). The statistics hold 1024 x 8 pixels per group.

The ZEROFRAME (ZEROFRAM set) has one group per integration: nothing is corrected, but
jwst's subtraction and addition of the first read are reproduced
(:func:`~detflow.kernels.refpix.miri_zeroframe`).
"""

import dask.array as da
import numpy as np

from detflow import dqflags
from detflow.contract import is_miri
from detflow.errors import DetflowError, ParameterError
from detflow.kernels import refpix as k
from detflow.steps.base import (
    Param,
    StepDef,
    as_float32,
    dask_array,
    has_zeroframe,
    record,
    skipped,
)


def _not_implemented(what):
    return DetflowError(f"refpix: {what} is not implemented in detflow yet")


def _check_supported(ds, params):
    """Raise for the modes that are not implemented; returns True when jwst skips (MIRI
    subarray)."""
    attrs = ds.attrs
    ny, nx = ds.sizes["y"], ds.sizes["x"]
    if is_miri(ds.attrs):
        return nx < k.MIRI_SHAPE[1] or ny < k.MIRI_SHAPE[0]  # jwst: skipped for subarrays
    readpatt = str(attrs.get("readpatt") or "").upper()
    if readpatt.startswith("NRSIRS2") or max(ny, nx) > k.NFULL:
        raise _not_implemented("the NIRSpec IRS2 correction (refpix reference file)")
    if params["refpix_algorithm"] == "sirs":
        raise _not_implemented("refpix_algorithm='sirs' (SIRSKERNEL convolution)")
    headers = [attrs.get("primary_header") or {}, attrs.get("sci_header") or {}]
    if any(h.get("MSTR_RD1") is not None for h in headers):
        raise _not_implemented("the multistripe subarray correction")
    return False


def _subarray_fits(ds):
    """jwst's SUBARRAY_DOESNTFIT test on the 1-based SUBSTRT/SUBSIZE (or the coordinates)."""
    a = ds.attrs
    ys, xs = ds["y"].values, ds["x"].values
    col0 = int(a["substrt1"]) - 1 if a.get("substrt1") is not None else int(xs[0])
    row0 = int(a["substrt2"]) - 1 if a.get("substrt2") is not None else int(ys[0])
    ncol = int(a["subsize1"]) if a.get("subsize1") is not None else len(xs)
    nrow = int(a["subsize2"]) if a.get("subsize2") is not None else len(ys)
    return row0 >= 0 and col0 >= 0 and row0 + nrow <= k.NFULL and col0 + ncol <= k.NFULL


class _Geometry:
    """Where the DMS tile axes fall in the detector frame, for one exposure."""

    def __init__(self, ds):
        fast, slow = ds.attrs.get("fastaxis"), ds.attrs.get("slowaxis")
        if fast is None or slow is None:
            raise DetflowError("refpix: the exposure has no FASTAXIS/SLOWAXIS keywords")
        axes = k.detector_axes(int(fast), int(slow))
        self.ys, self.xs = ds["y"].values, ds["x"].values
        self.det = {"y": axes["y"][1](self.ys), "x": axes["x"][1](self.xs)}
        self.row_axis = "y" if axes["y"][0] == "row" else "x"  # DMS axis -> detector rows
        self.col_axis = "x" if self.row_axis == "y" else "y"

    def positions(self, axis, wanted):
        """Indices along DMS ``axis`` whose detector index is in ``wanted``."""
        return np.nonzero(np.isin(self.det[axis], wanted))[0]

    def flat(self, axis, idx):
        """Detector flat index ``row * 2048 + col`` of the pixels of the DMS lines ``idx``
        along ``axis`` (shape ``(len(idx), n_other)``)."""
        other = "x" if axis == "y" else "y"
        line = self.det[axis][idx][:, None]
        along = self.det[other][None, :]
        rows, cols = (line, along) if axis == self.row_axis else (along, line)
        return rows * k.NFULL + cols


def _lines(arr, axis, idx):
    """DMS lines ``idx`` along ``axis`` of ``(..., ny, nx)``: ``(..., len(idx), n_other)``,
    one chunk along the last two axes."""
    idx = np.asarray(idx, dtype=np.int64)
    if axis == "y":
        out = arr[..., idx, :]
    else:
        out = da.swapaxes(arr[..., idx], -1, -2)
    return out.rechunk({out.ndim - 2: -1, out.ndim - 1: -1})


def _fullframe_positions(geo, use_side):
    """DMS axis -> positions of the lines the full-frame statistics read (reference rows
    along the detector-row axis; side columns too with the side correction)."""
    out = {}
    ir = geo.positions(geo.row_axis, k.REF_ROWS)
    if len(ir):
        out[geo.row_axis] = ir
    ic = geo.positions(geo.col_axis, k.SIDE_COLS) if use_side else ()
    if len(ic):
        out[geo.col_axis] = ic
    return out


def _line_arrays(axis, idx, arr, pdq, lines):
    """The data and pixeldq lines ``idx`` along ``axis``: cut from the tiles, or taken
    from ``lines[axis]`` (a Dataset of just those lines, computed on its own)."""
    if lines is None:
        return _lines(arr, axis, idx), _lines(pdq, axis, idx)
    sub = as_float32(lines[axis])
    data = sub["data"].transpose("integration", "group", "y", "x").data
    dq = sub["pixeldq"].transpose("y", "x").data.astype(np.uint32)
    every = np.arange(len(idx))
    return _lines(data, axis, every), _lines(dq, axis, every)


def _stats_fullframe(arr, pdq, geo, regime, params, lines=None):
    """Lazy ``(ni, ng, 2, 2048)`` float64: top/bottom per detector column, side per row."""
    use_side = bool(params["use_side_ref_pixels"])
    pos = _fullframe_positions(geo, use_side)
    geometry = {"row_pos": (), "row_along": geo.det[geo.col_axis],
                "side_pos": (), "side_along": geo.det[geo.row_axis]}
    args = []
    for axis, key, ind in ((geo.row_axis, "row_pos", "ab"), (geo.col_axis, "side_pos", "cd")):
        if axis in pos:
            geometry[key] = geo.det[axis][pos[axis]]
            data, dq = _line_arrays(axis, pos[axis], arr, pdq, lines)
            args += [data, "ig" + ind, dq, ind]
        else:
            args += [None, None, None, None]
    return da.blockwise(
        k.fullframe_block_stats, "igst", *args, regime, "ig",
        new_axes={"s": 2, "t": k.NFULL}, dtype=np.float64, concatenate=True,
        geometry=geometry, odd_even_columns=bool(params["odd_even_columns"]),
        use_side_ref_pixels=use_side, side_smoothing_length=int(params["side_smoothing_length"]),
        side_gain=float(params["side_gain"]), siglimit=float(params["siglimit"]),
        dnu=dqflags.DO_NOT_USE, refpix=dqflags.REFERENCE_PIXEL,
    )


def _subarray_stats_block(nbad, regime, *parts, flats, extras, odd_even_columns, siglimit):
    """Block function of the one-output statistics (``parts``: lines, dq, lines, dq...)."""
    if int(nbad) > 0:
        raise DetflowError(
            f"refpix: {int(nbad)} pixel(s) flagged REFERENCE_PIXEL lie off the detector's "
            "four-pixel border; detflow reads reference pixels only there"
        )
    lines, dqs = list(parts[0::2]), list(parts[1::2])
    select, columns, dq = k.subarray_candidates(
        dqs, flats, extras, dnu=dqflags.DO_NOT_USE, refpix=dqflags.REFERENCE_PIXEL)
    if not lines:
        return np.zeros(regime.shape + (2, k.NFULL))
    try:
        return k.subarray_block_stats(lines, select=select, columns=columns, dq=dq,
                                      odd_even_columns=odd_even_columns, siglimit=siglimit,
                                      dnu=dqflags.DO_NOT_USE)
    except ValueError as err:  # one column parity without reference pixels
        raise DetflowError(f"refpix: {err}") from None


def _stats_subarray(arr, pdq, geo, regime, ds, params):
    """Lazy ``(ni, ng, 2, 2048)`` float64 for a one-output subarray (side part zero)."""
    groups = [(geo.row_axis, geo.positions(geo.row_axis, k.REF_ROWS), False),
              (geo.col_axis, geo.positions(geo.col_axis, k.SIDE_COLS), False)]
    nx = len(geo.xs)
    if str(ds.attrs.get("subarray") or "").strip().upper() in k.EDGELESS_SUBARRAYS:
        edge = np.unique(np.r_[np.arange(min(4, nx)), np.arange(max(nx - 4, 0), nx)])
        groups.append(("x", edge, True))
    groups = [g for g in groups if len(g[1])]
    # candidates on the DMS grid, to check that no reference pixel lies elsewhere
    cand_y = np.zeros(len(geo.ys), bool)
    cand_x = np.zeros(nx, bool)
    for axis, idx, _ in groups:
        (cand_y if axis == "y" else cand_x)[idx] = True
    cy = da.from_array(cand_y, chunks=(pdq.chunks[0],))[:, None]
    cx = da.from_array(cand_x, chunks=(pdq.chunks[1],))[None, :]
    ref, dnu = dqflags.REFERENCE_PIXEL, dqflags.DO_NOT_USE
    nbad = (((pdq & ref) == ref) & ((pdq & dnu) != dnu) & ~(cy | cx)).sum()
    args, flats, extras = [], [], []
    letters = iter("abcdefuvwz")
    for axis, idx, extra in groups:
        a, b = next(letters), next(letters)
        args += [_lines(arr, axis, idx), "ig" + a + b, _lines(pdq, axis, idx), a + b]
        flats.append(geo.flat(axis, idx))
        extras.append(extra)
    return da.blockwise(
        _subarray_stats_block, "igst", nbad, "", regime, "ig", *args,
        new_axes={"s": 2, "t": k.NFULL}, dtype=np.float64, concatenate=True,
        flats=flats, extras=extras, odd_even_columns=bool(params["odd_even_columns"]),
        siglimit=float(params["siglimit"]),
    )


def _correct(arr, pdq, geo, regime64, ds, params, fullframe, lines=None):
    """Lazy corrected ``(ni, ng, ny, nx)`` float32 from ``arr`` (same shape and chunks)."""
    regime = da.from_array(regime64, chunks=(arr.chunks[0], arr.chunks[1]))
    if fullframe:
        stats = _stats_fullframe(arr, pdq, geo, regime, params, lines)
        use_side = bool(params["use_side_ref_pixels"])
    else:
        stats = _stats_subarray(arr, pdq, geo, regime, ds, params)
        use_side = False
    chunks = {"y": arr.chunks[2], "x": arr.chunks[3]}
    tb = stats[:, :, 0, :][..., geo.det[geo.col_axis]].rechunk(
        {2: chunks[geo.col_axis]})
    side = stats[:, :, 1, :][..., geo.det[geo.row_axis]].rechunk(
        {2: chunks[geo.row_axis]})
    tb_ind = "ig" + geo.col_axis
    side_ind = "ig" + geo.row_axis
    return da.blockwise(
        k.apply_correction, "igyx", arr, "igyx", tb, tb_ind, side, side_ind, regime, "ig",
        dtype=np.float32, tb_axis=geo.col_axis, use_side_ref_pixels=use_side,
    )


def _is_fullframe(ds):
    """Whether jwst treats the exposure as full frame (full frame, or a 4-output subarray
    embedded in one)."""
    ny, nx = ds.sizes["y"], ds.sizes["x"]
    return (ny >= k.NFULL and nx >= k.NFULL) or ds.attrs.get("noutputs") == 4


def line_positions(ds, params):
    """Where the statistics of :func:`apply` read ``data`` and ``pixeldq``, when they can
    be given to it as ``refs["reference_lines"]``.

    Returns
    -------
    dict or None
        DMS dimension (``"y"``/``"x"``) -> positions along it, for a full-frame (or
        4-output) exposure the step corrects; None otherwise (the step skips, fails, or
        reads a one-output subarray's lines from its tiles).

    ``refs["reference_lines"]`` then maps each dimension to ``ds`` restricted to those
    positions (``data`` and ``pixeldq`` as they would be in ``ds``), computed by a
    separate, small part of the graph: the statistics then need no tile of ``ds``, so
    each tile is corrected as soon as it is ready instead of every tile of the exposure
    waiting in memory for the statistics (the same numbers, either way).
    """
    params = STEP.check_params(params)
    if is_miri(ds.attrs):
        if _check_supported(ds, params):
            return None  # a subarray: skipped
        return {"x": list(MIRI_LINE_COLUMNS)}
    try:
        if _check_supported(ds, params) or not _subarray_fits(ds):
            return None
    except DetflowError:
        return None
    if not _is_fullframe(ds) or "fastaxis" not in ds.attrs or "slowaxis" not in ds.attrs:
        return None
    return _fullframe_positions(_Geometry(ds), bool(params["use_side_ref_pixels"])) or None


def apply(ds, refs, params):
    """Lazy reference-pixel correction of ``data`` ``(nints, ngroups, ny, nx)`` and
    ``zeroframe`` ``(nints, ny, nx)``; ``refs`` (refpix, sirskernel) are unused by the
    median algorithm. ``refs["reference_lines"]``, when given, holds the reference lines
    of ``data`` and ``pixeldq`` computed on their own (:func:`line_positions`)."""
    if _check_supported(ds, params):
        return skipped(as_float32(ds), STEP)
    if is_miri(ds.attrs):
        return _apply_miri(ds, params, refs.get("reference_lines"))
    if not _subarray_fits(ds):
        return skipped(as_float32(ds), STEP, "subarray does not fit in the full frame")
    fullframe = _is_fullframe(ds)
    lines = refs.get("reference_lines") if fullframe else None
    use_side = bool(params["use_side_ref_pixels"])
    length = int(params["side_smoothing_length"])
    if fullframe and use_side and not 2 <= length <= 2 * k.NFULL - 1:
        raise ParameterError(
            f"refpix.side_smoothing_length={length} must be between 2 and {2 * k.NFULL - 1} "
            "(jwst 3.0.0 fails outside that range)"
        )
    geo = _Geometry(ds)
    out = as_float32(ds)
    pdq = out["pixeldq"].transpose("y", "x").data.astype(np.uint32)
    data = out["data"].transpose("integration", "group", "y", "x")
    nints, ngroups = data.shape[:2]
    # jwst works in float64 after its first side correction (kernel module docstring)
    regime64 = np.full((nints, ngroups), fullframe and use_side)
    regime64[0, 0] = False
    if lines is not None:
        want = _fullframe_positions(geo, use_side)
        if set(lines) != set(want):
            raise DetflowError(f"refpix: reference_lines along {sorted(lines)}, but the "
                               f"statistics read lines along {sorted(want)}")
        for axis, sub in lines.items():
            other = "x" if axis == "y" else "y"
            if not (np.array_equal(sub[axis].values, ds[axis].values[want[axis]])
                    and np.array_equal(sub[other].values, ds[other].values)
                    and sub.sizes["integration"] == ds.sizes["integration"]
                    and sub.sizes["group"] == ds.sizes["group"]):
                raise DetflowError(f"refpix: reference_lines along {axis} are not the "
                                   "lines the statistics read")
    corrected = _correct(data.data, pdq, geo, regime64, ds, params, fullframe, lines)
    out["data"] = (data.dims, corrected)
    if has_zeroframe(out):  # ZEROFRAM absent: False, as jwst reads it
        zf = out["zeroframe"].transpose("integration", "y", "x")
        zregime = np.full((zf.shape[0], 1), fullframe and use_side)
        zc = _correct(zf.data[:, None], pdq, geo, zregime, ds, params, fullframe)[:, 0]
        zc = da.where(zf.data == 0, np.float32(0), zc)
        out["zeroframe"] = (zf.dims, zc)
    return record(out, STEP, "COMPLETE", params)


def _miri_corrected_groups(ref_dq, *, shape, odd_even_rows, dnu):
    """``(nints, ngroups)`` bool: the groups jwst corrects, from the reference columns'
    pixel DQ ``(1024, 8)`` (the same statistics lack a mean in every group)."""
    missing = k.miri_missing_reference(ref_dq, odd_even_rows=odd_even_rows, dnu=dnu)
    return k.miri_corrected_groups(np.full(shape, missing))


#: The columns MIRI's reference lines are computed on (:func:`line_positions`): the
#: reference columns and, beside each group of four, one science column, so that the
#: saturation flags the steps before refpix grow into a reference column from its
#: neighbour (which linearity then leaves uncorrected) are those of the whole frame.
MIRI_LINE_COLUMNS = (0, 1, 2, 3, 4, 1027, 1028, 1029, 1030, 1031)


def _miri_reference_columns(ds, out, lines):
    """``(data, pixeldq)`` of the reference columns, dask ``(nints, ngroups, 1024, 8)``
    and ``(1024, 8)``: from ``lines`` (:func:`line_positions`, computed on their own)
    when given, else cut from the tiles of ``out``."""
    cols = list(k.MIRI_REF_COLS)
    if lines is not None:
        sub = lines["x"]
        xs = ds["x"].values[cols]
        if not (set(xs) <= set(sub["x"].values) and np.array_equal(sub["y"].values,
                                                                    ds["y"].values)
                and sub.sizes["integration"] == ds.sizes["integration"]
                and sub.sizes["group"] == ds.sizes["group"]):
            raise DetflowError("refpix: reference_lines are not MIRI's reference columns")
        src = as_float32(sub).sel(x=xs)
    else:
        src = out.isel(x=cols)
    data = dask_array(src["data"], ("integration", "group", "y", "x"))
    pdq = dask_array(src["pixeldq"], ("y", "x"))
    return data, pdq


def _miri_signals(ref, ref_pdq, chunks, params):
    """Lazy ``(nints, ngroups, 4, 2)`` float64: what jwst subtracts per amplifier and row
    parity (0 where it corrects nothing), chunked as ``chunks`` (the data's integration
    and group chunks), from the reference columns ``ref`` and their pixel DQ."""
    nints, ngroups = ref.shape[:2]
    ref = ref.rechunk({0: chunks[0], 1: chunks[1], 2: -1, 3: -1})  # (nints, ngroups, 1024, 8)
    first = ref[:, 0]
    ref_dq = ref_pdq.rechunk(-1).astype(np.uint32)
    groups = da.arange(ngroups, chunks=(chunks[1],))
    odd_even_rows = bool(params["odd_even_rows"])
    dnu = dqflags.DO_NOT_USE
    stats = da.blockwise(
        k.miri_block_stats, "igab", ref, "igyc", first, "iyc", ref_dq, "yc", groups, "g",
        new_axes={"a": 4, "b": 2}, dtype=np.float64, concatenate=True,
        odd_even_rows=odd_even_rows, siglimit=float(params["siglimit"]), dnu=dnu,
    )
    corrected = da.blockwise(
        _miri_corrected_groups, "ig", ref_dq, "yc", new_axes={"i": nints, "g": ngroups},
        dtype=bool, concatenate=True, shape=(nints, ngroups), odd_even_rows=odd_even_rows,
        dnu=dnu,
    ).rechunk(chunks)
    return da.where(corrected[:, :, None, None], stats, 0.0)


def _apply_miri(ds, params, lines=None):
    """Lazy MIRI full-frame correction (see the module docstring)."""
    out = as_float32(ds)
    data = out["data"].transpose("integration", "group", "y", "x")
    arr = dask_array(data)
    ny, nx = arr.shape[2:]
    ref, ref_pdq = _miri_reference_columns(ds, out, lines)
    signals = _miri_signals(ref, ref_pdq, arr.chunks[:2], params)
    rows = da.arange(ny, chunks=(arr.chunks[2],))
    cols = da.arange(nx, chunks=(arr.chunks[3],))
    corrected = da.blockwise(
        k.miri_apply, "igyx", arr, "igyx", arr[:, 0], "iyx", signals, "igab", rows, "y",
        cols, "x", dtype=np.float32, concatenate=True,
    )
    out["data"] = (data.dims, corrected)
    if has_zeroframe(out):
        zf = out["zeroframe"].transpose("integration", "y", "x")
        out["zeroframe"] = (zf.dims, dask_array(zf).map_blocks(k.miri_zeroframe,
                                                               dtype=np.float32))
    return record(out, STEP, "COMPLETE", params)


STEP = StepDef(
    __name__,
    params={
        "odd_even_columns": Param(
            "boolean", True, "Compute reference signal separately for even/odd columns"),
        "use_side_ref_pixels": Param(
            "boolean", True, "Use side reference pixels for reference signal for each row"),
        "side_smoothing_length": Param(
            "integer", 11, "Median window smoothing height for side reference signal"),
        "side_gain": Param(
            "float", 1.0,
            "Multiplicative factor for side reference signal before subtracting from rows"),
        "odd_even_rows": Param(
            "boolean", True, "Compute reference signal separately for even- and odd-numbered rows"),
        "ovr_corr_mitigation_ftr": Param(
            "float", 3.0, "Factor to avoid overcorrection of bad reference pixels for IRS2"),
        "preserve_irs2_refpix": Param("boolean", False, "Preserve reference pixels in output"),
        "irs2_mean_subtraction": Param(
            "boolean", False, "Apply a mean offset subtraction before IRS2 correction"),
        "refpix_algorithm": Param(
            "option", "median", "NIR full-frame side pixel algorithm", options=("median", "sirs")),
        "sigreject": Param("float", 4.0, "Number of sigmas to reject as outliers"),
        "gaussmooth": Param(
            "float", 1.0, "Width of Gaussian smoothing kernel to use as a low-pass filter"),
        "halfwidth": Param("integer", 30, "Half-width of convolution kernel to build"),
        "siglimit": Param("float", 3.0, "Sigma clipping limit for outlier rejection"),
    },
    apply=apply,
)
