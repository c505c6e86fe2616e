"""Output-stationary bit-serial shift-add accumulation, shared by the bit-plane engine
(:mod:`hw.bitplane`) and the LUT engine (:mod:`hw.lut`), which differ only in what a PE adds
per step."""

from __future__ import annotations

from collections.abc import Sequence

from amaranth import Cat, Const, Module, Mux, Shape, Signal, Value
from amaranth.lib import wiring

from hw.streams import RowDrain, shift_rows

__all__ = ["ShiftAddCore"]


class ShiftAddCore:
    """Output-stationary bit-serial shift-add accumulation, shared by the lut and bitplane
    engines.

    Elaborates, into ``m``, the fold control of ``comp`` (its ``i``, ``o`` and ``busy``
    ports), a group register ``p`` and an accumulator per PE, and the drain. Every input
    beat is worked on for ``steps`` cycles (step ``t`` = 0 .. steps-1); the caller builds its
    own stage registers (loaded on :attr:`accept`) and, per PE, the value added at each step
    (:meth:`pe`). Accumulators are ``acc_width`` bits and wrap; the output drops
    ``drop_bits`` low bits (exact halvings of the engines' corrected sums).

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
        self._regs: list[list[tuple[Signal, ...]]] = [[()] * cols for _ in range(rows)]
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

    @staticmethod
    def _csa(x: Value, y: Value, z: Value, width: int,
             cin: Value | None = None) -> tuple[Value, Value]:
        """A row of full adders: ``x + y + z + cin == s + c`` modulo ``2**width``."""
        cin = Const(0, 1) if cin is None else cin
        s = (x ^ y ^ z)[:width]
        c = Cat(cin, ((x & y) | (x & z) | (y & z))[:width - 1])
        return s, c

    def pe(self, r: int, c: int, v: Value, neg: Value, dbl: Value) -> None:
        """PE (r, c): at each step ``p = (2*p if dbl else p) + (-v if neg else v)``; the first
        step of a beat starts ``p`` afresh from the value and adds the old ``p`` into the
        accumulator."""
        m, W = self.m, self.width
        name = f"{r}_{c}"
        if not self.carry_save:
            # -v is ~v + 1: the inversion is a row of XORs and the +1 the adder's carry-in,
            # so a step is one carry-propagate add, never a negation followed by an add.
            p = Signal(self.p_shape, name=f"p_{name}")
            acc = Signal(W, name=f"acc_{name}")
            vx = Signal(self.p_shape, name=f"vx_{name}")
            term = Signal(self.p_shape, name=f"term_{name}")
            m.d.comb += [vx.eq(v), term.eq(vx ^ neg.replicate(self.p_shape.width))]
            with m.If(self.step):
                with m.If(self.first):
                    m.d.sync += [acc.eq(acc + p), p.eq(term + neg)]
                with m.Else():
                    m.d.sync += p.eq(Mux(dbl, p << 1, p) + term + neg)
            self._regs[r][c] = (acc, p)
            return
        # Carry-save (OPT1): sum and carry words, no carry propagation in the loop. -v is
        # ~v + 1: the +1 enters the carry word's least significant bit, which is always free.
        ps, pc, as_, ac = (Signal(W, name=f"{n}_{name}") for n in ("ps", "pc", "as", "ac"))
        vx = Signal(W, name=f"vx_{name}")
        term = Signal(W, name=f"term_{name}")
        m.d.comb += [vx.eq(v), term.eq(vx ^ neg.replicate(W))]
        bs = Mux(dbl, ps << 1, ps)[:W]
        bc = Mux(dbl, pc << 1, pc)[:W]
        s1, c1 = self._csa(bs, bc, term, W, neg)
        s2, c2 = self._csa(as_, ac, ps, W)
        s3, c3 = self._csa(s2, c2, pc, W)
        with m.If(self.step):
            with m.If(self.first):
                m.d.sync += [as_.eq(s3), ac.eq(c3), ps.eq(term), pc.eq(neg)]
            with m.Else():
                m.d.sync += [ps.eq(s1), pc.eq(c1)]
        self._regs[r][c] = (as_, ac, ps, pc)

    def drain(self, col_corr: Sequence[Value] | None = None, row_corr: Value | None = None,
              drop_bits: int = 0) -> None:
        """Shift the result rows out (after every :meth:`pe` call): output column c is
        ``(acc + p - row_corr - col_corr[c]) >> drop_bits`` of row 0, wrapped to the lane."""
        m, W = self.m, self.width
        shift_rows(m, self._regs, self.shift)
        if W - drop_bits != len(Value.cast(self.comp.o.payload.c[0])):
            raise ValueError(f"drain: {W} accumulator bits less {drop_bits} do not fit the lane")
        for c in range(self.cols):
            total = sum(self._regs[0][c][1:], self._regs[0][c][0])
            if row_corr is not None:
                total = total - row_corr
            if col_corr is not None:
                total = total - col_corr[c]
            out = Signal(W, name=f"out{c}")
            m.d.comb += [out.eq(total), self.comp.o.payload.c[c].eq(out[drop_bits:])]

    def row_register(self, name: str, r: int, below: Signal | int,
                     plus: Sequence[Value | int] = (), minus: Sequence[Value] = ()) -> Signal:
        """A per-row ``acc_width`` register that adds ``plus`` and subtracts ``minus`` at the
        first step of every beat and shifts with the result rows during the drain (so it is
        zero again after a fold). The terms should come from registers: one carry-save
        tree and one adder from flip-flop to flip-flop."""
        reg = Signal(self.width, name=f"{name}{r}")
        with self.m.If(self.begin):
            self.m.d.sync += reg.eq(self._update(reg, plus, minus))
        with self.m.Elif(self.shift):
            self.m.d.sync += reg.eq(below)
        return reg

    def col_register(self, name: str, c: int, plus: Sequence[Value | int] = (),
                     minus: Sequence[Value] = ()) -> Signal:
        """A per-column ``acc_width`` register that adds ``plus`` and subtracts ``minus`` at
        the first step of every beat and clears when the fold's last output beat leaves."""
        reg = Signal(self.width, name=f"{name}{c}")
        with self.m.If(self.begin):
            self.m.d.sync += reg.eq(self._update(reg, plus, minus))
        with self.m.Elif(self.done):
            self.m.d.sync += reg.eq(0)
        return reg

    @staticmethod
    def _update(reg: Value, plus, minus) -> Value:
        total = reg
        for x in plus:
            total = total + x
        for x in minus:
            total = total - x
        return total
