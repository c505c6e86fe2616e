"""How a GEMM in given number formats runs on an integer engine: slices, passes, conversions.

A workload's GEMM carries storage formats (``models.ops.Gemm``: INT2..INT16, bipolar, ternary,
FP8, FP16/BF16, with quantization scales); an engine multiplies integers of ``a_bits x w_bits``.
:func:`plan_gemm` decides, from the two, what the engine really does, and so what the scheme
costs on it:

* **Width each operand needs** on the datapath (:meth:`models.formats.NumberFormat.integer_bits`):
  its integer width (+1 on a signed engine for unsigned and bipolar values), 2 for ternary, and
  for a floating-point operand the block-floating-point width ``mantissa + 2`` (significand,
  hidden bit and sign, sharing one exponent per block: the FP-INT GEMM of FIGNA, Jang et al.
  HPCA 2024). Activations in floating point are converted on the vector unit as they are
  produced (:data:`CONVERT_OPS_PER_ELEM` operations each: the block's maximum exponent and one
  alignment shift); floating-point weights are aligned offline (no run-time cost; stored at
  their format's width).
* **Slices and passes.** An operand of ``need`` bits on a ``b``-bit port is split into
  ``1 + ceil((need - b) / (b - 1))`` slices on a signed engine (a signed top slice, unsigned
  ``b - 1``-bit lower ones) or ``ceil(need / b)`` on an unsigned one; the GEMM runs once per
  pair of slices (``a_slices * w_slices`` passes over every buffered tile) and the partial
  results are shifted and added. Engines whose operand widths are a run-time setting
  (``EngineBase.runtime_precision``: bit-serial, bit-plane, LUT) run each pass at the slice's
  width, so narrow formats take fewer cycles (e.g. W2 on the LUT engine: 2 weight planes
  instead of 8); multiplier arrays always run at their built width (W4 sign-extended to 8).
* **Rescaling.** Integer results are scaled back on the vector unit: one multiply-add per
  output and scale group (per channel/token: one; weight groups of ``g`` along K:
  ``ceil(K/g)`` partial sums per output, each scaled and added), plus ``passes - 1``
  shift-adds per output and group to combine the slices.
* **Orientation** (the spatial unrolling choice): the engine may compute ``C`` or ``C^T =
  B^T A^T`` (weights on the activation port): :func:`plan_gemm` plans either; choosing one is
  a search, in :mod:`mapping` (:data:`mapping.ORIENTATIONS`, part of every
  :class:`mapping.CoreSplit`; ``sim.system`` and ``sim.attention`` supply the costs), which
  matters for skinny decode GEMMs and asymmetric engines.
* Data moves at the stored width plus scales (``Gemm.a_storage_bits``/``w_storage_bits``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from hw.spec import ArchSpec, EngineSpec, SpecError
from models.caches import memo
from models.formats import NumberFormat, get_format
from models.ops import Gemm
from models.quant import QuantScheme, get_scheme
from sim.engines import engine_slices, format_hook
from sim.errors import FormatError

__all__ = [
    "CONVERT_OPS_PER_ELEM",
    "GemmPlan",
    "arch_scheme",
    "auto_scheme",
    "engine_slices",
    "operand_bits",
    "plan_gemm",
    "quant_formats",
    "resolve_scheme",
]

#: Vector operations to convert one floating-point activation to block floating point: a
#: running maximum of the block's exponents and one alignment shift (FIGNA's pre-alignment).
CONVERT_OPS_PER_ELEM = 2


def operand_bits(fmt: NumberFormat, engine: EngineSpec, what: str) -> int:
    """Datapath bits ``fmt`` needs on ``engine`` (module doc); :class:`FormatError` when an
    unsigned engine is given signed values."""
    if engine.signed:
        return fmt.signed_datapath_bits()
    if fmt.family == "uint":
        return fmt.bits
    raise FormatError(
        f"{what}: {fmt.name} is signed but the engine is unsigned (engine.signed=false); "
        "use an unsigned format or --set engine.signed=true"
    )


@memo(maxsize=1024)
def _at_precision(arch: ArchSpec, a_bits: int, w_bits: int) -> ArchSpec:
    e = arch.engine
    if (a_bits, w_bits) == (e.a_bits, e.w_bits):
        return arch
    engine = dataclasses.replace(e, a_bits=a_bits, w_bits=w_bits)
    return dataclasses.replace(arch, engine=engine)


@dataclass(frozen=True, slots=True, kw_only=True)
class GemmPlan:
    """What the engine does for one instance of a GEMM (see the module doc).

    ``arch``: the architecture whose engine runs each pass (operand widths set to the slice
    widths for run-time-precision engines, else unchanged); ``gemm``: the GEMM as the engine
    sees it (``transposed``: ``C^T = B^T A^T``, operands and their formats swapped);
    ``passes``: ``a_slices * w_slices``; ``vector_ops``: rescaling, slice combination and
    activation conversion on the vector unit, per instance (exact integers).
    """

    arch: ArchSpec
    gemm: Gemm
    transposed: bool
    a_need_bits: int
    w_need_bits: int
    a_slices: int
    w_slices: int
    convert_ops: int
    rescale_ops: int
    #: How the engine runs formats it does not take as they are (``""`` when it does).
    note: str = ""

    @property
    def passes(self) -> int:
        return self.a_slices * self.w_slices

    @property
    def vector_ops(self) -> int:
        return self.convert_ops + self.rescale_ops


@memo(maxsize=4096)
def _transpose(g: Gemm) -> Gemm:
    """``C^T[N, M] = B^T[N, K] A^T[K, M]``: B's scale groups along K become A's, A's B's."""
    return dataclasses.replace(
        g, M=g.N, N=g.M, a_fmt=g.w_fmt, w_fmt=g.a_fmt,
        a_scale_bits=g.w_scale_bits, a_group=g.w_group, w_scale_bits=g.a_scale_bits,
        w_group=g.a_group, a_scale_fmt=g.w_scale_fmt, w_scale_fmt=g.a_scale_fmt,
        b_is_weight=False,
    )


@memo(maxsize=16384)
def plan_gemm(arch: ArchSpec, gemm: Gemm, transposed: bool = False) -> GemmPlan:
    """The plan of one instance of ``gemm`` on ``arch``'s engine (module doc).

    A cost-model decision, not a search, so it stays here rather than in :mod:`mapping`: for a
    given orientation there is one plan. The slice counts are the fewest that hold each
    operand on its port (fewer cannot represent it; more only add passes and shift-adds), the
    pass width is the slice width (narrower runs are not possible, wider ones cost more bit
    cycles) and the vector work follows from the formats. The orientation, the one real
    choice, is searched by the caller over :data:`mapping.ORIENTATIONS`.
    """
    e = arch.engine
    a_fmt, w_fmt = get_format(gemm.a_fmt), get_format(gemm.w_fmt)
    seen = _transpose(gemm) if transposed else gemm
    outputs = gemm.M * gemm.N
    hook = format_hook(e.kind, "plan_formats")
    run = arch
    if hook is not None:  # the kind runs the formats its own way (sim.engines.FormatPlan)
        fp = hook(e, gemm)
        a_need, w_need = fp.a_need_bits, fp.w_need_bits
        if fp.engine is not None:
            run = dataclasses.replace(arch, engine=fp.engine)
        group, sides, scaled, note = fp.groups_outside, fp.sides_outside, fp.scaled, fp.note
    else:
        a_need = operand_bits(a_fmt, e, f"{gemm.name}.a_fmt")
        w_need = operand_bits(w_fmt, e, f"{gemm.name}.w_fmt")
        grouped = [g for g, b in ((gemm.a_group, gemm.a_scale_bits),
                                  (gemm.w_group, gemm.w_scale_bits)) if g and b]
        group, sides = (math.gcd(*grouped), len(grouped)) if grouped else (0, 0)
        scaled = bool(gemm.w_scale_bits or gemm.a_scale_bits or a_fmt.is_float
                      or w_fmt.is_float)
        note = _integer_note(a_fmt, w_fmt, gemm.b_is_weight, a_need, w_need, group)
    port_a, port_w = (w_need, a_need) if transposed else (a_need, w_need)
    a_slices = engine_slices(port_a, e.a_bits, e.signed)
    w_slices = engine_slices(port_w, e.w_bits, e.signed)
    if e.runtime_precision and hook is None:
        a_bits = port_a if a_slices == 1 else e.a_bits
        w_bits = port_w if w_slices == 1 else e.w_bits
        try:
            run = _at_precision(arch, a_bits, w_bits)
        except SpecError as err:  # pragma: no cover - every kind takes 1..its built width
            raise FormatError(f"{gemm.name}: cannot run {e.kind} at a{a_bits}w{w_bits}: "
                              f"{err}") from None
    passes = a_slices * w_slices
    if passes > 1:
        note = _passes_note(note, passes, e.a_bits, e.w_bits)
    # per output: one partial sum per scale group along K (one when none), each scaled (one
    # multiply-add, one more multiply for a second operand's scale) and the slices' partial
    # results shift-added
    partial = -(-gemm.K // group) if group else 1
    rescale = outputs * partial * (max(sides, int(scaled)) + passes - 1)
    return GemmPlan(
        arch=run, gemm=seen, transposed=transposed, a_need_bits=a_need, w_need_bits=w_need,
        a_slices=a_slices, w_slices=w_slices, convert_ops=_convert_ops(gemm, a_fmt, w_fmt),
        rescale_ops=rescale, note=note,
    )


@memo(maxsize=1024)
def _passes_note(note: str, passes: int, a_bits: int, w_bits: int) -> str:
    """``note`` and how the slices run (cached: the same few formats are planned for every
    shape)."""
    return "; ".join(x for x in (note, f"{passes} passes of slices on the engine's "
                                 f"{a_bits}x{w_bits}-bit ports, shift-added on the vector "
                                 "unit") if x)


@memo(maxsize=1024)
def _integer_note(a_fmt: NumberFormat, w_fmt: NumberFormat, b_is_weight: bool, a_need: int,
                  w_need: int, group: int) -> str:
    """What an integer engine makes of floating-point operands and scales along K (cached:
    the same few formats are planned for every shape)."""
    notes = []
    for fmt, need, what in ((a_fmt, a_need, "activations"), (w_fmt, w_need, "weights")):
        if fmt.is_float:
            how = ("converted on the vector unit as produced, "
                   f"{CONVERT_OPS_PER_ELEM} operations each" if what == "activations"
                   or not b_is_weight else "aligned offline")
            notes.append(f"{fmt.name} {what} as {need}-bit block floating point integers "
                         f"({how})")
    if group:
        notes.append(f"scales per {group} along K applied on the vector unit to each "
                     "group's partial sum")
    return "; ".join(dict.fromkeys(notes))


def _convert_ops(gemm: Gemm, a_fmt: NumberFormat, w_fmt: NumberFormat) -> int:
    """Vector operations converting floating-point activations as they are produced (A, and B
    when it is an activation too, as in attention); weights are converted offline."""
    convert = gemm.M * gemm.K * CONVERT_OPS_PER_ELEM if a_fmt.is_float else 0
    if not gemm.b_is_weight and w_fmt.is_float:
        convert += gemm.K * gemm.N * CONVERT_OPS_PER_ELEM
    return convert


# -- the engine's own scheme ---------------------------------------------------------------


def auto_scheme(engine: EngineSpec) -> QuantScheme:
    """The ``auto`` scheme: the engine's own integer widths, no scales (or the kind's own
    native formats, :data:`sim.engines.FORMAT_HOOKS`)."""
    hook = format_hook(engine.kind, "auto_scheme")
    if hook is not None:
        return hook(engine)
    p = "int" if engine.signed else "uint"
    kv = min(engine.a_bits, engine.w_bits)
    return QuantScheme(name="auto", description="the engine's native integer widths",
                       source="engine spec", w_fmt=f"{p}{engine.w_bits}",
                       a_fmt=f"{p}{engine.a_bits}", kv_fmt=f"{p}{kv}")


def resolve_scheme(text: str, engine: EngineSpec) -> QuantScheme:
    """``--quant``: ``auto`` or any :func:`models.quant.get_scheme` string; a scheme the
    engine's kind refuses raises :class:`FormatError` naming it."""
    if text == "auto":
        return auto_scheme(engine)
    return get_scheme(text)


def arch_scheme(text: str, arch: ArchSpec) -> QuantScheme:
    """:func:`resolve_scheme` on ``arch``'s engine, but ``auto`` on a GPU preset (a ``[gpu]``
    table) is its 16-bit float path, bf16, as ``tpe sim gemm`` takes there by default: a GPU
    has no 16-bit integer path, so its kernel model would run the engine's int16 widths as
    bf16 while the lowering priced their quantization besides."""
    if text == "auto" and arch.gpu is not None:
        return dataclasses.replace(get_scheme("bf16"), name="auto",
                                   description="a GPU preset's 16-bit float path (bf16)")
    return resolve_scheme(text, arch.engine)


def quant_formats(scheme: str, engine: EngineSpec) -> tuple[str, str, str]:
    """``(a_fmt, w_fmt, kv_fmt)`` of a ``--quant`` scheme."""
    q = resolve_scheme(scheme, engine)
    return q.a_fmt, q.w_fmt, q.kv_fmt
