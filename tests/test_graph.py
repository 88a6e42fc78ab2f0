"""The pipeline's graph: every intermediate is computed once.

Dask computes a collection passed to ``map_blocks``/``map_overlap`` as a *keyword*
argument in a nested graph of its own, under new keys: everything upstream of it is
computed a second time (in jwst's order that was the whole exposure's ramp up to the
jump step, twice the work and memory). Steps pass small arrays as positional,
broadcasting arguments instead; these tests keep it that way for every regime.
"""

import math

import pytest

from detflow.io.exposure import open_exposure
from detflow.pipeline.builder import build_detector1

NESTED = "finalize-hlgfinalizecompute"  # the key prefix of a nested collection's graph


def _graph(sim, params, chunks=None):
    from dask.base import collections_to_expr

    ds = open_exposure(sim.uncal, chunks=chunks)
    refs_dir = next(iter(sim.refs.values())).parent
    res = build_detector1(ds, step_params=params, refs_dir=str(refs_dir))
    objs = [res[k] for k in ("rate", "rateints", "fitopt", "dark_output") if res[k] is not None]
    assert objs, "the pipeline built no product"
    return dict(collections_to_expr(objs, optimize_graph=False).__dask_graph__())


def _names(graph):
    return {k[0] if isinstance(k, tuple) else k for k in graph}


def _check(graph, ds_chunks):
    nested = sorted(k for k in _names(graph) if NESTED in str(k))
    assert not nested, f"collections computed in nested graphs: {nested[:3]}"
    # the raw ramp is read once per tile, not once per consumer; besides the tiles,
    # only refpix's reference lines (at most 8 rows and 8 columns) are read again
    reads = {}
    for key, task in graph.items():
        if isinstance(key, tuple) and str(key[0]).startswith("detflow-read-data"):
            box = task.args[1].value  # getter(image, slices)
            reads.setdefault(key[0], []).append(box)
    n_tiles = 1
    for c in ds_chunks:
        n_tiles *= len(c)
    ni, ng, ny, nx = (sum(c) for c in ds_chunks)

    def pixels(boxes):
        return sum(math.prod(s.stop - s.start for s in box) for box in boxes)

    tiles = [name for name, boxes in reads.items() if len(boxes) == n_tiles
             and pixels(boxes) == ni * ng * ny * nx]
    assert len(tiles) == 1, {name: len(boxes) for name, boxes in reads.items()}
    again = sum(pixels(boxes) for name, boxes in reads.items() if name != tiles[0])
    assert again <= ni * ng * 8 * (ny + nx), (again, ni * ng * ny * nx)


JUMP_OPTIONS = {
    "after_jump_flag_dn1": 10.0, "after_jump_flag_time1": 100.0,
    "after_jump_flag_dn2": 1000.0, "after_jump_flag_time2": 300.0,
}


@pytest.mark.parametrize("params", [
    {},
    {"jump": {**JUMP_OPTIONS, "expand_large_events": True}},
    {"jump": {**JUMP_OPTIONS, "find_showers": True, "flag_4_neighbors": False}},
    {"jump": JUMP_OPTIONS, "charge_migration": {"skip": False},
     "persistence": {"skip": False}, "dark_current": {"dark_output": "dark.fits"},
     "ramp_fit": {"save_opt": True}},
], ids=["defaults", "snowballs", "showers", "optional-steps"])
def test_no_nested_graphs_single_pass(sim_nircam_sub640, params):
    ds = open_exposure(sim_nircam_sub640.uncal, chunks={"y": 100, "x": 77})
    _check(_graph(sim_nircam_sub640, params, chunks={"y": 100, "x": 77}),
           ds["data"].data.chunks)


def test_no_nested_graphs_sigma_clip(sim_nircam_tso):
    # 20 integrations >= minimum_sigclip_groups: the regime whose plane clearing
    # reduces over the whole exposure's detection
    params = {"jump": {**JUMP_OPTIONS, "minimum_sigclip_groups": 20}}
    ds = open_exposure(sim_nircam_tso.uncal)
    _check(_graph(sim_nircam_tso, params), ds["data"].data.chunks)
