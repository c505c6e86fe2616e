"""Synthesize baseline and bit-weight-transformed variants of every engine kind with Yosys.

For each engine kind, a small reference array (sizes below) at INT8 (8-bit operands, 32-bit
accumulators) and at one low-precision point (4-bit operands, 16-bit accumulators) is
generated in every combination of the kind's arithmetic options (its boolean spec fields
other than ``signed``: e.g. ``booth``, ``csa_accumulate``, ``compress``) and synthesized with
the flow of ``hw.synth`` (generic gates, no technology library). The table gives cells,
estimated transistors and the longest combinational path in gate cells, with ratios against two
baselines: the plain variant (Yosys's own ``acc + a * w``) and the Booth variant (a radix-4
Booth multiplier MAC) where the kind has a ``booth`` option.

"Area efficiency" follows the TPE paper's meaning, throughput per area: at the same clock the
ratio is baseline transistors / variant transistors; at each design's own maximum clock
(throughput ~ 1 / longest path) it is (T_base x D_base) / (T_var x D_var).

Run: ``.venv/bin/python benchmarks/synth_transforms.py [--kinds systolic cube ...]``; writes
``benchmarks/results/synth_transforms_<date>.csv`` and prints a Markdown table.
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
PRECISIONS = {"int8": {"a_bits": 8, "w_bits": 8, "acc_bits": 32},
              "int4": {"a_bits": 4, "w_bits": 4, "acc_bits": 16}}


def option_fields(cls: type) -> list[str]:
    return [n for n, f in cls.__pydantic_fields__.items()
            if f.annotation is bool and n != "signed"]


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
    args = ap.parse_args(argv)
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
                             "synth_s": round(time.perf_counter() - t, 2)})
                print(f"  {spec.name}: {fig['transistors']} transistors, depth "
                      f"{fig['longest_path_cells']}", file=sys.stderr)
    # Ratios against the plain and the Booth-only variant of the same kind and precision.
    for r in rows:
        same = [x for x in rows if x["kind"] == r["kind"] and x["precision"] == r["precision"]]
        for label, pick in (("plain", "plain"), ("booth", "booth")):
            base = next((x for x in same if x["options"] == pick), None)
            if base is None:
                r[f"area_ratio_vs_{label}"] = r[f"area_eff_vs_{label}"] = ""
                continue
            r[f"area_ratio_vs_{label}"] = round(base["transistors"] / r["transistors"], 3)
            r[f"area_eff_vs_{label}"] = round(
                base["transistors"] * base["longest_path_cells"]
                / (r["transistors"] * r["longest_path_cells"]), 3)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"synth_transforms_{dt.date.today().isoformat()}.csv"
    fields = sorted({k for r in rows for k in r}, key=lambda k: (k.startswith("opt_"), k))
    head = ["kind", "precision", "options", "name", "macs_per_cycle", "cells", "transistors",
            "longest_path_cells", "area_ratio_vs_plain", "area_eff_vs_plain",
            "area_ratio_vs_booth", "area_eff_vs_booth", "synth_s"]
    fields = head + [f for f in fields if f not in head]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    print("| kind | precision | options | transistors | longest path (cells) | area vs plain "
          "| area eff. vs plain | area vs Booth | area eff. vs Booth |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['kind']} | {r['precision']} | {r['options']} | {r['transistors']} | "
              f"{r['longest_path_cells']} | {r['area_ratio_vs_plain']} | "
              f"{r['area_eff_vs_plain']} | {r['area_ratio_vs_booth']} | "
              f"{r['area_eff_vs_booth']} |")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
