"""The ``detflow`` command line: simulate, info, run --dry-run, and clear errors on bad input."""

import shutil
import subprocess
import sys

import asdf
import pytest
from astropy.io import fits

import detflow
from detflow.cli import main


def run_cli(*args, cwd=None):
    """Run ``python -m detflow`` in a subprocess: what a user sees (stdout, stderr, status)."""
    proc = subprocess.run(
        [sys.executable, "-m", "detflow", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, timeout=300,
    )
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def small_sim(module_tmp):
    out = module_tmp("cli_sim")
    status = main(["simulate", "nircam", str(out), "--subarray", "SUB160", "--ngroups", "4",
                   "--nints", "2", "--seed", "3"])
    assert status == 0
    return out


def _uncal(folder):
    (path,) = folder.glob("*_uncal.fits")
    return path


def test_version_and_help():
    status, out, err = run_cli("--version")
    assert status == 0 and detflow.__version__ in out
    status, out, _ = run_cli("--help")
    assert status == 0
    for command in ("simulate", "info", "run"):
        assert command in out


def test_simulate_writes_everything(small_sim):
    uncal = _uncal(small_sim)
    assert (small_sim / "manifest.json").exists()
    assert len(list((small_sim / "refs").glob("*.fits"))) == 8
    with fits.open(uncal) as hdul:
        assert hdul[0].header["SUBARRAY"] == "SUB160"
        assert hdul["SCI"].data.shape == (2, 4, 160, 160)
    # nothing half-written is left behind
    assert not list(small_sim.rglob("*.part"))


def test_simulate_a_miri_segment_with_showers(tmp_path, capsys):
    """--segment, --ints-per-segment and --showers reach the simulator; info names the
    segment's integrations."""
    import json

    out = tmp_path / "seg"
    assert main(["simulate", "miri", str(out), "--subarray", "SUB64", "--ngroups", "4",
                 "--nints", "6", "--segment", "2", "--ints-per-segment", "3",
                 "--showers", "2"]) == 0
    uncal = _uncal(out)
    assert "-seg002_" in uncal.name
    with fits.open(uncal) as hdul:
        assert (hdul[0].header["INTSTART"], hdul[0].header["INTEND"]) == (4, 6)
        assert hdul[0].header["NINTS"] == 6
        assert hdul["SCI"].data.shape == (3, 4, 64, 72)
    manifest = json.loads((out / "manifest.json").read_text())
    (entry,) = manifest.values() if "uncal" not in manifest else (manifest,)
    assert len(entry["showers"]) == 2
    capsys.readouterr()
    assert main(["info", str(uncal)]) == 0
    assert "segment: integrations 4-6 of 6" in capsys.readouterr().out
    assert main(["simulate", "miri", str(tmp_path / "bad"), "--showers", "many"]) == 2


def test_info_summarises_the_exposure(small_sim):
    status, out, err = run_cli("info", _uncal(small_sim))
    assert status == 0, err
    for text in ("NIRCAM NRCA1", "SUB160", "2 integration(s) x 4 group(s) x 160 x 160", "RAPID",
                 "frame 0.27692 s", "pixel DQ:    none set"):
        assert text in out


def test_run_dry_run_resolves_refs_from_the_simulation_folder(small_sim):
    status, out, err = run_cli("run", "--dry-run", _uncal(small_sim))
    assert status == 0, err
    assert "run  dark_current" in out and "dark=jwst_nircam_dark_nrca1_s3_sub160.fits" in out
    assert "skip persistence" in out


def test_run_calibrates_and_writes_jwst_products(small_sim, tmp_path):
    from stdatamodels.jwst import datamodels as dm

    status, out, err = run_cli("run", _uncal(small_sim), "--output_dir", tmp_path,
                               "--n-workers", "1", "--steps.jump.rejection_threshold=5")
    assert status == 0, err
    assert "dask dashboard: http" in out
    root = _uncal(small_sim).name.replace("_uncal.fits", "")
    with dm.open(str(tmp_path / f"{root}_rate.fits")) as rate:
        assert isinstance(rate, dm.ImageModel) and rate.data.shape == (160, 160)
        assert rate.meta.cal_step.ramp_fit == "COMPLETE"
    with dm.open(str(tmp_path / f"{root}_rateints.fits")) as rateints:
        assert isinstance(rateints, dm.CubeModel) and rateints.data.shape == (2, 160, 160)
    assert not list(tmp_path.glob("*.part"))


def test_run_with_dasks_threaded_scheduler_gives_the_same_products(small_sim, tmp_path):
    """One input runs on Dask's threaded scheduler by default (no cluster, no dashboard);
    ``--dashboard`` starts a local cluster; both write the same bits."""
    import numpy as np
    from stdatamodels.jwst import datamodels as dm

    root = _uncal(small_sim).name.replace("_uncal.fits", "")
    for name, extra in (("cluster", ["--dashboard"]), ("threads", [])):
        status, out, err = run_cli("run", _uncal(small_sim), "--output_dir", tmp_path / name,
                                   *extra)
        assert status == 0, err
        assert ("dask dashboard: http" in out) == (name == "cluster"), out
        assert ("dask scheduler: threads" in out) == (name == "threads"), out
    for kind in ("rate", "rateints"):
        with dm.open(str(tmp_path / "cluster" / f"{root}_{kind}.fits")) as a, \
                dm.open(str(tmp_path / "threads" / f"{root}_{kind}.fits")) as b:
            for attr in ("data", "err", "dq", "var_poisson", "var_rnoise"):
                np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr), attr)


@pytest.mark.parametrize("argv, expected", [
    ([], "threads"),
    (["--dashboard"], None),
    (["--n-workers", "2"], None),
    (["--processes"], None),
    (["--scheduler", "tcp://127.0.0.1:8786"], "tcp://127.0.0.1:8786"),
    (["--scheduler", "synchronous"], "synchronous"),
])
def test_scheduler_choice(argv, expected):
    from detflow.cli import _build_parser, choose_scheduler

    args = _build_parser().parse_args(["run", "x_uncal.fits", *argv])
    assert choose_scheduler(args, 1) == expected
    # several inputs (a program) run on a local cluster unless a scheduler is named
    assert choose_scheduler(args, 3) == (expected if "--scheduler" in argv else None)


def test_single_step_parameter_file_runs_that_step(small_sim, tmp_path):
    pars = tmp_path / "refpix_pars.asdf"
    asdf.AsdfFile({"class": "jwst.refpix.refpix_step.RefPixStep", "name": "refpix",
                   "parameters": {"side_gain": 0.5}}).write_to(pars)
    status, out, err = run_cli("run", pars, _uncal(small_sim), "--output_dir", tmp_path,
                               "--n-workers", "1")
    assert status == 0, err
    root = _uncal(small_sim).name.replace("_uncal.fits", "")
    assert (tmp_path / f"{root}_refpix.fits").exists()
    assert not (tmp_path / f"{root}_rate.fits").exists()


def _assert_clean_error(status, err, *needles):
    assert status == 2, err
    assert err.startswith("detflow: error:"), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err


def test_truncated_fits_is_a_clear_error(small_sim, tmp_path):
    bad = tmp_path / "truncated_uncal.fits"
    data = _uncal(small_sim).read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    before = sorted(p.name for p in tmp_path.iterdir())
    for args in (("info", bad), ("run", "--dry-run", bad)):
        status, _, err = run_cli(*args)
        _assert_clean_error(status, err, "truncated_uncal.fits")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_not_jwst_raw_data_is_a_clear_error(tmp_path):
    notjwst = tmp_path / "image.fits"
    fits.PrimaryHDU(data=[[1.0, 2.0]]).writeto(notjwst)
    status, _, err = run_cli("info", notjwst)
    _assert_clean_error(status, err, "image.fits")
    text = tmp_path / "notes_uncal.fits"
    text.write_text("this is not a FITS file\n")
    status, _, err = run_cli("info", text)
    _assert_clean_error(status, err, "notes_uncal.fits")
    status, _, err = run_cli("info", tmp_path / "missing_uncal.fits")
    _assert_clean_error(status, err, "missing_uncal.fits")


def test_reference_for_another_detector_is_a_clear_error(small_sim, tmp_path):
    (gain,) = (small_sim / "refs").glob("*gain*.fits")
    other = tmp_path / "gain_nrcb1.fits"
    shutil.copy(gain, other)
    with fits.open(other, mode="update") as hdul:
        hdul[0].header["DETECTOR"] = "NRCB1"
    status, _, err = run_cli("run", "--dry-run", _uncal(small_sim),
                             f"--steps.jump.override_gain={other}")
    _assert_clean_error(status, err, "GAIN", "NRCB1", "gain_nrcb1.fits")


def test_missing_reference_names_type_exposure_and_remedy(small_sim, tmp_path):
    lonely = tmp_path / "alone"
    lonely.mkdir()
    uncal = lonely / _uncal(small_sim).name
    shutil.copy(_uncal(small_sim), uncal)
    status, _, err = run_cli("run", "--dry-run", uncal)
    _assert_clean_error(status, err, "MASK", uncal.name, "override_mask")
    assert sorted(p.name for p in lonely.iterdir()) == [uncal.name]


def test_bad_step_arguments(small_sim):
    status, _, err = run_cli("run", "--dry-run", _uncal(small_sim), "--steps.nosuchstep.x=1")
    _assert_clean_error(status, err, "nosuchstep")
    status, _, err = run_cli("run", "--dry-run", _uncal(small_sim), "--steps.jump")
    _assert_clean_error(status, err)


def test_pipeline_parameters_as_strun_takes_them(small_sim, tmp_path):
    """``--save_calibrated_ramp true`` (or ``=true``) sets the pipeline's own parameter,
    as with strun; an unknown one is a clear error listing those there are."""
    status, out, err = run_cli("run", _uncal(small_sim), "--save_calibrated_ramp", "true",
                               "--output_dir", tmp_path)
    assert status == 0, err
    root = _uncal(small_sim).name.replace("_uncal.fits", "")
    assert (tmp_path / f"{root}_ramp.fits").exists()
    status, _, err = run_cli("run", "--dry-run", _uncal(small_sim), "--save_calibrated=1")
    _assert_clean_error(status, err, "--save_calibrated=1", "save_calibrated_ramp",
                        "--steps.STEP.PARAM=VALUE")


def test_step_file_parameters_on_the_command_line():
    from detflow.pipeline.params import parse_step_args

    got = parse_step_args(["--side_gain=0.5", "--steps.refpix.odd_even_rows", "false",
                           "--skip", "true"], own={"side_gain", "skip"})
    assert got == {None: {"side_gain": 0.5, "skip": True},
                   "refpix": {"odd_even_rows": False}}
    with pytest.raises(detflow.errors.ParameterError, match="unrecognised argument"):
        parse_step_args(["--side_gain=0.5"])


def test_asdf_parameter_file_is_honoured(small_sim, tmp_path):
    (gain,) = (small_sim / "refs").glob("*gain*.fits")
    other = tmp_path / "gain_other.fits"
    shutil.copy(gain, other)
    with fits.open(other, mode="update") as hdul:
        hdul[0].header["DETECTOR"] = "NRCA2"
    pars = tmp_path / "detector1_pars.asdf"
    asdf.AsdfFile({
        "class": "jwst.pipeline.calwebb_detector1.Detector1Pipeline",
        "name": "Detector1Pipeline",
        "parameters": {"save_calibrated_ramp": False},
        "steps": [
            {"class": "jwst.jump.jump_step.JumpStep", "name": "jump",
             "parameters": {"rejection_threshold": 6.0, "override_gain": str(other)}},
        ],
    }).write_to(pars)
    status, _, err = run_cli("run", pars, "--dry-run", _uncal(small_sim))
    _assert_clean_error(status, err, "GAIN", "NRCA2")
    # the command line overrides the parameter file
    status, out, err = run_cli("run", pars, "--dry-run", _uncal(small_sim),
                               f"--steps.jump.override_gain={gain}")
    assert status == 0, err
