"""Repeated structures (a PE, a tree) as one module each, instantiated where they repeat.

A generator describes a repeated structure once, as a :class:`Block`: its ports (a
``wiring`` signature: ``In``/``Out`` members by name) and a function that builds its logic in
a fresh ``Module`` from those ports, and places it at every position with :func:`place`,
passing the values its inputs take there and reading its outputs back. Everything a block
computes depends on its ``key`` (what the generator builds it from: the spec's fields that
matter) and on its ports only, so every placement with one key is the same hardware.

How a placement is elaborated depends on what the design is elaborated for:

- **For Amaranth** (``amaranth.sim``, the default): each placement is its own submodule (a
  fresh :class:`BlockComponent`), connected to the parent by ``comb`` assignments. The generator's
  Python builds every copy; the design is one Amaranth design the simulator runs whole.
- **For Verilog** (within :func:`emitting`, as :func:`hw.verilog.to_verilog` does): the block
  of each key is elaborated once, as a module of its own named ``<top>_<name>``, and every
  placement is an ``Instance`` of that module (ports ``clk``/``rst`` where the block has
  registers, then its own by name). The generator's Python builds one copy of each block, so
  elaboration grows with the number of placements, not with placements times gates; the
  Verilog has one module definition per block and readable instance and port names.

Both come from the one description, and both are checked: ``amaranth.sim`` tests run the
first, ``tpe verify`` (cocotb on Verilator) the second. ``emitting(check=True)`` (the tests)
elaborates every placement for Verilog as well and fails unless each is the same module text
as the first of its key, so a block whose logic depends on something outside its key and
ports (a position, a signal of the parent) cannot slip through as one module.

An output that a placement does not use (the forwarded operand of an edge PE) is left
unconnected in the Verilog instance; :mod:`hw.lint` waives Verilator's PINMISSING for
exactly those pins.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Callable, Collection, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from amaranth import ClockSignal, Const, Instance, Module, ResetSignal, Shape, Signal, Value
from amaranth.lib import wiring

__all__ = ["Block", "BlockComponent", "BlockMismatch", "Emitted", "block_of", "emitting", "place",
           "place_stacked"]


@dataclass(frozen=True, eq=False)
class Block:
    """A repeated structure: ``members`` (``{name: In(shape) | Out(shape)}``, its ports) and
    ``build(m, ports)``, which adds its logic to ``m`` from the ports (``ports.<name>``).
    ``name`` names its module (``<top>_<name>``); ``key`` is what the logic depends on
    besides the ports."""
    name: str
    key: Hashable
    members: Mapping[str, Any]
    build: Callable[[Module, Any], None]

    def component(self) -> BlockComponent:
        """A fresh component of this block (a submodule has one parent)."""
        return BlockComponent(self)


class BlockComponent(wiring.Component):
    """One elaboration of a :class:`Block`: its ports, its logic."""

    def __init__(self, block: Block):
        self.block = block
        super().__init__(dict(block.members))

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        self.block.build(m, self)
        return m


class BlockMismatch(AssertionError):
    """Two placements of one block key elaborated to different modules (see ``check``)."""


@dataclass
class Emitted:
    """The blocks elaborated for one Verilog conversion: ``modules`` the RTLIL text of each
    block module (in the order first placed), ``count`` the placements of each."""
    top: str
    check: bool = False
    modules: dict[str, str] = field(default_factory=dict)
    count: dict[str, int] = field(default_factory=dict)
    ports: dict[str, set[str]] = field(default_factory=dict)
    _names: dict[tuple[str, Hashable], str] = field(default_factory=dict)


_EMITTING: contextvars.ContextVar[Emitted | None] = contextvars.ContextVar(
    "tpeforge_hier_emitting", default=None)


@contextlib.contextmanager
def emitting(top: str, *, check: bool = False) -> Iterator[Emitted]:
    """Within: :func:`place` instantiates one module per block key (see the module
    docstring); yields the :class:`Emitted` that collects their RTLIL."""
    state = Emitted(top=top, check=check)
    token = _EMITTING.set(state)
    try:
        yield state
    finally:
        _EMITTING.reset(token)


_PORT_RE = re.compile(r"^\s*wire (?:width \d+ )?(input|output) \d+\s+(?:signed\s+)?\\(\S+)$",
                      re.MULTILINE)


def _convert(block: BlockComponent, module: str) -> tuple[str, set[str]]:
    """The RTLIL of ``block`` as module ``module`` (no ``top`` attribute: it is
    instantiated) and the names of its ports."""
    from amaranth.back import rtlil

    text = rtlil.convert(block, name=module, emit_src=False)
    text = text.replace("attribute \\top 1\n", "")
    # Amaranth gives a module whose registers all lack a reset (pipeline data registers) the
    # sync domain's rst port anyway: dropped when nothing in the module reads it
    rst = re.search(r"^\s*wire (?:width 1 )?input \d+\s+\\rst\n", text, re.MULTILINE)
    if rst and not re.search(r"\\rst\b", text[:rst.start()] + text[rst.end():]):
        text = text[:rst.start()] + text[rst.end():]
    return text, {m.group(2) for m in _PORT_RE.finditer(text)}


def place(m: Module, name: str, block: Block, *, unused: Collection[str] = (),
          **inputs: Any) -> dict[str, Value]:
    """Place ``block`` in ``m`` as ``name``, its inputs driven by ``inputs`` (every ``In``
    member, by name); returns its outputs by name. ``unused``: the outputs this placement
    leaves unread (an edge PE's forwarded operand): in Verilog they stay unconnected (and
    their entries in the result are signals nothing drives)."""
    members = dict(block.members)
    want = {n for n, mem in members.items() if mem.flow == wiring.In}
    if set(inputs) != want:
        raise TypeError(f"place {block.name!r} as {name!r}: inputs {sorted(inputs)} "
                        f"differ from the block's {sorted(want)}")
    state = _EMITTING.get()
    if state is None:
        sub = block.component()
        m.submodules[name] = sub
        m.d.comb += [getattr(sub, n).eq(v) for n, v in inputs.items()]
        return {n: getattr(sub, n) for n in members if n not in want}
    ident = (block.name, block.key)
    module = state._names.get(ident)
    if module is None or state.check:
        first = module is None
        if first:
            taken = set(state.modules)
            module = f"{state.top}_{block.name}"
            n = 2
            while module in taken:
                module, n = f"{state.top}_{block.name}_v{n}", n + 1
            state._names[ident] = module
            state.modules[module] = ""  # placeholder: nested blocks come after it
        text, ports = _convert(block.component(), module)
        if first:
            state.modules[module], state.ports[module] = text, ports
        elif text != state.modules[module]:
            raise BlockMismatch(f"block {block.name!r} placed as {name!r} elaborates "
                                f"to a module other than its first placement's ({module})")
    state.count[module] = state.count.get(module, 0) + 1
    ports = state.ports[module]
    args: list[tuple[str, str, Any]] = []
    if "clk" in ports:
        args.append(("i", "clk", ClockSignal()))
    if "rst" in ports:
        args.append(("i", "rst", ResetSignal()))
    outs: dict[str, Value] = {}
    for n, mem in members.items():
        if n not in ports or n in unused:
            continue  # a port the block does not have (Amaranth leaves it out), or unread
        if n in want:
            value = Value.cast(inputs[n])
            if isinstance(value, Const) and len(value) != Shape.cast(mem.shape).width:
                value = Const(value.value, mem.shape)  # the width the module expects
            elif len(value) != Shape.cast(mem.shape).width:
                wide = Signal(mem.shape, name=f"{name}_{n}")
                m.d.comb += wide.eq(value)
                value = wide
            args.append(("i", n, value))
        else:
            outs[n] = Signal(mem.shape, name=f"{name}_{n}")
            args.append(("o", n, outs[n]))
    for n, mem in members.items():
        if n not in want and n not in outs:
            outs[n] = Signal(mem.shape, name=f"{name}_{n}")  # undriven: the block has none
    m.submodules[name] = Instance(module, *args)
    return outs



def place_stacked(m: Module, name: str, block: Block, chain: Sequence[tuple[str, str]],
                  below: Sequence[Value] | None, above: Sequence[Value] | None,
                  **inputs: Any) -> dict[str, Value]:
    """:func:`place` one of a column of placements that hand words up (an array's drain):
    each ``(in_port, out_port)`` of ``chain`` reads ``below``'s word (the placement under
    this one's outputs, as signals driven after it; ``None`` under the last row: zeros) and
    drives ``above``'s signal (which the placement above reads; ``None`` in the top row)."""
    words = below if below is not None else [0] * len(chain)
    inputs.update({i: v for (i, _), v in zip(chain, words, strict=True)})
    outs = place(m, name, block, **inputs)
    if above is not None:
        m.d.comb += [s.eq(outs[o]) for s, (_, o) in zip(above, chain, strict=True)]
    return outs


def block_of(name: str, key: Hashable, inputs: Mapping[str, Any],
             outputs: Callable[[Module, Any], Mapping[str, Any]]) -> Block:
    """A :class:`Block` whose outputs are values of its inputs: ``inputs`` gives each input
    port's shape by name, ``outputs(m, ports)`` adds the logic to ``m`` (registers too) and
    returns each output's value by name. The output ports take those values at their own
    shapes (found by building the logic once on a scratch module), so a placement's outputs
    read as the values would have without the block."""
    scratch = Module()
    scratch._MustUse__silence = True  # built for its shapes only: no unused-module warning
    ports = SimpleNamespace(**{n: Signal(shape, name=n) for n, shape in inputs.items()})
    shapes = {n: Value.cast(v).shape() for n, v in outputs(scratch, ports).items()}
    members: dict[str, Any] = {n: wiring.In(shape) for n, shape in inputs.items()}
    members.update({n: wiring.Out(shape) for n, shape in shapes.items()})

    def build(m: Module, block: Any) -> None:
        m.d.comb += [getattr(block, n).eq(v) for n, v in outputs(m, block).items()]

    return Block(name, key, members, build)
