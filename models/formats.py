"""Number formats of operands (data, not hardware): width, signedness, family."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from models import ModelError

__all__ = ["NumberFormat", "get_format", "known_formats"]


@dataclass(frozen=True, slots=True)
class NumberFormat:
    """A scalar format. ``bits`` is the storage width of one element."""

    name: str
    bits: int
    signed: bool
    family: Literal["int", "uint", "fp", "bipolar", "ternary"]

    @property
    def bytes(self) -> float:
        return self.bits / 8


_FIXED = {
    "fp32": NumberFormat("fp32", 32, True, "fp"),
    "fp16": NumberFormat("fp16", 16, True, "fp"),
    "bf16": NumberFormat("bf16", 16, True, "fp"),
    "fp8": NumberFormat("fp8", 8, True, "fp"),
    "fp8_e4m3": NumberFormat("fp8_e4m3", 8, True, "fp"),
    "fp8_e5m2": NumberFormat("fp8_e5m2", 8, True, "fp"),
    "ternary": NumberFormat("ternary", 2, True, "ternary"),
}
_INT_RE = re.compile(r"^(u?int|bipolar)(\d+)$")


def get_format(name: str) -> NumberFormat:
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
