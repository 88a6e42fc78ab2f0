"""Step-by-step fidelity against jwst 3.0.0.

jwst's Detector1Pipeline runs once per simulated exposure with ``save_results``
on every step, so each step's jwst input and output are on disk
(``<root>_<step>.fits``). A detflow step is fed jwst's input of that step and
must reproduce jwst's output to the bit: DQ and data identical (``max_ulp=0``; a test
that needs a tolerance must pass one and say why).
"""

from pathlib import Path

import numpy as np
from jwst_oracle import run_detector1

from detflow.io.exposure import open_exposure
from detflow.pipeline import order
from detflow.pipeline.builder import apply_step
from detflow.steps import is_implemented


def _ramp_steps(names):
    """The steps of an order that make ramps (ramp_fit and gain_scale make rates)."""
    return tuple(name for name in names if name not in ("ramp_fit", "gain_scale"))


#: jwst 3.0.0's near-IR and MIRI ramp steps, in order
ALL_NIR_STEPS = _ramp_steps(order.NIR_ORDER)
ALL_MIRI_STEPS = _ramp_steps(order.MIRI_ORDER)
#: those detflow implements
NIR_ORDER = tuple(name for name in ALL_NIR_STEPS if is_implemented(name))
MIRI_ORDER = tuple(name for name in ALL_MIRI_STEPS if is_implemented(name))


def jwst_step_products(sim, outdir, crds_root, steps=None):
    """Run jwst with every step's result saved; returns ``{step: path}`` of what exists,
    with ``"uncal"``, ``"rate"``, ``"rateints"`` and ``"ramp"``.

    ``steps`` adds jwst parameters, e.g. ``{"jump": {"expand_large_events": True}}``.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    every = tuple(dict.fromkeys(ALL_NIR_STEPS + ALL_MIRI_STEPS))
    params = {name: {"save_results": True} for name in every + ("ramp_fit", "gain_scale")}
    for name, extra in (steps or {}).items():
        params.setdefault(name, {}).update(extra)
    run_detector1(sim.uncal, sim.refs, outdir, crds_root, steps=params,
                  save_calibrated_ramp=True)
    root = sim.uncal.name.replace("_uncal.fits", "")
    found = {"uncal": sim.uncal}
    for name in every:
        path = outdir / f"{root}_{name}.fits"
        if path.exists():
            found[name] = path
    for suffix in ("rate", "rateints", "ramp"):
        found[suffix] = outdir / f"{root}_{suffix}.fits"
    return found


def step_input(products, step):
    """jwst's input of ``step``: the saved output of the step before it (in MIRI's order
    when jwst ran MIRI's steps)."""
    miri = any(name in products for name in ("lastframe", "reset", "rscd"))
    names = ("uncal",) + (ALL_MIRI_STEPS if miri else ALL_NIR_STEPS)
    i = names.index(step)
    for prev in reversed(names[:i]):
        if prev in products:
            return products[prev]
    raise KeyError(step)


def run_detflow_step(step, input_path, sim, **params):
    """Apply one detflow step to a file with the simulation's reference files; computed."""
    ds = open_exposure(input_path)
    overrides = {f"override_{k.lower()}": str(v) for k, v in sim.refs.items()}
    from detflow.steps import get_step

    declared = set(get_step(step).reftypes)
    params = {**{k: v for k, v in overrides.items() if k[len("override_"):] in declared},
              **params}
    return apply_step(step, ds, params).compute()


def assert_ramp_matches(ours, jwst_path, *, max_ulp=0, what="data"):
    """A detflow ramp Dataset equals jwst's RampModel file: DQ identical, data identical
    (or within ``max_ulp`` float32 units in the last place), NaN in the same places."""
    from stdatamodels.jwst import datamodels as dm

    with dm.RampModel(str(jwst_path)) as theirs:
        np.testing.assert_array_equal(ours["pixeldq"].values, theirs.pixeldq, err_msg="pixeldq")
        np.testing.assert_array_equal(ours["groupdq"].values, theirs.groupdq, err_msg="groupdq")
        assert_float_equal(ours["data"].values, theirs.data, max_ulp=max_ulp, what=what)
        if theirs.meta.exposure.zero_frame and "zeroframe" in ours:
            assert_float_equal(ours["zeroframe"].values, theirs.zeroframe, max_ulp=max_ulp,
                               what="zeroframe")


def assert_float_equal(ours, theirs, *, max_ulp=0, what="data"):
    """NaNs in the same places, finite values identical (or within ``max_ulp`` float32
    units in the last place)."""
    ours = np.asarray(ours, dtype=np.float32)
    theirs = np.asarray(theirs, dtype=np.float32)
    assert ours.shape == theirs.shape, (what, ours.shape, theirs.shape)
    nan_a, nan_b = np.isnan(ours), np.isnan(theirs)
    np.testing.assert_array_equal(nan_a, nan_b, err_msg=f"{what}: NaN positions differ")
    ok = ~nan_a
    if max_ulp == 0:
        np.testing.assert_array_equal(ours[ok], theirs[ok], err_msg=what)
    else:
        np.testing.assert_array_max_ulp(ours[ok], theirs[ok], maxulp=max_ulp)
