"""Ramp fitting of one tile, as jwst 3.0.0's ``RampFitStep`` does it (``OLS_C``).

jwst calls ``stcal.ramp_fitting.ramp_fit.ramp_fit`` on the whole exposure; the fit
itself is stcal's C extension (``ols_slope_fitter``), per pixel: every integration and
group of a pixel together, nothing from its neighbours. :func:`fit_tile` applies the
OLS_C part of ``ramp_fit_data`` (read noise scaled to electrons per group, one-good-group
ramps suppressed) and the fit of ``ols_fit.ols_ramp_fit_single`` -- the single-core path
(``maximum_cores='1'``; stcal 1.20's multi-core path does not pass
``suppress_one_group`` on, see the notes, gotcha 2).

The fit is :func:`detflow.kernels._ramp_fit_numba.ols_fit_tile`, a line-by-line numba
port of the C fitter (segments, optimal weighting, per-integration and exposure
combination, one-group / group-0 / ZEROFRAME timing, dark current, CHARGELOSS read-noise
recomputation, bad gain, the optional output), in the C's precision and order of
operations; about ten times faster than stcal's, and it releases the GIL. The tests
compare it bit for bit with stcal's own fitter on the same tiles
(``tests/ramp_fit_oracle.py``).

Left to the step, because they look at the whole exposure:

* ``ols_ramp_fit_multi`` first drops, for MIRI, the leading and trailing groups that are
  DO_NOT_USE in every pixel of every integration (``discard_miri_groups``): the step
  reduces those planes and :func:`fit_tile` drops the same groups of its tile
  (``group_all_dnu``);
* it then returns no product at all when group 0 is SATURATED in every pixel of every
  integration: a tile must not take that decision for itself, so :func:`fit_tile`
  fits the tile whatever its group 0;
* the optional-output arrays have as many segment planes as the largest number of
  segments of any pixel (and CR planes as the largest number of jumps): :func:`fit_tile`
  pads them with zeros to a fixed upper bound and reports its own maxima.

Inputs are never modified.
"""

import numpy as np

__all__ = [
    "FITOPT_NAMES",
    "FLAG_NAMES",
    "PRODUCT_NAMES",
    "fit_tile",
    "group_range_mask",
    "max_segments",
    "no_product",
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


def no_product(group_all_dnu, group_all_sat):
    """Whether stcal's ``ols_ramp_fit_multi`` returns no product at all (jwst then writes
    no rate or rateints): MIRI with fewer than 2 groups left after dropping the leading
    and trailing all-DO_NOT_USE groups, or the first (kept) group SATURATED in every
    pixel of every integration.

    Parameters
    ----------
    group_all_dnu : numpy.ndarray or None
        bool ``(ngroups,)``, MIRI with ``ngroups > 1`` only: the group is DO_NOT_USE in
        every pixel of every integration.
    group_all_sat : numpy.ndarray
        bool ``(ngroups,)``: the group is SATURATED in every pixel of every integration.

    Returns
    -------
    bool
    """
    sat = np.asarray(group_all_sat, dtype=bool).ravel()
    first = 0
    if group_all_dnu is not None:
        dnu = [bool(v) for v in np.asarray(group_all_dnu).ravel()]
        ngroups = len(dnu)
        while dnu[first]:
            first += 1
            ngroups -= 1
            if ngroups < 1:
                return True
        if dnu[-1]:
            ngroups -= 1
            if ngroups < 1:
                return True
        if ngroups < 2:
            return True
    return bool(sat[first])


def _suppress_one_good_group(gdq, dnu, pers):
    """stcal ``suppress_one_good_group_ramps`` on ``gdq`` ``(nints, ngroups, ny, nx)``,
    in place: ramps of one good group (ignoring PERSISTENCE) get DO_NOT_USE everywhere."""
    npers = np.uint8(~np.uint8(pers))
    one = ((gdq & npers) == 0).sum(axis=1) == 1
    gdq |= np.where(one, np.uint8(dnu), np.uint8(0))[:, None]


def _miri_groups(data, gdq, orig, group_all_dnu, dnu, jump):
    """stcal's ``ols_fit.discard_miri_groups`` on arrays, with the exposure-wide
    all-DO_NOT_USE groups ``group_all_dnu``: ``gdq`` (suppressed, modified in place as
    stcal does) and ``orig`` (the original group DQ) are cut like ``data``; where stcal
    would find no usable data, nothing is cut and ``gdq`` becomes DO_NOT_USE throughout.

    Returns
    -------
    (data, gdq, orig)
    """
    group_all_dnu = [bool(v) for v in np.asarray(group_all_dnu).ravel()]
    ngroups = data.shape[1]
    num_bad = 0
    usable = True
    while group_all_dnu[num_bad]:
        num_bad += 1
        ngroups -= 1
        if ngroups < 1:
            usable = False
            break
        first = gdq[:, num_bad]
        first[(first & np.uint8(jump)) != 0] -= np.uint8(jump)
    stop = data.shape[1]
    if usable and group_all_dnu[-1]:
        ngroups -= 1
        stop -= 1
        usable = ngroups >= 1
    if not usable or ngroups < 2:
        gdq |= np.uint8(dnu)
        return data, gdq, orig
    return data[:, num_bad:stop], gdq[:, num_bad:stop], orig[:, num_bad:stop]


def _fit_tile_numba(kernel, data, gdq, pdq, gain, rnoise, dark, zeroframe, meta, flags,
                    save_opt, suppress_one_group, group_all_dnu):
    """:func:`fit_tile` with the numba port of stcal's C fitter."""
    nints, ngroups, ny, nx = data.shape
    bound = max_segments(ngroups)
    dnu, jump = int(flags["DO_NOT_USE"]), int(flags["JUMP_DET"])
    data = np.ascontiguousarray(data, dtype=np.float32)
    gdq = np.ascontiguousarray(gdq, dtype=np.uint8)
    orig = gdq
    do_suppress = bool(suppress_one_group)
    if group_all_dnu is not None:
        # stcal suppresses before it drops MIRI groups: do both here, in its order
        gdq = gdq.copy()
        if do_suppress:
            _suppress_one_good_group(gdq, dnu, int(flags["PERSISTENCE"]))
            do_suppress = False
        data, gdq, orig = _miri_groups(data, gdq, orig, group_all_dnu, dnu, jump)
        data, gdq, orig = (np.ascontiguousarray(a) for a in (data, gdq, orig))
    has_zframe = zeroframe is not None
    zframe = (np.ascontiguousarray(zeroframe, dtype=np.float32) if has_zframe
              else np.zeros((1, 1, 1), dtype=np.float32))
    nframes = int(meta["nframes"])
    drop = meta.get("drop_frames1")
    kflags = np.array([dnu, jump, int(flags["SATURATED"]), int(flags["PERSISTENCE"]),
                       int(flags["NO_GAIN_VALUE"]), int(flags["CHARGELOSS"])], dtype=np.int64)
    rate_f = np.empty((4, ny, nx), dtype=np.float32)
    rate_dq = np.empty((ny, nx), dtype=np.uint32)
    ints_f = np.empty((4, nints, ny, nx), dtype=np.float32)
    ints_dq = np.empty((nints, ny, nx), dtype=np.uint32)
    if save_opt:
        opt_f = np.zeros((7, nints, bound, ny, nx), dtype=np.float32)
        opt_ped = np.zeros((nints, ny, nx), dtype=np.float32)
        opt_crmag = np.zeros((nints, bound, ny, nx), dtype=np.float32)
    else:
        opt_f = np.zeros((7, 1, 1, 1, 1), dtype=np.float32)
        opt_ped = np.zeros((1, 1, 1), dtype=np.float32)
        opt_crmag = np.zeros((1, 1, 1, 1), dtype=np.float32)
    nsegs, ncrs = kernel.ols_fit_tile(
        data, gdq, orig,
        np.ascontiguousarray(pdq, dtype=np.uint32),
        np.ascontiguousarray(gain, dtype=np.float32),
        np.ascontiguousarray(rnoise, dtype=np.float32),
        np.ascontiguousarray(dark, dtype=np.float32),
        zframe, has_zframe,
        # the C reads the times as C floats (py_ramp_data_get_float)
        float(np.float32(meta["group_time"])), float(np.float32(meta["frame_time"])),
        nframes, int(meta["groupgap"]), 0 if drop is None else int(drop),
        float(np.sqrt(2.0 * nframes)),
        bool(suppress_one_group), do_suppress, bool(save_opt), kflags, kernel.POWERS,
        rate_f, rate_dq, ints_f, ints_dq, opt_f, opt_ped, opt_crmag)
    out = {
        "rate": {"slope": rate_f[0], "err": rate_f[3], "dq": rate_dq,
                 "var_poisson": rate_f[1], "var_rnoise": rate_f[2]},
        "rateints": {"slope": ints_f[0], "err": ints_f[3], "dq": ints_dq,
                     "var_poisson": ints_f[1], "var_rnoise": ints_f[2]},
    }
    if save_opt:
        fitopt = dict(zip(("slope", "sigslope", "var_poisson", "var_rnoise", "yint",
                           "sigyint", "weights"), opt_f, strict=True))
        fitopt["pedestal"] = opt_ped
        fitopt["crmag"] = opt_crmag
        out["fitopt"] = {k: fitopt[k] for k in FITOPT_NAMES}
        out["nsegs"] = int(nsegs)
        out["ncrs"] = int(ncrs)
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
    from detflow.kernels import _ramp_fit_numba  # numba compiles on first use

    return _fit_tile_numba(_ramp_fit_numba, data, gdq, pdq, gain, rnoise, dark, zeroframe,
                           meta, flags, save_opt, suppress_one_group, group_all_dnu)
