"""Cycle model of the LUT engine: the numbers the generated RTL is held to.

Output stationary (rows <- M, cols <- N, K streamed in groups of ``group``): a GEMM
``C[M, N] = A[M, K] @ W[K, N]`` takes ``ceil(M/rows) * ceil(N/cols)`` folds, each of
:meth:`hw.spec.LutSpec.fold_cycles` ``(K) = 1 + ceil(K/group)*w_bits + rows`` cycles (table
precompute of the first group, one weight bit-plane per cycle, drain one output row per
cycle), back to back.
"""

from __future__ import annotations

from dataclasses import dataclass

from hw.spec.lut import LutSpec
from sim.engines import gemm_compute_cycles as _generic_cycles

__all__ = ["LutFolds", "gemm_compute_cycles", "gemm_folds"]


@dataclass(frozen=True, slots=True)
class LutFolds:
    """How a GEMM folds onto the engine when the whole stream fits (no buffer tiling)."""

    folds: int
    stream_len: int
    fold_cycles: int

    @property
    def cycles(self) -> int:
        return self.folds * self.fold_cycles


def gemm_folds(spec: LutSpec, M: int, N: int, K: int) -> LutFolds:
    """Folds of an untiled GEMM (every operand resident, as with ``--memory ideal``)."""
    for name, v in (("M", M), ("N", N), ("K", K)):
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v!r}")
    u = spec.unrolling()
    return LutFolds(folds=u.folds(M, N, K), stream_len=K, fold_cycles=spec.fold_cycles(K))


def gemm_compute_cycles(spec: LutSpec, M: int, N: int, K: int) -> int:
    """Cycles of an untiled GEMM on the engine alone: what the RTL measures fold after fold."""
    return _generic_cycles(spec, M, N, K)
