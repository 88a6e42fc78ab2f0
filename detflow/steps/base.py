"""What every detector1 step declares, and the bookkeeping every step shares.

A step module defines one :class:`StepDef`: jwst's alias, class name and
``meta.cal_step`` attribute, its reference types, its parameters with jwst's
names and defaults, its chunk contract, and ``apply`` -- a lazy function

``apply(ds, refs, params) -> Dataset``

where ``ds`` follows :mod:`detflow.contract`, ``refs`` maps each reference type
(lower case) to a lazy reference Dataset already cut to the exposure's region
(or ``None`` where the reference is N/A), and ``params`` holds every parameter
of the step's spec. ``apply`` never computes: it returns a new Dataset whose
arrays are Dask graphs over the input's.

Steps never open files: the pipeline layer resolves and opens the references
(:mod:`detflow.pipeline`).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from detflow.contract import KEYWORDS
from detflow.errors import InputFileError, ParameterError
from detflow.registry import STEPS

#: Parameters every jwst step has (stpipe's generic spec), with jwst's defaults.
GENERIC_PARAMS = {
    "pre_hooks": [],
    "post_hooks": [],
    "output_file": None,
    "output_dir": None,
    "output_ext": ".fits",
    "output_use_model": False,
    "output_use_index": True,
    "save_results": False,
    "skip": False,
    "suffix": None,
    "search_output_file": True,
    "input_dir": "",
}


@dataclass(frozen=True)
class Param:
    """One step parameter: its jwst type (``float``, ``integer``, ``boolean``, ``string``,
    ``option``...), default and help text."""

    kind: str
    default: Any = None
    doc: str = ""
    options: tuple = ()
    minimum: float | None = None

    def coerce(self, name, value):
        """Convert ``value`` (possibly a string from the command line) to this type."""
        if value is None:
            return None
        try:
            if self.kind == "float":
                value = float(value)
            elif self.kind == "integer":
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError(value)
                value = int(value)
            elif self.kind == "boolean":
                if isinstance(value, str):
                    low = value.strip().lower()
                    if low not in ("true", "false", "yes", "no", "t", "f", "1", "0"):
                        raise ValueError(value)
                    value = low in ("true", "yes", "t", "1")
                else:
                    value = bool(value)
            elif self.kind in ("string", "output_file"):
                value = str(value)
            elif self.kind == "option":
                if value not in self.options:
                    raise ValueError(value)
        except (TypeError, ValueError):
            expect = f"one of {self.options}" if self.kind == "option" else f"a {self.kind}"
            raise ParameterError(f"parameter {name}={value!r} must be {expect}") from None
        if self.minimum is not None and value < self.minimum:
            raise ParameterError(f"parameter {name}={value!r} must be at least {self.minimum}")
        return value

    def spec_line(self, name):
        """The parameter as a line of a jwst (configobj) spec."""
        if self.kind == "option":
            opts = ", ".join(repr(o) for o in self.options)
            typ = f"option({opts}, default={self.default!r})"
        else:
            typ = f"{self.kind}(default={self.default!r})"
        return f"{name} = {typ}" + (f"  # {self.doc}" if self.doc else "")


class _FromRow:
    """A :class:`StepDef` attribute read from the step's :mod:`detflow.registry` row."""

    def __set_name__(self, owner, name):
        self.attr = name

    def __get__(self, step, owner=None):
        return self if step is None else getattr(step.info, self.attr)


@dataclass(frozen=True)
class StepDef:
    """A detector1 step: its declarations and the lazy ``apply`` function.

    ``name`` is the jwst alias, or the step module's ``__name__`` (the module is named
    after the step); the step's identity -- class name, ``cal_step`` attribute,
    reference types, default skip -- is its row in :mod:`detflow.registry`, read
    through the properties below.
    """

    name: str  # jwst alias, e.g. "dark_current" (or "detflow.steps.dark_current")
    params: Mapping[str, Param] = field(default_factory=dict)
    apply: Callable[..., xr.Dataset] | None = None
    halo: int = 0  # neighbour pixels the step needs at default parameters (map_overlap)
    #: What the step does to the ``data`` and ``pixeldq`` of the detector's reference
    #: pixels: ``"pointwise"`` (each pixel from its own values and the reference files'
    #: values there, so the step applied to a few lines alone gives their exact values),
    #: ``"unchanged"`` (left as they are), ``""`` (not declared: neighbours or global
    #: statistics may be involved). The graph builder uses it to compute refpix's
    #: reference lines apart from the tiles (:func:`detflow.pipeline.builder.reference_lines`).
    reference_pixels: str = ""
    #: ``(ds, params) -> reference types`` the step reads for this input, where jwst
    #: decides before reading any (jump skips a ramp of 2 groups or fewer; gain_scale
    #: uses a gain factor the input already carries); None: every type of ``reftypes``.
    #: The others are given to ``apply`` as None and never resolved.
    references_needed: Callable[..., tuple] | None = None
    #: Whether ``apply`` takes the run's :class:`~detflow.tiling.Tiling` (``tiling=``):
    #: the steps whose working tiles hold every integration and group of a tile.
    tiled: bool = False
    #: jwst's deprecated parameters that name a reference file, and the
    #: ``override_<reftype>`` each stands for: when given, it wins over the override, as
    #: in jwst (emicorr's ``user_supplied_reffile``).
    reference_parameters: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        alias = self.name.rsplit(".", 1)[-1]
        if alias not in STEPS:
            raise ParameterError(f"{alias!r} is not a detector1 step of detflow.registry")
        object.__setattr__(self, "name", alias)

    @property
    def info(self):
        """The step's :class:`~detflow.registry.StepInfo`."""
        return STEPS[self.name]

    # jwst's identity of the step, read from its row: class name (``DarkCurrentStep``),
    # ``meta.cal_step`` attribute (``dark_sub``), reference types (lower case, jwst's
    # order), those whose N/A the step accepts, and its default skip
    class_name = _FromRow()
    cal_step = _FromRow()
    reftypes = _FromRow()
    optional_refs = _FromRow()
    skip_default = _FromRow()

    def needed_reftypes(self, ds, params):
        """The reference types to resolve for ``ds`` (see :attr:`references_needed`)."""
        if self.references_needed is None:
            return tuple(self.reftypes)
        return tuple(self.references_needed(ds, params))

    def defaults(self):
        """Every parameter (generic, reference overrides, step-specific) with its default."""
        out = dict(GENERIC_PARAMS)
        out["skip"] = self.skip_default
        for reftype in self.reftypes:
            out[f"override_{reftype}"] = None
        out.update({k: p.default for k, p in self.params.items()})
        return out

    def check_params(self, params):
        """Validate and coerce user parameters; unknown names are an error.

        Returns the full parameter dict (defaults filled in).
        """
        full = self.defaults()
        for key, value in dict(params or {}).items():
            if key not in full:
                raise ParameterError(
                    f"step {self.name} has no parameter {key!r}; its parameters are: "
                    f"{', '.join(sorted(full))}"
                )
            if key in self.params:
                value = self.params[key].coerce(f"{self.name}.{key}", value)
            elif key in ("skip", "save_results"):
                value = Param("boolean").coerce(f"{self.name}.{key}", value)
            full[key] = value
        for name, override in self.reference_parameters.items():
            if full.get(name) is not None:
                full[override] = full[name]
        return full

    def spec(self):
        """The step's parameters as jwst prints them (``Step.spec``)."""
        return "\n".join(p.spec_line(k) for k, p in self.params.items())


def record(ds, step, status, params=None, reffiles=None, **extra):
    """Record a step in ``ds.attrs`` as ``meta.cal_step`` does, and in the provenance.

    Returns a shallow copy of ``ds`` with new attrs; ``ds`` is not changed.
    """
    out = ds.copy()
    attrs = dict(ds.attrs)
    cal = dict(attrs.get("cal_step") or {})
    cal[step.cal_step] = status
    attrs["cal_step"] = cal
    prov = list(attrs.get("provenance") or [])
    entry = {"step": step.name, "status": status}
    if params is not None:
        entry["parameters"] = {
            k: v for k, v in params.items()
            if k in step.params and isinstance(v, (str, int, float, bool, type(None)))
        }
    if reffiles:
        entry["reference_files"] = dict(reffiles)
    entry.update(extra)
    prov.append(entry)
    attrs["provenance"] = prov
    out.attrs = attrs
    return out


def skipped(ds, step, reason=""):
    """``ds`` with the step recorded as SKIPPED (data untouched)."""
    return record(ds, step, "SKIPPED", reason=reason) if reason else record(ds, step, "SKIPPED")


def skipped_by_user(ds, step):
    """``ds`` with the step skipped by its ``skip`` parameter, recorded as stpipe records
    it: ``meta.cal_step.<alias> = "SKIPPED"``. Where the alias is not the step's
    ``meta.cal_step`` attribute (``dark_current``, whose attribute is ``dark_sub``) the
    schema has no such attribute, so no ``S_*`` keyword is written: the skip stays in the
    provenance only."""
    if step.name == step.cal_step:
        return skipped(ds, step)
    out = ds.copy()
    attrs = dict(ds.attrs)
    prov = list(attrs.get("provenance") or [])
    prov.append({"step": step.name, "status": "SKIPPED", "reason": "skip = True"})
    attrs["provenance"] = prov
    out.attrs = attrs
    return out


def scalars_to_attrs(ds):
    """A computed step output with its lazy header values moved to ``attrs``.

    A step whose header keyword is a whole-exposure count or rate (jump's PRIMECRS and
    EXTNCRS, rscd's ``meta.rscd`` counts) keeps it as a 0-d data variable named after
    its :data:`~detflow.contract.KEYWORDS` entry, computed with the arrays; later steps
    carry it along. Here every such variable becomes an attribute of the keyword's type,
    omitted where NaN (where jwst leaves the keyword unset).

    Returns a new Dataset; computes the scalars if they are still lazy.
    """
    import dask

    out = ds.copy()
    attrs = dict(out.attrs)
    present = [name for name, var in out.data_vars.items()
               if var.ndim == 0 and name in KEYWORDS]
    values = dask.compute(*[out[name].data for name in present])
    for name, value in zip(present, values, strict=True):
        value = float(np.asarray(value))
        if not np.isnan(value):
            attrs[name] = KEYWORDS[name][2](value)
    out = out.drop_vars(present)
    out.attrs = attrs
    return out


def as_float32(ds):
    """``ds`` with ``data`` (and ``zeroframe``) converted to float32, lazily."""
    out = ds.copy()
    for name in ("data", "zeroframe"):
        if name in out and out[name].dtype != "float32":
            out[name] = out[name].astype("float32")
    return out


def dask_array(var, dims=None, chunks=None):
    """The dask array behind a DataArray (or array), in the order ``dims``, rechunked.

    NumPy-backed data are wrapped (one chunk, or ``chunks``); nothing is computed.
    """
    if isinstance(var, xr.DataArray):
        if dims is not None:
            var = var.transpose(*dims)
        var = var.data
    arr = var if isinstance(var, da.Array) else da.from_array(
        np.asarray(var), chunks=chunks if chunks is not None else -1)
    return arr.rechunk(chunks) if chunks is not None else arr


def rechunk_spatial_like(arr, like):
    """Rechunk ``arr`` ``(..., y, x)`` to the y/x chunks of ``like``, other axes whole."""
    lead = {i: -1 for i in range(arr.ndim - 2)}
    return arr.rechunk({**lead, arr.ndim - 2: like.chunks[-2], arr.ndim - 1: like.chunks[-1]})


def has_zeroframe(ds):
    """Whether jwst's steps correct the ZEROFRAME: ``meta.exposure.zero_frame`` (ZEROFRAM;
    absent counts as False) and the array. (ramp_fit uses the array whatever ZEROFRAM
    says.)"""
    return bool(ds.attrs.get("zeroframe")) and "zeroframe" in ds


def check_readout(ds):
    """Refuse the readouts detflow does not calibrate yet, before any step runs on them:
    NIRCam/NIRISS multistripe (``MSTR_RD1`` set) and superstripe (``SSTR_NST`` > 0)
    subarrays. jwst cuts every reference file stripe by stripe for them (and gives
    superstripes a 3-D PIXELDQ); a plain rectangular cut would give wrong numbers
    without a word.

    Raises
    ------
    InputFileError
        Naming the exposure and the keyword.
    """
    headers = [ds.attrs.get("primary_header") or {}, ds.attrs.get("sci_header") or {}]

    def value(keyword):
        found = next((h[keyword] for h in headers if h.get(keyword) is not None), None)
        return found[0] if isinstance(found, list | tuple) else found

    problem = None
    if value("MSTR_RD1") is not None:
        problem = f"a multistripe subarray readout (MSTR_RD1 = {value('MSTR_RD1')})"
    elif (nstripe := value("SSTR_NST")) is not None and int(nstripe) > 0:
        problem = f"a superstripe subarray readout (SSTR_NST = {nstripe})"
    if problem:
        raise InputFileError(
            ds.attrs.get("source") or "the exposure",
            f"{problem}: detflow does not calibrate these yet (jwst cuts each reference "
            "file stripe by stripe); use jwst's Detector1Pipeline for this exposure")
