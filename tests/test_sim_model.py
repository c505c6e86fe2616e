"""sim.model / sim.system: totals are sums of per-operator results; GEMMs, attention and
vector work on one or several cores; end-to-end metrics."""

from __future__ import annotations

import dataclasses
import math

import pytest

from hw.spec import load_arch
from mapping import MappingError
from models import ModelError
from models.ops import Attention, Gemm, Vector
from sim.energy import energy_components
from sim.engines import gemm_compute_cycles
from sim.gemm import simulate_gemm
from sim.model import simulate_model
from sim.system import peak_macs_per_cycle, simulate_op


def small_ops() -> list:
    return [
        Vector(name="norm", kind="norm", elems=128 * 512, ops_per_elem=4, count=3),
        Gemm(name="a", M=128, N=256, K=512, count=3),
        Gemm(name="b", M=1, N=1024, K=256, count=2),
        Gemm(name="c", M=128, N=256, K=512, count=1),  # same shape as "a"
        Attention(name="attn", batch=2, heads=8, kv_heads=2, q_len=64, kv_len=64, qk_dim=64,
                  v_dim=64, count=3, q_fmt="int8", kv_fmt="int8"),
    ]


@pytest.mark.parametrize("memory", ["ideal", "real"])
@pytest.mark.parametrize("preset", ["systolic", "systolic-4core", "lut"])
def test_totals_are_sums_of_the_per_op_results(memory, preset):
    arch = load_arch(preset)
    ops = small_ops()
    r = simulate_model(arch, ops, memory=memory, name="toy")
    singles = [simulate_op(arch, op, memory=memory) for op in ops]
    assert r.ops == tuple(singles)
    assert [o.name for o in r.ops] == [op.name for op in ops]
    assert r.cycles == sum(s.cycles for s in singles)
    assert r.compute_cycles == sum(s.compute_cycles for s in singles)
    assert r.cycles == r.compute_cycles + r.stall_cycles
    assert r.macs == sum(s.macs for s in singles)
    assert r.dram_bytes == pytest.approx(sum(s.dram_bytes for s in singles))
    assert r.seconds == pytest.approx(r.cycles / (arch.clock_mhz * 1e6))
    assert tuple(r.energy_breakdown_pj) == energy_components(arch)
    for k in energy_components(arch):
        assert r.energy_breakdown_pj[k] == pytest.approx(
            sum(s.energy_breakdown_pj[k] for s in singles))
    assert r.energy_pj == pytest.approx(sum(r.energy_breakdown_pj.values()), rel=1e-12)
    assert r.utilization == pytest.approx(r.macs / (r.cycles * peak_macs_per_cycle(arch)))
    assert {o.bound for o in r.ops} <= {"compute", "memory"}
    # the same shape is mapped the same way whatever its name and count
    assert r.ops[1].mapping == r.ops[3].mapping
    assert r.ops[1].cycles == pytest.approx(3 * r.ops[3].cycles, abs=3)
    if memory == "ideal":
        assert r.dram_bytes == 0


@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_one_core_gemm_is_the_engine_gemm_in_its_best_orientation(dataflow):
    arch = load_arch("systolic", [f"engine.dataflow={dataflow}"])
    for M, N, K in ((128, 256, 512), (1, 4096, 4096), (300, 7, 90)):
        g = Gemm(name="g", M=M, N=N, K=K, count=2)
        r = simulate_op(arch, g, memory="ideal")
        t = Gemm(name="g", M=N, N=M, K=K, count=2, b_is_weight=False)
        want = min(gemm_compute_cycles(arch.engine, M, N, K),
                   gemm_compute_cycles(arch.engine, N, M, K))
        assert r.engine_cycles == 2 * want
        same = simulate_gemm(arch, t if r.mapping["transposed"] else g, memory="ideal")
        assert r.cycles == same.cycles


def test_wide_and_float_formats_run_in_slices_with_vector_work():
    arch = load_arch("systolic")
    base = simulate_op(arch, Gemm(name="g", M=256, N=256, K=256), memory="ideal")
    fp = simulate_op(arch, Gemm(name="g", M=256, N=256, K=256, a_fmt="fp16", w_fmt="int4",
                                o_fmt="fp32", w_group=128, w_scale_bits=20), memory="ideal")
    # fp16 activations: 12-bit block floating point on an 8-bit signed port: 2 slices
    assert fp.mapping["passes"] == 2
    assert fp.engine_cycles == 2 * base.engine_cycles
    assert fp.vector_ops > 0 and base.vector_ops == 0


def test_runtime_precision_engines_run_narrow_weights_faster():
    arch = load_arch("lut")
    w8 = simulate_op(arch, Gemm(name="g", M=64, N=256, K=512), memory="ideal")
    w2 = simulate_op(arch, Gemm(name="g", M=64, N=256, K=512, w_fmt="int2"), memory="ideal")
    assert w2.mapping["engine_w_bits"] == 2
    assert w2.engine_cycles < w8.engine_cycles / 3
    fixed = load_arch("systolic")
    a = simulate_op(fixed, Gemm(name="g", M=64, N=256, K=512), memory="ideal")
    b = simulate_op(fixed, Gemm(name="g", M=64, N=256, K=512, w_fmt="int2"), memory="ideal")
    assert a.engine_cycles == b.engine_cycles  # a multiplier array sign-extends


def test_cores_split_the_work():
    one = load_arch("systolic")
    four = load_arch("systolic", ["cores=4"])
    g = Gemm(name="g", M=512, N=4096, K=4096)
    r1, r4 = simulate_op(one, g, memory="ideal"), simulate_op(four, g, memory="ideal")
    assert r4.cycles <= math.ceil(r1.cycles / 4) + 64
    assert r4.mapping["cores_used"] == 4


def test_global_buffer_cuts_dram_traffic_of_the_shared_operand():
    no_gb = load_arch("systolic", ["cores=4", "dram.bandwidth_gb_per_s=51.2"])
    gb = load_arch("systolic-4core")
    g = Gemm(name="g", M=256, N=512, K=1024)  # 1.25 MiB of operands: fits the 2 MiB half
    a, b = simulate_op(no_gb, g), simulate_op(gb, g)
    compulsory = 256 * 1024 + 1024 * 512 + 256 * 512 * 4
    assert b.dram_bytes == compulsory < a.dram_bytes
    assert b.energy_breakdown_pj["global_buffer"] > 0
    assert "global_buffer" not in a.energy_breakdown_pj


def test_attention_causal_sparse_paged():
    arch = load_arch("systolic")
    base = Attention(name="a", batch=1, heads=8, kv_heads=8, q_len=512, kv_len=512, qk_dim=64,
                     v_dim=64, causal=False, q_fmt="int8", kv_fmt="int8")
    full = simulate_op(arch, base)
    causal = simulate_op(arch, dataclasses.replace(base, causal=True))
    assert causal.engine_cycles < full.engine_cycles
    assert causal.macs < full.macs
    dec = dataclasses.replace(base, q_len=1, kv_len=4096)
    sparse = simulate_op(arch, dataclasses.replace(dec, sparse_block=64, sparse_topk=8))
    assert sparse.dram_bytes < simulate_op(arch, dec).dram_bytes
    paged = simulate_op(arch, dataclasses.replace(dec, kv_len=4097, page_tokens=256))
    plain = simulate_op(arch, dataclasses.replace(dec, kv_len=4097))
    assert paged.dram_bytes > plain.dram_bytes  # whole pages plus the page table


def test_kv4_moves_fewer_bytes_than_kv8():
    arch = load_arch("systolic")
    kw = {"name": "a", "batch": 4, "heads": 32, "kv_heads": 8, "q_len": 1, "kv_len": 4096,
          "qk_dim": 128, "v_dim": 128, "q_fmt": "int8", "kv_group": 32, "kv_scale_bits": 32}
    kv8 = simulate_op(arch, Attention(kv_fmt="int8", **kw))
    kv4 = simulate_op(arch, Attention(kv_fmt="int4", **kw))
    assert kv4.dram_bytes < 0.6 * kv8.dram_bytes


def test_model_json_and_metrics():
    arch = load_arch("systolic")
    r = simulate_model(arch, small_ops(), name="toy", phase="decode", batch=2, seq=64)
    d = r.to_dict()
    assert [op["name"] for op in d["ops"]] == ["norm", "a", "b", "c", "attn"]
    for key in ("cycles", "compute_cycles", "stall_cycles", "utilization", "energy_pj",
                "seconds", "breakdown", "mapping", "arch", "engine", "ops", "ttft_s", "tpot_s",
                "tokens_per_s", "energy_per_token_pj"):
        assert key in d
    assert d["ttft_s"] is None and d["tpot_s"] == d["seconds"]
    assert d["tokens_per_s"] == pytest.approx(2 / d["seconds"])
    assert d["energy_per_token_pj"] == pytest.approx(d["energy_pj"] / 2)
    for op in d["ops"]:
        assert op["bound"] in ("compute", "memory")
        assert set(op) >= {"name", "kind", "count", "cycles", "seconds", "energy_pj", "bound"}
    pre = simulate_model(arch, small_ops(), phase="prefill", batch=2, seq=64)
    assert pre.ttft_s == pre.seconds and pre.tokens == 128


def test_errors_are_one_line():
    with pytest.raises(ModelError, match=r"^ops: the workload has no operators$"):
        simulate_model(load_arch("systolic"), [])
    with pytest.raises(TypeError, match=r"^ops\[1\]: expected a models\.ops operator, got str$"):
        simulate_model(load_arch("systolic"), [small_ops()[1], "q_proj"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"^op: expected a models\.ops Gemm, Attention or "
                       r"Vector, got str$"):
        simulate_op(load_arch("systolic"), "q_proj")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^arch: expected an ArchSpec \(hw\.spec\.load_arch\), "
                       r"got str$"):
        simulate_op("systolic", small_ops()[0])  # type: ignore[arg-type]
    no_vec = dataclasses.replace(load_arch("systolic"), vector=None)
    with pytest.raises(MappingError, match=r"^vector: norm \(norm\) needs a vector unit; "):
        simulate_op(no_vec, small_ops()[0])
    tiny = load_arch("systolic", ["o_buffer.capacity_bytes=256"])
    with pytest.raises(MappingError, match=r"^a: no attention tile fits the buffers"):
        simulate_op(tiny, dataclasses.replace(small_ops()[4], name="a"))


@pytest.mark.parametrize("preset", ["systolic", "systolic-4core", "npu-hbm"])
def test_the_energy_objective_never_costs_more_energy(preset):
    arch = load_arch(preset)
    ops = [Gemm(name="a", M=4, N=14336, K=4096, count=2, w_fmt="int4", w_group=128,
                w_scale_bits=20),
           Gemm(name="b", M=300, N=1000, K=2000)]
    for op in ops:
        lat = simulate_op(arch, op, objective="latency")
        en = simulate_op(arch, op, objective="energy")
        assert en.energy_pj <= lat.energy_pj * (1 + 1e-12)
        assert lat.cycles <= en.cycles


def test_dram_energy_per_byte_overrides_the_table():
    base = load_arch("systolic")
    hbm = load_arch("systolic", ["dram.energy_pj_per_byte=31.2"])
    g = Gemm(name="g", M=64, N=4096, K=4096)
    a, b = simulate_op(base, g), simulate_op(hbm, g)
    assert a.dram_bytes == b.dram_bytes
    assert b.energy_breakdown_pj["dram"] == pytest.approx(31.2 * b.dram_bytes)
    assert a.energy_breakdown_pj["dram"] > b.energy_breakdown_pj["dram"]
