"""Operators a workload lowers to. Pure shapes and formats: nothing about hardware."""

from __future__ import annotations

from dataclasses import dataclass

from models import ModelError
from models.formats import get_format

__all__ = ["Gemm"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Gemm:
    """``count`` independent GEMMs ``C[M, N] = A[M, K] @ B[K, N]``.

    ``b_is_weight`` says whether B is a model weight (read from memory once per use, shared
    across the batch) or an activation (e.g. the K^T and V operands of attention).
    """

    name: str
    M: int
    N: int
    K: int
    count: int = 1
    a_fmt: str = "int8"
    w_fmt: str = "int8"
    o_fmt: str = "int32"
    b_is_weight: bool = True

    def __post_init__(self) -> None:
        for field in ("M", "N", "K", "count"):
            v = getattr(self, field)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ModelError(f"{self.name}.{field}: must be a positive integer (got {v!r})")
        for field in ("a_fmt", "w_fmt", "o_fmt"):
            get_format(getattr(self, field))  # raises ModelError naming the format

    @property
    def macs(self) -> int:
        return self.M * self.N * self.K * self.count

    @property
    def flops(self) -> int:
        return 2 * self.macs
