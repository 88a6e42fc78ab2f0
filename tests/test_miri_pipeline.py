"""MIRI end to end: detflow's detector1 equals jwst 3.0.0's rate and rateints on the
simulated MIRI full frame, with jwst's defaults and with the detector1 tutorial's
Exercise 1 settings (``dark_current`` skipped, ``jump.rejection_threshold = 3``) in the
tutorial's three call styles: ``run()`` on a configured pipeline, ``call()`` with a
parameter file holding the two step entries, and the command line."""

import asdf
import pytest
from jwst_oracle import assert_products_identical, run_detector1

from detflow import Detector1Pipeline

pytestmark = pytest.mark.jwst

KINDS = ("rate", "rateints")
EXERCISE_1 = {"dark_current": {"skip": True}, "jump": {"rejection_threshold": 3.0}}


def _root(sim):
    return sim.uncal.name.replace("_uncal.fits", "")


def _assert_equal_to(out, theirs, sim):
    for kind in KINDS:
        assert_products_identical(out / f"{_root(sim)}_{kind}.fits", theirs[kind])


@pytest.fixture(scope="module")
def exercise_1(sim_miri, module_tmp, crds_offline):
    """jwst's rate and rateints of the MIRI full frame with Exercise 1's settings."""
    out = module_tmp("jwst_miri_exercise_1")
    model = run_detector1(sim_miri.uncal, {k.lower(): str(v) for k, v in sim_miri.refs.items()},
                          out, crds_offline["CRDS_PATH"], steps=EXERCISE_1)
    assert model.meta.cal_step.dark_sub != "COMPLETE"  # a skipped step records nothing
    model.close()
    return {kind: out / f"{_root(sim_miri)}_{kind}.fits" for kind in KINDS}


def test_miri_defaults_equal_jwst(jwst_steps, tmp_path):
    """jwst's default MIRI steps (lastframe, reset, rscd, MIRI linearity, per-integration
    darks, MIRI refpix, jump, ramp_fit's MIRI group dropping), references found beside
    the exposure."""
    sim, products = jwst_steps("sim_miri")
    result = Detector1Pipeline.call(str(sim.uncal), output_dir=str(tmp_path),
                                    save_results=True)
    assert result.attrs["cal_step"]["refpix"] == "COMPLETE"
    _assert_equal_to(tmp_path, products, sim)


def test_exercise_1_run(sim_miri, exercise_1, tmp_path):
    """The tutorial's style: a pipeline object, two step attributes set, then ``run()``."""
    det1 = Detector1Pipeline()
    det1.dark_current.skip = True
    det1.jump.rejection_threshold = 3
    det1.output_dir = str(tmp_path)
    det1.save_results = True
    det1.run(str(sim_miri.uncal))
    _assert_equal_to(tmp_path, exercise_1, sim_miri)


def test_exercise_1_call_with_parameter_file(sim_miri, exercise_1, tmp_path):
    """``call()`` with a jwst parameter file that adds the two step entries."""
    pars = tmp_path / "miri_exercise_1.asdf"
    asdf.AsdfFile({
        "class": "jwst.pipeline.Detector1Pipeline",
        "name": "Detector1Pipeline",
        "parameters": {},
        "steps": [
            {"class": "jwst.dark_current.dark_current_step.DarkCurrentStep",
             "name": "dark_current", "parameters": {"skip": True}},
            {"class": "jwst.jump.jump_step.JumpStep", "name": "jump",
             "parameters": {"rejection_threshold": 3.0}},
        ],
    }).write_to(pars)
    out = tmp_path / "out"
    Detector1Pipeline.call(str(sim_miri.uncal), config_file=str(pars), output_dir=str(out),
                           save_results=True)
    _assert_equal_to(out, exercise_1, sim_miri)


def test_exercise_1_command_line(sim_miri, exercise_1, tmp_path):
    """``detflow run`` with strun's ``--steps.STEP.PARAM=VALUE``."""
    from detflow.cli import main

    out = tmp_path / "out"
    code = main(["run", str(sim_miri.uncal), "--output_dir", str(out),
                 "--steps.dark_current.skip=true", "--steps.jump.rejection_threshold=3"])
    assert code == 0
    _assert_equal_to(out, exercise_1, sim_miri)


def test_miri_same_bits_for_any_chunking_and_workers(jwst_steps):
    """Uneven tiles, row bands (every tile holds all four of MIRI's column-interleaved
    amplifiers) and column tiles that split them, on 1 and 2 worker processes: jwst's
    rateints every time."""
    from distributed import Client, LocalCluster
    from stdatamodels.jwst import datamodels as dm
    from stepcheck import assert_float_equal

    from detflow.io.exposure import open_exposure

    sim, products = jwst_steps("sim_miri")
    with dm.CubeModel(str(products["rateints"])) as theirs:
        want = {name: getattr(theirs, name).copy()
                for name in ("data", "err", "dq", "var_poisson", "var_rnoise")}
    for chunks, workers in (({"y": 1024, "x": 1032}, 1), ({"y": 100, "x": 1032}, 1),
                            ({"y": 300, "x": 257}, 2)):
        ds = open_exposure(sim.uncal, chunks=chunks)
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=":0") as cluster, Client(cluster):
            rateints = Detector1Pipeline().build(ds)["rateints"].compute()
        for name, value in want.items():
            assert_float_equal(rateints[name].values, value, what=f"{chunks} {name}")
