"""Cycle model of the systolic array: the numbers the generated RTL is held to.

Per fold the timing comes from :meth:`hw.spec.SystolicSpec.fold_cycles` (fill, steady state,
drain). A GEMM ``C[M, N] = A[M, K] @ W[K, N]`` larger than the array is cut into folds that run
back to back:

* OS: one fold per ``rows`` x ``cols`` output tile, each streaming the whole reduction K:
  ``ceil(M/rows) * ceil(N/cols)`` folds of ``fold_cycles(K)``.
* WS: one fold per ``rows`` x ``cols`` weight tile, each streaming all M activation rows:
  ``ceil(K/rows) * ceil(N/cols)`` folds of ``fold_cycles(M)``; partial sums of the
  ``ceil(K/rows)`` reduction folds are added outside the array.

This is :func:`sim.engines.gemm_compute_cycles` for the systolic array, spelled out for the RTL
tests. GEMMs cut into buffer tiles are costed by the kind-independent model of
:func:`sim.gemm.tiled_compute_cycles`, which needs only the spec's unrolling and fold timing.
"""

from __future__ import annotations

from sim.engines import Folds, gemm_compute_cycles, gemm_folds

__all__ = ["Folds", "gemm_compute_cycles", "gemm_folds"]
