"""How a GEMM runs on the LUT engine, fold by fold, and which GEMMs verify it.

Output stationary: one fold per ``rows`` x ``cols`` output tile (row folds inner, column
folds outer), each streaming the whole reduction K, one input beat per group of ``group``
activations (see :mod:`sim.engines.lut`). Lanes outside the GEMM are filled with random
junk wherever the hardware must ignore them (rows past M, columns past N, weights past K)
and with zeros where they would enter a result (activations past K in the kept rows: a
table built from them would add to every column).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from hw.spec.lut import LutSpec
from sim.verify.driver import Fold, plan_cases
from sim.verify.plan_bitplane import plan_grouped_folds

__all__ = ["plan_cases", "plan_folds"]


def plan_folds(
    spec: LutSpec, A: np.ndarray, W: np.ndarray, rng: np.random.Generator
) -> Iterator[Fold]:
    """The folds of ``A @ W`` on the engine, in the order the cycle model counts them."""
    return plan_grouped_folds(spec, A, W, rng, spec.group)
