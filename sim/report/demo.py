"""``tpe demo``: the main job on the embedded default, end to end.

Generates a 16x16 INT8 output-stationary systolic array, verifies its Verilog on Verilator
(results bit exact, cycles equal to the model), synthesizes it with Yosys, builds a small
accelerator tile and runs GEMMs on it against the system model (``amaranth.sim``), simulates
Llama-2-7B prefill and decode on the same engine inside the ``systolic`` preset's memory
hierarchy, and writes a Markdown report with PNG plots.
"""

from __future__ import annotations

import time
from pathlib import Path

from sim.files import replacing

__all__ = ["run_demo"]

#: The demo's engine and workload (the embedded default).
DEMO_ENGINE = {"rows": 16, "cols": 16, "a_bits": 8, "w_bits": 8, "acc_bits": 32,
               "signed": True, "dataflow": "os"}
DEMO_MODEL = "llama-2-7b"
DEMO_BATCH = 1
DEMO_PROMPT = 512
#: SmoothQuant-style INT8 weights and activations: what the INT8 array runs natively.
DEMO_QUANT = "w8a8"
#: The link of the small accelerator tile the demo builds and runs (``tile_bench.SMALL_TILE``:
#: a 4x4 engine, scratchpads of a few hundred bytes, so that the GEMMs below span several
#: tiles in every dimension): 4 GB/s with 50 ns latency (4 bytes per cycle at 1 GHz).
DEMO_TILE_LINK = ["dram.bandwidth_gb_per_s=4.0", "dram.latency_ns=50"]
#: The GEMMs run on it (M, N, K): square, tall and deep.
DEMO_TILE_GEMMS = ((24, 24, 24), (36, 12, 20), (16, 20, 40))
#: The GPU the same workload is predicted on (its native bf16; sim/gpu_model.py, calibrated on
#: kernels measured on the card: docs/gpu.md).
DEMO_GPU = "h100"
DEMO_GPU_QUANT = "bf16"


def run_demo(out: Path, *, synth: bool = True, log=print) -> tuple[Path, bool]:
    """Run every step; returns the report path and whether verification passed."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np

    from hw.emit import generate, read_manifest
    from hw.spec import load_arch, tile_spec
    from models.llm import load_model, lower
    from sim.model import simulate_model
    from sim.verify.report import format_report
    from sim.verify.runner import verify_design
    from sim.verify.tile_bench import SMALL_TILE, compare

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    arch = load_arch("systolic", [f"engine.{k}={str(v).lower()}" for k, v in DEMO_ENGINE.items()])
    spec = arch.engine

    t = time.perf_counter()
    log(f"[1/5] generating {spec.name} ...")
    design = generate(spec, out / "rtl", synth=False)
    timings["generate"] = time.perf_counter() - t

    t = time.perf_counter()
    log("[2/5] verifying it on Verilator (build, then random GEMMs against numpy and the "
        "model) ...")
    verify = verify_design(design, seed=1)
    timings["verify"] = time.perf_counter() - t
    log(format_report(verify.cases))
    log("verification: " + ("PASS" if verify.passed else "FAIL"))

    synth_fig = None
    if synth:
        t = time.perf_counter()
        log("[3/5] synthesizing with Yosys (the first run on a machine compiles Yosys, ~1 min) ...")
        design = generate(spec, out / "rtl", synth=True)
        synth_fig = read_manifest(design)["synth"]
        timings["synthesize"] = time.perf_counter() - t
        log(f"synthesis: {synth_fig['cells']} cells, {synth_fig['transistors']} transistors, "
            f"longest path {synth_fig['longest_path_cells']} cells")

    t = time.perf_counter()
    tile_arch = load_arch("systolic", SMALL_TILE + DEMO_TILE_LINK)
    tspec = tile_spec(tile_arch)
    log(f"[4/5] a small accelerator tile ({tspec.engine.rows}x{tspec.engine.cols} engine, "
        "scratchpads, DMA, loop controller): generating it, running GEMMs on amaranth.sim "
        "against the system model ...")
    tile_dir = generate(tspec, out / "rtl", synth=False)
    rng = np.random.default_rng(1)
    tile_runs = [compare(tile_arch, M, N, K, rng) for M, N, K in DEMO_TILE_GEMMS]
    timings["tile"] = time.perf_counter() - t
    for r in tile_runs:
        log(f"  {r.M}x{r.N}x{r.K}: {r.measured_cycles} cycles measured, {r.model_cycles} "
            f"model ({r.error:+.1%}), C bit exact")

    t = time.perf_counter()
    log(f"[5/5] simulating {DEMO_MODEL} prefill ({DEMO_PROMPT} tokens) and decode on "
        f"{arch.name} and on the {DEMO_GPU} preset ...")
    cfg = load_model(DEMO_MODEL)
    results = {
        phase: simulate_model(
            arch, lower(cfg, phase=phase, batch=DEMO_BATCH, seq=DEMO_PROMPT, quant=DEMO_QUANT),
            name=cfg.name, phase=phase, batch=DEMO_BATCH, seq=DEMO_PROMPT, quant=DEMO_QUANT)
        for phase in ("prefill", "decode")
    }
    gpu = load_arch(DEMO_GPU)
    gpu_results = {
        phase: simulate_model(
            gpu, lower(cfg, phase=phase, batch=DEMO_BATCH, seq=DEMO_PROMPT,
                       quant=DEMO_GPU_QUANT),
            name=cfg.name, phase=phase, batch=DEMO_BATCH, seq=DEMO_PROMPT,
            quant=DEMO_GPU_QUANT)
        for phase in ("prefill", "decode")
    }
    timings["simulate"] = time.perf_counter() - t

    report = _write_report(out, arch, spec, verify, synth_fig, results, timings, gpu_results,
                           (tile_arch, tile_dir, tile_runs))
    return report, verify.passed


def _write_report(out, arch, spec, verify, synth_fig, results, timings, gpu_results,
                  tile) -> Path:
    from models.quant import get_scheme
    from sim.report.plots import save_model_plots

    pre, dec = results["prefill"], results["decode"]
    save_model_plots(results, out)
    save_model_plots(gpu_results, out / DEMO_GPU)
    gpre, gdec = gpu_results["prefill"], gpu_results["decode"]

    checked = [c for c in verify.cases if c["cycles_checked"]]
    lines = [
        f"# TPEForge demo: {spec.name}",
        "",
        f"Engine: {spec.rows}x{spec.cols} systolic array, {spec.a_bits}-bit activations, "
        f"{spec.w_bits}-bit weights, {spec.acc_bits}-bit accumulators, "
        f"{'signed' if spec.signed else 'unsigned'}, dataflow {spec.dataflow.upper()}; "
        f"in the `{arch.name}` memory hierarchy at {arch.clock_mhz:g} MHz "
        f"({arch.description}).",
        "",
        "## Verilog and verification",
        "",
        f"Verilog: `rtl/{spec.name}/{spec.name}.v`; manifest: `rtl/{spec.name}/manifest.json`. "
        f"Timing contract: fold_cycles({spec.timing_contract()['stream_len']}) = "
        f"{spec.timing_contract()['fold_cycles']}.",
        "",
        f"Verilator run (seed {verify.seed}): **{'PASS' if verify.passed else 'FAIL'}**, "
        f"{sum(c['results_ok'] for c in verify.cases)} of {len(verify.cases)} GEMMs bit exact, "
        f"measured cycles equal to the model in "
        f"{sum(c['measured_cycles'] == c['model_cycles'] for c in checked)} of {len(checked)} "
        "stall-free runs.",
        "",
        "| case | M | N | K | folds | measured cycles | model cycles | results |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for c in verify.cases:
        lines.append(f"| {c['case']} | {c['M']} | {c['N']} | {c['K']} | {c['folds']} | "
                     f"{c['measured_cycles']} | {c['model_cycles']} | "
                     f"{'exact' if c['results_ok'] else 'WRONG'} |")
    if synth_fig:
        top = sorted(synth_fig["cells_by_type"].items(), key=lambda kv: -kv[1])
        lines += [
            "",
            "## Synthesis (Yosys)",
            "",
            f"`{synth_fig['script']}` ({synth_fig['tool']}):",
            "",
            "| cells | estimated transistors | longest path (cells) | transistors per PE |",
            "| ---: | ---: | ---: | ---: |",
            f"| {synth_fig['cells']} | {synth_fig['transistors']} | "
            f"{synth_fig['longest_path_cells']} | "
            f"{synth_fig['transistors'] / (spec.rows * spec.cols):.0f} |",
            "",
            "Cells by type: " + ", ".join(f"{k} {v}" for k, v in top) + ".",
            "",
            f"The same netlist in {synth_fig['std_cell_library']['name']} standard cells "
            f"(`{synth_fig['std_cell_script']}`, {synth_fig['std_cell_tool']}; areas from "
            f"{synth_fig['std_cell_library']['source']}):",
            "",
            "| cells | area (um^2) | longest path (cells) | um^2 per PE |",
            "| ---: | ---: | ---: | ---: |",
            f"| {synth_fig['std_cells']} | {synth_fig['area_um2']:,.0f} | "
            f"{synth_fig['longest_path_std_cells']} | "
            f"{synth_fig['area_um2'] / (spec.rows * spec.cols):,.0f} |",
            "",
            f"Timing: {synth_fig['std_cell_library']['timing']} (the path counts cells).",
        ]
    tile_arch, tile_dir, tile_runs = tile
    te = tile_arch.engine
    lines += [
        "",
        "## A small accelerator tile",
        "",
        f"`rtl/{tile_dir.name}/`: a {te.rows}x{te.cols} engine with A, W and O scratchpads "
        f"({tile_arch.a_buffer.capacity_bytes}, {tile_arch.w_buffer.capacity_bytes} and "
        f"{tile_arch.o_buffer.capacity_bytes} bytes, double-buffered), a DMA on a "
        f"{tile_arch.dram.bandwidth_gb_per_s:g} GB/s link with {tile_arch.dram.latency_ns:g} ns "
        "of latency, and a loop controller, generated from the same architecture the simulator "
        "reads (`tpe gen tile`). Each GEMM ran on `amaranth.sim` with the mapping the "
        "simulator picks, C checked bit exact against numpy; measured cycles (start to the "
        "last C write) beside `tpe sim gemm`'s for that mapping (docs/tile.md):",
        "",
        "| M | N | K | buffer tile | loop order | measured cycles | model cycles | difference |",
        "| ---: | ---: | ---: | --- | --- | ---: | ---: | ---: |",
    ]
    for r in tile_runs:
        mp = r.mapping
        lines.append(f"| {r.M} | {r.N} | {r.K} | {mp.tile_m}x{mp.tile_n}x{mp.tile_k}"
                     f"{' (C^T)' if r.transposed else ''} | "
                     f"{''.join(mp.loop_order)} | {r.measured_cycles} | {r.model_cycles} | "
                     f"{r.error:+.1%} |")
    tpot = dec.seconds
    lines += [
        "",
        f"## {pre.name.split()[0]} on the engine",
        "",
        f"Batch {DEMO_BATCH}, prompt {DEMO_PROMPT} tokens; decode of the next token against a "
        f"KV cache of {DEMO_PROMPT} tokens. Quantization `{DEMO_QUANT}` "
        f"({get_scheme(DEMO_QUANT).description}).",
        "",
        "| metric | value |",
        "| --- | ---: |",
        f"| time to first token (prefill) | {pre.seconds * 1e3:.2f} ms |",
        f"| time per output token (decode) | {tpot * 1e3:.2f} ms |",
        f"| decode throughput | {DEMO_BATCH / tpot:.2f} tokens/s |",
        f"| prefill utilization of the array | {pre.utilization * 100:.1f} % |",
        f"| decode utilization of the array | {dec.utilization * 100:.2f} % |",
        f"| energy per prefill token | {pre.energy_pj / (DEMO_BATCH * DEMO_PROMPT) / 1e9:.2f} mJ |",
        f"| energy per decoded token | {dec.energy_pj / DEMO_BATCH / 1e9:.2f} mJ |",
        f"| DRAM bytes per decoded token | {dec.dram_bytes / DEMO_BATCH / 1e9:.3f} GB |",
        "",
        "Per operator (summed over layers):",
        "",
        "| phase | operator | kind | count | time (ms) | energy (mJ) | utilization | bound |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for phase, res in results.items():
        for r in res.ops:
            lines.append(f"| {phase} | {r.name} | {r.kind} | {r.count} | "
                         f"{r.seconds * 1e3:.3f} | {r.energy_pj / 1e9:.3f} | "
                         f"{r.utilization:.1%} | {r.bound} |")
    lines += [
        "",
        "![time per operator](op_breakdown.png)",
        "",
        "![roofline](roofline.png)",
        "",
        "Energy breakdown (decode, pJ): " + ", ".join(
            f"{k} {v:.3g}" for k, v in dec.energy_breakdown_pj.items() if v) + ".",
        "",
        f"## The same workload on the `{DEMO_GPU}` preset",
        "",
        f"{gpre.arch.description}. Kernels timed by the GPU kernel model calibrated on kernels "
        f"measured on the card (held-out error in docs/gpu.md), quantization "
        f"`{DEMO_GPU_QUANT}`; each kernel's energy from the kernel model's energy model, "
        "fitted on energy measured on the card (docs/gpu.md).",
        "",
        f"| metric | {spec.name} | {DEMO_GPU} |",
        "| --- | ---: | ---: |",
        f"| time to first token | {pre.seconds * 1e3:.2f} ms | {gpre.seconds * 1e3:.3f} ms |",
        f"| time per output token | {dec.seconds * 1e3:.2f} ms | {gdec.seconds * 1e3:.3f} ms |",
        f"| decode throughput | {DEMO_BATCH / dec.seconds:.2f} tokens/s | "
        f"{DEMO_BATCH / gdec.seconds:.1f} tokens/s |",
        f"| energy per decoded token | {dec.energy_pj / DEMO_BATCH / 1e9:.2f} mJ | "
        f"{gdec.energy_pj / DEMO_BATCH / 1e9:.1f} mJ |",
        "",
        f"![time per operator on {DEMO_GPU}]({DEMO_GPU}/op_breakdown.png)",
        "",
        f"![roofline on {DEMO_GPU}]({DEMO_GPU}/roofline.png)",
        "",
        "Step times: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()) + ".",
        "",
    ]
    report = out / "report.md"
    with replacing(report) as tmp:
        tmp.write_text("\n".join(lines))
    return report
