"""Shared pricing of the engine kinds' cost models (``sim.engines.<kind>``).

The types a kind's cost functions return (:class:`ArithAction`, :class:`PeArea`), the
structure every kind shares (:func:`unroll`, :func:`positions`, :func:`footprint_bits`), the
two power laws every arithmetic price comes from (:func:`mult`, :func:`add`), and the model of
the *multiplier kinds* (one full-width multiplier per product), which the systolic array, the
cube, the adder tree and the 2D matrix state as theirs. The energy table is taken as it is
given (:class:`PriceTable`: what :class:`sim.energy.EnergyTable` offers), so this module does
not import :mod:`sim.energy`, which imports it.

Power laws (the table's entries, scaled to the technology node by the table):

* a multiplier of ``a x w`` bits: ``E = E8 * (a*w / 64) ** alpha``, ``alpha = ln(E32 / E8) /
  ln(16)`` through the ``int_mult_8b`` and ``int_mult_32b`` entries (0.99 for Horowitz's
  0.2 / 3.1 pJ: an array multiplier's work grows with its partial-product bits ``a*w``); the
  same law through the two entries' areas gives its area.
* an adder of ``b`` bits: ``E = E8 * (b / 8) ** beta``, ``beta = ln(E32 / E8) / ln(4)``
  through ``int_add_8b`` and ``int_add_32b``; likewise for area.

Structure: ``u`` the engine's unrolling (a streamed dimension counts 1), ``P`` its PE
positions (the product of ``u``'s spatial sizes), ``g`` the stream granule
(:func:`mapping.stream_granule`: K elements an input beat carries, the period of
``fold_cycles``' staircase: 1 for the systolic array, ``k`` for the cube and adder tree,
``group`` for the LUT engine, ``depth`` for the bit-plane engine); ``P * g`` product lanes.
:func:`footprint_bits`: the register bits of the operands one beat brings (A ``u_m x g``,
W ``g x u_n`` for a streamed K) and of the stationary block (``u_m x u_n`` accumulators).

Multiplier kinds (:func:`multiplier_arith_actions`, :func:`multiplier_pe_area`):

* ``multiply`` (``mac_multiplier``), one per useful MAC at the engine's ``a_bits x w_bits``;
  ``accumulate`` (``mac_adder``), one per MAC at ``acc_bits``.
* area: one ``a x w`` multiplier and one ``acc_bits`` adder per lane; the footprint's
  register bits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from hw.spec import EngineSpec
from mapping import OPERAND_DIMS, stream_granule

__all__ = [
    "ADD_RULE",
    "MULT_RULE",
    "ArithAction",
    "PeArea",
    "PriceTable",
    "add",
    "footprint_bits",
    "lanes",
    "mult",
    "multiplier_arith_actions",
    "multiplier_pe_area",
    "positions",
    "power_law",
    "unroll",
]


class PriceTable(Protocol):
    """What a cost model reads of an energy table (:class:`sim.energy.EnergyTable`): entries
    scaled to a technology node, and the area entries by name (for optional ones)."""

    @property
    def area(self) -> Mapping[str, Any]: ...

    def energy_pj(self, key: str, tech_nm: float) -> float: ...

    def area_um2(self, key: str, tech_nm: float) -> float: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ArithAction:
    """One arithmetic action of an engine kind: how many per useful MAC (``per_mac``) and per
    activation the engine reads from its A buffer (``per_a_read``), at ``energy_pj`` each."""

    name: str
    component: str
    unit: str
    energy_pj: float
    per_mac: float = 0.0
    per_a_read: float = 0.0
    rule: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PeArea:
    """A kind's engine area: its multipliers' and adders' area (um^2) and its register bits
    (priced by :func:`sim.energy.pe_area` at the table's ``register_bit`` area)."""

    multipliers_um2: float
    adders_um2: float
    register_bits: int


def power_law(x: float, x0: float, y0: float, x1: float, y1: float) -> float:
    """``y0 * (x / x0) ** alpha`` through ``(x0, y0)`` and ``(x1, y1)``."""
    alpha = math.log(y1 / y0) / math.log(x1 / x0)
    return y0 * (x / x0) ** alpha


def mult(table: PriceTable, section: Literal["energy", "area"], a_bits: int, w_bits: int,
         tech: float) -> float:
    """Energy (pJ) or area (um^2) of one ``a_bits x w_bits`` multiplier (module docstring)."""
    get = table.energy_pj if section == "energy" else table.area_um2
    return power_law(a_bits * w_bits, 64, get("int_mult_8b", tech),
                     1024, get("int_mult_32b", tech))


def add(table: PriceTable, section: Literal["energy", "area"], bits: int, tech: float) -> float:
    """Energy (pJ) or area (um^2) of one ``bits``-wide adder (module docstring)."""
    get = table.energy_pj if section == "energy" else table.area_um2
    return power_law(bits, 8, get("int_add_8b", tech), 32, get("int_add_32b", tech))


MULT_RULE = "power law in a*w through int_mult_8b and int_mult_32b"
ADD_RULE = "power law in bits through int_add_8b and int_add_32b"


# -- the engine's structure, from its contract ---------------------------------------------


def unroll(spec: EngineSpec) -> dict[str, int]:
    """The unroll size of each GEMM dimension (1 for the streamed one)."""
    u = spec.unrolling()
    return {"m": u.m or 1, "n": u.n or 1, "k": u.k or 1}


def positions(spec: EngineSpec) -> int:
    """PE positions: the product of the spatial unroll sizes."""
    un = unroll(spec)
    return un["m"] * un["n"] * un["k"]


def lanes(spec: EngineSpec) -> int:
    """Product lanes: the PE positions times the stream granule."""
    return positions(spec) * stream_granule(spec)


def footprint_bits(spec: EngineSpec) -> int:
    """Register bits of one beat's inputs and of the stationary block (module docstring)."""
    un = unroll(spec)
    stream = spec.unrolling().stream
    g = stream_granule(spec)
    bits = {"A": spec.a_bits, "W": spec.w_bits, "O": spec.acc_bits}
    total = 0
    for op, dims in OPERAND_DIMS.items():
        elems = 1
        for d in dims:
            elems *= g if d == stream else un[d]
        total += elems * bits[op]
    return total


# -- the multiplier kinds ----------------------------------------------------------------------


def multiplier_arith_actions(spec: EngineSpec, table: PriceTable,
                             tech: float) -> tuple[ArithAction, ...]:
    """One ``a x w`` multiply and one ``acc_bits`` accumulate per MAC (module docstring)."""
    a, w, acc = spec.a_bits, spec.w_bits, spec.acc_bits
    return (
        ArithAction(name="multiply", component="mac_multiplier", unit=f"{a}x{w}-bit multiplies",
                    energy_pj=mult(table, "energy", a, w, tech), per_mac=1.0,
                    rule=f"one per MAC; {MULT_RULE}"),
        ArithAction(name="accumulate", component="mac_adder", unit=f"{acc}-bit additions",
                    energy_pj=add(table, "energy", acc, tech), per_mac=1.0,
                    rule=f"one per MAC; {ADD_RULE}"),
    )


def multiplier_pe_area(spec: EngineSpec, table: PriceTable, tech: float) -> PeArea:
    """One ``a x w`` multiplier and one ``acc_bits`` adder per lane, the footprint's
    registers (module docstring)."""
    n = lanes(spec)
    return PeArea(multipliers_um2=n * mult(table, "area", spec.a_bits, spec.w_bits, tech),
                  adders_um2=n * add(table, "area", spec.acc_bits, tech),
                  register_bits=footprint_bits(spec))
