"""detflow: JWST Stage 1 (calwebb_detector1) as a lazy, distributed Dask workflow.

Public entry points:

* :func:`detflow.open_exposure` -- a raw or ramp FITS file (local or fsspec URL)
  as a lazy, chunked :class:`xarray.Dataset` (see :mod:`detflow.contract`).
* :func:`detflow.open_product` -- a product (FITS) or an intermediate Zarr store
  written with ``--save-intermediates`` as a lazy Dataset.
* :func:`detflow.simulate` -- write a realistic simulated exposure with its
  reference files and truth image.
* :class:`detflow.Detector1Pipeline` and the step classes (``detflow.RefPixStep``,
  ``detflow.JumpStep``, ...) -- jwst's interfaces on detflow's lazy graph; given a jwst
  datamodel they return the datamodel class jwst returns.
* :func:`detflow.from_datamodel` / :func:`detflow.to_datamodel` -- a jwst datamodel as a
  lazy Dataset (no copy), and a Dataset as the jwst datamodel (computed).
"""

__version__ = "0.1.0"

__all__ = ["__version__", "open_exposure", "open_reference", "open_product", "simulate",
           "Detector1Pipeline", "from_datamodel", "to_datamodel"]


def __getattr__(name):
    # Lazy imports keep ``import detflow`` (and the CLI's --help) fast.
    if name == "open_exposure":
        from detflow.io.exposure import open_exposure

        return open_exposure
    if name == "open_reference":
        from detflow.io.references import open_reference

        return open_reference
    if name == "open_product":
        from detflow.io.products import open_product

        return open_product
    if name in ("from_datamodel", "to_datamodel"):
        from detflow.io import datamodels

        return getattr(datamodels, name)
    if name == "simulate":
        from detflow.simulator import simulate

        return simulate
    if name == "Detector1Pipeline" or (name.endswith("Step") and name[:1].isupper()):
        from detflow import interfaces

        if hasattr(interfaces, name):
            return getattr(interfaces, name)
    raise AttributeError(f"module 'detflow' has no attribute {name!r}")
