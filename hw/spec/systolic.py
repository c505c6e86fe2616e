"""The systolic array spec and its timing contract."""

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic.dataclasses import dataclass

from hw.spec.base import CONFIG, ArrayDim, EngineBase, Unrolling

__all__ = ["SystolicSpec"]


@dataclass(config=CONFIG, kw_only=True)
class SystolicSpec(EngineBase):
    """A ``rows`` x ``cols`` systolic array of multiply-accumulate PEs.

    Dataflows (``dataflow``):

    * ``"os"``, output stationary: PE (i, j) accumulates ``C[i, j] = sum_k A[i, k] * W[k, j]``.
      One fold computes a ``rows`` x ``cols`` output tile over a streamed reduction of any
      length K: ``fold_cycles(K) = K + 2*rows + cols - 2`` (skew fill ``rows + cols - 2``,
      steady state K, drain ``rows`` result rows).
    * ``"ws"``, weight stationary: PE (k, j) holds ``W[k, j]`` (a ``rows`` x ``cols`` weight
      tile); any number M of activation rows stream through:
      ``fold_cycles(M) = M + 2*rows + cols - 1`` (weight preload ``rows``, steady state M,
      pipeline latency ``rows + cols - 1``).

    Cycles are counted from the first input transfer of a fold to its last output transfer,
    both inclusive, with every stream valid/ready every cycle. Folds run back to back: the
    next fold starts ``fold_interval(stream_len)`` cycles after the current one, which is
    ``fold_cycles`` (no overlap) except with ``weight_double_buffer`` or
    ``output_double_buffer``.

    ``weight_double_buffer`` (WS only): every PE has a shadow weight register beside the active
    one, as the TPU's MXU double-buffers its weights "to hide the 256 cycles it takes to shift
    a tile in" (Jouppi et al., "In-Datacenter Performance Analysis of a Tensor Processing
    Unit", ISCA 2017, section 2). The next tile shifts into the shadow registers while the
    current fold streams; a switch token travelling with the first activation row of the next
    fold makes each PE take its new weight in the step that row reaches it. The shadow chain
    reloads once the token has passed every PE (``fill_cycles`` steps after the fold's first
    beat, then one cycle), so fold starts are ``fold_interval(M) = max(M, 2*rows + cols - 1)``
    cycles apart: a run of folds of lengths M_1..M_F takes ``sum_{i<F} max(M_i, 2*rows + cols
    - 1) + fold_cycles(M_F)`` cycles from the first weight beat to the last output beat.

    ``output_double_buffer`` (OS only): every PE has an output register beside its
    accumulator, so the drain of one fold hides behind the stream of the next, as the weight
    load does with ``weight_double_buffer``. A token travelling with a fold's last reduction
    beat makes each PE, in the step that beat reaches it, move its finished sum into the
    output register and restart its accumulator from zero; the next fold's beats follow at
    once. The output registers are read out row by row in place (a row multiplexer, not a
    shift chain, so that row 0, which the next fold's token reaches first, is also the first
    to be free). The next fold's last beat may enter once the current fold's row 0 leaves,
    ``fill_cycles + 1`` cycles after the current fold's last beat; in any later step its token
    finds the row it writes already drained. Folds therefore end
    ``fold_interval(K) = max(K, rows + cols - 1)`` cycles apart and a run of F folds of one
    reduction length K takes ``(F - 1) * max(K, rows + cols - 1) + fold_cycles(K)`` cycles.
    (The spacing is set by the folds' last beats: a fold of length K' ends ``max(K', rows +
    cols - 1)`` cycles after the one before it. The model charges every fold but the last its
    own length's interval, which is the same sum whenever the lengths are equal or all at
    least ``rows + cols - 1``.) With back-pressure on ``o`` the array stalls instead
    (``i.ready`` low) until the rows a handover would overwrite have left: no result is lost.

    ``cpa_reg`` (with ``csa_accumulate``): a register after the carry-propagate adders that
    turn the carry-save pairs into results at the array's edge, so that they no longer sit
    unregistered on the output port. Every output beat leaves one cycle later
    (``drain_cycles`` + 1), the array is free as early as before: without a double buffer the
    next fold starts as the current one's last row enters that register, so
    ``fold_interval`` is ``fold_cycles - 1``; with one it does not change.
    """

    kind: Literal["systolic"] = "systolic"
    rows: ArrayDim = Field(description="PE rows")
    cols: ArrayDim = Field(description="PE columns")
    dataflow: Literal["os", "ws"] = Field(
        "os", description="output stationary (os) or weight stationary (ws)")
    booth: bool = Field(
        False, description="radix-4 Booth partial products instead of one per weight bit")
    csa_accumulate: bool = Field(
        False, description="TPE OPT1: carry-save accumulation (sum and carry words), one "
        "carry-propagate add per output at the array edge")
    weight_double_buffer: bool = Field(
        False, description="WS only: a shadow weight register per PE; the next weight tile "
        "loads while the current fold streams (TPU MXU, Jouppi et al. ISCA 2017)")

    output_double_buffer: bool = Field(
        False, description="OS only: an output register per PE; a fold's results drain while "
        "the next fold streams")
    cpa_reg: bool = Field(
        False, description="with csa_accumulate: a register after the edge carry-propagate "
        "adders (one cycle of latency per output beat)")

    @field_validator("cpa_reg")
    @classmethod
    def _cpa_reg_needs_csa(cls, value: bool, info: ValidationInfo) -> bool:
        """Only carry-save accumulators leave an edge carry-propagate adder to register."""
        if value and info.data.get("csa_accumulate") is False:
            raise ValueError(
                "needs carry-save accumulators (csa_accumulate=false adds in every PE, there "
                "is no edge carry-propagate adder to register); set csa_accumulate=true or "
                "cpa_reg=false")
        return value

    @field_validator("weight_double_buffer")
    @classmethod
    def _double_buffer_needs_ws(cls, value: bool, info: ValidationInfo) -> bool:
        """Only a weight-stationary array holds weights that could be double-buffered."""
        dataflow = info.data.get("dataflow")
        if value and dataflow != "ws":
            raise ValueError(
                f"needs weight-stationary weights to double buffer (dataflow={dataflow!r}); "
                "set dataflow=ws or weight_double_buffer=false")
        return value

    @field_validator("output_double_buffer")
    @classmethod
    def _output_buffer_needs_os(cls, value: bool, info: ValidationInfo) -> bool:
        """Only an output-stationary array holds results in its PEs that could drain while the
        next fold streams (a WS array streams its outputs out as it computes them)."""
        dataflow = info.data.get("dataflow")
        if value and dataflow != "os":
            raise ValueError(
                f"needs output-stationary results to double buffer (dataflow={dataflow!r}); "
                "set dataflow=os or output_double_buffer=false")
        return value

    @property
    def output_register_cycles(self) -> int:
        """``cpa_reg``'s register: the next fold may start as the last result enters it."""
        return int(self.cpa_reg)

    @property
    def pipeline_cycles(self) -> int:
        """Cycles of latency the pipeline registers add to a fold (``cpa_reg``'s one)."""
        return int(self.cpa_reg)

    # -- timing contract (the cycle model's single source of truth) ------------------------
    @property
    def macs_per_cycle(self) -> int:
        return self.rows * self.cols

    @property
    def preload_cycles(self) -> int:
        """Cycles that load the stationary weight tile before streaming (WS only)."""
        return self.rows if self.dataflow == "ws" else 0

    @property
    def fill_cycles(self) -> int:
        """Skew: cycles between the first and the last PE starting useful work."""
        return self.rows + self.cols - 2

    @property
    def drain_cycles(self) -> int:
        """Cycles after the last MAC until the last result row has left the array."""
        # OS shifts the rows x cols result tile out one row per cycle; WS presents each
        # output row one cycle after its last MAC (the bottom partial-sum register); the
        # register after the edge adders delays every output beat once more.
        return (self.rows if self.dataflow == "os" else 1) + self.cpa_reg

    def fold_cycles(self, stream_len: int) -> int:
        """Cycles of one fold that streams ``stream_len`` beats (K for OS, M for WS)."""
        if stream_len < 1:
            raise ValueError(f"stream_len must be >= 1, got {stream_len!r}")
        return self.preload_cycles + stream_len + self.fill_cycles + self.drain_cycles

    def fold_interval(self, stream_len: int) -> int:
        """Cycles from the start of one fold to the start of the next, folds back to back.

        With ``weight_double_buffer`` the next tile's ``preload_cycles`` beats load into the
        shadow registers once the switch token of the current fold has crossed the array
        (``fill_cycles`` steps after its first beat, plus the cycle it leaves the last PE), so
        the next fold may start ``preload + fill + 1`` cycles after the current one, or when
        the current fold's ``stream_len`` beats have entered, whichever is later.

        With ``output_double_buffer`` the next fold's last beat may enter once the current
        fold's first result row leaves (``fill_cycles + 1`` cycles after its last beat), or
        right after its own earlier beats, whichever is later: folds of one length end (and,
        when ``K >= rows + cols - 1``, start) this many cycles apart (class docstring)."""
        if not (self.weight_double_buffer or self.output_double_buffer):
            # the next fold starts as the last output beat enters the cpa_reg register
            return self.fold_cycles(stream_len) - self.output_register_cycles
        if stream_len < 1:
            raise ValueError(f"stream_len must be >= 1, got {stream_len!r}")
        return max(stream_len, self.preload_cycles + self.fill_cycles + 1)

    def unrolling(self) -> Unrolling:
        """OS: rows <- M, cols <- N, K streamed; WS: rows <- K, cols <- N, M streamed."""
        if self.dataflow == "os":
            return Unrolling(m=self.rows, n=self.cols, k=None)
        return Unrolling(m=None, n=self.cols, k=self.rows)

    def timing_contract(self) -> dict[str, Any]:
        """The timing formulas (Python expressions of rows, cols and the stream length)."""
        stream = "K" if self.dataflow == "os" else "M"
        extra = "- 2" if self.dataflow == "os" else "- 1"
        reg = " + 1" if self.cpa_reg else ""
        cpa = {"- 2": "- 1", "- 1": ""}[extra] if self.cpa_reg else extra
        return {
            "stream_len": stream,
            "fold_cycles": f"{stream} + 2*rows + cols {cpa}".rstrip(),
            "preload_cycles": "rows" if self.dataflow == "ws" else "0",
            "fill_cycles": "rows + cols - 2",
            "drain_cycles": ("rows" if self.dataflow == "os" else "1") + reg,
            "pipeline_cycles": str(self.pipeline_cycles),
            "fold_interval": ("max(M, 2*rows + cols - 1)" if self.weight_double_buffer
                              else "max(K, rows + cols - 1)" if self.output_double_buffer
                              else f"{stream} + 2*rows + cols {extra}"),
            "initiation_interval_cycles": "1",
            "counted_from": "first input transfer of a fold to its last output transfer, inclusive",
            "gemm_folds": (
                "ceil(M/rows) * ceil(N/cols)" if self.dataflow == "os"
                else "ceil(K/rows) * ceil(N/cols)"
            ),
        }

    @property
    def name(self) -> str:
        opts = self.options_name(("booth", self.booth), ("csa", self.csa_accumulate),
                                 ("wdb", self.weight_double_buffer),
                                 ("odb", self.output_double_buffer),
                                 ("cpareg", self.cpa_reg))
        return f"systolic_{self.dataflow}_{self.rows}x{self.cols}_{self.operands_name}{opts}"
