"""Which reference file an exposure uses.

:func:`resolve_reference` finds the reference file of one type for an exposure,
in this order: an explicit override (jwst's ``override_<reftype>``), the
exposure's entry in the ``manifest.json`` beside it unless a reference folder
is given (how a simulated exposure keeps its own references in a folder shared
by several simulations), a
reference directory (explicit, or ``<folder of the exposure file>/refs`` when it
exists) searched as CRDS selects (selection keywords, then the latest USEAFTER
not after the exposure's start; files still tied are an error, never a choice
by name), then a CRDS cache through the ``crds`` client when ``CRDS_PATH`` is
set. With ``explain=True`` it also says why that file was chosen.

The manifest is read in :mod:`.manifest` and the folder searched in :mod:`.select`
(with its header index); here live the order, the checks that an override or a
manifest entry fits the exposure (its REFTYPE, instrument, detector and region,
before anything is computed) and the lookup in a CRDS cache through the ``crds``
client.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from detflow.errors import ReferenceFileError
from detflow.io.files import KeptByFile
from detflow.io.references.exposure import (
    _exposure_attrs,
    _exposure_label,
    _exposure_path,
    _exposure_region,
    _exposure_value,
    _match,
    _upper,
)
from detflow.io.references.manifest import MANIFEST_NAME, _resolve_manifest, _sibling
from detflow.io.references.open import _path_exists
from detflow.io.references.region import EXACT_SHAPE_REFTYPES, _require_covers
from detflow.io.references.select import _folder_name, _index_entry, _resolve_dir

__all__ = ["resolve_reference"]


def resolve_reference(
    reftype,
    exposure,
    *,
    override=None,
    refs_dir=None,
    use_crds=None,
    optional=False,
    storage_options=None,
    explain=False,
):
    """Find the reference file of one type for an exposure.

    Order: (a) ``override`` (jwst's ``override_<reftype>``; ``"N/A"`` passes
    through, anything else must exist and match the exposure's instrument,
    detector and region); (b) the exposure's entry in the ``manifest.json``
    beside its file, when it names a file of this type and no ``refs_dir`` is
    given (a folder the user names wins over the manifest); (c) a reference
    directory: ``refs_dir``, or ``<folder of the exposure file>/refs`` when it
    exists; (d) a CRDS cache through the ``crds`` client when ``CRDS_PATH`` is
    set (offline: ``CRDS_MODE`` defaults to ``local``; ``CRDS_CONTEXT`` is
    honoured).

    The manifest (b) is how a simulated exposure gets its own references however
    many simulations share its folder (:func:`detflow.simulate` writes one entry
    per exposure): ``{"exposures": {"<exposure file name>": {"references":
    {"dark": "refs/my_dark.fits", ...}}}}``, paths relative to the manifest's
    folder (or absolute, or ``"N/A"``); an older single-exposure manifest (its
    ``uncal`` and ``references`` at the top) counts for its ``uncal``, and an
    entry serves the files of the same root with another suffix (``_ramp``, a
    step's). The file named must exist and fit the exposure, as an override must.

    A directory (c) is searched as CRDS selects. Candidates are the ``*.fits`` (and
    ``*.asdf``: MIRI's EMICORR) files whose REFTYPE equals ``reftype``, whose INSTRUME
    and DETECTOR match the exposure (or are ANY, N/A, MULTIPLE or absent; ``P_DETECT``
    patterns such as ``"NRCA1|NRCA2|"`` are honoured), whose READPATT, SUBARRAY, EXP_TYPE, FILTER
    and PUPIL (or ``P_`` patterns), where the file has them, match the
    exposure's (wildcards match anything; a FULL file serves a subarray it
    covers; a NIRCam DARK's READPATT is not a selection keyword of CRDS: an equal
    one is only preferred), whose data cover the exposure's detector region, and
    whose USEAFTER is not after the exposure's start (DATE-OBS/TIME-OBS, else
    EXPSTART; when the start is unknown every USEAFTER counts). Among them wins,
    in order: the exposure's exact region for DARK and RESET (jwst does not cut
    them), a DARK whose frames span the exposure's, the more specific match (a
    keyword equal to the exposure's beats a ``P_`` pattern, which beats a
    wildcard), the exact region, then the latest USEAFTER. Files still equal on
    all of these are not chosen between by name: :class:`ReferenceFileError`
    lists them and says how to choose (``override_<reftype>``, a manifest entry,
    or a folder holding only the wanted file).

    Parameters
    ----------
    reftype : str
        Reference type, any case (``"dark"``, ``"GAIN"``...).
    exposure : Mapping or xarray.Dataset
        The exposure's attrs (:mod:`detflow.contract` names: ``instrument``,
        ``detector``, ``subarray``, ``substrt1/2``, ``subsize1/2``,
        ``readpatt``, ``exp_type``, ``filter``, ``pupil``, ``expstart``,
        ``primary_header``, and the file in ``path`` or ``source``), or the
        exposure Dataset itself.
    override : str or os.PathLike, optional
        Explicit file (local path or fsspec URL) or ``"N/A"``.
    refs_dir : str or os.PathLike, optional
        Directory of reference files; default ``<exposure folder>/refs``.
    use_crds : bool, optional
        Whether to ask CRDS; default: when the ``CRDS_PATH`` variable is set.
    optional : bool
        Return ``"N/A"`` instead of raising when nothing is found.
    storage_options : dict, optional
        fsspec options for URLs.
    explain : bool
        Return ``(path, reason)``: why this file (or N/A), e.g. ``"override_dark"``,
        ``"manifest.json entry for this exposure"``, ``"refs dir refs: matched
        DETECTOR=NRCA1 SUBARRAY=SUB160, USEAFTER 2022-01-01T00:00:00 (latest of 2
        not after 2023-12-20T06:00:00)"``, ``"CRDS"``.

    Returns
    -------
    str or tuple of str
        Path of the reference file, or ``"N/A"`` (not applicable); with
        ``explain``, ``(path, reason)``.

    Raises
    ------
    ReferenceFileError
        The override or manifest entry is missing or mismatched, the CRDS lookup
        failed, several directory files tie, or no file was found (the message
        says how to supply or choose one).
    """
    path, reason = _resolve(reftype, exposure, override, refs_dir, use_crds, optional,
                            storage_options)
    return (path, reason) if explain else path


def _resolve(reftype, exposure, override, refs_dir, use_crds, optional, storage_options):
    """:func:`resolve_reference`'s ``(path, reason)``."""
    rt = _upper(reftype)
    attrs = _exposure_attrs(exposure)
    label = _exposure_label(exposure)

    # (a) explicit override
    if override is not None and str(override).strip() != "":
        override = os.fspath(override) if not isinstance(override, str) else override
        if override.strip().upper() == "N/A":
            return "N/A", f"override_{rt.lower()}=N/A"
        if not _path_exists(override, storage_options):
            raise ReferenceFileError(
                rt,
                label,
                f"override_{rt.lower()}={override} does not exist",
                hint=f"give an existing file or 'N/A' as override_{rt.lower()}",
            )
        _check_header(override, rt, exposure, label, storage_options)
        return str(override), f"override_{rt.lower()}"

    # (b) the manifest beside the exposure, unless a reference folder was given: a
    # folder the user names is the more deliberate choice
    if refs_dir is None:
        found = _resolve_manifest(rt, exposure, label, storage_options)
        if found is not None:
            if found[0] != "N/A":  # the file it names must fit, as an override must
                _check_header(found[0], rt, exposure, label, storage_options,
                              what=f"{MANIFEST_NAME} entry")
            return found

    searched = []
    # (c) reference directory
    explicit_dir = refs_dir is not None
    if refs_dir is None:
        refs_dir = _default_refs_dir(attrs, storage_options)
    if refs_dir is not None:
        refs_dir = os.fspath(refs_dir) if not isinstance(refs_dir, str) else refs_dir
        if not _path_exists(refs_dir, storage_options):
            if explicit_dir:
                raise ReferenceFileError(
                    rt, label, f"reference directory {refs_dir} does not exist"
                )
        else:
            found, why = _resolve_dir(rt, exposure, refs_dir, storage_options)
            if found is not None:
                return found, why
            searched.append(why)

    # (d) CRDS cache
    if use_crds is None:
        use_crds = bool(os.environ.get("CRDS_PATH"))
    if use_crds:
        context = os.environ.get("CRDS_CONTEXT")
        crds_reason = "CRDS" + (f" (context {context})" if context else "")
        try:
            return _resolve_crds(rt, attrs, label), crds_reason
        except ReferenceFileError:
            if optional:
                return "N/A", "optional, and the CRDS lookup failed"
            raise
    else:
        searched.append("CRDS not consulted (CRDS_PATH is not set)")

    if optional:
        where = f" in {_folder_name(refs_dir)}/" if refs_dir is not None else ""
        return "N/A", f"optional, none found{where}" + ("" if use_crds else
                                                         " (CRDS not consulted)")
    raise ReferenceFileError(rt, label, "no reference file found: " + "; ".join(searched))


def _default_refs_dir(attrs, storage_options=None):
    """``refs/`` beside the exposure's file, else beside the exposure a product was
    calibrated from (its primary header's :data:`detflow.contract.INPUT_KEYWORD`): a
    step resumed from ``out/<root>_superbias.fits`` finds the ``refs/`` of the uncal."""
    for path in (_exposure_path(attrs), _calibrated_from(attrs)):
        if not path:
            continue
        try:
            candidate = _sibling(path, "refs", storage_options)
            if _path_exists(candidate, storage_options):
                return candidate
        except Exception:
            continue
    return None


def _calibrated_from(attrs):
    """The exposure file a product was calibrated from (its primary header's
    :data:`~detflow.contract.INPUT_KEYWORD`), or None."""
    from detflow.contract import INPUT_KEYWORD

    header = attrs.get("primary_header")
    value = header.get(INPUT_KEYWORD) if isinstance(header, Mapping) else None
    if isinstance(value, list | tuple):  # (value, comment)
        value = value[0] if value else None
    return str(value) if value else None


# --------------------------------------------------------------------------
# An override or a manifest entry checked against the exposure
# --------------------------------------------------------------------------

def _check_identity(path, rt, attrs, label, file_rt, instrument, detector, p_detect=None,
                    what="override"):
    """Raise if an override's (``what``'s) REFTYPE, instrument or detector do not fit
    the exposure."""
    if file_rt and file_rt != rt:
        raise ReferenceFileError(
            rt, label, f"{what} {path} is a {file_rt} reference file, not {rt}"
        )
    for name, value, pattern in (
        ("instrument", instrument, None),
        ("detector", detector, p_detect),
    ):
        exp_value = _exposure_value(attrs, name)
        if _match(value, pattern, exp_value) < 0:
            raise ReferenceFileError(
                rt,
                label,
                f"{what} {path} is a {rt} file for {name} {value}, "
                f"but the exposure's {name} is {exp_value}",
            )


def _check_header(path, rt, exposure, label, storage_options=None, what="override"):
    """Raise if an override's (``what``'s) REFTYPE/INSTRUME/DETECTOR/region do not fit
    the exposure."""
    attrs = _exposure_attrs(exposure)
    if str(path).lower().endswith(".asdf"):
        return _check_asdf(path, rt, attrs, label, what)
    key = KeptByFile.identity(path) if not storage_options else None
    entry = _CHECKED.get(key) if key is not None else None
    if entry is None:
        entry = _index_entry(path, storage_options)
        if entry is not None and key is not None:
            _CHECKED.put(key, entry)
    if entry is None:
        raise ReferenceFileError(rt, label, f"{what} {path} is not a readable FITS file")
    _check_identity(
        path,
        rt,
        attrs,
        label,
        _upper(entry["REFTYPE"]),
        entry["INSTRUME"],
        entry["DETECTOR"],
        entry["P_DETECT"],
        what,
    )
    exp_y, exp_x = _exposure_region(exposure)
    region = entry["region"]
    same_shape = region is not None and exp_y is not None and (
        region[1], region[3]) == (len(exp_y), len(exp_x))
    if rt in EXACT_SHAPE_REFTYPES and same_shape:
        return None  # jwst compares shapes only for DARK and RESET (see select_region)
    if region is not None and exp_y is not None:
        y0, ny, x0, nx = region
        ref_y, ref_x = np.arange(y0, y0 + ny), np.arange(x0, x0 + nx)
        _require_covers(rt, label, f"{what} {path}", ref_y, ref_x, exp_y, exp_x)
    return None


#: Header facts of the files given as overrides or manifest entries (every step of
#: every exposure of a program checks the same few files).
_CHECKED = KeptByFile(64)


def _check_asdf(path, rt, attrs, label, what="override"):
    """Best-effort REFTYPE/INSTRUME/DETECTOR check of an ASDF reference override."""
    try:
        import asdf

        with asdf.open(str(path), lazy_load=True, memmap=False) as af:
            meta = af.tree.get("meta") or {}
            file_rt = _upper(meta.get("reftype"))
            inst = meta.get("instrument") or {}
            ref_inst, ref_det = inst.get("name"), inst.get("detector")
    except Exception:
        return None
    _check_identity(path, rt, attrs, label, file_rt, ref_inst, ref_det, what=what)
    return None


# --------------------------------------------------------------------------
# A CRDS cache, through the crds client (offline by default: CRDS_MODE
# defaults to local; CRDS_CONTEXT is honoured)
# --------------------------------------------------------------------------

def _crds_parameters(attrs):
    """CRDS matching parameters (datamodel paths) from the exposure's primary header."""
    from detflow.contract import KEYWORDS

    header = attrs.get("primary_header")
    params = {}
    if isinstance(header, Mapping):
        params.update(
            {k: v for k, v in header.items() if v is not None and not isinstance(v, list)}
        )
    for name, (keyword, where, _) in KEYWORDS.items():
        if where == "primary" and keyword not in params and attrs.get(name) is not None:
            params[keyword] = attrs[name]
    params.setdefault("TELESCOP", "JWST")
    try:
        from crds.jwst.locate import fits_to_parkeys

        return fits_to_parkeys(params)
    except Exception:
        return {k.upper(): str(v) for k, v in params.items()}


class _CrdsEnvironment:
    """Temporarily default CRDS to the offline, local-cache mode."""

    def __enter__(self):
        self._old = os.environ.get("CRDS_MODE")
        if self._old is None:
            os.environ["CRDS_MODE"] = "local"
        return self

    def __exit__(self, *exc):
        if self._old is None:
            os.environ.pop("CRDS_MODE", None)
        return False


def _resolve_crds(rt, attrs, label):
    """Ask the CRDS client; returns a path, "N/A", or raises ReferenceFileError."""
    try:
        import crds
    except ImportError as exc:
        raise ReferenceFileError(
            rt, label, "CRDS_PATH is set but the crds package is not installed"
        ) from exc
    params = _crds_parameters(attrs)
    try:
        with _CrdsEnvironment():
            best = crds.getreferences(
                params,
                reftypes=[rt.lower()],
                observatory="jwst",
                context=os.environ.get("CRDS_CONTEXT") or None,
            )
    except Exception as exc:  # CrdsError and whatever the client lets through
        raise ReferenceFileError(
            rt,
            label,
            f"CRDS lookup in {os.environ.get('CRDS_PATH')} failed ({type(exc).__name__}: {exc})",
        ) from exc
    value = str(best.get(rt.lower(), best.get(rt, "")) if isinstance(best, Mapping) else "")
    if not value or "N/A" in value.upper():
        return "N/A"
    if value.upper().startswith("NOT FOUND"):
        raise ReferenceFileError(rt, label, f"CRDS: {value}")
    return value
