"""Tests of the product writers (detflow.io.products)."""

import copy
import hashlib
import os
import threading
import warnings
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from astropy.io import fits
from stdatamodels.jwst import datamodels as dm

from detflow.contract import KEYWORDS
from detflow.errors import DetflowError
from detflow.io.products import (
    CAL_STEP_KEYWORDS,
    REF_FILE_KEYWORDS,
    ProductContentError,
    ProductWriteError,
    headers,
    open_product,
    product_path,
    to_zarr,
    write_fitopt,
    write_ramp,
    write_rate,
    write_rateints,
)

NINTS, NGROUPS, NY, NX = 2, 3, 32, 48
RATE_VARS = ("data", "err", "dq", "var_poisson", "var_rnoise")
MODEL_ATTR = {"data": "data", "err": "err", "dq": "dq"}
CAL_STEP = {
    "group_scale": "SKIPPED",
    "dq_init": "COMPLETE",
    "saturation": "COMPLETE",
    "superbias": "COMPLETE",
    "refpix": "COMPLETE",
    "linearity": "COMPLETE",
    "dark_current": "COMPLETE",
    "persistence": "SKIPPED",
    "charge_migration": "SKIPPED",
    "jump": "COMPLETE",
    "clean_flicker_noise": "SKIPPED",
    "ramp_fit": "COMPLETE",
    "gain_scale": "SKIPPED",
}


def _sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _header_dict(header):
    return {c.keyword: c.value for c in header.cards if c.keyword and c.keyword != "COMMENT"}


@pytest.fixture
def uncal(make_uncal):
    path, _ = make_uncal(shape=(NINTS, NGROUPS, NY, NX), substrt=(5, 9), subarray="SUB32")
    return Path(path)


@pytest.fixture
def outdir(tmp_path):
    """An empty output folder (the input file lies beside it)."""
    folder = tmp_path / "products"
    folder.mkdir()
    return folder


@pytest.fixture
def attrs(uncal):
    """Exposure attributes as the contract describes them, from a real uncal header."""
    with fits.open(uncal) as hdul:
        primary = _header_dict(hdul[0].header)
        sci = {
            k: v
            for k, v in _header_dict(hdul["SCI"].header).items()
            if k not in ("XTENSION", "BITPIX", "PCOUNT", "GCOUNT", "BSCALE", "BZERO")
            and not k.startswith("NAXIS")
        }
    sci["BUNIT"] = "DN"
    primary["CUSTOMKW"] = ("carried", "a keyword no schema knows")
    out = {}
    for name, (keyword, where, kind) in KEYWORDS.items():
        header = primary if where == "primary" else sci
        if keyword in header:
            out[name] = kind(header[keyword])
    out.update(
        primary_header=primary,
        sci_header=sci,
        cal_step=dict(CAL_STEP, detflow_only_step="COMPLETE"),
        provenance=[
            {
                "step": "dark_current",
                "status": "COMPLETE",
                "parameters": {},
                "reference_files": {"dark": "jwst_nircam_dark_0001.fits"},
            }
        ],
        tables={
            "int_times": {
                "integration_number": [1, 2],
                "int_start_MJD_UTC": [60000.0, 60000.1],
                "int_mid_MJD_UTC": [60000.05, 60000.15],
                "int_end_MJD_UTC": [60000.1, 60000.2],
                "int_start_BJD_TDB": [60000.001, 60000.101],
                "int_mid_BJD_TDB": [60000.051, 60000.151],
                "int_end_BJD_TDB": [60000.101, 60000.201],
            },
            "group": {
                "integration_number": [1] * NGROUPS + [2] * NGROUPS,
                "group_number": list(range(1, NGROUPS + 1)) * 2,
                "group_end_time": ["2023-01-01T00:00:00.000"] * (2 * NGROUPS),
                "completion_code_text": ["COMPLETE"] * (2 * NGROUPS),
                "bary_end_time": [1.5] * (2 * NGROUPS),
            },
        },
    )
    # numpy scalars in attrs are allowed on the way in
    out["ngroups"] = np.int64(out["ngroups"])
    return out


def _arrays(shape, seed=1):
    rng = np.random.default_rng(seed)
    out = {}
    for name in RATE_VARS:
        if name == "dq":
            out[name] = rng.integers(0, 2**32, size=shape, dtype=np.uint64).astype(np.uint32)
        else:
            a = rng.normal(5.0, 2.0, size=shape).astype(np.float32)
            a.flat[::7] = np.nan if name == "data" else a.flat[::7]
            out[name] = a
    return out


def _dataset(arrays, dims, attrs, chunks):
    return xr.Dataset(
        {n: (dims, da.from_array(a, chunks=chunks)) for n, a in arrays.items()},
        coords={"y": 8 + np.arange(NY), "x": 4 + np.arange(NX)},
        attrs=attrs,
    )


def _open_strict(path):
    """Open with stdatamodels, turning every warning into an error, and validate."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = dm.open(str(path))
        model.validate()
    return model


def _check_common(model, path, attrs, model_type):
    assert model.meta.model_type == model_type
    assert model.meta.filename == Path(path).name
    cal = model.meta.cal_step
    for step, status in CAL_STEP.items():
        assert getattr(cal, CAL_STEP_KEYWORDS[step][0]) == status, step
    assert model.meta.ref_file.dark.name == "jwst_nircam_dark_0001.fits"
    header = fits.getheader(path, 0)
    for key, value in attrs["primary_header"].items():
        if key in ("DATE", "FILENAME", "DATAMODL"):
            continue
        expected = value[0] if isinstance(value, tuple) else value
        assert header[key] == expected, key
    assert header["CUSTOMKW"] == "carried"
    assert header["DETECTOR"] == "NRCA1" and header["READPATT"] == "RAPID"
    assert header["SUBSTRT1"] == 5 and header["SUBSTRT2"] == 9
    assert not any(k.startswith("S_") and k not in _s_keywords() for k in header)


def _s_keywords():
    return {kw for _, kw, _ in CAL_STEP_KEYWORDS.values()}


def _no_leftovers(folder):
    return [p.name for p in Path(folder).iterdir() if p.name.startswith(".")]


# --------------------------------------------------------------------------- rate


def test_write_rate_round_trip(outdir, uncal, attrs):
    before = _sha(uncal)
    arrays = _arrays((NY, NX))
    ds = _dataset(arrays, ("y", "x"), attrs, chunks=(10, 17))
    snapshot = copy.deepcopy(ds.attrs)
    out = write_rate(ds, outdir / "out" / "x_rate.fits")
    assert out == outdir / "out" / "x_rate.fits"
    model = _open_strict(out)
    assert isinstance(model, dm.ImageModel) and not isinstance(model, dm.CubeModel)
    for name, a in arrays.items():
        got = getattr(model, MODEL_ATTR.get(name, name))
        assert got.dtype.newbyteorder("=") == a.dtype, name
        np.testing.assert_array_equal(got, a, err_msg=name)
    assert model.meta.bunit_data == "DN/s" and model.meta.bunit_err == "DN/s"
    assert model.meta.subarray.xstart == 5 and model.meta.exposure.ngroups == NGROUPS
    _check_common(model, out, attrs, "ImageModel")
    model.close()
    with fits.open(out) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "SCI", "ERR", "DQ", "VAR_POISSON",
                                          "VAR_RNOISE"]
        assert hdul["SCI"].header["BUNIT"] == "DN/s"
    assert _sha(uncal) == before
    assert ds.attrs == snapshot  # the input's attributes are not modified
    assert _no_leftovers(out.parent) == []


def test_write_rate_computes_once(outdir, attrs):
    calls = []
    lock = threading.Lock()

    def counted(block):
        with lock:
            calls.append(block.shape)
        return block

    base = da.from_array(np.ones((NY, NX), np.float32), chunks=(16, 24))
    base = base.map_blocks(counted, meta=np.empty((0, 0), np.float32))
    ds = xr.Dataset(
        {
            "data": (("y", "x"), base * 2),
            "err": (("y", "x"), base + 1),
            "dq": (("y", "x"), (base > 0).astype(np.uint32)),
            "var_poisson": (("y", "x"), base * 0.5),
            "var_rnoise": (("y", "x"), base),
        },
        attrs=attrs,
    )
    write_rate(ds, outdir / "a_rate.fits")
    assert len(calls) == 4  # each chunk of the shared input once


def test_write_rate_to_folder_names_product(outdir, attrs):
    ds = _dataset(_arrays((NY, NX)), ("y", "x"), attrs, chunks=-1)
    out = write_rate(ds, outdir)
    assert out.name == "jw00001001001_01101_00001_nrca1_rate.fits"
    assert fits.getheader(out)["FILENAME"] == out.name


def test_write_rateints_round_trip(outdir, attrs):
    arrays = _arrays((NINTS, NY, NX), seed=2)
    ds = _dataset(arrays, ("integration", "y", "x"), attrs, chunks=(1, 20, 48))
    # dims given in another order are transposed
    ds["err"] = ds["err"].transpose("y", "integration", "x")
    out = write_rateints(ds, outdir / "x_rateints.fits")
    model = _open_strict(out)
    assert isinstance(model, dm.CubeModel)
    for name, a in arrays.items():
        got = getattr(model, MODEL_ATTR.get(name, name))
        assert got.dtype.newbyteorder("=") == a.dtype, name
        np.testing.assert_array_equal(got, a, err_msg=name)
    times = model.int_times
    assert list(times["integration_number"]) == [1, 2]
    np.testing.assert_array_equal(
        times["int_mid_BJD_TDB"], attrs["tables"]["int_times"]["int_mid_BJD_TDB"]
    )
    _check_common(model, out, attrs, "CubeModel")
    model.close()


def test_write_fitopt_round_trip(outdir, attrs):
    rng = np.random.default_rng(3)
    nseg = 2
    arrays = {
        name: rng.normal(size=(NINTS, nseg, NY, NX)).astype(np.float32)
        for name in ("slope", "sigslope", "var_poisson", "var_rnoise", "yint", "sigyint")
    }
    arrays["weights"] = rng.random((NINTS, nseg, NY, NX)).astype(np.float32)
    arrays["crmag"] = rng.random((NINTS, 1, NY, NX)).astype(np.float32)
    arrays["pedestal"] = rng.normal(size=(NINTS, NY, NX))  # float64: written as float32
    dims4 = ("integration", "segment", "y", "x")
    dims = {n: dims4 if a.ndim == 4 else ("integration", "y", "x") for n, a in arrays.items()}
    dims["crmag"] = ("integration", "cr", "y", "x")
    ds = xr.Dataset({n: (dims[n], a) for n, a in arrays.items()}, attrs=attrs)
    out = write_fitopt(ds, outdir)
    assert out.name.endswith("_nrca1_fitopt.fits")
    model = _open_strict(out)
    assert isinstance(model, dm.RampFitOutputModel)
    for name, a in arrays.items():
        got = getattr(model, name)
        assert got.dtype.newbyteorder("=") == np.float32
        np.testing.assert_array_equal(got, a.astype(np.float32), err_msg=name)
    _check_common(model, out, attrs, "RampFitOutputModel")
    model.close()


# --------------------------------------------------------------------------- ramp


def _ramp_dataset(attrs, *, chunks=((1, 1), (NGROUPS,), (10, 22), (20, 28)), fail=False):
    rng = np.random.default_rng(4)
    shape = (NINTS, NGROUPS, NY, NX)
    data = rng.normal(1000, 50, size=shape).astype(np.float32)
    groupdq = rng.integers(0, 256, size=shape, dtype=np.uint8)
    pixeldq = rng.integers(0, 2**32, size=(NY, NX), dtype=np.uint64).astype(np.uint32)
    zeroframe = rng.normal(900, 5, size=(NINTS, NY, NX)).astype(np.float32)
    ddata = da.from_array(data, chunks=chunks)
    if fail:

        def boom(block, block_info=None):
            if block_info[None]["chunk-location"] == (1, 0, 1, 1):
                raise RuntimeError("simulated failure mid-write")
            return block

        ddata = ddata.map_blocks(boom, dtype=np.float32)
    ds = xr.Dataset(
        {
            "data": (("integration", "group", "y", "x"), ddata),
            "groupdq": (("integration", "group", "y", "x"), da.from_array(groupdq, chunks=chunks)),
            "pixeldq": (("y", "x"), da.from_array(pixeldq, chunks=(16, 48))),
            "zeroframe": (("integration", "y", "x"), zeroframe),
        },
        attrs=dict(attrs, bunit="DN"),
    )
    return ds, {"data": data, "groupdq": groupdq, "pixeldq": pixeldq, "zeroframe": zeroframe}


def test_write_ramp_round_trip(outdir, uncal, attrs):
    before = _sha(uncal)
    ds, arrays = _ramp_dataset(attrs)
    out = write_ramp(ds, outdir, suffix="jump")
    assert out.name == "jw00001001001_01101_00001_nrca1_jump.fits"
    model = _open_strict(out)
    assert isinstance(model, dm.RampModel)
    for name, a in arrays.items():
        got = getattr(model, name)
        assert got.dtype.newbyteorder("=") == a.dtype, name
        np.testing.assert_array_equal(got, a, err_msg=name)
    assert model.meta.bunit_data == "DN"
    assert list(model.group["group_number"]) == [1, 2, 3, 1, 2, 3]
    assert model.group["completion_code_text"][0] == "COMPLETE"
    assert list(model.int_times["integration_number"]) == [1, 2]
    _check_common(model, out, attrs, "RampModel")
    model.close()
    with fits.open(out) as hdul:  # astropy reads it as an ordinary FITS file
        hdul.verify("exception")
        np.testing.assert_array_equal(hdul["PIXELDQ"].data, arrays["pixeldq"])
    assert _sha(uncal) == before
    assert _no_leftovers(outdir) == []


def test_write_ramp_raw_uint16_data_is_written_as_float32(outdir, attrs):
    ds, arrays = _ramp_dataset(attrs)
    raw = np.arange(NINTS * NGROUPS * NY * NX, dtype=np.uint16).reshape(NINTS, NGROUPS, NY, NX)
    ds["data"] = (("integration", "group", "y", "x"), raw)
    ds = ds.drop_vars("zeroframe")
    out = write_ramp(ds, outdir / "r_ramp.fits")
    with fits.open(out) as hdul:
        assert "ZEROFRAME" not in hdul
    with dm.RampModel(str(out)) as model:
        np.testing.assert_array_equal(model.data, raw.astype(np.float32))
        assert model.data.dtype.newbyteorder("=") == np.float32


def test_write_ramp_computes_each_chunk_once(outdir, attrs):
    calls = []
    lock = threading.Lock()

    def counted(block):
        with lock:
            calls.append(block.shape)
        return block

    ds, _ = _ramp_dataset(attrs)
    shared = ds["data"].data.map_blocks(counted, meta=np.empty((0,) * 4, np.float32))
    ds["data"] = (ds["data"].dims, shared + 1)
    ds["groupdq"] = (ds["data"].dims, (shared > 1000).astype(np.uint8))
    write_ramp(ds, outdir / "c_ramp.fits")
    assert len(calls) == shared.npartitions


def test_write_ramp_failure_leaves_nothing(outdir, attrs):
    good, _ = _ramp_dataset(attrs)
    target = outdir / "x_ramp.fits"
    write_ramp(good, target)
    before = _sha(target)
    bad, _ = _ramp_dataset(attrs, fail=True)
    with dask.config.set(scheduler="threads"), pytest.raises(RuntimeError, match="simulated"):
        write_ramp(bad, target)
    assert _sha(target) == before
    assert _no_leftovers(outdir) == []
    fresh = outdir / "fresh_ramp.fits"
    with pytest.raises(RuntimeError, match="simulated"):
        write_ramp(bad, fresh)
    assert not fresh.exists()
    assert sorted(p.name for p in outdir.iterdir()) == ["x_ramp.fits"]


# --------------------------------------------------------------------------- atomicity, errors


def _failing(shape, chunks):
    def boom(block):
        raise RuntimeError("simulated failure mid-write")

    return da.zeros(shape, dtype=np.float32, chunks=chunks).map_blocks(boom, dtype=np.float32)


def test_write_rate_failure_leaves_existing_product_untouched(outdir, attrs):
    target = outdir / "x_rate.fits"
    write_rate(_dataset(_arrays((NY, NX)), ("y", "x"), attrs, chunks=-1), target)
    before = _sha(target)
    bad = _dataset(_arrays((NY, NX)), ("y", "x"), attrs, chunks=-1)
    bad["var_rnoise"] = (("y", "x"), _failing((NY, NX), (16, 48)))
    with pytest.raises(RuntimeError, match="simulated"):
        write_rate(bad, target)
    with pytest.raises(RuntimeError, match="simulated"):
        write_rate(bad, outdir / "new_rate.fits")
    assert _sha(target) == before
    assert sorted(p.name for p in outdir.iterdir()) == ["x_rate.fits"]


def test_missing_variable_is_reported_with_path(outdir, attrs):
    ds = _dataset(_arrays((NY, NX)), ("y", "x"), attrs, chunks=-1).drop_vars("var_poisson")
    target = outdir / "m_rate.fits"
    with pytest.raises(ProductContentError, match="var_poisson") as info:
        write_rate(ds, target)
    assert str(target) in str(info.value)
    assert isinstance(info.value, DetflowError)
    wrong = _dataset(_arrays((NINTS, NY, NX)), ("integration", "y", "x"), attrs, chunks=-1)
    with pytest.raises(ProductContentError, match="dims"):
        write_rate(wrong, target)
    assert list(outdir.iterdir()) == []


def test_unwritable_output_is_reported_before_computing(outdir, attrs):
    blocker = outdir / "not_a_folder"
    blocker.write_text("x")
    ds = _dataset(_arrays((NY, NX)), ("y", "x"), attrs, chunks=-1)
    ds["data"] = (("y", "x"), _failing((NY, NX), (16, 48)))  # would raise if computed
    target = blocker / "sub" / "x_rate.fits"
    with pytest.raises(ProductWriteError, match="not a folder") as info:
        write_rate(ds, target)
    assert str(target) in str(info.value) and isinstance(info.value, DetflowError)
    with pytest.raises(ProductWriteError):
        to_zarr(ds, blocker / "s.zarr")


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores permissions"
)
def test_read_only_folder(outdir, attrs):
    folder = outdir / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        ds = _dataset(_arrays((NY, NX)), ("y", "x"), attrs, chunks=-1)
        with pytest.raises(ProductWriteError, match="not writable"):
            write_rate(ds, folder / "x_rate.fits")
    finally:
        folder.chmod(0o755)


# --------------------------------------------------------------------------- naming


@pytest.mark.parametrize(
    ("name", "suffix", "expected"),
    [
        (
            "jw01234001001_01101_00001_nrca1_uncal.fits",
            "rate",
            "jw01234001001_01101_00001_nrca1_rate.fits",
        ),
        (
            "jw01234001001_01101_00001_nrca1_ramp.fits",
            "rateints",
            "jw01234001001_01101_00001_nrca1_rateints.fits",
        ),  # noqa: E501
        (
            "jw01234001001_01101_00001_mirimage_rate.fits",
            "fitopt",
            "jw01234001001_01101_00001_mirimage_fitopt.fits",
        ),  # noqa: E501
        ("obs_nrcb5_dark_current.fits", "jump", "obs_nrcb5_jump.fits"),
        ("obs_nrcb5_rateints.fits", "rate", "obs_nrcb5_rate.fits"),
        ("obs_nrcb5_refpix.fits.gz", "_linearity", "obs_nrcb5_linearity.fits"),
        ("plain.fits", "rate", "plain_rate.fits"),
        ("s3://bucket/dir/jw1_nrs1_uncal.fits", "rate", "jw1_nrs1_rate.fits"),
    ],
)
def test_product_path_naming(outdir, name, suffix, expected):
    assert product_path(name, outdir, suffix) == outdir / expected


def test_product_path_from_attrs_and_defaults(outdir, attrs):
    expected = "jw00001001001_01101_00001_nrca1_rate.fits"
    assert product_path(attrs, outdir, "rate").name == expected
    assert product_path(xr.Dataset(attrs=attrs), outdir, "rate").name == expected
    assert product_path({"filename": "a_b_uncal.fits"}, outdir, "x", ext=".zarr").name == (
        "a_b_x.zarr"
    )
    assert product_path(outdir / "d" / "a_uncal.fits", None, "rate") == outdir / "d" / (
        "a_rate.fits"
    )
    with pytest.raises(DetflowError):
        product_path({}, outdir, "rate")


def test_cal_step_keywords_match_stdatamodels_schema():
    import yaml

    schema_dir = Path(dm.__file__).parent / "schemas"
    schema = yaml.safe_load((schema_dir / "core.schema.yaml").read_text())
    cal = schema["properties"]["meta"]["properties"]["cal_step"]["properties"]
    for step, (attr, keyword, _) in CAL_STEP_KEYWORDS.items():
        assert cal[attr]["fits_keyword"] == keyword, step
    refs = schema["properties"]["meta"]["properties"]["ref_file"]["properties"]
    for reftype, keyword in REF_FILE_KEYWORDS.items():
        assert refs[reftype]["properties"]["name"]["fits_keyword"] == keyword, reftype


# --------------------------------------------------------------------------- Zarr, reading


def test_to_zarr_round_trip_is_lazy(outdir, attrs):
    ds, arrays = _ramp_dataset(attrs, chunks=((1, 1), (NGROUPS,), (10, 5, 17), (30, 18)))
    ds.attrs["extra"] = {"array": np.arange(3), "scalar": np.float32(1.5), "tuple": (1, 2)}
    ds["data"].attrs["note"] = np.int16(3)
    store = to_zarr(ds, outdir / "x_jump.zarr")
    assert "extra" in ds.attrs and isinstance(ds.attrs["extra"]["array"], np.ndarray)
    back = open_product(store)
    for name, a in arrays.items():
        assert isinstance(back[name].data, da.Array), name
        assert back[name].dtype == a.dtype, name
        np.testing.assert_array_equal(back[name].values, a, err_msg=name)
    assert back.attrs["extra"] == {"array": [0, 1, 2], "scalar": 1.5, "tuple": [1, 2]}
    assert back.attrs["cal_step"] == ds.attrs["cal_step"]
    assert back.attrs["tables"]["int_times"] == attrs["tables"]["int_times"]
    assert back["data"].attrs["note"] == 3
    np.testing.assert_array_equal(back["y"], ds["y"])
    # replacing an existing store; mode "w-" refuses
    to_zarr(ds.isel(integration=[0]), store)
    assert open_product(store).sizes["integration"] == 1
    with pytest.raises(ProductWriteError, match="exists"):
        to_zarr(ds, store, mode="w-")
    assert _no_leftovers(outdir) == []


def test_to_zarr_failure_keeps_existing_store(outdir, attrs):
    ds, _ = _ramp_dataset(attrs)
    store = to_zarr(ds, outdir / "s.zarr")
    bad, _ = _ramp_dataset(attrs, fail=True)
    with pytest.raises(RuntimeError, match="simulated"):
        to_zarr(bad, store)
    with pytest.raises(RuntimeError, match="simulated"):
        to_zarr(bad, outdir / "new.zarr")
    assert sorted(p.name for p in outdir.iterdir()) == ["s.zarr"]
    np.testing.assert_array_equal(open_product(store)["data"].values, ds["data"].values)


def test_open_product_fits(outdir, attrs):
    arrays = _arrays((NINTS, NY, NX), seed=5)
    ds = _dataset(arrays, ("integration", "y", "x"), attrs, chunks=(1, 32, 48))
    out = write_rateints(ds, outdir / "x_rateints.fits")
    back = open_product(out)
    for name, a in arrays.items():
        assert isinstance(back[name].data, da.Array)
        assert back[name].dims == ("integration", "y", "x")
        assert back[name].dtype == a.dtype
        np.testing.assert_array_equal(back[name].values, a)
    np.testing.assert_array_equal(back["y"], 8 + np.arange(NY))
    np.testing.assert_array_equal(back["x"], 4 + np.arange(NX))
    assert back.attrs["cal_step"] == CAL_STEP
    assert back.attrs["detector"] == "NRCA1" and back.attrs["ngroups"] == NGROUPS
    assert back.attrs["primary_header"]["CUSTOMKW"] == "carried"
    assert back.attrs["tables"]["int_times"]["integration_number"] == [1, 2]
    # a ramp written by detflow reads back under the contract's names
    ramp, rarrays = _ramp_dataset(attrs)
    rback = open_product(write_ramp(ramp, outdir / "x_ramp.fits"))
    assert rback["data"].dims == ("integration", "group", "y", "x")
    for name, a in rarrays.items():
        np.testing.assert_array_equal(rback[name].values, a, err_msg=name)


def test_updated_keyword_keeps_as_much_of_its_comment_as_fits():
    """A keyword the input had, set to a longer value: its comment is cut to fit the card
    (astropy would otherwise warn and truncate when writing)."""
    header = fits.Header()
    comment = "a long comment that filled the card with the short value it had before"
    header["FILENAME"] = ("a.fits", comment)
    long_name = "jw01234001001_01101_00001_nrca1_rateints.fits"
    headers._set(header, "FILENAME", long_name)
    assert header["FILENAME"] == long_name
    assert comment.startswith(header.comments["FILENAME"])
    assert header.comments["FILENAME"]  # some of it still fits
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        text = header.tostring()
    assert len(text) % 80 == 0 and long_name in text
