"""End to end: detflow's Detector1Pipeline equals jwst 3.0.0's products, whatever the chunking
and the number of workers."""

import numpy as np
import pytest
from jwst_oracle import assert_products_identical
from stdatamodels.jwst import datamodels as dm

from detflow import Detector1Pipeline
from detflow.io.exposure import open_exposure

pytestmark = pytest.mark.jwst

ARRAYS = ("data", "err", "dq", "var_poisson", "var_rnoise")


def _overrides(sim):
    from detflow.pipeline.order import NIR_STEPS

    refs = {k.lower(): str(v) for k, v in sim.refs.items()}
    return {
        spec.name: {f"override_{r}": refs.get(r, "N/A") for r in spec.reftypes}
        for spec in NIR_STEPS
    }


@pytest.mark.parametrize("which", ["sim_nircam_sub640", "sim_nircam_tso", "sim_nircam_bright2"])
def test_rate_and_rateints_equal_jwst(which, jwst_steps, tmp_path):
    sim, products = jwst_steps(which)
    Detector1Pipeline.call(str(sim.uncal), steps=_overrides(sim), output_dir=str(tmp_path),
                           save_results=True)
    root = sim.uncal.name.replace("_uncal.fits", "")
    for kind in ("rate", "rateints"):
        assert_products_identical(tmp_path / f"{root}_{kind}.fits", products[kind])


def test_same_bits_for_any_chunking_and_workers(sim_nircam_sub640, tmp_path):
    from distributed import Client, LocalCluster

    sim = sim_nircam_sub640
    results = []
    cases = [({}, 1), ({"y": 100, "x": 77}, 1), ({"y": 160, "x": 250}, 2)]
    for chunks, workers in cases:
        ds = open_exposure(sim.uncal, chunks=chunks or None)
        p = Detector1Pipeline(steps=_overrides(sim))
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=":0") as cluster, Client(cluster):
            rate = p.build(ds)["rate"].compute()
        results.append(rate)
    for other in results[1:]:
        for name in ("data", "err", "dq", "var_poisson", "var_rnoise"):
            np.testing.assert_array_equal(results[0][name].values, other[name].values, name)


@pytest.fixture(scope="module")
def full_frame_two_ints(module_tmp, crds_offline):
    """NIRCam full frame, RAPID, 10 groups x 2 integrations with a ZEROFRAME, and jwst's
    rate and rateints for it (run once for the module)."""
    from jwst_oracle import run_detector1

    from detflow.simulator import simulate

    sim = simulate("nircam", module_tmp("nircam_full_2ints"), ngroups=10,
                   nints=2, zeroframe=True)
    out = module_tmp("jwst_full_2ints")
    model = run_detector1(sim.uncal, {k.lower(): str(v) for k, v in sim.refs.items()}, out,
                          crds_offline["CRDS_PATH"])
    model.close()
    root = sim.uncal.name.replace("_uncal.fits", "")
    return sim, {kind: out / f"{root}_{kind}.fits" for kind in ("rate", "rateints")}


def test_full_frame_command_line_equals_jwst_with_threads_or_processes(full_frame_two_ints,
                                                                       tmp_path):
    """``detflow run`` on a full frame with two integrations and a ZEROFRAME: the rate and
    rateints equal jwst's, and are the same bits with the default (Dask's threaded
    scheduler) and on a local cluster of two worker processes."""
    from jwst_oracle import step_overrides

    from detflow.cli import main

    sim, theirs = full_frame_two_ints
    args = [f"--steps.{step}.{key}={value}"
            for step, params in step_overrides({k.lower(): str(v)
                                                for k, v in sim.refs.items()}).items()
            for key, value in params.items()]
    root = sim.uncal.name.replace("_uncal.fits", "")
    runs = {"threads": [], "processes": ["--processes", "--n-workers=2",
                                         "--threads-per-worker=1"]}
    for name, extra in runs.items():
        assert main(["run", str(sim.uncal), f"--output_dir={tmp_path / name}", *extra,
                     *args]) == 0
    for kind in ("rate", "rateints"):
        assert_products_identical(tmp_path / "threads" / f"{root}_{kind}.fits", theirs[kind])
        with dm.open(str(tmp_path / "threads" / f"{root}_{kind}.fits")) as a, \
                dm.open(str(tmp_path / "processes" / f"{root}_{kind}.fits")) as b:
            for name in ARRAYS:
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name), name)


def test_persistence_through_the_pipeline_equals_jwst(sim_nircam_sub640, crds_offline,
                                                      tmp_path):
    """Detector1Pipeline with persistence on: the rate, rateints and the persistence array
    file equal jwst's, for a first run (no incoming file, the file is written) and a
    second run that reads that file back (``persistence_array_file``)."""
    import asdf
    from jwst_oracle import run_detector1

    sim = sim_nircam_sub640
    root = sim.uncal.name.replace("_uncal.fits", "")
    refs = {k.lower(): str(v) for k, v in sim.refs.items()}
    files = {}
    for who in ("jwst", "detflow"):
        first = tmp_path / who / "first"
        second = tmp_path / who / "second"
        pers = {"skip": False, "persistence_time": 200, "persistence_dnu": True,
                "save_persistence": str(tmp_path / who / "windows.fits")}
        chained = {**pers, "persistence_array_file": str(tmp_path / who / "windows.asdf"),
                   "save_persistence": str(tmp_path / who / "windows2.fits")}
        for out, params in ((first, pers), (second, chained)):
            out.mkdir(parents=True)
            if who == "jwst":
                run_detector1(sim.uncal, refs, out, crds_offline["CRDS_PATH"],
                              steps={"persistence": params}).close()
            else:
                steps = _overrides(sim)
                steps["persistence"] = params
                Detector1Pipeline.call(str(sim.uncal), steps=steps, output_dir=str(out),
                                       save_results=True)
        files[who] = (first, second)
    for (ours, theirs) in zip(files["detflow"], files["jwst"], strict=True):
        for kind in ("rate", "rateints"):
            assert_products_identical(ours / f"{root}_{kind}.fits", theirs / f"{root}_{kind}.fits")
    for name in ("windows.asdf", "windows2.asdf"):
        with asdf.open(tmp_path / "jwst" / name) as a, asdf.open(tmp_path / "detflow" / name) as b:
            ta, tb = a.tree["NRCA1"], b.tree["NRCA1"]
            assert tb["filename"] == ta["filename"]
            assert tb["pers_time"] == ta["pers_time"]
            for key in ("rows", "cols", "vals"):
                np.testing.assert_array_equal(np.asarray(tb[key]), np.asarray(ta[key]), key)
            assert len(ta["rows"]) > 0  # windows really carried
