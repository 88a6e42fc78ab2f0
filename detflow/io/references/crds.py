"""Reference files from a CRDS cache, through the ``crds`` client (offline by
default: ``CRDS_MODE`` defaults to ``local``; ``CRDS_CONTEXT`` is honoured)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from detflow.errors import ReferenceFileError


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
