"""Engine and architecture specs: frozen, validated, loaded from TOML.

A spec is plain data. ``hw`` generators elaborate circuits from it, ``sim`` predicts cycles,
energy and area from it, and the timing properties defined here (``fold_cycles`` and friends)
are the single source of truth that both the RTL tests and the cycle models use.

Validation happens at construction (pydantic dataclasses in strict mode): a wrong type, an
out-of-range value or an unknown key raises :class:`SpecError` with a one-line message that
names the field, e.g. ``engine.rows: must be >= 1 (got 0)``.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields, is_dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field
from pydantic.dataclasses import dataclass

from hw.spec.base import (
    CONFIG,
    AccBits,
    ArrayDim,
    EngineBase,
    OperandBits,
    SpecError,
    Unrolling,
    build,
)
from hw.spec.systolic import SystolicSpec

__all__ = [
    "AccBits",
    "ArchSpec",
    "ArrayDim",
    "DramSpec",
    "EngineBase",
    "EngineSpec",
    "GpuSpec",
    "OperandBits",
    "SpecError",
    "SramSpec",
    "SystolicSpec",
    "Unrolling",
    "VectorSpec",
    "apply_overrides",
    "arch_from_dict",
    "engine_from_dict",
    "engine_kinds",
    "list_presets",
    "load_arch",
    "spec_to_dict",
]

PRESET_DIR = Path(__file__).resolve().parent.parent / "presets"

#: Any engine kind's spec (every kind subclasses :class:`EngineBase`).
EngineSpec = EngineBase


@cache
def engine_kinds() -> dict[str, type]:
    """Every engine kind, by name: the EngineBase subclasses of the modules of this package."""
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")
    kinds: dict[str, type] = {}
    pending = list(EngineBase.__subclasses__())
    while pending:
        cls = pending.pop()
        pending += cls.__subclasses__()
        kind = cls.__dataclass_fields__["kind"].default
        if isinstance(kind, str):
            kinds[kind] = cls
    return dict(sorted(kinds.items()))


@dataclass(config=CONFIG, kw_only=True)
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


@dataclass(config=CONFIG, kw_only=True)
class DramSpec:
    """The off-chip link (DRAM or HBM)."""

    bandwidth_gb_per_s: Annotated[float, Field(gt=0, le=1e5)]
    #: Fixed latency of one transfer burst, in nanoseconds.
    latency_ns: Annotated[float, Field(ge=0, le=1e4)] = 0.0
    #: Energy per byte moved (pJ); ``None``: the energy table's ``dram_64b`` entry / 8. Set it
    #: for a memory the table does not describe (e.g. HBM), with its source in a comment.
    energy_pj_per_byte: Annotated[float, Field(gt=0, le=1e4)] | None = None


@dataclass(config=CONFIG, kw_only=True)
class VectorSpec:
    """A core's vector unit: element-wise work (normalization, softmax, activations, RoPE,
    residual adds, (de)quantization, the rescaling of partial sums) beside the engine.

    ``lanes`` fp16 operations per cycle, at the architecture's clock. It runs concurrently
    with the engine: work attached to a GEMM (dequantization of its outputs) overlaps the GEMM,
    stand-alone vector operators run between GEMMs.
    """

    lanes: Annotated[int, Field(ge=1, le=1 << 20)]
    #: Operations one exponential costs (softmax); a polynomial/table approximation.
    exp_ops: Annotated[int, Field(ge=1, le=64)] = 4


@dataclass(config=CONFIG, kw_only=True)
class GpuSpec:
    """Marks an architecture as a GPU: its kernels are timed by ``sim.gpu_model`` with the
    named calibration (``sim/data/gpu/calibration_<calibration>.toml``: microbenchmarks of the
    card and efficiencies fitted on measured kernels) instead of the engine fold model."""

    calibration: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$")]
    #: Board power under dense load (W), for energy: time x power.
    board_power_w: Annotated[float, Field(gt=0, le=5000)]
    #: Die area (mm^2), reported as the architecture's area.
    die_area_mm2: Annotated[float, Field(gt=0, le=10000)]
    #: Scale of the calibration's bandwidth and rates for a sibling card (e.g. an H200 from
    #: the H100's calibration: its HBM over the H100's, datasheet ratios).
    bandwidth_scale: Annotated[float, Field(gt=0, le=100)] = 1.0
    compute_scale: Annotated[float, Field(gt=0, le=100)] = 1.0
    #: Tensor-core dtypes the card has (shapes.csv ``dtype`` values).
    dtypes: Annotated[tuple[Literal["bf16", "fp16", "fp8", "int8"], ...],
                      BeforeValidator(lambda v: tuple(v) if isinstance(v, list) else v)] = (
        "bf16", "fp16", "fp8", "int8")


@dataclass(config=CONFIG, kw_only=True)
class ArchSpec:
    """Engines inside a memory hierarchy.

    Levels, innermost first: each engine's PE registers; per-core SRAM buffers (``a_buffer``,
    ``w_buffer``, ``o_buffer``); an optional ``global_buffer`` shared by the ``cores``; the
    DRAM/HBM link. Each of the ``cores`` has one engine, its own buffers and a vector unit
    (``vector``).
    """

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
    #: Identical cores, each an engine with its own buffers and vector unit.
    cores: Annotated[int, Field(ge=1, le=4096)] = 1
    #: SRAM shared by the cores between their buffers and DRAM (``None``: none).
    global_buffer: SramSpec | None = None
    #: The vector unit of each core (``None``: none; workloads with element-wise operators,
    #: softmax included, then cannot be simulated).
    vector: VectorSpec | None = None
    #: Set for a GPU (see :class:`GpuSpec`).
    gpu: GpuSpec | None = None

    @property
    def dram_bytes_per_cycle(self) -> float:
        return self.dram.bandwidth_gb_per_s * 1e3 / self.clock_mhz


# -- dict / TOML boundary ------------------------------------------------------------------

def engine_from_dict(data: Mapping[str, Any], prefix: str = "engine") -> EngineSpec:
    """Build an engine spec from a mapping with a ``kind`` key."""
    if not isinstance(data, Mapping):
        raise SpecError(f"{prefix}: must be a table, got {type(data).__name__}")
    kind = data.get("kind")
    kinds = engine_kinds()
    if kind not in kinds:
        known = ", ".join(kinds)
        where = f"{prefix}.kind" if prefix else "kind"
        raise SpecError(f"{where}: unknown engine kind {kind!r}; known kinds: {known}")
    return build(kinds[kind], data, prefix)


def arch_from_dict(data: Mapping[str, Any]) -> ArchSpec:
    """Build an :class:`ArchSpec` from a TOML-shaped mapping."""
    if not isinstance(data, Mapping):
        raise SpecError(f"arch: must be a table, got {type(data).__name__}")
    data = dict(data)
    if "engine" not in data:
        raise SpecError("engine: required but missing; add an [engine] table with a kind")
    data["engine"] = engine_from_dict(data["engine"])
    for key, cls in (("a_buffer", SramSpec), ("w_buffer", SramSpec), ("o_buffer", SramSpec),
                     ("global_buffer", SramSpec), ("dram", DramSpec), ("vector", VectorSpec),
                     ("gpu", GpuSpec)):
        if key in data:
            data[key] = build(cls, data[key], key)
    return build(ArchSpec, data, "")


def spec_to_dict(spec: Any) -> dict[str, Any]:
    """The inverse of the loaders: plain dicts, lists and scalars (JSON/TOML friendly)."""
    if not is_dataclass(spec) or isinstance(spec, type):
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
