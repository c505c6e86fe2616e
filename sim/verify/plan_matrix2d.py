"""How a GEMM runs on the 2D-Matrix, fold by fold, and which GEMMs verify it.

A GEMM ``C[M, N] = A[M, K] @ W[K, N]`` is cut into ``rows`` x ``cols`` output tiles, each a
fold that streams the whole reduction K (see :mod:`sim.engines.matrix2d`). Lanes of a partial
tile (rows beyond M, columns beyond N) carry random junk: the PEs they feed compute results
that land outside C, so the checks also prove that padding is harmless.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from hw.spec.base import EngineBase
from sim.verify.driver import Fold, plan_cases, random_values

__all__ = ["broadcast_folds", "plan_cases", "plan_folds"]


def broadcast_folds(
    spec: EngineBase, A: np.ndarray, W: np.ndarray, rng: np.random.Generator
) -> Iterator[Fold]:
    """Output-tile folds of an engine whose ``i`` beats broadcast a column of A over the PE
    rows and a row of W over the PE columns (the 2D-Matrix and the bit-slice array)."""
    R, C = spec.rows, spec.cols  # type: ignore[attr-defined]
    M, K = A.shape
    N = W.shape[1]
    for n0 in range(0, N, C):
        nc = min(C, N - n0)
        for m0 in range(0, M, R):
            mr = min(R, M - m0)
            a = random_values(rng, (K, R), spec.a_bits, spec.signed)
            a[:, :mr] = A[m0:m0 + mr, :].T
            w = random_values(rng, (K, C), spec.w_bits, spec.signed)
            w[:, :nc] = W[:, n0:n0 + nc]
            beats = [{"a": a[k], "w": w[k], "last": int(k == K - 1)} for k in range(K)]
            yield Fold({"i": beats}, R, m0, mr, n0, nc, accumulate=False)


def plan_folds(
    spec: EngineBase, A: np.ndarray, W: np.ndarray, rng: np.random.Generator
) -> Iterator[Fold]:
    """The folds of ``A @ W`` on the grid, in the order the cycle model counts them."""
    return broadcast_folds(spec, A, W, rng)
