"""Cycles and area per MAC of the bit-slice and LUT engines versus operand bits, against INT8.

For bits b = 1..8, a 4x4 array of each engine is generated and synthesized (the ``hw.synth``
flow: generic gates, estimated transistors; and the netlist in sky130_fd_sc_hd standard cells,
um^2), and its cycles come from its timing contract:

* ``bitslice`` (2-bit slices): activations and weights both b bits (a_bits = w_bits = b);
* ``lut`` (group 4, symmetric tables): weights b bits, activations 8 bits (the mixed-precision
  case LUT Tensor Core is built for);
* baseline: the 4x4 INT8 output-stationary systolic array, at 8 bits.

Per engine and point: cycles per MAC of one PE in steady state (1 / (macs_per_cycle / PEs)),
transistors and um^2 per PE, and area-time per MAC (their product with the cycles), each also
as a ratio to the INT8 systolic PE. Lower is better; a ratio below 1 beats the INT8 baseline.

Run: ``.venv/bin/python benchmarks/precision_scaling.py``; writes
``benchmarks/results/precision_scaling_<date>.csv`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys
import tempfile
from pathlib import Path

from hw.emit import generate, read_manifest
from hw.spec import engine_from_dict

ROWS = COLS = 4


def points():
    yield "systolic", 8, {"kind": "systolic", "rows": ROWS, "cols": COLS, "a_bits": 8,
                          "w_bits": 8, "acc_bits": 32, "dataflow": "os"}
    for b in range(1, 9):
        yield "bitslice", b, {"kind": "bitslice", "rows": ROWS, "cols": COLS, "slice_bits": 2,
                              "a_bits": b, "w_bits": b, "acc_bits": 32}
        yield "lut", b, {"kind": "lut", "rows": ROWS, "cols": COLS, "group": 4,
                         "symmetric": True, "a_bits": 8, "w_bits": b, "acc_bits": 32}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="tpe_prec_") as tmp:
        for kind, bits, data in points():
            spec = engine_from_dict(data, prefix="")
            fig = read_manifest(generate(spec, Path(tmp), synth=True))["synth"]
            pes = ROWS * COLS
            cycles_per_mac = pes / spec.macs_per_cycle
            tr_per_pe = fig["transistors"] / pes
            um2_per_pe = fig["area_um2"] / pes
            rows.append({"kind": kind, "bits": bits, "name": spec.name,
                         "a_bits": spec.a_bits, "w_bits": spec.w_bits,
                         "cycles_per_mac_per_pe": round(cycles_per_mac, 4),
                         "transistors_per_pe": round(tr_per_pe, 1),
                         "area_time_per_mac": round(cycles_per_mac * tr_per_pe, 1),
                         "longest_path_cells": fig["longest_path_cells"],
                         "um2_per_pe": round(um2_per_pe, 1),
                         "um2_time_per_mac": round(cycles_per_mac * um2_per_pe, 1),
                         "longest_path_std_cells": fig["longest_path_std_cells"]})
            print(f"  {spec.name}: {fig['transistors']} transistors, {fig['area_um2']:.0f} um^2",
                  file=sys.stderr)
    base = rows[0]
    for r in rows:
        for key in ("cycles_per_mac_per_pe", "transistors_per_pe", "area_time_per_mac",
                    "um2_per_pe", "um2_time_per_mac"):
            r[f"{key}_vs_int8_systolic"] = round(r[key] / base[key], 3)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"precision_scaling_{dt.date.today().isoformat()}.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print("| engine | a bits | w bits | cycles per MAC per PE | transistors per PE | "
          "um^2 per PE (sky130) | um^2-cycles per MAC | vs INT8 systolic: cycles | "
          "transistors | um^2 | um^2-cycles |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['kind']} | {r['a_bits']} | {r['w_bits']} | {r['cycles_per_mac_per_pe']} | "
              f"{r['transistors_per_pe']} | {r['um2_per_pe']} | {r['um2_time_per_mac']} | "
              f"{r['cycles_per_mac_per_pe_vs_int8_systolic']} | "
              f"{r['transistors_per_pe_vs_int8_systolic']} | "
              f"{r['um2_per_pe_vs_int8_systolic']} | "
              f"{r['um2_time_per_mac_vs_int8_systolic']} |")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
