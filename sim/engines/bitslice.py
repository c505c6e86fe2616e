"""Cycle model of the bit-slice array: the numbers the generated RTL is held to.

One fold per ``rows`` x ``cols`` output tile, each streaming the whole reduction K; a beat
(one k) takes ``a_slices * w_slices`` cycles (:meth:`hw.spec.BitsliceSpec.fold_cycles`
``(K) = K * a_slices * w_slices + rows``): ``ceil(M/rows) * ceil(N/cols)`` folds, back to back.

With ``skip_zero`` the cycles depend on the activations: a beat takes
``max(1, nz * w_slices)`` cycles, nz = its slice positions that are non-zero in some row of
the beat (every row lane as fed, padding included). :func:`gemm_compute_cycles` stays the
worst case (dense data, exact without skip_zero); :func:`fold_cycles_of` and
:func:`gemm_compute_cycles_given` are exact given the data.

Costs (Stripes, Judd et al. MICRO 2016; Bit Fusion, Sharma et al. ISCA 2018):

* ``slice_multiply`` (``mac_multiplier``): ``a_slices * w_slices = ceil(a/s) * ceil(w/s)``
  per MAC on ``s x s`` multipliers (``s = slice_bits``), energy by the multiplier power law
  of :mod:`sim.engines.cost` at ``s*s`` partial-product bits.
* ``shift_add`` (``mac_adder``): one accumulate of each shifted slice product, at
  ``acc_bits`` (as many as slice multiplies; the spec's PE adds every product into its
  accumulator).

The dense worst case is counted, as in ``fold_cycles``: ``skip_zero``'s data-dependent savings
are not. Area: one ``s x s`` multiplier per PE and one ``acc_bits`` accumulator adder per PE;
the registers of one beat's operands and the ``rows x cols`` accumulators.
"""

from __future__ import annotations

import numpy as np

from hw.spec.bitslice import BitsliceSpec
from sim.engines import gemm_compute_cycles as _generic
from sim.engines.cost import (
    ADD_RULE,
    MULT_RULE,
    ArithAction,
    PeArea,
    PriceTable,
    add,
    footprint_bits,
    lanes,
    mult,
    positions,
)

__all__ = [
    "arith_actions",
    "fold_cycles_of",
    "gemm_compute_cycles",
    "gemm_compute_cycles_given",
    "nonzero_slice_positions",
    "pe_area",
]


def gemm_compute_cycles(spec: BitsliceSpec, M: int, N: int, K: int) -> int:
    """Cycles of an untiled GEMM on the array alone (the worst case with skip_zero)."""
    return _generic(spec, M, N, K)


def nonzero_slice_positions(spec: BitsliceSpec, a_beats: np.ndarray) -> np.ndarray:
    """Per beat, the activation slice positions non-zero in some lane.

    ``a_beats[k, r]``: the activation of lane r in beat k (any integer array, values in the
    operand range). Returns int64 counts in ``0..a_slices``, one per beat.
    """
    a = np.asarray(a_beats, dtype=np.int64)
    if a.ndim == 1:
        a = a[:, None]
    bits = a & np.int64((1 << spec.a_bits) - 1)  # two's complement bit pattern
    s = spec.slice_bits
    out = np.zeros(a.shape[0], dtype=np.int64)
    for i in range(spec.a_slices):
        out += ((bits >> np.int64(s * i)) & np.int64((1 << s) - 1) != 0).any(axis=1)
    return out


def fold_cycles_of(spec: BitsliceSpec, a_beats: np.ndarray) -> int:
    """Exact cycles of one fold whose beats carry the activations ``a_beats[k, r]``."""
    if not spec.skip_zero:
        return spec.fold_cycles(len(a_beats))
    return spec.fold_cycles_given(int(n) for n in nonzero_slice_positions(spec, a_beats))


def gemm_compute_cycles_given(spec: BitsliceSpec, A: np.ndarray, N: int) -> int:
    """Exact cycles of ``A @ W`` (``W`` with N columns) when the lanes of a partial row
    tile are padded with zeros (as :mod:`sim.verify.plan_bitslice` does with skip_zero)."""
    M, K = A.shape
    if min(M, N, K) < 1:
        raise ValueError(f"M, N and K must be >= 1, got {(M, N, K)!r}")
    col_folds = -(-N // spec.cols)
    total = 0
    for m0 in range(0, M, spec.rows):
        total += fold_cycles_of(spec, np.asarray(A[m0:m0 + spec.rows, :]).T)
    return col_folds * total


# -- costs -------------------------------------------------------------------------------------


def arith_actions(spec: BitsliceSpec, table: PriceTable, tech: float) -> tuple[ArithAction, ...]:
    """Slice multiplies and their shifted accumulates (module docstring)."""
    s = spec.slice_bits
    pairs = spec.a_slices * spec.w_slices
    acc = spec.acc_bits
    return (
        ArithAction(name="slice_multiply", component="mac_multiplier",
                    unit=f"{s}x{s}-bit multiplies",
                    energy_pj=mult(table, "energy", s, s, tech), per_mac=float(pairs),
                    rule=f"ceil(a/s)*ceil(w/s) = {pairs} per MAC (Stripes MICRO 2016, Bit "
                    f"Fusion ISCA 2018); {MULT_RULE} at s*s"),
        ArithAction(name="shift_add", component="mac_adder", unit=f"{acc}-bit additions",
                    energy_pj=add(table, "energy", acc, tech), per_mac=float(pairs),
                    rule=f"one shifted accumulate per slice product; {ADD_RULE}"),
    )


def pe_area(spec: BitsliceSpec, table: PriceTable, tech: float) -> PeArea:
    """An ``s x s`` multiplier and an accumulator adder per PE (module docstring)."""
    s = spec.slice_bits
    return PeArea(multipliers_um2=lanes(spec) * mult(table, "area", s, s, tech),
                  adders_um2=positions(spec) * add(table, "area", spec.acc_bits, tech),
                  register_bits=footprint_bits(spec))
