"""The emitted Verilog on Verilator through cocotb: bit exact and cycle exact.

A chosen set of parameter points (corners of the ranges, non-square arrays, narrow and wide
operands, wrapping accumulators, both dataflows and signedness, double-buffered weights and
outputs); each design is generated and built once. CI runs ``CI_POINTS``, which cover both
dataflows, both signednesses and every option; the rest is marked ``slow`` (run it by hand with
``pytest -m slow``). The wide random grid runs on amaranth.sim in test_systolic_amaranth.py.
"""

from __future__ import annotations

import json
import re

import pytest
from lockstep import ci_subset, verify_lockstep

from hw.emit import generate
from hw.spec import SystolicSpec
from sim.cli import main

pytestmark = pytest.mark.rtl

POINTS = [
    SystolicSpec(rows=1, cols=1, a_bits=1, w_bits=1, acc_bits=1, signed=True, dataflow="os"),
    SystolicSpec(rows=1, cols=1, a_bits=16, w_bits=16, acc_bits=64, signed=False, dataflow="ws"),
    SystolicSpec(rows=3, cols=7, a_bits=5, w_bits=3, acc_bits=9, signed=True, dataflow="os"),
    SystolicSpec(rows=6, cols=2, a_bits=16, w_bits=2, acc_bits=40, signed=False, dataflow="ws"),
    SystolicSpec(rows=2, cols=32, a_bits=8, w_bits=8, acc_bits=32, signed=True, dataflow="ws"),
    SystolicSpec(rows=32, cols=3, a_bits=4, w_bits=4, acc_bits=16, signed=False, dataflow="os"),
    SystolicSpec(rows=3, cols=4, a_bits=8, w_bits=8, acc_bits=24, signed=True, dataflow="os",
                 booth=True, csa_accumulate=True),
    SystolicSpec(rows=4, cols=2, a_bits=6, w_bits=5, acc_bits=13, signed=False, dataflow="ws",
                 booth=True, csa_accumulate=True),
    # double-buffered weights once on Verilator (the 1x1 corner and a random grid run on
    # amaranth.sim in test_systolic_amaranth.py)
    SystolicSpec(rows=5, cols=3, a_bits=8, w_bits=7, acc_bits=20, signed=True, dataflow="ws",
                 weight_double_buffer=True, csa_accumulate=True),
    # double-buffered outputs once on Verilator (the 1x1 corner and a random grid run on
    # amaranth.sim in test_systolic_amaranth.py)
    SystolicSpec(rows=3, cols=5, a_bits=7, w_bits=8, acc_bits=19, signed=False, dataflow="os",
                 output_double_buffer=True, booth=True),
]
#: CI's subset (every dataflow, signedness and option once; the rest runs with ``-m slow``).
CI_POINTS = {6, 7, 8, 9}


@pytest.mark.parametrize("spec", ci_subset(POINTS, CI_POINTS))
def test_verilog_lockstep(spec: SystolicSpec, tmp_path) -> None:
    report = verify_lockstep(spec, tmp_path)
    if spec.weight_double_buffer or spec.output_double_buffer:
        # the multi-fold GEMMs whose weight loads or drains overlap, timed
        overlapped = [c for c in report.cases if c["case"].startswith("double-buffered")]
        assert len(overlapped) == 3
        assert all(c["cycles_checked"] and c["folds"] >= 4 for c in overlapped)


def test_verify_fails_on_a_broken_design(tmp_path, capsys) -> None:
    """Sabotage one PE (multiply turned into add): `tpe verify` must exit 1, with `--json`
    too; repaired, it passes."""
    spec = SystolicSpec(rows=2, cols=2, a_bits=4, w_bits=4, acc_bits=12, dataflow="os")
    design = generate(spec, tmp_path)
    vfile = design / f"{spec.name}.v"
    text = vfile.read_text()
    broken, n = re.subn(r"\$signed\((\w+)\) \* \$signed\((\w+)\)",
                        r"$signed(\1) + $signed(\2)", text, count=1)
    assert n == 1
    vfile.write_text(broken)
    assert main(["verify", str(design)]) == 1
    out = capsys.readouterr().out
    assert "FAIL:" in out and "wrong results" in out
    # --json: one object, the same verdict; then the repaired Verilog is rebuilt and passes
    assert main(["verify", str(design), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["pass"] is False and report["cases"]
    assert any("wrong results" in p for c in report["cases"] for p in c["problems"])
    vfile.write_text(text)
    assert main(["verify", str(design), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pass"] is True and report["design"] == spec.name
    for case in report["cases"]:
        assert {"M", "N", "K", "measured_cycles", "model_cycles"} <= case.keys()
        assert case["results_ok"] and not case["problems"]


def _delay_outputs(verilog: str, top: str) -> str:
    """A timing bug: the design renamed ``<top>_core`` behind a wrapper that registers its
    output stream once more (one cycle late, the data intact when the consumer is ready)."""
    width = int(re.search(r"output \[(\d+):0\] o__payload;", verilog).group(1)) + 1
    ports = re.search(rf"module {top}\((.*?)\);", verilog).group(1)
    start = verilog.index(f"module {top}(")
    own = verilog[start:verilog.index("endmodule", start)]  # the top's (not its PEs')
    decls = "\n".join(line for line in own.splitlines()
                      if re.match(r"\s*(input|output)\b", line))
    body = verilog.replace(f"module {top}(", f"module {top}_core(", 1)
    return body + f"""
module {top}({ports});
{decls}
  wire core_valid;
  wire [{width - 1}:0] core_payload;
  wire core_busy;
  reg late_valid = 1'h0;
  reg [{width - 1}:0] late_payload = {width}'h0;
  always @(posedge clk) begin
    late_valid <= rst ? 1'h0 : core_valid;
    late_payload <= core_payload;
  end
  assign o__valid = late_valid;
  assign o__payload = late_payload;
  assign busy = core_busy | late_valid;
  {top}_core core({", ".join(
        f".{p.strip()}(" + {"o__valid": "core_valid", "o__payload": "core_payload",
                            "busy": "core_busy"}.get(p.strip(), p.strip()) + ")"
        for p in ports.split(","))});
endmodule
"""


def test_verify_fails_on_a_timing_bug(tmp_path, capsys) -> None:
    """A design whose results are right but one cycle late per GEMM (its output stream
    registered once more): `tpe verify` exits 1 naming the cycles against the model, every
    result bit exact."""
    spec = SystolicSpec(rows=2, cols=2, a_bits=4, w_bits=4, acc_bits=12, dataflow="os")
    design = generate(spec, tmp_path)
    vfile = design / f"{spec.name}.v"
    vfile.write_text(_delay_outputs(vfile.read_text(), spec.name))
    assert main(["verify", str(design), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["pass"] is False
    checked = [c for c in report["cases"] if c["cycles_checked"]]
    assert checked and all(c["results_ok"] for c in checked)
    assert all(c["measured_cycles"] == c["model_cycles"] + 1 for c in checked)
    assert all(any(p.startswith("measured ") for p in c["problems"]) for c in checked)


def test_verify_fst_wave_is_written_or_refused_in_one_line(tmp_path, capsys) -> None:
    """--wave FILE.fst: where the machine's C++ compiler finds lz4 and zlib (Verilator's FST
    writer needs both) the run writes an FST trace; elsewhere `tpe verify` exits 2 before
    building anything, with one line naming --wave, the missing libraries and the .vcd
    alternative, and writes no file."""
    from sim.verify.toolchain import ToolchainError, check_fst

    spec = SystolicSpec(rows=2, cols=2, a_bits=4, w_bits=4, acc_bits=12, dataflow="os")
    design = generate(spec, tmp_path)
    wave = tmp_path / "run.fst"
    args = ["verify", str(design), "--cases", "1", "--max-dim", "4", "--wave", str(wave)]
    try:
        check_fst()
    except ToolchainError:
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "--wave" in err and "lz4" in err and ".vcd" in err, err
        assert not wave.exists() and not (design / "sim_build").exists()
        return
    assert main(args) == 0
    assert wave.stat().st_size > 0 and not wave.read_bytes().startswith(b"$")  # not a VCD


def test_verify_more_and_larger_gemms_a_reset_and_a_wave(tmp_path, capsys) -> None:
    """--cases and --max-dim set the random GEMMs (log-uniform dimensions up to D), the run
    ends with a reset in the middle of a GEMM after which the same GEMM is exact, and --wave
    writes a VCD trace of the whole run (FST where the machine has liblz4)."""
    spec = SystolicSpec(rows=4, cols=4, a_bits=8, w_bits=8, acc_bits=32, dataflow="ws",
                        weight_double_buffer=True)
    design = generate(spec, tmp_path)
    wave = tmp_path / "run.vcd"
    args = ["verify", str(design), "--json", "--cases", "6", "--max-dim", "48", "--seed", "5"]
    assert main([*args, "--wave", str(wave)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pass"] is True
    random = [c for c in report["cases"] if c["case"].startswith("random GEMM ")
              and c["cycles_checked"]]
    assert len(random) == 6
    dims = [c[d] for c in random for d in ("M", "N", "K")]
    assert max(dims) <= 48 and max(dims) > 2 * spec.rows + 3  # past the default's range
    reset = report["cases"][-1]
    assert reset["case"] == "after a reset in the middle of a GEMM"
    assert reset["results_ok"] and reset["measured_cycles"] == reset["model_cycles"]
    text = wave.read_text()
    assert "$enddefinitions" in text and f"module {spec.name}" in text
    # the same seed and options without a trace: the same cases, the model rebuilt untraced
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out)
    assert [c["case"] for c in again["cases"]] == [c["case"] for c in report["cases"]]
    assert "--trace" not in (design / "sim_build" / "build.log").read_text()
