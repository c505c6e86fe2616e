"""How one operator is split over an architecture's identical cores, and the engine orientation.

**GEMM** ``C[M, N] = A[M, K] @ W[K, N]`` (:func:`core_splits`): the cores divide one of the
two output dimensions, N (each core a column block of W and of C, all of A) or M (a row block
of A and of C, all of W), in ``ceil(dim / cores)`` slices, so ``ceil(dim / size)`` cores get
work. K, the reduction, is not split: its partial sums would have to be added across cores.
Each split runs in either orientation (:data:`ORIENTATIONS`): the engine computes ``C``, or
``C^T = W^T A^T`` with the weights on its activation port, which matters for skinny decode
GEMMs and engines whose two operand ports differ. With one core there is nothing to split and
only N is listed (the whole GEMM).

**Attention**: the cores divide the (sequence, key/value head) units (:mod:`mapping.attention`)
evenly, ``ceil(units / cores)`` per core. In decode (one query per sequence) with fewer units
than cores, they divide each unit's keys instead (FlashDecoding's split-KV: Dao, Haziza, Massa
and Sizov, "Flash-Decoding for long-context inference", 2023) into ranges of ``ceil(kv_len /
min(cores // units, kv_len))`` keys, one per core (as many ranges as that leaves non-empty),
the partial outputs merged afterwards. This is a rule, not a
search: the set holds the one split it gives.

The candidates are typed (:class:`CoreSplit`), listed in the order equal costs are resolved
(:func:`mapping.pick`: N before M, ``C`` before ``C^T``); what each costs is the caller's
business.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from models.caches import memo
from models.ops import Attention, Gemm

__all__ = ["ORIENTATIONS", "CoreSplit", "SplitDim", "core_splits"]

#: What a split divides: a GEMM's N or M, attention's units or each unit's keys.
SplitDim = Literal["n", "m", "units", "keys"]
#: The engine's two orientations of a GEMM, in the order ties are resolved: ``C`` (False),
#: ``C^T = W^T A^T`` (True).
ORIENTATIONS: tuple[bool, bool] = (False, True)


@dataclass(frozen=True, slots=True, kw_only=True)
class CoreSplit:
    """One way to divide an operator over the cores (module doc)."""

    #: The dimension divided over the cores.
    dim: SplitDim
    #: Each core's extent along ``dim`` (columns, rows, units or keys; the last core's share
    #: may be smaller).
    size: int
    #: Cores that get work.
    cores_used: int
    #: GEMM: the engine computes ``C^T = W^T A^T``.
    transposed: bool = False
    #: Attention: key ranges each unit is split into (1 unless ``dim == "keys"``).
    kv_split: int = 1

    @property
    def units_per_core(self) -> int:
        """Attention units each core handles (a share of one unit when the keys are split)."""
        return self.size if self.dim == "units" else 1

    def share(self, gemm: Gemm) -> Gemm:
        """One core's share of one instance of ``gemm`` (``count`` 1)."""
        if self.dim not in ("n", "m"):
            raise ValueError(f"dim: a GEMM is split along n or m, not {self.dim}")
        return _share(gemm, self.dim, self.size)


@memo(maxsize=4096)
def _share(gemm: Gemm, dim: str, size: int) -> Gemm:
    """:meth:`CoreSplit.share`, built and validated once per GEMM and split."""
    if dim == "n":
        return dataclasses.replace(gemm, count=1, N=size)
    return dataclasses.replace(gemm, count=1, M=size)


def core_splits(op: Gemm | Attention, cores: int) -> tuple[CoreSplit, ...]:
    """The candidate splits of one instance of ``op`` over ``cores`` cores (module doc)."""
    if not isinstance(cores, int) or cores < 1:
        raise ValueError(f"cores: must be a positive integer (got {cores!r})")
    if isinstance(op, Gemm):
        dims = (("n", op.N), ("m", op.M)) if cores > 1 else (("n", op.N),)
        out = []
        for dim, extent in dims:
            size = -(-extent // cores)
            used = -(-extent // size)
            out += [CoreSplit(dim=dim, size=size, cores_used=used, transposed=t)  # type: ignore[arg-type]
                    for t in ORIENTATIONS]
        return tuple(out)
    if isinstance(op, Attention):
        units = op.batch * op.kv_heads
        kv_split = min(cores // units, op.kv_len) if units < cores and op.q_len == 1 else 1
        if kv_split > 1:
            size = -(-op.kv_len // kv_split)
            kv_split = -(-op.kv_len // size)  # no empty range: 9 keys in 4 are 3 ranges of 3
            return (CoreSplit(dim="keys", size=size, cores_used=units * kv_split,
                              kv_split=kv_split),)
        return (CoreSplit(dim="units", size=-(-units // cores), cores_used=min(cores, units)),)
    raise TypeError(f"op: expected a models.ops.Gemm or Attention, got {type(op).__name__}")
