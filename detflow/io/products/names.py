"""Product naming: jwst's file-name suffixes and where a product is written.

A product is named as jwst names it: the input's base name without its
extension and without one known jwst suffix (:data:`_KNOWN_SUFFIXES`, copied
from ``jwst.lib.suffix``), then ``_<suffix><ext>``
(``jw01234001001_01101_00001_nrca1_uncal.fits`` -> ``..._nrca1_rate.fits``).
The helpers here also resolve a writer's ``path`` argument (a file or a folder)
and check, before anything is computed, that the product can be created.
"""

import os
import posixpath
import re
from collections.abc import Mapping
from pathlib import Path

import xarray as xr

from detflow.errors import ParameterError, ProductWriteError

__all__ = [
    "dark_output_path",
    "file_root",
    "input_name",
    "product_path",
    "remove_suffix",
]

# jwst.lib.suffix.KNOW_SUFFIXES (jwst 3.0.0): the suffixes jwst strips from a name.
_KNOWN_SUFFIXES = frozenset(
    """
    adaptive_trace_model adaptivetracemodelstep align_refs alignrefsstep ami ami-oi
    ami3pipeline ami_analyze ami_normalize amianalyzestep aminorm aminorm-oi
    aminormalizestep assign_mtwcs assign_wcs assignmtwcsstep assignwcsstep backgroundstep
    badpixselfcalstep barshadowstep bkg_subtract blot bsub bsubints c1d cal calints cat
    chargemigrationstep clean_flicker_noise cleanflickernoisestep combine1dstep combine_1d
    coron3pipeline crf crfints cube_build cubebuildstep dark dark_current darkcurrentstep
    darkpipeline detector1pipeline dq_init dqinitstep emicorr emicorrstep engdblog
    extract1dstep extract2dstep extract_1d extract_2d firstframe firstframestep flat_field
    flatfieldstep fringe fringestep gain_scale gainscalestep group_scale groupscalestep
    guider_cds guidercdsstep guiderpipeline hlsp hlspstep i2d image2pipeline image3pipeline
    imprint imprintstep ipc ipcstep jump jumpstep klip klipstep lastframe lastframestep
    linearity linearitystep master_background masterbackgroundmosstep masterbackgroundstep
    mbsub median msaflagopenstep outlier_detection outlierdetectionstep pathloss
    pathlossstep persistence persistencestep phot photom photomstep picture_frame
    pictureframestep pixelreplacestep psfalign psfstack psfsub ramp ramp_fit rampfitstep
    rate rateints refpix refpixstep resample resample_spec resamplespecstep resamplestep
    reset resetstep residual_fringe residualfringestep rscd rscdstep s2d s3d saturation
    saturationstep skymatch skymatchstep snr source_catalog sourcecatalogstep
    sourcetypestep spec2nrslamp spec2pipeline spec3pipeline spectral_leak
    spectralleakstep srctype stackrefs stackrefsstep straylight straylightstep superbias
    superbiasstep targ_centroid targcentroidstep tso3pipeline tsophotometrystep tweakreg
    tweakregstep uncal wavecorrstep wfscmb wfscombine wfscombinestep wfsscontamstep
    white_light whitelightstep whtlt x1d x1dints
    """.split()
)
_SUFFIX_RE = re.compile(
    r"^(?P<root>.+?)[_-](?:"
    + "|".join(re.escape(s) for s in sorted(_KNOWN_SUFFIXES, key=len, reverse=True))
    + r")$"
)
_EXTENSIONS = (".fits.gz", ".fits", ".fit", ".fts", ".asdf", ".zarr")


def remove_suffix(name):
    """Remove one known jwst suffix (``_uncal``, ``_ramp``, a step name...) from a root.

    Parameters
    ----------
    name : str
        A file name without its extension, e.g. ``jw01234001001_01101_00001_nrca1_uncal``.

    Returns
    -------
    str
        The name without its suffix, or ``name`` itself when it ends in none.
    """
    match = _SUFFIX_RE.match(name)
    return match.group("root") if match else name


def input_name(source):
    """The input's file name (no folder) from a path, URL, Dataset or attrs.

    A Dataset or attrs name it by ``filename``, else by the primary header's
    ``FILENAME``; a URL's query is dropped. Raises :class:`ParameterError` when
    attrs name no file.
    """
    if isinstance(source, xr.Dataset):
        source = source.attrs
    if isinstance(source, Mapping):
        name = source.get("filename")
        if not name:
            name = (source.get("primary_header") or {}).get("FILENAME")
            if isinstance(name, list | tuple):  # (value, comment)
                name = name[0]
        if not name:
            raise ParameterError(
                "cannot name the product: the attributes hold no 'filename' and the "
                "primary header no FILENAME"
            )
        source = name
    text = os.fspath(source)
    text = text.split("?", 1)[0].rstrip("/")
    return posixpath.basename(text.replace("\\", "/"))


def file_root(name):
    """A file name without its extension (one of :data:`_EXTENSIONS`) and without
    one known jwst suffix: ``..._nrca1_uncal.fits`` -> ``..._nrca1``.

    Parameters
    ----------
    name : str
        A file name (no folder).

    Returns
    -------
    str
    """
    lower = name.lower()
    for known in _EXTENSIONS:
        if lower.endswith(known):
            name = name[: -len(known)]
            break
    return remove_suffix(name)


def product_path(input_path_or_attrs, output_dir, suffix, *, ext=".fits"):
    """The path of a product, named as jwst names it.

    The extension and one known suffix are removed from the input's base name and
    ``_<suffix><ext>`` is appended:
    ``jw01234001001_01101_00001_nrca1_uncal.fits`` -> ``..._nrca1_rate.fits``.

    Parameters
    ----------
    input_path_or_attrs : str, Path, Mapping or xarray.Dataset
        The input's path or URL, or an exposure's attributes (``filename`` or the
        primary header's ``FILENAME``), or the Dataset itself.
    output_dir : str or Path or None
        Folder of the product; ``None``: the input's folder (for a path input) or
        the current folder.
    suffix : str
        Product suffix without underscore (``rate``, ``rateints``, ``fitopt``, ``jump``...).
    ext : str
        Extension of the product (``.fits``, or ``.zarr`` for a Zarr store).

    Returns
    -------
    pathlib.Path
    """
    root = file_root(input_name(input_path_or_attrs))
    suffix = str(suffix).lstrip("_")
    if output_dir is None:
        is_path = isinstance(input_path_or_attrs, str | os.PathLike)
        if is_path and "://" not in os.fspath(input_path_or_attrs):
            output_dir = Path(input_path_or_attrs).parent
        else:
            output_dir = Path.cwd()
    return Path(output_dir) / f"{root}_{suffix}{ext}"


def dark_output_path(dark_output, output_dir=None):
    """Where jwst writes dark_current's ``dark_output``: stpipe's ``make_output_path``
    with no suffix -- the file name of ``dark_output`` (its folder is dropped), ``.fits``
    in place of its extension, in ``output_dir`` (the current folder when None)."""
    stem = Path(str(dark_output)).stem
    return Path(output_dir or "") / f"{stem}.fits"


def _resolve_output(ds, path, suffix):
    """``path`` itself, or the product name inside ``path`` when it is a folder."""
    path = Path(path)
    if path.is_dir() and path.suffix.lower() not in (".fits", ".fit"):
        return product_path(ds.attrs, path, suffix)
    return path


def _check_writable(path, *, directory=False):
    """Fail early (before any computing) when ``path`` cannot be created."""
    path = Path(path)
    parent = path.parent
    probe = parent
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise ProductWriteError(path, f"{probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ProductWriteError(path, f"folder {probe} is not writable")
    if path.is_dir() and not directory:
        raise ProductWriteError(path, "a folder exists under the product's name")


