"""FITS headers of the products: the primary header and the SCI header.

The primary header is the input's, card for card (``attrs["primary_header"]``),
with ``DATE``, ``FILENAME`` and ``DATAMODL`` updated, the typed exposure
keywords of :data:`detflow.contract.KEYWORDS` refreshed from ``attrs``, the
``S_*`` keyword of every step in ``attrs["cal_step"]``
(:data:`CAL_STEP_KEYWORDS`) and the ``R_*`` keyword of every reference file
named in ``attrs["provenance"]`` (:data:`REF_FILE_KEYWORDS`), with the reason
each file was chosen as ``HISTORY`` cards. The SCI header is the input's
(``attrs["sci_header"]``: WCS and the like), with ``BUNIT`` set. Structural
cards (``NAXIS``, ``BITPIX``...) are never copied from an input header; values
that cannot be written to FITS are left out.
"""

import datetime
import math
import os
import re
import textwrap
import warnings
from collections.abc import Mapping
from pathlib import Path

from astropy.io import fits

from detflow.contract import INPUT_KEYWORD, KEYWORDS
from detflow.io.files import local_path
from detflow.io.values import plain_scalar
from detflow.registry import STEPS

__all__ = ["CAL_STEP_KEYWORDS", "REF_FILE_KEYWORDS"]

#: detflow/jwst step name -> (attribute of ``meta.cal_step``, FITS keyword, title), from
#: :mod:`detflow.registry` (stdatamodels' ``core.schema.yaml``).
CAL_STEP_KEYWORDS = {name: (row.cal_step, row.keyword, row.title) for name, row in STEPS.items()}
# The schema's own attribute name is accepted as well (``dark_sub``).
_CAL_STEP_BY_NAME = dict(CAL_STEP_KEYWORDS)
_CAL_STEP_BY_NAME["dark_sub"] = CAL_STEP_KEYWORDS["dark_current"]
_CAL_STATUSES = ("COMPLETE", "SKIPPED", "FAILED")

#: Reference file type -> FITS keyword of ``meta.ref_file.<type>.name``.
REF_FILE_KEYWORDS = {
    "dark": "R_DARK",
    "emicorr": "R_MIREMI",
    "gain": "R_GAIN",
    "ipc": "R_IPC",
    "lastframe": "R_LASTFR",
    "linearity": "R_LINEAR",
    "mask": "R_MASK",
    "persat": "R_PERSAT",
    "readnoise": "R_READNO",
    "refpix": "R_REFPIX",
    "reset": "R_RESET",
    "rscd": "R_RSCD",
    "saturation": "R_SATURA",
    "sirskernel": "R_SIRSKL",
    "superbias": "R_SUPERB",
    "trapdensity": "R_TRPDEN",
    "trappars": "R_TRPPAR",
}

# Cards that describe an HDU's layout: never copied from an input header.
_STRUCTURAL = re.compile(
    r"^(SIMPLE|BITPIX|NAXIS\d*|EXTEND|XTENSION|PCOUNT|GCOUNT|BSCALE|BZERO|BLANK|"
    r"EXTNAME|EXTVER|EXTLEVEL|CHECKSUM|DATASUM|TFIELDS|THEAP|END|"
    r"(TTYPE|TFORM|TUNIT|TDIM|TNULL|TSCAL|TZERO|TDISP)\d+)$"
)
_COMMENTARY = ("COMMENT", "HISTORY", "")


def _cards_from(header_like):
    """Yield ``(keyword, value, comment)`` from a header dict or astropy Header.

    A dict maps keyword -> value, or keyword -> ``[value, comment]``; ``COMMENT``
    and ``HISTORY`` may map to a string or a list of strings.
    """
    if header_like is None:
        return
    if isinstance(header_like, fits.Header):
        for card in header_like.cards:
            yield card.keyword, card.value, card.comment
        return
    for key, value in dict(header_like).items():
        key = str(key)
        if key.upper() in _COMMENTARY:
            values = value if isinstance(value, list | tuple) else [value]
            for item in values:
                yield key.upper(), "" if item is None else str(item), ""
            continue
        comment = ""
        if isinstance(value, list | tuple):
            if len(value) == 2 and isinstance(value[1], str):
                value, comment = value
            else:
                continue  # no FITS value is a list
        if isinstance(value, Mapping):
            continue
        yield key, value, comment


def _fits_card(key, value, comment=""):
    """An astropy Card, or None when the value cannot be a FITS value."""
    value = plain_scalar(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is not None and not isinstance(value, str | bool | int | float):
        return None
    if key.upper() in _COMMENTARY:
        value = "" if value is None else str(value)
    try:
        card = fits.Card(key, value, "")
        card.image  # noqa: B018  (formats the card: raises for unwritable values)
        if comment and key.upper() not in _COMMENTARY:
            # keep the comment only as far as it fits on the card (no truncation warning)
            room = 80 - len(card.image.rstrip()) - 3
            if room > 0:
                card = fits.Card(key, value, str(comment)[:room])
    except (ValueError, TypeError, fits.VerifyError):
        return None
    return card


def _header_from(header_like):
    """An astropy Header with the non-structural cards of ``header_like``."""
    header = fits.Header()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        for key, value, comment in _cards_from(header_like):
            upper = key.upper()
            if _STRUCTURAL.match(upper):
                continue
            card = _fits_card(key, value, comment)
            if card is None:
                continue
            if upper in _COMMENTARY:
                header.append(card, end=True)
            elif upper in header:
                header[upper] = (card.value, card.comment or header.comments[upper])
            else:
                header.append(card, end=True)
    return header


def _set(header, key, value, comment=None):
    """Set one keyword, keeping its position and comment when it exists (the comment
    cut to what fits on the card with the new value)."""
    if comment is None and key in header:
        comment = header.comments[key]
    card = _fits_card(key, value, comment or "")
    if card is None:
        return
    header[key] = (card.value, card.comment)


def _cal_step_status(value):
    if isinstance(value, Mapping):
        value = value.get("status")
    return str(plain_scalar(value)).upper() if value is not None else None


def _exposure_file(source):
    """The exposure's file (``attrs["source"]``) as an absolute path or a URL, or None."""
    if not isinstance(source, str | os.PathLike):
        return None
    source = os.fspath(source)
    local = local_path(source)  # (the package's one rule: detflow.io.files.is_remote)
    return source if local is None else os.path.abspath(local)


def _primary_header(attrs, path, model_type):
    """The product's primary header: the input's, updated for the product."""
    header = _header_from(attrs.get("primary_header"))
    _set(
        header,
        "DATE",
        datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3],
        "UTC date file created",
    )
    _set(header, "FILENAME", Path(path).name, "Name of the file")
    _set(header, "DATAMODL", model_type, "Type of data model")
    if INPUT_KEYWORD not in header:  # kept from an input product: the chain's first file
        source = _exposure_file(attrs.get("source"))
        if source:
            _set(header, INPUT_KEYWORD, source, "detflow: exposure file calibrated")
    for name, (keyword, where, kind) in KEYWORDS.items():
        if where != "primary" or attrs.get(name) is None:
            continue
        value = plain_scalar(attrs[name])
        try:
            value = kind(value)
        except (TypeError, ValueError):
            continue
        _set(header, keyword, value)
    for step, value in (attrs.get("cal_step") or {}).items():
        known = _CAL_STEP_BY_NAME.get(str(step))
        status = _cal_step_status(value)
        if known is None or status not in _CAL_STATUSES:
            continue  # a detflow-only step: recorded in provenance only
        _, keyword, title = known
        _set(header, keyword, status, title)
    reasons = _reference_reasons(attrs.get("provenance"))
    history = {}
    for reftype, name in _reference_files(attrs.get("provenance")):
        keyword = REF_FILE_KEYWORDS.get(reftype.lower())
        if keyword is not None and name:
            _set(header, keyword, str(name), f"{reftype.upper()} reference file name")
            history[keyword] = reasons.get(reftype.lower())
    _reference_history(header, history)
    return header


def _reference_reasons(provenance):
    """reftype (lower case) -> why the file the provenance names last for it was chosen
    (``reference_reasons`` of the same entry; None where it has none)."""
    out = {}
    for entry in provenance or ():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("reference_files"),
                                                            Mapping):
            continue
        why = entry.get("reference_reasons")
        why = why if isinstance(why, Mapping) else {}
        for reftype in entry["reference_files"]:
            reason = why.get(reftype)
            out[str(reftype).lower()] = str(reason) if reason else None
    return out


def _reference_history(header, reasons):
    """Why each reference file was chosen, as ``HISTORY R_DARK: <reason>`` cards (the
    reason wrapped to whole cards, each line prefixed with its keyword). The lines an
    input product carried for these keywords are replaced."""
    reasons = {k: v for k, v in reasons.items() if v}
    if not reasons:
        return
    prefixes = tuple(f"{keyword}: " for keyword in reasons)
    stale = [i for i, card in enumerate(header.cards)
             if card.keyword == "HISTORY" and str(card.value).startswith(prefixes)]
    for i in reversed(stale):
        del header[i]
    for keyword, reason in reasons.items():
        text = " ".join(str(reason).split()).encode("ascii", "replace").decode("ascii")
        for line in textwrap.wrap(text, width=72 - len(keyword) - 2):
            header.add_history(f"{keyword}: {line}")


def _reference_files(provenance):
    """``(reftype, name)`` pairs from the provenance entries that name reference files."""
    for entry in provenance or ():
        if not isinstance(entry, Mapping):
            continue
        for key in ("reference_files", "reffiles", "reference_file", "ref_files"):
            refs = entry.get(key)
            if isinstance(refs, Mapping):
                for reftype, name in refs.items():
                    if isinstance(name, Mapping):
                        name = name.get("name") or name.get("path")
                    if isinstance(name, str | os.PathLike):
                        yield str(reftype), os.fspath(name)


def _sci_header(attrs, bunit):
    header = _header_from(attrs.get("sci_header"))
    _set(header, "BUNIT", bunit, "physical units of the array values")
    return header


def _unit_header(bunit):
    """A header holding only ``BUNIT`` (the ERR extension's)."""
    header = fits.Header()
    header["BUNIT"] = (bunit, "physical units of the array values")
    return header
