"""Cycle model of the bit-slice array: the numbers the generated RTL is held to.

One fold per ``rows`` x ``cols`` output tile, each streaming the whole reduction K; a beat
(one k) takes ``a_slices * w_slices`` cycles (:meth:`hw.spec.BitsliceSpec.fold_cycles`
``(K) = K * a_slices * w_slices + rows``): ``ceil(M/rows) * ceil(N/cols)`` folds, back to back.

With ``skip_zero`` the cycles depend on the activations: a beat takes
``max(1, nz * w_slices)`` cycles, nz = its slice positions that are non-zero in some row of
the beat (every row lane as fed, padding included). :func:`gemm_compute_cycles` stays the
worst case (dense data, exact without skip_zero); :func:`fold_cycles_of` and
:func:`gemm_compute_cycles_given` are exact given the data.
"""

from __future__ import annotations

import numpy as np

from hw.spec.bitslice import BitsliceSpec
from sim.engines import gemm_compute_cycles as _generic

__all__ = [
    "fold_cycles_of",
    "gemm_compute_cycles",
    "gemm_compute_cycles_given",
    "nonzero_slice_positions",
]


def gemm_compute_cycles(spec: BitsliceSpec, M: int, N: int, K: int) -> int:
    """Cycles of an untiled GEMM on the array alone (the worst case with skip_zero)."""
    return _generic(spec, M, N, K)


def nonzero_slice_positions(spec: BitsliceSpec, a_beats: np.ndarray) -> np.ndarray:
    """Per beat, the activation slice positions non-zero in some lane.

    ``a_beats[k, r]``: the activation of lane r in beat k (any integer array, values in the
    operand range). Returns int64 counts in ``0..a_slices``, one per beat.
    """
    a = np.asarray(a_beats, dtype=np.int64)
    if a.ndim == 1:
        a = a[:, None]
    bits = a & np.int64((1 << spec.a_bits) - 1)  # two's complement bit pattern
    s = spec.slice_bits
    out = np.zeros(a.shape[0], dtype=np.int64)
    for i in range(spec.a_slices):
        out += ((bits >> np.int64(s * i)) & np.int64((1 << s) - 1) != 0).any(axis=1)
    return out


def fold_cycles_of(spec: BitsliceSpec, a_beats: np.ndarray) -> int:
    """Exact cycles of one fold whose beats carry the activations ``a_beats[k, r]``."""
    if not spec.skip_zero:
        return spec.fold_cycles(len(a_beats))
    return spec.fold_cycles_given(int(n) for n in nonzero_slice_positions(spec, a_beats))


def gemm_compute_cycles_given(spec: BitsliceSpec, A: np.ndarray, N: int) -> int:
    """Exact cycles of ``A @ W`` (``W`` with N columns) when the lanes of a partial row
    tile are padded with zeros (as :mod:`sim.verify.plan_bitslice` does with skip_zero)."""
    M, K = A.shape
    if min(M, N, K) < 1:
        raise ValueError(f"M, N and K must be >= 1, got {(M, N, K)!r}")
    col_folds = -(-N // spec.cols)
    total = 0
    for m0 in range(0, M, spec.rows):
        total += fold_cycles_of(spec, np.asarray(A[m0:m0 + spec.rows, :]).T)
    return col_folds * total
