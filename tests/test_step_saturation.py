"""saturation equals jwst 3.0.0's SaturationStep (stcal 1.20), bit for bit, whatever the
chunking, and is lazy."""

import numpy as np
import pytest
import xarray as xr
from lazycheck import no_compute
from stepcheck import assert_ramp_matches, run_detflow_step, step_input

from detflow import dqflags
from detflow.io.exposure import open_exposure
from detflow.kernels import saturation as kern
from detflow.kernels.readout import read_pattern
from detflow.pipeline.builder import apply_step
from detflow.steps import get_step

SAT, DNU, AD = dqflags.SATURATED, dqflags.DO_NOT_USE, dqflags.AD_FLOOR
FLAGS = {k: dqflags.PIXEL[k] for k in ("DO_NOT_USE", "SATURATED", "AD_FLOOR", "NO_SAT_CHECK")}


# --------------------------------------------------------------------------- identity


def test_step_parameters_are_jwsts():
    from jwst.saturation import SaturationStep

    step = get_step("saturation")
    assert step.reftypes == tuple(SaturationStep.reference_file_types)
    theirs = SaturationStep()
    for name, param in step.params.items():
        assert getattr(theirs, name) == param.default, name
    spec_names = {line.split("=")[0].strip() for line in SaturationStep.spec.strip().splitlines()}
    assert spec_names == set(step.params)


# --------------------------------------------------------------------------- jwst runs


@pytest.mark.jwst
@pytest.mark.parametrize("which", ["sim_nircam_sub640", "sim_nircam_tso", "sim_nircam_bright2"])
def test_saturation_matches_jwst(which, jwst_steps):
    """The pipeline's own saturation products: sources saturating from group 0 and part
    way up, NaN thresholds (NO_SAT_CHECK), and for BRIGHT2 (nframes=2) the backward pass
    and the group-2 check (new DO_NOT_USE flags) and the ZEROFRAME."""
    sim, products = jwst_steps(which)
    ours = run_detflow_step("saturation", step_input(products, "saturation"), sim)
    assert_ramp_matches(ours, products["saturation"], max_ulp=0)
    assert ours.attrs["cal_step"]["saturation"] == "COMPLETE"


def _run_jwst_saturation(crds_env, inp, outdir, **params):
    from jwst.saturation import SaturationStep
    from jwst_oracle import crds_environment

    with crds_environment(crds_env):
        result = SaturationStep.call(str(inp), **params)
    path = outdir / f"jwst_saturation_{abs(hash(tuple(sorted(params.items()))))}.fits"
    result.save(str(path))
    result.close()
    return path


@pytest.fixture(scope="module")
def stress_case(jwst_steps, module_tmp):
    """jwst's BRIGHT2 saturation input with hard cases placed on tile edges (x = 64, 128;
    y = 77, 154 for chunks of 77 x 64), and a saturation reference file with extra NaN
    thresholds (no DQ bit) and NO_SAT_CHECK bits on finite thresholds.

    * a source saturated from group 0 across a tile corner;
    * pixel q = (150, 126) saturating in group 3 and its neighbour p = (150, 127) at 95 %
      of its threshold in group 2: jwst's backward pass flags p DO_NOT_USE in group 2
      and grows that to (150, 128) -- in the next tile, two pixels from q;
    * the group-2 check: a jump from group 1 to 2 before saturating in group 3;
    * A/D floor values (0, negative) and a NaN;
    * an input SATURATED flag (grown by stcal like a new one);
    * ZEROFRAME values above the threshold on a tile edge, and at or below 0.
    """
    from stdatamodels.jwst import datamodels as dm

    sim, products = jwst_steps("sim_nircam_bright2")
    out = module_tmp("sat_stress")
    sat_path = out / "saturation_stress.fits"
    with dm.SaturationModel(str(sim.refs["SATURATION"])) as ref:
        thresh = ref.data.copy()
        for y, x in ((76, 64), (77, 63), (200, 128), (10, 300)):
            thresh[y, x] = np.nan
        ref.data = thresh
        dq = ref.dq.copy()
        dq[160, 64] |= dqflags.NO_SAT_CHECK
        dq[30, 191] |= dqflags.NO_SAT_CHECK
        ref.dq = dq
        ref.save(str(sat_path))
    thresh = thresh[:320, :320]
    with dm.SuperBiasModel(str(sim.refs["SUPERBIAS"])) as sb:
        bias = sb.data[:320, :320].copy()

    inp = out / "stress_dq_init.fits"
    with dm.RampModel(str(step_input(products, "saturation"))) as m:
        data = m.data.copy()
        gdq = m.groupdq.copy()
        zf = m.zeroframe.copy()
        t = np.nan_to_num(thresh, nan=40000.0)
        # saturated from group 0 across the tile corner (77, 64)
        data[:, :, 75:79, 62:66] = t[75:79, 62:66] + 500
        # backward pass across x = 128
        data[:, 3:, 150, 126] = t[150, 126] + 50
        data[:, :2, 150, 127] = 0.5 * t[150, 127]
        data[:, 2, 150, 127] = 0.95 * t[150, 127]
        data[:, 3:, 150, 127] = 0.97 * t[150, 127]
        # the same near y = 154 with the saturating pixel above the edge
        data[:, 3:, 152, 40] = t[152, 40] + 50
        data[:, 2, 153, 40] = 0.95 * t[153, 40]
        # group-2 check (jump in group index 1, saturated from index 2)
        for y, x in ((100, 63), (100, 64), (230, 230)):
            data[:, 0, y, x] = bias[y, x] + 1500
            data[:, 1, y, x] = 0.85 * t[y, x]
            data[:, 2:, y, x] = t[y, x] + 10
        # NO_SAT_CHECK pixels far above the threshold stay unflagged
        data[:, :, 160, 64] = 60000.0
        data[:, :, 30, 191] = 60000.0
        # A/D floor
        data[0, 1, 40, 127] = 0.0
        data[1, 4, 41, 128] = -3.0
        data[0, 3, 5, 5] = np.nan
        # an input SATURATED flag
        gdq[1, 2, 154, 250] |= SAT
        # ZEROFRAME
        zf[0, 76:78, 127:129] = t[76:78, 127:129] + 10
        zf[1, 0, 0] = t[0, 0] + 10
        zf[0, 300, 64] = 0.0
        zf[1, 301, 63] = -1.0
        m.data, m.groupdq, m.zeroframe = data, gdq, zf
        m.save(str(inp))
    return sim, inp, sat_path, out


PARAMS = [
    {},
    {"n_pix_grow_sat": 2},
    {"n_pix_grow_sat": 0},
    {"use_readpatt": False},
    {"override_superbias": "N/A"},
]
CHUNKS = [None, {"y": 77, "x": 64}, {"y": (1, 75, 1, 3, 240), "x": (63, 1, 64, 2, 190)}]


@pytest.mark.jwst
@pytest.mark.parametrize("params", PARAMS, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items())
                         or "defaults")
def test_saturation_stress_matches_jwst(params, stress_case, crds_offline):
    sim, inp, sat_path, out = stress_case
    refs = {"override_saturation": str(sat_path),
            "override_superbias": str(sim.refs["SUPERBIAS"])}
    refs.update(params)
    theirs = _run_jwst_saturation(crds_offline, inp, out, **refs)
    from stdatamodels.jwst import datamodels as dm

    with dm.RampModel(str(theirs)) as t, dm.RampModel(str(inp)) as i:
        # the case really exercises what it claims (with the default parameters)
        new = t.groupdq & ~i.groupdq
        assert (new & SAT).any() and (new & AD).any()
        if params.get("use_readpatt", True) and params.get("n_pix_grow_sat", 1) > 0:
            assert new[0, 2, 150, 128] & DNU  # backward pass, two pixels from q
        # the bias-aware group-2 check: flagged with the superbias; without one (bias 0)
        # group 1 extrapolates above the threshold and the pixel is left alone
        group2 = bool(new[0, 1, 100, 63] & DNU) and not new[0, 1, 100, 63] & SAT
        assert group2 == (params.get("use_readpatt", True)
                          and params.get("override_superbias") != "N/A")
        assert (t.zeroframe == 0).sum() > (i.zeroframe == 0).sum()
    for chunks in CHUNKS:
        ours = apply_step("saturation", open_exposure(inp, chunks=chunks), refs).compute()
        assert_ramp_matches(ours, theirs, max_ulp=0)
        assert ours.attrs["cal_step"]["saturation"] == "COMPLETE"


@pytest.mark.jwst
def test_saturation_skipped_without_reference(stress_case, crds_offline):
    sim, inp, sat_path, out = stress_case
    from jwst.saturation import SaturationStep
    from jwst_oracle import crds_environment

    with crds_environment(crds_offline):
        result = SaturationStep.call(str(inp), override_saturation="N/A",
                                     override_superbias="N/A")
        assert result.meta.cal_step.saturation == "SKIPPED"
        result.close()
    ours = apply_step("saturation", open_exposure(inp), {"override_saturation": "N/A"})
    assert ours.attrs["cal_step"]["saturation"] == "SKIPPED"
    src = open_exposure(inp)
    xr.testing.assert_identical(ours["groupdq"].compute(), src["groupdq"].compute())


# --------------------------------------------------------------------------- laziness, chunks


def test_saturation_is_lazy_and_chunk_independent(sim_nircam_bright2):
    sim = sim_nircam_bright2
    overrides = {"override_saturation": str(sim.refs["SATURATION"]),
                 "override_superbias": str(sim.refs["SUPERBIAS"])}
    with no_compute():
        lazy = apply_step("saturation", open_exposure(sim.uncal), overrides)
        small = apply_step("saturation", open_exposure(sim.uncal, chunks={"y": 100, "x": 77}),
                           overrides)
        tiny = apply_step("saturation", open_exposure(
            sim.uncal, chunks={"integration": 1, "y": (1, 1, 150, 1, 167),
                               "x": (2, 1, 1, 316)}), overrides)
    assert tiny["groupdq"].chunks == open_exposure(
        sim.uncal, chunks={"y": (1, 1, 150, 1, 167), "x": (2, 1, 1, 316)})["groupdq"].chunks
    a, b, c = (d.compute() for d in (lazy, small, tiny))
    assert (a["groupdq"].values & DNU & ~open_exposure(sim.uncal)["groupdq"].values).any() or \
        (a["groupdq"].values & SAT).any()
    for name in ("groupdq", "pixeldq", "data", "zeroframe"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
        np.testing.assert_array_equal(a[name].values, c[name].values, err_msg=name)


# --------------------------------------------------------------------------- the halo


def _synthetic(nx=12, ny=9, ngroups=5, nframes=2):
    """A tiny exposure where q = (4, 5) saturates in group 3 and its neighbour p = (4, 6)
    reaches 95 % of the threshold in group 2, and refs for it."""
    data = np.full((1, ngroups, ny, nx), 1000.0, dtype=np.float32)
    data[0, 3:, 4, 5] = 50000.0
    data[0, 2, 4, 6] = 0.95 * 40000.0
    coords = {"integration": [0], "group": np.arange(ngroups), "y": np.arange(ny) + 100,
              "x": np.arange(nx) + 200}
    dims = ("integration", "group", "y", "x")
    ds = xr.Dataset(
        {"data": (dims, data), "groupdq": (dims, np.zeros(data.shape, np.uint8)),
         "pixeldq": (("y", "x"), np.zeros((ny, nx), np.uint32))},
        coords=coords,
        attrs={"instrument": "NIRCAM", "nframes": nframes, "ngroups": ngroups,
               "zeroframe": False},
    )
    sat = xr.Dataset({"sci": (("y", "x"), np.full((ny, nx), 40000.0, np.float32)),
                      "dq": (("y", "x"), np.zeros((ny, nx), np.uint32))},
                     coords={"y": coords["y"], "x": coords["x"]})
    return ds, {"saturation": sat, "superbias": None}


def test_backward_pass_needs_a_halo_of_two_n():
    """p is DO_NOT_USE in group 2 because q's grown flag reaches it in group 3, and that
    flag grows on to (4, 7): two pixels from q. A tile cut between x = 6 and 7 with a
    halo of one pixel would miss it; the step's halo of 2 n gets it."""
    ds, refs = _synthetic()
    step = get_step("saturation")
    params = step.check_params({})
    whole = step.apply(ds, refs, params)["groupdq"].values
    assert whole[0, 2, 4, 7] & DNU and not whole[0, 2, 4, 8] & DNU
    # a halo of one pixel is not enough (what the tile right of the cut computes)
    cut = slice(7 - 1, None)  # the tile x >= 7 with one pixel of halo
    tile = kern.flag_saturation_groups(
        ds["data"].values[..., cut], ds["groupdq"].values[..., cut],
        refs["saturation"]["sci"].values[:, cut], refs["saturation"]["dq"].values[:, cut],
        n_pix_grow_sat=1, read_pattern=read_pattern(ngroups=5, nframes=2), dqflags=FLAGS)
    assert not tile[0, 2, 4, 7 - 6] & DNU
    assert kern.saturation_halo(1, 2, True) == 2 and kern.saturation_halo(1, 1, True) == 1
    assert kern.saturation_halo(3, 4, False) == 3 and kern.saturation_halo(-1, 2, True) == 0
    for xch in ((7, 5), (1, 6, 1, 4), (1,) * 12, (3, 1, 1, 1, 1, 5)):
        chunked = ds.chunk({"y": (2, 1, 6), "x": xch})
        refs_c = {"saturation": refs["saturation"].chunk({"x": xch}), "superbias": None}
        with no_compute():
            lazy = step.apply(chunked, refs_c, params)
        got = lazy.compute()
        np.testing.assert_array_equal(got["groupdq"].values, whole)
        assert lazy["groupdq"].chunks == chunked["groupdq"].chunks


# --------------------------------------------------------------------------- kernels vs stcal


def test_zeroframe_and_pixeldq_kernels_equal_stcal():
    from stcal.saturation.saturation import flag_saturated_pixels

    rng = np.random.default_rng(3)
    for n in (0, 1, 2, 3):
        ny, nx = 23, 31
        thresh = rng.uniform(900, 1100, (ny, nx)).astype(np.float32)
        thresh[rng.random((ny, nx)) < 0.05] = np.nan
        sat_dq = np.where(rng.random((ny, nx)) < 0.05, FLAGS["NO_SAT_CHECK"], 0).astype(np.uint32)
        zf = rng.uniform(-100, 1200, (2, ny, nx)).astype(np.float32)
        zf[0, 0, :] = 2000.0  # saturated along an edge
        zf[1, :, -1] = 2000.0
        data = rng.uniform(1, 800, (2, 0, ny, nx)).astype(np.float32)  # no groups: ZEROFRAME only
        pdq = rng.integers(0, 4, (ny, nx)).astype(np.uint32)
        _, pdq_s, zf_s = flag_saturated_pixels(
            data, np.zeros(data.shape, np.uint8), pdq.copy(), thresh.copy(), sat_dq.copy(),
            kern.ATOD_LIMIT, FLAGS, n_pix_grow_sat=n, zframe=zf.copy())
        ours = kern.saturation_zeroframe(zf, thresh, sat_dq, n_pix_grow_sat=n,
                                         no_sat_check=FLAGS["NO_SAT_CHECK"])
        np.testing.assert_array_equal(ours, zf_s)
        np.testing.assert_array_equal(
            kern.saturation_pixeldq(pdq, thresh, sat_dq, FLAGS["NO_SAT_CHECK"]), pdq_s)


def test_group_kernel_leaves_inputs_alone():
    ds, refs = _synthetic()
    args = [ds["data"].values, ds["groupdq"].values, refs["saturation"]["sci"].values,
            refs["saturation"]["dq"].values]
    args[2] = args[2].copy()
    args[2][0, 0] = np.nan
    before = [a.copy() for a in args]
    kern.flag_saturation_groups(*args, n_pix_grow_sat=1,
                                read_pattern=read_pattern(ngroups=5, nframes=2), dqflags=FLAGS)
    for a, b in zip(args, before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_read_pattern_ignores_groupgap():
    assert read_pattern(ngroups=3, nframes=2) == [[1, 2], [3, 4], [5, 6]]
    assert read_pattern(ngroups=2, nframes=1) == [[1], [2]]
