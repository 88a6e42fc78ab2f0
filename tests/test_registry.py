"""detflow.registry, the one table of the detector1 steps, against jwst 3.0.0 and
stdatamodels themselves (not against another copy of the table)."""

import importlib

import pytest

from detflow.pipeline.order import MIRI_ORDER, NIR_ORDER
from detflow.registry import STEPS

pytestmark = pytest.mark.jwst


def _jwst_class(row):
    import jwst.step

    return getattr(jwst.step, row.class_name)


@pytest.mark.parametrize("name", sorted(STEPS))
def test_each_row_is_what_jwst_declares(name):
    row = STEPS[name]
    cls = _jwst_class(row)
    assert list(row.reftypes) == list(cls.reference_file_types)
    assert cls().skip is row.skip_default
    from jwst.pipeline import Detector1Pipeline

    assert Detector1Pipeline.step_defs[name] is cls  # the alias is the pipeline's


@pytest.mark.parametrize("name", sorted(STEPS))
def test_cal_step_keyword_is_the_schemas(name, tmp_path):
    """The attribute is written by stdatamodels as the row's keyword, with its title."""
    from astropy.io import fits
    from stdatamodels.jwst import datamodels as dm

    row = STEPS[name]
    model = dm.ImageModel((2, 2))
    setattr(model.meta.cal_step, row.cal_step, "COMPLETE")
    model.save(str(tmp_path / "x.fits"))
    header = fits.getheader(tmp_path / "x.fits")
    assert header[row.keyword] == "COMPLETE"
    assert header.comments[row.keyword] == row.title


def test_the_orders_are_jwsts():
    """Detector1Pipeline runs its steps in these orders (read from its source)."""
    import inspect

    from jwst.pipeline import calwebb_detector1

    source = inspect.getsource(calwebb_detector1.Detector1Pipeline.process)
    start = source.index('if instrument == "MIRI"')
    other = source.index("else:", start)
    tail = source.index("self.charge_migration.run(")  # the steps both run, after
    miri = source[start:other] + source[tail:]
    nir = source[other:tail] + source[tail:]

    def order(text):
        found = [(text.index(f"self.{n}.run("), n) for n in STEPS if f"self.{n}.run(" in text]
        return tuple(n for _, n in sorted(found))

    assert order(miri) == MIRI_ORDER
    assert order(nir) == NIR_ORDER


def test_every_implemented_step_module_takes_its_row():
    from detflow.steps import is_implemented

    for name in STEPS:
        if is_implemented(name):
            module = importlib.import_module(f"detflow.steps.{name}")
            assert module.STEP.info is STEPS[name], name
