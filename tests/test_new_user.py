"""What a new user hit (issue 11, section 5): each item with a test that fails without
its fix."""

import dask
import numpy as np
import pytest
from stdatamodels.jwst import datamodels as dm

import detflow
from detflow.cli import main
from detflow.errors import ReferenceFileError
from detflow.interfaces import STEP_CLASS_BY_NAME
from detflow.pipeline.order import NIR_STEPS
from detflow.steps import get_step, is_implemented

NIR = [spec.name for spec in NIR_STEPS if is_implemented(spec.name)]
#: What jwst records for a step on a NIRCam RAPID exposure where it does nothing.
SKIPPED = {"group_scale", "gain_scale"}


@pytest.fixture(scope="module")
def small_sim(module_tmp):
    """A small NIRCam exposure: SUB160, 4 groups, 1 integration, refs/ beside it."""
    return detflow.simulate("nircam", module_tmp("sub160"), subarray="SUB160", ngroups=4)


@pytest.fixture(scope="module")
def local_client():
    """One small local cluster for the module (worker threads in this process)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=None) as cluster, \
            Client(cluster, set_as_default=False) as client:
        yield client


# -- 1. every step alone, saved ----------------------------------------------------------


@pytest.mark.parametrize("where", ["threads", "cluster"])
@pytest.mark.parametrize("name", NIR)
def test_every_step_alone_saves_its_result(name, where, small_sim, tmp_path, request):
    """Each step of the near-IR order, run alone with save_results=True, writes its
    product, readable by stdatamodels and detflow, on the threaded scheduler and on a
    local cluster. (jump and charge_migration failed: "Missing dependency ('_pick-...')"
    on threads, "FutureCancelledError ... lost dependencies" on a cluster: Dask was given
    the Dataset, see detflow.runtime.execute.lazy_parts.)"""
    scheduler = "threads" if where == "threads" else request.getfixturevalue("local_client")
    params = {"persistence_time": 1000} if name == "persistence" else {}
    with dask.config.set(scheduler=scheduler):
        result = STEP_CLASS_BY_NAME[name].call(str(small_sim.uncal), save_results=True,
                                               output_dir=str(tmp_path), **params)
    root = small_sim.uncal.name.replace("_uncal.fits", "")
    cal_step = get_step(name).cal_step
    status = "SKIPPED" if name in SKIPPED else "COMPLETE"
    if name == "ramp_fit":
        rate, rateints = result
        assert rate is not None and rateints is not None
        expected = {"rate": (dm.ImageModel, (160, 160)),
                    "rateints": (dm.CubeModel, (1, 160, 160))}
    else:
        expected = {name: (dm.RampModel, (1, 4, 160, 160))}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{root}_{suffix}.fits" for suffix in expected)
    for suffix, (model, shape) in expected.items():
        path = tmp_path / f"{root}_{suffix}.fits"
        with model(str(path)) as m:
            assert m.data.shape == shape
            assert getattr(m.meta.cal_step, cal_step) == status
        opened = detflow.open_product(path)
        assert opened["data"].shape == shape  # the SCI extension, as jwst's models name it
        assert np.isfinite(opened["data"].values).any()
        assert opened.attrs["cal_step"][name] == status  # (detflow names the steps)


# -- 2. resuming from a saved intermediate finds the references --------------------------


def test_a_step_resumed_from_an_intermediate_finds_the_references(small_sim, tmp_path,
                                                                   monkeypatch):
    """``LinearityStep.call("out/<root>_refpix.fits")``: the references are beside the
    exposure the intermediates came from (its header names it), not beside out/."""
    from astropy.io import fits

    from detflow import JumpStep, LinearityStep, RefPixStep, SuperBiasStep
    from detflow.contract import INPUT_KEYWORD

    monkeypatch.delenv("CRDS_PATH", raising=False)
    out = tmp_path / "out"
    root = small_sim.uncal.name.replace("_uncal.fits", "")
    SuperBiasStep.call(str(small_sim.uncal), save_results=True, output_dir=str(out))
    RefPixStep.call(str(out / f"{root}_superbias.fits"), save_results=True,
                    output_dir=str(out))
    for suffix in ("superbias", "refpix"):  # the first input, kept from product to product
        header = fits.getheader(out / f"{root}_{suffix}.fits")
        assert header[INPUT_KEYWORD] == str(small_sim.uncal.resolve())
    result = LinearityStep.call(str(out / f"{root}_refpix.fits"))
    entry = result.attrs["provenance"][-1]
    assert entry["reference_files"]["linearity"] == small_sim.refs["LINEARITY"].name
    assert result.attrs["cal_step"]["linearity"] == "COMPLETE"

    # without a header naming it (a copy alone), the error names both ways to give a folder
    alone = tmp_path / "alone" / f"{root}_refpix.fits"
    alone.parent.mkdir()
    with fits.open(out / f"{root}_refpix.fits") as hdul:
        del hdul[0].header[INPUT_KEYWORD]
        hdul.writeto(alone)
    with pytest.raises(ReferenceFileError) as info:
        JumpStep.call(str(alone))
    message = str(info.value)
    assert "--refs DIR" in message and "refs_dir=DIR" in message
    assert "override_gain=PATH" in message and "--steps.<step>.override_gain" in message
    assert JumpStep.call(str(alone), refs_dir=str(small_sim.uncal.parent / "refs")
                         ).attrs["cal_step"]["jump"] == "COMPLETE"


# -- 3. persistence without persistence_time says why it FAILED --------------------------


@pytest.mark.parametrize("ptime", [None, 0])
def test_persistence_without_a_time_logs_why_it_failed(ptime, small_sim, caplog):
    from detflow import PersistenceStep

    caplog.set_level("INFO", logger="detflow")
    params = {} if ptime is None else {"persistence_time": ptime}
    result = PersistenceStep.call(str(small_sim.uncal), **params)
    assert result.attrs["cal_step"]["persistence"] == "FAILED"  # as jwst records it
    records = [r for r in caplog.records if r.name.startswith("detflow")]
    assert len(records) == 1
    (record,) = records
    assert record.levelname == "WARNING" and record.name == "detflow.steps.persistence"
    text = record.getMessage()
    assert "FAILED" in text and "persistence_time" in text
    assert "--steps.persistence.persistence_time=SECONDS" in text
    assert ("not set" if ptime is None else "persistence_time=0 is not positive") in text


# -- 4. detflow info summarises products ---------------------------------------------------


@pytest.fixture(scope="module")
def products(small_sim, module_tmp):
    """Every product of a run: rate, rateints, fitopt, the calibrated ramp and two
    steps' outputs, and a Zarr store."""
    from detflow import Detector1Pipeline
    from detflow.io.products import to_zarr

    out = module_tmp("products")
    p = Detector1Pipeline(output_dir=str(out), save_results=True, save_calibrated_ramp=True)
    p.ramp_fit.save_opt = True
    p.superbias.save_results = True
    p.jump.save_results = True
    p.run(str(small_sim.uncal))
    root = small_sim.uncal.name.replace("_uncal.fits", "")
    paths = {kind: out / f"{root}_{kind}.fits"
             for kind in ("rate", "rateints", "fitopt", "ramp", "superbias", "jump")}
    paths["zarr"] = to_zarr(detflow.open_product(paths["rate"]), out / f"{root}_rate.zarr")
    return paths


@pytest.mark.parametrize("kind, expected", [
    ("rate", ["product:     rate  model ImageModel", "shape:       160 x 160 (y, x)  DN/s",
              "dims:        y 160, x 160", "err (y, x) float32", "dq (y, x) uint32",
              "DQ:          DO_NOT_USE", "jump:        PRIMECRS", "ramp_fit=COMPLETE"]),
    ("rateints", ["product:     rateints  model CubeModel", "dims:        integration 1, y 160",
                  "err (integration, y, x) float32", "ramp_fit=COMPLETE"]),
    ("fitopt", ["product:     fitopt  model RampFitOutputModel", "segment 2",
                "slope (integration, segment, y, x) float32", "crmag (integration, cr, y, x)",
                "jump=COMPLETE"]),
    ("zarr", ["product:     rate  model ImageModel", "err (y, x) float32", "ramp_fit=COMPLETE"]),
    ("superbias", ["model:       RampModel", "1 integration(s) x 4 group(s) x 160 x 160",
                   "variables:   data (integration, group, y, x) float32",
                   "pixeldq (y, x) uint32", "superbias=COMPLETE"]),
    ("jump", ["groupdq (integration, group, y, x) uint8", "group DQ:    ", "JUMP_DET",
              "jump=COMPLETE"]),
    ("ramp", ["variables:   data (integration, group, y, x) float32", "jump=COMPLETE"]),
])
def test_info_summarises_products(kind, expected, products, capsys):
    """``detflow info`` on a product (it said "not a JWST raw or ramp exposure")."""
    assert main(["info", str(products[kind])]) == 0
    out = capsys.readouterr().out
    assert "instrument:  NIRCAM NRCA1" in out and "SUB160" in out
    for text in expected:
        assert text in out, (text, out)


def test_info_still_refuses_what_is_no_jwst_file(tmp_path, capsys):
    from astropy.io import fits

    image = tmp_path / "image.fits"
    fits.PrimaryHDU(data=[[1.0, 2.0]]).writeto(image)
    assert main(["info", str(image)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("detflow: error:") and "image.fits" in err


# -- 5. every step's parameters from the command line --------------------------------------


def _listed_flags(text):
    """The ``--steps.STEP.PARAM=VALUE`` argument of each listed line (its description,
    after two or more spaces, may hold any text, e.g. jwst's "the data's phase")."""
    import re
    import shlex

    return [shlex.split(re.split(r"\s{2,}", line.strip())[0])[0] for line in text.splitlines()
            if line.strip().startswith("--steps.")]


def test_run_help_lists_every_step_parameter_with_its_default(capsys):
    """``detflow run --help`` lists them as strun's does; each line is a valid argument
    that sets the default again."""
    from detflow.pipeline.params import parse_step_args

    with pytest.raises(SystemExit) as done:
        main(["run", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "detflow params STEP" in out and "--save_calibrated_ramp=False" in out
    flags = _listed_flags(out)
    for name in NIR:
        step = get_step(name)
        for key in list(step.params) + ["skip"] + [f"override_{r}" for r in step.reftypes]:
            assert any(f.startswith(f"--steps.{name}.{key}=") for f in flags), (name, key)
    assert "--steps.jump.rejection_threshold=4.0" in flags
    for flag in flags:  # the listed value parses back to the default
        ((name, values),) = parse_step_args([flag]).items()
        ((key, value),) = values.items()
        step = get_step(name)
        default = step.defaults()[key]
        assert step.check_params({key: value})[key] == default, flag


def test_params_command_lists_one_step(capsys):
    assert main(["params", "jump"]) == 0
    out = capsys.readouterr().out
    flags = _listed_flags(out)
    assert flags and all(f.startswith("--steps.jump.") for f in flags)
    assert len(flags) == len(get_step("jump").params) + 3  # skip and two overrides
    assert main(["params", "jumpp"]) == 2
    assert "unknown step" in capsys.readouterr().err


# -- 6. the first run says that it compiles -------------------------------------------------


def test_uncompiled_kernels_reads_numbas_cache(tmp_path, monkeypatch):
    """The check behind the message, on a small module of our own: listed while numba's
    cache does not hold it, not once it is compiled (no minute-long compile here)."""
    from detflow.runtime.warm import uncompiled_kernels

    (tmp_path / "tiny_kernels.py").write_text(
        "import numba\n\n"
        "@numba.njit(cache=True, inline='always')\n"
        "def _inlined(x):\n    return x + 1\n\n"
        "@numba.njit(cache=True)\n"
        "def kernel(x):\n    return _inlined(x) * 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert uncompiled_kernels(["tiny_kernels"]) == ["tiny_kernels.kernel"]
    import tiny_kernels

    assert tiny_kernels.kernel(1) == 4  # compiles and writes the cache
    assert list((tmp_path / "__pycache__").glob("tiny_kernels.kernel-*.nbi"))
    assert uncompiled_kernels(["tiny_kernels"]) == []


@pytest.mark.parametrize("missing", [["_jump_numba.jump_tile"], []])
def test_run_says_it_compiles_only_when_the_cache_is_empty(missing, small_sim, tmp_path,
                                                          monkeypatch, capsys):
    import detflow.runtime.warm as warm

    monkeypatch.setattr(warm, "uncompiled_kernels", lambda: list(missing))
    assert main(["run", str(small_sim.uncal), "--output_dir", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    notice = "compiling detflow's kernels, first run only"
    assert captured.err.count(notice) == (1 if missing else 0)
    assert notice not in captured.out


# -- 7. closing a dashboard tab leaves the terminal clean ---------------------------------


def _bokeh_closed_tab_error():
    """The AssertionError Bokeh's server raises when a closed tab's session is detached."""
    from bokeh.server.connection import ServerConnection

    connection = object.__new__(ServerConnection)
    connection._session = None
    try:
        connection.session  # noqa: B018
    except AssertionError:
        import sys

        return sys.exc_info()
    raise AssertionError("bokeh no longer asserts here")


@pytest.mark.parametrize("logger_name", ["tornado.application", "bokeh.server.views.ws"])
def test_closing_a_dashboard_tab_prints_no_traceback(logger_name):
    import io
    import logging

    assert main([]) == 0  # the command line sets its logging up
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    try:
        logger.error("Uncaught exception GET /status/ws (127.0.0.1)",
                     exc_info=_bokeh_closed_tab_error())
        assert stream.getvalue() == ""
        try:
            raise AssertionError("a real problem")
        except AssertionError:
            logger.error("something else", exc_info=True)
        assert "a real problem" in stream.getvalue()  # anything else still shows
    finally:
        logger.removeHandler(handler)
