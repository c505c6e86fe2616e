"""Logic depth, pipeline stages and area of the pipeline options, per engine kind, with Yosys.

For the adder tree (``mult_reg``, ``tree_stage_levels``), the cube (the same, and ``cpa_reg``
with OPT1) and the OPT1 systolic array (``cpa_reg``), each at one INT8 size (8-bit operands,
32-bit accumulators; the systolic array at INT4 too) and in a plain and a
bit-weight-transformed arithmetic variant, every design is generated with
pipelining off and at a few settings and synthesized with the flow of ``hw.synth`` (generic
gates: longest combinational path in gate cells, estimated transistors; sky130_fd_sc_hd
cells: area in um^2 of which flip-flops, longest path in library cells). The latency the
registers add (``pipeline_cycles``) comes from the spec, which the cycle model and the
lock-step tests use; the tables show it beside the depth it buys.

Run: ``.venv/bin/python benchmarks/synth_pipelining.py [--doc docs/pipelining.md]``
(about 10 to 15 minutes on 2 cores, ABC dominating); writes
``benchmarks/results/synth_pipelining_<date>.csv``, prints one Markdown table per kind and,
with ``--doc``, replaces the text between the lines ``<!-- synth_pipelining:begin -->`` and
``<!-- synth_pipelining:end -->`` of that file with them. ``--tables CSV`` does the same from
an earlier run's CSV without synthesizing.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

from synth_transforms import read_rows  # the same CSV reader (numbers as numbers)

from hw.emit import generate, read_manifest
from hw.spec import engine_from_dict

INT8 = {"a_bits": 8, "w_bits": 8, "acc_bits": 32, "signed": True}
#: Per kind: its INT8 size and the arithmetic variants (label, options, the pipeline settings
#: it is synthesized at: label, options). The adder tree's k=16 is the
#: width of the TPE paper's trees, the cube's k=8 its cube's depth. Without ``mult_reg`` the
#: settings register after one level only: ABC's mapping of a register fed by sums of several
#: multipliers' products took minutes (77 s for one 8-wide tree at two levels per stage).
PIPE_SETTINGS = [("off", {}), ("mult_reg", {"mult_reg": True}),
                 ("tree_stage_levels=1", {"tree_stage_levels": 1}),
                 ("mult_reg, tree_stage_levels=2", {"mult_reg": True, "tree_stage_levels": 2}),
                 ("mult_reg, tree_stage_levels=1", {"mult_reg": True, "tree_stage_levels": 1})]
#: The cube's OPT1 variant also registers its drain's carry-propagate adds (``cpa_reg``).
CUBE_OPT1_SETTINGS = [*PIPE_SETTINGS[:2], ("cpa_reg", {"cpa_reg": True}),
                      *((f"{label}, cpa_reg", {**pipe, "cpa_reg": True})
                        for label, pipe in PIPE_SETTINGS[2:])]
CASES: dict[str, tuple[dict, list[tuple[str, dict, list[tuple[str, dict]]]]]] = {
    "addertree": (
        {"lanes": 1, "k": 16, "dataflow": "os"},
        [("plain", {}, PIPE_SETTINGS),
         ("booth+compress (OPT2)", {"booth": True, "compress": True}, PIPE_SETTINGS)],
    ),
    "cube": (
        {"m": 1, "n": 2, "k": 8},
        [("plain", {}, PIPE_SETTINGS),
         ("booth+csa_accumulate (OPT1)", {"booth": True, "csa_accumulate": True},
          CUBE_OPT1_SETTINGS)],
    ),
    "systolic": (
        {"rows": 4, "cols": 4},
        [(label, arith, [("off", {}), ("cpa_reg", {"cpa_reg": True})]) for label, arith in (
            ("booth+csa_accumulate (OPT1), OS", {"booth": True, "csa_accumulate": True}),
            ("booth+csa_accumulate (OPT1), WS", {"booth": True, "csa_accumulate": True,
                                                 "dataflow": "ws"}),
            ("csa_accumulate, OS", {"csa_accumulate": True}),
            ("booth+csa_accumulate (OPT1), OS, INT4 (4/4/16 bits)",
             {"booth": True, "csa_accumulate": True, "a_bits": 4, "w_bits": 4,
              "acc_bits": 16}))],
    ),
}
BEGIN, END = "<!-- synth_pipelining:begin -->", "<!-- synth_pipelining:end -->"
TITLES = {"addertree": "Adder tree, one lane of k=16, output stationary",
          "cube": "Cube, 1 x 2 x k=8",
          "systolic": "Systolic array, 4 x 4, OPT1's edge carry-propagate adders"}


def designs():
    for kind, (dims, variants) in CASES.items():
        for variant, arith, settings in variants:
            for setting, pipe in settings:
                spec = engine_from_dict({"kind": kind, **INT8, **dims, **arith, **pipe},
                                        prefix="")
                yield kind, variant, setting, spec


def measure() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="tpe_synth_pipe_") as tmp:
        for kind, variant, setting, spec in designs():
            t = time.perf_counter()
            fig = read_manifest(generate(spec, Path(tmp), synth=True))["synth"]
            rows.append({
                "kind": kind, "variant": variant, "pipelining": setting, "name": spec.name,
                "tree_levels": getattr(spec, "tree_levels", ""),
                "added_cycles": spec.pipeline_cycles,
                "longest_path_cells": fig["longest_path_cells"],
                "transistors": fig["transistors"],
                "longest_path_std_cells": fig["longest_path_std_cells"],
                "area_um2": fig["area_um2"], "flipflop_area_um2": fig["flipflop_area_um2"],
                "synth_s": round(time.perf_counter() - t, 2)})
            print(f"  {spec.name}: depth {fig['longest_path_std_cells']} cells, "
                  f"{fig['area_um2']:.0f} um^2", file=sys.stderr)
    return rows


def tables(rows: list[dict]) -> list[str]:
    """One Markdown table per kind: each variant off and at each setting, with the depth and
    area ratios against the same variant unpipelined."""
    out: list[str] = []
    for kind in CASES:
        mine = [r for r in rows if r["kind"] == kind]
        if not mine:
            continue
        out += [f"**{TITLES[kind]}**", "",
                "| arithmetic | pipelining | tree levels | stages (cycles of latency "
                "added) | longest path, sky130 cells | vs off | area (um^2) | vs off "
                "| of which flip-flops (um^2) | longest path, generic gates | transistors |",
                "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in mine:
            base = next(x for x in mine if x["variant"] == r["variant"]
                        and x["pipelining"] == "off")
            depth = r["longest_path_std_cells"] / base["longest_path_std_cells"]
            area = r["area_um2"] / base["area_um2"]
            out.append(
                f"| {r['variant']} | {r['pipelining']} | {r['tree_levels']} | "
                f"{1 + r['added_cycles']} ({r['added_cycles']}) | "
                f"{r['longest_path_std_cells']} | {depth:.2f}x | {r['area_um2']:,.0f} | "
                f"{area:.2f}x | {r['flipflop_area_um2']:,.0f} | {r['longest_path_cells']} | "
                f"{r['transistors']:,} |")
        out.append("")
    return out


def write_doc(path: Path, lines: list[str], source: str) -> None:
    text = path.read_text()
    head, sep, rest = text.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise SystemExit(f"{path}: no {BEGIN} ... {END} region to write the tables into")
    body = "\n".join([f"<!-- written by benchmarks/synth_pipelining.py from {source} -->", "",
                      *lines])
    path.write_text(f"{head}{BEGIN}\n{body}\n{END}{tail}")
    print(f"wrote the tables into {path}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--tables", type=Path, metavar="CSV",
                    help="the tables of an earlier run's CSV instead of synthesizing")
    ap.add_argument("--doc", type=Path, metavar="MD",
                    help="write the tables into this Markdown file's marked region")
    args = ap.parse_args(argv)
    if args.tables is not None:
        rows, path = read_rows(args.tables), args.tables
    else:
        rows = measure()
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"synth_pipelining_{dt.date.today().isoformat()}.csv"
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        print(f"wrote {path}")
    lines = tables(rows)
    print("\n".join(lines))
    if args.doc is not None:
        write_doc(args.doc, lines, path.as_posix())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
