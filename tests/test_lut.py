"""The LUT engine (LUT Tensor Core): amaranth.sim grid, Verilator points, timing, validation.

Every grid point runs random GEMMs (partial tiles, several folds, partial last groups) and
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

from hw.lut import LutArray
from hw.spec import SpecError, engine_from_dict, engine_kinds
from hw.spec.lut import LutSpec
from hw.verilog import to_verilog
from sim.engines.lut import gemm_compute_cycles
from sim.verify.amaranth_bench import run_gemm_amaranth
from sim.verify.driver import Case, case_operands, reference_gemm
from sim.verify.plan_lut import plan_cases


def _random_specs(n: int, seed: int) -> list[LutSpec]:
    rng = np.random.default_rng(seed)
    specs = []
    for i in range(n):
        a_bits = int(rng.integers(1, 17))
        w_bits = int(rng.integers(1, 17)) if i % 3 == 0 else int(rng.integers(1, 5))
        specs.append(LutSpec(
            rows=int(rng.integers(1, 7)), cols=int(rng.integers(1, 7)),
            group=int(rng.integers(1, 7)), a_bits=a_bits, w_bits=w_bits,
            # Half the points get an accumulator too narrow for the sums: results must wrap.
            acc_bits=int(rng.integers(1, a_bits + w_bits + 1)) if i % 2 else
            int(rng.integers(a_bits + w_bits, 65)),
            signed=bool(rng.integers(0, 2)), symmetric=bool(i % 4 // 2),
            carry_save=bool(i % 8 // 4),
        ))
    return specs


EDGE_SPECS = [
    LutSpec(rows=1, cols=1, group=1, a_bits=1, w_bits=1, acc_bits=1, signed=True),
    LutSpec(rows=1, cols=1, group=1, a_bits=1, w_bits=1, acc_bits=1, signed=False,
            symmetric=False, carry_save=True),
    LutSpec(rows=1, cols=7, group=6, a_bits=16, w_bits=16, acc_bits=64, signed=True,
            carry_save=True),
    LutSpec(rows=7, cols=1, group=6, a_bits=16, w_bits=16, acc_bits=64, signed=False,
            symmetric=False),
    LutSpec(rows=5, cols=3, group=4, a_bits=8, w_bits=2, acc_bits=32, signed=True),
    LutSpec(rows=3, cols=5, group=3, a_bits=8, w_bits=8, acc_bits=7, signed=False,
            carry_save=True),
]
SPECS = EDGE_SPECS + _random_specs(32, seed=20261201)
#: CI runs the corners and the first 12 random points; all of them run with ``pytest -m slow``.
CI_SPECS = range(len(EDGE_SPECS) + 12)


@pytest.mark.parametrize("spec", ci_subset(SPECS, CI_SPECS))
def test_lockstep_amaranth(spec: LutSpec) -> None:
    rng = np.random.default_rng(zlib.crc32(spec.name.encode()))
    R, C, G = spec.rows, spec.cols, spec.group
    shapes = [
        (int(rng.integers(1, 2 * R + 3)), int(rng.integers(1, 2 * C + 3)),
         int(rng.integers(1, 3 * G + 3)))
        for _ in range(2)
    ]
    for M, N, K in shapes:
        check_gemm_amaranth(spec, Case("grid", M, N, K), rng)
    check_gemm_amaranth(spec, Case("stalls", *shapes[0]), rng, p_idle=0.4, p_stall=0.4)


@pytest.mark.parametrize("extreme", ["min", "max"])
@pytest.mark.parametrize("spec", EDGE_SPECS[2:], ids=lambda s: s.name)
def test_extreme_operands(spec: LutSpec, extreme: str) -> None:
    rng = np.random.default_rng(7)
    case = Case(extreme, spec.rows + 1, spec.cols + 1, 2 * spec.group + 1, extreme=extreme)
    A, W = case_operands(spec, case, rng)
    got, _ = run_gemm_amaranth(spec, A, W, rng)
    np.testing.assert_array_equal(got, reference_gemm(spec, A, W))


def test_plan_cases_run_on_amaranth() -> None:
    """The planner's own cases (what `tpe verify` runs), on one point."""
    spec = LutSpec(rows=2, cols=3, group=2, a_bits=6, w_bits=3, acc_bits=11, signed=True)
    rng = np.random.default_rng(5)
    for case in plan_cases(spec, rng):
        A, W = case_operands(spec, case, rng)
        got, drv = run_gemm_amaranth(spec, A, W, rng, p_idle=case.p_idle, p_stall=case.p_stall)
        np.testing.assert_array_equal(got, reference_gemm(spec, A, W), err_msg=case.label)
        if case.checks_cycles:
            measured = drv.timing[-1].last_out - drv.timing[0].first_in + 1
            assert measured == gemm_compute_cycles(spec, case.M, case.N, case.K), case.label


def test_no_multipliers_and_table_size() -> None:
    """Multiplier-free, and symmetrization halves the table registers (the outputs of the
    row's table unit, one module placed once per row)."""
    def spec(**kw):
        return LutSpec(rows=2, cols=3, a_bits=8, w_bits=4, group=4, **kw)

    full, sym = spec(symmetric=False), spec(symmetric=True)
    for s in (full, sym):
        assert "$mul" not in rtlil.convert(LutArray(s))
    entries = r"^  output \[\d+:0\] t\d+;$"  # a table unit's registers, each an output
    texts = [to_verilog(LutArray(s), "top", check=True) for s in (full, sym)]
    assert [len(re.findall(entries, t, re.M)) for t in texts] == [15, 8]  # full: 0 is 0
    assert all(len(re.findall(r"^  top_row row_\d \($", t, re.M)) == 2 for t in texts)


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
            assert eval(contract["precompute_cycles"], {}, env) == spec.precompute_cycles
            assert eval(contract["input_beats"], {}, env) * spec.w_bits == spec.stream_cycles(n)
        assert spec.unrolling().stream == "k"
    spec = LutSpec(rows=32, cols=64, group=4, a_bits=8, w_bits=8)
    assert spec.macs_per_cycle == 1024
    assert spec.fold_cycles(4096) == 1 + 1024 * 8 + 32
    with pytest.raises(ValueError, match="stream_len must be >= 1"):
        spec.fold_cycles(0)


def test_kind_is_discovered_and_names_are_unique() -> None:
    assert engine_kinds()["lut"] is LutSpec
    names = {s.name for s in SPECS}
    assert len(names) == len(set(SPECS))
    base = dict(rows=2, cols=2)
    variants = [LutSpec(**base, symmetric=s, carry_save=c, signed=u, group=g)
                for s in (False, True) for c in (False, True) for u in (False, True)
                for g in (1, 2)]
    assert len({v.name for v in variants}) == len(variants)
    assert all(re.fullmatch(r"[A-Za-z0-9_]+", v.name) for v in variants)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"rows": 0, "cols": 2}, r"^engine\.rows: must be >= 1 \(got 0\)$"),
        ({"rows": 2, "cols": 65}, r"^engine\.cols: must be <= 64 \(got 65\)$"),
        ({"rows": 2, "cols": 2, "group": 7}, r"^engine\.group: must be <= 6 \(got 7\)$"),
        ({"rows": 2, "cols": 2, "group": 0}, r"^engine\.group: must be >= 1 \(got 0\)$"),
        ({"rows": 2, "cols": 2, "w_bits": 17}, r"^engine\.w_bits: must be <= 16 \(got 17\)$"),
        ({"rows": 2, "cols": 2, "symmetric": "yes"},
         r"^engine\.symmetric: input should be a valid boolean \(got 'yes'\)$"),
        ({"rows": 2, "cols": 2, "carry_save": 1},
         r"^engine\.carry_save: input should be a valid boolean \(got 1\)$"),
        ({"rows": 2, "cols": 2, "groups": 4},
         r"^engine\.groups: unknown key; remove it or check its spelling$"),
        ({"cols": 2}, r"^engine\.rows: required but missing$"),
    ],
)
def test_bad_values_name_the_field(data: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message) as info:
        engine_from_dict({"kind": "lut", **data})
    assert "\n" not in str(info.value)


RTL_POINTS = [
    LutSpec(rows=3, cols=5, group=4, a_bits=8, w_bits=3, acc_bits=20, signed=True,
            symmetric=True, carry_save=True),
    LutSpec(rows=2, cols=2, group=1, a_bits=16, w_bits=16, acc_bits=64, signed=False,
            symmetric=False),
    LutSpec(rows=4, cols=3, group=3, a_bits=5, w_bits=2, acc_bits=6, signed=False,
            symmetric=True),
]


@pytest.mark.rtl
@pytest.mark.parametrize("spec", ci_subset(RTL_POINTS, [0, 1]))
def test_verilog_lockstep(spec: LutSpec, tmp_path) -> None:
    verify_lockstep(spec, tmp_path)
