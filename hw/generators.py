"""Which Amaranth component each engine kind elaborates to."""

from __future__ import annotations

from collections.abc import Callable

from amaranth.lib import data, wiring

from hw.spec import EngineSpec, SystolicSpec
from hw.systolic import SystolicArray, stream_layouts

__all__ = ["build_component", "engine_streams"]

_GENERATORS: dict[type, tuple[Callable[..., wiring.Component], Callable[..., dict]]] = {
    SystolicSpec: (SystolicArray, stream_layouts),
}


def _entry(spec: EngineSpec):
    try:
        return _GENERATORS[type(spec)]
    except KeyError:
        raise TypeError(f"no generator for engine spec {spec!r}") from None


def build_component(spec: EngineSpec) -> wiring.Component:
    return _entry(spec)[0](spec)


def engine_streams(spec: EngineSpec) -> dict[str, data.Layout]:
    return _entry(spec)[1](spec)
