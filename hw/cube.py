"""3D-Cube generator (Ascend DaVinci cube style): m x n x k multipliers, K-reduction trees.

One :class:`Cube` component is elaborated from one :class:`hw.spec.CubeSpec`. All streams
follow ``amaranth.lib.stream`` rules (a beat transfers in a cycle where ``valid`` and
``ready`` are both high; ``valid`` never waits for ``ready``). Operand lanes are
``signed(bits)`` or ``unsigned(bits)`` per ``spec.signed``; accumulators are ``acc_bits`` wide
and wrap modulo ``2**acc_bits`` (two's complement when signed).

One fold computes an ``m`` x ``n`` tile of ``C = A @ W`` over a reduction of any length K:

* ``i`` stream, one beat per chunk of ``k`` reduction indices, ``ceil(K/k)`` beats: beat b
  carries ``a[r*k + q] = A[r, b*k + q]`` (an ``m`` x ``k`` tile of A, row-major) and
  ``w[q*n + c] = W[b*k + q, c]`` (a ``k`` x ``n`` tile of W, row-major); ``last`` high on the
  final beat. Lanes beyond K in a partial last chunk must carry a zero in ``a`` or in ``w``
  (the product is then zero). The ``m*n*k`` products of a beat are reduced over q by
  ``m*n`` adder trees and added to the ``m*n`` accumulators in the cycle the beat is taken.
  The cube never stalls its input while streaming: a cycle without a valid beat changes
  nothing (a bubble) and delays the fold by one cycle.
* ``o`` stream, ``m`` beats from the cycle after the last input beat: beat r carries
  ``c[j] = C[r, j]``; ``last`` marks beat ``m - 1``. The accumulator rows shift towards the
  output one row per transfer (zeros enter at the far end, which clears them for the next
  fold); back-pressure (``ready`` low) holds the drain. ``i.ready`` is low while draining.
* Timing: with every beat valid and ready, the last output transfers
  ``fold_cycles(K) - 1 = ceil(K/k) + m - 1`` cycles after the first input beat
  (stream ``ceil(K/k)``, drain ``m``); ``i.ready`` is high again from the cycle after the
  last output beat, so folds run back to back.

Options (datapath only; protocol and timing are the same for every combination):

* ``booth``: every product is the sum of its radix-4 Booth partial products. The digits of
  each activation (in {-2..+2}, ``ceil(a_bits/2)`` of them, one more when unsigned) are
  recoded once and shared by the ``n`` columns; a partial product is ``|d| * w`` (an AND-OR
  select of ``w`` or ``2w``) XOR the digit's sign, and the sign bits those rows owe are
  summed once per row of A and beat, shared by the ``n`` columns (one correction word per
  output instead of a +1 row per partial product). Without it, products are Amaranth
  ``a * w`` and the trees are ``+`` (Yosys's default multiplier and adders).
* ``csa_accumulate`` (TPE OPT1): each accumulator is a pair of ``acc_bits`` words, sum and
  carry. Per beat, the partial products of the k products (Booth digits with ``booth``,
  else one selected weight per activation bit, the sign bit's negative), the row's
  correction word, one constant word and the two accumulator words enter one tree of 3:2
  carry-save adders whose two outputs are registered: no carry-propagate add in the loop.
  Partial-product rows are not sign-extended across the word (the sign bit is inverted and
  the constant pays the difference), so each row stays as narrow as the product. The row
  leaving on ``o`` is ``sum + carry``: one carry-propagate add per output, at the drain.

``busy`` is high while a fold is in progress (from its first input beat to its last output).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from amaranth import Cat, Const, Module, Shape, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.arith import csa_reduce
from hw.spec.cube import CubeSpec

__all__ = [
    "COMPONENT",
    "Cube",
    "Digit",
    "add_tree",
    "csa_row",
    "fit",
    "neg_correction",
    "pp_row",
    "recode",
    "row_bits",
    "stream_layouts",
]


# -- bit-weight building blocks (shared with hw.addertree) ---------------------------------
# Every value is exact modulo 2**width: sums of words reduced to ``width`` bits equal the
# wrapped integer result, which is how every accumulator of TPEForge behaves.
#
# A partial product ``digit * w`` is formed the classic way: a magnitude ``|digit| * w``
# (AND-OR selects of w and 2w), XORed with the digit's sign ``neg``; that is ``digit * w -
# neg``, so ``neg`` is owed at the digit's weight. The owed bits depend on the activation
# alone, so they are summed once per activation row (:func:`neg_correction`) and shared by
# every column that row meets, instead of one +1 row per partial product.


@dataclass(frozen=True)
class Digit:
    """One signed digit of an activation, weighing ``2**shift``: its value is
    ``(1 if one else 2 if two else 0) * (-1 if neg else +1)``. ``two`` is None for plain
    binary digits (bits); ``neg`` is None for digits that are never negative."""

    shift: int
    one: Value
    two: Value | None
    neg: Value | None


def fit(value, width: int) -> Value:
    """``value`` as it matters modulo ``2**width``: truncated (unsigned) when wider, else as
    is (a narrower signed value keeps its sign for later extension)."""
    value = Value.cast(value)
    return value[:width] if len(value) > width else value


def recode(m: Module, a: Value, a_bits: int, is_signed: bool, booth: bool, name: str
           ) -> list[Digit]:
    """The digits of activation ``a`` (value = sum of digit * 2**shift), computed once.

    ``booth``: radix-4 Booth digits in {-2..+2}, digit j from bits (2j+1, 2j, 2j-1) of ``a``
    extended by its sign (or by zeros when unsigned, one more digit keeping the top bit
    positive). Else the ``a_bits`` bits of ``a``, the top one negative when signed.
    """
    if not booth:
        bits = Signal(a_bits, name=f"{name}_bits")
        m.d.comb += bits.eq(a)
        return [Digit(j, bits[j], None, bits[j] if is_signed and j == a_bits - 1 else None)
                for j in range(a_bits)]

    def bit(i: int) -> Value:
        if i < 0:
            return Const(0, 1)
        if i < a_bits:
            return a[i]
        return a[a_bits - 1] if is_signed else Const(0, 1)

    ndigits = -(-(a_bits if is_signed else a_bits + 1) // 2)
    out = []
    for j in range(ndigits):
        lo, mid, hi = bit(2 * j - 1), bit(2 * j), bit(2 * j + 1)
        enc = Signal(3, name=f"{name}_d{j}")  # one, two, neg
        m.d.comb += [
            enc[0].eq(mid ^ lo),
            enc[1].eq((hi & ~mid & ~lo) | (~hi & mid & lo)),
            enc[2].eq(hi),
        ]
        out.append(Digit(2 * j, enc[0], enc[1], enc[2]))
    return out


def row_bits(w_bits: int, w_signed: bool, digit: Digit) -> int:
    """Width of :func:`pp_row` for this kind of digit: room for ``+-2w`` (Booth) or ``+-w``."""
    bits = w_bits + (digit.two is not None)
    return bits + (digit.neg is not None and not w_signed)


def pp_row(digit: Digit, w: Value, w_bits: int, w_signed: bool) -> Value:
    """``digit * w - neg`` (unshifted): ``|digit| * w`` XOR the digit's sign, as a
    ``signed(row_bits)`` value (``unsigned(w_bits)`` for a never-negative digit of an unsigned
    weight). Its owed ``neg`` is added once per activation by :func:`neg_correction`."""
    b = row_bits(w_bits, w_signed, digit)
    w = Value.cast(w)
    fill = w[w_bits - 1] if w_signed else Const(0, 1)
    wx = Cat(w, fill.replicate(b - w_bits))  # w extended to b bits
    row = wx & digit.one.replicate(b)
    if digit.two is not None:
        row = row | (Cat(Const(0, 1), wx[:b - 1]) & digit.two.replicate(b))
    if digit.neg is not None:
        row = row ^ digit.neg.replicate(b)
    return row.as_signed() if w_signed or digit.neg is not None else row


def neg_correction(digit_rows: Sequence[Sequence[Digit]], width: int) -> Value | None:
    """``sum neg * 2**shift`` over the digits of several activations (what their
    :func:`pp_row` rows owe), exact modulo ``2**width``; None when no digit can be negative.
    The digits of one activation weigh distinct powers of two, so each activation packs
    into one word and the words are added."""
    words = []
    for digits in digit_rows:
        bits = {d.shift: d.neg for d in digits if d.neg is not None and d.shift < width}
        if bits:
            top = max(bits) + 1
            words.append(Cat(*(bits.get(i, Const(0, 1)) for i in range(top))))
    return add_tree(words, width) if words else None


def csa_row(m: Module, row: Value, shift: int, width: int, name: str
            ) -> tuple[Signal | None, int]:
    """``row << shift`` as a ``width``-bit word for a carry-save tree, and the constant that
    completes it (modulo ``2**width``).

    A signed row of b bits is not sign-extended across the word: its sign bit s is inverted
    instead and ``-2**(shift+b-1)`` is owed, since ``-s * 2**(b-1) = (1 - s) * 2**(b-1) -
    2**(b-1)``; the caller adds the owed constants of all rows as one constant word. So every
    row stays b bits wide. Returns ``(None, 0)`` for a row entirely above the word.
    """
    if shift >= width:
        return None, 0
    row = Value.cast(row)
    b = len(row)
    if not row.shape().signed or shift + b >= width:  # nothing to extend inside the word
        return _word(m, row << shift, width, name), 0
    flipped = (row.as_unsigned() ^ (1 << (b - 1))) << shift
    return _word(m, flipped, width, name), -(1 << (shift + b - 1))


def add_tree(values: Sequence[Value], width: int) -> Value:
    """Balanced binary tree of carry-propagate adds, exact modulo ``2**width``."""
    level = [fit(v, width) for v in values]
    if not level:
        return Const(0, 1)
    while len(level) > 1:
        nxt = [fit(level[i] + level[i + 1], width) for i in range(0, len(level) - 1, 2)]
        level = nxt + ([level[-1]] if len(level) % 2 else [])
    return level[0]


def _word(m: Module, value: Value, width: int, name: str) -> Signal:
    """``value`` sign- or zero-extended (per its shape) or truncated to a ``width``-bit word."""
    sig = Signal(width, name=name)
    m.d.comb += sig.eq(value)
    return sig


# -- the cube -------------------------------------------------------------------------------

def _shapes(spec: CubeSpec) -> tuple[Shape, Shape, Shape]:
    kind = signed if spec.signed else unsigned
    return kind(spec.a_bits), kind(spec.w_bits), kind(spec.acc_bits)


def stream_layouts(spec: CubeSpec) -> dict[str, data.Layout]:
    """Payload layout of every stream of the cube, by stream name."""
    a_shape, w_shape, acc_shape = _shapes(spec)
    return {
        "i": data.StructLayout({
            "a": data.ArrayLayout(a_shape, spec.m * spec.k),
            "w": data.ArrayLayout(w_shape, spec.k * spec.n),
            "last": 1,
        }),
        "o": data.StructLayout({"c": data.ArrayLayout(acc_shape, spec.n), "last": 1}),
    }


class Cube(wiring.Component):
    """A ``spec.m`` x ``spec.n`` x ``spec.k`` cube; see the module docstring for protocol."""

    def __init__(self, spec: CubeSpec):
        if not isinstance(spec, CubeSpec):
            raise TypeError(f"spec must be a CubeSpec, not {spec!r}")
        self.spec = spec
        layouts = stream_layouts(spec)
        super().__init__({
            "i": In(stream.Signature(layouts["i"])),
            "o": Out(stream.Signature(layouts["o"])),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        spec = self.spec
        M, N, K = spec.m, spec.n, spec.k
        width = spec.acc_bits
        _, _, acc_shape = _shapes(spec)
        m = Module()

        feed = Signal()  # the current input beat is taken and accumulated
        shift = Signal()  # result rows move one place towards the output
        a = [[self.i.payload.a[r * K + q] for q in range(K)] for r in range(M)]
        w = [[self.i.payload.w[q * N + c] for c in range(N)] for q in range(K)]

        wb, ws = spec.w_bits, spec.signed
        if spec.booth or spec.csa_accumulate:
            # Digits of each activation recoded once, shared by the n columns; the owed sign
            # bits of a row's k activations summed once, shared by the n columns too.
            digits = [[recode(m, a[r][q], spec.a_bits, ws, spec.booth, f"a{r}_{q}")
                       for q in range(K)] for r in range(M)]
            owed = []
            for r in range(M):
                corr = neg_correction(digits[r], width)
                if corr is not None:
                    sig = Signal(width, name=f"neg_corr{r}")
                    m.d.comb += sig.eq(corr)
                    corr = sig
                owed.append(corr)

        def dot_terms(r: int, c: int) -> list[Value]:
            """Values whose sum is output (r, c)'s dot product of this beat."""
            if not spec.booth:
                return [a[r][q] * w[q][c] for q in range(K)]
            prods = [add_tree([pp_row(d, w[q][c], wb, ws) << d.shift for d in digits[r][q]
                               if d.shift < width], width) for q in range(K)]
            return prods + ([owed[r]] if owed[r] is not None else [])

        def csa_words(r: int, c: int) -> list[Value]:
            """Every partial-product word of output (r, c)'s k products, the row's shared
            correction and one constant word (what the rows' sign handling owes)."""
            words, const = [], 0
            for q in range(K):
                for d in digits[r][q]:
                    word, owed_const = csa_row(m, pp_row(d, w[q][c], wb, ws), d.shift, width,
                                               f"pp{r}_{c}_{q}_{d.shift}")
                    if word is not None:
                        words.append(word)
                        const += owed_const
            if owed[r] is not None:
                words.append(owed[r])
            const %= 1 << width
            return words + ([Const(const, width)] if const else [])

        if spec.csa_accumulate:
            acc_s = [[Signal(width, name=f"sum_{r}_{c}") for c in range(N)] for r in range(M)]
            acc_c = [[Signal(width, name=f"carry_{r}_{c}") for c in range(N)] for r in range(M)]
            for r in range(M):
                for c in range(N):
                    s, cy = csa_reduce(m, [*csa_words(r, c), acc_s[r][c], acc_c[r][c]],
                                       width, f"csa{r}_{c}")
                    with m.If(feed):
                        m.d.sync += [acc_s[r][c].eq(s), acc_c[r][c].eq(cy)]
                    with m.Elif(shift):
                        below_s = acc_s[r + 1][c] if r + 1 < M else 0
                        below_c = acc_c[r + 1][c] if r + 1 < M else 0
                        m.d.sync += [acc_s[r][c].eq(below_s), acc_c[r][c].eq(below_c)]
            # The one carry-propagate add per output, as the row leaves.
            m.d.comb += [self.o.payload.c[c].eq(acc_s[0][c] + acc_c[0][c]) for c in range(N)]
        else:
            acc = [[Signal(acc_shape, name=f"acc_{r}_{c}") for c in range(N)] for r in range(M)]
            for r in range(M):
                for c in range(N):
                    dot = Signal(width, name=f"dot_{r}_{c}")
                    m.d.comb += dot.eq(add_tree(dot_terms(r, c), width))
                    with m.If(feed):
                        m.d.sync += acc[r][c].eq(acc[r][c] + dot)
                    with m.Elif(shift):
                        m.d.sync += acc[r][c].eq(acc[r + 1][c] if r + 1 < M else 0)
            m.d.comb += [self.o.payload.c[c].eq(acc[0][c]) for c in range(N)]

        row = Signal(range(max(M, 2)))  # output row being presented
        with m.FSM(name="cube_fsm"):
            with m.State("STREAM"):
                m.d.comb += [self.i.ready.eq(1), feed.eq(self.i.valid)]
                with m.If(self.i.valid):
                    m.d.sync += self.busy.eq(1)
                    with m.If(self.i.payload.last):
                        m.next = "DRAIN"
            with m.State("DRAIN"):
                m.d.comb += [
                    self.o.valid.eq(1),
                    self.o.payload.last.eq(row == M - 1),
                    shift.eq(self.o.ready),
                ]
                with m.If(self.o.ready):
                    m.d.sync += row.eq(row + 1)
                    with m.If(row == M - 1):
                        m.d.sync += [row.eq(0), self.busy.eq(0)]
                        m.next = "STREAM"
        return m


#: The component of this engine kind (see hw.generators).
COMPONENT = Cube
