"""Cycle and cost model of the MX dot-product engine: the numbers the generated RTL is held to.

Output stationary, one block per beat (:class:`hw.spec.MxSpec`): a GEMM ``C[M, N] = A[M, K]
@ W[K, N]`` takes ``M * ceil(N/lanes)`` folds of ``ceil(K/block) + 1`` cycles, back to back
(the generic model of :mod:`sim.engines`). The cycles do not depend on the element formats.

Costs, from the structure of the engine's lane (``hw/mx.py``), ``s`` the significand bits
(``spec.sig_bits``: the widest format's, e.g. 5 for E4M3, 8 for INT8), ``p`` the exact
product's bits, ``S`` the block sum's, ``B`` the block, ``acc`` the accumulator's bits:

* ``multiply`` (``mac_multiplier``): one ``s x s`` significand multiply per MAC (the
  multiplier power law of :mod:`sim.engines.cost`).
* ``align`` (``mac_multiplier``): the product's shift by the two exponent fields, a log
  shifter of ``p`` bits and ``bit_length(2 * max_shift)`` stages of 2:1 multiplexers per MAC
  (none for INT8 alone); a multiplexer priced as one gate, the multiplier power law at
  ``a*w = 1`` as :mod:`sim.engines.bitplane` prices its AND gates (a lower bound: a 2:1 mux
  is about two gates).
* ``block_add`` (``mac_adder``): the exact block sum, ``B - 1`` adds of ``S`` bits per block
  (an adder tree), ``(B - 1)/B`` per MAC.
* ``block_scale`` (``mac_adder``): per block and lane, the exponent sum (two adds of 10 bits:
  the two 8-bit scales and the formats' constant) and the accumulate at ``acc`` bits,
  ``3/B`` adds per MAC priced at ``acc`` bits (an upper bound for the exponent adds); the
  accumulator's alignment shifter (``acc * bit_length(acc)`` multiplexers per block) priced as
  gates like ``align``.

Area: per product lane (``lanes * block``) one ``s x s`` multiplier and the ``align``
shifter's gates (the table's ``and2_gate`` area each, else the multiplier power law at 1x1);
per lane ``B - 1`` adders of ``S`` bits, the accumulate and exponent adders and the
accumulator shifter's gates; registers: one beat's codes (A ``block``, W ``lanes x block``),
the scales (``8 * (1 + lanes)``) and the ``lanes`` accumulators (the footprint of
:func:`sim.engines.cost.footprint_bits` plus the scales).
"""

from __future__ import annotations

from hw.spec.mx import SCALE_BITS, MxSpec
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

__all__ = ["Folds", "arith_actions", "gemm_compute_cycles", "gemm_folds", "pe_area"]

#: Bits of the exponent adder (two 8-bit E8M0 scales and the formats' constant).
EXP_ADD_BITS = 10


def _align_muxes(spec: MxSpec) -> int:
    """2:1 multiplexers of one product's alignment shifter."""
    return spec.product_bits * (2 * spec.max_shift).bit_length()


def _acc_muxes(spec: MxSpec) -> int:
    """2:1 multiplexers of one lane's accumulator alignment shifter."""
    return spec.acc_bits * spec.acc_bits.bit_length()


def _gate(table: PriceTable, section: str, tech: float) -> float:
    if section == "area" and "and2_gate" in table.area:
        return table.area_um2("and2_gate", tech)
    return mult(table, "energy" if section == "energy" else "area", 1, 1, tech)


def arith_actions(spec: MxSpec, table: PriceTable, tech: float) -> tuple[ArithAction, ...]:
    """Significand multiply, product alignment, block sum and block scaling (module
    docstring)."""
    s, S, B, acc = spec.sig_bits, spec.block_sum_bits, spec.block, spec.acc_bits
    gate = _gate(table, "energy", tech)
    out = [ArithAction(name="multiply", component="mac_multiplier",
                       unit=f"{s}x{s}-bit significand multiplies",
                       energy_pj=mult(table, "energy", s, s, tech), per_mac=1.0,
                       rule=f"one per MAC; {MULT_RULE}")]
    if spec.max_shift:
        out.append(ArithAction(
            name="align", component="mac_multiplier",
            unit=f"{spec.product_bits}-bit shifts of {(2 * spec.max_shift).bit_length()} stages",
            energy_pj=_align_muxes(spec) * gate, per_mac=1.0,
            rule=f"{_align_muxes(spec)} 2:1 multiplexers per product, one gate each; "
            f"{MULT_RULE} at a*w = 1"))
    out += [
        ArithAction(name="block_add", component="mac_adder", unit=f"{S}-bit additions",
                    energy_pj=add(table, "energy", S, tech), per_mac=(B - 1) / B,
                    rule=f"block - 1 = {B - 1} adds per block of {B} (adder tree); {ADD_RULE}"),
        ArithAction(name="block_scale", component="mac_adder",
                    unit=f"{acc}-bit additions and shifts",
                    energy_pj=3 * add(table, "energy", acc, tech) + _acc_muxes(spec) * gate,
                    per_mac=1 / B,
                    rule=f"per block: two {EXP_ADD_BITS}-bit exponent adds and the accumulate "
                    f"(priced at {acc} bits), {_acc_muxes(spec)} shifter multiplexers; "
                    f"{ADD_RULE}, gates at a*w = 1"),
    ]
    return tuple(out)


def pe_area(spec: MxSpec, table: PriceTable, tech: float) -> PeArea:
    """Multipliers and shifters per product lane, the block adder trees and the block
    scaling per lane, the beat's registers and scales (module docstring)."""
    s, S, B, acc = spec.sig_bits, spec.block_sum_bits, spec.block, spec.acc_bits
    gate = _gate(table, "area", tech)
    products = lanes(spec)
    mults = products * (mult(table, "area", s, s, tech) + _align_muxes(spec) * gate
                        * bool(spec.max_shift))
    adds = spec.lanes * ((B - 1) * add(table, "area", S, tech) + add(table, "area", acc, tech)
                         + 2 * add(table, "area", EXP_ADD_BITS, tech)
                         + _acc_muxes(spec) * gate)
    return PeArea(multipliers_um2=mults, adders_um2=adds,
                  register_bits=footprint_bits(spec) + SCALE_BITS * (1 + spec.lanes))
