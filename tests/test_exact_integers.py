"""Exact integers (docs/llm_simulator.md): every size and count up to 2^40 gives exact,
non-negative cycles and bytes (Python ints), or exit status 2 with one line naming the flag and
the limit; never a negative, wrapped or float count, never a numpy warning (the suite turns
warnings into errors).

Sizes are drawn log-uniformly from [1, 2^40] with fixed seeds, on a single-core engine preset,
the multi-core ``systolic-4core``, a run-time-precision preset (``bitslice``) and a GPU
(``h100``); through the library (``sim.system.simulate_op``, ``sim.model.simulate_model``) and
the command line (``sim.cli.main``).
"""

from __future__ import annotations

import dataclasses
import json
import random
from fractions import Fraction

import pytest
from cli_run import run

from hw.spec import load_arch
from mapping import best_index, candidates, search
from models import ModelError
from models.llm import load_model, lower
from models.ops import MAX_SIZE, Attention, Gemm, op_macs
from sim.attention import MAX_QUERY_ROWS
from sim.engines import gemm_compute_cycles
from sim.errors import INPUT_ERRORS
from sim.gemm import gemm_cost, tiled_compute_cycles
from sim.memory import memory_traffic
from sim.model import simulate_model
from sim.system import peak_macs_per_cycle, simulate_op

PRESETS = ("systolic", "systolic-4core", "bitslice", "h100")
#: Reported counts that must be exact, non-negative Python ints.
OP_COUNTS = ("cycles", "compute_cycles", "stall_cycles", "engine_cycles", "vector_cycles",
             "macs", "dram_bytes")
CORE_COUNTS = ("cycles", "compute_cycles", "stall_cycles", "sram_stall_cycles",
               "dram_stall_cycles", "macs", "dram_a_bytes", "dram_w_bytes", "dram_o_bytes")
CASES = 8  # random GEMMs per preset and test


def log_uniform(rng: random.Random, top: int = MAX_SIZE) -> int:
    """An integer in [1, top], log-uniform."""
    return min(top, max(1, round(2 ** rng.uniform(0, top.bit_length() - 1))))


def formats(arch) -> dict[str, str]:
    if arch.gpu is not None:
        return {"a_fmt": "bf16", "w_fmt": "bf16", "o_fmt": "fp32"}
    p = "int" if arch.engine.signed else "uint"
    return {"a_fmt": f"{p}{arch.engine.a_bits}", "w_fmt": f"{p}{arch.engine.w_bits}",
            "o_fmt": f"int{arch.engine.acc_bits}"}


def fixed_precision(arch) -> bool:
    """Utilization is at most 1 (the peak holds at every operand width)."""
    return arch.gpu is not None or not arch.engine.runtime_precision


def check_counts(obj, fields: tuple[str, ...]) -> None:
    for f in fields:
        v = getattr(obj, f)
        assert type(v) is int and v >= 0, (f, v)


def check_op(arch, r) -> None:
    """The exactness contract of one operator's result."""
    check_counts(r, OP_COUNTS)
    assert r.cycles == r.compute_cycles + r.stall_cycles
    assert r.macs == op_macs(r.op)
    assert r.energy_pj >= 0 and all(v >= 0 for v in r.energy_breakdown_pj.values())
    assert r.seconds >= 0
    if r.macs:
        assert r.utilization > 0
        if fixed_precision(arch):
            assert r.utilization <= 1
    if r.core is not None:  # one core's share, as the engine model sees it
        c = r.core
        check_counts(c, CORE_COUNTS)
        assert c.cycles == c.compute_cycles + c.stall_cycles
        assert c.stall_cycles == c.sram_stall_cycles + c.dram_stall_cycles
        assert type(c.mapping.folds) is int and c.mapping.folds >= 1


def random_gemm(rng: random.Random, arch, **extra: int) -> Gemm:
    M, N, K = log_uniform(rng), log_uniform(rng), log_uniform(rng)
    return Gemm(name="g", M=M, N=N, K=K, **formats(arch), **extra)


# -- the library -----------------------------------------------------------------------------


@pytest.mark.parametrize("preset", PRESETS)
def test_random_gemms_give_exact_cycles_and_bytes(preset):
    arch = load_arch(preset)
    rng = random.Random(f"gemm {preset}")
    for _ in range(CASES):
        g = random_gemm(rng, arch)
        check_op(arch, simulate_op(arch, g))


@pytest.mark.parametrize("preset", PRESETS)
def test_count_instances_cost_exactly_count_times_one(preset):
    arch = load_arch(preset)
    rng = random.Random(f"count {preset}")
    for _ in range(CASES // 2):
        g = random_gemm(rng, arch)
        count = log_uniform(rng)
        one = simulate_op(arch, g)
        many = simulate_op(arch, Gemm(name="g", M=g.M, N=g.N, K=g.K, count=count,
                                      **formats(arch)))
        check_op(arch, many)
        for f in OP_COUNTS:
            assert getattr(many, f) == count * getattr(one, f), f


@pytest.mark.parametrize("preset", ["systolic", "bitslice"])
def test_ideal_memory_on_one_core_is_the_engines_fold_count_exactly(preset):
    """Operands on chip: the faster orientation's untiled fold model, any size (the engine
    runs the auto formats at its own widths: one pass, no rescaling)."""
    arch = load_arch(preset)
    spec = arch.engine
    rng = random.Random(f"ideal {preset}")
    for _ in range(CASES):
        g = random_gemm(rng, arch)
        r = simulate_op(arch, g, memory="ideal")
        check_op(arch, r)
        expected = min(gemm_compute_cycles(spec, g.M, g.N, g.K),
                       gemm_compute_cycles(spec, g.N, g.M, g.K))
        assert r.cycles == r.compute_cycles == expected
        assert r.stall_cycles == 0 and r.dram_bytes == 0
        real = simulate_op(arch, g)
        assert real.compute_cycles >= expected  # tiling only adds fill and drain


@pytest.mark.parametrize(("preset", "overrides"), [
    ("systolic", []), ("bitslice", []),
    ("lut", ["engine.w_bits=2"]),  # 2 weight planes per group of 4: half a cycle per element
    ("systolic", ["engine.dataflow=ws", "a_buffer.double_buffered=false"]),
    ("cube", ["dram.latency_ns=0"]),
])
def test_every_candidate_is_ranked_as_it_evaluates_exactly(preset, overrides):
    """The float64 ranking of the candidates (stacked over tiles and loop orders) and the
    exact evaluation of one mapping are the same closed form: for every candidate of random
    GEMMs (a sample of each set, every loop order), equal compute cycles, traffic and stalls
    within float64 rounding (shapes below 2^53), the exact one in ints and fractions only
    (scaled formats give fractional bits per element). The mapping's timeline (the stalls
    ``tpe sim gemm`` reports for it) changes only the DRAM stalls, to an exact number too."""
    arch = load_arch(preset, overrides)
    spec = arch.engine
    rng = random.Random(f"agree {preset} {overrides}")
    for _ in range(CASES):
        scales = rng.choice([{}, {"w_group": 128, "w_scale_bits": 32, "a_scale_bits": 16}])
        g = Gemm(name="g", M=log_uniform(rng, 1 << 14), N=log_uniform(rng, 1 << 14),
                 K=log_uniform(rng, 1 << 14), **formats(arch), **scales)
        cands = candidates(g, arch)
        chosen = cands.mapping(best_index(gemm_cost(g, arch, cands), "latency"), arch)
        assert chosen == search(g, arch, gemm_cost)
        grid = cands.fold_grid(spec.unrolling())
        float_compute = tiled_compute_cycles(spec, g.M, g.N, g.K, *cands.tiles_f,
                                             grid=grid, cands=cands)
        rows = rng.sample(range(len(cands)), min(len(cands), 12))
        for memory in ("real", "ideal"):
            approx = memory_traffic(arch, g, cands, float_compute, memory=memory)
            for i in rows:
                m = cands.mapping(i, arch)
                exact_compute = tiled_compute_cycles(spec, g.M, g.N, g.K, m.tile_m, m.tile_n,
                                                     m.tile_k)
                assert type(exact_compute) is int
                assert exact_compute == cands.flat(float_compute)[i]
                exact = memory_traffic(arch, g, m, exact_compute, memory=memory,
                                       timeline=False)
                timed = memory_traffic(arch, g, m, exact_compute, memory=memory)
                assert type(timed.dram_stall_cycles) in (int, Fraction)
                assert type(timed.stall_cycles) is int
                assert all(getattr(timed, f.name) == getattr(exact, f.name)
                           for f in dataclasses.fields(exact) if f.name != "dram_stall_cycles")
                for f in dataclasses.fields(exact):
                    x = getattr(exact, f.name)
                    assert type(x) in (int, Fraction), (f.name, x)
                    assert float(x) == pytest.approx(getattr(approx, f.name)[i],
                                                     rel=1e-12, abs=1e-9), (f.name, i)
                assert type(exact.stall_cycles) is int
                assert abs(exact.stall_cycles - approx.stall_cycles[i]) <= 1


@pytest.mark.parametrize("preset", PRESETS)
def test_random_attention_is_exact_or_refused_by_its_limit(preset):
    arch = load_arch(preset)
    rng = random.Random(f"attention {preset}")
    for _ in range(CASES // 2):
        kv_heads = log_uniform(rng, 1 << 6)
        kv_len = log_uniform(rng)
        att = Attention(name="attention", batch=log_uniform(rng), heads=kv_heads * 2,
                        kv_heads=kv_heads, q_len=log_uniform(rng, kv_len), kv_len=kv_len,
                        qk_dim=128, v_dim=128)
        rows = att.q_len * att.group_size
        try:
            r = simulate_op(arch, att)
        except INPUT_ERRORS as err:
            assert arch.gpu is None and rows > MAX_QUERY_ROWS, err
            assert str(err).startswith("attention.q_len: ") and "2^22" in str(err)
            continue
        assert arch.gpu is not None or rows <= MAX_QUERY_ROWS
        check_op(arch, r)


@pytest.mark.parametrize("preset", ["systolic-4core", "h100"])
def test_random_model_passes_are_exact_or_refused_naming_the_field(preset):
    arch = load_arch(preset)
    cfg = load_model("llama-2-7b")
    quant = "bf16" if arch.gpu is not None else "w8a8"
    rng = random.Random(f"model {preset}")
    outcomes = set()
    for phase in ("prefill", "decode") * 4:
        batch, seq = log_uniform(rng), log_uniform(rng)
        try:
            ops = lower(cfg, phase=phase, batch=batch, seq=seq, quant=quant)
        except ModelError as err:
            if seq + (phase == "decode") > cfg.max_position_embeddings:  # the model's own limit
                assert str(err).startswith("seq: "), err
            else:
                assert phase == "prefill" and batch * seq > MAX_SIZE
                assert str(err).startswith("batch x seq: ") and "2^40" in str(err)
            outcomes.add("refused")
            continue
        r = simulate_model(arch, ops, phase=phase, batch=batch, seq=seq)
        for op in r.ops:
            check_op(arch, op)
        for f in ("cycles", "compute_cycles", "stall_cycles", "macs", "dram_bytes"):
            v = getattr(r, f)
            assert type(v) is int and v >= 0 and v == sum(getattr(o, f) for o in r.ops), f
        assert r.cycles == r.compute_cycles + r.stall_cycles
        assert type(r.kv_cache_bytes) is int and r.energy_pj >= 0
        outcomes.add("ran")
    assert outcomes == {"ran", "refused"}  # the seed exercises both


def test_sizes_above_the_limit_are_refused_by_the_library_naming_the_field():
    with pytest.raises(ModelError, match=r"^g\.K: 1,099,511,627,777 exceeds 2\^40"):
        Gemm(name="g", M=1, N=1, K=MAX_SIZE + 1)
    with pytest.raises(ModelError, match=r"^a\.kv_len: .* exceeds 2\^40"):
        Attention(name="a", batch=1, heads=1, kv_heads=1, q_len=1, kv_len=2 * MAX_SIZE,
                  qk_dim=8, v_dim=8)
    with pytest.raises(ModelError, match=r"^g\.count: .* exceeds 2\^40"):
        Gemm(name="g", M=1, N=1, K=1, count=MAX_SIZE + 1)


# -- the command line ------------------------------------------------------------------------



def check_json_counts(d: dict) -> None:
    for f in ("cycles", "compute_cycles", "stall_cycles", "engine_cycles", "vector_cycles",
              "macs", "dram_bytes"):
        assert type(d[f]) is int and d[f] >= 0, (f, d[f])
    assert d["cycles"] == d["compute_cycles"] + d["stall_cycles"]
    if "core" in d:
        c = d["core"]
        for f in ("cycles", "compute_cycles", "stall_cycles", "sram_stall_cycles",
                  "dram_stall_cycles", "macs"):
            assert type(c[f]) is int and c[f] >= 0, (f, c[f])
        assert all(type(v) is int and v >= 0 for v in c["dram_bytes"].values())
        assert c["cycles"] == c["compute_cycles"] + c["stall_cycles"]


@pytest.mark.parametrize("preset", PRESETS)
def test_cli_random_gemms_print_exact_ints_or_exit_2_naming_the_flag(capsys, preset):
    arch = load_arch(preset)
    rng = random.Random(f"cli {preset}")
    for i in range(CASES):
        dims = {"--M": log_uniform(rng), "--N": log_uniform(rng), "--K": log_uniform(rng),
                "--count": log_uniform(rng)}
        over = None
        if i % 2:  # every other case: one flag past the limit
            over = rng.choice(sorted(dims))
            dims[over] = MAX_SIZE + log_uniform(rng)
        argv = ["sim", "gemm", "--arch", preset, "--json"]
        for flag, v in dims.items():
            argv += [flag, str(v)]
        code, out, err = run(capsys, argv)
        if over is not None:
            assert code == 2 and out == ""
            assert err.startswith(f"tpe: error: {over}: {dims[over]:,} exceeds 2^40 = "
                                  f"{MAX_SIZE:,}"), err
            assert err.count("\n") == 1
            continue
        assert code == 0, err
        d = json.loads(out)
        check_json_counts(d)
        assert d["macs"] == dims["--M"] * dims["--N"] * dims["--K"] * dims["--count"]
        if fixed_precision(arch):
            assert 0 < d["utilization"] <= 1
        assert d["cycles"] % dims["--count"] == 0  # count times one instance


def attention_argv(**flags: int) -> list[str]:
    values = {"batch": 1, "heads": 2, "kv_heads": 1, "q_len": 1, "kv_len": 16, "head_dim": 64}
    values.update(flags)
    argv = ["sim", "attention", "--arch", "systolic"]
    for name, v in values.items():
        argv += [f"--{name.replace('_', '-')}", str(v)]
    return argv


def test_cli_attention_and_model_flags_past_the_limit_exit_2_naming_them(capsys):
    for name in ("batch", "kv_len", "head_dim", "layers", "v_dim"):
        code, out, err = run(capsys, attention_argv(**{name: MAX_SIZE + 1}))
        flag = f"--{name.replace('_', '-')}"
        assert code == 2 and err.startswith(f"tpe: error: {flag}: "), err
        assert "2^40" in err
    code, out, err = run(capsys, ["sim", "model", "--arch", "systolic", "--model", "llama-2-7b",
                                  "--phase", "decode", "--batch", str(MAX_SIZE + 1),
                                  "--seq", "16"])
    assert code == 2 and err.startswith("tpe: error: --batch: ") and "2^40" in err
    q_len = MAX_QUERY_ROWS // 2 + 1  # two query heads per KV head: just past the query rows
    code, out, err = run(capsys, attention_argv(q_len=q_len, kv_len=q_len))
    assert code == 2 and err.startswith("tpe: error: attention.q_len: ") and "(--q-len" in err
    code, out, err = run(capsys, attention_argv(q_len=q_len - 1, kv_len=q_len))
    assert code == 0 and out.startswith("attention ("), err  # at the limit it runs


# -- the commands that used to print warnings, zero or negative counts -------------------------


def test_regression_m_past_the_limit_exits_2_naming_it(capsys):
    code, out, err = run(capsys, ["sim", "gemm", "--arch", "systolic", "--M", "99999999999999",
                                  "--N", "99999999", "--K", "99999999"])
    assert code == 2 and out == ""
    assert err == (f"tpe: error: --M: 99,999,999,999,999 exceeds 2^40 = {MAX_SIZE:,}, the "
                   "largest size or count the simulator counts exactly; split the work (e.g. "
                   "fewer sequences per pass) or simulate a smaller instance and scale it\n")


def test_regression_the_largest_gemm_is_counted_exactly(capsys):
    n = str(MAX_SIZE)
    code, out, err = run(capsys, ["sim", "gemm", "--arch", "systolic", "--M", n, "--N", n,
                                  "--K", n, "--json"])
    assert code == 0, err
    d = json.loads(out)
    check_json_counts(d)
    assert d["macs"] == MAX_SIZE ** 3
    spec = load_arch("systolic").engine
    assert d["compute_cycles"] >= gemm_compute_cycles(spec, MAX_SIZE, MAX_SIZE, MAX_SIZE)
    assert d["cycles"] >= MAX_SIZE ** 3 // peak_macs_per_cycle(load_arch("systolic"))
    assert 0 < d["utilization"] <= 1 and d["energy_pj"] > 0


def test_regression_a_prefill_past_the_token_limit_exits_2_and_one_at_it_runs(capsys):
    argv = ["sim", "model", "--arch", "systolic", "--model", "llama-2-7b", "--phase",
            "prefill", "--seq", "4096", "--json", "--batch"]
    code, out, err = run(capsys, [*argv, str(MAX_SIZE)])
    assert code == 2 and out == ""
    assert err.startswith(f"tpe: error: --batch x --seq: {MAX_SIZE * 4096:,} prompt tokens "
                          f"exceeds 2^40 = {MAX_SIZE:,}"), err
    code, out, err = run(capsys, [*argv, str(MAX_SIZE // 4096)])
    assert code == 0, err
    d = json.loads(out)
    for f in ("cycles", "compute_cycles", "stall_cycles", "macs", "dram_bytes"):
        assert type(d[f]) is int and d[f] >= 0 and d[f] == sum(op[f] for op in d["ops"]), f
    assert d["cycles"] == d["compute_cycles"] + d["stall_cycles"]
    assert d["energy_pj"] > 0 and all(v >= 0 for v in d["breakdown"].values())
    for op in d["ops"]:
        check_json_counts(op)
