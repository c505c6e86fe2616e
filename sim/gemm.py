"""One GEMM on one architecture: cycles, stalls, energy, area (``tpe sim gemm``).

:func:`simulate_gemm` maps the GEMM through :func:`mapping.search` with this module's cost
function :func:`gemm_cost` (the engine's fold model, ``sim.memory`` and ``sim.energy``), then
evaluates the chosen mapping. ``gemm.count`` independent instances run back to back: every
total is ``count`` times one instance's.

The compute model is the same for every engine kind and uses only the spec's contract
(:func:`tiled_compute_cycles`): a buffer tile takes ``prod over spatial dims d of
ceil(tile_d / unroll_d)`` folds (``spec.unrolling()``), each costing
``spec.fold_interval(the tile's extent of the streamed dimension)``; tiles run back to back,
and the GEMM's last fold adds its drain (``fold_cycles - fold_interval``, 0 for engines that do
not overlap folds).

``memory="ideal"`` skips the search: the GEMM runs untiled with its operands on chip and
infinite bandwidth, so ``compute_cycles == cycles ==
sim.engines.gemm_compute_cycles(arch.engine, M, N, K) * count`` exactly. ``utilization`` is
``macs / (cycles * spec.macs_per_cycle)``.

**Exact integers** (``docs/llm_simulator.md``). The search ranks candidates in float64 (exact
below 2^53; above, where int64 could wrap, only their order matters); the chosen mapping is
then evaluated again exactly, with the same functions given the :class:`mapping.Mapping`
instead of the candidate arrays: Python integers for counts, :class:`fractions.Fraction` for
rational terms (bits of scaled formats, bit-serial beats, transfers at the link's rate). One
instance's stall cycles are the exact rational stall rounded up, its DRAM bytes per operand the
exact bytes rounded up to whole bytes; totals are ``count`` times those, so every reported
cycle and byte count is an exact Python int at any size in range.

Results are cached on (architecture, shape, formats, memory, objective); a cached evaluation
costs a few microseconds (see ``tests/test_sim_gemm.py`` for the bound that is held).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from hw.spec import ArchSpec, EngineSpec, spec_to_dict
from mapping import (
    DIMS,
    OBJECTIVES,
    Candidates,
    CostFn,
    Costs,
    FoldGrid,
    Mapping,
    Objective,
    fold_grid,
    search,
    untiled,
)
from mapping.arrays import sorted_unique
from models import ModelError
from models.caches import clear_caches, memo
from models.formats import get_format, known_formats
from models.ops import Gemm
from sim.energy import (
    ENERGY_COMPONENTS,
    action_counts,
    action_units,
    area_breakdown,
    arith_actions,
    energy_breakdown,
)
from sim.engines import format_hook
from sim.errors import FormatError
from sim.memory import (
    MEMORY_MODES,
    CandidateExposure,
    DramExposure,
    Memory,
    MemoryTraffic,
    candidate_dram_stalls,
    traffic_without_stalls,
    whole_stall_cycles,
    with_dram_stalls,
)

__all__ = [
    "FormatError",
    "GemmResult",
    "check_formats",
    "clear_caches",
    "compute_view",
    "gemm_cost",
    "gemm_cost_passes",
    "run_gemm",
    "simulate_gemm",
    "tiled_compute_cycles",
]


# -- format checks ------------------------------------------------------------------------------


def _check_operand(flag: str, fmt_name: str, engine: EngineSpec, field: str) -> None:
    bits = getattr(engine, field)
    try:
        fmt = get_format(fmt_name)
    except ModelError:
        raise FormatError(
            f"{flag}: unknown number format {fmt_name!r}; known: {', '.join(known_formats())}"
        ) from None
    if fmt.family == "fp":
        raise FormatError(
            f"{flag}: {fmt.name} is a floating-point format but {engine.name} is an integer "
            f"engine ({field}={bits}); use an integer format such as int{bits}"
        )
    if not engine.signed and fmt.signed:
        raise FormatError(
            f"{flag}: {fmt.name} is signed but the engine is unsigned (engine.signed=false); "
            f"use uint{min(bits, fmt.bits)} or --set engine.signed=true"
        )
    # A signed engine holds an unsigned or bipolar N-bit value in N + 1 bits.
    need = fmt.bits + (1 if engine.signed and fmt.family in ("uint", "bipolar") else 0)
    if need > bits:
        raise FormatError(
            f"{flag}: {fmt.name} needs {need}-bit operands but the engine has {field}={bits}; "
            f"use {flag} int{bits} or --set engine.{field}={need}"
        )


@memo(maxsize=1024)
def check_formats(engine: EngineSpec, a_fmt: str, w_fmt: str) -> None:
    """Raise :class:`FormatError` unless ``a_fmt``/``w_fmt`` fit the engine's operands (by
    the kind's own check when it has one, :data:`sim.engines.FORMAT_HOOKS`)."""
    hook = format_hook(engine.kind, "check_formats")
    if hook is not None:
        hook(engine, a_fmt, w_fmt)
        return
    _check_operand("--a-fmt", a_fmt, engine, "a_bits")
    _check_operand("--w-fmt", w_fmt, engine, "w_bits")


# -- the cost model (vectorised over candidate mappings) --------------------------------------


@memo(maxsize=65536)
def _one_fold(spec: EngineSpec, stream_len: int) -> tuple[int, int]:
    """``(fold_interval, fold_cycles - fold_interval)`` of one stream length: what a fold
    costs when another follows it, and what the last fold of a run adds to that."""
    interval = spec.fold_interval(stream_len)
    return interval, spec.fold_cycles(stream_len) - interval


def _fold_timing(spec: EngineSpec, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_one_fold` of every stream length (two int64 arrays), called once per distinct
    length."""
    uniq = sorted_unique(lengths)
    both = np.array([_one_fold(spec, int(x)) for x in uniq], dtype=np.int64).reshape(-1, 2)
    at = np.searchsorted(uniq, lengths)
    return both[at, 0], both[at, 1]


def tiled_compute_cycles(
    spec: EngineSpec, M: int, N: int, K: int, tile_m: Any, tile_n: Any, tile_k: Any,
    *, grid: FoldGrid | None = None, cands: Candidates | None = None,
) -> Any:
    """Engine cycles of an ``M x N x K`` GEMM cut into buffer tiles: an exact Python int for
    int tiles; float64 per candidate for int arrays (exact below 2^53; above it, where an
    int64 product could wrap, the candidates' ranking).

    Every tile runs ``prod over spatial dims d of ceil(tile_d / unroll_d)`` folds streaming
    the tile's extent of the streamed dimension; tiles (and their folds) run back to back, so
    every fold costs ``spec.fold_interval`` of its stream length and the last fold of the GEMM
    adds ``fold_cycles - fold_interval`` of its own (the pipeline drain; 0 for an engine that
    does not overlap folds). Along the streamed dimension ``D`` cut into tiles ``t``: ``D // t``
    full tiles and, when ``D % t``, one edge tile, which is the last (its fold streams
    ``D % t``). Untiled (every tile the whole dimension), this is
    :func:`sim.engines.gemm_compute_cycles` exactly. ``grid``: the tiles'
    :func:`mapping.fold_grid` when the caller has it already; ``cands``: the candidate set
    the tile arrays come from (its distinct sizes per dimension save sorting them; the
    result is then per tile, ``(1, T)``: :class:`mapping.Candidates`).
    """
    u = spec.unrolling()
    if grid is None:
        grid = (cands.fold_grid(u) if cands is not None
                else fold_grid(u, M, N, K, tile_m, tile_n, tile_k))
    dim, tile = {"m": (M, tile_m), "n": (N, tile_n), "k": (K, tile_k)}[u.stream]
    if not (np.ndim(tile_m) or np.ndim(tile_n) or np.ndim(tile_k)):
        chunks, last = divmod(dim, int(tile))
        full_interval, full_tail = _one_fold(spec, int(tile))
        last_interval, last_tail = _one_fold(spec, last) if last else (0, full_tail)
        return grid.spatial * (chunks * full_interval + last_interval) + last_tail
    # per distinct tile size (a candidate set has a few dozen), then gathered per candidate
    if cands is not None:  # per tile, (1, T)
        j = DIMS.index(u.stream)
        sizes, at = cands.choices[j], cands.at[None, :, j]
    else:
        tile = np.atleast_1d(np.asarray(tile, dtype=np.int64))
        sizes = sorted_unique(tile)
        at = np.searchsorted(sizes, tile)
    full, rem = np.divmod(dim, sizes)
    interval, tail = _fold_timing(spec, np.concatenate([sizes, np.maximum(rem, 1)]))
    edge = np.where(rem > 0, interval[sizes.size:], 0)
    chunk = full.astype(np.float64) * interval[: sizes.size] + edge  # one tile's stream chunks
    cycles = grid.spatial * chunk[at]
    if tail.any():  # an engine that overlaps folds: the last one drains
        cycles = cycles + np.where(rem > 0, tail[sizes.size:], tail[: sizes.size])[at]
    return cycles


@dataclass(frozen=True, slots=True, eq=False)
class _Evaluation:
    """Costs of every candidate (float64 arrays) or of one mapping (exact cycles and
    traffic, float energy in 0-d arrays): :func:`_evaluate`."""

    compute_cycles: Any
    stall_cycles: Any
    traffic: MemoryTraffic
    actions: dict[str, np.ndarray]
    energy: dict[str, np.ndarray]
    #: The components' sum (link-independent: computed once per :func:`_static`).
    energy_pj: Any

    @property
    def cycles(self) -> Any:
        return self.compute_cycles + self.stall_cycles


@memo(maxsize=256)
def compute_view(arch: ArchSpec) -> ArchSpec:
    """``arch`` with its DRAM link's bandwidth and latency and its clock set to fixed values
    (its DRAM energy per byte kept): everything of a GEMM's cost but the DRAM stalls is the
    same on every architecture with the same view, so results computed on it are shared
    (e.g. by the points of a sweep over bandwidth and clock). Equal views are one object
    (:func:`_interned`)."""
    d = arch.memory[-1]
    if (d.bandwidth_gb_per_s, d.latency_ns, arch.clock_mhz) == (1.0, 0.0, 1000.0):
        return _interned(arch)
    link = replace(d, bandwidth_gb_per_s=1.0, width_bits=None, ports=1, latency_ns=0.0)
    return _interned(replace(arch, memory=(*arch.memory[:-1], link), clock_mhz=1000.0))


@memo(maxsize=256)
def _interned(view: ArchSpec) -> ArchSpec:
    """The first of the views equal to ``view``: the views of a sweep's links differ only as
    objects, and every memo table keyed on a view (its GEMM costs, buffers, energies) finds
    the one object it holds by identity, where an equal copy costs a comparison of the whole
    architecture on every lookup."""
    return view


@dataclass(frozen=True, slots=True, eq=False)
class _Static:
    """The link-independent part of :func:`_evaluate` (shared through :func:`compute_view`)."""

    compute_cycles: Any
    traffic: MemoryTraffic
    exposure: DramExposure | CandidateExposure | None
    actions: dict[str, np.ndarray]
    energy: dict[str, np.ndarray]
    energy_pj: Any
    #: ``traffic.dram_bytes``, summed once.
    dram_bytes: Any


@memo(maxsize=128)
def _static(view: ArchSpec, gemm: Gemm, cands: Candidates | Mapping, memory: Memory,
            passes: int) -> _Static:
    spec = view.engine
    tm: Any
    tn: Any
    tk: Any
    M, N, K = gemm.M, gemm.N, gemm.K
    if isinstance(cands, Mapping):
        tm, tn, tk = cands.tile_m, cands.tile_n, cands.tile_k
        grid = fold_grid(spec.unrolling(), M, N, K, tm, tn, tk)
        compute = passes * tiled_compute_cycles(spec, M, N, K, tm, tn, tk, grid=grid)
    else:  # per tile, (1, T) arrays; what the loop order moves, (O, T)
        tm, tn, tk = cands.tiles_f
        grid = cands.fold_grid(spec.unrolling())
        compute = passes * tiled_compute_cycles(spec, M, N, K, tm, tn, tk, grid=grid,
                                                cands=cands)
    traffic, exposure = traffic_without_stalls(view, gemm, cands, compute, memory=memory,
                                               grid=grid)
    actions = action_counts(
        view, M, N, K,
        grid=grid,
        sram=(
            traffic.sram_a_read_bytes + traffic.sram_a_write_bytes,
            traffic.sram_w_read_bytes + traffic.sram_w_write_bytes,
            traffic.sram_o_read_bytes + traffic.sram_o_write_bytes,
        ),
        dram_bytes=traffic.dram_bytes,
    )
    if passes > 1:
        for x in arith_actions(view):
            actions[x.name] = actions[x.name] * passes
        actions["pe_registers"] = actions["pe_registers"] * passes
    energy = energy_breakdown(view, actions)
    return _Static(compute_cycles=compute, traffic=traffic, exposure=exposure, actions=actions,
                   energy=energy, energy_pj=sum(energy.values()), dram_bytes=traffic.dram_bytes)


def _evaluate(
    arch: ArchSpec, gemm: Gemm, cands: Candidates | Mapping, memory: Memory, passes: int = 1,
    floor: bool = False,
) -> _Evaluation:
    """Costs of every candidate, or exactly of one mapping (``cands`` a
    :class:`mapping.Mapping`: module doc). ``passes``: the GEMM runs that many times over each
    buffered tile (operands wider than the engine, split into slices: ``sim.execution``); the
    engine's cycles and arithmetic and register actions scale with it, the buffer and DRAM
    traffic do not (the slices of a tile are read from the same buffered bytes).

    All but the DRAM stalls is computed once per :func:`compute_view` (cached) and the stalls
    of ``arch``'s own link added (``floor``: one mapping's DRAM stalls a lower bound,
    without running its timeline: :func:`sim.memory.with_dram_stalls`)."""
    st = _static(compute_view(arch), gemm, cands, memory, passes)
    traffic = (st.traffic if st.exposure is None
               else with_dram_stalls(st.traffic, st.exposure, arch, floor=floor))
    return _Evaluation(
        compute_cycles=st.compute_cycles,
        stall_cycles=traffic.stall_cycles,
        traffic=traffic,
        actions=st.actions,
        energy=st.energy,
        energy_pj=st.energy_pj,
    )


def gemm_cost(gemm: Gemm, arch: ArchSpec, cands: Candidates) -> Costs:
    """The simulator's cost function for :func:`mapping.search` (real memory, one instance)."""
    return _candidate_costs(arch, gemm, cands, 1)


def _candidate_costs(arch: ArchSpec, gemm: Gemm, cands: Candidates, passes: int) -> Costs:
    """What :func:`_evaluate` gives every candidate, as :class:`mapping.Costs` laid out as the
    candidates' ``(O, T)`` grid: its cycles (the compute cycles plus the whole stall cycles,
    the DRAM stalls of ``arch``'s link: :func:`sim.memory.candidate_dram_stalls`), energy and
    DRAM bytes, by the same float64 operations, without the rest of the traffic."""
    st = _static(compute_view(arch), gemm, cands, "real", passes)
    assert isinstance(st.exposure, CandidateExposure)  # real memory
    stall = whole_stall_cycles(st.traffic.sram_stall_cycles,
                               candidate_dram_stalls(st.exposure, arch))
    return Costs(cycles=st.compute_cycles + stall, energy_pj=st.energy_pj,
                 dram_bytes=st.dram_bytes, grid=cands.shape)


@memo(maxsize=64)
def gemm_cost_passes(passes: int) -> CostFn:
    """:func:`gemm_cost` for a GEMM run in ``passes`` slices (one function object per count,
    so that :func:`mapping.search` caches on it)."""
    if passes == 1:
        return gemm_cost

    def cost(gemm: Gemm, arch: ArchSpec, cands: Candidates) -> Costs:
        return _candidate_costs(arch, gemm, cands, passes)

    return cost


# -- results ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Instance:
    """One instance's results (cached): exact whole cycles and bytes (module doc)."""

    mapping: Mapping
    compute_cycles: int
    sram_stall_cycles: int
    stall_cycles: int
    #: Moving the DRAM bytes alone takes longer than the engine's compute cycles.
    memory_bound: bool
    dram_a_bytes: int
    dram_w_bytes: int
    dram_o_bytes: int
    energy_pj: tuple[tuple[str, float], ...]
    actions: tuple[tuple[str, float], ...]


@memo(maxsize=16384)
def _instance(
    arch: ArchSpec, one: Gemm, memory: Memory, objective: Objective, passes: int,
    floor: bool = False,
) -> _Instance:
    if memory == "ideal":
        mapping = untiled(one, arch).mapping(0, arch)
    else:
        mapping = search(one, arch, gemm_cost_passes(passes), objective)
    ev = _evaluate(arch, one, mapping, memory, passes, floor)  # one mapping, exactly
    t = ev.traffic
    stall = ev.stall_cycles
    return _Instance(
        mapping=mapping,
        compute_cycles=ev.compute_cycles,
        sram_stall_cycles=min(stall, math.ceil(t.sram_stall_cycles)),
        stall_cycles=stall,
        memory_bound=t.dram_transfer_cycles > ev.compute_cycles,
        dram_a_bytes=math.ceil(t.dram_a_read_bytes),
        dram_w_bytes=math.ceil(t.dram_w_read_bytes),
        dram_o_bytes=math.ceil(t.dram_o_write_bytes + t.dram_o_read_bytes),
        energy_pj=tuple((k, float(ev.energy[k])) for k in ENERGY_COMPONENTS),
        actions=tuple((k, float(v)) for k, v in ev.actions.items()),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class GemmResult:
    """Performance, energy and area of ``gemm.count`` instances of one GEMM on ``arch``.

    Cycle and byte fields are totals over all instances; ``mapping`` is one instance's.
    ``utilization`` = useful MACs / (``cycles`` x ``spec.macs_per_cycle``). ``bound`` is
    ``"memory"`` when moving the DRAM bytes alone takes longer than the engine's compute
    cycles.
    """

    arch: ArchSpec
    gemm: Gemm
    memory: Memory
    objective: Objective
    mapping: Mapping
    cycles: int
    compute_cycles: int
    stall_cycles: int
    #: Stall cycles caused by SRAM port bandwidth (the rest wait for DRAM).
    sram_stall_cycles: int
    dram_stall_cycles: int
    macs: int
    utilization: float
    seconds: float
    energy_pj: float
    energy_breakdown_pj: MappingProxyType[str, float]
    #: Action counts by action name (component and unit in ``sim.energy.action_units``).
    actions: MappingProxyType[str, float]
    #: Whole bytes (one instance's, rounded up, times ``count``).
    dram_a_bytes: int
    dram_w_bytes: int
    dram_o_bytes: int
    area_um2: float
    area_breakdown_um2: MappingProxyType[str, float]
    bound: Literal["compute", "memory"]

    @property
    def name(self) -> str:
        return self.gemm.name

    @property
    def count(self) -> int:
        return self.gemm.count

    @property
    def dram_bytes(self) -> int:
        return self.dram_a_bytes + self.dram_w_bytes + self.dram_o_bytes

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the ``tpe sim gemm --json`` object)."""
        g = self.gemm
        units = action_units(self.arch)
        return {
            "arch": self.arch.name,
            "engine": spec_to_dict(self.arch.engine),
            "gemm": {"name": g.name, "M": g.M, "N": g.N, "K": g.K, "count": g.count,
                     "a_fmt": g.a_fmt, "w_fmt": g.w_fmt, "o_fmt": g.o_fmt},
            "memory": self.memory,
            "objective": self.objective,
            "cycles": self.cycles,
            "compute_cycles": self.compute_cycles,
            "stall_cycles": self.stall_cycles,
            "sram_stall_cycles": self.sram_stall_cycles,
            "dram_stall_cycles": self.dram_stall_cycles,
            "utilization": self.utilization,
            "seconds": self.seconds,
            "macs": self.macs,
            "energy_pj": self.energy_pj,
            "breakdown": dict(self.energy_breakdown_pj),
            "actions": {k: {"count": v, **units[k]} for k, v in self.actions.items()},
            "dram_bytes": {"a": self.dram_a_bytes, "w": self.dram_w_bytes,
                           "o": self.dram_o_bytes, "total": self.dram_bytes},
            "area_um2": self.area_um2,
            "area_breakdown_um2": dict(self.area_breakdown_um2),
            "bound": self.bound,
            "mapping": self.mapping.to_dict(),
        }


def simulate_gemm(
    arch: ArchSpec,
    gemm: Gemm,
    *,
    memory: Memory = "real",
    objective: Objective = "latency",
) -> GemmResult:
    """Simulate ``gemm`` (all ``gemm.count`` instances) on ``arch``.

    ``memory``: ``"real"`` (buffers and DRAM link of ``arch``, best mapping for
    ``objective``) or ``"ideal"`` (untiled, operands on chip, no stalls). ``objective``:
    ``"latency"``, ``"energy"`` or ``"edp"``.

    Raises :class:`FormatError` when a format does not fit the engine (message starts with
    ``--a-fmt``/``--w-fmt``), :class:`mapping.MappingError` when no tile fits the buffers,
    :class:`hw.spec.SpecError` for a bad energy table.
    """
    if not isinstance(arch, ArchSpec):
        raise TypeError(f"arch: expected a hw.spec.ArchSpec, got {type(arch).__name__}")
    if not isinstance(gemm, Gemm):
        raise TypeError(f"gemm: expected a models.ops.Gemm, got {type(gemm).__name__}")
    if memory not in MEMORY_MODES:
        raise ValueError(f"memory: must be one of {', '.join(MEMORY_MODES)} (got {memory!r})")
    if objective not in OBJECTIVES:
        raise ValueError(f"objective: must be one of {', '.join(OBJECTIVES)} (got {objective!r})")
    check_formats(arch.engine, gemm.a_fmt, gemm.w_fmt)
    return run_gemm(arch, gemm, memory=memory, objective=objective)


def mapping_cost(arch: ArchSpec, gemm: Gemm, mapping: Mapping) -> tuple[int, int]:
    """One instance of ``gemm`` run with ``mapping`` on ``arch`` (real memory), exactly as
    :func:`simulate_gemm` evaluates the mapping it chooses: ``(cycles, DRAM bytes)``."""
    ev = _evaluate(arch, gemm, mapping, "real")
    t = ev.traffic
    return (ev.compute_cycles + ev.stall_cycles,
            math.ceil(t.dram_a_read_bytes) + math.ceil(t.dram_w_read_bytes)
            + math.ceil(t.dram_o_write_bytes + t.dram_o_read_bytes))


@memo(maxsize=4096)
def _single(gemm: Gemm) -> Gemm:
    """One instance of ``gemm`` under the name ``gemm`` (what :func:`_instance` caches on),
    built and validated once per GEMM."""
    return replace(gemm, name="gemm", count=1)


def run_gemm(
    arch: ArchSpec, gemm: Gemm, *, memory: Memory = "real", objective: Objective = "latency",
    passes: int = 1, floor: bool = False,
) -> GemmResult:
    """:func:`simulate_gemm` without the format check, for callers that have planned how the
    formats run on the engine (``sim.execution``): ``arch.engine`` computes each of
    ``passes`` slices of the GEMM at its own widths while memory moves ``gemm``'s stored
    formats. Arguments are assumed valid.

    ``floor``: the cycles and DRAM stalls are lower bounds, from the floor of the mapping's
    timeline (:func:`sim.timeline.timeline_floor`) instead of the timeline itself; the
    mapping, bytes, energy and compute cycles are the exact ones (they do not depend on the
    stalls). For searches that skip what cannot win (:func:`mapping.pick`) and for callers
    that need only the bytes."""
    inst = _instance(arch, _single(gemm), memory, objective, passes, floor)
    n = gemm.count
    cycles = n * (inst.compute_cycles + inst.stall_cycles)
    compute = n * inst.compute_cycles
    macs = gemm.macs
    spec = arch.engine
    energy = {k: n * v for k, v in inst.energy_pj}
    area = area_breakdown(arch)
    return GemmResult(
        arch=arch,
        gemm=gemm,
        memory=memory,
        objective=objective,
        mapping=inst.mapping,
        cycles=cycles,
        compute_cycles=compute,
        stall_cycles=n * inst.stall_cycles,
        sram_stall_cycles=n * inst.sram_stall_cycles,
        dram_stall_cycles=n * (inst.stall_cycles - inst.sram_stall_cycles),
        macs=macs,
        utilization=macs / (cycles * spec.macs_per_cycle) if cycles else 0.0,
        seconds=cycles / (arch.clock_mhz * 1e6),
        energy_pj=sum(energy.values()),
        energy_breakdown_pj=MappingProxyType(energy),
        actions=MappingProxyType({k: n * v for k, v in inst.actions}),
        dram_a_bytes=n * inst.dram_a_bytes,
        dram_w_bytes=n * inst.dram_w_bytes,
        dram_o_bytes=n * inst.dram_o_bytes,
        area_um2=sum(area.values()),
        area_breakdown_um2=area,
        bound="memory" if inst.memory_bound else "compute",
    )
