"""One operator (GEMM, attention, vector work) on a whole architecture: cores, global buffer,
DRAM, vector units.

**Cores.** The ``arch.cores`` identical cores split an operator's work as
:func:`mapping.core_splits` lists: a GEMM along N or along M, each in both orientations
(``C`` or ``C^T``, planned by :mod:`sim.execution`), costed here (:func:`gemm_split_cost`)
and the best for the objective kept by :func:`mapping.pick`: this and the buffer tiling, loop
order and slice passes found per core by :func:`mapping.search` make up the operator's
mapping; attention by (sequence, KV head) units, and when there are fewer units than cores
during decode, by key ranges (FlashDecoding's split-KV, with a merge of the partial outputs on
the vector units; :func:`attention_split_cost`); vector work evenly. Each core is simulated
in detail (engine fold model, its buffers, stalls) against its *backing link*: its share of
the global buffer's bandwidth when there is one, else its share of the DRAM bandwidth.

**Global buffer: a second tiling level.** For a GEMM, the global buffer is tiled on its own
(:func:`global_view`: the buffer split into three per-operand parts in front of DRAM): the
mapping search picks the GEMM's global-level tile and loop order (minimizing energy, i.e. DRAM
traffic) and the loop-nest model of :mod:`sim.memory` counts the DRAM bytes of that nest; the
cores' own tiling then reads from the global buffer (their backing link), so the operand shared
by all cores and the tiles a core re-fetches hit the global buffer. For attention, when the
operands fit in it every byte comes from DRAM once (compulsory), else per operand: one that fits
in a third of it once, a larger one as often as the cores fetch it. The operator takes
``max(core time, DRAM bytes / DRAM bandwidth + latency)``. Without a global buffer, the cores'
own DRAM traffic is the DRAM traffic.

**Vector units** (``arch.vector``): a GEMM's rescaling and conversion work overlaps its engine
time (outputs drain into the vector unit tile by tile): ``max(engine, vector)``. A stand-alone
vector operator takes ``ops / (lanes * cores)`` cycles and moves its bytes through DRAM unless
they fit on chip (the cores' A and output buffers plus the global buffer), in which case they
stay in SRAM.

Energy adds the per-core engine and buffer energy of every core, the global buffer's accesses
(the cores' backing traffic), DRAM bytes and vector operations
(:func:`sim.energy.energy_components`: one component per memory level, by name).

**Exact integers** (``docs/llm_simulator.md``). One instance's times and bytes are exact:
Python integers and :class:`fractions.Fraction` (:data:`models.ops.Exact`; a rate enters as
the exact value of its float64, e.g. bytes per cycle); the instance takes its time rounded up
to whole cycles and its DRAM bytes rounded up to whole bytes, and ``count`` instances take
exactly ``count`` times as many. Energy, seconds and utilization are floats.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType
from typing import Any, Literal, cast

from hw.spec import OPERANDS, ArchSpec, LevelSpec
from mapping import CoreSplit, MappingError, Objective, Scored, core_splits, pick
from models.caches import memo
from models.formats import get_format
from models.ops import Attention, Exact, Gemm, Op, Vector, exact, exact_div
from sim.energy import (
    ENGINE_ENERGY_COMPONENTS,
    energy_components,
    level_byte_pj,
    operand_level,
    vector_op_pj,
)
from sim.execution import GemmPlan, plan_gemm
from sim.gemm import GemmResult, run_gemm
from sim.memory import Memory, exact_link

__all__ = [
    "OpResult",
    "attention_split_cost",
    "core_arch",
    "gemm_split_cost",
    "gpu_validation",
    "peak_macs_per_cycle",
    "simulate_op",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class OpResult:
    """Cost of all ``op.count`` instances of one operator on the whole architecture.

    ``compute_cycles``: the cores' busy time (engine and vector unit overlapped) with memory
    that never waits; ``stall_cycles = cycles - compute_cycles``. Cycles and ``dram_bytes``
    are exact Python ints: ``count`` times one instance's, rounded up to whole cycles and
    bytes (module doc). ``utilization``: MACs over ``cycles`` times the peak of all cores at
    the engine's built widths
    (:func:`peak_macs_per_cycle`); on run-time-precision engines (bit-serial, bit-plane, LUT)
    operands narrower than those widths run faster, so it may exceed 1 there. ``bound``:
    ``"memory"`` when moving the operator's DRAM bytes at the DRAM bandwidth takes longer than
    its compute.
    ``mapping``: how it was mapped (JSON-ready).
    """

    op: Op
    kind: Literal["gemm", "attention", "vector"]
    cycles: int
    compute_cycles: int
    stall_cycles: int
    engine_cycles: int
    vector_cycles: int
    seconds: float
    macs: int
    vector_ops: float
    dram_bytes: int
    energy_pj: float
    energy_breakdown_pj: MappingProxyType[str, float]
    utilization: float
    bound: Literal["compute", "memory"]
    mapping: MappingProxyType[str, Any]
    #: One core's share of a GEMM as the engine model sees it (mapping, stalls by cause,
    #: actions, per-operand traffic with the level behind the cores); ``None`` otherwise.
    core: GemmResult | None = None

    @property
    def name(self) -> str:
        return self.op.name

    @property
    def count(self) -> int:
        return self.op.count

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "count": self.count, "shape": _shape(self.op),
            "cycles": self.cycles, "compute_cycles": self.compute_cycles,
            "stall_cycles": self.stall_cycles, "engine_cycles": self.engine_cycles,
            "vector_cycles": self.vector_cycles, "seconds": self.seconds, "macs": self.macs,
            "vector_ops": self.vector_ops, "dram_bytes": self.dram_bytes,
            "energy_pj": self.energy_pj, "breakdown": dict(self.energy_breakdown_pj),
            "utilization": self.utilization, "bound": self.bound,
            "mapping": dict(self.mapping),
            **({"core": _core_dict(self.core)} if self.core is not None else {}),
        }


def _core_dict(r: GemmResult) -> dict[str, Any]:
    d = r.to_dict()
    for k in ("arch", "engine", "memory", "objective"):
        d.pop(k)
    return d


def _shape(op: Op) -> dict[str, Any]:
    if isinstance(op, Gemm):
        return {"M": op.M, "N": op.N, "K": op.K, "a_fmt": op.a_fmt, "w_fmt": op.w_fmt,
                "o_fmt": op.o_fmt, "w_group": op.w_group, "a_group": op.a_group}
    if isinstance(op, Attention):
        return {"batch": op.batch, "heads": op.heads, "kv_heads": op.kv_heads,
                "q_len": op.q_len, "kv_len": op.kv_len, "qk_dim": op.qk_dim,
                "v_dim": op.v_dim, "causal": op.causal, "q_fmt": op.q_fmt,
                "kv_fmt": op.kv_fmt, "kv_group": op.kv_group, "kv_scale_bits": op.kv_scale_bits,
                "kv_residual": op.kv_residual, "page_tokens": op.page_tokens,
                "sparse_block": op.sparse_block, "sparse_topk": op.sparse_topk}
    return {"kind": op.kind, "elems": op.elems, "ops_per_elem": op.ops_per_elem,
            "fmt": op.fmt, "bytes": op.bytes, "launches": op.launches}


def gpu_validation(arch: ArchSpec) -> dict[str, bool]:
    """``{"gpu_validated": ...}`` on a GPU preset (whether its predictions were checked against
    kernels measured on the card), nothing on an engine architecture: the key every JSON
    result on an architecture carries (``tpe sim gemm``, ``attention``, ``model``)."""
    return {} if arch.gpu is None else {"gpu_validated": arch.gpu.validated}


def peak_macs_per_cycle(arch: ArchSpec) -> float:
    """Engine MACs per cycle of all cores at the engine's built widths."""
    return arch.cores * arch.engine.macs_per_cycle


def _tier_link(arch: ArchSpec, t: int, share: int) -> LevelSpec:
    """Tier ``t`` as one backing level of ``1/share`` of its bandwidth (a shared tier's
    bandwidth divides over the ``share`` instances of the tier in front of it): its levels'
    capacities and bandwidths summed (its operands move in parallel), the longest latency, and
    the bytes-weighted mean energy per byte (operands equally); a tier of one level keeps its
    beat (``beat_bytes``: each transfer takes whole beats of its port; the spec refuses a beat
    on a tier of several levels)."""
    tier = arch.tiers[t]
    clock = arch.clock_mhz
    gbps = sum(lv.bandwidth_bytes_per_cycle(clock) for lv in tier) * clock / 1e3 / share
    pj = sum(level_byte_pj(arch, lv) * len(lv.holds) for lv in tier) / 3
    return LevelSpec(
        name=tier[0].name if len(tier) == 1 else "_".join(lv.name for lv in tier),
        holds=OPERANDS, capacity_bytes=sum(lv.capacity_bytes for lv in tier),
        bandwidth_gb_per_s=gbps, latency_ns=max(lv.latency_ns for lv in tier),
        energy_pj_per_byte=pj, instances="chip", double_buffered=False,
        off_chip=tier[0].off_chip, beat_bytes=tier[0].beat_bytes if len(tier) == 1 else None)


@memo(maxsize=256)
def tier_view(arch: ArchSpec, t: int = 0) -> ArchSpec:
    """Tier ``t`` of ``arch`` as a one-core architecture of two tiers, the form the GEMM
    model (:mod:`sim.gemm`) and the attention model work on: tier ``t``'s levels as the
    buffers next to the engine, tier ``t + 1`` behind them as the link (one core's share of it
    for ``t = 0`` when it is shared by the cores). Tier 0 is one core's own view; an outer
    tier's view gives its own tiling of an operator and the traffic behind it."""
    share = arch.cores if t == 0 and arch.tiers[1][0].instances == "chip" else 1
    inner = tuple(lv if lv.instances == "core" else dataclasses.replace(lv, instances="core")
                  for lv in arch.tiers[t])
    return dataclasses.replace(arch, cores=1, memory=(*inner, _tier_link(arch, t + 1, share)))


def core_arch(arch: ArchSpec) -> ArchSpec:
    """One core's view of ``arch`` (:func:`tier_view` of tier 0)."""
    return tier_view(arch, 0)


@dataclass(frozen=True, slots=True)
class _Inst:
    """One instance's totals over all cores; times (cycles) and bytes exact (module doc), and
    rounded up to whole ints by :func:`_instance`."""

    cycles: Exact
    compute: Exact
    engine: Exact
    vector: Exact
    vector_ops: float
    macs: int
    dram_bytes: Exact
    energy: dict[str, float]
    mapping: dict[str, Any]
    #: Set when the cost model decides the bound itself (GPU presets), else by
    #: :func:`_instance`.
    bound: Literal["compute", "memory"] | None = None
    #: The per-core GEMM result (engine model detail) of a GEMM on an engine architecture.
    core: GemmResult | None = None


def _per_level(arch: ArchSpec, t: int, bytes_by_operand: dict[str, float]) -> dict[str, float]:
    """Bytes by operand, summed per level of tier ``t``."""
    out: dict[str, float] = {}
    for lv in arch.tiers[t]:
        out[lv.name] = out.get(lv.name, 0.0) + sum(bytes_by_operand[op] for op in lv.holds)
    return out


def _core_energy(arch: ArchSpec, core_energy: dict[str, float],
                 backing: Mapping[str, Exact], used: int) -> dict[str, float]:
    """Whole-architecture energy components (:func:`sim.energy.energy_components`) from one
    core's engine-model breakdown (``a_buffer``/``w_buffer``/``o_buffer``: the innermost
    levels holding A, W, O; ``dram``: the traffic with tier 1, priced here per level)."""
    e = dict.fromkeys(energy_components(arch), 0.0)
    for k in ENGINE_ENERGY_COMPONENTS:
        e[k] += used * core_energy.get(k, 0.0)
    for role, op in (("a_buffer", "A"), ("w_buffer", "W"), ("o_buffer", "O")):
        e[operand_level(arch, op).name] += used * core_energy.get(role, 0.0)
    for lv in arch.tiers[1]:
        e[lv.name] += sum(backing[op] for op in lv.holds) * level_byte_pj(arch, lv)
    return e


def _outer_tiers(arch: ArchSpec, e: dict[str, float], cycles: Exact, backing: Exact,
                 used: int, memory: Memory, tier_bytes: Callable[[int, Exact], Exact | None]
                 ) -> tuple[Exact, Exact]:
    """Walk the tiers behind tier 1: ``backing`` bytes cross from tier 1 into the cores; each
    tier ``t >= 1`` passes on to tier ``t + 1`` what its own tiling needs (``tier_bytes(t,
    inner_bytes)``, at most what reaches it), is charged for those fills, and bounds the time
    by moving them over tier ``t + 1``'s link. Returns ``(cycles, bytes into the outermost
    level)`` and adds the energies to ``e``. Times and bytes exact (module doc)."""
    if memory == "ideal":
        return cycles, 0
    tiers = arch.tiers
    inner = backing
    for t in range(1, len(tiers) - 1):
        own = tier_bytes(t, inner)
        out = inner if own is None else min(inner, own)
        for lv in tiers[t]:  # fills written into tier t
            e[lv.name] += float(out) * len(lv.holds) / 3 * level_byte_pj(arch, lv)
        nxt = tiers[t + 1]
        copies = used if nxt[0].instances == "core" else 1
        bw = exact(sum(lv.bandwidth_bytes_per_cycle(arch.clock_mhz) for lv in nxt)) * copies
        lat = exact(max(lv.latency_ns for lv in nxt) * arch.clock_mhz / 1e3)
        for lv in nxt:
            e[lv.name] += float(out) * len(lv.holds) / 3 * level_byte_pj(arch, lv)
        cycles = max(cycles, exact_div(out, bw) + lat * (out > 0))
        inner = out
    return cycles, inner


def _gemm_tier_bytes(arch: ArchSpec, g: Gemm, sub: Gemm, used: int) -> Callable[
        [int, Exact], Exact | None]:
    """Bytes tier ``t`` moves to tier ``t + 1`` under its own tiling of the GEMM (the whole
    GEMM for a shared tier, one core's share times the cores for a per-core one; the tiling
    minimizes energy, i.e. traffic), ``None`` when not even the smallest tile fits."""
    def tier_bytes(t: int, inner: Exact) -> Exact | None:
        per_core = arch.tiers[t][0].instances == "core"
        one = dataclasses.replace(sub if per_core else g, count=1)
        try:
            # its bytes only: the floor's are exact, without running the timeline
            r = run_gemm(tier_view(arch, t), one, memory="real", objective="energy",
                         floor=True)
        except MappingError:
            return None
        return r.dram_bytes * (used if per_core else 1)
    return tier_bytes


def _gemm_instance(arch: ArchSpec, g: Gemm, memory: Memory, objective: Objective) -> _Inst:
    """The best of :func:`mapping.core_splits` (N or M, either orientation) for
    ``objective`` under :func:`gemm_split_cost`."""
    cost, floor = _split_costs(arch, g, memory, objective)
    return pick(core_splits(g, arch.cores), cost, objective, floor)[1].detail


def gemm_split_cost(arch: ArchSpec, g: Gemm, memory: Memory, objective: Objective,
                    floor: bool = False) -> Callable[[CoreSplit], Scored[_Inst]]:
    """The cost function :func:`mapping.pick` gets for a GEMM's core splits: one instance of
    ``g`` under one :class:`mapping.CoreSplit`, its slices and passes planned for the split's
    orientation (:func:`sim.execution.plan_gemm`), each core's share tiled by its own search
    for ``objective`` (:func:`sim.gemm.run_gemm`), and the tiers behind the cores. ``floor``:
    the cores' cycles a lower bound, without running their mapping's timeline (energy and
    bytes exact): :func:`mapping.pick`'s ``floor_fn``, which skips splits that cannot win."""
    return _split_costs(arch, g, memory, objective)[1 if floor else 0]


@dataclass(frozen=True, slots=True)
class _SplitParts:
    """What a split's cost (:func:`gemm_split_cost`) takes from its core's GEMM that is the
    same for the floor and the exact cost (the mapping, bytes and energy: only the core's
    cycles differ), and the tiers' own time behind the cores."""

    plan: GemmPlan
    vec_cycles: Exact
    #: The tiers behind the cores: the most cycles any of them takes to move its bytes.
    tier_cycles: Exact
    dram: Exact
    energy: dict[str, float]
    energy_pj: float
    mapping: dict[str, Any]


def _split_costs(arch: ArchSpec, g: Gemm, memory: Memory, objective: Objective) -> tuple[
        Callable[[CoreSplit], Scored[_Inst]], Callable[[CoreSplit], Scored[_Inst]]]:
    """:func:`gemm_split_cost`'s exact cost and floor of the splits of one GEMM, which share
    each split's plan, energy, bytes, tiers and mapping: the cost of a split after its floor
    (:func:`mapping.pick` takes every floor first) adds only its core's exact cycles."""
    core = core_arch(arch) if memory == "real" else _ideal_link(arch)
    lanes = arch.vector.lanes if arch.vector is not None else 0
    vec_pj = vector_op_pj(arch) if lanes else 0.0
    macs = g.M * g.N * g.K
    known: dict[CoreSplit, _SplitParts] = {}

    def plan_of(split: CoreSplit) -> GemmPlan:
        plan = plan_gemm(core, split.share(g), split.transposed)
        if plan.vector_ops and not lanes:
            raise MappingError(f"vector: {g.name} needs a vector unit ({plan.vector_ops:.3g}"
                               " rescale/convert operations); add a [vector] table")
        return plan

    def parts_of(split: CoreSplit, plan: GemmPlan, r: GemmResult) -> _SplitParts:
        used, transposed = split.cores_used, split.transposed
        vec_cycles = exact_div(plan.vector_ops, lanes) if lanes else 0
        # bytes each operand moves between the cores and tier 1 (C^T swaps A and W)
        a_b, w_b = ((r.dram_w_bytes, r.dram_a_bytes) if transposed
                    else (r.dram_a_bytes, r.dram_w_bytes))
        backing = {"A": used * a_b, "W": used * w_b, "O": used * r.dram_o_bytes}
        if memory == "ideal":
            backing = dict.fromkeys(backing, 0)
        energy = _core_energy(arch, dict(r.energy_breakdown_pj), backing, used)
        energy["vector"] = used * plan.vector_ops * vec_pj
        backed = sum(backing.values())
        # the tiers' time alone (from 0 cycles): a split takes the most of it and its cores'
        tier_cycles, dram = _outer_tiers(arch, energy, 0, backed, used, memory,
                                         _gemm_tier_bytes(arch, g, split.share(g), used))
        return _SplitParts(
            plan=plan, vec_cycles=vec_cycles, tier_cycles=tier_cycles, dram=dram,
            energy=energy, energy_pj=sum(energy.values()),
            mapping={"cores_used": used, "core_split": split.dim, "transposed": transposed,
                     "passes": plan.passes, "a_slices": plan.a_slices,
                     "w_slices": plan.w_slices, "engine_a_bits": plan.arch.engine.a_bits,
                     "engine_w_bits": plan.arch.engine.w_bits, **r.mapping.to_dict(),
                     **({"formats": plan.note} if plan.note else {})})

    def scored(split: CoreSplit, floor: bool) -> Scored[_Inst]:
        parts = known.get(split)
        plan = plan_of(split) if parts is None else parts.plan
        r = run_gemm(plan.arch, plan.gemm, memory=memory, objective=objective,
                     passes=plan.passes, floor=floor)
        if parts is None:
            parts = known[split] = parts_of(split, plan, r)
        vec_cycles = parts.vec_cycles
        core_cycles = max(r.cycles, vec_cycles)
        cycles = max(core_cycles, parts.tier_cycles)
        inst = _Inst(
            cycles=cycles, compute=max(r.compute_cycles, vec_cycles),
            engine=r.compute_cycles, vector=vec_cycles,
            vector_ops=float(split.cores_used * plan.vector_ops), macs=macs,
            dram_bytes=parts.dram, energy=dict(parts.energy), mapping=dict(parts.mapping),
            core=r,
        )
        # ranked in float64 (mapping.pick); the chosen instance's figures stay exact
        return Scored(cycles=float(cycles), energy_pj=parts.energy_pj, detail=inst)

    def cost(split: CoreSplit) -> Scored[_Inst]:
        return scored(split, False)

    def floor(split: CoreSplit) -> Scored[_Inst]:
        return scored(split, True)

    return cost, floor


def _attention_tier_bytes(arch: ArchSpec, compulsory: dict[str, Exact]
                          ) -> Callable[[int, Exact], Exact | None]:
    """An outer tier's traffic for attention: everything once when the operands fit its
    tile capacity, else each operand that fits a third of it once and the others as often as
    the cores fetch them (the inner traffic, less the other operands' compulsory bytes)."""
    def tier_bytes(t: int, inner: Exact) -> Exact | None:
        tier = arch.tiers[t]
        copies = arch.cores if tier[0].instances == "core" else 1
        cap = copies * sum(lv.capacity_bytes // (2 if lv.double_buffered else 1) for lv in tier)
        total = sum(compulsory.values())
        if total <= cap:
            return total
        fetched = {"q": compulsory["q"], "o": compulsory["o"],
                   "kv": max(compulsory["kv"], inner - compulsory["q"] - compulsory["o"])}
        return sum(compulsory[k] if 3 * compulsory[k] <= cap else fetched[k]
                   for k in compulsory)
    return tier_bytes


def _attention_instance(arch: ArchSpec, a: Attention, memory: Memory,
                        objective: Objective) -> _Inst:
    """Attention under the best split of :func:`mapping.core_splits` (one candidate: by units,
    or by keys in decode with fewer units than cores) under :func:`attention_split_cost`."""
    cost = attention_split_cost(arch, a, memory, objective)
    return pick(core_splits(a, arch.cores), cost, objective)[1].detail


def attention_split_cost(arch: ArchSpec, a: Attention, memory: Memory, objective: Objective
                         ) -> Callable[[CoreSplit], Scored[_Inst]]:
    """The cost function :func:`mapping.pick` gets for attention's core splits: one instance
    of ``a`` under one :class:`mapping.CoreSplit`, each core's units tiled by the search of
    :func:`sim.attention.attention_core_cost` for ``objective``, the partial outputs of a key
    split merged on the vector units, and the tiers behind the cores."""
    from sim.attention import attention_core_cost  # here: a GEMM alone does not load it

    cores = arch.cores
    core = core_arch(arch) if memory == "real" else _ideal_link(arch)
    units = a.batch * a.kv_heads

    def cost(split: CoreSplit) -> Scored[_Inst]:
        kv_split, per_core, used = split.kv_split, split.units_per_core, split.cores_used
        # the cost covers per_core units (one share of one unit when splitting the keys)
        c = attention_core_cost(core, a, per_core, objective=objective, kv_split=kv_split)
        scale = exact_div(units, per_core) if kv_split == 1 else units * kv_split
        vec_ops = scale * c.vector_ops
        merge_ops = 0
        if kv_split > 1:  # merge the partial outputs: rescale and add per split and output
            merge_ops = units * a.group_size * a.v_dim * kv_split * 3
        lanes = arch.vector.lanes if arch.vector is not None else 1
        core_cycles = c.cycles + exact_div(merge_ops, lanes * cores)
        backing = 0 if memory == "ideal" else scale * c.backing_bytes
        q_bits = get_format(a.q_fmt).bits
        compulsory = {"q": exact_div(a.batch * a.heads * a.q_len * a.qk_dim * q_bits, 8),
                      "kv": a.exact_kv_bytes(),
                      "o": exact_div(a.batch * a.heads * a.q_len * a.v_dim * q_bits, 8)}
        core_e = {k: float(scale) * v for k, v in c.energy_pj.items()}
        total_c = sum(compulsory.values())
        by_op = {"A": exact_div(backing * compulsory["q"], total_c),
                 "O": exact_div(backing * compulsory["o"], total_c)}
        by_op["W"] = backing - by_op["A"] - by_op["O"]
        # core_e covers every core's units already: counted once, not once per core
        energy = _core_energy(arch, core_e, by_op, 1)
        energy["vector"] += (float(scale) * c.energy_pj.get("vector", 0.0)
                             + merge_ops * vector_op_pj(arch))
        cycles, dram = _outer_tiers(arch, energy, core_cycles, backing, used, memory,
                                    _attention_tier_bytes(arch, compulsory))
        compute = c.compute_cycles
        inst = _Inst(
            cycles=cycles if memory == "real" else compute, compute=compute,
            engine=c.engine_cycles, vector=c.vector_cycles,
            vector_ops=float(vec_ops + merge_ops), macs=a.macs // a.count, dram_bytes=dram,
            energy=energy,
            mapping={"cores_used": used, "core_split": split.dim, "units_per_core": per_core,
                     "kv_split": kv_split,
                     "tile_rows": c.tile_rows, "tile_keys": c.tile_keys,
                     "tile_pairs": int(scale * c.tile_pairs)},
        )
        # ranked in float64 (mapping.pick); the chosen instance's figures stay exact
        return Scored(cycles=float(inst.cycles), energy_pj=sum(energy.values()), detail=inst)

    return cost


@memo(maxsize=64)
def _ideal_link(arch: ArchSpec) -> ArchSpec:
    """A core whose backing link never stalls (``memory="ideal"``)."""
    core = core_arch(arch)
    link = dataclasses.replace(core.memory[-1], bandwidth_gb_per_s=1e8, width_bits=None,
                               latency_ns=0.0)
    return dataclasses.replace(core, memory=(*core.memory[:-1], link))


def _on_chip_bytes(arch: ArchSpec) -> int:
    """On-chip capacity that can hold activations (levels holding A or O)."""
    total = 0
    for lv in arch.memory:
        if not lv.off_chip and {"A", "O"} & set(lv.holds):
            total += lv.capacity_bytes * (arch.cores if lv.instances == "core" else 1)
    return total


def _vector_instance(arch: ArchSpec, v: Vector, memory: Memory) -> _Inst:
    if v.runtime != "fused":
        raise MappingError(f"vector: {v.name} is eager PyTorch's kernels (runtime {v.runtime}), "
                           f"which only a GPU preset models; {arch.name} runs fused vector work")
    if arch.vector is None:
        raise MappingError(f"vector: {v.name} ({v.kind}) needs a vector unit; add a [vector] "
                           "table (lanes = ...) to the architecture")
    return _vector_cost(_vector_terms(arch), v, memory)


@dataclass(frozen=True, slots=True)
class _VectorTerms:
    """What a stand-alone vector operator's cost reads of an architecture (:func:`_vector_cost`),
    and nothing else: architectures that differ elsewhere (the engine, a buffer that holds
    neither activations nor outputs) share their vector operators' evaluations, e.g. the
    design points of a sweep over array sizes."""

    cores: int
    lanes: int                    # all cores' vector lanes
    components: tuple[str, ...]   # :func:`sim.energy.energy_components`
    op_pj: float                  # :func:`sim.energy.vector_op_pj`
    on_chip_bytes: int            # :func:`_on_chip_bytes`
    o_level: str                  # the level holding O next to the engine, and its pJ/byte
    o_byte_pj: float
    outer: str                    # the outermost level, and its pJ/byte
    outer_byte_pj: float
    link: tuple[Exact, Exact]     # :func:`sim.memory.exact_link`


@memo(maxsize=1024)
def _vector_terms(arch: ArchSpec) -> _VectorTerms:
    assert arch.vector is not None
    o_level, outer = operand_level(arch, "O"), arch.memory[-1]
    return _VectorTerms(
        cores=arch.cores, lanes=arch.vector.lanes * arch.cores, components=energy_components(arch),
        op_pj=vector_op_pj(arch), on_chip_bytes=_on_chip_bytes(arch), o_level=o_level.name,
        o_byte_pj=level_byte_pj(arch, o_level), outer=outer.name,
        outer_byte_pj=level_byte_pj(arch, outer), link=exact_link(arch))


@memo(maxsize=8192)
def _vector_cost(t: _VectorTerms, v: Vector, memory: Memory) -> _Inst:
    """One instance of the fused vector operator ``v`` on the vector units (module doc)."""
    ops = v.elems * exact(v.ops_per_elem)
    compute = exact_div(ops, t.lanes)
    nbytes = v.exact_bytes
    energy = dict.fromkeys(t.components, 0.0)
    energy["vector"] = float(ops) * t.op_pj
    table = exact(v.table_bytes)
    on_chip = memory == "ideal" or nbytes - table <= t.on_chip_bytes
    dram = table if on_chip else nbytes
    if memory == "ideal":
        dram = 0
    energy[t.o_level] += float(nbytes - dram) * t.o_byte_pj
    energy[t.outer] += float(dram) * t.outer_byte_pj
    bw, lat = t.link
    cycles = max(compute, exact_div(dram, bw) + lat * (dram > 0))
    return _Inst(cycles=cycles, compute=compute, engine=0, vector=compute,
                 vector_ops=float(ops), macs=0, dram_bytes=dram, energy=energy,
                 mapping={"cores_used": t.cores, "on_chip": on_chip})


def _gpu_instance(arch: ArchSpec, op: Op, memory: Memory) -> _Inst:
    """A GPU preset: the kernel model of :mod:`sim.gpu_model`, time and energy
    (``gpu_model.op_estimate``: the kernel's predicted energy, under the preset's power cap)."""
    from sim.gpu_model import (  # here: an engine architecture does not load it
        arch_kernel,
        format_note,
        kernel_name,
        op_estimate,
        range_note,
    )

    est, memory_bound, nbytes = op_estimate(arch, op, memory)
    seconds = est.stream_us * 1e-6  # back to back in a stream, as a model's pass runs it
    # the kernel model is fitted in float64 seconds: its cycles are that float times the clock
    # (MHz), exactly, rounded up to whole cycles
    s_num, s_den = seconds.as_integer_ratio()
    c_num, c_den = arch.clock_mhz.as_integer_ratio()
    cycles = -(-(s_num * c_num * 10**6) // (s_den * c_den))
    energy = dict.fromkeys(energy_components(arch), 0.0)
    assert arch.gpu is not None
    energy["gpu_board"] = est.mj * 1e9
    macs = 0 if isinstance(op, Vector) else op.macs // op.count
    ops = float(op.elems * op.ops_per_elem) if isinstance(op, Vector) else 0.0
    mapping: dict[str, Any] = {"gpu_kernel_model": arch.gpu.calibration}
    if isinstance(op, Vector):
        mapping["gpu_kernel"] = f"elementwise ({op.runtime})"
    else:
        kernel = arch_kernel(arch, op)
        mapping["gpu_kernel"] = kernel_name(kernel)
        if memory == "real":
            # the same kernel timed alone (tpe gpu measure's timing, tpe gpu predict's us):
            # the time above and what that timing adds to it
            mapping["gpu_timed_alone_us"] = est.us
        if note := format_note(op, kernel):
            mapping["formats"] = note
        if note := range_note(kernel):
            mapping["gpu_range"] = note
    return _Inst(cycles=cycles, compute=cycles, engine=0 if isinstance(op, Vector) else cycles,
                 vector=cycles if isinstance(op, Vector) else 0, vector_ops=ops, macs=macs,
                 dram_bytes=nbytes, energy=energy, mapping=mapping,
                 bound="memory" if memory_bound else "compute")


#: The name every operator is costed under on an engine architecture (:func:`_instance`).
_UNNAMED = "op"


@memo(maxsize=4096)
def _unnamed(op: Op) -> Op:
    """``op`` under the name :data:`_UNNAMED`, built and validated once per operator."""
    return op if op.name == _UNNAMED else dataclasses.replace(op, name=_UNNAMED)


@memo(maxsize=8192)
def _instance(arch: ArchSpec, op: Op, memory: Memory, objective: Objective) -> _Inst:
    """One instance of ``op`` on ``arch``. On an engine architecture an operator's cost does
    not depend on its name (only its error messages and the core's GEMM name do), so
    operators that differ only in their names (a layer's projections of one shape) share one
    evaluation (:func:`_unnamed_instance`), its core's GEMM renamed; an operator that fails is
    costed again under its own name, so that the error names it."""
    if arch.gpu is not None:
        return _op_instance(arch, op, memory, objective)
    unnamed = _unnamed(op)
    if unnamed is op:
        return _unnamed_instance(arch, op, memory, objective)
    try:
        inst = _unnamed_instance(arch, unnamed, memory, objective)
    except Exception:
        return _op_instance(arch, op, memory, objective)  # raises, naming the operator
    if inst.core is None:
        return inst
    core = dataclasses.replace(inst.core, gemm=_renamed(inst.core.gemm, op.name))
    return dataclasses.replace(inst, core=core)


@memo(maxsize=4096)
def _renamed(g: Gemm, name: str) -> Gemm:
    """The core's GEMM ``g`` under the operator's ``name``, built and validated once per
    operator and core GEMM (not once per architecture: a sweep's design points share it)."""
    return dataclasses.replace(g, name=name)


@memo(maxsize=8192)
def _unnamed_instance(arch: ArchSpec, op: Op, memory: Memory, objective: Objective) -> _Inst:
    """:func:`_op_instance` of an operator named :data:`_UNNAMED` (cached)."""
    return _op_instance(arch, op, memory, objective)


def _op_instance(arch: ArchSpec, op: Op, memory: Memory, objective: Objective) -> _Inst:
    if arch.gpu is not None:
        inst = _gpu_instance(arch, op, memory)
    elif isinstance(op, Gemm):
        inst = _gemm_instance(arch, op, memory, objective)
    elif isinstance(op, Attention):
        inst = _attention_instance(arch, op, memory, objective)
    else:
        inst = _vector_instance(arch, op, memory)
    bound = inst.bound
    if bound is None:  # memory-bound: moving the DRAM bytes alone outlasts compute
        bound = "memory" if inst.dram_bytes > inst.compute * exact_link(arch)[0] else "compute"
    elif all(type(x) is int for x in (inst.cycles, inst.compute, inst.engine, inst.vector,
                                       inst.dram_bytes)):
        return inst
    # one instance takes whole cycles and moves whole bytes: the exact figures rounded up
    cycles = _whole(inst.cycles)
    return _Inst(cycles=cycles, compute=min(cycles, _whole(inst.compute)),
                 engine=_whole(inst.engine), vector=_whole(inst.vector),
                 vector_ops=inst.vector_ops, macs=inst.macs,
                 dram_bytes=_whole(inst.dram_bytes), energy=inst.energy,
                 mapping=inst.mapping, bound=bound, core=inst.core)


def _whole(x: Exact) -> int:
    """``x`` rounded up to an int. A float here is a bug: it has rounded already."""
    if not isinstance(x, (int, Fraction)):
        raise TypeError(f"an exact time or byte count is a {type(x).__name__} ({x!r})")
    return math.ceil(x)


@memo(maxsize=4096)
def _single(op: Op) -> Op:
    """One instance of ``op`` (``count=1``), built and validated once per operator."""
    return op if op.count == 1 else dataclasses.replace(op, count=1)


def objective_error(arch: ArchSpec, objective: str) -> str | None:
    """Why ``objective`` cannot act on ``arch`` (``None`` where it can): a GPU preset's kernel
    model predicts the kernels its library runs, the fastest it finds, with no mapping to
    search, so only latency acts there. The one check :func:`simulate_op` and the command line
    (which names the flag) share."""
    if arch.gpu is not None and objective != "latency":
        return (f"{arch.name} is a GPU preset, whose kernel model predicts the kernels its "
                f"library runs (no mapping to search for {objective})")
    return None


def simulate_op(arch: ArchSpec, op: Op, *, memory: Memory = "real",
                objective: Objective = "latency") -> OpResult:
    """All ``op.count`` instances of ``op`` on ``arch`` (module doc). Raises
    :class:`sim.gemm.FormatError` for a format the engine cannot take at all,
    :class:`mapping.MappingError` when nothing fits or a vector unit is missing;
    :class:`sim.errors.InputError` for an ``objective`` other than latency on a GPU preset
    (its kernel model searches no mapping); ``TypeError`` for an ``arch`` or ``op`` of
    another type."""
    if not isinstance(arch, ArchSpec):
        raise TypeError(f"arch: expected an ArchSpec (hw.spec.load_arch), got "
                        f"{type(arch).__name__}")
    if not isinstance(op, (Gemm, Attention, Vector)):
        raise TypeError(f"op: expected a models.ops Gemm, Attention or Vector, got "
                        f"{type(op).__name__}")
    if (why := objective_error(arch, objective)) is not None:
        from sim.errors import InputError

        raise InputError(f"objective: {why}; use objective 'latency', or an engine "
                         "architecture")
    inst = _instance(arch, _single(op), memory, objective)
    n = op.count
    # count times one instance's whole cycles and bytes (exact ints: _instance rounds them)
    one_cycles, one_compute, one_engine, one_vector, one_dram = cast(
        "tuple[int, int, int, int, int]",
        (inst.cycles, inst.compute, inst.engine, inst.vector, inst.dram_bytes))
    cycles = n * one_cycles
    compute = n * one_compute
    energy = {k: n * inst.energy.get(k, 0.0) for k in energy_components(arch)}
    macs = n * inst.macs
    peak = peak_macs_per_cycle(arch)
    kind: Literal["gemm", "attention", "vector"] = (
        "gemm" if isinstance(op, Gemm) else "attention" if isinstance(op, Attention)
        else "vector")
    return OpResult(
        op=op, kind=kind, cycles=cycles, compute_cycles=compute, stall_cycles=cycles - compute,
        engine_cycles=n * one_engine, vector_cycles=n * one_vector,
        seconds=cycles / (arch.clock_mhz * 1e6), macs=macs, vector_ops=n * inst.vector_ops,
        dram_bytes=n * one_dram, energy_pj=sum(energy.values()),
        energy_breakdown_pj=MappingProxyType(energy),
        utilization=macs / (cycles * peak) if cycles else 0.0,
        bound=inst.bound or "compute",
        mapping=MappingProxyType(inst.mapping),
        core=inst.core,
    )
