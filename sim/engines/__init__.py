"""Cycle models of the engines, one module per kind (``sim.engines.<kind>``).

Every kind's untiled GEMM cycles follow from its spec alone: ``spec.unrolling()`` says how
many folds a GEMM takes and which dimension streams, ``spec.fold_cycles`` what one fold
costs. :func:`gemm_folds` / :func:`gemm_compute_cycles` are that generic model; a kind's
module re-exports them with its documentation and adds what its timing needs beyond it (for
example data-dependent cycles).
"""

from __future__ import annotations

from dataclasses import dataclass

from hw.spec import EngineSpec

__all__ = ["Folds", "gemm_compute_cycles", "gemm_folds"]


@dataclass(frozen=True, slots=True)
class Folds:
    """How a GEMM folds onto an engine when the whole stream fits (no buffer tiling)."""

    folds: int
    stream_len: int
    fold_cycles: int

    @property
    def cycles(self) -> int:
        return self.folds * self.fold_cycles


def gemm_folds(spec: EngineSpec, M: int, N: int, K: int) -> Folds:
    """Folds of an untiled GEMM (every operand resident, as with ``--memory ideal``)."""
    for name, v in (("M", M), ("N", N), ("K", K)):
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v!r}")
    u = spec.unrolling()
    stream = u.stream_len(M, N, K)
    return Folds(folds=u.folds(M, N, K), stream_len=stream, fold_cycles=spec.fold_cycles(stream))


def gemm_compute_cycles(spec: EngineSpec, M: int, N: int, K: int) -> int:
    """Cycles of an untiled GEMM on the engine alone (operands on chip, folds back to back)."""
    return gemm_folds(spec, M, N, K).cycles
