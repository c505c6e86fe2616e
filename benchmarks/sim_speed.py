#!/usr/bin/env python3
"""How fast the simulator is: one GEMM, a whole Llama-2-70B, and against SCALE-Sim and ZigZag.

Measured in one run, on this machine:

1. one GEMM evaluation, ``sim.gemm.simulate_gemm`` of a 512x4096x4096 INT8 GEMM on the
   ``systolic`` preset with real memory: *cold* (every cache cleared first by
   ``sim.clear_caches()``, the parsed energy table included: candidate enumeration, the
   vectorised cost of every candidate mapping, the pick and its evaluation),
   *per candidate* (cold time / candidates costed) and *cached* (the same call again);
2. Llama-2-70B prefill (batch 1, 2048 tokens) plus one decode step on the same preset under
   W8A8 (every operator: GEMMs, attention, vector work), cold and cached;
3. the same GEMM case in ``scalesim_compare.py`` and ``zigzag_compare.py`` (each in its own
   venv, created by their ``--setup``), which time the peer and us in the same run: their speed
   ratios are quoted. Missing venvs are reported, not faked.

Goals: one GEMM's cold search at most 300 us, cached 10 us; Llama-2-70B prefill + decode cold
at most 50 ms. ``--baseline REV`` also runs this benchmark as revision REV has it, on REV's code
(a temporary git worktree), in the same run, and reports our figures as ratios against it.

Usage (repository root)::

    .venv/bin/python benchmarks/sim_speed.py            # about 2 minutes with both peers
    .venv/bin/python benchmarks/sim_speed.py --no-peers # ours only, seconds
    .venv/bin/python benchmarks/sim_speed.py --no-peers --baseline 6f66afd

Writes ``benchmarks/results/sim_speed_<date>.csv`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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

GEMM = (512, 4096, 4096)
#: The peers' case: the same GEMM shape class on a 16x16 OS array (small enough for
#: SCALE-Sim to finish in seconds; 512x4096x4096 takes it over 10 minutes).
PEER_CASE = "256x256x256@16x16"
#: The goals, in seconds (a cold GEMM search, a cached GEMM, a cold Llama-2-70B), set against
#: :data:`REFERENCE`.
GOALS = {"gemm_cold": 300e-6, "gemm_cached": 10e-6, "llama70b_cold": 50e-3}
#: The figures of the code before the memory hierarchy became data, as measured on this
#: machine when the goals were set: with ``--baseline`` (that code, run now) each goal is
#: scaled to today's machine (``benchmarks/_baseline.py``).
REFERENCE = RESULTS / "sim_speed_2026-11-27.csv"


def _median(fn: Callable[[], object], before: Callable[[], None] | None, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        if before is not None:
            before()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure_ours(repeats: int) -> list[dict[str, object]]:
    """Our figures through the public API: ``sim.system.simulate_op`` (the entry point of every
    command) and ``sim.model.simulate_model``. *Cold*: ``sim.clear_caches()`` (every memo
    table) and then the architecture's energy table parsed again (``sim.energy.load_table``),
    as in a running process that has read its files: the search and every cost are cold.
    *Fully cold* adds parsing the table."""
    from hw.spec import load_arch
    from mapping import candidates
    from models.llm import load_model, lower
    from models.ops import Gemm
    from sim import clear_caches
    from sim.energy import load_table
    from sim.model import simulate_model
    from sim.system import simulate_op

    arch = load_arch("systolic")

    def cold_start() -> None:
        clear_caches()
        load_table(arch.energy_table)

    M, N, K = GEMM
    g = Gemm(name="gemm", M=M, N=N, K=K, a_fmt="int8", w_fmt="int8", o_fmt="int32")
    cold = _median(lambda: simulate_op(arch, g), cold_start, repeats)
    fully_cold = _median(lambda: simulate_op(arch, g), clear_caches, repeats)
    n_cands = len(candidates(g, arch))
    simulate_op(arch, g)
    cached = _median(lambda: simulate_op(arch, g), None, repeats * 20)
    rows: list[dict[str, object]] = [
        {"what": f"GEMM {M}x{N}x{K}, cold (search over {n_cands} mappings)", "seconds": cold,
         "goal_s": GOALS["gemm_cold"], "key": "gemm_cold"},
        {"what": "GEMM, fully cold (the energy table parsed too)", "seconds": fully_cold,
         "goal_s": "", "key": "gemm_fully_cold"},
        {"what": "GEMM, per candidate mapping costed", "seconds": cold / n_cands,
         "goal_s": "", "key": "gemm_per_candidate"},
        {"what": "GEMM, cached", "seconds": cached, "goal_s": GOALS["gemm_cached"],
         "key": "gemm_cached"},
    ]
    cfg = load_model("llama-2-70b")

    def whole() -> None:
        for phase in ("prefill", "decode"):
            ops = lower(cfg, phase=phase, batch=1, seq=2048, quant="w8a8")
            simulate_model(arch, ops, phase=phase, batch=1, seq=2048)

    cold70 = _median(whole, cold_start, max(3, repeats // 4))
    whole()
    warm70 = _median(whole, None, repeats)
    rows += [
        {"what": "Llama-2-70B prefill 2048 + decode, cold", "seconds": cold70,
         "goal_s": GOALS["llama70b_cold"], "key": "llama70b_cold"},
        {"what": "Llama-2-70B prefill 2048 + decode, cached", "seconds": warm70, "goal_s": "",
         "key": "llama70b_cached"},
    ]
    return rows


def _key(what: str) -> str:
    """A row of an earlier version of this script, by its label."""
    w = what.lower()
    subject = "gemm" if w.startswith("gemm") else "llama70b" if "llama-2-70b" in w else ""
    for tag in ("fully cold", "per candidate", "cold", "cached"):
        if tag in w:
            return f"{subject}_{tag.replace(' ', '_')}"
    return ""


def measure_baseline(rev: str, repeats: int) -> dict[str, float]:
    """This benchmark as revision ``rev`` of the repository has it, run on ``rev``'s code in a
    temporary worktree, now, on this machine: the baseline of the ratios."""
    with worktree(rev) as tree:
        out = tree / "baseline.csv"
        rows = run_own_version(rev, tree, "sim_speed.py",
                               ["--no-peers", "--repeats", str(repeats), "--out", str(out)], out)
        return {_key(r["what"]): float(r["seconds"]) for r in rows if r["seconds"]}


def reference_figures() -> dict[str, float]:
    """The figures the goals were set against (:data:`REFERENCE`), by key."""
    return {_key(r["what"]): float(r["seconds"]) for r in read_rows(REFERENCE)
            if r["seconds"] and _key(r["what"])}


def _peer(script: str, venv: str, label: str, ratio_cols: list[str]) -> list[dict[str, object]]:
    if not (REPO / venv / "bin" / "python").exists():
        return [{"what": f"{label}: not measured (run benchmarks/{script} --setup first)",
                 "seconds": "", "goal_s": ""}]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "peer.csv"
        cmd = [sys.executable, str(REPO / "benchmarks" / script), "--case", PEER_CASE,
               "--dataflow", "os", "--out", str(out)]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            return [{"what": f"{label}: failed ({tail[0]})", "seconds": "", "goal_s": ""}]
        with open(out, newline="") as f:
            row = next(csv.DictReader(f))
    return [{"what": f"{label} on {PEER_CASE} OS: {col}", "seconds": "",
             "goal_s": "", "ratio": float(row[col])} for col in ratio_cols]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=20, help="timed calls per figure")
    p.add_argument("--no-peers", action="store_true", help="skip SCALE-Sim and ZigZag")
    p.add_argument("--out", type=Path, default=None, help="CSV path")
    p.add_argument("--baseline", default=None, metavar="REV",
                   help="also time git revision REV's version of this benchmark, in this run")
    args = p.parse_args(argv)
    if args.repeats < 1:
        print("sim_speed: --repeats: must be >= 1", file=sys.stderr)
        return 2
    rows = measure_ours(args.repeats)
    if args.baseline:
        base = measure_baseline(args.baseline, args.repeats)
        then = reference_figures()
        for r in rows:
            key = str(r.get("key", ""))
            b = base.get(key)
            if b is not None:
                r["baseline"] = args.baseline
                r["baseline_seconds"] = b
                r["ratio"] = b / float(r["seconds"])  # > 1: faster than the baseline
                if key in GOALS:
                    r["goal_today_s"] = scaled_goal(GOALS[key], b, then.get(key)) or ""
    if not args.no_peers:
        rows += _peer("scalesim_compare.py", ".venv-scalesim", "SCALE-Sim 3.0.0 / ours",
                      ["speed_ratio", "speed_ratio_e2e"])
        rows += _peer("zigzag_compare.py", ".venv-zigzag", "ZigZag 3.9.1 / ours",
                      ["speed_ratio_api_over_real_cold", "speed_ratio_api_over_ideal_cold"])
    print(f"machine: {platform.machine()}, {platform.python_version()}\n")
    print("| what | seconds | goal | goal on today's machine | baseline | ratio |\n"
          "| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        s = r["seconds"]
        goal = r["goal_s"]
        today = r.get("goal_today_s", "")
        ok = "" if not isinstance(s, float) or not isinstance(goal, float) else (
            " (met)" if s <= goal else " (MISSED)")
        ok_today = "" if not isinstance(s, float) or not isinstance(today, float) else (
            " (met)" if s <= today else " (MISSED)")
        today_text = "" if today == "" else f"<= {today * 1e6:,.0f} us{ok_today}"
        ratio = r.get("ratio", "")
        secs = "" if s == "" else f"{s * 1e6:,.1f} us"
        goal_text = "" if goal == "" else f"<= {goal * 1e6:g} us"
        b = r.get("baseline_seconds", "")
        base_text = "" if b == "" else f"{b * 1e6:,.1f} us"
        ratio_text = "" if ratio == "" else f"{ratio:,.2f}x" if ratio < 100 else f"{ratio:,.0f}x"
        print(f"| {r['what']} | {secs} | {goal_text}{ok} | {today_text} | {base_text} | "
              f"{ratio_text} |")
    out = args.out or RESULTS / f"sim_speed_{_dt.date.today().isoformat()}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    cols = ["what", "seconds", "goal_s", "goal_today_s", "baseline", "baseline_seconds",
            "ratio"]
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in cols})
    tmp.replace(out)
    print(f"\nwrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
