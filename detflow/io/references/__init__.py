"""JWST reference files: opening them as lazy xarray Datasets, and choosing which
file an exposure uses.

Opening a file
    :mod:`.open`
        :func:`open_reference` (a FITS reference file as a lazy, dask-backed
        Dataset in full-frame detector coordinates) and :func:`open_reference_for`
        (opened and cut to an exposure, kept per file); the caches of parsed
        headers and of cut references.
    :mod:`.region`
        :func:`select_region`: a reference cut to an exposure's detector region by
        coordinate, after its instrument, detector and coverage are checked.
    :mod:`.dq`
        :func:`dq_def_mapping` and :func:`translate_dq` (a file's ``DQ_DEF`` table
        to the standard JWST bits), :func:`read_user_dq` (``user_supplied_dq``).
    :mod:`.models`
        :func:`reference_model_path`: a reference datamodel given as an override,
        saved once to a file.
    :mod:`.exposure`
        What an exposure tells about itself (attrs, name, keywords, region, tiles)
        and how a reference keyword value matches it.

Choosing a file
    :mod:`.resolve`
        :func:`resolve_reference`: override, then the manifest beside the exposure,
        then a reference folder, then CRDS; with ``explain``, why.
    :mod:`.manifest`
        :data:`MANIFEST_NAME`: the ``manifest.json`` beside an exposure naming its
        reference files.
    :mod:`.index`
        :func:`reference_index` / :func:`clear_reference_index`: the header index of
        a folder of reference files.
    :mod:`.select`
        The choice in a folder as CRDS selects (selection keywords, region, rank,
        USEAFTER; ties are errors) and the reason given for it.
    :mod:`.checks`
        An override's or manifest entry's REFTYPE, instrument, detector and region
        checked against the exposure.
    :mod:`.crds`
        The lookup in a CRDS cache through the ``crds`` client.
"""

from detflow.io.references.dq import dq_def_mapping, read_user_dq, translate_dq
from detflow.io.references.index import clear_reference_index, reference_index
from detflow.io.references.manifest import MANIFEST_NAME
from detflow.io.references.models import reference_model_path
from detflow.io.references.open import open_reference, open_reference_for
from detflow.io.references.region import EXACT_SHAPE_REFTYPES, select_region
from detflow.io.references.resolve import resolve_reference

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
