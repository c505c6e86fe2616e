"""How a GEMM runs on the bit-plane engine, fold by fold, and which GEMMs verify it.

Output stationary: one fold per ``rows`` x ``cols`` output tile (row folds inner, column
folds outer), each streaming the whole reduction K, ``depth`` elements per input beat (see
:mod:`sim.engines.bitplane`). The operands are plain integers (two's complement when
signed) for both encodings: the ``bipolar`` engine reads them as bipolar-INT planes and
corrects in hardware, so the numpy reference is the plain ``A @ W``.

Lanes outside the GEMM are filled with random junk wherever the hardware must ignore them
(rows past M, columns past N, weights past K) and with zeros where they would enter a
result (activations past K, in the rows that are kept).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from hw.spec.bitplane import BitplaneSpec
from sim.verify.driver import Case, Fold, random_values

__all__ = ["plan_cases", "plan_folds", "plan_grouped_cases", "plan_grouped_folds"]


def plan_grouped_folds(
    spec, A: np.ndarray, W: np.ndarray, rng: np.random.Generator, per_beat: int
) -> Iterator[Fold]:
    """Output-stationary folds whose input beats carry ``per_beat`` reduction indices: lane
    ``r*per_beat + d`` of ``a`` is ``A[m0 + r, k0 + d]``, lane ``c*per_beat + d`` of ``w`` is
    ``W[k0 + d, n0 + c]`` (shared by the lut and bitplane kinds)."""
    R, C, D = spec.rows, spec.cols, per_beat
    M, K = A.shape
    N = W.shape[1]
    beats = -(-K // D)
    kp = beats * D

    def junk(shape, bits):
        return random_values(rng, shape, bits, spec.signed)

    for n0 in range(0, N, C):
        nc = min(C, N - n0)
        for m0 in range(0, M, R):
            mr = min(R, M - m0)
            a = junk((R, kp), spec.a_bits)
            a[:mr, :K] = A[m0:m0 + mr, :]
            a[:mr, K:] = 0  # past K: must not contribute to the kept rows
            w = junk((kp, C), spec.w_bits)
            w[:K, :nc] = W[:, n0:n0 + nc]
            stream = [
                {"a": a[:, b * D:(b + 1) * D].reshape(-1),
                 "w": w[b * D:(b + 1) * D, :].T.reshape(-1),
                 "last": int(b == beats - 1)}
                for b in range(beats)
            ]
            yield Fold({"i": stream}, R, m0, mr, n0, nc, accumulate=False)


def plan_grouped_cases(spec, rng: np.random.Generator, per_beat: int, *,
                       random_gemms: int = 3) -> list[Case]:
    """Single folds of several stream lengths, multi-fold GEMMs, stalls and extremes."""
    R, C, D = spec.rows, spec.cols, per_beat

    def one_fold(stream: int, label: str) -> Case:
        return Case(label, int(rng.integers(1, R + 1)), int(rng.integers(1, C + 1)), stream)

    cases = [
        one_fold(1, "one fold, stream 1"),
        one_fold(D, "one fold, one full beat"),
        one_fold(2 * D + 1, "one fold, partial last beat"),
        one_fold(int(rng.integers(2, 3 * D + 4)), "one fold, random stream"),
    ]
    dims = lambda d: int(rng.integers(1, 2 * d + 3))  # noqa: E731  (up to about 2 folds + rest)
    for n in range(random_gemms):
        cases.append(Case(f"random GEMM {n + 1}", dims(R), dims(C), dims(D)))
    cases.append(Case("random GEMM, idle input and back-pressure", dims(R), dims(C), dims(D),
                      p_idle=0.3, p_stall=0.3))
    full = (R + 1, C + 1, 2 * D + 1)
    cases.append(Case("all operands at their minimum", *full, extreme="min"))
    cases.append(Case("all operands at their maximum", *full, extreme="max"))
    return cases


def plan_folds(
    spec: BitplaneSpec, A: np.ndarray, W: np.ndarray, rng: np.random.Generator
) -> Iterator[Fold]:
    """The folds of ``A @ W`` on the engine, in the order the cycle model counts them."""
    return plan_grouped_folds(spec, A, W, rng, spec.depth)


def plan_cases(
    spec: BitplaneSpec, rng: np.random.Generator, *, random_gemms: int = 3
) -> list[Case]:
    """Single folds of several stream lengths, multi-fold GEMMs, stalls and extremes."""
    return plan_grouped_cases(spec, rng, spec.depth, random_gemms=random_gemms)
