"""Process memory: keep freed tiles from staying in the process.

glibc's ``malloc`` serves a request of up to its *mmap threshold* from its heaps and
raises that threshold, up to 32 MiB, each time a larger block is freed. A detector1
graph allocates and frees blocks from a few MiB (DQ planes, reference lines, slices of
tiles) to tens of MiB (tiles), on several threads: after the first tiles are freed,
nearly all of them come from the heaps, whose freed space glibc keeps for reuse rather
than returning it, so the process's resident memory grows well above what the graph
holds (measured on a full-frame exposure: ~250 MiB above the Dask cache at the peak).
A fixed threshold of a few MiB gives each such block its own mapping, returned to the
system when freed: peak memory ~140 MiB lower on the 10-group full frame, for ~0.2 s
more time (fresh pages are zero-filled by the kernel); ``benchmarks/detector1.py``
measures it.

On a cluster the trade goes the other way. Dask workers -- threads of one process or
processes of their own -- run exposures back to back, and there the fresh pages cost
far more: with a 4 MiB threshold a program of 8 full frames on two worker processes
took 24.0 s (4.7 s of compute per exposure), with 8 MiB 19.4 s, 16 MiB 18.9 s, 32 MiB
18.2 s (3.4 s per exposure), for a worker peak of ~890, 900, 940 and 985 MiB. Clusters
therefore get :data:`CLUSTER_MMAP_THRESHOLD`, 32 MiB (glibc's own ceiling for its
moving threshold, fixed from the start, so the heap is still trimmed eagerly).

A user's own ``MALLOC_MMAP_THRESHOLD_`` in the environment always wins.
"""

import ctypes
import ctypes.util
import os
import sys

#: Blocks of this many bytes or more get their own mapping (one exposure, no cluster).
MMAP_THRESHOLD = 4 * 2**20
#: The same on a cluster's workers (see the module docstring).
CLUSTER_MMAP_THRESHOLD = 32 * 2**20

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
_ENV = "MALLOC_MMAP_THRESHOLD_"


def _mallopt():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return None


def return_freed_memory(threshold=MMAP_THRESHOLD):
    """Set glibc's mmap threshold for this process (see the module docstring).

    Returns
    -------
    bool
        Whether it was set: False off glibc, or when the environment sets
        ``MALLOC_MMAP_THRESHOLD_`` (the user's choice is kept).
    """
    if os.environ.get(_ENV) is not None:
        return False
    mallopt = _mallopt()
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, int(threshold)))


def worker_environment(threshold=MMAP_THRESHOLD):
    """Environment variables for worker processes a local cluster spawns (Dask's
    ``distributed.nanny.pre-spawn-environ``), doing the same there."""
    if os.environ.get(_ENV) is not None or _mallopt() is None:
        return {}
    return {_ENV: str(int(threshold))}
