"""Number formats of operands (data, not hardware): width, signedness, family."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from models import ModelError
from models.caches import memo

__all__ = ["BLOCK_FORMATS", "BlockFormat", "NumberFormat", "accumulator_format",
           "full_precision_format", "get_block_format", "get_format", "known_formats"]


@dataclass(frozen=True, slots=True)
class NumberFormat:
    """A scalar format. ``bits`` is the storage width of one element."""

    name: str
    bits: int
    signed: bool
    family: Literal["int", "uint", "fp", "bipolar", "ternary"]
    #: Stored significand bits of a floating-point format (0 for the integer families).
    mantissa_bits: int = 0

    @property
    def bytes(self) -> float:
        return self.bits / 8

    @property
    def is_float(self) -> bool:
        return self.family == "fp"

    @property
    def integer_bits(self) -> int:
        """Bits of a two's-complement integer holding every value of this format.

        Integer families: their width (+1 for unsigned and bipolar values, which need a sign
        bit beside their magnitude on a signed datapath: see ``signed_datapath_bits``).
        Floating point: the block-floating-point width, the significand with its hidden bit
        plus a sign (``mantissa_bits + 2``): an integer engine runs an fp operand as integers
        that share one exponent per block (the FP-INT scheme of FIGNA, Jang et al. HPCA 2024).
        Ternary: 2 (values -1, 0, +1).
        """
        if self.family == "fp":
            return self.mantissa_bits + 2
        return self.bits

    def signed_datapath_bits(self) -> int:
        """Bits this format needs on a signed (two's-complement) datapath."""
        if self.family in ("uint", "bipolar"):
            return self.bits + 1
        return self.integer_bits


_FIXED = {
    # IEEE 754 binary32 / binary16, bfloat16, and the OCP FP8 formats (OCP 8-bit Floating Point
    # Specification v1.0, 2023): E4M3 (3 stored significand bits) and E5M2 (2).
    "fp32": NumberFormat("fp32", 32, True, "fp", 23),
    "fp16": NumberFormat("fp16", 16, True, "fp", 10),
    "bf16": NumberFormat("bf16", 16, True, "fp", 7),
    "fp8": NumberFormat("fp8", 8, True, "fp", 3),
    "fp8_e4m3": NumberFormat("fp8_e4m3", 8, True, "fp", 3),
    "fp8_e5m2": NumberFormat("fp8_e5m2", 8, True, "fp", 2),
    # The OCP Microscaling (MX) v1.0 element formats (OCP Microscaling Formats (MX)
    # Specification v1.0, 2023, section 5.3): FP6 E3M2 and E2M3, FP4 E2M1 (also NVFP4's).
    "fp6_e3m2": NumberFormat("fp6_e3m2", 6, True, "fp", 2),
    "fp6_e2m3": NumberFormat("fp6_e2m3", 6, True, "fp", 3),
    "fp4_e2m1": NumberFormat("fp4_e2m1", 4, True, "fp", 1),
    "ternary": NumberFormat("ternary", 2, True, "ternary"),
}
_INT_RE = re.compile(r"^(u?int|bipolar)(\d+)$")


def get_format(name: str) -> NumberFormat:
    """``int1``..``int64``, ``uint1``..``uint64``, ``bipolar1``..``bipolar64``, fp formats."""
    if not isinstance(name, str):
        raise ModelError(f"format: expected a format name string (got {name!r}); known: "
                         f"{', '.join(known_formats())}")
    return _get_format(name)


def accumulator_format(*fmts: str) -> str:
    """The format a product of operands in ``fmts`` accumulates and is written in: fp32 if any
    operand is floating point, else int32 (a model's GEMMs, ``models.llm.lower`` and
    ``models.trace``, and ``tpe sim gemm``'s default ``--o-fmt``)."""
    return "fp32" if any(get_format(f).is_float for f in fmts) else "int32"


def full_precision_format(fmt: str) -> str:
    """The format of full-precision activations next to ``fmt``: itself if floating point,
    else fp16."""
    return fmt if get_format(fmt).is_float else "fp16"


@memo(maxsize=512)
def _get_format(name: str) -> NumberFormat:
    """``int1``..``int64``, ``uint1``..``uint64``, ``bipolar1``..``bipolar64``, fp formats."""
    key = name.strip().lower()
    if key in _FIXED:
        return _FIXED[key]
    m = _INT_RE.match(key)
    if m and 1 <= int(m.group(2)) <= 64:
        family, bits = m.group(1), int(m.group(2))
        return NumberFormat(key, bits, family != "uint", family)  # type: ignore[arg-type]
    raise ModelError(f"format: unknown number format {name!r}; known: {', '.join(known_formats())}")


def known_formats() -> list[str]:
    return [*_FIXED, "int1..int64", "uint1..uint64", "bipolar1..bipolar64"]


@dataclass(frozen=True, slots=True)
class BlockFormat:
    """A block-scaled format: ``block`` consecutive elements (along the reduction dimension)
    in ``element`` share one scale stored in ``scale`` (``scale_bits`` wide); NVFP4 adds one
    ``tensor_scale_bits`` scale per tensor. ``reorder``: the channels (the reduction
    dimension) are permuted once, offline, so that elements of like magnitude share blocks and
    outliers are kept apart in blocks of their own (Trukhanov and Soloveychik's K-sort); the
    permutation costs no storage (the other operand is permuted the same way). Conversion
    and arithmetic: ``models.mx``."""

    name: str
    element: str
    block: int
    scale: str
    scale_bits: int
    tensor_scale_bits: int = 0
    reorder: bool = False
    #: Where the format is defined.
    source: str = ""

    @property
    def storage_bits(self) -> float:
        """Bits per element, the block's scale amortized over its elements; the per-tensor
        scale is left out (one number per tensor)."""
        return get_format(self.element).bits + self.scale_bits / self.block


_MX = "OCP Microscaling Formats (MX) Specification v1.0 (2023), section 5"
_BFP = ("Trukhanov and Soloveychik, 'Accurate Block Quantization in LLMs with Outliers' "
        "(2024): block floating point, a shared 8-bit exponent per block")
#: The block-scaled formats, by name.
BLOCK_FORMATS: dict[str, BlockFormat] = {f.name: f for f in (
    BlockFormat("mxfp8_e4m3", "fp8_e4m3", 32, "e8m0", 8, source=_MX),
    BlockFormat("mxfp8_e5m2", "fp8_e5m2", 32, "e8m0", 8, source=_MX),
    BlockFormat("mxfp6_e3m2", "fp6_e3m2", 32, "e8m0", 8, source=_MX),
    BlockFormat("mxfp6_e2m3", "fp6_e2m3", 32, "e8m0", 8, source=_MX),
    BlockFormat("mxfp4", "fp4_e2m1", 32, "e8m0", 8, source=_MX),
    BlockFormat("mxint8", "int8", 32, "e8m0", 8, source=_MX),
    # NVIDIA NVFP4 (Blackwell): E2M1 elements, an FP8 E4M3 scale per 16, an FP32 per-tensor
    # scale (NVIDIA, "Introducing NVFP4 for efficient and accurate low-precision inference",
    # 2025; the PTX ISA's block-scaled MMA)
    BlockFormat("nvfp4", "fp4_e2m1", 16, "fp8_e4m3", 8, tensor_scale_bits=32,
                source="NVIDIA NVFP4: E2M1 elements, an E4M3 scale per 16, an FP32 scale "
                       "per tensor"),
    BlockFormat("bfp8", "int8", 16, "e8m0", 8, source=_BFP),
    BlockFormat("bfp4", "int4", 16, "e8m0", 8, source=_BFP),
    BlockFormat("bfp4_ksort", "int4", 16, "e8m0", 8, reorder=True,
                source=_BFP + "; channels sorted by magnitude (K-sort) so outliers share "
                       "blocks"),
)}


def get_block_format(name: str) -> BlockFormat:
    """A block format by name (:data:`BLOCK_FORMATS`); :class:`ModelError` names the known
    ones."""
    try:
        return BLOCK_FORMATS[name]
    except (KeyError, TypeError):
        raise ModelError(f"format: unknown block format {name!r}; known: "
                         f"{', '.join(BLOCK_FORMATS)}") from None
