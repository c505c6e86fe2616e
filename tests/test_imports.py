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
    "importlib.metadata": "pydantic's plugin loader, plugins off (sim.cli._no_pydantic_plugins)",
    "email": "importlib.metadata",
    "zipfile": "importlib.metadata",
    "tempfile": "importlib.metadata",
    "pkgutil": "every engine kind's module (hw.spec.engine_kinds; a preset needs its own)",
    "shutil": "the terminal's width, for help only (sim.cli._Formatter)",
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


def test_pydantic_takes_get_plugins_alone_from_its_loader() -> None:
    """sim.cli._no_pydantic_plugins replaces pydantic's plugin loader with one that has
    ``get_plugins`` alone: pydantic's modules take nothing else from it, and with plugins off
    pydantic's own loader answers as the replacement does (no plugins)."""
    import ast

    import pydantic

    from sim.cli import PYDANTIC_PLUGIN_LOADER, PYDANTIC_PLUGINS_OFF, _no_plugins

    package = Path(pydantic.__file__).parent
    taken: dict[str, list[str]] = {}
    for path in sorted(package.rglob("*.py")):
        if "v1" in path.relative_to(package).parts:
            continue
        module = ".".join(("pydantic", *path.relative_to(package).with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                # relative to the module's package (a package's __init__ is its own)
                base = module.rsplit(".", node.level)[0] if node.level else ""
                target = ".".join(p for p in (base, node.module) if p)
                if target == PYDANTIC_PLUGIN_LOADER:
                    taken[module] = [a.name for a in node.names]
                assert all(f"{target}.{a.name}" != PYDANTIC_PLUGIN_LOADER
                           for a in node.names), f"{module} imports the loader module"
            elif isinstance(node, ast.Import):
                assert all(a.name != PYDANTIC_PLUGIN_LOADER for a in node.names), module
    assert taken == {"pydantic.plugin._schema_validator": ["get_plugins"]}
    for off in PYDANTIC_PLUGINS_OFF:
        code = (f"import {PYDANTIC_PLUGIN_LOADER} as loader\n"
                "print(repr(tuple(loader.get_plugins())))\n")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env={**os.environ, "PYDANTIC_DISABLE_PLUGINS": off},
                              timeout=120, check=True)
        assert proc.stdout.strip() == repr(_no_plugins())


def test_the_plugin_loader_is_replaced_only_with_plugins_off() -> None:
    """A user who turns pydantic's plugins on keeps pydantic's own loader."""
    code = ("import sys\n"
            "from sim.cli import main\n"
            "rc = main(['sim', 'gemm', '--arch', 'systolic', '--M', '8', '--N', '8', '--K', '8',"
            " '--json'])\n"
            "print(rc, getattr(sys.modules['pydantic.plugin._loader'], '__file__', None))\n")
    for value, replaced in (("__all__", True), ("", False), ("some_plugin", False)):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYDANTIC_DISABLE_PLUGINS": value}
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120, check=True)
        rc, path = proc.stdout.splitlines()[-1].split(" ", 1)
        assert (rc, path == "None") == ("0", replaced), value


def test_the_quant_help_is_made_when_help_is_printed() -> None:
    """--quant's help lists the schemes of the scheme table, which ``tpe sim gemm`` reads only
    to print its help (sim.cli.LazyHelp): a GEMM that prints none leaves it unread."""
    from models.quant import named_schemes

    code = ("import contextlib, io, sys\n"
            "import models.quant\n"
            "from sim.cli import main\n"
            "out = io.StringIO()\n"
            "with contextlib.redirect_stdout(out):\n"
            "    try:\n"
            "        main(sys.argv[1:])\n"
            "    except SystemExit:\n"
            "        pass\n"
            "print(models.quant._named.cache_info().currsize)\n"
            "print(' '.join(out.getvalue().split()))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}

    def run(*argv: str) -> tuple[int, str]:
        proc = subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120, check=True)
        read, text = proc.stdout.splitlines()[-2:]
        return int(read), text

    assert run("sim", "gemm", "--arch", "systolic", "--M", "8", "--N", "8", "--K", "8",
               "--json")[0] == 0
    for command in ("gemm", "model"):
        read, text = run("sim", command, "--help")
        assert read == 1
        listed = text.split("or one of: ", 1)[1].split("; or wNaM", 1)[0]
        assert listed.split(", ") == named_schemes(), command


@pytest.mark.parametrize(("before", "call", "want"), [
    ("", "main()", "True True"),                  # the process is the command's: frozen
    ("", "main(sys.argv[1:])", "True False"),     # a caller's process: its collector as it was
    ("gc.disable()", "main()", "False False"),    # a collector turned off stays off
])
def test_start_up_objects_are_frozen_in_a_process_of_its_own(before: str, call: str,
                                                             want: str) -> None:
    code = ("import contextlib, gc, io, sys\n"
            "from sim.cli import main\n"
            f"{before}\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    rc = {call}\n"
            "print(rc, gc.isenabled(), gc.get_freeze_count() > 0)\n")
    argv = ["sim", "gemm", "--arch", "systolic", "--M", "8", "--N", "8", "--K", "8", "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    assert proc.stdout.splitlines()[-1] == f"0 {want}"


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
