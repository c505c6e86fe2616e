"""The system model's timeline of a mapped GEMM (``sim.timeline``) against the tile RTL's
measured cycles (``benchmarks/tile_agreement.py``'s committed results), the cycle-level
reference of the tile's DMA (``sim.verify.tile_ref``) against the same, and the reduced loop
nest against the whole one."""

from __future__ import annotations

import csv
import random
from fractions import Fraction
from pathlib import Path

import pytest

from hw.spec import load_arch, tile_spec
from mapping import Candidates
from models.ops import Gemm
from sim.gemm import mapping_cost, simulate_gemm
from sim.memory import traffic_without_stalls
from sim.timeline import timeline_cycles, timeline_floor
from sim.verify.tile_bench import SMALL_TILES, model_gemm, tile_arch
from sim.verify.tile_ref import reference_cycles

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
#: The committed agreement runs: (preset, overrides, file).
RUNS = [
    ("systolic", [], "tile_agreement_2026-12-06_tile-hold.csv"),
    ("systolic", ["engine.dataflow=ws"], "tile_agreement_dataflow-ws_2026-12-06_tile-hold.csv"),
    ("systolic", ["engine.dataflow=ws", "engine.weight_double_buffer=true"],
     "tile_agreement_dataflow-ws_weight_double_buffer-true_2026-12-06_tile-beats.csv"),
    ("cube", [], "tile_agreement_cube_2026-12-06_tile-hold.csv"),
    # the odd cube (3x4x3: partial K chunks, A line blocks in one bank)
    ("cube", ["engine.m=3", "engine.k=3", "a_buffer.width_bits=72", "w_buffer.width_bits=96",
              "o_buffer.capacity_bytes=768"],
     "tile_agreement_cube_odd_2026-12-06_tile-hold.csv"),
    ("matrix2d", [], "tile_agreement_matrix2d_2026-12-06_tile-hold.csv"),
    ("cube", ["engine.output_double_buffer=true"],
     "tile_agreement_cube_output_double_buffer-true_2026-12-06_tile-hold.csv"),
]


def _points(preset: str, sets: list[str], name: str):
    """(architecture, row, buffer tile) of each committed point; a point the model runs
    transposed (``C^T = W^T A^T``) has M and N of its row swapped: the GEMM the tile ran."""
    with (RESULTS / name).open(newline="") as f:
        for row in csv.DictReader(f):
            arch = load_arch(preset, [*SMALL_TILES[preset], "clock_mhz=1000", *sets,
                                      f"dram.bandwidth_gb_per_s={row['bytes_per_cycle']}",
                                      f"dram.latency_ns={row['latency_cycles']}"])
            tile = tuple(int(x) for x in row["tile"].split("x"))
            if row["transposed"] == "True":
                row = {**row, "M": row["N"], "N": row["M"]}
            yield arch, row, tile


@pytest.mark.parametrize(("preset", "sets", "name"), RUNS,
                         ids=["os", "ws", "ws-wdb", "cube", "cube-odd", "matrix2d", "cube-odb"])
def test_model_is_within_two_percent_of_the_rtl_where_the_link_limits(preset, sets, name):
    """Every committed point where the link limits: the model's cycles for the mapping the
    tile ran within 2% of the RTL's measured ones (and the CSV's model column is the model's
    figure today)."""
    for arch, row, tile in _points(preset, sets, name):
        M, N, K = int(row["M"]), int(row["N"]), int(row["K"])
        arch = tile_arch(arch)
        mp = Candidates.single(M, N, K, tile, row["loop_order"]).mapping(0, arch)
        cycles = mapping_cost(arch, model_gemm(arch, M, N, K), mp)[0]
        assert cycles == int(row["model_cycles"]), (name, row)
        err = (int(row["measured_cycles"]) - cycles) / cycles
        if row["bound"] == "link":
            assert abs(err) <= 0.02, (name, row, cycles)
        else:
            assert abs(err) <= 0.05, (name, row, cycles)


@pytest.mark.parametrize(("preset", "sets", "name"), [RUNS[0], RUNS[3]], ids=["os", "cube"])
def test_reference_follows_the_rtl(preset, sets, name):
    """The cycle-level reference of the tile's DMA takes the RTL's cycles within 2% on the
    committed points (the model is held to the RTL itself, above)."""
    for arch, row, tile in _points(preset, sets, name):
        spec = tile_spec(arch)
        bpc = Fraction(spec.dram_bytes_per_cycle).limit_denominator(1 << 20)
        ref = reference_cycles(spec, int(row["M"]), int(row["N"]), int(row["K"]), tile,
                               row["loop_order"], bpc, spec.dram_latency_cycles)
        measured = int(row["measured_cycles"])
        assert abs(measured - ref) <= 0.02 * ref, (name, row, ref)


def _nest(arch, M, N, K, tile, order):
    gemm = model_gemm(arch, M, N, K)
    mp = Candidates.single(M, N, K, tile, order).mapping(0, arch)
    from sim.gemm import tiled_compute_cycles

    compute = tiled_compute_cycles(arch.engine, M, N, K, *tile)
    traffic, exposure = traffic_without_stalls(arch, gemm, mp, compute, memory="real")
    assert exposure is not None and exposure.nest is not None
    return exposure.nest, compute, traffic


def test_reduced_nest_follows_the_whole_one():
    """Random GEMMs of up to 40 tiles a loop: the reduced loop nest within 2% of every tile's
    timeline."""
    rng = random.Random(7)
    for _ in range(6):
        preset = rng.choice(["systolic", "cube"])
        arch = tile_arch(load_arch(preset, [*SMALL_TILES[preset], "clock_mhz=1000",
                                            f"dram.bandwidth_gb_per_s={rng.uniform(1, 12):.2f}",
                                            f"dram.latency_ns={rng.randint(0, 200)}"]))
        M, N, K = (rng.randint(40, 160) for _ in range(3))
        tile = (rng.choice([4, 8]), rng.choice([4, 8]), rng.choice([8, 13]))
        order = rng.choice(["mnk", "nkm", "kmn"])
        nest, _, _ = _nest(arch, M, N, K, tile, order)
        bw, lat = arch.dram_bytes_per_cycle, arch.dram.latency_ns
        beat = arch.memory[-1].beat_bytes
        whole = timeline_cycles(nest, bw, lat, beat, reduce=False)
        assert timeline_cycles(nest, bw, lat, beat) == pytest.approx(whole, rel=0.02)


def test_reduced_nest_follows_the_whole_one_on_a_port_of_beats():
    """On a port of beats the arbiter may hold a load (the output loader's wait) of a later
    sweep while the engine is at a sampled step: the reduced nest then runs the innermost
    loop that moves whole. ``systolic-4core``'s 3061x1683x455 on 128x32x455 tiles, mnk, a
    4-byte beat at 34 bytes a cycle: the hold fell on a sampled step standing for 12 tiles
    and the reduced nest came 56% over the whole one; and random reduced nests of the tile's
    small tiles with a beat, within 2% of every tile's timeline."""
    arch = load_arch("systolic-4core")
    M, N, K = 3061, 1683, 455
    gemm = Gemm(name="g", M=M, N=N, K=K, a_fmt="int8", w_fmt="int8", o_fmt="int32")
    mp = Candidates.single(M, N, K, (128, 32, 455), "mnk").mapping(0, arch)
    from sim.gemm import tiled_compute_cycles

    compute = tiled_compute_cycles(arch.engine, M, N, K, 128, 32, 455)
    _, exposure = traffic_without_stalls(arch, gemm, mp, compute, memory="real")
    assert exposure is not None and exposure.nest is not None
    nest = exposure.nest
    whole = timeline_cycles(nest, 34, 343, 4, reduce=False)
    assert timeline_cycles(nest, 34, 343, 4) == pytest.approx(whole, rel=0.02)
    rng = random.Random(11)
    for _ in range(4):
        preset = rng.choice(["systolic", "cube"])
        arch = tile_arch(load_arch(preset, [*SMALL_TILES[preset], "clock_mhz=1000",
                                            f"dram.bandwidth_gb_per_s={rng.uniform(1, 60):.2f}",
                                            f"dram.latency_ns={rng.randint(0, 300)}",
                                            f"dram.beat_bytes={rng.choice([4, 8, 16])}"]))
        M, N, K = (rng.randint(60, 90) for _ in range(3))
        tile = (rng.choice([4, 8]), rng.choice([4, 8]), rng.choice([8, 13]))
        nest, _, _ = _nest(arch, M, N, K, tile, rng.choice(["mnk", "nkm", "kmn", "mkn"]))
        bw, lat = arch.dram_bytes_per_cycle, arch.dram.latency_ns
        beat = arch.memory[-1].beat_bytes
        assert beat is not None
        whole = timeline_cycles(nest, bw, lat, beat, reduce=False)
        assert timeline_cycles(nest, bw, lat, beat) == pytest.approx(whole, rel=0.02)


def test_write_back_beats_go_in_the_write_walkers_blocks():
    """On a port of beats the tile writes an output tile a block column of a block row at a
    time (``hw.tile``), so a ragged tile's narrow blocks send their beats at a beat a cycle in
    their turn: the cube with its output double buffer on an ideal 16-byte link, 22x18x15 on
    the model's 8x8x8 tiles (mnk, transposed: the tile runs 18x22x15), took 295 cycles on
    ``amaranth.sim`` (``tests/test_tile.py``), the model 294 with each write-back's rows at
    their average beat (the last tile column's rows are 6 four-byte elements: a 16-byte and
    an 8-byte beat each, the 8-byte ones of each 4-row block after its 16-byte ones)."""
    import dataclasses

    arch = tile_arch(load_arch("cube", [*SMALL_TILES["cube"], "clock_mhz=1000",
                                        "engine.output_double_buffer=true",
                                        "dram.bandwidth_gb_per_s=16.0", "dram.latency_ns=0"]))
    nest, _, _ = _nest(arch, 18, 22, 15, (8, 8, 8), "mnk")
    assert nest.write_block == (4, 4)
    beat = arch.memory[-1].beat_bytes
    assert timeline_cycles(nest, 16.0, 0.0, beat) == 295
    rows = dataclasses.replace(nest, write_block=None)
    assert timeline_cycles(rows, 16.0, 0.0, beat) == 294


def test_a_folds_beats_are_whole_cycles():
    """The engine takes a fold's elements in whole beats, so a tile frees its A and W halves
    a whole number of cycles after its start: the 4x4x2 cube's 25-element folds take 13
    beats. On an ideal 16-byte link, 13x23x25 on the model's 4x4x25 tiles (nmk) took 473
    cycles on ``amaranth.sim`` (``tests/test_tile.py``), the model 471 while it freed the
    halves 12.5 cycles in. Every tile of the committed cube points is timed in whole cycles
    (their scratchpads stall nothing): 15, 19 and 15 of the plain, odd and output
    double-buffered cube's 30 points had tiles timed in halves or thirds of a cycle before."""
    import dataclasses

    arch = tile_arch(load_arch("cube", [*SMALL_TILES["cube"], "clock_mhz=1000",
                                        "dram.bandwidth_gb_per_s=16.0", "dram.latency_ns=0"]))
    nest, _, _ = _nest(arch, 13, 23, 25, (4, 4, 25), "nmk")
    beat = arch.memory[-1].beat_bytes
    assert {t.release for _, t in nest.timing} == {13}
    assert timeline_cycles(nest, 16.0, 0.0, beat) == 473
    halves = tuple((size, dataclasses.replace(t, release=Fraction(25, 2)))
                   for size, t in nest.timing)
    assert timeline_cycles(dataclasses.replace(nest, timing=halves), 16.0, 0.0, beat) == 471
    for preset, sets, name in RUNS:
        if preset != "cube":
            continue
        for arch, row, tile in _points(preset, sets, name):
            nest, _, _ = _nest(tile_arch(arch), int(row["M"]), int(row["N"]), int(row["K"]),
                               tile, row["loop_order"])
            for _, t in nest.timing:
                assert all(Fraction(v).denominator == 1
                           for v in (t.busy, t.release, t.early, t.drain)), (name, row, t)


def test_timeline_is_bounded_by_compute_and_by_the_link():
    """The GEMM takes at least its busy cycles and at least its bytes at the link's rate,
    and with a fast link and no latency little more than its compute."""
    M, N, K, tile = 48, 40, 36, (8, 16, 12)
    for bw in (0.5, 2.0, 64.0):
        arch = load_arch("systolic", [*SMALL_TILES["systolic"], "clock_mhz=1000",
                                      f"dram.bandwidth_gb_per_s={bw}", "dram.latency_ns=20"])
        nest, compute, traffic = _nest(arch, M, N, K, tile, "mnk")
        total = timeline_cycles(nest, bw, 20.0)
        assert total >= compute
        assert total >= traffic.dram_bytes / bw
    arch = load_arch("systolic", [*SMALL_TILES["systolic"], "clock_mhz=1000",
                                  "dram.bandwidth_gb_per_s=100000", "dram.latency_ns=0"])
    nest, compute, _ = _nest(arch, M, N, K, tile, "mnk")
    assert compute <= timeline_cycles(nest, 1e5, 0.0) <= compute * 1.01


def test_the_floor_bounds_the_timeline_and_meets_it_where_no_step_waits():
    """``timeline_floor`` is at most the timeline, walked with skips or step by step, whole
    or reduced, on random links (beats, single-buffered levels, the weight double buffer's
    preload); on a link that never holds the engine up it is the timeline (the first tiles'
    loads after the link's latency, every step's busy cycles, the last write-back), where the
    engine's busy cycles and the link's time for the bytes alone fall short by the latency."""
    rng = random.Random(23)
    for i in range(12):
        preset = "cube" if i % 5 == 4 else "systolic"
        arch = tile_arch(load_arch(preset, _varied_sets(rng, preset, i)))
        reduce = i % 2 == 0
        M, N, K = (rng.randint(130, 260) if reduce else rng.randint(20, 120) for _ in range(3))
        tile = (rng.choice([4, 8]), rng.choice([4, 8]), rng.choice([8, 13]))
        nest, _, _ = _nest(arch, M, N, K, tile, rng.choice(["mnk", "nkm", "kmn", "knm"]))
        for bw in (arch.dram_bytes_per_cycle, rng.uniform(0.5, 64.0)):
            args = (nest, bw, arch.dram.latency_ns, arch.memory[-1].beat_bytes)
            floor = timeline_floor(*args, reduce=reduce)
            assert floor <= timeline_cycles(*args, reduce=reduce)
            assert floor <= timeline_cycles(*args, reduce=reduce, skip=False)
    # a latency below a tile's busy cycles: only the first loads wait for it
    arch = load_arch("systolic", [*SMALL_TILES["systolic"], "clock_mhz=1000",
                                  "dram.bandwidth_gb_per_s=100000", "dram.latency_ns=50"])
    nest, compute, _ = _nest(arch, 48, 40, 36, (8, 16, 12), "mnk")
    total = timeline_cycles(nest, 1e5, 50.0)
    assert total > compute + 50
    assert timeline_floor(nest, 1e5, 50.0) == pytest.approx(total, rel=1e-10)
    # a latency above it holds steps up: the floor stays below
    assert timeline_floor(nest, 1e5, 300.0) < timeline_cycles(nest, 1e5, 300.0) - 300


def test_reported_stalls_are_exact_and_ideal_memory_has_none():
    arch = load_arch("systolic")
    g = Gemm(name="g", M=300, N=200, K=500)
    real = simulate_gemm(arch, g)
    assert type(real.dram_stall_cycles) is int and real.dram_stall_cycles >= 0
    assert real.cycles == real.compute_cycles + real.stall_cycles
    ideal = simulate_gemm(arch, g, memory="ideal")
    assert ideal.stall_cycles == 0 and ideal.cycles == ideal.compute_cycles


def test_link_beat_is_the_tiles_port_and_refused_where_it_cannot_be():
    from hw.spec import SpecError
    from sim.verify.tile_bench import SMALL_TILE

    with pytest.raises(SpecError, match=r"^a_buffer: beat_bytes: "):
        load_arch("systolic", ["a_buffer.beat_bytes=16"])
    with pytest.raises(SpecError, match=r"memory\.dram\.beat_bytes: .* set --set "
                                        r"dram\.beat_bytes=16$"):
        tile_spec(load_arch("systolic", [*SMALL_TILE, "dram.beat_bytes=12"]))
    arch = load_arch("systolic", [*SMALL_TILE, "dram.beat_bytes=32"])
    assert tile_spec(arch).ext_bytes == 32 and tile_arch(arch) is arch
    derived = tile_arch(load_arch("systolic", SMALL_TILE))
    assert derived.memory[-1].beat_bytes == tile_spec(derived).ext_bytes == 16


def test_a_beat_per_row_slows_only_rows_narrower_than_a_beat():
    """The same mapping with and without the link's beat: 4-byte W rows on a 16-byte beat take
    a cycle each at 8 bytes per cycle, so the GEMM takes longer; a link without a beat moves
    bytes."""
    base = [*SMALL_TILES["systolic"], "clock_mhz=1000", "dram.bandwidth_gb_per_s=8.0",
            "dram.latency_ns=40"]
    M, N, K, tile = 32, 32, 36, (4, 4, 36)
    plain = load_arch("systolic", base)
    beat = load_arch("systolic", [*base, "dram.beat_bytes=16"])
    mp = Candidates.single(M, N, K, tile, "mnk").mapping(0, plain)
    g = model_gemm(plain, M, N, K)
    assert mapping_cost(beat, g, mp)[0] > mapping_cost(plain, g, mp)[0] * 1.05


def _varied_sets(rng: random.Random, preset: str, i: int) -> list[str]:
    """Case ``i``'s ``--set`` keys on ``preset``'s small tiles: a random link, and in turn a
    link beat, WS with the weights' double buffer, a single-buffered level."""
    sets = [*SMALL_TILES[preset], "clock_mhz=1000",
            f"dram.bandwidth_gb_per_s={rng.uniform(0.5, 40):.2f}",
            f"dram.latency_ns={rng.randint(0, 300)}"]
    if i % 3 == 0:
        sets.append("dram.beat_bytes=16")
    if preset == "systolic" and i % 4 == 1:
        sets += ["engine.dataflow=ws", "engine.weight_double_buffer=true"]
    if i % 4 == 2:
        sets.append(rng.choice(["a_buffer", "w_buffer", "o_buffer"]) + ".double_buffered=false")
    return sets


def _golden_cases():
    """Mappings that exercise every path of the timeline: a link beat, single-buffered
    levels, an engine that takes its stationary input early (WS with the weights' double
    buffer), ragged tiles, each loop order, whole and reduced nests (a 512x4096x4096-like nest
    scaled down keeps over :data:`sim.timeline.WHOLE_TILES` tiles)."""
    rng = random.Random(11)
    out = []
    for i in range(10):
        preset = "cube" if i % 5 == 4 else "systolic"
        sets = _varied_sets(rng, preset, i)
        reduce = i >= 6
        dims = tuple(rng.randint(130, 260) if reduce else rng.randint(20, 120) for _ in range(3))
        tile = (rng.choice([4, 8]), rng.choice([4, 8]), rng.choice([8, 13]))
        order = ["mnk", "mkn", "nmk", "nkm", "kmn", "knm"][i % 6]
        out.append((preset, sets, dims, tile, order, reduce))
    return out


#: :func:`sim.timeline.timeline_cycles` of :func:`_golden_cases` as its event loop gave them
#: before it was rewritten for speed (per-step objects and closures; commit 7828fba, with the
#: port's pipeline and the preload): the rewrite keeps every float64 operation and its order,
#: so the figures of its step-by-step walk (``skip=False``) are equal, not close. The last
#: one since the link serves, of the loads requested when it frees, the earliest tile's (the
#: tile's arbiter; it was 813393.585865721 first come, first served: 4.5% more); the
#: write-back gap changes none of them. Six move with the output half a write-back frees
#: acquired a cycle after its last beat and a visit without a reload loaded the cycle after
#: (``sim.timeline.PORT_PIPELINE``), the second and the sixth (the weight double buffer) also
#: with the first fold's preload counted at the first tile instead of spread over every
#: tile: +0.14% to +2.1% (they were 78977.79469696942, 27648.596491228018,
#: 76580.22147651196, 176919.59702674963, 507531.2682308179 and 776424.2983714638).
#: Six move with the tile's link credit bucket (a write-back spends up to a beat of banked
#: credit beside the reads, its last beat in a whole cycle: ``sim.timeline.CREDIT_BEATS``),
#: its request walker (a job queued once the walker is free of the jobs before it,
#: ``JOB_QUEUE``) and, the second (WS with the weights' double buffer), a tile whose weights
#: load late starting its preload after them: +1.4%, -1.2%, +2.9%, +1.1%, -0.1% and -6.8%
#: (they were 79541.0, 27744.596491228018, 77042.22147651197, 177376.6216385028,
#: 508235.2682308179 and 793045.3285659913; the last, a cube nest of 4x4x8 tiles that spills
#: its partial sums every tile on a 12.79-byte link, 805537.0 without the bank: its 8-byte A
#: rows leave credit that each write-back's first beats spend). Two move with a write-back's
#: beats in the tile's write walker's blocks (``sim.timeline.Nest.write_block``: on their
#: 32-byte port a block row of 4 four-byte accumulators is a 16-byte beat of its own, where
#: whole rows filled 32-byte beats): +1.3% and +0.9% (they were 79310.0 and 179307.0).
#: The fifth (the cube, 86x49x101 on 8x8x8 tiles: its last K tiles 5 deep, three beats of
#: two elements) moves with a fold's beats in whole cycles (``sim.memory._nest``: the tile
#: frees its A and W halves on its last beat, ``ceil(5 / 2)`` cycles into the fold, not 2.5):
#: +0.011% (it was 80370.0). The fifth moves with the output loader's wait applied when
#: the arbiter would queue a load (``sim.timeline``'s ``o_hold``: an A tile requested before
#: the wait began no longer goes before the partial sums' reload of an earlier tile):
#: -3.0% (it was 80379.0; the tile RTL on ``amaranth.sim`` takes 79868 cycles, the reload
#: there 16 one-beat block rows where the timeline moved 8 whole rows). The fifth and the
#: sixth move with the partial sums' reload a block's row at a time (``Nest.segment``: on
#: their 32-byte port a row of 8 accumulators is two 16-byte block rows, a beat each):
#: +2.4% and +0.72% (they were 77995.0 and 180858.0; the tile RTL on ``amaranth.sim``
#: takes 79868 and 182345 cycles: the model was +0.64% and -0.82% off them before this
#: and the wait above, -0.013% and -0.10% with both). The last (a reduced nest, the cube
#: on a 16-byte port) moves with the reduced nest's fallback where the arbiter holds a load
#: of an unsampled step at a sampled one (``sim.timeline``'s module doc, "Cost": its
#: innermost loop that moves runs whole): -1.2% (it was 738966.0465207186, +0.77% over every
#: tile's timeline, 733304.0; now -0.48%).
_GOLDEN = [
    570577.0,
    80692.0,
    2137609.0,
    27400.0,
    79858.0,
    182164.0,
    2666722.0,
    507735.00000000006,
    1829966.0,
    729784.0000000001,
]


def test_timeline_equals_the_event_loop_it_replaced():
    cases = _golden_cases()
    assert len(cases) == len(_GOLDEN)
    for (preset, sets, (M, N, K), tile, order, reduce), want in zip(cases, _GOLDEN,
                                                                      strict=True):
        arch = tile_arch(load_arch(preset, sets))
        nest, _, _ = _nest(arch, M, N, K, tile, order)
        args = (nest, arch.dram_bytes_per_cycle, arch.dram.latency_ns,
                arch.memory[-1].beat_bytes)
        got = timeline_cycles(*args, reduce=reduce, skip=False)
        assert got == want, (preset, sets, (M, N, K), tile, order, reduce)
        # the skips leave a nest that runs whole as it is, a reduced one within float64's
        # rounding of its steps summed in another order
        skipped = timeline_cycles(*args, reduce=reduce)
        assert skipped == want if not reduce else skipped == pytest.approx(want, rel=1e-12)


def test_skips_leave_out_steps_and_keep_the_figures(monkeypatch):
    """The cold GEMM of benchmarks/sim_speed.py (512x4096x4096 INT8 on the systolic preset):
    its mapping's timeline skips iterations of the outer loop (fewer steps walked than the
    reduced nest has), and gives the figure of the step-by-step walk; so do random reduced
    nests (every loop order, single buffers, a beat, the early input), to float64's rounding
    (the steps' times summed in another order)."""
    import sim.memory
    from sim import clear_caches
    from sim.timeline import _plan, _walk

    calls = []

    def recording(nest, *args):
        calls.append((nest, *args))
        return timeline_cycles(nest, *args)

    monkeypatch.setattr(sim.memory, "timeline_cycles", recording)
    clear_caches()
    g = Gemm(name="g", M=512, N=4096, K=4096, a_fmt="int8", w_fmt="int8", o_fmt="int32")
    simulate_gemm(load_arch("systolic"), g)
    assert calls
    for nest, bw, lat, beat in calls:
        _, walked = _walk(nest, _plan(nest, True), float(bw), lat, beat)
        assert walked < _plan(nest, True).n
        assert timeline_cycles(nest, bw, lat, beat) == timeline_cycles(nest, bw, lat, beat,
                                                                       skip=False)
    seen = 0
    rng = random.Random(3)
    cases = []
    for i in range(8):
        preset = "cube" if i % 4 == 3 else "systolic"
        sets = _varied_sets(rng, preset, i)
        dims = tuple(rng.randint(200, 400) for _ in range(3))
        tile = (rng.choice([4, 8]), rng.choice([4, 8]), rng.choice([8, 13]))
        cases.append((preset, sets, dims, tile, ["mnk", "mkn", "nmk", "nkm", "kmn", "knm"][i % 6]))
    for preset, sets, (M, N, K), tile, order in cases:
        arch = tile_arch(load_arch(preset, sets))
        nest, _, _ = _nest(arch, M, N, K, tile, order)
        bw, lat, beat = (arch.dram_bytes_per_cycle, arch.dram.latency_ns,
                         arch.memory[-1].beat_bytes)
        whole = timeline_cycles(nest, bw, lat, beat, skip=False)
        _, walked = _walk(nest, _plan(nest, True), float(bw), lat, beat)
        assert walked <= _plan(nest, True).n
        seen += walked < _plan(nest, True).n
        assert timeline_cycles(nest, bw, lat, beat) == pytest.approx(whole, rel=1e-12)
    assert seen >= 4, seen


def test_a_skip_reaches_into_the_last_iteration_where_every_iteration_is_alike():
    """Where a skipping loop's last iteration has the steps of the last but one (no ragged
    tile along it), the walk leaves the last but one out too, and compares states within
    the iterations as well (from each iteration of the loop inside), going on from the same
    step of the last iteration: fewer steps walked than going on from the last but one, the
    figure that of the step-by-step walk to float64's rounding. The cold GEMM of
    benchmarks/sim_speed.py walks no more than two of its loop's iterations; random nests
    of whole tiles (every loop order, a beat, single buffers, WS's early input and its
    preload, the cube)
    leave out at least one iteration more; where the last tile along the loop is ragged, the
    walk goes on from the last but one, as before."""
    import dataclasses

    from sim.timeline import _plan, _walk

    def walks(nest, bw, lat, beat):
        plan = _plan(nest, True)
        without = dataclasses.replace(plan, events=tuple((s, sh, False, *rest)
                                                         for s, sh, _, *rest in plan.events))
        got, walked = _walk(nest, plan, float(bw), lat, beat)
        before, walked_before = _walk(nest, without, float(bw), lat, beat)
        whole, _ = _walk(nest, plan, float(bw), lat, beat, skip=False)
        assert got == pytest.approx(whole, rel=1e-12)
        assert before == pytest.approx(whole, rel=1e-12)
        strides = {s[-1] - s[-2] for s, _, last, *_ in plan.events if last}
        return walked, walked_before - walked, strides

    arch = load_arch("systolic")
    g = Gemm(name="g", M=512, N=4096, K=4096, a_fmt="int8", w_fmt="int8", o_fmt="int32")
    mp = simulate_gemm(arch, g).mapping
    nest, _, _ = _nest(arch, 512, 4096, 4096, (mp.tile_m, mp.tile_n, mp.tile_k),
                       mp.loop_order)
    walked, fewer, strides = walks(nest, arch.dram_bytes_per_cycle, arch.dram.latency_ns,
                                   arch.memory[-1].beat_bytes)
    assert len(strides) == 1 and fewer >= min(strides) and walked <= 2 * min(strides)
    rng = random.Random(5)
    left_out = 0
    for i in range(12):
        preset = ["systolic", "cube", "systolic", "matrix2d"][i % 4]
        sets = _varied_sets(rng, preset, i)
        if i % 4 == 2:  # WS without the weights' double buffer: every tile preloads W
            sets += ["engine.dataflow=ws", "engine.weight_double_buffer=false"]
        arch = tile_arch(load_arch(preset, sets))
        tile = (rng.choice([4, 8]), rng.choice([4, 8]), rng.choice([8, 16]))
        # whole tiles, except a ragged last tile along every dimension in every third case
        dims = tuple(t * rng.randint(20, 40) + (rng.randint(1, t - 1) if i % 3 == 2 else 0)
                     for t in tile)
        order = ["mnk", "mkn", "nmk", "nkm", "kmn", "knm"][i % 6]
        nest, _, _ = _nest(arch, *dims, tile, order)
        _, fewer, strides = walks(nest, arch.dram_bytes_per_cycle, arch.dram.latency_ns,
                                  arch.memory[-1].beat_bytes)
        if i % 3 == 2:
            assert not strides and fewer == 0
        else:
            assert fewer == 0 or fewer >= min(strides)
            left_out += fewer > 0
    # (4 of these 12 nests skipped before the tile's request walker and credit bucket were
    # counted, 2 since: with them, two link-bound pipelines alternate between two states from
    # one iteration to the next, or keep a growing backlog, and do not skip)
    assert left_out >= 2, left_out
