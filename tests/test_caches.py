"""One registry owns every memo table (:mod:`models.caches`): clearing it clears everything.

Every cached function of ``hw``, ``mapping``, ``models`` and ``sim`` is declared with
``models.caches.memo``; ``sim.clear_caches`` (and the older public ``sim.gemm.clear_caches``
and ``mapping.clear_caches``) empty them all, and no module calls ``functools.lru_cache`` or
``functools.cache`` itself.
"""

from __future__ import annotations

import ast
import functools
import importlib
from pathlib import Path

import pytest

import mapping
import sim
import sim.gemm
from hw.spec import load_arch
from models import caches
from models.llm import load_model, lower
from models.ops import Attention, Gemm

ROOT = Path(__file__).resolve().parents[1]
#: The packages whose caches go through the registry.
PACKAGES = ("hw", "mapping", "models", "sim")
#: The one module allowed to call functools' caches: the registry itself.
REGISTRY_FILE = "models/caches.py"
#: functools' memoizing decorators, which only the registry may call.
FUNCTOOLS_CACHES = frozenset({"lru_cache", "cache"})


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _source_files() -> list[Path]:
    return [f for p in PACKAGES for f in sorted((ROOT / p).rglob("*.py"))]


def _is_memo(decorator: ast.expr) -> bool:
    """``@memo(...)`` or ``@<module>.memo(...)``."""
    if not isinstance(decorator, ast.Call):
        return False
    f = decorator.func
    return (isinstance(f, ast.Name) and f.id == "memo") or (
        isinstance(f, ast.Attribute) and f.attr == "memo")


def _memoized(path: Path) -> set[tuple[str, str]]:
    """``(module, qualname)`` of every function of ``path`` declared with ``@memo``:
    module-level functions and methods (``memo`` refuses nested functions)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    scopes: list[tuple[str, list[ast.stmt]]] = [("", tree.body)]
    scopes += [(f"{n.name}.", n.body) for n in tree.body if isinstance(n, ast.ClassDef)]
    for prefix, body in scopes:
        for node in body:
            if (isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                    and any(_is_memo(d) for d in node.decorator_list)):
                found.add((_module_name(path), prefix + node.name))
    return found


@functools.cache
def _declared() -> frozenset[tuple[str, str]]:
    """``(module, qualname)`` of every cache declared in the source of our packages."""
    return frozenset().union(*map(_memoized, _source_files()))


def _functools_cache_uses(source: str) -> list[str]:
    """Every use of ``functools.lru_cache`` / ``functools.cache`` in ``source`` (through
    ``import functools [as x]`` or ``from functools import ...``), as ``line: text``."""
    tree = ast.parse(source)
    aliases = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.Import)
               for a in n.names if a.name == "functools"}
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "functools":
            hits += [f"{node.lineno}: from functools import {a.name}" for a in node.names
                     if a.name in FUNCTOOLS_CACHES or a.name == "*"]
        elif (isinstance(node, ast.Attribute) and node.attr in FUNCTOOLS_CACHES
              and isinstance(node.value, ast.Name) and node.value.id in aliases):
            hits.append(f"{node.lineno}: {node.value.id}.{node.attr}")
    return hits


def _registered() -> dict[str, functools._CacheInfo]:
    """The registry's caches of our packages, after importing every module that declares one
    (checked against the source: one registered cache per ``@memo``)."""
    declared = _declared()
    for module in sorted({m for m, _ in declared}):
        importlib.import_module(module)
    info = {k: v for k, v in sim.cache_info().items() if k.split(".")[0] in PACKAGES}
    assert set(info) == {f"{m}.{q}" for m, q in declared}
    return info


# -- the static check: no cache outside the registry ----------------------------------------


@pytest.mark.parametrize(("source", "hits"), [
    ("import functools\n@functools.lru_cache(maxsize=8)\ndef f(x): ...",
     ["2: functools.lru_cache"]),
    ("import functools as ft\n@ft.cache\ndef f(x): ...", ["2: ft.cache"]),
    ("from functools import cache, partial", ["1: from functools import cache"]),
    ("from functools import lru_cache as lc", ["1: from functools import lru_cache"]),
    ("from models.caches import memo\n@memo(maxsize=8)\ndef f(x): ...", []),
    ("import functools\ng = functools.partial(print, 1)", []),
])
def test_the_source_check_finds_functools_caches(source: str, hits: list[str]) -> None:
    assert _functools_cache_uses(source) == hits


def test_no_module_caches_outside_the_registry() -> None:
    bad = {}
    for f in _source_files():
        rel = str(f.relative_to(ROOT))
        if rel != REGISTRY_FILE and (uses := _functools_cache_uses(f.read_text())):
            bad[rel] = uses
    assert bad == {}, "declare caches with models.caches.memo, so that clear_caches sees them"


# -- the registry -----------------------------------------------------------------------------


def test_every_cache_is_a_bare_lru_cache_wrapper() -> None:
    """memo returns functools' own wrapper: a cached call costs what lru_cache's costs."""
    bare = type(functools.lru_cache(maxsize=1)(abs))
    assert len(_registered()) >= 40
    for module, qualname in _declared():
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        assert type(obj) is bare, f"{module}.{qualname}"


def test_clearing_empties_every_cache() -> None:
    """A GEMM, an attention operator and a small model fill every cache of the library (the
    model also on a runtime-precision engine, with ideal memory and on a GPU preset, fused and
    eager, the ``tpe gpu`` preset list, and a block-format quantization); ``sim.clear_caches()``
    empties every one."""
    from hw.spec import engine_kinds
    from sim.cli.gpu import gpu_presets
    from sim.gemm import simulate_gemm
    from sim.model import simulate_model
    from sim.system import simulate_op

    assert set(_registered())  # every module with a cache imported
    sim.clear_caches()
    arch = load_arch("systolic")
    simulate_gemm(arch, Gemm(name="g", M=64, N=128, K=256))
    simulate_op(arch, Attention(name="a", batch=1, heads=8, kv_heads=8, q_len=64, kv_len=64,
                                qk_dim=64, v_dim=64))
    ops = lower(load_model("llama-2-7b"), phase="decode", batch=1, seq=128, quant="w8a8")
    for preset, memory in (("systolic", "real"), ("systolic", "ideal"), ("bitslice", "real"),
                           ("h100", "real")):
        simulate_model(load_arch(preset), ops, phase="decode", batch=1, seq=128, memory=memory)
    eager = lower(load_model("llama-2-7b"), phase="decode", batch=1, seq=128, quant="bf16",
                  runtime="eager")
    simulate_model(load_arch("h100"), eager, phase="decode", batch=1, seq=128)
    assert gpu_presets()
    assert "systolic" in engine_kinds()  # every kind's spec (a preset loads its own kind only)
    from models.mx import dequantize, quantize

    assert dequantize(quantize([[1.0] * 16], "nvfp4")).tolist() == [[1.0] * 16]
    filled = _registered()
    assert [k for k, v in filled.items() if v.currsize == 0] == []
    sim.clear_caches()
    assert {k: v.currsize for k, v in _registered().items() if v.currsize} == {}


def test_the_older_public_clear_functions_are_the_registry() -> None:
    assert sim.clear_caches is caches.clear_caches
    assert sim.gemm.clear_caches is caches.clear_caches
    assert mapping.clear_caches is caches.clear_caches


def test_memo_registers_clears_and_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(caches, "_REGISTRY", {})  # leave the library's registry alone
    calls = []

    def square(x: int) -> int:
        calls.append(x)
        return x * x

    square.__qualname__ = "square"  # as if defined at module level
    cached = caches.memo(maxsize=2)(square)
    assert [cached(3), cached(3), cached(4)] == [9, 9, 16]
    assert calls == [3, 4]
    name = f"{__name__}.square"
    assert caches.cache_info() == {name: cached.cache_info()}
    assert tuple(caches.cache_info()[name]) == (1, 2, 2, 2)
    caches.clear_caches()
    assert caches.cache_info()[name].currsize == 0
    assert cached(3) == 9
    assert calls == [3, 4, 3]


def test_memo_refuses_a_nested_function_and_a_bad_size() -> None:
    def inner(x: int) -> int:
        return x

    with pytest.raises(ValueError, match=r"^memo: test_memo_refuses_a_nested_function_and_a_"
                                         r"bad_size\.<locals>\.inner is defined inside a "
                                         r"function; memoize module-level functions only "):
        caches.memo(maxsize=8)(inner)
    with pytest.raises(ValueError, match=r"^maxsize: must be >= 1 or None \(got 0\)$"):
        caches.memo(maxsize=0)
    with pytest.raises(TypeError, match=r"^maxsize: expected an int or None, got '8'$"):
        caches.memo(maxsize="8")  # type: ignore[arg-type]
