"""Dark-current subtraction on one tile (jwst ``DarkCurrentStep``, stcal ``dark_sub``).

The arithmetic repeats stcal 1.20's ``dark_current/dark_sub.py`` with its dtypes:

* a dark with too few frames is extrapolated from its last two groups; stcal's
  expression (``arange(1, n+1) * (d[-1] - d[-2]) + d[-1]``) promotes the dark to
  float64, which stays float64 when the frame patterns match;
* NaN in the dark becomes 0 (after the extrapolation);
* a frame-averaged dark is float32: group ``g`` is the mean of dark frames
  ``[start, start + nframes)``, ``start += nframes + groupgap``. NumPy's
  ``mean(axis=0)`` of a many-pixel plane stack adds plane after plane in the dark's
  dtype and divides by an ``intp`` count; :func:`_mean_frames` does exactly that, for
  any tile size (NumPy would sum a one-pixel stack pairwise);
* the science data (float32) minus the dark, in the promoted dtype, rounded back to
  float32 (``data[i, j] -= dark[j]`` in place).

Every operation is per pixel, so a spatial tile gives jwst's numbers.
"""

import warnings

import numpy as np

__all__ = ["dark_plan", "dark_for_science", "subtract_dark"]


def dark_plan(sci_ngroups, sci_nframes, sci_groupgap, drk_ngroups, drk_nframes, drk_groupgap):
    """What stcal's ``do_correction_data`` will do, from the two frame patterns.

    Returns
    -------
    dict
        ``extrapolate``: groups added to the dark (0 if none); ``skip``: the dark's
        nframes or groupgap exceeds the science one (step SKIPPED); ``match``: the
        patterns are equal, the dark is subtracted group by group without averaging;
        ``dtype``: the dtype of the dark that is subtracted (float64 only for an
        extrapolated dark that is not averaged).
    """
    sci_total = sci_ngroups * sci_nframes + (sci_ngroups - 1) * sci_groupgap
    drk_total = drk_ngroups * drk_nframes + (drk_ngroups - 1) * drk_groupgap
    extrapolate = 0
    if sci_total > drk_total:
        extrapolate = int(np.ceil(
            (sci_total - drk_total + drk_groupgap) / (drk_nframes + drk_groupgap)
        ).astype(int))
    skip = drk_nframes > sci_nframes or drk_groupgap > sci_groupgap
    match = sci_nframes == drk_nframes and sci_groupgap == drk_groupgap
    dtype = np.dtype(np.float64 if (match and extrapolate > 0) else np.float32)
    return {"extrapolate": extrapolate, "skip": bool(skip), "match": bool(match),
            "dtype": dtype}


def _extrapolate(arr, ngroups):
    """stcal ``extrapolate_dark._extrapolate_int`` on ``(ngroups_dark, ny, nx)``."""
    rate_arr = arr[-1, :, :] - arr[-2, :, :]
    new_groups = (
        np.broadcast_to(np.arange(1, ngroups + 1).reshape(-1, 1, 1),
                        (ngroups, *rate_arr.shape))
        * rate_arr
        + arr[-1]
    )
    return np.concatenate((arr, new_groups))


def _mean_frames(frames):
    """``frames.mean(axis=0)`` as NumPy computes it for a many-pixel stack."""
    n = frames.shape[0]
    if n == 0:
        total = np.zeros(frames.shape[1:], dtype=frames.dtype)
    else:
        total = frames[0].copy()
        for k in range(1, n):
            total += frames[k]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.true_divide(total, np.intp(n), out=total, casting="unsafe")


def _average_int(dark, ngroups, nframes, groupgap):
    """stcal ``average_dark_frames_3d`` for one integration: ``(ngroups, ny, nx)`` float32."""
    avg = np.zeros((ngroups, *dark.shape[1:]), dtype=np.float32)
    start = 0
    for group in range(ngroups):
        end = start + nframes
        if nframes == 1:
            avg[group] = dark[start]
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                avg[group] = _mean_frames(dark[start:end])
        start = end + groupgap
    return avg


def dark_for_science(dark, *, sci_nints, sci_ngroups, sci_nframes, sci_groupgap,
                     drk_nframes, drk_groupgap):
    """The dark to subtract from each science group of one tile.

    Parameters
    ----------
    dark : ndarray, float32, ``(ngroups_dark, ny, nx)`` (near-IR) or
        ``(nints_dark, ngroups_dark, ny, nx)`` (MIRI)
        The DARK reference SCI array.
    sci_nints, sci_ngroups, sci_nframes, sci_groupgap : int
        The science exposure's pattern.
    drk_nframes, drk_groupgap : int
        The dark's NFRAMES and GROUPGAP.

    Returns
    -------
    ndarray, ``(ngroups_out, ny, nx)`` or ``(nints_dark, ngroups_out, ny, nx)``
        In the dtype of :func:`dark_plan`; ``ngroups_out >= sci_ngroups`` (only the first
        ``sci_ngroups`` are subtracted). For MIRI, integrations past ``sci_nints`` of a
        frame-averaged dark are zero, as in stcal.
    """
    dark = np.asarray(dark, dtype=np.float32)
    four_d = dark.ndim == 4
    drk_ngroups = dark.shape[1] if four_d else dark.shape[0]
    plan = dark_plan(sci_ngroups, sci_nframes, sci_groupgap, drk_ngroups, drk_nframes,
                     drk_groupgap)
    data = dark.copy()
    if plan["extrapolate"]:
        n = plan["extrapolate"]
        if four_d:
            ext = np.full((data.shape[0], drk_ngroups + n, *data.shape[2:]), np.nan)
            for i in range(data.shape[0]):
                ext[i] = _extrapolate(data[i], n)
            data = ext
        else:
            data = _extrapolate(data, n)
    data[np.isnan(data)] = 0.0
    if plan["match"]:
        return data
    if not four_d:
        return _average_int(data, sci_ngroups, sci_nframes, sci_groupgap)
    avg = np.zeros((data.shape[0], sci_ngroups, *data.shape[2:]), dtype=np.float32)
    for it in range(min(data.shape[0], sci_nints)):
        avg[it] = _average_int(data[it], sci_ngroups, sci_nframes, sci_groupgap)
    return avg


def subtract_dark(data, dark):
    """``data - dark`` for every integration and group, rounded to float32.

    Parameters
    ----------
    data : ndarray, float32, ``(nints, ngroups, ny, nx)``
    dark : ndarray, float32 or float64, ``(ngroups_dark, ny, nx)`` (the same dark for every
        integration) or ``(nints, ngroups_dark, ny, nx)`` (one per integration);
        ``ngroups_dark >= ngroups``.

    Returns
    -------
    ndarray, float32, ``(nints, ngroups, ny, nx)``
    """
    data = np.asarray(data, dtype=np.float32)
    ngroups = data.shape[1]
    dark = np.asarray(dark)
    dark = dark[:ngroups] if dark.ndim == 3 else dark[:, :ngroups]
    out = np.array(data, copy=True)
    np.subtract(out, dark, out=out, casting="same_kind")
    return out
