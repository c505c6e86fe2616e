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
from sim.verify.driver import Fold, plan_cases, random_values

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
