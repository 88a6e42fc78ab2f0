"""superbias: subtract the SUPERBIAS reference image (jwst ``SuperBiasStep``).

* NaN in the superbias becomes 0;
* ``data -= bias`` for every integration and group (float32);
* ``pixeldq |= superbias dq``;
* ``zeroframe -= bias`` where the exposure has a ZEROFRAME (``ZEROFRAM`` true), but a
  ZEROFRAME value of 0 (unusable data) stays 0.

jwst records SKIPPED when the SUPERBIAS reference is N/A. Superstripe exposures
(``SSTR_NST > 0``, a 3-D superbias per stripe and a 3-D PIXELDQ) do not fit detflow's
data contract and are refused before any step runs
(:func:`detflow.steps.base.check_readout`).

Chunk contract: blockwise, no halo; the SUPERBIAS is cut and chunked like the exposure.
The work is lazy xarray arithmetic (no kernel needed).
"""

import numpy as np
import xarray as xr

from detflow.steps.base import StepDef, as_float32, has_zeroframe, record


def apply(ds, refs, params):
    """Lazy superbias subtraction (see the module docstring)."""
    out = as_float32(ds)
    ref = refs.get("superbias")
    if ref is None:
        return record(out, STEP, "SKIPPED", params, reason="no SUPERBIAS reference file")
    bias = ref["sci"].astype(np.float32).transpose("y", "x")
    bias = xr.where(np.isnan(bias), np.float32(0.0), bias).astype(np.float32)
    out["data"] = (out["data"] - bias).transpose(*ds["data"].dims)
    if "dq" in ref:
        out["pixeldq"] = (ds["pixeldq"] | ref["dq"].astype(np.uint32)).transpose(
            *ds["pixeldq"].dims)
    if has_zeroframe(out):
        zf = out["zeroframe"]
        out["zeroframe"] = xr.where(zf == 0.0, np.float32(0.0), zf - bias).astype(
            np.float32).transpose(*zf.dims)
    return record(out, STEP, "COMPLETE", params)


STEP = StepDef(
    __name__,
    params={},
    reference_pixels="pointwise",
    apply=apply,
)
