"""Exact conversion to and from the block-scaled formats (:data:`models.formats.BLOCK_FORMATS`)
in numpy: their element formats code by code, the shared scales, and quantize / dequantize of
whole tensors.

**Element formats.** The small floats are sign, exponent and mantissa fields with the IEEE
layout (subnormals at the smallest exponent): FP8 E4M3 (bias 7, no infinity, NaN only at
S.1111.111, largest 448), FP8 E5M2 (bias 15, IEEE infinities and NaNs, largest 57344), FP6
E3M2 (bias 3, largest 28), FP6 E2M3 (bias 1, largest 7.5), FP4 E2M1 (bias 1, largest 6), the
last three with neither infinity nor NaN (OCP MX v1.0 section 5.3; OCP 8-bit floating point
v1.0 for FP8). Integers are two's complement. Converting a real number rounds to the nearest
representable value, ties to the even code (round-to-nearest-even), and saturates: a
magnitude beyond the largest finite value becomes that value (the MX conversion's clamping,
section 6.3); NaN becomes the format's NaN (an error for a format without one).

**Scales.** MX: a block's scale is the power of two ``2^(floor(log2(max|V|)) - emax)``,
``emax`` the exponent of the element format's largest power of two (E4M3 8, E5M2 15, E3M2 4,
E2M3 2, E2M1 2, INT8 0), stored as E8M0 (bias 127, exponents -127..127, 0xFF NaN; a block
with a NaN or an infinity gets the NaN scale), the elements ``V / scale`` converted as
above (OCP MX v1.0 section 6.3). MXINT8's elements are integers times ``2^-6`` saturating
symmetrically at ``+-(2 - 2^-6)`` (as the specification's reference library,
microsoft/microxcaling, does). Block floating point (``bfp*``) is the same rule with
integer mantissas of the element's width (``emax = bits - 2``). NVFP4: a per-tensor scale
``amax / (6 * 448)`` (``amax`` over the finite blocks; FP32 in the recipe, kept in float64
here so that representable values round-trip exactly), a per-block E4M3
scale ``e4m3(amax_block / 6 / tensor_scale)`` (round-to-nearest-even, saturating), the
elements ``e2m1(V / (block_scale * tensor_scale))`` (NVIDIA's NVFP4 recipe); a block with a
NaN or an infinity gets E4M3's NaN scale, as MX blocks get E8M0's.

**K-sort** (``reorder`` formats): :func:`ksort` orders the channels by a calibration magnitude
so that blocks hold channels of like size and outliers share blocks of their own; quantize
and dequantize take that order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models import ModelError
from models.caches import memo
from models.formats import BlockFormat, get_block_format

__all__ = ["ELEMENTS", "BlockQuantized", "ElementFormat", "decode", "dequantize", "encode",
           "ksort", "quantize", "round_to"]


@dataclass(frozen=True)
class ElementFormat:
    """A small floating-point (``exp_bits > 0``) or integer (``exp_bits == 0``: two's
    complement ``bits`` wide, each code worth ``2**-frac_bits``) element format."""

    name: str
    bits: int
    exp_bits: int
    man_bits: int
    bias: int = 0
    #: IEEE infinities and NaNs at the all-ones exponent (E5M2).
    ieee_specials: bool = False
    #: NaN only at the all-ones code of each sign (E4M3).
    nan_at_max: bool = False
    #: Integers: the value of one code step (``2**-frac_bits``).
    frac_bits: int = 0
    #: Integers: saturate at ``+-(2**(bits-1) - 1)`` (no use of the most negative code).
    symmetric: bool = False

    @property
    def is_float(self) -> bool:
        return self.exp_bits > 0

    @property
    def emax(self) -> int:
        """The exponent of the largest power of two the format holds (the MX scale rule's)."""
        if not self.is_float:
            return self.bits - 2 - self.frac_bits
        top = (1 << self.exp_bits) - 1 - (1 if self.ieee_specials else 0)
        return top - self.bias


#: The element formats, by :mod:`models.formats` name.
ELEMENTS: dict[str, ElementFormat] = {e.name: e for e in (
    ElementFormat("fp8_e4m3", 8, 4, 3, 7, nan_at_max=True),
    ElementFormat("fp8_e5m2", 8, 5, 2, 15, ieee_specials=True),
    ElementFormat("fp6_e3m2", 6, 3, 2, 3),
    ElementFormat("fp6_e2m3", 6, 2, 3, 1),
    ElementFormat("fp4_e2m1", 4, 2, 1, 1),
    ElementFormat("int8", 8, 0, 7, frac_bits=6, symmetric=True),  # MXINT8's elements
    ElementFormat("int4", 4, 0, 3, symmetric=True),  # block floating point mantissas
)}


def _element(name: str) -> ElementFormat:
    try:
        return ELEMENTS[name]
    except KeyError:
        raise ModelError(f"format: no element codec for {name!r}; known: "
                         f"{', '.join(ELEMENTS)}") from None


@memo(maxsize=None)
def _table(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Every code of a format and its value (float64; NaN, +-inf where the format has them)."""
    e = _element(name)
    codes = np.arange(1 << e.bits, dtype=np.int64)
    if not e.is_float:
        signed = np.where(codes >= 1 << (e.bits - 1), codes - (1 << e.bits), codes)
        return codes, signed.astype(np.float64) * 2.0 ** -e.frac_bits
    sign = np.where(codes >> (e.bits - 1) & 1, -1.0, 1.0)
    exp = codes >> e.man_bits & ((1 << e.exp_bits) - 1)
    man = codes & ((1 << e.man_bits) - 1)
    frac = man / (1 << e.man_bits)
    value = np.where(exp == 0, frac * 2.0 ** (1 - e.bias), (1 + frac) * 2.0 ** (exp - e.bias))
    value = sign * value
    top = (1 << e.exp_bits) - 1
    if e.ieee_specials:
        value = np.where((exp == top) & (man == 0), sign * np.inf, value)
        value = np.where((exp == top) & (man != 0), np.nan, value)
    if e.nan_at_max:
        value = np.where((exp == top) & (man == (1 << e.man_bits) - 1), np.nan, value)
    return codes, value


@memo(maxsize=None)
def _positive(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The non-negative finite values of a format in increasing order, with their codes."""
    codes, values = _table(name)
    keep = np.isfinite(values) & (values >= 0) & ~np.signbit(values)
    e = _element(name)
    if not e.is_float and e.symmetric:
        keep &= values <= (2 ** (e.bits - 1) - 1) * 2.0 ** -e.frac_bits
    order = np.argsort(values[keep], kind="stable")
    return values[keep][order], codes[keep][order]


def decode(codes: np.ndarray, name: str) -> np.ndarray:
    """The values (float64) of element ``codes`` of format ``name``."""
    codes = np.asarray(codes, dtype=np.int64)
    return _table(name)[1][codes]


def encode(x: np.ndarray, name: str) -> np.ndarray:
    """``x`` converted to format ``name``: round-to-nearest-even, saturating at the largest
    finite magnitude (module doc); returns the codes (int64)."""
    e = _element(name)
    x = np.asarray(x, dtype=np.float64)
    vals, codes = _positive(name)
    mag = np.abs(x)
    i = np.clip(np.searchsorted(vals, mag, side="left"), 1, len(vals) - 1)
    lo, hi = vals[i - 1], vals[i]
    pick_hi = (mag - lo > hi - mag) | ((mag - lo == hi - mag) & (codes[i] % 2 == 0))
    idx = np.where(pick_hi, i, i - 1)
    idx = np.where(mag <= vals[0], 0, idx)
    idx = np.where(mag >= vals[-1], len(vals) - 1, idx)  # saturate
    out = codes[idx]
    negative = np.signbit(x)
    if e.is_float:
        out = np.where(negative, out | (1 << (e.bits - 1)), out)
    else:
        out = np.where(negative & (out != 0), (1 << e.bits) - out, out)
    nan = np.isnan(x)
    if nan.any():
        if e.ieee_specials:
            out = np.where(nan, ((1 << (e.exp_bits + 1)) - 1) << (e.man_bits - 1), out)
        elif e.nan_at_max:
            out = np.where(nan, (1 << (e.bits - 1)) - 1, out)
        else:
            raise ModelError(f"format: {name} has no NaN; the input holds one")
    return out.astype(np.int64)


def round_to(x: np.ndarray, name: str) -> np.ndarray:
    """``x`` rounded to format ``name``'s values (:func:`encode` then :func:`decode`)."""
    return decode(encode(x, name), name)


# -- block formats ------------------------------------------------------------------------------

#: E8M0 scale exponents (bias 127) and the NaN scale's code.
E8M0_MIN, E8M0_MAX, E8M0_NAN = -127, 127, 255


@dataclass(frozen=True)
class BlockQuantized:
    """A tensor in a block format: element codes (the input's shape; the blocked axis last,
    padded to whole blocks), one scale code per block, the per-tensor scale (NVFP4; 1.0
    otherwise), and the channel order (K-sort) or None."""

    fmt: BlockFormat
    elements: np.ndarray
    scales: np.ndarray
    tensor_scale: float
    length: int
    order: np.ndarray | None


def _blocks(x: np.ndarray, block: int) -> tuple[np.ndarray, int]:
    n = x.shape[-1]
    pad = -n % block
    if pad:
        x = np.concatenate([x, np.zeros((*x.shape[:-1], pad))], axis=-1)
    return x.reshape(*x.shape[:-1], -1, block), n


def quantize(x: np.ndarray, fmt: str | BlockFormat, order: np.ndarray | None = None
             ) -> BlockQuantized:
    """``x`` (blocks along its last axis, the reduction dimension) in block format ``fmt``
    (module doc); ``order``: the channel order of a ``reorder`` format (:func:`ksort`)."""
    f = get_block_format(fmt) if isinstance(fmt, str) else fmt
    x = np.asarray(x, dtype=np.float64)
    if order is not None:
        if not f.reorder:
            raise ModelError(f"format: {f.name} keeps the channel order; order applies to "
                             "reorder formats only")
        x = x[..., order]
    e = _element(f.element)
    xb, n = _blocks(x, f.block)
    amax = np.max(np.abs(xb), axis=-1)
    bad = ~np.all(np.isfinite(xb), axis=-1)
    if f.scale == "e8m0":
        with np.errstate(divide="ignore", invalid="ignore"):
            exp = np.floor(np.log2(np.where(amax > 0, amax, 1.0))) - e.emax
        exp = np.where(amax > 0, exp, E8M0_MIN)
        exp = np.clip(exp, E8M0_MIN, E8M0_MAX).astype(np.int64)
        scales = np.where(bad, E8M0_NAN, exp + 127)
        scale_val = np.where(bad, np.nan, np.exp2(exp.astype(np.float64)))
        tensor = 1.0
    else:  # NVFP4: an FP32 scale per tensor, an E4M3 scale per block
        finite = amax[~bad]
        top = float(np.max(finite)) if finite.size else 0.0
        elem_max = float(_positive(f.element)[0][-1])
        scale_max = float(_positive(f.scale)[0][-1])
        tensor = top / (elem_max * scale_max) if top > 0 else 1.0  # 1.0: all zero
        with np.errstate(invalid="ignore"):
            scales = encode(np.where(bad, np.nan, amax / elem_max / tensor), f.scale)
        scale_val = decode(scales, f.scale)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(scale_val[..., None] > 0, xb / (scale_val[..., None] * tensor), 0.0)
    ratio = np.where(bad[..., None], 0.0, ratio)
    elements = encode(ratio, f.element)
    return BlockQuantized(fmt=f, elements=elements, scales=scales.astype(np.int64),
                          tensor_scale=tensor, length=n,
                          order=None if order is None else np.asarray(order))


def dequantize(q: BlockQuantized) -> np.ndarray:
    """The values of ``q`` (float64, the input's shape and channel order)."""
    f = q.fmt
    if f.scale == "e8m0":
        scale = np.where(q.scales == E8M0_NAN, np.nan,
                         np.exp2((q.scales - 127).astype(np.float64)))
    else:
        scale = decode(q.scales, f.scale)
    values = decode(q.elements, f.element) * scale[..., None] * q.tensor_scale
    out = values.reshape(*values.shape[:-2], -1)[..., :q.length]
    if q.order is not None:
        back = np.empty_like(out)
        back[..., q.order] = out
        out = back
    return out


def ksort(magnitude: np.ndarray) -> np.ndarray:
    """The channel order of K-sort: channels by increasing calibration ``magnitude`` (e.g. the
    mean absolute value of each channel over calibration tokens), so that every block holds
    channels of like magnitude and the outlier channels fill blocks of their own."""
    return np.argsort(np.asarray(magnitude, dtype=np.float64), kind="stable")
