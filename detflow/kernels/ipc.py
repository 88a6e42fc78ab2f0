"""IPC (inter-pixel capacitance) deconvolution of one tile (jwst ``IPCStep``).

jwst (``ipc_corr.ipc_convolve``) works on each group of the science region -- the
exposure without its reference pixels -- padded with zeros, and accumulates in float32
the products ``kernel[j, i] * shifted science`` over the kernel pixels in row-major
order, the middle pixel last, into a zeroed image. :func:`ipc_convolve_tile` does the
same float operations in the same order on a tile that carries a halo, so every pixel
equals jwst's to the bit.
"""

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
    science = np.asarray(science_rows, dtype=bool)[:, None] & np.asarray(
        science_cols, dtype=bool)[None, :]
    temp = np.where(science, data, np.zeros((), dtype=data.dtype))
    core = (Ellipsis, slice(hy, hy + ny), slice(hx, hx + nx))
    acc = np.zeros(data.shape[:-2] + (ny, nx), dtype=data.dtype)

    def shifted(dy, dx):
        return temp[..., hy + dy: hy + dy + ny, hx + dx: hx + dx + nx]

    middle_j, middle_i = ky // 2, kx // 2
    for j in range(ky):
        dy = ky - j - 1 - b_b
        for i in range(kx):
            if i == middle_i and j == middle_j:
                continue  # the middle pixel is done last
            dx = kx - i - 1 - l_b
            acc += kernel[j, i] * shifted(dy, dx)
    # jwst takes the middle term from temp[middle_j:, middle_i:], i.e. no shift
    acc += kernel[middle_j, middle_i] * shifted(0, 0)
    return np.where(science[core[1:]], acc, data[core])
