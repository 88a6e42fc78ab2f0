"""What a run writes: the products of one exposure (or of one step), each with its kind
and its name as jwst names it, in one frozen :class:`ProductPlan` made from the lazy
results of the graph builder. Nothing here computes or writes: the runtime's
:func:`detflow.runtime.execute.compute_and_write` and ``write_task`` take a plan's
products.

One listing of an exposure's products, :func:`exposure_files`, serves both the plan and
the question "are this exposure's products all there?" a program asks on a rerun
(:func:`exposure_paths`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from detflow.io.products.names import dark_output_path, file_root, input_name, product_path
from detflow.pipeline.builder import dark_output


class Product(NamedTuple):
    """One thing to write: ``kind`` (``ramp``, ``rate``, ``rateints``, ``fitopt``,
    ``dark``, ``persistence``, ``zarr``; see
    :func:`detflow.runtime.execute.compute_and_write`), the lazy Dataset, and its path."""

    kind: str
    data: object
    path: object


@dataclass(frozen=True)
class Outputs:
    """What a run is asked to save, from the pipeline's and its steps' parameters.

    ``saved_steps`` holds ``(alias, suffix)`` of the steps whose ``save_results`` is set,
    in pipeline order; ``results`` saves rate and rateints; ``intermediates`` are the
    steps kept as Zarr stores (detflow's ``save_intermediates``).
    """

    output_dir: str = "."
    output_file: str | None = None
    saved_steps: tuple[tuple[str, str], ...] = ()
    calibrated_ramp: bool = False
    results: bool = False
    fitopt: bool = False
    dark_output: str | None = None
    intermediates: tuple[str, ...] = ()

    def base(self, source):
        """What products are named after: ``output_file``, else the input."""
        return self.output_file or source or "detflow"


@dataclass(frozen=True)
class ProductPlan:
    """What a run writes for one exposure, lazily; iterating gives its :class:`Product`\\ s.

    ``stages`` holds ``(step, lazy Dataset)`` in pipeline order (the input as ``read``),
    and ``root`` the exposure's product root name: together they name the tasks after
    the steps and the exposure (:mod:`detflow.runtime.names`). ``carry`` is the state
    the next exposure of a program's persistence chain takes in (the persistence
    windows, a lazy ``(y, x)`` DataArray), or None.
    """

    root: str
    products: tuple[Product, ...] = ()
    stages: tuple[tuple[str, object], ...] = ()
    carry: object = None

    def __iter__(self):
        return iter(self.products)

    @property
    def stores(self):
        """The paths of the Zarr stores the plan writes."""
        return tuple(p.path for p in self.products if p.kind == "zarr")


def product_root(source):
    """An exposure's product root name: its file name without extension and jwst
    suffix (``..._nrca1_uncal.fits`` -> ``..._nrca1``)."""
    return file_root(input_name(source))


def exposure_files(outputs, source, steps):
    """The products that make an exposure complete, in the order they are written:
    ``[(kind, key, path)]`` with ``key`` the step alias (a step's saved result, kind
    ``ramp``), ``"ramp"`` (the calibrated ramp), ``"rate"``, ``"rateints"`` or
    ``"fitopt"``. ``steps`` are the aliases whose results may be saved. Shared outputs
    (dark_output, save_persistence) and Zarr stores are not among them."""
    base, outdir = outputs.base(source), Path(outputs.output_dir or ".")
    saved = dict(outputs.saved_steps)
    files = [("ramp", alias, product_path(base, outdir, saved[alias]))
             for alias in steps if alias in saved]
    if outputs.calibrated_ramp:
        files.append(("ramp", "ramp", product_path(base, outdir, "ramp")))
    if outputs.results:
        files += [(kind, kind, product_path(base, outdir, kind)) for kind in ("rate", "rateints")]
    if outputs.fitopt:
        files.append(("fitopt", "fitopt", product_path(base, outdir, "fitopt")))
    return files


def exposure_paths(outputs, source, steps):
    """The paths of :func:`exposure_files`."""
    return [path for _, _, path in exposure_files(outputs, source, steps)]


def ran(ds, alias):
    """Whether the step ran (its last provenance entry is not SKIPPED)."""
    entries = [p for p in ds.attrs.get("provenance") or () if p.get("step") == alias]
    return bool(entries) and entries[-1].get("status") != "SKIPPED"


def persistence_product(result, params, filename):
    """The persistence step's ``save_persistence`` file, a :class:`Product`, when the
    step ran (COMPLETE) with ``save_persistence`` set, else None. Only the window array
    is computed; ``filename`` is what jwst records (the model's name: the last product
    saved before the step, else the input's)."""
    if not params.get("save_persistence") or result is None:
        return None
    if (result.attrs.get("cal_step") or {}).get("persistence") != "COMPLETE":
        return None
    out = result[["persistence_array"]]
    if filename:
        out = out.assign_attrs(persistence_filename=filename)
    return Product("persistence", out, params["save_persistence"])


def plan_exposure(ds, built, outputs, persistence_params, *, save_persistence=True):
    """The :class:`ProductPlan` of one exposure.

    Parameters
    ----------
    ds : xarray.Dataset
        The exposure as read.
    built : dict
        :func:`detflow.pipeline.builder.build_detector1`'s lazy results.
    outputs : Outputs
        What to save.
    persistence_params : dict
        The persistence step's parameters (``save_persistence``).
    save_persistence : bool
        False leaves ``save_persistence`` to another exposure (not the last of its
        program's chain).
    """
    source = ds.attrs.get("source")
    base, outdir = outputs.base(source), Path(outputs.output_dir or ".")
    steps = built["steps"]
    stages = [("read", ds), *steps.items()]
    stages += [("ramp_fit", built[kind]) for kind in ("rate", "rateints", "fitopt")]
    if built["dark_output"] is not None:
        stages.append(("dark_current", built["dark_output"]))
    data = {"ramp": built["ramp"], "rate": built["rate"], "rateints": built["rateints"],
            "fitopt": built["fitopt"], **steps}
    files = exposure_files(outputs, source, steps)
    listed = [Product(kind, data[key], path) for kind, key, path in files]
    carry = None
    if "persistence" in steps:
        order = list(steps)
        # the steps' saved results come first in ``files``, in step order; jwst's model
        # name when persistence runs is the last of them saved before it
        before = [path for _, key, path in files
                  if key in steps and order.index(key) < order.index("persistence")]
        item = persistence_product(steps["persistence"], persistence_params,
                                   Path(before[-1]).name if before else None)
        if item is not None and save_persistence:
            listed.insert(len(before), item)
        if ran(steps["persistence"], "persistence") and "persistence_array" in steps[
                "persistence"]:
            carry = steps["persistence"]["persistence_array"]
    if built["dark_output"] is not None:
        listed.append(Product("dark", built["dark_output"],
                              dark_output_path(outputs.dark_output, outputs.output_dir)))
    for alias in outputs.intermediates:
        if alias == "ramp_fit":
            listed += [Product("zarr", built[kind], product_path(base, outdir, kind,
                                                                  ext=".zarr"))
                       for kind in ("rate", "rateints") if built[kind] is not None]
        elif alias in steps and ran(steps[alias], alias):
            listed.append(Product("zarr", steps[alias],
                                  product_path(base, outdir, alias, ext=".zarr")))
    return ProductPlan(root=product_root(base), products=tuple(listed), stages=tuple(stages),
                       carry=carry)


def plan_step(alias, ds, result, params, outputs, *, save_results, suffix, refs_dir=None):
    """The :class:`ProductPlan` of one step run on its own (jwst's ``Step.run``): the
    persistence file (written whether or not results are saved, as jwst does), the
    dark_current step's ``dark_output`` (its references from ``refs_dir`` or the
    overrides in ``params``), and with ``save_results`` the step's result as
    ``<root>_<suffix>.fits`` (ramp_fit: rate, rateints and fitopt)."""
    base, outdir = outputs.base(ds.attrs.get("source")), Path(outputs.output_dir or ".")
    listed = []
    if alias == "persistence":
        item = persistence_product(result, params, None)
        if item is not None:
            listed.append(item)
    if alias == "dark_current" and params.get("dark_output"):
        dark = dark_output(ds, params, refs_dir)
        if dark is not None:
            listed.append(Product("dark", dark, dark_output_path(params["dark_output"],
                                                                 outputs.output_dir)))
    if save_results:
        if isinstance(result, dict):
            listed += [Product(kind, result.get(kind), product_path(base, outdir, kind))
                       for kind in ("rate", "rateints", "fitopt")]
        else:
            kind = "ramp" if "groupdq" in result else (
                "rate" if result["data"].ndim == 2 else "rateints")
            listed.append(Product(kind, result, product_path(base, outdir, suffix)))
    return ProductPlan(root=product_root(base), products=tuple(listed),
                       stages=(("read", ds), (alias, result)))
