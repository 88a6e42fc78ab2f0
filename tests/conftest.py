"""Shared seeded factory fixtures.

``make_uncal`` writes a small but valid JWST level-1b (``*_uncal.fits``) file
with stdatamodels, for tests that need a file on disk but not the physics of
the full simulator (``detflow.simulator``).
"""

import shutil

import numpy as np
import pytest


def write_small_uncal(
    path,
    *,
    instrument="NIRCAM",
    detector="NRCA1",
    shape=(2, 4, 32, 48),
    substrt=(1, 1),
    subarray="FULL",
    fastaxis=-1,
    slowaxis=2,
    noutputs=4,
    readpatt="RAPID",
    nframes=1,
    groupgap=0,
    seed=0,
    zeroframe=False,
):
    """Write a small level-1b file; returns (path, sci array).

    ``shape`` is ``(nints, ngroups, ny, nx)``; ``substrt`` is the 1-based
    ``(SUBSTRT1, SUBSTRT2)`` of the subarray corner on the full frame.
    """
    from stdatamodels.jwst import datamodels as dm

    rng = np.random.default_rng(seed)
    nints, ngroups, ny, nx = shape
    ramp = 10000 + np.cumsum(rng.integers(0, 50, size=shape), axis=1)
    sci = ramp.astype(np.uint16)
    m = dm.Level1bModel(data=sci)
    if zeroframe:
        m.zeroframe = (sci[:, 0] - 5).astype(np.uint16)
    meta = m.meta
    meta.instrument.name = instrument
    meta.instrument.detector = detector
    meta.exposure.type = "MIR_IMAGE" if instrument == "MIRI" else "NRC_IMAGE"
    meta.exposure.readpatt = readpatt
    meta.exposure.nframes = nframes
    meta.exposure.groupgap = groupgap
    meta.exposure.ngroups = ngroups
    meta.exposure.nints = nints
    meta.exposure.integration_start = 1
    meta.exposure.integration_end = nints
    meta.exposure.frame_time = 10.73677
    meta.exposure.group_time = 10.73677 * (nframes + groupgap)
    meta.exposure.start_time = 60000.0
    meta.exposure.zero_frame = bool(zeroframe)
    meta.subarray.name = subarray
    meta.subarray.xstart, meta.subarray.ystart = substrt
    meta.subarray.xsize, meta.subarray.ysize = nx, ny
    meta.subarray.fastaxis = fastaxis
    meta.subarray.slowaxis = slowaxis
    meta.exposure.noutputs = noutputs
    m.save(str(path))
    m.close()
    return str(path), sci


@pytest.fixture
def make_uncal(tmp_path):
    """Factory: ``make_uncal(name="x_uncal.fits", **kwargs) -> (path, sci)``."""

    def _make(name="jw00001001001_01101_00001_nrca1_uncal.fits", **kwargs):
        return write_small_uncal(tmp_path / name, **kwargs)

    return _make


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory):
    """Factory for module-scoped fixtures: ``module_tmp("name")`` is a fresh folder that is
    removed when the test module ends (full-frame exposures and jwst's step products take
    hundreds of MiB each; the suite's disk peak must stay small on CI)."""
    made = []

    def _make(name):
        made.append(tmp_path_factory.mktemp(name))
        return made[-1]

    yield _make
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


# --- simulated exposures, made once per test session --------------------------------------


@pytest.fixture(scope="session")
def sim_nircam_full(tmp_path_factory):
    """NIRCam full frame, RAPID, 10 groups x 1 integration (the README's demo exposure)."""
    from detflow.simulator import simulate

    return simulate("nircam", tmp_path_factory.mktemp("nircam_full"), ngroups=10, nints=1)


@pytest.fixture(scope="session")
def sim_nircam_sub640(tmp_path_factory):
    """NIRCam SUB640 (one output), RAPID, 8 groups x 2 integrations."""
    from detflow.simulator import simulate

    return simulate(
        "nircam", tmp_path_factory.mktemp("nircam_sub640"), subarray="SUB640", ngroups=8, nints=2
    )


@pytest.fixture(scope="session")
def sim_nircam_tso(tmp_path_factory):
    """NIRCam SUBGRISM64-like time-series stripe, four outputs, 6 groups x 20 integrations."""
    from detflow.simulator import simulate

    return simulate(
        "nircam", tmp_path_factory.mktemp("nircam_tso"), subarray="SUBGRISM64", ngroups=6,
        nints=20,
    )


@pytest.fixture(scope="session")
def sim_miri(tmp_path_factory):
    """MIRI imager full frame, FAST, 10 groups x 2 integrations."""
    from detflow.simulator import simulate

    return simulate("miri", tmp_path_factory.mktemp("miri_full"), ngroups=10, nints=2)


@pytest.fixture(scope="session")
def sim_miri_tso(tmp_path_factory):
    """MIRI SLITLESSPRISM (the LRS time-series subarray), FASTR1, 8 groups x 40
    integrations, with cosmic-ray showers."""
    from detflow.simulator import simulate

    return simulate("miri", tmp_path_factory.mktemp("miri_tso"), subarray="SLITLESSPRISM",
                    readpatt="FASTR1", ngroups=8, nints=40, showers=3)


@pytest.fixture(scope="session")
def sim_miri_segment(tmp_path_factory):
    """MIRI SUB64, FASTGRPAVG (4 frames averaged: linearity's INV_COEFFS path), 6 groups:
    segment 2 of 3 of a 9-integration exposure (INTSTART 4, INTEND 6)."""
    from detflow.simulator import simulate

    return simulate("miri", tmp_path_factory.mktemp("miri_segment"), subarray="SUB64",
                    readpatt="FASTGRPAVG", ngroups=6, nints=9, segment=2, ints_per_segment=3)


@pytest.fixture(scope="session")
def crds_offline(tmp_path_factory):
    """An offline CRDS set-up for running jwst (see tests/jwst_oracle.py); the environment
    is applied only while jwst runs."""
    from jwst_oracle import offline_crds

    root = tmp_path_factory.mktemp("crds")
    return offline_crds(root)


@pytest.fixture(autouse=True)
def _no_crds_leak():
    """No test may leave a CRDS environment behind for the next one."""
    import os

    before = os.environ.get("CRDS_PATH")
    yield
    assert os.environ.get("CRDS_PATH") == before, "a test leaked CRDS_PATH into the environment"


@pytest.fixture(scope="session")
def sim_nircam_bright2(tmp_path_factory):
    """NIRCam SUB320, BRIGHT2 (2 frames averaged, ZEROFRAME), 6 groups x 2 integrations."""
    from detflow.simulator import simulate

    return simulate(
        "nircam", tmp_path_factory.mktemp("nircam_bright2"), subarray="SUB320",
        readpatt="BRIGHT2", ngroups=6, nints=2,
    )


@pytest.fixture(scope="session")
def jwst_steps(tmp_path_factory, crds_offline, request):
    """Factory: ``jwst_steps("sim_nircam_sub640")`` -> {step: jwst product path}, one jwst
    run per simulated exposure and session (see tests/stepcheck.py)."""
    from stepcheck import jwst_step_products

    cache = {}

    def _get(sim_fixture):
        if sim_fixture not in cache:
            sim = request.getfixturevalue(sim_fixture)
            out = tmp_path_factory.mktemp(f"jwst_{sim_fixture}")
            cache[sim_fixture] = (sim, jwst_step_products(sim, out, crds_offline["CRDS_PATH"]))
        return cache[sim_fixture]

    return _get
