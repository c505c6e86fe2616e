"""The bit-plane engine (binary units, shift-add recovery): amaranth.sim grid, Verilator
points, the plane schedule and the bipolar-INT identity, timing, validation.

Every grid point runs random GEMMs (partial tiles, several folds, partial last beats) and
checks the results bit for bit against numpy and the cycles against the cycle model; one
more run per point injects idle input cycles and output back-pressure and checks the
results only. A few chosen points run the emitted Verilog on Verilator (marked ``rtl``).
"""

from __future__ import annotations

import dataclasses
import re
import zlib

import numpy as np
import pytest
from amaranth.back import rtlil
from lockstep import check_gemm_amaranth, ci_subset, verify_lockstep

from hw.bitplane import BitplaneArray
from hw.spec import SpecError, engine_from_dict, engine_kinds
from hw.spec.bitplane import BitplaneSpec, bipolar_offset, plane_schedule
from sim.engines.bitplane import gemm_compute_cycles
from sim.verify.amaranth_bench import run_gemm_amaranth
from sim.verify.driver import Case, case_operands, operand_range, reference_gemm
from sim.verify.plan_bitplane import plan_cases


def _random_specs(n: int, seed: int) -> list[BitplaneSpec]:
    rng = np.random.default_rng(seed)
    specs = []
    for i in range(n):
        a_bits = int(rng.integers(1, 17))
        # Cycles grow with a_bits * w_bits: keep most points under 64 pairs per beat.
        w_bits = int(rng.integers(1, min(16, max(2, 64 // a_bits)) + 1))
        if i % 2:
            a_bits, w_bits = w_bits, a_bits
        specs.append(BitplaneSpec(
            rows=int(rng.integers(1, 7)), cols=int(rng.integers(1, 7)),
            depth=int(rng.integers(1, 10)), a_bits=a_bits, w_bits=w_bits,
            # Half the points get an accumulator too narrow for the sums: results must wrap.
            acc_bits=int(rng.integers(1, a_bits + w_bits + 1)) if i % 3 else
            int(rng.integers(a_bits + w_bits, 65)),
            signed=bool(rng.integers(0, 2)), encoding=("twos", "bipolar")[i % 4 // 2],
            carry_save=bool(i % 8 // 4),
        ))
    return specs


EDGE_SPECS = [
    BitplaneSpec(rows=1, cols=1, depth=1, a_bits=1, w_bits=1, acc_bits=1, signed=True),
    BitplaneSpec(rows=1, cols=1, depth=1, a_bits=1, w_bits=1, acc_bits=1, signed=False,
                 encoding="bipolar", carry_save=True),
    BitplaneSpec(rows=1, cols=1, depth=1, a_bits=1, w_bits=1, acc_bits=1, signed=True,
                 encoding="bipolar"),
    BitplaneSpec(rows=1, cols=5, depth=2, a_bits=16, w_bits=16, acc_bits=64, signed=True,
                 encoding="bipolar", carry_save=True),
    BitplaneSpec(rows=6, cols=1, depth=3, a_bits=16, w_bits=16, acc_bits=64, signed=False),
    BitplaneSpec(rows=3, cols=4, depth=64, a_bits=2, w_bits=3, acc_bits=12, signed=True,
                 carry_save=True),
    BitplaneSpec(rows=4, cols=3, depth=8, a_bits=8, w_bits=8, acc_bits=32, signed=True,
                 encoding="bipolar"),
]
SPECS = EDGE_SPECS + _random_specs(22, seed=20261202)
#: CI runs the corners and the first 12 random points; all of them run with ``pytest -m slow``.
CI_SPECS = range(len(EDGE_SPECS) + 12)


@pytest.mark.parametrize("spec", ci_subset(SPECS, CI_SPECS))
def test_lockstep_amaranth(spec: BitplaneSpec) -> None:
    rng = np.random.default_rng(zlib.crc32(spec.name.encode()))
    R, C, D = spec.rows, spec.cols, spec.depth
    k_max = 2 * D + 2 if spec.a_bits * spec.w_bits <= 64 else D + 1  # at most 2 long beats
    shapes = [
        (int(rng.integers(1, 2 * R + 3)), int(rng.integers(1, 2 * C + 3)),
         int(rng.integers(1, k_max + 1)))
        for _ in range(2)
    ]
    for M, N, K in shapes:
        check_gemm_amaranth(spec, Case("grid", M, N, K), rng)
    check_gemm_amaranth(spec, Case("stalls", *shapes[0]), rng, p_idle=0.4, p_stall=0.4)


@pytest.mark.parametrize("extreme", ["min", "max"])
@pytest.mark.parametrize("spec", EDGE_SPECS[3:], ids=lambda s: s.name)
def test_extreme_operands(spec: BitplaneSpec, extreme: str) -> None:
    rng = np.random.default_rng(7)
    case = Case(extreme, spec.rows + 1, spec.cols + 1, spec.depth + 1, extreme=extreme)
    A, W = case_operands(spec, case, rng)
    got, _ = run_gemm_amaranth(spec, A, W, rng)
    np.testing.assert_array_equal(got, reference_gemm(spec, A, W))


def test_plan_cases_run_on_amaranth() -> None:
    """The planner's own cases (what `tpe verify` runs), on one point."""
    spec = BitplaneSpec(rows=2, cols=3, depth=3, a_bits=4, w_bits=3, acc_bits=10, signed=True,
                        encoding="bipolar")
    rng = np.random.default_rng(5)
    for case in plan_cases(spec, rng):
        A, W = case_operands(spec, case, rng)
        got, drv = run_gemm_amaranth(spec, A, W, rng, p_idle=case.p_idle, p_stall=case.p_stall)
        np.testing.assert_array_equal(got, reference_gemm(spec, A, W), err_msg=case.label)
        if case.checks_cycles:
            measured = drv.timing[-1].last_out - drv.timing[0].first_in + 1
            assert measured == gemm_compute_cycles(spec, case.M, case.N, case.K), case.label


@pytest.mark.parametrize(("a_bits", "w_bits"), [(1, 1), (1, 5), (4, 1), (3, 3), (16, 16),
                                                (2, 7)])
def test_plane_schedule_covers_every_pair_by_falling_weight(a_bits: int, w_bits: int) -> None:
    sched = plane_schedule(a_bits, w_bits)
    pairs = [(i, j) for i, j, _ in sched]
    assert sorted(pairs) == [(i, j) for i in range(a_bits) for j in range(w_bits)]
    weights = [i + j for i, j in pairs]
    assert weights == sorted(weights, reverse=True)
    # Horner's rule: doubling exactly where the weight drops (by one).
    assert [s for _, _, s in sched] == [n > 0 and weights[n] != weights[n - 1]
                                        for n in range(len(sched))]
    assert all(weights[n - 1] - weights[n] in (0, 1) for n in range(1, len(sched)))


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize(("a_bits", "w_bits"), [(1, 1), (3, 5), (8, 8), (16, 2)])
def test_bipolar_identity(a_bits: int, w_bits: int, signed: bool) -> None:
    """The correction the bipolar engine applies, checked in numpy against plain A @ W."""
    rng = np.random.default_rng(a_bits * 100 + w_bits)
    L = 37
    lo, hi = operand_range(a_bits, signed)
    a = rng.integers(lo, hi, size=L, endpoint=True)
    lo, hi = operand_range(w_bits, signed)
    w = rng.integers(lo, hi, size=L, endpoint=True)
    da, dw = bipolar_offset(a_bits, signed), bipolar_offset(w_bits, signed)

    def planes(x, bits, d):  # {-1, +1} planes of B = 2x + d, LSB first
        b = 2 * x + d
        u = (b + (1 << bits) - 1) // 2  # sum_i 2**i u_i with b_i = 2 u_i - 1
        return [2 * ((u >> i) & 1) - 1 for i in range(bits)]

    pa, pw = planes(a, a_bits, da), planes(w, w_bits, dw)
    assert sum((1 << i) * p for i, p in enumerate(pa)).tolist() == (2 * a + da).tolist()
    X = sum((1 << (i + j)) * int(np.sum(pa[i] == pw[j]))
            for i in range(a_bits) for j in range(w_bits))
    kappa = (((1 << a_bits) - 1) * ((1 << w_bits) - 1) + da * dw) // 2
    two_c = X - dw * int(a.sum()) - da * int(w.sum()) - L * kappa
    assert two_c == 2 * int(a @ w)


def test_no_multipliers() -> None:
    for enc in ("twos", "bipolar"):
        text = rtlil.convert(BitplaneArray(BitplaneSpec(rows=2, cols=2, depth=4, encoding=enc)))
        assert "$mul" not in text


def test_timing_contract_formulas_match_fold_cycles() -> None:
    for spec in SPECS:
        contract = spec.timing_contract()
        assert contract["stream_len"] == "K"
        for n in (1, 2, 17, 1000):
            env = {**dataclasses.asdict(spec), "K": n}
            assert eval(contract["fold_cycles"], {}, env) == spec.fold_cycles(n)
            parts = sum(eval(contract[k], {}, env) for k in
                        ("preload_cycles", "fill_cycles", "stream_cycles", "drain_cycles"))
            assert parts == spec.fold_cycles(n)
            assert (eval(contract["input_beats"], {}, env) * spec.a_bits * spec.w_bits
                    == spec.stream_cycles(n))
        assert spec.unrolling().stream == "k"
    spec = BitplaneSpec(rows=16, cols=16, depth=32, a_bits=8, w_bits=8)
    assert spec.macs_per_cycle == 128
    assert spec.fold_cycles(4096) == 1 + 128 * 64 + 16
    # Cycles grow with a_bits * w_bits.
    assert BitplaneSpec(rows=4, cols=4, a_bits=4, w_bits=2).stream_cycles(64) == 8 * 8
    with pytest.raises(ValueError, match="stream_len must be >= 1"):
        spec.fold_cycles(0)


def test_kind_is_discovered_and_names_are_unique() -> None:
    assert engine_kinds()["bitplane"] is BitplaneSpec
    variants = [BitplaneSpec(rows=2, cols=2, encoding=e, carry_save=c, signed=u, depth=d)
                for e in ("twos", "bipolar") for c in (False, True) for u in (False, True)
                for d in (1, 2)]
    assert len({v.name for v in variants}) == len(variants)
    assert all(re.fullmatch(r"[A-Za-z0-9_]+", v.name) for v in variants)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"rows": 0, "cols": 2}, r"^engine\.rows: must be >= 1 \(got 0\)$"),
        ({"rows": 2, "cols": 65}, r"^engine\.cols: must be <= 64 \(got 65\)$"),
        ({"rows": 2, "cols": 2, "depth": 0}, r"^engine\.depth: must be >= 1 \(got 0\)$"),
        ({"rows": 2, "cols": 2, "depth": 65}, r"^engine\.depth: must be <= 64 \(got 65\)$"),
        ({"rows": 2, "cols": 2, "a_bits": 0}, r"^engine\.a_bits: must be >= 1 \(got 0\)$"),
        ({"rows": 2, "cols": 2, "encoding": "xnor"},
         r"^engine\.encoding: must be one of 'twos' or 'bipolar' \(got 'xnor'\)$"),
        ({"rows": 2, "cols": 2, "carry_save": "no"},
         r"^engine\.carry_save: input should be a valid boolean \(got 'no'\)$"),
        ({"rows": 2, "cols": 2, "dataflow": "os"},
         r"^engine\.dataflow: unknown key; remove it or check its spelling$"),
    ],
)
def test_bad_values_name_the_field(data: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message) as info:
        engine_from_dict({"kind": "bitplane", **data})
    assert "\n" not in str(info.value)


RTL_POINTS = [
    BitplaneSpec(rows=3, cols=2, depth=5, a_bits=5, w_bits=3, acc_bits=12, signed=True,
                 encoding="bipolar", carry_save=True),
    BitplaneSpec(rows=2, cols=3, depth=3, a_bits=16, w_bits=4, acc_bits=64, signed=False,
                 encoding="twos"),
    BitplaneSpec(rows=1, cols=4, depth=1, a_bits=1, w_bits=2, acc_bits=2, signed=True,
                 encoding="twos", carry_save=True),
]


@pytest.mark.rtl
@pytest.mark.parametrize("spec", ci_subset(RTL_POINTS, [0, 1]))
def test_verilog_lockstep(spec: BitplaneSpec, tmp_path) -> None:
    verify_lockstep(spec, tmp_path)
