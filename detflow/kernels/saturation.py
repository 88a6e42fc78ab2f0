"""Saturation, A/D-floor and charge-spill flagging on one tile (jwst ``SaturationStep``).

The group flags repeat stcal's ``flag_saturated_pixels`` (stcal 1.20, the code jwst
3.0.0 calls) in one compiled pass per integration (numba), with stcal's dtypes: float32
comparisons with the thresholds, float64 where stcal's NumPy expressions promote (the
backward pass's dilution factor, the group-2 extrapolation), box dilation of the flags
clipped at the tile's edges. The tests compare it with stcal's function on random tiles
and with jwst's step, bit for bit. The pixel-DQ and ZEROFRAME parts are small NumPy
functions that repeat stcal's arithmetic.

A tile given to :func:`flag_saturation_groups` carries a halo of neighbour pixels (see
:func:`saturation_halo`); the flags are exact on the pixels farther than the halo from a
cut edge of the tile. A tile edge that is the real edge of the exposure behaves as jwst's
(nothing beyond it).
"""

import numba
import numpy as np

__all__ = [
    "ATOD_LIMIT",
    "flag_saturation_groups",
    "saturation_halo",
    "saturation_pixeldq",
    "saturation_zeroframe",
    "sat_thresholds",
]

#: Hard DN limit of the 16-bit A-to-D converter (jwst ``saturation.ATOD_LIMIT``).
ATOD_LIMIT = 65535.0


def saturation_halo(n_pix_grow_sat, nframes, use_readpatt):
    """Neighbour pixels a tile needs for exact saturation flags.

    The forward pass grows each group's saturated core by ``n`` pixels. The backward
    pass (``use_readpatt`` and ``nframes > 1``) tests a pixel against the *grown* flags
    of its own and the next group, then grows what it flags by ``n`` again, so a
    saturated pixel reaches ``2 n`` pixels away.

    Returns
    -------
    int
        ``2 * n`` with the backward pass, else ``n`` (0 when ``n <= 0``).
    """
    n = max(int(n_pix_grow_sat), 0)
    return 2 * n if (use_readpatt and int(nframes) > 1) else n


def sat_thresholds(thresh, sat_dq, no_sat_check, atod_limit=ATOD_LIMIT):
    """Effective thresholds and reference DQ as stcal makes them (inputs unchanged).

    Parameters
    ----------
    thresh : numpy.ndarray
        Saturation thresholds ``(ny, nx)`` float32 (NaN allowed).
    sat_dq : numpy.ndarray
        Reference DQ ``(ny, nx)`` uint32.
    no_sat_check : int
        The NO_SAT_CHECK bit.
    atod_limit : float
        A/D limit; NO_SAT_CHECK pixels get ``atod_limit + 1``.

    Returns
    -------
    thresh, sat_dq : numpy.ndarray
        ``(ny, nx)`` float32 thresholds with NaN or NO_SAT_CHECK replaced by
        ``atod_limit + 1``, and uint32 DQ with NO_SAT_CHECK added where the
        threshold is NaN.
    """
    thresh = np.array(thresh, dtype=np.float32, copy=True)
    sat_dq = np.array(sat_dq, dtype=np.uint32, copy=True)
    nan = np.isnan(thresh)
    no_check = (np.bitwise_and(sat_dq, no_sat_check) == no_sat_check) | nan
    sat_dq[nan] |= np.uint32(no_sat_check)
    thresh[no_check] = atod_limit + 1
    return thresh, sat_dq


def flag_saturation_groups(data, groupdq, thresh, sat_dq, bias=None, *, n_pix_grow_sat,
                           read_pattern, dqflags, atod_limit=ATOD_LIMIT):
    """Group flags of jwst's saturation step for one (haloed) tile.

    Parameters
    ----------
    data : numpy.ndarray
        Raw ramps ``(nints, ngroups, ny, nx)`` float32 (bias included).
    groupdq : numpy.ndarray
        Input group DQ ``(nints, ngroups, ny, nx)`` uint8.
    thresh : numpy.ndarray
        Saturation thresholds ``(ny, nx)`` float32, as in the reference file.
    sat_dq : numpy.ndarray
        Saturation reference DQ ``(ny, nx)`` uint32.
    bias : numpy.ndarray or None
        Superbias ``(ny, nx)`` float32, or None when there is none (jwst uses 0).
    n_pix_grow_sat : int
        Layers of neighbours flagged around saturated pixels.
    read_pattern : list of list of int or None
        Frame numbers of each group (:func:`read_pattern`), or None (``use_readpatt``
        off): then there is no backward pass and no group-2 check.
    dqflags : Mapping
        Bit values of ``DO_NOT_USE``, ``SATURATED``, ``AD_FLOOR`` and ``NO_SAT_CHECK``.
    atod_limit : float
        A/D limit.

    Returns
    -------
    numpy.ndarray
        New group DQ ``(nints, ngroups, ny, nx)`` uint8. The inputs are not changed.
    """
    data = np.ascontiguousarray(data, dtype=np.float32)
    gdq = np.array(groupdq, dtype=np.uint8, copy=True)
    flags = {k: int(dqflags[k]) for k in ("DO_NOT_USE", "SATURATED", "AD_FLOOR", "NO_SAT_CHECK")}
    nsc = flags["NO_SAT_CHECK"]
    no_check = ((np.bitwise_and(np.asarray(sat_dq, dtype=np.uint32), nsc) == nsc)
                | np.isnan(np.asarray(thresh)))
    thresh, _ = sat_thresholds(thresh, sat_dq, nsc, atod_limit)
    ngroups = data.shape[1]
    if read_pattern is None:
        dilution = np.ones(ngroups, dtype=np.float64)
        group2 = False
        mean0 = rp2_last = 1.0
        len1 = 1
    else:
        # stcal: np.mean(read_pattern[g]) / read_pattern[g][-1] (float64); 1 skips a group
        dilution = np.array([np.mean(read_pattern[g]) / read_pattern[g][-1]
                             for g in range(ngroups)], dtype=np.float64)
        group2 = ngroups > 2
        mean0 = float(np.mean(read_pattern[0]))
        rp2_last = float(read_pattern[2][-1]) if group2 else 1.0
        len1 = len(read_pattern[1]) if ngroups > 1 else 1
    has_bias = bias is not None
    bias_arr = (np.ascontiguousarray(bias, dtype=np.float32) if has_bias
                else np.zeros(data.shape[-2:], dtype=np.float32))
    _flag_groups(data, gdq, thresh, no_check, bias_arr, has_bias, int(n_pix_grow_sat),
                 read_pattern is not None, dilution, group2, mean0, rp2_last, len1,
                 flags["SATURATED"], flags["DO_NOT_USE"], flags["AD_FLOOR"])
    return gdq


@numba.njit(cache=True, nogil=True)
def _dilate(mask, n, out):
    """``out |= mask`` dilated by a ``(2n+1)`` square box, nothing beyond the edges."""
    ny, nx = mask.shape
    rows = np.zeros((ny, nx), dtype=np.bool_)
    for y in range(ny):
        for x in range(nx):
            if mask[y, x]:
                for xx in range(max(0, x - n), min(nx, x + n + 1)):
                    rows[y, xx] = True
    for y in range(ny):
        for x in range(nx):
            if rows[y, x]:
                for yy in range(max(0, y - n), min(ny, y + n + 1)):
                    out[yy, x] = True


@numba.njit(cache=True, nogil=True)
def _flag_groups(data, gdq, thresh, no_check, bias, has_bias, n, backward, dilution, group2,
                 mean0, rp2_last, len1, sat, dnu, ad_floor):
    """stcal ``flag_saturated_pixels`` on ``gdq`` in place (see the module docstring)."""
    nints, ngroups, ny, nx = data.shape
    sat8 = np.uint8(sat)
    dnu8 = np.uint8(dnu)
    low8 = np.uint8(ad_floor | dnu)
    zero32 = np.float32(0.0)
    prev = np.zeros((ny, nx), dtype=np.bool_)
    grown = np.zeros((ny, nx), dtype=np.bool_)
    flag = np.zeros((ny, nx), dtype=np.bool_)
    for i in range(nints):
        prev[:, :] = False
        for g in range(ngroups):
            for y in range(ny):
                for x in range(nx):
                    v = data[i, g, y, x]
                    if v >= thresh[y, x]:
                        prev[y, x] = True
                    if prev[y, x]:
                        gdq[i, g, y, x] |= sat8
                    if v <= zero32:
                        gdq[i, g, y, x] |= low8
            if n > 0:
                grown[:, :] = False
                for y in range(ny):
                    for x in range(nx):
                        flag[y, x] = (gdq[i, g, y, x] & sat8) != 0
                _dilate(flag, n, grown)
                for y in range(ny):
                    for x in range(nx):
                        if grown[y, x]:
                            gdq[i, g, y, x] |= sat8
        if backward:
            for g in range(ngroups - 2, -1, -1):
                if dilution[g] == 1.0:
                    continue
                for y in range(ny):
                    for x in range(nx):
                        dil = 1.0 if no_check[y, x] else dilution[g]
                        flag[y, x] = (
                            np.float64(data[i, g, y, x]) >= np.float64(thresh[y, x]) * dil
                            and (gdq[i, g, y, x] & (sat8 | dnu8)) == 0
                            and (gdq[i, g + 1, y, x] & sat8) != 0
                        )
                if n > 0:
                    grown[:, :] = False
                    _dilate(flag, n, grown)
                else:
                    grown[:, :] = flag
                for y in range(ny):
                    for x in range(nx):
                        if grown[y, x]:
                            gdq[i, g, y, x] |= dnu8
            if group2:
                for y in range(ny):
                    for x in range(nx):
                        b = bias[y, x] if has_bias else zero32
                        d0 = data[i, 0, y, x]
                        th = thresh[y, x]
                        scigp1 = d0 - b
                        extrap = (np.float64(scigp1) / mean0) * rp2_last + np.float64(b)
                        ok = extrap < np.float64(th)
                        scigp2 = data[i, 1, y, x] - d0
                        ok = ok and scigp2 > (th - d0) / np.float32(len1)
                        ok = ok and ((gdq[i, 2, y, x] & sat8) != 0
                                     and (gdq[i, 1, y, x] & sat8) == 0)
                        if ok:
                            gdq[i, 1, y, x] |= dnu8


def saturation_pixeldq(pixeldq, thresh, sat_dq, no_sat_check):
    """Pixel DQ after saturation: ``pixeldq | sat_dq``, with NaN thresholds NO_SAT_CHECK.

    Parameters
    ----------
    pixeldq : numpy.ndarray
        ``(ny, nx)`` uint32.
    thresh : numpy.ndarray
        Saturation thresholds ``(ny, nx)``.
    sat_dq : numpy.ndarray
        Reference DQ ``(ny, nx)``.
    no_sat_check : int
        The NO_SAT_CHECK bit.

    Returns
    -------
    numpy.ndarray
        ``(ny, nx)`` uint32.
    """
    _, dq = sat_thresholds(thresh, sat_dq, no_sat_check)
    return np.bitwise_or(np.asarray(pixeldq, dtype=np.uint32), dq)


def _grow(mask, n):
    """Box dilation ``(2n+1)**2`` of a boolean image, nothing beyond its edges (as stcal)."""
    if n <= 0:
        return mask
    grown = np.zeros(mask.shape, dtype=bool)
    _dilate(np.ascontiguousarray(mask, dtype=bool), int(n), grown)
    return grown


def saturation_zeroframe(zeroframe, thresh, sat_dq, *, n_pix_grow_sat, no_sat_check,
                         atod_limit=ATOD_LIMIT):
    """ZEROFRAME after saturation: saturated (grown) or ``<= 0`` values set to 0.

    stcal flags ``zf >= thresh`` as SATURATED and ``zf <= 0`` as AD_FLOOR|DO_NOT_USE,
    grows the SATURATED flags by ``n_pix_grow_sat``, and zeroes every flagged value.

    Parameters
    ----------
    zeroframe : numpy.ndarray
        ``(nints, ny, nx)`` float32 (a haloed tile: exact farther than
        ``n_pix_grow_sat`` from a cut edge).
    thresh, sat_dq : numpy.ndarray
        Reference thresholds and DQ ``(ny, nx)``.
    n_pix_grow_sat : int
    no_sat_check : int
        The NO_SAT_CHECK bit.
    atod_limit : float

    Returns
    -------
    numpy.ndarray
        ``(nints, ny, nx)`` float32.
    """
    thresh, _ = sat_thresholds(thresh, sat_dq, no_sat_check, atod_limit)
    out = np.array(zeroframe, dtype=np.float32, copy=True)
    for i in range(out.shape[0]):
        plane = out[i]
        flag = _grow(plane >= thresh, n_pix_grow_sat) | (plane <= 0)
        plane[flag] = 0.0
    return out
