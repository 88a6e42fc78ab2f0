"""``detflow simulate`` and ``detflow info``: a simulated exposure, and readable
summaries of exposures and products."""

from pathlib import Path

__all__ = ["cmd_info", "cmd_simulate", "describe_exposure", "describe_product"]


def _showers(value):
    """``--showers``: None, True (``auto``) or a count."""
    from detflow.errors import ParameterError

    if value is None:
        return False
    if str(value).lower() == "auto":
        return True
    try:
        return int(value)
    except ValueError:
        raise ParameterError(f"--showers {value!r}: give a number or 'auto'") from None


def cmd_simulate(args):
    from detflow.simulator import simulate

    res = simulate(
        args.instrument,
        args.outdir,
        subarray=args.subarray,
        readpatt=args.readpatt,
        ngroups=args.ngroups,
        nints=args.nints,
        seed=args.seed,
        root=args.root,
        snowballs=args.snowballs,
        zeroframe=args.zeroframe,
        avdrkcur=args.avdrkcur,
        ref_shape=args.ref_shape,
        dq_def=args.dq_def,
        gain_factor=args.gain_factor,
        segment=args.segment,
        ints_per_segment=args.ints_per_segment,
        showers=_showers(args.showers),
        emi=args.emi,
    )
    print(f"exposure:   {res.uncal}")
    print(f"truth:      {res.truth}")
    for reftype, path in res.refs.items():
        print(f"{reftype.lower():<11} {path}")
    print(f"manifest:   {res.manifest}")
    print(f"simulated in {res.seconds:.1f} s")
    return 0


def _segment(attrs):
    """``"  segment: integrations 4-6 of 9"`` for one segment of a longer exposure."""
    start, end = attrs.get("intstart"), attrs.get("intend")
    if start is None or end is None or (int(start) == 1 and int(end) == attrs.get("nints")):
        return ""
    return f"  segment: integrations {start}-{end} of {attrs.get('nints', '?')}"


def describe_exposure(ds):
    """A readable multi-line summary of an exposure Dataset (see :mod:`detflow.contract`)."""
    from detflow import dqflags

    a = ds.attrs
    nints, ngroups, ny, nx = (ds.sizes[d] for d in ("integration", "group", "y", "x"))
    x0, y0 = int(ds.x.values[0]), int(ds.y.values[0])
    lines = [
        f"file:        {a.get('source', '?')}",
        f"model:       {a.get('datamodel', '?')}",
        _instrument_line(a),
        f"subarray:    {a.get('subarray', '?')}  x {x0}:{x0 + nx}  y {y0}:{y0 + ny} "
        f"(full-frame pixels)  outputs {a.get('noutputs', '?')}  "
        f"fast/slow axis {a.get('fastaxis', '?')}/{a.get('slowaxis', '?')}",
        f"shape:       {nints} integration(s) x {ngroups} group(s) x {ny} x {nx}  "
        f"({ds['data'].dtype}){_segment(a)}",
        f"read:        {a.get('readpatt', '?')}  nframes {a.get('nframes', '?')}  "
        f"groupgap {a.get('groupgap', '?')}  zeroframe {'yes' if 'zeroframe' in ds else 'no'}",
        f"timing:      frame {a.get('frame_time', float('nan')):.5f} s  "
        f"group {a.get('group_time', float('nan')):.5f} s  "
        f"integration {a.get('integration_time', float('nan')):.3f} s  "
        f"start MJD {a.get('expstart', float('nan')):.6f}",
    ]
    lines.append("variables:   " + _variables(ds))
    for label, var, flags in (("pixel DQ:    ", "pixeldq", dqflags.PIXEL),
                              ("group DQ:    ", "groupdq", dqflags.GROUP)):
        lines.append(label + _dq_counts(ds[var], flags))
    lines += _cal_step_lines(a)
    return "\n".join(lines)


def _instrument_line(attrs):
    """``instrument:  NIRCAM NRCA1  exp_type ...  filter ...  [pupil ...]``."""
    a = attrs
    return (f"instrument:  {a.get('instrument', '?')} {a.get('detector', '?')}  "
            f"exp_type {a.get('exp_type', '?')}  filter {a.get('filter', '-')}"
            + (f"  pupil {a['pupil']}" if a.get("pupil") else ""))


def _variables(ds):
    """``name (dims) dtype, ...`` of a Dataset's data variables."""
    return ", ".join(f"{name} ({', '.join(map(str, var.dims))}) {var.dtype}"
                     for name, var in ds.data_vars.items())


def _dq_counts(var, flags):
    """``FLAG count, ...`` of the bits set in a DQ array (computed), or ``none set``."""
    import numpy as np

    values = np.asarray(var.data)
    counts = [f"{name} {n}" for name, bit in flags.items()
              if (n := int(np.count_nonzero(values & bit)))]
    return ", ".join(counts) if counts else "none set"


def _cal_step_lines(attrs):
    done = dict(attrs.get("cal_step") or {})
    return ["cal_step:    " + ", ".join(f"{k}={v}" for k, v in done.items())] if done else []


def describe_product(ds, path):
    """A readable multi-line summary of a product (:func:`detflow.open_product`: rate,
    rateints, fitopt, a ramp-shaped intermediate, a Zarr store): its model, instrument
    and region, dimensions, variables, read pattern and timing, DQ flags, the jump
    step's cosmic-ray rates and the ``cal_step`` statuses."""
    from detflow import dqflags

    a = ds.attrs
    header = a.get("primary_header") or {}
    model = header.get("DATAMODL") or a.get("datamodel") or "?"
    model = model[0] if isinstance(model, list | tuple) else model
    kind = Path(str(path).rstrip("/")).stem.rsplit("_", 1)[-1]
    main = max(ds.data_vars.values(), key=lambda v: v.ndim)
    lines = [
        f"file:        {path}",
        f"product:     {kind}  model {model}",
        _instrument_line(a),
    ]
    if "y" in ds.coords and "x" in ds.coords and ds.sizes.get("y") and ds.sizes.get("x"):
        x0, y0 = int(ds.x.values[0]), int(ds.y.values[0])
        lines.append(f"subarray:    {a.get('subarray', '?')}  x {x0}:{x0 + ds.sizes['x']}  "
                     f"y {y0}:{y0 + ds.sizes['y']} (full-frame pixels)")
    lines += [
        f"shape:       {' x '.join(map(str, main.shape))} ({', '.join(map(str, main.dims))})"
        + (f"  {a['bunit']}" if a.get("bunit") else ""),
        "dims:        " + ", ".join(f"{d} {n}" for d, n in ds.sizes.items()),
        "variables:   " + _variables(ds),
        f"read:        {a.get('readpatt', '?')}  nframes {a.get('nframes', '?')}  "
        f"groupgap {a.get('groupgap', '?')}  ngroups {a.get('ngroups', '?')}  "
        f"nints {a.get('nints', '?')}",
        f"timing:      group {a.get('group_time', float('nan')):.5f} s  "
        f"integration {a.get('integration_time', float('nan')):.3f} s  "
        f"exposure {a.get('exposure_time', float('nan')):.3f} s  "
        f"start MJD {a.get('expstart', float('nan')):.6f}",
    ]
    for label, var, flags in (("DQ:          ", "dq", dqflags.PIXEL),
                              ("pixel DQ:    ", "pixeldq", dqflags.PIXEL),
                              ("group DQ:    ", "groupdq", dqflags.GROUP)):
        if var in ds.data_vars:
            lines.append(label + _dq_counts(ds[var], flags))
    rates = [f"{label} {a[name]:g}" for name, label in (
        ("primary_cosmic_rays", "PRIMECRS"), ("extended_emission_events", "EXTNCRS"))
        if isinstance(a.get(name), int | float)]
    if rates:
        lines.append("jump:        " + ", ".join(rates))
    lines += _cal_step_lines(a)
    return "\n".join(lines)


def cmd_info(args):
    """``detflow info FILE``: an exposure's or a product's summary."""
    from detflow.io.products import open_exposure_or_product

    kind, ds = open_exposure_or_product(args.file)
    if kind == "exposure":
        print(describe_exposure(ds))
    else:
        print(describe_product(ds, args.file))
    return 0
