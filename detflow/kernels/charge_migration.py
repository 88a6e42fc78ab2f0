"""Charge-migration flagging on one tile (jwst ``ChargeMigrationStep``).

jwst 3.0.0 (``charge_migration.charge_migration``) finds every group whose value is
above ``signal_threshold`` and whose group DQ is not exactly ``DO_NOT_USE`` (a group
flagged DO_NOT_USE together with another bit, e.g. ``DO_NOT_USE | SATURATED``, still
counts), all found on the *input* flags; each such group flags itself, every later
group of the same integration, and the same groups of the 4 nearest neighbours
(inside the exposure) with ``CHARGELOSS | DO_NOT_USE``.

That is two ORs that commute: a running OR along the groups (:func:`chargeloss_seeds`)
and a 4-neighbour (plus-shaped) dilation in each group (:func:`grow_4_neighbours`).
The dilation needs one pixel of halo; a tile edge that is the edge of the exposure
has nothing beyond it, as in jwst. :func:`flag_charge_migration` chains the two on a
whole tile, the same thing jwst does to a whole exposure.
"""

import numpy as np

__all__ = [
    "CHARGE_MIGRATION_HALO",
    "apply_chargeloss",
    "chargeloss_seeds",
    "flag_charge_migration",
    "grow_4_neighbours",
]

#: Neighbour pixels a tile needs: the 4-neighbours are one pixel away.
CHARGE_MIGRATION_HALO = 1


def chargeloss_seeds(data, gdq, signal_threshold, dnu):
    """Groups at or after the first one above the threshold, pixel by pixel.

    Parameters
    ----------
    data : numpy.ndarray
        Science ramps ``(nints, ngroups, ny, nx)`` float32; all groups of a pixel.
    gdq : numpy.ndarray
        Group DQ ``(nints, ngroups, ny, nx)`` uint8 (the step's input flags).
    signal_threshold : float
        jwst's ``signal_threshold``; compared as jwst does, ``data > signal_threshold``
        with the float32 array and the Python float.
    dnu : int
        The DO_NOT_USE bit; groups whose DQ equals it exactly are ignored.

    Returns
    -------
    numpy.ndarray
        bool ``(nints, ngroups, ny, nx)``: True from the first group (of each
        integration) that is above the threshold and not exactly DO_NOT_USE onwards.
    """
    hit = (data > signal_threshold) & (gdq != dnu)
    return np.logical_or.accumulate(hit, axis=1)


def grow_4_neighbours(mask):
    """Add the 4 nearest neighbours (up, down, left, right) of every True pixel.

    Parameters
    ----------
    mask : numpy.ndarray
        bool ``(..., ny, nx)``; nothing is assumed beyond the tile's edges.

    Returns
    -------
    numpy.ndarray
        bool ``(..., ny, nx)``, a new array.
    """
    out = mask.copy()
    out[..., 1:, :] |= mask[..., :-1, :]
    out[..., :-1, :] |= mask[..., 1:, :]
    out[..., :, 1:] |= mask[..., :, :-1]
    out[..., :, :-1] |= mask[..., :, 1:]
    return out


def apply_chargeloss(gdq, grown, flag):
    """``gdq | flag`` where ``grown`` is True (a new uint8 array).

    Parameters
    ----------
    gdq : numpy.ndarray
        Group DQ ``(nints, ngroups, ny, nx)`` uint8.
    grown : numpy.ndarray
        bool, the same shape (from :func:`grow_4_neighbours`).
    flag : int
        ``CHARGELOSS | DO_NOT_USE``.

    Returns
    -------
    numpy.ndarray
        uint8 ``(nints, ngroups, ny, nx)``.
    """
    return gdq | (grown.astype(np.uint8) * np.uint8(flag))


def flag_charge_migration(data, gdq, signal_threshold, dnu, chargeloss):
    """jwst's charge-migration flags on a whole tile (or exposure); inputs unchanged.

    Parameters
    ----------
    data : numpy.ndarray
        ``(nints, ngroups, ny, nx)`` float32.
    gdq : numpy.ndarray
        ``(nints, ngroups, ny, nx)`` uint8.
    signal_threshold : float
        Values strictly above it (DN) are charge-migration seeds.
    dnu, chargeloss : int
        The DO_NOT_USE and CHARGELOSS bits.

    Returns
    -------
    numpy.ndarray
        The new group DQ ``(nints, ngroups, ny, nx)`` uint8; exact on pixels more than
        :data:`CHARGE_MIGRATION_HALO` from a tile edge that is not the exposure's edge.
    """
    seeds = chargeloss_seeds(data, gdq, signal_threshold, dnu)
    return apply_chargeloss(gdq, grow_4_neighbours(seeds), int(chargeloss) | int(dnu))
