"""The standard-cell table (hw/stdcells), its Liberty form, and the mapping of designs to it."""

from __future__ import annotations

import importlib.util
import itertools
import json
import re

import pytest

from hw.stdcells import evaluate, liberty, load_library
from hw.stdcells.derive_sky130 import EXCLUDED_PREFIXES
from hw.synth import SynthError, map_to_cells, synthesize

LIB = load_library()
#: sky130_fd_sc_hd's placement site (unithd) is 0.46 um wide and 2.72 um high: every cell's
#: LEF size is a whole number of sites.
SITE_UM = (0.46, 2.72)


def cell(short: str):
    return next(c for n, c in LIB.cells.items() if re.fullmatch(rf"\w+__{short}_\d+", n))


def test_table_sizes_are_whole_sites_and_areas_their_product() -> None:
    assert len(LIB.cells) > 50
    for c in LIB.cells.values():
        assert c.height_um == SITE_UM[1], c.name
        sites = c.width_um / SITE_UM[0]
        assert sites == pytest.approx(round(sites)) and sites >= 1, c.name
        assert c.area_um2 == pytest.approx(c.width_um * c.height_um, abs=1e-6)
    assert "no Fmax" in LIB.timing and LIB.license == "Apache-2.0"


def test_table_keeps_logic_cells_and_one_flip_flop() -> None:
    shorts = {re.sub(r"^\w+?__(\w+)_\d+$", r"\1", n) for n in LIB.cells}
    assert {"inv", "buf", "nand2", "nor2", "xor2", "mux2", "dfxtp"} <= shorts
    assert not [s for s in shorts for p in EXCLUDED_PREFIXES if s.startswith(p)]
    assert not shorts & {"fa", "ha", "ebufn", "einvp", "dfrtp", "edfxtp", "dlxtp", "conb"}
    sequential = [c for c in LIB.cells.values() if c.next_state is not None]
    assert [(c.clocked_on, c.next_state, c.output) for c in sequential] == [("CLK", "D", "Q")]
    assert all(c.function for c in LIB.cells.values() if c.next_state is None)


#: What a cell's name says it computes, written here independently of the table.
MEANING = {
    "inv": lambda A: not A,
    "buf": lambda A: A,
    "nand2": lambda A, B: not (A and B),
    "nor3": lambda A, B, C: not (A or B or C),
    "and2b": lambda A_N, B: (not A_N) and B,
    "xor2": lambda A, B: A != B,
    "xnor3": lambda A, B, C: not (A ^ B ^ C),
    "maj3": lambda A, B, C: A + B + C >= 2,
    "mux2": lambda A0, A1, S: A1 if S else A0,
    "mux2i": lambda A0, A1, S: not (A1 if S else A0),
    "mux4": lambda A0, A1, A2, A3, S0, S1: (A0, A1, A2, A3)[S0 + 2 * S1],
    "a21oi": lambda A1, A2, B1: not ((A1 and A2) or B1),
    "o21ai": lambda A1, A2, B1: not ((A1 or A2) and B1),
    "a2bb2o": lambda A1_N, A2_N, B1, B2: (not A1_N and not A2_N) or (B1 and B2),
    "o2111ai": lambda A1, A2, B1, C1, D1: not ((A1 or A2) and B1 and C1 and D1),
}


@pytest.mark.parametrize("short", sorted(MEANING))
def test_derived_functions_mean_what_the_cell_names_say(short: str) -> None:
    c = cell(short)
    for combo in itertools.product((False, True), repeat=len(c.inputs)):
        values = dict(zip(c.inputs, combo, strict=True))
        assert evaluate(c.function, values) == bool(MEANING[short](**values)), (c.name, values)


def test_unknown_library_is_named() -> None:
    with pytest.raises(ValueError, match=r"^cell library 'gf180': no table gf180\.toml in "
                       r"hw/stdcells$"):
        load_library("gf180")


def test_evaluate_rejects_what_it_cannot_read() -> None:
    with pytest.raises(ValueError, match=r"^function '\(A&B': unbalanced parentheses$"):
        evaluate("(A&B", {"A": True, "B": True})
    with pytest.raises(ValueError, match=r"^function 'A&Z': unknown pin 'Z'$"):
        evaluate("A&Z", {"A": True})


def test_liberty_has_every_cell_with_its_area() -> None:
    text = liberty(LIB)
    found = dict(re.findall(r"cell \((\w+)\) \{\n    area : ([\d.]+);", text))
    assert {n: float(a) for n, a in found.items()} == {
        n: c.area_um2 for n, c in LIB.cells.items()}
    assert "timing" not in text.split("*/", 1)[1]  # no timing groups, only the header says so


@pytest.mark.synth
def test_tiny_design_area_is_the_sum_of_its_cells(tmp_path) -> None:
    """A registered NAND maps to one nand2 and one dfxtp: the area is their LEF areas' sum."""
    (tmp_path / "t.v").write_text(
        "module t(input clk, input a, input b, output reg y);\n"
        "  always @(posedge clk) y <= ~(a & b);\nendmodule\n")
    fig = synthesize(tmp_path / "t.v", "t")
    nand, ff = cell("nand2"), cell("dfxtp")
    assert fig["std_cells_by_type"] == {nand.name: 1, ff.name: 1}
    assert fig["area_um2"] == pytest.approx(nand.area_um2 + ff.area_um2, abs=1e-4)
    assert fig["flipflop_area_um2"] == pytest.approx(ff.area_um2, abs=1e-4)
    assert fig["longest_path_std_cells"] == 1
    assert fig["std_cell_library"]["timing"] == LIB.timing
    assert json.loads(json.dumps(fig)) == fig


@pytest.mark.synth
def test_missing_pyosys_is_one_line(tmp_path, monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pyosys" else real(name, *a))
    with pytest.raises(SynthError, match=r"^standard-cell mapping needs pyosys \(.*\), which "
                       r"is not installed$"):
        map_to_cells(tmp_path, LIB)


@pytest.mark.synth
def test_a_failing_mapping_is_one_line(tmp_path) -> None:
    with pytest.raises(SynthError, match=r"^yosys \(pyosys\) exited with 1: ERROR: File "
                       r"`generic\.il' not found"):
        map_to_cells(tmp_path, LIB)
