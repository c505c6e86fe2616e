"""Cycle model of the 2D-Matrix: the numbers the generated RTL is held to.

One fold per ``rows`` x ``cols`` output tile, each streaming the whole reduction K (one beat
per k, an outer product per cycle) and draining its tile one row per cycle:
``ceil(M/rows) * ceil(N/cols)`` folds of :meth:`hw.spec.Matrix2dSpec.fold_cycles` ``(K) =
K + rows``, run back to back. The booth and csa_accumulate options change the PE's logic
depth and area, never its cycles.
"""

from __future__ import annotations

from sim.engines import Folds, gemm_compute_cycles, gemm_folds

__all__ = ["Folds", "gemm_compute_cycles", "gemm_folds"]
