"""refpix equals jwst 3.0.0's RefPixStep (median algorithm) bit for bit, and is lazy.

Besides the simulated exposures run through the whole jwst pipeline, small synthetic
RampModels (seeded) cover the detector-frame geometry jwst handles by flips and
transposes (FASTAXIS/SLOWAXIS), subarrays with and without top/bottom or side
reference pixels, DO_NOT_USE and NaN reference pixels, NIRSpec's edgeless subarrays,
and ZEROFRAME; each runs through ``RefPixStep.call`` on the same file.
"""

import dask
import numpy as np
import pytest
from jwst_oracle import crds_environment, offline_crds
from lazycheck import no_compute
from stepcheck import assert_float_equal, assert_ramp_matches, run_detflow_step, step_input

from detflow import dqflags
from detflow.errors import DetflowError, ParameterError
from detflow.io.exposure import open_exposure
from detflow.kernels import refpix as kernel
from detflow.pipeline.builder import apply_step

pytestmark = pytest.mark.jwst

DNU, REF = dqflags.DO_NOT_USE, dqflags.REFERENCE_PIXEL
NA = {"override_refpix": "N/A", "override_sirskernel": "N/A"}


def jwst_refpix(path, tmp_path, **params):
    """jwst's RefPixStep on a file, offline; returns the RampModel."""
    from jwst.refpix import RefPixStep

    with crds_environment(offline_crds(tmp_path / "crds")):
        return RefPixStep.call(str(path), **NA, **params)


def assert_matches_model(ours, theirs, max_ulp=0):
    """``ours`` (computed Dataset) equals the jwst RampModel ``theirs``: DQ identical,
    data and ZEROFRAME bit-identical, same cal_step."""
    np.testing.assert_array_equal(ours["pixeldq"].values, theirs.pixeldq)
    np.testing.assert_array_equal(ours["groupdq"].values, theirs.groupdq)
    assert_float_equal(ours["data"].values, theirs.data, max_ulp=max_ulp)
    if theirs.meta.exposure.zero_frame:
        assert_float_equal(ours["zeroframe"].values, theirs.zeroframe, max_ulp=max_ulp,
                           what="zeroframe")
    assert ours.attrs["cal_step"]["refpix"] == theirs.meta.cal_step.refpix


def detflow_refpix(path, chunks=None, **params):
    return apply_step("refpix", open_exposure(path, chunks=chunks), {**NA, **params}).compute()


# --- the simulated exposures, jwst's whole pipeline --------------------------------------


@pytest.mark.parametrize("which", ["sim_nircam_sub640", "sim_nircam_tso", "sim_nircam_bright2"])
def test_refpix_matches_jwst(which, jwst_steps):
    """SUB640 (one output), SUBGRISM64 (four outputs: bottom rows and both sides in the
    stripe, float64 work after the first group), SUB320 BRIGHT2 with ZEROFRAME."""
    sim, products = jwst_steps(which)
    ours = run_detflow_step("refpix", step_input(products, "refpix"), sim)
    assert_ramp_matches(ours, products["refpix"], max_ulp=0)
    assert ours.attrs["cal_step"]["refpix"] == "COMPLETE"


@pytest.mark.slow
def test_refpix_full_frame_matches_jwst(jwst_steps):
    sim, products = jwst_steps("sim_nircam_full")
    ours = run_detflow_step("refpix", step_input(products, "refpix"), sim)
    assert_ramp_matches(ours, products["refpix"], max_ulp=0)
    assert ours.attrs["cal_step"]["refpix"] == "COMPLETE"


@pytest.mark.parametrize(
    "which, params",
    [
        ("sim_nircam_tso", {"odd_even_columns": False, "side_smoothing_length": 5,
                            "side_gain": 0.5}),
        ("sim_nircam_tso", {"use_side_ref_pixels": False, "siglimit": 2.0}),
        ("sim_nircam_tso", {"side_smoothing_length": 4, "side_gain": 1.7}),
        ("sim_nircam_sub640", {"odd_even_columns": False, "siglimit": 1.5}),
        ("sim_nircam_bright2", {"use_side_ref_pixels": False, "odd_even_columns": False}),
    ],
)
def test_refpix_parameters_match_jwst(which, params, jwst_steps, tmp_path):
    """Parameter variations through jwst's RefPixStep.call on jwst's superbias output.
    Without side correction jwst stays in float32 throughout; an even smoothing length
    is made odd."""
    sim, products = jwst_steps(which)
    theirs = jwst_refpix(products["superbias"], tmp_path, **params)
    ours = detflow_refpix(products["superbias"], **params)
    assert_matches_model(ours, theirs)


@pytest.mark.parametrize(
    "which, fastaxis, slowaxis",
    [("sim_nircam_tso", 2, 1), ("sim_nircam_tso", -2, -1), ("sim_nircam_bright2", 2, -1)],
)
def test_refpix_transposed_simulation_matches_jwst(which, fastaxis, slowaxis, jwst_steps,
                                                   tmp_path):
    """jwst's superbias output with FASTAXIS/SLOWAXIS edited to a column-read detector
    (NIRSpec/NIRISS-like): jwst transposes to its detector frame, so the stripe's top/bottom
    reference rows become DMS columns and its side columns DMS rows."""
    from astropy.io import fits

    _, products = jwst_steps(which)
    path = tmp_path / products["superbias"].name
    with fits.open(products["superbias"]) as hdul:
        hdul[0].header["FASTAXIS"], hdul[0].header["SLOWAXIS"] = fastaxis, slowaxis
        hdul.writeto(path)
    theirs = jwst_refpix(path, tmp_path)
    assert_matches_model(detflow_refpix(path), theirs)


# --- synthetic geometries, through RefPixStep.call ---------------------------------------


def write_ramp(path, *, shape, substrt=(1, 1), fastaxis=-1, slowaxis=2, noutputs=4,
               subarray=None, zeroframe=False, seed=0, dnu=(), nan=(), ref_border=True,
               extra_ref=()):
    """A seeded RampModel after superbias (float32 around 0 with per-column and per-row
    drifts), REFERENCE_PIXEL on the full frame's 4-pixel border.

    ``dnu``/``nan``/``extra_ref`` list DMS ``(y, x)`` full-frame pixels (or slices) to flag
    DO_NOT_USE, set to NaN (all groups), or flag REFERENCE_PIXEL.
    """
    from stdatamodels.jwst import datamodels as dm

    rng = np.random.default_rng(seed)
    nints, ngroups, ny, nx = shape
    y0, x0 = substrt[1] - 1, substrt[0] - 1
    data = rng.normal(0, 5, size=shape)
    data += rng.normal(0, 20, size=(nints, ngroups, 1, nx))  # column drifts
    data += rng.normal(0, 10, size=(nints, ngroups, ny, 1))  # row drifts
    data += np.cumsum(rng.uniform(0, 30, size=(nints, ngroups, 1, 1)), axis=1)
    data[..., ::2] += 7.5  # even/odd column offset
    data = data.astype(np.float32)
    pdq = np.zeros((ny, nx), np.uint32)
    yy, xx = np.mgrid[y0:y0 + ny, x0:x0 + nx]
    if ref_border:
        border = (yy < 4) | (yy > 2043) | (xx < 4) | (xx > 2043)
        pdq[border] |= REF
    full = np.zeros((4096, 4096), np.uint32)  # room for a subarray off the frame
    for where in dnu:
        full[where] |= DNU
    for where in extra_ref:
        full[where] |= REF
    pdq |= full[y0:y0 + ny, x0:x0 + nx]
    nanmask = np.zeros((4096, 4096), bool)
    for where in nan:
        nanmask[where] = True
    data[..., nanmask[y0:y0 + ny, x0:x0 + nx]] = np.nan
    m = dm.RampModel(data=data, pixeldq=pdq,
                     groupdq=np.zeros(shape, np.uint8), err=np.zeros(shape, np.float32))
    if zeroframe:
        zf = (data[:, 0] - 3).astype(np.float32)
        zf[:, 1::7, 2::5] = 0.0  # zeroframe 0 means "saturated in frame 0"; stays 0
        m.zeroframe = zf
    meta = m.meta
    meta.instrument.name, meta.instrument.detector = "NIRCAM", "NRCA1"
    meta.exposure.type, meta.exposure.readpatt = "NRC_IMAGE", "RAPID"
    meta.exposure.nframes, meta.exposure.groupgap = 1, 0
    meta.exposure.ngroups, meta.exposure.nints = ngroups, nints
    meta.exposure.integration_start, meta.exposure.integration_end = 1, nints
    meta.exposure.frame_time = meta.exposure.group_time = 10.73677
    meta.exposure.start_time = 60000.0
    meta.exposure.zero_frame = bool(zeroframe)
    meta.exposure.noutputs = noutputs
    full_frame = (ny, nx) == (2048, 2048)
    meta.subarray.name = subarray or (
        "FULL" if full_frame else "SUBGRISM64" if noutputs == 4 else "SUB64P")
    meta.subarray.xstart, meta.subarray.ystart = substrt
    meta.subarray.xsize, meta.subarray.ysize = nx, ny
    meta.subarray.fastaxis, meta.subarray.slowaxis = fastaxis, slowaxis
    path = str(path)
    m.save(path)
    m.close()
    return path


GEOMETRIES = {
    # four outputs, a stripe far from the top/bottom rows: side correction only
    "stripe-middle": dict(shape=(2, 3, 40, 2048), substrt=(1, 1001)),
    # four outputs, transposed (NIRSpec-like FASTAXIS=2): top/bottom rows are DMS columns
    "stripe-transposed": dict(shape=(2, 3, 64, 2048), fastaxis=2, slowaxis=1,
                              dnu=[(slice(0, 64), slice(0, 2))]),
    # four outputs, FASTAXIS=-2/SLOWAXIS=-1, NaN and a DO_NOT_USE run in side pixels
    "stripe-transposed-flipped": dict(
        shape=(1, 3, 48, 2048), substrt=(1, 2001), fastaxis=-2, slowaxis=-1,
        nan=[(2045, 1000)], dnu=[(slice(2001, 2049), slice(1, 3)),
                                 (slice(2030, 2049), slice(2040, 2048)),
                                 (slice(2044, 2048), slice(500, 700))]),
    # four outputs, FASTAXIS=1/SLOWAXIS=-2: the stripe holds the *top* detector rows;
    # amplifier C's even columns all DO_NOT_USE -> nothing subtracted from amplifier C
    "stripe-flipped-amp-dnu": dict(shape=(2, 2, 32, 2048), fastaxis=1, slowaxis=-2,
                                   dnu=[(slice(0, 4), slice(2048 - 1024, 2048 - 512, 2))]),
    # four outputs, narrower than the detector, no reference pixel at all -> unchanged
    "four-outputs-no-refpix": dict(shape=(1, 2, 50, 300), substrt=(801, 901)),
    # one output, corner subarray, transposed, with ZEROFRAME and DO_NOT_USE refpix
    "corner-transposed-zeroframe": dict(
        shape=(2, 3, 160, 200), substrt=(1849, 1), fastaxis=2, slowaxis=-1, noutputs=1,
        zeroframe=True, dnu=[(slice(0, 2), slice(1900, 1960))]),
    # one output, no reference pixel: nothing subtracted, still COMPLETE
    "one-output-no-refpix": dict(shape=(1, 2, 64, 64), substrt=(501, 601), noutputs=1),
    # NIRSpec edgeless subarray: jwst makes its first/last 4 DMS columns reference pixels
    "edgeless-sub32": dict(shape=(2, 2, 32, 32), substrt=(1001, 1101), fastaxis=2,
                           slowaxis=1, noutputs=1, subarray="SUB32"),
    # one output, ZEROFRAME, default axes
    "corner-zeroframe": dict(shape=(2, 2, 64, 96), noutputs=1, zeroframe=True),
    # four outputs, ZEROFRAME (processed in float64 after the data, as jwst does)
    "stripe-zeroframe": dict(shape=(2, 2, 32, 2048), zeroframe=True),
}


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_refpix_geometries_match_jwst(name, tmp_path):
    path = write_ramp(tmp_path / f"jw01234001001_01101_00001_nrca1_{name}_ramp.fits",
                      **GEOMETRIES[name])
    theirs = jwst_refpix(path, tmp_path)
    ours = detflow_refpix(path)
    assert_matches_model(ours, theirs)
    before = open_exposure(path)["data"].values
    changed = ~np.isclose(ours["data"].values, before, equal_nan=True)
    if name.endswith("no-refpix"):
        assert not changed.any()  # nothing to subtract, still COMPLETE
        assert ours.attrs["cal_step"]["refpix"] == "COMPLETE"
    else:
        assert changed.mean() > 0.5  # the case is not vacuous
    uneven = detflow_refpix(path, chunks={"group": 2, "y": 7, "x": 33})
    for var in ours.data_vars:
        np.testing.assert_array_equal(ours[var].values, uneven[var].values, err_msg=var)


@pytest.mark.slow
def test_refpix_full_frame_transposed_matches_jwst(tmp_path):
    """A full frame read along columns (FASTAXIS=-2, SLOWAXIS=1) with a run of DO_NOT_USE
    in the left side columns and ZEROFRAME."""
    path = write_ramp(tmp_path / "jw01234001001_01101_00001_nrca1_ramp.fits",
                      shape=(1, 2, 2048, 2048), fastaxis=-2, slowaxis=1, zeroframe=True,
                      dnu=[(slice(0, 4), slice(100, 300))])
    theirs = jwst_refpix(path, tmp_path)
    assert_matches_model(detflow_refpix(path), theirs)


def test_refpix_one_parity_without_refpix_fails_like_jwst(tmp_path):
    """One output, odd_even_columns, and every odd-column reference pixel DO_NOT_USE:
    jwst 3.0.0 fails (it indexes with an empty float array); detflow says why."""
    path = write_ramp(tmp_path / "jw01234001001_01101_00001_nrca1_ramp.fits",
                      shape=(1, 2, 64, 64), noutputs=1, dnu=[(slice(0, 2048), slice(1, 2048, 2))])
    with pytest.raises(IndexError):
        jwst_refpix(path, tmp_path)
    with pytest.raises(DetflowError, match="one column parity"):
        detflow_refpix(path)
    theirs = jwst_refpix(path, tmp_path, odd_even_columns=False)
    assert_matches_model(detflow_refpix(path, odd_even_columns=False), theirs)


def test_refpix_subarray_outside_frame_is_skipped_like_jwst(tmp_path):
    path = write_ramp(tmp_path / "jw01234001001_01101_00001_nrca1_ramp.fits",
                      shape=(1, 2, 16, 64), substrt=(2001, 1), noutputs=1)
    theirs = jwst_refpix(path, tmp_path)
    ours = detflow_refpix(path)
    assert theirs.meta.cal_step.refpix == "SKIPPED" == ours.attrs["cal_step"]["refpix"]
    np.testing.assert_array_equal(ours["data"].values, theirs.data)


def test_refpix_reference_pixels_off_the_border_are_refused(tmp_path):
    """detflow reads one-output reference pixels on the detector border only (where every
    jwst mask puts them); a REFERENCE_PIXEL elsewhere is an error, not a wrong answer."""
    path = write_ramp(tmp_path / "jw01234001001_01101_00001_nrca1_ramp.fits",
                      shape=(1, 2, 64, 64), noutputs=1, extra_ref=[(30, 30)])
    with pytest.raises(DetflowError, match="border"):
        detflow_refpix(path)


# --- not implemented, parameters, laziness, kernels ----------------------------------------


def test_refpix_not_implemented_modes(tmp_path, make_uncal):
    path = write_ramp(tmp_path / "jw01234001001_01101_00001_nrca1_ramp.fits",
                      shape=(1, 2, 16, 64), noutputs=1)
    ds = open_exposure(path)
    with pytest.raises(DetflowError, match="sirs"):
        apply_step("refpix", ds, {**NA, "refpix_algorithm": "sirs"})
    irs2 = ds.copy()
    irs2.attrs = {**ds.attrs, "readpatt": "NRSIRS2RAPID"}
    with pytest.raises(DetflowError, match="IRS2"):
        apply_step("refpix", irs2, NA)
    stripe = ds.copy()
    stripe.attrs = {**ds.attrs, "primary_header": {**ds.attrs["primary_header"], "MSTR_RD1": 4}}
    with pytest.raises(DetflowError, match="multistripe"):
        apply_step("refpix", stripe, NA)
    miri_sub, _ = make_uncal(name="jw01234001001_01101_00002_mirimage_uncal.fits",
                             instrument="MIRI", detector="MIRIMAGE", shape=(1, 3, 64, 72),
                             subarray="SUB64", substrt=(1, 1))
    out = apply_step("refpix", open_exposure(miri_sub), NA)
    assert out.attrs["cal_step"]["refpix"] == "SKIPPED"  # as jwst: MIRI subarrays skipped
    with pytest.raises(ParameterError, match="side_smoothing_length"):
        four = write_ramp(tmp_path / "jw01234001001_01101_00002_nrca1_ramp.fits",
                          shape=(1, 2, 16, 2048))
        apply_step("refpix", open_exposure(four), {**NA, "side_smoothing_length": 1})


def test_refpix_is_lazy_and_chunk_independent(jwst_steps):
    """Nothing computes while the graph is built; blocks of several integrations and
    groups (the float32/float64 switch after group 0 inside a block) and spatial tiles
    smaller than the reference borders give the same bits."""

    for which in ("sim_nircam_tso", "sim_nircam_bright2"):
        _, products = jwst_steps(which)
        path = step_input(products, "refpix")
        with no_compute():
            lazy = apply_step("refpix", open_exposure(path), NA)
            uneven = apply_step(
                "refpix",
                open_exposure(path, chunks={"integration": 3, "group": 4, "y": 13, "x": 77}),
                NA)
        a, b = lazy.compute(), uneven.compute()
        for var in ("data", "groupdq", "pixeldq", "zeroframe"):
            if var in a:
                np.testing.assert_array_equal(a[var].values, b[var].values, err_msg=var)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("length", [2, 5, 11, 12])
def test_running_median_equals_jwsts_loop(dtype, length):
    """The vectorised running median equals jwst's row-by-row ``np.median`` loop,
    DO_NOT_USE windows, NaN and infinities included."""
    from jwst.refpix.reference_pixels import NIRDataset

    rng = np.random.default_rng(length)
    data = rng.normal(0, 3, size=(300, 4)).astype(dtype)
    data[::3, 1] = 1.5  # ties
    data[rng.random(data.shape) < 0.1] = 0.25
    data[17, 2] = np.nan
    data[40, 0], data[41, 1] = np.inf, -np.inf
    dq = np.zeros(data.shape, np.uint32)
    dq[rng.random(data.shape) < 0.3] |= DNU
    dq[100:130] |= DNU  # whole windows unusable -> NaN
    this = object.__new__(NIRDataset)
    with np.errstate(invalid="ignore"):
        theirs = this.median_filter(data, dq, length)
        ours = kernel.running_median(data, dq, length, DNU)
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)


def test_sigmaclip_is_scipys():
    """The kernel's sigma clipping returns exactly what ``scipy.stats.sigmaclip`` (which
    jwst calls) returns, for float32 and float64 samples with outliers."""
    from scipy import stats

    from detflow.kernels.refpix import sigmaclip

    rng = np.random.default_rng(7)
    for i in range(200):
        n = int(rng.integers(1, 2000))
        dtype = np.float32 if i % 2 else np.float64
        values = (rng.normal(size=n) * rng.uniform(0.1, 100)
                  + rng.standard_cauchy(n) * (i % 3)).astype(dtype)
        expected = stats.sigmaclip(values, 3.0, 3.0)[0]
        got = sigmaclip(values, 3.0, 3.0)
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


def _nir_overrides(sim):
    from detflow.pipeline.order import NIR_STEPS

    refs = {k.lower(): str(v) for k, v in sim.refs.items()}
    return {spec.name: {f"override_{r}": refs.get(r, "N/A") for r in spec.reftypes}
            for spec in NIR_STEPS}


def _ancestors(graph, key):
    deps = graph.get_all_dependencies()
    seen, todo = set(), [key]
    while todo:
        for dep in deps[todo.pop()]:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


@pytest.mark.parametrize("which,chunks", [
    ("sim_nircam_tso", {"integration": 3, "x": (300, 700, 1048)}),
    ("sim_nircam_full", {"x": (512, 512, 512, 512)}),
])
def test_refpix_reference_lines_read_apart(which, chunks, request, monkeypatch):
    """In the pipeline, refpix's statistics come from the reference lines read and
    calibrated on their own (not cut from the tiles): the same bits, and a tile's
    correction depends on no other tile than the ones its halo steps need."""
    from detflow.pipeline import builder

    sim = request.getfixturevalue(which)
    params = _nir_overrides(sim)
    ds = open_exposure(sim.uncal, chunks=chunks)
    taken = []
    original = builder.reference_lines

    def spy(*args, **kwargs):
        taken.append(original(*args, **kwargs))
        return taken[-1]

    monkeypatch.setattr(builder, "reference_lines", spy)
    apart = builder.build_detector1(ds, params, stop_after="refpix")["steps"]["refpix"]
    assert taken and taken[0] is not None and set(taken[0]) == {"y", "x"}
    monkeypatch.setattr(builder, "reference_lines", lambda *a, **k: None)
    cut = builder.build_detector1(ds, params, stop_after="refpix")["steps"]["refpix"]

    # tile (0, 0, 0, 0) of the corrected data reads only its own tile and its
    # neighbour along x (saturation's and IPC's halo) from the exposure's tiles
    data = apart["data"].transpose("integration", "group", "y", "x").data
    graph = data.__dask_graph__()
    tile_reads = ds["data"].data.name
    needed = {k[1:] for k in _ancestors(graph, (data.name, 0, 0, 0, 0))
              if isinstance(k, tuple) and k[0] == tile_reads}
    assert needed == {(0, 0, 0, 0), (0, 0, 0, 1)}, needed
    cut_graph = cut["data"].transpose("integration", "group", "y", "x").data
    needed_cut = {k[1:] for k in _ancestors(cut_graph.__dask_graph__(),
                                            (cut_graph.name, 0, 0, 0, 0))
                  if isinstance(k, tuple) and k[0] == tile_reads}
    assert len(needed_cut) > len(needed)  # cut from the tiles: it waits for all of them

    a, b = dask.compute(apart, cut)
    changed = a["data"].values != open_exposure(sim.uncal)["data"].values
    assert changed.mean() > 0.5
    for var in ("data", "zeroframe", "pixeldq", "groupdq"):
        if var in a:
            np.testing.assert_array_equal(a[var].values, b[var].values, err_msg=var)


def test_refpix_reference_lines_fall_back_to_the_tiles(sim_nircam_tso, tmp_path):
    """The lines are cut from the tiles when the exposure is not the file's own content,
    or when a step before refpix is not declared pointwise on reference pixels."""
    from detflow.pipeline import builder

    params = _nir_overrides(sim_nircam_tso)
    ds = open_exposure(sim_nircam_tso.uncal)
    in_memory = ds.compute()
    assert builder.reference_lines(ds, [("dq_init", params["dq_init"])], ds,
                                   params["refpix"]) is not None
    assert builder.reference_lines(in_memory, [], in_memory, params["refpix"]) is None
    from astropy.io import fits

    user = tmp_path / "user.fits"
    fits.PrimaryHDU(np.zeros((ds.sizes["y"], ds.sizes["x"]), np.int32)).writeto(user)
    with_user = {**params["dq_init"], "user_supplied_dq": str(user)}
    assert builder.reference_lines(ds, [("dq_init", with_user)], ds, params["refpix"]) is None
    assert builder.reference_lines(ds, [("charge_migration", {"skip": False})], ds,
                                   params["refpix"]) is None
    # and the pipeline's numbers do not depend on the way taken
    a = builder.build_detector1(in_memory, params, stop_after="refpix")["steps"]["refpix"]
    b = builder.build_detector1(ds, params, stop_after="refpix")["steps"]["refpix"]
    np.testing.assert_array_equal(a["data"].values, b["data"].values)
