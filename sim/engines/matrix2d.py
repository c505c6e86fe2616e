"""Cycle model of the 2D-Matrix: the numbers the generated RTL is held to.

One fold per ``rows`` x ``cols`` output tile, each streaming the whole reduction K (one beat
per k, an outer product per cycle) and draining its tile one row per cycle:
``ceil(M/rows) * ceil(N/cols)`` folds of :meth:`hw.spec.Matrix2dSpec.fold_cycles` ``(K) =
K + rows``, run back to back. The booth and csa_accumulate options change the PE's logic
depth and area, never its cycles.
"""

from __future__ import annotations

from hw.spec.matrix2d import Matrix2dSpec
from sim.engines import gemm_compute_cycles as _generic

__all__ = ["gemm_compute_cycles"]


def gemm_compute_cycles(spec: Matrix2dSpec, M: int, N: int, K: int) -> int:
    """Cycles of an untiled GEMM on the grid alone: what the RTL measures fold after fold."""
    return _generic(spec, M, N, K)
