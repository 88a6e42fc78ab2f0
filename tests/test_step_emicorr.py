"""MIRI's emicorr equals jwst 3.0.0's EmiCorrStep on the same exposure and EMICORR
reference, is lazy, and gives the same bits whatever the chunking.

The exposures are cut from ``sim_miri`` (a MASK1550-like subarray, so both 390 Hz and
10 Hz are corrected, and small enough for jwst to run in a second or two) with EMI added
by :mod:`detflow.simulator.emi`, which also writes the EMICORR reference.
"""

import numpy as np
import pytest
from jwst_oracle import crds_environment, offline_crds
from lazycheck import no_compute

from detflow.errors import ReferenceFileError
from detflow.io.exposure import open_exposure
from detflow.io.references import open_reference_for
from detflow.kernels import emicorr as kernel
from detflow.pipeline.builder import apply_step
from detflow.simulator import emi

pytestmark = pytest.mark.jwst


def _emi_exposure(src, dest, *, subarray="MASK1550", corner=(467, 1), shape=(224, 288),
                  readpatt="FAST", ngroups=None, nints=None, components=None, nsamples=1,
                  add_emi=True, ramp=False):
    """A copy of ``src`` cut to a subarray, with EMI added; NSAMPLES set (jwst needs it).
    ``ramp``: saved as a RampModel (float32) with some pixels flagged in PIXELDQ (they are
    left out of the fit) and some groups in GROUPDQ."""
    from stdatamodels.jwst import datamodels as dm

    with dm.Level1bModel(str(src)) as model:
        y0, x0 = corner[0] - 1, corner[1] - 1
        sci = model.data[:nints, :ngroups, y0:y0 + shape[0], x0:x0 + shape[1]]
        if add_emi:
            sci = emi.inject_emi(sci, subarray=subarray, readpatt=readpatt,
                                 nsamples=nsamples, components=components)
        if ramp:
            rng = np.random.default_rng(3)
            shape2 = sci.shape[2:]
            pixeldq = np.where(rng.random(shape2) < 0.05, 1 << rng.integers(0, 31, shape2), 0)
            groupdq = np.where(rng.random(sci.shape) < 0.01, 4, 0).astype(np.uint8)
            out = dm.RampModel(data=sci.astype(np.float32), pixeldq=pixeldq.astype(np.uint32),
                               groupdq=groupdq)
        else:
            out = dm.Level1bModel(data=np.ascontiguousarray(sci))
        out.update(model)
        out.int_times = model.int_times
        out.meta.subarray.name = subarray
        out.meta.subarray.ystart, out.meta.subarray.xstart = corner
        out.meta.subarray.ysize, out.meta.subarray.xsize = shape
        out.meta.exposure.readpatt = readpatt
        out.meta.exposure.nsamples = nsamples
        out.meta.exposure.ngroups, out.meta.exposure.nints = sci.shape[1], sci.shape[0]
        out.save(str(dest))
        out.close()
    return dest


@pytest.fixture(scope="module")
def emi_files(sim_miri, tmp_path_factory):
    """``name -> path``: EMI exposures and references (see the module docstring)."""
    root = tmp_path_factory.mktemp("emicorr")
    src = sim_miri.uncal
    files = {
        "ref": emi.write_emicorr_reference(root / "jwst_miri_emicorr_sim.asdf"),
        # a reference without the MASK1550 case: no match for the subarray
        "ref_nocase": emi.write_emicorr_reference(
            root / "jwst_miri_emicorr_nocase.asdf",
            cases={k: v for k, v in emi.subarray_cases().items() if k != "MASK1550"}),
        "fast": _emi_exposure(src, root / "jw01234002001_01101_00001_mirimage_uncal.fits"),
        "clean": _emi_exposure(src, root / "jw01234002001_01101_00002_mirimage_uncal.fits",
                               add_emi=False),
        "fastr1": _emi_exposure(src, root / "jw01234002001_01101_00003_mirimage_uncal.fits",
                                readpatt="FASTR1", ngroups=6,
                                components=[("Hz390", 4.0, 0.1), ("Hz10", 6.0, 0.9)]),
        "ramp": _emi_exposure(src, root / "jw01234002001_01101_00006_mirimage_ramp.fits",
                              ramp=True),
        "slow": _emi_exposure(src, root / "jw01234002001_01101_00007_mirimage_uncal.fits",
                              readpatt="SLOWR1", nsamples=9, ngroups=5,
                              components=[("Hz390", 3.0, 0.5), ("Hz10", 3.0, 0.2)]),
        "two_groups": _emi_exposure(src, root / "jw01234002001_01101_00004_mirimage_uncal.fits",
                                    ngroups=2),
        "grpavg": _emi_exposure(src, root / "jw01234002001_01101_00005_mirimage_uncal.fits",
                                readpatt="FASTGRPAVG", ngroups=4),
    }
    return files


_JWST = {}


def _jwst(path, ref, tmp_path_factory, **params):
    """jwst's EmiCorrStep on ``path`` (each case once per session)."""
    from jwst.emicorr import EmiCorrStep

    key = (str(path), str(ref), repr(sorted(params.items())))
    if key not in _JWST:
        crds = tmp_path_factory.mktemp("crds_emicorr")
        with crds_environment(offline_crds(crds)):
            model = EmiCorrStep.call(str(path), override_emicorr=str(ref), skip=False, **params)
        _JWST[key] = {"data": model.data.copy(), "groupdq": model.groupdq.copy(),
                      "pixeldq": model.pixeldq.copy(),
                      "cal_step": model.meta.cal_step.emicorr}
        model.close()
    return _JWST[key]


def _ours(path, ref, chunks=None, **params):
    return apply_step("emicorr", open_exposure(path, chunks=chunks),
                      {"skip": False, "override_emicorr": str(ref), **params}).compute()


def _assert_same(ours, theirs):
    np.testing.assert_array_equal(ours["groupdq"].values, theirs["groupdq"], err_msg="groupdq")
    np.testing.assert_array_equal(ours["pixeldq"].values, theirs["pixeldq"], err_msg="pixeldq")
    # float32 (jwst keeps a RampModel file's big-endian float32)
    assert ours["data"].dtype == np.float32 == theirs["data"].dtype.newbyteorder("=")
    np.testing.assert_array_equal(ours["data"].values, theirs["data"], err_msg="data")
    assert ours.attrs["cal_step"]["emicorr"] == theirs["cal_step"]


@pytest.mark.parametrize("case, params", [
    ("fast", {}),
    ("ramp", {}),
    ("fastr1", {"fit_ints_separately": True}),
    ("fastr1", {}),
    ("fast", {"algorithm": "sequential"}),
    ("fast", {"algorithm": "sequential", "nbins": 100, "scale_reference": False,
              "use_n_cycles": None}),
    ("fastr1", {"algorithm": "sequential", "nints_to_phase": 2, "use_n_cycles": 5}),
    ("ramp", {"algorithm": "sequential"}),
    # SLOWR1: NSAMPLES 9, the detector's SLOW frequencies, the reset frame's clocks
    ("slow", {}),
    ("slow", {"algorithm": "sequential", "use_n_cycles": 2}),
    # on-the-fly frequencies: no reference, 'joint' falls back to 'sequential'
    ("fast", {"onthefly_corr_freq": [390.625, 10.039216]}),
])
def test_matches_jwst_bit_for_bit(emi_files, tmp_path_factory, case, params):
    path, ref = emi_files[case], emi_files["ref"]
    theirs = _jwst(path, ref, tmp_path_factory, **params)
    ours = _ours(path, ref, **params)
    _assert_same(ours, theirs)
    assert theirs["cal_step"] == "COMPLETE"
    raw = open_exposure(path)["data"].values.astype(np.float32)
    assert np.abs(ours["data"].values - raw).max() > 1.0  # the EMI was really removed


def test_joint_removes_the_injected_emi(emi_files):
    """Against the same exposure without EMI, the corrected one has lost most of it."""
    ours = _ours(emi_files["fast"], emi_files["ref"])["data"].values
    raw = open_exposure(emi_files["fast"])["data"].values.astype(np.float64)
    clean = open_exposure(emi_files["clean"])["data"].values.astype(np.float64)
    injected = np.std(raw - clean)
    left = np.std(ours - clean - np.median(ours - clean))
    assert injected > 2.0 and left < 0.25 * injected


@pytest.fixture(scope="module")
def full_frame(sim_miri, tmp_path_factory):
    """sim_miri (full frame FAST) with EMI added, and a reference."""
    root = tmp_path_factory.mktemp("emicorr_full")
    path = _emi_exposure(sim_miri.uncal, root / "jw01234002001_01101_00009_mirimage_uncal.fits",
                         subarray="FULL", corner=(1, 1), shape=(1024, 1032),
                         components=[("Hz10", 4.0, 0.3)])
    return path, emi.write_emicorr_reference(root / "ref.asdf")


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["joint", "sequential"])
def test_full_frame_matches_jwst(full_frame, tmp_path_factory, algorithm):
    """Full frame FAST (FULL_FAST: 10 Hz; sequential's full-frame reference-column
    timing), on uneven row bands."""
    path, ref = full_frame
    theirs = _jwst(path, ref, tmp_path_factory, algorithm=algorithm)
    _assert_same(_ours(path, ref, chunks={"y": 300}, algorithm=algorithm), theirs)
    assert theirs["cal_step"] == "COMPLETE"


@pytest.mark.parametrize("case, ref, why", [
    ("two_groups", "ref", "ngroups=2"),  # fewer than 3 groups
    ("grpavg", "ref", "read pattern"),  # outside FAST/FASTR1/SLOW/SLOWR1
    ("fast", "ref_nocase", "No correction match"),  # no subarray case for MASK1550
])
def test_skips_as_jwst(emi_files, tmp_path_factory, case, ref, why):
    theirs = _jwst(emi_files[case], emi_files[ref], tmp_path_factory)
    ours = _ours(emi_files[case], emi_files[ref])
    _assert_same(ours, theirs)
    assert ours.attrs["cal_step"]["emicorr"] == "SKIPPED"
    assert why in ours.attrs["provenance"][-1]["reason"]


def test_default_is_skip(emi_files):
    out = apply_step("emicorr", open_exposure(emi_files["fast"]),
                     {"override_emicorr": str(emi_files["ref"])})
    assert out.attrs["cal_step"]["emicorr"] == "SKIPPED"


@pytest.mark.parametrize("algorithm", ["joint", "sequential"])
def test_lazy_and_chunk_independent(emi_files, tmp_path_factory, algorithm):
    """apply computes nothing; uneven integration, row and column tiles give the same bits
    (the phase sums fold the row bands in jwst's order)."""
    path, ref = emi_files["fastr1"], emi_files["ref"]
    params = {"skip": False, "override_emicorr": str(ref), "algorithm": algorithm}
    with no_compute():
        lazy = apply_step("emicorr", open_exposure(path), params)
    assert lazy["data"].chunks == open_exposure(path)["data"].chunks
    uneven = apply_step("emicorr", open_exposure(path, chunks={"integration": 1, "y": 37,
                                                               "x": 77}), params)
    np.testing.assert_array_equal(uneven["data"].values,
                                  _jwst(path, ref, tmp_path_factory, algorithm=algorithm)["data"])
    np.testing.assert_array_equal(lazy["data"].values, uneven["data"].values)


# --------------------------------------------------------------------------
# kernels and the reference reader
# --------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 7, 1000, 1001])
def test_median_threshold_equals_numpy(n):
    rng = np.random.default_rng(n)
    values = rng.gamma(2.0, 3.0, n).astype(np.float32)
    values[::5] = values[0]  # ties
    blocks = np.array_split(values, 3)
    hist = sum(kernel.std_key_histogram(b) for b in blocks)
    plan = kernel.median_plan(hist)
    low = sum(kernel.std_low_histogram(b, plan) for b in blocks)
    got = kernel.median_threshold(plan, low)
    assert got.dtype == np.float32 and got == 2 * np.median(values)
    values[3 % n] = np.nan
    hist = kernel.std_key_histogram(values)
    assert np.isnan(kernel.median_threshold(kernel.median_plan(hist), None))


@pytest.mark.parametrize("n", [1, 7, 8, 9, 128, 129, 300, 1031, 5000])
def test_numpy_pairwise_sum_emulated(n):
    rng = np.random.default_rng(n)
    for _ in range(5):
        a = rng.normal(0, 1, n) * 10 ** rng.uniform(-3, 8, n)
        assert kernel._np_sum(a) == np.sum(a)


@pytest.mark.parametrize("ngroups, nints, separately, nph", [
    (4, 3, False, 40), (12, 2, True, 40), (9, 2, False, 300)])
def test_fit_equals_jwst_functions(ngroups, nints, separately, nph):
    """The numba chi squared and the fit equal jwst's EMIfitter loop, bit for bit."""
    from jwst.emicorr import emicorr as je
    from scipy import interpolate

    rng = np.random.default_rng(ngroups)
    refwave = emi.emi_waveform((np.arange(nph) + 0.5) / nph).astype(np.float32)
    all_y = rng.normal(1e5, 5e3, (nints, nph, ngroups))
    all_n = rng.integers(50, 100, (nints, nph)).astype(float)
    dphase, dphase_frame = 0.3172, 0.77
    phases, amps = kernel.fit_joint(all_y, all_n, refwave, dphase, dphase_frame, separately)
    ext = np.array([refwave[-1]] + list(refwave) + [refwave[0]])
    pext = (np.arange(nph + 2) - 0.5) / nph
    func = interpolate.interp1d(pext, ext, kind="cubic")
    template = (pext[1:-1, None] + np.arange(ngroups) * dphase) % 1
    plist = np.arange(500) / 500.0
    ef = je.EMIfitter(all_y, all_n, func, template, plist, dphase_frame)
    if separately:
        want_p, want_a = [], []
        for i in range(nints):
            best = je.get_best_phase(plist, je.calc_chisq_amplitudes(ef, ints=[i])[0])
            want_p.append(best + i * dphase_frame)
            want_a += je.calc_chisq_amplitudes(ef, phases=[best], ints=[i])[1]
    else:
        best = je.get_best_phase(plist, je.calc_chisq_amplitudes(ef)[0])
        want_p = (best + np.arange(nints) * dphase_frame) % 1
        want_a = je.calc_chisq_amplitudes(ef, phases=[best])[1] * nints
    np.testing.assert_array_equal(phases, want_p)
    np.testing.assert_array_equal(amps, want_a)


def test_reader_gives_the_emimodel_content(emi_files, tmp_path):
    from stdatamodels.jwst.datamodels import EmiModel

    ref = open_reference_for(emi_files["ref"], "EMICORR", open_exposure(emi_files["fast"]))
    with EmiModel(str(emi_files["ref"])) as model:
        for name in ("Hz390", "Hz10"):
            entry = ref.attrs["frequencies"][name]
            want = getattr(model.frequencies, name)
            assert entry["frequency"] == want.frequency
            assert entry["phase_amplitudes"].dtype == want.phase_amplitudes.dtype
            np.testing.assert_array_equal(entry["phase_amplitudes"], want.phase_amplitudes)
        case = ref.attrs["subarray_cases"]["MASK1550"]
        assert case["rowclocks"] == model.subarray_cases.MASK1550.rowclocks == 82
        assert case["freqs"]["FAST"] == ["Hz390", "Hz10"]
    import asdf

    bad = tmp_path / "not_emicorr.asdf"
    with asdf.open(str(emi_files["ref"]), lazy_load=False) as af:
        af.tree["meta"]["reftype"] = "dark"  # EmiModel.save would set "emicorr"
        af.write_to(str(bad))
    with pytest.raises(ReferenceFileError, match="DARK"):
        open_reference_for(bad, "EMICORR", open_exposure(emi_files["fast"]))


def test_inject_emi_follows_the_readout_timing():
    """One 390 Hz component on a zero ramp: each pixel holds the wave at its read time."""
    data = np.zeros((2, 3, 8, 16), dtype=np.float32)
    out = emi.inject_emi(data, subarray="SUB64", readpatt="FASTR1",
                         components=[(390.625, 2.0, 0.25)])
    period = 256.0  # 390.625 Hz in 10 us clocks
    rowclocks, frameclocks = 28, 8512
    frametime = 8 * rowclocks + (1024 - 8) * 7
    i, g, j, x = 1, 2, 5, 13
    t = i * (3 * frametime + frameclocks) + g * frametime + j * rowclocks + x // 4
    want = 2.0 * emi.emi_waveform((t / period + 0.25) % 1)
    assert out[i, g, j, x] == np.float32(want)
    assert np.all(out[..., 0::4] == out[..., 3::4])  # the four outputs read together
