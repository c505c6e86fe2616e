"""The 2D-Matrix engine: spec, cycle model, generator under amaranth.sim and on Verilator.

The wide random grid runs on amaranth.sim: every point runs random GEMMs (partial tiles and
several folds included) and checks the results bit for bit against numpy and the cycles
against the cycle model, fold by fold; one more run injects idle input cycles and output
back-pressure. A few chosen points run the emitted Verilog through the cocotb bench.
"""

from __future__ import annotations

import zlib
from dataclasses import fields

import numpy as np
import pytest
from lockstep import ci_subset, verify_lockstep

from hw.spec import SpecError, engine_from_dict
from hw.spec.matrix2d import Matrix2dSpec
from sim.engines.matrix2d import gemm_compute_cycles
from sim.verify.amaranth_bench import run_gemm_amaranth
from sim.verify.driver import Case, case_operands, reference_gemm

OPTIONS = [
    {"booth": False, "csa_accumulate": False},
    {"booth": True, "csa_accumulate": False},
    {"booth": False, "csa_accumulate": True},
    {"booth": True, "csa_accumulate": True},
]


def _random_specs(n: int, seed: int) -> list[Matrix2dSpec]:
    rng = np.random.default_rng(seed)
    specs = []
    for i in range(n):
        a_bits, w_bits = (int(x) for x in rng.integers(1, 17, size=2))
        specs.append(Matrix2dSpec(
            rows=int(rng.integers(1, 5)), cols=int(rng.integers(1, 5)),
            a_bits=a_bits, w_bits=w_bits,
            # Half the points get an accumulator too narrow for the sums: results must wrap.
            acc_bits=int(rng.integers(1, a_bits + w_bits + 1)) if i % 2 else
            int(rng.integers(a_bits + w_bits, 65)),
            signed=bool(rng.integers(0, 2)), **OPTIONS[i // 2 % 4],
        ))
    return specs


EDGE_SPECS = [
    Matrix2dSpec(rows=1, cols=1, a_bits=1, w_bits=1, acc_bits=1, signed=True),
    Matrix2dSpec(rows=1, cols=1, a_bits=1, w_bits=1, acc_bits=1, signed=False, booth=True,
                 csa_accumulate=True),
    Matrix2dSpec(rows=1, cols=6, a_bits=16, w_bits=16, acc_bits=64, signed=True, booth=True),
    Matrix2dSpec(rows=6, cols=1, a_bits=16, w_bits=16, acc_bits=64, signed=False,
                 csa_accumulate=True),
    Matrix2dSpec(rows=4, cols=3, a_bits=8, w_bits=8, acc_bits=32, signed=True, booth=True,
                 csa_accumulate=True),
    Matrix2dSpec(rows=3, cols=5, a_bits=7, w_bits=2, acc_bits=5, signed=False, booth=True),
]
SPECS = EDGE_SPECS + _random_specs(16, seed=20261128)
#: CI runs the corners and the first 12 random points; all of them run with ``pytest -m slow``.
CI_SPECS = range(len(EDGE_SPECS) + 12)


@pytest.mark.parametrize("spec", ci_subset(SPECS, CI_SPECS))
def test_lockstep_amaranth(spec: Matrix2dSpec) -> None:
    rng = np.random.default_rng(zlib.crc32(spec.name.encode()))
    R, C = spec.rows, spec.cols
    # Partial tiles and several folds in both dimensions (about two folds plus a rest).
    M, N, K = (int(rng.integers(1, 2 * R + 3)), int(rng.integers(1, 2 * C + 3)),
               int(rng.integers(1, 2 * R + 3)))
    A, W = case_operands(spec, Case("grid", M, N, K), rng)
    got, drv = run_gemm_amaranth(spec, A, W, rng)
    np.testing.assert_array_equal(got, reference_gemm(spec, A, W))
    assert drv.check_protocol() == []
    measured = drv.timing[-1].last_out - drv.timing[0].first_in + 1
    assert measured == gemm_compute_cycles(spec, M, N, K)
    assert [t.cycles for t in drv.timing] == [spec.fold_cycles(K)] * len(drv.folds)
    A, W = case_operands(spec, Case("stalls", M, N, K), rng)
    got, drv = run_gemm_amaranth(spec, A, W, rng, p_idle=0.4, p_stall=0.4)
    np.testing.assert_array_equal(got, reference_gemm(spec, A, W))
    assert drv.check_protocol() == []


@pytest.mark.parametrize("extreme", ["min", "max"])
@pytest.mark.parametrize("spec", EDGE_SPECS[3:], ids=lambda s: s.name)
def test_extreme_operands(spec: Matrix2dSpec, extreme: str) -> None:
    rng = np.random.default_rng(7)
    case = Case(extreme, spec.rows + 1, spec.cols + 1, spec.rows + 2, extreme=extreme)
    A, W = case_operands(spec, case, rng)
    got, _ = run_gemm_amaranth(spec, A, W, rng)
    np.testing.assert_array_equal(got, reference_gemm(spec, A, W))


def test_timing_contract_formulas_match_fold_cycles() -> None:
    for spec in SPECS:
        contract = spec.timing_contract()
        for n in (1, 2, 17, 1000):
            env = {f.name: getattr(spec, f.name) for f in fields(spec)}
            env[contract["stream_len"]] = n
            assert eval(contract["fold_cycles"], {}, env) == spec.fold_cycles(n)
            parts = sum(eval(contract[k], {}, env) for k in
                        ("preload_cycles", "stream_cycles", "fill_cycles", "drain_cycles"))
            assert parts == spec.fold_cycles(n)
            assert (spec.preload_cycles + spec.stream_cycles(n) + spec.fill_cycles
                    + spec.drain_cycles) == spec.fold_cycles(n)


def test_model_and_unrolling() -> None:
    spec = Matrix2dSpec(rows=4, cols=3)
    assert spec.fold_cycles(10) == 14
    assert gemm_compute_cycles(spec, 9, 7, 10) == 3 * 3 * 14
    u = spec.unrolling()
    assert (u.m, u.n, u.k, u.stream) == (4, 3, None, "k")
    assert spec.macs_per_cycle == 12
    with pytest.raises(ValueError, match=r"^stream_len must be >= 1, got 0$"):
        spec.fold_cycles(0)
    names = {Matrix2dSpec(rows=2, cols=2, **o).name for o in OPTIONS}
    assert len(names) == 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rows": 0}, r"^engine\.rows: must be >= 1 \(got 0\)$"),
        ({"cols": 257}, r"^engine\.cols: must be <= 256 \(got 257\)$"),
        ({"a_bits": 17}, r"^engine\.a_bits: must be <= 16 \(got 17\)$"),
        ({"w_bits": 0}, r"^engine\.w_bits: must be >= 1 \(got 0\)$"),
        ({"acc_bits": 65}, r"^engine\.acc_bits: must be <= 64 \(got 65\)$"),
        ({"booth": "yes"}, r"^engine\.booth: input should be a valid boolean \(got 'yes'\)$"),
        ({"csa_accumulate": 1},
         r"^engine\.csa_accumulate: input should be a valid boolean \(got 1\)$"),
        ({"dataflow": "os"}, r"^engine\.dataflow: unknown key; remove it or check its spelling$"),
    ],
)
def test_bad_values_name_the_field(change: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message) as info:
        engine_from_dict({"kind": "matrix2d", "rows": 2, "cols": 2, **change})
    assert "\n" not in str(info.value)


def test_missing_dimension() -> None:
    with pytest.raises(SpecError, match=r"^engine\.cols: required but missing$"):
        engine_from_dict({"kind": "matrix2d", "rows": 2})


RTL_POINTS = [
    Matrix2dSpec(rows=1, cols=1, a_bits=1, w_bits=1, acc_bits=1, signed=False),
    Matrix2dSpec(rows=3, cols=4, a_bits=8, w_bits=8, acc_bits=20, signed=True, booth=True,
                 csa_accumulate=True),
    Matrix2dSpec(rows=4, cols=2, a_bits=16, w_bits=5, acc_bits=64, signed=False, booth=True),
]


@pytest.mark.rtl
@pytest.mark.parametrize("spec", ci_subset(RTL_POINTS, [1, 2]))
def test_verilog_lockstep(spec: Matrix2dSpec, tmp_path) -> None:
    report = verify_lockstep(spec, tmp_path)
    for case in report.cases:
        if case["cycles_checked"]:
            assert set(case["fold_cycles"]) == {spec.fold_cycles(case["K"])}
