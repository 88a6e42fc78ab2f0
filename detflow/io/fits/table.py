"""FITS binary tables as lists of plain rows."""

from __future__ import annotations

import contextlib

import numpy as np
from astropy.io import fits

from detflow.errors import InputFileError
from detflow.io.fits.hdus import padded_nbytes
from detflow.io.values import json_value


def read_table(source, hdu, reader=None):
    """Read a binary or ASCII table HDU into ``{column: list}`` (JSON-friendly).

    Parameters
    ----------
    source : FitsSource
        The file.
    hdu : HDUInfo
        A ``BINTABLE`` or ``TABLE`` extension from :func:`read_hdus`.
    reader : optional
        An open ``source.reader()`` to reuse.

    Returns
    -------
    dict
        Column name -> list of values (one per row; array cells become lists).
    """
    start = hdu.header_offset
    end = hdu.data_offset + hdu.data_nbytes
    with contextlib.nullcontext(reader) if reader is not None else source.reader() as reader:
        (raw,) = reader.read_ranges([(start, end)])
    raw = raw + b"\0" * (padded_nbytes(len(raw)) - len(raw))
    primary = fits.PrimaryHDU().header.tostring().encode("ascii")
    try:
        with fits.HDUList.fromstring(primary + raw) as hdul:
            data = hdul[1].data
            if data is None:
                return {}
            return {name: json_value(np.asarray(data[name])) for name in data.columns.names}
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise InputFileError(
            source.url, f"table {hdu.name or hdu.index} cannot be read: {exc}"
        ) from exc
