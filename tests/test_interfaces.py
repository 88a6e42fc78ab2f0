"""jwst's interfaces on detflow: step classes, Detector1Pipeline, parameter files, specs."""

import asdf
import numpy as np
import pytest
from stdatamodels.jwst import datamodels as dm

from detflow import Detector1Pipeline, DQInitStep
from detflow.errors import ParameterError
from detflow.interfaces import STEP_CLASS_BY_NAME
from detflow.io.exposure import open_exposure
from detflow.steps import STEP_NAMES, get_step, is_implemented

IMPLEMENTED = [name for name in STEP_NAMES if is_implemented(name)]


@pytest.mark.parametrize("name", IMPLEMENTED)
def test_parameters_and_defaults_are_jwsts(name):
    """Every implemented step has exactly jwst 3.0.0's parameters, with its defaults."""
    from jwst.pipeline import Detector1Pipeline as JwstPipeline

    jwst_cls = JwstPipeline.step_defs[name]
    expected = jwst_cls().get_pars()
    ours = get_step(name).defaults()
    overrides = {k for k in ours if k.startswith("override_")}
    assert {k: v for k, v in ours.items() if k not in overrides} == expected
    assert overrides == {f"override_{r}" for r in jwst_cls.reference_file_types}
    assert get_step(name).class_name == jwst_cls.__name__
    assert type(STEP_CLASS_BY_NAME[name]()).__name__ == jwst_cls.__name__


def test_step_attributes_validate():
    step = DQInitStep()
    step.override_mask = "mask.fits"
    assert step.override_mask == "mask.fits"
    with pytest.raises(ParameterError, match="no parameter 'rejection_treshold'"):
        step.rejection_treshold = 5
    assert "user_supplied_dq" in DQInitStep.spec


def test_pipeline_attributes_and_steps():
    p = Detector1Pipeline(steps={"dq_init": {"override_mask": "m.fits"}}, output_dir="out")
    assert p.dq_init.override_mask == "m.fits"
    assert p.output_dir == "out" and p.save_calibrated_ramp is False
    assert p.persistence.skip is True and p.charge_migration.skip is True
    p.save_calibrated_ramp = True
    with pytest.raises(ParameterError, match="unknown step"):
        Detector1Pipeline(steps={"jumpp": {}})
    with pytest.raises(ParameterError, match="no parameter"):
        p.save_calibrated_rmp = True


@pytest.mark.jwst
def test_step_call_saves_jwst_named_product(jwst_steps, tmp_path):
    sim, products = jwst_steps("sim_nircam_sub640")
    result = DQInitStep.call(
        str(sim.uncal), override_mask=str(sim.refs["MASK"]), save_results=True,
        output_dir=str(tmp_path),
    )
    root = sim.uncal.name.replace("_uncal.fits", "")
    saved = tmp_path / f"{root}_dq_init.fits"
    assert saved.exists()
    with dm.RampModel(str(saved)) as ours, dm.RampModel(str(products["dq_init"])) as theirs:
        np.testing.assert_array_equal(ours.pixeldq, theirs.pixeldq)
        np.testing.assert_array_equal(ours.groupdq, theirs.groupdq)
        assert ours.meta.cal_step.dq_init == "COMPLETE"
    np.testing.assert_array_equal(result["pixeldq"].values, theirs_pixeldq(products))


def theirs_pixeldq(products):
    with dm.RampModel(str(products["dq_init"])) as theirs:
        return np.array(theirs.pixeldq)


def test_step_runs_on_a_dataset_and_on_a_previous_result(sim_nircam_sub640):
    mask = str(sim_nircam_sub640.refs["MASK"])
    ds = open_exposure(sim_nircam_sub640.uncal)
    once = DQInitStep(override_mask=mask).run(ds)
    twice = DQInitStep(override_mask=mask).run(once)
    np.testing.assert_array_equal(once["pixeldq"].values, twice["pixeldq"].values)
    assert [p["step"] for p in twice.attrs["provenance"]] == ["dq_init", "dq_init"]
    assert twice.attrs["provenance"][-1]["reference_files"]["mask"] == sim_nircam_sub640.refs[
        "MASK"].name


def test_single_step_parameter_file(sim_nircam_sub640, tmp_path):
    pars = tmp_path / "dq_init_pars.asdf"
    asdf.AsdfFile({
        "class": "jwst.dq_init.dq_init_step.DQInitStep",
        "name": "dq_init",
        "parameters": {"override_mask": str(sim_nircam_sub640.refs["MASK"])},
    }).write_to(pars)
    step = DQInitStep(config_file=pars)
    assert step.override_mask == str(sim_nircam_sub640.refs["MASK"])
    result = DQInitStep.call(str(sim_nircam_sub640.uncal), config_file=pars)
    assert result.attrs["cal_step"]["dq_init"] == "COMPLETE"
    with pytest.raises(ParameterError, match="not for the jump step"):
        STEP_CLASS_BY_NAME["jump"](config_file=pars)




@pytest.mark.jwst
def test_a_step_on_its_own_runs_even_when_skipped(sim_nircam_sub640, tmp_path):
    """stpipe sets ``skip`` to False for a step without a parent pipeline: ``call`` with
    ``skip=True`` and ``run`` on a step made with it both run the step, as jwst's do."""
    from jwst.dq_init import DQInitStep as JwstDQInitStep
    from jwst_oracle import crds_environment, offline_crds

    mask = str(sim_nircam_sub640.refs["MASK"])
    with crds_environment(offline_crds(tmp_path / "crds")):
        theirs = JwstDQInitStep.call(str(sim_nircam_sub640.uncal), skip=True,
                                     override_mask=mask)
    assert theirs.meta.cal_step.dq_init == "COMPLETE"
    for result in (DQInitStep.call(str(sim_nircam_sub640.uncal), skip=True, override_mask=mask),
                   DQInitStep(skip=True, override_mask=mask).run(str(sim_nircam_sub640.uncal))):
        assert result.attrs["cal_step"]["dq_init"] == "COMPLETE"
        np.testing.assert_array_equal(result["pixeldq"].values, theirs.pixeldq)
    theirs.close()
