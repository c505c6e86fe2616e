"""Cycle models of the engines, one module per kind (``sim.engines.<kind>``).

Every kind's untiled GEMM cycles follow from its spec alone: ``spec.unrolling()`` says how
many folds a GEMM takes and which dimension streams, ``spec.fold_cycles`` what one fold
costs. :func:`gemm_compute_cycles` is that generic model; a kind's module may refine it.
"""

from __future__ import annotations

from hw.spec import EngineSpec

__all__ = ["gemm_compute_cycles"]


def gemm_compute_cycles(spec: EngineSpec, M: int, N: int, K: int) -> int:
    """Cycles of an untiled GEMM on the engine alone (operands on chip, folds back to back)."""
    for name, v in (("M", M), ("N", N), ("K", K)):
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v!r}")
    u = spec.unrolling()
    return u.folds(M, N, K) * spec.fold_cycles(u.stream_len(M, N, K))
