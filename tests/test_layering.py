"""Imports follow the layering of shared/DESIGN.md: models <- hw <- mapping <- sim."""

from __future__ import annotations

import ast
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


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports(layer: str) -> None:
    files = sorted((ROOT / layer).rglob("*.py"))
    assert files
    bad = {str(f.relative_to(ROOT)): sorted(_imports(f) - ALLOWED[layer] - {layer}) for f in files}
    assert {k: v for k, v in bad.items() if v} == {}


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
