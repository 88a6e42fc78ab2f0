"""The numba ramp fitter equals stcal 1.20's OLS_C C extension to the bit.

:func:`detflow.kernels.ramp_fit.fit_tile` and the oracle
``ramp_fit_oracle.fit_tile_stcal`` (stcal's ``ols_ramp_fit_single`` on the same tile)
must give the same rate, rateints and optional-output arrays: compared as integers (``view``), so
every float -- NaN payloads and signed zeros included -- and every DQ bit is identical.

The tiles are random but built to reach every branch of the C: clean ramps of every
signal-to-noise power (the kernel's vectorised "plain pixel" path), jumps (segments
starting at the JUMP group, one- and two-group segments, pruning), saturation from
group 0 or later, DO_NOT_USE groups, PERSISTENCE, CHARGELOSS (the read-noise
recomputation from the original group DQ), other group bits, NaN and infinite data,
bad or extreme gain and read noise (NO_GAIN_VALUE, the 1e6 variance threshold), dark
current, pixel DQ, ZEROFRAME and group-0-only ramps (suppress_one_group False),
several integrations, nframes/groupgap/drop_frames1 timing, 1, 2, long (> 32 groups:
the generic path; > 24 differences: the median by sorting) and very long (> 256 groups:
weights not tabulated) ramps, and MIRI's dropped groups.
"""

import subprocess
import sys

import numpy as np
import pytest
from ramp_fit_oracle import fit_tile_stcal

from detflow import dqflags
from detflow.kernels import ramp_fit as kr

FLAGS = {name: getattr(dqflags, name) for name in kr.FLAG_NAMES}
DNU, SAT, JUMP = dqflags.DO_NOT_USE, dqflags.SATURATED, dqflags.JUMP_DET
PERS, CHG = dqflags.PERSISTENCE, dqflags.CHARGELOSS
OTHER = (dqflags.DROPOUT, dqflags.OUTLIER, dqflags.AD_FLOOR)

META = {"instrument": "NIRCAM", "frame_time": 10.73676, "group_time": 21.47352,
        "groupgap": 0, "nframes": 1, "drop_frames1": None}


def _tile(rng, nints, ngroups, ny=23, nx=31, *, zeroframe=True, dark=True, group_time=21.47,
          bad_fraction=1.0):
    """Random ramps, group DQ, pixel DQ, gain, read noise, dark and ZEROFRAME.

    ``bad_fraction`` scales the probability of every kind of flag or bad value (0: only
    clean ramps, the plain-pixel path).
    """
    shape = (nints, ngroups, ny, nx)
    f = bad_fraction

    def where(p, size=(ny, nx)):
        return rng.random(size) < p * f

    rate = (rng.choice([0.0, 0.05, 0.5, 3.0, 30.0, 300.0, 3000.0, -2.0], (ny, nx))
            * rng.uniform(0.5, 1.5, (ny, nx)))
    t = (np.arange(ngroups) + 1.0) * group_time
    data = (rng.uniform(-50, 200, (ny, nx))[None, None] + rate[None, None] * t[None, :, None,
                                                                                 None]
            + rng.normal(0.0, rng.uniform(1, 20), shape))
    gdq = np.zeros(shape, dtype=np.uint8)
    # jumps: a step in the data from the flagged group on
    jump = rng.random(shape) < 0.04 * f
    jump[:, 0] = False
    data += np.cumsum(jump * rng.uniform(-200, 3000, shape), axis=1)
    gdq[jump] |= np.uint8(JUMP)
    gdq[jump & (rng.random(shape) < 0.1)] |= np.uint8(DNU)
    # saturation from a random group on (group 0 too), sometimes with DO_NOT_USE
    first_sat = rng.integers(0, ngroups, (nints, ny, nx))
    sat = (np.arange(ngroups)[None, :, None, None] >= first_sat[:, None]) & where(
        0.08, (nints, 1, ny, nx))
    gdq[sat] |= np.uint8(SAT)
    gdq[sat & (rng.random(shape) < 0.3)] |= np.uint8(DNU)
    data[sat] += 6.0e4
    # scattered DO_NOT_USE, PERSISTENCE, other bits
    gdq[rng.random(shape) < 0.03 * f] |= np.uint8(DNU)
    gdq[rng.random(shape) < 0.02 * f] |= np.uint8(PERS)
    for bit in OTHER:
        gdq[rng.random(shape) < 0.005 * f] |= np.uint8(bit)
    # charge migration: CHARGELOSS|DNU from a group on; sometimes CHARGELOSS alone
    first_chg = rng.integers(1, max(ngroups, 2), (nints, ny, nx))
    chg = (np.arange(ngroups)[None, :, None, None] >= first_chg[:, None]) & where(
        0.03, (nints, 1, ny, nx))
    gdq[chg] |= np.uint8(CHG | DNU)
    gdq[rng.random(shape) < 0.005 * f] |= np.uint8(CHG)
    # whole ramps: all DO_NOT_USE, all SATURATED, only group 0 good, only one group good
    for integ in range(nints):
        gdq[integ, :, where(0.01)] |= np.uint8(DNU)
        gdq[integ, :, where(0.01)] |= np.uint8(SAT)
        sel = where(0.02)
        gdq[integ, 1:, sel] |= np.uint8(SAT)
        sel = where(0.02)
        keep = rng.integers(0, ngroups)
        mask = np.ones(ngroups, bool)
        mask[keep] = False
        gdq[integ, mask[:, None, None] & sel[None]] |= np.uint8(DNU)
    # NaN and infinite data in unflagged groups
    data[rng.random(shape) < 0.005 * f] = np.nan
    data[rng.random(shape) < 0.001 * f] = np.inf
    data = data.astype(np.float32)

    pdq = np.where(where(0.08), rng.choice(
        [DNU, SAT, JUMP, dqflags.REFERENCE_PIXEL, dqflags.NO_GAIN_VALUE, dqflags.HOT,
         DNU | dqflags.HOT, dqflags.UNRELIABLE_SLOPE], (ny, nx)), 0).astype(np.uint32)
    gain = rng.uniform(0.5, 3.0, (ny, nx))
    for value, p in ((0.0, 0.02), (-1.5, 0.02), (np.nan, 0.02), (1e-4, 0.02), (1e4, 0.01)):
        gain[where(p)] = value
    rnoise = rng.uniform(3.0, 15.0, (ny, nx))
    for value, p in ((0.0, 0.02), (np.nan, 0.01), (1e5, 0.01)):
        rnoise[where(p)] = value
    dk = (rng.uniform(-0.05, 0.5, (ny, nx)) if dark else np.zeros((ny, nx)))
    dk[where(0.005)] = np.nan
    zf = None
    if zeroframe:
        zf = rng.normal(100.0, 30.0, (nints, ny, nx))
        zf[rng.random(zf.shape) < 0.1] = 0.0
        zf[rng.random(zf.shape) < 0.02] = np.nan
        zf = zf.astype(np.float32)
    return (data, gdq, pdq, gain.astype(np.float32), rnoise.astype(np.float32),
            dk.astype(np.float32), zf)


def _as_bits(arr):
    arr = np.asarray(arr)
    if arr.dtype.kind == "f":
        return arr.view(np.dtype(f"u{arr.dtype.itemsize}"))
    return arr


def _nan_blind_bits(arr):
    """The integer view, with every NaN made one NaN.

    Only the sign (and payload) of a NaN may differ, and only where two NaNs of
    different sign meet in one operation -- e.g. a segment slope NaN from NaN data
    (+NaN, as NumPy writes NaN) added to one NaN from ``inf - inf`` (the x86 "default
    NaN", -NaN) when the read noise is 0. x86 returns the first operand's NaN then, and
    which operand comes first is the compiler's choice for commutative ``+``/``*``: gcc
    (the C extension, SSE2 two-operand code) and LLVM (numba, AVX three-operand code)
    do not always pick the same one. The NaN positions and every other bit are
    compared exactly.
    """
    bits = _as_bits(arr).copy()
    arr = np.asarray(arr)
    if arr.dtype.kind == "f":
        bits[np.isnan(arr)] = _as_bits(np.array(np.nan, dtype=arr.dtype))
    return bits


def _assert_identical(ours, theirs, what="", *, strict=False):
    """Every array of two :func:`fit_tile` results equal as integers; NaN: see
    :func:`_nan_blind_bits`, unless ``strict`` (tiles without colliding NaNs)."""
    bits = _as_bits if strict else _nan_blind_bits
    assert ours.keys() == theirs.keys()
    for product in ("rate", "rateints", "fitopt"):
        if product not in theirs:
            continue
        for name, arr in theirs[product].items():
            mine = np.asarray(ours[product][name])
            assert mine.dtype == np.asarray(arr).dtype, (what, product, name)
            np.testing.assert_array_equal(bits(mine), bits(arr),
                                          err_msg=f"{what} {product} {name}")
    for key in ("nsegs", "ncrs"):
        if key in theirs:
            assert ours[key] == theirs[key], (what, key)


def _both(args, meta, **kwargs):
    ours = kr.fit_tile(*args, meta, FLAGS, **kwargs)
    theirs = fit_tile_stcal(*args, meta, FLAGS, **kwargs)
    return ours, theirs


CONFIGS = [
    # nints, ngroups, nframes, groupgap, drop_frames1, suppress, save_opt, zeroframe, dark
    (1, 10, 1, 0, None, True, False, False, False),
    (2, 8, 1, 0, None, True, False, True, True),
    (3, 6, 4, 1, 1, True, False, True, True),
    (2, 5, 2, 0, None, False, False, True, True),
    (1, 10, 1, 0, None, False, True, True, False),
    (2, 7, 2, 2, 2, True, True, True, True),
    (3, 4, 1, 0, 0, False, True, True, True),
    (2, 3, 1, 0, None, True, False, False, True),
    (2, 3, 8, 0, 1, False, True, True, True),
    (1, 2, 1, 0, None, True, True, True, True),
    (2, 2, 2, 1, None, False, False, True, True),
    (2, 1, 1, 0, None, False, False, True, True),
    (1, 1, 4, 0, 3, False, True, True, False),
    (2, 12, 1, 0, None, True, False, True, True),
    (1, 32, 1, 0, None, True, False, False, True),
    (1, 33, 1, 0, None, False, True, True, True),
    (2, 40, 2, 1, None, True, False, True, True),
]


@pytest.mark.parametrize("config", CONFIGS, ids=[
    "x".join(str(v) for v in c[:2]) + f"-nf{c[2]}-gap{c[3]}-drop{c[4]}-sup{int(c[5])}"
    f"-opt{int(c[6])}-zf{int(c[7])}-dk{int(c[8])}" for c in CONFIGS])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_numba_equals_stcal_random_tiles(config, seed):
    nints, ngroups, nframes, gap, drop, suppress, save_opt, zeroframe, dark = config
    rng = np.random.default_rng(1000 * seed + ngroups * 7 + nints)
    group_time = float(rng.uniform(1.0, 50.0))
    frame_time = group_time / (nframes + gap)
    meta = dict(META, nframes=nframes, groupgap=gap, drop_frames1=drop,
                group_time=group_time, frame_time=frame_time)
    args = _tile(rng, nints, ngroups, zeroframe=zeroframe, dark=dark, group_time=group_time)
    ours, theirs = _both(args, meta, save_opt=save_opt,
                         suppress_one_group=suppress and ngroups != 1)
    _assert_identical(ours, theirs, str(config))


@pytest.mark.parametrize("ngroups", [3, 4, 10, 20])
@pytest.mark.parametrize("nints", [1, 3])
def test_plain_pixels_every_power(ngroups, nints):
    """Clean ramps only (the vectorised path), signals from noise to ~1e6 e so every
    S/N power of the optimal weighting occurs, and a few flagged pixels between them."""
    rng = np.random.default_rng(ngroups + 100 * nints)
    args = list(_tile(rng, nints, ngroups, ny=60, nx=67, bad_fraction=0.0, dark=True))
    gain = args[3]
    rnoise = args[4]
    rate = np.exp(rng.uniform(np.log(1e-3), np.log(3e3), gain.shape)).astype(np.float32)
    args[0] = (args[0] + rate[None, None] * np.arange(ngroups)[None, :, None, None]
               * np.float32(10.0)).astype(np.float32)
    gsig = rate * gain * 10.0 * (ngroups - 1)
    snr = gsig / np.sqrt((rnoise * gain / np.sqrt(2.0)) ** 2 + gsig)
    for lo, hi in ((0, 5), (5, 10), (10, 20), (20, 50), (50, 100), (100, np.inf)):
        assert ((snr >= lo) & (snr < hi)).sum() > 10, (lo, hi)
    args[1][:, :, ::17, ::13] = np.uint8(JUMP)
    ours, theirs = _both(tuple(args), dict(META, group_time=10.0, frame_time=10.0))
    _assert_identical(ours, theirs, strict=True)


def test_very_long_ramps():
    """More groups than the weight table holds, and the sorting median."""
    rng = np.random.default_rng(7)
    args = _tile(rng, 1, 300, ny=3, nx=4, group_time=2.0)
    for save_opt in (False, True):
        ours, theirs = _both(args, dict(META, group_time=2.0, frame_time=2.0),
                             save_opt=save_opt)
        _assert_identical(ours, theirs, f"save_opt={save_opt}", strict=True)


def test_special_ramps():
    """Hand-made ramps: one-group segments (stcal keeps the first, and counts them all
    in the optional output's segment planes), group 0 only, ZEROFRAME rescue, jump at
    the start of a segment, CHARGELOSS with and without DO_NOT_USE, PERSISTENCE-only
    groups, a JUMP|SATURATED group before a good one."""
    ngroups = 7
    patterns = [
        [0, DNU, 0, DNU, 0, DNU, 0],
        [0, DNU, DNU, DNU, DNU, DNU, DNU],
        [SAT] * 7,
        [DNU] * 7,
        [0, SAT, SAT, SAT, SAT, SAT, SAT],
        [0, 0, JUMP, 0, 0, JUMP, 0],
        [0, JUMP, JUMP, JUMP, 0, 0, 0],
        [0, 0, 0, CHG | DNU, CHG | DNU, CHG | DNU, CHG | DNU],
        [0, 0, CHG, 0, 0, CHG | DNU, 0],
        [PERS, PERS, 0, PERS, 0, 0, 0],
        [0, 0, JUMP | SAT, 0, 0, 0, 0],
        [0, 0, JUMP | PERS, 0, 0, 0, 0],
        [JUMP, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0],
        [DNU, 0, DNU, 0, DNU, 0, 0],
        [PERS, DNU, DNU, DNU, DNU, DNU, DNU],
    ]
    npat = len(patterns)
    gdq = np.zeros((2, ngroups, npat, 3), dtype=np.uint8)
    for i, pattern in enumerate(patterns):
        gdq[0, :, i, :] = np.array(pattern, dtype=np.uint8)[:, None]
        gdq[1, :, i, :] = np.array(patterns[(i + 3) % npat], dtype=np.uint8)[:, None]
    rng = np.random.default_rng(3)
    data = (np.arange(ngroups, dtype=np.float32)[None, :, None, None] * 250.0
            + rng.normal(0, 3, gdq.shape)).astype(np.float32)
    pdq = np.zeros((npat, 3), dtype=np.uint32)
    gain = np.full((npat, 3), 2.0, dtype=np.float32)
    rnoise = np.full((npat, 3), 7.0, dtype=np.float32)
    dark = np.full((npat, 3), 0.1, dtype=np.float32)
    zf = np.stack([np.full((npat, 3), v, dtype=np.float32) for v in (55.0, 0.0)])
    zf[:, :, 2] = np.nan
    meta = dict(META, nframes=2, group_time=21.0, frame_time=10.5, drop_frames1=1)
    for suppress in (True, False):
        for zeroframe in (zf, None):
            args = (data, gdq, pdq, gain, rnoise, dark, zeroframe)
            ours, theirs = _both(args, meta, save_opt=True, suppress_one_group=suppress)
            _assert_identical(ours, theirs, f"suppress={suppress}", strict=True)
    assert theirs["nsegs"] > 1


@pytest.mark.parametrize("dnu_groups", [
    (0,), (0, 1), (9,), (0, 9), (0, 1, 9), tuple(range(8)), tuple(range(9)),
    tuple(range(10)), (1,),
])
@pytest.mark.parametrize("suppress", [True, False])
def test_miri_dropped_groups(dnu_groups, suppress):
    """MIRI: leading/trailing groups DO_NOT_USE exposure-wide are dropped (the new first
    group's JUMP cleared); too few left: everything DO_NOT_USE."""
    rng = np.random.default_rng(len(dnu_groups))
    args = list(_tile(rng, 2, 10, ny=17, nx=19))
    gdq = args[1]
    gdq[:, list(dnu_groups)] |= np.uint8(DNU)
    gdq[:, 1:3, 3:9, 4:12] |= np.uint8(JUMP)
    group_all_dnu = ((gdq & DNU) != 0).all(axis=(0, 2, 3))
    meta = dict(META, instrument="MIRI", group_time=2.775, frame_time=2.775)
    for save_opt in (False, True):
        ours, theirs = _both(tuple(args), meta, save_opt=save_opt, suppress_one_group=suppress,
                             group_all_dnu=group_all_dnu)
        _assert_identical(ours, theirs, f"{dnu_groups} save_opt={save_opt}", strict=True)


def test_inputs_untouched_any_layout():
    """Big-endian, non-contiguous inputs give the same result; inputs are not modified."""
    rng = np.random.default_rng(11)
    args = _tile(rng, 2, 6, ny=20, nx=24)
    copies = [None if a is None else a.copy() for a in args]
    meta = dict(META, group_time=5.0, frame_time=5.0)
    ref = kr.fit_tile(*args, meta, FLAGS, save_opt=True)
    for a, c in zip(args, copies, strict=True):
        if a is not None:
            np.testing.assert_array_equal(_as_bits(a), _as_bits(c))
    swapped = [None if a is None else a.astype(a.dtype.newbyteorder(">")) for a in args]
    _assert_identical(kr.fit_tile(*swapped, meta, FLAGS, save_opt=True), ref, "big-endian")
    strided = [None if a is None else np.asfortranarray(a) for a in args]
    _assert_identical(kr.fit_tile(*strided, meta, FLAGS, save_opt=True), ref, "fortran")
    assert kr.fit_tile(*args, meta, FLAGS)["rate"]["dq"].dtype == np.uint32


def test_fast_path_does_not_import_stcal():
    """stcal (and its jump module's astropy/scipy imports) stays out of a process that
    only fits ramps with the numba kernel."""
    code = (
        "import sys, numpy as np\n"
        "from detflow import dqflags\n"
        "from detflow.kernels import ramp_fit as kr\n"
        "flags = {n: getattr(dqflags, n) for n in kr.FLAG_NAMES}\n"
        "meta = {'instrument': 'NIRCAM', 'frame_time': 10.7, 'group_time': 10.7,\n"
        "        'groupgap': 0, 'nframes': 1, 'drop_frames1': None}\n"
        "a = np.ones((1, 5, 3, 3), np.float32); o = np.ones((3, 3), np.float32)\n"
        "kr.fit_tile(a, np.zeros(a.shape, np.uint8), np.zeros((3, 3), np.uint32), o, o,\n"
        "            o * 0, None, meta, flags)\n"
        "assert not [m for m in sys.modules if m.startswith('stcal')], 'stcal imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("pattern, nan_group", [((0, 0, DNU, 0, 0, 0, 0), 1),
                                                 ((0, 0, 0, 0, DNU, 0, 0), 6)])
def test_nan_sign_where_two_nans_meet(pattern, nan_group):
    """The one known difference, pinned down: read noise 0 makes the 4-group segment's
    slope ``inf - inf`` (-NaN) and a NaN in the 2-group segment's data makes that one
    +NaN; the C sums ``slope/var_r`` over segments keeping the *later* segment's NaN,
    LLVM's code the earlier one's (see :func:`_nan_blind_bits`). Both are NaN."""
    data = (np.arange(7, dtype=np.float32) * 100.0)[None, :, None, None].copy()
    data[0, nan_group] = np.nan
    gdq = np.array(pattern, dtype=np.uint8)[None, :, None, None]
    one = np.ones((1, 1), dtype=np.float32)
    args = (data, gdq, np.zeros((1, 1), dtype=np.uint32), 2 * one, 0 * one, 0 * one, None)
    ours, theirs = _both(args, dict(META, group_time=10.0, frame_time=10.0),
                         suppress_one_group=False)
    _assert_identical(ours, theirs)
    a, b = ours["rateints"]["slope"], theirs["rateints"]["slope"]
    assert np.isnan(a).all() and np.isnan(b).all()
