"""gain_scale: rescale count rates taken with a non-standard gain (jwst ``GainScaleStep``).

Works on a rate-like Dataset (``rate``: variables ``data``, ``err``, ``var_poisson``,
``var_rnoise``, ``dq`` on ``(y, x)``; ``rateints``: the same on ``(integration, y, x)``).

The gain factor is ``attrs["gain_factor"]`` when set (ramp_fit copies the GAIN file's
GAINFACT there, as jwst's ``meta.exposure.gain_factor``; a product read from FITS may
carry it as the ``GAINFACT`` keyword of its primary header), else the GAIN reference's
GAINFACT (``attrs["gain_factor"]`` of the reference). With a factor ``g``:
``data *= g`` and ``err *= g`` (float32 times ``g`` rounded to float32, as NumPy does with
a Python float), ``var_poisson *= g**2`` and ``var_rnoise *= g**2`` (``g**2`` computed in
float64, then rounded to float32), and ``attrs["gain_factor"] = g``. Without a factor
the step is SKIPPED (the usual case: only NIRSpec has non-standard gain settings).

Chunk contract: blockwise, no halo; lazy multiplications.
"""

import numpy as np

from detflow.steps.base import StepDef, record

GAIN_FACTOR = "gain_factor"


def gain_factor(ds, ref):
    """The factor jwst applies (a Python float), or None."""
    value = ds.attrs.get(GAIN_FACTOR)
    if value is None:
        value = (ds.attrs.get("primary_header") or {}).get("GAINFACT")
    if value is None and ref is not None:
        value = ref.attrs.get(GAIN_FACTOR)
    return None if value is None else float(value)


def _references_needed(ds, params):
    """jwst reads the GAIN only when the input carries no gain factor."""
    return () if gain_factor(ds, None) is not None else ("gain",)


def apply(ds, refs, params):
    """Lazy gain_scale (see the module docstring)."""
    factor = gain_factor(ds, refs.get("gain"))
    if factor is None:
        return record(ds, STEP, "SKIPPED", params, reason="GAINFACT not found")
    out = ds.copy()
    for name in ("data", "err"):
        if name in out:
            out[name] = out[name] * np.float32(factor)
    square = np.float32(factor**2)
    for name in ("var_poisson", "var_rnoise"):
        if name in out and out[name].size > 0:
            out[name] = out[name] * square
    out = record(out, STEP, "COMPLETE", params, gain_factor=factor)
    out.attrs[GAIN_FACTOR] = factor
    return out


STEP = StepDef(
    __name__,
    references_needed=_references_needed,
    params={},
    apply=apply,
)
