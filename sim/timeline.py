"""The DRAM timeline of one mapped GEMM: when each buffer tile loads, computes and is written
back over one link, tile by tile (``sim.memory`` evaluates the mapping a GEMM runs with on it;
the candidates are ranked by ``sim.memory``'s closed form).

**What it follows.** The tile loops in the mapping's order. Each operand (A, W, and the output's
spilled partial sums) has a loader of its own that walks the tiles and, at a tile where its
operand's tile changes, waits for a free half of its level (two halves when double-buffered:
a half frees when the engine leaves the tile before last of that operand; the output's when
the write-back of the output tile before last has gone), then requests the load. Loads move
over the link one after another, each after the link's latency from its request (the
requests of consecutive loads overlap their latencies); when the link frees, of the loads
requested by then (less the latency) the one of the earliest tile goes next (the engine
needs it sooner): a load requested early for a later tile (the next tile of an operand that
stays over the inner loop) waits behind loads requested later for the tiles before it. On a
port of beats (the tile's, ``hw.tile``) the choice is the tile's arbiter's: it queues a load
when its request walker is free for it (the loads queued before it have issued their
requests, a matrix row's or a row segment's a cycle, and fewer than :data:`JOB_QUEUE` await
their answers), of those requested by then the earliest tile's; while the output loader
waits for a write-back, the arbiter queues no load of a later tile: a load is checked
against that wait when it is requested and again when the arbiter would queue it (it may
have waited long behind loads of earlier tiles). A tile computes when its operands
have loaded and the engine has finished the tile before it: its busy cycles are its folds'
(``fold_interval`` each) and its share of the SRAM stalls; it frees its inputs' halves with
its last beat (the input a fold holds stationary a fold earlier, on an engine that takes it
while the previous fold streams; that input's first fold of a tile, taken while the tile
before streams, is taken only once it has loaded: one that loads late delays the tile by the
preload). When the loops leave an output
tile, its write-back starts after its last fold has drained and the previous write-back has
gone; reads have the link first and write-backs take what the reads leave. While the output's
loader waits for the half a running write-back frees, the loads of later tiles wait too (their
reads would take the link before the write-back that frees the half). The GEMM ends when its
last write-back has gone.

**The link** moves ``bytes_per_cycle`` on average, reads and writes together; given a beat
(``beat_bytes``, the architecture's ``dram.beat_bytes``), it moves at most one read beat and
one write beat a cycle, and a matrix row of a tile takes whole beats (a row narrower than a
beat takes a cycle for its bytes). A link of beats banks the bytes it leaves unused (it
idles, or a read's beats are narrower than its rate), up to :data:`CREDIT_BEATS` beats, as
the tile's bench link does; a write-back spends them beside the reads at up to a beat a
cycle (reads take the link first; the bank does not speed them), and its last beat goes in
a whole cycle. A write-back's beats are those of the tile's write walker, in its order
(``Nest.write_block``): an output tile a block column of a block row at a time, each block
row in whole beats, so a ragged tile's narrow blocks send their beats at a beat a cycle in
their turn rather than at the rows' average beat.

**Cost.** The loops repeat: within a loop, the iterations between the first few and the last
(the edge) move and compute alike once the pipeline has settled, so the timeline runs a
reduced loop nest: the innermost loop that moves runs its first iterations, a few that each
stand for a share of the ones between, and its last; every other loop likewise with fewer
(:data:`WARM`, :data:`SAMPLE`, :data:`OUTER_WHOLE`). A tile's time (from the start of the tile
before it) counts once per iteration it stands for: at most a few hundred tiles whatever the
GEMM's size. On a port of beats, where the arbiter holds a load of a step that stands for
itself alone (a later sweep's, or the sweep's last tile's) while the engine is at a sampled
step, the sweep's first tiles need not have settled and that step would count the hold once
per iteration it stands for (``systolic-4core``'s 3061x1683x455 on 128x32x455 tiles, mnk, a
4-byte beat at 34 bytes a cycle: 56% over every tile's timeline): the walk then runs again
with the innermost loop that moves whole (:data:`WHOLE_INNER`): 95 of the 1,002 reduced runs
with a beat of ``benchmarks/timeline_reduction.py``'s set do, the steps of all 1,002 going
from 262,283 to 383,768 and their time 1.66x (none without a beat: those walk as before).
Against every tile's timeline on that benchmark's 327 runs (the nests the simulator builds
on the engine presets and the tile's small tiles, of 513 to 4,000 tiles, each on its own
link and two random ones), the reduced nest differs without a beat (85 runs) by 0.18% on
average and 11.5% at most (1024x1024x1024 on 128x128x32 tiles, mnk, at 12.8 bytes a cycle,
as before; the only one over 2%), with one (242 runs) by 0.06% on average
and 3.7% at most (the same nest, a 32-byte beat at 16 bytes a cycle; the only one over 2%).
Times are float64: a GEMM's cycles are exact below 2^53.

The nest's steps (sizes, multiplicities, which operand changes, the engine's timing per step)
do not depend on the link: they are planned once per nest, with numpy, and memoized (a sweep
costs the same mapping on many links). The event loop walks them as flat lists; each operand's
loads and write-backs have their link times computed up front. Without skips
(``skip=False``) it performs the float64 operations of a step-by-step walk in the same order,
so its figures equal those of the per-step event loop it replaced (``tests/test_timeline.py``
pins some).

**Skips.** In a reduced nest, an outer loop (outside the innermost one that moves) of five
positions or more, each of at least :data:`SKIP_STEPS` steps, repeats itself once the
pipeline has settled: at the start of each of its iterations from the third to the last but
two, the walk takes the state (every time the
loaders, the link, the write-backs and the engine will still read, from the engine's next
free cycle; every tile from the iteration's own) and compares it with the state the iteration
before started in. The same state (its times within 1e-12 of the engine's cycle: float64
rounding) over the same tiles runs the same way, and so does every iteration after it up to
the last but one: the walk adds what the iteration before took (its steps' times, per unit of
its share) times the shares of the iterations it leaves out, moves the state to the start of
the last but one (tile numbers shifted by the tiles left out; a load already requested must
go to a tile of the same size and step, else it does not skip) and goes on from there. Where
the loop's last iteration has the steps of the last but one (the same tile sizes, operands
that change, write-backs, first and last K tiles: no ragged tile of that loop), the last but
one runs as the others too, and the walk leaves it out as well, going on from the last; such
a loop is also compared within its iterations, at the first step of each iteration of the
loop inside it (from its first iteration on: a pipeline that settles within the first one
skips from the second), and the same state there goes on from the same step of the last
iteration, the steps left out taking what those of the iteration before took, its part
before that step and its part after each per unit of its share. A nest
that runs whole never skips (it is the step-by-step reference, and the tile RTL's). On
1,526 timelines (sweep points, a Llama-2-70B, the cold 512x4096x4096 GEMM, random small
nests) 444 of the 553 reduced nests that have such a loop skip, leaving out 25% of their
steps, and no cycle count changes: the figures differ from the step-by-step walk's by less
than 1e-13 (the same times summed in another order). Where the state has not settled by the
last but two (a write-back backlog still growing), the walk does not skip. The comparison is
of float64 states: where two times tie in exact arithmetic, rounding may order the events of
a later iteration otherwise than those of the one compared, and the skip would miss that.
None of those 553 nests did; skipping whole nests too (and loops of short iterations), 4 of
the 530 timelines of whole nests did (two small GEMMs, 13x87x92 and 91x71x36, up to 0.045%
off): one more reason a whole nest does not skip.

**Floor.** :func:`timeline_floor` bounds a mapping's timeline from below without walking it,
from the plan and the link: the link's time for the bytes, the engine's busy cycles, and, in a
row, the first tiles of A and W loaded one after the other behind the link's latency, every
step's busy cycles as the walk counts them and the last write-back. Where no step waits on the
link the last is the walk's figure itself (in exact arithmetic; :data:`BOUND_ROUNDING`), so a
search over splits whose timelines tie (a compute-bound GEMM over four cores, each split's
core the same GEMM turned or cut another way) walks one: Llama-2-70B's w8a8 prefill and a
decode step on ``systolic-4core`` walk 12 splits where busy cycles and link time alone walked
24. On 400 consecutive points of the 10,000-point sweep the floor met the walk in 61% of the
5,600 timelines (busy cycles and link time alone: 1%); none of its walks fell below it, nor
did any of 3,015 runs of ``benchmarks/timeline_equivalence.py``'s nests change (the floor
joins the maximum :func:`timeline_cycles` takes, which it leaves as it was wherever the walk
is of the plan the floor reads).
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.caches import memo
from models.ops import Exact

__all__ = ["Nest", "TileTiming", "timeline_cycles", "timeline_floor"]

_OPS = ("A", "W", "O")


@dataclass(frozen=True, slots=True)
class TileTiming:
    """The engine's timing of one buffer tile: ``busy`` cycles (its folds back to back, each
    ``fold_interval``, plus its share of the SRAM stalls), ``release`` cycles after its start
    when it has read its inputs' last beat (an engine that takes a fold's stationary input
    while the previous fold streams releases that input a fold earlier: ``early``), and
    ``drain``: cycles after ``busy`` until its last fold's results are in the output level."""

    busy: Exact
    release: Exact
    early: Exact
    drain: Exact


@dataclass(frozen=True, slots=True)
class Nest:
    """The link-independent description of a mapping's tile loops for :func:`timeline_cycles`.

    ``dims``: M, N, K; ``tile``: the buffer tile; ``order``: the loop dimensions outer to
    inner; ``row_bytes``: bytes per element of A, W, the partial sums (accumulators) and the
    final output in DRAM; ``halves``: of A's, W's and the output's level; ``timing``: a
    :class:`TileTiming` per distinct tile size ``(tm, tn, tk)`` in the GEMM; ``early_op``: the
    input a fold holds stationary when the engine takes it while the previous fold streams
    (released a fold early; ``None`` otherwise); ``preload``: the input a fold holds
    stationary and the cycles the engine takes it in before the fold streams, when its kind
    preloads (the GEMM's first tile may start on that input alone, the other one needed only
    ``preload`` cycles later; ``None`` otherwise; every tile with ``preload_each``)."""

    dims: tuple[int, int, int]
    tile: tuple[int, int, int]
    order: tuple[str, str, str]
    a_bytes: Exact
    w_bytes: Exact
    acc_bytes: Exact
    o_bytes: Exact
    halves: tuple[int, int, int]
    timing: tuple[tuple[tuple[int, int, int], TileTiming], ...]
    early_op: str | None
    preload: tuple[str, Exact] | None = None
    #: Every tile's first fold, not only the GEMM's first, preloads its stationary input
    #: before the other one streams: an engine that takes a fold's stationary input only
    #: between folds (the weight-stationary array without its weight double buffer; the
    #: tile's weight walker needs only W loaded, its feeder A and O), so each tile may start
    #: on that input alone.
    preload_each: bool = False
    #: The elements of a row of one line block of A, W and the partial sums (the tile's
    #: scratchpad lines, ``hw.spec.tile.line_blocks``): on a port of beats, where no beat
    #: fills several blocks' columns of A or W whole (one bank), the tile's DMA requests a
    #: matrix row a block at a time, each segment in whole beats (a 5-element row of
    #: 3-element blocks on a 16-byte beat: two beats, not one); the partial sums' reload
    #: always goes a block's row at a time (a row of two 16-byte blocks on a 32-byte beat:
    #: two beats; measured on ``amaranth.sim``, the cube's 86x49x101 on 8x8x8 tiles, kmn,
    #: 23.84 bytes a cycle, took 79868 cycles, the model 77995 with whole rows, 79858 with
    #: this). None: whole rows.
    segment: tuple[int, int, int] | None = None
    #: The block (rows, cols) the tile's write walker writes an output tile in, on a port of
    #: beats (``hw.tile``, ``hw.spec.tile.engine_block``): a block column of a block row of
    #: the tile at a time, a request per row of the block in whole beats, so the write-back's
    #: beats are its blocks' rows' and its narrow blocks' beats go at a beat a cycle in their
    #: turn (a row of 6 four-byte elements in 4-element blocks on a 16-byte beat: four rows'
    #: 16-byte beats, then their 8-byte beats). None: whole rows, at their average beat.
    write_block: tuple[int, int] | None = None


#: The reduced nest (module doc): the innermost loop that moves (more than one trip) runs
#: its first WARM iterations, then SAMPLE iterations that stand for all but the last between
#: them, then its last (an even SAMPLE: a double buffer's loads alternate); every other loop
#: runs whole up to OUTER_WHOLE trips, else its first two iterations, two that stand for the
#: ones between and its last. Chosen on random GEMMs against the whole nest (module doc;
#: ``tests/test_timeline.py`` holds a sample).
WARM = 4
SAMPLE = 4
OUTER_WHOLE = 6
#: A nest of at most this many tiles runs whole: reducing it would save little and its
#: sampled iterations can stand for too few others to average out (a 6 x 11-tile nest came
#: 6% under its whole timeline, below the link's own bound).
WHOLE_TILES = 512
#: ``_plan``'s ``warm`` where the innermost loop that moves runs every iteration (a reduced
#: nest's fallback on a port of beats, :func:`timeline_cycles`): more than any loop's trips.
WHOLE_INNER = 1 << 62


#: A loop skips (module doc, "Skips") only where each of its iterations is at least this many
#: steps: comparing two states costs about what a few steps cost, and loops of shorter
#: iterations skip seldom. Measured on the reduced nests of 1,526 timelines (sweep points, a
#: Llama-2-70B, the cold GEMM, random nests): no bound walked as fast as no skips at all; 16
#: steps 1.26x faster (5.4x fewer state comparisons, 5% more steps walked); 32 steps 1.18x.
SKIP_STEPS = 16


#: The cycles a port of beats (a link with ``beat_bytes``: the tile's, ``hw.tile``) adds
#: around its transfers, from the tile RTL's DMA (``hw.tile``, "Overlap": measured on
#: ``amaranth.sim`` with a link that never limits, a GEMM takes the engine's cycles, the first
#: tile's read beats and the last output tile's write beats plus these four): the loader
#: queues its first job a cycle after the start; the link answers a request no earlier than
#: the cycle after it (its latency, at least a cycle); a tile is loaded the cycle after its
#: last answer (the loaded count); a write-back's first beat follows its tile's drain by a
#: cycle (the O line read), and a write-back that waited for the one before it follows that
#: one's last beat by two (``hw.tile``'s write walker is free the cycle after the last beat,
#: takes the waiting write-back, then reads its first O line: two idle cycles on the write
#: stream, seen on ``amaranth.sim``). The link banks credit over the gap (:data:`CREDIT_BEATS`),
#: which the beats after it spend: of those two cycles the link loses
#: ``max(0, 2 - beat_bytes / bytes_per_cycle)`` where no read takes it. (On the odd 3x4x3
#: cube on a 4-byte port that reads and writes share, where write-backs queue back to back,
#: the model was 1.4% to 3.4% under the tile without the gap, 9 GEMMs on its mappings.) An
#: output half a write-back frees is free a
#: cycle after its last beat (``hw.tile``'s free count is a register): the output loader
#: acquires it then, and a visit without a reload is loaded the cycle after (its loaded
#: count, as for an answered load); seen on ``amaranth.sim`` on the cube with its output
#: double buffer (a tile started three cycles after the last beat of the write-back it
#: waited for, the model said none: the model was up to 7.1% under the tile with an ideal
#: link, ``tests/test_tile.py``).
PORT_PIPELINE = (1, 1, 1, 1, 2, 1)

#: The read jobs the tile's DMA holds queued and not yet answered (``hw.tile``: its FIFO of
#: job tags, four entries): on a port of beats its arbiter queues a job only while fewer
#: await their answers, and only once its request walker has issued the requests of the
#: job before (a request a cycle). Measured on ``amaranth.sim``: on the cube with a 32-byte
#: ideal port, 20x11x9 on 4x4x9 tiles, nmk, took 159 cycles; the model 156 while it took
#: the W job it requested with an A job together with it, where the tile queues it after
#: the A job's requests, by when the output loader waits for a write-back and holds it back
#: (each time the walker freed, a write-back had begun: the last column's W tile went at
#: cycle 99, the model had it at 58); 159 with this.
JOB_QUEUE = 4

#: The credit, in beats, a port of beats banks while the link has bytes to spare (it idles,
#: or a read's beats are narrower than the link's rate): the bench's link
#: (``sim.verify.tile_bench.ExtMemory``) earns ``bytes_per_cycle`` each cycle and holds at
#: most a beat and a cycle's bytes, so a beat beyond what the cycle earns. A write-back
#: spends it at up to a write beat a cycle beside the reads (which take the credit first).
#: Measured on ``amaranth.sim``: on the cube with an ideal 16-byte port, 19x21x5 took 225
#: cycles, the model 236 without the bank (it moved each write-back at what the 4-byte W
#: rows left of the link, 12 bytes a cycle, where the tile's first write beats go beside
#: the reads on the banked credit, and the engine waits for the output half every other
#: tile); 225 with it, and with the write-back's last beat in a whole cycle (the model's
#: fractional ends ran up to 7 cycles under the tile on 18x23x6).
CREDIT_BEATS = 1


def _positions(trips: int, sampled: bool, reduce: bool, warm: int = WARM
               ) -> list[tuple[int, float]]:
    """(tile index, iterations it stands for) of one loop in the reduced nest (every
    iteration without ``reduce``); ``warm``: the sampled loop's first iterations that run as
    themselves. The reduced loop keeps the parity of its trips (one more warm-up iteration
    when they differ), so that a pattern that alternates from tile to tile keeps its phase
    from one sweep of the loop to the next."""
    if not reduce or trips <= (warm + SAMPLE + 1 if sampled else OUTER_WHOLE):
        return [(i, 1.0) for i in range(trips)]
    warm, sample = (warm, SAMPLE) if sampled else (2, 2)
    warm += (trips - warm - sample - 1) % 2
    share = (trips - 1 - warm) / sample
    return [*((i, 1.0) for i in range(warm)), *((warm + i, share) for i in range(sample)),
            (trips - 1, 1.0)]


@dataclass(frozen=True, slots=True, eq=False)
class _Plan:
    """What :func:`timeline_cycles` needs of a nest apart from the link: the reduced nest's
    steps, each operand's tiles (A, W, O by index; an output tile is a visit) and the
    write-back after each visit, as flat lists (float64 where not counts)."""

    n: int
    #: per step: the iterations it stands for, its busy cycles, the offset from its start at
    #: which it frees its inputs' halves (``release``; less ``early`` for the input it takes
    #: a fold early), the drain of its last fold, whether the next step changes A's (W's) tile
    #: (``free_*``: this step frees its half), and whether a write-back follows it
    mult: list[float]
    busy: list[float]
    release: list[float]
    early: list[float]
    drain: list[float]
    free_a: list[bool]
    free_w: list[bool]
    write: list[bool]
    #: per operand: its tiles' first steps, rows and row bytes of their loads (rows 0:
    #: nothing to load), and each step's tile
    first: tuple[list[int], list[int], list[int]]
    rows: tuple[np.ndarray, np.ndarray, np.ndarray]
    row_bytes: tuple[np.ndarray, np.ndarray, np.ndarray]
    tile_of: tuple[list[int], list[int], list[int]]
    #: per visit: rows and row bytes of its write-back
    wb_rows: np.ndarray
    wb_row_bytes: np.ndarray
    wb_cols: np.ndarray
    moved: float
    busy_total: float
    #: the engine's busy cycles as the walk counts them (a step's time from the start of the
    #: step before, times its own share: ``mult[i] * busy[i - 1]``), and the last step's once
    #: (:func:`_bound`)
    busy_walked: float
    #: where the walk may skip (:func:`timeline_cycles`): per loop of five positions or more
    #: outside the innermost one that moves, per iteration of the loops around it: the first
    #: steps of its iterations from the second to the last, the shares of those up to the
    #: last but one, and whether its last iteration's steps are those of the last but one
    #: (tile sizes, which operands change, write-backs, first and last K tiles), so that a
    #: skip may leave out the last but one too
    #: (and, for the comparisons within its iterations, every position's share and the
    #: offsets of the iterations of the loop inside it from its iterations' first steps)
    events: tuple[tuple[tuple[int, ...], tuple[float, ...], bool, tuple[float, ...],
                        tuple[int, ...]], ...] = ()
    #: per step: whether it is one of the innermost moving loop's sampled iterations (that
    #: stand for several: :func:`timeline_cycles` checks the arbiter's holds against them);
    #: empty where no step stands for several
    sampled: tuple[bool, ...] = ()


def _loops(nest: Nest, reduce: bool, warm: int = WARM
           ) -> tuple[tuple[int, int, int], list[list[tuple[int, float]]], int]:
    """The nest's trips per dimension (M, N, K), the positions of each loop in the mapping's
    order (:func:`_positions`; ``warm``: the innermost moving loop's first iterations that
    run as themselves) and the level of the innermost loop that moves in a reduced nest (0
    in a nest that runs whole: no loop outside it)."""
    trips = tuple(-(-d // t) for d, t in zip(nest.dims, nest.tile, strict=True))
    reduce = reduce and trips[0] * trips[1] * trips[2] > WHOLE_TILES
    moving = [d for d in nest.order if trips["mnk".index(d)] > 1]
    loops = [_positions(trips["mnk".index(d)], bool(moving) and d == moving[-1], reduce, warm)
             for d in nest.order]
    # skips (timeline_cycles) in a reduced nest only: a nest that runs whole is the
    # step-by-step reference of the reduced ones (and the tile RTL's, tests/test_timeline.py)
    inner = nest.order.index(moving[-1]) if moving and reduce else 0
    return (trips[0], trips[1], trips[2]), loops, inner


@memo(maxsize=256)
def _plan(nest: Nest, reduce: bool, warm: int = WARM) -> _Plan:
    """The reduced loop nest's tiles in loop order (every tile of a nest of at most
    :data:`WHOLE_TILES`) as :func:`timeline_cycles` walks them: numpy over the steps, the
    same float64 operations in the same order as a step-by-step walk. ``warm``: the
    innermost moving loop's first iterations that run as themselves (:func:`_loops`)."""
    trips, loops, inner = _loops(nest, reduce, warm)
    # the steps: every combination of the loops' positions, the innermost fastest
    lens = [len(lp) for lp in loops]
    # a loop outside the innermost one that moves, of five positions or more: from its third
    # iteration up to its last but two, each may be left out with the ones after it
    # (timeline_cycles, "skip")
    events = []
    for level in range(min(inner, 3)):
        lp = loops[level]
        stride = math.prod(lens[level + 1:])
        if lens[level] < 5 or stride < SKIP_STEPS:
            continue
        for outer in itertools.product(*(range(k) for k in lens[:level])):
            at = sum(p * math.prod(lens[m + 1:]) for m, p in enumerate(outer))
            # also from the first step of each iteration of the loop inside it (the walk
            # compares there too where every iteration, the last included, is alike)
            inner_stride = math.prod(lens[level + 2:])
            offsets = (tuple(range(inner_stride, stride, inner_stride))
                       if level + 2 < len(lens) and inner_stride >= SKIP_STEPS // 2 else ())
            events.append((tuple(at + q * stride for q in range(1, lens[level])),
                           tuple(sh for _, sh in lp[1:-1]), False,
                           tuple(sh for _, sh in lp), offsets))
    # each loop's positions over the steps: every position once per iteration of the loops
    # outside it, each repeated for the steps of the loops inside it
    pos_idx = []
    shares = []
    for level, lp in enumerate(loops):
        outer_n, inner_n = math.prod(lens[:level]), math.prod(lens[level + 1:])
        pos = np.array([p[0] for p in lp]).repeat(inner_n)
        share = np.array([p[1] for p in lp]).repeat(inner_n)
        pos_idx.append(np.concatenate([pos] * outer_n) if outer_n > 1 else pos)
        shares.append(np.concatenate([share] * outer_n) if outer_n > 1 else share)
    # the innermost moving loop's sampled steps (a share over 1 in its position)
    moving = [lvl for lvl, d in enumerate(nest.order) if trips["mnk".index(d)] > 1]
    sampled = (tuple((shares[moving[-1]] > 1).tolist())
               if moving and any(sh > 1 for _, sh in loops[moving[-1]]) else ())
    return _steps(nest, trips, pos_idx, shares, tuple(events), sampled)


def _steps(nest: Nest, trips: tuple[int, int, int], pos_idx: list[np.ndarray],
           shares: list[np.ndarray],
           events: tuple[tuple[tuple[int, ...], tuple[float, ...], bool, tuple[float, ...],
                               tuple[int, ...]], ...] = (),
           sampled: tuple[bool, ...] = ()) -> _Plan:
    """The plan of the steps whose tile index (``pos_idx``) and share (``shares``) per loop,
    in the mapping's order, are given (:func:`_plan`)."""
    dims = nest.dims
    tile = nest.tile
    n = len(pos_idx[0])
    mult = shares[0] * shares[1] * shares[2]
    idx = [pos_idx[nest.order.index(d)] for d in "mnk"]  # tile index of m, n, k per step
    size = [np.minimum(t, d - i * t) for d, t, i in zip(dims, tile, idx, strict=True)]
    tm, tn, tk = size
    # which operand's tile changes at each step (all at the first): A's where the M or the K
    # tile does, W's where the N or the K tile does, the output's where the M or the N tile does
    moves = [i[1:] != i[:-1] for i in idx]
    changed = np.ones((3, n), dtype=bool)
    np.logical_or(moves[0], moves[2], out=changed[0, 1:])
    np.logical_or(moves[1], moves[2], out=changed[1, 1:])
    np.logical_or(moves[0], moves[1], out=changed[2, 1:])
    a_b, w_b = float(nest.a_bytes), float(nest.w_bytes)
    acc_b, o_b = float(nest.acc_bytes), float(nest.o_bytes)
    rows = (tm.astype(float), tk.astype(float), np.where(idx[2] > 0, tm, 0).astype(float))
    row_bytes = (tk * a_b, tn * w_b, tn * acc_b)
    # the write-back after a visit's last step: the final output, or partial sums spilled
    write = np.concatenate((changed[2][1:], [True]))
    wr_rows = tm.astype(float)
    wr_row_bytes = tn * np.where(idx[2] == trips[2] - 1, o_b, acc_b)
    step_bytes = np.zeros(n)
    for o in range(3):
        step_bytes = step_bytes + np.where(changed[o], rows[o] * row_bytes[o], 0.0)
    per_step = mult * (step_bytes + np.where(write, wr_rows * wr_row_bytes, 0.0))
    # the engine's timing per tile size, in float64: a step's size is the full tile or the
    # last (ragged) one in each dimension
    timing = dict(nest.timing)
    code = (tm != tile[0]) * 4 + (tn != tile[1]) * 2 + (tk != tile[2]) * 1
    tab = np.zeros((8, 4))
    for c in set(code.tolist()):
        key = tuple(d - (t_ - 1) * s_ if c & bit else s_ for d, t_, s_, bit in
                    zip(dims, trips, tile, (4, 2, 1), strict=True))
        tmg = timing[key]  # type: ignore[index]
        tab[c] = [float(v) for v in (tmg.busy, tmg.release, tmg.early, tmg.drain)]
    busy, rel, early, drain = tab[code].T
    # a step frees its tile of A (W) when the next step changes it
    free_a = [*changed[0][1:].tolist(), False]
    free_w = [*changed[1][1:].tolist(), False]
    at = [np.flatnonzero(changed[o]) for o in range(3)]
    first = [a.tolist() for a in at]
    tile_of = (np.cumsum(changed, axis=1) - 1).tolist()
    if events:
        # a loop's last iteration alike to the last but one: every step's tile sizes, which
        # operands it changes, whether a write-back follows and whether its K tile is the
        # first or the last (what its loads, write-backs and timing follow from)
        sig = np.stack((tm, tn, tk, *changed, write, idx[2] == 0, idx[2] == trips[2] - 1))
        alike = []
        for starts, ev_shares, _, every, offsets in events:
            a, b = starts[-2], starts[-1]
            alike.append((starts, ev_shares, b + (b - a) <= n
                          and bool(np.array_equal(sig[:, a:b], sig[:, b:b + (b - a)])),
                          every, offsets))
        events = tuple(alike)
    moved = sum(per_step.tolist())
    busy_total = sum((mult * busy).tolist())
    busy_walked = sum((mult[1:] * busy[:-1]).tolist()) + float(busy[-1])
    return _Plan(n=n, mult=mult.tolist(), busy=busy.tolist(), release=rel.tolist(),
                 early=early.tolist(), drain=drain.tolist(), free_a=free_a, free_w=free_w,
                 write=write.tolist(),
                 first=(first[0], first[1], first[2]),
                 rows=(rows[0][at[0]], rows[1][at[1]], rows[2][at[2]]),
                 row_bytes=(row_bytes[0][at[0]], row_bytes[1][at[1]], row_bytes[2][at[2]]),
                 tile_of=(tile_of[0], tile_of[1], tile_of[2]),
                 wb_rows=wr_rows[write], wb_row_bytes=wr_row_bytes[write],
                 wb_cols=tn[write].astype(float),
                 moved=moved, busy_total=busy_total, busy_walked=busy_walked,
                 events=events, sampled=sampled)


def _bound(nest: Nest, plan: _Plan, bw: float, latency: Exact, beat_bytes: int | None
           ) -> float:
    """A lower bound on ``plan``'s walk (:func:`_walk`), from the plan and the link alone: the
    link's time for the bytes it moves, the engine's busy cycles, and the engine's busy
    cycles as the walk counts them (``_Plan.busy_walked``: each step at least its busy cycles
    after the one before) after the first step's start and before the last write-back. The
    first step starts once the first tiles of A and W have loaded, one after the other, each
    at least its bytes at the link's rate (on a port of beats, at least a beat a cycle per
    row) after the link's wait for an answer (less the cycles a preloaded stationary input
    lets the other come late); the last write-back starts after the last step's busy cycles
    and its drain, and moves its bytes at the link's rate (less the credit a port of beats
    banks). None of these depends on the order the link serves loads in."""
    queue, answer, loaded_after, line_read = (
        PORT_PIPELINE[:4] if beat_bytes is not None else (0, 0, 0, 0))
    lat = float(latency)
    wait = lat if lat > answer else answer
    dur = []
    for o in (0, 1):
        rows, row_bytes = float(plan.rows[o][0]), float(plan.row_bytes[o][0])
        d = rows * row_bytes / bw
        if beat_bytes is not None:
            d = max(d, rows * math.ceil(row_bytes / beat_bytes - 1e-9))
        dur.append(d)
    ahead = [0.0, 0.0]
    lead = 0.0
    if nest.preload is not None:
        pre = float(nest.preload[1])
        ahead[0 if nest.preload[0] == "W" else 1] = pre  # the input not preloaded comes later
        lead = 0.0 if nest.preload_each else pre
    first = max(dur[0] + dur[1] - max(ahead), dur[0] - ahead[0], dur[1] - ahead[1])
    start = max(0.0, queue + wait + loaded_after + first) + lead
    bank = CREDIT_BEATS * beat_bytes if beat_bytes is not None else 0.0
    last_wb = float(plan.wb_rows[-1] * plan.wb_row_bytes[-1])
    tail = plan.drain[-1] + line_read + max(0.0, last_wb - bank) / bw
    # the walk sums its float64 times in another order: a bound equal to its figure in exact
    # arithmetic (a step never waits on the link) may round a few units in the last place
    # above it, so the bound gives up BOUND_ROUNDING of itself
    return max(plan.moved / bw, float(plan.busy_total),
               (start + plan.busy_walked + tail) * (1.0 - BOUND_ROUNDING))


#: The share of itself :func:`_bound`'s sum of the first loads, the engine's busy cycles and
#: the last write-back gives up, so that float64 rounding never puts it above a walk it equals
#: in exact arithmetic: a sum of ``n`` float64 terms rounds by at most about ``n`` units in
#: the last place (2.2e-16 each), and walks have at most a few thousand steps.
BOUND_ROUNDING = 1e-11


@memo(maxsize=1024)
def timeline_cycles(nest: Nest, bytes_per_cycle: Exact, latency: Exact,
                    beat_bytes: int | None = None, *, reduce: bool = True,
                    skip: bool = True) -> float:
    """Cycles from the start of the GEMM to its last written byte (module doc), in float64;
    ``reduce=False`` runs every tile of the loop nest instead of the reduced nest;
    ``skip=False`` walks every step of the reduced nest (module doc, "Skips"). Memoized: a
    sweep costs the same mapping on the same link again (points that differ elsewhere)."""
    plan = _plan(nest, reduce)
    bw = float(bytes_per_cycle)
    bound = _bound(nest, plan, bw, latency, beat_bytes)
    holds: list[int] | None = [] if plan.sampled and beat_bytes is not None else None
    total, _ = _walk(nest, plan, bw, latency, beat_bytes, skip, holds)
    if holds:
        # the arbiter held a load of a step that stands for itself alone (a later sweep's,
        # or the sweep's last iteration's) while the engine was at a sampled step (module
        # doc, "Cost"): the sweep's first iterations need not have settled (a hold that
        # comes once a sweep moves the loads after it) and a sampled step would count what
        # it took for every iteration it stands for; the innermost moving loop runs every
        # iteration instead (the other loops reduced)
        plan = _plan(nest, reduce, WHOLE_INNER)
        total, _ = _walk(nest, plan, bw, latency, beat_bytes, skip)
    # no schedule beats the engine's busy time or the link's time for the bytes it moves: a
    # reduced nest's sampled iterations can fall short of either; nor the bound the floor
    # gives (_bound: the walk never falls below it, but the fallback above walks another
    # plan)
    return max(total, bound, plan.moved / bw, float(plan.busy_total))


#: Two states at the start of a loop's iterations are the same when every time in them,
#: from the engine's next free cycle, differs by at most this share of that cycle (float64
#: sums in a different order round differently: a few units in the last place).
SAME_STATE = 1e-12


def _walk(nest: Nest, plan: _Plan, bw: float, latency: Exact, beat_bytes: int | None,
          skip: bool = True, holds: list[int] | None = None) -> tuple[float, int]:
    """The timeline of ``plan``'s steps before the floor (:func:`timeline_cycles`), and the
    number of steps walked (less than the plan's where it skipped). ``holds``, where given,
    gets the engine's step each time the arbiter holds a load of a step that is not one of
    the plan's sampled steps (``_Plan.sampled``) while the engine is at one of them
    (:func:`held`, :func:`o_hold`)."""
    # a port of beats (``beat_bytes``) has the DMA's registers around it (PORT_PIPELINE)
    queue, answer, loaded_after, line_read, wb_wait, o_free = (
        PORT_PIPELINE if beat_bytes is not None else (0, 0, 0, 0, 0, 0))
    # the credit a port of beats banks while the link idles (or reads leave it room): at
    # most a beat (CREDIT_BEATS); write-backs spend it (module doc, "The link")
    bank_cap = CREDIT_BEATS * beat_bytes if beat_bytes is not None else 0.0
    n = plan.n
    sampled = plan.sampled
    lat = float(latency)
    h_o = nest.halves[2]
    halves = nest.halves
    first_of = plan.first
    o_first = first_of[2]
    # ties between loads requested together: the engine takes a fold's stationary input
    # (early_op, or the one it preloads) first, then the other input, then the partial sums
    first_op = nest.early_op or (nest.preload[0] if nest.preload is not None else "A")
    tie = (1, 0, 2) if first_op == "W" else (0, 1, 2)
    ntiles = (len(first_of[0]), len(first_of[1]), len(first_of[2]))
    nv = ntiles[2]

    # each load's time on the link and the bytes per cycle it uses (rows 0: no load)
    dur_of: list[list[float]] = []
    nreq_of: list[list[float]] = []
    use_of: list[list[float]] = []
    elem = (float(nest.a_bytes), float(nest.w_bytes), float(nest.acc_bytes))
    if beat_bytes is None:
        # the three operands' loads at once (the same figures: numpy's cost is per call)
        nbytes = np.concatenate(plan.rows) * np.concatenate(plan.row_bytes)
        dur = nbytes / bw
        use_all = np.divide(nbytes, dur, out=np.full(len(dur), bw), where=dur != 0).tolist()
        dur_all = dur.tolist()
        for lo, hi in ((0, ntiles[0]), (ntiles[0], ntiles[0] + ntiles[1]),
                       (ntiles[0] + ntiles[1], len(dur_all))):
            dur_of.append(dur_all[lo:hi])
            use_of.append(use_all[lo:hi])
    else:
        for o, (rows, row_bytes) in enumerate(zip(plan.rows, plan.row_bytes, strict=True)):
            nbytes = rows * row_bytes
            beats = np.ceil(row_bytes / beat_bytes - 1e-9)
            seg = nest.segment[o] if nest.segment is not None else 0
            per_beat = int(beat_bytes // elem[o]) if seg else 0
            if seg and (o == 2 or per_beat <= seg or per_beat % seg):
                # one bank, and the partial sums: a request per block's row segment, each
                # in whole beats (hw.tile)
                full, rest = np.divmod(np.round(row_bytes / elem[o]), seg)
                beats = (full * math.ceil(seg * elem[o] / beat_bytes - 1e-9)
                         + np.ceil(rest * elem[o] / beat_bytes - 1e-9))
            dur = np.maximum(nbytes / bw, rows * beats)
            # the requests the tile's walker issues for it, one a cycle: a row (a row's
            # segment a line block wide where one bank; the partial sums': a block's row)
            segs: Any = 1.0
            if seg and (o == 2 or per_beat <= seg or per_beat % seg):
                segs = np.ceil(np.round(row_bytes / elem[o]) / seg - 1e-9)
            nreq_of.append((rows * segs).tolist())
            dur_of.append(dur.tolist())
            use_of.append(np.divide(nbytes, dur, out=np.full(len(dur), bw), where=dur != 0)
                          .tolist())
    has_job_o = (plan.rows[2] > 0).tolist()
    # each write-back's bytes, rate (reads first: at most a write beat a cycle) and time alone
    wb_bytes_a = plan.wb_rows * plan.wb_row_bytes
    # (peak: a write beat a cycle, what banked credit lets it move at; rate: no faster than
    # the link on average)
    if beat_bytes is None:
        wb_rate_a = np.full(nv, bw)
        wb_rate = wb_peak = wb_rate_a.tolist()
    else:
        wb_peak_a = wb_bytes_a / (plan.wb_rows * np.ceil(plan.wb_row_bytes / beat_bytes - 1e-9))
        wb_rate_a = np.minimum(bw, wb_peak_a)
        wb_rate = wb_rate_a.tolist()
        wb_peak = wb_peak_a.tolist()
    wb_bytes = wb_bytes_a.tolist()
    # on a port of beats, each write-back's beats as phases of one beat size in the order
    # the tile's write walker sends them: (bytes, bytes per beat), a beat a cycle at most
    # (none without beats: such a link moves a write-back at its rate, advance_plain())
    wb_phases: list[tuple[tuple[float, float], ...]] = (
        [((b, p),) for b, p in zip(wb_bytes, wb_peak, strict=True)] if beat_bytes is not None
        else [])
    if beat_bytes is not None and nest.write_block is not None:
        blk_rows, blk_cols = nest.write_block
        known: dict[tuple[int, int, float], tuple[tuple[float, float], ...]] = {}
        for v in range(nv):
            rows_v, cols_v = int(plan.wb_rows[v]), int(plan.wb_cols[v])
            key = (rows_v, cols_v, wb_bytes[v])
            if key not in known:
                elem_v = wb_bytes[v] / (rows_v * cols_v)
                phases: list[tuple[float, float]] = []
                for i0 in range(0, rows_v, blk_rows):
                    rg = min(blk_rows, rows_v - i0)
                    for c0 in range(0, cols_v, blk_cols):
                        seg_bytes = min(blk_cols, cols_v - c0) * elem_v
                        seg_beat = seg_bytes / math.ceil(seg_bytes / beat_bytes - 1e-9)
                        if phases and phases[-1][1] == seg_beat:
                            phases[-1] = (phases[-1][0] + rg * seg_bytes, seg_beat)
                        else:
                            phases.append((rg * seg_bytes, seg_beat))
                known[key] = tuple(phases)
            wb_phases[v] = known[key]
    wb_time = (wb_bytes_a / wb_rate_a).tolist()

    release: list[list[Any]] = [[None] * ntiles[0], [None] * ntiles[1]]
    req: list[list[Any]] = [[None] * ntiles[0], [None] * ntiles[1], [None] * nv]
    ready: list[list[Any]] = [[None] * ntiles[0], [None] * ntiles[1], [None] * nv]
    req_o = req[2]
    ready_o = ready[2]
    pending: list[tuple[float, int, int, int, int]] = []
    r_start: list[float] = []  # the reads on the link, in order: start, end, bytes per cycle
    r_end: list[float] = []
    r_use: list[float] = []
    wb_ready: list[Any] = [None] * nv
    wb_start: list[Any] = [None] * nv
    wb_end: list[Any] = [None] * nv  # final ends only
    wb_bank: list[Any] = [None] * nv  # the link's banked credit at each final end
    link = 0.0
    free_at = 0.0
    cur = 0
    wb_open = 0
    o_reqs: list[float] = []  # the output loader's requests so far, in order
    # the first open write-back: [visit, time, bytes left, read, rate, banked credit at the
    # time, start, peak rate] (before its start, the time the bank is known at)
    prog: list[Any] = []
    # the last call of o_wait() for a load of A's (W's) loader: its time, step and visit, and
    # the visit it reached over write-backs already taken up and the time there. What it read
    # of those visits does not change (a taken-up write-back's start and an output request
    # are final, and a write-back taken up stays so): a call for the same load at the same
    # visit goes on from there, the same figures without walking them again (the cold GEMM's
    # loads walk four visits a call otherwise); relocate() clears it
    o_memo_a: list[Any] = [None] * 5
    o_memo_w: list[Any] = [None] * 5

    def advance_plain() -> None:
        """:func:`advance` on a link without beats (no bank): the write-back at what the
        reads leave."""
        nonlocal wb_open, prog
        nreads = len(r_start)
        if prog and prog[3] == nreads and prog[0] == wb_open:
            return  # the open write-back has moved through every read so far
        while True:
            u = wb_open
            if u >= nv or wb_ready[u] is None:
                return
            p = prog
            if not p or p[0] != u:
                start = wb_ready[u]
                if u and wb_end[u - 1] + wb_wait > start:
                    start = wb_end[u - 1] + wb_wait
                wb_start[u] = start
                p = prog = [u, start, wb_bytes[u],
                            max(0, bisect_left(r_start, start) - 1), wb_rate[u]]
            _, t, left, k, rate = p
            done = None
            while k < nreads:
                e_ = r_end[k]
                if e_ <= t:
                    k += 1
                    continue
                s_ = r_start[k]
                if s_ > t:  # the link idles until this read
                    if left <= rate * (s_ - t):
                        done = t + left / rate
                        break
                    left -= rate * (s_ - t)
                    t = s_
                r = bw - r_use[k]  # min(rate, max(0.0, bw - use)), without the calls
                r = (r if r < rate else rate) if r > 0.0 else (0.0 if 0.0 < rate else rate)
                if r > 0 and left <= r * (e_ - t):
                    done = t + left / r
                    break
                left -= r * (e_ - t)
                t = e_
                k += 1
            if done is None:
                p[1] = t
                p[2] = left
                p[3] = k
                return
            wb_end[u] = done
            wb_open = u + 1

    def advance_walk() -> None:
        """Move the write-backs on through the reads requested so far (which later reads
        cannot precede): reads first, the write-back in what they leave and in the credit
        the link has banked (at most ``bank_cap``, spent at up to a write beat a cycle)."""
        nonlocal wb_open, prog
        nreads = len(r_start)
        if prog and prog[3] == nreads and prog[0] == wb_open:
            return  # the open write-back has moved through every read so far
        while True:
            u = wb_open
            if u >= nv or wb_ready[u] is None:
                return
            p = prog
            if not p or p[0] != u:
                start = wb_ready[u]
                t = wb_end[u - 1] if u else 0.0
                if u and t + wb_wait > start:
                    start = t + wb_wait
                wb_start[u] = start
                # the bank from the write-back before's end (the GEMM's start) to this start
                if u and wb_bank[u - 1] >= bank_cap:
                    t = start  # (a full bank stays so up to the start)
                left, peak = wb_phases[u][0]
                p = prog = [u, t, left, max(0, bisect_left(r_start, t) - 1),
                            wb_rate[u], wb_bank[u - 1] if u else 0.0, start, peak, 0]
            _, t, left, k, _, bank, begin, peak, ph = p
            phases = wb_phases[u]
            done = None
            while k < nreads:
                e_ = r_end[k]
                if e_ <= t:
                    k += 1
                    continue
                s_ = r_start[k]
                if s_ > t:  # the link idles until this read
                    t1 = s_
                    cap = bw
                else:
                    t1 = e_
                    cap = bw - r_use[k]
                    if cap < 0.0:
                        cap = 0.0
                if t < begin:  # not started: the link banks what it leaves
                    if bank < bank_cap:
                        m_ = t1 if t1 < begin else begin
                        bank += cap * (m_ - t)
                    if bank >= bank_cap:  # full, it stays so up to the start
                        bank = bank_cap
                        t = begin
                        if t >= t1:
                            continue
                    elif t1 <= begin:
                        t = t1
                        if t1 == e_:
                            k += 1
                        continue
                    else:
                        t = begin
                if bank > 0.0 and peak > cap:  # a beat a cycle while the bank lasts
                    spend = peak - cap
                    m_ = t + bank / spend
                    if m_ > t1:
                        m_ = t1
                    if left <= peak * (m_ - t):
                        done = t + left / peak
                        bank -= spend * (done - t)
                        if ph + 1 < len(phases):  # the next block's beats from here
                            ph += 1
                            left, peak = phases[ph]
                            t = done
                            done = None
                            continue
                        break
                    left -= peak * (m_ - t)
                    bank = 0.0 if m_ < t1 else bank - spend * (m_ - t)
                    t = m_
                    if t >= t1:
                        if t1 == e_:
                            k += 1
                        continue
                r = peak if peak < cap else cap
                if r > 0.0 and left <= r * (t1 - t):
                    done = t + left / r
                    if r < cap:
                        bank += (cap - r) * (done - t)
                        if bank > bank_cap:
                            bank = bank_cap
                    if ph + 1 < len(phases):  # the next block's beats from here
                        ph += 1
                        left, peak = phases[ph]
                        t = done
                        done = None
                        continue
                    break
                left -= r * (t1 - t)
                if r < cap and bank < bank_cap:
                    bank += (cap - r) * (t1 - t)
                    if bank > bank_cap:
                        bank = bank_cap
                t = t1
                if t1 == e_:
                    k += 1
            if done is None:
                p[1] = t
                p[2] = left
                p[3] = k
                p[5] = bank
                p[7] = peak
                p[8] = ph
                return
            done = math.ceil(done - 1e-9)  # the last beat goes in a whole cycle
            wb_end[u] = done
            wb_bank[u] = bank
            wb_open = u + 1

    def idle_end(t: float, left: float, bank: float, begin: float,
                 phases: tuple[tuple[float, float], ...], ph: int) -> tuple[float, float]:
        """When a write-back, at its phase ``ph`` of ``phases`` with ``left`` bytes of it, from
        ``t`` with ``bank`` banked, starting at ``begin``, ends on a link no read takes, and
        the bank then."""
        if t < begin:
            bank += bw * (begin - t)
            if bank > bank_cap:
                bank = bank_cap
            t = begin
        while True:
            peak = phases[ph][1]
            rate = peak if peak < bw else bw
            if bank > 0.0 and peak > bw and left <= peak * bank / (peak - bw):
                end = t + left / peak
                bank -= (peak - bw) * left / peak
            else:
                if bank > 0.0 and peak > bw:
                    spend = peak - bw
                    left -= peak * bank / spend
                    t += bank / spend
                    bank = 0.0
                end = t + left / rate
                if rate < bw:
                    bank += (bw - rate) * (left / rate)
                    if bank > bank_cap:
                        bank = bank_cap
            ph += 1
            if ph == len(phases):
                return math.ceil(end - 1e-9), bank
            t = end
            left = phases[ph][0]

    def wb_chain(u0: int, v: int, end: float, bank: float, record: bool) -> Any:
        """The write-backs queued behind the running one (``u0``, ending at ``end`` with
        ``bank`` credit) up to visit ``v``: (the last one's start, its end), each starting
        ``wb_wait`` after the one before ends at the earliest (its start kept in ``wb_start``
        where ``record``); None where one of them is not ready yet."""
        start = end
        for u in range(u0 + 1, v + 1):
            if wb_ready[u] is None:
                return None
            start = wb_ready[u]
            if end + wb_wait > start:
                start = end + wb_wait
            if record:
                wb_start[u] = start
            if walks:
                end, bank = idle_end(end, wb_phases[u][0][0], bank, start, wb_phases[u], 0)
            else:
                end = start + wb_time[u]
        return start, end

    def wb_finish(v: int) -> Any:
        """When visit ``v``'s write-back has gone, on the reads requested so far (reads
        requested before it would end go first); None while it has not started."""
        if v < wb_open:
            return wb_end[v]
        while True:
            advance()
            u0 = wb_open
            if v < u0:
                return wb_end[v]
            if wb_ready[u0] is None:
                return None
            if walks:
                _, t, left, _, _, bank, begin, _, ph = prog
                end, bank = idle_end(t if t > link else link, left, bank, begin,
                                     wb_phases[u0], ph)
            else:
                _, t, left, _, rate = prog
                end = (link if link > t else t) + left / rate  # after every read so far
                bank = 0.0  # no credit without beats
            span = wb_chain(u0, v, end, bank, True)
            if span is None:
                return None
            end = span[1]
            if pending and pending[0][0] < end:
                serve_one()  # a read requested before it would end goes first
                continue
            return end

    def o_wait(t: float, first: int, u: int, memo: list[Any]) -> Any:
        """The earliest time from ``t`` a load of step ``first`` may be requested (None:
        not known yet): while the output's loader waits for the half a running write-back
        frees, later loads wait too. ``u``: the visit the output's loader is at, at ``t``
        (the caller has found it not to precede the load's step). ``memo``: the loader's
        last call (``o_memo``), which a call for the same load goes on from."""
        if memo[0] == t and memo[1] == first and memo[2] == u:
            u, t = memo[3], memo[4]
        else:
            memo[0] = t
            memo[1] = first
            memo[2] = u
            memo[3] = u
            memo[4] = t
        moved = True  # (over visits whose write-backs were taken up)
        while True:
            if u >= nv or o_first[u] >= first or u < h_o:
                if moved:
                    memo[3] = u
                    memo[4] = t
                return t
            v = u - h_o
            if v < wb_open or (prog and prog[0] == v):
                begin = wb_start[v]  # final once advance() has taken the write-back up
            else:
                if moved:
                    memo[3] = u
                    memo[4] = t
                    moved = False
                if wb_ready[v] is None:
                    return t if t < free_at else None
                advance()
                u0 = wb_open
                if v < u0 or v == u0:
                    begin = wb_start[v]  # set when advance() took the write-back up
                elif wb_finish(v) is None:
                    return None
                else:
                    begin = wb_start[v]
            if t < begin or req_o[u] is None:
                if moved:
                    memo[3] = u
                    memo[4] = t
                return t if t < begin else None
            t = req_o[u]
            u += 1

    def wb_span(v: int) -> Any:
        """When visit ``v``'s write-back starts and ends on the reads served so far (no
        more after them: none that a later serve adds starts before the time the arbiter
        queues it, so a start before that time is the final one), without serving any;
        None where a write-back up to it is not ready yet."""
        advance()
        u0 = wb_open
        if v < u0:
            return wb_start[v], wb_end[v]
        if wb_ready[u0] is None:
            return None
        _, t, left, _, _, bank, begin, _, ph = prog
        end, bank = idle_end(t if t > link else link, left, bank, begin, wb_phases[u0], ph)
        span = wb_chain(u0, v, end, bank, False)
        return None if span is None else (begin if v == u0 else span[0], span[1])

    def o_hold(t: float, f: int) -> float:
        """On a port of beats, the earliest time from ``t`` the arbiter may queue a pending
        load of step ``f``: the tile's arbiter grants no load of a tile after the output
        loader's while that loader waits for the half a running write-back frees (``hw.tile``,
        ``o_wait``), whenever the load was requested: up to the loader's acquire, a cycle
        after the write-back's last beat. (held() checks a load against the wait when it is
        requested, at the time it then expects it queued, which loads of earlier tiles
        requested later put off. Measured on ``amaranth.sim``: the odd 3x4x3 cube, 17x10x6
        on 3x4x6 tiles, nmk, an ideal 16-byte link, took 136 cycles, the model 132 while it
        queued the next column's W tile, requested at the start, at cycle 41: the arbiter
        held it there, the output loader waiting for a write-back, then took the A tile of
        the same tile first, and the W tile at 49; 136 with this.) A wait not known yet (a
        write-back whose tile the walk has not reached) holds nothing."""
        while True:
            u = bisect_right(o_reqs, t)
            if not (u < nv and o_first[u] < f and u >= h_o):
                return t
            span = wb_span(u - h_o)
            if span is None or t < span[0]:
                return t
            tw = req_o[u]
            if tw is None:  # the acquire (extend(), not walked yet) on these reads
                tw = span[1] + o_free
                if tw < req_o[u - 1]:
                    tw = req_o[u - 1]
            if tw <= t:
                return t
            t = tw

    first_a, first_w = first_of[0], first_of[1]
    rel_at_a, rel_at_w = release
    req_a, req_w = req[0], req[1]
    ready_a, ready_w = ready[0], ready[1]
    n_a, n_w = ntiles[0], ntiles[1]
    h_a, h_w = halves[0], halves[1]
    tie_a, tie_w = tie[0], tie[1]
    insort = bisect.insort
    bisect_right = bisect.bisect_right
    bisect_left = bisect.bisect_left
    nxt_a = nxt_w = nxt_o = 0  # each operand's next tile to request

    def held(t: float, f: int, tie_: int, memo: list[Any]) -> Any:
        """When a load of step ``f`` wanted from ``t`` is requested (None: not known yet):
        while the output's loader waits for the half a running write-back frees, the loads
        of later steps wait too, from when the arbiter could queue them (on a port of
        beats, once the request walker is free of the jobs before them: ``queued_at``)."""
        tq = queued_at(t, f, tie_) if walks else t
        while True:
            u = bisect_right(o_reqs, tq)
            if not (u < nv and o_first[u] < f and u >= h_o):
                return t
            tw = o_wait(tq, f, u, memo)
            if tw is None or tw <= tq:
                return t if tw is not None else None
            t = tw
            if holds is not None and sampled[cur] and not sampled[f]:
                holds.append(cur)
            if not walks:
                return t
            tq = queued_at(t, f, tie_)
            if tq <= t:
                return t

    def queued_at(t: float, f: int, tie_: int) -> float:
        """When the tile's arbiter can queue a load requested at ``t`` for step ``f``: once
        the request walker is free of the jobs before it (those pending now, requested by
        then, of earlier steps, and the ones already queued), each a request a cycle."""
        at = walker
        for tq, fq, tieq, oq, jq in pending:
            if tq > t:
                break
            if fq < f or (fq == f and tieq < tie_):
                if tq > at:
                    at = tq
                at += nreq_of[oq][jq]
        return t if t > at else at

    def extend() -> None:
        """Request every load that can be requested now, A's, W's and the output's in turn
        until none can."""
        nonlocal nxt_a, nxt_w, nxt_o
        progress = True
        while progress:
            progress = False
            # (o_wait's first test inline: the output's loader at t is not behind the load)
            j = nxt_a
            if j < n_a:
                free = 0.0 if j < h_a else rel_at_a[j - h_a]
                if free is not None:
                    if j:
                        t = req_a[j - 1]
                        if not t > free:
                            t = free
                    else:
                        t = free + queue
                    f = first_a[j]
                    if walks:
                        t = held(t, f, tie_a, o_memo_a)
                    else:  # (held(), inline)
                        u = bisect_right(o_reqs, t)
                        if u < nv and o_first[u] < f and u >= h_o:
                            t = o_wait(t, f, u, o_memo_a)
                    if t is not None:
                        req_a[j] = t
                        insort(pending, (t, f, tie_a, 0, j))
                        nxt_a = j + 1
                        progress = True
            j = nxt_w
            if j < n_w:
                free = 0.0 if j < h_w else rel_at_w[j - h_w]
                if free is not None:
                    if j:
                        t = req_w[j - 1]
                        if not t > free:
                            t = free
                    else:
                        t = free + queue
                    f = first_w[j]
                    if walks:
                        t = held(t, f, tie_w, o_memo_w)
                    else:  # (held(), inline)
                        u = bisect_right(o_reqs, t)
                        if u < nv and o_first[u] < f and u >= h_o:
                            t = o_wait(t, f, u, o_memo_w)
                    if t is not None:
                        req_w[j] = t
                        insort(pending, (t, f, tie_w, 1, j))
                        nxt_w = j + 1
                        progress = True
            j = nxt_o
            if j < nv:
                first = o_first[j]
                if j < h_o:
                    free = 0.0
                elif cur < first:
                    continue  # its write-back's end waits on reads not known yet
                else:
                    free = wb_finish(j - h_o)
                    if free is not None:
                        free += o_free  # the half's free count follows the last beat
                if free is None:
                    continue
                if j:
                    t = req_o[j - 1]
                    if not t > free:
                        t = free
                else:
                    t = free + queue
                job = has_job_o[j]
                if j and not job:
                    prev = ready_o[j - 1]
                    if prev is None:
                        continue  # acquired only once the earlier reloads have come
                    if prev > t:
                        t = prev
                req_o[j] = t
                o_reqs.append(t)
                if job:
                    insort(pending, (t, first, 2, 2, j))
                else:
                    ready_o[j] = t + loaded_after  # the loaded count follows the acquire
                nxt_o = j + 1
                progress = True

    wait = lat if lat > answer else answer  # from a request to its first answer
    walks = beat_bytes is not None  # the tile's request walker queues the jobs
    walker = 0.0  # when it is free for the next job
    queued = 0.0  # when the arbiter queues the load next_load() picks

    def next_load_walk() -> int:
        """The pending load the link serves next. On a port of beats, the tile's arbiter
        queues a job when its request walker is free for it (the job before has issued its
        requests, one a cycle, and fewer than ``JOB_QUEUE`` jobs await answers) or, if
        later, when the first load is requested (``queued``); of the loads requested by then,
        the one whose tile the engine needs first (ties: the input taken first). Without
        beats, of those requested by the time the link frees (less the wait for an answer)
        (measured on ``amaranth.sim``: the odd cube's GEMM 22x10x13 on 3x4x13 tiles, nmk, an
        ideal 16-byte link, took 385 cycles, the model 388 while it served the next W tile,
        requested first, before the A tiles the engine needed sooner; 385 with this). The
        one it takes waits while the output loader waits for a write-back (:func:`o_hold`):
        then the arbiter queues nothing until that wait ends or a load of an earlier tile is
        requested."""
        nonlocal queued
        at = walker
        q = len(r_end) - JOB_QUEUE
        if q >= 0 and r_end[q] > at:
            at = r_end[q]
        if pending[0][0] > at:
            at = pending[0][0]
        while True:
            best = 0
            bf, btie = pending[0][1], pending[0][2]
            later = math.inf  # the first request after ``at``
            for q in range(1, len(pending)):
                tq, fq, tieq = pending[q][0], pending[q][1], pending[q][2]
                if tq > at:
                    later = tq
                    break
                if (fq, tieq) < (bf, btie):
                    best, bf, btie = q, fq, tieq
            # the one the arbiter takes, unless the output loader's wait holds it: then
            # nothing until the wait ends or a load of an earlier tile is requested
            until = o_hold(at, bf)
            if until <= at:
                break
            if holds is not None and sampled[cur] and not sampled[bf]:
                holds.append(cur)
            at = until if until < later else later
        queued = at
        return best

    def next_load_plain() -> int:
        """:func:`next_load` on a link without beats (its callers take the only pending load
        without calling it)."""
        best = 0
        ready_by = link - wait
        bt, bf, btie, _, _ = pending[0]
        if bt <= ready_by:
            for q in range(1, len(pending)):
                tq, fq, tieq, _, _ = pending[q]
                if tq > ready_by:
                    break
                if fq < bf or (fq == bf and tieq < btie):
                    best, bf, btie = q, fq, tieq
        return best

    def serve_one() -> None:
        """Move the next pending load over the link."""
        nonlocal link, walker
        t, _, _, op, j = pending.pop(next_load() if walks or len(pending) > 1 else 0)
        if walks:
            t = queued
            walker = t + nreq_of[op][j]
        start = t + wait
        if link > start:
            start = link
        end = start + dur_of[op][j]
        r_start.append(start)
        r_end.append(end)
        r_use.append(use_of[op][j])
        link = end
        ready[op][j] = end + loaded_after

    # a link without beats walks without the tile's port (as before the port was counted)
    advance = advance_walk if walks else advance_plain
    next_load = next_load_walk if walks else next_load_plain

    def loaded(op: int, j: int) -> float:
        """When tile ``j`` of operand ``op`` has loaded (serving the link until it has)."""
        nonlocal link, walker
        reqs = req[op]
        while reqs[j] is None:
            if not pending:
                raise AssertionError(f"timeline: {_OPS[op]} tile {j} never requested")
            serve_one()
            extend()
        rd = ready[op]
        while rd[j] is None:
            if not pending:
                extend()
                if not pending:
                    raise AssertionError(f"timeline: {_OPS[op]} tile {j} never loads")
            # serve_one(), inline
            t, _, _, op_, j_ = pending.pop(next_load() if walks or len(pending) > 1 else 0)
            if walks:
                t = queued
                walker = t + nreq_of[op_][j_]
            start = t + wait
            if link > start:
                start = link
            end = start + dur_of[op_][j_]
            r_start.append(start)
            r_end.append(end)
            r_use.append(use_of[op_][j_])
            link = end
            ready[op_][j_] = end + loaded_after
            # a served read unblocks only the output's loader waiting for the reload before
            # a visit without one (extend() left every other loader blocked on the engine);
            # not where each loader is still blocked on the engine alone (a half not freed
            # yet, the output's visit not reached): extend() would do nothing there
            k = nxt_o
            if (k < nv and k and not has_job_o[k] and ready_o[k - 1] is not None
                    and not ((k >= h_o and cur < o_first[k])
                             and (nxt_a >= n_a or (nxt_a >= h_a
                                                   and rel_at_a[nxt_a - h_a] is None))
                             and (nxt_w >= n_w or (nxt_w >= h_w
                                                   and rel_at_w[nxt_w - h_w] is None)))):
                extend()
        return rd[j]

    def state(i: int) -> tuple[list[Any], float]:
        """The state at the top of step ``i`` that the steps from it depend on, every time
        from the engine's next free cycle and every tile from step ``i``'s (a list to compare
        with another step's by :func:`_same`), and that cycle."""
        base = free_at
        out: list[Any] = [prev_start - base, link - base, len(pending)]
        if walks:
            out.append(walker - base)
        # the oldest time a loader may still request from: the loads of A and W wait on the
        # output's loader at that time (o_wait), the write-backs on the reads after it
        t_lo = base
        for o, nxt in ((0, nxt_a), (1, nxt_w)):
            if nxt < ntiles[o]:
                r = 0.0 if nxt < halves[o] else release[o][nxt - halves[o]]
                if r is not None:
                    if nxt and req[o][nxt - 1] > r:
                        r = req[o][nxt - 1]
                    if r < t_lo:
                        t_lo = r
        u_lo = bisect.bisect_right(o_reqs, t_lo)  # the output loader's visit at t_lo
        wb_lo = wb_open if prog and prog[0] == wb_open else wb_open - 1
        for o, nxt in ((0, nxt_a), (1, nxt_w), (2, nxt_o)):
            cur_t = plan_tile[o][i]
            h = halves[o]
            # what the loaders and the engine read from here on (0: what they no longer
            # read): the tiles from the one in use, the half the next request waits for, the
            # request before it; the output's requests from the visit its loader is at at
            # t_lo, the write-backs whose start those requests wait for, the open one's
            lo = min(cur_t, nxt - h, nxt - 1)
            if o == 2:
                lo = min(lo, u_lo - h - 1, wb_lo)
            # a tile near the start (the loaders' first halves): the same only at the same tile
            out += (nxt - cur_t, lo - cur_t, -1 if lo >= 0 else cur_t)
            if lo < 0:
                lo = 0
            windows[o] = (lo, min(max(cur_t, nxt) + 2, ntiles[o]))
            rq, rd, durs, fs = req[o], ready[o], dur_of[o], first_of[o]
            hi = max(cur_t, nxt) + 2
            # (each tile's entries added as one tuple: the same list, fewer calls)
            if o < 2:
                rel_o = release[o]
                for j in range(lo, hi if hi < ntiles[o] else ntiles[o]):
                    x, y, z = rq[j], rd[j], rel_o[j]
                    out += ((x is None or x - base) if j >= nxt - 1 else 0,
                            (y is None or y - base) if j >= cur_t or j == nxt - 1 else 0,
                            durs[j] if j >= nxt else 0,
                            fs[j] - i if j >= cur_t or j >= nxt else 0,
                            (z is None or z - base) if j >= nxt - h else 0)
            else:
                for j in range(lo, hi if hi < ntiles[o] else ntiles[o]):
                    x, y = rq[j], rd[j]
                    out += ((x is None or x - base) if j >= nxt - 1 or j >= u_lo else 0,
                            (y is None or y - base) if j >= cur_t or j == nxt - 1 else 0,
                            durs[j] if j >= nxt else 0,
                            fs[j] - i if j >= cur_t or j >= nxt or j >= u_lo else 0,
                            has_job_o[j], wb_bytes[j], wb_rate[j])
                    if walks:
                        out.append(wb_phases[j])
                    x, y, z = wb_ready[j], wb_start[j], wb_end[j]
                    out += ((x is None or x - base) if j >= wb_open else 0,
                            (y is None or y - base) if j >= wb_open or j >= u_lo - h - 1
                            else 0,
                            (z is None or z - base) if j >= wb_lo else 0)
                    if walks:
                        out.append(wb_bank[j] if j >= wb_lo else 0)
            if hi > ntiles[o]:
                out.append(None)
        to = plan_tile[2][i]
        out += (wb_open - to, prog[0] - to if prog else None)
        # the reads the write-backs still move through: from the open one's, and from the
        # earliest start of one not taken up yet (advance)
        r_lo = base
        for u in range(wb_open + 1 if prog and prog[0] == wb_open else wb_open, nv):
            w = wb_ready[u]
            if w is None:
                break
            if w < r_lo:
                r_lo = w
        nreads = len(r_start)
        k = max(0, bisect_left(r_start, r_lo) - 1)
        if prog:
            out += (prog[1] - base, prog[2], prog[4], prog[3] - nreads)
            if walks:  # the bank and the start of a write-back the bank runs up to
                out += (prog[5], prog[6] - base, prog[7], prog[8])
            if prog[0] == wb_open:
                k = min(k, prog[3])
        out.append(k - nreads)
        for q in range(k, nreads):
            out += (r_start[q] - base, r_end[q] - base, r_use[q])
        for t, f, tie_, o, j in pending:
            out += (t - base, f - i, tie_, o, j - plan_tile[o][i], dur_of[o][j])
        return out, base

    windows = [(0, 0), (0, 0), (0, 0)]  # per operand: its tiles state() read last

    def relocate(i: int, target: int) -> bool:
        """Move the state at the top of step ``i`` to step ``target`` (the same state, its
        tiles those of the target's iteration: the tiles state() read move, the output's
        requests before them stand for the visits between); False, moving nothing, where a
        tile already requested is not alike where it would go."""
        nonlocal nxt_a, nxt_w, nxt_o, wb_open
        step_off = target - i
        off = [plan_tile[o][target] - plan_tile[o][i] for o in range(3)]
        for o, nxt in ((0, nxt_a), (1, nxt_w), (2, nxt_o)):
            k = off[o]
            durs, fs = dur_of[o], first_of[o]
            for j in range(plan_tile[o][i], nxt):
                if (j + k >= ntiles[o] or durs[j] != durs[j + k]
                        or fs[j] + step_off != fs[j + k]):
                    return False
                if o == 2 and (has_job_o[j] != has_job_o[j + k] or wb_bytes[j] != wb_bytes[j + k]
                               or wb_rate[j] != wb_rate[j + k]
                               or (walks and wb_phases[j] != wb_phases[j + k])):
                    return False
        for o in range(3):
            k = off[o]
            if not k:
                continue
            lo, hi = windows[o]
            arrays = ((req[o], ready[o], release[o]) if o < 2
                      else (req_o, ready_o, wb_ready, wb_start, wb_end, wb_bank))
            for arr in arrays:
                arr[lo + k:hi + k] = arr[lo:hi]
        k = off[2]
        if k:
            lo = windows[2][0]
            req_o[lo:lo + k] = [req_o[lo - 1] if lo else -math.inf] * k
            o_reqs[:] = req_o[:nxt_o + k]
            wb_open += k
            if prog:
                prog[0] += k
        nxt_a += off[0]
        nxt_w += off[1]
        nxt_o += k
        pending[:] = [(t, f + step_off, tie_, o, j + off[o]) for t, f, tie_, o, j in pending]
        o_memo_a[0] = o_memo_w[0] = None
        return True

    total = 0.0
    prev_start = 0.0
    mult = plan.mult
    busy = plan.busy
    rel_of, early_of, drains = plan.release, plan.early, plan.drain
    free_a, free_w, writes = plan.free_a, plan.free_w, plan.write
    early_a = nest.early_op == "A"
    early_w = nest.early_op == "W"
    tile_a, tile_w, tile_o = plan.tile_of
    # the first fold takes its stationary input in before the other one streams: the other
    # input is needed that many cycles after the first tile starts (every tile's, with
    # ``preload_each``)
    ahead = (0.0, 0.0, 0.0)
    behind = (0.0, 0.0, 0.0)
    late = False
    every = nest.preload_each
    # an engine that takes a fold's stationary input while the previous fold streams
    # (not ``preload_each``) still preloads the GEMM's first fold's before it streams: the
    # first tile's folds start ``lead`` cycles after it does (``sim.memory._nest`` leaves
    # that preload out of the tiles' busy cycles)
    lead = 0.0
    preload = nest.preload
    pre_any = preload is not None  # (else ahead, behind and lead are 0)
    if preload is not None:
        pre = float(preload[1])
        ahead = (pre, 0.0, pre) if preload[0] == "W" else (0.0, pre, pre)
        lead = 0.0 if every else pre
        if not every:
            # a later tile's first fold takes its stationary input while the fold before
            # streams, once that input has loaded: one that loads late delays the tile's
            # folds by the preload (the weight walker's, ``hw.tile``; measured on
            # ``amaranth.sim``: the weight double buffer on a 16-byte link of 40 cycles,
            # 22x18x15 on 11x4x15 tiles, mnk, took 547 cycles, the model 531 without this)
            behind = (0.0, pre, 0.0) if preload[0] == "W" else (pre, 0.0, 0.0)
            late = True
    plan_tile = plan.tile_of
    events = plan.events
    at_step = {step: (e, q) for e, (starts, *_) in enumerate(events)
               for q, step in enumerate(starts[:-2])} if skip else {}
    # within the iterations of a loop whose iterations are all alike: the first step of each
    # iteration of the loop inside it, from the loop's first iteration to its last but two,
    # and the totals at the first steps of the loop's iterations
    at_off: dict[int, list[tuple[int, int, int]]] = {}
    firsts_of: dict[int, tuple[int, ...]] = {}
    if skip:
        for e, (starts, _, to_last, _, offsets) in enumerate(events):
            if to_last and offsets:
                firsts = (2 * starts[0] - starts[1], *starts)
                firsts_of[e] = firsts
                for p in range(len(firsts) - 2):
                    for off in offsets:
                        at_off.setdefault(firsts[p] + off, []).append((e, p, off))
    at_first: dict[int, list[int]] = {}
    for e, firsts in firsts_of.items():
        for f in firsts:
            at_first.setdefault(f, []).append(e)
    iter_total: dict[tuple[int, int], float] = {}
    seen_off: dict[tuple[int, int], tuple[list[Any], float, float, int]] = {}
    walked = 0
    seen: dict[int, tuple[list[Any], float, float]] = {}
    i = 0
    while i < n:
        cur = i
        if at_first and i in at_first:
            for e in at_first[i]:
                iter_total[(e, firsts_of[e].index(i))] = total
        offs = at_off.get(i) if at_off else None
        if offs is not None:
            # the same from an offset within the loop's iterations: the state there, the
            # same as an iteration earlier, runs as it did up to the same offset within the
            # last iteration; the steps left out take what the iteration before took, its
            # part before the offset and its part after each per unit of its share
            now, base = state(i)
            jumped = False
            for e, p, off in offs:
                if p and seen_off.get((e, off), (p,))[-1] == p - 1 and (e, p) in iter_total:
                    then, t1, total1, _ = seen_off[(e, off)]
                    firsts = firsts_of[e]
                    target = firsts[-1] + off
                    if (_same(then, now, SAME_STATE * max(base, t1, 1.0))
                            and relocate(i, target)):
                        all_shares = events[e][3]
                        t_mid = iter_total[(e, p)]
                        tail = (t_mid - total1) / all_shares[p - 1]
                        head = (total - t_mid) / all_shares[p]
                        total += (tail * sum(all_shares[p:-1])
                                  + head * sum(all_shares[p + 1:]))
                        i = target
                        jumped = True
                        break
                seen_off[(e, off)] = (now, base, total, p)
            if jumped:
                continue
        ev = at_step.get(i) if at_step else None
        if ev is not None:
            # skip: an iteration of a loop that starts in the state the iteration before it
            # started in, shifted in time, runs as that one did, and so do the ones after it
            # up to the last but one: they take what that one took (times their shares), and
            # the walk goes on at the last but one, in the same state
            e, q = ev
            starts, shares, to_last, _, _ = events[e]
            now, base = state(i)
            if q and e in seen:  # (not where a jump landed past the iteration before)
                then, t1, total1 = seen[e]
                if _same(then, now, SAME_STATE * max(base, t1, 1.0)):
                    # to the last iteration where its steps are those of the last but one
                    # (which then runs as the others), else to the last but one
                    if to_last and relocate(i, starts[-1]):
                        total += sum(shares[q:]) / shares[q - 1] * (total - total1)
                        i = starts[-1]
                        continue
                    if relocate(i, starts[-2]):
                        total += sum(shares[q:-1]) / shares[q - 1] * (total - total1)
                        i = starts[-2]
                        continue
            seen[e] = (now, base, total)
        walked += 1
        extend()
        start = free_at
        j = tile_a[i]
        if first_a[j] == i:
            t = ready_a[j]
            if t is None:
                t = loaded(0, j)
            if pre_any:
                if i == 0 or every:
                    t -= ahead[0]
                elif late:
                    t += behind[0]
            if t > start:
                start = t
        j = tile_w[i]
        if first_w[j] == i:
            t = ready_w[j]
            if t is None:
                t = loaded(1, j)
            if pre_any:
                if i == 0 or every:
                    t -= ahead[1]
                elif late:
                    t += behind[1]
            if t > start:
                start = t
        j = tile_o[i]
        if o_first[j] == i:
            t = ready_o[j]
            if t is None:
                t = loaded(2, j)
            if pre_any:
                if i == 0 or every:
                    t -= ahead[2]
                elif late:
                    t += behind[2]
            if t > start:
                start = t
        if not i:
            start += lead
        total += (start - prev_start) * mult[i] if i else start
        prev_start = start
        free_at = start + busy[i]
        if free_a[i]:
            rel = start + rel_of[i]
            rel_at_a[tile_a[i]] = rel - early_of[i] if early_a else rel
        if free_w[i]:
            rel = start + rel_of[i]
            rel_at_w[tile_w[i]] = rel - early_of[i] if early_w else rel
        if writes[i]:
            wb_ready[tile_o[i]] = free_at + drains[i] + line_read
        i += 1
    while pending:
        serve_one()
    end = wb_finish(nv - 1)
    total += end - prev_start
    return total, walked


def _same(a: list[Any], b: list[Any], tol: float) -> bool:
    """Whether two states (``_walk``'s ``state``) are the same: the same entries, their
    floats within ``tol``."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x is y:
            continue
        if type(x) is float and type(y) is float:
            if abs(x - y) > tol:
                return False
        elif x != y:
            return False
    return True


def timeline_floor(nest: Nest, bytes_per_cycle: Exact, latency: Exact,
                   beat_bytes: int | None = None, *, reduce: bool = True) -> float:
    """The floor :func:`timeline_cycles` applies to its result (:func:`_bound`: the engine's
    busy cycles, the link's time for the bytes it moves, and the first tiles' loads, the
    engine's busy cycles and the last write-back in a row), the same float64 figures, so
    that ``timeline_floor(nest, bw, lat, beat) <= timeline_cycles(nest, bw, lat, beat)`` on
    the same link (a beat's banked credit speeds the last write-back: a floor without the
    beat does not bound a timeline with it): a lower bound on a mapping's timeline without
    running it."""
    return _bound(nest, _plan(nest, reduce), float(bytes_per_cycle), latency, beat_bytes)
