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

from dataclasses import dataclass

from hw.spec import SystolicSpec

__all__ = ["SystolicFolds", "gemm_compute_cycles", "gemm_folds"]


@dataclass(frozen=True, slots=True)
class SystolicFolds:
    """How a GEMM folds onto the array when the whole stream fits (no buffer tiling)."""

    folds: int
    stream_len: int
    fold_cycles: int

    @property
    def cycles(self) -> int:
        return self.folds * self.fold_cycles


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def gemm_folds(spec: SystolicSpec, M: int, N: int, K: int) -> SystolicFolds:
    """Folds of an untiled GEMM (every operand resident, as with ``--memory ideal``)."""
    for name, v in (("M", M), ("N", N), ("K", K)):
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v!r}")
    if spec.dataflow == "os":
        folds = _ceil_div(M, spec.rows) * _ceil_div(N, spec.cols)
        stream = K
    else:
        folds = _ceil_div(K, spec.rows) * _ceil_div(N, spec.cols)
        stream = M
    return SystolicFolds(folds=folds, stream_len=stream, fold_cycles=spec.fold_cycles(stream))


def gemm_compute_cycles(spec: SystolicSpec, M: int, N: int, K: int) -> int:
    """Cycles of an untiled GEMM on the array alone: what the RTL measures fold after fold."""
    return gemm_folds(spec, M, N, K).cycles
