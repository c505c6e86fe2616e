"""Engine-independent pieces of GEMM verification: operands, the numpy reference, folds.

Simulator-independent too: the cocotb bench (Verilator) and the amaranth.sim tests share the
same fold plans (one planner per engine kind, see :mod:`sim.verify.plans`), so what one
checks the other checks too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hw.spec import EngineSpec
from mapping.tiling import stream_granule
from sim.verify.options import RANDOM_GEMMS

__all__ = [
    "Case",
    "Fold",
    "assemble",
    "case_operands",
    "log_uniform_dim",
    "operand_range",
    "plan_cases",
    "random_operands",
    "random_values",
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


def random_operands(rng: np.random.Generator, spec: EngineSpec, M: int, N: int, K: int):
    """Random ``A[M, K]`` and ``W[K, N]`` in the engine's operand ranges, extremes included."""
    A = random_values(rng, (M, K), spec.a_bits, spec.signed)
    W = random_values(rng, (K, N), spec.w_bits, spec.signed)
    return A, W


def reference_gemm(spec: EngineSpec, A: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``A @ W`` wrapped to the accumulator width: the bit-exact expected result."""
    # int64 matmul wraps modulo 2**64, and 2**acc_bits divides 2**64 (acc_bits <= 64).
    with np.errstate(over="ignore"):
        return wrap(A.astype(np.int64) @ W.astype(np.int64), spec.acc_bits, spec.signed)


@dataclass(frozen=True)
class Fold:
    """The input beats of one fold and where its output beats land in C.

    ``beats`` maps each input stream to its beats in order, each beat a mapping of payload
    field to value (a lane array or a scalar). Output beat b lands at
    ``C[row0 + b, col0:col0 + ncols]`` (its first ``ncols`` lanes), only for b < ``nrows``;
    ``accumulate`` adds it to what is there (partial sums of reduction folds).
    """

    beats: Mapping[str, Sequence[Mapping[str, Any]]]
    out_beats: int
    row0: int
    nrows: int
    col0: int
    ncols: int
    accumulate: bool


def assemble(spec: EngineSpec, M: int, N: int, folds_and_outputs) -> np.ndarray:
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


def case_operands(spec: EngineSpec, case: Case, rng: np.random.Generator):
    """The operands of a case: random with extremes mixed in, or all at one extreme."""
    if not case.extreme:
        return random_operands(rng, spec, case.M, case.N, case.K)
    pick = 0 if case.extreme == "min" else 1
    a = operand_range(spec.a_bits, spec.signed)[pick]
    w = operand_range(spec.w_bits, spec.signed)[pick]
    return (np.full((case.M, case.K), a, dtype=np.int64),
            np.full((case.K, case.N), w, dtype=np.int64))


def log_uniform_dim(rng: np.random.Generator, top: int) -> int:
    """An integer in ``[1, top]``, log-uniform (small and large sizes alike)."""
    return min(top, max(1, round(float(np.exp(rng.uniform(0.0, np.log(top)))))))


def plan_cases(spec: EngineSpec, rng: np.random.Generator, *, random_gemms: int = RANDOM_GEMMS,
               max_dim: int | None = None) -> list[Case]:
    """The GEMMs a verification run checks, for any engine, from its unrolling.

    Single folds (the spatial dims partly used) with stream lengths 1, one full input beat and
    a partial last beat (when a beat carries several stream elements), a stream longer than the
    array and a random one; ``random_gemms`` GEMMs of up to about two folds plus a rest along
    every spatial dim, or, with ``max_dim``, of every dimension log-uniform in ``1..max_dim``;
    one GEMM with idle input cycles and output back-pressure (results only); and all operands at
    their minimum and at their maximum over several folds.
    """
    u = spec.unrolling()
    tile = {"m": u.m, "n": u.n, "k": u.k}
    beat = stream_granule(spec)
    span = max(beat, *(t for t in tile.values() if t is not None))

    def shape(stream_len: int, spatial) -> tuple[int, int, int]:
        m, n, k = (stream_len if tile[d] is None else spatial(tile[d]) for d in ("m", "n", "k"))
        return m, n, k

    def one_fold(stream_len: int, label: str) -> Case:
        return Case(label, *shape(stream_len, lambda t: int(rng.integers(1, t + 1))))

    def gemm(label: str, **kw: float) -> Case:
        if max_dim is not None:
            m, n, k = (log_uniform_dim(rng, max_dim) for _ in range(3))
            return Case(label, m, n, k, **kw)
        dims = shape(int(rng.integers(1, 2 * span + 3)), lambda t: int(rng.integers(1, 2 * t + 3)))
        return Case(label, *dims, **kw)

    cases = [one_fold(1, "one fold, stream 1")]
    if beat > 1:
        cases += [one_fold(beat, "one fold, one full beat"),
                  one_fold(2 * beat + 1, "one fold, partial last beat")]
    cases += [one_fold(span + beat + 1, "one fold, stream longer than the array"),
              one_fold(int(rng.integers(2, 3 * span + 8)), "one fold, random stream")]
    cases += [gemm(f"random GEMM {n + 1}") for n in range(random_gemms)]
    cases.append(gemm("random GEMM, idle input and back-pressure", p_idle=0.3, p_stall=0.3))
    full = shape(2 * span + 1, lambda t: t + 1)
    cases.append(Case("all operands at their minimum", *full, extreme="min"))
    cases.append(Case("all operands at their maximum", *full, extreme="max"))
    return cases
