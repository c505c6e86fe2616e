"""Cycle model of the multiplier-adder tree engine: the numbers the generated RTL is held to.

Per fold the timing comes from :meth:`hw.spec.AdderTreeSpec.fold_cycles`. A GEMM
``C[M, N] = A[M, K] @ W[K, N]`` is cut into folds that run back to back (the generic model of
:mod:`sim.engines`):

* OS: one fold per output row and ``lanes``-wide column block, each streaming the whole
  reduction K in chunks of k: ``M * ceil(N/lanes)`` folds of ``ceil(K/k) + 1`` cycles.
* WS: one fold per ``k`` x ``lanes`` weight tile, each streaming all M activation rows:
  ``ceil(K/k) * ceil(N/lanes)`` folds of ``k + M + 1`` cycles; partial sums of the
  ``ceil(K/k)`` reduction folds are added outside the engine.

Costs (the multiplier-kind model of :mod:`sim.engines.cost`): ``multiply``, one ``a_bits x
w_bits`` multiply per useful MAC, and ``accumulate``, one ``acc_bits`` addition per MAC. Area:
one ``a x w`` multiplier and one ``acc_bits`` adder per product lane (``lanes * k``); the
registers of one beat's operands and of the stationary block.
"""

from __future__ import annotations

from hw.spec.addertree import AdderTreeSpec
from sim.engines import Folds, gemm_compute_cycles, gemm_folds
from sim.engines.cost import (
    ArithAction,
    PeArea,
    PriceTable,
    multiplier_arith_actions,
    multiplier_pe_area,
)

__all__ = ["Folds", "arith_actions", "gemm_compute_cycles", "gemm_folds", "pe_area"]


def arith_actions(spec: AdderTreeSpec, table: PriceTable, tech: float) -> tuple[ArithAction, ...]:
    """One multiply and one accumulate per MAC (module docstring)."""
    return multiplier_arith_actions(spec, table, tech)


def pe_area(spec: AdderTreeSpec, table: PriceTable, tech: float) -> PeArea:
    """A multiplier and an adder per product lane, the beat's registers (module docstring)."""
    return multiplier_pe_area(spec, table, tech)
