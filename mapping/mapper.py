"""Pick the best mapping of a GEMM under a cost function the caller supplies.

``mapping`` never imports ``sim``: the cost model arrives as ``cost_fn(gemm, arch, cands)``,
a function that costs every candidate at once (numpy arrays, one entry per candidate) and
returns :class:`Costs`. ``sim.gemm.gemm_cost`` is the simulator's own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from hw.spec import ArchSpec
from mapping.tiling import Candidates, Mapping, candidates
from models.caches import clear_caches, memo
from models.ops import Gemm

__all__ = ["OBJECTIVES", "CostFn", "Costs", "Objective", "best_index", "clear_caches", "search"]

Objective = Literal["latency", "energy", "edp"]
OBJECTIVES: tuple[str, ...] = get_args(Objective)


@dataclass(frozen=True, slots=True, eq=False)
class Costs:
    """Costs of every candidate (arrays of equal length). ``dram_bytes`` breaks ties."""

    cycles: np.ndarray
    energy_pj: np.ndarray
    dram_bytes: np.ndarray | None = None


#: ``cost_fn(gemm, arch, cands) -> Costs`` for one instance of ``gemm`` (``count`` ignored).
CostFn = Callable[[Gemm, ArchSpec, Candidates], Costs]


def search(
    gemm: Gemm, arch: ArchSpec, cost_fn: CostFn, objective: Objective = "latency"
) -> Mapping:
    """The candidate mapping of one ``gemm`` instance that minimises ``objective``.

    ``objective``: ``"latency"`` (cycles), ``"energy"`` (pJ) or ``"edp"`` (cycles x pJ). Ties
    go to the other metric, then to fewer DRAM bytes, then to the earlier candidate. Results
    are cached on the GEMM (everything but its name and count: shape, formats, quantization
    metadata), the architecture, the cost function and the objective (``cost_fn`` must be
    hashable, e.g. a module-level function, and pure).

    Raises :class:`~mapping.tiling.MappingError` when no tile fits the buffers.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective: must be one of {', '.join(OBJECTIVES)} (got {objective!r})")
    if not isinstance(gemm, Gemm):
        raise TypeError(f"gemm: expected a models.ops.Gemm, got {type(gemm).__name__}")
    if not isinstance(arch, ArchSpec):
        raise TypeError(f"arch: expected a hw.spec.ArchSpec, got {type(arch).__name__}")
    one = dataclasses.replace(gemm, name="gemm", count=1)
    return _search(one, arch, cost_fn, objective)


@memo(maxsize=4096)
def _search(one: Gemm, arch: ArchSpec, cost_fn: CostFn, objective: Objective) -> Mapping:
    cands = candidates(one, arch)
    costs = cost_fn(one, arch, cands)
    return cands.mapping(best_index(costs, objective), arch)


def best_index(costs: Costs, objective: Objective) -> int:
    """Index of the best candidate (see :func:`search` for the order)."""
    cycles = np.asarray(costs.cycles, dtype=np.float64)
    energy = np.asarray(costs.energy_pj, dtype=np.float64)
    dram = (np.zeros_like(cycles) if costs.dram_bytes is None
            else np.asarray(costs.dram_bytes, dtype=np.float64))
    if objective == "latency":
        keys = (dram, energy, cycles)
    elif objective == "energy":
        keys = (dram, cycles, energy)
    else:
        keys = (dram, energy, cycles * energy)
    # the lexicographic minimum: only the candidates tied on the primary key need sorting
    tied = np.flatnonzero(keys[-1] == keys[-1].min())
    if tied.size == 1:
        return int(tied[0])
    return int(tied[np.lexsort(tuple(k[tied] for k in keys))[0]])
