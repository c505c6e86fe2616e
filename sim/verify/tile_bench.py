"""Run tiled GEMMs on the tile RTL (``hw.tile``) in ``amaranth.sim`` against an external memory
model, check C bit exact against numpy, and set the measured cycles beside the system model's.

The memory model (:class:`ExtMemory`) is the DRAM link of the architecture as the system
model sees it (``sim.memory``): one link of ``bytes_per_cycle`` shared by reads and writes,
each read answered no earlier than ``latency`` cycles after its request. Requests are
pipelined (any number outstanding, answered in order), so the latency of back-to-back
requests overlaps; a beat moves when the link has earned its bytes (a credit of
``bytes_per_cycle`` per cycle, at most a beat and a cycle's worth saved up, so a link that
streams moves ``bytes_per_cycle`` on average whatever its beat size); at most one read and
one write beat move per cycle, a read beat taking the link's credit first (posted writes
yield to reads, as a DRAM controller's write buffer drains when reads leave the bus idle);
writes are posted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
from amaranth.sim import Simulator

from hw.spec import ArchSpec, Descriptor, TileSpec
from hw.tile import Tile
from mapping import Candidates, Mapping
from models.ops import Gemm
from sim.verify.driver import log_uniform_dim

__all__ = [
    "LINK_LIMITED_BOUND",
    "SMALL_CUBE",
    "SMALL_TILE",
    "SMALL_TILES",
    "Agreement",
    "BenchCase",
    "ExtMemory",
    "LoadedGemm",
    "PlannedGemm",
    "TileRun",
    "bench_cases",
    "compare",
    "cycle_check",
    "cycle_table",
    "fit_mapping",
    "fit_tile",
    "ideal_link",
    "load_gemm",
    "model_cycles",
    "model_gemm",
    "oriented",
    "pack",
    "plan_gemm",
    "random_operands",
    "reference",
    "run_tile_gemm",
    "start_gemm",
    "tile_arch",
    "unpack",
]


#: A small tile of the ``systolic`` preset (``load_arch("systolic", SMALL_TILE + link)``): a
#: 4x4 INT8 array (32-bit A and W lines, a 128-bit accumulator line) with 512-byte A and W
#: scratchpads and a 1 KiB output one, double-buffered as in the preset: buffer tiles of at
#: most 256 A or W elements and 128 outputs, so GEMMs of a few dozen rows span several tiles
#: in every dimension and run in seconds on ``amaranth.sim`` (the demo, the agreement
#: benchmark).
SMALL_TILE = ["engine.rows=4", "engine.cols=4", "a_buffer.width_bits=32",
              "a_buffer.capacity_bytes=512", "w_buffer.width_bits=32",
              "w_buffer.capacity_bytes=512", "o_buffer.width_bits=128",
              "o_buffer.capacity_bytes=1024"]

#: The same for the ``cube`` preset (``load_arch("cube", SMALL_CUBE + link)``): a 4x4x2 INT8
#: cube (A lines of a 4x2 block, W lines of a 2x4 block, a 128-bit accumulator row) with the
#: scratchpads of :data:`SMALL_TILE`.
SMALL_CUBE = ["engine.m=4", "engine.n=4", "engine.k=2", "a_buffer.width_bits=64",
              "a_buffer.capacity_bytes=512", "w_buffer.width_bits=64",
              "w_buffer.capacity_bytes=512", "o_buffer.width_bits=128",
              "o_buffer.capacity_bytes=1024"]

#: The small tile of each preset the tile RTL builds (the 2D matrix takes the systolic
#: array's keys: a 4x4 grid with the same lines).
SMALL_TILES = {"systolic": SMALL_TILE, "cube": SMALL_CUBE, "matrix2d": SMALL_TILE}


def reference(A: np.ndarray, W: np.ndarray, acc_bits: int, signed: bool) -> np.ndarray:
    """``A @ W`` wrapped at ``acc_bits`` like the accumulators (two's complement if signed)."""
    C = (A.astype(object) @ W.astype(object)) % (1 << acc_bits)
    if signed:
        C = np.where(C >= 1 << (acc_bits - 1), C - (1 << acc_bits), C)
    return C.astype(np.int64)


def pack(X: np.ndarray, ebytes: int, stride: int) -> bytes:
    """Row-major bytes of ``X`` at ``ebytes`` per element (little endian, two's complement),
    ``stride`` bytes between rows (the gap is filled with 0xA5, which no check may read)."""
    rows, cols = X.shape
    out = bytearray(b"\xa5" * ((rows - 1) * stride + cols * ebytes))
    mask = (1 << (8 * ebytes)) - 1
    for r in range(rows):
        for c in range(cols):
            v = int(X[r, c]) & mask
            at = r * stride + c * ebytes
            out[at:at + ebytes] = v.to_bytes(ebytes, "little")
    return bytes(out)


def unpack(buf: bytes | bytearray, rows: int, cols: int, ebytes: int, stride: int, bits: int,
           signed: bool) -> np.ndarray:
    """The inverse of :func:`pack`, reading the low ``bits`` of each element."""
    X = np.zeros((rows, cols), dtype=np.int64)
    for r in range(rows):
        for c in range(cols):
            at = r * stride + c * ebytes
            v = int.from_bytes(buf[at:at + ebytes], "little") & ((1 << bits) - 1)
            if signed and v >= 1 << (bits - 1):
                v -= 1 << bits
            X[r, c] = v
    return X


@dataclass
class ExtMemory:
    """A byte-addressed memory behind one link (see the module docstring)."""

    size: int
    ext_bytes: int
    bytes_per_cycle: Fraction
    latency: int
    mem: bytearray = field(init=False)
    reads: list = field(default_factory=list)  # [ready cycle, addr, len, next byte]
    writes: list = field(default_factory=list)  # [addr, len, next byte]
    credit: Fraction = Fraction(0)
    read_bytes: int = 0
    write_bytes: int = 0
    #: Every read request in the order it came: (cycle, addr, len).
    read_requests: list = field(default_factory=list)
    #: What :meth:`drive` offered this cycle: (read request, its beat's bytes, write request,
    #: its beat's bytes), the requests None where no beat was offered.
    _driven: tuple = field(default=(None, 0, None, 0), repr=False)

    def __post_init__(self) -> None:
        self.mem = bytearray(self.size)

    def _beat(self, req: list) -> tuple[int, int]:
        """``(bytes, payload)`` of the next beat of a request ``[.., addr, len, done]``."""
        addr, length, done = req[-3:]
        n = min(self.ext_bytes, length - done)
        chunk = bytes(self.mem[addr + done: addr + done + n])
        return n, int.from_bytes(chunk, "little")

    def _check(self, addr: int, length: int, what: str) -> None:
        if addr < 0 or addr + length > self.size or length < 1:
            raise AssertionError(f"{what} request out of range: addr {addr}, len {length}")

    def drive(self, cycle: int) -> dict[str, int]:
        """Start cycle ``cycle``: earn the link's credit and return what the responder drives
        (``rd_req.ready``, ``wr_req.ready``, ``rd_data.valid``, ``rd_data.data``,
        ``wr_data.ready``, keyed by those names). :meth:`update` then takes what the tile
        drove in the same cycle; the two are free of any simulator, so the amaranth.sim and
        the cocotb benches share them."""
        # a token bucket one beat and one cycle deep: a link streaming at its rate never
        # loses credit to a beat boundary (3.26 bytes per cycle moves 4-byte beats on 81.5%
        # of cycles, not every other one), and an idle one saves up no more than a beat
        self.credit = min(self.credit + self.bytes_per_cycle,
                          self.ext_bytes + self.bytes_per_cycle)
        rd = self.reads[0] if self.reads and self.reads[0][0] <= cycle else None
        rd_n, rd_payload = self._beat(rd) if rd else (0, 0)
        rd_valid = rd is not None and self.credit >= rd_n
        credit = self.credit - (rd_n if rd_valid else 0)
        wr = self.writes[0] if self.writes else None
        wr_n = min(self.ext_bytes, wr[1] - wr[2]) if wr else 0
        wr_ready = wr is not None and credit >= wr_n
        self._driven = (rd if rd_valid else None, rd_n, wr if wr_ready else None, wr_n)
        return {"rd_req.ready": 1, "wr_req.ready": 1, "rd_data.valid": int(rd_valid),
                "rd_data.data": rd_payload, "wr_data.ready": int(wr_ready)}

    def update(self, cycle: int, sampled: dict[str, int]) -> bool:
        """End cycle ``cycle`` with what the tile drove (``rd_data.ready``,
        ``wr_data.valid``, ``wr_data.data``, ``rd_req.valid``, ``rd_req.addr``,
        ``rd_req.len``, ``wr_req.valid``, ``wr_req.addr``, ``wr_req.len``): move the beats
        that transferred, queue new requests. True when a write beat transferred."""
        rd, rd_n, wr, wr_n = self._driven
        wrote = False
        if rd is not None and sampled["rd_data.ready"]:
            self.credit -= rd_n
            self.read_bytes += rd_n
            rd[3] += rd_n
            if rd[3] == rd[2]:
                self.reads.pop(0)
        if wr is not None and sampled["wr_data.valid"]:
            addr, length, done = wr
            self.mem[addr + done: addr + done + wr_n] = sampled["wr_data.data"].to_bytes(
                self.ext_bytes, "little")[:wr_n]
            self.credit -= wr_n
            self.write_bytes += wr_n
            wr[2] += wr_n
            if wr[2] == wr[1]:
                self.writes.pop(0)
            wrote = True
        if sampled["rd_req.valid"]:
            addr, length = sampled["rd_req.addr"], sampled["rd_req.len"]
            self._check(addr, length, "read")
            self.reads.append([cycle + self.latency, addr, length, 0])
            self.read_requests.append((cycle, addr, length))
        if sampled["wr_req.valid"]:
            addr, length = sampled["wr_req.addr"], sampled["wr_req.len"]
            self._check(addr, length, "write")
            self.writes.append([addr, length, 0])
        return wrote

    def clock(self, ctx, dut: Tile, cycle: int) -> int | None:
        """One cycle on ``amaranth.sim``: drive the responder's side, sample the tile's,
        update. Returns the cycle when a write beat transferred (else None)."""
        for name, value in self.drive(cycle).items():
            stream, _, member = name.partition(".")
            port = getattr(dut, stream)
            ctx.set(port.payload.data if member == "data" else getattr(port, member), value)
        sampled = {"rd_data.ready": ctx.get(dut.rd_data.ready),
                   "wr_data.valid": ctx.get(dut.wr_data.valid),
                   "wr_data.data": ctx.get(dut.wr_data.payload.data)}
        for stream in ("rd_req", "wr_req"):
            port = getattr(dut, stream)
            sampled[f"{stream}.valid"] = ctx.get(port.valid)
            sampled[f"{stream}.addr"] = ctx.get(port.payload.addr)
            sampled[f"{stream}.len"] = ctx.get(port.payload.len)
        return cycle if self.update(cycle, sampled) else None


@dataclass(frozen=True)
class TileRun:
    """One GEMM on the tile: the result, the measured cycles, the link's bytes and the read
    requests in the order they came ((cycle, addr, len))."""

    C: np.ndarray
    cycles: int
    read_bytes: int
    write_bytes: int
    read_requests: tuple[tuple[int, int, int], ...] = ()


def _layout(spec: TileSpec, M: int, N: int, K: int, gap: int) -> dict[str, int]:
    """Base addresses and strides of A, W, C placed one after the other, each row padded by
    ``gap`` bytes and each base offset by ``gap`` (unaligned when ``gap`` is odd)."""
    ea, ew, eo = (spec.elem_bytes(op) for op in ("A", "W", "O"))
    out = {"a_base": gap, "a_stride": K * ea + gap}
    out["w_base"] = out["a_base"] + M * out["a_stride"] + gap
    out["w_stride"] = N * ew + gap
    out["c_base"] = out["w_base"] + K * out["w_stride"] + gap
    out["c_stride"] = N * eo + gap
    out["size"] = out["c_base"] + M * out["c_stride"] + spec.ext_bytes
    return out


@dataclass(frozen=True)
class LoadedGemm:
    """A GEMM ready to run: the descriptor's register writes, the memory holding A and W at
    the descriptor's addresses, and the layout (bases, strides) to read C back from."""

    writes: list[tuple[int, int]]
    mem: ExtMemory
    layout: dict[str, int]
    M: int
    N: int

    def result(self, spec: TileSpec) -> np.ndarray:
        """C as the tile wrote it (the low ``acc_bits`` of each element)."""
        e = spec.engine
        return unpack(self.mem.mem[self.layout["c_base"]:], self.M, self.N,
                      spec.elem_bytes("O"), self.layout["c_stride"], e.acc_bits, e.signed)


def load_gemm(
    spec: TileSpec, A: np.ndarray, W: np.ndarray, *, tile: tuple[int, int, int],
    loop_order: str, gap: int = 3, bytes_per_cycle: Fraction | None = None,
    latency: int | None = None,
) -> LoadedGemm:
    """Place ``A`` and ``W`` in a fresh :class:`ExtMemory` (the link of ``spec`` unless
    ``bytes_per_cycle``/``latency`` are given) and describe ``A @ W`` with buffer tiles
    ``tile`` = (tile_m, tile_n, tile_k) in ``loop_order`` (the descriptor is checked:
    :class:`hw.spec.SpecError` names a field the tile cannot run)."""
    M, K = A.shape
    N = W.shape[1]
    lay = _layout(spec, M, N, K, gap)
    desc = Descriptor(M=M, N=N, K=K, tile_m=tile[0], tile_n=tile[1], tile_k=tile[2],
                      loop_order=loop_order,
                      **{k: v for k, v in lay.items() if k != "size"})
    writes = spec.register_values(desc)
    bpc = (Fraction(spec.dram_bytes_per_cycle).limit_denominator(1 << 20)
           if bytes_per_cycle is None else bytes_per_cycle)
    mem = ExtMemory(size=lay["size"], ext_bytes=spec.ext_bytes, bytes_per_cycle=bpc,
                    latency=spec.dram_latency_cycles if latency is None else latency)
    for name, X, op in (("a", A, "A"), ("w", W, "W")):
        data = pack(X, spec.elem_bytes(op), lay[f"{name}_stride"])
        mem.mem[lay[f"{name}_base"]:lay[f"{name}_base"] + len(data)] = data
    return LoadedGemm(writes=writes, mem=mem, layout=lay, M=M, N=N)


async def start_gemm(ctx, dut: Tile, job: LoadedGemm) -> None:
    """On ``amaranth.sim``: write ``job``'s descriptor registers into ``dut`` and pulse
    ``start``; returns on the start edge."""
    for offset, value in job.writes:
        ctx.set(dut.cfg_we, 1)
        ctx.set(dut.cfg_addr, offset)
        ctx.set(dut.cfg_data, value)
        await ctx.tick()
    ctx.set(dut.cfg_we, 0)
    ctx.set(dut.start, 1)
    await ctx.tick()
    ctx.set(dut.start, 0)


def run_tile_gemm(
    spec: TileSpec, A: np.ndarray, W: np.ndarray, *, tile: tuple[int, int, int],
    loop_order: str, gap: int = 3, max_cycles: int = 2_000_000,
    bytes_per_cycle: Fraction | None = None, latency: int | None = None,
) -> TileRun:
    """Run ``A @ W`` on a fresh tile in ``amaranth.sim`` (:func:`load_gemm` says what the
    arguments mean); the cycles count from the start edge to the last C write."""
    job = load_gemm(spec, A, W, tile=tile, loop_order=loop_order, gap=gap,
                    bytes_per_cycle=bytes_per_cycle, latency=latency)
    mem = job.mem
    dut = Tile(spec)
    timing: dict[str, int] = {}

    async def bench(ctx):
        await start_gemm(ctx, dut, job)
        cycle = 1  # cycles since the start edge
        last_write = 0
        while not ctx.get(dut.done):
            if cycle > max_cycles:
                raise AssertionError(f"tile not done after {max_cycles} cycles")
            wrote = mem.clock(ctx, dut, cycle)
            if wrote is not None:
                last_write = wrote
            await ctx.tick()
            cycle += 1
        timing["cycles"] = last_write

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return TileRun(C=job.result(spec), cycles=timing["cycles"], read_bytes=mem.read_bytes,
                   write_bytes=mem.write_bytes, read_requests=tuple(mem.read_requests))


def model_cycles(arch: ArchSpec, M: int, N: int, K: int,
                 mapping: Mapping | None = None) -> tuple[int, Mapping]:
    """The system model's cycles of the GEMM on the tile of ``arch`` (``tpe sim gemm``'s
    figure, the tile's port the link's beat: :func:`tile_arch`) and its mapping: the mapping
    it chooses, or the one given."""
    from sim.gemm import mapping_cost, simulate_gemm

    arch = tile_arch(arch)
    gemm = model_gemm(arch, M, N, K)
    if mapping is None:
        res = simulate_gemm(arch, gemm)
        return res.cycles, res.mapping
    return mapping_cost(arch, gemm, mapping)[0], mapping


def tile_arch(arch: ArchSpec) -> ArchSpec:
    """``arch`` as its tile runs it (:func:`hw.spec.tile.port_arch`: the DRAM link given the
    tile's port as its beat, ``dram.beat_bytes``), the architecture the model's figures are
    computed on (the tile's manifest carries it)."""
    from hw.spec.tile import port_arch

    return port_arch(arch)


def model_gemm(arch: ArchSpec, M: int, N: int, K: int) -> Gemm:
    """The GEMM the tile runs, as the system model sees it: operands in the engine's formats,
    the output at the accumulator width (the tile writes C at ``acc_bits``)."""
    e = arch.engine
    kind = "int" if e.signed else "uint"
    return Gemm(name="gemm", M=M, N=N, K=K, a_fmt=f"{kind}{e.a_bits}",
                w_fmt=f"{kind}{e.w_bits}", o_fmt=f"int{e.acc_bits}")


def fit_tile(spec: TileSpec, tile: tuple[int, int, int], M: int, N: int, K: int
             ) -> tuple[int, int, int]:
    """``tile`` = (tile_m, tile_n, tile_k) if it fits the tile's scratchpad lines, else the
    nearest that does: ``tile_m`` and ``tile_n`` down to whole engine blocks (at least one),
    then ``tile_k`` down until it fits. :class:`hw.spec.SpecError` if none does."""
    from hw.spec import SpecError

    dm, dn, _ = _block_units(spec)
    desc = dict(M=M, N=N, K=K, loop_order="mnk", a_base=0, a_stride=K, w_base=0, w_stride=N,
                c_base=0, c_stride=N)

    def fits(tm: int, tn: int, tk: int) -> bool:
        need = spec.lines_needed(Descriptor(tile_m=tm, tile_n=tn, tile_k=tk, **desc))
        return all(need[op] <= pad.half_lines
                   for op, pad in (("A", spec.a), ("W", spec.w), ("O", spec.o)))

    tm, tn, tk = tile
    if fits(tm, tn, tk):
        return tile
    tm = min(M, max(dm, tm // dm * dm))
    tn = min(N, max(dn, tn // dn * dn))
    while tk > 1 and not fits(tm, tn, tk):
        tk -= 1
    if not fits(tm, tn, tk):
        raise SpecError(f"mapping {tile[0]}x{tile[1]}x{tile[2]}: no refit fits the "
                        "tile's scratchpads; raise their capacity_bytes")
    return tm, tn, tk


def _block_units(spec: TileSpec) -> tuple[int, int, int]:
    """The engine's block along M, N, K: its spatial unrolling, a streamed dimension taking
    the block along M for K (and the largest block for M)."""
    u = spec.engine.unrolling()
    unit = max(x for x in (u.m, u.n, u.k) if x)
    return u.m or unit, u.n or unit, u.k or u.m or unit


def fit_mapping(spec: TileSpec, mp: Mapping, M: int, N: int, K: int) -> Mapping:
    """``mp`` if its tiles fit the tile's scratchpad lines, else the nearest mapping that does
    (:func:`fit_tile`).

    The system model sizes a buffer tile in elements (``tile_k * tile_n`` W elements in a
    half of ``w_buffer``), the tile RTL in lines of one engine beat: a partial engine block
    still takes whole lines, so a mapping the model accepts may not fit."""
    import dataclasses

    tile = (mp.tile_m, mp.tile_n, mp.tile_k)
    fit = fit_tile(spec, tile, M, N, K)
    if fit == tile:
        return mp
    return dataclasses.replace(mp, tile_m=fit[0], tile_n=fit[1], tile_k=fit[2])


@dataclass(frozen=True)
class PlannedGemm:
    """The mapping a GEMM runs with on the tile and the system model's figures for it."""

    mapping: Mapping
    #: The model's cycles and DRAM bytes of ``mapping``.
    model_cycles: int
    model_dram_bytes: int
    #: False when the model chose ``mapping`` itself; True when its choice did not fit the
    #: scratchpad lines and :func:`fit_mapping` refit it, or the tile was given.
    refit: bool
    #: The model runs the GEMM transposed (``C^T = W^T A^T``: ``mapping`` tiles the N x M
    #: GEMM): the tile is given ``W^T`` as A and ``A^T`` as W (:func:`oriented`).
    transposed: bool = False


def oriented(transposed: bool, A: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The operands the tile runs: ``(A, W)``, or ``(W^T, A^T)`` for a transposed GEMM (the
    tile then writes ``C^T``)."""
    return (W.T, A.T) if transposed else (A, W)


def plan_gemm(arch: ArchSpec, spec: TileSpec, M: int, N: int, K: int,
              tile: tuple[int, int, int] | None = None, loop_order: str | None = None
              ) -> PlannedGemm:
    """The mapping the system model chooses for ``M x N x K`` on ``arch`` (``tpe sim gemm``'s:
    :func:`sim.system.simulate_op`, either orientation), refit to the tile's scratchpads when
    it does not fit, or buffer tile ``tile`` in ``loop_order`` when given; with the model's
    cycles and DRAM bytes for the mapping that runs."""
    from sim.gemm import mapping_cost
    from sim.system import simulate_op

    arch = tile_arch(arch)
    gemm = model_gemm(arch, M, N, K)
    if tile is None or loop_order is None:
        model = simulate_op(arch, gemm)
        transposed = bool(model.mapping["transposed"])
        assert model.core is not None  # an engine architecture: the core's GEMM result
        if transposed:
            gemm = model_gemm(arch, N, M, K)
            M, N = N, M
        mp = fit_mapping(spec, model.core.mapping, M, N, K)
        if mp is model.core.mapping:
            return PlannedGemm(mp, model.cycles, model.dram_bytes, refit=False,
                               transposed=transposed)
        mp = Candidates.from_mapping(mp, M, N, K).mapping(0, arch)
    else:
        transposed = False
        mp = Candidates.single(M, N, K, tile, loop_order).mapping(0, arch)
    cycles, dram_bytes = mapping_cost(arch, gemm, mp)
    return PlannedGemm(mp, cycles, dram_bytes, refit=True, transposed=transposed)


def random_operands(spec: TileSpec, rng: np.random.Generator, M: int, N: int, K: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Uniform random A (M x K) and W (K x N) over the engine's operand ranges."""
    e = spec.engine
    lo = -(1 << (e.a_bits - 1)) if e.signed else 0
    A = rng.integers(lo, lo + (1 << e.a_bits), (M, K))
    lo = -(1 << (e.w_bits - 1)) if e.signed else 0
    W = rng.integers(lo, lo + (1 << e.w_bits), (K, N))
    return A, W


@dataclass(frozen=True)
class BenchCase:
    """One GEMM of a bench run: its shape, the mapping it runs with (loop order and buffer
    tile), the byte gap between rows and matrices, and the model's cycles for the mapping."""

    label: str
    M: int
    N: int
    K: int
    tile: tuple[int, int, int]
    loop_order: str
    gap: int
    model_cycles: int
    #: Engine folds of the mapping (the model's count: one per engine block per K tile).
    folds: int
    #: The mapping is the one the system model picks for the GEMM (refit to the scratchpad
    #: lines if need be), not a random buffer tile: its cycles are held to the model's
    #: (:func:`cycle_check`).
    model_mapping: bool = False
    #: The model runs it transposed (:attr:`PlannedGemm.transposed`): ``tile`` and
    #: ``loop_order`` tile the N x M GEMM the tile runs on :func:`oriented` operands.
    transposed: bool = False


def bench_cases(arch: ArchSpec, spec: TileSpec, rng: np.random.Generator, *, model: int = 3,
                chosen: int = 2, max_dim: int | None = None) -> list[BenchCase]:
    """Random GEMMs for a bench: ``model`` with the mapping the system model chooses (refit
    when it does not fit the lines; dimensions from one engine block plus one to six blocks
    plus one), then ``chosen`` with a random buffer tile of at most half of each dimension
    (two tiles or more along each, the last often partial; refit to the scratchpads) in the
    loop orders in turn (dimensions up to three blocks plus one). With ``max_dim``, every
    dimension is log-uniform in ``1..max_dim`` instead (``2..`` for the chosen tiles). The
    gaps between rows and matrices are odd or even (unaligned bases and strides)."""
    import mapping as mapping_mod

    dm, dn, dk = _block_units(spec)
    out = []
    for i in range(model + chosen):
        blocks = 6 if i < model else 3  # the model splits a dimension only when it must
        if max_dim is not None:
            lo = 1 if i < model else 2
            M, N, K = (max(lo, log_uniform_dim(rng, max_dim)) for _ in range(3))
        else:
            M = int(rng.integers(dm + 1, blocks * dm + 2))
            N = int(rng.integers(dn + 1, blocks * dn + 2))
            K = int(rng.integers(dk + 1, blocks * max(dm, dn) + 2))
        if i < model:
            plan = plan_gemm(arch, spec, M, N, K)
            label = (f"model mapping{' (refit)' if plan.refit else ''}"
                     f"{' (C^T)' if plan.transposed else ''}")
        else:
            dims = mapping_mod.LOOP_ORDERS[(i - model) % len(mapping_mod.LOOP_ORDERS)]
            # at most half of each dimension: two tiles or more along every one
            tm, tn, tk = (int(rng.integers(1, -(-d // 2) + 1)) for d in (M, N, K))
            tile = fit_tile(spec, (tm, tn, tk), M, N, K)
            plan = plan_gemm(arch, spec, M, N, K, tile, "".join(dims))
            label = "random tile"
        mp = plan.mapping
        order = "".join(mp.loop_order)
        out.append(BenchCase(label=f"{label} {mp.tile_m}x{mp.tile_n}x{mp.tile_k} {order}",
                             M=M, N=N, K=K, tile=(mp.tile_m, mp.tile_n, mp.tile_k),
                             loop_order=order, gap=int(rng.integers(0, 5)),
                             model_cycles=plan.model_cycles, folds=mp.folds,
                             model_mapping=i < model, transposed=plan.transposed))
    return out


#: How far a tile GEMM's measured cycles may be from the system model's when the link limits
#: (issue 11's acceptance; ``docs/tile.md`` has the benchmark against it). With an ideal link
#: (:func:`ideal_link`) they must be equal.
LINK_LIMITED_BOUND = 0.02


def ideal_link(spec: TileSpec) -> bool:
    """The link never holds the port back: no latency and at least a whole beat of the port
    a cycle, so the tile's transfers take the port's beats and pipeline, nothing else."""
    return spec.dram_latency_cycles == 0 and spec.dram_bytes_per_cycle >= spec.ext_bytes


def cycle_check(spec: TileSpec, case: BenchCase, measured: int) -> dict[str, Any]:
    """The cycle verdict of one bench GEMM: ``cycles_checked``, ``cycle_error``
    ((measured - model) / model), ``cycle_bound`` (the largest ``|cycle_error|`` allowed,
    ``None`` when not checked), ``cycle_bound_why`` and ``problem`` (``None`` or why it
    fails). A GEMM on the mapping the model picks is held to the model's figure: equal with
    an ideal link, within :data:`LINK_LIMITED_BOUND` when the link limits; a random buffer
    tile (one the model does not choose: it exercises partial tiles and loop orders) is
    reported only."""
    model = case.model_cycles
    error = (measured - model) / model if model else float("inf")
    if not case.model_mapping:
        bound, why = None, "random buffer tile: not the model's mapping, reported only"
    elif ideal_link(spec):
        bound, why = 0.0, "ideal link: no latency, a beat a cycle"
    else:
        bound, why = LINK_LIMITED_BOUND, (
            f"link-limited: {spec.dram_bytes_per_cycle:g} bytes/cycle, "
            f"{spec.dram_latency_cycles} cycles latency")
    problem = None
    if bound is not None and abs(measured - model) > bound * model:
        problem = (f"cycles: measured {measured}, model {model} ({error:+.2%}), beyond the "
                   f"bound of {bound:.0%} ({why})")
    return {"cycles_checked": bound is not None, "cycle_error": round(error, 6),
            "cycle_bound": bound, "cycle_bound_why": why, "problem": problem}


@dataclass(frozen=True)
class Agreement:
    """One GEMM run on the tile with the mapping the system model picks (refit to the
    scratchpad lines when it does not fit), C checked bit exact, beside the model's figures for
    that mapping (:func:`compare`)."""

    M: int
    N: int
    K: int
    mapping: Mapping
    #: The model's choice did not fit the scratchpad lines: :func:`fit_mapping` refit it.
    refit: bool
    measured_cycles: int
    model_cycles: int
    #: Bytes the tile moved over its port (read + written), and the model's DRAM bytes.
    moved_bytes: int
    model_bytes: int
    #: The model runs the GEMM transposed: ``mapping`` tiles ``C^T`` (N x M).
    transposed: bool = False

    @property
    def error(self) -> float:
        """``(measured - model) / model``: above 0, the tile is slower than the model."""
        return (self.measured_cycles - self.model_cycles) / self.model_cycles


def compare(arch: ArchSpec, M: int, N: int, K: int, rng: np.random.Generator) -> Agreement:
    """Run ``M x N x K`` (random operands from ``rng``) on the tile of ``arch`` with the
    mapping the system model picks (:func:`plan_gemm`); ``AssertionError`` if C differs from
    numpy."""
    from hw.spec import tile_spec

    spec = tile_spec(arch)
    e = arch.engine
    plan = plan_gemm(arch, spec, M, N, K)
    mp = plan.mapping
    A, W = random_operands(spec, rng, M, N, K)
    run = run_tile_gemm(spec, *oriented(plan.transposed, A, W),
                        tile=(mp.tile_m, mp.tile_n, mp.tile_k),
                        loop_order="".join(mp.loop_order))
    C = run.C.T if plan.transposed else run.C
    if not np.array_equal(C, reference(A, W, e.acc_bits, e.signed)):
        raise AssertionError(f"{M}x{N}x{K}: C differs from numpy")
    return Agreement(M=M, N=N, K=K, mapping=mp, refit=plan.refit, measured_cycles=run.cycles,
                     model_cycles=plan.model_cycles,
                     moved_bytes=run.read_bytes + run.write_bytes,
                     model_bytes=plan.model_dram_bytes, transposed=plan.transposed)


def cycle_table(arch: ArchSpec, shapes: list[tuple[int, int, int]], seed: int = 1) -> str:
    """Run each ``(M, N, K)`` with the mapping the system model picks on the tile of ``arch``
    (:func:`compare`) and tabulate measured against model cycles."""
    rng = np.random.default_rng(seed)
    lines = [f"{'M x N x K':>12} {'tile':>10} {'order':>5} {'measured':>9} {'model':>7} "
             f"{'gap':>6} {'DRAM bytes (tile/model)':>24}"]
    for M, N, K in shapes:
        r = compare(arch, M, N, K, rng)
        mp = r.mapping
        tile = f"{mp.tile_m}x{mp.tile_n}x{mp.tile_k}{'*' if r.refit else ''}"
        lines.append(f"{f'{M}x{N}x{K}':>12} {tile:>10} "
                     f"{''.join(mp.loop_order):>5} {r.measured_cycles:>9} {r.model_cycles:>7} "
                     f"{r.error:>+6.0%} "
                     f"{f'{r.moved_bytes}/{r.model_bytes}':>24}")
    if any("*" in line for line in lines):
        lines.append("* the model's mapping does not fit the scratchpad lines: refit by "
                     "fit_mapping, model figures for the refit mapping")
    return "\n".join(lines)
