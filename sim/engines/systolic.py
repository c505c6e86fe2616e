"""Cycle model of the systolic array: the numbers the generated RTL is held to.

Per fold the timing comes from :meth:`hw.spec.SystolicSpec.fold_cycles` (fill, steady state,
drain). A GEMM ``C[M, N] = A[M, K] @ W[K, N]`` larger than the array is cut into folds that run
back to back:

* OS: one fold per ``rows`` x ``cols`` output tile, each streaming the whole reduction K:
  ``ceil(M/rows) * ceil(N/cols)`` folds of ``fold_cycles(K)``.
* WS: one fold per ``rows`` x ``cols`` weight tile, each streaming all M activation rows:
  ``ceil(K/rows) * ceil(N/cols)`` folds of ``fold_cycles(M)``; partial sums of the
  ``ceil(K/rows)`` reduction folds are added outside the array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hw.spec import SystolicSpec

__all__ = [
    "SystolicFolds",
    "gemm_compute_cycles",
    "gemm_folds",
    "tiled_fold_grid",
    "tiled_gemm_compute_cycles",
    "tiled_gemm_folds",
]


@dataclass(frozen=True, slots=True)
class SystolicFolds:
    """How a GEMM folds onto the array when the whole stream fits (no buffer tiling)."""

    folds: int
    stream_len: int
    fold_cycles: int

    @property
    def cycles(self) -> int:
        return self.folds * self.fold_cycles


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def gemm_folds(spec: SystolicSpec, M: int, N: int, K: int) -> SystolicFolds:
    """Folds of an untiled GEMM (every operand resident, as with ``--memory ideal``)."""
    for name, v in (("M", M), ("N", N), ("K", K)):
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v!r}")
    if spec.dataflow == "os":
        folds = _ceil_div(M, spec.rows) * _ceil_div(N, spec.cols)
        stream = K
    else:
        folds = _ceil_div(K, spec.rows) * _ceil_div(N, spec.cols)
        stream = M
    return SystolicFolds(folds=folds, stream_len=stream, fold_cycles=spec.fold_cycles(stream))


def gemm_compute_cycles(spec: SystolicSpec, M: int, N: int, K: int) -> int:
    """Cycles of an untiled GEMM on the array alone: what the RTL measures fold after fold."""
    return gemm_folds(spec, M, N, K).cycles


# -- tiled GEMMs (buffer-level tiling from mapping/) -------------------------------------------
# Additive to the untiled model above: a GEMM cut into buffer tiles (tile_m, tile_n, tile_k)
# runs the same folds, tile after tile. Everything below accepts ints or numpy integer arrays
# (one entry per candidate mapping) and returns int64 arrays.


def _folds_along(dim, tile, unit):
    """Array folds along one dimension cut into tiles of ``tile`` (edge tile ``dim % tile``)."""
    full, rem = np.divmod(dim, tile)
    return full * -(-tile // unit) + -(-rem // unit)


def tiled_fold_grid(spec: SystolicSpec, M: int, N: int, K: int, tile_m, tile_n, tile_k):
    """``(row_folds, col_folds, stream_chunks)`` of a GEMM cut into buffer tiles.

    * OS (rows <- M, cols <- N, stream K): ``row_folds`` counts ``ceil(t / rows)`` over the M
      tiles ``t``, ``col_folds`` likewise over N, and every K tile is a fold of its own (the
      PEs restart from zero; partial sums meet in the output buffer): ``ceil(K / tile_k)``
      stream chunks.
    * WS (rows <- K, cols <- N, stream M): ``row_folds`` over the K tiles, ``col_folds`` over
      N, and every M tile re-streams through a freshly preloaded weight block:
      ``ceil(M / tile_m)`` stream chunks.

    ``row_folds`` equals ``ceil(dim / rows)`` when the tile is a multiple of the array edge or
    the whole dimension.
    """
    tile_m, tile_n, tile_k = (np.asarray(t, dtype=np.int64) for t in (tile_m, tile_n, tile_k))
    col_folds = _folds_along(N, tile_n, spec.cols)
    if spec.dataflow == "os":
        return _folds_along(M, tile_m, spec.rows), col_folds, -(-K // tile_k)
    return _folds_along(K, tile_k, spec.rows), col_folds, -(-M // tile_m)


def tiled_gemm_folds(spec: SystolicSpec, M: int, N: int, K: int, tile_m, tile_n, tile_k):
    """Number of array folds of a GEMM cut into buffer tiles (see :func:`tiled_fold_grid`)."""
    rows, cols, chunks = tiled_fold_grid(spec, M, N, K, tile_m, tile_n, tile_k)
    return rows * cols * chunks


def tiled_gemm_compute_cycles(
    spec: SystolicSpec, M: int, N: int, K: int, tile_m, tile_n, tile_k
):
    """Cycles of the array alone for a tiled GEMM: the sum of ``fold_cycles`` over its folds.

    ``fold_cycles(L)`` is affine in the stream length, ``L + overhead`` with
    ``overhead = fold_cycles(1) - 1`` (fill, drain and, for WS, preload), so the stream chunks
    of one array block (lengths summing to K for OS, M for WS) cost
    ``stream + chunks * overhead``. With untiled tiles (tile = the whole dimension) this is
    exactly :func:`gemm_compute_cycles`.
    """
    rows, cols, chunks = tiled_fold_grid(spec, M, N, K, tile_m, tile_n, tile_k)
    stream = K if spec.dataflow == "os" else M
    return rows * cols * (stream + chunks * (spec.fold_cycles(1) - 1))
