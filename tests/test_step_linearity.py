"""linearity equals jwst 3.0.0's LinearityStep (stcal 1.20), and is lazy.

sim_nircam_sub640 and sim_nircam_tso (RAPID) take the classic group-by-group path;
sim_nircam_bright2 (BRIGHT2, NFRAMES=2, LINEARITY file with INV_COEFFS) takes stcal's
read-level path, and has a ZEROFRAME. The simulated LINEARITY files have NaN coefficients
flagged NO_LIN_CORR; a modified file adds unflagged NaN and zero linear terms.
"""

import numpy as np
import pytest
from lazycheck import no_compute
from stepcheck import assert_ramp_matches, run_detflow_step, step_input

from detflow import dqflags
from detflow.io.exposure import open_exposure
from detflow.kernels import linearity as kernel
from detflow.kernels.readout import read_pattern
from detflow.pipeline.builder import apply_step

pytestmark = pytest.mark.jwst

SIMS = ["sim_nircam_sub640", "sim_nircam_tso", "sim_nircam_bright2"]


@pytest.mark.parametrize("which", SIMS)
def test_linearity_matches_jwst(which, jwst_steps):
    sim, products = jwst_steps(which)
    ours = run_detflow_step("linearity", step_input(products, "linearity"), sim)
    # bit-identical: stcal's own code runs on each tile, and it is per pixel
    assert_ramp_matches(ours, products["linearity"], max_ulp=0)
    assert ours.attrs["cal_step"]["linearity"] == "COMPLETE"
    read_level = ours.attrs["provenance"][-1]["read_level"]
    assert read_level == (which == "sim_nircam_bright2")
    if which == "sim_nircam_bright2":
        from stdatamodels.jwst import datamodels as dm

        with dm.RampModel(str(products["linearity"])) as theirs:
            np.testing.assert_array_equal(ours["zeroframe"].values, theirs.zeroframe)
            assert (theirs.zeroframe == 0).any()  # the zeros-stay-zero rule is exercised


def _bad_linearity(src, dst):
    """A copy of a LINEARITY file with unflagged NaN coefficients, zero linear terms (in
    COEFFS and INV_COEFFS) and extra NO_LIN_CORR flags."""
    from stdatamodels.jwst import datamodels as dm

    rng = np.random.default_rng(5)
    with dm.LinearityModel(str(src)) as m:
        shape = m.coeffs.shape[1:]
        for arr, value, plane in ((m.coeffs, np.nan, 2), (m.coeffs, 0.0, 1),
                                  (m.inv_coeffs, np.nan, 3), (m.inv_coeffs, 0.0, 1)):
            arr[plane][rng.random(shape) < 0.01] = value
        m.dq[rng.random(shape) < 0.01] |= dqflags.NO_LIN_CORR
        m.save(str(dst))
    return dst


@pytest.mark.parametrize("which", ["sim_nircam_sub640", "sim_nircam_bright2"])
def test_linearity_bad_coefficients_match_jwst(which, jwst_steps, tmp_path):
    from jwst.linearity import LinearityStep
    from jwst_oracle import crds_environment, offline_crds

    sim, products = jwst_steps(which)
    lin = _bad_linearity(sim.refs["LINEARITY"], tmp_path / "jwst_nircam_linearity_bad.fits")
    src = step_input(products, "linearity")
    with crds_environment(offline_crds(tmp_path / "crds")):
        theirs = LinearityStep.call(str(src), override_linearity=str(lin))
    ours = apply_step("linearity", open_exposure(src), {"override_linearity": str(lin)})
    ours = ours.compute()
    np.testing.assert_array_equal(ours["pixeldq"].values, theirs.pixeldq)
    np.testing.assert_array_equal(ours["groupdq"].values, theirs.groupdq)
    np.testing.assert_array_equal(ours["data"].values, theirs.data)
    if which == "sim_nircam_bright2":
        np.testing.assert_array_equal(ours["zeroframe"].values, theirs.zeroframe)
    flagged = ((ours["pixeldq"].values & dqflags.NO_LIN_CORR) != 0).mean()
    assert flagged > (0.04 if which == "sim_nircam_bright2" else 0.025)
    theirs.close()


def test_linearity_is_lazy_and_chunk_independent(sim_nircam_bright2):
    overrides = {"override_linearity": str(sim_nircam_bright2.refs["LINEARITY"])}

    with no_compute():
        lazy = apply_step("linearity", open_exposure(sim_nircam_bright2.uncal), overrides)
    a = lazy.compute()
    for chunks in ({"y": 100, "x": 77}, {"y": 100, "x": 77, "group": 4}, {"y": 65, "x": 1}):
        if chunks["x"] == 1:  # a column-wide tile: check a band of columns only (speed)
            ds = open_exposure(sim_nircam_bright2.uncal, chunks=chunks).isel(x=slice(30, 34))
            ref = a.isel(x=slice(30, 34))
        else:
            ds, ref = open_exposure(sim_nircam_bright2.uncal, chunks=chunks), a
        b = apply_step("linearity", ds, overrides).compute()
        for name in ("pixeldq", "groupdq", "data", "zeroframe"):
            np.testing.assert_array_equal(ref[name].values, b[name].values, err_msg=name)


def test_one_pixel_tiles_equal_full_frame_read_level():
    """A one-pixel tile gives the full-frame numbers on the read-level path.

    stcal averages the reads with np.mean(axis=0), which NumPy sums pairwise for a single
    pixel (8+ reads) instead of read after read; the kernel widens one-column tiles so
    every block stcal forms has two pixels or more. Those means are float64 and the result
    is rounded to float32, so the difference would almost never show: this test guards
    the equality, it cannot show the widening is needed."""
    rng = np.random.default_rng(3)
    nframes, ngroups, ny, nx = 8, 5, 3, 6
    coeffs = np.zeros((5, ny, nx), np.float32)
    coeffs[1] = 1
    coeffs[2] = rng.uniform(1e-6, 3e-6, (ny, nx))
    coeffs[3] = rng.uniform(1e-11, 3e-11, (ny, nx))
    inv = np.zeros((5, ny, nx), np.float32)
    inv[1] = 1
    inv[2] = -coeffs[2]
    inv[3] = 2 * coeffs[2] ** 2 - coeffs[3]
    data = np.cumsum(rng.uniform(500, 3000, (1, ngroups, ny, nx)), axis=1).astype(np.float32)
    gdq = np.zeros(data.shape, np.uint8)
    gdq[0, 4, 1, 2] = dqflags.SATURATED
    lin_dq = np.zeros((ny, nx), np.uint32)
    pattern = read_pattern(ngroups=ngroups, nframes=nframes)
    bits = {"saturated": dqflags.SATURATED, "no_lin_corr": dqflags.NO_LIN_CORR}
    full = kernel.linearity_ramp(data, gdq, lin_dq, coeffs, inv, pattern, **bits)
    before = data.copy()
    for y in range(ny):
        for x in range(nx):
            one = kernel.linearity_ramp(data[..., y:y + 1, x:x + 1], gdq[..., y:y + 1, x:x + 1],
                                        lin_dq[y:y + 1, x:x + 1], coeffs[:, y:y + 1, x:x + 1],
                                        inv[:, y:y + 1, x:x + 1], pattern, **bits)
            np.testing.assert_array_equal(one[..., 0, 0], full[..., y, x])
    np.testing.assert_array_equal(data, before)  # inputs untouched
    assert not np.array_equal(full, data)


def test_linearity_na_is_skipped(sim_nircam_sub640):
    ds = open_exposure(sim_nircam_sub640.uncal)
    out = apply_step("linearity", ds, {"override_linearity": "N/A"})
    assert out.attrs["cal_step"]["linearity"] == "SKIPPED"
    np.testing.assert_array_equal(out["data"].values, ds["data"].values)
