"""``tpe sim gemm`` and ``tpe sim model``: the simulator on the command line.

Bad input raises :class:`hw.spec.SpecError`, :class:`sim.cli.InputError` or
:class:`models.ModelError` with a one-line message naming the flag; ``sim.cli.main`` turns
those into exit status 2.
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

from hw.spec import ArchSpec, EngineSpec, load_arch
from mapping import OBJECTIVES, Mapping
from models.formats import get_format
from models.llm import load_model, lower
from models.ops import Gemm
from sim.cli import InputError
from sim.energy import ENERGY_COMPONENTS
from sim.gemm import FormatError, GemmResult, check_formats, simulate_gemm
from sim.memory import MEMORY_MODES
from sim.model import ModelResult, simulate_model

__all__ = [
    "QUANT_HELP",
    "format_gemm",
    "format_model",
    "quant_formats",
    "register",
    "run_gemm",
    "run_model",
]

QUANT_HELP = (
    "auto (default: the engine's operand widths, int<a_bits> activations, int<w_bits> "
    "weights, uint when the engine is unsigned, the KV cache at the narrower of the two) or "
    "wNaM[kvB]: N-bit integer weights, M-bit integer activations, B-bit integer KV cache "
    "(default M), each 1..16, e.g. w8a8, w4a8, w2a8kv8"
)
_QUANT_RE = re.compile(r"^w(\d+)a(\d+)(?:kv(\d+))?$")


def quant_formats(scheme: str, engine: EngineSpec) -> tuple[str, str, str]:
    """``(a_fmt, w_fmt, kv_fmt)`` of a ``--quant`` scheme (see :data:`QUANT_HELP`)."""
    if scheme == "auto":
        p = "int" if engine.signed else "uint"
        kv = min(engine.a_bits, engine.w_bits)
        return f"{p}{engine.a_bits}", f"{p}{engine.w_bits}", f"{p}{kv}"
    found = _QUANT_RE.match(scheme)
    if found is None or not all(1 <= int(b) <= 16 for b in found.groups() if b is not None):
        raise InputError(f"--quant: unknown scheme {scheme!r}; expected auto or wNaM[kvB] "
                         "(integer bits 1..16, e.g. w8a8, w4a8, w2a8kv8)")
    w, a, kv = found.groups()
    return f"int{int(a)}", f"int{int(w)}", f"int{int(kv or a)}"


def register(subparsers: Any) -> argparse._SubParsersAction:
    """Add ``sim gemm`` and ``sim model`` to ``tpe``; returns the ``sim`` sub-command group
    (so other modules can add e.g. ``sim attention``)."""
    sim = subparsers.add_parser(
        "sim", help="simulate a GEMM or a model on an architecture",
        description="Predict cycles, stalls, energy and area from an architecture spec.",
    )
    group = sim.add_subparsers(dest="sim_command", metavar="WHAT", parser_class=type(sim))
    group.required = True

    gemm = group.add_parser("gemm", help="one GEMM C[M,N] = A[M,K] @ W[K,N]")
    _arch_args(gemm)
    for dim in ("M", "N", "K"):
        gemm.add_argument(f"--{dim}", type=int, required=True, metavar=dim,
                          help=f"GEMM dimension {dim} (>= 1)")
    gemm.add_argument("--a-fmt", default=None,
                      help="activation format (default: int<a_bits> of the engine, uint when "
                      "it is unsigned)")
    gemm.add_argument("--w-fmt", default=None,
                      help="weight format (default: int<w_bits> of the engine, uint when it is "
                      "unsigned)")
    _run_args(gemm)
    gemm.set_defaults(func=run_gemm)

    model = group.add_parser("model", help="every GEMM of an LLM forward pass")
    _arch_args(model)
    model.add_argument("--model", required=True, help="zoo name (e.g. llama-2-7b) or config.json")
    model.add_argument("--phase", required=True, choices=("prefill", "decode"))
    model.add_argument("--batch", type=int, required=True, help="sequences (>= 1)")
    model.add_argument("--seq", type=int, required=True,
                       help="prompt tokens (prefill) or cached tokens (decode), >= 1")
    model.add_argument("--quant", default="auto", help=f"quantization scheme: {QUANT_HELP}")
    _run_args(model)
    model.set_defaults(func=run_model)
    return group


def _arch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", required=True, help="preset name or architecture TOML file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec field, e.g. engine.rows=32 (repeatable)")


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--memory", choices=MEMORY_MODES, default="real",
                   help="real: buffers and DRAM of the arch; ideal: no stalls (default real)")
    p.add_argument("--objective", choices=OBJECTIVES, default="latency",
                   help="what the mapping search minimises (default latency)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _positive(flag: str, value: int) -> int:
    if value < 1:
        raise InputError(f"{flag}: must be a positive integer (got {value})")
    return value


def _load(args: argparse.Namespace) -> ArchSpec:
    return load_arch(args.arch, args.set)


def run_gemm(args: argparse.Namespace) -> int:
    """``tpe sim gemm``."""
    M, N, K = (_positive(f"--{d}", getattr(args, d)) for d in ("M", "N", "K"))
    arch = _load(args)
    auto_a, auto_w, _ = quant_formats("auto", arch.engine)
    a_fmt, w_fmt = args.a_fmt or auto_a, args.w_fmt or auto_w
    check_formats(arch.engine, a_fmt, w_fmt)
    gemm = Gemm(name="gemm", M=M, N=N, K=K, a_fmt=a_fmt, w_fmt=w_fmt,
                o_fmt=f"int{arch.engine.acc_bits}")
    result = simulate_gemm(arch, gemm, memory=args.memory, objective=args.objective)
    print(json.dumps(result.to_dict()) if args.json else format_gemm(result))
    return 0


def _check_quant(scheme: str, engine: EngineSpec, a_fmt: str, w_fmt: str, kv_fmt: str) -> None:
    """:func:`sim.gemm.check_formats` for a model's formats, the message naming ``--quant``."""
    for w, what in ((w_fmt, "weights"), (kv_fmt, "KV cache")):
        try:
            check_formats(engine, a_fmt, w)
        except FormatError as err:
            field = "a_bits" if str(err).startswith("--a-fmt") else "w_bits"
            fmt = a_fmt if field == "a_bits" else w
            what = "activations" if field == "a_bits" else what
            reason = str(err).split(": ", 1)[1].split(";")[0]
            fix = ("engine.signed=true" if "signed but" in reason
                   else f"engine.{field}={get_format(fmt).bits}")
            why = reason.split(" but ", 1)[-1]
            raise FormatError(f"--quant: {scheme} gives {fmt} {what}, but {why}; use --quant "
                              f"auto or --set {fix}") from None


def run_model(args: argparse.Namespace) -> int:
    """``tpe sim model``."""
    batch = _positive("--batch", args.batch)
    seq = _positive("--seq", args.seq)
    arch = _load(args)
    a_fmt, w_fmt, kv_fmt = quant_formats(args.quant, arch.engine)
    cfg = load_model(args.model)
    _check_quant(args.quant, arch.engine, a_fmt, w_fmt, kv_fmt)
    ops = lower(cfg, phase=args.phase, batch=batch, seq=seq, a_fmt=a_fmt, w_fmt=w_fmt,
                kv_fmt=kv_fmt)
    result = simulate_model(arch, ops, memory=args.memory, objective=args.objective,
                            name=cfg.name)
    print(json.dumps(result.to_dict()) if args.json else format_model(result))
    return 0


# -- human-readable output ----------------------------------------------------------------------


def _si(value: float, unit: str) -> str:
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def _energy(pj: float) -> str:
    for factor, unit in ((1e12, "J"), (1e9, "mJ"), (1e6, "uJ"), (1e3, "nJ")):
        if pj >= factor:
            return f"{pj / factor:.4g} {unit}"
    return f"{pj:.4g} pJ"


def _time(seconds: float) -> str:
    for factor, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if seconds >= factor:
            return f"{seconds / factor:.4g} {unit}"
    return f"{seconds * 1e9:.4g} ns"


def _breakdown(energy: dict[str, float], total: float) -> list[str]:
    rows = []
    for k in ENERGY_COMPONENTS:
        share = energy[k] / total if total else 0.0
        rows.append(f"    {k:<16}{_energy(energy[k]):>12}  {share:6.1%}")
    return rows


def _unroll(m: Mapping) -> str:
    return " x ".join(f"{d}{v}" for d, v in m.spatial.items())


def format_gemm(r: GemmResult) -> str:
    g, m = r.gemm, r.mapping
    lines = [
        f"gemm {g.M}x{g.N}x{g.K} ({g.a_fmt} x {g.w_fmt} -> {g.o_fmt}, count {g.count}) on "
        f"{r.arch.name} [{r.arch.engine.name}], memory {r.memory}, objective {r.objective}",
        f"  cycles        {r.cycles:,}  (compute {r.compute_cycles:,} + stall "
        f"{r.stall_cycles:,}: sram {r.sram_stall_cycles:,}, dram {r.dram_stall_cycles:,})",
        f"  time          {_time(r.seconds)} at {r.arch.clock_mhz:g} MHz",
        f"  utilization   {r.utilization:.1%}   bound: {r.bound}",
        f"  dram          {_si(r.dram_bytes, 'B')}  (A {_si(r.dram_a_bytes, 'B')}, "
        f"W {_si(r.dram_w_bytes, 'B')}, O {_si(r.dram_o_bytes, 'B')})",
        f"  mapping       unroll {_unroll(m)}, stream {m.stream_dim}, "
        f"tile M{m.tile_m} N{m.tile_n} K{m.tile_k}, loops "
        f"{'>'.join(m.loop_order)} (outer>inner), stationary {m.stationary or 'all'}, "
        f"{m.folds:,} folds",
        f"  area          {r.area_um2 / 1e6:.4g} mm^2",
        f"  energy        {_energy(r.energy_pj)}",
        *_breakdown(dict(r.energy_breakdown_pj), r.energy_pj),
    ]
    return "\n".join(lines)


def format_model(r: ModelResult) -> str:
    header = (f"{'op':<10}{'count':>7}{'M':>7}{'N':>7}{'K':>7}{'cycles':>16}{'time':>11}"
              f"{'energy':>12}{'util':>7}  bound")
    lines = [
        f"{r.name} on {r.arch.name} [{r.arch.engine.name}], memory {r.memory}, "
        f"objective {r.objective}",
        header,
    ]
    for op in r.ops:
        g = op.gemm
        lines.append(
            f"{g.name:<10}{g.count:>7}{g.M:>7}{g.N:>7}{g.K:>7}{op.cycles:>16,}"
            f"{_time(op.seconds):>11}{_energy(op.energy_pj):>12}{op.utilization:>7.1%}  "
            f"{op.bound}"
        )
    lines += [
        f"{'total':<38}{r.cycles:>16,}{_time(r.seconds):>11}{_energy(r.energy_pj):>12}"
        f"{r.utilization:>7.1%}",
        f"  stall cycles  {r.stall_cycles:,} (sram {r.sram_stall_cycles:,}, "
        f"dram {r.dram_stall_cycles:,}); dram {_si(r.dram_bytes, 'B')}; "
        f"area {r.area_um2 / 1e6:.4g} mm^2",
        "  energy by component",
        *_breakdown(dict(r.energy_breakdown_pj), r.energy_pj),
    ]
    return "\n".join(lines)
