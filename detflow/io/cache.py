"""Values parsed from local files, kept while the file is unchanged."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

from detflow.io.urls import local_path


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

