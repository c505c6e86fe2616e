"""The cost model is engine-kind generic: every kind's preset through ``tpe sim``, a kind known
only through the spec contract, and the per-kind energy action models."""

from __future__ import annotations

import dataclasses
import itertools
import json
import sys
import types
from typing import Any, Literal

import numpy as np
import pytest
from pydantic.dataclasses import dataclass

from hw.spec import (
    ArchSpec,
    EngineBase,
    SpecError,
    Unrolling,
    engine_from_dict,
    engine_kinds,
    list_presets,
    load_arch,
)
from hw.spec.base import CONFIG
from mapping import DIMS, candidates, fold_grid, stream_granule
from models.ops import Gemm
from sim import engines
from sim.cli import main
from sim.energy import ENERGY_COMPONENTS, action_units, energy_components, unit_energies
from sim.engines import format_hook
from sim.engines.cost import multiplier_arith_actions, multiplier_pe_area
from sim.execution import auto_scheme
from sim.gemm import simulate_gemm, tiled_compute_cycles

REQUIRED_KEYS = {"cycles", "compute_cycles", "stall_cycles", "utilization", "energy_pj",
                 "seconds", "breakdown", "mapping", "arch", "engine"}


def _kind_presets() -> dict[str, str]:
    """One architecture preset per engine kind that has one (``hw/presets``), a one-core one
    where the kind has it (the fold model's exact figures hold for one core)."""
    found: dict[str, str] = {}
    archs = {}
    for name in list_presets():
        try:
            arch = load_arch(name)
        except SpecError:  # not an engine architecture
            continue
        if arch.gpu is not None:  # a GPU preset: timed by the GPU kernel model (test_gpu.py)
            continue
        archs[name] = arch
    for name, arch in sorted(archs.items(), key=lambda item: (item[1].cores, item[0])):
        if arch.engine.kind in engine_kinds():
            found.setdefault(arch.engine.kind, name)
    return found


KIND_PRESETS = _kind_presets()


def run(capsys, argv: list[str]) -> dict[str, Any]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_every_preset_kind_is_an_engine_kind():
    assert "systolic" in KIND_PRESETS
    assert set(KIND_PRESETS) <= set(engine_kinds())


@pytest.mark.parametrize("kind", sorted(KIND_PRESETS))
@pytest.mark.parametrize(("M", "N", "K"), [(200, 300, 500), (1, 512, 700)])
def test_sim_gemm_on_every_kinds_preset(capsys, kind, M, N, K):
    preset = KIND_PRESETS[kind]
    arch = load_arch(preset)
    spec = arch.engine
    u = spec.unrolling()
    macs = M * N * K
    shape = ["--M", str(M), "--N", str(N), "--K", str(K), "--json"]
    ideal = run(capsys, ["sim", "gemm", "--arch", preset, "--memory", "ideal", *shape])
    real = run(capsys, ["sim", "gemm", "--arch", preset, *shape])
    for d in (ideal, real):
        assert REQUIRED_KEYS <= set(d)
        assert d["engine"]["kind"] == kind
        assert d["cycles"] == d["compute_cycles"] + d["stall_cycles"]
        assert d["cycles"] >= macs / (arch.cores * spec.macs_per_cycle)
        peak = arch.cores * spec.macs_per_cycle
        assert d["utilization"] == pytest.approx(macs / (d["cycles"] * peak))
        assert 0 < d["utilization"] <= 1
        assert d["energy_pj"] == sum(d["breakdown"].values())
        assert set(d["breakdown"]) == set(energy_components(arch))
        assert {a["component"] for a in d["core"]["actions"].values()} <= set(ENERGY_COMPONENTS)
        assert d["mapping"]["kind"] == kind
        assert d["mapping"]["spatial"] == {
            "unroll": {dim: v for dim in "mnk" if (v := getattr(u, dim)) is not None},
            "stream": u.stream,
        }
        assert d["area_um2"] > 0
    # ideal memory: the kind-independent untiled fold model, exactly, in the faster of the two
    # orientations (C or C^T = W^T A^T, the mapping says which)
    shape = (N, M, K) if ideal["mapping"]["transposed"] else (M, N, K)
    assert ideal["cycles"] == ideal["compute_cycles"] == engines.gemm_compute_cycles(spec, *shape)
    assert ideal["cycles"] == min(engines.gemm_compute_cycles(spec, M, N, K),
                                  engines.gemm_compute_cycles(spec, N, M, K))
    assert ideal["stall_cycles"] == 0 and ideal["dram_bytes"] == 0
    assert ideal["mapping"]["folds"] == u.folds(*shape)
    assert real["compute_cycles"] >= ideal["compute_cycles"]


@pytest.mark.parametrize("kind", sorted(KIND_PRESETS))
@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_sim_model_on_every_kinds_preset(capsys, tmp_path, kind, phase):
    cfg = {"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 2,
           "num_attention_heads": 4, "vocab_size": 1000, "max_position_embeddings": 256}
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(cfg))
    d = run(capsys, ["sim", "model", "--arch", KIND_PRESETS[kind], "--model", str(path),
                     "--phase", phase, "--batch", "2", "--seq", "64", "--json"])
    assert REQUIRED_KEYS <= set(d)
    assert d["cycles"] == sum(op["cycles"] for op in d["ops"])
    assert d["energy_pj"] == pytest.approx(sum(d["breakdown"].values()), rel=1e-12)
    assert 0 < d["utilization"] <= 1
    spec = load_arch(KIND_PRESETS[kind]).engine
    # --quant auto: the engine's own operand widths (integers; a kind with its own formats,
    # such as the MX engine's block formats, says which)
    want = auto_scheme(spec).w_fmt if format_hook(spec.kind, "auto_scheme") else f"int{spec.w_bits}"
    assert {op["shape"]["w_fmt"] for op in d["ops"] if op["name"] == "q_proj"} == {want}


# -- a kind the simulator has never heard of: only the spec contract --------------------------


@dataclass(config=CONFIG, kw_only=True)
class FakeSpec(EngineBase):
    """A made-up engine: ``p x q`` PEs over the two GEMM dims other than ``stream``, which
    streams two elements per cycle after a 5-cycle set-up. ``kind`` has no default, so the
    class stays out of :func:`hw.spec.engine_kinds`."""

    kind: Literal["fake"]
    stream: Literal["m", "n", "k"] = "m"
    p: int = 8
    q: int = 4

    @property
    def macs_per_cycle(self) -> int:
        return 2 * self.p * self.q

    def fold_cycles(self, stream_len: int) -> int:
        if stream_len < 1:
            raise ValueError(f"stream_len must be >= 1, got {stream_len!r}")
        return -(-stream_len // 2) + 5

    def unrolling(self) -> Unrolling:
        a, b = (d for d in "mnk" if d != self.stream)
        return Unrolling(**{self.stream: None, a: self.p, b: self.q})

    def timing_contract(self) -> dict[str, Any]:
        return {"fold_cycles": "ceil(L/2) + 5"}

    @property
    def name(self) -> str:
        return f"fake_{self.stream}_{self.p}x{self.q}"


@pytest.fixture(autouse=True)
def _fake_kind_costs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake kind's cost module (``sim/engines/fake.py``): the multiplier kinds' model,
    as a kind declares it (an undeclared kind fails: tests/test_engine_costs.py)."""
    module = types.ModuleType("sim.engines.fake")
    module.arith_actions = multiplier_arith_actions  # type: ignore[attr-defined]
    module.pe_area = multiplier_pe_area  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sim.engines.fake", module)


def fake_arch(stream: str, p: int = 8, q: int = 4) -> ArchSpec:
    return dataclasses.replace(load_arch("systolic"),
                               engine=FakeSpec(kind="fake", stream=stream, p=p, q=q))


def test_a_local_engine_stays_out_of_the_kind_registry():
    assert "fake" not in engine_kinds()


def sizes(dim: int, tile: int) -> list[int]:
    return [min(tile, dim - i * tile) for i in range(-(-dim // tile))]


@pytest.mark.parametrize("stream", ["m", "n", "k"])
@pytest.mark.parametrize(("M", "N", "K", "count"), [(37, 301, 129, 2), (640, 96, 1000, 1),
                                                     (1, 700, 333, 3)])
def test_the_model_needs_nothing_but_the_spec_contract(stream, M, N, K, count):
    arch = fake_arch(stream)
    spec = arch.engine
    dims = {"m": M, "n": N, "k": K}
    a, b = (d for d in "mnk" if d != stream)
    gemm = Gemm(name="g", M=M, N=N, K=K, count=count)

    ideal = simulate_gemm(arch, gemm, memory="ideal")
    # written out independently: ceil(a/p) * ceil(b/q) folds of ceil(stream/2) + 5 cycles
    fold = -(-dims[stream] // 2) + 5
    expected = -(-dims[a] // 8) * -(-dims[b] // 4) * fold
    assert ideal.cycles == ideal.compute_cycles == expected * count
    assert expected == engines.gemm_compute_cycles(spec, M, N, K)
    assert ideal.stall_cycles == 0 and ideal.dram_bytes == 0
    assert ideal.utilization == pytest.approx(gemm.macs / (ideal.cycles * 2 * 8 * 4))

    real = simulate_gemm(arch, gemm)
    assert real.cycles >= gemm.macs / spec.macs_per_cycle
    assert real.cycles == real.compute_cycles + real.stall_cycles
    assert real.energy_pj == sum(real.energy_breakdown_pj.values())
    assert 0 < real.utilization <= 1
    m = real.mapping
    assert m.kind == "fake" and m.stream_dim == stream and m.spatial == {a: 8, b: 4}
    assert m.to_dict()["spatial"] == {"unroll": {a: 8, b: 4}, "stream": stream}
    # tiled compute: every buffer tile's folds, summed tile by tile
    tiles = {"m": m.tile_m, "n": m.tile_n, "k": m.tile_k}
    total = folds = 0
    for ext in itertools.product(*(sizes(dims[d], tiles[d]) for d in "mnk")):
        e = dict(zip("mnk", ext, strict=True))
        per_tile = -(-e[a] // 8) * -(-e[b] // 4)
        folds += per_tile
        total += per_tile * spec.fold_cycles(e[stream])
    assert real.compute_cycles == total * count
    assert m.folds == folds
    # the fake kind declares the multiplier action model: one multiply and one add per MAC
    assert real.actions["multiply"] == real.actions["accumulate"] == gemm.macs
    assert action_units(arch)["multiply"]["unit"] == "8x8-bit multiplies"


def test_the_same_engine_in_each_orientation_is_costed_by_its_unrolling():
    gemm = Gemm(name="g", M=64, N=512, K=512)
    r = {s: simulate_gemm(fake_arch(s), gemm, memory="ideal") for s in "mnk"}
    for s, res in r.items():
        a, b = (d for d in "mnk" if d != s)
        dims = {"m": 64, "n": 512, "k": 512}
        assert res.mapping.folds == -(-dims[a] // 8) * -(-dims[b] // 4)
    # the engine's SRAM reads follow the unrolling: A is re-read once per N fold
    for s in "mnk":
        arch = fake_arch(s)
        grid = fold_grid(arch.engine.unrolling(), 64, 512, 512, 64, 512, 512)
        a_bytes = simulate_gemm(arch, gemm, memory="ideal").actions["a_buffer"]
        assert a_bytes == int(grid.folds_n) * 64 * 512


# -- per-kind arithmetic action models ---------------------------------------------------------

ENGINES = {
    "bitslice": {"kind": "bitslice", "rows": 8, "cols": 8, "slice_bits": 2, "a_bits": 8,
                 "w_bits": 6},
    "lut": {"kind": "lut", "rows": 8, "cols": 16, "group": 4, "symmetric": True, "w_bits": 2},
    "bitplane": {"kind": "bitplane", "rows": 8, "cols": 8, "depth": 16, "a_bits": 4,
                 "w_bits": 3},
    "cube": {"kind": "cube", "m": 4, "n": 4, "k": 8},
    "addertree": {"kind": "addertree", "lanes": 8, "k": 8},
    "matrix2d": {"kind": "matrix2d", "rows": 8, "cols": 8},
    "systolic": {"kind": "systolic", "rows": 8, "cols": 8, "dataflow": "ws"},
    "mx": {"kind": "mx", "rows": 2, "lanes": 8, "block": 8, "formats": "fp8_e4m3+int8"},
}


def kind_arch(kind: str) -> ArchSpec:
    if kind not in engine_kinds():
        pytest.skip(f"engine kind {kind!r} is not in this tree")
    return dataclasses.replace(load_arch("systolic"), engine=engine_from_dict(ENGINES[kind]))


def fmts(arch: ArchSpec) -> dict[str, str]:
    return {"a_fmt": f"int{arch.engine.a_bits}", "w_fmt": f"int{arch.engine.w_bits}"}


@pytest.mark.parametrize("kind", sorted(ENGINES))
def test_every_kind_runs_without_a_preset(kind):
    arch = kind_arch(kind)
    gemm = Gemm(name="g", M=100, N=70, K=300, **fmts(arch))
    ideal = simulate_gemm(arch, gemm, memory="ideal")
    assert ideal.cycles == engines.gemm_compute_cycles(arch.engine, 100, 70, 300)
    real = simulate_gemm(arch, gemm)
    assert real.cycles >= gemm.macs / arch.engine.macs_per_cycle
    assert real.energy_pj == sum(real.energy_breakdown_pj.values())
    m = real.mapping
    assert real.compute_cycles == int(tiled_compute_cycles(arch.engine, 100, 70, 300, m.tile_m,
                                                           m.tile_n, m.tile_k))
    # every action's energy lands in its component: sum(count * unit energy) per component
    per = unit_energies(arch).per_action_pj()
    units = action_units(arch)
    for comp in ENERGY_COMPONENTS:
        expected = sum(real.actions[k] * per[k] for k in real.actions
                       if units[k]["component"] == comp)
        assert real.energy_breakdown_pj[comp] == pytest.approx(expected, rel=1e-12)


def test_bitslice_counts_slice_products():
    arch = kind_arch("bitslice")
    r = simulate_gemm(arch, Gemm(name="g", M=64, N=64, K=64, **fmts(arch)), memory="ideal")
    pairs = 4 * 3  # ceil(8/2) * ceil(6/2)
    assert r.actions["slice_multiply"] == r.actions["shift_add"] == r.macs * pairs
    assert action_units(arch)["slice_multiply"]["unit"] == "2x2-bit multiplies"


def test_lut_counts_table_reads_builds_and_shift_adds():
    arch = kind_arch("lut")
    M, N, K = 64, 64, 64
    r = simulate_gemm(arch, Gemm(name="g", M=M, N=N, K=K, **fmts(arch)), memory="ideal")
    reads = r.macs * 2 / 4  # w_bits / group per MAC
    assert r.actions["table_read"] == r.actions["shift_add"] == reads
    # a symmetric table of 4 activations: 2**3 + 4 - 2 = 10 additions, one table per row,
    # group and N fold (64 / 16 columns = 4 folds)
    assert r.actions["table_build"] == pytest.approx(M * K / 4 * 10 * 4)
    assert r.energy_breakdown_pj["mac_multiplier"] > 0


def test_bitplane_counts_plane_pairs_popcounts_and_recovery():
    arch = kind_arch("bitplane")
    r = simulate_gemm(arch, Gemm(name="g", M=64, N=64, K=64, **fmts(arch)), memory="ideal")
    pairs = 4 * 3
    assert r.actions["and_xnor"] == r.macs * pairs
    assert r.actions["popcount_add"] == pytest.approx(r.macs * pairs * (16 - 5) / 16)
    assert r.actions["shift_add"] == pytest.approx(r.macs * pairs / 16)


@pytest.mark.parametrize("kind", ["bitslice", "bitplane", "lut"])
def test_bit_serial_arithmetic_energy_grows_with_weight_bits(kind):
    arch = kind_arch(kind)
    energies = []
    for w in (2, 4, 8):
        a = dataclasses.replace(arch, engine=dataclasses.replace(arch.engine, w_bits=w))
        r = simulate_gemm(a, Gemm(name="g", M=32, N=32, K=64, **fmts(a)), memory="ideal")
        energies.append(r.energy_breakdown_pj["mac_multiplier"]
                        + r.energy_breakdown_pj["mac_adder"])
    assert energies == sorted(energies) and energies[0] < energies[-1]


@pytest.mark.parametrize(("kind", "granule"), [("systolic", 1), ("matrix2d", 1), ("bitslice", 1),
                                               ("cube", 8), ("addertree", 8), ("lut", 4),
                                               ("bitplane", 16)])
def test_stream_tiles_are_whole_beats(kind, granule):
    arch = kind_arch(kind)
    assert stream_granule(arch.engine) == granule
    gemm = Gemm(name="g", M=300, N=200, K=1000, **fmts(arch))
    cands = candidates(gemm, arch)
    j = DIMS.index(arch.engine.unrolling().stream)
    dim = (gemm.M, gemm.N, gemm.K)[j]
    assert np.all((cands.tiles[:, j] % granule == 0) | (cands.tiles[:, j] == dim))
