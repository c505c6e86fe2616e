#!/usr/bin/env python3
"""How long ``tpe sim gemm`` takes as a whole process, against SCALE-Sim 3.0.0 as a whole
process on the same GEMM.

Goal: ``tpe sim gemm --arch systolic --set engine.rows=32 --set engine.cols=32 --M 512 --N 256
--K 256 --json`` in at most 0.25 s on the 2-core development machine: interpreter start,
imports, argument parsing, loading the preset, the mapping search and the JSON output, as a
user sees it. Most of it is imports; each command imports only what it needs (sim/cli).

In one run, each a fresh process timed from the parent (``time.perf_counter`` around
``subprocess.run``; the median and the minimum of ``--runs`` runs after one untimed warm-up,
our commands taking turns so that a change of the shared machine's load touches them alike):

* ``tpe sim gemm ... --json``: the ``tpe`` script next to ``sys.executable`` (else
  ``python -m sim.cli``), twice: with the environment as it is (``PYTHONDONTWRITEBYTECODE=1``,
  when set, makes Python compile our sources on every run) and with bytecode cached (that
  variable dropped and ``PYTHONPYCACHEPREFIX`` pointing at a temporary folder, filled by the
  warm-up run; the repository gets no ``__pycache__``);
* ``tpe --help`` the same two ways;
* three references: the interpreter alone (``python -c pass``); the baseline, numpy and
  pydantic as packages (``import numpy, pydantic``: pydantic loads its parts on first use);
  and what every simulation needs of them (``import numpy, pydantic.dataclasses``, the spec
  classes' base), which no ``tpe sim`` can go below;
* with ``--baseline REV``: revision REV's ``python -m sim.cli sim gemm ...`` (bytecode cached)
  in a temporary worktree, in turn with ours; ``speed_ratio_rev_over_this`` is its median over
  each of our gemm rows', ``cpu_ratio_rev_over_this`` the same of the processes' CPU seconds
  (which the shared machine's load moves less than the wall-clock seconds);
* SCALE-Sim 3.0.0 on the same GEMM (512x256x256) on a 32x32 array in the dataflow of our
  preset, ``--scalesim-runs`` fresh processes in its own venv: ``scalesim_compare.py``'s
  driver, which starts the interpreter, imports SCALE-Sim, writes and parses its
  configuration, simulates and exits (its memory is stall-free, ours is the preset's real
  memory: this compares the two tools' turnaround, not their models). Its cycles are checked
  against the closed form of ``scalesim_compare.py``.

Every row's ``ratio_to_baseline`` is its median over the baseline's median of the same run, a
figure that a change of the shared machine's load moves less than the seconds; the speed
ratio is SCALE-Sim's median over ours. The 1-minute load average before and after the
measurements goes to the CSV.

Usage (repository root; SCALE-Sim's venv comes from ``scalesim_compare.py --setup``)::

    .venv/bin/python benchmarks/cli_speed.py               # about a minute
    .venv/bin/python benchmarks/cli_speed.py --no-scalesim # ours only, seconds

Writes ``benchmarks/results/cli_speed_<date>.csv`` and prints a Markdown table. Exit codes: 0
measured (the goal is reported, not enforced), 1 a run failed or a check failed, 2 missing
setup.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

if (_here := str(Path(__file__).resolve().parent)) not in sys.path:  # imported, not run
    sys.path.insert(0, _here)
import _peers as peers  # it makes hw/, sim/, models/ importable too
import scalesim_compare as ss
from _baseline import worktree

GOAL_S = 0.25
CASE = peers.Case(M=512, N=256, K=256, rows=32, cols=32)
GEMM_ARGS = ("sim", "gemm", "--arch", "systolic", "--set", f"engine.rows={CASE.rows}",
             "--set", f"engine.cols={CASE.cols}", "--M", str(CASE.M), "--N", str(CASE.N),
             "--K", str(CASE.K), "--json")
BASELINE = "reference: import numpy, pydantic (the baseline)"
CSV_FIELDS = ("what", "bytecode", "runs", "median_s", "min_s", "cpu_median_s",
              "ratio_to_baseline", "goal_s", "verdict", "speed_ratio_scalesim_over_this",
              "speed_ratio_rev_over_this", "cpu_ratio_rev_over_this", "detail", "machine",
              "load_before", "load_after")


def tpe_command() -> list[str]:
    """The ``tpe`` script of this interpreter's environment, else ``python -m sim.cli``."""
    script = Path(sys.executable).with_name("tpe")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "sim.cli"]


@dataclass
class Timed:
    """Fresh-process runs of one command: parent-side wall and child CPU seconds per run."""

    what: str
    bytecode: str
    argv: list[str]
    env: dict[str, str]
    goal: bool = False  # the command the goal is about
    #: Where it runs: the repository, or the baseline's worktree (``python -m`` puts the
    #: working directory first on ``sys.path``, so a baseline run from the repository would
    #: import this revision's code, whatever its PYTHONPATH)
    cwd: Path = peers.REPO
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    stdout: str = ""  # of the last run

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    def run(self, timed: bool, timeout_s: float = 120.0) -> None:
        """One run in the repository root; raises ``RuntimeError`` if it fails."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(self.argv, cwd=self.cwd, env=self.env, capture_output=True,
                              text=True, timeout=timeout_s)
        dt = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(self.argv)}: exit {proc.returncode}: "
                               f"{peers.last_line(proc)}")
        if timed:
            self.wall.append(dt)
            self.cpu.append(after.ru_utime - before.ru_utime
                            + after.ru_stime - before.ru_stime)
        self.stdout = proc.stdout


def environments(cache_dir: Path) -> dict[str, dict[str, str]]:
    """``{label: environment}``: as it is, and with a bytecode cache in ``cache_dir``."""
    env = dict(os.environ)
    as_is = ("not written (PYTHONDONTWRITEBYTECODE set: sources compiled every run)"
             if env.get("PYTHONDONTWRITEBYTECODE") else "as the environment has it")
    cached = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cached["PYTHONPYCACHEPREFIX"] = str(cache_dir)
    return {as_is: env, "cached": cached}


def measure_ours(runs: int, cache_dir: Path, rev: tuple[str, Path] | None = None
                 ) -> tuple[list[Timed], dict[str, object]]:
    """Our rows (gemm and --help in both bytecode modes, then the two references, then
    ``rev``'s gemm: ``(revision, its worktree)``, with bytecode cached) and the gemm's JSON
    output. One untimed warm-up of each (it fills the bytecode cache, and the file cache),
    then ``runs`` rounds, each running every command once: a change of the machine's load
    during the measurement touches every row alike."""
    tpe = tpe_command()
    shown = "tpe" if len(tpe) == 1 else "python -m sim.cli"
    envs = environments(cache_dir)
    rows = []
    for label, env in envs.items():
        rows += [Timed(f"{shown} {' '.join(GEMM_ARGS)}", label, [*tpe, *GEMM_ARGS], env,
                       goal=True),
                 Timed(f"{shown} --help", label, [*tpe, "--help"], env)]
    rows += [Timed("reference: python -c pass (the interpreter alone)", "cached",
                   [sys.executable, "-c", "pass"], envs["cached"]),
             Timed(BASELINE, "cached", [sys.executable, "-c", "import numpy, pydantic"],
                   envs["cached"]),
             Timed("reference: import numpy, pydantic.dataclasses (what every simulation "
                   "needs)", "cached", [sys.executable, "-c", "import numpy, pydantic.dataclasses"],
                   envs["cached"])]
    if rev is not None:
        name, tree = rev
        rows.append(Timed(f"python -m sim.cli {' '.join(GEMM_ARGS)} at {name}", "cached",
                          [sys.executable, "-m", "sim.cli", *GEMM_ARGS],
                          {**envs["cached"], "PYTHONPATH": str(tree)}, cwd=tree))
    for i in range(runs + 1):
        for t in rows:
            t.run(timed=i > 0)
    return rows, json.loads(rows[0].stdout)


def measure_scalesim(venv: Path, dataflow: str, runs: int, timeout_s: float,
                     mem_limit_gib: float) -> tuple[list[ss.ScaleSimResult], list[str]]:
    """SCALE-Sim's runs of :data:`CASE` and what is wrong with them (empty if nothing)."""
    python = peers.venv_python(venv)
    results = [ss.run_scalesim(python, CASE, dataflow, timeout_s, mem_limit_gib)
               for _ in range(runs)]
    bad = []
    want = ss.scalesim_cycles_closed_form(CASE, dataflow)
    for r in results:
        if not r.ok:
            bad.append(f"SCALE-Sim {r.status}" + (f": {r.detail}" if r.detail else ""))
        elif r.cycles != want or r.stall_cycles != 0:
            bad.append(f"SCALE-Sim {r.cycles} cycles ({r.stall_cycles} stalls), closed form "
                       f"{want}")
    return results, bad


def load_average() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return ""


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=15,
                   help="timed runs of each of our commands (default %(default)s)")
    p.add_argument("--scalesim-runs", type=int, default=3,
                   help="timed SCALE-Sim processes (default %(default)s)")
    p.add_argument("--no-scalesim", action="store_true", help="time ours only")
    p.add_argument("--venv", type=Path, default=ss.DEFAULT_VENV,
                   help="the SCALE-Sim venv (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="wall-clock limit of one SCALE-Sim run, seconds (default %(default)s)")
    p.add_argument("--mem-limit-gib", type=float, default=8.0,
                   help="address-space limit of a SCALE-Sim run (default %(default)s)")
    p.add_argument("--out", type=Path, help="CSV path (default "
                   "benchmarks/results/cli_speed_<date>.csv)")
    p.add_argument("--baseline", default=None, metavar="REV",
                   help="also time git revision REV's tpe sim gemm (bytecode cached), in turn "
                   "with ours")
    args = p.parse_args(argv)
    if args.runs < 1 or args.scalesim_runs < 1:
        p.error("--runs and --scalesim-runs must be >= 1")
    venv = args.venv.resolve()
    if not args.no_scalesim:
        status = ss.PEER.prepare(venv, setup=False)
        if status is not None:
            return status

    today = _dt.date.today().isoformat()
    machine = peers.machine()
    print(f"# tpe sim gemm as a whole process vs {ss.PEER.label} ({today}; {machine})",
          flush=True)
    load_before = load_average()
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="cli_speed_pyc_") as cache, \
            contextlib.ExitStack() as stack:
        rev = ((args.baseline, stack.enter_context(worktree(args.baseline)))
               if args.baseline else None)
        try:
            ours, result = measure_ours(args.runs, Path(cache), rev)
        except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as err:
            print(f"cli_speed: {err}", file=sys.stderr)
            return 1
    engine = result.get("engine", {})
    dataflow = engine.get("dataflow", "os") if isinstance(engine, dict) else "os"
    if (not isinstance(engine, dict) or (engine.get("rows"), engine.get("cols"))
            != (CASE.rows, CASE.cols) or "cycles" not in result):
        failures.append(f"tpe sim gemm printed an unexpected result: {result!r:.200}")
    scalesim: list[ss.ScaleSimResult] = []
    if not args.no_scalesim:
        print(f"- {ss.PEER.label}: {CASE.name} {dataflow.upper()} x{args.scalesim_runs} ...",
              flush=True)
        scalesim, bad = measure_scalesim(venv, dataflow, args.scalesim_runs, args.timeout,
                                         args.mem_limit_gib)
        failures += bad
    load_after = load_average()

    ss_wall = statistics.median(r.wall_s for r in scalesim) if scalesim else None
    ss_sim = [r.seconds for r in scalesim if r.seconds is not None]
    baseline = next(t.median for t in ours if t.what == BASELINE)
    rev_median = next((t.median for t in ours if args.baseline and
                       t.what.endswith(f" at {args.baseline}")), None)
    rev_cpu = next((statistics.median(t.cpu) for t in ours if args.baseline and
                    t.what.endswith(f" at {args.baseline}")), None)
    rows: list[dict[str, object]] = []
    for t in ours:
        is_gemm = t.goal
        rows.append({
            "what": t.what, "bytecode": t.bytecode, "runs": len(t.wall),
            "median_s": round(t.median, 4), "min_s": round(min(t.wall), 4),
            "cpu_median_s": round(statistics.median(t.cpu), 4),
            "ratio_to_baseline": round(t.median / baseline, 2),
            "goal_s": GOAL_S if is_gemm else "",
            "verdict": ("PASS" if t.median <= GOAL_S else "FAIL") if is_gemm else "",
            "speed_ratio_scalesim_over_this":
                round(ss_wall / t.median, 1) if is_gemm and ss_wall else "",
            "speed_ratio_rev_over_this":
                round(rev_median / t.median, 2) if is_gemm and rev_median else "",
            "cpu_ratio_rev_over_this":
                round(rev_cpu / statistics.median(t.cpu), 2) if is_gemm and rev_cpu else "",
            "detail": (f"{result.get('cycles')} cycles, memory {result.get('memory')}, "
                       f"dataflow {dataflow}") if is_gemm else "",
        })
    if scalesim and ss_wall is not None:
        rows.append({
            "what": f"{ss.PEER.label} {CASE.name} {dataflow.upper()} (whole process)",
            "bytecode": "its venv's", "runs": len(scalesim), "median_s": round(ss_wall, 4),
            "min_s": round(min(r.wall_s for r in scalesim), 4), "cpu_median_s": "",
            "ratio_to_baseline": round(ss_wall / baseline, 1),
            "goal_s": "", "verdict": "", "speed_ratio_scalesim_over_this": "",
            "speed_ratio_rev_over_this": "", "cpu_ratio_rev_over_this": "",
            "detail": (f"{scalesim[0].cycles} cycles (stall-free); simulation alone "
                       f"{statistics.median(ss_sim):.3f} s; {scalesim[0].versions}")
            if ss_sim else scalesim[0].status,
        })
    for r in rows:
        r.update(machine=machine, load_before=load_before, load_after=load_after)

    print()
    print(peers.table_row(["what", "bytecode", "median (min) of n", "/ baseline", "goal",
                           "SCALE-Sim / this", f"{args.baseline or 'REV'} / this",
                           "CPU: REV / this"]))
    print("| --- | --- | ---: | ---: | --- | ---: | ---: | ---: |")
    for r in rows:
        ratio = r["speed_ratio_scalesim_over_this"]
        rev_ratio = r["speed_ratio_rev_over_this"]
        cpu_ratio = r["cpu_ratio_rev_over_this"]
        print(peers.table_row([
            str(r["what"]), str(r["bytecode"]),
            f"{r['median_s']:.3f} s ({r['min_s']:.3f} s) of {r['runs']}",
            f"{r['ratio_to_baseline']}x",
            f"<= {GOAL_S} s: {r['verdict']}" if r["verdict"] else "",
            f"{ratio:,.1f}x" if isinstance(ratio, float) else "",
            f"{rev_ratio:.2f}x" if isinstance(rev_ratio, float) else "",
            f"{cpu_ratio:.2f}x" if isinstance(cpu_ratio, float) else ""]))
    print(f"\n1-minute load average: {load_before} before, {load_after} after")
    out = args.out or peers.RESULTS_DIR / f"cli_speed_{today}.csv"
    peers.write_csv(out, CSV_FIELDS, rows)
    print(f"wrote {out.relative_to(peers.REPO) if out.is_relative_to(peers.REPO) else out}")
    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
