"""workflows/: program files checked against their schema, run by ``detflow run``."""

import os
import shutil
from pathlib import Path

import pytest
import yaml

from detflow import cli
from detflow.errors import ParameterError
from detflow.workflow import read_workflow

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "workflows").glob("*.yaml"))


def test_shipped_workflows_follow_the_schema():
    names = {p.stem for p in SHIPPED}
    assert {"nircam_imaging", "nircam_tso", "miri_imaging"} <= names
    for path in SHIPPED:
        flow = read_workflow(path)
        assert flow.inputs and flow.output_dir


@pytest.mark.parametrize("doc,match", [
    ({"output_dir": "out"}, "'inputs' is a required property"),
    ({"inputs": []}, "inputs: \\[\\] should be non-empty"),
    ({"inputs": ["a"], "input_dir": "x"}, "Additional properties are not allowed"),
    ({"inputs": ["a"], "max_in_flight": 0}, "max_in_flight: 0 is less than the minimum"),
    ({"inputs": ["a"], "steps": {"jump": 3}}, "steps.jump: 3 is not of type 'object'"),
    ({"inputs": ["a"], "cluster": {"workers": 2}}, "cluster"),
    ({"inputs": ["a"], "steps": {"jumpp": {}}}, "unknown step 'jumpp'"),
    ({"inputs": ["a"], "steps": {"jump": {"rejection_treshold": 4}}},
     "no parameter 'rejection_treshold'"),
    ({"inputs": ["a"], "intermediates": ["jump", "nosuch"]}, "unknown steps \\['nosuch'\\]"),
])
def test_bad_workflows_are_named(tmp_path, doc, match):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ParameterError, match=match) as info:
        read_workflow(path)
    assert "bad.yaml" in str(info.value)


def test_not_yaml_and_missing(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("inputs: [a\n")
    with pytest.raises(ParameterError, match="broken.yaml: not valid YAML"):
        read_workflow(path)
    with pytest.raises(ParameterError, match="file not found"):
        read_workflow(tmp_path / "none.yaml")


def test_run_a_workflow(sim_nircam_sub640, tmp_path, capsys, monkeypatch):
    from test_program import _program, _step_refs

    sim = sim_nircam_sub640
    folder, paths = _program(sim, tmp_path, n=2, truncated=False)
    steps = {}
    for step, rt, path in _step_refs(sim):
        steps.setdefault(step, {})[f"override_{rt}"] = path
    steps["jump"]["rejection_threshold"] = 5.0
    flow = {"name": "test", "inputs": [str(folder / "*_uncal.fits")], "output_dir": "out",
            "steps": steps, "cluster": {"n_workers": 1, "threads_per_worker": 2},
            "max_in_flight": 1}
    wf = tmp_path / "flow.yaml"
    wf.write_text(yaml.safe_dump(flow))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", str(wf)]) == 0
    out = capsys.readouterr().out
    assert "workflow test" in out and "2 done" in out and "dask dashboard" in out
    assert len(list((tmp_path / "out").glob("*_rate.fits"))) == 2
    # the command line wins over the file: another output folder, threads, and a
    # step parameter added to the file's
    assert cli.main(["run", str(wf), "--output_dir", "elsewhere", "--scheduler", "threads",
                     "--steps.jump.skip=true"]) == 0
    assert len(list((tmp_path / "elsewhere").glob("*_rate.fits"))) == 2
    from astropy.io import fits

    name = paths[0].name.replace("_uncal.fits", "_rate.fits")
    with fits.open(tmp_path / "out" / name) as a, fits.open(
            tmp_path / "elsewhere" / name) as b:
        assert a[0].header["S_JUMP"] == "COMPLETE"
        assert b[0].header["S_JUMP"] == "SKIPPED"
    # intermediates from the file: the jump step's output as a Zarr store
    flow["intermediates"] = ["jump"]
    wf.write_text(yaml.safe_dump(flow))
    assert cli.main(["run", str(wf), "--output_dir", "third"]) == 0
    assert sorted(p.name for p in (tmp_path / "third").glob("*.zarr")) == sorted(
        p.name.replace("_uncal.fits", "_jump.zarr") for p in paths)


@pytest.mark.jwst
def test_miri_workflow_runs_and_equals_jwst(jwst_steps, tmp_path, monkeypatch):
    """The shipped MIRI program, run as its header says, makes jwst's rate and rateints."""
    from jwst_oracle import assert_products_identical

    sim, products = jwst_steps("sim_miri")
    demo = tmp_path / "demo" / "miri"
    demo.mkdir(parents=True)
    os.symlink(sim.uncal, demo / Path(sim.uncal).name)
    shutil.copytree(Path(sim.uncal).parent / "refs", demo / "refs")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", str(ROOT / "workflows" / "miri_imaging.yaml")]) == 0
    root = Path(sim.uncal).name.replace("_uncal.fits", "")
    for kind in ("rate", "rateints"):
        assert_products_identical(demo / "out" / f"{root}_{kind}.fits", products[kind])
