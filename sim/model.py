"""A whole workload (a list of GEMMs) on one architecture (``tpe sim model``).

Operators run one after another on the one engine; each is simulated by
:func:`sim.gemm.simulate_gemm` (cached per shape, so a model with repeated layers costs one
search per distinct shape) and the totals are sums of those frozen per-operator results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from hw.spec import ArchSpec, spec_to_dict
from mapping import Objective
from models import ModelError
from models.ops import Gemm
from sim.energy import ENERGY_COMPONENTS, area_breakdown
from sim.gemm import GemmResult, simulate_gemm
from sim.memory import Memory

__all__ = ["ModelResult", "simulate_model"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelResult:
    """Totals over ``ops`` (each a :class:`sim.gemm.GemmResult`, in workload order).

    ``utilization`` = useful MACs / (``cycles`` x ``spec.macs_per_cycle``).
    """

    arch: ArchSpec
    name: str
    memory: Memory
    objective: Objective
    ops: tuple[GemmResult, ...]
    cycles: int
    compute_cycles: int
    stall_cycles: int
    sram_stall_cycles: int
    dram_stall_cycles: int
    macs: int
    utilization: float
    seconds: float
    energy_pj: float
    energy_breakdown_pj: MappingProxyType[str, float]
    dram_bytes: float
    area_um2: float
    area_breakdown_um2: MappingProxyType[str, float]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the ``tpe sim model --json`` object)."""
        ops = []
        for r in self.ops:
            g = r.gemm
            ops.append({
                "name": g.name, "count": g.count, "M": g.M, "N": g.N, "K": g.K,
                "a_fmt": g.a_fmt, "w_fmt": g.w_fmt, "o_fmt": g.o_fmt,
                "cycles": r.cycles, "compute_cycles": r.compute_cycles,
                "stall_cycles": r.stall_cycles, "seconds": r.seconds,
                "energy_pj": r.energy_pj, "utilization": r.utilization,
                "dram_bytes": r.dram_bytes, "bound": r.bound,
                "breakdown": dict(r.energy_breakdown_pj),
                "mapping": r.mapping.to_dict(),
            })
        return {
            "arch": self.arch.name,
            "engine": spec_to_dict(self.arch.engine),
            "model": self.name,
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
            "dram_bytes": self.dram_bytes,
            "area_um2": self.area_um2,
            "area_breakdown_um2": dict(self.area_breakdown_um2),
            "mapping": {op["name"]: op["mapping"] for op in ops},
            "ops": ops,
        }


def simulate_model(
    arch: ArchSpec,
    ops: Sequence[Gemm],
    *,
    memory: Memory = "real",
    objective: Objective = "latency",
    name: str = "model",
) -> ModelResult:
    """Simulate every GEMM of ``ops`` (each with its ``count``) on ``arch`` and sum.

    ``memory`` and ``objective`` as in :func:`sim.gemm.simulate_gemm`. Raises
    :class:`models.ModelError` for an empty or malformed op list and whatever
    ``simulate_gemm`` raises for an operator that does not fit.
    """
    if not isinstance(arch, ArchSpec):
        raise TypeError(f"arch: expected a hw.spec.ArchSpec, got {type(arch).__name__}")
    if isinstance(ops, Gemm) or not isinstance(ops, Sequence):
        raise TypeError(f"ops: expected a sequence of models.ops.Gemm, got {type(ops).__name__}")
    if not ops:
        raise ModelError("ops: the workload has no operators")
    for i, op in enumerate(ops):
        if not isinstance(op, Gemm):
            raise TypeError(f"ops[{i}]: expected a models.ops.Gemm, got {type(op).__name__}")
    results = tuple(simulate_gemm(arch, op, memory=memory, objective=objective) for op in ops)
    cycles = sum(r.cycles for r in results)
    macs = sum(r.macs for r in results)
    spec = arch.engine
    energy = {k: sum(r.energy_breakdown_pj[k] for r in results) for k in ENERGY_COMPONENTS}
    area = area_breakdown(arch)
    return ModelResult(
        arch=arch,
        name=name,
        memory=memory,
        objective=objective,
        ops=results,
        cycles=cycles,
        compute_cycles=sum(r.compute_cycles for r in results),
        stall_cycles=sum(r.stall_cycles for r in results),
        sram_stall_cycles=sum(r.sram_stall_cycles for r in results),
        dram_stall_cycles=sum(r.dram_stall_cycles for r in results),
        macs=macs,
        utilization=macs / (cycles * spec.macs_per_cycle),
        seconds=cycles / (arch.clock_mhz * 1e6),
        energy_pj=sum(energy.values()),
        energy_breakdown_pj=MappingProxyType(energy),
        dram_bytes=sum(r.dram_bytes for r in results),
        area_um2=sum(area.values()),
        area_breakdown_um2=area,
    )
