"""Shared pieces of every spec: the error type, field types, the engine base class."""

import dataclasses
from typing import Annotated, Any, ClassVar

import pydantic
from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass

__all__ = ["CONFIG", "PIPELINE_FIELDS", "AccBits", "ArrayDim", "EngineBase", "OperandBits",
           "SpecError",
           "TreeStageLevels", "add_levels", "booth_digits", "build", "check_tree_stages",
           "csa_levels"]

#: Every spec dataclass: unknown keys rejected, no type coercion, immutable.
CONFIG = ConfigDict(extra="forbid", strict=True, frozen=True)

#: Operand widths every engine accepts (bits).
OperandBits = Annotated[int, Field(ge=1, le=16)]
#: Accumulator width (bits); results wrap modulo 2**acc_bits like the hardware does.
AccBits = Annotated[int, Field(ge=1, le=64)]
#: Array edge length (PEs). 256 bounds RTL size; the models accept the same range.
ArrayDim = Annotated[int, Field(ge=1, le=256)]


#: The spec fields that add pipeline registers (latency, never results), in the kinds that
#: have them: apart from the arithmetic options (``booth``, ``csa_accumulate``, ...).
PIPELINE_FIELDS = ("mult_reg", "tree_stage_levels", "cpa_reg")

#: Adder levels between pipeline registers of a reduction tree (0: the tree is not pipelined).
TreeStageLevels = Annotated[int, Field(ge=0, le=64)]


def add_levels(n: int) -> int:
    """Levels of a balanced binary tree of carry-propagate adds over ``n`` values
    (:func:`hw.arith.add_tree`): ``ceil(log2 n)``."""
    return (n - 1).bit_length() if n > 1 else 0


def csa_levels(n: int) -> int:
    """Levels of 3:2 carry-save adders that take ``n`` words down to two
    (:func:`hw.arith.csa_reduce`: each level turns every three words into two)."""
    levels = 0
    while n > 2:
        n = 2 * (n // 3) + n % 3
        levels += 1
    return levels


def booth_digits(a_bits: int, signed: bool) -> int:
    """Radix-4 Booth digits of an ``a_bits`` activation (:func:`hw.arith.recode`): one per
    two bits, one more bit's worth when unsigned (the top bit stays positive)."""
    return -(-(a_bits if signed else a_bits + 1) // 2)


def check_tree_stages(every: int, levels: int, tree: str) -> int:
    """``every`` (a spec's ``tree_stage_levels``) checked against the ``levels`` of the tree
    it pipelines (described by ``tree``): 0, or 1..levels, so that at least one register
    lands in the tree. Raises ValueError with the rule."""
    if every and not levels:
        raise ValueError(f"{every} adder levels per stage, but {tree} has no adder level to "
                         "register; set 0")
    if every > levels:
        allowed = "1" if levels == 1 else f"1..{levels}"
        raise ValueError(f"{every} adder levels per stage, more than the {levels} "
                         f"level{'s' if levels > 1 else ''} of {tree} (no register would land "
                         f"in it); set {allowed}, or 0 for none")
    return every


class SpecError(ValueError):
    """A spec or spec file is invalid. ``str(err)`` is one line naming the field."""


@dataclasses.dataclass(frozen=True, slots=True)
class Unrolling:
    """How one fold of an engine covers a GEMM ``C[M, N] = A[M, K] @ W[K, N]``.

    ``m``, ``n``, ``k``: how many indices of that GEMM dimension one fold covers spatially;
    exactly one of them is None: the *streamed* dimension, whose whole extent (or a tile of
    it) flows through the fold, ``fold_cycles(stream_len)`` taking that extent in GEMM
    elements. When ``k`` is spatial, the partial sums of the ``ceil(K/k)`` reduction folds
    are added outside the engine.
    """

    m: int | None
    n: int | None
    k: int | None

    @property
    def stream(self) -> str:
        return "m" if self.m is None else "n" if self.n is None else "k"

    def folds(self, M: int, N: int, K: int) -> int:
        """Folds of an untiled GEMM: the spatial dims cut into tiles, the stream whole."""
        out = 1
        for extent, tile in ((M, self.m), (N, self.n), (K, self.k)):
            if tile is not None:
                out *= -(-extent // tile)
        return out

    def stream_len(self, M: int, N: int, K: int) -> int:
        return {"m": M, "n": N, "k": K}[self.stream]


@dataclass(config=CONFIG, kw_only=True)
class EngineBase:
    """Fields and timing contract every engine kind has.

    A kind is a subclass in its own module of :mod:`hw.spec` with a ``kind`` literal field
    (its name); it is found by :func:`hw.spec.engine_kinds` without being listed anywhere.
    Its timing contract (``fold_cycles``, ``fold_interval`` and friends) is the single source
    of truth of the cycle model and of the RTL tests.
    """

    kind: str
    a_bits: OperandBits = Field(8, description="activation (A) operand width in bits")
    w_bits: OperandBits = Field(8, description="weight (W) operand width in bits")
    acc_bits: AccBits = Field(
        32, description="accumulator width in bits; results wrap modulo 2**acc_bits")
    signed: bool = Field(True, description="two's complement operands and accumulators")

    #: Whether the operand widths are a run-time setting of the same hardware (bit-serial,
    #: bit-plane and LUT engines: narrower operands take fewer cycles) rather than a fixed
    #: datapath width (multiplier arrays: narrower operands are sign-extended). ``a_bits`` and
    #: ``w_bits`` are then the widest precision the hardware is built for.
    runtime_precision: ClassVar[bool] = False

    @property
    def name(self) -> str:  # pragma: no cover - every kind overrides it
        raise NotImplementedError

    @property
    def operands_name(self) -> str:
        """The operand part of :attr:`name`: ``a{a_bits}w{w_bits}p{acc_bits}`` and ``s``/``u``."""
        sign = "s" if self.signed else "u"
        return f"a{self.a_bits}w{self.w_bits}p{self.acc_bits}{sign}"

    @staticmethod
    def options_name(*options: tuple[str, bool]) -> str:
        """The option part of :attr:`name`: ``_tag`` for every ``(tag, on)`` that is on."""
        return "".join(f"_{tag}" for tag, on in options if on)

    @property
    def macs_per_cycle(self) -> float:  # pragma: no cover
        """Full-precision MACs per cycle in steady state; fractional for engines that take
        several cycles per MAC (bit-serial, bit-plane) or serve several per PE (LUT)."""
        raise NotImplementedError

    @property
    def preload_cycles(self) -> int:  # pragma: no cover
        raise NotImplementedError

    def stream_cycles(self, stream_len: int) -> int:  # pragma: no cover
        raise NotImplementedError

    @property
    def fill_cycles(self) -> int:  # pragma: no cover
        raise NotImplementedError

    @property
    def drain_cycles(self) -> int:  # pragma: no cover
        raise NotImplementedError

    def fold_cycles(self, stream_len: int) -> int:
        """Cycles of one fold that streams ``stream_len`` elements: preload, stream, fill and
        drain (a kind with another shape overrides it)."""
        if stream_len < 1:
            raise ValueError(f"stream_len must be >= 1, got {stream_len!r}")
        return (self.preload_cycles + self.stream_cycles(stream_len) + self.fill_cycles
                + self.drain_cycles)

    @property
    def output_register_cycles(self) -> int:
        """Cycles a fold's last result spends in an output register after the engine is free
        for the next fold (``cpa_reg``): ``fold_interval`` is ``fold_cycles`` less these
        without any overlap of folds. 0 unless a kind has such a register."""
        return 0

    def fold_interval(self, stream_len: int) -> int:
        """Cycles from the start of one fold to the start of the next when folds that stream
        ``stream_len`` elements run back to back: ``fold_cycles`` when a fold cannot start
        before the previous one has drained (every kind but one that overlaps them, such as a
        weight-stationary array with double-buffered weights, or an output-stationary one whose
        results drain while the next fold streams). A run of folds therefore takes
        ``sum of fold_interval over all but the last fold + fold_cycles(last)`` cycles."""
        return self.fold_cycles(stream_len)

    def timing_contract(self) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    def unrolling(self) -> Unrolling:  # pragma: no cover
        """The GEMM dims one fold covers spatially and the streamed one (mapping uses it)."""
        raise NotImplementedError


_RANGE_MSGS = {
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
}


def format_error(err: pydantic.ValidationError, prefix: str) -> str:
    """One line for the first error of a pydantic validation failure, naming the field."""
    first = err.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in first["loc"] if not str(p).startswith("function-"))
    field = f"{prefix}.{loc}" if prefix and loc else (prefix or loc or "spec")
    kind = first["type"]
    ctx = first.get("ctx", {})
    value = first.get("input")
    if kind in _RANGE_MSGS:
        msg = _RANGE_MSGS[kind].format(**ctx) + f" (got {value!r})"
    elif kind in ("extra_forbidden", "unexpected_keyword_argument"):
        msg = "unknown key; remove it or check its spelling"
    elif kind == "missing":
        msg = "required but missing"
    elif kind == "literal_error":
        msg = f"must be one of {ctx.get('expected')} (got {value!r})"
    elif kind in ("string_too_short", "string_too_long"):
        msg = first["msg"].lower()
    elif kind == "value_error":
        msg = str(ctx.get("error", first["msg"]))
    else:
        msg = f"{first['msg'].lower()} (got {value!r})"
    return f"{field}: {msg}"


def build(cls: type, data: Any, prefix: str) -> Any:
    """``cls(**data)``, with validation errors turned into :class:`SpecError`."""
    from collections.abc import Mapping

    if not isinstance(data, Mapping):
        raise SpecError(f"{prefix or 'spec'}: must be a table, got {type(data).__name__}")
    try:
        return cls(**data)
    except pydantic.ValidationError as err:
        raise SpecError(format_error(err, prefix)) from None
    except TypeError as err:  # positional misuse, never from TOML
        raise SpecError(f"{prefix or 'spec'}: {err}") from None
