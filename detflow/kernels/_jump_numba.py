"""numba port of stcal 1.20's two-point-difference jump detection, pixel by pixel.

stcal (``jump/twopoint_difference.py``) works on whole arrays with NumPy; everything it
computes for a pixel depends on that pixel's groups and integrations only, except the
four-neighbour flags (the neighbours' own statistics) and a few exposure-wide decisions
the caller takes (regime, sigma-clip plane clearing, median gain). This module redoes
the per-pixel arithmetic operation by operation, in the precision NumPy uses there:

* ``dat = data * gain`` and ``read_noise = rnoise * gain`` in float32, ``read_noise**2``
  in float32; DO_NOT_USE/SATURATED groups become NaN;
* first differences are the float32 difference widened to float64 (stcal divides by
  ``dt_group = np.ones(1)``, a float64 *array*, so everything after is float64);
* medians are NumPy's ``nanmedian`` of float64 values: the middle value, or the
  float64 mean ``(lo + hi) / 2`` of the two middle ones (``np.ma.median`` below 600
  values and ``np.median`` above do the same);
* ``sigma = sqrt(|median| * 1.0 + float64(rn**2) / (0.5 * 2 * nframes))``, NaN where 0;
* the iterative regime (``iterative_jump`` / ``get_cr_locs`` / ``calc_med_first_diffs``):
  the first pass uses the float64 clipped median, later passes the median stored in
  stcal's float32 ``median_diffs_iter``; ``e_jump`` is float32 (``|d| - median`` computed
  in float64 then stored), the ratio float64. A difference is flagged where its ratio
  equals the pixel's ``nanmax`` over all integrations and differences and that maximum
  exceeds the threshold for the pixel's count of usable differences (which is what
  ``(ratio == nanmax) & cr_pix[:, None]`` amounts to: the integration holding the maximum
  is the one whose ``max_ratio`` passes). A pixel that flags nothing leaves stcal's
  ``index`` for good, so iterating per pixel until nothing is found (at most ``ndiffs``
  passes) is the same as stcal's loop over the whole array;
* the single-pass regime (``look_for_more_than_one_jump``) and the post-processing
  (``flag_four_neighbors``, ``transient_jumps`` with ``propagate_flags``: both of its
  options amount to OR-ing each flag into the next ``min(n, ngroups - 2)`` groups) and
  ``detect_jumps_data``'s removal of JUMP_DET where DO_NOT_USE or SATURATED is set.

How it is fast: the tile is processed one row at a time (all groups of the row copied
side by side, loops that start at 0 so numba drops its negative-index checks and
vectorises); the differences of every pixel of the row are sorted together by a
sorting network run on whole rows (``_sort_columns``, for up to 32 differences per
pixel); the iterative regime's first pass then needs only the clipped median and the
ratios of the smallest and largest difference (the largest ratio is one of those two),
and the full per-pixel loop runs only for the few pixels that pass. The signed median
and sigma of stcal's ``run_jump_detection`` only matter in the single pass and for
pixels with a JUMP_DET group (neighbours, after-jump flags), so they are computed only
there. Sorting may swap equal values (``-0.0`` and ``0.0`` included); no value read from
the sorted differences changes, and the sign of a zero median never reaches a decision
(it only enters through ``abs`` or a difference compared with a threshold).

numba without ``fastmath`` contracts nothing (no FMA) and ``error_model="numpy"`` gives
IEEE division, so the arithmetic rounds as NumPy's. The public entry is
:func:`jump_tile`; :mod:`detflow.kernels.jump` prepares its arguments.
"""

import numba
import numpy as np

__all__ = ["MODE_ITERATIVE", "MODE_NONE", "MODE_SINGLE_PASS", "jump_tile"]

#: ``gdq`` already holds the detection's flags (post-processing only).
MODE_NONE = 0
#: ``look_for_more_than_one_jump``.
MODE_SINGLE_PASS = 1
#: ``iterative_jump``.
MODE_ITERATIVE = 2

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
#: The per-pixel helpers are inlined in numba's IR (no call, no reference counting of
#: the scratch arrays on every pixel).
_INLINE = {**_JIT, "inline": "always"}


def _merge_sort_network(n):
    """Batcher's odd-even merge sort comparators ``(i, j)``, ``i < j``, for ``n`` values
    (the network for the next power of two, keeping the comparators inside ``n``: the
    rest would only meet ``+inf`` padding, which never moves)."""
    size = 1
    while size < n:
        size *= 2
    pairs = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            j = k % p
            while j <= size - 1 - k:
                for i in range(min(k, size - j - k)):
                    if (i + j) // (p * 2) == (i + j + k) // (p * 2):
                        pairs.append((i + j, i + j + k))
                j += 2 * k
            k //= 2
        p *= 2
    return [(i, j) for i, j in pairs if j < n]


#: Up to this many values, sorting runs a sorting network (branch-free), above it
#: ``ndarray.sort``.
_NETWORK_MAX = 32
_networks = [_merge_sort_network(n) for n in range(_NETWORK_MAX + 1)]
#: Comparators of the network for ``n`` values: ``_PAIRS[_OFFSETS[n]:_OFFSETS[n + 1]]``.
_OFFSETS = np.cumsum([0] + [len(net) for net in _networks]).astype(np.int64)
_PAIRS = np.array([pair for net in _networks for pair in net], dtype=np.int64).reshape(-1, 2)
del _networks


@numba.njit(**_INLINE)
def _sort(buf, n):
    """Sort ``buf[:n]`` (no NaN) ascending, in place. Equal values (``-0.0`` and ``0.0``
    included) may trade places, which changes no value read from the sorted array."""
    if n > _NETWORK_MAX:
        buf[:n].sort()
        return
    for c in range(_OFFSETS[n], _OFFSETS[n + 1]):
        i = _PAIRS[c, 0]
        j = _PAIRS[c, 1]
        lo = buf[i]
        hi = buf[j]
        buf[i] = hi if hi < lo else lo
        buf[j] = lo if hi < lo else hi


@numba.njit(**_JIT)
def _sort_columns(cols, n, xa, xb):
    """Sort each column ``cols[:n, x]``, ``xa <= x < xb``, ascending (no NaN; ``n <=
    _NETWORK_MAX``): the network of :func:`_sort` run on whole rows, so the pixels of a
    row are sorted side by side in vector registers."""
    for c in range(_OFFSETS[n], _OFFSETS[n + 1]):
        ri = cols[_PAIRS[c, 0]]
        rj = cols[_PAIRS[c, 1]]
        for x in range(xa, xb):
            lo = ri[x]
            hi = rj[x]
            ri[x] = hi if hi < lo else lo
            rj[x] = lo if hi < lo else hi


@numba.njit(**_INLINE)
def _sorted_median(srt, n):
    """NumPy's median of the sorted ``srt[:n]`` (``n > 0``): the middle value, or the
    float64 mean ``(lo + hi) / 2.0`` of the two middle ones."""
    h = n // 2
    if n % 2 == 1:
        return srt[h]
    return (srt[h - 1] + srt[h]) / 2.0


@numba.njit(**_INLINE)
def _compress(vals, n, buf):
    """Copy the non-NaN values of ``vals[:n]`` to the front of ``buf``; their count."""
    m = 0
    for k in range(n):
        v = vals[k]
        buf[m] = v
        m += not np.isnan(v)  # (branch-free)
    return m


@numba.njit(**_INLINE)
def _nanmedian(vals, n, buf):
    """``np.nanmedian`` of ``vals[:n]`` (float64); uses ``buf`` as scratch."""
    m = _compress(vals, n, buf)
    if m == 0:
        return np.nan
    _sort(buf, m)
    return _sorted_median(buf, m)


@numba.njit(**_INLINE)
def _clipped_median(srt, nus):
    """stcal ``calc_med_first_diffs`` for one pixel, from its ``nus`` usable absolute
    differences sorted in ``srt``: with four or more, every copy of the largest is
    dropped before the median; with three, the median; with two, the smaller; else
    NaN."""
    if nus < 2:
        return np.nan
    if nus == 2:
        return srt[0]  # np.nanmin
    if nus == 3:
        return srt[1]
    m = nus - 1
    while m > 0 and srt[m - 1] == srt[nus - 1]:
        m -= 1
    if m == 0:
        return np.nan  # all equal: nanmedian of nothing
    return _sorted_median(srt, m)


@numba.njit(**_INLINE)
def _sigma(med, var_rn):
    """``sqrt(|median| * dt + read_noise**2 / (0.5 * n_reads)) / dt`` with ``dt = 1``;
    NaN where 0."""
    sig = np.sqrt(np.abs(med) + var_rn)
    if sig == 0.0:
        return np.nan
    return sig


@numba.njit(**_INLINE)
def _ratio(value, med, sig):
    """stcal ``get_cr_locs``: ``|e_jump| / sigma`` with ``e_jump`` stored in float32."""
    return np.float64(np.abs(np.float32(value - med))) / sig


@numba.njit(**_INLINE)
def _row_median(row_s, row_n, row_d, x, nd, buf, by_columns):
    """The signed median of pixel ``x`` of the row (``row_s`` sorted when
    ``by_columns``)."""
    if by_columns:
        if row_n[x] == 0:
            return np.nan
        return _sorted_median(row_s[:, x], row_n[x])
    for k in range(nd):
        buf[k] = row_d[k, x]
    m = _compress(buf, nd, buf)
    if m == 0:
        return np.nan
    _sort(buf, m)
    return _sorted_median(buf, m)


@numba.njit(**_INLINE)
def _first_pass_finds(srt, nus, var_rn, thr4, thr3, thr2):
    """Whether :func:`_iterative`'s first pass flags anything, from the pixel's ``nus``
    usable absolute differences sorted in ``srt``."""
    if nus < 2:
        return False
    med = _clipped_median(srt, nus)
    sig = _sigma(med, var_rn)
    r_lo = _ratio(srt[0], med, sig)
    r_hi = _ratio(srt[nus - 1], med, sig)
    big = -np.inf
    big = r_lo if r_lo > big else big
    big = r_hi if r_hi > big else big
    if nus >= 4:
        return big > thr4
    if nus == 3:
        return big > thr3
    return big > thr2


@numba.njit(**_INLINE)
def _iterative(d, nd, ndg, ngroups, pg, a, buf, var_rn, thr4, thr3, thr2, jump):
    """stcal ``iterative_jump`` for one pixel: sets JUMP_DET in ``pg``
    (``(nints * ngroups,)``).

    The largest ratio of a pass is that of the smallest or of the largest absolute
    difference: ``|float32(x - median)| / sigma`` is a monotone function of ``x``
    composed with ``abs`` (every rounding step is monotone), so only those two are
    computed until a pass finds something.
    """
    for k in range(nd):
        a[k] = np.abs(d[k])
    for it in range(nd):  # stcal: ``for i in range(ndiffs)``
        nus = _compress(a, nd, buf)
        if nus < 2:
            return  # no threshold for fewer than two usable differences
        _sort(buf, nus)
        med = _clipped_median(buf, nus)
        if it > 0:
            med = np.float64(np.float32(med))  # stored in float32 median_diffs_iter
        sig = _sigma(med, var_rn)
        r_lo = _ratio(buf[0], med, sig)
        r_hi = _ratio(buf[nus - 1], med, sig)
        big = -np.inf  # nanmax; stays -inf when both are NaN (then nothing passes)
        big = r_lo if r_lo > big else big
        big = r_hi if r_hi > big else big
        if nus >= 4:
            found = big > thr4
        elif nus == 3:
            found = big > thr3
        else:
            found = big > thr2
        if not found:
            return
        for k in range(nd):
            if _ratio(a[k], med, sig) == big:  # NaN where a[k] is
                integ = k // ndg
                pg[integ * ngroups + k - integ * ndg + 1] |= jump
                a[k] = np.nan


@numba.njit(**_INLINE)
def _fill_row(row_q, row_e, row_var, x0, src_d, src_q, src_g, src_r, r, clear, use_clear,
              need_diffs, half_nreads, bad, jump):
    """Copy row ``r`` of a source (4-D data and group DQ, 2-D gain and read noise) to
    the row buffers from column ``x0`` on: group DQ (with the sigma-clip clearing),
    electrons (NaN where DO_NOT_USE|SATURATED) and the read-noise term. (Row views
    indexed from 0: numba needs no negative-index checks and vectorises.)"""
    nints, ngroups, n = src_q.shape[0], src_q.shape[1], src_q.shape[3]
    nan32 = np.float32(np.nan)
    for i in range(nints):
        for g in range(ngroups):
            dst = row_q[i * ngroups + g, x0:x0 + n]
            q_src = src_q[i, g, r]
            if use_clear and clear[i, g]:
                for x in range(n):
                    q = q_src[x]
                    dst[x] = 0 if q == jump else q
            else:
                for x in range(n):
                    dst[x] = q_src[x]
    if not need_diffs:
        return
    var = row_var[x0:x0 + n]
    g_src = src_g[r]
    r_src = src_r[r]
    for x in range(n):
        rn = r_src[x] * g_src[x]
        rn2 = rn * rn
        var[x] = np.float64(rn2) / half_nreads
    for i in range(nints):
        for g in range(ngroups):
            ig = i * ngroups + g
            q_row = row_q[ig, x0:x0 + n]
            e_row = row_e[ig, x0:x0 + n]
            d_src = src_d[i, g, r]
            for x in range(n):
                v32 = d_src[x] * g_src[x]
                e_row[x] = nan32 if q_row[x] & bad else v32


@numba.njit(**_INLINE)
def _fill_pixel(row_q, row_e, row_var, x, src_d, src_q, src_g, src_r, r, c, clear,
                use_clear, need_diffs, half_nreads, bad, jump):
    """:func:`_fill_row` for the one pixel ``[r, c]`` of a source, at column ``x``."""
    nints, ngroups = src_q.shape[0], src_q.shape[1]
    for i in range(nints):
        for g in range(ngroups):
            q = src_q[i, g, r, c]
            if use_clear and clear[i, g] and q == jump:
                q = 0
            row_q[i * ngroups + g, x] = q
    if not need_diffs:
        return
    gn = src_g[r, c]
    rn = src_r[r, c] * gn
    rn2 = rn * rn
    row_var[x] = np.float64(rn2) / half_nreads
    for i in range(nints):
        for g in range(ngroups):
            ig = i * ngroups + g
            v32 = src_d[i, g, r, c] * gn
            row_e[ig, x] = np.float32(np.nan) if row_q[ig, x] & bad else v32


@numba.njit(**_JIT)
def jump_tile(data, gdq, gain, rnoise, data_tb, gdq_tb, gain_tb, rn_tb, data_lr, gdq_lr,
              gain_lr, rn_lr, clear, halo, mode, finish, neighbours, after, half_nreads,
              thr4, thr3, thr2, nb_min, nb_max, e1, n1, e2, n2, dnu, sat, jump):
    """Jump detection and/or post-processing of one tile, with a halo of one pixel.

    Parameters
    ----------
    data : numpy.ndarray
        float32 ``(nints, ngroups, ny, nx)`` in DN: the tile.
    gdq : numpy.ndarray
        uint8 ``(nints, ngroups, ny, nx)``: the input group DQ (``mode`` 1, 2) or the
        detection's result (``mode`` 0).
    gain, rnoise : numpy.ndarray
        float32 ``(ny, nx)``.
    data_tb, gdq_tb : numpy.ndarray
        ``(nints, ngroups, 2, nx)``: the halo rows above and below the tile (used where
        ``halo`` says so).
    gain_tb, rn_tb : numpy.ndarray
        ``(2, nx)``.
    data_lr, gdq_lr : numpy.ndarray
        ``(nints, ngroups, ny, 2)``: the halo columns left and right of the tile.
    gain_lr, rn_lr : numpy.ndarray
        ``(ny, 2)``.
    clear : numpy.ndarray
        bool ``(nints, ngroups)``: planes whose JUMP-only pixels are reset to 0 before
        counting and post-processing (stcal's sigma-clip clearing; ``mode`` 0 only).
    halo : numpy.ndarray
        int64 ``(4,)``, each 0 or 1: halo row above, below, column left, right.
    mode : int
        :data:`MODE_NONE`, :data:`MODE_SINGLE_PASS` or :data:`MODE_ITERATIVE`.
    finish : bool
        Post-process (neighbours, after-jump flags if asked, JUMP clean-up); if False
        the output is the detection's flags.
    neighbours, after : bool
        ``flag_4_neighbors``; after-jump flagging (``n1 > 0 or n2 > 0``).
    half_nreads : float
        ``0.5 * n_reads_groupdiff`` (``0.5 * 2.0 * nframes``).
    thr4, thr3, thr2 : float
        Rejection thresholds for >= 4 (and the single pass), 3 and 2 usable differences;
        at least 0, as jwst's step spec requires (a negative threshold would let stcal flag
        pixels outside its ``index``, whose ratios it sets to 0).
    nb_min, nb_max : float
        ``min_jump_to_flag_neighbors``, ``max_jump_to_flag_neighbors``.
    e1, e2 : float
        After-jump thresholds in electrons (float32 values).
    n1, n2 : int
        After-jump group counts.
    dnu, sat, jump : int
        DQ bit values.

    Returns
    -------
    out : numpy.ndarray
        uint8 ``(nints, ngroups, ny, nx)``.
    count : int
        JUMP_DET groups of the tile after detection and clearing (stcal's primary cosmic
        rays), before post-processing.
    """
    nints, ngroups, ny, nx = data.shape
    ndg = ngroups - 1
    nd = nints * ndg
    ng = nints * ngroups
    # the tile is rows y0 .. y1 and columns x0 .. x1 of the tile-plus-halo
    y0, x0 = halo[0], halo[2]
    y1, x1 = y0 + ny, x0 + nx
    eny, enx = y1 + halo[1], x1 + halo[3]
    nb_on = finish and neighbours
    out = np.empty((nints, ngroups, ny, nx), dtype=np.uint8)
    # neighbour sources, with a border of zeros (pixel (y, x) at [y + 1, x + 1])
    src = np.zeros((nints, ngroups, eny + 2, enx + 2) if nb_on else (1, 1, 1, 1),
                   dtype=np.uint8)
    bad = dnu | sat
    need_diffs = mode != MODE_NONE or nb_on
    use_clear = mode == MODE_NONE
    by_columns = nd <= _NETWORK_MAX
    d = np.empty(max(nd, 1), dtype=np.float64)
    a = np.empty_like(d)
    buf = np.empty_like(d)
    pg = np.empty(ng, dtype=np.uint8)
    # one row of the tile-plus-halo at a time, all groups and differences side by side
    row_q = np.empty((ng, enx), dtype=np.uint8)
    row_e = np.empty((ng, enx), dtype=np.float32)  # electrons, NaN where DNU|SAT
    row_d = np.empty((max(nd, 1), enx), dtype=np.float64)  # first differences
    row_s = np.empty((max(nd, 1), enx), dtype=np.float64)  # sorted, NaN -> +inf
    row_n = np.empty(enx, dtype=np.int64)  # non-NaN differences
    row_j = np.empty(enx, dtype=np.uint8)  # JUMP_DET in a group of the pixel
    row_var = np.empty(enx, dtype=np.float64)  # read_noise**2 / (0.5 * n_reads)
    count = 0
    # ---- pass 1: detection (and the neighbour sources) on the tile and its halo
    for y in range(eny):
        inner_y = y0 <= y < y1
        if not inner_y and not nb_on:
            continue
        if inner_y:
            _fill_row(row_q, row_e, row_var, x0, data, gdq, gain, rnoise, y - y0, clear,
                      use_clear, need_diffs, half_nreads, bad, jump)
            if x0 > 0:
                _fill_pixel(row_q, row_e, row_var, 0, data_lr, gdq_lr, gain_lr, rn_lr,
                            y - y0, 0, clear, use_clear, need_diffs, half_nreads, bad, jump)
            if x1 < enx:
                _fill_pixel(row_q, row_e, row_var, x1, data_lr, gdq_lr, gain_lr, rn_lr,
                            y - y0, 1, clear, use_clear, need_diffs, half_nreads, bad, jump)
        else:
            _fill_row(row_q, row_e, row_var, x0, data_tb, gdq_tb, gain_tb, rn_tb,
                      0 if y < y0 else 1, clear, use_clear, need_diffs, half_nreads, bad,
                      jump)
            # the halo's corners neighbour no pixel of the tile: nothing usable there
            for x in (0, enx - 1):
                if x < x0 or x >= x1:
                    row_var[x] = 0.0
                    for ig in range(ng):
                        row_q[ig, x] = dnu
                        row_e[ig, x] = np.float32(np.nan)
        xa = 0  # loops from 0 let numba drop its negative-index checks and vectorise
        xb = enx
        if need_diffs:
            for i in range(nints):
                for g in range(1, ngroups):
                    ig = i * ngroups + g
                    for x in range(xa, xb):
                        row_d[i * ndg + g - 1, x] = np.float64(row_e[ig, x]
                                                               - row_e[ig - 1, x])
        if mode != MODE_NONE and by_columns:
            # the first pass of either detector for the whole row, on sorted columns
            for x in range(xa, xb):
                row_n[x] = 0
            for k in range(nd):
                for x in range(xa, xb):
                    v = row_d[k, x]
                    if mode == MODE_ITERATIVE:
                        v = np.abs(v)
                    row_n[x] += not np.isnan(v)
                    row_s[k, x] = np.inf if np.isnan(v) else v
            _sort_columns(row_s, nd, xa, xb)
        for x in range(xa, xb):
            if mode == MODE_NONE:
                break
            var_rn = row_var[x]
            if mode == MODE_SINGLE_PASS:
                med = _row_median(row_s, row_n, row_d, x, nd, buf, by_columns)
                sig = _sigma(med, var_rn)
                for k in range(nd):
                    dk = row_d[k, x]
                    if np.isfinite(dk) and np.abs(dk - med) / sig > thr4:
                        integ = k // ndg
                        row_q[integ * ngroups + k - integ * ndg + 1, x] |= jump
            elif not by_columns or _first_pass_finds(row_s[:, x], row_n[x], var_rn, thr4,
                                                     thr3, thr2):
                for k in range(nd):
                    d[k] = row_d[k, x]
                for ig in range(ng):
                    pg[ig] = row_q[ig, x]
                _iterative(d, nd, ndg, ngroups, pg, a, buf, var_rn, thr4, thr3, thr2, jump)
                for ig in range(ng):
                    row_q[ig, x] = pg[ig]
        if nb_on:
            for x in range(xa, xb):
                row_j[x] = 0
            for i in range(nints):
                for g in range(1, ngroups):
                    for x in range(xa, xb):
                        row_j[x] |= row_q[i * ngroups + g, x] & jump
            for x in range(xa, xb):
                if row_j[x] == 0:
                    continue
                if mode == MODE_SINGLE_PASS:
                    med = _row_median(row_s, row_n, row_d, x, nd, buf, by_columns)
                else:
                    for k in range(nd):
                        d[k] = row_d[k, x]
                    med = _nanmedian(d, nd, buf)
                sig = _sigma(med, row_var[x])
                for i in range(nints):
                    for g in range(1, ngroups):
                        if row_q[i * ngroups + g, x] & jump:
                            ratio = np.abs(row_d[i * ndg + g - 1, x] - med) / sig
                            if ratio < nb_max and ratio > nb_min:
                                src[i, g, y + 1, x + 1] = 1
        if inner_y:
            for i in range(nints):
                for g in range(ngroups):
                    q_in = row_q[i * ngroups + g, x0:x1]
                    o_row = out[i, g, y - y0]
                    for xx in range(x1 - x0):
                        q = q_in[xx]
                        count += (q & jump) != 0
                        o_row[xx] = q
    if not finish:
        return out, count
    # ---- pass 2: neighbours, after-jump flags and clean-up on the tile
    if neighbours:
        for i in range(nints):
            for g in range(1, ngroups):
                for yy in range(ny):
                    y = yy + y0 + 1  # in src
                    above = src[i, g, y - 1, x0 + 1:x1 + 1]
                    left = src[i, g, y, x0:x1]
                    centre = src[i, g, y, x0 + 1:x1 + 1]
                    right = src[i, g, y, x0 + 2:x1 + 2]
                    below = src[i, g, y + 1, x0 + 1:x1 + 1]
                    o_row = out[i, g, yy]
                    for xx in range(nx):
                        flag = above[xx] | left[xx] | centre[xx] | right[xx] | below[xx]
                        q = o_row[xx]
                        if flag and (q & bad) == 0:
                            o_row[xx] = q | jump
    if after:
        _after_jump(out, data, gdq, gain, d, buf, pg, e1, n1, e2, n2, bad, jump)
    not_jump = ~jump
    for i in range(nints):
        for g in range(ngroups):
            for y in range(ny):
                o_row = out[i, g, y]
                for x in range(nx):
                    q = o_row[x]
                    if (q & bad) != 0:
                        o_row[x] = q & not_jump  # detect_jumps_data's clean-up
    return out, count


@numba.njit(**_JIT)
def _after_jump(out, data, gdq, gain, d, buf, pg, e1, n1, e2, n2, bad, jump):
    """stcal ``transient_jumps`` (``propagate_flags``) on the tile ``out`` (in place)."""
    nints, ngroups, ny, nx = out.shape
    ndg = ngroups - 1
    nd = nints * ndg
    jmax1 = min(n1, ngroups - 2)
    jmax2 = min(n2, ngroups - 2)
    big1 = np.zeros(ngroups, dtype=np.bool_)
    big2 = np.zeros(ngroups, dtype=np.bool_)
    nan32 = np.float32(np.nan)
    for y in range(ny):
        for x in range(nx):
            any_jump = False
            for i in range(nints):
                for g in range(ngroups):
                    q = out[i, g, y, x]
                    pg[i * ngroups + g] = q
                    any_jump |= g > 0 and (q & jump) != 0
            if not any_jump:
                continue
            gn = gain[y, x]
            for i in range(nints):
                prev = nan32
                for g in range(ngroups):
                    v32 = data[i, g, y, x] * gn
                    if gdq[i, g, y, x] & bad:
                        v32 = nan32
                    if g > 0:
                        d[i * ndg + g - 1] = np.float64(v32 - prev)
                    prev = v32
            med = _nanmedian(d, nd, buf)
            for i in range(nints):
                base = i * ngroups
                for g in range(1, ngroups):
                    ej = (d[i * ndg + g - 1] - med) * 1.0  # times dt_group
                    is_set = (pg[base + g] & jump) != 0
                    big1[g] = ej >= e1 and is_set
                    big2[g] = ej >= e2 and is_set
                for g in range(1, ngroups):  # each flag OR-ed into the next jmax groups
                    f1 = False
                    f2 = False
                    for m in range(0, min(jmax1, g - 1) + 1):
                        f1 = f1 or big1[g - m]
                    for m in range(0, min(jmax2, g - 1) + 1):
                        f2 = f2 or big2[g - m]
                    if (f1 or f2) and (pg[base + g] & bad) == 0:
                        out[i, g, y, x] = pg[base + g] | jump
