"""The FITS file layout of a product, written directly (not through astropy's writer).

:func:`_write_fits` writes the headers and allocates each IMAGE extension's data
space; a NumPy array is written at once, a Dask array is returned with its
:class:`_FitsDataRegion` (a picklable, memory-mapped view of its place in the
file) for :func:`dask.array.store` to fill chunk by chunk, so no more than the
chunks in flight is ever held in memory. Unsigned integers are stored as FITS
stores them (signed, with ``BZERO``).
"""

import io
import math

import dask.array as da
import numpy as np
from astropy.io import fits

from detflow.io.fits import padded_nbytes

# dtype -> (BITPIX, BZERO, stored big-endian dtype, sign-bit mask for the BZERO offset)
_FITS_TYPES = {
    np.dtype(np.uint8): (8, None, np.dtype(">u1"), None),
    np.dtype(np.int16): (16, None, np.dtype(">i2"), None),
    np.dtype(np.uint16): (16, 32768, np.dtype(">i2"), np.uint16(0x8000)),
    np.dtype(np.int32): (32, None, np.dtype(">i4"), None),
    np.dtype(np.uint32): (32, 2147483648, np.dtype(">i4"), np.uint32(0x80000000)),
    np.dtype(np.int64): (64, None, np.dtype(">i8"), None),
    np.dtype(np.float32): (-32, None, np.dtype(">f4"), None),
    np.dtype(np.float64): (-64, None, np.dtype(">f8"), None),
}


def _image_header(name, shape, dtype, extra=None):
    """The header of an IMAGE extension for an array of ``shape`` and ``dtype``."""
    bitpix, bzero, _, _ = _FITS_TYPES[np.dtype(dtype)]
    header = fits.Header()
    header["XTENSION"] = ("IMAGE", "Image extension")
    header["BITPIX"] = (bitpix, "array data type")
    header["NAXIS"] = (len(shape), "number of array dimensions")
    for i, n in enumerate(reversed(shape)):
        header[f"NAXIS{i + 1}"] = int(n)
    header["PCOUNT"] = (0, "number of parameters")
    header["GCOUNT"] = (1, "number of groups")
    if bzero is not None:
        header["BSCALE"] = 1
        header["BZERO"] = bzero
    header["EXTNAME"] = (name, "extension name")
    for card in extra.cards if extra is not None else ():
        header.append(card, end=True)
    return header


def _to_file_dtype(block, dtype):
    """``block`` cast to ``dtype`` and offset for FITS storage (unsigned -> BZERO)."""
    block = np.asarray(block).astype(dtype, copy=False)
    _, _, stored, mask = _FITS_TYPES[np.dtype(dtype)]
    if mask is not None:
        block = (block ^ mask).view(stored.newbyteorder("="))
    return block


class _FitsDataRegion:
    """A writable view of one HDU's data in a FITS file, for :func:`dask.array.store`.

    Picklable (path and offsets only): each assignment maps the region, writes
    the block and flushes, so workers of a distributed cluster can write too.
    """

    def __init__(self, path, offset, shape, dtype):
        self.path = str(path)
        self.offset = int(offset)
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)

    def _map(self, mode):
        stored = _FITS_TYPES[self.dtype][2]
        return np.memmap(self.path, dtype=stored, mode=mode, offset=self.offset, shape=self.shape)

    def __setitem__(self, key, value):
        if math.prod(self.shape) == 0:
            return
        mm = self._map("r+")
        try:
            mm[key] = _to_file_dtype(value, self.dtype)
            mm.flush()
        finally:
            del mm


def _write_fits(path, primary, hdus):
    """Write a FITS file at ``path`` (an already temporary name).

    Parameters
    ----------
    path : Path
        File to create.
    primary : astropy.io.fits.Header
        Cards of the primary header (structural cards are added here).
    hdus : list
        Each item is a :class:`~astropy.io.fits.BinTableHDU` (written as it is) or
        ``(name, array, dtype, header)`` for an IMAGE extension, where ``array`` is
        a NumPy or Dask array of any dtype (cast to ``dtype``).

    Returns
    -------
    list of (dask.array.Array, _FitsDataRegion)
        The Dask arrays still to store, with their regions of the file.
    """
    phdu = fits.PrimaryHDU()
    for card in primary.cards:  # in order, blank and commentary cards included
        phdu.header.append(card, end=True)
    pending = []
    with open(path, "wb") as f:
        f.write(phdu.header.tostring().encode("ascii"))
        for item in hdus:
            if isinstance(item, fits.BinTableHDU):
                buf = io.BytesIO()
                fits.HDUList([fits.PrimaryHDU(), item]).writeto(buf)
                with fits.open(io.BytesIO(buf.getvalue())) as check:
                    start = check.fileinfo(1)["hdrLoc"]
                f.write(buf.getvalue()[start:])
                continue
            name, array, dtype, extra = item
            dtype = np.dtype(dtype)
            header = _image_header(name, array.shape, dtype, extra)
            f.write(header.tostring().encode("ascii"))
            offset = f.tell()
            nbytes = math.prod(array.shape) * dtype.itemsize
            end = offset + padded_nbytes(nbytes)
            f.truncate(end)
            f.seek(end)
            region = _FitsDataRegion(path, offset, array.shape, dtype)
            if isinstance(array, da.Array):
                pending.append((array, region))
            elif nbytes:
                region[...] = np.asarray(array)
    return pending
