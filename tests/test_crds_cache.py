"""Reference resolution through a real (offline) CRDS cache, cross-checked with jwst.

A small CRDS cache is built from a simulation's reference files (mappings with
valid checksums, references in the cache layout). detflow's resolution must
pick, for every detector1 reference type, the same file jwst's own CRDS
look-up picks from the same cache.
"""

import shutil

import pytest
from crds_cache import DETECTOR1_REFTYPES, make_crds_cache
from jwst_oracle import crds_environment

from detflow.errors import ReferenceFileError
from detflow.io.exposure import open_exposure
from detflow.io.references import resolve_reference


@pytest.fixture
def isolated_exposure(sim_nircam_sub640, tmp_path):
    """The SUB640 exposure alone in a folder (no refs/ beside it)."""
    folder = tmp_path / "exposure"
    folder.mkdir()
    path = folder / sim_nircam_sub640.uncal.name
    shutil.copy(sim_nircam_sub640.uncal, path)
    return path


@pytest.fixture
def cache(sim_nircam_sub640, tmp_path):
    env = make_crds_cache(tmp_path / "crds_cache", sim_nircam_sub640.refs)
    with crds_environment(env):
        yield env


def test_resolves_every_reftype_from_the_cache(isolated_exposure, cache, sim_nircam_sub640):
    attrs = open_exposure(isolated_exposure).attrs
    for reftype in DETECTOR1_REFTYPES:
        found = resolve_reference(reftype.upper(), attrs)
        expected = sim_nircam_sub640.refs.get(reftype.upper())
        if expected is None:
            assert found == "N/A", reftype
        else:
            assert found.startswith(cache["CRDS_PATH"]), (reftype, found)
            assert found.endswith(expected.name), (reftype, found)


def test_override_beats_the_cache(isolated_exposure, cache, sim_nircam_sub640):
    attrs = open_exposure(isolated_exposure).attrs
    gain = str(sim_nircam_sub640.refs["GAIN"])
    assert resolve_reference("GAIN", attrs, override=gain) == gain


def test_no_cache_no_reference(isolated_exposure, monkeypatch):
    monkeypatch.delenv("CRDS_PATH", raising=False)
    attrs = open_exposure(isolated_exposure).attrs
    with pytest.raises(ReferenceFileError, match="override_gain"):
        resolve_reference("GAIN", attrs)


@pytest.mark.jwst
def test_jwst_picks_the_same_files_from_the_same_cache(isolated_exposure, cache, tmp_path):
    """jwst, run with this cache and no overrides, records in its product the very files
    detflow resolves (meta.ref_file), so the test cache behaves like a real one."""
    from jwst.pipeline import Detector1Pipeline

    attrs = open_exposure(isolated_exposure).attrs
    out = tmp_path / "jwst_out"
    out.mkdir()
    rate = Detector1Pipeline.call(
        str(isolated_exposure), output_dir=str(out), save_results=False,
        steps={"ramp_fit": {"maximum_cores": "1"}},
    )
    used = {k: v["name"] for k, v in rate.meta.ref_file.instance.items() if "name" in v}
    assert {"mask", "saturation", "superbias", "linearity", "dark", "gain", "readnoise"} <= set(
        used)
    for reftype, name in used.items():
        if reftype == "crds":
            continue
        ours = resolve_reference(reftype.upper(), attrs)
        jwst_name = name.split("/")[-1].replace("crds://", "")
        assert ours.split("/")[-1] == jwst_name or (ours == "N/A" and "N/A" in name.upper()), (
            reftype, ours, name)
