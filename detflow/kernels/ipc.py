"""IPC (inter-pixel capacitance) deconvolution of one tile (jwst ``IPCStep``).

jwst (``ipc_corr.ipc_convolve``) works on each group of the science region -- the
exposure without its reference pixels -- padded with zeros, and accumulates in float32
the products ``kernel[j, i] * shifted science`` over the kernel pixels in row-major
order, the middle pixel last, into a zeroed image. :func:`ipc_convolve_tile` does the
same float operations in the same order on a tile that carries a halo, so every pixel
equals jwst's to the bit. The loop is compiled with numba: per pixel, one float32
multiply and one float32 add per kernel term, in jwst's order (no fused multiply-add),
which is what NumPy does array by array.
"""

import numba
import numpy as np

__all__ = ["ipc_halo", "ipc_convolve_tile", "science_ranges"]


def ipc_halo(kshape):
    """Neighbour pixels ``(hy, hx)`` a tile needs for a kernel of shape ``(ky, kx, ...)``.

    jwst pads by ``ky // 2`` before and ``ky - ky // 2 - 1`` after; the larger is ``ky // 2``.
    """
    return int(kshape[0]) // 2, int(kshape[1]) // 2


def science_ranges(instrument, ystart, ysize, xstart, xsize):
    """Full-frame rows and columns of the science (non-reference) pixels, as jwst counts them.

    jwst's ``get_num_ref_pixels``: near-IR detectors have 4 reference rows and columns on
    every side of the 2048 x 2048 frame; MIRI has 4 reference columns on the left and 4
    on the right of its 1032 columns (columns 1028-1031), no reference rows.

    Parameters
    ----------
    instrument : str
    ystart, xstart : int
        0-based full-frame row and column of the exposure's first pixel.
    ysize, xsize : int
        Exposure size.

    Returns
    -------
    (y0, y1), (x0, x1) : tuple of int
        Half-open 0-based full-frame ranges of the science region.
    """
    if str(instrument).upper() == "MIRI":
        left = max(0, 4 - xstart)
        right = max(0, xstart + xsize - 1028)
        return (ystart, ystart + ysize), (xstart + left, xstart + xsize - right)
    bottom = max(0, 4 - ystart)
    top = max(0, ystart + ysize - 2044)
    left = max(0, 4 - xstart)
    right = max(0, xstart + xsize - 2044)
    return (ystart + bottom, ystart + ysize - top), (xstart + left, xstart + xsize - right)


def ipc_convolve_tile(data, kernel, science_rows, science_cols, halo):
    """Deconvolve one haloed tile with the IPC kernel, as jwst does.

    Parameters
    ----------
    data : numpy.ndarray
        ``(..., ny + 2 hy, nx + 2 hx)`` float32: the tile with ``hy`` rows and ``hx``
        columns of neighbours on every side (zeros beyond the exposure).
    kernel : numpy.ndarray
        ``(ky, kx)`` one kernel, or ``(ky, kx, ny, nx)`` per-pixel kernels for the tile's
        own pixels (no halo), float32.
    science_rows : numpy.ndarray
        ``(ny + 2 hy,)`` bool: rows of the haloed tile in the science region.
    science_cols : numpy.ndarray
        ``(nx + 2 hx,)`` bool: columns of the haloed tile in the science region.
    halo : tuple of int
        ``(hy, hx)``, at least :func:`ipc_halo` of the kernel.

    Returns
    -------
    numpy.ndarray
        ``(..., ny, nx)`` float32: the science pixels deconvolved, the reference pixels
        unchanged. ``data`` is not modified.
    """
    hy, hx = (int(h) for h in halo)
    data = np.asarray(data)
    kernel = np.asarray(kernel)
    ky, kx = kernel.shape[:2]
    b_b, l_b = ky // 2, kx // 2
    if hy < b_b or hx < l_b:
        raise ValueError(f"halo {halo} is smaller than the kernel's {(b_b, l_b)}")
    tny, tnx = data.shape[-2:]
    ny, nx = tny - 2 * hy, tnx - 2 * hx
    if data.dtype != np.float32:
        data = data.astype(np.float32)
    science = np.asarray(science_rows, dtype=bool)[:, None] & np.asarray(
        science_cols, dtype=bool)[None, :]
    # kernel terms in jwst's order: row-major, the middle pixel last
    middle_j, middle_i = ky // 2, kx // 2
    order = [(j, i) for j in range(ky) for i in range(kx) if (j, i) != (middle_j, middle_i)]
    order.append((middle_j, middle_i))
    shifts = np.array([(ky - j - 1 - b_b, kx - i - 1 - l_b) for j, i in order[:-1]]
                      + [(0, 0)], dtype=np.int64)  # jwst: the middle term is not shifted
    terms = np.stack([kernel[j, i] for j, i in order]).astype(data.dtype)
    lead = data.shape[:-2]
    planes = np.ascontiguousarray(data).reshape((-1, tny, tnx))
    out = np.empty((planes.shape[0], ny, nx), dtype=data.dtype)
    # terms: (nterms,) for one kernel, (nterms, ny, nx) for per-pixel kernels
    _convolve(planes, science, np.ascontiguousarray(terms), shifts, hy, hx, out)
    return out.reshape(lead + (ny, nx))


@numba.njit(cache=True, nogil=True)
def _term(terms, t, y, x):
    """Kernel term ``t`` for output pixel ``(y, x)``: ``terms`` is ``(nterms,)`` (one
    kernel) or ``(nterms, ny, nx)`` (per pixel); numba keeps only the branch of the
    array's dimensionality."""
    if terms.ndim == 1:
        value = terms[t]
    else:
        value = terms[t, y, x]
    return value


@numba.njit(cache=True, nogil=True)
def _convolve(planes, science, terms, shifts, hy, hx, out):
    """``out[p] = sum_t terms[t] * temp[p] shifted by shifts[t]`` on science pixels (temp:
    the plane with non-science pixels zeroed), the plane itself elsewhere; float32
    products accumulated in ``terms`` order from 0."""
    nplanes, ny, nx = out.shape
    tny, tnx = planes.shape[1:]
    nterms = terms.shape[0]
    zero = planes.dtype.type(0)
    temp = np.empty((tny, tnx), dtype=planes.dtype)
    acc = np.empty(nx, dtype=planes.dtype)
    for p in range(nplanes):
        for y in range(tny):
            for x in range(tnx):
                temp[y, x] = planes[p, y, x] if science[y, x] else zero
        for y in range(ny):
            acc[:] = zero
            for t in range(nterms):
                sy = hy + y + shifts[t, 0]
                sx = hx + shifts[t, 1]
                for x in range(nx):
                    acc[x] = acc[x] + _term(terms, t, y, x) * temp[sy, sx + x]
            for x in range(nx):
                out[p, y, x] = acc[x] if science[hy + y, hx + x] else planes[p, hy + y, hx + x]
