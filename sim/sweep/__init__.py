"""Design-space sweeps (``tpe sweep``): many architectures x many LLM workloads -> a Parquet
table, Pareto fronts and a report.

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

    [workload]                    # every combination is run on every design point
    models = ["llama-2-7b"]       # zoo names or config.json paths
    phases = ["prefill", "decode"]
    batch = [1]
    seq = [512]
    quant = ["auto"]              # "auto": the engine's own integer widths, or a scheme name

Axis keys may also be written as nested tables (``[axes.engine] rows = [...]``). Every value
of every axis is validated against every base architecture before anything runs, so an
unknown key, an empty range or a value of the wrong type stops the sweep with one line
naming ``axes.<key>``. Combinations that are individually valid but not together (a mapping
that does not fit, a format the engine cannot take) become rows whose ``error`` says why.

**Design points** are the grid (the product of the axes, the last axis varying fastest), a
``random`` sample of it (distinct points, ``np.random.default_rng(seed)``) or the trials of an
``nsga2`` search (optuna's NSGA-II over the axes as categorical parameters, minimising or
maximising the ``objectives``, each the geometric mean over the workloads). A point's id is a
hash of its axis values.

**Results** are a Parquet dataset directory (``results.parquet/``) with one row per design
point x workload: ``point_id``, every axis, the workload (``model``, ``phase``, ``batch``,
``seq``, ``quant``), the metrics of :data:`METRIC_COLUMNS` and ``error``. The parent process
alone writes it: finished chunks are buffered and written about once a second as
``part-NNNNNN.parquet``, each first as a hidden ``.part-NNNNNN.parquet.tmp`` then renamed
(``os.replace``, atomic), so a killed sweep leaves only whole parts, and a part always holds
every workload row of its points. ``--resume`` reads the point ids of the parts, skips those
points, and appends new parts; ``_sweep.json`` holds the spec's fingerprint so that a
different spec cannot resume into the same directory.

**Backends**: local worker processes (``multiprocessing.Pool``) or a Ray cluster
(``ray.util.multiprocessing.Pool``, the same interface): the same code path sends chunks of
points to ``_evaluate_chunk`` in the workers and writes what comes back.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

import numpy as np

from hw.spec import SpecError, apply_overrides, arch_from_dict, load_arch_dict, read_toml
from mapping import MappingError
from models import ModelError
from models.llm import load_model, lower
from models.quant import get_scheme

__all__ = [
    "METRICS",
    "METRIC_COLUMNS",
    "Axis",
    "SweepSpec",
    "SweepSummary",
    "Workload",
    "grid_size",
    "load_sweep",
    "pareto_mask",
    "parse_sweep",
    "plot_front",
    "point_id",
    "point_values",
    "read_results",
    "run_sweep",
    "write_report",
]

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
_WORKLOAD_COLUMNS = ("model", "phase", "batch", "seq", "quant")
_RESERVED = {"point_id", *_WORKLOAD_COLUMNS, "arch", "engine", "error", *METRIC_COLUMNS}
_DEFAULT_OBJECTIVES = ("tokens_per_s:max", "energy_per_token_pj:min", "area_mm2:min")
_SWEEP_KEYS = ("name", "base", "strategy", "samples", "seed", "objectives", "chunk")
_WORKLOAD_KEYS = ("models", "phases", "batch", "seq", "quant")
_RANGE_KEYS = frozenset({"values", "start", "stop", "step", "factor"})
MANIFEST = "_sweep.json"
_PART_GLOB = "part-*.parquet"
#: Seconds between writes of finished chunks (a killed sweep loses at most this much work).
FLUSH_SECONDS = 1.0


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

    @property
    def key(self) -> str:
        return f"{self.model}/{self.phase}/b{self.batch}/s{self.seq}/{self.quant}"


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

    axes_raw = _table(raw, "axes", None)
    axes = tuple(_parse_axis(k, v) for k, v in _flatten_axes(axes_raw))
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

    workloads, models = _workloads(_table(raw, "workload", _WORKLOAD_KEYS), root)
    fingerprint = _fingerprint({
        "axes": [[a.key, list(a.values)] for a in axes],
        "base": base,
        "bases": {n: base_dicts[n] for n in sorted(base_dicts)},
        "workloads": [w.key for w in workloads],
        "models": {m: repr(load_model(p)) for m, p in sorted(models.items())},
        "strategy": strategy, "samples": samples, "seed": seed,
        "objectives": [list(o) for o in objectives] if strategy == "nsga2" else None,
    })
    return SweepSpec(name=name, axes=axes, workloads=workloads, strategy=strategy,
                     samples=samples, seed=seed, objectives=objectives, chunk=chunk,
                     base=base if base_axis is None else None, bases=bases, models=models,
                     fingerprint=fingerprint)


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


def _parse_axis(key: str, raw: Any) -> Axis:
    where = f"axes.{key}"
    if key in _RESERVED:
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


def _override(key: str, value: Any) -> str:
    return f"{key}={json.dumps(value)}"


def _check_axis(axis: Axis, base_dicts: Mapping[str, dict[str, Any]]) -> None:
    """Every value of ``axis`` on every base (the other fields at the base's values)."""
    for name, data in base_dicts.items():
        for v in axis.values:
            try:
                arch_from_dict(apply_overrides(data, [_override(axis.key, v)]))
            except SpecError as err:
                text = str(err)
                text = text.removeprefix(f"{axis.key}: ")
                extra = f" (base {name!r})" if len(base_dicts) > 1 else ""
                raise _err(f"axes.{axis.key}", f"{text}{extra}") from None


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
    for key, vals in (("batch", batches), ("seq", seqs)):
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
    for m, p, b, s, q in itertools.product(models, phases, batches, seqs, quants):
        try:
            lower(load_model(resolved[m]), phase=p, batch=b, seq=s, quant="fp16")
        except ModelError as err:
            raise _err("workload.seq" if "seq" in str(err) else "workload",
                       f"{m} {p} batch {b} seq {s}: {err}") from None
        out.append(Workload(model=m, phase=p, batch=b, seq=s, quant=q))
    if len({w.key for w in out}) != len(out):
        raise _err("workload", "a workload appears twice (repeated list entries)")
    return tuple(out), resolved


# -- design points --------------------------------------------------------------------------


def grid_size(spec: SweepSpec) -> int:
    """Points of the full grid (the product of the axes' lengths)."""
    return math.prod(len(a.values) for a in spec.axes)


def point_values(spec: SweepSpec, index: int) -> tuple[Any, ...]:
    """The axis values of grid point ``index`` (the last axis varies fastest)."""
    out = []
    for axis in reversed(spec.axes):
        index, r = divmod(int(index), len(axis.values))
        out.append(axis.values[r])
    return tuple(reversed(out))


def point_id(spec: SweepSpec, values: Sequence[Any]) -> str:
    """A stable id of a design point: a hash of its axis names and values."""
    text = json.dumps([[a.key, v] for a, v in zip(spec.axes, values, strict=True)])
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _candidate_indices(spec: SweepSpec) -> np.ndarray:
    total = grid_size(spec)
    if spec.strategy == "grid":
        return np.arange(total, dtype=np.int64)
    assert spec.samples is not None
    rng = np.random.default_rng(spec.seed)
    n = min(spec.samples, total)
    return np.sort(rng.choice(total, size=n, replace=False)).astype(np.int64)


# -- evaluation (runs in the workers) -----------------------------------------------------------


def _schema(spec: SweepSpec) -> Any:
    import pyarrow as pa

    def axis_type(axis: Axis) -> Any:
        v = axis.values[0]
        if isinstance(v, bool):
            return pa.bool_()
        if isinstance(v, str):
            return pa.string()
        return pa.int64() if all(isinstance(x, int) for x in axis.values) else pa.float64()

    fields = [pa.field("point_id", pa.string(), nullable=False)]
    fields += [pa.field(a.key, axis_type(a)) for a in spec.axes]
    fields += [pa.field("model", pa.string()), pa.field("phase", pa.string()),
               pa.field("batch", pa.int64()), pa.field("seq", pa.int64()),
               pa.field("quant", pa.string()), pa.field("arch", pa.string()),
               pa.field("engine", pa.string())]
    fields += [pa.field(k, getattr(pa, t)()) for k, t in METRIC_COLUMNS.items()]
    fields.append(pa.field("error", pa.string()))
    return pa.schema(fields)


class _Evaluator:
    """One worker's state: the spec, base architecture dicts, models and lowered workloads
    (each loaded once per process), and the simulator's own caches, warm across chunks."""

    def __init__(self, spec: SweepSpec) -> None:
        self.spec = spec
        self._bases: dict[str, dict[str, Any]] = {}
        self._ops: dict[tuple[Any, ...], Any] = {}
        self._models: dict[str, Any] = {}
        self.columns = [f.name for f in _schema(spec)]

    def _base(self, name: str) -> dict[str, Any]:
        if name not in self._bases:
            self._bases[name] = load_arch_dict(self.spec.bases[name])
        return self._bases[name]

    def _lowered(self, w: Workload, scheme: Any) -> Any:
        key = (w.model, w.phase, w.batch, w.seq, scheme.name, scheme.w_fmt, scheme.a_fmt,
               scheme.kv_fmt)
        if key not in self._ops:
            if w.model not in self._models:
                self._models[w.model] = load_model(self.spec.models[w.model])
            self._ops[key] = lower(self._models[w.model], phase=w.phase, batch=w.batch,
                                   seq=w.seq, quant=scheme)
        return self._ops[key]

    def evaluate(self, points: Iterable[Sequence[Any]]) -> dict[str, list[Any]]:
        from sim.execution import resolve_scheme
        from sim.model import simulate_model

        spec = self.spec
        cols: dict[str, list[Any]] = {c: [] for c in self.columns}
        axis_keys = [a.key for a in spec.axes]
        floats = {a.key for a in spec.axes
                  if not all(isinstance(v, (int, str)) for v in a.values)}
        for values in points:
            pid = point_id(spec, values)
            overrides = [_override(k, v) for k, v in zip(axis_keys, values, strict=True)
                         if k != "base"]
            arch = None
            arch_error = None
            try:
                arch = arch_from_dict(apply_overrides(self._base(spec.base_of(values)),
                                                      overrides))
            except SpecError as err:
                arch_error = str(err)
            for w in spec.workloads:
                cols["point_id"].append(pid)
                for k, v in zip(axis_keys, values, strict=True):
                    cols[k].append(float(v) if k in floats else v)
                for k in _WORKLOAD_COLUMNS:
                    cols[k].append(getattr(w, k))
                metrics: dict[str, Any] = dict.fromkeys(METRIC_COLUMNS)
                error = arch_error
                if arch is not None:
                    try:
                        scheme = resolve_scheme(w.quant, arch.engine)
                        r = simulate_model(arch, self._lowered(w, scheme), name=w.model,
                                           phase=w.phase, batch=w.batch, seq=w.seq,
                                           quant=scheme.name)
                        metrics = {
                            "seconds": r.seconds, "tokens_per_s": r.tokens_per_s,
                            "energy_pj": r.energy_pj,
                            "energy_per_token_pj": r.energy_per_token_pj,
                            "edp_pj_s": r.energy_pj * r.seconds,
                            "area_mm2": r.area_um2 / 1e6, "utilization": r.utilization,
                            "cycles": r.cycles, "stall_cycles": r.stall_cycles,
                            "dram_bytes": r.dram_bytes,
                        }
                    except (SpecError, ModelError, MappingError) as err:
                        error = str(err)
                cols["arch"].append(None if arch is None else arch.name)
                cols["engine"].append(None if arch is None else arch.engine.name)
                for k, v in metrics.items():
                    cols[k].append(v)
                cols["error"].append(error)
        return cols


_WORKER: _Evaluator | None = None


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:  # the sweep was killed: do not outlive it
            os._exit(1)


def _init_worker(spec: SweepSpec, local: bool) -> None:
    """Pool initializer: per-process state; local workers leave Ctrl-C to the parent (which
    writes what is finished) and exit when the parent dies (SIGKILL)."""
    global _WORKER
    _WORKER = _Evaluator(spec)
    if local:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()


def _evaluate_chunk(task: tuple[str, Any]) -> tuple[dict[str, list[Any]], int]:
    """One task: ``("index", grid indices)`` or ``("values", point value tuples)``."""
    assert _WORKER is not None, "worker not initialised"
    kind, payload = task
    if kind == "index":
        points = [point_values(_WORKER.spec, int(i)) for i in payload]
    else:
        points = [tuple(p) for p in payload]
    return _WORKER.evaluate(points), len(points)


class _InlinePool:
    """``--workers 1`` on the local backend: the same calls, in this process."""

    def __init__(self, spec: SweepSpec) -> None:
        global _WORKER
        self._previous = _WORKER
        _WORKER = _Evaluator(spec)

    def imap_unordered(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        return map(fn, tasks)

    def close(self) -> None:
        global _WORKER
        _WORKER = self._previous

    def terminate(self) -> None:
        self.close()

    def join(self) -> None:
        pass


@contextlib.contextmanager
def _pool(spec: SweepSpec, backend: str, workers: int, ray_address: str | None
          ) -> Iterator[Any]:
    if backend == "local":
        if workers == 1:
            pool: Any = _InlinePool(spec)
        else:
            import multiprocessing

            pool = multiprocessing.get_context("fork").Pool(
                workers, initializer=_init_worker, initargs=(spec, True))
        try:
            yield pool
        except BaseException:
            pool.terminate()
            raise
        else:
            pool.close()
        finally:
            pool.join()
        return
    try:
        import ray
        from ray.util.multiprocessing import Pool as RayPool
    except ImportError:
        raise SpecError("--backend: ray is not installed; pip install 'tpeforge[ray]'") from None
    started = False
    if not ray.is_initialized():
        if ray_address:
            ray.init(address=ray_address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        started = True
    pool = RayPool(processes=workers, initializer=_init_worker, initargs=(spec, False))
    try:
        yield pool
    finally:
        pool.terminate()
        if started:
            ray.shutdown()


# -- results on disk --------------------------------------------------------------------------


class _PartWriter:
    """Buffers finished chunks and writes them as atomic Parquet parts (module doc)."""

    def __init__(self, out: Path, schema: Any, first_part: int, flush_seconds: float) -> None:
        self.out = out
        self.flush_seconds = flush_seconds
        self.schema = schema
        self.next_part = first_part
        self._pending: list[Any] = []
        self._last = time.monotonic()
        self.rows_written = 0

    def add(self, cols: Mapping[str, list[Any]]) -> None:
        import pyarrow as pa

        self._pending.append(pa.Table.from_pydict(dict(cols), schema=self.schema))
        if time.monotonic() - self._last >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._last = time.monotonic()
        # taken first: if a Ctrl-C lands after the rename, a second flush cannot repeat them
        pending, self._pending = self._pending, []
        if not pending:
            return
        table = pa.concat_tables(pending)
        name = f"part-{self.next_part:06d}.parquet"
        tmp = self.out / f".{name}.tmp"
        with open(tmp, "wb") as f:
            pq.write_table(table, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.out / name)
        self.next_part += 1
        self.rows_written += table.num_rows


def _parts(out: Path) -> list[Path]:
    return sorted(out.glob(_PART_GLOB))


def read_results(path: str | Path, columns: Sequence[str] | None = None) -> Any:
    """The results table (``pyarrow.Table``) of a sweep directory (its finished parts) or of
    a single Parquet file. :class:`SpecError` if there is none."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if path.is_file():
        return pq.read_table(path, columns=columns)
    if not path.is_dir():
        raise SpecError(f"RESULTS: {str(path)!r} does not exist")
    parts = _parts(path)
    if not parts:
        raise SpecError(f"RESULTS: {str(path)!r} holds no part-*.parquet files")
    return pa.concat_tables([pq.read_table(p, columns=columns) for p in parts])


def _prepare_out(out: Path, spec: SweepSpec, resume: bool) -> tuple[set[str], int]:
    """Create or check ``out``; returns the finished point ids and the next part number."""
    manifest = out / MANIFEST
    if out.exists() and not out.is_dir():
        raise SpecError(f"--out: {str(out)!r} is a file; a sweep writes a directory")
    if out.is_dir() and any(out.iterdir()):
        if not resume:
            raise SpecError(f"--out: {str(out)!r} already holds results; pass --resume to "
                            "continue that sweep, or choose another --out")
        if not manifest.is_file():
            raise SpecError(f"--resume: {str(out)!r} is not a sweep directory (no {MANIFEST})")
        old = json.loads(manifest.read_text())
        if old.get("fingerprint") != spec.fingerprint:
            raise SpecError(f"--resume: {str(out)!r} was written by another spec "
                            f"({old.get('name')!r}, fingerprint {old.get('fingerprint')}); its "
                            "axes, base, workloads or strategy differ from this one's")
        for stale in out.glob(".part-*.tmp"):  # a killed write: never renamed, never counted
            stale.unlink()
        parts = _parts(out)
        done: set[str] = set()
        if parts:
            ids = read_results(out, columns=["point_id"]).column("point_id").to_pylist()
            counts: dict[str, int] = {}
            for i in ids:
                counts[i] = counts.get(i, 0) + 1
            bad = [i for i, c in counts.items() if c != len(spec.workloads)]
            if bad:
                raise SpecError(f"--resume: {str(out)!r}: point {bad[0]} has {counts[bad[0]]} "
                                f"rows, expected {len(spec.workloads)}; the directory was "
                                "edited by hand")
            done = set(counts)
        last = max((int(p.name[5:11]) for p in parts), default=-1)
        return done, last + 1
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps({
        "name": spec.name, "fingerprint": spec.fingerprint, "strategy": spec.strategy,
        "axes": {a.key: list(a.values) for a in spec.axes},
        "workloads": [w.key for w in spec.workloads],
        "objectives": [f"{m}:{d}" for m, d in spec.objectives],
    }, indent=1))
    os.replace(tmp, manifest)
    return set(), 0


@contextlib.contextmanager
def _lock(out: Path) -> Iterator[None]:
    import fcntl

    with open(out / "_sweep.lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SpecError(f"--out: another sweep is writing {str(out)!r}") from None
        yield


# -- progress ---------------------------------------------------------------------------------


class _Progress:
    """A one-line progress report on ``stream``: points, rate, ETA (redrawn on a terminal,
    a line every few seconds otherwise)."""

    def __init__(self, name: str, total: int, stream: TextIO | None) -> None:
        self.name, self.total, self.stream = name, total, stream
        self.done = 0
        self.start = self._last = time.monotonic()
        self.tty = bool(stream is not None and stream.isatty())

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last >= (0.1 if self.tty else 5.0):
            self._last = now
            self._draw(final=False)

    def _draw(self, *, final: bool) -> None:
        if self.stream is None:
            return
        elapsed = max(time.monotonic() - self.start, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        eta = "--" if math.isinf(left) else _duration(left)
        pct = 100.0 * self.done / self.total if self.total else 100.0
        text = (f"{self.name}: {self.done}/{self.total} points {pct:5.1f}% "
                f"{rate:,.1f} points/s " + (f"in {_duration(elapsed)}" if final else f"ETA {eta}"))
        if self.tty:
            self.stream.write("\r" + text.ljust(78) + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        self._draw(final=True)


def _duration(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


# -- running a sweep --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SweepSummary:
    """What :func:`run_sweep` did."""

    out: Path
    points: int           # design points of the sweep (grid, sample or trials' distinct points)
    skipped: int          # already in ``out`` (``resume``)
    computed: int         # evaluated by this run
    rows_written: int
    seconds: float

    @property
    def points_per_s(self) -> float:
        return self.computed / self.seconds if self.seconds > 0 else 0.0


def run_sweep(spec: SweepSpec, out: str | Path, *, backend: str = "local",
              workers: int | None = None, resume: bool = False, ray_address: str | None = None,
              chunk: int | None = None, limit: int | None = None,
              flush_seconds: float = FLUSH_SECONDS, progress: TextIO | None = None
              ) -> SweepSummary:
    """Run ``spec`` into the dataset directory ``out`` (see the module doc).

    ``workers`` processes (default: the CPU count); ``chunk`` points per task (default: the
    spec's, else about 16 tasks per worker, at most 256 points each); ``limit`` evaluates only
    the first ``limit`` candidate points (benchmarks); ``flush_seconds``: how often finished
    points are written (a killed sweep loses at most that much work); ``progress``: where the
    progress line goes (``None``: nowhere).
    """
    if backend not in ("local", "ray"):
        raise SpecError(f"--backend: must be local or ray (got {backend!r})")
    workers = workers or os.cpu_count() or 1
    if workers < 1:
        raise SpecError(f"--workers: must be a positive integer (got {workers})")
    if not flush_seconds >= 0:
        raise SpecError(f"--flush-seconds: must be >= 0 (got {flush_seconds})")
    out = Path(out)
    done, first_part = _prepare_out(out, spec, resume)
    start = time.monotonic()
    with _lock(out):
        writer = _PartWriter(out, _schema(spec), first_part, flush_seconds)
        try:
            with _pool(spec, backend, workers, ray_address) as pool:
                if spec.strategy == "nsga2":
                    points, skipped, computed = _run_nsga2(spec, pool, writer, done, workers,
                                                           chunk, out, progress)
                else:
                    points, skipped, computed = _run_indices(spec, pool, writer, done, workers,
                                                             chunk, limit, progress)
        finally:
            writer.flush()
    return SweepSummary(out=out, points=points, skipped=skipped, computed=computed,
                        rows_written=writer.rows_written, seconds=time.monotonic() - start)


def _chunk_size(spec: SweepSpec, n: int, workers: int, chunk: int | None) -> int:
    chosen = chunk or spec.chunk
    if chosen:
        return chosen
    return max(1, min(256, math.ceil(n / (workers * 16))))


def _run_indices(spec: SweepSpec, pool: Any, writer: _PartWriter, done: set[str], workers: int,
                 chunk: int | None, limit: int | None, stream: TextIO | None
                 ) -> tuple[int, int, int]:
    indices = _candidate_indices(spec)
    if limit is not None:
        indices = indices[:limit]
    points = len(indices)
    if done:
        keep = np.fromiter((point_id(spec, point_values(spec, int(i))) not in done
                            for i in indices), dtype=bool, count=len(indices))
        indices = indices[keep]
    size = _chunk_size(spec, len(indices), workers, chunk)
    tasks = (("index", indices[i:i + size]) for i in range(0, len(indices), size))
    bar = _Progress(spec.name, len(indices), stream)
    for cols, n in pool.imap_unordered(_evaluate_chunk, tasks):
        writer.add(cols)
        bar.update(n)
    bar.close()
    return points, points - len(indices), len(indices)


def _run_nsga2(spec: SweepSpec, pool: Any, writer: _PartWriter, done: set[str], workers: int,
               chunk: int | None, out: Path, stream: TextIO | None) -> tuple[int, int, int]:
    """NSGA-II in generations: ask a population of trials, evaluate the new points in
    parallel, tell every trial its objectives. Points already in ``out`` are read, not rerun,
    so a resumed search asks exactly the same trials (same seed, same answers)."""
    import optuna

    assert spec.samples is not None
    known: dict[str, tuple[float, ...] | None] = {}
    if done:
        known = _objectives_of(spec, read_results(out))
    population = max(2, min(50, spec.samples))
    sampler = optuna.samplers.NSGAIISampler(population_size=population, seed=spec.seed)
    logger = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(
            directions=["maximize" if d == "max" else "minimize" for _, d in spec.objectives],
            sampler=sampler, study_name=spec.name)
        bar = _Progress(spec.name, spec.samples, stream)
        told = computed = skipped = 0
        while told < spec.samples:
            trials = [study.ask() for _ in range(min(population, spec.samples - told))]
            values = [tuple(t.suggest_categorical(a.key, list(a.values)) for a in spec.axes)
                      for t in trials]
            new: dict[str, tuple[Any, ...]] = {}
            for v in values:
                pid = point_id(spec, v)
                if pid not in known and pid not in new:
                    new[pid] = v
            skipped += sum(1 for v in values if point_id(spec, v) in done)
            todo = list(new.values())
            size = _chunk_size(spec, len(todo), workers, chunk)
            tasks = [("values", todo[i:i + size]) for i in range(0, len(todo), size)]
            for cols, _ in pool.imap_unordered(_evaluate_chunk, tasks):
                writer.add(cols)
                known.update(_objectives_of(spec, cols))
            computed += len(todo)
            for t, v in zip(trials, values, strict=True):
                objective = known[point_id(spec, v)]
                if objective is None:
                    study.tell(t, state=optuna.trial.TrialState.FAIL)
                else:
                    study.tell(t, list(objective))
            told += len(trials)
            bar.update(len(trials))
        bar.close()
    finally:
        optuna.logging.set_verbosity(logger)
    return len(known), skipped, computed


def _objectives_of(spec: SweepSpec, table: Any) -> dict[str, tuple[float, ...] | None]:
    """Per point id: each objective's geometric mean over the workloads (``None`` if a
    workload failed)."""
    cols = table if isinstance(table, dict) else table.to_pydict()
    per: dict[str, list[list[float | None]]] = {}
    for i, pid in enumerate(cols["point_id"]):
        per.setdefault(pid, []).append([cols[m][i] for m, _ in spec.objectives])
    out: dict[str, tuple[float, ...] | None] = {}
    for pid, rows in per.items():
        if any(v is None or not v > 0 for row in rows for v in row):
            out[pid] = None
            continue
        arr = np.log(np.asarray(rows, dtype=np.float64))
        out[pid] = tuple(float(x) for x in np.exp(arr.mean(axis=0)))
    return out


# -- Pareto fronts and the report ---------------------------------------------------------------


def pareto_mask(x: np.ndarray, y: np.ndarray, *, maximize_x: bool = False,
                maximize_y: bool = False) -> np.ndarray:
    """Boolean mask of the points no other point dominates in (``x``, ``y``) (each minimised
    unless its ``maximize_*``); of identical points, the first is kept."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D arrays of one length (got {x.shape}, {y.shape})")
    a = -x if maximize_x else x
    b = -y if maximize_y else y
    order = np.lexsort((np.arange(len(a)), b, a))  # by a, then b, then position
    mask = np.zeros(len(a), dtype=bool)
    best = np.inf
    for i in order:
        if b[i] < best:
            mask[i] = True
            best = b[i]
    return mask


def plot_front(ax: Any, x: np.ndarray, y: np.ndarray, mask: np.ndarray, *, label: str) -> Any:
    """All points in grey, the front as a line of markers; returns ``ax``."""
    ax.scatter(x[~mask], y[~mask], s=6, color="0.75", label="design points")
    order = np.argsort(x[mask])
    ax.plot(x[mask][order], y[mask][order], "o-", ms=4, color="tab:red",
            label=f"Pareto front ({int(mask.sum())})")
    ax.set_title(label, fontsize=9)
    ax.legend(fontsize=7)
    return ax


#: The report's fronts: (file stem, title, x, maximise x, y, maximise y).
FRONTS = (
    ("pareto_throughput_area", "throughput vs area", "area_mm2", False, "tokens_per_s", True),
    ("pareto_energy_latency", "energy per token vs latency", "seconds", False,
     "energy_per_token_pj", False),
)
_LABELS = {"area_mm2": "area (mm^2)", "tokens_per_s": "tokens/s", "seconds": "latency (s)",
           "energy_per_token_pj": "energy per token (pJ)"}


def write_report(results: str | Path, out_dir: str | Path) -> Path:
    """Pareto fronts (throughput vs area, energy per token vs latency) per workload as PNG,
    and ``report.md`` with a summary table and the best point per objective. Returns the
    Markdown file's path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    table = read_results(results)
    cols = table.to_pydict()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    axis_keys = [c for c in table.column_names if c not in _RESERVED]
    n = table.num_rows
    workloads: dict[tuple[Any, ...], list[int]] = {}
    for i in range(n):
        workloads.setdefault(tuple(cols[k][i] for k in _WORKLOAD_COLUMNS), []).append(i)
    ok = np.array([e is None for e in cols["error"]], dtype=bool)
    lines = [f"# Sweep report: {Path(results).name}", "",
             f"{len(set(cols['point_id']))} design points x {len(workloads)} workloads = "
             f"{n} rows; {int((~ok).sum())} rows with errors (mapping or format does not fit).",
             "", f"Axes: {', '.join(f'`{k}`' for k in axis_keys)}.", ""]
    summary = ["| workload | points | errors | front: tokens/s vs area | front: energy/token vs"
               " latency | best tokens/s | best pJ/token | least mm^2 |",
               "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    best_lines: list[str] = []
    fronts: dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]] = {
        f[0]: [] for f in FRONTS}
    for wl, rows in workloads.items():
        label = "{} {} b{} s{} {}".format(*wl)
        idx = np.array([i for i in rows if ok[i]], dtype=np.int64)
        if len(idx) == 0:
            summary.append(f"| {label} | {len(rows)} | {len(rows)} | 0 | 0 | - | - | - |")
            continue
        metric = {k: np.array([cols[k][i] for i in idx], dtype=np.float64)
                  for k in ("tokens_per_s", "energy_per_token_pj", "area_mm2", "seconds",
                            "edp_pj_s")}
        sizes = []
        for stem, _title, xk, mx, yk, my in FRONTS:
            mask = pareto_mask(metric[xk], metric[yk], maximize_x=mx, maximize_y=my)
            fronts[stem].append((label, metric[xk], metric[yk], mask))
            sizes.append(int(mask.sum()))
        summary.append(
            f"| {label} | {len(rows)} | {len(rows) - len(idx)} | {sizes[0]} | {sizes[1]} | "
            f"{metric['tokens_per_s'].max():.4g} | {metric['energy_per_token_pj'].min():.4g} | "
            f"{metric['area_mm2'].min():.4g} |")
        best_lines += [f"### {label}", "",
                       "| best | value | tokens/s | pJ/token | latency (s) | mm^2 | "
                       + " | ".join(f"`{k}`" for k in axis_keys) + " |",
                       "| --- | ---: | ---: | ---: | ---: | ---: | "
                       + " | ".join("---" for _ in axis_keys) + " |"]
        for m, direction in (("tokens_per_s", "max"), ("energy_per_token_pj", "min"),
                             ("seconds", "min"), ("area_mm2", "min"), ("edp_pj_s", "min")):
            j = int(np.argmax(metric[m]) if direction == "max" else np.argmin(metric[m]))
            i = int(idx[j])
            best_lines.append(
                f"| {direction} {m} | {metric[m][j]:.4g} | {cols['tokens_per_s'][i]:.4g} | "
                f"{cols['energy_per_token_pj'][i]:.4g} | {cols['seconds'][i]:.4g} | "
                f"{cols['area_mm2'][i]:.4g} | "
                + " | ".join(str(cols[k][i]) for k in axis_keys) + " |")
        best_lines.append("")
    lines += ["## Summary", "", *summary, ""]
    for stem, title, xk, mx, yk, my in FRONTS:
        panels = fronts[stem]
        lines += [f"## {title[0].upper()}{title[1:]}", ""]
        if not panels:
            lines += ["No point without errors: nothing to plot.", ""]
            continue
        ncols = min(2, len(panels))
        nrows = math.ceil(len(panels) / ncols)
        fig = Figure(figsize=(5.5 * ncols, 4.0 * nrows), layout="constrained")
        FigureCanvasAgg(fig)
        axs = fig.subplots(nrows, ncols, squeeze=False)
        for ax, (label, x, y, mask) in zip(axs.flat, panels, strict=False):
            plot_front(ax, x, y, mask, label=label)
            ax.set_xlabel(_LABELS[xk])
            ax.set_ylabel(_LABELS[yk])
            for values, setter in ((x, ax.set_xscale), (y, ax.set_yscale)):
                if values.min() > 0 and values.max() > 10 * values.min():
                    setter("log")
        for ax in list(axs.flat)[len(panels):]:
            ax.set_visible(False)
        fig.suptitle(f"{title} ({'max' if mx else 'min'} x, {'max' if my else 'min'} y)")
        fig.savefig(out_dir / f"{stem}.png", dpi=110)
        lines += [f"![{title}]({stem}.png)", ""]
    lines += ["## Best points per objective", "", *best_lines]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines))
    return report
