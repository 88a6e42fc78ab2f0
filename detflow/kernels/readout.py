"""What the detector's readout implies, shared by kernels."""

__all__ = ["read_pattern"]


def read_pattern(*, ngroups, nframes):
    """jwst's read pattern as its saturation and linearity steps build it: the 1-based
    frame numbers of each group, GROUPGAP ignored (as jwst does).

    Returns
    -------
    list of list of int
        ``[[g * nframes + 1, ..., g * nframes + nframes] for g in range(ngroups)]``.
    """
    return [[x + 1 + g * nframes for x in range(nframes)] for g in range(ngroups)]
