"""Realistic simulated JWST exposures with a consistent set of reference files.

``simulate("nircam", outdir)`` writes

* ``outdir/<root>_uncal.fits`` -- a level-1b raw exposure (``uint16`` SCI of
  shape ``(nints, ngroups, ny, nx)``, ZEROFRAME when the read pattern has one,
  REFOUT (MIRI), INT_TIMES and GROUP tables, every keyword detector1 needs);
* ``outdir/refs/`` -- MASK, SATURATION, SUPERBIAS (NIR), LINEARITY, DARK, GAIN,
  READNOISE, IPC (NIR), RESET and RSCD (MIRI) in the JWST reference formats;
* ``outdir/<root>_truth.fits`` -- the noiseless count rate (DN/s) a perfect
  calibration recovers (extension ``SCI``; sky and sources, dark excluded);
* ``outdir/manifest.json`` -- one entry per exposure simulated into ``outdir``
  (``"exposures": {"<root>_uncal.fits": {facts, "references": {reftype: file}}}``,
  merged, so simulations sharing a folder keep each other's), and the latest
  simulation's facts and references at the top (the older single-exposure form).

MIRI: the imager's subarrays (BRIGHTSKY, SUB256, SUB128, SUB64, SLITLESSPRISM, MASK1065,
MASK1140, MASK1550, MASKLYOT) at their real corners, with frame times from the MIRI readout
clocks; FAST, FASTR1, SLOW, SLOWR1 and the frame-averaging FASTGRPAVG{,8,16,32,64}
patterns; one segment of a long (TSO) exposure (``segment=``, INTSTART > 1); and
cosmic-ray showers (``showers=``). Example::

    simulate("miri", "tso", subarray="SLITLESSPRISM", readpatt="FASTR1", ngroups=20,
             nints=300, segment=2, ints_per_segment=100)   # ..._00001-seg002_mirimage

Several simulations may share a folder: the reference files carry the seed in
their names (``jwst_nircam_gain_nrca1_s2.fits``), a seed other than 1 is in the
default root (``jw01234001001_01101_00001_nrca1_s2``), and
:func:`detflow.io.references.resolve_reference` takes an exposure's references from its
manifest entry before it searches ``refs/``, so each exposure is calibrated with
its own references whatever else the folder holds.

The physics is in :mod:`detflow.simulator.physics`.
"""

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detflow.errors import ParameterError
from detflow.io.atomic import atomic_path
from detflow.io.references import MANIFEST_NAME
from detflow.simulator import emi as emi_module
from detflow.simulator import physics
from detflow.simulator.instruments import DETECTORS

__all__ = ["simulate", "SimulatedExposure"]

REF_USEAFTER = "2022-01-01T00:00:00"
AVDRKCUR_CHOICES = ("scalar", "map", "both", "none")
REF_SHAPE_CHOICES = ("full", "subarray")
DQ_DEF_CHOICES = ("standard", "compressed", "none")
MJD_START = 60300.25


@dataclass
class SimulatedExposure:
    """What :func:`simulate` wrote."""

    uncal: Path
    truth: Path
    refs: dict  # reftype -> Path
    manifest: Path
    seconds: float

    def overrides(self):
        """``override_<reftype>`` keyword arguments for jwst or detflow steps."""
        return {f"override_{k.lower()}": str(v) for k, v in self.refs.items()}


def simulate(
    instrument,
    outdir,
    *,
    subarray="FULL",
    readpatt=None,
    ngroups=10,
    nints=1,
    seed=1,
    snowballs=2,
    zeroframe=None,
    root=None,
    avdrkcur="scalar",
    ref_shape="full",
    dq_def="standard",
    gain_factor=None,
    segment=None,
    ints_per_segment=None,
    showers=False,
    emi=False,
):
    """Simulate one exposure and its reference files into ``outdir``.

    Parameters
    ----------
    instrument : {"nircam", "miri"}
    outdir : str or Path
    subarray : str
        ``FULL``, ``SUB640``, ``SUB320``, ``SUB160``, ``SUB160P`` (at SUBSTRT 1889,
        1889), ``SUBGRISM64``, ``SUBGRISM128`` (NIRCam); ``FULL``, ``BRIGHTSKY``,
        ``SUB256``, ``SUB128``, ``SUB64``, ``SLITLESSPRISM``, ``MASK1065``, ``MASK1140``,
        ``MASK1550``, ``MASKLYOT`` (MIRI imager, real corners and sizes, frame times from
        the MIRI readout clocks: :data:`detflow.simulator.instruments.MIRI_SUBARRAYS`).
    readpatt : str, optional
        Read pattern (default ``RAPID`` for NIRCam, ``FAST`` for MIRI). MIRI: ``FAST``,
        ``FASTR1``, ``SLOW``, ``SLOWR1`` (full frame only, as MIRI reads subarrays FAST;
        SLOW frames take 23.89 s), ``FASTGRPAVG`` (NFRAMES 4), ``FASTGRPAVG8`` ...
        ``FASTGRPAVG64`` (NFRAMES 8 ... 64; the LINEARITY's INV_COEFFS then serve jwst's
        read-level correction).
    ngroups, nints : int
        ``nints`` is the whole exposure's NINTS, also when one segment is written.
    seed : int
        Seeds the scene, noise and cosmic rays; the detector maps (and so the
        reference files) depend on the seed too.
    snowballs : int
        Number of large cosmic-ray events (snowballs) to inject.
    zeroframe : bool, optional
        Write a ZEROFRAME extension (default: NIRCam patterns with NFRAMES > 1).
    root : str, optional
        File root name (default a JWST-like name for the detector, with ``_s<seed>``
        appended when ``seed`` is not 1, so simulations of several seeds into one
        folder do not overwrite each other's exposure).
    avdrkcur : {"scalar", "map", "both", "none"}
        How the DARK carries the average dark current (e-/s), as CRDS darks do: the
        ``AVDRKCUR`` keyword (``meta.exposure.average_dark_current``), a 2-D
        ``AVDRKCUR`` extension, both, or neither (older files).
    ref_shape : {"full", "subarray"}
        Full-frame references (cut by jwst with SUBSTRT/SUBSIZE), or references in the
        science subarray's shape and corner (as CRDS has for some subarrays). The DARK
        (and MIRI's RESET) always have the science shape: jwst never cuts them.
    dq_def : {"standard", "compressed", "none"}
        The ``DQ_DEF`` table of the references with DQ (MASK, SATURATION, SUPERBIAS,
        LINEARITY, DARK, RESET): the standard JWST bit values (as CRDS files carry),
        compressed bit planes (``VALUE`` = 1, 2, 4, ... in the file, translated to the
        standard flags by ``NAME`` on reading, as stdatamodels does), or no table.
    gain_factor : float, optional
        Written as the GAIN file's ``GAINFACT`` (``meta.exposure.gain_factor``, which
        NIRSpec IRS2 gain files carry): ramp_fit copies it into the products and
        gain_scale multiplies the rates by it (the truth stays unscaled). Default: none,
        as NIRCam and MIRI gain files have, and gain_scale is skipped.
    segment : int, optional
        Write only segment ``segment`` (1-based) of the exposure, as the JWST ground system
        splits long (time-series) exposures: integrations INTSTART = ``(segment - 1) *
        ints_per_segment + 1`` to INTEND (NINTS stays the whole exposure's), EXSEGNUM and
        EXSEGTOT, the INT_TIMES and GROUP rows of those integrations, and the JWST name
        ``jw..._00001-seg002_<detector>``. The data are exactly those integrations of the
        unsegmented exposure (the earlier ones are simulated, not written): the MIRI reset
        anomaly and RSCD of integrations after the first, the references unchanged.
    ints_per_segment : int, optional
        Integrations per segment (default: as many as keep a segment's SCI under 2 GiB).
    showers : bool or int
        MIRI cosmic-ray showers: faint clouds of charge tens of pixels across (see
        :func:`detflow.simulator.physics._showers`). ``True`` draws a Poisson number at
        :data:`~detflow.simulator.physics.SHOWER_RATE_FULL` scaled to the subarray and the
        exposure's duration; an integer injects exactly that many. The manifest lists
        them. Default none (jwst finds them only with ``find_showers``, off by default).

    emi : bool
        MIRI: add electromagnetic interference at the real MIRI frequencies (10 Hz on the
        full frame, 390.625 Hz and 10 Hz on subarrays), read at the times jwst's emicorr
        models (:func:`detflow.simulator.emi.inject_emi`), and write the matching
        EMICORR reference (an ASDF ``EmiModel``, ``refs/jwst_miri_emicorr_*.asdf``) for
        the emicorr step (skipped by default, as in jwst). The truth has no EMI.

    Returns
    -------
    SimulatedExposure
    """
    t0 = time.perf_counter()
    key = str(instrument).lower()
    if key not in DETECTORS:
        raise ParameterError(
            f"unknown instrument {instrument!r}; choose one of {sorted(DETECTORS)}"
        )
    det = DETECTORS[key]
    readpatt = (readpatt or ("FAST" if det.is_miri else "RAPID")).upper()
    if readpatt not in det.readpatts:
        raise ParameterError(
            f"read pattern {readpatt!r} is not a {det.instrument} pattern; "
            f"choose one of {sorted(det.readpatts)}"
        )
    subarray = subarray.upper()
    if subarray not in det.subarrays:
        raise ParameterError(
            f"subarray {subarray!r} is not simulated for {det.instrument}; "
            f"choose one of {sorted(det.subarrays)}"
        )
    ngroups, nints = int(ngroups), int(nints)
    if ngroups < 1 or nints < 1:
        raise ParameterError("ngroups and nints must be at least 1")
    for name, value, choices in (("avdrkcur", avdrkcur, AVDRKCUR_CHOICES),
                                 ("ref_shape", ref_shape, REF_SHAPE_CHOICES),
                                 ("dq_def", dq_def, DQ_DEF_CHOICES)):
        if value not in choices:
            raise ParameterError(f"{name}={value!r}: choose one of {', '.join(choices)}")
    if gain_factor is not None and not (np.isfinite(gain_factor) and gain_factor > 0):
        raise ParameterError(f"gain_factor={gain_factor!r}: give a positive number")
    sub = det.subarrays[subarray]
    if det.is_miri and readpatt.startswith("SLOW") and sub.name != "FULL":
        raise ParameterError(
            f"read pattern {readpatt} with subarray {sub.name}: MIRI reads subarrays FAST "
            "only; use FAST, FASTR1 or a FASTGRPAVG pattern (or the FULL array)"
        )
    seg = _segment_range(segment, ints_per_segment, nints, ngroups, sub)
    nshowers = _shower_count(showers, det, sub, readpatt, ngroups, nints, seed)
    outdir = Path(outdir)
    refdir = outdir / "refs"
    refdir.mkdir(parents=True, exist_ok=True)
    if root is None:
        exposure = "00001" if seg is None else f"00001-seg{seg['number']:03d}"
        root = f"jw01234001001_01101_{exposure}_{det.detector.lower()}"
        if det.is_miri:
            root = f"jw01234002001_01101_{exposure}_mirimage"
        if seed != 1:
            root = f"{root}_s{seed}"

    maps = physics.make_detector_maps(det, seed)
    sim = physics.simulate_ramps(
        det, sub, readpatt, ngroups, nints, seed, maps, snowballs=snowballs, zeroframe=zeroframe,
        integrations=None if seg is None else (seg["intstart"] - 1, seg["intend"]),
        showers=nshowers,
    )

    if emi:
        if not det.is_miri:
            raise ParameterError("emi=True: EMI is simulated for MIRI only")
        sim["sci"] = emi_module.inject_emi(
            sim["sci"], subarray=sub.name, readpatt=readpatt,
            first_integration=0 if seg is None else seg["intstart"] - 1)

    uncal = outdir / f"{root}_uncal.fits"
    _write_uncal(uncal, det, sub, readpatt, ngroups, nints, sim, seg=seg)
    truth = outdir / f"{root}_truth.fits"
    _write_truth(truth, sim["truth"], det, sub)
    refs = _write_references(refdir, det, sub, maps, sim, ngroups, nints, seed,
                             avdrkcur=avdrkcur, ref_shape=ref_shape, dq_def=dq_def,
                             gain_factor=gain_factor, readpatt=readpatt)
    if emi:
        path = refdir / f"jwst_miri_emicorr_{det.detector.lower()}_s{seed}.asdf"
        model = emi_module.emi_model()
        with atomic_path(path) as tmp:  # stdatamodels picks the format by the suffix
            model.save(str(tmp.with_suffix(".asdf")))
            tmp.with_suffix(".asdf").replace(tmp)
        model.close()
        refs["EMICORR"] = path

    manifest = outdir / MANIFEST_NAME  # (what detflow.io.references reads)
    content = {
        "instrument": det.instrument,
        "detector": det.detector,
        "subarray": sub.name,
        "readpatt": readpatt,
        "ngroups": ngroups,
        "nints": nints,
        "seed": seed,
        "uncal": uncal.name,
        "truth": truth.name,
        "cosmic_ray_hits": int(sim["ncr"]),
        "references": {k: str(Path("refs") / v.name) for k, v in refs.items()},
    }
    if seg is not None:
        content.update(segment=seg["number"], segments=seg["total"], intstart=seg["intstart"],
                       intend=seg["intend"])
    if showers:
        content["showers"] = sim["showers"]
    if emi:
        content["emi"] = True
    _write_manifest(manifest, content)
    return SimulatedExposure(uncal, truth, refs, manifest, time.perf_counter() - t0)


def _segment_range(segment, ints_per_segment, nints, ngroups, sub):
    """``{number, total, intstart, intend}`` (1-based, inclusive) of one segment, or None."""
    if segment is None:
        if ints_per_segment is not None:
            raise ParameterError("ints_per_segment needs segment (the segment to write)")
        return None
    if ints_per_segment is None:
        # as DMS segments long exposures: files of at most about 2 GiB of SCI
        ints_per_segment = max(1, (2 << 30) // (ngroups * sub.ysize * sub.xsize * 2))
    try:
        segment, per = int(segment), int(ints_per_segment)
    except (TypeError, ValueError):
        raise ParameterError(
            f"segment={segment!r}, ints_per_segment={ints_per_segment!r}: give integers"
        ) from None
    if per < 1:
        raise ParameterError(f"ints_per_segment={per}: give at least 1")
    total = -(-nints // per)
    if not 1 <= segment <= total:
        raise ParameterError(
            f"segment={segment}: the exposure of {nints} integrations, {per} per segment, "
            f"has segments 1 to {total}"
        )
    intstart = (segment - 1) * per + 1
    return {"number": segment, "total": total, "intstart": intstart,
            "intend": min(segment * per, nints)}


def _shower_count(showers, det, sub, readpatt, ngroups, nints, seed):
    """The number of MIRI showers to inject (``showers``: False, True or a count)."""
    if showers is False or showers is None or showers == 0:
        return 0
    if not det.is_miri:
        raise ParameterError("showers are a MIRI effect: simulate them for miri")
    if showers is True:
        from detflow.simulator.instruments import frame_time

        nframes, groupgap = det.readpatts[readpatt]
        seconds = nints * (ngroups * (nframes + groupgap) - groupgap) * frame_time(
            det, sub, readpatt)
        mean = physics.expected_showers((sub.ysize, sub.xsize), seconds)
        return int(np.random.default_rng([seed, 0x5B0E8]).poisson(mean))
    if isinstance(showers, (int, np.integer)) and showers > 0:
        return int(showers)
    raise ParameterError(f"showers={showers!r}: give True (a realistic rate) or a count")


def _write_manifest(path, content):
    """Merge one exposure's entry (``content``, keyed by its ``uncal`` name) into the
    folder's manifest, atomically and under a lock on the folder, so simulations
    sharing a folder (even at once) keep each other's entries; the latest one's facts
    stay at the top as well (the single-exposure form older readers know)."""
    import contextlib
    import os

    path = Path(path)
    with contextlib.ExitStack() as stack:
        try:
            import fcntl

            fd = os.open(path.parent, os.O_RDONLY)
            stack.callback(os.close, fd)
            fcntl.flock(fd, fcntl.LOCK_EX)
            stack.callback(fcntl.flock, fd, fcntl.LOCK_UN)
        except (ImportError, OSError):  # no advisory locks here: merge without one
            pass
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = {}
        old = old if isinstance(old, dict) else {}
        exposures = old.get("exposures") if isinstance(old.get("exposures"), dict) else {}
        if isinstance(old.get("uncal"), str) and old["uncal"] not in exposures:
            # a manifest of the single-exposure form: its exposure becomes an entry
            exposures[old["uncal"]] = {k: v for k, v in old.items() if k != "exposures"}
        exposures[content["uncal"]] = dict(content)
        merged = {**content, "exposures": dict(sorted(exposures.items()))}
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(merged, indent=2) + "\n")


def _save_model(model, path):
    """Save a stdatamodels model atomically under ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        model.save(str(tmp.with_suffix(".fits")))
        tmp.with_suffix(".fits").replace(tmp)
    model.close()
    # stdatamodels records the temporary name; the primary FILENAME keyword is fixed here
    from astropy.io import fits

    with fits.open(path, mode="update") as hdul:
        header = hdul[0].header
        comment = header.comments["FILENAME"] if "FILENAME" in header else ""
        if len(path.name) + len(comment) > 65:  # a long (segment) name: the comment gives way
            comment = ""
        header["FILENAME"] = (path.name, comment)


def _table_dtype(model, attr):
    """The numpy dtype a stdatamodels schema declares for a table attribute."""
    from stdatamodels.properties import ObjectNode

    return ObjectNode("", model._instance, model._schema, model._ctx, None).get_dtype(attr)


def _exposure_times(det, sub, readpatt, ngroups, nints, tframe):
    nframes, groupgap = det.readpatts[readpatt]
    tgroup = (nframes + groupgap) * tframe
    # time from the reset to the last read of an integration, plus one reset frame
    int_duration = (ngroups * (nframes + groupgap) - groupgap) * tframe
    cycle = int_duration + tframe
    return tgroup, int_duration, cycle


def _write_uncal(path, det, sub, readpatt, ngroups, nints, sim, seg=None):
    """Write the level-1b exposure (or one segment of it: ``seg``, see
    :func:`_segment_range`; NINTS is then the whole exposure's, INTSTART/INTEND the
    segment's, and INT_TIMES and GROUP have the segment's rows).

    What a near-IR detector1 step of jwst 3.0.0 (with stcal) reads from the science
    exposure, all written here (primary-header keywords unless named an extension):

    ================  ==========================================================
    step              read by jwst 3.0.0
    ================  ==========================================================
    (pipeline)        INSTRUME (step order); EXP_TYPE (FGS guide types open as
                      GuiderRawModel); SSTR_NST > 0 (superstripe model); CRDS
                      selectors INSTRUME DETECTOR EXP_TYPE READPATT SUBARRAY FILTER
                      PUPIL DATE-OBS TIME-OBS
    every cut of a    SUBSTRT1/2, SUBSIZE1/2 (absent: ValueError); MSTR_RD1 ...
    reference         (multistripe cut); the data shape replaces SUBSIZE
    group_scale       NFRAMES, FRMDIVSR (equal or None: SKIPPED); SCI
    dq_init           SCI, PIXELDQ, GROUPDQ (absent: zeros); EXP_TYPE
    saturation        NGROUPS, NFRAMES (read pattern; GROUPGAP ignored), ZEROFRAM
                      and ZEROFRAME, SCI/PIXELDQ/GROUPDQ
    ipc               INSTRUME, SUBSTRT/SUBSIZE (reference-pixel borders)
    superbias         ZEROFRAM and ZEROFRAME, SSTR_NST
    refpix            INSTRUME, DETECTOR, SUBARRAY, SUBSTRT/SUBSIZE, NOUTPUTS (4:
                      full-frame algorithm), FASTAXIS/SLOWAXIS, PIXELDQ
                      (REFERENCE_PIXEL), ZEROFRAM (absent: false) and ZEROFRAME,
                      MSTR_RD1
    linearity         NFRAMES (> 1 with INV_COEFFS: read-level correction), NGROUPS,
                      ZEROFRAM and ZEROFRAME, read_times (ASDF only)
    dark_current      INSTRUME, NFRAMES, GROUPGAP (None: TypeError), INTSTART (MIRI)
    charge_migration  SCI, GROUPDQ (NGROUPS < 3: SKIPPED)
    jump              NFRAMES, TGROUP, the data shape (NGROUPS <= 2: SKIPPED)
    persistence       EXPSTART, EFFINTTM, TGROUP, INT_TIMES int_start_MJD_UTC (by
                      row position), DETECTOR, FILENAME
    ramp_fit          TGROUP, TFRAME, NFRAMES, GROUPGAP, DRPFRMS1, ZEROFRAME (used
                      whenever present), AVDRKCUR extension, INT_TIMES (copied),
                      EXP_TYPE (output class), read_times (ASDF only: LIKELY)
    gain_scale        GAINFACT of the rate (else the GAIN file's; None: SKIPPED)
    ================  ==========================================================

    Read by no near-IR step: TSOVISIT, NRSTSTRT, NRESETS, INTEND, EXPEND, EFFEXPTM,
    TSAMPLE, the GROUP table. Not simulated: FRMDIVSR other than NFRAMES (every
    NIRCam pattern has a power-of-two NFRAMES, so group_scale is SKIPPED), stripe
    readouts (detflow refuses them: :func:`detflow.steps.base.check_readout`).
    """
    from stdatamodels.jwst import datamodels as dm

    nframes, groupgap = det.readpatts[readpatt]
    tframe = sim["tframe"]
    tgroup, int_duration, cycle = _exposure_times(det, sub, readpatt, ngroups, nints, tframe)

    model = dm.Level1bModel(data=sim["sci"])
    if sim["zeroframe"] is not None:
        model.zeroframe = sim["zeroframe"]
    if sim["refout"] is not None:
        model.refout = sim["refout"]
    m = model.meta
    m.filename = Path(path).name
    m.telescope = "JWST"
    m.instrument.name = det.instrument
    m.instrument.detector = det.detector
    m.instrument.filter = det.filter
    if det.pupil:
        m.instrument.pupil = det.pupil
    if det.instrument == "NIRCAM":
        m.instrument.channel = "SHORT"
        m.instrument.module = "A"
    if det.is_miri:
        m.instrument.band = "N/A"
    m.observation.program_number = "01234"
    m.observation.observation_number = "001" if not det.is_miri else "002"
    m.observation.visit_number = "001"
    m.observation.visit_group = "01"
    m.observation.sequence_id = "1"
    m.observation.activity_id = "01"
    m.observation.exposure_number = "00001"
    m.observation.date = "2023-12-20"
    m.observation.time = "06:00:00.000"
    m.observation.date_beg = "2023-12-20T06:00:00.000"
    m.visit.tsovisit = sub.name.startswith("SUBGRISM") or seg is not None
    e = m.exposure
    e.type = det.exp_type
    e.readpatt = readpatt
    e.nframes = nframes
    e.groupgap = groupgap
    e.ngroups = ngroups
    e.nints = nints
    first, last = (1, nints) if seg is None else (seg["intstart"], seg["intend"])
    e.integration_start = first
    e.integration_end = last
    if seg is not None:
        e.segment_number = seg["number"]
        e.segment_total = seg["total"]
    e.nresets_at_start = 1
    e.nresets_between_ints = 1
    e.frame_divisor = nframes
    e.frame_time = tframe
    e.group_time = tgroup
    e.integration_time = int_duration
    e.exposure_time = int_duration * nints
    e.duration = cycle * nints
    e.start_time = MJD_START
    e.mid_time = MJD_START + cycle * nints / 2 / 86400
    e.end_time = MJD_START + cycle * nints / 86400
    e.zero_frame = sim["zeroframe"] is not None
    e.noutputs = sub.noutputs
    e.sample_time = 10
    if det.is_miri:
        # samples per pixel read (jwst's emicorr reads it): 1 FAST, 9 SLOW
        from detflow.simulator.instruments import MIRI_SLOW_READPATTS

        e.nsamples = 9 if readpatt in MIRI_SLOW_READPATTS else 1
    e.drop_frames1 = 0
    s = m.subarray
    s.name = sub.name
    s.xstart, s.ystart = sub.xstart, sub.ystart
    s.xsize, s.ysize = sub.xsize, sub.ysize
    s.fastaxis, s.slowaxis = det.fastaxis, det.slowaxis

    numbers = np.arange(first - 1, last)  # 0-based integrations in this file
    starts = MJD_START + numbers * cycle / 86400
    ends = starts + int_duration / 86400
    model.int_times = np.array(
        [
            (i + 1, s0, (s0 + e0) / 2, e0, s0, (s0 + e0) / 2, e0)
            for i, s0, e0 in zip(numbers, starts, ends, strict=True)
        ],
        dtype=_table_dtype(model, "int_times"),
    )
    rows = []
    for j, i in enumerate(numbers):
        for g in range(ngroups):
            tend = starts[j] + ((g + 1) * (nframes + groupgap) - groupgap) * tframe / 86400
            day = int(tend)
            ms = (tend - day) * 86400e3
            doy = day - 60309 + 365  # day of year (MJD 60309 is 2024-01-01)
            rows.append(
                (i + 1, g + 1, doy, int(ms), int((ms % 1) * 1e3), f"{tend:.8f}",
                 sub.xsize, sub.ysize, groupgap, 0, "", tend, tend)
            )
    model.group = np.array(rows, dtype=_table_dtype(model, "group"))
    _save_model(model, path)


def _write_truth(path, truth, det, sub):
    from astropy.io import fits

    primary = fits.PrimaryHDU()
    primary.header["INSTRUME"] = det.instrument
    primary.header["DETECTOR"] = det.detector
    primary.header["SUBARRAY"] = sub.name
    primary.header["SUBSTRT1"] = sub.xstart
    primary.header["SUBSTRT2"] = sub.ystart
    primary.header["COMMENT"] = "detflow simulator truth: noiseless count rate, dark excluded"
    sci = fits.ImageHDU(truth.astype(np.float32), name="SCI")
    sci.header["BUNIT"] = "DN/s"
    with atomic_path(path) as tmp:
        fits.HDUList([primary, sci]).writeto(tmp)


def _ref_meta(model, reftype, det, sub, description):
    m = model.meta
    m.reftype = reftype
    m.instrument.name = det.instrument
    m.instrument.detector = det.detector
    m.author = "detflow simulator"
    m.pedigree = "DUMMY"
    m.description = description
    m.useafter = REF_USEAFTER
    m.telescope = "JWST"
    try:
        m.subarray.name = sub.name
    except AttributeError:  # e.g. IPC kernels have no subarray
        return
    m.subarray.xstart, m.subarray.ystart = sub.xstart, sub.ystart
    m.subarray.xsize, m.subarray.ysize = sub.xsize, sub.ysize
    m.subarray.fastaxis, m.subarray.slowaxis = det.fastaxis, det.slowaxis


def _dq_def_table(model, dq, style):
    """A ``DQ_DEF`` table naming every flag set in ``dq`` (and DO_NOT_USE), as CRDS
    reference files carry one; ``compressed`` numbers the planes 1, 2, 4, ... (the
    model's save then packs the DQ into them)."""
    from stdatamodels.jwst.datamodels.dqflags import pixel

    used = int(np.bitwise_or.reduce(np.asarray(dq, dtype=np.uint32).ravel())) | 1
    rows = []
    for name, value in sorted(pixel.items(), key=lambda kv: kv[1]):
        if value and used & value and value & (value - 1) == 0:
            bit = len(rows) if style == "compressed" else value.bit_length() - 1
            rows.append((bit, 1 << bit, name, f"{name.lower().replace('_', ' ')}"))
            used &= ~value
    return np.array(rows, dtype=_table_dtype(model, "dq_def"))


def _write_references(refdir, det, sub, maps, sim, ngroups, nints, seed, *,
                      avdrkcur="scalar", ref_shape="full", dq_def="standard",
                      gain_factor=None, readpatt=None):
    """Write the reference files (see :func:`simulate` for the variants).

    What a detector1 step of jwst 3.0.0 reads from each file, and what is written here:

    ============  ==========================================================  =========
    reftype       read by jwst 3.0.0 (keyword / extension)                    variants
    ============  ==========================================================  =========
    every file    REFTYPE, INSTRUME, DETECTOR, USEAFTER (selection);          ref_shape
                  SUBSTRT1/2, SUBSIZE1/2 (cutting a full-frame file)
    MASK          DQ, DQ_DEF (stdatamodels translates DQ through it)          dq_def
    SATURATION    SCI (NaN -> NO_SAT_CHECK), DQ, DQ_DEF                       dq_def
    SUPERBIAS     SCI (NaN -> 0), DQ, DQ_DEF (saturation and superbias)       dq_def
    LINEARITY     COEFFS (NaN -> NO_LIN_CORR), INV_COEFFS (NFRAMES > 1), DQ,  dq_def
                  DQ_DEF (INV_COEFFS written for NIR and MIRI, with the MIRI
                  pedestal in its constant term)
    DARK          SCI, DQ, DQ_DEF; NFRAMES, GROUPGAP, NGROUPS; the average    avdrkcur,
                  dark current: AVDRKCUR keyword and/or 2-D AVDRKCUR          dq_def
                  extension (science shape, never cut); MIRI: 4-D, two
                  integrations, READPATT/NFRAMES the science's, INTSTART > 1
                  uses the last integration
    GAIN          SCI (<= 0 or NaN -> NO_GAIN_VALUE), GAINFACT (ramp_fit      ref_shape,
                  copies it, gain_scale applies it)                           gain_factor
    READNOISE     SCI                                                         ref_shape
    IPC           SCI (3x3 kernel, or 4-D per pixel)
    RESET (MIRI)  SCI, DQ, DQ_DEF; NGROUPS, NINTS (science shape: full     dq_def
                  frame, or the subarray's region, never cut by jwst)
    RSCD (MIRI)   RSCD_GROUP_SKIP table (SUBARRAY, READPATT, GROUP_SKIP(1)):
                  every MIRI imager subarray x FAST, SLOW, FASTR1, SLOWR1,
                  FASTGRPAVG{,8,16,32,64} (jwst looks SUBPRISM up as
                  SLITLESSPRISM)
    ============  ==========================================================  =========
    """
    from stdatamodels.jwst import datamodels as dm

    from detflow import dqflags
    from detflow.simulator.instruments import Subarray

    full = Subarray("FULL", 1, 1, det.full_shape[1], det.full_shape[0], 4)
    tag = f"{det.detector.lower()}_s{seed}"
    refs = {}
    f32 = np.float32
    ys = slice(sub.ystart - 1, sub.ystart - 1 + sub.ysize)
    xs = slice(sub.xstart - 1, sub.xstart - 1 + sub.xsize)
    cut_to_sub = ref_shape == "subarray" and sub.name != "FULL"
    shape_tag = f"_{sub.name.lower()}" if cut_to_sub else ""

    def cut(array):
        """A full-frame map (..., y, x), cut to the science region when asked."""
        return np.ascontiguousarray(array[..., ys, xs]) if cut_to_sub else array

    def save(reftype, model, name, region=None, description=None):
        if region is None:
            region = sub if cut_to_sub else full
        _ref_meta(model, reftype, det, region, description or f"simulated {reftype}")
        if dq_def != "none" and model.hasattr("dq") and "dq_def" in model._schema.get(
                "properties", {}):
            model.dq_def = _dq_def_table(model, model.dq, dq_def)
        path = refdir / f"jwst_{det.instrument.lower()}_{reftype.lower()}_{name}.fits"
        _save_model(model, path)
        refs[reftype] = path

    tag_shaped = tag + shape_tag
    save("MASK", dm.MaskModel(dq=cut(maps.mask_dq)), tag_shaped)

    sat = maps.saturation.copy()
    sat[maps.nan_sat] = np.nan
    sat_dq = np.where(maps.nan_sat, dqflags.NO_SAT_CHECK, 0).astype(np.uint32)
    save("SATURATION", dm.SaturationModel(data=cut(sat), dq=cut(sat_dq)), tag_shaped)

    if not det.is_miri:
        bias = maps.bias.copy()
        bias[maps.nan_bias] = np.nan
        bias_dq = np.where(maps.nan_bias, dqflags.UNRELIABLE_BIAS, 0).astype(np.uint32)
        sb = dm.SuperBiasModel(data=cut(bias), err=cut(np.full(bias.shape, 1.0, f32)),
                               dq=cut(bias_dq))
        save("SUPERBIAS", sb, tag_shaped)

    ncoef = physics.LINEARITY_NCOEFFS
    ny, nx = det.full_shape
    coeffs = np.zeros((ncoef, ny, nx), f32)
    a, b = maps.alpha, maps.beta
    if det.is_miri:
        # MIRI corrects raw DN with the pedestal included: expand h(x - p) in powers of x
        p = maps.bias.astype(np.float64)
        coeffs[0] = -p + a * p * p - b * p**3
        coeffs[1] = 1 - 2 * a * p + 3 * b * p * p
        coeffs[2] = a - 3 * b * p
        coeffs[3] = b
    else:
        coeffs[1] = 1.0
        coeffs[2] = a
        coeffs[3] = b
    coeffs[:, maps.nan_lin] = np.nan
    lin_dq = np.where(maps.nan_lin, dqflags.NO_LIN_CORR, 0).astype(np.uint32)
    linearity = dm.LinearityModel(coeffs=cut(coeffs), dq=cut(lin_dq))
    # INV_COEFFS (linearised -> raw) for jwst's read-level correction of NFRAMES > 1 groups
    # (NIR patterns averaging frames, MIRI's FASTGRPAVG): MIRI's raw reads include the
    # pedestal its COEFFS absorb, so its inverse adds it back
    qmax = 1.05 * float(maps.full_well.max())
    inv = physics.inverse_linearity_coeffs(a, b, qmax)
    if det.is_miri:
        inv[0] += maps.bias
    linearity.inv_coeffs = cut(inv.astype(f32))
    del inv
    save("LINEARITY", linearity, tag_shaped)

    gain = dm.GainModel(data=cut(maps.gain.copy()))
    if gain_factor is not None:
        gain.meta.exposure.gain_factor = float(gain_factor)
    save("GAIN", gain, tag_shaped)
    save("READNOISE", dm.ReadnoiseModel(data=cut(maps.readnoise.copy())), tag_shaped)

    if det.ipc_alpha:
        a_ipc = det.ipc_alpha
        kernel = np.array(
            [[0, -a_ipc, 0], [-a_ipc, 1 + 4 * a_ipc, -a_ipc], [0, -a_ipc, 0]], f32
        )
        save("IPC", dm.IPCModel(data=kernel), tag, region=full)

    # DARK: jwst never cuts the dark to a subarray, so it has the science region.
    tframe = sim["tframe"]
    nframes, groupgap = sim["nframes"], sim["groupgap"]
    rate = maps.dark_rate[ys, xs]
    if det.is_miri:
        # MIRI darks are per integration (4-D) and read with the science pattern (CRDS
        # selects them by READPATT): group g averages frames g*nframes ... (g+1)*nframes-1,
        # so stcal subtracts it group by group, nothing averaged or extrapolated
        ndark = ngroups
        t = (np.arange(ndark) * nframes + (nframes + 1) / 2) * tframe
        frames = (t[:, None, None] * rate[None]).astype(f32)
        data = np.stack([frames, frames])
        dq = np.zeros(data.shape, np.uint32)
        dark = dm.DarkMIRIModel(data=data, dq=dq, err=np.zeros(data.shape, f32))
        dark.meta.exposure.readpatt = readpatt or "FAST"
        dark.meta.exposure.ngroups = ndark
        dark.meta.exposure.nints = 2
        dark.meta.exposure.nframes = nframes
        dark.meta.exposure.groupgap = groupgap
    else:
        total = ngroups * (nframes + groupgap) - groupgap
        # a linear dark: jwst extrapolates missing frames linearly from the last two,
        # so a short file is exact and keeps the file small
        ndark = int(min(total, max(ngroups, 10)))
        t = (np.arange(ndark) + 1) * tframe
        data = (t[:, None, None] * rate[None]).astype(f32)
        dark = dm.DarkModel(
            data=data, dq=np.zeros(rate.shape, np.uint32), err=np.zeros(data.shape, f32)
        )
        dark.meta.exposure.readpatt = "RAPID"
        dark.meta.exposure.ngroups = ndark
    if not det.is_miri:
        dark.meta.exposure.nframes = 1
        dark.meta.exposure.groupgap = 0
    # the average dark current in e-/s, as CRDS darks carry it (keyword and/or map)
    e_rate = (rate * maps.gain[ys, xs]).astype(f32)
    if avdrkcur in ("scalar", "both"):
        dark.meta.exposure.average_dark_current = float(np.median(e_rate[e_rate > 0])) \
            if (e_rate > 0).any() else 0.0
    if avdrkcur in ("map", "both"):
        dark.average_dark_current = e_rate
    dark_name = f"{tag}_{sub.name.lower()}"
    if det.is_miri and readpatt not in (None, "FAST"):
        dark_name += f"_{readpatt.lower()}"  # its frames and timing are the pattern's
    save("DARK", dark, dark_name, region=sub)

    if det.is_miri:
        # jwst never cuts the RESET: a subarray's has the science region, as CRDS has it
        amp = maps.reset_amp if sub.name == "FULL" else maps.reset_amp[ys, xs]
        reset = np.stack(
            [
                np.stack([physics.reset_anomaly(amp, i, g)
                          for g in range(physics.RESET_NGROUPS)])
                for i in range(physics.RESET_NINTS)
            ]
        ).astype(f32)
        rm = dm.ResetModel(
            data=reset, dq=np.zeros(reset.shape[-2:], np.uint32), err=np.zeros(reset.shape, f32)
        )
        rm.meta.exposure.readpatt = "ANY"
        rm.meta.exposure.ngroups = physics.RESET_NGROUPS
        rm.meta.exposure.nints = physics.RESET_NINTS
        if sub.name == "FULL":
            save("RESET", rm, tag, region=full)
        else:
            save("RESET", rm, f"{tag}_{sub.name.lower()}", region=sub)

        rscd = dm.RSCDModel()
        names = ("FULL", "BRIGHTSKY", "SUB256", "SUB128", "SUB64", "SLITLESSPRISM",
                 "MASK1065", "MASK1140", "MASK1550", "MASKLYOT")
        rows = [
            (name, patt, physics.RSCD_SKIP_INT1, physics.RSCD_SKIP_INT2P)
            for name in names
            for patt in ("FAST", "SLOW", "FASTR1", "SLOWR1")
        ]
        # the group-averaging patterns (after the original rows, which keep their order)
        rows += [
            (name, patt, physics.RSCD_SKIP_INT1, physics.RSCD_SKIP_INT2P)
            for name in names
            for patt in ("FASTGRPAVG", "FASTGRPAVG8", "FASTGRPAVG16", "FASTGRPAVG32",
                         "FASTGRPAVG64")
        ]
        rscd.rscd_group_skip_table = np.array(
            rows, dtype=_table_dtype(rscd, "rscd_group_skip_table")
        )
        save("RSCD", rscd, tag, region=full)
    return refs
