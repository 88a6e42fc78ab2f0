"""What jwst 3.0.0 accepts, detflow accepts (issue 11, section 4).

Each case is one that jwst's own step code handles (read from its sources and checked
against jwst here where that is cheap) and that detflow refused before: steps given
``N/A`` for their only required reference, steps that jwst skips or completes without
reading a reference, reference datamodel objects as overrides, and
``persistence_time`` reset to None.
"""

import dask.array
import numpy as np
import pytest
from stdatamodels.jwst import datamodels as dm

from detflow import dqflags
from detflow.io.exposure import open_exposure
from detflow.pipeline.builder import apply_step

NY, NX = 24, 40

#: steps whose only required reference is this type; jwst records SKIPPED for N/A
SINGLE_REFERENCE_STEPS = {
    "dq_init": "mask",
    "saturation": "saturation",
    "ipc": "ipc",
    "superbias": "superbias",
    "linearity": "linearity",
    "dark_current": "dark",
}


def _no_refs(tmp_path):
    """An empty reference folder: resolving any reference there fails."""
    empty = tmp_path / "no_refs"
    empty.mkdir(exist_ok=True)
    return str(empty)


@pytest.mark.parametrize("step", sorted(SINGLE_REFERENCE_STEPS))
def test_na_for_the_only_reference_records_skipped(step, make_uncal):
    uncal, _ = make_uncal(shape=(1, 4, NY, NX))
    ds = open_exposure(uncal)
    out = apply_step(step, ds, {f"override_{SINGLE_REFERENCE_STEPS[step]}": "N/A"})
    from detflow.steps import get_step

    assert out.attrs["cal_step"][get_step(step).cal_step] == "SKIPPED"
    got = out.compute()
    np.testing.assert_array_equal(got["data"].values, ds["data"].values.astype(np.float32))
    np.testing.assert_array_equal(got["groupdq"].values, ds["groupdq"].values)


@pytest.mark.jwst
def test_dq_init_na_equals_jwst(make_uncal, crds_offline):
    from jwst.dq_init import DQInitStep
    from jwst_oracle import crds_environment

    uncal, _ = make_uncal(shape=(1, 3, NY, NX))
    with crds_environment(crds_offline):
        theirs = DQInitStep.call(uncal, override_mask="N/A")
    ours = apply_step("dq_init", open_exposure(uncal), {"override_mask": "N/A"})
    assert theirs.meta.cal_step.dq_init == ours.attrs["cal_step"]["dq_init"] == "SKIPPED"
    np.testing.assert_array_equal(ours["data"].values, theirs.data)
    np.testing.assert_array_equal(ours["pixeldq"].values, theirs.pixeldq)


def test_jump_on_two_groups_skips_before_reading_references(make_uncal, tmp_path):
    """jwst's JumpStep returns SKIPPED for NGROUPS <= 2 before it asks for GAIN or
    READNOISE; detflow must not resolve them either (here none exists)."""
    uncal, _ = make_uncal(shape=(1, 2, NY, NX))
    out = apply_step("jump", open_exposure(uncal), {}, refs_dir=_no_refs(tmp_path))
    assert out.attrs["cal_step"]["jump"] == "SKIPPED"


def test_dry_run_of_jump_on_two_groups_looks_for_no_references(make_uncal, tmp_path,
                                                               capsys, monkeypatch):
    """The dry run chooses references as the run does: none for that jump (it failed
    looking for GAIN, which the run never reads)."""
    import asdf

    from detflow.cli import main

    monkeypatch.delenv("CRDS_PATH", raising=False)
    uncal, _ = make_uncal(shape=(1, 2, NY, NX))
    pars = tmp_path / "jump_pars.asdf"
    asdf.AsdfFile({"class": "jwst.jump.jump_step.JumpStep", "name": "jump",
                   "parameters": {}}).write_to(pars)
    args = ["run", str(pars), uncal, "--refs", _no_refs(tmp_path), "--dry-run"]
    assert main(args) == 0, capsys.readouterr().err
    assert "run  jump" in capsys.readouterr().out


def test_gain_scale_uses_the_inputs_gain_factor_without_a_gain_file(tmp_path):
    """jwst's GainScaleStep reads no GAIN when ``meta.exposure.gain_factor`` is set."""
    import xarray as xr

    rate = xr.Dataset(
        {"data": (("y", "x"), np.full((4, 5), 2.0, np.float32)),
         "err": (("y", "x"), np.full((4, 5), 0.5, np.float32)),
         "var_poisson": (("y", "x"), np.full((4, 5), 0.1, np.float32)),
         "var_rnoise": (("y", "x"), np.full((4, 5), 0.2, np.float32)),
         "dq": (("y", "x"), np.zeros((4, 5), np.uint32))},
        coords={"y": np.arange(4), "x": np.arange(5)},
        attrs={"instrument": "NIRSPEC", "detector": "NRS1", "gain_factor": 1.5,
               "source": str(tmp_path / "x_rate.fits")},
    )
    out = apply_step("gain_scale", rate, {}, refs_dir=_no_refs(tmp_path))
    assert out.attrs["cal_step"]["gain_scale"] == "COMPLETE"
    np.testing.assert_array_equal(out["data"].values, np.float32(2.0) * np.float32(1.5))


def _mask_model(seed=3):
    rng = np.random.default_rng(seed)
    dq = np.where(rng.random((NY, NX)) < 0.1, dqflags.DO_NOT_USE | dqflags.DEAD, 0)
    model = dm.MaskModel(dq=dq.astype(np.uint32))
    meta = model.meta
    meta.reftype = "MASK"
    meta.instrument.name = "NIRCAM"
    meta.instrument.detector = "NRCA1"
    meta.author, meta.pedigree, meta.description = "test", "DUMMY", "mask"
    meta.useafter = "2020-01-01T00:00:00"
    meta.telescope = "JWST"
    meta.subarray.name = "FULL"
    meta.subarray.xstart, meta.subarray.ystart = 1, 1
    meta.subarray.xsize, meta.subarray.ysize = NX, NY
    return model


def test_a_reference_datamodel_works_as_an_override(make_uncal, tmp_path):
    uncal, _ = make_uncal(shape=(1, 3, NY, NX))
    model = _mask_model()
    before = model.dq.copy()
    out = apply_step("dq_init", open_exposure(uncal), {"override_mask": model}).compute()
    assert out.attrs["cal_step"]["dq_init"] == "COMPLETE"
    np.testing.assert_array_equal(out["pixeldq"].values, before)
    np.testing.assert_array_equal(model.dq, before)  # the user's model is not changed
    # and the same object given again is not written again
    from detflow.io.references import reference_model_path

    assert reference_model_path(model) == reference_model_path(model)


def test_a_reference_datamodel_works_as_a_step_class_override(make_uncal):
    from detflow import DQInitStep

    uncal, _ = make_uncal(shape=(1, 3, NY, NX))
    model = _mask_model(seed=4)
    out = DQInitStep.call(uncal, override_mask=model)
    np.testing.assert_array_equal(out["pixeldq"].values, model.dq)


@pytest.mark.parametrize("value", [0, -5])
def test_persistence_time_not_positive_becomes_none(value, make_uncal):
    """jwst sets ``persistence_time`` to None when it is 0 or negative, then fails."""
    uncal, _ = make_uncal(shape=(1, 3, NY, NX))
    out = apply_step("persistence", open_exposure(uncal),
                     {"persistence_time": value, "skip": False})
    assert out.attrs["cal_step"]["persistence"] == "FAILED"
    assert out.attrs["provenance"][-1]["parameters"]["persistence_time"] is None


# -- the exposure's corner and ZEROFRAM, read as jwst reads them -------------------------


def _without_keywords(path, *keywords):
    from astropy.io import fits

    with fits.open(path, mode="update") as hdul:
        for keyword in keywords:
            del hdul[0].header[keyword]
    return path


@pytest.mark.parametrize("missing", [("SUBSTRT1",), ("SUBSTRT1", "SUBSTRT2")])
def test_a_subarray_without_its_corner_is_refused(missing, make_uncal):
    """Assuming (1, 1) would cut every reference file at the wrong place; jwst stops too
    ("Can't determine science file subarray properties")."""
    from detflow.errors import InputFileError

    uncal, _ = make_uncal(shape=(1, 3, NY, NX), substrt=(101, 201))
    _without_keywords(uncal, *missing)
    with pytest.raises(InputFileError) as info:
        open_exposure(uncal)
    message = str(info.value)
    assert uncal in message and " and ".join(missing) in message and "not full frame" in message
    from detflow import from_datamodel

    with dm.RampModel(uncal) as model:  # the same from a datamodel (whose ASDF extension
        for keyword in missing:         # still held the corner)
            setattr(model.meta.subarray, {"SUBSTRT1": "xstart", "SUBSTRT2": "ystart"}[keyword],
                    None)
        with pytest.raises(InputFileError, match="not full frame"):
            from_datamodel(model)


def test_full_frame_data_determine_their_corner(make_uncal):
    uncal, _ = make_uncal(shape=(1, 2, 2048, 2048), noutputs=4)
    ds = open_exposure(_without_keywords(uncal, "SUBSTRT1", "SUBSTRT2"))
    assert ds.attrs["substrt1"] == ds.attrs["substrt2"] == 1
    assert int(ds.x[0]) == int(ds.y[0]) == 0 and int(ds.x[-1]) == 2047


@pytest.mark.parametrize("flag", ["absent", None, False, True])
def test_refpix_corrects_the_zeroframe_only_when_zeroframe_is_true(flag, make_uncal):
    """jwst corrects the ZEROFRAME only when ``meta.exposure.zero_frame`` is true (an
    absent ZEROFRAM is None there); detflow's refpix took an absent ``zeroframe``
    attribute (a Dataset built by hand) as true."""
    uncal, _ = make_uncal(shape=(1, 3, NY, NX), zeroframe=True, noutputs=1,
                          subarray="SUB160")
    ds = open_exposure(uncal)
    pixeldq = np.zeros((NY, NX), np.uint32)  # the bottom and left reference pixels
    pixeldq[:4, :] = pixeldq[:, :4] = dqflags.REFERENCE_PIXEL
    ds["pixeldq"] = (("y", "x"), dask.array.from_array(pixeldq))
    if flag == "absent":
        del ds.attrs["zeroframe"]
    else:
        ds.attrs["zeroframe"] = flag
    out = apply_step("refpix", ds, {}).compute()
    assert out.attrs["cal_step"]["refpix"] == "COMPLETE"
    raw = ds["zeroframe"].values.astype(np.float32)
    if flag is True:
        assert not np.array_equal(out["zeroframe"].values, raw)
    else:
        np.testing.assert_array_equal(out["zeroframe"].values, raw)


@pytest.mark.parametrize("keyword, value", [("MSTR_RD1", 4), ("SSTR_NST", 2)])
@pytest.mark.parametrize("step", ["dq_init", "saturation", "superbias", "jump"])
def test_stripe_readouts_are_refused_by_every_step(step, keyword, value, make_uncal):
    """jwst cuts each reference stripe by stripe for these; detflow does not yet, so no
    step may run on them with a plain rectangular cut (only superbias and refpix refused
    them before). Skipping a step still works."""
    from detflow.errors import InputFileError

    uncal, _ = make_uncal(shape=(1, 3, NY, NX))
    ds = open_exposure(uncal)
    ds.attrs["primary_header"] = {**ds.attrs["primary_header"], keyword: value}
    na = {} if step == "jump" else {f"override_{SINGLE_REFERENCE_STEPS[step]}": "N/A"}
    with pytest.raises(InputFileError, match=f"{keyword} = {value}") as info:
        apply_step(step, ds, na)  # refused before any reference is looked for
    assert uncal in str(info.value) and "stripe" in str(info.value)
    from detflow.steps import get_step

    cal_step = get_step(step).cal_step
    assert apply_step(step, ds, {"skip": True}).attrs["cal_step"][cal_step] == "SKIPPED"
    if step != "jump":  # an ordinary readout (SSTR_NST = 0) runs: N/A, so SKIPPED
        ds.attrs["primary_header"][keyword] = None if keyword == "MSTR_RD1" else 0
        assert apply_step(step, ds, na).attrs["cal_step"][cal_step] == "SKIPPED"
