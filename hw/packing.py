"""Stream payloads as flat integers: layout descriptors (for manifests) and a codec.

A payload is a struct of fields; each field is a scalar or an array of equal lanes, packed
LSB first as Amaranth packs ``data.StructLayout`` / ``data.ArrayLayout``: lane n of a field
occupies bits ``offset + n*elem_width`` up to ``offset + (n+1)*elem_width - 1``. The
descriptors are plain JSON (with the field's whole bit range, ``lsb`` and ``msb``, for a
reader), so a test bench rebuilds the codec from a design's manifest alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from amaranth import Shape
from amaranth.lib import data

__all__ = ["Codec", "FieldDesc", "describe_layout"]


@dataclass(frozen=True, slots=True)
class FieldDesc:
    name: str
    offset: int
    lanes: int  # 0 for a scalar field
    elem_width: int
    signed: bool

    @property
    def width(self) -> int:
        return self.elem_width * max(self.lanes, 1)

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "offset": self.offset, "lanes": self.lanes,
                "elem_width": self.elem_width, "signed": self.signed,
                "lsb": self.offset, "msb": self.offset + self.width - 1}


_KEYS = ("name", "offset", "lanes", "elem_width", "signed")


def describe_layout(layout: data.StructLayout) -> list[FieldDesc]:
    """Field descriptors of a struct layout whose members are scalars or 1-D arrays."""
    out = []
    for name, field in layout:
        shape = field.shape
        if isinstance(shape, data.ArrayLayout):
            elem = Shape.cast(shape.elem_shape)
            out.append(FieldDesc(name, field.offset, shape.length, elem.width, elem.signed))
        else:
            elem = Shape.cast(shape)
            out.append(FieldDesc(name, field.offset, 0, elem.width, elem.signed))
    return out


class Codec:
    """Packs field values into one integer and back, per a list of descriptors."""

    def __init__(self, fields: Sequence[FieldDesc | Mapping[str, Any]]):
        self.fields = {
            f.name: f for f in (x if isinstance(x, FieldDesc)
                                else FieldDesc(**{k: x[k] for k in _KEYS}) for x in fields)
        }

    def pack(self, **values: Any) -> int:
        word = 0
        for name, value in values.items():
            f = self.fields[name]
            mask = (1 << f.elem_width) - 1
            lanes = [value] if f.lanes == 0 else list(value)
            if f.lanes and len(lanes) != f.lanes:
                raise ValueError(f"{name}: expected {f.lanes} lanes, got {len(lanes)}")
            for n, v in enumerate(lanes):
                word |= (int(v) & mask) << (f.offset + n * f.elem_width)
        return word

    def unpack(self, word: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, f in self.fields.items():
            mask = (1 << f.elem_width) - 1
            vals = []
            for n in range(max(f.lanes, 1)):
                v = (word >> (f.offset + n * f.elem_width)) & mask
                if f.signed and v >> (f.elem_width - 1):
                    v -= 1 << f.elem_width
                vals.append(v)
            out[name] = vals if f.lanes else vals[0]
        return out
