"""Reading a product back: :func:`open_product` (a Zarr store or a product FITS file).

A FITS product is opened lazily with detflow's own FITS reader
(:mod:`detflow.io.fits`): each IMAGE extension becomes a Dask-backed variable
named as the writers expect it, on the dims of the data contract where the
model type (``DATAMODL``, or guessed from the extensions) says what they are,
with the coordinates and attributes an exposure has.
"""

import os
from pathlib import Path

import xarray as xr
from astropy.io import fits

from detflow.errors import InputFileError
from detflow.io.fits import FitsImage, FitsSource, read_hdus, read_table
from detflow.io.keywords import cal_step_from_header, detector_coords, keyword_attrs
from detflow.io.products.headers import _COMMENTARY, _STRUCTURAL, CAL_STEP_KEYWORDS
from detflow.io.values import header_to_dict

__all__ = ["open_exposure_or_product", "open_product"]


_MODEL_DIMS = {
    "RampModel": {
        "SCI": ("integration", "group", "y", "x"),
        "GROUPDQ": ("integration", "group", "y", "x"),
        "REFOUT": ("integration", "group", "refout_y", "refout_x"),
    },
    "RampFitOutputModel": {
        "CRMAG": ("integration", "cr", "y", "x"),
        "PEDESTAL": ("integration", "y", "x"),
    },
}
_MODEL_DIMS["Level1bModel"] = _MODEL_DIMS["RampModel"]
_NDIM_DIMS = {
    2: ("y", "x"),
    3: ("integration", "y", "x"),
    4: ("integration", "segment", "y", "x"),
}
# ``meta.cal_step`` attribute (as cal_step_from_header names steps) -> detflow step name
_STEP_BY_SCHEMA_NAME = {attr: step for step, (attr, _, _) in CAL_STEP_KEYWORDS.items()}


def _header_dict(header):
    """A FITS header as ``{keyword: value}`` without structural or commentary cards."""
    return {
        key: value
        for key, value in header_to_dict(header).items()
        if key not in _COMMENTARY and not _STRUCTURAL.match(key)
    }


def _model_type(primary, hdus):
    """``DATAMODL``, or the model type guessed from the extensions."""
    model = primary.get("DATAMODL")
    if model is not None:
        return model
    sci = next((h for h in hdus if h.name == "SCI"), None)
    ndim = int(sci.header.get("NAXIS", 0)) if sci is not None else 0
    if any(h.name == "SLOPE" for h in hdus):
        return "RampFitOutputModel"
    return {2: "ImageModel", 3: "CubeModel", 4: "RampModel"}.get(ndim)


def _open_fits_product(path, chunks):
    from dask.base import tokenize

    path = Path(path)
    try:
        source = FitsSource(os.fspath(path)).sniff()  # a .fits.gz is read as a stream
        reader = source.reader()
    except InputFileError as exc:
        raise InputFileError(path, f"not a readable FITS product ({exc.problem})") from exc
    with reader:
        try:
            hdus = read_hdus(source, reader)
        except InputFileError as exc:
            raise InputFileError(path, f"not a readable FITS product ({exc.problem})") from exc
        stamp = reader.stamp()
        primary = hdus[0].header
        exts = [h for h in hdus[1:] if h.name != "ASDF"]
        sci_hdu = next((h for h in exts if h.name == "SCI"), None)
        sci_header = sci_hdu.header if sci_hdu is not None else fits.Header()
        model = _model_type(primary, exts)
        variables = {}
        tables = {}
        for hdu in exts:
            if hdu.is_compressed_image:
                raise InputFileError(path, "compressed images are not supported")
            if hdu.xtension == "BINTABLE":
                tables[hdu.name.lower()] = read_table(source, hdu, reader)
                continue
            if hdu.xtension != "IMAGE" or not hdu.shape:
                continue
            image = FitsImage(source, hdu.image_layout(), hdu_name=hdu.name, stamp=stamp)
            shape = image.shape
            dims = _MODEL_DIMS.get(model, {}).get(hdu.name) or _NDIM_DIMS.get(len(shape))
            if dims is None or len(dims) != len(shape):
                dims = tuple(f"{hdu.name.lower()}_{k}" for k in range(len(shape)))
            name = "data" if hdu.name == "SCI" else hdu.name.lower()
            if chunks is None:
                chunk = tuple(1 if d == "integration" else -1 for d in dims)
            else:
                chunk = chunks
            array = image.to_dask(chunk, f"detflow-fits-{name}-{tokenize(image, chunk)}")
            variables[name] = xr.Variable(dims, array)
    primary_dict = _header_dict(primary)
    sci_dict = _header_dict(sci_header)
    attrs = keyword_attrs(primary, sci_header, os.fspath(path))
    attrs["primary_header"] = primary_dict
    attrs["sci_header"] = sci_dict
    attrs["tables"] = tables
    found = cal_step_from_header(primary)
    attrs["cal_step"] = {
        step: found[attr] for attr, step in _STEP_BY_SCHEMA_NAME.items() if attr in found
    }
    attrs["provenance"] = []
    ds = xr.Dataset(variables, attrs=attrs)
    # a product is not refused for lacking SUBSTRT1/2 (as an exposure is): 1, 1 then
    x0 = int(attrs.get("substrt1", 1)) - 1
    y0 = int(attrs.get("substrt2", 1)) - 1
    return ds.assign_coords(detector_coords(ds.sizes, x0, y0, attrs.get("intstart", 1)))


def open_product(path, chunks=None):
    """Open a Zarr store or a product FITS file lazily as a Dataset.

    Parameters
    ----------
    path : str or Path
        A Zarr store written by :func:`to_zarr`, or a FITS product (rate,
        rateints, fitopt, ramp; any uncompressed JWST image product).
    chunks : dict or tuple, optional
        Dask chunks. Default: the store's chunks (Zarr), one integration per
        chunk (FITS).

    Returns
    -------
    xarray.Dataset
        Dask-backed. From FITS: variables named as the writers expect them
        (``data, err, dq, var_poisson, var_rnoise``; ``data, pixeldq, groupdq,
        zeroframe, refout`` for a ramp; lower-case extension names otherwise),
        coordinates ``y``/``x``/``integration``/``group`` as in
        :mod:`detflow.contract`, and attributes ``primary_header``,
        ``sci_header``, the typed keywords, ``tables``, ``cal_step``.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "no such file or store")
    if path.is_dir():
        try:
            return xr.open_zarr(
                path,
                consolidated=False,
                chunks=chunks if chunks is not None else {},
            )
        except (ValueError, KeyError, OSError) as exc:
            raise InputFileError(path, f"not a readable Zarr v3 store ({exc})") from exc
    return _open_fits_product(path, chunks)


def open_exposure_or_product(path, tiling=None):
    """``("exposure", Dataset)`` (:func:`~detflow.io.exposure.open_exposure`) or, when
    the file is not an exposure, ``("product", Dataset)`` (:func:`open_product`: rate,
    rateints, fitopt, a step's output, a Zarr store), lazily: the one rule the command
    line's ``info`` and the Python interfaces (a rate or rateints given to gain_scale)
    share. ``tiling``: the exposure's tiles (:class:`~detflow.tiling.Tiling`).

    Raises
    ------
    InputFileError
        Neither: the exposure reader's error when the file is unreadable either way (or
        reads as a product with no data or no instrument), else both readers' problems.
    """
    from detflow.io.exposure import open_exposure

    try:
        return "exposure", open_exposure(path, tiling=tiling)
    except InputFileError as as_exposure:
        try:
            product = open_product(path)
        except InputFileError as as_product:
            if as_exposure.problem in as_product.problem:  # unreadable either way
                raise as_exposure from None
            raise InputFileError(
                path, f"neither a JWST exposure ({as_exposure.problem}) nor a "
                f"product ({as_product.problem})") from None
        if not product.data_vars or not product.attrs.get("instrument"):
            raise as_exposure from None
        return "product", product
