"""MX dot-product engine generator (OCP Microscaling block formats, output stationary).

One :class:`MxEngine` component is elaborated from one :class:`hw.spec.MxSpec`. All streams
follow ``amaranth.lib.stream`` rules (a beat transfers in a cycle where ``valid`` and ``ready``
are both high; ``valid`` never waits for ``ready``).

One fold computes ``lanes`` results of one output row, ``C[m, n0 + l]`` for l < ``lanes``,
over a reduction of any length K, one block of ``block`` elements per beat:

* ``i`` stream, ``ceil(K/block)`` beats: beat b carries the activation block's element codes
  ``a[q]`` (``a_bits``-wide codes, a narrower format in the low bits) and its E8M0 scale code
  ``a_scale`` (broadcast to every lane), each lane's weight block codes ``w[l*block + q]``
  (lane-major) and scale codes ``w_scale[l]``, with several formats the format selects
  ``a_sel`` and ``w_sel`` (indices into ``spec.formats``), and ``last`` on the final beat.
  Elements beyond K in a partial last block must be zero codes in ``a`` or in ``w`` (and
  neither may be a NaN or infinity code). A cycle without a valid beat changes nothing.
* Per lane and beat: every code is decoded into a signed significand and a shift
  (:class:`hw.spec.mx.ElementDecode`); the ``block`` products ``(sig_a * sig_w) << (shift_a +
  shift_w)`` are exact integers, summed exactly in an adder tree (``spec.block_sum_bits``
  wide); the block exponent ``d = a_scale + w_scale - 254 + unit_a + unit_w - acc_lsb_exp``
  places the sum on the accumulator's grid: shifted left by ``d`` (bits beyond ``acc_bits``
  dropped) or arithmetically right by ``-d`` (floor), then added (two's complement, wrapping
  modulo ``2**acc_bits``). A NaN scale (0xFF) or a NaN/infinity element code sets the lane's
  sticky ``invalid`` flag.
* ``o`` stream, one beat in the cycle after the last input beat: ``c[l]`` = lane l's
  accumulator, or ``-2**(acc_bits-1)`` when its ``invalid`` flag is set; ``last`` high.
  Back-pressure holds it; accumulators and flags clear when it transfers; ``i.ready`` is low
  while it waits.
* Timing: with every beat valid and ready, ``fold_cycles(K) = ceil(K/block) + 1`` from the
  first input beat to the output beat, inclusive; folds run back to back.

``busy`` is high while a fold is in progress (from its first input beat to its output).
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring

from hw.arith import add_tree
from hw.spec.mx import SCALE_BIAS, SCALE_BITS, SCALE_NAN, ElementDecode, MxSpec
from hw.streams import out_layout, signature_members

__all__ = ["COMPONENT", "MxEngine", "stream_layouts"]


def stream_layouts(spec: MxSpec) -> dict[str, data.Layout]:
    """Payload layout of every stream of the engine, by stream name."""
    fields: dict[str, object] = {
        "a": data.ArrayLayout(unsigned(spec.a_bits), spec.block),
        "a_scale": unsigned(SCALE_BITS),
        "w": data.ArrayLayout(unsigned(spec.w_bits), spec.lanes * spec.block),
        "w_scale": data.ArrayLayout(unsigned(SCALE_BITS), spec.lanes),
    }
    if spec.sel_bits:
        fields["a_sel"] = unsigned(spec.sel_bits)
        fields["w_sel"] = unsigned(spec.sel_bits)
    fields["last"] = 1
    return {"i": data.StructLayout(fields), "o": out_layout(spec, spec.lanes)}


class MxEngine(wiring.Component):
    """``spec.lanes`` MX block dot-product lanes; see the module docstring."""

    def __init__(self, spec: MxSpec):
        if not isinstance(spec, MxSpec):
            raise TypeError(f"spec must be an MxSpec, not {spec!r}")
        self.spec = spec
        super().__init__(signature_members(stream_layouts(spec)))

    def elaborate(self, platform):
        spec = self.spec
        L, B, width = spec.lanes, spec.block, spec.acc_bits
        m = Module()
        p = self.i.payload
        a_sel = p.a_sel if spec.sel_bits else Const(0, 1)
        w_sel = p.w_sel if spec.sel_bits else Const(0, 1)

        feed = Signal()  # the current input beat is taken and accumulated
        clear = Signal()  # the result beat transfers: accumulators and flags back to zero

        a_dec = [self._decode(m, p.a[q], a_sel, f"a{q}") for q in range(B)]
        a_bad = Signal(name="a_invalid")
        m.d.comb += a_bad.eq((p.a_scale == SCALE_NAN) | _any([s for _, _, s in a_dec]))
        a_unit = self._unit(m, a_sel, "a_unit")

        # The part of the block exponent that does not depend on the scales.
        w_unit = self._unit(m, w_sel, "w_unit")
        base = -2 * SCALE_BIAS - spec.acc_lsb_exp
        lo = base + 2 * min(d.unit for d in spec.decodes)
        hi = base + 2 * max(d.unit for d in spec.decodes) + 2 * SCALE_NAN
        d_shape = signed(max(abs(lo), abs(hi)).bit_length() + 1)
        shift = Signal(d_shape, name="block_exp")
        m.d.comb += shift.eq(p.a_scale + a_unit + w_unit + base)

        sum_shape = signed(spec.block_sum_bits)
        for lane in range(L):
            w_dec = [self._decode(m, p.w[lane * B + q], w_sel, f"w{lane}_{q}")
                     for q in range(B)]
            prods = []
            for q in range(B):
                sa, ha, _ = a_dec[q]
                sw, hw, _ = w_dec[q]
                prod = Signal(signed(spec.product_bits), name=f"prod{lane}_{q}")
                m.d.comb += prod.eq((sa * sw) << (ha + hw))
                prods.append(prod)
            total = Signal(sum_shape, name=f"block_sum{lane}")
            m.d.comb += total.eq(add_tree(prods, spec.block_sum_bits))

            scale = p.w_scale[lane]
            d = Signal(d_shape, name=f"d{lane}")
            m.d.comb += d.eq(shift + scale)
            left = Signal(range(width + 1), name=f"left{lane}")
            right = Signal(range(spec.block_sum_bits), name=f"right{lane}")
            m.d.comb += [
                left.eq(Mux(d >= width, width, Mux(d < 0, 0, d))),
                right.eq(Mux(-d >= spec.block_sum_bits - 1, spec.block_sum_bits - 1,
                             Mux(d > 0, 0, -d))),
            ]
            shl = Signal(signed(width), name=f"shl{lane}")
            shr = Signal(signed(width), name=f"shr{lane}")
            m.d.comb += [shl.eq(total << left), shr.eq(total >> right)]

            acc = Signal(signed(width), name=f"acc{lane}")
            bad = Signal(name=f"invalid{lane}")
            w_bad = (scale == SCALE_NAN) | _any([s for _, _, s in w_dec])
            with m.If(feed):
                m.d.sync += [acc.eq(acc + Mux(d < 0, shr, shl)),
                             bad.eq(bad | a_bad | w_bad)]
            with m.Elif(clear):
                m.d.sync += [acc.eq(0), bad.eq(0)]
            m.d.comb += self.o.payload.c[lane].eq(
                Mux(bad, Const(-(1 << (width - 1)), signed(width)), acc))

        with m.FSM(name="mx_fsm"):
            with m.State("STREAM"):
                m.d.comb += [self.i.ready.eq(1), feed.eq(self.i.valid)]
                with m.If(self.i.valid):
                    m.d.sync += self.busy.eq(1)
                    with m.If(p.last):
                        m.next = "RESULT"
            with m.State("RESULT"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.last.eq(1),
                             clear.eq(self.o.ready)]
                with m.If(self.o.ready):
                    m.d.sync += self.busy.eq(0)
                    m.next = "STREAM"
        return m

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
