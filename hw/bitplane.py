"""Bit-plane engine generator: arbitrary precision on binary dot-product units.

One :class:`BitplaneArray` component is elaborated from one :class:`hw.spec.BitplaneSpec`.
All streams follow ``amaranth.lib.stream`` rules (a beat transfers in a cycle where ``valid``
and ``ready`` are both high; ``valid`` never waits for ``ready``). Operand lanes are
``signed(bits)`` or ``unsigned(bits)`` per ``spec.signed``; results are ``acc_bits`` wide and
wrap modulo ``2**acc_bits`` (two's complement when signed).

The array computes a ``rows`` x ``cols`` tile of ``C = A @ W`` over a reduction of any
length K (output stationary: PE (r, c) owns ``C[r, c]``):

* ``i`` stream, one beat per ``depth`` reduction indices ``k0 .. k0+depth-1``: lane
  ``r*depth + d`` of ``a`` carries ``A[r, k0 + d]``, lane ``c*depth + d`` of ``w`` carries
  ``W[k0 + d, c]``; ``last`` high on the fold's final beat. Lanes past the end of K must hold
  a zero in ``a`` or in ``w`` (the planner zeroes ``a``).
* A taken beat is split into bit planes in a register (one cycle). Then, for
  ``a_bits * w_bits`` cycles, one plane pair (i, j) per cycle in the order of
  :func:`hw.spec.bitplane.plane_schedule` (diagonals of equal ``i + j``, most significant
  first), every PE computes ``x = popcount(plane_i(A[r]) op plane_j(W[c]))`` over the
  ``depth`` lanes (``op`` = AND for ``encoding="twos"``, XNOR for ``"bipolar"``) and updates
  its group register ``p = 2*p +- x`` on the first pair of a diagonal, ``p = p +- x`` on the
  others (subtracting when exactly one plane is a two's complement sign plane). The first
  pair of the next beat adds ``p`` into the accumulator. ``i.ready`` is high in the last
  pair cycle of a beat (the next beat's planes load as the current ones finish), so beats
  stream at one per ``a_bits * w_bits`` cycles; a missing beat idles the PEs.
* ``encoding="bipolar"``: signed operands enter in offset binary (sign bit inverted), every
  plane read as {-1, +1}; the PEs only add. A taken beat's lane sums go into narrow
  registers and, at its first pair, into a row register (scaled by shifts, plus a constant
  per lane) and a column register: ``2*C = X - dw*sum_k A - da*sum_k W - L*kappa`` (see
  :class:`hw.spec.BitplaneSpec`) is applied once per output, the halving exact
  (accumulators ``acc_bits + 1`` wide).
* ``o`` stream, ``rows`` beats after the last pair: beat r carries ``c[j] = C[r, j]``
  (accumulator + group register + the encoding's correction, in one carry-propagate add per
  output); ``last`` marks beat ``rows - 1``. Back-pressure holds the drain.
* Timing: with every beat valid and ready, the last output transfers
  ``fold_cycles(K) - 1 = ceil(K/depth)*a_bits*w_bits + rows`` cycles after the first input
  beat. ``i.ready`` is high again from the cycle after the last output beat, so folds run
  back to back.

``busy`` is high while a fold is in progress (from its first input beat to its last output).

:class:`ShiftAddCore` (the control, the group registers, the accumulators and the drain) is
shared with the LUT engine (:mod:`hw.lut`), which differs only in what a PE adds per step.
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth import Array, Cat, Const, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.spec.bitplane import BitplaneSpec, bipolar_offset, plane_schedule

__all__ = [
    "COMPONENT",
    "BitplaneArray",
    "ShiftAddCore",
    "const_terms",
    "popcount",
    "stream_layouts",
    "tree_sum",
]


def _shapes(spec) -> tuple[Shape, Shape, Shape]:
    kind = signed if spec.signed else unsigned
    return kind(spec.a_bits), kind(spec.w_bits), kind(spec.acc_bits)


def stream_layouts(spec: BitplaneSpec) -> dict[str, data.Layout]:
    """Payload layout of every stream of the array, by stream name."""
    a_shape, w_shape, acc_shape = _shapes(spec)
    return {
        "i": data.StructLayout({
            "a": data.ArrayLayout(a_shape, spec.rows * spec.depth),
            "w": data.ArrayLayout(w_shape, spec.cols * spec.depth),
            "last": 1,
        }),
        "o": data.StructLayout({"c": data.ArrayLayout(acc_shape, spec.cols), "last": 1}),
    }


def popcount(bits: Sequence[Value]) -> Value:
    """The number of ones among ``bits``, by a balanced tree of adders."""
    vals = list(bits)
    if not vals:
        return Value.cast(0)
    while len(vals) > 1:
        nxt = [vals[k] + vals[k + 1] for k in range(0, len(vals) - 1, 2)]
        if len(vals) % 2:
            nxt.append(vals[-1])
        vals = nxt
    return vals[0]


def tree_sum(values: Sequence[Value]) -> Value:
    """The sum of ``values`` by a balanced tree of adders (widths grow as needed)."""
    return popcount(values)


def const_terms(x: Value, k: int) -> tuple[list[Value], list[Value]]:
    """``k * x`` as terms to add and terms to subtract, for the constants the engines use
    (``1``, ``-1``, ``2**n - 1``, ``1 - 2**n``): shifts only, never a multiplier."""
    if k == 1:
        return [x], []
    if k == -1:
        return [], [x]
    n = (abs(k) + 1).bit_length() - 1
    if k == (1 << n) - 1:
        return [x << n], [x]
    if k == 1 - (1 << n):
        return [x], [x << n]
    raise ValueError(f"const_terms: unsupported constant {k!r}")


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
    transfers this cycle), ``begin`` (the first step of a beat: step and first).
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
        self.shift = Signal()
        self.done = Signal()
        self.begin = Signal()
        self._regs: list[list[tuple[Signal, ...]]] = [[()] * cols for _ in range(rows)]
        self._control()

    def _control(self) -> None:
        m, comp = self.m, self.comp
        loaded = Signal()  # a beat is in the stage registers and being worked on
        closing = Signal()  # the fold's last beat has been taken
        draining = Signal()
        orow = Signal(range(max(self.rows, 2)))
        last_step = Signal()
        m.d.comb += [
            last_step.eq(loaded & (self.t == self.steps - 1)),
            self.step.eq(loaded),
            self.first.eq(self.t == 0),
            self.begin.eq(self.step & self.first),
            comp.i.ready.eq(~draining & ~closing & (~loaded | last_step)),
            self.accept.eq(comp.i.valid & comp.i.ready),
        ]
        with m.If(self.accept):
            m.d.sync += [loaded.eq(1), closing.eq(comp.i.payload.last), comp.busy.eq(1)]
        with m.Elif(last_step):
            m.d.sync += loaded.eq(0)
        m.d.comb += self.t_next.eq(Mux(loaded, Mux(last_step, 0, self.t + 1), self.t))
        m.d.sync += self.t.eq(self.t_next)
        with m.If(last_step & closing):
            m.d.sync += draining.eq(1)
        m.d.comb += [
            comp.o.valid.eq(draining),
            comp.o.payload.last.eq(orow == self.rows - 1),
            self.shift.eq(draining & comp.o.ready),
            self.done.eq(self.shift & (orow == self.rows - 1)),
        ]
        with m.If(self.shift):
            m.d.sync += orow.eq(orow + 1)
        with m.If(self.done):
            m.d.sync += [orow.eq(0), draining.eq(0), closing.eq(0), comp.busy.eq(0)]

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
        for r in range(self.rows):
            for c in range(self.cols):
                for k, reg in enumerate(self._regs[r][c]):
                    below = self._regs[r + 1][c][k] if r + 1 < self.rows else 0
                    with m.If(self.shift):
                        m.d.sync += reg.eq(below)
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


class BitplaneArray(wiring.Component):
    """A ``spec.rows`` x ``spec.cols`` bit-plane engine; see the module docstring."""

    def __init__(self, spec: BitplaneSpec):
        if not isinstance(spec, BitplaneSpec):
            raise TypeError(f"spec must be a BitplaneSpec, not {spec!r}")
        self.spec = spec
        layouts = stream_layouts(spec)
        super().__init__({
            "i": In(stream.Signature(layouts["i"])),
            "o": Out(stream.Signature(layouts["o"])),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        spec = self.spec
        R, C, D = spec.rows, spec.cols, spec.depth
        ab, wb = spec.a_bits, spec.w_bits
        bipolar = spec.encoding == "bipolar"
        m = Module()

        width = spec.acc_bits + (1 if bipolar else 0)
        x_max = D * ((1 << ab) - 1) * ((1 << wb) - 1)  # |p| bound: all pairs at full count
        p_shape = Shape.cast(range(0, x_max + 1) if bipolar else range(-x_max, x_max + 1))
        core = ShiftAddCore(m, self, rows=R, cols=C, steps=ab * wb, acc_width=width,
                            p_shape=p_shape, carry_save=spec.carry_save)

        # Stage registers: the raw bits of the beat's lanes. Bipolar reads a signed operand
        # in offset binary (sign bit inverted) so that every plane is a {-1, +1} plane.
        flip_a = (1 << (ab - 1)) if bipolar and spec.signed else 0
        flip_w = (1 << (wb - 1)) if bipolar and spec.signed else 0
        a_reg = [Signal(ab, name=f"a_reg{n}") for n in range(R * D)]
        w_reg = [Signal(wb, name=f"w_reg{n}") for n in range(C * D)]
        with m.If(core.accept):
            m.d.sync += [a_reg[n].eq(self.i.payload.a[n].as_unsigned() ^ flip_a)
                         for n in range(R * D)]
            m.d.sync += [w_reg[n].eq(self.i.payload.w[n].as_unsigned() ^ flip_w)
                         for n in range(C * D)]

        # The schedule ROM: plane indices, doubling and sign of each step, read one cycle
        # ahead (at the next step index) into registers, so no decoding is on the PE path.
        sched = plane_schedule(ab, wb)
        i_sel = Signal(range(max(ab, 2)))
        j_sel = Signal(range(max(wb, 2)))
        dbl, neg = Signal(), Signal()
        with m.Switch(core.t_next):
            for t, (i, j, shift) in enumerate(sched):
                sign = spec.signed and not bipolar and ((i == ab - 1) != (j == wb - 1))
                with m.Case(t):
                    m.d.sync += [i_sel.eq(i), j_sel.eq(j), dbl.eq(shift), neg.eq(int(sign))]

        a_plane = [Signal(D, name=f"a_plane{r}") for r in range(R)]
        w_plane = [Signal(D, name=f"w_plane{c}") for c in range(C)]
        for r in range(R):
            planes = Array(Cat(a_reg[r * D + d][i] for d in range(D)) for i in range(ab))
            m.d.comb += a_plane[r].eq(planes[i_sel])
        for c in range(C):
            planes = Array(Cat(w_reg[c * D + d][j] for d in range(D)) for j in range(wb))
            m.d.comb += w_plane[c].eq(planes[j_sel])

        for r in range(R):
            for c in range(C):
                bits = Signal(D, name=f"bits_{r}_{c}")
                m.d.comb += bits.eq(~(a_plane[r] ^ w_plane[c]) if bipolar
                                    else a_plane[r] & w_plane[c])
                x = Signal(range(D + 1), name=f"x_{r}_{c}")
                m.d.comb += x.eq(popcount([bits[d] for d in range(D)]))
                core.pe(r, c, x, neg, dbl)

        if not bipolar:
            core.drain()
            return m

        # Bipolar-INT correction: 2*C = X - dw*sum_k A - da*sum_k W - L*kappa, applied once
        # per output. A taken beat's lane sums go into narrow registers; the first step adds
        # them, scaled by shifts, to row registers (with kappa per lane), which shift out
        # with their rows, and to column registers shared by the column, cleared after the
        # fold.
        da, dw = bipolar_offset(ab, spec.signed), bipolar_offset(wb, spec.signed)
        kappa = (((1 << ab) - 1) * ((1 << wb) - 1) + da * dw) // 2
        lanes_const = (kappa * D) % (1 << width)
        row_corr: list[Signal] = []
        for r in reversed(range(R)):
            s_a = self._lane_sum(m, [self.i.payload.a[r * D + d] for d in range(D)],
                                 core.accept, f"a_sum{r}")
            plus, minus = const_terms(s_a, dw)
            below = row_corr[0] if row_corr else 0
            row_corr.insert(0, core.row_register("row_corr", r, below, [*plus, lanes_const],
                                                 minus))
        col_corr = []
        for c in range(C):
            s_w = self._lane_sum(m, [self.i.payload.w[c * D + d] for d in range(D)],
                                 core.accept, f"w_sum{c}")
            col_corr.append(core.col_register("col_corr", c, *const_terms(s_w, da)))
        core.drain(col_corr=col_corr, row_corr=row_corr[0], drop_bits=1)
        return m

    @staticmethod
    def _lane_sum(m: Module, lanes: Sequence[Value], load: Value, name: str) -> Signal:
        """A register loaded with the sum of the beat's ``lanes`` when ``load`` is high."""
        total = tree_sum(lanes)
        reg = Signal(total.shape(), name=name)
        with m.If(load):
            m.d.sync += reg.eq(total)
        return reg


#: The component of this engine kind (see hw.generators).
COMPONENT = BitplaneArray
