"""The bit-slice engine: spec, cycle model, generator under amaranth.sim and on Verilator.

The wide random grid runs on amaranth.sim: every point runs a random GEMM (partial tiles and
several folds included) and checks the results bit for bit against numpy and the cycles
against the cycle model, fold by fold (with ``skip_zero``, the model given each fold's data);
one more run injects idle input cycles and output back-pressure. A few chosen points run the
emitted Verilog through the cocotb bench.
"""

from __future__ import annotations

import zlib
from dataclasses import fields

import numpy as np
import pytest
from lockstep import ci_subset

from hw.emit import generate
from hw.spec import SpecError, engine_from_dict
from hw.spec.bitslice import BitsliceSpec
from sim.engines.bitslice import (
    gemm_compute_cycles,
    gemm_compute_cycles_given,
    nonzero_slice_positions,
)
from sim.verify.amaranth_bench import run_gemm_amaranth
from sim.verify.driver import Case, case_operands, operand_range, reference_gemm
from sim.verify.plan_bitslice import fold_cycles, plan_cases


def _random_specs(n: int, seed: int) -> list[BitsliceSpec]:
    rng = np.random.default_rng(seed)
    specs = []
    for i in range(n):
        a_bits, w_bits = (int(x) for x in rng.integers(1, 17, size=2))
        # Slices of at least a_bits*w_bits/32 bits keep a beat under ~32 cycles (sim time).
        low = max(1, int(np.ceil(np.sqrt(a_bits * w_bits / 32))))
        specs.append(BitsliceSpec(
            rows=int(rng.integers(1, 5)), cols=int(rng.integers(1, 5)),
            slice_bits=int(rng.integers(low, 9)), a_bits=a_bits, w_bits=w_bits,
            # Half the points get an accumulator too narrow for the sums: results must wrap.
            acc_bits=int(rng.integers(1, a_bits + w_bits + 1)) if i % 2 else
            int(rng.integers(a_bits + w_bits, 65)),
            signed=bool(rng.integers(0, 2)), skip_zero=bool(i // 2 % 2),
            csa_accumulate=bool(i // 4 % 2),
        ))
    return specs


EDGE_SPECS = [
    BitsliceSpec(rows=1, cols=1, slice_bits=1, a_bits=1, w_bits=1, acc_bits=1, signed=True),
    BitsliceSpec(rows=1, cols=1, slice_bits=8, a_bits=1, w_bits=1, acc_bits=1, signed=False,
                 skip_zero=True, csa_accumulate=True),
    BitsliceSpec(rows=1, cols=2, slice_bits=1, a_bits=16, w_bits=16, acc_bits=64, signed=True),
    BitsliceSpec(rows=5, cols=1, slice_bits=8, a_bits=16, w_bits=16, acc_bits=64, signed=False,
                 skip_zero=True),
    BitsliceSpec(rows=3, cols=3, slice_bits=2, a_bits=8, w_bits=8, acc_bits=32, signed=True),
    BitsliceSpec(rows=2, cols=3, slice_bits=3, a_bits=7, w_bits=5, acc_bits=6, signed=True,
                 skip_zero=True, csa_accumulate=True),
    BitsliceSpec(rows=3, cols=2, slice_bits=4, a_bits=8, w_bits=3, acc_bits=13, signed=False),
    BitsliceSpec(rows=4, cols=2, slice_bits=1, a_bits=4, w_bits=3, acc_bits=40, signed=True,
                 csa_accumulate=True),
]
SPECS = EDGE_SPECS + _random_specs(16, seed=20261129)
#: CI runs the corners and the first 12 random points; all of them run with ``pytest -m slow``.
CI_SPECS = range(len(EDGE_SPECS) + 12)


def _check_cycles(spec: BitsliceSpec, drv, A: np.ndarray, N: int, K: int) -> None:
    measured = [t.cycles for t in drv.timing]
    assert measured == [fold_cycles(spec, f) for f in drv.folds]
    total = drv.timing[-1].last_out - drv.timing[0].first_in + 1
    assert total == gemm_compute_cycles_given(spec, A, N)
    assert total <= gemm_compute_cycles(spec, A.shape[0], N, K)
    if not spec.skip_zero:
        assert measured == [spec.fold_cycles(K)] * len(drv.folds)
        assert total == gemm_compute_cycles(spec, A.shape[0], N, K)


@pytest.mark.parametrize("spec", ci_subset(SPECS, CI_SPECS))
def test_lockstep_amaranth(spec: BitsliceSpec) -> None:
    rng = np.random.default_rng(zlib.crc32(spec.name.encode()))
    R, C = spec.rows, spec.cols
    K_max = 2 * R + 3 if spec.beat_cycles_max <= 32 else 3
    M, N, K = (int(rng.integers(1, 2 * R + 3)), int(rng.integers(1, 2 * C + 3)),
               int(rng.integers(1, K_max)))
    A, W = case_operands(spec, Case("grid", M, N, K), rng)
    got, drv = run_gemm_amaranth(spec, A, W, rng)
    np.testing.assert_array_equal(got, reference_gemm(spec, A, W))
    assert drv.check_protocol() == []
    _check_cycles(spec, drv, A, N, K)
    A, W = case_operands(spec, Case("stalls", M, N, K), rng)
    got, drv = run_gemm_amaranth(spec, A, W, rng, p_idle=0.4, p_stall=0.4)
    np.testing.assert_array_equal(got, reference_gemm(spec, A, W))
    assert drv.check_protocol() == []


@pytest.mark.parametrize("extreme", ["min", "max"])
@pytest.mark.parametrize("spec", EDGE_SPECS[3:6], ids=lambda s: s.name)
def test_extreme_operands(spec: BitsliceSpec, extreme: str) -> None:
    rng = np.random.default_rng(7)
    case = Case(extreme, spec.rows + 1, spec.cols + 1, 3, extreme=extreme)
    A, W = case_operands(spec, case, rng)
    got, drv = run_gemm_amaranth(spec, A, W, rng)
    np.testing.assert_array_equal(got, reference_gemm(spec, A, W))
    _check_cycles(spec, drv, A, case.N, case.K)


def test_skip_zero_saves_cycles_on_sparse_slices() -> None:
    """Small activations leave the upper slices zero: only the low ones take cycles; data
    with every slice non-zero (all ones) takes exactly the data-independent fold_cycles."""
    spec = BitsliceSpec(rows=2, cols=2, slice_bits=2, a_bits=8, w_bits=4, acc_bits=24,
                        signed=False, skip_zero=True)
    rng = np.random.default_rng(11)
    M, N, K = 2, 2, 6
    A = rng.integers(0, 4, size=(M, K))  # one non-zero slice position at most
    A[:, 0] = 0  # an all-zero beat: one cycle
    A[0, 1] = 0xC3  # positions 0 and 3 only
    W = rng.integers(0, 16, size=(K, N))
    got, drv = run_gemm_amaranth(spec, A, W, rng)
    np.testing.assert_array_equal(got, reference_gemm(spec, A, W))
    counts = nonzero_slice_positions(spec, A.T)
    assert counts[0] == 0 and counts[1] == 2
    expected = sum(max(1, int(c) * spec.w_slices) for c in counts) + spec.rows
    assert drv.timing[0].cycles == spec.fold_cycles_given(counts) == expected
    assert expected < spec.fold_cycles(K)
    dense = np.full((M, K), operand_range(8, False)[1])
    got, drv = run_gemm_amaranth(spec, dense, W, rng)
    np.testing.assert_array_equal(got, reference_gemm(spec, dense, W))
    assert drv.timing[0].cycles == spec.fold_cycles(K)


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
            assert eval(contract["a_slices"], {}, env) == spec.a_slices
            assert eval(contract["w_slices"], {}, env) == spec.w_slices
        assert ("data_dependent" in contract) == spec.skip_zero


def test_model_and_unrolling() -> None:
    spec = BitsliceSpec(rows=4, cols=3, slice_bits=3, a_bits=8, w_bits=4)
    assert (spec.a_slices, spec.w_slices, spec.beat_cycles_max) == (3, 2, 6)
    assert spec.fold_cycles(10) == 10 * 6 + 4
    assert gemm_compute_cycles(spec, 9, 7, 10) == 3 * 3 * 64
    u = spec.unrolling()
    assert (u.m, u.n, u.k, u.stream) == (4, 3, None, "k")
    assert spec.macs_per_cycle == 2.0
    with pytest.raises(ValueError, match=r"^stream_len must be >= 1, got 0$"):
        spec.fold_cycles(0)
    skip = BitsliceSpec(rows=4, cols=3, slice_bits=3, a_bits=8, w_bits=4, skip_zero=True)
    assert [skip.beat_cycles(n) for n in range(4)] == [1, 2, 4, 6]
    assert [spec.beat_cycles(n) for n in range(4)] == [6] * 4
    assert skip.fold_cycles_given([3, 0, 1]) == 6 + 1 + 2 + 4
    with pytest.raises(ValueError, match=r"^nonzero_a_slices must be in 0\.\.3, got 4$"):
        skip.beat_cycles(4)
    assert len({skip.name, spec.name,
                BitsliceSpec(rows=4, cols=3, slice_bits=3, a_bits=8, w_bits=4,
                             csa_accumulate=True).name}) == 3
    # Signed slicing: -128 = 0b1000_0000 has one non-zero 3-bit slice (the top one).
    s8 = BitsliceSpec(rows=1, cols=1, slice_bits=3, a_bits=8, w_bits=8, skip_zero=True)
    assert nonzero_slice_positions(s8, np.array([[-128], [0], [-1], [9]])).tolist() == \
        [1, 0, 3, 2]


def test_plan_cases_cover_the_checklist() -> None:
    spec = BitsliceSpec(rows=3, cols=2)
    cases = plan_cases(spec, np.random.default_rng(1))
    assert any(c.K == 1 for c in cases)
    assert any(not c.checks_cycles for c in cases)
    assert {c.extreme for c in cases} == {"", "min", "max"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rows": 0}, r"^engine\.rows: must be >= 1 \(got 0\)$"),
        ({"cols": 300}, r"^engine\.cols: must be <= 256 \(got 300\)$"),
        ({"slice_bits": 0}, r"^engine\.slice_bits: must be >= 1 \(got 0\)$"),
        ({"slice_bits": 9}, r"^engine\.slice_bits: must be <= 8 \(got 9\)$"),
        ({"a_bits": 17}, r"^engine\.a_bits: must be <= 16 \(got 17\)$"),
        ({"acc_bits": 0}, r"^engine\.acc_bits: must be >= 1 \(got 0\)$"),
        ({"skip_zero": "no"}, r"^engine\.skip_zero: input should be a valid boolean"),
        ({"csa_accumulate": 0}, r"^engine\.csa_accumulate: input should be a valid boolean"),
        ({"booth": True}, r"^engine\.booth: unknown key; remove it or check its spelling$"),
    ],
)
def test_bad_values_name_the_field(change: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message) as info:
        engine_from_dict({"kind": "bitslice", "rows": 2, "cols": 2, **change})
    assert "\n" not in str(info.value)


RTL_POINTS = [
    BitsliceSpec(rows=1, cols=1, slice_bits=1, a_bits=1, w_bits=1, acc_bits=1, signed=True),
    BitsliceSpec(rows=3, cols=2, slice_bits=2, a_bits=8, w_bits=8, acc_bits=32, signed=True,
                 csa_accumulate=True),
    BitsliceSpec(rows=2, cols=3, slice_bits=3, a_bits=7, w_bits=5, acc_bits=14, signed=False,
                 skip_zero=True),
]


@pytest.mark.rtl
@pytest.mark.parametrize("spec", ci_subset(RTL_POINTS, [1, 2]))
def test_verilog_lockstep(spec: BitsliceSpec, tmp_path) -> None:
    from sim.verify.runner import verify_design

    report = verify_design(generate(spec, tmp_path), seed=3)
    for case in report.cases:
        assert case["results_ok"], case
    if not spec.skip_zero:
        assert report.passed, [c["problems"] for c in report.cases]
        for case in report.cases:
            if case["cycles_checked"]:
                assert case["measured_cycles"] == case["model_cycles"]
                assert set(case["fold_cycles"]) == {spec.fold_cycles(case["K"])}
        return
    # skip_zero: the bench compares with the worst case. Replay its cases (same seed, same
    # order of random draws) on amaranth.sim and hold the Verilog's per-fold cycles to the
    # model given each fold's data.
    rng = np.random.default_rng(3)
    cases = plan_cases(spec, rng)
    # the bench's cases, then its reset in the middle of a GEMM (checked for results above)
    assert [c.label for c in cases] == [c["case"] for c in report.cases[:len(cases)]]
    assert [c["case"] for c in report.cases[len(cases):]] == [
        "after a reset in the middle of a GEMM"]
    for case, entry in zip(cases, report.cases[:len(cases)], strict=True):
        A, W = case_operands(spec, case, rng)
        _, drv = run_gemm_amaranth(spec, A, W, rng, p_idle=case.p_idle, p_stall=case.p_stall)
        assert entry["fold_cycles"] == [t.cycles for t in drv.timing], case.label
        if case.checks_cycles:
            assert entry["fold_cycles"] == [fold_cycles(spec, f) for f in drv.folds]
            assert entry["measured_cycles"] <= entry["model_cycles"]
        other = [p for p in entry["problems"] if not p.startswith("measured ")]
        assert not other, other
