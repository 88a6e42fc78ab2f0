"""Where a FITS file's bytes come from: positional reads of a local file, byte ranges of
an fsspec URL, or a decompressing gzip stream."""

from __future__ import annotations

import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from detflow.errors import InputFileError
from detflow.io.files import local_path

_GZIP_MAGIC = b"\x1f\x8b"


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


