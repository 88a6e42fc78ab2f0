"""The tests' oracle for detflow's ramp-fit kernel: stcal's own OLS_C fitter on one tile.

:func:`fit_tile_stcal` builds stcal's ``RampData`` exactly as
``ramp_fit.create_ramp_fit_class`` does and calls ``ols_fit.ols_ramp_fit_single`` (its C
extension) on it, with the same arguments and the same outputs as
:func:`detflow.kernels.ramp_fit.fit_tile`, which must give the same bits. It lived in
the kernel as a second engine; nothing calls it at run time, so it is here.
"""

import numpy as np

from detflow.kernels.ramp_fit import FITOPT_NAMES, PRODUCT_NAMES, max_segments


def _ramp_data(data, gdq, pdq, dark, zeroframe, meta, flags, suppress_one_group):
    """stcal ``create_ramp_fit_class`` for ``algorithm='OLS_C'`` on copies of the arrays."""
    from stcal.ramp_fitting.ramp_fit_class import RampData

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


def fit_tile_stcal(data, gdq, pdq, gain, rnoise, dark, zeroframe, meta, flags, *,
                   save_opt=False, suppress_one_group=True, group_all_dnu=None):
    """:func:`detflow.kernels.ramp_fit.fit_tile` with stcal's ``ols_ramp_fit_single``
    (its C extension); inputs are copied (stcal changes them in place)."""
    from stcal.ramp_fitting import ols_fit
    from stcal.ramp_fitting import ramp_fit as stcal_ramp_fit

    ngroups = data.shape[1]
    ramp = _ramp_data(data, gdq, pdq, dark, zeroframe, meta, flags, suppress_one_group)
    gain_2d = np.array(gain, dtype=np.float32, copy=True)
    readnoise_2d = np.array(rnoise, dtype=np.float32, copy=True)
    # stcal ramp_fit_data, OLS_C branch
    nframes = ramp.nframes
    readnoise_2d *= gain_2d / np.sqrt(2.0 * nframes)
    if ramp.suppress_one_group_ramps:
        stcal_ramp_fit.suppress_one_good_group_ramps(ramp)
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
