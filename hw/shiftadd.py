"""Output-stationary bit-serial shift-add accumulation, shared by the bit-plane engine
(:mod:`hw.bitplane`) and the LUT engine (:mod:`hw.lut`), which differ only in what a PE adds
per step."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

from amaranth import Cat, Const, Module, Mux, Shape, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.hier import Block, block_of, place, place_stacked
from hw.streams import RowDrain

__all__ = ["ShiftAddCore"]


class ShiftAddCore:
    """Output-stationary bit-serial shift-add accumulation, shared by the lut and bitplane
    engines.

    Elaborates, into ``m``, the fold control of ``comp`` (its ``i``, ``o`` and ``busy``
    ports), a group register ``p`` and an accumulator per PE, and the drain. Every input
    beat is worked on for ``steps`` cycles (step ``t`` = 0 .. steps-1); the caller builds its
    own stage registers (loaded on :attr:`accept`) and, per PE, the value added at each step:
    the PE is one block (:mod:`hw.hier`, :meth:`pe_block`: the engine's front end, then the
    shift-add registers and the drain's shift), placed at every position (:meth:`pe`), so
    the Verilog has one PE module. What the engine keeps once per row or per column (its
    operands' stage registers, a table unit, a correction register) is a row and a column
    block, placed once per row (:meth:`row`) and per column (:meth:`col`), and each column's
    output adder one more (``out``, :meth:`drain`): the top module holds the control, the
    instances and their wiring. Accumulators are ``acc_width`` bits and wrap; the output
    drops ``drop_bits`` low bits (exact halvings of the engines' corrected sums).

    Signals for the caller: ``accept`` (an input beat is taken this cycle), ``step`` (the PEs
    work this cycle), ``t`` (the step index; ``t_next`` its value in the next cycle, to
    register decoded step controls), ``first`` (t == 0), ``shift`` (the result rows
    move one place towards the output this cycle), ``done`` (the fold's last output beat
    transfers this cycle), ``begin`` (the first step of a beat: step and first; made when
    first used).
    """

    def __init__(self, m: Module, comp: wiring.Component, *, rows: int, cols: int,
                 steps: int, acc_width: int, p_shape: Shape, carry_save: bool):
        self.m, self.comp = m, comp
        self.rows, self.cols, self.steps = rows, cols, steps
        self.width = acc_width
        self.carry_save = carry_save
        if not carry_save and p_shape.width > acc_width:
            p_shape = Shape(acc_width, p_shape.signed)  # the group register wraps too
        self.p_shape = p_shape
        self.accept = Signal()
        self.step = Signal()
        self.t = Signal(range(max(steps, 2)))
        self.t_next = Signal(range(max(steps, 2)))
        self.first = Signal()
        self._begin: Signal | None = None
        self._regs: list[list[tuple[Value, ...]]] = [[()] * cols for _ in range(rows)]
        self._below: list[list[list[Signal]]] | None = None
        self._corr_below: list[Signal] | None = None
        self._control()

    def _control(self) -> None:
        m, comp = self.m, self.comp
        loaded = Signal()  # a beat is in the stage registers and being worked on
        closing = Signal()  # the fold's last beat has been taken
        drain = RowDrain(m, comp.o, self.rows)
        draining = drain.active
        self.shift, self.done = drain.shift, drain.done
        last_step = Signal()
        m.d.comb += [
            last_step.eq(loaded & (self.t == self.steps - 1)),
            self.step.eq(loaded),
            self.first.eq(self.t == 0),
            comp.i.ready.eq(~draining & ~closing & (~loaded | last_step)),
            self.accept.eq(comp.i.valid & comp.i.ready),
        ]
        with m.If(self.accept):
            m.d.sync += [loaded.eq(1), closing.eq(comp.i.payload.last), comp.busy.eq(1)]
        with m.Elif(last_step):
            m.d.sync += loaded.eq(0)
        m.d.comb += self.t_next.eq(Mux(loaded, Mux(last_step, 0, self.t + 1), self.t))
        m.d.sync += self.t.eq(self.t_next)
        m.d.comb += drain.start.eq(last_step & closing)
        with m.If(self.done):
            m.d.sync += [closing.eq(0), comp.busy.eq(0)]

    @property
    def begin(self) -> Signal:
        """The first step of a beat (``step & first``), made when a register first asks."""
        if self._begin is None:
            self._begin = Signal(name="beat_begin")
            self.m.d.comb += self._begin.eq(self.step & self.first)
        return self._begin

    def words(self) -> list[tuple[str, Shape]]:
        """The registers of a PE, as its block's output ports: the accumulator and group
        register (``acc``, ``p``), or with ``carry_save`` their sum and carry words
        (``acc_s``, ``acc_c``, ``p_s``, ``p_c``)."""
        W = Shape(self.width)
        if self.carry_save:
            return [("acc_s", W), ("acc_c", W), ("p_s", W), ("p_c", W)]
        return [("acc", W), ("p", self.p_shape)]

    def pe_block(self, key: Hashable, members: Mapping[str, Any],
                 front: Callable[[Module, Any], tuple[Value, Value, Value]]) -> Block:
        """The PE as one block (:mod:`hw.hier`), named ``pe``: the engine's ``members`` (its
        own inputs) and ``front(m, pe)``, which builds from them, in the block's module, the
        step's ``(v, neg, dbl)``; then the shift-add registers of :meth:`pe`'s docstring and
        the drain's shift (ports ``step``, ``first``, ``shift``, ``below_<word>`` in, the
        words of :meth:`words` out). ``key``: what ``front`` depends on besides the ports."""
        words = self.words()
        ports: dict[str, Any] = dict(members)
        ports.update({"step": In(1), "first": In(1), "shift": In(1)})
        ports.update({f"below_{n}": In(shape) for n, shape in words})
        ports.update({n: Out(shape) for n, shape in words})
        width, p_shape, carry_save = self.width, self.p_shape, self.carry_save

        def build(m: Module, pe: Any) -> None:
            v, neg, dbl = front(m, pe)
            regs = [getattr(pe, n) for n, _ in words]
            if not carry_save:
                _shift_add(m, pe, regs, v, neg, dbl, p_shape)
            else:
                _shift_add_csa(m, pe, regs, v, neg, dbl, width)
            # the drain, after the step (shift_rows' rule: the later update wins)
            with m.If(pe.shift):
                m.d.sync += [reg.eq(getattr(pe, f"below_{n}"))
                             for reg, (n, _) in zip(regs, words, strict=True)]

        return Block("pe", (key, width, p_shape, carry_save), ports, build)

    def pe(self, r: int, c: int, block: Block, **inputs: Any) -> None:
        """Place PE (r, c) (``block`` from :meth:`pe_block`, ``inputs`` its engine ports): at
        each step ``p = (2*p if dbl else p) + (-v if neg else v)``; the first step of a beat
        starts ``p`` afresh from the value and adds the old ``p`` into the accumulator. The
        drain shifts the words of PE (r+1, c) into it (zeros under the last row)."""
        words = self.words()
        if self._below is None:  # the words PE (r, c) hands up, r > 0 (placed after it)
            self._below = [[[Signal(shape, name=f"{n}_{rr}_{cc}") for n, shape in words]
                            for cc in range(self.cols)] for rr in range(self.rows)]
        below = self._below
        outs = place_stacked(self.m, f"pe_{r}_{c}", block,
                             [(f"below_{n}", n) for n, _ in words],
                             below[r + 1][c] if r + 1 < self.rows else None,
                             below[r][c] if r else None,
                             **inputs, step=self.step, first=self.first, shift=self.shift)
        self._regs[r][c] = tuple(outs[n] for n, _ in words)

    def row_members(self) -> dict[str, Any]:
        """The ports a row block (:meth:`row`) adds for a correction register kept per row
        (:meth:`row_register`): ``beat_start``, ``shift``, ``below_corr`` in, ``corr`` out."""
        return {"beat_start": In(1), "shift": In(1), "below_corr": In(self.width),
                "corr": Out(self.width)}

    def col_members(self) -> dict[str, Any]:
        """The ports a column block (:meth:`col`) adds for a correction register kept per
        column (:meth:`col_register`): ``beat_start``, ``done`` in, ``corr`` out."""
        return {"beat_start": In(1), "done": In(1), "corr": Out(self.width)}

    def row(self, r: int, block: Block, **inputs: Any) -> dict[str, Value]:
        """Place row ``r``'s block (the engine's logic kept once per row: its operands'
        registers, a table unit), as ``row_<r>``; ``inputs`` are its engine ports. A block
        with :meth:`row_members` gets the control, and its ``corr`` words shift up with the
        result rows (row r+1's into row r, zeros under the last row); row 0's is what
        :meth:`drain` subtracts."""
        if "corr" not in block.members:
            return place(self.m, f"row_{r}", block, **inputs)
        if self._corr_below is None:  # the word row r hands up, r > 0 (placed after it)
            self._corr_below = [Signal(self.width, name=f"row_corr{rr}")
                                for rr in range(self.rows)]
        below = self._corr_below
        return place_stacked(self.m, f"row_{r}", block, [("below_corr", "corr")],
                             [below[r + 1]] if r + 1 < self.rows else None,
                             [below[r]] if r else None,
                             **inputs, beat_start=self.begin, shift=self.shift)

    def col(self, c: int, block: Block, **inputs: Any) -> dict[str, Value]:
        """Place column ``c``'s block (the engine's logic kept once per column: its weights'
        registers and index), as ``col_<c>``; ``inputs`` are its engine ports. A block with
        :meth:`col_members` gets the control; its ``corr`` is what :meth:`drain` subtracts
        from the column."""
        if "corr" in block.members:
            inputs.update(beat_start=self.begin, done=self.done)
        return place(self.m, f"col_{c}", block, **inputs)

    def drain(self, col_corr: Sequence[Value] | None = None, row_corr: Value | None = None,
              drop_bits: int = 0) -> None:
        """The outputs (after every :meth:`pe` call; the PEs shift the rows out): column c is
        ``(acc + p - row_corr - col_corr[c]) >> drop_bits`` of row 0, wrapped to the lane,
        one block (``out``, :mod:`hw.hier`) placed per column as ``out_<c>``."""
        W = self.width
        if W - drop_bits != len(Value.cast(self.comp.o.payload.c[0])):
            raise ValueError(f"drain: {W} accumulator bits less {drop_bits} do not fit the lane")
        words = self.words()
        inputs: dict[str, Any] = dict(words)
        if row_corr is not None:
            inputs["row_corr"] = Shape(W)
        if col_corr is not None:
            inputs["col_corr"] = Shape(W)
        carry_save = self.carry_save

        def outputs(m: Module, p: Any) -> dict[str, Value]:
            regs = [getattr(p, n) for n, _ in words]
            if carry_save:
                # the PE's own compression of acc + p (:func:`_csa_acc`, the same gates on the
                # same words: one copy after Yosys flattens), then one carry-propagate add
                s3, c3 = _csa_acc(*regs, W)
                total = s3 + c3
            else:
                total = regs[0] + regs[1]
            if row_corr is not None:
                total = total - p.row_corr
            if col_corr is not None:
                total = total - p.col_corr
            out = Signal(W, name="out")
            m.d.comb += out.eq(total)
            return {"c": out[drop_bits:]}

        block = block_of("out", (W, self.p_shape, carry_save, drop_bits, tuple(sorted(inputs))),
                         inputs, outputs)
        for c in range(self.cols):
            ports = {n: v for (n, _), v in zip(words, self._regs[0][c], strict=True)}
            if row_corr is not None:
                ports["row_corr"] = row_corr
            if col_corr is not None:
                ports["col_corr"] = col_corr[c]
            outs = place(self.m, f"out_{c}", block, **ports)
            self.m.d.comb += self.comp.o.payload.c[c].eq(outs["c"])

    @staticmethod
    def row_register(m: Module, ports: Any, plus: Sequence[Value | int] = (),
                     minus: Sequence[Value] = ()) -> None:
        """In a row block's module ``m`` (:meth:`row_members`, ``ports``): its ``corr``
        register adds ``plus`` and subtracts ``minus`` at the first step of every beat and
        shifts with the result rows during the drain (so it is zero again after a fold). The
        terms should come from registers: one carry-save tree and one adder from flip-flop
        to flip-flop."""
        with m.If(ports.beat_start):
            m.d.sync += ports.corr.eq(ShiftAddCore._update(ports.corr, plus, minus))
        with m.Elif(ports.shift):
            m.d.sync += ports.corr.eq(ports.below_corr)

    @staticmethod
    def col_register(m: Module, ports: Any, plus: Sequence[Value | int] = (),
                     minus: Sequence[Value] = ()) -> None:
        """In a column block's module ``m`` (:meth:`col_members`, ``ports``): its ``corr``
        register adds ``plus`` and subtracts ``minus`` at the first step of every beat and
        clears when the fold's last output beat leaves."""
        with m.If(ports.beat_start):
            m.d.sync += ports.corr.eq(ShiftAddCore._update(ports.corr, plus, minus))
        with m.Elif(ports.done):
            m.d.sync += ports.corr.eq(0)

    @staticmethod
    def _update(reg: Value, plus, minus) -> Value:
        total = reg
        for x in plus:
            total = total + x
        for x in minus:
            total = total - x
        return total


def _csa(x: Value, y: Value, z: Value, width: int,
         cin: Value | None = None) -> tuple[Value, Value]:
    """A row of full adders: ``x + y + z + cin == s + c`` modulo ``2**width``."""
    cin = Const(0, 1) if cin is None else cin
    s = (x ^ y ^ z)[:width]
    c = Cat(cin, ((x & y) | (x & z) | (y & z))[:width - 1])
    return s, c


def _csa_acc(as_: Value, ac: Value, ps: Value, pc: Value, width: int) -> tuple[Value, Value]:
    """``acc + p`` of carry-save words as a sum and a carry word (two rows of full adders):
    what the first step of a beat accumulates and what the drain adds up."""
    s2, c2 = _csa(as_, ac, ps, width)
    return _csa(s2, c2, pc, width)


def _shift_add(m: Module, pe: Any, regs: Sequence[Value], v: Value, neg: Value, dbl: Value,
               p_shape: Shape) -> None:
    """A PE's accumulator and group register (``regs``), one carry-propagate add a step."""
    acc, p = regs
    # -v is ~v + 1: the inversion is a row of XORs and the +1 the adder's carry-in, so a
    # step is one carry-propagate add, never a negation followed by an add.
    vx = Signal(p_shape, name="vx")
    term = Signal(p_shape, name="term")
    m.d.comb += [vx.eq(v), term.eq(vx ^ neg.replicate(p_shape.width))]
    with m.If(pe.step):
        with m.If(pe.first):
            m.d.sync += [acc.eq(acc + p), p.eq(term + neg)]
        with m.Else():
            m.d.sync += p.eq(Mux(dbl, p << 1, p) + term + neg)


def _shift_add_csa(m: Module, pe: Any, regs: Sequence[Value], v: Value, neg: Value,
                   dbl: Value, width: int) -> None:
    """Carry-save (OPT1): sum and carry words (``regs``), no carry propagation in the loop.
    -v is ~v + 1: the +1 enters the carry word's least significant bit, which is always
    free."""
    as_, ac, ps, pc = regs
    vx = Signal(width, name="vx")
    term = Signal(width, name="term")
    m.d.comb += [vx.eq(v), term.eq(vx ^ neg.replicate(width))]
    bs = Mux(dbl, ps << 1, ps)[:width]
    bc = Mux(dbl, pc << 1, pc)[:width]
    s1, c1 = _csa(bs, bc, term, width, neg)
    s3, c3 = _csa_acc(as_, ac, ps, pc, width)
    with m.If(pe.step):
        with m.If(pe.first):
            m.d.sync += [as_.eq(s3), ac.eq(c3), ps.eq(term), pc.eq(neg)]
        with m.Else():
            m.d.sync += [ps.eq(s1), pc.eq(c1)]
