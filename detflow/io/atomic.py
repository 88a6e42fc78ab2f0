"""Atomic output: write to a temporary name beside the target, then rename.

A reader never sees a half-written product, an interrupted run leaves no
partial file under the final name, and an existing file is replaced only once
its successor is complete.
"""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path, *, directory=False):
    """Yield a temporary path in the target's folder; rename it to ``path`` on success.

    Parameters
    ----------
    path : str or Path
        Final path of the file (or folder, with ``directory=True``, e.g. a Zarr store).
    directory : bool
        Whether the output is a directory tree rather than one file.

    On an exception the temporary output is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}."
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".part", dir=path.parent))
        shutil.rmtree(tmp)
    else:
        fd, tmpname = tempfile.mkstemp(prefix=prefix, suffix=".part", dir=path.parent)
        os.close(fd)
        os.unlink(tmpname)
        tmp = Path(tmpname)
    try:
        yield tmp
        if directory:
            if path.exists():
                old = path.with_name(f".{path.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
        else:
            os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        raise
