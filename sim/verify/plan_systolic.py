"""How a GEMM runs on the systolic array, fold by fold, and which GEMMs verify it.

A GEMM ``C[M, N] = A[M, K] @ W[K, N]`` is cut into folds as in :mod:`sim.engines.systolic`.
Lanes of a fold that fall outside the GEMM (a partial tile) are filled with random junk
wherever the hardware must ignore them, and with zeros where they would enter a result (WS
weight rows beyond K), so the checks also prove that padding is harmless.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from hw.spec import SystolicSpec
from sim.verify.driver import Case, Fold, random_values

__all__ = ["plan_cases", "plan_folds"]


def plan_folds(
    spec: SystolicSpec, A: np.ndarray, W: np.ndarray, rng: np.random.Generator
) -> Iterator[Fold]:
    """The folds of ``A @ W`` on the array, in the order the cycle model counts them."""
    R, C = spec.rows, spec.cols
    M, K = A.shape
    N = W.shape[1]

    def junk(shape, bits):
        return random_values(rng, shape, bits, spec.signed)

    def stream(a, w=None):
        n = len(a)
        return [{"a": a[k], **({} if w is None else {"w": w[k]}), "last": int(k == n - 1)}
                for k in range(n)]

    for n0 in range(0, N, C):
        nc = min(C, N - n0)
        if spec.dataflow == "os":
            for m0 in range(0, M, R):
                mr = min(R, M - m0)
                a = junk((K, R), spec.a_bits)
                a[:, :mr] = A[m0:m0 + mr, :].T
                w = junk((K, C), spec.w_bits)
                w[:, :nc] = W[:, n0:n0 + nc]
                yield Fold({"i": stream(a, w)}, R, m0, mr, n0, nc, accumulate=False)
        else:
            for k0 in range(0, K, R):
                kr = min(R, K - k0)
                wl = junk((R, C), spec.w_bits)
                wl[kr:, :] = 0  # unused reduction rows must not contribute
                wl[:kr, :nc] = W[k0:k0 + kr, n0:n0 + nc]
                a = junk((M, R), spec.a_bits)
                a[:, :kr] = A[:, k0:k0 + kr]
                beats = {"wl": [{"w": row} for row in wl], "i": stream(a)}
                yield Fold(beats, M, 0, M, n0, nc, accumulate=k0 > 0)


def plan_cases(
    spec: SystolicSpec, rng: np.random.Generator, *, random_gemms: int = 3
) -> list[Case]:
    """Single folds of several stream lengths, multi-fold GEMMs, stalls and extremes."""
    R, C = spec.rows, spec.cols
    os_ = spec.dataflow == "os"

    def one_fold(stream: int, label: str) -> Case:
        # One fold: the array dims are partially used, the stream has length `stream`.
        if os_:
            return Case(label, int(rng.integers(1, R + 1)), int(rng.integers(1, C + 1)), stream)
        return Case(label, stream, int(rng.integers(1, C + 1)), int(rng.integers(1, R + 1)))

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
