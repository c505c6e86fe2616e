"""sim.model: totals are sums of per-operator results; whole-LLM speed."""

from __future__ import annotations

import time

import pytest

from hw.spec import load_arch
from models import ModelError
from models.llm import OP_NAMES, load_model, lower
from models.ops import Gemm
from sim.energy import ENERGY_COMPONENTS
from sim.engines import gemm_compute_cycles
from sim.gemm import clear_caches, simulate_gemm
from sim.model import simulate_model


def small_ops() -> list[Gemm]:
    return [
        Gemm(name="a", M=128, N=256, K=512, count=3),
        Gemm(name="b", M=1, N=1024, K=256, count=2),
        Gemm(name="c", M=128, N=256, K=512, count=1),  # same shape as "a"
        Gemm(name="kv", M=64, N=300, K=64, count=8, b_is_weight=False),
    ]


@pytest.mark.parametrize("memory", ["ideal", "real"])
@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_totals_are_sums_of_the_per_op_results(memory, dataflow):
    arch = load_arch("systolic", [f"engine.dataflow={dataflow}"])
    ops = small_ops()
    r = simulate_model(arch, ops, memory=memory, name="toy")
    singles = [simulate_gemm(arch, op, memory=memory) for op in ops]
    assert r.ops == tuple(singles)
    assert [o.name for o in r.ops] == [op.name for op in ops]
    assert r.cycles == sum(s.cycles for s in singles)
    assert r.compute_cycles == sum(s.compute_cycles for s in singles)
    assert r.stall_cycles == sum(s.stall_cycles for s in singles)
    assert r.cycles == r.compute_cycles + r.stall_cycles
    assert r.macs == sum(op.M * op.N * op.K * op.count for op in ops)
    assert r.dram_bytes == pytest.approx(sum(s.dram_bytes for s in singles))
    assert r.seconds == pytest.approx(sum(s.seconds for s in singles))
    for k in ENERGY_COMPONENTS:
        assert r.energy_breakdown_pj[k] == pytest.approx(
            sum(s.energy_breakdown_pj[k] for s in singles))
    assert r.energy_pj == sum(r.energy_breakdown_pj.values())
    assert r.energy_pj == pytest.approx(sum(s.energy_pj for s in singles))
    assert r.utilization == pytest.approx(r.macs / (r.cycles * arch.engine.macs_per_cycle))
    assert {o.bound for o in r.ops} <= {"compute", "memory"}
    # the same shape is mapped the same way whatever its name and count
    assert r.ops[0].mapping == r.ops[2].mapping
    assert r.ops[0].cycles == 3 * r.ops[2].cycles
    if memory == "ideal":
        assert r.compute_cycles == sum(
            gemm_compute_cycles(arch.engine, op.M, op.N, op.K) * op.count for op in ops)
        assert r.stall_cycles == 0


def test_model_json_has_the_per_op_list():
    arch = load_arch("systolic")
    d = simulate_model(arch, small_ops(), name="toy").to_dict()
    assert [op["name"] for op in d["ops"]] == ["a", "b", "c", "kv"]
    for key in ("cycles", "compute_cycles", "stall_cycles", "utilization", "energy_pj",
                "seconds", "breakdown", "mapping", "arch", "engine", "ops"):
        assert key in d
    for op in d["ops"]:
        assert op["bound"] in ("compute", "memory")
        assert set(op) >= {"name", "count", "cycles", "seconds", "energy_pj", "bound"}


def test_an_empty_workload_is_an_error():
    with pytest.raises(ModelError, match=r"^ops: the workload has no operators$"):
        simulate_model(load_arch("systolic"), [])
    with pytest.raises(TypeError, match=r"^ops\[1\]: expected a models\.ops\.Gemm, got str$"):
        simulate_model(load_arch("systolic"), [small_ops()[0], "q_proj"])  # type: ignore[list-item]


def _llama_seconds(name: str, dataflow: str) -> float:
    """Wall time of prefill + decode of ``name`` from cold caches (best of two)."""
    arch = load_arch("systolic", [f"engine.dataflow={dataflow}"])
    cfg = load_model(name)
    phases = [lower(cfg, phase=p, batch=1, seq=2048) for p in ("prefill", "decode")]
    best = float("inf")
    for _ in range(2):
        clear_caches()
        t0 = time.perf_counter()
        results = [simulate_model(arch, ops, name=cfg.name) for ops in phases]
        best = min(best, time.perf_counter() - t0)
        assert [o.name for o in results[0].ops] == list(OP_NAMES)
    return best


@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_llama_2_7b_prefill_and_decode_take_under_100_ms(dataflow):
    seconds = _llama_seconds("llama-2-7b", dataflow)
    assert seconds < 0.1, f"llama-2-7b prefill+decode took {seconds * 1e3:.1f} ms"


def test_llama_2_70b_prefill_and_decode_take_under_100_ms():
    seconds = _llama_seconds("llama-2-70b", "os")
    assert seconds < 0.1, f"llama-2-70b prefill+decode took {seconds * 1e3:.1f} ms"


def test_decode_is_memory_bound_and_prefill_less_so():
    arch = load_arch("systolic")
    cfg = load_model("llama-2-7b")
    dec = simulate_model(arch, lower(cfg, phase="decode", batch=1, seq=512))
    pre = simulate_model(arch, lower(cfg, phase="prefill", batch=1, seq=512))
    assert all(op.bound == "memory" for op in dec.ops)
    assert pre.utilization > dec.utilization
