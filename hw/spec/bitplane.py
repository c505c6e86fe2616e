"""The bit-plane engine spec (arbitrary precision on binary units) and its timing contract."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field
from pydantic.dataclasses import dataclass

from hw.spec.base import CONFIG, EngineBase, Unrolling

__all__ = ["BitplaneSpec", "bipolar_offset", "plane_schedule"]

#: Array edge (PEs).
BitplaneDim = Annotated[int, Field(ge=1, le=64)]


def plane_schedule(a_bits: int, w_bits: int) -> list[tuple[int, int, bool]]:
    """The plane pairs ``(i, j, shift)`` in the order the engine takes them, one per cycle.

    Diagonals of equal bit-weight ``i + j`` from the most significant down; ``shift`` is
    True on the first pair of every diagonal but the first: the group register doubles there
    (Horner's rule over bit-weights), so no PE ever shifts by more than one place.
    """
    out: list[tuple[int, int, bool]] = []
    for s in range(a_bits + w_bits - 2, -1, -1):
        first = True
        for i in range(min(s, a_bits - 1), max(0, s - w_bits + 1) - 1, -1):
            out.append((i, s - i, first and bool(out)))
            first = False
    return out


def bipolar_offset(bits: int, signed: bool) -> int:
    """``d`` of the bipolar-INT reading ``B = 2*x + d`` of a plain ``bits``-wide integer x.

    Signed x: the planes are x's bits with the sign bit inverted (offset binary), each bit u
    read as ``2u - 1``: ``B = 2x + 1``. Unsigned x: its bits read as ``2u - 1``:
    ``B = 2x - (2**bits - 1)``.
    """
    return 1 if signed else 1 - (1 << bits)


@dataclass(config=CONFIG, kw_only=True)
class BitplaneSpec(EngineBase):
    """A ``rows`` x ``cols`` array of binary dot-product units with shift-add recovery.

    Organisation (output stationary): PE (r, c) accumulates ``C[m0 + r, n0 + c]``; rows <- M,
    cols <- N, and the reduction K streams through ``depth`` elements per input beat. Each
    operand is split into bit planes; for every plane pair (i, j) of a beat, PE (r, c)
    computes a ``depth``-wide 1-bit dot product of activation plane i of row r with weight
    plane j of column c (a popcount), and shift-add recovery weights it by ``2**(i+j)``. One
    plane pair per cycle: ``a_bits * w_bits`` cycles per beat. Pairs go by diagonals of equal
    bit-weight, most significant first (:func:`plane_schedule`), so the PE's group register
    only ever doubles (the TPE paper's same-bit-weight merging: equal weights are summed
    before the shift).

    Encodings (``encoding``); operands are always plain integers in the operand range
    (two's complement when ``signed``) and the result is exactly ``A @ W`` wrapped at
    ``acc_bits``:

    * ``"twos"``: {0, 1} planes, AND-popcount; the sign planes of signed operands carry
      weight ``-2**(bits-1)``, so pairs with one sign plane subtract.
    * ``"bipolar"`` (bipolar-INT, APNN style): every plane is read as {-1, +1}
      (``x = (B - d)/2`` with ``B = sum_i 2**i b_i``, see :func:`bipolar_offset`); the units
      do XNOR-popcount and every pair adds (no sign planes). Per output
      ``2*C = X - dw*sum_k A - da*sum_k W - L*kappa`` with
      ``X = sum_ij 2**(i+j) popcount(XNOR)``, ``L`` the lanes streamed and
      ``kappa = ((2**a_bits - 1)*(2**w_bits - 1) + da*dw)/2``: the row sums (shared by a row),
      column sums (shared by a column) and ``L*kappa`` (one global register) are applied
      once per output in the drain path, the halving exact (accumulators one bit wider).
    * ``carry_save`` (the TPE paper's OPT1): group register and accumulator as sum/carry
      pairs of carry-save adders; one carry-propagate add per output, in the drain path.

    Timing: ``fold_cycles(K) = 1 + ceil(K/depth)*a_bits*w_bits + rows`` from the first input
    beat to the last output beat, inclusive (input plane register 1, plane pairs, drain one
    output row per cycle). Folds run back to back.
    """

    runtime_precision: ClassVar[bool] = True

    kind: Literal["bitplane"] = "bitplane"
    rows: BitplaneDim = Field(description="PE rows (output rows, M)")
    cols: BitplaneDim = Field(description="PE columns (output columns, N)")
    depth: Annotated[int, Field(ge=1, le=64)] = Field(
        8, description="K elements per input beat: the length of each binary unit's "
        "1-bit dot product (popcount width)")
    encoding: Literal["twos", "bipolar"] = Field(
        "twos", description="bit planes as {0,1} with two's complement sign planes "
        "(AND-popcount) or bipolar-INT {-1,+1} (XNOR-popcount plus a per-output correction)")
    carry_save: bool = Field(
        False, description="OPT1: carry-save group register and accumulator, one CPA per output")

    # -- timing contract (the cycle model's single source of truth) ------------------------
    @property
    def macs_per_cycle(self) -> float:
        """MACs per cycle in steady state: ``rows*cols*depth`` every ``a_bits*w_bits`` cycles."""
        return self.rows * self.cols * self.depth / (self.a_bits * self.w_bits)

    @property
    def preload_cycles(self) -> int:
        """No stationary operand is preloaded."""
        return 0

    @property
    def fill_cycles(self) -> int:
        """The input plane register: the first beat's planes are used the cycle after it."""
        return 1

    @property
    def drain_cycles(self) -> int:
        """The ``rows`` x ``cols`` result tile leaves one row per cycle."""
        return self.rows

    @property
    def cycles_per_beat(self) -> int:
        """Plane pairs per input beat (one pair per cycle)."""
        return self.a_bits * self.w_bits

    def stream_cycles(self, stream_len: int) -> int:
        """Plane-pair cycles of a fold: ``ceil(K/depth)`` beats of ``a_bits*w_bits`` pairs."""
        return -(-stream_len // self.depth) * self.cycles_per_beat

    def unrolling(self) -> Unrolling:
        """rows <- M, cols <- N, K streamed (``depth`` elements per beat)."""
        return Unrolling(m=self.rows, n=self.cols, k=None)

    def timing_contract(self) -> dict[str, Any]:
        """The timing formulas (Python expressions of the spec's fields and K)."""
        return {
            "stream_len": "K",
            "fold_cycles": "1 + -(-K // depth) * a_bits * w_bits + rows",
            "preload_cycles": "0",
            "fill_cycles": "1",
            "stream_cycles": "-(-K // depth) * a_bits * w_bits",
            "drain_cycles": "rows",
            "input_beats": "-(-K // depth)",
            "initiation_interval_cycles": "a_bits * w_bits",
            "counted_from": "first input transfer of a fold to its last output transfer, inclusive",
            "gemm_folds": "ceil(M/rows) * ceil(N/cols)",
            "organisation": "output stationary: rows <- M, cols <- N; K streams `depth` "
            "elements per beat; one plane pair (i, j) per cycle, diagonals of i+j MSB first",
        }

    @property
    def name(self) -> str:
        acc = "cs" if self.carry_save else "cpa"
        return (f"bitplane_{self.rows}x{self.cols}_d{self.depth}_{self.encoding}_{acc}"
                f"_{self.operands_name}")
