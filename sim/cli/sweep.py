"""``tpe sweep SPEC.toml`` and ``tpe sweep report RESULTS``: design-space sweeps on the
command line (the work is in :mod:`sim.sweep`).

Bad input raises :class:`hw.spec.SpecError` or :class:`sim.cli.InputError` with a one-line
message naming the key or flag; ``sim.cli.main`` turns those into exit status 2. Ctrl-C
writes what is finished and exits 130; ``--resume`` continues.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register", "run_report", "run_sweep_command"]

_USAGE = ("tpe sweep SPEC.toml [--backend local|ray] [--workers N] [--out results.parquet] "
          "[--resume] [--report DIR]\n       tpe sweep report RESULTS [--out DIR]")


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``sweep`` (and its ``report`` form) to ``tpe``."""
    p = subparsers.add_parser(
        "sweep", usage=_USAGE,
        help="sweep architectures x LLM workloads into a Parquet table; report Pareto fronts",
        description="Run every design point of a sweep spec (grid, random sample or NSGA-II "
        "search) on every workload, writing one Parquet row per point x workload; or, as "
        "`tpe sweep report RESULTS`, plot Pareto fronts and write a Markdown summary.",
    )
    p.add_argument("target", metavar="SPEC.toml|report",
                   help="the sweep spec, or the word `report`")
    p.add_argument("results", nargs="?", metavar="RESULTS",
                   help="(report) the results directory or Parquet file")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local worker processes (default) or a Ray cluster")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: the CPU count)")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="(ray) an existing cluster's address; default: start a local one")
    p.add_argument("--chunk", type=int, default=None, metavar="N",
                   help="design points per task (default: the spec's sweep.chunk, else auto)")
    p.add_argument("--out", default=None,
                   help="sweep: results directory (default results.parquet); report: output "
                   "folder (default RESULTS_report)")
    p.add_argument("--resume", action="store_true",
                   help="continue the sweep in --out, skipping finished design points")
    p.add_argument("--report", default=None, metavar="DIR",
                   help="after the sweep, write the report into DIR")
    p.add_argument("--flush-seconds", type=float, default=None, metavar="S",
                   help="write finished points at least every S seconds (default 1): a killed "
                   "sweep loses at most that much work")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=run_sweep_command)
    return p


def run_sweep_command(args: argparse.Namespace) -> int:
    """``tpe sweep``: dispatch to the sweep or to ``report``."""
    from sim.errors import InputError

    if args.target == "report":
        return run_report(args)
    if args.results is not None:
        raise InputError(f"sweep: unexpected argument {args.results!r} after SPEC.toml "
                         "(did you mean `tpe sweep report RESULTS`?)")
    from sim.sweep import FLUSH_SECONDS, load_sweep, run_sweep, write_report

    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers: must be a positive integer (got {args.workers})")
    if args.chunk is not None and args.chunk < 1:
        raise InputError(f"--chunk: must be a positive integer (got {args.chunk})")
    if args.ray_address and args.backend != "ray":
        raise InputError("--ray-address: only with --backend ray")
    from sim.files import output_dir

    out = output_dir(args.out or "results.parquet", "--out")
    if args.report:
        output_dir(args.report, "--report")
    spec = load_sweep(args.target)
    summary = run_sweep(spec, out, backend=args.backend, workers=args.workers,
                        resume=args.resume, ray_address=args.ray_address, chunk=args.chunk,
                        flush_seconds=FLUSH_SECONDS if args.flush_seconds is None
                        else args.flush_seconds,
                        progress=None if args.quiet else sys.stderr)
    print(f"sweep {spec.name}: {summary.computed} design points computed"
          + (f", {summary.skipped} already done" if summary.skipped else "")
          + f" ({summary.points_per_s:,.1f} points/s over {len(spec.workloads)} "
          + ("workload" if len(spec.workloads) == 1 else "workloads") + "); "
          f"results: {out}")
    if args.report:
        print(f"report: {write_report(out, args.report)}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    """``tpe sweep report RESULTS [--out DIR]``."""
    from sim.errors import InputError
    from sim.sweep import write_report

    if args.results is None:
        raise InputError("report: give the results, `tpe sweep report RESULTS [--out DIR]`")
    for flag, value in (("--resume", args.resume), ("--report", args.report),
                        ("--ray-address", args.ray_address), ("--chunk", args.chunk),
                        ("--flush-seconds", args.flush_seconds)):
        if value:
            raise InputError(f"{flag}: not an option of `tpe sweep report`")
    from sim.files import output_dir

    results = Path(args.results)
    out = output_dir(args.out if args.out else results.with_name(results.stem + "_report"),
                     "--out")
    print(f"report: {write_report(results, out)}")
    return 0
