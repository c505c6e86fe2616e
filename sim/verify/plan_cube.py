"""How a GEMM runs on the 3D-Cube, fold by fold, and which GEMMs verify it.

A GEMM ``C[M, N] = A[M, K] @ W[K, N]`` is cut into folds as in :mod:`sim.engines.cube`: one
per ``m`` x ``n`` output tile, streaming K in ``ceil(K/k)`` beats. Lanes of a fold that fall
outside the GEMM are filled with random junk wherever the hardware must ignore them (A rows
beyond M, W columns beyond N, W rows beyond K), and with zeros where they would enter a
result (the A lanes of a partial last chunk beyond K), so the checks also prove that padding
is harmless.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from hw.spec.cube import CubeSpec
from sim.verify.driver import Case, Fold, random_values
from sim.verify.driver import plan_cases as generic_cases
from sim.verify.options import RANDOM_GEMMS

__all__ = ["plan_cases", "plan_folds"]


def plan_cases(spec: CubeSpec, rng: np.random.Generator, *, random_gemms: int = RANDOM_GEMMS,
               max_dim: int | None = None) -> list[Case]:
    """The generic cases (:func:`sim.verify.driver.plan_cases`); with ``output_double_buffer``
    also GEMMs of several M and N folds (partial tiles) whose ``ceil(K/k)`` beats are fewer
    than (when ``m > 1``), as many as and more than the bank's ``m`` rows, where the drain is
    partly and wholly hidden."""
    cases = generic_cases(spec, rng, random_gemms=random_gemms, max_dim=max_dim)
    if spec.output_double_buffer:
        k = spec.k
        hidden = spec.fold_interval(1)  # the shortest fold interval, in beats: the m rows
        lengths = [("as long as", int(rng.integers((hidden - 1) * k + 1, hidden * k + 1))),
                   ("longer than", int(rng.integers(hidden * k + 1, (2 * hidden + 4) * k)))]
        if hidden > 1:
            lengths.insert(0, ("shorter than", int(rng.integers(1, (hidden - 1) * k + 1))))
        for label, K in lengths:
            cases.append(Case(f"double-buffered outputs, stream {label} the drain",
                              int(rng.integers(spec.m + 1, 3 * spec.m + 1)),
                              int(rng.integers(spec.n + 1, 2 * spec.n + 2)), K))
    return cases


def plan_folds(
    spec: CubeSpec, A: np.ndarray, W: np.ndarray, rng: np.random.Generator
) -> Iterator[Fold]:
    """The folds of ``A @ W`` on the cube, in the order the cycle model counts them."""
    m, n, k = spec.m, spec.n, spec.k
    M, K = A.shape
    N = W.shape[1]
    beats = -(-K // k)
    Kp = beats * k  # the reduction padded to whole chunks

    def junk(shape, bits):
        return random_values(rng, shape, bits, spec.signed)

    for n0 in range(0, N, n):
        nc = min(n, N - n0)
        for m0 in range(0, M, m):
            mr = min(m, M - m0)
            a = junk((m, Kp), spec.a_bits)
            a[:, K:] = 0  # padded reduction lanes: zero activations, junk weights
            a[:mr, :K] = A[m0:m0 + mr, :]
            w = junk((Kp, n), spec.w_bits)
            w[:K, :nc] = W[:, n0:n0 + nc]
            stream = [
                {"a": a[:, b * k:(b + 1) * k].reshape(-1),  # m x k tile, row-major
                 "w": w[b * k:(b + 1) * k, :].reshape(-1),  # k x n tile, row-major
                 "last": int(b == beats - 1)}
                for b in range(beats)
            ]
            yield Fold({"i": stream}, m, m0, mr, n0, nc, accumulate=False)
