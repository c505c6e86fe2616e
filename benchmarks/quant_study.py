#!/usr/bin/env python3
"""Worked study: Llama-2-7B decode on an INT8 systolic array, a bit-slice engine and a LUT engine
under W8A8, W4A16, W2A16 and W8A8 with a KIVI 4-bit KV cache.

Every number comes from ``sim.model.simulate_model`` on the ``systolic``, ``bitslice`` and
``lut`` presets (the same 1024 INT8 MACs per cycle, the same buffers, DRAM and clock), for decode
steps at several batch sizes against a 2048-token KV cache. Writes, into ``--out`` (default
``docs/study``):

* ``results.csv``: one row per engine x scheme x batch with time per output token, tokens/s,
  energy per token, DRAM bytes and the share of time spent in attention;
* ``tpot.png``: time per output token per engine and scheme (batch 1 and the largest batch);
* ``energy.png``: energy per token by component;
* ``breakdown.png``: per-operator time shares at the largest batch;
* ``table.md``: the Markdown tables that ``docs/quant_study.md`` quotes.

Usage (repository root): ``.venv/bin/python benchmarks/quant_study.py`` (a few seconds).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

ENGINES = ("systolic", "bitslice", "lut")
SCHEMES = ("w8a8", "w4a16", "w2a16", "w8a8+kv4")
BATCHES = (1, 16)
MODEL = "llama-2-7b"
SEQ = 2048


def run(out: Path) -> list[dict[str, object]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from hw.spec import load_arch
    from models.llm import load_model, lower
    from sim.energy import SYSTEM_ENERGY_COMPONENTS
    from sim.model import simulate_model

    cfg = load_model(MODEL)
    rows: list[dict[str, object]] = []
    results = {}
    for engine in ENGINES:
        arch = load_arch(engine)
        for scheme in SCHEMES:
            for batch in BATCHES:
                ops = lower(cfg, phase="decode", batch=batch, seq=SEQ, quant=scheme)
                r = simulate_model(arch, ops, name=cfg.name, phase="decode", batch=batch,
                                   seq=SEQ, quant=scheme)
                results[engine, scheme, batch] = r
                attn = sum(o.seconds for o in r.ops if o.kind == "attention")
                rows.append({
                    "engine": engine, "engine_spec": arch.engine.name, "scheme": scheme,
                    "batch": batch, "seq": SEQ, "tpot_ms": r.seconds * 1e3,
                    "tokens_per_s": r.tokens_per_s, "energy_per_token_mj":
                    (r.energy_per_token_pj or 0.0) / 1e9, "dram_mb_per_step": r.dram_bytes / 1e6,
                    "utilization": r.utilization, "attention_share": attn / r.seconds,
                    **{f"energy_{k}_mj": r.energy_breakdown_pj[k] / batch / 1e9
                       for k in SYSTEM_ENERGY_COMPONENTS},
                })
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)

    x = np.arange(len(SCHEMES))
    width = 0.8 / len(ENGINES)
    fig, axes = plt.subplots(1, len(BATCHES), figsize=(5 * len(BATCHES), 3.6),
                             layout="constrained")
    for ax, batch in zip(np.atleast_1d(axes), BATCHES, strict=True):
        for i, engine in enumerate(ENGINES):
            vals = [results[engine, s, batch].seconds * 1e3 for s in SCHEMES]
            ax.bar(x + (i - 1) * width, vals, width, label=engine)
        ax.set_xticks(x, SCHEMES)
        ax.set_ylabel("time per output token (ms)")
        ax.set_title(f"{MODEL} decode, batch {batch}, KV {SEQ}", fontsize=9)
        ax.legend(fontsize=8)
    fig.savefig(out / "tpot.png", dpi=130)
    plt.close(fig)

    batch = BATCHES[-1]
    fig, ax = plt.subplots(figsize=(10, 3.8), layout="constrained")
    labels = [f"{e}\n{s}" for e in ENGINES for s in SCHEMES]
    bottom = np.zeros(len(labels))
    for comp in SYSTEM_ENERGY_COMPONENTS:
        vals = np.array([results[e, s, batch].energy_breakdown_pj[comp] / batch / 1e9
                         for e in ENGINES for s in SCHEMES])
        if vals.any():
            ax.bar(labels, vals, bottom=bottom, label=comp)
            bottom += vals
    ax.set_ylabel("energy per token (mJ)")
    ax.set_title(f"{MODEL} decode, batch {batch}: energy per token by component", fontsize=9)
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(fontsize=7, ncol=3)
    fig.savefig(out / "energy.png", dpi=130)
    plt.close(fig)

    from sim.plots import plot_op_breakdown

    phases = {}
    for e in ENGINES:
        for s in SCHEMES:
            phases[f"{e} {s}"] = {k: v * 1e3 for k, v in
                                  results[e, s, batch].time_by_op().items()}
    fig, ax = plt.subplots(figsize=(9, 1.5 + 0.35 * len(phases)), layout="constrained")
    plot_op_breakdown(ax, phases)
    ax.set_title(f"{MODEL} decode, batch {batch}: time per operator", fontsize=9)
    fig.savefig(out / "breakdown.png", dpi=130)
    plt.close(fig)

    lines = []
    for b in BATCHES:
        lines += [f"Batch {b} (KV cache {SEQ} tokens):", "",
                  "| engine | " + " | ".join(SCHEMES) + " |",
                  "| --- |" + " ---: |" * len(SCHEMES)]
        for e in ENGINES:
            cells = []
            for s in SCHEMES:
                r = results[e, s, b]
                cells.append(f"{r.seconds * 1e3:.2f} ms, {(r.energy_per_token_pj or 0) / 1e9:.2f}"
                             " mJ")
            lines.append(f"| {e} | " + " | ".join(cells) + " |")
        lines.append("")
    (out / "table.md").write_text("\n".join(lines))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPO / "docs" / "study",
                   help="output folder (default docs/study)")
    args = p.parse_args(argv)
    rows = run(args.out)
    print(f"{len(rows)} runs; wrote {args.out}/results.csv, tpot.png, energy.png, "
          "breakdown.png, table.md")
    print((args.out / "table.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
