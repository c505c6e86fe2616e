"""Energy and area: action counts per component times a table of sourced entries (Accelergy).

The table (``sim/data/energy/<name>.toml``, chosen by ``ArchSpec.energy_table``) lists energy
per action and area per component, each with a value, a unit and a source; see
``horowitz45.toml`` for the default and its citations.

Components and their actions (counts from :func:`action_counts`):

``mac_multiplier``
    one multiply per useful MAC at the engine's ``a_bits x w_bits``. Energy (and area) from
    the 8b and 32b integer-multiply entries on a power law in the partial-product count
    ``a_bits * w_bits``: ``E = E8 * (a*w / 64) ** alpha``, ``alpha = ln(E32 / E8) / ln(16)``
    (0.99 for Horowitz's 0.2 / 3.1 pJ: an array multiplier's work grows with a*w).
``mac_adder``
    one accumulate per useful MAC at ``acc_bits``: ``E = E8 * (acc / 8) ** beta``,
    ``beta = ln(E32 / E8) / ln(4)`` from the 8b and 32b integer-add entries.
``pe_registers``
    bit accesses of PE pipeline registers. OS: per MAC the A and W pass-through registers and
    the accumulator (``a_bits + w_bits + acc_bits``), plus the drain, which shifts every result
    down on average ``(rows + 1) / 2`` registers. WS: per MAC the A pass-through register and
    the partial-sum register (``a_bits + acc_bits``; the stationary weight does not toggle),
    plus the preload, which shifts every weight down ``(rows + 1) / 2`` registers on average.
``a_buffer``, ``w_buffer``, ``o_buffer``
    bytes read plus bytes written (``sim.memory``); energy per byte = the 64-bit access energy
    / 8 at the buffer's ``capacity_bytes``, interpolated log-log between the table's SRAM points
    (8 KB, 32 KB, 1 MB) and extrapolated with the nearest segment's slope. Writes cost as
    much as reads (the source gives reads only).
``dram``
    bytes transferred; energy per byte = the 64-bit access energy / 8.

Idle PEs are assumed clock-gated (no energy); leakage is not modelled.

Area: ``rows * cols`` PEs of one multiplier, one adder and ``a_bits + w_bits + acc_bits``
register bits, plus SRAM bit cells for each buffer's ``capacity_bytes`` (bit cells only, a
lower bound); DRAM is off chip.

**Technology scaling.** Each entry was measured at its ``node_nm`` (the table's node unless
given); it is scaled to ``ArchSpec.tech_nm`` by

    E(tech) = E(node) * (tech_nm / node_nm) ** energy_exponent
    A(tech) = A(node) * (tech_nm / node_nm) ** area_exponent

with the exponents and their justification in the table's ``[scaling]`` section (defaults:
energy ~ L, switched capacitance at a stalled supply voltage; area ~ L^2, Dennard 1974).
Entries with ``scales = false`` (off-chip DRAM) are not scaled.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from hw.spec import ArchSpec, SpecError, read_toml

__all__ = [
    "ACTION_UNITS",
    "AREA_COMPONENTS",
    "ENERGY_COMPONENTS",
    "Actions",
    "EnergyTable",
    "TableEntry",
    "UnitEnergies",
    "action_counts",
    "area_breakdown",
    "describe",
    "energy_breakdown",
    "list_tables",
    "load_table",
    "unit_energies",
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


def _is_number(v: object) -> bool:
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


@functools.lru_cache(maxsize=32)
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


def _power_law(x: float, x0: float, y0: float, x1: float, y1: float) -> float:
    """``y0 * (x / x0) ** alpha`` through ``(x0, y0)`` and ``(x1, y1)``."""
    alpha = math.log(y1 / y0) / math.log(x1 / x0)
    return y0 * (x / x0) ** alpha


def _loglog_interp(x: float, xs: list[float], ys: list[float]) -> float:
    """Piecewise log-log interpolation, extrapolating with the end segments' slopes."""
    if len(xs) == 1:
        return ys[0]
    i = int(np.clip(np.searchsorted(xs, x) - 1, 0, len(xs) - 2))
    return _power_law(x, xs[i], ys[i], xs[i + 1], ys[i + 1])


def _mult(table: EnergyTable, section: str, a_bits: int, w_bits: int, tech: float) -> float:
    get = table.energy_pj if section == "energy" else table.area_um2
    return _power_law(a_bits * w_bits, 64, get("int_mult_8b", tech),
                      1024, get("int_mult_32b", tech))


def _add(table: EnergyTable, section: str, bits: int, tech: float) -> float:
    get = table.energy_pj if section == "energy" else table.area_um2
    return _power_law(bits, 8, get("int_add_8b", tech), 32, get("int_add_32b", tech))


def _sram_byte_pj(table: EnergyTable, capacity_bytes: int, tech: float) -> float:
    points = sorted(
        (e.capacity_bytes, e.scaled(tech, table.energy_exponent))
        for e in table.energy.values() if e.capacity_bytes
    )
    per_64b = _loglog_interp(capacity_bytes, [float(c) for c, _ in points], [v for _, v in points])
    return per_64b / 8


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitEnergies:
    """Energy per action at one architecture's widths, buffer sizes and node (pJ)."""

    mult_pj: float
    add_pj: float
    register_bit_pj: float
    a_buffer_byte_pj: float
    w_buffer_byte_pj: float
    o_buffer_byte_pj: float
    dram_byte_pj: float


@functools.lru_cache(maxsize=256)
def unit_energies(arch: ArchSpec) -> UnitEnergies:
    """Per-action energies of ``arch`` (see the module docstring for each rule)."""
    table = load_table(arch.energy_table)
    spec, tech = arch.engine, arch.tech_nm
    return UnitEnergies(
        mult_pj=_mult(table, "energy", spec.a_bits, spec.w_bits, tech),
        add_pj=_add(table, "energy", spec.acc_bits, tech),
        register_bit_pj=table.energy_pj("register_bit", tech),
        a_buffer_byte_pj=_sram_byte_pj(table, arch.a_buffer.capacity_bytes, tech),
        w_buffer_byte_pj=_sram_byte_pj(table, arch.w_buffer.capacity_bytes, tech),
        o_buffer_byte_pj=_sram_byte_pj(table, arch.o_buffer.capacity_bytes, tech),
        dram_byte_pj=table.energy_pj("dram_64b", tech) / 8,
    )


@functools.lru_cache(maxsize=256)
def area_breakdown(arch: ArchSpec) -> MappingProxyType[str, float]:
    """Area per component of ``arch`` in um^2 (keys :data:`AREA_COMPONENTS`)."""
    table = load_table(arch.energy_table)
    spec, tech = arch.engine, arch.tech_nm
    pes = spec.rows * spec.cols
    sram_bit = table.area_um2("sram_bit", tech)
    return MappingProxyType({
        "pe_multipliers": pes * _mult(table, "area", spec.a_bits, spec.w_bits, tech),
        "pe_adders": pes * _add(table, "area", spec.acc_bits, tech),
        "pe_registers": pes * (spec.a_bits + spec.w_bits + spec.acc_bits)
        * table.area_um2("register_bit", tech),
        "a_buffer": arch.a_buffer.capacity_bytes * 8 * sram_bit,
        "w_buffer": arch.w_buffer.capacity_bytes * 8 * sram_bit,
        "o_buffer": arch.o_buffer.capacity_bytes * 8 * sram_bit,
    })


# -- action counts and energy -----------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class Actions:
    """Action counts per component for one GEMM instance (arrays over candidates)."""

    macs: np.ndarray
    register_bits: np.ndarray
    a_buffer_bytes: np.ndarray
    w_buffer_bytes: np.ndarray
    o_buffer_bytes: np.ndarray
    dram_bytes: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {
            "mac_multiplier": self.macs,
            "mac_adder": self.macs,
            "pe_registers": self.register_bits,
            "a_buffer": self.a_buffer_bytes,
            "w_buffer": self.w_buffer_bytes,
            "o_buffer": self.o_buffer_bytes,
            "dram": self.dram_bytes,
        }


#: Unit of each component's action count.
ACTION_UNITS: dict[str, str] = {
    "mac_multiplier": "multiplies",
    "mac_adder": "additions",
    "pe_registers": "register bit accesses",
    "a_buffer": "bytes",
    "w_buffer": "bytes",
    "o_buffer": "bytes",
    "dram": "bytes",
}


def action_counts(
    arch: ArchSpec,
    M: int,
    N: int,
    K: int,
    *,
    stream_chunks: np.ndarray,
    sram: tuple[np.ndarray, np.ndarray, np.ndarray],
    dram_bytes: np.ndarray,
) -> Actions:
    """Action counts of one ``M x N x K`` GEMM instance (see the module docstring).

    ``stream_chunks``: from ``sim.engines.systolic.tiled_fold_grid`` (K chunks for OS, M
    chunks for WS);
    ``sram``: bytes read plus written per buffer (A, W, O); ``dram_bytes``: DRAM bytes.
    """
    spec = arch.engine
    macs = M * N * K
    shift = (spec.rows + 1) / 2
    if spec.dataflow == "os":
        per_mac = spec.a_bits + spec.w_bits + spec.acc_bits
        shifted = stream_chunks * (M * N * shift * spec.acc_bits)  # drains
    else:
        per_mac = spec.a_bits + spec.acc_bits
        shifted = stream_chunks * (K * N * shift * spec.w_bits)  # preloads
    n = np.shape(dram_bytes)
    return Actions(
        macs=np.full(n, float(macs)),
        register_bits=macs * per_mac + shifted.astype(np.float64),
        a_buffer_bytes=sram[0],
        w_buffer_bytes=sram[1],
        o_buffer_bytes=sram[2],
        dram_bytes=dram_bytes,
    )


def energy_breakdown(arch: ArchSpec, actions: Actions) -> dict[str, np.ndarray]:
    """Energy (pJ) per component: action count times the per-action energy."""
    u = unit_energies(arch)
    return {
        "mac_multiplier": actions.macs * u.mult_pj,
        "mac_adder": actions.macs * u.add_pj,
        "pe_registers": actions.register_bits * u.register_bit_pj,
        "a_buffer": actions.a_buffer_bytes * u.a_buffer_byte_pj,
        "w_buffer": actions.w_buffer_bytes * u.w_buffer_byte_pj,
        "o_buffer": actions.o_buffer_bytes * u.o_buffer_byte_pj,
        "dram": actions.dram_bytes * u.dram_byte_pj,
    }


def describe(arch: ArchSpec) -> dict[str, Any]:
    """The per-action energies of ``arch`` with their table sources (for reports)."""
    table = load_table(arch.energy_table)
    u = unit_energies(arch)
    return {
        "table": table.name,
        "tech_nm": arch.tech_nm,
        "unit_energies_pj": {k: getattr(u, k) for k in UnitEnergies.__dataclass_fields__},
        "sources": {k: e.source for k, e in table.energy.items()},
    }
