"""Low-level, lazy FITS access for local paths and fsspec URLs.

The headers of every HDU are parsed with astropy from the header blocks alone
(the pixel data is never touched while scanning), and a rectangular section
of an image HDU is read on demand:

* local files (a path or a ``file://`` URL) through a read-only
  :class:`numpy.memmap` of the raw big-endian data, so a section reads only
  the pages it touches;
* any other fsspec URL (``memory://``, ``http(s)://``, ``s3://``, ...) through
  byte-range requests of whole rows (``fs.cat_ranges``), one range per
  contiguous run of the section;
* a gzip-compressed file, only where the caller allows it
  (:meth:`FitsSource.sniff`, used for reference files), through a
  decompressing stream: correct, but every read decompresses from the start
  of the file up to the section, as astropy does.

Scaled integers are handled without astropy's scaling machinery (astropy
refuses to memory-map scaled data), but give astropy's values and dtypes to
the bit (jwst reads its files with astropy): the pseudo-integer conventions
(``BITPIX=16, BZERO=32768`` for ``uint16``, ``BITPIX=32, BZERO=2**31`` for
``uint32``, ``BITPIX=64, BZERO=2**63`` for ``uint64``, ``BITPIX=8, BZERO=-128``
for ``int8``) are undone exactly by flipping the sign bit; any other
``BSCALE``/``BZERO``, or a ``BLANK`` on integer data, gives floats computed as
astropy computes them, with NaN at ``BLANK`` pixels.

The module also holds the helpers that turn header and table values into the
plain JSON of ``attrs`` (:func:`json_value`, :func:`header_to_dict`,
:func:`typed_value`), shared by the exposure, reference and product readers.

Everything here is picklable and small: a :class:`FitsImage` holds the URL,
the storage options and the byte layout of one HDU, never an open handle, so a
Dask task (threads, processes or a distributed worker) opens the file itself.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import zlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from itertools import product

import numpy as np
from astropy.io import fits

from detflow.errors import InputFileError

__all__ = [
    "BLOCK",
    "FitsImage",
    "FitsSource",
    "HDUInfo",
    "ImageLayout",
    "find_hdu",
    "header_to_dict",
    "json_value",
    "local_path",
    "padded_nbytes",
    "plain_scalar",
    "read_hdus",
    "read_table",
    "typed_value",
]

#: FITS block size in bytes.
BLOCK = 2880
_CARD = 80
# bytes read at a time while looking for a header's END card
_HEADER_READ = 10 * BLOCK
_GZIP_MAGIC = b"\x1f\x8b"


# --------------------------------------------------------------------------
# where the bytes come from
# --------------------------------------------------------------------------


def _has_protocol(path):
    return "://" in path or "::" in path


def is_remote(path):
    """Whether ``path`` is reached through fsspec: a URL other than ``file://`` (or
    ``local://``), or a chained one. The one rule for the whole package."""
    return local_path(path) is None


def local_path(url):
    """The local file name of a path or ``file://`` URL, or ``None`` for any other URL."""
    url = os.fspath(url)
    if not _has_protocol(url):
        return url
    if url.startswith(("file://", "local://")) and "::" not in url:
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem._strip_protocol(url)
    return None


class KeptByFile:
    """The last few values parsed from local files, each under the file's identity
    (:meth:`identity`: path as given, size, mtime), so a file changed since is parsed
    again. Thread-safe; values are returned as stored (copy what a caller may change).
    """

    def __init__(self, size):
        self._items = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    @staticmethod
    def identity(path):
        """``(path, size, mtime_ns)`` of a local file, or None (a URL, a missing file)."""
        local = local_path(path)
        if local is None:
            return None
        try:
            st = os.stat(local)
        except OSError:
            return None
        return (os.path.abspath(local), st.st_size, st.st_mtime_ns)

    def get(self, key):
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
        return value

    def put(self, key, value):
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)


@dataclass(frozen=True)
class FitsSource:
    """A FITS file named by a local path or an fsspec URL, plus fsspec options.

    Only the name travels (pickles); every read opens the file anew.

    Parameters
    ----------
    url : str or os.PathLike
        A local path, a ``file://`` URL or any fsspec URL (``memory://``,
        ``http://``, ``s3://``, chained ``simplecache::...``).
    storage_options : dict, optional
        Passed to :func:`fsspec.core.url_to_fs` for URLs (ignored for local paths).
    compression : {None, "gzip"}
        ``None``: plain FITS (a gzip-compressed file is refused with a clear
        error); ``"gzip"``: the file is read through a decompressing stream.
        :meth:`sniff` sets it from the file's first bytes.
    """

    url: str
    storage_options: Mapping = field(default_factory=dict)
    compression: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "url", os.fspath(self.url))
        object.__setattr__(self, "storage_options", dict(self.storage_options or {}))
        if self.compression not in (None, "gzip"):
            raise ValueError(f"unsupported FITS compression {self.compression!r}")

    def __hash__(self):
        options = repr(sorted(self.storage_options.items(), key=str))
        return hash((self.url, options, self.compression))

    def __dask_tokenize__(self):
        return (
            "detflow.FitsSource",
            self.url,
            sorted(self.storage_options.items(), key=str),
            self.compression,
        )

    @property
    def local_path(self):
        """The local file name, or ``None`` when the file is reached through fsspec."""
        return local_path(self.url)

    def sniff(self):
        """This source, with ``compression="gzip"`` when the file is gzip-compressed.

        Opens the file once and reads its first two bytes.

        Raises
        ------
        InputFileError
            The file is missing or cannot be opened.
        """
        if self.compression is not None:
            return self
        with self.reader() as reader:
            head = reader.read(0, len(_GZIP_MAGIC))
        return replace(self, compression="gzip") if head == _GZIP_MAGIC else self

    def filesystem(self):
        """``(fs, path)`` for this URL (a local path gets fsspec's local filesystem)."""
        import fsspec.core

        return fsspec.core.url_to_fs(self.url, **self.storage_options)

    def reader(self, size=None):
        """A :class:`_Reader` for this file (a context manager).

        ``size``, when known, spares a remote file the request for its size.
        """
        return _Reader(self, size)


class _Reader:
    """Positional reads from one file; opened per scan or per task, never shipped.

    ``size`` is the number of bytes readable (``None`` when unknown: a
    decompressed gzip stream); ``stored_size`` the size of the file itself.
    """

    def __init__(self, source, size=None):
        self.source = source
        self.local = source.local_path
        self._fd = None
        self._fs = None
        self._path = None
        self._whole = None  # whole file, when a server ignored a Range request
        self._gzip = None  # decompressing stream (compression="gzip")
        self._raw = None  # the compressed file under it
        self.size = None
        self.stored_size = None
        try:
            if self.local is not None:
                if not os.path.exists(self.local):
                    raise FileNotFoundError(self.local)
                if os.path.isdir(self.local):
                    raise InputFileError(source.url, "is a directory, not a FITS file")
                self._fd = os.open(self.local, os.O_RDONLY)
                self.size = os.fstat(self._fd).st_size
            else:
                self._fs, self._path = source.filesystem()
                if size is None:
                    info = self._fs.info(self._path)
                    if info.get("type") == "directory":
                        raise InputFileError(source.url, "is a directory, not a FITS file")
                    size = info.get("size")
                self.size = None if size is None else int(size)
            self.stored_size = self.size
            if source.compression == "gzip":
                import gzip

                if self.local is not None:
                    self._raw = open(self.local, "rb")  # noqa: SIM115 (closed in close())
                else:
                    self._raw = self._fs.open(self._path, "rb")
                self._gzip = gzip.GzipFile(fileobj=self._raw, mode="rb")
                self.size = None  # the decompressed size is known only at the end
        except FileNotFoundError as exc:
            self.close()
            raise InputFileError(source.url, "file not found") from exc
        except InputFileError:
            self.close()
            raise
        except (OSError, ValueError, ImportError) as exc:
            self.close()
            raise InputFileError(source.url, f"cannot open: {exc}") from exc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for stream in (self._gzip, self._raw):
            if stream is not None:
                stream.close()
        self._gzip = self._raw = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def stamp(self):
        """A token of the file's identity (size, and mtime for local files)."""
        if self._fd is not None:
            st = os.fstat(self._fd)
            return (st.st_size, st.st_mtime_ns)
        return (self.stored_size,)

    def read(self, offset, nbytes):
        """Up to ``nbytes`` bytes from ``offset`` (fewer only at the end of the file)."""
        if self.size is not None:
            nbytes = max(0, min(nbytes, self.size - offset))
        if nbytes <= 0:
            return b""
        return self.read_ranges([(offset, offset + nbytes)], exact=False)[0]

    def read_ranges(self, ranges, exact=True):
        """The bytes of each ``(start, end)`` range, as a list of ``bytes``.

        With ``exact`` a range that comes back short raises :class:`InputFileError`.
        """
        url = self.source.url
        if not ranges:
            return []
        if self._gzip is not None:
            out = []
            try:
                for start, end in ranges:
                    self._gzip.seek(start)
                    out.append(self._gzip.read(end - start))
            except (OSError, EOFError, zlib.error) as exc:
                raise InputFileError(url, f"cannot read (gzip): {exc}") from exc
        elif self._fd is not None:
            out = [os.pread(self._fd, end - start, start) for start, end in ranges]
        elif self._whole is not None:
            out = [self._whole[start:end] for start, end in ranges]
        else:
            try:
                out = self._fs.cat_ranges(
                    [self._path] * len(ranges),
                    [r[0] for r in ranges],
                    [r[1] for r in ranges],
                    on_error="return",
                )
            except FileNotFoundError as exc:
                raise InputFileError(url, "file not found") from exc
            except OSError as exc:
                raise InputFileError(url, f"cannot read: {exc}") from exc
            for piece in out:
                if isinstance(piece, FileNotFoundError):
                    raise InputFileError(url, "file not found") from piece
                if isinstance(piece, BaseException):
                    raise InputFileError(url, f"cannot read: {piece}") from piece
            fixed = []
            for (start, end), piece in zip(ranges, out, strict=True):
                if (
                    len(piece) != end - start
                    and self.size is not None
                    and len(piece) == self.size
                    and self.size > end - start
                ):
                    # The server ignored the Range header and sent the whole
                    # file (e.g. python's http.server): keep it for later reads.
                    self._whole = bytes(piece)
                    piece = self._whole[start:end]
                fixed.append(piece)
            out = fixed
        if exact:
            for (start, end), piece in zip(ranges, out, strict=True):
                if len(piece) != end - start:
                    raise InputFileError(
                        url,
                        f"truncated: expected {end - start} bytes at offset {start}, "
                        f"got {len(piece)}",
                    )
        return out


# --------------------------------------------------------------------------
# headers
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# image sections
# --------------------------------------------------------------------------


def _normalize_key(key, shape):
    """Per-axis index (slice with step 1, or an integer array) and axes to drop."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        i = next(i for i, k in enumerate(key) if k is Ellipsis)
        fill = (slice(None),) * (len(shape) - len(key) + 1)
        key = key[:i] + fill + key[i + 1 :]
    if len(key) > len(shape):
        raise IndexError(f"too many indices ({len(key)}) for an array of shape {shape}")
    key = key + (slice(None),) * (len(shape) - len(key))
    axes, drop = [], []
    for ax, (k, n) in enumerate(zip(key, shape, strict=True)):
        if isinstance(k, slice):
            start, stop, step = k.indices(n)
            if step == 1:
                axes.append(slice(start, max(start, stop)))
            else:
                axes.append(np.arange(start, stop, step))
        elif isinstance(k, (int, np.integer)):
            i = int(k) + n if k < 0 else int(k)
            if not 0 <= i < n:
                raise IndexError(f"index {k} out of range for axis {ax} of size {n}")
            axes.append(slice(i, i + 1))
            drop.append(ax)
        else:
            idx = np.asarray(k)
            if idx.dtype == bool:
                idx = np.flatnonzero(idx)
            if idx.ndim != 1 or idx.dtype.kind not in "iu":
                raise IndexError(f"unsupported index for axis {ax}: {k!r}")
            idx = np.where(idx < 0, idx + n, idx)
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise IndexError(f"index out of range for axis {ax} of size {n}")
            axes.append(idx.astype(np.intp))
    return axes, tuple(drop)


@dataclass(frozen=True)
class FitsImage:
    """A lazy, picklable N-d image HDU; indexing reads only the requested section.

    ``FitsImage(...)[i0:i1, :, y0:y1, x0:x1]`` returns a NumPy array in native
    byte order. Basic indexing (integers, slices of any step, ``...``) and
    one-dimensional integer arrays per axis (outer indexing) are supported.

    Parameters
    ----------
    source : FitsSource
        The file.
    layout : ImageLayout
        Where the data of the HDU are and how they are stored.
    cast : numpy.dtype, optional
        Convert the values to this dtype after reading (e.g. ``uint8`` DQ).
    hdu_name : str
        For error messages.
    stamp : tuple
        File identity folded into the Dask token: ``(size,)`` or ``(size, mtime_ns)``;
        the size also spares each read of a remote file a request for it.
    """

    source: FitsSource
    layout: ImageLayout
    cast: np.dtype | None = None
    hdu_name: str = ""
    stamp: tuple = ()

    def __hash__(self):
        return hash((self.source, self.layout, str(self.dtype), self.stamp))

    @property
    def shape(self):
        """Shape in NumPy order."""
        return self.layout.shape

    @property
    def ndim(self):
        """Number of dimensions."""
        return len(self.layout.shape)

    @property
    def size(self):
        """Number of pixels."""
        return math.prod(self.layout.shape)

    @property
    def dtype(self):
        """Dtype of the arrays returned by indexing."""
        return np.dtype(self.cast) if self.cast is not None else self.layout.dtype

    def __dask_tokenize__(self):
        return (
            "detflow.FitsImage",
            self.source.__dask_tokenize__(),
            self.layout,
            str(self.dtype),
            self.stamp,
        )

    def __repr__(self):
        return (
            f"FitsImage({self.source.url!r}, {self.hdu_name or 'HDU'}, "
            f"shape={self.shape}, dtype={self.dtype})"
        )

    def __getitem__(self, key):
        axes, drop = _normalize_key(key, self.shape)
        box = []
        for a in axes:
            if isinstance(a, slice):
                box.append((a.start, a.stop))
            elif a.size:
                box.append((int(a.min()), int(a.max()) + 1))
            else:
                box.append((0, 0))
        out_shape = tuple(hi - lo for lo, hi in box)
        if math.prod(out_shape) == 0:
            values = np.empty(out_shape, dtype=self.dtype)
        else:
            values = self.layout.to_values(self._read_box(box))
            if self.cast is not None:
                values = values.astype(self.cast, copy=False)
        # integer-array axes: pick from the bounding box
        for ax, a in enumerate(axes):
            if not isinstance(a, slice):
                values = np.take(values, a - box[ax][0], axis=ax)
        if drop:
            values = values.reshape(tuple(n for ax, n in enumerate(values.shape) if ax not in drop))
        return values

    def __array__(self, dtype=None, copy=None):
        values = self[...]
        return values if dtype is None else values.astype(dtype, copy=False)

    def read(self):
        """The whole image as a NumPy array, shape :attr:`shape`."""
        return self[...]

    def to_dask(self, chunks, name, **kwargs):
        """This image as a lazy Dask array: one task per chunk, each reading its own section.

        Parameters
        ----------
        chunks
            Dask chunks, as :func:`dask.array.from_array` takes them.
        name : str
            The array's name: deterministic, so the same image and chunks give
            the same task keys (build it with :func:`dask.base.tokenize`).
        **kwargs
            More :func:`dask.array.from_array` options (e.g. ``fancy=False``).

        Returns
        -------
        dask.array.Array
            Shape :attr:`shape`, dtype :attr:`dtype`; the graph holds this small,
            picklable object, never data or an open file.
        """
        import dask.array as da

        return da.from_array(
            self,
            chunks=chunks,
            name=name,
            lock=False,
            asarray=False,
            inline_array=False,
            meta=np.empty((0,) * self.ndim, dtype=self.dtype),
            **kwargs,
        )

    def _read_box(self, box):
        """Stored (big-endian) pixels of the box ``[(lo, hi), ...]``, one per axis."""
        local = self.source.local_path
        if local is not None and self.source.compression is None:
            try:
                return self._read_box_local(local, box)
            except FileNotFoundError as exc:
                raise InputFileError(self.source.url, "file not found") from exc
            except (OSError, ValueError) as exc:
                raise InputFileError(
                    self.source.url, f"cannot read {self.hdu_name or 'image'} data: {exc}"
                ) from exc
        return self._read_box_ranges(box)

    def _read_box_local(self, path, box):
        """The box from a local file with ``pread``: for each index of the leading axes,
        the box's rows in full width (one contiguous range), then its columns.

        Unlike a memory map, this never maps more of the file than the box's rows (a
        memory map of a column tile touches every page of the image: its rows are
        only a few pages wide) and leaves the file's pages to the page cache, outside
        the process's memory.
        """
        layout = self.layout
        shape = self.shape
        item = layout.itemsize
        out = np.empty(tuple(hi - lo for lo, hi in box), dtype=layout.raw_dtype)
        if out.size == 0:
            return out
        if len(shape) == 1:
            lead_axes, (y0, y1), (x0, x1), width = [], (0, 1), box[0], shape[0]
        else:
            lead_axes = box[:-2]
            (y0, y1), (x0, x1) = box[-2], box[-1]
            width = shape[-1]
        row_bytes = width * item
        plane_bytes = (shape[-2] if len(shape) > 1 else 1) * row_bytes
        strides = [math.prod(shape[k + 1:-2]) for k in range(len(lead_axes))]
        nbytes = (y1 - y0) * row_bytes
        full_width = (x0, x1) == (0, width)
        buf = None if full_width else np.empty((y1 - y0, width), dtype=layout.raw_dtype)
        view = out.reshape((-1, y1 - y0, x1 - x0))
        fd = os.open(path, os.O_RDONLY)
        try:
            for n, idx in enumerate(product(*(range(lo, hi) for lo, hi in lead_axes))):
                plane = sum(i * st for i, st in zip(idx, strides, strict=True))
                start = layout.offset + plane * plane_bytes + y0 * row_bytes
                target = view[n] if full_width else buf
                _pread_into(fd, memoryview(target).cast("B"), start, nbytes)
                if not full_width:
                    view[n] = buf[:, x0:x1]
        finally:
            os.close(fd)
        return out

    def _read_box_ranges(self, box):
        layout = self.layout
        shape = self.shape
        nd = len(shape)
        item = layout.itemsize
        # read whole rows: fewer, larger requests
        wbox = list(box)
        wbox[-1] = (0, shape[-1])
        # innermost axis that is not selected in full; all faster axes are full
        j = 0
        for k in range(nd - 1, -1, -1):
            if wbox[k] != (0, shape[k]):
                j = k
                break
        strides = [math.prod(shape[k + 1 :]) for k in range(nd)]
        run = (wbox[j][1] - wbox[j][0]) * strides[j]
        ranges = []
        for idx in product(*(range(lo, hi) for lo, hi in wbox[:j])):
            first = sum(i * s for i, s in zip(idx, strides, strict=False)) + wbox[j][0] * strides[j]
            start = layout.offset + first * item
            end = start + run * item
            if ranges and ranges[-1][1] == start:
                ranges[-1] = (ranges[-1][0], end)
            else:
                ranges.append((start, end))
        size = self.stamp[0] if self.stamp else None
        with self.source.reader(size) as reader:
            pieces = reader.read_ranges(ranges)
        raw = np.frombuffer(b"".join(pieces), dtype=layout.raw_dtype)
        raw = raw.reshape(tuple(hi - lo for lo, hi in wbox))
        return raw[..., box[-1][0] : box[-1][1]]


def _pread_into(fd, target, start, nbytes):
    """Fill the writable byte view ``target`` (``nbytes``) from ``fd`` at ``start``."""
    done = 0
    while done < nbytes:
        got = os.preadv(fd, [target[done:]], start + done)
        if got <= 0:
            raise ValueError(f"the file ends {nbytes - done} bytes early (truncated?)")
        done += got


# --------------------------------------------------------------------------
# tables and JSON-friendly values
# --------------------------------------------------------------------------


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
