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
from sim.verify.driver import Fold, plan_cases, random_values

__all__ = ["plan_cases", "plan_folds", "plan_grouped_folds"]


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


def plan_folds(
    spec: BitplaneSpec, A: np.ndarray, W: np.ndarray, rng: np.random.Generator
) -> Iterator[Fold]:
    """The folds of ``A @ W`` on the engine, in the order the cycle model counts them."""
    return plan_grouped_folds(spec, A, W, rng, spec.depth)
