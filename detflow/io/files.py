"""Where a file lives and what was parsed from it.

:func:`local_path` and :func:`is_remote` tell a local path (or ``file://`` URL) from a
remote fsspec URL; :class:`KeptByFile` keeps values parsed from local files while the
file is unchanged."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict


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

