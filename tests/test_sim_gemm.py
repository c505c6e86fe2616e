"""sim.gemm / sim.memory / sim.energy on the systolic array: exactness, invariants, errors.

(Every other engine kind, and a kind defined only by the spec contract: tests/test_sim_kinds.py.)
"""

from __future__ import annotations

import itertools
import math
import tomllib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hw.spec import SpecError, Unrolling, load_arch
from mapping import Candidates, Costs, Mapping, MappingError, candidates, fold_grid, search
from models.formats import get_format
from models.ops import Gemm
from sim.energy import (
    ENERGY_COMPONENTS,
    load_table,
    unit_energies,
)
from sim.engines.systolic import gemm_compute_cycles
from sim.gemm import FormatError, compute_view, gemm_cost, simulate_gemm, tiled_compute_cycles
from sim.memory import memory_traffic
from sim.system import simulate_op

TABLE = Path(__file__).resolve().parents[1] / "sim" / "data" / "energy" / "horowitz45.toml"
RAW = tomllib.loads(TABLE.read_text())


def arch_with(*overrides: str):
    return load_arch("systolic", list(overrides))


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def tile_sizes(dim: int, tile: int) -> list[int]:
    return [min(tile, dim - i * tile) for i in range(ceil_div(dim, tile))]


def dram_cost(gemm, arch, cands: Candidates) -> Costs:
    """Cost function for mapping.search: DRAM bytes only (to test reuse properties)."""
    spec = arch.engine
    tm, tn, tk = cands.tiles.T
    compute = tiled_compute_cycles(spec, gemm.M, gemm.N, gemm.K, tm, tn, tk)
    t = memory_traffic(arch, gemm, cands, compute, memory="real")
    return Costs(cycles=t.dram_bytes, energy_pj=t.dram_bytes)


def min_dram_bytes(gemm: Gemm, arch) -> float:
    m = search(gemm, arch, dram_cost, "latency")
    one = Candidates.from_mapping(m, gemm.M, gemm.N, gemm.K)
    return float(dram_cost(gemm, arch, one).cycles[0])


# -- the engine's fold model ---------------------------------------------------------------------

dim = st.integers(min_value=1, max_value=700)
edge = st.integers(min_value=1, max_value=40)


def test_the_views_of_architectures_that_differ_in_their_link_are_one_object():
    """The cost model's memo tables are keyed on an architecture's compute view: the views
    of a sweep's links and clocks are one object, found by identity (an equal copy would be
    compared field by field on every lookup), and the view of a view is itself."""
    links = [arch_with(f"memory.dram.bandwidth_gb_per_s={bw}", f"memory.dram.latency_ns={lat}",
                       f"clock_mhz={mhz}")
             for bw, lat, mhz in ((16.0, 50.0, 1000.0), (64.0, 100.0, 800.0), (1.0, 0.0, 1000.0))]
    views = [compute_view(a) for a in links]
    assert len({id(v) for v in views}) == 1
    assert compute_view(views[0]) is views[0]
    assert compute_view(arch_with("engine.rows=16")) is not views[0]


@settings(max_examples=80, deadline=None)
@given(M=dim, N=dim, K=dim, rows=edge, cols=edge,
       dataflow=st.sampled_from(["os", "ws", "ws-double-buffered", "os-double-buffered"]),
       data=st.data())
def test_tiled_compute_cycles_sum_fold_cycles_over_every_tile(M, N, K, rows, cols, dataflow,
                                                              data):
    double = dataflow.endswith("double-buffered")
    which = "weight" if dataflow.startswith("ws") else "output"
    spec = arch_with(f"engine.rows={rows}", f"engine.cols={cols}",
                     f"engine.dataflow={dataflow[:2]}",
                     f"engine.{which}_double_buffer={str(double).lower()}").engine
    tm = data.draw(st.integers(1, M))
    tn = data.draw(st.integers(1, N))
    tk = data.draw(st.integers(1, K))
    expected_cycles = expected_folds = 0
    last_stream = 0
    for ms, ns, ks in itertools.product(tile_sizes(M, tm), tile_sizes(N, tn), tile_sizes(K, tk)):
        if spec.dataflow == "os":
            folds = ceil_div(ms, rows) * ceil_div(ns, cols)
            last_stream = ks
        else:
            folds = ceil_div(ks, rows) * ceil_div(ns, cols)
            last_stream = ms
        # folds back to back: each starts fold_interval after the one before, the last drains
        expected_cycles += folds * spec.fold_interval(last_stream)
        expected_folds += folds
    expected_cycles += spec.fold_cycles(last_stream) - spec.fold_interval(last_stream)
    assert int(tiled_compute_cycles(spec, M, N, K, tm, tn, tk)) == expected_cycles
    # the candidates' float64 arrays agree with the exact int
    many = tiled_compute_cycles(spec, M, N, K, np.array([tm, M]), np.array([tn, N]),
                                np.array([tk, K]))
    assert many.tolist() == [expected_cycles, gemm_compute_cycles(spec, M, N, K)]
    assert int(fold_grid(spec.unrolling(), M, N, K, tm, tn, tk).total) == expected_folds
    # untiled: exactly the RTL's fold-after-fold count
    assert int(tiled_compute_cycles(spec, M, N, K, M, N, K)) == gemm_compute_cycles(
        spec, M, N, K)


# -- ideal memory: the fold model, exactly --------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(M=st.integers(1, 5000), N=st.integers(1, 5000), K=st.integers(1, 5000),
       rows=st.integers(1, 64), cols=st.integers(1, 64), count=st.integers(1, 50),
       dataflow=st.sampled_from(["os", "ws"]))
def test_ideal_compute_cycles_equal_the_rtl_fold_model(M, N, K, rows, cols, count, dataflow):
    arch = arch_with(f"engine.rows={rows}", f"engine.cols={cols}", f"engine.dataflow={dataflow}")
    r = simulate_gemm(arch, Gemm(name="g", M=M, N=N, K=K, count=count), memory="ideal")
    expected = gemm_compute_cycles(arch.engine, M, N, K) * count
    assert r.compute_cycles == expected
    assert r.cycles == expected
    assert r.stall_cycles == 0
    assert r.dram_bytes == 0
    assert r.energy_breakdown_pj["dram"] == 0
    assert r.mapping.folds == (ceil_div(M, rows) * ceil_div(N, cols) if dataflow == "os"
                               else ceil_div(K, rows) * ceil_div(N, cols))


def test_acceptance_shape_ideal_on_a_32x32_os_array():
    arch = arch_with("engine.rows=32", "engine.cols=32", "engine.dataflow=os")
    r = simulate_gemm(arch, Gemm(name="q_proj", M=512, N=4096, K=4096), memory="ideal")
    # folds and fold length written out independently of hw.spec
    folds = ceil_div(512, 32) * ceil_div(4096, 32)
    fold = 4096 + 2 * 32 + 32 - 2
    assert r.cycles == folds * fold
    assert r.utilization == pytest.approx(512 * 4096 * 4096 / (folds * fold * 32 * 32))


# -- real memory: invariants ---------------------------------------------------------------------

arch_params = st.fixed_dictionaries({
    "engine.rows": st.sampled_from([4, 8, 16, 32]),
    "engine.cols": st.sampled_from([4, 8, 16, 32]),
    "engine.dataflow": st.sampled_from(["os", "ws"]),
    "a_buffer.capacity_bytes": st.sampled_from([8192, 65536, 262144]),
    "w_buffer.capacity_bytes": st.sampled_from([8192, 65536, 262144]),
    "o_buffer.capacity_bytes": st.sampled_from([16384, 65536, 262144]),
    "a_buffer.width_bits": st.sampled_from([64, 256, 1024]),
    "o_buffer.ports": st.sampled_from([1, 2]),
    "a_buffer.double_buffered": st.booleans(),
    "w_buffer.double_buffered": st.booleans(),
    "o_buffer.double_buffered": st.booleans(),
    "dram.bandwidth_gb_per_s": st.sampled_from([1.0, 12.8, 100.0, 3000.0]),
    "dram.latency_ns": st.sampled_from([0.0, 100.0, 1000.0]),
})


def build(params: dict) -> object:
    return arch_with(*(f"{k}={str(v).lower() if isinstance(v, bool) else v}"
                       for k, v in params.items()))


@settings(max_examples=80, deadline=None)
@given(params=arch_params, M=st.integers(1, 3000), N=st.integers(1, 3000),
       K=st.integers(1, 3000), count=st.integers(1, 8),
       objective=st.sampled_from(["latency", "energy", "edp"]))
def test_real_memory_invariants(params, M, N, K, count, objective):
    arch = build(params)
    spec = arch.engine
    r = simulate_gemm(arch, Gemm(name="g", M=M, N=N, K=K, count=count), objective=objective)
    assert r.cycles == r.compute_cycles + r.stall_cycles
    assert r.stall_cycles == r.sram_stall_cycles + r.dram_stall_cycles
    assert r.sram_stall_cycles >= 0 and r.dram_stall_cycles >= 0
    assert r.cycles >= ceil_div(M * N * K * count, spec.rows * spec.cols)
    assert r.compute_cycles >= gemm_compute_cycles(spec, M, N, K) * count
    m = r.mapping
    assert m.folds == int(fold_grid(spec.unrolling(), M, N, K, m.tile_m, m.tile_n,
                                    m.tile_k).total)
    assert r.compute_cycles == count * int(
        tiled_compute_cycles(spec, M, N, K, m.tile_m, m.tile_n, m.tile_k))
    # time never beats moving the DRAM bytes over the link
    assert r.seconds >= r.dram_bytes / (arch.dram.bandwidth_gb_per_s * 1e9) * (1 - 1e-9)
    assert 0 < r.utilization <= 1
    assert r.energy_pj == sum(r.energy_breakdown_pj.values())
    assert set(r.energy_breakdown_pj) == set(ENERGY_COMPONENTS)
    assert all(v >= 0 for v in r.energy_breakdown_pj.values())
    assert r.seconds == pytest.approx(r.cycles / (arch.clock_mhz * 1e6))
    # compulsory traffic: every operand crosses the link at least once
    a_bits, w_bits, o_bits = (get_format(f).bits for f in ("int8", "int8", "int32"))
    compulsory = (M * K * a_bits + K * N * w_bits + M * N * o_bits) / 8 * count
    assert r.dram_bytes >= compulsory * (1 - 1e-12)


@settings(max_examples=40, deadline=None)
@given(M=st.integers(1, 3000), N=st.integers(1, 3000), K=st.integers(1, 3000),
       dataflow=st.sampled_from(["os", "ws"]))
def test_each_objective_wins_its_own_metric(M, N, K, dataflow):
    """As the candidates are ranked (the closed form of the DRAM stalls; the chosen mapping's
    reported cycles come from its timeline, which refines them)."""
    arch = arch_with(f"engine.dataflow={dataflow}")
    g = Gemm(name="g", M=M, N=N, K=K)
    picks = [simulate_gemm(arch, g, objective=o) for o in ("latency", "energy", "edp")]
    for r in picks:
        assert r.cycles >= r.compute_cycles
    lat, en, edp = (gemm_cost(g, arch, Candidates.from_mapping(r.mapping, M, N, K))
                    for r in picks)
    assert lat.cycles[0] <= min(en.cycles[0], edp.cycles[0])
    assert en.energy_pj[0] <= min(lat.energy_pj[0], edp.energy_pj[0]) * (1 + 1e-12)
    assert edp.cycles[0] * edp.energy_pj[0] <= min(
        lat.cycles[0] * lat.energy_pj[0], en.cycles[0] * en.energy_pj[0]) * (1 + 1e-12)


def walk_loop_nest(M, N, K, tm, tn, tk, order, a_bits, w_bits, o_bits, acc_bits):
    """Reference: step through every tile iteration, loading a tile when it changes."""
    trips = {"m": ceil_div(M, tm), "n": ceil_div(N, tn), "k": ceil_div(K, tk)}
    size = {"m": lambda i: min(tm, M - i * tm), "n": lambda i: min(tn, N - i * tn),
            "k": lambda i: min(tk, K - i * tk)}
    a_cur = w_cur = o_cur = None
    done: Counter = Counter()
    a_b = w_b = o_wr = o_rd = 0.0

    def write_back(tile):
        elems = size["m"](tile[0]) * size["n"](tile[1])
        return elems * (o_bits if done[tile] == trips["k"] else acc_bits) / 8

    for idx in itertools.product(*(range(trips[d]) for d in order)):
        i = dict(zip(order, idx, strict=True))
        if (i["m"], i["k"]) != a_cur:
            a_cur = (i["m"], i["k"])
            a_b += size["m"](i["m"]) * size["k"](i["k"]) * a_bits / 8
        if (i["k"], i["n"]) != w_cur:
            w_cur = (i["k"], i["n"])
            w_b += size["k"](i["k"]) * size["n"](i["n"]) * w_bits / 8
        if (i["m"], i["n"]) != o_cur:
            if o_cur is not None:
                o_wr += write_back(o_cur)
            o_cur = (i["m"], i["n"])
            if done[o_cur]:
                o_rd += size["m"](i["m"]) * size["n"](i["n"]) * acc_bits / 8
        done[o_cur] += 1
    o_wr += write_back(o_cur)
    return a_b, w_b, o_wr, o_rd


@settings(max_examples=60, deadline=None)
@given(M=st.integers(1, 200), N=st.integers(1, 200), K=st.integers(1, 200),
       w_fmt=st.sampled_from(["int8", "int4", "int2"]), data=st.data())
def test_dram_traffic_matches_a_step_by_step_walk_of_the_loop_nest(M, N, K, w_fmt, data):
    arch = arch_with("engine.rows=4", "engine.cols=4")
    gemm = Gemm(name="g", M=M, N=N, K=K, w_fmt=w_fmt)
    tm = data.draw(st.integers(max(1, M // 6), M))
    tn = data.draw(st.integers(max(1, N // 6), N))
    tk = data.draw(st.integers(max(1, K // 6), K))
    order = data.draw(st.permutations(["m", "n", "k"]))
    mapping = Mapping(kind="systolic", tile_m=tm, tile_n=tn, tile_k=tk, tiles_m=1, tiles_n=1,
                      tiles_k=1, loop_order=tuple(order), unrolling=Unrolling(m=4, n=4, k=None),
                      folds=1)  # only tiles and order are read
    cands = Candidates.from_mapping(mapping, M, N, K)
    compute = tiled_compute_cycles(arch.engine, M, N, K, tm, tn, tk)
    t = memory_traffic(arch, gemm, cands, compute, memory="real")
    ref = walk_loop_nest(M, N, K, tm, tn, tk, order, 8, get_format(w_fmt).bits, 32, 32)
    got = (t.dram_a_read_bytes[0], t.dram_w_read_bytes[0], t.dram_o_write_bytes[0],
           t.dram_o_read_bytes[0])
    assert got == pytest.approx(ref, rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(M=st.integers(1, 4000), N=st.integers(1, 4000), K=st.integers(1, 4000),
       dataflow=st.sampled_from(["os", "ws"]))
def test_halving_weight_bits_never_increases_dram_bytes(M, N, K, dataflow):
    arch = arch_with(f"engine.dataflow={dataflow}")
    w8 = Gemm(name="g", M=M, N=N, K=K, w_fmt="int8")
    w4 = Gemm(name="g", M=M, N=N, K=K, w_fmt="int4")
    # for every fixed mapping ...
    cands = candidates(w8, arch)
    compute = tiled_compute_cycles(arch.engine, M, N, K, *cands.tiles.T)
    b8 = memory_traffic(arch, w8, cands, compute, memory="real").dram_bytes
    b4 = memory_traffic(arch, w4, cands, compute, memory="real").dram_bytes
    assert np.all(b4 <= b8)
    # ... and for the best mapping (int4 weights admit every int8 tile and more)
    assert min_dram_bytes(w4, arch) <= min_dram_bytes(w8, arch)


@settings(max_examples=40, deadline=None)
@given(M=st.integers(1, 4000), N=st.integers(1, 4000), K=st.integers(1, 4000),
       which=st.sampled_from(["a_buffer", "w_buffer", "o_buffer"]),
       scale=st.sampled_from([2, 8]), dataflow=st.sampled_from(["os", "ws"]))
def test_bigger_buffers_never_increase_dram_bytes_of_the_best_mapping(M, N, K, which, scale,
                                                                     dataflow):
    small = arch_with(f"engine.dataflow={dataflow}")
    cap = getattr(small, which).capacity_bytes * scale
    big = arch_with(f"engine.dataflow={dataflow}", f"{which}.capacity_bytes={cap}")
    gemm = Gemm(name="g", M=M, N=N, K=K)
    assert min_dram_bytes(gemm, big) <= min_dram_bytes(gemm, small)


@settings(max_examples=30, deadline=None)
@given(M=st.integers(1, 3000), N=st.integers(1, 3000), K=st.integers(1, 3000),
       dataflow=st.sampled_from(["os", "ws"]))
def test_double_buffering_only_hides_transfers(M, N, K, dataflow):
    on = arch_with(f"engine.dataflow={dataflow}")
    off = arch_with(f"engine.dataflow={dataflow}", "a_buffer.double_buffered=false",
                    "w_buffer.double_buffered=false", "o_buffer.double_buffered=false")
    gemm = Gemm(name="g", M=M, N=N, K=K)
    cands = candidates(gemm, on)  # same tiles under both
    compute = tiled_compute_cycles(on.engine, M, N, K, *cands.tiles.T)
    t_on = memory_traffic(on, gemm, cands, compute, memory="real")
    t_off = memory_traffic(off, gemm, cands, compute, memory="real")
    assert np.all(t_on.dram_stall_cycles <= t_off.dram_stall_cycles + 1e-6)
    # without double buffering nothing overlaps: every byte is exposed
    assert np.all(t_off.dram_stall_cycles >= t_off.dram_bytes / off.dram_bytes_per_cycle - 1e-6)


@pytest.mark.parametrize("exact", [False, True])
def test_posted_write_backs_fill_the_read_latency(exact: bool) -> None:
    """Writes are posted: at a boundary that writes an output tile back and reads the next A
    tile, the reads wait for the latency while the write-back goes out, so a latency up to the
    write-back's transfer time costs only the first load; beyond it each boundary waits for the
    rest, but the first, whose reads were requested right after the first tile's. The float64
    path (candidates) and the exact one (one mapping) agree."""
    M, N, K, tile = 24, 16, 8, (4, 16, 8)  # six M tiles; N and K whole
    gemm = Gemm(name="g", M=M, N=N, K=K, a_fmt="int8", w_fmt="int8", o_fmt="int32")

    def stall(lat: float):
        arch = arch_with("engine.rows=4", "engine.cols=4", "dram.bandwidth_gb_per_s=2.0",
                         f"dram.latency_ns={lat}", "clock_mhz=1000")
        cands = Candidates.single(M, N, K, tile, "mnk")
        which = cands.mapping(0, arch) if exact else cands
        compute = tiled_compute_cycles(arch.engine, M, N, K, *tile)
        # the closed form (the candidates' ranking), evaluated exactly for the mapping
        t = memory_traffic(arch, gemm, which, compute, memory="real", timeline=False)
        return float(np.asarray(t.dram_stall_cycles).reshape(-1)[0]), arch, compute

    base, arch, compute = stall(0.0)
    bw = arch.dram_bytes_per_cycle
    written = tile[0] * N * get_format("int32").bits // 8 / bw  # one output tile, posted
    read = tile[0] * K / bw  # the next A tile
    boundaries = M // tile[0] - 1
    assert read + written > compute / (M // tile[0])  # the link, not compute, limits
    for lat in (written / 2, written):
        assert stall(lat)[0] == pytest.approx(base + lat)  # the first load's latency only
    # Past it, a boundary's transfer takes read + lat; with two tile loads in flight (double
    # buffering) each boundary exposes half of what that leaves beyond a tile's compute, or
    # the bandwidth's share if that is more; the first boundary's reads followed the first
    # tile's, so it pays no latency.
    busy = compute / (M // tile[0])
    for lat in (2 * written, 4 * written):
        per = max((read + lat - busy) / 2, read + written - busy)
        assert stall(lat)[0] == pytest.approx(
            base + lat + (boundaries - 1) * (per - (read + written - busy)))


@pytest.mark.parametrize("exact", [False, True])
def test_two_loads_in_flight_share_the_latency(exact: bool) -> None:
    """Double-buffered, the next tile's load is requested as the tile before last ends: the
    loads of two boundaries are in flight together, so in steady state a tile takes
    ``max(compute, (compute + latency + transfer) / 2, transfer)``: with a latency far above
    the compute, the stall per boundary is half of ``latency + transfer - compute``."""
    M, N, K, tile = 64, 4, 8, (4, 4, 8)  # sixteen M tiles, an A tile each
    gemm = Gemm(name="g", M=M, N=N, K=K, a_fmt="int8", w_fmt="int8", o_fmt="int32")
    lat = 1000.0
    arch = arch_with("engine.rows=4", "engine.cols=4", "dram.bandwidth_gb_per_s=1.0",
                     f"dram.latency_ns={lat}", "clock_mhz=1000")
    cands = Candidates.single(M, N, K, tile, "mnk")
    compute = tiled_compute_cycles(arch.engine, M, N, K, *tile)
    t = memory_traffic(arch, gemm, cands.mapping(0, arch) if exact else cands, compute,
                       memory="real", timeline=False)
    tiles = M // tile[0]
    busy = compute / tiles
    read = tile[0] * K  # bytes of an A tile at 1 byte per cycle
    out = tile[0] * N * 4  # an output tile written back (posted: within the latency)
    assert out < lat
    first = lat + read + K * N  # the first A and the W tile
    per = (read + lat - busy) / 2  # every boundary but the first
    second = max(0, read + out - busy)  # the first boundary: no latency of its own
    expect = first + second + (tiles - 2) * per + out
    assert float(np.asarray(t.dram_stall_cycles).reshape(-1)[0]) == pytest.approx(expect)


def test_a_narrow_sram_stalls_every_beat():
    # a 128-bit A buffer needs two accesses for one 32-lane int8 beat (256 bits)
    arch = arch_with("a_buffer.width_bits=128", "dram.bandwidth_gb_per_s=100000",
                     "dram.latency_ns=0")
    M, N, K = 256, 256, 512
    r = simulate_gemm(arch, Gemm(name="g", M=M, N=N, K=K))
    beats = ceil_div(M, 32) * ceil_div(N, 32) * K  # OS: every fold streams its K chunk
    assert r.sram_stall_cycles >= beats


@pytest.mark.parametrize("k", [2, 3, 5, 7, 48, 63])
def test_lines_one_beat_wide_never_stall(k):
    """A cube whose A and W lines are one beat each (``m x k`` and ``k x n`` elements) takes
    them without a stall whatever ``k``: the engine's cycles per streamed element are exactly
    ``1/k`` (:func:`sim.memory.beat_cycles`; a slope over 4096 elements gave 1365/4096 for
    ``k = 3``, which made the 24-bit A beat of a 3x4x3 cube 73 bits wide and stalled it)."""
    from fractions import Fraction

    from sim.memory import beat_cycles

    arch = load_arch("cube", [f"engine.k={k}", "engine.m=3", "engine.n=4",
                              f"a_buffer.width_bits={3 * k * 8}",
                              f"w_buffer.width_bits={4 * k * 8}"])
    assert beat_cycles(arch.engine) == Fraction(1, k)
    r = simulate_gemm(arch, Gemm(name="g", M=30, N=40, K=10 * k + 1))
    assert r.sram_stall_cycles == 0


def test_double_buffered_weights_overlap_their_sram_stalls():
    """WS: a narrow weight buffer stalls every weight line of the preload, a narrow activation
    buffer every streamed beat; without double buffering the preload's stalls add to the
    stream's, with it they overlap (the larger of the two)."""
    narrow_w, narrow_a = "w_buffer.width_bits=128", "a_buffer.width_bits=128"

    def stalls(*sets: str, double: bool = False) -> np.ndarray:
        arch = arch_with("engine.dataflow=ws", *sets,
                         f"engine.weight_double_buffer={str(double).lower()}")
        gemm = Gemm(name="g", M=300, N=200, K=500)
        cands = candidates(gemm, arch_with("engine.dataflow=ws"))  # same tiles for all
        compute = tiled_compute_cycles(arch.engine, 300, 200, 500, *cands.tiles.T)
        return memory_traffic(arch, gemm, cands, compute, memory="real").sram_stall_cycles

    w_only, a_only = stalls(narrow_w), stalls(narrow_a)
    assert np.all(w_only > 0) and np.all(a_only > 0)
    assert np.array_equal(stalls(narrow_w, double=True), w_only)  # nothing to overlap with
    assert np.array_equal(stalls(narrow_w, narrow_a), w_only + a_only)
    assert np.array_equal(stalls(narrow_w, narrow_a, double=True), np.maximum(w_only, a_only))


def test_double_buffered_outputs_overlap_their_sram_stalls():
    """OS: a narrow output buffer stalls every result line of the drain, a narrow activation
    buffer every streamed beat; without output registers the drain's stalls add to the
    stream's, with them the drain overlaps the next fold's stream (the larger of the two)."""
    narrow_o, narrow_a = "o_buffer.width_bits=128", "a_buffer.width_bits=128"

    def stalls(*sets: str, double: bool = False) -> np.ndarray:
        arch = arch_with("engine.dataflow=os", *sets,
                         f"engine.output_double_buffer={str(double).lower()}")
        gemm = Gemm(name="g", M=300, N=200, K=500)
        cands = candidates(gemm, arch_with("engine.dataflow=os"))  # same tiles for all
        compute = tiled_compute_cycles(arch.engine, 300, 200, 500, *cands.tiles.T)
        return memory_traffic(arch, gemm, cands, compute, memory="real").sram_stall_cycles

    o_only, a_only = stalls(narrow_o), stalls(narrow_a)
    assert np.all(o_only > 0) and np.all(a_only > 0)
    assert np.array_equal(stalls(narrow_o, double=True), o_only)  # nothing to overlap with
    assert np.array_equal(stalls(narrow_o, narrow_a), o_only + a_only)
    assert np.array_equal(stalls(narrow_o, narrow_a, double=True), np.maximum(o_only, a_only))



@pytest.mark.parametrize(("dataflow", "option"), [("os", "output_double_buffer"),
                                                  ("ws", "weight_double_buffer")])
def test_double_buffered_stationary_operands_cost_one_register_copy_per_fold(dataflow, option):
    """With outputs (OS) or weights (WS) moved while another fold streams, every stationary
    element is written once more per fold (accumulator to output register, shadow to working
    weight register): untiled (one stream chunk), that is each output's or weight's bits once."""
    gemm = Gemm(name="g", M=70, N=90, K=110)
    regs = {}
    for on in (False, True):
        arch = arch_with(f"engine.dataflow={dataflow}", f"engine.{option}={str(on).lower()}")
        regs[on] = simulate_gemm(arch, gemm, memory="ideal").actions["pe_registers"]
    spec = arch.engine
    still = gemm.M * gemm.N * spec.acc_bits if dataflow == "os" else gemm.K * gemm.N * spec.w_bits
    assert regs[True] - regs[False] == still

def test_memory_bound_labels():
    arch = arch_with()
    decode = simulate_gemm(arch, Gemm(name="g", M=1, N=4096, K=4096))
    assert decode.bound == "memory"
    fast = arch_with("dram.bandwidth_gb_per_s=10000")
    prefill = simulate_gemm(fast, Gemm(name="g", M=2048, N=2048, K=2048))
    assert prefill.bound == "compute"


# -- energy and area -----------------------------------------------------------------------------


def entry(section: str, key: str) -> float:
    return RAW[section][key]["value"]


def test_energy_is_action_counts_times_table_entries_at_the_tables_node():
    arch = arch_with()  # 8x8 -> 32 at 45 nm, the table's node
    assert arch.tech_nm == RAW["node_nm"]
    r = simulate_gemm(arch, Gemm(name="g", M=300, N=200, K=100, count=3))
    e, n = r.energy_breakdown_pj, r.actions
    assert n["multiply"] == n["accumulate"] == r.macs
    assert e["mac_multiplier"] == pytest.approx(r.macs * entry("energy", "int_mult_8b"))
    assert e["mac_adder"] == pytest.approx(r.macs * entry("energy", "int_add_32b"))
    assert e["dram"] == pytest.approx(r.dram_bytes * entry("energy", "dram_64b") / 8)
    assert n["dram"] == pytest.approx(r.dram_bytes)
    reg = entry("energy", "register_bit") * (45 / RAW["energy"]["register_bit"]["node_nm"])
    assert e["pe_registers"] == pytest.approx(n["pe_registers"] * reg)


@pytest.mark.parametrize("key", ["sram_read_64b_8kb", "sram_read_64b_32kb", "sram_read_64b_1mb"])
def test_sram_energy_hits_the_table_points(key):
    cap = RAW["energy"][key]["capacity_bytes"]
    arch = arch_with(f"a_buffer.capacity_bytes={cap}")
    assert unit_energies(arch).a_buffer_byte_pj == pytest.approx(entry("energy", key) / 8)


@settings(max_examples=40, deadline=None)
@given(c1=st.integers(1024, 1 << 26), c2=st.integers(1024, 1 << 26))
def test_sram_energy_grows_with_capacity(c1, c2):
    lo, hi = sorted((c1, c2))
    e_lo = unit_energies(arch_with(f"a_buffer.capacity_bytes={lo}")).a_buffer_byte_pj
    e_hi = unit_energies(arch_with(f"a_buffer.capacity_bytes={hi}")).a_buffer_byte_pj
    assert e_lo <= e_hi


def test_multiplier_energy_passes_through_both_table_points_and_grows_with_width():
    def per_action(*overrides: str) -> dict[str, float]:
        return unit_energies(arch_with(*overrides)).per_action_pj()

    u8 = per_action("engine.a_bits=8", "engine.w_bits=8")
    assert u8["multiply"] == pytest.approx(entry("energy", "int_mult_8b"))
    widths = [per_action(f"engine.a_bits={b}", f"engine.w_bits={b}")["multiply"]
              for b in (2, 4, 8, 16)]
    assert widths == sorted(widths)
    adders = [per_action(f"engine.acc_bits={b}")["accumulate"] for b in (8, 16, 32, 48)]
    assert adders[0] == pytest.approx(entry("energy", "int_add_8b"))
    assert adders[2] == pytest.approx(entry("energy", "int_add_32b"))
    assert adders == sorted(adders)


def test_technology_scaling_follows_the_tables_rule():
    base = arch_with()
    half = arch_with(f"tech_nm={base.tech_nm / 2}")
    g = Gemm(name="g", M=128, N=128, K=128)
    e0 = simulate_gemm(base, g).energy_breakdown_pj
    e1 = simulate_gemm(half, g).energy_breakdown_pj
    factor = 0.5 ** RAW["scaling"]["energy_exponent"]
    for k in ("mac_multiplier", "mac_adder", "pe_registers", "a_buffer"):
        assert e1[k] == pytest.approx(e0[k] * factor)
    assert e1["dram"] == pytest.approx(e0["dram"])  # off chip: not scaled
    a0 = simulate_gemm(base, g).area_breakdown_um2
    a1 = simulate_gemm(half, g).area_breakdown_um2
    for k in a0:
        assert a1[k] == pytest.approx(a0[k] * 0.5 ** RAW["scaling"]["area_exponent"])


def test_area_components_come_from_the_table():
    arch = arch_with()
    r = simulate_gemm(arch, Gemm(name="g", M=8, N=8, K=8))
    pes = arch.engine.rows * arch.engine.cols
    assert r.area_breakdown_um2["pe_multipliers"] == pytest.approx(pes * entry("area",
                                                                                "int_mult_8b"))
    assert r.area_breakdown_um2["a_buffer"] == pytest.approx(
        arch.a_buffer.capacity_bytes * 8 * entry("area", "sram_bit"))
    assert r.area_um2 == pytest.approx(sum(r.area_breakdown_um2.values()))


def test_every_table_entry_has_value_unit_and_source():
    table = load_table("horowitz45")
    for section in (table.energy, table.area):
        for e in section.values():
            assert e.value > 0 and e.unit.strip() and e.source.strip()


def test_a_malformed_energy_table_is_one_line_naming_the_entry(tmp_path):
    text = TABLE.read_text().replace(
        'source = "Horowitz ISSCC 2014, 45 nm: 8b integer add 0.03 pJ"\n', "", 1)
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    arch = arch_with(f"energy_table={bad}")
    with pytest.raises(SpecError, match=r"^energy table bad: energy\.int_add_8b\.source: "
                                        r"required but missing$"):
        simulate_gemm(arch, Gemm(name="g", M=8, N=8, K=8))
    broken = tmp_path / "broken.toml"
    broken.write_text("node_nm = [")
    with pytest.raises(SpecError, match=r"broken\.toml: malformed TOML"):
        simulate_gemm(arch_with(f"energy_table={broken}"), Gemm(name="g", M=8, N=8, K=8))
    with pytest.raises(SpecError, match=r"^energy_table: unknown table 'nope'; tables: "):
        simulate_gemm(arch_with("energy_table=nope"), Gemm(name="g", M=8, N=8, K=8))


# -- format and argument errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "kw", "pattern"),
    [
        ((), {"a_fmt": "fp16"},
         r"^--a-fmt: fp16 is a floating-point format but systolic_os_32x32_a8w8p32s is an "
         r"integer engine \(a_bits=8\); use an integer format such as int8$"),
        (("engine.a_bits=4",), {"a_fmt": "int8"},
         r"^--a-fmt: int8 needs 8-bit operands but the engine has a_bits=4; use --a-fmt int4 "
         r"or --set engine\.a_bits=8$"),
        ((), {"w_fmt": "uint8"},
         r"^--w-fmt: uint8 needs 9-bit operands but the engine has w_bits=8; "),
        (("engine.signed=false",), {"a_fmt": "uint8", "w_fmt": "int4"},
         r"^--w-fmt: int4 is signed but the engine is unsigned \(engine\.signed=false\); "),
        ((), {"w_fmt": "bf16"}, r"^--w-fmt: bf16 is a floating-point format"),
    ],
)
def test_formats_that_do_not_fit_the_engine_name_the_flag(overrides, kw, pattern):
    with pytest.raises(FormatError, match=pattern):
        simulate_gemm(arch_with(*overrides), Gemm(name="g", M=4, N=4, K=4, **kw))


def test_narrower_formats_fit():
    r = simulate_gemm(arch_with(), Gemm(name="g", M=64, N=64, K=64, a_fmt="int4",
                                        w_fmt="ternary"))
    assert r.cycles > 0


def test_bad_memory_and_objective_values():
    g = Gemm(name="g", M=4, N=4, K=4)
    with pytest.raises(ValueError, match=r"^memory: must be one of ideal, real \(got 'dram'\)$"):
        simulate_gemm(arch_with(), g, memory="dram")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^objective: must be one of latency, energy, edp"):
        simulate_gemm(arch_with(), g, objective="area")  # type: ignore[arg-type]


def test_a_buffer_too_small_is_a_mapping_error_in_real_mode_only():
    arch = arch_with("o_buffer.capacity_bytes=1024")
    g = Gemm(name="g", M=64, N=64, K=64)
    with pytest.raises(MappingError, match=r"^o_buffer: "):
        simulate_gemm(arch, g)
    assert simulate_gemm(arch, g, memory="ideal").stall_cycles == 0


# -- speed ---------------------------------------------------------------------------------------


def test_a_repeated_evaluation_is_the_same_result():
    """(How fast the cached path is: benchmarks/sim_speed.py.)"""
    arch = arch_with()
    g = Gemm(name="q_proj", M=512, N=4096, K=4096, count=32)
    first = simulate_gemm(arch, g)
    assert simulate_gemm(arch, g) == first


def test_results_are_frozen_and_json_ready():
    import json

    r = simulate_gemm(arch_with(), Gemm(name="g", M=64, N=64, K=64))
    with pytest.raises(AttributeError):
        r.cycles = 0  # type: ignore[misc]
    d = json.loads(json.dumps(r.to_dict()))
    for key in ("cycles", "compute_cycles", "stall_cycles", "utilization", "energy_pj",
                "seconds", "breakdown", "mapping", "arch", "engine"):
        assert key in d
    assert math.isclose(sum(d["breakdown"].values()), d["energy_pj"], rel_tol=1e-12)


@pytest.mark.parametrize(("M", "N", "K"), [(4096, 4096, 4096), (2048, 14336, 4096)])
def test_npu_hbm_hides_the_weight_load(M: int, N: int, K: int) -> None:
    """The TPU-like preset double-buffers its weights, as the TPU's matrix unit does: large
    int8 GEMMs then run at 90% of peak or more; loading each weight tile between folds (the
    same preset without the option) leaves them below it."""
    gemm = Gemm(name="g", M=M, N=N, K=K, a_fmt="int8", w_fmt="int8")
    arch = load_arch("npu-hbm")
    assert arch.engine.weight_double_buffer
    hidden = simulate_op(arch, gemm)
    exposed = simulate_op(load_arch("npu-hbm", ["engine.weight_double_buffer=false"]), gemm)
    assert hidden.utilization >= 0.9 > exposed.utilization
    assert hidden.macs == exposed.macs == M * N * K
