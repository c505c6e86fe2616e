"""Operators a workload lowers to. Pure shapes and formats: nothing about hardware.

Three kinds, each a frozen dataclass with a ``name`` and a ``count`` (identical instances):

* :class:`Gemm`: ``C[M, N] = A[M, K] @ B[K, N]`` with the storage formats of A and B and the
  quantization metadata that travels with B (group size, scale and zero-point bits);
* :class:`Attention`: scaled dot-product attention of ``batch`` sequences, ``q_len`` queries
  against ``kv_len`` cached keys/values, multi-head, grouped-query or multi-query (and MLA, whose
  absorbed decode form is multi-query attention over the latent cache with ``qk_dim != v_dim``);
* :class:`Vector`: element-wise and reduction work for a vector unit (normalization, activation,
  RoPE, residual add, (de)quantization, routing), given as elements and operations per element.

:data:`Op` is their union.

Every size and count field is at most :data:`MAX_SIZE` (2^40): the simulator's exactness
contract (``docs/llm_simulator.md``, "Exact integers") holds the arithmetic of one dimension in
int64 without overflow up to that bound, and counts everything else in Python integers and
fractions. :attr:`Vector.elems`, a product of dimensions, is not bounded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from models import ModelError
from models.formats import accumulator_format, get_format

__all__ = ["MAX_SIZE", "VECTOR_KINDS", "Attention", "Exact", "Gemm", "Op", "Vector", "exact",
           "exact_div", "op_macs", "size_error"]

#: The largest value of an operator's size or count field (and of the ``tpe sim`` flags that
#: set them): 2^40. Per-dimension quantities of the vectorised mapping search (tiles, trip
#: counts, folds along one dimension, one fold's cycles, at most 2^8 cycles per streamed element
#: for 16-bit bit-serial operands) then stay below 2^50, far inside int64; products of
#: dimensions are counted in Python integers (module doc).
MAX_SIZE = 1 << 40


def size_error(field: str, value: int, what: str = "") -> str:
    """The one-line message for ``field`` (a flag or ``op.field``) above :data:`MAX_SIZE`."""
    return (f"{field}: {value:,}{' ' + what if what else ''} exceeds 2^40 = {MAX_SIZE:,}, the "
            "largest size or count the simulator counts exactly; split the work (e.g. fewer "
            "sequences per pass) or simulate a smaller instance and scale it")


#: An exact rational quantity: an int when whole (Python ints are several times faster than
#: fractions, and most quantities are whole), else a :class:`~fractions.Fraction`.
Exact = int | Fraction


def exact(x: float | int | Fraction) -> Exact:
    """The exact value of ``x`` (a float's binary value) as an :data:`Exact`."""
    if isinstance(x, Fraction):
        return x.numerator if x.denominator == 1 else x
    if isinstance(x, float):
        num, den = x.as_integer_ratio()
        return num if den == 1 else Fraction(num, den)
    return int(x)


def exact_div(a: Exact, b: Exact) -> Exact:
    """``a / b`` exactly, as an :data:`Exact` (``/`` of two ints would round to a float)."""
    if type(a) is int and type(b) is int:
        q, r = divmod(a, b)
        return Fraction(a, b) if r else q
    if isinstance(a, float) or isinstance(b, float):  # a float has rounded already
        raise TypeError(f"exact_div: a float operand ({a!r} / {b!r}); use exact() on inputs")
    x = Fraction(a) / b
    return x.numerator if x.denominator == 1 else x


def _check_positive(owner: str, obj: object, *fields: str, bounded: bool = True) -> None:
    for field in fields:
        v = getattr(obj, field)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ModelError(f"{owner}.{field}: must be a positive integer (got {v!r})")
        if bounded and v > MAX_SIZE:
            raise ModelError(size_error(f"{owner}.{field}", v))


def _check_nonnegative(owner: str, obj: object, *fields: str) -> None:
    for field in fields:
        v = getattr(obj, field)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ModelError(f"{owner}.{field}: must be an integer >= 0 (got {v!r})")
        if v > MAX_SIZE:
            raise ModelError(size_error(f"{owner}.{field}", v))


@dataclass(frozen=True, slots=True, kw_only=True)
class Gemm:
    """``count`` independent GEMMs ``C[M, N] = A[M, K] @ B[K, N]``.

    ``b_is_weight`` says whether B is a model weight (read from memory once per use, shared
    across the batch) or an activation (e.g. the K^T and V operands of attention).

    Quantization metadata of B: ``w_group`` elements along K share one scale (``0``: one per
    output channel, i.e. per column of B); each scale costs ``w_scale_bits`` bits of storage
    (scale plus zero point, ``0`` when B is not scaled, e.g. floating point). A's rows (tokens)
    carry ``a_scale_bits`` bits of dynamic scale per ``a_group`` elements along K (``0``: one
    scale per token; block-scaled formats such as MX: one per block of 32), none when
    ``a_scale_bits`` is ``0``. ``w_scale_fmt`` / ``a_scale_fmt``: the block scales' format
    when the operand is in a block format (E8M0 powers of two, NVFP4's E4M3).
    :attr:`w_storage_bits` / :attr:`a_storage_bits` are the bits per element these add up to.
    """

    name: str
    M: int
    N: int
    K: int
    count: int = 1
    a_fmt: str = "int8"
    w_fmt: str = "int8"
    #: C's format; ``""`` (the default): the format its products accumulate in
    #: (:func:`models.formats.accumulator_format`: fp32 if an operand is floating point, else
    #: int32), as a model's GEMMs have it.
    o_fmt: str = ""
    b_is_weight: bool = True
    w_group: int = 0
    w_scale_bits: int = 0
    a_scale_bits: int = 0
    a_group: int = 0
    #: The format of a block scale (``models.formats.BlockFormat.scale``: ``"e8m0"`` for
    #: MX and block floating point, ``"fp8_e4m3"`` for NVFP4), ``""`` when the scales are not
    #: a block format's (none, or the fp16 scales of integer schemes).
    w_scale_fmt: str = ""
    a_scale_fmt: str = ""

    def __post_init__(self) -> None:
        _check_positive(self.name, self, "M", "N", "K", "count")
        _check_nonnegative(self.name, self, "w_group", "w_scale_bits", "a_scale_bits",
                           "a_group")
        for field in ("a_fmt", "w_fmt"):
            get_format(getattr(self, field))  # raises ModelError naming the format
        if self.o_fmt == "":
            object.__setattr__(self, "o_fmt", accumulator_format(self.a_fmt, self.w_fmt))
        get_format(self.o_fmt)

    @property
    def macs(self) -> int:
        return self.M * self.N * self.K * self.count

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def w_groups_per_column(self) -> int:
        """Scale groups along K of one column of B (1 when per-channel)."""
        return -(-self.K // self.w_group) if self.w_group else 1

    @property
    def a_groups_per_row(self) -> int:
        """Scale groups along K of one row of A (1 when per token)."""
        return -(-self.K // self.a_group) if self.a_group else 1

    @property
    def w_storage_bits(self) -> float:
        """Bits per element of B in memory, scales and zero points included."""
        scales = self.w_scale_bits * self.w_groups_per_column / self.K
        return get_format(self.w_fmt).bits + scales

    @property
    def a_storage_bits(self) -> float:
        """Bits per element of A in memory, its scales included."""
        return get_format(self.a_fmt).bits + self.a_scale_bits * self.a_groups_per_row / self.K

    @property
    def exact_w_storage_bits(self) -> Exact:
        """:attr:`w_storage_bits` exactly (the float rounds)."""
        scales = self.w_scale_bits * self.w_groups_per_column
        return exact_div(get_format(self.w_fmt).bits * self.K + scales, self.K)

    @property
    def exact_a_storage_bits(self) -> Exact:
        """:attr:`a_storage_bits` exactly (the float rounds)."""
        return exact_div(get_format(self.a_fmt).bits * self.K
                         + self.a_scale_bits * self.a_groups_per_row, self.K)


@dataclass(frozen=True, slots=True, kw_only=True)
class Attention:
    """``count`` instances of attention over ``batch`` sequences.

    Each sequence has ``heads`` query heads and ``kv_heads`` key/value heads (``heads`` a
    multiple of it: MHA when equal, MQA when 1, GQA between), ``q_len`` query tokens against
    ``kv_len`` key/value tokens. ``qk_dim`` is the width of a query/key head, ``v_dim`` of a
    value head. ``causal``: query ``i`` of ``q_len`` sees keys up to position
    ``kv_len - q_len + i`` (prefill has ``q_len == kv_len``; decode ``q_len == 1``).
    ``kv_shared``: keys and values are one tensor (MLA's latent cache: V is the first
    ``v_dim`` features of K), stored and read once.

    The KV cache is stored in ``kv_fmt`` with ``kv_scale_bits`` bits of scale and zero point
    per ``kv_group`` elements (KIVI: keys grouped per channel along tokens, values per token
    along channels); the newest ``kv_residual`` tokens stay in ``q_fmt`` (KIVI's full-precision
    residual). ``page_tokens`` > 0: a paged cache (vLLM's PagedAttention) of pages of that many
    tokens, read whole, plus a page table; 0: contiguous.

    ``sparse_block`` > 0 and ``sparse_topk`` > 0: block-sparse attention, each query block
    attends only to the ``sparse_topk`` key blocks of ``sparse_block`` tokens that score highest
    against it (selection by mean-pooled block keys, as in Quest / MiniMax's per-group top-k).
    ``window`` > 0: sliding-window attention (Mistral), a query sees at most the ``window``
    newest keys up to its own position.
    """

    name: str
    batch: int
    heads: int
    kv_heads: int
    q_len: int
    kv_len: int
    qk_dim: int
    v_dim: int
    causal: bool = True
    count: int = 1
    q_fmt: str = "fp16"
    kv_fmt: str = "fp16"
    kv_group: int = 0
    kv_scale_bits: int = 0
    kv_residual: int = 0
    kv_shared: bool = False
    page_tokens: int = 0
    sparse_block: int = 0
    sparse_topk: int = 0
    window: int = 0

    def __post_init__(self) -> None:
        _check_positive(self.name, self, "batch", "heads", "kv_heads", "q_len", "kv_len",
                        "qk_dim", "v_dim", "count")
        _check_nonnegative(self.name, self, "kv_group", "kv_scale_bits", "kv_residual",
                           "page_tokens", "sparse_block", "sparse_topk", "window")
        if self.heads % self.kv_heads:
            raise ModelError(f"{self.name}.kv_heads: {self.heads} query heads are not a "
                             f"multiple of {self.kv_heads} key/value heads; use a divisor")
        if self.q_len > self.kv_len:
            raise ModelError(f"{self.name}.q_len: {self.q_len} queries exceed kv_len "
                             f"{self.kv_len}; the queries' own keys are part of the cache")
        if self.kv_shared and self.v_dim > self.qk_dim:
            raise ModelError(f"{self.name}.v_dim: a shared (latent) cache needs v_dim <= "
                             f"qk_dim (got {self.v_dim} > {self.qk_dim})")
        if (self.sparse_block > 0) != (self.sparse_topk > 0):
            raise ModelError(f"{self.name}.sparse_topk: block-sparse attention needs both "
                             "sparse_block and sparse_topk > 0 (or both 0 for dense)")
        if self.kv_scale_bits and not self.kv_group:
            raise ModelError(f"{self.name}.kv_group: scaled KV cache needs kv_group > 0")
        for field in ("q_fmt", "kv_fmt"):
            get_format(getattr(self, field))

    @property
    def group_size(self) -> int:
        """Query heads per key/value head."""
        return self.heads // self.kv_heads

    @property
    def attended(self) -> int:
        """(query, key) pairs one head of one sequence scores: causal triangle or full."""
        q, s = self.q_len, self.kv_len
        budget = s
        if self.window:
            budget = min(budget, self.window)
        if self.sparse_block:
            budget = min(s, self.sparse_topk * self.sparse_block)
        if not self.causal:
            return q * budget
        # query i (0-based) sees x_i = s - q + 1 + i keys, at most `budget` of them
        first = s - q + 1
        small = min(q, max(0, budget - first + 1))  # queries below the budget
        return small * first + small * (small - 1) // 2 + (q - small) * budget

    @property
    def macs(self) -> int:
        """Useful MACs: ``QK^T`` and ``PV`` over the attended pairs, all heads."""
        per_pair = self.qk_dim + self.v_dim
        return self.count * self.batch * self.heads * self.attended * per_pair

    @property
    def kv_storage_bits(self) -> float:
        """Bits per cached element, scales and zero points included (residual excluded)."""
        scales = self.kv_scale_bits / self.kv_group if self.kv_group else 0.0
        return get_format(self.kv_fmt).bits + scales

    @property
    def exact_kv_storage_bits(self) -> Exact:
        """:attr:`kv_storage_bits` exactly (the float rounds)."""
        group = self.kv_group or 1
        return exact_div(get_format(self.kv_fmt).bits * group + self.kv_scale_bits, group)

    def kv_bytes(self) -> float:
        """Bytes of the K and V caches of one instance (all sequences and KV heads)."""
        return float(self.exact_kv_bytes())

    def exact_kv_bytes(self) -> Exact:
        """:meth:`kv_bytes` exactly."""
        residual = min(self.kv_residual, self.kv_len)
        quantized = self.kv_len - residual
        width = self.qk_dim if self.kv_shared else self.qk_dim + self.v_dim
        elems_per_token = self.batch * self.kv_heads * width
        full_bits = get_format(self.q_fmt).bits
        bits = elems_per_token * (quantized * self.exact_kv_storage_bits + residual * full_bits)
        return exact_div(bits, 8)


#: What a :class:`Vector` op does (for breakdowns; the cost is ``elems * ops_per_elem``).
VECTOR_KINDS: tuple[str, ...] = (
    "norm", "activation", "rope", "residual", "softmax", "quantize", "dequantize", "router",
    "embedding", "cache_append",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Vector:
    """``count`` instances of element-wise work over ``elems`` elements for a vector unit.

    ``ops_per_elem``: arithmetic operations per element (e.g. RMSNorm: square, add, scale,
    multiply ~ 4; SiLU-gated product ~ 5); ``reads`` operands of ``elems`` elements are read
    and one of ``elems`` written, in ``fmt``, unless ``elem_bytes`` gives the bytes moved per
    element directly (work done in several passes of other widths: an unfused RMSNorm casts
    to fp32 and back). ``table_bytes`` is extra data read once per instance (an embedding
    table's rows, a norm's weights). ``launches``: the kernels one instance takes on a GPU
    (one fused kernel, or one per pass where a framework runs the passes unfused).
    ``runtime``: whose kernels they are: ``"fused"`` (a serving engine's, streaming at the
    memory's bandwidth) or ``"eager"`` (eager PyTorch's, priced by a GPU preset's measured
    eager constants; engines have no such kernels).
    """

    name: str
    kind: Literal["norm", "activation", "rope", "residual", "softmax", "quantize",
                  "dequantize", "router", "embedding", "cache_append"]
    elems: int
    ops_per_elem: float
    count: int = 1
    reads: int = 1
    fmt: str = "fp16"
    table_bytes: float = 0.0
    elem_bytes: float = 0.0
    launches: int = 1
    runtime: Literal["fused", "eager"] = "fused"

    def __post_init__(self) -> None:
        _check_positive(self.name, self, "count", "reads", "launches")
        _check_positive(self.name, self, "elems", bounded=False)
        if self.kind not in VECTOR_KINDS:
            raise ModelError(f"{self.name}.kind: unknown {self.kind!r}; one of "
                             + ", ".join(VECTOR_KINDS))
        if not 0 <= self.ops_per_elem < math.inf:
            raise ModelError(f"{self.name}.ops_per_elem: must be a finite number >= 0 "
                             f"(got {self.ops_per_elem!r})")
        for field in ("table_bytes", "elem_bytes"):
            v = getattr(self, field)
            if not 0 <= v < math.inf:
                raise ModelError(f"{self.name}.{field}: must be a finite number >= 0 "
                                 f"(got {v!r})")
        if self.runtime not in ("fused", "eager"):
            raise ModelError(f"{self.name}.runtime: must be 'fused' or 'eager' "
                             f"(got {self.runtime!r})")
        get_format(self.fmt)

    @property
    def ops(self) -> float:
        """Vector operations of all instances."""
        return self.count * self.elems * self.ops_per_elem

    @property
    def bytes(self) -> float:
        """Bytes read and written by one instance."""
        if self.elem_bytes:
            return self.elems * self.elem_bytes + self.table_bytes
        return self.elems * (self.reads + 1) * get_format(self.fmt).bits / 8 + self.table_bytes

    @property
    def exact_bytes(self) -> Exact:
        """Bytes read and written by one instance, exactly (``elem_bytes`` and
        ``table_bytes`` at their floats' binary values)."""
        if self.elem_bytes:
            return self.elems * exact(self.elem_bytes) + exact(self.table_bytes)
        bits = self.elems * (self.reads + 1) * get_format(self.fmt).bits
        return exact_div(bits, 8) + exact(self.table_bytes)


Op = Gemm | Attention | Vector


def op_macs(op: Op) -> int:
    """Useful multiply-accumulates of an operator (0 for vector work)."""
    return 0 if isinstance(op, Vector) else op.macs
