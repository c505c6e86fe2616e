"""How a GEMM is cut into buffer tiles and ordered: the mapping space of one architecture.

A GEMM ``C[M, N] = A[M, K] @ W[K, N]`` runs on an engine inside per-operand SRAM buffers
(``ArchSpec.a_buffer``, ``w_buffer``, ``o_buffer``). A *mapping* fixes

* the buffer-level tile ``(tile_m, tile_n, tile_k)``: one A tile ``tile_m x tile_k``, one W tile
  ``tile_k x tile_n`` and one output tile ``tile_m x tile_n`` (held at the accumulator width)
  must each fit the buffer's tile capacity (half the buffer when double-buffered), stored in
  whole engine beats (each extent rounded up to its dimension's tile unit, below);
* the loop order of the three tile loops, outer to inner (six permutations of ``m, n, k``).
  An operand whose tile does not change across the innermost non-trivial loop stays in its
  buffer ("stationary"); the others are re-fetched;
* the spatial unrolling onto the engine, fixed by the engine's spec
  (:meth:`hw.spec.EngineBase.unrolling`): one fold covers ``unroll`` indices of each spatial
  GEMM dimension and streams a tile's extent of the remaining one (e.g. a systolic array's
  OS dataflow unrolls M over its rows and N over its columns and streams K; WS unrolls K and
  N and streams M). The mapping space is the same for every engine kind: only the unrolling
  differs.

Tiles along an unrolled dimension are multiples of its unroll size (or the whole dimension);
along the streamed dimension multiples of the engine's *stream granule*
(:func:`stream_granule`: the stream elements one input beat carries, found from ``fold_cycles``
alone; 1 for the systolic array, so any length), since a shorter last beat of every chunk would
be padded. Per dimension the candidates are the smallest tiles giving ``T`` tiles for ``T`` in
``{1, 2, 3, 4, 6, 8, 12, ...}`` (powers of two and three times powers of two) plus the finest
split: a tile larger than needed for its trip count only costs buffer space, so these dominate
the rest. The candidate grid depends only on the GEMM shape and the unroll sizes, never on
buffer capacities (bigger buffers only admit more of the same candidates).

**Folds of a tiled GEMM** (:func:`fold_grid`). A buffer tile ``(tile_m, tile_n, tile_k)``
takes ``prod over spatial dims d of ceil(tile_d / unroll_d)`` folds, each streaming the tile's
extent of the streamed dimension. Along a spatial dimension ``d`` of extent ``D`` the folds
number ``(D // tile_d) * ceil(tile_d / unroll_d) + ceil((D % tile_d) / unroll_d)``; along the
streamed dimension every tile is a fold of its own (``ceil(D / tile)`` stream chunks). When K
is spatial, the ``folds_k`` reduction folds of an output meet in the output buffer; when K
streams in chunks, every chunk is a fold whose partial sums meet there too.

**Exact integers.** Per-dimension quantities (tile sizes, trip counts, folds along one
dimension) are int64 arrays over candidates: with every dimension at most 2^40
(:data:`models.ops.MAX_SIZE`) they stay below 2^42. Products across dimensions (folds of a
whole GEMM, the buffer-fit test) could pass 2^63, so over candidates they are float64 (exact
below 2^53, and above it good enough to rank candidates) or, for the fit test, compared by
division; for one mapping (:func:`fold_grid` of int tiles, :attr:`Mapping.folds`) they are
exact Python integers.

This module knows geometry only; what a mapping costs is the caller's business (``search``
takes the cost function as a parameter).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from hw.spec import ArchSpec, EngineSpec, SpecError, SramSpec, Unrolling
from models.caches import clear_caches, memo
from models.formats import get_format
from models.ops import Gemm

__all__ = [
    "DIMS",
    "LOOP_ORDERS",
    "OPERAND_DIMS",
    "Candidates",
    "Dim",
    "FoldGrid",
    "Mapping",
    "MappingError",
    "candidates",
    "clear_caches",
    "count_product",
    "fold_grid",
    "stream_granule",
    "untiled",
]

Dim = Literal["m", "n", "k"]
Operand = Literal["A", "W", "O"]

#: Loop dimensions in index order (columns of ``Candidates.tiles``).
DIMS: tuple[Dim, Dim, Dim] = ("m", "n", "k")
#: All loop orders, outer to inner.
LOOP_ORDERS: tuple[tuple[Dim, Dim, Dim], ...] = tuple(itertools.permutations(DIMS))  # type: ignore[arg-type]
_ORDER_INDEX = np.array([[DIMS.index(d) for d in o] for o in LOOP_ORDERS], dtype=np.int64)
#: Which loop dimensions index each operand (A[M, K], W[K, N], O[M, N]).
OPERAND_DIMS: dict[Operand, tuple[Dim, Dim]] = {"A": ("m", "k"), "W": ("k", "n"), "O": ("m", "n")}


class MappingError(SpecError):
    """No mapping of a GEMM fits the architecture; ``str`` names the buffer and the fix."""


def _ceil_div(a: Any, b: Any) -> Any:
    return -(-a // b)


@memo(maxsize=256)
def stream_granule(spec: EngineSpec) -> int:
    """Stream elements one input beat of ``spec`` carries: the period of ``fold_cycles``'
    staircase, i.e. the smallest ``g`` with ``fold_cycles(g + 1) > fold_cycles(g)`` (1 when
    every element costs a cycle; ``k`` for an engine that takes ``ceil(K/k)`` beats)."""
    base = spec.fold_cycles(1)
    # probe limit: no engine spec allows a beat over 64 elements (hw.spec's ``le=64`` on
    # bitplane depth and the cube and LUT dimensions), so 4096 leaves room
    for g in range(1, 4097):
        if spec.fold_cycles(g + 1) > base:
            return g
    return 1  # pragma: no cover - no kind has a beat this wide


def _tile_units(spec: EngineSpec) -> dict[Dim, int]:
    """Tile unit of each loop dimension: its unroll size, the stream granule when streamed."""
    u = spec.unrolling()
    g = stream_granule(spec)
    return {"m": u.m or g, "n": u.n or g, "k": u.k or g}


def _folds_along(dim: Any, tile: Any, unit: Any) -> Any:
    """Folds along one dimension cut into tiles of ``tile`` (edge tile ``dim % tile``)."""
    full, rem = divmod(dim, tile)
    return full * _ceil_div(tile, unit) + _ceil_div(rem, unit)


def count_product(*factors: Any) -> Any:
    """The product of per-dimension counts: exact for Python ints, float64 when any is an
    array (a product of int64 arrays could wrap; float64 is exact below 2^53)."""
    if not any(isinstance(f, np.ndarray) for f in factors):
        return math.prod(factors)
    out = np.asarray(factors[0], dtype=np.float64)
    for f in factors[1:]:
        out = out * f
    return out


@dataclass(frozen=True, slots=True, eq=False)
class FoldGrid:
    """Folds of a GEMM cut into buffer tiles, per loop dimension: ``folds_m``, ``folds_n``,
    ``folds_k`` (int64 arrays, one entry per candidate, or Python ints for one mapping). Along
    a spatial dimension they count unroll-sized pieces of every tile; along the streamed
    dimension ``stream`` they count the stream chunks (one per tile). The product is the
    number of folds.
    """

    unrolling: Unrolling
    folds_m: Any
    folds_n: Any
    folds_k: Any

    @property
    def stream(self) -> Dim:
        return self.unrolling.stream  # type: ignore[return-value]

    def along(self, dim: Dim) -> Any:
        return {"m": self.folds_m, "n": self.folds_n, "k": self.folds_k}[dim]

    @property
    def total(self) -> Any:
        """Folds of the whole GEMM instance (float64 over candidates, exact int for one
        mapping: module doc)."""
        return count_product(self.folds_m, self.folds_n, self.folds_k)

    @property
    def spatial(self) -> Any:
        """Folds of the spatial dimensions only (each runs once per stream chunk); float64
        over candidates, exact int for one mapping."""
        return count_product(*(self.along(d) for d in DIMS if d != self.stream))

    @property
    def chunks(self) -> Any:
        """Stream chunks (tiles along the streamed dimension)."""
        return self.along(self.stream)


def fold_grid(u: Unrolling, M: int, N: int, K: int, tile_m: Any, tile_n: Any,
              tile_k: Any) -> FoldGrid:
    """The :class:`FoldGrid` of an ``M x N x K`` GEMM cut into ``(tile_m, tile_n, tile_k)``
    tiles on an engine with unrolling ``u`` (see the module docstring): Python ints, exact,
    when every tile is a scalar; int64 arrays over candidates when any is an array.
    """
    tiles = (tile_m, tile_n, tile_k)
    scalar = all(np.ndim(t) == 0 for t in tiles)
    out = []
    for extent, tile, unit in zip((M, N, K), tiles, (u.m, u.n, u.k), strict=True):
        t = int(tile) if scalar else np.asarray(tile, dtype=np.int64)
        out.append(_ceil_div(extent, t) if unit is None else _folds_along(extent, t, unit))
    if scalar:
        return FoldGrid(u, *out)
    return FoldGrid(u, *(np.asarray(f, dtype=np.int64) for f in out))


@dataclass(frozen=True, slots=True, kw_only=True)
class Mapping:
    """One mapping of one GEMM instance onto an architecture (see the module docstring)."""

    #: The engine kind mapped onto (``spec.kind``).
    kind: str
    tile_m: int
    tile_n: int
    tile_k: int
    #: Number of tiles along each dimension (``ceil(dim / tile)``).
    tiles_m: int
    tiles_n: int
    tiles_k: int
    #: Tile loops, outer to inner.
    loop_order: tuple[Dim, Dim, Dim]
    #: The engine's spatial unrolling (``spec.unrolling()``): indices of each GEMM dimension
    #: one fold covers, None for the streamed dimension.
    unrolling: Unrolling
    #: Engine folds of the whole (tiled) GEMM instance.
    folds: int

    @property
    def stream_dim(self) -> Dim:
        return self.unrolling.stream  # type: ignore[return-value]

    @property
    def spatial(self) -> dict[Dim, int]:
        """Unroll size of each spatial dimension, in ``DIMS`` order."""
        u = self.unrolling
        sizes: tuple[tuple[Dim, int | None], ...] = (("m", u.m), ("n", u.n), ("k", u.k))
        return {d: v for d, v in sizes if v is not None}

    @property
    def tile_iterations(self) -> int:
        return self.tiles_m * self.tiles_n * self.tiles_k

    @property
    def stationary(self) -> Operand | None:
        """The operand kept in its buffer across the innermost loop that has >1 tiles.

        ``None`` when every dimension is a single tile (everything stays on chip).
        """
        trips = {"m": self.tiles_m, "n": self.tiles_n, "k": self.tiles_k}
        for dim in reversed(self.loop_order):
            if trips[dim] > 1:
                return next(op for op, dims in OPERAND_DIMS.items() if dim not in dims)
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "tile": {"M": self.tile_m, "N": self.tile_n, "K": self.tile_k},
            "tiles": {"M": self.tiles_m, "N": self.tiles_n, "K": self.tiles_k},
            "loop_order": "".join(self.loop_order),
            "stationary": self.stationary,
            "spatial": {"unroll": dict(self.spatial), "stream": self.stream_dim},
            "folds": self.folds,
        }


@dataclass(frozen=True, slots=True, eq=False)
class Candidates:
    """Candidate mappings of one GEMM instance: every tile of ``tile_set`` (distinct tile
    sizes, shape ``(T, 3)``) in every loop order of ``orders`` (shape ``(O, 3)``, loop
    dimensions outer to inner as indices into ``DIMS``), as read-only arrays.

    Candidate ``i`` is tile ``i // O`` in order ``i % O`` (``len`` is ``T * O``). The cost
    models work on this grid laid out loop-order-major, :attr:`shape` ``(O, T)``: what depends
    on the tile alone is computed once per tile, as ``(1, T)`` arrays, what depends on the loop
    order too as ``(O, T)`` arrays (the tiles on the contiguous axis: broadcasting a per-tile
    array against the grid then runs numpy's inner loops over ``T`` entries, not ``O = 6``);
    :meth:`flat` turns either into one entry per candidate, in candidate order (``i = t * O +
    o``). ``tiles``, ``order`` and ``trips`` list every candidate's row (``(T * O, 3)``).
    """

    M: int
    N: int
    K: int
    tile_set: np.ndarray
    orders: np.ndarray
    #: The distinct tile sizes along each dimension (sorted), and each tile's index into
    #: them, shape ``(T, 3)``: per-dimension quantities are computed once per size.
    choices: tuple[np.ndarray, np.ndarray, np.ndarray]
    at: np.ndarray
    #: Tiles along each dimension (``ceil(dim / tile)``) of each tile, shape ``(T, 3)``.
    tile_trips: np.ndarray
    #: ``tile_set`` and ``tile_trips`` as float64, one per-tile row per dimension (m, n, k),
    #: ``(3, 1, T)`` (products of tile sizes and of trip counts could pass 2^63 in int64).
    tiles_f: np.ndarray
    trips_f: np.ndarray
    #: Trip counts by loop position (outer to inner) of each tile in each order, float64
    #: ``(3, O, T)``.
    trips_ordered: np.ndarray

    def __len__(self) -> int:
        return int(self.tile_set.shape[0] * self.orders.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        """``(O, T)``: the grid's layout, loop orders by tiles."""
        return (int(self.orders.shape[0]), int(self.tile_set.shape[0]))

    def flat(self, x: Any) -> np.ndarray:
        """A per-tile ``(1, T)`` or per-candidate ``(O, T)`` array (or a scalar) as one
        float64 entry per candidate, in candidate order (tile-major: entry ``t * O + o`` is
        ``x[o, t]``)."""
        return np.broadcast_to(np.asarray(x, dtype=np.float64), self.shape).T.ravel()

    def on_grid(self, x: Any) -> Any:
        """The inverse of :meth:`flat`: ``x`` with one entry per candidate, in candidate
        order (``(T * O,)``), as an ``(O, T)`` array; a per-tile ``(1, T)`` or per-candidate
        ``(O, T)`` array (or a scalar) as it is."""
        x = np.asarray(x)
        if x.ndim != 1:
            return x
        o, t = self.shape
        return np.ascontiguousarray(x.reshape(t, o).T)

    @property
    def dims(self) -> np.ndarray:
        return np.array([self.M, self.N, self.K], dtype=np.int64)

    @property
    def tiles(self) -> np.ndarray:
        """Every candidate's tile sizes, ``(T * O, 3)``."""
        return np.repeat(self.tile_set, self.orders.shape[0], axis=0)

    @property
    def order(self) -> np.ndarray:
        """Every candidate's loop order (indices into ``DIMS``, outer to inner), ``(T * O, 3)``."""
        return np.tile(self.orders, (self.tile_set.shape[0], 1))

    @property
    def trips(self) -> np.ndarray:
        """Every candidate's tiles along each dimension, ``(T * O, 3)``."""
        return np.repeat(self.tile_trips, self.orders.shape[0], axis=0)

    def fold_grid(self, u: Unrolling) -> FoldGrid:
        """:func:`fold_grid` of every tile, as ``(1, T)`` int64 arrays, computed per distinct
        size of each dimension."""
        out = []
        for j, (extent, unit) in enumerate(zip((self.M, self.N, self.K), (u.m, u.n, u.k),
                                               strict=True)):
            sizes = self.choices[j]
            per = _ceil_div(extent, sizes) if unit is None else _folds_along(extent, sizes, unit)
            out.append(per[self.at[None, :, j]])
        return FoldGrid(u, *out)

    @classmethod
    def from_mapping(cls, mapping: Mapping, M: int, N: int, K: int) -> Candidates:
        """The one-row candidate set of an existing mapping of an ``M x N x K`` GEMM."""
        return cls.single(M, N, K, (mapping.tile_m, mapping.tile_n, mapping.tile_k),
                          mapping.loop_order)

    @classmethod
    def single(cls, M: int, N: int, K: int, tile: tuple[int, int, int],
               loop_order: Sequence[str]) -> Candidates:
        """The one-row candidate set of buffer tile ``tile`` = (tile_m, tile_n, tile_k) in
        ``loop_order`` (outer to inner, e.g. ``"mnk"``) of an ``M x N x K`` GEMM."""
        tiles = np.array([list(tile)], dtype=np.int64)
        order = np.array([[DIMS.index(d) for d in loop_order]], dtype=np.int64)
        return _frozen(M, N, K, tiles, order)

    def mapping(self, index: int, arch: ArchSpec) -> Mapping:
        """The :class:`Mapping` of candidate ``index``."""
        t, o = divmod(int(index), self.orders.shape[0])
        tm, tn, tk = (int(x) for x in self.tile_set[t])
        order = tuple(DIMS[int(j)] for j in self.orders[o])
        u = arch.engine.unrolling()
        return Mapping(
            kind=arch.engine.kind,
            tile_m=tm,
            tile_n=tn,
            tile_k=tk,
            tiles_m=_ceil_div(self.M, tm),
            tiles_n=_ceil_div(self.N, tn),
            tiles_k=_ceil_div(self.K, tk),
            loop_order=order,  # type: ignore[arg-type]
            unrolling=u,
            folds=int(fold_grid(u, self.M, self.N, self.K, tm, tn, tk).total),
        )


def _frozen(M: int, N: int, K: int, tiles: np.ndarray, orders: np.ndarray,
            choices: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
            at: np.ndarray | None = None) -> Candidates:
    """The candidate set of distinct ``tiles`` in every loop order of ``orders``;
    ``choices`` and ``at`` (the distinct sizes per dimension and each tile's index into
    them) when the caller has them."""
    tiles = np.ascontiguousarray(tiles, dtype=np.int64)
    orders = np.ascontiguousarray(orders, dtype=np.int64)
    if choices is None or at is None:
        pairs = [np.unique(tiles[:, j], return_inverse=True) for j in range(3)]
        choices = (pairs[0][0], pairs[1][0], pairs[2][0])
        at = np.stack([p[1].ravel() for p in pairs], axis=1)
    # trips per distinct size of each dimension, gathered per tile
    trips = np.stack([_ceil_div(d, c)[at[:, j]] for j, (d, c) in
                      enumerate(zip((M, N, K), choices, strict=True))], axis=1)
    # per dimension a per-tile row, (3, 1, T); by loop position, order and tile, (3, O, T)
    trips_f = np.ascontiguousarray(trips.T[:, None, :], dtype=np.float64)
    arrays = (tiles, orders, trips, np.ascontiguousarray(tiles.T[:, None, :], dtype=np.float64),
              trips_f, np.ascontiguousarray(trips_f[orders.T, 0]), *choices, at)
    for a in arrays:
        a.setflags(write=False)
    return Candidates(M, N, K, tiles, orders, choices, at, *arrays[2:6])


# The trip counts searched per dimension, {1, 2, 3, 4, 6, 8, 12, ...}: a modelling choice (no
# paper prescribes them): a geometric grid whose neighbours differ by at most 1.5x from 2 on,
# so every trip count has one on the grid within 1.5x of it; plus the finest split.
@memo(maxsize=256)
def _trip_counts(units: int) -> tuple[int, ...]:
    """``{1, 2, 3, 4, 6, 8, 12, ...} <= units``, plus ``units`` itself."""
    trips = {units}
    p = 1
    while p <= units:
        trips.add(p)
        if 3 * p // 2 <= units and p >= 2:
            trips.add(3 * p // 2)
        p *= 2
    return tuple(sorted(trips))


def _tile_choices(dim: int, unit: int) -> np.ndarray:
    """The smallest tile giving each trip count of :func:`_trip_counts` (distinct, ascending;
    in Python integers: a few dozen of them, fewer than numpy's per-call overhead pays for)."""
    units = -(-dim // unit)
    return np.array(sorted({min(-(-units // t) * unit, dim) for t in _trip_counts(units)}),
                    dtype=np.int64)


def _storage_bits(fmt: str) -> int:
    return get_format(fmt).bits


def _tile_bytes(elems: Any, bits: int) -> Any:
    return _ceil_div(elems * bits, 8)


def _max_tile_elems(bits: int, buf: SramSpec) -> int:
    """The most elements of ``bits`` bits one tile of ``buf`` holds (``ceil(e * bits / 8) <=
    capacity`` iff ``e <= floor(8 * capacity / bits)``; below 2^54 as capacities are at most
    2^50 bytes)."""
    return 8 * buf.tile_capacity_bytes // bits


def _capacity_error(
    name: str, buf: SramSpec, what: str, shape: tuple[int, int], fmt: str, bits: int
) -> MappingError:
    need = int(_tile_bytes(shape[0] * shape[1], bits))
    capacity = buf.tile_capacity_bytes
    halves = 2 if buf.double_buffered else 1
    why = ", half of it per double-buffered tile" if buf.double_buffered else ""
    return MappingError(
        f"{name}: the smallest {what} tile ({shape[0]} x {shape[1]} {fmt} = {need} bytes) "
        f"does not fit its {capacity}-byte tile capacity (capacity_bytes "
        f"{buf.capacity_bytes}{why}); raise it with --set {name}.capacity_bytes={need * halves}"
        + (f" or --set {name}.double_buffered=false" if buf.double_buffered
           and need <= buf.capacity_bytes else "")
    )


def candidates(gemm: Gemm, arch: ArchSpec) -> Candidates:
    """Every candidate mapping of one instance of ``gemm`` that fits the buffers.

    Raises :class:`MappingError` (one line, naming the buffer and the ``--set`` fix) when even
    the smallest tile does not fit.
    """
    if not isinstance(gemm, Gemm):
        raise TypeError(f"gemm: expected a models.ops.Gemm, got {type(gemm).__name__}")
    if not isinstance(arch, ArchSpec):
        raise TypeError(f"arch: expected a hw.spec.ArchSpec, got {type(arch).__name__}")
    return _candidates(gemm.M, gemm.N, gemm.K, gemm.a_fmt, gemm.w_fmt, arch.engine,
                       arch.a_buffer, arch.w_buffer, arch.o_buffer)


@memo(maxsize=1024)
def _candidates(M: int, N: int, K: int, a_fmt: str, w_fmt: str, engine: EngineSpec,
                a_buffer: SramSpec, w_buffer: SramSpec, o_buffer: SramSpec) -> Candidates:
    """Keyed on the engine and buffers alone: architectures that differ elsewhere (DRAM,
    clock) share one candidate set."""
    units = _tile_units(engine)
    extents: tuple[tuple[int, Dim], ...] = ((M, "m"), (N, "n"), (K, "k"))
    tm, tn, tk = (_tile_choices(d, units[n]) for d, n in extents)
    a_bits, w_bits = _storage_bits(a_fmt), _storage_bits(w_fmt)
    acc_bits = engine.acc_bits

    # A buffer holds whole engine beats: a tile's extent along each dimension is stored
    # rounded up to the dimension's tile unit (a partial block, e.g. the whole of a dimension
    # that is not a multiple of the array's rows, still fills its lines).
    um, un, uk = units["m"], units["n"], units["k"]
    # Minimum tile first: if it does not fit, no tile does (fit is monotone in each size).
    m0, n0, k0 = (int(_ceil_div(int(t[0]), u) * u) for t, u in ((tm, um), (tn, un), (tk, uk)))
    checks = (
        ("a_buffer", a_buffer, "A", (m0, k0), a_fmt, a_bits),
        ("w_buffer", w_buffer, "W", (k0, n0), w_fmt, w_bits),
        ("o_buffer", o_buffer, "output", (m0, n0), f"int{acc_bits} accumulator", acc_bits),
    )
    for name, buf, what, shape, fmt, bits in checks:
        if _tile_bytes(shape[0] * shape[1], bits) > buf.tile_capacity_bytes:
            raise _capacity_error(name, buf, what, shape, fmt, bits)

    # per dimension, the stored extents; then every (m, n, k) combination that fits, in
    # C order (m outer, k inner)
    pm, pn, pk = _ceil_div(tm, um) * um, _ceil_div(tn, un) * un, _ceil_div(tk, uk) * uk
    fits = (
        (pm[:, None, None] <= (_max_tile_elems(a_bits, a_buffer) // pk)[None, None, :])
        & (pn[None, :, None] <= (_max_tile_elems(w_bits, w_buffer) // pk)[None, None, :])
        & (pm[:, None, None] <= (_max_tile_elems(acc_bits, o_buffer) // pn)[None, :, None])
    )
    at = np.stack(np.nonzero(fits), axis=1)
    tiles = np.stack([tm[at[:, 0]], tn[at[:, 1]], tk[at[:, 2]]], axis=1)
    return _frozen(M, N, K, tiles, _ORDER_INDEX, (tm, tn, tk), at)


def untiled(gemm: Gemm, arch: ArchSpec) -> Candidates:
    """The single mapping with every operand whole (``--memory ideal``: operands on chip)."""
    tiles = np.array([[gemm.M, gemm.N, gemm.K]], dtype=np.int64)
    return _frozen(gemm.M, gemm.N, gemm.K, tiles, _ORDER_INDEX[:1])
