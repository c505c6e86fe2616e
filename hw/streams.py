"""Stream pieces shared by the generators: operand shapes, the common payload layouts and the
row drain of an output-stationary tile.

Most engines take one ``i`` stream ``{a: a lanes, w: w lanes, last}`` and give one ``o``
stream ``{c: c lanes, last}`` (:func:`tile_layouts`); lanes are ``signed(bits)`` or
``unsigned(bits)`` per ``spec.signed`` (:func:`operand_shapes`).

An output-stationary tile leaves one accumulator row per ``o`` beat: :class:`RowDrain` drives
``o.valid``/``o.payload.last`` and tells when the rows move (``shift``), and
:func:`shift_rows` moves them (row r takes row r+1, zeros enter at the far end, which clears
the accumulators for the next fold).
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth import Cat, Const, Module, Shape, Signal, Value, signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

__all__ = [
    "RowDrain",
    "delay_flags",
    "operand_shapes",
    "out_layout",
    "output_register",
    "shift_rows",
    "signature_members",
    "tile_lane_order",
    "tile_layouts",
    "ws_layouts",
]


def operand_shapes(spec) -> tuple[Shape, Shape, Shape]:
    """Shapes of an activation lane, a weight lane and an accumulator (per ``spec.signed``)."""
    kind = signed if spec.signed else unsigned
    return kind(spec.a_bits), kind(spec.w_bits), kind(spec.acc_bits)


def tile_layouts(spec, *, a_lanes: int, w_lanes: int, c_lanes: int) -> dict[str, data.Layout]:
    """The common layouts: ``i`` = ``{a, w, last}``, ``o`` = ``{c, last}``, by stream name."""
    a_shape, w_shape, _ = operand_shapes(spec)
    return {
        "i": data.StructLayout({
            "a": data.ArrayLayout(a_shape, a_lanes),
            "w": data.ArrayLayout(w_shape, w_lanes),
            "last": 1,
        }),
        "o": out_layout(spec, c_lanes),
    }


def tile_lane_order(a: str = "lane r: A[m0 + r, k], row r of the output tile",
                    w: str = "lane c: W[k, n0 + c], column c of the output tile",
                    ) -> dict[str, dict[str, str]]:
    """What each lane of the common layouts (:func:`tile_layouts`) holds, for a design's
    manifest: by default an output-stationary tile's, one reduction index k per ``i`` beat and
    one result row per ``o`` beat (a kind with other lanes passes its own ``a`` and ``w``)."""
    return {"i": {"a": a, "w": w},
            "o": {"c": "lane j: C[m0 + r, n0 + j] in output beat r (r = 0 first)"}}


def out_layout(spec, c_lanes: int) -> data.StructLayout:
    """The ``o`` stream's layout: ``{c: c_lanes accumulators, last}``."""
    _, _, acc_shape = operand_shapes(spec)
    return data.StructLayout({"c": data.ArrayLayout(acc_shape, c_lanes), "last": 1})


def ws_layouts(spec, *, w_lanes: int, a_lanes: int, c_lanes: int) -> dict[str, data.Layout]:
    """The weight-stationary layouts: ``wl`` = ``{w}`` (one weight row per beat), ``i`` =
    ``{a, last}``, ``o`` = ``{c, last}``, by stream name."""
    a_shape, w_shape, _ = operand_shapes(spec)
    return {
        "wl": data.StructLayout({"w": data.ArrayLayout(w_shape, w_lanes)}),
        "i": data.StructLayout({"a": data.ArrayLayout(a_shape, a_lanes), "last": 1}),
        "o": out_layout(spec, c_lanes),
    }


def signature_members(layouts: dict[str, data.Layout]) -> dict:
    """An engine's signature members: every stream of ``layouts`` an input except ``o``
    (the output), then ``busy``."""
    members = {name: In(stream.Signature(layout)) for name, layout in layouts.items()
               if name != "o"}
    members["o"] = Out(stream.Signature(layouts["o"]))
    members["busy"] = Out(1)
    return members


def shift_rows(m: Module, rows: Sequence[Sequence[Sequence[Value]]], shift: Value) -> None:
    """When ``shift`` is high, every register of ``rows[r][c]`` (a group of registers: an
    accumulator, or its sum and carry words) takes the one of ``rows[r+1][c]``; the last row
    takes zeros. Whichever of the caller's updates and these comes later wins when both are
    enabled: a tile drained by shifting wins over the accumulation (which never coincides with
    it), and an output register bank's handover, added after, wins over its last shift."""
    for r, row in enumerate(rows):
        for c, regs in enumerate(row):
            below = rows[r + 1][c] if r + 1 < len(rows) else [0] * len(regs)
            with m.If(shift):
                m.d.sync += [reg.eq(v) for reg, v in zip(regs, below, strict=True)]


def delay_flags(m: Module, valid: Value, last: Value, cycles: int, en: Value, name: str
                ) -> tuple[Value, Value, Value]:
    """A beat's ``valid`` and ``last`` flags through ``cycles`` registers that step with
    ``en``, beside its data in a pipeline of as many registers. Returns the delayed flags and
    ``in_flight``, high while any register holds a valid beat."""
    held = []
    for d in range(cycles):
        v, lst = Signal(name=f"{name}_valid{d}"), Signal(name=f"{name}_last{d}")
        with m.If(en):
            m.d.sync += [v.eq(valid), lst.eq(last)]
        valid, last = v, lst
        held.append(v)
    return valid, last, Cat(Const(0, 1), *held).any()


def output_register(m: Module, inner, o) -> Signal:
    """A register slice from stream ``inner`` (driven by the engine) to stream ``o``: one
    beat held, passed on when ``o.ready``; ``inner.ready`` is high when the slice is empty or
    passes its beat on, so beats still flow one per cycle, each one cycle later; the payload
    register has no reset (only the valid bit says whether it holds a beat). Returns the
    slice's valid bit."""
    valid = Signal(name="o_reg_valid")
    payload = Signal(o.payload.shape(), name="o_reg_payload", reset_less=True)
    m.d.comb += inner.ready.eq(~valid | o.ready)
    with m.If(inner.ready):
        m.d.sync += [valid.eq(inner.valid), payload.eq(inner.payload)]
    m.d.comb += [o.valid.eq(valid), o.payload.eq(payload)]
    return valid


class RowDrain:
    """The drain of a ``rows``-row tile on stream ``o``: after :meth:`start`, ``o.valid`` is
    high and beat r (``last`` on r = rows-1) transfers when ``o.ready`` is high.

    Signals: ``start`` (driven by the engine: the drain begins in the next cycle), ``active``
    (draining; the engine keeps ``i.ready`` low, unless it double-buffers its outputs),
    ``row`` (the row presented), ``shift`` (a row leaves this cycle: the rows move one place,
    see :func:`shift_rows`), ``done`` (the last row leaves this cycle; ``active`` is low from
    the next one unless ``start`` is high too: an engine with an output register bank may hand
    over the next tile as the last row of the current one leaves).
    """

    def __init__(self, m: Module, o, rows: int):
        self.m, self.rows = m, rows
        self.start = Signal()
        self.active = Signal()
        self.shift = Signal()
        self.done = Signal()
        self.row = row = Signal(range(max(rows, 2)))  # output row being presented
        is_last = row == rows - 1
        m.d.comb += [
            o.valid.eq(self.active),
            o.payload.last.eq(is_last),
            self.shift.eq(self.active & o.ready),
            self.done.eq(self.shift & is_last),
        ]
        with m.If(self.shift):
            m.d.sync += row.eq(row + 1)
        with m.If(self.done):
            m.d.sync += [row.eq(0), self.active.eq(0)]
        with m.If(self.start):  # after done: a new tile handed over as the last row leaves
            m.d.sync += self.active.eq(1)

    def follow(self, i, busy) -> Signal:
        """The input side of a stream-then-drain fold: ``i.ready`` is high unless draining,
        the beat marked ``last`` starts the drain, ``busy`` is high from the first beat until
        the last row leaves. Returns ``feed`` (an input beat transfers this cycle)."""
        m = self.m
        feed = Signal()
        m.d.comb += [
            i.ready.eq(~self.active),
            feed.eq(i.valid & ~self.active),
            self.start.eq(feed & i.payload.last),
        ]
        with m.If(feed):
            m.d.sync += busy.eq(1)
        with m.If(self.done):
            m.d.sync += busy.eq(0)
        return feed
