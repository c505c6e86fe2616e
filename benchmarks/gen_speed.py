#!/usr/bin/env python3
"""How long ``tpe gen systolic`` takes, and how much memory, for large arrays.

Goal: ``tpe gen systolic --rows 128 --cols 128`` in at most 2 minutes and 4 GB on the 2-core
development machine. Each size runs ``tpe gen systolic --rows N --cols N`` (INT8, output
stationary, no synthesis) in a fresh process of this venv's Python, timed from the parent
(``time.perf_counter`` around ``subprocess.run``); the child reports its own peak resident
memory (``ru_maxrss``: Yosys runs inside it, as WebAssembly), its processor time (user and
system, its own and any child's: on a machine other processes also load, the wall time grows
and this does not) and the Verilog's size. The command's progress lines (standard error) are
echoed as they come.

Usage (repository root)::

    .venv/bin/python benchmarks/gen_speed.py              # 128x128, about 2 minutes
    .venv/bin/python benchmarks/gen_speed.py --sizes 64 128 256

Writes ``benchmarks/results/gen_speed_<date>.csv`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
#: The goal for 128x128 (seconds, bytes).
GOAL_SIZE, GOAL_S, GOAL_BYTES = 128, 120.0, 4 * 2**30

_CHILD = """
import json, resource, sys
from sim.cli import main
code = main(sys.argv[1:])
use = resource.getrusage(resource.RUSAGE_SELF)
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
peak = use.ru_maxrss * 1024  # KiB on Linux
cpu = use.ru_utime + use.ru_stime + kids.ru_utime + kids.ru_stime
print(json.dumps({"code": code, "peak_bytes": peak, "cpu_s": cpu}))
"""


def measure(size: int, out: Path) -> dict[str, object]:
    argv = ["gen", "systolic", "--rows", str(size), "--cols", str(size), "--out", str(out)]
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, *argv], cwd=REPO, text=True,
                          stdout=subprocess.PIPE, stderr=None, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    seconds = time.perf_counter() - t
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    if proc.returncode or last["code"]:
        raise SystemExit(f"gen_speed: tpe gen systolic {size}x{size} failed (exit "
                         f"{proc.returncode or last['code']})")
    (vfile,) = out.glob("*/*.v")
    return {"size": f"{size}x{size}", "seconds": round(seconds, 2),
            "cpu_seconds": round(last["cpu_s"], 2),
            "peak_gib": round(last["peak_bytes"] / 2**30, 3),
            "verilog_mb": round(vfile.stat().st_size / 1e6, 2),
            "goal": (f"<= {GOAL_S:.0f} s, {GOAL_BYTES / 2**30:.0f} GiB: "
                     + ("met" if seconds <= GOAL_S and last["peak_bytes"] <= GOAL_BYTES
                        else "MISSED")) if size == GOAL_SIZE else ""}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[GOAL_SIZE],
                   help="array sizes N (N x N), default 128")
    args = p.parse_args()
    rows = []
    for size in args.sizes:
        if not 1 <= size <= 256:
            raise SystemExit(f"--sizes: {size} is outside 1..256 (tpe gen's range)")
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(measure(size, Path(tmp)))
        print(rows[-1], flush=True)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    for r in rows:
        r["machine"] = machine
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"gen_speed_{_dt.date.today().isoformat()}.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print("\n| size | seconds | CPU seconds | peak memory (GiB) | Verilog (MB) | goal |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        print(f"| {r['size']} | {r['seconds']} | {r['cpu_seconds']} | {r['peak_gib']} | "
              f"{r['verilog_mb']} | {r['goal']} |")
    print(f"\nwrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
