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

from amaranth import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring

from hw.arith import add_tree
from hw.spec.mx import SCALE_BIAS, SCALE_BITS, SCALE_NAN, ElementDecode, MxSpec
from hw.streams import RowDrain, out_layout, shift_rows, signature_members

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

        w_dec = [[self._decode(m, p.w[lane * B + q], w_sel, f"w{lane}_{q}") for q in range(B)]
                 for lane in range(L)]
        w_bad = []
        for lane in range(L):
            sig = Signal(name=f"w{lane}_invalid")
            m.d.comb += sig.eq((p.w_scale[lane] == SCALE_NAN)
                               | _any([x for _, _, x in w_dec[lane]]))
            w_bad.append(sig)

        regs = []
        for row in range(R):
            a_dec = [self._decode(m, p.a[row * B + q], a_sel, f"a{row}_{q}") for q in range(B)]
            a_bad = Signal(name=f"a{row}_invalid")
            m.d.comb += a_bad.eq((p.a_scale[row] == SCALE_NAN)
                                 | _any([x for _, _, x in a_dec]))
            exp_row = Signal(d_shape, name=f"exp_a{row}")
            m.d.comb += exp_row.eq(fixed + p.a_scale[row])
            row_regs = []
            for lane in range(L):
                tag = f"{row}_{lane}"
                step = self._block(m, a_dec, w_dec[lane], exp_row + p.w_scale[lane], d_shape,
                                   tag)
                acc = Signal(signed(width), name=f"acc{tag}")
                bad = Signal(name=f"invalid{tag}")
                with m.If(feed):
                    m.d.sync += [acc.eq(acc + step), bad.eq(bad | a_bad | w_bad[lane])]
                row_regs.append((acc, bad))
            regs.append(row_regs)
        shift_rows(m, regs, drain.shift)
        indefinite = Const(-(1 << (width - 1)), signed(width))
        for lane in range(L):
            acc, bad = regs[0][lane]
            m.d.comb += self.o.payload.c[lane].eq(Mux(bad, indefinite, acc))
        return m

    def _block(self, m: Module, a_dec, w_dec, exponent, d_shape, tag: str) -> Signal:
        """One block's exact dot product aligned on the accumulator's grid (``acc_bits``)."""
        spec = self.spec
        width, sum_bits = spec.acc_bits, spec.block_sum_bits
        prods = []
        for q, ((sa, ha, _), (sw, hw, _)) in enumerate(zip(a_dec, w_dec, strict=True)):
            prod = Signal(signed(spec.product_bits), name=f"prod{tag}_{q}")
            m.d.comb += prod.eq((sa * sw) << (ha + hw))
            prods.append(prod)
        total = Signal(signed(sum_bits), name=f"block_sum{tag}")
        m.d.comb += total.eq(add_tree(prods, sum_bits))
        d = Signal(d_shape, name=f"d{tag}")
        m.d.comb += d.eq(exponent)
        left = Signal(range(width + 1), name=f"left{tag}")
        right = Signal(range(sum_bits), name=f"right{tag}")
        m.d.comb += [
            left.eq(Mux(d >= width, width, Mux(d < 0, 0, d))),
            right.eq(Mux(-d >= sum_bits - 1, sum_bits - 1, Mux(d > 0, 0, -d))),
        ]
        shl = Signal(signed(width), name=f"shl{tag}")
        shr = Signal(signed(width), name=f"shr{tag}")
        step = Signal(signed(width), name=f"step{tag}")
        m.d.comb += [shl.eq(total << left), shr.eq(total >> right),
                     step.eq(Mux(d < 0, shr, shl))]
        return step

    # -- decoding -----------------------------------------------------------------------
    def _decode(self, m: Module, code, sel, name: str):
        """``(sig, shift, special)`` signals of one element code under the selected format."""
        spec = self.spec
        sig = Signal(signed(spec.sig_bits), name=f"{name}_sig")
        sh = Signal(range(spec.max_shift + 1), name=f"{name}_shift")
        special = Signal(name=f"{name}_special")
        with m.Switch(sel):
            for idx, dec in enumerate(spec.decodes):
                with m.Case(idx):
                    s, h, x = _decode_one(code[:dec.bits], dec)
                    m.d.comb += [sig.eq(s), sh.eq(h), special.eq(x)]
            # an unused select value decodes as zero
        return sig, sh, special

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
