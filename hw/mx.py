"""MX dot-product engine generator (OCP Microscaling block formats, output stationary).

One :class:`MxEngine` component is elaborated from one :class:`hw.spec.MxSpec`. All streams
follow ``amaranth.lib.stream`` rules (a beat transfers in a cycle where ``valid`` and ``ready``
are both high; ``valid`` never waits for ``ready``).

One fold computes ``rows`` x ``lanes`` results, ``C[m0 + r, n0 + l]``, over a reduction of
any length K, one block of ``block`` elements per beat:

* ``i`` stream, ``ceil(K/block)`` beats: beat b carries each row's activation block codes
  ``a[r*block + q]`` (``a_bits``-wide codes, a narrower format in the low bits) and E8M0
  scale codes ``a_scale[r]`` (broadcast to every lane of the row), each lane's weight block
  codes ``w[l*block + q]`` and scale codes ``w_scale[l]`` (broadcast to every row), with
  several formats the format selects ``a_sel`` and ``w_sel`` (indices into
  ``spec.formats``), and ``last`` on the final beat. Elements beyond K in a partial last
  block must be zero codes in ``a`` or in ``w`` (and neither may be a NaN or infinity code).
  A cycle without a valid beat changes nothing.
* Per (row, lane) and beat: every code is decoded into a signed significand and a shift
  (:class:`hw.spec.mx.ElementDecode`; a lane's weight decoders serve every row); the
  ``block`` products ``(sig_a * sig_w) << (shift_a + shift_w)`` are exact integers, summed
  exactly in an adder tree (``spec.block_sum_bits`` wide); the block exponent
  ``d = a_scale + w_scale - 254 + unit_a + unit_w - acc_lsb_exp`` places the sum on the
  accumulator's grid: shifted left by ``d`` (bits beyond ``acc_bits`` dropped) or
  arithmetically right by ``-d`` (floor), then added (two's complement, wrapping modulo
  ``2**acc_bits``). A NaN scale (0xFF) or a NaN/infinity element code sets the output's
  sticky ``invalid`` flag.
* ``o`` stream, ``rows`` beats from the cycle after the last input beat: beat r carries
  ``c[l]`` = output (r, l)'s accumulator, or ``-2**(acc_bits-1)`` when its ``invalid`` flag
  is set; ``last`` on beat ``rows - 1``. Back-pressure holds the drain; the rows shift
  towards the output as they leave, zeros entering behind (the accumulators and flags of
  the next fold); ``i.ready`` is low while the tile drains.
* Timing: with every beat valid and ready, ``fold_cycles(K) = ceil(K/block) + rows`` from
  the first input beat to the last output beat, inclusive; folds run back to back.

``busy`` is high while a fold is in progress (from its first input beat to its output).
"""

from __future__ import annotations

from typing import Any

from amaranth import Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.arith import add_tree
from hw.hier import Block, place
from hw.spec.mx import SCALE_BIAS, SCALE_BITS, SCALE_NAN, ElementDecode, MxSpec
from hw.streams import RowDrain, out_layout, signature_members

__all__ = ["COMPONENT", "MxEngine", "stream_layouts"]


def stream_layouts(spec: MxSpec) -> dict[str, data.Layout]:
    """Payload layout of every stream of the engine, by stream name."""
    fields: dict[str, object] = {
        "a": data.ArrayLayout(unsigned(spec.a_bits), spec.rows * spec.block),
        "a_scale": data.ArrayLayout(unsigned(SCALE_BITS), spec.rows),
        "w": data.ArrayLayout(unsigned(spec.w_bits), spec.lanes * spec.block),
        "w_scale": data.ArrayLayout(unsigned(SCALE_BITS), spec.lanes),
    }
    if spec.sel_bits:
        fields["a_sel"] = unsigned(spec.sel_bits)
        fields["w_sel"] = unsigned(spec.sel_bits)
    fields["last"] = 1
    return {"i": data.StructLayout(fields), "o": out_layout(spec, spec.lanes)}


def lane_order(spec: MxSpec) -> dict[str, dict[str, str]]:
    """What each payload lane holds, by stream and field (for the manifest)."""
    return {"i": {"a": "lane r*block + q: the code of A[m0 + r, b*block + q] in beat b "
                       "(row-major)",
                  "a_scale": "lane r: the E8M0 scale of A[m0 + r]'s block b in beat b",
                  "w": "lane l*block + q: the code of W[b*block + q, n0 + l] in beat b "
                       "(lane-major)",
                  "w_scale": "lane l: the E8M0 scale of W[:, n0 + l]'s block b in beat b"},
            "o": {"c": "lane l: C[m0 + r, n0 + l] in the fold's output beat r (row 0 first)"}}


class MxEngine(wiring.Component):
    """``spec.rows`` x ``spec.lanes`` MX block dot products; see the module docstring."""

    def __init__(self, spec: MxSpec):
        if not isinstance(spec, MxSpec):
            raise TypeError(f"spec must be an MxSpec, not {spec!r}")
        self.spec = spec
        super().__init__(signature_members(stream_layouts(spec)))

    def elaborate(self, platform):
        spec = self.spec
        R, L, B, width = spec.rows, spec.lanes, spec.block, spec.acc_bits
        m = Module()
        p = self.i.payload
        a_sel = p.a_sel if spec.sel_bits else Const(0, 1)
        w_sel = p.w_sel if spec.sel_bits else Const(0, 1)

        drain = RowDrain(m, self.o, R)
        feed = drain.follow(self.i, self.busy)  # the current beat transfers: accumulate

        # The block exponent's part that depends on the formats only, and its range.
        units = self._unit(m, a_sel, "a_unit") + self._unit(m, w_sel, "w_unit")
        base = -2 * SCALE_BIAS - spec.acc_lsb_exp
        lo = base + 2 * min(d.unit for d in spec.decodes)
        hi = base + 2 * max(d.unit for d in spec.decodes) + 2 * SCALE_NAN
        d_shape = signed(max(abs(lo), abs(hi)).bit_length() + 1)
        fixed = Signal(d_shape, name="exp_base")
        m.d.comb += fixed.eq(units + base)

        # The rows' and the lanes' operand units: one block each (hw.hier), placed once per
        # row and once per lane, each decoding its element codes of the beat (a lane's
        # serve every row); a lane's also selects its output.
        row_unit, lane_unit = self._operand_block("a", d_shape), self._operand_block("w")
        rows = []
        for row in range(R):
            ports: dict[str, Any] = {f"a{q}": p.a[row * B + q] for q in range(B)}
            ports.update(scale=p.a_scale[row], exp_base=fixed)
            if spec.sel_bits:
                ports["sel"] = a_sel
            rows.append(place(m, f"row_{row}", row_unit, **ports))

        # The PEs: one block (hw.hier), placed rows x lanes times, fed the decoded elements
        # of their row and lane; accumulators and flags shift up a row with ``drain.shift``,
        # from the PE below through named signals (placed later). The lanes' units read row
        # 0's PEs (placed after them, through named signals too).
        pe = self._pe(d_shape)
        below = [[(Signal(signed(width), name=f"acc_{row}_{lane}"),
                   Signal(name=f"invalid_{row}_{lane}")) for lane in range(L)]
                 for row in range(R)]
        lanes = []
        for lane in range(L):
            ports = {f"w{q}": p.w[lane * B + q] for q in range(B)}
            ports.update(scale=p.w_scale[lane], acc=below[0][lane][0],
                         acc_invalid=below[0][lane][1])
            if spec.sel_bits:
                ports["sel"] = w_sel
            outs = place(m, f"lane_{lane}", lane_unit, **ports)
            m.d.comb += self.o.payload.c[lane].eq(outs["c"])
            lanes.append(outs)
        for row in range(R):
            a = rows[row]
            for lane in range(L):
                w = lanes[lane]
                ports = {"exp_a": a["exp"], "w_scale": p.w_scale[lane], "feed": feed,
                         "a_invalid": a["invalid"], "w_invalid": w["invalid"],
                         "shift": drain.shift}
                for q in range(B):
                    ports[f"a_sig{q}"] = a[f"sig{q}"]
                    ports[f"w_sig{q}"] = w[f"sig{q}"]
                    if spec.max_shift:
                        ports[f"a_shift{q}"] = a[f"shift{q}"]
                        ports[f"w_shift{q}"] = w[f"shift{q}"]
                nxt = below[row + 1][lane] if row + 1 < R else (0, 0)
                ports.update(below_acc=nxt[0], below_invalid=nxt[1])
                outs = place(m, f"pe_{row}_{lane}", pe, **ports)
                m.d.comb += [below[row][lane][0].eq(outs["acc"]),
                             below[row][lane][1].eq(outs["invalid"])]
        return m

    def _operand_block(self, side: str, d_shape: Any = None) -> Block:
        """A row's (``side`` "a") or a lane's ("w") operand unit (:mod:`hw.hier`), placed
        once per row or lane: ports ``<side><q>`` (its ``block`` element codes of the beat),
        ``scale`` (its E8M0 scale code) and ``sel`` (the format select, with several
        formats); every code decoded by an element decoder (``dec_<q>``, :meth:`_decoder`),
        out ``sig<q>``, ``shift<q>`` (with a nonzero shift in some format) and ``invalid``
        (a NaN scale or a NaN/infinity code). A row's also adds its scale to the block
        exponent's format part (``exp_base`` in, ``exp`` out); a lane's selects its output
        ``c`` from row 0's PE (``acc``, ``acc_invalid``: ``-2**(acc_bits-1)`` when
        invalid)."""
        spec, B, width = self.spec, self.spec.block, self.spec.acc_bits
        code = unsigned(spec.a_bits if side == "a" else spec.w_bits)
        members: dict[str, Any] = {f"{side}{q}": In(code) for q in range(B)}
        members["scale"] = In(unsigned(SCALE_BITS))
        if spec.sel_bits:
            members["sel"] = In(unsigned(spec.sel_bits))
        if side == "a":
            members.update(exp_base=In(d_shape), exp=Out(d_shape))
        else:
            members.update(acc=In(signed(width)), acc_invalid=In(1), c=Out(signed(width)))
        members.update({f"sig{q}": Out(signed(spec.sig_bits)) for q in range(B)})
        if spec.max_shift:
            members.update({f"shift{q}": Out(range(spec.max_shift + 1)) for q in range(B)})
        members["invalid"] = Out(1)
        dec = self._decoder()

        def build(m: Module, unit: Any) -> None:
            specials = []
            for q in range(B):
                ports = {"code": getattr(unit, f"{side}{q}")}
                if spec.sel_bits:
                    ports["sel"] = unit.sel
                x = place(m, f"dec_{q}", dec, **ports)
                m.d.comb += getattr(unit, f"sig{q}").eq(x["sig"])
                if spec.max_shift:
                    m.d.comb += getattr(unit, f"shift{q}").eq(x["shift"])
                specials.append(x["special"])
            m.d.comb += unit.invalid.eq((unit.scale == SCALE_NAN) | _any(specials))
            if side == "a":
                m.d.comb += unit.exp.eq(unit.exp_base + unit.scale)
            else:
                indefinite = Const(-(1 << (width - 1)), signed(width))
                m.d.comb += unit.c.eq(Mux(unit.acc_invalid, indefinite, unit.acc))

        key = (spec, d_shape) if side == "a" else spec
        return Block("row" if side == "a" else "lane", key, members, build)

    def _pe(self, d_shape) -> Block:
        """The PE (placed once per output, :mod:`hw.hier`): one block's exact dot product of
        the decoded elements ``a_sig<q>``/``a_shift<q>`` and ``w_sig<q>``/``w_shift<q>``
        (no shifts when every format's is zero), aligned by the block exponent ``exp_a +
        w_scale`` on the accumulator's grid (``acc_bits``) and added to ``acc`` when
        ``feed``; ``invalid`` gathers ``a_invalid | w_invalid``. ``shift`` (the drain) loads
        both from ``below_acc`` and ``below_invalid`` (the PE below's, zero under the last
        row)."""
        spec = self.spec
        B, width, sum_bits = spec.block, spec.acc_bits, spec.block_sum_bits
        sig = signed(spec.sig_bits)
        members: dict[str, Any] = {}
        for side in ("a", "w"):
            members.update({f"{side}_sig{q}": In(sig) for q in range(B)})
            if spec.max_shift:
                members.update({f"{side}_shift{q}": In(range(spec.max_shift + 1))
                                for q in range(B)})
        members.update({"exp_a": In(d_shape), "w_scale": In(unsigned(SCALE_BITS)),
                        "feed": In(1), "a_invalid": In(1), "w_invalid": In(1), "shift": In(1),
                        "below_acc": In(signed(width)), "below_invalid": In(1),
                        "acc": Out(signed(width)), "invalid": Out(1)})

        def build(m: Module, pe: Any) -> None:
            def shift(side: str, q: int) -> Value:
                return getattr(pe, f"{side}_shift{q}") if spec.max_shift else Const(0, 1)

            prods = []
            for q in range(B):
                prod = Signal(signed(spec.product_bits), name=f"prod{q}")
                m.d.comb += prod.eq((getattr(pe, f"a_sig{q}") * getattr(pe, f"w_sig{q}"))
                                    << (shift("a", q) + shift("w", q)))
                prods.append(prod)
            total = Signal(signed(sum_bits), name="block_sum")
            m.d.comb += total.eq(add_tree(prods, sum_bits))
            d = Signal(d_shape, name="d")
            m.d.comb += d.eq(pe.exp_a + pe.w_scale)
            left = Signal(range(width + 1), name="left")
            right = Signal(range(sum_bits), name="right")
            m.d.comb += [
                left.eq(Mux(d >= width, width, Mux(d < 0, 0, d))),
                right.eq(Mux(-d >= sum_bits - 1, sum_bits - 1, Mux(d > 0, 0, -d))),
            ]
            shl = Signal(signed(width), name="shl")
            shr = Signal(signed(width), name="shr")
            step = Signal(signed(width), name="step")
            m.d.comb += [shl.eq(total << left), shr.eq(total >> right),
                         step.eq(Mux(d < 0, shr, shl))]
            with m.If(pe.feed):
                m.d.sync += [pe.acc.eq(pe.acc + step),
                             pe.invalid.eq(pe.invalid | pe.a_invalid | pe.w_invalid)]
            with m.If(pe.shift):  # the drain, after the update (shift_rows' rule)
                m.d.sync += [pe.acc.eq(pe.below_acc), pe.invalid.eq(pe.below_invalid)]

        return Block("pe", (spec, d_shape), members, build)

    # -- decoding -----------------------------------------------------------------------
    def _decoder(self) -> Block:
        """The element decoder (placed once per element code of a beat, :mod:`hw.hier`):
        ``code`` (and ``sel``, the format select, with several formats) in; ``sig``,
        ``shift`` (with a nonzero shift in some format) and ``special`` out, the code
        decoded under the selected format (an unused select value decodes as zero)."""
        spec = self.spec
        members: dict[str, Any] = {"code": In(unsigned(spec.a_bits))}
        if spec.sel_bits:
            members["sel"] = In(unsigned(spec.sel_bits))
        members["sig"] = Out(signed(spec.sig_bits))
        if spec.max_shift:
            members["shift"] = Out(range(spec.max_shift + 1))
        members["special"] = Out(1)

        def build(m: Module, dec: Any) -> None:
            with m.Switch(dec.sel if spec.sel_bits else Const(0, 1)):
                for idx, fmt in enumerate(spec.decodes):
                    with m.Case(idx):
                        s, h, x = _decode_one(dec.code[:fmt.bits], fmt)
                        m.d.comb += [dec.sig.eq(s), dec.special.eq(x)]
                        if spec.max_shift:
                            m.d.comb += dec.shift.eq(h)

        return Block("decode", spec, members, build)

    def _unit(self, m: Module, sel, name: str):
        """The selected format's fixed-point unit exponent."""
        units = [d.unit for d in self.spec.decodes]
        sig = Signal(signed(max(abs(u) for u in units).bit_length() + 1), name=name)
        with m.Switch(sel):
            for idx, u in enumerate(units):
                with m.Case(idx):
                    m.d.comb += sig.eq(u)
        return sig


def _decode_one(code, dec: ElementDecode):
    """Combinational decode of one format: ``(sig, shift, special)`` values."""
    e = dec.fmt
    if not e.is_float:
        return code.as_signed(), Const(0, 1), Const(0, 1)
    man = code[:e.man_bits]
    exp = code[e.man_bits:e.man_bits + e.exp_bits]
    neg = code[e.bits - 1]
    mag = Mux(exp == 0, man, man | (1 << e.man_bits))
    sig = Mux(neg, -mag, mag)
    shift = Mux(exp == 0, 0, exp - 1)
    top = (1 << e.exp_bits) - 1
    if e.ieee_specials:
        special = exp == top
    elif e.nan_at_max:
        special = (exp == top) & (man == (1 << e.man_bits) - 1)
    else:
        special = Const(0, 1)
    return sig, shift, special


def _any(bits):
    out = Const(0, 1)
    for b in bits:
        out = out | b
    return out


#: The component of this engine kind (see hw.generators).
COMPONENT = MxEngine
