#!/usr/bin/env python3
"""The system model against the generated tile: random (shape, bandwidth, latency) points, each
a GEMM run on the tile RTL (``tpe gen tile``'s design, in ``amaranth.sim``) with the mapping the
model picks, C checked bit exact, measured cycles beside ``tpe sim gemm``'s.

The architecture is the ``systolic`` preset (or ``--arch cube`` or ``--arch matrix2d``) with a
small engine and small scratchpads (so a GEMM of a few dozen rows spans several buffer tiles in
every dimension, partial edge tiles included, and runs in seconds); each point draws its DRAM
link: bandwidth log-uniform between ``--min-bw`` and ``--max-bw`` bytes per cycle, latency
uniform in ``0..--max-latency`` cycles (clock 1 GHz, so GB/s and ns read as bytes and
cycles), and M, N, K uniform in ``block + 1 .. --max-dim``. The model's figures take the
tile's port as the link's beat (``dram.beat_bytes``: ``tile_bench.tile_arch``).

Writes ``results/tile_agreement_<date>.csv`` (one row per point; ``--arch`` and ``--set`` name
the file too, e.g. ``tile_agreement_cube_output_double_buffer-true_<date>.csv``) and prints
the table with the largest and mean absolute error, overall and on the points where the link
limits (the model labels the GEMM memory-bound, or its DRAM stalls are at least a tenth of its
cycles).

Usage (repository root)::

    .venv/bin/python benchmarks/tile_agreement.py                 # 30 points, about 3 min
    .venv/bin/python benchmarks/tile_agreement.py --points 60 --seed 2
    .venv/bin/python benchmarks/tile_agreement.py --set engine.dataflow=ws \
        --set engine.weight_double_buffer=true --out /tmp/ws.csv
    .venv/bin/python benchmarks/tile_agreement.py --arch cube
"""

from __future__ import annotations

import argparse
import csv
import datetime
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from hw.spec import SpecError, load_arch, tile_spec  # noqa: E402
from sim.system import simulate_op  # noqa: E402
from sim.verify.tile_bench import SMALL_TILES, compare, model_gemm, tile_arch  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"



def points(n: int, seed: int, min_bw: float, max_bw: float, max_latency: int, max_dim: int,
           rows: int) -> list[tuple[int, int, int, float, int]]:
    """``n`` random ``(M, N, K, bytes per cycle, latency)`` points."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        M, N, K = (int(x) for x in rng.integers(rows + 1, max_dim + 1, 3))
        bw = float(np.round(np.exp(rng.uniform(np.log(min_bw), np.log(max_bw))), 2))
        out.append((M, N, K, bw, int(rng.integers(0, max_latency + 1))))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, default=30, help="random points (default 30)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--min-bw", type=float, default=0.5, help="bytes per cycle (default 0.5)")
    ap.add_argument("--max-bw", type=float, default=16.0, help="bytes per cycle (default 16)")
    ap.add_argument("--max-latency", type=int, default=200, help="cycles (default 200)")
    ap.add_argument("--max-dim", type=int, default=40, help="largest M, N, K (default 40)")
    ap.add_argument("--arch", choices=sorted(SMALL_TILES), default="systolic",
                    help="the preset whose small tile runs (default systolic)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="an override of the architecture on top of the small tile, as in "
                    "tpe (e.g. engine.dataflow=ws); repeatable")
    ap.add_argument("--out", type=Path, default=None, help="CSV path")
    ap.add_argument("--markdown", type=Path, default=None, metavar="CSV",
                    help="print a results CSV of this benchmark as the Markdown tables of "
                    "docs/tile.md and run nothing")
    args = ap.parse_args(argv)
    if args.markdown is not None:
        try:
            with args.markdown.open(newline="") as f:
                print(markdown(list(csv.DictReader(f))))
        except (OSError, KeyError, ValueError) as err:
            ap.error(f"--markdown: cannot read {args.markdown} as this benchmark's CSV "
                     f"({err})")
        return 0
    if args.points < 1 or not 0 < args.min_bw <= args.max_bw or args.max_latency < 0:
        ap.error("--points must be >= 1, 0 < --min-bw <= --max-bw, --max-latency >= 0")
    base = [*SMALL_TILES[args.arch], "clock_mhz=1000", *args.sets]
    try:
        spec = tile_spec(load_arch(args.arch, base))
    except SpecError as err:
        ap.error(str(err))
    rows = max(spec.fold_block)
    if args.max_dim <= rows:
        ap.error(f"--max-dim must exceed the engine's block of {rows}")
    # overrides name the default file: tile_agreement_dataflow-ws_<date>.csv
    tag = ("" if args.arch == "systolic" else f"{args.arch}_") + "".join(
        f"{s.rpartition('.')[2].replace('=', '-')}_" for s in args.sets)
    out = args.out or RESULTS / f"tile_agreement_{tag}{datetime.date.today().isoformat()}.csv"
    header = ["M", "N", "K", "bytes_per_cycle", "latency_cycles", "tile", "loop_order",
              "refit", "transposed", "bound", "dram_stall_share", "measured_cycles",
              "model_cycles", "error", "moved_bytes", "model_bytes"]
    rows_out = []
    rng = np.random.default_rng(args.seed + 1)
    t0 = time.perf_counter()
    print(f"{'M x N x K':>10} {'B/cyc':>6} {'lat':>4} {'tile':>9} {'order':>5} {'bound':>7} "
          f"{'measured':>9} {'model':>7} {'error':>7}")
    for M, N, K, bw, lat in points(args.points, args.seed, args.min_bw, args.max_bw,
                                   args.max_latency, args.max_dim, rows):
        arch = load_arch(args.arch, [*base, f"dram.bandwidth_gb_per_s={bw}",
                                      f"dram.latency_ns={lat}"])
        r = compare(arch, M, N, K, rng)
        # tpe sim gemm's figures (either orientation), as tpe verify's
        res = simulate_op(tile_arch(arch), model_gemm(arch, M, N, K))
        assert res.core is not None
        share = res.core.dram_stall_cycles / res.cycles
        limited = res.bound == "memory" or share >= 0.1
        mp = r.mapping
        tile = f"{mp.tile_m}x{mp.tile_n}x{mp.tile_k}"
        order = "".join(mp.loop_order)
        rows_out.append({"M": M, "N": N, "K": K, "bytes_per_cycle": bw, "latency_cycles": lat,
                         "tile": tile, "loop_order": order, "refit": r.refit,
                         "transposed": r.transposed,
                         "bound": "link" if limited else "compute",
                         "dram_stall_share": round(share, 4),
                         "measured_cycles": r.measured_cycles, "model_cycles": r.model_cycles,
                         "error": round(r.error, 5), "moved_bytes": r.moved_bytes,
                         "model_bytes": r.model_bytes})
        mark = ("*" if r.refit else "") + ("T" if r.transposed else "")
        print(f"{f'{M}x{N}x{K}':>10} {bw:>6} {lat:>4} {tile + mark:>9} "
              f"{order:>5} {'link' if limited else 'compute':>7} {r.measured_cycles:>9} "
              f"{r.model_cycles:>7} {r.error:>+7.1%}", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        w.writerows(rows_out)
    print(f"\n{len(rows_out)} points in {time.perf_counter() - t0:.0f} s; * refit to the "
          "scratchpad lines (model figures for the refit mapping); T the model runs C^T = "
          "W^T A^T (the tile too, the buffer tile of N x M)")
    for label, n, largest, mean, within in summary(rows_out):
        print(f"{label:>14}: {n:>3} points, |error| max {largest:.1%}, mean {mean:.1%}, "
              f"within 2% {within}")
    print(f"wrote {out}")
    return 0


def summary(rows: list[dict]) -> list[tuple[str, int, float, float, int]]:
    """(points, count, largest and mean |error|, points within 2%) for all points, those the
    link limits and the compute-bound ones (those with any point)."""
    out = []
    for label, sel in (("all", rows),
                       ("link-limited", [r for r in rows if r["bound"] == "link"]),
                       ("compute-bound", [r for r in rows if r["bound"] == "compute"])):
        if sel:
            err = np.abs([float(r["error"]) for r in sel])
            out.append((label, len(sel), float(err.max()), float(err.mean()),
                        int((err <= 0.02).sum())))
    return out


def markdown(rows: list[dict]) -> str:
    """The points and the summary of a results CSV as Markdown tables."""
    lines = ["| M x N x K | bytes/cycle | latency | buffer tile | loop order | bound | measured "
             "| model | error |", "| --- | ---: | ---: | --- | --- | --- | ---: | ---: | ---: |"]
    for r in rows:
        refit = "*" if str(r["refit"]) == "True" else ""
        refit += " (C^T)" if str(r.get("transposed")) == "True" else ""
        lines.append(f"| {r['M']}x{r['N']}x{r['K']} | {r['bytes_per_cycle']} | "
                     f"{r['latency_cycles']} | {r['tile']}{refit} | {r['loop_order']} | "
                     f"{r['bound']} | {int(r['measured_cycles']):,} | "
                     f"{int(r['model_cycles']):,} | {float(r['error']):+.1%} |")
    lines += ["", "| points | count | largest error | mean error | within 2% |",
              "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {label} | {n} | {largest:.1%} | {mean:.1%} | {within} |"
              for label, n, largest, mean, within in summary(rows)]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
