"""The multipliers of the dot-product engines (cube, adder tree) as blocks (:mod:`hw.hier`).

A multiplier forms one product ``a * w`` of a reduction, or the words a carry-save tree sums
to it; the engine places one per product (``mul_<position>``) and one reduction tree per
output (``tree_<position>``, built by the engine). The digits of an activation
(:func:`hw.arith.recode`) are recoded once by the engine and shared by every multiplier the
activation meets: a multiplier takes them on one port, packed by :func:`pack_digits`
(``one``, ``two``, ``neg`` of each Booth digit, three bits; one bit per binary digit, whose
``neg``, on the sign bit, is the bit itself) and rebuilt by :func:`unpack_digits` from the
digits' :data:`Template`, which depends on the spec alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from amaranth import Cat, Const, Module, Signal, Value

from hw.arith import Digit, add_tree, pp_row, product_words
from hw.hier import Block, block_of
from hw.streams import operand_shapes

__all__ = ["Template", "digit_template", "multiplier", "owed_constant", "pack_digits",
           "unpack_digits"]

#: The digits of an activation without their values: ``(shift, two, neg)`` per digit, ``two``
#: and ``neg`` telling whether the digit has that part.
Template = tuple[tuple[int, bool, bool], ...]


def digit_template(digits: Sequence[Digit]) -> Template:
    """The :data:`Template` of ``digits``."""
    return tuple((d.shift, d.two is not None, d.neg is not None) for d in digits)


def pack_digits(digits: Sequence[Digit]) -> Value:
    """The digits as one value (a multiplier's ``d`` port): ``one``, ``two``, ``neg`` of
    each Booth digit, ``one`` of each binary digit (its ``neg`` is the same bit)."""
    return Cat(*(Cat(d.one, d.two, d.neg) if d.two is not None else d.one for d in digits))


def unpack_digits(template: Template, packed: Value) -> list[Digit]:
    """The digits that :func:`pack_digits` packed into ``packed``."""
    out, i = [], 0
    for shift, two, neg in template:
        if two:
            out.append(Digit(shift, packed[i], packed[i + 1], packed[i + 2]))
            i += 3
        else:
            out.append(Digit(shift, packed[i], None, packed[i] if neg else None))
            i += 1
    return out


def _packed_bits(template: Template) -> int:
    return sum(3 if two else 1 for _, two, _ in template)


def multiplier(spec: Any, template: Template | None, *, words: bool = False) -> Block:
    """One multiplier of ``spec`` (a cube's or an adder tree's), block ``mul``: inputs the
    weight ``w`` and the activation ``a`` (without digits: ``template`` None) or its packed
    digits ``d``. Output ``p``: the product ``a * w`` (Amaranth's), or with digits the sum of
    its :func:`hw.arith.pp_row` rows exact modulo ``2**acc_bits`` (what they owe is the
    engine's correction word); with ``words`` the product's carry-save words ``pp<i>``
    (:func:`hw.arith.product_words`; the constant they owe: :func:`owed_constant`)."""
    a_shape, w_shape, _ = operand_shapes(spec)
    width, wb, ws = spec.acc_bits, spec.w_bits, spec.signed
    if template is None:
        return block_of("mul", spec, {"a": a_shape, "w": w_shape},
                        lambda m, p: {"p": p.a * p.w})

    def outputs(m: Module, p: Any) -> Mapping[str, Value]:
        digits = unpack_digits(template, p.d)
        if words:
            out = [x for x in product_words(m, [(digits, p.w)], wb, ws, width, "pp")
                   if not _is_const(x)]
            return {f"pp{i}": x for i, x in enumerate(out)}
        return {"p": add_tree([pp_row(d, p.w, wb, ws) << d.shift for d in digits
                               if d.shift < width], width)}

    return block_of("mul", spec, {"d": _packed_bits(template), "w": w_shape}, outputs)


def owed_constant(spec: Any, template: Template,
                  words: Callable[[Module, list[Digit], Value], tuple[list[Value], int]]
                  | None = None) -> int:
    """The constant that one product's carry-save words owe (their rows' sign handling),
    modulo ``2**acc_bits``: that of :func:`hw.arith.product_words` (or of ``words(m, digits,
    w)``, which returns the words and the constant), found by building them once."""
    _, w_shape, _ = operand_shapes(spec)
    m = Module()
    m._MustUse__silence = True  # built for the constant only: no unused-module warning
    digits = unpack_digits(template, Signal(_packed_bits(template)))
    w = Signal(w_shape)
    if words is not None:
        return words(m, digits, w)[1] % (1 << spec.acc_bits)
    out = product_words(m, [(digits, w)], spec.w_bits, spec.signed, spec.acc_bits, "pp")
    return out[-1].value if out and _is_const(out[-1]) else 0


def _is_const(x: Any) -> bool:
    return isinstance(x, Const)
