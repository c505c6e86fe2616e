#!/usr/bin/env python3
"""Write docs/gpu.md: the GPU presets against the kernels measured on the device.

Everything in the page is computed here from the committed measurements
(``sim/data/gpu/measured_*.csv``, ``layer_h100.csv``, ``framework_h100.csv``) and the presets:

1. the ``tpe gpu check`` statistics per split, op, dtype and category (alignment, head dim,
   causal), and its plot, for the ``h100`` preset on the dataset it was calibrated on
   (``measured_h100_v2.csv``), and held-out figures for every measured run (both datasets, both
   cards);
2. the same held-out rows under a plain roofline (datasheet peak rate and bandwidth);
3. run-to-run noise: two measured runs of the same kernels against each other;
4. each kernel's board power and SM clock as measured (``tpe gpu measure``'s energy columns);
5. end to end: one Llama decoder layer written in torch (``sim.gpu.layer``), timed on the card
   (CUDA-graph replay), next to ``tpe sim model`` on the ``h100`` preset for the same layer;
   and whole models as eager transformers runs them (``sim.gpu.framework``) next to the same
   prediction.

Usage (repository root): ``.venv/bin/python benchmarks/gpu_report.py`` (seconds; no GPU).
"""

from __future__ import annotations

import csv
import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DATA = REPO / "sim" / "data" / "gpu"
DOCS = REPO / "docs"
#: Datasheet figures of the H100 SXM5 for the plain-roofline reference (NVIDIA H100 datasheet:
#: dense tensor TFLOPS bf16/fp16 989.4, fp8 1978.9, int8 1978.9 TOPS; HBM3 3.35 TB/s).
DATASHEET_TFLOPS = {"bf16": 989.4, "fp16": 989.4, "fp8": 1978.9, "int8": 1978.9}
DATASHEET_TBPS = 3.35


def _case(r: dict[str, str]) -> tuple[str, str, str, str]:
    """A whole-model row's (model, phase, batch, seq)."""
    return (r["model"], r["phase"], r["batch"], r["seq"])


def _spread(pairs: list[tuple[float, float]]) -> str:
    """Run-to-run differences of paired measurements: median and largest, in words."""
    diffs = sorted(abs(a - b) / b for a, b in pairs)
    return (f"a median {100 * statistics.median(diffs):.0f}% and up to "
            f"{100 * diffs[-1]:.0f}%")


def _fraction_range(pairs: list[tuple[float, float]]) -> str:
    """``part / whole`` of each pair, as a percentage range in words."""
    f = sorted(a / b for a, b in pairs)
    return f"{100 * f[0]:.0f} to {100 * f[-1]:.0f}%"


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("status", "ok") == "ok"]


def _noise(run: list[dict[str, str]], again: list[dict[str, str]]) -> list[float]:
    """Each kernel's time difference between two runs of the same kernels, relative to the
    first, sorted."""
    return sorted(abs(float(a["us"]) - float(b["us"])) / float(a["us"])
                  for a, b in zip(run, again, strict=True))


def _mape(pairs: list[tuple[float, float]]) -> float:
    return statistics.fmean(abs(p - m) / m for p, m in pairs)


def main() -> int:
    from hw.spec import load_arch
    from models.llm import load_model, lower
    from models.ops import Vector
    from sim.cli.gpu import _kernels, _plot, _predict, check_rows
    from sim.gpu.measure import ENERGY_SETS
    from sim.gpu_model import kernel_bytes_flops
    from sim.model import simulate_model

    arch = load_arch("h100")
    measured = _rows(DATA / "measured_h100_v2.csv")
    repeat = _rows(DATA / "measured_h100_v2_repeat.csv")
    first = _rows(DATA / "measured_h100.csv")
    kernels = _kernels(measured, "measured")
    predicted = _predict(arch, kernels)
    stats = check_rows(measured, predicted)
    fig = DOCS / "figures" / "gpu_h100_check.png"
    _plot(measured, predicted, fig, arch.name, stats)

    # held-out figures of every measured run, each against its card's preset (the
    # calibration's own run is the one above)
    runs = [("measured_h100_v2.csv", "h100", measured[0]["gpu"], len(measured), stats)]
    for name, preset in (("measured_h100_v2_repeat.csv", "h100"), ("measured_h100.csv", "h100"),
                         ("measured_h100_repeat.csv", "h100"), ("measured_h200.csv", "h200")):
        rows = _rows(DATA / name)
        a = load_arch(preset)
        st = check_rows(rows, _predict(a, _kernels(rows, name)))
        runs.append((name, preset, rows[0]["gpu"], len(rows), st))

    # plain roofline on the held-out rows
    roof: dict[str, list[tuple[float, float]]] = {}
    ours: dict[str, list[tuple[float, float]]] = {}
    for r, k, p in zip(measured, kernels, predicted, strict=True):
        if r["split"] != "held":
            continue
        nbytes, flops = kernel_bytes_flops(k)
        t = max(flops / (DATASHEET_TFLOPS[k.dtype] * 1e12), nbytes / (DATASHEET_TBPS * 1e12))
        fam = "gemm" if k.op == "gemm" else "attention"
        roof.setdefault(fam, []).append((t * 1e6, float(r["us"])))
        ours.setdefault(fam, []).append((p, float(r["us"])))

    noise = _noise(measured, repeat)
    noise_first = _noise(first, _rows(DATA / "measured_h100_repeat.csv"))

    # power and clock per op and dtype, as measured back to back
    import json
    import re

    env = json.loads((DATA / "measured_h100_v2_env.json").read_text())
    env["energy_s"] = re.search(r"at least ([0-9.]+) s", env["energy"]).group(1)
    power: dict[str, list[tuple[float, float]]] = {}
    for r in measured:
        power.setdefault(f"{r['op']}/{r['dtype']}", []).append(
            (float(r["watts"]), float(r["sm_mhz"])))

    # the h200 preset (H100 calibration scaled by the datasheet bandwidth ratio, never fitted
    # on H200 data) against the H200 measurements
    h200_rows = _rows(DATA / "measured_h200.csv")
    h200 = load_arch("h200")
    h200_pred = _predict(h200, _kernels(h200_rows, "h200"))
    stats_h200 = check_rows(h200_rows, h200_pred)
    h200_all = check_rows([{**r, "split": "all"} for r in h200_rows], h200_pred)
    fig_h200 = DOCS / "figures" / "gpu_h200_check.png"
    _plot(h200_rows, h200_pred, fig_h200, h200.name, stats_h200)

    # whole models, eager transformers, against tpe sim model (the fused lowering)
    def simulated(r: dict[str, str]) -> tuple[Any, Any]:
        """``tpe sim model --arch h100 --quant bf16`` for a measured row's model, phase,
        batch and sequence: (the model's config, the result)."""
        cfg = load_model(r["model"])
        batch, seq = int(r["batch"]), int(r["seq"])
        ops = lower(cfg, phase=r["phase"], batch=batch, seq=seq, quant="bf16")
        return cfg, simulate_model(arch, ops, phase=r["phase"], batch=batch, seq=seq)

    framework = [(r, simulated(r)[1].seconds * 1e6, float(r["us"]))
                 for r in _rows(DATA / "framework_h100.csv")]
    repeat = {_case(r): float(r["us"]) for r in _rows(DATA / "framework_h100_repeat.csv")}

    # what eager transformers launches per pass (torch.profiler), against the eager lowering
    profile: dict[tuple[str, str, str, str], list[dict[str, str]]] = {}
    for r in _rows(DATA / "framework_ops_h100.csv"):
        profile.setdefault(_case(r), []).append(r)
    eager_rows = []
    for case, rs in profile.items():
        fwd = next(r for r in rs if r["op"] == "<forward>")
        launches = sum(float(r["calls"]) for r in rs if r["op"] != "<forward>")
        gemm_attn = sum(float(r["gpu_us"]) for r in rs
                        if r["op"] in ("aten::mm", "aten::bmm", "aten::_cudnn_attention_forward"))
        cfg = load_model(case[0])
        ops = lower(cfg, phase=case[1], batch=int(case[2]), seq=int(case[3]), quant="bf16",
                    runtime="eager")
        vec = [op for op in ops if isinstance(op, Vector)]
        elem_bytes = sum(op.bytes * op.count for op in vec)
        eager_rows.append((case, float(fwd["gpu_us"]), float(fwd["cpu_us"]),
                           float(fwd["wall_us"]), launches,
                           sum(getattr(op, "launches", 1) * op.count for op in ops),
                           float(fwd["gpu_us"]) - gemm_attn, elem_bytes))

    # the device-bound passes (busier device than host): element-wise device time over busy
    device_bound = [(e, b) for (_, b, h, _, _, _, e, _) in eager_rows if b > h]

    layer_rows = []
    for r in _rows(DATA / "layer_h100.csv"):
        cfg, res = simulated(r)
        # one layer: the operators repeated once per layer, divided by the layer count
        per_layer = [(o, o.seconds / cfg.num_layers) for o in res.ops
                     if o.count % cfg.num_layers == 0 and o.count >= cfg.num_layers]
        total = sum(t for _, t in per_layer) * 1e6
        gemm_attn = sum(t for o, t in per_layer if o.kind != "vector") * 1e6
        layer_rows.append((r, total, gemm_attn, float(r["us_graph"])))

    held = {fam: s for (split, fam, g), s in stats.items() if split == "held" and g == "all"}
    lines = [
        "# GPU presets against measured kernels",
        "",
        "Reproduce with `.venv/bin/python benchmarks/gpu_report.py` (no GPU needed: it reads the "
        "committed measurements); the check alone is `tpe gpu check --measured "
        "sim/data/gpu/measured_h100_v2.csv --plot FILE`.",
        "",
        "## The data",
        "",
        f"`sim/data/gpu/shapes_v2.csv` lists {len(measured)} kernels, the dataset the `h100` "
        "preset is calibrated on: LLM GEMMs (M from 1 to 8192, N and K from Llama-2/3, "
        "Mistral, Mixtral and the Llama-2 LM head, aligned and one-off misaligned inner "
        "dimensions) and random misaligned ones (M, N, K log-uniform in 1..16384, none a "
        "multiple of 8) in bf16, fp16, fp8 (`torch._scaled_mm`) and int8 (`torch._int_mm`; "
        "fp8 and int8 shapes off their kernels' alignment run zero-padded to it), and SDPA "
        "prefill (causal and not) and decode over batch, heads, MHA, GQA and MQA, sequence "
        "length and head dims 32 to 256. Each row's split (calibration or held out) is a hash "
        "of the row, fixed before anything was measured (`sim/gpu/shapes.py`). Its first "
        f"{len(first)} rows are the first dataset (`shapes.csv`), measured before on an H100 "
        "twice and on an H200. `bash benchmarks/gpu_measure.sh OUTDIR` measures the dataset "
        "on the card it runs on, in one device call.",
        "",
        f"`tpe gpu measure` (`sim/gpu/measure.py`) timed them on an {measured[0]['gpu']} lent by "
        "the device tool, twice (`measured_h100_v2.csv`, `measured_h100_v2_repeat.csv`): random "
        "inputs, `triton.testing.do_bench` (CUDA events, median, L2 flushed before every "
        "repetition), card, driver and clocks recorded in `measured_h100_v2_env.json`, with "
        "each kernel's energy and SM clock (below). Its microbenchmarks "
        "(`measured_h100_v2_microbench.csv`) give the streaming bandwidth, the peak rate per "
        "dtype, the launch cost and the clock under a sustained bf16 load (the power cap).",
        "",
        f"Run-to-run noise between the two runs: median {statistics.median(noise):.1%}, "
        f"90th percentile {noise[int(0.9 * len(noise))]:.1%}, max {noise[-1]:.1%} (the first "
        f"dataset's two runs: median {statistics.median(noise_first):.1%}, 90th percentile "
        f"{noise_first[int(0.9 * len(noise_first))]:.1%}).",
        "",
        "### The shapes format and what `tpe gpu measure` records",
        "",
        "A shapes.csv has the columns `op,dtype,M,N,K,B,H,Hkv,S,D` (unused cells empty): `op` "
        "is `gemm` (`C[M, N] = A[M, K] W[K, N]`), `attn_prefill` or `attn_decode` (`B` "
        "sequences, `H` query heads, `Hkv` key/value heads, `S` tokens or cached keys, head dim "
        "`D`); `dtype` is `bf16`, `fp16`, `fp8` or `int8` (attention: bf16 or fp16). An "
        "optional `causal` column (1 or 0, `attn_prefill` rows only; empty means 1) runs a "
        "prefill without the causal mask.",
        "",
        "Beside the time (`us`, `us_p20`, `us_p80`) each kernel gets its energy and clock: "
        "after the timing it runs back to back (replays of a CUDA graph of several launches, "
        f"rotating through as many input sets as make twice the L2, at most {ENERGY_SETS}, so "
        "that the "
        "operands come from HBM: column `energy_sets`) "
        "until NVML's energy counter, which moves only about every 100 ms, has changed twice "
        "`--energy-s` seconds apart (0.3 by default); a thread polls the counter and the SM "
        "clock while the host keeps two chunks of about 10 ms of GPU work queued: `watts` "
        "(the counter's change between its two updates over the time between them), `mj` "
        "(that power times `us_loop`, the GPU time per kernel back to back, no launch gaps and "
        "no L2 flush between calls), "
        "`sm_mhz` (the median SM clock). Without `pynvml` (`nvidia-ml-py`, in the `torch` "
        "extra) these stay empty and the `_env.json` says why. The committed "
        "`measured_h100_v2.csv` was measured before the rotation: a kernel whose operands fit "
        "in the L2 read them from there in its energy loop, so its `mj`, `watts` and "
        "`us_loop` stand for L2-resident operands.",
        "",
        "## Held-out accuracy of the `h100` preset",
        "",
        "The kernel model (`sim/gpu_model.py`) was calibrated on the calibration rows only "
        "(`tpe gpu calibrate`, `sim/data/gpu/calibration_h100.toml`; a test corrupts every "
        "held-out row and gets the same calibration).",
        "",
        "| split | family | group | n | MAPE | p90 | max | Spearman |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (split, fam, group), s in stats.items():
        lines.append(f"| {split} | {fam} | {group} | {s['n']} | {s['mape']:.1%} | "
                     f"{s['p90']:.1%} | {s['max']:.1%} | {s['spearman']:.3f} |")
    lines += [
        "",
        "Held out on every measured run, each against its card's preset (`tpe gpu check "
        "--measured sim/data/gpu/FILE`; the target is MAPE at most 10% and Spearman at least "
        "0.95 for each of gemm and attention):",
        "",
        "| run | card | preset | kernels | gemm MAPE | gemm Spearman | attention MAPE | "
        "attention Spearman |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, preset, gpu, n, st in runs:
        g, a = st[("held", "gemm", "all")], st[("held", "attention", "all")]
        lines.append(f"| `{name}` | {gpu} | {preset} | {n} | {g['mape']:.1%} | "
                     f"{g['spearman']:.3f} | {a['mape']:.1%} | {a['spearman']:.3f} |")
    lines += [
        "",
        "Held out on the calibration's dataset against a plain roofline "
        f"(datasheet {DATASHEET_TFLOPS['bf16']:g} TFLOPS bf16 and {DATASHEET_TBPS} TB/s):",
        "",
        "| family | MAPE | plain roofline MAPE |",
        "| --- | ---: | ---: |",
    ]
    for fam in ("gemm", "attention"):
        lines.append(f"| {fam} | {held[fam]['mape']:.1%} | {_mape(roof[fam]):.1%} |")
    lines += [
        "",
        f"![predicted vs measured](figures/{fig.name})",
        "",
        "## Power and clock per kernel",
        "",
        "Board power and SM clock of each kernel run back to back, as measured "
        "(`measured_h100_v2.csv`; medians and ranges per op and dtype). The kernel model does "
        "not predict them yet: `tpe sim model --arch h100` reports energy as the preset's "
        "board power times the time. Each figure is over a window of at least "
        f"{env['energy_s']} s between two updates of the counter; the card's power limit is "
        f"{float(env['smi_before']['power.limit']):.0f} W (`measured_h100_v2_env.json`).",
        "",
        "| kernels | n | median W | min W | max W | median SM MHz | min SM MHz |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, vals in sorted(power.items()):
        w = sorted(v[0] for v in vals)
        c = sorted(v[1] for v in vals)
        lines.append(f"| {key} | {len(vals)} | {statistics.median(w):.0f} | {w[0]:.0f} | "
                     f"{w[-1]:.0f} | {statistics.median(c):.0f} | {c[0]:.0f} |")
    lines += [
        "",
        "## End to end: one Llama decoder layer",
        "",
        "`sim/gpu/layer.py` is a plain torch decoder layer (RMSNorm, q/k/v, RoPE, SDPA with GQA "
        "against a KV cache, o, residual, RMSNorm, SiLU-gated MLP, residual) in bf16, timed on "
        "the card replayed from a CUDA graph (`layer_h100.csv`). Next to it, `tpe sim model "
        "--arch h100 --quant bf16` for the same model, phase, batch and sequence, one layer's "
        "share of the operators that repeat per layer:",
        "",
        "| model | phase | batch | seq | measured (us) | predicted (us) | error | "
        "GEMMs + attention (us) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r, total, ga, meas in layer_rows:
        lines.append(f"| {r['model']} | {r['phase']} | {r['batch']} | {r['seq']} | "
                     f"{meas:.0f} | {total:.0f} | {(total - meas) / meas:+.0%} | {ga:.0f} |")
    errs = [abs(t - m) / m for _, t, _, m in layer_rows]
    lines += [
        "",
        f"Mean absolute error {statistics.fmean(errs):.0%}: decode steps within "
        f"{max(abs(t - m) / m for r, t, _, m in layer_rows if r['phase'] == 'decode'):.0%}, "
        "prefill under-predicted. The GEMMs and attention of a prefill layer are predicted "
        "to the kernel (the table above); what the prediction misses is element-wise work: "
        "the torch layer applies RoPE as slices, a concatenation, a negation, two products "
        "and a sum, and the SiLU and the gate product as separate kernels, each a full pass "
        "over a prefill-sized tensor, where the lowering counts one fused pass per norm, "
        "RoPE, activation and residual (as serving engines fuse them). In decode these "
        "tensors are a few kilobytes and the passes cost only their launches.",
        "",
        "## Whole models as eager PyTorch runs them",
        "",
        "`sim/gpu/framework.py` times Hugging Face transformers' `LlamaForCausalLM` (random bf16 "
        "weights, SDPA, its own KV cache, no CUDA graphs: what `model(input_ids)` launches) "
        "on the card (`framework_h100.csv`): a prefill and one decode step. Next to it, "
        "`tpe sim model --arch h100 --quant bf16`, whose lowering is a serving engine's "
        "(fused element-wise passes, the cache written in place):",
        "",
        "| model | phase | batch | seq | eager transformers (us) | tpe sim model (us) | "
        "measured / predicted |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
        *(f"| {r['model']} | {r['phase']} | {r['batch']} | {r['seq']} | {meas:.0f} | "
          f"{pred:.0f} | {meas / pred:.2f} |" for r, pred, meas in framework),
        "",
        "Eager transformers runs well behind the prediction, most in decode, where every "
        "step launches each layer's unfused element-wise kernels from Python and appends to "
        "the cache by concatenation: the prediction stands for a fused serving engine, not "
        "for eager PyTorch. A decode repetition is the next generation step (the cache grows "
        "by a token); run to run, the same cases measured again "
        "(`framework_h100_repeat.csv`) differ by "
        f"{_spread([(repeat[_case(r)], meas) for r, _, meas in framework])}.",
        "",
        "### What eager transformers launches",
        "",
        "`python -m sim.gpu.framework --ops` profiles the same passes (`torch.profiler`, "
        "`framework_ops_h100.csv`): every ATen operator that runs device work, with its "
        "calls, its device time and its host time, and per pass the host time of the call "
        "alone (Python returning before the GPU finishes), the device's busy time and the "
        "wall time. `lower(..., runtime=\"eager\")` (`models/llm.py`) is that pass as "
        "kernels: each RMSNorm eight, RoPE five per query and key tensor, the SiLU and the "
        "gate product two, the cache appended by concatenation, every position's logits in "
        "prefill:",
        "",
        "| model | phase | batch | seq | device busy (us) | host (us) | wall (us) | "
        "kernels profiled | eager lowering | host us per kernel | element-wise device us "
        "per GB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(f"| {c[0]} | {c[1]} | {c[2]} | {c[3]} | {busy:.0f} | {host:.0f} | {wall:.0f} | "
          f"{n:.0f} | {lowered} | {host / n:.1f} | {elem_us / (nbytes / 1e9):.0f} |"
          for c, busy, host, wall, n, lowered, elem_us, nbytes in eager_rows),
        "",
        "Decode, and prefill of a few hundred tokens, are bound by the host: the wall time "
        "is the host's, several times the device's busy time. The host's time per kernel "
        f"ranged from {min(h / n for _, _, h, _, n, *_ in eager_rows):.0f} to "
        f"{max(h / n for _, _, h, _, n, *_ in eager_rows):.0f} us in this one run: it is a "
        "property of the machine and of what else runs on it, which a model of the GPU "
        "cannot predict to 10%. Long prefill is bound by the device, where the unfused "
        "element-wise kernels take "
        f"{_fraction_range(device_bound)} of the busy time.",
        "",
        "## The `h200` preset against an H200",
        "",
        "The `h200` preset is the H100 calibration with the bandwidth scaled by the datasheet "
        "ratio (4.8 / 3.35 TB/s); nothing was fitted on H200 data. The first dataset's "
        f"{len(h200_rows)} kernels, "
        f"measured on an {h200_rows[0]['gpu']} (`measured_h200.csv`, its microbenchmarks in "
        "`measured_h200_microbench.csv`), are a validation of the whole model on a card it "
        "never saw:",
        "",
        "| rows | family | n | MAPE | p90 | max | Spearman |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (split, fam, group), st in list(stats_h200.items()) + list(h200_all.items()):
        if group == "all":
            lines.append(f"| {split} | {fam} | {st['n']} | {st['mape']:.1%} | "
                         f"{st['p90']:.1%} | {st['max']:.1%} | {st['spearman']:.3f} |")
    lines += [
        "",
        f"![h200 predicted vs measured](figures/{fig_h200.name})",
        "",
        "## The A100 preset",
        "",
        "The `a100` preset reuses the H100 calibration scaled by its own fields (HBM "
        "bandwidth; SMs x clock x an SM's MACs per clock for the tensor rate, with a "
        "`gpu.compute_scale` that brings the rate to the datasheets' dense-bf16 ratio, 312 / "
        "989.4) and its 108 SMs for tile and wave quantization. No A100 was lent: its "
        "predictions are not validated, and every output on it says so (`validated = false` "
        "in its `[gpu]` table: a note line in the text, `gpu_validated: false` in the JSON of "
        "`tpe sim gemm`, `attention` and `model`, a line after `tpe gpu predict`).",
        "",
        "## A GPU's fields and `--set`",
        "",
        "A GPU preset is an architecture like the others, and the kernel model reads its "
        "fields: the SM count (`cores`), `clock_mhz`, one SM's tensor-core MACs per clock (the "
        "engine's `m`, `n`, `k`), the HBM level's `bandwidth_gb_per_s` and `capacity_bytes` "
        "(the capacity decides `fits`), and the `[gpu]` table (calibration, board power, die "
        "area, `validated`, and extra `bandwidth_scale` / `compute_scale` factors, 1.0 by "
        "default). The calibration's measured rates scale from the card it was measured on "
        "(the preset named like the calibration, `h100`) by the ratios of these fields, so "
        "`--set dram.bandwidth_gb_per_s=1675` on `h100` halves the achieved bandwidth (a "
        "decode GEMV takes about twice as long) and `--set cores=66` halves the tensor rate "
        "and changes the tile waves. The caches, shared memory, registers and L2 are listed "
        "as levels for the record, but the kernel model does not model them level by level "
        "(its bandwidths are measured): `--set` on any field it does not read exits 2 and "
        "lists the fields it reads.",
        "",
    ]
    out = DOCS / "gpu.md"
    out.write_text("\n".join(lines))
    print(f"wrote {out}, {fig} and {fig_h200}")
    for fam in ("gemm", "attention"):
        print(f"held {fam}: MAPE {held[fam]['mape']:.1%}, Spearman {held[fam]['spearman']:.3f}; "
              f"plain roofline {_mape(roof[fam]):.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
