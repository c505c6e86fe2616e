"""Memory-hierarchy model: DRAM traffic, SRAM traffic and stall cycles of a mapped GEMM.

Everything is vectorised over candidate mappings (:class:`mapping.Candidates`, one entry per
row) and describes ONE instance of the GEMM (``gemm.count`` is applied by the caller).

Storage widths: A and W are stored at their formats' widths (``gemm.a_fmt``/``w_fmt``),
partial sums at the engine's ``acc_bits`` and final outputs at ``gemm.o_fmt``.

**SRAM traffic (the array side).** For a systolic array (``sim.engines.systolic``):

* OS (rows <- M, cols <- N, stream K): every fold streams its K chunk; A is read once per
  column fold, W once per row fold; each fold drains a ``rows x cols`` block into the output
  buffer, read-modify-write (RMW) for every K chunk after the first.
* WS (rows <- K, cols <- N, stream M): A is read once per column fold; every fold preloads its
  weight block (so W is read once per M chunk); every row fold after the first of a K
  reduction RMWs its partial sums in the output buffer.

**SRAM stalls.** A buffer delivers ``ports`` accesses of ``width_bits`` per cycle. A stream
beat needs ``ceil(rows * a_bits / width)`` A accesses (``cols * w_bits`` for W); a drained or
streamed output row ``ceil(cols * acc_bits / width)`` accesses, twice for RMW. When a beat
needs more cycles than one, the excess is a stall. Phases that run together overlap their
stalls (``max``), phases in sequence add: OS streams A and W together, then drains outputs
(``max(A, W) + O``); WS preloads W, then streams A while outputs leave (``W + max(A, O)``).
DRAM fills and write-backs are assumed to use separate banks/ports (no contention counted).

**DRAM traffic.** A loop nest of tiles over ``(m, n, k)`` in ``mapping.loop_order``. An
operand's tile is (re)loaded whenever an index it depends on changes from one tile iteration
to the next; boundaries fall into three classes (the outer, middle or inner loop advanced,
inner loops wrapping), counted exactly. The output tile is written back when it changes;
when a tile is revisited (K split and ``k`` not innermost), its partial sums are written at
``acc_bits`` and read back later (spills).

**DRAM stalls.** Transfers for the next tile overlap compute of the current one in a
double-buffered buffer; per boundary the exposed time is ``max(0, t_double - c)`` plus any
transfer of a single-buffered operand (which never overlaps), ``c`` being the average busy
time of one tile iteration (compute plus SRAM stalls). The first tile's load and the last
output tile's write-back are always exposed. Each non-empty transfer pays the DRAM latency
once. Not modelled: per-tile compute variation at edge tiles (the average is used), DRAM
bank/row effects, refresh, and contention between reads and writes beyond the shared link.

``memory="ideal"``: operands on chip, infinite bandwidth: no DRAM traffic, no stalls (SRAM
reads by the array are still counted for energy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from hw.spec import ArchSpec, SramSpec
from mapping import Candidates
from models.formats import get_format
from models.ops import Gemm
from sim.engines.systolic import tiled_fold_grid

__all__ = ["MEMORY_MODES", "Memory", "MemoryTraffic", "memory_traffic"]

Memory = Literal["ideal", "real"]
MEMORY_MODES: tuple[str, ...] = ("ideal", "real")

# Which loop dimensions (m, n, k) index each operand.
_DEPENDS = {
    "a": np.array([True, False, True]),
    "w": np.array([False, True, True]),
    "o": np.array([True, True, False]),
}


@dataclass(frozen=True, slots=True, eq=False)
class MemoryTraffic:
    """Traffic and stalls of one GEMM instance per candidate (float64 bytes, cycles)."""

    dram_a_read_bytes: np.ndarray
    dram_w_read_bytes: np.ndarray
    dram_o_write_bytes: np.ndarray
    #: Partial sums read back after a spill.
    dram_o_read_bytes: np.ndarray
    sram_a_read_bytes: np.ndarray
    sram_a_write_bytes: np.ndarray
    sram_w_read_bytes: np.ndarray
    sram_w_write_bytes: np.ndarray
    sram_o_read_bytes: np.ndarray
    sram_o_write_bytes: np.ndarray
    sram_stall_cycles: np.ndarray
    dram_stall_cycles: np.ndarray
    #: DRAM transfer time alone (all bytes / bandwidth), for roofline-style "bound" labels.
    dram_transfer_cycles: np.ndarray

    @property
    def dram_bytes(self) -> np.ndarray:
        return (self.dram_a_read_bytes + self.dram_w_read_bytes + self.dram_o_write_bytes
                + self.dram_o_read_bytes)

    @property
    def stall_cycles(self) -> np.ndarray:
        """Whole stall cycles (int64), rounded up."""
        return np.ceil(self.sram_stall_cycles + self.dram_stall_cycles - 1e-9).astype(np.int64)


def _cycles_per_beat(bits: int, buf: SramSpec, accesses_per_word: int = 1) -> int:
    """Cycles one beat of ``bits`` occupies a buffer (>= 1)."""
    accesses = accesses_per_word * -(-bits // buf.width_bits)
    return max(1, -(-accesses // buf.ports))


def memory_traffic(
    arch: ArchSpec,
    gemm: Gemm,
    cands: Candidates,
    compute_cycles: np.ndarray,
    *,
    memory: Memory,
) -> MemoryTraffic:
    """Traffic and stalls of one instance of ``gemm`` for every candidate mapping.

    ``compute_cycles``: the array's cycles per candidate (``tiled_gemm_compute_cycles``).
    """
    if memory not in MEMORY_MODES:
        raise ValueError(f"memory: must be one of {', '.join(MEMORY_MODES)} (got {memory!r})")
    spec = arch.engine
    M, N, K = gemm.M, gemm.N, gemm.K
    a_bits, w_bits = get_format(gemm.a_fmt).bits, get_format(gemm.w_fmt).bits
    o_bits, acc_bits = get_format(gemm.o_fmt).bits, spec.acc_bits
    R, C = spec.rows, spec.cols
    tm, tn, tk = (cands.tiles[:, j] for j in range(3))
    row_f, col_f, chunks = tiled_fold_grid(spec, M, N, K, tm, tn, tk)
    a_elems, w_elems, o_elems = M * K, K * N, M * N

    # -- array side: SRAM reads/writes and SRAM-port stalls --------------------------------
    cpb_a = _cycles_per_beat(R * a_bits, arch.a_buffer)
    cpb_o = _cycles_per_beat(C * acc_bits, arch.o_buffer)
    cpb_o_rmw = _cycles_per_beat(C * acc_bits, arch.o_buffer, accesses_per_word=2)
    if spec.dataflow == "os":
        sram_a_rd = col_f * (a_elems * a_bits / 8)
        sram_w_rd = row_f * (w_elems * w_bits / 8)
        o_drains = chunks  # partial-sum blocks per output element
        beats = row_f * col_f * K
        stall_a = beats * (cpb_a - 1)
        stall_w = beats * (_cycles_per_beat(C * w_bits, arch.w_buffer) - 1)
        first_rows = row_f * col_f * R
        rmw_rows = row_f * col_f * (chunks - 1) * R
        stall_o = first_rows * (cpb_o - 1) + rmw_rows * (cpb_o_rmw - 1)
        sram_stall = np.maximum(stall_a, stall_w) + stall_o
    else:
        sram_a_rd = col_f * (a_elems * a_bits / 8)
        sram_w_rd = chunks * (w_elems * w_bits / 8)
        o_drains = row_f
        beats = row_f * col_f * M
        stall_a = beats * (cpb_a - 1)
        preload_rows = row_f * col_f * chunks * R
        stall_w = preload_rows * (_cycles_per_beat(C * w_bits, arch.w_buffer) - 1)
        first_beats = col_f * M
        rmw_beats = (row_f - 1) * col_f * M
        stall_o = first_beats * (cpb_o - 1) + rmw_beats * (cpb_o_rmw - 1)
        sram_stall = stall_w + np.maximum(stall_a, stall_o)
    sram_o_wr = o_drains * (o_elems * acc_bits / 8)
    sram_o_rd = (o_drains - 1) * (o_elems * acc_bits / 8)

    n = len(cands)
    if memory == "ideal":
        zero = np.zeros(n)
        return MemoryTraffic(
            dram_a_read_bytes=zero, dram_w_read_bytes=zero, dram_o_write_bytes=zero,
            dram_o_read_bytes=zero,
            sram_a_read_bytes=sram_a_rd.astype(np.float64), sram_a_write_bytes=zero,
            sram_w_read_bytes=sram_w_rd.astype(np.float64), sram_w_write_bytes=zero,
            sram_o_read_bytes=sram_o_rd.astype(np.float64),
            sram_o_write_bytes=sram_o_wr.astype(np.float64),
            sram_stall_cycles=zero, dram_stall_cycles=zero, dram_transfer_cycles=zero,
        )

    # -- DRAM: tile reloads per loop-boundary class ---------------------------------------
    trips = cands.trips
    order = cands.order
    t_ord = np.take_along_axis(trips, order, axis=1)  # trip counts, outer to inner
    t1, t2, t3 = t_ord[:, 0], t_ord[:, 1], t_ord[:, 2]
    # Boundaries where loop j (outer=0, middle=1, inner=2) advances and inner loops wrap.
    counts = np.stack([t1 - 1, t1 * (t2 - 1), t1 * t2 * (t3 - 1)], axis=1).astype(np.float64)
    nontrivial = t_ord > 1

    def changes(op: str) -> np.ndarray:
        dep = _DEPENDS[op][order]  # (n, 3): operand depends on the loop at each position
        moving = dep & nontrivial
        inner = np.zeros_like(dep)
        inner[:, 1] = moving[:, 2]
        inner[:, 0] = moving[:, 1] | moving[:, 2]
        return dep | inner

    ch_a, ch_w, ch_o = changes("a"), changes("w"), changes("o")
    n_a = 1 + (counts * ch_a).sum(axis=1)  # tile loads
    n_w = 1 + (counts * ch_w).sum(axis=1)
    visits_o = 1 + (counts * ch_o).sum(axis=1)  # output-tile residencies
    tiles_m, tiles_n, tiles_k = trips[:, 0], trips[:, 1], trips[:, 2]
    distinct_o = tiles_m * tiles_n
    revisits_o = visits_o - distinct_o  # each ends with a partial spill and a later re-read

    dram_a = n_a * (a_elems * a_bits / 8) / (tiles_m * tiles_k)
    dram_w = n_w * (w_elems * w_bits / 8) / (tiles_k * tiles_n)
    part_tile = (o_elems * acc_bits / 8) / distinct_o
    dram_o_wr = o_elems * o_bits / 8 + revisits_o * part_tile
    dram_o_rd = revisits_o * part_tile

    first_a = tm * tk * a_bits / 8
    first_w = tk * tn * w_bits / 8
    last_o = (M - (tiles_m - 1) * tm) * (N - (tiles_n - 1) * tn) * o_bits / 8

    def per_change(total: np.ndarray, exposed: np.ndarray, changes_n: np.ndarray) -> np.ndarray:
        return np.divide(total - exposed, changes_n, out=np.zeros(n), where=changes_n > 0)

    per_a = per_change(dram_a, first_a, n_a - 1)
    per_w = per_change(dram_w, first_w, n_w - 1)
    per_o = per_change(dram_o_wr + dram_o_rd, last_o, visits_o - 1)

    bw = arch.dram_bytes_per_cycle
    lat = arch.dram.latency_ns * arch.clock_mhz / 1e3
    dbuf = {"a": arch.a_buffer.double_buffered, "w": arch.w_buffer.double_buffered,
            "o": arch.o_buffer.double_buffered}
    over = np.zeros((n, 3))
    serial = np.zeros((n, 3))
    for op, ch, per in (("a", ch_a, per_a), ("w", ch_w, per_w), ("o", ch_o, per_o)):
        target = over if dbuf[op] else serial
        target += ch * per[:, None]

    def transfer(nbytes: np.ndarray) -> np.ndarray:
        return nbytes / bw + lat * (nbytes > 0)

    iterations = (tiles_m * tiles_n * tiles_k).astype(np.float64)
    busy = (np.asarray(compute_cycles, dtype=np.float64) + sram_stall) / iterations
    exposed_per_boundary = transfer(serial) + np.maximum(0.0, transfer(over) - busy[:, None])
    dram_stall = (
        transfer(first_a + first_w) + transfer(last_o)
        + (counts * exposed_per_boundary).sum(axis=1)
    )
    total_bytes = dram_a + dram_w + dram_o_wr + dram_o_rd
    return MemoryTraffic(
        dram_a_read_bytes=dram_a,
        dram_w_read_bytes=dram_w,
        dram_o_write_bytes=dram_o_wr,
        dram_o_read_bytes=dram_o_rd,
        sram_a_read_bytes=sram_a_rd.astype(np.float64),
        sram_a_write_bytes=dram_a,
        sram_w_read_bytes=sram_w_rd.astype(np.float64),
        sram_w_write_bytes=dram_w,
        # write-backs read the buffer; spilled partial sums are written back into it
        sram_o_read_bytes=sram_o_rd + dram_o_wr,
        sram_o_write_bytes=sram_o_wr + dram_o_rd,
        sram_stall_cycles=sram_stall.astype(np.float64),
        dram_stall_cycles=dram_stall,
        dram_transfer_cycles=total_bytes / bw,
    )
