"""A whole workload (a list of operators) on one architecture (``tpe sim model``).

Operators run one after another on the architecture's cores; each is simulated by
:func:`sim.system.simulate_op` (cached per distinct operator, so a model with repeated layers
costs one search per distinct shape) and the totals are sums of those frozen per-operator
results, plus, where a host launches every kernel (``host_launch_us``: eager PyTorch on a
GPU preset), the time the device waits for the host beyond its own work and the card's
static energy meanwhile.

End-to-end metrics (:class:`ModelResult`): a prefill pass of ``batch`` prompts of ``seq``
tokens ends with the first generated token, so its time is the time to first token (TTFT) and
its tokens are the ``batch * seq`` prompt tokens; a decode step generates ``batch`` tokens, so
its time is the time per output token (TPOT). ``tokens_per_s`` and ``energy_per_token_pj``
divide by those tokens.

Cycles, MACs and DRAM bytes are exact Python ints, the sums of the operators' exact ints
(``docs/llm_simulator.md``, "Exact integers").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from hw.spec import ArchSpec, spec_to_dict
from mapping import Objective
from models import ModelError
from models.ops import Attention, Gemm, Op, Vector, exact, exact_div
from sim.energy import energy_components, system_area_breakdown
from sim.memory import Memory
from sim.system import OpResult, gpu_validation, peak_macs_per_cycle, simulate_op

__all__ = ["ModelResult", "check_host_launch_us", "resident_bytes", "simulate_model"]

Phase = Literal["prefill", "decode"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelResult:
    """Totals over ``ops`` (each a :class:`sim.system.OpResult`, in workload order).

    ``utilization`` = useful engine MACs / (``cycles`` x peak MACs per cycle of all cores).
    ``tokens``: the tokens this pass handles (prompt tokens for prefill, generated tokens for
    decode; ``None`` when the workload is not a model phase).
    """

    arch: ArchSpec
    name: str
    memory: Memory
    objective: Objective
    phase: Phase | None
    batch: int | None
    seq: int | None
    quant: str | None
    ops: tuple[OpResult, ...]
    cycles: int
    compute_cycles: int
    stall_cycles: int
    macs: int
    vector_ops: float
    utilization: float
    seconds: float
    energy_pj: float
    energy_breakdown_pj: MappingProxyType[str, float]
    dram_bytes: int
    area_um2: float
    area_breakdown_um2: MappingProxyType[str, float]
    tokens: int | None
    #: Bytes of the weights the workload reads and of its KV cache, which must stay resident
    #: in the outermost memory level (``capacity_bytes``); ``fits`` when they do.
    weight_bytes: float
    kv_cache_bytes: float
    capacity_bytes: int
    #: The runtime the workload was lowered for (``models.llm.lower``), when it is a model.
    runtime: str | None = None
    #: Kernels the pass launches on a GPU preset (one per GEMM and attention instance, each
    #: vector operator's ``launches``; 0 on an engine architecture), the host's time to launch them
    #: (``host_launch_us`` each) and the cycles the device waits for the host beyond its own
    #: work: ``cycles`` is the operators' sum plus ``host_wait_cycles``.
    launches: int = 0
    host_cycles: int = 0
    host_wait_cycles: int = 0

    @property
    def fits(self) -> bool:
        return self.weight_bytes + self.kv_cache_bytes <= self.capacity_bytes

    @property
    def ttft_s(self) -> float | None:
        """Time to first token: the prefill pass."""
        return self.seconds if self.phase == "prefill" else None

    @property
    def tpot_s(self) -> float | None:
        """Time per output token: one decode step."""
        return self.seconds if self.phase == "decode" else None

    @property
    def tokens_per_s(self) -> float | None:
        return None if self.tokens is None else self.tokens / self.seconds

    @property
    def energy_per_token_pj(self) -> float | None:
        return None if self.tokens is None else self.energy_pj / self.tokens

    def time_by_op(self) -> dict[str, float]:
        """Seconds per operator name (for breakdown plots)."""
        out: dict[str, float] = {}
        for r in self.ops:
            out[r.name] = out.get(r.name, 0.0) + r.seconds
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the ``tpe sim model --json`` object)."""
        ops = [r.to_dict() for r in self.ops]
        return {
            "arch": self.arch.name,
            "engine": spec_to_dict(self.arch.engine),
            "cores": self.arch.cores,
            **gpu_validation(self.arch),
            "model": self.name,
            "phase": self.phase,
            "batch": self.batch,
            "seq": self.seq,
            "quant": self.quant,
            "memory": self.memory,
            "objective": self.objective,
            "cycles": self.cycles,
            "compute_cycles": self.compute_cycles,
            "stall_cycles": self.stall_cycles,
            "utilization": self.utilization,
            "seconds": self.seconds,
            "ttft_s": self.ttft_s,
            "tpot_s": self.tpot_s,
            "tokens": self.tokens,
            "tokens_per_s": self.tokens_per_s,
            "energy_per_token_pj": self.energy_per_token_pj,
            "macs": self.macs,
            "vector_ops": self.vector_ops,
            "energy_pj": self.energy_pj,
            "breakdown": dict(self.energy_breakdown_pj),
            "dram_bytes": self.dram_bytes,
            "fits": self.fits,
            "weight_bytes": self.weight_bytes,
            "kv_cache_bytes": self.kv_cache_bytes,
            "capacity_bytes": self.capacity_bytes,
            "runtime": self.runtime,
            "launches": self.launches,
            "host_s": self.host_cycles / (self.arch.clock_mhz * 1e6),
            "host_wait_s": self.host_wait_cycles / (self.arch.clock_mhz * 1e6),
            "area_um2": self.area_um2,
            "area_breakdown_um2": dict(self.area_breakdown_um2),
            "mapping": {op["name"]: op["mapping"] for op in ops},
            "ops": ops,
        }


def simulate_model(
    arch: ArchSpec,
    ops: Sequence[Op],
    *,
    memory: Memory = "real",
    objective: Objective = "latency",
    name: str = "model",
    phase: Phase | None = None,
    batch: int | None = None,
    seq: int | None = None,
    quant: str | None = None,
    weight_bytes: float | None = None,
    runtime: str | None = None,
    host_launch_us: float = 0.0,
) -> ModelResult:
    """Simulate every operator of ``ops`` (each with its ``count``) on ``arch`` and sum.

    ``memory`` and ``objective`` as in :func:`sim.gemm.simulate_gemm`. ``phase``, ``batch``
    and ``seq`` (the workload's, when it is one pass of a model) give the end-to-end metrics.
    ``weight_bytes``: the model's resident weights (all of them, e.g. every expert of a MoE
    layer; :func:`models.llm.weight_bytes`); default: those ``ops`` read
    (:func:`resident_bytes`). ``runtime``: the runtime ``ops`` were lowered for (reported).
    ``host_launch_us``: the host's time to launch one kernel (a runtime that launches every
    kernel from the host: eager PyTorch, :class:`sim.gpu_model.EagerCalibration`); the pass
    then takes at least its kernels' launches, the device waiting for the host beyond its own
    work (``host_wait_cycles``). 0: the host keeps ahead (CUDA graphs, a serving engine).
    Raises :class:`models.ModelError` for an empty or malformed op list and whatever
    :func:`sim.system.simulate_op` raises for an operator that does not fit.
    """
    if not isinstance(arch, ArchSpec):
        raise TypeError(f"arch: expected a hw.spec.ArchSpec, got {type(arch).__name__}")
    if isinstance(ops, (Gemm, Attention, Vector)) or not isinstance(ops, Sequence):
        raise TypeError(f"ops: expected a sequence of models.ops operators, got "
                        f"{type(ops).__name__}")
    if not ops:
        raise ModelError("ops: the workload has no operators")
    for i, op in enumerate(ops):
        if not isinstance(op, (Gemm, Attention, Vector)):
            raise TypeError(f"ops[{i}]: expected a models.ops operator, got "
                            f"{type(op).__name__}")
    if phase is not None and phase not in ("prefill", "decode"):
        raise ModelError(f"phase: must be 'prefill' or 'decode' (got {phase!r})")
    check_host_launch_us(host_launch_us)
    if host_launch_us and arch.gpu is None:
        raise ModelError(f"host_launch_us: a host launching each kernel is modeled on GPU "
                         f"presets; {arch.name} is an engine architecture")
    results = tuple(simulate_op(arch, op, memory=memory, objective=objective) for op in ops)
    launches = 0 if arch.gpu is None else sum(
        op.count * (op.launches if isinstance(op, Vector) else 1) for op in ops)
    # launches x us x MHz = cycles, exactly, rounded up
    host = math.ceil(launches * exact(host_launch_us) * exact(arch.clock_mhz))
    wait = max(0, host - sum(r.cycles for r in results))
    cycles = sum(r.cycles for r in results) + wait
    macs = sum(r.macs for r in results)
    energy = {k: sum(r.energy_breakdown_pj[k] for r in results)
              for k in energy_components(arch)}
    if wait:  # the card idles at its static power while the host launches
        from sim.gpu_model import idle_pj  # here: an engine architecture does not load it

        energy["gpu_board"] += idle_pj(arch, wait / (arch.clock_mhz * 1e6))
    read_weights, kv = resident_bytes(ops)
    weights = read_weights if weight_bytes is None else float(weight_bytes)
    area = system_area_breakdown(arch)
    tokens = None
    if phase is not None and batch is not None and seq is not None:
        tokens = batch * seq if phase == "prefill" else batch
    compute = sum(r.compute_cycles for r in results)
    return ModelResult(
        arch=arch,
        name=name,
        memory=memory,
        objective=objective,
        phase=phase,
        batch=batch,
        seq=seq,
        quant=quant,
        ops=results,
        cycles=cycles,
        compute_cycles=compute,
        stall_cycles=cycles - compute,
        macs=macs,
        vector_ops=sum(r.vector_ops for r in results),
        utilization=macs / (cycles * peak_macs_per_cycle(arch)) if cycles else 0.0,
        seconds=cycles / (arch.clock_mhz * 1e6),
        energy_pj=sum(energy.values()),
        energy_breakdown_pj=MappingProxyType(energy),
        dram_bytes=sum(r.dram_bytes for r in results),
        area_um2=sum(area.values()),
        area_breakdown_um2=area,
        tokens=tokens,
        weight_bytes=weights,
        kv_cache_bytes=kv,
        capacity_bytes=arch.capacity_bytes,
        runtime=runtime,
        launches=launches,
        host_cycles=host,
        host_wait_cycles=wait,
    )


def check_host_launch_us(value: float) -> None:
    """``ModelError`` (naming ``host_launch_us``) unless ``value`` is a finite number >= 0."""
    if not 0 <= value < math.inf:
        raise ModelError(f"host_launch_us: must be a finite number >= 0 (got {value!r})")


def resident_bytes(ops: Sequence[Op]) -> tuple[int, int]:
    """``(weight bytes, KV-cache bytes)`` a workload keeps in memory: every weight matrix it
    reads (B of the GEMMs whose B is a weight, at its stored width with scales, once per
    instance) and every attention instance's K and V caches; whole bytes, exact ints."""
    weights = sum(exact_div(op.K * op.N * op.exact_w_storage_bits * op.count, 8) for op in ops
                  if isinstance(op, Gemm) and op.b_is_weight)
    kv = sum(op.exact_kv_bytes() * op.count for op in ops if isinstance(op, Attention))
    return math.ceil(weights), math.ceil(kv)
