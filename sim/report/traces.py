"""SCALE-Sim-format memory traces of one GEMM on a systolic array (``tpe sim gemm --trace
DIR``), built from the mapping the simulator chose and the engine's own fold timing, so that
their access counts are the simulator's.

The files are the six SCALE-Sim writes for a layer, one row per cycle, the cycle first, then
one element address per port (``-1``: no access on that port in that cycle):

- ``IFMAP_SRAM_TRACE.csv`` (one column per array row), ``FILTER_SRAM_TRACE.csv`` and
  ``OFMAP_SRAM_TRACE.csv`` (one per array column): what the array reads from the A and W
  buffers and writes to the output buffer, cycle by cycle, with no memory stall (SCALE-Sim's
  demand traces): folds back to back, each streaming its tile's extent with the array's
  skew of one cycle per row or column;
- ``IFMAP_DRAM_TRACE.csv``, ``FILTER_DRAM_TRACE.csv``, ``OFMAP_DRAM_TRACE.csv``: the
  buffers' fills from DRAM (a tile when the loop order moves to another one) and the output
  write-backs (one per visit of an output tile: partial sums at the accumulator width, the
  last at the output format's), at the link's bandwidth in bytes per cycle, a fill issued
  when the tile before it starts (double-buffered levels) or when its own tile starts;

plus ``OFMAP_DRAM_READ_TRACE.csv`` (partial sums read back when an output tile is visited
again, which SCALE-Sim does not model) and ``trace.json`` (the GEMM, the mapping, the address
offsets and element widths, and the access count of every file).

Addresses are element indices of row-major matrices, as SCALE-Sim's: ``A[m, k]`` at ``m*K +
k``, ``W[k, n]`` at the filter offset ``+ k*N + n``, ``C[m, n]`` at the output offset ``+
m*N + n`` (offsets 10,000,000 and 20,000,000, SCALE-Sim's defaults, or the next multiple of
10,000,000 above the operand before). Scale factors of quantized formats are not listed.
Output stationary: array rows take M, columns N, K streams; weight stationary: rows take K,
columns N, M streams, each fold first loading its weight tile one row per cycle.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from hw.spec import ArchSpec
from models.formats import get_format
from models.ops import Gemm
from sim.errors import InputError
from sim.files import replacing
from sim.system import OpResult

__all__ = ["MAX_TRACE_CYCLES", "TRACE_FILES", "build_traces", "write_traces"]

#: Longest GEMM (engine cycles) traced: the SRAM traces have a row per cycle (SCALE-Sim-sized
#: layers; a larger GEMM would write gigabytes).
MAX_TRACE_CYCLES = 1 << 20
#: The files, in writing order.
TRACE_FILES = ("IFMAP_SRAM_TRACE.csv", "FILTER_SRAM_TRACE.csv", "OFMAP_SRAM_TRACE.csv",
               "IFMAP_DRAM_TRACE.csv", "FILTER_DRAM_TRACE.csv", "OFMAP_DRAM_TRACE.csv",
               "OFMAP_DRAM_READ_TRACE.csv")
_STEP = 10_000_000  # SCALE-Sim's default distance between the operands' address ranges


def _check(arch: ArchSpec, result: OpResult) -> None:
    """Refuse, in one line naming --trace, what these traces do not describe."""
    spec = arch.engine
    if arch.gpu is not None or spec.kind != "systolic":
        raise InputError(f"--trace: SCALE-Sim traces are for systolic arrays (output or weight "
                         f"stationary); {arch.name} has a {spec.kind} engine")
    if arch.cores != 1:
        raise InputError(f"--trace: traces are for one array; {arch.name} has {arch.cores} "
                         "cores (use a one-core architecture, or --set cores=1)")
    if spec.weight_double_buffer or spec.output_double_buffer:
        raise InputError("--trace: folds that overlap (weight_double_buffer, "
                         "output_double_buffer) are not traced; set them to false")
    if result.core is None or result.mapping.get("passes", 1) != 1:
        raise InputError("--trace: the GEMM's formats need several passes of the engine "
                         "(operands wider than its ports); trace formats it takes in one")
    if result.core.compute_cycles > MAX_TRACE_CYCLES:
        raise InputError(f"--trace: this GEMM runs {result.core.compute_cycles:,} engine cycles;"
                         f" traces are written for at most {MAX_TRACE_CYCLES:,} (a row per "
                         "cycle); trace a smaller GEMM")


def _extent(dim: int, tile: int, i: int) -> int:
    return min(tile, dim - i * tile)


def build_traces(arch: ArchSpec, result: OpResult) -> tuple[dict[str, np.ndarray],
                                                            dict[str, Any]]:
    """The traces (file name -> int64 matrix, cycle first) and the summary of ``result``, a
    one-core systolic GEMM (:func:`_check`), as its core's engine runs it (for a transposed
    mapping, the engine's A is the GEMM's W^T)."""
    _check(arch, result)
    core = result.core
    assert core is not None
    g: Gemm = core.gemm
    mp = core.mapping
    spec = arch.engine
    M, N, K = g.M, g.N, g.K
    rows, cols = spec.rows, spec.cols
    os_flow = spec.dataflow == "os"
    a_off = 0
    w_off = _STEP * max(1, math.ceil(M * K / _STEP))
    o_off = w_off + _STEP * max(1, math.ceil(K * N / _STEP))
    cycles = int(core.compute_cycles) // core.count  # one instance
    ifmap = np.full((cycles, rows), -1, dtype=np.int64)
    filt = np.full((cycles, cols), -1, dtype=np.int64)
    ofmap = np.full((cycles, cols), -1, dtype=np.int64)
    tiles = {"m": mp.tiles_m, "n": mp.tiles_n, "k": mp.tiles_k}
    size = {"m": mp.tile_m, "n": mp.tile_n, "k": mp.tile_k}
    dims = {"m": M, "n": N, "k": K}
    order = mp.loop_order
    starts: list[int] = []
    iterations: list[dict[str, int]] = []
    t = 0
    for idx in itertools.product(*(range(tiles[d]) for d in order)):
        it = dict(zip(order, idx, strict=True))
        iterations.append(it)
        starts.append(t)
        m0, n0, k0 = (it[d] * size[d] for d in "mnk")
        tm, tn, tk = (_extent(dims[d], size[d], it[d]) for d in "mnk")
        spatial = ((m0, tm, rows), (n0, tn, cols)) if os_flow else ((k0, tk, rows),
                                                                     (n0, tn, cols))
        (_, pe, pu), (_, qe, qu) = spatial
        for pi in range(0, pe, pu):
            for qi in range(0, qe, qu):
                r_used, c_used = min(pu, pe - pi), min(qu, qe - qi)
                r = np.arange(r_used)[:, None]
                c = np.arange(c_used)[:, None]
                length = tk if os_flow else tm
                s = np.arange(length)[None, :]
                fold = spec.fold_cycles(length)
                n_idx = n0 + qi + np.arange(c_used)
                if os_flow:  # rows <- m, columns <- n, k streams
                    mm = m0 + pi + r
                    ifmap[t + r + s, r + 0 * s] = a_off + mm * K + k0 + s
                    filt[t + c + s, c + 0 * s] = w_off + (k0 + s) * N + n0 + qi + c
                    out_rows = np.arange(r_used)
                    cyc = t + fold - r_used + out_rows
                    ofmap[cyc[:, None], np.arange(c_used)[None, :]] = (
                        o_off + (m0 + pi + out_rows)[:, None] * N + n_idx[None, :])
                else:  # rows <- k, columns <- n, m streams after the weight tile's rows
                    kk = k0 + pi + r
                    filt[(t + np.arange(r_used))[:, None], np.arange(c_used)[None, :]] = (
                        w_off + (k0 + pi + np.arange(r_used))[:, None] * N + n_idx[None, :])
                    ifmap[t + rows + s + r, r + 0 * s] = a_off + (m0 + s) * K + kk
                    out_rows = np.arange(length)
                    cyc = t + fold - length + out_rows
                    ofmap[cyc[:, None], np.arange(c_used)[None, :]] = (
                        o_off + (m0 + out_rows)[:, None] * N + n_idx[None, :])
                t += spec.fold_interval(length)
    end = t
    if end != cycles:  # the schedule is the engine model's, fold for fold
        raise AssertionError(f"trace schedule {end} cycles, the model's {cycles}")
    dram = _dram(arch, g, iterations, starts, end, size, dims, (a_off, w_off, o_off))
    traces = {
        "IFMAP_SRAM_TRACE.csv": _with_cycles(ifmap),
        "FILTER_SRAM_TRACE.csv": _with_cycles(filt),
        "OFMAP_SRAM_TRACE.csv": _with_cycles(ofmap),
        **dram,
    }
    summary = {
        "arch": arch.name, "engine": spec.name, "dataflow": spec.dataflow,
        "gemm": {"M": M, "N": N, "K": K, "a_fmt": g.a_fmt, "w_fmt": g.w_fmt, "o_fmt": g.o_fmt},
        "transposed": bool(result.mapping.get("transposed", False)),
        "mapping": mp.to_dict(), "cycles": cycles,
        "offsets": {"ifmap": a_off, "filter": w_off, "ofmap": o_off},
        "element_bits": {"ifmap": get_format(g.a_fmt).bits, "filter": get_format(g.w_fmt).bits,
                         "ofmap_sram": spec.acc_bits, "ofmap_final": get_format(g.o_fmt).bits,
                         "ofmap_partial": spec.acc_bits},
        "dram_bytes_per_cycle": arch.dram_bytes_per_cycle,
        "accesses": {name: int((m[:, 1:] >= 0).sum()) for name, m in traces.items()},
    }
    return traces, summary


def _with_cycles(matrix: np.ndarray) -> np.ndarray:
    return np.column_stack((np.arange(len(matrix), dtype=np.int64), matrix))


def _dram(arch: ArchSpec, g: Gemm, iterations: list[dict[str, int]], starts: list[int],
          end: int, size: dict[str, int], dims: dict[str, int],
          offsets: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """The DRAM traces: fills when a tile changes, output write-backs per visit, partial sums
    read back on a revisit; one link, in issue order, at its bytes per cycle."""
    N, K = dims["n"], dims["k"]
    a_off, w_off, o_off = offsets
    bw = arch.dram_bytes_per_cycle
    a_b, w_b = g.a_storage_bits / 8, g.w_storage_bits / 8
    acc_b, o_b = arch.engine.acc_bits / 8, get_format(g.o_fmt).bits / 8
    dbuf = {"a": arch.a_buffer.double_buffered, "w": arch.w_buffer.double_buffered}
    events: dict[str, list[tuple[int, np.ndarray]]] = {
        "IFMAP_DRAM_TRACE.csv": [], "FILTER_DRAM_TRACE.csv": [], "OFMAP_DRAM_TRACE.csv": [],
        "OFMAP_DRAM_READ_TRACE.csv": []}
    link = 0.0

    def send(name: str, at: float, addrs: np.ndarray, nbytes: float) -> None:
        nonlocal link
        t0 = max(link, at)
        cyc = np.floor(t0 + np.arange(len(addrs)) * nbytes / bw).astype(np.int64)
        events[name].append((cyc, addrs))
        link = t0 + len(addrs) * nbytes / bw

    def block(r0: int, nr: int, c0: int, nc: int, width: int, off: int) -> np.ndarray:
        return (off + (r0 + np.arange(nr))[:, None] * width + c0 + np.arange(nc)[None, :]
                ).ravel()

    k_tiles = math.ceil(K / size["k"])
    seen: dict[tuple[int, int], int] = {}  # output tile -> k tiles accumulated so far

    def write_back(o_id: tuple[int, int], at: int) -> None:
        """The output tile the loops leave: partial sums, or the result once every K tile
        is in."""
        im, in_ = o_id
        tm, tn = _extent(dims["m"], size["m"], im), _extent(N, size["n"], in_)
        send("OFMAP_DRAM_TRACE.csv", at, block(im * size["m"], tm, in_ * size["n"], tn, N,
                                               o_off), o_b if seen[o_id] >= k_tiles else acc_b)

    prev: dict[str, Any] = {"a": None, "w": None, "o": None}
    for i, it in enumerate(iterations):
        im, in_, ik = it["m"], it["n"], it["k"]
        m0, n0, k0 = im * size["m"], in_ * size["n"], ik * size["k"]
        tm, tn, tk = (_extent(dims[d], size[d], it[d]) for d in "mnk")
        o_id = (im, in_)
        if prev["o"] is not None and prev["o"] != o_id:  # the tile the loops leave
            write_back(prev["o"], starts[i])
        for key, ident, nr, r0, nc, c0, width, off, nbytes, name in (
                ("a", (im, ik), tm, m0, tk, k0, K, a_off, a_b, "IFMAP_DRAM_TRACE.csv"),
                ("w", (ik, in_), tk, k0, tn, n0, N, w_off, w_b, "FILTER_DRAM_TRACE.csv")):
            if prev[key] != ident:
                at = starts[i - 1] if dbuf[key] and i else starts[i]
                send(name, at, block(r0, nr, c0, nc, width, off), nbytes)
                prev[key] = ident
        if prev["o"] != o_id and seen.get(o_id, 0) > 0:  # partial sums come back
            send("OFMAP_DRAM_READ_TRACE.csv", starts[i], block(m0, tm, n0, tn, N, o_off), acc_b)
        prev["o"] = o_id
        seen[o_id] = seen.get(o_id, 0) + 1
    if prev["o"] is not None:
        write_back(prev["o"], end)
    return {name: _rows(chunks) for name, chunks in events.items()}


def _rows(chunks: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Events (cycle, address) as trace rows: one per cycle with accesses, the cycle first,
    the addresses after it, ``-1`` padding to the widest row."""
    if not chunks:
        return np.zeros((0, 2), dtype=np.int64)
    cyc = np.concatenate([c for c, _ in chunks])
    addr = np.concatenate([a for _, a in chunks])
    order = np.argsort(cyc, kind="stable")
    cyc, addr = cyc[order], addr[order]
    uniq, first, counts = np.unique(cyc, return_index=True, return_counts=True)
    out = np.full((len(uniq), 1 + int(counts.max())), -1, dtype=np.int64)
    out[:, 0] = uniq
    pos = np.arange(len(cyc)) - np.repeat(first, counts)
    out[np.repeat(np.arange(len(uniq)), counts), 1 + pos] = addr
    return out


def write_traces(arch: ArchSpec, result: OpResult, out_dir: str | Path) -> dict[str, Any]:
    """Write :func:`build_traces` of ``result`` into ``out_dir`` (each file whole or not at
    all); returns the summary (also written as ``trace.json``)."""
    traces, summary = build_traces(arch, result)
    out = Path(out_dir)
    for name in TRACE_FILES:
        with replacing(out / name) as tmp:
            np.savetxt(tmp, traces[name], fmt="%d", delimiter=",")
    with replacing(out / "trace.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1) + "\n")
    return summary
