"""A model pass on several devices of one architecture (``tpe sim model --devices N``): each
pipeline stage's devices, their collectives over the interconnect and the pipeline schedule.

Each device of a stage runs the stage's operators of one micro-batch
(:class:`models.parallel.Stage`), simulated as any workload on the architecture
(:func:`sim.model.simulate_model`: the stage's devices are identical, so one stands for all).
Its collectives (:func:`sim.collectives.collective_time`) follow the operators whose outputs
they move; with ``overlap`` a collective runs alongside the operator that produces its buffer
(T3, Pati et al., ASPLOS 2024: the GEMM's output tiles are reduced as they are written), so it
adds only what outlasts one instance of that operator. The stage's time per micro-batch is
its compute plus its exposed communication.

The pipeline runs ``microbatches`` micro-batches through the ``pp`` stages one after another
(GPipe's schedule, forward only): the first micro-batch crosses every stage and every
stage-to-stage send, the others follow at the pace of the slowest stage, so the pass takes
``sum(t_s + send_s) + (microbatches - 1) x max(t_s)``; a stage is idle for the rest.
Energy is the devices' (every device of every stage, every micro-batch); the links' energy is
not modelled. Memory per device (weights, KV cache, the largest operator's activations)
is checked against the architecture's capacity (``fits``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hw.spec import ArchSpec, spec_to_dict
from mapping import Objective
from models import ModelError
from models.parallel import Collective, ParallelPlan, ParallelWorkload
from sim.collectives import CollectiveTime, collective_time
from sim.memory import Memory
from sim.model import ModelResult, Phase, simulate_model

__all__ = ["CollectiveResult", "StageResult", "SystemResult", "simulate_devices"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CollectiveResult:
    """One collective of a stage per micro-batch: ``count`` instances of ``time``, of which
    ``exposed_s`` (all instances) add to the stage's time."""

    collective: Collective
    time: CollectiveTime
    exposed_s: float

    @property
    def seconds(self) -> float:
        return self.collective.count * self.time.seconds

    def to_dict(self) -> dict[str, Any]:
        c = self.collective
        return {"name": c.name, "kind": c.kind, "bytes": c.bytes, "group": c.group,
                "count": c.count, "after": c.after, "seconds": self.seconds,
                "exposed_s": self.exposed_s, "algorithm": self.time.algorithm,
                "protocol": self.time.protocol}


@dataclass(frozen=True, slots=True, kw_only=True)
class StageResult:
    """One pipeline stage: one of its devices' results per micro-batch, and over the pass."""

    index: int
    layers: tuple[int, int]
    devices: int
    #: One device's operators of one micro-batch.
    model: ModelResult
    collectives: tuple[CollectiveResult, ...]
    #: The stage-to-stage send of one micro-batch (``None`` on the last stage).
    send: CollectiveResult | None
    #: Over the whole pass (every micro-batch), per device.
    compute_s: float
    communication_s: float
    exposed_communication_s: float
    idle_s: float
    weight_bytes: float
    kv_cache_bytes: float
    activation_bytes: float
    capacity_bytes: int

    @property
    def send_s(self) -> float:
        return 0.0 if self.send is None else self.send.seconds

    @property
    def memory_bytes(self) -> float:
        return self.weight_bytes + self.kv_cache_bytes + self.activation_bytes

    @property
    def fits(self) -> bool:
        return self.memory_bytes <= self.capacity_bytes

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.index, "layers": list(self.layers), "devices": self.devices,
                "compute_s": self.compute_s, "communication_s": self.communication_s,
                "exposed_communication_s": self.exposed_communication_s,
                "idle_s": self.idle_s, "send_s": self.send_s,
                "send": None if self.send is None else self.send.to_dict(),
                "weight_bytes": self.weight_bytes, "kv_cache_bytes": self.kv_cache_bytes,
                "activation_bytes": self.activation_bytes,
                "memory_bytes": self.memory_bytes, "capacity_bytes": self.capacity_bytes,
                "fits": self.fits,
                "collectives": [c.to_dict() for c in self.collectives],
                "energy_pj": self.model.energy_pj,
                "ops": [r.to_dict() for r in self.model.ops]}


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemResult:
    """A pass on ``plan.devices`` devices: its time, tokens, energy and each stage."""

    arch: ArchSpec
    name: str
    plan: ParallelPlan
    overlap: bool
    memory: Memory
    objective: Objective
    phase: Phase
    batch: int
    seq: int
    quant: str
    stages: tuple[StageResult, ...]
    seconds: float
    energy_pj: float

    @property
    def tokens(self) -> int:
        return self.batch * self.seq if self.phase == "prefill" else self.batch

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds

    @property
    def energy_per_token_pj(self) -> float:
        return self.energy_pj / self.tokens

    @property
    def fits(self) -> bool:
        return all(s.fits for s in self.stages)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``tpe sim model --devices N --json``); ``interconnect`` ``None``
        on one device of an architecture without one (a plan of one device needs none)."""
        link = self.arch.interconnect
        return {
            "arch": self.arch.name, "model": self.name, "phase": self.phase,
            "batch": self.batch, "seq": self.seq, "quant": self.quant,
            "memory": self.memory, "objective": self.objective,
            "devices": self.plan.devices, "tp": self.plan.tp, "pp": self.plan.pp,
            "ep": self.plan.ep, "sp": self.plan.sp, "microbatches": self.plan.microbatches,
            "overlap": self.overlap,
            "interconnect": None if link is None else spec_to_dict(link),
            "seconds": self.seconds,
            "ttft_s": self.seconds if self.phase == "prefill" else None,
            "tpot_s": self.seconds if self.phase == "decode" else None,
            "tokens": self.tokens, "tokens_per_s": self.tokens_per_s,
            "energy_pj": self.energy_pj, "energy_per_token_pj": self.energy_per_token_pj,
            "fits": self.fits,
            "stages": [s.to_dict() for s in self.stages],
        }


def _collective_results(arch: ArchSpec, model: ModelResult, colls: Sequence[Collective],
                        overlap: bool
                        ) -> tuple[tuple[CollectiveResult, ...], CollectiveResult | None]:
    """The stage's collectives but the stage-to-stage send, and the send."""
    per_instance = {r.op.name: r.seconds / r.op.count for r in model.ops}
    out = []
    send = None
    for c in colls:
        assert arch.interconnect is not None  # simulate_devices checked
        t = collective_time(arch.interconnect, c.kind, c.bytes, c.group)
        if c.kind == "send_recv":  # on the pipeline's path, not the stage's
            send = CollectiveResult(collective=c, time=t, exposed_s=c.count * t.seconds)
            continue
        hidden = per_instance.get(c.after, 0.0) if overlap and c.after else 0.0
        out.append(CollectiveResult(collective=c, time=t,
                                    exposed_s=c.count * max(0.0, t.seconds - hidden)))
    return tuple(out), send


def simulate_devices(
    arch: ArchSpec,
    work: ParallelWorkload,
    *,
    name: str,
    phase: Phase,
    batch: int,
    seq: int,
    quant: str,
    memory: Memory = "real",
    objective: Objective = "latency",
    overlap: bool = False,
) -> SystemResult:
    """``work`` (:func:`models.parallel.lower_parallel`) on ``work.plan.devices`` devices of
    ``arch`` (module doc). Raises :class:`models.ModelError` naming ``interconnect`` when the
    architecture has no ``[interconnect]`` and the plan needs one."""
    if not isinstance(arch, ArchSpec):
        raise TypeError(f"arch: expected a hw.spec.ArchSpec, got {type(arch).__name__}")
    plan = work.plan
    if plan.devices > 1 and arch.interconnect is None:
        raise ModelError(f"interconnect: {arch.name} has no [interconnect] table to join "
                         f"{plan.devices} devices; add one (topology, bandwidth_gb_per_s, "
                         "launch_us, step_us, bulk_launch_us, bulk_step_us)")
    m = plan.microbatches
    per_stage = []
    for st in work.stages:
        model = simulate_model(arch, st.ops, memory=memory, objective=objective, name=name,
                               phase=phase, batch=work.microbatch, seq=seq, quant=quant)
        colls, send = _collective_results(arch, model, st.collectives, overlap)
        per_stage.append((st, model, colls, send))
    stage_s = [model.seconds + sum(c.exposed_s for c in colls)
               for _, model, colls, _ in per_stage]
    total = sum(t + (0.0 if send is None else send.seconds)
                for t, (_, _, _, send) in zip(stage_s, per_stage, strict=True))
    total += (m - 1) * max(stage_s)
    stages = []
    energy = 0.0
    for t, (st, model, colls, send) in zip(stage_s, per_stage, strict=True):
        energy += m * plan.tp * model.energy_pj
        stages.append(StageResult(
            index=st.index, layers=st.layers, devices=plan.tp, model=model,
            collectives=colls, send=send, compute_s=m * model.seconds,
            communication_s=m * sum(c.seconds for c in colls),
            exposed_communication_s=m * sum(c.exposed_s for c in colls),
            idle_s=max(0.0, total - m * t), weight_bytes=st.weight_bytes,
            kv_cache_bytes=st.kv_cache_bytes, activation_bytes=st.activation_bytes,
            capacity_bytes=arch.capacity_bytes))
    return SystemResult(arch=arch, name=name, plan=plan, overlap=overlap, memory=memory,
                        objective=objective, phase=phase, batch=batch, seq=seq, quant=quant,
                        stages=tuple(stages), seconds=total, energy_pj=energy)
