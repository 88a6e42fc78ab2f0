"""xarray backend: ``xr.open_dataset(path, engine="detflow", chunks={})``.

Registered as the ``detflow`` entry point of ``xarray.backends`` in
``pyproject.toml``. Variables are lazily indexed backend arrays with the
amplifier-aligned default tiles as ``preferred_chunks``, so ``chunks={}``
gives the same tiles as :func:`detflow.io.exposure.open_exposure`, and
``chunks=None`` gives lazy (non-Dask) arrays that read on access.
"""

from __future__ import annotations

import os

import numpy as np
from xarray.backends import BackendArray, BackendEntrypoint
from xarray.core import indexing

__all__ = ["DetflowBackendEntrypoint", "FitsBackendArray", "ZerosBackendArray"]

_SUFFIXES = ("_uncal.fits", "_ramp.fits")
_FITS_SUFFIXES = (".fits", ".fit", ".fts")


class FitsBackendArray(BackendArray):
    """A :class:`~detflow.io.fits.FitsImage` seen by xarray (outer indexing)."""

    def __init__(self, image):
        self.image = image
        self.shape = image.shape
        self.dtype = image.dtype

    def __getitem__(self, key):
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER, self.image.__getitem__
        )


class ZerosBackendArray(BackendArray):
    """Zeros of a given shape and dtype, made only for the part indexed."""

    def __init__(self, shape, dtype):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)

    def _raw(self, key):
        view = np.broadcast_to(np.zeros((), dtype=self.dtype), self.shape)[key]
        return np.zeros(view.shape, dtype=self.dtype)

    def __getitem__(self, key):
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.BASIC, self._raw
        )


class DetflowBackendEntrypoint(BackendEntrypoint):
    """Open JWST raw (``*_uncal.fits``) and ramp (``*_ramp.fits``) exposures.

    The Dataset follows :mod:`detflow.contract` (see
    :func:`detflow.io.exposure.open_exposure`); ``storage_options`` are passed
    to fsspec for URLs.
    """

    description = "JWST raw (uncal) and ramp FITS exposures as (integration, group, y, x) data"
    url = "https://github.com/detflow/detflow"
    open_dataset_parameters = ("filename_or_obj", "drop_variables", "storage_options")

    def open_dataset(self, filename_or_obj, *, drop_variables=None, storage_options=None):
        """Open an exposure with lazily indexed variables.

        Parameters
        ----------
        filename_or_obj : str or os.PathLike
            Local path or fsspec URL.
        drop_variables : str or iterable of str, optional
            Variables to leave out.
        storage_options : dict, optional
            fsspec options.

        Returns
        -------
        xarray.Dataset
        """
        import xarray as xr

        from detflow.io.exposure import inspect_exposure, layout_chunks

        if not isinstance(filename_or_obj, (str, os.PathLike)):
            raise TypeError(
                f"the detflow engine opens a path or URL, not {type(filename_or_obj).__name__}"
            )
        layout = inspect_exposure(filename_or_obj, storage_options)
        preferred = layout_chunks(layout)
        if isinstance(drop_variables, str):
            drop_variables = [drop_variables]
        drop = set(drop_variables or ())
        data_vars = {}
        for spec in layout.variables:
            if spec.name in drop:
                continue
            if spec.image is None:
                array = ZerosBackendArray(spec.shape, spec.dtype)
            else:
                array = FitsBackendArray(spec.image)
            var = xr.Variable(spec.dims, indexing.LazilyIndexedArray(array))
            var.encoding["preferred_chunks"] = {d: preferred[d] for d in spec.dims}
            data_vars[spec.name] = var
        ds = xr.Dataset(data_vars, coords=layout.coords, attrs=layout.attrs)
        ds.set_close(None)
        return ds

    def guess_can_open(self, filename_or_obj):
        """True for ``*_uncal.fits``/``*_ramp.fits`` and FITS files with a SCI extension."""
        if not isinstance(filename_or_obj, (str, os.PathLike)):
            return False
        name = os.fspath(filename_or_obj)
        lower = name.lower()
        if lower.endswith(_SUFFIXES):
            return True
        if not lower.endswith(_FITS_SUFFIXES):
            return False
        from detflow.errors import InputFileError
        from detflow.io.fits import find_hdu, read_hdus

        try:
            return find_hdu(read_hdus(name), "SCI") is not None
        except (InputFileError, OSError, ValueError):
            return False
