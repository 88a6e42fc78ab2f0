"""gain_scale equals jwst 3.0.0's GainScaleStep on rate and rateints products, and is lazy.

The simulated NIRCam exposures have no GAINFACT (jwst skips gain_scale, and so do we);
small NIRSpec-like rate products with a GAIN file whose header has GAINFACT exercise the
scaling, with an exact factor (2.0) and an inexact one (1.3: the float32 rounding of
``g`` for SCI/ERR and of ``g**2`` for the variances must be jwst's).
"""

import numpy as np
import pytest
from lazycheck import no_compute

from detflow.io.products import open_product
from detflow.pipeline.builder import apply_step

pytestmark = pytest.mark.jwst

NY, NX = 32, 48
VARIABLES = ("data", "err", "var_poisson", "var_rnoise", "dq")


def _meta(model):
    model.meta.instrument.name, model.meta.instrument.detector = "NIRSPEC", "NRS1"
    model.meta.subarray.name = "FULL"
    model.meta.subarray.xstart = model.meta.subarray.ystart = 1
    model.meta.subarray.xsize, model.meta.subarray.ysize = NX, NY


def _rate_file(path, *, ints=None, gain_factor=None):
    """A small rate (ints=None) or rateints product with random values and NaNs."""
    from stdatamodels.jwst import datamodels as dm

    rng = np.random.default_rng(11)
    shape = (NY, NX) if ints is None else (ints, NY, NX)
    arrays = {
        "data": rng.normal(3.0, 2.0, shape).astype(np.float32),
        "err": rng.uniform(0.1, 1.0, shape).astype(np.float32),
        "var_poisson": rng.uniform(0.01, 1.0, shape).astype(np.float32),
        "var_rnoise": rng.uniform(0.01, 1.0, shape).astype(np.float32),
        "dq": rng.integers(0, 4, shape).astype(np.uint32),
    }
    arrays["data"][..., 3, 4] = np.nan
    model = (dm.ImageModel if ints is None else dm.CubeModel)(**arrays)
    _meta(model)
    model.meta.exposure.type = "NRS_FIXEDSLIT"
    model.meta.exposure.readpatt = "NRSRAPID"
    if gain_factor is not None:
        model.meta.exposure.gain_factor = gain_factor
    model.save(str(path))
    model.close()
    return str(path)


def _gain_file(path, gain_factor):
    from stdatamodels.jwst import datamodels as dm

    model = dm.GainModel(data=np.full((NY, NX), 1.1, np.float32))
    _meta(model)
    model.meta.reftype = "GAIN"
    model.meta.author = model.meta.pedigree = "test"
    model.meta.description = "gain with GAINFACT"
    model.meta.useafter = "2022-01-01T00:00:00"
    model.meta.telescope = "JWST"
    if gain_factor is not None:
        model.meta.exposure.gain_factor = gain_factor
    model.save(str(path))
    model.close()
    return str(path)


def _run_both(product, gain, tmp_path):
    from jwst.gain_scale import GainScaleStep
    from jwst_oracle import crds_environment, offline_crds

    with crds_environment(offline_crds(tmp_path / "crds")):
        theirs = GainScaleStep.call(product, override_gain=gain)
    ours = apply_step("gain_scale", open_product(product), {"override_gain": gain}).compute()
    return ours, theirs


@pytest.mark.parametrize("ints", [None, 3], ids=["rate", "rateints"])
@pytest.mark.parametrize("ref_factor, model_factor", [
    (2.0, None),  # GAINFACT from the GAIN file (NIRSpec-like)
    (1.3, None),  # inexact factor: float32(g) for SCI/ERR, float32(g**2) for variances
    (None, 1.7),  # ramp_fit already copied GAINFACT into the product (GAINFACT keyword)
    (2.0, 1.7),  # the product's factor wins over the file's
    (None, None),  # no GAINFACT anywhere: SKIPPED
])
def test_gain_scale_matches_jwst(ints, ref_factor, model_factor, tmp_path):
    product = _rate_file(tmp_path / "jw01234001001_01101_00001_nrs1_rate.fits", ints=ints,
                         gain_factor=model_factor)
    gain = _gain_file(tmp_path / "jwst_nirspec_gain_test.fits", ref_factor)
    ours, theirs = _run_both(product, gain, tmp_path)
    status = theirs.meta.cal_step.gain_scale
    assert status == ("SKIPPED" if ref_factor is None and model_factor is None else "COMPLETE")
    assert ours.attrs["cal_step"]["gain_scale"] == status
    for name in VARIABLES:
        mine = ours[name].values
        expected = getattr(theirs, "data" if name == "data" else name)
        assert mine.dtype == expected.dtype.newbyteorder("=")
        # bit-identical (NaN in the same places)
        np.testing.assert_array_equal(mine, expected, err_msg=name)
    if status == "COMPLETE":
        assert ours.attrs["gain_factor"] == theirs.meta.exposure.gain_factor
        before = open_product(product)
        assert not np.array_equal(ours["var_rnoise"].values, before["var_rnoise"].values)
    theirs.close()


def test_gain_scale_is_lazy_and_chunk_independent(tmp_path):
    product = _rate_file(tmp_path / "jw01234001001_01101_00001_nrs1_rate.fits", ints=3)
    gain = _gain_file(tmp_path / "jwst_nirspec_gain_test.fits", 1.3)

    with no_compute():
        lazy = apply_step("gain_scale", open_product(product), {"override_gain": gain})
    a = lazy.compute()
    b = apply_step("gain_scale", open_product(product, chunks=(1, 7, 5)),
                   {"override_gain": gain}).compute()
    for name in VARIABLES:
        np.testing.assert_array_equal(a[name].values, b[name].values)


@pytest.mark.parametrize("which", ["sim_nircam_sub640", "sim_nircam_bright2"])
def test_gain_scale_on_simulated_rates_matches_jwst(which, jwst_steps):
    """The simulated GAIN files have no GAINFACT: jwst skips both rate and rateints."""
    from stdatamodels.jwst import datamodels as dm

    sim, products = jwst_steps(which)
    gain = str(sim.refs["GAIN"])
    for suffix in ("rate", "rateints"):
        ours = apply_step("gain_scale", open_product(products[suffix]),
                          {"override_gain": gain}).compute()
        with dm.open(str(products[suffix])) as theirs:
            assert theirs.meta.cal_step.gain_scale == "SKIPPED"
            np.testing.assert_array_equal(ours["data"].values, theirs.data)
        assert ours.attrs["cal_step"]["gain_scale"] == "SKIPPED"
