"""FITS headers, parsed from the header blocks alone: each HDU's header and byte
layout; and a table HDU read as lists of plain rows (:func:`read_table`)."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import numpy as np
from astropy.io import fits

from detflow.errors import InputFileError
from detflow.io.fits.source import FitsSource
from detflow.io.values import json_value

#: FITS block size in bytes.
BLOCK = 2880
_CARD = 80
# bytes read at a time while looking for a header's END card
_HEADER_READ = 10 * BLOCK


@dataclass(frozen=True)
class ImageLayout:
    """Byte layout of an image HDU's data, and how its values are computed.

    Values and dtypes are astropy's (``fits.open(..., uint=True)``), to the bit.

    Attributes
    ----------
    offset : int
        Byte offset of the first data byte in the file.
    shape : tuple of int
        Array shape in NumPy (C) order, i.e. ``(NAXISn, ..., NAXIS1)``.
    bitpix : int
        FITS ``BITPIX`` (8, 16, 32, 64, -32, -64).
    bscale, bzero : float
        FITS scaling (``value = raw * BSCALE + BZERO``).
    blank : int or None
        FITS ``BLANK`` of integer data (``None`` when absent or not applicable).
    """

    offset: int
    shape: tuple
    bitpix: int
    bscale: float = 1.0
    bzero: float = 0.0
    blank: int | None = None

    @property
    def itemsize(self):
        """Bytes per stored pixel."""
        return abs(self.bitpix) // 8

    @property
    def nbytes(self):
        """Bytes of data, without the block padding."""
        return self.itemsize * math.prod(self.shape)

    @property
    def _pseudo(self):
        # astropy's pseudo-integer conventions: BSCALE = 1 and BZERO = 2**(bits-1)
        # (unsigned 16/32/64-bit) or -128 (signed bytes); the dtype, or None
        if self.bscale != 1:
            return None
        if self.bitpix == 8 and self.bzero == -128:
            return np.dtype("i1")
        if self.bitpix in (16, 32, 64) and self.bzero == 2 ** (self.bitpix - 1):
            return np.dtype(f"u{self.itemsize}")
        return None

    @property
    def raw_dtype(self):
        """Big-endian dtype of the stored bytes."""
        if self.bitpix == 8:
            return np.dtype("u1")
        pseudo = self._pseudo
        if pseudo is not None:
            return np.dtype(f">u{self.itemsize}")
        kind = "f" if self.bitpix < 0 else "i"
        return np.dtype(f">{kind}{self.itemsize}")

    @property
    def scaled(self):
        """True when the values are computed as floats from the stored numbers.

        That is with ``BSCALE``/``BZERO`` other than a pseudo-integer convention,
        and (as astropy does) with a ``BLANK`` on integer data.
        """
        if self._pseudo is not None:
            return False
        return self.bscale != 1 or self.bzero != 0 or self.blank is not None

    @property
    def dtype(self):
        """Native dtype of the values (after ``BZERO``/``BSCALE``)."""
        pseudo = self._pseudo
        if pseudo is not None:
            return pseudo
        if self.scaled:
            return np.dtype(
                "float32" if abs(self.bitpix) <= 16 or self.bitpix == -32 else "float64"
            )
        return self.raw_dtype.newbyteorder("=")

    def to_values(self, raw):
        """Convert an array of stored (big-endian) pixels to native values."""
        pseudo = self._pseudo
        if pseudo is not None:
            sign = np.array(1 << (8 * self.itemsize - 1), dtype=raw.dtype.newbyteorder("="))
            return np.bitwise_xor(raw, sign, dtype=sign.dtype).view(pseudo)
        if not self.scaled:
            return raw.astype(self.dtype)
        # astropy's arithmetic, in the dtype of the result (float32 for 8/16-bit
        # and -32 data): a float64 product rounded once could differ in the last bit
        out = raw.astype(self.dtype)
        if self.bscale != 1:
            np.multiply(out, self.bscale, out=out)
        if self.bzero != 0:
            out += self.bzero
        if self.blank:  # astropy skips BLANK = 0 too (``if self._blank:``)
            out[raw == self.blank] = np.nan
        return out


@dataclass(frozen=True)
class HDUInfo:
    """One HDU of a FITS file: its header and where its bytes are.

    Attributes
    ----------
    index : int
        Position in the file (0 is the primary HDU).
    name : str
        ``EXTNAME`` upper-cased (``"PRIMARY"`` for HDU 0 without one).
    ver : int
        ``EXTVER`` (1 when absent).
    header : astropy.io.fits.Header
        The parsed header.
    header_offset, data_offset : int
        Byte offsets of the header and of the data.
    data_nbytes : int
        Bytes of data, without block padding.
    """

    index: int
    name: str
    ver: int
    header: fits.Header = field(repr=False, compare=False)
    header_offset: int
    data_offset: int
    data_nbytes: int

    @property
    def xtension(self):
        """``XTENSION`` (``"PRIMARY"`` for HDU 0)."""
        if self.index == 0:
            return "PRIMARY"
        return str(self.header.get("XTENSION", "")).strip().upper()

    @property
    def is_image(self):
        """True for the primary HDU and ``IMAGE`` extensions."""
        return self.xtension in ("PRIMARY", "IMAGE")

    @property
    def is_compressed_image(self):
        """True for a tile-compressed image (a ``BINTABLE`` with ``ZIMAGE = T``)."""
        return self.xtension == "BINTABLE" and self.header.get("ZIMAGE") is True

    @property
    def shape(self):
        """Data shape in NumPy order, ``(NAXISn, ..., NAXIS1)``."""
        naxis = int(self.header.get("NAXIS", 0))
        return tuple(int(self.header.get(f"NAXIS{k}", 0)) for k in range(naxis, 0, -1))

    def image_layout(self):
        """The :class:`ImageLayout` of an image HDU."""
        h = self.header
        bitpix = int(h["BITPIX"])
        blank = h.get("BLANK")
        # astropy ignores a BLANK that is not an integer, or on float data
        if bitpix < 0 or isinstance(blank, bool) or not isinstance(blank, int | np.integer):
            blank = None
        return ImageLayout(
            offset=self.data_offset,
            shape=self.shape,
            bitpix=bitpix,
            bscale=float(h.get("BSCALE", 1.0)),
            bzero=float(h.get("BZERO", 0.0)),
            blank=None if blank is None else int(blank),
        )


def _data_nbytes(header):
    naxis = int(header.get("NAXIS", 0))
    if naxis == 0:
        return 0
    dims = [int(header.get(f"NAXIS{k}", 0)) for k in range(1, naxis + 1)]
    if header.get("GROUPS") is True and dims[0] == 0:  # random groups
        dims = dims[1:]
    bits = abs(int(header.get("BITPIX", 8)))
    pcount = int(header.get("PCOUNT", 0))
    gcount = int(header.get("GCOUNT", 1))
    return bits // 8 * gcount * (pcount + math.prod(dims))


def padded_nbytes(nbytes):
    """``nbytes`` rounded up to whole FITS blocks (:data:`BLOCK` bytes)."""
    return -(-nbytes // BLOCK) * BLOCK


def _read_header(reader, offset, index):
    """Parse the header starting at ``offset``; returns ``(Header, header_nbytes)``."""
    url = reader.source.url
    buf = bytearray()
    pos = offset
    while True:
        chunk = reader.read(pos, _HEADER_READ)
        start = len(buf)
        buf += chunk
        pos += len(chunk)
        # look for END in the whole blocks read so far
        nblocks = len(buf) // BLOCK
        for b in range(start // BLOCK, nblocks):
            block = bytes(buf[b * BLOCK : (b + 1) * BLOCK])
            for c in range(0, BLOCK, _CARD):
                if block[c : c + 8] == b"END     ":
                    hlen = (b + 1) * BLOCK
                    try:
                        text = bytes(buf[:hlen]).decode("ascii")
                        header = fits.Header.fromstring(text)
                    except (UnicodeDecodeError, ValueError) as exc:
                        raise InputFileError(
                            url, f"header of HDU {index} cannot be parsed: {exc}"
                        ) from exc
                    return header, hlen
        if len(chunk) < _HEADER_READ or not chunk:
            if index == 0 and len(buf) < BLOCK:
                raise InputFileError(
                    url,
                    f"not a FITS file, or truncated: {len(buf)} bytes, "
                    f"shorter than one {BLOCK}-byte header block",
                )
            raise InputFileError(
                url, f"truncated: the header of HDU {index} has no END card before end of file"
            )


def read_primary_header(source):
    """The primary header of a FITS file alone (what follows it is not looked at, so a
    file cut short after it still answers).

    Raises
    ------
    InputFileError
        Missing, not FITS, or a primary header without END.
    """
    if not isinstance(source, FitsSource):
        source = FitsSource(source)
    with source.reader() as reader:
        header, _ = _read_header(reader, 0, 0)
    return header


def read_hdus(source, reader=None):
    """Parse the headers of every HDU, without reading any data.

    Parameters
    ----------
    source : FitsSource or str
        The file.
    reader : optional
        An open ``source.reader()`` to reuse (saves a round trip to a server).

    Returns
    -------
    list of HDUInfo
        One entry per HDU, in file order.

    Raises
    ------
    InputFileError
        The file is missing, is not FITS, or is shorter than its headers say.
    """
    if not isinstance(source, FitsSource):
        source = FitsSource(source)
    url = source.url
    hdus = []
    with contextlib.nullcontext(reader) if reader is not None else source.reader() as reader:
        head = reader.read(0, _CARD)
        if head[:2] == b"\x1f\x8b":
            raise InputFileError(
                url, "is gzip-compressed; decompress it first (random access needs plain FITS)"
            )
        if not head.startswith(b"SIMPLE  =") or head[10:30].strip() != b"T":
            raise InputFileError(url, "not a FITS file (it does not start with SIMPLE = T)")
        offset = 0
        while reader.size is None or offset < reader.size:
            index = len(hdus)
            if index:
                first = reader.read(offset, _CARD)
                if not first:
                    break
                if not first.startswith(b"XTENSION="):
                    # trailing bytes after the last HDU (astropy ignores them too)
                    break
            header, hlen = _read_header(reader, offset, index)
            nbytes = _data_nbytes(header)
            data_offset = offset + hlen
            if reader.size is not None and data_offset + nbytes > reader.size:
                name = str(header.get("EXTNAME", "PRIMARY" if index == 0 else index))
                raise InputFileError(
                    url,
                    f"truncated: HDU {index} ({name.strip()}) needs data up to byte "
                    f"{data_offset + nbytes}, but the file has {reader.size} bytes",
                )
            name = header.get("EXTNAME", "PRIMARY" if index == 0 else "")
            hdus.append(
                HDUInfo(
                    index=index,
                    name=str(name).strip().upper(),
                    ver=int(header.get("EXTVER", 1)),
                    header=header,
                    header_offset=offset,
                    data_offset=data_offset,
                    data_nbytes=nbytes,
                )
            )
            offset = data_offset + padded_nbytes(nbytes)
            if reader.size is None and nbytes == 0 and hlen == 0:  # pragma: no cover
                break
    return hdus


def find_hdu(hdus, name, ver=1):
    """The HDU named ``name`` (``EXTNAME``, case-insensitive) and ``ver``, or ``None``."""
    name = name.upper()
    for hdu in hdus:
        if hdu.name == name and hdu.ver == ver:
            return hdu
    return None


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
