"""The numba jump kernel equals stcal 1.20 bit for bit, tile by tile.

:mod:`detflow.kernels._jump_numba` ports stcal's two-point-difference detection
(iterative and single-pass regimes) and its post-processing (four neighbours, after-jump
flags, JUMP clean-up). These tests run stcal's own ``detect_jumps_data`` (single core,
as jwst does) on many small random tiles as the oracle and require identical group DQ
and the same primary cosmic-ray count from :func:`~detflow.kernels.jump.detect_finish_tile`
(one pass) and from :func:`~detflow.kernels.jump.detect_tile` then
:func:`~detflow.kernels.jump.finish_tile` (two passes). The tiles cover DO_NOT_USE,
SATURATED and earlier JUMP_DET groups, NaN and infinite data, ties, 0 to N usable
differences (the 2-, 3- and 4+-difference thresholds, the clipped median with tied
maxima), several integrations, NFRAMES > 1, zero, negative and NaN gain, zero read
noise, after-jump flagging, other neighbour thresholds, both regimes, and more than 32
differences per pixel (the kernel's sorting-network limit). Random data rarely put a
ratio within rounding distance of a threshold, so further tests set the thresholds to
stcal's own ratios (and one ulp below): every float32/float64 rounding of stcal's
intermediate values must then be reproduced for the decisions to agree. Halo tests cut
a tile into sub-tiles (down to one pixel) with a one-pixel halo and require the
stitched result of the whole; the regime decision is compared with stcal's.
"""

import contextlib
import subprocess
import sys
import warnings

import numpy as np
import pytest

from detflow import dqflags
from detflow.kernels import jump as kj
from detflow.steps.jump import STEP, _flags

FLAGS = _flags()
DNU, SAT, JUMP = dqflags.DO_NOT_USE, dqflags.SATURATED, dqflags.JUMP_DET


def _oracle(data, gdq, gain, rnoise, settings):
    """stcal's ``detect_jumps_data`` on the whole tile: (group DQ, primary count)."""
    from stcal.jump.jump import detect_jumps_data

    jd = kj.make_jump_data(settings, FLAGS)
    jd.data, jd.gdq = data.copy(), gdq.copy()
    jd.pdq = np.zeros(data.shape[2:], np.uint32)
    jd.gain_2d, jd.rnoise_2d = gain, rnoise
    with np.errstate(all="ignore"), _quiet():
        out, _, count, _ = detect_jumps_data(jd)
    return out, count


@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _gain_median(gain):
    with _quiet():
        return np.nanmedian(gain)


def _random_case(rng, *, nints=None, ngroups=None, ny=None, nx=None):
    """A random tile and settings exercising the kernel's branches."""
    nints = nints or int(rng.integers(1, 4))
    ngroups = ngroups or int(rng.integers(3, 13))
    ny = ny or int(rng.integers(1, 9))
    nx = nx or int(rng.integers(1, 9))
    shape = (nints, ngroups, ny, nx)
    rate = rng.uniform(0, 60, (ny, nx))
    # near 0 (as after superbias subtraction) the differences carry all 24 bits, so the
    # float32 roundings of stcal's intermediate values matter
    base = rng.choice([1000.0, 0.0, 0.0, 3e4])
    data = base + rate * np.arange(ngroups)[None, :, None, None] + rng.normal(0, 8, shape)
    for _ in range(int(rng.integers(0, 3 + ny * nx // 2))):  # jumps, some large
        i, g = rng.integers(nints), rng.integers(1, ngroups)
        data[i, g:, rng.integers(ny), rng.integers(nx)] += rng.choice([30.0, 300.0, 5e3, 5e4])
    if rng.random() < 0.3:  # ties: many equal differences (and tied maxima)
        data = np.round(data / rng.choice([20.0, 200.0])) * 20.0
    if rng.random() < 0.15:  # a pixel with identical groups: every difference 0
        data[:, :, 0, 0] = 1234.0
    data = data.astype(np.float32)
    if rng.random() < 0.3:
        data[rng.random(shape) < 0.05] = np.nan
    if rng.random() < 0.1:
        data[rng.random(shape) < 0.03] = rng.choice([np.inf, -np.inf])
    gdq = np.zeros(shape, np.uint8)
    u = rng.random(shape)
    p = rng.choice([0.0, 0.05, 0.3])  # up to few usable differences per pixel
    gdq[u < p] |= DNU
    gdq[u > 1 - p / 2] |= SAT
    gdq[(u > 0.5) & (u < 0.52)] |= JUMP  # an earlier step's JUMP (counted, cleaned up)
    gdq[(u > 0.6) & (u < 0.61)] |= dqflags.OUTLIER
    gain = rng.uniform(1.5, 2.5, (ny, nx)).astype(np.float32)
    rnoise = rng.uniform(5, 9, (ny, nx)).astype(np.float32)
    if rng.random() < 0.3:
        rnoise[rng.random((ny, nx)) < 0.3] = 0.0
        gain[rng.random((ny, nx)) < 0.15] = rng.choice([0.0, -1.5, np.nan])
    params = dict(STEP.defaults())
    if rng.random() < 0.4:
        params.update(after_jump_flag_dn1=float(rng.uniform(0, 2000)),
                      after_jump_flag_time1=float(rng.uniform(0, 60)),
                      after_jump_flag_dn2=float(rng.uniform(0, 8000)),
                      after_jump_flag_time2=float(rng.uniform(0, 120)))
    if rng.random() < 0.4:
        params.update(min_jump_to_flag_neighbors=float(rng.uniform(0, 20)),
                      max_jump_to_flag_neighbors=float(rng.uniform(20, 2000)),
                      rejection_threshold=float(rng.uniform(2, 6)),
                      three_group_rejection_threshold=float(rng.uniform(3, 8)),
                      four_group_rejection_threshold=float(rng.uniform(3, 8)))
    if rng.random() < 0.3:
        params["min_diffs_single_pass"] = int(rng.integers(2, 12))
    if rng.random() < 0.15:
        params["flag_4_neighbors"] = False
    settings = kj.jump_settings(params, int(rng.integers(1, 5)), 10.73677)
    return data, gdq, gain, rnoise, settings


def _plane_dnu(gdq):
    return np.all(gdq & DNU, axis=(2, 3))


def _check(data, gdq, gain, rnoise, settings):
    want, want_count = _oracle(data, gdq, gain, rnoise, settings)
    plane_dnu = _plane_dnu(gdq)
    med = _gain_median(gain)
    data0, gdq0 = data.copy(), gdq.copy()
    got, count = kj.detect_finish_tile(data, gdq, gain, rnoise, plane_dnu, settings, FLAGS,
                                       gain_median=med)
    np.testing.assert_array_equal(got, want)
    skipped = kj.regime(plane_dnu, settings, FLAGS) == "skip"
    assert (count if not skipped else -99) == want_count
    # the two-pass route (used where sigma clipping is possible) agrees as well
    det = kj.detect_tile(data, gdq, gain, rnoise, plane_dnu, settings, FLAGS)
    if not skipped:  # (skipped: the step reports stcal's -99 whatever the count)
        assert int(kj.primary_count(det, None, FLAGS)[0, 0]) == count
    np.testing.assert_array_equal(
        kj.finish_tile(data, det, gain, rnoise, plane_dnu, None, settings, FLAGS,
                       gain_median=med), want)
    # inputs untouched
    np.testing.assert_array_equal(data.view(np.uint32), data0.view(np.uint32))
    np.testing.assert_array_equal(gdq, gdq0)
    return kj.regime(plane_dnu, settings, FLAGS), count


@pytest.mark.parametrize("block", range(8))
def test_random_tiles_match_stcal(block):
    """300 random tiles per block, every regime and option the kernel ports."""
    rng = np.random.default_rng(1000 + block)
    seen = set()
    found = 0
    for _ in range(300):
        regime, count = _check(*_random_case(rng))
        seen.add(regime)
        found += count > 0
    assert {"iterative", "single_pass"} <= seen
    assert found > 100


@pytest.mark.parametrize("nints, ngroups, regime", [
    (4, 10, "iterative"),  # 36 differences: beyond the sorting networks
    (1, 40, "single_pass"),  # 39 differences
    (4, 3, "iterative"),  # 2 differences per integration
])
def test_many_differences_and_few(nints, ngroups, regime):
    rng = np.random.default_rng(ngroups)
    for _ in range(40):
        data, gdq, gain, rnoise, settings = _random_case(rng, nints=nints, ngroups=ngroups)
        settings["min_diffs_single_pass"] = 10
        assert _check(data, gdq, gain, rnoise, settings)[0] in (regime, "skip")


def test_usable_difference_counts():
    """One pixel per count of usable differences (0 to 9), with a jump where possible,
    tied maxima and a lone maximum."""
    ngroups = 10
    data = np.tile((100.0 * np.arange(ngroups))[None, :, None, None], (1, 1, 4, 10))
    data = data.astype(np.float32)
    gdq = np.zeros(data.shape, np.uint8)
    for x in range(10):  # x usable groups at the start of column x (row 0)
        gdq[0, x:, 0, x] = SAT
        data[0, max(x - 1, 1):, 0, x] += 900.0
    data[0, 5:, 1, :] += 3000.0  # a jump in every pixel of row 1
    data[0, 3:, 2, ::2] += 50.0  # tied maxima in row 2
    data[0, 7:, 2, 1::2] += 50.0
    data[0, 7:, 2, 1::4] -= 50.0
    gain = np.full((4, 10), 2.0, np.float32)
    rnoise = np.full((4, 10), 3.0, np.float32)
    settings = kj.jump_settings(STEP.defaults(), 1, 10.0)
    assert _check(data, gdq, gain, rnoise, settings)[1] > 10


def test_skipped_detection_only_cleans_up():
    """Too few usable groups everywhere: no detection, count -99 in stcal, JUMP removed
    where DO_NOT_USE or SATURATED is set."""
    rng = np.random.default_rng(5)
    data, gdq, gain, rnoise, settings = _random_case(rng, nints=2, ngroups=4)
    gdq[:, :2] |= DNU
    gdq[0, 3, 0, 0] = JUMP | SAT
    assert _check(data, gdq, gain, rnoise, settings)[0] == "skip"


@pytest.mark.parametrize("only_use_ints", [True, False])
def test_sigma_clip_regime_two_pass(only_use_ints):
    """Sigma clip stays on stcal (detect_tile); finish_tile's numba post-processing with
    the plane clearing equals stcal's."""
    rng = np.random.default_rng(7)
    nints = 100 if only_use_ints else 12
    shape = (nints, 4, 5, 6)
    data = (1000 + 20.0 * np.arange(4)[None, :, None, None]
            + rng.normal(0, 8, shape)).astype(np.float32)
    gdq = np.zeros(shape, np.uint8)
    gdq[rng.random(shape) < 0.02] = SAT
    gdq[3, 1:3] = 0
    data[3, 2:] += 1e5  # a plane all jumps: cleared by stcal
    data[5, 3:, 1, 1] += 1e5  # and a jump kept
    gain = rng.uniform(1.5, 2.5, shape[2:]).astype(np.float32)
    rnoise = rng.uniform(5, 9, shape[2:]).astype(np.float32)
    settings = kj.jump_settings(STEP.defaults(), 1, 10.73677)
    settings.update(only_use_ints=only_use_ints, minimum_sigclip_groups=40)
    want, want_count = _oracle(data, gdq, gain, rnoise, settings)
    plane_dnu = _plane_dnu(gdq)
    assert kj.regime(plane_dnu, settings, FLAGS) == "sigma_clip"
    det = kj.detect_tile(data, gdq, gain, rnoise, plane_dnu, settings, FLAGS)
    clear = kj.clear_planes(plane_dnu, np.all(det & (DNU | JUMP), axis=(2, 3)), settings, FLAGS)
    assert clear[3, 2]
    got = kj.finish_tile(data, det, gain, rnoise, plane_dnu, clear, settings, FLAGS,
                         gain_median=_gain_median(gain))
    np.testing.assert_array_equal(got, want)
    assert int(kj.primary_count(det, clear, FLAGS)[0, 0]) == want_count
    with pytest.raises(ValueError):
        kj.detect_finish_tile(data, gdq, gain, rnoise, plane_dnu, settings, FLAGS)


def _cuts(n, rng):
    edges = sorted({0, n, *rng.integers(1, n, size=rng.integers(0, n)).tolist()})
    return list(zip(edges[:-1], edges[1:], strict=True))


@pytest.mark.parametrize("seed", range(6))
def test_halo_tiles_stitch_to_the_whole(seed):
    """Sub-tiles (one pixel up) with a one-pixel halo where a neighbour exists give the
    whole tile's result and counts (what the step's map_overlap does)."""
    rng = np.random.default_rng(50 + seed)
    data, gdq, gain, rnoise, settings = _random_case(rng, ny=int(rng.integers(4, 14)),
                                                     nx=int(rng.integers(4, 14)))
    settings["flag_4_neighbors"] = True
    settings["min_jump_to_flag_neighbors"] = 2.0  # many neighbour flags
    plane_dnu = _plane_dnu(gdq)
    med = _gain_median(gain)
    whole, total = kj.detect_finish_tile(data, gdq, gain, rnoise, plane_dnu, settings, FLAGS,
                                         gain_median=med)
    ny, nx = gain.shape
    stitched = np.zeros_like(whole)
    count = 0
    for ya, yb in _cuts(ny, rng):
        for xa, xb in _cuts(nx, rng):
            h = (int(ya > 0), int(yb < ny), int(xa > 0), int(xb < nx))
            sy, sx = slice(ya - h[0], yb + h[1]), slice(xa - h[2], xb + h[3])
            tile, n = kj.detect_finish_tile(
                data[:, :, sy, sx], gdq[:, :, sy, sx], gain[sy, sx], rnoise[sy, sx], plane_dnu,
                settings, FLAGS, gain_median=med, halo=h)
            stitched[:, :, ya:yb, xa:xb] = tile
            count += n
    np.testing.assert_array_equal(stitched, whole)
    assert count == total
    assert (whole & JUMP).any()


def test_fast_path_does_not_import_stcal():
    """stcal.jump imports astropy.convolution and scipy.signal (start-up time): the
    numba path never imports it."""
    code = (
        "import sys, numpy as np\n"
        "from detflow.kernels import jump as kj\n"
        "from detflow.steps.jump import STEP, _flags\n"
        "s = kj.jump_settings(STEP.defaults(), 1, 10.0)\n"
        "d = np.ones((1, 5, 3, 3), np.float32); q = np.zeros(d.shape, np.uint8)\n"
        "g = np.ones((3, 3), np.float32)\n"
        "kj.detect_finish_tile(d, q, g, g, np.zeros((1, 5), bool), s, _flags())\n"
        "assert not [m for m in sys.modules if m.startswith('stcal')]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------ thresholds to the bit


def _stats(data, gdq, gain, rnoise, settings):
    """stcal's first differences, signed median and sigma of the tile, and its
    TwoPointParams."""
    tp = kj._twopoint_params(settings, FLAGS)
    with np.errstate(all="ignore"), _quiet():
        dat, readnoise = data * gain, rnoise * gain
        fd, _, med, sig = kj._difference_statistics(dat, gdq.copy(), readnoise**2, tp)
    return fd, med, sig, readnoise**2, tp


def _iterative_maxima(fd, rn2, y, x, tp):
    """The largest ratio of each pass of stcal's ``iterative_jump`` on pixel ``(y, x)``
    when every pass flags (thresholds 0), with stcal's own ``get_cr_locs``."""
    from stcal.jump import twopoint_difference as twopt

    fda = np.abs(fd[:, :, y:y + 1, x:x + 1])
    rn2 = rn2[y:y + 1, x:x + 1]
    ndiffs = fda.shape[0] * fda.shape[1]
    maxima = []
    with _quiet():
        _, ratio = twopt.get_cr_locs(fda, rn2, ndiffs, tp)
        for _ in range(ndiffs):
            big = np.nanmax(ratio)
            if np.isnan(big) or np.count_nonzero(~np.isnan(fda)) < 2:
                break
            maxima.append(float(big))
            new_cr = ratio == big
            fda[new_cr] = np.nan
            _, ratio = twopt.get_cr_locs(fda, rn2, ndiffs, tp, index=np.any(new_cr, axis=(0, 1)))
    return maxima


def _knife_edge_case(rng):
    data, gdq, gain, rnoise, settings = _random_case(rng, ny=int(rng.integers(1, 4)),
                                                     nx=int(rng.integers(1, 4)))
    gain[~(gain > 0)] = 2.0  # keep the chosen pixel meaningful
    gdq &= ~np.uint8(JUMP)
    settings = {**settings, "min_diffs_single_pass": 10 if rng.random() < 0.7 else 2}
    regime = kj.regime(_plane_dnu(gdq), settings, FLAGS)
    fd, med, sig, rn2, tp = _stats(data, gdq, gain, rnoise, {
        **settings, "rejection_threshold": 0.0, "three_group_rejection_threshold": 0.0,
        "four_group_rejection_threshold": 0.0})
    y, x = rng.integers(gain.shape[0]), rng.integers(gain.shape[1])
    if regime == "iterative":
        maxima = _iterative_maxima(fd, rn2, y, x, tp)
        usable = [k for k in range(len(maxima)) if all(m > maxima[k] for m in maxima[:k])]
        if not usable:
            return None
        thr = maxima[usable[-1] if rng.random() < 0.7 else usable[0]]
    elif regime == "single_pass":
        with _quiet():
            ratios = np.abs(fd[:, :, y, x] - med[y, x]) / sig[0, y, x]
        ratios = ratios[np.isfinite(ratios)]
        if not ratios.size:
            return None
        thr = float(rng.choice(ratios))
    else:
        return None
    if thr > 0 and rng.random() < 0.5:  # (jwst's spec: thresholds >= 0)
        thr = float(np.nextafter(thr, -np.inf))  # now it passes
    settings.update(rejection_threshold=thr, three_group_rejection_threshold=thr,
                    four_group_rejection_threshold=thr)
    return data, gdq, gain, rnoise, settings


@pytest.mark.parametrize("block", range(4))
def test_detection_thresholds_to_the_last_bit(block):
    """The threshold set to one of stcal's own ratios (or one ulp below): any difference
    in the ratio's rounding (float32 ``e_jump``, float32 stored medians after the first
    pass, the median's mean of two, sigma) would flip a decision."""
    rng = np.random.default_rng(2000 + block)
    done = 0
    while done < 150:
        case = _knife_edge_case(rng)
        if case is not None:
            _check(*case)
            done += 1


@pytest.mark.parametrize("block", range(2))
def test_neighbour_thresholds_to_the_last_bit(block):
    """min/max_jump_to_flag_neighbors set to a detected jump's own ratio (or one ulp
    beside it): strict comparisons and the signed median/sigma to the bit."""
    rng = np.random.default_rng(3000 + block)
    done = 0
    while done < 150:
        data, gdq, gain, rnoise, settings = _random_case(rng, ny=int(rng.integers(2, 6)),
                                                         nx=int(rng.integers(2, 6)))
        settings["flag_4_neighbors"] = True
        plane_dnu = _plane_dnu(gdq)
        if kj.regime(plane_dnu, settings, FLAGS) == "skip":
            continue
        det = kj.detect_tile(data, gdq, gain, rnoise, plane_dnu, settings, FLAGS)
        fd, med, sig, _, _ = _stats(data, gdq, gain, rnoise, settings)
        with _quiet():
            ratios = np.abs(fd - med) / sig
        ratios = ratios[(det[:, 1:] & JUMP != 0) & np.isfinite(ratios)]
        if not ratios.size:
            continue
        r = float(rng.choice(ratios))
        nudge = rng.choice([-np.inf, np.inf, 0])
        r = float(np.nextafter(r, nudge)) if nudge else r
        if rng.random() < 0.5:
            settings.update(min_jump_to_flag_neighbors=r, max_jump_to_flag_neighbors=1e30)
        else:
            settings.update(min_jump_to_flag_neighbors=0.0, max_jump_to_flag_neighbors=r)
        _check(data, gdq, gain, rnoise, settings)
        done += 1


def test_sorting_networks_sort():
    """The kernel's sorting (networks up to 32 values, then ``ndarray.sort``), per pixel
    and by columns, on values with ties, zeros of both signs and infinities."""
    from detflow.kernels import _jump_numba as nb

    rng = np.random.default_rng(9)
    for n in range(0, 41):
        for _ in range(20):
            vals = rng.choice([-np.inf, -1.5, -0.0, 0.0, 2.0, 2.5, np.inf], n)
            vals = np.where(rng.random(n) < 0.5, rng.normal(0, 10, n), vals)
            buf = np.concatenate([vals, [7.0]])
            nb._sort(buf, n)
            np.testing.assert_array_equal(buf[:n], np.sort(vals))
            assert buf[n] == 7.0
            if n <= nb._NETWORK_MAX:
                cols = np.tile(vals[:, None], (1, 3))
                nb._sort_columns(cols, n, 1, 3)
                np.testing.assert_array_equal(cols[:, 1], np.sort(vals))
                np.testing.assert_array_equal(cols[:, 0], vals)


def test_plane_counts_match_stcal():
    """The regime decision (ported from stcal's ``find_crs``) equals stcal's own
    ``groups_all_set_dnu`` / ``check_group_counts`` / ``check_sigma_clip_groups`` on a
    stand-in pixel whose planes are DO_NOT_USE where the exposure's are."""
    from stcal.jump import twopoint_difference as twopt

    rng = np.random.default_rng(11)
    for _ in range(400):
        nints, ngroups = int(rng.integers(1, 130)), int(rng.integers(1, 12))
        plane_dnu = rng.random((nints, ngroups)) < rng.choice([0.0, 0.1, 0.5, 0.9])
        settings = kj.jump_settings({**STEP.defaults(),
                                     "only_use_ints": bool(rng.random() < 0.5),
                                     "minimum_sigclip_groups": int(rng.integers(1, 150))},
                                    1, 10.0)
        tp = kj._twopoint_params(settings, FLAGS)
        stand_in = np.where(plane_dnu, np.uint8(DNU), np.uint8(0))[:, :, None, None]
        (min_groups, total, min_diffs, sig_fails, noise_fails,
         total_sigclip) = twopt.groups_all_set_dnu(nints, ngroups, stand_in, tp)
        sig_fails |= bool(twopt.check_group_counts(nints, total_sigclip, tp))
        noise_fails |= min_groups < tp.minimum_groups
        skip = bool(noise_fails and sig_fails)
        got = kj.plane_counts(plane_dnu, settings, FLAGS)
        assert got == {"min_usable_groups": min_groups, "total_groups": total,
                       "min_usable_diffs": min_diffs, "skip": skip,
                       "sigma_clip": (not skip) and bool(
                           twopt.check_sigma_clip_groups(nints, total, tp))}
