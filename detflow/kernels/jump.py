"""Jump (cosmic-ray) detection on one tile, as jwst 3.0.0's ``JumpStep`` does it.

jwst calls ``stcal.jump.jump.detect_jumps_data`` (stcal 1.20) on the whole exposure.
Almost everything it does is per pixel (all integrations and groups of the pixel
together), but a few decisions are exposure-global. This module splits the work so a
step can run it tile by tile and still be equal to the whole-array result to the bit:

* the choice of regime (skip / sigma clip / single pass / iterative) depends on which
  ``(integration, group)`` planes are DO_NOT_USE for *every* pixel of the exposure: the
  step reduces those planes first and passes them in (``plane_dnu``);
* in the sigma-clip regime stcal clears the JUMP-only flags of a plane whose pixels are
  *all* JUMP or DO_NOT_USE after detection: the step reduces that condition over
  :func:`detect_tile`'s output and passes it to :func:`finish_tile` (``clear_planes``);
* four-neighbour flagging needs the detection flags one pixel beyond the tile: the
  step gives :func:`detect_finish_tile` (or :func:`finish_tile`) a halo of one pixel,
  detected too (its jumps flag the tile's pixels);
* the after-jump thresholds are multiplied by the median gain of the exposure
  (``gain_median``, a small reduction of the 2-D gain);
* snowballs and showers (:mod:`detflow.kernels.jump_events`) need whole planes: one
  whole integration (snowballs) or the whole exposure (MIRI showers).

The two-point-difference detection (iterative and single-pass regimes) and the
post-processing (four neighbours, after-jump flags, JUMP clean-up) run in an exact numba
port of stcal's arithmetic (:mod:`detflow.kernels._jump_numba`, proven bit-identical to
stcal by ``tests/test_jump_kernel.py``). :func:`detect_finish_tile` does detection and
post-processing of a tile in one pass (the step uses it whenever sigma clipping is
impossible, i.e. almost always); :func:`detect_tile` / :func:`finish_tile` split them for
the sigma-clip case, whose plane clearing needs a reduction in between. stcal still does
the sigma clipping itself (``astropy.stats.sigma_clip`` as stcal imports it),
snowballs (``jump.make_snowballs``...) and showers (``jump.find_faint_extended``); it is
imported lazily there only (``stcal.jump`` imports astropy.convolution and scipy.signal,
which costs about a second of start-up). Two short pieces of stcal are repeated here
because they mix per-pixel work with a global decision: ``run_jump_detection``
(:func:`_difference_statistics`) and the detection part of ``det_jump_sigma_clipping``
(:func:`_sigma_clip_flags`); the regime logic of ``find_crs`` is :func:`plane_counts`.

jwst's ``maximum_cores`` splits the exposure in row slices processed by separate
processes, with a different (buggy) treatment of slice borders and of
``minimum_groups``; detflow always reproduces the single-core result
(``maximum_cores='1'``), whatever the parameter says.

Every function takes the DQ bit values in ``flags`` (a mapping with ``GOOD``,
``DO_NOT_USE``, ``SATURATED``, ``JUMP_DET``, ``NO_GAIN_VALUE``, ``REFERENCE_PIXEL``) and
never modifies its inputs.
"""

import warnings

import numpy as np

from detflow.kernels import _jump_numba as _nb

__all__ = [
    "FLAG_NAMES",
    "bad_gain_pixeldq",
    "clear_planes",
    "detect_finish_tile",
    "detect_tile",
    "finish_tile",
    "jump_settings",
    "make_jump_data",
    "plane_counts",
    "primary_count",
    "regime",
]

#: DQ flags the jump kernels need (``flags`` mappings must have these keys).
FLAG_NAMES = ("GOOD", "DO_NOT_USE", "SATURATED", "JUMP_DET", "NO_GAIN_VALUE",
              "REFERENCE_PIXEL")

#: stcal's JumpData default of the MIRI shower amplitude (DN/s). jwst 3.0.0 multiplies
#: *this* default by the group time and never uses the step's ``max_shower_amplitude``.
_STCAL_MAX_SHOWER_AMPLITUDE = 6


def jump_settings(params, nframes, group_time):
    """The JumpData settings jwst 3.0.0's ``JumpStep._setup_jump_data`` derives.

    Parameters
    ----------
    params : Mapping
        The step's parameters under their jwst names.
    nframes : int
        NFRAMES of the exposure.
    group_time : float
        TGROUP of the exposure (s).

    Returns
    -------
    dict
        Plain values (hashable by Dask) for :func:`make_jump_data`.
    """
    gtime = float(group_time)
    return {
        "nframes": int(nframes),
        "group_time": gtime,
        "rejection_threshold": float(params["rejection_threshold"]),
        "three_group_rejection_threshold": float(params["three_group_rejection_threshold"]),
        "four_group_rejection_threshold": float(params["four_group_rejection_threshold"]),
        "max_jump_to_flag_neighbors": float(params["max_jump_to_flag_neighbors"]),
        "min_jump_to_flag_neighbors": float(params["min_jump_to_flag_neighbors"]),
        "flag_4_neighbors": bool(params["flag_4_neighbors"]),
        "after_jump_flag_dn1": float(params["after_jump_flag_dn1"]),
        "after_jump_flag_n1": int(params["after_jump_flag_time1"] // gtime),
        "after_jump_flag_dn2": float(params["after_jump_flag_dn2"]),
        "after_jump_flag_n2": int(params["after_jump_flag_time2"] // gtime),
        "expand_large_events": bool(params["expand_large_events"]),
        "min_jump_area": float(params["min_jump_area"]),
        "min_sat_area": float(params["min_sat_area"]),
        "expand_factor": float(params["expand_factor"]),
        "sat_required_snowball": bool(params["sat_required_snowball"]),
        "min_sat_radius_extend": float(params["min_sat_radius_extend"]),
        "sat_expand": int(params["sat_expand"]) * 2,
        "edge_size": int(params["edge_size"]),
        "find_showers": bool(params["find_showers"]),
        "extend_snr_threshold": float(params["extend_snr_threshold"]),
        "extend_min_area": int(params["extend_min_area"]),
        "extend_inner_radius": float(params["extend_inner_radius"]),
        "extend_outer_radius": float(params["extend_outer_radius"]),
        "extend_ellipse_expand_ratio": float(params["extend_ellipse_expand_ratio"]),
        "min_diffs_single_pass": int(params["min_diffs_single_pass"]),
        "max_extended_radius": int(params["max_extended_radius"]) * 2,
        "minimum_groups": int(params["minimum_groups"]),
        "minimum_sigclip_groups": int(params["minimum_sigclip_groups"]),
        "only_use_ints": bool(params["only_use_ints"]),
        "grps_masked_after_shower": int(params["time_masked_after_shower"] // gtime),
        "mask_snowball_core_next_int": bool(params["mask_snowball_core_next_int"]),
        "persist_grps_flagged": int(params["snowball_time_masked_next_int"] // gtime),
        "max_shower_amplitude": _STCAL_MAX_SHOWER_AMPLITUDE * gtime,
    }


def make_jump_data(settings, flags, gain_median=None):
    """A ``stcal`` JumpData set up as jwst 3.0.0 sets it up (arrays left empty).

    Parameters
    ----------
    settings : dict
        From :func:`jump_settings`.
    flags : Mapping
        DQ bit values (:data:`FLAG_NAMES`).
    gain_median : float or numpy.float32, optional
        ``nanmedian`` of the exposure's gain; only needed for after-jump flagging.
    """
    from stcal.jump.jump_class import JumpData

    s = settings
    jd = JumpData(dqflags={k: int(v) for k, v in flags.items()})
    # JumpData(model) derives these from meta.exposure.nframes (no read pattern for JWST)
    jd.nframes = s["nframes"]
    jd.dt_group = np.ones(1)
    jd.n_reads_groupdiff = np.ones(1) * 2 * jd.nframes
    jd.set_detection_settings(
        s["rejection_threshold"], s["three_group_rejection_threshold"],
        s["four_group_rejection_threshold"], s["max_jump_to_flag_neighbors"],
        s["min_jump_to_flag_neighbors"], s["flag_4_neighbors"],
    )
    jd.set_after_jump(s["after_jump_flag_dn1"], s["after_jump_flag_n1"],
                      s["after_jump_flag_dn2"], s["after_jump_flag_n2"])
    jd.set_snowball_info(
        s["expand_large_events"], s["min_jump_area"], s["min_sat_area"], s["expand_factor"],
        s["sat_required_snowball"], s["min_sat_radius_extend"], s["sat_expand"],
        s["edge_size"],
    )
    jd.set_shower_info(
        s["find_showers"], s["extend_snr_threshold"], s["extend_min_area"],
        s["extend_inner_radius"], s["extend_outer_radius"], s["extend_ellipse_expand_ratio"],
        s["min_diffs_single_pass"], s["max_extended_radius"],
    )
    jd.set_sigma_clipping_info(s["minimum_groups"], s["minimum_sigclip_groups"],
                               s["only_use_ints"])
    jd.max_cores = "1"
    jd.grps_masked_after_shower = s["grps_masked_after_shower"]
    jd.mask_persist_grps_next_int = s["mask_snowball_core_next_int"]
    jd.persist_grps_flagged = s["persist_grps_flagged"]
    jd.max_shower_amplitude = s["max_shower_amplitude"]
    if gain_median is not None:
        # detect_jumps_data: after_jump_flag_dn * np.nanmedian(gain_2d) (a float32 scalar)
        med = np.float32(np.asarray(gain_median).reshape(()))
        jd.after_jump_flag_e1 = jd.after_jump_flag_dn1 * med
        jd.after_jump_flag_e2 = jd.after_jump_flag_dn2 * med
    return jd


def _twopoint_params(settings, flags, gain_median=None):
    from stcal.jump.twopoint_difference_class import TwoPointParams

    tp = TwoPointParams(make_jump_data(settings, flags, gain_median))
    # detect_jumps_data forces this on its single-process path
    tp.minimum_groups = 3
    return tp


def plane_counts(plane_dnu, settings, flags):
    """stcal's ``groups_all_set_dnu`` and regime tests from the all-DO_NOT_USE planes.

    Parameters
    ----------
    plane_dnu : numpy.ndarray
        bool ``(nints, ngroups)``: the plane ``(i, g)`` is DO_NOT_USE in every pixel of
        the exposure.

    Returns
    -------
    dict
        ``min_usable_groups``, ``total_groups``, ``min_usable_diffs``, ``skip`` (too few
        usable groups for any detection: stcal returns -99 primary cosmic rays),
        ``sigma_clip`` (the sigma-clip regime is used).
    """
    plane_dnu = np.asarray(plane_dnu, dtype=bool)
    nints, ngroups = plane_dnu.shape
    # stcal's groups_all_set_dnu, check_group_counts and check_sigma_clip_groups (JWST:
    # uniform groups), with find_crs's minimum_groups forced to 3 by detect_jumps_data
    per_int = plane_dnu.sum(axis=1)
    max_flagged = int(per_int.max()) if nints else 0
    total_flagged = int(per_int.sum())
    only_ints = bool(settings["only_use_ints"])
    min_sigclip = settings["minimum_sigclip_groups"]
    total_sigclip_groups = nints if only_ints else nints * ngroups - total_flagged
    min_usable_groups = ngroups - max_flagged
    total_groups = nints * ngroups - total_flagged
    min_usable_diffs = min_usable_groups - 1
    sig_fails = ((only_ints and nints < min_sigclip)
                 or (not only_ints and total_sigclip_groups < min_sigclip))
    noise_fails = min_usable_groups < 3
    skip = bool(noise_fails and sig_fails)
    sigma_clip = (not skip) and bool((only_ints and nints >= min_sigclip)
                                     or (not only_ints and total_groups >= min_sigclip))
    return {
        "min_usable_groups": int(min_usable_groups),
        "total_groups": int(total_groups),
        "min_usable_diffs": int(min_usable_diffs),
        "skip": skip,
        "sigma_clip": sigma_clip,
    }


def regime(plane_dnu, settings, flags):
    """Which detector runs: ``"skip"``, ``"sigma_clip"``, ``"single_pass"`` or
    ``"iterative"`` (see :func:`plane_counts`)."""
    c = plane_counts(plane_dnu, settings, flags)
    if c["skip"]:
        return "skip"
    if c["sigma_clip"]:
        return "sigma_clip"
    if c["min_usable_diffs"] >= settings["min_diffs_single_pass"]:
        return "single_pass"
    return "iterative"


def _electrons(data, gain, rnoise):
    """detect_jumps_data's unit change: data and read noise times the gain (float32)."""
    return data * gain, rnoise * gain


def _difference_statistics(dat, gdq, read_noise_2, tp):
    """First half of stcal's ``run_jump_detection`` (NaNs ``dat`` in place).

    Returns first_diffs ``(nints, ngroups-1, ny, nx)``, their finiteness, the per-pixel
    median difference ``(ny, nx)`` and sigma ``(1, ny, nx)``.
    """
    dat[gdq & (tp.fl_dnu | tp.fl_sat) != 0] = np.nan
    first_diffs = np.diff(dat, axis=1) / tp.dt_group[None, :, None, None]
    first_diffs_finite = np.isfinite(first_diffs)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*All-NaN slice encountered.*", RuntimeWarning)
        median_diffs = np.empty(first_diffs.shape[-2:], first_diffs.dtype)
        for row in range(first_diffs.shape[2]):
            np.nanmedian(first_diffs[:, :, row, :], axis=(0, 1), out=median_diffs[row])
    sigma = np.sqrt(
        np.abs(median_diffs) * tp.dt_group[:, None, None]
        + read_noise_2 / (0.5 * tp.n_reads_groupdiff[:, None, None])
    )
    sigma /= tp.dt_group[:, None, None]
    sigma[sigma == 0.0] = np.nan
    return first_diffs, first_diffs_finite, median_diffs, sigma


def _sigma_clip_flags(gdq, first_diffs_finite, first_diffs, tp):
    """stcal's ``det_jump_sigma_clipping`` without its plane-global clearing (which
    :func:`finish_tile` applies with the exposure-wide condition).

    The clipping is astropy's ``sigma_clip`` as stcal's ``twopoint_difference`` module
    imports it (kernels do not import astropy themselves).
    """
    from stcal.jump import twopoint_difference as _twopt

    stats, astropy_user_warning = _twopt.stats, _twopt.AstropyUserWarning
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*All-NaN slice encountered.*", RuntimeWarning)
        warnings.filterwarnings("ignore", ".*Mean of empty slice.*", RuntimeWarning)
        warnings.filterwarnings("ignore", ".*Degrees of freedom <= 0.*", RuntimeWarning)
        warnings.filterwarnings("ignore", ".*Input data contains invalid values*",
                                astropy_user_warning)
        axis = 0 if tp.only_use_ints else (0, 1)
        clipped_diffs, _, _ = stats.sigma_clip(
            first_diffs, sigma=tp.normal_rej_thresh, axis=axis, masked=True,
            return_bounds=True,
        )
        jump_candidates = clipped_diffs.mask
        sat_or_dnu_not_set = gdq[:, 1:] & (tp.fl_sat | tp.fl_dnu) == 0
        jump_mask = jump_candidates & first_diffs_finite & sat_or_dnu_not_set
        del clipped_diffs
        gdq[:, 1:] |= jump_mask * np.uint8(tp.fl_jump)
    return gdq


def _numba_mode(counts, settings):
    """The numba detector for a (non-skipped, non-sigma-clip) regime."""
    if counts["min_usable_diffs"] >= settings["min_diffs_single_pass"]:
        return _nb.MODE_SINGLE_PASS
    return _nb.MODE_ITERATIVE


def _after_thresholds(settings, gain_median):
    """stcal's ``after_jump_flag_e1/e2``: ``after_jump_flag_dn * np.nanmedian(gain)``, a
    float32 (a Python float times a float32 scalar), as float values."""
    if gain_median is None:
        raise ValueError("after-jump flagging needs the exposure's median gain")
    med = np.float32(np.asarray(gain_median).reshape(()))
    e1 = settings["after_jump_flag_dn1"] * med
    e2 = settings["after_jump_flag_dn2"] * med
    return float(e1), float(e2)


def _edges_of(data, gdq, gain, rnoise, halo):
    """Split tile-plus-halo arrays into the tile and its halo edges (see
    :func:`detect_finish_tile`'s ``edges``)."""
    top, bottom, left, right = (int(h) for h in halo)
    ys = slice(top, data.shape[2] - bottom)
    xs = slice(left, data.shape[3] - right)

    def rows(a):  # the halo rows above and below (a tile row where there is none)
        above = a[..., top - 1 if top else top, xs]
        below = a[..., ys.stop if bottom else ys.stop - 1, xs]
        return np.stack([above, below], axis=-2)

    def cols(a):
        return np.stack([a[..., ys, left - 1 if left else left],
                         a[..., ys, xs.stop if right else xs.stop - 1]], axis=-1)

    arrays = (data, gdq, gain, rnoise)
    tile = tuple(np.ascontiguousarray(a[..., ys, xs]) for a in arrays)
    return tile, tuple(rows(a) for a in arrays) + tuple(cols(a) for a in arrays)


def _run_numba(data, gdq, gain, rnoise, *, mode, finish, settings, flags, clear=None,
               gain_median=None, halo=(0, 0, 0, 0), edges=None):
    """Call :func:`detflow.kernels._jump_numba.jump_tile` with stcal's settings."""
    nints, ngroups, ny, nx = gdq.shape
    neighbours = bool(settings["flag_4_neighbors"])
    n1, n2 = int(settings["after_jump_flag_n1"]), int(settings["after_jump_flag_n2"])
    after = n1 > 0 or n2 > 0
    e1 = e2 = 0.0
    if finish and after:
        e1, e2 = _after_thresholds(settings, gain_median)
    if clear is None:
        clear = np.zeros((nints, ngroups), dtype=bool)
    if edges is None:  # no halo
        halo = (0, 0, 0, 0)
        edges = (np.zeros((nints, ngroups, 2, nx), np.float32),
                 np.zeros((nints, ngroups, 2, nx), np.uint8),
                 np.zeros((2, nx), np.float32), np.zeros((2, nx), np.float32),
                 np.zeros((nints, ngroups, ny, 2), np.float32),
                 np.zeros((nints, ngroups, ny, 2), np.uint8),
                 np.zeros((ny, 2), np.float32), np.zeros((ny, 2), np.float32))
    dtypes = (np.float32, np.uint8, np.float32, np.float32) * 2
    edges = tuple(np.ascontiguousarray(e, dtype=t) for e, t in zip(edges, dtypes, strict=True))
    return _nb.jump_tile(
        np.ascontiguousarray(data, dtype=np.float32), np.ascontiguousarray(gdq, dtype=np.uint8),
        np.ascontiguousarray(gain, dtype=np.float32),
        np.ascontiguousarray(rnoise, dtype=np.float32), *edges,
        np.ascontiguousarray(clear, dtype=np.bool_), np.asarray(halo, dtype=np.int64),
        int(mode), bool(finish), neighbours, after,
        0.5 * (2.0 * settings["nframes"]),  # 0.5 * n_reads_groupdiff (float64)
        float(settings["rejection_threshold"]),
        float(settings["four_group_rejection_threshold"]),  # 3 usable differences
        float(settings["three_group_rejection_threshold"]),  # 2 usable differences
        float(settings["min_jump_to_flag_neighbors"]),
        float(settings["max_jump_to_flag_neighbors"]),
        e1, n1, e2, n2,
        int(flags["DO_NOT_USE"]), int(flags["SATURATED"]), int(flags["JUMP_DET"]),
    )


def detect_tile(data, gdq, gain, rnoise, plane_dnu, settings, flags):
    """Primary jump detection on one tile (no neighbours, no plane-global clearing).

    Parameters
    ----------
    data : numpy.ndarray
        float32 ``(nints, ngroups, ny, nx)`` in DN, every integration of the tile.
    gdq : numpy.ndarray
        uint8 ``(nints, ngroups, ny, nx)``.
    gain, rnoise : numpy.ndarray
        float32 ``(ny, nx)``: GAIN (e/DN) and READNOISE (DN, CDS) of the tile.
    plane_dnu : numpy.ndarray
        bool ``(nints, ngroups)``, see :func:`plane_counts`.
    settings : dict
        From :func:`jump_settings`.
    flags : Mapping
        DQ bit values.

    Returns
    -------
    numpy.ndarray
        uint8 ``(nints, ngroups, ny, nx)``: ``gdq`` with JUMP_DET where a jump is found.
    """
    counts = plane_counts(plane_dnu, settings, flags)
    if counts["skip"] or np.size(gdq) == 0:
        return np.array(gdq, dtype=np.uint8, copy=True)
    if not counts["sigma_clip"]:
        out, _ = _run_numba(data, gdq, gain, rnoise, mode=_numba_mode(counts, settings),
                            finish=False, settings=settings, flags=flags)
        return out
    gdq = np.array(gdq, dtype=np.uint8, copy=True)
    tp = _twopoint_params(settings, flags)
    dat, readnoise = _electrons(data, gain, rnoise)
    first_diffs, first_diffs_finite, _, _ = _difference_statistics(
        dat, gdq, readnoise**2, tp)
    return _sigma_clip_flags(gdq, first_diffs_finite, first_diffs, tp)


def detect_finish_tile(data, gdq, gain, rnoise, plane_dnu, settings, flags, gain_median=None,
                       halo=(0, 0, 0, 0), edges=None):
    """Detection and post-processing of one tile in one pass (not for the sigma-clip
    regime, whose plane clearing needs the whole exposure's detection first).

    The pixels of the halo (one pixel where a neighbour tile exists and four-neighbour
    flagging is on, else none) are detected too, only to flag their neighbours in the
    tile.

    Parameters
    ----------
    data : numpy.ndarray
        float32 ``(nints, ngroups, ny, nx)`` in DN: the tile with its halo, or the tile
        alone when ``edges`` are given.
    gdq : numpy.ndarray
        uint8, the input group DQ, same shape.
    gain, rnoise : numpy.ndarray
        float32 ``(ny, nx)``, same region.
    plane_dnu : numpy.ndarray
        bool ``(nints, ngroups)``, see :func:`plane_counts`.
    settings, flags
        As for :func:`detect_tile`.
    gain_median : float, optional
        ``nanmedian`` of the exposure's gain (needed when after-jump flagging is on).
    halo : tuple of int
        Halo row above, row below, column left, column right of the tile (0 or 1 each).
    edges : tuple of numpy.ndarray, optional
        The halo apart from the tile (so the tile needs no copy into a bigger array):
        the rows above and below, ``(nints, ngroups, 2, nx)`` for data and group DQ and
        ``(2, nx)`` for gain and read noise, then the columns left and right,
        ``(nints, ngroups, ny, 2)`` and ``(ny, 2)``, in the order data, group DQ, gain,
        read noise, data, group DQ, gain, read noise. Entries whose side ``halo`` marks
        0 are not read.

    Returns
    -------
    gdq : numpy.ndarray
        uint8 ``(nints, ngroups, ny, nx)`` of the tile: its final group DQ (as
        :func:`finish_tile` of :func:`detect_tile`).
    count : int
        The tile's primary cosmic rays (:func:`primary_count`).
    """
    counts = plane_counts(plane_dnu, settings, flags)
    if counts["sigma_clip"]:
        raise ValueError("the sigma-clip regime needs detect_tile, clear_planes and "
                         "finish_tile")
    if edges is None and any(halo):
        (data, gdq, gain, rnoise), edges = _edges_of(data, gdq, gain, rnoise, halo)
    if counts["skip"]:
        # no detection, no post-processing: only detect_jumps_data's JUMP clean-up
        out, _ = _run_numba(data, gdq, gain, rnoise, mode=_nb.MODE_NONE, finish=True,
                            settings={**settings, "flag_4_neighbors": False,
                                      "after_jump_flag_n1": 0, "after_jump_flag_n2": 0},
                            flags=flags)
        return out, 0
    out, count = _run_numba(data, gdq, gain, rnoise, mode=_numba_mode(counts, settings),
                            finish=True, settings=settings, flags=flags,
                            gain_median=gain_median, halo=halo, edges=edges)
    return out, int(count)


def clear_planes(plane_dnu, plane_jump_or_dnu, settings, flags):
    """The planes whose JUMP-only pixels stcal's sigma clipping resets to 0.

    Parameters
    ----------
    plane_dnu : numpy.ndarray
        bool ``(nints, ngroups)``, see :func:`plane_counts`.
    plane_jump_or_dnu : numpy.ndarray
        bool ``(nints, ngroups)``: every pixel of the plane has JUMP_DET or DO_NOT_USE
        in :func:`detect_tile`'s output (over the whole exposure).

    Returns
    -------
    numpy.ndarray
        bool ``(nints, ngroups)``; all False outside the sigma-clip regime.
    """
    counts = plane_counts(plane_dnu, settings, flags)
    plane_jump_or_dnu = np.asarray(plane_jump_or_dnu, dtype=bool)
    if not counts["sigma_clip"]:
        return np.zeros(plane_jump_or_dnu.shape, dtype=bool)
    return plane_jump_or_dnu.copy()


def _apply_clear(gdq, clear, jump):
    """``gdq[i, g][gdq[i, g] == JUMP] = 0`` for the planes in ``clear`` (in place)."""
    for integ, grp in zip(*np.nonzero(np.asarray(clear, dtype=bool)), strict=True):
        plane = gdq[integ, grp]
        plane[plane == jump] = 0
    return gdq


def primary_count(gdq_det, clear, flags):
    """stcal's count of primary cosmic rays in a tile: the groups with JUMP_DET after
    detection (and sigma-clip clearing), before neighbour flagging.

    Parameters
    ----------
    gdq_det : numpy.ndarray
        uint8 ``(nints, ngroups, ny, nx)`` from :func:`detect_tile`.
    clear : numpy.ndarray or None
        bool ``(nints, ngroups)`` from :func:`clear_planes`.

    Returns
    -------
    numpy.ndarray
        int64 of shape ``(1, 1)``: the tile's count.
    """
    jump = int(flags["JUMP_DET"])
    gdq = np.array(gdq_det, dtype=np.uint8, copy=True)
    if clear is not None:
        gdq = _apply_clear(gdq, clear, jump)
    n = np.sum([np.count_nonzero(per_group_dq & jump) for per_group_dq in gdq])
    return np.full((1, 1), n, dtype=np.int64)


def finish_tile(data, gdq_det, gain, rnoise, plane_dnu, clear, settings, flags,
                gain_median=None):
    """Neighbour and after-jump flagging, then stcal's removal of redundant JUMP bits.

    Parameters
    ----------
    data : numpy.ndarray
        float32 ``(nints, ngroups, ny, nx)`` (with a halo when neighbours are flagged).
    gdq_det : numpy.ndarray
        uint8 ``(nints, ngroups, ny, nx)`` from :func:`detect_tile` (same halo).
    gain, rnoise : numpy.ndarray
        float32 ``(ny, nx)``.
    plane_dnu : numpy.ndarray
        bool ``(nints, ngroups)``.
    clear : numpy.ndarray or None
        bool ``(nints, ngroups)`` from :func:`clear_planes`.
    settings, flags
        As for :func:`detect_tile`.
    gain_median : float, optional
        ``nanmedian`` of the exposure's gain (needed when after-jump flagging is on).

    Returns
    -------
    numpy.ndarray
        uint8 ``(nints, ngroups, ny, nx)``; exact on the pixels one beyond the halo.
    """
    if np.size(gdq_det) == 0:
        return np.array(gdq_det, dtype=np.uint8, copy=True)
    counts = plane_counts(plane_dnu, settings, flags)
    if counts["skip"]:
        # no post-processing: only detect_jumps_data's JUMP clean-up
        settings = {**settings, "flag_4_neighbors": False, "after_jump_flag_n1": 0,
                    "after_jump_flag_n2": 0}
        clear = None
    out, _ = _run_numba(data, gdq_det, gain, rnoise, mode=_nb.MODE_NONE, finish=True,
                        settings=settings, flags=flags, clear=clear, gain_median=gain_median)
    return out


def bad_gain_pixeldq(pixeldq, gain, flags):
    """stcal ``setup_pdq``: NO_GAIN_VALUE|DO_NOT_USE where the gain is <= 0 or NaN.

    Parameters
    ----------
    pixeldq : numpy.ndarray
        uint32 ``(ny, nx)``.
    gain : numpy.ndarray
        float32 ``(ny, nx)``.

    Returns
    -------
    numpy.ndarray
        uint32 ``(ny, nx)``.
    """
    pdq = np.array(pixeldq, dtype=np.uint32, copy=True)
    bad_gain = (gain <= 0.0) | np.isnan(gain)
    pdq[bad_gain] |= np.uint32(int(flags["NO_GAIN_VALUE"]) | int(flags["DO_NOT_USE"]))
    return pdq
