"""Systolic array generator: output-stationary and weight-stationary dataflows.

One :class:`SystolicArray` component is elaborated from one :class:`hw.spec.SystolicSpec`.
All streams follow ``amaranth.lib.stream`` rules (a beat transfers in a cycle where ``valid``
and ``ready`` are both high; ``valid`` never waits for ``ready``). Operand lanes are
``signed(bits)`` or ``unsigned(bits)`` per ``spec.signed``; accumulators are ``acc_bits`` wide
and wrap modulo ``2**acc_bits`` (two's complement when signed).

Output stationary (``dataflow="os"``) computes a ``rows`` x ``cols`` tile of
``C = A @ W`` over a reduction of any length K:

* ``i`` stream, one beat per reduction index k: ``a[r] = A[r, k]`` for every row r,
  ``w[c] = W[k, c]`` for every column c, ``last`` high on the beat of k = K-1.
  The array never stalls its input: a cycle without a valid beat enters zeros (a bubble),
  which adds nothing to the accumulators and delays the fold by one cycle.
* ``o`` stream, ``rows`` beats after the last MAC: beat r carries ``c[j] = C[r, j]``;
  ``last`` marks beat ``rows - 1``. Back-pressure (``ready`` low) holds the drain.
* Timing: with every beat valid and ready, the last output transfers
  ``fold_cycles(K) - 1 = K + 2*rows + cols - 3`` cycles after the first input beat
  (skew fill ``rows + cols - 2``, steady state K, drain ``rows``). ``i.ready`` is high
  from the cycle after the last output beat, so folds run back to back.
* With ``output_double_buffer`` every PE also has an output register, and the drain overlaps
  the next fold's stream. A one-bit token enters with a fold's last beat and moves with it,
  one anti-diagonal r + c per step; in the step it reaches PE (r, c) the PE writes its
  finished sum into its output register and restarts its accumulator from zero. The drain
  starts as the token leaves the last PE (single-fold timing unchanged) and presents the
  output registers row by row in place (a multiplexer on the row, then the carry-propagate
  add), so row 0, the first row the next token reaches, is the first to be free. ``i.ready``
  is high except (a) for a beat marked ``last`` while a token is in flight or row 0 of the
  draining tile has not left (it leaves in this cycle at the earliest), and (b) in a cycle the
  array stalls (no step) because the token in flight would overwrite a row that has not left
  (back-pressure on ``o``). Timing: folds of one length K end ``fold_interval(K) = max(K, rows
  + cols - 1)`` cycles apart (the next last beat enters once row 0 leaves, ``rows + cols -
  1`` cycles after the current last beat), a run of folds takes ``sum over all but the last
  of fold_interval + fold_cycles(last K)`` cycles.

Weight stationary (``dataflow="ws"``) holds a ``rows`` x ``cols`` weight tile and streams any
number M of activation rows through it:

* ``wl`` stream, ``rows`` beats: beat k carries ``w[c] = W[k, c]`` (k = 0 first).
* ``i`` stream, one beat per activation row m: ``a[k] = A[m, k]``, ``last`` on m = M-1.
  A cycle without a valid beat enters a bubble row that produces no output.
* ``o`` stream, one beat per activation row in order: ``c[j] = C[m, j]``, ``last`` on m = M-1.
  Back-pressure stalls the whole array (a global clock enable).
* Timing: ``fold_cycles(M) = rows + M + rows + cols - 1`` from the first ``wl`` beat to the
  last output beat, inclusive (preload ``rows``, steady state M, a row leaves the array
  ``rows + cols - 1`` cycles after it enters).
* With ``weight_double_buffer`` every PE also has a shadow weight register: ``wl`` shifts
  into the shadow registers and ``wl.ready`` is high whenever they are not full and no switch
  token is in flight, also while a fold streams and drains. A fold's first ``i`` beat waits
  for a full shadow tile (``i.ready`` low until then) and empties it; a one-bit switch token
  enters with that beat and moves with it, one anti-diagonal r + c per step, so each PE uses
  its shadow weight, and copies it into its active register, in the step the fold's first row
  reaches it. The next fold's ``i`` beats may directly follow the current fold's last beat.
  Timing: fold starts are ``fold_interval(M) = max(M, 2*rows + cols - 1)`` cycles apart (the
  token crosses ``rows + cols - 2`` steps, the chain reloads from the cycle after, ``rows``
  beats), a run of folds takes ``sum over all but the last of fold_interval + fold_cycles(last
  M)`` cycles from the first ``wl`` beat to the last output beat.

``busy`` is high while a fold is in progress (from its first input beat to its last output;
with ``weight_double_buffer`` also while a loaded weight tile waits in the shadow registers;
with ``output_double_buffer`` while any fold streams, hands over or drains).

Arithmetic options (results and timing are the same; area and logic depth differ):
``booth`` builds each product from radix-4 Booth partial products; ``csa_accumulate`` (the TPE
paper's OPT1) keeps every accumulator, and in WS every partial sum travelling down a column,
as a carry-save pair of words: the partial products and the pair enter one carry-save tree and
no carry propagates inside the PE; one carry-propagate adder per column at the array's edge
turns the pair into the result. Without either option a PE is Yosys's ``acc + a * w``.

``cpa_reg`` (with ``csa_accumulate``; timing changes, results and protocol do not): the
array drives an inner output stream, whose beats reach ``o`` through one register slice
(:func:`hw.streams.output_register`): the edge carry-propagate adders end in a register
instead of on the port. Every output beat leaves a cycle later, the array is free as early as
without it (the slice holds one beat, takes the next in the cycle it passes one on); ``busy``
stays high while it holds a beat.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Shape, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.arith import csa_reduce, neg_correction, product_words, recode
from hw.hier import Block, place
from hw.spec import SystolicSpec
from hw.streams import (
    RowDrain,
    operand_shapes,
    output_register,
    signature_members,
    tile_lane_order,
    tile_layouts,
    ws_layouts,
)

__all__ = ["COMPONENT", "SystolicArray", "lane_order", "stream_layouts"]


def stream_layouts(spec: SystolicSpec) -> dict[str, data.Layout]:
    """Payload layout of every stream of the engine, by stream name."""
    if spec.dataflow == "os":
        return tile_layouts(spec, a_lanes=spec.rows, w_lanes=spec.cols, c_lanes=spec.cols)
    return ws_layouts(spec, w_lanes=spec.cols, a_lanes=spec.rows, c_lanes=spec.cols)


class SystolicArray(wiring.Component):
    """A ``spec.rows`` x ``spec.cols`` systolic array; see the module docstring for protocol."""

    def __init__(self, spec: SystolicSpec):
        if not isinstance(spec, SystolicSpec):
            raise TypeError(f"spec must be a SystolicSpec, not {spec!r}")
        self.spec = spec
        super().__init__(signature_members(stream_layouts(spec)))

    def elaborate(self, platform):
        # The array drives ``_o`` and ``_busy``: the ports, or with cpa_reg an inner stream
        # whose beats reach ``o`` through one register (output_register).
        self._o, self._busy = self.o, self.busy
        if self.spec.cpa_reg:
            self._o = stream.Signature(self.o.payload.shape()).create(path=("core_o",))
            self._busy = Signal(name="core_busy")
        m = self._elaborate_os() if self.spec.dataflow == "os" else self._elaborate_ws()
        if self.spec.cpa_reg:
            held = output_register(m, self._o, self.o)
            m.d.comb += self.busy.eq(self._busy | held)
        return m

    # -- shared pieces --------------------------------------------------------------------
    @staticmethod
    def _skew(m: Module, lanes, shape: Shape, step, prefix: str):
        """Delay lane n by n steps (a triangle of registers); returns the delayed lanes."""
        out = []
        for n, lane in enumerate(lanes):
            cur = lane
            for d in range(n):
                reg = Signal(shape, name=f"{prefix}{n}_d{d}")
                with m.If(step):
                    m.d.sync += reg.eq(cur)
                cur = reg
            out.append(cur)
        return out

    def _mac(self, m: Module, state: list, a, w, name: str) -> list:
        """The next value of an accumulator ``state`` (one word, or a carry-save pair) after
        adding ``a * w``; all words ``acc_bits`` wide, wrapping."""
        spec = self.spec
        P = spec.acc_bits
        if not (spec.booth or spec.csa_accumulate):
            return [state[0] + a * w]
        # Digits of a (Booth, or its bits), narrow rows |d|*w XOR sign, what the rows owe as
        # one correction word and one constant word (hw.arith.product_words).
        digits = recode(m, a, spec.a_bits, spec.signed, spec.booth, f"{name}_a")
        pps = product_words(m, [(digits, w)], spec.w_bits, spec.signed, P, f"{name}_pp",
                            neg_correction([digits], P))
        if spec.csa_accumulate:
            return list(csa_reduce(m, [*pps, *state], P, name))
        s, c = csa_reduce(m, pps, P, name)
        return [state[0] + (s + c)[:P]]

    def _state(self, name: str) -> list[Signal]:
        """An accumulator register: one word, or a sum and a carry word with csa_accumulate."""
        _, _, acc_shape = operand_shapes(self.spec)
        if self.spec.csa_accumulate:
            return [Signal(self.spec.acc_bits, name=f"{name}_s"),
                    Signal(self.spec.acc_bits, name=f"{name}_c")]
        return [Signal(acc_shape, name=name)]

    def _os_pe(self) -> Block:
        """The output-stationary PE (placed once per array position, :mod:`hw.hier`).

        Ports: operands ``a`` (from the left) and ``w`` (from above), forwarded through
        registers to ``a_out`` (right) and ``w_out`` (down) in a cycle with ``step``; the
        accumulator adds ``a * w`` in that cycle. Without ``output_double_buffer`` the
        accumulator words are the outputs ``acc<k>`` and take ``below<k>`` (the PE below's,
        zero under the last row) in a cycle with ``shift`` (the drain; it wins over a step,
        which never coincides with it). With it, a step with ``token`` (the fold's last beat
        reaching this PE) moves the finished sum into the output words ``out<k>`` and restarts
        the accumulator from zero."""
        spec = self.spec
        a_shape, w_shape, _ = operand_shapes(spec)
        state = self._state("acc")
        members: dict = {"a": In(a_shape), "w": In(w_shape), "step": In(1),
                         "a_out": Out(a_shape), "w_out": Out(w_shape)}
        if spec.output_double_buffer:
            members["token"] = In(1)
            members.update({f"out{k}": Out(reg.shape()) for k, reg in enumerate(state)})
        else:
            members["shift"] = In(1)
            members.update({f"below{k}": In(reg.shape()) for k, reg in enumerate(state)})
            members.update({f"acc{k}": Out(reg.shape()) for k, reg in enumerate(state)})

        def build(m: Module, pe: Block) -> None:
            with m.If(pe.step):
                m.d.sync += [pe.a_out.eq(pe.a), pe.w_out.eq(pe.w)]
            if spec.output_double_buffer:
                acc = self._state("acc")
                out = [getattr(pe, f"out{k}") for k in range(len(acc))]
            else:
                acc = [getattr(pe, f"acc{k}") for k in range(len(state))]
            nxt = self._mac(m, acc, pe.a, pe.w, "mac")
            with m.If(pe.step):
                if spec.output_double_buffer:
                    with m.If(pe.token):
                        m.d.sync += [reg.eq(v) for reg, v in zip(out, nxt, strict=True)]
                        m.d.sync += [reg.eq(0) for reg in acc]
                    with m.Else():
                        m.d.sync += [reg.eq(v) for reg, v in zip(acc, nxt, strict=True)]
                else:
                    m.d.sync += [reg.eq(v) for reg, v in zip(acc, nxt, strict=True)]
            if not spec.output_double_buffer:
                with m.If(pe.shift):
                    m.d.sync += [reg.eq(getattr(pe, f"below{k}")) for k, reg in enumerate(acc)]

        return Block("pe", spec, members, build)

    def _ws_pe(self) -> Block:
        """The weight-stationary PE (placed once per array position, :mod:`hw.hier`).

        Ports: ``w_in`` (the weight of the PE below, or the ``wl`` beat under the last row)
        shifts into the weight register ``w_chain`` in a cycle with ``load``; the activation
        ``a`` is forwarded right through a register to ``a_out`` in a cycle with ``step``, in
        which the partial sum ``psum<k>`` takes ``above<k>`` (the PE above's, zero on the top
        row) plus ``a`` times the weight. With ``weight_double_buffer`` ``w_chain`` is the
        shadow register and an active one holds the weight in use: in a cycle with ``token``
        (the fold's first row reaching this PE) the PE uses the shadow weight and copies it
        into the active register."""
        spec = self.spec
        a_shape, w_shape, _ = operand_shapes(spec)
        state = self._state("psum")
        members: dict = {"a": In(a_shape), "step": In(1), "w_in": In(w_shape), "load": In(1),
                         "a_out": Out(a_shape), "w_chain": Out(w_shape)}
        members.update({f"above{k}": In(reg.shape()) for k, reg in enumerate(state)})
        members.update({f"psum{k}": Out(reg.shape()) for k, reg in enumerate(state)})
        if spec.weight_double_buffer:
            members["token"] = In(1)

        def build(m: Module, pe: Block) -> None:
            with m.If(pe.load):
                m.d.sync += pe.w_chain.eq(pe.w_in)
            w_op = pe.w_chain
            if spec.weight_double_buffer:
                wt = Signal(w_shape, name="w_active")
                w_op = Signal(w_shape, name="w_op")
                m.d.comb += w_op.eq(Mux(pe.token, pe.w_chain, wt))
                with m.If(pe.token):
                    m.d.sync += wt.eq(pe.w_chain)
            with m.If(pe.step):
                m.d.sync += pe.a_out.eq(pe.a)
            psum = [getattr(pe, f"psum{k}") for k in range(len(state))]
            above = [getattr(pe, f"above{k}") for k in range(len(state))]
            nxt = self._mac(m, above, pe.a, w_op, "mac")
            with m.If(pe.step):
                m.d.sync += [reg.eq(v) for reg, v in zip(psum, nxt, strict=True)]

        return Block("pe", spec, members, build)

    # -- output stationary ----------------------------------------------------------------
    def _elaborate_os(self) -> Module:
        spec = self.spec
        R, C = spec.rows, spec.cols
        a_shape, w_shape, _ = operand_shapes(spec)
        m = Module()

        step = Signal()  # MAC wavefront advances
        drain = RowDrain(m, self._o, R)
        shift = drain.shift  # result rows move one place towards the output
        feed = Signal()  # the current input beat is taken

        a_in = [Signal(a_shape, name=f"a_in{r}") for r in range(R)]
        w_in = [Signal(w_shape, name=f"w_in{c}") for c in range(C)]
        with m.If(feed):
            m.d.comb += [a_in[r].eq(self.i.payload.a[r]) for r in range(R)]
            m.d.comb += [w_in[c].eq(self.i.payload.w[c]) for c in range(C)]

        a_edge = self._skew(m, a_in, a_shape, step, "a_skew")
        w_edge = self._skew(m, w_in, w_shape, step, "w_skew")

        # The PEs: one block (hw.hier), placed rows x cols times. A PE forwards its operands
        # right and down through registers and accumulates; without output_double_buffer its
        # accumulator also shifts up a row with ``shift`` (the drain), from the PE below.
        double = spec.output_double_buffer
        pe = self._os_pe()
        words = len(self._state("acc"))
        token: list[Signal] = []
        if double:
            token = [Signal(name="hand_in")]
            token += [Signal(name=f"hand_d{d}") for d in range(1, R + C - 1)]
        # Operands flow right and down (placed row by row, each PE after the ones it reads),
        # accumulators up: the PE below is placed later, so its words reach the one above
        # through named signals.
        shape = self._state("acc")[0].shape()
        below_sig = [[[Signal(shape, name=f"acc_{r}_{c}_{k}") for k in range(words)]
                      for c in range(C)] if r else [] for r in range(R)]
        outs: list[list[dict]] = [[{} for _ in range(C)] for _ in range(R)]
        for r in range(R):
            for c in range(C):
                ports: dict = {"step": step}
                if double:
                    ports["token"] = token[r + c]
                else:
                    ports["shift"] = shift
                ports["a"] = a_edge[r] if c == 0 else outs[r][c - 1]["a_out"]
                ports["w"] = w_edge[c] if r == 0 else outs[r - 1][c]["w_out"]
                if not double:
                    for k in range(words):
                        ports[f"below{k}"] = below_sig[r + 1][c][k] if r + 1 < R else 0
                unused = [n for n, edge in (("a_out", c + 1 == C), ("w_out", r + 1 == R))
                          if edge]
                outs[r][c] = place(m, f"pe_{r}_{c}", pe, unused=unused, **ports)
                if not double and r:
                    m.d.comb += [below_sig[r][c][k].eq(outs[r][c][f"acc{k}"])
                                 for k in range(words)]
        if double:
            out = [[[outs[r][c][f"out{k}"] for k in range(words)] for c in range(C)]
                   for r in range(R)]
            self._os_output_registers(m, out, token, step, feed, drain)
            return m
        acc = [[[outs[r][c][f"acc{k}"] for k in range(words)] for c in range(C)]
               for r in range(R)]
        flush_len = R + C - 2  # a 1x1 array has no flush: no FLUSH state, no counter
        counter = Signal(range(flush_len + 1)) if flush_len else None

        # The one carry-propagate add per output (a no-op without carry-save state).
        for c in range(C):
            m.d.comb += self._o.payload.c[c].eq(sum(acc[0][c][1:], acc[0][c][0]))

        with m.FSM(name="os_fsm"):
            with m.State("STREAM"):
                m.d.comb += [self.i.ready.eq(1), step.eq(1), feed.eq(self.i.valid)]
                with m.If(self.i.valid):
                    m.d.sync += self._busy.eq(1)
                    with m.If(self.i.payload.last):
                        if counter is not None:
                            m.d.sync += counter.eq(flush_len - 1)
                            m.next = "FLUSH"
                        else:
                            m.d.comb += drain.start.eq(1)
                            m.next = "DRAIN"
            if counter is not None:
                with m.State("FLUSH"):
                    m.d.comb += step.eq(1)
                    m.d.sync += counter.eq(counter - 1)
                    with m.If(counter == 0):
                        m.d.comb += drain.start.eq(1)
                        m.next = "DRAIN"
            with m.State("DRAIN"):
                with m.If(drain.done):
                    m.d.sync += self._busy.eq(0)
                    m.next = "STREAM"
        return m

    def _os_output_registers(self, m: Module, out, token: list[Signal], step: Signal,
                             feed: Signal, drain: RowDrain) -> None:
        """Output stationary with ``output_double_buffer``: per PE an output register beside
        the accumulator (``out[r][c]``, the PEs' ``out`` words), read out row by row in place
        while the next fold streams.

        A token (``token[d]`` on anti-diagonal d) enters with a fold's last beat and moves one
        anti-diagonal r + c per step, with that beat; at PE (r, c) it moves the finished sum
        (this step's MAC included) into the output register and restarts the accumulator from
        zero (:meth:`_os_pe`). The drain starts as the token leaves the last PE, as without
        the option (``fold_cycles`` unchanged). The array steps unless the token would
        overwrite a row of the previous tile that has not left yet (back-pressure on ``o``);
        a last beat is taken only when no other token is in flight and row 0 is free, so one
        token at most is in flight, and every row it reaches later has been drained too unless
        ``o`` stalls."""
        spec = self.spec
        R, C = spec.rows, spec.cols
        last = R + C - 2  # the anti-diagonal of the last PE
        m.d.comb += token[0].eq(feed & self.i.payload.last)
        with m.If(step):
            m.d.sync += [token[d].eq(token[d - 1]) for d in range(1, last + 1)]

        # Rows of the draining tile that have left by this clock edge (all when none drains):
        # row r may be overwritten at this edge when r < freed.
        freed = Signal(range(R + 1))
        m.d.comb += freed.eq(Mux(drain.active, drain.row + drain.shift, R))
        # The token on diagonal d writes rows up to min(d, rows-1); the drained rows are a
        # prefix, so checking the highest one suffices.
        waits = [token[d] & (freed <= min(d, R - 1)) for d in range(1, last + 1)]
        in_flight = Cat(Const(0, 1), *token[1:]).any()
        m.d.comb += step.eq(~Cat(Const(0, 1), *waits).any())
        m.d.comb += self.i.ready.eq(step & ~(self.i.payload.last & (in_flight | (freed == 0))))
        m.d.comb += feed.eq(self.i.valid & self.i.ready)
        m.d.comb += drain.start.eq(token[last] & step)

        # The row presented, then the one carry-propagate add per output.
        for c in range(C):
            words = [Signal.like(reg, name=f"out_row_{c}_{n}") for n, reg in enumerate(out[0][c])]
            with m.Switch(drain.row):
                for r in range(R):
                    with m.Case(r):
                        m.d.comb += [w.eq(reg) for w, reg in zip(words, out[r][c], strict=True)]
            m.d.comb += self._o.payload.c[c].eq(sum(words[1:], words[0]))

        first = Signal(init=1)  # the next input beat starts a fold
        with m.If(feed):
            m.d.sync += first.eq(self.i.payload.last)
        m.d.comb += self._busy.eq(~first | in_flight | drain.active)

    # -- weight stationary ----------------------------------------------------------------
    def _elaborate_ws(self) -> Module:
        spec = self.spec
        R, C = spec.rows, spec.cols
        a_shape, w_shape, acc_shape = operand_shapes(spec)
        m = Module()

        depth = R + C - 1  # steps from an activation row entering to its output row
        out_valid = Signal()
        step = Signal()  # global enable of the whole pipeline
        feed = Signal()  # the current input beat is taken
        m.d.comb += self._o.valid.eq(out_valid)

        load = Signal()
        a_in = [Signal(a_shape, name=f"a_in{r}") for r in range(R)]
        with m.If(feed):
            m.d.comb += [a_in[r].eq(self.i.payload.a[r]) for r in range(R)]
        a_edge = self._skew(m, a_in, a_shape, step, "a_skew")

        token: list[Signal] = []
        if spec.weight_double_buffer:
            # The switch token of a fold's first activation row reaches PE (r, c) with that
            # row, r + c steps after it entered (skew r, then c steps right): all PEs of one
            # anti-diagonal at once, so one token per diagonal. There the PE uses its shadow
            # weight and copies it into the active register.
            first = Signal(init=1)  # the next input beat starts a fold
            token = [Signal(name="switch_in")]
            token += [Signal(name=f"switch_d{d}") for d in range(1, R + C - 1)]
            m.d.comb += token[0].eq(feed & first)
            with m.If(step):
                m.d.sync += [token[d].eq(token[d - 1]) for d in range(1, R + C - 1)]

        # The PEs: one block (hw.hier), placed rows x cols times, top row first (partial sums
        # flow down). Stationary weights: a chain fed at row rows-1 that moves up one row per
        # load beat, from each PE's weight register to the one above through named signals
        # (the PE below is placed later).
        pe = self._ws_pe()
        chain = [[Signal(w_shape, name=f"w_chain_{r}_{c}") for c in range(C)] if r else []
                 for r in range(R)]
        outs: list[list[dict]] = [[{} for _ in range(C)] for _ in range(R)]
        words = len(self._state("psum"))
        for r in range(R):
            for c in range(C):
                ports: dict = {"step": step, "load": load}
                ports["a"] = a_edge[r] if c == 0 else outs[r][c - 1]["a_out"]
                ports["w_in"] = self.wl.payload.w[c] if r == R - 1 else chain[r + 1][c]
                for k in range(words):
                    ports[f"above{k}"] = outs[r - 1][c][f"psum{k}"] if r else 0
                if spec.weight_double_buffer:
                    ports["token"] = token[r + c]
                unused = [n for n, edge in (("a_out", c + 1 == C), ("w_chain", r == 0)) if edge]
                outs[r][c] = place(m, f"pe_{r}_{c}", pe, unused=unused, **ports)
                if r:
                    m.d.comb += chain[r][c].eq(outs[r][c]["w_chain"])
        psum = [[[outs[r][c][f"psum{k}"] for k in range(words)] for c in range(C)]
                for r in range(R)]

        # De-skew: column c leaves the array c steps after column 0; delay it cols-1-c more.
        # The carry-save pair of the bottom row is resolved (one CPA per column) first.
        for c in range(C):
            cur = Signal(acc_shape, name=f"col{c}_out")
            m.d.comb += cur.eq(sum(psum[R - 1][c][1:], psum[R - 1][c][0]))
            for d in range(C - 1 - c):
                reg = Signal(acc_shape, name=f"deskew{c}_d{d}")
                with m.If(step):
                    m.d.sync += reg.eq(cur)
                cur = reg
            m.d.comb += self._o.payload.c[c].eq(cur)

        # Valid/last flags travel beside the data through the same number of steps.
        flags = [Signal(2, name=f"flag{d}") for d in range(depth)]
        beat_flag = Signal(2)
        m.d.comb += beat_flag.eq(Mux(feed, self.i.payload.last << 1 | 1, 0))
        with m.If(step):
            m.d.sync += flags[0].eq(beat_flag)
            m.d.sync += [flags[d].eq(flags[d - 1]) for d in range(1, depth)]
        m.d.comb += [out_valid.eq(flags[-1][0]), self._o.payload.last.eq(flags[-1][1])]

        stalled = out_valid & ~self._o.ready
        loaded = Signal(range(R + 1))
        if spec.weight_double_buffer:
            # No FSM: the pipeline steps unless stalled; the shadow chain loads whenever it is
            # not full and no switch token is in flight (a PE still to switch reads its shadow
            # register); a fold's first beat waits for a full chain and empties it.
            full = Signal()
            in_flight = Signal()
            m.d.comb += [full.eq(loaded == R), in_flight.eq(Cat(Const(0, 1), *token[1:]).any())]
            m.d.comb += [self.wl.ready.eq(~full & ~in_flight),
                         load.eq(self.wl.valid & self.wl.ready)]
            with m.If(load):
                m.d.sync += loaded.eq(loaded + 1)
            m.d.comb += [step.eq(~stalled), self.i.ready.eq(~stalled & (~first | full))]
            m.d.comb += feed.eq(self.i.valid & self.i.ready)
            with m.If(feed):
                m.d.sync += first.eq(self.i.payload.last)
                with m.If(first):
                    m.d.sync += loaded.eq(0)
            pending = Cat(Const(0, 1), *(f[0] for f in flags)).any()
            m.d.comb += self._busy.eq((loaded != 0) | ~first | pending | in_flight)
            return m
        with m.FSM(name="ws_fsm"):
            with m.State("LOAD"):
                m.d.comb += [self.wl.ready.eq(1), load.eq(self.wl.valid)]
                with m.If(self.wl.valid):
                    m.d.sync += self._busy.eq(1)
                    m.d.sync += loaded.eq(loaded + 1)
                    with m.If(loaded == R - 1):
                        m.d.sync += loaded.eq(0)
                        m.next = "STREAM"
            with m.State("STREAM"):
                m.d.comb += [step.eq(~stalled), self.i.ready.eq(~stalled)]
                m.d.comb += feed.eq(self.i.valid & ~stalled)
                with m.If(feed & self.i.payload.last):
                    m.next = "FLUSH"
            with m.State("FLUSH"):
                m.d.comb += step.eq(~stalled)
                with m.If(out_valid & self._o.ready & self._o.payload.last):
                    m.d.sync += self._busy.eq(0)
                    m.next = "LOAD"
        return m


def lane_order(spec: SystolicSpec) -> dict[str, dict[str, str]]:
    """What each payload lane holds, by stream and field (for the manifest)."""
    if spec.dataflow == "os":
        return tile_lane_order()
    return {"wl": {"w": "lane c: W[k0 + q, n0 + c] in preload beat q (q = 0 first)"},
            "i": {"a": "lane q: A[m, k0 + q] in the beat of activation row m"},
            "o": {"c": "lane j: C[m, n0 + j] (the partial sum over this weight tile) in the "
                       "beat of activation row m"}}


#: The component of this engine kind (see hw.generators).
COMPONENT = SystolicArray
