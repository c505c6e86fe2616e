"""Cycle model of the LUT engine: the numbers the generated RTL is held to.

Output stationary (rows <- M, cols <- N, K streamed in groups of ``group``): a GEMM
``C[M, N] = A[M, K] @ W[K, N]`` takes ``ceil(M/rows) * ceil(N/cols)`` folds, each of
:meth:`hw.spec.LutSpec.fold_cycles` ``(K) = 1 + ceil(K/group)*w_bits + rows`` cycles (table
precompute of the first group, one weight bit-plane per cycle, drain one output row per
cycle), back to back.

Costs (LUT Tensor Core, Mo et al. ISCA 2025), ``g = group``:

* ``table_read`` (``mac_multiplier``): one per PE, activation group and weight bit-plane,
  ``w_bits / group`` per MAC; a read moves one table entry of ``a_bits + ceil(log2 group)``
  bits, at the ``register_bit`` energy per bit.
* ``table_build`` (``mac_adder``): the precompute of one table per PE row, activation group
  and fold, ``2**g - 1 - g`` additions for the full table (entries with at least two
  activations, each one add from a smaller entry) or ``2**(g-1) + g - 2`` symmetrized (the
  first entry needs ``g - 1``, each further one a single add, Gray-code order), at the entry
  width, counted per activation the engine reads (a table is built per row, group and fold,
  shared by the ``cols`` PEs of the row).
* ``shift_add`` (``mac_adder``): one per table read, at ``acc_bits`` (``+ 1`` symmetrized: the
  accumulators are a bit wider).

The symmetrized table's per-output correction (one add per output) is not counted. Area: no
multiplier; one ``acc_bits`` accumulator adder per PE and, per PE row (one table),
``table_build`` adders at the entry width (the table-read multiplexers are not counted: a
lower bound); registers: one beat's operands (``rows x group`` A, ``group x cols`` W), the
``rows x cols`` accumulators and the tables (``rows x table_entries x entry bits``).
"""

from __future__ import annotations

import math

from hw.spec.lut import LutSpec
from sim.engines import Folds, gemm_compute_cycles, gemm_folds
from sim.engines.cost import ADD_RULE, ArithAction, PeArea, PriceTable, add, footprint_bits

__all__ = ["Folds", "arith_actions", "gemm_compute_cycles", "gemm_folds", "pe_area"]


def _entry_bits(spec: LutSpec) -> int:
    """Bits of one table entry: a sum of ``group`` activations."""
    return spec.a_bits + math.ceil(math.log2(spec.group))


def _build_adds(spec: LutSpec) -> int:
    """Additions that build one table (module docstring)."""
    g = spec.group
    return (1 << (g - 1)) + g - 2 if spec.symmetric else (1 << g) - 1 - g


def arith_actions(spec: LutSpec, table: PriceTable, tech: float) -> tuple[ArithAction, ...]:
    """Table reads, table builds and shift-adds (module docstring)."""
    g, entry_bits, build = spec.group, _entry_bits(spec), _build_adds(spec)
    acc = spec.acc_bits + (1 if spec.symmetric else 0)
    reads = spec.w_bits / g
    return (
        ArithAction(name="table_read", component="mac_multiplier",
                    unit=f"{entry_bits}-bit table reads",
                    energy_pj=entry_bits * table.energy_pj("register_bit", tech),
                    per_mac=reads,
                    rule=f"w_bits/group = {reads:g} per MAC (one per PE, group and weight "
                    "plane; LUT Tensor Core ISCA 2025); register_bit per entry bit"),
        ArithAction(name="table_build", component="mac_adder",
                    unit=f"{entry_bits}-bit additions",
                    energy_pj=add(table, "energy", entry_bits, tech), per_a_read=build / g,
                    rule=f"{build} additions per table of {g} activations, one table per row, "
                    f"group and fold; {ADD_RULE}"),
        ArithAction(name="shift_add", component="mac_adder", unit=f"{acc}-bit additions",
                    energy_pj=add(table, "energy", acc, tech), per_mac=reads,
                    rule=f"one accumulate per table read; {ADD_RULE}"),
    )


def pe_area(spec: LutSpec, table: PriceTable, tech: float) -> PeArea:
    """Accumulator adders, one table's build adders per row, the tables' registers (module
    docstring)."""
    entry_bits, build = _entry_bits(spec), _build_adds(spec)
    pes, tables = spec.rows * spec.cols, spec.rows
    adds = (pes * add(table, "area", spec.acc_bits, tech)
            + tables * build * add(table, "area", entry_bits, tech))
    return PeArea(multipliers_um2=0.0, adders_um2=adds,
                  register_bits=footprint_bits(spec) + tables * spec.table_entries * entry_bits)
