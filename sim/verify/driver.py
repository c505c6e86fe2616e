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
            # Unsigned 64-bit lanes may exceed int64: keep their two's complement bits.
            rows = [[v - (1 << 64) if v >= 1 << 63 else v for v in beat] for beat in out]
            block = np.asarray(rows, dtype=np.int64)[: fold.nrows, : fold.ncols]
            dst = C[fold.row0:fold.row0 + fold.nrows, fold.col0:fold.col0 + fold.ncols]
            dst[...] = dst + block if fold.accumulate else block
    return wrap(C, spec.acc_bits, spec.signed)


@dataclass(frozen=True)
class Case:
    """One GEMM of a verification run."""

    label: str
    M: int
    N: int
    K: int
    p_idle: float = 0.0  # chance that the feeder leaves a cycle empty
    p_stall: float = 0.0  # chance that the consumer drops ready
    extreme: str = ""  # "", "min" or "max": every operand at that end of its range

    @property
    def checks_cycles(self) -> bool:
        return self.p_idle == 0.0 and self.p_stall == 0.0


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


def case_operands(spec: SystolicSpec, case: Case, rng: np.random.Generator):
    """The operands of a case: random with extremes mixed in, or all at one extreme."""
    if not case.extreme:
        return random_operands(rng, spec, case.M, case.N, case.K)
    pick = 0 if case.extreme == "min" else 1
    a = operand_range(spec.a_bits, spec.signed)[pick]
    w = operand_range(spec.w_bits, spec.signed)[pick]
    return (np.full((case.M, case.K), a, dtype=np.int64),
            np.full((case.K, case.N), w, dtype=np.int64))
