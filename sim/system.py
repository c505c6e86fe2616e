"""One operator (GEMM, attention, vector work) on a whole architecture: cores, global buffer,
DRAM, vector units.

**Cores.** The ``arch.cores`` identical cores split an operator's work: a GEMM along N or
along M (both are tried, with both orientations of :mod:`sim.execution`, and the best for the
objective is kept: this and the buffer tiling, loop order and slice passes found per core by
:func:`mapping.search` make up the operator's mapping); attention by (sequence, KV head)
units, and when there are fewer units than cores during decode, by key ranges
(FlashDecoding's split-KV, with a merge of the partial outputs on the vector units); vector work
evenly. Each core is simulated in detail (engine fold model, its buffers, stalls) against its
*backing link*: its share of the global buffer's bandwidth when there is one, else its share of
the DRAM bandwidth.

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
(:data:`sim.energy.SYSTEM_ENERGY_COMPONENTS`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from hw.spec import ArchSpec, DramSpec
from mapping import MappingError, Objective
from models.formats import get_format
from models.ops import Attention, Gemm, Op, Vector
from sim.attention import attention_core_cost
from sim.energy import (
    SYSTEM_ENERGY_COMPONENTS,
    global_buffer_byte_pj,
    unit_energies,
    vector_op_pj,
)
from sim.execution import plan_gemm
from sim.gemm import run_gemm
from sim.memory import Memory

__all__ = ["OpResult", "core_arch", "peak_macs_per_cycle", "simulate_op"]


@dataclass(frozen=True, slots=True, kw_only=True)
class OpResult:
    """Cost of all ``op.count`` instances of one operator on the whole architecture.

    ``compute_cycles``: the cores' busy time (engine and vector unit overlapped) with memory
    that never waits; ``stall_cycles = cycles - compute_cycles``. ``utilization``: MACs over
    ``cycles`` times the peak of all cores at the engine's built widths
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
    dram_bytes: float
    energy_pj: float
    energy_breakdown_pj: MappingProxyType[str, float]
    utilization: float
    bound: Literal["compute", "memory"]
    mapping: MappingProxyType[str, Any]

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
        }


def _shape(op: Op) -> dict[str, Any]:
    if isinstance(op, Gemm):
        return {"M": op.M, "N": op.N, "K": op.K, "a_fmt": op.a_fmt, "w_fmt": op.w_fmt,
                "o_fmt": op.o_fmt, "w_group": op.w_group}
    if isinstance(op, Attention):
        return {"batch": op.batch, "heads": op.heads, "kv_heads": op.kv_heads,
                "q_len": op.q_len, "kv_len": op.kv_len, "qk_dim": op.qk_dim,
                "v_dim": op.v_dim, "causal": op.causal, "q_fmt": op.q_fmt,
                "kv_fmt": op.kv_fmt, "page_tokens": op.page_tokens,
                "sparse_block": op.sparse_block, "sparse_topk": op.sparse_topk}
    return {"kind": op.kind, "elems": op.elems, "ops_per_elem": op.ops_per_elem,
            "fmt": op.fmt}


def peak_macs_per_cycle(arch: ArchSpec) -> float:
    """Engine MACs per cycle of all cores at the engine's built widths."""
    return arch.cores * arch.engine.macs_per_cycle


@functools.lru_cache(maxsize=256)
def core_arch(arch: ArchSpec) -> ArchSpec:
    """One core's view: its ``dram`` is the backing link, the core's share of the global
    buffer's bandwidth (no latency, the global buffer's energy per byte) or of the DRAM's."""
    gb = arch.global_buffer
    if gb is None:
        if arch.cores == 1:
            return arch
        gbps = arch.dram.bandwidth_gb_per_s / arch.cores
        return dataclasses.replace(arch, dram=DramSpec(
            bandwidth_gb_per_s=gbps, latency_ns=arch.dram.latency_ns))
    gbps = gb.bandwidth_bytes_per_cycle * arch.clock_mhz / 1e3 / arch.cores
    # the core's searches price their backing traffic at the global buffer's energy
    return dataclasses.replace(arch, dram=DramSpec(
        bandwidth_gb_per_s=gbps, latency_ns=0.0,
        energy_pj_per_byte=global_buffer_byte_pj(arch)))


def _key(objective: Objective, cycles: float, energy: float) -> tuple[float, float]:
    if objective == "latency":
        return (cycles, energy)
    if objective == "energy":
        return (energy, cycles)
    return (cycles * energy, cycles)


@dataclass(frozen=True, slots=True)
class _Inst:
    """One instance's totals over all cores."""

    cycles: float
    compute: float
    engine: float
    vector: float
    vector_ops: float
    macs: float
    dram_bytes: float
    energy: dict[str, float]
    mapping: dict[str, Any]
    #: Set when the cost model decides the bound itself (GPU presets).
    bound: Literal["compute", "memory"] | None = None


def _dram_level(arch: ArchSpec, core_bytes: float, compulsory: dict[str, float],
                fetched: dict[str, float], memory: Memory) -> float:
    """DRAM bytes of one attention instance: see the module doc (global buffer rules)."""
    if memory == "ideal":
        return 0.0
    gb = arch.global_buffer
    if gb is None:
        return core_bytes
    cap = gb.tile_capacity_bytes
    if sum(compulsory.values()) <= cap:
        return sum(compulsory.values())
    return sum(compulsory[k] if compulsory[k] <= cap / 3 else fetched[k] for k in compulsory)


@functools.lru_cache(maxsize=64)
def global_view(arch: ArchSpec) -> ArchSpec:
    """The global-buffer level as an architecture of its own: the global buffer split into
    three equal per-operand parts in front of the DRAM link. Its mapping search gives the
    GB-level tiling and loop order, and its loop-nest DRAM model the DRAM traffic."""
    gb = arch.global_buffer
    assert gb is not None
    part = dataclasses.replace(gb, capacity_bytes=max(1, gb.capacity_bytes // 3))
    return dataclasses.replace(arch, a_buffer=part, w_buffer=part, o_buffer=part, cores=1,
                               global_buffer=None)


def _global_level(arch: ArchSpec, g: Gemm, memory: Memory
                  ) -> tuple[float | None, dict[str, Any]]:
    """DRAM bytes of one GEMM instance under the global buffer's own tiling, and that
    mapping; ``None`` bytes when there is no such level (no global buffer, ideal memory, or
    not even the smallest tile fits a third of it): the cores' own traffic is then the DRAM
    traffic."""
    if memory == "ideal" or arch.global_buffer is None:
        return None, {}
    try:
        r = run_gemm(global_view(arch), dataclasses.replace(g, count=1), memory="real",
                     objective="energy")
    except MappingError:
        return None, {}
    m = r.mapping
    return r.dram_bytes, {"global_tile": {"M": m.tile_m, "N": m.tile_n, "K": m.tile_k},
                          "global_loop_order": "".join(m.loop_order)}


def _finish(arch: ArchSpec, core_cycles: float, core_backing: float, dram: float,
            energy: dict[str, float], memory: Memory) -> tuple[float, dict[str, float]]:
    """Whole-instance cycles and energy given the cores' time and backing traffic."""
    e = dict(energy)
    cycles = core_cycles
    if arch.global_buffer is not None and memory == "real":
        # the cores' backing traffic (priced by core_arch) hit the global buffer, not DRAM
        e["global_buffer"] += e["dram"]
        e["dram"] = dram * unit_energies(arch).dram_byte_pj
        lat = arch.dram.latency_ns * arch.clock_mhz / 1e3
        cycles = max(core_cycles, dram / arch.dram_bytes_per_cycle + lat * (dram > 0))
    return cycles, e


def _gemm_instance(arch: ArchSpec, g: Gemm, memory: Memory, objective: Objective) -> _Inst:
    cores = arch.cores
    core = core_arch(arch)
    lanes = arch.vector.lanes if arch.vector is not None else 0
    splits: list[tuple[str, int]] = [("n", -(-g.N // cores)), ("m", -(-g.M // cores))]
    if cores == 1:
        splits = splits[:1]
    best: _Inst | None = None
    best_key: tuple[float, float] | None = None
    vec_pj = vector_op_pj(arch) if lanes else 0.0
    # the global level's tiling is the same whatever the cores do
    global_bytes, global_mapping = _global_level(arch, g, memory)
    for dim, size in splits:
        sub = dataclasses.replace(g, count=1, **{dim.upper(): size})
        used = -(-getattr(g, dim.upper()) // size)
        for transposed in (False, True):
            plan = plan_gemm(core, sub, transposed)
            if plan.vector_ops and not lanes:
                raise MappingError(f"vector: {g.name} needs a vector unit ({plan.vector_ops:.3g}"
                                   " rescale/convert operations); add a [vector] table")
            r = run_gemm(plan.arch, plan.gemm, memory=memory, objective=objective,
                         passes=plan.passes)
            vec_cycles = plan.vector_ops / lanes if lanes else 0.0
            core_cycles = max(float(r.cycles), vec_cycles)
            backing = used * r.dram_bytes
            if memory == "ideal":
                dram = 0.0
            else:
                dram = backing if global_bytes is None else min(backing, global_bytes)
            energy = dict.fromkeys(SYSTEM_ENERGY_COMPONENTS, 0.0)
            for k, v in r.energy_breakdown_pj.items():
                energy[k] += used * v
            energy["vector"] = used * plan.vector_ops * vec_pj
            cycles, energy = _finish(arch, core_cycles, backing, dram, energy, memory)
            m = r.mapping
            inst = _Inst(
                cycles=cycles, compute=max(float(r.compute_cycles), vec_cycles),
                engine=float(r.compute_cycles), vector=vec_cycles,
                vector_ops=used * plan.vector_ops, macs=float(g.M * g.N * g.K),
                dram_bytes=dram, energy=energy,
                mapping={"cores_used": used, "core_split": dim, "transposed": transposed,
                         "passes": plan.passes, "a_slices": plan.a_slices,
                         "w_slices": plan.w_slices, "engine_a_bits": plan.arch.engine.a_bits,
                         "engine_w_bits": plan.arch.engine.w_bits, **m.to_dict(),
                         **global_mapping},
            )
            key = _key(objective, cycles, sum(energy.values()))
            if best_key is None or key < best_key:
                best, best_key = inst, key
    assert best is not None
    return best


def _attention_instance(arch: ArchSpec, a: Attention, memory: Memory,
                        objective: Objective) -> _Inst:
    cores = arch.cores
    core = core_arch(arch) if memory == "real" else _ideal_link(arch)
    units = a.batch * a.kv_heads
    kv_split = 1
    if units < cores and a.q_len == 1:
        kv_split = min(cores // units, a.kv_len)
    per_core = -(-units * kv_split // cores)
    used = min(cores, units * kv_split)
    c = attention_core_cost(core, a, per_core if kv_split == 1 else 1, objective=objective,
                            kv_split=kv_split)
    # the cost covers per_core units (one share of one unit when splitting the keys)
    scale = units / per_core if kv_split == 1 else units * kv_split
    vec_ops = scale * c.vector_ops
    merge_ops = 0.0
    if kv_split > 1:  # merge the partial outputs: rescale and add per split and output
        merge_ops = units * a.group_size * a.v_dim * kv_split * 3
    lanes = arch.vector.lanes if arch.vector is not None else 1
    core_cycles = c.cycles * (per_core if kv_split > 1 else 1) + merge_ops / (lanes * cores)
    backing = scale * c.backing_bytes
    q_bits = get_format(a.q_fmt).bits
    compulsory = {"q": a.batch * a.heads * a.q_len * a.qk_dim * q_bits / 8,
                  "kv": a.kv_bytes(),
                  "o": a.batch * a.heads * a.q_len * a.v_dim * q_bits / 8}
    fetched = {"q": compulsory["q"], "o": compulsory["o"],
               "kv": max(compulsory["kv"], backing - compulsory["q"] - compulsory["o"])}
    dram = _dram_level(arch, backing, compulsory, fetched, memory)
    energy = dict.fromkeys(SYSTEM_ENERGY_COMPONENTS, 0.0)
    for k, v in c.energy_pj.items():
        energy[k] += scale * v
    energy["vector"] += merge_ops * vector_op_pj(arch)
    if memory == "ideal":
        energy["dram"] = 0.0
    cycles, energy = _finish(arch, core_cycles, backing, dram, energy, memory)
    compute = c.compute_cycles * (per_core if kv_split > 1 else 1)
    return _Inst(
        cycles=cycles if memory == "real" else compute, compute=compute,
        engine=c.engine_cycles * (per_core if kv_split > 1 else 1),
        vector=c.vector_cycles * (per_core if kv_split > 1 else 1),
        vector_ops=vec_ops + merge_ops, macs=float(a.macs // a.count), dram_bytes=dram,
        energy=energy,
        mapping={"cores_used": used, "units_per_core": per_core, "kv_split": kv_split,
                 "tile_rows": c.tile_rows, "tile_keys": c.tile_keys,
                 "tile_pairs": scale * c.tile_pairs},
    )


@functools.lru_cache(maxsize=64)
def _ideal_link(arch: ArchSpec) -> ArchSpec:
    """A core whose backing link never stalls (``memory="ideal"``)."""
    core = core_arch(arch)
    return dataclasses.replace(core, dram=DramSpec(bandwidth_gb_per_s=1e5, latency_ns=0.0))


def _on_chip_bytes(arch: ArchSpec) -> float:
    gb = 0 if arch.global_buffer is None else arch.global_buffer.capacity_bytes
    return arch.cores * (arch.a_buffer.capacity_bytes + arch.o_buffer.capacity_bytes) + gb


def _vector_instance(arch: ArchSpec, v: Vector, memory: Memory) -> _Inst:
    if arch.vector is None:
        raise MappingError(f"vector: {v.name} ({v.kind}) needs a vector unit; add a [vector] "
                           "table (lanes = ...) to the architecture")
    lanes = arch.vector.lanes * arch.cores
    ops = v.elems * v.ops_per_elem
    compute = ops / lanes
    nbytes = v.bytes
    energy = dict.fromkeys(SYSTEM_ENERGY_COMPONENTS, 0.0)
    energy["vector"] = ops * vector_op_pj(arch)
    u = unit_energies(arch)
    on_chip = memory == "ideal" or nbytes - v.table_bytes <= _on_chip_bytes(arch)
    dram = v.table_bytes if on_chip else nbytes
    if memory == "ideal":
        dram = 0.0
    energy["o_buffer"] = (nbytes - dram) * u.o_buffer_byte_pj
    energy["dram"] = dram * u.dram_byte_pj
    lat = arch.dram.latency_ns * arch.clock_mhz / 1e3
    cycles = max(compute, dram / arch.dram_bytes_per_cycle + lat * (dram > 0))
    return _Inst(cycles=cycles, compute=compute, engine=0.0, vector=compute, vector_ops=ops,
                 macs=0.0, dram_bytes=dram, energy=energy,
                 mapping={"cores_used": arch.cores, "on_chip": on_chip})


def _gpu_instance(arch: ArchSpec, op: Op, memory: Memory) -> _Inst:
    """A GPU preset: the kernel model of :mod:`sim.gpu_model`; energy = board power x time."""
    from sim.gpu_model import op_seconds

    seconds, memory_bound, nbytes = op_seconds(arch, op, memory)
    cycles = seconds * arch.clock_mhz * 1e6
    energy = dict.fromkeys(SYSTEM_ENERGY_COMPONENTS, 0.0)
    assert arch.gpu is not None
    energy["gpu_board"] = arch.gpu.board_power_w * seconds * 1e12
    macs = 0.0 if isinstance(op, Vector) else float(op.macs // op.count)
    ops = float(op.elems * op.ops_per_elem) if isinstance(op, Vector) else 0.0
    return _Inst(cycles=cycles, compute=cycles, engine=0.0 if isinstance(op, Vector) else cycles,
                 vector=cycles if isinstance(op, Vector) else 0.0, vector_ops=ops, macs=macs,
                 dram_bytes=nbytes, energy=energy,
                 mapping={"gpu_kernel_model": arch.gpu.calibration},
                 bound="memory" if memory_bound else "compute")


@functools.lru_cache(maxsize=8192)
def _instance(arch: ArchSpec, op: Op, memory: Memory, objective: Objective) -> _Inst:
    if arch.gpu is not None:
        return _gpu_instance(arch, op, memory)
    if isinstance(op, Gemm):
        return _gemm_instance(arch, op, memory, objective)
    if isinstance(op, Attention):
        return _attention_instance(arch, op, memory, objective)
    return _vector_instance(arch, op, memory)


def simulate_op(arch: ArchSpec, op: Op, *, memory: Memory = "real",
                objective: Objective = "latency") -> OpResult:
    """All ``op.count`` instances of ``op`` on ``arch`` (module doc). Raises
    :class:`sim.gemm.FormatError` for a format the engine cannot take at all,
    :class:`mapping.MappingError` when nothing fits or a vector unit is missing."""
    one = dataclasses.replace(op, count=1)
    inst = _instance(arch, one, memory, objective)
    n = op.count
    cycles = math.ceil(n * inst.cycles - 1e-9)
    compute = min(cycles, math.ceil(n * inst.compute - 1e-9))
    energy = {k: n * inst.energy.get(k, 0.0) for k in SYSTEM_ENERGY_COMPONENTS}
    macs = int(n * inst.macs)
    peak = peak_macs_per_cycle(arch)
    kind: Literal["gemm", "attention", "vector"] = (
        "gemm" if isinstance(op, Gemm) else "attention" if isinstance(op, Attention)
        else "vector")
    dram_cycles = n * inst.dram_bytes / arch.dram_bytes_per_cycle
    return OpResult(
        op=op, kind=kind, cycles=cycles, compute_cycles=compute, stall_cycles=cycles - compute,
        engine_cycles=math.ceil(n * inst.engine - 1e-9),
        vector_cycles=math.ceil(n * inst.vector - 1e-9),
        seconds=cycles / (arch.clock_mhz * 1e6), macs=macs, vector_ops=n * inst.vector_ops,
        dram_bytes=n * inst.dram_bytes, energy_pj=sum(energy.values()),
        energy_breakdown_pj=MappingProxyType(energy),
        utilization=macs / (cycles * peak) if cycles else 0.0,
        bound=inst.bound or ("memory" if dram_cycles > n * inst.compute else "compute"),
        mapping=MappingProxyType(inst.mapping),
    )
