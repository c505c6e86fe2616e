"""An Amaranth component as Verilog text: Amaranth's RTLIL, written by its Yosys.

The path is Amaranth's own (``amaranth.back.verilog.convert``: RTLIL, then ``proc -nomux``,
``memory_collect`` and ``write_verilog -norename``, the Verilog changing only when the
hardware does), with three differences in the RTLIL and the Yosys script, each so that
``verilator --lint-only -Wall`` sees the design the generator meant:

- **Operands at full width.** Amaranth's netlist extends the operands of ``+``, ``-``, ``==``,
  comparisons and shifts to the operation's width; its RTLIL writer then trims that extension
  again ("prettier", it says), and Yosys writes the trimmed operands, which Verilog extends
  implicitly: one WIDTHEXPAND or WIDTHTRUNC per operation (``x == 0`` became ``! x`` of a
  multi-bit ``x``). Here the operands keep their width, the extension spelled out in the
  Verilog. Products keep Amaranth's trimmed operands (``$signed(a) * $signed(b)``: Verilator
  reads a product's width as the sum of its operands', and the multipliers stay as narrow
  as the generator made them). Synthesis figures are unchanged but for a few cells where the
  explicit extension lets Yosys share more (a 2x2 LUT array: 2 cells fewer of 3,991).
- **Readers use the generator's names.** A named signal that aliases a computed value (``pp =
  a * b``) is, in Amaranth's RTLIL, a wire assigned from the anonymous wire of the cell
  (``$285``) while every reader reads ``$285``: the named wire is read by nothing. Here the
  readers read the named wire (several names of one value: each from the one before, the
  readers from the last), so the Verilog reads ``pp`` where it used ``$285``.
- **No ``opt_expr`` and no ``proc_prune``** among ``proc``'s steps: ``opt_expr`` rewrites the
  full-width comparisons into the trimmed forms above, and ``proc_prune`` maps every process's
  right-hand side back to the anonymous wires. Neither changes the logic.

A memory whose contents are don't-care at reset (its ``attrs`` carry :data:`UNINITIALIZED`,
as the tile's scratchpads do) is written without an initial value: no ``$meminit`` cell, so
no ``initial`` block assigning every word (for a 32x32 systolic tile's 2.6 Mbit of
scratchpads, a third of Amaranth's conversion time under cProfile, and a Verilog file a third
smaller), as an SRAM macro has none either. ``amaranth.sim`` still starts it at zero.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from amaranth._toolchain.yosys import find_yosys
from amaranth.back import rtlil
from amaranth.hdl import _nir

from hw import hier

__all__ = ["UNINITIALIZED", "to_verilog"]

#: The ``attrs`` key that marks an ``amaranth.lib.memory.Memory`` whose contents are don't-care
#: at reset (every word is written before it is read): its Verilog has no initial value.
UNINITIALIZED = "tpeforge_uninitialized"

#: ``proc -nomux -norom`` (Amaranth's) less ``proc_prune`` and ``opt_expr -keepdc`` (see the
#: module docstring), then Amaranth's ``memory_collect``.
YOSYS_PASSES = ("proc_clean", "proc_rmdead", "proc_init", "proc_arst", "proc_dlatch",
                "proc_dff", "proc_memwr", "proc_clean", "memory_collect")


class _ModuleEmitter(rtlil.ModuleEmitter):
    """Amaranth's RTLIL emitter with full-width operands, readers of named signals and no
    ``$meminit_v2`` cell for :data:`UNINITIALIZED` memories (see the module docstring)."""

    nets: dict[Any, Any]  # Amaranth's: net -> (wire, bit) that readers read
    _drivers: dict[Any, Any]  # net -> (wire, bit) that drives it (Amaranth's nets, unchanged)
    _operator: str | None = None
    _lhs_cell: int | None = None

    @contextlib.contextmanager
    def _driving(self) -> Iterator[None]:
        """Within: :meth:`sigspec` names the wires that drive the nets, not their readers'."""
        readers, self.nets = self.nets, self._drivers
        try:
            yield
        finally:
            self.nets = readers

    def emit_memory(self, cell_idx: int, cell: Any) -> None:
        if not cell.attributes.get(UNINITIALIZED):
            super().emit_memory(cell_idx, cell)

    def emit_operator(self, cell_idx: int, cell: Any) -> None:
        self._operator = cell.operator
        try:
            super().emit_operator(cell_idx, cell)
        finally:
            self._operator = None

    def shorten_operand(self, value: Any, *, signed: bool) -> Any:
        if self._operator == "*":
            return super().shorten_operand(value, signed=signed)
        return value

    def emit_connects(self) -> None:
        # Named signals that are not the driving wire of their nets are assigned from the
        # wire that is (their value at the time: a driver or the previous name of a net), and
        # become the wire the readers of those nets read.
        self._drivers = dict(self.nets)
        for name, (wire, value) in self.sigport_wires.items():
            if name in self.driven_sigports:
                continue
            self.builder.connect(wire.name, self.sigspec(value))
            seen = set()
            for bit, net in enumerate(value):
                if not net.is_const and net not in seen:  # sign copies: the lowest bit reads
                    seen.add(net)
                    self.nets[net] = (wire, bit)

    def emit_signal_fields(self) -> None:
        with self._driving():  # the field views of a layout signal, as Amaranth writes them
            super().emit_signal_fields()

    def emit_submodules(self) -> None:
        # Amaranth's, but a submodule's outputs drive their wires: they are never read through
        # a name (its inputs are)
        for submodule_idx in self.module.submodules:
            submodule = self.netlist.modules[submodule_idx]
            if self.empty_checker.is_empty(submodule_idx):
                continue
            ports = {}
            for name, (value, flow) in submodule.ports.items():
                if flow == _nir.ModuleNetFlow.Output:
                    with self._driving():
                        ports[name] = self.sigspec(value)
                else:
                    ports[name] = self.sigspec(value)
            for name, (value, _dir) in submodule.io_ports.items():
                ports[name] = self.io_sigspec(value)
            self.builder.cell(f"\\{'.'.join(submodule.name)}", submodule.name[-1], ports=ports,
                              src_loc=submodule.cell_src_loc)

    def emit_assignment_list(self, cell_idx: int, cell: Any) -> None:
        self._lhs_cell = cell_idx
        try:
            super().emit_assignment_list(cell_idx, cell)
        finally:
            self._lhs_cell = None

    def sigspec(self, *parts: Any) -> str:
        # a process assigns its own cell's wire (the driver), never a name that reads it
        if self._lhs_cell is not None:
            value = _nir.Value()
            for part in parts:
                value += _nir.Value(part)
            if value and all(not n.is_const and n.cell == self._lhs_cell for n in value):
                with self._driving():
                    return str(super().sigspec(value))
        return str(super().sigspec(*parts))


def to_verilog(component: Any, name: str, *, check: bool = False) -> str:
    """The Verilog of ``component`` with top module ``name`` (``emit_src=False``: it changes
    only when the hardware does), as the module docstring says: the modules of its repeated
    structures (:mod:`hw.hier`, one per block), then the top. ``check``: elaborate every
    placement of a block and fail unless all are the same module (``hier.emitting``)."""
    default = rtlil.ModuleEmitter
    rtlil.ModuleEmitter = _ModuleEmitter  # looked up by name in rtlil.convert_fragment
    try:
        with hier.emitting(name, check=check) as blocks:
            text = rtlil.convert(component, name=name, emit_src=False)
    finally:
        rtlil.ModuleEmitter = default
    text = "".join(blocks.modules.values()) + text
    yosys = find_yosys(lambda version: version >= (0, 40))
    script = [f"read_rtlil <<rtlil\n{text}\nrtlil", *YOSYS_PASSES, "write_verilog -norename"]
    # Yosys warns that not every process can be written as Verilog; Amaranth emits only
    # processes that can and silences the warning the same way
    return str(yosys.run(["-q", "-"], "\n".join(script), ignore_warnings=True))
