"""The fold planner and cycle model of each engine kind, for the verification benches.

By convention the planner of kind ``k`` is the module ``sim.verify.plan_k`` (functions
``plan_folds(spec, A, W, rng)``, ``plan_cases(spec, rng)`` and, for data-dependent timing,
``fold_cycles(spec, fold)``; for operands other than integer matrices, such as the MX engine's
codes and scales, ``case_operands(spec, case, rng)`` and ``reference_gemm(spec, A, W)``) and
its cycle model the module
``sim.engines.k`` (``gemm_compute_cycles(spec, M, N, K)``). A new kind needs no edit here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from hw.spec import EngineSpec
from sim.verify import driver
from sim.verify.driver import Case, Fold

__all__ = ["Planner", "planner"]


@dataclass(frozen=True)
class Planner:
    #: The folds of ``A @ W`` (spec, A, W, rng), in the order the cycle model counts them.
    plan_folds: Callable[[EngineSpec, np.ndarray, np.ndarray, np.random.Generator],
                         Iterator[Fold]]
    #: The GEMMs a verification run checks (spec, rng, random_gemms=..., max_dim=...: see
    #: :func:`sim.verify.driver.plan_cases`).
    plan_cases: Callable[..., list[Case]]
    #: Cycles of an untiled GEMM on the engine alone (spec, M, N, K): the RTL's contract.
    gemm_compute_cycles: Callable[[EngineSpec, int, int, int], int]
    #: For engines whose cycles depend on the data (e.g. zero skipping): the exact cycles of
    #: one planned fold (spec, fold); None when ``gemm_compute_cycles`` is exact for any data.
    fold_cycles: Callable[[EngineSpec, Fold], int] | None = None
    #: The operands ``(A, W)`` of a case (spec, case, rng): integer matrices in the engine's
    #: operand ranges unless the kind's planner defines its own.
    case_operands: Callable[[EngineSpec, Case, np.random.Generator], tuple[Any, Any]] = \
        driver.case_operands
    #: The bit-exact expected ``C`` of ``A @ W`` (spec, A, W): the integer product wrapped to
    #: the accumulator unless the kind's planner defines its own.
    reference_gemm: Callable[[EngineSpec, Any, Any], np.ndarray] = driver.reference_gemm

    def model_cycles(self, spec: EngineSpec, folds: list[Fold], M: int, N: int, K: int) -> int:
        """The model's cycles for these folds of an M x N x K GEMM (folds run back to back)."""
        if self.fold_cycles is not None:
            return sum(self.fold_cycles(spec, f) for f in folds)
        return self.gemm_compute_cycles(spec, M, N, K)


def planner(spec: EngineSpec) -> Planner:
    try:
        plan = importlib.import_module(f"sim.verify.plan_{spec.kind}")
        model = importlib.import_module(f"sim.engines.{spec.kind}")
    except ModuleNotFoundError as err:
        raise TypeError(f"no verification planner for engine kind {spec.kind!r} ({err})") \
            from None
    return Planner(plan.plan_folds, plan.plan_cases, model.gemm_compute_cycles,
                   getattr(plan, "fold_cycles", None),
                   getattr(plan, "case_operands", driver.case_operands),
                   getattr(plan, "reference_gemm", driver.reference_gemm))
