"""How attention is cut into query and key tiles on one core: its mapping space.

One *unit* of attention work is one (sequence, key/value head) pair: its ``q_rows = q_len *
group`` query rows (the ``group`` query heads sharing one key/value head, packed token-major)
attend to its ``kv_len`` cached keys and values (``ceil(kv_len / kv_split)`` of them when
the keys are split over cores, :mod:`mapping.cores`).

**Tiling** (FlashAttention-2, Dao 2023). A query tile of ``rows`` (FlashAttention's ``Br``)
packed rows stays in the A buffer (``rows x qk_dim`` at the query format's width); key and value
tiles of ``keys`` (``Bc``) tokens stream through the W buffer (``keys x (qk_dim + v_dim)``, or
``keys x qk_dim`` for a shared latent cache, at the cache's storage width, the query width when
a full-precision residual is kept); the score tile (``rows x keys``) and the output
accumulator (``rows x v_dim``) share the output buffer at the accumulator width. A candidate is
a :class:`AttentionTile` whose three tiles each fit their buffer's tile capacity (half the
buffer when double-buffered).

**The candidate grid** (:func:`attention_tiles`): powers of two from a smallest tile up to
the extent, plus the extent itself, for each of

* ``rows``: from ``min(engine M unroll, 8)`` (:data:`MIN_TILE_ROWS`) to ``q_rows``;
* ``keys``: from 16 (:data:`MIN_TILE_KEYS`) to the most keys any query tile of that ``rows``
  visits (:func:`visible_keys`: causal masking and a sliding window shorten the key range).

Powers of two because FlashAttention-2 tunes its block sizes among them ({64, 128} x {64, 128},
chosen from the head dimension and the shared memory; Dao 2023); here the whole power-of-two
grid that fits the buffers is offered and the caller's cost model decides. Candidates are
ordered by ``rows`` then ``keys``, smallest first: equal costs go to the smaller tiles.

This module knows geometry only; what a tile costs (engine folds, the online softmax on the
vector unit, traffic) is the caller's business (:func:`mapping.pick` takes the cost function).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from hw.spec import ArchSpec
from mapping.tiling import MappingError
from models.caches import clear_caches, memo
from models.formats import get_format
from models.ops import Attention

__all__ = [
    "MIN_TILE_KEYS",
    "MIN_TILE_ROWS",
    "AttentionTile",
    "attention_tiles",
    "clear_caches",
    "key_share",
    "tile_sizes",
    "visible_keys",
]

#: Smallest query tile searched, in packed rows, when the engine unrolls M by at least this
#: much (an engine whose M unroll is smaller starts at its unroll, so its tiles are whole
#: multiples of it; an engine that streams M starts here). A modelling choice, no paper sets
#: a minimum: small enough that a small A buffer still finds a tile, and the power-of-two grid
#: above it holds FlashAttention-2's block sizes, 64 and 128 (Dao 2023).
MIN_TILE_ROWS = 8
#: Smallest key/value tile searched, in tokens. A modelling choice, as MIN_TILE_ROWS: the
#: size of vLLM's default KV-cache block (16 tokens, Kwon et al. SOSP 2023), and the grid
#: above it holds FlashAttention-2's 64 and 128.
MIN_TILE_KEYS = 16


@dataclass(frozen=True, slots=True)
class AttentionTile:
    """One candidate tiling of a unit: ``rows`` packed query rows (``Br``) against ``keys``
    key/value tokens (``Bc``) per tile pair (module doc)."""

    rows: int
    keys: int


def tile_sizes(limit: int, smallest: int) -> list[int]:
    """``smallest * 2**i`` below ``limit``, and ``limit`` itself (ascending)."""
    out, t = [], max(1, smallest)
    while t < limit:
        out.append(t)
        t *= 2
    out.append(limit)
    return sorted(set(out))


def key_share(att: Attention, kv_split: int) -> Attention:
    """One core's share of a unit when its keys are split ``kv_split`` ways (FlashDecoding):
    ``ceil(kv_len / kv_split)`` keys, at most as many queries; ``att`` itself when 1."""
    if kv_split == 1:
        return att
    kv_len = -(-att.kv_len // kv_split)
    return dataclasses.replace(att, kv_len=kv_len, q_len=min(att.q_len, kv_len))


def visible_keys(att: Attention, rows: int, kv_split: int = 1) -> np.ndarray:
    """Keys each query tile of ``rows`` packed rows must visit (read-only int64, one entry per
    tile, first rows first): up to its last query's position (causal), from its first query's
    window start (sliding window). With the keys split ``kv_split`` ways every tile visits the
    whole share (the split serves decode, one query per sequence)."""
    q_rows = att.q_len * att.group_size
    n_tiles = -(-q_rows // rows)
    part = key_share(att, kv_split)
    if kv_split != 1:
        out = np.full(n_tiles, part.kv_len, dtype=np.int64)
    else:
        first_row = np.arange(n_tiles) * rows
        last_row = np.minimum(first_row + rows, q_rows) - 1
        offset = att.kv_len - att.q_len  # position of query token 0 minus 1
        last_key = (offset + last_row // att.group_size if att.causal
                    else np.full(n_tiles, att.kv_len - 1))
        first_key = np.zeros(n_tiles, dtype=np.int64)
        if att.window:
            first_key = np.maximum(0, offset + first_row // att.group_size - att.window + 1)
        out = (last_key - first_key + 1).astype(np.int64)
    out.setflags(write=False)
    return out


def attention_tiles(att: Attention, arch: ArchSpec, kv_split: int = 1
                    ) -> tuple[AttentionTile, ...]:
    """Every candidate tiling (module doc) of one unit of ``att`` that fits ``arch``'s buffers
    (``arch``: one core's view), rows-major, smallest first.

    Raises :class:`MappingError` (one line, naming the buffers and the fix) when none fits.
    """
    if not isinstance(att, Attention):
        raise TypeError(f"att: expected a models.ops.Attention, got {type(att).__name__}")
    if not isinstance(arch, ArchSpec):
        raise TypeError(f"arch: expected a hw.spec.ArchSpec, got {type(arch).__name__}")
    if kv_split < 1:
        raise ValueError(f"kv_split: must be >= 1 (got {kv_split})")
    return _attention_tiles(att, arch, kv_split)


@memo(maxsize=4096)
def _attention_tiles(att: Attention, arch: ArchSpec, kv_split: int
                     ) -> tuple[AttentionTile, ...]:
    u = arch.engine.unrolling()
    q_rows = att.q_len * att.group_size
    q_bits = get_format(att.q_fmt).bits
    acc_bits = arch.engine.acc_bits
    kv_width = att.qk_dim if att.kv_shared else att.qk_dim + att.v_dim
    kv_bits = max(att.kv_storage_bits, q_bits if att.kv_residual else 0)
    a_cap = arch.a_buffer.tile_capacity_bytes
    w_cap = arch.w_buffer.tile_capacity_bytes
    o_cap = arch.o_buffer.tile_capacity_bytes
    out: list[AttentionTile] = []
    row_sizes = tile_sizes(q_rows, min(u.m or MIN_TILE_ROWS, MIN_TILE_ROWS))
    for rows in row_sizes:
        if rows * att.qk_dim * q_bits / 8 > a_cap:
            continue
        longest = int(visible_keys(att, rows, kv_split).max())
        for keys in tile_sizes(longest, MIN_TILE_KEYS):
            if keys * kv_width * kv_bits / 8 > w_cap:
                continue
            if rows * (keys + att.v_dim) * acc_bits / 8 > o_cap:
                continue
            out.append(AttentionTile(rows=rows, keys=keys))
    if not out:
        raise _no_tile_error(att, arch, row_sizes[0], kv_split, q_bits, kv_width, kv_bits)
    return tuple(out)


def _no_tile_error(att: Attention, arch: ArchSpec, rows: int, kv_split: int, q_bits: int,
                   kv_width: int, kv_bits: float) -> MappingError:
    """The one-line error when not even the smallest tile fits: each buffer it overflows, and
    the capacity that would hold it (twice the tile when double-buffered)."""
    keys = tile_sizes(int(visible_keys(att, rows, kv_split).max()), MIN_TILE_KEYS)[0]
    acc_bits = arch.engine.acc_bits
    needs = (
        ("a_buffer", arch.a_buffer, f"{rows} query rows", rows * att.qk_dim * q_bits / 8),
        ("w_buffer", arch.w_buffer, f"{keys} keys", keys * kv_width * kv_bits / 8),
        ("o_buffer", arch.o_buffer, f"{rows} x {keys} scores and {rows} output rows",
         rows * (keys + att.v_dim) * acc_bits / 8),
    )
    over = [(name, what, math.ceil(need) * (2 if buf.double_buffered else 1))
            for name, buf, what, need in needs if need > buf.tile_capacity_bytes]
    parts = ", ".join(f"{what} in {name}" for name, what, _ in over)
    fixes = " and ".join(f"--set {name}.capacity_bytes={cap}" for name, _, cap in over)
    return MappingError(f"{att.name}: no attention tile fits the buffers (the smallest tile "
                        f"needs {parts}); raise them with {fixes}")

