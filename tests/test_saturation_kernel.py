"""The compiled saturation kernel equals stcal's ``flag_saturated_pixels`` (the function
jwst 3.0.0 calls) bit for bit, on random tiles that exercise every branch: thresholds
with NaN and NO_SAT_CHECK, values at and below zero, growth by 0-2 pixels at the tile
edges, the backward pass of frame-averaged read patterns, and the group-2 check with and
without a superbias."""

import numpy as np
import pytest
from stcal.saturation.saturation import flag_saturated_pixels

from detflow import dqflags
from detflow.kernels import saturation as ks
from detflow.kernels.readout import read_pattern

FLAGS = {k: getattr(dqflags, k) for k in ("DO_NOT_USE", "SATURATED", "AD_FLOOR",
                                          "NO_SAT_CHECK")}


def _case(rng, nints, ngroups, ny, nx):
    thresh = rng.uniform(800, 1200, (ny, nx)).astype(np.float32)
    thresh[rng.random((ny, nx)) < 0.05] = np.nan
    sat_dq = np.where(rng.random((ny, nx)) < 0.05, FLAGS["NO_SAT_CHECK"], 0).astype(np.uint32)
    sat_dq |= np.where(rng.random((ny, nx)) < 0.05, 1, 0).astype(np.uint32)
    rate = rng.uniform(-50, 400, (ny, nx)).astype(np.float32)
    start = rng.uniform(-20, 300, (ny, nx)).astype(np.float32)
    grp = np.arange(ngroups, dtype=np.float32)[None, :, None, None]
    data = (start + rate * grp + rng.normal(0, 5, (nints, ngroups, ny, nx))).astype(np.float32)
    data[rng.random(data.shape) < 0.01] = 0.0
    data[rng.random(data.shape) < 0.01] = 70000.0
    gdq = np.where(rng.random(data.shape) < 0.02, FLAGS["DO_NOT_USE"], 0).astype(np.uint8)
    bias = rng.uniform(0, 300, (ny, nx)).astype(np.float32)
    return data, gdq, thresh, sat_dq, bias


@pytest.mark.parametrize("seed", range(40))
def test_flag_saturation_groups_equals_stcal(seed):
    rng = np.random.default_rng(seed)
    nints, ngroups = int(rng.integers(1, 3)), int(rng.integers(1, 7))
    n = seed % 3
    # stcal's edge loop indexes rows up to 2n: it needs planes of at least 2n+1 pixels
    ny, nx = int(rng.integers(2 * n + 1, 40)), int(rng.integers(2 * n + 1, 40))
    data, gdq, thresh, sat_dq, bias = _case(rng, nints, ngroups, ny, nx)
    nframes = (1, 2, 4, 5)[seed % 4]
    pattern = None if seed % 5 == 4 else read_pattern(ngroups=ngroups, nframes=nframes)
    use_bias = seed % 2 == 0
    expected, _, _ = flag_saturated_pixels(
        data.copy(), gdq.copy(), np.zeros((ny, nx), np.uint32), thresh.copy(), sat_dq.copy(),
        ks.ATOD_LIMIT, FLAGS, n_pix_grow_sat=n, read_pattern=pattern, zframe=None,
        bias=bias.copy() if use_bias else None)
    inputs = [a.copy() for a in (data, gdq, thresh, sat_dq, bias)]
    got = ks.flag_saturation_groups(data, gdq, thresh, sat_dq, bias if use_bias else None,
                                    n_pix_grow_sat=n, read_pattern=pattern, dqflags=FLAGS)
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.uint8
    for before, after in zip(inputs, (data, gdq, thresh, sat_dq, bias), strict=True):
        np.testing.assert_array_equal(before, after)  # inputs untouched
    # the case is not trivial: something saturated and something grew or was diluted
    assert np.any(got & FLAGS["SATURATED"])
