"""jwst datamodels in and out (issue 11, section 3): conversions, steps and the pipeline
given models, and the JWST detector1 tutorial's own cell sequence."""

import numpy as np
import pytest
from stdatamodels.jwst import datamodels as dm
from stepcheck import assert_float_equal

import detflow
from detflow.io.datamodels import from_datamodel, model_headers, to_datamodel
from detflow.io.exposure import open_exposure


@pytest.fixture(scope="module")
def small_sim(module_tmp):
    """A small NIRCam subarray exposure with its references (no jwst run)."""
    return detflow.simulate("nircam", module_tmp("dm_sim"), subarray="SUB160", ngroups=5,
                            nints=2, seed=21)


def test_model_headers_are_the_schemas_keywords(small_sim):
    """The metadata alone becomes the keywords a saved file carries (this also fails
    loudly if stdatamodels changes the writer's schema walk detflow calls)."""
    from astropy.io import fits

    with dm.open(str(small_sim.uncal)) as model:
        primary, _ = model_headers(model)
    on_disk = fits.getheader(small_sim.uncal)
    for key in ("INSTRUME", "DETECTOR", "NGROUPS", "NINTS", "READPATT", "SUBARRAY",
                "SUBSTRT1", "SUBSTRT2", "NFRAMES", "TGROUP", "EXPSTART"):
        assert primary[key] == on_disk[key], key


def test_from_datamodel_equals_the_file(small_sim):
    with dm.open(str(small_sim.uncal)) as model:
        ds = from_datamodel(model)
        theirs = open_exposure(small_sim.uncal)
        assert dict(ds.sizes) == dict(theirs.sizes)
        assert ds.chunks == theirs.chunks
        for name in theirs.data_vars:
            assert ds[name].dtype == theirs[name].dtype, name
            np.testing.assert_array_equal(ds[name].values, theirs[name].values, err_msg=name)
        skip = {"primary_header", "sci_header", "source", "datamodel"}
        assert {k: v for k, v in ds.attrs.items() if k not in skip} == {
            k: v for k, v in theirs.attrs.items() if k not in skip}
        assert ds.attrs["datamodel"] == "Level1bModel"
        # the graph holds no copy of the model's array: its tasks take views of it
        graph = dict(ds["data"].data.__dask_graph__())
        assert not any(isinstance(v, np.ndarray) and v.size > 1 for v in graph.values())


def test_to_datamodel_gives_jwsts_classes(small_sim, tmp_path):
    from detflow.pipeline.builder import apply_step

    ramp = apply_step("dq_init", open_exposure(small_sim.uncal),
                      {"override_mask": str(small_sim.refs["MASK"])})
    model = to_datamodel(ramp)
    assert type(model) is dm.RampModel
    assert model.meta.cal_step.dq_init == "COMPLETE"
    assert model.meta.instrument.detector == "NRCA1"
    assert model.data.dtype == np.float32 and model.data.dtype.isnative
    np.testing.assert_array_equal(model.groupdq, ramp["groupdq"].values)
    back = from_datamodel(model)
    assert back.attrs["cal_step"]["dq_init"] == "COMPLETE"
    np.testing.assert_array_equal(back["pixeldq"].values, ramp["pixeldq"].values)


def test_a_model_without_an_instrument_is_refused():
    from detflow.errors import InputFileError

    model = dm.RampModel((1, 3, 8, 8))
    with pytest.raises(InputFileError, match="instrument"):
        from_datamodel(model)


# --- the JWST detector1 tutorial's cell sequence, run unchanged on jwst and on detflow ----

NIR_STEP_CLASSES = (
    ("group_scale", "GroupScaleStep"), ("dq_init", "DQInitStep"),
    ("saturation", "SaturationStep"), ("ipc", "IPCStep"), ("superbias", "SuperBiasStep"),
    ("refpix", "RefPixStep"), ("linearity", "LinearityStep"),
    ("dark_current", "DarkCurrentStep"), ("charge_migration", "ChargeMigrationStep"),
    ("jump", "JumpStep"), ("persistence", "PersistenceStep"),
)


def _jwst_namespace():
    import importlib

    ns = {"open": dm.open, "RampModel": dm.RampModel}
    for alias, cls in NIR_STEP_CLASSES + (("ramp_fit", "RampFitStep"),
                                          ("gain_scale", "GainScaleStep")):
        module = "ramp_fitting" if alias == "ramp_fit" else alias
        ns[cls] = getattr(importlib.import_module(f"jwst.{module}"), cls)
    from jwst.pipeline import Detector1Pipeline

    ns["Detector1Pipeline"] = Detector1Pipeline
    return ns


def _detflow_namespace():
    ns = {"open": dm.open, "RampModel": dm.RampModel}
    for _, cls in NIR_STEP_CLASSES + (("ramp_fit", "RampFitStep"),
                                      ("gain_scale", "GainScaleStep")):
        ns[cls] = getattr(detflow, cls)
    ns["Detector1Pipeline"] = detflow.Detector1Pipeline
    return ns


def tutorial_cells(ns, uncal_file, overrides, output_dir, y, x):
    """The tutorial's habits, cell by cell: open the raw file as a datamodel, run each
    step on the previous step's result, inspect arrays and ``meta.cal_step``, run ramp
    fitting and gain_scale, look at the rate, save it. Only ``ns`` (the imports)
    differs between jwst and detflow."""
    seen = {}
    uncal = ns["RampModel"](uncal_file)  # jwst 3.0.0's steps take raw data as a RampModel
    seen["uncal_shape"] = uncal.data.shape
    result = uncal
    for alias, cls in NIR_STEP_CLASSES:
        step_overrides = overrides.get(alias, {})
        if alias == "jump":
            result = ns[cls].call(result, rejection_threshold=5.0, maximum_cores="1",
                                  **step_overrides)
        else:
            result = ns[cls].call(result, **step_overrides)
        seen[f"{alias}_class"] = type(result).__name__
        if alias == "jump":  # the cosmic-ray rates jwst puts in meta.exposure
            seen["jump_primecrs"] = result.meta.exposure.primary_cosmic_rays
            seen["jump_extncrs"] = result.meta.exposure.extended_emission_events
    seen["cal_step_dq_init"] = result.meta.cal_step.dq_init
    seen["cal_step_jump"] = result.meta.cal_step.jump
    seen["cal_step_persistence"] = result.meta.cal_step.persistence
    seen["groupdq_pixel"] = result.groupdq[0, 3, y, x]
    seen["pixeldq_pixel"] = result.pixeldq[y, x]
    seen["ramp_data"] = np.array(result.data)
    rate, rateints = ns["RampFitStep"].call(result, maximum_cores="1",
                                            **overrides.get("ramp_fit", {}))
    rate = ns["GainScaleStep"].call(rate, **overrides.get("gain_scale", {}))
    seen["rate_class"] = type(rate).__name__
    seen["rateints_class"] = type(rateints).__name__
    seen["rate_cal_step"] = (rate.meta.cal_step.ramp_fit, rate.meta.cal_step.gain_scale)
    seen["rate_pixel"] = rate.data[y, x]
    for name in ("data", "err", "dq", "var_poisson", "var_rnoise"):
        seen[f"rate_{name}"] = np.array(getattr(rate, name))
        seen[f"rateints_{name}"] = np.array(getattr(rateints, name))
    seen["ref_mask"] = rate.meta.ref_file.mask.name
    rate.save(str(output_dir / "tutorial_rate.fits"))
    with ns["open"](str(output_dir / "tutorial_rate.fits")) as saved:
        seen["saved_class"] = type(saved).__name__
        seen["saved_data"] = np.array(saved.data)
    return seen


@pytest.mark.jwst
def test_the_detector1_tutorial_runs_unchanged_on_datamodels(small_sim, crds_offline,
                                                             tmp_path):
    from jwst_oracle import crds_environment, step_overrides

    overrides = step_overrides(small_sim.refs)
    y, x = 40, 57
    (tmp_path / "jwst").mkdir()
    (tmp_path / "detflow").mkdir()
    with crds_environment(crds_offline):
        theirs = tutorial_cells(_jwst_namespace(), str(small_sim.uncal), overrides,
                                tmp_path / "jwst", y, x)
    ours = tutorial_cells(_detflow_namespace(), str(small_sim.uncal), overrides,
                          tmp_path / "detflow", y, x)
    assert set(ours) == set(theirs) and len(theirs) > 30
    for key, value in theirs.items():
        got = ours[key]
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            assert_float_equal(got, value, max_ulp=2, what=key)
        elif isinstance(value, np.ndarray):
            np.testing.assert_array_equal(got, value, err_msg=key)
        elif key == "ref_mask":  # jwst names the file it used; so does detflow
            assert str(got).endswith(str(value).split("/")[-1]), (got, value)
        else:
            assert got == value, (key, got, value)


def test_the_pipeline_given_a_model_returns_the_rate_imagemodel(small_sim, tmp_path):
    from detflow.io.products import open_product

    model = dm.RampModel(str(small_sim.uncal))
    before = np.array(model.data)
    # a model does not know its folder (jwst asks CRDS): the references are named
    refs = str(small_sim.uncal.parent / "refs")
    rate = detflow.Detector1Pipeline(refs_dir=refs, output_dir=str(tmp_path),
                                     save_results=True).run(model)
    assert type(rate) is dm.ImageModel
    assert rate.meta.cal_step.ramp_fit == "COMPLETE"
    assert rate.meta.cal_step.jump == "COMPLETE"
    np.testing.assert_array_equal(model.data, before)  # the input is not changed
    from_path = detflow.Detector1Pipeline.call(str(small_sim.uncal),
                                               output_dir=str(tmp_path / "path"),
                                               save_results=True)
    for name in ("data", "err", "dq", "var_poisson", "var_rnoise"):
        np.testing.assert_array_equal(getattr(rate, name), from_path[name].values,
                                      err_msg=name)
    # the products are named after the model's file, as jwst names them
    root = small_sim.uncal.name.replace("_uncal.fits", "")
    saved = open_product(tmp_path / f"{root}_rate.fits")
    np.testing.assert_array_equal(saved["data"].values, rate.data)
    assert detflow.to_datamodel is to_datamodel and detflow.from_datamodel is from_datamodel
