"""Every engine kind's timing contract agrees with the generic cycle model.

For each kind's preset engine, and shapes that leave partial folds, the contract's formula
strings (``gemm_folds``, ``fold_cycles``) evaluate to what ``sim.engines.gemm_folds`` counts.
"""

from __future__ import annotations

import math
from dataclasses import asdict

import pytest

from hw.spec import engine_kinds, list_presets, load_arch
from sim.engines import gemm_folds

# engine presets (GPU presets describe their tensor cores as a cube but are timed otherwise)
PRESET_ENGINES = {load_arch(p).engine.kind: load_arch(p).engine for p in list_presets()
                  if load_arch(p).gpu is None}
SHAPES = [(1, 1, 1), (7, 5, 3), (100, 60, 50), (33, 129, 65)]


def test_every_kind_has_a_preset() -> None:
    assert set(engine_kinds()) <= set(PRESET_ENGINES)


@pytest.mark.parametrize("kind", sorted(PRESET_ENGINES))
@pytest.mark.parametrize(("M", "N", "K"), SHAPES)
def test_contract_formulas_match_the_model(kind: str, M: int, N: int, K: int) -> None:
    spec = PRESET_ENGINES[kind]
    contract = spec.timing_contract()
    env = {**asdict(spec), "M": M, "N": N, "K": K, "ceil": math.ceil}
    folds = gemm_folds(spec, M, N, K)
    assert eval(contract["gemm_folds"], {"ceil": math.ceil}, env) == folds.folds
    stream = contract["stream_len"]
    env[stream] = folds.stream_len
    assert eval(contract["fold_cycles"], {"ceil": math.ceil}, env) == folds.fold_cycles
    assert folds.fold_interval == spec.fold_interval(folds.stream_len)
    assert folds.cycles == ((folds.folds - 1) * spec.fold_interval(folds.stream_len)
                            + spec.fold_cycles(folds.stream_len))
    if "fold_interval" in contract:
        assert eval(contract["fold_interval"], {"ceil": math.ceil}, env) == folds.fold_interval
