"""Pipeline registers: ``mult_reg`` and ``tree_stage_levels`` (adder tree, cube), ``cpa_reg``
(OPT1's carry-propagate adds at the edge: systolic array, cube).

A random grid of pipelined designs of the three kinds (every arithmetic option, dataflow and
double buffer mixed in) runs on amaranth.sim in lock step: results bit exact against numpy,
the GEMM's cycles, the first fold's and the spacing of the folds' ends equal to the model's,
then the same with idle input and back-pressure (results and protocol only). A few points run
the emitted Verilog on Verilator (``tpe verify``'s bench). CI runs a subset in which every
option is on at least once; the rest is marked ``slow``. The spec side: the registers the
generator places are the spec's stages, the model charges their latency and nothing else, and
impossible settings are refused in one line naming the field.
"""

from __future__ import annotations

import dataclasses
import json
import re
import zlib

import numpy as np
import pytest
from lockstep import ci_subset, verify_lockstep

from hw.emit import render
from hw.spec import SpecError, engine_from_dict
from hw.spec.base import PIPELINE_FIELDS, add_levels, csa_levels
from sim.cli import main
from sim.engines import gemm_compute_cycles, gemm_folds
from sim.verify.amaranth_bench import run_gemm_amaranth
from sim.verify.driver import Case, case_operands, reference_gemm

KINDS = ("addertree", "cube", "systolic")


def _random_point(kind: str, rng: np.random.Generator, i: int):
    """A random small design of ``kind`` with its pipeline options on (``i`` chooses which:
    the multiplier register, the tree stages or both)."""
    a_bits, w_bits = (int(x) for x in rng.integers(1, 17, size=2))
    acc_bits = int(rng.integers(1, a_bits + w_bits + 1)) if i % 2 else \
        int(rng.integers(a_bits + w_bits, 65))  # half the points wrap
    base = dict(kind=kind, a_bits=a_bits, w_bits=w_bits, acc_bits=acc_bits,
                signed=bool(rng.integers(0, 2)))
    if kind == "systolic":
        dataflow = ("os", "ws")[int(rng.integers(0, 2))]
        double = bool(rng.integers(0, 2))
        return engine_from_dict({
            **base, "rows": int(rng.integers(1, 5)), "cols": int(rng.integers(1, 5)),
            "dataflow": dataflow, "booth": bool(rng.integers(0, 2)), "csa_accumulate": True,
            "cpa_reg": True, "output_double_buffer": double and dataflow == "os",
            "weight_double_buffer": double and dataflow == "ws"})
    if kind == "addertree":
        sizes = {"lanes": int(rng.integers(1, 4)), "k": int(rng.integers(2, 9)),
                 "dataflow": ("os", "ws")[int(rng.integers(0, 2))],
                 "compress": bool(rng.integers(0, 2))}
    else:  # every other trio's cube has carry-save accumulators and cpa_reg
        csa = bool(rng.integers(0, 2)) or i // 3 % 2 == 0
        sizes = {"m": int(rng.integers(1, 4)), "n": int(rng.integers(1, 4)),
                 "k": int(rng.integers(2, 7)), "csa_accumulate": csa,
                 "cpa_reg": csa and i // 3 % 2 == 0,
                 "output_double_buffer": bool(rng.integers(0, 2))}
    spec = engine_from_dict({**base, **sizes, "booth": bool(rng.integers(0, 2))})
    mode = i // 3 % 3  # 0: both, 1: tree stages only, 2: multiplier register only
    every = 0 if mode == 2 else int(rng.integers(1, spec.tree_levels + 1))
    return dataclasses.replace(spec, mult_reg=mode != 1, tree_stage_levels=every)


def _grid(n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    return [_random_point(KINDS[i % 3], rng, i) for i in range(n)]


GRID = _grid(36, seed=20261205)
#: CI: the first nine points, each kind with both pipeline registers, tree stages alone and the
#: multiplier register alone (systolic: cpa_reg each time; the cube's cpa_reg twice).
CI_GRID = range(9)


def _gemm(spec, rng: np.random.Generator) -> tuple[int, int, int]:
    """A GEMM of several folds along every folded dimension, partial tiles included."""
    u = spec.unrolling()
    dims = []
    for tile in (u.m, u.n, u.k):
        dims.append(int(rng.integers(tile + 1, 2 * tile + 2)) if tile is not None
                    else int(rng.integers(1, 12)))
    return dims[0], dims[1], dims[2]


@pytest.mark.parametrize("spec", ci_subset(GRID, CI_GRID))
def test_lockstep_amaranth(spec) -> None:
    assert spec.pipeline_cycles
    rng = np.random.default_rng(zlib.crc32(spec.name.encode()))
    M, N, K = _gemm(spec, rng)
    stream = spec.unrolling().stream_len(M, N, K)
    A, W = case_operands(spec, Case("grid", M, N, K), rng)
    got, drv = run_gemm_amaranth(spec, A, W, rng)
    np.testing.assert_array_equal(got, reference_gemm(spec, A, W))
    assert drv.check_protocol() == []
    measured = drv.timing[-1].last_out - drv.timing[0].first_in + 1
    assert measured == gemm_compute_cycles(spec, M, N, K) == gemm_folds(spec, M, N, K).cycles
    assert drv.timing[0].cycles == spec.fold_cycles(stream)
    ends = [t.last_out for t in drv.timing]
    assert np.diff(ends).tolist() == [spec.fold_interval(stream)] * (len(ends) - 1)
    A, W = case_operands(spec, Case("stalls", M, N, K), rng)
    got, drv = run_gemm_amaranth(spec, A, W, rng, p_idle=0.4, p_stall=0.4)
    np.testing.assert_array_equal(got, reference_gemm(spec, A, W))
    assert drv.check_protocol() == []


#: The emitted Verilog on Verilator: one point per kind in CI, more with ``-m slow``.
RTL_POINTS = [
    engine_from_dict(dict(kind="addertree", lanes=3, k=8, a_bits=8, w_bits=8, acc_bits=32,
                          booth=True, compress=True, mult_reg=True, tree_stage_levels=2)),
    engine_from_dict(dict(kind="cube", m=2, n=3, k=4, a_bits=7, w_bits=6, acc_bits=24,
                          booth=True, csa_accumulate=True, output_double_buffer=True,
                          mult_reg=True, tree_stage_levels=1, cpa_reg=True)),
    engine_from_dict(dict(kind="systolic", rows=3, cols=4, a_bits=8, w_bits=8, acc_bits=32,
                          booth=True, csa_accumulate=True, cpa_reg=True)),
    engine_from_dict(dict(kind="addertree", lanes=2, k=16, a_bits=6, w_bits=5, acc_bits=20,
                          dataflow="ws", signed=False, tree_stage_levels=1)),
    engine_from_dict(dict(kind="cube", m=3, n=2, k=5, a_bits=5, w_bits=9, acc_bits=17,
                          mult_reg=True, tree_stage_levels=2)),
    engine_from_dict(dict(kind="cube", m=2, n=2, k=3, a_bits=6, w_bits=6, acc_bits=20,
                          csa_accumulate=True, cpa_reg=True, signed=False)),
    engine_from_dict(dict(kind="systolic", rows=4, cols=2, a_bits=6, w_bits=7, acc_bits=19,
                          dataflow="ws", csa_accumulate=True, cpa_reg=True,
                          weight_double_buffer=True, signed=False)),
    engine_from_dict(dict(kind="systolic", rows=2, cols=3, a_bits=5, w_bits=5, acc_bits=16,
                          csa_accumulate=True, cpa_reg=True, output_double_buffer=True)),
]


@pytest.mark.rtl
@pytest.mark.parametrize("spec", ci_subset(RTL_POINTS, range(3)))
def test_verilog_lockstep(spec, tmp_path) -> None:
    report = verify_lockstep(spec, tmp_path)
    assert sum(c["cycles_checked"] for c in report.cases) >= 5


def test_ci_turns_every_pipeline_option_on() -> None:
    for points in ([GRID[i] for i in CI_GRID], RTL_POINTS[:3]):
        on = {(s.kind, f) for s in points for f in PIPELINE_FIELDS if getattr(s, f, 0)}
        assert on == {("addertree", "mult_reg"), ("addertree", "tree_stage_levels"),
                      ("cube", "mult_reg"), ("cube", "tree_stage_levels"),
                      ("cube", "cpa_reg"), ("systolic", "cpa_reg")}


def _register_levels(verilog: str) -> set[int]:
    """The tree levels after which the Verilog has pipeline registers (``pipe_*_l<n>_*``)."""
    return {int(n) for n in re.findall(r"\breg\b[^;]*\bpipe_\w+?_l(\d+)_\d+\b", verilog)}


@pytest.mark.parametrize("point", [
    dict(kind="addertree", lanes=2, k=16, tree_stage_levels=1),
    dict(kind="addertree", lanes=2, k=16, tree_stage_levels=3, booth=True, dataflow="ws"),
    dict(kind="addertree", lanes=2, k=6, tree_stage_levels=2, compress=True, booth=True),
    dict(kind="addertree", lanes=1, k=9, tree_stage_levels=4, compress=True, signed=False),
    dict(kind="cube", m=2, n=2, k=8, tree_stage_levels=2),
    dict(kind="cube", m=2, n=1, k=4, tree_stage_levels=1, csa_accumulate=True, booth=True),
    dict(kind="cube", m=1, n=2, k=3, tree_stage_levels=3, csa_accumulate=True, a_bits=5),
])
def test_registers_land_where_the_spec_says(point) -> None:
    """A register level after every ``tree_stage_levels`` adder levels, ``tree_stages`` of
    them (the latency the model charges), and the multiplier register only when asked."""
    spec = engine_from_dict(point)
    every = spec.tree_stage_levels
    verilog = render(spec)[0]
    assert _register_levels(verilog) == set(range(every, spec.tree_levels + 1, every))
    assert len(_register_levels(verilog)) == spec.tree_stages == spec.pipeline_cycles
    with_mult = render(dataclasses.replace(spec, mult_reg=True))[0]
    assert "pipe_prod" not in verilog and "pipe_pp" not in verilog
    assert re.search(r"\breg\b[^;]*\bpipe_(prod|pp)", with_mult)


@pytest.mark.parametrize("base", [dict(kind="systolic", rows=2, cols=2, csa_accumulate=True),
                                  dict(kind="cube", m=2, n=2, k=2, csa_accumulate=True)])
def test_cpa_reg_registers_the_edge_adders(base) -> None:
    plain = render(engine_from_dict(base))[0]
    reg = render(engine_from_dict({**base, "cpa_reg": True}))[0]
    flop = r"\breg \[\d+:0\] o__payload = "  # a register (with its initial value) on the port
    assert not re.search(flop, plain) and re.search(flop, reg)


def test_level_counts() -> None:
    assert [add_levels(n) for n in (1, 2, 3, 4, 5, 8, 9, 64)] == [0, 1, 2, 2, 3, 3, 4, 6]
    # 3:2 levels: 3 -> 2; 4 -> 3 -> 2; 6 -> 4 -> 3 -> 2; 9 -> 6 -> 4 -> 3 -> 2
    assert [csa_levels(n) for n in (1, 2, 3, 4, 6, 9, 13)] == [0, 0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("point", [
    dict(kind="addertree", lanes=4, k=16, dataflow="os"),
    dict(kind="addertree", lanes=4, k=16, dataflow="ws", compress=True, booth=True),
    dict(kind="cube", m=2, n=4, k=8),
    dict(kind="cube", m=4, n=2, k=4, csa_accumulate=True, output_double_buffer=True),
])
def test_model_charges_latency_not_throughput(point) -> None:
    """Each register adds one cycle per fold (per run of overlapped folds with the output
    bank); beats per fold and MACs per cycle stay."""
    plain = engine_from_dict(point)
    piped = dataclasses.replace(plain, mult_reg=True, tree_stage_levels=1)
    assert piped.pipeline_cycles == 1 + plain.tree_levels
    M, N, K = 37, 29, 53
    folds = gemm_folds(plain, M, N, K)
    extra = gemm_compute_cycles(piped, M, N, K) - gemm_compute_cycles(plain, M, N, K)
    runs = 1 if getattr(plain, "output_double_buffer", False) else folds.folds
    assert extra == runs * piped.pipeline_cycles
    assert piped.macs_per_cycle == plain.macs_per_cycle
    assert piped.stream_cycles(K) == plain.stream_cycles(K)


@pytest.mark.parametrize("point", [
    dict(kind="systolic", rows=4, cols=3, dataflow="os"),
    dict(kind="systolic", rows=4, cols=3, dataflow="ws"),
    dict(kind="systolic", rows=4, cols=3, dataflow="os", output_double_buffer=True),
    dict(kind="systolic", rows=4, cols=3, dataflow="ws", weight_double_buffer=True),
    dict(kind="cube", m=4, n=3, k=2),
    dict(kind="cube", m=4, n=3, k=2, output_double_buffer=True),
])
def test_cpa_reg_adds_one_cycle_per_gemm(point) -> None:
    """The output register delays the last beat once; the array is free as early as before."""
    plain = engine_from_dict({**point, "csa_accumulate": True})
    reg = dataclasses.replace(plain, cpa_reg=True)
    for M, N, K in ((1, 1, 1), (37, 29, 53), (9, 3, 4)):
        assert gemm_compute_cycles(reg, M, N, K) == gemm_compute_cycles(plain, M, N, K) + 1


def test_tpe_sim_sees_the_latency(capsys) -> None:
    """`tpe sim gemm --set engine.<option>=...`: the pipeline's cycles in the prediction."""
    def cycles(*sets: str) -> int:
        args = ["sim", "gemm", "--arch", "cube", "--memory", "ideal", "--json",
                "--M", "64", "--N", "64", "--K", "64"]
        for s in sets:
            args += ["--set", s]
        assert main(args) == 0
        return json.loads(capsys.readouterr().out)["cycles"]

    plain = cycles()
    assert cycles("engine.mult_reg=true", "engine.tree_stage_levels=1") > plain


@pytest.mark.parametrize(
    ("point", "message"),
    [
        (dict(kind="addertree", lanes=2, k=4, tree_stage_levels=3),
         r"^engine\.tree_stage_levels: 3 adder levels per stage, more than the 2 levels of "
         r"the tree of k=4 products \(no register would land in it\); set 1\.\.2, or 0 for "
         r"none$"),
        (dict(kind="addertree", lanes=2, k=1, tree_stage_levels=1),
         r"^engine\.tree_stage_levels: 1 adder levels per stage, but the tree of k=1 products "
         r"has no adder level to register; set 0$"),
        (dict(kind="cube", m=2, n=2, k=2, tree_stage_levels=2),
         r"^engine\.tree_stage_levels: 2 adder levels per stage, more than the 1 level of "
         r"the tree of k=2 products .*; set 1, or 0 for none$"),
        (dict(kind="cube", m=2, n=2, k=2, tree_stage_levels=-1),
         r"^engine\.tree_stage_levels: must be >= 0 \(got -1\)$"),
        (dict(kind="systolic", rows=2, cols=2, cpa_reg=True),
         r"^engine\.cpa_reg: needs carry-save accumulators \(csa_accumulate=false adds in "
         r"every PE, there is no edge carry-propagate adder to register\); set "
         r"csa_accumulate=true or cpa_reg=false$"),
        (dict(kind="cube", m=2, n=2, k=2, booth=True, cpa_reg=True),
         r"^engine\.cpa_reg: needs carry-save accumulators \(csa_accumulate=false adds in "
         r"the loop, there is no carry-propagate add on the drain to register\); set "
         r"csa_accumulate=true or cpa_reg=false$"),
        (dict(kind="cube", m=2, n=2, k=2, mult_reg=1),
         r"^engine\.mult_reg: input should be a valid boolean \(got 1\)$"),
    ],
)
def test_spec_errors_name_the_field(point, message) -> None:
    with pytest.raises(SpecError, match=message):
        engine_from_dict(point)


def test_cli_refuses_an_impossible_setting(tmp_path, capsys) -> None:
    assert main(["gen", "addertree", "--lanes", "2", "--k", "4", "--tree-stage-levels", "3",
                 "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(r"tpe: error: --tree-stage-levels: 3 adder levels per stage, more "
                        r"than the 2 levels of the tree of k=4 products .*", err), err
    assert not any(tmp_path.iterdir())


def test_names_tell_the_pipeline() -> None:
    base = dict(kind="cube", m=2, n=2, k=4)
    names = {engine_from_dict({**base, "mult_reg": r, "tree_stage_levels": t}).name
             for r in (False, True) for t in (0, 1, 2)}
    assert len(names) == 6
    assert engine_from_dict({**base, "mult_reg": True, "tree_stage_levels": 2}).name \
        == "cube_2x2x4_a8w8p32s_mreg_ts2"


@pytest.mark.parametrize(("preset", "sets"), [
    ("cube", ["engine.mult_reg=true", "engine.tree_stage_levels=1"]),
    pytest.param("cube", ["engine.output_double_buffer=true", "engine.csa_accumulate=true",
                          "engine.mult_reg=true", "engine.tree_stage_levels=2",
                          "engine.cpa_reg=true"],
                 marks=pytest.mark.slow),
    pytest.param("systolic", ["engine.csa_accumulate=true", "engine.cpa_reg=true"],
                 marks=pytest.mark.slow),
    pytest.param("systolic", ["engine.dataflow=ws", "engine.weight_double_buffer=true",
                              "engine.csa_accumulate=true", "engine.cpa_reg=true"],
                 marks=pytest.mark.slow),
])
def test_tiles_take_pipelined_engines(preset: str, sets: list[str]) -> None:
    """A whole tile (scratchpads, DMA, loop controller) around a pipelined engine: a tiled
    GEMM bit exact (amaranth.sim)."""
    from test_tile import CASES, test_random_gemm_bit_exact

    base, M, N, K, tile, order = CASES[0]
    test_random_gemm_bit_exact([*base, *sets], M, N, K, tile, order, preset=preset)


@pytest.mark.parametrize("kind", ["systolic", "cube"])
def test_cpa_reg_is_no_overlap_of_folds(kind: str, capsys) -> None:
    """The next fold starting as the last result enters cpa_reg's register is not a double
    buffer: the memory model keeps the stationary operand's stalls added, not overlapped, and
    the whole GEMM on the preset (real memory) takes one cycle more, at the same energy."""
    from sim.memory import overlaps_folds

    def run(*sets: str) -> dict:
        args = ["sim", "gemm", "--arch", kind, "--json", "--M", "512", "--N", "1024",
                "--K", "1024", "--set", "engine.csa_accumulate=true"]
        for s in sets:
            args += ["--set", s]
        assert main(args) == 0
        return json.loads(capsys.readouterr().out)

    plain, reg = run(), run("engine.cpa_reg=true")
    assert reg["cycles"] == plain["cycles"] + 1
    assert reg["stall_cycles"] == plain["stall_cycles"]
    assert reg["energy_pj"] == pytest.approx(plain["energy_pj"])
    dims = dict(rows=4, cols=4) if kind == "systolic" else dict(m=2, n=2, k=2)
    spec = engine_from_dict(dict(kind=kind, csa_accumulate=True, cpa_reg=True, **dims))
    assert spec.fold_interval(100) == spec.fold_cycles(100) - 1 and not overlaps_folds(spec)
    assert overlaps_folds(dataclasses.replace(spec, output_double_buffer=True))
