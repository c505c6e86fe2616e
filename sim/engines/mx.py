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

Formats (the hooks of :data:`sim.engines.FORMAT_HOOKS`): a GEMM runs in one pass when each
operand is in one of the engine's element formats (``spec.formats``), as MX blocks of
``spec.block`` along K with E8M0 scales (a scheme's block along K must be the engine's), or
an integer format of at most 8 bits on a signed datapath when ``int8`` is among them (run as
MXINT8 elements with one constant scale: exact). The block scales are applied inside the
engine, so the vector unit only converts each output once (one operation per output when an
operand is scaled or floating point), plus, for integer operands with group scales, one per
group as on the integer engines. Anything else (FP16/BF16 operands, NVFP4's E4M3 block
scales, other blocks) is refused with a one-line :class:`sim.errors.FormatError` naming the
operand and the schemes the engine runs. The ``auto`` scheme is the engine's first format
in blocks of ``block`` for weights, activations and the KV cache.

Area: per product lane (``rows * lanes * block``) one ``s x s`` multiplier and the
``align`` shifter's gates (the table's ``and2_gate`` area each, else the multiplier power law
at 1x1); per output (``rows * lanes``) ``B - 1`` adders of ``S`` bits, the accumulate and
exponent adders and the accumulator shifter's gates (the decoders, a few gates per code, are
not counted); registers: one beat's codes (A ``rows x block``, W ``lanes x block``), the
scales (``8 * (rows + lanes)``) and the ``rows x lanes`` accumulators (the footprint of
:func:`sim.engines.cost.footprint_bits` plus the scales).
"""

from __future__ import annotations

from hw.spec.mx import SCALE_BITS, MxSpec
from models import ModelError
from models.formats import BLOCK_FORMATS, get_format
from models.llm import query_format
from models.ops import Gemm
from models.quant import QuantScheme, get_scheme, named_schemes
from sim.engines import Folds, gemm_compute_cycles, gemm_folds
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

__all__ = ["Folds", "arith_actions", "auto_scheme", "check_formats", "check_scheme",
           "gemm_compute_cycles", "gemm_folds", "pe_area", "plan_formats"]

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


def _operand_bits(spec: MxSpec, fmt_name: str, group: int, scale_bits: int) -> int | str:
    """Code bits of an operand the engine runs, or why it cannot (module docstring)."""
    try:
        fmt = get_format(fmt_name)
    except ModelError:
        return f"unknown number format {fmt_name!r}"
    native = fmt.name in spec.element_formats
    blocks = not (scale_bits and group) or (scale_bits == SCALE_BITS and group == spec.block)
    if native and blocks:
        return fmt.bits
    if fmt.family in ("int", "bipolar", "ternary") and "int8" in spec.element_formats \
            and fmt.signed_datapath_bits() <= 8:
        return 8  # as INT8 elements at one constant scale; group scales applied outside
    if native:
        return (f"{fmt.name} with {scale_bits}-bit scales per {group} elements along K, but "
                f"the engine takes {SCALE_BITS}-bit E8M0 scales per block of {spec.block}")
    return (f"{fmt.name} is not an element format of the MX engine (it decodes "
            f"{spec.formats}" + (", and integers of at most 8 bits as INT8" if "int8" in
                                 spec.element_formats else "") + ")")


def _runnable(spec: MxSpec) -> list[str]:
    """The named schemes whose every tensor the engine runs."""
    out = []
    for name in named_schemes():
        s = get_scheme(name)
        tensors = ((s.w_fmt, s.w_group, s.w_scale_bits), (s.a_fmt, s.a_group, s.a_scale_bits),
                   (s.kv_fmt, s.kv_group, s.kv_scale_bits), (query_format(s), 0, 0))
        if (all(isinstance(_operand_bits(spec, *t), int) for t in tensors)
                and _scheme_problem(spec, s) is None and not s.overrides):
            out.append(name)
    return out


def _refuse(spec: MxSpec, what: str, why: str) -> FormatError:
    runs = _runnable(spec)
    return FormatError(f"{what}: {why}; the engine runs the schemes "
                       f"{', '.join(runs) if runs else '(none named)'} or --set engine.formats")


def plan_formats(spec: MxSpec, gemm: Gemm) -> tuple[int, int, int]:
    """``(a_need_bits, w_need_bits, rescale_ops_per_output)`` of ``gemm`` on the engine
    (module docstring); :class:`FormatError` when an operand cannot run."""
    need = []
    for side, fmt, group, bits in (("a_fmt", gemm.a_fmt, gemm.a_group, gemm.a_scale_bits),
                                   ("w_fmt", gemm.w_fmt, gemm.w_group, gemm.w_scale_bits)):
        got = _operand_bits(spec, fmt, group, bits)
        if isinstance(got, str):
            raise _refuse(spec, f"{gemm.name}.{side}", got)
        need.append(got)
    a_fmt, w_fmt = get_format(gemm.a_fmt), get_format(gemm.w_fmt)
    scaled = bool(gemm.w_scale_bits or gemm.a_scale_bits or a_fmt.is_float or w_fmt.is_float)
    # integer weights with group scales: one partial sum per group is scaled outside, as on
    # the integer engines; block formats are scaled in the engine
    native = (w_fmt.name in spec.element_formats
              and (not gemm.w_group or gemm.w_scale_bits == SCALE_BITS))
    groups = 1 if native else gemm.w_groups_per_column
    return need[0], need[1], groups * int(scaled)


def check_formats(spec: MxSpec, a_fmt: str, w_fmt: str) -> None:
    """``tpe sim gemm --a-fmt/--w-fmt``: element formats of the engine (or small integers
    with ``int8`` among them)."""
    for flag, fmt in (("--a-fmt", a_fmt), ("--w-fmt", w_fmt)):
        got = _operand_bits(spec, fmt, 0, 0)
        if isinstance(got, str):
            raise FormatError(f"{flag}: {got}; use one of {spec.formats.replace('+', ', ')} "
                              "or --set engine.formats")


def _scheme_problem(spec: MxSpec, scheme: QuantScheme) -> str | None:
    for key in ("w_block", "a_block", "kv_block"):
        name = getattr(scheme, key)
        if name and BLOCK_FORMATS[name].scale != "e8m0":
            f = BLOCK_FORMATS[name]
            return (f"{key} {name} has {f.scale} block scales, the MX engine E8M0 ones "
                    "(powers of two) only")
    return None


def check_scheme(spec: MxSpec, scheme: QuantScheme) -> None:
    """Refuses a scheme whose block scales are not E8M0 (NVFP4's E4M3 scales): the
    operators' formats carry the scale's width, not its kind."""
    why = _scheme_problem(spec, scheme)
    if why is not None:
        raise _refuse(spec, f"--quant: {scheme.name}", why)


def auto_scheme(spec: MxSpec) -> QuantScheme:
    """The engine's first element format in blocks of ``block`` with E8M0 scales, for
    weights, activations and the KV cache."""
    e = spec.element_formats[0]
    return QuantScheme(
        name="auto", source="engine spec",
        description=f"the engine's {e} elements in blocks of {spec.block} with E8M0 scales",
        w_fmt=e, w_group=spec.block, w_scale_bits=SCALE_BITS,
        a_fmt=e, a_group=spec.block, a_scale_bits=SCALE_BITS,
        kv_fmt=e, kv_group=spec.block, kv_scale_bits=SCALE_BITS)
