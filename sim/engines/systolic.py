"""Cycle model of the systolic array: the numbers the generated RTL is held to.

Per fold the timing comes from :meth:`hw.spec.SystolicSpec.fold_cycles` (fill, steady state,
drain). A GEMM ``C[M, N] = A[M, K] @ W[K, N]`` larger than the array is cut into folds that run
back to back:

* OS: one fold per ``rows`` x ``cols`` output tile, each streaming the whole reduction K:
  ``ceil(M/rows) * ceil(N/cols)`` folds of ``fold_cycles(K)``.
* WS: one fold per ``rows`` x ``cols`` weight tile, each streaming all M activation rows:
  ``ceil(K/rows) * ceil(N/cols)`` folds of ``fold_cycles(M)``; partial sums of the
  ``ceil(K/rows)`` reduction folds are added outside the array.
* WS with ``weight_double_buffer``: the next weight tile loads into the PEs' shadow
  registers while the current fold streams, so folds start
  ``fold_interval(M) = max(M, 2*rows + cols - 1)`` cycles apart and the GEMM takes
  ``(folds - 1) * fold_interval(M) + fold_cycles(M)`` cycles (the last fold drains).
* OS with ``output_double_buffer``: a fold's results drain from the PEs' output registers
  while the next fold streams, so folds end ``fold_interval(K) = max(K, rows + cols - 1)``
  cycles apart and the GEMM takes ``(folds - 1) * fold_interval(K) + fold_cycles(K)``.

This is :func:`sim.engines.gemm_compute_cycles` for the systolic array, spelled out for the RTL
tests. GEMMs cut into buffer tiles are costed by the kind-independent model of
:func:`sim.gemm.tiled_compute_cycles`, which needs only the spec's unrolling and fold timing.

Costs (the multiplier-kind model of :mod:`sim.engines.cost`): ``multiply``, one ``a_bits x
w_bits`` multiply per useful MAC, and ``accumulate``, one ``acc_bits`` addition per MAC. Area:
one ``a x w`` multiplier and one ``acc_bits`` adder per PE; the registers differ from the
other kinds' beat footprint: A and W pass from PE to PE, so every PE holds an A, a W and an
accumulator register (``rows * cols * (a_bits + w_bits + acc_bits)`` bits), with
``weight_double_buffer`` a shadow W register more, with ``output_double_buffer`` an output
register more.
"""

from __future__ import annotations

from hw.spec.systolic import SystolicSpec
from sim.engines import Folds, gemm_compute_cycles, gemm_folds
from sim.engines.cost import (
    ArithAction,
    PeArea,
    PriceTable,
    multiplier_arith_actions,
    multiplier_pe_area,
    positions,
)

__all__ = ["Folds", "arith_actions", "gemm_compute_cycles", "gemm_folds", "pe_area"]


def arith_actions(spec: SystolicSpec, table: PriceTable, tech: float) -> tuple[ArithAction, ...]:
    """One multiply and one accumulate per MAC (module docstring)."""
    return multiplier_arith_actions(spec, table, tech)


def pe_area(spec: SystolicSpec, table: PriceTable, tech: float) -> PeArea:
    """A multiplier and an adder per PE; an A, a W (two with double-buffered weights) and an
    accumulator register (and an output register with double-buffered outputs) in every PE."""
    area = multiplier_pe_area(spec, table, tech)
    w_regs = 2 if spec.weight_double_buffer else 1
    acc_regs = 2 if spec.output_double_buffer else 1
    return PeArea(multipliers_um2=area.multipliers_um2, adders_um2=area.adders_um2,
                  register_bits=positions(spec) * (spec.a_bits + w_regs * spec.w_bits
                                                   + acc_regs * spec.acc_bits))
