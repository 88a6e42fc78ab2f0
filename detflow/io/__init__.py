"""detflow's I/O layer, by concern (it never imports steps, the pipeline or the runtime).

* :mod:`.fits` -- FITS bytes and headers, lazily, from local paths or fsspec URLs;
  :mod:`.files` (local or remote paths, values kept per file), :mod:`.values`
  (header values as JSON).
* :mod:`.keywords` (what an exposure's headers say, checked against the data),
  :mod:`.exposure` (:func:`~detflow.io.exposure.open_exposure`; the xarray backend,
  :mod:`.backend`, shares its path), :mod:`.chunks` (amplifier-aligned tiles).
* :mod:`.references` -- reference files: opened and cut to an exposure, and chosen.
* :mod:`.products` -- what detflow writes (jwst's names, headers, FITS, Zarr) and
  reads back.
* :mod:`.datamodels` (jwst datamodels and Datasets), :mod:`.persistence`
  (persistence files), :mod:`.atomic` (atomic writes), :mod:`.yamlfile`.
"""
