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
from sim.verify.driver import Case, Fold, random_values

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


def plan_cases(
    spec: EngineBase, rng: np.random.Generator, *, random_gemms: int = 3
) -> list[Case]:
    """Single folds of several stream lengths, multi-fold GEMMs, stalls and extremes."""
    R, C = spec.rows, spec.cols  # type: ignore[attr-defined]

    def one_fold(stream: int, label: str) -> Case:
        return Case(label, int(rng.integers(1, R + 1)), int(rng.integers(1, C + 1)), stream)

    cases = [one_fold(1, "one fold, stream 1"), one_fold(R + C, "one fold, stream rows+cols")]
    cases.append(one_fold(int(rng.integers(2, 3 * R + 8)), "one fold, random stream"))
    dims = lambda d: int(rng.integers(1, 2 * d + 3))  # noqa: E731  (up to about 2 folds + rest)
    for n in range(random_gemms):
        cases.append(Case(f"random GEMM {n + 1}", dims(R), dims(C), dims(R)))
    cases.append(Case("random GEMM, idle input and back-pressure", dims(R), dims(C), dims(R),
                      p_idle=0.3, p_stall=0.3))
    full = (R + 1, C + 1, R + 2)
    cases.append(Case("all operands at their minimum", *full, extreme="min"))
    cases.append(Case("all operands at their maximum", *full, extreme="max"))
    return cases
