"""The bit-slice engine spec (Stripes / Bit Fusion / Laconic family) and its timing contract."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field
from pydantic.dataclasses import dataclass

from hw.spec.base import CONFIG, ArrayDim, EngineBase, Unrolling

__all__ = ["BitsliceSpec"]

#: Width of the slice multipliers (bits).
SliceBits = Annotated[int, Field(ge=1, le=8)]


@dataclass(config=CONFIG, kw_only=True)
class BitsliceSpec(EngineBase):
    """A ``rows`` x ``cols`` array of bit-slice PEs: any precision on ``slice_bits`` multipliers.

    Organisation: broadcast, like the 2D-Matrix (no systolic skew). Each input beat
    (reduction index k) carries ``A[r, k]`` for every PE row r and ``W[k, c]`` for every PE
    column c at full precision. The array splits every operand into ``slice_bits``-wide
    slices, ``a_slices = ceil(a_bits/slice_bits)`` of A and ``w_slices`` of W, the top slice
    signed when ``signed`` (the others unsigned); the slice of A is selected once per row,
    the slice of W once per column. Every cycle each PE multiplies its two slices on a
    ``slice_bits`` x ``slice_bits`` multiplier and adds the product, shifted by
    ``slice_bits * (i + j)``, into its accumulator; a beat takes ``a_slices * w_slices``
    cycles (i over A slices outer, j over W slices inner). Both operands are serial, so the
    same slice PEs run any precision 1..16 and cycles grow with ``a_bits * w_bits``.
    After the ``last`` beat the ``rows`` x ``cols`` tile leaves one row per cycle.
    Unrolling: rows <- M, cols <- N, K streamed:
    ``fold_cycles(K) = K * a_slices * w_slices + rows``.

    ``csa_accumulate`` (the carry-save accumulator of the TPE paper's OPT3 PE): each PE keeps
    its accumulator as sum and carry words; a slice product enters through one 3:2 carry-save
    adder, with no carry propagation in the loop, and one CPA per output column adds sum +
    carry as the tile drains. Cycles are unchanged.

    ``skip_zero`` (the TPE paper's OPT3, sparsity-encoded bit-serial): an activation slice
    position i takes the ``w_slices`` cycles only if slice i of some row's activation is
    non-zero (the row slices share the array's control, so a position is skipped only when
    it is zero in every row of the beat); a beat whose activations are all zero takes one
    cycle. Cycles then depend on the data: :meth:`beat_cycles` gives a beat's cycles from
    its count of non-zero slice positions, and :meth:`fold_cycles` stays the worst case
    (every position non-zero), which is the exact count of dense data.

    Cycles are counted from the first input transfer of a fold to its last output transfer,
    both inclusive, with every stream valid/ready every cycle. Folds run back to back.
    """

    runtime_precision: ClassVar[bool] = True

    kind: Literal["bitslice"] = "bitslice"
    rows: ArrayDim = Field(description="PE rows (output rows of a tile, M)")
    cols: ArrayDim = Field(description="PE columns (output columns of a tile, N)")
    slice_bits: SliceBits = Field(
        2, description="width of a slice and of the slice multipliers in bits")
    csa_accumulate: bool = Field(
        False, description="carry-save accumulators (sum and carry registers, one 3:2 adder "
        "per slice product, one CPA per output at drain), as in the TPE paper's OPT3 PE")
    skip_zero: bool = Field(
        False, description="OPT3: activation slice positions that are zero in every row "
        "take no cycle (data-dependent cycles; fold_cycles is the worst case)")

    # -- slicing -----------------------------------------------------------------------------
    @property
    def a_slices(self) -> int:
        """Slices of one activation: ceil(a_bits / slice_bits)."""
        return -(-self.a_bits // self.slice_bits)

    @property
    def w_slices(self) -> int:
        """Slices of one weight: ceil(w_bits / slice_bits)."""
        return -(-self.w_bits // self.slice_bits)

    # -- timing contract (the cycle model's single source of truth) ------------------------
    @property
    def slice_products_per_cycle(self) -> int:
        return self.rows * self.cols

    @property
    def macs_per_cycle(self) -> float:
        """Full-precision MACs per cycle in steady state (dense data): fractional in general."""
        return self.rows * self.cols / (self.a_slices * self.w_slices)

    @property
    def preload_cycles(self) -> int:
        return 0

    @property
    def fill_cycles(self) -> int:
        return 0

    @property
    def drain_cycles(self) -> int:
        """The output tile leaves one row per cycle after the last slice product."""
        return self.rows

    @property
    def beat_cycles_max(self) -> int:
        """Cycles of one input beat with dense data: a_slices * w_slices."""
        return self.a_slices * self.w_slices

    def beat_cycles(self, nonzero_a_slices: int) -> int:
        """Cycles of one beat whose activations have ``nonzero_a_slices`` slice positions
        that are non-zero in some row (with ``skip_zero``; otherwise always the maximum)."""
        if not 0 <= nonzero_a_slices <= self.a_slices:
            raise ValueError(
                f"nonzero_a_slices must be in 0..{self.a_slices}, got {nonzero_a_slices!r}")
        if not self.skip_zero:
            return self.beat_cycles_max
        return max(1, nonzero_a_slices * self.w_slices)

    def stream_cycles(self, stream_len: int) -> int:
        """Cycles that take a stream of ``stream_len`` beats (worst case with skip_zero)."""
        return stream_len * self.beat_cycles_max

    def fold_cycles_given(self, nonzero_a_slices: Iterable[int]) -> int:
        """Exact cycles of one fold given, per beat, its count of non-zero slice positions."""
        return (self.preload_cycles + sum(self.beat_cycles(n) for n in nonzero_a_slices)
                + self.fill_cycles + self.drain_cycles)

    def unrolling(self) -> Unrolling:
        """rows <- M, cols <- N, K streamed."""
        return Unrolling(m=self.rows, n=self.cols, k=None)

    def timing_contract(self) -> dict[str, Any]:
        """The timing formulas (Python expressions of the fields and the stream length K)."""
        a_sl = "((a_bits + slice_bits - 1) // slice_bits)"
        w_sl = "((w_bits + slice_bits - 1) // slice_bits)"
        out = {
            "stream_len": "K",
            "fold_cycles": f"K * {a_sl} * {w_sl} + rows",
            "preload_cycles": "0",
            "stream_cycles": f"K * {a_sl} * {w_sl}",
            "fill_cycles": "0",
            "drain_cycles": "rows",
            "a_slices": a_sl,
            "w_slices": w_sl,
            "initiation_interval_cycles": f"{a_sl} * {w_sl}",
            "counted_from": "first input transfer of a fold to its last output transfer, inclusive",
            "gemm_folds": "ceil(M/rows) * ceil(N/cols)",
        }
        if self.skip_zero:
            out["data_dependent"] = (
                "fold_cycles is the worst case; a beat takes max(1, nz * w_slices) cycles, nz = "
                "the activation slice positions non-zero in some row of the beat")
        return out

    @property
    def name(self) -> str:
        opts = self.options_name(("csa", self.csa_accumulate), ("skipz", self.skip_zero))
        return f"bitslice_{self.rows}x{self.cols}_s{self.slice_bits}_{self.operands_name}{opts}"
