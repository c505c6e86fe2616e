#!/usr/bin/env python3
"""How far ``sim.timeline``'s reduced loop nest is from the whole one (every tile's timeline).

The runs are ``timeline_equivalence.py``'s (the nests the simulator builds on every
engine-array preset and the tile's small-tile architectures, each on its own link and on two
random links, a beat or none), those whose nest is reduced (more than ``WHOLE_TILES`` tiles)
and runs whole in reasonable time (at most ``--max-tiles`` tiles). Each run's
``timeline_cycles(..., reduce=False)`` is the reference; the reduced nest's relative error
against it is summarized with a beat (``beat_bytes``) and without: count, mean and largest
absolute error, and how many are over 2%. With ``--baseline REV`` the same runs are measured
on REV's ``sim/timeline.py`` too (read with ``git show``, run in this process).

Usage (repository root)::

    .venv/bin/python benchmarks/timeline_reduction.py                     # about a minute
    .venv/bin/python benchmarks/timeline_reduction.py --baseline 23e377b~1
    .venv/bin/python benchmarks/timeline_reduction.py --baseline main --speed 5   # the cost

Prints a summary per revision and the worst runs; exits 1 where the largest error of this
revision exceeds ``--bound`` (the module doc's promise). ``--speed REPEATS`` also times the
reduced runs of every size (``timeline_cycles``, its memo cleared before each) on each
revision, taking turns, and prints the ratio to the baseline's.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for p in (REPO, REPO / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import timeline_equivalence as te  # noqa: E402

from sim import timeline  # noqa: E402


def tiles_of(nest) -> int:
    n = 1
    for d, t in zip(nest.dims, nest.tile, strict=True):
        n *= -(-d // t)
    return n


def errors(mod, todo: list[tuple]) -> list[float]:
    """Relative error of the reduced nest against the whole one, per run, on ``mod``."""
    out = []
    for nest, bw, lat, beat in todo:
        whole = mod.timeline_cycles.__wrapped__(nest, bw, lat, beat, reduce=False)
        reduced = mod.timeline_cycles.__wrapped__(nest, bw, lat, beat)
        out.append((reduced - whole) / whole)
    return out


def summary(name: str, todo: list[tuple], errs: list[float]) -> float:
    """Print the distribution with a beat and without; return the largest error."""
    for label, keep in (("no beat", lambda b: b is None), ("beat", lambda b: b is not None),
                        ("all", lambda b: True)):
        e = [abs(x) for (_, _, _, b), x in zip(todo, errs, strict=True) if keep(b)]
        if e:
            print(f"{name:>12} {label:>8}: {len(e):4d} runs, mean {100 * sum(e) / len(e):.3f}%, "
                  f"max {100 * max(e):.2f}%, over 2%: {sum(x > 0.02 for x in e)}")
    worst = sorted(range(len(errs)), key=lambda i: -abs(errs[i]))[:5]
    for i in worst:
        nest, bw, lat, beat = todo[i]
        print(f"{'':>12} {100 * errs[i]:+.2f}%: {nest.dims} tile {nest.tile} "
              f"{''.join(nest.order)} bw={float(bw):.3g} lat={float(lat):.3g} beat={beat}")
    return max(abs(x) for x in errs)


def speed(mods: list[tuple[str, Any]], runs: list[tuple], repeats: int) -> None:
    """Seconds for every reduced run (any size), with a beat and without, per revision: the
    least of ``repeats`` passes, the revisions taking turns, each run's memo cleared (the
    nest's plans stay memoized, as in a sweep: a first pass fills them)."""
    best = {(name, b): math.inf for name, _ in mods for b in (False, True)}
    for k in range(repeats + 1):
        for name, mod in (mods if k % 2 else mods[::-1]):
            for with_beat in (False, True):
                t = 0.0
                for nest, bw, lat, beat in runs:
                    if (beat is not None) != with_beat:
                        continue
                    mod.timeline_cycles.cache_clear()
                    start = time.perf_counter()
                    mod.timeline_cycles(nest, bw, lat, beat)
                    t += time.perf_counter() - start
                if k:
                    best[name, with_beat] = min(best[name, with_beat], t)
    for with_beat in (False, True):
        n = sum((beat is not None) == with_beat for *_, beat in runs)
        times = ", ".join(f"{name} {best[name, with_beat]:.3f} s" for name, _ in mods)
        ratio = (f", {best[mods[0][0], with_beat] / best[mods[1][0], with_beat]:.3f}x "
                 f"{mods[1][0]}'s" if len(mods) > 1 else "")
        print(f"speed, {'beat' if with_beat else 'no beat'}: {n} reduced runs: {times}{ratio}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", metavar="REV", help="also measure REV's sim/timeline.py")
    ap.add_argument("--shapes", type=int, default=10, help="random GEMM shapes per preset")
    ap.add_argument("--small", type=int, default=420, help="small-tile GEMMs")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--max-tiles", type=int, default=4000,
                    help="the largest nest run whole (tiles)")
    ap.add_argument("--speed", type=int, default=0, metavar="REPEATS",
                    help="also time every reduced run (least of REPEATS passes)")
    # sim.timeline's module doc, "Cost": 11.5% at most (1024x1024x1024 on 128x128x32 tiles,
    # mnk, without a beat), 3.7% with one
    ap.add_argument("--bound", type=float, default=0.115,
                    help="the largest relative error allowed (sim.timeline's module doc)")
    args = ap.parse_args(argv)
    calls = te.nests(args.shapes, args.small, args.seed)
    todo = list(dict.fromkeys(
        (nest, bw, lat, beat) for nest, bw, lat, beat, reduce, _ in te.runs(calls, args.seed)
        if reduce and timeline.WHOLE_TILES < tiles_of(nest) <= args.max_tiles))
    mods = [("this", timeline)]
    if args.baseline:
        mods.append((args.baseline, te.load_revision(args.baseline)))
    worst = 0.0
    for name, mod in mods:
        m = summary(name, todo, errors(mod, todo))
        worst = m if mod is timeline else worst
    if args.speed:
        every = list(dict.fromkeys(
            (nest, bw, lat, beat) for nest, bw, lat, beat, reduce, _
            in te.runs(calls, args.seed) if reduce and tiles_of(nest) > timeline.WHOLE_TILES))
        speed(mods, every, args.speed)
    print(f"largest error {100 * worst:.2f}% (bound {100 * args.bound:.2f}%)")
    return 1 if worst > args.bound else 0


if __name__ == "__main__":
    sys.exit(main())
