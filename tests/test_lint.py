"""``verilator --lint-only -Wall NAME.v lint.vlt`` on generated designs: no warning.

A grid of small designs covers every engine kind, every option of each (both values of
every switch, every choice of every choice field: :func:`test_grid_covers_every_option`
holds the grid to the specs, so a new option needs a point here), operand widths that are
not powers of two, one-bit operands and wrapping accumulators, and the tiles of every engine
the tile builds. Lint only parses and checks (no C++), so the grid runs in CI in about half a
minute; ``FULL_GRID`` (every combination of each kind's switches, larger arrays) is marked
``slow``. Each design's ``lint.vlt`` gives every waiver a reason and a message pattern, and
waives nothing a generator could get wrong: a width mismatch or a dead signal added to the
Verilog is reported.
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest

from hw.emit import generate
from hw.lint import LINT_FILE
from hw.spec import engine_from_dict, engine_kinds, load_arch, tile_spec
from sim.cli import main
from sim.verify.tile_bench import SMALL_CUBE
from sim.verify.toolchain import find_verilator, verilator_env

#: Engine points: every option of every kind at least once (both values of a switch).
GRID: list[dict[str, Any]] = [
    dict(kind="systolic", rows=2, cols=3, a_bits=3, w_bits=5, acc_bits=11),
    dict(kind="systolic", rows=1, cols=1, a_bits=1, w_bits=1, acc_bits=1, signed=False),
    dict(kind="systolic", rows=2, cols=2, a_bits=6, w_bits=5, acc_bits=20, dataflow="ws",
         signed=False, weight_double_buffer=True),
    dict(kind="systolic", rows=3, cols=2, booth=True, csa_accumulate=True,
         output_double_buffer=True),
    dict(kind="systolic", rows=2, cols=2, a_bits=7, w_bits=6, acc_bits=19, dataflow="ws",
         booth=True, csa_accumulate=True, weight_double_buffer=True),
    dict(kind="systolic", rows=2, cols=3, a_bits=5, w_bits=4, acc_bits=13, csa_accumulate=True,
         cpa_reg=True),
    dict(kind="systolic", rows=3, cols=2, dataflow="ws", csa_accumulate=True, cpa_reg=True,
         weight_double_buffer=True, signed=False),
    dict(kind="cube", m=2, n=3, k=3, a_bits=4, w_bits=4, acc_bits=16),
    dict(kind="cube", m=2, n=2, k=2, a_bits=5, w_bits=7, acc_bits=40, booth=True,
         csa_accumulate=True, output_double_buffer=True, signed=False),
    dict(kind="cube", m=2, n=3, k=5, a_bits=6, w_bits=5, acc_bits=18, mult_reg=True,
         tree_stage_levels=1),
    dict(kind="cube", m=3, n=2, k=3, booth=True, csa_accumulate=True, mult_reg=True,
         tree_stage_levels=2, output_double_buffer=True, signed=False, cpa_reg=True),
    dict(kind="addertree", lanes=2, k=3, a_bits=5, w_bits=3, acc_bits=14),
    dict(kind="addertree", lanes=3, k=2, dataflow="ws", booth=True, compress=True,
         signed=False),
    dict(kind="addertree", lanes=2, k=4, dataflow="ws", booth=True, a_bits=7, w_bits=9),
    dict(kind="addertree", lanes=3, k=6, a_bits=6, w_bits=7, acc_bits=21, mult_reg=True,
         tree_stage_levels=2),
    dict(kind="addertree", lanes=2, k=5, booth=True, compress=True, mult_reg=True,
         tree_stage_levels=1, signed=False),
    dict(kind="addertree", lanes=2, k=3, dataflow="ws", compress=True, tree_stage_levels=3),
    dict(kind="matrix2d", rows=2, cols=3, a_bits=3, w_bits=4, acc_bits=12),
    dict(kind="matrix2d", rows=2, cols=2, booth=True, csa_accumulate=True, signed=False),
    dict(kind="lut", rows=2, cols=2, group=3, a_bits=5, w_bits=3),
    dict(kind="lut", rows=2, cols=3, group=1, symmetric=False, carry_save=True, signed=False),
    dict(kind="bitslice", rows=2, cols=2, a_bits=5, w_bits=3, acc_bits=17),
    dict(kind="bitslice", rows=2, cols=2, slice_bits=3, csa_accumulate=True, skip_zero=True,
         signed=False),
    dict(kind="bitplane", rows=2, cols=2, depth=3, a_bits=3, w_bits=5),
    dict(kind="bitplane", rows=2, cols=3, depth=4, encoding="bipolar", carry_save=True,
         signed=False, a_bits=2, w_bits=4),
    dict(kind="mx", rows=2, lanes=2, block=4, acc_bits=40, acc_lsb_exp=-20,
         formats="fp8_e4m3+fp8_e5m2+fp6_e3m2+fp6_e2m3+fp4_e2m1+int8"),
    dict(kind="mx", lanes=3, block=1, formats="fp4_e2m1", acc_bits=12, acc_lsb_exp=3),
    dict(kind="mx", lanes=1, block=2, formats="int8+fp6_e2m3", acc_bits=64, acc_lsb_exp=-300),
]

#: Tiles (``tpe gen tile``): every engine the tile builds, both systolic dataflows and the
#: double buffers, with small scratchpads.
_SCRATCHPADS = ["a_buffer.width_bits=32", "a_buffer.capacity_bytes=128",
                "w_buffer.width_bits=32", "w_buffer.capacity_bytes=64",
                "o_buffer.width_bits=128", "o_buffer.capacity_bytes=256",
                "dram.bandwidth_gb_per_s=4.0"]  # a 4-byte port: small tiles, quick to write
TILES: list[tuple[str, list[str]]] = [
    ("systolic", ["engine.rows=4", "engine.cols=4", *_SCRATCHPADS,
                  "engine.output_double_buffer=true"]),
    ("systolic", ["engine.rows=4", "engine.cols=4", *_SCRATCHPADS, "engine.dataflow=ws",
                  "engine.weight_double_buffer=true", "w_buffer.capacity_bytes=128"]),
    ("cube", [*SMALL_CUBE, "engine.output_double_buffer=true", "dram.bandwidth_gb_per_s=4.0"]),
    ("matrix2d", ["engine.rows=4", "engine.cols=4", *_SCRATCHPADS]),
    ("bitslice", ["engine.rows=4", "engine.cols=4", *_SCRATCHPADS, "engine.skip_zero=true"]),
]


def _options(cls: type) -> dict[str, tuple[Any, ...]]:
    """Every option of an engine kind's spec and the values it must be linted with: both
    values of a switch, every choice of a choice field, off (0) and 1 for a count that is off
    at 0 (``tree_stage_levels``: a register after every adder level)."""
    out: dict[str, tuple[Any, ...]] = {}
    for name, info in cls.__pydantic_fields__.items():
        if name == "kind":
            continue
        if info.annotation is bool:
            out[name] = (False, True)
        elif info.annotation is int and info.default == 0:
            out[name] = (0, 1)
        elif get_origin(info.annotation) is Literal:
            out[name] = get_args(info.annotation)
    return out


def _full_grid() -> list[dict[str, Any]]:
    """Every combination of each kind's options on the sizes of its first grid point, and
    that point at four times its array size: the slow grid."""
    points = []
    for kind, cls in engine_kinds().items():
        base = next(p for p in GRID if p["kind"] == kind)
        opts = _options(cls)
        for values in itertools.product(*opts.values()):
            point = {**base, **dict(zip(opts, values, strict=True))}
            try:
                engine_from_dict(point)
            except ValueError:  # a combination the kind does not allow (e.g. OS and WS only)
                continue
            points.append(point)
        dims = {k: 2 * v for k, v in base.items()
                if k in ("rows", "cols", "lanes", "m", "n") and isinstance(v, int)}
        points.append({**base, **dims})
    return points


def lint(design: Path) -> str:
    """Verilator's lint of a design folder, as its lint.vlt says to run it (in the folder,
    the file names relative): the warnings and errors, empty if none."""
    name = design.name
    tool = find_verilator()
    done = subprocess.run(
        [str(tool.executable), "--lint-only", "-Wall", f"{name}.v", LINT_FILE],
        cwd=design, env=verilator_env(tool), capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0 or "%Warning" in out or "%Error" in out, out
    return out


def _messages(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(("%Warning", "%Error"))]


@pytest.fixture(scope="module")
def engines(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("lint")
    return [generate(engine_from_dict(p), out) for p in GRID]


@pytest.fixture(scope="module")
def tiles(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("lint_tiles")
    return [generate(tile_spec(load_arch(arch, sets)), out) for arch, sets in TILES]


def test_grid_covers_every_option() -> None:
    """Every option of every engine kind takes each of its values in some point of GRID."""
    kinds = engine_kinds()
    assert {p["kind"] for p in GRID} == set(kinds)
    for kind, cls in kinds.items():
        points = [engine_from_dict(p) for p in GRID if p["kind"] == kind]
        for name, values in _options(cls).items():
            seen = {getattr(spec, name) for spec in points}
            if values == (0, 1):  # a count that is off at 0: off and some setting on
                seen = {min(v, 1) for v in seen}
            assert seen == set(values), f"{kind}.{name}: GRID lints {seen}, not {values}"


def test_engines_lint_clean(engines: list[Path]) -> None:
    found = {d.name: _messages(lint(d)) for d in engines}
    assert not {n: m for n, m in found.items() if m}


def test_tiles_lint_clean(tiles: list[Path]) -> None:
    found = {d.name: _messages(lint(d)) for d in tiles}
    assert not {n: m for n, m in found.items() if m}


def test_every_waiver_has_a_reason_and_a_pattern(engines: list[Path],
                                                  tiles: list[Path]) -> None:
    """lint.vlt: groups of waivers, each group under a one-line reason; every waiver names
    its rule, the design's file and a message pattern (no rule waived for a whole file
    without one)."""
    waiver = re.compile(r'lint_off -rule ([A-Z]+) -file "\*(\S+\.v)" -match "(.+)"')
    for design in (*engines, *tiles):
        text = (design / LINT_FILE).read_text()
        assert text.startswith("`verilator_config\n")
        for group in text.split("\n\n")[1:]:
            reason, *lines = group.strip().splitlines()
            assert reason.startswith("// ") and len(reason) > 20, group
            assert lines, group
            for line in lines:
                m = waiver.fullmatch(line)
                assert m, line
                assert m.group(2) == f"{design.name}.v"


def test_waivers_leave_the_generators_faults_reported(engines: list[Path],
                                                      tmp_path: Path) -> None:
    """A dead named signal and a truncating assignment added to a design's top module, and
    an input of a PE instance left unconnected, are reported through its lint.vlt: the
    waivers cover how Amaranth writes, not what a generator could get wrong."""
    design = engines[0]
    copy = tmp_path / design.name
    copy.mkdir()
    (copy / LINT_FILE).write_text((design / LINT_FILE).read_text())
    text = (design / f"{design.name}.v").read_text()
    probe = ("  wire [7:0] lint_probe_dead;\n  assign lint_probe_dead = i__payload[7:0];\n"
             "  wire [2:0] lint_probe_narrow;\n  assign lint_probe_narrow = i__payload[7:0];\n")
    top = text.index(f"\nmodule {design.name}(")
    end = text.index("endmodule", top)  # the top module's end (Yosys sorts modules by name)
    text = text[:end] + probe + text[end:]
    assert text.count("    .step(step),\n") > 1  # PE instances, each with its step
    text = text.replace("    .step(step),\n", "", 1)
    (copy / f"{design.name}.v").write_text(text)
    found = "\n".join(_messages(lint(copy)))
    assert "Signal is not used: 'lint_probe_dead'" in found
    assert "%Warning-WIDTHTRUNC" in found and "lint_probe_narrow" in found
    assert "Instance has missing pin: 'step'" in found


@pytest.mark.slow
@pytest.mark.parametrize("point", _full_grid(), ids=lambda p: engine_from_dict(p).name)
def test_full_grid_lint_clean(point: dict[str, Any], tmp_path: Path) -> None:
    design = generate(engine_from_dict(point), tmp_path)
    assert not _messages(lint(design))


def test_verify_refuses_a_design_without_lint_vlt(engines: list[Path], tmp_path: Path,
                                                  capsys) -> None:
    """A design folder from before lint.vlt: `tpe verify` exits 2 with one line that says to
    regenerate it, before building anything."""
    design = tmp_path / engines[0].name
    shutil.copytree(engines[0], design)
    (design / LINT_FILE).unlink()
    assert main(["verify", str(design)]) == 2
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(rf"tpe: error: \S+/{LINT_FILE}: missing \(the design predates its "
                        r"Verilator waivers\); regenerate it with `tpe gen`", err), err
    assert not (design / "sim_build").exists()
