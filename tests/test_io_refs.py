"""Reference files as lazy xarray Datasets, region selection and resolution."""

import json
import os
import pickle
import shutil

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from astropy.io import fits

from detflow.contract import KEYWORDS
from detflow.errors import ReferenceFileError
from detflow.io.references import (
    clear_reference_index,
    open_reference,
    reference_index,
    resolve_reference,
    select_region,
)
from detflow.io.references import select as ref_select

# --------------------------------------------------------------------------- factories


def write_ref(
    path,
    model,
    reftype,
    *,
    instrument="NIRCAM",
    detector="NRCA1",
    subarray="FULL",
    substrt=(1, 1),
    useafter="2015-01-01T00:00:00",
    keywords=None,
    **meta,
):
    """Fill the metadata a reference file needs and save ``model`` to ``path``.

    ``substrt`` is the 1-based ``(SUBSTRT1, SUBSTRT2)``; SUBSIZE comes from the
    model's spatial shape. ``keywords`` are extra primary-header cards written
    after saving (e.g. ``P_DETECT``).
    """
    m = model
    m.meta.reftype = reftype
    m.meta.instrument.name = instrument
    m.meta.instrument.detector = detector
    m.meta.author = "detflow tests"
    m.meta.pedigree = "DUMMY"
    m.meta.description = f"test {reftype}"
    m.meta.useafter = useafter
    shape = None
    for name in ("data", "coeffs", "dq"):
        arr = getattr(m, name, None) if m.hasattr(name) else None
        if arr is not None and arr.ndim >= 2 and not (reftype == "IPC" and arr.ndim == 2):
            shape = arr.shape[-2:]
            break
    keywords = dict(keywords or {})
    if shape is not None:
        cards = {"SUBARRAY": subarray, "SUBSTRT1": substrt[0], "SUBSTRT2": substrt[1]}
        cards.update(SUBSIZE1=shape[1], SUBSIZE2=shape[0])
        try:
            m.meta.subarray.name = subarray
            m.meta.subarray.xstart, m.meta.subarray.ystart = substrt
            m.meta.subarray.ysize, m.meta.subarray.xsize = shape
        except AttributeError:  # a schema without subarray keywords (IPC)
            keywords = {**cards, **keywords}
    for key, value in meta.items():
        obj = m.meta
        *parents, leaf = key.split(".")
        for p in parents:
            obj = getattr(obj, p)
        setattr(obj, leaf, value)
    m.save(str(path))
    m.close()
    if keywords:
        with fits.open(path, mode="update") as hdul:
            for key, value in keywords.items():
                hdul[0].header[key] = value
    return str(path)


@pytest.fixture(scope="module")
def dm():
    from stdatamodels.jwst import datamodels

    return datamodels


@pytest.fixture
def rng():
    return np.random.default_rng(42)


def exposure_attrs(
    path=None,
    *,
    instrument="NIRCAM",
    detector="NRCA1",
    substrt=(1, 1),
    subsize=(96, 64),
    subarray="FULL",
    readpatt="RAPID",
    ngroups=4,
    nframes=1,
    groupgap=0,
):
    """Exposure attrs as detflow.contract names them (``subsize`` is ``(nx, ny)``)."""
    attrs = {
        "instrument": instrument,
        "detector": detector,
        "subarray": subarray,
        "substrt1": substrt[0],
        "substrt2": substrt[1],
        "subsize1": subsize[0],
        "subsize2": subsize[1],
        "readpatt": readpatt,
        "exp_type": "MIR_IMAGE" if instrument == "MIRI" else "NRC_IMAGE",
        "ngroups": ngroups,
        "nframes": nframes,
        "groupgap": groupgap,
        "expstart": 60000.0,
    }
    if path is not None:
        attrs["path"] = str(path)
    return attrs


def attrs_from_uncal(path):
    """Exposure attrs built from an uncal file's primary header (contract names)."""
    header = fits.getheader(path, 0)
    attrs = {
        name: typ(header[key])
        for name, (key, where, typ) in KEYWORDS.items()
        if where == "primary" and key in header
    }
    attrs["path"] = str(path)
    attrs["primary_header"] = {k: v for k, v in header.items() if k not in ("COMMENT", "HISTORY")}
    return attrs


def exposure_dataset(attrs, chunks=(16, 32)):
    """A small lazy exposure Dataset with contract coordinates, chunked in y/x."""
    nx, ny = attrs["subsize1"], attrs["subsize2"]
    y = attrs["substrt2"] - 1 + np.arange(ny)
    x = attrs["substrt1"] - 1 + np.arange(nx)
    data = da.zeros((1, 2, ny, nx), dtype="uint16", chunks=(1, 2) + chunks)
    return xr.Dataset(
        {"data": (("integration", "group", "y", "x"), data)},
        coords={"y": y, "x": x, "integration": [0], "group": [0, 1]},
        attrs=dict(attrs),
    )


def _raise_if_computes(dsk, keys, **kwargs):
    raise AssertionError("a dask computation was triggered")


@pytest.fixture(autouse=True)
def _fresh_index():
    clear_reference_index()
    yield
    clear_reference_index()


# --------------------------------------------------------------------------- opening


def test_open_is_lazy_and_graph_holds_no_data(tmp_path, dm, rng):
    sci = rng.normal(size=(5, 64, 96)).astype("f4")
    path = write_ref(
        tmp_path / "dark.fits",
        dm.DarkModel(data=sci, err=np.abs(sci), dq=np.zeros((64, 96), "u4")),
        "DARK",
        **{"exposure.nframes": 1, "exposure.ngroups": 5, "exposure.readpatt": "RAPID"},
    )
    exp = exposure_dataset(exposure_attrs(substrt=(11, 9), subsize=(40, 30)), chunks=(10, 20))
    with dask.config.set(scheduler=_raise_if_computes):
        ds = open_reference(path, "dark")
        cut = select_region(ds, exp)
    assert all(isinstance(v.data, da.Array) for v in ds.data_vars.values())
    assert len(pickle.dumps(dict(ds.sci.data.dask))) < sci.nbytes / 4
    np.testing.assert_array_equal(ds.sci.values, sci)
    np.testing.assert_array_equal(cut.sci.values, sci[:, 8:38, 10:50])
    assert cut.sci.chunks[1:] == exp.data.chunks[2:]


def test_coordinates_full_frame_and_subarray(tmp_path, dm, rng):
    full = rng.normal(size=(64, 96)).astype("f4")
    sub = rng.normal(size=(8, 10)).astype("f4")
    p_full = write_ref(tmp_path / "gain_full.fits", dm.GainModel(data=full), "GAIN")
    p_sub = write_ref(
        tmp_path / "gain_sub.fits",
        dm.GainModel(data=sub),
        "GAIN",
        subarray="GENERIC",
        substrt=(5, 7),
    )
    ds = open_reference(p_full)
    np.testing.assert_array_equal(ds.y, np.arange(64))
    np.testing.assert_array_equal(ds.x, np.arange(96))
    assert ds.sci.dims == ("y", "x") and ds.sci.dtype == np.float32
    ds = open_reference(p_sub)
    np.testing.assert_array_equal(ds.x, 4 + np.arange(10))
    np.testing.assert_array_equal(ds.y, 6 + np.arange(8))
    np.testing.assert_array_equal(ds.sci.values, sub)
    a = ds.attrs
    assert (a["substrt1"], a["substrt2"], a["subsize1"], a["subsize2"]) == (5, 7, 10, 8)
    assert (a["reftype"], a["instrument"], a["detector"], a["subarray"]) == (
        "GAIN",
        "NIRCAM",
        "NRCA1",
        "GENERIC",
    )
    assert a["filename"] == "gain_sub.fits" and a["path"] == p_sub
    json.dumps(a)  # attrs are plain JSON


def test_variables_and_dims_per_reftype(tmp_path, dm, rng):
    f4 = np.float32
    ny, nx = 6, 8
    lin = dm.LinearityModel(
        coeffs=rng.normal(size=(4, ny, nx)).astype(f4),
        # jwst accepts INV_COEFFS with another number of terms than COEFFS
        inv_coeffs=rng.normal(size=(5, ny, nx)).astype(f4),
        dq=np.ones((ny, nx), "u4"),
    )
    lin.dq_def = [(0, 1, "DO_NOT_USE", "bad"), (20, 2**20, "NO_LIN_CORR", "no lin")]
    ds = open_reference(write_ref(tmp_path / "lin.fits", lin, "LINEARITY"))
    assert ds.coeffs.dims == ("coeff", "y", "x")
    assert ds.inv_coeffs.dims == ("inv_coeff", "y", "x") and ds.sizes["inv_coeff"] == 5
    assert ds.dq.dims == ("y", "x") and ds.dq.dtype == np.uint32
    np.testing.assert_array_equal(ds.coeff, np.arange(4))
    assert ds.attrs["tables"]["dq_def"]["NAME"] == ["DO_NOT_USE", "NO_LIN_CORR"]
    assert ds.attrs["tables"]["dq_def"]["VALUE"] == [1, 2**20]

    dark = dm.DarkModel(
        data=np.ones((3, ny, nx), f4),
        err=np.ones((3, ny, nx), f4),
        dq=np.zeros((ny, nx), "u4"),
        average_dark_current=np.full((ny, nx), 0.5, f4),
    )
    ds = open_reference(
        write_ref(
            tmp_path / "dark.fits",
            dark,
            "DARK",
            **{
                "exposure.nframes": 1,
                "exposure.ngroups": 3,
                "exposure.groupgap": 0,
                "exposure.readpatt": "RAPID",
                "exposure.average_dark_current": 0.01,
                "exposure.gain_factor": 2.0,
            },
        )
    )
    assert ds.sci.dims == ("group", "y", "x") and ds.err.dims == ("group", "y", "x")
    assert ds.dq.dims == ("y", "x") and ds.avdrkcur.dims == ("y", "x")
    assert ds.attrs["average_dark_current"] == 0.01 and ds.attrs["gain_factor"] == 2.0
    assert (ds.attrs["nframes"], ds.attrs["ngroups"], ds.attrs["readpatt"]) == (1, 3, "RAPID")

    mdark = dm.DarkMIRIModel(
        data=np.ones((2, 3, ny, nx), f4),
        err=np.ones((2, 3, ny, nx), f4),
        dq=np.zeros((2, 3, ny, nx), "u4"),
    )
    ds = open_reference(
        write_ref(tmp_path / "mdark.fits", mdark, "DARK", instrument="MIRI", detector="MIRIMAGE")
    )
    for var in ("sci", "err", "dq"):
        assert ds[var].dims == ("integration", "group", "y", "x")
    assert ds.sci.chunks[0] == (1, 1)  # one integration per chunk

    reset = dm.ResetModel(
        data=np.ones((2, 3, ny, nx), f4),
        err=np.ones((2, 3, ny, nx), f4),
        dq=np.zeros((ny, nx), "u4"),
    )
    ds = open_reference(
        write_ref(tmp_path / "reset.fits", reset, "RESET", instrument="MIRI", detector="MIRIMAGE")
    )
    assert ds.sci.dims == ("integration", "group", "y", "x") and ds.dq.dims == ("y", "x")

    kernel = np.arange(9, dtype=f4).reshape(3, 3)
    ds = open_reference(write_ref(tmp_path / "ipc.fits", dm.IPCModel(data=kernel), "IPC"))
    assert ds.sci.dims == ("ky", "kx") and "y" not in ds.dims
    np.testing.assert_array_equal(ds.kx, [-1, 0, 1])
    np.testing.assert_array_equal(ds.sci.values, kernel)
    ipc4 = dm.IPCModel(data=np.ones((3, 3, ny, nx), f4))
    ds = open_reference(write_ref(tmp_path / "ipc4.fits", ipc4, "IPC", substrt=(3, 2)))
    assert ds.sci.dims == ("ky", "kx", "y", "x")
    np.testing.assert_array_equal(ds.x, 2 + np.arange(nx))

    rscd = dm.RSCDModel()
    rscd.rscd_group_skip_table = [("FULL", "FAST", 3, 4), ("SUB64", "FAST", 2, 5)]
    ds = open_reference(
        write_ref(tmp_path / "rscd.fits", rscd, "RSCD", instrument="MIRI", detector="MIRIMAGE")
    )
    assert not ds.data_vars
    table = ds.attrs["tables"]["rscd_group_skip"]
    assert table == {
        "subarray": ["FULL", "SUB64"],
        "readpatt": ["FAST", "FAST"],
        "group_skip1": [3, 2],
        "group_skip": [4, 5],
    }

    for model, name, reftype, vars_ in (
        (dm.MaskModel(dq=np.ones((ny, nx), "u4")), "mask", "MASK", {"dq"}),
        (
            dm.SaturationModel(data=np.ones((ny, nx), f4), dq=np.zeros((ny, nx), "u4")),
            "sat",
            "SATURATION",
            {"sci", "dq"},
        ),
        (
            dm.SuperBiasModel(
                data=np.ones((ny, nx), f4), err=np.ones((ny, nx), f4), dq=np.zeros((ny, nx), "u4")
            ),
            "bias",
            "SUPERBIAS",
            {"sci", "err", "dq"},
        ),
        (dm.ReadnoiseModel(data=np.ones((ny, nx), f4)), "rn", "READNOISE", {"sci"}),
    ):
        ds = open_reference(write_ref(tmp_path / f"{name}.fits", model, reftype))
        assert set(ds.data_vars) == vars_
        assert all(ds[v].dims == ("y", "x") for v in vars_)
        json.dumps(ds.attrs)


def test_default_chunks_follow_nir_amplifiers_and_user_chunks(tmp_path, dm):
    path = write_ref(
        tmp_path / "gain.fits",
        dm.GainModel(data=np.ones((16, 1100), "f4")),
        "GAIN",
        subarray="GENERIC",
        substrt=(301, 1),
    )
    ds = open_reference(path)
    # x tiles end on the 512-column amplifier boundaries of the full frame
    assert ds.sci.chunks[1] == (212, 512, 376)
    ds = open_reference(path, chunks={"y": 4, "x": 550})
    assert ds.sci.chunks == ((4, 4, 4, 4), (550, 550))


def test_open_reference_errors(tmp_path, dm):
    with pytest.raises(ReferenceFileError, match="does not exist"):
        open_reference(tmp_path / "nope.fits", "gain")
    bad = tmp_path / "bad.fits"
    bad.write_text("not a fits file")
    with pytest.raises(ReferenceFileError, match="cannot read"):
        open_reference(bad, "gain")
    path = write_ref(tmp_path / "gain.fits", dm.GainModel(data=np.ones((4, 4), "f4")), "GAIN")
    with pytest.raises(ReferenceFileError, match="GAIN reference file, not DARK") as info:
        open_reference(path, "dark")
    assert info.value.reftype == "DARK"


# --------------------------------------------------------------------------- regions


def test_subarray_exposure_selects_region_of_full_frame_reference(tmp_path, dm, rng):
    full = rng.normal(size=(2048, 2048)).astype("f4")
    path = write_ref(tmp_path / "gain.fits", dm.GainModel(data=full), "GAIN")
    attrs = exposure_attrs(substrt=(1025, 1793), subsize=(160, 64), subarray="SUB160")
    ref = open_reference(path, "gain")
    for exposure in (attrs, exposure_dataset(attrs)):
        cut = select_region(ref, exposure)
        np.testing.assert_array_equal(cut.sci.values, full[1792 : 1792 + 64, 1024 : 1024 + 160])
        np.testing.assert_array_equal(cut.x, 1024 + np.arange(160))
        assert (cut.attrs["substrt1"], cut.attrs["subsize2"]) == (1025, 64)
        assert cut.attrs["file_region"]["subsize1"] == 2048


def test_subarray_reference_containing_the_exposure(tmp_path, dm, rng):
    sub = rng.normal(size=(40, 50)).astype("f4")
    path = write_ref(
        tmp_path / "gain.fits", dm.GainModel(data=sub), "GAIN", subarray="GENERIC", substrt=(11, 21)
    )
    ref = open_reference(path)
    cut = select_region(ref, exposure_attrs(substrt=(15, 30), subsize=(20, 10), subarray="X"))
    np.testing.assert_array_equal(cut.sci.values, sub[30 - 21 : 30 - 21 + 10, 4:24])
    with pytest.raises(ReferenceFileError, match="jwst requires"):
        select_region(ref, exposure_attrs(substrt=(15, 30), subsize=(20, 10)), require_exact=True)
    same = select_region(
        ref, exposure_attrs(substrt=(11, 21), subsize=(50, 40)), require_exact=True
    )
    np.testing.assert_array_equal(same.sci.values, sub)


def test_uncovered_region_raises(tmp_path, dm):
    path = write_ref(
        tmp_path / "jwst_nircam_gain_0001.fits",
        dm.GainModel(data=np.ones((40, 50), "f4")),
        "GAIN",
        subarray="GENERIC",
        substrt=(11, 21),
    )
    attrs = exposure_attrs(tmp_path / "jw01_nrca1_uncal.fits", substrt=(1, 1), subsize=(64, 64))
    with pytest.raises(ReferenceFileError) as info:
        select_region(open_reference(path), attrs)
    msg = str(info.value)
    assert "GAIN" in msg and "jwst_nircam_gain_0001.fits" in msg and "jw01_nrca1_uncal" in msg
    assert "columns 10-59" in msg


def test_select_region_rejects_other_detector(tmp_path, dm):
    path = write_ref(
        tmp_path / "gain.fits", dm.GainModel(data=np.ones((8, 8), "f4")), "GAIN", detector="NRCB1"
    )
    with pytest.raises(ReferenceFileError, match="NRCB1"):
        select_region(open_reference(path), exposure_attrs(subsize=(8, 8)))


def test_reference_without_spatial_dims_is_returned_as_is(tmp_path, dm):
    path = write_ref(tmp_path / "ipc.fits", dm.IPCModel(data=np.ones((3, 3), "f4")), "IPC")
    ref = open_reference(path)
    assert select_region(ref, exposure_attrs()) is ref


# --------------------------------------------------------------------------- resolution


@pytest.fixture(scope="module")
def refs_dir(tmp_path_factory, dm):
    """A reference directory with several candidates (nx, ny = 96, 64 "full frame").

    Shared by the module: tests must not change it (copy it first).
    """
    d = tmp_path_factory.mktemp("shared") / "refs"
    d.mkdir()
    f4 = np.float32

    def gain(name, **kw):
        return write_ref(d / name, dm.GainModel(data=np.ones((64, 96), f4)), "GAIN", **kw)

    def dark(name, shape=(64, 96), ngroups=4, **kw):
        model = dm.DarkModel(
            data=np.ones((ngroups, *shape), f4),
            err=np.ones((ngroups, *shape), f4),
            dq=np.zeros(shape, "u4"),
        )
        extra = {"exposure.nframes": 1, "exposure.ngroups": ngroups, "exposure.groupgap": 0}
        return write_ref(d / name, model, "DARK", **extra, **kw)

    paths = {
        "gain_a1": gain("jwst_nircam_gain_0001.fits"),
        "gain_b1": gain("jwst_nircam_gain_0002.fits", detector="NRCB1"),
        "gain_a1_new": gain("jwst_nircam_gain_0003.fits", useafter="2020-01-01T00:00:00"),
        "gain_a1_future": gain("jwst_nircam_gain_0004.fits", useafter="2040-01-01T00:00:00"),
        "dark_full": dark("jwst_nircam_dark_0001.fits", **{"exposure.readpatt": "RAPID"}),
        "dark_sub": dark(
            "jwst_nircam_dark_0002.fits",
            shape=(16, 32),
            subarray="SUB160",
            substrt=(9, 5),
            **{"exposure.readpatt": "RAPID"},
        ),
        "dark_bright": dark("jwst_nircam_dark_0003.fits", **{"exposure.readpatt": "BRIGHT1"}),
        "mask_multi": write_ref(
            d / "jwst_nircam_mask_0001.fits",
            dm.MaskModel(dq=np.zeros((64, 96), "u4")),
            "MASK",
            detector="MULTIPLE",
            keywords={"P_DETECT": "NRCA1|NRCA2|"},
        ),
        "mask_b": write_ref(
            d / "jwst_nircam_mask_0002.fits",
            dm.MaskModel(dq=np.zeros((64, 96), "u4")),
            "MASK",
            detector="MULTIPLE",
            keywords={"P_DETECT": "NRCB1|NRCB2|"},
        ),
    }
    (d / "notes.fits").write_text("not FITS, ignored")
    return d, paths


def test_directory_picks_by_reftype_detector_subarray_and_date(refs_dir):
    d, p = refs_dir
    full = exposure_attrs()
    # newest USEAFTER not after the exposure (MJD 60000 = 2023-02-25) wins
    assert resolve_reference("gain", full, refs_dir=d) == p["gain_a1_new"]
    assert resolve_reference("GAIN", {**full, "detector": "NRCB1"}, refs_dir=d) == p["gain_b1"]
    # a full-frame exposure: only the full-frame RAPID dark covers it and matches READPATT
    assert resolve_reference("dark", full, refs_dir=d) == p["dark_full"]
    assert (
        resolve_reference("dark", {**full, "readpatt": "BRIGHT1"}, refs_dir=d) == p["dark_bright"]
    )
    # a subarray exposure: the dark with its exact region (as jwst needs) ...
    sub = exposure_attrs(substrt=(9, 5), subsize=(32, 16), subarray="SUB160")
    assert resolve_reference("dark", sub, refs_dir=d) == p["dark_sub"]
    # ... but the full-frame one for a subarray the small dark does not cover
    other = exposure_attrs(substrt=(41, 5), subsize=(32, 16), subarray="SUB160")
    assert resolve_reference("dark", other, refs_dir=d) == p["dark_full"]
    # a full-frame gain serves a subarray exposure
    assert resolve_reference("gain", sub, refs_dir=d) == p["gain_a1_new"]
    # P_DETECT patterns
    assert resolve_reference("mask", full, refs_dir=d) == p["mask_multi"]
    assert resolve_reference("mask", {**full, "detector": "NRCB2"}, refs_dir=d) == p["mask_b"]


def test_override_beats_directory_and_na_passes(refs_dir):
    d, p = refs_dir
    attrs = exposure_attrs()
    assert resolve_reference("gain", attrs, override=p["gain_a1"], refs_dir=d) == p["gain_a1"]
    assert resolve_reference("gain", attrs, override="N/A", refs_dir=d) == "N/A"
    assert resolve_reference("gain", attrs, override="n/a", refs_dir=d) == "N/A"


def test_wrong_detector_override_raises(refs_dir):
    d, p = refs_dir
    with pytest.raises(ReferenceFileError) as info:
        resolve_reference("gain", exposure_attrs(), override=p["gain_b1"], refs_dir=d)
    msg = str(info.value)
    assert info.value.reftype == "GAIN"
    assert "GAIN" in msg and "NRCB1" in msg and "NRCA1" in msg


def test_override_errors(refs_dir, tmp_path):
    d, p = refs_dir
    attrs = exposure_attrs()
    with pytest.raises(ReferenceFileError, match="does not exist"):
        resolve_reference("gain", attrs, override=tmp_path / "missing.fits")
    with pytest.raises(ReferenceFileError, match="is a DARK reference file, not GAIN"):
        resolve_reference("gain", attrs, override=p["dark_full"])
    # the small subarray dark does not cover a full-frame exposure
    with pytest.raises(ReferenceFileError, match="covers rows 4-19"):
        resolve_reference("dark", attrs, override=p["dark_sub"])


def test_missing_reference_error_says_how_to_supply_it(refs_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("CRDS_PATH", raising=False)
    d, _ = refs_dir
    attrs = exposure_attrs(tmp_path / "jw02_nrca1_uncal.fits")
    with pytest.raises(ReferenceFileError) as info:
        resolve_reference("readnoise", attrs, refs_dir=d)
    msg = str(info.value)
    assert "READNOISE" in msg and "jw02_nrca1_uncal.fits" in msg
    assert "override_readnoise" in msg and "--refs" in msg and "CRDS_PATH" in msg
    with pytest.raises(ReferenceFileError, match="none for NIRCAM NRCA3"):
        resolve_reference("gain", {**attrs, "detector": "NRCA3"}, refs_dir=d)
    assert resolve_reference("ipc", attrs, refs_dir=d, optional=True) == "N/A"
    with pytest.raises(ReferenceFileError, match="does not exist"):
        resolve_reference("gain", attrs, refs_dir=tmp_path / "no_such_dir")


def test_default_directory_beside_the_exposure(tmp_path, make_uncal, dm, monkeypatch):
    monkeypatch.delenv("CRDS_PATH", raising=False)
    uncal, _ = make_uncal(shape=(1, 3, 32, 48), substrt=(17, 9), subarray="SUB160")
    (tmp_path / "refs").mkdir()
    gain = write_ref(
        tmp_path / "refs" / "gain.fits", dm.GainModel(data=np.ones((64, 96), "f4")), "GAIN"
    )
    attrs = attrs_from_uncal(uncal)
    assert resolve_reference("gain", attrs) == gain
    exp = exposure_dataset(attrs, chunks=(32, 48))
    assert resolve_reference("gain", exp) == gain  # a Dataset works too
    cut = select_region(open_reference(gain), exp)
    assert cut.sci.shape == (32, 48) and int(cut.x[0]) == 16


def test_resolve_with_overrides_and_optional(refs_dir):
    """An override wins, N/A passes, a missing optional type (a step's ``optional_refs``)
    resolves to N/A, and no override leaves the folder's choice."""
    d, p = refs_dir
    attrs = exposure_attrs()
    kwargs = dict(refs_dir=d, use_crds=False)
    assert resolve_reference("gain", attrs, override=None, **kwargs) == p["gain_a1_new"]
    assert resolve_reference("DARK", attrs, override=p["dark_bright"], **kwargs) == \
        p["dark_bright"]
    assert resolve_reference("ipc", attrs, optional=True, **kwargs) == "N/A"
    assert resolve_reference("mask", attrs, override="N/A", **kwargs) == "N/A"


def test_directory_index_is_cached_and_refreshed(refs_dir, tmp_path, monkeypatch, dm):
    d = shutil.copytree(refs_dir[0], tmp_path / "refs")
    calls = []
    real = ref_select._index_entry

    def counting(path, storage_options=None):
        calls.append(os.path.basename(path))
        return real(path, storage_options)

    monkeypatch.setattr(ref_select, "_index_entry", counting)
    first = reference_index(d)
    n = len(calls)
    assert n == 10 and len(first) == 9  # the non-FITS file is left out
    reference_index(d)
    assert len(calls) == n
    write_ref(
        d / "jwst_nircam_readnoise_0001.fits",
        dm.ReadnoiseModel(data=np.ones((64, 96), "f4")),
        "READNOISE",
    )
    assert len(reference_index(d)) == 10 and calls[n:] == ["jwst_nircam_readnoise_0001.fits"]


def test_crds_lookup(monkeypatch, tmp_path, make_uncal):
    crds = pytest.importorskip("crds")
    uncal, _ = make_uncal()
    attrs = attrs_from_uncal(uncal)
    seen = {}

    def fake_getreferences(parameters, reftypes=None, context=None, observatory="jwst", **kw):
        seen.update(parameters=parameters, reftypes=reftypes, mode=os.environ.get("CRDS_MODE"))
        return {"gain": "/cache/jwst_nircam_gain_0042.fits", "ipc": "NOT FOUND n/a"}

    monkeypatch.setattr(crds, "getreferences", fake_getreferences)
    monkeypatch.delenv("CRDS_MODE", raising=False)
    # no CRDS_PATH: CRDS is not consulted
    monkeypatch.delenv("CRDS_PATH", raising=False)
    with pytest.raises(ReferenceFileError, match="CRDS not consulted"):
        resolve_reference("gain", attrs, refs_dir=tmp_path)
    monkeypatch.setenv("CRDS_PATH", str(tmp_path / "crds"))
    assert resolve_reference("gain", attrs) == "/cache/jwst_nircam_gain_0042.fits"
    assert seen["reftypes"] == ["gain"] and seen["mode"] == "local"
    assert seen["parameters"]["META.INSTRUMENT.DETECTOR"] == "NRCA1"
    assert "CRDS_MODE" not in os.environ
    assert resolve_reference("ipc", attrs) == "N/A"

    def failing(*args, **kwargs):
        raise crds.CrdsLookupError("Error determining best reference for 'dark'")

    monkeypatch.setattr(crds, "getreferences", failing)
    with pytest.raises(ReferenceFileError, match="CRDS lookup .* failed") as info:
        resolve_reference("dark", attrs)
    assert info.value.reftype == "DARK"
    assert resolve_reference("persat", attrs, optional=True) == "N/A"


def test_fsspec_urls(tmp_path, dm, rng):
    fsspec = pytest.importorskip("fsspec")
    data = rng.normal(size=(8, 10)).astype("f4")
    local = write_ref(tmp_path / "gain.fits", dm.GainModel(data=data), "GAIN")
    fs = fsspec.filesystem("memory")
    fs.pipe("/detflow-test/refs/gain.fits", open(local, "rb").read())
    try:
        attrs = exposure_attrs("memory://detflow-test/jw_uncal.fits", subsize=(10, 8))
        path = resolve_reference("gain", attrs, use_crds=False)
        assert path.endswith("/detflow-test/refs/gain.fits")
        np.testing.assert_array_equal(open_reference(path).sci.values, data)
        np.testing.assert_array_equal(open_reference(f"file://{local}").sci.values, data)
    finally:
        fs.rm("/detflow-test", recursive=True)


def test_extensions_may_differ_along_non_spatial_axes(tmp_path, dm, rng):
    """A MIRI dark whose DQ has one plane per integration beside a (nints, ngroups) SCI
    opens; the DQ's differing axis gets a name of its own."""
    f4 = np.float32
    ny, nx = 6, 8
    dark = dm.DarkMIRIModel(
        data=rng.normal(size=(2, 3, ny, nx)).astype(f4),
        dq=np.zeros((2, 1, ny, nx), "u4"),
        err=np.zeros((2, 3, ny, nx), f4),
    )
    dark.meta.instrument.name = "MIRI"
    dark.meta.instrument.detector = "MIRIMAGE"
    dark.meta.exposure.nframes = 1
    dark.meta.exposure.groupgap = 0
    dark.meta.exposure.ngroups = 3
    dark.meta.exposure.nints = 2
    dark.meta.exposure.readpatt = "FAST"
    ds = open_reference(write_ref(tmp_path / "dark.fits", dark, "DARK"))
    assert ds.sci.dims == ("integration", "group", "y", "x")
    assert ds.dq.dims == ("integration", "dq_group", "y", "x") and ds.sizes["dq_group"] == 1


def test_reference_headers_are_reused_until_the_file_changes(tmp_path, dm, rng, monkeypatch):
    """Every exposure of a program opens the same reference files: their parsed
    headers are kept (by path, size and mtime); each open gets attributes of its own,
    and a file rewritten since is read again."""
    from detflow.io.references import open as ref_open

    sci = rng.normal(size=(64, 96)).astype("f4")
    path = write_ref(tmp_path / "gain.fits", dm.GainModel(data=sci), "GAIN")
    reads = []
    real = ref_open._read_reference_headers
    monkeypatch.setattr(ref_open, "_read_reference_headers",
                        lambda *a: reads.append(1) or real(*a))
    first = open_reference(path, "gain")
    first.attrs["primary_header"]["REFTYPE"] = "changed by a caller"
    second = open_reference(path, "gain")
    assert len(reads) == 1 and second.attrs["primary_header"]["REFTYPE"] == "GAIN"
    np.testing.assert_array_equal(second.sci.values, sci)
    with pytest.raises(ReferenceFileError, match="not DARK"):  # the type is still checked
        open_reference(path, "dark")
    stat = os.stat(path)
    write_ref(tmp_path / "gain.fits", dm.GainModel(data=sci + 1), "GAIN")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    np.testing.assert_array_equal(open_reference(path, "gain").sci.values, sci + 1)
    assert len(reads) == 3


def test_references_cut_for_an_exposure_are_reused_until_the_file_changes(
        tmp_path, dm, rng, monkeypatch):
    """A program's exposures on one region get the reference opened and cut once:
    attributes of their own each time, and a file rewritten since is opened again."""
    from detflow.io.references import open as ref_open
    from detflow.io.references import open_reference_for

    opened = []
    real = ref_open.open_reference
    monkeypatch.setattr(ref_open, "open_reference",
                        lambda *a, **k: opened.append(1) or real(*a, **k))

    full = rng.normal(size=(2048, 2048)).astype("f4")
    path = write_ref(tmp_path / "gain.fits", dm.GainModel(data=full), "GAIN")
    attrs = exposure_attrs(substrt=(1025, 1793), subsize=(160, 64), subarray="SUB160")
    exposure = exposure_dataset(attrs)
    first = open_reference_for(path, "gain", exposure)
    np.testing.assert_array_equal(first.sci.values, full[1792:1856, 1024:1184])
    first.attrs["substrt1"] = -1
    second = open_reference_for(path, "gain", exposure)
    assert second.attrs["substrt1"] == 1025 and len(opened) == 1
    np.testing.assert_array_equal(second.sci.values, first.sci.values)
    stat = os.stat(path)
    write_ref(tmp_path / "gain.fits", dm.GainModel(data=full + 1), "GAIN")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    third = open_reference_for(path, "gain", exposure)
    np.testing.assert_array_equal(third.sci.values, full[1792:1856, 1024:1184] + 1)
    assert len(opened) == 2


# --------------------------------------------------------------------------- selection
# Reference selection never guesses (issue 11, section 2): CRDS-like selection keywords
# and USEAFTER, ties are errors that say how to choose, a simulated exposure gets its own
# references through the manifest beside it, and the dry run and products say why.


@pytest.fixture
def empty_refs(tmp_path, monkeypatch):
    """An empty ``refs/`` folder beside the exposures of ``tmp_path``; no CRDS cache."""
    monkeypatch.delenv("CRDS_PATH", raising=False)
    d = tmp_path / "refs"
    d.mkdir()
    return d


def _gain(d, name, **kw):
    return write_ref(d / name, refs_dir_model("GAIN"), "GAIN", **kw)


def refs_dir_model(reftype, shape=(64, 96)):
    from stdatamodels.jwst import datamodels as dm

    if reftype == "MASK":
        return dm.MaskModel(dq=np.zeros(shape, "u4"))
    if reftype == "READNOISE":
        return dm.ReadnoiseModel(data=np.ones(shape, "f4"))
    return dm.GainModel(data=np.ones(shape, "f4"))


def test_tied_candidates_fail_listing_them_and_how_to_choose(tmp_path, empty_refs):
    d = empty_refs
    a = _gain(d, "jwst_nircam_gain_nrca1_s1.fits", useafter="2020-01-01T00:00:00")
    b = _gain(d, "jwst_nircam_gain_nrca1_s2.fits", useafter="2020-01-01T00:00:00")
    _gain(d, "jwst_nircam_gain_old.fits", useafter="2015-01-01T00:00:00")
    exposure = tmp_path / "jw01_nrca1_uncal.fits"
    attrs = exposure_attrs(exposure)
    with pytest.raises(ReferenceFileError) as info:
        resolve_reference("gain", attrs)  # the default refs/ beside the exposure
    msg = str(info.value)
    assert "jwst_nircam_gain_nrca1_s1.fits" in msg and "jwst_nircam_gain_nrca1_s2.fits" in msg
    assert "jwst_nircam_gain_old.fits" not in msg  # older: not tied
    assert "override_gain=FILE" in msg and "--steps.<step>.override_gain" in msg
    assert "manifest.json" in msg and "--refs DIR" in msg
    # each way of choosing works
    assert resolve_reference("gain", attrs, override=b, explain=True) == (b, "override_gain")
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"exposures": {exposure.name: {"references": {"GAIN": "refs/" + os.path.basename(a)}}}}))
    path, why = resolve_reference("gain", attrs, explain=True)
    assert path == a and why == "manifest.json entry for this exposure"
    # a file of the same root with another suffix (a step's product) uses that entry; a
    # manifest of the older single-exposure form counts for its uncal
    product = exposure_attrs(tmp_path / "jw01_nrca1_dq_init.fits")
    assert resolve_reference("gain", product, explain=True) == (
        a, f"manifest.json entry for {exposure.name}")
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"uncal": exposure.name, "references": {"GAIN": "refs/" + os.path.basename(b)}}))
    assert resolve_reference("gain", attrs) == b
    # an entry for another exposure, or for another reftype, leaves the search as it was
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"exposures": {"jw02_nrca1_uncal.fits": {"references": {"gain": "refs/x.fits"}},
                       exposure.name: {"references": {"mask": "N/A"}}}}))
    with pytest.raises(ReferenceFileError, match="match it equally well"):
        resolve_reference("gain", attrs)
    assert resolve_reference("mask", attrs, explain=True) == (
        "N/A", "manifest.json entry for this exposure")
    # a manifest entry naming a missing or mismatched file is an error, never skipped
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"exposures": {exposure.name: {"references": {"gain": "refs/missing.fits"}}}}))
    with pytest.raises(ReferenceFileError, match="missing.fits .*does not exist"):
        resolve_reference("gain", attrs)
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"exposures": {exposure.name: {"references": {"dark": "refs/" + os.path.basename(a)}}}}))
    with pytest.raises(ReferenceFileError, match="manifest.json entry .* GAIN reference file"):
        resolve_reference("dark", attrs)


def test_latest_useafter_not_after_the_exposure_start(tmp_path, empty_refs):
    d = empty_refs
    # names in the opposite order of the dates: the name decides nothing
    new = _gain(d, "a_gain.fits", useafter="2020-01-01T00:00:00")
    old = _gain(d, "b_gain.fits", useafter="2015-01-01T00:00:00")
    future = _gain(d, "c_gain.fits", useafter="2040-01-01T00:00:00")
    attrs = exposure_attrs()  # EXPSTART MJD 60000 = 2023-02-25
    path, why = resolve_reference("gain", attrs, refs_dir=d, explain=True)
    assert path == new
    assert why == ("refs dir refs: matched DETECTOR=NRCA1 SUBARRAY=FULL, USEAFTER "
                   "2020-01-01T00:00:00 (latest of 2 not after the exposure start "
                   "2023-02-25T00:00:00; 1 with a later USEAFTER left out)")
    # DATE-OBS/TIME-OBS (what CRDS uses) come before EXPSTART
    early = {**attrs, "primary_header": {"DATE-OBS": "2016-05-01", "TIME-OBS": "12:00:00"}}
    assert resolve_reference("gain", early, refs_dir=d) == old
    # a file whose USEAFTER is after the exposure's start is never chosen
    os.remove(new)
    os.remove(old)
    with pytest.raises(ReferenceFileError) as info:
        resolve_reference("gain", attrs, refs_dir=d)
    assert "c_gain.fits (USEAFTER 2040-01-01T00:00:00)" in str(info.value)
    assert "after the exposure start 2023-02-25T00:00:00" in str(info.value)
    # with no start at all, the latest USEAFTER is taken (and the reason says so)
    undated = {k: v for k, v in attrs.items() if k != "expstart"}
    path, why = resolve_reference("gain", undated, refs_dir=d, explain=True)
    assert path == future and why.endswith("(the only match)")


def test_selection_keyword_mismatch_excludes(tmp_path, dm, empty_refs):
    d = empty_refs
    sub = exposure_attrs(substrt=(9, 5), subsize=(32, 16), subarray="SUB160")
    sub["filter"] = "F090W"
    # READPATT: a BRIGHT1 readnoise does not serve a RAPID exposure
    write_ref(d / "rn_bright1.fits", refs_dir_model("READNOISE"), "READNOISE",
              **{"exposure.readpatt": "BRIGHT1"})
    with pytest.raises(ReferenceFileError,
                       match=r"rn_bright1.fits \(READPATT=BRIGHT1, the exposure's READPATT"):
        resolve_reference("readnoise", sub, refs_dir=d)
    # ... but one whose P_READPA names the exposure's pattern does
    rn = write_ref(d / "rn_patterns.fits", refs_dir_model("READNOISE"), "READNOISE",
                   **{"exposure.readpatt": "BRIGHT1"},
                   keywords={"P_READPA": "BRIGHT1|RAPID|"})
    assert resolve_reference("readnoise", sub, refs_dir=d) == rn
    # SUBARRAY: a SUB640 file covering the region is not for a SUB160 exposure; a FULL
    # one is (jwst cuts it)
    write_ref(d / "gain_sub640.fits", refs_dir_model("GAIN"), "GAIN", subarray="SUB640")
    with pytest.raises(ReferenceFileError, match="SUBARRAY=SUB640, the exposure's SUBARRAY"):
        resolve_reference("gain", sub, refs_dir=d)
    full = _gain(d, "gain_full.fits")
    assert resolve_reference("gain", sub, refs_dir=d) == full
    # FILTER: another filter excludes, the exposure's filter or a wildcard matches
    write_ref(d / "mask_f200w.fits", refs_dir_model("MASK"), "MASK",
              **{"instrument.filter": "F200W"})
    with pytest.raises(ReferenceFileError, match="FILTER=F200W, the exposure's FILTER is F090W"):
        resolve_reference("mask", sub, refs_dir=d)
    mask = write_ref(d / "mask_f090w.fits", refs_dir_model("MASK"), "MASK",
                     **{"instrument.filter": "F090W"})
    path, why = resolve_reference("mask", sub, refs_dir=d, explain=True)
    assert path == mask and "FILTER=F090W" in why and "(the only match)" in why
    # a MIRI DARK is selected by READPATT; a NIRCam one is not (CRDS's rules): a RAPID
    # NIRCam dark serves a BRIGHT2 exposure when its frames do, an equal READPATT first
    f4 = np.float32

    def dark(name, readpatt, instrument="NIRCAM", detector="NRCA1", ngroups=12):
        model = (dm.DarkMIRIModel(data=np.ones((1, ngroups, 64, 96), f4),
                                  err=np.ones((1, ngroups, 64, 96), f4),
                                  dq=np.zeros((1, 1, 64, 96), "u4"))
                 if instrument == "MIRI" else
                 dm.DarkModel(data=np.ones((ngroups, 64, 96), f4),
                              err=np.ones((ngroups, 64, 96), f4), dq=np.zeros((64, 96), "u4")))
        return write_ref(d / name, model, "DARK", instrument=instrument, detector=detector,
                         **{"exposure.readpatt": readpatt, "exposure.nframes": 1,
                            "exposure.groupgap": 0, "exposure.ngroups": ngroups})

    rapid = dark("dark_rapid.fits", "RAPID")
    bright2 = {**exposure_attrs(readpatt="BRIGHT2", ngroups=4, nframes=2), "filter": "F090W"}
    path, why = resolve_reference("dark", bright2, refs_dir=d, explain=True)
    assert path == rapid and "READPATT" not in why
    exact = dark("dark_bright2.fits", "BRIGHT2")
    path, why = resolve_reference("dark", bright2, refs_dir=d, explain=True)
    assert path == exact and "its READPATT equals the exposure's" in why
    dark("dark_miri_slow.fits", "SLOW", instrument="MIRI", detector="MIRIMAGE")
    miri = exposure_attrs(instrument="MIRI", detector="MIRIMAGE", readpatt="FAST")
    with pytest.raises(ReferenceFileError, match="READPATT=SLOW, the exposure's READPATT is FAST"):
        resolve_reference("dark", miri, refs_dir=d)


def test_detector_patterns_and_specificity(tmp_path, empty_refs):
    d = empty_refs
    multi = write_ref(d / "mask_multi.fits", refs_dir_model("MASK"), "MASK",
                      detector="MULTIPLE", keywords={"P_DETECT": "NRCA1|NRCA2|"})
    path, why = resolve_reference("mask", exposure_attrs(detector="NRCA2"), refs_dir=d,
                                  explain=True)
    assert path == multi and "DETECTOR=NRCA2" in why
    with pytest.raises(ReferenceFileError, match="none for NIRCAM NRCA3"):
        resolve_reference("mask", exposure_attrs(detector="NRCA3"), refs_dir=d)
    # the same USEAFTER: a file for exactly this detector beats the pattern (as CRDS's
    # more specific match), the pattern still serves the other detector
    a1 = write_ref(d / "mask_a1.fits", refs_dir_model("MASK"), "MASK", detector="NRCA1")
    path, why = resolve_reference("mask", exposure_attrs(), refs_dir=d, explain=True)
    assert path == a1 and "it matches more keywords exactly" in why
    assert resolve_reference("mask", exposure_attrs(detector="NRCA2"), refs_dir=d) == multi


def test_product_header_says_why_each_reference(tmp_path, make_uncal, dm, empty_refs):
    from detflow.io.exposure import open_exposure
    from detflow.io.products import write_ramp
    from detflow.pipeline.builder import apply_step

    uncal, _ = make_uncal(shape=(1, 3, 32, 48))
    mask = write_ref(empty_refs / "jwst_nircam_mask_0001.fits",
                     refs_dir_model("MASK"), "MASK")
    ds = apply_step("dq_init", open_exposure(uncal))
    assert ds.attrs["provenance"][-1]["reference_reasons"]["mask"].startswith("refs dir refs:")
    out = write_ramp(ds, tmp_path / "jw00001001001_01101_00001_nrca1_dq_init.fits")
    header = fits.getheader(out)
    assert header["R_MASK"] == os.path.basename(mask)
    history = [str(v) for v in header["HISTORY"]]
    lines = [h for h in history if h.startswith("R_MASK: ")]
    assert lines and all(len(h) <= 72 for h in lines)
    assert " ".join(h[len("R_MASK: "):] for h in lines).startswith(
        "refs dir refs: matched DETECTOR=NRCA1 SUBARRAY=FULL, USEAFTER 2015-01-01T00:00:00")
    with dm.open(out) as model:  # still a valid JWST product
        assert model.meta.ref_file.mask.name == os.path.basename(mask)
    # a product made from a product says it once, with the reason of its own run
    again = write_ramp(apply_step("dq_init", open_exposure(out), {"override_mask": mask}),
                       tmp_path / "again_dq_init.fits")
    history = [str(v) for v in fits.getheader(again)["HISTORY"]]
    assert [h for h in history if h.startswith("R_MASK: ")] == ["R_MASK: override_mask"]


@pytest.fixture(scope="module")
def three_seeds(module_tmp):
    """Three NIRCam SUB160 simulations with seeds 1, 2, 3 in one folder (default roots)."""
    from detflow.simulator import simulate

    folder = module_tmp("three_seeds")
    return folder, [simulate("nircam", folder, subarray="SUB160", ngroups=3, seed=s,
                             snowballs=0) for s in (1, 2, 3)]


@pytest.mark.slow
def test_simulations_of_several_seeds_in_one_folder_get_their_own_references(
        three_seeds, tmp_path, monkeypatch):
    from detflow.io.exposure import open_exposure

    monkeypatch.delenv("CRDS_PATH", raising=False)
    folder, sims = three_seeds
    assert len({s.uncal for s in sims}) == 3 and all(s.uncal.exists() for s in sims)
    assert sims[0].uncal.name == "jw01234001001_01101_00001_nrca1_uncal.fits"  # the demo's
    manifest = json.loads((folder / "manifest.json").read_text())
    assert sorted(manifest["exposures"]) == sorted(s.uncal.name for s in sims)
    for seed, sim in zip((1, 2, 3), sims, strict=True):
        ds = open_exposure(sim.uncal)
        for reftype, expected in sim.refs.items():
            path, why = resolve_reference(reftype, ds, explain=True)
            assert os.path.samefile(path, expected), (seed, reftype, path)
            assert f"_s{seed}" in os.path.basename(path)
            assert why == "manifest.json entry for this exposure"
        # a folder the user names wins over the manifest: this one holds all three
        # seeds, which tie -- an error listing them, not a guess ...
        with pytest.raises(ReferenceFileError, match="override_dark"):
            resolve_reference("dark", ds, refs_dir=folder / "refs")
        # ... and an override wins over both
        other = sims[seed % 3].refs["MASK"]
        assert resolve_reference("mask", ds, override=other) == str(other)
    # without the manifest, the folder's three seeds tie: an error, not a guess
    alone = tmp_path / "alone"
    shutil.copytree(folder / "refs", alone / "refs")
    shutil.copy(sims[1].uncal, alone / sims[1].uncal.name)
    with pytest.raises(ReferenceFileError) as info:
        resolve_reference("mask", open_exposure(alone / sims[1].uncal.name))
    for seed in (1, 2, 3):
        assert f"jwst_nircam_mask_nrca1_s{seed}.fits" in str(info.value)
    assert "override_mask" in str(info.value)


@pytest.mark.slow
def test_dry_run_names_each_file_and_why(three_seeds, capsys, monkeypatch):
    from detflow.cli import main

    monkeypatch.delenv("CRDS_PATH", raising=False)
    _, sims = three_seeds
    sim = sims[1]
    assert main(["run", "--dry-run", str(sim.uncal)]) == 0
    out = capsys.readouterr().out
    assert "mask=jwst_nircam_mask_nrca1_s2.fits" in out
    assert "dark=jwst_nircam_dark_nrca1_s2_sub160.fits" in out
    assert "mask: manifest.json entry for this exposure" in out
    assert "dark: manifest.json entry for this exposure" in out
