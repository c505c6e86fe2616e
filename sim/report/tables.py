"""Per-operator tables of a model's result: the rows of ``tpe sim model --csv`` and the shape
text of its console table (one definition for both)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from models.ops import Attention, Gemm
from sim.files import replacing
from sim.model import ModelResult
from sim.system import OpResult

__all__ = ["CSV_COLUMNS", "operator_rows", "shape_text", "write_operator_csv"]

#: The columns of ``tpe sim model --csv`` before the energy breakdown (one
#: ``energy_<component>_pj`` column per component of the architecture, in its order) and the
#: mapping (a JSON object: how the operator was mapped, as in ``--json``).
CSV_COLUMNS = ("model", "phase", "arch", "name", "kind", "count", "shape", "M", "N", "K",
               "cycles", "compute_cycles", "stall_cycles", "seconds", "macs", "vector_ops",
               "dram_bytes", "energy_pj", "utilization", "bound")


def shape_text(r: OpResult) -> str:
    """An operator's shape in a few words: ``MxNxK a_fmtxw_fmt`` for a GEMM, batch, heads /
    KV heads, query and key lengths, head dim and KV format for attention, the kind and
    element count for vector work."""
    op = r.op
    if isinstance(op, Gemm):
        return f"{op.M}x{op.N}x{op.K} {op.a_fmt}x{op.w_fmt}"
    if isinstance(op, Attention):
        return (f"b{op.batch} h{op.heads}/{op.kv_heads} q{op.q_len} kv{op.kv_len} "
                f"d{op.qk_dim} {op.kv_fmt}")
    return f"{op.kind} {op.elems:,}"


def operator_rows(result: ModelResult) -> list[dict[str, Any]]:
    """One row per operator of ``result`` (workload order): the columns of
    :data:`CSV_COLUMNS`, the energy breakdown (pJ, all ``count`` instances) and the mapping
    as JSON. The figures are the operator's result's own (``OpResult.to_dict``)."""
    rows = []
    for r in result.ops:
        d = r.to_dict()
        gemm = r.op if isinstance(r.op, Gemm) else None
        own = {"model": result.name, "phase": result.phase or "", "arch": result.arch.name,
               "shape": shape_text(r), **{dim: getattr(gemm, dim) if gemm else ""
                                          for dim in "MNK"}}
        # the other columns are the result's own keys
        row: dict[str, Any] = {k: own[k] if k in own else d[k] for k in CSV_COLUMNS}
        row |= {f"energy_{k}_pj": v for k, v in d["breakdown"].items()}
        row["mapping"] = json.dumps(d["mapping"], sort_keys=True)
        rows.append(row)
    return rows


def write_operator_csv(result: ModelResult, path: str | Path) -> Path:
    """Write :func:`operator_rows` of ``result`` to ``path`` (whole or not at all)."""
    rows = operator_rows(result)
    columns = list(dict.fromkeys(k for row in rows for k in row)) or [*CSV_COLUMNS, "mapping"]
    with replacing(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
    return Path(path)
