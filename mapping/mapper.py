"""Pick the best candidate under a cost function the caller supplies: one set of objectives.

``mapping`` never imports ``sim``: the cost model arrives as a parameter. Two forms share the
objectives and their tie-breaking (:func:`objective_key`):

* :func:`search` (the GEMM buffer tiling): ``cost_fn(gemm, arch, cands)`` costs every
  candidate of :func:`mapping.candidates` at once (numpy arrays, one entry per candidate) and
  returns :class:`Costs`; :func:`best_index` picks. ``sim.gemm.gemm_cost`` is the simulator's.
* :func:`pick` (every other search: attention tiles, core splits, orientations): a typed
  candidate set (a sequence of frozen dataclasses or values) and ``cost_fn(candidate)`` that
  returns :class:`Scored`, the candidate's cycles and energy with whatever detail the caller
  wants back for the winner.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, NamedTuple, TypeVar, get_args

import numpy as np

from hw.spec import ArchSpec
from mapping.tiling import Candidates, Mapping, candidates
from models.caches import clear_caches, memo
from models.ops import Gemm

__all__ = [
    "OBJECTIVES",
    "CostFn",
    "Costs",
    "Objective",
    "Scored",
    "best_index",
    "check_objective",
    "clear_caches",
    "objective_key",
    "pick",
    "search",
]

Objective = Literal["latency", "energy", "edp"]
OBJECTIVES: tuple[str, ...] = get_args(Objective)

C = TypeVar("C")
T = TypeVar("T")


def check_objective(objective: str) -> None:
    """``ValueError`` (one line, naming the choices) unless ``objective`` is one of
    :data:`OBJECTIVES`."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective: must be one of {', '.join(OBJECTIVES)} (got {objective!r})")


#: Each objective's sort key from (cycles, energy, DRAM bytes), most significant first.
_KEYS: dict[str, Callable[[Any, Any, Any], tuple[Any, ...]]] = {
    "latency": lambda cycles, energy, dram: (cycles, energy, dram),
    "energy": lambda cycles, energy, dram: (energy, cycles, dram),
    "edp": lambda cycles, energy, dram: (cycles * energy, energy, dram),
}


def objective_key(objective: Objective, cycles: Any, energy: Any, dram: Any) -> tuple[Any, ...]:
    """What a search minimises, most significant first: ``"latency"`` cycles, then energy;
    ``"energy"`` energy, then cycles; ``"edp"`` cycles x energy, then energy; last, DRAM bytes.
    Scalars (:func:`pick` compares the tuples) or arrays (:func:`best_index` sorts by them);
    equal keys go to the earlier candidate."""
    return _KEYS[objective](cycles, energy, dram)


@dataclass(frozen=True, slots=True, eq=False)
class Costs:
    """Costs of every candidate: arrays of one entry per candidate, in candidate order, or,
    with ``grid``, laid out as the candidates' grid (:attr:`mapping.Candidates.shape`, ``(O,
    T)``; a per-tile ``(1, T)`` array or a scalar broadcast over it), which spares a cost
    model that computes on the grid one copy per array. ``dram_bytes`` breaks ties."""

    cycles: np.ndarray
    energy_pj: np.ndarray
    dram_bytes: np.ndarray | None = None
    grid: tuple[int, int] | None = None


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
    check_objective(objective)
    if not isinstance(gemm, Gemm):
        raise TypeError(f"gemm: expected a models.ops.Gemm, got {type(gemm).__name__}")
    if not isinstance(arch, ArchSpec):
        raise TypeError(f"arch: expected a hw.spec.ArchSpec, got {type(arch).__name__}")
    one = (gemm if gemm.name == "gemm" and gemm.count == 1
           else dataclasses.replace(gemm, name="gemm", count=1))
    return _search(one, arch, cost_fn, objective)


@memo(maxsize=4096)
def _search(one: Gemm, arch: ArchSpec, cost_fn: CostFn, objective: Objective) -> Mapping:
    cands = candidates(one, arch)
    costs = cost_fn(one, arch, cands)
    return cands.mapping(best_index(costs, objective), arch)


def best_index(costs: Costs, objective: Objective) -> int:
    """Index of the best candidate (:func:`objective_key`; see :func:`search`)."""
    keys = objective_key(objective, np.asarray(costs.cycles, dtype=np.float64),
                         np.asarray(costs.energy_pj, dtype=np.float64),
                         None if costs.dram_bytes is None
                         else np.asarray(costs.dram_bytes, dtype=np.float64))
    # one entry per candidate is a grid of one loop order: candidate ``t * O + o`` is entry
    # ``[o, t]`` of an (O, T) grid, whose per-tile keys are (1, T) rows
    n_orders = 1 if costs.grid is None else costs.grid[0]
    width = np.size(costs.cycles) if costs.grid is None else costs.grid[1]
    rows = [None if np.ndim(k) == 0 else np.reshape(k, (-1, width)) for k in keys]
    # the lexicographic minimum: the candidates at the primary key's minimum, narrowed to
    # those at the next key's minimum among them, and so on; then the earliest candidate
    primary = rows[0]
    assert primary is not None
    o, t = np.nonzero(primary == primary.min())
    if primary.shape[0] < n_orders:  # a per-tile key: every loop order of its best tiles
        o, t = np.divmod(np.arange(n_orders * t.size), t.size)
        t = np.nonzero(primary[0] == primary.min())[0][t]
    for k in rows[1:]:
        if o.size == 1:
            break
        if k is None:  # a scalar (or no DRAM bytes): every candidate ties
            continue
        at = k[o, t] if k.shape[0] > 1 else k[0, t]
        keep = at == at.min()
        o, t = o[keep], t[keep]
    return int((t * n_orders + o).min())


class Scored(NamedTuple, Generic[T]):
    """One candidate's cost as :func:`pick` ranks it (:func:`objective_key`), with the
    caller's ``detail`` (e.g. the full result of the cost model) handed back for the winner.
    A named tuple: immutable and cheap to build, since a search builds one per candidate."""

    cycles: float
    energy_pj: float
    detail: T
    #: Breaks ties last (fewer bytes to and from DRAM).
    dram_bytes: float = 0.0


def pick(candidates: Sequence[C], cost_fn: Callable[[C], Scored[T]], objective: Objective,
         floor_fn: Callable[[C], Scored[Any]] | None = None) -> tuple[C, Scored[T]]:
    """The candidate minimising ``objective`` under ``cost_fn`` (the caller's cost model, one
    candidate at a time) and its :class:`Scored`; equal keys (:func:`objective_key`) go to the
    earlier candidate, so a candidate set lists its preferred choices first. Every candidate
    is costed (a cost function may raise, e.g. when a candidate needs a unit the architecture
    lacks).

    ``floor_fn``: a cheaper cost whose figures are each at most ``cost_fn``'s (cycles a lower
    bound; energy and bytes the same or lower; non-negative), and which raises what
    ``cost_fn`` would. Then every candidate's floor is taken, the candidates are costed from
    the lowest floor key up, and once a floor key exceeds the best key costed so far, the
    rest are not costed: no candidate's key is below its floor key, so none of them could
    win. The pick is the same as without ``floor_fn``."""
    check_objective(objective)
    if not candidates:
        raise ValueError("candidates: the candidate set is empty; the caller must report why "
                         "nothing fits before searching")
    key_of = _KEYS[objective]
    best: tuple[C, Scored[T]] | None = None
    best_key: tuple[Any, ...] | None = None
    if floor_fn is None or len(candidates) == 1:
        for cand in candidates:
            s = cost_fn(cand)
            key = key_of(s.cycles, s.energy_pj, s.dram_bytes)
            if best_key is None or key < best_key:
                best, best_key = (cand, s), key
        assert best is not None
        return best
    floors = []
    for i, cand in enumerate(candidates):
        f = floor_fn(cand)
        floors.append((*key_of(f.cycles, f.energy_pj, f.dram_bytes), i))
    for *_, i in sorted(floors):
        if best_key is not None and floors[i] > best_key:
            break  # this floor and every later one exceed the best key
        s = cost_fn(candidates[i])
        key = (*key_of(s.cycles, s.energy_pj, s.dram_bytes), i)  # ties: the earlier one
        if best_key is None or key < best_key:
            best, best_key = (candidates[i], s), key
    assert best is not None
    return best

