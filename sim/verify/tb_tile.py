"""cocotb test bench of a generated tile (run by :mod:`sim.verify.runner`).

Everything about the design comes from its manifest (``TPE_MANIFEST``): the architecture the
tile was derived from (so the same :class:`hw.spec.TileSpec`, link and system model as
``tpe gen tile`` used), the descriptor register map and the memory streams' payload layouts.
The bench shares the ``amaranth.sim`` bench's pieces (:mod:`sim.verify.tile_bench`): the
random GEMMs and their mappings (:func:`~sim.verify.tile_bench.bench_cases`), the placement
of A and W in memory and the descriptor (:func:`~sim.verify.tile_bench.load_gemm`), and the
external memory model (:class:`~sim.verify.tile_bench.ExtMemory`, the DRAM level's bytes per
cycle and latency). Per GEMM it writes the descriptor registers, pulses ``start``, serves the
memory streams until ``done``, checks C bit exact against numpy and records the cycles from
the start edge to the last C write beside the system model's figure for the same mapping on
the manifest's architecture (``tpe sim gemm``'s figure: the same ``sim.gemm`` code, the link
given the port's beat). A GEMM on the mapping the model picks is held to it
(:func:`~sim.verify.tile_bench.cycle_check`: equal with an ideal link, within 2% when the link
limits; each case records its error, the bound and why); random buffer tiles are reported
only. A case's problems are wrong results, cycles outside the bound, protocol errors and
timeouts. It writes a JSON report (``TPE_REPORT``) in the engine bench's format.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from hw.emit import tile_from_manifest
from hw.packing import Codec
from hw.spec import TileSpec
from sim.verify.options import RANDOM_GEMMS
from sim.verify.tile_bench import (
    BenchCase,
    ExtMemory,
    bench_cases,
    cycle_check,
    load_gemm,
    oriented,
    random_operands,
    reference,
)

#: A hang guard (the cycle check is :func:`~sim.verify.tile_bench.cycle_check`): a GEMM
#: taking more than this many times the model's cycles plus the floor is reported as a
#: timeout, so that a tile that stops making progress ends the run.
TIMEOUT_FACTOR = 20
TIMEOUT_FLOOR = 10_000


def _load() -> tuple[dict[str, Any], TileSpec, dict[str, Codec]]:
    manifest = json.loads(Path(os.environ["TPE_MANIFEST"]).read_text())
    spec = tile_from_manifest(manifest)
    codecs = {name: Codec(s["fields"]) for name, s in manifest["streams"].items()}
    return manifest, spec, codecs


async def _configure(dut: Any, writes: list[tuple[int, int]]) -> None:
    """Write the descriptor registers, then pulse ``start`` for one cycle."""
    for offset, value in writes:
        dut.cfg_we.value = 1
        dut.cfg_addr.value = offset
        dut.cfg_data.value = value
        await RisingEdge(dut.clk)
    dut.cfg_we.value = 0
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0


async def _serve(dut: Any, mem: ExtMemory, codecs: dict[str, Codec], limit: int
                 ) -> tuple[int, list[str]]:
    """Serve the memory streams from the start edge until ``done``: the cycle of the last C
    write beat (counted from the start edge, as the amaranth.sim bench counts) and the
    problems seen (protocol errors, a timeout)."""
    problems: list[str] = []
    cycle, last_write = 1, 0
    while True:
        driven = mem.drive(cycle)
        dut.rd_req__ready.value = driven["rd_req.ready"]
        dut.wr_req__ready.value = driven["wr_req.ready"]
        dut.rd_data__valid.value = driven["rd_data.valid"]
        dut.rd_data__payload.value = codecs["rd_data"].pack(data=driven["rd_data.data"])
        dut.wr_data__ready.value = driven["wr_data.ready"]
        await ReadOnly()
        if int(dut.done.value):
            break
        if cycle > limit:
            problems.append(f"timeout: not done after {limit} cycles")
            break
        sampled = {"rd_data.ready": int(dut.rd_data__ready.value),
                   "wr_data.valid": int(dut.wr_data__valid.value)}
        sampled["wr_data.data"] = codecs["wr_data"].unpack(
            dut.wr_data__payload.value.to_unsigned())["data"]
        for stream in ("rd_req", "wr_req"):
            sampled[f"{stream}.valid"] = int(getattr(dut, f"{stream}__valid").value)
            req = codecs[stream].unpack(getattr(dut, f"{stream}__payload").value.to_unsigned())
            sampled[f"{stream}.addr"], sampled[f"{stream}.len"] = req["addr"], req["len"]
        try:
            if mem.update(cycle, sampled):
                last_write = cycle
        except AssertionError as err:  # a request outside the memory
            problems.append(f"protocol: {err}")
            break
        await RisingEdge(dut.clk)
        cycle += 1
    await RisingEdge(dut.clk)
    dut.rd_data__valid.value = 0  # idle until the next GEMM's requests
    dut.wr_data__ready.value = 0
    if not problems and (mem.reads or mem.writes):
        problems.append(f"protocol: done with {len(mem.reads)} read and {len(mem.writes)} "
                        "write request(s) not completed")
    return last_write, problems


async def _run_case(dut: Any, spec: TileSpec, codecs: dict[str, Codec], case: BenchCase,
                    rng: np.random.Generator) -> dict[str, Any]:
    A, W = random_operands(spec, rng, case.M, case.N, case.K)
    job = load_gemm(spec, *oriented(case.transposed, A, W), tile=case.tile,
                    loop_order=case.loop_order, gap=case.gap)
    await _configure(dut, job.writes)
    limit = TIMEOUT_FACTOR * case.model_cycles + TIMEOUT_FLOOR
    measured, problems = await _serve(dut, job.mem, codecs, limit)
    e = spec.engine
    got, want = job.result(spec), reference(A, W, e.acc_bits, e.signed)
    if case.transposed:  # the tile wrote C^T
        got = got.T
    bad = np.argwhere(got != want)
    if len(bad):
        i, j = (int(x) for x in bad[0])
        problems.append(f"{len(bad)} wrong results, first C[{i},{j}] = {int(got[i, j])}, "
                        f"expected {int(want[i, j])}")
    verdict = cycle_check(spec, case, measured)
    if not problems and verdict["problem"] is not None:
        problems.append(verdict["problem"])
    return {
        "case": case.label, "M": case.M, "N": case.N, "K": case.K, "folds": case.folds,
        "measured_cycles": measured, "model_cycles": case.model_cycles,
        **{k: v for k, v in verdict.items() if k != "problem"},
        "results_ok": not len(bad), "fold_cycles": [],
        "read_bytes": job.mem.read_bytes, "write_bytes": job.mem.write_bytes,
        "problems": problems,
    }


@cocotb.test()
async def tile_gemms(dut: Any) -> None:
    """Random tiled GEMMs from external memory: results bit exact, cycles against the
    model's."""
    manifest, spec, codecs = _load()
    seed = int(os.environ.get("TPE_SEED", "1"))
    gemms = int(os.environ.get("TPE_CASES", str(RANDOM_GEMMS)))
    max_dim = int(os.environ["TPE_MAX_DIM"]) if os.environ.get("TPE_MAX_DIM") else None
    rng = np.random.default_rng(seed)

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    for name in ("cfg_we", "start", "rd_req__ready", "wr_req__ready", "rd_data__valid",
                 "wr_data__ready"):
        getattr(dut, name).value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await RisingEdge(dut.clk)

    report: dict[str, Any] = {"seed": seed, "design": manifest["name"], "cases": []}
    failures = []
    for case in bench_cases(spec.architecture, spec, rng, model=gemms, max_dim=max_dim):
        entry = await _run_case(dut, spec, codecs, case, rng)
        report["cases"].append(entry)
        failures += [f"{case.label}: {p}" for p in entry["problems"]]
        dut._log.info("%s: M=%d N=%d K=%d measured=%d model=%d %s", case.label, case.M,
                      case.N, case.K, entry["measured_cycles"], case.model_cycles,
                      entry["problems"] or "OK")
        if any(p.startswith(("timeout", "protocol")) for p in entry["problems"]):
            break  # the tile is in an unknown state: later cases would say nothing
    Path(os.environ["TPE_REPORT"]).write_text(json.dumps(report, indent=2) + "\n")
    assert not failures, "; ".join(failures)
