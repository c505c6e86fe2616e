"""Cycle model of the multiplier-adder tree engine: the numbers the generated RTL is held to.

Per fold the timing comes from :meth:`hw.spec.AdderTreeSpec.fold_cycles`. A GEMM
``C[M, N] = A[M, K] @ W[K, N]`` is cut into folds that run back to back (the generic model of
:mod:`sim.engines`):

* OS: one fold per output row and ``lanes``-wide column block, each streaming the whole
  reduction K in chunks of k: ``M * ceil(N/lanes)`` folds of ``ceil(K/k) + 1`` cycles.
* WS: one fold per ``k`` x ``lanes`` weight tile, each streaming all M activation rows:
  ``ceil(K/k) * ceil(N/lanes)`` folds of ``k + M + 1`` cycles; partial sums of the
  ``ceil(K/k)`` reduction folds are added outside the engine.
"""

from __future__ import annotations

from sim.engines import Folds, gemm_compute_cycles, gemm_folds

__all__ = ["Folds", "gemm_compute_cycles", "gemm_folds"]
