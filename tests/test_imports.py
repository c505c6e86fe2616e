"""What a command loads: ``tpe sim gemm`` on an engine preset imports the simulator's GEMM path
and nothing else (no plotting, Parquet, torch, Amaranth, attention, GPU model, other engine
kinds, other commands), ``tpe --help`` imports neither numpy nor pydantic, and the shortcuts
that make that so give the same answers as the general code (benchmarks/cli_speed.py times
the result; these tests time nothing)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hw.spec import engine_kind, engine_kinds, load_arch
from mapping.arrays import sorted_unique
from sim.cli import COMMAND_MODULES, _Parser

ROOT = Path(__file__).resolve().parents[1]

#: Modules ``tpe sim gemm`` on an engine (non-GPU) preset must not import, with the reason.
NOT_FOR_A_GEMM = {
    "matplotlib": "plots (tpe sim model --plot, reports)",
    "pyarrow": "sweep tables",
    "pandas": "sweep tables",
    "torch": "GPU measurements",
    "amaranth": "RTL generation",
    "numpy.ma": "np.unique's masked-array check (mapping.arrays.sorted_unique instead)",
    "sim.attention": "attention operators",
    "mapping.attention": "attention operators",
    "hw.spec.tile": "the tile's commands (tpe gen tile, tpe verify, tpe demo)",
    "sim.gpu_model": "GPU presets",
    "sim.model": "tpe sim model",
    "models.llm": "tpe sim model",
    "sim.report": "tpe demo",
    "sim.sweep": "tpe sweep",
    "sim.gpu": "tpe gpu",
    "sim.verify": "tpe verify",
    "hw.emit": "tpe gen",
    "sim.cli.demo": "another command",
    "sim.cli.gpu": "another command",
    "sim.cli.hw": "another command",
    "sim.cli.sweep": "another command",
}


def loaded_by(argv: list[str]) -> tuple[int, set[str]]:
    """Exit code of ``tpe argv`` run in a fresh interpreter, and every module it imported."""
    code = (
        "import contextlib, io, json, sys\n"
        "from sim.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        rc = main(sys.argv[1:])\n"
        "    except SystemExit as exc:\n"
        "        rc = exc.code\n"
        "print(json.dumps({'rc': rc, 'modules': sorted(sys.modules)}))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    out = json.loads(proc.stdout.splitlines()[-1])
    return out["rc"], set(out["modules"])


def _under(modules: set[str], name: str) -> list[str]:
    return sorted(m for m in modules if m == name or m.startswith(name + "."))


@pytest.mark.parametrize("preset", ["systolic", "lut"])
def test_a_gemm_loads_its_own_path_only(preset: str) -> None:
    kind = load_arch(preset).engine.kind
    rc, modules = loaded_by(["sim", "gemm", "--arch", preset, "--M", "64", "--N", "48",
                             "--K", "32", "--json"])
    assert rc == 0
    assert {"numpy", "pydantic", "hw.spec", "mapping", "sim.system",
            f"hw.spec.{kind}", f"sim.engines.{kind}"} <= modules
    loaded = {name: _under(modules, name) for name in NOT_FOR_A_GEMM}
    assert {name: found for name, found in loaded.items() if found} == {}
    # hw.spec itself exports SystolicSpec; no other kind's spec or cost model is imported
    others = set(engine_kinds()) - {kind, "systolic"}
    assert sorted(m for k in others for m in (f"hw.spec.{k}", f"sim.engines.{k}")
                  if m in modules) == []


def test_the_harness_sees_what_a_command_imports_lazily() -> None:
    """An attention layer does load sim.attention, imported inside the function that needs
    it: what the test above finds missing is really not imported."""
    rc, modules = loaded_by(["sim", "attention", "--arch", "systolic", "--batch", "1",
                             "--heads", "2", "--kv-heads", "2", "--q-len", "16", "--kv-len",
                             "16", "--head-dim", "16", "--json"])
    assert rc == 0
    assert "sim.attention" in modules


def test_help_loads_neither_numpy_nor_pydantic() -> None:
    rc, modules = loaded_by(["--help"])
    assert rc == 0
    assert {f"sim.cli.{m}" for m in COMMAND_MODULES.values()} <= modules
    assert [m for m in ("numpy", "pydantic", "hw.spec", "mapping") if m in modules] == []


def _registered(module: str) -> list[str]:
    """The commands ``sim.cli.<module>.register`` adds, in order."""
    parser = _Parser()
    sub = parser.add_subparsers(parser_class=_Parser)
    importlib.import_module(f"sim.cli.{module}").register(sub)
    return list(sub.choices)


def test_command_modules_name_what_each_module_registers() -> None:
    """sim.cli.COMMAND_MODULES, which lets ``tpe COMMAND`` import one module, says which
    module registers each command: the commands of each module, in order."""
    by_module: dict[str, list[str]] = {}
    for command, module in COMMAND_MODULES.items():
        by_module.setdefault(module, []).append(command)
    assert {m: _registered(m) for m in by_module} == by_module
    for path in sorted((ROOT / "sim" / "cli").glob("*.py")):
        text = path.read_text()
        if "def register(" in text:
            assert path.stem in by_module, f"sim/cli/{path.name}: add its commands"


def test_engine_kind_is_engine_kinds_entry() -> None:
    """engine_kind imports hw.spec.<kind> alone; each kind lives there, so it finds the class
    engine_kinds lists, and None for a name that is no kind."""
    kinds = engine_kinds()
    assert kinds
    for kind, cls in kinds.items():
        assert cls.__module__ == f"hw.spec.{kind}", f"{kind}: name its module hw.spec.{kind}"
        assert engine_kind(kind) is cls
    for name in ("nope", "base", "__init__", "Systolic", "sys tolic"):
        assert engine_kind(name) is None
    assert "hw.spec.__init__" not in sys.modules


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8])
@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (257,), (5, 6)])
def test_sorted_unique_is_np_unique(dtype: type, shape: tuple[int, ...]) -> None:
    values = np.random.default_rng(sum(shape)).integers(0, 40, size=shape).astype(dtype)
    got, want = sorted_unique(values), np.unique(values)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
