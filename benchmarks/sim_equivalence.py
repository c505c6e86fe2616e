#!/usr/bin/env python3
"""Whether this tree's simulator gives the same results as another revision's, figure for figure.

For a speed change that must not change any result: ``--cases`` random GEMMs (shapes from 1 to
2^26 along each dimension, integer and floating-point formats, grouped weight and activation
scales, ``count`` > 1, every objective, now and then ideal memory and a cold cache) on every
non-GPU preset and a few ``--set`` variants of them (single-buffered levels, no DRAM latency, an
odd bandwidth, three cores), each through ``sim.system.simulate_op``; the ``to_dict()`` of each
result (or the error it raises) is compared for equality with revision ``--baseline``'s, run on
that revision's code (a temporary git worktree) in a subprocess.

Usage (repository root)::

    .venv/bin/python benchmarks/sim_equivalence.py --baseline main --cases 3000

Prints how many results differ (and the first few), exit 1 when any does.
"""

from __future__ import annotations

import argparse
import pickle
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

#: ``(a_fmt, w_fmt)`` pairs drawn from: integer widths every kind takes, narrower ones some
#: kinds plan in slices, and floating-point formats the execution planner emulates or refuses.
_FORMATS = (("int8", "int8"), ("int8", "int4"), ("int4", "int4"), ("uint8", "int8"),
            ("int2", "int2"), ("fp8", "fp8"), ("bf16", "bf16"), ("int16", "int8"),
            ("int8", "ternary"), ("fp4_e2m1", "fp4_e2m1"))
#: ``--set`` variants of presets: levels that are not double-buffered, a link without latency,
#: an odd bandwidth, a core count that does not divide the GEMMs.
_VARIANTS = (("systolic", ("a_buffer.double_buffered=false",)),
             ("systolic", ("o_buffer.double_buffered=false", "dram.latency_ns=0")),
             ("cube", ("dram.bandwidth_gb_per_s=3.7",)),
             ("systolic-4core", ("cores=3",)))


def _dim(r: random.Random) -> int:
    k = r.random()
    if k < 0.25:
        return r.randint(1, 64)
    if k < 0.6:
        return r.randint(1, 4096)
    if k < 0.85:
        return r.choice([128, 256, 512, 1024, 2048, 4096, 8192, 11008, 14336])
    return r.randint(1, 1 << r.randint(10, 26))


def dump(cases: int, seed: int, out: Path) -> None:
    """The results of ``cases`` random GEMMs on the code this process imports, pickled to
    ``out`` by ``(index, architecture, GEMM, objective, memory)``."""
    from hw.spec import list_presets, load_arch
    from models.ops import Gemm
    from sim import clear_caches
    from sim.system import simulate_op

    r = random.Random(seed)
    archs = {p: load_arch(p) for p in list_presets()}
    archs = {p: a for p, a in archs.items() if a.gpu is None}
    for preset, sets in _VARIANTS:
        archs[f"{preset} --set {' '.join(sets)}"] = load_arch(preset, list(sets))
    results: dict[tuple[Any, ...], Any] = {}
    for i in range(cases):
        name = r.choice(sorted(archs))
        a_fmt, w_fmt = r.choice(_FORMATS)
        kw: dict[str, Any] = {"count": r.choice([1, 1, 1, 3])}
        if r.random() < 0.2:
            kw |= {"w_group": r.choice([32, 64, 128]), "w_scale_bits": 16}
        if r.random() < 0.1:
            kw |= {"a_group": 32, "a_scale_bits": 8}
        o_fmt = r.choice(["int32", "int8", "bf16"]) if a_fmt.startswith("int") else "bf16"
        g = Gemm(name=f"g{i}", M=_dim(r), N=_dim(r), K=_dim(r), a_fmt=a_fmt, w_fmt=w_fmt,
                 o_fmt=o_fmt, **kw)
        objective = r.choice(["latency", "latency", "energy", "edp"])
        memory = "ideal" if r.random() < 0.05 else "real"
        if r.random() < 0.3:
            clear_caches()
        try:
            d: Any = simulate_op(archs[name], g, memory=memory, objective=objective).to_dict()
        except Exception as e:  # the error is a result too: it must not change either
            d = ("error", type(e).__name__, str(e))
        results[(i, name, repr(g), objective, memory)] = d
    out.write_bytes(pickle.dumps(results))


def _run(tree: Path, cases: int, seed: int, out: Path) -> dict[tuple[Any, ...], Any]:
    from _baseline import run_on

    run_on(tree, Path(__file__).resolve(),
           ["--dump", str(out), "--cases", str(cases), "--seed", str(seed)], out,
           f"sim_equivalence: the run on {tree} failed")
    loaded: dict[tuple[Any, ...], Any] = pickle.loads(out.read_bytes())
    return loaded


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", default="main", metavar="REV",
                   help="the revision whose results this tree must reproduce")
    p.add_argument("--cases", type=int, default=1500, help="random GEMMs")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--dump", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.cases < 1:
        print("sim_equivalence: --cases: must be >= 1", file=sys.stderr)
        return 2
    if args.dump is not None:  # one side, on the code of PYTHONPATH
        dump(args.cases, args.seed, args.dump)
        return 0
    sys.path.insert(0, str(REPO / "benchmarks"))
    from _baseline import worktree

    with tempfile.TemporaryDirectory() as tmp, worktree(args.baseline) as tree:
        theirs = _run(tree, args.cases, args.seed, Path(tmp) / "baseline.pkl")
        ours = _run(REPO, args.cases, args.seed, Path(tmp) / "ours.pkl")
    if theirs.keys() != ours.keys():
        print(f"sim_equivalence: the cases differ from {args.baseline}'s (presets changed?)")
        return 1
    differ = [k for k in ours if ours[k] != theirs[k]]
    errors = sum(isinstance(v, tuple) for v in ours.values())
    print(f"{len(ours)} results ({errors} of them errors) on {len({k[1] for k in ours})} "
          f"architectures: {len(differ)} differ from {args.baseline}'s")
    for k in differ[:5]:
        print(f"  {k[1]} {k[2]} {k[3]} {k[4]}:\n    {args.baseline}: {theirs[k]}\n"
              f"    this tree: {ours[k]}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
