"""How a GEMM runs on the multiplier-adder tree engine, fold by fold, and which GEMMs verify it.

A GEMM ``C[M, N] = A[M, K] @ W[K, N]`` is cut into folds as in :mod:`sim.engines.addertree`:

* OS: one fold per output row and ``lanes``-wide column block, streaming K in ``ceil(K/k)``
  beats;
* WS: one fold per ``k`` x ``lanes`` weight tile (preloaded), streaming the M activation rows;
  the partial sums of the reduction folds accumulate in C.

Lanes of a fold that fall outside the GEMM are filled with random junk wherever the hardware
must ignore them (weight lanes beyond N; OS weights and WS activations beyond K), and with
zeros where they would enter a result (OS activations and WS weights beyond K), so the checks
also prove that padding is harmless.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from hw.spec.addertree import AdderTreeSpec
from sim.verify.driver import Case, Fold, random_values

__all__ = ["plan_cases", "plan_folds"]


def plan_folds(
    spec: AdderTreeSpec, A: np.ndarray, W: np.ndarray, rng: np.random.Generator
) -> Iterator[Fold]:
    """The folds of ``A @ W`` on the lanes, in the order the cycle model counts them."""
    L, k = spec.lanes, spec.k
    M, K = A.shape
    N = W.shape[1]

    def junk(shape, bits):
        return random_values(rng, shape, bits, spec.signed)

    for n0 in range(0, N, L):
        nc = min(L, N - n0)
        if spec.dataflow == "os":
            beats = -(-K // k)
            for row in range(M):
                a = np.zeros(beats * k, dtype=np.int64)  # padded reduction lanes: zeros
                a[:K] = A[row]
                w = junk((L, beats * k), spec.w_bits)
                w[:nc, :K] = W[:, n0:n0 + nc].T
                stream = [
                    {"a": a[b * k:(b + 1) * k],
                     "w": w[:, b * k:(b + 1) * k].reshape(-1),  # lane-major: w[l*k + q]
                     "last": int(b == beats - 1)}
                    for b in range(beats)
                ]
                yield Fold({"i": stream}, 1, row, 1, n0, nc, accumulate=False)
        else:
            for k0 in range(0, K, k):
                kr = min(k, K - k0)
                wl = junk((k, L), spec.w_bits)
                wl[kr:, :] = 0  # unused reduction rows must not contribute
                wl[:kr, :nc] = W[k0:k0 + kr, n0:n0 + nc]
                a = junk((M, k), spec.a_bits)
                a[:, :kr] = A[:, k0:k0 + kr]
                beats = {
                    "wl": [{"w": row} for row in wl],
                    "i": [{"a": a[r], "last": int(r == M - 1)} for r in range(M)],
                }
                yield Fold(beats, M, 0, M, n0, nc, accumulate=k0 > 0)


def plan_cases(
    spec: AdderTreeSpec, rng: np.random.Generator, *, random_gemms: int = 3
) -> list[Case]:
    """Single folds of several stream lengths, multi-fold GEMMs, stalls and extremes."""
    L, k = spec.lanes, spec.k
    os_ = spec.dataflow == "os"

    def one_fold(stream: int, label: str) -> Case:
        lanes = int(rng.integers(1, L + 1))
        if os_:
            return Case(label, 1, lanes, stream)
        return Case(label, stream, lanes, int(rng.integers(1, k + 1)))

    def dims() -> tuple[int, int, int]:  # up to about 2 folds + rest along N and K or M
        return (int(rng.integers(1, 5 if os_ else 2 * k + 3)), int(rng.integers(1, 2 * L + 3)),
                int(rng.integers(1, 3 * k + 3)))

    cases = [
        one_fold(1, "one fold, stream 1"),
        one_fold(k, "one fold, stream k"),
        one_fold(int(rng.integers(k + 1, 3 * k + 2)), "one fold, random stream"),
    ]
    for i in range(random_gemms):
        cases.append(Case(f"random GEMM {i + 1}", *dims()))
    cases.append(Case("random GEMM, idle input and back-pressure", *dims(),
                      p_idle=0.3, p_stall=0.3))
    full = (3, L + 1, 2 * k + 1)
    cases.append(Case("all operands at their minimum", *full, extreme="min"))
    cases.append(Case("all operands at their maximum", *full, extreme="max"))
    return cases
