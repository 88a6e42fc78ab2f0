"""charge_migration equals jwst 3.0.0's ChargeMigrationStep, bit for bit, whatever the
chunking, and is lazy; with it switched on, detflow's rate equals jwst's (ramp_fit's
CHARGELOSS read-noise path).

The step is skipped by default, so jwst's pipeline products (the ``jwst_steps``
fixture) have no charge_migration output: jwst's ChargeMigrationStep is run here on
jwst's own input of the step (the saved dark_current product), with a signal threshold
low enough (10-20 DN on these simulations, whose groups have medians of 1-15 DN) that
thousands of pixels trip, in every group, many on tile edges.
"""

import types

import dask
import numpy as np
import pytest
from lazycheck import no_compute
from stepcheck import (
    assert_float_equal,
    assert_ramp_matches,
    jwst_step_products,
    run_detflow_step,
    step_input,
)

from detflow import dqflags
from detflow.io.exposure import open_exposure
from detflow.kernels import charge_migration as kern
from detflow.pipeline.builder import apply_step, build_detector1
from detflow.steps import get_step

DNU, SAT, JUMP, CHLO = (dqflags.DO_NOT_USE, dqflags.SATURATED, dqflags.JUMP_DET,
                        dqflags.CHARGELOSS)

#: a signal threshold (DN) per simulated exposure that makes many pixels trip
THRESHOLDS = {"sim_nircam_sub640": 20.0, "sim_nircam_tso": 10.0, "sim_nircam_bright2": 10.0}

#: uneven tilings; 1-pixel tiles are as small as a tile can be (the halo is 1 pixel)
UNEVEN = (
    {"y": 100, "x": 77},
    {"integration": (1, 2), "group": 3, "y": (1, 1, 2, 37), "x": (1, 3, 1, 250)},
)


def _tiled(ds, chunks):
    """``ds`` rechunked; a tuple is a pattern of tile sizes repeated over the dimension."""
    spec = {}
    for dim, c in chunks.items():
        if isinstance(c, tuple):
            n, sizes = ds.sizes[dim], []
            while sum(sizes) < n:
                sizes.append(min(c[len(sizes) % len(c)], n - sum(sizes)))
            c = tuple(sizes)
        spec[dim] = c
    return ds.chunk(spec)


# --------------------------------------------------------------------------- identity


def _spec_kinds(spec):
    """``{parameter: type}`` of a jwst (configobj) spec text."""
    return {line.split("=")[0].strip(): line.split("=", 1)[1].split("(")[0].strip()
            for line in spec.strip().splitlines()}


def test_step_has_jwsts_parameters_spec_and_defaults():
    from jwst.charge_migration import ChargeMigrationStep

    step = get_step("charge_migration")
    assert step.reftypes == tuple(ChargeMigrationStep.reference_file_types) == ()
    theirs = ChargeMigrationStep()
    assert step.defaults() == theirs.get_pars()  # generic ones, skip=True, signal_threshold
    # the jwst-like interface class carries jwst's spec (names, types) and defaults
    from detflow.interfaces import ChargeMigrationStep as Ours

    spec = _spec_kinds(ChargeMigrationStep.spec)
    assert spec.pop("skip") == "boolean"  # jwst's spec sets its default skip; ours the row
    assert _spec_kinds(Ours.spec) == spec
    assert Ours().get_pars() == theirs.get_pars()


# --------------------------------------------------------------------------- kernel


def _jwst_flags(data, gdq, threshold):
    from jwst.charge_migration.charge_migration import charge_migration

    model = types.SimpleNamespace(data=data.copy(), groupdq=gdq.copy())
    return charge_migration(model, threshold).groupdq


@pytest.mark.parametrize("threshold", [25000.0, 100.00001, 100.0])
def test_kernel_equals_jwst_function(threshold):
    """The whole-tile kernel equals jwst's own function on random ramps holding every
    case: values exactly at, just above and just below the threshold (and a threshold
    that float32 cannot hold), NaN, seeds on the array's edges and corners, groups that
    are exactly DO_NOT_USE (ignored) or DO_NOT_USE with another bit (not ignored), and
    pre-existing SATURATED / JUMP / CHARGELOSS flags. Inputs are not changed."""
    rng = np.random.default_rng(7)
    shape = (3, 5, 23, 19)
    data = rng.normal(threshold, 0.01 * threshold + 1, size=shape).astype(np.float32)
    t32 = np.float32(threshold)
    data.flat[rng.choice(data.size, 300, replace=False)] = t32
    data.flat[rng.choice(data.size, 300, replace=False)] = np.nextafter(t32, np.float32(0))
    data.flat[rng.choice(data.size, 300, replace=False)] = np.nextafter(t32, np.float32(1e9))
    data.flat[rng.choice(data.size, 200, replace=False)] = np.nan
    data[:, :, [0, -1], :] = np.where(rng.random((3, 5, 2, 19)) < 0.3, 2 * t32 + 1, 0)
    data[:, :, :, [0, -1]] = np.where(rng.random((3, 5, 23, 2)) < 0.3, 2 * t32 + 1, 0)
    choices = np.array([0, 0, 0, 0, DNU, DNU, DNU | SAT, SAT, JUMP, CHLO, DNU | JUMP],
                       dtype=np.uint8)
    gdq = rng.choice(choices, size=shape)
    data0, gdq0 = data.copy(), gdq.copy()

    ours = kern.flag_charge_migration(data, gdq, threshold, DNU, CHLO)

    np.testing.assert_array_equal(data, data0)
    np.testing.assert_array_equal(gdq, gdq0)
    assert ours.dtype == np.uint8
    theirs = _jwst_flags(data, gdq, threshold)
    np.testing.assert_array_equal(ours, theirs)
    # the random case is not trivial: many new flags, and exact-DNU seeds were ignored
    assert ((ours & CHLO) & ~gdq0).astype(bool).mean() > 0.2
    assert ((data > threshold) & (gdq == DNU)).any()


def test_kernel_tile_with_halo_equals_whole():
    """A tile cut with a 1-pixel halo gives the whole array's flags on its core."""
    rng = np.random.default_rng(3)
    data = rng.normal(0, 1, size=(2, 4, 30, 40)).astype(np.float32)
    gdq = rng.choice(np.array([0, 0, DNU, SAT], np.uint8), size=data.shape)
    whole = kern.flag_charge_migration(data, gdq, 2.0, DNU, CHLO)
    for y0, y1, x0, x1 in ((0, 7, 0, 1), (7, 8, 13, 29), (12, 30, 39, 40), (5, 20, 5, 20)):
        ya, yb, xa, xb = max(y0 - 1, 0), min(y1 + 1, 30), max(x0 - 1, 0), min(x1 + 1, 40)
        tile = kern.flag_charge_migration(data[..., ya:yb, xa:xb], gdq[..., ya:yb, xa:xb],
                                          2.0, DNU, CHLO)
        np.testing.assert_array_equal(
            tile[..., y0 - ya: y0 - ya + (y1 - y0), x0 - xa: x0 - xa + (x1 - x0)],
            whole[..., y0:y1, x0:x1])


# --------------------------------------------------------------------------- jwst runs


def _run_jwst_step(crds_env, inp, out_path, **params):
    from jwst.charge_migration import ChargeMigrationStep
    from jwst_oracle import crds_environment

    with crds_environment(crds_env):
        result = ChargeMigrationStep.call(str(inp), **params)  # call() forces skip=False
    result.save(str(out_path))
    result.close()
    return out_path


@pytest.fixture(scope="module")
def jwst_charge_migration(jwst_steps, crds_offline, module_tmp):
    """Factory: ``(sim, jwst's input, jwst's ChargeMigrationStep output, threshold)``."""
    cache = {}

    def _get(which):
        if which not in cache:
            sim, products = jwst_steps(which)
            inp = step_input(products, "charge_migration")
            assert inp == products["dark_current"]
            out = module_tmp(f"cm_{which}") / "jwst_charge_migration.fits"
            thr = THRESHOLDS[which]
            cache[which] = (sim, inp, _run_jwst_step(crds_offline, inp, out,
                                                      signal_threshold=thr), thr)
        return cache[which]

    return _get


@pytest.mark.jwst
@pytest.mark.parametrize("which", ["sim_nircam_sub640", "sim_nircam_tso", "sim_nircam_bright2"])
def test_charge_migration_matches_jwst(which, jwst_charge_migration):
    """DQ identical and data (unchanged) identical to jwst's, on the default tiles and
    on uneven ones with 1-pixel tiles, group-split input chunks and one integration per
    chunk. BRIGHT2 has groups that are exactly DO_NOT_USE above the threshold (from the
    saturation backward pass), which jwst ignores as seeds, and a ZEROFRAME (unchanged)."""
    from stdatamodels.jwst import datamodels as dm

    sim, inp, theirs_path, thr = jwst_charge_migration(which)
    ours = run_detflow_step("charge_migration", inp, sim, skip=False, signal_threshold=thr)
    assert_ramp_matches(ours, theirs_path, max_ulp=0)
    assert ours.attrs["cal_step"]["charge_migration"] == "COMPLETE"
    with dm.RampModel(str(theirs_path)) as theirs, dm.RampModel(str(inp)) as before:
        assert theirs.meta.cal_step.charge_migration == "COMPLETE"
        new = (theirs.groupdq & CHLO).astype(bool) & ~(before.groupdq & CHLO).astype(bool)
        assert new.mean() > 0.05, "the case must flag many groups"
        assert all(new[:, g].any() for g in range(new.shape[1]))
        if which == "sim_nircam_bright2":
            assert ((before.data > thr) & (before.groupdq == DNU)).any()
    for chunks in UNEVEN:
        ds = _tiled(open_exposure(inp), chunks)
        tiled = apply_step("charge_migration", ds, {"skip": False, "signal_threshold": thr})
        assert_ramp_matches(tiled.compute(), theirs_path, max_ulp=0)


@pytest.mark.jwst
def test_charge_migration_is_lazy_and_chunk_independent(jwst_charge_migration):
    sim, inp, _, thr = jwst_charge_migration("sim_nircam_sub640")
    params = {"skip": False, "signal_threshold": thr}
    with no_compute():
        ds = open_exposure(inp)
        lazy = apply_step("charge_migration", ds, params)
        tiny = apply_step("charge_migration", _tiled(open_exposure(inp), UNEVEN[1]), params)
    assert tiny["groupdq"].chunks[2][:4] == (1, 1, 2, 37)  # the tiles stay as they were
    a = lazy.compute()
    b = tiny.compute()
    for name in ("pixeldq", "groupdq", "data"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def test_skips_as_jwst_does(make_uncal):
    """Default skip (recorded SKIPPED by the builder), and fewer than 3 groups: SKIPPED
    with nothing changed (jwst: ``result.data.shape[1] < 3``)."""
    path, _ = make_uncal(shape=(1, 2, 16, 20))
    ds = open_exposure(path)
    out = apply_step("charge_migration", ds, {"skip": False, "signal_threshold": 0.0})
    assert out.attrs["cal_step"]["charge_migration"] == "SKIPPED"
    np.testing.assert_array_equal(out["groupdq"].values, ds["groupdq"].values)
    path3, _ = make_uncal(name="jw00001001001_01101_00002_nrca1_uncal.fits",
                          shape=(1, 3, 16, 20))
    ds3 = open_exposure(path3)
    out = apply_step("charge_migration", ds3, {})
    assert out.attrs["cal_step"]["charge_migration"] == "SKIPPED"
    out = apply_step("charge_migration", ds3, {"skip": False, "signal_threshold": 0.0})
    assert out.attrs["cal_step"]["charge_migration"] == "COMPLETE"
    assert (out["groupdq"].values == CHLO | DNU).all()  # every raw value is above 0 DN


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def jwst_with_charge_migration(module_tmp, crds_offline, request):
    """jwst's Detector1Pipeline on SUB640 with charge_migration on (threshold 20 DN), every
    step's product saved."""
    sim = request.getfixturevalue("sim_nircam_sub640")
    thr = THRESHOLDS["sim_nircam_sub640"]
    steps = {"charge_migration": {"skip": False, "signal_threshold": thr}}
    out = module_tmp("jwst_cm_on")
    return sim, jwst_step_products(sim, out, crds_offline["CRDS_PATH"], steps=steps), steps


def _assert_rate_products(ours, rate_path, rateints_path):
    from stdatamodels.jwst import datamodels as dm

    with dm.open(str(rate_path)) as rate, dm.open(str(rateints_path)) as rateints:
        for kind, theirs in (("rate", rate), ("rateints", rateints)):
            np.testing.assert_array_equal(ours[kind]["dq"].values, theirs.dq,
                                          err_msg=f"{kind} dq")
            for var, attr in (("data", "data"), ("err", "err"), ("var_poisson", "var_poisson"),
                              ("var_rnoise", "var_rnoise")):
                # max_ulp=0: every step is bit-exact, ramp_fit is the same C code
                assert_float_equal(ours[kind][var].values, getattr(theirs, attr), max_ulp=0,
                                   what=f"{kind} {var}")


@pytest.mark.jwst
def test_rate_with_charge_migration_equals_jwst(jwst_with_charge_migration, jwst_steps):
    """With charge_migration on, jwst's ramp_fit recomputes the read-noise variance of
    CHARGELOSS ramps from the original flags (stcal's orig_gdq path). detflow equals
    jwst at every stage: the step on jwst's dark_current product; then detflow's
    charge_migration -> jump -> ramp_fit as one graph on uneven tiles; and the whole of
    build_detector1 from the uncal file."""
    from stdatamodels.jwst import datamodels as dm

    from detflow.pipeline.order import NIR_STEPS

    sim, products, steps = jwst_with_charge_migration
    assert "charge_migration" in products  # jwst ran and saved it
    ours = run_detflow_step("charge_migration", products["dark_current"], sim, **steps[
        "charge_migration"])
    assert_ramp_matches(ours, products["charge_migration"], max_ulp=0)
    with dm.RampModel(str(products["ramp"])) as ramp:
        assert (ramp.groupdq & CHLO).any()

    refs = {k.lower(): str(v) for k, v in sim.refs.items()}
    overrides = {spec.name: {f"override_{r}": refs.get(r, "N/A") for r in spec.reftypes}
                 for spec in NIR_STEPS}
    # charge_migration -> jump -> ramp_fit, lazily, on uneven tiles
    ds = open_exposure(products["dark_current"], chunks=UNEVEN[0])
    with no_compute():
        ds = apply_step("charge_migration", ds, steps["charge_migration"])
        ds = apply_step("jump", ds, overrides["jump"])
        fit = apply_step("ramp_fit", ds, overrides["ramp_fit"])
    rate, rateints = dask.compute(fit["rate"], fit["rateints"])
    _assert_rate_products({"rate": rate, "rateints": rateints}, products["rate"],
                          products["rateints"])

    # the whole pipeline from the raw exposure
    params = {name: dict(p) for name, p in overrides.items()}
    params["charge_migration"].update(steps["charge_migration"])
    with no_compute():
        result = build_detector1(open_exposure(sim.uncal), params)
    assert result["ramp"].attrs["cal_step"]["charge_migration"] == "COMPLETE"
    rate, rateints = dask.compute(result["rate"], result["rateints"])
    _assert_rate_products({"rate": rate, "rateints": rateints}, products["rate"],
                          products["rateints"])
    # the case matters: the rate differs from jwst's default run (charge_migration skipped)
    _, default = jwst_steps("sim_nircam_sub640")
    with dm.open(str(products["rate"])) as on, dm.open(str(default["rate"])) as off:
        assert on.meta.cal_step.charge_migration == "COMPLETE"
        assert off.meta.cal_step.charge_migration == "SKIPPED"
        # measured: 98 % of the pixels have CHARGELOSS groups and their SCI, ERR and
        # VAR_POISSON change, but VAR_RNOISE changes on only 0.6 %: stcal recomputes it
        # from the flags before charge_migration (orig_gdq), so the CHARGELOSS path ran
        assert (on.data != off.data).mean() > 0.5
        assert (on.var_poisson != off.var_poisson).mean() > 0.5
        assert (on.var_rnoise != off.var_rnoise).mean() < 0.02
