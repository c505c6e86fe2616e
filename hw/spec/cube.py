"""The 3D-Cube spec (Ascend DaVinci cube unit) and its timing contract."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic.dataclasses import dataclass

from hw.spec.base import CONFIG, EngineBase, Unrolling

__all__ = ["MAX_CUBE_MULTIPLIERS", "CubeDim", "CubeSpec"]

#: Edge of the cube (multipliers along one GEMM dimension).
CubeDim = Annotated[int, Field(ge=1, le=64)]

#: Most multipliers one cube may have: the largest systolic array (256 x 256 PEs) has as
#: many, which bounds the RTL size the same way.
MAX_CUBE_MULTIPLIERS = 256 * 256


@dataclass(config=CONFIG, kw_only=True)
class CubeSpec(EngineBase):
    """An m x n x k cube of multipliers with K-reduction adder trees (3D-Cube).

    Every cycle one beat brings an ``m`` x ``k`` tile of A and a ``k`` x ``n`` tile of W; the
    ``m*n*k`` products are reduced over k by ``m*n`` adder trees into ``m*n`` accumulators.
    One fold computes an ``m`` x ``n`` output tile over a streamed reduction of any length K,
    in ``ceil(K/k)`` beats (a partial last chunk is padded with zeros), then drains the tile
    one row of ``n`` results per cycle:
    ``fold_cycles(K) = ceil(K/k) + m`` (stream ``ceil(K/k)``, drain ``m``).

    Options (the TPE paper's bit-weight transformations, HPCA 2025, docs/bit_weight.md): ``booth``
    builds each product from radix-4 Booth partial products of the activation (digits in
    {-2..+2}, recoded once per activation and shared by the ``n`` columns);
    ``csa_accumulate`` (OPT1) keeps every accumulator as a sum and a carry word: the partial
    products of the k products and both words enter one carry-save tree per output, and a
    single carry-propagate add per output happens when the tile drains. Results are bit
    exact either way; the timing does not change.

    ``output_double_buffer``: an output register bank beside the accumulators, so the drain
    of one fold hides behind the stream of the next. A fold's last beat moves the finished
    ``m`` x ``n`` tile into the bank and restarts the accumulators from zero; the bank drains
    one row per cycle while the next fold's beats are taken at once. The next fold's last beat
    waits until the bank's last row leaves (``m`` cycles after the current fold's last beat),
    so folds end ``fold_interval(K) = max(ceil(K/k), m)`` cycles apart, and a run of F folds
    of one reduction length K takes ``(F - 1) * max(ceil(K/k), m) + fold_cycles(K)`` cycles.
    (The spacing is set by the folds' last beats: a fold of ``B'`` beats ends ``max(B', m)``
    cycles after the one before it; the model's sum, every fold but the last at its own
    interval, is the same whenever the lengths are equal or all at least ``m`` beats.) With
    back-pressure on ``o`` a last beat waits (``i.ready`` low) until the bank is free.

    Cycles are counted from the first input transfer of a fold to its last output transfer,
    both inclusive, with every stream valid/ready every cycle. Folds run back to back: the
    next fold ends ``fold_interval`` cycles after the current one, ``fold_cycles`` without
    ``output_double_buffer``.
    """

    kind: Literal["cube"] = "cube"
    m: CubeDim = Field(description="output rows per fold (A tile rows, GEMM M)")
    n: CubeDim = Field(description="output columns per fold (W tile columns, GEMM N)")
    k: CubeDim = Field(description="reduction depth per beat (products per adder tree, GEMM K)")
    booth: bool = Field(
        False, description="radix-4 Booth partial products instead of Yosys's default multiplier")
    csa_accumulate: bool = Field(
        False, description="TPE OPT1: carry-save accumulators (sum and carry words), one "
        "carry-propagate add per output when the tile drains")
    output_double_buffer: bool = Field(
        False, description="an output register bank; a fold's tile drains while the next "
        "fold streams")

    @field_validator("k")
    @classmethod
    def _bounded_size(cls, k: int, info: ValidationInfo) -> int:
        m, n = info.data.get("m"), info.data.get("n")
        if m is not None and n is not None and m * n * k > MAX_CUBE_MULTIPLIERS:
            raise ValueError(
                f"m*n*k = {m}*{n}*{k} = {m * n * k} multipliers, more than "
                f"{MAX_CUBE_MULTIPLIERS} (as many as the largest systolic array); "
                "reduce m, n or k")
        return k

    # -- timing contract (the cycle model's single source of truth) ------------------------
    @property
    def macs_per_cycle(self) -> int:
        return self.m * self.n * self.k

    @property
    def preload_cycles(self) -> int:
        """No stationary operand: nothing is loaded before the stream."""
        return 0

    @property
    def fill_cycles(self) -> int:
        """A beat is multiplied, reduced and accumulated in the cycle it is taken."""
        return 0

    @property
    def drain_cycles(self) -> int:
        """The ``m`` result rows leave one per cycle, from the cycle after the last beat."""
        return self.m

    def stream_cycles(self, stream_len: int) -> int:
        """Input beats of a fold whose reduction has ``stream_len`` elements: ceil(K/k)."""
        if stream_len < 1:
            raise ValueError(f"stream_len must be >= 1, got {stream_len!r}")
        return -(-stream_len // self.k)

    def fold_interval(self, stream_len: int) -> int:
        """Cycles between the ends of consecutive folds: ``fold_cycles`` without overlap; with
        ``output_double_buffer`` the next fold's last beat follows the current one after
        ``ceil(K/k)`` beats or once the bank's ``m`` rows have left, whichever is later."""
        if not self.output_double_buffer:
            return self.fold_cycles(stream_len)
        return max(self.stream_cycles(stream_len), self.drain_cycles)

    def unrolling(self) -> Unrolling:
        """m <- M, n <- N, K streamed in chunks of k (one fold per m x n output tile)."""
        return Unrolling(m=self.m, n=self.n, k=None)

    def timing_contract(self) -> dict[str, Any]:
        """The timing formulas (Python expressions of m, n, k and the stream length K)."""
        return {
            "stream_len": "K",
            "fold_cycles": "-(-K // k) + m",
            "stream_cycles": "-(-K // k)",
            "preload_cycles": "0",
            "fill_cycles": "0",
            "drain_cycles": "m",
            "fold_interval": "max(-(-K // k), m)" if self.output_double_buffer
            else "-(-K // k) + m",
            "initiation_interval_cycles": "1",
            "counted_from": "first input transfer of a fold to its last output transfer, inclusive",
            "gemm_folds": "ceil(M/m) * ceil(N/n)",
        }

    @property
    def name(self) -> str:
        opts = self.options_name(("booth", self.booth), ("csa", self.csa_accumulate),
                                 ("odb", self.output_double_buffer))
        return f"cube_{self.m}x{self.n}x{self.k}_{self.operands_name}{opts}"
