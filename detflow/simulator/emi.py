"""MIRI EMI for simulated exposures, and the matching EMICORR reference file.

MIRI's detectors pick up electromagnetic interference at a few fixed frequencies (390.625
Hz in subarrays, near 218.5 and 164.9 Hz, and 10.04 Hz in full frame). Each 10 us pixel
clock reads one pixel of each of the four outputs, so an EMI wave is seen at the time each
pixel is read: :func:`inject_emi` adds it with the readout timing jwst's emicorr models
(``emicorr_refwave``): the pixel of row ``j``, output column ``k = x // 4`` in group ``g`` of
integration ``i`` is read at

``t = i * (ngroups * frametime + frameclocks_R1) + g * frametime + j * rowclocks + k * nsamples``

pixel clocks, ``frametime = ny * rowclocks + (1024 - ny) * 7``, ``frameclocks_R1`` the
frame clocks for the FASTR1/SLOWR1 patterns (their extra reset frame), 0 otherwise.

:func:`write_emicorr_reference` writes an ``EmiModel`` ASDF file whose waveforms are the
injected ones, with jwst's clocks per subarray.
"""

import numpy as np

from detflow.simulator.instruments import MIRI_CLOCKS

__all__ = [
    "MIRI_EMI_FREQUENCIES",
    "SUBARRAY_CLOCKS",
    "emi_model",
    "emi_waveform",
    "inject_emi",
    "subarray_cases",
    "write_emicorr_reference",
]

#: The MIRI EMI frequencies (Hz), named as in the EMICORR reference files.
MIRI_EMI_FREQUENCIES = {
    "Hz390": 390.625,
    "Hz218a": 218.52055,
    "Hz218b": 218.520470,
    "Hz218c": 218.520665,
    "Hz164": 164.9305,
    "Hz10": 10.039216,
    "Hz10_slow_MIRIMAGE": 10.039216,
    "Hz10_slow_MIRIFULONG": 10.039216,
    "Hz10_slow_MIRIFUSHORT": 10.039216,
}

#: Row and frame clocks per subarray case (jwst's ``emicorr.subarray_clocks``): the
#: simulator's MIRI readout clocks.
SUBARRAY_CLOCKS = MIRI_CLOCKS

DETECTORS = ("MIRIMAGE", "MIRIFULONG", "MIRIFUSHORT")


def emi_waveform(phase, harmonic=0.35, shift=0.2):
    """The EMI wave at ``phase`` (cycles, any shape): a sine with a second harmonic,
    peak amplitude about 1."""
    phase = np.asarray(phase, dtype=np.float64)
    wave = np.sin(2 * np.pi * phase) + harmonic * np.sin(4 * np.pi * phase + 2 * np.pi * shift)
    return wave / (1 + harmonic)


def case_name(subarray, readpatt):
    """The subarray case jwst looks up: ``FULL_FAST``/``FULL_SLOW`` or the subarray."""
    speed = "SLOW" if "SLOW" in str(readpatt).upper() else "FAST"
    return f"{subarray}_{speed}" if "FULL" in str(subarray) else str(subarray)


def inject_emi(data, *, subarray, readpatt, nsamples=None, components=None, rowclocks=None,
               frameclocks=None, first_integration=0):
    """A raw ramp with EMI added at the times its pixels are read.

    Parameters
    ----------
    data : ndarray
        ``(nints, ngroups, ny, nx)`` raw counts (``uint16``, or float).
    subarray, readpatt : str
        SUBARRAY and READPATT of the exposure (they choose the clocks).
    nsamples : int, optional
        Samples per pixel read (NSAMPLES): default 1 for FAST, 9 for SLOW.
    components : sequence of (frequency, amplitude, phase), optional
        Frequency in Hz or a name of :data:`MIRI_EMI_FREQUENCIES`, amplitude in DN, phase
        offset in cycles at the first pixel read. Default: ``[("Hz10", 4.0, 0.3)]`` for full
        frame, ``[("Hz390", 5.0, 0.3), ("Hz10", 2.0, 0.7)]`` for a subarray.
    rowclocks, frameclocks : int, optional
        Override :data:`SUBARRAY_CLOCKS`.
    first_integration : int
        The exposure's 0-based index of ``data``'s first integration (``INTSTART - 1`` of
        a segment), so a segment carries the EMI of those integrations of the whole
        exposure.

    Returns
    -------
    ndarray
        The data plus EMI, in the input dtype (integers rounded and clipped to the
        dtype's range); the input is not changed.
    """
    data = np.asarray(data)
    nints, ngroups, ny, nx = data.shape
    case = case_name(subarray, readpatt)
    clocks = SUBARRAY_CLOCKS.get(case, (None, None))
    rowclocks = clocks[0] if rowclocks is None else rowclocks
    frameclocks = clocks[1] if frameclocks is None else frameclocks
    if rowclocks is None:
        raise ValueError(f"no EMI clocks known for subarray case {case}")
    if nsamples is None:
        nsamples = 9 if "SLOW" in readpatt.upper() else 1
    if components is None:
        components = ([("Hz10", 4.0, 0.3)] if "FULL" in subarray
                      else [("Hz390", 5.0, 0.3), ("Hz10", 2.0, 0.7)])
    frametime = ny * rowclocks + (1024 - ny) * 7
    r1 = frameclocks if readpatt.upper() in ("FASTR1", "SLOWR1") else 0
    nx4 = nx // 4
    t_pix = (np.arange(ny)[:, None] * rowclocks + np.arange(nx4)[None, :] * nsamples)
    emi = np.zeros((nints, ngroups, ny, nx4))
    for freq, amplitude, phase0 in components:
        hz = MIRI_EMI_FREQUENCIES[freq] if isinstance(freq, str) else float(freq)
        period = (1.0 / hz) / 10.0e-6
        for i in range(nints):
            for g in range(ngroups):
                t0 = (first_integration + i) * (ngroups * frametime + r1) + g * frametime
                emi[i, g] += amplitude * emi_waveform(((t0 + t_pix) / period + phase0) % 1)
    full = np.repeat(emi, 4, axis=3)
    if full.shape[3] < nx:
        full = np.concatenate([full, np.zeros(full.shape[:3] + (nx - full.shape[3],))], axis=3)
    out = data.astype(np.float64) + full
    if np.issubdtype(data.dtype, np.integer):
        info = np.iinfo(data.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(data.dtype)
    return out.astype(data.dtype)


def subarray_cases(fast=None, slow=None):
    """The ``subarray_cases`` tree: every case of :data:`SUBARRAY_CLOCKS` with jwst's
    clocks; full frame corrects 10 Hz, the subarrays 390 Hz and 10 Hz (``fast``/``slow``:
    ``{case: [names]}`` to choose others)."""
    out = {}
    for case, (rowclocks, frameclocks) in SUBARRAY_CLOCKS.items():
        full = case.startswith("FULL")
        f_names = (fast or {}).get(case, ["Hz10"] if full else ["Hz390", "Hz10"])
        freqs = {}
        if case != "FULL_SLOW":
            freqs["FAST"] = list(f_names)
        freqs["SLOW"] = {
            det: list((slow or {}).get(case, [f"Hz10_slow_{det}"] if full
                                      else ["Hz390", f"Hz10_slow_{det}"]))
            for det in DETECTORS
        }
        out[case] = {"rowclocks": rowclocks, "frameclocks": frameclocks, "freqs": freqs}
    return out


def emi_model(nphases=500, frequencies=None, cases=None):
    """An ``stdatamodels`` ``EmiModel``: each frequency's waveform sampled at ``nphases``
    bin centres (``(m + 0.5) / nphases``, as jwst reads it), float32.

    ``frequencies``: names of :data:`MIRI_EMI_FREQUENCIES`, or ``{name: Hz}`` (default:
    all of them); ``cases``: the ``subarray_cases`` tree (default :func:`subarray_cases`).
    """
    from stdatamodels.jwst.datamodels import EmiModel

    if frequencies is None:
        frequencies = MIRI_EMI_FREQUENCIES
    if not isinstance(frequencies, dict):
        frequencies = {name: MIRI_EMI_FREQUENCIES[name] for name in frequencies}
    wave = emi_waveform((np.arange(nphases) + 0.5) / nphases).astype(np.float32)
    model = EmiModel()
    model.frequencies = {name: {"frequency": float(hz), "phase_amplitudes": wave.copy()}
                         for name, hz in frequencies.items()}
    model.subarray_cases = cases if cases is not None else subarray_cases()
    model.meta.reftype = "emicorr"
    model.meta.instrument.name = "MIRI"
    model.meta.author = "detflow simulator"
    model.meta.description = "Simulated MIRI EMI reference waves"
    model.meta.pedigree = "DUMMY"
    model.meta.useafter = "2022-01-01T00:00:00"
    return model


def write_emicorr_reference(path, nphases=500, frequencies=None, cases=None):
    """Write :func:`emi_model` to ``path`` (``.asdf``); returns the path."""
    model = emi_model(nphases, frequencies, cases)
    try:
        model.save(str(path))
    finally:
        model.close()
    return path
