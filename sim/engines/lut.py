"""Cycle model of the LUT engine: the numbers the generated RTL is held to.

Output stationary (rows <- M, cols <- N, K streamed in groups of ``group``): a GEMM
``C[M, N] = A[M, K] @ W[K, N]`` takes ``ceil(M/rows) * ceil(N/cols)`` folds, each of
:meth:`hw.spec.LutSpec.fold_cycles` ``(K) = 1 + ceil(K/group)*w_bits + rows`` cycles (table
precompute of the first group, one weight bit-plane per cycle, drain one output row per
cycle), back to back.
"""

from __future__ import annotations

from sim.engines import Folds, gemm_compute_cycles, gemm_folds

__all__ = ["Folds", "gemm_compute_cycles", "gemm_folds"]
