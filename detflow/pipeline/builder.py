"""The graph builder: resolve and open each step's references, and chain the steps' lazy
``apply`` functions in jwst's order. Nothing here computes."""

from pathlib import Path

import dask

from detflow.errors import ParameterError
from detflow.io.datamodels import is_datamodel
from detflow.io.references import open_reference_for, reference_model_path, resolve_reference
from detflow.pipeline.order import steps_for
from detflow.steps import StepDef, get_step, is_implemented, skipped
from detflow.steps.base import check_readout, skipped_by_user


def resolve_step_references(step, ds, params, refs_dir=None):
    """Which reference file each reference type of one step takes for one exposure,
    and why, as the run and the dry run both choose them.

    ``step`` is a :class:`~detflow.steps.base.StepDef`, or a
    :class:`~detflow.registry.StepInfo` for a step detflow does not implement (then
    every type is resolved). Types the step does not read for this input
    (:meth:`StepDef.needed_reftypes`) are left out.

    Returns
    -------
    dict
        reftype (lower case) -> ``(path or "N/A", why)``.
    """
    needed = (step.needed_reftypes(ds, params) if isinstance(step, StepDef)
              else step.reftypes)
    out = {}
    for reftype in step.reftypes:
        if reftype not in needed:  # jwst decides without it (see StepDef.references_needed)
            continue
        override = params.get(f"override_{reftype}")
        if is_datamodel(override):  # a reference model object, as jwst accepts
            override = reference_model_path(override, reftype)
        out[reftype] = resolve_reference(
            reftype.upper(), ds.attrs,
            override=override,
            refs_dir=refs_dir,
            optional=reftype in step.optional_refs,
            explain=True,
        )
    return out


def open_step_references(step, ds, params, refs_dir=None, *, reasons=None, tiling=None):
    """Resolve, open and cut the reference files of one step for one exposure (with the
    run's ``tiling``, as the exposure was opened).

    ``reasons``, a dict when given, receives reftype -> why that file (or N/A) was
    chosen (:func:`detflow.io.references.resolve_reference`'s ``explain``).

    Returns
    -------
    refs : dict
        reftype (lower case) -> lazy reference Dataset on the exposure's region, or None
        where the reference is N/A.
    names : dict
        reftype -> file name (or "N/A"), for the provenance.
    """
    refs, names = {}, {}
    chosen = resolve_step_references(step, ds, params, refs_dir)
    for reftype in step.reftypes:
        if reftype not in chosen:  # not read for this input
            refs[reftype] = None
            continue
        path, why = chosen[reftype]
        if reasons is not None:
            reasons[reftype] = why
        if path == "N/A":
            refs[reftype], names[reftype] = None, "N/A"
            continue
        # every reference is cut to the exposure by coordinates; jwst requires DARK and
        # RESET in the science shape (it fails otherwise), detflow also accepts larger ones
        refs[reftype] = open_reference_for(path, reftype.upper(), ds, tiling)
        names[reftype] = Path(str(path)).name
    return refs, names


def apply_step(name, ds, params=None, refs_dir=None, *, inputs=None, tiling=None):
    """Apply one step (by jwst alias) to an exposure Dataset, lazily.

    ``params`` are the step's jwst parameters (``skip``, ``override_<reftype>``, ...);
    unknown names raise :class:`~detflow.errors.ParameterError`. ``inputs`` are more
    entries for the step's ``refs`` (refpix's ``reference_lines``). ``tiling`` (a
    :class:`~detflow.tiling.Tiling`) goes to the steps that declare ``tiled``.
    """
    step = get_step(name)
    params = step.check_params(params)
    if params["skip"]:
        return skipped_by_user(ds, step)
    check_readout(ds)
    reasons = {}
    refs, names = open_step_references(step, ds, params, refs_dir, reasons=reasons,
                                       tiling=tiling)
    refs.update(inputs or {})
    if name == "dq_init" and isinstance(params.get("user_supplied_dq"), (str, Path)):
        from detflow.io.references import read_user_dq

        path = params["user_supplied_dq"]
        user = read_user_dq(path)
        if user.shape != (ds.sizes["y"], ds.sizes["x"]):
            raise ParameterError(
                f"dq_init.user_supplied_dq: {path} holds a {user.shape} array, but the "
                f"exposure is {(ds.sizes['y'], ds.sizes['x'])} (jwst requires its shape)")
        params = {**params, "user_supplied_dq": user}
        names["user_supplied_dq"] = Path(str(path)).name
    if name == "persistence":
        _open_persistence_input(refs, names, ds, params)
    # detflow's rechunks are small (reference lines, per-step tile shapes): Dask's task
    # method; left unset, Dask imports distributed to ask whether a client runs, at
    # every rechunk, just to choose between that and its P2P shuffle
    with dask.config.set({"array.rechunk.method": "tasks"}):
        out = step.apply(ds, refs, params, **({"tiling": tiling} if step.tiled else {}))
    if isinstance(out, dict):  # ramp_fit: {"rate": ..., "rateints": ..., "fitopt": ...}
        return {k: _with_reference_names(v, step, names, reasons) for k, v in out.items()}
    return _with_reference_names(out, step, names, reasons)


def _open_persistence_input(refs, names, ds, params):
    """The persistence step's incoming window array (``persistence_array_file``), opened
    lazily for the exposure as jwst reads it (nothing where the time is not valid: the
    step then records FAILED)."""
    from detflow.io.persistence import open_persistence_array

    if refs.get("persistence_array") is not None:  # carried in by a program's chain
        return
    path, ptime = params.get("persistence_array_file"), params.get("persistence_time")
    if path is None or ptime is None or int(ptime) <= 0:
        return
    refs["persistence_array"] = open_persistence_array(path, ds, int(ptime))
    names["persistence_array_file"] = str(path)


def reference_lines(raw, applied, ds, params, refs_dir=None, tiling=None):
    """refpix's reference lines computed from the file on their own (see
    :func:`detflow.steps.refpix.line_positions`), or None to cut them from the tiles.

    ``raw`` is the exposure as opened from its file, ``applied`` the ``(name, params)``
    of the steps that made ``ds`` from it. Each line set is read from the file by tasks
    of its own and taken through those steps -- possible when every one of them acts on
    the reference pixels' ``data`` and ``pixeldq`` pixel by pixel (``"pointwise"``: the
    step on the lines alone gives their values) or leaves them unchanged
    (``"unchanged"``); see :attr:`detflow.steps.StepDef.reference_pixels`.
    """
    from detflow.io.exposure import open_exposure_lines
    from detflow.steps import refpix

    positions = refpix.line_positions(ds, params)
    if positions is None:
        return None
    chain = []
    for name, step_params in applied:
        step = get_step(name)
        checked = step.check_params(step_params)
        if checked["skip"]:
            continue
        if step.reference_pixels == "unchanged":
            continue
        if (step.reference_pixels != "pointwise" or _has_user_arrays(name, checked)
                or _grows_past_the_lines(name, checked)):
            return None
        chain.append((name, step_params))
    out = {}
    for axis, index in positions.items():
        sub = open_exposure_lines(raw, axis, index)
        if sub is None:
            return None
        for name, step_params in chain:
            sub = apply_step(name, sub, step_params, refs_dir, tiling=tiling)
        out[axis] = sub
    return out


def _grows_past_the_lines(name, params):
    """Whether a step's flags reach the reference lines from further than the one
    neighbouring line they are computed with (refpix's ``line_positions``): saturation
    grown by more than one pixel (MIRI's linearity leaves a flagged group uncorrected,
    so the lines' data would depend on pixels beyond them)."""
    return name == "saturation" and int(params.get("n_pix_grow_sat") or 0) > 1


def _has_user_arrays(name, params):
    """Whether a step's parameters carry arrays in the exposure's shape (which the lines
    would have to be cut from)."""
    return name == "dq_init" and params.get("user_supplied_dq") is not None


def dark_output(ds, params=None, refs_dir=None, tiling=None):
    """The dark the dark_current step subtracts from ``ds`` (its input), lazily, as a
    Dataset for :func:`detflow.io.products.write_dark` -- what jwst saves with the step's
    ``dark_output`` -- or None when the step is skipped or has no DARK."""
    from detflow.steps.dark_current import averaged_dark

    step = get_step("dark_current")
    params = step.check_params(params)
    if params["skip"]:
        return None
    refs, _ = open_step_references(step, ds, params, refs_dir, tiling=tiling)
    ref = refs.get("dark")
    if ref is None:
        return None
    dark = averaged_dark(ds, ref)
    if dark is None:
        return None
    out = dark.to_dataset(name="data")
    if "dq" in ref:  # the DARK's own DQ, as jwst saves it (its groups need not match)
        dq = ref["dq"]
        out["dq"] = dq.rename({d: f"dq_{d}" for d in dq.dims if d not in ("y", "x")})
    attrs = dict(ref.attrs)
    attrs.update({k: dark.attrs[k] for k in ("nframes", "groupgap", "ngroups")})
    out.attrs = attrs
    return out


def _with_reference_names(ds, step, names, reasons=None):
    """Attach the reference file names to the step's provenance entry, and why each
    was chosen (``reference_reasons``: reftype -> reason, written to the products'
    HISTORY beside the ``R_*`` keywords)."""
    if ds is None:
        return None
    prov = list(ds.attrs.get("provenance") or [])
    if prov and prov[-1].get("step") == step.name:
        entry = {**prov[-1], "reference_files": names}
        why = {k: v for k, v in (reasons or {}).items() if k in names}
        if why:
            entry["reference_reasons"] = why
        prov[-1] = entry
        ds.attrs["provenance"] = prov
    return ds


def step_sequence(ds, step_params=None, only=None):
    """The steps detector1 runs on ``ds``, in order: ``[(step, params, skip)]`` with
    ``step`` the :class:`~detflow.steps.base.StepDef` (or, for a step detflow does not
    implement, its :class:`~detflow.registry.StepInfo` row), its parameters and whether
    it is skipped (its ``skip``, else its default). ``only``: that one step, run unless
    its parameters say ``skip`` (a step run on its own runs, as jwst's ``Step.call``)."""
    step_params = step_params or {}
    out = []
    for spec in steps_for(ds.attrs.get("instrument")):
        if only is not None and spec.name != only:
            continue
        params = dict(step_params.get(spec.name, {}))
        skip = params.get("skip", spec.skip_default if only is None else False)
        out.append((get_step(spec.name) if is_implemented(spec.name) else spec, params, skip))
    return out


def build_detector1(ds, step_params=None, refs_dir=None, stop_after=None,
                    persistence_array=None, tiling=None):
    """Chain detector1's steps over an exposure, lazily.

    Parameters
    ----------
    ds : xarray.Dataset
        An exposure (see :mod:`detflow.contract`).
    step_params : dict
        ``{step: {param: value}}`` in jwst's names.
    refs_dir : str, optional
        Folder of reference files (see :func:`detflow.io.references.resolve_reference`).
    stop_after : str, optional
        Stop after this step.
    persistence_array : array-like, optional
        The persistence windows carried in ``(ny, nx)`` (window end times, Unix epoch
        seconds): in a program, the previous exposure of the detector's
        ``persistence_array``; it replaces ``persistence_array_file``.
    tiling : detflow.tiling.Tiling, optional
        The run's tile sizes, for the steps' working tiles (the exposure's own tiles
        are those ``ds`` was opened with).

    Returns
    -------
    dict
        ``"steps"``: step name -> the lazy Dataset after that step, in order (ramp
        steps only); ``"ramp"``: the calibrated ramp that goes into ramp fitting;
        ``"rate"``, ``"rateints"``, ``"fitopt"``: lazy product Datasets (None when
        ramp fitting did not run, or ``fitopt`` when ``save_opt`` is off);
        ``"dark_output"``: the subtracted dark (:func:`dark_output`) when the
        dark_current step's ``dark_output`` is set, else None.
    """
    step_params = step_params or {}
    result = {"steps": {}, "ramp": None, "rate": None, "rateints": None, "fitopt": None,
              "dark_output": None}
    raw, applied = ds, []
    for spec, params, skip in step_sequence(ds, step_params):
        if skip and not is_implemented(spec.name):
            # a default-skipped step detflow does not implement yet: recorded as jwst does
            placeholder = StepDef(spec.name)
            ds = skipped(ds, placeholder)
            continue
        if spec.name == "ramp_fit":
            result["ramp"] = ds
            if skip:
                break
            products = apply_step("ramp_fit", ds, params, refs_dir, tiling=tiling)
            result.update({k: products.get(k) for k in ("rate", "rateints", "fitopt")})
        elif spec.name == "gain_scale":
            for kind in ("rate", "rateints"):
                if result[kind] is not None:
                    result[kind] = apply_step("gain_scale", result[kind], params, refs_dir)
        else:
            if spec.name == "dark_current" and params.get("dark_output"):
                result["dark_output"] = dark_output(ds, params, refs_dir, tiling)
            inputs = None
            if spec.name == "refpix" and not skip:
                lines = reference_lines(raw, applied, ds, params, refs_dir, tiling)
                inputs = None if lines is None else {"reference_lines": lines}
            if spec.name == "persistence" and persistence_array is not None:
                inputs = {"persistence_array": persistence_array}
            ds = apply_step(spec.name, ds, params, refs_dir, inputs=inputs, tiling=tiling)
            applied.append((spec.name, params))
            result["steps"][spec.name] = ds
        if spec.name == stop_after:
            break
    if result["ramp"] is None:
        result["ramp"] = ds
    return result
