"""The fold planner and cycle model of each engine kind, for the verification benches."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from hw.spec import EngineSpec, SystolicSpec
from sim.engines import systolic as systolic_model
from sim.verify import plan_systolic
from sim.verify.driver import Case, Fold

__all__ = ["Planner", "planner"]


@dataclass(frozen=True)
class Planner:
    #: The folds of ``A @ W`` (spec, A, W, rng), in the order the cycle model counts them.
    plan_folds: Callable[[EngineSpec, np.ndarray, np.ndarray, np.random.Generator],
                         Iterator[Fold]]
    #: The GEMMs a verification run checks (spec, rng).
    plan_cases: Callable[[EngineSpec, np.random.Generator], list[Case]]
    #: Cycles of an untiled GEMM on the engine alone (spec, M, N, K): the RTL's contract.
    gemm_compute_cycles: Callable[[EngineSpec, int, int, int], int]


_PLANNERS: dict[type, Planner] = {
    SystolicSpec: Planner(plan_systolic.plan_folds, plan_systolic.plan_cases,
                          systolic_model.gemm_compute_cycles),
}


def planner(spec: EngineSpec) -> Planner:
    try:
        return _PLANNERS[type(spec)]
    except KeyError:
        raise TypeError(f"no verification planner for engine spec {spec!r}") from None
