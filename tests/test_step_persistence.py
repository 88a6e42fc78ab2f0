"""persistence equals jwst 3.0.0's PersistenceStep (time-window flagging), and is lazy.

jwst 3.0.0 has no persistence reference files: the first saturated group of a pixel
(or a group above ``dn_threshold``) opens a window of ``persistence_time`` seconds,
groups inside a window get PERSISTENCE (+DO_NOT_USE with ``persistence_dnu``), and the
windows still open are written to an ASDF file that a later exposure reads back.

Every case feeds jwst's input of the step (the jump step's output, NIR order) to both
jwst and detflow, detflow on deliberately uneven tiles, and asserts GROUPDQ, PIXELDQ
and SCI identical (max 0 ulp: the step only sets DQ bits) and the written persistence
array files identical (filename, rows, cols, vals to the bit, pers_time, dtypes, and
the other detectors' entries kept). The chained cases run two exposures with jwst
(the second reading the first's file) and the same two with detflow.
"""

import shutil
from pathlib import Path

import asdf
import numpy as np
import pytest
import xarray as xr
from lazycheck import no_compute
from stepcheck import assert_ramp_matches, step_input

from detflow import dqflags
from detflow.errors import ParameterError
from detflow.io.exposure import open_exposure
from detflow.io.persistence import (
    open_persistence_array,
    persistence_file_path,
    write_persistence_array,
)
from detflow.pipeline.builder import apply_step
from detflow.steps import persistence as sp
from detflow.steps.persistence import STEP
from detflow.tiling import Tiling

pytestmark = pytest.mark.jwst

UNEVEN = {"y": 100, "x": 77}
OTHER_DETECTOR = "NRCB4"  # an entry of another detector that every write must keep


# ----------------------------------------------------------------------------- helpers


def _jwst_persistence(path, crds, outdir, **params):
    """jwst's PersistenceStep alone on a ramp file; returns (model, saved ramp path)."""
    from jwst.persistence import PersistenceStep
    from jwst_oracle import crds_environment

    outdir.mkdir(parents=True, exist_ok=True)
    with crds_environment(crds):
        model = PersistenceStep.call(str(path), skip=False, save_results=True,
                                     output_dir=str(outdir), **params)
    (saved,) = outdir.glob("*.fits")  # <root>_persistencestep.fits, for a step called alone
    return model, saved


def _detflow_persistence(path, chunks=UNEVEN, **params):
    """detflow's step on a ramp file, the incoming array opened as the pipeline layer
    will (``open_persistence_array``), written as the runner will; returns the computed
    Dataset."""
    ds = open_exposure(path, chunks=chunks)
    full = STEP.check_params({"skip": False, **params})
    refs = {}
    if full["persistence_array_file"] is not None and full["persistence_time"]:
        refs["persistence_array"] = open_persistence_array(
            full["persistence_array_file"], ds, full["persistence_time"])
    ours = STEP.apply(ds, refs, full).compute()
    if full["save_persistence"] is not None and "persistence_array" in ours:
        write_persistence_array(
            full["save_persistence"], ours["persistence_array"].values,
            detector=ds.attrs["detector"], filename=Path(ds.attrs["source"]).name,
            persistence_time=full["persistence_time"])
    return ours


def _seed_other_detector(path):
    """A persistence file holding another detector's entry (both runs must keep it)."""
    asdf.dump({OTHER_DETECTOR: {"filename": "other_uncal.fits",
                                "rows": np.array([1, 2], dtype=np.int64),
                                "cols": np.array([3, 4], dtype=np.int64),
                                "vals": np.array([1.7e9, 1.8e9]), "pers_time": 7}},
              str(path))


def _assert_files_equal(ours, theirs):
    """Two persistence array files hold the same entries, bit for bit."""
    a, b = asdf.load(str(ours)), asdf.load(str(theirs))
    keys = {k for k in b if k not in ("asdf_library", "history")}
    assert {k for k in a if k not in ("asdf_library", "history")} == keys
    for det in keys:
        assert set(a[det]) == set(b[det]), det
        for name in ("rows", "cols", "vals"):
            x, y = np.asarray(a[det][name]), np.asarray(b[det][name])
            assert x.dtype == y.dtype, (det, name, x.dtype, y.dtype)
            np.testing.assert_array_equal(x, y, err_msg=f"{det}.{name}")
        assert a[det]["pers_time"] == b[det]["pers_time"]
        assert type(a[det]["pers_time"]) is type(b[det]["pers_time"])
        assert a[det]["filename"] == b[det]["filename"]


def _assert_matches(ours, model, saved):
    assert_ramp_matches(ours, saved, max_ulp=0)
    assert ours.attrs["cal_step"]["persistence"] == model.meta.cal_step.persistence


def _shifted_exposure(src, dest, seconds, *, flip=True):
    """A second exposure of the same detector: ``src`` started ``seconds`` later (EXPSTART
    and every INT_TIMES column), with its pixels mirrored in x so that other pixels
    saturate."""
    from stdatamodels.jwst import datamodels as dm

    with dm.RampModel(str(src)) as m:
        if flip:
            m.data = np.ascontiguousarray(m.data[..., ::-1])
            m.groupdq = np.ascontiguousarray(m.groupdq[..., ::-1])
            m.pixeldq = np.ascontiguousarray(m.pixeldq[..., ::-1])
        day = seconds / 86400.0
        m.meta.exposure.start_time = m.meta.exposure.start_time + day
        table = m.int_times.copy()
        for name in table.dtype.names:
            if "MJD" in name or "BJD" in name:
                table[name] = table[name] + day
        m.int_times = table
        m.save(str(dest))
    return dest


# ----------------------------------------------------------------------------- parameters


def test_persistence_parameters_are_jwsts():
    from jwst.persistence import PersistenceStep

    step = PersistenceStep()
    for name, param in STEP.params.items():
        assert getattr(step, name) == param.default, name
    spec = {line.split("=")[0].strip(): line.split("=", 1)[1].split("(")[0].strip()
            for line in PersistenceStep.spec.strip().splitlines()}
    assert spec.pop("skip") == "boolean" and step.skip is STEP.skip_default
    assert spec == {k: p.kind for k, p in STEP.params.items()}
    # (its name, class, cal_step and reference types: tests/test_registry.py)


def test_persistence_file_path_is_jwsts():
    # jwst: the suffix of save_persistence becomes .asdf (relative paths stay relative)
    assert persistence_file_path("a/b/pers.fits") == Path("a/b/pers.asdf")
    assert persistence_file_path("pers") == Path("pers.asdf")
    assert persistence_file_path("pers.asdf") == Path("pers.asdf")
    assert persistence_file_path("x.y.fits") == Path("x.y.asdf")


# ----------------------------------------------------------------------------- one exposure


CASES = {
    # windows (20 s, about 5 groups) close inside the integration and across the 2nd one
    "sub640_window": ("sim_nircam_sub640", {"persistence_time": 20}),
    "sub640_dnu": ("sim_nircam_sub640", {"persistence_time": 20, "persistence_dnu": True}),
    # dn_threshold opens windows below saturation too; long window: still open at the end
    "sub640_threshold": ("sim_nircam_sub640", {"persistence_time": 300,
                                               "dn_threshold": 12000.0}),
    "sub640_threshold_dnu": ("sim_nircam_sub640", {"persistence_time": 9,
                                                   "dn_threshold": 4000.5,
                                                   "persistence_dnu": True}),
    # 20 integrations of ~2 s: windows of 3 s cross integrations and close and re-open
    "tso_multi_int": ("sim_nircam_tso", {"persistence_time": 3}),
    "tso_threshold": ("sim_nircam_tso", {"persistence_time": 5, "dn_threshold": 3000.0,
                                         "persistence_dnu": True}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_persistence_matches_jwst(case, jwst_steps, crds_offline, tmp_path):
    which, params = CASES[case]
    sim, products = jwst_steps(which)
    path = step_input(products, "persistence")
    for d in ("jwst", "ours"):
        (tmp_path / d).mkdir()
        _seed_other_detector(tmp_path / d / "pers.asdf")
    model, saved = _jwst_persistence(path, crds_offline, tmp_path / "jwst_out",
                                     save_persistence=str(tmp_path / "jwst" / "pers.fits"),
                                     **params)
    ours = _detflow_persistence(path, save_persistence=str(tmp_path / "ours" / "pers.fits"),
                                **params)
    _assert_matches(ours, model, saved)
    _assert_files_equal(tmp_path / "ours" / "pers.asdf", tmp_path / "jwst" / "pers.asdf")
    gdq = ours["groupdq"].values
    flagged = (gdq & dqflags.PERSISTENCE) > 0
    assert flagged.any()  # the case flags something
    before = open_exposure(path)["groupdq"].values
    np.testing.assert_array_equal(gdq & ~np.uint8(dqflags.PERSISTENCE | dqflags.DO_NOT_USE),
                                  before & ~np.uint8(dqflags.PERSISTENCE | dqflags.DO_NOT_USE))
    if not params.get("persistence_dnu"):
        np.testing.assert_array_equal(gdq & dqflags.DO_NOT_USE, before & dqflags.DO_NOT_USE)
    assert ours["persistence_array"].dtype == np.float64


# ----------------------------------------------------------------------------- two exposures


CHAINS = {
    # B starts 80 s after A; A's 100 s windows are still open at B's start, close during B
    "later": (80.0, {"persistence_time": 100}, {}),
    "later_threshold_dnu": (75.0, {"persistence_time": 60, "dn_threshold": 15000.0},
                            {"persistence_dnu": True}),
    # B reads A's file with another persistence_time: jwst ignores the entry
    "pers_time_differs": (80.0, {"persistence_time": 100}, {"persistence_time": 99}),
    # B starts before A's windows began: the carried windows are "backwards" and reset
    "earlier": (-200.0, {"persistence_time": 100}, {}),
    # B long after: every carried window has ended before B's first group
    "much_later": (5000.0, {"persistence_time": 100}, {}),
}


@pytest.mark.parametrize("case", sorted(CHAINS))
def test_persistence_chain_matches_jwst(case, jwst_steps, crds_offline, tmp_path):
    shift, params_a, changes_b = CHAINS[case]
    params_b = {**params_a, **changes_b}
    sim, products = jwst_steps("sim_nircam_sub640")
    exp_a = step_input(products, "persistence")
    root_b = exp_a.name.replace("_00001_", "_00002_")
    exp_b = _shifted_exposure(exp_a, tmp_path / root_b, shift)
    for d in ("jwst", "ours"):
        (tmp_path / d).mkdir()
        _seed_other_detector(tmp_path / d / "pers.asdf")

    def files(d):
        pers = str(tmp_path / d / "pers.asdf")
        return {"save_persistence": pers}, {"save_persistence": pers,
                                            "persistence_array_file": pers}

    ja, jb = files("jwst")
    model_a, saved_a = _jwst_persistence(exp_a, crds_offline, tmp_path / "ja", **ja, **params_a)
    shutil.copy(tmp_path / "jwst" / "pers.asdf", tmp_path / "jwst_after_a.asdf")
    model_b, saved_b = _jwst_persistence(exp_b, crds_offline, tmp_path / "jb", **jb, **params_b)

    oa, ob = files("ours")
    ours_a = _detflow_persistence(exp_a, **oa, **params_a)
    _assert_matches(ours_a, model_a, saved_a)
    _assert_files_equal(tmp_path / "ours" / "pers.asdf", tmp_path / "jwst_after_a.asdf")
    ours_b = _detflow_persistence(exp_b, **ob, **params_b)
    _assert_matches(ours_b, model_b, saved_b)
    _assert_files_equal(tmp_path / "ours" / "pers.asdf", tmp_path / "jwst" / "pers.asdf")

    # the carried windows matter exactly in the cases where jwst uses them
    alone = _detflow_persistence(exp_b, **params_b)
    carried = not np.array_equal(alone["groupdq"].values, ours_b["groupdq"].values)
    assert carried == (case in ("later", "later_threshold_dnu")), case


def test_persistence_missing_incoming_file_starts_empty(jwst_steps, crds_offline, tmp_path):
    """jwst starts from an empty array when persistence_array_file does not exist."""
    sim, products = jwst_steps("sim_nircam_sub640")
    path = step_input(products, "persistence")
    params = {"persistence_time": 20, "persistence_array_file": str(tmp_path / "none.asdf")}
    model, saved = _jwst_persistence(path, crds_offline, tmp_path / "j", **params)
    ours = _detflow_persistence(path, **params)
    _assert_matches(ours, model, saved)
    np.testing.assert_array_equal(
        ours["groupdq"].values, _detflow_persistence(path, persistence_time=20)["groupdq"])


@pytest.mark.parametrize("ptime", [None, 0, -5])
def test_persistence_failed_without_valid_time(ptime, jwst_steps, crds_offline, tmp_path):
    """No (or a non-positive) persistence_time: jwst records FAILED and changes nothing."""
    sim, products = jwst_steps("sim_nircam_sub640")
    path = step_input(products, "persistence")
    model, saved = _jwst_persistence(path, crds_offline, tmp_path / "j", persistence_time=ptime,
                                     save_persistence=str(tmp_path / "j.asdf"))
    ours = _detflow_persistence(path, persistence_time=ptime)
    _assert_matches(ours, model, saved)
    assert ours.attrs["cal_step"]["persistence"] == "FAILED"
    assert "persistence_array" not in ours
    assert not (tmp_path / "j.asdf").exists()  # jwst writes no file either


def test_persistence_is_skipped_by_default(sim_nircam_sub640):
    ds = open_exposure(sim_nircam_sub640.uncal)
    out = apply_step("persistence", ds, {})
    assert out.attrs["cal_step"]["persistence"] == "SKIPPED"
    assert "persistence_array" not in out


# ----------------------------------------------------------------------------- synthetic


def _synthetic(nints=3, ngroups=7, ny=23, nx=31, seed=5, table_rows=None):
    """A ramp with SAT in odd patterns (single groups, re-saturating), NaN data, and
    timing with or without (part of) an INT_TIMES table."""
    from stdatamodels.jwst import datamodels as dm

    rng = np.random.default_rng(seed)
    data = rng.normal(1000, 800, (nints, ngroups, ny, nx)).astype(np.float32)
    data[rng.random(data.shape) < 0.02] = np.nan
    gdq = np.zeros(data.shape, np.uint8)
    first = rng.integers(0, ngroups + 3, (nints, ny, nx))  # first SAT group, often none
    groups = np.arange(ngroups)[None, :, None, None]
    gdq[groups >= first[:, None]] |= dqflags.SATURATED
    gdq[rng.random(data.shape) < 0.03] |= dqflags.SATURATED  # isolated SAT groups
    gdq[rng.random(data.shape) < 0.05] |= dqflags.JUMP_DET | dqflags.DO_NOT_USE
    model = dm.RampModel(data=data, groupdq=gdq, pixeldq=np.zeros((ny, nx), np.uint32))
    e = model.meta.exposure
    e.start_time, e.group_time, e.integration_time = 60300.25, 1.31, 9.17
    model.meta.instrument.detector = "NRCA1"
    tables = {}
    if table_rows:
        starts = 60300.25 + np.arange(table_rows) * 11.3 / 86400
        from stdatamodels.properties import ObjectNode

        dtype = ObjectNode("", model._instance, model._schema, model._ctx, None).get_dtype(
            "int_times")
        tab = np.zeros(table_rows, dtype=dtype)
        tab["integration_number"] = np.arange(table_rows) + 1
        tab["int_start_MJD_UTC"] = starts
        model.int_times = tab
        tables = {"int_times": {"int_start_MJD_UTC": starts.tolist()}}
    attrs = {"detector": "NRCA1", "expstart": e.start_time, "group_time": e.group_time,
             "integration_time": e.integration_time, "tables": tables}
    dims = ("integration", "group", "y", "x")
    ds = xr.Dataset({"data": (dims, data), "groupdq": (dims, gdq),
                     "pixeldq": (("y", "x"), model.pixeldq)},
                    coords={"y": np.arange(ny) + 100, "x": np.arange(nx) + 7}, attrs=attrs)
    # carried-in windows: ended, open, NaN, and "from the future" (backwards)
    t0 = (60300.25 - 40587.0) * 86400.0
    state = rng.choice([0.0, t0 - 5, t0 + 3.3, t0 + 12, t0 + 1e4, np.nan], size=(ny, nx))
    return model, ds, state


@pytest.mark.parametrize("table_rows", [None, 2, 3])
@pytest.mark.parametrize("params", [
    {"persistence_time": 4},
    {"persistence_time": 13, "persistence_dnu": True},
    {"persistence_time": 7, "dn_threshold": 2500.3},
])
def test_persistence_synthetic_matches_jwst_dataset(params, table_rows):
    """The kernel against jwst's ``persistence.DataSet`` on awkward inputs: SAT in single
    groups, NaN data and windows, carried windows that ended, are open or lie ahead, and
    integration times from INT_TIMES, from EXPSTART/EFFINTTM, or from both."""
    from jwst.persistence.persistence import DataSet

    model, ds, state = _synthetic(table_rows=table_rows)
    full = STEP.check_params({"skip": False, **params})
    theirs = DataSet(model, None, full["persistence_time"], full["dn_threshold"],
                     state.copy(), full["persistence_dnu"])
    result, _ = theirs.do_all()
    for chunks in ({"y": 5, "x": 4}, {"y": -1, "x": -1}):
        ours = sp.apply(ds.chunk(chunks), {"persistence_array": state}, full).compute()
        np.testing.assert_array_equal(ours["groupdq"].values, result.groupdq)
        np.testing.assert_array_equal(ours["persistence_array"].values,
                                      theirs.persistence_array)
    assert ((result.groupdq & dqflags.PERSISTENCE) > 0).any()


# ----------------------------------------------------------------------------- laziness, tiles


def test_persistence_is_lazy_and_chunk_independent(jwst_steps, tmp_path):
    sim, products = jwst_steps("sim_nircam_sub640")
    path = step_input(products, "persistence")
    params = STEP.check_params({"skip": False, "persistence_time": 100,
                                "dn_threshold": 9000.0, "persistence_dnu": True,
                                "persistence_array_file": str(tmp_path / "in.asdf")})
    # an incoming file: A's windows, read back into B (itself, 50 s later)
    _detflow_persistence(path, persistence_time=100, save_persistence=str(tmp_path / "in"))
    later = _shifted_exposure(path, tmp_path / "b_jump.fits", 50.0)

    def build(chunks, tiling=None):
        ds = open_exposure(later, chunks=chunks)
        refs = {"persistence_array": open_persistence_array(
            params["persistence_array_file"], ds, 100)}
        return sp.apply(ds, refs, params, tiling=tiling)

    with no_compute():
        lazy = build(None)
    a = lazy.compute()
    b = build(UNEVEN).compute()
    # working tiles of 3 rows (96 B/pixel)
    c = build({"y": 64, "x": 640}, Tiling(persistence_bytes=300_000)).compute()
    for other in (b, c):
        for name in ("groupdq", "pixeldq", "data", "persistence_array"):
            np.testing.assert_array_equal(a[name].values, other[name].values, err_msg=name)
    assert lazy["groupdq"].chunks == open_exposure(later)["groupdq"].chunks
    assert ((a["groupdq"].values & dqflags.PERSISTENCE) > 0).any()


def test_persistence_needs_the_opened_array(sim_nircam_sub640):
    """A persistence_array_file the pipeline layer did not open is an error, not ignored
    (the graph builder opens it: there a missing file starts empty, as in jwst)."""
    ds = open_exposure(sim_nircam_sub640.uncal)
    params = {"skip": False, "persistence_time": 10, "persistence_array_file": "some.asdf"}
    with pytest.raises(ParameterError, match="persistence_array_file"):
        sp.apply(ds, {}, STEP.check_params(params))
    out = apply_step("persistence", ds, params)
    assert out.attrs["cal_step"]["persistence"] == "COMPLETE"
    with pytest.raises(ParameterError, match="shape"):
        sp.apply(ds, {"persistence_array": np.zeros((3, 3))},
                 STEP.check_params({"skip": False, "persistence_time": 10}))
