"""Cycle and cost models of the engines, one module per kind (``sim.engines.<kind>``).

Every kind's untiled GEMM cycles follow from its spec alone: ``spec.unrolling()`` says how
many folds a GEMM takes and which dimension streams, ``spec.fold_cycles`` what one fold
costs and ``spec.fold_interval`` how soon the next may start (folds back to back: every fold
but the last costs its interval, the last its ``fold_cycles``). :func:`gemm_folds` /
:func:`gemm_compute_cycles` are that generic model; a kind's module re-exports them with its
documentation and adds what its timing needs beyond it (for example data-dependent cycles).

Every kind's module also states the kind's costs, as two functions (:class:`KindCost`):

* ``arith_actions(spec, table, tech) -> tuple[ArithAction, ...]``: the arithmetic actions of
  one useful MAC (name, energy component, unit, pJ each, count per MAC and per activation
  read, and the rule with its source);
* ``pe_area(spec, table, tech) -> PeArea``: the engine's multiplier and adder area (um^2) and
  its register bits;

``spec`` being the kind's own spec class, ``table`` the energy table
(:class:`sim.engines.cost.PriceTable`) and ``tech`` the technology node in nm.
:func:`kind_cost` finds them by the kind's name, as :func:`hw.spec.engine_kinds` finds spec
modules; :mod:`sim.energy` prices every kind through it, with no per-kind branch. The shared
pricing (power laws, the engine's structure, the multiplier kinds' model) is
:mod:`sim.engines.cost`, which is therefore no kind's name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hw.spec import EngineSpec
from models.caches import memo
from sim.engines.cost import ArithAction, PeArea, PriceTable

__all__ = ["COST_FUNCTIONS", "FORMAT_HOOKS", "Folds", "FormatPlan", "KindCost", "engine_slices",
           "format_hook", "gemm_compute_cycles", "gemm_folds", "kind_cost"]

#: The functions every kind's module defines (see the module docstring).
COST_FUNCTIONS: tuple[str, ...] = ("arith_actions", "pe_area")
_SIGNATURES = {
    "arith_actions": "arith_actions(spec, table, tech) -> tuple[ArithAction, ...]",
    "pe_area": "pe_area(spec, table, tech) -> PeArea",
}
_RECIPE = "see docs/adding_an_engine_kind.md"


@dataclass(frozen=True, slots=True)
class KindCost:
    """The cost model of one engine kind: the two functions its module defines."""

    kind: str
    arith_actions: Callable[[Any, PriceTable, float], tuple[ArithAction, ...]]
    pe_area: Callable[[Any, PriceTable, float], PeArea]


def kind_cost(kind: str) -> KindCost:
    """The cost model of engine kind ``kind``: ``arith_actions`` and ``pe_area`` of module
    ``sim.engines.<kind>``.

    Raises :class:`NotImplementedError`, naming the kind and what to add, when the kind has no
    such module or the module does not define both functions.
    """
    module_name = f"{__name__}.{kind}"
    if not kind.isidentifier() or kind == "cost":
        raise NotImplementedError(
            f"engine kind {kind!r} cannot have a cost module in sim.engines (a kind's cost "
            "module is sim/engines/<kind>.py, and 'cost' is the shared pricing module); "
            f"rename the kind ({_RECIPE})")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:
            raise
        raise NotImplementedError(
            f"engine kind {kind!r} has no cost model: add sim/engines/{kind}.py defining "
            f"{' and '.join(_SIGNATURES.values())} ({_RECIPE})") from None
    missing = [f for f in COST_FUNCTIONS if not callable(getattr(module, f, None))]
    if missing:
        need = " and ".join(_SIGNATURES[f] for f in missing)
        raise NotImplementedError(
            f"engine kind {kind!r}: module {module_name} does not define {need}; add "
            f"{'them' if len(missing) > 1 else 'it'} ({_RECIPE})")
    return KindCost(kind=kind, arith_actions=module.arith_actions, pe_area=module.pe_area)


#: Functions a kind's module may define to run number formats its own way, instead of the
#: integer engines' slices and passes of :mod:`sim.execution`:
#:
#: * ``plan_formats(spec, gemm) -> FormatPlan``: the operand widths on the datapath (sliced
#:   as on the integer engines when wider than the engine's ports), which scales the vector
#:   unit applies, the engine configuration that runs the GEMM and what to tell the user;
#:   raises :class:`sim.errors.FormatError` for formats it cannot run;
#: * ``check_formats(spec, a_fmt, w_fmt)``: ``tpe sim gemm``'s ``--a-fmt``/``--w-fmt`` check;
#: * ``auto_scheme(spec) -> QuantScheme``: the ``auto`` scheme (the engine's native formats).
FORMAT_HOOKS: tuple[str, ...] = ("plan_formats", "check_formats", "auto_scheme")


@dataclass(frozen=True, slots=True, kw_only=True)
class FormatPlan:
    """How a kind runs one GEMM's formats (``plan_formats``, :data:`FORMAT_HOOKS`).

    ``a_need_bits`` / ``w_need_bits``: each operand's bits on the datapath (more than the
    engine's port: run in slices, :func:`engine_slices`); ``groups_outside``: the scale group
    along K whose partial sums the vector unit scales (0: none; the engine applies every
    block scale itself), ``sides_outside`` how many operands' scales it applies to each
    (1 or 2: one multiply-add per output and group, plus one multiply for the second scale);
    ``scaled``: the results are converted once per output (any scale or floating-point
    operand); ``engine``: the engine configuration that runs the GEMM when not the built one
    (e.g. one scale group per beat); ``note``: how the engine runs formats it does not take
    as they are (``""`` when it does).
    """

    a_need_bits: int
    w_need_bits: int
    groups_outside: int = 0
    sides_outside: int = 0
    scaled: bool = False
    engine: Any = None
    note: str = ""


def engine_slices(need: int, port_bits: int, signed: bool) -> int:
    """Slices of a ``need``-bit operand on a ``port_bits``-bit port: a signed top slice and
    unsigned ``port_bits - 1``-bit lower ones on a signed engine, ``port_bits``-bit ones on an
    unsigned one (:mod:`sim.execution`)."""
    if need <= port_bits:
        return 1
    if signed and port_bits > 1:
        return 1 + -(-(need - port_bits) // (port_bits - 1))
    return -(-need // port_bits)


@memo(maxsize=256)
def format_hook(kind: str, name: str) -> Callable[..., Any] | None:
    """The format hook ``name`` (:data:`FORMAT_HOOKS`) of kind ``kind``'s module, or None
    (cached: every plan of a GEMM asks, :func:`sim.execution.plan_gemm`)."""
    if name not in FORMAT_HOOKS:
        raise ValueError(f"name must be one of {', '.join(FORMAT_HOOKS)} (got {name!r})")
    try:
        module = importlib.import_module(f"{__name__}.{kind}")
    except ModuleNotFoundError:
        return None
    return getattr(module, name, None)


@dataclass(frozen=True, slots=True)
class Folds:
    """How a GEMM folds onto an engine when the whole stream fits (no buffer tiling)."""

    folds: int
    stream_len: int
    fold_cycles: int
    #: Cycles from one fold's start to the next's (``spec.fold_interval``): ``fold_cycles``
    #: unless the engine overlaps consecutive folds.
    fold_interval: int

    @property
    def cycles(self) -> int:
        """Folds back to back: every fold but the last takes its interval, the last its whole
        ``fold_cycles`` (``folds * fold_cycles`` without overlap)."""
        return (self.folds - 1) * self.fold_interval + self.fold_cycles


def gemm_folds(spec: EngineSpec, M: int, N: int, K: int) -> Folds:
    """Folds of an untiled GEMM (every operand resident, as with ``--memory ideal``)."""
    for name, v in (("M", M), ("N", N), ("K", K)):
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v!r}")
    u = spec.unrolling()
    stream = u.stream_len(M, N, K)
    return Folds(folds=u.folds(M, N, K), stream_len=stream, fold_cycles=spec.fold_cycles(stream),
                 fold_interval=spec.fold_interval(stream))


def gemm_compute_cycles(spec: EngineSpec, M: int, N: int, K: int) -> int:
    """Cycles of an untiled GEMM on the engine alone (operands on chip, folds back to back)."""
    return gemm_folds(spec, M, N, K).cycles
