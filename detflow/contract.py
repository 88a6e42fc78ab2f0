"""The data contract shared by every layer (see DESIGN.md, "The data contract").

An exposure is an :class:`xarray.Dataset` with

* dimensions ``integration, group, y, x``;
* coordinates ``y``/``x``: 0-based *full-frame* detector pixel numbers in the
  DMS (science) orientation, so a subarray and a full-frame reference file line
  up by coordinate (``y = SUBSTRT2 - 1 + arange(SUBSIZE2)``); ``integration``:
  0-based integration number within the exposure (``INTSTART - 1 + i``);
  ``group``: 0-based group number;
* variables ``data`` (``(integration, group, y, x)``, raw ``uint16``, ``float32``
  from the first arithmetic step on), ``groupdq`` (``uint8``, same dims),
  ``pixeldq`` (``uint32``, ``(y, x)``), and where the file has them
  ``zeroframe`` (``(integration, y, x)``) and ``refout``;
* attributes: the exposure keywords under the names of :data:`KEYWORDS`, the
  full primary and SCI headers (``primary_header``/``sci_header``, JSON-friendly
  dicts), small tables (``tables``: name -> {column: list}), ``cal_step``
  (step name -> ``COMPLETE``/``SKIPPED``) and ``provenance`` (a list of dicts:
  step, status, parameters, reference files).

Everything in ``attrs`` is plain JSON (str, int, float, bool, list, dict) so a
Dataset can be written to Zarr as it is.
"""

DIMS = ("integration", "group", "y", "x")
IMAGE_DIMS = ("y", "x")

#: attribute name -> (FITS keyword, header where it lives, python type)
KEYWORDS = {
    "instrument": ("INSTRUME", "primary", str),
    "detector": ("DETECTOR", "primary", str),
    "exp_type": ("EXP_TYPE", "primary", str),
    "filter": ("FILTER", "primary", str),
    "pupil": ("PUPIL", "primary", str),
    "readpatt": ("READPATT", "primary", str),
    "nframes": ("NFRAMES", "primary", int),
    "groupgap": ("GROUPGAP", "primary", int),
    "ngroups": ("NGROUPS", "primary", int),
    "nints": ("NINTS", "primary", int),
    "nresets_at_start": ("NRSTSTRT", "primary", int),
    "nresets_between_ints": ("NRESETS", "primary", int),
    "intstart": ("INTSTART", "primary", int),
    "intend": ("INTEND", "primary", int),
    "subarray": ("SUBARRAY", "primary", str),
    "substrt1": ("SUBSTRT1", "primary", int),
    "substrt2": ("SUBSTRT2", "primary", int),
    "subsize1": ("SUBSIZE1", "primary", int),
    "subsize2": ("SUBSIZE2", "primary", int),
    "fastaxis": ("FASTAXIS", "primary", int),
    "slowaxis": ("SLOWAXIS", "primary", int),
    "noutputs": ("NOUTPUTS", "primary", int),
    "frame_time": ("TFRAME", "primary", float),
    "group_time": ("TGROUP", "primary", float),
    "integration_time": ("EFFINTTM", "primary", float),
    "exposure_time": ("EFFEXPTM", "primary", float),
    "expstart": ("EXPSTART", "primary", float),
    "expend": ("EXPEND", "primary", float),
    "frmdivsr": ("FRMDIVSR", "primary", int),
    "zeroframe": ("ZEROFRAM", "primary", bool),
    "primary_cosmic_rays": ("PRIMECRS", "primary", float),
    "extended_emission_events": ("EXTNCRS", "primary", float),
    # meta.rscd: the groups the rscd step flagged and its whole-exposure pixel counts
    "rscd_ngroups_skip_int1": ("INT1SKIP", "primary", int),
    "rscd_ngroups_skip_int2p": ("INT2SKIP", "primary", int),
    "rscd_keep_bright_firstgroup_int1": ("INT1UGP1", "primary", int),
    "rscd_keep_bright_firstgroup_int2p": ("INT2UGP1", "primary", int),
    "rscd_keep_groups_saturation_int1": ("INT1BORS", "primary", int),
    "rscd_keep_groups_saturation_int2p": ("INT2BORS", "primary", int),
    # meta.exposure.gain_factor: ramp_fit copies the GAIN file's GAINFACT into the
    # products (jwst writes it), and gain_scale reads it from its input
    "gain_factor": ("GAINFACT", "primary", float),
    "bunit": ("BUNIT", "sci", str),
}

#: Primary-header keyword (detflow's own; jwst has none) of a product: the exposure file
#: it was calibrated from (absolute path or URL), kept from product to product, so a step
#: resumed from an intermediate finds the ``refs/`` folder beside that exposure
#: (:func:`detflow.io.references.resolve_reference`).
INPUT_KEYWORD = "DF_INPUT"

#: Full-frame detector sizes (ny, nx) in the DMS orientation.
FULL_FRAME_SHAPE = {
    "NIRCAM": (2048, 2048),
    "NIRISS": (2048, 2048),
    "NIRSPEC": (2048, 2048),
    "FGS": (2048, 2048),
    "MIRI": (1024, 1032),
}

NIR_INSTRUMENTS = ("NIRCAM", "NIRISS", "NIRSPEC", "FGS")


def is_miri(attrs):
    """True when the exposure attributes describe a MIRI exposure."""
    return str(attrs.get("instrument", "")).upper() == "MIRI"
