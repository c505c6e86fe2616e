"""A cycle-level, simulator-independent driver of an engine's streams.

Each cycle the simulator adapter asks :meth:`CycleDriver.inputs` for the values of the
design's input ports, samples the design's ports just before the clock edge and hands them
to :meth:`CycleDriver.clock`. The driver plays the part of the feeder (every input stream)
and of the consumer (``o`` stream), may insert idle cycles and back-pressure, records every
output beat and the cycle of every fold's first input and last output transfer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from hw.packing import Codec
from sim.verify.driver import Fold

__all__ = ["CycleDriver", "FoldTiming"]


@dataclass
class FoldTiming:
    first_in: int | None = None
    last_out: int | None = None

    @property
    def cycles(self) -> int:
        assert self.first_in is not None and self.last_out is not None
        return self.last_out - self.first_in + 1


@dataclass
class _Port:
    name: str  # stream name: wl, i
    beats: list[int] = field(default_factory=list)  # packed payloads, in order
    sent: int = 0


class CycleDriver:
    """Feeds the folds of a GEMM and collects the results, one clock cycle at a time."""

    def __init__(
        self,
        codecs: Mapping[str, Codec],
        folds: Sequence[Fold],
        rng: np.random.Generator,
        *,
        p_idle: float = 0.0,
        p_stall: float = 0.0,
    ):
        self.folds = list(folds)
        self.rng = rng
        self.p_idle, self.p_stall = p_idle, p_stall
        self.codecs = codecs
        # A flat beat list per input stream, with the fold each beat belongs to.
        self.ports = {name: _Port(name) for name in codecs if name != "o"}
        self.beat_fold: dict[str, list[int]] = {name: [] for name in self.ports}
        for f_idx, fold in enumerate(self.folds):
            for name, beats in fold.beats.items():
                for beat in beats:
                    self.ports[name].beats.append(codecs[name].pack(**beat))
                    self.beat_fold[name].append(f_idx)
        self.outputs: list[list[list[int]]] = [[] for _ in self.folds]
        self.out_last_flags: list[list[int]] = [[] for _ in self.folds]
        self.timing = [FoldTiming() for _ in self.folds]
        self._out_fold = 0
        self._valid: dict[str, int] = {}
        self._ready = 1
        self.cycle = 0

    @property
    def done(self) -> bool:
        return self._out_fold >= len(self.folds)

    def inputs(self) -> dict[str, int]:
        """Input port values for the current cycle (valid never waits for ready)."""
        values: dict[str, int] = {}
        for name, port in self.ports.items():
            has = port.sent < len(port.beats)
            # Keep a presented beat presented until it transfers (stream rule).
            if self._valid.get(name):
                valid = 1
            else:
                valid = int(has and self.rng.random() >= self.p_idle)
            self._valid[name] = valid
            values[f"{name}__valid"] = valid
            values[f"{name}__payload"] = port.beats[port.sent] if has else 0
        if self._ready and self.p_stall:
            self._ready = int(self.rng.random() >= self.p_stall)
        elif not self._ready:
            self._ready = int(self.rng.random() >= 0.5)
        values["o__ready"] = self._ready
        return values

    def clock(self, sampled: Mapping[str, int]) -> None:
        """Account for the transfers of this cycle, given the ports sampled before the edge."""
        for name, port in self.ports.items():
            if self._valid[name] and sampled[f"{name}__ready"]:
                fold = self.beat_fold[name][port.sent]
                t = self.timing[fold]
                if t.first_in is None:
                    t.first_in = self.cycle
                port.sent += 1
                self._valid[name] = 0
        if sampled["o__valid"] and self._ready:
            if self.done:
                raise AssertionError(f"cycle {self.cycle}: output beat after the last fold")
            beat = self.codecs["o"].unpack(sampled["o__payload"])
            fold = self._out_fold
            self.outputs[fold].append(beat["c"])
            self.out_last_flags[fold].append(beat["last"])
            if len(self.outputs[fold]) == self.folds[fold].out_beats:
                self.timing[fold].last_out = self.cycle
                self._out_fold += 1
        self.cycle += 1

    def check_protocol(self) -> list[str]:
        """Problems with ``last`` flags and leftover beats (empty when all is well)."""
        problems = []
        for f_idx, flags in enumerate(self.out_last_flags):
            expect = [0] * (len(flags) - 1) + [1] if flags else []
            if flags != expect:
                problems.append(f"fold {f_idx}: output last flags {flags}, expected {expect}")
        for name, port in self.ports.items():
            if port.sent != len(port.beats):
                problems.append(f"stream {name}: {len(port.beats) - port.sent} beats not taken")
        return problems
