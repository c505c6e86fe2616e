"""Cycle model of the bit-plane engine: the numbers the generated RTL is held to.

Output stationary (rows <- M, cols <- N, K streamed ``depth`` elements per beat): a GEMM
``C[M, N] = A[M, K] @ W[K, N]`` takes ``ceil(M/rows) * ceil(N/cols)`` folds, each of
:meth:`hw.spec.BitplaneSpec.fold_cycles` ``(K) = 1 + ceil(K/depth)*a_bits*w_bits + rows``
cycles (input plane register, one plane pair per cycle, drain one output row per cycle),
back to back: cycles grow with ``a_bits * w_bits``.
"""

from __future__ import annotations

from sim.engines import Folds, gemm_compute_cycles, gemm_folds

__all__ = ["Folds", "gemm_compute_cycles", "gemm_folds"]
