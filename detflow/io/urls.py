"""Where a file lives: a local path (or ``file://`` URL) or a remote fsspec URL."""

from __future__ import annotations

import os


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

