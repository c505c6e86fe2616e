"""Memory-hierarchy model: DRAM traffic, SRAM traffic and stall cycles of a mapped GEMM.

Everything is vectorised over candidate mappings (:class:`mapping.Candidates`: what depends on
the tile alone as ``(1, T)`` arrays, once per tile, what depends on the loop order too as
``(O, T)``; :func:`memory_traffic` returns one entry per candidate) and describes ONE instance
of the GEMM (``gemm.count`` is applied by the caller).

Storage widths: A and W move between DRAM and the buffers at their formats' widths plus their
quantization scales (``gemm.a_storage_bits``/``w_storage_bits``) and reach the engine at their
formats' widths (the scales go to the rescaling, not through the array); partial sums are held
at the engine's ``acc_bits`` and final outputs at ``gemm.o_fmt``.

**SRAM traffic (the engine side).** Generic over engine kinds: it uses only the spec's
unrolling (:meth:`hw.spec.EngineBase.unrolling`) and fold timing. A fold covers ``unroll``
indices of each spatial dimension and a stream chunk of the streamed one, and reads the part
of each input it covers, so an operand is read once per fold along the dimension that does
not index it: A (``M x K``) ``folds_n`` times, W (``K x N``) ``folds_m`` times
(:class:`mapping.FoldGrid`). Every fold along K leaves a partial-sum block in the output buffer,
read-modify-write (RMW) for every one after the first: ``folds_k`` writes and ``folds_k - 1``
reads of every output at ``acc_bits`` (K streamed in chunks: one fold per chunk; K spatial:
one per reduction fold). For the systolic array this is OS (A once per column fold, W once
per row fold, RMW per K chunk) and WS (W once per M chunk, RMW per row fold).

**SRAM stalls.** A buffer delivers ``ports`` accesses of ``width_bits`` per cycle. The operands
indexed by the streamed dimension are *streamed*: one beat per stream element carries
``unroll`` elements of the operand's other dimension (an output beat RMWs: two accesses per
word after the first K fold). The engine takes ``beat_cycles`` cycles per stream element (the
slope of ``fold_cycles``: 1 for the systolic array, more for bit-serial engines), so a beat
stalls for ``max(0, access cycles - 1)`` engine cycles of every ``beat_cycles``. The operand
not indexed by the streamed dimension is *stationary* in a fold: loaded before it (an input)
or drained after it (the output), one line of ``unroll`` elements of its last dimension per
cycle (A lines run along K, W and O lines along N, as stored), each line stalling
``access cycles - 1``. Streamed operands overlap their stalls (``max``); the stationary one
adds (it moves before or after the stream): OS ``max(A, W) + O``, WS ``W + max(A, O)``, except
on an engine that moves a fold's stationary operand while another fold streams
(``fold_interval < fold_cycles``): it loads the next fold's weights (WS with
``weight_double_buffer``) or drains the previous fold's outputs (OS systolic or cube with
``output_double_buffer``), so all three overlap: ``max(A, W, O)``.
DRAM fills and write-backs are assumed to use separate banks/ports (no contention counted).

**DRAM traffic.** A loop nest of tiles over ``(m, n, k)`` in ``mapping.loop_order``. An
operand's tile is (re)loaded whenever an index it depends on changes from one tile iteration
to the next; boundaries fall into three classes (the outer, middle or inner loop advanced,
inner loops wrapping), counted exactly. The output tile is written back when it changes;
when a tile is revisited (K split and ``k`` not innermost), its partial sums are written at
``acc_bits`` and read back later (spills).

**DRAM stalls.** Two forms. The candidates are ranked by a closed form: a double-buffered
level loads the next tile while the engine computes: a tile's load is requested as soon as its
half is free, when the tile before last ends, so the loads of two boundaries are in flight
together and share the latency. In steady state a boundary exposes ``max(0, (t - c) / 2,
t_bw - c)``: ``t`` its transfer with the latency, ``t_bw`` without (the link's bandwidth
binding), ``c`` the average busy time of one tile iteration (compute plus SRAM stalls); a
tile then takes ``max(c, (c + t) / 2, t_bw)``. Transfers into a single-buffered level never
overlap and add in full. The first tile's load and the last output tile's write-back are
always exposed; the loads of the first boundary (of the innermost loop with more than one
trip) into double-buffered levels are requested right after the first tile's and pay no
latency of their own. Reads and writes share the link, and writes are posted: a transfer that
reads ``r`` bytes and writes ``w`` (an output tile written back) takes ``r / bw + max(lat, w /
bw)`` (the write-back goes out while the reads wait for the latency ``lat``), and ``w / bw``
when it reads nothing, so the last write-back pays no latency (the GEMM ends with its last
byte sent). A write-back out of a double-buffered output level yields to the reads and needs
its half again only when the visit after the next one starts, so it moves while the next
visit's tiles compute: its bytes are spread evenly over every boundary (into a
single-buffered one it is charged where the output tile changes). The closed form does not
see a tile's own compute (edge tiles), which boundary a write-back's bytes delay, or an
operand that loads during a whole inner sweep. The mapping a GEMM runs with is then
evaluated on its timeline (:mod:`sim.timeline`, :func:`with_dram_stalls`): its tile loops
load by load, which counts those (held within 2% of the generated tile's RTL on its
benchmark points, ``docs/tile.md``). Neither counts DRAM bank/row effects or refresh; a link
that moves a beat a cycle (``beat_bytes``) is counted in whole beats per row by the timeline
only.

``memory="ideal"``: operands on chip, infinite bandwidth: no DRAM traffic, no stalls (SRAM
reads by the array are still counted for energy).

**Exact integers** (``docs/llm_simulator.md``). The same functions serve two purposes. Given
:class:`mapping.Candidates` they return float64 arrays (trip counts and tile sizes are turned
to float64 before they multiply, since their products may pass 2^63): exact below 2^53, and
above it good enough to rank the candidates. Given one :class:`mapping.Mapping` they compute
with Python ints and :class:`fractions.Fraction` (scaled formats' bits per element, a
bit-serial engine's cycles per beat, transfers at the link's bytes per cycle as the exact
value of its float64): the stalls and bytes of that mapping exactly, rounded up only by the
caller (:attr:`MemoryTraffic.stall_cycles`, ``sim.gemm``); its DRAM stalls from its
timeline, whose cycles are float64 rounded up to a whole cycle (exact below 2^53).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import operator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal, NamedTuple

import numpy as np

from hw.spec import ArchSpec, EngineSpec, Operand, SramSpec
from mapping import DIMS, OPERAND_DIMS, Candidates, FoldGrid, Mapping, count_product, fold_grid
from models.caches import memo
from models.formats import get_format
from models.ops import Exact, Gemm, exact, exact_div
from sim.timeline import Nest, TileTiming, timeline_cycles, timeline_floor

__all__ = [
    "MEMORY_MODES",
    "CandidateExposure",
    "DramExposure",
    "Memory",
    "MemoryTraffic",
    "beat_cycles",
    "candidate_dram_stalls",
    "exact_link",
    "memory_traffic",
    "overlaps_folds",
    "traffic_without_stalls",
    "whole_stall_cycles",
    "with_dram_stalls",
]

Memory = Literal["ideal", "real"]
MEMORY_MODES: tuple[str, ...] = ("ideal", "real")

@dataclass(frozen=True, slots=True, eq=False)
class MemoryTraffic:
    """Traffic and stalls of one GEMM instance: float64 arrays over candidates, or exact
    fractions (ints where whole) for one mapping (module doc, "Exact integers")."""

    dram_a_read_bytes: Any
    dram_w_read_bytes: Any
    dram_o_write_bytes: Any
    #: Partial sums read back after a spill.
    dram_o_read_bytes: Any
    sram_a_read_bytes: Any
    sram_a_write_bytes: Any
    sram_w_read_bytes: Any
    sram_w_write_bytes: Any
    sram_o_read_bytes: Any
    sram_o_write_bytes: Any
    sram_stall_cycles: Any
    dram_stall_cycles: Any
    #: DRAM transfer time alone (all bytes / bandwidth), for roofline-style "bound" labels.
    dram_transfer_cycles: Any

    @property
    def dram_bytes(self) -> Any:
        return (self.dram_a_read_bytes + self.dram_w_read_bytes + self.dram_o_write_bytes
                + self.dram_o_read_bytes)

    def with_link(self, dram_stall_cycles: Any, dram_transfer_cycles: Any) -> MemoryTraffic:
        """This traffic with the DRAM link's stall and transfer cycles (:func:`with_dram_stalls`;
        what ``dataclasses.replace`` does, without its per-field reflection: it runs for every
        candidate set and mapping on every link)."""
        return MemoryTraffic(
            self.dram_a_read_bytes, self.dram_w_read_bytes, self.dram_o_write_bytes,
            self.dram_o_read_bytes, self.sram_a_read_bytes, self.sram_a_write_bytes,
            self.sram_w_read_bytes, self.sram_w_write_bytes, self.sram_o_read_bytes,
            self.sram_o_write_bytes, self.sram_stall_cycles, dram_stall_cycles,
            dram_transfer_cycles)

    @property
    def stall_cycles(self) -> Any:
        """Whole stall cycles, rounded up: an exact int for one mapping; float64 over
        candidates (where it only ranks them: :func:`whole_stall_cycles`)."""
        return whole_stall_cycles(self.sram_stall_cycles, self.dram_stall_cycles)


def whole_stall_cycles(sram_stall_cycles: Any, dram_stall_cycles: Any) -> Any:
    """The SRAM and DRAM stalls' sum in whole cycles, rounded up: an exact int for one
    mapping; float64 over candidates (``1e-9`` absorbs float noise on whole values)."""
    total = sram_stall_cycles + dram_stall_cycles
    if isinstance(total, np.ndarray):
        return np.ceil(total - 1e-9)
    return math.ceil(total)


def _cycles_per_beat(bits: int, buf: SramSpec, accesses_per_word: int = 1) -> int:
    """Cycles one beat of ``bits`` occupies a buffer (>= 1)."""
    accesses = accesses_per_word * -(-bits // buf.width_bits)
    return max(1, -(-accesses // buf.ports))


#: A stream length every kind's stream cycles repeat over: each kind takes a whole number of
#: cycles per chunk of at most 64 elements (``ceil(len / k)`` beats of the cube, the adder
#: tree's ``k``, the bit-plane array's ``depth``, the LUT's ``group``, the MX ``block``; their
#: fields' bounds in ``hw.spec``), so the slope of ``fold_cycles`` over a multiple of every
#: such chunk is exact. Over 4096 elements (as it was) a 3-deep cube's came out 1365/4096,
#: not 1/3: its 24-bit A beat then asked the A buffer for 73 bits a cycle, one more access
#: than its 72-bit line, and the model counted an SRAM stall on every third stream element
#: (up to 27% more cycles than the tile RTL of a 3x4x3 cube, tests/test_tile.py).
_STREAM_PERIOD = math.lcm(*range(1, 65))


@memo(maxsize=256)
def beat_cycles(spec: EngineSpec) -> Exact:
    """Engine cycles per element of the streamed dimension: the slope of ``fold_cycles``
    over :data:`_STREAM_PERIOD` elements (exact; ``float()`` of it for the candidates'
    arrays)."""
    length = _STREAM_PERIOD
    return exact_div(spec.fold_cycles(2 * length) - spec.fold_cycles(length), length)


@memo(maxsize=256)
def overlaps_folds(spec: EngineSpec) -> bool:
    """Whether the engine starts a fold before the previous one has drained
    (``fold_interval < fold_cycles`` for a long stream), moving a stationary operand meanwhile
    (loading the next fold's weights, or draining the previous fold's outputs). The cycle a
    last result spends in an output register (``spec.output_register_cycles``, ``cpa_reg``)
    is no such overlap."""
    length = 1 << 12
    return spec.fold_interval(length) < spec.fold_cycles(length) - spec.output_register_cycles


def _stream_stall(bits: int, buf: SramSpec, beat: Any, accesses_per_word: int = 1) -> Any:
    """Stall cycles per stream element whose beat of ``bits`` the engine consumes in ``beat``
    cycles. A slow (bit-serial) engine gives the buffer ``beat`` cycles per beat; a fast one
    (``beat < 1``) asks for ``1 / beat`` beats per cycle, fetched together. Exact for a
    :class:`~fractions.Fraction` ``beat``."""
    if beat >= 1:
        return max(0, _cycles_per_beat(bits, buf, accesses_per_word) - beat)
    together = _cycles_per_beat(math.ceil(bits / beat), buf, accesses_per_word)
    return (together - 1) * beat


@memo(maxsize=256)
def exact_link(arch: ArchSpec) -> tuple[Exact, Exact]:
    """``(bytes per cycle, latency in cycles)`` of ``arch``'s DRAM link as the exact values of
    the float64s the candidates are ranked with (``arch.dram_bytes_per_cycle`` and
    ``latency_ns * clock_mhz / 1e3``)."""
    return exact(arch.dram_bytes_per_cycle), exact(arch.dram.latency_ns * arch.clock_mhz / 1e3)


def traffic_without_stalls(
    arch: ArchSpec,
    gemm: Gemm,
    cands: Candidates | Mapping,
    compute_cycles: Any,
    *,
    memory: Memory,
    grid: FoldGrid | None = None,
) -> tuple[MemoryTraffic, DramExposure | CandidateExposure | None]:
    """Everything of :func:`memory_traffic` that does not depend on the DRAM link's bandwidth,
    latency or the clock (bytes, SRAM stalls) plus what the DRAM stalls need
    (:class:`DramExposure`, ``None`` for ideal memory); :func:`with_dram_stalls` finishes it.
    The traffic's ``dram_transfer_cycles`` hold bytes until then.

    ``cands``: candidate mappings (float64 arrays out, to rank them) or one
    :class:`mapping.Mapping` (exact fractions and ints out: module doc). The two are the same
    formulas: the SRAM side is one generic function; the DRAM side is written once over the
    candidates' stacked arrays (operands x loop positions x candidates: a few array
    operations for all of them) and once in Python numbers for one mapping (exact), and
    ``tests/test_exact_integers.py`` holds them equal on every candidate of random GEMMs."""
    if memory not in MEMORY_MODES:
        raise ValueError(f"memory: must be one of {', '.join(MEMORY_MODES)} (got {memory!r})")
    one = isinstance(cands, Mapping)  # one mapping, exactly; else candidates, float64
    u = arch.engine.unrolling()
    zero: Any = 0
    if one:
        assert isinstance(cands, Mapping)
        if grid is None:
            grid = fold_grid(u, gemm.M, gemm.N, gemm.K, cands.tile_m, cands.tile_n,
                             cands.tile_k)
    else:
        assert isinstance(cands, Candidates)
        zero = np.zeros(cands.shape)
        # per tile (1, T) or per candidate (O, T); a caller's arrays of one entry per
        # candidate, in candidate order, are laid out as (O, T)
        compute_cycles = cands.on_grid(compute_cycles)
        if grid is None:
            grid = cands.fold_grid(u)
        else:
            grid = FoldGrid(u, *(cands.on_grid(grid.along(d)) for d in DIMS))
    sram = _sram_side(arch, gemm, grid, one)
    if memory == "ideal":
        return MemoryTraffic(
            dram_a_read_bytes=zero, dram_w_read_bytes=zero, dram_o_write_bytes=zero,
            dram_o_read_bytes=zero,
            sram_a_read_bytes=sram.a_rd, sram_a_write_bytes=zero,
            sram_w_read_bytes=sram.w_rd, sram_w_write_bytes=zero,
            sram_o_read_bytes=sram.o_rd, sram_o_write_bytes=sram.o_wr,
            sram_stall_cycles=zero, dram_stall_cycles=zero, dram_transfer_cycles=zero,
        ), None
    exposure: DramExposure | CandidateExposure
    if one:
        assert isinstance(cands, Mapping)
        dram, exposure = _mapping_dram(arch, gemm, cands, compute_cycles + sram.stall)
    else:
        assert isinstance(cands, Candidates)
        dram, exposure = _candidate_dram(arch, gemm, cands, compute_cycles + sram.stall)
    dram_a, dram_w, dram_o_wr, dram_o_rd = dram
    traffic = MemoryTraffic(
        dram_a_read_bytes=dram_a,
        dram_w_read_bytes=dram_w,
        dram_o_write_bytes=dram_o_wr,
        dram_o_read_bytes=dram_o_rd,
        sram_a_read_bytes=sram.a_rd,
        sram_a_write_bytes=dram_a,
        sram_w_read_bytes=sram.w_rd,
        sram_w_write_bytes=dram_w,
        # write-backs read the buffer; spilled partial sums are written back into it
        sram_o_read_bytes=sram.o_rd + dram_o_wr,
        sram_o_write_bytes=sram.o_wr + dram_o_rd,
        sram_stall_cycles=sram.stall,
        dram_stall_cycles=zero,
        # bytes until with_dram_stalls divides them
        dram_transfer_cycles=dram_a + dram_w + dram_o_wr + dram_o_rd,
    )
    return traffic, exposure


class _Sram(NamedTuple):
    """The engine side of :func:`traffic_without_stalls`: SRAM bytes and port stalls."""

    a_rd: Any
    w_rd: Any
    o_rd: Any
    o_wr: Any
    stall: Any


def _sram_side(arch: ArchSpec, gemm: Gemm, grid: FoldGrid, one: bool) -> _Sram:
    """SRAM reads and writes by the engine and the SRAM-port stalls (module doc): exact for
    one mapping's grid (``one``), float64 arrays over candidates."""
    spec = arch.engine
    M, N, K = gemm.M, gemm.N, gemm.K
    # element widths on the engine side (scales live beside the data, not in its beats)
    a_bits, w_bits, acc_bits = get_format(gemm.a_fmt).bits, get_format(gemm.w_fmt).bits, \
        spec.acc_bits
    u = spec.unrolling()
    unroll = {"m": u.m or 1, "n": u.n or 1, "k": u.k or 1}
    stream = u.stream
    div: Any = exact_div if one else operator.truediv
    maximum: Any = max if one else np.maximum
    beat: Any = beat_cycles(spec) if one else float(beat_cycles(spec))
    sram_a_rd = grid.folds_n * div(M * K * a_bits, 8)
    sram_w_rd = grid.folds_m * div(K * N * w_bits, 8)
    o_drains = grid.folds_k  # partial-sum blocks per output element
    o_acc_bytes = div(M * N * acc_bits, 8)

    # stream elements and folds, all folds, and of the first K fold of each output (which
    # writes its partial sums; the later ones RMW them)
    stream_extent = {"m": M, "n": N, "k": K}[stream]
    spatial = grid.spatial
    stream_elems = spatial * stream_extent
    folds = grid.total
    first_k = count_product(grid.folds_m, grid.folds_n)  # folds // folds_k, exactly
    if stream == "k":
        stream_first = stream_elems // grid.folds_k
    else:  # spatial is folds_k times the other spatial dimension's folds
        stream_first = count_product(grid.along("n" if stream == "m" else "m"), stream_extent)
    operands: tuple[tuple[Operand, int, SramSpec], ...] = (
        ("A", a_bits, arch.a_buffer), ("W", w_bits, arch.w_buffer),
        ("O", acc_bits, arch.o_buffer))
    streamed: Any = 0
    stationary: Any = 0
    for op, bits, buf in operands:
        dims = OPERAND_DIMS[op]
        rmw = 2 if op == "O" else 1
        if stream in dims:
            (other,) = (d for d in dims if d != stream)
            beat_bits = unroll[other] * bits
            first = _stream_stall(beat_bits, buf, beat)
            again = _stream_stall(beat_bits, buf, beat, rmw)
            if first or again:
                streamed = maximum(streamed, stream_first * first
                                   + (stream_elems - stream_first) * again)
        else:
            lines, line_elems = unroll[dims[0]], unroll[dims[1]]
            first = lines * (_cycles_per_beat(line_elems * bits, buf) - 1)
            again = lines * (_cycles_per_beat(line_elems * bits, buf, rmw) - 1)
            if first or again:
                stationary = stationary + first_k * first + (folds - first_k) * again
    # An engine that moves the stationary operand while another fold streams (fold_interval
    # < fold_cycles: double-buffered weights or outputs) overlaps its stalls too.
    stall = maximum(stationary, streamed) if overlaps_folds(spec) else stationary + streamed
    if not one and not isinstance(stall, np.ndarray):
        stall = np.zeros(np.shape(grid.folds_m))
    return _Sram(a_rd=sram_a_rd, w_rd=sram_w_rd, o_rd=(o_drains - 1) * o_acc_bytes,
                 o_wr=o_drains * o_acc_bytes, stall=stall)


def _mapping_dram(arch: ArchSpec, gemm: Gemm, m: Mapping, busy_total: Exact
                  ) -> tuple[tuple[Exact, Exact, Exact, Exact], DramExposure]:
    """DRAM bytes per operand (A, W, O written, O read back) and the stalls' exposure of one
    mapping, exactly (module doc: tile reloads per loop-boundary class)."""
    M, N, K = gemm.M, gemm.N, gemm.K
    a_dram_bits, w_dram_bits = gemm.exact_a_storage_bits, gemm.exact_w_storage_bits
    o_bits, acc_bits = get_format(gemm.o_fmt).bits, arch.engine.acc_bits
    tm, tn, tk = m.tile_m, m.tile_n, m.tile_k
    tiles_m, tiles_n, tiles_k = trips = (m.tiles_m, m.tiles_n, m.tiles_k)
    order = tuple(DIMS.index(d) for d in m.loop_order)
    t1, t2, t3 = t_ord = tuple(trips[j] for j in order)
    # Boundaries where loop j advances and inner loops wrap.
    counts = (t1 - 1, t1 * (t2 - 1), t1 * t2 * (t3 - 1))

    def changes(op: int) -> tuple[bool, bool, bool]:
        """Per loop position: whether the operand's tile changes at that boundary class (it
        depends on the loop, or an inner loop it depends on wraps)."""
        dep = [bool(_DEP[op, order[j]]) for j in range(3)]
        moving = [dep[j] and t_ord[j] > 1 for j in range(3)]
        return (dep[0] or moving[1] or moving[2], dep[1] or moving[2], dep[2])

    def boundaries(ch: tuple[Any, Any, Any]) -> int:
        return 1 + sum(c * x for c, x in zip(counts, ch, strict=True))

    ch_a, ch_w, ch_o = changes(0), changes(1), changes(2)
    n_a, n_w = boundaries(ch_a), boundaries(ch_w)  # tile loads
    visits_o = boundaries(ch_o)  # output-tile residencies
    distinct_o = tiles_m * tiles_n
    revisits_o = visits_o - distinct_o  # each ends with a partial spill and a later re-read
    o_acc_bytes = exact_div(M * N * acc_bits, 8)

    dram_a = exact_div(n_a * exact_div(M * K * a_dram_bits, 8), tiles_m * tiles_k)
    dram_w = exact_div(n_w * exact_div(K * N * w_dram_bits, 8), tiles_k * tiles_n)
    part_tile = exact_div(o_acc_bytes, distinct_o)
    dram_o_wr = exact_div(M * N * o_bits, 8) + revisits_o * part_tile
    dram_o_rd = revisits_o * part_tile
    first_a = exact_div(tm * tk * a_dram_bits, 8)
    first_w = exact_div(tk * tn * w_dram_bits, 8)
    last_o = exact_div((M - (tiles_m - 1) * tm) * (N - (tiles_n - 1) * tn) * o_bits, 8)

    def per_change(total: Exact, exposed: Exact, changes_n: int) -> Exact:
        return exact_div(total - exposed, changes_n) if changes_n > 0 else 0

    per_a = per_change(dram_a, first_a, n_a - 1)
    per_w = per_change(dram_w, first_w, n_w - 1)
    per_o_rd = per_change(dram_o_rd, 0, visits_o - 1)  # partial sums reloaded
    dbuf = {"a": arch.a_buffer.double_buffered, "w": arch.w_buffer.double_buffered,
            "o": arch.o_buffer.double_buffered}
    iterations = tiles_m * tiles_n * tiles_k
    # The write-back of the output tile the loops leave: into a single-buffered level, at
    # that boundary; from a double-buffered one it is posted and yields to the reads, and
    # needs its half again only when the visit after the next one starts, so it moves while
    # the next visit's tiles compute: spread over every boundary.
    if dbuf["o"]:
        per_o_wr = per_change(dram_o_wr, last_o, iterations - 1)
        ch_wr: tuple[Any, Any, Any] = (1, 1, 1)
    else:
        per_o_wr = per_change(dram_o_wr, last_o, visits_o - 1)
        ch_wr = ch_o
    over: list[Any] = [0, 0, 0]  # bytes per boundary into double-buffered tiles
    serial: list[Any] = [0, 0, 0]  # and into single-buffered ones
    for role, ch, per in (("a", ch_a, per_a), ("w", ch_w, per_w), ("o", ch_o, per_o_rd),
                          ("o", ch_wr, per_o_wr)):
        target = over if dbuf[role] else serial
        for j in range(3):
            if ch[j]:  # a tile that does not change adds nothing
                target[j] = target[j] + per
    # of which written (the output tile's write-back: posted, no latency to wait for)
    written: tuple[Any, Any, Any] = (per_o_wr if ch_wr[0] else 0, per_o_wr if ch_wr[1] else 0,
                                     per_o_wr if ch_wr[2] else 0)
    none = (0, 0, 0)
    exposure = DramExposure(counts=counts, serial_bytes=tuple(serial),
                            overlap_bytes=tuple(over),
                            serial_written=none if dbuf["o"] else written,
                            overlap_written=written if dbuf["o"] else none,
                            busy_cycles=exact_div(busy_total, iterations),
                            edge_bytes=(first_a + first_w, last_o), exact=True,
                            nest=_nest(arch, gemm, m, busy_total))
    return (dram_a, dram_w, dram_o_wr, dram_o_rd), exposure


def _nest(arch: ArchSpec, gemm: Gemm, m: Mapping, busy_total: Exact) -> Nest:
    """The tile loops of mapping ``m`` for :func:`sim.timeline.timeline_cycles`: per distinct
    tile size, the engine's timing (its folds back to back, the SRAM stalls spread over the
    tiles in proportion to their folds' cycles)."""
    spec = arch.engine
    u = spec.unrolling()
    unroll = {"m": u.m or 0, "n": u.n or 0, "k": u.k or 0}
    dims = (gemm.M, gemm.N, gemm.K)
    tile = (m.tile_m, m.tile_n, m.tile_k)
    beat = beat_cycles(spec)
    overlaps = overlaps_folds(spec)
    try:  # beyond the engine contract (fold timing, unrolling): kinds that preload say so
        preload = spec.preload_cycles
    except NotImplementedError:
        preload = 0
    # per dimension: (size, tiles of that size)
    sizes = []
    for d, t in zip(dims, tile, strict=True):
        full, rest = divmod(d, t)
        sizes.append([(t, full)] + ([(rest, 1)] if rest else []))
    base: dict[tuple[int, int, int], tuple[int, int, int, Exact]] = {}
    feed_sum: Exact = 0
    last = (sizes[0][-1][0], sizes[1][-1][0], sizes[2][-1][0])
    for (tm, cm), (tn, cn), (tk, ck) in itertools.product(*sizes):
        ext = {"m": tm, "n": tn, "k": tk}
        folds = 1
        for dim in DIMS:
            if unroll[dim]:
                folds *= -(-ext[dim] // unroll[dim])
        length = ext[u.stream]
        interval = spec.fold_interval(length)
        # a fold preloads its stationary input, streams, fills and drains (hw.spec); an
        # engine that overlaps folds preloads the next fold's while this one streams: the
        # tile's last beat comes ``gap`` cycles before its last interval ends (a fold that
        # does not overlap drains inside it) and its results ``tail`` cycles after
        # the engine takes a fold's ``length`` elements in whole beats (``ceil(length *
        # beat)`` cycles, as ``fold_interval`` counts them), so the tile's last beat, which
        # frees its A and W halves, is a whole cycle after its start: measured on
        # ``amaranth.sim``, the 4x4x2 cube's 25-element folds take 13 beats, not 12.5 (the
        # half freed half a cycle early put the model 1 or 2 cycles under the tile on four
        # of ``tpe verify``'s GEMMs with an ideal link, and one with its output double buffer)
        hidden = preload if overlaps else 0
        gap = max(0, interval - (preload - hidden) - math.ceil(length * beat))
        tail = max(0, spec.fold_cycles(length) - interval - hidden)
        base[(tm, tn, tk)] = (folds * interval, interval, tail, gap)
        feed_sum += cm * cn * ck * folds * interval
    # the GEMM's first fold preloads its stationary input before it streams, unhidden also
    # where later folds take theirs while the previous one streams (``busy_total`` counts it,
    # the tiles' folds do not: the timeline starts the first tile's folds that much later,
    # ``sim.timeline``, ``lead``); the SRAM stalls spread over the rest
    stationary = next((op for op, dd in (("A", "mk"), ("W", "kn")) if u.stream not in dd),
                      None)
    first_preload = preload if overlaps and stationary and preload else 0
    scale = exact_div(busy_total - first_preload, feed_sum + base[last][2])
    # the input a fold holds stationary is released before the tile's last beat: taken
    # while the previous fold streams (weights, WS with its double buffer), a fold before;
    # preloaded between folds (WS without it), once the last fold has preloaded it, ``gap +
    # preload`` cycles into that fold (hw.tile: the weight walker leaves the tile then;
    # with preload_each, measured on amaranth.sim on the 4x4 array of tests/test_tile.py, 10
    # GEMMs on the model's mappings, a 16-byte link with 40 cycles of latency: the model was
    # 1.7% over the tile on average, 4.5% at most, without the two; equal with them)
    early = stationary if overlaps or preload else None
    timing = tuple(
        (size, TileTiming(busy=feed * scale, release=(feed - gap) * scale,
                          early=(interval if overlaps else interval - gap - preload) * scale,
                          drain=tail * scale))
        for size, (feed, interval, tail, gap) in base.items())
    o_bits = get_format(gemm.o_fmt).bits
    blocks = None  # the tile's scratchpad lines, for its DMA's row segments on a port of beats
    write_block = None  # the blocks its write walker writes an output tile in
    if arch.memory[-1].beat_bytes is not None:
        from hw.spec.tile import engine_block, line_blocks  # the tile's layout: beats only

        blocks = line_blocks(spec)
        write_block = engine_block(spec) if blocks is not None else None
    o1, o2, o3 = m.loop_order
    h_a, h_w, h_o = (2 if b.double_buffered else 1
                     for b in (arch.a_buffer, arch.w_buffer, arch.o_buffer))
    return Nest(dims=dims, tile=tile, order=(o1, o2, o3),
                a_bytes=exact_div(gemm.exact_a_storage_bits, 8),
                w_bytes=exact_div(gemm.exact_w_storage_bits, 8),
                acc_bytes=exact_div(spec.acc_bits, 8), o_bytes=exact_div(o_bits, 8),
                halves=(h_a, h_w, h_o),
                timing=timing, early_op=early,
                preload=(stationary, preload) if stationary and preload else None,
                preload_each=bool(stationary and preload and not overlaps),
                segment=None if blocks is None else (blocks["A"][1], blocks["W"][1],
                                                     blocks["O"][1]),
                write_block=write_block)


#: Which loop dimensions (``DIMS``) index each operand (:data:`mapping.OPERAND_DIMS`): rows
#: A, W, O.
_DEP = np.array([[d in OPERAND_DIMS[op] for d in DIMS] for op in ("A", "W", "O")])
#: The dimension (index into ``DIMS``) that does not index each operand, shaped to broadcast
#: against (operand, loop position, loop order, tile).
_INDEPENDENT = np.argmin(_DEP, axis=1)[:, None, None, None]


def _candidate_dram(arch: ArchSpec, gemm: Gemm, cands: Candidates, busy_total: np.ndarray
                    ) -> tuple[tuple[Any, Any, Any, Any], CandidateExposure]:
    """:func:`_mapping_dram` for every candidate at once, in float64: per tile ``(1, T)`` and
    per loop order and tile ``(O, T)`` arrays, and the per-operand and per-loop-position
    quantities stacked in front of them (``(operand, position, O, T)``).

    The three operands' bytes per boundary are spread over their boundaries together,
    stacked ``(3, O, T)`` (A, W, O), each entry by the float64 operations one operand's
    array alone would take, in the same order (so every candidate's figures are the same
    bits as one operand at a time gave)."""
    M, N, K = gemm.M, gemm.N, gemm.K
    a_dram_bits, w_dram_bits = gemm.a_storage_bits, gemm.w_storage_bits
    o_bits, acc_bits = get_format(gemm.o_fmt).bits, arch.engine.acc_bits
    tm, tn, tk = cands.tiles_f  # per tile, (1, T) each
    tiles_m, tiles_n, tiles_k = cands.trips_f
    t_ord = cands.trips_ordered  # trip counts by loop position (3, O, T)
    t1, t2, t3 = t_ord
    # boundaries where loop j advances and inner loops wrap: t1 - 1, t1 (t2 - 1), t1 t2 (t3 - 1)
    counts = np.empty(t_ord.shape)
    np.subtract(t1, 1, out=counts[0])
    np.multiply(t1, np.subtract(t2, 1, out=counts[1]), out=counts[1])
    np.multiply(np.multiply(t1, t2), np.subtract(t3, 1, out=counts[2]), out=counts[2])
    # Whether each operand's tile changes at each boundary class, (operand, position, O, T):
    # it depends on the loop there, or an inner loop it depends on (with more than one
    # trip) wraps. ``dep`` (operand, position, O, 1): A does not depend on n, W on m, O on k.
    dep = cands.orders.T[None, :, :, None] != _INDEPENDENT
    ch = np.empty((3, 3, *t1.shape), dtype=bool)
    inner = np.logical_and(dep[:, 2], t3 > 1, out=ch[:, 0])
    np.logical_or(dep[:, 1], inner, out=ch[:, 1])
    np.logical_or(np.logical_and(dep[:, 1], t2 > 1), inner, out=ch[:, 0])
    ch[:, 0] |= dep[:, 0]
    ch[:, 2] = dep[:, 2]
    # tile loads (A, W) and output-tile residencies: one plus the boundaries it changes at
    # (``1 + sum over positions``, the positions added in order)
    loads = ch[:, 0] * counts[0]
    loads += ch[:, 1] * counts[1]
    loads += ch[:, 2] * counts[2]
    loads += 1
    n_a, n_w, visits_o = loads
    distinct_o = tiles_m * tiles_n
    iterations = distinct_o * tiles_k
    o_acc_bytes = M * N * acc_bits / 8

    dram_a = n_a * (M * K * a_dram_bits / 8) / (tiles_m * tiles_k)
    dram_w = n_w * (K * N * w_dram_bits / 8) / (tiles_k * tiles_n)
    part_tile = o_acc_bytes / distinct_o
    # bytes moved after the first tile (A, W) and the partial sums reloaded (O), each spread
    # over the boundaries it changes at
    first_a = tm * tk * a_dram_bits / 8
    first_w = tk * tn * w_dram_bits / 8
    moved = np.empty(loads.shape)
    np.subtract(dram_a, first_a, out=moved[0])
    np.subtract(dram_w, first_w, out=moved[1])
    dram_o_rd = np.multiply(visits_o - distinct_o, part_tile, out=moved[2])
    dram_o_wr = M * N * o_bits / 8 + dram_o_rd
    last_o = (M - (tiles_m - 1) * tm) * (N - (tiles_n - 1) * tn) * o_bits / 8
    changes = loads - 1
    per = _per_change(moved, changes)  # per boundary
    dbuf = {"a": arch.a_buffer.double_buffered, "w": arch.w_buffer.double_buffered,
            "o": arch.o_buffer.double_buffered}
    # the output tile's write-back (see _mapping_dram): per boundary of every kind (shape
    # (1, O, T)) from a double-buffered level, where the output tile changes into a single one
    if dbuf["o"]:
        per_o_wr = _per_change(dram_o_wr - last_o, iterations - 1)
        written: np.ndarray = per_o_wr[None]
    else:
        per_o_wr = _per_change(dram_o_wr - last_o, changes[2])
        written = ch[2] * per_o_wr
    by_role = ch * per[:, None]  # bytes per boundary, (operand, position, O, T)
    over: Any = None  # bytes per boundary into double-buffered tiles, (position, O, T)
    serial: Any = None  # and into single-buffered ones
    for role, bytes_in in (("a", by_role[0]), ("w", by_role[1]), ("o", by_role[2]),
                           ("o", written)):
        if dbuf[role]:
            over = bytes_in if over is None else over + bytes_in
        else:
            serial = bytes_in if serial is None else serial + bytes_in
    exposure = CandidateExposure(
        counts=counts, serial_bytes=serial, overlap_bytes=over,
        serial_written=None if dbuf["o"] else written,
        overlap_written=written if dbuf["o"] else None,
        busy_cycles=busy_total / iterations, first_bytes=first_a + first_w,
        last_bytes=last_o)
    return (dram_a, dram_w, dram_o_wr, dram_o_rd), exposure


def _per_change(total: np.ndarray, changes_n: np.ndarray) -> np.ndarray:
    """``total`` spread over ``changes_n`` boundaries (0 where there are none)."""
    return np.where(changes_n > 0, total / np.maximum(changes_n, 1), 0.0)


@dataclass(frozen=True, slots=True, eq=False)
class DramExposure:
    """What the DRAM stalls of every candidate depend on, apart from the link itself: per loop
    position (outer, middle, inner) the boundary counts, the bytes each boundary moves into or
    out of single-buffered (``serial``) and double-buffered (``overlap``) tiles and how many
    of them are written (``*_written``: write-backs, posted), the busy cycles of one tile
    iteration, and the first tiles' bytes (read) and the last output tile's (written). Float64
    arrays over candidates, or exact fractions for one mapping (``exact``)."""

    counts: tuple[Any, Any, Any]
    serial_bytes: tuple[Any, Any, Any]
    overlap_bytes: tuple[Any, Any, Any]
    serial_written: tuple[Any, Any, Any]
    overlap_written: tuple[Any, Any, Any]
    busy_cycles: Any
    edge_bytes: tuple[Any, Any]
    exact: bool = False
    #: The mapping's tile loops, for its timeline (:mod:`sim.timeline`).
    nest: Nest | None = None



def _timeline_stall(e: DramExposure, arch: ArchSpec, bw: Exact, lat: Exact,
                    floor: bool = False) -> Exact:
    """The DRAM stall cycles of one mapping from its timeline: the cycles from the start to
    the last byte written, rounded up to a whole cycle, beyond the engine's busy ones. With
    ``floor``, a lower bound on them from the timeline's floor
    (:func:`sim.timeline.timeline_floor`), without running it."""
    assert e.nest is not None
    busy = e.busy_cycles * count_product(*(-(-d // t) for d, t in zip(
        e.nest.dims, e.nest.tile, strict=True)))
    beat = arch.memory[-1].beat_bytes
    cycles = (timeline_floor(e.nest, bw, lat, beat) if floor
              else timeline_cycles(e.nest, bw, lat, beat))
    total = math.ceil(cycles - 1e-6)
    stall = total - busy
    if stall <= 0:
        return 0
    return stall.numerator if isinstance(stall, Fraction) and stall.denominator == 1 else stall


def _exact_dram_stall(e: DramExposure, bw: Exact, lat: Exact) -> Exact:
    """The DRAM stall cycles of one mapping (``e.exact``), exactly: the formula
    :func:`with_dram_stalls` evaluates over candidates, in Python integers over one common
    denominator ``D`` (the least common multiple of the exposure's denominators times the
    link's bytes-per-cycle numerator times its latency's denominator), which makes every term
    an integer numerator: the same value as :class:`~fractions.Fraction` arithmetic, without
    normalizing a fraction at every step."""
    bw_n, bw_d = bw.numerator, bw.denominator
    lat_n, lat_d = lat.numerator, lat.denominator
    values = (*e.serial_bytes, *e.overlap_bytes, *e.serial_written, *e.overlap_written,
              e.busy_cycles, *e.edge_bytes)
    scale = math.lcm(*(v.denominator for v in values))  # every value is ``n / scale``

    def num(v: Exact) -> int:
        """``v * scale`` (an integer)."""
        return v.numerator * (scale // v.denominator)

    per_byte = bw_d * lat_d  # x / bw == num(x) * per_byte / D
    latency = lat_n * scale * bw_n  # lat == latency / D

    def transfer(nbytes: Exact, written: Exact) -> int:
        time = num(nbytes) * per_byte
        if nbytes > written:  # reads wait for the latency, which the writes may fill
            time += max(0, latency - num(written) * per_byte)
        return time

    busy = num(e.busy_cycles) * bw_n * lat_d

    def overlapped(nbytes: Exact, written: Exact) -> int:
        """Twice the exposed time of a double-buffered boundary (an integer)."""
        return max(0, transfer(nbytes, written) - busy, 2 * (num(nbytes) * per_byte - busy))

    first, last = e.edge_bytes
    twice = 2 * (transfer(first, 0) + transfer(last, last))  # twice the stall, in 1/D
    first_class = next((j for j in (2, 1, 0) if e.counts[j] > 0), None)
    for j, (count, serial, overlap, s_wr, o_wr) in enumerate(zip(
            e.counts, e.serial_bytes, e.overlap_bytes, e.serial_written, e.overlap_written,
            strict=True)):
        exposed = 2 * transfer(serial, s_wr)
        if overlap:
            exposed += overlapped(overlap, o_wr)
            if j == first_class:  # its requests followed the first tile's: no latency
                twice += (2 * max(0, num(overlap) * per_byte - busy)
                          - overlapped(overlap, o_wr))
        twice += count * exposed
    out = Fraction(twice, 2 * scale * bw_n * lat_d)
    return out.numerator if out.denominator == 1 else out


@dataclass(frozen=True, slots=True, eq=False)
class CandidateExposure:
    """:class:`DramExposure` of every candidate at once (float64): per loop position, loop
    order and tile, ``(3, O, T)`` arrays of boundary counts and of the bytes each boundary
    moves into single-buffered (``serial_bytes``) and double-buffered (``overlap_bytes``)
    tiles, of which written (``*_written``); ``None`` where no operand moves bytes of that
    kind. Per tile (``(1, T)``): one tile iteration's busy cycles, the first tiles' bytes
    (read) and the last output tile's (written) (:class:`mapping.Candidates`)."""

    counts: np.ndarray
    serial_bytes: np.ndarray | None
    overlap_bytes: np.ndarray | None
    serial_written: np.ndarray | None
    overlap_written: np.ndarray | None
    busy_cycles: np.ndarray
    first_bytes: np.ndarray
    last_bytes: np.ndarray
    #: What does not depend on the link, derived once from the fields above: whether a
    #: boundary class reads anything (and so waits for the latency), per kind, and the first
    #: boundary's class (:func:`with_dram_stalls`).
    serial_reads: np.ndarray | None = dataclasses.field(init=False)
    overlap_reads: np.ndarray | None = dataclasses.field(init=False)
    first_reads: np.ndarray = dataclasses.field(init=False)
    first_class: np.ndarray = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        def reads(nbytes: np.ndarray | None, written: np.ndarray | None) -> np.ndarray | None:
            if nbytes is None:
                return None
            return nbytes > 0 if written is None else nbytes > written

        here = self.counts > 0
        first_class = here.copy()
        first_class[1] &= ~here[2]
        first_class[0] &= ~(here[1] | here[2])
        derived = {"serial_reads": reads(self.serial_bytes, self.serial_written),
                   "overlap_reads": reads(self.overlap_bytes, self.overlap_written),
                   "first_reads": self.first_bytes > 0, "first_class": first_class}
        for name, value in derived.items():
            object.__setattr__(self, name, value)


def with_dram_stalls(traffic: MemoryTraffic, exposure: DramExposure | CandidateExposure,
                     arch: ArchSpec, *, timeline: bool = True, floor: bool = False
                     ) -> MemoryTraffic:
    """``traffic`` from :func:`traffic_without_stalls` with the DRAM stalls of ``arch``'s link
    (bandwidth, latency, clock): see the module doc. One mapping's stalls come from its
    timeline (:mod:`sim.timeline`), or with ``timeline=False`` from the closed form that
    ranks the candidates, evaluated exactly; ``floor``: a lower bound on its timeline's
    stalls, without running it (:func:`sim.timeline.timeline_floor`)."""
    if isinstance(exposure, DramExposure):
        exact_bw, exact_lat = exact_link(arch)
        if timeline and exposure.nest is not None:
            stall = _timeline_stall(exposure, arch, exact_bw, exact_lat, floor)
        else:
            stall = _exact_dram_stall(exposure, exact_bw, exact_lat)
        return traffic.with_link(stall, exact_div(traffic.dram_transfer_cycles, exact_bw))
    return traffic.with_link(candidate_dram_stalls(exposure, arch),
                             traffic.dram_transfer_cycles / arch.dram_bytes_per_cycle)


def candidate_dram_stalls(exposure: CandidateExposure, arch: ArchSpec) -> np.ndarray:
    """The DRAM stall cycles of every candidate on ``arch``'s link (float64, ``(O, T)``): the
    closed form of the module doc, what :func:`with_dram_stalls` adds to their traffic (a
    search needs only these: :func:`sim.gemm.gemm_cost`)."""
    e = exposure
    bw = arch.dram_bytes_per_cycle
    lat = arch.dram.latency_ns * arch.clock_mhz / 1e3
    busy = e.busy_cycles

    def transfer(reads: Any, written: np.ndarray | None, alone: np.ndarray) -> np.ndarray:
        """Moving bytes that take ``alone`` cycles (``nbytes / bw``), ``written`` of them
        posted writes: ``reads / bw + max(lat, written / bw)`` when anything is read
        (``reads``: ``nbytes > written``; the writes go out while the reads wait for the
        latency), else ``written / bw``."""
        if not lat:
            return alone
        if written is None:
            return alone + lat * reads
        return alone + np.maximum(0, lat - written / bw) * reads

    # Stall per boundary class: the serial transfer, and the double-buffered one beyond the
    # busy time (two tiles' loads in flight share the latency, ``(transfer - busy) / 2``,
    # unless the link's bandwidth binds, ``nbytes / bw - busy``).
    s, o = e.serial_bytes, e.overlap_bytes
    per: Any = 0 if s is None else transfer(e.serial_reads, e.serial_written, s / bw)
    if o is not None:
        alone = o / bw
        slack = alone - busy  # the link's bandwidth alone beyond the busy time
        ov = np.maximum(0, np.maximum(
            (transfer(e.overlap_reads, e.overlap_written, alone) - busy) / 2, slack))
        per = ov if s is None else per + ov  # (never -0.0: 0 + ov is ov)
    boundaries = (e.counts * per).sum(axis=0) if isinstance(per, np.ndarray) else 0
    if lat and o is not None:
        # the first boundary (of the innermost loop with more than one trip): its
        # double-buffered loads were requested right after the first tile's, so their latency
        # overlapped those transfers
        boundaries = boundaries - ((ov - np.maximum(0, slack)) * e.first_class).sum(axis=0)
    first = e.first_bytes
    return transfer(e.first_reads, None, first / bw) + e.last_bytes / bw + boundaries


def memory_traffic(
    arch: ArchSpec,
    gemm: Gemm,
    cands: Candidates | Mapping,
    compute_cycles: Any,
    *,
    memory: Memory,
    grid: FoldGrid | None = None,
    timeline: bool = True,
) -> MemoryTraffic:
    """Traffic and stalls of one instance of ``gemm`` for every candidate mapping (float64
    arrays, one entry per candidate) or for one :class:`mapping.Mapping` (exact: module
    doc; its DRAM stalls from its timeline, or with ``timeline=False`` from the closed form
    that ranks the candidates: :func:`with_dram_stalls`).

    ``compute_cycles``: the engine's cycles per candidate (``sim.gemm.tiled_compute_cycles``;
    one entry per candidate, or per tile as :meth:`mapping.Candidates.fold_grid` lays them
    out); ``grid``: the candidates' :func:`mapping.fold_grid` when the caller has it already.
    (:func:`traffic_without_stalls` and :func:`with_dram_stalls` keep the candidates' arrays
    per tile, ``(1, T)``, or per loop order and tile, ``(O, T)``.)
    """
    traffic, exposure = traffic_without_stalls(arch, gemm, cands, compute_cycles,
                                               memory=memory, grid=grid)
    if exposure is not None:
        traffic = with_dram_stalls(traffic, exposure, arch, timeline=timeline)
    if isinstance(cands, Candidates):
        return MemoryTraffic(**{f.name: cands.flat(getattr(traffic, f.name))
                                for f in dataclasses.fields(traffic)})
    return traffic
