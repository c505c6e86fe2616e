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
from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

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

_HEADER = re.compile(r"^module (\S+)\((.*)\);$", re.MULTILINE)


def _modules(text: str) -> dict[str, str]:
    """Module name -> its text (header to endmodule)."""
    out = {}
    for m in _HEADER.finditer(text):
        out[m.group(1)] = text[m.start():text.index("endmodule", m.start())]
    return out


@pytest.mark.parametrize("point", POINTS, ids=lambda p: engine_from_dict(p).name)
def test_one_pe_module_instantiated_per_position(point: dict[str, Any]) -> None:
    spec = engine_from_dict(point)
    text = to_verilog(build_component(spec), spec.name, check=True)
    modules = _modules(text)
    pe = f"{spec.name}_pe"
    assert set(modules) == {spec.name, pe}
    assert text.count(f"\nmodule {pe}(") == 1
    instances = re.findall(rf"^  {pe} (\S+) \($", modules[spec.name], re.MULTILINE)
    positions = [f"pe_{r}_{c}" for r in range(spec.rows) for c in range(spec.cols)]
    assert sorted(instances) == sorted(positions)
    # readable names: the interfaces of both modules and every pin of every instance
    for header in _HEADER.finditer(text):
        assert "\\" not in header.group(0), header.group(0)
    pins = re.findall(rf"^  {pe} \S+ \(\n((?:    \..*\n)+)  \);", modules[spec.name],
                      re.MULTILINE)
    assert len(pins) == len(positions)
    for block in pins:
        for line in block.splitlines():
            # a pin, connected to named signals, their bits or constants (no escaped name)
            assert re.fullmatch(r"    \.\w+\([\w\[\]:'{}, ]+\),?", line), line


def test_escaped_names_fewer_than_per_pe() -> None:
    """A PE's anonymous wires are written once, in its module: the design's escaped
    identifiers do not grow with the number of PEs."""
    def escaped(rows: int, cols: int) -> int:
        spec = engine_from_dict(dict(kind="systolic", rows=rows, cols=cols, booth=True,
                                     csa_accumulate=True))
        text = to_verilog(build_component(spec), spec.name)
        return len(set(re.findall(r"\\\$\S+", _modules(text)[f"{spec.name}_pe"])))

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
