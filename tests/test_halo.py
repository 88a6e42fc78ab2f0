"""map_halo (one task per tile, neighbours assembled in the task) gives what
dask.array.map_overlap gives, for any chunking, boundary and extra arguments."""

import dask.array as da
import numpy as np
import pytest

from detflow.steps.halo import map_halo


def _stencil(a, b):
    # depends on neighbours up to 2 rows and 1 column away, unevenly
    return a * 2 + b + np.roll(a, 1, axis=-1) - np.roll(a, -2, axis=-2)


@pytest.mark.parametrize("chunks", [
    (1, 3, 10, 9),                      # many tiles
    (2, 3, 37, 41),                     # one tile
    (1, 3, (30, 5, 2), (1, 20, 20)),    # uneven, tiles smaller than the halo
])
@pytest.mark.parametrize("boundary", ["none", 0, -1.5])
def test_map_halo_equals_map_overlap(chunks, boundary):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 37, 41)).astype(np.float32)
    y = rng.normal(size=(37, 41)).astype(np.float32)
    xa, ya = da.from_array(x, chunks=chunks), da.from_array(y, chunks=chunks[2:])
    ref = da.map_overlap(_stencil, xa, ya, depth=[{0: 0, 1: 0, 2: 2, 3: 1}, {0: 2, 1: 1}],
                         boundary=boundary, trim=True, dtype=np.float32).compute()
    got = map_halo(_stencil, xa, ya, halo=(2, 1), boundary=boundary, trim=True,
                   dtype=np.float32, meta=np.empty((0,) * 4, dtype=np.float32))
    assert got.chunks == xa.chunks
    np.testing.assert_array_equal(got.compute(), ref)


def test_map_halo_untrimmed_result_and_extras():
    """A kernel that returns its tile's core (trim=False) and takes a small whole array."""
    x = np.arange(20 * 30, dtype=np.float64).reshape(20, 30)
    w = np.array([1.0, 2.0, 3.0])

    def core_sum(tile, weights):  # 3-point horizontal stencil, halo 1 column
        return (weights[0] * tile[1:-1, :-2] + weights[1] * tile[1:-1, 1:-1]
                + weights[2] * tile[1:-1, 2:])

    xa = da.from_array(x, chunks=(7, 11))
    got = map_halo(core_sum, xa, halo=1, boundary=0, extras=(da.from_array(w),),
                   dtype=np.float64, meta=np.empty((0, 0)))
    padded = np.pad(x, 1)
    expected = core_sum(padded, w)
    np.testing.assert_array_equal(got.compute(), expected)


def test_map_halo_builds_one_task_per_tile():
    xa = da.zeros((4, 64, 64), chunks=(4, 32, 16))
    out = map_halo(lambda t: t, xa, halo=1, trim=True, dtype=xa.dtype,
                   meta=np.empty((0, 0, 0)))
    layer = out.__dask_graph__().layers[out.name]
    assert len(layer) == 2 * 4
