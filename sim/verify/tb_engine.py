"""cocotb test bench of a generated engine (run by :mod:`sim.verify.runner`).

Everything about the design comes from its manifest (``TPE_MANIFEST``): the spec, the stream
ports and their payload layouts. The bench has one driver that feeds the folds and consumes
the results (:class:`sim.verify.bench.CycleDriver`), a numpy reference model and a checker;
it writes a JSON report (``TPE_REPORT``) with, per GEMM, the measured and modelled cycles.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from hw.packing import Codec
from hw.spec import engine_from_dict
from sim.verify.bench import CycleDriver
from sim.verify.driver import Case, assemble
from sim.verify.options import RANDOM_GEMMS
from sim.verify.plans import planner


def _load():
    manifest = json.loads(Path(os.environ["TPE_MANIFEST"]).read_text())
    spec = engine_from_dict(manifest["spec"])
    codecs = {name: Codec(s["fields"]) for name, s in manifest["streams"].items()}
    return manifest, spec, codecs


async def _run_case(dut, streams, codecs, folds, rng, case, stop_after=None):
    """Run ``folds`` to the end (or, with ``stop_after``, for that many cycles only, leaving
    the design mid-GEMM); ``(driver, busy after the last output)``."""
    drv = CycleDriver(codecs, folds, rng, p_idle=case.p_idle, p_stall=case.p_stall)
    in_ports = [n for n in streams if n != "o"]
    beats = sum(len(b) for f in folds for b in f.beats.values())
    limit = 100 * (beats + sum(4 * (f.out_beats + 64) for f in folds)) + 1000
    while not drv.done:
        if stop_after is not None and drv.cycle >= stop_after:
            return drv, None
        if drv.cycle > limit:
            raise AssertionError(f"{case.label}: no completion after {limit} cycles")
        values = drv.inputs()
        for n in in_ports:
            getattr(dut, f"{n}__valid").value = values[f"{n}__valid"]
            getattr(dut, f"{n}__payload").value = values[f"{n}__payload"]
        dut.o__ready.value = values["o__ready"]
        await ReadOnly()
        sampled = {f"{n}__ready": int(getattr(dut, f"{n}__ready").value) for n in in_ports}
        sampled["o__valid"] = int(dut.o__valid.value)
        sampled["o__payload"] = dut.o__payload.value.to_unsigned()
        drv.clock(sampled)
        await RisingEdge(dut.clk)
    # Let the design settle back to idle before the next case.
    for n in in_ports:
        getattr(dut, f"{n}__valid").value = 0
    dut.o__ready.value = 1
    await RisingEdge(dut.clk)
    await ReadOnly()
    busy = int(dut.busy.value)
    await RisingEdge(dut.clk)
    return drv, busy


async def _reset(dut, streams, cycles: int) -> None:
    """Hold reset for ``cycles`` clock cycles with every stream idle."""
    dut.rst.value = 1
    for n in streams:
        if n != "o":
            getattr(dut, f"{n}__valid").value = 0
    dut.o__ready.value = 0
    await ClockCycles(dut.clk, cycles)
    dut.rst.value = 0


def _check(spec, plan, case, folds, drv, busy, A, W) -> dict:
    """The report entry of one finished GEMM: results bit exact, protocol, cycles."""
    got = assemble(spec, case.M, case.N, zip(folds, drv.outputs, strict=True))
    want = plan.reference_gemm(spec, A, W)
    bad = np.argwhere(got != want)
    measured = drv.timing[-1].last_out - drv.timing[0].first_in + 1
    model = plan.model_cycles(spec, folds, case.M, case.N, case.K)
    problems = drv.check_protocol()
    if busy:
        problems.append("busy still high after the last output")
    if len(bad):
        i, j = (int(x) for x in bad[0])
        problems.append(f"{len(bad)} wrong results, first C[{i},{j}] = {int(got[i, j])}, "
                        f"expected {int(want[i, j])}")
    if case.checks_cycles and measured != model:
        problems.append(f"measured {measured} cycles, model {model}")
    if not case.checks_cycles and measured < model:
        problems.append(
            f"measured {measured} cycles under stalls, fewer than the model's {model}")
    return {
        "case": case.label, "M": case.M, "N": case.N, "K": case.K, "folds": len(folds),
        "measured_cycles": measured, "model_cycles": model,
        "cycles_checked": case.checks_cycles, "results_ok": not len(bad),
        "fold_cycles": [t.cycles for t in drv.timing], "problems": problems,
    }


@cocotb.test()
async def lockstep(dut):
    """Random GEMMs fold by fold: results bit exact, cycles equal to the model's; then a reset
    in the middle of a GEMM, after which the design is idle and runs the next GEMM exactly."""
    manifest, spec, codecs = _load()
    seed = int(os.environ.get("TPE_SEED", "1"))
    gemms = int(os.environ.get("TPE_CASES", str(RANDOM_GEMMS)))
    max_dim = int(os.environ["TPE_MAX_DIM"]) if os.environ.get("TPE_MAX_DIM") else None
    rng = np.random.default_rng(seed)
    streams = manifest["streams"]

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    await _reset(dut, streams, 2)

    plan = planner(spec)
    report = {"seed": seed, "design": manifest["name"], "cases": []}
    failures = []

    def record(entry: dict) -> None:
        report["cases"].append(entry)
        failures.extend(f"{entry['case']}: {p}" for p in entry["problems"])
        dut._log.info("%s: M=%d N=%d K=%d folds=%d measured=%d model=%d %s", entry["case"],
                      entry["M"], entry["N"], entry["K"], entry["folds"],
                      entry["measured_cycles"], entry["model_cycles"],
                      entry["problems"] or "OK")

    cases = plan.plan_cases(spec, rng, random_gemms=gemms, max_dim=max_dim)
    for case in cases:
        A, W = plan.case_operands(spec, case, rng)
        folds = list(plan.plan_folds(spec, A, W, rng))
        drv, busy = await _run_case(dut, streams, codecs, folds, rng, case)
        record(_check(spec, plan, case, folds, drv, busy, A, W))

    # a reset in the middle of a GEMM: a random one stopped after a random share of its
    # cycles, then, reset released, the same GEMM again from the start
    case = next(c for c in cases if c.label.startswith("random GEMM") and c.checks_cycles)
    case = Case("after a reset in the middle of a GEMM", case.M, case.N, case.K)
    A, W = plan.case_operands(spec, case, rng)
    folds = list(plan.plan_folds(spec, A, W, rng))
    model = plan.model_cycles(spec, folds, case.M, case.N, case.K)
    await _run_case(dut, streams, codecs, folds, rng, case,
                    stop_after=int(rng.integers(1, max(2, model))))
    await _reset(dut, streams, int(rng.integers(1, 4)))
    dut.o__ready.value = 1
    await ReadOnly()
    idle = int(dut.busy.value) == 0 and int(dut.o__valid.value) == 0
    await RisingEdge(dut.clk)
    drv, busy = await _run_case(dut, streams, codecs, folds, rng, case)
    entry = _check(spec, plan, case, folds, drv, busy, A, W)
    if not idle:
        entry["problems"].insert(0, "busy or o.valid high right after the reset")
    record(entry)
    Path(os.environ["TPE_REPORT"]).write_text(json.dumps(report, indent=2) + "\n")
    assert not failures, "; ".join(failures)
