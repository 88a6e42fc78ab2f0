"""MIRI end to end: detflow's detector1 equals jwst 3.0.0's rate and rateints on the
simulated MIRI full frame, with jwst's defaults and with the detector1 tutorial's
Exercise 1 settings (``dark_current`` skipped, ``jump.rejection_threshold = 3``) in the
tutorial's three call styles: ``run()`` on a configured pipeline, ``call()`` with a
parameter file holding the two step entries, and the command line."""

import asdf
import numpy as np
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


@pytest.mark.parametrize("which", ["sim_miri", "sim_miri_tso", "sim_miri_segment"])
def test_miri_defaults_equal_jwst(which, jwst_steps, tmp_path):
    """jwst's default MIRI steps (lastframe, reset, rscd, MIRI linearity, per-integration
    darks, MIRI refpix, jump, ramp_fit's MIRI group dropping), references found beside
    the exposure: on the full frame, the LRS time series (FASTR1, 40 integrations) and a
    FASTGRPAVG segment (INTSTART 4)."""
    sim, products = jwst_steps(which)
    result = Detector1Pipeline.call(str(sim.uncal), output_dir=str(tmp_path),
                                    save_results=True)
    full = which == "sim_miri"
    assert result.attrs["cal_step"]["refpix"] == ("COMPLETE" if full else "SKIPPED")
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
    # (whole frames, the default tiles here, are test_miri_defaults_equal_jwst's)
    for chunks, workers in (({"y": 100, "x": 1032}, 1), ({"y": 300, "x": 257}, 2)):
        ds = open_exposure(sim.uncal, chunks=chunks)
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=":0") as cluster, Client(cluster):
            rateints = Detector1Pipeline().build(ds)["rateints"].compute()
        for name, value in want.items():
            assert_float_equal(rateints[name].values, value, what=f"{chunks} {name}")


@pytest.fixture(scope="module")
def emi_sim(module_tmp):
    """MIRI SUB256, FASTR1, 6 groups x 3 integrations with EMI at 390 Hz and 10 Hz, and
    the matching EMICORR reference."""
    from detflow.simulator import simulate

    return simulate("miri", module_tmp("miri_emi"), subarray="SUB256", readpatt="FASTR1",
                    ngroups=6, nints=3, emi=True)


@pytest.mark.parametrize("params", [
    pytest.param({}, id="joint"),
    pytest.param({"algorithm": "sequential"}, id="sequential"),
    pytest.param({"fit_ints_separately": True}, id="joint-ints-separately"),
])
def test_emicorr_through_the_pipeline_equals_jwst(emi_sim, params, crds_offline, tmp_path):
    """emicorr switched on (reference found in the exposure's refs/ folder): rate and
    rateints identical to jwst's."""
    steps = {"emicorr": {"skip": False, **params}}
    theirs = tmp_path / "jwst"
    model = run_detector1(emi_sim.uncal, {k.lower(): str(v) for k, v in emi_sim.refs.items()},
                          theirs, crds_offline["CRDS_PATH"], steps=steps)
    assert model.meta.cal_step.emicorr == "COMPLETE"
    model.close()
    ours = tmp_path / "ours"
    Detector1Pipeline.call(str(emi_sim.uncal), steps=steps, output_dir=str(ours),
                           save_results=True)
    _assert_equal_to(ours, {kind: theirs / f"{_root(emi_sim)}_{kind}.fits" for kind in KINDS},
                     emi_sim)


def test_emicorr_reference_from_a_folder_or_the_deprecated_parameter(emi_sim, tmp_path):
    """The EMICORR reference, an ASDF file, is found in a reference folder searched as CRDS
    selects (no manifest), and jwst's deprecated ``user_supplied_reffile`` names it as
    jwst takes it (it wins over ``override_emicorr``)."""
    import shutil

    from detflow import EmiCorrStep
    from detflow.io.references import resolve_reference

    folder = tmp_path / "exposure"
    folder.mkdir()
    uncal = folder / emi_sim.uncal.name
    shutil.copy(emi_sim.uncal, uncal)
    shutil.copytree(emi_sim.uncal.parent / "refs", folder / "refs")  # no manifest.json
    from detflow.io.exposure import open_exposure

    found, reason = resolve_reference("emicorr", open_exposure(uncal), explain=True)
    assert found.endswith(emi_sim.refs["EMICORR"].name) and "refs" in reason
    ref = str(emi_sim.refs["EMICORR"])
    by_override = EmiCorrStep.call(str(uncal), override_emicorr=ref).compute()
    by_parameter = EmiCorrStep.call(str(uncal), user_supplied_reffile=ref,
                                    override_emicorr="N/A").compute()
    assert by_override.attrs["cal_step"]["emicorr"] == "COMPLETE"
    np.testing.assert_array_equal(by_parameter["data"].values, by_override["data"].values)


def test_emicorr_without_a_reference_skips_as_jwst(jwst_steps, crds_offline, tmp_path):
    """Switched on with no EMICORR (N/A), emicorr is SKIPPED, as jwst skips it."""
    from jwst.emicorr import EmiCorrStep as JwstEmiCorrStep
    from jwst_oracle import crds_environment

    from detflow import EmiCorrStep

    sim, _ = jwst_steps("sim_miri")
    with crds_environment(crds_offline):
        theirs = JwstEmiCorrStep.call(str(sim.uncal), skip=False, override_emicorr="N/A")
    ours = EmiCorrStep.call(str(sim.uncal), override_emicorr="N/A")
    assert ours.attrs["cal_step"]["emicorr"] == theirs.meta.cal_step.emicorr == "SKIPPED"
    theirs.close()
