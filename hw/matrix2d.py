"""2D-Matrix generator (tensor-core style): a PE grid fed by broadcast rows and columns.

One :class:`Matrix2d` component is elaborated from one :class:`hw.spec.Matrix2dSpec`. All
streams follow ``amaranth.lib.stream`` rules (a beat transfers in a cycle where ``valid`` and
``ready`` are both high; ``valid`` never waits for ``ready``). Operand lanes are
``signed(bits)`` or ``unsigned(bits)`` per ``spec.signed``; accumulators are ``acc_bits`` wide
and wrap modulo ``2**acc_bits`` (two's complement when signed).

The grid computes a ``rows`` x ``cols`` tile of ``C = A @ W`` over a reduction of any length K:

* ``i`` stream, one beat per reduction index k: ``a[r] = A[r, k]`` for every row r,
  ``w[c] = W[k, c]`` for every column c, ``last`` high on the beat of k = K-1. ``a[r]`` is
  broadcast to every PE of row r and ``w[c]`` to every PE of column c (no skew): PE (r, c)
  adds ``a[r] * w[c]`` to its accumulator in the cycle the beat transfers. A cycle without a
  valid beat adds nothing (a bubble) and delays the fold by one cycle.
* ``o`` stream, ``rows`` beats after the last beat: beat r carries ``c[j] = C[r, j]``;
  ``last`` marks beat ``rows - 1``. The tile shifts up one row per output beat (zeros enter
  at the bottom, so the accumulators start the next fold cleared); back-pressure (``ready``
  low) holds the drain. ``i.ready`` is low while the tile drains.
* Timing: with every beat valid and ready,
  ``fold_cycles(K) = K + rows`` from the fold's first input transfer to its last output
  transfer, inclusive (steady state K, drain ``rows``). ``i.ready`` is high again the cycle
  after the last output beat, so folds run back to back.

``busy`` is high while a fold is in progress (from its first input beat to its last output).

PE arithmetic per option (``spec.booth``, ``spec.csa_accumulate``):

* neither: ``acc <= acc + a * w`` (the synthesizer's multiplier and adder);
* ``booth``: the activation of each row is recoded once into radix-4 Booth digits
  (select lines +w, -w, +2w, -2w, shared by the row's PEs); each column forms the multiples
  ``w, -w, 2w, -2w`` once (shared by the column's PEs). A PE selects its partial products
  (AND-OR, no +1 rows) and compresses them together with its accumulator in a carry-save
  tree; one CPA adds the tree's sum and carry into the accumulator (a CPA in the loop, as
  in the synthesizer's own ``acc + a * w``, which Yosys also maps to one tree and one CPA);
* ``csa_accumulate`` (OPT1): the partial products (AND rows, or Booth rows with ``booth``)
  and the PE's registered sum and carry words enter one carry-save tree whose two outputs are
  the new sum and carry registers; no CPA in the loop. The tile drains as sum/carry pairs and
  one CPA per output column adds them.

Signed partial products enter the trees without sign extension: their sign bit inverted plus
one constant word per tree (the usual sign-extension elimination).
"""

from __future__ import annotations

from typing import Any

from amaranth import Cat, Module, Signal, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.arith import Terms, recode
from hw.hier import Block, place_stacked
from hw.spec.matrix2d import Matrix2dSpec
from hw.streams import (
    RowDrain,
    operand_shapes,
    signature_members,
    tile_lane_order,
    tile_layouts,
)

__all__ = ["COMPONENT", "Matrix2d", "booth_digits", "lane_order", "stream_layouts"]


def stream_layouts(spec: Matrix2dSpec) -> dict[str, data.Layout]:
    """Payload layout of every stream of the grid, by stream name."""
    return tile_layouts(spec, a_lanes=spec.rows, w_lanes=spec.cols, c_lanes=spec.cols)


def booth_digits(
    m: Module, a: Value, a_bits: int, is_signed: bool, name: str
) -> list[tuple[Value, Value, Value, Value]]:
    """Radix-4 Booth digits of ``a`` (:func:`hw.arith.recode`) as one-hot selects per digit j
    (weight ``4**j``): ``(+w, -w, +2w, -2w)``, all low for a zero digit."""
    out = []
    for d in recode(m, a, a_bits, is_signed, True, name):
        sel = Signal(4, name=f"{name}_sel{d.shift // 2}")
        m.d.comb += sel.eq(Cat(d.one & ~d.neg, d.one & d.neg, d.two & ~d.neg, d.two & d.neg))
        out.append((sel[0], sel[1], sel[2], sel[3]))
    return out


def _rep(bit: Value, n: int) -> Value:
    return bit.replicate(n)


class Matrix2d(wiring.Component):
    """A ``spec.rows`` x ``spec.cols`` 2D-Matrix; see the module docstring for the protocol."""

    def __init__(self, spec: Matrix2dSpec):
        if not isinstance(spec, Matrix2dSpec):
            raise TypeError(f"spec must be a Matrix2dSpec, not {spec!r}")
        self.spec = spec
        super().__init__(signature_members(stream_layouts(spec)))

    def elaborate(self, platform):
        spec = self.spec
        R, C = spec.rows, spec.cols
        A, Wb, P = spec.a_bits, spec.w_bits, spec.acc_bits
        _, _, acc_shape = operand_shapes(spec)
        m = Module()

        drain = RowDrain(m, self.o, R)
        step = drain.follow(self.i, self.busy)  # the current beat transfers: PEs accumulate
        shift = drain.shift  # the tile moves one row towards the output
        a = [self.i.payload.a[r] for r in range(R)]
        w = [self.i.payload.w[c] for c in range(C)]

        # Row-shared Booth recoders and column-shared multiples.
        if spec.booth:
            digits = [booth_digits(m, Value.cast(a[r]), A, spec.signed, f"row{r}")
                      for r in range(R)]
            mw = Wb + 2  # -2w fits in w_bits + 2 signed bits
            mult = []
            for c in range(C):
                wx = Signal(signed(mw), name=f"w{c}_x1")
                m.d.comb += wx.eq(w[c])
                names = ("p1", "n1", "p2", "n2")
                vals = (wx, -wx, wx << 1, -(wx << 1))
                col = []
                for nm, v in zip(names, vals, strict=True):
                    s = Signal(signed(mw), name=f"w{c}_{nm}")
                    m.d.comb += s.eq(v)
                    col.append(s)
                mult.append(col)
        elif spec.csa_accumulate and spec.signed:
            # The top activation bit weighs -2**(a_bits-1): its row adds -w, formed per column.
            neg_w = []
            for c in range(C):
                s = Signal(signed(Wb + 1), name=f"w{c}_neg")
                m.d.comb += s.eq(-w[c])
                neg_w.append(s)

        # The PEs: one block (hw.hier), placed rows x cols times, each fed its row's operand
        # (or Booth selects) and its column's (or multiples); accumulators shift up a row with
        # ``shift`` (the drain), from the PE below through named signals (placed later).
        pe = self._pe(len(digits[0]) if spec.booth else 0)
        words = 2 if spec.csa_accumulate else 1
        word_shape = P if spec.csa_accumulate else acc_shape
        below = [[[Signal(word_shape, name=f"acc_{r}_{c}_{k}") for k in range(words)]
                  for c in range(C)] if r else [] for r in range(R)]
        chain = [(f"below{k}", f"acc{k}") for k in range(words)]
        outs: list[list[dict]] = [[{} for _ in range(C)] for _ in range(R)]
        for r in range(R):
            for c in range(C):
                ports: dict = {"step": step, "shift": shift}
                if spec.booth:
                    ports.update({f"sel{j}": Cat(*sel) for j, sel in enumerate(digits[r])})
                    ports.update({f"w_{nm}": v for nm, v in
                                  zip(("p1", "n1", "p2", "n2"), mult[c], strict=True)})
                else:
                    ports.update(a=a[r], w=w[c])
                    if spec.csa_accumulate and spec.signed:
                        ports["w_neg"] = neg_w[c]
                outs[r][c] = place_stacked(m, f"pe_{r}_{c}", pe, chain,
                                           below[r + 1][c] if r + 1 < R else None,
                                           below[r][c] if r else None, **ports)
        top = [[outs[0][c][f"acc{k}"] for k in range(words)] for c in range(C)]
        if spec.csa_accumulate:
            # One carry-propagate adder per output column, at the drain.
            m.d.comb += [self.o.payload.c[c].eq((top[c][0] + top[c][1])[:P]) for c in range(C)]
        else:
            m.d.comb += [self.o.payload.c[c].eq(top[c][0]) for c in range(C)]
        return m


    def _pe(self, n_digits: int) -> Block:
        """The PE (placed once per grid position, :mod:`hw.hier`). Ports: the row's
        activation ``a`` and the column's weight ``w`` (and ``w_neg``, the column's -w, for
        signed OPT1), or with ``booth`` the row's Booth selects ``sel<j>`` (+w, -w, +2w, -2w
        one-hot per digit j) and the column's multiples ``w_p1``, ``w_n1``, ``w_p2``,
        ``w_n2``; ``step`` adds the product into the accumulator words ``acc<k>`` (one word, or
        OPT1's sum and carry), ``shift`` loads them from ``below<k>`` (the PE below's, zero
        under the last row; it wins over a step, which never coincides with it).
        ``n_digits``: the number of Booth digits of an activation."""
        spec = self.spec
        A, Wb, P = spec.a_bits, spec.w_bits, spec.acc_bits
        a_shape, w_shape, acc_shape = operand_shapes(spec)
        mw = Wb + 2  # -2w fits in w_bits + 2 signed bits
        word_shape = P if spec.csa_accumulate else acc_shape
        words = 2 if spec.csa_accumulate else 1
        members: dict = {"step": In(1), "shift": In(1)}
        if spec.booth:
            members.update({f"sel{j}": In(4) for j in range(n_digits)})
            members.update({f"w_{nm}": In(signed(mw)) for nm in ("p1", "n1", "p2", "n2")})
        else:
            members.update(a=In(a_shape), w=In(w_shape))
            if spec.csa_accumulate and spec.signed:
                members["w_neg"] = In(signed(Wb + 1))
        members.update({f"below{k}": In(word_shape) for k in range(words)})
        members.update({f"acc{k}": Out(word_shape) for k in range(words)})

        def build(m: Module, pe: Any) -> None:
            def partial_products(terms: Terms) -> None:
                if spec.booth:
                    mult = [getattr(pe, f"w_{nm}") for nm in ("p1", "n1", "p2", "n2")]
                    for j in range(n_digits):
                        sel = getattr(pe, f"sel{j}")
                        pp = Signal(mw, name=f"pp_{j}")
                        choices = [v.as_unsigned() & _rep(sel[b], mw)
                                   for b, v in enumerate(mult)]
                        m.d.comb += pp.eq(choices[0] | choices[1] | choices[2] | choices[3])
                        terms.add(pp, 2 * j, is_signed=True)
                else:
                    for i in range(A):
                        top = spec.signed and i == A - 1
                        v = pe.w_neg if top else pe.w
                        terms.add(v.as_unsigned() & _rep(pe.a[i], len(v)), i,
                                  is_signed=spec.signed)

            acc = [getattr(pe, f"acc{k}") for k in range(words)]
            if spec.csa_accumulate:
                terms = Terms(m, P, "pe")
                partial_products(terms)
                terms.add_word(acc[0])
                terms.add_word(acc[1])
                nxt = list(terms.compress())
            elif spec.booth:
                # Partial products and the accumulator in one carry-save tree, then one CPA
                # (in the loop): the Booth MAC without OPT1.
                terms = Terms(m, P, "pe")
                partial_products(terms)
                terms.add_word(acc[0].as_unsigned())
                s_w, c_w = terms.compress()
                new = Signal(acc_shape, name="acc_next")
                m.d.comb += new.eq((s_w + c_w)[:P])
                nxt = [new]
            else:
                nxt = [acc[0] + pe.a * pe.w]
            with m.If(pe.step):
                m.d.sync += [reg.eq(v) for reg, v in zip(acc, nxt, strict=True)]
            with m.If(pe.shift):
                m.d.sync += [reg.eq(getattr(pe, f"below{k}")) for k, reg in enumerate(acc)]

        return Block("pe", spec, members, build)


def lane_order(spec: Matrix2dSpec) -> dict[str, dict[str, str]]:
    """What each payload lane holds, by stream and field (for the manifest)."""
    return tile_lane_order()


#: The component of this engine kind (see hw.generators).
COMPONENT = Matrix2d
