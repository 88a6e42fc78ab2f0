"""End to end: detflow's Detector1Pipeline equals jwst 3.0.0's products, whatever the chunking
and the number of workers."""

import numpy as np
import pytest
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


def _assert_product_matches(path_ours, path_theirs):
    with dm.open(str(path_ours)) as a, dm.open(str(path_theirs)) as b:
        assert type(a) is type(b)
        np.testing.assert_array_equal(a.dq, b.dq, err_msg="DQ")
        for name in ("data", "err", "var_poisson", "var_rnoise"):
            x = np.asarray(getattr(a, name), np.float64)
            y = np.asarray(getattr(b, name), np.float64)
            np.testing.assert_array_equal(np.isnan(x), np.isnan(y), err_msg=f"{name} NaN")
            ok = np.isfinite(x) & np.isfinite(y)
            rel = np.abs(x[ok] - y[ok]) / np.maximum(np.abs(y[ok]), 1e-30)
            close = (rel <= 1e-5) | (np.abs(x[ok] - y[ok]) == 0)
            frac = close.mean() if close.size else 1.0
            assert frac >= 0.9999, f"{name}: only {100 * frac:.4f}% within 1e-5"
        assert a.meta.cal_step.instance == b.meta.cal_step.instance


@pytest.mark.parametrize("which", ["sim_nircam_sub640", "sim_nircam_tso", "sim_nircam_bright2"])
def test_rate_and_rateints_equal_jwst(which, jwst_steps, tmp_path):
    sim, products = jwst_steps(which)
    Detector1Pipeline.call(str(sim.uncal), steps=_overrides(sim), output_dir=str(tmp_path),
                           save_results=True)
    root = sim.uncal.name.replace("_uncal.fits", "")
    for kind in ("rate", "rateints"):
        _assert_product_matches(tmp_path / f"{root}_{kind}.fits", products[kind])


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
        for name in ("sci", "err", "dq", "var_poisson", "var_rnoise"):
            np.testing.assert_array_equal(results[0][name].values, other[name].values, name)
