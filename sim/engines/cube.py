"""Cycle model of the 3D-Cube: the numbers the generated RTL is held to.

Per fold the timing comes from :meth:`hw.spec.CubeSpec.fold_cycles`: ``ceil(K/k)`` input
beats, then ``m`` output rows. A GEMM ``C[M, N] = A[M, K] @ W[K, N]`` is cut into one fold per
``m`` x ``n`` output tile, each streaming the whole reduction K; folds run back to back:
``ceil(M/m) * ceil(N/n)`` folds of ``ceil(K/k) + m`` cycles (the generic model of
:mod:`sim.engines`).
"""

from __future__ import annotations

from dataclasses import dataclass

from hw.spec import EngineSpec
from hw.spec.cube import CubeSpec
from sim.engines import gemm_compute_cycles as _generic_cycles

__all__ = ["CubeFolds", "gemm_compute_cycles", "gemm_folds"]


@dataclass(frozen=True, slots=True)
class CubeFolds:
    """How a GEMM folds onto the cube when the whole stream fits (no buffer tiling)."""

    folds: int
    stream_len: int
    stream_beats: int
    fold_cycles: int

    @property
    def cycles(self) -> int:
        return self.folds * self.fold_cycles


def gemm_folds(spec: CubeSpec, M: int, N: int, K: int) -> CubeFolds:
    """Folds of an untiled GEMM (every operand resident, as with ``--memory ideal``)."""
    for name, v in (("M", M), ("N", N), ("K", K)):
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v!r}")
    u = spec.unrolling()
    return CubeFolds(folds=u.folds(M, N, K), stream_len=K, stream_beats=spec.stream_cycles(K),
                     fold_cycles=spec.fold_cycles(K))


def gemm_compute_cycles(spec: EngineSpec, M: int, N: int, K: int) -> int:
    """Cycles of an untiled GEMM on the cube alone: what the RTL measures fold after fold."""
    return _generic_cycles(spec, M, N, K)
