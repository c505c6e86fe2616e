"""The 3D-Cube generator: amaranth.sim lock-step over a random grid, Verilator points, spec.

Every grid point runs random GEMMs (partial tiles, partial reduction chunks and several folds
included) and checks the results bit for bit against numpy and the cycles against the cycle
model, per GEMM and per fold; one more run per point injects idle input cycles and output
back-pressure and checks the results only. The options (``booth``, ``csa_accumulate``,
``output_double_buffer``) take every combination across the grid.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
import pytest
from lockstep import ci_subset, verify_lockstep

from hw.emit import render
from hw.spec import SpecError, engine_from_dict
from hw.spec.cube import CubeSpec
from sim.engines.cube import gemm_compute_cycles, gemm_folds
from sim.verify.amaranth_bench import run_gemm_amaranth
from sim.verify.driver import Case, case_operands, reference_gemm


def _random_specs(n: int, seed: int) -> list[CubeSpec]:
    rng = np.random.default_rng(seed)
    specs = []
    for i in range(n):
        a_bits, w_bits = (int(x) for x in rng.integers(1, 17, size=2))
        while True:  # at most 24 multipliers, so that amaranth.sim stays quick
            m_, n_, k_ = (int(x) for x in rng.integers(1, (5, 5, 6)))
            if m_ * n_ * k_ <= 24:
                break
        specs.append(CubeSpec(
            m=m_, n=n_, k=k_,
            a_bits=a_bits, w_bits=w_bits,
            # Half the points get an accumulator too narrow for the sums: results must wrap.
            acc_bits=int(rng.integers(1, a_bits + w_bits + 1)) if i % 2 else
            int(rng.integers(a_bits + w_bits, 65)),
            signed=bool(rng.integers(0, 2)),
            booth=bool(i // 2 % 2), csa_accumulate=bool(i // 4 % 2),
            output_double_buffer=bool(i // 8 % 2),
        ))
    return specs


EDGE_SPECS = [
    CubeSpec(m=1, n=1, k=1, a_bits=1, w_bits=1, acc_bits=1, signed=True),
    CubeSpec(m=1, n=1, k=1, a_bits=1, w_bits=1, acc_bits=1, signed=False, booth=True,
             csa_accumulate=True),
    CubeSpec(m=1, n=5, k=3, a_bits=16, w_bits=16, acc_bits=64, signed=True, booth=True),
    CubeSpec(m=3, n=1, k=7, a_bits=16, w_bits=16, acc_bits=64, signed=False,
             csa_accumulate=True),
    CubeSpec(m=2, n=3, k=4, a_bits=8, w_bits=8, acc_bits=32, signed=True, booth=True,
             csa_accumulate=True),
    CubeSpec(m=1, n=1, k=1, a_bits=1, w_bits=1, acc_bits=1, signed=True,
             output_double_buffer=True),
    CubeSpec(m=4, n=2, k=3, a_bits=8, w_bits=8, acc_bits=32, signed=False, booth=True,
             csa_accumulate=True, output_double_buffer=True),
]
SPECS = EDGE_SPECS + _random_specs(28, seed=20261127)
#: CI runs the corners and the first 16 random points (one period of the option pattern); all
#: of them run with ``pytest -m slow``.
CI_SPECS = range(len(EDGE_SPECS) + 16)


@pytest.mark.parametrize("spec", ci_subset(SPECS, CI_SPECS))
def test_lockstep_amaranth(spec: CubeSpec) -> None:
    rng = np.random.default_rng(zlib.crc32(spec.name.encode()))
    # Several folds along M and N (partial edge tiles) and a partial last reduction chunk.
    M, N = int(rng.integers(spec.m + 1, 2 * spec.m + 2)), int(rng.integers(1, 2 * spec.n + 2))
    K = int(rng.integers(1, 3 * spec.k + 2))
    A, W = case_operands(spec, Case("grid", M, N, K), rng)
    got, drv = run_gemm_amaranth(spec, A, W, rng)
    np.testing.assert_array_equal(got, reference_gemm(spec, A, W))
    assert drv.check_protocol() == []
    _check_fold_timing(spec, drv, M, N, K)
    # Idle input cycles and output back-pressure: results still exact, protocol kept.
    A, W = case_operands(spec, Case("stalls", M, N, K), rng)
    got, drv = run_gemm_amaranth(spec, A, W, rng, p_idle=0.4, p_stall=0.4)
    np.testing.assert_array_equal(got, reference_gemm(spec, A, W))
    assert drv.check_protocol() == []


def _check_fold_timing(spec: CubeSpec, drv, M: int, N: int, K: int) -> None:
    """The GEMM takes the model's cycles; the first fold takes ``fold_cycles`` and every later
    one ends ``fold_interval`` after the one before it (``fold_cycles`` without overlap)."""
    measured = drv.timing[-1].last_out - drv.timing[0].first_in + 1
    assert measured == gemm_compute_cycles(spec, M, N, K) == gemm_folds(spec, M, N, K).cycles
    assert drv.timing[0].cycles == spec.fold_cycles(K)
    ends = [t.last_out for t in drv.timing]
    assert np.diff(ends).tolist() == [spec.fold_interval(K)] * (len(ends) - 1)
    if not spec.output_double_buffer:
        assert [t.cycles for t in drv.timing] == [spec.fold_cycles(K)] * len(drv.folds)


def _output_double_buffered_specs(n: int, seed: int) -> list[CubeSpec]:
    rng = np.random.default_rng(seed)
    specs = []
    for _ in range(n):
        a_bits, w_bits = (int(x) for x in rng.integers(1, 17, size=2))
        while True:  # at most 24 multipliers, as in the grid
            m_, n_, k_ = (int(x) for x in rng.integers(1, (6, 5, 5)))
            if m_ * n_ * k_ <= 24:
                break
        specs.append(CubeSpec(
            m=m_, n=n_, k=k_, a_bits=a_bits, w_bits=w_bits, acc_bits=int(rng.integers(1, 65)),
            signed=bool(rng.integers(0, 2)), output_double_buffer=True,
            booth=bool(rng.integers(0, 2)), csa_accumulate=bool(rng.integers(0, 2))))
    return specs


@pytest.mark.parametrize("spec", ci_subset(_output_double_buffered_specs(10, seed=20261206),
                                          range(4)))
def test_output_double_buffer_hides_the_drain(spec: CubeSpec) -> None:
    """Several M and N folds with partial tiles, ceil(K/k) beats below, at and above the
    bank's m rows: results bit exact, cycles the model's, and fewer than the same cube
    without the bank takes; then idle input and heavy back-pressure, under which a last beat
    must wait for the bank to empty."""
    rng = np.random.default_rng(zlib.crc32(spec.name.encode()))
    m_, k_ = spec.m, spec.k
    plain = dataclasses.replace(spec, output_double_buffer=False)
    for beats in (int(rng.integers(1, m_ + 1)), m_, int(rng.integers(m_ + 1, 2 * m_ + 4))):
        K = int(rng.integers((beats - 1) * k_ + 1, beats * k_ + 1))
        assert spec.fold_interval(K) == max(beats, m_)
        M = int(rng.integers(m_ + 1, 3 * m_ + 1))
        N = int(rng.integers(spec.n + 1, 2 * spec.n + 2))
        A, W = case_operands(spec, Case("output double buffer", M, N, K), rng)
        got, drv = run_gemm_amaranth(spec, A, W, rng)
        np.testing.assert_array_equal(got, reference_gemm(spec, A, W))
        assert drv.check_protocol() == []
        assert len(drv.folds) >= 4
        _check_fold_timing(spec, drv, M, N, K)
        assert gemm_compute_cycles(spec, M, N, K) < gemm_compute_cycles(plain, M, N, K)
    for p_idle, p_stall in ((0.3, 0.3), (0.0, 0.7)):
        got, drv = run_gemm_amaranth(spec, A, W, rng, p_idle=p_idle, p_stall=p_stall)
        np.testing.assert_array_equal(got, reference_gemm(spec, A, W))
        assert drv.check_protocol() == []


@pytest.mark.parametrize("extreme", ["min", "max"])
@pytest.mark.parametrize("spec", EDGE_SPECS[1:], ids=lambda s: s.name)
def test_extreme_operands(spec: CubeSpec, extreme: str) -> None:
    rng = np.random.default_rng(7)
    case = Case(extreme, spec.m + 1, spec.n + 1, 2 * spec.k + 1, extreme=extreme)
    A, W = case_operands(spec, case, rng)
    got, _ = run_gemm_amaranth(spec, A, W, rng)
    np.testing.assert_array_equal(got, reference_gemm(spec, A, W))


def test_options_change_the_hardware() -> None:
    """csa_accumulate keeps sum/carry words instead of accumulators; booth selects digits."""
    base = dict(m=2, n=2, k=2, a_bits=4, w_bits=3, acc_bits=10)
    plain = render(CubeSpec(**base))[0]
    booth = render(CubeSpec(**base, booth=True))[0]
    csa = render(CubeSpec(**base, csa_accumulate=True))[0]
    assert "acc_1_1" in plain and "sum_1_1" not in plain and "a1_1_d0" not in plain
    assert "a1_1_d0" in booth and "neg_corr1" in booth and "sum_1_1" not in booth
    assert "sum_1_1" in csa and "carry_1_1" in csa and "acc_1_1" not in csa


def test_timing_contract_formulas_match_fold_cycles() -> None:
    for spec in SPECS:
        contract = spec.timing_contract()
        for K in (1, 2, spec.k, spec.k + 1, 17, 1000):
            env = {"m": spec.m, "n": spec.n, "k": spec.k, contract["stream_len"]: K}
            assert eval(contract["fold_cycles"], {}, env) == spec.fold_cycles(K)
            assert eval(contract["fold_interval"], {}, env) == spec.fold_interval(K)
            parts = sum(eval(contract[key], {}, env) for key in
                        ("preload_cycles", "stream_cycles", "fill_cycles", "drain_cycles"))
            assert parts == spec.fold_cycles(K)
            assert eval(contract["stream_cycles"], {}, env) == spec.stream_cycles(K)
        assert spec.macs_per_cycle == spec.m * spec.n * spec.k
        u = spec.unrolling()
        assert (u.m, u.n, u.k, u.stream) == (spec.m, spec.n, None, "k")


def test_names_are_unique_per_parameter_set() -> None:
    variants = {CubeSpec(m=2, n=2, k=2, booth=b, csa_accumulate=c, signed=s,
                         output_double_buffer=o).name
                for b in (False, True) for c in (False, True) for s in (False, True)
                for o in (False, True)}
    assert len(variants) == 16
    assert all(name.replace("_", "").isalnum() for name in variants)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"m": 0, "n": 2, "k": 2}, r"^engine\.m: must be >= 1 \(got 0\)$"),
        ({"m": 2, "n": 65, "k": 2}, r"^engine\.n: must be <= 64 \(got 65\)$"),
        ({"m": 2, "n": 2}, r"^engine\.k: required but missing$"),
        ({"m": 2, "n": 2, "k": 2, "a_bits": 17}, r"^engine\.a_bits: must be <= 16 \(got 17\)$"),
        ({"m": 2, "n": 2, "k": 2, "acc_bits": 0}, r"^engine\.acc_bits: must be >= 1 \(got 0\)$"),
        ({"m": 2, "n": 2, "k": 2, "booth": "yes"},
         r"^engine\.booth: input should be a valid boolean \(got 'yes'\)$"),
        ({"m": 2, "n": 2, "k": 2, "csa": True},
         r"^engine\.csa: unknown key; remove it or check its spelling$"),
        ({"m": 64, "n": 64, "k": 17},
         r"^engine\.k: m\*n\*k = 64\*64\*17 = 69632 multipliers, more than 65536 .*$"),
    ],
)
def test_spec_errors_name_the_field(data, message) -> None:
    with pytest.raises(SpecError, match=message) as info:
        engine_from_dict({"kind": "cube", **data})
    assert "\n" not in str(info.value)


# -- the emitted Verilog on Verilator (slow) -------------------------------------------------

RTL_POINTS = [
    CubeSpec(m=3, n=2, k=5, a_bits=5, w_bits=3, acc_bits=9, signed=True, booth=True,
             csa_accumulate=True),
    CubeSpec(m=1, n=4, k=1, a_bits=16, w_bits=16, acc_bits=64, signed=False),
    CubeSpec(m=2, n=3, k=3, a_bits=8, w_bits=8, acc_bits=32, signed=True, booth=True),
    # the output bank once on Verilator (corners and a random grid run on amaranth.sim above)
    CubeSpec(m=3, n=2, k=2, a_bits=7, w_bits=6, acc_bits=17, signed=False, csa_accumulate=True,
             output_double_buffer=True),
]


@pytest.mark.rtl
@pytest.mark.parametrize("spec", ci_subset(RTL_POINTS, [0, 3]))
def test_verilog_lockstep(spec: CubeSpec, tmp_path) -> None:
    report = verify_lockstep(spec, tmp_path)
    if spec.output_double_buffer:  # the multi-fold GEMMs whose drains overlap, timed
        overlapped = [c for c in report.cases if c["case"].startswith("double-buffered")]
        assert len(overlapped) == 3
        assert all(c["cycles_checked"] and c["folds"] >= 4 for c in overlapped)
