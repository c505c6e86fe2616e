"""tpe sim gemm --trace: SCALE-Sim-format traces whose access counts are the simulator's
(parsed back from the files and checked against the chosen mapping's exact traffic)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from cli_run import run

from hw.spec import load_arch
from models.formats import get_format
from models.ops import Gemm
from sim.gemm import _evaluate
from sim.report.traces import TRACE_FILES
from sim.system import simulate_op


def _read(path: Path) -> np.ndarray:
    if path.stat().st_size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    return np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)


CASES = [("os", []), ("ws", []), ("os", ["a_buffer.capacity_bytes=512",
                                          "w_buffer.capacity_bytes=512",
                                          "o_buffer.capacity_bytes=1024"]),
         ("ws", ["a_buffer.capacity_bytes=1024", "w_buffer.capacity_bytes=4096",
                 "o_buffer.capacity_bytes=8192", "dram.bandwidth_gb_per_s=3.3"])]


@pytest.mark.parametrize(("dataflow", "sets"), CASES)
def test_trace_counts_are_the_simulators(tmp_path, capsys, dataflow: str, sets: list[str]
                                         ) -> None:
    rng = random.Random(f"{dataflow}{len(sets)}")
    M, N, K = (rng.randint(5, 90) for _ in range(3))
    if "o_buffer.capacity_bytes=1024" in sets:
        M, N, K = 70, 50, 90  # the search keeps the output tile moving over K tiles
    argv = ["--set", "engine.rows=8", "--set", "engine.cols=6", "--set",
            f"engine.dataflow={dataflow}", *[x for s in sets for x in ("--set", s)]]
    out = tmp_path / "tr"
    code, _, err = run(capsys, ["sim", "gemm", "--arch", "systolic", *argv, "--M", str(M),
                                "--N", str(N), "--K", str(K), "--json", "--trace", str(out)])
    assert code == 0, err
    summary = json.loads((out / "trace.json").read_text())
    files = {name: _read(out / name) for name in TRACE_FILES}
    counts = {name: int((m[:, 1:] >= 0).sum()) for name, m in files.items()}
    assert counts == summary["accesses"]
    if "o_buffer.capacity_bytes=1024" in sets:  # K tiled: partial sums go out and back
        assert counts["OFMAP_DRAM_READ_TRACE.csv"] > 0
    # the exact traffic of the mapping the simulator chose (one core: the engine's GEMM)
    arch = load_arch("systolic", [x for x in argv if x != "--set"])
    result = simulate_op(arch, Gemm(name="gemm", M=M, N=N, K=K, a_fmt="int8", w_fmt="int8",
                                    o_fmt="int32"))
    core = result.core
    assert core is not None and summary["cycles"] == core.compute_cycles
    g = core.gemm
    t = _evaluate(core.arch, g, core.mapping, "real").traffic
    a_b, w_b = get_format(g.a_fmt).bits / 8, get_format(g.w_fmt).bits / 8
    acc_b, o_b = arch.engine.acc_bits / 8, get_format(g.o_fmt).bits / 8
    assert counts["IFMAP_SRAM_TRACE.csv"] * a_b == t.sram_a_read_bytes
    assert counts["FILTER_SRAM_TRACE.csv"] * w_b == t.sram_w_read_bytes
    assert counts["OFMAP_SRAM_TRACE.csv"] * acc_b == t.sram_o_write_bytes - t.dram_o_read_bytes
    assert counts["IFMAP_DRAM_TRACE.csv"] * a_b == t.dram_a_read_bytes
    assert counts["FILTER_DRAM_TRACE.csv"] * w_b == t.dram_w_read_bytes
    final = g.M * g.N
    assert (final * o_b + (counts["OFMAP_DRAM_TRACE.csv"] - final) * acc_b
            == t.dram_o_write_bytes)
    assert counts["OFMAP_DRAM_READ_TRACE.csv"] * acc_b == t.dram_o_read_bytes
    # every cycle has a row; every element of A and W is read, every output written
    sram = files["IFMAP_SRAM_TRACE.csv"]
    assert sram[:, 0].tolist() == list(range(core.compute_cycles))
    offsets = summary["offsets"]
    a_addr = set(files["IFMAP_SRAM_TRACE.csv"][:, 1:].ravel().tolist()) - {-1}
    assert a_addr == set(range(offsets["ifmap"], offsets["ifmap"] + g.M * g.K))
    o_addr = set(files["OFMAP_DRAM_TRACE.csv"][:, 1:].ravel().tolist()) - {-1}
    assert o_addr == set(range(offsets["ofmap"], offsets["ofmap"] + g.M * g.N))
    # the DRAM link never carries more than its bytes per cycle (plus one element)
    bw = summary["dram_bytes_per_cycle"]
    for name, b in (("IFMAP_DRAM_TRACE.csv", a_b), ("FILTER_DRAM_TRACE.csv", w_b)):
        per_row = (files[name][:, 1:] >= 0).sum(axis=1)
        assert per_row.max() * b <= bw + b


@pytest.mark.parametrize(("argv", "message"), [
    (["--arch", "cube"], "--trace: SCALE-Sim traces are for systolic arrays"),
    (["--arch", "systolic-4core"], "--trace: traces are for one array"),
    (["--arch", "systolic", "--M", "4096", "--N", "4096", "--K", "4096"],
     "--trace: this GEMM runs"),
    (["--arch", "npu-hbm"], "--trace: traces are for one array"),
])
def test_trace_refusals(tmp_path, capsys, argv: list[str], message: str) -> None:
    dims = [] if "--M" in argv else ["--M", "8", "--N", "8", "--K", "8"]
    code, _, err = run(capsys, ["sim", "gemm", *argv, *dims, "--trace", str(tmp_path / "t")])
    assert code == 2 and err.startswith(f"tpe: error: {message}") and err.count("\n") == 1
    assert not (tmp_path / "t").exists()
