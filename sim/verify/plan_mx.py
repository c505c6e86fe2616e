"""How a GEMM runs on the MX engine, fold by fold, its operands and its numpy reference.

The operands are MX tensors (:class:`MxOperand`): element codes and one E8M0 scale code per
block of ``spec.block`` along K, in one of the engine's element formats each. The reference
(:func:`reference_gemm`) computes the engine's dot-product semantics (:class:`hw.spec.MxSpec`)
in Python integers from the element values of :func:`models.mx.decode`, so the RTL and the
reference agree by construction of the formats, not by sharing the decoder.

Folds: one per ``rows`` x ``lanes`` output tile (row tiles inner), streaming K one block per
beat. Activation rows beyond M and weight lanes beyond N carry random junk (codes and
scales, NaN scales included); elements beyond K in a partial last block carry zero codes in
both operands (a NaN or infinity code there would reach the result's flag).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from hw.spec.mx import SCALE_BIAS, SCALE_NAN, MxSpec, element_decode
from models.mx import decode
from sim.verify.driver import Case, Fold, wrap
from sim.verify.driver import plan_cases as generic_cases

__all__ = ["MxOperand", "case_operands", "plan_cases", "plan_folds", "reference_gemm"]


@dataclass(frozen=True)
class MxOperand:
    """An MX operand: ``codes`` (A: ``[M, K]``; W: ``[K, N]``), ``scales`` (E8M0 codes, one
    per block along K: A ``[M, ceil(K/block)]``, W ``[ceil(K/block), N]``) and the element
    format ``fmt``. ``shape`` is the codes' shape (what the benches read of an operand)."""

    codes: np.ndarray
    scales: np.ndarray
    fmt: str

    @property
    def shape(self) -> tuple[int, ...]:
        return self.codes.shape


def plan_cases(spec: MxSpec, rng: np.random.Generator, **kw) -> list[Case]:
    """The generic cases (:func:`sim.verify.driver.plan_cases`: their ``min``/``max``
    extremes are the formats' most negative and largest codes at the smallest and largest
    scales) plus a GEMM whose operands are special values only: zero and largest scales,
    the NaN scale, saturated, NaN and infinity codes, zeros."""
    cases = generic_cases(spec, rng, **kw)
    cases.append(Case("special values (scales, NaN/Inf)", spec.rows + 2,
                      2 * spec.lanes + 1, 3 * spec.block + 1, extreme="special"))
    return cases


def _finite_codes(name: str) -> np.ndarray:
    dec = element_decode(name)
    return np.array([c for c in range(1 << dec.bits) if not dec.fields(c)[2]], dtype=np.int64)


def _random(rng: np.random.Generator, shape, name: str, special: bool) -> np.ndarray:
    """Random codes: uniform over the finite codes, with zero, the largest magnitudes
    (saturation values) and, with ``special``, NaN/infinity codes mixed in."""
    dec = element_decode(name)
    finite = _finite_codes(name)
    codes = rng.choice(finite, size=shape)
    values = decode(finite, name)
    top = finite[np.abs(values) == np.abs(values).max()]
    extremes = np.concatenate([top, [0]])
    pick = rng.random(shape) < 0.2
    codes[pick] = rng.choice(extremes, size=int(pick.sum()))
    if special and dec.has_specials:
        bad = np.array([c for c in range(1 << dec.bits) if dec.fields(c)[2]], dtype=np.int64)
        pick = rng.random(shape) < 0.02
        codes[pick] = rng.choice(bad, size=int(pick.sum()))
    return codes


def _scales(rng: np.random.Generator, shape, special: bool) -> np.ndarray:
    """E8M0 codes near 1.0 (the accumulator's range) with 0, 254 and (``special``) NaN."""
    s = rng.integers(SCALE_BIAS - 12, SCALE_BIAS + 8, size=shape, endpoint=True)
    pick = rng.random(shape) < 0.1
    s[pick] = rng.choice(np.array([0, 1, 254]), size=int(pick.sum()))
    if special:
        pick = rng.random(shape) < 0.03
        s[pick] = SCALE_NAN
    return s.astype(np.int64)


def case_operands(spec: MxSpec, case: Case, rng: np.random.Generator
                  ) -> tuple[MxOperand, MxOperand]:
    """The operands of a case, each in a format drawn from ``spec.formats``: random codes
    and scales (specials rare), all at one extreme (``min``: the most negative code of
    largest magnitude at scale 2^-127; ``max``: the largest code at 2^127), or special
    values only."""
    fa, fw = (str(rng.choice(spec.element_formats)) for _ in range(2))
    M, N, K = case.M, case.N, case.K
    nb = -(-K // spec.block)
    if case.extreme in ("min", "max"):
        def full(shape, name):
            finite = _finite_codes(name)
            values = decode(finite, name)
            want = values.min() if case.extreme == "min" else values.max()
            return np.full(shape, finite[values == want][0], dtype=np.int64)
        scale = 0 if case.extreme == "min" else 254
        return (MxOperand(full((M, K), fa), np.full((M, nb), scale), fa),
                MxOperand(full((K, N), fw), np.full((nb, N), scale), fw))
    special = case.extreme == "special"
    A = MxOperand(_random(rng, (M, K), fa, special), _scales(rng, (M, nb), special), fa)
    W = MxOperand(_random(rng, (K, N), fw, special), _scales(rng, (nb, N), special), fw)
    if special:
        for op in (A, W):  # scales at the ends of the range in every block
            op.scales[...] = rng.choice(np.array([0, 254, SCALE_NAN, SCALE_BIAS]),
                                        size=op.scales.shape, p=[0.35, 0.35, 0.05, 0.25])
    elif rng.random() < 0.15:  # now and then a NaN/Inf code or a NaN scale
        A.codes[:] = _random(rng, (M, K), fa, True)
        A.scales[:] = _scales(rng, (M, nb), True)
    return A, W


def _fixed(codes: np.ndarray, name: str) -> tuple[list[list[int]], np.ndarray]:
    """Exact fixed-point integers of ``codes`` (units of ``2**unit``, from the element values
    of :func:`models.mx.decode`) and where the codes are not finite."""
    unit = element_decode(name).unit
    values = decode(codes, name)
    bad = ~np.isfinite(values)
    ints = [[int(v * 2.0 ** -unit) if np.isfinite(v) else 0 for v in row] for row in values]
    return ints, bad


def reference_gemm(spec: MxSpec, A: MxOperand, W: MxOperand) -> np.ndarray:
    """``C[M, N]``: the engine's accumulators (module doc of :mod:`hw.mx`), bit exact."""
    B = spec.block
    M, K = A.codes.shape
    N = W.codes.shape[1]
    ua, uw = element_decode(A.fmt).unit, element_decode(W.fmt).unit
    ai, abad = _fixed(A.codes, A.fmt)
    wi, wbad = _fixed(W.codes.T, W.fmt)
    width = spec.acc_bits
    C = np.zeros((M, N), dtype=np.int64)
    for m in range(M):
        for n in range(N):
            acc, bad = 0, bool(abad[m].any() or wbad[n].any())
            for b in range(-(-K // B)):
                sa, sw = int(A.scales[m, b]), int(W.scales[b, n])
                bad |= SCALE_NAN in (sa, sw)
                total = sum(x * y for x, y in zip(ai[m][b * B:(b + 1) * B],
                                                  wi[n][b * B:(b + 1) * B], strict=True))
                d = sa + sw - 2 * SCALE_BIAS + ua + uw - spec.acc_lsb_exp
                acc += total << d if d >= 0 else total >> -d
            acc %= 1 << width
            C[m, n] = -(1 << (width - 1)) if bad else acc - ((acc >> (width - 1)) << width)
    return wrap(C, width, True)


def plan_folds(spec: MxSpec, A: MxOperand, W: MxOperand, rng: np.random.Generator
               ) -> Iterator[Fold]:
    """The folds of ``A @ W`` on the engine, in the order the cycle model counts them."""
    R, L, B = spec.rows, spec.lanes, spec.block
    M, K = A.codes.shape
    N = W.codes.shape[1]
    beats = -(-K // B)
    fmts = spec.element_formats
    sel = {"a_sel": fmts.index(A.fmt), "w_sel": fmts.index(W.fmt)} if spec.sel_bits else {}
    for n0 in range(0, N, L):
        nc = min(L, N - n0)
        for m0 in range(0, M, R):
            nr = min(R, M - m0)
            # rows beyond M and lanes beyond N: junk; elements beyond K: zero codes
            a = rng.integers(0, 1 << spec.a_bits, size=(R, beats * B))
            a[:, K:] = 0
            a[:nr, :K] = A.codes[m0:m0 + nr]
            as_ = rng.integers(0, 256, size=(R, beats))
            as_[:nr] = A.scales[m0:m0 + nr]
            w = rng.integers(0, 1 << spec.w_bits, size=(L, beats * B))
            w[:, K:] = 0
            w[:nc, :K] = W.codes[:, n0:n0 + nc].T
            ws = rng.integers(0, 256, size=(L, beats))
            ws[:nc] = W.scales[:, n0:n0 + nc].T
            stream = [
                {"a": a[:, b * B:(b + 1) * B].reshape(-1),  # row-major: a[r*block + q]
                 "a_scale": as_[:, b],
                 "w": w[:, b * B:(b + 1) * B].reshape(-1),  # lane-major: w[l*block + q]
                 "w_scale": ws[:, b], **sel, "last": int(b == beats - 1)}
                for b in range(beats)
            ]
            yield Fold({"i": stream}, R, m0, nr, n0, nc, accumulate=False)
