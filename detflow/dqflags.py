"""JWST data-quality bit values, defined once for the whole package.

The values are those of ``stdatamodels.jwst.datamodels.dqflags.pixel``; they
are copied here so the kernels do not depend on stdatamodels.
"""

DO_NOT_USE = 1 << 0
SATURATED = 1 << 1
JUMP_DET = 1 << 2
DROPOUT = 1 << 3
OUTLIER = 1 << 4
PERSISTENCE = 1 << 5
AD_FLOOR = 1 << 6
CHARGELOSS = 1 << 7
UNRELIABLE_ERROR = 1 << 8
NON_SCIENCE = 1 << 9
DEAD = 1 << 10
HOT = 1 << 11
WARM = 1 << 12
LOW_QE = 1 << 13
RC = 1 << 14
TELEGRAPH = 1 << 15
NONLINEAR = 1 << 16
BAD_REF_PIXEL = 1 << 17
NO_FLAT_FIELD = 1 << 18
NO_GAIN_VALUE = 1 << 19
NO_LIN_CORR = 1 << 20
NO_SAT_CHECK = 1 << 21
UNRELIABLE_BIAS = 1 << 22
UNRELIABLE_DARK = 1 << 23
UNRELIABLE_SLOPE = 1 << 24
UNRELIABLE_FLAT = 1 << 25
OPEN = 1 << 26
ADJ_OPEN = 1 << 27
FLUX_ESTIMATED = 1 << 28
MSA_FAILED_OPEN = 1 << 29
OTHER_BAD_PIXEL = 1 << 30
REFERENCE_PIXEL = 1 << 31

#: Mapping of every flag name to its bit value, as in ``dqflags.pixel``.
PIXEL = {
    name: value
    for name, value in dict(globals()).items()
    if name.isupper() and isinstance(value, int)
}

#: The subset of flags that can be set in a GROUPDQ array (uint8).
GROUP = {name: PIXEL[name] for name in (
    "DO_NOT_USE", "SATURATED", "JUMP_DET", "DROPOUT", "OUTLIER",
    "PERSISTENCE", "AD_FLOOR", "CHARGELOSS",
)}

GOOD = 0


def interpret(value):
    """Names of the flags set in one DQ value: ``interpret(3) -> ['DO_NOT_USE', 'SATURATED']``."""
    value = int(value)
    return [name for name, bit in PIXEL.items() if value & bit]
