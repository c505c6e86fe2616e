"""The LUT engine spec (LUT Tensor Core, ISCA 2025) and its timing contract."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field
from pydantic.dataclasses import dataclass

from hw.spec.base import CONFIG, EngineBase, Unrolling

__all__ = ["LutDim", "LutSpec"]

#: Array edge of the LUT and bit-plane engines (PEs); 64 is the paper's elongated tile width.
LutDim = Annotated[int, Field(ge=1, le=64)]


@dataclass(config=CONFIG, kw_only=True)
class LutSpec(EngineBase):
    """A ``rows`` x ``cols`` LUT engine: multiplier-free GEMM by activation tables.

    Organisation (output stationary): PE (r, c) accumulates ``C[m0 + r, n0 + c]``; rows <- M,
    cols <- N, and the reduction K streams through in groups of ``group`` activations, one
    input beat per group. For each group and each row the *table precompute unit* builds the
    table of the signed sums of that row's ``group`` activations over every weight-bit
    pattern, in one cycle, into a table register; the table of a row is shared by all
    ``cols`` PEs of the row (the paper's elongated tile: one table feeds a row of outputs).
    The weight bit-planes are then processed bit-serially, most significant first, one plane
    per cycle (``w_bits`` cycles per group): the ``group`` weight bits of column c in plane b
    form the index into the table, and the PE does the shift-add
    ``p = 2*p +- T[index]`` (the sign plane of signed weights subtracts, two's complement).
    The table precompute of the next group overlaps the planes of the current one.

    * ``symmetric=False``: the table holds ``2**group`` entries ``T[x] = sum_{g: x_g=1} a_g``.
    * ``symmetric=True`` (table symmetrization): weight bits are read as +-1 digits,
      ``T[x] = sum_g (+a_g if x_g else -a_g)``; since ``T[~x] = -T[x]`` only the
      ``2**(group-1)`` entries with the top index bit clear are stored, and an index with its
      top bit set reads the complemented index and flips the sign. The PEs then accumulate
      ``2*C - Kw*sum_k A[m, k]`` (``Kw = 2**w_bits - 1`` unsigned, ``-1`` signed): the offset
      is added back once per output from a per-row activation sum shared by the row, and
      the halving is exact (the accumulators are one bit wider than ``acc_bits``).
    * ``carry_save`` (the TPE paper's OPT1, compressed accumulation): the PE keeps its group
      register and accumulator as sum/carry pairs updated by carry-save compressors (the
      sign flip's +1 goes into the free carry LSB); one carry-propagate add per output, in the
      drain path. Without it, every plane step is a carry-propagate add.

    Timing: ``fold_cycles(K) = 1 + ceil(K/group)*w_bits + rows`` from the first input beat to
    the last output beat, inclusive (table precompute of the first group 1, planes
    ``ceil(K/group)*w_bits``, drain one output row per cycle ``rows``). Folds run back to back.
    """

    runtime_precision: ClassVar[bool] = True

    kind: Literal["lut"] = "lut"
    rows: LutDim = Field(description="PE rows (output rows, M), one activation table each")
    cols: LutDim = Field(description="PE columns (output columns, N) sharing each row's table")
    group: Annotated[int, Field(ge=1, le=6)] = Field(
        4, description="activations per table (K elements per input beat; table index bits)")
    symmetric: bool = Field(
        True, description="table symmetrization: store 2**(group-1) entries, flip the sign of "
        "the complemented index")
    carry_save: bool = Field(
        False, description="OPT1: carry-save group register and accumulator, one CPA per output")

    # -- timing contract (the cycle model's single source of truth) ------------------------
    @property
    def macs_per_cycle(self) -> float:
        """MACs per cycle in steady state: ``rows*cols*group`` every ``w_bits`` cycles."""
        return self.rows * self.cols * self.group / self.w_bits

    @property
    def table_entries(self) -> int:
        """Entries of one activation table (per row)."""
        return 1 << (self.group - 1) if self.symmetric else 1 << self.group

    @property
    def precompute_cycles(self) -> int:
        """Cycles to build one group's tables (overlapped with the previous group's planes)."""
        return 1

    @property
    def preload_cycles(self) -> int:
        """No stationary operand is preloaded."""
        return 0

    @property
    def fill_cycles(self) -> int:
        """The first group's table precompute, before the first plane step."""
        return self.precompute_cycles

    @property
    def drain_cycles(self) -> int:
        """The ``rows`` x ``cols`` result tile leaves one row per cycle."""
        return self.rows

    @property
    def cycles_per_beat(self) -> int:
        """Plane steps per input beat (one weight bit-plane per cycle)."""
        return self.w_bits

    def stream_cycles(self, stream_len: int) -> int:
        """Plane steps of a fold: ``ceil(K/group)`` groups of ``w_bits`` planes."""
        return -(-stream_len // self.group) * self.w_bits

    def unrolling(self) -> Unrolling:
        """rows <- M, cols <- N, K streamed (in groups of ``group``)."""
        return Unrolling(m=self.rows, n=self.cols, k=None)

    def timing_contract(self) -> dict[str, Any]:
        """The timing formulas (Python expressions of the spec's fields and K)."""
        return {
            "stream_len": "K",
            "fold_cycles": "1 + -(-K // group) * w_bits + rows",
            "preload_cycles": "0",
            "fill_cycles": "1",
            "precompute_cycles": "1",
            "stream_cycles": "-(-K // group) * w_bits",
            "drain_cycles": "rows",
            "input_beats": "-(-K // group)",
            "initiation_interval_cycles": "w_bits",
            "counted_from": "first input transfer of a fold to its last output transfer, inclusive",
            "gemm_folds": "ceil(M/rows) * ceil(N/cols)",
            "organisation": "output stationary: rows <- M, cols <- N; K streams in groups of "
            "`group` (one beat each), weight planes bit-serial, one table per row shared by "
            "its cols PEs",
        }

    @property
    def name(self) -> str:
        table = "sym" if self.symmetric else "full"
        acc = "cs" if self.carry_save else "cpa"
        return f"lut_{self.rows}x{self.cols}_g{self.group}_{table}_{acc}_{self.operands_name}"
