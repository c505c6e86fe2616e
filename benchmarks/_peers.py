"""What the peer-simulator comparisons share (scalesim_compare.py, zigzag_compare.py).

Each peer runs in a virtual environment of its own at the repository root, one fresh
subprocess per case with a wall-clock and an address-space limit; our simulator is timed
in-process as the median of many calls. This module holds the cases (``MxNxK@RxC`` on an
R x C array), the venv check and ``--setup``, the limited subprocess, the median timing, the
command-line options the two scripts have in common, the machine line, the CSV writer and
the loop over the cases that both ``main`` functions hand their own parts to
(:meth:`Peer.run`).

The scripts import it as ``_peers``: run as ``python benchmarks/<script>.py`` the folder of
the script is on ``sys.path``; they also put it there themselves for other ways of loading.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make hw/, sim/, models/ importable
    sys.path.insert(0, str(REPO))
RESULTS_DIR = REPO / "benchmarks" / "results"
DATAFLOWS = ("os", "ws")


# -- cases ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A GEMM ``C[M, N] = A[M, K] @ W[K, N]`` on a ``rows`` x ``cols`` array."""

    M: int
    N: int
    K: int
    rows: int
    cols: int

    @property
    def name(self) -> str:
        return f"{self.M}x{self.N}x{self.K} on {self.rows}x{self.cols}"

    @property
    def key(self) -> str:
        return f"{self.M}x{self.N}x{self.K}@{self.rows}x{self.cols}"

    def size(self, dim: str) -> int:
        """The size of GEMM dimension ``dim`` ("M", "N" or "K")."""
        return {"M": self.M, "N": self.N, "K": self.K}[dim]


def parse_case(text: str) -> Case:
    """``MxNxK@RxC``, e.g. ``64x64x64@8x8``."""
    try:
        gemm, array = text.split("@")
        M, N, K = (int(v) for v in gemm.split("x"))
        R, C = (int(v) for v in array.split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected MxNxK@RxC (e.g. 64x64x64@8x8), got {text!r}") from None
    if min(M, N, K, R, C) < 1:
        raise argparse.ArgumentTypeError(f"dimensions must be >= 1: {text!r}")
    return Case(M, N, K, R, C)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def array_dims(dataflow: str) -> tuple[str, str, str]:
    """Our ``(rows <-, cols <-, streamed)`` GEMM dimensions: OS rows <- M, cols <- N, K streams;
    WS rows <- K, cols <- N, M streams (hw.spec's systolic unrolling)."""
    return ("M", "N", "K") if dataflow == "os" else ("K", "N", "M")


def folds(case: Case, dataflow: str) -> int:
    """Folds of the GEMM on the array, one per rows x cols block of the spatial dimensions
    (OS: output tiles; WS: weight tiles). SCALE-Sim, ZigZag and TPEForge fold the same way."""
    r, c, _ = array_dims(dataflow)
    return ceil_div(case.size(r), case.rows) * ceil_div(case.size(c), case.cols)


#: The first CSV columns of both benchmarks: the case, its dataflow and folds.
CASE_CSV_FIELDS = ("case", "M", "N", "K", "rows", "cols", "dataflow", "folds")


@dataclass
class CaseRow:
    """The start of a benchmark's result row: a case in one dataflow."""

    case: Case
    dataflow: str

    @property
    def folds(self) -> int:
        return folds(self.case, self.dataflow)

    def csv_fields(self) -> dict[str, Any]:
        """The :data:`CASE_CSV_FIELDS` columns."""
        c = self.case
        return {"case": c.key, "M": c.M, "N": c.N, "K": c.K, "rows": c.rows, "cols": c.cols,
                "dataflow": self.dataflow, "folds": self.folds}


class _Checked(Protocol):
    failures: list[str]  # what the benchmark's checks found wrong with a case


_Row = TypeVar("_Row", bound=_Checked)


# -- the peer's venv ------------------------------------------------------------------------


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def last_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The last line of a failed process's stderr (its error), or its exit status."""
    return (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]


@dataclass(frozen=True)
class Peer:
    """The simulator a benchmark compares with: its name, pinned version and requirements,
    how to check its venv, and the benchmark's ``prog`` name (``<results name>_compare``)."""

    name: str  # "SCALE-Sim"
    dist: str  # its distribution on PyPI: "scalesim"
    version: str
    requirements: tuple[str, ...]  # what ``--setup`` installs
    #: Python code that imports the peer and prints its version (then any others to check)
    probe: str
    default_venv: Path
    prog: str  # "scalesim_compare"
    script: str  # the benchmark's __file__, for the setup hint
    #: what is wrong with the versions the probe printed after the peer's, or None
    check_more: Callable[[Path, list[str]], str | None] | None = None

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"

    def check(self, venv: Path) -> str | None:
        """None if ``venv`` runs :attr:`probe` and it prints :attr:`version` (and whatever
        :attr:`check_more` checks), else what is wrong."""
        python = venv_python(venv)
        if not python.exists():
            return f"{venv} does not exist"
        proc = subprocess.run([str(python), "-c", self.probe], capture_output=True, text=True)
        if proc.returncode != 0:
            return f"{python} cannot import {self.name} ({last_line(proc)})"
        version, *more = proc.stdout.split()
        if version != self.version:
            return f"{venv} has {self.dist} {version}, expected {self.version}"
        return None if self.check_more is None else self.check_more(venv, more)

    def setup(self, venv: Path) -> int:
        """Create the peer's venv (idempotent) and install its pinned requirements."""
        if self.check(venv) is None:
            print(f"{venv}: {self.label} already installed")
            return 0
        if not venv_python(venv).exists():
            print(f"creating {venv}")
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        cmd = [str(venv_python(venv)), "-m", "pip", "install", "--disable-pip-version-check",
               *self.requirements]
        print("running:", " ".join(cmd))
        subprocess.run(cmd, check=True)
        problem = self.check(venv)
        if problem:
            print(f"setup failed: {problem}", file=sys.stderr)
            return 1
        print(f"{venv}: {self.label} ready")
        return 0

    def prepare(self, venv: Path, setup: bool) -> int | None:
        """``setup`` (``--setup``): set ``venv`` up and return the exit code. Else None if the
        benchmark can run (the venv passes the check and our simulator imports), or 2 after
        saying on stderr what to do."""
        if setup:
            return self.setup(venv)
        problem = self.check(venv)
        if problem:
            venv_arg = "" if venv == self.default_venv else f" --venv {venv}"
            print(f"{self.prog}: {problem}; run with --setup first: {sys.executable} "
                  f"{Path(self.script).resolve()} --setup{venv_arg}", file=sys.stderr)
            return 2
        try:
            import sim.gemm  # noqa: F401
        except ImportError as err:
            print(f"{self.prog}: cannot import sim.gemm ({err}); run with the project's venv "
                  "(.venv/bin/python)", file=sys.stderr)
            return 2
        return None

    def add_venv_arguments(self, p: argparse.ArgumentParser) -> None:
        """``--setup`` and ``--venv``."""
        p.add_argument("--setup", action="store_true",
                       help=f"create/refresh the {self.name} venv (pip install "
                            + " ".join(self.requirements) + ") and exit")
        p.add_argument("--venv", type=Path, default=self.default_venv,
                       help=f"the {self.name} venv (default: %(default)s)")

    def default_out(self, today: str) -> Path:
        """The CSV of a run on ``today``: ``benchmarks/results/<results name>_<date>.csv``."""
        return RESULTS_DIR / f"{self.prog.removesuffix('_compare')}_{today}.csv"

    def heading(self, today: str) -> str:
        """The first line of the report."""
        return f"# {self.label} vs TPEForge ({today}; {machine()})"

    def run(self, args: argparse.Namespace, cases: Iterable[Case],
            run_case: Callable[[Case, str, Path], _Row], csv_fields: Sequence[str],
            csv_row: Callable[[_Row], Mapping[str, Any]], report: Callable[[list[_Row]], None],
            failed: str, passed: str) -> int:
        """A benchmark after its command line (``args`` has the options of
        :meth:`add_venv_arguments`, :func:`add_run_arguments` and ``--out``): ``--setup`` or
        :meth:`prepare`, then ``run_case(case, dataflow, the peer's python)`` for every case
        and ``--dataflow`` (it prints its progress without a newline; this adds ``-> ok`` or
        ``-> FAIL`` and the failures), the CSV, ``report(rows)`` (the tables) and the exit
        code: 1 if a row failed ("N case(s) <failed>" on stderr), else 0 ("all N cases
        <passed>")."""
        venv = args.venv.resolve()
        status = self.prepare(venv, setup=args.setup)
        if status is not None:
            return status
        dataflows = args.dataflow or list(DATAFLOWS)
        today = _dt.date.today().isoformat()
        out = args.out or self.default_out(today)

        print(self.heading(today), flush=True)
        rows = []
        for case in cases:
            for df in dataflows:
                row = run_case(case, df, venv_python(venv))
                print(f" -> {'ok' if not row.failures else 'FAIL'}", flush=True)
                for f in row.failures:
                    print(f"  FAIL: {f}", flush=True)
                rows.append(row)
        write_csv(out, csv_fields, map(csv_row, rows))
        report(rows)
        print(f"wrote {out}")
        bad = [r for r in rows if r.failures]
        if bad:
            print(f"{len(bad)} case(s) {failed}", file=sys.stderr)
            return 1
        print(f"all {len(rows)} cases {passed}")
        return 0


# -- running the peer -----------------------------------------------------------------------


def _limit_memory(limit_bytes: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    return apply


@dataclass
class Limited:
    """A run of :func:`run_limited`: ``proc`` is None if it timed out (and was killed)."""

    proc: subprocess.CompletedProcess[str] | None
    wall_s: float  # parent-side wall time: start, imports, the run, exit


def run_limited(argv: Sequence[str], cwd: Path, timeout_s: float,
                mem_limit_gib: float) -> Limited:
    """``argv`` in a fresh process in ``cwd``, output captured, stopped after ``timeout_s``
    seconds and limited to ``mem_limit_gib`` GiB of address space."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout_s, cwd=cwd,
            preexec_fn=_limit_memory(int(mem_limit_gib * (1 << 30))),
        )
    except subprocess.TimeoutExpired:  # subprocess.run has killed the child it started
        return Limited(None, time.perf_counter() - t0)
    return Limited(proc, time.perf_counter() - t0)


# -- timing ours ----------------------------------------------------------------------------


def median_call_seconds(fn: Callable[[], object], clear: Iterable[Callable[[], None]],
                        min_repeats: int, min_total_s: float, max_repeats: int
                        ) -> tuple[float, int]:
    """Median wall time of ``fn()``, each call timed alone with all ``clear`` run before it
    (outside the timed region). Repeats until both minimums are met or ``max_repeats``."""
    clear = list(clear)
    times: list[float] = []
    total = 0.0
    while len(times) < max_repeats and (len(times) < min_repeats or total < min_total_s):
        for c in clear:
            c()
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        times.append(dt)
        total += dt
    return statistics.median(times), len(times)


# -- command line ---------------------------------------------------------------------------


def _same(kind: type) -> Any:
    return kind


def add_run_arguments(p: argparse.ArgumentParser, tool: str, timeout_s: float,
                      mem_limit_gib: float, number: Callable[[type], Any] = _same) -> None:
    """``--case``, ``--dataflow``, ``--timeout`` and ``--mem-limit-gib``; ``number(float)``
    parses the limits."""
    p.add_argument("--case", dest="cases", type=parse_case, action="append",
                   metavar="MxNxK@RxC",
                   help="run only these cases (repeatable), e.g. --case 64x64x64@8x8")
    p.add_argument("--dataflow", choices=DATAFLOWS, action="append",
                   help="only this dataflow (repeatable; default both)")
    p.add_argument("--timeout", type=number(float), default=timeout_s,
                   help=f"per-case {tool} wall-clock limit in seconds (default %(default)s)")
    p.add_argument("--mem-limit-gib", type=number(float), default=mem_limit_gib,
                   help=f"address-space limit of each {tool} process (default %(default)s)")


def add_repeat_arguments(p: argparse.ArgumentParser, per: str,
                         number: Callable[[type], Any] = _same) -> None:
    """``--min-repeats``, ``--min-time`` and ``--max-repeats`` of :func:`median_call_seconds`
    (one median ``per`` case or measurement); ``number(int)`` and ``number(float)`` parse
    them."""
    p.add_argument("--min-repeats", type=number(int), default=200,
                   help=f"at least this many timed simulate_gemm calls per {per} (default "
                        "%(default)s)")
    p.add_argument("--min-time", type=number(float), default=0.5,
                   help="and at least this many seconds of them (default %(default)s)")
    p.add_argument("--max-repeats", type=number(int), default=100_000)


# -- report ---------------------------------------------------------------------------------


def machine() -> str:
    """CPU model, CPU count and Python version, for the first line of the report."""
    return f"{_cpu_model()}, {os.cpu_count()} CPUs; Python {platform.python_version()}"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def fmt_seconds(s: float, ms_digits: int = 1) -> str:
    if s >= 0.1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.{ms_digits}f} ms"
    return f"{s * 1e6:.0f} us"


def table_row(cells: Iterable[str]) -> str:
    """One row of a Markdown table."""
    return "| " + " | ".join(cells) + " |"


def write_csv(path: Path, fields: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for row in rows:
            w.writerow(row)
