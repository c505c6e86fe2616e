"""The MX dot-product engine spec (OCP Microscaling block formats) and its timing contract."""

from __future__ import annotations

from dataclasses import dataclass as plain_dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic.dataclasses import dataclass
from pydantic_core import ArgsKwargs

from hw.spec.base import CONFIG, ArrayDim, EngineBase, Unrolling
from models.mx import ELEMENTS, ElementFormat

__all__ = ["MX_ELEMENTS", "ElementDecode", "MxSpec", "element_decode", "parse_formats"]

#: The element formats the engine decodes (OCP MX v1.0 section 5.3: FP8 E4M3 and E5M2, FP6
#: E3M2 and E2M3, FP4 E2M1, and MXINT8's INT8), by :mod:`models.mx` name.
MX_ELEMENTS: tuple[str, ...] = ("fp8_e4m3", "fp8_e5m2", "fp6_e3m2", "fp6_e2m3", "fp4_e2m1",
                                "int8")
#: E8M0 scale codes: 8 bits, bias 127, 0xFF NaN (OCP MX v1.0 section 5.4).
SCALE_BITS, SCALE_BIAS, SCALE_NAN = 8, 127, 255


@plain_dataclass(frozen=True, slots=True)
class ElementDecode:
    """How the engine decodes one element format into an exact fixed-point integer.

    A code's value is ``sig * 2**(shift + unit)``: ``sig`` a signed significand of
    ``sig_bits`` bits (floats: the mantissa with its hidden bit, ``0`` exponent field
    subnormal, negated by the sign bit; integers: the code itself), ``shift`` in
    ``0..max_shift`` (floats: the exponent field less one, 0 for subnormals; integers: 0)
    and ``unit`` the value of the format's smallest step, a power of two. ``special``:
    whether the format has codes that are not finite numbers (E4M3's NaN at S.1111.111,
    E5M2's infinities and NaNs at the all-ones exponent).
    """

    fmt: ElementFormat
    sig_bits: int
    max_shift: int
    unit: int

    @property
    def bits(self) -> int:
        return self.fmt.bits

    @property
    def has_specials(self) -> bool:
        return self.fmt.ieee_specials or self.fmt.nan_at_max

    @property
    def fixed_bits(self) -> int:
        """Bits of the two's-complement integer ``sig << shift`` (the exact fixed-point value
        in units of ``2**unit``)."""
        return self.sig_bits + self.max_shift

    def fields(self, code: int) -> tuple[int, int, bool]:
        """``(sig, shift, special)`` of one code, as the hardware decodes it."""
        e = self.fmt
        if not e.is_float:
            sig = code - (1 << e.bits) if code >> (e.bits - 1) else code
            return sig, 0, False
        exp = code >> e.man_bits & ((1 << e.exp_bits) - 1)
        man = code & ((1 << e.man_bits) - 1)
        mag = man | (1 << e.man_bits) if exp else man
        sig = -mag if code >> (e.bits - 1) else mag
        top = (1 << e.exp_bits) - 1
        special = ((e.ieee_specials and exp == top)
                   or (e.nan_at_max and exp == top and man == (1 << e.man_bits) - 1))
        return sig, max(exp, 1) - 1, special


def element_decode(name: str) -> ElementDecode:
    """The decode of element format ``name`` (one of :data:`MX_ELEMENTS`)."""
    e = ELEMENTS[name]
    if not e.is_float:
        return ElementDecode(e, sig_bits=e.bits, max_shift=0, unit=-e.frac_bits)
    return ElementDecode(e, sig_bits=e.man_bits + 2, max_shift=(1 << e.exp_bits) - 2,
                         unit=1 - e.bias - e.man_bits)


def parse_formats(text: str) -> tuple[str, ...]:
    """The element formats of a ``formats`` string (``"fp8_e4m3+fp4_e2m1"``), in order."""
    names = tuple(s.strip() for s in text.split("+"))
    bad = [n for n in names if n not in MX_ELEMENTS]
    if bad or not names:
        raise ValueError(f"unknown element format {bad[0] if bad else text!r}; use one or "
                         f"more of {', '.join(MX_ELEMENTS)} joined by '+'")
    if len(set(names)) != len(names):
        raise ValueError(f"{text!r} names a format twice")
    return names


def _code_bits(text: str) -> int:
    return max(ELEMENTS[n].bits for n in parse_formats(text))


_ABBREV = {"fp8_e4m3": "e4m3", "fp8_e5m2": "e5m2", "fp6_e3m2": "e3m2", "fp6_e2m3": "e2m3",
           "fp4_e2m1": "e2m1", "int8": "i8"}


@dataclass(config=CONFIG, kw_only=True)
class MxSpec(EngineBase):
    """Rows x lanes of MX block dot products (OCP Microscaling v1.0), output stationary.

    Every beat brings, per row, one block of ``block`` activation element codes with its
    E8M0 scale (broadcast to every lane of the row) and, per lane, one block of weight
    element codes with its scale (broadcast to every row: a weight block read from the
    buffer serves ``rows`` outputs). Each (row, lane) decodes the codes into exact
    fixed-point integers (a signed significand shifted by the exponent field:
    :class:`ElementDecode`; the weights' decoders are shared by the rows), multiplies them
    exactly (significand x significand, shifts added), sums the block's ``block`` products
    exactly, and adds the sum to its accumulator aligned by the block's exponent: the two
    scales' exponents plus the two formats' fixed-point units. The accumulator is an
    ``acc_bits`` two's-complement fixed-point register whose least significant bit weighs
    ``2**acc_lsb_exp``; a block sum of weight ``2**e`` enters it shifted by ``e -
    acc_lsb_exp``: left (bits beyond the register are dropped: the register wraps modulo
    ``2**acc_bits``) or right with an arithmetic shift (rounding towards minus infinity). OCP
    MX v1.0 (section 6.2) leaves the dot product's internal precision to the implementation;
    this engine's is exact up to the accumulator's LSB and range.

    Non-finite operands: a NaN scale (0xFF), an E4M3 NaN code or an E5M2 infinity or NaN
    in the blocks of an output make that output the integer indefinite ``-2**(acc_bits-1)``
    (as x86's float-to-integer conversions answer a NaN) instead of its accumulator.

    ``formats`` lists the element formats the engine decodes (``+``-joined); with more than
    one, every beat selects the activations' and the weights' format (``a_sel``, ``w_sel``,
    indices into the list), so mixed pairs (W-MXFP4 x A-MXFP8) run on the same lanes. The
    datapath is sized by the widest of them.

    Timing: one fold computes ``C[m0:m0+rows, n0:n0+lanes]`` over a reduction of any length
    K in ``ceil(K/block)`` beats (a partial last block padded with zero codes), then presents
    the results one row per output beat: ``fold_cycles(K) = ceil(K/block) + rows``. Cycles
    are counted from the first input transfer of a fold to its last output transfer, both
    inclusive, with every stream valid/ready every cycle. Folds run back to back.
    """

    kind: Literal["mx"] = "mx"
    signed: Literal[True] = Field(
        True, description="always true: MX elements and accumulators are signed")
    lanes: ArrayDim = Field(description="dot-product lanes (output columns per fold, GEMM N)")
    rows: Annotated[int, Field(ge=1, le=64)] = Field(
        1, description="activation rows (output rows per fold, GEMM M) sharing each lane's "
        "weight block")
    block: Annotated[int, Field(ge=1, le=32)] = Field(
        32, description="elements per block sharing one E8M0 scale, a power of two (32 in "
        "OCP MX v1.0); one block per beat")
    formats: str = Field(
        "fp8_e4m3", description="element formats decoded, joined by '+' (fp8_e4m3, fp8_e5m2, "
        "fp6_e3m2, fp6_e2m3, fp4_e2m1, int8); several: selected per beat")
    acc_lsb_exp: Annotated[int, Field(ge=-400, le=400)] = Field(
        -16, description="exponent of the accumulator's least significant bit (its value is "
        "acc * 2**acc_lsb_exp)")

    @model_validator(mode="before")
    @classmethod
    def _code_widths(cls, data: Any) -> Any:
        """``a_bits`` and ``w_bits`` are the widest element code of ``formats``: filled in
        when absent, refused when different."""
        if not isinstance(data, ArgsKwargs) or data.kwargs is None:
            return data
        kw = dict(data.kwargs)
        text = kw.get("formats", "fp8_e4m3")
        try:
            bits = _code_bits(text) if isinstance(text, str) else None
        except ValueError:
            return data  # the field validator names the problem
        if bits is not None:
            for name in ("a_bits", "w_bits"):
                if name not in kw:
                    kw[name] = bits
        return ArgsKwargs(data.args, kw)

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, v: str) -> str:
        parse_formats(v)
        return v

    @field_validator("block")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        if v & (v - 1):
            raise ValueError(f"must be a power of two (got {v!r})")
        return v

    def __post_init__(self) -> None:
        bits = _code_bits(self.formats)
        for name in ("a_bits", "w_bits"):
            if getattr(self, name) != bits:
                raise ValueError(f"{name}: the codes of {self.formats} are {bits} bits wide; "
                                 f"leave {name} out or set it to {bits} (got "
                                 f"{getattr(self, name)!r})")

    # -- the formats ----------------------------------------------------------------------
    @property
    def element_formats(self) -> tuple[str, ...]:
        return parse_formats(self.formats)

    @property
    def decodes(self) -> tuple[ElementDecode, ...]:
        return tuple(element_decode(n) for n in self.element_formats)

    @property
    def sel_bits(self) -> int:
        """Bits of a beat's format select (0 with one format)."""
        return (len(self.element_formats) - 1).bit_length()

    @property
    def sig_bits(self) -> int:
        return max(d.sig_bits for d in self.decodes)

    @property
    def max_shift(self) -> int:
        return max(d.max_shift for d in self.decodes)

    @property
    def product_bits(self) -> int:
        """Bits of one exact product ``(sig_a * sig_w) << (shift_a + shift_w)``."""
        return 2 * self.sig_bits + 2 * self.max_shift

    @property
    def block_sum_bits(self) -> int:
        """Bits of an exact block sum of ``block`` products."""
        return self.product_bits + (self.block - 1).bit_length()

    # -- timing contract (the cycle model's single source of truth) ------------------------
    @property
    def macs_per_cycle(self) -> int:
        return self.rows * self.lanes * self.block

    @property
    def preload_cycles(self) -> int:
        return 0

    @property
    def fill_cycles(self) -> int:
        """A beat is decoded, multiplied, reduced and accumulated in the cycle it is taken."""
        return 0

    @property
    def drain_cycles(self) -> int:
        """The result rows leave one per cycle, from the cycle after the last input beat."""
        return self.rows

    def stream_cycles(self, stream_len: int) -> int:
        """Input beats of a fold: one per block, ``ceil(K/block)``."""
        if stream_len < 1:
            raise ValueError(f"stream_len must be >= 1, got {stream_len!r}")
        return -(-stream_len // self.block)

    def unrolling(self) -> Unrolling:
        """rows <- M, lanes <- N, K streamed one block per beat."""
        return Unrolling(m=self.rows, n=self.lanes, k=None)

    def timing_contract(self) -> dict[str, Any]:
        """The timing formulas (Python expressions of rows, lanes, block and K)."""
        return {
            "stream_len": "K",
            "fold_cycles": "-(-K // block) + rows",
            "stream_cycles": "-(-K // block)",
            "preload_cycles": "0",
            "fill_cycles": "0",
            "drain_cycles": "rows",
            "initiation_interval_cycles": "1",
            "counted_from": "first input transfer of a fold to its last output transfer, "
                            "inclusive",
            "gemm_folds": "ceil(M/rows) * ceil(N/lanes)",
        }

    @property
    def name(self) -> str:
        fmts = "_".join(_ABBREV[n] for n in self.element_formats)
        lsb = f"m{-self.acc_lsb_exp}" if self.acc_lsb_exp < 0 else str(self.acc_lsb_exp)
        shape = f"{self.rows}x{self.lanes}" if self.rows > 1 else str(self.lanes)
        return f"mx_{shape}x{self.block}_{fmts}_p{self.acc_bits}l{lsb}"
