"""Drive a GEMM through a systolic array fold by fold: beats in, results out, numpy reference.

Simulator-independent: the cocotb bench (Verilator) and the amaranth.sim tests both use the
same fold plan, so what one checks the other checks too.

A GEMM ``C[M, N] = A[M, K] @ W[K, N]`` is cut into folds as in
:mod:`sim.engines.systolic`. Lanes of a fold that fall outside the GEMM (a partial tile) are
filled with random junk wherever the hardware must ignore them, and with zeros where they
enter a result (WS weight rows beyond K), so the checks also prove that padding is harmless.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from hw.spec import SystolicSpec

__all__ = [
    "Fold",
    "assemble",
    "operand_range",
    "plan_folds",
    "random_operands",
    "reference_gemm",
    "wrap",
]


def operand_range(bits: int, signed: bool) -> tuple[int, int]:
    """Inclusive value range of a ``bits``-wide operand."""
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def wrap(values: np.ndarray, bits: int, signed: bool) -> np.ndarray:
    """Reduce int64 values modulo ``2**bits`` (two's complement when ``signed``)."""
    u = values.astype(np.int64).view(np.uint64)
    if bits < 64:
        u = u & np.uint64((1 << bits) - 1)
        if signed:
            sign = np.uint64(1 << (bits - 1))
            return (u ^ sign).astype(np.int64) - np.int64(1 << (bits - 1))
        return u.astype(np.int64)
    return u.view(np.int64) if signed else u  # type: ignore[return-value]


def random_values(rng: np.random.Generator, shape, bits: int, signed: bool) -> np.ndarray:
    """Uniform values with extremes (min, max, 0, +-1) mixed in at about 30%."""
    lo, hi = operand_range(bits, signed)
    vals = rng.integers(lo, hi, size=shape, endpoint=True, dtype=np.int64)
    extremes = np.array(sorted({lo, hi, 0, min(max(1, lo), hi), max(min(-1, hi), lo)}))
    pick = rng.random(shape) < 0.3
    vals[pick] = rng.choice(extremes, size=int(pick.sum()))
    return vals


def random_operands(rng: np.random.Generator, spec: SystolicSpec, M: int, N: int, K: int):
    """Random ``A[M, K]`` and ``W[K, N]`` in the engine's operand ranges, extremes included."""
    A = random_values(rng, (M, K), spec.a_bits, spec.signed)
    W = random_values(rng, (K, N), spec.w_bits, spec.signed)
    return A, W


def reference_gemm(spec: SystolicSpec, A: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``A @ W`` wrapped to the accumulator width: the bit-exact expected result."""
    # int64 matmul wraps modulo 2**64, and 2**acc_bits divides 2**64 (acc_bits <= 64).
    with np.errstate(over="ignore"):
        return wrap(A.astype(np.int64) @ W.astype(np.int64), spec.acc_bits, spec.signed)


@dataclass(frozen=True)
class Fold:
    """The beats of one fold and where its output rows land in C.

    ``wl``: WS weight-load beats (rows x cols) or None for OS. ``a``: input beats' a lanes
    (stream_len x rows). ``w``: OS input beats' w lanes (stream_len x cols) or None.
    Output beat b lands at ``C[row0 + b, col0:col0 + ncols]`` (its first ``ncols`` lanes),
    only for b < ``nrows``; ``accumulate`` adds it to what is there (WS reduction folds).
    """

    wl: np.ndarray | None
    a: np.ndarray
    w: np.ndarray | None
    out_beats: int
    row0: int
    nrows: int
    col0: int
    ncols: int
    accumulate: bool


def plan_folds(
    spec: SystolicSpec, A: np.ndarray, W: np.ndarray, rng: np.random.Generator
) -> Iterator[Fold]:
    """The folds of ``A @ W`` on the array, in the order the cycle model counts them."""
    R, C = spec.rows, spec.cols
    M, K = A.shape
    N = W.shape[1]
    junk = lambda shape, bits: random_values(rng, shape, bits, spec.signed)  # noqa: E731
    for n0 in range(0, N, C):
        nc = min(C, N - n0)
        if spec.dataflow == "os":
            for m0 in range(0, M, R):
                mr = min(R, M - m0)
                a = junk((K, R), spec.a_bits)
                a[:, :mr] = A[m0:m0 + mr, :].T
                w = junk((K, C), spec.w_bits)
                w[:, :nc] = W[:, n0:n0 + nc]
                yield Fold(None, a, w, R, m0, mr, n0, nc, accumulate=False)
        else:
            for k0 in range(0, K, R):
                kr = min(R, K - k0)
                wl = junk((R, C), spec.w_bits)
                wl[kr:, :] = 0  # unused reduction rows must not contribute
                wl[:kr, :nc] = W[k0:k0 + kr, n0:n0 + nc]
                a = junk((M, R), spec.a_bits)
                a[:, :kr] = A[:, k0:k0 + kr]
                yield Fold(wl, a, None, M, 0, M, n0, nc, accumulate=k0 > 0)


def assemble(spec: SystolicSpec, M: int, N: int, folds_and_outputs) -> np.ndarray:
    """Place every fold's output beats (out_beats x cols arrays) into ``C[M, N]``."""
    C = np.zeros((M, N), dtype=np.int64)
    with np.errstate(over="ignore"):
        for fold, out in folds_and_outputs:
            block = np.asarray(out, dtype=np.int64)[: fold.nrows, : fold.ncols]
            dst = C[fold.row0:fold.row0 + fold.nrows, fold.col0:fold.col0 + fold.ncols]
            dst[...] = dst + block if fold.accumulate else block
    return wrap(C, spec.acc_bits, spec.signed)
