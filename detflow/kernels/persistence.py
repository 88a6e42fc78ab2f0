"""Persistence flagging in time windows, as jwst 3.0.0's ``persistence`` step does it.

jwst 3.0.0 has no persistence model (no TRAPDENSITY/TRAPPARS/PERSAT): it flags
PERSISTENCE in the groups that fall inside a per-pixel time window. The state of a
pixel is one float64, the (Unix epoch) time its window ends, 0 for none. Walking the
groups in time order (integration by integration), for every group at time ``t``:

1. windows that ended before ``t`` are closed (``state < t`` -> 0);
2. the first saturated group of the integration (the running count of SAT groups is
   exactly 1 -- so while later groups stay unsaturated the window keeps re-opening)
   opens a window ending at ``t + persistence_time``;
3. with ``dn_threshold``, a pixel with ``data > dn_threshold`` and no open window opens
   one;
4. a window ending after ``t + persistence_time`` (a "backwards" window, e.g. carried
   in from a later exposure) is reset to 0;
5. the group gets PERSISTENCE (plus DO_NOT_USE) where a window is open.

The state carried in from a previous exposure (jwst's ``persistence_array_file``) is
the initial state; the state after the last group is what jwst writes for the next
exposure. Everything is per pixel, so a tile needs no halo; every integration and
group of a tile is processed together (the state runs through all of them).

Reference: ``jwst/persistence/persistence.py`` (``DataSet.do_all`` and
``process_persistence_flagging``) and ``persistence_step.py``.
"""

import numpy as np

__all__ = ["mjd_to_epoch", "integration_start_times", "group_times", "flag_persistence"]


def mjd_to_epoch(mjd):
    """Modified Julian Date to Unix epoch seconds, with jwst's arithmetic.

    Parameters
    ----------
    mjd : float

    Returns
    -------
    float
        ``(mjd - 40587.0) * 86400.0``.
    """
    return (mjd - 40587.0) * 86400.0


def integration_start_times(nints, start_time, integration_time, int_start_mjd=None):
    """Start time of each integration (Unix epoch seconds), as jwst picks it.

    Integration ``i`` starts at ``int_start_mjd[i]`` (the INT_TIMES column
    ``int_start_MJD_UTC``) where the table has a row ``i``, otherwise at
    ``epoch(start_time) + i * integration_time`` (EXPSTART and EFFINTTM).

    Parameters
    ----------
    nints : int
    start_time : float
        EXPSTART (MJD); required, as in jwst, even when the table covers every
        integration.
    integration_time : float or None
        EFFINTTM (s); needed only for integrations the table does not cover.
    int_start_mjd : sequence of float, optional
        INT_TIMES ``int_start_MJD_UTC`` (one per table row, ``None`` read as NaN).

    Returns
    -------
    list of float
        ``nints`` start times.

    Raises
    ------
    ValueError
        Where jwst fails on a missing keyword.
    """
    if start_time is None:  # jwst converts EXPSTART first, whatever the table holds
        raise ValueError("persistence needs the exposure start time (EXPSTART)")
    epoch = mjd_to_epoch(start_time)
    rows = [] if int_start_mjd is None else list(int_start_mjd)
    starts = []
    for integ in range(nints):
        if integ < len(rows):
            value = rows[integ]
            starts.append(mjd_to_epoch(np.nan if value is None else value))
        elif integration_time is None:
            raise ValueError(
                "persistence needs EFFINTTM to time integrations the INT_TIMES table lacks"
            )
        else:
            starts.append(epoch + integ * integration_time)
    return starts


def group_times(int_starts, group_time, ngroups):
    """The time of every group: integration start plus ``g + 1`` group times.

    The sum is accumulated one group at a time, exactly as jwst does
    (``t = t + group_time``), so the float64 values are bit-identical.

    Parameters
    ----------
    int_starts : sequence of float
        ``nints`` integration start times (s).
    group_time : float
        TGROUP (s).
    ngroups : int

    Returns
    -------
    numpy.ndarray
        ``(nints, ngroups)`` float64.
    """
    out = np.zeros((len(int_starts), ngroups), dtype=np.float64)
    for integ, current in enumerate(int_starts):
        for group in range(ngroups):
            current = current + group_time
            out[integ, group] = current
    return out


def flag_persistence(groupdq, times, state, persistence_time, *, saturated, flag,
                     data=None, dn_threshold=None):
    """Flag the groups of one tile that lie inside a persistence window.

    Parameters
    ----------
    groupdq : numpy.ndarray
        ``(nints, ngroups, ny, nx)`` uint8 group DQ (not modified).
    times : numpy.ndarray
        ``(nints, ngroups)`` float64 group times (:func:`group_times`).
    state : numpy.ndarray
        ``(ny, nx)`` float64 window end times carried in (0 = no window; not modified).
    persistence_time : int or float
        Window length (s).
    saturated : int
        The SATURATED group DQ bit.
    flag : int
        What a group inside a window gets: PERSISTENCE, or PERSISTENCE|DO_NOT_USE.
    data : numpy.ndarray, optional
        ``(nints, ngroups, ny, nx)`` float32 science data; needed with ``dn_threshold``.
    dn_threshold : float, optional
        Open a window where ``data > dn_threshold``. Pass the parameter as the Python
        float it is: NumPy then compares it with the float32 data exactly as jwst does.

    Returns
    -------
    groupdq : numpy.ndarray
        ``(nints, ngroups, ny, nx)`` uint8, a new array.
    state : numpy.ndarray
        ``(ny, nx)`` float64 window end times after the last group (what jwst writes to
        the persistence array file).
    """
    gdq = np.array(groupdq, dtype=np.uint8, copy=True)
    pers = np.array(state, dtype=np.float64, copy=True)
    nints, ngroups = gdq.shape[:2]
    if dn_threshold is not None and data is None:
        raise ValueError("dn_threshold needs the science data")
    sat_count = np.zeros(pers.shape, dtype=np.uint32)
    for integ in range(nints):
        for group in range(ngroups):
            current_time = times[integ, group]
            # windows that ended before this group are closed
            pers[pers < current_time] = 0.0
            window_end = current_time + persistence_time
            # the first saturated group of the ramp (re)opens a window
            gdq_plane = gdq[integ, group]
            sat_count[np.bitwise_and(gdq_plane, saturated) > 0] += 1
            pers[sat_count == 1] = window_end
            if dn_threshold is not None:
                set_window = data[integ, group] > dn_threshold
                set_window[pers > 0.0] = False
                pers[set_window] = window_end
            # a window that would have started after this group is invalid: reset it
            start_plane = pers - window_end
            start_plane[pers == 0.0] = 0.0
            pers[start_plane > 0.0] = 0.0
            gdq_plane[pers > 0.0] |= flag
        sat_count[:] = 0
    return gdq, pers
