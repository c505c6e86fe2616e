"""LUT engine generator (LUT Tensor Core): GEMM by activation tables indexed by weight bits.

One :class:`LutArray` component is elaborated from one :class:`hw.spec.LutSpec`. All streams
follow ``amaranth.lib.stream`` rules (a beat transfers in a cycle where ``valid`` and
``ready`` are both high; ``valid`` never waits for ``ready``). Operand lanes are
``signed(bits)`` or ``unsigned(bits)`` per ``spec.signed``; results are ``acc_bits`` wide and
wrap modulo ``2**acc_bits`` (two's complement when signed).

The array computes a ``rows`` x ``cols`` tile of ``C = A @ W`` over a reduction of any
length K (output stationary: PE (r, c) owns ``C[r, c]``); no PE has a multiplier:

* ``i`` stream, one beat per group of ``group`` reduction indices ``k0 .. k0+group-1``:
  lane ``r*group + g`` of ``a`` carries ``A[r, k0 + g]``, lane ``c*group + g`` of ``w``
  carries ``W[k0 + g, c]``; ``last`` high on the fold's final beat. Lanes past the end of K
  must hold a zero in ``a`` (the planner zeroes them; ``w`` there may be anything).
* Table precompute, in the cycle a beat is taken: for every row r, a network of adders
  builds the row's table into a table register: ``T_r[x] = sum_{g: x_g = 1} A[r, k0+g]``
  (``2**group`` entries, entry 0 the constant 0) or, with ``symmetric``, the +-1 table
  ``T_r[x] = sum_g (A if x_g else -A)[r, k0+g]`` for the ``2**(group-1)`` indices whose top
  bit is clear. The network meets in the middle (the sums of each half of the group,
  recursively, then one adder per entry): ``ceil(log2(group))`` adders deep, about one
  adder per entry. The weights go into a shift register, one per weight lane.
* Then ``w_bits`` plane steps, most significant plane first. In each, column c's index is
  the current bit of its ``group`` weight lanes (bit g from lane g); every PE (r, c) reads
  ``T_r`` at its column's index (symmetric: an index with the top bit set reads the
  complemented index and negates) and updates its group register ``p = 2*p +- T`` (the sign
  plane of signed weights subtracts). The table of a row is shared by all ``cols`` PEs of
  the row (the elongated tile). The first step of the next group adds ``p`` into the
  accumulator. ``i.ready`` is high in the last step of a group, so the next group's tables
  are built while the current group finishes: one beat per ``w_bits`` cycles.
* Symmetric tables make the PEs sum ``2*C - Kw*sum_k A`` (``Kw = 2**w_bits - 1``
  unsigned, ``-1`` signed). Entry 0 of a symmetric table is minus the group's activation
  sum, so a per-row register (shared by the row) gathers ``Kw * T_r[0]`` at the first step
  of every group, and the output subtracts it and halves (accumulators are
  ``acc_bits + 1`` wide, the halving exact).
* ``o`` stream, ``rows`` beats after the last plane step: beat r carries ``c[j] = C[r, j]``
  (accumulator + group register + correction, one carry-propagate add per output);
  ``last`` marks beat ``rows - 1``. Back-pressure holds the drain.
* Timing: with every beat valid and ready, the last output transfers
  ``fold_cycles(K) - 1 = ceil(K/group)*w_bits + rows`` cycles after the first input beat
  (``fold_cycles(K) = 1 + ceil(K/group)*w_bits + rows``). ``i.ready`` is high again from
  the cycle after the last output beat, so folds run back to back.

``busy`` is high while a fold is in progress (from its first input beat to its last output).
``carry_save`` keeps group registers and accumulators as carry-save pairs
(:class:`hw.shiftadd.ShiftAddCore`).
"""

from __future__ import annotations

from typing import Any

from amaranth import Array, Cat, Const, Module, Shape, Signal, Value
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.arith import const_terms
from hw.hier import Block
from hw.shiftadd import ShiftAddCore
from hw.spec.lut import LutSpec
from hw.streams import operand_shapes, signature_members, tile_lane_order, tile_layouts

__all__ = ["COMPONENT", "LutArray", "lane_order", "stream_layouts"]


def stream_layouts(spec: LutSpec) -> dict[str, data.Layout]:
    """Payload layout of every stream of the array, by stream name."""
    return tile_layouts(spec, a_lanes=spec.rows * spec.group, w_lanes=spec.cols * spec.group,
                        c_lanes=spec.cols)


def table_range(spec: LutSpec) -> tuple[int, int]:
    """Inclusive range of a table entry."""
    a_lo = -(1 << (spec.a_bits - 1)) if spec.signed else 0
    a_hi = (1 << (spec.a_bits - 1)) - 1 if spec.signed else (1 << spec.a_bits) - 1
    if spec.symmetric:
        mag = spec.group * max(-a_lo, a_hi)
        return -mag, mag
    return spec.group * a_lo, spec.group * a_hi


def _operand_range(bits: int, is_signed: bool) -> tuple[int, int]:
    if is_signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def _subset_sums(m: Module, terms, name: str) -> list[Value]:
    """Every signed sum ``sum_t c_t * v_t`` with ``c_t`` one of each term's coefficients,
    indexed by one bit per two-way term (LSB first; bit set = the second coefficient).

    Meet in the middle: the sums of each half of the terms are built recursively and every
    entry is one adder from a pair of half entries, so a table of ``group`` terms is
    ``ceil(log2(group))`` adders deep (plus the leaves' negations) and about one adder per
    entry. ``terms``: ``(value, coefficients, lo, hi)`` with the value's range ``lo..hi``.
    """
    out, _ = _subset_sums_ranged(m, list(terms), name)
    return out


def _subset_sums_ranged(m: Module, terms, name: str):
    if len(terms) == 1:
        v, coeffs, lo, hi = terms[0]
        vals, ranges = [], []
        for c in coeffs:
            if c == 0:
                vals.append(Const(0, 1))
                ranges.append((0, 0))
            else:
                vals.append(v if c == 1 else -v)
                ranges.append((lo, hi) if c == 1 else (-hi, -lo))
        return vals, ranges
    h = len(terms) // 2
    lo_vals, lo_ranges = _subset_sums_ranged(m, terms[:h], name + "l")
    hi_vals, hi_ranges = _subset_sums_ranged(m, terms[h:], name + "h")
    vals, ranges = [], []
    for xh, (hv, hr) in enumerate(zip(hi_vals, hi_ranges, strict=True)):
        for xl, (lv, lr) in enumerate(zip(lo_vals, lo_ranges, strict=True)):
            rng = (lr[0] + hr[0], lr[1] + hr[1])
            if isinstance(lv, Const) and isinstance(hv, Const):
                vals.append(Const(0, 1))
            else:
                sig = Signal(Shape.cast(range(rng[0], rng[1] + 1)),
                             name=f"{name}_{xh * len(lo_vals) + xl}")
                m.d.comb += sig.eq(lv + hv)
                vals.append(sig)
            ranges.append(rng)
    return vals, ranges


class LutArray(wiring.Component):
    """A ``spec.rows`` x ``spec.cols`` LUT engine; see the module docstring for protocol."""

    def __init__(self, spec: LutSpec):
        if not isinstance(spec, LutSpec):
            raise TypeError(f"spec must be a LutSpec, not {spec!r}")
        self.spec = spec
        super().__init__(signature_members(stream_layouts(spec)))

    def _row_block(self, core: ShiftAddCore, entry: Shape) -> tuple[Block, list[int]]:
        """A row's table unit (:mod:`hw.hier`), placed once per row (:meth:`ShiftAddCore.row`):
        ports ``a<g>`` (the row's activations of the beat), ``load`` (take the beat), out
        ``t<x>``: the table register's entries, built from the beat when ``load`` is high;
        with symmetric tables also the row's correction register (``corr``, ``Kw * T[0]``
        gathered at the first step of every group, :meth:`ShiftAddCore.row_register`). Also
        the indices of the entries that are registers (the all-zero entry of a full table is
        a constant, no port)."""
        spec, G = self.spec, self.spec.group
        a_shape, _, _ = operand_shapes(spec)
        a_lo, a_hi = _operand_range(spec.a_bits, spec.signed)
        if spec.symmetric:  # +-a_g for g < G-1 (index bit g), the top term fixed at -a
            coeffs = [(-1, 1)] * (G - 1) + [(-1,)]
        else:  # 0 or a_g (index bit g)
            coeffs = [(0, 1)] * G
        n_entries = 1 << (G - 1 if spec.symmetric else G)
        regs = list(range(n_entries)) if spec.symmetric else list(range(1, n_entries))
        members: dict[str, Any] = {f"a{g}": In(a_shape) for g in range(G)}
        members["load"] = In(1)
        members.update({f"t{x}": Out(entry) for x in regs})
        if spec.symmetric:
            members.update(core.row_members())
        # symmetric: 2*C = sum(PE) + Kw * sum_k A, and entry 0 is minus the group's sum
        kw = -1 if spec.signed else (1 << spec.w_bits) - 1

        def build(m: Module, unit: Any) -> None:
            terms = [(getattr(unit, f"a{g}"), c, a_lo, a_hi) for g, c in enumerate(coeffs)]
            calc = _subset_sums(m, terms, "tcalc")
            for x, value in enumerate(calc):
                if isinstance(value, Const):  # the all-zero entry of a full table
                    continue
                with m.If(unit.load):
                    m.d.sync += getattr(unit, f"t{x}").eq(value)
            if spec.symmetric:  # from flip-flops (the table's entry) by shifts and adds
                core.row_register(m, unit, *const_terms(unit.t0, kw))

        return Block("row", (spec, core.width), members, build), regs

    def _col_block(self) -> Block:
        """A column's weight unit (:mod:`hw.hier`), placed once per column
        (:meth:`ShiftAddCore.col`): ports ``w<g>`` (the column's weights of the beat),
        ``load`` (take the beat), ``step`` (the PEs work: next plane), ``first`` (the sign
        plane, signed symmetric tables); out the column's table index of the current plane,
        ``sel`` (when the table has more than one entry) and with symmetric tables ``neg``
        (read the complemented index and negate)."""
        spec, G, wb = self.spec, self.spec.group, self.spec.w_bits
        _, w_shape, _ = operand_shapes(spec)
        n_entries = 1 << (G - 1 if spec.symmetric else G)
        members: dict[str, Any] = {f"w{g}": In(w_shape) for g in range(G)}
        members.update(load=In(1), step=In(1))
        if spec.symmetric and spec.signed:
            members["first"] = In(1)
        if n_entries > 1:
            members["sel"] = Out(G - 1 if spec.symmetric else G)
        if spec.symmetric:
            members["neg"] = Out(1)

        def build(m: Module, col: Any) -> None:
            # weight shift registers: the most significant bit is the current plane
            w_sr = [Signal(wb, name=f"w_sr{g}") for g in range(G)]
            with m.If(col.load):
                m.d.sync += [w_sr[g].eq(getattr(col, f"w{g}").as_unsigned()) for g in range(G)]
            with m.Elif(col.step):
                m.d.sync += [w_sr[g].eq(w_sr[g] << 1) for g in range(G)]
            index = Signal(G, name="index")
            m.d.comb += index.eq(Cat(w_sr[g][wb - 1] for g in range(G)))
            if not spec.symmetric:
                m.d.comb += col.sel.eq(index)
                return
            # T[~x] = -T[x]: read the complement of an index whose top bit is set; the sign
            # plane (signed weights: the first, most significant) counts negatively
            top = index[G - 1]
            if n_entries > 1:
                m.d.comb += col.sel.eq(index[:G - 1] ^ top.replicate(G - 1))
            m.d.comb += col.neg.eq(top ^ col.first if spec.signed else top)

        return Block("col", spec, members, build)

    def _pe_front(self, core: ShiftAddCore, entry: Shape, regs: list[int]) -> Block:
        """The PE block: ports ``t<x>`` (its row's table), ``sel`` (its column's index, when
        the table has more than one entry), ``neg`` (the column's sign, symmetric tables);
        it reads the table at ``sel`` and adds the entry, negated with ``neg`` (full
        tables: in the sign plane of signed weights), doubling every step."""
        spec = self.spec
        G = spec.group
        members: dict[str, Any] = {f"t{x}": In(entry) for x in regs}
        n_entries = len(regs) + (0 if spec.symmetric else 1)
        if n_entries > 1:
            members["sel"] = In(G - 1 if spec.symmetric else G)
        if spec.symmetric:
            members["neg"] = In(1)

        def front(m: Module, pe: Any) -> tuple[Value, Value, Value]:
            table = [getattr(pe, f"t{x}") if x in regs else Const(0, 1)
                     for x in range(n_entries)]
            value = Signal(entry, name="lookup")
            m.d.comb += value.eq(Array(table)[pe.sel] if n_entries > 1 else table[0])
            # the sign plane (signed weights: the first step's) counts negatively
            neg = pe.neg if spec.symmetric else pe.first if spec.signed else Const(0, 1)
            return value, neg, Const(1, 1)

        return core.pe_block(spec, members, front)

    def elaborate(self, platform):
        spec = self.spec
        R, C, G, wb = spec.rows, spec.cols, spec.group, spec.w_bits
        m = Module()

        lo, hi = table_range(spec)
        entry = Shape.cast(range(lo, hi + 1))
        mag = max(-lo, hi) * ((1 << wb) - 1)  # |p| bound: every plane at the largest entry
        width = spec.acc_bits + (1 if spec.symmetric else 0)
        core = ShiftAddCore(m, self, rows=R, cols=C, steps=wb, acc_width=width,
                            p_shape=Shape.cast(range(-mag, mag + 1)),
                            carry_save=spec.carry_save)

        # The rows' table units and the columns' weight units: one block each (hw.hier),
        # placed once per row and once per column.
        unit, regs = self._row_block(core, entry)
        tables: list[dict[str, Value]] = []
        for r in range(R):
            outs = core.row(r, unit, load=core.accept,
                            **{f"a{g}": self.i.payload.a[r * G + g] for g in range(G)})
            tables.append({f"t{x}": outs[f"t{x}"] for x in regs} | {"corr": outs.get("corr")})
        col = self._col_block()
        index: list[dict[str, Value]] = []
        for c in range(C):
            ports: dict[str, Any] = {f"w{g}": self.i.payload.w[c * G + g] for g in range(G)}
            if "first" in col.members:
                ports["first"] = core.first
            outs = core.col(c, col, load=core.accept, step=core.step, **ports)
            index.append({n: outs[n] for n in ("sel", "neg") if n in col.members})

        # The PEs: one block (hw.hier), placed rows x cols times, each fed its row's table
        # and its column's index and sign.
        pe = self._pe_front(core, entry, regs)
        for c in range(C):
            for r in range(R):
                core.pe(r, c, pe, **{f"t{x}": tables[r][f"t{x}"] for x in regs}, **index[c])

        # Symmetric tables: 2*C = sum(PE) + Kw * sum_k A, the rows' correction registers
        # (row 0's, as the rows shift out) subtracted at the output.
        if spec.symmetric:
            core.drain(row_corr=tables[0]["corr"], drop_bits=1)
        else:
            core.drain()
        return m


def lane_order(spec: LutSpec) -> dict[str, dict[str, str]]:
    """What each payload lane holds, by stream and field (for the manifest)."""
    return tile_lane_order(
        a="lane r*group + g: A[m0 + r, k0 + g] in the beat of reduction group k0",
        w="lane c*group + g: W[k0 + g, n0 + c] in the beat of reduction group k0")


#: The component of this engine kind (see hw.generators).
COMPONENT = LutArray
