"""A whole accelerator tile: engine, operand scratchpads, DMA and loop controller, running a
tiled GEMM ``C = A @ W`` held in external memory (:class:`Tile`, built from a
:class:`hw.spec.TileSpec`, itself derived from the architecture the simulator uses).

**Ports** (all streams follow ``amaranth.lib.stream`` rules: a beat transfers in a cycle where
``valid`` and ``ready`` are both high; ``valid`` never waits for ``ready``):

* Config: ``cfg_we``, ``cfg_addr``, ``cfg_data`` write descriptor register ``cfg_addr``
  (:meth:`hw.spec.TileSpec.registers`: M, N, K, tile sizes, loop order, base addresses and
  row strides in bytes) on a rising clock edge; writes while ``busy`` are dropped. The
  hardware trusts the descriptor: :meth:`hw.spec.TileSpec.check` (which
  :meth:`hw.spec.TileSpec.register_values` runs) refuses one it cannot run; a loop order
  code past the table runs ``mnk``.
  ``start`` (one cycle) runs the GEMM the registers describe; ``busy`` is high from the next
  cycle until the last C write has transferred; ``done`` rises with ``busy`` falling and stays
  high until the next ``start``. The registers keep their values, so the next GEMM rewrites
  only what changes.
* External memory, byte addressed, ``ext_bytes`` (E) bytes per data beat, lowest address in
  the lowest byte lane:

  - ``rd_req`` ``{addr, len}`` (out): read ``len`` bytes from ``addr`` (any alignment).
    Requests may be issued back to back without waiting for data.
  - ``rd_data`` ``{data}`` (in): the responder answers the requests in order, each with
    ``ceil(len / E)`` beats: beat i carries bytes ``addr + i*E ..``; lanes past ``len`` in the
    last beat are ignored.
  - ``wr_req`` ``{addr, len}`` (out) and ``wr_data`` ``{data}`` (out): write ``len`` bytes
    at ``addr``; the request's ``ceil(len / E)`` data beats follow on ``wr_data`` in request
    order (the two streams are independent: a request may run ahead of its data). Writes are
    posted: one is complete when its last data beat has transferred, and the responder must
    answer a later read of the same bytes with the written data.

**Data in memory.** Row-major matrices, each element in ``elem_bytes(bits)`` bytes (little
endian; A and W are read at ``a_bits``/``w_bits``, the bytes above ignored; C is written at
``acc_bits``, sign- or zero-extended to its bytes). C is written at the accumulator width,
and serves as the spill space too: with K split and ``k`` not the innermost loop, an output
tile's partial sums are written to C when the loops leave it and read back when they return.

**Structure.**

* Scratchpads (``amaranth.lib.memory.Memory``, one write and one read port each, lane-wide
  write enables). A line is one engine beat of its operand: an A or W line a ``block_rows``
  x ``block_cols`` block of the operand as stored (A is M x K, W is K x N; row-major in the
  lanes: output-stationary systolic array, 2D matrix, bit-slice array: A a column of
  ``rows``, W a row of ``cols``; weight stationary: A a row segment of ``rows`` along K, W a
  row of ``cols``; cube: A ``m x k``, W ``k x n``), an O line an accumulator row (``cols``
  lanes at ``acc_bits``). Line (row block, column block) of an operand tile has index
  ``column block * row blocks + row block``; when one link beat spans several lines' columns
  (``banks = ext_elems / block_cols``), ``row block * column blocks + column block`` in bank
  ``index mod banks`` at ``index div banks``, so the lines one beat of a matrix row fills are
  in distinct banks and are written in one cycle (for the systolic A, one-column blocks, this
  is the transpose of a row of A into columns). Block counts are the buffer tile's (the
  registers', divided in hardware by a constant: :func:`ceil_div`). O line ``(mb, nb, r)``
  at ``(mb * blocks_n + nb) * rows + r`` (weight stationary: O line ``(nb, m)`` at ``nb *
  tile_m + m``). A double-buffered A or W level is one memory (per bank) of two halves
  (loads use the write port, compute the read port); a double-buffered O level is two
  memories, one per half, since the drain read-modify-writes one half through both ports
  while the other half is written back (its read port) or reloaded (its write port).
* DMA: a loader per operand (below) and an arbiter between them queue read jobs (an operand
  tile into a half: an A tile, a W tile, an output tile's partial sums; four entries, the
  FIFO of job tags that routes each answer to its job's scratchpad). A request walker issues
  one request per matrix row of the operand tile (banked operands) or per row segment of one
  line block (A, W with one bank; O: a row of one accumulator block), job after job without
  waiting for answers; a second walker over the same queue writes the answers into the
  scratchpad (a row of a line block each) and retires the job after its last answer. A write
  walker issues the C requests, a second one reads the O lines (the next one as the current
  one's last beat goes) and sends their beats. Reads and writes run at once.
* Engine (built by :func:`hw.generators.build_component` from the tile's engine spec), output
  stationary (the systolic array, the cube, and the engines of the same ``i``/``o``
  protocol: :data:`hw.spec.tile.ROW_COLUMN_KINDS`): a fold is one C block, K streamed
  (``k_per_beat`` indices a beat; a partial last chunk's W rows past the tile's K enter as
  zeros); the feeder reads one A and one W line per cycle into the engine's ``i`` stream
  (``i.ready`` the only back-pressure, so a bit-serial engine's cycles per beat need nothing
  of the tile); the drain adds each ``o`` row to its O line (read-modify-write; the first K
  tile writes). Weight stationary: a fold is one W block (``rows`` along K, ``cols`` along
  N) in the order (block column, K block), K blocks inner; a weight walker of its own reads
  the fold's ``rows`` W lines into ``wl`` (rows past the tile's K as zeros), the feeder the
  tile's A rows of that K block (A line ``(m, kb)``, a row segment along K) into ``i``, and
  the drain adds each ``o`` row m to O line ``nb * tile_m + m`` (the output tile's first K
  block writes). The two walkers go over the same tiles; the engine pairs their folds, and
  with its weight double buffer takes a fold's weights while the previous fold streams, the
  next tile's too, so the weight walker runs up to a fold ahead and releases a W half when it
  leaves the tile. The arbiter below then breaks ties W first.

**Overlap.** Four walkers go over the tiles in the descriptor's loop order: a *loader* per
operand and the computer. Each loader, at a tile whose tile of its operand changes, waits
for a free half of its operand, acquires it and queues the read job (A: the A tile; W: the W
tile; O: when K has advanced in the output tile, ``k0 != 0``, the reload of the spilled
partial sums, otherwise no job), then moves on; it passes the other tiles a cycle each. A
loader so waits only for its own operand's halves: the operand that does not depend on the
inner loop (A when it is n, W when it is m; k counts only when K is split) loads its next
tile as soon as the computer has left its previous one, and its transfer overlaps the whole
inner sweep on the current one, not only the sweep's last tile. The loaders' jobs share the
read request port: an arbiter queues one job at a time, when the request walker is free for
it, taking the loader whose tile comes first in the sequence (the computer needs it soonest;
ties in the order A, W, O); while the O loader waits for the half that the running
write-back releases, the jobs of later tiles wait too (the link would move their read beats
ahead of the write-back's, which the computer needs first). It cannot deadlock, since the
queue always drains (answers are written as they come), a write-back ends without waiting
for any read, a loader waits only for halves that the computer or the write-back releases
without waiting for any later load, and a job the computer waits on comes no later in the
sequence than any other loader's. The read requests run ahead of the answers across jobs and
tiles, as far as free halves and the queue allow, and the link's latency overlaps the
previous jobs' answers. A tile is *loaded* when each operand's loaded count (its tiles whose
last answer has been written, or, O without a reload, acquired, less those the computer has
left) is not zero: a loader's jobs are answered in the order it queued them, and the O
loader acquires a half without a reload only once its earlier reloads have been answered.
The *feeder* streams the loaded tiles' folds back to back: a tile's first beat follows the
previous tile's last beat, the engine's ``i.ready`` the only back-pressure; once a tile's
last beat has been read it releases the A and W halves the next tile changes. The *drain*
keeps a context per tile (its O half, whether it adds to the partial sums, whether the
output tile is finished after it), since a tile's last folds drain while the next tile
streams; when an output tile's last fold has drained it starts the write-back (after the
previous one, one at a time), which releases the O half when its last beat has gone. A
reload never overtakes its output tile's spill: the O loader acquires the O halves in tile
order and the write-backs (one at a time, in tile order) release them in the same order, so
the half for output tile visit ``j`` is free only once the write-backs of visit ``j -
halves`` and all before it have sent their last beats (writes are posted: those bytes are
written); between two visits of an output tile the loops visit another one, so its previous
visit is ``j - 2`` or earlier, and the reload's requests go after the acquire. A level of
two halves (``double_buffered``) so takes the next tiles' loads and the previous output
tile's write-back while the engine computes; a level of one half makes them wait for the
compute (and the reload for the write-back).

Measured on ``amaranth.sim`` (the 4x4 array of ``tests/test_tile.py``, a link of 16 bytes
per cycle and no latency, 33 random shapes, tiles and loop orders): a GEMM takes the engine's
cycles (``sim.gemm.tiled_compute_cycles``: every fold its ``fold_interval``, the last one its
drain) plus the first tile's read beats, plus the last output tile's write beats, plus 4
cycles (the loader queues the first job; the link answers it a cycle later; the loaded count
follows the last answer; the write-back reads the last O line before its first beat), in 23
of them exactly; the others spill partial sums or load a W tile of several blocks behind a
short edge tile (below). (The loader per operand changed none of that: on 33 other such
GEMMs, 26 were exact with the single loader and with the per-operand ones, and one of the
others took fewer cycles.)

**What the model abstracts** (``sim.timeline``, the DRAM stalls of the mapping a GEMM runs
with; ``benchmarks/tile_agreement.py`` sets them beside the measured cycles over random
shapes and links, ``docs/tile.md`` has the table). The timeline follows this scheme load by
load: a loader per operand that waits only for its own free half (so the operand that does
not depend on the inner loop loads during the sweep on its current tile), the loads one
after another on one link after its latency (when the link frees, of the loads requested by
then the earliest tile's first, as the arbiter picks), a tile computing once its operands have
loaded and the tile before it is done (its folds back to back; the input a fold holds
stationary released a fold early when the engine takes it while the previous fold
streams), each write-back after its tile's drain and the previous write-back, taking what
the reads leave of the link, an output half freed by the write-back of the visit before
last, a reload after it, and the loads of later tiles held back while the output loader
waits for a running write-back. Given the link's beat (``dram.beat_bytes``; the tile's
manifest carries the port's width: ``hw.spec.tile.port_arch``), a tile row takes whole beats
and the port's pipeline counts (``sim.timeline.PORT_PIPELINE``: the first job queued a cycle
after the start, an answer no earlier than the cycle after its request, a tile loaded the
cycle after its last answer, a write-back's first beat a cycle after its drain, or two after
the last beat of the write-back it waited for, less what the link's banked credit bridges;
an output half a write-back frees is free a cycle after its last beat, the output loader
acquires it then, and a visit without a reload is loaded the cycle after that: the free and
loaded counts are registers);
loads requested together go the preloaded input first, and the GEMM's first tile streams
once its other input has loaded, its first fold's preload overlapping that load; without the
weight double buffer, every tile's (the weight walker needs only W loaded, the feeder A and
O), and the W half is freed once the tile's last fold has preloaded its weights (the weight
walker leaves the tile then, ``sim.memory``); with it, only the GEMM's first fold preloads
its weights before it streams (the others take theirs while the fold before streams), so
the first tile's folds start that much after it (``sim.timeline``'s ``lead``) and the
tiles' busy cycles leave that preload out (the model spread it over every tile, 1 or 2
cycles over the tile on every GEMM of ``tpe verify``'s seeds 0 to 3 on the model's mappings
with an ideal link, and 3.6% under it on one with a slow link); an A or W tile in one bank
(no beat fills
several line blocks' columns whole) loads a row a line block's segment at a time, each in
whole beats (``sim.timeline.Nest.segment``: on the odd weight-stationary array, A
segments of 3 elements, the model was 9% to 13% under the tile without it on a 16-byte
link). (The odd 3x4x3 cube was up to 27% faster than the model on its mappings, on a
16-byte link: not the tile but the engine's rate, ``sim.memory.beat_cycles``, taken as the
slope of ``fold_cycles`` over 4096 elements, 1365/4096 cycles an element, not 1/3, which
made a 24-bit A beat ask its 72-bit line for 73 bits and counted an SRAM stall every third
element; the slope is now over a multiple of every kind's chunk. On a 4-byte link, where
reads and writes share one beat a cycle and the write-backs queue, the tile then was up to
3.4% slower than the model: the write walker's two cycles between queued write-backs.)
(The cube with its output double buffer was up to 7.1% slower than the model with an ideal
link, ``tpe verify``'s seeds 0 to 5: its tiles wait for the output half the write-back of the
visit before last frees, which reached the engine three cycles after that write-back's last
beat, the model said none; counting the free and loaded registers left the model 0 to 3
cycles over the tile, at most 2.2%, on those 18 GEMMs.)
The link's credit bucket (up to a beat banked where the link has bytes to spare, spent by a
write-back beside the reads, its last beat in a whole cycle: ``sim.timeline.CREDIT_BEATS``),
the request walker (a job queued once the walker has issued the requests of the one before
and fewer than four await answers, the output loader's wait for a write-back holding back
later tiles' jobs from then: ``sim.timeline.JOB_QUEUE``) and, with the weight double buffer,
a tile streaming no earlier than the preload's cycles after its weights have loaded (which
delays a tile whose weights load late), are counted too, and so are a write-back's beats in
the write walker's blocks (each block row of an output tile's last column a beat of its own
size: ``sim.timeline.Nest.write_block``). (Without the first three, with an ideal
link the cube took other cycles than the model on 12 of 24 GEMMs of ``tpe verify``'s seeds
0, 1 and 4 to 9, -4.7% to +1.3%, and 8 of 18 with its output double buffer, seeds 0 to 5;
the weight double buffer on a 16-byte link of 40 cycles was 3.0% slower than the model on
22x18x15.)
A fold's beats are whole cycles: the engine takes a fold's ``L`` streamed elements in
``ceil(L / k)`` beats (``k`` a beat: two on the 4x4x2 cube), and the tile frees its A and W
halves on its last beat (``sim.memory._nest``); the model freed them ``L / k`` cycles in,
half a cycle early on the cube's odd K extents, and the loads waiting for a half started
early: traced on ``amaranth.sim``, 13x23x25 (4x4x25 tiles) took 473 cycles, the model 471,
its tiles' first beats up to two cycles before the tile's; 20x24x23 with the output double
buffer (its last K tiles 7 deep) 437, the model 436. Counted, every tile's first beat and
every half's release of those two falls in the model's cycle.
With an ideal link (no latency, a beat a cycle) the model equals the tile on the
output-stationary array, the 2D matrix and the weight-stationary array with or without its
weight double buffer (``tests/test_tile.py``), and on the cube, plain and with its output
double buffer, on every one of those 24 and 18 GEMMs (before the whole beats, four of the 24
and one of the 18 were 1 or 2 cycles slower than the model, 0.4% at most).
It leaves out: the SRAM stalls in whole cycles (where a scratchpad stalls the engine, a
tile's cycles are the engine's scaled to its total with the stalls, in fractions; on every
committed cube agreement point the tile's scratchpads stall nothing and each tile's timing
is whole); the link's bytes in whole beats on a link slower than a beat a cycle (a
load ends at the link's average rate, in fractions of a cycle: 18x7x21 on 9.6 bytes a cycle,
the model's first tile at 168.5, the tile's at 168); the request order within a job; the
partial sums'
reload a block's row at a time (it differs from whole rows only where a beat is wider than
an accumulator block's row); and, for loops of more trips than its reduced nest runs, the
middle iterations, counted from samples of them. The
candidates are still ranked by the closed form (``sim.memory``: per loop boundary, the
transfer against the average tile), so the mapping the model picks is the closed form's best,
evaluated by the timeline.

Not built yet: bit-packed sub-byte formats, a write-back at the output format.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from amaranth import Array, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.emit import UNINITIALIZED
from hw.generators import build_component, engine_streams
from hw.spec import TileSpec
from hw.spec.tile import LOOP_ORDERS
from hw.streams import signature_members

__all__ = ["SCRATCHPADS", "Tile", "req_layout"]

#: The name of each operand's scratchpad memories in the Verilog, a bank (or O half) number
#: after it (``a_sp0``, ...).
SCRATCHPADS = {"A": "a_sp", "W": "w_sp", "O": "o_sp"}


def req_layout(spec: TileSpec) -> data.StructLayout:
    """A memory request: ``{addr, len}`` (bytes)."""
    return data.StructLayout({"addr": spec.addr_bits, "len": _len_bits(spec)})


def _len_bits(spec: TileSpec) -> int:
    """Bits of a request's length: the longest request is a whole row of an A or W tile."""
    longest = max(((1 << spec.dim_bits) - 1) * spec.elem_bytes(op) for op in ("A", "W", "O"))
    return longest.bit_length()


def _log2(n: int) -> int:
    assert n & (n - 1) == 0, n
    return n.bit_length() - 1


def ceil_div(x, d: int, bits: int):
    """``ceil(x / d)`` for ``0 <= x < 2**bits`` and a constant ``d >= 1`` (an Amaranth value, or
    an int): a shift when ``d`` is a power of two, else a multiply by the rounded-up
    reciprocal ``m = ceil(2**(n + l) / d)`` and a shift by ``n + l``, ``n = bits + 1``,
    ``2**(l-1) < d <= 2**l``, exact
    for every ``0 <= y = x + d - 1 < 2**n`` (Granlund and Montgomery, "Division by Invariant
    Integers using Multiplication", PLDI 1994, theorem 4.2)."""
    if d & (d - 1) == 0:
        return (x + d - 1) >> _log2(d)
    shift = bits + 1 + (d - 1).bit_length()
    return ((x + d - 1) * -(-(1 << shift) // d)) >> shift


def _walker_state(spec: TileSpec, name: str, d: int, line_bits: int, *,
                  requests: bool) -> SimpleNamespace:
    """The counters and outputs of a DMA walker over the requests of one job: a matrix row
    or block index ``i``, a block offset ``no``, a block row ``r``, a scratchpad line base
    ``base`` and a column block's line offset ``cb``; the request's ``len`` and ``last``, and
    its ``addr`` (a walker that issues the ``requests``) or its scratchpad ``line`` (one
    that follows their answers or data), the other None."""
    rows = max(2, spec.a.block_rows, spec.w.block_rows, spec.engine_block[0])
    return SimpleNamespace(
        i=Signal(d, name=f"{name}_i"), no=Signal(d, name=f"{name}_no"),
        r=Signal(range(rows), name=f"{name}_r"),
        base=Signal(line_bits, name=f"{name}_base"),
        cb=Signal(line_bits, name=f"{name}_cb"),
        addr=Signal(spec.addr_bits, name=f"{name}_addr") if requests else None,
        len=Signal(_len_bits(spec), name=f"{name}_len"),
        line=None if requests else Signal(line_bits, name=f"{name}_line"),
        last=Signal(name=f"{name}_last"))


#: The engine's submodule name: its module in the Verilog is ``<tile name>.engine``.
ENGINE = "engine"


def submodule_outputs(spec: TileSpec) -> dict[str, list[str]]:
    """The output ports of the tile's submodules by submodule (its engine's: ``busy``, the
    output stream's), the names Amaranth gives them in the Verilog; from the engine's
    signature (every kind's: ``hw.streams.signature_members``), no component built."""
    members = wiring.Signature(signature_members(engine_streams(spec.engine))).members
    return {ENGINE: ["__".join(map(str, path)) for path, member in members.flatten()
                     if member.is_port and member.flow == Out]}


class _Fields(dict):
    """A dict whose missing keys are made by ``make(key)`` (and kept) when first read."""

    def __init__(self, make) -> None:
        super().__init__()
        self._make = make

    def __missing__(self, key):
        value = self[key] = self._make(key)
        return value


def _min(a, b):
    return Mux(a < b, a, b)


class Tile(wiring.Component):
    """The tile of ``spec``; see the module docstring for its ports and protocol."""

    def __init__(self, spec: TileSpec):
        if not isinstance(spec, TileSpec):
            raise TypeError(f"spec must be a TileSpec, not {spec!r}")
        self.spec = spec
        regs = spec.registers()
        beat = 8 * spec.ext_bytes
        super().__init__({
            "cfg_we": In(1),
            "cfg_addr": In(range(len(regs))),
            "cfg_data": In(spec.reg_bits),
            "start": In(1),
            "busy": Out(1),
            "done": Out(1),
            "rd_req": Out(stream.Signature(req_layout(spec))),
            "rd_data": In(stream.Signature(data.StructLayout({"data": beat}))),
            "wr_req": Out(stream.Signature(req_layout(spec))),
            "wr_data": Out(stream.Signature(data.StructLayout({"data": beat}))),
        })

    # ------------------------------------------------------------------------------------
    def elaborate(self, platform):
        spec = self.spec
        e = spec.engine
        # weight stationary: a fold holds a rows x cols W block (rows along K) and streams
        # the tile's rows of A through it; output stationary (and the cube): a fold holds an
        # R x C block of C and streams K, KC indices per beat
        ws = spec.weight_stationary
        R, C = spec.engine_block
        KC = spec.k_per_beat
        E = spec.ext_bytes
        log_e = _log2(E)
        m = Module()
        # the drivers of signals made when first read (queue views, tile sizes), wherever
        # that is: added at the top level when everything is built
        lazy: list[Any] = []
        m.submodules[ENGINE] = eng = build_component(e)
        # widths of line counters: a walker's base may step once past the last line
        line_bits = max(p.lines for p in (spec.a, spec.w, spec.o)).bit_length() + 1
        # folds of one tile (one more: the count after the last): OS, its O lines over the
        # rows of a fold; WS, its W blocks (at most one per O line) times its K blocks (at
        # most one per A line)
        fold_count = range((spec.o.half_lines * spec.a.half_lines if ws
                            else spec.o.half_lines // R) + 2)

        # -- descriptor registers ----------------------------------------------------------
        reg = {}
        for r in spec.registers():
            reg[r.name] = Signal(r.bits, name=f"reg_{r.name}")
            with m.If(self.cfg_we & ~self.busy & (self.cfg_addr == r.offset)):
                m.d.sync += reg[r.name].eq(self.cfg_data)
        M, N, K = reg["M"], reg["N"], reg["K"]
        TM, TN, TK = reg["tile_m"], reg["tile_n"], reg["tile_k"]
        eb = {op: spec.elem_bytes(op) for op in ("A", "W", "O")}
        J = {op: spec.ext_elems(op) for op in ("A", "W", "O")}

        # -- scratchpads -------------------------------------------------------------------
        def pad(name: str, p, banks: int, depth: int, transparent: bool = False):
            # every line is loaded (or, O, written by the drain's first K tile) before it is
            # read, and lanes past a partial tile's edge compute rows and columns that are
            # never written back: the contents are don't-care at reset, so the Verilog
            # declares no initial value (hw.emit.UNINITIALIZED)
            out = []
            for b in range(banks):
                mem = Memory(shape=unsigned(p.width_bits), depth=depth, init=[],
                             attrs={UNINITIALIZED: 1})
                m.submodules[f"{name}{b}"] = mem
                w = mem.write_port(granularity=p.lane_bits)
                # an O line may be read in the cycle the drain writes it (the next beat adds
                # to the same line): the read shows the written data
                out.append(SimpleNamespace(
                    w=w, r=mem.read_port(transparent_for=(w,) if transparent else ())))
            return out

        a_mem = pad(SCRATCHPADS["A"], spec.a, spec.a.banks, spec.a.bank_lines)
        w_mem = pad(SCRATCHPADS["W"], spec.w, spec.w.banks, spec.w.bank_lines)
        # the O halves are separate memories (a bank each): the drain read-modify-writes one
        # (both its ports) while the other is written back (its read port) or reloaded (its
        # write port)
        o_mems = pad(SCRATCHPADS["O"], spec.o, spec.o.halves, spec.o.half_lines,
                     transparent=True)
        for port in [*a_mem, *w_mem, *o_mems]:
            m.d.comb += port.r.en.eq(0)

        def half_off(p, half):
            return Mux(half, p.half_lines, 0) if p.halves == 2 else Const(0, 1)

        # Operand lines: a line of A or W holds a ``block_rows`` x ``block_cols`` block of the
        # operand tile (row-major in the lanes; A is M x K, W is K x N as stored), one
        # engine beat. Line (row block, column block) has index ``column block * row blocks +
        # row block`` in one bank; when a link beat carries several lines' columns (``banks``
        # = elements per beat / block_cols), ``row block * column blocks + column block``, in
        # bank ``index mod banks`` at ``index div banks``, so the consecutive lines one beat
        # of a tile row fills are in distinct banks and take a cycle together. Blocks count
        # the buffer tile's (the registers'). ``rs`` and ``cs``: the index steps per row
        # block and per column block.
        def block_layout(mems, p, rows_reg, cols_reg) -> SimpleNamespace:
            lay = SimpleNamespace(mems=mems, pad=p, lr=p.block_rows, lc=p.block_cols,
                                  banks=len(mems), lg=_log2(len(mems)), wide=len(mems) > 1)
            blocks = Signal(spec.dim_bits, name=f"{p.operand.lower()}_blocks")
            if lay.wide:
                m.d.comb += blocks.eq(ceil_div(cols_reg, lay.lc, spec.dim_bits))
                lay.rs, lay.cs = blocks, Const(1, 1)
            else:
                m.d.comb += blocks.eq(ceil_div(rows_reg, lay.lr, spec.dim_bits))
                lay.rs, lay.cs = Const(1, 1), blocks
            return lay

        def read_line(lay, half, line, en, name: str) -> Signal:
            """Read line ``line`` of ``half`` (every bank at its address, when ``en``); the
            data in the next cycle, from the line's bank."""
            sel = Signal(range(max(2, lay.banks)), name=f"{name}_bank")
            for port in lay.mems:
                m.d.comb += [port.r.addr.eq(half_off(lay.pad, half) + (line >> lay.lg)),
                             port.r.en.eq(en)]
            if lay.wide:
                with m.If(en):
                    m.d.sync += sel.eq(line[:lay.lg])
            out = Signal(lay.pad.width_bits, name=f"{name}_data")
            m.d.comb += out.eq(lay.mems[0].r.data)
            for b, port in enumerate(lay.mems[1:], 1):
                with m.If(sel == b):
                    m.d.comb += out.eq(port.r.data)
            return out

        a_lay = block_layout(a_mem, spec.a, TM, TK)
        w_lay = block_layout(w_mem, spec.w, TK, TN)

        # -- tile loop state ---------------------------------------------------------------
        # Four walkers over the same tile sequence: a loader per operand acquires that
        # operand's buffer halves and queues its read jobs (A, W, partial sums), each running
        # ahead of the computer as far as its own halves allow; the computer feeds a tile's
        # folds to the engine once all three operands have loaded it, releases the A and W
        # halves once its last beat is read and hands the tile to the drain, which starts the
        # write-back of a finished output tile (module docstring, "Overlap").
        d = spec.dim_bits
        dims, tiles = (M, N, K), (TM, TN, TK)
        order = reg["loop_order"]
        ops = ("A", "W", "O")
        lt = {op: self._walker_state(m, lazy, f"l{op.lower()}_", dims, tiles) for op in ops}
        l_next = {op: self._next_tile(m, f"l{op.lower()}_", order, lt[op].idx, tiles, dims)
                  for op in ops}
        ct = self._walker_state(m, lazy, "c", dims, tiles)
        c_next = self._next_tile(m, "c", order, ct.idx, tiles, dims)
        halves = {"A": spec.a.halves, "W": spec.w.halves, "O": spec.o.halves}
        # free halves per operand: its loader acquires one before it fills it, the computer
        # (A, W: when the tiles move on) or the write-back (O) releases it
        free = {op: Signal(range(3), name=f"{op.lower()}_free") for op in halves}
        acquire = {op: Signal(name=f"{op.lower()}_acquire") for op in halves}
        release = {op: Signal(name=f"{op.lower()}_release") for op in halves}
        for op in halves:
            m.d.sync += free[op].eq(free[op] + release[op] - acquire[op])
        # the half each loader fills next and the one the computer uses
        l_half = {op: Signal(name=f"l_{op.lower()}_half") if n == 2 else Const(0, 1)
                  for op, n in halves.items()}
        c_half = {op: Signal(name=f"c_{op.lower()}_half") if n == 2 else Const(0, 1)
                  for op, n in halves.items()}

        def toggle(half) -> None:
            if isinstance(half, Signal):
                m.d.sync += half.eq(~half)

        # Per operand, its tiles loaded and not yet left by the computer: the computer's
        # current one and those after it (at most one per half). A loader's jobs are answered
        # in the order it queues them, so the computer's tile has loaded an operand when the
        # count is not 0. A job's last answer (or, O without partial sums, the acquire) adds
        # one; the computer's moving on from the operand's tile takes one away.
        loaded = {op: Signal(range(4), name=f"{op.lower()}_loaded") for op in ops}
        got = {op: Signal(name=f"{op.lower()}_got") for op in ops}
        left = {op: Signal(name=f"{op.lower()}_left") for op in ops}
        for op in ops:
            m.d.sync += loaded[op].eq(loaded[op] + got[op] - left[op])
        o_answered = Signal()  # the last answer of an O job (partial sums) is written
        begin = Signal()  # the controller accepts ``start``

        def ring(name: str, depth: int, fields: dict[str, int]):
            """``depth`` registered entries of ``fields`` (name: bits) and a comb view of the
            entry at an index: a queue between two walkers over the same sequence."""
            entries = [{f: Signal(bits, name=f"{name}{i}_{f}") for f, bits in fields.items()}
                       for i in range(depth)]

            def at(index, view: str) -> dict[str, Signal]:
                """The entry at ``index``: a field's selection is made when first read (its
                driver added at the top level, in ``lazy``)."""
                def select(f: str) -> Signal:
                    out = Signal(fields[f], name=f"{name}_{view}_{f}")
                    lazy.append(out.eq(Array(e[f] for e in entries)[index]))
                    return out
                return _Fields(select)

            def write(index, values: dict) -> None:
                for i, e_ in enumerate(entries):
                    with m.If(index == i):
                        m.d.sync += [e_[f].eq(v) for f, v in values.items()]

            return at, write

        # -- DMA read jobs: the loaders' arbiter queues them, one walker issues their
        # requests, a second one writes their answers into the scratchpads ---------------
        # A job is one operand tile (0: A, 1: W, 2: O partial sums) into one half, with the
        # tile's indices and sizes: the queue is the answers' FIFO of job tags. Four entries:
        # the request walker runs up to three jobs ahead of the answers.
        jq_depth = 4
        jq_at, jq_write = ring("jq", jq_depth, {
            "kind": 2, "half": 1, "m0": d, "n0": d, "k0": d, "tm": d, "tn": d, "tk": d})
        ptr = _log2(jq_depth) + 1  # a wrap bit above the index: full and empty differ
        jq_wp, jq_qp, jq_ap = (Signal(ptr, name=f"jq_{p}") for p in ("wp", "qp", "ap"))
        jq_room = Signal()
        m.d.comb += jq_room.eq((jq_wp - jq_ap)[:ptr] != jq_depth)
        qc = jq_at(jq_qp[:ptr - 1], "q")  # the job whose requests are issued
        ac = jq_at(jq_ap[:ptr - 1], "a")  # the job whose answers arrive

        def push_job(kind: int, half, t: SimpleNamespace) -> None:
            """Queue a job of operand ``kind`` into ``half`` for the tile of walker ``t``."""
            jq_write(jq_wp[:ptr - 1], {
                "kind": kind, "half": half, "m0": t.idx[0], "n0": t.idx[1], "k0": t.idx[2],
                "tm": t.size[0], "tn": t.size[1], "tk": t.size[2]})
            m.d.sync += jq_wp.eq(jq_wp + 1)

        def read_walker(name: str, step, job, requests: bool):
            """Counters over the requests of ``job`` (a queue entry's view); ``step`` moves
            to the next request, and past the last one back to the start of the next job.
            Returns its length, whether it is the last and its address (``requests``: the
            walker that issues them) or its target line (the one that takes the answers)."""
            # A, W: tile row i (row r of its line block, the block's line index base),
            # column offset no (column block's index offset cb); O: block offsets i, no,
            # block row r, fold line base.
            w = _walker_state(spec, name, d, line_bits, requests=requests)
            n_seg = Signal(d, name=f"{name}_nseg")
            # the tile's indices place the addresses only
            m0, n0, k0 = (job[f] if requests else None for f in ("m0", "n0", "k0"))
            tm_cur, tn_cur, tk_cur = job["tm"], job["tn"], job["tk"]

            def operand_rows(lay, base, stride, row0, col0, rows_cur, cols_cur,
                             ebytes: int) -> None:
                """Requests for an operand tile (layout ``lay``): one per tile row when a
                beat fills several lines, else one per row segment of one column block
                (``lc`` elements); the line is the segment's first (block ``base + cb``)."""
                lr, lc = lay.lr, lay.lc

                def next_row() -> None:
                    m.d.sync += [w.i.eq(w.i + 1), w.r.eq(w.r + 1)]
                    with m.If(w.r == lr - 1):
                        m.d.sync += [w.r.eq(0), w.base.eq(w.base + lay.rs)]

                if lay.wide:
                    if w.addr is not None:
                        m.d.comb += w.addr.eq(base + (row0 + w.i) * stride + col0 * ebytes)
                    if w.line is not None:
                        m.d.comb += w.line.eq(w.base)
                    m.d.comb += [
                        w.len.eq(cols_cur * ebytes),
                        w.last.eq(w.i == rows_cur - 1),
                    ]
                    with m.If(step):
                        next_row()
                    return
                if w.addr is not None:
                    m.d.comb += w.addr.eq(base + (row0 + w.i) * stride + (col0 + w.no) * ebytes)
                if w.line is not None:
                    m.d.comb += w.line.eq(w.base + w.cb)
                m.d.comb += [
                    n_seg.eq(_min(lc, cols_cur - w.no)),
                    w.len.eq(n_seg * ebytes),
                    w.last.eq((w.i == rows_cur - 1) & (w.no + lc >= cols_cur)),
                ]
                with m.If(step):
                    m.d.sync += [w.no.eq(w.no + lc), w.cb.eq(w.cb + lay.cs)]
                    with m.If(w.no + lc >= cols_cur):
                        m.d.sync += [w.no.eq(0), w.cb.eq(0)]
                        next_row()

            with m.Switch(job["kind"]):
                with m.Case(0):
                    operand_rows(a_lay, reg["a_base"], reg["a_stride"], m0, k0, tm_cur,
                                 tk_cur, eb["A"])
                with m.Case(1):
                    operand_rows(w_lay, reg["w_base"], reg["w_stride"], k0, n0, tk_cur,
                                 tn_cur, eb["W"])
                with m.Case(2):
                    self._o_walk(m, w, step, reg, m0, n0, tm_cur, tn_cur, n_seg, eb["O"])
            with m.If((step & w.last) | begin):  # the next job starts from its first request
                m.d.sync += [w.i.eq(0), w.no.eq(0), w.r.eq(0), w.base.eq(0), w.cb.eq(0)]
            return w

        rq_step = Signal()
        m.d.comb += [rq_step.eq(self.rd_req.valid & self.rd_req.ready),
                     self.rd_req.valid.eq(jq_qp != jq_wp)]
        rd_q = read_walker("rq", rq_step, qc, requests=True)
        m.d.comb += [self.rd_req.payload.addr.eq(rd_q.addr),
                     self.rd_req.payload.len.eq(rd_q.len)]
        with m.If(rq_step & rd_q.last):
            m.d.sync += jq_qp.eq(jq_qp + 1)

        rsp_step = Signal()
        rd_a = read_walker("ra", rsp_step, ac, requests=False)
        bi = Signal(d)  # beat of the current answer
        beats = Signal(d)
        m.d.comb += beats.eq((rd_a.len + E - 1) >> log_e)
        take = Signal()
        # answers come only for issued requests: ready while a job awaits answers
        m.d.comb += [self.rd_data.ready.eq(jq_ap != jq_wp),
                     take.eq(self.rd_data.valid & self.rd_data.ready)]
        with m.If(take):
            m.d.sync += bi.eq(bi + 1)
            with m.If(bi == beats - 1):
                m.d.comb += rsp_step.eq(1)
                m.d.sync += bi.eq(0)
                with m.If(rd_a.last):
                    m.d.sync += jq_ap.eq(jq_ap + 1)
                    for code, op in enumerate(ops):
                        with m.If(ac["kind"] == code):
                            m.d.comb += got[op].eq(1)
                    m.d.comb += o_answered.eq(ac["kind"] == 2)
        beat = self.rd_data.payload.data

        def elem(op: str, j: int):
            return beat[j * 8 * eb[op]: j * 8 * eb[op] + {"A": e.a_bits, "W": e.w_bits,
                                                          "O": e.acc_bits}[op]]

        def lane_write(op: str, port, lanes: int, nseg, enable):
            """Lane c of the line takes element c % J of beat c // J of the row segment."""
            m.d.comb += port.w.data.eq(Cat(*(elem(op, c % J[op]) for c in range(lanes))))
            with m.If(enable):
                m.d.comb += port.w.en.eq(Cat(*((bi == c // J[op]) & (c < nseg)
                                               for c in range(lanes))))

        def block_write(op: str, lay, enable) -> None:
            """An A or W answer: row ``r`` of its line block (``rd_a.r``), so lanes ``r *
            lc ..`` of the line. A row segment goes into line ``rd_a.line`` (lane ``r*lc +
            c`` takes element ``c % J`` of beat ``c // J``); with banks (``lay.wide``), beat
            ``bi`` of a tile row whose first line is ``rd_a.line`` holds ``banks`` groups of
            ``lc`` elements, group ``j`` the row of line ``rd_a.line + bi * banks + j``, in
            bank ``(rd_a.line + j) mod banks``."""
            lr, lc = lay.lr, lay.lc
            seg = Signal(spec.dim_bits, name=f"{op.lower()}_seg")
            m.d.comb += seg.eq(rd_a.len >> _log2(eb[op]))
            row = [rd_a.r == rr for rr in range(lr)] if lr > 1 else [Const(1, 1)]
            if not lay.wide:
                port = lay.mems[0]
                m.d.comb += [
                    port.w.addr.eq(half_off(lay.pad, ac["half"]) + rd_a.line),
                    port.w.data.eq(Cat(*(elem(op, c % J[op]) for _ in range(lr)
                                         for c in range(lc)))),
                ]
                with m.If(enable):
                    m.d.comb += port.w.en.eq(Cat(*(row[rr] & (bi == c // J[op]) & (c < seg)
                                                   for rr in range(lr) for c in range(lc))))
                return
            nbk, lg = lay.banks, lay.lg
            r0 = rd_a.line[:lg]
            blocks = Signal(spec.dim_bits, name=f"{op.lower()}_segblocks")
            m.d.comb += blocks.eq(ceil_div(seg, lc, spec.dim_bits))
            groups = Array(Cat(*(elem(op, j * lc + c) for c in range(lc))) for j in range(nbk))
            for b, port in enumerate(lay.mems):
                j = Signal(lg, name=f"{op.lower()}_grp{b}")
                m.d.comb += [
                    j.eq(Const(b + nbk, lg + 1) - r0),
                    # (r0 > b: never for the last bank)
                    port.w.addr.eq(half_off(lay.pad, ac["half"]) + (rd_a.line >> lg) + bi
                                   + (r0 > b if b < nbk - 1 else 0)),
                    port.w.data.eq(Cat(*[groups[j]] * lr)),
                ]
                with m.If(enable & (Cat(j, bi) < blocks)):
                    m.d.comb += port.w.en.eq(Cat(*(row[rr].replicate(lc) for rr in range(lr))))

        block_write("A", a_lay, take & (ac["kind"] == 0))
        block_write("W", w_lay, take & (ac["kind"] == 1))

        # -- compute: feeder and drain ----------------------------------------------------
        # The feeder streams the loaded tiles' folds back to back (the engine's ``i.ready``
        # is the only back-pressure); per tile it queues a drain context, since the engine
        # still drains a tile's last folds while the next tile streams.
        c_active = Signal()  # the feeder has taken the computer's tile (``ct``)
        all_fed = Signal()  # the last tile's last beat has been read
        folds_fed = Signal(fold_count)  # folds of the tile fed completely
        fv = Signal()  # a beat is presented to the engine
        flast = Signal()
        adv = Signal()
        issue = Signal()
        # Drain contexts, one per tile from its first beat until its last fold has drained:
        # the O half, whether to add to it (K has advanced in the output tile), whether the
        # output tile is finished after it (write it back) and its indices, (WS) its K
        # extent, and (``fed``, once the feeder is past the tile) its folds. Four entries: a
        # tile's last fold drains while at most the next two tiles stream (an engine that
        # overlaps folds takes a fold's last beat only once the previous fold's first row
        # has left).
        dq_depth = 4
        dq_at, dq_write = ring("dq", dq_depth, {
            "half": 1, "acc": 1, "wb": 1, "fed": 1, "folds": len(folds_fed), "m0": d, "n0": d,
            "tk": d})
        dq_wp, dq_rp = Signal(ptr, name="dq_wp"), Signal(ptr, name="dq_rp")
        dq_room = Signal()
        m.d.comb += dq_room.eq((dq_wp - dq_rp)[:ptr] != dq_depth)
        # the operands the feeder's tile needs loaded (WS: W goes to the weight walker)
        fed_ops = ("A", "O") if ws else ops
        tile_ready = Signal()
        m.d.comb += tile_ready.eq(Cat(*(loaded[op] != 0 for op in fed_ops)).all() & dq_room)
        m.d.comb += [adv.eq(~fv | eng.i.ready),
                     issue.eq(adv & ~all_fed & (c_active | tile_ready))]
        tile_end = Signal()  # the beat fed is the tile's last
        if ws:
            # Activations: fold (nb, kb) (kb inner) streams the tile's rows of A (line
            # kb * tile_m + m) through the W block the weight walker loads for it.
            fm, f_no, f_kb = Signal(d), Signal(d), Signal(d)
            a_kb = Signal(line_bits)  # A line of the K block being fed, its row 0
            a_l = Signal(line_bits)  # A line fed now
            a_data = read_line(a_lay, c_half["A"], a_l, adv, "fa")
            with m.If(adv):
                m.d.sync += [fv.eq(issue), flast.eq(fm == ct.size[0] - 1)]
            m.d.comb += tile_end.eq((fm == ct.size[0] - 1) & (f_kb + R >= ct.size[2])
                                    & (f_no + C >= ct.size[1]))
            with m.If(issue):
                m.d.sync += [fm.eq(fm + 1), a_l.eq(a_l + a_lay.rs)]
                with m.If(fm == ct.size[0] - 1):
                    m.d.sync += [fm.eq(0), f_kb.eq(f_kb + R), a_kb.eq(a_kb + a_lay.cs),
                                 a_l.eq(a_kb + a_lay.cs), folds_fed.eq(folds_fed + 1)]
                    with m.If(f_kb + R >= ct.size[2]):
                        m.d.sync += [f_kb.eq(0), a_kb.eq(0), a_l.eq(0), f_no.eq(f_no + C)]
            with m.If(issue & tile_end):
                m.d.sync += f_no.eq(0)
            m.d.comb += [eng.i.valid.eq(fv), eng.i.payload.a.eq(a_data),
                         eng.i.payload.last.eq(flast)]

            # Weights: a walker of its own over the same tiles and folds streams each fold's
            # rows W lines (nb * tile_k + k; rows past the tile's K enter as zeros) into
            # ``wl``; with weight_double_buffer the engine takes them a fold ahead of the
            # activations, across tiles too. It releases a W half when it leaves the tile.
            wt = self._walker_state(m, lazy, "wl", dims, tiles)
            wt_next = self._next_tile(m, "wl", order, wt.idx, tiles, dims)
            w_active, w_all = Signal(name="wl_active"), Signal(name="wl_all")
            wr = Signal(range(max(2, R)), name="wl_r")
            w_kb, w_no = Signal(d, name="wl_kb"), Signal(d, name="wl_no")
            w_nb = Signal(line_bits, name="wl_nb")  # W line of the block column, its row 0
            w_l = Signal(line_bits, name="wl_l")  # W line read now
            wv, w_in = Signal(name="wl_v"), Signal(name="wl_in")
            w_adv, w_issue, w_end = (Signal(name=f"wl_{x}") for x in ("adv", "issue", "end"))
            m.d.comb += [
                w_adv.eq(~wv | eng.wl.ready),
                w_issue.eq(w_adv & ~w_all & (w_active | (loaded["W"] != 0))),
                w_end.eq((wr == R - 1) & (w_kb + R >= wt.size[2]) & (w_no + C >= wt.size[1])),
            ]
            w_data = read_line(w_lay, c_half["W"], w_l, w_adv, "fw")
            with m.If(w_adv):
                m.d.sync += [wv.eq(w_issue), w_in.eq(w_kb + wr < wt.size[2])]
            with m.If(w_issue):
                m.d.sync += [w_active.eq(1), wr.eq(wr + 1), w_l.eq(w_l + w_lay.rs)]
                with m.If(wr == R - 1):
                    m.d.sync += [wr.eq(0), w_kb.eq(w_kb + R)]
                    with m.If(w_kb + R >= wt.size[2]):
                        m.d.sync += [w_kb.eq(0), w_no.eq(w_no + C), w_nb.eq(w_nb + w_lay.cs),
                                     w_l.eq(w_nb + w_lay.cs)]
            with m.If(w_issue & w_end):
                m.d.sync += [w_active.eq(0), w_no.eq(0), w_nb.eq(0), w_l.eq(0)]
                with m.If(wt.last):
                    m.d.sync += w_all.eq(1)
                with m.Else():
                    m.d.sync += [i.eq(n) for i, n in zip(wt.idx, wt_next, strict=True)]
                    with m.If((wt_next[1] != wt.idx[1]) | (wt_next[2] != wt.idx[2])):
                        m.d.comb += [left["W"].eq(1), release["W"].eq(1)]
                        toggle(c_half["W"])
            m.d.comb += [eng.wl.valid.eq(wv),
                         eng.wl.payload.w.eq(Mux(w_in, w_data, 0))]
            w_reset = [w_active.eq(0), w_all.eq(0), wr.eq(0), w_kb.eq(0), w_no.eq(0),
                       w_nb.eq(0), w_l.eq(0), *(i.eq(0) for i in wt.idx)]
        else:
            # Fold (mo, no) (no inner) streams the tile's K, KC indices per beat: A line
            # (block row mo, K block), W line (K block, block column no).
            kf = Signal(d)  # K index of the beat fed now
            f_mo, f_no = Signal(d), Signal(d)  # block offsets of the fold being fed
            a_fb = Signal(line_bits)  # A line of the block row being fed, its K block 0
            a_l = Signal(line_bits)  # A line fed now
            w_fb = Signal(line_bits)  # W line of the block column being fed, its K block 0
            w_l = Signal(line_bits)  # W line fed now
            a_data = read_line(a_lay, c_half["A"], a_l, adv, "fa")
            w_data = read_line(w_lay, c_half["W"], w_l, adv, "fw")
            k_end = Signal()  # the fold's last beat
            m.d.comb += k_end.eq(kf + KC >= ct.size[2])
            # a partial last K block: its W rows past the tile's K enter as zeros
            w_rows = Signal(KC, name="fw_rows")
            with m.If(adv):
                m.d.sync += [fv.eq(issue), flast.eq(k_end),
                             w_rows.eq(Cat(*(kf + q < ct.size[2] for q in range(KC))))]
            m.d.comb += tile_end.eq(k_end & (f_no + C >= ct.size[1]) & (f_mo + R >= ct.size[0]))
            with m.If(issue):
                m.d.sync += [kf.eq(kf + KC), a_l.eq(a_l + a_lay.cs), w_l.eq(w_l + w_lay.rs)]
                with m.If(k_end):
                    m.d.sync += [kf.eq(0), f_no.eq(f_no + C), w_fb.eq(w_fb + w_lay.cs),
                                 w_l.eq(w_fb + w_lay.cs), a_l.eq(a_fb),
                                 folds_fed.eq(folds_fed + 1)]
                    with m.If(f_no + C >= ct.size[1]):
                        m.d.sync += [f_no.eq(0), w_fb.eq(0), w_l.eq(0), f_mo.eq(f_mo + R),
                                     a_fb.eq(a_fb + a_lay.rs), a_l.eq(a_fb + a_lay.rs)]
            with m.If(issue & tile_end):
                m.d.sync += [f_mo.eq(0), a_fb.eq(0), a_l.eq(0)]
            lanes_w = spec.w.block_cols
            w_fed = Cat(*(Mux(w_rows[q], w_data[q * lanes_w * e.w_bits:
                                                 (q + 1) * lanes_w * e.w_bits], 0)
                          for q in range(KC))) if KC > 1 else w_data
            m.d.comb += [eng.i.valid.eq(fv), eng.i.payload.a.eq(a_data),
                         eng.i.payload.w.eq(w_fed), eng.i.payload.last.eq(flast)]
            w_reset = [w_l.eq(0), a_l.eq(0)]
        with m.If(issue & ~c_active):  # the tile's first beat: take it
            m.d.sync += [c_active.eq(1), dq_wp.eq(dq_wp + 1)]
            dq_write(dq_wp[:ptr - 1], {"half": c_half["O"], "acc": ct.idx[2] != 0,
                                       "m0": ct.idx[0], "n0": ct.idx[1], "tk": ct.size[2],
                                       "fed": 0})
        moved = [n != i for n, i in zip(c_next, ct.idx, strict=True)]
        c_changed = {"A": moved[0] | moved[2], "W": moved[1] | moved[2],
                     "O": moved[0] | moved[1]}
        with m.If(issue & tile_end):
            # the tile's last beat has been read: close its drain context, release the
            # halves of the operands the next tile changes, move to the next tile
            m.d.sync += [c_active.eq(0), folds_fed.eq(0)]
            dq_write(Mux(c_active, dq_wp - 1, dq_wp)[:ptr - 1], {
                "fed": 1, "folds": folds_fed + 1, "wb": ct.last | c_changed["O"]})
            with m.If(ct.last):
                m.d.sync += all_fed.eq(1)
            with m.Else():
                m.d.sync += [i.eq(n) for i, n in zip(ct.idx, c_next, strict=True)]
                for op in fed_ops:
                    with m.If(c_changed[op]):
                        m.d.comb += left[op].eq(1)
                        if op != "O":  # the O half goes with the write-back
                            m.d.comb += release[op].eq(1)
                        toggle(c_half[op])

        # drain: OS, row r of fold f of the head context's tile lands in its O line
        # f*rows + r; WS, row m of fold (nb, kb) in line nb * tile_m + m, added to the line
        # unless it is the output tile's first K block
        head = dq_at(dq_rp[:ptr - 1], "head")
        after = dq_at((dq_rp + 1)[:ptr - 1], "after")  # the context behind the head
        o_line = Signal(line_bits)
        d_folds = Signal(fold_count)  # folds of the head tile drained
        o_take = Signal()
        d_end = Signal()  # the head tile's last row drains
        fold_out = Signal()  # the last row of a fold drains
        o_next = Signal(line_bits)  # the line of the next o beat of the head tile
        d_acc = Signal()  # the beat adds to its line
        m.d.comb += [eng.o.ready.eq(1), o_take.eq(eng.o.valid),
                     fold_out.eq(o_take & eng.o.payload.last),
                     d_end.eq(fold_out & head["fed"] & (d_folds + 1 == head["folds"]))]
        with m.If(fold_out):
            m.d.sync += d_folds.eq(d_folds + 1)
        if ws:
            d_kb = Signal(d)  # K offset of the fold draining
            d_nb = Signal(line_bits)  # its block column's line base
            m.d.comb += [d_acc.eq(head["acc"] | (d_kb != 0)),
                         o_next.eq(o_line + o_take)]
            with m.If(fold_out):
                m.d.sync += d_kb.eq(d_kb + R)
                m.d.comb += o_next.eq(d_nb)
                with m.If(d_kb + R >= head["tk"]):
                    m.d.sync += [d_kb.eq(0), d_nb.eq(d_nb + TM)]
                    m.d.comb += o_next.eq(d_nb + TM)
            with m.If(d_end):
                m.d.sync += [d_kb.eq(0), d_nb.eq(0)]
            d_reset = [d_kb.eq(0), d_nb.eq(0)]
        else:
            m.d.comb += [d_acc.eq(head["acc"]), o_next.eq(o_line + o_take)]
            d_reset = []
        m.d.sync += o_line.eq(o_next)
        # the write-back of a finished output tile waits here while the previous one runs;
        # one suffices: each holds an O half, and the drain fills a third only after the
        # loader has acquired it, after a write-back released it
        wb_pend = Signal()
        wb_next = {"m0": Signal(d, name="wbp_m0"), "n0": Signal(d, name="wbp_n0"),
                   "half": Signal(name="wbp_half")}
        with m.If(d_end):
            m.d.sync += [o_line.eq(0), d_folds.eq(0), dq_rp.eq(dq_rp + 1)]
        # the line and half the next o beat adds to: the read port prefetches it
        dr_line = Signal(line_bits)
        dr_half = Signal()
        m.d.comb += [dr_line.eq(Mux(d_end, 0, o_next)),
                     dr_half.eq(Mux(d_end, after["half"], head["half"]))]
        acc_lane = e.acc_bits
        o_cur = Signal(spec.o.width_bits)  # the drain's O half's read data
        m.d.comb += o_cur.eq(o_mems[0].r.data)
        if len(o_mems) == 2:
            with m.If(head["half"]):
                m.d.comb += o_cur.eq(o_mems[1].r.data)
        summed = Cat(*(
            Mux(d_acc, o_cur[c * acc_lane:(c + 1) * acc_lane] + eng.o.payload.c[c],
                eng.o.payload.c[c])[:acc_lane]
            for c in range(C)))

        # -- DMA write walkers: one issues C requests, one sends the O lines --------------
        wr_go = Signal()
        wr_busy = Signal()
        # the output tile being written back and its O half
        om0, on0 = Signal(d, name="wb_m0"), Signal(d, name="wb_n0")
        otm, otn = Signal(d, name="wb_tm"), Signal(d, name="wb_tn")
        m.d.comb += [otm.eq(_min(TM, M - om0)), otn.eq(_min(TN, N - on0))]
        wb_half = Signal()
        wb_now = Signal()  # the drain has finished an output tile
        m.d.comb += wb_now.eq(d_end & head["wb"])
        with m.If(~wr_busy & (wb_pend | wb_now)):
            m.d.comb += wr_go.eq(1)
            m.d.sync += [om0.eq(Mux(wb_pend, wb_next["m0"], head["m0"])),
                         on0.eq(Mux(wb_pend, wb_next["n0"], head["n0"])),
                         wb_half.eq(Mux(wb_pend, wb_next["half"], head["half"])), wb_pend.eq(0)]
        with m.Elif(wb_now):
            m.d.sync += [wb_pend.eq(1), *(wb_next[f].eq(head[f]) for f in wb_next)]
        wq_step = self.wr_req.valid & self.wr_req.ready
        wq = _walker_state(spec, "wq", d, line_bits, requests=True)
        wq_seg = Signal(d)
        self._o_walk(m, wq, wq_step, reg, om0, on0, otm, otn, wq_seg, eb["O"])
        wq_done = Signal()
        m.d.comb += [self.wr_req.valid.eq(wr_busy & ~wq_done),
                     self.wr_req.payload.addr.eq(wq.addr), self.wr_req.payload.len.eq(wq.len)]
        with m.If(wq_step & wq.last):
            m.d.sync += wq_done.eq(1)

        wd_step = Signal()
        wd = _walker_state(spec, "wd", d, line_bits, requests=False)
        wd_seg = Signal(d)
        self._o_walk(m, wd, wd_step, reg, om0, on0, otm, otn, wd_seg, eb["O"], next_line=True)
        with m.If(wr_go):
            for w in (wq, wd):
                m.d.sync += [w.i.eq(0), w.no.eq(0), w.r.eq(0), w.base.eq(0)]
            m.d.sync += [wr_busy.eq(1), wq_done.eq(0)]
        wbi = Signal(d)
        wbeats = Signal(d)
        m.d.comb += wbeats.eq((wd.len + E - 1) >> log_e)
        # one O line per request: the read port holds the line whose beats go out and reads
        # the next one as the last beat goes, so the beats follow back to back
        line_ready = Signal()
        beat_words = []
        jo = J["O"]
        o_wb = Signal(spec.o.width_bits)  # the write-back's O half's read data
        m.d.comb += o_wb.eq(o_mems[0].r.data)
        if len(o_mems) == 2:
            with m.If(wb_half):
                m.d.comb += o_wb.eq(o_mems[1].r.data)
        lanes_out = [o_wb[c * acc_lane:(c + 1) * acc_lane] for c in range(C)]
        for b in range(-(-C // jo)):
            words = []
            for j in range(jo):
                c = b * jo + j
                lane = lanes_out[c] if c < C else Const(0, acc_lane)
                word = Signal(8 * eb["O"], name=f"c_word{c}")
                m.d.comb += word.eq(lane.as_signed() if e.signed else lane)
                words.append(word)
            beat_words.append(Cat(*words))
        with m.Switch(wbi):
            for b, word in enumerate(beat_words):
                with m.Case(b):
                    m.d.comb += self.wr_data.payload.data.eq(word)
        m.d.comb += self.wr_data.valid.eq(wr_busy & line_ready)

        # -- the O halves' ports: drain (compute), store (DMA write), reload (DMA read) -----
        wb_rd = Signal()  # the write-back reads an O line: the first, or the next one
        wb_line = Signal(line_bits)
        m.d.comb += [wb_rd.eq(wr_busy & (~line_ready | (wd_step & ~wd.last))),
                     wb_line.eq(Mux(line_ready, wd.next, wd.line))]
        with m.If(wr_busy):
            with m.If(~line_ready):
                m.d.sync += line_ready.eq(1)
            with m.If(self.wr_data.valid & self.wr_data.ready):
                m.d.sync += wbi.eq(wbi + 1)
                with m.If(wbi == wbeats - 1):
                    m.d.comb += wd_step.eq(1)
                    m.d.sync += wbi.eq(0)
                    with m.If(wd.last):
                        m.d.sync += [wr_busy.eq(0), line_ready.eq(0)]
                        m.d.comb += release["O"].eq(1)
        for h, om in enumerate(o_mems):
            # a half is never drained while it is written back or reloaded: the loader
            # acquires it (after its write-back) before the reload, and the feeder queues a
            # drain context for it only after that
            with m.If(wr_busy & (wb_half == h)):
                m.d.comb += [om.r.addr.eq(wb_line), om.r.en.eq(wb_rd)]
            with m.Else():
                # prefetch: the read port shows the line the next o beat adds to
                m.d.comb += [om.r.addr.eq(dr_line), om.r.en.eq(dr_half == h)]
            with m.If(o_take & (head["half"] == h)):
                m.d.comb += [om.w.addr.eq(o_line), om.w.data.eq(summed),
                             om.w.en.eq((1 << C) - 1)]
            with m.Else():
                m.d.comb += om.w.addr.eq(rd_a.line)
                lane_write("O", om, C, rd_a.len >> _log2(eb["O"]),
                           take & (ac["kind"] == 2) & (ac["half"] == h))

        # -- the loaders and their arbiter ---------------------------------------------------
        # Each loader walks the tiles in loop order; at a tile whose operand tile changes it
        # waits for a free half of its operand, then acquires it and queues the tile's read
        # job (O: the partial sums, only when K has advanced in the output tile), and moves
        # on; it passes the other tiles a cycle each. A loader so waits only for its own
        # halves: the operand that does not depend on the inner loop loads its next tile
        # while the computer sweeps the inner loop on its current one.
        # The arbiter queues one job at a time, when the request walker is free for it (its
        # queue holds no other unissued job, or that one's last request goes now), so the
        # requests go in the order the arbiter chose: of the loaders that want to queue a
        # job, the one whose tile comes first in the sequence (the computer needs it
        # soonest; ties: A, W, O); and while the O loader waits for the half the running
        # write-back releases, none for a later tile (the link would move their read beats
        # ahead of the write-back's, which the computer needs first). This cannot deadlock:
        # the queue always drains (the answers are written as they come), a write-back
        # ends without waiting for any read, a loader waits only for a half that the
        # computer or the write-back releases without waiting for any load after the tiles
        # the computer has reached, and a job for a tile the computer waits on comes no
        # later in the sequence than any other loader's, so it is queued next.
        # tiles a loader has passed: at most 2**dim_bits along each dimension
        seq = {op: Signal(3 * d, name=f"l{op.lower()}_seq") for op in ops}
        l_run = {op: Signal(name=f"l{op.lower()}_run") for op in ops}
        want = {op: Signal(name=f"{op.lower()}_want") for op in ops}
        grant = {op: Signal(name=f"{op.lower()}_grant") for op in ops}
        # the partial sums come back when K has advanced in the output tile; an output tile
        # without them has no job, and its loader acquires its half only once the O jobs
        # before it have been answered, so that the O loaded count stays in tile order
        o_jobs = Signal(range(4))  # O jobs queued and not yet answered
        o_reload = Signal()
        m.d.comb += o_reload.eq(lt["O"].idx[2] != 0)
        o_pushed = Signal()
        m.d.sync += o_jobs.eq(o_jobs + o_pushed - o_answered)
        push_ok = Signal()
        m.d.comb += push_ok.eq(jq_room & ((jq_qp == jq_wp) | (
            ((jq_qp + 1)[:ptr] == jq_wp) & rq_step & rd_q.last)))
        for op in ops:
            m.d.comb += want[op].eq(l_run[op] & lt[op].changed[op] & (free[op] != 0)
                                    & (o_reload if op == "O" else 1))
        # the O loader waits for the half the running write-back releases (above)
        o_wait = Signal()
        m.d.comb += o_wait.eq(l_run["O"] & lt["O"].changed["O"] & (free["O"] == 0) & wr_busy)
        # ties: the operand the engine takes first (OS: A and W together; WS: the weights
        # before the activations that stream through them)
        tie_order = ("W", "A", "O") if ws else ops
        for i, op in enumerate(tie_order):
            first = Cat(*(~want[x] | (seq[op] < seq[x] if j < i else seq[op] <= seq[x])
                          for j, x in enumerate(tie_order) if x != op)).all()
            if op != "O":
                first &= ~o_wait | (seq[op] <= seq["O"])
            m.d.comb += grant[op].eq(push_ok & want[op] & first)
        for code, op in enumerate(ops):
            t = lt[op]
            step = Signal(name=f"l{op.lower()}_step")  # the loader is done with its tile
            with m.If(l_run[op]):
                with m.If(~t.changed[op]):
                    m.d.comb += step.eq(1)
                with m.Elif(grant[op]):
                    m.d.comb += [step.eq(1), acquire[op].eq(1)]
                    push_job(code, l_half[op], t)
                    toggle(l_half[op])
                    if op == "O":
                        m.d.comb += o_pushed.eq(1)
                if op == "O":
                    with m.Elif(~o_reload & (free["O"] != 0) & (o_jobs == 0)):
                        m.d.comb += [step.eq(1), acquire["O"].eq(1), got["O"].eq(1)]
                        toggle(l_half["O"])
            with m.If(begin):
                m.d.sync += [l_run[op].eq(1), t.first.eq(1), seq[op].eq(0),
                             *(i.eq(0) for i in t.idx)]
            with m.Elif(step):
                m.d.sync += [t.first.eq(0), seq[op].eq(seq[op] + 1)]
                with m.If(t.last):
                    m.d.sync += l_run[op].eq(0)
                with m.Else():
                    m.d.sync += [p.eq(i) for p, i in zip(t.prev, t.idx, strict=True)]
                    m.d.sync += [i.eq(n) for i, n in zip(t.idx, l_next[op], strict=True)]

        # -- the controller -------------------------------------------------------------------
        with m.FSM(name="ctrl_fsm"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.comb += begin.eq(1)
                    m.d.sync += [self.busy.eq(1), self.done.eq(0), c_active.eq(0),
                                 all_fed.eq(0), *(i.eq(0) for i in ct.idx), o_jobs.eq(0),
                                 *(n.eq(0) for n in loaded.values()),
                                 *(p.eq(0) for p in (jq_wp, jq_qp, jq_ap, dq_wp, dq_rp)),
                                 bi.eq(0), o_line.eq(0), d_folds.eq(0), wb_pend.eq(0),
                                 *w_reset, *d_reset]
                    for op, n in halves.items():
                        m.d.sync += free[op].eq(n)
                        for half in (l_half[op], c_half[op]):
                            if isinstance(half, Signal):
                                m.d.sync += half.eq(0)
                    m.next = "RUN"
            with m.State("RUN"):
                # done when the last tile is fed and drained and its write-back has gone
                with m.If(all_fed & (dq_rp == dq_wp) & ~wb_pend & ~wr_busy):
                    m.d.sync += [self.busy.eq(0), self.done.eq(1)]
                    m.next = "IDLE"
        m.d.comb += lazy
        return m

    @staticmethod
    def _walker_state(m: Module, lazy: list[Any], prefix: str, dims, tiles
                      ) -> SimpleNamespace:
        """A walker over the tile loops: the tile indices ``idx`` (m0, n0, k0), the previous
        tile's ``prev``, ``first`` (the first tile), the tile's sizes ``size`` (edge tiles are
        partial; each made when first read, its driver put in ``lazy``), ``last`` (the last
        tile) and per operand whether its tile ``changed`` from the previous tile's (always
        on the first)."""
        t = SimpleNamespace()
        d = len(dims[0])
        t.idx = tuple(Signal(d, name=f"{prefix}{x}0") for x in "mnk")
        t.prev = tuple(Signal(d, name=f"{prefix}p{x}0") for x in "mnk")
        t.first = Signal(name=f"{prefix}first")

        def size(j: int) -> Signal:
            out = Signal(d, name=f"{prefix}t{'mnk'[j]}")
            lazy.append(out.eq(_min(tiles[j], dims[j] - t.idx[j])))
            return out
        t.size = _Fields(size)  # (the weight loader reads no m size)
        t.last = Signal(name=f"{prefix}last")
        m.d.comb += t.last.eq(Cat(*(i + tile >= end for i, tile, end
                                    in zip(t.idx, tiles, dims, strict=True))).all())
        moved = [t.first | (i != p) for i, p in zip(t.idx, t.prev, strict=True)]
        t.changed = {"A": moved[0] | moved[2], "W": moved[1] | moved[2],
                     "O": moved[0] | moved[1]}
        return t

    @staticmethod
    def _next_tile(m: Module, prefix: str, order, idx, tiles, ends) -> tuple[Signal, ...]:
        """The indices of the tile after ``idx`` in loop order ``order`` (an index into
        :data:`hw.spec.tile.LOOP_ORDERS`), combinational: the innermost index advances,
        wrapping ones carry outwards (past the last tile the outermost runs past its end)."""
        nxt = tuple(Signal.like(i, name=f"{prefix}n{x}0") for i, x in zip(idx, "mnk",
                                                                         strict=True))
        m.d.comb += [n.eq(i) for n, i in zip(nxt, idx, strict=True)]
        # codes past the table run the first order: C is the same in every order
        with m.Switch(order):
            for code, names in reversed(list(enumerate(LOOP_ORDERS))):
                with (m.Case(code) if code else m.Default()):
                    dims = ["mnk".index(x) for x in names]
                    inner, middle, outer = dims[2], dims[1], dims[0]
                    with m.If(idx[inner] + tiles[inner] < ends[inner]):
                        m.d.comb += nxt[inner].eq(idx[inner] + tiles[inner])
                    with m.Else():
                        m.d.comb += nxt[inner].eq(0)
                        with m.If(idx[middle] + tiles[middle] < ends[middle]):
                            m.d.comb += nxt[middle].eq(idx[middle] + tiles[middle])
                        with m.Else():
                            m.d.comb += [nxt[middle].eq(0),
                                         nxt[outer].eq(idx[outer] + tiles[outer])]
        return nxt

    def _o_walk(self, m: Module, w, step, reg, om0, on0, otm, otn, n_seg, eb_o: int, *,
                next_line: bool = False) -> None:
        """Counters over the rows of the output tile's accumulator blocks, in fold order
        (block row offset ``i``, block column offset ``no``, row ``r``): the C row segment
        each one is (the address of a walker that issues requests), its O line (of one that
        does not: ``base + r``; OS: ``base`` = fold * rows, WS: ``base`` = block column *
        tile_m + ``i``) and, with ``next_line``, the next one's (``w.next``)."""
        ws = self.spec.weight_stationary
        R, C = self.spec.engine_block
        rows_here = Signal.like(otm, name=f"{w.r.name}_rows")
        if w.addr is not None:
            m.d.comb += w.addr.eq(reg["c_base"] + (om0 + w.i + w.r) * reg["c_stride"]
                                  + (on0 + w.no) * eb_o)
        if w.line is not None:
            m.d.comb += w.line.eq(w.base + w.r)
        m.d.comb += [
            rows_here.eq(_min(R, otm - w.i)),
            n_seg.eq(_min(C, otn - w.no)),
            w.len.eq(n_seg * eb_o),
            w.last.eq((w.r == rows_here - 1) & (w.no + C >= otn) & (w.i + R >= otm)),
        ]
        # the line after this one: the next row, or the next block's first
        next_base = Signal(len(w.base), name=f"{w.r.name}_nbase")
        if ws:
            m.d.comb += next_base.eq(Mux(w.no + C >= otn, w.i + R, w.base + reg["tile_m"]))
        else:
            m.d.comb += next_base.eq(w.base + R)
        if next_line:
            w.next = Signal(len(w.base), name=f"{w.r.name}_next")
            m.d.comb += w.next.eq(Mux(w.r == rows_here - 1, next_base, w.line + 1))
        with m.If(step):
            m.d.sync += w.r.eq(w.r + 1)
            with m.If(w.r == rows_here - 1):
                m.d.sync += [w.r.eq(0), w.no.eq(w.no + C), w.base.eq(next_base)]
                with m.If(w.no + C >= otn):
                    m.d.sync += [w.no.eq(0), w.i.eq(w.i + R)]


#: The component built from a :class:`hw.spec.TileSpec`.
COMPONENT = Tile
