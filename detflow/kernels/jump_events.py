"""Jump detection's large events and counts, as jwst 3.0.0's ``JumpStep`` (stcal 1.20)
does them, on whole planes (see :mod:`detflow.kernels.jump` for the per-tile part):

* snowballs (:func:`snowballs_integration`) fit ellipses to connected regions of whole
  planes: they run on one whole integration at a time (uint8 group DQ only), exact;
* showers (:func:`showers_exposure`, MIRI, off by default) need the whole exposure;
* :func:`cosmic_ray_rates`: the ``PRIMECRS``/``EXTNCRS`` rates jwst records.

stcal does the ellipse and shower work itself (``stcal.jump.jump``, imported lazily:
it costs about a second of start-up). Every function takes the DQ bit values in
``flags`` and never modifies its inputs.
"""

import numpy as np

from detflow.kernels.jump import _electrons, make_jump_data

__all__ = ["cosmic_ray_rates", "showers_exposure", "snowballs_integration"]


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
    from stcal.jump import jump as _stcal_jump

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
    from stcal.jump import jump as _stcal_jump

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
