"""ramp_fit equals jwst 3.0.0's RampFitStep (OLS_C, single core), and is lazy.

detflow is fed jwst's calibrated ramp (``*_ramp.fits``, the input jwst's ramp_fit had)
and must give jwst's ``*_rate.fits`` and ``*_rateints.fits``: DQ identical, SCI, ERR,
VAR_POISSON and VAR_RNOISE equal to the bit with NaN in the same places; with
``save_opt``, the ``*_fitopt.fits`` arrays too.
"""

import dask
import numpy as np
import pytest
from lazycheck import no_compute
from stepcheck import assert_float_equal, jwst_step_products

from detflow import dqflags
from detflow.errors import DetflowError
from detflow.io.exposure import open_exposure
from detflow.pipeline.builder import open_step_references
from detflow.steps.ramp_fit import STEP, trim_fitopt

pytestmark = pytest.mark.jwst

UNEVEN = {"y": 100, "x": 77}
FLOATS = (("data", "data"), ("err", "err"), ("var_poisson", "var_poisson"),
          ("var_rnoise", "var_rnoise"))
FITOPT = ("slope", "sigslope", "var_poisson", "var_rnoise", "yint", "sigyint", "pedestal",
          "weights", "crmag")


def _overrides(sim):
    return {"override_gain": str(sim.refs["GAIN"]),
            "override_readnoise": str(sim.refs["READNOISE"])}


def _fit(ds, sim, **params):
    """detflow's products for ``ds`` (lazy)."""
    params = STEP.check_params({**_overrides(sim), **params})
    refs, _ = open_step_references(STEP, ds, params)
    return STEP.apply(ds, refs, params)


def _computed(products):
    names = [k for k, v in products.items() if v is not None]
    return dict(zip(names, dask.compute(*[products[k] for k in names]), strict=True))


def _assert_product(ours, theirs, what):
    """A rate/rateints Dataset equals a jwst ImageModel/CubeModel."""
    np.testing.assert_array_equal(ours["dq"].values, theirs.dq, err_msg=f"{what} dq")
    for var, attr in FLOATS:
        # max_ulp=0: the same C code on the same float32 inputs, pixel by pixel
        assert_float_equal(ours[var].values, getattr(theirs, attr), max_ulp=0,
                           what=f"{what} {var}")


def _assert_files(ours, rate_path, rateints_path):
    from stdatamodels.jwst import datamodels as dm

    with dm.open(str(rate_path)) as rate, dm.open(str(rateints_path)) as rateints:
        _assert_product(ours["rate"], rate, "rate")
        _assert_product(ours["rateints"], rateints, "rateints")


def _assert_fitopt(ours, path):
    from stdatamodels.jwst import datamodels as dm

    ours = trim_fitopt(ours)
    with dm.RampFitOutputModel(str(path)) as theirs:
        for name in FITOPT:
            assert_float_equal(ours[name].values, getattr(theirs, name), max_ulp=0,
                               what=f"fitopt {name}")


@pytest.mark.parametrize("which", ["sim_nircam_sub640", "sim_nircam_tso", "sim_nircam_bright2"])
def test_ramp_fit_matches_jwst(which, jwst_steps):
    sim, products = jwst_steps(which)
    ours = _computed(_fit(open_exposure(products["ramp"], chunks=UNEVEN), sim))
    assert "fitopt" not in ours  # no save_opt: apply gave None
    _assert_files(ours, products["rate"], products["rateints"])
    for name in ("rate", "rateints"):
        assert ours[name].attrs["cal_step"]["ramp_fit"] == "COMPLETE"
        assert ours[name].attrs["bunit"] == "DN/s"
        assert ours[name]["dq"].dtype == np.uint32
    assert "int_times" in ours["rateints"].attrs["tables"]
    assert ours["rateints"]["data"].dims == ("integration", "y", "x")


@pytest.fixture(scope="module")
def bright2_options(sim_nircam_bright2, module_tmp, crds_offline):
    """jwst's pipeline on BRIGHT2 (ZEROFRAME) with suppress_one_group=False and save_opt:
    one-good-group and group-0-saturated ramps get slopes from group 0 or ZEROFRAME."""
    out = module_tmp("jwst_bright2_options")
    params = {"ramp_fit": {"suppress_one_group": False, "save_opt": True}}
    products = jwst_step_products(sim_nircam_bright2, out, crds_offline["CRDS_PATH"],
                                  steps=params)
    root = products["uncal"].name.replace("_uncal.fits", "")
    products["fitopt"] = out / f"{root}_fitopt.fits"
    return sim_nircam_bright2, products


def test_ramp_fit_options_match_jwst(bright2_options, jwst_steps):
    sim, products = bright2_options
    ds = open_exposure(products["ramp"], chunks={"y": 64, "x": 45})
    assert "zeroframe" in ds
    ours = _computed(_fit(ds, sim, suppress_one_group=False, save_opt=True))
    _assert_files(ours, products["rate"], products["rateints"])
    _assert_fitopt(ours["fitopt"], products["fitopt"])
    # the options matter: the default products differ
    _, default = jwst_steps("sim_nircam_bright2")
    from stdatamodels.jwst import datamodels as dm

    with dm.open(str(default["rate"])) as rate:
        assert (np.isnan(rate.data) != np.isnan(ours["rate"]["data"].values)).any()


def _jwst_ramp_fit(ramp_path, sim, crds, *, edit=None, **params):
    """jwst's RampFitStep alone on an in-memory copy of a ramp file.

    The ZEROFRAME is made native-endian first: stcal 1.20's ``endianness_handler`` byte-
    swaps every array it hands to C except ZEROFRAME, so a standalone run on a FITS file
    (big-endian) reads garbage ZEROFRAME values where ``suppress_one_group=False`` uses
    them; inside the pipeline the ZEROFRAME is native, and detflow gives that result.
    """
    from jwst.ramp_fitting import RampFitStep
    from jwst_oracle import crds_environment
    from stdatamodels.jwst import datamodels as dm

    model = dm.RampModel(str(ramp_path))
    if model.hasattr("zeroframe"):
        model.zeroframe = model.zeroframe.astype(np.float32)
    if edit is not None:
        edit(model)
    with crds_environment(crds):
        return RampFitStep.call(model, maximum_cores="1", **_overrides(sim), **params)


@pytest.mark.parametrize("first, last", [(1, 4), (2, None), (None, 3), (4, 2), (None, 9)])
def test_ramp_fit_group_range_matches_jwst(first, last, jwst_steps, crds_offline):
    """firstgroup/lastgroup (jwst ignores them when first >= last; a lastgroup beyond
    the ramp changes nothing), with suppress_one_group=False on BRIGHT2."""
    sim, products = jwst_steps("sim_nircam_bright2")
    params = {"firstgroup": first, "lastgroup": last, "suppress_one_group": False}
    rate, rateints = _jwst_ramp_fit(products["ramp"], sim, crds_offline, **params)
    ours = _computed(_fit(open_exposure(products["ramp"], chunks=UNEVEN), sim, **params))
    _assert_product(ours["rate"], rate, "rate")
    _assert_product(ours["rateints"], rateints, "rateints")


def test_ramp_fit_average_dark_current(jwst_steps, crds_offline):
    """An ``average_dark_current`` variable enters the Poisson variance as jwst's
    RampModel.average_dark_current does."""
    sim, products = jwst_steps("sim_nircam_sub640")
    rng = np.random.default_rng(5)
    dark = rng.uniform(0.0, 0.5, (640, 640)).astype(np.float32)

    def edit(model):
        model.average_dark_current = dark

    rate, rateints = _jwst_ramp_fit(products["ramp"], sim, crds_offline, edit=edit)
    ds = open_exposure(products["ramp"], chunks=UNEVEN)
    ds["average_dark_current"] = (("y", "x"), dark)
    ours = _computed(_fit(ds, sim))
    _assert_product(ours["rate"], rate, "rate")
    _assert_product(ours["rateints"], rateints, "rateints")


def test_ramp_fit_lazy_and_chunk_independent(jwst_steps, tmp_path):
    from detflow.io.products import write_fitopt, write_rate, write_rateints

    sim, products = jwst_steps("sim_nircam_sub640")
    with no_compute():
        lazy = _fit(open_exposure(products["ramp"]), sim, save_opt=True)
    a = _computed(lazy)
    b = _computed(_fit(open_exposure(products["ramp"], chunks={"y": 211, "x": 97}), sim,
                       save_opt=True))
    for product in ("rate", "rateints", "fitopt"):
        for name, var in a[product].data_vars.items():
            np.testing.assert_array_equal(var.values, b[product][name].values,
                                          err_msg=f"{product} {name}")
    # the products are writable by detflow's writers and read back by stdatamodels
    from stdatamodels.jwst import datamodels as dm

    paths = (write_rate(a["rate"], tmp_path / "x_rate.fits"),
             write_rateints(a["rateints"], tmp_path / "x_rateints.fits"))
    _assert_files(a, *paths)
    fitopt = trim_fitopt(a["fitopt"])
    with dm.RampFitOutputModel(str(write_fitopt(fitopt, tmp_path / "x_fitopt.fits"))) as m:
        np.testing.assert_array_equal(m.slope, fitopt["slope"].values)
        assert m.crmag.shape == fitopt["crmag"].shape


def test_ramp_fit_likely(jwst_steps):
    sim, products = jwst_steps("sim_nircam_sub640")
    ds = open_exposure(products["ramp"])
    with pytest.raises(DetflowError, match="not implemented yet"):
        _fit(ds, sim, algorithm="LIKELY")
    # jwst falls back to OLS_C below 4 groups
    short = ds.isel(group=slice(0, 3))
    likely = _computed(_fit(short, sim, algorithm="LIKELY"))["rate"]
    ols = _computed(_fit(short, sim))["rate"]
    for name in ("data", "dq", "err"):
        np.testing.assert_array_equal(likely[name].values, ols[name].values)
    assert (ols["dq"].values & dqflags.DO_NOT_USE).sum() < ols["dq"].size


def test_ramp_fit_parameters_are_jwsts():
    from jwst.ramp_fitting import RampFitStep

    step = RampFitStep()
    for name, param in STEP.params.items():
        assert getattr(step, name) == param.default, name
    spec_names = {line.split("=")[0].strip() for line in RampFitStep.spec.strip().splitlines()}
    assert spec_names == set(STEP.params)
    assert STEP.reftypes == tuple(RampFitStep.reference_file_types)


def test_ramp_fit_miri_matches_jwst(jwst_steps):
    """MIRI: lastframe makes the last group DO_NOT_USE everywhere; stcal drops it."""
    sim, products = jwst_steps("sim_miri")
    ours = _computed(_fit(open_exposure(products["ramp"], chunks={"y": 300, "x": 277}), sim))
    _assert_files(ours, products["rate"], products["rateints"])


def test_ramp_fit_miri_leading_groups_dropped(jwst_steps, crds_offline, tmp_path):
    """MIRI with group 0 DO_NOT_USE everywhere (as firstframe makes it): stcal drops it and
    clears the JUMP flags of the new first group. The first tile also has group 1
    DO_NOT_USE: it must still drop one group only (the exposure-wide test), so its JUMP
    flags in group 2 stay."""
    from jwst.ramp_fitting import RampFitStep
    from jwst_oracle import crds_environment
    from stdatamodels.jwst import datamodels as dm

    sim, products = jwst_steps("sim_miri")
    with dm.RampModel(str(products["ramp"])) as model:
        model.groupdq[:, 0] |= dqflags.DO_NOT_USE
        model.groupdq[:, 1, :300, :277] |= dqflags.DO_NOT_USE
        model.groupdq[0, 2, 100:140, 200:260] |= dqflags.JUMP_DET
        model.groupdq[0, 1, 400:440, 500:560] |= dqflags.JUMP_DET
        path = tmp_path / "jw01234002001_01101_00001_mirimage_ramp.fits"
        model.save(str(path))
    with crds_environment(crds_offline):
        rate, rateints = RampFitStep.call(str(path), maximum_cores="1", **_overrides(sim))
    ours = _computed(_fit(open_exposure(path, chunks={"y": 300, "x": 277}), sim))
    _assert_product(ours["rate"], rate, "rate")
    _assert_product(ours["rateints"], rateints, "rateints")
    jump = (ours["rateints"]["dq"].values[0] & dqflags.JUMP_DET) != 0
    assert jump[100:140, 200:260].all()  # kept: one group dropped, not two
    assert jump[400:440, 500:560].mean() < 0.1  # cleared (but for real cosmic rays)


def test_jump_then_ramp_fit(jwst_steps):
    """detflow's jump feeding detflow's ramp_fit, one lazy graph: jwst's rate, and the
    jump step's PRIMECRS carried into the products as a 0-d variable."""
    from astropy.io import fits

    from detflow.pipeline.builder import apply_step

    sim, products = jwst_steps("sim_nircam_sub640")
    ds = open_exposure(products["dark_current"], chunks=UNEVEN)
    jumped = apply_step("jump", ds, {"override_gain": str(sim.refs["GAIN"]),
                                     "override_readnoise": str(sim.refs["READNOISE"])})
    ours = _computed(_fit(jumped, sim))
    _assert_files(ours, products["rate"], products["rateints"])
    assert float(ours["rate"]["primary_cosmic_rays"]) == fits.getval(products["rate"],
                                                                      "PRIMECRS")


def test_no_product_when_group_zero_saturates_everywhere(jwst_steps, crds_offline, tmp_path):
    """jwst makes no rate or rateints when group 0 is SATURATED in every pixel of every
    integration; detflow flags the products ``no_product`` and writes nothing, while a
    single unsaturated pixel is enough for products (and the flag is not written)."""
    from jwst.ramp_fitting import RampFitStep as JwstRampFitStep
    from jwst_oracle import crds_environment
    from stdatamodels.jwst import datamodels as dm

    from detflow.interfaces import RampFitStep

    sim, products = jwst_steps("sim_nircam_sub640")
    cases = {}
    for name, keep in (("all", None), ("one_left", (3, 5))):
        with dm.RampModel(str(products["ramp"])) as model:
            gdq = model.groupdq.copy()
            gdq[:, 0] |= dqflags.SATURATED
            if keep is not None:
                gdq[:, :, keep[0], keep[1]] = 0
            model.groupdq = gdq
            path = tmp_path / f"jw01234001001_01101_00001_nrca1_{name}_ramp.fits"
            model.save(str(path))
        cases[name] = path

    for name, path in cases.items():
        with crds_environment(crds_offline):
            theirs = JwstRampFitStep.call(str(path), **_overrides(sim))
        ours = _computed(_fit(open_exposure(path, chunks=UNEVEN), sim, save_opt=True))
        expect_none = name == "all"
        assert (theirs[0] is None) == expect_none
        for kind in ("rate", "rateints", "fitopt"):
            assert bool(ours[kind]["no_product"]) == expect_none
        outdir = tmp_path / f"out_{name}"
        RampFitStep.call(str(path), output_dir=str(outdir), save_results=True,
                         **_overrides(sim))
        written = sorted(p.name for p in outdir.glob("*.fits")) if outdir.exists() else []
        if expect_none:
            assert written == []
        else:
            assert written == [path.name.replace("_ramp", "_rate"),
                               path.name.replace("_ramp", "_rateints")]
            with dm.open(str(outdir / written[0])) as rate:
                assert np.isfinite(rate.data[3, 5])
