"""Cycle model of the 2D-Matrix: the numbers the generated RTL is held to.

One fold per ``rows`` x ``cols`` output tile, each streaming the whole reduction K (one beat
per k, an outer product per cycle) and draining its tile one row per cycle:
``ceil(M/rows) * ceil(N/cols)`` folds of :meth:`hw.spec.Matrix2dSpec.fold_cycles` ``(K) =
K + rows``, run back to back. The booth and csa_accumulate options change the PE's logic
depth and area, never its cycles.

Costs (the multiplier-kind model of :mod:`sim.engines.cost`): ``multiply``, one ``a_bits x
w_bits`` multiply per useful MAC, and ``accumulate``, one ``acc_bits`` addition per MAC. Area:
one ``a x w`` multiplier and one ``acc_bits`` adder per PE; the registers of one beat's
operands (``rows`` A, ``cols`` W) and the ``rows x cols`` accumulators.
"""

from __future__ import annotations

from hw.spec.matrix2d import Matrix2dSpec
from sim.engines import Folds, gemm_compute_cycles, gemm_folds
from sim.engines.cost import (
    ArithAction,
    PeArea,
    PriceTable,
    multiplier_arith_actions,
    multiplier_pe_area,
)

__all__ = ["Folds", "arith_actions", "gemm_compute_cycles", "gemm_folds", "pe_area"]


def arith_actions(spec: Matrix2dSpec, table: PriceTable, tech: float) -> tuple[ArithAction, ...]:
    """One multiply and one accumulate per MAC (module docstring)."""
    return multiplier_arith_actions(spec, table, tech)


def pe_area(spec: Matrix2dSpec, table: PriceTable, tech: float) -> PeArea:
    """A multiplier and an adder per product lane, the beat's registers (module docstring)."""
    return multiplier_pe_area(spec, table, tech)
