"""A model on several devices: the parallel plan's lowering (models.parallel), the collectives'
costs (sim.collectives), the pipeline (sim.devices) and `tpe sim model --devices`."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest
from cli_run import run

from hw.spec import load_arch
from models import ModelError
from models.llm import kv_cache_bytes, load_model, lower, weight_bytes
from models.ops import Attention, Gemm
from models.parallel import SPLIT, ParallelPlan, lower_parallel
from sim.collectives import collective_time, grid_shape
from sim.devices import simulate_devices
from sim.execution import resolve_scheme
from sim.model import simulate_model


def _macs(ops) -> int:
    return sum(op.macs for op in ops if isinstance(op, (Gemm, Attention)))


@pytest.mark.parametrize("name", ["llama-2-70b", "mixtral-8x7b", "opt-6.7b", "mistral-7b",
                                  "deepseek-v2-lite"])
@pytest.mark.parametrize("tp,pp", [(1, 2), (2, 1), (4, 2), (8, 1)])
def test_the_devices_share_the_work_and_the_state_exactly(name: str, tp: int, pp: int) -> None:
    """Split evenly (the heads, widths and vocabulary divide), the devices' MACs add up to the
    model's (every device repeating the replicated GEMMs: the router, MLA's latent
    projections), their KV caches to its cache; the weights too, but for the norms every device
    of a stage keeps (and a tied head's second copy of the table)."""
    cfg = load_model(name)
    if cfg.vocab_size % tp or cfg.num_kv_heads % tp:
        pytest.skip("not an even split")
    plan = ParallelPlan(tp=tp, pp=pp)
    for phase in ("prefill", "decode"):
        work = lower_parallel(cfg, plan, phase=phase, batch=2, seq=64, quant="fp16")
        whole = lower(cfg, phase=phase, batch=2, seq=64, quant="fp16")
        repeated = (tp - 1) * _macs([op for op in whole if SPLIT[op.name] == "rep"])
        assert sum(tp * _macs(s.ops) for s in work.stages) == _macs(whole) + repeated
        assert work.stages[0].layers[0] == 0
        assert sum(b - a for a, b in (s.layers for s in work.stages)) == cfg.num_layers
    kv = sum(tp * s.kv_cache_bytes for s in work.stages)
    copies = tp if cfg.mla is not None else 1  # MLA's latent cache: every device keeps it
    assert kv == pytest.approx(copies * kv_cache_bytes(cfg, batch=2, seq=64, quant="fp16"),
                               rel=1e-12)
    weights = sum(tp * s.weight_bytes for s in work.stages)
    norm = (2 if cfg.family == "opt" else 1) * cfg.hidden_size * 2  # bytes, fp16
    replicated = (tp - 1) * (2 * cfg.num_layers + 1) * norm
    if cfg.attention_bias:  # o_proj's bias: an output width no device splits
        replicated += (tp - 1) * cfg.num_layers * cfg.hidden_size * 2
    if cfg.mlp_bias:
        replicated += (tp - 1) * cfg.num_layers * cfg.hidden_size * 2
    from models.llm import _weight_matrices

    replicated += (tp - 1) * sum(2 * n * k * count for name, n, k, count in
                                 _weight_matrices(cfg) if SPLIT[name] == "rep")
    if cfg.mla is not None:  # its latent norms
        replicated += (tp - 1) * cfg.num_layers * (cfg.mla.kv_lora_rank
                                                   + cfg.mla.q_lora_rank) * 2
    if cfg.learned_positions:
        replicated += (tp - 1) * cfg.learned_positions * cfg.hidden_size * 2
    tied = (cfg.vocab_size * cfg.hidden_size * 2 if cfg.tie_word_embeddings and pp > 1
            else 0)
    assert weights == pytest.approx(weight_bytes(cfg, "fp16") + replicated + tied, rel=1e-12)


def test_every_operator_of_every_zoo_model_has_a_split_rule() -> None:
    from models.llm import zoo_models

    for name in zoo_models():
        cfg = load_model(name)
        for phase in ("prefill", "decode"):
            for op in lower(cfg, phase=phase, batch=1, seq=8, quant="w8a8"):
                assert op.name in SPLIT, (name, op.name)


def test_collectives_sit_where_megatron_puts_them() -> None:
    cfg = load_model("llama-2-70b")
    h, L = cfg.hidden_size, cfg.num_layers
    work = lower_parallel(cfg, ParallelPlan(tp=4, pp=2, microbatches=2), phase="decode",
                          batch=4, seq=128, quant="fp16")
    first, last = work.stages
    tokens = 2  # a micro-batch of 2 sequences, one new token each
    kinds = Counter((c.kind, c.after) for c in first.collectives for _ in range(c.count))
    assert kinds[("all_reduce", "o_proj")] == L // 2
    assert kinds[("all_reduce", "down_proj")] == L // 2
    assert kinds[("all_reduce", "embedding")] == 1 and kinds[("send_recv", None)] == 1
    assert all(c.bytes == tokens * h * 2 for c in first.collectives)
    assert {c.name for c in last.collectives} == {"attention_all_reduce", "mlp_all_reduce",
                                                  "logits_all_gather"}
    sp = lower_parallel(cfg, ParallelPlan(tp=4, sp=True), phase="decode", batch=4, seq=128,
                        quant="fp16")
    assert not any(c.kind == "all_reduce" for c in sp.stages[0].collectives)
    moe = lower_parallel(load_model("mixtral-8x7b"), ParallelPlan(tp=8, ep=8),
                         phase="prefill", batch=1, seq=256, quant="fp16")
    assert {"expert_dispatch", "expert_combine"} <= {c.name for c in moe.stages[0].collectives}
    expert = next(op for op in moe.stages[0].ops if op.name == "expert_gate")
    assert isinstance(expert, Gemm) and expert.N == 14336  # whole experts on each device


@pytest.mark.parametrize("plan,field", [
    (dict(tp=3), "tp"), (dict(pp=81), "pp"), (dict(tp=8, ep=8), "ep"),
    (dict(microbatches=3), "microbatches"),
])
def test_plans_that_do_not_fit_the_model_name_the_field(plan, field) -> None:
    with pytest.raises(ModelError, match=rf"^{field}: "):
        lower_parallel(load_model("llama-2-70b"), ParallelPlan(**plan), phase="decode",
                       batch=4, seq=16, quant="fp16")
    with pytest.raises(ModelError, match=r"^ep: "):
        ParallelPlan(tp=8, ep=2)


def test_collective_models_follow_their_formulas() -> None:
    ic = load_arch("h100").interconnect
    assert ic is not None
    big = 1 << 30
    t = collective_time(ic, "all_reduce", big, 8)
    bw = ic.bandwidth_gb_per_s * 1e9
    expect = (ic.bulk_launch_us + 14 * ic.bulk_step_us) * 1e-6 + 2 * 7 / 8 * big / bw
    assert (t.algorithm, t.protocol) == ("ring", "bulk") and t.seconds == pytest.approx(expect)
    small = collective_time(ic, "all_reduce", 1024, 8)
    assert small.protocol == "ll" and small.seconds < 20e-6
    assert collective_time(ic, "all_reduce", big, 1).seconds == 0
    sizes = [1 << k for k in range(10, 32, 3)]
    for kind in ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv"):
        times = [collective_time(ic, kind, n, 8).seconds for n in sizes]
        assert times == sorted(times), kind
    # a 2D torus of 2 x 4 moves less per device than a ring of 8 for large all-reduces
    ring = load_arch("npu-hbm").interconnect
    assert ring is not None
    torus = ring.__class__(**{**ring.__dict__, "topology": "torus2d"})
    assert grid_shape(8) == (4, 2) and grid_shape(7) == (7, 1)
    assert collective_time(torus, "all_reduce", big, 8).seconds < collective_time(
        ring, "all_reduce", big, 8).seconds
    assert collective_time(torus, "all_reduce", big, 7) == collective_time(
        ring, "all_reduce", big, 7)


@pytest.mark.parametrize("arch,quant", [("h100", "bf16"), ("npu-hbm", "auto")])
def test_one_device_through_the_plan_is_the_single_device_answer(arch: str, quant: str) -> None:
    """One question, one answer: a 1-device plan gives simulate_model's time and energy, and
    pipeline stages without micro-batches take the stages' sum plus the sends."""
    a = load_arch(arch)
    scheme = resolve_scheme(quant, a.engine)
    cfg = load_model("llama-2-7b")
    single = simulate_model(a, lower(cfg, phase="decode", batch=2, seq=256, quant=scheme))
    for pp in (1, 4):
        work = lower_parallel(cfg, ParallelPlan(pp=pp), phase="decode", batch=2, seq=256,
                              quant=scheme)
        r = simulate_devices(a, work, name=cfg.name, phase="decode", batch=2, seq=256,
                             quant=scheme.name)
        sends = sum(s.send_s for s in r.stages)
        assert r.seconds == pytest.approx(single.seconds + sends, rel=1e-9)
        assert r.energy_pj == pytest.approx(single.energy_pj, rel=1e-9)
        assert (sends > 0) == (pp > 1)


def test_pipeline_micro_batches_follow_the_slowest_stage() -> None:
    a = load_arch("h100")
    cfg = load_model("llama-2-7b")
    work = lower_parallel(cfg, ParallelPlan(tp=2, pp=2, microbatches=4), phase="prefill",
                          batch=8, seq=256, quant="bf16")
    r = simulate_devices(a, work, name=cfg.name, phase="prefill", batch=8, seq=256,
                         quant="bf16")
    per = [s.compute_s / 4 + s.exposed_communication_s / 4 for s in r.stages]
    assert r.seconds == pytest.approx(sum(per) + sum(s.send_s for s in r.stages)
                                      + 3 * max(per))
    for s, t in zip(r.stages, per, strict=True):
        assert s.idle_s == pytest.approx(r.seconds - 4 * t)
    over = simulate_devices(a, work, name=cfg.name, phase="prefill", batch=8, seq=256,
                            quant="bf16", overlap=True)
    assert over.seconds < r.seconds
    assert all(o.communication_s == pytest.approx(s.communication_s)
               for o, s in zip(over.stages, r.stages, strict=True))


@pytest.mark.parametrize("arch,quant", [("h100", "bf16"), ("npu-hbm", "auto")])
@pytest.mark.parametrize("name", ["llama-2-70b", "mixtral-8x7b"])
def test_large_models_on_one_to_eight_devices(arch: str, quant: str, name: str) -> None:
    """The issue's cases: decode time per token falls as tensor parallelism grows (the weights
    are read in parallel), the memory per device falls with it, and a model too large for one
    device fits on enough of them."""
    a = load_arch(arch)
    scheme = resolve_scheme(quant, a.engine)
    cfg = load_model(name)
    seconds, memory, fits = [], [], []
    for tp in (1, 2, 4, 8):
        work = lower_parallel(cfg, ParallelPlan(tp=tp), phase="decode", batch=4, seq=1024,
                              quant=scheme)
        r = simulate_devices(a, work, name=name, phase="decode", batch=4, seq=1024,
                             quant=scheme.name)
        seconds.append(r.seconds)
        memory.append(r.stages[0].memory_bytes)
        fits.append(r.fits)
        comm = r.stages[0].communication_s
        assert (comm > 0) == (tp > 1)
    assert seconds == sorted(seconds, reverse=True)
    assert memory == sorted(memory, reverse=True)
    assert not fits[0] and memory[0] / memory[-1] > 7
    if arch == "h100":
        assert fits[-1]


def _json(capsys, argv: list[str]) -> dict:
    code, out, err = run(capsys, [*argv, "--json"])
    assert code == 0, err
    return json.loads(out)


MODEL = ["sim", "model", "--model", "llama-2-7b", "--phase", "decode", "--batch", "2",
         "--seq", "128"]


def test_cli_devices(capsys) -> None:
    d = _json(capsys, [*MODEL, "--arch", "h100", "--quant", "bf16", "--devices", "4"])
    assert (d["devices"], d["tp"], d["pp"]) == (4, 4, 1) and d["fits"]
    assert d["stages"][0]["collectives"] and d["interconnect"]["topology"] == "switch"
    two = _json(capsys, [*MODEL, "--arch", "h100", "--quant", "bf16", "--tp", "2", "--pp", "2",
                         "--microbatches", "2"])
    assert two["devices"] == 4 and len(two["stages"]) == 2
    slow = _json(capsys, [*MODEL, "--arch", "h100", "--quant", "bf16", "--devices", "4",
                          "--set", "interconnect.bandwidth_gb_per_s=10"])
    assert slow["seconds"] > d["seconds"]
    code, out, _ = run(capsys, [*MODEL, "--arch", "h100", "--quant", "bf16", "--tp", "2",
                                "--overlap"])
    assert code == 0 and "collectives per micro-batch" in out and "overlapped" in out
    # a plan of one device (micro-batches alone) on an architecture without an interconnect
    # needs none: its JSON says so
    one = _json(capsys, [*MODEL, "--arch", "systolic", "--microbatches", "2"])
    assert (one["devices"], one["interconnect"]) == (1, None)


@pytest.mark.parametrize("argv,flag", [
    (["--arch", "h100", "--devices", "4", "--tp", "2"], "--devices"),
    (["--arch", "h100", "--tp", "3"], "--tp"),
    (["--arch", "h100", "--tp", "2", "--ep", "2"], "--ep"),
    (["--arch", "h100", "--microbatches", "3"], "--microbatches"),
    (["--arch", "h100", "--set", "interconnect.bandwidth_gb_per_s=10"], "interconnect"),
    (["--arch", "systolic", "--tp", "2"], "interconnect"),
    (["--arch", "h100", "--tp", "2", "--plot", "x"], "--plot"),
    (["--arch", "h100", "--tp", "2", "--runtime", "eager"], "--runtime"),
    # the overlap acts on the tensor-parallel collectives alone: refused where there are none
    (["--arch", "h100", "--overlap"], "--overlap"),
    (["--arch", "h100", "--pp", "2", "--overlap"], "--overlap"),
])
def test_cli_refuses_plans_in_one_line(capsys, tmp_path: Path, argv: list[str], flag: str,
                                       monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, [*MODEL, *argv])
    assert code == 2 and err.count("\n") == 1 and flag in err, err


def test_a_sweep_overlaps_only_tensor_parallel_collectives(tmp_path: Path) -> None:
    """The overlap acts on the tensor-parallel collectives alone (the pipeline's sends are not
    overlapped): a sweep leaves ``overlap = true`` out wherever tp is 1, as ``tpe sim model``
    refuses ``--overlap`` there."""
    from sim.sweep import load_sweep

    spec = tmp_path / "s.toml"
    spec.write_text('[sweep]\nbase = "h100"\n[axes]\n"interconnect.bandwidth_gb_per_s" = '
                    '[450.0]\n[workload]\nmodels = ["llama-2-7b"]\nphases = ["decode"]\n'
                    'batch = [2]\nseq = [128]\ntp = [1, 2]\npp = [1, 2]\n'
                    'overlap = [false, true]\n')
    plans = {(w.tp, w.pp, w.overlap) for w in load_sweep(spec).workloads}
    assert plans == {(1, 1, False), (1, 2, False), (2, 1, False), (2, 1, True), (2, 2, False),
                     (2, 2, True)}


def test_sweep_over_devices(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text('[sweep]\nbase = "h100"\n[axes]\n"interconnect.bandwidth_gb_per_s" = '
                    '[50.0, 450.0]\n[workload]\nmodels = ["llama-2-7b"]\nphases = ["prefill"]'
                    '\nbatch = [2]\nseq = [512]\nquant = ["bf16"]\ntp = [1, 4]\n'
                    'overlap = [false, true]\n')
    code, _, err = run(capsys, ["sweep", str(spec), "--out", str(tmp_path / "out"),
                                "--workers", "1"])
    assert code == 0, err
    from sim.sweep import read_results

    rows = read_results(tmp_path / "out").to_pylist()
    assert len(rows) == 6 and all(r["error"] is None for r in rows)  # no overlap on one
    hidden = {r["interconnect.bandwidth_gb_per_s"]: r["seconds"] for r in rows if r["overlap"]}
    by = {(r["tp"], r["interconnect.bandwidth_gb_per_s"]): r["seconds"] for r in rows
          if not r["overlap"]}
    assert all(hidden[bw] < by[(4, bw)] for bw in hidden)
    assert by[(4, 50.0)] > by[(4, 450.0)] and by[(1, 50.0)] == by[(1, 450.0)]
    assert math.isclose(by[(1, 50.0)], _json(capsys, [
        "sim", "model", "--model", "llama-2-7b", "--phase", "prefill", "--batch", "2", "--seq",
        "512", "--arch", "h100", "--quant", "bf16"])["seconds"])
    one = tmp_path / "one.toml"
    one.write_text(spec.read_text().replace("tp = [1, 4]", "tp = [1]").replace(
        "overlap = [false, true]", ""))
    code, _, err = run(capsys, ["sweep", str(one), "--out", str(tmp_path / "o2")])
    assert code == 2 and "interconnect" in err and err.count("\n") == 1


def _benchmark(name: str):
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_tables_are_what_the_script_computes() -> None:
    table = _benchmark("scaleout_table")
    page = (Path(__file__).resolve().parents[1] / "docs" / "scaleout.md").read_text()
    committed = page.split(table.MARK)[1].strip()
    assert committed == table.table().strip(), (
        "docs/scaleout.md is stale: run benchmarks/scaleout_table.py --write docs/scaleout.md")


def test_the_measurement_check_predicts_every_kind_of_row(tmp_path: Path, capsys) -> None:
    """The multi-GPU measurement cannot run here; its checking half can, on rows shaped as
    the measurement writes them."""
    measure = _benchmark("scaleout_measure")
    rows = tmp_path / "m.csv"
    lines = [",".join(measure.FIELDS)]
    lines += [f"{kind},2,1048576,,,,50.0,test" for kind in measure.COLLECTIVES]
    lines += ["layer,2,,decode,16,2048,500.0,test", "layer_compute,4,,prefill,1,2048,9e3,test"]
    rows.write_text("\n".join(lines) + "\n")
    assert measure.check(rows, "h100") == 0
    out = capsys.readouterr().out
    assert out.count("measured") == 7 and "layer_compute    mean |error|" in out
