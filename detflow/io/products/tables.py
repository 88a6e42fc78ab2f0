"""Binary tables of the products (``INT_TIMES``, ``GROUP``) from ``attrs["tables"]``.

A table travels in ``attrs["tables"]`` as ``{column: list}``; it is written with
the dtypes of its jwst schema (``int_times.schema``, ``group.schema``), and
every column the schema has but the Dataset lacks is added (zeros or empty
strings), since stdatamodels needs them all.
"""

import numpy as np
from astropy.io import fits

from detflow.errors import ProductContentError
from detflow.io.values import plain_scalar

# Table columns of the schemas (int_times.schema, group.schema).
_TABLE_DTYPES = {
    "int_times": [
        ("integration_number", "i4"),
        ("int_start_MJD_UTC", "f8"),
        ("int_mid_MJD_UTC", "f8"),
        ("int_end_MJD_UTC", "f8"),
        ("int_start_BJD_TDB", "f8"),
        ("int_mid_BJD_TDB", "f8"),
        ("int_end_BJD_TDB", "f8"),
    ],
    "group": [
        ("integration_number", "i4"),
        ("group_number", "i2"),
        ("end_day", "i2"),
        ("end_milliseconds", "i4"),
        ("end_submilliseconds", "i2"),
        ("group_end_time", "S26"),
        ("number_of_columns", "i2"),
        ("number_of_rows", "i2"),
        ("number_of_gaps", "i2"),
        ("completion_code_number", "i2"),
        ("completion_code_text", "S36"),
        ("bary_end_time", "f8"),
        ("helio_end_time", "f8"),
    ],
}


def _table_array(name, columns, path):
    """A structured array for ``columns`` ({column: list}), with the schema's dtypes."""
    columns = dict(columns)
    if not columns:
        return None
    known = dict(_TABLE_DTYPES.get(name, ()))
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise ProductContentError(path, f"table {name!r}: columns of different lengths")
    (nrows,) = lengths
    # stdatamodels needs every column of a schema table: missing ones are zero/empty
    order = [c for c, _ in _TABLE_DTYPES.get(name, ())]
    order += [c for c in columns if c not in order]
    fields = []
    values = {}
    for col in order:
        if col not in columns:
            fields.append((col, known[col]))
            continue
        raw = [plain_scalar(v) for v in columns[col]]
        if col in known:
            dtype = np.dtype(known[col])
        else:
            dtype = np.asarray(raw).dtype
            if dtype.kind == "U":
                dtype = np.dtype(f"S{max(dtype.itemsize // 4, 1)}")
            elif dtype.kind == "O":
                raise ProductContentError(path, f"table {name!r}: column {col!r} is not scalar")
        if dtype.kind == "S":
            raw = [("" if v is None else str(v)).encode("ascii", "replace") for v in raw]
        fields.append((col, dtype))
        values[col] = raw
    array = np.zeros(nrows, dtype=fields)
    for col, value in values.items():
        array[col] = value
    return array


def _table_hdus(attrs, names, path):
    hdus = []
    tables = attrs.get("tables") or {}
    for name in names:
        columns = tables.get(name)
        if columns:
            array = _table_array(name, columns, path)
            if array is not None:
                # the same HDU as BinTableHDU(data=array), whose constructor imports
                # astropy.table (~0.2 s) only to check whether the data are a Table
                hdu = fits.BinTableHDU(name=name.upper())
                hdu.data = array
                hdus.append(hdu)
    return hdus
