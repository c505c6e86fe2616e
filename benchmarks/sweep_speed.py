#!/usr/bin/env python3
"""How fast ``tpe sweep`` is: the 10,000-point Llama-2-7B prefill + decode sweep
(``examples/sweeps/llama7b_10k.toml``) on the local backend.

Goal: 10,000 design points over Llama-2-7B prefill + decode in at most 30 s on 2 cores.

It runs the spec's grid (or, with ``--limit N``, a random sample of N of its points drawn
with the spec's seed, representative of every axis) through :func:`sim.sweep.run_sweep` into a
temporary directory, and reports points per second, the time of the run and the time the full
10,000 points would take at that rate. ``--profile N`` instead evaluates N consecutive points
from the middle of the grid (as a worker evaluates a chunk) in this process under cProfile
and prints where the time goes.

Usage (repository root)::

    .venv/bin/python benchmarks/sweep_speed.py                 # the whole 10k grid
    .venv/bin/python benchmarks/sweep_speed.py --limit 1000    # 1,000 points, extrapolated
    .venv/bin/python benchmarks/sweep_speed.py --profile 100   # where the time goes
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import datetime
import os
import platform
import pstats
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from _baseline import (  # noqa: E402
    RESULTS,
    read_rows,
    run_own_version,
    scaled_goal,
    worktree,
)

from sim.sweep import (  # noqa: E402
    SweepSpec,
    _Evaluator,
    grid_size,
    load_sweep,
    point_values,
    read_results,
    run_sweep,
)

SPEC = REPO / "examples" / "sweeps" / "llama7b_10k.toml"
GOAL_S = 30.0
#: The run the goal was set against: the code before the memory hierarchy became data, on this
#: machine (with ``--baseline``, that code run now scales the goal to today's machine:
#: ``benchmarks/_baseline.py``).
REFERENCE = RESULTS / "sweep_speed_2026-11-27.csv"


def measure_baseline(rev: str, workers: int, limit: int | None) -> float:
    """Seconds the whole grid takes (extrapolated with ``limit``) under revision ``rev``'s
    version of this benchmark on its own code, run now in a temporary worktree."""
    with worktree(rev) as tree:
        args = ["--workers", str(workers), *(["--limit", str(limit)] if limit else [])]
        written = (tree / "benchmarks" / "results"
                   / f"sweep_speed_{datetime.date.today().isoformat()}.csv")
        rows = run_own_version(rev, tree, "sweep_speed.py", args, written)
        return float(rows[0]["grid_seconds_extrapolated"])


def _consecutive(spec: SweepSpec, n: int) -> list[tuple]:
    """``n`` consecutive grid points from the middle of the grid: what one worker evaluates
    from one chunk (neighbouring points differ in the last axes only, and share caches as
    they do in a run)."""
    total = grid_size(spec)
    start = max(0, (total - n) // 2)
    return [point_values(spec, i) for i in range(start, min(total, start + n))]


def profile(spec: SweepSpec, n: int) -> None:
    ev = _Evaluator(spec)
    points = _consecutive(spec, n)
    prof = cProfile.Profile()
    start = time.perf_counter()
    prof.enable()
    ev.evaluate(points)
    prof.disable()
    elapsed = time.perf_counter() - start
    print(f"{n} points in one process: {elapsed:.2f} s, {elapsed / n * 1e3:.1f} ms per point "
          f"(both phases), under cProfile")
    pstats.Stats(prof).sort_stats("cumulative").print_stats(30)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(SPEC))
    ap.add_argument("--limit", type=int, default=None,
                    help="run only this many points (strided over the grid), extrapolate")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--profile", type=int, default=0, metavar="N")
    ap.add_argument("--baseline", default=None, metavar="REV",
                    help="also run git revision REV's version of this benchmark, in this run")
    ap.add_argument("--out", type=Path, default=None,
                    help="CSV path (default benchmarks/results/sweep_speed_<date>.csv)")
    args = ap.parse_args(argv)
    spec = load_sweep(args.spec)
    if args.profile:
        profile(spec, args.profile)
        return 0
    total = grid_size(spec)
    run_spec = spec
    if args.limit and args.limit < total:
        # a random sample of the grid with the spec's seed: representative of every axis
        run_spec = dataclasses.replace(spec, strategy="random", samples=args.limit)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.parquet"
        summary = run_sweep(run_spec, out, workers=args.workers, progress=sys.stderr)
        table = read_results(out, columns=["point_id", "error"])
        errors = sum(e is not None for e in table.column("error").to_pylist())
    rate = summary.points_per_s
    full = total / rate if rate else float("inf")
    verdict = "PASS" if full <= GOAL_S else "FAIL"
    base = ratio = today = None
    if args.baseline:
        base = measure_baseline(args.baseline, args.workers, args.limit)
        ratio = base / full  # > 1: faster than the baseline
        then = float(read_rows(REFERENCE)[0]["grid_seconds_extrapolated"])
        today = scaled_goal(GOAL_S, base, then)
    today_verdict = "" if today is None else "PASS" if full <= today else "FAIL"
    print()
    print(f"| machine | workers | points run | rows | error rows | seconds | points/s | "
          f"{total:,} points (s) | goal | goal on today's machine | baseline (s) | ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: |")
    print(f"| {platform.machine()} {os.cpu_count()} CPUs | {args.workers} | {summary.computed:,}"
          f" | {table.num_rows:,} | {errors:,} | {summary.seconds:.1f} | {rate:.1f} | "
          f"{full:.0f} | <= {GOAL_S:.0f} s: {verdict} | "
          + ("" if today is None else f"<= {today:.0f} s: {today_verdict}") + " | "
          + ("" if base is None else f"{base:.0f} ({args.baseline}) | {ratio:.2f}x") + " |")
    RESULTS.mkdir(exist_ok=True)
    csv_path = args.out or RESULTS / f"sweep_speed_{datetime.date.today().isoformat()}.csv"
    tmp = csv_path.with_suffix(".tmp")
    opt = ["" if x is None else f"{x:.3f}" for x in (today, base, ratio)]
    tmp.write_text(
        "machine,cpus,workers,points_run,rows,error_rows,seconds,points_per_s,"
        "grid_points,grid_seconds_extrapolated,goal_s,verdict,goal_today_s,verdict_today,"
        "baseline,baseline_seconds,ratio\n"
        f"{platform.machine()},{os.cpu_count()},{args.workers},{summary.computed},"
        f"{table.num_rows},{errors},{summary.seconds:.3f},{rate:.3f},{total},{full:.3f},"
        f"{GOAL_S},{verdict},{opt[0]},{today_verdict},{args.baseline or ''},{opt[1]},"
        f"{opt[2]}\n")
    tmp.replace(csv_path)
    print(f"wrote {csv_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
