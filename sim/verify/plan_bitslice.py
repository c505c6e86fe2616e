"""How a GEMM runs on the bit-slice array, fold by fold, and which GEMMs verify it.

Folds are those of the 2D-Matrix (the same broadcast organisation, see
:mod:`sim.verify.plan_matrix2d`): one per ``rows`` x ``cols`` output tile, streaming all of K.
Partial tiles carry random junk in their spare lanes, except the activation lanes of spare
rows with ``skip_zero``: those are zero, as a scheduler would pad them, so that padding never
costs a cycle and :func:`sim.engines.bitslice.gemm_compute_cycles_given` is exact.

With ``skip_zero`` a fold's cycles depend on its data: :func:`fold_cycles` gives the exact
count of a planned fold; the GEMM-level ``gemm_compute_cycles`` the bench compares with is the
worst case (see the report on the verification hook this needs).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from hw.spec.bitslice import BitsliceSpec
from sim.engines.bitslice import fold_cycles_of
from sim.verify.driver import Fold, plan_cases
from sim.verify.plan_matrix2d import broadcast_folds

__all__ = ["fold_cycles", "plan_cases", "plan_folds"]


def plan_folds(
    spec: BitsliceSpec, A: np.ndarray, W: np.ndarray, rng: np.random.Generator
) -> Iterator[Fold]:
    """The folds of ``A @ W`` on the array, in the order the cycle model counts them."""
    for fold in broadcast_folds(spec, A, W, rng):
        if spec.skip_zero and fold.nrows < spec.rows:
            for beat in fold.beats["i"]:
                beat["a"][fold.nrows:] = 0  # zero padding: no cycle spent on spare rows
        yield fold


def fold_cycles(spec: BitsliceSpec, fold: Fold) -> int:
    """Exact cycles of a planned fold (data-dependent with skip_zero)."""
    return fold_cycles_of(spec, np.array([beat["a"] for beat in fold.beats["i"]]))
