"""What the speed benchmarks share to measure against earlier code in the same run.

* :func:`worktree`: revision ``rev`` of this repository checked out in a temporary git
  worktree, to run that revision's own version of a benchmark on its own code, now, on this
  machine (the baseline of the ratios); :func:`run_on` runs a script on such a tree's code
  (that revision's own benchmark, :func:`run_own_version`, or this tree's checker on it).
* :func:`scaled_goal`: a goal in seconds, set against figures measured on this machine on an
  earlier day, scaled by how much slower or faster the machine runs the same code today:
  ``goal * baseline now / baseline then``. Shared 2-core machines vary from day to day by
  several times; the ratio holds where the seconds do not.
"""

from __future__ import annotations

import contextlib
import csv
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from _peers import last_line

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


@contextlib.contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """A detached checkout of ``rev`` in a temporary directory, removed afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "baseline"
        proc = subprocess.run(["git", "worktree", "add", "--detach", str(tree), rev], cwd=REPO,
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-1:] or ["git worktree add failed"]
            raise SystemExit(f"--baseline {rev}: {tail[0]}")
        try:
            yield tree
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO,
                           check=False, capture_output=True)


def run_on(tree: Path, script: Path, args: Sequence[str], written: Path, failed: str) -> None:
    """Run the Python ``script`` with ``args`` on the code of ``tree`` (a :func:`worktree`:
    its directory first on the import path), expecting it to write ``written``; exit with
    ``failed: <the run's last error line>`` when it fails or writes nothing there."""
    proc = subprocess.run([sys.executable, str(script), *args], cwd=tree,
                          env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0 or not written.exists():
        raise SystemExit(f"{failed}: {last_line(proc)}")


def run_own_version(rev: str, tree: Path, script: str, args: Sequence[str],
                    written: Path) -> list[dict[str, str]]:
    """Run ``rev``'s own ``benchmarks/<script>`` with ``args`` on ``rev``'s code (``tree``, a
    :func:`worktree`) and return the rows of the CSV it writes at ``written``; exit naming
    ``rev`` and the run's last error line when it fails."""
    run_on(tree, tree / "benchmarks" / script, args, written,
           f"{Path(script).stem}: --baseline {rev}: its benchmark failed")
    return read_rows(written)


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def scaled_goal(goal_s: float, baseline_now_s: float | None,
                baseline_then_s: float | None) -> float | None:
    """``goal_s`` on today's machine (module doc), ``None`` without both baseline figures."""
    if not baseline_now_s or not baseline_then_s:
        return None
    return goal_s * baseline_now_s / baseline_then_s
