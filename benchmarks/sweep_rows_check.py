#!/usr/bin/env python3
"""Whether a change to the sweep or the simulator leaves a sweep's rows exactly as they were:
run the same design points of a sweep spec on this tree and on git revision ``--baseline``
(its own code, in a temporary worktree) and compare every row, every column, exactly (floats
bit for bit, ``None`` for ``None``).

The points: a random sample of the spec's grid (``--samples``, the spec's seed: every axis
represented, caches cold from point to point) and the first ``--limit`` points of the grid with
some axes narrowed to one value each (``--only engine.rows=96``: consecutive points that
differ in the last axes, as a worker evaluates a chunk). Both run through
:func:`sim.sweep.run_sweep` with ``--workers`` processes, as ``tpe sweep`` runs them.

Usage (repository root)::

    .venv/bin/python benchmarks/sweep_rows_check.py --baseline main
    .venv/bin/python benchmarks/sweep_rows_check.py --baseline main --samples 300 \\
        --limit 200 --only engine.rows=96 --only engine.cols=64

Exit 0 when the rows are identical, 1 (naming the first difference) when they are not.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

SPEC = REPO / "examples" / "sweeps" / "llama7b_10k.toml"


def _narrowed(spec: Any, only: list[str]) -> Any:
    """``spec`` with each ``KEY=VALUE`` of ``only`` as that axis's single value (the value as
    the axis lists it)."""
    axes = list(spec.axes)
    for item in only:
        key, _, text = item.partition("=")
        i = next((i for i, a in enumerate(axes) if a.key == key), None)
        if i is None:
            raise SystemExit(f"--only: {key!r} is not an axis of the spec")
        match = [v for v in axes[i].values if str(v) == text]
        if not match:
            raise SystemExit(f"--only: {text!r} is not a value of axis {key!r} "
                             f"({', '.join(map(str, axes[i].values))})")
        axes[i] = dataclasses.replace(axes[i], values=(match[0],))
    return dataclasses.replace(spec, axes=tuple(axes))


def dump(args: argparse.Namespace) -> None:
    """Run the points on the code this process imports (``PYTHONPATH``), into ``--into``."""
    import sim
    from sim.sweep import load_sweep, run_sweep

    spec = load_sweep(args.spec)
    into = Path(args.into)
    into.mkdir(parents=True)
    (into / "code").write_text(str(Path(sim.__file__).resolve().parents[1]))
    if args.samples:
        sample = dataclasses.replace(spec, strategy="random", samples=args.samples)
        run_sweep(sample, into / "sample", workers=args.workers)
    if args.limit:
        run_sweep(_narrowed(spec, args.only), into / "grid", workers=args.workers,
                  limit=args.limit)


def _rows(path: Path) -> list[dict[str, Any]]:
    from sim.sweep import read_results

    rows = read_results(path).to_pylist()
    return sorted(rows, key=lambda r: (r["point_id"], r["model"], r["phase"], r["batch"],
                                       r["seq"], r["quant"]))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return type(a) is type(b) and a == b


def compare(base: Path, ours: Path) -> str | None:
    """The first difference between the rows of two result directories, ``None`` if none."""
    a, b = _rows(base), _rows(ours)
    if len(a) != len(b):
        return f"{len(a)} rows on the baseline, {len(b)} here"
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if list(x) != list(y):
            return f"row {i}: columns differ: {list(x)} vs {list(y)}"
        for k in x:
            if not _same(x[k], y[k]):
                return (f"row {i} (point {x['point_id']}, {x['phase']}): {k} = {x[k]!r} on "
                        f"the baseline, {y[k]!r} here")
    return None


def _run(tree: Path, args: argparse.Namespace, into: Path) -> None:
    from _baseline import run_on

    run_on(tree, REPO / "benchmarks" / "sweep_rows_check.py",
           ["--dump", "--into", str(into), "--spec", str(args.spec), "--samples",
            str(args.samples), "--limit", str(args.limit), "--workers", str(args.workers),
            *(f"--only={o}" for o in args.only)], into / "code",
           f"sweep_rows_check: the run on {tree} failed")
    ran = Path((into / "code").read_text())
    if ran != tree.resolve():  # the run must import the tree's own code, not this one's
        raise SystemExit(f"sweep_rows_check: the run for {tree} imported the code of {ran}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(SPEC))
    ap.add_argument("--baseline", default="main", metavar="REV")
    ap.add_argument("--samples", type=int, default=300,
                    help="random points of the grid (0: none)")
    ap.add_argument("--limit", type=int, default=200,
                    help="first points of the (narrowed) grid (0: none)")
    ap.add_argument("--only", action="append", default=[], metavar="KEY=VALUE",
                    help="narrow an axis to one value for the --limit points (repeatable)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dump", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--into", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.spec = str(Path(args.spec).resolve())
    if args.dump:  # the code under test comes from PYTHONPATH
        dump(args)
        return 0
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from _baseline import worktree  # it puts this tree on sys.path: not for --dump
    with tempfile.TemporaryDirectory() as tmp, worktree(args.baseline) as tree:
        _run(tree, args, Path(tmp) / "baseline")
        _run(REPO, args, Path(tmp) / "ours")
        parts = [p for p, n in (("sample", args.samples), ("grid", args.limit)) if n]
        for part in parts:
            diff = compare(Path(tmp) / "baseline" / part, Path(tmp) / "ours" / part)
            n = len(_rows(Path(tmp) / "ours" / part))
            if diff is not None:
                print(f"{part}: rows differ from {args.baseline}: {diff}")
                return 1
            print(f"{part}: {n} rows identical to {args.baseline}'s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
