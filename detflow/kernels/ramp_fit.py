"""Ramp fitting of one tile, as jwst 3.0.0's ``RampFitStep`` does it (``OLS_C``).

jwst calls ``stcal.ramp_fitting.ramp_fit.ramp_fit`` on the whole exposure; the fit
itself is stcal's C extension (``ols_slope_fitter``), per pixel: every integration and
group of a pixel together, nothing from its neighbours. This module sets up stcal's
``RampData`` exactly as ``ramp_fit.create_ramp_fit_class`` does, applies the OLS_C part
of ``ramp_fit_data`` (read noise scaled to electrons per group, one-good-group ramps
suppressed), and runs ``ols_fit.ols_ramp_fit_single`` -- the single-core path
(``maximum_cores='1'``; stcal 1.20's multi-core path does not pass
``suppress_one_group`` on, see the notes, gotcha 2).

Left to the step, because they look at the whole exposure:

* ``ols_ramp_fit_multi`` first drops, for MIRI, the leading and trailing groups that are
  DO_NOT_USE in every pixel of every integration (``discard_miri_groups``): the step
  reduces those planes and :func:`fit_tile` drops the same groups of its tile
  (``group_all_dnu``);
* it then returns no product at all when group 0 is SATURATED in every pixel of every
  integration: a tile must not take that decision for itself, so :func:`fit_tile`
  calls ``ols_ramp_fit_single`` directly;
* the optional-output arrays have as many segment planes as the largest number of
  segments of any pixel (and CR planes as the largest number of jumps): :func:`fit_tile`
  pads them with zeros to a fixed upper bound and reports its own maxima.

Inputs are copied (stcal modifies the group DQ in place, and byte-swaps big-endian
arrays in place).
"""

import numpy as np
from stcal.ramp_fitting import ols_fit
from stcal.ramp_fitting import ramp_fit as _stcal_ramp_fit
from stcal.ramp_fitting.ramp_fit_class import RampData

__all__ = [
    "FITOPT_NAMES",
    "FLAG_NAMES",
    "PRODUCT_NAMES",
    "fit_tile",
    "group_range_mask",
    "max_segments",
]

#: DQ flags the fit needs (``flags`` mappings must have these keys).
FLAG_NAMES = ("DO_NOT_USE", "JUMP_DET", "SATURATED", "PERSISTENCE", "NO_GAIN_VALUE",
              "UNRELIABLE_SLOPE", "CHARGELOSS")

#: Arrays of the rate and rateints products (stcal's ``image_info``/``integ_info`` keys).
PRODUCT_NAMES = ("slope", "err", "dq", "var_poisson", "var_rnoise")

#: Arrays of the optional output (stcal's ``opt_info`` keys).
FITOPT_NAMES = ("slope", "sigslope", "var_poisson", "var_rnoise", "yint", "sigyint",
                "pedestal", "weights", "crmag")


def max_segments(ngroups):
    """Upper bound of the segments (and of the jumps) of one integration of a pixel."""
    return max(int(ngroups), 1)


def group_range_mask(firstgroup, lastgroup, ngroups):
    """Groups jwst's ``set_groupdq`` marks DO_NOT_USE for ``firstgroup``/``lastgroup``.

    Returns
    -------
    numpy.ndarray
        bool ``(ngroups,)``; all False when both are None (as jwst, which then does not
        call ``set_groupdq``).
    """
    mask = np.zeros(ngroups, dtype=bool)
    if firstgroup is None and lastgroup is None:
        return mask
    first = 0 if firstgroup is None else int(firstgroup)
    last = ngroups - 1 if lastgroup is None else int(lastgroup)
    first = max(first, 0)
    if first >= last:
        first, last = 0, ngroups - 1
    if first > 0:
        mask[:first] = True
    if last < ngroups - 1:
        mask[last + 1:] = True
    return mask


def _ramp_data(data, gdq, pdq, dark, zeroframe, meta, flags, suppress_one_group):
    """stcal ``create_ramp_fit_class`` for ``algorithm='OLS_C'`` on copies of the arrays."""
    ramp = RampData()
    gdq = np.array(gdq, dtype=np.uint8, copy=True)
    orig_gdq = None
    wh_chargeloss = gdq & int(flags["CHARGELOSS"])
    if np.any(wh_chargeloss > 0):
        orig_gdq = gdq.copy()
    del wh_chargeloss
    ramp.set_arrays(
        np.array(data, dtype=np.float32, copy=True),
        gdq,
        np.array(pdq, dtype=np.uint32, copy=True),
        np.array(dark, dtype=np.float32, copy=True),
        orig_gdq=orig_gdq,
        zeroframe=None if zeroframe is None else np.array(zeroframe, dtype=np.float32,
                                                          copy=True),
    )
    ramp.set_meta(
        name=meta["instrument"],
        frame_time=meta["frame_time"],
        group_time=meta["group_time"],
        groupgap=meta["groupgap"],
        nframes=meta["nframes"],
        drop_frames1=meta.get("drop_frames1"),
    )
    ramp.algorithm = "OLS_C"
    ramp.set_dqflags({k: int(v) for k, v in flags.items()})
    ramp.start_row = 0
    ramp.num_rows = ramp.data.shape[2]
    ramp.suppress_one_group_ramps = suppress_one_group
    return ramp


def _discard_miri_groups(ramp, group_all_dnu):
    """stcal ``ols_fit.discard_miri_groups`` with the exposure-wide all-DO_NOT_USE
    groups ``group_all_dnu`` (bool ``(ngroups,)``) in place of the tile's own test.

    Returns False where stcal finds no usable data (it then makes no product).
    """
    group_all_dnu = [bool(v) for v in np.asarray(group_all_dnu).ravel()]
    data, groupdq, orig_gdq = ramp.data, ramp.groupdq, ramp.orig_gdq
    ngroups = data.shape[1]
    num_bad_slices = 0
    while group_all_dnu[num_bad_slices]:
        num_bad_slices += 1
        ngroups -= 1
        if ngroups < 1:
            return False
        groupdq = groupdq[:, 1:, :, :]
        wh_cr = np.where(np.bitwise_and(groupdq[:, 0, :, :], ramp.flags_jump_det))
        groupdq[wh_cr[0], 0, wh_cr[1], wh_cr[2]] -= np.uint8(ramp.flags_jump_det)
    if num_bad_slices > 0:
        data = data[:, num_bad_slices:, :, :]
        if orig_gdq is not None:
            orig_gdq = orig_gdq[:, num_bad_slices:, :, :]
    if group_all_dnu[-1]:
        ngroups -= 1
        if ngroups < 1:
            return False
        data = data[:, :-1, :, :]
        groupdq = groupdq[:, :-1, :, :]
        if orig_gdq is not None:
            orig_gdq = orig_gdq[:, :-1, :, :]
    if ngroups < 2:
        return False
    ramp.data = data
    ramp.groupdq = groupdq
    if orig_gdq is not None:
        ramp.orig_gdq = orig_gdq
    return True


def _pad(arr, axis_len, dtype=np.float32):
    """Zero-pad axis 1 of ``arr`` ``(nints, n, ny, nx)`` to ``axis_len``."""
    arr = np.asarray(arr, dtype=dtype)
    out = np.zeros((arr.shape[0], axis_len) + arr.shape[2:], dtype=dtype)
    out[:, : arr.shape[1]] = arr
    return out


def fit_tile(data, gdq, pdq, gain, rnoise, dark, zeroframe, meta, flags, *,
             save_opt=False, suppress_one_group=True, group_all_dnu=None):
    """OLS_C ramp fit of one tile (jwst ``RampFitStep`` with ``maximum_cores='1'``).

    Parameters
    ----------
    data : numpy.ndarray
        float32 ``(nints, ngroups, ny, nx)`` in DN.
    gdq : numpy.ndarray
        uint8 ``(nints, ngroups, ny, nx)`` (``firstgroup``/``lastgroup`` already applied).
    pdq : numpy.ndarray
        uint32 ``(ny, nx)``.
    gain : numpy.ndarray
        float32 ``(ny, nx)`` (e/DN).
    rnoise : numpy.ndarray
        float32 ``(ny, nx)``: READNOISE (DN, CDS); scaled here as stcal does.
    dark : numpy.ndarray
        float32 ``(ny, nx)``: average dark current (0 where none).
    zeroframe : numpy.ndarray or None
        float32 ``(nints, ny, nx)``.
    meta : Mapping
        ``instrument``, ``frame_time``, ``group_time``, ``groupgap``, ``nframes``,
        ``drop_frames1`` (None allowed).
    flags : Mapping
        DQ bit values (:data:`FLAG_NAMES`).
    save_opt : bool
        Also return the optional-output arrays.
    suppress_one_group : bool
        jwst's parameter (already False where ``ngroups == 1``).
    group_all_dnu : numpy.ndarray, optional
        MIRI with ``ngroups > 1`` only: bool ``(ngroups,)``, the group is DO_NOT_USE in
        every pixel of every integration of the exposure. Where stcal would then find
        no usable group (and make no product), every group of the tile is fitted as
        DO_NOT_USE (NaN slopes).

    Returns
    -------
    dict
        ``rate``: {name: ``(ny, nx)``} and ``rateints``: {name: ``(nints, ny, nx)``} for
        :data:`PRODUCT_NAMES` (``dq`` uint32, the others float32); with ``save_opt``,
        ``fitopt``: {name: array} for :data:`FITOPT_NAMES`, the segment and CR axes
        zero-padded to :func:`max_segments` planes, and ``nsegs``/``ncrs``: this
        tile's own numbers of planes.
    """
    nints, ngroups = data.shape[:2]
    ramp = _ramp_data(data, gdq, pdq, dark, zeroframe, meta, flags, suppress_one_group)
    gain_2d = np.array(gain, dtype=np.float32, copy=True)
    readnoise_2d = np.array(rnoise, dtype=np.float32, copy=True)
    # stcal ramp_fit_data, OLS_C branch
    nframes = ramp.nframes
    readnoise_2d *= gain_2d / np.sqrt(2.0 * nframes)
    if ramp.suppress_one_group_ramps:
        _stcal_ramp_fit.suppress_one_good_group_ramps(ramp)
    if group_all_dnu is not None and not _discard_miri_groups(ramp, group_all_dnu):
        ramp.groupdq |= np.uint8(ramp.flags_do_not_use)
    image_info, integ_info, opt_info = ols_fit.ols_ramp_fit_single(
        ramp, save_opt, readnoise_2d, gain_2d, "optimal")
    out = {
        "rate": {k: np.asarray(image_info[k]) for k in PRODUCT_NAMES},
        "rateints": {k: np.asarray(integ_info[k]) for k in PRODUCT_NAMES},
    }
    if save_opt:
        bound = max_segments(ngroups)
        fitopt = {}
        for k in FITOPT_NAMES:
            arr = np.asarray(opt_info[k], dtype=np.float32)
            fitopt[k] = arr if k == "pedestal" else _pad(arr, bound)
        out["fitopt"] = fitopt
        out["nsegs"] = int(np.asarray(opt_info["slope"]).shape[1])
        out["ncrs"] = int(np.asarray(opt_info["crmag"]).shape[1])
    return out
