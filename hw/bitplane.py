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

:class:`hw.shiftadd.ShiftAddCore` (the control, the group registers, the accumulators and
the drain) is shared with the LUT engine (:mod:`hw.lut`), which differs only in what a PE adds
per step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from amaranth import Array, Cat, Module, Shape, Signal, Value
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.arith import const_terms, popcount, tree_sum
from hw.hier import Block
from hw.shiftadd import ShiftAddCore
from hw.spec.bitplane import BitplaneSpec, bipolar_offset, plane_schedule
from hw.streams import operand_shapes, signature_members, tile_lane_order, tile_layouts

__all__ = ["COMPONENT", "BitplaneArray", "lane_order", "stream_layouts"]


def stream_layouts(spec: BitplaneSpec) -> dict[str, data.Layout]:
    """Payload layout of every stream of the array, by stream name."""
    return tile_layouts(spec, a_lanes=spec.rows * spec.depth, w_lanes=spec.cols * spec.depth,
                        c_lanes=spec.cols)


class BitplaneArray(wiring.Component):
    """A ``spec.rows`` x ``spec.cols`` bit-plane engine; see the module docstring."""

    def __init__(self, spec: BitplaneSpec):
        if not isinstance(spec, BitplaneSpec):
            raise TypeError(f"spec must be a BitplaneSpec, not {spec!r}")
        self.spec = spec
        super().__init__(signature_members(stream_layouts(spec)))

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

        # The schedule ROM: plane indices, doubling and sign of each step, read one cycle
        # ahead (at the next step index) into registers, so no decoding is on the PE path.
        sched = plane_schedule(ab, wb)
        i_sel = Signal(range(max(ab, 2)))
        j_sel = Signal(range(max(wb, 2)))
        dbl, neg = Signal(name="dbl"), Signal(name="neg")
        with m.Switch(core.t_next):
            for t, (i, j, shift) in enumerate(sched):
                sign = spec.signed and not bipolar and ((i == ab - 1) != (j == wb - 1))
                with m.Case(t):
                    m.d.sync += [i_sel.eq(i), j_sel.eq(j), dbl.eq(shift), neg.eq(int(sign))]

        # The rows' and the columns' operand units: one block each (hw.hier), placed once per
        # row and once per column, each giving its current plane (and its correction).
        row, col = self._operand_block(core, "a"), self._operand_block(core, "w")
        rows = [core.row(r, row, load=core.accept, sel=i_sel,
                         **{f"a{d}": self.i.payload.a[r * D + d] for d in range(D)})
                for r in range(R)]
        cols = [core.col(c, col, load=core.accept, sel=j_sel,
                         **{f"w{d}": self.i.payload.w[c * D + d] for d in range(D)})
                for c in range(C)]

        # The PEs: one block (hw.hier), placed rows x cols times, each fed its row's and its
        # column's current plane.
        pe = self._pe(core)
        for r in range(R):
            for c in range(C):
                core.pe(r, c, pe, a=rows[r]["plane"], w=cols[c]["plane"], neg=neg, dbl=dbl)

        if not bipolar:
            core.drain()
        else:  # row 0's correction (the rows shift out) and each column's, at the output
            core.drain(col_corr=[x["corr"] for x in cols], row_corr=rows[0]["corr"],
                       drop_bits=1)
        return m

    def _operand_block(self, core: ShiftAddCore, side: str) -> Block:
        """A row's (``side`` "a") or a column's ("w") operand unit (:mod:`hw.hier`), placed
        once per row (:meth:`ShiftAddCore.row`) or column (:meth:`ShiftAddCore.col`): ports
        ``<side><d>`` (its ``depth`` lanes of the beat), ``load`` (take the beat), ``sel``
        (the step's plane index); out ``plane``, the selected bit of every lane. The stage
        registers hold the raw bits of the lanes; bipolar reads a signed operand in offset
        binary (sign bit inverted) so that every plane is a {-1, +1} plane.

        Bipolar-INT correction: ``2*C = X - dw*sum_k A - da*sum_k W - L*kappa``, applied once
        per output. A taken beat's lane sum goes into a narrow register; the first step adds
        it, scaled by shifts, to the unit's ``corr`` register: a row's (with kappa per lane,
        :meth:`ShiftAddCore.row_register`) shifts out with its row, a column's
        (:meth:`ShiftAddCore.col_register`) is cleared after the fold."""
        spec, D = self.spec, self.spec.depth
        ab, wb = spec.a_bits, spec.w_bits
        bipolar = spec.encoding == "bipolar"
        bits = ab if side == "a" else wb
        shape = operand_shapes(spec)[0 if side == "a" else 1]
        flip = (1 << (bits - 1)) if bipolar and spec.signed else 0
        members: dict[str, Any] = {f"{side}{d}": In(shape) for d in range(D)}
        members.update(load=In(1), sel=In(range(max(bits, 2))), plane=Out(D))
        if bipolar:
            members.update(core.row_members() if side == "a" else core.col_members())
        da, dw = bipolar_offset(ab, spec.signed), bipolar_offset(wb, spec.signed)
        kappa = (((1 << ab) - 1) * ((1 << wb) - 1) + da * dw) // 2
        lanes_const = (kappa * D) % (1 << core.width)

        def build(m: Module, unit: Any) -> None:
            lanes = [getattr(unit, f"{side}{d}") for d in range(D)]
            reg = [Signal(bits, name=f"{side}_reg{d}") for d in range(D)]
            with m.If(unit.load):
                m.d.sync += [reg[d].eq(lanes[d].as_unsigned() ^ flip) for d in range(D)]
            planes = Array(Cat(reg[d][i] for d in range(D)) for i in range(bits))
            m.d.comb += unit.plane.eq(planes[unit.sel])
            if not bipolar:
                return
            total = self._lane_sum(m, lanes, unit.load, f"{side}_sum")
            if side == "a":
                plus, minus = const_terms(total, dw)
                core.row_register(m, unit, [*plus, lanes_const], minus)
            else:
                core.col_register(m, unit, *const_terms(total, da))

        return Block("row" if side == "a" else "col", (spec, core.width), members, build)

    def _pe(self, core: ShiftAddCore) -> Block:
        """The PE block: ports ``a`` and ``w`` (the row's and the column's current plane,
        ``depth`` bits), ``neg`` and ``dbl`` (the step's sign and doubling); it adds
        ``popcount(a op w)`` (``op`` AND, or XNOR for bipolar planes)."""
        D, bipolar = self.spec.depth, self.spec.encoding == "bipolar"
        members = {"a": In(D), "w": In(D), "neg": In(1), "dbl": In(1)}

        def front(m: Module, pe: Any) -> tuple[Value, Value, Value]:
            bits = Signal(D, name="bits")
            m.d.comb += bits.eq(~(pe.a ^ pe.w) if bipolar else pe.a & pe.w)
            x = Signal(range(D + 1), name="x")
            m.d.comb += x.eq(popcount([bits[d] for d in range(D)]))
            return x, pe.neg, pe.dbl

        return core.pe_block(self.spec, members, front)

    @staticmethod
    def _lane_sum(m: Module, lanes: Sequence[Value], load: Value, name: str) -> Signal:
        """A register loaded with the sum of the beat's ``lanes`` when ``load`` is high."""
        total = tree_sum(lanes)
        reg = Signal(total.shape(), name=name)
        with m.If(load):
            m.d.sync += reg.eq(total)
        return reg


def lane_order(spec: BitplaneSpec) -> dict[str, dict[str, str]]:
    """What each payload lane holds, by stream and field (for the manifest)."""
    return tile_lane_order(
        a="lane r*depth + d: A[m0 + r, k0 + d] in the beat of reduction block k0",
        w="lane c*depth + d: W[k0 + d, n0 + c] in the beat of reduction block k0")


#: The component of this engine kind (see hw.generators).
COMPONENT = BitplaneArray
