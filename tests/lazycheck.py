"""Checking that building a graph computes nothing."""

import contextlib

import dask


def raise_on_compute(*args, **kwargs):
    """A Dask scheduler that refuses to run: any compute inside :func:`no_compute`."""
    raise AssertionError("computed while building the graph")


@contextlib.contextmanager
def no_compute():
    """Fail if anything is computed inside the block (opening files and chaining steps
    must stay lazy)."""
    with dask.config.set(scheduler=raise_on_compute):
        yield
