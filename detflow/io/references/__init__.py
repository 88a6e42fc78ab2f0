"""JWST reference files: opening them as lazy xarray Datasets, and choosing which
file an exposure uses.

Opening a file
    :mod:`.open`
        :func:`open_reference` (a FITS reference file as a lazy, dask-backed
        Dataset in full-frame detector coordinates) and :func:`open_reference_for`
        (opened and cut to an exposure, kept per file); the caches of parsed
        headers and of cut references; :func:`dq_def_mapping` and
        :func:`translate_dq` (a file's ``DQ_DEF`` table to the standard JWST bits),
        :func:`read_user_dq` (``user_supplied_dq``); :func:`reference_model_path`
        (a reference datamodel given as an override, saved once to a file).
    :mod:`.region`
        :func:`select_region`: a reference cut to an exposure's detector region by
        coordinate, after its instrument, detector and coverage are checked.
    :mod:`.exposure`
        What an exposure tells about itself (attrs, name, keywords, region, tiles)
        and how a reference keyword value matches it.

Choosing a file
    :mod:`.resolve`
        :func:`resolve_reference`: override, then the manifest beside the exposure,
        then a reference folder, then CRDS; with ``explain``, why. Also the checks
        of an override or a manifest entry against the exposure (REFTYPE,
        instrument, detector, region) and the lookup in a CRDS cache through the
        ``crds`` client.
    :mod:`.manifest`
        :data:`MANIFEST_NAME`: the ``manifest.json`` beside an exposure naming its
        reference files.
    :mod:`.select`
        :func:`reference_index` / :func:`clear_reference_index` (the header index
        of a folder of reference files) and the choice in a folder as CRDS selects
        (selection keywords, region, rank, USEAFTER; ties are errors) with the
        reason given for it.
"""

from detflow.io.references.manifest import MANIFEST_NAME
from detflow.io.references.open import (
    dq_def_mapping,
    open_reference,
    open_reference_for,
    read_user_dq,
    reference_model_path,
    translate_dq,
)
from detflow.io.references.region import EXACT_SHAPE_REFTYPES, select_region
from detflow.io.references.resolve import resolve_reference
from detflow.io.references.select import clear_reference_index, reference_index

__all__ = [
    "EXACT_SHAPE_REFTYPES",
    "MANIFEST_NAME",
    "clear_reference_index",
    "dq_def_mapping",
    "open_reference",
    "open_reference_for",
    "read_user_dq",
    "reference_index",
    "reference_model_path",
    "resolve_reference",
    "select_region",
    "translate_dq",
]
