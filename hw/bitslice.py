"""Bit-slice array generator: any operand precision on ``slice_bits``-wide PEs.

One :class:`Bitslice` component is elaborated from one :class:`hw.spec.BitsliceSpec`. All
streams follow ``amaranth.lib.stream`` rules (a beat transfers in a cycle where ``valid`` and
``ready`` are both high; ``valid`` never waits for ``ready``). Operand lanes are
``signed(bits)`` or ``unsigned(bits)`` per ``spec.signed``; accumulators are ``acc_bits`` wide
and wrap modulo ``2**acc_bits`` (two's complement when signed).

Organisation: broadcast rows and columns, like the 2D-Matrix. The array computes a
``rows`` x ``cols`` tile of ``C = A @ W`` over a reduction of any length K:

* ``i`` stream, one beat per reduction index k: ``a[r] = A[r, k]`` for every row r,
  ``w[c] = W[k, c]`` for every column c (full precision), ``last`` high on the beat of k = K-1.
  The beat is registered when it transfers; the array then works on it for
  ``a_slices * w_slices`` cycles (the first straight from the payload), with ``i.ready`` low
  until the beat's last slice cycle is over. A cycle without a valid beat between beats does
  nothing (a bubble).
* Slicing: operand x of ``n`` bits is cut into ``ceil(n/slice_bits)`` slices, slice i holding
  bits ``[i*slice_bits, (i+1)*slice_bits)``; the top slice is signed when ``signed``, the
  others unsigned, so ``x = sum_i slice_i * 2**(slice_bits*i)``. In slice cycle (i, j)
  (i over A slices outer, j over W slices inner) each row's edge selects slice i of its
  activation and each column's edge slice j of its weight (muxes shared by the row / column);
  every PE multiplies the two on a slice multiplier and adds the product, shifted by
  ``slice_bits * (i + j)`` (a shift decoded once for the array, selected per PE by AND-OR),
  into its accumulator. The sequencer keeps i and j one-hot, so slice selection and shift
  decoding are AND-OR gates. With ``csa_accumulate`` the accumulator is a sum and a carry
  word, updated through one 3:2 carry-save adder per cycle, and one CPA per output column
  adds them as the tile drains (no carry propagation in the loop).
* ``o`` stream, ``rows`` beats after the last slice cycle of the last beat: beat r carries
  ``c[j] = C[r, j]``; ``last`` marks beat ``rows - 1``. The tile shifts up one row per output
  beat (zeros enter at the bottom, clearing the accumulators for the next fold);
  back-pressure (``ready`` low) holds the drain.
* Timing: with every beat valid and ready,
  ``fold_cycles(K) = K * a_slices * w_slices + rows`` from the fold's first input transfer to
  its last output transfer, inclusive. ``i.ready`` is high again the cycle after the last
  output beat, so folds run back to back.

``skip_zero`` (OPT3): on the transfer cycle the array ORs, per slice position i, "slice i is
non-zero" over all rows; only those positions take their ``w_slices`` cycles (a priority
encoder walks the mask, lowest position first). A beat with no non-zero slice takes one cycle
and adds nothing. A beat thus takes ``max(1, nz * w_slices)`` cycles, nz = its non-zero slice
positions; :meth:`hw.spec.BitsliceSpec.fold_cycles` is the worst case (nz = a_slices).

``busy`` is high while a fold is in progress (from its first input beat to its last output).
"""

from __future__ import annotations

from typing import Any

from amaranth import Cat, Const, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.arith import Terms
from hw.hier import Block, place_stacked
from hw.spec.bitslice import BitsliceSpec
from hw.streams import (
    RowDrain,
    operand_shapes,
    signature_members,
    tile_lane_order,
    tile_layouts,
)

__all__ = ["COMPONENT", "Bitslice", "lane_order", "slices_of", "stream_layouts"]


def stream_layouts(spec: BitsliceSpec) -> dict[str, data.Layout]:
    """Payload layout of every stream of the array, by stream name."""
    return tile_layouts(spec, a_lanes=spec.rows, w_lanes=spec.cols, c_lanes=spec.cols)


def slices_of(x: Value, bits: int, slice_bits: int, is_signed: bool) -> list[Value]:
    """The slices of ``x`` (LSB first), each in one shape: the top one sign-extended when
    ``is_signed``, the lower ones zero-extended; ``x == sum(s_i << slice_bits*i)``."""
    n = -(-bits // slice_bits)
    if n == 1:
        return [x.as_signed() if is_signed else x.as_unsigned()]
    out = []
    for i in range(n):
        part = x[slice_bits * i:min(slice_bits * (i + 1), bits)]
        if not is_signed:
            out.append(part)
        elif i == n - 1:
            out.append(part.as_signed())
        else:
            out.append(Cat(part, Const(0, 1)).as_signed())
    return out


def _extend(v: Value, width: int) -> Value:
    """``v`` sign- or zero-extended (per its shape) to ``width`` bits, as raw bits."""
    v = Value.cast(v)
    pad = width - len(v)
    if pad <= 0:
        return v.as_unsigned()[:width]
    fill = v[-1].replicate(pad) if v.shape().signed else Const(0, pad)
    return Cat(v, fill)


class Bitslice(wiring.Component):
    """A ``spec.rows`` x ``spec.cols`` bit-slice array; see the module docstring."""

    def __init__(self, spec: BitsliceSpec):
        if not isinstance(spec, BitsliceSpec):
            raise TypeError(f"spec must be a BitsliceSpec, not {spec!r}")
        self.spec = spec
        super().__init__(signature_members(stream_layouts(spec)))

    def elaborate(self, platform):
        spec = self.spec
        R, C, S = spec.rows, spec.cols, spec.slice_bits
        Sa, Sw, P = spec.a_slices, spec.w_slices, spec.acc_bits
        a_shape, w_shape, acc_shape = operand_shapes(spec)
        slice_a_shape = (signed if spec.signed else unsigned)(
            spec.a_bits if Sa == 1 else S + spec.signed)
        slice_w_shape = (signed if spec.signed else unsigned)(
            spec.w_bits if Sw == 1 else S + spec.signed)
        m = Module()

        # -- operands: the payload on the transfer cycle, then the registered beat ----------
        # (selected by the registered ``inbeat``, so ``i.valid`` stays out of the data path;
        # outside a beat and its transfer cycle the selected values are ignored)
        inbeat = Signal()  # inside a beat, after its transfer cycle
        drain = RowDrain(m, self.o, R)
        draining = drain.active
        feed = Signal()  # the current beat transfers
        m.d.comb += [self.i.ready.eq(~inbeat & ~draining), feed.eq(self.i.valid & self.i.ready)]
        a_reg = [Signal(a_shape, name=f"a_reg{r}") for r in range(R)]
        w_reg = [Signal(w_shape, name=f"w_reg{c}") for c in range(C)]
        last_reg = Signal()
        a_src = [Signal(a_shape, name=f"a_src{r}") for r in range(R)]
        w_src = [Signal(w_shape, name=f"w_src{c}") for c in range(C)]
        last_src = Signal()
        m.d.comb += [a_src[r].eq(Mux(inbeat, a_reg[r], self.i.payload.a[r])) for r in range(R)]
        m.d.comb += [w_src[c].eq(Mux(inbeat, w_reg[c], self.i.payload.w[c])) for c in range(C)]
        m.d.comb += last_src.eq(Mux(inbeat, last_reg, self.i.payload.last))
        with m.If(feed):
            m.d.sync += [a_reg[r].eq(self.i.payload.a[r]) for r in range(R)]
            m.d.sync += [w_reg[c].eq(self.i.payload.w[c]) for c in range(C)]
            m.d.sync += last_reg.eq(self.i.payload.last)
        a_slices = [slices_of(a_src[r], spec.a_bits, S, spec.signed) for r in range(R)]
        w_slices = [slices_of(w_src[c], spec.w_bits, S, spec.signed) for c in range(C)]

        # -- slice sequencer: one-hot positions (i over A slices, j over W slices) ----------
        i_oh = Signal(Sa)  # activation slice of this cycle
        j_oh = Signal(Sw)  # weight slice of this cycle
        i_reg = Signal(Sa)  # without skip_zero
        j_reg = Signal(Sw)
        work = Signal()  # the PEs add a slice product this cycle
        beat_done = Signal()  # this cycle ends the beat
        m.d.comb += j_oh.eq(Mux(inbeat, j_reg, 1))
        j_end = j_oh[Sw - 1]
        with m.If(work):
            m.d.sync += j_reg.eq(Mux(j_end, 1, j_oh << 1))
        if spec.skip_zero:
            mask = Signal(Sa)  # slice positions still to do, the current one included
            rem_reg = Signal(Sa)
            nonzero = Signal(Sa)
            m.d.comb += nonzero.eq(Cat(*(
                Cat(*(a_slices[r][i] != 0 for r in range(R))).any() for i in range(Sa))))
            m.d.comb += mask.eq(Mux(inbeat, rem_reg, nonzero))
            m.d.comb += i_oh.eq(mask & (~mask + 1))  # the lowest position of the mask
            rest = Signal(Sa)  # the mask without it
            m.d.comb += rest.eq(mask & ~i_oh)
            m.d.comb += [
                work.eq((feed | inbeat) & mask.any()),
                beat_done.eq((feed | inbeat) & (~mask.any() | (j_end & ~rest.any()))),
            ]
            with m.If(work):
                m.d.sync += rem_reg.eq(Mux(j_end, rest, mask))
        else:
            m.d.comb += i_oh.eq(Mux(inbeat, i_reg, 1))
            m.d.comb += [
                work.eq(feed | inbeat),
                beat_done.eq((feed | inbeat) & i_oh[Sa - 1] & j_end),
            ]
            with m.If(work):
                m.d.sync += i_reg.eq(Mux(j_end, i_oh << 1, i_oh))
        with m.If(beat_done):
            m.d.sync += inbeat.eq(0)
        with m.Elif(feed):
            m.d.sync += inbeat.eq(1)

        # Row / column edges: the slice of this cycle (AND-OR on the one-hot position), shared
        # by the PEs of the row / column.
        def pick(shape: Shape, onehot: Value, options: list[Value], name: str) -> Signal:
            sig = Signal(shape, name=name)
            width = Shape.cast(shape).width
            wide = [_extend(opt, width) for opt in options]
            m.d.comb += sig.eq(Cat(*(
                Cat(*(opt[b] & onehot[n] for n, opt in enumerate(wide))).any()
                for b in range(width))))
            return sig

        a_sl = [pick(slice_a_shape, i_oh, a_slices[r], f"a_slice{r}") for r in range(R)]
        w_sl = [pick(slice_w_shape, j_oh, w_slices[c], f"w_slice{c}") for c in range(C)]

        # The shift of this cycle, slice_bits * (i + j): one-hot over the levels, decoded once.
        levels = Sa + Sw - 1
        level_oh = Signal(levels)
        m.d.comb += level_oh.eq(Cat(*(
            Cat(*(i_oh[i] & j_oh[lv - i] for i in range(Sa) if 0 <= lv - i < Sw)).any()
            for lv in range(levels))))
        prod_shape = Shape.cast((a_sl[0] * w_sl[0]).shape())
        n_prod = prod_shape.width
        selects: dict[frozenset[int], Value] = {}

        def select(group: frozenset[int]) -> Value:
            """High when the level is one of ``group`` (shared by every PE)."""
            if len(group) == levels:
                return Const(1, 1)
            if group not in selects:
                sig = Signal(name=f"lvl_{'_'.join(map(str, sorted(group)))}")
                m.d.comb += sig.eq(Cat(*(level_oh[lv] for lv in sorted(group))).any())
                selects[group] = sig
            return selects[group]

        # Per accumulator bit: which product bit (or the sign, or nothing) each level puts
        # there; one AND-OR per distinct source.
        bit_sources: list[dict[int | str, frozenset[int]]] = []
        for b in range(P):
            src: dict[int | str, set[int]] = {}
            for lv in range(levels):
                off = b - S * lv
                if off < 0:
                    continue
                key: int | str = off if off < n_prod else ("sign" if prod_shape.signed else "")
                if key != "":
                    src.setdefault(key, set()).add(lv)
            bit_sources.append({k: frozenset(v) for k, v in src.items()})

        # The level selects the PEs read: one signal per distinct group of levels, shared.
        groups = sorted({g for srcs in bit_sources for g in srcs.values() if len(g) != levels},
                        key=lambda g: sorted(g))
        lvl = Cat(*(select(g) for g in groups))

        # The PEs: one block (hw.hier), placed rows x cols times, fed their row's and
        # column's slice and the level selects; accumulators shift up a row with ``shift``
        # (the drain), from the PE below through named signals (placed later).
        shift = drain.shift  # the tile moves one row towards the output
        words = 2 if spec.csa_accumulate else 1
        word_shape = P if spec.csa_accumulate else acc_shape
        pe = self._pe(slice_a_shape, slice_w_shape, bit_sources, groups, levels)
        below = [[[Signal(word_shape, name=f"acc_{r}_{c}_{k}") for k in range(words)]
                  for c in range(C)] if r else [] for r in range(R)]
        chain = [(f"below{k}", f"acc{k}") for k in range(words)]
        outs: list[list[dict]] = [[{} for _ in range(C)] for _ in range(R)]
        for r in range(R):
            for c in range(C):
                ports: dict = {"a": a_sl[r], "w": w_sl[c], "work": work, "shift": shift}
                if groups:
                    ports["lvl"] = lvl
                outs[r][c] = place_stacked(m, f"pe_{r}_{c}", pe, chain,
                                           below[r + 1][c] if r + 1 < R else None,
                                           below[r][c] if r else None, **ports)
        top = [[outs[0][c][f"acc{k}"] for k in range(words)] for c in range(C)]
        if spec.csa_accumulate:  # one carry-propagate adder per output column, at the drain
            m.d.comb += [self.o.payload.c[c].eq((top[c][0] + top[c][1])[:P]) for c in range(C)]
        else:
            m.d.comb += [self.o.payload.c[c].eq(top[c][0]) for c in range(C)]

        # -- control -----------------------------------------------------------------------
        with m.If(feed):
            m.d.sync += self.busy.eq(1)
        m.d.comb += drain.start.eq(beat_done & last_src)
        with m.If(drain.done):
            m.d.sync += self.busy.eq(0)
        return m


    def _pe(self, a_shape: Shape, w_shape: Shape,
            bit_sources: list[dict[int | str, frozenset[int]]],
            groups: list[frozenset[int]], levels: int) -> Block:
        """The PE (placed once per array position, :mod:`hw.hier`). Ports: this cycle's
        activation slice ``a`` (its row's) and weight slice ``w`` (its column's), ``lvl`` the
        shared level selects (one bit per group of ``groups``: the shift levels that put one
        product bit on one accumulator bit, ``bit_sources``); ``work`` adds the shifted
        product into the accumulator words ``acc<k>`` (one word, or a sum and a carry word
        through one 3:2 carry-save adder), ``shift`` loads them from ``below<k>`` (the PE
        below's, zero under the last row)."""
        spec = self.spec
        P = spec.acc_bits
        _, _, acc_shape = operand_shapes(spec)
        words = 2 if spec.csa_accumulate else 1
        word_shape = P if spec.csa_accumulate else acc_shape
        prod_shape = Shape.cast((Signal(a_shape) * Signal(w_shape)).shape())
        members: dict = {"a": In(a_shape), "w": In(w_shape), "work": In(1), "shift": In(1)}
        if groups:
            members["lvl"] = In(len(groups))
        members.update({f"below{k}": In(word_shape) for k in range(words)})
        members.update({f"acc{k}": Out(word_shape) for k in range(words)})
        index = {g: n for n, g in enumerate(groups)}

        def build(m: Module, pe: Any) -> None:
            def select(group: frozenset[int]) -> Value:
                return Const(1, 1) if len(group) == levels else pe.lvl[index[group]]

            prod = Signal(prod_shape, name="sp")
            m.d.comb += prod.eq(pe.a * pe.w)
            bits = []
            for srcs in bit_sources:
                terms = [(prod[-1] if k == "sign" else prod[k]) & select(g)
                         for k, g in srcs.items()]
                bits.append(Cat(*terms).any() if len(terms) > 1 else
                            terms[0] if terms else Const(0, 1))
            shifted = Signal(P, name="shifted")
            m.d.comb += shifted.eq(Cat(*bits))
            acc = [getattr(pe, f"acc{k}") for k in range(words)]
            if spec.csa_accumulate:
                # One 3:2 carry-save adder per PE: no carry propagation in the loop.
                tree = Terms(m, P, "pe")
                for word in (shifted, *acc):
                    tree.add_word(word)
                nxt = list(tree.compress())
            else:
                nxt = [acc[0] + shifted]
            with m.If(pe.work):
                m.d.sync += [reg.eq(v) for reg, v in zip(acc, nxt, strict=True)]
            with m.If(pe.shift):
                m.d.sync += [reg.eq(getattr(pe, f"below{k}")) for k, reg in enumerate(acc)]

        return Block("pe", (spec, a_shape, w_shape), members, build)


def lane_order(spec: BitsliceSpec) -> dict[str, dict[str, str]]:
    """What each payload lane holds, by stream and field (for the manifest)."""
    return tile_lane_order()


#: The component of this engine kind (see hw.generators).
COMPONENT = Bitslice
