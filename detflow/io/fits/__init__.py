"""Low-level, lazy FITS access for local paths and fsspec URLs.

The headers of every HDU are parsed with astropy from the header blocks alone
(the pixel data is never touched while scanning), and a rectangular section
of an image HDU is read on demand:

* local files (a path or a ``file://`` URL) through a read-only
  :class:`numpy.memmap` of the raw big-endian data, so a section reads only
  the pages it touches;
* any other fsspec URL (``memory://``, ``http(s)://``, ``s3://``, ...) through
  byte-range requests of whole rows (``fs.cat_ranges``), one range per
  contiguous run of the section;
* a gzip-compressed file, only where the caller allows it
  (:meth:`FitsSource.sniff`, used for reference files), through a
  decompressing stream: correct, but every read decompresses from the start
  of the file up to the section, as astropy does.

Scaled integers are handled without astropy's scaling machinery (astropy
refuses to memory-map scaled data), but give astropy's values and dtypes to
the bit (jwst reads its files with astropy): the pseudo-integer conventions
(``BITPIX=16, BZERO=32768`` for ``uint16``, ``BITPIX=32, BZERO=2**31`` for
``uint32``, ``BITPIX=64, BZERO=2**63`` for ``uint64``, ``BITPIX=8, BZERO=-128``
for ``int8``) are undone exactly by flipping the sign bit; any other
``BSCALE``/``BZERO``, or a ``BLANK`` on integer data, gives floats computed as
astropy computes them, with NaN at ``BLANK`` pixels.

Modules: :mod:`.source` (where the bytes come from), :mod:`.hdus` (headers, byte
layouts and binary tables), :mod:`.image` (image sections). The JSON of header
values is :mod:`detflow.io.values`; local-or-remote paths and the cache of parsed
files :mod:`detflow.io.files`.

Everything here is picklable and small: a :class:`FitsImage` holds the URL,
the storage options and the byte layout of one HDU, never an open handle, so a
Dask task (threads, processes or a distributed worker) opens the file itself.
"""

from detflow.io.fits.hdus import (
    BLOCK,
    HDUInfo,
    ImageLayout,
    find_hdu,
    padded_nbytes,
    read_hdus,
    read_primary_header,
    read_table,
)
from detflow.io.fits.image import FitsImage
from detflow.io.fits.source import FitsSource

__all__ = [
    "BLOCK",
    "FitsImage",
    "FitsSource",
    "HDUInfo",
    "ImageLayout",
    "find_hdu",
    "padded_nbytes",
    "read_hdus",
    "read_primary_header",
    "read_table",
]
