"""The 2D-Matrix (tensor-core style) engine spec and its timing contract."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from pydantic.dataclasses import dataclass

from hw.spec.base import CONFIG, ArrayDim, EngineBase, Unrolling

__all__ = ["Matrix2dSpec"]


@dataclass(config=CONFIG, kw_only=True)
class Matrix2dSpec(EngineBase):
    """A ``rows`` x ``cols`` 2D-Matrix of MAC PEs fed by broadcast rows and columns.

    Each input beat (one reduction index k) broadcasts ``A[r, k]`` along PE row r and
    ``W[k, c]`` along PE column c, with no systolic skew: every PE (r, c) adds
    ``A[r, k] * W[k, c]`` to its accumulator in the cycle the beat transfers (an outer
    product per beat). After the beat marked ``last`` the ``rows`` x ``cols`` output tile
    leaves one row per beat. Unrolling: rows <- M, cols <- N, K streamed:
    ``fold_cycles(K) = K + rows`` (steady state K, drain ``rows``; no preload, no fill).

    Bit-weight options (the TPE paper, HPCA 2025):

    * ``booth``: radix-4 Booth multipliers. Activation digits in {-2..+2} are recoded once
      per PE row and broadcast with the row; the multiples ``w, 2w, -w, -2w`` are formed
      once per PE column, so a PE only selects its partial products (no +1 rows) and
      compresses them with its accumulator in a carry-save tree, then one CPA.
    * ``csa_accumulate`` (OPT1, compressed accumulation): the partial products and the
      accumulator's sum and carry words enter one carry-save tree whose two outputs are
      registered: no carry-propagate adder (CPA) in the accumulation loop; one CPA per
      output column adds sum + carry as the tile drains.

    Cycles are counted from the first input transfer of a fold to its last output transfer,
    both inclusive, with every stream valid/ready every cycle. Folds run back to back.
    """

    kind: Literal["matrix2d"] = "matrix2d"
    rows: ArrayDim = Field(description="PE rows (output rows of a tile, M)")
    cols: ArrayDim = Field(description="PE columns (output columns of a tile, N)")
    booth: bool = Field(
        False, description="radix-4 Booth multipliers (row-shared recoders, column-shared "
        "multiples, partial products and accumulator in one carry-save tree)")
    csa_accumulate: bool = Field(
        False, description="OPT1 compressed accumulation: partial products plus the "
        "accumulator's sum and carry words in one carry-save tree, one CPA per output at drain")

    # -- timing contract (the cycle model's single source of truth) ------------------------
    @property
    def macs_per_cycle(self) -> int:
        return self.rows * self.cols

    @property
    def preload_cycles(self) -> int:
        """No stationary operand: nothing is loaded before the stream."""
        return 0

    @property
    def fill_cycles(self) -> int:
        """Broadcast operands: every PE works from the first beat on (no skew)."""
        return 0

    @property
    def drain_cycles(self) -> int:
        """The output tile leaves one row per cycle after the last MAC."""
        return self.rows

    def stream_cycles(self, stream_len: int) -> int:
        """Cycles that take the stream: one beat (an outer product) per cycle."""
        return stream_len

    def unrolling(self) -> Unrolling:
        """rows <- M, cols <- N, K streamed."""
        return Unrolling(m=self.rows, n=self.cols, k=None)

    def timing_contract(self) -> dict[str, Any]:
        """The timing formulas (Python expressions of the fields and the stream length K)."""
        return {
            "stream_len": "K",
            "fold_cycles": "K + rows",
            "preload_cycles": "0",
            "stream_cycles": "K",
            "fill_cycles": "0",
            "drain_cycles": "rows",
            "initiation_interval_cycles": "1",
            "counted_from": "first input transfer of a fold to its last output transfer, inclusive",
            "gemm_folds": "ceil(M/rows) * ceil(N/cols)",
        }

    @property
    def name(self) -> str:
        opts = self.options_name(("booth", self.booth), ("csa", self.csa_accumulate))
        return f"matrix2d_{self.rows}x{self.cols}_{self.operands_name}{opts}"
