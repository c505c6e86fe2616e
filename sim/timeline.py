"""The DRAM timeline of one mapped GEMM: when each buffer tile loads, computes and is written
back over one link, tile by tile (``sim.memory`` evaluates the mapping a GEMM runs with on it;
the candidates are ranked by ``sim.memory``'s closed form).

**What it follows.** The tile loops in the mapping's order. Each operand (A, W, and the output's
spilled partial sums) has a loader of its own that walks the tiles and, at a tile where its
operand's tile changes, waits for a free half of its level (two halves when double-buffered:
a half frees when the engine leaves the tile before last of that operand; the output's when
the write-back of the output tile before last has gone), then requests the load. Loads move
over the link first come, first served, each after the link's latency from its request (the
requests of consecutive loads overlap their latencies); at equal request times, the load of
the earlier tile goes first (the engine needs it sooner). A tile computes when its operands
have loaded and the engine has finished the tile before it: its busy cycles are its folds'
(``fold_interval`` each) and its share of the SRAM stalls; it frees its inputs' halves with
its last beat (the input a fold holds stationary a fold earlier, on an engine that takes it
while the previous fold streams). When the loops leave an output
tile, its write-back starts after its last fold has drained and the previous write-back has
gone; reads have the link first and write-backs take what the reads leave. While the output's
loader waits for the half a running write-back frees, the loads of later tiles wait too (their
reads would take the link before the write-back that frees the half). The GEMM ends when its
last write-back has gone.

**The link** moves ``bytes_per_cycle`` on average, reads and writes together; given a beat
(``beat_bytes``, the architecture's ``dram.beat_bytes``), it moves at most one read beat and
one write beat a cycle, and a matrix row of a tile takes whole beats (a row narrower than a
beat takes a cycle for its bytes).

**Cost.** The loops repeat: within a loop, the iterations between the first few and the last
(the edge) move and compute alike once the pipeline has settled, so the timeline runs a
reduced loop nest: the innermost loop that moves runs its first iterations, a few that each
stand for a share of the ones between, and its last; every other loop likewise with fewer
(:data:`WARM`, :data:`SAMPLE`, :data:`OUTER_WHOLE`). A tile's time (from the start of the tile
before it) counts once per iteration it stands for: at most a few hundred tiles whatever the
GEMM's size. Against every tile's timeline on 100 random GEMMs of up to 50 tiles a loop
(every loop order, small tiles of the systolic array and the cube), the reduced nest
differs by 0.06% on average and 1.5% at most. Times are float64: a GEMM's
cycles are exact below 2^53.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass
from typing import Any

from models.ops import Exact

__all__ = ["Nest", "TileTiming", "timeline_cycles"]

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
    ``preload`` cycles later; ``None`` otherwise)."""

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


@dataclass(slots=True)
class _Step:
    size: tuple[int, int, int]
    #: Iterations of the GEMM's loops this tile of the reduced nest stands for.
    mult: float
    changed: tuple[bool, bool, bool]
    jobs: tuple[Any, Any, Any]  # (rows, row bytes) per operand; None: nothing to load
    write: tuple[int, float] | None  # the write-back after the tile: (rows, row bytes)
    timing: TileTiming


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


#: The cycles a port of beats (a link with ``beat_bytes``: the tile's, ``hw.tile``) adds
#: around its transfers, from the tile RTL's DMA (``hw.tile``, "Overlap": measured on
#: ``amaranth.sim`` with a link that never limits, a GEMM takes the engine's cycles, the first
#: tile's read beats and the last output tile's write beats plus these four): the loader
#: queues its first job a cycle after the start; the link answers a request no earlier than
#: the cycle after it (its latency, at least a cycle); a tile is loaded the cycle after its
#: last answer (the loaded count); a write-back's first beat follows its tile's drain by a
#: cycle (the O line read).
PORT_PIPELINE = (1, 1, 1, 1)


def _positions(trips: int, sampled: bool, reduce: bool) -> list[tuple[int, float]]:
    """(tile index, iterations it stands for) of one loop in the reduced nest (every
    iteration without ``reduce``). The reduced loop keeps the parity of its trips (one more
    warm-up iteration when they differ), so that a pattern that alternates from tile to tile
    keeps its phase from one sweep of the loop to the next."""
    if not reduce or trips <= (WARM + SAMPLE + 1 if sampled else OUTER_WHOLE):
        return [(i, 1.0) for i in range(trips)]
    warm, sample = (WARM, SAMPLE) if sampled else (2, 2)
    warm += (trips - warm - sample - 1) % 2
    share = (trips - 1 - warm) / sample
    return [*((i, 1.0) for i in range(warm)), *((warm + i, share) for i in range(sample)),
            (trips - 1, 1.0)]


def _steps(nest: Nest, reduce: bool) -> list[_Step]:
    """The reduced loop nest's tiles in loop order (every tile of a nest of at most
    :data:`WHOLE_TILES`)."""
    dims = nest.dims
    tile = nest.tile
    trips = tuple(-(-d // t) for d, t in zip(dims, tile, strict=True))
    reduce = reduce and trips[0] * trips[1] * trips[2] > WHOLE_TILES
    at = tuple(nest.order.index(d) for d in "mnk")  # loop position of m, n, k
    timing = dict(nest.timing)
    moving = [d for d in nest.order if trips["mnk".index(d)] > 1]
    loops = [_positions(trips["mnk".index(d)], bool(moving) and d == moving[-1], reduce)
             for d in nest.order]
    seq = list(itertools.product(*loops))
    idxs = [(pos[at[0]][0], pos[at[1]][0], pos[at[2]][0]) for pos in seq]
    a_b, w_b = float(nest.a_bytes), float(nest.w_bytes)
    acc_b, o_b = float(nest.acc_bytes), float(nest.o_bytes)
    last_k = trips[2] - 1
    out: list[_Step] = []
    prev = None
    n = len(seq)
    for i, idx in enumerate(idxs):
        pos = seq[i]
        mult = pos[0][1] * pos[1][1] * pos[2][1]
        size = (min(tile[0], dims[0] - idx[0] * tile[0]),
                min(tile[1], dims[1] - idx[1] * tile[1]),
                min(tile[2], dims[2] - idx[2] * tile[2]))
        tm, tn, tk = size
        if prev is None:
            changed = (True, True, True)
        else:
            changed = (prev[0] != idx[0] or prev[2] != idx[2],
                       prev[1] != idx[1] or prev[2] != idx[2],
                       prev[0] != idx[0] or prev[1] != idx[1])
        jobs = ((tm, tk * a_b), (tk, tn * w_b), (tm, tn * acc_b) if idx[2] else None)
        write = None
        nxt = idxs[i + 1] if i + 1 < n else None
        if nxt is None or nxt[0] != idx[0] or nxt[1] != idx[1]:
            # the final output, or partial sums spilled
            write = (tm, tn * (o_b if idx[2] == last_k else acc_b))
        out.append(_Step(size, mult, changed, jobs, write, timing[size]))
        prev = idx
    return out


def timeline_cycles(nest: Nest, bytes_per_cycle: Exact, latency: Exact,
                    beat_bytes: int | None = None, *, reduce: bool = True) -> float:
    """Cycles from the start of the GEMM to its last written byte (module doc), in float64;
    ``reduce=False`` runs every tile of the loop nest instead of the reduced nest."""
    # a port of beats (``beat_bytes``) has the DMA's registers around it (PORT_PIPELINE)
    queue, answer, loaded_after, line_read = (
        PORT_PIPELINE if beat_bytes is not None else (0, 0, 0, 0))
    steps = _steps(nest, reduce)
    n = len(steps)
    bw = float(bytes_per_cycle)
    lat = float(latency)
    halves = dict(zip(_OPS, nest.halves, strict=True))
    # ties between loads requested together: the engine takes a fold's stationary input
    # (early_op, or the one it preloads) first, then the other input, then the partial sums
    first_op = nest.early_op or (nest.preload[0] if nest.preload is not None else "A")
    tie = {first_op: 0, ("W" if first_op == "A" else "A"): 1, "O": 2}

    def link_time(rows: int, row_bytes: Exact) -> float:
        nbytes = rows * row_bytes
        t = nbytes / bw
        if beat_bytes is not None:
            t = max(t, float(rows * math.ceil(row_bytes / beat_bytes - 1e-9)))
        return t

    # each operand's tiles: [first step, last step]
    optiles: dict[str, list[list[int]]] = {op: [] for op in _OPS}
    tile_op: dict[str, list[int]] = {op: [0] * n for op in _OPS}
    for i, st in enumerate(steps):
        for o, op in enumerate(_OPS):
            if st.changed[o]:
                optiles[op].append([i, i])
            else:
                optiles[op][-1][1] = i
            tile_op[op][i] = len(optiles[op]) - 1
    nv = len(optiles["O"])
    release: dict[str, list[Any]] = {op: [None] * len(optiles[op]) for op in _OPS}
    req: dict[str, list[Any]] = {op: [None] * len(optiles[op]) for op in _OPS}
    ready: dict[str, list[Any]] = {op: [None] * len(optiles[op]) for op in _OPS}
    nxt = dict.fromkeys(_OPS, 0)
    pending: list[tuple[float, int, int, str, int]] = []
    reads: list[tuple[float, float, float]] = []  # (start, end, bytes per cycle)
    wb_ready: list[Any] = [None] * nv
    wb_job: list[Any] = [None] * nv
    wb_start: list[Any] = [None] * nv
    wb_end: list[Any] = [None] * nv  # final ends only
    state: dict[str, Any] = {"link": 0.0, "free_at": 0.0, "cur": 0, "wb_open": 0}

    def write_rate(rows: int, row_bytes: float) -> float:
        if beat_bytes is None:
            return bw
        return min(bw, rows * row_bytes / (rows * math.ceil(row_bytes / beat_bytes - 1e-9)))

    o_reqs: list[float] = []  # the output loader's requests so far, in order
    prog: list[Any] = [None]  # the first open write-back: [visit, time, bytes left, read]

    def advance() -> None:
        """Move the write-backs on through the reads requested so far (which later reads
        cannot precede): reads first, the write-back in what they leave."""
        while True:
            u = state["wb_open"]
            if u >= nv or wb_ready[u] is None:
                return
            p = prog[0]
            if p is None or p[0] != u:
                start = max(wb_ready[u], wb_end[u - 1] if u else 0.0)
                wb_start[u] = start
                rows, row_bytes = wb_job[u]
                p = prog[0] = [u, start, rows * row_bytes,
                               max(0, bisect.bisect_left(reads, (start,)) - 1),
                               write_rate(rows, row_bytes)]
            _, t, left, k, rate = p
            done = None
            while k < len(reads):
                s_, e_, used = reads[k]
                if e_ <= t:
                    k += 1
                    continue
                if s_ > t:  # the link idles until this read
                    if left <= rate * (s_ - t):
                        done = t + left / rate
                        break
                    left -= rate * (s_ - t)
                    t = s_
                r = min(rate, max(0.0, bw - used))
                if r > 0 and left <= r * (e_ - t):
                    done = t + left / r
                    break
                left -= r * (e_ - t)
                t = e_
                k += 1
            if done is None:
                p[1:4] = [t, left, k]
                return
            wb_end[u] = done
            state["wb_open"] = u + 1

    def wb_finish(v: int) -> Any:
        """When visit ``v``'s write-back has gone, on the reads requested so far (reads
        requested before it would end go first); None while it has not started."""
        while True:
            advance()
            u0 = state["wb_open"]
            if v < u0:
                return wb_end[v]
            if wb_ready[u0] is None:
                return None
            _, t, left, _, rate = prog[0]
            end = max(t, state["link"]) + left / rate  # after every read so far
            for u in range(u0 + 1, v + 1):
                if wb_ready[u] is None:
                    return None
                start = max(wb_ready[u], end)
                wb_start[u] = start
                rows, row_bytes = wb_job[u]
                end = start + rows * row_bytes / write_rate(rows, row_bytes)
            if pending and pending[0][0] < end:
                serve_one()  # a read requested before it would end goes first
                continue
            return end

    def wb_begin(v: int) -> Any:
        """When visit ``v``'s write-back starts, on the reads requested so far (None: not
        known yet)."""
        advance()
        u0 = state["wb_open"]
        if v < u0 or (v == u0 and wb_ready[v] is not None):
            return wb_start[v]  # set when advance() took the write-back up
        return wb_start[v] if wb_finish(v) is not None else None

    def o_wait(t: float, first: int) -> Any:
        """The earliest time from ``t`` a load of step ``first`` may be requested (None:
        not known yet)."""
        h = halves["O"]
        u = bisect.bisect_right(o_reqs, t)  # the visit the output's loader is at
        while True:
            if u >= nv or optiles["O"][u][0] >= first or u < h:
                return t
            if wb_ready[u - h] is None:
                return t if t < state["free_at"] else None
            begin = wb_begin(u - h)
            if begin is None:
                return None
            if t < begin:
                return t
            if req["O"][u] is None:
                return None
            t = req["O"][u]
            u += 1

    def extend() -> None:
        progress = True
        while progress:
            progress = False
            for op in _OPS:
                j = nxt[op]
                if j >= len(optiles[op]):
                    continue
                h = halves[op]
                first = optiles[op][j][0]
                if j < h:
                    free: Any = 0.0
                elif op == "O":
                    if state["cur"] < first:
                        continue  # its write-back's end waits on reads not known yet
                    free = wb_finish(j - h)
                else:
                    free = release[op][j - h]
                if free is None:
                    continue
                t = max(free, req[op][j - 1]) if j else free + queue
                if op != "O":
                    t = o_wait(t, first)
                    if t is None:
                        continue
                elif j and ready["O"][j - 1] is None and steps[first].jobs[2] is None:
                    continue  # acquired only once the earlier reloads have come
                elif j and steps[first].jobs[2] is None:
                    t = max(t, ready["O"][j - 1])
                req[op][j] = t
                if op == "O":
                    o_reqs.append(t)
                job = steps[first].jobs[_OPS.index(op)]
                if job is None:
                    ready[op][j] = t
                else:
                    bisect.insort(pending, (t, first, tie[op], op, j))
                nxt[op] = j + 1
                progress = True

    def serve_one() -> None:
        t, first, _, op, j = pending.pop(0)
        dur = link_time(*steps[first].jobs[_OPS.index(op)])
        start = max(state["link"], t + max(lat, answer))
        end = start + dur
        rows, row_bytes = steps[first].jobs[_OPS.index(op)]
        reads.append((start, end, rows * row_bytes / dur if dur else bw))
        state["link"] = end
        ready[op][j] = end + loaded_after

    def loaded(op: str, j: int) -> float:
        while ready[op][j] is None:
            if not pending:
                extend()
                if not pending:
                    raise AssertionError(f"timeline: {op} tile {j} never loads")
            serve_one()
            extend()
        return ready[op][j]

    total = 0.0
    prev_start = None
    last_start = 0.0
    for i, st in enumerate(steps):
        state["cur"] = i
        extend()
        start = state["free_at"]
        for op in _OPS:
            j = tile_op[op][i]
            if optiles[op][j][0] == i:
                while req[op][j] is None:
                    if not pending:
                        raise AssertionError(f"timeline: {op} tile {j} never requested")
                    serve_one()
                    extend()
                # the first fold takes its stationary input in before the other one streams
                ahead = (float(nest.preload[1]) if i == 0 and nest.preload is not None
                         and op != nest.preload[0] else 0.0)
                start = max(start, loaded(op, j) - ahead)
        total += (start - prev_start) * st.mult if prev_start is not None else start
        prev_start = last_start = start
        tm = st.timing
        state["free_at"] = start + tm.busy
        if i + 1 < n:
            for o, op in enumerate(("A", "W")):
                if steps[i + 1].changed[o]:
                    rel = start + tm.release
                    if op == nest.early_op:
                        rel -= tm.early
                    release[op][tile_op[op][i]] = rel
        if st.write is not None:
            v = tile_op["O"][i]
            wb_ready[v] = start + tm.busy + tm.drain + line_read
            wb_job[v] = st.write
    while pending:
        serve_one()
    end = wb_finish(nv - 1)
    total += end - last_start
    # no schedule beats the engine's busy time or the link's time for the bytes it moves: a
    # reduced nest's sampled iterations can fall short of either
    moved = sum(st.mult * (sum(j[0] * j[1] for o, j in enumerate(st.jobs)
                               if j is not None and st.changed[o])
                           + (st.write[0] * st.write[1] if st.write is not None else 0.0))
                for st in steps)
    busy = sum(st.mult * st.timing.busy for st in steps)
    return max(total, moved / bw, float(busy))
