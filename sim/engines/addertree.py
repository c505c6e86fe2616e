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

from dataclasses import dataclass

from hw.spec import EngineSpec
from hw.spec.addertree import AdderTreeSpec
from sim.engines import gemm_compute_cycles as _generic_cycles

__all__ = ["AdderTreeFolds", "gemm_compute_cycles", "gemm_folds"]


@dataclass(frozen=True, slots=True)
class AdderTreeFolds:
    """How a GEMM folds onto the lanes when the whole stream fits (no buffer tiling)."""

    folds: int
    stream_len: int
    stream_beats: int
    fold_cycles: int

    @property
    def cycles(self) -> int:
        return self.folds * self.fold_cycles


def gemm_folds(spec: AdderTreeSpec, M: int, N: int, K: int) -> AdderTreeFolds:
    """Folds of an untiled GEMM (every operand resident, as with ``--memory ideal``)."""
    for name, v in (("M", M), ("N", N), ("K", K)):
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v!r}")
    u = spec.unrolling()
    stream = u.stream_len(M, N, K)
    return AdderTreeFolds(folds=u.folds(M, N, K), stream_len=stream,
                          stream_beats=spec.stream_cycles(stream),
                          fold_cycles=spec.fold_cycles(stream))


def gemm_compute_cycles(spec: EngineSpec, M: int, N: int, K: int) -> int:
    """Cycles of an untiled GEMM on the engine alone: what the RTL measures fold after fold."""
    return _generic_cycles(spec, M, N, K)
