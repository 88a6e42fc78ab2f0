"""Header and table values as the plain JSON of ``attrs``; shared by the exposure,
reference and product readers."""

from __future__ import annotations

import math

import numpy as np
from astropy.io import fits


def plain_scalar(value):
    """A NumPy scalar as the Python scalar, bytes as ``str`` (ASCII); anything else as it is."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("ascii", errors="replace")
    return value


def json_value(value):
    """Convert a header or table value to plain JSON (str, int, float, bool, None, list).

    NumPy scalars and arrays become Python values and lists, bytes are decoded
    (ASCII, trailing blanks stripped), non-finite floats and FITS undefined
    values become ``None``.
    """
    if isinstance(value, np.ndarray):
        return [json_value(v) for v in value.tolist()]
    value = plain_scalar(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value.rstrip()
    if isinstance(value, complex):
        return [json_value(value.real), json_value(value.imag)]
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    # astropy's Undefined and anything exotic
    return None


def header_to_dict(header):
    """A FITS header as a JSON-friendly dict.

    Parameters
    ----------
    header : astropy.io.fits.Header

    Returns
    -------
    dict
        Keyword -> value (str, int, float, bool or ``None`` for undefined, see
        :func:`json_value`); ``COMMENT`` and ``HISTORY`` cards as lists of
        strings; blank cards are dropped. A repeated keyword keeps its first
        value, the one ``header[keyword]`` gives.
    """
    out = {}
    for card in header.cards:
        key = card.keyword
        if not key:
            continue
        try:
            value = card.value
        except (ValueError, fits.VerifyError):  # pragma: no cover - malformed card
            value = str(card.image)[10:].strip()
        if key in ("COMMENT", "HISTORY"):
            out.setdefault(key, []).append(str(value))
        elif key not in out:
            out[key] = json_value(value)
    return out


def typed_value(value, typ):
    """A header value as ``typ`` (``str``, ``int``, ``float`` or ``bool``), strictly.

    Strings are stripped; an ``int`` accepts integral floats and numeric
    strings, never a bool; a ``bool`` accepts ``T``/``F``-like strings;
    non-finite floats, ``None`` and FITS undefined values give ``None``. Any
    other ``typ`` gives :func:`json_value`.

    Raises
    ------
    ValueError, TypeError
        The value is not a valid ``typ``.
    """
    value = plain_scalar(value)
    if value is None or isinstance(value, fits.card.Undefined):
        return None
    if typ is str:
        return str(value).strip()
    if typ is bool:
        if isinstance(value, str):
            text = value.strip().upper()
            if text in ("T", "TRUE", "1", "Y", "YES"):
                return True
            if text in ("F", "FALSE", "0", "N", "NO", ""):
                return False
            raise ValueError(value)
        return bool(value)
    if typ is int:
        if isinstance(value, bool):
            raise ValueError(value)
        number = float(value) if isinstance(value, str) else value
        if isinstance(number, float) and not number.is_integer():
            raise ValueError(value)
        return int(number)
    if typ is float:
        if isinstance(value, bool):
            raise ValueError(value)
        number = float(value)
        return number if math.isfinite(number) else None
    return json_value(value)


