"""detflow's products: JWST-format FITS files (rate, rateints, fitopt, ramp, the
dark_current dark) and Zarr stores, how they are named, and how they are read back.

Modules, by concern:

* :mod:`~detflow.io.products.names` -- naming as jwst names products
  (:func:`product_path`, :func:`remove_suffix`, :func:`file_root`,
  :func:`input_name`, :func:`dark_output_path`) and the checks on a writer's
  output path;
* :mod:`~detflow.io.products.headers` -- the primary and SCI headers: the input's
  cards, refreshed keywords, ``S_*`` step statuses (:data:`CAL_STEP_KEYWORDS`) and
  ``R_*`` reference files (:data:`REF_FILE_KEYWORDS`);
* :mod:`~detflow.io.products.fits` -- the FITS writers (:func:`write_rate`,
  :func:`write_rateints`, :func:`write_fitopt`, :func:`write_ramp`,
  :func:`write_dark`) and what each writes (:data:`RATE_VARIABLES`,
  :data:`FITOPT_VARIABLES`, :data:`MODEL_TYPES`): their ``INT_TIMES`` and ``GROUP``
  binary tables, the file's layout and its data regions filled from Dask chunks;
* :mod:`~detflow.io.products.zarr` -- :func:`to_zarr`, any Dataset to a Zarr v3 store;
* :mod:`~detflow.io.products.read` -- :func:`open_product`, a Zarr store or a FITS
  product back as a lazy Dataset.

Every product is written under a temporary name and renamed when complete
(:func:`detflow.io.atomic.atomic_path`). ``ProductError``, ``ProductWriteError`` and
``ProductContentError`` live in :mod:`detflow.errors` and are re-exported here.
"""

from detflow.errors import ProductContentError, ProductError, ProductWriteError
from detflow.io.products.fits import (
    FITOPT_VARIABLES,
    MODEL_TYPES,
    RATE_VARIABLES,
    write_dark,
    write_fitopt,
    write_ramp,
    write_rate,
    write_rateints,
)
from detflow.io.products.headers import CAL_STEP_KEYWORDS, REF_FILE_KEYWORDS
from detflow.io.products.names import (
    dark_output_path,
    file_root,
    input_name,
    product_path,
    remove_suffix,
)
from detflow.io.products.read import open_exposure_or_product, open_product
from detflow.io.products.zarr import to_zarr

__all__ = [
    "CAL_STEP_KEYWORDS",
    "FITOPT_VARIABLES",
    "MODEL_TYPES",
    "RATE_VARIABLES",
    "REF_FILE_KEYWORDS",
    "ProductContentError",
    "ProductError",
    "ProductWriteError",
    "dark_output_path",
    "file_root",
    "input_name",
    "open_exposure_or_product",
    "open_product",
    "product_path",
    "remove_suffix",
    "to_zarr",
    "write_dark",
    "write_fitopt",
    "write_ramp",
    "write_rate",
    "write_rateints",
]
