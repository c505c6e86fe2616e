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

Hierarchy (:mod:`hw.hier`): each product is a multiplier block ``mul`` (the product, or with
``compress`` its partial-product row per digit position), placed as ``mul_<lane>_<q>``, and
each lane's reduction tree with its pipeline registers (and, OS, the add of the accumulator) a
block ``tree`` placed as ``tree_<lane>``; in the Verilog each is one module, instantiated
``lanes*k`` and ``lanes`` times. The recoded digits and what their rows owe (shared by the
lanes), the weights, the accumulators and the control stay in the top.
"""

from __future__ import annotations

from typing import Any

from amaranth import Const, Module, Shape, Signal, Value
from amaranth.lib import data, wiring

from hw.arith import Pipe, add_tree, csa_reduce, csa_row, neg_correction, pp_row, recode
from hw.hier import Block, block_of, place
from hw.products import (
    Template,
    digit_template,
    multiplier,
    owed_constant,
    pack_digits,
    unpack_digits,
)
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
        nxt = self._dot_products(m, a, w, acc, Const(1, 1))
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
        dots = self._dot_products(m, a, wt, None, step)
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
    def _dot_products(self, m: Module, a, w, acc, en: Value) -> list[Signal]:
        """Per lane, ``sum_q a[q] * w[lane][q]`` (plus ``acc[lane]`` when given, added as
        the pipeline's output leaves it), as ``acc_bits``-wide words, by the datapath the
        options choose, through pipeline registers stepping with ``en``.

        One multiplier per product (block ``mul``, placed lanes x k times) and one reduction
        tree per lane (block ``tree``, placed lanes times; :mod:`hw.hier`). With ``booth`` or
        ``compress`` the activations' digits are recoded once per beat and shared by every
        lane, and so is what their rows owe: the correction word (``booth``) or the count of
        negative digits at each position (``compress``), registered once with ``mult_reg``."""
        spec = self.spec
        L, K, width = spec.lanes, spec.k, spec.acc_bits
        ws = spec.signed
        pipe = self._pipe(m, en)
        out = [Signal(width, name=f"dot_{lane}") for lane in range(L)]
        digits = None
        shared: dict[str, Value] = {}  # tree inputs every lane shares
        if spec.booth or spec.compress:
            digits = [recode(m, a[q], spec.a_bits, ws, spec.booth, f"a{q}") for q in range(K)]
        if spec.compress:
            for j, d in enumerate(digits[0]):
                negs = [digits[q][j].neg for q in range(K) if digits[q][j].neg is not None]
                if d.shift < width and negs:
                    count = Signal(range(K + 1), name=f"neg_count{j}")
                    m.d.comb += count.eq(add_tree(negs, width))
                    if pipe is not None and spec.mult_reg:
                        count = pipe.reg([count], f"neg_count{j}")[0]
                    shared[f"n{j}"] = count
        elif spec.booth:
            corr = neg_correction(digits, width)
            if corr is not None:
                sig = Signal(width, name="neg_corr")
                m.d.comb += sig.eq(corr)
                corr = sig
                if pipe is not None and spec.mult_reg:
                    corr = pipe.reg([corr], "neg_corr")[0]
                shared["corr"] = corr
        template = digit_template(digits[0]) if digits is not None else None
        if spec.compress:
            mul = block_of("mul", spec, {"d": len(pack_digits(digits[0])),
                                         "w": operand_shapes(spec)[1]},
                           lambda mm, p: self._plane_words(mm, template, p.d, p.w)[0])
        else:
            mul = multiplier(spec, template)
        tree = self._tree(mul, template, {n: Value.cast(v).shape() for n, v in shared.items()},
                          with_acc=acc is not None)
        for lane in range(L):
            ports = dict(shared)
            for q in range(K):
                ins = {"d": pack_digits(digits[q])} if digits is not None else {"a": a[q]}
                outs = place(m, f"mul_{lane}_{q}", mul, w=w[lane][q], **ins)
                ports.update({f"{n}_{q}" if spec.compress else f"{n}{q}": v
                              for n, v in outs.items()})
            if acc is not None:
                ports["acc"] = acc[lane]
            if pipe is not None:
                ports["en"] = en
            m.d.comb += out[lane].eq(place(m, f"tree_{lane}", tree, **ports)["dot"])
        return out

    def _plane_words(self, m: Module, template: Template, d: Value, w: Value
                     ) -> tuple[dict[str, Value], int]:
        """OPT2's partial-product rows of one product: per digit position j within the
        accumulator, ``pp<j>`` (``d_j * w`` made non-negative by :func:`hw.arith.csa_row`,
        unshifted, as wide as the sum of the k rows of that position), and the constant
        the rows owe, at their weights."""
        spec = self.spec
        K, width = spec.k, spec.acc_bits
        words: dict[str, Value] = {}
        const = 0
        for j, digit in enumerate(unpack_digits(template, d)):
            if digit.shift >= width:
                continue
            row = pp_row(digit, w, spec.w_bits, spec.signed)
            pw = min(width - digit.shift, (K << len(row)).bit_length())
            word, owed = csa_row(m, row, 0, pw, f"pl_{j}")
            words[f"pp{j}"] = word
            const += owed << digit.shift
        return words, const

    def _tree(self, mul: Block, template: Template | None, shared: dict[str, Any], *,
              with_acc: bool) -> Block:
        """The reduction tree of one lane (block ``tree``): inputs the outputs of its k
        multipliers (``p<q>``, or with ``compress`` their rows ``pp<j>_<q>``), the shared
        inputs (``corr``, or the counts ``n<j>``), the accumulator ``acc`` (OS) and with
        pipelining ``en``; output ``dot``, the lane's sum (plus the accumulator).

        With ``compress`` (OPT2): per digit position j, the k partial products of equal
        weight and the count of negative digits at j are compressed unshifted in a
        carry-save tree just wide enough for their sum (each row is made non-negative by
        :func:`hw.arith.csa_row`, so nothing overflows the narrow tree); then the sum and
        carry words of every position, shifted to their weight, the rows' owed constant and
        the accumulator (if any) go through one carry-save tree and one carry-propagate add.
        With ``tree_stage_levels`` the accumulator is added after that add instead (outside
        the pipelined tree), and each section is built to the spec's level count."""
        spec = self.spec
        K, width = spec.k, spec.acc_bits
        _, _, acc_shape = operand_shapes(spec)
        mul_outs = {n: mem.shape for n, mem in mul.members.items() if mem.flow == wiring.Out}
        inputs: dict[str, Any] = {}
        for q in range(K):
            inputs.update({f"{n}_{q}" if spec.compress else f"{n}{q}": shape
                           for n, shape in mul_outs.items()})
        inputs.update(shared)
        if with_acc:
            inputs["acc"] = acc_shape
        piped = bool(spec.pipeline_cycles)
        if piped:
            inputs["en"] = 1
        const = 0
        if spec.compress:
            const = owed_constant(spec, template, lambda m, d, w: self._plane_words(
                m, template, pack_digits(d), w)) * K % (1 << width)

        def outputs(m: Module, p: Any) -> dict[str, Value]:
            pipe = Pipe(m, spec.tree_stage_levels, p.en, "pipe") if piped else None
            if not spec.compress:
                terms = [getattr(p, f"p{q}") for q in range(K)]
                if pipe is not None and spec.mult_reg:
                    terms = pipe.reg(terms, "prod")
                if "corr" in shared:
                    terms.append(p.corr)
                total = add_tree(terms, width, pipe=pipe, name="tree",
                                 levels=spec.tree_sections[0] if piped else None)
                if not with_acc:
                    return {"dot": total}
                tree = Signal(width, name="tree")
                m.d.comb += tree.eq(total)
                return {"dot": p.acc + tree}
            staged = pipe is not None and spec.tree_stage_levels > 0
            sections = spec.tree_sections if staged else (None, None, None)
            words: list[Value] = []
            for n in mul_outs:
                j = int(n[2:])
                sh, pw = template[j][0], Shape.cast(mul_outs[n]).width
                plane = [getattr(p, f"{n}_{q}") for q in range(K)]
                if pipe is not None and spec.mult_reg:
                    plane = pipe.reg(plane, n)
                if f"n{j}" in shared:
                    plane.append(getattr(p, f"n{j}"))
                ps, pc = csa_reduce(m, plane, pw, f"plane{j}", pipe=pipe, levels=sections[0])
                for tag, x in (("s", ps), ("c", pc)):
                    word = Signal(width, name=f"plane{j}_{tag}")
                    m.d.comb += word.eq(Value.cast(x).as_unsigned() << sh)
                    words.append(word)
            words += [Const(const, width)] if const else []
            if with_acc and not staged:
                words.append(p.acc)
            s, c = csa_reduce(m, words, width, "sum", pipe=pipe,
                              start=sections[0] or 0, levels=sections[1])
            if not staged:
                return {"dot": s + c}
            total = Signal(width, name="cpa")
            m.d.comb += total.eq(s + c)
            total = pipe.cut([total], sections[0] + sections[1] + 1, "cpa")[0]
            return {"dot": total if not with_acc else p.acc + total}

        return block_of("tree", spec, inputs, outputs)


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
