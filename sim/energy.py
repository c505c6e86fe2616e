"""Energy and area: action counts per component times a table of sourced entries (Accelergy).

The table (``sim/data/energy/<name>.toml``, chosen by ``ArchSpec.energy_table``) lists energy
per action and area per component, each with a value, a unit and a source; see
``horowitz45.toml`` for the default and its citations. Every per-action energy below is one of
its entries or a power law through two of them; the counts are structural (derived from the
engine's spec and the fold geometry of :mod:`mapping`), each rule naming where it comes from.

Energy components (:data:`ENERGY_COMPONENTS`, the same for every engine kind) and actions
(:func:`action_counts`, keyed by action name; :func:`action_units` gives each action's
component and unit):

``mac_multiplier``, ``mac_adder``
    the actions that form products, and the additions. Which ones, how many per MAC and at
    what energy depends on the engine kind: its cost module ``sim.engines.<kind>`` states them
    (its ``arith_actions``, which :func:`arith_actions` calls through
    :func:`sim.engines.kind_cost`) and its docstring gives each rule and its source. Every
    price is a table entry or a power law of :mod:`sim.engines.cost` through two of them: a
    multiplier of ``a x w`` bits ``E = E8 * (a*w / 64) ** alpha`` through ``int_mult_8b`` and
    ``int_mult_32b``, an adder of ``b`` bits ``E = E8 * (b / 8) ** beta`` through
    ``int_add_8b`` and ``int_add_32b``. The multiplier kinds (``systolic``, ``cube``,
    ``addertree``, ``matrix2d``) count one ``multiply`` and one ``accumulate`` per MAC;
    ``bitslice`` slice multiplies and shift-adds; ``lut`` table reads, table builds and
    shift-adds; ``bitplane`` 1-bit plane-pair gates, popcount full adds and shift-adds. A kind
    without a cost module is an error (it is not priced as a multiplier kind).

    Per-output corrections (the symmetrized table's and bipolar encoding's offsets, one add
    per output) and data-dependent savings (``skip_zero``) are not counted: the dense worst
    case is, as in ``fold_cycles``. The TPE bit-weight options (``booth``,
    ``csa_accumulate``, ``compress``, ``carry_save``) do not change the counts; their effect
    on area and depth is a measured synthesis figure (``tpe gen --synth``).
``pe_registers``
    ``pe_registers`` bit accesses, generic over kinds. Per MAC: the accumulator (``acc_bits``;
    a stationary accumulator is updated, a streamed partial sum moves) plus every input
    operand indexed by the streamed dimension (it moves through a pipeline register;
    ``a_bits``, ``w_bits``). The stationary operand of a fold (the output when K streams,
    the weights or activations otherwise) is drained or preloaded once per fold through
    on average ``(lines + 1) / 2`` registers, ``lines`` being its block's unroll along its
    first dimension (a systolic OS array's rows; a WS array's weight rows). An engine that
    moves it while another fold streams (``fold_interval < fold_cycles``: double-buffered
    weights or outputs) writes each element once more per fold, from the shadow registers
    into the working ones (weights) or from the accumulators into the output registers.
``a_buffer``, ``w_buffer``, ``o_buffer``
    bytes read plus bytes written (``sim.memory``); energy per byte = the 64-bit access energy
    / 8 at the buffer's ``capacity_bytes``, interpolated log-log between the table's SRAM points
    (8 KB, 32 KB, 1 MB) and extrapolated with the nearest segment's slope. Writes cost as
    much as reads (the source gives reads only).
``dram``
    bytes transferred; energy per byte = the 64-bit access energy / 8.

Idle units are assumed clock-gated (no energy); leakage is not modelled.

Area (:func:`area_breakdown`): the engine's per kind (:func:`pe_area`): the kind's cost
module states its multiplier and adder area and its register bits (its ``pe_area``; its
docstring gives the rule), the register bits priced at the table's ``register_bit`` area. The
structure the kinds share (the unrolling ``u``, PE positions ``P``, the stream granule ``g``,
``P * g`` product lanes, the register footprint of one beat's operands and of the stationary
block) is defined in :mod:`sim.engines.cost`. Plus SRAM bit cells for each buffer's
``capacity_bytes`` (bit cells only, a lower bound); DRAM is off chip.

**Technology scaling.** Each entry was measured at its ``node_nm`` (the table's node unless
given); it is scaled to ``ArchSpec.tech_nm`` by

    E(tech) = E(node) * (tech_nm / node_nm) ** energy_exponent
    A(tech) = A(node) * (tech_nm / node_nm) ** area_exponent

with the exponents and their justification in the table's ``[scaling]`` section (defaults:
energy ~ L, switched capacitance at a stalled supply voltage; area ~ L^2, Dennard 1974).
Entries with ``scales = false`` (off-chip DRAM) are not scaled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeGuard

import numpy as np

from hw.spec import MAX_BYTE_PJ, ArchSpec, LevelSpec, SpecError, read_toml
from mapping import OPERAND_DIMS, FoldGrid
from models.caches import memo
from sim.engines import kind_cost
from sim.engines.cost import ArithAction
from sim.engines.cost import power_law as _power_law
from sim.engines.cost import unroll as _unroll
from sim.memory import overlaps_folds

__all__ = [
    "AREA_COMPONENTS",
    "ENERGY_COMPONENTS",
    "ArithAction",
    "EnergyTable",
    "TableEntry",
    "UnitEnergies",
    "action_counts",
    "action_units",
    "area_breakdown",
    "area_components",
    "arith_actions",
    "describe",
    "energy_breakdown",
    "energy_components",
    "level_byte_pj",
    "list_tables",
    "load_table",
    "operand_level",
    "pe_area",
    "sram_area",
    "system_area_breakdown",
    "unit_energies",
    "vector_op_pj",
]

TABLE_DIR = Path(__file__).with_name("data") / "energy"

ENERGY_COMPONENTS: tuple[str, ...] = (
    "mac_multiplier", "mac_adder", "pe_registers", "a_buffer", "w_buffer", "o_buffer", "dram",
)
AREA_COMPONENTS: tuple[str, ...] = (
    "pe_multipliers", "pe_adders", "pe_registers", "a_buffer", "w_buffer", "o_buffer",
)

_REQUIRED_ENERGY = ("int_add_8b", "int_add_32b", "int_mult_8b", "int_mult_32b", "dram_64b",
                    "register_bit")
_REQUIRED_AREA = ("int_add_8b", "int_add_32b", "int_mult_8b", "int_mult_32b", "register_bit",
                  "sram_bit")
_ENTRY_KEYS = frozenset({"value", "unit", "source", "node_nm", "scales", "capacity_bytes"})
_TOP_KEYS = frozenset({"name", "node_nm", "description", "scaling", "energy", "area"})
_SCALING_KEYS = frozenset({"energy_exponent", "energy_source", "area_exponent", "area_source"})


@dataclass(frozen=True, slots=True, kw_only=True)
class TableEntry:
    """One sourced figure: ``value`` in ``unit``, measured at ``node_nm``."""

    value: float
    unit: str
    source: str
    node_nm: float
    scales: bool = True
    capacity_bytes: int | None = None

    def scaled(self, tech_nm: float, exponent: float) -> float:
        if not self.scales:
            return self.value
        return self.value * (tech_nm / self.node_nm) ** exponent


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class EnergyTable:
    """A loaded, validated energy/area table (see the module docstring)."""

    name: str
    node_nm: float
    description: str
    energy_exponent: float
    energy_scaling_source: str
    area_exponent: float
    area_scaling_source: str
    energy: MappingProxyType[str, TableEntry]
    area: MappingProxyType[str, TableEntry]

    def energy_pj(self, key: str, tech_nm: float) -> float:
        return self.energy[key].scaled(tech_nm, self.energy_exponent)

    def area_um2(self, key: str, tech_nm: float) -> float:
        return self.area[key].scaled(tech_nm, self.area_exponent)


def list_tables() -> list[str]:
    return sorted(p.stem for p in TABLE_DIR.glob("*.toml"))


def _is_number(v: object) -> TypeGuard[int | float]:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _entry(where: str, raw: object, node_nm: float) -> TableEntry:
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: must be a table with value, unit and source")
    for key in raw:
        if key not in _ENTRY_KEYS:
            allowed = ", ".join(sorted(_ENTRY_KEYS))
            raise SpecError(f"{where}.{key}: unknown key; allowed: {allowed}")
    for key in ("value", "unit", "source"):
        if key not in raw:
            raise SpecError(f"{where}.{key}: required but missing")
    value = raw["value"]
    if not _is_number(value) or value <= 0:
        raise SpecError(f"{where}.value: must be a number > 0 (got {value!r})")
    for key in ("unit", "source"):
        if not isinstance(raw[key], str) or not raw[key].strip():
            raise SpecError(f"{where}.{key}: must be a non-empty string (got {raw[key]!r})")
    node = raw.get("node_nm", node_nm)
    if not _is_number(node) or node <= 0:
        raise SpecError(f"{where}.node_nm: must be a number > 0 (got {node!r})")
    scales = raw.get("scales", True)
    if not isinstance(scales, bool):
        raise SpecError(f"{where}.scales: must be true or false (got {scales!r})")
    cap = raw.get("capacity_bytes")
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
        raise SpecError(f"{where}.capacity_bytes: must be an integer >= 1 (got {cap!r})")
    return TableEntry(value=float(value), unit=raw["unit"], source=raw["source"],
                      node_nm=float(node), scales=scales, capacity_bytes=cap)


def _table_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if name_or_path.endswith(".toml") or path.exists():
        return path
    preset = TABLE_DIR / f"{name_or_path}.toml"
    if not preset.is_file():
        raise SpecError(
            f"energy_table: unknown table {name_or_path!r}; tables: {', '.join(list_tables())} "
            "(or give a path to a .toml file)"
        )
    return preset


@memo(maxsize=32)
def load_table(name_or_path: str) -> EnergyTable:
    """Load and validate an energy table by name (``sim/data/energy``) or path."""
    path = _table_path(name_or_path)
    raw = read_toml(path)
    where = f"energy table {path.stem}"
    for key in raw:
        if key not in _TOP_KEYS:
            raise SpecError(f"{where}: {key}: unknown key; allowed: {', '.join(sorted(_TOP_KEYS))}")
    node = raw.get("node_nm")
    if not _is_number(node) or node <= 0:
        raise SpecError(f"{where}: node_nm: must be a number > 0 (got {node!r})")
    scaling = raw.get("scaling")
    if not isinstance(scaling, dict):
        raise SpecError(f"{where}: scaling: required table with energy_exponent, area_exponent")
    for key in scaling:
        if key not in _SCALING_KEYS:
            raise SpecError(f"{where}: scaling.{key}: unknown key")
    for key in ("energy_exponent", "area_exponent"):
        if not _is_number(scaling.get(key)):
            raise SpecError(f"{where}: scaling.{key}: must be a number (got {scaling.get(key)!r})")
    for key in ("energy_source", "area_source"):
        if not isinstance(scaling.get(key), str) or not scaling[key].strip():
            raise SpecError(f"{where}: scaling.{key}: required source string")
    sections: dict[str, dict[str, TableEntry]] = {}
    for section, required in (("energy", _REQUIRED_ENERGY), ("area", _REQUIRED_AREA)):
        body = raw.get(section)
        if not isinstance(body, dict):
            raise SpecError(f"{where}: {section}: required table of entries")
        sections[section] = {k: _entry(f"{where}: {section}.{k}", v, float(node))
                             for k, v in body.items()}
        for key in required:
            if key not in sections[section]:
                raise SpecError(f"{where}: {section}.{key}: required entry missing")
    if not any(e.capacity_bytes for e in sections["energy"].values()):
        raise SpecError(f"{where}: energy: needs at least one SRAM entry with capacity_bytes")
    return EnergyTable(
        name=str(raw.get("name", path.stem)),
        node_nm=float(node),
        description=str(raw.get("description", "")),
        energy_exponent=float(scaling["energy_exponent"]),
        energy_scaling_source=scaling["energy_source"],
        area_exponent=float(scaling["area_exponent"]),
        area_scaling_source=scaling["area_source"],
        energy=MappingProxyType(sections["energy"]),
        area=MappingProxyType(sections["area"]),
    )


# -- unit costs at an architecture's widths and node ------------------------------------------


def _loglog_interp(x: float, xs: list[float], ys: list[float]) -> float:
    """Piecewise log-log interpolation, extrapolating with the end segments' slopes."""
    if len(xs) == 1:
        return ys[0]
    i = int(np.clip(np.searchsorted(xs, x) - 1, 0, len(xs) - 2))
    return _power_law(x, xs[i], ys[i], xs[i + 1], ys[i + 1])


def _sram_byte_pj(table: EnergyTable, capacity_bytes: int, tech: float) -> float:
    points = sorted(
        (e.capacity_bytes, e.scaled(tech, table.energy_exponent))
        for e in table.energy.values() if e.capacity_bytes
    )
    per_64b = _loglog_interp(capacity_bytes, [float(c) for c, _ in points], [v for _, v in points])
    return per_64b / 8


# -- arithmetic actions: each kind's cost module states them -----------------------------


@memo(maxsize=256)
def arith_actions(arch: ArchSpec) -> tuple[ArithAction, ...]:
    """The arithmetic actions of ``arch``'s engine, as its kind's cost module
    (:func:`sim.engines.kind_cost`) states them (see the module docstring)."""
    spec = arch.engine
    return kind_cost(spec.kind).arith_actions(spec, load_table(arch.energy_table), arch.tech_nm)


# -- area -----------------------------------------------------------------------------------


@memo(maxsize=256)
def pe_area(arch: ArchSpec) -> MappingProxyType[str, float]:
    """Engine area per component (um^2): ``pe_multipliers``, ``pe_adders``, ``pe_registers``,
    as the kind's cost module (:func:`sim.engines.kind_cost`) states them; register bits at
    the table's ``register_bit`` area."""
    table = load_table(arch.energy_table)
    spec, tech = arch.engine, arch.tech_nm
    area = kind_cost(spec.kind).pe_area(spec, table, tech)
    return MappingProxyType({"pe_multipliers": area.multipliers_um2,
                             "pe_adders": area.adders_um2,
                             "pe_registers": area.register_bits
                             * table.area_um2("register_bit", tech)})


@memo(maxsize=256)
def area_breakdown(arch: ArchSpec) -> MappingProxyType[str, float]:
    """Area per component of ``arch`` in um^2 (keys :data:`AREA_COMPONENTS`)."""
    table = load_table(arch.energy_table)
    sram_bit = table.area_um2("sram_bit", arch.tech_nm)
    return MappingProxyType({
        **pe_area(arch),
        "a_buffer": arch.a_buffer.capacity_bytes * 8 * sram_bit,
        "w_buffer": arch.w_buffer.capacity_bytes * 8 * sram_bit,
        "o_buffer": arch.o_buffer.capacity_bytes * 8 * sram_bit,
    })


def sram_area(arch: ArchSpec) -> dict[str, object]:
    """The buffers' SRAM area of ``arch`` as :func:`area_breakdown` prices it (capacity bits
    times the table's ``sram_bit`` area: bit cells only), with the bits, the area per bit at
    ``arch.tech_nm`` and the table entry's source: what ``tpe gen tile --synth`` writes beside
    the tile's logic figures, so the RTL and the simulator give one answer."""
    table = load_table(arch.energy_table)
    entry = table.area["sram_bit"]
    area = area_breakdown(arch)
    levels = ("a_buffer", "w_buffer", "o_buffer")
    out: dict[str, object] = {
        "area_um2": {lv: area[lv] for lv in levels},
        "total_um2": sum(area[lv] for lv in levels),
        "bits": {lv: arch.level(lv).capacity_bytes * 8 for lv in levels},
        "um2_per_bit": table.area_um2("sram_bit", arch.tech_nm),
        "tech_nm": arch.tech_nm,
        "energy_table": table.name,
        "source": entry.source,
        "counts": "bit cells only (the table's area per bit cell times the capacity bits): "
                  "no decoders, sense amplifiers or I/O, so a lower bound",
    }
    if entry.scales and arch.tech_nm != entry.node_nm:
        out["scaled_from_nm"] = entry.node_nm
        out["scaling_source"] = table.area_scaling_source
    return out


# -- unit energies, action counts and energy --------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitEnergies:
    """Energy per action at one architecture's widths, buffer sizes and node (pJ)."""

    arith: tuple[ArithAction, ...]
    register_bit_pj: float
    a_buffer_byte_pj: float
    w_buffer_byte_pj: float
    o_buffer_byte_pj: float
    dram_byte_pj: float

    def per_action_pj(self) -> dict[str, float]:
        """Energy of one action, by action name (the keys of :func:`action_counts`)."""
        return {
            **{x.name: x.energy_pj for x in self.arith},
            "pe_registers": self.register_bit_pj,
            "a_buffer": self.a_buffer_byte_pj,
            "w_buffer": self.w_buffer_byte_pj,
            "o_buffer": self.o_buffer_byte_pj,
            "dram": self.dram_byte_pj,
        }


@memo(maxsize=256)
def level_byte_pj(arch: ArchSpec, level: LevelSpec) -> float:
    """Energy per byte read or written in ``level``: its ``energy_pj_per_byte`` when given,
    else the table's ``dram_64b`` / 8 off chip, else the 64-bit SRAM access energy at the
    level's whole capacity / 8 (module docstring)."""
    if level.energy_pj_per_byte is not None:
        return level.energy_pj_per_byte
    table = load_table(arch.energy_table)
    if level.off_chip:
        pj = table.energy_pj("dram_64b", arch.tech_nm) / 8
    else:
        pj = _sram_byte_pj(table, level.capacity_bytes, arch.tech_nm)
    if pj > MAX_BYTE_PJ:
        where = (f"off chip at {arch.tech_nm:g} nm" if level.off_chip else
                 f"for {level.capacity_bytes:,} bytes on chip at {arch.tech_nm:g} nm")
        raise SpecError(f"memory.{level.name}: the energy table {arch.energy_table!r} gives "
                        f"{pj:,.0f} pJ a byte {where}, above the {MAX_BYTE_PJ:,.0f} pJ a level "
                        f"may take; use a smaller capacity_bytes or give "
                        f"memory.{level.name}.energy_pj_per_byte (with its source)")
    return pj


@memo(maxsize=1024)
def operand_level(arch: ArchSpec, operand: str, tier: int = 0) -> LevelSpec:
    """The level of ``tier`` (0: next to the engine) that holds ``operand``."""
    return next(lv for lv in arch.tiers[tier] if operand in lv.holds)


@memo(maxsize=256)
def unit_energies(arch: ArchSpec) -> UnitEnergies:
    """Per-action energies of ``arch`` (see the module docstring for each rule): the buffers
    are the innermost tier's levels, ``dram`` the level behind them."""
    table = load_table(arch.energy_table)
    tech = arch.tech_nm
    return UnitEnergies(
        arith=arith_actions(arch),
        register_bit_pj=table.energy_pj("register_bit", tech),
        a_buffer_byte_pj=level_byte_pj(arch, operand_level(arch, "A")),
        w_buffer_byte_pj=level_byte_pj(arch, operand_level(arch, "W")),
        o_buffer_byte_pj=level_byte_pj(arch, operand_level(arch, "O")),
        dram_byte_pj=level_byte_pj(arch, arch.tiers[1][0]),
    )


_MEMORY_ACTIONS = {
    "pe_registers": ("pe_registers", "register bit accesses"),
    "a_buffer": ("a_buffer", "bytes"),
    "w_buffer": ("w_buffer", "bytes"),
    "o_buffer": ("o_buffer", "bytes"),
    "dram": ("dram", "bytes"),
}


@memo(maxsize=256)
def action_units(arch: ArchSpec) -> MappingProxyType[str, dict[str, str]]:
    """``{action: {"component": ..., "unit": ...}}`` for every action of ``arch``."""
    out = {x.name: {"component": x.component, "unit": x.unit} for x in arith_actions(arch)}
    out |= {k: {"component": c, "unit": u} for k, (c, u) in _MEMORY_ACTIONS.items()}
    return MappingProxyType(out)


def action_counts(
    arch: ArchSpec,
    M: int,
    N: int,
    K: int,
    *,
    grid: FoldGrid,
    sram: tuple[np.ndarray, np.ndarray, np.ndarray],
    dram_bytes: np.ndarray,
) -> dict[str, np.ndarray]:
    """Action counts of one ``M x N x K`` GEMM instance, by action name (float64 arrays over
    candidates, 0-d for one mapping's scalar grid; see the module docstring).

    ``grid``: the folds of the mapping (:func:`mapping.fold_grid`); ``sram``: bytes read plus
    written per buffer (A, W, O); ``dram_bytes``: DRAM bytes.
    """
    spec = arch.engine
    macs = float(M * N * K)
    n = np.shape(dram_bytes)
    a_reads = (M * K) * np.asarray(grid.folds_n, dtype=np.float64)  # activations read
    counts = {x.name: (macs * x.per_mac + a_reads * x.per_a_read if x.per_a_read
                       else np.full(n, macs * x.per_mac))
              for x in arith_actions(arch)}

    stream = spec.unrolling().stream
    un = _unroll(spec)
    bits = {"A": spec.a_bits, "W": spec.w_bits, "O": spec.acc_bits}
    elems = {"A": M * K, "W": K * N, "O": M * N}
    per_mac = spec.acc_bits + sum(bits[op] for op in ("A", "W") if stream in OPERAND_DIMS[op])
    (still,) = (op for op, dims in OPERAND_DIMS.items() if stream not in dims)
    hops = (un[OPERAND_DIMS[still][0]] + 1) / 2
    # an engine that moves a fold's stationary operand while another fold streams copies it
    # once more, between the registers it moves through and those the fold uses
    copies = 1 if overlaps_folds(spec) else 0
    moved = grid.chunks * (elems[still] * (hops + copies) * bits[still])  # drains or preloads
    counts["pe_registers"] = macs * per_mac + np.asarray(moved, dtype=np.float64)
    counts["a_buffer"] = np.asarray(sram[0], dtype=np.float64)
    counts["w_buffer"] = np.asarray(sram[1], dtype=np.float64)
    counts["o_buffer"] = np.asarray(sram[2], dtype=np.float64)
    counts["dram"] = np.asarray(dram_bytes, dtype=np.float64)
    return counts


@memo(maxsize=256)
def _priced(arch: ArchSpec) -> tuple[tuple[str, tuple[tuple[str, float], ...]], ...]:
    """Per component of :data:`ENERGY_COMPONENTS`, in order: ``(action, pJ per action)`` of
    every action of ``arch`` charged to it (none for a component no action reaches)."""
    per = unit_energies(arch).per_action_pj()
    by_component: dict[str, list[tuple[str, float]]] = {c: [] for c in ENERGY_COMPONENTS}
    for k, v in action_units(arch).items():
        by_component[v["component"]].append((k, per[k]))
    return tuple((c, tuple(priced)) for c, priced in by_component.items())


def energy_breakdown(arch: ArchSpec, actions: Mapping[str, Any]) -> dict[str, Any]:
    """Energy (pJ) per component (:data:`ENERGY_COMPONENTS`): counts times per-action energy,
    summed in the order of :func:`action_units` (a float64 array over candidates, of the
    shape of its actions' counts; a zero array of the DRAM count's shape for a component no
    action reaches)."""
    out: dict[str, Any] = {}
    for component, priced in _priced(arch):
        if not priced:
            out[component] = np.zeros(np.shape(actions["dram"]))
            continue
        (name, pj), *rest = priced
        total = actions[name] * pj
        for name, pj in rest:
            total = total + actions[name] * pj
        out[component] = total
    return out


def describe(arch: ArchSpec) -> dict[str, Any]:
    """The per-action energies of ``arch`` with their rules and table sources (for reports)."""
    table = load_table(arch.energy_table)
    u = unit_energies(arch)
    return {
        "table": table.name,
        "tech_nm": arch.tech_nm,
        "engine_kind": arch.engine.kind,
        "unit_energies_pj": u.per_action_pj(),
        "arith_rules": {x.name: x.rule for x in u.arith},
        "area_um2": dict(area_breakdown(arch)),
        "sources": {k: e.source for k, e in table.energy.items()},
    }


# -- the system around the engines: vector units, global buffer, several cores -------------

#: The engine's own energy components (arithmetic and PE registers).
ENGINE_ENERGY_COMPONENTS: tuple[str, ...] = ENERGY_COMPONENTS[:3]
ENGINE_AREA_COMPONENTS: tuple[str, ...] = AREA_COMPONENTS[:3]


def _entry_pj(table: EnergyTable, key: str, tech: float, why: str) -> float:
    if key not in table.energy:
        raise SpecError(f"energy_table: {table.name} has no [energy.{key}] entry, needed for "
                        f"{why}; add one (value, unit, source)")
    return table.energy_pj(key, tech)


@memo(maxsize=256)
def vector_op_pj(arch: ArchSpec) -> float:
    """Energy of one vector-unit operation: one fp16 fused multiply-add, priced as an fp16
    multiply plus an fp16 add (``fp16_mult`` + ``fp16_add``: 1.5 pJ at 45 nm, Horowitz)."""
    table = load_table(arch.energy_table)
    why = "the vector unit's fp16 operations"
    return (_entry_pj(table, "fp16_mult", arch.tech_nm, why)
            + _entry_pj(table, "fp16_add", arch.tech_nm, why))


@memo(maxsize=256)
def energy_components(arch: ArchSpec) -> tuple[str, ...]:
    """Energy components of a whole architecture: the engine's arithmetic and registers,
    one per memory level (by name, innermost first), the vector units, and ``gpu_board``
    (a GPU preset's kernels' energy: ``sim.gpu_model.predict_kernel``)."""
    return (*ENGINE_ENERGY_COMPONENTS, *(lv.name for lv in arch.memory), "vector", "gpu_board")


@memo(maxsize=256)
def area_components(arch: ArchSpec) -> tuple[str, ...]:
    """Area components of a whole architecture: the engines' PEs, each on-chip level, the
    vector units and a GPU's die."""
    return (*ENGINE_AREA_COMPONENTS, *(lv.name for lv in arch.memory if not lv.off_chip),
            "vector", "gpu_die")


@memo(maxsize=256)
def system_area_breakdown(arch: ArchSpec) -> MappingProxyType[str, float]:
    """Area (um^2) of all ``arch.cores`` engines, every on-chip level (bit cells of its
    capacity, once per core for a per-core level) and the vector units (``lanes`` fp16
    multipliers and adders per core, the ``fp16_mult`` and ``fp16_add`` area entries); for a
    GPU preset, its die (``gpu.die_area_mm2``)."""
    keys = area_components(arch)
    if arch.gpu is not None:  # a GPU: its die, from the datasheet
        return MappingProxyType({**dict.fromkeys(keys, 0.0),
                                 "gpu_die": arch.gpu.die_area_mm2 * 1e6})
    table = load_table(arch.energy_table)
    tech = arch.tech_nm
    out = {k: arch.cores * v for k, v in pe_area(arch).items()}
    sram_bit = table.area_um2("sram_bit", tech)
    for lv in arch.memory:
        if not lv.off_chip:
            copies = arch.cores if lv.instances == "core" else 1
            out[lv.name] = copies * lv.capacity_bytes * 8 * sram_bit
    lanes = 0 if arch.vector is None else arch.vector.lanes
    fp = 0.0
    if lanes:
        for key in ("fp16_mult", "fp16_add"):
            if key not in table.area:
                raise SpecError(f"energy_table: {table.name} has no [area.{key}] entry, needed "
                                "for the vector unit's area; add one (value, unit, source)")
            fp += table.area_um2(key, tech)
    out["vector"] = arch.cores * lanes * fp
    out["gpu_die"] = 0.0
    return MappingProxyType(out)
