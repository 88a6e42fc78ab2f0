"""emicorr: MIRI EMI correction (jwst ``EmiCorrStep``, ``emicorr/emicorr.py``; skipped by
default).

The EMICORR reference (an ASDF ``EmiModel``, opened by the io layer into
``attrs["frequencies"]`` and ``attrs["subarray_cases"]``) gives, for the exposure's
subarray (``FULL_FAST``/``FULL_SLOW`` for full frame) and read speed, the row and frame
clocks and the frequencies to correct, each with a reference waveform. Frequencies are
corrected one after the other, each on the data corrected for the ones before.

SKIPPED, as jwst: not MIRI; a read pattern other than FAST, FASTR1, SLOW, SLOWR1; no
EMICORR reference (N/A) and no ``onthefly_corr_freq``; fewer than 3 groups; no subarray
case or no frequency for the configuration. ``algorithm='joint'`` without a reference
(``onthefly_corr_freq`` given) falls back to ``sequential``, as jwst does.

``joint`` (the default): see :mod:`detflow.kernels.emicorr`. ``sequential``: per
integration a line fit and a median "superbias" removed, the four outputs averaged, each
frame's median removed, the phased values binned with sigma-clipped means over the first
``nints_to_phase`` integrations (from ``use_n_cycles``), then the reference waveform
phased against the bins by cross-correlation (optionally scaled, ``scale_reference``) or
the bins themselves (on the fly) subtracted through a look-up table.

Chunk contract
--------------
Working tiles hold all groups and whole rows (``x`` is joined if the input splits it);
integration and row bands are kept, and the result is rechunked back to the input's
chunks. The tasks are written as one task layer (one task per tile and stage; Delayed
calls would merge and cull the graph at every call, quadratic in the number of tiles).
Per frequency, ``joint`` is:

1. blockwise: the standard deviation over groups (float32);
2. two reductions of 65536-bin histograms of those values' bit patterns (tree sums of
   integers, fan-in 8) give their exact global median; no task holds more than one tile;
3. the phase sums: per integration tile, a fold over its row bands in row order, each
   task adding one band to ``(nints_tile, nphases, ngroups)`` float64 accumulators
   (``nphases`` = the reference wave's length, ~40 kB per integration for 500 phases and
   10 groups): the additions are jwst's, in jwst's order, so the sums are jwst's bits
   whatever the tiling; integration tiles fold in parallel. The row bands of one
   integration tile are summed one after the other (the fold is sequential by design);
4. the fit: per integration tile, its chi-squared terms at the 500 trial phases (numba,
   ``(3, 500, nints_tile)``); one small task sums them over integrations in order (jwst's
   sequential sums) and finds the best phase; per tile again, the terms at that phase;
   one small task gives the amplitudes;
5. blockwise: the subtraction.

``sequential``, per frequency: blockwise, the cleaned quad-averaged frames of the first
``nints_to_phase`` integrations (a line fit and median over groups per pixel, the four
outputs averaged: ``(ngroups, ny_tile, nx//4)`` float32 per tile); one task then holds
those integrations' whole frames, ``nints_to_phase * ngroups * ny * nx//4`` values in
float32 plus twice that in float64 for the phases and values (the per-frame median
and the sigma-clipped mean per phase bin need all of a frame and all values of a bin;
with the default ``use_n_cycles=3`` ``nints_to_phase`` is 1 or a few: for a full frame
of 10 groups, ~55 MB); the look-up table comes from it; the subtraction is blockwise.

``user_supplied_reffile`` (deprecated in jwst) names the reference as jwst takes it: it
wins over ``override_emicorr``. Not supported: ``save_intermediate_results`` (the
on-the-fly reference file jwst writes; steps write no files here, it is recorded only).
"""

import logging

import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from detflow.contract import DIMS
from detflow.errors import ParameterError, ReferenceFileError
from detflow.kernels import emicorr as kernel
from detflow.steps.base import Param, StepDef, as_float32, dask_array, record

log = logging.getLogger(__name__)

ALLOWED_READPATTS = ("FAST", "FASTR1", "SLOW", "SLOWR1")


# --------------------------------------------------------------------------
# What jwst decides before any arithmetic
# --------------------------------------------------------------------------

def _nsamples(ds, readpatt):
    """NSAMPLES (1 for FAST, 9 for SLOW in MIRI exposures). jwst needs the keyword; an
    exposure without it gets the read pattern's value, with a warning."""
    for header in (ds.attrs.get("primary_header") or {}, ds.attrs.get("sci_header") or {}):
        value = header.get("NSAMPLES")
        if value is not None:
            return int(value)
    if ds.attrs.get("nsamples") is not None:
        return int(ds.attrs["nsamples"])
    guess = 9 if "SLOW" in readpatt else 1
    log.warning("NSAMPLES missing from the exposure; using %d for %s", guess, readpatt)
    return guess


def subarray_case(ref_attrs, subarray, readpatt, detector):
    """jwst's ``get_subarcase``: ``(rowclocks, frameclocks, frequency names)``, each None
    where the reference has no match."""
    readpatt = readpatt.upper()
    if "SLOW" in readpatt:
        speed = "SLOW"
    elif "FAST" in readpatt:
        speed = "FAST"
    else:
        return None, None, None
    subname = f"{subarray}_{speed}" if "FULL" in subarray else subarray
    case = (ref_attrs.get("subarray_cases") or {}).get(subname)
    if not isinstance(case, dict) or "rowclocks" not in case:
        return None, None, None
    rowclocks = case.get("rowclocks")
    frameclocks = case.get("frameclocks")
    freqs = (case.get("freqs") or {}).get(speed)
    if speed == "SLOW" and isinstance(freqs, dict):
        freqs = freqs.get(detector)
    elif speed == "SLOW":
        freqs = None
    return rowclocks, frameclocks, (list(freqs) if freqs is not None else None)


def _plan(ds, refs, params):
    """``(reason, plan)``: why jwst skips, or what it runs."""
    if str(ds.attrs.get("instrument") or "").upper() != "MIRI":
        return f"EMI correction not implemented for instrument: {ds.attrs.get('instrument')}", None
    readpatt = str(ds.attrs.get("readpatt") or "")
    if readpatt.upper() not in ALLOWED_READPATTS:
        return f"EMI correction not implemented for read pattern: {readpatt}", None
    onthefly = params.get("onthefly_corr_freq")
    ref = None if onthefly is not None else refs.get("emicorr")
    if onthefly is None and ref is None:
        return "No reference file found", None
    ngroups = ds.sizes["group"]
    if ngroups < 3:
        return f"EMI correction cannot be performed for ngroups={ngroups}", None
    algorithm = params["algorithm"]
    if ngroups < 10 and algorithm == "sequential":
        log.warning("The 'sequential' algorithm is selected and ngroups=%d; 'joint' is "
                    "recommended for ngroups < 10.", ngroups)
    if algorithm == "joint" and ref is None:
        log.warning("The 'joint' algorithm cannot be used without an EMICORR reference file."
                    "  Setting the algorithm to 'sequential'.")
        algorithm = "sequential"
    subarray = str(ds.attrs.get("subarray") or "")
    detector = str(ds.attrs.get("detector") or "")
    freqs, waves, names = [], [], []
    rowclocks = frameclocks = None
    if ref is not None:
        rowclocks, frameclocks, names = subarray_case(ref.attrs, subarray, readpatt, detector)
        for name in names or []:
            entry = (ref.attrs.get("frequencies") or {}).get(name)
            if not isinstance(entry, dict):
                raise ReferenceFileError(
                    "EMICORR", ds.attrs.get("source") or "",
                    f"{ref.attrs.get('filename')} has no frequency {name!r}, which its "
                    f"subarray case for {subarray} {readpatt} names")
            freqs.append(entry["frequency"])
            waves.append(np.array(entry["phase_amplitudes"]))
    else:
        subname = subarray
        if subname == "FULL":
            subname += "_FAST" if "FAST" in readpatt.upper() else "_SLOW"
        if subname in kernel.SUBARRAY_CLOCKS:
            rowclocks = kernel.SUBARRAY_CLOCKS[subname]["rowclocks"]
            frameclocks = kernel.SUBARRAY_CLOCKS[subname]["frameclocks"]
            freqs = list(onthefly)
            names = [repr(f) for f in onthefly]
    if rowclocks is None or len(freqs) == 0:
        return "No correction match for this configuration", None
    log.info("Correcting %s %s %s for %d frequencies %s with algorithm '%s'", subarray,
             readpatt, detector, len(freqs), names, algorithm)
    return "", {
        "algorithm": algorithm, "readpatt": readpatt.upper(), "rowclocks": rowclocks,
        "frameclocks": frameclocks, "freqs": freqs, "waves": waves, "names": names,
        "nsamples": _nsamples(ds, readpatt),
    }


# --------------------------------------------------------------------------
# joint, as a graph
# --------------------------------------------------------------------------

def _sum_arrays(*arrays):
    return np.sum(np.stack(arrays), axis=0)


class _Graph:
    """The step's tasks as one plain task dict (one layer): building them as Delayed
    calls merges and culls the growing graph at every call, quadratic in the tiles."""

    def __init__(self, token):
        self.token = token
        self.dsk = {}

    def add(self, prefix, index, func, *args):
        key = (f"emicorr-{prefix}-{self.token}",) + tuple(index)
        self.dsk[key] = (func, *args)
        return key

    def tree_sum(self, prefix, keys, fan=8):
        """The sum of the integer arrays at ``keys``, as a tree of small tasks (exact)."""
        level = 0
        while len(keys) > 1:
            keys = [self.add(f"{prefix}{level}", (n,), _sum_arrays, *keys[i:i + fan])
                    for n, i in enumerate(range(0, len(keys), fan))]
            level += 1
        return keys[0]

    def threshold(self, prefix, std_keys):
        """jwst's ``2 * np.median(pixel_std)`` (float32), from two histogram reductions
        over the blocks of the standard deviations."""
        hist = self.tree_sum(f"{prefix}hist", [
            self.add(f"{prefix}h", (n,), kernel.std_key_histogram, k)
            for n, k in enumerate(std_keys)])
        plan = self.add(f"{prefix}plan", (), kernel.median_plan, hist)
        low = self.tree_sum(f"{prefix}low", [
            self.add(f"{prefix}l", (n,), kernel.std_low_histogram, k, plan)
            for n, k in enumerate(std_keys)])
        return self.add(f"{prefix}threshold", (), kernel.median_threshold, plan, low)


def _sums_task(acc, data, std, pixeldq, threshold, y0, nphases, geom):
    if acc is None:
        nints, ngroups = data.shape[:2]
        acc = (np.zeros((nints, nphases, ngroups)), np.zeros((nints, nphases)))
    rows = np.arange(y0, y0 + data.shape[2])
    phase = kernel.phase_rows(rows, data.shape[3] // 4, geom["rowclocks"], geom["nsamples"],
                              geom["period"])
    return kernel.phase_sums(acc, data, std, pixeldq, threshold,
                             kernel.phase_bins(phase, nphases))


def _terms_task(tables, acc, i0, dphase_frame):
    ints = np.arange(i0, i0 + acc[0].shape[0])
    return kernel.chisq_terms(tables, acc[0], acc[1], ints, dphase_frame)


def _best_task(tables, terms, separately):
    return kernel.best_phases(tables, np.concatenate(terms, axis=2), separately)


def _terms_best_task(tables, acc, i0, dphase_frame, best, separately):
    ints = np.arange(i0, i0 + acc[0].shape[0])
    return kernel.chisq_terms(tables, acc[0], acc[1], ints, dphase_frame,
                              trials=kernel.best_trials(best, separately, i0, ints[-1] + 1))


def _fit_task(tables, terms, best, nints, dphase_frame, separately):
    phases, amplitudes = kernel.fit_from_terms(tables, np.concatenate(terms, axis=2), best,
                                               nints, dphase_frame, separately)
    return list(phases), list(amplitudes)


def _subtract_task(data, fit, refwave, dphase, geom, i0, y0):
    phase = kernel.phase_rows(np.arange(y0, y0 + data.shape[2]), data.shape[3] // 4,
                              geom["rowclocks"], geom["nsamples"], geom["period"])
    phases, amplitudes = fit
    i1 = i0 + data.shape[0]
    return kernel.subtract_joint(data, phase, refwave, dphase, phases[i0:i1],
                                 amplitudes[i0:i1])


def _starts(chunks):
    return np.concatenate([[0], np.cumsum(chunks)[:-1]]).astype(int).tolist()


def _joint(graph, blocks, chunks, pdq_keys, plan, params):
    """The joint algorithm for every frequency, as tasks of ``graph``.

    ``blocks`` is an object array ``(nbi, nby)`` of the keys of float32 tiles
    ``(nints_tile, ngroups, ny_tile, nx)`` (whole groups and rows), ``chunks`` their
    integration and row chunks, ``pdq_keys`` the ``(ny_tile, nx)`` pixel DQ tiles per row
    band. Returns the keys of the corrected tiles in the same layout.
    """
    ngroups, ny = chunks[1], sum(chunks[2])
    frameclocks = plan["frameclocks"] if plan["readpatt"] in ("FASTR1", "SLOWR1") else 0
    i_starts, y_starts = _starts(chunks[0]), _starts(chunks[2])
    nbi, nby = blocks.shape
    for f, (freq, refwave) in enumerate(zip(plan["freqs"], plan["waves"], strict=True)):
        period = kernel.period_in_pixels(freq)
        geom = {"rowclocks": plan["rowclocks"], "nsamples": plan["nsamples"],
                "period": period}
        dphase, dphase_frame = kernel.joint_geometry(ny, ngroups, plan["rowclocks"],
                                                     frameclocks, period)
        std = np.empty(blocks.shape, dtype=object)
        for ci in range(nbi):
            for yb in range(nby):
                std[ci, yb] = graph.add(f"std{f}", (ci, yb), kernel.pixel_std, blocks[ci, yb])
        threshold = graph.threshold(f"f{f}", std.ravel().tolist())
        accs = []
        for ci in range(nbi):
            acc = None
            for yb in range(nby):  # the rows in order: jwst's additions
                acc = graph.add(f"sums{f}", (ci, yb), _sums_task, acc, blocks[ci, yb],
                                std[ci, yb], pdq_keys[yb], threshold, y_starts[yb],
                                len(refwave), geom)
            accs.append(acc)
        # the fit: the chi-squared terms of each integration tile in parallel, the sums
        # over integrations (in order) and the best phase in small tasks
        separately = bool(params["fit_ints_separately"])
        tables = graph.add(f"tables{f}", (), kernel.fit_tables, refwave, dphase, ngroups)
        terms = [graph.add(f"terms{f}", (ci,), _terms_task, tables, accs[ci], i_starts[ci],
                           dphase_frame) for ci in range(nbi)]
        best = graph.add(f"best{f}", (), _best_task, tables, terms, separately)
        at_best = [graph.add(f"terms_best{f}", (ci,), _terms_best_task, tables, accs[ci],
                             i_starts[ci], dphase_frame, best, separately)
                   for ci in range(nbi)]
        fit = graph.add(f"fit{f}", (), _fit_task, tables, at_best, best, sum(chunks[0]),
                        dphase_frame, separately)
        new = np.empty(blocks.shape, dtype=object)
        for ci in range(nbi):
            for yb in range(nby):
                new[ci, yb] = graph.add(f"sub{f}", (ci, 0, yb, 0), _subtract_task,
                                        blocks[ci, yb], fit, refwave, dphase, geom,
                                        i_starts[ci], y_starts[yb])
        blocks = new
    return blocks


def _nints_to_phase(params, nints, ngroups, period, frameclocks):
    """jwst's number of integrations phased (its first-frequency value; the slice caps it
    at ``nints`` for the later ones, as jwst's own cap does)."""
    ntp, cycles = params.get("nints_to_phase"), params.get("use_n_cycles")
    if ntp is None and cycles is None:
        ntp = nints
    elif ntp is None:
        ntp = int(np.ceil((cycles * period) / (frameclocks * ngroups)))
    return min(int(ntp), nints)


def _seq_geometry(ds, plan, ny, ngroups, period):
    xsize = int(ds.attrs.get("subsize1") or ds.sizes["x"])
    xstart = int(ds.attrs.get("substrt1") or 1)
    return {"ngroups": ngroups, "ny": ny, "rowclocks": plan["rowclocks"],
            "frameclocks": plan["frameclocks"],
            "r1": plan["readpatt"] in ("FASTR1", "SLOWR1"), "nsamples": plan["nsamples"],
            "period": period, "colstop": int(xsize / 4 + xstart - 1)}


def _seq_phase(geom, ints, rows, nx4):
    return kernel.sequential_phase(ints, geom["ngroups"], rows, nx4, geom["ny"],
                                   geom["rowclocks"], geom["frameclocks"], geom["r1"],
                                   geom["nsamples"], geom["period"], geom["colstop"])


def _clean_task(data, i):
    return kernel.sequential_clean(data[i])


def _lut_task(dd_rows, geom, nbins, refwave, scale_reference):
    """The look-up table from the cleaned tiles ``dd_rows[i][yb]`` of the phased
    integrations (whole frames: the frame medians and the sigma clipping need them)."""
    dd = np.stack([np.concatenate(tiles, axis=1) for tiles in dd_rows])
    phase = _seq_phase(geom, np.arange(dd.shape[0]), np.arange(dd.shape[2]), dd.shape[3])
    lut, _ = kernel.sequential_lut(dd, phase, geom["period"], nbins, refwave,
                                   scale_reference)
    return lut


def _seq_subtract_task(data, lut, geom, i0, y0):
    phase = _seq_phase(geom, np.arange(i0, i0 + data.shape[0]),
                       np.arange(y0, y0 + data.shape[2]), data.shape[3] // 4)
    return kernel.subtract_lut(data, phase, lut, geom["period"])


def _sequential(graph, blocks, chunks, ds, plan, params):
    """The sequential algorithm for every frequency, as tasks of ``graph`` (layout as
    :func:`_joint`)."""
    nints, ngroups, ny = sum(chunks[0]), chunks[1], sum(chunks[2])
    i_starts, y_starts = _starts(chunks[0]), _starts(chunks[2])
    nbi, nby = blocks.shape
    waves = plan["waves"] or [None] * len(plan["freqs"])
    ntp = None
    for f, (freq, refwave) in enumerate(zip(plan["freqs"], waves, strict=True)):
        period = kernel.period_in_pixels(freq)
        if ntp is None:
            ntp = _nints_to_phase(params, nints, ngroups, period, plan["frameclocks"])
        geom = _seq_geometry(ds, plan, ny, ngroups, period)
        dd_rows = []
        for i in range(ntp):
            ci = int(np.searchsorted(i_starts, i, side="right") - 1)
            dd_rows.append([graph.add(f"clean{f}", (i, yb), _clean_task, blocks[ci, yb],
                                      i - i_starts[ci]) for yb in range(nby)])
        lut = graph.add(f"lut{f}", (), _lut_task, dd_rows, geom, params.get("nbins"), refwave,
                        bool(params["scale_reference"]))
        new = np.empty(blocks.shape, dtype=object)
        for ci in range(nbi):
            for yb in range(nby):
                new[ci, yb] = graph.add(f"sub{f}", (ci, 0, yb, 0), _seq_subtract_task,
                                        blocks[ci, yb], lut, geom, i_starts[ci], y_starts[yb])
        blocks = new
    return blocks


# --------------------------------------------------------------------------
# The step
# --------------------------------------------------------------------------

def _float_list(value):
    """``onthefly_corr_freq`` as floats (a list, or a comma-separated string)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [v for v in value.replace("[", "").replace("]", "").split(",") if v.strip()]
    try:
        return [float(v) for v in value]
    except (TypeError, ValueError):
        raise ParameterError(f"emicorr.onthefly_corr_freq={value!r} must be a list of "
                             "frequencies (Hz)") from None


def _references_needed(ds, params):
    return () if params.get("onthefly_corr_freq") is not None else ("emicorr",)


def apply(ds, refs, params):
    """Lazy EMI correction (see the module docstring), or SKIPPED."""
    params = {**params, "onthefly_corr_freq": _float_list(params.get("onthefly_corr_freq"))}
    out = as_float32(ds)
    reason, plan = _plan(ds, refs, params)
    if reason:
        log.warning("EMICORR step will be skipped: %s", reason)
        return record(out, STEP, "SKIPPED", params, reason=reason)
    data = dask_array(out["data"], DIMS)
    work = data.rechunk({1: -1, 3: -1})
    chunks = (work.chunks[0], work.shape[1], work.chunks[2])
    blocks = np.empty((len(chunks[0]), len(chunks[2])), dtype=object)
    for ci in range(blocks.shape[0]):
        for yb in range(blocks.shape[1]):
            blocks[ci, yb] = (work.name, ci, 0, yb, 0)
    pixeldq = dask_array(out["pixeldq"], ("y", "x")).rechunk((work.chunks[2], -1))
    pdq_keys = [(pixeldq.name, yb, 0) for yb in range(len(chunks[2]))]
    token = tokenize(work.name, pixeldq.name, plan, ds.attrs.get("subsize1"),
                     ds.attrs.get("substrt1"), sorted((k, repr(v)) for k, v in params.items()))
    graph = _Graph(token)
    if plan["algorithm"] == "joint":
        blocks = _joint(graph, blocks, chunks, pdq_keys, plan, params)
    else:
        blocks = _sequential(graph, blocks, chunks, ds, plan, params)
    name = blocks[0, 0][0]
    hlg = HighLevelGraph.from_collections(name, graph.dsk, dependencies=[work, pixeldq])
    work = da.Array(hlg, name, work.chunks, dtype=np.float32,
                    meta=np.empty((0, 0, 0, 0), dtype=np.float32))
    if work.chunks != data.chunks:
        work = work.rechunk(data.chunks)
    out["data"] = xr.DataArray(work, dims=DIMS, coords=out["data"].coords,
                               attrs=out["data"].attrs).transpose(*ds["data"].dims)
    return record(out, STEP, "COMPLETE", params,
                  algorithm=plan["algorithm"], frequencies=list(plan["names"]))


STEP = StepDef(
    __name__,
    params={
        "algorithm": Param("option", "joint", "EMI fitting algorithm",
                           options=("sequential", "joint")),
        "nints_to_phase": Param("integer", None, "Number of integrations to phase"),
        "nbins": Param("integer", None, "Number of bins in one phased wave"),
        "scale_reference": Param("boolean", True, "If True, the reference wavelength will be "
                                 "scaled to the data's phase amplitude"),
        "onthefly_corr_freq": Param("float_list", None, "Frequencies to use for correction"),
        "use_n_cycles": Param("integer", 3, "Use N cycles to calculate the phase, to use all "
                              "integrations set to None"),
        "fit_ints_separately": Param("boolean", False, "If True and algorithm is 'joint', "
                                     "each integration is separately fit."),
        "user_supplied_reffile": Param("string", None, "Deprecated; use 'override_emicorr' "
                                       "instead"),
        "save_intermediate_results": Param("boolean", False, "If True and a reference file is "
                                           "created on the fly, save it to disk"),
    },
    references_needed=_references_needed,
    reference_parameters={"user_supplied_reffile": "override_emicorr"},
    apply=apply,
)
