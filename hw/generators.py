"""Which Amaranth component each engine kind elaborates to.

By convention the generator of kind ``k`` is the module ``hw.k``: it defines ``COMPONENT``
(a ``wiring.Component`` class built from the spec), ``stream_layouts(spec)`` (the payload
layout of every stream, by stream name) and ``lane_order(spec)`` (what each lane of every
array field holds, by stream and field name, for the manifest). A new kind needs no edit here.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from amaranth.lib import data, wiring

from hw.spec import EngineSpec

__all__ = ["build_component", "engine_streams", "lane_order"]


def _module(spec: EngineSpec) -> ModuleType:
    try:
        return importlib.import_module(f"hw.{spec.kind}")
    except ModuleNotFoundError:
        raise TypeError(f"no generator for engine kind {spec.kind!r} (module hw.{spec.kind})") \
            from None


def build_component(spec: EngineSpec) -> wiring.Component:
    return _module(spec).COMPONENT(spec)


def engine_streams(spec: EngineSpec) -> dict[str, data.Layout]:
    return _module(spec).stream_layouts(spec)


def lane_order(spec: EngineSpec) -> dict[str, dict[str, str]]:
    return _module(spec).lane_order(spec)
