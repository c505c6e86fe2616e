"""Every memo table of TPEForge, owned by one registry, so that one call clears them all.

A cached function is declared with :func:`memo` instead of :func:`functools.lru_cache`::

    @memo(maxsize=256)
    def unit_energies(arch: ArchSpec) -> UnitEnergies: ...

:func:`memo` builds the ``functools.lru_cache`` wrapper, records it under the function's
``module.qualname`` and returns that wrapper itself: a cached call costs exactly what a bare
``lru_cache`` call costs (no extra Python frame). :func:`clear_caches` empties every recorded
table, results and parsed data files alike (energy tables, format and scheme tables, presets),
so the next call runs cold; :func:`cache_info` reports hits, misses and size per table.
``tests/test_caches.py`` checks that no module of ``hw``, ``mapping``, ``models`` or ``sim``
calls ``functools.lru_cache`` or ``functools.cache`` directly.

This module lives in ``models`` because ``models`` is the lowest layer: ``hw.spec``, ``mapping``
and ``sim`` may all import it, and it imports nothing else of TPEForge
(``tests/test_layering.py``), so every cached package can register here without an import
cycle.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["cache_info", "clear_caches", "memo"]

_T = TypeVar("_T")

#: Every registered cache by ``module.qualname`` (a module imported again replaces its own).
_REGISTRY: dict[str, functools._lru_cache_wrapper[Any]] = {}


def memo(*, maxsize: int | None) -> Callable[[Callable[..., _T]], functools._lru_cache_wrapper[_T]]:
    """``functools.lru_cache(maxsize=maxsize)``, registered for :func:`clear_caches`.

    ``maxsize=None`` keeps every entry (``functools.cache``); give a bound wherever the
    arguments can vary without limit (shapes, architectures). Only module-level functions and
    methods may be memoized: a function defined inside another would be registered once per
    call of its parent and never released.
    """
    if maxsize is not None and (not isinstance(maxsize, int) or isinstance(maxsize, bool)):
        raise TypeError(f"maxsize: expected an int or None, got {maxsize!r}")
    if maxsize is not None and maxsize < 1:
        raise ValueError(f"maxsize: must be >= 1 or None (got {maxsize!r})")

    def register(fn: Callable[..., _T]) -> functools._lru_cache_wrapper[_T]:
        if "<locals>" in fn.__qualname__:
            raise ValueError(f"memo: {fn.__qualname__} is defined inside a function; memoize "
                             "module-level functions only (the registry keeps every cache)")
        wrapper = functools.lru_cache(maxsize=maxsize)(fn)
        _REGISTRY[f"{fn.__module__}.{fn.__qualname__}"] = wrapper
        return wrapper

    return register


def clear_caches() -> None:
    """Empty every registered cache: the next call of any cached function runs cold (and
    reads its data files again)."""
    for wrapper in _REGISTRY.values():
        wrapper.cache_clear()


def cache_info() -> dict[str, functools._CacheInfo]:
    """``{module.qualname: (hits, misses, maxsize, currsize)}`` of every registered cache of
    the modules imported so far, sorted by name (for benchmarks and debugging)."""
    return {name: _REGISTRY[name].cache_info() for name in sorted(_REGISTRY)}
