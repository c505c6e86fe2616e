"""Number formats of operands (data, not hardware): width, signedness, family."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from models import ModelError
from models.caches import memo

__all__ = ["NumberFormat", "get_format", "known_formats"]


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
    "ternary": NumberFormat("ternary", 2, True, "ternary"),
}
_INT_RE = re.compile(r"^(u?int|bipolar)(\d+)$")


def get_format(name: str) -> NumberFormat:
    """``int1``..``int64``, ``uint1``..``uint64``, ``bipolar1``..``bipolar64``, fp formats."""
    if not isinstance(name, str):
        raise ModelError(f"format: expected a format name string (got {name!r}); known: "
                         f"{', '.join(known_formats())}")
    return _get_format(name)


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
