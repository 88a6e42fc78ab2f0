"""The ``manifest.json`` beside an exposure, naming its reference files:
``{"exposures": {"<exposure file name>": {"references": {"dark": "refs/my_dark.fits",
...}}}}`` (how a simulated exposure keeps its own references in a folder shared by
several simulations; see :func:`~detflow.io.references.resolve.resolve_reference`).
Parsed manifests are kept per local file until it changes."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from detflow.errors import ReferenceFileError
from detflow.io.files import KeptByFile, is_remote, local_path
from detflow.io.references.exposure import _exposure_attrs, _exposure_path, _upper
from detflow.io.references.open import _path_exists

__all__ = ["MANIFEST_NAME"]

#: The file beside an exposure that names its reference files
#: (see :func:`~detflow.io.references.resolve.resolve_reference`).
MANIFEST_NAME = "manifest.json"

#: Parsed manifests of local files, each under the file's path, size and mtime (a
#: program's exposures share a few manifests; a file changed since is parsed again).
_MANIFESTS = KeptByFile(64)


def _sibling(path, name, storage_options=None):
    """``name`` in the folder of the file ``path`` (a local path or a URL)."""
    if is_remote(path):
        import fsspec

        fs, root = fsspec.core.url_to_fs(path, **dict(storage_options or {}))
        return fs.unstrip_protocol(f"{fs._parent(root).rstrip('/')}/{name}")
    return os.path.join(os.path.dirname(os.path.abspath(local_path(path))), name)


def _read_manifest(path, rt, label, storage_options=None):
    """The parsed manifest at ``path``, or None when there is none; kept per local
    file until it changes.

    Raises
    ------
    ReferenceFileError
        The file exists but is not JSON: it may name this exposure's references.
    """
    try:
        if is_remote(path):
            if not _path_exists(path, storage_options):
                return None
            import fsspec

            with fsspec.open(path, "rt", **dict(storage_options or {})) as f:
                text = f.read()
            key = None
        else:
            path = local_path(path)
            key = KeptByFile.identity(path)
            if key is None:  # no such file
                return None
            hit = _MANIFESTS.get(key)
            if hit is not None:
                return hit
            with open(path, encoding="utf-8") as f:
                text = f.read()
    except OSError as exc:
        raise ReferenceFileError(rt, label, f"cannot read {path} ({exc})") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ReferenceFileError(
            rt, label, f"{path} is not valid JSON ({exc})",
            hint=f"fix or remove it (a {MANIFEST_NAME} beside an exposure names its "
                 "reference files)") from exc
    if key is not None:
        _MANIFESTS.put(key, data)
    return data


def _manifest_entry(data, name):
    """``(entry, key)``: the manifest's entry for the exposure file ``name``, or
    ``(None, None)``. Entries are ``data["exposures"][<file name>]``; the older
    single-exposure form (``uncal`` and ``references`` at the top) counts for its
    ``uncal``. A file of the same root with another suffix (``_ramp``,
    ``_dark_current``, ...) uses its exposure's entry."""
    if not isinstance(data, Mapping):
        return None, None
    entries = {}
    exposures = data.get("exposures")
    if isinstance(exposures, Mapping):
        entries.update({str(k): v for k, v in exposures.items() if isinstance(v, Mapping)})
    if isinstance(data.get("uncal"), str) and isinstance(data.get("references"), Mapping):
        entries.setdefault(data["uncal"], data)
    if name in entries:
        return entries[name], name
    wanted = _root(name)
    found = [k for k in entries if _root(k) == wanted]
    if len(found) == 1:
        return entries[found[0]], found[0]
    return None, None


def _root(file_name):
    """The root a manifest entry is shared by: the products' name rule
    (:func:`~detflow.io.products.names.file_root`) for a FITS file (``.fits``,
    ``.fits.gz``); any other name only loses its jwst suffix, keeping its extension
    (``x_ramp.zarr`` shares no entry with ``x_uncal.fits``), as manifests always did."""
    from detflow.io.products.names import file_root, remove_suffix

    if file_name.lower().endswith((".fits", ".fits.gz")):
        return file_root(file_name)
    return remove_suffix(file_name)


def _resolve_manifest(rt, exposure, label, storage_options=None):
    """``(path, reason)`` from the manifest beside the exposure's file when it has an
    entry for this exposure naming a ``rt`` file; else None. Whether the file fits
    the exposure is the caller's check (:func:`~detflow.io.references.resolve.resolve_reference`).

    Raises
    ------
    ReferenceFileError
        The manifest is not JSON, or the file it names is missing.
    """
    exposure_path = _exposure_path(_exposure_attrs(exposure))
    if not exposure_path:
        return None
    try:
        manifest = _sibling(exposure_path, MANIFEST_NAME, storage_options)
    except Exception:
        return None
    data = _read_manifest(manifest, rt, label, storage_options)
    name = os.path.basename(exposure_path.split("?", 1)[0].rstrip("/"))
    entry, key = _manifest_entry(data, name)
    if entry is None or not isinstance(entry.get("references"), Mapping):
        return None
    value = {_upper(k): v for k, v in entry["references"].items()}.get(rt)
    if value is None or str(value).strip() == "":
        return None
    value = os.fspath(value) if not isinstance(value, str) else value
    reason = f"{MANIFEST_NAME} entry for " + ("this exposure" if key == name else key)
    if value.strip().upper() == "N/A":
        return "N/A", reason
    if is_remote(value) or os.path.isabs(value) or is_remote(manifest):
        path = value if (is_remote(value) or os.path.isabs(value)) else \
            f"{manifest.rsplit('/', 1)[0]}/{value}"
    else:
        path = os.path.join(os.path.dirname(manifest), value)
    if not _path_exists(path, storage_options):
        raise ReferenceFileError(
            rt, label, f"{manifest} names {value} for {key}, which does not exist",
            hint=f"fix the entry, or give override_{rt.lower()}=PATH")
    return path, reason
