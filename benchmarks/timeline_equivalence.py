#!/usr/bin/env python3
"""Whether ``sim.timeline`` gives the figures of revision REV's, bit for bit: for a speed
refactor of the timeline, which must change no cycle count.

The nests are those the simulator builds (``sim.memory``'s calls of ``timeline_cycles``): every
GEMM of a few fixed and ``--shapes`` random shapes on every engine-array preset (INT8 and the
preset's default formats), and ``--small`` GEMMs of the tile's small-tile architectures
(``sim.verify.tile_bench``: systolic OS and WS, with and without the weights' double buffer,
the cube, matrix2d; random links, a link beat, single-buffered levels, every loop order, whole
and reduced nests). Each nest runs on its own link with and without skips, on two random
links (a fractional bandwidth, latency, beat or none), and whole where it has at most 4,000
tiles; each run's ``timeline_cycles``, ``timeline_floor`` (where both take the link's latency
and beat) and ``_walk`` (cycles and steps walked) are compared with REV's ``sim/timeline.py``
(read with ``git show``, run in this process on the same nests) with ``==``.

Usage (repository root)::

    .venv/bin/python benchmarks/timeline_equivalence.py --baseline main   # about a minute

Prints the number of runs and of differences (and how many of those are without a beat, of
whole nests); exits 1 where any differs.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import random
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import sim.memory  # noqa: E402
from sim import timeline  # noqa: E402

PRESETS = ("addertree", "bitplane", "bitslice", "cube", "lut", "matrix2d", "mx", "npu-hbm",
           "systolic-4core", "systolic")
SHAPES = ((512, 4096, 4096), (1024, 1024, 1024), (2048, 4096, 4096), (1, 4096, 4096),
          (128, 128, 128))
ORDERS = ("mnk", "mkn", "nmk", "nkm", "kmn", "knm")


def nests(shapes: int, small: int, seed: int) -> list[tuple]:
    """(nest, bytes per cycle, latency, beat) of every timeline the simulator runs on the cases
    of the module doc, each once."""
    from hw.spec import load_arch
    from mapping import Candidates
    from models.ops import Gemm
    from sim import clear_caches
    from sim.gemm import tiled_compute_cycles
    from sim.memory import traffic_without_stalls
    from sim.system import simulate_op
    from sim.verify.tile_bench import SMALL_TILES, model_gemm, tile_arch

    rng = random.Random(seed)
    calls: list[tuple] = []
    real = sim.memory.timeline_cycles

    def recording(nest, bw, lat, beat=None, **kw):
        calls.append((nest, bw, lat, beat))
        return real(nest, bw, lat, beat, **kw)

    sim.memory.timeline_cycles = recording
    try:
        for preset in PRESETS:
            arch = load_arch(preset)
            picked = [*SHAPES, *(tuple(rng.choice([rng.randint(1, 300), rng.randint(300, 5000)])
                                       for _ in range(3)) for _ in range(shapes))]
            for M, N, K in picked:
                for fmts in ({"a_fmt": "int8", "w_fmt": "int8", "o_fmt": "int32"}, {}):
                    clear_caches()
                    simulate_op(arch, Gemm(name="g", M=M, N=N, K=K, **fmts))
    finally:
        sim.memory.timeline_cycles = real
    for i in range(small):
        preset = ("systolic", "cube", "systolic", "matrix2d")[i % 4]
        sets = [*SMALL_TILES[preset], "clock_mhz=1000",
                f"dram.bandwidth_gb_per_s={rng.uniform(0.5, 40):.2f}",
                f"dram.latency_ns={rng.randint(0, 300)}"]
        sets += ["dram.beat_bytes=16"] if i % 3 == 0 else []
        if preset == "systolic" and i % 4 == 1:
            sets += ["engine.dataflow=ws", "engine.weight_double_buffer=true"]
        if i % 8 == 6:
            sets += ["engine.dataflow=ws", "engine.weight_double_buffer=false"]
        if i % 4 == 2:
            sets.append(rng.choice(["a_buffer", "w_buffer", "o_buffer"]) + ".double_buffered=false")
        arch = tile_arch(load_arch(preset, sets))
        tile = (rng.choice([4, 8]), rng.choice([4, 8]), rng.choice([8, 13, 16]))
        dims = tuple(rng.randint(130, 400) if i % 2 == 0 else rng.randint(5, 120)
                     for _ in range(3))
        if i % 5 == 1:  # whole tiles: the skips that reach into the last iteration
            dims = tuple(t * rng.randint(20, 40) for t in tile)
        M, N, K = dims
        mp = Candidates.single(M, N, K, tile, ORDERS[i % 6]).mapping(0, arch)
        compute = tiled_compute_cycles(arch.engine, M, N, K, *tile)
        _, exposure = traffic_without_stalls(arch, model_gemm(arch, M, N, K), mp, compute,
                                             memory="real")
        if exposure is not None and exposure.nest is not None:
            calls.append((exposure.nest, arch.dram_bytes_per_cycle, arch.dram.latency_ns,
                          arch.memory[-1].beat_bytes))
    return list(dict.fromkeys(calls))


def runs(calls: list[tuple], seed: int) -> list[tuple]:
    """(nest, bytes per cycle, latency, beat, reduce, skip) of each run (module doc)."""
    rng = random.Random(seed + 1)
    out = []
    for nest, bw, lat, beat in calls:
        out += [(nest, bw, lat, beat, True, True), (nest, bw, lat, beat, True, False)]
        for _ in range(2):
            bw = rng.choice([Fraction(rng.randint(1, 400), rng.randint(1, 16)),
                             rng.uniform(0.3, 300.0), rng.randint(1, 128)])
            lat = rng.choice([0, rng.randint(0, 500), Fraction(rng.randint(0, 3000), 7),
                              rng.uniform(0, 400)])
            beat = rng.choice([None, 4, 8, 16, 32, 64])
            out.append((nest, bw, lat, beat, True, True))
        tiles = 1
        for d, t in zip(nest.dims, nest.tile, strict=True):
            tiles *= -(-d // t)
        if tiles <= 4000:
            out.append((nest, bw, lat, beat, False, True))
    return out


def figures(mod, run: tuple) -> tuple:
    """Everything ``mod`` (a version of ``sim.timeline``) answers for one run."""
    nest, bw, lat, beat, reduce, skip = run
    try:
        # (a floor without the link's latency and beat, before 2026-12-08, bounds less: not
        # compared)
        floor = (mod.timeline_floor(nest, bw, lat, beat, reduce=reduce)
                 if "latency" in inspect.signature(mod.timeline_floor).parameters else None)
        return (mod.timeline_cycles.__wrapped__(nest, bw, lat, beat, reduce=reduce, skip=skip),
                mod._walk(nest, mod._plan(nest, reduce), float(bw), lat, beat, skip), floor)
    except Exception as e:  # an error is a figure to compare too
        return ("error", type(e).__name__, str(e))


def load_revision(rev: str):
    """Revision ``rev``'s ``sim/timeline.py``, as a module of its own."""
    proc = subprocess.run(["git", "show", f"{rev}:sim/timeline.py"], cwd=REPO,
                          capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"--baseline: git show {rev}:sim/timeline.py failed: {proc.stderr.strip()}")
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(proc.stdout)
    name = f"timeline_at_{rev.replace('/', '_').replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(name, f.name)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    Path(f.name).unlink()
    return mod


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", required=True, metavar="REV")
    ap.add_argument("--shapes", type=int, default=10, help="random GEMM shapes per preset")
    ap.add_argument("--small", type=int, default=420, help="small-tile GEMMs")
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args(argv)
    base = load_revision(args.baseline)
    calls = nests(args.shapes, args.small, args.seed)
    todo = runs(calls, args.seed)
    differ = plain = whole = 0
    for run in todo:
        ours, theirs = figures(timeline, run), figures(base, run)
        if None in (ours[-1], theirs[-1]) and ours[0] != "error" and theirs[0] != "error":
            ours, theirs = ours[:-1], theirs[:-1]  # a floor only one of them takes the link in
        if ours != theirs:
            differ += 1
            plain += run[3] is None
            whole += not run[4]
            if differ <= 10:
                nest, bw, lat, beat, reduce, skip = run
                print(f"differs: {nest.dims} tile {nest.tile} {''.join(nest.order)} bw={bw} "
                      f"lat={lat} beat={beat} reduce={reduce} skip={skip}: {ours} vs {theirs}")
    print(f"{len(calls)} nests, {len(todo)} runs: {differ} differ from {args.baseline}'s "
          f"({plain} without a beat, {whole} of whole nests)")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
