"""Run tiled GEMMs on the tile RTL (``hw.tile``) in ``amaranth.sim`` against an external memory
model, check C bit exact against numpy, and set the measured cycles beside the system model's.

The memory model (:class:`ExtMemory`) is the DRAM link of the architecture as the system
model sees it (``sim.memory``): one link of ``bytes_per_cycle`` shared by reads and writes,
each read answered no earlier than ``latency`` cycles after its request. Requests are
pipelined (any number outstanding, answered in order), so the latency of back-to-back
requests overlaps; a beat moves when the link has earned its bytes (a credit of
``bytes_per_cycle`` per cycle, at most one beat's worth saved up); writes are posted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from amaranth.sim import Simulator

from hw.spec import ArchSpec, Descriptor, TileSpec
from hw.tile import Tile
from mapping import Candidates, Mapping
from models.ops import Gemm

__all__ = ["ExtMemory", "TileRun", "cycle_table", "fit_mapping", "model_cycles", "model_gemm",
           "pack", "reference", "run_tile_gemm", "unpack"]


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

    def clock(self, ctx, dut: Tile, cycle: int) -> int | None:
        """One cycle: drive the responder's side, sample the tile's, update. Returns the
        cycle when a write beat transferred (else None)."""
        self.credit = min(self.credit + self.bytes_per_cycle,
                          max(Fraction(self.ext_bytes), self.bytes_per_cycle))
        ctx.set(dut.rd_req.ready, 1)
        ctx.set(dut.wr_req.ready, 1)
        rd = self.reads[0] if self.reads and self.reads[0][0] <= cycle else None
        rd_n, rd_payload = self._beat(rd) if rd else (0, 0)
        rd_valid = rd is not None and self.credit >= rd_n
        ctx.set(dut.rd_data.valid, rd_valid)
        ctx.set(dut.rd_data.payload.data, rd_payload)
        credit = self.credit - (rd_n if rd_valid else 0)
        wr = self.writes[0] if self.writes else None
        wr_n = min(self.ext_bytes, wr[1] - wr[2]) if wr else 0
        wr_ready = wr is not None and credit >= wr_n
        ctx.set(dut.wr_data.ready, wr_ready)
        # sample
        wrote = None
        if rd_valid and ctx.get(dut.rd_data.ready):
            self.credit -= rd_n
            self.read_bytes += rd_n
            rd[3] += rd_n
            if rd[3] == rd[2]:
                self.reads.pop(0)
        if wr_ready and ctx.get(dut.wr_data.valid):
            data = ctx.get(dut.wr_data.payload.data)
            addr, length, done = wr
            self.mem[addr + done: addr + done + wr_n] = data.to_bytes(self.ext_bytes,
                                                                      "little")[:wr_n]
            self.credit -= wr_n
            self.write_bytes += wr_n
            wr[2] += wr_n
            if wr[2] == wr[1]:
                self.writes.pop(0)
            wrote = cycle
        if ctx.get(dut.rd_req.valid):
            addr, length = ctx.get(dut.rd_req.payload.addr), ctx.get(dut.rd_req.payload.len)
            self._check(addr, length, "read")
            self.reads.append([cycle + self.latency, addr, length, 0])
        if ctx.get(dut.wr_req.valid):
            addr, length = ctx.get(dut.wr_req.payload.addr), ctx.get(dut.wr_req.payload.len)
            self._check(addr, length, "write")
            self.writes.append([addr, length, 0])
        return wrote


@dataclass(frozen=True)
class TileRun:
    """One GEMM on the tile: the result, the measured cycles and the link's bytes."""

    C: np.ndarray
    cycles: int
    read_bytes: int
    write_bytes: int


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


def run_tile_gemm(
    spec: TileSpec, A: np.ndarray, W: np.ndarray, *, tile: tuple[int, int, int],
    loop_order: str, gap: int = 3, max_cycles: int = 2_000_000,
    bytes_per_cycle: Fraction | None = None, latency: int | None = None,
) -> TileRun:
    """Run ``A @ W`` on a fresh tile with buffer tiles ``tile`` = (tile_m, tile_n, tile_k) in
    ``loop_order``; the link of ``spec`` unless ``bytes_per_cycle``/``latency`` are given."""
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
    dut = Tile(spec)
    timing: dict[str, int] = {}

    async def bench(ctx):
        for offset, value in writes:
            ctx.set(dut.cfg_we, 1)
            ctx.set(dut.cfg_addr, offset)
            ctx.set(dut.cfg_data, value)
            await ctx.tick()
        ctx.set(dut.cfg_we, 0)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
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
    e = spec.engine
    C = unpack(mem.mem[lay["c_base"]:], M, N, spec.elem_bytes("O"), lay["c_stride"],
               e.acc_bits, e.signed)
    return TileRun(C=C, cycles=timing["cycles"], read_bytes=mem.read_bytes,
                   write_bytes=mem.write_bytes)


def model_cycles(arch: ArchSpec, M: int, N: int, K: int,
                 mapping: Mapping | None = None) -> tuple[int, Mapping]:
    """The system model's cycles of the GEMM on ``arch`` (``tpe sim gemm``'s figure) and its
    mapping: the mapping it chooses, or the one given."""
    from sim.gemm import gemm_cost, simulate_gemm

    gemm = model_gemm(arch, M, N, K)
    if mapping is None:
        res = simulate_gemm(arch, gemm)
        return res.cycles, res.mapping
    cost = gemm_cost(gemm, arch, Candidates.from_mapping(mapping, M, N, K))
    return int(np.ceil(np.asarray(cost.cycles).reshape(-1)[0])), mapping


def model_gemm(arch: ArchSpec, M: int, N: int, K: int) -> Gemm:
    """The GEMM the tile runs, as the system model sees it: operands in the engine's formats,
    the output at the accumulator width (the tile writes C at ``acc_bits``)."""
    e = arch.engine
    kind = "int" if e.signed else "uint"
    return Gemm(name="gemm", M=M, N=N, K=K, a_fmt=f"{kind}{e.a_bits}",
                w_fmt=f"{kind}{e.w_bits}", o_fmt=f"int{e.acc_bits}")


def fit_mapping(spec: TileSpec, mp: Mapping, M: int, N: int, K: int) -> Mapping:
    """``mp`` if its tiles fit the tile's scratchpad lines, else the nearest mapping that does.

    The system model sizes a buffer tile in elements (``tile_k * tile_n`` W elements in a
    half of ``w_buffer``), the tile RTL in lines of one engine beat: a partial engine block
    still takes whole lines, so a mapping the model accepts may not fit. Refit: ``tile_m`` and
    ``tile_n`` down to whole engine blocks (at least one), then ``tile_k`` down until it
    fits."""
    import dataclasses

    from hw.spec import SpecError

    e = spec.engine
    desc = dict(M=M, N=N, K=K, loop_order="".join(mp.loop_order), a_base=0, a_stride=K,
                w_base=0, w_stride=N, c_base=0, c_stride=N)

    def fits(tm: int, tn: int, tk: int) -> bool:
        need = spec.lines_needed(Descriptor(tile_m=tm, tile_n=tn, tile_k=tk, **desc))
        return all(need[op] <= pad.half_lines
                   for op, pad in (("A", spec.a), ("W", spec.w), ("O", spec.o)))

    tm, tn, tk = mp.tile_m, mp.tile_n, mp.tile_k
    if fits(tm, tn, tk):
        return mp
    tm = min(M, max(e.rows, tm // e.rows * e.rows))
    tn = min(N, max(e.cols, tn // e.cols * e.cols))
    while tk > 1 and not fits(tm, tn, tk):
        tk -= 1
    if not fits(tm, tn, tk):
        raise SpecError(f"mapping {mp.tile_m}x{mp.tile_n}x{mp.tile_k}: no refit fits the "
                        "tile's scratchpads; raise their capacity_bytes")
    return dataclasses.replace(mp, tile_m=tm, tile_n=tn, tile_k=tk)


def cycle_table(arch: ArchSpec, shapes: list[tuple[int, int, int]], seed: int = 1) -> str:
    """Run each ``(M, N, K)`` with the mapping the system model picks on the tile of ``arch``
    (random operands, C checked bit exact) and tabulate measured against model cycles."""
    from hw.spec import tile_spec
    from sim.gemm import gemm_cost, simulate_gemm

    spec = tile_spec(arch)
    e = arch.engine
    rng = np.random.default_rng(seed)
    lines = [f"{'M x N x K':>12} {'tile':>10} {'order':>5} {'measured':>9} {'model':>7} "
             f"{'gap':>6} {'DRAM bytes (tile/model)':>24}"]
    for M, N, K in shapes:
        gemm = model_gemm(arch, M, N, K)
        model = simulate_gemm(arch, gemm)
        mp = fit_mapping(spec, model.mapping, M, N, K)
        cycles, dram_bytes = model.cycles, model.dram_bytes
        if mp is not model.mapping:  # the model's figures for the mapping the tile runs
            cost = gemm_cost(gemm, arch, Candidates.from_mapping(mp, M, N, K))
            cycles = int(np.ceil(np.asarray(cost.cycles).reshape(-1)[0]))
            dram_bytes = int(np.asarray(cost.dram_bytes).reshape(-1)[0])
        lo = -(1 << (e.a_bits - 1)) if e.signed else 0
        A = rng.integers(lo, lo + (1 << e.a_bits), (M, K))
        lo = -(1 << (e.w_bits - 1)) if e.signed else 0
        W = rng.integers(lo, lo + (1 << e.w_bits), (K, N))
        run = run_tile_gemm(spec, A, W, tile=(mp.tile_m, mp.tile_n, mp.tile_k),
                            loop_order="".join(mp.loop_order))
        if not np.array_equal(run.C, reference(A, W, e.acc_bits, e.signed)):
            raise AssertionError(f"{M}x{N}x{K}: C differs from numpy")
        moved = run.read_bytes + run.write_bytes
        tile = f"{mp.tile_m}x{mp.tile_n}x{mp.tile_k}{'' if mp is model.mapping else '*'}"
        lines.append(f"{f'{M}x{N}x{K}':>12} {tile:>10} "
                     f"{''.join(mp.loop_order):>5} {run.cycles:>9} {cycles:>7} "
                     f"{(run.cycles - cycles) / cycles:>+6.0%} "
                     f"{f'{moved}/{dram_bytes}':>24}")
    if any("*" in line for line in lines):
        lines.append("* the model's mapping does not fit the scratchpad lines: refit by "
                     "fit_mapping, model figures for the refit mapping")
    return "\n".join(lines)
