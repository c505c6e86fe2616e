"""Engine and architecture specs: frozen, validated, loaded from TOML.

A spec is plain data. ``hw`` generators elaborate circuits from it, ``sim`` predicts cycles,
energy and area from it, and the timing properties defined here (``fold_cycles`` and friends)
are the single source of truth that both the RTL tests and the cycle models use.

Validation happens at construction (pydantic dataclasses in strict mode): a wrong type, an
out-of-range value or an unknown key raises :class:`SpecError` with a one-line message that
names the field, e.g. ``engine.rows: must be >= 1 (got 0)``.
"""

import dataclasses
import importlib
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

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
from models.caches import memo

__all__ = [
    "MAX_BYTE_PJ",
    "OPERANDS",
    "AccBits",
    "ArchSpec",
    "ArrayDim",
    "DramSpec",
    "EngineBase",
    "EngineSpec",
    "GpuSpec",
    "InterconnectSpec",
    "LevelSpec",
    "Operand",
    "OperandBits",
    "SpecError",
    "SramSpec",
    "SystolicSpec",
    "Unrolling",
    "VectorSpec",
    "apply_overrides",
    "arch_from_dict",
    "engine_from_dict",
    "engine_kind",
    "engine_kinds",
    "gpu_model_keys",
    "list_presets",
    "load_arch",
    "operand_buffer",
    "spec_to_dict",
    "unread_by_gpu_model",
]

PRESET_DIR = Path(__file__).resolve().parent.parent / "presets"

#: Any engine kind's spec (every kind subclasses :class:`EngineBase`).
EngineSpec = EngineBase


@memo(maxsize=None)
def engine_kinds() -> dict[str, type]:
    """Every engine kind, by name: the EngineBase subclasses of the modules of this package."""
    import pkgutil  # here: loading one preset needs its own kind only (engine_kind)

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


def engine_kind(kind: str) -> type | None:
    """The spec class of engine kind ``kind`` (``engine_kinds()[kind]``), or None if there is
    no such kind.

    A kind normally lives in the module named after it (``hw.spec.<kind>``, the convention
    ``sim.engines`` shares), so that module alone is imported and searched: loading a preset
    then builds the pydantic validators of its own kind only, not those of every kind (a
    large part of ``tpe sim``'s start-up). A kind not found there is looked up among all
    (:func:`engine_kinds`), which also lists the known kinds for an error message.
    """
    name = f"{__name__}.{kind}"
    if kind.isidentifier() and not kind.startswith("_") and kind != "base":
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
        else:
            found = [cls for cls in vars(module).values()
                     if isinstance(cls, type) and issubclass(cls, EngineBase)
                     and cls.__module__ == name
                     and cls.__dataclass_fields__["kind"].default == kind]
            if len(found) == 1:
                return found[0]
    return engine_kinds().get(kind)


@dataclass(config=CONFIG, kw_only=True)
class SramSpec:
    """One operand's buffer as an engine sees it: a dedicated level, or an operand's share of
    a shared one (:func:`operand_buffer`)."""

    capacity_bytes: Annotated[int, Field(ge=1, le=1 << 50)]
    width_bits: Annotated[int, Field(ge=8, le=1 << 20)]
    #: Accesses per cycle (ports); bandwidth = ports * width_bits / 8 bytes per cycle.
    ports: Annotated[int, Field(ge=1, le=64)] = 1
    #: Two halves: the next tile is filled while the engine works on the current one.
    double_buffered: bool = True

    @property
    def bandwidth_bytes_per_cycle(self) -> float:
        return self.ports * self.width_bits / 8

    @property
    def tile_capacity_bytes(self) -> int:
        """Bytes available to one tile (half the buffer when double-buffered)."""
        return self.capacity_bytes // 2 if self.double_buffered else self.capacity_bytes


#: The most energy a byte read or written in a memory level may take, pJ: a sanity bound
#: (typos, units) on a given ``energy_pj_per_byte`` and on the one the energy table gives a
#: level by its capacity (``sim.energy.level_byte_pj``). 10^4 pJ is about 41 times an
#: off-chip DRAM byte (Horowitz's 1.95 nJ per 64-bit access, the ``horowitz45`` table's
#: ``dram_64b``, / 8) and what that table's SRAM scaling gives an on-chip level of about
#: 1.7 TiB at 45 nm.
MAX_BYTE_PJ = 1e4


@dataclass(config=CONFIG, kw_only=True)
class DramSpec:
    """A link to a backing level (DRAM or HBM, or an on-chip level behind the buffers):
    bandwidth, latency, energy per byte."""

    bandwidth_gb_per_s: Annotated[float, Field(gt=0, le=1e8)]
    #: Fixed latency of one transfer burst, in nanoseconds.
    latency_ns: Annotated[float, Field(ge=0, le=1e4)] = 0.0
    #: Energy per byte moved (pJ); ``None``: the energy table's ``dram_64b`` entry / 8. Set it
    #: for a memory the table does not describe (e.g. HBM), with its source in a comment.
    energy_pj_per_byte: Annotated[float, Field(gt=0, le=MAX_BYTE_PJ)] | None = None


@dataclass(config=CONFIG, kw_only=True)
class VectorSpec:
    """A core's vector unit: element-wise work (normalization, softmax, activations, RoPE,
    residual adds, (de)quantization, the rescaling of partial sums) beside the engine.

    ``lanes`` fp16 operations per cycle, at the architecture's clock. It runs concurrently
    with the engine: work attached to a GEMM (dequantization of its outputs) overlaps the GEMM,
    stand-alone vector operators run between GEMMs.
    """

    #: Element-wise operations the unit completes per cycle (one per lane).
    lanes: Annotated[int, Field(ge=1, le=1 << 20)]
    #: Operations one exponential costs (softmax); a polynomial/table approximation.
    exp_ops: Annotated[int, Field(ge=1, le=64)] = 4


@dataclass(config=CONFIG, kw_only=True)
class InterconnectSpec:
    """The links that join several devices of this architecture (``tpe sim model --devices
    N``; ``sim.collectives``): their topology, bandwidth and the latencies of a collective.

    ``switch``: every device reaches a switch (NVLink through NVSwitch) at ``bandwidth_gb_per_s``
    in each direction. ``ring``: each device links to its two neighbours, ``bandwidth_gb_per_s``
    per link and direction. ``torus2d``: a 2D torus (each device four links of that bandwidth),
    the devices laid out as the most nearly square grid. ``sim.collectives`` states the
    algorithms and protocols the latencies belong to.
    """

    #: How the devices are joined: ``switch``, ``ring`` or ``torus2d``.
    topology: Literal["switch", "ring", "torus2d"]
    #: GB/s each device sends in each direction (``switch``) or each link carries in each
    #: direction (``ring``, ``torus2d``).
    bandwidth_gb_per_s: Annotated[float, Field(gt=0, le=1e6)]
    #: Fixed cost of one collective under the low-latency protocol (half the bandwidth:
    #: NCCL's LL), us.
    launch_us: Annotated[float, Field(ge=0, le=1e6)]
    #: Latency of one step of a collective algorithm (one hop of a ring or a tree) under the
    #: low-latency protocol, us.
    step_us: Annotated[float, Field(ge=0, le=1e6)]
    #: Fixed cost of one collective under the bulk protocol (the full bandwidth: NCCL's
    #: Simple), us.
    bulk_launch_us: Annotated[float, Field(ge=0, le=1e6)]
    #: Latency of one ring step under the bulk protocol, us.
    bulk_step_us: Annotated[float, Field(ge=0, le=1e6)]


@dataclass(config=CONFIG, kw_only=True)
class GpuSpec:
    """Marks an architecture as a GPU: its kernels are timed by ``sim.gpu_model`` with the
    named calibration (``sim/data/gpu/calibration_<calibration>.toml``: microbenchmarks of the
    card and efficiencies fitted on measured kernels) instead of the engine fold model."""

    #: The measured card's calibration the kernel model uses
    #: (``sim/data/gpu/calibration_<calibration>.toml``).
    calibration: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$")]
    #: The board's power limit (W): the kernel model's power cap scales with it (a kernel
    #: that would draw more runs at a lower clock; ``sim.gpu_model`` module doc).
    board_power_w: Annotated[float, Field(gt=0, le=5000)]
    #: Die area (mm^2), reported as the architecture's area.
    die_area_mm2: Annotated[float, Field(gt=0, le=10000)]
    #: FP32 lanes (CUDA cores) per SM: the rate at which a kernel applies block scales its
    #: tensor cores do not take (``sim.gpu_model.block_scale_ops``), one FMA per lane and clock.
    fp32_lanes_per_sm: Annotated[int, Field(ge=1, le=4096)]
    #: Extra factors on the calibration's achieved HBM bandwidth and tensor rates, beyond
    #: what the architecture's own fields give (the kernel model scales the measured card's
    #: rates by SMs x clock x an SM's MACs per clock, and its bandwidth by the last memory
    #: level's ``bandwidth_gb_per_s``, each over the measured card's preset: ``sim.gpu_model``
    #: ``arch_calibration``). 1.0 unless a datasheet says the card differs in another way.
    bandwidth_scale: Annotated[float, Field(gt=0, le=100)] = 1.0
    #: The same for the tensor rates (see ``bandwidth_scale``).
    compute_scale: Annotated[float, Field(gt=0, le=100)] = 1.0
    #: Tensor-core dtypes the card has (shapes.csv ``dtype`` values).
    dtypes: Annotated[tuple[Literal["bf16", "fp16", "fp8", "int8"], ...],
                      BeforeValidator(lambda v: tuple(v) if isinstance(v, list) else v)] = (
        "bf16", "fp16", "fp8", "int8")
    #: Whether the preset's predictions were checked against kernels measured on this card
    #: (``tpe gpu check``). A preset for a card never measured says false, and every output
    #: on it says that its figures are the calibration scaled by the preset's fields, unchecked.
    validated: bool = False


#: The operands of a GEMM ``C[M, N] = A[M, K] @ W[K, N]`` a memory level can hold (attention:
#: the queries in A's place, keys and values in W's, scores and outputs in O's).
Operand = Literal["A", "W", "O"]
OPERANDS: tuple[Operand, ...] = ("A", "W", "O")


def _to_tuple(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


@dataclass(config=CONFIG, kw_only=True)
class LevelSpec:
    """One level of the memory hierarchy (a ``[memory.NAME]`` table).

    Levels are listed innermost first, from the buffers next to the engine out to DRAM/HBM.
    Consecutive levels that hold disjoint operands form one *tier* (e.g. an A, a W and an
    output buffer); a level that holds an operand the current tier already has starts the next
    tier. Every tier holds A, W and O once each; each tier is tiled on its own and backed by
    the next one; the last level (DRAM/HBM) holds all three.
    """

    #: The level's name (the TOML table's key; ``--set NAME.field=value``).
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    #: Operands kept in this level: one of them (a dedicated buffer) or several (shared;
    #: its capacity and bandwidth are split evenly between them).
    holds: Annotated[tuple[Operand, ...], BeforeValidator(_to_tuple),
                     Field(min_length=1, max_length=3)]
    #: Bytes the level holds (all its instances' each; a double-buffered level's two halves
    #: together).
    capacity_bytes: Annotated[int, Field(ge=1, le=1 << 50)]
    #: On-chip SRAM: ``ports`` accesses of ``width_bits`` per cycle (set this, or
    #: ``bandwidth_gb_per_s`` for a level with its own clock, such as DRAM).
    width_bits: Annotated[int, Field(ge=8, le=1 << 20)] | None = None
    #: Accesses of ``width_bits`` per cycle (on-chip levels).
    ports: Annotated[int, Field(ge=1, le=64)] = 1
    #: Bandwidth of a level with its own clock (DRAM, HBM), GB/s (10^9 bytes per second).
    bandwidth_gb_per_s: Annotated[float, Field(gt=0, le=1e8)] | None = None
    #: Fixed latency of one transfer from this level, in nanoseconds.
    latency_ns: Annotated[float, Field(ge=0, le=1e4)] = 0.0
    #: A level with ``bandwidth_gb_per_s`` that moves at most one beat of this many bytes a
    #: cycle each way (a single port, such as a tile's: ``tpe gen tile`` builds its port this
    #: wide): a matrix row of a tile takes whole beats, so a row narrower than a beat takes a
    #: cycle for its bytes, and the port's DMA pipeline counts: a request answered no earlier
    #: than the cycle after it, a cycle to a load's completion, the first request and a
    #: write-back's start (the tile's, ``sim.timeline.PORT_PIPELINE``). ``None``: bytes at
    #: the bandwidth, whatever the rows (channels interleaved).
    beat_bytes: Annotated[int, Field(ge=1, le=1 << 20)] | None = None
    #: Energy per byte read or written (pJ). ``None``: from the energy table, by capacity for
    #: an on-chip level, the ``dram_64b`` entry / 8 for an off-chip one. Give a source.
    energy_pj_per_byte: Annotated[float, Field(gt=0, le=MAX_BYTE_PJ)] | None = None
    #: ``core``: one instance per core; ``chip``: one shared by all cores.
    instances: Literal["core", "chip"] = "core"
    #: Two halves: the next tile is filled while the current one is used.
    double_buffered: bool = True
    #: Off chip (DRAM/HBM): no area on the die; priced by the table's DRAM entry.
    off_chip: bool = False

    def __post_init__(self) -> None:
        if len(set(self.holds)) != len(self.holds):
            raise ValueError(f"holds: an operand is listed twice (got {list(self.holds)})")
        if (self.width_bits is None) == (self.bandwidth_gb_per_s is None):
            raise ValueError("set exactly one of width_bits (on-chip: bits per access, with "
                             "ports) and bandwidth_gb_per_s")
        if self.beat_bytes is not None and self.bandwidth_gb_per_s is None:
            raise ValueError("beat_bytes: a beat is a link's (a level with bandwidth_gb_per_s); "
                             "drop it from an on-chip level")

    def bandwidth_bytes_per_cycle(self, clock_mhz: float) -> float:
        """Bytes per cycle of the architecture's clock (all instances of a shared level
        together; one instance's for a per-core level)."""
        if self.width_bits is not None:
            return self.ports * self.width_bits / 8
        assert self.bandwidth_gb_per_s is not None
        return self.bandwidth_gb_per_s * 1e3 / clock_mhz


@dataclass(config=CONFIG, kw_only=True)
class ArchSpec:
    """Engines inside a memory hierarchy.

    ``memory`` lists the levels innermost first (:class:`LevelSpec`): per-core buffers next to
    each engine, optional shared levels, DRAM/HBM last. Each of the ``cores`` has one engine,
    its own instances of the per-core levels and a vector unit (``vector``).
    """

    #: The architecture's name, shown in every result (a file on a base: its file name).
    name: Annotated[str, Field(min_length=1, max_length=64)]
    #: The engine of each core (``[engine]``, its ``kind`` and the kind's fields).
    engine: EngineSpec
    #: The cores' clock, MHz; cycles become seconds at it.
    clock_mhz: Annotated[float, Field(gt=0, le=1e5)]
    #: Technology node of the design (nm); energy and area tables are scaled to it.
    tech_nm: Annotated[float, Field(ge=3, le=180)] = 45.0
    #: Name of an energy table shipped in ``sim/data/energy`` (or a path to one).
    energy_table: Annotated[str, Field(min_length=1)] = "horowitz45"
    #: The memory levels, innermost first (``[memory.NAME]`` tables).
    memory: tuple[LevelSpec, ...]
    #: A line saying what the architecture is (no result depends on it).
    description: str = ""
    #: Identical cores, each an engine with its own per-core levels and vector unit.
    cores: Annotated[int, Field(ge=1, le=4096)] = 1
    #: The vector unit of each core (``None``: none; workloads with element-wise operators,
    #: softmax included, then cannot be simulated).
    vector: VectorSpec | None = None
    #: Set for a GPU (see :class:`GpuSpec`).
    gpu: GpuSpec | None = None
    #: The links between devices when several run one model (``[interconnect]``; ``None``:
    #: the architecture runs alone).
    interconnect: InterconnectSpec | None = None

    def __post_init__(self) -> None:
        _tiers(self.memory)  # raises ValueError on a malformed hierarchy

    def __hash__(self) -> int:
        """The fields' hash, computed once: an architecture keys every cost-model cache, and
        hashing its levels, engine and vector unit anew on every lookup costs more than the
        lookup (the object is immutable, so the hash cannot go stale)."""
        try:
            cached: int = self.__dict__["_hash"]
            return cached
        except KeyError:
            h = hash(tuple(getattr(self, f.name) for f in fields(self)))
            object.__setattr__(self, "_hash", h)
            return h

    def __getstate__(self) -> dict[str, Any]:
        # string hashes differ between processes (sweep workers): never carry one over
        # (and the found tiers are rebuilt where they are needed)
        return {k: v for k, v in self.__dict__.items() if k not in ("_hash", "_tiers")}

    # -- the hierarchy, walked by tiers ----------------------------------------------------

    @property
    def tiers(self) -> tuple[tuple[LevelSpec, ...], ...]:
        """The levels grouped into tiers, innermost first (see :class:`LevelSpec`); found once
        per object, as its hash (the cost model asks for every operator)."""
        try:
            cached: tuple[tuple[LevelSpec, ...], ...] = self.__dict__["_tiers"]
            return cached
        except KeyError:
            tiers = _tiers(self.memory)
            object.__setattr__(self, "_tiers", tiers)
            return tiers

    def level(self, name: str) -> LevelSpec:
        for lv in self.memory:
            if lv.name == name:
                return lv
        raise KeyError(name)

    @property
    def a_buffer(self) -> SramSpec:
        """The innermost tier's A buffer as the engine sees it (its share of a shared level)."""
        return _operand_buffers(self)[0]

    @property
    def w_buffer(self) -> SramSpec:
        return _operand_buffers(self)[1]

    @property
    def o_buffer(self) -> SramSpec:
        return _operand_buffers(self)[2]

    @property
    def dram(self) -> DramSpec:
        """The outermost level as a link (bandwidth, latency, energy per byte)."""
        return _dram_link(self)

    @property
    def dram_bytes_per_cycle(self) -> float:
        return self.dram.bandwidth_gb_per_s * 1e3 / self.clock_mhz

    @property
    def capacity_bytes(self) -> int:
        """Capacity of the outermost level (what a workload's weights and KV cache must fit)."""
        return self.memory[-1].capacity_bytes


@memo(maxsize=None)
def _tiers(memory: tuple[LevelSpec, ...]) -> tuple[tuple[LevelSpec, ...], ...]:
    if not memory:
        raise ValueError("memory: needs at least two levels (buffers next to the engine, then "
                         "DRAM); add [memory.NAME] tables")
    names = [lv.name for lv in memory]
    for n in names:
        if names.count(n) > 1:
            raise ValueError(f"memory.{n}: two levels have this name")
    tiers: list[list[LevelSpec]] = [[]]
    for lv in memory:
        held = {op for x in tiers[-1] for op in x.holds}
        if held & set(lv.holds):
            tiers.append([])
        tiers[-1].append(lv)
    for tier in tiers:
        held_ops = sorted(op for x in tier for op in x.holds)
        if held_ops != sorted(OPERANDS):
            names_t = ", ".join(x.name for x in tier)
            missing = sorted(set(OPERANDS) - set(held_ops))
            raise ValueError(
                f"memory.{tier[-1].name}: the levels {names_t} form one tier that does not hold "
                f"{', '.join(missing)}; every tier (levels holding disjoint operands) must hold "
                "A, W and O once each")
        if len({x.instances for x in tier}) > 1:
            raise ValueError(f"memory.{tier[0].name}.instances: the levels of one tier "
                             f"({', '.join(x.name for x in tier)}) must all have the same "
                             "instances (core or chip)")
        beat = next((x for x in tier if x.beat_bytes is not None), None)
        if beat is not None and len(tier) > 1:
            others = ", ".join(x.name for x in tier if x is not beat)
            raise ValueError(f"memory.{beat.name}.beat_bytes: a beat is a single port's, on a "
                             f"level that holds A, W and O alone; this level shares its tier "
                             f"with {others}: drop beat_bytes or make it one level")
    if len(tiers) < 2:
        raise ValueError(f"memory.{memory[-1].name}: needs a level behind the engine's buffers "
                         "(DRAM: a level holding A, W and O with off_chip = true)")
    if tiers[0][0].instances != "core":
        raise ValueError(f"memory.{tiers[0][0].name}.instances: the innermost levels feed one "
                         "engine each: instances must be \"core\"")
    seen_chip = False
    for tier in tiers:
        if tier[0].instances == "chip":
            seen_chip = True
        elif seen_chip:
            raise ValueError(f"memory.{tier[0].name}.instances: a per-core level cannot sit "
                             "behind a shared (chip) level; list per-core levels first")
    if len(tiers[-1]) != 1:
        raise ValueError(f"memory.{tiers[-1][0].name}: the outermost level must hold A, W and "
                         "O alone")
    if tiers[-1][0].double_buffered:
        raise ValueError(f"memory.{tiers[-1][0].name}.double_buffered: the outermost level is "
                         "not filled from a level behind it, so it cannot be double-buffered; "
                         "set it false")
    for tier in tiers[:-1]:
        for x in tier:
            if x.off_chip:
                raise ValueError(f"memory.{x.name}: only the outermost level can be off chip")
    return tuple(tuple(t) for t in tiers)


def operand_buffer(level: LevelSpec, clock_mhz: float) -> SramSpec:
    """One operand's share of ``level`` as a buffer: its capacity and bandwidth split evenly
    between the operands the level holds."""
    n = len(level.holds)
    per_cycle_bits = level.bandwidth_bytes_per_cycle(clock_mhz) * 8 / n
    if level.width_bits is not None:
        width = max(8, level.width_bits // n // 8 * 8) if n > 1 else level.width_bits
        ports = level.ports
    else:  # a level with its own clock: one access of its bytes per cycle
        width = max(8, int(per_cycle_bits) // 8 * 8)
        ports = 1
    return SramSpec(capacity_bytes=max(1, level.capacity_bytes // n), width_bits=width,
                    ports=ports, double_buffered=level.double_buffered)


@memo(maxsize=None)
def _operand_buffers(arch: ArchSpec) -> tuple[SramSpec, SramSpec, SramSpec]:
    tier = arch.tiers[0]
    out = {op: operand_buffer(lv, arch.clock_mhz) for lv in tier for op in lv.holds}
    return out["A"], out["W"], out["O"]


@memo(maxsize=256)
def _dram_link(arch: ArchSpec) -> DramSpec:
    """:attr:`ArchSpec.dram`, built (and validated) once per architecture: the cost model
    reads it for every operator."""
    return _link(arch, arch.memory[-1])


def _link(arch: ArchSpec, level: LevelSpec) -> DramSpec:
    gbps = (level.bandwidth_gb_per_s if level.bandwidth_gb_per_s is not None
            else level.bandwidth_bytes_per_cycle(arch.clock_mhz) * arch.clock_mhz / 1e3)
    return DramSpec(bandwidth_gb_per_s=gbps, latency_ns=level.latency_ns,
                    energy_pj_per_byte=level.energy_pj_per_byte)


# -- dict / TOML boundary ------------------------------------------------------------------

def engine_from_dict(data: Mapping[str, Any], prefix: str = "engine") -> EngineSpec:
    """Build an engine spec from a mapping with a ``kind`` key."""
    if not isinstance(data, Mapping):
        raise SpecError(f"{prefix}: must be a table, got {type(data).__name__}")
    kind = data.get("kind")
    cls = engine_kind(kind) if isinstance(kind, str) else None
    if cls is None:
        known = ", ".join(engine_kinds())
        where = f"{prefix}.kind" if prefix else "kind"
        raise SpecError(f"{where}: unknown engine kind {kind!r}; known kinds: {known}")
    return build(cls, data, prefix)


#: The named tables of the earlier fixed hierarchy, and what each becomes as a level.
LEGACY_LEVELS: dict[str, dict[str, Any]] = {
    "a_buffer": {"holds": ["A"]},
    "w_buffer": {"holds": ["W"]},
    "o_buffer": {"holds": ["O"]},
    "global_buffer": {"holds": ["A", "W", "O"], "instances": "chip"},
    "dram": {"holds": ["A", "W", "O"], "instances": "chip", "off_chip": True,
             "double_buffered": False},
}


def _memory_tables(data: dict[str, Any], defaults: bool = True) -> list[tuple[str, Any]]:
    """``(name, table)`` of every level, innermost first: from ``[memory.NAME]`` tables, a
    ``[[memory]]`` array with ``name`` keys, or the earlier fixed tables (``[a_buffer]``,
    ``[w_buffer]``, ``[o_buffer]``, ``[global_buffer]``, ``[dram]``; with their
    :data:`LEGACY_LEVELS` defaults unless ``defaults`` is false, as for the changes a file on
    a base makes)."""
    legacy = [k for k in LEGACY_LEVELS if k in data]
    mem = data.pop("memory", None)
    if mem is not None and legacy:
        names = (", ".join(mem) if isinstance(mem, Mapping)
                 else ", ".join(str(t.get("name")) for t in mem if isinstance(t, Mapping)))
        raise SpecError(f"{legacy[0]}: no memory level of that name (levels: {names}); add it as "
                        f"a [memory.{legacy[0]}] table")
    if mem is None:
        if not legacy:
            raise SpecError("memory: required but missing; add [memory.NAME] tables, innermost "
                            "first (see the presets in hw/presets)")
        out = []
        for k in legacy:
            table = data.pop(k)
            if not isinstance(table, Mapping):
                raise SpecError(f"{k}: must be a table, got {type(table).__name__}")
            fill = {key: v for key, v in LEGACY_LEVELS[k].items()
                    if defaults and key not in table}
            out.append((k, {**fill, **table}))
        return out
    if isinstance(mem, Mapping):
        return list(mem.items())
    if isinstance(mem, list):
        out = []
        for i, table in enumerate(mem):
            if not isinstance(table, Mapping) or "name" not in table:
                raise SpecError(f"memory[{i}]: must be a table with a name")
            out.append((str(table["name"]), {k: v for k, v in table.items() if k != "name"}))
        return out
    raise SpecError(f"memory: must be a table of levels, got {type(mem).__name__}")


def arch_from_dict(data: Mapping[str, Any]) -> ArchSpec:
    """Build an :class:`ArchSpec` from a TOML-shaped mapping."""
    if not isinstance(data, Mapping):
        raise SpecError(f"arch: must be a table, got {type(data).__name__}")
    data = dict(data)
    if "engine" not in data:
        raise SpecError("engine: required but missing; add an [engine] table with a kind")
    data["engine"] = engine_from_dict(data["engine"])
    levels = []
    for name, table in _memory_tables(data):
        if not isinstance(table, Mapping):
            raise SpecError(f"{name}: must be a table, got {type(table).__name__}")
        levels.append(build(LevelSpec, {"name": name, **table}, name))
    try:
        _tiers(tuple(levels))
    except ValueError as err:
        raise SpecError(str(err)) from None
    data["memory"] = tuple(levels)
    for key, cls in (("vector", VectorSpec), ("gpu", GpuSpec),
                     ("interconnect", InterconnectSpec)):
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
        parts = _route(out, key.split("."))
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


def _route(data: dict[str, Any], parts: list[str]) -> list[str]:
    """``NAME.field`` addresses the memory level ``NAME`` (``[memory.NAME]``)."""
    mem = data.get("memory")
    if parts[0] in data or len(parts) < 2:
        return parts
    if isinstance(mem, dict) and parts[0] in mem:
        return ["memory", *parts]
    return parts


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
    """The raw mapping of a preset name or a TOML file path, with its ``base`` (if it names
    one) merged in (:func:`merge_base`)."""
    path = _arch_path(arch, "--arch", None)
    return _with_base(read_toml(path), path, (path.resolve(),))


def _arch_path(arch: str, key: str, origin: Path | None) -> Path:
    """The file of preset ``arch`` or of TOML path ``arch`` (relative to ``origin``'s folder
    when ``arch`` is named in the file ``origin``)."""
    path = Path(arch)
    if origin is not None and not path.is_absolute():
        path = origin.parent / path
    if arch.endswith(".toml") or "/" in arch or path.exists():
        if not path.is_file() and origin is not None:
            raise SpecError(f"{key}: {arch!r}: no such file (a path in {origin.name} is relative "
                            "to its folder)")
        return path
    preset = PRESET_DIR / f"{arch}.toml"
    if not preset.is_file():
        raise SpecError(
            f"{key}: unknown preset {arch!r}; presets: {', '.join(list_presets())} "
            "(or give a path to a .toml file)"
        )
    return preset


def _with_base(data: dict[str, Any], path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    """``data`` (read from ``path``) over its ``base``, itself resolved the same way."""
    if "base" not in data:
        return data
    base = data["base"]
    if not isinstance(base, str) or not base:
        raise SpecError(f"base: must be a preset name or a TOML path (got {base!r})")
    base_path = _arch_path(base, "base", path)
    if base_path.resolve() in chain:
        names = " -> ".join(p.name for p in (*chain, base_path))
        raise SpecError(f"base: {base!r} leads back to itself ({names}); break the cycle")
    parent = _with_base(read_toml(base_path), base_path, (*chain, base_path.resolve()))
    child = {k: v for k, v in data.items() if k != "base"}
    merged = merge_base(parent, child, base)
    if "name" not in child:  # a derived architecture is not its base: named after its file
        merged["name"] = path.stem
    if "description" not in child and "description" in parent:
        merged["description"] = f"{base} with the changes of {path.name}: {parent['description']}"
    return merged


def merge_base(parent: Mapping[str, Any], child: Mapping[str, Any], base: str = "base"
               ) -> dict[str, Any]:
    """An architecture mapping made of ``parent`` (a whole architecture) changed by
    ``child`` (the fields of an architecture file that names ``parent`` as its ``base``):

    - values replace the parent's, tables merge key by key ([vector], [gpu], ...);
    - [engine] merges into the parent's engine when its kind is the same (or not given),
      and replaces it when it names another kind (the other kind's fields do not apply);
    - memory levels merge by name, each level's fields over the parent's; the levels keep the
      parent's order unless the child adds a level, in which case it lists every level in
      order from the PEs out (a level given with only some fields keeps the others).
    """
    out = _deepcopy(parent)
    levels = _levels_of(out, whole=True)
    changed = _levels_of(_deepcopy(child), whole=False)
    for key, value in child.items():
        if key == "memory" or key in LEGACY_LEVELS:
            continue
        mine = out.get(key)
        if key == "engine" and isinstance(value, Mapping) and isinstance(mine, Mapping):
            same = value.get("kind", mine.get("kind")) == mine.get("kind")
            out[key] = _merged(mine, value) if same else _deepcopy(value)
        elif isinstance(value, Mapping) and isinstance(mine, Mapping):
            out[key] = _merged(mine, value)
        else:
            out[key] = _deepcopy(value) if isinstance(value, Mapping) else value
    if changed:
        new = [n for n in changed if n not in levels]
        order = list(levels)
        if new:
            missing = [n for n in levels if n not in changed]
            if missing:
                raise SpecError(
                    f"memory.{new[0]}: {base} has no level of that name; to add one, list "
                    f"every level in order from the PEs out ({base}'s: {', '.join(levels)}), "
                    "a level given with only the fields you change keeps the others")
            order = list(changed)
        levels = {n: {**levels.get(n, {}), **changed.get(n, {})} for n in order}
    out["memory"] = levels
    return out


def _levels_of(data: dict[str, Any], whole: bool) -> dict[str, dict[str, Any]]:
    """The memory levels of ``data`` by name, innermost first (removed from ``data``;
    :func:`_memory_tables`): none when it names none; the fixed tables of older files get
    their defaults when ``data`` is a whole architecture (``whole``), not a file's changes."""
    if "memory" not in data and not any(k in data for k in LEGACY_LEVELS):
        return {}
    out: dict[str, dict[str, Any]] = {}
    for name, table in _memory_tables(data, defaults=whole):
        if not isinstance(table, Mapping):
            raise SpecError(f"{name}: must be a table, got {type(table).__name__}")
        out[name] = dict(table)
    return out


def _merged(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """``a`` with ``b``'s keys over it, tables merged key by key."""
    out = _deepcopy(a)
    for k, v in b.items():
        mine = out.get(k)
        out[k] = (_merged(mine, v) if isinstance(v, Mapping) and isinstance(mine, Mapping)
                  else _deepcopy(v) if isinstance(v, Mapping) else v)
    return out


def load_arch(arch: str, overrides: Sequence[str] = (), *, devices: int = 1) -> ArchSpec:
    """Load a preset name or TOML path, apply ``--set`` overrides, validate. An override of a
    field that the architecture's cost model does not read (:func:`gpu_model_keys` on a GPU;
    the ``[interconnect]`` unless the workload runs on ``devices`` > 1) is refused: no
    ``--set`` is silently ignored."""
    data = load_arch_dict(arch)
    keys = [parse_override(text)[0] for text in overrides]
    if "description" in keys:
        raise SpecError("--set description: a label that no result shows, so it would "
                        "change nothing; edit the architecture file's description")
    if devices == 1:
        for key in keys:
            if key.split(".")[0] == "interconnect":
                raise SpecError(f"--set {key}: the interconnect joins several devices, so on "
                                "one it would change nothing; run tpe sim model with "
                                "--devices N (N > 1)")
    spec = arch_from_dict(apply_overrides(data, overrides))
    for key in keys:
        if spec.cores == 1 and key.endswith(".instances"):
            raise SpecError(f"--set {key}: with one core a per-core level and a shared one "
                            "are the same, so it would change nothing; set cores too")
        if (why := unread_by_gpu_model(data, spec, key)) is not None:
            raise SpecError(f"--set {key}: {why}")
    return spec


def unread_by_gpu_model(data: dict[str, Any], spec: ArchSpec, key: str) -> str | None:
    """Why a change of field ``key`` (a ``--set`` path) would change nothing on ``spec``, a GPU
    architecture loaded from ``data``: its kernel model does not read the field
    (:func:`gpu_model_keys`); ``None`` where it does, or where ``spec`` is no GPU. ``tpe sim
    --set`` and a sweep's axes refuse such a field alike."""
    if spec.gpu is None:
        return None
    allowed = gpu_model_keys(spec)
    path = ".".join(_route(data, key.split(".")))
    if any(path == k or (k.endswith(".*") and path.startswith(k[:-1])) for k in allowed):
        return None
    shown = ", ".join(k.removeprefix("memory.") for k in allowed)
    return ("a GPU architecture's kernel model does not read this field, so it would change "
            f"nothing; the fields it reads: {shown}")


def gpu_model_keys(arch: ArchSpec) -> tuple[str, ...]:
    """The fields of a GPU architecture that its kernel model (``sim.gpu_model``) reads, as
    ``--set`` paths (``gpu.*``: every field of the ``[gpu]`` table): the SM count
    (``cores``), the clock, one SM's MACs per clock (the engine fields its
    ``macs_per_cycle`` depends on), the last memory level's bandwidth and capacity (HBM; the
    capacity for ``fits``), the ``[gpu]`` table and the ``[interconnect]`` (several
    devices); ``name`` labels the results. The
    caches and the L2 are not modelled level by level: the kernel model's bandwidths are the
    card's measured ones, scaled by the HBM bandwidth."""
    hbm = arch.memory[-1].name
    rate = tuple(f"engine.{f}" for f in _rate_fields(arch.engine))
    return ("name", "cores", "clock_mhz", *rate, f"memory.{hbm}.bandwidth_gb_per_s",
            f"memory.{hbm}.capacity_bytes", "gpu.*", "interconnect.*")


def _rate_fields(engine: EngineBase) -> tuple[str, ...]:
    """The integer fields of ``engine`` its ``macs_per_cycle`` depends on (doubling the field
    changes the rate)."""
    out = []
    for f in fields(engine):
        value = getattr(engine, f.name)
        if isinstance(value, bool) or not isinstance(value, int):
            continue
        try:
            doubled: dict[str, Any] = {f.name: value * 2}
            probe = dataclasses.replace(engine, **doubled)
        except (ValueError, TypeError):  # the doubled value is out of range
            continue
        if probe.macs_per_cycle != engine.macs_per_cycle:
            out.append(f.name)
    return tuple(out)


def field_names(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


# The tile spec (hw.spec.tile) reads ArchSpec, and only the tile's commands need it (``tpe gen
# tile``, ``tpe verify``, the demo): its names are imported on first use, so that a simulation
# does not build its pydantic classes.
_TILE_NAMES = ("Descriptor", "TileSpec", "tile_spec")
if TYPE_CHECKING:
    from hw.spec.tile import Descriptor, TileSpec, tile_spec

__all__ += ["Descriptor", "TileSpec", "tile_spec"]


def __getattr__(name: str) -> Any:
    """:data:`_TILE_NAMES` from :mod:`hw.spec.tile`, imported on first use."""
    if name in _TILE_NAMES:
        from hw.spec import tile

        return getattr(tile, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
