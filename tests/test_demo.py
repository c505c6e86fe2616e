"""`tpe demo` end to end, as the README promises: every artefact is written."""

from __future__ import annotations

import json

import pytest

from sim.cli import main

pytestmark = [pytest.mark.rtl, pytest.mark.synth]


def test_demo_writes_everything(tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report = out / "report.md"
    assert f"report: {report}" in printed
    text = report.read_text()
    for needle in ("## Verilog and verification", "**PASS**", "## Synthesis (Yosys)",
                   "time to first token", "time per output token", "op_breakdown.png",
                   "roofline.png", "## The same workload on the `h100` preset",
                   "h100/op_breakdown.png", "## A small accelerator tile",
                   "sky130_fd_sc_hd standard cells", "so no Fmax"):
        assert needle in text, needle
    for png in ("op_breakdown.png", "roofline.png", "h100/op_breakdown.png",
                "h100/roofline.png"):
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    designs = {d.name: d for d in (out / "rtl").iterdir()}
    (tile,) = (d for name, d in designs.items() if name.startswith("tile_"))
    assert json.loads((tile / "manifest.json").read_text())["kind"] == "tile"
    (design,) = (d for name, d in designs.items() if not name.startswith("tile_"))
    manifest = json.loads((design / "manifest.json").read_text())
    assert manifest["spec"]["rows"] == 16 and manifest["spec"]["a_bits"] == 8
    assert manifest["synth"]["transistors"] > 0
    assert manifest["synth"]["area_um2"] > 0
    assert (design / f"{design.name}.v").is_file()


def test_demo_out_is_a_file(tmp_path, capsys) -> None:
    f = tmp_path / "f"
    f.write_text("")
    assert main(["demo", "--out", str(f)]) == 2
    assert capsys.readouterr().err.startswith("tpe: error: --out:")
