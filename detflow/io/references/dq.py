"""Reference and user DQ arrays: a reference file's ``DQ_DEF`` translation to the
standard JWST bits (as stdatamodels applies it when it opens the file), and
``dq_init.user_supplied_dq`` files read as jwst reads them."""

from __future__ import annotations

import os

import numpy as np

from detflow.errors import InputFileError

__all__ = ["dq_def_mapping", "read_user_dq", "translate_dq"]


def dq_def_mapping(table):
    """The ``((bit value in the file, standard JWST value), ...)`` translation of a
    reference file's ``DQ_DEF`` table, or None when the DQ is used as it is.

    stdatamodels (``DefaultDQMixin``, ``stdatamodels.dynamicdq.dynamic_mask``) translates
    the DQ of every MASK, SATURATION, SUPERBIAS, LINEARITY, DARK and RESET model with a
    non-empty ``DQ_DEF`` table when it opens the file: each row's ``VALUE`` bit of the
    file's DQ becomes the standard value of its ``NAME``; a NAME that is not a JWST pixel
    flag is ignored (jwst warns), and so is every DQ bit that no row names. A file
    without the table, or with an empty one, keeps its DQ.

    Parameters
    ----------
    table : dict or None
        ``{column: list}`` as :func:`detflow.io.fits.read_table` reads it (columns
        ``BIT``, ``VALUE``, ``NAME``, ``DESCRIPTION``; any case).
    """
    if not table:
        return None
    columns = {str(k).upper(): v for k, v in table.items()}
    values, names = columns.get("VALUE"), columns.get("NAME")
    if values is None or names is None or len(values) == 0:
        return None
    from stdatamodels.jwst.datamodels.dqflags import pixel

    mapping = []
    for value, name in zip(values, names, strict=True):
        standard = pixel.get(str(name).strip())
        if standard is not None:
            mapping.append((int(value), int(standard)))
    return tuple(mapping)


def translate_dq(dq, mapping):
    """A reference DQ block translated through :func:`dq_def_mapping`'s pairs
    (``dynamic_mask``'s arithmetic: same dtype, OR of the standard values)."""
    dq = np.asarray(dq)
    out = np.zeros(dq.shape, dtype=dq.dtype)
    for value, standard in mapping:
        out[np.bitwise_and(dq, value) != 0] |= standard
    return out


def read_user_dq(path):
    """The DQ array of a user's ``dq_init.user_supplied_dq`` file, read as jwst reads it
    (``astropy.io.fits.getdata``: the first HDU with data).

    Raises
    ------
    InputFileError
        The file is missing, not FITS, or holds no image.
    """
    from astropy.io import fits

    try:
        data = fits.getdata(os.fspath(path))
    except FileNotFoundError:
        raise InputFileError(str(path), "user_supplied_dq file not found") from None
    except (OSError, IndexError, TypeError, ValueError) as exc:
        raise InputFileError(str(path), f"cannot read a DQ image from it: {exc}") from None
    array = np.asarray(data)
    if array.dtype.kind not in "iub":
        raise InputFileError(str(path), f"its data are {array.dtype}, not an integer DQ array")
    return array
