"""The emitted Verilog's hierarchy (:mod:`hw.hier`) for the kinds with several blocks: the LUT
engine (a PE; a row's table unit with its correction register; a column's weight shift
registers and table index; a column's output adder), the bit-plane engine (a PE: planes,
popcount tree and shift-add registers; a row's and a column's operand registers and plane
select, with their bipolar corrections; a column's output adder) and the MX engine (a PE:
products, block adder tree and alignment; a row's and a lane's element decoders, each an
instance of one decoder module inside them, with the row's block exponent and the lane's
output select).

Each block is exactly one module definition, instantiated once per position with readable
instance, port and connection names, every placement the same module text
(``to_verilog(..., check=True)``); the top module keeps only the control, the instances and
their wiring (its registers do not grow with the array). That the Verilog computes what
amaranth.sim does is each kind's lock-step test on Verilator (``tpe verify``).
"""

from __future__ import annotations

import re
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


def placements(spec: Any) -> dict[str, Any]:
    """Every block of ``spec``'s kind (by name) and the instance names it is placed as (in
    the top, or by parent block for a block placed inside another)."""
    if spec.kind in ("lut", "bitplane"):
        return {"pe": _grid(spec.rows, spec.cols),
                "row": [f"row_{r}" for r in range(spec.rows)],
                "col": [f"col_{c}" for c in range(spec.cols)],
                "out": [f"out_{c}" for c in range(spec.cols)]}
    assert spec.kind == "mx"
    decoders = [f"dec_{q}" for q in range(spec.block)]
    return {"pe": _grid(spec.rows, spec.lanes),
            "row": [f"row_{r}" for r in range(spec.rows)],
            "lane": [f"lane_{lane}" for lane in range(spec.lanes)],
            "decode": {"row": decoders, "lane": decoders}}


@pytest.mark.parametrize("point", POINTS, ids=lambda p: engine_from_dict(p).name)
def test_one_module_per_block_instantiated_per_position(point: dict[str, Any]) -> None:
    spec = engine_from_dict(point)
    text = to_verilog(build_component(spec), spec.name, check=True)
    check_blocks(text, spec.name, placements(spec))


def _sized(point: dict[str, Any], rows: int, cols: int, name: str) -> str:
    """The Verilog (top module ``name``) of ``point``'s engine on a ``rows`` x ``cols`` array
    (the MX engine's columns are its lanes)."""
    dims = {"rows": rows, "lanes" if point["kind"] == "mx" else "cols": cols}
    spec = engine_from_dict({**point, **dims})
    return to_verilog(build_component(spec), name)


@pytest.mark.parametrize("kind", [dict(kind="lut", group=3),
                                  dict(kind="lut", group=2, symmetric=False, carry_save=True),
                                  dict(kind="bitplane", depth=4),
                                  dict(kind="bitplane", depth=3, encoding="bipolar"),
                                  dict(kind="mx", block=2, formats="fp8_e4m3+fp4_e2m1")],
                         ids=lambda p: "-".join(str(v) for v in p.values()))
def test_block_modules_do_not_grow_with_the_array(kind: dict[str, Any]) -> None:
    """A block's module text is the same on a 2x2 and a 4x3 array: its logic (and its
    anonymous wires) is written once, whatever the number of placements."""
    def blocks(rows: int, cols: int) -> dict[str, str]:
        return {n: t for n, t in modules(_sized(kind, rows, cols, "design")).items()
                if n != "design"}

    small = blocks(2, 2)
    assert small and small == blocks(4, 3)


@pytest.mark.parametrize("point", [dict(kind="lut", group=3),
                                   dict(kind="lut", group=2, symmetric=False, carry_save=True),
                                   dict(kind="bitplane", depth=3),
                                   dict(kind="bitplane", depth=2, encoding="bipolar"),
                                   dict(kind="mx", block=2, formats="fp8_e4m3+fp4_e2m1")],
                         ids=lambda p: "-".join(str(v) for v in p.values()))
def test_top_registers_do_not_grow_with_the_array(point: dict[str, Any]) -> None:
    """What repeats per row or per column (operand and weight registers, tables, correction
    registers) is in the row and column blocks: the top's own registers (the control) are
    the same on a 2x2 and a 5x3 array."""
    def top_registers(rows: int, cols: int) -> list[str]:
        text = _sized(point, rows, cols, "engine")
        # flip-flops: a reg with its reset value as initial value (always @* regs have none)
        return sorted(re.findall(r"^  reg (?:signed )?(?:\[[^\]]*\] )?(\S+) = ",
                                 modules(text)["engine"], re.MULTILINE))

    small = top_registers(2, 2)
    assert small and small == top_registers(5, 3)
