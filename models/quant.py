"""Quantization schemes as data: how weights, activations and the KV cache are stored.

Named schemes live in ``models/data/schemes.toml`` (each with its source). A scheme string is

* a name from that file (``w8a8``, ``w4a16``, ``fp8``, ``w4a8-mixed``, ...), or
* the generic ``wNaM[kvB]``: ``N``-bit integer weights (per channel), ``M``-bit integer
  activations (per token; ``a16`` means fp16 activations, no scale) and a ``B``-bit KV cache,
  each 1..16,

optionally followed by ``+kvB`` (``B`` in 2..8 or 16) replacing the KV part with KIVI's cache
(Liu et al., ICML 2024): keys quantized per channel and values per token, in groups of
:data:`KIVI_GROUP` with an fp16 scale and zero point, the newest :data:`KIVI_RESIDUAL` tokens
kept in the activation format.

A scheme knows nothing about hardware: what it costs on an engine is ``sim``'s business.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from models import ModelError
from models.caches import memo
from models.formats import get_block_format, get_format

__all__ = [
    "KIVI_GROUP",
    "KIVI_RESIDUAL",
    "KIVI_SCALE_BITS",
    "QuantScheme",
    "get_scheme",
    "known_schemes",
    "named_schemes",
    "scheme_help",
]

_SCHEMES_FILE = Path(__file__).with_name("data") / "schemes.toml"
#: KIVI's group size along tokens (keys) / channels (values) and residual length (KIVI-2 setup,
#: Liu et al., "KIVI: A Tuning-Free Asymmetric 2bit Quantization for KV Cache", ICML 2024).
KIVI_GROUP = 32
KIVI_RESIDUAL = 128
#: Bits of an fp16 scale plus an fp16 zero point (KIVI stores both per group).
KIVI_SCALE_BITS = 32
_FP16_SCALE_BITS = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class QuantScheme:
    """Storage formats and quantization metadata of one LLM's tensors (see module doc)."""

    name: str
    description: str = ""
    source: str = ""
    w_fmt: str
    w_group: int = 0
    w_scale_bits: int = 0
    a_fmt: str
    a_scale_bits: int = 0
    #: Activations along K sharing one scale (0: one per token).
    a_group: int = 0
    kv_fmt: str
    kv_group: int = 0
    kv_scale_bits: int = 0
    kv_residual: int = 0
    #: Operator name -> scheme name, for mixed-precision layers.
    overrides: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: The block formats (``models.formats.BLOCK_FORMATS``) the tensors are stored in, when
    #: block-scaled: their element formats, blocks and scales set the fields above.
    w_block: str = ""
    a_block: str = ""
    kv_block: str = ""
    #: The block scales' formats (``models.formats.BlockFormat.scale``), set with the block
    #: formats; ``""`` otherwise.
    w_scale_fmt: str = ""
    a_scale_fmt: str = ""
    kv_scale_fmt: str = ""

    def __post_init__(self) -> None:
        where = f"scheme {self.name}"
        for name in ("w_fmt", "a_fmt", "kv_fmt"):
            try:
                get_format(getattr(self, name))
            except ModelError as err:
                raise ModelError(f"{where}: {name}: {err}") from None
        for name in ("w_group", "w_scale_bits", "a_scale_bits", "a_group", "kv_group",
                     "kv_scale_bits", "kv_residual"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ModelError(f"{where}: {name}: must be an integer >= 0 (got {v!r})")
        if self.kv_scale_bits and not self.kv_group:
            raise ModelError(f"{where}: kv_group: a scaled KV cache needs kv_group > 0")

    def for_op(self, op_name: str) -> QuantScheme:
        """The scheme an operator uses (its override, else this one)."""
        other = self.overrides.get(op_name)
        return self if other is None else get_scheme(other)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "description": self.description, "source": self.source,
            "w_fmt": self.w_fmt, "w_group": self.w_group, "w_scale_bits": self.w_scale_bits,
            "a_fmt": self.a_fmt, "a_scale_bits": self.a_scale_bits, "a_group": self.a_group,
            "kv_fmt": self.kv_fmt,
            "kv_group": self.kv_group, "kv_scale_bits": self.kv_scale_bits,
            "kv_residual": self.kv_residual, "overrides": dict(self.overrides),
            "w_block": self.w_block, "a_block": self.a_block, "kv_block": self.kv_block,
            "w_scale_fmt": self.w_scale_fmt, "a_scale_fmt": self.a_scale_fmt,
            "kv_scale_fmt": self.kv_scale_fmt,
        }


_KEYS = frozenset({"description", "source", "w_fmt", "w_group", "w_scale_bits", "a_fmt",
                   "a_scale_bits", "a_group", "w_block", "a_block", "kv_block", "kv_fmt",
                   "kv_group", "kv_scale_bits", "kv_residual", "overrides"})


@memo(maxsize=None)
def _named() -> MappingProxyType[str, QuantScheme]:
    with open(_SCHEMES_FILE, "rb") as f:
        raw = tomllib.load(f)
    out: dict[str, QuantScheme] = {}
    for name, entry in raw.items():
        unknown = set(entry) - _KEYS
        if unknown:
            raise ModelError(f"{_SCHEMES_FILE.name}: [{name}] unknown key(s) "
                             f"{', '.join(sorted(unknown))}; known: {', '.join(sorted(_KEYS))}")
        entry = _blocks(name, dict(entry))
        entry["overrides"] = MappingProxyType(dict(entry.get("overrides", {})))
        out[name] = QuantScheme(name=name, **entry)
    for s in out.values():
        for op, target in s.overrides.items():
            if target not in out:
                raise ModelError(f"{_SCHEMES_FILE.name}: [{s.name}] overrides.{op}: unknown "
                                 f"scheme {target!r}")
    return MappingProxyType(out)


#: Per tensor: the block-format key of a scheme entry and the fields it sets (format, group,
#: scale bits).
_BLOCK_KEYS = {"w_block": ("w_fmt", "w_group", "w_scale_bits", "w_scale_fmt"),
               "a_block": ("a_fmt", "a_group", "a_scale_bits", "a_scale_fmt"),
               "kv_block": ("kv_fmt", "kv_group", "kv_scale_bits", "kv_scale_fmt")}


def _blocks(name: str, entry: dict[str, Any]) -> dict[str, Any]:
    """A scheme entry with its block formats (``w_block = "mxfp4"``, ...) spelled out as the
    element format, the block as the group, the scale's bits and its format."""
    for key, fields in _BLOCK_KEYS.items():
        if key not in entry:
            continue
        given = [f for f in fields if f in entry]
        if given:
            raise ModelError(f"{_SCHEMES_FILE.name}: [{name}] {given[0]}: set by {key}; give "
                             "one or the other")
        try:
            fmt = get_block_format(entry[key])
        except ModelError as err:
            raise ModelError(f"{_SCHEMES_FILE.name}: [{name}] {key}: {err}") from None
        entry |= dict(zip(fields, (fmt.element, fmt.block, fmt.scale_bits, fmt.scale),
                          strict=True))
    return entry


def named_schemes() -> list[str]:
    """The schemes of ``models/data/schemes.toml``, in file order."""
    return list(_named())


def known_schemes() -> list[str]:
    """Named schemes, in file order, plus the generic forms."""
    return [*named_schemes(), "wNaM[kvB]", "<scheme>+kvB"]


def scheme_help() -> str:
    return (", ".join(_named()) + "; or wNaM[kvB] (integer N-bit weights, M-bit activations, "
            "a16 = fp16, B-bit KV cache); any of them +kvB for a KIVI B-bit KV cache "
            "(B in 2, 3, 4, 8)")


_GENERIC = re.compile(r"^w(\d+)a(\d+)(?:kv(\d+))?$")
_KV_SUFFIX = re.compile(r"^(.*)\+kv(\d+)$")


def _kivi(scheme: QuantScheme, bits: int, text: str) -> QuantScheme:
    if bits == 16:
        return replace(scheme, name=text, kv_fmt="fp16", kv_group=0, kv_scale_bits=0,
                       kv_residual=0)
    return replace(scheme, name=text, kv_fmt=f"int{bits}", kv_group=KIVI_GROUP,
                   kv_scale_bits=KIVI_SCALE_BITS, kv_residual=KIVI_RESIDUAL)


def _generic(w: int, a: int, kv: int | None, text: str) -> QuantScheme:
    a_fmt = "fp16" if a == 16 else f"int{a}"
    scheme = QuantScheme(
        name=text,
        description=f"INT{w} per-channel weights, "
        + ("FP16 activations" if a == 16 else f"INT{a} per-token activations"),
        source="generic integer scheme (fp16 per-channel / per-token scales)",
        w_fmt=f"int{w}", w_scale_bits=_FP16_SCALE_BITS,
        a_fmt=a_fmt, a_scale_bits=0 if a == 16 else _FP16_SCALE_BITS,
        kv_fmt=a_fmt,
    )
    if kv is not None:
        scheme = _kivi(scheme, kv, text)
    return scheme


@memo(maxsize=256)
def get_scheme(text: str) -> QuantScheme:
    """The scheme named by ``text`` (see the module doc); :class:`ModelError` listing the
    known ones otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise ModelError(f"--quant: expected a scheme name (got {text!r}); known: "
                         + scheme_help())
    key = text.strip().lower()
    base, kv = key, None
    m = _KV_SUFFIX.match(key)
    if m:
        base, kv = m.group(1), int(m.group(2))
        if kv not in (2, 3, 4, 8, 16):
            raise ModelError(f"--quant: {text!r}: +kv{kv} is not a KV-cache width; use +kv2, "
                             "+kv3, +kv4, +kv8 or +kv16")
    named = _named()
    if base in named:
        scheme = named[base]
        return scheme if kv is None else _kivi(scheme, kv, key)
    g = _GENERIC.match(base)
    if g:
        bits = [int(x) for x in g.groups() if x is not None]
        if not all(1 <= b <= 16 for b in bits):
            raise ModelError(f"--quant: {text!r}: widths must be 1..16 bits")
        w, a = int(g.group(1)), int(g.group(2))
        inner_kv = None if g.group(3) is None else int(g.group(3))
        scheme = _generic(w, a, inner_kv, base)
        return scheme if kv is None else _kivi(scheme, kv, key)
    raise ModelError(f"--quant: unknown scheme {text!r}; known: {scheme_help()}")
