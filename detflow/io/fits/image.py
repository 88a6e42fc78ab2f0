"""Rectangular sections of a FITS image HDU, read on demand (memmap locally, byte
ranges remotely), and its Dask array."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from itertools import product

import numpy as np

from detflow.errors import InputFileError
from detflow.io.fits.hdus import ImageLayout
from detflow.io.fits.source import FitsSource


def _normalize_key(key, shape):
    """Per-axis index (slice with step 1, or an integer array) and axes to drop."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        i = next(i for i, k in enumerate(key) if k is Ellipsis)
        fill = (slice(None),) * (len(shape) - len(key) + 1)
        key = key[:i] + fill + key[i + 1 :]
    if len(key) > len(shape):
        raise IndexError(f"too many indices ({len(key)}) for an array of shape {shape}")
    key = key + (slice(None),) * (len(shape) - len(key))
    axes, drop = [], []
    for ax, (k, n) in enumerate(zip(key, shape, strict=True)):
        if isinstance(k, slice):
            start, stop, step = k.indices(n)
            if step == 1:
                axes.append(slice(start, max(start, stop)))
            else:
                axes.append(np.arange(start, stop, step))
        elif isinstance(k, (int, np.integer)):
            i = int(k) + n if k < 0 else int(k)
            if not 0 <= i < n:
                raise IndexError(f"index {k} out of range for axis {ax} of size {n}")
            axes.append(slice(i, i + 1))
            drop.append(ax)
        else:
            idx = np.asarray(k)
            if idx.dtype == bool:
                idx = np.flatnonzero(idx)
            if idx.ndim != 1 or idx.dtype.kind not in "iu":
                raise IndexError(f"unsupported index for axis {ax}: {k!r}")
            idx = np.where(idx < 0, idx + n, idx)
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise IndexError(f"index out of range for axis {ax} of size {n}")
            axes.append(idx.astype(np.intp))
    return axes, tuple(drop)


@dataclass(frozen=True)
class FitsImage:
    """A lazy, picklable N-d image HDU; indexing reads only the requested section.

    ``FitsImage(...)[i0:i1, :, y0:y1, x0:x1]`` returns a NumPy array in native
    byte order. Basic indexing (integers, slices of any step, ``...``) and
    one-dimensional integer arrays per axis (outer indexing) are supported.

    Parameters
    ----------
    source : FitsSource
        The file.
    layout : ImageLayout
        Where the data of the HDU are and how they are stored.
    cast : numpy.dtype, optional
        Convert the values to this dtype after reading (e.g. ``uint8`` DQ).
    hdu_name : str
        For error messages.
    stamp : tuple
        File identity folded into the Dask token: ``(size,)`` or ``(size, mtime_ns)``;
        the size also spares each read of a remote file a request for it.
    """

    source: FitsSource
    layout: ImageLayout
    cast: np.dtype | None = None
    hdu_name: str = ""
    stamp: tuple = ()

    def __hash__(self):
        return hash((self.source, self.layout, str(self.dtype), self.stamp))

    @property
    def shape(self):
        """Shape in NumPy order."""
        return self.layout.shape

    @property
    def ndim(self):
        """Number of dimensions."""
        return len(self.layout.shape)

    @property
    def size(self):
        """Number of pixels."""
        return math.prod(self.layout.shape)

    @property
    def dtype(self):
        """Dtype of the arrays returned by indexing."""
        return np.dtype(self.cast) if self.cast is not None else self.layout.dtype

    def __dask_tokenize__(self):
        return (
            "detflow.FitsImage",
            self.source.__dask_tokenize__(),
            self.layout,
            str(self.dtype),
            self.stamp,
        )

    def __repr__(self):
        return (
            f"FitsImage({self.source.url!r}, {self.hdu_name or 'HDU'}, "
            f"shape={self.shape}, dtype={self.dtype})"
        )

    def __getitem__(self, key):
        axes, drop = _normalize_key(key, self.shape)
        box = []
        for a in axes:
            if isinstance(a, slice):
                box.append((a.start, a.stop))
            elif a.size:
                box.append((int(a.min()), int(a.max()) + 1))
            else:
                box.append((0, 0))
        out_shape = tuple(hi - lo for lo, hi in box)
        if math.prod(out_shape) == 0:
            values = np.empty(out_shape, dtype=self.dtype)
        else:
            values = self.layout.to_values(self._read_box(box))
            if self.cast is not None:
                values = values.astype(self.cast, copy=False)
        # integer-array axes: pick from the bounding box
        for ax, a in enumerate(axes):
            if not isinstance(a, slice):
                values = np.take(values, a - box[ax][0], axis=ax)
        if drop:
            values = values.reshape(tuple(n for ax, n in enumerate(values.shape) if ax not in drop))
        return values

    def __array__(self, dtype=None, copy=None):
        values = self[...]
        return values if dtype is None else values.astype(dtype, copy=False)

    def read(self):
        """The whole image as a NumPy array, shape :attr:`shape`."""
        return self[...]

    def to_dask(self, chunks, name, **kwargs):
        """This image as a lazy Dask array: one task per chunk, each reading its own section.

        Parameters
        ----------
        chunks
            Dask chunks, as :func:`dask.array.from_array` takes them.
        name : str
            The array's name: deterministic, so the same image and chunks give
            the same task keys (build it with :func:`dask.base.tokenize`).
        **kwargs
            More :func:`dask.array.from_array` options (e.g. ``fancy=False``).

        Returns
        -------
        dask.array.Array
            Shape :attr:`shape`, dtype :attr:`dtype`; the graph holds this small,
            picklable object, never data or an open file.
        """
        import dask.array as da

        return da.from_array(
            self,
            chunks=chunks,
            name=name,
            lock=False,
            asarray=False,
            inline_array=False,
            meta=np.empty((0,) * self.ndim, dtype=self.dtype),
            **kwargs,
        )

    def _read_box(self, box):
        """Stored (big-endian) pixels of the box ``[(lo, hi), ...]``, one per axis."""
        local = self.source.local_path
        if local is not None and self.source.compression is None:
            try:
                return self._read_box_local(local, box)
            except FileNotFoundError as exc:
                raise InputFileError(self.source.url, "file not found") from exc
            except (OSError, ValueError) as exc:
                raise InputFileError(
                    self.source.url, f"cannot read {self.hdu_name or 'image'} data: {exc}"
                ) from exc
        return self._read_box_ranges(box)

    def _read_box_local(self, path, box):
        """The box from a local file with ``pread``: for each index of the leading axes,
        the box's rows in full width (one contiguous range), then its columns.

        Unlike a memory map, this never maps more of the file than the box's rows (a
        memory map of a column tile touches every page of the image: its rows are
        only a few pages wide) and leaves the file's pages to the page cache, outside
        the process's memory.
        """
        layout = self.layout
        shape = self.shape
        item = layout.itemsize
        out = np.empty(tuple(hi - lo for lo, hi in box), dtype=layout.raw_dtype)
        if out.size == 0:
            return out
        if len(shape) == 1:
            lead_axes, (y0, y1), (x0, x1), width = [], (0, 1), box[0], shape[0]
        else:
            lead_axes = box[:-2]
            (y0, y1), (x0, x1) = box[-2], box[-1]
            width = shape[-1]
        row_bytes = width * item
        plane_bytes = (shape[-2] if len(shape) > 1 else 1) * row_bytes
        strides = [math.prod(shape[k + 1:-2]) for k in range(len(lead_axes))]
        nbytes = (y1 - y0) * row_bytes
        full_width = (x0, x1) == (0, width)
        buf = None if full_width else np.empty((y1 - y0, width), dtype=layout.raw_dtype)
        view = out.reshape((-1, y1 - y0, x1 - x0))
        fd = os.open(path, os.O_RDONLY)
        try:
            for n, idx in enumerate(product(*(range(lo, hi) for lo, hi in lead_axes))):
                plane = sum(i * st for i, st in zip(idx, strides, strict=True))
                start = layout.offset + plane * plane_bytes + y0 * row_bytes
                target = view[n] if full_width else buf
                _pread_into(fd, memoryview(target).cast("B"), start, nbytes)
                if not full_width:
                    view[n] = buf[:, x0:x1]
        finally:
            os.close(fd)
        return out

    def _read_box_ranges(self, box):
        layout = self.layout
        shape = self.shape
        nd = len(shape)
        item = layout.itemsize
        # read whole rows: fewer, larger requests
        wbox = list(box)
        wbox[-1] = (0, shape[-1])
        # innermost axis that is not selected in full; all faster axes are full
        j = 0
        for k in range(nd - 1, -1, -1):
            if wbox[k] != (0, shape[k]):
                j = k
                break
        strides = [math.prod(shape[k + 1 :]) for k in range(nd)]
        run = (wbox[j][1] - wbox[j][0]) * strides[j]
        ranges = []
        for idx in product(*(range(lo, hi) for lo, hi in wbox[:j])):
            first = sum(i * s for i, s in zip(idx, strides, strict=False)) + wbox[j][0] * strides[j]
            start = layout.offset + first * item
            end = start + run * item
            if ranges and ranges[-1][1] == start:
                ranges[-1] = (ranges[-1][0], end)
            else:
                ranges.append((start, end))
        size = self.stamp[0] if self.stamp else None
        with self.source.reader(size) as reader:
            pieces = reader.read_ranges(ranges)
        raw = np.frombuffer(b"".join(pieces), dtype=layout.raw_dtype)
        raw = raw.reshape(tuple(hi - lo for lo, hi in wbox))
        return raw[..., box[-1][0] : box[-1][1]]


def _pread_into(fd, target, start, nbytes):
    """Fill the writable byte view ``target`` (``nbytes``) from ``fd`` at ``start``."""
    done = 0
    while done < nbytes:
        got = os.preadv(fd, [target[done:]], start + done)
        if got <= 0:
            raise ValueError(f"the file ends {nbytes - done} bytes early (truncated?)")
        done += got


