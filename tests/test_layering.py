"""Imports follow the layering of the design: models <- hw <- mapping <- sim, and inside sim a
numpy-only cost core that imports none of its clients."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"hw", "sim", "mapping", "models"}
#: Which of our packages each layer may import (besides itself).
ALLOWED = {
    "models": set(),
    "hw": {"models"},  # number formats only
    "mapping": {"hw", "models"},
    "sim": {"hw", "mapping", "models"},
}
#: The clients of the cost core, each a subpackage of sim.
CLIENTS = ("sim.cli", "sim.gpu", "sim.report", "sim.sweep", "sim.verify")
#: Third-party packages the cost core may import (numpy, pydantic through hw.spec, stdlib).
CORE_THIRD_PARTY = {"numpy"}
#: Exception classes defined outside sim/errors.py, with the reason.
ERRORS_ELSEWHERE = {
    # runs alone on a GPU machine that has torch but not TPEForge's dependencies
    "sim/gpu/measure.py": {"MeasureError"},
}


def _modules(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names; relative imports are not used)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def _imports(path: Path) -> set[str]:
    return {m.split(".")[0] for m in _modules(path)} & OURS


def _core_files() -> list[Path]:
    clients = {c.split(".")[1] for c in CLIENTS}
    return [f for f in sorted((ROOT / "sim").rglob("*.py"))
            if f.relative_to(ROOT / "sim").parts[0] not in clients]


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports(layer: str) -> None:
    files = sorted((ROOT / layer).rglob("*.py"))
    assert files
    bad = {str(f.relative_to(ROOT)): sorted(_imports(f) - ALLOWED[layer] - {layer}) for f in files}
    assert {k: v for k, v in bad.items() if v} == {}


def test_mapping_never_imports_sim() -> None:
    """The searches get their costs as parameters: no module of mapping imports sim, neither
    itself (any import statement, module level or inside a function) nor through the layers
    it does import (every mapping module loaded in a fresh interpreter leaves no sim module)."""
    direct = {str(f.relative_to(ROOT)): sorted(m for m in _modules(f) if m.split(".")[0] == "sim")
              for f in sorted((ROOT / "mapping").rglob("*.py"))}
    assert len(direct) >= 4 and {k: v for k, v in direct.items() if v} == {}
    code = ("import importlib, pkgutil, sys, mapping\n"
            "for m in pkgutil.walk_packages(mapping.__path__, 'mapping.'):\n"
            "    importlib.import_module(m.name)\n"
            "print(sorted(m for m in sys.modules if m == 'sim' or m.startswith('sim.')))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_the_core_imports_none_of_its_clients() -> None:
    files = _core_files()
    assert {f.name for f in files} >= {"gemm.py", "system.py", "memory.py", "energy.py"}
    bad = {}
    for f in files:
        hits = sorted(m for m in _modules(f) if any(m == c or m.startswith(c + ".")
                                                    for c in CLIENTS))
        if hits:
            bad[str(f.relative_to(ROOT))] = hits
    assert bad == {}


def test_the_core_is_numpy_only() -> None:
    """Besides the standard library and our own layers, the core imports numpy alone."""
    import sys

    bad = {}
    for f in _core_files():
        tops = {m.split(".")[0] for m in _modules(f)}
        extra = tops - OURS - CORE_THIRD_PARTY - set(sys.stdlib_module_names) - {"__future__"}
        if extra:
            bad[str(f.relative_to(ROOT))] = sorted(extra)
    assert bad == {}


def test_no_library_module_imports_the_command_line() -> None:
    bad = []
    for layer in ALLOWED:
        for f in (ROOT / layer).rglob("*.py"):
            if f.is_relative_to(ROOT / "sim" / "cli"):
                continue
            if any(m == "sim.cli" or m.startswith("sim.cli.") for m in _modules(f)):
                bad.append(str(f.relative_to(ROOT)))
    assert bad == []


def test_sim_errors_are_defined_in_one_module() -> None:
    bad = {}
    for f in sorted((ROOT / "sim").rglob("*.py")):
        rel = str(f.relative_to(ROOT))
        if rel == "sim/errors.py":
            continue
        tree = ast.parse(f.read_text())
        errors = {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)
                  and any(isinstance(b, ast.Name) and b.id.endswith(("Error", "Exception"))
                          for b in n.bases)}
        errors -= ERRORS_ELSEWHERE.get(rel, set())
        if errors:
            bad[rel] = sorted(errors)
    assert bad == {}


def test_spec_has_no_amaranth() -> None:
    for f in (ROOT / "hw" / "spec").rglob("*.py"):
        tree = ast.parse(f.read_text())
        mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        mods |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not any(m and m.startswith("amaranth") for m in mods), f


def test_torch_is_imported_lazily() -> None:
    """torch is an optional extra: no module of ours imports it at module level."""
    for layer in ALLOWED:
        for f in (ROOT / layer).rglob("*.py"):
            tree = ast.parse(f.read_text())
            top = set()
            for node in tree.body:
                if isinstance(node, ast.Import):
                    top |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module:
                    top.add(node.module.split(".")[0])
            assert not top & {"torch", "triton"}, f
