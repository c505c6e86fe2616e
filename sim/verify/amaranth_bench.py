"""Run the fold driver against the Amaranth model of an engine (``amaranth.sim``).

Fast enough for wide parameter sweeps of the generator logic in the unit tests; the emitted
Verilog is checked the same way by the cocotb bench on Verilator.
"""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

from hw.generators import build_component, engine_streams
from hw.packing import Codec, describe_layout
from hw.spec import EngineSpec
from sim.verify.bench import CycleDriver
from sim.verify.driver import assemble
from sim.verify.plans import planner

__all__ = ["run_gemm_amaranth"]


def run_gemm_amaranth(
    spec: EngineSpec,
    A: np.ndarray,
    W: np.ndarray,
    rng: np.random.Generator,
    *,
    p_idle: float = 0.0,
    p_stall: float = 0.0,
    max_cycles: int = 1_000_000,
):
    """Simulate ``A @ W`` on the engine; returns ``(C, driver)`` (timing in ``driver.timing``)."""
    dut = build_component(spec)
    codecs = {name: Codec(describe_layout(lay)) for name, lay in engine_streams(spec).items()}
    folds = list(planner(spec).plan_folds(spec, A, W, rng))
    drv = CycleDriver(codecs, folds, rng, p_idle=p_idle, p_stall=p_stall)
    streams = {name: getattr(dut, name) for name in codecs}

    async def bench(ctx):
        while not drv.done:
            if drv.cycle >= max_cycles:
                raise AssertionError(f"no completion after {max_cycles} cycles")
            values = drv.inputs()
            for name, st in streams.items():
                if name == "o":
                    ctx.set(st.ready, values["o__ready"])
                else:
                    ctx.set(st.valid, values[f"{name}__valid"])
                    ctx.set(st.payload.as_value(), values[f"{name}__payload"])
            sampled = {}
            for name, st in streams.items():
                if name == "o":
                    sampled["o__valid"] = ctx.get(st.valid)
                    sampled["o__payload"] = ctx.get(st.payload.as_value())
                else:
                    sampled[f"{name}__ready"] = ctx.get(st.ready)
            drv.clock(sampled)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    C = assemble(spec, A.shape[0], W.shape[1], zip(folds, drv.outputs, strict=True))
    return C, drv
