"""jwst datamodels in and out: :func:`from_datamodel` and :func:`to_datamodel`.

A jwst user opens files with ``stdatamodels.jwst.datamodels.open`` and passes models
from step to step. detflow's steps work on lazy :class:`xarray.Dataset` s; these two
functions convert between the two, so that a step given a model returns the model class
jwst returns (``RampModel`` after a ramp step, ``ImageModel`` and ``CubeModel`` from
ramp fitting).

* :func:`from_datamodel` wraps the model's arrays as Dask arrays on the exposure's tiles
  (no copy: the chunks are views of the model's arrays, read when a task needs them), with
  the attributes :func:`detflow.io.exposure.open_exposure` gives a file: the model's
  metadata is turned into its FITS keywords by the model's own schema, then read as the
  keywords of a file are.
* :func:`to_datamodel` computes a Dataset and returns the model jwst would hold: the
  product is laid out by the same writer as detflow's FITS products (so a model and a
  saved product carry the same metadata), in a private temporary file that is read back
  into memory and removed.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from detflow.contract import DIMS
from detflow.errors import InputFileError

__all__ = ["from_datamodel", "is_datamodel", "model_headers", "to_datamodel"]

#: model array attribute -> (Dataset variable, dims) for ramp-like models
_RAMP_ARRAYS = {
    "data": ("data", DIMS),
    "groupdq": ("groupdq", DIMS),
    "pixeldq": ("pixeldq", ("y", "x")),
    "zeroframe": ("zeroframe", ("integration", "y", "x")),
    "average_dark_current": ("average_dark_current", ("y", "x")),
}

# Defined once elsewhere and imported where used (as this module's other dependencies
# are, so that importing it stays cheap): the rate-like models' arrays (ImageModel,
# CubeModel) are the writers' detflow.io.products.RATE_VARIABLES (model attribute =
# Dataset variable), the model class of each kind of Dataset is products.MODEL_TYPES,
# and the tables are the exposure reader's detflow.io.keywords.TABLES (model attribute
# = attrs["tables"] key).


def is_datamodel(obj):
    """Whether ``obj`` is a stdatamodels (jwst) datamodel."""
    try:
        from stdatamodels import DataModel
    except ImportError:  # pragma: no cover - stdatamodels is a dependency
        return False
    return isinstance(obj, DataModel)


def model_headers(model):
    """The primary and SCI FITS headers the model's metadata makes.

    The model's own schema maps ``meta`` to keywords, as ``model.save`` would write them;
    only the metadata is converted (no array is touched or copied).

    Returns
    -------
    (astropy.io.fits.Header, astropy.io.fits.Header)
        Primary and SCI headers (the latter empty when the schema puts nothing there).
    """
    from astropy.io import fits

    # stdatamodels has no public call that turns metadata alone into headers; its FITS
    # writer's schema walk (used by DataModel.to_fits) is called on the ``meta`` subtree
    # only. tests/test_datamodels.py fails loudly if stdatamodels changes it.
    from stdatamodels import fits_support

    hdul = fits.HDUList([fits.PrimaryHDU()])
    fits_support._save_from_schema(hdul, {"meta": model._instance.get("meta", {})},
                                   model._schema)
    sci = hdul["SCI"].header if "SCI" in hdul else fits.Header()
    return hdul[0].header, sci


def _table(model, attr):
    from detflow.io.values import json_value

    if not model.hasattr(attr):
        return None
    table = getattr(model, attr)
    if table is None or len(table) == 0 or table.dtype.names is None:
        return None
    return {name: json_value(np.asarray(table[name])) for name in table.dtype.names}


def _label(model):
    name = getattr(getattr(model, "meta", None), "filename", None)
    return f"{type(model).__name__} {name}" if name else type(model).__name__


def from_datamodel(model, chunks=None):
    """A jwst datamodel as a lazy exposure or product Dataset.

    Parameters
    ----------
    model : stdatamodels.jwst.datamodels.DataModel
        ``Level1bModel`` or ``RampModel`` (an exposure: the Dataset of
        :func:`detflow.io.exposure.open_exposure`), or ``ImageModel`` / ``CubeModel``
        (a rate or rateints product: ``data``, ``err``, ``dq``, ``var_poisson``,
        ``var_rnoise``).
    chunks : dict, optional
        As :func:`detflow.io.exposure.open_exposure`'s (exposures only).

    Returns
    -------
    xarray.Dataset
        Arrays are Dask views of the model's arrays (nothing is copied or computed);
        ``attrs`` as from a file of the same content, with ``datamodel`` the model's
        class name and ``source`` its ``meta.filename`` (names the products).

    Raises
    ------
    InputFileError
        The model holds no data, or arrays of shapes that disagree.
    """
    import dask.array as da
    import xarray as xr
    from dask.base import tokenize

    from detflow.contract import FULL_FRAME_SHAPE
    from detflow.io.chunks import resolve_chunks
    from detflow.io.keywords import (
        REFOUT_X,
        REFOUT_Y,
        TABLES,
        add_header_attrs,
        detector_coords,
        dimensions_from_data,
        keyword_attrs,
        subarray_corner,
    )
    from detflow.io.products.fits import RATE_VARIABLES

    label = _label(model)
    data = getattr(model, "data", None) if model.hasattr("data") else None
    if data is None:
        raise InputFileError(label, "the model holds no data array")
    primary, sci_header = model_headers(model)
    attrs = keyword_attrs(primary, sci_header, label)
    instrument = str(attrs.get("instrument") or "").upper()
    if instrument not in FULL_FRAME_SHAPE:
        raise InputFileError(
            label, f"meta.instrument.name = {instrument or None!r} is not a JWST detector "
            f"instrument ({', '.join(FULL_FRAME_SHAPE)})")
    tables = {key: t for key in TABLES.values() if (t := _table(model, key))}
    add_header_attrs(attrs, primary, sci_header, tables,
                     getattr(model.meta, "filename", None) or "", type(model).__name__)
    token = tokenize(id(model), type(model).__name__, data.shape)

    def wrap(name, array, chunk_shape):
        return da.from_array(_ModelArray(array), chunks=chunk_shape,
                             name=f"model-{name}-{token}", asarray=False,
                             meta=np.empty((0,) * array.ndim, dtype=array.dtype))

    x0, y0 = subarray_corner(attrs, data.shape, label)
    if data.ndim == 4:
        shape = data.shape
        dimensions_from_data(attrs, shape, label)
        nints, ngroups, ny, nx = shape
        dim_chunks = resolve_chunks(chunks, attrs, shape)
        variables = {}
        for attr, (name, dims) in _RAMP_ARRAYS.items():
            array = getattr(model, attr, None) if model.hasattr(attr) else None
            want = tuple({"integration": nints, "group": ngroups, "y": ny, "x": nx}[d]
                         for d in dims)
            if array is None:
                if name == "groupdq":
                    array = np.zeros(want, np.uint8)
                elif name == "pixeldq":
                    array = np.zeros(want, np.uint32)
                else:
                    continue
            if tuple(array.shape) != want:
                raise InputFileError(label, f"{attr} has shape {tuple(array.shape)}, expected "
                                     f"{want} to match data {tuple(shape)}")
            variables[name] = (dims, wrap(name, array, tuple(dim_chunks[d] for d in dims)))
        refout = getattr(model, "refout", None) if model.hasattr("refout") else None
        if refout is not None:  # MIRI's reference output, a layout of its own
            if refout.ndim != 4 or tuple(refout.shape[:2]) != (nints, ngroups):
                raise InputFileError(label, f"refout has shape {tuple(refout.shape)}, "
                                     f"expected ({nints}, {ngroups}, rows, columns)")
            rdims = ("integration", "group", REFOUT_Y, REFOUT_X)
            rchunks = (dim_chunks["integration"], dim_chunks["group"]) + refout.shape[2:]
            variables["refout"] = (rdims, wrap("refout", refout, rchunks))
        coords = detector_coords(dict(zip(DIMS, shape, strict=True)), x0, y0,
                                 attrs.get("intstart", 1))
        return xr.Dataset(variables, coords=coords, attrs=attrs)
    if data.ndim in (2, 3):
        dims = ("y", "x") if data.ndim == 2 else ("integration", "y", "x")
        variables = {}
        for name in RATE_VARIABLES:
            array = getattr(model, name, None) if model.hasattr(name) else None
            if array is None:
                continue
            if tuple(array.shape) != tuple(data.shape):
                raise InputFileError(label, f"{name} has shape {tuple(array.shape)}, "
                                     f"expected {tuple(data.shape)}")
            variables[name] = (dims, wrap(name, array, array.shape))
        coords = detector_coords(dict(zip(dims, data.shape, strict=True)), x0, y0,
                                 attrs.get("intstart", 1))
        attrs["bunit"] = sci_header.get("BUNIT") or "DN/s"
        return xr.Dataset(variables, coords=coords, attrs=attrs)
    raise InputFileError(label, f"data has {data.ndim} dimensions {tuple(data.shape)}; "
                         "expected a ramp (4) or a rate (2 or 3)")


class _ModelArray:
    """A model's array behind Dask's ``from_array`` without a copy.

    Dask copies a NumPy array into its graph chunk by chunk; anything else it slices
    when a task runs. This wrapper is that anything else: each task takes a view of its
    tile, so the exposure is never held twice.
    """

    def __init__(self, array):
        self.array = array
        self.shape = tuple(array.shape)
        self.dtype = array.dtype
        self.ndim = array.ndim

    def __getitem__(self, key):
        return np.asarray(self.array[key])


def _kind(ds):
    if "groupdq" in ds:
        return "ramp"
    if "slope" in ds:
        return "fitopt"
    if "data" in ds and "err" in ds:
        return "rateints" if ds["data"].ndim == 3 else "rate"
    raise InputFileError("Dataset", "not a ramp, rate, rateints or fitopt Dataset: "
                         f"variables {sorted(ds.data_vars)}")


def to_datamodel(ds):
    """A computed jwst datamodel of a ramp or rate Dataset.

    Parameters
    ----------
    ds : xarray.Dataset
        A ramp (``data``, ``groupdq``, ``pixeldq``, ...), a rate or rateints
        (``data``, ``err``, ``dq``, ``var_poisson``, ``var_rnoise``) or a fitopt Dataset
        (``slope``, ...); lazy or not.

    Returns
    -------
    stdatamodels.jwst.datamodels.DataModel
        ``RampModel``, ``ImageModel``, ``CubeModel`` or ``RampFitOutputModel``, in
        memory, with ``meta`` (``cal_step`` included) as detflow's FITS product of the
        same Dataset carries it.
    """
    from astropy.io import fits
    from stdatamodels.jwst import datamodels as dm

    from detflow.io import products

    kind = _kind(ds)
    writer = {"ramp": products.write_ramp, "rate": products.write_rate,
              "rateints": products.write_rateints, "fitopt": products.write_fitopt}[kind]
    name = os.path.basename(products.product_path(ds.attrs, ".", kind))
    # every array attribute a model of these kinds holds: the ramp's, the rate's, fitopt's
    model_arrays = dict.fromkeys([*_RAMP_ARRAYS, "refout", *products.RATE_VARIABLES,
                                  *products.FITOPT_VARIABLES])
    with tempfile.TemporaryDirectory(prefix="detflow-model-") as folder:
        path = os.path.join(folder, name)
        writer(ds, path)
        with fits.open(path, memmap=False) as hdul:
            for hdu in hdul:  # read every array before the file goes
                _ = hdu.data
            model = getattr(dm, products.MODEL_TYPES[kind])(hdul)
            # the arrays now belong to the model (the file goes with the folder), in the
            # machine's byte order as jwst's steps leave them
            for attr in model_arrays:
                if model.hasattr(attr) and getattr(model, attr) is not None:
                    array = np.asarray(getattr(model, attr))
                    setattr(model, attr, array.astype(array.dtype.newbyteorder("=")))
    model.meta.filename = name
    return model
