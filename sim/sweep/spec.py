"""Sweep specs: the TOML file that ``tpe sweep`` runs, validated into a :class:`SweepSpec`,
and its design points (the grid, point ids).

**The spec** (a TOML file; every key is checked up front, errors name the key)::

    [sweep]
    name = "demo"                 # default: the file's stem
    base = "systolic"             # preset name or architecture TOML (relative to this file)
    strategy = "grid"             # grid | random | nsga2
    samples = 200                 # random: distinct grid points drawn; nsga2: trials
    seed = 0
    objectives = ["tokens_per_s:max", "energy_per_token_pj:min", "area_mm2:min"]  # nsga2
    chunk = 16                    # points per task (default: automatic)

    [axes]                        # architecture fields (``--set`` keys) -> values
    "engine.rows" = [16, 32, 64]
    "engine.cols" = {start = 16, stop = 64, step = 16}     # inclusive: 16, 32, 48, 64
    "a_buffer.capacity_bytes" = {start = 32768, stop = 262144, factor = 2}
    "dram.bandwidth_gb_per_s" = {values = [12.8, 25.6]}
    # base = ["systolic", "lut"]  # an axis over presets / TOMLs (instead of sweep.base)

    [axes.systolic]               # with a base axis: axes of that base only
    "engine.rows" = [16, 32]
    [axes.lut]
    "engine.group" = [2, 4]

    [workload]                    # every combination that can run, on every design point
    models = ["llama-2-7b"]       # zoo names or config.json paths
    phases = ["prefill", "decode"]
    batch = [1]
    seq = [512]
    quant = ["auto"]              # "auto": the engine's own integer widths, or a scheme name

Axis keys may also be written as nested tables (``[axes.engine] rows = [...]``). With a
``base`` axis, a table named after one of its bases (``[axes.<base>]``) holds axes of that base
alone: the grid is then, base by base, the product of the axes every base takes and the base's
own, and a point of another base has no value (null) in those columns; so one sweep compares
engine kinds, each at its own sizes. A base may itself be an architecture file on a base
(``base = "systolic"`` plus the fields it changes: :func:`hw.spec.merge_base`). Every value
of every axis is validated against every base architecture before anything runs, so an
unknown key, an empty range or a value of the wrong type stops the sweep with one line
naming ``axes.<key>``. Combinations that are individually valid but not together (a mapping
that does not fit, a format the engine cannot take) become rows whose ``error`` says why.
The workloads are the product of the ``[workload]`` lists, less the combinations of a parallel
plan that cannot run (an ``ep`` other than the ``tp``, ``microbatches`` that do not divide the
``batch``, ``sp`` or ``overlap`` without tensor parallelism); a listed value that runs in no
workload stops the sweep naming ``workload.<key>``, since it would change nothing.

**Design points** are the grid (the product of the axes, the last axis varying fastest), a
``random`` sample of it (distinct points, ``np.random.default_rng(seed)``) or the trials of an
``nsga2`` search (optuna's NSGA-II over the axes as categorical parameters, minimising or
maximising the ``objectives``, each the geometric mean over the workloads). A point's id is a
hash of its axis values. The sample and the search are drawn when the sweep runs
(:mod:`sim.sweep.run`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hw.spec import (
    SpecError,
    apply_overrides,
    arch_from_dict,
    load_arch_dict,
    read_toml,
    unread_by_gpu_model,
)
from models import ModelError
from models.llm import load_model, lower
from models.parallel import ParallelPlan, lower_parallel
from models.quant import get_scheme

Strategy = Literal["grid", "random", "nsga2"]
STRATEGIES: tuple[str, ...] = ("grid", "random", "nsga2")
PHASES: tuple[str, ...] = ("prefill", "decode")

#: Metrics a sweep records per row and whether more (``max``) or less (``min``) is better.
METRICS: dict[str, str] = {
    "tokens_per_s": "max",
    "energy_per_token_pj": "min",
    "area_mm2": "min",
    "seconds": "min",
    "edp_pj_s": "min",
    "energy_pj": "min",
    "utilization": "max",
}
#: Metric columns of the results table (name -> Arrow type name).
METRIC_COLUMNS: dict[str, str] = {
    "seconds": "float64",            # the pass: time to first token (prefill), per token (decode)
    "tokens_per_s": "float64",
    "energy_pj": "float64",
    "energy_per_token_pj": "float64",
    "edp_pj_s": "float64",           # energy_pj * seconds of the pass
    "area_mm2": "float64",
    "utilization": "float64",
    "cycles": "int64",
    "stall_cycles": "int64",
    "dram_bytes": "float64",
}
#: What each metric column means.
METRIC_MEANINGS: dict[str, str] = {
    "seconds": "the pass: time to first token (prefill) or per output token (decode), s",
    "tokens_per_s": "tokens per second of the pass (prompt tokens for prefill, generated "
                    "tokens for decode)",
    "energy_pj": "energy of the pass, pJ",
    "energy_per_token_pj": "energy per token of the pass, pJ",
    "edp_pj_s": "energy x delay of the pass, pJ s",
    "area_mm2": "the architecture's area, mm^2",
    "utilization": "engine MACs over the cycles times the peak of all cores",
    "cycles": "cycles of the pass",
    "stall_cycles": "cycles waiting for memory",
    "dram_bytes": "bytes moved to and from the last memory level",
}
#: The workload columns of the results table (the last four: the parallel plan of a pass on
#: several devices, all 1 for one device).
WORKLOAD_COLUMNS = ("model", "phase", "batch", "seq", "quant", "tp", "pp", "ep",
                    "microbatches", "sp", "overlap")
#: The parallel plan's integer columns and [workload] keys, and its true/false ones.
PLAN_KEYS = ("tp", "pp", "ep", "microbatches")
PLAN_FLAGS = ("sp", "overlap")
#: Columns of the results table other than the axes (no axis may take one of these names).
RESERVED = {"point_id", *WORKLOAD_COLUMNS, "arch", "engine", "error", *METRIC_COLUMNS}
_DEFAULT_OBJECTIVES = ("tokens_per_s:max", "energy_per_token_pj:min", "area_mm2:min")
#: The keys of ``[sweep]`` and what each means (the reference's words too).
SWEEP_KEYS: dict[str, str] = {
    "name": "the sweep's name (default: the spec file's stem)",
    "base": "the preset or architecture file every point starts from (relative to the spec); "
            "default systolic; or instead an axes.base axis",
    "strategy": "grid (every point), random (a sample of the grid) or nsga2 (optuna's NSGA-II "
                "over the objectives); default grid",
    "samples": "random: distinct grid points drawn (at most the grid's points); nsga2: trials "
               "(required by both)",
    "seed": "the random sample's and the search's seed (integer >= 0, default 0)",
    "objectives": "nsga2: the metrics searched, `metric:max` or `metric:min` (default "
                  "tokens_per_s:max, energy_per_token_pj:min, area_mm2:min)",
    "chunk": "design points per task (default: automatic); --chunk overrides it",
}
#: The keys of ``[workload]``: every combination runs on every design point.
WORKLOAD_KEYS: dict[str, str] = {
    "models": "zoo names or HF-style config.json paths (relative to the spec); required",
    "phases": "prefill, decode or both (default both)",
    "batch": "sequences per pass, positive integers (default [1])",
    "seq": "prompt tokens (prefill) or cached tokens (decode), positive integers (default "
           "[512])",
    "quant": "quantization schemes, or auto: the engine's own integer widths, bf16 on a "
             "GPU preset (default [\"auto\"])",
    "tp": "tensor-parallel devices per pipeline stage (default [1]; several devices need the "
          "base's [interconnect])",
    "pp": "pipeline stages (default [1])",
    "ep": "expert parallelism, 1 or a workload's tp (default [1]; a combination with another "
          "tp, or an ep above 1 on a model without experts, is left out)",
    "microbatches": "micro-batches through the pipeline, each dividing the batch (default [1]; "
                    "a combination with a batch it does not divide is left out)",
    "sp": "sequence parallelism, true or false (default [false]; left out where tp is 1)",
    "overlap": "collectives overlap the operators producing their data, true or false "
               "(default [false]; left out where tp is 1: the pipeline's sends between "
               "stages are not overlapped)",
}
_SWEEP_KEYS = tuple(SWEEP_KEYS)
_WORKLOAD_KEYS = tuple(WORKLOAD_KEYS)
_RANGE_KEYS = frozenset({"values", "start", "stop", "step", "factor"})


# -- the spec ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Axis:
    """One swept field: ``key`` is an architecture override key (``engine.rows``) or
    ``base`` (the preset / TOML each point starts from); ``values`` in sweep order."""

    key: str
    values: tuple[bool | int | float | str, ...]


@dataclass(frozen=True, kw_only=True)
class Workload:
    """One pass of one model: every design point runs every workload of the spec."""

    model: str
    phase: Literal["prefill", "decode"]
    batch: int
    seq: int
    quant: str
    tp: int = 1
    pp: int = 1
    ep: int = 1
    microbatches: int = 1
    sp: bool = False
    overlap: bool = False

    @property
    def devices(self) -> int:
        return self.tp * self.pp

    @property
    def several(self) -> bool:
        """Whether the pass runs under a parallel plan (``models.parallel``)."""
        return (self.tp, self.pp, self.ep, self.microbatches, self.sp, self.overlap) != (
            1, 1, 1, 1, False, False)

    @property
    def key(self) -> str:
        plan = (f"/tp{self.tp}/pp{self.pp}/ep{self.ep}/mb{self.microbatches}"
                + ("/sp" if self.sp else "") + ("/overlap" if self.overlap else "")
                if self.several else "")
        return f"{self.model}/{self.phase}/b{self.batch}/s{self.seq}/{self.quant}{plan}"


@dataclass(frozen=True, kw_only=True)
class SweepSpec:
    """A validated sweep spec (see the module doc). ``bases`` maps each base name as
    written to what :func:`hw.spec.load_arch_dict` loads (paths resolved against the spec's
    folder); ``models`` likewise for model names."""

    name: str
    axes: tuple[Axis, ...]
    workloads: tuple[Workload, ...]
    strategy: Strategy
    samples: int | None
    seed: int
    objectives: tuple[tuple[str, str], ...]
    chunk: int | None
    base: str | None
    bases: Mapping[str, str]
    models: Mapping[str, str]
    fingerprint: str
    #: Axes that apply to one base only (``[axes.<base>]``), by base; their keys are in
    #: ``axes`` too (one column each, the union of the bases' values), and a point of another
    #: base has ``None`` there.
    per_base: Mapping[str, tuple[Axis, ...]] = dataclasses.field(default_factory=dict)

    @property
    def shared(self) -> tuple[Axis, ...]:
        """The axes every base's points take (``base`` itself excluded)."""
        own = {a.key for axes in self.per_base.values() for a in axes}
        return tuple(a for a in self.axes if a.key != "base" and a.key not in own)

    def base_names(self) -> tuple[str, ...]:
        """The bases in sweep order."""
        for axis in self.axes:
            if axis.key == "base":
                return tuple(str(v) for v in axis.values)
        assert self.base is not None
        return (self.base,)

    def base_of(self, values: Sequence[Any]) -> str:
        for axis, v in zip(self.axes, values, strict=True):
            if axis.key == "base":
                return str(v)
        assert self.base is not None
        return self.base


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep spec file; :class:`SpecError` (one line, naming the key)."""
    path = Path(path)
    if path.suffix != ".toml" and not path.exists():
        raise SpecError(f"SPEC: expected a sweep spec .toml file (got {str(path)!r})")
    raw = read_toml(path)
    return parse_sweep(raw, root=path.parent, default_name=path.stem)


def _err(key: str, msg: str) -> SpecError:
    return SpecError(f"{key}: {msg}")


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _table(raw: Mapping[str, Any], key: str, allowed: Sequence[str] | None) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise _err(key, f"must be a table, got {type(value).__name__}")
    if allowed is not None:
        for k in value:
            if k not in allowed:
                raise _err(f"{key}.{k}", f"unknown key; known: {', '.join(allowed)}")
    return value


def parse_sweep(raw: Mapping[str, Any], *, root: Path = Path("."),
                default_name: str = "sweep") -> SweepSpec:
    """Validate a sweep spec mapping (the parsed TOML); see :func:`load_sweep`."""
    for k in raw:
        if k not in ("sweep", "axes", "workload"):
            raise _err(k, "unknown table; a sweep spec has [sweep], [axes] and [workload]")
    sweep = _table(raw, "sweep", _SWEEP_KEYS)
    name = sweep.get("name", default_name)
    if not isinstance(name, str) or not name.strip():
        raise _err("sweep.name", f"must be a non-empty string (got {name!r})")
    strategy = sweep.get("strategy", "grid")
    if strategy not in STRATEGIES:
        raise _err("sweep.strategy", f"must be one of {', '.join(STRATEGIES)} (got {strategy!r})")
    samples = sweep.get("samples")
    if strategy == "grid":
        if samples is not None:
            raise _err("sweep.samples", "only for strategy random or nsga2 (a grid runs every "
                       "point)")
    elif not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise _err("sweep.samples", f"strategy {strategy} needs a positive integer "
                   f"(got {samples!r})")
    seed = sweep.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise _err("sweep.seed", f"must be an integer >= 0 (got {seed!r})")
    chunk = sweep.get("chunk")
    if chunk is not None and (not isinstance(chunk, int) or isinstance(chunk, bool)
                              or chunk < 1):
        raise _err("sweep.chunk", f"must be a positive integer (got {chunk!r})")
    objectives = _objectives(sweep.get("objectives", list(_DEFAULT_OBJECTIVES)))

    axes_raw = dict(_table(raw, "axes", None))
    listed = axes_raw.get("base")
    own_raw = {}  # [axes.<base>] tables: axes of one base only
    if isinstance(listed, list):
        for b in listed:
            if isinstance(b, str) and isinstance(axes_raw.get(b), dict) and not (
                    _RANGE_KEYS & axes_raw[b].keys()):
                own_raw[b] = axes_raw.pop(b)
    axes = tuple(_parse_axis(k, v) for k, v in _flatten_axes(axes_raw))
    per_base = {b: tuple(_parse_axis(k, v, f"axes.{b}.") for k, v in _flatten_axes(t))
                for b, t in own_raw.items()}
    for prefix, listed_axes in (("axes.", axes), *((f"axes.{b}.", own)
                                                  for b, own in per_base.items())):
        keys = [a.key for a in listed_axes]
        twice = next((k for k in keys if keys.count(k) > 1), None)
        if twice is not None:
            raise _err(f"{prefix}{twice}", "given twice (as a dotted key and as a table?); "
                       "give each axis once")
    for b, own in per_base.items():
        if not own:
            raise _err(f"axes.{b}", "empty; give the axes of this base, e.g. "
                       '"engine.rows" = [16, 32]')
        for a in own:
            if a.key == "base" or any(x.key == a.key for x in axes):
                raise _err(f"axes.{b}.{a.key}", "also an axis of every base; give it in one "
                           "place")
    if not axes:
        raise _err("axes", "no axes; name at least one field to sweep, e.g. "
                   '"engine.rows" = [16, 32]')
    base_axis = next((a for a in axes if a.key == "base"), None)
    base = sweep.get("base")
    if base is not None and base_axis is not None:
        raise _err("sweep.base", "give either sweep.base or an axes.base axis, not both")
    if base_axis is None:
        base = "systolic" if base is None else base
        if not isinstance(base, str) or not base:
            raise _err("sweep.base", f"must be a preset name or a TOML path (got {base!r})")
        names: tuple[str, ...] = (base,)
    else:
        names = tuple(str(v) for v in base_axis.values)
        if not all(isinstance(v, str) for v in base_axis.values):
            raise _err("axes.base", "values must be preset names or TOML paths (strings)")
    where = "sweep.base" if base_axis is None else "axes.base"
    bases = {n: _resolve(n, root, ".toml") for n in names}
    base_dicts = {}
    for n, resolved in bases.items():
        try:
            base_dicts[n] = load_arch_dict(resolved)
            arch_from_dict(base_dicts[n])
        except SpecError as err:
            raise _err(where, f"{n}: {_strip_flag(str(err))}") from None
    for axis in axes:
        if axis.key != "base":
            _check_axis(axis, base_dicts)
    for b, own in per_base.items():
        for axis in own:
            _check_axis(axis, {b: base_dicts[b]}, f"axes.{b}.")
    axes = (*axes, *_union(per_base))

    workloads, models = _workloads(_table(raw, "workload", _WORKLOAD_KEYS), root)
    if not any(w.devices > 1 for w in workloads):
        for axis in axes:
            if axis.key.split(".")[0] == "interconnect":
                raise _err(f"axes.{axis.key}", "the interconnect joins several devices and "
                           "every workload runs on one; add [workload] tp or pp values > 1")
    fingerprint = _fingerprint({
        "axes": [[a.key, list(a.values)] for a in axes],
        **({"per_base": {b: [[a.key, list(a.values)] for a in own]
                         for b, own in per_base.items()}} if per_base else {}),
        "base": base,
        "bases": {n: base_dicts[n] for n in sorted(base_dicts)},
        "workloads": [w.key for w in workloads],
        "models": {m: repr(load_model(p)) for m, p in sorted(models.items())},
        "strategy": strategy, "samples": samples, "seed": seed,
        "objectives": [list(o) for o in objectives] if strategy == "nsga2" else None,
    })
    spec = SweepSpec(name=name, axes=axes, workloads=workloads, strategy=strategy,
                     samples=samples, seed=seed, objectives=objectives, chunk=chunk,
                     base=base if base_axis is None else None, bases=bases, models=models,
                     fingerprint=fingerprint, per_base=per_base)
    if strategy == "random" and samples is not None and samples > grid_size(spec):
        # (a sample draws distinct points: it would run the whole grid, not `samples`)
        raise _err("sweep.samples", f"{samples:,} distinct points drawn from a grid of "
                   f"{grid_size(spec):,}; use at most {grid_size(spec):,}, or strategy grid")
    return spec


def _union(per_base: Mapping[str, tuple[Axis, ...]]) -> tuple[Axis, ...]:
    """One axis per key of the per-base axes: the values of every base that has it (the
    results' column of that key)."""
    values: dict[str, list[Any]] = {}
    for own in per_base.values():
        for a in own:
            seen = values.setdefault(a.key, [])
            seen += [v for v in a.values if not any(type(v) is type(x) and v == x for x in seen)]
    return tuple(Axis(key=k, values=tuple(v)) for k, v in values.items())


def _strip_flag(text: str) -> str:
    return text.removeprefix("--arch: ")


def _resolve(name: str, root: Path, suffix: str) -> str:
    """A path written in the spec is relative to the spec's folder; a name stays a name."""
    if name.endswith(suffix) or "/" in name:
        path = Path(name)
        return str(path if path.is_absolute() else root / path)
    return name


def _fingerprint(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _objectives(raw: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, list) or not raw:
        raise _err("sweep.objectives", f"must be a non-empty list like {list(_DEFAULT_OBJECTIVES)}"
                   f" (got {raw!r})")
    out = []
    for item in raw:
        if not isinstance(item, str):
            raise _err("sweep.objectives", f"entries are 'metric:max|min' strings (got {item!r})")
        metric, _, direction = item.partition(":")
        if metric not in METRICS:
            raise _err("sweep.objectives", f"unknown metric {metric!r}; known: "
                       f"{', '.join(METRICS)}")
        direction = direction or METRICS[metric]
        if direction not in ("max", "min"):
            raise _err("sweep.objectives", f"{item!r}: direction must be max or min")
        out.append((metric, direction))
    if len({m for m, _ in out}) != len(out):
        raise _err("sweep.objectives", "a metric appears twice")
    return tuple(out)


def _flatten_axes(table: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in table.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and not (_RANGE_KEYS & v.keys()):
            yield from _flatten_axes(v, key + ".")
        else:
            yield key, v


def _parse_axis(key: str, raw: Any, prefix: str = "axes.") -> Axis:
    where = f"{prefix}{key}"
    if key in RESERVED:
        raise _err(where, f"{key!r} is a column of the results; not an architecture field")
    if isinstance(raw, list):
        values = list(raw)
    elif isinstance(raw, dict):
        values = _range(where, raw)
    else:
        raise _err(where, "expected a list of values, {values = [...]} or "
                   f"{{start, stop, step|factor}} (got {type(raw).__name__} {raw!r})")
    if not values:
        raise _err(where, "empty; give at least one value")
    for v in values:
        if not isinstance(v, (bool, int, float, str)):
            raise _err(where, f"values must be numbers, booleans or strings (got "
                       f"{type(v).__name__} {v!r})")
    kinds = {"str" if isinstance(v, str) else "bool" if isinstance(v, bool) else "number"
             for v in values}
    if len(kinds) > 1:
        raise _err(where, f"values mix {' and '.join(sorted(kinds))}; use one type")
    seen: set[Any] = set()
    for v in values:
        marker = (type(v) is bool, v)
        if marker in seen:
            raise _err(where, f"value {v!r} appears twice")
        seen.add(marker)
    return Axis(key=key, values=tuple(values))


def _range(where: str, raw: Mapping[str, Any]) -> list[Any]:
    unknown = sorted(set(raw) - _RANGE_KEYS)
    if unknown:
        raise _err(f"{where}.{unknown[0]}", "unknown key; a range has values, or start, stop "
                   "and step or factor")
    if "values" in raw:
        if len(raw) > 1:
            raise _err(where, "give either values or start/stop/step|factor, not both")
        if not isinstance(raw["values"], list):
            raise _err(f"{where}.values", f"must be a list (got {raw['values']!r})")
        return list(raw["values"])
    for k in ("start", "stop"):
        if k not in raw:
            raise _err(f"{where}.{k}", "required by a range")
        if not _is_number(raw[k]):
            raise _err(f"{where}.{k}", f"must be a number (got {raw[k]!r})")
    if ("step" in raw) == ("factor" in raw):
        raise _err(where, "a range needs exactly one of step or factor")
    start, stop = raw["start"], raw["stop"]
    ints = isinstance(start, int) and isinstance(stop, int)
    if "step" in raw:
        step = raw["step"]
        if not _is_number(step) or step <= 0:
            raise _err(f"{where}.step", f"must be a number > 0 (got {step!r})")
        if stop < start:
            return []
        n = math.floor((stop - start) / step + 1e-9) + 1
        if ints and isinstance(step, int):
            return [start + i * step for i in range(n)]
        return [round(start + i * step, 12) for i in range(n)]
    factor = raw["factor"]
    if not _is_number(factor) or factor <= 1:
        raise _err(f"{where}.factor", f"must be a number > 1 (got {factor!r})")
    if start <= 0:
        raise _err(f"{where}.start", f"must be > 0 with a factor (got {start!r})")
    out: list[Any] = []
    v: float = start
    while v <= stop * (1 + 1e-12):
        out.append(v if ints and isinstance(factor, int) else round(v, 12))
        v = v * factor
    return out


def override(key: str, value: Any) -> str:
    """The ``--set`` override that gives architecture field ``key`` the axis value ``value``."""
    return f"{key}={json.dumps(value)}"


def _check_axis(axis: Axis, base_dicts: Mapping[str, dict[str, Any]], prefix: str = "axes."
                ) -> None:
    """Every value of ``axis`` on every base (the other fields at the base's values), and its
    field one a GPU base's kernel model reads (as ``--set`` requires:
    :func:`hw.spec.unread_by_gpu_model`)."""
    for name, data in base_dicts.items():
        extra = f" (base {name!r})" if len(base_dicts) > 1 else ""
        for v in axis.values:
            try:
                spec = arch_from_dict(apply_overrides(data, [override(axis.key, v)]))
            except SpecError as err:
                text = str(err)
                text = text.removeprefix(f"{axis.key}: ")
                raise _err(f"{prefix}{axis.key}", f"{text}{extra}") from None
            if (why := unread_by_gpu_model(data, spec, axis.key)) is not None:
                raise _err(f"{prefix}{axis.key}", f"{why}{extra}")


def _workloads(table: Mapping[str, Any], root: Path
               ) -> tuple[tuple[Workload, ...], dict[str, str]]:
    def listed(key: str, default: list[Any] | None) -> list[Any]:
        v = table.get(key, default)
        if v is None:
            raise _err(f"workload.{key}", "required")
        v = v if isinstance(v, list) else [v]
        if not v:
            raise _err(f"workload.{key}", "empty; give at least one value")
        return v

    models = listed("models", None)
    phases = listed("phases", list(PHASES))
    batches = listed("batch", [1])
    seqs = listed("seq", [512])
    quants = listed("quant", ["auto"])
    plans = {k: listed(k, [1]) for k in PLAN_KEYS}
    flags = {k: listed(k, [False]) for k in PLAN_FLAGS}
    for key, vals in flags.items():
        for v in vals:
            if not isinstance(v, bool):
                raise _err(f"workload.{key}", f"must be true or false (got {v!r})")
    resolved: dict[str, str] = {}
    for m in models:
        if not isinstance(m, str):
            raise _err("workload.models", f"entries are zoo names or config.json paths (got {m!r})")
        resolved[m] = _resolve(m, root, ".json")
        try:
            load_model(resolved[m])
        except ModelError as err:
            raise _err("workload.models", str(err).removeprefix("model: ")) from None
    for p in phases:
        if p not in PHASES:
            raise _err("workload.phases", f"must be prefill or decode (got {p!r})")
    for key, vals in (("batch", batches), ("seq", seqs), *plans.items()):
        for v in vals:
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise _err(f"workload.{key}", f"must be positive integers (got {v!r})")
    for q in quants:
        if not isinstance(q, str):
            raise _err("workload.quant", f"entries are scheme names (got {q!r})")
        if q != "auto":
            try:
                get_scheme(q)
            except ModelError as err:
                raise _err("workload.quant", str(err).removeprefix("--quant: ")) from None
    out = []
    skipped: dict[str, Any] = {}
    combos = itertools.product(models, phases, batches, seqs, quants, plans["tp"],
                               plans["pp"], plans["ep"], plans["microbatches"], flags["sp"],
                               flags["overlap"])
    for m, p, b, s, q, tp, pp, ep, mb, sp, overlap in combos:
        cfg = load_model(resolved[m])
        # a combination that cannot run is left out (the first key that rules it out kept, to
        # name where nothing runs)
        if ep != 1 and (ep != tp or cfg.moe is None):  # spans a stage's tensor parallelism
            skipped.setdefault("ep", ep)
            continue
        if b % mb:  # micro-batches of whole sequences only
            skipped.setdefault("microbatches", mb)
            continue
        # nothing to split or overlap: sequence parallelism and the overlap act on the
        # tensor-parallel collectives (the pipeline's sends between stages are not overlapped)
        if (sp or overlap) and tp == 1:
            skipped.setdefault("sp" if sp else "overlap", True)
            continue
        try:
            lower(cfg, phase=p, batch=b, seq=s, quant="fp16")
        except ModelError as err:
            raise _err("workload.seq" if "seq" in str(err) else "workload",
                       f"{m} {p} batch {b} seq {s}: {err}") from None
        w = Workload(model=m, phase=p, batch=b, seq=s, quant=q, tp=tp, pp=pp, ep=ep,
                     microbatches=mb, sp=sp, overlap=overlap)
        if w.several:
            try:
                lower_parallel(cfg, ParallelPlan(tp=tp, pp=pp, ep=ep, microbatches=mb, sp=sp),
                               phase=p, batch=b, seq=s, quant="fp16")
            except ModelError as err:
                field, _, why = str(err).partition(": ")
                if field in PLAN_KEYS:  # the key is named once, first
                    raise _err(f"workload.{field}", f"{m} {p} batch {b}: {why}") from None
                raise _err("workload", f"{m} {p} batch {b}: {err}") from None
        out.append(w)
    if len({w.key for w in out}) != len(out):
        raise _err("workload", "a workload appears twice (repeated list entries)")
    # a value that no combination runs would be ignored, so it is refused
    experts = any(load_model(resolved[m]).moe is not None for m in models)
    several_tp = any(tp > 1 for tp in plans["tp"])

    def why_left_out(key: str, v: Any) -> str:
        """Why no combination runs ``v`` of ``key``: its own rule where no other list could
        have met it, else the other keys' rules."""
        if key == "ep" and not (experts and v in plans["tp"]):
            return "an ep above 1 needs a model with experts and a tp equal to it"
        if key == "microbatches" and all(b % v for b in batches):
            return f"it divides none of the batches {batches}"
        if key == "sp" and not several_tp:
            return "sequence parallelism needs a tp above 1"
        if key == "overlap" and not several_tp:
            return "the overlap acts on the tensor-parallel collectives: it needs a tp above 1"
        return "every combination with it is left out by another key's rule"

    for key in ("ep", "microbatches", "sp", "overlap"):
        vals = plans[key] if key in plans else flags[key]
        ran = {getattr(w, key) for w in out}
        for v in vals:
            if v not in ran and (out or skipped.get(key) == v):
                shown = str(v).lower() if isinstance(v, bool) else v
                raise _err(f"workload.{key}", f"{shown} runs in no workload "
                           f"({why_left_out(key, v)}); drop it or add what it needs")
    return tuple(out), resolved


# -- design points --------------------------------------------------------------------------


def grid_size(spec: SweepSpec) -> int:
    """Points of the full grid: the product of the axes' lengths, or with per-base axes the
    sum over the bases of the product of their axes' (every base's and its own)."""
    if not spec.per_base:
        return math.prod(len(a.values) for a in spec.axes)
    return sum(math.prod(len(a.values) for a in axes) for _, axes in _blocks(spec))


def _blocks(spec: SweepSpec) -> list[tuple[str, tuple[Axis, ...]]]:
    """With per-base axes, the grid in one block per base (in sweep order): its axes, the
    shared ones then its own."""
    shared = spec.shared
    return [(b, (*shared, *spec.per_base.get(b, ()))) for b in spec.base_names()]


def point_values(spec: SweepSpec, index: int) -> tuple[Any, ...]:
    """The axis values of grid point ``index`` (the last axis varies fastest; with per-base
    axes, base by base, ``None`` for the axes of the other bases)."""
    if not spec.per_base:
        return _radix(spec.axes, int(index))
    rest = int(index)
    for base, axes in _blocks(spec):
        size = math.prod(len(a.values) for a in axes)
        if rest < size:
            given = {"base": base, **dict(zip((a.key for a in axes), _radix(axes, rest),
                                              strict=True))}
            return tuple(given.get(a.key) for a in spec.axes)
        rest -= size
    raise IndexError(f"grid point {index}: the grid has {grid_size(spec)} points")


def _radix(axes: Sequence[Axis], index: int) -> tuple[Any, ...]:
    out = []
    for axis in reversed(axes):
        index, r = divmod(index, len(axis.values))
        out.append(axis.values[r])
    return tuple(reversed(out))


def trial_values(spec: SweepSpec, suggest: Callable[[str, list[Any]], Any]) -> tuple[Any, ...]:
    """A point chosen axis by axis by ``suggest(name, choices)`` (a search's trial): the base
    first, then the axes of every base, then the chosen base's own (each named
    ``key@base``, a parameter of its own for the search), ``None`` for the other bases'."""
    if not spec.per_base:
        return tuple(suggest(a.key, list(a.values)) for a in spec.axes)
    base = suggest("base", list(spec.base_names()))
    given: dict[str, Any] = {"base": base}
    given |= {a.key: suggest(a.key, list(a.values)) for a in spec.shared}
    given |= {a.key: suggest(f"{a.key}@{base}", list(a.values))
              for a in spec.per_base.get(base, ())}
    return tuple(given.get(a.key) for a in spec.axes)


def point_id(spec: SweepSpec, values: Sequence[Any]) -> str:
    """A stable id of a design point: a hash of its axis names and values."""
    text = json.dumps([[a.key, v] for a, v in zip(spec.axes, values, strict=True)])
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
