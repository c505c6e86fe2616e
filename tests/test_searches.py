"""mapping/'s typed searches beside the GEMM tiling: attention tiles, core splits and
orientations, all picked by one :func:`mapping.pick` under the GEMM search's objective keys;
the simulator's choices are the brute-force best over those candidate sets."""

from __future__ import annotations

import dataclasses
import math
import random
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hw.spec import load_arch
from mapping import (
    MIN_TILE_KEYS,
    MIN_TILE_ROWS,
    OBJECTIVES,
    ORIENTATIONS,
    AttentionTile,
    CoreSplit,
    Costs,
    MappingError,
    Scored,
    attention_tiles,
    best_index,
    core_splits,
    key_share,
    pick,
    tile_sizes,
    visible_keys,
)
from models.formats import get_format
from models.ops import Attention, Gemm
from sim.attention import attention_tile_cost
from sim.gemm import compute_view
from sim.system import attention_split_cost, core_arch, gemm_split_cost, simulate_op

#: The presets the simulator's choices are checked on: one core, four cores with a global
#: buffer, an HBM NPU (weight-stationary 128x128 cores) and a run-time-precision engine.
PRESETS = ("systolic", "systolic-4core", "npu-hbm", "lut")


def brute_force(values: list[tuple[float, float, float]], objective: str) -> int:
    """Index of the best (cycles, energy, dram) triple, written out independently of
    mapping: the objective's metric, then the other metric, then DRAM bytes, then the
    earliest."""
    def key(i: int) -> tuple[float, float, float, int]:
        c, e, d = values[i]
        primary = {"latency": c, "energy": e, "edp": c * e}[objective]
        secondary = c if objective == "energy" else e
        return (primary, secondary, d, i)
    return min(range(len(values)), key=key)


# -- pick: the shared objective keys --------------------------------------------------------

triples = st.lists(st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(0, 3)),
                   min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(values=triples, objective=st.sampled_from(OBJECTIVES))
def test_pick_returns_the_brute_force_argmin_for_each_objective(values, objective):
    # small integers: many ties on every key, so the tie-breaking is exercised
    cands = tuple(range(len(values)))

    def cost(i: int) -> Scored[int]:
        c, e, d = values[i]
        return Scored(cycles=float(c), energy_pj=float(e), dram_bytes=float(d), detail=10 * i)

    chosen, scored = pick(cands, cost, objective)
    expected = brute_force([tuple(map(float, v)) for v in values], objective)
    assert chosen == expected
    assert scored.detail == 10 * expected
    # the GEMM search's vectorised pick ranks the same way
    arr = np.array(values, dtype=np.float64)
    costs = Costs(cycles=arr[:, 0], energy_pj=arr[:, 1], dram_bytes=arr[:, 2])
    assert best_index(costs, objective) == expected


@settings(max_examples=200, deadline=None)
@given(data=st.data(), orders=st.integers(1, 6), tiles=st.integers(1, 8),
       objective=st.sampled_from(OBJECTIVES), per_tile_energy=st.booleans(),
       with_bytes=st.booleans())
def test_best_index_on_the_grid_picks_the_brute_force_candidate(
        data, orders, tiles, objective, per_tile_energy, with_bytes):
    """Costs laid out as the candidates' (O, T) grid (candidate ``t * O + o`` at ``[o, t]``,
    energy per tile ``(1, T)`` as the simulator's): the same pick as the brute force over
    the candidates in order, ties included."""
    small = st.integers(0, 3)
    cycles = np.array(data.draw(st.lists(small, min_size=orders * tiles,
                                         max_size=orders * tiles)), dtype=np.float64)
    cycles = cycles.reshape(orders, tiles)
    energy = np.array(data.draw(st.lists(small, min_size=tiles, max_size=tiles)),
                      dtype=np.float64)[None, :]
    if not per_tile_energy:
        energy = energy + cycles % 2
    dram = (np.array(data.draw(st.lists(small, min_size=orders * tiles,
                                        max_size=orders * tiles)), dtype=np.float64)
            .reshape(orders, tiles) if with_bytes else None)
    full = [np.broadcast_to(x, (orders, tiles)) for x in
            (cycles, energy, np.zeros((orders, tiles)) if dram is None else dram)]
    values = list(zip(*(x.T.ravel().tolist() for x in full), strict=True))
    costs = Costs(cycles=cycles, energy_pj=energy, dram_bytes=dram, grid=(orders, tiles))
    assert best_index(costs, objective) == brute_force(values, objective)


@settings(max_examples=200, deadline=None)
@given(values=triples, slack=st.lists(st.integers(0, 3), min_size=30, max_size=30),
       objective=st.sampled_from(OBJECTIVES))
def test_pick_with_floors_picks_the_same_and_skips_what_cannot_win(values, slack, objective):
    """A floor (cycles lower by some slack, energy and bytes the same) changes nothing in the
    pick; a candidate is costed only if its floor key is at most the winner's key."""
    cands = tuple(range(len(values)))
    costed: list[int] = []

    def cost(i: int) -> Scored[int]:
        costed.append(i)
        c, e, d = values[i]
        return Scored(cycles=float(c), energy_pj=float(e), dram_bytes=float(d), detail=10 * i)

    def floor(i: int) -> Scored[None]:
        c, e, d = values[i]
        return Scored(cycles=float(max(0, c - slack[i])), energy_pj=float(e),
                      dram_bytes=float(d), detail=None)

    chosen, scored = pick(cands, cost, objective, floor)
    expected = brute_force([tuple(map(float, v)) for v in values], objective)
    assert chosen == expected and scored.detail == 10 * expected
    key = dict(zip(OBJECTIVES, ((0, 1, 2), (1, 0, 2), (None, 1, 2)), strict=True))[objective]

    def as_key(c: float, e: float, d: float, i: int) -> tuple[float, ...]:
        first = c * e if key[0] is None else (c, e, d)[key[0]]
        return (first, (c, e, d)[key[1]], d, i)

    best = as_key(*map(float, values[expected]), expected)
    for i in cands:
        c, e, d = values[i]
        floor_key = as_key(float(max(0, c - slack[i])), float(e), float(d), i)
        assert (i in costed) == (floor_key <= best), (i, floor_key, best)


def test_pick_costs_every_candidate_and_rejects_bad_input():
    seen: list[int] = []

    def cost(i: int) -> Scored[None]:
        seen.append(i)
        return Scored(cycles=1.0, energy_pj=1.0, detail=None)

    assert pick((3, 1, 2), cost, "edp")[0] == 3  # all tied: the first
    assert seen == [3, 1, 2]
    with pytest.raises(ValueError, match=r"^objective: must be one of latency, energy, edp"):
        pick((1,), cost, "speed")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^candidates: the candidate set is empty"):
        pick((), cost, "latency")


# -- attention tiles ------------------------------------------------------------------------


@st.composite
def attentions(draw: st.DrawFn) -> Attention:
    kv_heads = draw(st.sampled_from([1, 2, 8]))
    kv_len = draw(st.integers(1, 9000))
    q_len = draw(st.sampled_from([1, kv_len, max(1, kv_len // 5)]))
    qk_dim = draw(st.sampled_from([64, 128, 192, 576]))
    shared = draw(st.booleans()) and qk_dim >= 128
    return Attention(
        name="a", batch=draw(st.integers(1, 6)), heads=kv_heads * draw(st.sampled_from([1, 4, 8])),
        kv_heads=kv_heads, q_len=q_len, kv_len=kv_len, qk_dim=qk_dim,
        v_dim=128 if shared else draw(st.sampled_from([64, 128])), causal=draw(st.booleans()),
        q_fmt=draw(st.sampled_from(["fp16", "int8"])),
        kv_fmt=draw(st.sampled_from(["fp16", "int8", "int4"])),
        kv_residual=draw(st.sampled_from([0, 32])), kv_shared=shared,
        window=draw(st.sampled_from([0, 0, 300])))


def grid(limit: int, smallest: int) -> list[int]:
    """Powers of two times ``smallest`` below ``limit``, and ``limit`` (module doc of
    mapping.attention), enumerated independently of :func:`mapping.tile_sizes`."""
    return sorted({smallest << i for i in range(40) if smallest << i < limit} | {limit})


@settings(max_examples=80, deadline=None)
@given(att=attentions(), preset=st.sampled_from(PRESETS), kv_split=st.sampled_from([1, 1, 3]))
def test_attention_tiles_are_typed_fit_and_are_exactly_the_documented_grid(att, preset,
                                                                           kv_split):
    arch = load_arch(preset)
    tiles = attention_tiles(att, arch, kv_split)
    assert tiles and all(type(t) is AttentionTile for t in tiles)
    with pytest.raises(dataclasses.FrozenInstanceError):
        tiles[0].rows = 1  # type: ignore[misc]
    q_rows = att.q_len * att.group_size
    q_bits = get_format(att.q_fmt).bits
    kv_width = att.qk_dim if att.kv_shared else att.qk_dim + att.v_dim
    kv_bits = max(att.kv_storage_bits, q_bits if att.kv_residual else 0)
    acc = arch.engine.acc_bits
    a_cap, w_cap, o_cap = (b.tile_capacity_bytes
                           for b in (arch.a_buffer, arch.w_buffer, arch.o_buffer))
    # every candidate fits its three buffers (bits compared against 8 x bytes: exact)
    for t in tiles:
        assert t.rows * att.qk_dim * q_bits <= 8 * a_cap
        assert t.keys * kv_width * kv_bits <= 8 * w_cap
        assert t.rows * (t.keys + att.v_dim) * acc <= 8 * o_cap
    # and the set is the whole grid that fits, rows-major, smallest first
    u_m = arch.engine.unrolling().m
    expected = []
    for rows in grid(q_rows, min(u_m or MIN_TILE_ROWS, MIN_TILE_ROWS)):
        longest = int(visible_keys(att, rows, kv_split).max())
        assert 1 <= longest <= -(-att.kv_len // kv_split)
        expected += [AttentionTile(rows, keys) for keys in grid(longest, MIN_TILE_KEYS)
                     if rows * att.qk_dim * q_bits <= 8 * a_cap
                     and keys * kv_width * kv_bits <= 8 * w_cap
                     and rows * (keys + att.v_dim) * acc <= 8 * o_cap]
    assert list(tiles) == expected


@settings(max_examples=60, deadline=None)
@given(att=attentions(), rows=st.integers(1, 600))
def test_visible_keys_count_the_causal_and_windowed_keys_of_each_query_tile(att, rows):
    seen = visible_keys(att, rows)
    q_rows = att.q_len * att.group_size
    assert seen.size == -(-q_rows // rows) and not seen.flags.writeable
    # brute force: a packed row r is query token r // group at position kv_len - q_len + t
    for i in range(min(seen.size, 5)):
        lo_row, hi_row = i * rows, min((i + 1) * rows, q_rows) - 1
        last = (att.kv_len - att.q_len + hi_row // att.group_size if att.causal
                else att.kv_len - 1)
        first = (max(0, att.kv_len - att.q_len + lo_row // att.group_size - att.window + 1)
                 if att.window else 0)
        assert seen[i] == last - first + 1


def test_tile_sizes_is_the_power_of_two_grid():
    assert tile_sizes(100, 16) == [16, 32, 64, 100]
    assert tile_sizes(64, 16) == [16, 32, 64]
    assert tile_sizes(5, 8) == [5]


@pytest.mark.parametrize("override", ["a_buffer.capacity_bytes=512",
                                      "w_buffer.capacity_bytes=1024",
                                      "o_buffer.capacity_bytes=1024"])
def test_no_attention_tile_names_the_buffer_and_the_suggested_capacity_fixes_it(override):
    att = Attention(name="attn", batch=1, heads=8, kv_heads=8, q_len=64, kv_len=64,
                    qk_dim=128, v_dim=128)
    arch = load_arch("systolic", [override])
    with pytest.raises(MappingError, match=r"^attn: no attention tile fits the buffers") as info:
        attention_tiles(att, arch)
    message = str(info.value)
    assert "\n" not in message and override.split(".")[0] in message
    fixes = re.findall(r"--set (\w+\.capacity_bytes=\d+)", message)
    assert fixes
    assert attention_tiles(att, load_arch("systolic", [override, *fixes]))


# -- core splits ----------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(M=st.integers(1, 5000), N=st.integers(1, 5000), cores=st.integers(1, 64))
def test_gemm_core_splits_divide_n_or_m_in_both_orientations(M, N, cores):
    splits = core_splits(Gemm(name="g", M=M, N=N, K=64), cores)
    assert splits and all(type(s) is CoreSplit for s in splits)
    dims = ["n", "m"] if cores > 1 else ["n"]
    assert [(s.dim, s.transposed) for s in splits] == [(d, t) for d in dims for t in ORIENTATIONS]
    for s in splits:
        extent = {"n": N, "m": M}[s.dim]
        assert s.size == -(-extent // cores)  # the old loop's slice
        assert 1 <= s.cores_used <= cores
        assert (s.cores_used - 1) * s.size < extent <= s.cores_used * s.size
        share = s.share(Gemm(name="g", M=M, N=N, K=64, count=5))
        assert share.count == 1 and getattr(share, s.dim.upper()) == s.size


@settings(max_examples=150, deadline=None)
@given(att=attentions(), cores=st.integers(1, 64))
def test_attention_core_split_is_by_units_or_by_keys_in_decode(att, cores):
    (split,) = core_splits(att, cores)
    units = att.batch * att.kv_heads
    assert 1 <= split.cores_used <= cores and not split.transposed
    if split.dim == "keys":
        assert att.q_len == 1 and units < cores and split.kv_split > 1
        wanted = min(cores // units, att.kv_len)  # ranges asked for; the empty ones dropped
        assert split.size == -(-att.kv_len // wanted)
        assert split.kv_split <= wanted and split.cores_used == units * split.kv_split
        assert split.kv_split * split.size >= att.kv_len > (split.kv_split - 1) * split.size
        assert split.units_per_core == 1
        assert split.size == key_share(att, split.kv_split).kv_len
    else:
        assert split.dim == "units" and split.kv_split == 1
        assert split.units_per_core == split.size == -(-units // cores)
        assert split.cores_used == min(cores, units)


@pytest.mark.parametrize(("preset", "kv_heads", "q_len"), [
    ("systolic-4core", 8, 300),   # by units: two per core on four cores
    ("npu-hbm", 4, 64),           # by units: one per core
    ("systolic-4core", 1, 1),     # decode, one unit: by keys, four ranges
])
def test_splitting_over_cores_divides_the_engine_work_never_multiplies_it(preset, kv_heads,
                                                                          q_len):
    """The same attention on 1, 2 and 4 cores does the same engine work: its arithmetic and
    register energy is the same whenever each core uses the same tile (a key split's shares
    add up to the whole)."""
    att = Attention(name="a", batch=1, heads=8 * kv_heads, kv_heads=kv_heads, q_len=q_len,
                    kv_len=1024, qk_dim=128, v_dim=128, causal=False)
    engine = ("mac_multiplier", "mac_adder", "pe_registers")
    seen = {}
    for cores in (1, 2, 4):
        r = simulate_op(load_arch(preset, [f"cores={cores}"]), att, memory="ideal")
        tile = (r.mapping["tile_rows"], r.mapping["tile_keys"])
        seen.setdefault(tile, []).append(
            (cores, [r.energy_breakdown_pj[k] for k in engine], r.macs))
    compared = [runs for runs in seen.values() if len(runs) > 1]
    assert compared  # at least two core counts chose the same tile
    for runs in compared:
        (_, first, _), *rest = runs
        for _, energies, _ in rest:
            assert energies == pytest.approx(first, rel=1e-9)


def test_core_splits_reject_bad_input():
    with pytest.raises(ValueError, match=r"^cores: must be a positive integer"):
        core_splits(Gemm(name="g", M=8, N=8, K=8), 0)
    with pytest.raises(TypeError, match=r"^op: expected a models.ops.Gemm or Attention"):
        core_splits("gemm", 2)  # type: ignore[arg-type]


# -- the simulator's choices are the brute-force best over the candidate sets ---------------


def _gemms(seed: int, n: int) -> list[Gemm]:
    rng = random.Random(seed)
    fmts = ["int8", "int4", "fp16"]
    return [Gemm(name="g", M=rng.choice([1, 7, 64, 300, 2048]), N=rng.randint(1, 4096),
                 K=rng.randint(1, 4096), a_fmt=rng.choice(fmts), w_fmt=rng.choice(fmts),
                 o_fmt="fp32") for _ in range(n)]


def _attentions(seed: int, n: int) -> list[Attention]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        kv_heads = rng.choice([1, 2, 8])
        kv_len = rng.choice([5, 300, 2049])
        out.append(Attention(
            name="a", batch=rng.choice([1, 3]), heads=kv_heads * rng.choice([1, 8]),
            kv_heads=kv_heads, q_len=rng.choice([1, kv_len]), kv_len=kv_len,
            qk_dim=rng.choice([64, 128]), v_dim=rng.choice([64, 128]),
            causal=rng.random() < 0.7, kv_fmt=rng.choice(["fp16", "int4"]),
            window=rng.choice([0, 256])))
    return out


@pytest.mark.parametrize("preset", PRESETS)
def test_the_gemm_core_split_is_the_brute_force_best(preset):
    arch = load_arch(preset)
    for g in _gemms(sum(map(ord, preset)), 4):
        for objective in OBJECTIVES:
            cost = gemm_split_cost(arch, g, "real", objective)
            scored = [cost(s) for s in core_splits(g, arch.cores)]
            best = scored[brute_force([(s.cycles, s.energy_pj, 0.0) for s in scored],
                                      objective)].detail
            r = simulate_op(arch, g, objective=objective)
            assert dict(r.mapping) == best.mapping
            assert r.cycles == math.ceil(best.cycles - 1e-9)
            assert r.energy_pj == pytest.approx(sum(best.energy.values()), rel=1e-12)


@pytest.mark.parametrize("preset", PRESETS)
def test_the_attention_tile_and_split_are_the_brute_force_best(preset):
    arch = load_arch(preset)
    core = core_arch(arch)
    for att in _attentions(sum(map(ord, preset)), 6):
        for objective in OBJECTIVES:
            (split,) = core_splits(att, arch.cores)
            cost = attention_tile_cost(core, att, split.units_per_core, split.kv_split)
            tiles = attention_tiles(att, compute_view(core), split.kv_split)
            scored = [cost(t) for t in tiles]
            best = tiles[brute_force([(s.cycles, s.energy_pj, 0.0) for s in scored],
                                     objective)]
            r = simulate_op(arch, att, objective=objective)
            assert (r.mapping["tile_rows"], r.mapping["tile_keys"]) == (best.rows, best.keys)
            assert (r.mapping["core_split"], r.mapping["kv_split"]) == (split.dim,
                                                                       split.kv_split)
            inst = attention_split_cost(arch, att, "real", objective)(split).detail
            assert r.cycles == math.ceil(inst.cycles - 1e-9)
            assert dict(r.mapping) == inst.mapping


def test_split_floors_that_meet_the_timeline_leave_tied_splits_uncosted():
    """A compute-bound GEMM over four cores: every split's floor is its timeline (the first
    loads, the engine's busy cycles and the last write-back: ``sim.timeline.timeline_floor``),
    so once the first split is costed the others, which at best tie, are not; the pick is the
    exhaustive one. (With floors of busy cycles and link time alone all four were costed:
    Llama-2-70B's w8a8 prefill projections on ``systolic-4core``.)"""
    from sim.system import _gemm_instance, _split_costs

    arch = load_arch("systolic-4core")
    g = Gemm(name="g", M=2048, N=7168, K=8192, a_fmt="int8", w_fmt="int8", o_fmt="int32",
             a_scale_bits=16, w_scale_bits=16)
    cost, floor = _split_costs(arch, g, "real", "latency")
    costed = []

    def counted(split):
        costed.append(split)
        return cost(split)

    splits = core_splits(g, arch.cores)
    chosen = pick(splits, counted, "latency", floor)
    assert len(splits) == 4 and len(costed) == 1
    exhaustive = pick(splits, gemm_split_cost(arch, g, "real", "latency"), "latency")
    assert chosen[0] == exhaustive[0] and chosen[1].detail == exhaustive[1].detail
    assert _gemm_instance(arch, g, "real", "latency") == exhaustive[1].detail


@pytest.mark.parametrize("preset", ["systolic", "systolic-4core", "npu-hbm", "cube"])
def test_gemm_split_search_with_floors_is_the_exhaustive_one(preset):
    """The GEMM's core splits picked with floors (each split's cycles bounded below without
    running its mapping's timeline) are the splits every one of which is costed picks, with
    the same figures, on random shapes of every objective (wide and narrow arrays rank the
    orientations differently)."""
    from sim.system import _gemm_instance

    rng = random.Random(5)
    arch = load_arch(preset)
    for _ in range(4):
        g = Gemm(name="g", M=rng.choice([1, 7, 300, 2048]), N=rng.randint(16, 3000),
                 K=rng.randint(16, 3000), a_fmt="int8", w_fmt="int8", o_fmt="int32")
        for objective in OBJECTIVES:
            cost = gemm_split_cost(arch, g, "real", objective)
            exhaustive = pick(core_splits(g, arch.cores), cost, objective)[1].detail
            assert _gemm_instance(arch, g, "real", objective) == exhaustive, (g, objective)
