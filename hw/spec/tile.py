"""The spec of a whole accelerator tile: one engine, its operand scratchpads, a DMA behind one
external memory port, and a loop controller, all derived from an :class:`hw.spec.ArchSpec`.

:func:`tile_spec` reads the architecture the simulator uses and turns it into what the RTL
(``hw.tile``) is built from; every number here comes from the architecture or from a rule
stated beside it, so the RTL and the cost model describe the same machine.

**Scratchpads.** The innermost tier of the architecture must give each operand its own level
(``holds`` one operand). A scratchpad line is one engine beat of that operand, a
``block_rows`` x ``block_cols`` block of it as stored (A is M x K, W is K x N): for the
output-stationary systolic array (and the engines of its protocol, :data:`ROW_COLUMN_KINDS`) a
column of ``rows`` A elements and a row of ``cols`` W elements, for the weight-stationary one
a row segment of ``rows`` A elements along K and a row of ``cols`` W elements, for the cube an
``m x k`` block of A and a ``k x n`` block of W; an O line is a row of accumulators. So the
level's ``width_bits`` must equal that beat's width (other widths are not built yet). Lines =
``capacity_bytes * 8 // width_bits``. A double-buffered level is two halves; a tile uses one
half, as the mapping search assumes (``SramSpec.tile_capacity_bytes``). When one external
beat spans the columns of several lines (``ext_elems / block_cols`` of them, a whole number),
the A or W scratchpad is split into that many banks, so that a beat fills as many lines in a
cycle: the link, not the line width, limits the loads (for the systolic A, one-column blocks,
this transposes a row of A into columns). :meth:`TileSpec.lines_needed` gives the layout's
lines per bank (``hw.tile``).

**External port.** ``ext_bytes`` bytes per beat: the smallest power of two that carries the
DRAM level's bytes per cycle (``bandwidth_gb_per_s * 1e3 / clock_mhz``), so the link, not the
port, limits a transfer, and at least one output element wide. Elements are stored in memory
in ``elem_bytes(bits)`` bytes each (the smallest power of two of bytes that holds ``bits``),
little endian, sign- or zero-extended per ``engine.signed``: bit-packing of sub-byte formats
is not built yet.

**Descriptor.** A GEMM ``C[M, N] = A[M, K] @ W[K, N]`` (row-major, each matrix at a base byte
address with a row stride in bytes), its buffer tile sizes and loop order
(:class:`Descriptor`) are written into the controller's registers (:meth:`TileSpec.registers`)
before ``start``; :meth:`TileSpec.check` refuses a descriptor the hardware cannot run, naming
the field.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, fields, replace
from typing import Any

from hw.spec import ArchSpec, LevelSpec, SpecError, SystolicSpec
from hw.spec.base import EngineBase

__all__ = ["LOOP_ORDERS", "ROW_COLUMN_KINDS", "Descriptor", "Register", "Scratchpad", "TileSpec",
           "elem_bytes", "engine_block", "line_blocks", "link_beat_bytes", "port_arch",
           "tile_spec"]

#: Loop orders of the tile loops, outer to inner; the controller's ``loop_order`` register
#: holds an index into this tuple (the same order as ``mapping.LOOP_ORDERS``).
LOOP_ORDERS: tuple[str, ...] = tuple("".join(p) for p in itertools.permutations("mnk"))

#: Default width of the M, N, K registers (bits): GEMMs up to 65535 in each dimension.
DIM_BITS = 16
#: Default external address width (bits): a 4 GiB address space, the ``systolic`` preset's
#: LPDDR4 package.
ADDR_BITS = 32


#: Engine kinds whose ``i`` beat is the output-stationary systolic array's (``a[r] = A[r, k]``,
#: ``w[c] = W[k, c]``, one reduction index per beat) and whose ``o`` drains ``rows`` rows of
#: ``cols`` accumulators: the tile feeds them as it feeds that array.
ROW_COLUMN_KINDS = ("matrix2d", "bitslice")


def _weight_stationary(engine: EngineBase) -> bool:
    """Whether the tile runs ``engine`` weight stationary (the systolic array's WS dataflow)."""
    return isinstance(engine, SystolicSpec) and engine.dataflow == "ws"


def line_blocks(engine: EngineBase) -> dict[str, tuple[int, int]] | None:
    """The block of each operand one scratchpad line holds, ``(block_rows, block_cols)`` of
    the operand as stored (module doc), for the engines the tile builds; None for others."""
    ws = _weight_stationary(engine)
    if engine.kind == "cube":
        c: Any = engine  # hw.spec.cube.CubeSpec, not imported: loaded only for a cube
        # a beat: an m x k block of A, a k x n block of W; a drained row: n accumulators
        return {"A": (c.m, c.k), "W": (c.k, c.n), "O": (1, c.n)}
    if isinstance(engine, SystolicSpec) or engine.kind in ROW_COLUMN_KINDS:
        # OS (and the engines of the same protocol): a column of an A block (rows along M),
        # a row of a W block; WS: a row segment of A along K, a row of a W block; a drained
        # row: cols accumulators
        rows, cols = engine.rows, engine.cols  # type: ignore[attr-defined]
        return {"A": (1, rows) if ws else (rows, 1), "W": (1, cols), "O": (1, cols)}
    return None


def engine_block(engine: EngineBase) -> tuple[int, int]:
    """The block the tile's fold walks (rows, cols), :attr:`TileSpec.engine_block`: weight
    stationary, the ``rows x cols`` W block a fold holds (rows along K); else the C block a
    fold computes. The write walker writes an output tile a block column of these rows at a
    time (``hw.tile``)."""
    if _weight_stationary(engine):
        e: Any = engine
        return e.rows, e.cols
    u = engine.unrolling()
    return u.m or 1, u.n or 1


def elem_bytes(bits: int) -> int:
    """Bytes one element of ``bits`` bits takes in external memory: the smallest power of two
    that holds it (8 -> 1, 16 -> 2, 20 or 32 -> 4)."""
    return 1 << max(0, math.ceil(bits / 8) - 1).bit_length()


@dataclass(frozen=True, slots=True)
class Scratchpad:
    """One operand's scratchpad: ``banks`` x ``bank_lines`` lines of ``lanes`` lanes of
    ``lane_bits`` bits; each bank is ``halves`` halves (2 when double-buffered) of
    ``half_lines`` lines. A line holds a ``block_rows`` x ``block_cols`` block of the operand
    (row-major in the lanes; rows and columns as the matrix is stored, e.g. A: M x K)."""

    level: str
    operand: str
    lanes: int
    lane_bits: int
    lines: int
    banks: int
    halves: int
    block_rows: int = 1
    block_cols: int = 1

    @property
    def width_bits(self) -> int:
        return self.lanes * self.lane_bits

    @property
    def bank_lines(self) -> int:
        return self.lines // self.banks

    @property
    def half_lines(self) -> int:
        """Lines of one bank that one tile may use."""
        return self.bank_lines // self.halves


@dataclass(frozen=True, slots=True)
class Register:
    """One descriptor register: written at ``offset`` on the config port, ``bits`` wide."""

    offset: int
    name: str
    bits: int
    doc: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Descriptor:
    """One GEMM for the tile: ``C[M, N] = A[M, K] @ W[K, N]``, row-major matrices at byte
    addresses ``*_base`` with ``*_stride`` bytes between rows, cut into ``tile_m x tile_n x
    tile_k`` buffer tiles run in ``loop_order`` (outer to inner, e.g. ``"mnk"``). C is written
    at the accumulator width (``elem_bytes(acc_bits)`` bytes per element); when K is split
    and ``k`` is not the innermost loop, partial sums are written to C and read back."""

    M: int
    N: int
    K: int
    tile_m: int
    tile_n: int
    tile_k: int
    loop_order: str
    a_base: int
    a_stride: int
    w_base: int
    w_stride: int
    c_base: int
    c_stride: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TileSpec:
    """Everything the tile RTL is built from (see the module docstring)."""

    arch: str
    engine: EngineBase
    clock_mhz: float
    a: Scratchpad
    w: Scratchpad
    o: Scratchpad
    #: Bytes per beat of the external port.
    ext_bytes: int
    #: The DRAM link of the architecture, for a memory model: bytes per cycle and latency.
    dram_bytes_per_cycle: float
    dram_latency_cycles: int
    dim_bits: int
    addr_bits: int
    #: The architecture the tile is derived from (its system model gives the model cycles a
    #: bench sets beside the measured ones; the manifest records it, see ``hw.emit``).
    architecture: ArchSpec

    @property
    def name(self) -> str:
        return f"tile_{self.engine.name}_x{self.ext_bytes}"

    @property
    def reg_bits(self) -> int:
        """Width of the config port's data (the widest register)."""
        return max(self.addr_bits, self.dim_bits)

    def elem_bytes(self, operand: str) -> int:
        """Bytes per element of ``operand`` ("A", "W" or "O") in external memory."""
        e = self.engine
        return elem_bytes({"A": e.a_bits, "W": e.w_bits, "O": e.acc_bits}[operand])

    def ext_elems(self, operand: str) -> int:
        """Elements of ``operand`` one external beat carries."""
        return self.ext_bytes // self.elem_bytes(operand)

    def registers(self) -> tuple[Register, ...]:
        """The descriptor register map, in offset order."""
        d, a = self.dim_bits, self.addr_bits
        rows = (
            ("M", d, "rows of A and C"), ("N", d, "columns of W and C"),
            ("K", d, "columns of A, rows of W"),
            ("tile_m", d, "buffer tile along M"), ("tile_n", d, "buffer tile along N"),
            ("tile_k", d, "buffer tile along K"),
            ("loop_order", 3, "tile loops outer to inner: index into "
             + ", ".join(f"{i}={o}" for i, o in enumerate(LOOP_ORDERS))),
            ("a_base", a, "byte address of A[0, 0]"), ("a_stride", a, "bytes between A rows"),
            ("w_base", a, "byte address of W[0, 0]"), ("w_stride", a, "bytes between W rows"),
            ("c_base", a, "byte address of C[0, 0]"), ("c_stride", a, "bytes between C rows"),
        )
        return tuple(Register(i, n, b, doc) for i, (n, b, doc) in enumerate(rows))

    def register_values(self, desc: Descriptor) -> list[tuple[int, int]]:
        """``(offset, value)`` writes that load ``desc`` (checked first)."""
        self.check(desc)
        out = []
        for reg in self.registers():
            value = getattr(desc, reg.name)
            out.append((reg.offset, LOOP_ORDERS.index(value) if reg.name == "loop_order"
                        else value))
        return out

    # -- descriptor checks ------------------------------------------------------------------

    def lines_needed(self, desc: Descriptor) -> dict[str, int]:
        """Lines of one bank-half each operand's tile takes (the layout of ``hw.tile``)."""
        out = {}
        for op, pad, rows, cols in (("A", self.a, desc.tile_m, desc.tile_k),
                                    ("W", self.w, desc.tile_k, desc.tile_n)):
            blocks = -(-rows // pad.block_rows) * -(-cols // pad.block_cols)
            out[op] = -(-blocks // pad.banks)  # spread over the banks (hw.tile)
        fr, fc = self.fold_block
        if self.weight_stationary:  # O lines are rows of the tile (no block padding in M)
            out["O"] = -(-desc.tile_n // fc) * desc.tile_m
        else:
            out["O"] = -(-desc.tile_m // fr) * -(-desc.tile_n // fc) * fr
        return out

    @property
    def weight_stationary(self) -> bool:
        return _weight_stationary(self.engine)

    @property
    def fold_block(self) -> tuple[int, int]:
        """The C block one fold computes (rows, cols); weight stationary, (1, cols) per
        streamed row."""
        u = self.engine.unrolling()
        return u.m or 1, u.n or 1

    @property
    def engine_block(self) -> tuple[int, int]:
        """The block the RTL's fold walks (rows, cols): weight stationary, the ``rows x cols``
        W block a fold holds (rows along K); else :attr:`fold_block`, the C block."""
        return engine_block(self.engine)

    @property
    def k_per_beat(self) -> int:
        """Reduction indices one engine beat carries (output-stationary engines)."""
        # by kind: importing hw.spec.cube here would load it for every architecture
        e: Any = self.engine
        return int(e.k) if e.kind == "cube" else 1

    def check(self, desc: Descriptor) -> None:
        """Raise :class:`SpecError` (one line naming the field and the fix) if the tile cannot
        run ``desc``."""
        top = (1 << self.dim_bits) - 1
        for dim in ("M", "N", "K"):
            v = getattr(desc, dim)
            if not isinstance(v, int) or not 1 <= v <= top:
                raise SpecError(f"descriptor.{dim}: must be 1..{top} (dim_bits "
                                f"{self.dim_bits}; got {v!r}); build the tile with more "
                                "dim_bits")
            t = getattr(desc, f"tile_{dim.lower()}")
            if not isinstance(t, int) or not 1 <= t <= v:
                raise SpecError(f"descriptor.tile_{dim.lower()}: must be 1..{dim}={v} "
                                f"(got {t!r})")
        if desc.loop_order not in LOOP_ORDERS:
            raise SpecError(f"descriptor.loop_order: must be one of {', '.join(LOOP_ORDERS)} "
                            f"(got {desc.loop_order!r})")
        need = self.lines_needed(desc)
        for op, pad in (("A", self.a), ("W", self.w), ("O", self.o)):
            if need[op] > pad.half_lines:
                raise SpecError(
                    f"descriptor.tile_*: the {op} tile takes {need[op]} lines of a "
                    f"{pad.half_lines}-line bank of {pad.level} ({pad.banks} bank(s), "
                    f"{pad.halves} half/halves); use smaller tiles or raise "
                    f"{pad.level}.capacity_bytes")
        rows = {"a": (desc.M, desc.K, "A"), "w": (desc.K, desc.N, "W"),
                "c": (desc.M, desc.N, "O")}
        for p, (r, c, op) in rows.items():
            base, stride = getattr(desc, f"{p}_base"), getattr(desc, f"{p}_stride")
            row_bytes = c * self.elem_bytes(op)
            if not isinstance(stride, int) or stride < row_bytes:
                raise SpecError(f"descriptor.{p}_stride: must be at least one row, {c} x "
                                f"{self.elem_bytes(op)} = {row_bytes} bytes (got {stride!r})")
            end = base + (r - 1) * stride + row_bytes if isinstance(base, int) else -1
            if not isinstance(base, int) or base < 0 or end > 1 << self.addr_bits:
                raise SpecError(f"descriptor.{p}_base: the matrix must lie in the "
                                f"{self.addr_bits}-bit address space (got base {base!r}, end "
                                f"{end}); build the tile with more addr_bits")
        for p in ("a", "w"):
            lo, hi = _span(desc, p, self), _span(desc, "c", self)
            if lo[0] < hi[1] and hi[0] < lo[1]:
                raise SpecError(f"descriptor.c_base: C ({hi[0]}..{hi[1]}) overlaps "
                                f"{p.upper()} ({lo[0]}..{lo[1]}); C is written while "
                                f"{p.upper()} is read, place it elsewhere")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (the manifest's ``tile`` entry)."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)
                               if f.name not in ("engine", "a", "w", "o", "architecture")}
        for op in ("a", "w", "o"):
            pad: Scratchpad = getattr(self, op)
            out[f"{op}_scratchpad"] = {
                "level": pad.level, "lanes": pad.lanes, "lane_bits": pad.lane_bits,
                "width_bits": pad.width_bits, "lines": pad.lines, "banks": pad.banks,
                "halves": pad.halves, "bank_lines": pad.bank_lines,
                "block_rows": pad.block_rows, "block_cols": pad.block_cols,
                "half_lines": pad.half_lines}
        out["elem_bytes"] = {op: self.elem_bytes(op) for op in ("A", "W", "O")}
        return out


def _span(desc: Descriptor, p: str, spec: TileSpec) -> tuple[int, int]:
    """The byte range ``[lo, hi)`` a matrix of ``desc`` spans."""
    r, c, op = {"a": (desc.M, desc.K, "A"), "w": (desc.K, desc.N, "W"),
                "c": (desc.M, desc.N, "O")}[p]
    base, stride = getattr(desc, f"{p}_base"), getattr(desc, f"{p}_stride")
    return base, base + (r - 1) * stride + c * spec.elem_bytes(op)


def _operand_level(arch: ArchSpec, op: str) -> LevelSpec:
    """The innermost level holding ``op``; refused when it is shared with another operand."""
    level = next(lv for lv in arch.tiers[0] if op in lv.holds)
    if len(level.holds) != 1:
        raise SpecError(f"memory.{level.name}.holds: the tile RTL builds one scratchpad per "
                        f"operand, this level holds {', '.join(level.holds)}; give each "
                        "operand its own level (a_buffer, w_buffer, o_buffer)")
    return level


def link_beat_bytes(arch: ArchSpec) -> int:
    """Bytes per beat of the tile's external port: the DRAM level's ``beat_bytes`` when it
    gives one (a power of two, at least its bytes per cycle and one accumulator), else the
    smallest power of two that carries the level's bytes per cycle and one accumulator.
    :class:`SpecError` names the field when the given beat cannot be built."""
    dram = arch.memory[-1]
    per_cycle = dram.bandwidth_bytes_per_cycle(arch.clock_mhz)
    acc = elem_bytes(arch.engine.acc_bits)
    derived = max(1 << max(0, math.ceil(per_cycle) - 1).bit_length(), acc)
    beat = dram.beat_bytes
    if beat is None:
        return derived
    if beat & (beat - 1) or beat < acc or beat < per_cycle:
        raise SpecError(f"memory.{dram.name}.beat_bytes: the tile's port moves a power of two "
                        f"of bytes a beat, at least one accumulator ({acc}) and the link's "
                        f"{per_cycle:g} bytes per cycle (got {beat}); set --set "
                        f"{dram.name}.beat_bytes={derived}")
    return beat


def port_arch(arch: ArchSpec) -> ArchSpec:
    """``arch`` as its tile runs it: the DRAM link moves a beat of the tile's port a cycle
    (``dram.beat_bytes``: :func:`link_beat_bytes`, the port's width when the architecture
    gives none), so the system model counts a tile row narrower than a beat as the port moves
    it, and the port's pipeline (``sim.timeline.PORT_PIPELINE``). ``tpe sim gemm`` on this
    architecture gives the figures ``tpe verify`` holds the tile to."""
    dram = arch.memory[-1]
    if dram.beat_bytes is not None:
        return arch
    link = replace(dram, beat_bytes=link_beat_bytes(arch))
    return replace(arch, memory=(*arch.memory[:-1], link))


def tile_spec(arch: ArchSpec, *, dim_bits: int = DIM_BITS, addr_bits: int = ADDR_BITS
              ) -> TileSpec:
    """The tile of ``arch`` (one core, an engine the tile RTL has, a buffer per operand in
    front of DRAM); raises :class:`SpecError` naming the field and the fix otherwise."""
    if arch.gpu is not None:
        raise SpecError(f"--arch: {arch.name} is a GPU; the tile RTL builds an engine "
                        "architecture (e.g. --arch systolic)")
    if arch.cores != 1:
        raise SpecError(f"cores: the tile RTL builds one core (got {arch.cores}); use a "
                        "one-core architecture or --set cores=1")
    e = arch.engine
    ws = _weight_stationary(e)
    shapes = line_blocks(e)
    if shapes is None:
        built = ", ".join(["systolic", "cube", *ROW_COLUMN_KINDS])
        raise SpecError(f"engine.kind: the tile RTL builds {built} engines so far (got "
                        f"{e.kind!r}); use one of those presets")
    if not 1 <= dim_bits <= 32:
        raise SpecError(f"dim_bits: must be 1..32 (got {dim_bits})")
    if not 8 <= addr_bits <= 64:
        raise SpecError(f"addr_bits: must be 8..64 (got {addr_bits})")
    if len(arch.tiers) != 2:
        between = arch.tiers[1][0].name
        raise SpecError(f"memory.{between}: the tile RTL connects its scratchpads straight to "
                        "the external port; a level between them and DRAM is not built yet")
    dram = arch.memory[-1]
    per_cycle = dram.bandwidth_bytes_per_cycle(arch.clock_mhz)
    ext_bytes = link_beat_bytes(arch)
    bits_of = {"A": e.a_bits, "W": e.w_bits, "O": e.acc_bits}
    fold_rows = e.unrolling().m or 1
    pads = {}
    for op, (block_rows, block_cols) in shapes.items():
        lanes, bits = block_rows * block_cols, bits_of[op]
        level = _operand_level(arch, op)
        assert level.width_bits is not None  # an innermost level is on chip
        if level.width_bits != lanes * bits:
            raise SpecError(f"memory.{level.name}.width_bits: a line of the tile's scratchpad "
                            f"is one engine beat of {op}, {lanes} x {bits} = {lanes * bits} "
                            f"bits (got {level.width_bits}); set --set "
                            f"{level.name}.width_bits={lanes * bits}")
        if op == "O" and level.ports < 2:
            raise SpecError(f"memory.{level.name}.ports: the output scratchpad accumulates "
                            "a line per cycle (a read and a write); set --set "
                            f"{level.name}.ports=2")
        # a beat of a matrix row that spans several lines' columns fills them in one cycle,
        # in that many banks (hw.tile), when it spans a whole number of them
        per_beat = ext_bytes // elem_bytes(bits)
        banks = (per_beat // block_cols if op != "O" and per_beat > block_cols
                 and per_beat % block_cols == 0 else 1)
        halves = 2 if level.double_buffered else 1
        lines = level.capacity_bytes * 8 // level.width_bits
        # one fold's operands: a line of A and of W (WS: rows of W) per beat, the fold's rows
        # of O (WS: a line per streamed row)
        per_fold = {"A": 1, "W": shapes["A"][1] if ws else 1,  # WS: the array's rows
                    "O": 1 if ws else fold_rows}[op]
        need = banks * halves * per_fold
        if lines < need:
            fix = -(-need * level.width_bits // 8)
            raise SpecError(f"memory.{level.name}.capacity_bytes: {level.capacity_bytes} bytes "
                            f"hold {lines} lines of {level.width_bits} bits, fewer than one "
                            f"fold's {op} needs ({need}: {banks} bank(s) x {halves} half/halves"
                            f"{f' x {per_fold} lines' if per_fold > 1 else ''}); set --set "
                            f"{level.name}.capacity_bytes={fix}")
        pads[op] = Scratchpad(level=level.name, operand=op, lanes=lanes, lane_bits=bits,
                              lines=lines, banks=banks, halves=halves, block_rows=block_rows,
                              block_cols=block_cols)
    return TileSpec(arch=arch.name, engine=e, clock_mhz=arch.clock_mhz, a=pads["A"],
                    w=pads["W"], o=pads["O"], ext_bytes=ext_bytes,
                    dram_bytes_per_cycle=per_cycle,
                    dram_latency_cycles=math.ceil(dram.latency_ns * arch.clock_mhz / 1e3),
                    dim_bits=dim_bits, addr_bits=addr_bits, architecture=port_arch(arch))
