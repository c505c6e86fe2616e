"""The emitted Verilog's hierarchy (:mod:`hw.hier`) for the kinds with several blocks: the LUT
engine (a PE and a row's table unit), the bit-plane engine (a PE: planes, popcount tree and
shift-add registers) and the MX engine (a PE: products, block adder tree and alignment; and an
element decoder).

Each block is exactly one module definition, instantiated once per position with readable
instance, port and connection names, every placement the same module text
(``to_verilog(..., check=True)``). That the Verilog computes what amaranth.sim does is each
kind's lock-step test on Verilator (``tpe verify``).
"""

from __future__ import annotations

from typing import Any

import pytest
from hier_checks import check_blocks, modules

from hw.generators import build_component
from hw.spec import engine_from_dict
from hw.verilog import to_verilog

#: Points of each kind, with options that change a block's ports.
POINTS: list[dict[str, Any]] = [
    dict(kind="lut", rows=3, cols=2, group=3),
    dict(kind="lut", rows=2, cols=3, group=1, symmetric=False, carry_save=True, signed=False),
    dict(kind="lut", rows=2, cols=2, group=1),  # a one-entry table: no index port
    dict(kind="lut", rows=1, cols=3, group=4, symmetric=False, a_bits=5, w_bits=3),
    dict(kind="bitplane", rows=3, cols=2, depth=3, a_bits=3, w_bits=5),
    dict(kind="bitplane", rows=2, cols=3, depth=4, encoding="bipolar", carry_save=True,
         signed=False, a_bits=2, w_bits=4),
    dict(kind="mx", rows=2, lanes=3, block=4, formats="fp8_e4m3+fp6_e2m3+fp4_e2m1+int8"),
    dict(kind="mx", rows=1, lanes=2, block=1, formats="fp4_e2m1", acc_bits=12),
    dict(kind="mx", rows=3, lanes=1, block=2, formats="int8"),  # no shift ports
]

def _grid(rows: int, cols: int, name: str = "pe") -> list[str]:
    return [f"{name}_{r}_{c}" for r in range(rows) for c in range(cols)]


def placements(spec: Any) -> dict[str, list[str]]:
    """Every block of ``spec``'s kind (by name) and the instance names it is placed as."""
    if spec.kind == "lut":
        return {"pe": _grid(spec.rows, spec.cols),
                "table": [f"table_{r}" for r in range(spec.rows)]}
    if spec.kind == "bitplane":
        return {"pe": _grid(spec.rows, spec.cols)}
    assert spec.kind == "mx"
    return {"pe": _grid(spec.rows, spec.lanes),
            "decode": (_grid(spec.rows, spec.block, "a_dec")
                       + _grid(spec.lanes, spec.block, "w_dec"))}


@pytest.mark.parametrize("point", POINTS, ids=lambda p: engine_from_dict(p).name)
def test_one_module_per_block_instantiated_per_position(point: dict[str, Any]) -> None:
    spec = engine_from_dict(point)
    text = to_verilog(build_component(spec), spec.name, check=True)
    check_blocks(text, spec.name, placements(spec))


@pytest.mark.parametrize("kind", [dict(kind="lut", group=3), dict(kind="bitplane", depth=4),
                                  dict(kind="mx", block=2, formats="fp8_e4m3+fp4_e2m1")],
                         ids=lambda p: p["kind"])
def test_block_modules_do_not_grow_with_the_array(kind: dict[str, Any]) -> None:
    """A block's module text is the same on a 2x2 and a 4x3 array: its logic (and its
    anonymous wires) is written once, whatever the number of placements."""
    def blocks(rows: int, cols: int) -> dict[str, str]:
        dims = {"rows": rows, "lanes" if kind["kind"] == "mx" else "cols": cols}
        spec = engine_from_dict({**kind, **dims})
        text = to_verilog(build_component(spec), "design")
        return {n: t for n, t in modules(text).items() if n != "design"}

    small = blocks(2, 2)
    assert small and small == blocks(4, 3)
