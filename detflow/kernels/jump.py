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
  step gives :func:`finish_tile` a halo of one pixel (map_overlap);
* the after-jump thresholds are multiplied by the median gain of the exposure
  (``gain_median``, a small reduction of the 2-D gain);
* snowballs (:func:`snowballs_integration`) fit ellipses to connected regions of whole
  planes: they run on one whole integration at a time (uint8 group DQ only), exact;
* showers (:func:`showers_exposure`, MIRI, off by default) need the whole exposure.

stcal's own functions do the arithmetic (``twopoint_difference.iterative_jump``,
``look_for_more_than_one_jump``, ``jump_detection_post_processing``,
``jump.make_snowballs``, ``jump.find_faint_extended``...). Two short pieces of stcal are
repeated here because they mix per-pixel work with a global decision:
``run_jump_detection`` (:func:`_difference_statistics`, :func:`detect_tile`) and the
detection part of ``det_jump_sigma_clipping`` (:func:`_sigma_clip_flags`).

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
from stcal.jump import jump as _stcal_jump
from stcal.jump import twopoint_difference as _twopt
from stcal.jump.jump_class import JumpData
from stcal.jump.twopoint_difference_class import TwoPointParams

__all__ = [
    "FLAG_NAMES",
    "bad_gain_pixeldq",
    "clear_planes",
    "cosmic_ray_rates",
    "detect_tile",
    "finish_tile",
    "jump_settings",
    "make_jump_data",
    "plane_counts",
    "primary_count",
    "regime",
    "showers_exposure",
    "snowballs_integration",
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
    tp = _twopoint_params(settings, flags)
    # stcal's own counting, on a 1x1-pixel stand-in whose planes are DNU exactly where
    # the exposure's planes are all DNU
    stand_in = np.where(plane_dnu, np.uint8(tp.fl_dnu), np.uint8(0))[:, :, None, None]
    (min_usable_groups, total_groups, min_usable_diffs, sig_fails, noise_fails,
     total_sigclip_groups) = _twopt.groups_all_set_dnu(nints, ngroups, stand_in, tp)
    if _twopt.check_group_counts(nints, total_sigclip_groups, tp):
        sig_fails = True
    if min_usable_groups < tp.minimum_groups:
        noise_fails = True
    skip = bool(noise_fails and sig_fails)
    sigma_clip = (not skip) and bool(_twopt.check_sigma_clip_groups(nints, total_groups, tp))
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
    gdq = np.array(gdq, dtype=np.uint8, copy=True)
    counts = plane_counts(plane_dnu, settings, flags)
    if counts["skip"] or gdq.size == 0:
        return gdq
    tp = _twopoint_params(settings, flags)
    dat, readnoise = _electrons(data, gain, rnoise)
    read_noise_2 = readnoise**2
    nints, ngroups = dat.shape[:2]
    ndiffs = (ngroups - 1) * nints
    first_diffs, first_diffs_finite, median_diffs, sigma = _difference_statistics(
        dat, gdq, read_noise_2, tp)
    if counts["sigma_clip"]:
        gdq = _sigma_clip_flags(gdq, first_diffs_finite, first_diffs, tp)
    elif counts["min_usable_diffs"] >= tp.min_diffs_single_pass:
        gdq = _twopt.look_for_more_than_one_jump(
            gdq, nints, first_diffs, median_diffs, sigma, first_diffs_finite, tp)
    else:
        gdq = _twopt.iterative_jump(gdq, ndiffs, first_diffs, read_noise_2, tp)
    return gdq


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
    gdq = np.array(gdq_det, dtype=np.uint8, copy=True)
    jump, dnu, sat = int(flags["JUMP_DET"]), int(flags["DO_NOT_USE"]), int(flags["SATURATED"])
    counts = plane_counts(plane_dnu, settings, flags)
    if gdq.size and not counts["skip"]:
        if clear is not None:
            gdq = _apply_clear(gdq, clear, jump)
        tp = _twopoint_params(settings, flags, gain_median)
        if tp.flag_4_neighbors or tp.after_jump_flag_n1 > 0 or tp.after_jump_flag_n2 > 0:
            nints, ngroups = gdq.shape[:2]
            dat, readnoise = _electrons(data, gain, rnoise)
            first_diffs, _, median_diffs, sigma = _difference_statistics(
                dat, gdq, readnoise**2, tp)
            row_above = np.zeros((nints, ngroups, gdq.shape[3]), dtype=np.uint8)
            row_below = np.zeros((nints, ngroups, gdq.shape[3]), dtype=np.uint8)
            gdq, _, _ = _twopt.jump_detection_post_processing(
                gdq, nints, ngroups, first_diffs, median_diffs, sigma, row_below, row_above,
                tp)
    # detect_jumps_data: remove JUMP where DO_NOT_USE or SATURATED is also set
    gdq[gdq & (jump | dnu) == (jump | dnu)] ^= jump
    gdq[gdq & (jump | sat) == (jump | sat)] ^= jump
    return gdq


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


def snowballs_integration(gdq_int, settings, flags):
    """Snowball flagging (``expand_large_events``) of one whole integration.

    The loop of stcal's ``flag_large_events`` for one integration, calling stcal's
    ``find_ellipses``, ``make_snowballs`` and ``extend_ellipses``. Integrations are
    independent there, except that the saturated cores found in integration ``i``
    (``persist``) are OR-ed into groups ``1 .. persist_grps_flagged - 1`` of integration
    ``i + 1`` at the end; the step does that.

    Parameters
    ----------
    gdq_int : numpy.ndarray
        uint8 ``(1, ngroups, ny, nx)``: one integration over the exposure's whole region
        (the ellipses and the edge test need whole planes).

    Returns
    -------
    gdq : numpy.ndarray
        uint8 ``(1, ngroups, ny, nx)``.
    persist : numpy.ndarray
        uint8 ``(1, ny, nx)``: JUMP_DET on the snowball cores of this integration.
    count : int
        Number of snowballs found.
    """
    jd = make_jump_data(settings, flags)
    gdq = np.array(gdq_int, dtype=np.uint8, copy=True)
    jump_flag, sat_flag = jd.fl_jump, jd.fl_sat
    _, ngrps, nrows, ncols = gdq.shape
    persist_jumps = np.zeros(shape=(1, nrows, ncols), dtype=np.uint8)
    total_snowballs = 0
    integration = 0
    next_new_sat = None
    for group in range(1, ngrps):
        current_gdq = gdq[integration, group, :, :]
        current_sat = np.bitwise_and(current_gdq, sat_flag)
        prev_gdq = gdq[integration, group - 1, :, :]
        prev_sat = np.bitwise_and(prev_gdq, sat_flag)
        not_prev_sat = np.logical_not(prev_sat)
        new_sat = current_sat * not_prev_sat
        if group < ngrps - 1:
            next_gdq = gdq[integration, group + 1, :, :]
            next_sat = np.bitwise_and(next_gdq, sat_flag)
            not_current_sat = np.logical_not(current_sat)
            next_new_sat = next_sat * not_current_sat
        next_sat_ellipses = _stcal_jump.find_ellipses(next_new_sat, sat_flag, jd.min_sat_area)
        sat_ellipses = _stcal_jump.find_ellipses(new_sat, sat_flag, jd.min_sat_area)
        jump_ellipses = _stcal_jump.find_ellipses(gdq[integration, group, :, :], jump_flag,
                                                  jd.min_jump_area)
        if jd.sat_required_snowball:
            gdq, snowballs, persist_jumps = _stcal_jump.make_snowballs(
                gdq, integration, group, jump_ellipses, sat_ellipses, next_sat_ellipses, jd,
                persist_jumps,
            )
        else:
            snowballs = jump_ellipses
        total_snowballs += len(snowballs)
        gdq, _ = _stcal_jump.extend_ellipses(
            gdq, integration, group, snowballs, jd, expansion=jd.expand_factor,
            num_grps_masked=0,
        )
    return gdq, persist_jumps, total_snowballs


def showers_exposure(data, gdq_in, gdq, pixeldq, gain, rnoise, skipped, settings, flags):
    """MIRI shower flagging (``find_showers``) on the whole exposure (stcal
    ``find_faint_extended``).

    Parameters
    ----------
    data : numpy.ndarray
        float32 ``(nints, ngroups, ny, nx)`` in DN (the jump step's input).
    gdq_in : numpy.ndarray
        uint8, the jump step's input group DQ (its DO_NOT_USE/SATURATED groups were
        set to NaN in the electrons array stcal hands to the shower search, unless the
        detection was skipped).
    gdq : numpy.ndarray
        uint8, the group DQ after detection and snowballs.
    pixeldq : numpy.ndarray
        uint32 ``(ny, nx)`` after :func:`bad_gain_pixeldq`.
    gain, rnoise : numpy.ndarray
        float32 ``(ny, nx)``.
    skipped : bool
        Whether the two-point detection was skipped (too few usable groups).

    Returns
    -------
    gdq : numpy.ndarray
        uint8 ``(nints, ngroups, ny, nx)``.
    count : int
        Number of showers.
    """
    jd = make_jump_data(settings, flags)
    dat, readnoise = _electrons(data, gain, rnoise)
    if not skipped:
        dat[gdq_in & (jd.fl_dnu | jd.fl_sat) != 0] = np.nan
    pdq = np.array(pixeldq, dtype=np.uint32, copy=True)
    out, count = _stcal_jump.find_faint_extended(
        dat, np.array(gdq, dtype=np.uint8, copy=True), pdq, readnoise, jd)
    return np.asarray(out, dtype=np.uint8), int(count)


def cosmic_ray_rates(number_crs, number_extended, plane_dnu_out, group_time, npix):
    """jwst's ``primary_cosmic_rays`` and ``extended_emission_events`` (JumpStep.process).

    Parameters
    ----------
    number_crs : int
        Primary cosmic rays over the exposure (``-99`` when detection was skipped).
    number_extended : int
        Snowballs or showers found.
    plane_dnu_out : numpy.ndarray
        bool ``(nints, ngroups)``: planes DO_NOT_USE in every pixel of the output.
    group_time : float
    npix : int
        ``ny * nx``.

    Returns
    -------
    numpy.ndarray
        float64 ``(2,)``: the two rates, NaN when jwst leaves them unset (fewer than one
        usable group).
    """
    plane_dnu_out = np.asarray(plane_dnu_out, dtype=bool)
    nints, ngroups = plane_dnu_out.shape
    num_flagged_grps = int(np.count_nonzero(plane_dnu_out))
    total_groups = nints * ngroups - num_flagged_grps - nints
    out = np.full(2, np.nan)
    if total_groups >= 1:
        total_time = group_time * total_groups
        total_pixels = npix
        number_crs = np.int64(number_crs)
        out[0] = 1000 * number_crs / (total_time * total_pixels)
        out[1] = 1e6 * number_extended / (total_time * total_pixels)
    return out
