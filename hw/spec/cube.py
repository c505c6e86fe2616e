"""The 3D-Cube spec (Ascend DaVinci cube unit) and its timing contract."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic.dataclasses import dataclass

from hw.spec.base import (
    CONFIG,
    EngineBase,
    TreeStageLevels,
    Unrolling,
    add_levels,
    booth_digits,
    check_tree_stages,
    csa_levels,
)

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

    Pipelining (the timing changes, the results do not): ``mult_reg`` registers the
    multiplier outputs (the products, or with ``csa_accumulate`` the partial-product words)
    before the trees; ``tree_stage_levels = N`` registers each K-reduction tree after every N
    adder levels (:attr:`tree_levels` of them: the binary tree over the k products, or with
    ``csa_accumulate`` the 3:2 tree that takes the product words down to a sum and a carry
    word, which then meet the accumulator's two words in the loop). Each register is one
    more cycle of latency between a beat and its accumulation
    (:attr:`accumulate_latency_cycles`), added to ``drain_cycles``; a beat is still taken every
    cycle and ``fold_interval`` with ``output_double_buffer`` is unchanged. ``cpa_reg`` (with
    ``csa_accumulate``) registers the carry-propagate adds that turn each draining row's sum
    and carry words into results, which otherwise sit unregistered on the output port: every
    output beat leaves one cycle later, and without the output bank the next fold starts as
    the last row enters that register (``fold_interval`` is ``fold_cycles - 1``).
    :attr:`pipeline_cycles` counts all of them.

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
    mult_reg: bool = Field(
        False, description="a pipeline register on the multiplier outputs (one cycle of "
        "latency)")
    tree_stage_levels: TreeStageLevels = Field(
        0, description="a pipeline register after every N adder levels of the K-reduction "
        "trees (0: none; one cycle of latency each)")
    cpa_reg: bool = Field(
        False, description="with csa_accumulate: a register after the carry-propagate adds "
        "of the draining row (one cycle of latency per output beat)")

    @field_validator("cpa_reg")
    @classmethod
    def _cpa_reg_needs_csa(cls, value: bool, info: ValidationInfo) -> bool:
        """Only carry-save accumulators leave a carry-propagate add on the drain."""
        if value and info.data.get("csa_accumulate") is False:
            raise ValueError(
                "needs carry-save accumulators (csa_accumulate=false adds in the loop, there "
                "is no carry-propagate add on the drain to register); set "
                "csa_accumulate=true or cpa_reg=false")
        return value

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

    @field_validator("tree_stage_levels")
    @classmethod
    def _stages_in_tree(cls, every: int, info: ValidationInfo) -> int:
        d = info.data
        if every and all(x in d for x in ("k", "booth", "csa_accumulate", "a_bits",
                                          "acc_bits", "signed")):
            levels = cls._levels(d["k"], d["booth"], d["csa_accumulate"], d["a_bits"],
                                 d["acc_bits"], d["signed"])
            check_tree_stages(every, levels, f"the tree of k={d['k']} products")
        return every

    # -- pipelining -------------------------------------------------------------------------
    @staticmethod
    def _levels(k: int, booth: bool, csa: bool, a_bits: int, acc_bits: int,
                signed: bool) -> int:
        if not csa:
            return add_levels(k + booth)  # the k products (and Booth's correction word)
        digits = (min(booth_digits(a_bits, signed), -(-acc_bits // 2)) if booth
                  else min(a_bits, acc_bits))
        # a row per digit of each of the k products, a correction word and a constant word
        # at most (the generator builds the tree to this many levels)
        return csa_levels(k * digits + 2)

    @property
    def tree_levels(self) -> int:
        """Adder levels of each K-reduction tree: carry-propagate adds over the products, or
        with ``csa_accumulate`` 3:2 levels from the product words to a sum and a carry."""
        return self._levels(self.k, self.booth, self.csa_accumulate, self.a_bits,
                            self.acc_bits, self.signed)

    @property
    def tree_stages(self) -> int:
        """Pipeline registers in each tree: one after every ``tree_stage_levels``."""
        return self.tree_levels // self.tree_stage_levels if self.tree_stage_levels else 0

    @property
    def accumulate_latency_cycles(self) -> int:
        """Cycles from a beat being taken to its accumulation: the registers of the
        multiplier outputs and the trees."""
        return int(self.mult_reg) + self.tree_stages

    @property
    def output_register_cycles(self) -> int:
        """``cpa_reg``'s register: the next fold may start as the last result enters it."""
        return int(self.cpa_reg)

    @property
    def pipeline_cycles(self) -> int:
        """Cycles of latency all pipeline registers add to a fold (``cpa_reg`` included)."""
        return self.accumulate_latency_cycles + int(self.cpa_reg)

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
        """The ``m`` result rows leave one per cycle, from the cycle after the last beat
        leaves the pipeline registers."""
        return self.m + self.pipeline_cycles

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
            # the next fold starts as the last row enters the cpa_reg register
            return self.fold_cycles(stream_len) - self.output_register_cycles
        return max(self.stream_cycles(stream_len), self.m)

    def unrolling(self) -> Unrolling:
        """m <- M, n <- N, K streamed in chunks of k (one fold per m x n output tile)."""
        return Unrolling(m=self.m, n=self.n, k=None)

    def timing_contract(self) -> dict[str, Any]:
        """The timing formulas (Python expressions of m, n, k and the stream length K; the
        pipeline registers' cycles, a constant of the spec, as a number)."""
        pipe = f" + {self.pipeline_cycles}" if self.pipeline_cycles else ""
        return {
            "stream_len": "K",
            "fold_cycles": f"-(-K // k) + m{pipe}",
            "stream_cycles": "-(-K // k)",
            "preload_cycles": "0",
            "fill_cycles": "0",
            "drain_cycles": f"m{pipe}",
            "pipeline_cycles": str(self.pipeline_cycles),
            "fold_interval": "max(-(-K // k), m)" if self.output_double_buffer
            else f"-(-K // k) + m{pipe}" + (" - 1" if self.cpa_reg else ""),
            "initiation_interval_cycles": "1",
            "counted_from": "first input transfer of a fold to its last output transfer, inclusive",
            "gemm_folds": "ceil(M/m) * ceil(N/n)",
        }

    @property
    def name(self) -> str:
        opts = self.options_name(("booth", self.booth), ("csa", self.csa_accumulate),
                                 ("odb", self.output_double_buffer),
                                 ("mreg", self.mult_reg), ("cpareg", self.cpa_reg),
                                 (f"ts{self.tree_stage_levels}", self.tree_stage_levels > 0))
        return f"cube_{self.m}x{self.n}x{self.k}_{self.operands_name}{opts}"
