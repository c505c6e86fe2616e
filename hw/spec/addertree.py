"""The multiplier-adder tree spec (dot-product lanes, NVDLA CMAC style) and its timing."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic.dataclasses import dataclass

from hw.spec.base import (
    CONFIG,
    ArrayDim,
    EngineBase,
    TreeStageLevels,
    Unrolling,
    add_levels,
    booth_digits,
    check_tree_stages,
    csa_levels,
)

__all__ = ["AdderTreeSpec", "TreeDepth"]

#: Products per lane and beat (the width of each lane's adder tree).
TreeDepth = Annotated[int, Field(ge=1, le=64)]


@dataclass(config=CONFIG, kw_only=True)
class AdderTreeSpec(EngineBase):
    """Dot-product lanes of k multipliers and an adder tree each (NVDLA CMAC style).

    Every beat brings ``k`` activations, broadcast to every lane; each lane multiplies them
    with its ``k`` weights and reduces the products in an adder tree. Dataflows
    (``dataflow``):

    * ``"os"``, output stationary (one output row per fold): each beat also brings the
      ``lanes`` x ``k`` weights, and every lane accumulates over the beats. One fold
      computes ``C[m, n0:n0+lanes]`` over a streamed reduction of any length K in
      ``ceil(K/k)`` beats (a partial last chunk padded with zeros), then presents the
      ``lanes`` results in one output beat: ``fold_cycles(K) = ceil(K/k) + 1``.
    * ``"ws"``, weight stationary (NVDLA CMAC's own dataflow): a ``k`` x ``lanes`` weight
      tile is preloaded in ``k`` beats, then any number M of activation rows stream through,
      one beat each, and every row leaves one cycle later as ``lanes`` partial dot products
      over that K chunk (partial sums of the ``ceil(K/k)`` reduction folds are added outside
      the engine, as NVDLA's CACC does): ``fold_cycles(M) = k + M + 1``.

    Options (the TPE paper's bit-weight transformations, HPCA 2025, docs/bit_weight.md): ``booth``
    uses radix-4 Booth digits of the activations (in {-2..+2}, recoded once per beat for all
    lanes) instead of Yosys's default multiplier; ``compress`` (OPT2, same-bit-weight
    compressor array) recodes the ``k`` activations once per beat into digits shared by all
    lanes (radix-4 Booth digits with ``booth``, else their bits) and, per lane and digit
    position j, compresses the ``k`` selected partial products of equal weight without
    shifting; the positions are combined ``S0 + S1<<2 + S2<<4 + ...`` (``<<1`` steps with
    bits) once per lane and beat (with the accumulator under OS) in one carry-save tree and
    a single carry-propagate add. Results are bit exact either way; the timing does not
    change.

    Pipelining (the timing changes, the results do not): ``mult_reg`` registers the
    multiplier outputs (the products, or with ``compress`` the selected partial products)
    before the tree; ``tree_stage_levels = N`` registers the reduction tree after every N
    adder levels (:attr:`tree_levels` of them: the binary tree over the k products, or with
    ``compress`` the same-weight planes, the tree that combines them and its
    carry-propagate add; the accumulator's add stays out of it). Each register is one more
    cycle of latency, :attr:`pipeline_cycles` in all, added to ``drain_cycles``; a beat is
    still taken every cycle.

    Cycles are counted from the first input transfer of a fold to its last output transfer,
    both inclusive, with every stream valid/ready every cycle. Folds run back to back.
    """

    kind: Literal["addertree"] = "addertree"
    lanes: ArrayDim = Field(description="dot-product lanes (output columns per fold, GEMM N)")
    k: TreeDepth = Field(description="products per lane and beat (adder tree width, GEMM K)")
    dataflow: Literal["os", "ws"] = Field(
        "os", description="output stationary, one output row per fold, K streamed (os), or "
        "weight stationary, a k x lanes weight tile preloaded, M streamed (ws)")
    booth: bool = Field(
        False, description="radix-4 Booth digits of the activations instead of Yosys's "
        "default multiplier")
    compress: bool = Field(
        False, description="TPE OPT2: activations recoded once per beat for all lanes, equal "
        "bit-weight partial products compressed first, shifted once per lane and beat")
    mult_reg: bool = Field(
        False, description="a pipeline register on the multiplier outputs (one cycle of "
        "latency)")
    tree_stage_levels: TreeStageLevels = Field(
        0, description="a pipeline register after every N adder levels of the reduction tree "
        "(0: none; one cycle of latency each)")

    @field_validator("tree_stage_levels")
    @classmethod
    def _stages_in_tree(cls, every: int, info: ValidationInfo) -> int:
        d = info.data
        if every and all(x in d for x in ("k", "booth", "compress", "a_bits", "acc_bits",
                                          "signed", "dataflow")):
            levels = sum(cls._sections(d["k"], d["booth"], d["compress"], d["a_bits"],
                                       d["acc_bits"], d["signed"]))
            check_tree_stages(every, levels, f"the tree of k={d['k']} products")
        return every

    # -- pipelining -------------------------------------------------------------------------
    @staticmethod
    def _sections(k: int, booth: bool, compress: bool, a_bits: int, acc_bits: int,
                  signed: bool) -> tuple[int, ...]:
        """Adder levels of each section of the pipelined reduction tree, in order (the
        generator builds each section to exactly this many levels)."""
        if not compress:
            return (add_levels(k + booth),)  # the k products (and Booth's correction word)
        positions = (min(booth_digits(a_bits, signed), -(-acc_bits // 2)) if booth
                     else min(a_bits, acc_bits))
        # per position the k rows and the count of negative digits; then two words per
        # position and one constant word; then the carry-propagate add
        return (csa_levels(k + 1), csa_levels(2 * positions + 1), 1)

    @property
    def tree_sections(self) -> tuple[int, ...]:
        """Levels of the sections of the reduction tree (see :attr:`tree_levels`)."""
        return self._sections(self.k, self.booth, self.compress, self.a_bits, self.acc_bits,
                              self.signed)

    @property
    def tree_levels(self) -> int:
        """Adder levels of each lane's reduction tree (carry-propagate adds, or with
        ``compress`` 3:2 carry-save levels and the final carry-propagate add)."""
        return sum(self.tree_sections)

    @property
    def tree_stages(self) -> int:
        """Pipeline registers in the reduction tree: one after every ``tree_stage_levels``."""
        return self.tree_levels // self.tree_stage_levels if self.tree_stage_levels else 0

    @property
    def pipeline_cycles(self) -> int:
        """Cycles of latency the pipeline registers add (multiplier outputs and tree)."""
        return int(self.mult_reg) + self.tree_stages

    # -- timing contract (the cycle model's single source of truth) ------------------------
    @property
    def macs_per_cycle(self) -> int:
        return self.lanes * self.k

    @property
    def preload_cycles(self) -> int:
        """Cycles that load the stationary weight tile before streaming (WS only)."""
        return self.k if self.dataflow == "ws" else 0

    @property
    def fill_cycles(self) -> int:
        """A beat is multiplied and reduced in the cycle it is taken."""
        return 0

    @property
    def drain_cycles(self) -> int:
        """OS: the result beat leaves in the cycle after the last input beat; WS: every row
        leaves one cycle after it enters, so the last one a cycle after the stream; plus the
        pipeline registers' cycles."""
        return 1 + self.pipeline_cycles

    def stream_cycles(self, stream_len: int) -> int:
        """Input beats of a fold: ceil(K/k) for OS (stream K), M for WS (stream M)."""
        if stream_len < 1:
            raise ValueError(f"stream_len must be >= 1, got {stream_len!r}")
        return -(-stream_len // self.k) if self.dataflow == "os" else stream_len

    def unrolling(self) -> Unrolling:
        """OS: lanes <- N, one output row per fold, K streamed in chunks of k;
        WS: lanes <- N, k <- K, M streamed (reduction folds summed outside)."""
        if self.dataflow == "os":
            return Unrolling(m=1, n=self.lanes, k=None)
        return Unrolling(m=None, n=self.lanes, k=self.k)

    def timing_contract(self) -> dict[str, Any]:
        """The timing formulas (Python expressions of lanes, k and the stream length; the
        pipeline registers' cycles, a constant of the spec, as a number)."""
        drain = str(self.drain_cycles)
        if self.dataflow == "os":
            return {
                "stream_len": "K",
                "fold_cycles": f"-(-K // k) + {drain}",
                "stream_cycles": "-(-K // k)",
                "preload_cycles": "0",
                "fill_cycles": "0",
                "drain_cycles": drain,
                "pipeline_cycles": str(self.pipeline_cycles),
                "initiation_interval_cycles": "1",
                "counted_from": "first input transfer of a fold to its last output transfer, "
                                "inclusive",
                "gemm_folds": "M * ceil(N/lanes)",
            }
        return {
            "stream_len": "M",
            "fold_cycles": f"k + M + {drain}",
            "stream_cycles": "M",
            "preload_cycles": "k",
            "fill_cycles": "0",
            "drain_cycles": drain,
            "pipeline_cycles": str(self.pipeline_cycles),
            "initiation_interval_cycles": "1",
            "counted_from": "first input transfer of a fold to its last output transfer, "
                            "inclusive",
            "gemm_folds": "ceil(K/k) * ceil(N/lanes)",
        }

    @property
    def name(self) -> str:
        opts = self.options_name(("booth", self.booth), ("cmp", self.compress),
                                 ("mreg", self.mult_reg),
                                 (f"ts{self.tree_stage_levels}", self.tree_stage_levels > 0))
        return f"addertree_{self.dataflow}_{self.lanes}x{self.k}_{self.operands_name}{opts}"
