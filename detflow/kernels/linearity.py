"""Classic and read-level linearity correction of one tile (jwst ``LinearityStep``).

Every function calls stcal 1.20's own ``stcal.linearity.linearity`` code (what jwst
3.0.0 calls) on copies of the tile's arrays, so arithmetic, dtypes and order of
operations are jwst's by construction. stcal's algorithm is per pixel: the coefficient
clean-up (NO_LIN_CORR, NaN and zero linear term), the group-by-group Horner polynomial
and the read-level INV_COEFFS correction (which stcal runs in 64-row tiles only to bound
its memory) all work on each pixel alone, so any spatial tiling gives jwst's numbers.

One care is taken: NumPy sums an axis-0 mean of a single-pixel array pairwise, but a
mean over a multi-pixel array one plane after another. stcal's read-level path averages
the reads of a group with ``np.mean(axis=0)`` (in float64); a tile one column wide is
therefore widened to two columns (its own copy) so that every row block stcal forms
holds at least two pixels, as jwst's full-width rows always do. (The float64 difference
would almost never survive the final rounding to float32, but the widening is cheap and
makes the equality exact by construction.)
"""

import numba
import numpy as np
from stcal.linearity import linearity as _stcal

__all__ = ["linearity_pixeldq", "linearity_ramp", "linearity_zeroframe"]


def _flags(saturated, no_lin_corr):
    return {"SATURATED": int(saturated), "NO_LIN_CORR": int(no_lin_corr)}


def _coeffs(coeffs):
    """A float32 copy (jwst's LinearityModel holds float32 coefficients)."""
    return None if coeffs is None else np.array(coeffs, dtype=np.float32, copy=True)


def linearity_pixeldq(pixeldq, lin_dq, coeffs, inv_coeffs=None, *, no_lin_corr):
    """The pixel DQ after linearity: ``pixeldq | lin_dq``, plus NO_LIN_CORR where a
    coefficient is NaN or the linear term is 0 (in COEFFS, and in INV_COEFFS when the
    read-level correction is used).

    Parameters
    ----------
    pixeldq : ndarray, uint32, ``(ny, nx)``
    lin_dq : ndarray, uint32, ``(ny, nx)``
        DQ of the LINEARITY reference file.
    coeffs : ndarray, ``(ncoeffs, ny, nx)``
        COEFFS of the reference file.
    inv_coeffs : ndarray, ``(ncoeffs_inv, ny, nx)``, optional
        INV_COEFFS, only when the read-level correction runs.
    no_lin_corr : int
        The NO_LIN_CORR bit.

    Returns
    -------
    ndarray, uint32, ``(ny, nx)``
    """
    flags = _flags(0, no_lin_corr)
    lin_dq = np.asarray(lin_dq, dtype=np.uint32)
    _, pdq = _stcal.prepare_coefficients(_coeffs(coeffs), lin_dq,
                                         np.asarray(pixeldq, dtype=np.uint32), flags)
    if inv_coeffs is not None:
        _, pdq = _stcal.prepare_coefficients(_coeffs(inv_coeffs), lin_dq, pdq, flags)
    return np.asarray(pdq, dtype=np.uint32)


def linearity_ramp(data, groupdq, lin_dq, coeffs, inv_coeffs=None, read_pattern=None, *,
                   saturated, no_lin_corr):
    """Linearity-corrected ramps of one tile.

    Without ``inv_coeffs``: every group becomes ``sum_k c_k x**k`` (Horner, float32),
    except SATURATED groups, which keep their value. With ``inv_coeffs`` and
    ``read_pattern``: stcal's read-level correction of frame-averaged groups.

    Parameters
    ----------
    data : ndarray, float32, ``(nints, ngroups, ny, nx)``
    groupdq : ndarray, uint8, ``(nints, ngroups, ny, nx)``
    lin_dq : ndarray, uint32, ``(ny, nx)``
    coeffs : ndarray, ``(ncoeffs, ny, nx)``
    inv_coeffs : ndarray, ``(ncoeffs_inv, ny, nx)``, optional
    read_pattern : list of list of int, optional
        Required with ``inv_coeffs`` (see :func:`read_pattern`).
    saturated, no_lin_corr : int
        The SATURATED and NO_LIN_CORR bits.

    Returns
    -------
    ndarray, float32, ``(nints, ngroups, ny, nx)``
    """
    out = np.array(data, dtype=np.float32, copy=True)
    gdq = np.asarray(groupdq)
    lin_dq = np.asarray(lin_dq, dtype=np.uint32)
    coeffs, inv_coeffs = _coeffs(coeffs), _coeffs(inv_coeffs)
    nx = out.shape[-1]
    widen = inv_coeffs is not None and nx == 1
    if widen:  # see the module docstring: keep stcal's read means sequential
        out, gdq, lin_dq, coeffs, inv_coeffs = (
            np.concatenate([a, a], axis=-1) for a in (out, gdq, lin_dq, coeffs, inv_coeffs)
        )
    pdq = np.zeros(out.shape[-2:], dtype=np.uint32)
    if inv_coeffs is None:
        # stcal's group-by-group path: its coefficient preparation, then its Horner
        # evaluation (apply_polynomial) compiled, float32 operation by operation
        coeffs = np.ascontiguousarray(coeffs, dtype=np.float32)
        if coeffs.shape[0] < 2:  # stcal's benign coefficients need a linear term
            coeffs, _ = _stcal.prepare_coefficients(
                coeffs, lin_dq, pdq, _flags(saturated, no_lin_corr))
        else:
            _benign(coeffs, lin_dq, np.uint32(no_lin_corr))
        _horner(out, np.ascontiguousarray(gdq, dtype=np.uint8), coeffs, np.uint8(saturated))
        return out
    result, _, _ = _stcal.linearity_correction(
        out, gdq, pdq, coeffs, lin_dq, _flags(saturated, no_lin_corr),
        ilin_coeffs=inv_coeffs,
        read_pattern=read_pattern if inv_coeffs is not None else None,
    )
    if widen:
        result = result[..., :nx]
    return np.ascontiguousarray(result, dtype=np.float32)


@numba.njit(cache=True, nogil=True)
def _benign(coeffs, lin_dq, no_lin_corr):
    """stcal ``prepare_coefficients`` on ``coeffs`` in place (``ncoeffs >= 2``): pixels
    flagged NO_LIN_CORR in the reference, with a NaN coefficient, or with a zero linear
    term get the benign polynomial ``(0, 1, 0, ...)``."""
    nc, ny, nx = coeffs.shape
    for y in range(ny):
        for x in range(nx):
            bad = (lin_dq[y, x] & no_lin_corr) == no_lin_corr
            for j in range(nc):
                bad = bad or np.isnan(coeffs[j, y, x])
            bad = bad or coeffs[1, y, x] == 0
            if bad:
                for j in range(nc):
                    coeffs[j, y, x] = 0.0
                coeffs[1, y, x] = 1.0


@numba.njit(cache=True, nogil=True)
def _horner(data, gdq, coeffs, saturated):
    """stcal ``apply_polynomial`` on every group of ``data`` in place: ``c[n-1] * x``,
    then ``(r + c[j]) * x`` for ``j = n-2 .. 1``, then ``r + c[0]``, in float32; SATURATED
    groups keep their value."""
    nints, ngroups, ny, nx = data.shape
    nc = coeffs.shape[0]
    for i in range(nints):
        for g in range(ngroups):
            for y in range(ny):
                for x in range(nx):
                    d = data[i, g, y, x]
                    r = coeffs[nc - 1, y, x] * d
                    for j in range(nc - 2, 0, -1):
                        r = r + coeffs[j, y, x]
                        r = r * d
                    r = r + coeffs[0, y, x]
                    data[i, g, y, x] = d if gdq[i, g, y, x] & saturated else r


def linearity_zeroframe(zeroframe, lin_dq, coeffs, *, saturated, no_lin_corr):
    """Linearity-corrected ZEROFRAME of one tile (group-by-group polynomial; values of
    0, which mark unusable data, stay 0).

    Parameters
    ----------
    zeroframe : ndarray, float32, ``(nints, ny, nx)``
    lin_dq : ndarray, uint32, ``(ny, nx)``
    coeffs : ndarray, ``(ncoeffs, ny, nx)``
    saturated, no_lin_corr : int

    Returns
    -------
    ndarray, float32, ``(nints, ny, nx)``
    """
    zf = np.array(zeroframe, dtype=np.float32, copy=True)
    ny, nx = zf.shape[-2:]
    # stcal corrects the ZEROFRAME inside linearity_correction; an empty ramp runs
    # exactly that part of its code
    empty = np.zeros((0, 1, ny, nx), dtype=np.float32)
    _, _, zout = _stcal.linearity_correction(
        empty, np.zeros(empty.shape, dtype=np.uint8), np.zeros((ny, nx), dtype=np.uint32),
        _coeffs(coeffs), np.asarray(lin_dq, dtype=np.uint32), _flags(saturated, no_lin_corr),
        zframe=zf,
    )
    return np.ascontiguousarray(zout, dtype=np.float32)
