#!/usr/bin/env python3
"""Area of the MX engine's datapath per element format, synthesized with Yosys, against an
INT8 dot-product lane of the same width and against the cost model's figures.

For each element format set below, one MX lane (``rows=1, lanes=1``) with a block of
``--block`` elements (one block per cycle: ``block`` MACs per cycle) is generated and
synthesized with the flow of ``hw.synth`` (generic gates: estimated transistors; the netlist
mapped to sky130_fd_sc_hd cells: um^2 from the cells' LEF sizes), beside an output-stationary
INT8 adder-tree lane of ``k = block`` (the same MACs per cycle, INT8 x INT8 products into a
32-bit accumulator). The cost model's area (:func:`sim.energy.area_breakdown`'s arithmetic:
multipliers, adders and registers, at the ``horowitz45`` table) is computed for the same
specs, so the model's MX-to-INT8 ratio can be read against the synthesized one.

Run: ``.venv/bin/python benchmarks/mx_area.py [--block 8] [--formats SET ...]``; writes
``benchmarks/results/mx_area_<date>.csv`` (a row as each design finishes) and prints a
Markdown table. (On a busy 2-core machine ABC took over 30 minutes on the sets with ``int8``,
which has the widest significand multiplier, without finishing; the FP sets take about half a
minute each.)
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

#: Element format sets: each MX element format alone and the mx preset's set.
FORMAT_SETS = ("fp4_e2m1", "fp6_e2m3", "fp6_e3m2", "fp8_e4m3", "int8", "fp8_e5m2",
               "fp8_e4m3+fp6_e3m2+fp6_e2m3+fp4_e2m1+int8")


def model_area_um2(engine) -> float:
    """The cost model's arithmetic and register area of ``engine`` (um^2, horowitz45)."""
    from hw.spec import load_arch
    from sim.energy import area_breakdown

    arch = dataclasses.replace(load_arch("systolic"), engine=engine)
    parts = area_breakdown(arch)
    return sum(v for k, v in parts.items() if k in ("pe_multipliers", "pe_adders",
                                                     "pe_registers"))


def main(argv: list[str] | None = None) -> int:
    from hw.emit import generate, read_manifest
    from hw.spec import engine_from_dict

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--block", type=int, default=8, help="elements per block (default 8)")
    p.add_argument("--formats", nargs="+", default=list(FORMAT_SETS), metavar="SET",
                   help="element format sets to synthesize (default: each format and the "
                   "preset's set)")
    args = p.parse_args(argv)
    specs = [("int8 adder tree", engine_from_dict(
        {"kind": "addertree", "lanes": 1, "k": args.block, "dataflow": "os"}))]
    specs += [(f, engine_from_dict({"kind": "mx", "lanes": 1, "block": args.block,
                                    "formats": f})) for f in args.formats]
    rows = []
    out = REPO / "benchmarks" / "results" / f"mx_area_{dt.date.today().isoformat()}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    fields = ["design", "name", "transistors", "area_um2", "model_area_um2", "synth_ratio",
              "model_ratio"]
    with tempfile.TemporaryDirectory() as tmp, open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for label, spec in specs:
            fig = read_manifest(generate(spec, Path(tmp), synth=True))["synth"]
            row = {"design": label, "name": spec.name, "transistors": fig["transistors"],
                   "area_um2": fig["area_um2"], "model_area_um2": model_area_um2(spec)}
            base = rows[0] if rows else row
            row["synth_ratio"] = row["area_um2"] / base["area_um2"]
            row["model_ratio"] = row["model_area_um2"] / base["model_area_um2"]
            rows.append(row)
            w.writerow(row)
            f.flush()
            print(f"synthesized {spec.name}", file=sys.stderr)
    print(f"| design (block {args.block}) | sky130 um^2 | transistors | x INT8 (synthesis) | "
          "x INT8 (cost model) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['design']} | {r['area_um2']:,.0f} | {r['transistors']:,} | "
              f"{r['synth_ratio']:.2f} | {r['model_ratio']:.2f} |")
    print(f"wrote {out.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
