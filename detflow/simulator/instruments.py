"""Detector, read-pattern and subarray definitions used by the simulator.

Numbers follow the JWST instrument documentation closely enough to produce
exposures that the official pipeline treats exactly as it treats real ones:
frame times follow the SIDECAR timing rule ``(ncols_per_output + 12) * (nrows + 1)
* 10 us`` for NIR detectors, read patterns give the real ``NFRAMES``/``GROUPGAP``.
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

MIRI_READPATTS = {"FAST": (1, 0), "FASTR1": (1, 0), "SLOW": (1, 0), "SLOWR1": (1, 0)}


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

MIRI_SUBARRAYS = {
    "FULL": Subarray("FULL", 1, 1, 1032, 1024, 4),
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


def frame_time(det, sub):
    """Frame time in seconds for a detector and subarray."""
    if det.is_miri:
        # MIRI FAST full frame; subarrays scale with their size (not simulated yet)
        return 2.77504 * (sub.ysize * sub.xsize) / (1024 * 1032)
    cols_per_output = sub.xsize // sub.noutputs if sub.noutputs == 4 else sub.xsize
    if sub.noutputs == 4 and sub.xsize != det.full_shape[1]:
        cols_per_output = 512
    return (cols_per_output + ROW_OVERHEAD) * (sub.ysize + 1) * PIXEL_TIME
