"""Detector, read-pattern and subarray definitions used by the simulator.

Numbers follow the JWST instrument documentation closely enough to produce
exposures that the official pipeline treats exactly as it treats real ones:
frame times follow the SIDECAR timing rule ``(ncols_per_output + 12) * (nrows + 1)
* 10 us`` for NIR detectors and the MIRI readout clocks (:data:`MIRI_CLOCKS`) for MIRI,
read patterns give the real ``NFRAMES``/``GROUPGAP``.
"""

from dataclasses import dataclass

PIXEL_TIME = 10e-6  # s per pixel per output (NIR SIDECAR, 100 kHz)
ROW_OVERHEAD = 12  # extra pixel times per row (NIR)

#: read pattern -> (nframes, groupgap)
NIRCAM_READPATTS = {
    "RAPID": (1, 0),
    "BRIGHT1": (1, 1),
    "BRIGHT2": (2, 0),
    "SHALLOW2": (2, 3),
    "SHALLOW4": (4, 1),
    "MEDIUM2": (2, 8),
    "MEDIUM8": (8, 2),
    "DEEP2": (2, 18),
    "DEEP8": (8, 12),
}

#: MIRI read patterns -> (nframes, groupgap). FASTGRPAVG<n> average n FAST frames into each
#: group on board (FRMDIVSR = NFRAMES, so group_scale is SKIPPED); R1: an extra reset frame
#: between integrations.
MIRI_READPATTS = {
    "FAST": (1, 0),
    "FASTR1": (1, 0),
    "SLOW": (1, 0),
    "SLOWR1": (1, 0),
    "FASTGRPAVG": (4, 0),
    "FASTGRPAVG8": (8, 0),
    "FASTGRPAVG16": (16, 0),
    "FASTGRPAVG32": (32, 0),
    "FASTGRPAVG64": (64, 0),
}

#: MIRI read patterns whose pixels are sampled slowly (9 samples of 10 us, 100 kHz clock)
MIRI_SLOW_READPATTS = ("SLOW", "SLOWR1")

#: MIRI readout clocks per subarray case: (rowclocks, frameclocks) in 10 us pixel clocks,
#: as jwst 3.0.0's ``emicorr.subarray_clocks`` lists them. A frame reads each of its ``ny``
#: rows in ``rowclocks`` and skips the other ``1024 - ny`` rows at 7 clocks each, so
#: ``frameclocks = ny * rowclocks + (1024 - ny) * 7`` for every case; the frame time is
#: ``frameclocks * 10 us`` (FULL FAST 2.77504 s, FULL SLOW 23.88992 s, SUB64 0.08512 s).
MIRI_CLOCKS = {
    "FULL_FAST": (271, 277504),
    "FULL_SLOW": (2333, 2388992),
    "BRIGHTSKY": (162, 86528),
    "SUB256": (96, 29952),
    "SUB128": (44, 11904),
    "SUB64": (28, 8512),
    "SLITLESSPRISM": (28, 15904),
    "MASK1065": (82, 23968),
    "MASK1140": (82, 23968),
    "MASK1550": (82, 23968),
    "MASKLYOT": (90, 32400),
}


@dataclass(frozen=True)
class Subarray:
    """A readout region in the DMS (science) frame.

    ``xstart``/``ystart`` are 1-based like SUBSTRT1/SUBSTRT2.
    """

    name: str
    xstart: int
    ystart: int
    xsize: int
    ysize: int
    noutputs: int


NIRCAM_SUBARRAYS = {
    "FULL": Subarray("FULL", 1, 1, 2048, 2048, 4),
    # one output, in the corner so that it holds bottom/left reference pixels
    "SUB640": Subarray("SUB640", 1, 1, 640, 640, 1),
    "SUB320": Subarray("SUB320", 1, 1, 320, 320, 1),
    "SUB160": Subarray("SUB160", 1, 1, 160, 160, 1),
    # in the far corner, as NIRCam's point-source subarrays are: its reference pixels
    # are the top rows and right columns, and references are cut at SUBSTRT 1889
    "SUB160P": Subarray("SUB160P", 1889, 1889, 160, 160, 1),
    # grism time-series stripe read through all four outputs
    "SUBGRISM64": Subarray("SUBGRISM64", 1, 1, 2048, 64, 4),
    "SUBGRISM128": Subarray("SUBGRISM128", 1, 1, 2048, 128, 4),
}

#: The MIRI imager's subarrays (DMS frame, 1-based corners). Sizes agree with jwst's clock
#: table (``frameclocks = ny * rowclocks + (1024 - ny) * 7``) and the MIRI SIAF shipped with
#: jwst's tests (``jwst/lib/tests/data/.../MIRI_SIAF.xml``). Corners: BRIGHTSKY, SUB256,
#: SUB64 and SLITLESSPRISM are the SIAF's (``XDetRef - XSciRef + 1``; SLITLESSPRISM's 1, 529
#: is also jwst's tests'); MASK1550's 1, 467 is jwst's dq_init/linearity/refpix tests' (the
#: SIAF reference points of the coronagraph and SUB128 apertures are not their corners: they
#: give 463). SUB128 (889), MASK1065 (19), MASK1140 (245) and MASKLYOT (717) are the JWST
#: documentation's row starts, not confirmed offline (the SIAF points give 891, 21, 243, 719).
#: All read through the four interleaved outputs; those at column 1 hold the left
#: reference columns, which jwst's MIRI refpix never uses in a subarray.
MIRI_SUBARRAYS = {
    "FULL": Subarray("FULL", 1, 1, 1032, 1024, 4),
    "BRIGHTSKY": Subarray("BRIGHTSKY", 457, 51, 512, 512, 4),
    "SUB256": Subarray("SUB256", 413, 51, 256, 256, 4),
    "SUB128": Subarray("SUB128", 1, 889, 136, 128, 4),
    "SUB64": Subarray("SUB64", 1, 779, 72, 64, 4),
    "SLITLESSPRISM": Subarray("SLITLESSPRISM", 1, 529, 72, 416, 4),
    "MASK1065": Subarray("MASK1065", 1, 19, 288, 224, 4),
    "MASK1140": Subarray("MASK1140", 1, 245, 288, 224, 4),
    "MASK1550": Subarray("MASK1550", 1, 467, 288, 224, 4),
    "MASKLYOT": Subarray("MASKLYOT", 1, 717, 320, 304, 4),
}


@dataclass(frozen=True)
class Detector:
    """Static properties of one simulated detector."""

    instrument: str
    detector: str
    exp_type: str
    filter: str
    pupil: str | None
    full_shape: tuple  # (ny, nx) DMS frame
    fastaxis: int
    slowaxis: int
    gain: float  # e-/DN, median
    readnoise_cds: float  # DN, CDS noise of one frame pair, median
    bias: float  # DN, median raw level at zero time
    dark_rate: float  # DN/s
    sat_level: float  # DN above bias where the response saturates (before nonlinearity)
    sky: float  # DN/s
    nonlin_alpha: float  # quadratic term of the linearity correction (1/DN)
    nonlin_beta: float  # cubic term (1/DN^2)
    ipc_alpha: float  # nearest-neighbour IPC coupling
    ref_border: int  # width of the reference-pixel border (NIR)
    readpatts: dict
    subarrays: dict

    @property
    def is_miri(self):
        return self.instrument == "MIRI"


NIRCAM_A1 = Detector(
    instrument="NIRCAM",
    detector="NRCA1",
    exp_type="NRC_IMAGE",
    filter="F200W",
    pupil="CLEAR",
    full_shape=(2048, 2048),
    fastaxis=-1,
    slowaxis=2,
    gain=2.05,
    readnoise_cds=7.0,
    bias=12000.0,
    dark_rate=0.0015,
    sat_level=38000.0,
    sky=0.45,
    nonlin_alpha=2.0e-6,
    nonlin_beta=1.5e-11,
    ipc_alpha=0.006,
    ref_border=4,
    readpatts=NIRCAM_READPATTS,
    subarrays=NIRCAM_SUBARRAYS,
)

MIRI_IM = Detector(
    instrument="MIRI",
    detector="MIRIMAGE",
    exp_type="MIR_IMAGE",
    filter="F770W",
    pupil=None,
    full_shape=(1024, 1032),
    fastaxis=1,
    slowaxis=2,
    gain=4.0,
    readnoise_cds=6.5,
    bias=11000.0,
    dark_rate=0.12,
    sat_level=40000.0,
    sky=9.0,
    nonlin_alpha=1.0e-6,
    nonlin_beta=6.0e-12,
    ipc_alpha=0.0,
    ref_border=0,
    readpatts=MIRI_READPATTS,
    subarrays=MIRI_SUBARRAYS,
)

DETECTORS = {"nircam": NIRCAM_A1, "miri": MIRI_IM}


def miri_clock_case(sub, readpatt="FAST"):
    """The key of :data:`MIRI_CLOCKS` for a MIRI subarray and read pattern."""
    if sub.name == "FULL":
        return "FULL_SLOW" if readpatt in MIRI_SLOW_READPATTS else "FULL_FAST"
    return sub.name


def frame_time(det, sub, readpatt=None):
    """Frame time in seconds for a detector, subarray and read pattern.

    MIRI: ``frameclocks * 10 us`` from :data:`MIRI_CLOCKS` (a MIRI frame skips the rows
    outside the subarray at 7 clocks each, so it is not proportional to the area).
    NIR: the SIDECAR rule ``(cols_per_output + 12) * (nrows + 1) * 10 us``.
    """
    if det.is_miri:
        if sub.name == "FULL" and readpatt not in MIRI_SLOW_READPATTS:
            # the FAST full frame, as the simulator has always written it
            return 2.77504 * (sub.ysize * sub.xsize) / (1024 * 1032)
        return MIRI_CLOCKS[miri_clock_case(sub, readpatt)][1] / 1e5  # 10 us clocks
    cols_per_output = sub.xsize // sub.noutputs if sub.noutputs == 4 else sub.xsize
    if sub.noutputs == 4 and sub.xsize != det.full_shape[1]:
        cols_per_output = 512
    return (cols_per_output + ROW_OVERHEAD) * (sub.ysize + 1) * PIXEL_TIME
