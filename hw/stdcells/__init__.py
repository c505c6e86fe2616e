"""Standard-cell libraries for area mapping: cell tables with their provenance, as Liberty.

A table (``<library>.toml`` beside this file) lists the cells synthesis may map to: each
cell's LEF size (its area is width x height, in um^2), its pins and its Boolean function
(Liberty syntax) or, for a flip-flop, its clock and next state. It is derived from the
library's own files by a script that states the source (``derive_sky130.py`` for
``sky130_fd_sc_hd``), so nothing in it is typed by hand. :func:`liberty` writes it as an
area-only Liberty file for Yosys's ``dfflibmap``, ``abc`` and ``stat``. The tables carry no
timing (the sources have none), so the mapping minimises area and gives no delay or Fmax.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources

__all__ = ["Cell", "CellLibrary", "evaluate", "liberty", "load_library"]

DEFAULT = "sky130_fd_sc_hd"


@dataclass(frozen=True, kw_only=True)
class Cell:
    """One cell: LEF size, pins, and either ``function`` (combinational) or ``next_state``
    on ``clocked_on``'s rising edge (a D flip-flop)."""

    name: str
    width_um: float
    height_um: float
    inputs: tuple[str, ...]
    output: str
    function: str | None = None
    next_state: str | None = None
    clocked_on: str | None = None

    @property
    def area_um2(self) -> float:
        return round(self.width_um * self.height_um, 6)


@dataclass(frozen=True, kw_only=True)
class CellLibrary:
    """A cell table and where it comes from (``source``, ``license``, ``timing``)."""

    name: str
    source: str
    license: str
    timing: str
    cells: dict[str, Cell]
    left_out: dict[str, str]

    def provenance(self) -> dict[str, str]:
        """What the manifest records of the library."""
        return {"name": self.name, "source": self.source, "license": self.license,
                "timing": self.timing}


def load_library(name: str = DEFAULT) -> CellLibrary:
    """The cell table ``name`` shipped with the package; ``ValueError`` if there is none."""
    path = resources.files(__package__) / f"{name}.toml"
    if not path.is_file():
        raise ValueError(f"cell library {name!r}: no table {name}.toml in hw/stdcells")
    data = tomllib.loads(path.read_text())
    cells = {n: Cell(name=n, width_um=c["width_um"], height_um=c["height_um"],
                     inputs=tuple(c["inputs"]), output=c["output"],
                     function=c.get("function"), next_state=c.get("next_state"),
                     clocked_on=c.get("clocked_on"))
             for n, c in data["cells"].items()}
    return CellLibrary(name=data["library"], source=data["source"], license=data["license"],
                       timing=data["timing"], cells=cells, left_out=data["left_out"])


def liberty(lib: CellLibrary) -> str:
    """The library as an area-only Liberty file (no timing groups)."""
    out = [f"/* {lib.name}: areas from {lib.source}; {lib.license}. Timing: {lib.timing}. */",
           f"library ({lib.name}_area) {{",
           '  time_unit : "1ns";', '  voltage_unit : "1V";', '  current_unit : "1mA";',
           '  capacitive_load_unit (1, pf);', '  pulling_resistance_unit : "1kohm";']
    for cell in lib.cells.values():
        out += [f"  cell ({cell.name}) {{", f"    area : {cell.area_um2};"]
        if cell.next_state is not None:
            out.append(f'    ff (IQ, IQN) {{ next_state : "{cell.next_state}"; '
                       f'clocked_on : "{cell.clocked_on}"; }}')
        for pin in cell.inputs:
            clock = " clock : true;" if pin == cell.clocked_on else ""
            out.append(f"    pin ({pin}) {{ direction : input;{clock} }}")
        function = "IQ" if cell.next_state is not None else cell.function
        out += [f'    pin ({cell.output}) {{ direction : output; function : "{function}"; }}',
                "  }"]
    out.append("}")
    return "\n".join(out) + "\n"


_TOKEN = re.compile(r"\s*(?:(\w+)|(.))")
#: Binding strength of the binary operators (``!`` binds tighter than all).
_BINARY = {"|": 1, "^": 2, "&": 3}


def evaluate(function: str, values: dict[str, bool]) -> bool:
    """A Liberty function (``!``, ``&``, ``^``, ``|``, parentheses) at ``values``;
    ``ValueError`` names what it cannot read."""
    tokens = [m.group(1) or m.group(2) for m in _TOKEN.finditer(function) if m.group(0).strip()]
    pos = 0

    def primary() -> bool:
        nonlocal pos
        if pos >= len(tokens):
            raise ValueError(f"function {function!r}: ends early")
        tok = tokens[pos]
        pos += 1
        if tok == "!":
            return not primary()
        if tok == "(":
            v = expr(0)
            if pos >= len(tokens) or tokens[pos] != ")":
                raise ValueError(f"function {function!r}: unbalanced parentheses")
            pos += 1
            return v
        if tok not in values:
            raise ValueError(f"function {function!r}: unknown pin {tok!r}")
        return values[tok]

    def expr(floor: int) -> bool:
        nonlocal pos
        v = primary()
        while pos < len(tokens) and _BINARY.get(tokens[pos], 0) > floor:
            op = tokens[pos]
            pos += 1
            rhs = expr(_BINARY[op])
            v = (v or rhs) if op == "|" else (v != rhs) if op == "^" else (v and rhs)
        return v

    result = expr(0)
    if pos != len(tokens):
        raise ValueError(f"function {function!r}: unexpected {tokens[pos]!r}")
    return result
