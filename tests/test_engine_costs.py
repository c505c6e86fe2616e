"""Each engine kind states its own costs: ``sim.engines.<kind>`` defines ``arith_actions`` and
``pe_area`` (typed on the kind's spec), and :mod:`sim.energy` prices every kind through
:func:`sim.engines.kind_cost` with no per-kind branch. A kind without them is an error that
names the kind and what to add."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic.dataclasses import dataclass

from hw.spec import (
    ArchSpec,
    EngineBase,
    Unrolling,
    engine_from_dict,
    engine_kinds,
    list_presets,
    load_arch,
)
from hw.spec.base import CONFIG
from sim import energy
from sim.engines import COST_FUNCTIONS, KindCost, kind_cost
from sim.engines.cost import ArithAction, PeArea, multiplier_arith_actions, multiplier_pe_area

ROOT = Path(__file__).resolve().parents[1]
KINDS = sorted(engine_kinds())


def _kind_presets() -> dict[str, ArchSpec]:
    """One engine preset per kind (GPU presets are timed by the GPU model)."""
    found: dict[str, ArchSpec] = {}
    for name in list_presets():
        arch = load_arch(name)
        if arch.gpu is None:
            found.setdefault(arch.engine.kind, arch)
    return found


PRESETS = _kind_presets()


# -- every kind states its costs, typed on its own spec ---------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_has_a_typed_cost_module(kind):
    cost = kind_cost(kind)
    assert isinstance(cost, KindCost) and cost.kind == kind
    module = importlib.import_module(f"sim.engines.{kind}")
    for name in COST_FUNCTIONS:
        hints = typing.get_type_hints(getattr(module, name))
        assert hints["spec"] is engine_kinds()[kind], name
        assert hints["tech"] is float
    assert typing.get_type_hints(module.pe_area)["return"] is PeArea
    assert typing.get_type_hints(module.arith_actions)["return"] == tuple[ArithAction, ...]


@pytest.mark.parametrize("kind", KINDS)
def test_every_kinds_costs_are_well_formed_and_priced_as_stated(kind):
    if kind not in PRESETS:
        pytest.skip(f"no engine preset of kind {kind!r}")
    arch = PRESETS[kind]
    table = energy.load_table(arch.energy_table)
    cost = kind_cost(kind)
    actions = cost.arith_actions(arch.engine, table, arch.tech_nm)
    assert actions and all(isinstance(x, ArithAction) for x in actions)
    assert len({x.name for x in actions}) == len(actions)
    units = energy.action_units(arch)
    for x in actions:
        assert x.component in ("mac_multiplier", "mac_adder")
        assert units[x.name] == {"component": x.component, "unit": x.unit}
        assert x.energy_pj > 0 and x.rule
        assert x.per_mac >= 0 and x.per_a_read >= 0 and x.per_mac + x.per_a_read > 0
    assert energy.arith_actions(arch) == actions
    area = cost.pe_area(arch.engine, table, arch.tech_nm)
    assert isinstance(area, PeArea) and isinstance(area.register_bits, int)
    assert area.multipliers_um2 >= 0 and area.adders_um2 > 0 and area.register_bits > 0
    assert dict(energy.pe_area(arch)) == {
        "pe_multipliers": area.multipliers_um2,
        "pe_adders": area.adders_um2,
        "pe_registers": area.register_bits * table.area_um2("register_bit", arch.tech_nm),
    }


# -- the figures did not change when the costs moved into the kinds' modules ------------------

#: Engine, node, ``{action: (pJ, per MAC, per A read)}`` and ``(pe_multipliers, pe_adders,
#: pe_registers)`` as sim.energy computed them before each kind's costs moved into its module
#: (horowitz45 table), to the last bit.
GOLDEN: list[tuple[dict[str, Any], float, dict[str, tuple[float, float, float]],
                   tuple[float, float, float]]] = [
    ({"kind": "systolic", "rows": 8, "cols": 8, "dataflow": "os"}, 45.0,
     {"multiply": (0.2, 1.0, 0.0),
      "accumulate": (0.10000000000000002, 1.0, 0.0)},
     (18048.0, 8768.0, 23250.24)),
    ({"kind": "systolic", "rows": 16, "cols": 4, "dataflow": "ws", "a_bits": 4, "w_bits": 6,
      "acc_bits": 24}, 7.0,
     {"multiply": (0.01179843826735508, 1.0, 0.0),
      "accumulate": (0.012116533372047752, 1.0, 0.0)},
     (179.25491331343963, 160.77701535568136, 398.50719999999995)),
    ({"kind": "cube", "m": 4, "n": 4, "k": 8}, 45.0,
     {"multiply": (0.2, 1.0, 0.0),
      "accumulate": (0.10000000000000002, 1.0, 0.0)},
     (36096.0, 17536.0, 7750.080000000001)),
    ({"kind": "cube", "m": 8, "n": 2, "k": 16, "a_bits": 6, "w_bits": 3}, 7.0,
     {"multiply": (0.008878026800176646, 1.0, 0.0),
      "accumulate": (0.015555555555555557, 1.0, 0.0)},
     (552.206495946817, 848.6558024691359, 251.99719999999996)),
    ({"kind": "addertree", "lanes": 8, "k": 8, "dataflow": "os"}, 45.0,
     {"multiply": (0.2, 1.0, 0.0),
      "accumulate": (0.10000000000000002, 1.0, 0.0)},
     (18048.0, 8768.0, 6296.9400000000005)),
    ({"kind": "addertree", "lanes": 16, "k": 4, "dataflow": "ws", "a_bits": 4, "w_bits": 4,
      "acc_bits": 20}, 7.0,
     {"multiply": (0.007902230124456299, 1.0, 0.0),
      "accumulate": (0.010342150009031527, 1.0, 0.0)},
     (124.05123689197764, 134.86181543110257, 108.41739999999999)),
    ({"kind": "matrix2d", "rows": 8, "cols": 8}, 45.0,
     {"multiply": (0.2, 1.0, 0.0),
      "accumulate": (0.10000000000000002, 1.0, 0.0)},
     (18048.0, 8768.0, 16468.920000000002)),
    ({"kind": "matrix2d", "rows": 4, "cols": 16, "a_bits": 3, "w_bits": 7}, 7.0,
     {"multiply": (0.010339430988902077, 1.0, 0.0),
      "accumulate": (0.015555555555555557, 1.0, 0.0)},
     (158.78930995789955, 212.16395061728397, 397.77464999999995)),
    ({"kind": "bitslice", "rows": 8, "cols": 8, "slice_bits": 2, "a_bits": 8, "w_bits": 6}, 45.0,
     {"slice_multiply": (0.012903225806451613, 12.0, 0.0),
      "shift_add": (0.10000000000000002, 12.0, 0.0)},
     (1456.23347639485, 8768.0, 16347.825000000003)),
    ({"kind": "bitslice", "rows": 4, "cols": 16, "slice_bits": 3, "a_bits": 7, "w_bits": 5}, 7.0,
     {"slice_multiply": (0.004474386821204638, 6.0, 0.0),
      "shift_add": (0.015555555555555557, 6.0, 0.0)},
     (73.57698743565086, 212.16395061728397, 394.84444999999994)),
    ({"kind": "lut", "rows": 8, "cols": 16, "group": 4, "symmetric": True, "w_bits": 2}, 45.0,
     {"table_read": (0.10124999999999998, 0.5, 0.0),
      "table_build": (0.03641547119817101, 0.0, 2.5),
      "shift_add": (0.10270849623391552, 0.5, 0.0)},
     (0.0, 21107.23910887203, 38750.4)),
    ({"kind": "lut", "rows": 4, "cols": 8, "group": 3, "symmetric": False, "a_bits": 6,
      "w_bits": 4}, 7.0,
     {"table_read": (0.012599999999999998, 1.3333333333333333, 0.0),
      "table_build": (0.004666666666666666, 0.0, 1.3333333333333333),
      "shift_add": (0.015555555555555557, 1.3333333333333333, 0.0)},
     (0.0, 120.01975308641977, 265.18309999999997)),
    ({"kind": "bitplane", "rows": 8, "cols": 8, "depth": 16, "a_bits": 4, "w_bits": 3}, 45.0,
     {"and_xnor": (0.00327742263226298, 12.0, 0.0),
      "popcount_add": (0.004929503017546494, 8.25, 0.0),
      "shift_add": (0.10000000000000002, 0.75, 0.0)},
     (1089.536, 12181.878498590871, 22281.480000000003)),
    ({"kind": "bitplane", "rows": 4, "cols": 8, "depth": 31, "encoding": "bipolar", "a_bits": 3,
      "w_bits": 5}, 7.0,
     {"and_xnor": (0.0005098212983520191, 15.0, 0.0),
      "popcount_add": (0.0007668115805072324, 12.580645161290322, 0.0),
      "shift_add": (0.015555555555555557, 0.4838709677419355, 0.0)},
     (25.540203456790124, 203.70893843332823, 482.75044999999994)),
]


@pytest.mark.parametrize(("engine", "tech", "actions", "area"), GOLDEN,
                         ids=[f"{e['kind']}-{t:g}nm" for e, t, _, _ in GOLDEN])
def test_figures_are_those_of_the_per_kind_branches_they_replace(engine, tech, actions, area):
    if engine["kind"] not in engine_kinds():
        pytest.skip(f"engine kind {engine['kind']!r} is not in this tree")
    arch = dataclasses.replace(load_arch("systolic"), engine=engine_from_dict(engine),
                               tech_nm=tech, energy_table="horowitz45")
    got = {x.name: (x.energy_pj, x.per_mac, x.per_a_read) for x in energy.arith_actions(arch)}
    assert got == actions
    assert tuple(energy.pe_area(arch).values()) == area


# -- a kind without a cost module --------------------------------------------------------------


@dataclass(config=CONFIG, kw_only=True)
class FakeSpec(EngineBase):
    """A made-up kind: ``p x q`` PEs over M and N, K streamed one element per cycle. ``kind``
    has no default, so the class stays out of :func:`hw.spec.engine_kinds`."""

    kind: Literal["fake"]
    p: int = 8
    q: int = 4

    @property
    def macs_per_cycle(self) -> int:
        return self.p * self.q

    def fold_cycles(self, stream_len: int) -> int:
        if stream_len < 1:
            raise ValueError(f"stream_len must be >= 1, got {stream_len!r}")
        return stream_len + self.p

    def unrolling(self) -> Unrolling:
        return Unrolling(m=self.p, n=self.q, k=None)

    def timing_contract(self) -> dict[str, Any]:
        return {"fold_cycles": "K + p"}

    @property
    def name(self) -> str:
        return f"fake_{self.p}x{self.q}"


def fake_arch(p: int) -> ArchSpec:
    """``p`` differs per test: sim.energy caches its results per architecture."""
    return dataclasses.replace(load_arch("systolic"), engine=FakeSpec(kind="fake", p=p))


def fake_cost_module(*functions: str) -> types.ModuleType:
    """A stand-in for sim/engines/fake.py defining ``functions`` (the multiplier kinds')."""
    module = types.ModuleType("sim.engines.fake")
    shared = {"arith_actions": multiplier_arith_actions, "pe_area": multiplier_pe_area}
    for f in functions:
        setattr(module, f, shared[f])
    return module


def test_a_kind_without_a_cost_module_is_an_error_naming_what_to_add():
    assert "fake" not in engine_kinds()
    arch = fake_arch(3)
    msg = (r"^engine kind 'fake' has no cost model: add sim/engines/fake\.py defining "
           r"arith_actions\(spec, table, tech\) -> tuple\[ArithAction, \.\.\.\] and "
           r"pe_area\(spec, table, tech\) -> PeArea \(see docs/adding_an_engine_kind\.md\)$")
    with pytest.raises(NotImplementedError, match=msg):
        kind_cost("fake")
    for price in (energy.arith_actions, energy.pe_area, energy.area_breakdown):
        with pytest.raises(NotImplementedError, match=msg):
            price(arch)


@pytest.mark.parametrize("missing", COST_FUNCTIONS)
def test_a_cost_module_must_define_both_functions(monkeypatch, missing):
    (present,) = (f for f in COST_FUNCTIONS if f != missing)
    monkeypatch.setitem(sys.modules, "sim.engines.fake", fake_cost_module(present))
    with pytest.raises(NotImplementedError,
                       match=rf"^engine kind 'fake': module sim\.engines\.fake does not define "
                       rf"{missing}\(spec, table, tech\) -> .*; add it \(see docs/") as err:
        kind_cost("fake")
    assert present not in str(err.value)
    monkeypatch.setitem(sys.modules, "sim.engines.fake", fake_cost_module())
    with pytest.raises(NotImplementedError, match=r"does not define arith_actions.* and pe_area"):
        kind_cost("fake")


def test_a_kind_is_priced_by_the_cost_module_it_adds(monkeypatch):
    monkeypatch.setitem(sys.modules, "sim.engines.fake", fake_cost_module(*COST_FUNCTIONS))
    arch = fake_arch(5)
    assert [x.name for x in energy.arith_actions(arch)] == ["multiply", "accumulate"]
    area = energy.pe_area(arch)
    table = energy.load_table(arch.energy_table)
    # 5 x 4 PEs, K streamed one element per beat: 20 multipliers and 20 adders
    assert area["pe_multipliers"] == pytest.approx(20 * table.area_um2("int_mult_8b", 45.0))
    assert area["pe_adders"] == pytest.approx(20 * table.area_um2("int_add_32b", 45.0))
    # one beat's A (5 x 8 bits) and W (4 x 8 bits) and 5 x 4 accumulators of 32 bits
    assert area["pe_registers"] == pytest.approx((40 + 32 + 640)
                                                 * table.area_um2("register_bit", 45.0))


def test_the_shared_pricing_module_is_no_kind():
    with pytest.raises(NotImplementedError, match=r"^engine kind 'cost' cannot have a cost"):
        kind_cost("cost")


# -- the layering: no per-kind knowledge in sim.energy, no import cycle -----------------------


def _code_strings(tree: ast.AST) -> set[str]:
    """String constants of ``tree`` other than docstrings."""
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef)
            and n.body and isinstance(n.body[0], ast.Expr)
            and isinstance(n.body[0].value, ast.Constant)}
    return {n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs}


def test_sim_energy_names_no_engine_kind():
    tree = ast.parse((ROOT / "sim" / "energy.py").read_text())
    assert _code_strings(tree) & set(engine_kinds()) == set()


def test_cost_models_read_spec_fields_without_defaults():
    for path in [ROOT / "sim" / "energy.py", *sorted((ROOT / "sim" / "engines").glob("*.py"))]:
        tree = ast.parse(path.read_text())
        bad = [n.lineno for n in ast.walk(tree)
               if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
               and n.func.id in ("getattr", "hasattr") and n.args
               and isinstance(n.args[0], ast.Name) and n.args[0].id == "spec"]
        assert bad == [], f"{path.name}: getattr on a spec at lines {bad}"


def test_the_cost_modules_do_not_import_sim_energy():
    for path in sorted((ROOT / "sim" / "engines").glob("*.py")):
        tree = ast.parse(path.read_text())
        mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        mods |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not any(m and (m == "sim.energy" or m.startswith("sim.energy.")) for m in mods), \
            path.name
