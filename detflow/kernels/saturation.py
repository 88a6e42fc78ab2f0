"""Saturation, A/D-floor and charge-spill flagging on one tile (jwst ``SaturationStep``).

The group flags are computed by stcal's own ``flag_saturated_pixels`` (stcal 1.20, the
code jwst 3.0.0 calls), on copies of the tile's arrays, so the arithmetic, dtypes and
order of operations are jwst's by construction. The pixel-DQ and ZEROFRAME parts are
small NumPy functions that repeat stcal's arithmetic (proven equal in the tests).

A tile given to :func:`flag_saturation_groups` carries a halo of neighbour pixels (see
:func:`saturation_halo`); the flags are exact on the pixels farther than the halo from a
cut edge of the tile. A tile edge that is the real edge of the exposure behaves as jwst's
(nothing beyond it).
"""

import numpy as np
from scipy import ndimage
from stcal.saturation.saturation import flag_saturated_pixels

__all__ = [
    "ATOD_LIMIT",
    "flag_saturation_groups",
    "read_pattern",
    "saturation_halo",
    "saturation_pixeldq",
    "saturation_zeroframe",
    "sat_thresholds",
]

#: Hard DN limit of the 16-bit A-to-D converter (jwst ``saturation.ATOD_LIMIT``).
ATOD_LIMIT = 65535.0


def read_pattern(nframes, ngroups):
    """jwst's read pattern for saturation: frame numbers of each group, GROUPGAP ignored.

    Returns
    -------
    list of list of int
        ``ngroups`` lists of ``nframes`` 1-based frame numbers,
        ``[[g * nframes + 1, ..., g * nframes + nframes] for g in range(ngroups)]``.
    """
    return [[x + 1 + g * nframes for x in range(nframes)] for g in range(ngroups)]


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
    data = np.asarray(data, dtype=np.float32)
    gdq = np.array(groupdq, dtype=np.uint8, copy=True)
    thresh = np.array(thresh, dtype=np.float32, copy=True)
    sat_dq = np.array(sat_dq, dtype=np.uint32, copy=True)
    if bias is not None:
        bias = np.array(bias, dtype=np.float32, copy=True)
    flags = {k: int(dqflags[k]) for k in ("DO_NOT_USE", "SATURATED", "AD_FLOOR", "NO_SAT_CHECK")}
    pdq = np.zeros(data.shape[-2:], dtype=np.uint32)
    gdq, _, _ = flag_saturated_pixels(
        data, gdq, pdq, thresh, sat_dq, atod_limit, flags,
        n_pix_grow_sat=n_pix_grow_sat, read_pattern=read_pattern, zframe=None, bias=bias,
    )
    return gdq


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
    grown = ndimage.maximum_filter(mask.view(np.uint8), size=2 * n + 1, mode="constant", cval=0)
    return grown.astype(bool)


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
