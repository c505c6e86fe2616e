"""`tpe gen`: files, manifest, determinism, synthesis figures and bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from hw.spec import SystolicSpec
from hw.stdcells import load_library
from sim.cli import main


def _gen(tmp_path, *extra: str) -> int:
    return main(["gen", "systolic", "--rows", "3", "--cols", "2", "--a-bits", "4", "--w-bits",
                 "5", "--acc-bits", "12", "--dataflow", "ws", "--out", str(tmp_path), *extra])


def test_gen_writes_verilog_and_manifest(tmp_path, capsys) -> None:
    assert _gen(tmp_path) == 0
    spec = SystolicSpec(rows=3, cols=2, a_bits=4, w_bits=5, acc_bits=12, dataflow="ws")
    folder = tmp_path / spec.name
    assert sorted(p.name for p in folder.iterdir()) == ["lint.vlt", "manifest.json",
                                                        f"{spec.name}.v"]
    assert f"module {spec.name}(" in (folder / f"{spec.name}.v").read_text()
    m = json.loads((folder / "manifest.json").read_text())
    assert SystolicSpec(**m["spec"]) == spec
    assert m["top"] == spec.name and m["kind"] == "systolic"
    ports = {p["name"]: p for p in m["ports"]}
    assert ports["i__payload"]["width"] == 3 * 4 + 1
    assert ports["wl__payload"]["width"] == 2 * 5
    assert ports["o__payload"]["width"] == 2 * 12 + 1
    assert ports["o__valid"]["dir"] == "out" and ports["i__valid"]["dir"] == "in"
    assert m["timing"]["evaluated"]["fold_cycles"]["64"] == spec.fold_cycles(64)
    assert "synth" not in m
    assert str(folder) in capsys.readouterr().out


def test_gen_is_byte_identical(tmp_path) -> None:
    assert _gen(tmp_path / "a") == 0
    assert _gen(tmp_path / "b") == 0
    for a in (tmp_path / "a").rglob("*.*"):
        b = tmp_path / "b" / a.relative_to(tmp_path / "a")
        assert a.read_bytes() == b.read_bytes(), a.name


@pytest.mark.synth
def test_gen_synth_figures(tmp_path) -> None:
    assert _gen(tmp_path, "--synth") == 0
    m = json.loads(next(tmp_path.rglob("manifest.json")).read_text())
    s = m["synth"]
    assert s["cells"] == sum(s["cells_by_type"].values()) > 0
    assert s["transistors"] > s["cells"]
    assert s["longest_path_cells"] > 0
    assert "$_DFF_P_" in s["cells_by_type"]
    # The same netlist in sky130_fd_sc_hd cells: its area is the sum of its cells' LEF areas.
    lib = load_library()
    assert s["area_um2"] == pytest.approx(
        sum(n * lib.cells[c].area_um2 for c, n in s["std_cells_by_type"].items()), abs=1e-3)
    assert s["std_cells"] == sum(s["std_cells_by_type"].values()) > 0
    assert 0 < s["longest_path_std_cells"] <= s["longest_path_cells"]
    assert s["std_cell_library"] == lib.provenance()
    assert "no Fmax" in s["std_cell_library"]["timing"]


@pytest.mark.synth
def test_synth_grows_with_the_array(tmp_path) -> None:
    from hw.emit import generate

    small = generate(SystolicSpec(rows=2, cols=2, a_bits=4, w_bits=4, acc_bits=12), tmp_path,
                     synth=True)
    big = generate(SystolicSpec(rows=2, cols=4, a_bits=4, w_bits=4, acc_bits=12), tmp_path,
                   synth=True)
    fs = json.loads((small / "manifest.json").read_text())["synth"]
    fb = json.loads((big / "manifest.json").read_text())["synth"]
    assert fb["transistors"] > 1.5 * fs["transistors"]
    assert fb["area_um2"] > 1.5 * fs["area_um2"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rows", "0", "--cols", "2"], r"^tpe: error: --rows: must be >= 1 \(got 0\)$"),
        (["--rows", "2", "--cols", "2", "--a-bits", "17"],
         r"^tpe: error: --a-bits: must be <= 16 \(got 17\)$"),
        (["--rows", "2", "--cols", "2", "--w-bits", "0"],
         r"^tpe: error: --w-bits: must be >= 1 \(got 0\)$"),
        (["--rows", "2", "--cols", "2", "--acc-bits", "99"],
         r"^tpe: error: --acc-bits: must be <= 64 \(got 99\)$"),
        (["--rows", "-3", "--cols", "2"], r"^tpe: error: --rows: must be >= 1 \(got -3\)$"),
        (["--rows", "two", "--cols", "2"], r"argument --rows: invalid int value: 'two'"),
        (["--rows", "2", "--cols", "2", "--dataflow", "is"],
         r"argument --dataflow: invalid choice"),
    ],
)
def test_gen_bad_input_exits_2_with_one_line(tmp_path, args, message) -> None:
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "sim.cli", "gen", "systolic", *args, "--out",
                           str(out)], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert re.search(message, lines[0]), lines[0]
    assert not out.exists()  # nothing half-written


@pytest.mark.parametrize(("args", "message"), [
    # a rule over the whole spec names the option it is about, not "spec"
    (["mx", "--lanes", "2", "--a-bits", "4"], r"^tpe: error: --a-bits: the codes of fp8_e4m3 "
     r"are 8 bits wide; "),
    (["mx", "--lanes", "2", "--unsigned"],
     r"^tpe: error: --unsigned: the mx engine takes signed operands only; drop --unsigned$"),
    (["addertree", "--lanes", "1", "--k", "2", "--tree-stage-levels", "3"],
     r"^tpe: error: --tree-stage-levels: 3 adder levels per stage, more than the 1 level of "
     r"the tree of k=2 products .*; set 1, or 0 for none$"),
])
def test_gen_rules_name_the_option(tmp_path, capsys, args, message) -> None:
    from cli_run import run

    code, out, err = run(capsys, ["gen", *args, "--out", str(tmp_path / "o")])
    assert code == 2 and not out and err.count("\n") == 1
    assert re.search(message, err), err
    assert not (tmp_path / "o").exists()


def test_gen_out_is_a_file(tmp_path, capsys) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    assert _gen(f) == 2
    assert "--out:" in capsys.readouterr().err


def test_verify_bad_dirs(tmp_path, capsys) -> None:
    assert main(["verify", str(tmp_path / "none")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["verify", str(tmp_path)]) == 2
    assert "has no manifest.json" in capsys.readouterr().err


def test_gen_tells_its_long_steps_for_large_designs(tmp_path, capsys) -> None:
    """generate() tells each step as it starts; `tpe gen` prints them on standard error for
    a design of 32x32 MACs or more (a 128x128 array takes minutes), not for a small one."""
    from hw.emit import generate
    from hw.spec import SystolicSpec
    from sim.cli.hw import PROGRESS_MACS, _progress

    steps: list[str] = []
    small = SystolicSpec(rows=2, cols=2)
    generate(small, tmp_path, progress=steps.append)
    assert [s.split()[0] for s in steps] == ["building", "elaborating", "writing"]
    _progress(small)("a step")
    assert capsys.readouterr().err == ""
    large = SystolicSpec(rows=32, cols=32)
    assert large.macs_per_cycle >= PROGRESS_MACS > small.macs_per_cycle
    _progress(large)("a step")
    assert re.fullmatch(r"tpe gen: +\d+\.\d s  a step \.\.\.\n", capsys.readouterr().err)


@pytest.mark.parametrize(("args", "flag"), [
    (["--cases", "0"], "--cases"), (["--cases", "100001"], "--cases"),
    (["--max-dim", "0"], "--max-dim"),
    (["--max-dim", "5000"], "--max-dim"), (["--wave", "run.txt"], "--wave"),
    (["--wave", "/proc/tpe-x/run.vcd"], "--wave"), (["--wave", "/tmp"], "--wave"),
    (["--seed", "-1"], "--seed"),
])
def test_verify_refuses_bad_run_options_naming_the_flag(tmp_path, capsys, args, flag) -> None:
    """Checked once (sim.verify.options.option_error) for the library and the command, before
    anything is built."""
    from hw.emit import generate
    from hw.spec import SystolicSpec

    design = generate(SystolicSpec(rows=2, cols=2), tmp_path)
    assert main(["verify", str(design), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tpe: error: {flag}: ") and err.count("\n") == 1
    assert not (design / "sim_build").exists()
