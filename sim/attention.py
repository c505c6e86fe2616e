"""Attention on one core: FlashAttention-style tiling through the core's buffers.

One *unit* of work is one (sequence, key/value head) pair: its ``q_rows = q_len * group``
query rows (the ``group`` query heads of a GQA/MQA group share the key/value tiles, so their
rows are packed together, token-major, as FlashDecoding and FlashInfer do) attend to the
unit's ``kv_len`` cached keys and values.

**Tiling** (FlashAttention-2, Dao 2023). A query tile of ``Br`` rows stays in the A buffer
(``Br x qk_dim``); key and value tiles of ``Bc`` tokens stream through the W buffer
(``Bc x (qk_dim + v_dim)``, ``Bc x qk_dim`` for a shared latent cache); the score tile
(``Br x Bc``) and the output accumulator (``Br x v_dim``) live in the output buffer at the
accumulator width. The candidate tiles ``(Br, Bc)`` that fit are :func:`mapping.attention_tiles`
(the search space and the source of its sizes are stated there); this module costs each and
:func:`mapping.pick` keeps the best for the objective.

**Per (query tile, key tile) pair** the engine runs ``S = Q K^T`` (``Br x Bc x qk_dim``) and
``O += P V`` (``Br x v_dim x Bc``), each planned by :func:`sim.execution.plan_gemm` (so a
KV4 cache on a bit-serial engine runs 4-bit weight planes) and timed by the engine's fold
model with operands on chip, in the faster orientation (queries or keys along the engine's M
side: :data:`mapping.ORIENTATIONS`, picked on cycles alone whatever the objective, ties to the
queries). The vector unit does the online softmax: per score a max, a
subtraction, an exponential (``vector.exp_ops``) and a sum, and per row and key tile the
rescale of the running output (``v_dim + 1``), plus the plans' conversions and rescales; at
the end one division per output. Engine and vector unit work on alternate tiles (FlashAttention-3's
ping-pong): compute time is ``max(engine, vector)`` plus one tile pair of the other.

**Causal masking**: a query tile visits only key tiles that hold a visible key (query token
``t`` sees ``kv_len - q_len + t + 1`` keys, the newest ``window`` of them with a sliding
window); a visited tile is computed whole (masked scores
included), the last one at its real length. **Block-sparse** (``sparse_block``/``sparse_topk``):
a query tile visits at most ``sparse_topk`` blocks of ``sparse_block`` keys, chosen by
scoring the tile against mean-pooled block keys (``Br x blocks x qk_dim`` on the engine, read
from a summary of 16-bit block means) and a top-k on the vector unit
(``blocks * ceil(log2 blocks)`` comparisons per query tile).

**Traffic** with the backing level (DRAM, or the global buffer): Q read once, O written once,
every visited key/value tile read once per query tile; the newest ``kv_residual`` tokens at the
query format's width, the others at ``kv_storage_bits``; a paged cache reads whole pages plus a
4-byte page-table entry per page. Time is ``max(compute, bytes / bandwidth)`` plus the first
query and key/value tiles' load and the link latency (double-buffered tiles).

**Exact integers** (``docs/llm_simulator.md``): engine cycles, vector operations, MACs and tile
pairs are Python ints, bytes and times exact (:data:`models.ops.Exact`); the tile choices are
ranked in floats and the chosen one's figures are exact. The query tiles of a unit are
enumerated one by one, so a unit has at most :data:`MAX_QUERY_ROWS` query rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import MappingProxyType

import numpy as np

from hw.spec import ArchSpec
from mapping import (
    ORIENTATIONS,
    AttentionTile,
    MappingError,
    Objective,
    Scored,
    attention_tiles,
    key_share,
    pick,
    visible_keys,
)
from models.caches import memo
from models.formats import get_format
from models.ops import Attention, Exact, Gemm, exact_div
from sim.energy import ENERGY_COMPONENTS, energy_breakdown, unit_energies, vector_op_pj
from sim.engines import gemm_compute_cycles
from sim.errors import InputError
from sim.execution import plan_gemm
from sim.gemm import compute_view, run_gemm
from sim.memory import exact_link

__all__ = ["MAX_QUERY_ROWS", "AttentionCost", "attention_core_cost", "attention_tile_cost"]

#: Query rows (``q_len`` times query heads per key/value head) of one unit at most: its query
#: tiles are enumerated (arrays of one entry per tile, at least one row each), and their
#: visible-key sums (up to 2^40 keys each) stay below 2^62 in int64.
MAX_QUERY_ROWS = 1 << 22

#: Bytes of one page-table entry of a paged KV cache (a 32-bit block index, vLLM).
PAGE_ENTRY_BYTES = 4
#: Bits of one element of a block-sparse key summary (an fp16 mean key).
SUMMARY_BITS = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class AttentionCost:
    """One core's cost for ``units`` units of one attention instance (module doc): times and
    bytes exact."""

    cycles: Exact
    compute_cycles: Exact
    engine_cycles: int
    vector_cycles: Exact
    vector_ops: int
    macs: int
    backing_bytes: Exact
    energy_pj: dict[str, float]
    tile_rows: int
    tile_keys: int
    tile_pairs: int


def _tile_gemm(att: Attention, rows: int, keys: int, kind: str) -> Gemm:
    """One GEMM of a tile pair: "qk" (rows x keys x qk_dim), "pv" (rows x v_dim x keys) or
    "select" (rows x blocks x qk_dim against fp16 block summaries)."""
    acc = "fp32"
    if kind == "qk":
        return Gemm(name="attn_qk", M=rows, N=keys, K=att.qk_dim, a_fmt=att.q_fmt,
                    w_fmt=att.kv_fmt, o_fmt=acc, b_is_weight=False,
                    w_scale_bits=att.kv_scale_bits)
    if kind == "pv":
        return Gemm(name="attn_pv", M=rows, N=att.v_dim, K=keys, a_fmt=att.q_fmt,
                    w_fmt=att.kv_fmt, o_fmt=acc, b_is_weight=False,
                    w_scale_bits=att.kv_scale_bits)
    return Gemm(name="attn_select", M=rows, N=keys, K=att.qk_dim, a_fmt=att.q_fmt,
                w_fmt="fp16", o_fmt=acc, b_is_weight=False)


#: The capacity every level of a :func:`_pair_view` states (any valid value would do).
_PAIR_VIEW_CAPACITY = 1 << 20


@memo(maxsize=256)
def _pair_view(view: ArchSpec) -> ArchSpec:
    """``view`` (a :func:`sim.gemm.compute_view`) with every level's capacity set to one
    value: a tile pair's engine cycles and action counts, operands on chip, do not depend on
    the capacities (they decide which tiles are candidates, and the energy per byte, priced
    per architecture by :func:`_pair_energy_per_mac`), so architectures that differ only in
    their capacities (a sweep over buffer sizes) share them."""
    if all(lv.capacity_bytes == _PAIR_VIEW_CAPACITY for lv in view.memory):
        return view
    return replace(view, memory=tuple(replace(lv, capacity_bytes=_PAIR_VIEW_CAPACITY)
                                      for lv in view.memory))


@memo(maxsize=65536)
def _pair_cycles(pview: ArchSpec, att: Attention, rows: int, keys: int, kind: str
                 ) -> tuple[int, int, bool]:
    """(engine cycles, vector ops, transposed) of one GEMM of a tile pair, operands on chip,
    in the faster orientation; cycles from the engine's fold model
    (:func:`sim.engines.gemm_compute_cycles`) times the plan's slice passes (``pview``: a
    :func:`_pair_view`)."""
    g = _tile_gemm(att, rows, keys, kind)

    def cost(transposed: bool) -> Scored[tuple[int, int, bool]]:
        plan = plan_gemm(pview, g, transposed)
        pg = plan.gemm
        cycles = plan.passes * gemm_compute_cycles(plan.arch.engine, pg.M, pg.N, pg.K)
        return Scored(cycles=float(cycles), energy_pj=0.0,
                      detail=(cycles, plan.vector_ops, transposed))

    return pick(ORIENTATIONS, cost, "latency")[1].detail


@memo(maxsize=4096)
def _pair_actions(pview: ArchSpec, att: Attention, rows: int, keys: int, kind: str
                  ) -> MappingProxyType[str, float]:
    """Action counts (:func:`sim.energy.action_counts`) of a full tile's GEMM with its
    operands on chip (the arithmetic, register and buffer-read actions), on a
    :func:`_pair_view`."""
    g = _tile_gemm(att, rows, keys, kind)
    _, _, transposed = _pair_cycles(pview, att, rows, keys, kind)
    plan = plan_gemm(pview, g, transposed)
    return run_gemm(plan.arch, plan.gemm, memory="ideal", passes=plan.passes).actions


@memo(maxsize=4096)
def _pair_energy_per_mac(view: ArchSpec, att: Attention, rows: int, keys: int, kind: str
                         ) -> dict[str, float]:
    """Engine energy per MAC (pJ by component) of a full tile's GEMM (operands on chip):
    :func:`_pair_actions` priced at ``view``'s energies per action (those of the plan's
    precision). Partial tiles are charged per MAC at the same rate."""
    g = _tile_gemm(att, rows, keys, kind)
    pview = _pair_view(view)
    _, _, transposed = _pair_cycles(pview, att, rows, keys, kind)
    plan = plan_gemm(view, g, transposed)
    energy = energy_breakdown(plan.arch, _pair_actions(pview, att, rows, keys, kind))
    return {k: float(v) / g.macs for k, v in energy.items()}


def _kv_bytes(att: Attention, tokens: np.ndarray) -> Exact:
    """Bytes of ``tokens`` cached tokens of one unit (K and V; residual at full width), summed
    over the entries of ``tokens`` (an int64 array), exactly."""
    return _kv_bytes_of(att, int(tokens.sum()), int(np.minimum(att.kv_residual, tokens).sum()))


def _kv_bytes_of(att: Attention, total: int, residual: int) -> Exact:
    """Bytes of ``total`` cached tokens of one unit, ``residual`` of them at full width."""
    width = att.qk_dim if att.kv_shared else att.qk_dim + att.v_dim
    q_bits = get_format(att.q_fmt).bits
    bits = width * ((total - residual) * att.exact_kv_storage_bits + residual * q_bits)
    return exact_div(bits, 8)


@dataclass(frozen=True, slots=True)
class _Shape:
    """One candidate tile's geometry for one unit, and what follows from it without planning
    any tile pair's GEMM (see :func:`_shapes`)."""

    #: Tile pairs by (query rows, keys), in the order they are costed: full key tiles and
    #: each query tile's last partial one (``length < keys``), with how many of each.
    work: tuple[tuple[int, int, int], ...]
    #: Block-sparse selection GEMMs (query rows, blocks), one per query tile that selects.
    select: tuple[tuple[int, int], ...]
    pairs: int
    #: Vector operations that no plan adds to: the online softmax, the rescale of the running
    #: output, the final normalization and the top-k comparisons.
    softmax_vops: int
    #: MACs of the tile pairs and the selection GEMMs.
    macs: int
    q_bytes: Exact
    o_bytes: Exact
    kv_traffic: Exact
    select_bytes: int
    per_unit_bytes: Exact
    first_bytes: Exact


@memo(maxsize=4096)
def _shapes(view: ArchSpec, att: Attention, kv_split: int
            ) -> MappingProxyType[AttentionTile, _Shape]:
    """The :class:`_Shape` of each candidate tile (:func:`mapping.attention_tiles`, in its
    order) of one unit: its tile pairs, bytes and plan-free vector work (numpy over the query
    tiles; no GEMM is planned, so every candidate's is cheap)."""
    vec = view.vector
    assert vec is not None
    q_rows = att.q_len * att.group_size
    part = key_share(att, kv_split)
    kv_len = part.kv_len
    q_bits = get_format(att.q_fmt).bits
    soft_per_score = 3 + vec.exp_ops
    q_bytes = exact_div(q_rows * att.qk_dim * q_bits, 8)
    o_bytes = exact_div(q_rows * att.v_dim * q_bits, 8)
    out: dict[AttentionTile, _Shape] = {}
    last_rows = 0
    for tile in attention_tiles(att, view, kv_split):
        rows, keys = tile.rows, tile.keys
        if rows != last_rows:  # the candidates come rows-major: what does not depend on keys
            last_rows = rows
            visible = visible_keys(att, rows, kv_split)
            row_sizes = np.minimum(rows, q_rows - np.arange(visible.size) * rows)
            seen = visible
            row_vops = row_macs = select_bytes = 0
            select: list[tuple[int, int]] = []
            if att.sparse_block:
                budget = att.sparse_topk * att.sparse_block
                blocks = -(-visible // att.sparse_block)
                seen = np.minimum(visible, budget)
                for r, nb in zip(row_sizes.tolist(), blocks.tolist(), strict=True):
                    if nb > att.sparse_topk:  # selection only when there is a choice
                        select.append((r, nb))
                        row_vops += nb * math.ceil(math.log2(nb))
                        row_macs += r * nb * att.qk_dim
                        select_bytes += nb * att.qk_dim * SUMMARY_BITS // 8
            # the query tiles by their rows (all full but perhaps the last)
            groups = [(r, row_sizes == r) for r in np.unique(row_sizes).tolist()]
            for r, sel in groups:
                row_vops += int(sel.sum()) * r * att.v_dim  # final normalization
            # traffic with the backing level
            tokens = seen
            page_bytes = 0
            if att.page_tokens:
                pages = -(-seen // att.page_tokens)
                tokens = pages * att.page_tokens
                page_bytes = int(pages.sum()) * PAGE_ENTRY_BYTES
            kv_traffic = _kv_bytes(part, np.minimum(tokens, kv_len))
            per_unit = q_bytes + o_bytes + kv_traffic + page_bytes + select_bytes
            first_q = exact_div(rows * att.qk_dim * q_bits, 8)
        vops, macs = row_vops, row_macs
        full, rem = np.divmod(seen, keys)
        pairs = int((full + (rem > 0)).sum())
        # tile pairs by (query rows, keys): full key tiles and each tile's last partial one
        work: dict[tuple[int, int], int] = {}
        for r, sel in groups:
            work[(r, keys)] = work.get((r, keys), 0) + int(full[sel].sum())
            lens, counts = np.unique(rem[sel], return_counts=True)
            for length, t in zip(lens.tolist(), counts.tolist(), strict=True):
                if length:
                    work[(r, length)] = work.get((r, length), 0) + t
        items = tuple((r, length, times) for (r, length), times in work.items() if times)
        for r, length, times in items:
            macs += times * r * length * (att.qk_dim + att.v_dim)
            vops += times * (r * length * soft_per_score + r * (att.v_dim + 1))
        first_kv = min(keys, kv_len)
        out[tile] = _Shape(
            work=items, select=tuple(select), pairs=pairs, softmax_vops=vops, macs=macs,
            q_bytes=q_bytes, o_bytes=o_bytes, kv_traffic=kv_traffic, select_bytes=select_bytes,
            per_unit_bytes=per_unit,
            first_bytes=first_q + _kv_bytes_of(part, first_kv,
                                               min(part.kv_residual, first_kv)))
    return MappingProxyType(out)


@dataclass(frozen=True, slots=True)
class _Tile:
    """One tile choice's link-independent costs for one unit (see attention_core_cost), or a
    floor of them (:func:`_tile_floor`)."""

    engine: int
    vops: int
    engine_energy: tuple[tuple[str, float], ...]
    shape: _Shape


def _tile_costs(view: ArchSpec, att: Attention, kv_split: int, tile: AttentionTile,
                partial: bool) -> _Tile:
    """A tile's engine cycles, vector operations and engine energy: exact with ``partial``
    (every tile pair planned), else a floor that plans only the full key tiles' GEMMs for
    their cycles and plan operations, and counts no engine energy (pricing a tile pair's
    actions runs the engine model's whole evaluation: the floor skips it); the partial key
    tiles and the selection GEMMs add nothing. Everything left out is non-negative, so each
    of the floor's figures is at most the exact one (in floats too: rounding is monotone)."""
    shape = _shapes(view, att, kv_split)[tile]
    part = key_share(att, kv_split)
    pview = _pair_view(view)
    engine, vops = 0, shape.softmax_vops
    e_engine = dict.fromkeys(ENERGY_COMPONENTS, 0.0)
    if partial:
        for r, nb in shape.select:
            c, v, _ = _pair_cycles(pview, part, r, nb, "select")
            engine += c
            vops += v
            macs = r * nb * att.qk_dim
            for k2, x in _pair_energy_per_mac(view, part, r, nb, "select").items():
                e_engine[k2] += x * macs
    for r, length, times in shape.work:
        for kind, dim in (("qk", att.qk_dim), ("pv", att.v_dim)):
            if not partial:  # the floor: full key tiles' cycles and plan operations only
                if length == tile.keys:
                    c, v, _ = _pair_cycles(pview, part, r, length, kind)
                    engine += times * c
                    vops += times * v
                continue
            c, v, _ = _pair_cycles(pview, part, r, length, kind)
            engine += times * c
            vops += times * v
            # partial tiles are charged per MAC at the full tile's rate
            macs = r * length * dim
            for k2, x in _pair_energy_per_mac(view, part, r, tile.keys, kind).items():
                e_engine[k2] += times * (x * macs)
    return _Tile(engine=engine, vops=vops, engine_energy=tuple(e_engine.items()), shape=shape)


@memo(maxsize=16384)
def _tile(view: ArchSpec, att: Attention, kv_split: int, tile: AttentionTile) -> _Tile:
    """What ``tile`` costs one unit apart from the backing link, exactly (cached per
    :func:`sim.gemm.compute_view`: shared by architectures that differ only in their DRAM
    link or clock)."""
    return _tile_costs(view, att, kv_split, tile, partial=True)


@memo(maxsize=16384)
def _tile_floor(view: ArchSpec, att: Attention, kv_split: int, tile: AttentionTile
                ) -> _Tile:
    """A floor of :func:`_tile`: engine cycles and vector operations at most the exact ones,
    energy by component at most the exact one (:func:`_tile_costs`)."""
    return _tile_costs(view, att, kv_split, tile, partial=False)


def attention_tile_cost(arch: ArchSpec, att: Attention, units: int, kv_split: int = 1,
                        *, floor: bool = False
                        ) -> Callable[[AttentionTile], Scored[dict[str, float]]]:
    """The cost function :func:`attention_core_cost` hands :func:`mapping.pick`: what ``units``
    units of one instance of ``att`` cost on one core (``arch``: the core's view) under one
    candidate of :func:`mapping.attention_tiles` (``attention_tiles(att, compute_view(arch),
    kv_split)``), with the backing link: time ``max(compute, bytes / bandwidth)`` plus the
    first tiles' load and the link latency, in float64 to rank the tiles (the chosen one's
    figures are evaluated again exactly by :func:`attention_core_cost`); the detail is the
    energy by component.

    ``floor``: the floor :func:`mapping.pick` prunes with (``floor_fn``): the same figures of
    :func:`_tile_floor`, which plans only each tile's full key tiles. Every figure of the cost
    is non-decreasing in the engine cycles, the vector operations and the energy by
    component, and float rounding is monotone, so each figure of the floor is at most the
    cost's."""
    if arch.vector is None:
        raise MappingError("vector: attention needs a vector unit for its softmax; add a "
                           "[vector] table (lanes = ...) to the architecture")
    q_rows = att.q_len * att.group_size
    if q_rows > MAX_QUERY_ROWS:
        raise InputError(
            f"{att.name}.q_len: {att.q_len:,} query tokens x {att.group_size} query heads per "
            f"key/value head = {q_rows:,} query rows per (sequence, KV head) exceed 2^22 = "
            f"{MAX_QUERY_ROWS:,}, the most the attention tiling enumerates; simulate fewer "
            "query tokens per pass (--q-len, or --seq of a prefill)")
    view = compute_view(arch)
    of = _tile_floor if floor else _tile
    energies = unit_energies(arch)
    vec_pj = vector_op_pj(arch)
    lanes = arch.vector.lanes
    bw = arch.dram_bytes_per_cycle
    lat = arch.dram.latency_ns * arch.clock_mhz / 1e3

    def cost(tile: AttentionTile) -> Scored[dict[str, float]]:
        t = of(view, att, kv_split, tile)
        s = t.shape
        engine = float(t.engine)
        vector_cycles = t.vops / lanes
        busy = max(engine, vector_cycles) + (engine + vector_cycles) / max(s.pairs, 1)
        total_bytes = units * float(s.per_unit_bytes)
        cycles = max(units * busy, total_bytes / bw) + float(s.first_bytes) / bw + lat
        energy = {k2: units * x for k2, x in t.engine_energy}
        # fills of the buffers from the backing level, and the output write-back
        energy["a_buffer"] += units * float(s.q_bytes) * energies.a_buffer_byte_pj
        energy["w_buffer"] += (units * (float(s.kv_traffic) + float(s.select_bytes))
                               * energies.w_buffer_byte_pj)
        energy["o_buffer"] += units * float(s.o_bytes) * energies.o_buffer_byte_pj
        energy["dram"] += total_bytes * energies.dram_byte_pj
        energy["vector"] = units * t.vops * vec_pj
        return Scored(cycles=cycles, energy_pj=sum(energy.values()), detail=energy)

    return cost


def _exact_cost(arch: ArchSpec, att: Attention, units: int, kv_split: int,
                tile: AttentionTile, energy: dict[str, float]) -> AttentionCost:
    """The figures of ``units`` units under ``tile``, exactly (:func:`attention_tile_cost`'s
    floats only rank the tiles), with its energy by component."""
    assert arch.vector is not None
    t = _tile(compute_view(arch), att, kv_split, tile)
    s = t.shape
    vector_cycles = exact_div(t.vops, arch.vector.lanes)
    busy = max(t.engine, vector_cycles) + exact_div(t.engine + vector_cycles, max(s.pairs, 1))
    per_unit_bytes, first_bytes = s.per_unit_bytes, s.first_bytes
    total_bytes = units * per_unit_bytes
    bw, lat = exact_link(arch)
    return AttentionCost(
        cycles=(max(units * busy, exact_div(total_bytes, bw)) + exact_div(first_bytes, bw)
                + lat),
        compute_cycles=units * busy, engine_cycles=units * t.engine,
        vector_cycles=units * vector_cycles, vector_ops=units * t.vops, macs=units * s.macs,
        backing_bytes=total_bytes, energy_pj=energy, tile_rows=tile.rows, tile_keys=tile.keys,
        tile_pairs=units * s.pairs,
    )


def attention_core_cost(
    arch: ArchSpec, att: Attention, units: int, *, objective: Objective = "latency",
    kv_split: int = 1,
) -> AttentionCost:
    """Cost on one core (``arch``: the core's view, its ``dram`` being the backing link) of
    ``units`` (sequence, KV head) pairs of one instance of ``att`` (``count`` ignored), under
    the tile that minimises ``objective``: :func:`mapping.pick` over
    :func:`mapping.attention_tiles` with :func:`attention_tile_cost` (in floats), the chosen
    tile's figures then evaluated exactly.

    ``kv_split`` > 1: this core handles ``1/kv_split`` of each unit's keys (FlashDecoding's
    split-KV across cores, for decode with fewer units than cores); the partial outputs are
    merged by the caller. Raises :class:`mapping.MappingError` without a vector unit or when
    no tile fits the buffers, :class:`sim.errors.InputError` above :data:`MAX_QUERY_ROWS`
    query rows per unit.
    """
    cost = attention_tile_cost(arch, att, units, kv_split)
    floor = attention_tile_cost(arch, att, units, kv_split, floor=True)
    cands = attention_tiles(att, compute_view(arch), kv_split)
    tile, scored = pick(cands, cost, objective, floor_fn=floor)
    return _exact_cost(arch, att, units, kv_split, tile, scored.detail)
