"""Run the official jwst 3.0.0 pipeline offline, as the correctness oracle.

CRDS is unreachable here: ``offline_crds(tmpdir)`` points CRDS at a cache with
a hand-written server config, turns off parameter reference files, and every
reference type a step declares gets an ``override_<reftype>`` (a file, or
``N/A``), so no step asks CRDS for anything. See
../shared/JWST_DETECTOR1_NOTES.md, "Running jwst offline".
"""

import contextlib
import os
from pathlib import Path

SERVER_CONFIG = {
    "observatory": "jwst",
    "operational_context": "jwst_0000.pmap",
    "edit_context": "jwst_0000.pmap",
    "versions_context": "jwst_0000.pmap",
    "bad_files": "",
    "bad_files_list": [],
    "mappings": [],
    "force_remote_mode": False,
    "effective_mode": "local",
    "checked_date": "2026-11-24",
    "last_synced": "2026-11-24 00:00:00",
    "download_metadata": [],
    "reference_url": {},
    "mapping_url": {},
    "crds_version": {"str": "14.0.3"},
}

#: every reference type a detector1 step may ask for
ALL_REFTYPES = (
    "mask", "saturation", "superbias", "ipc", "refpix", "sirskernel", "linearity", "dark",
    "gain", "readnoise", "emicorr", "rscd", "reset", "pictureframe", "flat", "pastasoss",
)


def offline_crds(root):
    """Write a CRDS cache config under ``root``; returns the environment that uses it.

    Nothing is changed in ``os.environ``: apply it with :func:`crds_environment`.
    """
    root = Path(root)
    cfg = root / "config" / "jwst"
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "server_config").write_text(repr(SERVER_CONFIG))
    return {
        "CRDS_PATH": str(root),
        "CRDS_SERVER_URL": "https://crds-offline.invalid",
        "CRDS_CONTEXT": "jwst_0000.pmap",
        "CRDS_MODE": "local",
        "STPIPE_DISABLE_CRDS_STEPPARS": "true",
    }


def _clear_crds_caches():
    from crds.core import utils

    utils.clear_function_caches()


@contextlib.contextmanager
def crds_environment(env):
    """Apply a CRDS environment for the duration of a block, then restore the old one.

    The crds client caches its configuration and mappings per process; the caches
    are cleared on entry and exit so that one test's cache never leaks into another.
    """
    old = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    _clear_crds_caches()
    try:
        yield env
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _clear_crds_caches()


def step_overrides(refs):
    """``steps`` dict for Detector1Pipeline: every reference type overridden (file or N/A).

    ``refs`` maps reference types (any case) to paths.
    """
    from jwst.pipeline import Detector1Pipeline

    refs = {k.lower(): str(v) for k, v in refs.items()}
    steps = {}
    for name, cls in Detector1Pipeline.step_defs.items():
        params = {}
        for reftype in cls.reference_file_types:
            params[f"override_{reftype}"] = refs.get(reftype, "N/A")
        steps[name] = params
    return steps


def run_detector1(uncal, refs, output_dir, crds_root, steps=None, **pipeline_kwargs):
    """Run jwst's Detector1Pipeline on ``uncal`` with the given references.

    Returns the rate model (ImageModel) in memory; products are saved into
    ``output_dir`` (``*_rate.fits``, ``*_rateints.fits``).
    """
    from jwst.pipeline import Detector1Pipeline

    all_steps = step_overrides(refs)
    # single-core ramp fitting: the multi-core path of stcal 1.20 has a bug (notes, gotcha 2)
    all_steps["ramp_fit"]["maximum_cores"] = "1"
    all_steps["jump"]["maximum_cores"] = "1"
    for name, params in (steps or {}).items():
        all_steps.setdefault(name, {}).update(params)
    with crds_environment(offline_crds(crds_root)):
        return Detector1Pipeline.call(
            str(uncal), steps=all_steps, output_dir=str(output_dir), save_results=True,
            **pipeline_kwargs,
        )


def truth_agreement(rate, truth_path):
    """Median and robust scatter (1.4826 MAD) of ``(rate - truth) / ERR`` over unflagged pixels.

    ``rate`` is an ImageModel or a path to a ``*_rate.fits``; unflagged means
    DQ == 0, finite SCI and ERR > 0. Returns ``(median, scatter, npix)``.
    """
    import numpy as np
    from astropy.io import fits
    from stdatamodels.jwst import datamodels as dm

    model = dm.open(rate) if isinstance(rate, (str, Path)) else rate
    truth = fits.getdata(truth_path, "SCI").astype(np.float64)
    sci, err, dq = (np.asarray(a, dtype=np.float64) for a in (model.data, model.err, model.dq))
    good = (dq == 0) & np.isfinite(sci) & (err > 0)
    z = (sci[good] - truth[good]) / err[good]
    med = float(np.median(z))
    return med, float(1.4826 * np.median(np.abs(z - med))), int(good.sum())


def assert_products_identical(ours, theirs):
    """detflow's rate/rateints product equals jwst's to the bit: the same datamodel
    class, DQ, and SCI, ERR, VAR_POISSON and VAR_RNOISE identical (NaNs where jwst's
    are), and the same ``meta.cal_step``, ``gain_factor`` included."""
    import numpy as np
    from stdatamodels.jwst import datamodels as dm

    with dm.open(str(ours)) as a, dm.open(str(theirs)) as b:
        assert type(a) is type(b)
        np.testing.assert_array_equal(a.dq, b.dq, err_msg="DQ")
        for name in ("data", "err", "var_poisson", "var_rnoise"):
            np.testing.assert_array_equal(np.asarray(getattr(a, name), np.float32),
                                          np.asarray(getattr(b, name), np.float32),
                                          err_msg=name)
        assert a.meta.cal_step.instance == b.meta.cal_step.instance
        assert a.meta.exposure.gain_factor == b.meta.exposure.gain_factor
