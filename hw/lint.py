"""``lint.vlt``: the Verilator waivers written beside every design, each with its reason.

``verilator --lint-only -Wall NAME.v lint.vlt`` gives no warning on a generated design (a
test holds every engine kind and option to that). What the generators meant is emitted as
such (:mod:`hw.verilog`: full-width operands, readers of the generator's names); the
warnings left come from how Amaranth and Yosys write any design, and are waived here, each
by rule, by the design's file and by the narrowest pattern that holds:

- PROCASSINIT, every register: Amaranth declares each register with its reset value as
  initial value (``reg [3:0] a = 4'h0;``, its power-on value on an FPGA) and assigns it in
  ``always @(posedge clk)``; the synchronous ``rst`` sets the same value.
- CASEINCOMPLETE, the ``case`` lines of a state machine's state (an Amaranth FSM, named
  ``*fsm``: its state register ``*fsm_state``): the cases list the states, not the unused
  encodings of the state register (3 states in 2 bits), which keep the values each
  ``always @*`` block assigns before its ``case``. A ``case`` of the generator's own that
  leaves values out is still reported.
- UNUSEDSIGNAL on a state flag (``$7 = fsm_state == 2'h1``) that nothing reads: Amaranth's
  FSM computes one for every state, for the states whose ``ongoing`` the generator asks.
- UNUSEDSIGNAL on a field view (``i__payload.a[0]``, any name with a dot): Amaranth writes a
  wire for each field of a layout signal, for waveform viewers; the logic reads the signal.
- UNUSEDSIGNAL on some bits of a signal ("Bits of signal are not used"): the carry and upper
  bits of Amaranth's full-width arithmetic that the design truncates (an N-bit sum is N+1
  bits, accumulators wrap), and the extension bits of a named signal wider than its value
  (readers take a constant or the sign bit itself). A signal nothing reads at all is still
  reported.
"""

from __future__ import annotations

import re

__all__ = ["LINT_FILE", "lint_config", "waivers"]

#: The file beside ``NAME.v`` that a Verilator build or lint reads with it.
LINT_FILE = "lint.vlt"

#: An Amaranth FSM's state register by the generators' naming (``m.FSM(name="..._fsm")``).
_FSM_CASE = re.compile(r"\s*casez? \((\w*fsm_state) ?\)")
_FSM_FLAG = re.compile(r"\s*assign \\(\$\d+) +=( \w*fsm_state) == \d+'h[0-9a-f]+;")


def waivers(verilog: str) -> list[tuple[str, str, list[str]]]:
    """``(reason, rule, [where])`` for the Verilog of one generated design, ``where`` being
    each waiver's ``-lines`` or ``-match`` option (the groups that apply, in a fixed order)."""
    lines = verilog.splitlines()
    cases = [n for n, line in enumerate(lines, 1) if _FSM_CASE.match(line)]
    flags = [m.group(1) for line in lines if (m := _FSM_FLAG.match(line))]
    found = [
        ("every register is declared with its reset value as initial value (Amaranth's "
         "power-on state); the synchronous rst assigns the same value",
         "PROCASSINIT", ['-match "Procedural assignment to declaration with initial value: *"']),
        ("a state machine's case lists its states, not the unused encodings of its state "
         "register, which keep the values assigned before the case",
         "CASEINCOMPLETE", [f"-lines {n}" for n in cases]),
        ("Amaranth's FSM computes a state == S flag for every state, read only where the "
         "generator asks whether the FSM is in S",
         "UNUSEDSIGNAL", [f"-match \"Signal is not used: '{f}'\"" for f in flags]),
        ("Amaranth writes a wire for each field of a layout signal (name.field, name.field[i]) "
         "for waveform viewers; the logic reads the signal",
         "UNUSEDSIGNAL", ["-match \"Signal is not used: '*.*'\""]),
        ("carry and upper bits of full-width arithmetic that the design truncates (wrapping "
         "accumulators), and extension bits of signals wider than their value",
         "UNUSEDSIGNAL", ['-match "Bits of signal are not used: *"']),
    ]
    return [group for group in found if group[2]]


def lint_config(name: str, verilog: str) -> str:
    """The ``lint.vlt`` of the design ``name`` whose Verilog (``name.v``) is ``verilog``:
    :func:`waivers`, each group under its one-line reason, each waiver limited to the file
    (``*name.v``: the path Verilator was given ends with it)."""
    out = ["`verilator_config",
           f"// Waivers of Verilator's warnings on {name}.v, written by tpe gen. To lint:",
           f"// $ verilator --lint-only -Wall {name}.v {LINT_FILE}",
           "// Each waiver is for a way Amaranth and Yosys write Verilog, under its reason."]
    for reason, rule, where in waivers(verilog):
        out += ["", f"// {reason}"]
        out += [f'lint_off -rule {rule} -file "*{name}.v" {w}' for w in where]
    return "\n".join(out) + "\n"
