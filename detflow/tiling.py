"""How an exposure is cut into tiles: one explicit :class:`Tiling`, chosen where a run is
set up and handed down to the reader and the steps.

* The reader's tiles (:func:`detflow.io.chunks.default_chunks`): one integration, all
  groups, spatial tiles aligned to the readout amplifiers, neighbouring amplifiers
  joined while a tile stays within ``join_bytes``, a tile larger than ``max_bytes``
  cut into bands of about ``target_bytes`` (DESIGN: 50-150 MB).
* The working tiles of the steps that hold every integration and group of a tile at
  once (jump, ramp_fit: at most ``working_bytes``; persistence: ``persistence_bytes``).

A program on a cluster joins amplifiers (:meth:`Tiling.for_run`); the Dask setting
``detflow.tiles.join-bytes`` is the user's own choice of ``join_bytes`` and wins
wherever it is set. Nothing else changes tile sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CLUSTER_JOIN_BYTES", "JOIN_KEY", "MAX_TILE_BYTES", "TARGET_TILE_BYTES", "Tiling"]

#: Size of a default tile when an amplifier strip must be cut (bytes of float32).
TARGET_TILE_BYTES = 100_000_000
#: Largest default tile before it is cut into bands.
MAX_TILE_BYTES = 150_000_000
#: What a program on a cluster joins neighbouring amplifiers up to.
CLUSTER_JOIN_BYTES = TARGET_TILE_BYTES
#: Dask configuration key of the user's own ``join_bytes``.
JOIN_KEY = "detflow.tiles.join-bytes"


@dataclass(frozen=True)
class Tiling:
    """Tile sizes of one run (bytes); see the module's docstring."""

    join_bytes: int = 0
    target_bytes: int = TARGET_TILE_BYTES
    max_bytes: int = MAX_TILE_BYTES
    working_bytes: int = 128 * 2**20
    persistence_bytes: int = 256 * 2**20

    @classmethod
    def for_run(cls, *, cluster=False, exposures=1):
        """The tiling of a run: a program of several exposures on a distributed
        scheduler joins neighbouring amplifiers up to :data:`CLUSTER_JOIN_BYTES` (its
        parallelism is its exposures: fewer, larger tasks, each costing the scheduler
        about a millisecond); one exposure, or any run on one machine's threads, keeps
        one amplifier per tile (its parallelism, and less in memory at once). The
        user's ``detflow.tiles.join-bytes`` wins."""
        import dask

        user = dask.config.get(JOIN_KEY, None)
        if user is not None:
            return cls(join_bytes=int(user or 0))
        return cls(join_bytes=CLUSTER_JOIN_BYTES if cluster and exposures > 1 else 0)
