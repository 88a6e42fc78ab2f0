"""Tiles with a halo of neighbour pixels, one task per tile.

:func:`dask.array.map_overlap` makes a haloed copy of every tile as a task result of its
own (plus slicing, concatenation and trimming tasks): with amplifier-sized tiles that is
several tasks and one more copy of the whole exposure held in memory between steps.
:func:`map_halo` instead gives each tile's task the neighbouring tiles themselves (task
results already in memory, no copies) and assembles the haloed tile inside the task,
where it lives only while the kernel runs. The result is the same as ``map_overlap``
with the same halo and boundary, whatever the chunking (tiles smaller than the halo
are merged up for the call and split back).

The layer is built with Dask's documented custom-graph API: a dict of tuple tasks
(``(func, *args)``, keys as arguments) given to
:meth:`dask.highlevelgraph.HighLevelGraph.from_collections` and wrapped in a
:class:`dask.array.Array` -- public interfaces, unlike ``dask._task_spec`` (used only
through :mod:`detflow.runtime.taskspec`). Every halo step's test builds it.
"""

import itertools
from functools import partial

import dask.array as da
import numpy as np
from dask.array.overlap import ensure_minimum_chunksize
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

__all__ = ["map_halo"]


def _block_index(out_index, arr, nd_out):
    """The block of ``arr`` (trailing dimensions aligned with the output's) that goes
    with output block ``out_index``; one-block axes broadcast."""
    lead = nd_out - arr.ndim
    return tuple(0 if arr.numblocks[k] == 1 else out_index[lead + k] for k in range(arr.ndim))


def _assemble(grid, sides, halo, fill):
    """The haloed tile from a 3 x 3 grid of blocks (None where there is no neighbour).

    ``sides``: halo rows/columns actually taken (top, bottom, left, right); ``fill``:
    the value beyond the exposure, or None for no halo there (``sides`` then 0).
    """
    hy, hx = halo
    center = grid[1][1]
    ny, nx = center.shape[-2:]
    top, bottom, left, right = sides
    if fill is not None:
        top = bottom = hy
        left = right = hx
    out = np.empty(center.shape[:-2] + (ny + top + bottom, nx + left + right), center.dtype)
    rows = ((0, top, slice(-top, None) if top else slice(0, 0)), (top, ny, slice(None)),
            (top + ny, bottom, slice(0, bottom)))
    cols = ((0, left, slice(-left, None) if left else slice(0, 0)), (left, nx, slice(None)),
            (left + nx, right, slice(0, right)))
    for (r0, nr, rs), row in zip(rows, grid, strict=True):
        if not nr:
            continue
        for (c0, nc, cs), block in zip(cols, row, strict=True):
            if not nc:
                continue
            target = out[..., r0:r0 + nr, c0:c0 + nc]
            if block is None:
                target[...] = fill
            else:
                target[...] = block[..., rs, cs]
    return out


def _halo_task(func, halo, fill, trim, sides, ngrids, *args):
    arrays = [_assemble(g, sides, halo, fill) for g in args[:ngrids]]
    result = func(*arrays, *args[ngrids:])
    if not trim:
        return result
    top, bottom, left, right = (halo[0], halo[0], halo[1], halo[1]) if fill is not None \
        else sides
    ny, nx = result.shape[-2] - top - bottom, result.shape[-1] - left - right
    return np.ascontiguousarray(result[..., top:top + ny, left:left + nx])


def map_halo(func, *arrays, halo, boundary="none", trim=False, dtype, meta, extras=(),
             name=None, **kwargs):
    """Apply ``func`` to every tile of ``arrays`` with ``halo`` neighbour pixels.

    Parameters
    ----------
    func : callable
        ``func(*haloed_tiles, **kwargs)``; gets each array's tile with up to ``hy`` rows
        and ``hx`` columns of neighbours on each side, and returns the tile of the result
        (``trim=False``) or the haloed result, whose core is kept (``trim=True``).
    *arrays : dask.array.Array
        The last two axes are ``y, x`` with the same chunks in every array (the first
        array's; others are rechunked to them); leading axes are aligned from the right,
        as in :func:`dask.array.map_blocks` (an axis in one block is broadcast). The
        result has the first array's chunks.
    halo : int or (int, int)
        ``hy, hx``.
    boundary : "none" or number
        ``"none"``: no halo beyond the array's edge (the edge tile gets a smaller one);
        a number: the halo beyond the edge is filled with it.
    trim : bool
    dtype, meta
        Of the result.
    extras : sequence of dask.array.Array
        Small arrays passed whole (one chunk, no halo) to every call, after the tiles.
    name : str, optional
        Prefix of the result's key.

    Returns
    -------
    dask.array.Array
    """
    hy, hx = (halo, halo) if np.isscalar(halo) else (int(halo[0]), int(halo[1]))
    fill = None if boundary == "none" else boundary
    first = arrays[0]
    orig = first.chunks
    yc = ensure_minimum_chunksize(max(hy, 1), orig[-2]) if hy else orig[-2]
    xc = ensure_minimum_chunksize(max(hx, 1), orig[-1]) if hx else orig[-1]
    arrays = [a.rechunk({a.ndim - 2: yc, a.ndim - 1: xc}) for a in arrays]
    extras = [e.rechunk(-1) for e in extras]
    extra_keys = [(e.name,) + (0,) * e.ndim for e in extras]
    first = arrays[0]
    nd = first.ndim
    nby, nbx = len(yc), len(xc)
    prefix = name or getattr(func, "__name__", "halo")
    out_name = f"{prefix}-halo-" + tokenize(func, *arrays, *extras, halo, boundary, trim, kwargs)
    call = partial(func, **kwargs) if kwargs else func
    layer = {}
    for idx in itertools.product(*(range(n) for n in first.numblocks)):
        by, bx = idx[-2], idx[-1]
        # every tile is at least the halo (merged above), so a neighbour gives it whole
        sides = (hy if by > 0 else 0, hy if by < nby - 1 else 0,
                 hx if bx > 0 else 0, hx if bx < nbx - 1 else 0)
        grids = []
        for a in arrays:
            base = _block_index(idx, a, nd)
            grid = []
            for dy in (-1, 0, 1):
                row = []
                for dx in (-1, 0, 1):
                    ny_, nx_ = by + dy, bx + dx
                    wanted = (dy == 0 or hy) and (dx == 0 or hx)
                    if wanted and 0 <= ny_ < nby and 0 <= nx_ < nbx:
                        row.append((a.name,) + base[:-2] + (ny_, nx_))
                    else:
                        row.append(None)
                grid.append(row)
            grids.append(grid)
        layer[(out_name,) + idx] = (
            partial(_halo_task, call, (hy, hx), fill, trim, sides, len(grids)), *grids,
            *extra_keys)
    graph = HighLevelGraph.from_collections(out_name, layer, dependencies=[*arrays, *extras])
    result = da.Array(graph, out_name, chunks=first.chunks, dtype=dtype, meta=meta)
    if result.chunks[-2:] != orig[-2:]:
        result = result.rechunk({nd - 2: orig[-2], nd - 1: orig[-1]})
    return result
