"""Running a sweep: :func:`run_sweep` evaluates the design points of a
:class:`~sim.sweep.spec.SweepSpec` and writes their rows with :mod:`sim.sweep.storage`.

**Backends**: local worker processes (``multiprocessing.Pool``) or a Ray cluster
(``ray.util.multiprocessing.Pool``, the same interface): the same code path sends chunks of
points to ``_evaluate_chunk`` in the workers and writes what comes back. A ``grid`` or
``random`` sweep sends chunks of grid indices; an ``nsga2`` search asks optuna for a
generation of trials at a time and sends their axis values. Ray and optuna are imported only
when a sweep uses them.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from hw.spec import SpecError, apply_overrides, arch_from_dict, load_arch_dict
from mapping import MappingError
from models import ModelError
from models.llm import load_model, lower
from sim.sweep.spec import (
    METRIC_COLUMNS,
    PLAN_FLAGS,
    PLAN_KEYS,
    WORKLOAD_COLUMNS,
    Axis,
    SweepSpec,
    Workload,
    grid_size,
    override,
    point_id,
    point_values,
    trial_values,
)
from sim.sweep.storage import FLUSH_SECONDS, PartWriter, lock, prepare_out, read_results

# -- design points ----------------------------------------------------------------------------


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
               pa.field("quant", pa.string()),
               *(pa.field(k, pa.int64()) for k in PLAN_KEYS),
               *(pa.field(k, pa.bool_()) for k in PLAN_FLAGS), pa.field("arch", pa.string()),
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

    def _devices(self, arch: Any, w: Workload) -> dict[str, Any]:
        """The metrics of a pass on several devices (``sim.devices``): time, tokens and
        energy of the whole system, the area and DRAM bytes of all its devices; the cycles at
        the architecture's clock; no stall cycles (each stage has its own)."""
        from models.parallel import ParallelPlan, lower_parallel
        from sim.devices import simulate_devices
        from sim.energy import system_area_breakdown
        from sim.execution import arch_scheme

        scheme = arch_scheme(w.quant, arch)
        plan = ParallelPlan(tp=w.tp, pp=w.pp, ep=w.ep, microbatches=w.microbatches, sp=w.sp)
        key = (w.key, scheme.name, scheme.w_fmt, scheme.a_fmt, scheme.kv_fmt)
        if key not in self._ops:
            if w.model not in self._models:
                self._models[w.model] = load_model(self.spec.models[w.model])
            self._ops[key] = lower_parallel(self._models[w.model], plan, phase=w.phase,
                                            batch=w.batch, seq=w.seq, quant=scheme)
        r = simulate_devices(arch, self._ops[key], name=w.model, phase=w.phase,
                             batch=w.batch, seq=w.seq, quant=scheme.name, overlap=w.overlap)
        macs = sum(plan.microbatches * plan.tp * s.model.macs for s in r.stages)
        peak = arch.cores * arch.engine.macs_per_cycle * plan.devices
        cycles = r.seconds * arch.clock_mhz * 1e6
        return {
            "seconds": r.seconds, "tokens_per_s": r.tokens_per_s, "energy_pj": r.energy_pj,
            "energy_per_token_pj": r.energy_per_token_pj, "edp_pj_s": r.energy_pj * r.seconds,
            "area_mm2": plan.devices * sum(system_area_breakdown(arch).values()) / 1e6,
            "utilization": macs / (cycles * peak), "cycles": round(cycles),
            "stall_cycles": None,
            "dram_bytes": sum(plan.microbatches * plan.tp * s.model.dram_bytes
                              for s in r.stages),
        }

    def evaluate(self, points: Iterable[Sequence[Any]]) -> dict[str, list[Any]]:
        from sim.execution import arch_scheme
        from sim.model import simulate_model

        spec = self.spec
        cols: dict[str, list[Any]] = {c: [] for c in self.columns}
        axis_keys = [a.key for a in spec.axes]
        floats = {a.key for a in spec.axes
                  if not all(isinstance(v, (int, str)) for v in a.values)}
        for values in points:
            pid = point_id(spec, values)
            overrides = [override(k, v) for k, v in zip(axis_keys, values, strict=True)
                         if k != "base" and v is not None]  # None: another base's axis
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
                    cols[k].append(float(v) if k in floats and v is not None else v)
                for k in WORKLOAD_COLUMNS:
                    cols[k].append(getattr(w, k))
                metrics: dict[str, Any] = dict.fromkeys(METRIC_COLUMNS)
                error = arch_error
                if arch is not None and w.several:
                    try:
                        metrics = self._devices(arch, w)
                    except (SpecError, ModelError, MappingError) as err:
                        error = str(err)
                elif arch is not None:
                    try:
                        scheme = arch_scheme(w.quant, arch)
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
                too_large = _int64_overflow(metrics)
                if too_large is not None:
                    metrics, error = dict.fromkeys(METRIC_COLUMNS), too_large
                cols["arch"].append(None if arch is None else arch.name)
                cols["engine"].append(None if arch is None else arch.engine.name)
                for k, v in metrics.items():
                    # an exact int or fraction into a float64 column rounds as float() does
                    # (pyarrow refuses an int above 2^53 there)
                    cols[k].append(float(v) if v is not None and METRIC_COLUMNS[k] == "float64"
                                   else v)
                cols["error"].append(error)
        return cols


#: The largest value of the table's int64 columns.
_INT64_MAX = (1 << 63) - 1


def _int64_overflow(metrics: dict[str, Any]) -> str | None:
    """The row's error where an integer metric (its cycles) exceeds the table's int64 column
    (a batch or sequence of about 2^40 on a small array), else None."""
    for k, kind in METRIC_COLUMNS.items():
        v = metrics.get(k)
        if kind == "int64" and v is not None and v > _INT64_MAX:
            return (f"{k}: {v:,} exceeds the results table's int64 column (2^63 - 1); use a "
                    "smaller batch or seq")
    return None


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


# -- progress ---------------------------------------------------------------------------------


class _Progress:
    """A one-line progress report on ``stream``: points, rate, ETA (redrawn on a terminal,
    a line every few seconds otherwise)."""

    def __init__(self, name: str, total: int, stream: TextIO | None, unit: str = "points"
                 ) -> None:
        self.name, self.total, self.stream, self.unit = name, total, stream, unit
        self.done = 0
        #: Said after the count (e.g. how many of the trials were new points).
        self.note = ""
        self.start = self._last = time.monotonic()
        self.tty = bool(stream is not None and stream.isatty())
        self._open = False  # a redrawn line is on the terminal, not yet ended

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
        note = f" ({self.note})" if self.note else ""
        text = (f"{self.name}: {self.done}/{self.total} {self.unit}{note} {pct:5.1f}% "
                f"{rate:,.1f} {self.unit}/s "
                + (f"in {_duration(elapsed)}" if final else f"ETA {eta}"))
        if self.tty:
            self.stream.write("\r" + text.ljust(78) + ("\n" if final else ""))
            self._open = not final
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        self._draw(final=True)

    def abort(self) -> None:
        """End a redrawn line without a final count (the run was interrupted or failed), so
        that what is printed next starts on its own line."""
        if self._open and self.stream is not None:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False


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
    """Run ``spec`` into the dataset directory ``out`` (see :mod:`sim.sweep.storage`).

    ``workers`` processes (default: the CPU count); ``chunk`` points per task (default: the
    spec's, else about 16 tasks per worker, at most 256 points each, in whole blocks of the
    grid's last axes and smaller towards the end: :func:`_task_sizes`); ``limit`` evaluates only
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
    done, first_part = prepare_out(out, spec, resume)
    start = time.monotonic()
    with lock(out):
        writer = PartWriter(out, _schema(spec), first_part, flush_seconds)
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
    return _aligned(spec, max(1, min(256, math.ceil(n / (workers * 16)))))


def _aligned(spec: SweepSpec, size: int) -> int:
    """``size`` rounded down to whole blocks of the grid's last axes (the most of them whose
    product is at most ``size``): on a grid, a task then starts where such a block starts,
    so the points that differ only in those axes (e.g. the DRAM link and the clock, which
    share the engine's and buffers' evaluations: :func:`sim.gemm.compute_view`) are all
    evaluated by one worker, whose caches are warm for all but the first."""
    if spec.strategy != "grid" or spec.per_base:
        return size
    block = 1
    for axis in reversed(spec.axes):
        if block * len(axis.values) > size:
            break
        block *= len(axis.values)
    return size - size % block


def _task_sizes(spec: SweepSpec, n: int, workers: int, chunk: int | None) -> Iterator[int]:
    """Points per task for ``n`` points: :func:`_chunk_size`, or once fewer than two such
    tasks per worker are left, about half of what is left per worker (in whole blocks of a
    quarter of that size or more, :func:`_aligned`, so that the tasks stay aligned), so that
    the workers finish at about the same time instead of one running the last task alone."""
    size = _chunk_size(spec, n, workers, chunk)
    unit = size if chunk or spec.chunk else _aligned(spec, math.ceil(size / 4))
    left = n
    while left > 0:
        step = max(unit, min(size, math.ceil(left / (2 * workers))) // unit * unit)
        yield min(step, left)
        left -= step


def _run_indices(spec: SweepSpec, pool: Any, writer: PartWriter, done: set[str], workers: int,
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
    starts = np.cumsum([0, *_task_sizes(spec, len(indices), workers, chunk)])
    tasks = (("index", indices[a:b]) for a, b in itertools.pairwise(starts.tolist()))
    bar = _Progress(spec.name, len(indices), stream)
    try:
        for cols, n in pool.imap_unordered(_evaluate_chunk, tasks):
            writer.add(cols)
            bar.update(n)
    except BaseException:
        bar.abort()
        raise
    bar.close()
    return points, points - len(indices), len(indices)


def _run_nsga2(spec: SweepSpec, pool: Any, writer: PartWriter, done: set[str], workers: int,
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
        # a trial may ask for a point evaluated before: the count is of trials, the note
        # says how many points were new
        bar = _Progress(spec.name, spec.samples, stream, unit="trials")
        told = computed = 0
        skipped: set[str] = set()  # points of earlier runs the trials asked for
        try:
            while told < spec.samples:
                trials = [study.ask() for _ in range(min(population, spec.samples - told))]
                values = [trial_values(spec, t.suggest_categorical) for t in trials]
                new: dict[str, tuple[Any, ...]] = {}
                for v in values:
                    pid = point_id(spec, v)
                    if pid not in known and pid not in new:
                        new[pid] = v
                skipped.update(pid for v in values if (pid := point_id(spec, v)) in done)
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
                bar.note = f"{computed} points computed"
                bar.update(len(trials))
        except BaseException:
            bar.abort()
            raise
        bar.close()
    finally:
        optuna.logging.set_verbosity(logger)
    return len(known), len(skipped), computed


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
