"""The compiled group-by-group linearity correction equals stcal's
``linearity_correction`` (what jwst 3.0.0 calls) bit for bit on random tiles: NaN and
zero linear coefficients, NO_LIN_CORR reference flags, SATURATED groups, 2 to 6
coefficients, several integrations."""

import numpy as np
import pytest
from stcal.linearity import linearity as stcal_linearity

from detflow.kernels.linearity import linearity_ramp

SAT, NO_LIN = 2, 2**20
SCALES = np.array([10, 1, 1e-6, 1e-11, 1e-15, 1e-20])


@pytest.mark.parametrize("seed", range(30))
def test_linearity_ramp_equals_stcal(seed):
    rng = np.random.default_rng(seed)
    nints, ngroups = int(rng.integers(1, 3)), int(rng.integers(1, 6))
    ny, nx = int(rng.integers(1, 30)), int(rng.integers(1, 30))
    ncoeffs = int(rng.integers(2, 7))  # stcal's benign coefficients need at least 2
    data = rng.uniform(-100, 60000, (nints, ngroups, ny, nx)).astype(np.float32)
    gdq = np.where(rng.random(data.shape) < 0.2, SAT, 0).astype(np.uint8)
    coeffs = (rng.normal(size=(ncoeffs, ny, nx))
              * SCALES[:ncoeffs, None, None]).astype(np.float32)
    coeffs[rng.random(coeffs.shape) < 0.03] = np.nan
    coeffs[1][rng.random((ny, nx)) < 0.03] = 0
    lin_dq = np.where(rng.random((ny, nx)) < 0.05, NO_LIN, 0).astype(np.uint32)
    expected, _, _ = stcal_linearity.linearity_correction(
        data.copy(), gdq.copy(), np.zeros((ny, nx), np.uint32), coeffs.copy(), lin_dq.copy(),
        {"SATURATED": SAT, "NO_LIN_CORR": NO_LIN})
    before = data.copy()
    got = linearity_ramp(data, gdq, lin_dq, coeffs, saturated=SAT, no_lin_corr=NO_LIN)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got.view(np.uint32),
                                  np.asarray(expected, np.float32).view(np.uint32))
    np.testing.assert_array_equal(data, before)  # input untouched
