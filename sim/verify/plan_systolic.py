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
from sim.verify.driver import plan_cases as generic_cases
from sim.verify.options import RANDOM_GEMMS

__all__ = ["plan_cases", "plan_folds"]


def plan_cases(spec: SystolicSpec, rng: np.random.Generator, *, random_gemms: int = RANDOM_GEMMS,
               max_dim: int | None = None) -> list[Case]:
    """The generic cases (:func:`sim.verify.driver.plan_cases`); with ``weight_double_buffer``
    also GEMMs of several K and N folds (partial tiles) whose stream M is shorter than,
    equal to and longer than the shadow reload (``2*rows + cols - 1``), where the weight
    load is partly and wholly hidden; with ``output_double_buffer`` GEMMs of several M and N
    folds whose reduction K is shorter than (when ``rows + cols > 2``), equal to and longer
    than the wait for row 0 to drain (``rows + cols - 1``), where the drain is partly and
    wholly hidden."""
    cases = generic_cases(spec, rng, random_gemms=random_gemms, max_dim=max_dim)
    if spec.output_double_buffer:
        R, C = spec.rows, spec.cols
        hidden = spec.fold_interval(1)  # the shortest fold interval: row 0 leaves
        lengths = [("as long as", hidden),
                   ("longer than", int(rng.integers(hidden + 1, 2 * hidden + 4)))]
        if hidden > 1:
            lengths.insert(0, ("shorter than", int(rng.integers(1, hidden))))
        for label, K in lengths:
            cases.append(Case(f"double-buffered outputs, stream {label} the drain",
                              int(rng.integers(R + 1, 3 * R + 1)),
                              int(rng.integers(C + 1, 2 * C + 2)), K))
    if spec.weight_double_buffer:
        R, C = spec.rows, spec.cols
        hidden = spec.fold_interval(1)  # the shortest fold interval: the shadow reload
        for label, M in (("shorter than", int(rng.integers(1, hidden))), ("as long as", hidden),
                         ("longer than", int(rng.integers(hidden + 1, 2 * hidden + 4)))):
            cases.append(Case(f"double-buffered folds, stream {label} the reload", M,
                              int(rng.integers(C + 1, 2 * C + 2)),
                              int(rng.integers(R + 1, 3 * R + 1))))
    return cases


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
