"""Sweep results on disk: the dataset directory that :func:`sim.sweep.run.run_sweep` writes
and :func:`read_results` reads.

**Results** are a Parquet dataset directory (``results.parquet/``) with one row per design
point x workload: ``point_id``, every axis, the workload (``model``, ``phase``, ``batch``,
``seq``, ``quant``), the metrics of :data:`sim.sweep.spec.METRIC_COLUMNS` and ``error``. The
parent process alone writes it: finished chunks are buffered and written about once a second
as ``part-NNNNNN.parquet``, each first as a hidden ``.part-NNNNNN.parquet.tmp`` then renamed
(``os.replace``, atomic), so a killed sweep leaves only whole parts, and a part always holds
every workload row of its points. ``--resume`` reads the point ids of the parts, skips those
points, and appends new parts; ``_sweep.json`` holds the spec's fingerprint so that a
different spec cannot resume into the same directory. A lock on ``_sweep.lock`` keeps a
second sweep from writing the same directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from hw.spec import SpecError
from sim.sweep.spec import SweepSpec

MANIFEST = "_sweep.json"
_PART_GLOB = "part-*.parquet"
#: Seconds between writes of finished chunks (a killed sweep loses at most this much work).
FLUSH_SECONDS = 1.0


class PartWriter:
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
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic != b"PAR1":  # every Parquet file starts (and ends) with these bytes
            hint = (f"; a sweep spec runs with `tpe sweep {path}`" if path.suffix == ".toml"
                    else "")
            raise SpecError(f"RESULTS: {str(path)!r} is not a Parquet file (give the results "
                            f"folder a sweep wrote, or one of its part files){hint}")
        return pq.read_table(path, columns=columns)
    if not path.is_dir():
        raise SpecError(f"RESULTS: {str(path)!r} does not exist")
    parts = _parts(path)
    if not parts:
        raise SpecError(f"RESULTS: {str(path)!r} holds no part-*.parquet files")
    return pa.concat_tables([pq.read_table(p, columns=columns) for p in parts])


def prepare_out(out: Path, spec: SweepSpec, resume: bool) -> tuple[set[str], int]:
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
def lock(out: Path) -> Iterator[None]:
    import fcntl

    with open(out / "_sweep.lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SpecError(f"--out: another sweep is writing {str(out)!r}") from None
        yield
