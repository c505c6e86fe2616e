#!/usr/bin/env python3
"""Study: Llama-3-8B and Llama-2-70B, decode and prefill, on the MX engine against the INT8
systolic array, the LUT engine and the bit-slice engine, and on the H100 and H200 GPU
presets, under the block-scaled schemes (and W8A8).

Every number comes from ``sim.model.simulate_model`` (the code of ``tpe sim model``) on the
``mx``, ``systolic``, ``lut`` and ``bitslice`` presets (1024 MACs per cycle each at their
built width, the same buffers, DRAM link and clock) and the ``h100`` and ``h200`` presets
(the GPU kernel model). The integer engines run an MX scheme as block floating point with
the block scales applied on the vector unit; the MX engine in its own formats
(docs/mx_engine.md); the GPUs on the tensor-core path of their formats. How each preset runs
a format it does not take as it is, is the ``formats`` note of its operators, quoted as the
model gives it. A scheme an engine refuses is reported as such. Writes, into ``--out``
(default ``docs/study_mx``):

* ``results.csv``: one row per model x phase x engine x scheme: time and energy per token,
  tokens/s, DRAM bytes, vector share, whether weights and KV cache fit, the engine's area and
  the scheme's storage bits per weight and per activation (scales included);
* ``time_energy.png``: time and energy per token of every engine and scheme, per model and
  phase;
* ``docs/mx_study.md`` (beside the folder): the write-up, every figure in it computed here.

Usage (repository root): ``.venv/bin/python benchmarks/mx_study.py`` (about half a minute).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

ENGINES = ("mx", "systolic", "lut", "bitslice", "h100", "h200")
#: The GPU presets among ENGINES.
GPUS = ("h100", "h200")
SCHEMES = ("mxint8", "mxfp8", "mxfp6", "mxfp4", "mxfp4-a8", "nvfp4", "w8a8")
MODELS = ("llama-3-8b", "llama-2-70b")
#: (phase, batch, seq): decode steps of 8 sequences against 2048 cached tokens; a prefill of
#: one 2048-token prompt.
PHASES = (("decode", 8, 2048), ("prefill", 1, 2048))


def storage_bits(scheme: str) -> tuple[float, float]:
    """Bits per weight and per activation element, block or group scales amortized."""
    from models.formats import get_block_format, get_format
    from models.quant import get_scheme

    q = get_scheme(scheme)

    def bits(block: str, fmt: str, group: int, scale: int) -> float:
        if block:
            return get_block_format(block).storage_bits
        return get_format(fmt).bits + (scale / group if group else 0.0)

    return (bits(q.w_block, q.w_fmt, q.w_group, q.w_scale_bits),
            bits(q.a_block, q.a_fmt, q.a_group, q.a_scale_bits))


def _formats_note(r) -> str:
    """How the preset runs the formats of a run's operators (their ``formats`` notes, as
    ``tpe sim model`` prints them; ``""`` when it takes them as they are)."""
    return "; ".join(dict.fromkeys(o.mapping["formats"] for o in r.ops
                                   if "formats" in o.mapping))


def run(out: Path) -> dict:
    from hw.spec import load_arch
    from models.llm import load_model, lower, weight_bytes
    from sim.errors import FormatError
    from sim.execution import arch_scheme
    from sim.model import simulate_model

    results: dict = {}
    refused: dict = {}  # (model, phase, engine, scheme) -> the one-line error
    rows = []
    for model in MODELS:
        cfg = load_model(model)
        for phase, batch, seq in PHASES:
            for engine in ENGINES:
                arch = load_arch(engine)
                for scheme in SCHEMES:
                    key = (model, phase, engine, scheme)
                    try:
                        q = arch_scheme(scheme, arch)
                        ops = lower(cfg, phase=phase, batch=batch, seq=seq, quant=q)
                        r = simulate_model(arch, ops, name=cfg.name, phase=phase, batch=batch,
                                           seq=seq, quant=scheme,
                                           weight_bytes=weight_bytes(cfg, q))
                    except FormatError as err:
                        refused[key] = str(err)
                        continue
                    results[key] = r
                    w_bits, a_bits = storage_bits(scheme)
                    vector = sum(o.vector_cycles for o in r.ops) / max(r.cycles, 1)
                    rows.append({
                        "model": model, "phase": phase, "batch": batch, "seq": seq,
                        "engine": engine, "engine_spec": arch.engine.name, "scheme": scheme,
                        "seconds": r.seconds, "tokens": r.tokens,
                        "ms_per_token": r.seconds * 1e3 / r.tokens if r.tokens else None,
                        "tokens_per_s": r.tokens_per_s,
                        "energy_per_token_mj": (r.energy_per_token_pj or 0.0) / 1e9,
                        "dram_gb": r.dram_bytes / 1e9, "vector_cycle_share": vector,
                        "fits": r.fits, "area_mm2": r.area_um2 / 1e6,
                        "weight_storage_bits": w_bits, "activation_storage_bits": a_bits,
                        "formats": _formats_note(r),
                    })
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    _plot(results, out)
    (out.parent / "mx_study.md").write_text(_write_up(results, refused, rows, out))
    return results


def _plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    panels = [(m, p) for m in MODELS for p, _, _ in PHASES]
    fig, axes = plt.subplots(2, len(panels), figsize=(4.2 * len(panels), 6.4),
                             layout="constrained")
    x = np.arange(len(SCHEMES))
    width = 0.8 / len(ENGINES)
    for col, (model, phase) in enumerate(panels):
        for row, (metric, label) in enumerate((("ms", "ms per token"),
                                               ("mj", "mJ per token"))):
            ax = axes[row, col]
            for i, engine in enumerate(ENGINES):
                vals = []
                for s in SCHEMES:
                    r = results.get((model, phase, engine, s))
                    if r is None:
                        vals.append(np.nan)
                    elif metric == "ms":
                        vals.append(r.seconds * 1e3 / r.tokens)
                    else:
                        vals.append((r.energy_per_token_pj or 0.0) / 1e9)
                ax.bar(x + (i - (len(ENGINES) - 1) / 2) * width, vals, width, label=engine)
            ax.set_xticks(x, SCHEMES, fontsize=7, rotation=30)
            ax.set_ylabel(label, fontsize=8)
            ax.set_yscale("log")
            ax.set_title(f"{model} {phase}", fontsize=9)
            if row == 0 and col == 0:
                ax.legend(fontsize=7)
    fig.savefig(out / "time_energy.png", dpi=120)
    plt.close(fig)


def _write_up(results: dict, refused: dict, rows: list[dict], out: Path) -> str:
    from hw.spec import load_arch
    from models.quant import get_scheme

    rel = out.name
    lines = [
        "# Study: Llama-3-8B and Llama-2-70B on the MX engine against the INT8, LUT and "
        "bit-slice engines",
        "",
        "Reproduce with `.venv/bin/python benchmarks/mx_study.py`; it rewrites this page, "
        f"`{rel}/results.csv` and `{rel}/time_energy.png`. Every number below is computed by "
        "`sim.model.simulate_model` (the same code as `tpe sim model`).",
        "",
        "## Set-up",
        "",
        "| engine (preset) | spec | MACs/cycle at its built width (all cores) | area (mm^2, "
        "as `tpe sim model` reports it; GPUs: the die) |",
        "| --- | --- | ---: | ---: |",
    ]
    areas = {r["engine"]: r["area_mm2"] for r in rows}
    for e in ENGINES:
        a = load_arch(e)
        lines.append(f"| `{e}` | {a.engine.name} | {a.engine.macs_per_cycle * a.cores:g} | "
                     f"{areas[e]:.3f} |")
    a0 = load_arch(ENGINES[0])
    phases = ", ".join(f"{p} (batch {b}, {'KV cache' if p == 'decode' else 'prompt'} of "
                       f"{s} tokens)" for p, b, s in PHASES)
    lines += [
        "",
        f"The four engines sit in the same memory system ({a0.dram.bandwidth_gb_per_s:g} GB/s "
        f"DRAM, {a0.clock_mhz:g} MHz); the GPU presets are whole cards (their HBM, SMs and "
        f"clocks); phases: {phases}. Time and energy are per generated token (decode) or per "
        "prompt token (prefill). "
        + _fits_sentence(results),
        "",
        "The integer engines run an MX scheme as block floating point of `mantissa + 2` bits "
        "per element (E2M1 3 bits, E4M3 5: the run-time-precision engines run them at that "
        "width) with each block's partial sum scaled on the vector unit; the MX engine decodes "
        "the elements exactly and scales E8M0 blocks itself, NVFP4's E4M3 scales on its "
        "vector unit ([mx_engine.md](mx_engine.md)); the GPUs run what their tensor cores "
        "lack as the section on formats below says.",
        "",
        "| scheme | what it stores | bits per weight | bits per activation |",
        "| --- | --- | ---: | ---: |",
    ]
    for s in SCHEMES:
        wb, ab = storage_bits(s)
        lines.append(f"| `{s}` | {get_scheme(s).description} | {wb:g} | {ab:g} |")
    for model in MODELS:
        for phase, _, _ in PHASES:
            lines += ["", f"## {model}, {phase}: time and energy per token", "",
                      "| engine | " + " | ".join(f"`{s}`" for s in SCHEMES) + " |",
                      "| --- |" + " ---: |" * len(SCHEMES)]
            for e in ENGINES:
                cells = []
                for s in SCHEMES:
                    r = results.get((model, phase, e, s))
                    if r is None:
                        cells.append("refused")
                        continue
                    ms = r.seconds * 1e3 / r.tokens
                    cells.append(f"{ms:,.4g} ms, {(r.energy_per_token_pj or 0) / 1e9:,.4g} mJ")
                lines.append(f"| {e} | " + " | ".join(cells) + " |")
    lines += ["", f"![time and energy per token]({rel}/time_energy.png)", ""]
    lines += _formats_section(rows)
    lines += _findings(results, refused)
    return "\n".join(lines) + "\n"


def _formats_section(rows: list[dict]) -> list[str]:
    """Per preset and scheme: whether the preset takes the scheme's GEMM formats as they are
    and, where not, how the model runs them (the operators' ``formats`` notes)."""
    from hw.spec import load_arch
    from sim.gpu_model import NATIVE_FORMATS

    out = ["## How each preset runs the formats", ""]
    for g in GPUS:
        a = load_arch(g)
        native = sorted({f for d in a.gpu.dtypes for f in NATIVE_FORMATS.get(d, ())})
        out.append(f"- `{g}`: tensor cores for {', '.join(a.gpu.dtypes)} (formats taken as "
                   f"they are: {', '.join(native)}); none of the 4- and 6-bit formats, and no "
                   "block scales.")
    out += ["", "Native means the preset's datapath takes the scheme's GEMM operands, block "
            "scales included, as they are; otherwise the model's note for the run "
            "(`tpe sim model` prints it as `formats on PRESET:`; the same for decode and "
            "prefill and both models).", "",
            "| preset | scheme | native | how the model runs it |", "| --- | --- | --- | --- |"]
    seen: dict = {}
    for r in rows:
        seen.setdefault((r["engine"], r["scheme"]), r["formats"])
    for (e, s), note in seen.items():
        out.append(f"| `{e}` | `{s}` | {'yes' if not note else 'no'} | {note or '-'} |")
    return [*out, ""]


def _fits_sentence(results: dict) -> str:
    """Which runs hold their weights and KV cache in the preset's DRAM."""
    out = []
    for what, presets in (("engine", [e for e in ENGINES if e not in GPUS]), ("GPU", GPUS)):
        runs = {k: r for k, r in results.items() if k[2] in presets}
        fit = sorted({(k[0], k[3]) for k, r in runs.items() if r.fits})
        cap = next(iter(runs.values())).capacity_bytes / 2**30
        if not fit:
            out.append(f"No {what} run fits: every model's weights and KV cache exceed the "
                       f"{what} presets' memory ({cap:g} GiB); the figures are those of the "
                       "memory system as if they did.")
        elif len(fit) == len({(k[0], k[3]) for k in runs}):
            out.append(f"Every {what} run fits in its memory ({cap:g} GiB).")
        else:
            out.append(f"{what} runs that fit in memory: "
                       + ", ".join(f"{m} {s}" for m, s in fit) + ".")
    return " ".join(out)


def _findings(results: dict, refused: dict) -> list[str]:
    """Statements computed from the results."""
    out = ["## What the numbers say", ""]
    for model in MODELS:
        for phase, _, _ in PHASES:
            def r(e, s, model=model, phase=phase):
                return results.get((model, phase, e, s))

            mx4, sy8 = r("mx", "mxfp4"), r("systolic", "w8a8")
            if mx4 is not None and sy8 is not None:
                out.append(
                    f"- {model} {phase}: the MX engine under `mxfp4` takes "
                    f"{mx4.seconds / sy8.seconds:.2f}x the time and "
                    f"{(mx4.energy_per_token_pj or 0) / (sy8.energy_per_token_pj or 1):.2f}x "
                    "the energy per token of the INT8 systolic array under `w8a8`.")
            best = min((k for k in results if k[0] == model and k[1] == phase
                        and k[2] not in GPUS), key=lambda k: results[k].seconds)
            out.append(f"- {model} {phase}: fastest of the engines `{best[2]}` under "
                       f"`{best[3]}` ({results[best].seconds * 1e3 / results[best].tokens:,.2f}"
                       " ms per token).")
            for g in GPUS:
                base = r(g, "w8a8")
                if base is None:
                    continue
                ratios = ", ".join(
                    f"`{s}` {r(g, s).seconds / base.seconds:.2f}x" for s in SCHEMES
                    if s != "w8a8" and r(g, s) is not None)
                out.append(f"  - `{g}`: time against its native `w8a8` (INT8 tensor cores): "
                           f"{ratios}.")
            for e in ("systolic", "lut", "bitslice"):
                q = r(e, "mxfp4")
                if q is None:
                    continue
                vec = sum(o.vector_cycles for o in q.ops) / q.cycles
                out.append(f"  - `{e}` under `mxfp4`: the vector unit is busy {vec:.0%} of the "
                           "cycles (per output and block of 32: a multiply-add, and a "
                           "multiply for the second operand's scale).")
    reasons = sorted({(k[2], k[3], v.split(": ", 2)[-1]) for k, v in refused.items()})
    if reasons:
        out += ["", "Refused (one line each, as `tpe sim model` prints them):", ""]
        out += [f"- `{e}` `{s}`: {why}" for e, s, why in reasons]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPO / "docs" / "study_mx",
                   help="output folder (default docs/study_mx)")
    args = p.parse_args(argv)
    run(args.out)
    print(f"wrote {args.out / 'results.csv'}, {args.out / 'time_energy.png'} and "
          f"{args.out.parent / 'mx_study.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
