"""The systolic generator under amaranth.sim, over a wide random grid of parameters.

Every point runs random GEMMs (partial tiles and several folds included) and checks the
results bit for bit against numpy and the cycles against the cycle model; one more run per
point injects idle input cycles and output back-pressure and checks the results only.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
import pytest
from lockstep import ci_subset

from hw.spec import SystolicSpec
from sim.engines.systolic import gemm_compute_cycles
from sim.verify.amaranth_bench import run_gemm_amaranth
from sim.verify.driver import Case, case_operands, reference_gemm


def _random_specs(n: int, seed: int) -> list[SystolicSpec]:
    rng = np.random.default_rng(seed)
    specs = []
    for i in range(n):
        a_bits, w_bits = (int(x) for x in rng.integers(1, 17, size=2))
        specs.append(SystolicSpec(
            rows=int(rng.integers(1, 10)), cols=int(rng.integers(1, 10)),
            a_bits=a_bits, w_bits=w_bits,
            # Half the points get an accumulator too narrow for the sums: results must wrap.
            acc_bits=int(rng.integers(1, a_bits + w_bits + 1)) if i % 2 else
            int(rng.integers(a_bits + w_bits, 65)),
            signed=bool(rng.integers(0, 2)), dataflow=("os", "ws")[i % 4 // 2],
            booth=bool(rng.integers(0, 2)), csa_accumulate=bool(i % 3 == 0),
            # Half the WS points double-buffer their weights, half the OS points their
            # outputs (drawn from i: the other points' random draws stay as they were).
            weight_double_buffer=i % 8 >= 6, output_double_buffer=i % 8 in (4, 5),
        ))
    return specs


EDGE_SPECS = [
    SystolicSpec(rows=1, cols=1, a_bits=1, w_bits=1, acc_bits=1, signed=True, dataflow="os"),
    SystolicSpec(rows=1, cols=1, a_bits=1, w_bits=1, acc_bits=1, signed=False, dataflow="ws"),
    SystolicSpec(rows=1, cols=7, a_bits=16, w_bits=16, acc_bits=64, signed=True, dataflow="os"),
    SystolicSpec(rows=7, cols=1, a_bits=16, w_bits=16, acc_bits=64, signed=False, dataflow="ws"),
    SystolicSpec(rows=8, cols=3, a_bits=8, w_bits=8, acc_bits=32, signed=True, dataflow="ws"),
    SystolicSpec(rows=3, cols=4, a_bits=16, w_bits=16, acc_bits=64, signed=True, dataflow="os",
                 booth=True, csa_accumulate=True),
    SystolicSpec(rows=4, cols=3, a_bits=1, w_bits=1, acc_bits=3, signed=True, dataflow="ws",
                 booth=True, csa_accumulate=True),
    SystolicSpec(rows=2, cols=5, a_bits=7, w_bits=9, acc_bits=64, signed=False, dataflow="ws",
                 booth=True),
    SystolicSpec(rows=5, cols=2, a_bits=9, w_bits=7, acc_bits=11, signed=False, dataflow="os",
                 csa_accumulate=True),
    SystolicSpec(rows=1, cols=1, a_bits=1, w_bits=1, acc_bits=1, signed=True, dataflow="ws",
                 weight_double_buffer=True),
    SystolicSpec(rows=6, cols=3, a_bits=8, w_bits=8, acc_bits=32, signed=True, dataflow="ws",
                 weight_double_buffer=True, booth=True, csa_accumulate=True),
    SystolicSpec(rows=1, cols=1, a_bits=1, w_bits=1, acc_bits=1, signed=False, dataflow="os",
                 output_double_buffer=True),
    SystolicSpec(rows=3, cols=6, a_bits=8, w_bits=8, acc_bits=32, signed=True, dataflow="os",
                 output_double_buffer=True, booth=True, csa_accumulate=True),
]
SPECS = EDGE_SPECS + _random_specs(60, seed=20261127)
#: CI runs the corners and the first 24 random points (three rounds of the dataflow and
#: double-buffer pattern, which repeats every 8); all 60 run with ``pytest -m slow``.
CI_SPECS = range(len(EDGE_SPECS) + 24)


def _check_fold_timing(spec: SystolicSpec, drv, M: int, N: int, K: int) -> None:
    """The GEMM takes the model's cycles; the first fold takes ``fold_cycles`` and every later
    one ends ``fold_interval`` after the one before it (every fold streams the same length)."""
    measured = drv.timing[-1].last_out - drv.timing[0].first_in + 1
    assert measured == gemm_compute_cycles(spec, M, N, K)
    stream = K if spec.dataflow == "os" else M
    assert drv.timing[0].cycles == spec.fold_cycles(stream)
    ends = [t.last_out for t in drv.timing]
    assert np.diff(ends).tolist() == [spec.fold_interval(stream)] * (len(ends) - 1)


@pytest.mark.parametrize("spec", ci_subset(SPECS, CI_SPECS))
def test_lockstep_amaranth(spec: SystolicSpec) -> None:
    rng = np.random.default_rng(zlib.crc32(spec.name.encode()))
    R, C = spec.rows, spec.cols
    shapes = [
        (int(rng.integers(1, 2 * R + 3)), int(rng.integers(1, 2 * C + 3)),
         int(rng.integers(1, 2 * R + 3)))
        for _ in range(2)
    ]
    for M, N, K in shapes:
        A, W = case_operands(spec, Case("grid", M, N, K), rng)
        got, drv = run_gemm_amaranth(spec, A, W, rng)
        np.testing.assert_array_equal(got, reference_gemm(spec, A, W))
        assert drv.check_protocol() == []
        _check_fold_timing(spec, drv, M, N, K)
    M, N, K = shapes[0]
    A, W = case_operands(spec, Case("stalls", M, N, K), rng)
    got, drv = run_gemm_amaranth(spec, A, W, rng, p_idle=0.4, p_stall=0.4)
    np.testing.assert_array_equal(got, reference_gemm(spec, A, W))
    assert drv.check_protocol() == []


def _overlapped_specs(n: int, seed: int, dataflow: str) -> list[SystolicSpec]:
    """Random arrays up to 6 x 6 with the dataflow's overlap option: double-buffered weights
    (WS) or outputs (OS)."""
    rng = np.random.default_rng(seed)
    specs = []
    for _ in range(n):
        a_bits, w_bits = (int(x) for x in rng.integers(1, 17, size=2))
        specs.append(SystolicSpec(
            rows=int(rng.integers(1, 7)), cols=int(rng.integers(1, 7)), a_bits=a_bits,
            w_bits=w_bits, acc_bits=int(rng.integers(1, 65)), signed=bool(rng.integers(0, 2)),
            dataflow=dataflow, weight_double_buffer=dataflow == "ws",
            output_double_buffer=dataflow == "os", booth=bool(rng.integers(0, 2)),
            csa_accumulate=bool(rng.integers(0, 2))))
    return specs


@pytest.mark.parametrize("spec", ci_subset(_overlapped_specs(12, 20261205, "ws"), range(4)))
def test_weight_double_buffer_hides_the_weight_load(spec: SystolicSpec) -> None:
    """Several K and N folds with partial tiles, M below and above the weight load plus the
    token's trip (2*rows + cols - 1): results bit exact, cycles the model's, and fewer than
    the same array without double buffering takes."""
    rng = np.random.default_rng(zlib.crc32(spec.name.encode()))
    R, C = spec.rows, spec.cols
    hidden = 2 * R + C - 1  # fold_interval's floor: load rows beats after the token's trip
    plain = dataclasses.replace(spec, weight_double_buffer=False)
    for M in (int(rng.integers(1, hidden)), hidden, int(rng.integers(hidden + 1, 2 * hidden + 4))):
        N = int(rng.integers(C + 1, 2 * C + 2))
        K = int(rng.integers(R + 1, 3 * R + 1))
        A, W = case_operands(spec, Case("double buffer", M, N, K), rng)
        got, drv = run_gemm_amaranth(spec, A, W, rng)
        np.testing.assert_array_equal(got, reference_gemm(spec, A, W))
        assert drv.check_protocol() == []
        assert len(drv.folds) >= 4
        _check_fold_timing(spec, drv, M, N, K)
        assert gemm_compute_cycles(spec, M, N, K) < gemm_compute_cycles(plain, M, N, K)
    got, drv = run_gemm_amaranth(spec, A, W, rng, p_idle=0.3, p_stall=0.3)
    np.testing.assert_array_equal(got, reference_gemm(spec, A, W))
    assert drv.check_protocol() == []


@pytest.mark.parametrize("spec", ci_subset(_overlapped_specs(12, 20261206, "os"), range(4)))
def test_output_double_buffer_hides_the_drain(spec: SystolicSpec) -> None:
    """Several M and N folds with partial tiles, K below, at and above the wait for row 0 to
    drain (rows + cols - 1): results bit exact, cycles the model's, and fewer than the same
    array without output registers takes; then idle input and heavy back-pressure, under
    which the handovers must wait for the rows to leave."""
    rng = np.random.default_rng(zlib.crc32(spec.name.encode()))
    R, C = spec.rows, spec.cols
    hidden = R + C - 1  # fold_interval's floor: fill_cycles + 1, row 0 of the last fold leaves
    plain = dataclasses.replace(spec, output_double_buffer=False)
    for K in (int(rng.integers(1, hidden + 1)), hidden,
              int(rng.integers(hidden + 1, 2 * hidden + 4))):
        M = int(rng.integers(R + 1, 3 * R + 1))
        N = int(rng.integers(C + 1, 2 * C + 2))
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
@pytest.mark.parametrize("spec", EDGE_SPECS[2:], ids=lambda s: s.name)
def test_extreme_operands(spec: SystolicSpec, extreme: str) -> None:
    rng = np.random.default_rng(7)
    case = Case(extreme, spec.rows + 1, spec.cols + 1, spec.rows + 2, extreme=extreme)
    A, W = case_operands(spec, case, rng)
    got, _ = run_gemm_amaranth(spec, A, W, rng)
    np.testing.assert_array_equal(got, reference_gemm(spec, A, W))


def test_timing_contract_formulas_match_fold_cycles() -> None:
    for spec in SPECS:
        contract = spec.timing_contract()
        for n in (1, 2, 17, 1000):
            env = {"rows": spec.rows, "cols": spec.cols, contract["stream_len"]: n}
            assert eval(contract["fold_cycles"], {}, env) == spec.fold_cycles(n)
            parts = sum(eval(contract[k], {}, env) for k in
                        ("preload_cycles", "fill_cycles", "drain_cycles"))
            assert parts + n == spec.fold_cycles(n)
            assert eval(contract["fold_interval"], {}, env) == spec.fold_interval(n)
