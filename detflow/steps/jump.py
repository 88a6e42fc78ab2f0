"""jump: cosmic-ray jump detection with the GAIN and READNOISE references (jwst ``JumpStep``).

What runs where (all lazy; see :mod:`detflow.kernels.jump` for the arithmetic):

1. a small reduction: which ``(integration, group)`` planes are DO_NOT_USE in every pixel
   (this picks stcal's regime: sigma clip, single pass or iterative, or no detection);
2. one task per tile (:func:`~detflow.kernels.jump.detect_finish_tile`): detection
   (the medians are per pixel over integrations and differences, so a tile holds every
   integration and group of its pixels) on the tile and a one-pixel halo (the rows and
   columns of the neighbour tiles along its sides, passed as small separate arrays so
   the tile is not copied into a bigger one; none at the region's edges), then the
   four-neighbour flags, the after-jump flags and stcal's JUMP clean-up of the tile, and
   its primary cosmic-ray count -- the statistics are computed once;
3. only where sigma clipping is possible (``nints >= minimum_sigclip_groups``, or
   ``only_use_ints`` off): :func:`~detflow.kernels.jump.detect_tile` blockwise, a
   reduction of the planes that came out all JUMP|DNU (stcal resets their JUMP-only
   pixels), then :func:`~detflow.kernels.jump.finish_tile` with a one-pixel halo
   (``map_overlap``) instead of step 2;
4. the after-jump thresholds use the median gain of the exposure (a small reduction);
5. snowballs (``expand_large_events``): one task per integration over the whole
   region -- an ellipse around a connected region can reach ``max_extended_radius``
   pixels and a region has no size limit, so a tile cannot be exact. Only the uint8
   group DQ of one integration is gathered (2048 x 2048 x ngroups bytes on a full frame);
6. showers (``find_showers``, MIRI, off by default): stcal's search needs sigma-clipped
   statistics over all integrations and whole planes, so it runs on the **whole
   exposure in one task** (a documented exception to the chunk contract). Its memory
   bound: that task's peak is about 8x the exposure's float32 SCI (measured with
   tracemalloc on the simulated LRS time series, SLITLESSPRISM 8 groups: 7.6x at 20
   integrations, 6.5x at 80), i.e. ~2.4 GB per 300 MB of ramp; a time series too long
   for one worker is run segment by segment, as the files come;
7. ``primary_cosmic_rays`` / ``extended_emission_events`` (jwst's PRIMECRS / EXTNCRS,
   ``meta.exposure``) from small reductions. They cannot be plain ``attrs`` without
   computing, so they are lazy 0-d variables of the output Dataset (NaN where jwst leaves
   them unset); :func:`~detflow.steps.base.scalars_to_attrs` moves them to ``attrs``
   once computed.

``maximum_cores`` is accepted for compatibility; the result is always jwst's
single-core one (the multi-core path of stcal 1.20 treats slice borders differently).
jwst 3.0.0 quirks kept on purpose: ``minimum_groups`` is forced to 3 on the single-core
path, and the MIRI shower amplitude limit is stcal's default (6 DN/s x TGROUP), not the
step's ``max_shower_amplitude``.
"""

from functools import partial

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from detflow import dqflags
from detflow.contract import DIMS
from detflow.kernels import jump as kj
from detflow.kernels import jump_events as kje
from detflow.steps.base import Param, StepDef, as_float32, dask_array, record
from detflow.tiling import Tiling

#: Output 0-d variables holding jwst's ``meta.exposure`` rates, and their attrs names.
SCALARS = ("primary_cosmic_rays", "extended_emission_events")



def _flags():
    flags = {name: getattr(dqflags, name) for name in kj.FLAG_NAMES if name != "GOOD"}
    flags["GOOD"] = dqflags.GOOD
    return flags


def _split(chunks, size):
    """Split every chunk of ``chunks`` into pieces of at most ``size``."""
    out = []
    for c in chunks:
        while c > size:
            out.append(size)
            c -= size
        if c:
            out.append(c)
    return tuple(out)


def working_chunks(ychunks, xchunks, nints, ngroups, limit, itemsize=4):
    """Spatial chunks for tiles holding every integration and group (at most ``limit``
    bytes each: the run's :attr:`Tiling.working_bytes <detflow.tiling.Tiling>`), refining
    the input's ``y`` chunks."""
    widest = max(xchunks) if xchunks else 1
    rows = max(1, int(limit // max(1, nints * ngroups * widest * itemsize)))
    return _split(ychunks, rows), tuple(xchunks)



def _small4(arr):
    """A small array (``(nints, ngroups)`` planes, or 0-d) as a one-chunk 4-D block argument
    that broadcasts onto every tile: a positional argument of ``map_blocks``, so the graph
    shares its keys (a Dask collection in keyword arguments would be computed again in a
    nested graph of its own, upstream steps included)."""
    if arr is None:
        return None
    return arr.reshape(arr.shape + (1,) * (4 - arr.ndim)).rechunk(-1)


def _plane(arr4):
    """Back from :func:`_small4`: ``(nints, ngroups)`` (or None)."""
    return None if arr4 is None else arr4[:, :, 0, 0]


def _scalar(arr4):
    """Back from :func:`_small4` for a 0-d value (or None)."""
    return None if arr4 is None else arr4.reshape(())[()]


def _plane_all(arr4, mask):
    """``(nints, ngroups)`` bool: ``arr & mask`` is set in every pixel of the plane."""
    return ((arr4 & mask) != 0).all(axis=(2, 3)).rechunk(-1)


def _snowball_block(gdq_int, settings, flags):
    return kje.snowballs_integration(gdq_int, settings, flags)


def _shower_block(data, gdq_in, gdq, pdq, gain, rn, plane_dnu4, settings, flags):
    plane_dnu = _plane(plane_dnu4)
    skip = kj.plane_counts(plane_dnu, settings, flags)["skip"]
    return kje.showers_exposure(data, gdq_in, gdq, pdq, gain, rn, skip, settings, flags)


def _pick(block, index):
    return block[index]


def _pick_plane(block, index):
    return block[index][:, None]


def _pick_count(block, index, ndim):
    return np.full((1,) * ndim, block[index], dtype=np.int64)


def _number_crs(count, plane_dnu, settings, flags):
    return -99 if kj.plane_counts(plane_dnu, settings, flags)["skip"] else int(count)


def _rates(count, plane_dnu, n_extended, plane_dnu_out, settings, flags, group_time, npix):
    number = _number_crs(count, plane_dnu, settings, flags)
    return kje.cosmic_ray_rates(number, int(n_extended), plane_dnu_out, group_time, npix)


def _gain_median(gain):
    return np.asarray(np.nanmedian(gain)).reshape(())


def apply(ds, refs, params, tiling=None):
    """Lazy jump detection.

    Parameters
    ----------
    ds : xarray.Dataset
        Exposure with ``data`` ``(nints, ngroups, ny, nx)``, ``groupdq``, ``pixeldq``.
    refs : dict
        ``gain`` and ``readnoise``: Datasets with ``sci`` ``(ny, nx)`` on the exposure's
        region.
    params : dict
        Every JumpStep parameter (jwst names).
    tiling : detflow.tiling.Tiling, optional
        The run's tile sizes: its working tiles hold at most ``working_bytes`` bytes
        (default :class:`~detflow.tiling.Tiling`'s).

    Returns
    -------
    xarray.Dataset
        ``groupdq`` with JUMP_DET (and snowball/shower flags), ``pixeldq`` with
        NO_GAIN_VALUE|DO_NOT_USE where the gain is <= 0 or NaN, 0-d float64 variables
        :data:`SCALARS`; SKIPPED (data untouched) when ``ngroups <= 2``.
    """
    out = as_float32(ds)
    nints, ngroups = out.sizes["integration"], out.sizes["group"]
    if ngroups <= 2:
        return record(out, STEP, "SKIPPED", params)
    attrs = out.attrs
    settings = kj.jump_settings(params, attrs["nframes"], attrs["group_time"])
    flags = _flags()
    dnu = np.uint8(dqflags.DO_NOT_USE)

    data_xr = out["data"].transpose(*DIMS)
    gdq_xr = out["groupdq"].transpose(*DIMS)
    in_chunks = gdq_xr.data.chunks if isinstance(gdq_xr.data, da.Array) else (
        (1,) * nints, (ngroups,), (out.sizes["y"],), (out.sizes["x"],))
    yc, xc = working_chunks(in_chunks[2], in_chunks[3], nints, ngroups,
                            (tiling or Tiling()).working_bytes)
    chunks4 = (nints, ngroups, yc, xc)
    data = dask_array(data_xr, chunks=chunks4).astype(np.float32)
    gdq = dask_array(gdq_xr, chunks=chunks4).astype(np.uint8)
    gain = dask_array(refs["gain"]["sci"], ("y", "x"), chunks=(yc, xc)).astype(np.float32)
    rn = dask_array(refs["readnoise"]["sci"], ("y", "x"), chunks=(yc, xc)).astype(np.float32)
    meta4 = np.empty((0, 0, 0, 0), dtype=np.uint8)

    plane_dnu = _plane_all(gdq, dnu)

    gain_median = None
    if settings["after_jump_flag_n1"] > 0 or settings["after_jump_flag_n2"] > 0:
        gain_median = da.map_blocks(_gain_median, gain.rechunk(-1), drop_axis=[0, 1],
                                    dtype=np.float32, meta=np.empty((), dtype=np.float32))

    halo = STEP.halo if settings["flag_4_neighbors"] else 0
    sigma_clip_possible = not (settings["only_use_ints"]
                               and nints < settings["minimum_sigclip_groups"])
    if sigma_clip_possible:
        gdq_out, count = _detect_then_finish(data, gdq, gain, rn, plane_dnu, gain_median,
                                             halo, settings, flags, yc, xc)
    else:
        gdq_out, count = _detect_and_finish(data, gdq, gain, rn, plane_dnu, gain_median,
                                            halo, settings, flags, chunks4)
    n_extended = da.zeros((), dtype=np.int64)

    if settings["expand_large_events"]:
        gdq_out, n_extended = _snowballs(gdq_out, settings, flags, chunks4)

    pixeldq = da.map_blocks(kj.bad_gain_pixeldq,
                            dask_array(out["pixeldq"].transpose("y", "x"), chunks=(yc, xc)), gain,
                            flags=flags, dtype=np.uint32,
                            meta=np.empty((0, 0), dtype=np.uint32))

    if settings["find_showers"]:
        whole = da.map_blocks(
            _shower_block, data.rechunk(-1), gdq.rechunk(-1), gdq_out.rechunk(-1),
            pixeldq.rechunk(-1), gain.rechunk(-1), rn.rechunk(-1), _small4(plane_dnu),
            settings=settings, flags=flags, dtype=object,
            meta=np.empty((0, 0, 0, 0), dtype=object))
        gdq_out = da.map_blocks(_pick, whole, 0, dtype=np.uint8, meta=meta4).rechunk(chunks4)
        n_extended = da.map_blocks(_pick_count, whole, 1, 4, dtype=np.int64,
                                   chunks=((1,), (1,), (1,), (1,)),
                                   meta=np.empty((0, 0, 0, 0), dtype=np.int64)).sum()

    rates = da.blockwise(
        _rates, "r", count, "", plane_dnu, "ij", n_extended, "", _plane_all(gdq_out, dnu), "ij",
        new_axes={"r": 2}, concatenate=True, dtype=np.float64,
        meta=np.empty((0,), dtype=np.float64), settings=settings, flags=flags,
        group_time=float(attrs["group_time"]), npix=int(out.sizes["y"] * out.sizes["x"]))

    out["groupdq"] = gdq_xr.copy(data=gdq_out.rechunk(in_chunks)).transpose(
        *out["groupdq"].dims)
    pdq_xr = out["pixeldq"].transpose("y", "x")
    pdq_chunks = pdq_xr.data.chunks if isinstance(pdq_xr.data, da.Array) else (yc, xc)
    out["pixeldq"] = pdq_xr.copy(data=pixeldq.rechunk(pdq_chunks)).transpose(
        *out["pixeldq"].dims)
    for k, name in enumerate(SCALARS):
        out[name] = ((), rates[k])
    return record(out, STEP, "COMPLETE", params)


def _tile_edges(*tiles):
    """The first and last row and the first and last column of each tile, for the
    neighbouring tiles' halo: ``((top, bottom, left, right), ...)``, small copies (the
    tile itself is not kept alive by them)."""
    return tuple((t[..., :1, :].copy(), t[..., -1:, :].copy(),
                  t[..., :, :1].copy(), t[..., :, -1:].copy()) for t in tiles)


def _fused_tile(data, gdq, gain, rn, plane_dnu4, gain_median4, above, below, left, right, *,
                halo, settings, flags):
    """:func:`~detflow.kernels.jump.detect_finish_tile` on one tile, with the edges of the
    neighbouring tiles (:func:`_tile_edges`; None where there is none) as its halo."""
    tiles = (data, gdq, gain, rn)
    sides = tuple(halo if n is not None else 0 for n in (above, below, left, right))
    edges = None
    if halo:
        # per array: the row above and the row below the tile, then the columns to its
        # left and right (the tile's own where it has no neighbour: never read)
        rows = tuple(np.concatenate([above[k][1] if above is not None else t[..., :1, :],
                                     below[k][0] if below is not None else t[..., -1:, :]],
                                    axis=-2) for k, t in enumerate(tiles))
        cols = tuple(np.concatenate([left[k][3] if left is not None else t[..., :, :1],
                                     right[k][2] if right is not None else t[..., :, -1:]],
                                    axis=-1) for k, t in enumerate(tiles))
        edges = rows + cols
    return kj.detect_finish_tile(data, gdq, gain, rn, _plane(plane_dnu4), settings, flags,
                                 gain_median=_scalar(gain_median4), halo=sides, edges=edges)


def _detect_block(data, gdq, gain, rn, plane_dnu4, settings, flags):
    return kj.detect_tile(data, gdq, gain, rn, _plane(plane_dnu4), settings, flags)


def _finish_block(data, det, gain, rn, plane_dnu4, clear4, gain_median4, settings, flags,
                  use_median):
    return kj.finish_tile(data, det, gain, rn, _plane(plane_dnu4), _plane(clear4), settings,
                          flags, gain_median=_scalar(gain_median4) if use_median else None)


def _count_block(det, clear4, flags):
    return kj.primary_count(det, _plane(clear4), flags)


def _detect_and_finish(data, gdq, gain, rn, plane_dnu, gain_median, halo, settings, flags,
                       chunks4):
    """Detection and post-processing in one task per tile (no sigma clipping possible).

    Each task gets its tile and, with neighbour flagging, the rows and columns of
    the neighbour tiles along its sides (the halo, detected too so its jumps can flag the
    tile's pixels; small arrays, so the tile is never copied into a bigger one), and
    returns the tile's final group DQ and its primary cosmic-ray count. Returns the
    group DQ ``(nints, ngroups, ny, nx)`` and the lazy count.
    """
    nints, ngroups, yc, xc = chunks4
    arrays = (data, gdq, gain, rn)
    nby, nbx = len(yc), len(xc)
    ones = ((1,), (1,), (1,) * nby, (1,) * nbx)
    small = [a for a in (_small4(plane_dnu), _small4(gain_median)) if a is not None]
    deps = [*arrays, *small]
    edges = None
    if halo and nby * nbx > 1:
        # one small task per tile cuts its four edges out of all four arrays; each tile's
        # task then takes its neighbours' edges (not their tiles)
        edges = da.map_blocks(_tile_edges, *arrays, chunks=ones, dtype=object,
                              meta=np.empty((0, 0, 0, 0), dtype=object))
        deps.append(edges)
    name = "jump-tile-" + tokenize(*deps, halo, settings, flags)
    call = partial(_fused_tile, halo=halo, settings=settings, flags=flags)
    plane_key = (small[0].name, 0, 0, 0, 0)
    median_key = (small[1].name, 0, 0, 0, 0) if gain_median is not None else None

    def neighbour(by, bx):
        if edges is None or not (0 <= by < nby and 0 <= bx < nbx):
            return None
        return (edges.name, 0, 0, by, bx)

    layer = {}
    for by in range(nby):
        for bx in range(nbx):
            layer[(name, 0, 0, by, bx)] = (
                call, (data.name, 0, 0, by, bx), (gdq.name, 0, 0, by, bx),
                (gain.name, by, bx), (rn.name, by, bx), plane_key, median_key,
                neighbour(by - 1, bx), neighbour(by + 1, bx), neighbour(by, bx - 1),
                neighbour(by, bx + 1))
    # (Dask's documented custom-graph API, as in detflow.steps.halo)
    graph = HighLevelGraph.from_collections(name, layer, dependencies=deps)
    blocks = da.Array(graph, name, chunks=ones, dtype=object,
                      meta=np.empty((0, 0, 0, 0), dtype=object))
    gdq_out = da.map_blocks(_pick, blocks, 0, chunks=((nints,), (ngroups,), yc, xc),
                            dtype=np.uint8, meta=np.empty((0, 0, 0, 0), dtype=np.uint8))
    count = da.map_blocks(_pick_count, blocks, 1, 4, chunks=ones, dtype=np.int64,
                          meta=np.empty((0, 0, 0, 0), dtype=np.int64)).sum()
    return gdq_out, count


def _detect_then_finish(data, gdq, gain, rn, plane_dnu, gain_median, halo, settings, flags,
                        yc, xc):
    """Detection, the sigma-clip plane clearing (a reduction over the detection of the
    whole exposure), then post-processing with a halo (``map_overlap``).

    Returns the group DQ ``(nints, ngroups, ny, nx)`` and the lazy primary count.
    """
    dnu, jump_bit = np.uint8(dqflags.DO_NOT_USE), np.uint8(dqflags.JUMP_DET)
    meta4 = np.empty((0, 0, 0, 0), dtype=np.uint8)
    plane_dnu4 = _small4(plane_dnu)
    det = da.map_blocks(_detect_block, data, gdq, gain, rn, plane_dnu4, settings=settings,
                        flags=flags, dtype=np.uint8, meta=meta4)
    plane_jd = _plane_all(det, dnu | jump_bit)
    clear = da.map_blocks(kj.clear_planes, plane_dnu, plane_jd, settings=settings,
                          flags=flags, dtype=bool, meta=np.empty((0, 0), dtype=bool))
    use_median = gain_median is not None
    median4 = _small4(gain_median if use_median else da.zeros((), dtype=np.float32))
    small = (plane_dnu4, _small4(clear), median4)
    finish_kwargs = dict(settings=settings, flags=flags, use_median=use_median,
                         dtype=np.uint8, meta=meta4)
    if halo:
        d4 = {0: 0, 1: 0, 2: halo, 3: halo}
        d2 = {0: halo, 1: halo}
        depth = [d4, d4, d2, d2] + [{0: 0, 1: 0, 2: 0, 3: 0}] * len(small)
        gdq_out = da.map_overlap(_finish_block, data, det, gain, rn, *small, depth=depth,
                                 boundary="none", **finish_kwargs)
    else:
        gdq_out = da.map_blocks(_finish_block, data, det, gain, rn, *small, **finish_kwargs)
    counts = da.map_blocks(_count_block, det, _small4(clear), flags=flags, drop_axis=[0, 1],
                           chunks=((1,) * len(yc), (1,) * len(xc)), dtype=np.int64,
                           meta=np.empty((0, 0), dtype=np.int64))
    return gdq_out, counts.sum()


def _snowballs(gdq4, settings, flags, chunks4):
    """Snowball flags, one whole integration per task, then the saturated cores of
    integration ``i`` into groups ``1 .. persist_grps_flagged - 1`` of integration ``i+1``.

    Returns the new group DQ ``(nints, ngroups, ny, nx)`` and the lazy snowball count.
    """
    nints, ngroups, ny, nx = gdq4.shape
    per_int = gdq4.rechunk((1, ngroups, ny, nx))
    blocks = da.map_blocks(_snowball_block, per_int, settings=settings, flags=flags,
                           dtype=object, meta=np.empty((0, 0, 0, 0), dtype=object))
    gdq = da.map_blocks(_pick, blocks, 0, dtype=np.uint8,
                        meta=np.empty((0, 0, 0, 0), dtype=np.uint8))
    # (no drop_axis on object blocks: dask would try to concatenate them)
    persist = da.map_blocks(_pick_plane, blocks, 1, chunks=((1,) * nints, (1,), (ny,), (nx,)),
                            dtype=np.uint8, meta=np.empty((0, 0, 0, 0), dtype=np.uint8))[:, 0]
    count = da.map_blocks(_pick_count, blocks, 2, 4, dtype=np.int64,
                          chunks=((1,) * nints, (1,), (1,), (1,)),
                          meta=np.empty((0, 0, 0, 0), dtype=np.int64)).sum()
    if settings["mask_snowball_core_next_int"] and settings["persist_grps_flagged"] >= 1 \
            and nints > 1:
        last = min(settings["persist_grps_flagged"], ngroups)
        previous = da.concatenate(
            [da.zeros((1, ny, nx), dtype=np.uint8, chunks=(1, ny, nx)), persist[:-1]], axis=0)
        groups = np.arange(ngroups)
        in_window = da.from_array(((groups >= 1) & (groups < last))[None, :, None, None])
        gdq = gdq | da.where(in_window, previous[:, None], np.uint8(0)).astype(np.uint8)
    return gdq.rechunk(chunks4), count


def _references_needed(ds, params):
    """jwst skips a ramp of 2 groups or fewer before it reads GAIN and READNOISE."""
    return () if ds.sizes["group"] <= 2 else ("gain", "readnoise")


STEP = StepDef(
    __name__,
    references_needed=_references_needed,
    params={
        "rejection_threshold": Param("float", 4.0, "CR sigma rejection threshold", minimum=0),
        "three_group_rejection_threshold": Param("float", 6.0, "CR sigma rejection threshold",
                                                 minimum=0),
        "four_group_rejection_threshold": Param("float", 5.0, "CR sigma rejection threshold",
                                                minimum=0),
        "maximum_cores": Param("string", "1", "cores for multiprocessing (detflow: the "
                               "single-core result always; Dask does the parallelism)"),
        "flag_4_neighbors": Param("boolean", True, "flag the four perpendicular neighbors of "
                                  "each CR"),
        "max_jump_to_flag_neighbors": Param("float", 1000.0, "maximum jump sigma that will "
                                            "trigger neighbor flagging"),
        "min_jump_to_flag_neighbors": Param("float", 10.0, "minimum jump sigma that will "
                                            "trigger neighbor flagging"),
        "after_jump_flag_dn1": Param("float", 0.0, "1st flag groups after jump above DN "
                                     "threshold"),
        "after_jump_flag_time1": Param("float", 0.0, "1st flag groups after jump groups within "
                                       "specified time"),
        "after_jump_flag_dn2": Param("float", 0.0, "2nd flag groups after jump above DN "
                                     "threshold"),
        "after_jump_flag_time2": Param("float", 0.0, "2nd flag groups after jump groups within "
                                       "specified time"),
        "expand_large_events": Param("boolean", False, "Turns on Snowball detector for NIR "
                                     "detectors"),
        "min_sat_area": Param("float", 1.0, "minimum required area for the central saturation "
                              "of snowballs"),
        "min_jump_area": Param("float", 5.0, "minimum area to trigger large events processing"),
        "expand_factor": Param("float", 2.0, "The expansion factor for the enclosing circles or "
                               "ellipses"),
        "use_ellipses": Param("boolean", False, "deprecated"),
        "sat_required_snowball": Param("boolean", True, "Require the center of snowballs to be "
                                       "saturated"),
        "min_sat_radius_extend": Param("float", 2.5, "The min radius of the sat core to trigger "
                                       "the extension of the core"),
        "sat_expand": Param("integer", 2, "Number of pixels to add to the radius of the "
                            "saturated core of snowballs"),
        "edge_size": Param("integer", 25, "Distance from detector edge where a saturated core "
                           "is not required for snowball detection"),
        "mask_snowball_core_next_int": Param("boolean", True, "Flag saturated cores of "
                                             "snowballs in the next integration?"),
        "snowball_time_masked_next_int": Param("integer", 4000, "Time in seconds over which "
                                               "saturated cores are flagged in next integration"),
        "find_showers": Param("boolean", False, "Apply MIRI shower flagging?"),
        "max_shower_amplitude": Param("float", 4.0, "Maximum MIRI shower amplitude in DN/s "
                                      "(unused by jwst 3.0.0, see the module notes)"),
        "extend_snr_threshold": Param("float", 1.2, "The SNR minimum for detection of extended "
                                      "showers in MIRI"),
        "extend_min_area": Param("integer", 90, "Min area of emission after convolution for "
                                 "the detection of showers"),
        "extend_inner_radius": Param("float", 1.0, "Inner radius of the ring_2D_kernel used for "
                                     "convolution"),
        "extend_outer_radius": Param("float", 2.6, "Outer radius of the ring_2D_Kernel used for "
                                     "convolution"),
        "extend_ellipse_expand_ratio": Param("float", 1.1, "Expand the radius of the ellipse "
                                             "fit to the extended emission"),
        "time_masked_after_shower": Param("float", 15.0, "Seconds to flag as jump after a "
                                          "detected extended emission"),
        "min_diffs_single_pass": Param("integer", 10, "The minimum number of differences "
                                       "needed to skip the iterative flagging of jumps."),
        "max_extended_radius": Param("integer", 200, "The maximum radius of an extended "
                                     "snowball or shower"),
        "minimum_groups": Param("integer", 3, "The minimum number of groups to perform jump "
                                "detection using sigma clipping"),
        "minimum_sigclip_groups": Param("integer", 100, "The minimum number of groups to switch "
                                        "to sigma clipping"),
        "only_use_ints": Param("boolean", True, "In sigclip only compare the same group across "
                               "ints, if False compare all groups"),
    },
    apply=apply,
    halo=1,
    tiled=True,
)
