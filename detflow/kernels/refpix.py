"""Reference-pixel correction (jwst ``RefPixStep``): plain NumPy.

Near-IR (median algorithm) first; MIRI full frame at the end of the module
(:func:`miri_block_stats` and the functions after it).

Everything here works on small arrays: the reference lines of one tile of integrations
and groups (the statistics), or one data tile (the subtraction). The step
(:mod:`detflow.steps.refpix`) gathers the reference lines with Dask and applies the
result blockwise.

Frames. jwst computes in the *detector* frame of the full 2048 x 2048 detector
(``reffile_utils.science_detector_frame_transform`` on the subarray embedded in a full
frame). :func:`detector_axes` maps full-frame DMS coordinates to detector rows/columns;
the statistics below take their inputs already placed in the detector frame.

Precision. jwst 3.0.0 keeps one work array per exposure (``Dataset.group``), created
with the data's dtype (float32). The side correction (``group - side_gain * sidegroup``)
returns a *float64* array that replaces it, so with ``use_side_ref_pixels`` every group
after the first one (integration 0, group 0), and the ZEROFRAME, are processed in
float64: clipped means of float64 values, top/bottom subtraction not rounded to
float32 before the side correction. The functions here take that working dtype as an
argument (``regime64``) and reproduce both paths bit for bit.
"""

import numpy as np

#: Full-frame size of a near-IR detector.
NFULL = 2048
#: Detector rows holding the top/bottom reference pixels: bottom 0-3, then top 2044-2047.
REF_ROWS = (0, 1, 2, 3, 2044, 2045, 2046, 2047)
#: Detector columns holding the side reference pixels: left 0-3, then right 2044-2047.
SIDE_COLS = (0, 1, 2, 3, 2044, 2045, 2046, 2047)
#: Columns per amplifier (A, B, C, D) in the detector frame.
AMP_WIDTH = 512
#: NIRSpec subarrays that touch no detector edge: jwst flags their first/last four DMS
#: columns as reference pixels (``NRS_edgeless_subarrays``).
EDGELESS_SUBARRAYS = ("SUB512", "SUB512S", "SUB32")


def detector_axes(fastaxis, slowaxis, n=NFULL):
    """How DMS ``y``/``x`` map to detector rows/columns.

    Parameters
    ----------
    fastaxis, slowaxis : int
        FASTAXIS/SLOWAXIS keywords (+-1 or +-2).
    n : int
        Full-frame size.

    Returns
    -------
    dict
        ``{"y": (kind, f), "x": (kind, f)}`` where ``kind`` is ``"row"`` or ``"col"``
        (the detector axis that DMS axis becomes) and ``f(coords) -> indices`` maps
        0-based full-frame DMS coordinates to detector indices, as in
        ``reffile_utils.science_detector_frame_transform``.
    """

    def flip(sign):
        return (lambda c: np.asarray(c, dtype=np.int64)) if sign > 0 else (
            lambda c: n - 1 - np.asarray(c, dtype=np.int64))

    if abs(int(fastaxis)) == 1:
        return {"y": ("row", flip(slowaxis)), "x": ("col", flip(fastaxis))}
    return {"y": ("col", flip(fastaxis)), "x": ("row", flip(slowaxis))}


def sigma_clip_mean(data, dq, siglimit, dnu):
    """jwst ``Dataset.sigma_clip``: clipped mean of the pixels without ``dnu``.

    Parameters
    ----------
    data : ndarray
        Reference pixel values, any shape, in jwst's order (row-major in the
        detector frame); float32 or float64 (the dtype of the result follows).
    dq : ndarray
        DQ of the same shape.
    siglimit : float
        Clipping limit (low and high) in standard deviations.
    dnu : int
        The DO_NOT_USE bit.

    Returns
    -------
    numpy scalar or None
        ``None`` where no pixel is usable.
    """
    good = np.where(np.bitwise_and(dq, dnu) == 0)
    if len(good[0]) == 0:
        return None
    values = data[good]
    if np.std(values, dtype=np.float64) != 0.0:
        clipped = sigmaclip(values, siglimit, siglimit)
        return clipped.mean()
    return values.mean(dtype=np.float64)


def sigmaclip(values, low, high):
    """``scipy.stats.sigmaclip``'s clipped values, by the same NumPy operations (which jwst
    calls; scipy.stats itself costs most of a second to import).

    Parameters
    ----------
    values : numpy.ndarray
        Values (raveled).
    low, high : float
        Lower and upper clipping limits in standard deviations.

    Returns
    -------
    numpy.ndarray
        The values left when an iteration removes nothing more.
    """
    c = np.ravel(np.asarray(values))
    delta = 1
    while delta:
        c_std = np.std(c)
        c_mean = np.mean(c)
        size = c.size
        critlower = c_mean - c_std * low
        critupper = c_mean + c_std * high
        c = c[(c >= critlower) & (c <= critupper)]
        delta = size - c.size
    return c


def average_with_none(a, b):
    """jwst ``average_with_none``: the mean of two numbers, or the one that is not None."""
    if a is None and b is None:
        return None
    if a is None:
        return b
    if b is None:
        return a
    return 0.5 * (a + b)


def top_bottom_signals(rows, rows_dq, *, odd_even_columns, siglimit, dnu):
    """Per-amplifier top/bottom reference signals of one group (jwst ``get_refvalues`` and
    the averaging of ``do_top_bottom_correction``).

    Parameters
    ----------
    rows : ndarray, shape (8, 2048)
        Detector rows :data:`REF_ROWS` (bottom four, then top four) in the working dtype.
    rows_dq : ndarray, shape (8, 2048)
        Their pixel DQ (detector frame, subarray embedded).
    odd_even_columns : bool
    siglimit : float
    dnu : int

    Returns
    -------
    list of 4 tuples
        For amplifiers A-D, ``(signal for even column indices, signal for odd column
        indices)`` as numpy scalars (the same value twice when not ``odd_even_columns``),
        or ``None`` where jwst subtracts nothing from that amplifier.
    """
    out = []
    halves = {"bottom": slice(0, 4), "top": slice(4, 8)}
    for amp in range(4):
        c0, c1 = amp * AMP_WIDTH, (amp + 1) * AMP_WIDTH
        if odd_even_columns:
            vals = {}
            for name, rs in halves.items():
                # jwst "odd" = even column indices, "even" = odd column indices
                vals[name] = (
                    sigma_clip_mean(rows[rs, c0:c1:2], rows_dq[rs, c0:c1:2], siglimit, dnu),
                    sigma_clip_mean(rows[rs, c0 + 1:c1:2], rows_dq[rs, c0 + 1:c1:2],
                                    siglimit, dnu),
                )
            even_idx = average_with_none(vals["top"][0], vals["bottom"][0])
            odd_idx = average_with_none(vals["top"][1], vals["bottom"][1])
            out.append(None if even_idx is None or odd_idx is None else (even_idx, odd_idx))
        else:
            top = sigma_clip_mean(rows[4:8, c0:c1], rows_dq[4:8, c0:c1], siglimit, dnu)
            bottom = sigma_clip_mean(rows[0:4, c0:c1], rows_dq[0:4, c0:c1], siglimit, dnu)
            sig = average_with_none(top, bottom)
            out.append(None if sig is None else (sig, sig))
    return out


def reflect_rows(data, smoothing_length):
    """jwst ``create_reflected``: ``data`` extended by ``smoothing_length // 2`` reflected
    rows at each end (``smoothing_length`` made odd first).

    Parameters
    ----------
    data : ndarray, shape (nrows, ncols)
    smoothing_length : int

    Returns
    -------
    ndarray, shape (nrows + L - 1, ncols), ``L`` the odd smoothing length.
    """
    nrows, ncols = data.shape
    if smoothing_length % 2 == 0:
        smoothing_length = smoothing_length + 1
    reflected = np.zeros((nrows + smoothing_length - 1, ncols), dtype=data.dtype)
    buf = smoothing_length // 2
    reflected[buf:buf + nrows] = data[:]
    reflected[:buf] = data[buf:0:-1]
    reflected[-buf:] = data[-2:-(buf + 2):-1]
    return reflected


def running_median(data, dq, smoothing_length, dnu):
    """jwst ``NIRDataset.median_filter``, vectorised: the median of each window of
    ``smoothing_length`` rows of ``data``, DO_NOT_USE pixels excluded, over ``data``
    reflected at the ends by ``L // 2`` rows (``L`` the smoothing length made odd; jwst
    keeps the even length for the window itself).

    Equal to jwst's loop of ``np.median`` bit for bit: the median is taken in the dtype
    of ``data`` (for an even count, ``(lo + hi) / 2`` in that dtype, as ``np.mean`` of
    the two middle values), NaN when the window holds a NaN or no usable pixel.

    Parameters
    ----------
    data : ndarray, shape (nrows, ncols)
        Side reference columns, float32 or float64.
    dq : ndarray, shape (nrows, ncols)
    smoothing_length : int
    dnu : int

    Returns
    -------
    ndarray, shape (nrows,), float64
    """
    # jwst reflects by (odd length) // 2 rows but runs a window of the length as given:
    # an even length gives windows of that even height, shifted by half a row
    length = smoothing_length
    nrows = data.shape[0]
    vals = np.lib.stride_tricks.sliding_window_view(
        reflect_rows(data, smoothing_length), length, axis=0)[:nrows].reshape(nrows, -1)
    good = np.lib.stride_tricks.sliding_window_view(
        (reflect_rows(dq, smoothing_length) & dnu) == 0, length, axis=0)[:nrows].reshape(
        nrows, -1)
    ngood = good.sum(axis=1)
    # unusable pixels sort after every usable one (an infinite usable value ties with them)
    ordered = np.sort(np.where(good, vals, np.inf).astype(data.dtype), axis=1)
    result = np.full(nrows, np.nan)
    has = ngood > 0
    rows = np.nonzero(has)[0]
    lo = ordered[rows, (ngood[has] - 1) // 2]
    hi = ordered[rows, ngood[has] // 2]
    even = ngood[has] % 2 == 0
    med = np.where(even, (lo + hi) / data.dtype.type(2), lo)
    anynan = (np.isnan(vals) & good).any(axis=1)[has]
    med = np.where(anynan, np.nan, med)
    result[rows] = med
    return result


def combine_with_nans(a, b):
    """jwst ``combine_with_nans``: mean of ``a`` and ``b``, or the one that is not NaN,
    or 0 where both are NaN. Shapes ``(n,)``, float64."""
    result = np.zeros(len(a), dtype=a.dtype)
    an, bn = np.isnan(a), np.isnan(b)
    result[an & ~bn] = b[an & ~bn]
    result[~an & bn] = a[~an & bn]
    both = ~an & ~bn
    result[both] = 0.5 * (a[both] + b[both])
    return result


def fullframe_group_stats(rows, rows_dq, side, side_dq, *, odd_even_columns,
                          use_side_ref_pixels, side_smoothing_length, side_gain, siglimit,
                          dnu):
    """What jwst subtracts from one group, full frame or 4-output subarray
    (``do_fullframe_corrections``, median algorithm).

    Parameters
    ----------
    rows : ndarray, shape (8, 2048)
        Detector rows :data:`REF_ROWS`, in the working dtype (float32 or float64).
    rows_dq : ndarray, shape (8, 2048), uint32
    side : ndarray, shape (2048, 8) or None
        Detector columns :data:`SIDE_COLS` (all rows), working dtype, before the
        top/bottom correction; only read with ``use_side_ref_pixels``.
    side_dq : ndarray, shape (2048, 8) or None
    odd_even_columns, use_side_ref_pixels : bool
    side_smoothing_length : int
    side_gain, siglimit : float
    dnu : int

    Returns
    -------
    tb : ndarray, shape (2048,), float64
        Top/bottom signal per detector column (0 where jwst subtracts nothing), the
        exact value of jwst's numpy scalar.
    sidecorr : ndarray, shape (2048,), float64
        ``side_gain * combined`` per detector row (zeros without side correction).
    """
    signals = top_bottom_signals(rows, rows_dq, odd_even_columns=odd_even_columns,
                                 siglimit=siglimit, dnu=dnu)
    tb = np.zeros(NFULL)
    for amp, sig in enumerate(signals):
        if sig is not None:
            c0 = amp * AMP_WIDTH
            tb[c0:c0 + AMP_WIDTH:2] = sig[0]
            tb[c0 + 1:c0 + AMP_WIDTH:2] = sig[1]
    sidecorr = np.zeros(NFULL)
    if use_side_ref_pixels:
        corrected = side.copy()
        for k, col in enumerate(SIDE_COLS):
            sig = signals[col // AMP_WIDTH]
            if sig is not None:
                # as jwst: group[slice] = group[slice] - signal (cast to the work dtype)
                corrected[:, k] = corrected[:, k] - sig[col % 2]
        left = running_median(corrected[:, 0:4], side_dq[:, 0:4], side_smoothing_length, dnu)
        right = running_median(corrected[:, 4:8], side_dq[:, 4:8], side_smoothing_length, dnu)
        sidecorr = side_gain * combine_with_nans(left, right)
    return tb, sidecorr


def subarray_group_stats(values, columns, *, odd_even_columns, siglimit, dnu, dq):
    """What jwst subtracts from one group of a one-output subarray
    (``do_subarray_corrections``).

    Parameters
    ----------
    values : ndarray, shape (nref,), float32
        The usable reference pixels (REFERENCE_PIXEL and not DO_NOT_USE) in detector
        row-major order.
    columns : ndarray, shape (nref,)
        Their full-frame detector columns.
    odd_even_columns : bool
    siglimit : float
    dnu : int
    dq : ndarray, shape (nref,)
        Their DQ (all without ``dnu``; passed to the clipped mean as jwst does).

    Returns
    -------
    ndarray, shape (2048,), float64
        Signal per detector column (zeros when there is no reference pixel).

    Raises
    ------
    ValueError
        ``odd_even_columns`` and one column parity has no reference pixel: jwst 3.0.0
        fails there (it indexes with an empty float array).
    """
    tb = np.zeros(NFULL)
    if values.size == 0:
        return tb
    if odd_even_columns:
        even = columns % 2 == 0
        if even.all() or not even.any():
            raise ValueError(
                "reference pixels in only one column parity: jwst 3.0.0's refpix fails on "
                "this exposure (use odd_even_columns=False)"
            )
        tb[0::2] = sigma_clip_mean(values[even], dq[even], siglimit, dnu)
        tb[1::2] = sigma_clip_mean(values[~even], dq[~even], siglimit, dnu)
    else:
        tb[:] = sigma_clip_mean(values, dq, siglimit, dnu)
    return tb


def embed_lines(lines, line_pos, along_pos, shape, slots, fill_value, transpose):
    """Place DMS lines into a detector-frame array of reference rows or columns.

    Parameters
    ----------
    lines : ndarray, shape (..., k, n)
        ``k`` lines of ``n`` pixels.
    line_pos : sequence of int, length k
        Detector index (row or column) of each line.
    along_pos : ndarray, shape (n,)
        Detector index of each pixel along the lines.
    shape : tuple
        Leading shape of the result (e.g. ``()`` or ``(nint, ngroup)``).
    slots : sequence of int
        The detector indices held by the result (:data:`REF_ROWS` or :data:`SIDE_COLS`).
    fill_value : scalar
    transpose : bool
        False: result ``(..., len(slots), 2048)`` (rows); True: ``(..., 2048, len(slots))``.

    Returns
    -------
    ndarray
    """
    out = np.full(tuple(shape) + (len(slots), NFULL), fill_value, dtype=lines.dtype)
    for k, pos in enumerate(line_pos):
        out[..., slots.index(int(pos)), along_pos] = lines[..., k, :]
    return np.swapaxes(out, -1, -2) if transpose else out


def fullframe_block_stats(row_lines, row_dq, side_lines, side_dq, regime64, *, geometry,
                          odd_even_columns, use_side_ref_pixels, side_smoothing_length,
                          side_gain, siglimit, dnu, refpix):
    """:func:`fullframe_group_stats` for a block of integrations and groups.

    Parameters
    ----------
    row_lines : ndarray, shape (ni, ng, kr, nr) or None
        The DMS lines that are detector reference rows.
    row_dq : ndarray, shape (kr, nr) or None
    side_lines : ndarray, shape (ni, ng, ks, ns) or None
        The DMS lines that are detector side columns (None without side correction).
    side_dq : ndarray, shape (ks, ns) or None
    regime64 : ndarray, shape (ni, ng), bool
        Whether jwst works in float64 on that group (see the module docstring).
    geometry : dict
        ``row_pos``/``row_along``/``side_pos``/``side_along``: detector indices of the
        lines and of the pixels along them (see :func:`embed_lines`).
    refpix : int
        The REFERENCE_PIXEL bit (outside a subarray jwst flags DO_NOT_USE|REFERENCE_PIXEL).

    Returns
    -------
    ndarray, shape (ni, ng, 2, 2048), float64
        ``[..., 0, :]`` top/bottom signal per detector column, ``[..., 1, :]`` side
        correction per detector row.
    """
    ni, ng = regime64.shape
    fill_dq = np.uint32(dnu | refpix)

    def embed(lines, pos, along, slots, lead, fill, dtype, transpose):
        if lines is None or len(pos) == 0:
            out = np.full(tuple(lead) + (len(slots), NFULL), fill, dtype=dtype)
            return np.swapaxes(out, -1, -2) if transpose else out
        return embed_lines(lines.astype(dtype, copy=False), pos, along, lead, slots, fill,
                           transpose)

    g = geometry
    rows_dq = embed(row_dq, g["row_pos"], g["row_along"], REF_ROWS, (), fill_dq, np.uint32,
                    False)
    rows_all = embed(row_lines, g["row_pos"], g["row_along"], REF_ROWS, (ni, ng), 0,
                     np.float32, False)
    sdq = side_all = None
    if use_side_ref_pixels:
        sdq = embed(side_dq, g["side_pos"], g["side_along"], SIDE_COLS, (), fill_dq,
                    np.uint32, True)
        side_all = embed(side_lines, g["side_pos"], g["side_along"], SIDE_COLS, (ni, ng), 0,
                         np.float32, True)
    out = np.zeros((ni, ng, 2, NFULL))
    for i in range(ni):
        for k in range(ng):
            # the values are float32 data; in the float64 regime jwst holds them upcast
            dtype = np.float64 if regime64[i, k] else np.float32
            side = None if side_all is None else side_all[i, k].astype(dtype)
            out[i, k, 0], out[i, k, 1] = fullframe_group_stats(
                rows_all[i, k].astype(dtype), rows_dq, side, sdq,
                odd_even_columns=odd_even_columns, use_side_ref_pixels=use_side_ref_pixels,
                side_smoothing_length=side_smoothing_length, side_gain=side_gain,
                siglimit=siglimit, dnu=dnu)
    return out


def subarray_candidates(line_dqs, line_flat, line_extra, *, dnu, refpix):
    """The usable reference pixels of a one-output subarray, from candidate lines.

    Parameters
    ----------
    line_dqs : list of ndarray, each shape (k, n), uint32
        Pixel DQ of each group of candidate lines.
    line_flat : list of ndarray, each shape (k, n), int64
        Detector-frame flat index ``row * 2048 + col`` of each pixel.
    line_extra : list of bool
        Whether jwst adds REFERENCE_PIXEL to that group (edgeless NIRSpec subarrays).
    dnu, refpix : int

    Returns
    -------
    select : ndarray, shape (nref,), int64
        Indices into the concatenation of the flattened lines, in detector row-major
        order, one per distinct pixel that is REFERENCE_PIXEL and not DO_NOT_USE.
    columns : ndarray, shape (nref,), int64
        Their detector columns.
    dq : ndarray, shape (nref,), uint32
    """
    flat = np.concatenate([f.ravel() for f in line_flat]) if line_flat else np.zeros(0, int)
    dq = (np.concatenate([d.ravel().astype(np.uint32) for d in line_dqs]) if line_dqs
          else np.zeros(0, np.uint32))
    extra = (np.concatenate([np.full(f.size, bool(e))
                             for f, e in zip(line_flat, line_extra, strict=True)])
             if line_flat else np.zeros(0, bool))
    uniq, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
    add = np.zeros(uniq.size, bool)
    np.logical_or.at(add, inverse.ravel(), extra)
    udq = dq[first] | np.where(add, np.uint32(refpix), np.uint32(0))
    usable = ((udq & refpix) == refpix) & ((udq & dnu) != dnu)
    return first[usable], uniq[usable] % NFULL, udq[usable]


def subarray_block_stats(lines, *, select, columns, dq, odd_even_columns, siglimit, dnu):
    """:func:`subarray_group_stats` for a block of integrations and groups.

    Parameters
    ----------
    lines : list of ndarray, each shape (ni, ng, k, n)
        The candidate lines (same order as given to :func:`subarray_candidates`).
    select, columns, dq : ndarray
        From :func:`subarray_candidates`.

    Returns
    -------
    ndarray, shape (ni, ng, 2, 2048), float64
        ``[..., 0, :]`` signal per detector column; ``[..., 1, :]`` zeros (no side
        correction for one-output subarrays).
    """
    ni, ng = lines[0].shape[:2] if lines else (0, 0)
    values = (np.concatenate([ln.reshape(ni, ng, -1) for ln in lines], axis=-1)[..., select]
              if lines else None)
    out = np.zeros((ni, ng, 2, NFULL))
    for i in range(ni):
        for g in range(ng):
            out[i, g, 0] = subarray_group_stats(
                np.ascontiguousarray(values[i, g]), columns,
                odd_even_columns=odd_even_columns, siglimit=siglimit, dnu=dnu, dq=dq)
    return out


def apply_correction(data, tb, side, regime64, *, tb_axis, use_side_ref_pixels):
    """Subtract the reference signals from a data tile, with jwst's rounding.

    float32 path: ``y = float32(x - tb)`` (jwst's float32 subtraction, or a float64 one
    rounded on assignment: the same value, since float64 has more than 2*24+2 bits),
    then with side correction ``float32(float64(y) - side)``. float64 path (see the
    module docstring): ``float32((x - tb) - side)`` in float64.

    Parameters
    ----------
    data : ndarray, shape (ni, ng, ny, nx), float32
    tb : ndarray, shape (ni, ng, nx) or (ni, ng, ny), float64
        Top/bottom signal along the DMS axis that maps to detector columns.
    side : ndarray, shape (ni, ng, ny) or (ni, ng, nx), float64
        Side correction along the other axis.
    regime64 : ndarray, shape (ni, ng), bool
    tb_axis : {"x", "y"}
        The DMS axis of ``tb``.
    use_side_ref_pixels : bool

    Returns
    -------
    ndarray, shape (ni, ng, ny, nx), float32
    """
    out = np.empty(data.shape, dtype=np.float32)
    for i in range(data.shape[0]):
        for g in range(data.shape[1]):
            if tb_axis == "x":
                t, s = tb[i, g][None, :], side[i, g][:, None]
            else:
                t, s = tb[i, g][:, None], side[i, g][None, :]
            x = data[i, g].astype(np.float64)
            if regime64[i, g]:
                out[i, g] = (x - t) - s
            elif use_side_ref_pixels:
                out[i, g] = (x - t).astype(np.float32).astype(np.float64) - s
            else:
                out[i, g] = x - t
    return out


# --- MIRI full frame (jwst ``MIRIDataset``) ---------------------------------------------

#: Full-frame size of a MIRI detector: rows, columns.
MIRI_SHAPE = (1024, 1032)
#: MIRI reference columns: left 0-3, then right 1028-1031. Amplifier ``c`` (A-D) owns
#: columns ``c::4``, its left reference column ``c`` and its right one ``1028 + c``.
MIRI_REF_COLS = (0, 1, 2, 3, 1028, 1029, 1030, 1031)


def subtract_first_read(data, first):
    """jwst's ``data[i] - first_read[i]`` stored in float32: the difference of the
    float32 values taken in float64 (``first_read`` is a float64 array), rounded to
    float32 on assignment.

    Parameters
    ----------
    data : ndarray, shape (..., ny, nx), float32
    first : ndarray, broadcastable to ``data``, float32 (group 0 of the integration)

    Returns
    -------
    ndarray, float32
    """
    return (data.astype(np.float64) - first.astype(np.float64)).astype(np.float32)


def miri_group_signals(ref, ref_dq, *, odd_even_rows, siglimit, dnu):
    """What jwst subtracts from one MIRI group (``MIRIDataset.get_refvalues`` and
    ``do_left_right_correction``).

    For each amplifier, the clipped means (:func:`sigma_clip_mean`: pixels without
    ``dnu`` in the *pixel* DQ, ``scipy.stats.sigmaclip(x, siglimit, siglimit)``, the
    float32 mean of the clipped float32 values, or a float64 mean when their std is 0)
    of its left and its right reference column, separately for rows 0, 2, 4... and
    1, 3, 5... (``odd_even_rows``; else over all rows); the signal is
    ``0.5 * (left + right)`` with NumPy 2's scalar rules (float32 when both means are
    float32, float64 when either is).

    Parameters
    ----------
    ref : ndarray, shape (1024, 8), float32
        The group's reference columns :data:`MIRI_REF_COLS` after the first-read
        subtraction (:func:`subtract_first_read`).
    ref_dq : ndarray, shape (1024, 8), uint32
        Their pixel DQ.
    odd_even_rows : bool
    siglimit : float
    dnu : int

    Returns
    -------
    signals : ndarray, shape (4, 2), float64
        ``[amp, row % 2]``: the exact value of jwst's signal for amplifier ``amp``
        (A-D) and rows of that parity (both parities equal without ``odd_even_rows``);
        NaN where a mean is None.
    missing : bool
        Whether a clipped mean is None (no pixel without ``dnu``): jwst then sets
        ``bad_reference_pixels`` and stops (:func:`miri_corrected_groups`).
    """
    signals = np.full((4, 2), np.nan)
    missing = False
    rows = (slice(0, None, 2), slice(1, None, 2)) if odd_even_rows else (slice(None),)
    for amp in range(4):
        means = []
        for side in (amp, amp + 4):  # left column, then right column
            means.append([sigma_clip_mean(ref[r, side], ref_dq[r, side], siglimit, dnu)
                          for r in rows])
        for parity in range(2):
            p = parity if odd_even_rows else 0
            left, right = means[0][p], means[1][p]
            if left is None or right is None:
                missing = True
                continue
            signals[amp, parity] = 0.5 * (left + right)  # numpy scalars, as jwst
    return signals, missing


def miri_block_stats(ref, first, ref_dq, groups, *, odd_even_rows, siglimit, dnu):
    """:func:`miri_group_signals` for a block of integrations and groups.

    Parameters
    ----------
    ref : ndarray, shape (ni, ng, 1024, 8), float32
        The reference columns :data:`MIRI_REF_COLS` of the groups, as input to refpix.
    first : ndarray, shape (ni, 1024, 8), float32
        The same columns in group 0 of each integration.
    ref_dq : ndarray, shape (1024, 8), uint32
    groups : ndarray, shape (ng,), int
        Index of each group in its integration; group 0 gets no statistics (jwst skips
        it: after the subtraction it is all zeros).
    odd_even_rows : bool
    siglimit : float
    dnu : int

    Returns
    -------
    ndarray, shape (ni, ng, 4, 2), float64
        The signals (see :func:`miri_group_signals`; zeros for group 0).
    """
    ni, ng = ref.shape[:2]
    out = np.zeros((ni, ng, 4, 2))
    for i in range(ni):
        for g in range(ng):
            if int(groups[g]) == 0:
                continue
            work = subtract_first_read(ref[i, g], first[i])
            out[i, g] = miri_group_signals(work, ref_dq, odd_even_rows=odd_even_rows,
                                           siglimit=siglimit, dnu=dnu)[0]
    return out


def miri_missing_reference(ref_dq, *, odd_even_rows, dnu):
    """Whether some amplifier has a reference column (left or right) without a usable
    pixel in rows of one parity (all rows without ``odd_even_rows``): where
    :func:`miri_group_signals` reports ``missing``. That depends on the pixel DQ alone,
    so it is the same for every group of the exposure.

    Parameters
    ----------
    ref_dq : ndarray, shape (1024, 8), uint32
    odd_even_rows : bool
    dnu : int

    Returns
    -------
    bool
    """
    good = (np.asarray(ref_dq) & dnu) == 0
    if odd_even_rows:
        return bool(not (good[0::2].any(axis=0).all() and good[1::2].any(axis=0).all()))
    return bool(not good.any(axis=0).all())


def miri_corrected_groups(missing):
    """Which groups jwst corrects, replaying ``MIRIDataset.do_fullframe_corrections``.

    jwst loops over integrations and, inside, over groups 1..ngroups-1; a group whose
    statistics lack a mean (``missing``) sets ``bad_reference_pixels`` and breaks out of
    that integration's loop, *before* the group is corrected. The flag is never reset,
    so in every later integration the first group visited (group 1) breaks at once. As
    the flag comes from the pixel DQ, which is the same for every group, in practice it
    is raised at integration 0, group 1, and no group of the exposure is corrected,
    while the step still reports COMPLETE. (The first read is subtracted and added back
    all the same, which may round.)

    Parameters
    ----------
    missing : ndarray, shape (nints, ngroups), bool

    Returns
    -------
    ndarray, shape (nints, ngroups), bool
    """
    missing = np.asarray(missing, dtype=bool)
    nints, ngroups = missing.shape
    corrected = np.zeros((nints, ngroups), dtype=bool)
    bad_reference_pixels = False
    for i in range(nints):
        for g in range(1, ngroups):
            if missing[i, g]:
                bad_reference_pixels = True
            if bad_reference_pixels:
                break
            corrected[i, g] = True
    return corrected


def miri_apply(data, first, signals, rows, cols):
    """jwst's MIRI full-frame correction of one data tile, with its rounding.

    Per pixel: ``d = float32(x - x0)`` (float64 difference, :func:`subtract_first_read`),
    ``d = float32(d - s)`` with ``s`` the signal of the pixel's amplifier
    (``col % 4``) and row parity (``row % 2``) -- a float32 subtraction in jwst when
    ``s`` is float32, a float64 one rounded on assignment when it is float64: both equal
    the float64 difference rounded, as float64 has more than 2*24+2 bits -- and then
    ``float32(d + x0)`` in float64 (jwst's ``data[i] += first_read[i]``). Groups jwst
    does not correct have ``s = 0`` (``d - 0.0`` is ``d``, bit for bit).

    Parameters
    ----------
    data : ndarray, shape (ni, ng, ny, nx), float32
    first : ndarray, shape (ni, ny, nx), float32
        Group 0 of each integration on the same tile.
    signals : ndarray, shape (ni, ng, 4, 2), float64
        Signal per amplifier and row parity, 0 where jwst corrects nothing.
    rows, cols : ndarray, shapes (ny,), (nx,), int
        Full-frame row and column of each tile row and column.

    Returns
    -------
    ndarray, shape (ni, ng, ny, nx), float32
    """
    out = np.empty(data.shape, dtype=np.float32)
    parity = np.asarray(rows) % 2
    amp = np.asarray(cols) % 4
    for i in range(data.shape[0]):
        x0 = first[i].astype(np.float64)
        for g in range(data.shape[1]):
            d = (data[i, g].astype(np.float64) - x0).astype(np.float32)
            s = signals[i, g][amp[None, :], parity[:, None]]
            d = (d.astype(np.float64) - s).astype(np.float32)
            out[i, g] = d.astype(np.float64) + x0
    return out


def miri_zeroframe(zeroframe):
    """jwst's MIRI full-frame refpix of the ZEROFRAME (one group per integration, so no
    group is corrected): ``float32(float32(z - z) + z)`` in float64, then 0 where the
    ZEROFRAME was 0 -- ``z`` itself, except NaN where ``z`` is infinite.

    Parameters
    ----------
    zeroframe : ndarray, shape (ni, ny, nx), float32

    Returns
    -------
    ndarray, float32
    """
    z = zeroframe.astype(np.float64)
    with np.errstate(invalid="ignore"):  # inf - inf
        d = (z - z).astype(np.float32)
    out = (d.astype(np.float64) + z).astype(np.float32)
    out[zeroframe == 0] = 0.0
    return out
