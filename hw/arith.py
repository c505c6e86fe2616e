"""Arithmetic building blocks shared by the generators: partial products and carry-save trees.

Everything is exact modulo ``2**width``: a product or a sum of words reduced to ``width`` bits
equals the wrapped integer result, which is how every accumulator of TPEForge behaves.

* :func:`partial_products` lists words whose sum is ``a * w`` (mod ``2**width``): one shifted
  copy of ``a`` per bit of ``w`` (the sign bit of a signed ``w`` weighs ``-2**(n-1)``, added
  as an inverted word plus one), or, with ``booth=True``, one word per radix-4 Booth digit of
  ``w`` (digits in {-2, -1, 0, +1, +2}; a negative digit is an inverted word plus one), which
  halves the number of partial products.
* :func:`csa_reduce` compresses any number of words to two (sum and carry) with word-level 3:2
  carry-save adders (full adders per bit, no carry propagation): the deferred-CPA structure of
  the TPE paper's OPT1 when the accumulator's own sum and carry words are among the inputs.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, Value

__all__ = ["csa_reduce", "partial_products"]


def _word(m: Module, value, width: int, name: str) -> Signal:
    """``value`` sign- or zero-extended (per its shape) or truncated to ``width`` bits."""
    sig = Signal(width, name=name)
    m.d.comb += sig.eq(value)
    return sig


def partial_products(
    m: Module, a: Value, w: Value, width: int, *, signed: bool, booth: bool, name: str
) -> list[Signal]:
    """Words (``width`` bits each) whose sum is ``a * w`` modulo ``2**width``."""
    a = Value.cast(a)
    w = Value.cast(w)
    n = len(w)
    a_ext = _word(m, a, width, f"{name}_a")  # sign-extends a signed a
    words: list[Signal] = []
    if not booth:
        for i in range(n):
            shifted = (a_ext << i)[:width]
            if signed and i == n - 1:  # the sign bit weighs -2**(n-1): ~x + 1
                words.append(_word(m, Mux(w[i], ~shifted, 0), width, f"{name}_pp{i}"))
                words.append(_word(m, w[i], width, f"{name}_neg{i}"))
            else:
                words.append(_word(m, Mux(w[i], shifted, 0), width, f"{name}_pp{i}"))
        return words
    # Radix-4 Booth: digit j from bits (2j+1, 2j, 2j-1) of w, extended by its sign (signed)
    # or by zeros (unsigned, which needs one more digit to keep the top bit positive).
    ext = n + (0 if signed else 1)
    ext += ext % 2
    fill = w[n - 1] if signed else Const(0, 1)
    wx = Cat(Const(0, 1), w, *([fill] * (ext - n)))  # bit 0 is the implicit w[-1] = 0
    for j in range(ext // 2):
        lo, mid, hi = wx[2 * j], wx[2 * j + 1], wx[2 * j + 2]
        one = mid ^ lo
        two = (hi & ~mid & ~lo) | (~hi & mid & lo)
        neg = hi
        mag = Mux(one, a_ext, Mux(two, (a_ext << 1)[:width], 0))
        shifted = (mag << (2 * j))[:width]
        words.append(_word(m, Mux(neg, ~shifted, shifted), width, f"{name}_bpp{j}"))
        words.append(_word(m, neg, width, f"{name}_bneg{j}"))
    return words


def csa_reduce(m: Module, words: list[Value], width: int, name: str) -> tuple[Value, Value]:
    """Two words (sum, carry) whose sum equals the sum of ``words`` modulo ``2**width``."""
    level = [Value.cast(x) for x in words]
    if not level:
        return Const(0, width), Const(0, width)
    if len(level) == 1:
        return level[0], Const(0, width)
    depth = 0
    while len(level) > 2:
        nxt: list[Value] = []
        for i in range(0, len(level) - 2, 3):
            x, y, z = level[i:i + 3]
            s = _word(m, x ^ y ^ z, width, f"{name}_s{depth}_{i}")
            c = _word(m, ((x & y) | (x & z) | (y & z)) << 1, width, f"{name}_c{depth}_{i}")
            nxt += [s, c]
        nxt += level[len(level) - len(level) % 3:] if len(level) % 3 else []
        level = nxt
        depth += 1
    return level[0], level[1]
