"""Cycle and cost model of the MX dot-product engine: the numbers the generated RTL is held to.

Output stationary, one block per beat (:class:`hw.spec.MxSpec`): a GEMM ``C[M, N] = A[M, K]
@ W[K, N]`` takes ``ceil(M/rows) * ceil(N/lanes)`` folds of ``ceil(K/block) + rows`` cycles,
back to back (the generic model of :mod:`sim.engines`). The cycles do not depend on the
element formats.

Costs, from the structure of the engine's lane (``hw/mx.py``), ``s`` the significand bits
(``spec.sig_bits``: the widest format's, e.g. 5 for E4M3, 8 for INT8), ``p`` the exact
product's bits, ``S`` the block sum's, ``B`` the block, ``acc`` the accumulator's bits:

* ``multiply`` (``mac_multiplier``): one ``s x s`` significand multiply per MAC (the
  multiplier power law of :mod:`sim.engines.cost`).
* ``align`` (``mac_multiplier``): the product's shift by the two exponent fields, a log
  shifter of ``p`` bits and ``bit_length(2 * max_shift)`` stages of 2:1 multiplexers per MAC
  (none for INT8 alone); a multiplexer priced as one gate, the multiplier power law at
  ``a*w = 1`` as :mod:`sim.engines.bitplane` prices its AND gates (a lower bound: a 2:1 mux
  is about two gates).
* ``block_add`` (``mac_adder``): the exact block sum, ``B - 1`` adds of ``S`` bits per block
  (an adder tree), ``(B - 1)/B`` per MAC.
* ``block_scale`` (``mac_adder``): per block and output, the exponent sum (two adds of 10 bits:
  the two 8-bit scales and the formats' constant) and the accumulate at ``acc`` bits,
  ``3/B`` adds per MAC priced at ``acc`` bits (an upper bound for the exponent adds); the
  accumulator's alignment shifter (``acc * bit_length(acc)`` multiplexers per block) priced as
  gates like ``align``.

Formats (the hooks of :data:`sim.engines.FORMAT_HOOKS`, :class:`sim.engines.FormatPlan`):

* an operand in one of the engine's element formats (``spec.formats``) runs as it is; its
  E8M0 block scales along K are applied inside the engine when their group is a multiple of
  ``spec.block`` (the scale repeated for each beat of the group);
* with ``int8`` among the element formats, any integer runs as INT8 elements at one
  constant scale (exact), in INT8 slices when wider than 8 bits on a signed datapath; a
  float the engine does not decode (FP16, BF16, FP32) runs as block floating point integers
  of ``mantissa + 2`` bits (a block's largest exponent as its E8M0 scale, the FP-INT scheme
  the integer engines use: :mod:`sim.execution`), in INT8 slices; slices run as passes whose
  results the vector unit shift-adds, as on the integer engines;
* scales the engine cannot apply (NVFP4's FP8 E4M3 block scales, E8M0 groups that are not
  a multiple of the block, the integer schemes' FP16 group scales) are applied on the vector
  unit: the engine runs the elements with E8M0 scales at 1, one scale group per beat when
  the group is shorter than the block (the engine then runs as one of that block, its other
  product lanes idle), and the vector unit scales each group's partial sum (one
  multiply-add per output and group, one more multiply when both operands carry such
  scales); what it does is the operator's ``formats`` note. As for the integer engines'
  weight groups, taking a group's partial sum out of the engine costs no cycles here (on the
  generated RTL each group would end a fold: ``rows`` drain cycles more per group);
* without ``int8`` among the element formats, an operand in neither of the first two is
  refused with a one-line :class:`sim.errors.FormatError` naming the operand and the fix.

The vector unit converts each output once when an operand is scaled or floating point. The
``auto`` scheme is the engine's first format in blocks of ``block`` for weights, activations
and the KV cache.

Area: per product lane (``rows * lanes * block``) one ``s x s`` multiplier and the
``align`` shifter's gates (the table's ``and2_gate`` area each, else the multiplier power law
at 1x1); per output (``rows * lanes``) ``B - 1`` adders of ``S`` bits, the accumulate and
exponent adders and the accumulator shifter's gates (the decoders, a few gates per code, are
not counted); registers: one beat's codes (A ``rows x block``, W ``lanes x block``), the
scales (``8 * (rows + lanes)``) and the ``rows x lanes`` accumulators (the footprint of
:func:`sim.engines.cost.footprint_bits` plus the scales).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from hw.spec.mx import SCALE_BITS, MxSpec
from models import ModelError
from models.formats import get_format
from models.ops import Gemm
from models.quant import QuantScheme
from sim.engines import Folds, FormatPlan, engine_slices, gemm_compute_cycles, gemm_folds
from sim.engines.cost import (
    ADD_RULE,
    MULT_RULE,
    ArithAction,
    PeArea,
    PriceTable,
    add,
    footprint_bits,
    lanes,
    mult,
)
from sim.errors import FormatError

__all__ = ["Folds", "arith_actions", "auto_scheme", "check_formats", "gemm_compute_cycles",
           "gemm_folds", "pe_area", "plan_formats"]

#: Bits of the exponent adder (two 8-bit E8M0 scales and the formats' constant).
EXP_ADD_BITS = 10


def _align_muxes(spec: MxSpec) -> int:
    """2:1 multiplexers of one product's alignment shifter."""
    return spec.product_bits * (2 * spec.max_shift).bit_length()


def _acc_muxes(spec: MxSpec) -> int:
    """2:1 multiplexers of one lane's accumulator alignment shifter."""
    return spec.acc_bits * spec.acc_bits.bit_length()


def _gate(table: PriceTable, section: str, tech: float) -> float:
    if section == "area" and "and2_gate" in table.area:
        return table.area_um2("and2_gate", tech)
    return mult(table, "energy" if section == "energy" else "area", 1, 1, tech)


def arith_actions(spec: MxSpec, table: PriceTable, tech: float) -> tuple[ArithAction, ...]:
    """Significand multiply, product alignment, block sum and block scaling (module
    docstring)."""
    s, S, B, acc = spec.sig_bits, spec.block_sum_bits, spec.block, spec.acc_bits
    gate = _gate(table, "energy", tech)
    out = [ArithAction(name="multiply", component="mac_multiplier",
                       unit=f"{s}x{s}-bit significand multiplies",
                       energy_pj=mult(table, "energy", s, s, tech), per_mac=1.0,
                       rule=f"one per MAC; {MULT_RULE}")]
    if spec.max_shift:
        out.append(ArithAction(
            name="align", component="mac_multiplier",
            unit=f"{spec.product_bits}-bit shifts of {(2 * spec.max_shift).bit_length()} stages",
            energy_pj=_align_muxes(spec) * gate, per_mac=1.0,
            rule=f"{_align_muxes(spec)} 2:1 multiplexers per product, one gate each; "
            f"{MULT_RULE} at a*w = 1"))
    out += [
        ArithAction(name="block_add", component="mac_adder", unit=f"{S}-bit additions",
                    energy_pj=add(table, "energy", S, tech), per_mac=(B - 1) / B,
                    rule=f"block - 1 = {B - 1} adds per block of {B} (adder tree); {ADD_RULE}"),
        ArithAction(name="block_scale", component="mac_adder",
                    unit=f"{acc}-bit additions and shifts",
                    energy_pj=3 * add(table, "energy", acc, tech) + _acc_muxes(spec) * gate,
                    per_mac=1 / B,
                    rule=f"per block: two {EXP_ADD_BITS}-bit exponent adds and the accumulate "
                    f"(priced at {acc} bits), {_acc_muxes(spec)} shifter multiplexers; "
                    f"{ADD_RULE}, gates at a*w = 1"),
    ]
    return tuple(out)


def pe_area(spec: MxSpec, table: PriceTable, tech: float) -> PeArea:
    """Multipliers and shifters per product lane, the block adder trees and the block
    scaling per lane, the beat's registers and scales (module docstring)."""
    s, S, B, acc = spec.sig_bits, spec.block_sum_bits, spec.block, spec.acc_bits
    gate = _gate(table, "area", tech)
    products = lanes(spec)
    mults = products * (mult(table, "area", s, s, tech) + _align_muxes(spec) * gate
                        * bool(spec.max_shift))
    per_output = ((B - 1) * add(table, "area", S, tech) + add(table, "area", acc, tech)
                  + 2 * add(table, "area", EXP_ADD_BITS, tech) + _acc_muxes(spec) * gate)
    adds = spec.rows * spec.lanes * per_output
    return PeArea(multipliers_um2=mults, adders_um2=adds,
                  register_bits=footprint_bits(spec) + SCALE_BITS * (spec.rows + spec.lanes))


# -- number formats -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Operand:
    """How the engine takes one operand: its code bits on the datapath, whether its scale
    groups along K are applied outside the engine (on the vector unit, per group), the K
    extent one beat may hold (``group`` when smaller than the block: a beat mixes no
    groups), and what to tell the user (``""`` when the engine runs it as it is)."""

    need_bits: int
    group_outside: int = 0
    beat_group: int = 0
    note: str = ""


def _operand(spec: MxSpec, fmt_name: str, group: int, scale_bits: int,
             scale_fmt: str) -> _Operand | str:
    """How the engine runs an operand, or why it cannot (module docstring)."""
    try:
        fmt = get_format(fmt_name)
    except ModelError:
        return f"unknown number format {fmt_name!r}"
    has_int8 = "int8" in spec.element_formats
    if fmt.name in spec.element_formats:
        need, note = fmt.bits, ""
    elif not fmt.is_float and has_int8:
        need = fmt.signed_datapath_bits()
        slices = engine_slices(need, 8, True)
        # INT8 elements at one constant scale: exact, nothing to say unless sliced
        note = f"{fmt.name} in {slices} INT8 slices" if slices > 1 else ""
        need = need if slices > 1 else 8
    elif fmt.is_float and has_int8:
        need = fmt.integer_bits
        slices = engine_slices(need, 8, True)
        note = (f"{fmt.name} as {need}-bit block floating point integers (a block's largest "
                f"exponent as its E8M0 scale)"
                + (f" in {slices} INT8 slices" if slices > 1 else " as INT8 elements"))
    else:
        return (f"{fmt.name} is not an element format of the MX engine (it decodes "
                f"{spec.formats}; other integers and floats run in INT8 slices only with int8 "
                f"among them)")
    if not (scale_bits and group):
        return _Operand(need, note=note)
    if scale_fmt == "e8m0" and scale_bits == SCALE_BITS and group % spec.block == 0:
        return _Operand(need, note=note)  # in the engine: the scale repeated for each beat
    kind = scale_fmt or f"{scale_bits}-bit"
    beat = (f"one group per beat of {spec.block}" if group < spec.block
            else f"{-(-group // spec.block)} beats per group")
    where = (f"{fmt.name} with {kind} scales per {group} along K: the engine runs the "
             f"elements ({beat}, E8M0 scales at 1) and the vector unit scales each group's "
             "partial sum")
    return _Operand(need, group_outside=group, beat_group=group if group < spec.block else 0,
                    note=f"{note}; {where}" if note else where)


def _refuse(spec: MxSpec, what: str, why: str) -> FormatError:
    fix = ("add int8 to --set engine.formats (floats then run in INT8 slices)"
           if "int8" not in spec.element_formats else "use another --quant")
    return FormatError(f"{what}: {why}; {fix}")


def plan_formats(spec: MxSpec, gemm: Gemm) -> FormatPlan:
    """How ``gemm`` runs on the engine (module docstring); :class:`FormatError` when an
    operand cannot run."""
    ops = []
    for side, fmt, group, bits, sfmt in (
            ("a_fmt", gemm.a_fmt, gemm.a_group, gemm.a_scale_bits, gemm.a_scale_fmt),
            ("w_fmt", gemm.w_fmt, gemm.w_group, gemm.w_scale_bits, gemm.w_scale_fmt)):
        got = _operand(spec, fmt, group, bits, sfmt)
        if isinstance(got, str):
            raise _refuse(spec, f"{gemm.name}.{side}", got)
        ops.append(got)
    a_fmt, w_fmt = get_format(gemm.a_fmt), get_format(gemm.w_fmt)
    scaled = bool(gemm.w_scale_bits or gemm.a_scale_bits or a_fmt.is_float or w_fmt.is_float)
    outside = [o.group_outside for o in ops if o.group_outside]
    beats = [o.beat_group for o in ops if o.beat_group]
    engine = None
    if beats:  # a beat holds one scale group: the engine runs as one of that block
        engine = dataclasses.replace(spec, block=math.gcd(spec.block, *beats))
    notes = list(dict.fromkeys(o.note for o in ops if o.note))
    return FormatPlan(a_need_bits=ops[0].need_bits, w_need_bits=ops[1].need_bits,
                      groups_outside=math.gcd(*outside) if outside else 0,
                      sides_outside=len(outside), scaled=scaled, engine=engine,
                      note="; ".join(notes))


def check_formats(spec: MxSpec, a_fmt: str, w_fmt: str) -> None:
    """``tpe sim gemm --a-fmt/--w-fmt``: element formats of the engine, small integers and
    floats in INT8 slices with ``int8`` among them."""
    for flag, fmt in (("--a-fmt", a_fmt), ("--w-fmt", w_fmt)):
        got = _operand(spec, fmt, 0, 0, "")
        if isinstance(got, str):
            raise FormatError(f"{flag}: {got}; use one of {spec.formats.replace('+', ', ')} "
                              "or --set engine.formats")


def auto_scheme(spec: MxSpec) -> QuantScheme:
    """The engine's first element format in blocks of ``block`` with E8M0 scales, for
    weights, activations and the KV cache."""
    e = spec.element_formats[0]
    return QuantScheme(
        name="auto", source="engine spec",
        description=f"the engine's {e} elements in blocks of {spec.block} with E8M0 scales",
        w_fmt=e, w_group=spec.block, w_scale_bits=SCALE_BITS, w_scale_fmt="e8m0",
        a_fmt=e, a_group=spec.block, a_scale_bits=SCALE_BITS, a_scale_fmt="e8m0",
        kv_fmt=e, kv_group=spec.block, kv_scale_bits=SCALE_BITS, kv_scale_fmt="e8m0")
