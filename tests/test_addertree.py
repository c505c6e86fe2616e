"""The multiplier-adder tree generator: amaranth.sim lock-step over a random grid, Verilator
points, spec.

Every grid point runs a random GEMM (several folds along every folded dimension, partial lane
blocks, a partial last reduction chunk) and checks the results bit for bit against numpy and
the cycles against the cycle model, per GEMM and per fold; one more run per point injects idle
input cycles and output back-pressure and checks the results only. Both dataflows and the
options (``booth``, ``compress``) take every combination across the grid.
"""

from __future__ import annotations

import re
import zlib

import numpy as np
import pytest
from lockstep import ci_subset, verify_lockstep

from hw.emit import render
from hw.spec import SpecError, engine_from_dict
from hw.spec.addertree import AdderTreeSpec
from sim.engines.addertree import gemm_compute_cycles, gemm_folds
from sim.verify.amaranth_bench import run_gemm_amaranth
from sim.verify.driver import Case, case_operands, reference_gemm


def _random_specs(n: int, seed: int) -> list[AdderTreeSpec]:
    rng = np.random.default_rng(seed)
    specs = []
    for i in range(n):
        a_bits, w_bits = (int(x) for x in rng.integers(1, 17, size=2))
        while True:  # at most 24 multipliers, so that amaranth.sim stays quick
            lanes, k = (int(x) for x in rng.integers(1, (9, 8)))
            if lanes * k <= 24:
                break
        specs.append(AdderTreeSpec(
            lanes=lanes, k=k, a_bits=a_bits, w_bits=w_bits,
            # Half the points get an accumulator too narrow for the sums: results must wrap.
            acc_bits=int(rng.integers(1, a_bits + w_bits + 1)) if i % 2 else
            int(rng.integers(a_bits + w_bits, 65)),
            signed=bool(rng.integers(0, 2)),
            booth=bool(i // 2 % 2), compress=bool(i // 4 % 2),
            dataflow=("os", "ws")[i // 8 % 2 if i < 16 else int(rng.integers(0, 2))],
        ))
    return specs


EDGE_SPECS = [
    AdderTreeSpec(lanes=1, k=1, a_bits=1, w_bits=1, acc_bits=1, signed=True),
    AdderTreeSpec(lanes=1, k=1, a_bits=1, w_bits=1, acc_bits=1, signed=False, booth=True,
                  compress=True, dataflow="ws"),
    AdderTreeSpec(lanes=5, k=3, a_bits=16, w_bits=16, acc_bits=64, signed=True, compress=True),
    AdderTreeSpec(lanes=3, k=7, a_bits=16, w_bits=16, acc_bits=64, signed=False, booth=True,
                  dataflow="ws"),
    AdderTreeSpec(lanes=4, k=4, a_bits=8, w_bits=8, acc_bits=32, signed=True, booth=True,
                  compress=True),
]
SPECS = EDGE_SPECS + _random_specs(28, seed=20261128)
#: CI runs the corners and the first 16 random points (one period of the option pattern); all
#: of them run with ``pytest -m slow``.
CI_SPECS = range(len(EDGE_SPECS) + 16)


@pytest.mark.parametrize("spec", ci_subset(SPECS, CI_SPECS))
def test_lockstep_amaranth(spec: AdderTreeSpec) -> None:
    rng = np.random.default_rng(zlib.crc32(spec.name.encode()))
    # Several folds along every folded dimension (a partial last lane block) and a partial
    # reduction chunk (OS) or reduction fold (WS).
    N = int(rng.integers(spec.lanes, 2 * spec.lanes + 2))
    if spec.dataflow == "os":
        M, K = int(rng.integers(1, 4)), int(rng.integers(1, 3 * spec.k + 2))
    else:
        M, K = int(rng.integers(1, 2 * spec.k + 3)), int(rng.integers(spec.k, 2 * spec.k + 2))
    stream = K if spec.dataflow == "os" else M
    A, W = case_operands(spec, Case("grid", M, N, K), rng)
    got, drv = run_gemm_amaranth(spec, A, W, rng)
    np.testing.assert_array_equal(got, reference_gemm(spec, A, W))
    assert drv.check_protocol() == []
    measured = drv.timing[-1].last_out - drv.timing[0].first_in + 1
    assert measured == gemm_compute_cycles(spec, M, N, K) == gemm_folds(spec, M, N, K).cycles
    assert [t.cycles for t in drv.timing] == [spec.fold_cycles(stream)] * len(drv.folds)
    # Idle input cycles and output back-pressure: results still exact, protocol kept.
    A, W = case_operands(spec, Case("stalls", M, N, K), rng)
    got, drv = run_gemm_amaranth(spec, A, W, rng, p_idle=0.4, p_stall=0.4)
    np.testing.assert_array_equal(got, reference_gemm(spec, A, W))
    assert drv.check_protocol() == []


@pytest.mark.parametrize("extreme", ["min", "max"])
@pytest.mark.parametrize("spec", EDGE_SPECS[1:], ids=lambda s: s.name)
def test_extreme_operands(spec: AdderTreeSpec, extreme: str) -> None:
    rng = np.random.default_rng(7)
    case = Case(extreme, 3, spec.lanes + 1, 2 * spec.k + 1, extreme=extreme)
    A, W = case_operands(spec, case, rng)
    got, _ = run_gemm_amaranth(spec, A, W, rng)
    np.testing.assert_array_equal(got, reference_gemm(spec, A, W))


def test_options_change_the_hardware() -> None:
    """booth recodes the activations once for all lanes; compress adds same-weight planes."""
    base = dict(lanes=2, k=2, a_bits=4, w_bits=3, acc_bits=10)
    plain = render(AdderTreeSpec(**base))[0]
    booth = render(AdderTreeSpec(**base, booth=True))[0]
    compress = render(AdderTreeSpec(**base, compress=True))[0]
    both = render(AdderTreeSpec(**base, booth=True, compress=True))[0]
    # signals of the lane's tree module (hw.hier): ``tree`` the OS tree's sum, ``plane<j>_s``
    # the sum word of digit position j's plane
    tree = re.compile(r"\btree\b")
    assert tree.search(plain) and "a1_d0" not in plain and "a1_bits" not in plain
    assert "a1_d0" in booth and "neg_corr" in booth and "plane1_" not in booth
    assert "a1_bits" in compress and "plane3_s" in compress and not tree.search(compress)
    assert "a1_d0" in both and "plane1_s" in both and "plane3_s" not in both


def test_timing_contract_formulas_match_fold_cycles() -> None:
    for spec in SPECS:
        contract = spec.timing_contract()
        for n in (1, 2, spec.k, spec.k + 1, 17, 1000):
            env = {"lanes": spec.lanes, "k": spec.k, contract["stream_len"]: n}
            assert eval(contract["fold_cycles"], {}, env) == spec.fold_cycles(n)
            parts = sum(eval(contract[key], {}, env) for key in
                        ("preload_cycles", "stream_cycles", "fill_cycles", "drain_cycles"))
            assert parts == spec.fold_cycles(n)
            assert eval(contract["stream_cycles"], {}, env) == spec.stream_cycles(n)
        assert spec.macs_per_cycle == spec.lanes * spec.k
        u = spec.unrolling()
        if spec.dataflow == "os":
            assert (contract["stream_len"], u.m, u.n, u.k, u.stream) == ("K", 1, spec.lanes,
                                                                         None, "k")
            assert u.folds(5, 2 * spec.lanes + 1, 9) == 5 * 3
        else:
            assert (contract["stream_len"], u.m, u.n, u.k, u.stream) == ("M", None, spec.lanes,
                                                                         spec.k, "m")
            assert u.folds(5, 2 * spec.lanes + 1, 2 * spec.k + 1) == 3 * 3


def test_names_are_unique_per_parameter_set() -> None:
    variants = {AdderTreeSpec(lanes=2, k=2, booth=b, compress=c, signed=s, dataflow=d).name
                for b in (False, True) for c in (False, True) for s in (False, True)
                for d in ("os", "ws")}
    assert len(variants) == 16
    assert all(name.replace("_", "").isalnum() for name in variants)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"lanes": 0, "k": 2}, r"^engine\.lanes: must be >= 1 \(got 0\)$"),
        ({"lanes": 257, "k": 2}, r"^engine\.lanes: must be <= 256 \(got 257\)$"),
        ({"lanes": 2, "k": 65}, r"^engine\.k: must be <= 64 \(got 65\)$"),
        ({"lanes": 2}, r"^engine\.k: required but missing$"),
        ({"lanes": 2, "k": 2, "w_bits": 0}, r"^engine\.w_bits: must be >= 1 \(got 0\)$"),
        ({"lanes": 2, "k": 2, "acc_bits": 65}, r"^engine\.acc_bits: must be <= 64 \(got 65\)$"),
        ({"lanes": 2, "k": 2, "compress": 1},
         r"^engine\.compress: input should be a valid boolean \(got 1\)$"),
        ({"lanes": 2, "k": 2, "rows": 4},
         r"^engine\.rows: unknown key; remove it or check its spelling$"),
        ({"lanes": 2, "k": 2, "dataflow": "is"},
         r"^engine\.dataflow: must be one of 'os' or 'ws' \(got 'is'\)$"),
    ],
)
def test_spec_errors_name_the_field(data, message) -> None:
    with pytest.raises(SpecError, match=message) as info:
        engine_from_dict({"kind": "addertree", **data})
    assert "\n" not in str(info.value)


# -- the emitted Verilog on Verilator (slow) -------------------------------------------------

RTL_POINTS = [
    AdderTreeSpec(lanes=5, k=3, a_bits=7, w_bits=4, acc_bits=10, signed=True, booth=True,
                  compress=True),
    AdderTreeSpec(lanes=3, k=1, a_bits=16, w_bits=16, acc_bits=64, signed=False, dataflow="ws"),
    AdderTreeSpec(lanes=2, k=6, a_bits=8, w_bits=8, acc_bits=32, signed=False, compress=True,
                  dataflow="ws"),
]


@pytest.mark.rtl
@pytest.mark.parametrize("spec", ci_subset(RTL_POINTS, [0, 2]))
def test_verilog_lockstep(spec: AdderTreeSpec, tmp_path) -> None:
    verify_lockstep(spec, tmp_path)
