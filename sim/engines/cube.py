"""Cycle model of the 3D-Cube: the numbers the generated RTL is held to.

Per fold the timing comes from :meth:`hw.spec.CubeSpec.fold_cycles`: ``ceil(K/k)`` input
beats, then ``m`` output rows. A GEMM ``C[M, N] = A[M, K] @ W[K, N]`` is cut into one fold per
``m`` x ``n`` output tile, each streaming the whole reduction K; folds run back to back:
``ceil(M/m) * ceil(N/n)`` folds of ``ceil(K/k) + m`` cycles (the generic model of
:mod:`sim.engines`). With ``output_double_buffer`` a fold's tile drains from the output bank
while the next fold streams: folds end ``fold_interval(K) = max(ceil(K/k), m)`` cycles apart
and the GEMM takes ``(folds - 1) * fold_interval(K) + fold_cycles(K)`` cycles.

Costs (the multiplier-kind model of :mod:`sim.engines.cost`): ``multiply``, one ``a_bits x
w_bits`` multiply per useful MAC, and ``accumulate``, one ``acc_bits`` addition per MAC. Area:
one ``a x w`` multiplier and one ``acc_bits`` adder per product lane (``m * n * k`` lanes);
the registers of one beat's operands (``m x k`` A, ``k x n`` W) and the ``m x n``
accumulators, and with ``output_double_buffer`` the ``m x n`` output bank.
"""

from __future__ import annotations

import dataclasses

from hw.spec.cube import CubeSpec
from sim.engines import Folds, gemm_compute_cycles, gemm_folds
from sim.engines.cost import (
    ArithAction,
    PeArea,
    PriceTable,
    multiplier_arith_actions,
    multiplier_pe_area,
)

__all__ = ["Folds", "arith_actions", "gemm_compute_cycles", "gemm_folds", "pe_area"]


def arith_actions(spec: CubeSpec, table: PriceTable, tech: float) -> tuple[ArithAction, ...]:
    """One multiply and one accumulate per MAC (module docstring)."""
    return multiplier_arith_actions(spec, table, tech)


def pe_area(spec: CubeSpec, table: PriceTable, tech: float) -> PeArea:
    """A multiplier and an adder per product lane, the beat's registers and the output bank
    (module docstring)."""
    area = multiplier_pe_area(spec, table, tech)
    if not spec.output_double_buffer:
        return area
    return dataclasses.replace(
        area, register_bits=area.register_bits + spec.m * spec.n * spec.acc_bits)
