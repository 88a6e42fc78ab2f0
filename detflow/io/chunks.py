"""Default chunking of an exposure (DESIGN.md, "Chunk contracts").

A default tile is one integration, all groups, and a spatial tile aligned to
the readout amplifiers in *full-frame detector coordinates*:

* NIR detectors (2048 x 2048): four amplifiers, each a 512-pixel strip across
  the fast-read direction. ``|FASTAXIS| == 1`` (NIRCam) puts the amplifier
  boundaries at ``x = 512, 1024, 1536``; ``|FASTAXIS| == 2`` (NIRSpec, NIRISS,
  FGS) puts them at ``y = 512, 1024, 1536``. NIRSpec IRS2 frames (3200 rows:
  the reference output and four amplifiers with interleaved reference pixels)
  break every 640 rows. A subarray
  breaks at the same full-frame boundaries (``x = SUBSTRT1 - 1 + arange(nx)``).
* MIRI (1032 columns, amplifiers interleaved column by column): full-width
  row bands.

Tiles are sized for ``float32`` (the dtype from the first arithmetic step on):
an amplifier strip larger than :data:`MAX_TILE_BYTES` is cut into equal bands
along the other spatial axis, each about :data:`TARGET_TILE_BYTES`. ``group``
is never split.

Neighbouring amplifiers may be joined into one tile while it stays within
``join_bytes`` (of the run's :class:`~detflow.tiling.Tiling`; 0, the default, joins
nothing). A program on a cluster joins up to :data:`TARGET_TILE_BYTES`
(:data:`CLUSTER_JOIN_BYTES`, :meth:`Tiling.for_run <detflow.tiling.Tiling.for_run>`):
a 10-group NIR full frame is then two tiles of two
amplifiers (84 MB each) instead of four of 42 MB, and a 5-group one a single tile,
so each task does enough work to be worth its scheduling (a distributed scheduler
spends about a millisecond on every task; measured on a program of 8 full frames on
2 workers: 240 -> 161 tasks per exposure, the client and scheduler's CPU 6.3 -> 5.7 s).
A single exposure, whose parallelism is its tiles, keeps one amplifier per tile:
fewer pixels in flight (peak 811 vs 1088 MiB threaded, 943 vs 1254 MiB on a local
cluster, for a 10-group full frame).

:func:`array_chunks` applies the same tiling to an array of any named
dimensions (reference files: ``(y, x)``, ``(group, y, x)``, ``(coeff, y, x)``,
``(integration, group, y, x)``, ...), so a reference lines up with the
exposure's tiles.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Integral

from detflow.contract import DIMS, FULL_FRAME_SHAPE, is_miri
from detflow.errors import ParameterError
from detflow.tiling import (  # (the tile sizes, defined once there)
    CLUSTER_JOIN_BYTES,
    JOIN_KEY,
    MAX_TILE_BYTES,
    TARGET_TILE_BYTES,
    Tiling,
)

__all__ = [
    "CLUSTER_JOIN_BYTES",
    "JOIN_KEY",
    "MAX_TILE_BYTES",
    "TARGET_TILE_BYTES",
    "amplifier_axis",
    "amplifier_length",
    "array_chunks",
    "default_chunks",
    "resolve_chunks",
    "split_at",
    "split_evenly",
]

#: Number of readout amplifiers of a NIR detector.
N_AMPLIFIERS = 4


def split_evenly(n, nparts):
    """Split ``n`` into ``nparts`` chunk sizes that differ by at most one, largest first.

    Parameters
    ----------
    n : int
        Length of the axis.
    nparts : int
        Number of chunks (clipped to ``1 .. n``).

    Returns
    -------
    tuple of int
        Chunk sizes summing to ``n`` (``(0,)`` when ``n == 0``).
    """
    if n <= 0:
        return (0,)
    nparts = max(1, min(int(nparts), n))
    base, extra = divmod(n, nparts)
    return tuple(base + 1 if i < extra else base for i in range(nparts))


def split_at(start, n, boundaries):
    """Chunk sizes of the axis ``start .. start + n`` cut at absolute ``boundaries``.

    Parameters
    ----------
    start : int
        Full-frame coordinate of the first pixel of the axis.
    n : int
        Length of the axis.
    boundaries : iterable of int
        Full-frame coordinates where a new chunk starts.

    Returns
    -------
    tuple of int
        Chunk sizes summing to ``n``.
    """
    if n <= 0:
        return (0,)
    cuts = sorted({b - start for b in boundaries if start < b < start + n})
    edges = [0, *cuts, n]
    return tuple(b - a for a, b in zip(edges[:-1], edges[1:], strict=True))


def amplifier_axis(attrs):
    """Dimension name (``"x"`` or ``"y"``) across which a NIR detector's amplifiers lie.

    Uses ``fastaxis`` (DMS orientation); without it, NIRCam reads fast along
    ``x`` and the other NIR instruments along ``y``.
    """
    fast = attrs.get("fastaxis")
    if fast in (None, 0):
        fast = 1 if str(attrs.get("instrument", "")).upper() == "NIRCAM" else 2
    return "x" if abs(int(fast)) == 1 else "y"


def amplifier_length(attrs, axis):
    """Pixels per amplifier along ``axis`` on the full frame (512, or 640 for IRS2 rows).

    A NIRSpec IRS2 frame has 3200 rows in the DMS orientation: the reference
    output, then the four amplifiers, 640 rows each.
    """
    instrument = str(attrs.get("instrument", "")).upper()
    ny, nx = FULL_FRAME_SHAPE.get(instrument, (2048, 2048))
    if axis == "y" and instrument == "NIRSPEC" and "IRS2" in str(attrs.get("readpatt", "")):
        return 3200 // (N_AMPLIFIERS + 1)
    full = ny if axis == "y" else nx
    return full // N_AMPLIFIERS


def _bands(n_other, bytes_per_line, target_bytes, max_bytes):
    total = n_other * bytes_per_line
    if total <= max_bytes:
        return split_evenly(n_other, 1)
    return split_evenly(n_other, math.ceil(total / target_bytes))


def _join_strips(sizes, bytes_per_line, join_bytes):
    """Adjacent amplifier strips joined while the joined tile stays within
    ``join_bytes`` (a tile of several whole amplifiers is still amplifier-aligned)."""
    out = []
    for n in sizes:
        if out and (out[-1] + n) * bytes_per_line <= join_bytes:
            out[-1] += n
        else:
            out.append(n)
    return tuple(out)


def default_chunks(
    attrs,
    shape,
    *,
    itemsize=4,
    tiling=None,
    join_bytes=None,
):
    """Default amplifier-aligned chunks of an exposure.

    Parameters
    ----------
    attrs : dict
        Exposure attributes (``instrument``, ``substrt1``, ``substrt2``,
        ``fastaxis``, ``readpatt``; missing ``substrt*`` mean 1).
    shape : tuple of int
        ``(nints, ngroups, ny, nx)`` of the ``data`` variable.
    itemsize : int
        Bytes per pixel used for sizing (4: float32).
    tiling : detflow.tiling.Tiling, optional
        The run's tile sizes: a tile larger than ``max_bytes`` is split into bands of
        about ``target_bytes``; neighbouring amplifiers are joined into one tile while
        it stays within ``join_bytes`` (and ``max_bytes``). Default:
        :meth:`Tiling.for_run() <detflow.tiling.Tiling.for_run>` (one amplifier per
        tile, unless the user's Dask setting ``detflow.tiles.join-bytes`` says more).
    join_bytes : int, optional
        Overrides the tiling's ``join_bytes``.

    Returns
    -------
    dict
        ``{"integration": (1, 1, ...), "group": (ngroups,), "y": (...), "x": (...)}``,
        chunk sizes per dimension.
    """
    tiling = tiling or Tiling.for_run()
    target_bytes, max_bytes = tiling.target_bytes, tiling.max_bytes
    if join_bytes is None:
        join_bytes = tiling.join_bytes
    nints, ngroups, ny, nx = (int(n) for n in shape)
    chunks = {
        "integration": (1,) * nints if nints else (0,),
        "group": (ngroups,),
    }
    x0 = int(attrs.get("substrt1") or 1) - 1
    y0 = int(attrs.get("substrt2") or 1) - 1
    if is_miri(attrs):
        chunks["x"] = split_evenly(nx, 1)
        chunks["y"] = _bands(ny, ngroups * nx * itemsize, target_bytes, max_bytes)
        return chunks
    amp_dim = amplifier_axis(attrs)
    other_dim = "y" if amp_dim == "x" else "x"
    start, n_amp = (x0, nx) if amp_dim == "x" else (y0, ny)
    n_other = ny if amp_dim == "x" else nx
    step = amplifier_length(attrs, amp_dim)
    boundaries = range(step, start + n_amp, step)
    amp_chunks = _join_strips(split_at(start, n_amp, boundaries),
                              ngroups * n_other * itemsize, min(join_bytes, max_bytes))
    widest = max(amp_chunks)
    chunks[amp_dim] = amp_chunks
    chunks[other_dim] = _bands(n_other, ngroups * widest * itemsize, target_bytes, max_bytes)
    return chunks


def array_chunks(attrs, dims, shape, chunks=None, *, itemsize=4, tiling=None):
    """Chunks of an array on named dimensions: the default tiles, or the user's.

    The default is that of :func:`default_chunks`, applied to any dimensions:
    one ``integration`` per chunk, every other non-spatial dimension whole (its
    sizes multiply like ``group`` in the tile size), ``y``/``x`` tiled along the
    amplifiers in full-frame coordinates. An array without both ``y`` and ``x``
    has its ``integration`` split in ones and every other dimension whole.

    Parameters
    ----------
    attrs : dict
        Attributes as for :func:`default_chunks` (``instrument``,
        ``substrt1/2``, ``fastaxis``, ``readpatt``).
    dims : tuple of str
        The array's dimension names.
    shape : tuple of int
        The array's shape.
    chunks : None, dict or anything dask takes
        ``None``: the default. A dict by dimension name overrides the
        dimensions it names (those the array lacks are ignored, so one dict
        serves arrays of different dimensions). Anything else is returned as it
        is, for :func:`dask.array.from_array`.
    itemsize : int
        Bytes per pixel used for sizing.
    tiling : detflow.tiling.Tiling, optional
        The run's tile sizes (see :func:`default_chunks`).

    Returns
    -------
    tuple
        One entry per dimension (a tuple of sizes, or the user's value), or the
        user's ``chunks`` when it is not a dict.
    """
    sizes = dict(zip(dims, (int(n) for n in shape), strict=True))
    whole = {d: (n,) if n else (0,) for d, n in sizes.items()}
    nints = sizes.get("integration", 1)
    if "integration" in sizes:
        whole["integration"] = (1,) * nints if nints else (0,)
    if "y" in sizes and "x" in sizes:
        depth = math.prod(n for d, n in sizes.items() if d not in ("integration", "y", "x"))
        tiles = default_chunks(attrs, (nints, depth, sizes["y"], sizes["x"]), itemsize=itemsize,
                               tiling=tiling)
        whole["y"], whole["x"] = tiles["y"], tiles["x"]
    default = tuple(whole[d] for d in dims)
    if chunks is None:
        return default
    if isinstance(chunks, Mapping):
        return tuple(chunks.get(d, dflt) for d, dflt in zip(dims, default, strict=True))
    return chunks


def _dim_chunks(dim, spec, n, default):
    from dask.array.core import normalize_chunks

    if spec is None or (isinstance(spec, str) and spec == "auto"):
        return default
    if isinstance(spec, Integral) and not isinstance(spec, bool):
        spec = n if spec == -1 else int(spec)
        if spec <= 0 and n:
            raise ParameterError(f"chunk size for {dim!r} must be positive or -1, got {spec}")
    try:
        (out,) = normalize_chunks((spec,), shape=(n,))
    except (ValueError, TypeError) as exc:
        raise ParameterError(f"invalid chunks for {dim!r} (length {n}): {spec!r}: {exc}") from exc
    return tuple(int(c) for c in out)


def resolve_chunks(chunks, attrs, shape, extra_dims=None, tiling=None):
    """Chunk sizes per dimension from a user's ``chunks`` argument.

    Parameters
    ----------
    chunks : None, "auto" or dict
        ``None``, ``"auto"`` or ``{}``: :func:`default_chunks`. A dict maps
        dimension names to an int (``-1``: the whole axis), a tuple of sizes,
        or ``None``/``"auto"`` (the default for that dimension); dimensions it
        leaves out keep their default.
    attrs : dict
        Exposure attributes (see :func:`default_chunks`).
    shape : tuple of int
        ``(nints, ngroups, ny, nx)``.
    extra_dims : dict, optional
        Other dimensions a dataset has (name -> length, e.g. ``refout_x``);
        their default is one chunk.
    tiling : detflow.tiling.Tiling, optional
        The run's tile sizes (see :func:`default_chunks`).

    Returns
    -------
    dict
        Dimension name -> tuple of chunk sizes.

    Raises
    ------
    ParameterError
        An unknown dimension name or an invalid chunk specification.
    """
    defaults = default_chunks(attrs, shape, tiling=tiling)
    sizes = dict(zip(DIMS, (int(n) for n in shape), strict=True))
    for dim, n in (extra_dims or {}).items():
        sizes[dim] = int(n)
        defaults[dim] = (int(n),) if n else (0,)
    if chunks is None or (isinstance(chunks, str) and chunks == "auto"):
        return defaults
    if not isinstance(chunks, dict):
        raise ParameterError(
            f"chunks must be None, 'auto' or a dict by dimension name {tuple(sizes)}, "
            f"got {chunks!r}"
        )
    unknown = set(chunks) - set(sizes)
    if unknown:
        raise ParameterError(
            f"chunks name unknown dimensions {sorted(map(str, unknown))}; "
            f"the dimensions are {tuple(sizes)}"
        )
    return {dim: _dim_chunks(dim, chunks.get(dim), sizes[dim], defaults[dim]) for dim in sizes}
