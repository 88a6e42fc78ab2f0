"""deploy/: the cluster specs are valid for the tools that use them."""

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from detflow import cli
from detflow.cli import run as cli_run
from detflow.errors import ParameterError
from detflow.runtime.cluster import (
    check_daskcluster_manifest,
    job_script,
    read_cluster_spec,
)

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def test_slurm_spec_renders_a_job_script():
    pytest.importorskip("dask_jobqueue")
    spec = read_cluster_spec("slurm")
    script = job_script(spec)
    assert script.startswith("#!/usr/bin/env bash")
    for line in ("#SBATCH -p normal", "#SBATCH --cpus-per-task=16", "#SBATCH --mem=96G",
                 "#SBATCH -t 04:00:00", "#SBATCH --output=detflow-worker-%j.log",
                 "source ~/detflow-env/bin/activate",
                 "export MALLOC_MMAP_THRESHOLD_=4194304"):
        assert line in script.splitlines(), line
    worker = next(line for line in script.splitlines() if "dask_worker" in line)
    assert worker.startswith("python -m distributed.cli.dask_worker tcp://")
    assert "--nthreads 4" in worker and "--nworkers 4" in worker
    assert "--memory-limit 24.00GiB" in worker


def test_kubernetes_manifest_has_what_the_operator_requires():
    spec = read_cluster_spec("kubernetes")
    manifest = spec["manifest"]
    check_daskcluster_manifest(manifest)
    worker = manifest["spec"]["worker"]["spec"]["containers"][0]
    scheduler = manifest["spec"]["scheduler"]["spec"]["containers"][0]
    assert worker["args"][:2] == ["dask", "worker"]
    assert scheduler["args"][:2] == ["dask", "scheduler"]
    assert worker["image"] == scheduler["image"]
    ports = {p["port"] for p in manifest["spec"]["scheduler"]["service"]["ports"]}
    assert ports == {8786, 8787}
    broken = yaml.safe_load(yaml.safe_dump(manifest))
    del broken["spec"]["worker"]["replicas"]
    with pytest.raises(ParameterError, match="replicas"):
        check_daskcluster_manifest(broken)
    broken = yaml.safe_load(yaml.safe_dump(manifest))
    broken["apiVersion"] = "v1"
    with pytest.raises(ParameterError, match="apiVersion"):
        check_daskcluster_manifest(broken)


def test_dockerfile_installs_as_the_readme_says():
    readme = (ROOT / "README.md").read_text()
    first = re.search(r"```bash\n(.*?)\n```", readme, re.S).group(1)
    install = first.split(" && ")[0].strip()
    assert install == "pip install -e ."
    lines = (DEPLOY / "kubernetes" / "Dockerfile").read_text().splitlines()
    assert f"RUN {install}" in lines
    assert "COPY . /opt/detflow" in lines


def test_bad_specs_are_named(tmp_path):
    with pytest.raises(ParameterError, match="no deploy/nosuch/cluster.yaml"):
        read_cluster_spec("nosuch")
    bad = tmp_path / "bad.yaml"
    bad.write_text("cluster: pbs\n")
    with pytest.raises(ParameterError, match="bad.yaml.*one of local, slurm, kubernetes"):
        read_cluster_spec(bad)
    bad.write_text("cluster: local\noptions: [1, 2]\n")
    with pytest.raises(ParameterError, match="'options' must be a mapping"):
        read_cluster_spec(bad)
    bad.write_text("cluster: local\nworkers: 3\n")
    with pytest.raises(ParameterError, match="unknown entries"):
        read_cluster_spec(bad)
    bad.write_text("cluster: kubernetes\n")
    with pytest.raises(ParameterError, match="manifest"):
        read_cluster_spec(bad)


def test_run_with_a_local_cluster_spec(sim_nircam_sub640, tmp_path, capsys):
    from test_program import _overrides

    spec = yaml.safe_load((DEPLOY / "local" / "cluster.yaml").read_text())
    spec["options"].update(n_workers=2, memory_limit="4GiB", dashboard_address=":0")
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(spec))
    sim = sim_nircam_sub640
    assert cli.main(["run", str(sim.uncal), "--cluster", str(path), "--output_dir",
                     str(tmp_path / "out")] + _overrides(sim)) == 0
    assert "dask dashboard: http" in capsys.readouterr().out
    ref = tmp_path / "ref"
    assert cli.main(["run", str(sim.uncal), "--output_dir", str(ref)] + _overrides(sim)) == 0
    from astropy.io import fits

    name = sim.uncal.name.replace("_uncal.fits", "_rate.fits")
    with fits.open(tmp_path / "out" / name) as a, fits.open(ref / name) as b:
        np.testing.assert_array_equal(a["SCI"].data, b["SCI"].data)
    with pytest.raises(ParameterError, match="not both"):
        cli_run._cluster_spec(cli._build_parser().parse_args(
            ["run", "x", "--cluster", "local", "--scheduler", "threads"]))
    shutil.rmtree(tmp_path / "out")
