"""The emitted Verilog's hierarchy (:mod:`hw.hier`): one module per repeated structure.

Each array kind with a PE block writes exactly one PE module definition, instantiated once
per array position with readable instance, port and connection names; every placement of
the block elaborates to the same module text (``to_verilog(..., check=True)``); a block
whose logic depends on something besides its key and ports is refused. That the Verilog
computes what amaranth.sim does is each kind's lock-step test on Verilator (``tpe verify``).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from hier_checks import check_blocks, modules, ports

from hw import hier
from hw.generators import build_component
from hw.spec import engine_from_dict
from hw.verilog import to_verilog

#: Kinds whose PE is a block, with options that change the PE's ports; PEs = rows x cols.
POINTS: list[dict[str, Any]] = [
    dict(kind="systolic", rows=3, cols=4),
    dict(kind="systolic", rows=2, cols=3, dataflow="ws", weight_double_buffer=True),
    dict(kind="systolic", rows=3, cols=2, booth=True, csa_accumulate=True,
         output_double_buffer=True, cpa_reg=True),
    dict(kind="systolic", rows=2, cols=2, dataflow="ws", csa_accumulate=True, signed=False),
    dict(kind="matrix2d", rows=3, cols=2, booth=True, csa_accumulate=True),
    dict(kind="matrix2d", rows=2, cols=3, a_bits=5, w_bits=3, csa_accumulate=True),
    dict(kind="matrix2d", rows=1, cols=2),
    dict(kind="bitslice", rows=2, cols=3, csa_accumulate=True, skip_zero=True),
    dict(kind="bitslice", rows=3, cols=1, a_bits=4, w_bits=4, slice_bits=4),
]



@pytest.mark.parametrize("point", POINTS, ids=lambda p: engine_from_dict(p).name)
def test_one_pe_module_instantiated_per_position(point: dict[str, Any]) -> None:
    spec = engine_from_dict(point)
    text = to_verilog(build_component(spec), spec.name, check=True)
    # readable names: the interfaces of both modules and every pin of every instance
    check_blocks(text, spec.name,
                 {"pe": [f"pe_{r}_{c}" for r in range(spec.rows) for c in range(spec.cols)]})


def test_escaped_names_fewer_than_per_pe() -> None:
    """A PE's anonymous wires are written once, in its module: the design's escaped
    identifiers do not grow with the number of PEs."""
    def escaped(rows: int, cols: int) -> int:
        spec = engine_from_dict(dict(kind="systolic", rows=rows, cols=cols, booth=True,
                                     csa_accumulate=True))
        text = to_verilog(build_component(spec), spec.name)
        return len(set(re.findall(r"\\\$\S+", modules(text)[f"{spec.name}_pe"])))

    assert escaped(2, 2) == escaped(4, 4) > 0


class _Counter(wiring.Component):
    """Three placements of one block key whose logic reads a position (a bug)."""

    def __init__(self) -> None:
        super().__init__({"out": Out(8)})

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        outs = []
        for n in range(3):
            def build(mm: Module, p: Any, n: int = n) -> None:
                mm.d.comb += p.y.eq(p.x + n)  # depends on n, not in the key
            block = hier.Block("adder", "same key", {"x": In(8), "y": Out(8)}, build)
            outs.append(hier.place(m, f"add_{n}", block, x=self.out)["y"])
        s = Signal(8)
        m.d.comb += s.eq(outs[0] ^ outs[1] ^ outs[2])
        m.d.sync += self.out.eq(s)
        return m


def test_a_block_that_depends_on_its_position_is_refused() -> None:
    with pytest.raises(hier.BlockMismatch, match="add_1"):
        to_verilog(_Counter(), "counter", check=True)
    # unchecked, the first placement's module serves all three: why check=True is tested
    text = to_verilog(_Counter(), "counter")
    assert text.count("\nmodule counter_adder(") == 1


def test_place_names_its_inputs() -> None:
    block = hier.Block("b", 0, {"x": In(1), "y": Out(1)}, lambda m, p: None)
    with pytest.raises(TypeError, match=r"inputs \['z'\] differ from the block's \['x'\]"):
        hier.place(Module(), "b0", block, z=1)


#: The dot-product kinds: one multiplier module per product and one reduction-tree module per
#: output (cube: m x n x k multipliers, m x n trees; adder tree: lanes x k, lanes), with
#: options that change both blocks' ports (Booth digits, carry-save words, OPT2's planes,
#: pipeline registers with their enable).
TREE_POINTS: list[dict[str, Any]] = [
    dict(kind="cube", m=2, n=3, k=2),
    dict(kind="cube", m=2, n=2, k=3, booth=True),
    dict(kind="cube", m=3, n=2, k=2, booth=True, csa_accumulate=True, output_double_buffer=True,
         mult_reg=True, tree_stage_levels=1, cpa_reg=True),
    dict(kind="cube", m=1, n=2, k=4, csa_accumulate=True, signed=False, tree_stage_levels=2),
    dict(kind="addertree", lanes=3, k=4),
    dict(kind="addertree", lanes=2, k=3, dataflow="ws", booth=True, mult_reg=True),
    dict(kind="addertree", lanes=2, k=5, booth=True, compress=True, tree_stage_levels=1),
    dict(kind="addertree", lanes=3, k=2, dataflow="ws", compress=True, signed=False),
]


#: A module header, its port list over one or several lines (Yosys wraps long ones).
def _positions(spec: Any) -> tuple[list[str], list[str]]:
    """The instance names of the multipliers and of the trees."""
    if spec.kind == "cube":
        outs = [f"{r}_{c}" for r in range(spec.m) for c in range(spec.n)]
    else:
        outs = [f"{lane}" for lane in range(spec.lanes)]
    return [f"mul_{o}_{q}" for o in outs for q in range(spec.k)], [f"tree_{o}" for o in outs]


@pytest.mark.parametrize("point", TREE_POINTS, ids=lambda p: engine_from_dict(p).name)
def test_one_multiplier_and_one_tree_module(point: dict[str, Any]) -> None:
    spec = engine_from_dict(point)
    text = to_verilog(build_component(spec), spec.name, check=True)
    muls, trees = _positions(spec)
    mods = check_blocks(text, spec.name, {"mul": muls, "tree": trees})
    mul, tree = f"{spec.name}_mul", f"{spec.name}_tree"
    # the multiplier is combinational; the tree has a clock exactly when it has registers
    # (which have no reset: pipeline data, their valid flags are the parent's)
    assert "clk" not in ports(mods[mul])
    registers = getattr(spec, "accumulate_latency_cycles", None)  # cube: cpa_reg is not the tree's
    assert ("clk" in ports(mods[tree])) == bool(spec.pipeline_cycles if registers is None
                                                    else registers)
    assert "rst" not in ports(mods[tree])


def test_tree_modules_do_not_grow_with_the_outputs() -> None:
    """Elaboration builds each block once: the multiplier and tree modules of a 4 x 4 cube
    are those of a 2 x 2 cube with the same k and options, letter for letter but the name."""
    def blocks(m: int, n: int) -> list[str]:
        spec = engine_from_dict(dict(kind="cube", m=m, n=n, k=3, booth=True,
                                     csa_accumulate=True, mult_reg=True))
        text = to_verilog(build_component(spec), spec.name)
        mods = modules(text)
        return [mods[f"{spec.name}_{b}"].replace(spec.name, "NAME") for b in ("mul", "tree")]

    assert blocks(2, 2) == blocks(4, 4)


def test_block_of_gives_outputs_their_values_shapes() -> None:
    """An output of ``block_of`` has the shape of the value it returns (a signed product is
    as wide and as signed as Amaranth makes it), and a placement reads the same value."""
    def outputs(m: Module, p: Any) -> dict[str, Any]:
        return {"p": p.a * p.w, "s": (p.a + 1)[:2]}

    block = hier.block_of("mul", 0, {"a": signed(3), "w": 4}, outputs)
    a, w = Signal(signed(3)), Signal(4)
    assert block.members["p"].shape == (a * w).shape()
    assert block.members["s"].shape == unsigned(2)
    assert [n for n, mem in block.members.items() if mem.flow == In] == ["a", "w"]
