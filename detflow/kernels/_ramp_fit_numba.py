"""numba port of stcal 1.20's OLS_C ramp fitter (``src/slope_fitter.c``), pixel by pixel.

Each function mirrors the C function named in its docstring: the same operations in the
same order and the same precision -- ``real_t`` is ``double`` in the C (``REAL_IS_DOUBLE``),
the arrays are read as float32 and widened, the results are narrowed to float32 at the
end, ``frame_time``/``group_time`` go through a C ``float`` on their way in
(``py_ramp_data_get_float``) and the optimal weights are ``powf`` of floats. The C
extension is built for baseline x86-64 (SSE2 scalar double, no x87, no FMA: checked
with ``objdump``), and numba without ``fastmath`` contracts nothing either, so every
``+ - * /`` and ``sqrt`` rounds exactly as the C's. ``powf`` is glibc's in both: the C
calls the process's ``powf``, numba's ``llvm.pow.f32`` becomes a call to the same symbol
(the exponents are passed in as data so LLVM cannot rewrite the calls). IEEE division by
zero (``error_model="numpy"``) is what the C does.

The one thing not reproduced is the sign of a NaN made by an operation whose *two*
operands are NaNs of different sign (e.g. read noise 0 makes a segment slope
``inf - inf``, the x86 default -NaN, and NaN data makes another segment's +NaN; the
integration sums them): x86 returns the first operand's NaN, and gcc and LLVM order the
operands of a commutative ``+``/``*`` as they like. The result is NaN either way.

Pixels with no group flag, finite data, GAIN > 0 and no DO_NOT_USE/SATURATED pixel DQ
take one path through the C; :func:`_fit_row_plain` does it for a whole row with loops
the compiler vectorises across pixels (branches as selects, the same operations in the
same order); every other pixel goes through the scalar port in :func:`ols_fit_tile`.

The public entry is :func:`ols_fit_tile`; :mod:`detflow.kernels.ramp_fit` prepares the
arrays and picks this path or stcal's.
"""

import math

import numba
import numpy as np

__all__ = ["ols_fit_tile", "POWERS"]

#: ``snr_power`` exponents, passed to the kernel as data (see the module notes).
POWERS = np.array([0.0, 0.4, 1.0, 3.0, 6.0, 10.0], dtype=np.float64)

#: Segment lengths up to which the ``powf`` weights are tabulated per call.
_TABLE_MAX_LEN = 256

_LARGE_VARIANCE_THRESHOLD = 1.0e6

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
#: helpers that take arrays are inlined (no call, no reference counting per pixel)
_JIT_INLINE = dict(_JIT, inline="always")


@numba.njit(**_JIT)
def _snr_power_index(snr):
    """C ``snr_power``, as an index into :data:`POWERS`."""
    if snr < 5.0:
        return 0
    elif snr < 10.0:
        return 1
    elif snr < 20.0:
        return 2
    elif snr < 50.0:
        return 3
    elif snr < 100.0:
        return 4
    return 5


@numba.njit(**_JIT)
def _weight_powf(length, group, power32):
    """``powf(fabs((xval - mid) * invmid), power)`` of C
    ``ramp_fit_pixel_integration_fit_slope_seg_default_weighted_ols``."""
    mid = np.float64(length - 1) / 2.0
    invmid = 1.0 / mid
    xval = np.float64(group)
    weight = abs((xval - mid) * invmid)
    return np.float32(np.float32(weight) ** power32)


@numba.njit(**_JIT_INLINE)
def _add_segment(starts, lens, k, count, size, maxlen, start, end):
    """C ``add_segment_to_list``: returns the new (count, size, maxlen)."""
    length = end - start
    if length == 1 and maxlen > 1:
        return count, size, maxlen
    starts[k, count] = start
    lens[k, count] = length
    count += 1
    size += 1
    if length > maxlen:
        maxlen = length
    return count, size, maxlen


@numba.njit(**_JIT_INLINE)
def _segments(dq, off, ngroups, check_sat, jump, sat, npers, starts, lens, k):
    """C ``compute_integration_segments`` + ``prune_segment_list`` for the integration
    whose groups are ``dq[off:off + ngroups]``; segments go to ``starts[k]``/``lens[k]``.

    Returns
    -------
    (count, size)
        ``count`` segments in the list; ``size`` is the C list's ``size`` field, which
        ``prune_segment_list`` leaves unchanged when it keeps only the first of several
        one-group segments (it then counts for ``max_num_segs``). ``count = -1``: group 0
        SATURATED (``check_sat``), no segments.
    """
    if check_sat and (dq[off] & sat):
        return -1, 0
    count = 0
    size = 0
    maxlen = 0
    in_seg = False
    start = 0
    for idx in range(ngroups):
        gdq = dq[off + idx] & npers
        if gdq == 0:
            if not in_seg:
                if idx > 0 and (dq[off + idx - 1] & npers) == jump:
                    start = idx - 1
                else:
                    start = idx
                in_seg = True
        else:
            if in_seg:
                count, size, maxlen = _add_segment(starts, lens, k, count, size, maxlen,
                                                   start, idx)
                in_seg = False
    if in_seg:
        count, size, maxlen = _add_segment(starts, lens, k, count, size, maxlen, start,
                                           ngroups)
    # prune_segment_list
    if size < 2:
        return count, size
    if maxlen < 2:
        lens[k, 0] = 1
        return 1, size
    new = 0
    for s in range(count):
        if lens[k, s] == 1:
            size -= 1
        else:
            starts[k, new] = starts[k, s]
            lens[k, new] = lens[k, s]
            new += 1
    return new, size


@numba.njit(**_JIT)
def _len1_timing(suppress1g, is_0th, is_zframe, one_group_time, frame_time, group_time):
    """C ``segment_len1_timing``."""
    if not suppress1g:
        if is_0th:
            return one_group_time
        elif is_zframe:
            return frame_time
    return group_time


@numba.njit(**_JIT)
def _rnoise_len12(rnoise, gain, timing):
    """C ``segment_rnoise_len1`` (``segment_rnoise_len2`` with ``timing = group_time``)."""
    rnum = rnoise / timing
    rnum = 12.0 * rnum * rnum
    rden = 6.0
    rden = rden * gain * gain
    return rnum / rden


@numba.njit(**_JIT)
def _rnoise_default(rnoise, gain, group_time, seglen):
    """C ``segment_rnoise_default``."""
    if gain <= 0.0 or math.isnan(gain):
        return 0.0
    rnum = rnoise / group_time
    rnum = 12.0 * rnum * rnum
    rden = seglen * seglen * seglen - seglen
    rden = rden * gain * gain
    return rnum / rden


@numba.njit(**_JIT)
def _var_p(median_rate, dcurrent, pden):
    """The segment Poisson variance of the three C segment fits."""
    if median_rate > 0.0:
        return (median_rate + dcurrent) / pden
    return dcurrent / pden


@numba.njit(**_JIT_INLINE)
def _sorted_pair(vals, n, k):
    """Elements ``k`` and ``k - 1`` of ``sorted(vals[:n])`` (no NaN, ``1 <= k < n``).

    Which of two equal values (-0.0 and 0.0) is returned may differ from the C's
    ``qsort``; the median rate only ever enters a sum that starts at +0.0, so it cannot
    matter. Short arrays: ranks by counting (no data-dependent branches); long: a sort.
    """
    if n > 24:
        s = np.sort(vals[:n])
        return s[k], s[k - 1]
    hi = vals[0]
    lo = vals[0]
    for i in range(n):
        vi = vals[i]
        lt = 0
        le = 0
        for j in range(n):
            vj = vals[j]
            lt += vj < vi
            le += vj <= vi
        if lt <= k < le:
            hi = vi
        if lt <= k - 1 < le:
            lo = vi
    return hi, lo


@numba.njit(**_JIT_INLINE)
def _median_rate(pd, pg, nints, ngroups, dnu, jump, is_0th, is_zframe, one_group_time,
                 frame_time, group_time, loc):
    """C ``compute_median_rate`` (``median_rate_1ngroup`` / ``median_rate_default``)."""
    if ngroups == 1:
        accum = 0.0
        for integ in range(nints):
            accum += pd[integ * ngroups] / one_group_time
        return accum / np.float64(nints)
    accum = 0.0
    for integ in range(nints):
        off = integ * ngroups
        if is_0th[integ]:
            mrate = pd[off] / one_group_time
        elif is_zframe[integ]:
            mrate = pd[off] / frame_time
        else:
            # median_rate_integration(_sort): rates, NaN where DNU; their first
            # differences, NaN into a JUMP group; all NaN: the first rate. The
            # non-NaN ones go to loc[:n] (the C sorts them NaN-last, then takes
            # real_nan_median).
            prev = np.nan if pg[off] & dnu else pd[off] / group_time
            loc0 = prev
            n = 0
            for k in range(ngroups - 1):
                g1 = pg[off + k + 1]
                nxt = np.nan if g1 & dnu else pd[off + k + 1] / group_time
                if jump & g1:
                    diff = np.nan
                else:
                    diff = nxt - prev
                prev = nxt
                if not math.isnan(diff):
                    loc[n] = diff
                    n += 1
            if n == 0 and not math.isnan(loc0):
                loc[0] = loc0
                n = 1
            if n == 0:
                mrate = np.nan
            elif n == 1:
                mrate = loc[0]
            elif n == 2:
                mrate = (loc[0] + loc[1]) / 2.0
            else:
                med = n >> 1
                hi, lo = _sorted_pair(loc, n, med)
                if n & 1:
                    mrate = hi
                else:
                    mrate = (hi + lo) / 2.0
        if math.isnan(mrate):
            mrate = 0.0
        accum += mrate
    return accum / np.float64(np.float32(nints))


#: ``ngroups`` range of :func:`_fit_row_plain` (its median sorts ``ngroups - 1``
#: differences with an O(n^2) network).
_PLAIN_MIN_NGROUPS = 3
_PLAIN_MAX_NGROUPS = 32


@numba.njit(**_JIT)
def _fit_row_plain(data, gdq, pdq, gain2d, rnoise2d, dark2d, row, group_time,
                   sqrt_2nframes, invalid, wsel, plain, buf, srt, acc, rate_f, rate_dq,
                   ints_f, ints_dq):
    """The fit of the row's *plain* pixels, a column at a time in each loop (loops the
    compiler vectorizes across pixels).

    A pixel is plain when every group of every integration has DQ 0 and finite data,
    its GAIN is > 0 and its PIXELDQ has neither DO_NOT_USE nor SATURATED. The C then
    takes one path: median rate of ``ngroups - 1`` first differences, one segment of
    ``ngroups >= 3`` groups per integration, no flag set. This function does that path's
    operations, in the C's order, with branches turned into selects; ``plain`` (bool
    ``(nx,)``) says which columns it got right (the others are written too, with
    meaningless values, and are then fitted by the generic loop).

    ``wsel`` float32 ``(6, ngroups)``: the powf weights of a segment of ``ngroups``
    groups per SNR power; ``buf``/``srt`` float64 ``(ngroups, nx)``, ``acc`` float64
    ``(16, nx)``: scratch.
    """
    nints, ngroups, ny, nx = data.shape
    n = ngroups - 1
    med = n >> 1
    odd = (n & 1) == 1
    seglen = np.float64(ngroups)
    rn = acc[0]
    gn = acc[1]
    dc = acc[2]
    mr = acc[3]
    r_slope = acc[4]
    r_vp = acc[5]
    r_vr = acc[6]
    invrn2 = acc[7]
    sumw = acc[8]
    sumx = acc[9]
    sumxx = acc[10]
    sumy = acc[11]
    sumxy = acc[12]
    pw = acc[13]
    for x in range(nx):
        g32 = gain2d[row, x]
        plain[x] = (g32 > 0) and (pdq[row, x] & invalid) == 0
        gn[x] = np.float64(g32)
        rn[x] = np.float64(np.float32(np.float64(rnoise2d[row, x])
                                      * (np.float64(g32) / sqrt_2nframes)))
        dc[x] = np.float64(dark2d[row, x])
        mr[x] = 0.0
        r_slope[x] = 0.0
        r_vp[x] = 0.0
        r_vr[x] = 0.0
    for integ in range(nints):
        for group in range(ngroups):
            for x in range(nx):
                v = data[integ, group, row, x]
                plain[x] = plain[x] and gdq[integ, group, row, x] == 0 and (v - v) == 0
    # median_rate_default
    for integ in range(nints):
        for group in range(ngroups):
            for x in range(nx):
                buf[group, x] = np.float64(data[integ, group, row, x]) / group_time
        for k in range(n):
            for x in range(nx):
                srt[k, x] = buf[k + 1, x] - buf[k, x]
        # odd-even transposition sort (values only move, so the sorted values are
        # the C's qsort's; of two equal ones either may come first)
        for p in range(n):
            for k in range(p & 1, n - 1, 2):
                for x in range(nx):
                    a = srt[k, x]
                    b = srt[k + 1, x]
                    less = a < b
                    srt[k, x] = a if less else b
                    srt[k + 1, x] = b if less else a
        for x in range(nx):
            if odd:
                m = srt[med, x]
            else:
                m = (srt[med, x] + srt[med - 1, x]) / 2.0
            mr[x] += 0.0 if math.isnan(m) else m
    fnints = np.float64(np.float32(nints))
    for x in range(nx):
        mr[x] = mr[x] / fnints
    for integ in range(nints):
        # segment_snr and snr_power
        for x in range(nx):
            dsig = (np.float64(data[integ, ngroups - 1, row, x])
                    - np.float64(data[integ, 0, row, x]))
            den = rn[x] * rn[x] + dsig * gn[x]
            snr_s = (dsig * gn[x]) / math.sqrt(den)
            snr = 0.0 if (den <= 0.0 or gn[x] == 0.0) else (0.0 if snr_s < 0.0 else snr_s)
            pw[x] = (0.0 if snr < 5.0 else 1.0 if snr < 10.0 else 2.0 if snr < 20.0
                     else 3.0 if snr < 50.0 else 4.0 if snr < 100.0 else 5.0)
            invrn2[x] = 1.0 / (rn[x] * rn[x])
            sumw[x] = 0.0
            sumx[x] = 0.0
            sumxx[x] = 0.0
            sumy[x] = 0.0
            sumxy[x] = 0.0
        # ..._default_weighted_ols (start 0: xval is the group number)
        for group in range(ngroups):
            xval = np.float64(group)
            w0 = np.float64(wsel[0, group])
            w1 = np.float64(wsel[1, group])
            w2 = np.float64(wsel[2, group])
            w3 = np.float64(wsel[3, group])
            w4 = np.float64(wsel[4, group])
            w5 = np.float64(wsel[5, group])
            for x in range(nx):
                p = pw[x]
                wp = (w0 if p == 0.0 else w1 if p == 1.0 else w2 if p == 2.0
                      else w3 if p == 3.0 else w4 if p == 4.0 else w5)
                weight = wp * invrn2[x]
                dval = np.float64(data[integ, group, row, x])
                dval = 0.0 if math.isnan(dval) else dval
                xwt = xval * weight
                sumw[x] += weight
                sumx[x] += xwt
                sumxx[x] += xval * xwt
                sumy[x] += dval * weight
                sumxy[x] += dval * xwt
        # ..._default_weighted_seg, one segment, and ..._fit_slope
        for x in range(nx):
            den = sumw[x] * sumxx[x] - sumx[x] * sumx[x]
            num = sumw[x] * sumxy[x] - sumx[x] * sumy[x]
            invden = 1.0 / den
            sslope = (num * invden) / group_time
            pden = group_time * gn[x] * (seglen - 1.0)
            var_p = (mr[x] + dc[x]) / pden if mr[x] > 0.0 else dc[x] / pden
            rnum = rn[x] / group_time
            rnum = 12.0 * rnum * rnum
            rden = seglen * seglen * seglen - seglen
            rden = rden * gn[x] * gn[x]
            var_r = rnum / rden
            var_e = var_p + var_r
            invvar_r = 0.0 + 1.0 / var_r
            invvar_p = (0.0 + 1.0 / var_p) if var_p > 0.0 else 0.0
            invvar_e = 0.0 + 1.0 / var_e
            slope_i_num = 0.0 + sslope / var_r
            ri_vp = 1.0 / invvar_p if invvar_p > 0.0 else 0.0
            ri_vp = 0.0 if ri_vp >= _LARGE_VARIANCE_THRESHOLD else ri_vp
            ri_vr = 1.0 / invvar_r
            ri_vr = 0.0 if ri_vr >= _LARGE_VARIANCE_THRESHOLD else ri_vr
            var_err = 1.0 / invvar_e
            ints_f[0, integ, row, x] = np.float32(slope_i_num * ri_vr)
            ints_f[1, integ, row, x] = np.float32(ri_vp)
            ints_f[2, integ, row, x] = np.float32(ri_vr)
            ints_f[3, integ, row, x] = np.float32(
                0.0 if var_err > _LARGE_VARIANCE_THRESHOLD else math.sqrt(var_err))
            ints_dq[integ, row, x] = pdq[row, x]
            r_vp[x] = r_vp[x] + invvar_p if invvar_p > 0.0 else r_vp[x]
            r_vr[x] += invvar_r
            r_slope[x] += slope_i_num
    # ramp_fit_pixel: the exposure
    for x in range(nx):
        vp = 1.0 / r_vp[x] if r_vp[x] > 0.0 else r_vp[x]
        vp = 0.0 if (vp >= _LARGE_VARIANCE_THRESHOLD or vp < 0.0) else vp
        vr = 1.0 / r_vr[x] if r_vr[x] > 0.0 else r_vr[x]
        vr = 0.0 if vr >= _LARGE_VARIANCE_THRESHOLD else vr
        rate_f[0, row, x] = np.float32(r_slope[x] if math.isnan(r_slope[x])
                                       else r_slope[x] * vr)
        rate_f[1, row, x] = np.float32(vp)
        rate_f[2, row, x] = np.float32(vr)
        rate_f[3, row, x] = np.float32(math.sqrt(vp + vr))
        rate_dq[row, x] = pdq[row, x]


@numba.njit(**_JIT)
def ols_fit_tile(data, gdq, ogdq, pdq, gain2d, rnoise2d, dark2d, zframe, has_zframe,
                 group_time, frame_time, nframes, groupgap, dropframes, sqrt_2nframes,
                 suppress1g, do_suppress, save_opt, flags, powers,
                 rate_f, rate_dq, ints_f, ints_dq, opt_f, opt_ped, opt_crmag):
    """stcal OLS_C ``ols_slope_fitter`` on one tile, after ``ramp_fit_data``'s read-noise
    scaling and (``do_suppress``) ``suppress_one_good_group_ramps``.

    Parameters
    ----------
    data : float32 ``(nints, ngroups, ny, nx)``
    gdq : uint8 ``(nints, ngroups, ny, nx)``
        ``RampData.groupdq`` before suppression (suppressed here when ``do_suppress``).
    ogdq : uint8 ``(nints, ngroups, ny, nx)``
        ``RampData.orig_gdq`` (the CHARGELOSS read-noise recomputation reads it).
    pdq : uint32 ``(ny, nx)``
    gain2d, rnoise2d, dark2d : float32 ``(ny, nx)``
        GAIN, READNOISE (unscaled, DN), average dark current.
    zframe : float32 ``(nints, ny, nx)`` (any shape when not ``has_zframe``)
    group_time, frame_time : float
        Already rounded to float32, as the C reads them.
    nframes, groupgap, dropframes : int
    sqrt_2nframes : float
        ``np.sqrt(2.0 * nframes)``.
    suppress1g, do_suppress, save_opt : bool
    flags : int64 ``(6,)``
        DO_NOT_USE, JUMP_DET, SATURATED, PERSISTENCE, NO_GAIN_VALUE, CHARGELOSS.
    powers : float64 ``(6,)``
        :data:`POWERS`.
    rate_f : float32 ``(4, ny, nx)``, out
        slope, var_poisson, var_rnoise, err.
    rate_dq : uint32 ``(ny, nx)``, out
    ints_f : float32 ``(4, nints, ny, nx)``, out
    ints_dq : uint32 ``(nints, ny, nx)``, out
    opt_f : float32 ``(7, nints, nseg, ny, nx)``, out, zeroed by the caller (save_opt)
        slope, sigslope, var_poisson, var_rnoise, yint, sigyint, weights.
    opt_ped : float32 ``(nints, ny, nx)``, out (save_opt)
    opt_crmag : float32 ``(nints, nseg, ny, nx)``, out, zeroed by the caller (save_opt)

    Returns
    -------
    (int, int)
        stcal's ``max_num_segs`` and ``max_num_crs`` (save_opt; else -1, 0).
    """
    nints, ngroups, ny, nx = data.shape
    dnu = np.int64(flags[0])
    jump = np.int64(flags[1])
    sat = np.int64(flags[2])
    pers = np.int64(flags[3])
    ngval = np.int64(flags[4])
    chargeloss = np.int64(flags[5])
    npers = ~pers
    invalid = dnu | sat
    dnu_chg = dnu | chargeloss

    # get_ramp_data one-time computations
    one_group_time = (np.float64(np.float32(nframes)) + 1.0) * frame_time / 2.0
    ped_tmp = (np.float64(nframes + 1) / 2.0 + np.float64(dropframes)) / np.float64(
        nframes + groupgap)

    nramp = nints * ngroups
    pd = np.empty(nramp, dtype=np.float64)
    pg = np.empty(nramp, dtype=np.int64)
    po = np.empty(nramp, dtype=np.int64)
    loc = np.empty(ngroups, dtype=np.float64)
    cnt_sat = np.empty(nints, dtype=np.int64)
    cnt_dnu_sat = np.empty(nints, dtype=np.int64)
    st_chg = np.empty(nints, dtype=np.bool_)
    is_zf = np.empty(nints, dtype=np.bool_)
    is_0th = np.empty(nints, dtype=np.bool_)
    ri_slope = np.empty(nints, dtype=np.float64)
    ri_vp = np.empty(nints, dtype=np.float64)
    ri_vr = np.empty(nints, dtype=np.float64)
    ri_err = np.empty(nints, dtype=np.float64)
    ri_dq = np.empty(nints, dtype=np.int64)
    seg_start = np.empty((nints, ngroups), dtype=np.int64)
    seg_len = np.empty((nints, ngroups), dtype=np.int64)
    cl_start = np.empty((1, ngroups), dtype=np.int64)
    cl_len = np.empty((1, ngroups), dtype=np.int64)
    powers32 = np.empty(powers.size, dtype=np.float32)
    for p in range(powers.size):
        powers32[p] = np.float32(powers[p])

    # powf weights by (power, segment length, group), computed when first needed
    tab_len = min(ngroups, _TABLE_MAX_LEN)
    wtab = np.empty((powers.size, tab_len + 1, tab_len), dtype=np.float32)
    wdone = np.zeros((powers.size, tab_len + 1), dtype=np.bool_)

    max_num_segs = -1 if save_opt else 0
    max_num_crs = 0

    # plain pixels: a row at a time (not with save_opt, which the generic loop fills)
    use_plain = (not save_opt and _PLAIN_MIN_NGROUPS <= ngroups <= _PLAIN_MAX_NGROUPS
                 and ngroups <= tab_len)
    plain = np.zeros(nx, dtype=np.bool_)
    if use_plain:
        wsel = np.empty((powers.size, ngroups), dtype=np.float32)
        for p in range(powers.size):
            for gi in range(ngroups):
                wtab[p, ngroups, gi] = _weight_powf(ngroups, gi, powers32[p])
                wsel[p, gi] = wtab[p, ngroups, gi]
            wdone[p, ngroups] = True
        buf = np.empty((ngroups, nx), dtype=np.float64)
        srt = np.empty((ngroups, nx), dtype=np.float64)
        acc = np.empty((16, nx), dtype=np.float64)
    else:
        wsel = np.empty((1, 1), dtype=np.float32)
        buf = np.empty((1, 1), dtype=np.float64)
        srt = np.empty((1, 1), dtype=np.float64)
        acc = np.empty((1, 1), dtype=np.float64)

    for row in range(ny):
        if use_plain:
            _fit_row_plain(data, gdq, pdq, gain2d, rnoise2d, dark2d, row, group_time,
                           sqrt_2nframes, invalid, wsel, plain, buf, srt, acc, rate_f,
                           rate_dq, ints_f, ints_dq)
        for col in range(nx):
            if plain[col]:
                continue
            # get_pixel_ramp_meta
            pixeldq = np.int64(pdq[row, col])
            gain32 = gain2d[row, col]
            gain = np.float64(gain32)
            if gain <= 0.0 or math.isnan(gain):
                pixeldq |= dnu | ngval
            # ramp_fit_data: readnoise_2d *= gain_2d / np.sqrt(2.0 * nframes)
            rnoise = np.float64(np.float32(np.float64(rnoise2d[row, col])
                                           * (np.float64(gain32) / sqrt_2nframes)))
            dcurrent = np.float64(dark2d[row, col])
            rate_dqv = pixeldq
            rate_slope = 0.0
            rate_vp = 0.0
            rate_vr = 0.0

            # get_pixel_ramp
            for integ in range(nints):
                off = integ * ngroups
                ri_dq[integ] = pixeldq
                ri_slope[integ] = 0.0
                ri_vp[integ] = 0.0
                ri_vr[integ] = 0.0
                ri_err[integ] = 0.0
                is_zf[integ] = False
                is_0th[integ] = False
                # the group DQ, its statistics (get_pixel_ramp_integration) and the
                # groups that are good but for PERSISTENCE
                c_sat = 0
                c_dnu = 0
                c_dnu_sat = 0
                c_good = 0
                ngood_np = 0
                s_jump = False
                s_pers = False
                s_chg = False
                ncr = 0
                for group in range(ngroups):
                    idx = off + group
                    g = np.int64(gdq[integ, group, row, col])
                    pg[idx] = g
                    if (g & npers) == 0:
                        ngood_np += 1
                    if g & jump:
                        s_jump = True
                    if g & pers:
                        s_pers = True
                    if g & chargeloss:
                        s_chg = True
                    if g == 0:
                        c_good += 1
                    elif g & dnu:
                        c_dnu += 1
                    if g & (dnu | sat):
                        c_dnu_sat += 1
                    if g & sat:
                        pd[idx] = np.nan
                        c_sat += 1
                    else:
                        pd[idx] = np.float64(data[integ, group, row, col])
                    if save_opt and group > 0 and (g & jump):
                        opt_crmag[integ, ncr, row, col] = np.float32(pd[idx] - pd[idx - 1])
                        ncr += 1
                if do_suppress and ngood_np == 1:
                    # suppress_one_good_group_ramps (before the statistics in stcal):
                    # every group becomes DO_NOT_USE, so none is good and all count as
                    # DO_NOT_USE; the other statistics do not change
                    for group in range(ngroups):
                        pg[off + group] |= dnu
                    c_good = 0
                    c_dnu = ngroups
                    c_dnu_sat = ngroups
                if ncr > max_num_crs:
                    max_num_crs = ncr
                if not suppress1g:
                    if c_good == 1 and pg[off] == 0:
                        is_0th[integ] = True
                    elif c_good == 0 and has_zframe:
                        zf = np.float64(zframe[integ, row, col])
                        if zf != 0.0:
                            pd[off] = zf
                            pg[off] = 0
                            c_good = 1
                            c_dnu_sat -= 1
                            if ngroups == c_sat:
                                c_sat -= 1
                            if ngroups == c_dnu:
                                c_dnu -= 1
                            is_zf[integ] = True
                cnt_sat[integ] = c_sat
                cnt_dnu_sat[integ] = c_dnu_sat
                st_chg[integ] = s_chg
                if s_jump:
                    ri_dq[integ] |= jump
                    rate_dqv |= jump
                if s_pers:
                    ri_dq[integ] |= pers
                    rate_dqv |= pers

            # ramp_fit_pixel
            median_rate = _median_rate(pd, pg, nints, ngroups, dnu, jump, is_0th, is_zf,
                                       one_group_time, frame_time, group_time, loc)
            sat_cnt = 0
            dnu_cnt = 0
            set_rate_sat_flag = False
            for integ in range(nints):
                off = integ * ngroups
                # ramp_fit_pixel_integration
                nseg, size = _segments(pg, off, ngroups, True, jump, sat, npers, seg_start,
                                       seg_len, integ)
                if nseg < 0:
                    ri_dq[integ] |= dnu
                    ri_dq[integ] |= sat
                    ri_slope[integ] = np.nan
                    nseg = 0
                if ngroups == cnt_dnu_sat[integ]:
                    ri_dq[integ] |= dnu
                    if ngroups == cnt_sat[integ]:
                        ri_dq[integ] |= sat
                elif size > 0:
                    # ramp_fit_pixel_integration_fit_slope
                    invvar_r = 0.0
                    invvar_p = 0.0
                    invvar_e = 0.0
                    slope_i_num = 0.0
                    for s in range(nseg):
                        start = seg_start[integ, s]
                        length = seg_len[integ, s]
                        idx = off + start
                        sigslope = 0.0
                        yint = 0.0
                        sigyint = 0.0
                        if length == 1:
                            timing = _len1_timing(suppress1g, is_0th[integ], is_zf[integ],
                                                  one_group_time, frame_time, group_time)
                            sslope = pd[idx] / timing
                            pden = timing * gain
                            var_p = _var_p(median_rate, dcurrent, pden)
                            var_r = _rnoise_len12(rnoise, gain, timing)
                            var_e = var_p + var_r
                        elif length == 2:
                            data0 = pd[idx]
                            data1 = pd[idx + 1]
                            data_diff = pd[idx + 1] - pd[idx]
                            sslope = data_diff / group_time
                            pden = group_time * gain
                            var_p = _var_p(median_rate, dcurrent, pden)
                            var_r = _rnoise_len12(rnoise, gain, group_time)
                            var_e = var_p + var_r
                            if save_opt:
                                sigslope = 1.41421356 * rnoise
                                second_read = np.float64(start) + 1.0
                                yint = data1 * (1.0 - second_read) + data0 * second_read
                                sigyint = sigslope
                        else:
                            # segment_snr
                            end_v = pd[idx + length - 1]
                            start_v = pd[idx]
                            dsig = end_v - start_v
                            den = rnoise * rnoise + dsig * gain
                            if den <= 0.0 or gain == 0.0:
                                snr = 0.0
                            else:
                                num = dsig * gain
                                sqrt_den = math.sqrt(den)
                                snr_s = num / sqrt_den
                                snr = 0.0 if snr_s < 0.0 else snr_s
                            pidx = _snr_power_index(snr)
                            # ..._default_weighted_ols
                            invrn2 = 1.0 / (rnoise * rnoise)
                            sumx = 0.0
                            sumxx = 0.0
                            sumy = 0.0
                            sumxy = 0.0
                            sumw = 0.0
                            tabled = length <= tab_len
                            if tabled and not wdone[pidx, length]:
                                for gi in range(length):
                                    wtab[pidx, length, gi] = _weight_powf(length, gi,
                                                                          powers32[pidx])
                                wdone[pidx, length] = True
                            for gi in range(length):
                                if tabled:
                                    wpow = wtab[pidx, length, gi]
                                else:
                                    wpow = _weight_powf(length, gi, powers32[pidx])
                                weight_g = np.float64(wpow) * invrn2
                                xval = np.float64(gi) + np.float64(start)
                                dval = pd[idx + gi]
                                if math.isnan(dval):
                                    dval = 0.0
                                xwt = xval * weight_g
                                sumw += weight_g
                                sumx += xwt
                                sumxx += xval * xwt
                                sumy += dval * weight_g
                                sumxy += dval * xwt
                            # ..._default_weighted_seg
                            den = sumw * sumxx - sumx * sumx
                            num = sumw * sumxy - sumx * sumy
                            invden = 1.0 / den
                            sslope = (num * invden) / group_time
                            if save_opt:
                                sigslope = math.sqrt(sumw * invden)
                                yint = (sumxx * sumy - sumx * sumxy) * invden
                                sigyint = math.sqrt(sumxx * invden)
                            seglen = np.float64(length)
                            pden = group_time * gain * (seglen - 1.0)
                            var_p = _var_p(median_rate, dcurrent, pden)
                            var_r = _rnoise_default(rnoise, gain, group_time, seglen)
                            var_e = var_p + var_r
                        if save_opt:
                            weight = 1.0 / var_r
                            opt_f[0, integ, s, row, col] = np.float32(sslope)
                            opt_f[1, integ, s, row, col] = np.float32(sigslope)
                            opt_f[2, integ, s, row, col] = np.float32(var_p)
                            opt_f[3, integ, s, row, col] = np.float32(var_r)
                            opt_f[4, integ, s, row, col] = np.float32(yint)
                            opt_f[5, integ, s, row, col] = np.float32(sigyint)
                            opt_f[6, integ, s, row, col] = np.float32(weight)
                        invvar_r += 1.0 / var_r
                        if var_p > 0.0:
                            invvar_p += 1.0 / var_p
                        invvar_e += 1.0 / var_e
                        slope_i_num += sslope / var_r
                    if invvar_p > 0.0:
                        ri_vp[integ] = 1.0 / invvar_p
                    if ri_vp[integ] >= _LARGE_VARIANCE_THRESHOLD:
                        ri_vp[integ] = 0.0
                    ri_vr[integ] = 1.0 / invvar_r
                    if ri_vr[integ] >= _LARGE_VARIANCE_THRESHOLD:
                        ri_vr[integ] = 0.0
                    if ri_dq[integ] & invalid:
                        ri_slope[integ] = np.nan
                        ri_vp[integ] = 0.0
                        ri_vr[integ] = 0.0
                        ri_err[integ] = 0.0
                    else:
                        var_err = 1.0 / invvar_e
                        ri_slope[integ] = slope_i_num * ri_vr[integ]
                        if var_err > _LARGE_VARIANCE_THRESHOLD:
                            ri_err[integ] = 0.0
                        else:
                            ri_err[integ] = math.sqrt(var_err)
                    if invvar_p > 0.0:
                        rate_vp += invvar_p
                    rate_vr += invvar_r
                    rate_slope += slope_i_num

                if ri_dq[integ] & dnu:
                    dnu_cnt += 1
                    ri_slope[integ] = np.nan
                if save_opt:
                    # get_pixel_ramp_integration_segments_and_pedestal
                    if size > max_num_segs:
                        max_num_segs = size
                    if ri_dq[integ] & sat:
                        ped = 0.0
                    else:
                        ped = pd[off] - ri_slope[integ] * ped_tmp
                        if math.isnan(ped):
                            ped = 0.0
                    opt_ped[integ, row, col] = np.float32(ped)
                if ri_dq[integ] & sat:
                    sat_cnt += 1
                    ri_slope[integ] = np.nan
                if cnt_sat[integ] > 0:
                    ri_dq[integ] |= sat
                    set_rate_sat_flag = True

            if nints == dnu_cnt:
                rate_dqv |= dnu
            if sat_cnt == nints:
                rate_dqv |= sat
            if rate_vp > 0.0:
                rate_vp = 1.0 / rate_vp
            if rate_vp >= _LARGE_VARIANCE_THRESHOLD or rate_vp < 0.0:
                rate_vp = 0.0
            if rate_vr > 0.0:
                rate_vr = 1.0 / rate_vr
            if rate_vr >= _LARGE_VARIANCE_THRESHOLD:
                rate_vr = 0.0
            rate_err = math.sqrt(rate_vp + rate_vr)
            if rate_dqv & invalid:
                rate_slope = np.nan
                rate_vp = 0.0
                rate_vr = 0.0
                rate_err = 0.0
            if set_rate_sat_flag:
                rate_dqv |= sat
            if not math.isnan(rate_slope):
                rate_slope = rate_slope * rate_vr

            # ramp_fit_pixel_rnoise_chargeloss
            is_chargeloss = False
            evar_r = 0.0
            for integ in range(nints):
                if not st_chg[integ]:
                    if ri_vr[integ] > 0.0:
                        evar_r += 1.0 / ri_vr[integ]
                    continue
                is_chargeloss = True
                off = integ * ngroups
                for group in range(ngroups):
                    po[off + group] = np.int64(ogdq[integ, group, row, col])
                    if chargeloss & po[off + group]:
                        po[off + group] ^= dnu_chg
                nseg, size = _segments(po, off, ngroups, False, jump, sat, npers, cl_start,
                                       cl_len, 0)
                invvar_r = 0.0
                for s in range(nseg):
                    length = cl_len[0, s]
                    if length == 1:
                        timing = _len1_timing(suppress1g, is_0th[integ], is_zf[integ],
                                              one_group_time, frame_time, group_time)
                        svar_r = _rnoise_len12(rnoise, gain, timing)
                    elif length == 2:
                        svar_r = _rnoise_len12(rnoise, gain, group_time)
                    else:
                        svar_r = _rnoise_default(rnoise, gain, group_time, np.float64(length))
                    if svar_r > 0.0:
                        invvar_r += 1.0 / svar_r
                ri_vr[integ] = 1.0 / invvar_r
                if ri_vr[integ] >= _LARGE_VARIANCE_THRESHOLD:
                    ri_vr[integ] = 0.0
                evar_r += invvar_r
            if is_chargeloss:
                if evar_r > 0.0:
                    rate_vr = 1.0 / evar_r
                if rate_vr >= _LARGE_VARIANCE_THRESHOLD:
                    rate_vr = 0.0

            # save_ramp_fit
            rate_f[0, row, col] = np.float32(rate_slope)
            rate_f[1, row, col] = np.float32(rate_vp)
            rate_f[2, row, col] = np.float32(rate_vr)
            rate_f[3, row, col] = np.float32(rate_err)
            rate_dq[row, col] = np.uint32(rate_dqv)
            for integ in range(nints):
                ints_f[0, integ, row, col] = np.float32(ri_slope[integ])
                ints_f[1, integ, row, col] = np.float32(ri_vp[integ])
                ints_f[2, integ, row, col] = np.float32(ri_vr[integ])
                ints_f[3, integ, row, col] = np.float32(ri_err[integ])
                ints_dq[integ, row, col] = np.uint32(ri_dq[integ])
    return max_num_segs, max_num_crs
