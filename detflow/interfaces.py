"""jwst's Python interfaces, on detflow's lazy graph.

``Detector1Pipeline`` and one class per step (``RefPixStep``, ``JumpStep``, ...)
behave as jwst's do: attribute access to steps and parameters
(``p.jump.rejection_threshold = 6``), ``.run(input)``, the class method
``.call(input, config_file=..., steps={...}, **params)``, ``.spec``,
``save_results`` / ``output_dir`` / ``save_calibrated_ramp`` and jwst's product
names. ``input`` is a file path or URL, an exposure Dataset
(:func:`detflow.open_exposure`) or a previous step's result.

Results are lazy xarray Datasets (arrays compute on access, e.g.
``result["data"].values``); products that are asked for are computed in one
pass over the graph and written atomically.
"""

from pathlib import Path

import xarray as xr

from detflow.errors import ParameterError
from detflow.io.datamodels import from_datamodel, is_datamodel, to_datamodel
from detflow.io.products import open_exposure_or_product
from detflow.pipeline.builder import apply_step, build_detector1
from detflow.pipeline.params import read_parameter_file
from detflow.pipeline.plan import Outputs, exposure_paths, plan_exposure, plan_step
from detflow.program import persistence_chains
from detflow.registry import STEP_BY_CLASS, STEPS
from detflow.runtime.execute import compute_and_write, compute_results
from detflow.steps import GENERIC_PARAMS, STEP_NAMES, get_step, is_implemented
from detflow.steps.ramp_fit import NO_PRODUCT

__all__ = ["Step", "Detector1Pipeline", "STEP_CLASS_BY_NAME"] + sorted(STEP_BY_CLASS)


def _as_dataset(data, tiling=None):
    """An exposure or product Dataset from what a step or the pipeline was given: a
    Dataset, a file path or URL (a raw or ramp exposure, or a rate/rateints product for
    gain_scale), or a jwst datamodel (:func:`detflow.io.datamodels.from_datamodel`)."""
    if isinstance(data, xr.Dataset):
        return data
    if is_datamodel(data):
        return from_datamodel(data)
    if isinstance(data, (str, Path)):
        return open_exposure_or_product(str(data), tiling=tiling)[1]
    raise ParameterError(
        f"cannot calibrate a {type(data).__name__}: give a file path or URL, a Dataset or "
        "a jwst datamodel"
    )


def _computed(result):
    """A step's result with its arrays computed (one pass for ramp_fit's products)."""
    if isinstance(result, dict):
        kinds = [k for k, v in result.items() if v is not None]
        values = compute_results([result[k] for k in kinds])
        return {**result, **dict(zip(kinds, values, strict=True))}
    return compute_results([result])[0]


def _as_models(result):
    """A step's result as the jwst datamodels jwst returns (computed): a RampModel for a
    ramp, ``(ImageModel, CubeModel)`` from ramp fitting (None where jwst makes none)."""
    if isinstance(result, dict):
        out = []
        for kind in ("rate", "rateints"):
            ds = result.get(kind)
            if ds is not None and NO_PRODUCT in ds:  # (computed by _computed)
                ds = None if bool(ds[NO_PRODUCT]) else ds.drop_vars(NO_PRODUCT)
            out.append(None if ds is None else to_datamodel(ds))
        return tuple(out)
    return to_datamodel(result)


def _generic_defaults(skip_default=False):
    out = dict(GENERIC_PARAMS)
    out["skip"] = skip_default
    return out


class _ClassSpec:
    """``Step.spec`` on the class, as jwst has it: the step's parameter spec as text."""

    def __get__(self, obj, cls):
        return cls._spec()


class Step:
    """A detector1 step with jwst's interface; subclasses name the step (``step_name``)."""

    step_name = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.step_name = STEP_BY_CLASS[cls.__name__]  # its detflow.registry row
    spec = _ClassSpec()

    def __init__(self, name=None, config_file=None, refs_dir=None, **params):
        object.__setattr__(self, "_params", self._defaults())
        object.__setattr__(self, "name", name or self.step_name)
        # detflow's own: a folder of reference files to search (see detflow.io.references)
        object.__setattr__(self, "refs_dir", refs_dir)
        if config_file is not None:
            self._update(_step_params_from_file(config_file, self.step_name))
        self._update(params)

    # -- parameters ----------------------------------------------------------------------
    @classmethod
    def _defaults(cls):
        if is_implemented(cls.step_name):
            return get_step(cls.step_name).defaults()
        spec = STEPS[cls.step_name]
        out = _generic_defaults(bool(spec and spec.skip_default))
        for reftype in spec.reftypes if spec else ():
            out[f"override_{reftype}"] = None
        return out

    @property
    def product_suffix(self):
        """``<root>_<suffix>.fits`` of the step's saved result: the ``suffix`` parameter,
        else jwst's (the step alias, :mod:`detflow.registry`)."""
        return self.suffix or STEPS[self.step_name].product_suffix

    def _update(self, params):
        for key, value in dict(params or {}).items():
            setattr(self, key, value)

    def __getattr__(self, key):
        params = self.__dict__.get("_params", {})
        if key in params:
            return params[key]
        raise AttributeError(f"{type(self).__name__} has no parameter {key!r}")

    def __setattr__(self, key, value):
        if key not in self._params:
            raise ParameterError(
                f"step {self.step_name} has no parameter {key!r}; its parameters are: "
                f"{', '.join(sorted(self._params))}"
            )
        if is_implemented(self.step_name):
            value = get_step(self.step_name).check_params({key: value})[key]
        self._params[key] = value

    def get_pars(self):
        """All parameters and their current values (as jwst's ``Step.get_pars``)."""
        return dict(self._params)

    @classmethod
    def _spec(cls):
        if not is_implemented(cls.step_name):
            return ""
        return get_step(cls.step_name).spec()

    # -- running ---------------------------------------------------------------------
    def run(self, data):
        """Apply the step to an exposure; returns its result.

        ``data`` is a file path or URL, a Dataset or a previous step's result: the result
        is then a lazy Dataset (ramp_fit: ``(rate, rateints)``). Given a jwst datamodel
        (``Level1bModel``, ``RampModel``, ``ImageModel``...), the result is computed and
        returned as the model class jwst returns: ``RampModel`` after a ramp step,
        ``(ImageModel, CubeModel)`` from ramp_fit, the input's class from gain_scale.

        With ``save_results`` the result is computed and written as
        ``<output_dir>/<root>_<suffix>.fits`` (suffix: the step alias by default).
        """
        result, plan = self._plan(_as_dataset(data), compute=is_datamodel(data))
        compute_and_write(plan)
        if is_datamodel(data):  # a model in, jwst's model class out
            return _as_models(result)
        if isinstance(result, dict):  # ramp_fit returns (rate, rateints) as jwst does
            return result.get("rate"), result.get("rateints")
        return result

    def plan(self, data):
        """What :meth:`run` writes, lazily: a :class:`~detflow.pipeline.plan.ProductPlan`
        (nothing computed)."""
        return self._plan(_as_dataset(data))[1]

    def _plan(self, ds, compute=False):
        """``(result, plan)``: the step's lazy result (computed when ``compute``: a
        datamodel was given, the models are made from it) and what :meth:`run` writes:
        the persistence file (written whether or not results are saved, as jwst does),
        the dark_output, and with ``save_results`` the result."""
        # stpipe runs a step that has no parent pipeline even when skip is set ("Step
        # run as standalone, so skip set to False")
        self._params["skip"] = False
        result = apply_step(self.step_name, ds, self._params, self.refs_dir)
        ptime = self._params.get("persistence_time")
        if self.step_name == "persistence" and ptime is not None and ptime <= 0:
            self._params["persistence_time"] = None  # as jwst resets it
        if compute:  # computed once, for the models and any saved product
            result = _computed(result)
        plan = plan_step(self.step_name, ds, result, self._params,
                         Outputs(output_dir=self.output_dir or ".", output_file=self.output_file),
                         save_results=self.save_results, suffix=self.product_suffix,
                         refs_dir=self.refs_dir)
        return result, plan

    @classmethod
    def call(cls, data, config_file=None, **params):
        """Create the step (from ``config_file``, then ``params``) and run it.

        As in jwst, a step called (or run) on its own runs even if it is skipped by
        default or ``skip=True`` is given: stpipe sets ``skip`` to False for a step
        without a parent pipeline.
        """
        return cls(config_file=config_file, **params).run(data)


def _intermediates(value):
    """``save_intermediates`` as a tuple of step names (``"all"``: every step)."""
    if value is None or value == () or value == []:
        return ()
    names = list(Detector1Pipeline.step_defs) if value == "all" else (
        [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value))
    unknown = [n for n in names if n not in Detector1Pipeline.step_defs]
    if unknown:
        raise ParameterError(f"save_intermediates: unknown steps {unknown}; detector1 "
                             f"steps are: {', '.join(Detector1Pipeline.step_defs)}")
    return tuple(n for n in names if n != "gain_scale")


def _step_params_from_file(path, step_name):
    pars = read_parameter_file(path)
    if pars["step"] == step_name:
        return pars["parameters"]
    if pars["step"] is None:
        return pars["steps"].get(step_name, {})
    raise ParameterError(
        f"{path}: a parameter file for {pars['class']}, not for the {step_name} step"
    )


# jwst's step classes; each takes its alias from its row in detflow.registry
# (Step.__init_subclass__).

class GroupScaleStep(Step):
    """jwst's GroupScaleStep."""

class DQInitStep(Step):
    """jwst's DQInitStep."""

class EmiCorrStep(Step):
    """jwst's EmiCorrStep."""

class SaturationStep(Step):
    """jwst's SaturationStep."""

class IPCStep(Step):
    """jwst's IPCStep."""

class SuperBiasStep(Step):
    """jwst's SuperBiasStep."""

class RefPixStep(Step):
    """jwst's RefPixStep."""

class FirstFrameStep(Step):
    """jwst's FirstFrameStep."""

class LastFrameStep(Step):
    """jwst's LastFrameStep."""

class ResetStep(Step):
    """jwst's ResetStep."""

class LinearityStep(Step):
    """jwst's LinearityStep."""

class RscdStep(Step):
    """jwst's RscdStep."""

class DarkCurrentStep(Step):
    """jwst's DarkCurrentStep."""

class ChargeMigrationStep(Step):
    """jwst's ChargeMigrationStep."""

class JumpStep(Step):
    """jwst's JumpStep."""

class PictureFrameStep(Step):
    """jwst's PictureFrameStep."""

class CleanFlickerNoiseStep(Step):
    """jwst's CleanFlickerNoiseStep."""

class PersistenceStep(Step):
    """jwst's PersistenceStep."""

class RampFitStep(Step):
    """jwst's RampFitStep."""

class GainScaleStep(Step):
    """jwst's GainScaleStep."""


#: step alias -> class, for every detector1 step.
STEP_CLASS_BY_NAME = {cls.step_name: cls for cls in Step.__subclasses__()}
assert set(STEP_CLASS_BY_NAME) == set(STEP_NAMES)


class Detector1Pipeline:
    """jwst's calwebb_detector1 on detflow's graph.

    Attributes are the steps (``p.jump``, ``p.refpix``, ...) and the pipeline's own
    parameters (``save_calibrated_ramp``, ``save_results``, ``output_dir``, ...).
    """

    step_defs = dict(STEP_CLASS_BY_NAME)
    _own = {**_generic_defaults(), "save_calibrated_ramp": False}
    spec = "save_calibrated_ramp = boolean(default=False)"

    def __init__(self, config_file=None, steps=None, refs_dir=None, save_intermediates=None,
                 **params):
        object.__setattr__(self, "_params", dict(self._own))
        # detflow's own: a folder of reference files to search (see detflow.io.references)
        object.__setattr__(self, "refs_dir", refs_dir)
        # detflow's own: steps whose output to keep as Zarr stores ("all" for every step)
        object.__setattr__(self, "save_intermediates", _intermediates(save_intermediates))
        for alias, cls in self.step_defs.items():
            object.__setattr__(self, alias, cls())
        if config_file is not None:
            pars = read_parameter_file(config_file)
            if pars["step"] is not None:
                raise ParameterError(
                    f"{config_file}: a parameter file for {pars['class']}, not for "
                    "Detector1Pipeline"
                )
            self._apply(pars["parameters"], pars["steps"])
        self._apply(params, steps)

    def _apply(self, params, steps):
        for key, value in dict(params or {}).items():
            setattr(self, key, value)
        for alias, values in dict(steps or {}).items():
            if alias not in self.step_defs:
                raise ParameterError(
                    f"unknown step {alias!r}; detector1 steps are: {', '.join(self.step_defs)}"
                )
            getattr(self, alias)._update(values)

    def __getattr__(self, key):
        params = self.__dict__.get("_params", {})
        if key in params:
            return params[key]
        raise AttributeError(f"Detector1Pipeline has no step or parameter {key!r}")

    def __setattr__(self, key, value):
        if key in self.step_defs:
            raise ParameterError(f"set parameters of {key} on the step: p.{key}.<param> = ...")
        if key not in self._params:
            raise ParameterError(
                f"Detector1Pipeline has no parameter {key!r}; its parameters are: "
                f"{', '.join(sorted(self._params))}"
            )
        self._params[key] = value

    def step_params(self):
        """``{step: {param: value}}`` for every step, as the graph builder takes them."""
        return {alias: getattr(self, alias).get_pars() for alias in self.step_defs}

    def build(self, data):
        """The lazy graph of the whole pipeline for one exposure (see
        :func:`detflow.pipeline.builder.build_detector1`)."""
        return build_detector1(_as_dataset(data), self.step_params(), self.refs_dir)

    def run(self, data):
        """Calibrate one exposure; returns the rate Dataset (lazy unless products were saved),
        or, given a jwst datamodel, the rate ``ImageModel`` as jwst returns it (computed).

        Writes ``<root>_rate.fits`` and ``<root>_rateints.fits`` with ``save_results``,
        ``<root>_ramp.fits`` with ``save_calibrated_ramp``, ``<root>_<step>.fits`` for each
        step whose ``save_results`` is set, and ``<root>_fitopt.fits`` with
        ``ramp_fit.save_opt``, into ``output_dir``.
        """
        if is_datamodel(data):  # converted once; a model in, an ImageModel out
            data = from_datamodel(data)
            written = compute_and_write(self.plan(data))
            computed = {kind: ds_ for kind, ds_, _ in written}
            rate = computed.get("rate")
            if rate is None:
                rate, _ = _as_models(_computed({"rate": self.build(data)["rate"]}))
                return rate
            return to_datamodel(rate)
        written = compute_and_write(self.plan(data))
        computed = {kind: ds_ for kind, ds_, _ in written}
        if "rate" in computed:
            return computed["rate"]
        return self.build(data)["rate"]

    def outputs(self):
        """What a run saves (:class:`detflow.pipeline.plan.Outputs`), from the
        pipeline's and its steps' parameters."""
        return Outputs(
            output_dir=str(self.output_dir or "."),
            output_file=self.output_file,
            saved_steps=tuple((alias, getattr(self, alias).product_suffix)
                              for alias in self.step_defs
                              if getattr(self, alias).save_results),
            calibrated_ramp=bool(self.save_calibrated_ramp),
            results=bool(self.save_results),
            fitopt=bool(getattr(self.ramp_fit, "save_opt", False)),
            dark_output=self.dark_current.dark_output,
            intermediates=tuple(self.save_intermediates or ()),
        )

    def plan(self, data, persistence_array=None, save_persistence=True, tiling=None):
        """What :meth:`run` writes, lazily: a :class:`~detflow.pipeline.plan.ProductPlan`
        (its products as :func:`detflow.runtime.execute.compute_and_write` takes them;
        nothing computed).

        In a program whose exposures are chained by persistence
        (:func:`detflow.program.persistence_chains`), ``persistence_array`` is the
        windows carried in from the previous exposure of the detector (it replaces
        ``persistence_array_file``), and ``save_persistence=False`` leaves the step's
        ``save_persistence`` file to the last exposure of the chain. The plan's ``carry``
        is this exposure's outgoing windows when the persistence step runs. ``tiling``
        (a :class:`~detflow.tiling.Tiling`) sets the tiles of an exposure opened from a
        file and the steps' working tiles (default: one amplifier per tile).
        """
        ds = _as_dataset(data, tiling)
        built = build_detector1(ds, self.step_params(), self.refs_dir,
                                persistence_array=persistence_array, tiling=tiling)
        return plan_exposure(ds, built, self.outputs(), self.persistence.get_pars(),
                             save_persistence=save_persistence)

    def persistence_chains(self, inputs):
        """How a program's exposures are chained by persistence, or None
        (:func:`detflow.program.persistence_chains` with this pipeline's persistence
        parameters)."""
        return persistence_chains(inputs, self.persistence.get_pars())

    def product_paths(self, source):
        """The exposure products :meth:`run` writes for the input ``source`` (path or
        URL): per-step results, calibrated ramp, rate, rateints, fitopt -- what makes an
        exposure complete when a program is run again (shared outputs, the
        dark_output and persistence files, are not counted)."""
        return exposure_paths(self.outputs(), source, [
            alias for alias in self.step_defs if alias not in ("ramp_fit", "gain_scale")])

    @classmethod
    def call(cls, data, config_file=None, steps=None, **params):
        """Create the pipeline (from ``config_file``, then ``steps`` and ``params``) and
        run it, as ``jwst.pipeline.Detector1Pipeline.call``."""
        return cls(config_file=config_file, steps=steps, **params).run(data)
