#!/usr/bin/env python3
"""How fast the DRAM timeline is (``sim.timeline.timeline_cycles``), with its skips and without.

The timelines are those the simulator runs: the cold 512x4096x4096 INT8 GEMM of
``sim_speed.py`` on the ``systolic`` preset, and the GEMMs of ``--points`` random points of the
10k sweep (``sweep_speed.py``'s spec), recorded as the simulator calls them. Each is then timed
in this process both ways, taking turns (``skip=False``: every step of the reduced nest, the
walk before the skips; the default: with them), its memo cleared before each call (the nest's
plan stays memoized, as in a sweep), and the figures compared (cycle counts must be equal).
``--baseline REV`` also times revision REV's ``sim/timeline.py`` (read with ``git show``, run in
this process on the same calls, taking turns with this tree's): each call with the skips, and
each distinct nest's plan (``_plan``, its memo bypassed, as a sweep point's new nest costs it),
and counts the cycle counts that differ from REV's (none may).

Usage (repository root)::

    .venv/bin/python benchmarks/timeline_speed.py              # about a minute
    .venv/bin/python benchmarks/timeline_speed.py --points 20
    .venv/bin/python benchmarks/timeline_speed.py --baseline main   # this tree against main

Writes ``benchmarks/results/timeline_speed_<date>.csv`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import math
import os
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import sim.memory  # noqa: E402
from sim import timeline  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


def record(points: int, seed: int) -> dict[str, list[tuple]]:
    """The timelines the simulator runs, per case: their arguments as it passes them."""
    from hw.spec import load_arch
    from models.ops import Gemm
    from sim import clear_caches
    from sim.sweep import _Evaluator, grid_size, load_sweep, point_values
    from sim.system import simulate_op

    calls: list[tuple] = []
    real = sim.memory.timeline_cycles

    def recording(nest, *args):
        calls.append((nest, *args))
        return real(nest, *args)

    sim.memory.timeline_cycles = recording
    try:
        clear_caches()
        g = Gemm(name="gemm", M=512, N=4096, K=4096, a_fmt="int8", w_fmt="int8", o_fmt="int32")
        simulate_op(load_arch("systolic"), g)
        gemm = list(calls)
        calls.clear()
        spec = load_sweep(str(REPO / "examples" / "sweeps" / "llama7b_10k.toml"))
        rng = random.Random(seed)
        total = grid_size(spec)
        _Evaluator(spec).evaluate([point_values(spec, rng.randrange(total))
                                   for _ in range(points)])
        sweep = list(calls)
    finally:
        sim.memory.timeline_cycles = real
    return {"cold GEMM 512x4096x4096": gemm, f"10k sweep, {points} random points": sweep}


def time_case(calls: list[tuple], repeats: int) -> dict[str, float]:
    """Seconds for all ``calls`` without skips and with them (the least of ``repeats`` runs,
    taking turns), the steps walked each way, and how many cycle counts differ."""
    best = {False: math.inf, True: math.inf}
    figures: dict[bool, list[float]] = {}
    for k in range(repeats):
        for skip in ((False, True) if k % 2 else (True, False)):
            t = 0.0
            out = []
            for nest, bw, lat, beat in calls:
                timeline.timeline_cycles.cache_clear()
                start = time.perf_counter()
                out.append(timeline.timeline_cycles(nest, bw, lat, beat, skip=skip))
                t += time.perf_counter() - start
            best[skip] = min(best[skip], t)
            figures[skip] = out
    steps = walked = 0
    for nest, bw, lat, beat in calls:
        plan = timeline._plan(nest, True)
        steps += plan.n
        walked += timeline._walk(nest, plan, float(bw), lat, beat)[1]
    differ = sum(math.ceil(a - 1e-6) != math.ceil(b - 1e-6)
                 for a, b in zip(figures[False], figures[True], strict=True))
    return {"timelines": len(calls), "steps": steps, "walked": walked,
            "no_skip_s": best[False], "skip_s": best[True], "differ": differ}


def time_against(calls: list[tuple], base, repeats: int) -> dict[str, float]:
    """Seconds for all ``calls`` with skips and for the plans of their distinct nests, on this
    tree and on ``base`` (another revision's module; the least of ``repeats`` runs, taking
    turns), and how many cycle counts differ between the two."""
    nests = list(dict.fromkeys(nest for nest, *_ in calls))
    best = {}
    figures: dict[str, list[float]] = {}
    for k in range(repeats):
        for name, mod in (("", timeline), ("baseline_", base))[::1 if k % 2 else -1]:
            start = time.perf_counter()
            for nest in nests:
                mod._plan.__wrapped__(nest, True)
            t_plan = time.perf_counter() - start
            t = 0.0
            out = []
            for nest, bw, lat, beat in calls:
                mod.timeline_cycles.cache_clear()
                start = time.perf_counter()
                out.append(mod.timeline_cycles(nest, bw, lat, beat))
                t += time.perf_counter() - start
            best[f"{name}plan_s"] = min(best.get(f"{name}plan_s", math.inf), t_plan)
            best[f"{name}skip_s"] = min(best.get(f"{name}skip_s", math.inf), t)
            figures[name] = out
    differ = sum(a != b for a, b in zip(figures[""], figures["baseline_"], strict=True))
    return {"nests": len(nests), **best, "baseline_differ": differ}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--baseline", default=None, metavar="REV",
                    help="also time revision REV's sim/timeline.py on the same calls")
    ap.add_argument("--out", type=Path, default=None,
                    help="CSV path (default benchmarks/results/timeline_speed_<date>.csv)")
    args = ap.parse_args(argv)
    base = None
    if args.baseline:
        from timeline_equivalence import load_revision
        base = load_revision(args.baseline)
    rows = []
    for what, calls in record(args.points, args.seed).items():
        r = time_case(calls, args.repeats)
        rows.append({"what": what, **r, "ratio": r["no_skip_s"] / r["skip_s"]})
        if base is not None:
            rows[-1].update(time_against(calls, base, args.repeats))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average {load:.1f}\n")
    print("| timelines of | timelines | steps | walked | no skips | skips | ratio | cycle counts "
          "that differ |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['what']} | {r['timelines']} | {r['steps']:,} | {r['walked']:,} | "
              f"{r['no_skip_s'] * 1e3:,.1f} ms | {r['skip_s'] * 1e3:,.1f} ms | "
              f"{r['ratio']:.2f}x | {r['differ']} |")
    if base is not None:
        print(f"\n| timelines of | nests | plans | {args.baseline}'s plans | with skips | "
              f"{args.baseline}'s | ratio | cycle counts that differ from {args.baseline}'s |\n"
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in rows:
            print(f"| {r['what']} | {r['nests']} | {r['plan_s'] * 1e3:,.2f} ms | "
                  f"{r['baseline_plan_s'] * 1e3:,.2f} ms | {r['skip_s'] * 1e3:,.2f} ms | "
                  f"{r['baseline_skip_s'] * 1e3:,.2f} ms | "
                  f"{r['baseline_skip_s'] / r['skip_s']:.2f}x | {r['baseline_differ']} |")
    out = args.out or RESULTS / f"timeline_speed_{_dt.date.today().isoformat()}.csv"
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[*rows[0], "load_average"])
        w.writeheader()
        for r in rows:
            w.writerow({**r, "load_average": round(load, 2)})
    print(f"\nwrote {out}")
    return 1 if any(r["differ"] or r.get("baseline_differ") for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
