"""MIRI EMI correction on arrays (jwst 3.0.0 ``emicorr/emicorr.py``), cut so that every
whole-exposure statistic is a small reduction of per-tile partial results.

The ``joint`` algorithm (``emicorr_refwave``), for one frequency:

1. the phase of row ``j`` (0-based in the exposure), output column ``k = x // 4`` is
   ``(j*rowclocks + k*nsamples) / period % 1`` (:func:`phase_rows`), ``period =
   (1/f)/10 us`` in pixel clocks; per group it advances by ``frametime/period % 1``, per
   integration by ``ngroups*dphase + frameclocks/period`` (:func:`joint_geometry`);
2. good pixels: the float32 standard deviation over groups below twice its median over
   the whole exposure, and ``pixeldq == 0``. The median is exact and found in two
   histogram passes over the float32 bit patterns (:func:`std_key_histogram`,
   :func:`median_plan`, :func:`std_low_histogram`, :func:`median_threshold`): equal
   to ``np.median`` without holding the standard deviations in one place;
3. the float32 values of good pixels are summed in float64 per integration, phase bin
   and group (output columns 1 and 2 left out). :func:`phase_sums` continues the sums of
   the previous rows: folding the row bands of an integration in row order gives jwst's
   exact additions (same order, same rounding), whatever the tiling;
4. :func:`fit_joint`: jwst's closed-form chi squared at 500 trial phases, a parabola
   through the best three, the amplitude there (one for the exposure, or one per
   integration). The chi squared sums run in numba with NumPy's own summation orders
   (pairwise over phases and groups, :func:`_pairwise`; sequential over integrations),
   so they are jwst's bits without its Python loop over integrations and phases;
5. :func:`subtract_joint`: ``amp * waveform(phase)`` (cubic interpolation of the
   reference wave) subtracted in float64 from each output, rounded to float32.

The ``sequential`` algorithm (``_run_sequential_algorithm``) is in
:func:`sequential_clean` (per pixel and row, any row band), :func:`sequential_phase`
(jwst's accumulated integer clock times in closed form), :func:`sequential_lut` (frame
medians, astropy's ``sigma_clipped_stats`` repeated with the same NumPy calls on each
phase bin's values in jwst's order, the reference phased by cross-correlation) and
:func:`subtract_lut`.

Pure NumPy/SciPy/numba; no input is changed in place.
"""

import numba
import numpy as np
from scipy import interpolate

__all__ = [
    "SUBARRAY_CLOCKS",
    "best_phases",
    "best_trials",
    "chisq_terms",
    "fit_from_terms",
    "fit_joint",
    "fit_tables",
    "joint_geometry",
    "median_plan",
    "median_threshold",
    "phase_bins",
    "phase_rows",
    "period_in_pixels",
    "phase_sums",
    "pixel_std",
    "rebin",
    "sequential_clean",
    "sequential_lut",
    "sequential_phase",
    "std_key_histogram",
    "std_low_histogram",
    "subtract_joint",
    "subtract_lut",
]

#: jwst's clocks for on-the-fly corrections (``emicorr.subarray_clocks``).
SUBARRAY_CLOCKS = {
    "SLITLESSPRISM": {"rowclocks": 28, "frameclocks": 15904},
    "MASKLYOT": {"rowclocks": 90, "frameclocks": 32400},
    "SUB64": {"rowclocks": 28, "frameclocks": 8512},
    "SUB128": {"rowclocks": 44, "frameclocks": 11904},
    "MASK1140": {"rowclocks": 82, "frameclocks": 23968},
    "MASK1550": {"rowclocks": 82, "frameclocks": 23968},
    "MASK1065": {"rowclocks": 82, "frameclocks": 23968},
    "FULL_FAST": {"rowclocks": 271, "frameclocks": 277504},
    "FULL_SLOW": {"rowclocks": 2333, "frameclocks": 2388992},
    "BRIGHTSKY": {"rowclocks": 162, "frameclocks": 86528},
    "SUB256": {"rowclocks": 96, "frameclocks": 29952},
}

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_HALF = 1 << 16


def period_in_pixels(frequency):
    """The EMI period in 10 us pixel clocks, as jwst computes it."""
    return (1.0 / frequency) / 10.0e-6


def joint_geometry(ny, ngroups, rowclocks, frameclocks, period):
    """``(dphase, dphase_frame)``: the phase step between groups and between
    integrations (``frameclocks`` is 0 unless the read pattern is FASTR1/SLOWR1)."""
    extra_rowclocks = (1024.0 - ny) * (4 + 3.0)
    frametime = ny * rowclocks + extra_rowclocks
    dphase = (frametime / period) % 1
    dphase_frame = dphase * ngroups + frameclocks / period
    return dphase, dphase_frame


def phase_rows(rows, nx4, rowclocks, nsamples, period):
    """Phase ``(len(rows), nx4)`` float64 of the first group's pixels of the rows
    ``rows`` (0-based in the exposure), as jwst's ``t0_arr`` gives it."""
    rows = np.asarray(rows, dtype=np.int64)
    # jwst: t0_arr[i] = i * rowclocks + np.arange(nx4) * nsamples, integers stored in
    # float64 (exact for integer clocks, as here)
    t0 = (rows[:, np.newaxis] * rowclocks + np.arange(nx4) * nsamples).astype(np.float64)
    return (t0 / period) % 1


def phase_bins(phase, nphases):
    """The phase-bin index of each pixel, ``int(phase * nphases)``."""
    return (phase * nphases).astype(np.int64)


def pixel_std(data):
    """``np.std(data, axis=1)`` of a ``(nints, ngroups, ny, nx)`` tile (float32 in,
    float32 out: each pixel's own sequential sums, so any tile gives jwst's values)."""
    return np.std(data, axis=1)


# --------------------------------------------------------------------------
# The exact median of the standard deviations, in two histogram passes
# --------------------------------------------------------------------------

def _keys(std):
    std = np.ascontiguousarray(std, dtype=np.float32)
    return std.view(np.uint32).ravel(), np.isnan(std).ravel()


def std_key_histogram(std):
    """Counts ``(65537,)`` int64 of the high 16 bits of the float32 values of a tile
    (non-negative floats order as their bit patterns); the last entry counts NaN."""
    keys, nan = _keys(std)
    out = np.zeros(_HALF + 1, dtype=np.int64)
    out[:_HALF] = np.bincount((keys[~nan] >> 16).astype(np.int64), minlength=_HALF)
    out[_HALF] = int(nan.sum())
    return out


def median_plan(hist):
    """From the summed :func:`std_key_histogram`: ``(n, has_nan, hi_bins, ranks)``,
    the high-bit bins holding the values ``np.median`` averages (ranks ``n//2-1`` and
    ``n//2`` for even ``n``, ``n//2`` for odd ``n``) and their ranks in their bins."""
    hist = np.asarray(hist, dtype=np.int64)
    nnan = int(hist[_HALF])
    counts = hist[:_HALF]
    n = int(counts.sum()) + nnan
    if n == 0 or nnan:
        return n, bool(nnan), np.zeros(0, np.int64), np.zeros(0, np.int64)
    wanted = [n // 2 - 1, n // 2] if n % 2 == 0 else [n // 2]
    cum = np.cumsum(counts)
    hi = np.searchsorted(cum, np.asarray(wanted), side="right")
    below = np.where(hi > 0, cum[np.maximum(hi - 1, 0)], 0)
    return n, False, hi.astype(np.int64), (np.asarray(wanted) - below).astype(np.int64)


def std_low_histogram(std, plan):
    """Counts ``(len(hi_bins), 65536)`` of the low 16 bits of a tile's values whose high
    bits are each of :func:`median_plan`'s ``hi_bins``."""
    _, _, hi_bins, _ = plan
    keys, nan = _keys(std)
    keys = keys[~nan]
    out = np.zeros((len(hi_bins), _HALF), dtype=np.int64)
    for n, hb in enumerate(hi_bins.tolist()):
        sel = keys[(keys >> 16) == hb]
        out[n] = np.bincount((sel & 0xFFFF).astype(np.int64), minlength=_HALF)
    return out


def median_threshold(plan, low):
    """``2 * np.median(std)`` (float32) from the plan and the summed low histograms:
    jwst's good-pixel limit. NaN when a value is NaN or there is none."""
    n, has_nan, hi_bins, ranks = plan
    if n == 0 or has_nan:
        return np.float32(np.nan)
    values = []
    for n_, (hb, rank) in enumerate(zip(hi_bins.tolist(), ranks.tolist(), strict=True)):
        cum = np.cumsum(np.asarray(low)[n_])
        lo = int(np.searchsorted(cum, rank, side="right"))
        values.append(np.uint32((hb << 16) | lo))
    vals = np.array(values, dtype=np.uint32).view(np.float32)
    median = np.mean(vals)  # np.median's mean of the middle value(s), in float32
    return 2 * median


# --------------------------------------------------------------------------
# joint: the phase sums (a fold over the rows), the fit, the subtraction
# --------------------------------------------------------------------------

@numba.njit(**_JIT)
def _phase_sums(all_y, all_n, data, ok, idx):
    nints, ngroups, ny, _ = data.shape
    nx4 = idx.shape[1]
    for j in range(ny):
        for k in range(nx4):
            if k == 1 or k == 2:  # bad reference column
                continue
            p = idx[j, k]
            for l in range(4):
                x = k * 4 + l
                for i in range(nints):
                    o = ok[i, j, x]
                    w = np.float32(1.0) if o else np.float32(0.0)
                    for g in range(ngroups):
                        all_y[i, p, g] += np.float64(data[i, g, j, x] * w)
                    all_n[i, p] += w


def phase_sums(acc, data, std, pixeldq, threshold, idx):
    """jwst's phase sums continued over one row band of one integration tile.

    Parameters
    ----------
    acc : tuple of ndarray
        ``(all_y (nints, nphases, ngroups), all_n (nints, nphases))`` float64 sums of
        the rows above (zeros for the first rows).
    data : ndarray
        ``(nints, ngroups, ny, nx)`` float32, whole rows.
    std : ndarray
        ``(nints, ny, nx)`` :func:`pixel_std` of ``data``.
    pixeldq : ndarray
        ``(ny, nx)``.
    threshold : float32
        :func:`median_threshold`.
    idx : ndarray
        ``(ny, nx // 4)`` :func:`phase_bins` of the rows (needs ``nphases`` bins).

    Returns
    -------
    tuple of ndarray
        The new ``(all_y, all_n)`` (the inputs are not changed).
    """
    all_y, all_n = np.array(acc[0], dtype=np.float64), np.array(acc[1], dtype=np.float64)
    ok = (std < threshold) & (np.asarray(pixeldq) == 0)[np.newaxis]
    _phase_sums(all_y, all_n, np.ascontiguousarray(data, dtype=np.float32),
                np.ascontiguousarray(ok), np.ascontiguousarray(idx, dtype=np.int64))
    return all_y, all_n


def _phasefunc(refwave):
    refwave_extended = np.array([refwave[-1]] + list(refwave) + [refwave[0]])
    phase_extended = (np.arange(len(refwave) + 2) - 0.5) / len(refwave)
    return interpolate.interp1d(phase_extended, refwave_extended, kind="cubic"), phase_extended


def _best_phase(phases, chisq):
    """jwst's ``get_best_phase``: the vertex of a parabola through the three best."""
    if np.all(~np.isfinite(chisq)):
        return phases[0]
    ibest = np.nanargmin(chisq)
    ibest_m1 = ibest - 1
    ibest_p1 = ibest + 1
    if ibest_p1 > len(chisq) - 1:
        ibest_p1 = 0
    chisq_opt = [chisq[ibest_m1], chisq[ibest], chisq[ibest_p1]]
    if np.any(~np.isfinite(chisq_opt)):
        return phases[ibest]
    x = [phases[ibest_m1], phases[ibest], phases[ibest_p1]]
    if np.nanstd(chisq_opt) == 0:
        return phases[ibest]
    a, b, _ = np.polyfit(x, chisq_opt, 2)
    return -b / (2 * a)


@numba.njit(**_JIT)
def _pairwise_block(a, start, n):
    """NumPy's pairwise summation of a run of at most 128 values."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[start + i]
        return res
    r0, r1, r2, r3 = a[start], a[start + 1], a[start + 2], a[start + 3]
    r4, r5, r6, r7 = a[start + 4], a[start + 5], a[start + 6], a[start + 7]
    i = 8
    while i < n - (n % 8):
        r0 += a[start + i]
        r1 += a[start + i + 1]
        r2 += a[start + i + 2]
        r3 += a[start + i + 3]
        r4 += a[start + i + 4]
        r5 += a[start + i + 5]
        r6 += a[start + i + 6]
        r7 += a[start + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[start + i]
        i += 1
    return res


@numba.njit(**_JIT)
def _pairwise(a, start, n):
    """NumPy's pairwise summation of ``a[start:start+n]`` (``np.sum`` of a contiguous
    float64 run is ``0.0 +`` this): runs of more than 128 split in two halves (a multiple
    of 8 first), summed apart and added. Iterative (numba's cache mishandles recursion)."""
    if n <= 128:
        return _pairwise_block(a, start, n)
    st_s = np.empty(64, np.int64)
    st_n = np.empty(64, np.int64)
    st_k = np.zeros(64, np.int64)  # 0: left half next, 1: right half next, 2: add
    vals = np.empty(64)
    top, nv = 0, 0
    st_s[0], st_n[0], st_k[0] = start, n, 0
    while top >= 0:
        s_, n_ = st_s[top], st_n[top]
        if n_ <= 128:
            vals[nv] = _pairwise_block(a, s_, n_)
            nv += 1
            top -= 1
            continue
        n2 = n_ // 2
        n2 -= n2 % 8
        if st_k[top] == 0:
            st_k[top] = 1
            top += 1
            st_s[top], st_n[top], st_k[top] = s_, n2, 0
        elif st_k[top] == 1:
            st_k[top] = 2
            top += 1
            st_s[top], st_n[top], st_k[top] = s_ + n2, n_ - n2, 0
        else:
            vals[nv - 2] = vals[nv - 2] + vals[nv - 1]
            nv -= 1
            top -= 1
    return vals[0]


@numba.njit(**_JIT)
def _np_sum(a):
    return 0.0 + _pairwise(a, 0, a.shape[0])


@numba.njit(**_JIT)
def _chisq_terms(trials, ints, phaselist, dphase_frame, all_y, all_n, all_sy, all_sty,
                 zlist, szlist, stzlist, szzlist, s_tt, s_t, delta, ngroups):
    """Each integration's part of jwst's ``a_`` and ``b_`` (``calc_chisq_amplitudes``) at
    trial phases: ``(3, ntrial, nints)`` -- the ``a_`` term, the ``b_`` sum before its
    ``2/delta`` factor, and the ``s_yz`` sum -- with NumPy's arithmetic (the same element
    expressions, NumPy's pairwise sums over phases and groups).

    ``trials`` is ``(ntrial, nints)``: the trial phase of each integration; ``ints`` the
    integrations' indices in the exposure (their phase offsets); ``all_*`` their rows."""
    ntrial = trials.shape[0]
    nints = ints.shape[0]
    nphases = all_y.shape[1]
    nopt = phaselist.shape[0]
    out = np.empty((3, ntrial, nints))
    at = np.empty(nphases)
    bt = np.empty(nphases)
    yzt = np.empty(nphases)
    prod = np.empty(ngroups)
    f_ngroups = np.float64(ngroups)
    two_s_t = 2 * s_t
    for t in range(ntrial):
        for ii in range(nints):
            phase = trials[t, ii]
            phase_diff = dphase_frame * ints[ii]
            # np.argmin over the list of |((phaselist - phase) - phase_diff) % 1|: the
            # values rise with m from the first entry at or above the phase, so the
            # minimum is among a few entries around it (the first of equal minima)
            centre = int(np.floor(((phase + phase_diff) % 1.0) * nopt))
            best = -1
            best_v = 0.0
            for d in range(-2, 4):
                m = (centre + d) % nopt
                v = abs(((phaselist[m] - phase) - phase_diff) % 1.0)
                if best < 0 or v < best_v or (v == best_v and m < best):
                    best, best_v = m, v
            k = best
            for p in range(nphases):
                s_z = szlist[k, p]
                s_tz = stzlist[k, p]
                s_zz = szzlist[k, p]
                n_ = all_n[ii, p]
                at[p] = (n_ / delta) * ((((-s_tt) * (s_z * s_z) + (two_s_t * s_z) * s_tz)
                                         - f_ngroups * (s_tz * s_tz)) + s_zz * delta)
                s_y = all_sy[ii, p]
                s_ty = all_sty[ii, p]
                bt[p] = ((((s_tt * s_z) * s_y - (s_t * s_tz) * s_y) - (s_t * s_z) * s_ty)
                         + (f_ngroups * s_tz) * s_ty)
                for g in range(ngroups):
                    prod[g] = zlist[k, p, g] * all_y[ii, p, g]
                yzt[p] = _np_sum(prod)
            out[0, t, ii] = _np_sum(at)
            out[1, t, ii] = _np_sum(bt)
            out[2, t, ii] = _np_sum(yzt)
    return out


@numba.njit(**_JIT)
def _accumulate(terms, delta):
    """jwst's sequential sums over integrations: ``a_ += a``, ``b_ += (2/delta) * b``,
    ``b_ -= 2 * yz`` for each trial (``terms`` ``(3, ntrial, nints)``)."""
    ntrial, nints = terms.shape[1], terms.shape[2]
    a_out = np.empty(ntrial)
    b_out = np.empty(ntrial)
    two_over_delta = 2 / delta
    for t in range(ntrial):
        a_ = 0.0
        b_ = 0.0
        for i in range(nints):
            a_ += terms[0, t, i]
            b_ += two_over_delta * terms[1, t, i]
            b_ -= 2 * terms[2, t, i]
        a_out[t] = a_
        b_out[t] = b_
    return a_out, b_out


def fit_tables(refwave, dphase, ngroups, nphases_opt=500):
    """jwst's ``EMIfitter`` tables of the waveform at each trial phase offset (same
    arithmetic): a dict of ``phaselist``, ``zlist``, ``szlist``, ``stzlist``,
    ``szzlist``, ``s_tt``, ``s_t``, ``delta``, ``ngroups``, ``grouptimes``."""
    phasefunc, phase_extended = _phasefunc(refwave)
    grouptimes = np.arange(ngroups)
    phases_template = (phase_extended[1:-1, np.newaxis] + grouptimes * dphase) % 1
    phaselist = np.arange(nphases_opt) * 1.0 / nphases_opt
    s_tt = np.sum(grouptimes**2)
    s_t = np.sum(grouptimes)
    z = [phasefunc((phases_template.T + d) % 1).T for d in phaselist]
    return {
        "phaselist": phaselist, "grouptimes": grouptimes, "ngroups": int(ngroups),
        "s_tt": s_tt, "s_t": s_t, "delta": ngroups * s_tt - s_t**2,
        "zlist": np.array(z),  # (nphases_opt, nphases, ngroups)
        "stzlist": np.array([np.sum(grouptimes * zz, axis=1) for zz in z]),
        "szlist": np.array([np.sum(zz, axis=1) for zz in z]),
        "szzlist": np.array([np.sum(zz**2, axis=1) for zz in z]),
    }


def chisq_terms(tables, all_y, all_n, ints, dphase_frame, trials=None):
    """Each integration's chi-squared terms (:func:`_chisq_terms`) for the integrations
    ``ints`` (indices in the exposure) whose sums are ``all_y`` ``(n, nphases, ngroups)``,
    ``all_n`` ``(n, nphases)``; ``trials``: None (the 500 trial phases), a phase, or one
    phase per integration. Returns ``(3, ntrial, n)`` float64."""
    ints = np.asarray(ints, dtype=np.int64)
    all_y = np.asarray(all_y, dtype=np.float64)
    if trials is None:
        trials = tables["phaselist"]
    trials = np.asarray(trials, dtype=np.float64)
    if trials.ndim == 0:
        trials = trials[np.newaxis]
    trials = (np.ascontiguousarray(np.broadcast_to(trials[:, np.newaxis], (len(trials), len(ints))))
              if trials.ndim == 1 else np.ascontiguousarray(trials))
    grouptimes = tables["grouptimes"]
    all_sy = np.sum(all_y, axis=2)
    all_sty = np.sum(all_y * grouptimes, axis=2)
    return _chisq_terms(
        trials, ints, tables["phaselist"], float(dphase_frame), all_y,
        np.asarray(all_n, dtype=np.float64), all_sy, all_sty, tables["zlist"],
        tables["szlist"], tables["stzlist"], tables["szzlist"], float(tables["s_tt"]),
        float(tables["s_t"]), float(tables["delta"]), tables["ngroups"])


def _chisq_from_terms(terms, delta):
    """jwst's chi squared and amplitude lists from the integrations' terms."""
    a_all, b_all = _accumulate(np.ascontiguousarray(terms), float(delta))
    chisq, amplitudes = [], []
    for a_, b_ in zip(a_all.tolist(), b_all.tolist(), strict=True):
        a_, b_ = np.float64(a_), np.float64(b_)
        if np.isclose(a_, 0, atol=1e-8) or ~np.isfinite(a_) or ~np.isfinite(b_):
            chisq.append(np.nan)
            amplitudes.append(0.0)
        else:
            c = -b_ / (2 * a_)
            chisq.append(a_ * c**2 + b_ * c)
            amplitudes.append(c)
    return chisq, amplitudes


def best_phases(tables, terms, separately):
    """The best trial phase from the 500-trial terms ``(3, 500, nints)`` of every
    integration: one for the exposure, or (``separately``) one per integration."""
    phaselist = tables["phaselist"]
    if separately:
        return [_best_phase(phaselist, _chisq_from_terms(terms[:, :, i:i + 1],
                                                         tables["delta"])[0])
                for i in range(terms.shape[2])]
    return _best_phase(phaselist, _chisq_from_terms(terms, tables["delta"])[0])


def best_trials(best, separately, start=0, stop=None):
    """The trial phases at the best phase(s) for :func:`chisq_terms`, for integrations
    ``start:stop``: each integration its own (``separately``) or one for all."""
    if separately:
        return np.asarray(best[start:stop], dtype=np.float64)[np.newaxis, :]
    return np.float64(best)


def fit_from_terms(tables, terms_at_best, best, nints, dphase_frame, separately):
    """``(phases, amplitudes)`` per integration, as jwst returns them, from the terms at
    the best phase(s) ``(3, 1, nints)``."""
    if separately:
        phases, amplitudes = [], []
        for i in range(nints):
            phases += [best[i] + i * dphase_frame]
            amplitudes += _chisq_from_terms(terms_at_best[:, :, i:i + 1], tables["delta"])[1]
        return phases, amplitudes
    _, c = _chisq_from_terms(terms_at_best, tables["delta"])
    phases = (best + np.arange(nints) * dphase_frame) % 1
    return list(phases), c * nints


def fit_joint(all_y, all_n, refwave, dphase, dphase_frame, fit_ints_separately=False,
              nphases_opt=500):
    """The phase and amplitude of the reference waveform, per integration, in one call
    (the step computes the same pieces as tasks: :func:`fit_tables`,
    :func:`chisq_terms` per integration tile, :func:`best_phases`,
    :func:`fit_from_terms`).

    Parameters
    ----------
    all_y : ndarray
        ``(nints, nphases, ngroups)`` float64 phase sums.
    all_n : ndarray
        ``(nints, nphases)`` float64 counts.
    refwave : ndarray
        ``(nphases,)`` the reference waveform.
    dphase, dphase_frame : float
        :func:`joint_geometry`.
    fit_ints_separately : bool
        One phase and amplitude per integration (else one for all).

    Returns
    -------
    phases : list of float
        ``(nints,)`` phase offset of each integration, as jwst holds it.
    amplitudes : list of float
        ``(nints,)``.
    """
    nints, _, ngroups = all_y.shape
    tables = fit_tables(refwave, dphase, ngroups, nphases_opt)
    ints = np.arange(nints)
    terms = chisq_terms(tables, all_y, all_n, ints, dphase_frame)
    best = best_phases(tables, terms, fit_ints_separately)
    at_best = chisq_terms(tables, all_y, all_n, ints, dphase_frame,
                          trials=best_trials(best, fit_ints_separately))
    return fit_from_terms(tables, at_best, best, nints, dphase_frame, fit_ints_separately)


def subtract_joint(data, phase, refwave, dphase, phases, amplitudes):
    """One tile minus the fitted waveform.

    Parameters
    ----------
    data : ndarray
        ``(nints, ngroups, ny, nx)`` float32, integrations of the tile.
    phase : ndarray
        ``(ny, nx // 4)`` :func:`phase_rows` of the tile's rows.
    refwave : ndarray
        The reference waveform.
    dphase : float
        Phase step between groups.
    phases, amplitudes : sequence of float
        :func:`fit_joint`'s values for the tile's integrations.

    Returns
    -------
    ndarray
        float32, same shape (float64 arithmetic, rounded as jwst's in-place ``-=``).
    """
    phasefunc, _ = _phasefunc(refwave)
    out = np.array(data, dtype=np.float32, copy=True)
    nints, ngroups = out.shape[:2]
    for i in range(nints):
        for j in range(ngroups):
            phased_emi = phasefunc((phase + dphase * j + phases[i]) % 1)
            for k in range(4):
                out[i, j, :, k::4] -= amplitudes[i] * phased_emi
    return out


# --------------------------------------------------------------------------
# sequential (jwst's _run_sequential_algorithm)
# --------------------------------------------------------------------------

def _sloper(data):
    """jwst's ``sloper``: per-pixel least-squares slope and intercept over the groups."""
    ngroups, ny, nx = np.shape(data)
    grouptimes = np.arange(ngroups) * 1.0
    sxy = np.zeros((ny, nx))
    sx = np.zeros((ny, nx))
    sy = np.zeros((ny, nx))
    sxx = np.zeros((ny, nx))
    for g in range(ngroups):
        sxy = sxy + grouptimes[g] * data[g, ...]
        sx = sx + grouptimes[g]
        sy = sy + data[g, ...]
        sxx = sxx + grouptimes[g] ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (ngroups * sxy - sx * sy) / (ngroups * sxx - sx * sx)
        intercept = (sxx * sy - sx * sxy) / (ngroups * sxx - sx * sx)
    return slope, intercept


def _minmed(data):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if data.shape[0] <= 2:
            return np.nanmin(data, axis=0)
        return np.nanmedian(data, axis=0)


def sequential_clean(data):
    """One integration's rows, cleaned and quad-averaged as jwst's sequential algorithm
    does before the frame median: the line fit over groups ``1..ngroups-2`` and the
    median "superbias" removed, the four outputs averaged, output columns 1 and 2 replaced
    by the mean of columns 0 and 3 (all per pixel or per row).

    Parameters
    ----------
    data : ndarray
        ``(ngroups, ny, nx)`` float32, whole rows of one integration.

    Returns
    -------
    ndarray
        ``(ngroups, ny, nx // 4)`` float32 (jwst subtracts each frame's median next).
    """
    ngroups, ny, nx = data.shape
    orig = np.asarray(data, dtype=np.float32)
    work = orig.copy()
    s0, _ = _sloper(work[1:ngroups - 1, :, :])
    for g in range(ngroups):
        work[g, ...] = orig[g, ...] - (s0 * g)
    m0 = _minmed(work[1:ngroups - 1, :, :])
    out = np.empty((ngroups, ny, nx // 4), dtype=np.float32)
    for g in range(ngroups):
        work[g, ...] = work[g, ...] - m0
        d0 = work[g, :, 0:nx:4]
        d1 = work[g, :, 1:nx:4]
        d2 = work[g, :, 2:nx:4]
        d3 = work[g, :, 3:nx:4]
        dd = (d0 + d1 + d2 + d3) / 4.0
        dd[:, 1] = (dd[:, 0] + dd[:, 3]) / 2
        dd[:, 2] = (dd[:, 0] + dd[:, 3]) / 2
        out[g] = dd
    return out


def sequential_phase(ints, ngroups, rows, nx4, ny, rowclocks, frameclocks, r1, nsamples,
                     period, colstop):
    """jwst's ``phaseall`` of the sequential algorithm for some integrations and rows.

    jwst counts pixel clocks from the first pixel read, ``rowclocks`` per row, ``(1024 -
    ny) * 7`` more per frame, ``frameclocks`` more per integration for FASTR1/SLOWR1
    (``r1``); the last output column gets ``2**32 + 3`` more when ``colstop`` is 258 (jwst's
    full-frame reference-pixel term). Those integer times are exact, so the closed form
    here gives jwst's accumulated values.

    Returns
    -------
    ndarray
        ``(len(ints), ngroups, len(rows), nx4)`` float64 phases in ``[0, 1)``.
    """
    extra = (1024.0 - ny) * (4 + 3.0)
    frame = int(ny * rowclocks + extra)
    per_int = ngroups * frame + (int(frameclocks) if r1 else 0)
    ints = np.asarray(ints, dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64)
    start = (ints[:, None, None] * per_int + np.arange(ngroups)[None, :, None] * frame
             + rows[None, None, :] * int(rowclocks))
    times = start[..., None] + np.arange(nx4, dtype=np.int64) * int(nsamples)
    if colstop == 258:
        times[..., nx4 - 1] += 3 + 2**32
    times = times.astype(np.uint64)
    phase = times / period
    return phase - phase.astype(np.uint64)


def _sigma_clipped_mean(values):
    """astropy's ``sigma_clipped_stats(values)[0]`` (sigma 3, 5 iterations, median and
    std, no bottleneck): the same NumPy calls on the same flattened values."""
    import warnings

    filtered = values.ravel()
    good = np.isfinite(filtered)
    if np.any(~good):
        filtered = filtered[good]
    if filtered.size == 0:
        return np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        nchanged, iteration = 1, 0
        while nchanged != 0 and iteration < 5:
            iteration += 1
            size = filtered.size
            cen = np.nanmedian(filtered)
            std = np.nanstd(filtered)
            lo, hi = cen - (std * 3.0), cen + (std * 3.0)
            filtered = filtered[(filtered >= lo) & (filtered <= hi)]
            nchanged = size - filtered.size
        return np.nanmean(filtered)


def rebin(arr, newshape):
    """jwst's ``rebin`` (IDL ``congrid`` without interpolation)."""
    slices = [slice(0, old, float(old) / new) for old, new in zip(arr.shape, newshape,
                                                                  strict=False)]
    coordinates = np.mgrid[slices]
    indices = coordinates.astype("i")
    return arr[tuple(indices)]


def _bin_index(phase, nbins):
    """The bin ``nb`` with ``nb/nbins < phase <= (nb+1)/nbins`` (jwst's comparisons), -1
    for a phase in no bin."""
    lo = np.array([nb / nbins for nb in range(nbins)])
    hi = np.array([(nb + 1) / nbins for nb in range(nbins)])
    idx = np.clip(np.ceil(phase * nbins).astype(np.int64) - 1, 0, nbins - 1)
    for _ in range(3):
        idx = np.where((phase <= lo[idx]) & (idx > 0), idx - 1, idx)
        idx = np.where((phase > hi[idx]) & (idx < nbins - 1), idx + 1, idx)
    inside = (phase > lo[idx]) & (phase <= hi[idx])
    return np.where(inside, idx, -1)


def sequential_lut(dd, phase, period, nbins=None, refwave=None, scale_reference=True):
    """jwst's phased amplitude and noise look-up table for one frequency.

    Parameters
    ----------
    dd : ndarray
        ``(nints_to_phase, ngroups, ny, nx // 4)`` float32 :func:`sequential_clean` frames
        (whole frames).
    phase : ndarray
        Their :func:`sequential_phase`, float64, same shape.
    period : float
        Period in pixel clocks.
    nbins : int, optional
        Bins in one wave (default ``int(period / 2)``; at most 500).
    refwave : ndarray, optional
        The reference waveform: phased against the bins by cross-correlation and
        (``scale_reference``) scaled; None: the bins themselves (on the fly).

    Returns
    -------
    lut : ndarray
        float64 look-up table, indexed by ``int(phase * period)``.
    pa : ndarray
        The binned phased amplitudes (what an on-the-fly reference file would hold).
    """
    import warnings

    meds = np.array([[np.median(dd[i, g]) for g in range(dd.shape[1])]
                     for i in range(dd.shape[0])], dtype=np.float32).reshape(dd.shape[:2])
    dd_temp = (dd - meds[:, :, None, None]).astype(np.float64)
    if nbins is None:
        nbins = int(period / 2.0)
    if nbins > 501:
        nbins = 500
    pa = np.arange(nbins, dtype=float)
    flat_bins = _bin_index(phase, nbins).ravel()
    flat = dd_temp.ravel()
    order = np.argsort(flat_bins, kind="stable")  # each bin's values in jwst's order
    counts = np.bincount(flat_bins[flat_bins >= 0], minlength=nbins)
    start = int(np.count_nonzero(flat_bins < 0))
    for nb in range(nbins):
        pa[nb] = _sigma_clipped_mean(flat[order[start:start + counts[nb]]])
        start += counts[nb]
    pa -= np.median(pa)
    lut = rebin(pa, [period])
    if refwave is not None:
        reference_wave = np.array(refwave)
        size = np.size(reference_wave)
        rebinned_pa = rebin(pa, [size])
        cc = np.zeros(size)
        for i in range(size):
            shifted = np.roll(reference_wave, i)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                cc[i] = np.corrcoef(shifted, rebinned_pa)[0, 1]
        u = np.argmax(cc)
        lut_reference = rebin(np.roll(reference_wave, u), [period])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            m, _ = np.polyfit(lut_reference, lut, 1)
        if scale_reference:
            lut_reference = lut_reference * m
        lut = lut_reference
    return lut, pa


def subtract_lut(data, phase, lut, period):
    """A tile minus jwst's look-up-table noise ``lut[int(phase * period)]`` (non-finite
    values count as 0), from each output; float64 arithmetic rounded to float32.

    ``data`` ``(nints, ngroups, ny, nx)`` float32, ``phase`` ``(nints, ngroups, ny,
    nx // 4)`` :func:`sequential_phase`."""
    noise = lut[(phase * period).astype(int)]
    noise[~np.isfinite(noise)] = 0.0
    out = np.array(data, dtype=np.float32, copy=True)
    for k in range(4):
        out[..., k::4] -= noise
    return out
