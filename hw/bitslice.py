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

from amaranth import Cat, Const, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring

from hw.arith import Terms
from hw.spec.bitslice import BitsliceSpec
from hw.streams import (
    RowDrain,
    operand_shapes,
    shift_rows,
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

        shift = drain.shift  # the tile moves one row towards the output
        if spec.csa_accumulate:
            s_reg = [[Signal(P, name=f"sum_{r}_{c}") for c in range(C)] for r in range(R)]
            c_reg = [[Signal(P, name=f"carry_{r}_{c}") for c in range(C)] for r in range(R)]
        else:
            acc = [[Signal(acc_shape, name=f"acc_{r}_{c}") for c in range(C)] for r in range(R)]
        for r in range(R):
            for c in range(C):
                prod = Signal(prod_shape, name=f"sp_{r}_{c}")
                m.d.comb += prod.eq(a_sl[r] * w_sl[c])
                bits = []
                for srcs in bit_sources:
                    terms = [(prod[-1] if k == "sign" else prod[k]) & select(g)
                             for k, g in srcs.items()]
                    bits.append(Cat(*terms).any() if len(terms) > 1 else
                                terms[0] if terms else Const(0, 1))
                shifted = Signal(P, name=f"shifted_{r}_{c}")
                m.d.comb += shifted.eq(Cat(*bits))
                if spec.csa_accumulate:
                    # One 3:2 carry-save adder per PE: no carry propagation in the loop.
                    tree = Terms(m, P, f"pe_{r}_{c}")
                    for word in (shifted, s_reg[r][c], c_reg[r][c]):
                        tree.add_word(word)
                    s_new, c_new = tree.compress()
                    with m.If(work):
                        m.d.sync += [s_reg[r][c].eq(s_new), c_reg[r][c].eq(c_new)]
                else:
                    with m.If(work):
                        m.d.sync += acc[r][c].eq(acc[r][c] + shifted)
        if spec.csa_accumulate:
            shift_rows(m, [list(zip(s_reg[r], c_reg[r], strict=True)) for r in range(R)],
                       shift)
        else:
            shift_rows(m, [[(x,) for x in row] for row in acc], shift)
        if spec.csa_accumulate:  # one carry-propagate adder per output column, at the drain
            m.d.comb += [self.o.payload.c[c].eq((s_reg[0][c] + c_reg[0][c])[:P])
                         for c in range(C)]
        else:
            m.d.comb += [self.o.payload.c[c].eq(acc[0][c]) for c in range(C)]

        # -- control -----------------------------------------------------------------------
        with m.If(feed):
            m.d.sync += self.busy.eq(1)
        m.d.comb += drain.start.eq(beat_done & last_src)
        with m.If(drain.done):
            m.d.sync += self.busy.eq(0)
        return m


def lane_order(spec: BitsliceSpec) -> dict[str, dict[str, str]]:
    """What each payload lane holds, by stream and field (for the manifest)."""
    return tile_lane_order()


#: The component of this engine kind (see hw.generators).
COMPONENT = Bitslice
