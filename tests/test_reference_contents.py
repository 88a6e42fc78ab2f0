"""What real reference files carry, read as jwst 3.0.0 / stdatamodels read it: DQ_DEF
tables, an AVDRKCUR map with NaNs, DARKs of the science shape at another corner,
subarray references without their corner keywords, GAINFACT in the products."""

import numpy as np
import pytest
from stdatamodels.jwst import datamodels as dm
from stdatamodels.jwst.datamodels.dqflags import pixel

from detflow.errors import ReferenceFileError
from detflow.io.exposure import open_exposure
from detflow.io.references import open_reference, select_region
from detflow.pipeline.builder import apply_step

NY, NX = 24, 40


def _meta(model, reftype, xstart=1, ystart=1, shape=(NY, NX)):
    meta = model.meta
    meta.reftype = reftype
    meta.instrument.name = "NIRCAM"
    meta.instrument.detector = "NRCA1"
    meta.author, meta.pedigree, meta.description = "test", "DUMMY", reftype
    meta.useafter = "2020-01-01T00:00:00"
    meta.telescope = "JWST"
    meta.subarray.name = "FULL" if shape == (2048, 2048) else "GENERIC"
    meta.subarray.xstart, meta.subarray.ystart = xstart, ystart
    meta.subarray.ysize, meta.subarray.xsize = shape
    return model


@pytest.mark.parametrize("compressed", [False, True])
def test_dq_def_is_applied_as_stdatamodels_does(tmp_path, compressed):
    """Each DQ_DEF row's VALUE bit becomes its NAME's standard flag; an unknown NAME and
    every bit no row lists are dropped."""
    rng = np.random.default_rng(2)
    dq = np.zeros((NY, NX), np.uint32)
    dq[rng.random((NY, NX)) < 0.2] = pixel["DEAD"] | pixel["DO_NOT_USE"]
    dq[rng.random((NY, NX)) < 0.1] |= pixel["HOT"]
    dq[rng.random((NY, NX)) < 0.1] |= pixel["NO_GAIN_VALUE"]  # not in the table
    model = _meta(dm.MaskModel(dq=dq), "MASK")
    names = ["DO_NOT_USE", "DEAD", "HOT", "NOT_A_FLAG"]
    values = [1, 2, 4, 8] if compressed else [1, pixel["DEAD"], pixel["HOT"], 1 << 30]
    model.dq_def = np.array(
        [(int(v).bit_length() - 1, v, n, n.lower()) for v, n in zip(values, names, strict=True)],
        dtype=[("BIT", "<i4"), ("VALUE", "<u4"), ("NAME", "S40"), ("DESCRIPTION", "S80")])
    path = tmp_path / "jwst_nircam_mask_dqdef.fits"
    model.save(str(path))
    with dm.MaskModel(str(path)) as theirs:
        expected = np.array(theirs.dq)
    ours = open_reference(path)["dq"].values
    np.testing.assert_array_equal(ours, expected)
    assert not (ours & pixel["NO_GAIN_VALUE"]).any()
    assert (ours & pixel["DEAD"]).any()


def test_a_subarray_reference_without_its_corner_is_an_error(tmp_path, make_uncal):
    """jwst's ref_matches_sci cannot place a subarray without SUBSTRT/SUBSIZE keywords."""
    from astropy.io import fits

    uncal, _ = make_uncal(shape=(1, 3, NY, NX))
    path = tmp_path / "jwst_nircam_gain_nocorner.fits"
    _meta(dm.GainModel(data=np.full((NY, NX), 2.0, np.float32)), "GAIN").save(str(path))
    with fits.open(path, mode="update") as hdul:
        for key in ("SUBSTRT1", "SUBSTRT2", "SUBSIZE1", "SUBSIZE2"):
            del hdul[0].header[key]
    with pytest.raises(ReferenceFileError, match="without SUBSTRT1"):
        select_region(open_reference(path), open_exposure(uncal))


def test_a_dark_of_the_science_shape_is_used_whatever_its_corner(tmp_path, make_uncal):
    """jwst's dark_current compares shapes only."""
    uncal, _ = make_uncal(shape=(1, 3, NY, NX), readpatt="ANY")
    data = np.arange(4 * NY * NX, dtype=np.float32).reshape(4, NY, NX) / 100
    dark = _meta(dm.DarkModel(data=data, dq=np.zeros((NY, NX), np.uint32),
                              err=np.zeros_like(data)), "DARK", xstart=101, ystart=201)
    dark.meta.exposure.nframes, dark.meta.exposure.groupgap = 1, 0
    dark.meta.exposure.ngroups = 4
    path = tmp_path / "jwst_nircam_dark_elsewhere.fits"
    dark.save(str(path))
    ds = open_exposure(uncal)
    out = apply_step("dark_current", ds, {"override_dark": str(path)})
    np.testing.assert_array_equal(out["data"].values,
                                  ds["data"].values.astype(np.float32) - data[None, :3])


def test_an_average_dark_current_map_with_nans_counts_as_set(tmp_path, make_uncal):
    """jwst tests ``np.sum(map) == 0``: a NaN makes the sum NaN, so the map is taken
    (where the input already holds a value), not the scalar."""
    uncal, _ = make_uncal(shape=(1, 3, NY, NX), readpatt="ANY")
    data = np.zeros((4, NY, NX), np.float32)
    amap = np.zeros((NY, NX), np.float32)
    amap[3, 4] = np.nan
    dark = _meta(dm.DarkModel(data=data, dq=np.zeros((NY, NX), np.uint32),
                              err=np.zeros_like(data), average_dark_current=amap), "DARK")
    dark.meta.exposure.nframes, dark.meta.exposure.groupgap = 1, 0
    dark.meta.exposure.ngroups = 4
    dark.meta.exposure.average_dark_current = 0.5
    path = tmp_path / "jwst_nircam_dark_nanmap.fits"
    dark.save(str(path))
    ds = open_exposure(uncal)
    ds.attrs["average_dark_current"] = 0.0  # an earlier value: jwst then applies the map
    out = apply_step("dark_current", ds, {"override_dark": str(path)})
    got = out["average_dark_current"].values
    assert np.isnan(got[3, 4]) and np.nansum(got) == 0.0  # the map, not 0.5


def test_gain_factor_travels_into_the_products(tmp_path):
    """jwst's ramp_fit copies the GAIN file's GAINFACT into the rate products' header,
    and a product read back carries it (gain_scale would use it)."""
    import xarray as xr

    from detflow.io.products import open_product, write_rate

    rate = xr.Dataset(
        {name: (("y", "x"), np.ones((4, 5), np.float32))
         for name in ("data", "err", "var_poisson", "var_rnoise")},
        coords={"y": np.arange(4), "x": np.arange(5)},
        attrs={"instrument": "NIRSPEC", "detector": "NRS1", "gain_factor": 2.0},
    )
    rate["dq"] = (("y", "x"), np.zeros((4, 5), np.uint32))
    path = write_rate(rate, tmp_path / "x_rate.fits")
    with dm.open(str(path)) as model:
        assert model.meta.exposure.gain_factor == 2.0
    assert open_product(path).attrs["gain_factor"] == 2.0


def test_simulate_command_writes_each_reference_variant(tmp_path, capsys):
    """``detflow simulate ... --avdrkcur map --ref-shape subarray --dq-def compressed``:
    the files carry what was asked, read back by stdatamodels."""
    from astropy.io import fits

    from detflow.cli import main

    assert main(["simulate", "nircam", str(tmp_path), "--subarray", "SUB160",
                 "--ngroups", "3", "--snowballs", "0", "--avdrkcur", "map",
                 "--ref-shape", "subarray", "--dq-def", "compressed"]) == 0
    capsys.readouterr()
    refs = {p.name.split("_")[2]: p for p in (tmp_path / "refs").glob("*.fits")}
    with fits.open(refs["dark"]) as hdul:
        assert "AVDRKCUR" in hdul and "AVDRKCUR" not in hdul[0].header
        assert hdul["AVDRKCUR"].data.shape == (160, 160)
    with fits.open(refs["mask"]) as hdul:
        assert hdul["DQ"].data.shape == (160, 160)
        assert hdul[0].header["SUBSIZE1"] == 160
        values = list(hdul["DQ_DEF"].data["VALUE"])
        assert values == [1 << k for k in range(len(values))]  # compressed bit planes
    with dm.MaskModel(str(refs["mask"])) as model:  # translated as stdatamodels does
        np.testing.assert_array_equal(open_reference(refs["mask"])["dq"].values, model.dq)

    plain = tmp_path / "plain"
    assert main(["simulate", "nircam", str(plain), "--subarray", "SUB160", "--ngroups", "3",
                 "--snowballs", "0", "--avdrkcur", "none", "--dq-def", "none"]) == 0
    refs = {p.name.split("_")[2]: p for p in (plain / "refs").glob("*.fits")}
    with fits.open(refs["dark"]) as hdul:
        assert "AVDRKCUR" not in hdul and "AVDRKCUR" not in hdul[0].header
    with fits.open(refs["mask"]) as hdul:
        assert "DQ_DEF" not in hdul and hdul["DQ"].data.shape == (2048, 2048)
