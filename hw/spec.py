"""Engine and architecture specs: frozen, validated, loaded from TOML.

A spec is plain data. ``hw`` generators elaborate circuits from it, ``sim`` predicts cycles,
energy and area from it, and the timing properties defined here (``fold_cycles`` and friends)
are the single source of truth that both the RTL tests and the cycle models use.

Validation happens at construction (pydantic dataclasses in strict mode): a wrong type, an
out-of-range value or an unknown key raises :class:`SpecError` with a one-line message that
names the field, e.g. ``engine.rows: must be >= 1 (got 0)``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass

__all__ = [
    "ArchSpec",
    "DramSpec",
    "EngineSpec",
    "SpecError",
    "SramSpec",
    "SystolicSpec",
    "apply_overrides",
    "arch_from_dict",
    "engine_from_dict",
    "list_presets",
    "load_arch",
    "spec_to_dict",
]

PRESET_DIR = Path(__file__).with_name("presets")

_CONFIG = ConfigDict(extra="forbid", strict=True, frozen=True)

#: Operand widths every engine accepts (bits).
OperandBits = Annotated[int, Field(ge=1, le=16)]
#: Accumulator width (bits); results wrap modulo 2**acc_bits like the hardware does.
AccBits = Annotated[int, Field(ge=1, le=64)]
#: Array edge length (PEs). 256 bounds RTL size; the models accept the same range.
ArrayDim = Annotated[int, Field(ge=1, le=256)]


class SpecError(ValueError):
    """A spec or spec file is invalid. ``str(err)`` is one line naming the field."""


@dataclass(config=_CONFIG, kw_only=True)
class SystolicSpec:
    """A ``rows`` x ``cols`` systolic array of multiply-accumulate PEs.

    Dataflows (``dataflow``):

    * ``"os"``, output stationary: PE (i, j) accumulates ``C[i, j] = sum_k A[i, k] * W[k, j]``.
      One fold computes a ``rows`` x ``cols`` output tile over a streamed reduction of any
      length K: ``fold_cycles(K) = K + 2*rows + cols - 2`` (skew fill ``rows + cols - 2``,
      steady state K, drain ``rows`` result rows).
    * ``"ws"``, weight stationary: PE (k, j) holds ``W[k, j]`` (a ``rows`` x ``cols`` weight
      tile); any number M of activation rows stream through:
      ``fold_cycles(M) = M + 2*rows + cols - 1`` (weight preload ``rows``, steady state M,
      pipeline latency ``rows + cols - 1``).

    Cycles are counted from the first input transfer of a fold to its last output transfer,
    both inclusive, with every stream valid/ready every cycle. Folds run back to back.
    """

    kind: Literal["systolic"] = "systolic"
    rows: ArrayDim
    cols: ArrayDim
    a_bits: OperandBits = 8
    w_bits: OperandBits = 8
    acc_bits: AccBits = 32
    signed: bool = True
    dataflow: Literal["os", "ws"] = "os"

    # -- timing contract (the cycle model's single source of truth) ------------------------
    @property
    def macs_per_cycle(self) -> int:
        return self.rows * self.cols

    @property
    def preload_cycles(self) -> int:
        """Cycles that load the stationary weight tile before streaming (WS only)."""
        return self.rows if self.dataflow == "ws" else 0

    @property
    def fill_cycles(self) -> int:
        """Skew: cycles between the first and the last PE starting useful work."""
        return self.rows + self.cols - 2

    @property
    def drain_cycles(self) -> int:
        """Cycles after the last MAC until the last result row has left the array."""
        # OS shifts the rows x cols result tile out one row per cycle; WS presents each
        # output row one cycle after its last MAC (the bottom partial-sum register).
        return self.rows if self.dataflow == "os" else 1

    def fold_cycles(self, stream_len: int) -> int:
        """Cycles of one fold that streams ``stream_len`` beats (K for OS, M for WS)."""
        if stream_len < 1:
            raise ValueError(f"stream_len must be >= 1, got {stream_len!r}")
        return self.preload_cycles + stream_len + self.fill_cycles + self.drain_cycles

    def timing_contract(self) -> dict[str, Any]:
        """The timing formulas (Python expressions of rows, cols and the stream length)."""
        stream = "K" if self.dataflow == "os" else "M"
        extra = "- 2" if self.dataflow == "os" else "- 1"
        return {
            "stream_len": stream,
            "fold_cycles": f"{stream} + 2*rows + cols {extra}",
            "preload_cycles": "rows" if self.dataflow == "ws" else "0",
            "fill_cycles": "rows + cols - 2",
            "drain_cycles": "rows" if self.dataflow == "os" else "1",
            "initiation_interval_cycles": "1",
            "counted_from": "first input transfer of a fold to its last output transfer, inclusive",
            "gemm_folds": (
                "ceil(M/rows) * ceil(N/cols)" if self.dataflow == "os"
                else "ceil(K/rows) * ceil(N/cols)"
            ),
        }

    @property
    def name(self) -> str:
        sign = "s" if self.signed else "u"
        return (
            f"systolic_{self.dataflow}_{self.rows}x{self.cols}"
            f"_a{self.a_bits}w{self.w_bits}p{self.acc_bits}{sign}"
        )


#: Every engine kind; later kinds join this union (discriminated by ``kind``).
EngineSpec = SystolicSpec
_ENGINE_KINDS: dict[str, type] = {"systolic": SystolicSpec}


@dataclass(config=_CONFIG, kw_only=True)
class SramSpec:
    """An on-chip SRAM buffer dedicated to one operand."""

    capacity_bytes: Annotated[int, Field(ge=1, le=1 << 36)]
    width_bits: Annotated[int, Field(ge=8, le=8192)]
    #: Accesses per cycle (ports); bandwidth = ports * width_bits / 8 bytes per cycle.
    ports: Annotated[int, Field(ge=1, le=16)] = 1
    #: Two halves: the next tile is filled while the engine works on the current one.
    double_buffered: bool = True

    @property
    def bandwidth_bytes_per_cycle(self) -> float:
        return self.ports * self.width_bits / 8

    @property
    def tile_capacity_bytes(self) -> int:
        """Bytes available to one tile (half the buffer when double-buffered)."""
        return self.capacity_bytes // 2 if self.double_buffered else self.capacity_bytes


@dataclass(config=_CONFIG, kw_only=True)
class DramSpec:
    """The off-chip link (DRAM or HBM)."""

    bandwidth_gb_per_s: Annotated[float, Field(gt=0, le=1e5)]
    #: Fixed latency of one transfer burst, in nanoseconds.
    latency_ns: Annotated[float, Field(ge=0, le=1e4)] = 0.0


@dataclass(config=_CONFIG, kw_only=True)
class ArchSpec:
    """An engine inside a memory hierarchy: per-operand SRAM buffers and a DRAM link."""

    name: Annotated[str, Field(min_length=1, max_length=64)]
    engine: EngineSpec
    clock_mhz: Annotated[float, Field(gt=0, le=1e5)]
    #: Technology node of the design (nm); energy and area tables are scaled to it.
    tech_nm: Annotated[float, Field(ge=3, le=180)] = 45.0
    #: Name of an energy table shipped in ``sim/data/energy`` (or a path to one).
    energy_table: Annotated[str, Field(min_length=1)] = "horowitz45"
    a_buffer: SramSpec
    w_buffer: SramSpec
    o_buffer: SramSpec
    dram: DramSpec
    description: str = ""

    @property
    def dram_bytes_per_cycle(self) -> float:
        return self.dram.bandwidth_gb_per_s * 1e3 / self.clock_mhz


# -- dict / TOML boundary ------------------------------------------------------------------

_RANGE_MSGS = {
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
}


def _format_error(err: pydantic.ValidationError, prefix: str) -> str:
    first = err.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in first["loc"] if not str(p).startswith("function-"))
    field = f"{prefix}.{loc}" if prefix and loc else (prefix or loc or "spec")
    kind = first["type"]
    ctx = first.get("ctx", {})
    value = first.get("input")
    if kind in _RANGE_MSGS:
        msg = _RANGE_MSGS[kind].format(**ctx) + f" (got {value!r})"
    elif kind in ("extra_forbidden", "unexpected_keyword_argument"):
        msg = "unknown key; remove it or check its spelling"
    elif kind == "missing":
        msg = "required but missing"
    elif kind == "literal_error":
        msg = f"must be one of {ctx.get('expected')} (got {value!r})"
    elif kind in ("string_too_short", "string_too_long"):
        msg = first["msg"].lower()
    else:
        msg = f"{first['msg'].lower()} (got {value!r})"
    return f"{field}: {msg}"


def _build(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(data, Mapping):
        raise SpecError(f"{prefix or 'spec'}: must be a table, got {type(data).__name__}")
    try:
        return cls(**data)
    except pydantic.ValidationError as err:
        raise SpecError(_format_error(err, prefix)) from None
    except TypeError as err:  # positional misuse, never from TOML
        raise SpecError(f"{prefix or 'spec'}: {err}") from None


def engine_from_dict(data: Mapping[str, Any], prefix: str = "engine") -> EngineSpec:
    """Build an engine spec from a mapping with a ``kind`` key."""
    if not isinstance(data, Mapping):
        raise SpecError(f"{prefix}: must be a table, got {type(data).__name__}")
    kind = data.get("kind")
    if kind not in _ENGINE_KINDS:
        known = ", ".join(sorted(_ENGINE_KINDS))
        raise SpecError(f"{prefix}.kind: unknown engine kind {kind!r}; known kinds: {known}")
    return _build(_ENGINE_KINDS[kind], data, prefix)


def arch_from_dict(data: Mapping[str, Any]) -> ArchSpec:
    """Build an :class:`ArchSpec` from a TOML-shaped mapping."""
    if not isinstance(data, Mapping):
        raise SpecError(f"arch: must be a table, got {type(data).__name__}")
    data = dict(data)
    if "engine" not in data:
        raise SpecError("engine: required but missing; add an [engine] table with a kind")
    data["engine"] = engine_from_dict(data["engine"])
    for key, cls in (("a_buffer", SramSpec), ("w_buffer", SramSpec), ("o_buffer", SramSpec),
                     ("dram", DramSpec)):
        if key in data:
            data[key] = _build(cls, data[key], key)
    return _build(ArchSpec, data, "")


def spec_to_dict(spec: Any) -> dict[str, Any]:
    """The inverse of the loaders: plain dicts, lists and scalars (JSON/TOML friendly)."""
    if not is_dataclass(spec):
        raise TypeError(f"expected a spec dataclass, got {spec!r}")
    return asdict(spec)


_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``key.path=value``; the value is read as a TOML value, else as a bare string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not _KEY_RE.match(key):
        raise SpecError(f"--set: expected key.path=value, got {text!r}")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a deep copy of ``data`` with ``key.path=value`` overrides applied."""
    out = _deepcopy(data)
    for text in overrides:
        key, value = parse_override(text)
        parts = key.split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise SpecError(f"{where}: is a value, not a table; cannot set {key}")
            node = child
        node[parts[-1]] = value
    return out


def _deepcopy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deepcopy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise SpecError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise SpecError(f"{path}: is a directory, expected a TOML file") from None
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path}: malformed TOML: {err}") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a UTF-8 text file") from None


def load_arch_dict(arch: str) -> dict[str, Any]:
    """The raw mapping of a preset name or a TOML file path."""
    path = Path(arch)
    if arch.endswith(".toml") or path.exists():
        return read_toml(path)
    preset = PRESET_DIR / f"{arch}.toml"
    if not preset.is_file():
        raise SpecError(
            f"--arch: unknown preset {arch!r}; presets: {', '.join(list_presets())} "
            "(or give a path to a .toml file)"
        )
    return read_toml(preset)


def load_arch(arch: str, overrides: Sequence[str] = ()) -> ArchSpec:
    """Load a preset name or TOML path, apply ``--set`` overrides, validate."""
    return arch_from_dict(apply_overrides(load_arch_dict(arch), overrides))


def field_names(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]
