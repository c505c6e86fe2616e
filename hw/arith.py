"""Arithmetic shared by the generators: digit recoding, partial products, adder trees.

Everything is exact modulo ``2**width``: a product or a sum of words reduced to ``width`` bits
equals the wrapped integer result, which is how every accumulator of TPEForge behaves.

* :func:`recode` gives the digits of an activation, computed once and shared by every product
  it enters: radix-4 Booth digits (in {-2..+2}, about half as many) or its bits (the sign bit
  negative); :func:`pp_row` forms ``digit * w`` as ``|digit| * w`` XOR the digit's sign, a row
  only as wide as the product, and :func:`neg_correction` the sign bits those rows owe, summed
  once per activation; :func:`csa_row` places a row in a carry-save word without sign
  extension, and :func:`product_words` gathers the words (and the constant they owe) of a sum
  of products.
* :func:`csa_reduce` compresses any number of words to two (sum and carry) with word-level 3:2
  carry-save adders (full adders per bit, no carry propagation): the deferred-CPA structure of
  the TPE paper's OPT1 when the accumulator's own sum and carry words are among the inputs;
  :class:`Terms` collects placed words and a constant for it.
* :func:`add_tree`, :func:`popcount` / :func:`tree_sum`: balanced trees of carry-propagate
  adds; :func:`const_terms`: a product by a constant of the form ``+-(2**n - 1)`` as shifts.
* :class:`Pipe`: pipeline registers for the trees of :func:`add_tree` and :func:`csa_reduce`
  (after every N adder levels, counted across the sections of a tree) and for the
  multiplier outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from amaranth import Cat, Const, Module, Signal, Value

from hw.spec.base import add_levels, csa_levels

__all__ = [
    "Digit",
    "Pipe",
    "Terms",
    "add_tree",
    "const_terms",
    "csa_reduce",
    "csa_row",
    "fit",
    "neg_correction",
    "popcount",
    "pp_row",
    "product_words",
    "recode",
    "row_bits",
    "tree_sum",
]


def _word(m: Module, value, width: int, name: str) -> Signal:
    """``value`` sign- or zero-extended (per its shape) or truncated to ``width`` bits."""
    sig = Signal(width, name=name)
    m.d.comb += sig.eq(value)
    return sig


class Pipe:
    """Pipeline registers of a reduction tree, taking their input when ``en`` is high.

    ``every`` (a spec's ``tree_stage_levels``, 0 for none): a tree built with this pipe
    (:func:`add_tree`, :func:`csa_reduce` with ``pipe=``) registers every value of a level
    after adder levels ``every``, ``2*every``, ...; the levels are counted from the tree's
    first section through its later ones (``start`` of each call), so that every path of the
    tree crosses the same registers. :meth:`reg` registers values unconditionally (the
    multiplier outputs). Constants are never registered; the registers have no reset (what
    they hold counts only where the valid flags travelling beside them say so).
    """

    def __init__(self, m: Module, every: int, en: Value, name: str):
        self.m, self.every, self.en, self.name = m, every, en, name

    def reg(self, values: Sequence[Value], tag: str) -> list[Value]:
        """``values``, each through a register (constants as they are)."""
        out: list[Value] = []
        for i, v in enumerate(values):
            v = Value.cast(v)
            if isinstance(v, Const):
                out.append(v)
                continue
            # data only: no reset (the valid flags beside it have one)
            r = Signal(v.shape(), name=f"{self.name}_{tag}_{i}", reset_less=True)
            with self.m.If(self.en):
                self.m.d.sync += r.eq(v)
            out.append(r)
        return out

    def cut(self, values: Sequence[Value], level: int, tag: str) -> list[Value]:
        """``values`` after adder level ``level`` of the tree: registered when ``level`` is
        a multiple of ``every``."""
        if not self.every or level % self.every:
            return list(values)
        return self.reg(values, f"{tag}_l{level}")


def csa_reduce(m: Module, words: list[Value], width: int, name: str, *,
               pipe: Pipe | None = None, start: int = 0, levels: int | None = None
               ) -> tuple[Value, Value]:
    """Two words (sum, carry) whose sum equals the sum of ``words`` modulo ``2**width``.

    With ``pipe``, the tree takes exactly ``levels`` 3:2 levels (default: as many as
    ``words`` need, :func:`hw.spec.base.csa_levels`; a tree that is done sooner passes its
    words through the rest, so that trees of one section line up) and the words after
    global level ``start + d`` go through ``pipe.cut``.
    """
    level = [Value.cast(x) for x in words]
    if not level:
        level = [Const(0, width)]
    if len(level) == 1:
        level.append(Const(0, width))
    need = csa_levels(len(level))
    if levels is None:
        levels = need
    if need > levels:
        raise ValueError(f"csa_reduce {name}: {len(level)} words need {need} levels, "
                         f"more than the {levels} given")
    for depth in range(levels):
        if len(level) > 2:
            nxt: list[Value] = []
            for i in range(0, len(level) - 2, 3):
                x, y, z = level[i:i + 3]
                s = _word(m, x ^ y ^ z, width, f"{name}_s{depth}_{i}")
                c = _word(m, ((x & y) | (x & z) | (y & z)) << 1, width,
                          f"{name}_c{depth}_{i}")
                nxt += [s, c]
            nxt += level[len(level) - len(level) % 3:] if len(level) % 3 else []
            level = nxt
        if pipe is not None:
            level = pipe.cut(level, start + depth + 1, name)
    return level[0], level[1]


# -- digits and partial-product rows (hw.cube, hw.addertree, hw.matrix2d) ------------------
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


def product_words(m: Module, products: Sequence[tuple[Sequence[Digit], Value]], w_bits: int,
                  w_signed: bool, width: int, name: str, correction: Value | None = None
                  ) -> list[Value]:
    """Words for a carry-save tree whose sum is ``sum digits * w`` over ``products`` (pairs of
    an activation's digits and a weight) modulo ``2**width``: every :func:`pp_row` placed by
    :func:`csa_row`, ``correction`` (what the rows owe, from :func:`neg_correction`, maybe
    shared with other outputs) and one constant word for the rows' sign handling."""
    words: list[Value] = []
    const = 0
    for q, (digits, w) in enumerate(products):
        for d in digits:
            word, owed = csa_row(m, pp_row(d, w, w_bits, w_signed), d.shift, width,
                                 f"{name}_{q}_{d.shift}")
            if word is not None:
                words.append(word)
                const += owed
    if correction is not None:
        words.append(correction)
    const %= 1 << width
    return words + ([Const(const, width)] if const else [])


def add_tree(values: Sequence[Value], width: int, *, pipe: Pipe | None = None,
             start: int = 0, levels: int | None = None, name: str = "tree") -> Value:
    """Balanced binary tree of carry-propagate adds, exact modulo ``2**width``; with
    ``pipe``, the values after global level ``start + d`` go through ``pipe.cut`` (tag
    ``name``). ``levels``, when given, must be the tree's (the spec's count, checked)."""
    level = [fit(v, width) for v in values]
    if not level:
        return Const(0, 1)
    if levels is not None and levels != add_levels(len(level)):
        raise ValueError(f"add_tree {name}: {len(level)} values take "
                         f"{add_levels(len(level))} levels, not {levels}")
    for depth in range(add_levels(len(level))):
        nxt = [fit(level[i] + level[i + 1], width) for i in range(0, len(level) - 1, 2)]
        level = nxt + ([level[-1]] if len(level) % 2 else [])
        if pipe is not None:
            level = pipe.cut(level, start + depth + 1, name)
    return level[0]


class Terms:
    """Words to be summed modulo ``2**width``: placed bit vectors plus one constant.

    :meth:`add` places a value at a bit offset; a signed value enters with its sign bit
    inverted and ``-2**msb`` moved into the constant (no sign-extension bits in the tree).
    """

    def __init__(self, m: Module, width: int, name: str):
        self.m, self.width, self.name = m, width, name
        self.words: list[Value] = []
        self.const = 0

    def add(self, value: Value, shift: int = 0, *, is_signed: bool = False) -> None:
        v = Value.cast(value).as_unsigned()
        n = len(v)
        if shift >= self.width or n == 0:
            return
        if is_signed and shift + n - 1 < self.width:
            v = v ^ Const(1 << (n - 1), n)
            self.const -= 1 << (shift + n - 1)
        self.words.append((v << shift)[:self.width])

    def add_word(self, word: Value) -> None:
        """An unsigned word of exactly ``width`` bits (a sum or carry register)."""
        self.words.append(Value.cast(word))

    def compress(self) -> tuple[Value, Value]:
        """The words and the constant down to two words (sum, carry): :func:`csa_reduce`."""
        const = self.const % (1 << self.width)
        words = self.words + ([Const(const, self.width)] if const else [])
        return csa_reduce(self.m, words, self.width, self.name)


# -- adder trees of the bit-serial engines (hw.bitplane, hw.lut) ----------------------------

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
