"""A cycle-level reference of the tile's DMA (``hw.tile``) in plain Python: the loaders, the
arbiter, the request walker, the link of ``tile_bench.ExtMemory`` and the write-back, with the
engine's compute at tile granularity (a tile's folds back to back, ``fold_interval`` each).

It exists to find what the system model (``sim.memory``) must count: it runs in milliseconds
where the RTL runs in seconds, and is held to the RTL's measured cycles of the agreement
benchmark (``benchmarks/tile_agreement.py``'s committed results).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction

from hw.spec import TileSpec

__all__ = ["TileStep", "reference_cycles", "tile_steps"]


@dataclass(frozen=True)
class TileStep:
    """One tile of the loop nest: its indices, sizes, which operand tiles change from the
    previous tile, whether the output tile is left after it, and its read jobs' and
    write-back's request lengths (bytes)."""

    idx: tuple[int, int, int]
    size: tuple[int, int, int]
    changed: dict
    wb: bool
    jobs: dict
    writes: tuple[int, ...]
    feed: int
    tail: int
    #: Cycles of one fold of the tile.
    interval: int
    #: Cycles between the tile's last beat and the end of its folds' intervals (an engine
    #: that does not overlap folds takes no beat while a fold drains).
    gap: int


def _rows(lay, rows: int, cols: int, eb: int) -> list[int]:
    if lay.banks > 1:
        return [cols * eb] * rows
    lc = lay.block_cols
    return [min(lc, cols - no) * eb for _ in range(rows) for no in range(0, cols, lc)]


def _o_rows(spec: TileSpec, tm: int, tn: int) -> list[int]:
    R, C = spec.engine_block
    eb = spec.elem_bytes("O")
    return [min(C, tn - no) * eb for i in range(0, tm, R) for no in range(0, tn, C)
            for _ in range(min(R, tm - i))]


def _feed(spec: TileSpec, tm: int, tn: int, tk: int) -> tuple[int, int, int, int]:
    """(cycles the tile's folds take back to back, its last fold's drain beyond them, the
    cycles of its last fold's interval after its last beat)."""
    e = spec.engine
    u = e.unrolling()
    ext = {"m": tm, "n": tn, "k": tk}
    spatial = 1
    for d in "mnk":
        un = getattr(u, d)
        if un:
            spatial *= -(-ext[d] // un)
    L = ext[u.stream]
    beats = L if spec.weight_stationary else -(-L // spec.k_per_beat)
    interval = e.fold_interval(L)
    return (spatial * interval, e.fold_cycles(L) - interval, interval,
            max(0, interval - beats))


def tile_steps(spec: TileSpec, M: int, N: int, K: int, tile: tuple[int, int, int],
               order: str) -> list[TileStep]:
    dims = {"m": M, "n": N, "k": K}
    tiles = dict(zip("mnk", tile, strict=True))
    ranges = [range(0, dims[d], tiles[d]) for d in order]
    seq = []
    for pos in itertools.product(*ranges):
        at = dict(zip(order, pos, strict=True))
        seq.append((at["m"], at["n"], at["k"]))
    out = []
    ea, ew = spec.elem_bytes("A"), spec.elem_bytes("W")
    for i, (m0, n0, k0) in enumerate(seq):
        tm, tn, tk = min(tile[0], M - m0), min(tile[1], N - n0), min(tile[2], K - k0)
        prev = seq[i - 1] if i else None
        nxt = seq[i + 1] if i + 1 < len(seq) else None
        ch = {"A": prev is None or (prev[0], prev[2]) != (m0, k0),
              "W": prev is None or (prev[1], prev[2]) != (n0, k0),
              "O": prev is None or (prev[0], prev[1]) != (m0, n0)}
        wb = nxt is None or (nxt[0], nxt[1]) != (m0, n0)
        jobs = {"A": _rows(spec.a, tm, tk, ea), "W": _rows(spec.w, tk, tn, ew),
                "O": _o_rows(spec, tm, tn) if k0 else None}
        out.append(TileStep((m0, n0, k0), (tm, tn, tk), ch, wb, jobs,
                            tuple(_o_rows(spec, tm, tn)), *_feed(spec, tm, tn, tk)))
    return out


def reference_cycles(spec: TileSpec, M: int, N: int, K: int, tile: tuple[int, int, int],
                     order: str, bytes_per_cycle: Fraction, latency: int,
                     trace: list | None = None) -> int:
    """Cycles from ``start`` to the last C beat of the GEMM on the tile (see module doc)."""
    steps = tile_steps(spec, M, N, K, tile, order)
    n = len(steps)
    E = spec.ext_bytes
    ops = ("A", "W", "O")
    halves = {"A": spec.a.halves, "W": spec.w.halves, "O": spec.o.halves}
    ws = spec.weight_stationary
    tie = ("W", "A", "O") if ws else ops
    free = dict(halves)
    loaded = dict.fromkeys(ops, 0)
    lpos = dict.fromkeys(ops, 0)  # each loader's tile
    o_jobs = 0
    jobs: list[list] = []  # [op, [lens], tile]
    jq_w = jq_q = jq_a = 0  # pushed, issued, answered
    rq_i = 0  # next request of job jq_q
    ra_i = 0  # request of job jq_a whose answer comes
    reads: list[list] = []  # [ready cycle, remaining bytes]
    writes: list[list] = []  # [remaining bytes]
    credit = Fraction(0)
    bw = Fraction(bytes_per_cycle)
    # computer
    c = 0
    c_end = None  # cycle the current tile's feed ends (its last beat), None if idle
    drains: list[tuple[int, int]] = []  # (cycle its drain ends, tile)
    wb_queue: list[int] = []  # tiles whose write-back waits
    wr_busy = False
    wr_go_at = None
    wr_reqs: list[int] = []
    wr_beats_left: list[int] = []
    line_ready_at = None
    last_write = 0
    t = 0
    rel = dict.fromkeys(ops, 0)
    got = dict.fromkeys(ops, 0)
    left = dict.fromkeys(ops, 0)
    started = 0
    w_ahead = 0
    free_at = 0  # the engine takes the next tile's first beat from this cycle
    while True:
        t += 1
        if t > 10_000_000:
            raise AssertionError("reference did not finish")
        rel = dict.fromkeys(ops, 0)
        got = dict.fromkeys(ops, 0)
        left = dict.fromkeys(ops, 0)
        acq = dict.fromkeys(ops, 0)
        o_pushed = o_answered = 0
        if wr_go_at is not None and t == wr_go_at + 1:
            wr_busy = True
            line_ready_at = t + 1
            wr_go_at = None
        # -- link: drive ---------------------------------------------------------------
        credit = min(credit + bw, E + bw)
        rd = reads[0] if reads and reads[0][0] <= t else None
        rd_n = min(E, rd[1]) if rd else 0
        rd_valid = rd is not None and credit >= rd_n
        cr = credit - (rd_n if rd_valid else 0)
        wr = writes[0] if writes else None
        wr_n = min(E, wr[0]) if wr else 0
        wr_valid = wr_busy and line_ready_at is not None and t >= line_ready_at
        wr_move = wr is not None and cr >= wr_n and wr_valid
        # -- request walker --------------------------------------------------------------
        rq_step = jq_q < jq_w
        rq_last = False
        if rq_step:
            lens = jobs[jq_q][1]
            reads_new = (t + latency, lens[rq_i])
            rq_last = rq_i == len(lens) - 1
        # -- answers -------------------------------------------------------------------
        if rd_valid:
            credit -= rd_n
            rd[1] -= rd_n
            if rd[1] == 0:
                reads.pop(0)
                lens = jobs[jq_a][1]
                ra_i += 1
                if ra_i == len(lens):
                    op = jobs[jq_a][0]
                    got[op] = 1
                    if trace is not None:
                        trace.append(("done", op, jobs[jq_a][2], t))
                    if op == "O":
                        o_answered = 1
                    jq_a += 1
                    ra_i = 0
        # -- write beats ---------------------------------------------------------------
        if wr_move:
            credit -= wr_n
            wr[0] -= wr_n
            last_write = t
            if wr[0] == 0:
                writes.pop(0)
                wr_beats_left.pop(0)
                if not wr_beats_left:
                    if trace is not None:
                        trace.append(("wbend", t))
                    wr_busy = False
                    rel["O"] = 1
                    line_ready_at = None
        if rq_step:
            reads.append(list(reads_new))
            rq_i += 1
            if rq_last:
                jq_q += 1
                rq_i = 0
        # -- write requests --------------------------------------------------------------
        if wr_busy and wr_reqs:
            writes.append([wr_reqs.pop(0)])
        # -- loaders and arbiter -----------------------------------------------------------
        push_ok = (jq_w - jq_a) < 4 and (jq_q == jq_w or (jq_q + 1 == jq_w and rq_last))
        want = {}
        for op in ops:
            p = lpos[op]
            want[op] = (p < n and steps[p].changed[op] and free[op] > 0
                        and (op != "O" or steps[p].jobs["O"] is not None))
        po = lpos["O"]
        o_wait = (po < n and steps[po].changed["O"] and free["O"] == 0 and wr_busy)
        grant = None
        if push_ok:
            for i, op in enumerate(tie):
                if not want[op]:
                    continue
                ok = all(not want[x] or (lpos[op] < lpos[x] if j < i else lpos[op] <= lpos[x])
                         for j, x in enumerate(tie) if x != op)
                if op != "O" and o_wait and not lpos[op] <= po:
                    ok = False
                if ok:
                    grant = op
                    break
        for op in ops:
            p = lpos[op]
            if p >= n:
                continue
            st = steps[p]
            if not st.changed[op]:
                lpos[op] += 1
            elif grant == op:
                acq[op] = 1
                if trace is not None:
                    trace.append(("grant", op, p, t))
                jobs.append([op, st.jobs[op], p])
                jq_w += 1
                lpos[op] += 1
                if op == "O":
                    o_pushed = 1
            elif op == "O" and st.jobs["O"] is None and free["O"] > 0 and o_jobs == 0:
                acq["O"] = 1
                got["O"] = 1
                lpos[op] += 1
        # -- computer ------------------------------------------------------------------
        # weight stationary: the weight walker leaves a tile a fold ahead of the feeder
        # (the engine takes a fold's weights while the previous fold streams)
        if ws and c_end is not None and t == c_end - w_ahead and c + 1 < n:
            if steps[c + 1].changed["W"]:
                left["W"] = rel["W"] = 1
        if c_end is not None and t == c_end:
            st = steps[c]
            drains.append((t + st.gap + st.tail, c))
            if c + 1 < n:
                nx = steps[c + 1]
                for op in ops:
                    if nx.changed[op] and not (ws and op == "W"):
                        left[op] = 1
                        if op != "O":
                            rel[op] = 1
            c += 1
            c_end = None
        elif (c_end is None and c < n and started == c and t >= free_at
              and all(loaded[op] for op in ops)):
            st = steps[c]
            c_end = t + st.feed - 1 - st.gap
            w_ahead = min(st.feed - 1 - st.gap, st.interval)
            free_at = t + st.feed
            started = c + 1
            if trace is not None:
                trace.append((c, t))
        elif trace is not None and c_end is None and c < n:
            trace.append(("wait", c, t, dict(loaded), dict(free), dict(lpos), wr_busy))
        # -- drain and write-back -----------------------------------------------------------
        while drains and drains[0][0] <= t:
            _, i = drains.pop(0)
            if steps[i].wb:
                wb_queue.append(i)
        if not wr_busy and wb_queue and wr_go_at is None:
            i = wb_queue.pop(0)
            wr_go_at = t
            wr_reqs = list(steps[i].writes)
            wr_beats_left = list(steps[i].writes)
        # -- registers -------------------------------------------------------------------
        for op in ops:
            free[op] += rel[op] - acq[op]
            loaded[op] += got[op] - left[op]
        o_jobs += o_pushed - o_answered
        if c >= n and not drains and not wb_queue and not wr_busy and wr_go_at is None:
            return last_write
