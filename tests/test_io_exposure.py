"""Lazy, chunked reading of raw and ramp exposures (detflow.io)."""

import contextlib
import functools
import gzip
import io
import json
import os
import pickle
import re
import threading
import uuid
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import dask
import fsspec
import numpy as np
import pytest
import xarray as xr
from astropy.io import fits
from lazycheck import no_compute

from detflow.contract import DIMS, KEYWORDS
from detflow.errors import InputFileError, ParameterError
from detflow.io.backend import DetflowBackendEntrypoint
from detflow.io.chunks import default_chunks, resolve_chunks
from detflow.io.exposure import open_exposure, open_exposure_lines
from detflow.io.fits import image as fits_image
from detflow.io.fits import source as fits_source
from detflow.io.keywords import STEP_KEYWORDS

# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


@contextlib.contextmanager
def no_reads(monkeypatch):
    """Fail on any dask compute and on any pixel read from a file."""

    def refuse(self, box):
        raise AssertionError(f"pixels of {self!r} were read")

    with monkeypatch.context() as m:
        m.setattr(fits_image.FitsImage, "_read_box", refuse)
        with no_compute():
            yield


def files_under(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def write_fits(path, sci, primary=None, extra=()):
    """Write a minimal raw-like FITS file with astropy (fast, for large frames)."""
    cards = {
        "INSTRUME": "NIRCAM",
        "DETECTOR": "NRCA1",
        "NGROUPS": sci.shape[1] if sci.ndim == 4 else 1,
        "NINTS": sci.shape[0] if sci.ndim == 4 else 1,
        "SUBSTRT1": 1,
        "SUBSTRT2": 1,
        "FASTAXIS": -1,
        "SLOWAXIS": 2,
    }
    cards.update(primary or {})
    hdr = fits.Header()
    for key, value in cards.items():
        if value is not None:
            hdr[key] = value
    hdus = [fits.PrimaryHDU(header=hdr), fits.ImageHDU(sci, name="SCI"), *extra]
    fits.HDUList(hdus).writeto(path)
    return str(path)


@pytest.fixture
def memfs():
    """A unique folder on fsspec's in-memory filesystem, removed afterwards."""
    fs = fsspec.filesystem("memory")
    root = f"/detflow-test-{uuid.uuid4().hex}"
    yield fs, root
    with contextlib.suppress(FileNotFoundError):
        fs.rm(root, recursive=True)


class _RangeHandler(SimpleHTTPRequestHandler):
    """http.server with byte-range support; counts the bytes it serves."""

    served = 0

    def log_message(self, *args):
        pass

    def send_head(self):
        rng = self.headers.get("Range")
        if not rng:
            return super().send_head()
        path = self.translate_path(self.path)
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
                start = int(m[1])
                end = min(int(m[2]) if m[2] else size - 1, size - 1)
                if start >= size:
                    self.send_error(416)
                    return None
                f.seek(start)
                data = f.read(end - start + 1)
        except OSError:
            self.send_error(404)
            return None
        type(self).served += len(data)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        return io.BytesIO(data)


class _PlainHandler(SimpleHTTPRequestHandler):
    """python's http.server as it is: no Range support."""

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def http_server(directory, handler):
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(directory))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --------------------------------------------------------------------------
# laziness and values
# --------------------------------------------------------------------------


def test_open_reads_and_computes_nothing(make_uncal, monkeypatch):
    path, sci = make_uncal(shape=(2, 3, 16, 24), zeroframe=True)
    with no_reads(monkeypatch):
        ds = open_exposure(path)
        ds2 = xr.open_dataset(path, engine="detflow", chunks={})
        sub = ds.data.isel(integration=1, y=slice(2, 9)).astype("float32") + 1
    assert ds.data.dims == DIMS
    assert ds.data.dtype == np.uint16
    assert ds.groupdq.dtype == np.uint8 and ds.groupdq.dims == DIMS
    assert ds.pixeldq.dtype == np.uint32 and ds.pixeldq.dims == ("y", "x")
    assert ds.zeroframe.dims == ("integration", "y", "x")
    for var in ds.data_vars.values():
        assert isinstance(var.data, dask.array.Array)
    for var in ds2.data_vars.values():
        assert isinstance(var.data, dask.array.Array)
    np.testing.assert_array_equal(ds.data.values, sci)
    np.testing.assert_array_equal(sub.values, sci[1, :, 2:9].astype("float32") + 1)


def test_values_equal_astropy_on_uneven_chunks(make_uncal):
    path, sci = make_uncal(shape=(3, 4, 32, 48), zeroframe=True, seed=3)
    chunks = {"integration": (2, 1), "group": (1, 3), "y": (5, 11, 16), "x": 7}
    ds = open_exposure(path, chunks=chunks)
    assert ds.data.chunks == ((2, 1), (1, 3), (5, 11, 16), (7,) * 6 + (6,))
    with fits.open(path) as hdul:
        expected = hdul["SCI"].data
        zeroframe = hdul["ZEROFRAME"].data
        assert expected.dtype == np.uint16  # astropy applied BZERO
        np.testing.assert_array_equal(ds.data.values, expected)
        np.testing.assert_array_equal(ds.zeroframe.values, zeroframe)
    assert ds.data.values.dtype == np.uint16
    np.testing.assert_array_equal(ds.data.values, sci)
    assert not ds.groupdq.values.any() and not ds.pixeldq.values.any()


def test_attrs_typed_and_json(make_uncal):
    path, _ = make_uncal(shape=(2, 3, 8, 10), zeroframe=True, readpatt="RAPID")
    attrs = open_exposure(path).attrs
    assert attrs["instrument"] == "NIRCAM" and attrs["detector"] == "NRCA1"
    assert attrs["ngroups"] == 3 and type(attrs["ngroups"]) is int
    assert attrs["nints"] == 2 and attrs["intstart"] == 1 and attrs["intend"] == 2
    assert type(attrs["frame_time"]) is float and attrs["frame_time"] == pytest.approx(10.73677)
    assert attrs["zeroframe"] is True
    assert attrs["fastaxis"] == -1 and attrs["slowaxis"] == 2
    assert attrs["readpatt"] == "RAPID" and attrs["subarray"] == "FULL"
    assert "bunit" not in attrs  # absent keywords are left out
    for name, (keyword, where, _) in KEYWORDS.items():
        header = attrs["primary_header" if where == "primary" else "sci_header"]
        assert (name in attrs) == (keyword in header), name
    assert attrs["primary_header"]["INSTRUME"] == "NIRCAM"
    assert attrs["sci_header"]["BZERO"] == 32768
    assert "" not in attrs["primary_header"]
    assert attrs["cal_step"] == {} and attrs["provenance"] == [] and attrs["tables"] == {}
    assert attrs["source"] == path and attrs["datamodel"] == "Level1bModel"
    json.dumps(attrs, allow_nan=False)


def test_tables_become_json_lists(make_uncal, tmp_path):
    path, sci = make_uncal(shape=(2, 3, 8, 10))
    int_times = np.zeros(
        2, dtype=[("integration_number", ">i4"), ("int_start_MJD_UTC", ">f8"), ("x", "S4")]
    )
    int_times["integration_number"] = [1, 2]
    int_times["int_start_MJD_UTC"] = [60000.5, 60000.75]
    int_times["x"] = [b"ab", b"c"]
    group = np.zeros(3, dtype=[("group_number", ">i2"), ("bary_end_time", ">f8")])
    group["group_number"] = [1, 2, 3]
    with fits.open(path) as hdul:
        hdul.append(fits.BinTableHDU(int_times, name="INT_TIMES"))
        hdul.append(fits.BinTableHDU(group, name="GROUP"))
        hdul.writeto(tmp_path / "t_uncal.fits")
    ds = open_exposure(tmp_path / "t_uncal.fits")
    tables = ds.attrs["tables"]
    assert tables["int_times"] == {
        "integration_number": [1, 2],
        "int_start_MJD_UTC": [60000.5, 60000.75],
        "x": ["ab", "c"],
    }
    assert tables["group"]["group_number"] == [1, 2, 3]
    assert all(type(v) is int for v in tables["group"]["group_number"])
    json.dumps(ds.attrs, allow_nan=False)
    np.testing.assert_array_equal(ds.data.values, sci)


def test_ramp_model_float32_with_dq(tmp_path):
    from stdatamodels.jwst import datamodels as dm

    rng = np.random.default_rng(7)
    shape = (2, 5, 12, 20)
    model = dm.RampModel(data=rng.normal(size=shape).astype(np.float32))
    model.groupdq = rng.integers(0, 256, size=shape).astype(np.uint8)
    pixeldq = rng.integers(0, 2**32, size=shape[2:], dtype=np.uint64).astype(np.uint32)
    pixeldq[0, 0] = 2**31 | 1  # needs BZERO = 2**31 to come back right
    model.pixeldq = pixeldq
    model.meta.instrument.name = "NIRCAM"
    model.meta.exposure.ngroups = shape[1]
    model.meta.subarray.xstart, model.meta.subarray.ystart = 1025, 1
    model.meta.cal_step.dq_init = "COMPLETE"
    model.meta.cal_step.saturation = "COMPLETE"
    model.meta.cal_step.dark_sub = "SKIPPED"
    path = tmp_path / "jw00001001001_01101_00001_nrca1_ramp.fits"
    model.save(str(path))
    model.close()

    ds = open_exposure(path, chunks={"x": 7})
    assert ds.data.dtype == np.float32
    assert ds.groupdq.dtype == np.uint8 and ds.pixeldq.dtype == np.uint32
    with dm.open(str(path)) as oracle:
        np.testing.assert_array_equal(ds.data.values, oracle.data)
        np.testing.assert_array_equal(ds.groupdq.values, oracle.groupdq)
        np.testing.assert_array_equal(ds.pixeldq.values, oracle.pixeldq)
    assert ds.pixeldq.values[0, 0] == 2**31 | 1
    assert ds.attrs["cal_step"] == {
        "dq_init": "COMPLETE",
        "saturation": "COMPLETE",
        "dark_sub": "SKIPPED",
    }
    assert ds.attrs["datamodel"] == "RampModel"
    assert ds.x.values[0] == 1024


def test_refout_and_pixeldq_of_raw_file(tmp_path):
    rng = np.random.default_rng(11)
    sci = rng.integers(0, 65536, size=(2, 3, 16, 40), dtype=np.uint16)
    # MIRI's layout: a quarter of the rows, all the columns
    refout = rng.integers(0, 65536, size=(2, 3, 4, 40), dtype=np.uint16)
    extra = [fits.ImageHDU(refout, name="REFOUT")]
    path = write_fits(tmp_path / "r_uncal.fits", sci, {"SUBSTRT1": 500}, extra=extra)
    ds = open_exposure(path)
    assert ds.refout.dims == ("integration", "group", "refout_y", "refout_x")
    assert ds.refout.dtype == np.uint16
    assert ds.refout.chunks == ((1, 1), (3,), (4,), (40,))
    np.testing.assert_array_equal(ds.refout.values, refout)
    np.testing.assert_array_equal(ds.data.values, sci)
    assert "zeroframe" not in ds
    with pytest.raises(ParameterError):
        open_exposure(path, chunks={"refout_x": 0})
    assert open_exposure(path, chunks={"refout_x": 16}).refout.chunks[3] == (16, 16, 8)


def test_step_keywords_match_stdatamodels_schema():
    import stdatamodels.jwst.datamodels as dm
    import yaml

    schema_path = os.path.join(os.path.dirname(dm.__file__), "schemas", "core.schema.yaml")
    with open(schema_path) as f:
        schema = yaml.safe_load(f)
    cal_step = schema["properties"]["meta"]["properties"]["cal_step"]["properties"]
    from_schema = {v["fits_keyword"]: k for k, v in cal_step.items() if "fits_keyword" in v}
    assert STEP_KEYWORDS == from_schema


# --------------------------------------------------------------------------
# coordinates and chunks
# --------------------------------------------------------------------------


def test_subarray_coords_and_amp_aligned_chunks(make_uncal):
    path, sci = make_uncal(shape=(2, 3, 16, 40), substrt=(500, 33), subarray="SUB160")
    ds = open_exposure(path)
    np.testing.assert_array_equal(ds.x.values, np.arange(499, 539))
    np.testing.assert_array_equal(ds.y.values, np.arange(32, 48))
    np.testing.assert_array_equal(ds.integration.values, [0, 1])
    np.testing.assert_array_equal(ds.group.values, [0, 1, 2])
    # the tile boundary falls on full-frame x = 512
    assert ds.data.chunks == ((1, 1), (3,), (16,), (13, 27))
    assert ds.x.values[13] == 512
    assert ds.pixeldq.chunks == ((16,), (13, 27))
    np.testing.assert_array_equal(ds.data.sel(x=slice(512, None)).values, sci[..., 13:])


def test_fastaxis_2_tiles_along_y(make_uncal):
    path, sci = make_uncal(
        instrument="NIRSPEC",
        detector="NRS1",
        fastaxis=2,
        slowaxis=1,
        shape=(1, 2, 20, 12),
        substrt=(1, 1020),
        subarray="SUB32",
    )
    ds = open_exposure(path)
    assert ds.data.chunks == ((1,), (2,), (5, 15), (12,))
    assert ds.y.values[5] == 1024
    np.testing.assert_array_equal(ds.data.values, sci)


def test_full_frame_tiles_are_amplifier_strips(tmp_path):
    sci = (np.arange(2 * 2048 * 2048, dtype=np.uint32) % 65536).astype(np.uint16)
    sci = sci.reshape(1, 2, 2048, 2048)
    path = write_fits(tmp_path / "ff_uncal.fits", sci, {"SUBARRAY": "FULL"})
    ds = open_exposure(path)
    assert ds.data.chunks == ((1,), (2,), (2048,), (512, 512, 512, 512))
    block = ds.data.data.blocks[0, 0, 0, 2].compute()
    np.testing.assert_array_equal(block, sci[..., 1024:1536])
    path2 = write_fits(tmp_path / "ff2_uncal.fits", sci[:, :1], {"FASTAXIS": 2, "SLOWAXIS": 1})
    assert open_exposure(path2).data.chunks == ((1,), (1,), (512,) * 4, (2048,))


def _read_boxes(arr):
    """The boxes the read tasks of a dask array read from its file."""
    return [task.args[1].value for key, task in dict(arr.__dask_graph__()).items()
            if isinstance(key, tuple) and str(key[0]).startswith("detflow-read")]


@pytest.mark.parametrize("dim", ["y", "x"])
def test_open_exposure_lines_reads_only_the_lines(make_uncal, dim):
    path, sci = make_uncal(shape=(2, 3, 32, 48))
    ds = open_exposure(path, chunks={"y": (5, 27), "x": (20, 28)})
    index = [0, 1, 2, 3, 17, 28, 29, 30, 31] if dim == "y" else [0, 1, 2, 3, 44, 45, 46, 47]
    lines = open_exposure_lines(ds, dim, index)
    assert lines.attrs == ds.attrs
    for name in ("data", "groupdq", "pixeldq"):
        np.testing.assert_array_equal(lines[name].values, ds[name].isel({dim: index}).values)
        axis = lines[name].dims.index(dim)
        for box in _read_boxes(lines[name].data):  # no task reads a line not asked for
            assert set(range(box[axis].start, box[axis].stop)) <= set(index)
    np.testing.assert_array_equal(lines[dim].values, ds[dim].values[index])


def test_open_exposure_lines_only_for_the_file_as_opened(make_uncal, tmp_path):
    path, sci = make_uncal(shape=(1, 2, 16, 16))
    ds = open_exposure(path)
    assert open_exposure_lines(ds, "y", [0, 1]) is not None
    changed = ds.copy()
    changed["data"] = changed["data"] + 1  # no longer the file's values
    assert open_exposure_lines(changed, "y", [0, 1]) is None
    assert open_exposure_lines(ds.compute(), "y", [0, 1]) is None  # in memory
    assert open_exposure_lines(ds, "y", [16]) is None  # off the exposure
    os.utime(path, ns=(1, 1))  # the file changed since it was opened
    assert open_exposure_lines(ds, "y", [0, 1]) is None


def test_default_chunks_sizes():
    nir = {"instrument": "NIRCAM", "fastaxis": 1}
    # 100 groups of a 2048 x 512 strip is 419 MB in float32: cut into 5 row bands
    chunks = default_chunks(nir, (3, 100, 2048, 2048))
    assert chunks["integration"] == (1, 1, 1) and chunks["group"] == (100,)
    assert chunks["x"] == (512,) * 4
    assert len(chunks["y"]) == 5 and sum(chunks["y"]) == 2048
    assert max(chunks["y"]) * 512 * 100 * 4 <= 150e6
    nrs = {"instrument": "NIRSPEC", "fastaxis": -2}
    assert default_chunks(nrs, (1, 10, 2048, 2048))["y"] == (512,) * 4
    irs2 = {"instrument": "NIRSPEC", "fastaxis": 2, "readpatt": "NRSIRS2RAPID"}
    assert default_chunks(irs2, (1, 10, 3200, 2048))["y"] == (640,) * 5
    miri = {"instrument": "MIRI", "fastaxis": 1}
    small = default_chunks(miri, (2, 10, 1024, 1032))
    assert small["x"] == (1032,) and small["y"] == (1024,)
    big = default_chunks(miri, (2, 200, 1024, 1032))
    assert big["x"] == (1032,) and len(big["y"]) > 1
    assert max(big["y"]) * 1032 * 200 * 4 <= 150e6
    sub = default_chunks(
        {"instrument": "NIRCAM", "substrt1": 1000, "fastaxis": -1}, (1, 2, 64, 600)
    )
    assert sub["x"] == (25, 512, 63)


def test_neighbouring_amplifiers_joined_up_to_join_bytes():
    """With ``join_bytes`` (a program on a cluster: ``detflow.tiles.join-bytes``), whole
    amplifiers are joined while the tile stays within it; tiles still end on amplifier
    boundaries, and the default joins nothing."""
    import dask

    from detflow.io.chunks import CLUSTER_JOIN_BYTES, JOIN_KEY

    nir = {"instrument": "NIRCAM", "fastaxis": 1}
    join = CLUSTER_JOIN_BYTES
    # 10 groups of one amplifier is 42 MB: two amplifiers per tile (84 MB)
    assert default_chunks(nir, (2, 10, 2048, 2048), join_bytes=join)["x"] == (1024, 1024)
    # 5 groups: the whole frame is 84 MB, one tile per integration
    assert default_chunks(nir, (2, 5, 2048, 2048), join_bytes=join)["x"] == (2048,)
    # 13 groups: two amplifiers would be 109 MB, over 100 MB: one each
    assert default_chunks(nir, (1, 13, 2048, 2048), join_bytes=join)["x"] == (512,) * 4
    nrs = {"instrument": "NIRSPEC", "fastaxis": -2}
    tiles = default_chunks(nrs, (1, 10, 2048, 2048), join_bytes=join)
    assert tiles["y"] == (1024, 1024) and tiles["x"] == (2048,)
    # a subarray's pieces of amplifiers are joined like whole ones, never past the size
    sub = {"instrument": "NIRCAM", "substrt1": 1000, "fastaxis": -1}
    assert default_chunks(sub, (1, 22, 2048, 600), join_bytes=join)["x"] == (537, 63)
    assert default_chunks(sub, (1, 2, 64, 600), join_bytes=join)["x"] == (600,)
    # never past max_bytes, whatever join_bytes says
    assert default_chunks(nir, (1, 20, 2048, 2048), join_bytes=10**12)["x"] == (512,) * 4
    # the default joins nothing; the Dask setting turns it on
    assert default_chunks(nir, (1, 5, 2048, 2048))["x"] == (512,) * 4
    with dask.config.set({JOIN_KEY: join}):
        assert default_chunks(nir, (1, 5, 2048, 2048))["x"] == (2048,)
        shape = (1, 5, 2048, 2048)
        assert resolve_chunks(None, nir, shape)["x"] == (2048,)


def test_resolve_chunks_user_and_errors():
    attrs = {"instrument": "NIRCAM", "fastaxis": -1}
    shape = (2, 4, 32, 48)
    assert resolve_chunks("auto", attrs, shape) == default_chunks(attrs, shape)
    assert resolve_chunks({}, attrs, shape) == default_chunks(attrs, shape)
    out = resolve_chunks({"y": 10, "integration": -1, "x": None}, attrs, shape)
    assert out == {"integration": (2,), "group": (4,), "y": (10, 10, 10, 2), "x": (48,)}
    with pytest.raises(ParameterError, match="unknown dimensions"):
        resolve_chunks({"z": 3}, attrs, shape)
    with pytest.raises(ParameterError):
        resolve_chunks({"y": (10, 10)}, attrs, shape)
    with pytest.raises(ParameterError):
        resolve_chunks(12, attrs, shape)


# --------------------------------------------------------------------------
# remote files
# --------------------------------------------------------------------------


def test_memory_url_equals_local_and_reads_only_the_tile(make_uncal, memfs, monkeypatch):
    path, sci = make_uncal(shape=(2, 3, 16, 40), substrt=(500, 1), zeroframe=True)
    fs, root = memfs
    with open(path, "rb") as f:
        fs.pipe(f"{root}/x_uncal.fits", f.read())
    url = f"memory://{root}/x_uncal.fits"
    ds = open_exposure(url)
    local = open_exposure(path)
    assert ds.attrs["source"] == url
    assert ds.data.chunks == local.data.chunks
    np.testing.assert_array_equal(ds.data.values, local.data.values)
    np.testing.assert_array_equal(ds.zeroframe.values, local.zeroframe.values)

    requested = []
    real = fits_source._Reader.read_ranges

    def spy(self, ranges, exact=True):
        requested.extend(ranges)
        return real(self, ranges, exact)

    monkeypatch.setattr(fits_source._Reader, "read_ranges", spy)
    block = ds.data.data.blocks[1, 0, 0, 1].compute()
    np.testing.assert_array_equal(block, sci[1:2, :, :, 13:])
    # one integration of a (3, 16, 40) cube: whole rows, nothing more
    assert sum(end - start for start, end in requested) == 3 * 16 * 40 * 2


def test_file_url(make_uncal):
    path, sci = make_uncal(shape=(1, 2, 8, 10))
    np.testing.assert_array_equal(open_exposure(f"file://{path}").data.values, sci)


@pytest.mark.parametrize("handler", [_RangeHandler, _PlainHandler], ids=["range", "no-range"])
def test_http_url_equals_local(make_uncal, tmp_path, handler):
    path, sci = make_uncal(shape=(2, 3, 16, 40), substrt=(500, 1), zeroframe=True)
    with http_server(tmp_path, handler) as base:
        url = f"{base}/{os.path.basename(path)}"
        ds = open_exposure(url)
        assert ds.data.chunks == ((1, 1), (3,), (16,), (13, 27))
        np.testing.assert_array_equal(ds.data.values, sci)
        np.testing.assert_array_equal(ds.zeroframe.values, sci[:, 0] - 5)
        if handler is _RangeHandler:
            _RangeHandler.served = 0
            ds.data.data.blocks[0, 0, 0, 0].compute()
            assert 0 < _RangeHandler.served < os.path.getsize(path) // 2
        with pytest.raises(InputFileError, match="not found"):
            open_exposure(f"{base}/nothing_uncal.fits")


def test_graph_is_picklable(make_uncal, memfs):
    path, sci = make_uncal(shape=(2, 2, 8, 10), zeroframe=True)
    fs, root = memfs
    with open(path, "rb") as f:
        fs.pipe(f"{root}/p_uncal.fits", f.read())
    for target in (path, f"memory://{root}/p_uncal.fits"):
        ds = open_exposure(target)
        again = pickle.loads(pickle.dumps(ds))
        np.testing.assert_array_equal(again.data.values, sci)
        np.testing.assert_array_equal(again.zeroframe.values, sci[:, 0] - 5)


# --------------------------------------------------------------------------
# xarray backend
# --------------------------------------------------------------------------


def test_xarray_backend(make_uncal, tmp_path):
    path, sci = make_uncal(shape=(2, 3, 16, 40), substrt=(500, 1))
    ds = xr.open_dataset(path, engine="detflow", chunks={})
    ref = open_exposure(path)
    assert ds.data.chunks == ref.data.chunks
    assert ds.pixeldq.chunks == ref.pixeldq.chunks
    assert ds.attrs["instrument"] == "NIRCAM"
    np.testing.assert_array_equal(ds.x.values, ref.x.values)
    np.testing.assert_array_equal(ds.data.values, sci)

    lazy = xr.open_dataset(path, engine="detflow", drop_variables="groupdq")
    assert "groupdq" not in lazy
    picked = lazy.data[1, ::2, [3, 1, 7], 5].values  # outer indexing
    np.testing.assert_array_equal(picked, sci[1, ::2][:, [3, 1, 7], 5])
    np.testing.assert_array_equal(lazy.pixeldq[2:5].values, np.zeros((3, 40), np.uint32))

    entry = DetflowBackendEntrypoint()
    assert entry.guess_can_open(path)
    assert entry.guess_can_open("s3://bucket/jw01_ramp.fits")
    other = write_fits(tmp_path / "plain.fits", sci)
    assert entry.guess_can_open(other)
    fits.PrimaryHDU(np.zeros((2, 2))).writeto(tmp_path / "nosci.fits")
    assert not entry.guess_can_open(str(tmp_path / "nosci.fits"))
    assert not entry.guess_can_open("table.csv")


# --------------------------------------------------------------------------
# bad input files
# --------------------------------------------------------------------------


def _bad_truncated_data(tmp_path, good):
    data = good.read_bytes()
    with fits.open(good) as hdul:
        cut = hdul["SCI"]._data_offset + 100
    (tmp_path / "bad_uncal.fits").write_bytes(data[:cut])
    return "truncated"


def _bad_truncated_header(tmp_path, good):
    (tmp_path / "bad_uncal.fits").write_bytes(good.read_bytes()[:4000])
    return "truncated"


def _bad_text(tmp_path, good):
    (tmp_path / "bad_uncal.fits").write_text("this is not a FITS file\n" * 200)
    return "not a FITS file"


def _bad_empty(tmp_path, good):
    (tmp_path / "bad_uncal.fits").write_bytes(b"")
    return "not a FITS file"


def _bad_gzip(tmp_path, good):
    (tmp_path / "bad_uncal.fits").write_bytes(gzip.compress(good.read_bytes()))
    return "gzip"


def _bad_missing(tmp_path, good):
    return "not found"


def _bad_directory(tmp_path, good):
    (tmp_path / "bad_uncal.fits").mkdir()
    return "directory"


def _bad_no_sci(tmp_path, good):
    hdr = fits.Header({"INSTRUME": "NIRCAM", "NGROUPS": 2})
    fits.HDUList(
        [fits.PrimaryHDU(header=hdr), fits.ImageHDU(np.zeros((2, 4, 4)), name="DATA")]
    ).writeto(tmp_path / "bad_uncal.fits")
    return "no SCI extension"


def _bad_3d(tmp_path, good):
    write_fits(tmp_path / "bad_uncal.fits", np.zeros((2, 4, 4), np.uint16))
    return "3 dimensions"


def _bad_ngroups_contradicts(tmp_path, good):
    write_fits(tmp_path / "bad_uncal.fits", np.zeros((1, 2, 4, 4), np.uint16), {"NGROUPS": 5})
    return "NGROUPS = 5 contradicts the SCI array, which has 2 groups"


def _bad_nints_contradicts(tmp_path, good):
    write_fits(tmp_path / "bad_uncal.fits", np.zeros((3, 2, 4, 4), np.uint16),
               {"NGROUPS": 2, "NINTS": 2})
    return "NINTS = 2 contradicts the SCI array, which has 3 integrations"


def _bad_no_instrume(tmp_path, good):
    write_fits(tmp_path / "bad_uncal.fits", np.zeros((1, 2, 4, 4), np.uint16), {"INSTRUME": None})
    return "INSTRUME"


def _bad_instrument(tmp_path, good):
    write_fits(tmp_path / "bad_uncal.fits", np.zeros((1, 2, 4, 4), np.uint16), {"INSTRUME": "WFC3"})
    return "not a JWST detector instrument"


def _bad_groupdq_shape(tmp_path, good):
    extra = [fits.ImageHDU(np.zeros((1, 2, 4, 3), np.uint8), name="GROUPDQ")]
    write_fits(tmp_path / "bad_uncal.fits", np.zeros((1, 2, 4, 4), np.uint16), extra=extra)
    return "GROUPDQ has shape"


def _bad_keyword_type(tmp_path, good):
    write_fits(tmp_path / "bad_uncal.fits", np.zeros((1, 2, 4, 4), np.uint16), {"NGROUPS": "two"})
    return "NGROUPS"


@pytest.mark.parametrize(
    "make_bad",
    [
        _bad_truncated_data,
        _bad_truncated_header,
        _bad_text,
        _bad_empty,
        _bad_gzip,
        _bad_missing,
        _bad_directory,
        _bad_no_sci,
        _bad_3d,
        _bad_ngroups_contradicts,
        _bad_nints_contradicts,
        _bad_no_instrume,
        _bad_instrument,
        _bad_groupdq_shape,
        _bad_keyword_type,
    ],
)
def test_bad_input_raises_input_file_error(tmp_path, make_bad):
    good_dir = tmp_path / "good"
    good_dir.mkdir()
    sci = np.arange(2 * 3 * 16 * 20, dtype=np.uint16).reshape(2, 3, 16, 20)
    good = good_dir / "good_uncal.fits"
    write_fits(good, sci)
    match = make_bad(tmp_path, good)
    bad = tmp_path / "bad_uncal.fits"
    before = files_under(tmp_path)
    with pytest.raises(InputFileError, match=re.escape(str(bad))) as err:
        open_exposure(bad)
    assert match in str(err.value)
    assert err.value.path == str(bad)
    with pytest.raises(InputFileError, match=re.escape(match)):
        xr.open_dataset(bad, engine="detflow")
    assert files_under(tmp_path) == before


def test_bad_memory_url(memfs):
    fs, root = memfs
    with pytest.raises(InputFileError, match="not found"):
        open_exposure(f"memory://{root}/none_uncal.fits")
    fs.pipe(f"{root}/text_uncal.fits", b"SIMPLE? no" * 400)
    with pytest.raises(InputFileError, match="not a FITS file"):
        open_exposure(f"memory://{root}/text_uncal.fits")


def test_layout_is_reused_until_the_file_changes(make_uncal, monkeypatch):
    """Building a graph opens its exposure several times: the parsed headers are kept
    (by path, size and mtime), each open gets attributes of its own, and a file
    rewritten since is parsed again."""
    from detflow.io import exposure

    path, sci = make_uncal(shape=(2, 3, 8, 10))
    parsed = []
    real = exposure._layout
    monkeypatch.setattr(exposure, "_layout",
                        lambda *a: parsed.append(1) or real(*a))
    first = exposure.open_exposure(path)
    first.attrs["tables"]["int_times"] = "changed by a caller"
    first.attrs["nints"] = -1
    second = exposure.open_exposure(path)
    assert len(parsed) == 1
    assert second.attrs["nints"] == 2 and second.attrs["tables"] != first.attrs["tables"]
    np.testing.assert_array_equal(second["data"].values, sci)
    stat = os.stat(path)
    path2, sci2 = make_uncal(name=os.path.basename(path), shape=(2, 3, 8, 10), seed=7)
    os.utime(path2, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    third = exposure.open_exposure(path)
    assert len(parsed) == 2
    np.testing.assert_array_equal(third["data"].values, sci2)
    # another name for the same file keeps its own name (products are named after it)
    link = os.path.join(os.path.dirname(path), "jw09999001001_01101_00001_nrca1_uncal.fits")
    os.symlink(path, link)
    assert exposure.open_exposure(link).attrs["source"] == link


def test_dimensions_come_from_the_data_where_the_header_is_silent(tmp_path):
    """jwst reads NGROUPS and NINTS from the data; a header without them is no error."""
    path = tmp_path / "jw00001001001_01101_00001_nrca1_uncal.fits"
    write_fits(path, np.zeros((3, 2, 4, 4), np.uint16), {"NGROUPS": None, "NINTS": None})
    ds = open_exposure(path)
    assert dict(ds.sizes)["group"] == 2 and dict(ds.sizes)["integration"] == 3
    assert ds.attrs["ngroups"] == 2 and ds.attrs["nints"] == 3
    # a TSO segment holds fewer integrations than the exposure's NINTS: not a contradiction
    segment = tmp_path / "jw00001001001_01101_00001-seg002_nrca1_uncal.fits"
    write_fits(segment, np.zeros((2, 2, 4, 4), np.uint16), {"NGROUPS": 2, "NINTS": 10})
    assert open_exposure(segment).attrs["nints"] == 10
