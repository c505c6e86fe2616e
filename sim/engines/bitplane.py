"""Cycle model of the bit-plane engine: the numbers the generated RTL is held to.

Output stationary (rows <- M, cols <- N, K streamed ``depth`` elements per beat): a GEMM
``C[M, N] = A[M, K] @ W[K, N]`` takes ``ceil(M/rows) * ceil(N/cols)`` folds, each of
:meth:`hw.spec.BitplaneSpec.fold_cycles` ``(K) = 1 + ceil(K/depth)*a_bits*w_bits + rows``
cycles (input plane register, one plane pair per cycle, drain one output row per cycle),
back to back: cycles grow with ``a_bits * w_bits``.

Costs (binary units with shift-add recovery, PAPERS.md "Arbitrary precision by bit planes";
APNN-TC, Feng et al. SC 2021), ``d = depth``:

* ``and_xnor`` (``mac_multiplier``): one 1-bit AND (two's complement planes) or XNOR
  (bipolar) per plane pair, ``a_bits * w_bits`` per MAC; a 1x1 product is one gate, its energy
  the multiplier power law of :mod:`sim.engines.cost` at ``a*w = 1`` (0.0033 pJ at 45 nm;
  cross-check: the Nangate 45 nm AND2_X1 has 0.92-0.97 fF input pins, so toggling two inputs
  and a like output load at 1.1 V is about 3 fF * 1.21 V^2 = 0.0036 pJ).
* ``popcount_add`` (``mac_adder``): the full adders of a ``d``-input population count,
  ``d - bit_length(d)`` per plane pair and beat (an ``n = 2**j - 1``-input parallel counter
  takes ``n - j`` full adders: Swartzlander, IEEE Trans. Computers C-22(11), 1973), at the
  1-bit adder energy (the add power law at 1 bit).
* ``shift_add`` (``mac_adder``): one per plane pair and beat at ``acc_bits``
  (``a_bits * w_bits / d`` per MAC).

The bipolar encoding's per-output correction (one add per output) is not counted. Area: one
1-bit gate per product lane (``rows * cols * d``; the table's ``and2_gate`` area entry, else
the multiplier power law at 1x1) and per PE the popcount's full adders and an ``acc_bits``
accumulator adder; registers: one beat's operands (``rows x d`` A, ``d x cols`` W) and the
``rows x cols`` accumulators.
"""

from __future__ import annotations

from hw.spec.bitplane import BitplaneSpec
from sim.engines import Folds, gemm_compute_cycles, gemm_folds
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
)

__all__ = ["Folds", "arith_actions", "gemm_compute_cycles", "gemm_folds", "pe_area",
           "popcount_adders"]


def popcount_adders(depth: int) -> int:
    """Full adders of a ``depth``-input population count (Swartzlander 1973: n - j for
    n = 2**j - 1 inputs)."""
    return max(0, depth - depth.bit_length())


def arith_actions(spec: BitplaneSpec, table: PriceTable,
                  tech: float) -> tuple[ArithAction, ...]:
    """Plane-pair gates, popcount full adders and shift-add recovery (module docstring)."""
    d = spec.depth
    pairs = spec.a_bits * spec.w_bits
    gate = "XNOR" if spec.encoding == "bipolar" else "AND"
    acc = spec.acc_bits
    return (
        ArithAction(name="and_xnor", component="mac_multiplier", unit=f"1-bit {gate}s",
                    energy_pj=mult(table, "energy", 1, 1, tech), per_mac=float(pairs),
                    rule=f"a_bits*w_bits = {pairs} plane pairs per MAC; {MULT_RULE} at "
                    "a*w = 1 (one gate)"),
        ArithAction(name="popcount_add", component="mac_adder", unit="1-bit full adds",
                    energy_pj=add(table, "energy", 1, tech),
                    per_mac=pairs * popcount_adders(d) / d,
                    rule=f"depth - bit_length(depth) = {popcount_adders(d)} full adders per "
                    f"{d}-input popcount (Swartzlander 1973); {ADD_RULE} at 1 bit"),
        ArithAction(name="shift_add", component="mac_adder", unit=f"{acc}-bit additions",
                    energy_pj=add(table, "energy", acc, tech), per_mac=pairs / d,
                    rule=f"one shift-add recovery per plane pair and beat of {d}; {ADD_RULE}"),
    )


def pe_area(spec: BitplaneSpec, table: PriceTable, tech: float) -> PeArea:
    """A gate per lane, a popcount and an accumulator adder per PE (module docstring)."""
    gate = (table.area_um2("and2_gate", tech) if "and2_gate" in table.area
            else mult(table, "area", 1, 1, tech))
    adds = spec.rows * spec.cols * (popcount_adders(spec.depth) * add(table, "area", 1, tech)
                                    + add(table, "area", spec.acc_bits, tech))
    return PeArea(multipliers_um2=lanes(spec) * gate, adders_um2=adds,
                  register_bits=footprint_bits(spec))
