"""Cycle model of the 3D-Cube: the numbers the generated RTL is held to.

Per fold the timing comes from :meth:`hw.spec.CubeSpec.fold_cycles`: ``ceil(K/k)`` input
beats, then ``m`` output rows. A GEMM ``C[M, N] = A[M, K] @ W[K, N]`` is cut into one fold per
``m`` x ``n`` output tile, each streaming the whole reduction K; folds run back to back:
``ceil(M/m) * ceil(N/n)`` folds of ``ceil(K/k) + m`` cycles (the generic model of
:mod:`sim.engines`).
"""

from __future__ import annotations

from sim.engines import Folds, gemm_compute_cycles, gemm_folds

__all__ = ["Folds", "gemm_compute_cycles", "gemm_folds"]
