"""mapping/: candidate tilings, capacity errors, search with a caller-supplied cost function."""

from __future__ import annotations

import ast
import itertools
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hw.spec import SpecError, Unrolling, load_arch
from mapping import (
    DIMS,
    LOOP_ORDERS,
    Candidates,
    Costs,
    Mapping,
    MappingError,
    candidates,
    fold_grid,
    search,
    untiled,
)
from models.formats import get_format
from models.ops import Gemm

ROOT = Path(__file__).resolve().parents[1]


def arch_with(*overrides: str):
    return load_arch("systolic", list(overrides))


def cycles_only(gemm, arch, cands: Candidates) -> Costs:
    """A toy cost: fewer tile iterations is better; energy = total tile elements."""
    trips = cands.trips
    n_iter = trips.prod(axis=1)
    return Costs(cycles=n_iter, energy_pj=cands.tiles.sum(axis=1).astype(float))


def test_mapping_imports_neither_sim_nor_anything_outside_its_layer():
    for path in (ROOT / "mapping").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top != "sim", f"{path.name} imports {name}"


dims_st = st.integers(min_value=1, max_value=3000)


@settings(max_examples=60, deadline=None)
@given(M=dims_st, N=dims_st, K=dims_st, dataflow=st.sampled_from(["os", "ws"]),
       rows=st.sampled_from([4, 16, 32]), cols=st.sampled_from([4, 8, 32]))
def test_candidates_fit_buffers_and_respect_the_array(M, N, K, dataflow, rows, cols):
    arch = arch_with(f"engine.dataflow={dataflow}", f"engine.rows={rows}",
                     f"engine.cols={cols}")
    gemm = Gemm(name="g", M=M, N=N, K=K)
    cands = candidates(gemm, arch)
    assert len(cands) > 0
    tm, tn, tk = cands.tiles.T
    a_bits, w_bits = get_format(gemm.a_fmt).bits, get_format(gemm.w_fmt).bits
    assert np.all(-(-tm * tk * a_bits // 8) <= arch.a_buffer.tile_capacity_bytes)
    assert np.all(-(-tk * tn * w_bits // 8) <= arch.w_buffer.tile_capacity_bytes)
    assert np.all(-(-tm * tn * arch.engine.acc_bits // 8) <= arch.o_buffer.tile_capacity_bytes)
    assert np.all((tm >= 1) & (tm <= M) & (tn >= 1) & (tn <= N) & (tk >= 1) & (tk <= K))
    # unrolled dimensions: multiples of the array edge, or the whole dimension
    row_tiles, row_dim = (tm, M) if dataflow == "os" else (tk, K)
    assert np.all((row_tiles % rows == 0) | (row_tiles == row_dim))
    assert np.all((tn % cols == 0) | (tn == N))
    # every loop order appears for every tile
    per_tile = {}
    for t, o in zip(map(tuple, cands.tiles), map(tuple, cands.order), strict=True):
        per_tile.setdefault(t, set()).add(o)
    assert all(len(orders) == len(LOOP_ORDERS) for orders in per_tile.values())


@settings(max_examples=40, deadline=None)
@given(M=dims_st, N=dims_st, K=dims_st, scale=st.sampled_from([2, 4, 16]),
       which=st.sampled_from(["a_buffer", "w_buffer", "o_buffer"]))
def test_bigger_buffers_admit_a_superset_of_candidates(M, N, K, scale, which):
    small = arch_with()
    big_cap = getattr(small, which).capacity_bytes * scale
    big = arch_with(f"{which}.capacity_bytes={big_cap}")
    gemm = Gemm(name="g", M=M, N=N, K=K)
    small_rows = {tuple(r) for r in np.hstack([candidates(gemm, small).tiles,
                                               candidates(gemm, small).order])}
    big_rows = {tuple(r) for r in np.hstack([candidates(gemm, big).tiles,
                                             candidates(gemm, big).order])}
    assert small_rows <= big_rows


@pytest.mark.parametrize(
    ("override", "gemm", "pattern"),
    [
        ("o_buffer.capacity_bytes=1024", Gemm(name="g", M=64, N=64, K=64),
         r"^o_buffer: the smallest output tile \(32 x 32 int32 accumulator = 4096 bytes\) does "
         r"not fit its 512-byte tile capacity .*; raise it with "
         r"--set o_buffer\.capacity_bytes=8192$"),
        ("a_buffer.capacity_bytes=16", Gemm(name="g", M=64, N=64, K=64),
         r"^a_buffer: the smallest A tile \(32 x 1 int8 = 32 bytes\) does not fit its "
         r"8-byte tile capacity .*--set a_buffer\.capacity_bytes=64$"),
        ("w_buffer.capacity_bytes=32", Gemm(name="g", M=64, N=64, K=64),
         r"^w_buffer: the smallest W tile \(1 x 32 int8 = 32 bytes\) .*"
         r"--set w_buffer\.capacity_bytes=64 or --set w_buffer\.double_buffered=false$"),
    ],
)
def test_a_minimum_tile_that_does_not_fit_names_the_buffer_and_the_fix(override, gemm, pattern):
    arch = arch_with(override)
    with pytest.raises(MappingError, match=pattern) as info:
        candidates(gemm, arch)
    assert isinstance(info.value, SpecError)  # the CLI turns it into exit 2
    assert "\n" not in str(info.value)


def test_the_suggested_capacity_fixes_the_error():
    gemm = Gemm(name="g", M=64, N=64, K=64)
    with pytest.raises(MappingError) as info:
        candidates(gemm, arch_with("o_buffer.capacity_bytes=1024"))
    found = re.search(r"--set o_buffer\.capacity_bytes=(\d+)", str(info.value))
    assert found is not None
    fix = found.group(1)
    assert len(candidates(gemm, arch_with(f"o_buffer.capacity_bytes={fix}"))) > 0


def test_search_minimises_the_objective_of_the_given_cost_function():
    arch = arch_with()
    gemm = Gemm(name="g", M=256, N=512, K=1024)
    cands = candidates(gemm, arch)
    costs = cycles_only(gemm, arch, cands)
    best = search(gemm, arch, cycles_only, "latency")
    assert best.tile_iterations == costs.cycles.min()
    best_e = search(gemm, arch, cycles_only, "energy")
    assert best_e.tile_m + best_e.tile_n + best_e.tile_k == costs.energy_pj.min()
    edp = costs.cycles * costs.energy_pj
    best_edp = search(gemm, arch, cycles_only, "edp")
    assert (best_edp.tile_iterations * (best_edp.tile_m + best_edp.tile_n + best_edp.tile_k)
            == edp.min())


def test_search_is_cached_on_shape_and_formats_not_name_or_count():
    arch = arch_with()
    a = search(Gemm(name="q", M=64, N=128, K=256), arch, cycles_only)
    b = search(Gemm(name="k", M=64, N=128, K=256, count=7), arch, cycles_only)
    assert a is b


def test_search_rejects_an_unknown_objective():
    with pytest.raises(ValueError, match=r"^objective: must be one of latency, energy, edp "
                                         r"\(got 'speed'\)$"):
        search(Gemm(name="g", M=8, N=8, K=8), arch_with(), cycles_only, "speed")  # type: ignore[arg-type]


def test_arch_specs_hash_so_caches_work():
    assert hash(arch_with()) == hash(arch_with())
    assert arch_with() == arch_with()


def test_untiled_is_one_whole_tile():
    gemm = Gemm(name="g", M=100, N=200, K=300)
    arch = arch_with()
    m = untiled(gemm, arch).mapping(0, arch)
    assert (m.tile_m, m.tile_n, m.tile_k) == (100, 200, 300)
    assert (m.tiles_m, m.tiles_n, m.tiles_k) == (1, 1, 1)
    assert m.stationary is None
    # OS folds: ceil(M/rows) * ceil(N/cols), computed here independently
    assert m.folds == -(-100 // 32) * -(-200 // 32)


OS_32 = Unrolling(m=32, n=32, k=None)


@pytest.mark.parametrize("order", list(itertools.permutations(DIMS)))
def test_stationary_is_the_operand_not_indexed_by_the_innermost_moving_loop(order):
    m = Mapping(kind="systolic", tile_m=32, tile_n=32, tile_k=32, tiles_m=2, tiles_n=2,
                tiles_k=2, loop_order=order, unrolling=OS_32, folds=8)
    expected = {"k": "O", "n": "A", "m": "W"}[order[-1]]
    assert m.stationary == expected
    # with the innermost loop trivial, the next loop out decides
    trips = {"m": 2, "n": 2, "k": 2, order[-1]: 1}
    m1 = Mapping(kind="systolic", tile_m=32, tile_n=32, tile_k=32, tiles_m=trips["m"],
                 tiles_n=trips["n"], tiles_k=trips["k"], loop_order=order, unrolling=OS_32,
                 folds=8)
    assert m1.stationary == {"k": "O", "n": "A", "m": "W"}[order[1]]


def test_mapping_round_trips_through_a_one_row_candidate_set():
    arch = arch_with("engine.dataflow=ws")
    gemm = Gemm(name="g", M=300, N=500, K=700)
    cands = candidates(gemm, arch)
    for i in (0, len(cands) // 2, len(cands) - 1):
        m = cands.mapping(i, arch)
        again = Candidates.from_mapping(m, gemm.M, gemm.N, gemm.K).mapping(0, arch)
        assert again == m
        assert m.spatial == {"n": 32, "k": 32} and m.stream_dim == "m"
        assert m.to_dict()["spatial"] == {"unroll": {"n": 32, "k": 32}, "stream": "m"}
        assert m.kind == "systolic"


# -- fold geometry from the unrolling alone ------------------------------------------------------

unroll_st = st.tuples(st.integers(1, 40), st.integers(1, 40), st.sampled_from("mnk")).map(
    lambda t: Unrolling(**{d: None if d == t[2] else v
                           for d, v in zip("mnk", (t[0], t[1], t[0] + t[1]), strict=True)}))


def sizes(dim: int, tile: int) -> list[int]:
    return [min(tile, dim - i * tile) for i in range(-(-dim // tile))]


@settings(max_examples=80, deadline=None)
@given(u=unroll_st, M=st.integers(1, 300), N=st.integers(1, 300), K=st.integers(1, 300),
       data=st.data())
def test_fold_grid_counts_the_folds_of_every_tile(u, M, N, K, data):
    tm, tn, tk = (data.draw(st.integers(1, d)) for d in (M, N, K))
    grid = fold_grid(u, M, N, K, tm, tn, tk)
    folds = 0
    along = {"m": 0, "n": 0, "k": 0}
    for d, dim, tile in (("m", M, tm), ("n", N, tn), ("k", K, tk)):
        unit = getattr(u, d)
        along[d] = sum(1 if unit is None else -(-s // unit) for s in sizes(dim, tile))
    for ms, ns, ks in itertools.product(sizes(M, tm), sizes(N, tn), sizes(K, tk)):
        per_tile = 1
        for d, s in (("m", ms), ("n", ns), ("k", ks)):
            unit = getattr(u, d)
            per_tile *= 1 if unit is None else -(-s // unit)
        folds += per_tile
    assert int(grid.total) == folds
    assert (int(grid.folds_m), int(grid.folds_n), int(grid.folds_k)) == (
        along["m"], along["n"], along["k"])
    assert int(grid.chunks) == -(-{"m": M, "n": N, "k": K}[u.stream] // {"m": tm, "n": tn,
                                                                           "k": tk}[u.stream])
    # untiled: the spec-level count of hw.spec.Unrolling
    assert int(fold_grid(u, M, N, K, M, N, K).total) == u.folds(M, N, K)


@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_candidates_and_mappings_follow_the_engines_unrolling(dataflow):
    arch = arch_with(f"engine.dataflow={dataflow}", "engine.rows=8", "engine.cols=16")
    u = arch.engine.unrolling()
    gemm = Gemm(name="g", M=100, N=200, K=300)
    cands = candidates(gemm, arch)
    for j, d in enumerate(DIMS):
        unit = getattr(u, d)
        if unit is not None:
            tiles = cands.tiles[:, j]
            assert np.all((tiles % unit == 0) | (tiles == getattr(gemm, d.upper())))
    m = cands.mapping(len(cands) // 3, arch)
    assert m.unrolling == u
    assert m.stream_dim == u.stream
    assert m.folds == int(fold_grid(u, 100, 200, 300, m.tile_m, m.tile_n, m.tile_k).total)


@pytest.mark.parametrize(("capacity", "present"), [(300, False), (320, True)])
def test_a_partial_block_fills_whole_buffer_lines(capacity: int, present: bool) -> None:
    """A buffer holds whole engine beats: an 18 x 8 A tile on a 4-row array takes 5 blocks of
    4 rows (160 bytes of INT8), not 144, so a 150-byte tile capacity refuses it and a 160-byte
    one takes it."""
    arch = load_arch("systolic", ["engine.rows=4", "engine.cols=4",
                                  f"a_buffer.capacity_bytes={capacity}"])
    g = Gemm(name="g", M=18, N=8, K=8, a_fmt="int8", w_fmt="int8", o_fmt="int32")
    tiles = {tuple(int(x) for x in t) for t in candidates(g, arch).tiles}
    assert ((18, 8, 8) in tiles) is present
    assert (12, 8, 8) in tiles  # whole blocks: 96 bytes either way
