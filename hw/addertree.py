"""Multiplier-adder tree generator (dot-product lanes, NVDLA CMAC style).

One :class:`AdderTree` component is elaborated from one :class:`hw.spec.AdderTreeSpec`. All
streams follow ``amaranth.lib.stream`` rules (a beat transfers in a cycle where ``valid`` and
``ready`` are both high; ``valid`` never waits for ``ready``). Operand lanes are
``signed(bits)`` or ``unsigned(bits)`` per ``spec.signed``; accumulators are ``acc_bits`` wide
and wrap modulo ``2**acc_bits`` (two's complement when signed).

Output stationary (``dataflow="os"``): one fold computes ``lanes`` results of one output
row, ``C[m, n0 + l]`` for l < ``lanes``, over a reduction of any length K:

* ``i`` stream, one beat per chunk of ``k`` reduction indices, ``ceil(K/k)`` beats: beat b
  carries ``a[q] = A[m, b*k + q]`` (broadcast to every lane) and
  ``w[l*k + q] = W[b*k + q, n0 + l]`` (lane-major); ``last`` high on the final beat. Lanes
  beyond K in a partial last chunk must carry a zero in ``a`` or in ``w``. Each lane
  multiplies, reduces its ``k`` products in an adder tree and accumulates, in the cycle the
  beat is taken. The engine never stalls its input while streaming: a cycle without a valid
  beat changes nothing (a bubble) and delays the fold by one cycle.
* ``o`` stream, one beat in the cycle after the last input beat: ``c[l]`` = lane l's result,
  ``last`` high. Back-pressure (``ready`` low) holds it; the accumulators clear when it
  transfers. ``i.ready`` is low while the result waits.
* Timing: with every beat valid and ready, the output transfers
  ``fold_cycles(K) - 1 = ceil(K/k)`` cycles after the first input beat (stream ``ceil(K/k)``,
  drain 1); ``i.ready`` is high again from the cycle after, so folds run back to back.

Weight stationary (``dataflow="ws"``, NVDLA CMAC's dataflow): one fold holds a ``k`` x
``lanes`` weight tile and streams any number M of activation rows through it:

* ``wl`` stream, ``k`` beats: beat q carries ``w[l] = W[k0 + q, n0 + l]``. Weight rows
  beyond K must be zero (they would meet real activations).
* ``i`` stream, one beat per activation row m: ``a[q] = A[m, k0 + q]``, ``last`` on m = M-1.
  A cycle without a valid beat enters a bubble that produces no output.
* ``o`` stream, one beat per activation row, in order, from the cycle after it entered:
  ``c[l] = sum_q A[m, k0 + q] * W[k0 + q, n0 + l]`` (a partial sum over this K chunk; the
  chunks of a longer reduction are added outside the engine), ``last`` on m = M-1. The
  result sits in one output register; back-pressure stalls it and the input together.
* Timing: ``fold_cycles(M) = k + M + 1`` from the first ``wl`` beat to the last output beat,
  inclusive (preload ``k``, stream M, one register stage); ``wl.ready`` is high again from the
  cycle after the last output beat, so folds run back to back.

Options (datapath only; protocol and timing are the same for every combination):

* ``booth``: products are sums of radix-4 Booth partial products. The digits of the ``k``
  activations (in {-2..+2}) are recoded once per beat and shared by every lane; a partial
  product is ``|d| * w`` (an AND-OR select of ``w`` or ``2w``) XOR the digit's sign, and the
  sign bits those rows owe are summed once per beat for all lanes (one shared correction
  word instead of a +1 row per partial product). Without it, products are Amaranth
  ``a * w`` and the adder tree is ``+`` (Yosys's default multiplier and adders).
* ``compress`` (TPE OPT2, same-bit-weight compressor array): the activations are recoded
  once per beat into digits shared by all lanes (radix-4 Booth digits with ``booth``, else
  their bits, the sign bit negative). Per lane and digit position j, the ``k`` selected
  partial products of equal weight (and the shared count of negative digits at j) are
  compressed unshifted in a carry-save tree only as wide as their sum; then the sum and
  carry words of every position, shifted to their weight (``out = S0 + S1<<2 + S2<<4 + ...``
  with Booth digits, ``<<1`` steps with bits), the constant the rows' sign handling owes and
  (OS) the accumulator go through one carry-save tree and a single carry-propagate add per
  lane and beat.

Pipelining (``mult_reg``, ``tree_stage_levels``; the results and the protocol are the same,
every beat still taken in one cycle): the products (with ``compress``, each position's
partial-product rows and negative-digit count) are registered with ``mult_reg``, and the
reduction tree after every ``tree_stage_levels`` adder levels (with ``compress`` counted
through the planes, the tree combining them and its carry-propagate add; each section is
built to the spec's level count, so that every path crosses the same registers). The
``spec.pipeline_cycles`` registers delay every beat's dot product; a valid and a last flag
travel beside it. Under OS the pipeline runs freely and the accumulators take the beats
leaving it (the input is closed from the last beat until the result transfers); under WS it
steps with the output register, so back-pressure stalls the whole pipeline. Each register adds
a cycle to ``drain_cycles``.

``busy`` is high while a fold is in progress (from its first input beat to its last output).
"""

from __future__ import annotations

from amaranth import Const, Module, Signal, Value
from amaranth.lib import data, wiring

from hw.arith import Pipe, add_tree, csa_reduce, csa_row, neg_correction, pp_row, recode
from hw.spec.addertree import AdderTreeSpec
from hw.streams import (
    delay_flags,
    operand_shapes,
    signature_members,
    tile_layouts,
    ws_layouts,
)

__all__ = ["COMPONENT", "AdderTree", "lane_order", "stream_layouts"]


def stream_layouts(spec: AdderTreeSpec) -> dict[str, data.Layout]:
    """Payload layout of every stream of the engine, by stream name."""
    if spec.dataflow == "os":
        return tile_layouts(spec, a_lanes=spec.k, w_lanes=spec.lanes * spec.k, c_lanes=spec.lanes)
    return ws_layouts(spec, w_lanes=spec.lanes, a_lanes=spec.k, c_lanes=spec.lanes)


class AdderTree(wiring.Component):
    """``spec.lanes`` dot-product lanes of ``spec.k`` products; see the module docstring."""

    def __init__(self, spec: AdderTreeSpec):
        if not isinstance(spec, AdderTreeSpec):
            raise TypeError(f"spec must be an AdderTreeSpec, not {spec!r}")
        self.spec = spec
        super().__init__(signature_members(stream_layouts(spec)))

    def elaborate(self, platform):
        if self.spec.dataflow == "os":
            return self._elaborate_os()
        return self._elaborate_ws()

    # -- output stationary ----------------------------------------------------------------
    def _elaborate_os(self) -> Module:
        spec = self.spec
        L, K = spec.lanes, spec.k
        _, _, acc_shape = operand_shapes(spec)
        m = Module()

        feed = Signal()  # the current input beat is taken
        clear = Signal()  # the result beat transfers: accumulators back to zero
        a = [self.i.payload.a[q] for q in range(K)]
        w = [[self.i.payload.w[lane * K + q] for q in range(K)] for lane in range(L)]
        acc = [Signal(acc_shape, name=f"acc_{lane}") for lane in range(L)]
        pipe = self._pipe(m, Const(1, 1))
        nxt = self._dot_products(m, a, w, acc, pipe)
        # A beat's dot product reaches the accumulators spec.pipeline_cycles after it is
        # taken; its flags travel beside it through the same (free-running) registers.
        take, take_last = self._delay(m, feed, feed & self.i.payload.last, Const(1, 1))

        for lane in range(L):
            with m.If(take):
                m.d.sync += acc[lane].eq(nxt[lane])
            with m.Elif(clear):
                m.d.sync += acc[lane].eq(0)
            m.d.comb += self.o.payload.c[lane].eq(acc[lane])

        with m.FSM(name="addertree_fsm"):
            with m.State("STREAM"):
                m.d.comb += [self.i.ready.eq(1), feed.eq(self.i.valid)]
                with m.If(self.i.valid):
                    m.d.sync += self.busy.eq(1)
                    with m.If(self.i.payload.last):
                        m.next = "FLUSH" if spec.pipeline_cycles else "RESULT"
            if spec.pipeline_cycles:
                with m.State("FLUSH"):  # the pipeline delivers the fold's last beats
                    with m.If(take_last):
                        m.next = "RESULT"
            with m.State("RESULT"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.last.eq(1),
                             clear.eq(self.o.ready)]
                with m.If(self.o.ready):
                    m.d.sync += self.busy.eq(0)
                    m.next = "STREAM"
        return m

    # -- weight stationary ----------------------------------------------------------------
    def _elaborate_ws(self) -> Module:
        spec = self.spec
        L, K = spec.lanes, spec.k
        _, w_shape, acc_shape = operand_shapes(spec)
        m = Module()

        # Stationary weights: wl beat q ends in column q (a chain shifting towards q = 0).
        wt = [[Signal(w_shape, name=f"wt_{lane}_{q}") for q in range(K)] for lane in range(L)]
        load = Signal()
        with m.If(load):
            for lane in range(L):
                for q in range(K):
                    src = self.wl.payload.w[lane] if q == K - 1 else wt[lane][q + 1]
                    m.d.sync += wt[lane][q].eq(src)

        # One output register stage (after the pipeline registers, if any); back-pressure
        # stalls it, the pipeline and the input together.
        out = [Signal(acc_shape, name=f"out_{lane}") for lane in range(L)]
        out_valid, out_last = Signal(), Signal()
        step = Signal()  # the output register takes the current beat (or a bubble)
        feed = Signal()  # the current input beat is taken
        m.d.comb += [
            step.eq(~out_valid | self.o.ready),
            self.o.valid.eq(out_valid),
            self.o.payload.last.eq(out_last),
            *(self.o.payload.c[lane].eq(out[lane]) for lane in range(L)),
        ]
        a = [self.i.payload.a[q] for q in range(K)]
        dots = self._dot_products(m, a, wt, None, self._pipe(m, step))
        took, took_last = self._delay(m, feed, feed & self.i.payload.last, step)
        with m.If(step):
            m.d.sync += [out_valid.eq(took), out_last.eq(took_last)]
            with m.If(took):
                m.d.sync += [out[lane].eq(dots[lane]) for lane in range(L)]

        loaded = Signal(range(max(K, 2)))
        with m.FSM(name="addertree_fsm"):
            with m.State("LOAD"):
                m.d.comb += [self.wl.ready.eq(1), load.eq(self.wl.valid)]
                with m.If(self.wl.valid):
                    m.d.sync += [self.busy.eq(1), loaded.eq(loaded + 1)]
                    with m.If(loaded == K - 1):
                        m.d.sync += loaded.eq(0)
                        m.next = "STREAM"
            with m.State("STREAM"):
                m.d.comb += [self.i.ready.eq(step), feed.eq(self.i.valid & step)]
                with m.If(feed & self.i.payload.last):
                    m.next = "FLUSH"
            with m.State("FLUSH"):
                with m.If(out_valid & self.o.ready & out_last):
                    m.d.sync += self.busy.eq(0)
                    m.next = "LOAD"
        return m

    # -- pipelining -----------------------------------------------------------------------
    def _pipe(self, m: Module, en: Value) -> Pipe | None:
        """The pipeline registers' builder (None without pipelining), stepping with ``en``."""
        if not self.spec.pipeline_cycles:
            return None
        return Pipe(m, self.spec.tree_stage_levels, en, "pipe")

    def _delay(self, m: Module, valid: Value, last: Value, en: Value) -> tuple[Value, Value]:
        """A beat's valid and last flags delayed by ``spec.pipeline_cycles`` registers
        stepping with ``en``, beside its dot product."""
        valid, last, _ = delay_flags(m, valid, last, self.spec.pipeline_cycles, en, "pipe")
        return valid, last

    # -- the lanes' arithmetic ------------------------------------------------------------
    def _dot_products(self, m: Module, a, w, acc, pipe: Pipe | None) -> list[Signal]:
        """Per lane, ``sum_q a[q] * w[lane][q]`` (plus ``acc[lane]`` when given, added as
        the pipeline's output leaves it), as ``acc_bits``-wide words, by the datapath the
        options choose, through ``pipe``'s registers."""
        spec = self.spec
        L, K, width = spec.lanes, spec.k, spec.acc_bits
        wb, ws = spec.w_bits, spec.signed
        extra = acc if acc is not None else [None] * L
        out = [Signal(width, name=f"dot_{lane}") for lane in range(L)]
        if spec.compress:
            self._compress(m, a, w, extra, out, pipe)
            return out
        levels = spec.tree_sections[0] if pipe is not None else None
        if spec.booth:
            # Digits recoded once per beat and the sign bits their rows owe summed once per
            # beat, both shared by every lane.
            digits = [recode(m, a[q], spec.a_bits, ws, True, f"a{q}") for q in range(K)]
            corr = neg_correction(digits, width)
            if corr is not None:
                sig = Signal(width, name="neg_corr")
                m.d.comb += sig.eq(corr)
                corr = sig
                if pipe is not None and spec.mult_reg:
                    corr = pipe.reg([corr], "neg_corr")[0]
        for lane in range(L):
            if spec.booth:
                terms = [add_tree([pp_row(d, w[lane][q], wb, ws) << d.shift
                                   for d in digits[q] if d.shift < width], width)
                         for q in range(K)]
            else:
                terms = [a[q] * w[lane][q] for q in range(K)]
            if pipe is not None and spec.mult_reg:
                terms = pipe.reg(terms, f"prod{lane}")
            if spec.booth and corr is not None:
                terms.append(corr)
            total = add_tree(terms, width, pipe=pipe, levels=levels, name=f"tree{lane}")
            if extra[lane] is None:
                m.d.comb += out[lane].eq(total)
            else:
                tree = Signal(width, name=f"tree_{lane}")
                m.d.comb += [tree.eq(total), out[lane].eq(extra[lane] + tree)]
        return out

    def _compress(self, m: Module, a, w, extra, out, pipe: Pipe | None) -> None:
        """OPT2: per lane, ``out = extra + sum_j (sum_q d_j(a_q) * w_q) << s_j``.

        The digits of the k activations are recoded once per beat for every lane, and so is
        the count of negative digits at each position (what the rows of that position owe,
        see :func:`hw.arith.pp_row`). Per lane and digit position j, the k partial products
        of equal weight and that count are compressed unshifted in a carry-save tree just
        wide enough for their sum (each row is made non-negative by
        :func:`hw.arith.csa_row`, so nothing overflows the narrow tree); then the sum and
        carry words of every position, shifted to their weight, the rows' owed constant and
        ``extra`` (the accumulator, if any) go through one carry-save tree and one
        carry-propagate add. With ``tree_stage_levels`` the accumulator is added after that
        add instead (outside the pipelined tree), and each section is built to the spec's
        level count.
        """
        spec = self.spec
        K, width = spec.k, spec.acc_bits
        wb, ws = spec.w_bits, spec.signed
        digits = [recode(m, a[q], spec.a_bits, ws, spec.booth, f"a{q}") for q in range(K)]
        positions = [j for j, d in enumerate(digits[0]) if d.shift < width]
        counts: dict[int, Value] = {}
        for j in positions:
            negs = [digits[q][j].neg for q in range(K) if digits[q][j].neg is not None]
            if negs:
                counts[j] = Signal(range(K + 1), name=f"neg_count{j}")
                m.d.comb += counts[j].eq(add_tree(negs, width))
                if pipe is not None and spec.mult_reg:
                    counts[j] = pipe.reg([counts[j]], f"neg_count{j}")[0]
        staged = pipe is not None and spec.tree_stage_levels > 0
        sections = spec.tree_sections if staged else (None, None, None)
        for lane in range(spec.lanes):
            words, const = [], 0
            for j in positions:
                sh = digits[0][j].shift
                rows = [pp_row(digits[q][j], w[lane][q], wb, ws) for q in range(K)]
                pw = min(width - sh, (K << len(rows[0])).bit_length())
                plane = []
                for q, row in enumerate(rows):
                    word, owed = csa_row(m, row, 0, pw, f"pl{lane}_{j}_{q}")
                    plane.append(word)
                    const += owed << sh
                if pipe is not None and spec.mult_reg:
                    plane = pipe.reg(plane, f"pp{lane}_{j}")
                if j in counts:
                    plane.append(counts[j])
                ps, pc = csa_reduce(m, plane, pw, f"plane{lane}_{j}", pipe=pipe,
                                    levels=sections[0])
                for tag, x in (("s", ps), ("c", pc)):
                    word = Signal(width, name=f"plane{lane}_{j}_{tag}")
                    m.d.comb += word.eq(Value.cast(x).as_unsigned() << sh)
                    words.append(word)
            const %= 1 << width
            words += [Const(const, width)] if const else []
            if extra[lane] is not None and not staged:
                words.append(extra[lane])
            s, c = csa_reduce(m, words, width, f"sum{lane}", pipe=pipe,
                              start=sections[0] or 0, levels=sections[1])
            if not staged:
                m.d.comb += out[lane].eq(s + c)
                continue
            total = Signal(width, name=f"cpa_{lane}")
            m.d.comb += total.eq(s + c)
            total = pipe.cut([total], sections[0] + sections[1] + 1, f"cpa{lane}")[0]
            m.d.comb += out[lane].eq(total if extra[lane] is None else extra[lane] + total)


def lane_order(spec: AdderTreeSpec) -> dict[str, dict[str, str]]:
    """What each payload lane holds, by stream and field (for the manifest)."""
    if spec.dataflow == "os":
        return {"i": {"a": "lane q: A[m, b*k + q] in beat b (broadcast to every lane)",
                      "w": "lane l*k + q: W[b*k + q, n0 + l] in beat b (lane-major)"},
                "o": {"c": "lane l: C[m, n0 + l] (one beat per fold)"}}
    return {"wl": {"w": "lane l: W[k0 + q, n0 + l] in preload beat q (q = 0 first)"},
            "i": {"a": "lane q: A[m, k0 + q] in the beat of activation row m"},
            "o": {"c": "lane l: C[m, n0 + l] (the partial sum over this weight tile) in the "
                       "beat of activation row m"}}


#: The component of this engine kind (see hw.generators).
COMPONENT = AdderTree
