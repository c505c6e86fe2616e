"""Cycle model of the bit-plane engine: the numbers the generated RTL is held to.

Output stationary (rows <- M, cols <- N, K streamed ``depth`` elements per beat): a GEMM
``C[M, N] = A[M, K] @ W[K, N]`` takes ``ceil(M/rows) * ceil(N/cols)`` folds, each of
:meth:`hw.spec.BitplaneSpec.fold_cycles` ``(K) = 1 + ceil(K/depth)*a_bits*w_bits + rows``
cycles (input plane register, one plane pair per cycle, drain one output row per cycle),
back to back: cycles grow with ``a_bits * w_bits``.
"""

from __future__ import annotations

from dataclasses import dataclass

from hw.spec.bitplane import BitplaneSpec
from sim.engines import gemm_compute_cycles as _generic_cycles

__all__ = ["BitplaneFolds", "gemm_compute_cycles", "gemm_folds"]


@dataclass(frozen=True, slots=True)
class BitplaneFolds:
    """How a GEMM folds onto the engine when the whole stream fits (no buffer tiling)."""

    folds: int
    stream_len: int
    fold_cycles: int

    @property
    def cycles(self) -> int:
        return self.folds * self.fold_cycles


def gemm_folds(spec: BitplaneSpec, M: int, N: int, K: int) -> BitplaneFolds:
    """Folds of an untiled GEMM (every operand resident, as with ``--memory ideal``)."""
    for name, v in (("M", M), ("N", N), ("K", K)):
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v!r}")
    u = spec.unrolling()
    return BitplaneFolds(folds=u.folds(M, N, K), stream_len=K, fold_cycles=spec.fold_cycles(K))


def gemm_compute_cycles(spec: BitplaneSpec, M: int, N: int, K: int) -> int:
    """Cycles of an untiled GEMM on the engine alone: what the RTL measures fold after fold."""
    return _generic_cycles(spec, M, N, K)
