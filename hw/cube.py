"""3D-Cube generator (Ascend DaVinci cube style): m x n x k multipliers, K-reduction trees.

One :class:`Cube` component is elaborated from one :class:`hw.spec.CubeSpec`. All streams
follow ``amaranth.lib.stream`` rules (a beat transfers in a cycle where ``valid`` and
``ready`` are both high; ``valid`` never waits for ``ready``). Operand lanes are
``signed(bits)`` or ``unsigned(bits)`` per ``spec.signed``; accumulators are ``acc_bits`` wide
and wrap modulo ``2**acc_bits`` (two's complement when signed).

One fold computes an ``m`` x ``n`` tile of ``C = A @ W`` over a reduction of any length K:

* ``i`` stream, one beat per chunk of ``k`` reduction indices, ``ceil(K/k)`` beats: beat b
  carries ``a[r*k + q] = A[r, b*k + q]`` (an ``m`` x ``k`` tile of A, row-major) and
  ``w[q*n + c] = W[b*k + q, c]`` (a ``k`` x ``n`` tile of W, row-major); ``last`` high on the
  final beat. Lanes beyond K in a partial last chunk must carry a zero in ``a`` or in ``w``
  (the product is then zero). The ``m*n*k`` products of a beat are reduced over q by
  ``m*n`` adder trees and added to the ``m*n`` accumulators in the cycle the beat is taken.
  The cube never stalls its input while streaming: a cycle without a valid beat changes
  nothing (a bubble) and delays the fold by one cycle.
* ``o`` stream, ``m`` beats from the cycle after the last input beat: beat r carries
  ``c[j] = C[r, j]``; ``last`` marks beat ``m - 1``. The accumulator rows shift towards the
  output one row per transfer (zeros enter at the far end, which clears them for the next
  fold); back-pressure (``ready`` low) holds the drain. ``i.ready`` is low while draining.
* Timing: with every beat valid and ready, the last output transfers
  ``fold_cycles(K) - 1 = ceil(K/k) + m - 1`` cycles after the first input beat
  (stream ``ceil(K/k)``, drain ``m``); ``i.ready`` is high again from the cycle after the
  last output beat, so folds run back to back.

With ``output_double_buffer`` the cube has an output register bank beside the accumulators
and the drain overlaps the next fold's stream. The last beat of a fold writes every finished
sum (that beat's products included) into the bank and restarts the accumulators from zero;
the bank drains as above (rows shifting towards the output) from the next cycle while the next
fold's beats are taken at once. ``i.ready`` is low only for a beat marked ``last`` while the
bank still holds rows that do not leave in this cycle (the handover may coincide with the last
row leaving). Timing: folds of one length K end ``fold_interval(K) = max(ceil(K/k), m)``
cycles apart, a run of folds takes ``sum over all but the last of fold_interval +
fold_cycles(last K)`` cycles; ``busy`` is high while any fold streams or drains.

Datapath options (protocol and timing are the same for every combination):

* ``booth``: every product is the sum of its radix-4 Booth partial products. The digits of
  each activation (in {-2..+2}, ``ceil(a_bits/2)`` of them, one more when unsigned) are
  recoded once and shared by the ``n`` columns; a partial product is ``|d| * w`` (an AND-OR
  select of ``w`` or ``2w``) XOR the digit's sign, and the sign bits those rows owe are
  summed once per row of A and beat, shared by the ``n`` columns (one correction word per
  output instead of a +1 row per partial product). Without it, products are Amaranth
  ``a * w`` and the trees are ``+`` (Yosys's default multiplier and adders).
* ``csa_accumulate`` (TPE OPT1): each accumulator is a pair of ``acc_bits`` words, sum and
  carry. Per beat, the partial products of the k products (Booth digits with ``booth``,
  else one selected weight per activation bit, the sign bit's negative), the row's
  correction word, one constant word and the two accumulator words enter one tree of 3:2
  carry-save adders whose two outputs are registered: no carry-propagate add in the loop.
  Partial-product rows are not sign-extended across the word (the sign bit is inverted and
  the constant pays the difference), so each row stays as narrow as the product. The row
  leaving on ``o`` is ``sum + carry``: one carry-propagate add per output, at the drain.

Pipelining (``mult_reg``, ``tree_stage_levels``; results and protocol unchanged, a beat
still taken every cycle): the products (with ``csa_accumulate`` the partial-product words)
are registered with ``mult_reg``, and each K-reduction tree after every ``tree_stage_levels``
adder levels (with ``csa_accumulate`` the 3:2 tree from the product words to a sum and a
carry word, built to the spec's level count; these two then meet the accumulator's words in
a 4:2 step of the loop). A beat reaches the accumulators ``spec.accumulate_latency_cycles``
after it is taken, its valid and last flags travelling beside it; the fold's last beat leaving the
pipeline starts the drain (without ``output_double_buffer`` the input is closed from the last
beat until the drain ends) or hands the tile to the output bank (with it; the pipeline stalls
while its last beat waits for the bank, and so does the input).

``cpa_reg`` (with ``csa_accumulate``): the cube drives an inner output stream whose beats
reach ``o`` through one register slice (:func:`hw.streams.output_register`), so that the
carry-propagate adds of the draining row end in a register instead of on the port; every
output beat leaves a cycle later, the cube is free as early as without it.

``busy`` is high while a fold is in progress (from its first input beat to its last output).

Hierarchy (:mod:`hw.hier`): each product is a multiplier block ``mul``
(:func:`hw.products.multiplier`: the product, or with ``csa_accumulate`` its carry-save
words), placed as ``mul_<r>_<c>_<q>``, and each output's K-reduction tree with its pipeline
registers a block ``tree`` placed as ``tree_<r>_<c>`` (the products in, the accumulator's
next value out); in the Verilog each is one module, instantiated ``m*n*k`` and ``m*n``
times. The recoded digits, the rows' correction words, the accumulators, the output bank and
the control stay in the top.
"""

from __future__ import annotations

from amaranth import Const, Module, Signal, Value
from amaranth.lib import data, stream, wiring

from hw.arith import Pipe, add_tree, csa_reduce, neg_correction, recode
from hw.hier import Block, block_of, place
from hw.products import Template, digit_template, multiplier, owed_constant, pack_digits
from hw.spec.cube import CubeSpec
from hw.streams import (
    RowDrain,
    delay_flags,
    operand_shapes,
    output_register,
    shift_rows,
    signature_members,
    tile_lane_order,
    tile_layouts,
)

__all__ = ["COMPONENT", "Cube", "lane_order", "stream_layouts"]


# -- the cube -------------------------------------------------------------------------------

def stream_layouts(spec: CubeSpec) -> dict[str, data.Layout]:
    """Payload layout of every stream of the cube, by stream name."""
    return tile_layouts(spec, a_lanes=spec.m * spec.k, w_lanes=spec.k * spec.n, c_lanes=spec.n)


class Cube(wiring.Component):
    """A ``spec.m`` x ``spec.n`` x ``spec.k`` cube; see the module docstring for protocol."""

    def __init__(self, spec: CubeSpec):
        if not isinstance(spec, CubeSpec):
            raise TypeError(f"spec must be a CubeSpec, not {spec!r}")
        self.spec = spec
        super().__init__(signature_members(stream_layouts(spec)))

    def elaborate(self, platform):
        spec = self.spec
        M, N, K = spec.m, spec.n, spec.k
        # The cube drives ``_o`` and ``_busy``: the ports, or with cpa_reg an inner stream
        # whose beats reach ``o`` through one register (output_register).
        self._o, self._busy = self.o, self.busy
        if spec.cpa_reg:
            self._o = stream.Signature(self.o.payload.shape()).create(path=("core_o",))
            self._busy = Signal(name="core_busy")
        width = spec.acc_bits
        _, _, acc_shape = operand_shapes(spec)
        m = Module()

        drain = RowDrain(m, self._o, M)
        shift = drain.shift  # result rows move one place towards the output
        if spec.accumulate_latency_cycles:
            # take: a beat leaves the pipeline into the accumulators; hand: the last one
            take, hand = self._pipelined_input(m, drain)
        elif spec.output_double_buffer:
            take = self._follow_with_bank(m, drain)
            hand = Signal()  # the last beat: the finished tile moves into the output bank
            m.d.comb += hand.eq(take & self.i.payload.last)
        else:
            take = drain.follow(self.i, self._busy)  # the current input beat is taken
        a = [[self.i.payload.a[r * K + q] for q in range(K)] for r in range(M)]
        w = [[self.i.payload.w[q * N + c] for c in range(N)] for q in range(K)]

        digits = None
        if spec.booth or spec.csa_accumulate:
            # Digits of each activation recoded once, shared by the n columns; the owed sign
            # bits of a row's k activations summed once, shared by the n columns too.
            digits = [[recode(m, a[r][q], spec.a_bits, spec.signed, spec.booth, f"a{r}_{q}")
                       for q in range(K)] for r in range(M)]
            owed = []
            for r in range(M):
                corr = neg_correction(digits[r], width)
                if corr is not None:
                    sig = Signal(width, name=f"neg_corr{r}")
                    m.d.comb += sig.eq(corr)
                    corr = sig
                owed.append(corr)

        # One multiplier per product (block ``mul``, placed m x n x k times) and one
        # reduction tree per output (block ``tree``, m x n times: the k products, the row's
        # correction word and the accumulator's words in, the accumulator's next value out).
        template = digit_template(digits[0][0]) if digits is not None else None
        mul = multiplier(spec, template, words=spec.csa_accumulate)
        tree = self._tree(mul, template, has_corr=digits is not None and owed[0] is not None)
        acc: list[list[list[Signal]]] = []
        nxt: list[list[list[Value]]] = []
        for r in range(M):
            acc.append([])
            nxt.append([])
            for c in range(N):
                if spec.csa_accumulate:
                    regs = [Signal(width, name=f"sum_{r}_{c}"),
                            Signal(width, name=f"carry_{r}_{c}")]
                    ports = {"sum": regs[0], "carry": regs[1]}
                else:
                    regs = [Signal(acc_shape, name=f"acc_{r}_{c}")]
                    ports = {"acc": regs[0]}
                for q in range(K):
                    ins = ({"d": pack_digits(digits[r][q])} if digits is not None
                           else {"a": a[r][q]})
                    outs = place(m, f"mul_{r}_{c}_{q}", mul, w=w[q][c], **ins)
                    ports.update({f"{n}_{q}" if spec.csa_accumulate else f"{n}{q}": v
                                  for n, v in outs.items()})
                if "corr" in tree.members:
                    ports["corr"] = owed[r]
                if "en" in tree.members:
                    ports["en"] = self._advance
                outs = place(m, f"tree_{r}_{c}", tree, **ports)
                after = ([outs["sum_next"], outs["carry_next"]] if spec.csa_accumulate
                         else [outs["next"]])
                acc[r].append(regs)
                nxt[r].append(after)
                with m.If(take):
                    m.d.sync += [reg.eq(v) for reg, v in zip(regs, after, strict=True)]

        rows = acc  # the registers that drain
        if spec.output_double_buffer:
            # The last beat's sums go to the output bank, the accumulators restart from zero.
            rows = [[[Signal.like(reg, name=f"out_{reg.name}") for reg in regs] for regs in row]
                    for row in acc]
            shift_rows(m, rows, shift)
            with m.If(hand):  # after the shift: a handover as the last row leaves wins
                for r in range(M):
                    for c in range(N):
                        m.d.sync += [o.eq(v) for o, v in zip(rows[r][c], nxt[r][c], strict=True)]
                        m.d.sync += [reg.eq(0) for reg in acc[r][c]]
        else:
            shift_rows(m, acc, shift)
        # The one carry-propagate add per output (with carry-save words), as the row leaves.
        m.d.comb += [self._o.payload.c[c].eq(sum(rows[0][c][1:], rows[0][c][0]))
                     for c in range(N)]
        if spec.cpa_reg:
            held = output_register(m, self._o, self.o)
            m.d.comb += self.busy.eq(self._busy | held)
        return m

    def _tree(self, mul: Block, template: Template | None, *, has_corr: bool) -> Block:
        """The reduction tree of one output (block ``tree``, :mod:`hw.hier`): inputs the
        outputs of its k multipliers (``p<q>``, or with ``csa_accumulate`` their words
        ``pp<i>_<q>``), the row's correction word ``corr`` (what the partial-product rows owe,
        where digits can be negative), the accumulator (``acc``, or ``sum`` and ``carry``) and
        with pipelining ``en`` (the pipeline steps); outputs the accumulator's value after
        the beat (``next``, or ``sum_next`` and ``carry_next``). With pipelining its registers
        are the products' (``mult_reg``) and the tree's, after every ``tree_stage_levels``
        adder levels."""
        spec = self.spec
        K, width = spec.k, spec.acc_bits
        _, _, acc_shape = operand_shapes(spec)
        mul_outs = {n: mem.shape for n, mem in mul.members.items() if mem.flow == wiring.Out}
        inputs: dict = {}
        for q in range(K):
            inputs.update({f"{n}_{q}" if spec.csa_accumulate else f"{n}{q}": shape
                           for n, shape in mul_outs.items()})
        if has_corr:
            inputs["corr"] = width
        if spec.csa_accumulate:
            inputs.update(sum=width, carry=width)
            const = owed_constant(spec, template) * K % (1 << width) if template else 0
        else:
            inputs["acc"] = acc_shape
        piped = bool(spec.accumulate_latency_cycles)
        if piped:
            inputs["en"] = 1

        def outputs(m: Module, p) -> dict[str, Value]:
            pipe = Pipe(m, spec.tree_stage_levels, p.en, "pipe") if piped else None
            if not spec.csa_accumulate:
                terms = [getattr(p, f"p{q}") for q in range(K)]
                terms += [p.corr] if has_corr else []
                if pipe is not None and spec.mult_reg:
                    terms = pipe.reg(terms, "prod")
                dot = Signal(width, name="dot")
                m.d.comb += dot.eq(add_tree(terms, width, pipe=pipe, name="tree",
                                            levels=spec.tree_levels if piped else None))
                return {"next": p.acc + dot}
            # every partial-product word of the k products, the row's shared correction and
            # one constant word (what the rows' sign handling owes): hw.arith.product_words
            words = [getattr(p, f"{n}_{q}") for q in range(K) for n in mul_outs]
            words += ([p.corr] if has_corr else []) + ([Const(const, width)] if const else [])
            if pipe is not None and spec.mult_reg:
                words = pipe.reg(words, "pp")
            if pipe is not None and spec.tree_stage_levels:
                # the product words down to two through the pipelined tree, then a 4:2 step
                # with the accumulator's words in the loop
                words = list(csa_reduce(m, words, width, "tree", pipe=pipe,
                                        levels=spec.tree_levels))
            s, cy = csa_reduce(m, [*words, p.sum, p.carry], width, "csa")
            return {"sum_next": s, "carry_next": cy}

        return block_of("tree", spec, inputs, outputs)

    def _pipelined_input(self, m: Module, drain: RowDrain) -> tuple[Signal, Signal]:
        """The input side with ``spec.accumulate_latency_cycles`` registers between a beat and the
        accumulators. Sets ``self._advance`` (the pipeline steps) and returns ``take`` (a beat
        leaves the pipeline into the accumulators) and ``hand`` (that beat is its fold's last:
        the drain starts, with ``output_double_buffer`` the tile moves into the bank).

        Without the bank the input closes from a fold's last beat until its drain ends and the
        pipeline runs freely. With it the pipeline, and the input with it, stalls while its
        last beat waits for the bank (not empty and its last row not leaving)."""
        spec, i = self.spec, self.i
        feed, take, hand = Signal(), Signal(), Signal()
        advance = self._advance = Signal()
        valid, last, in_flight = delay_flags(m, feed, feed & i.payload.last,
                                             spec.accumulate_latency_cycles, advance, "pipe")
        if spec.output_double_buffer:
            bank_free = ~drain.active | drain.done
            m.d.comb += advance.eq(~(valid & last & ~bank_free))
            m.d.comb += i.ready.eq(advance)
            first = Signal(init=1)  # the next input beat starts a fold
            with m.If(feed):
                m.d.sync += first.eq(i.payload.last)
            m.d.comb += self._busy.eq(~first | in_flight | drain.active)
        else:
            closing = Signal()  # the fold's last beat is in the pipeline
            m.d.comb += [advance.eq(1), i.ready.eq(~drain.active & ~closing)]
            with m.If(feed & i.payload.last):
                m.d.sync += closing.eq(1)
            with m.If(hand):
                m.d.sync += closing.eq(0)
            with m.If(feed):
                m.d.sync += self._busy.eq(1)
            with m.If(drain.done):
                m.d.sync += self._busy.eq(0)
        m.d.comb += [
            feed.eq(i.valid & i.ready),
            take.eq(valid & advance),
            hand.eq(take & last),
            drain.start.eq(hand),
        ]
        return take, hand

    def _follow_with_bank(self, m: Module, drain: RowDrain) -> Signal:
        """The input side with an output register bank: beats are taken while the bank
        drains, but a last beat (which hands its tile to the bank) only when the bank is empty
        or its last row leaves in this cycle; that beat starts the drain. ``busy`` is high
        from a fold's first beat until the bank is empty. Returns ``feed``."""
        feed = Signal()
        bank_free = Signal()
        m.d.comb += [
            bank_free.eq(~drain.active | drain.done),
            self.i.ready.eq(~self.i.payload.last | bank_free),
            feed.eq(self.i.valid & self.i.ready),
            drain.start.eq(feed & self.i.payload.last),
        ]
        first = Signal(init=1)  # the next input beat starts a fold
        with m.If(feed):
            m.d.sync += first.eq(self.i.payload.last)
        m.d.comb += self._busy.eq(~first | drain.active)
        return feed


def lane_order(spec: CubeSpec) -> dict[str, dict[str, str]]:
    """What each payload lane holds, by stream and field (for the manifest)."""
    return tile_lane_order(
        a="lane r*k + q: A[m0 + r, b*k + q] in beat b (an m x k tile, row-major)",
        w="lane q*n + c: W[b*k + q, n0 + c] in beat b (a k x n tile, row-major)")


#: The component of this engine kind (see hw.generators).
COMPONENT = Cube
