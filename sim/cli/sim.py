"""``tpe sim gemm``, ``tpe sim attention`` and ``tpe sim model``: the simulator on the
command line.

Bad input raises :class:`hw.spec.SpecError`, :class:`sim.cli.InputError` or
:class:`models.ModelError` with a one-line message naming the flag; ``sim.cli.main`` turns
those into exit status 2.
"""

from __future__ import annotations

import argparse
import collections.abc
import json
from typing import TYPE_CHECKING, Any

# models is plain Python; the simulator (numpy, and pydantic through hw.spec) is imported by
# the functions that use it, each command loading only its own part (sim.cli's docstring).
from models import ModelError
from models.formats import accumulator_format, get_format
from models.ops import MAX_SIZE, Attention, Gemm, size_error
from models.quant import KIVI_GROUP, KIVI_SCALE_BITS, scheme_help
from sim.cli import LazyHelp

if TYPE_CHECKING:
    from hw.spec import ArchSpec
    from mapping import Mapping
    from sim.devices import SystemResult
    from sim.model import ModelResult
    from sim.system import OpResult

__all__ = [
    "QUANT_HELP",
    "format_devices",
    "format_model",
    "format_op",
    "register",
    "run_attention",
    "run_gemm",
    "run_model",
]

QUANT_HELP = (
    "auto (default: integers at the engine's operand widths, the KV cache at the narrower "
    "of the two, no scales; bf16 on a GPU preset), or one of: {names}"
)


def register(subparsers: Any) -> argparse._SubParsersAction:
    """Add ``sim gemm``, ``sim attention`` and ``sim model`` to ``tpe``; returns the ``sim``
    sub-command group."""
    sim = subparsers.add_parser(
        "sim", help="simulate a GEMM, an attention layer or a model on an architecture",
        description="Predict cycles, stalls, energy and area from an architecture spec.",
    )
    group = sim.add_subparsers(dest="sim_command", metavar="WHAT", parser_class=type(sim))
    group.required = True

    group.add_parser("gemm", help="one GEMM C[M,N] = A[M,K] @ W[K,N]", fill=_gemm_args)
    group.add_parser("attention", help="one attention layer (prefill or decode)",
                     fill=_attention_args)
    group.add_parser("model", help="every operator of an LLM forward pass", fill=_model_args)
    return group


# Each command's options are added when it is chosen (sim.cli._SubParsers): the choices of
# --memory and --objective come from the simulator, --quant's help from the scheme table
# (made only when help is printed: sim.cli.LazyHelp).


def _gemm_args(gemm: argparse.ArgumentParser) -> None:
    _arch_args(gemm)
    for dim in ("M", "N", "K"):
        gemm.add_argument(f"--{dim}", type=int, required=True, metavar=dim,
                          help=f"GEMM dimension {dim} (1 to 2^40)")
    gemm.add_argument("--a-fmt", default=None,
                      help="activation format (default: int<a_bits> of the engine, uint when "
                      "it is unsigned; on the MX engine its auto scheme's, floating-point "
                      "formats in its blocks with E8M0 scales)")
    gemm.add_argument("--w-fmt", default=None,
                      help="weight format (default: int<w_bits> of the engine, uint when it is "
                      "unsigned)")
    gemm.add_argument("--quant", default=None, metavar="SCHEME",
                      help=LazyHelp(lambda: "take A and W in a quantization scheme's "
                                    "activation and weight formats, with their block or group "
                                    "scales (instead of --a-fmt/--w-fmt): "
                                    + QUANT_HELP.format(names=scheme_help())))
    gemm.add_argument("--o-fmt", default=None,
                      help="output format (default: fp32 if either operand is floating point, "
                      "else int32: what tpe sim model's GEMMs write; an engine preset's only: a "
                      "GPU's kernels write C in their own format)")
    gemm.add_argument("--count", type=int, default=1,
                      help="identical instances, e.g. one per layer (default 1; at most 2^40)")
    gemm.add_argument("--trace", default=None, metavar="DIR",
                      help="write SCALE-Sim-format SRAM and DRAM traces of one instance into "
                           "DIR (systolic arrays, one core)")
    _run_args(gemm)
    gemm.set_defaults(func=run_gemm)


def _attention_args(att: argparse.ArgumentParser) -> None:
    _arch_args(att)
    for flag, what in (("--batch", "sequences"), ("--heads", "query heads"),
                       ("--kv-heads", "key/value heads (a divisor of --heads)"),
                       ("--q-len", "query tokens per sequence (1 for decode)"),
                       ("--kv-len", "key/value tokens per sequence (>= --q-len)"),
                       ("--head-dim", "query/key head width")):
        att.add_argument(flag, type=int, required=True, help=f"{what}, 1 to 2^40")
    att.add_argument("--v-dim", type=int, default=None,
                     help="value head width (default --head-dim)")
    att.add_argument("--causal", action="store_true",
                     help="causal mask (the queries are the last --q-len tokens)")
    att.add_argument("--q-fmt", default=None,
                     help="query/probability format (default fp16; on an engine with formats of "
                     "its own, such as the MX engine, its auto scheme's activation format)")
    att.add_argument("--kv-fmt", default=None,
                     help="KV-cache format (default --q-fmt); integer formats narrower than 16 "
                     f"bits are stored KIVI-style in groups of {KIVI_GROUP} with an fp16 scale "
                     "and zero point")
    att.add_argument("--quant", default=None, metavar="SCHEME",
                     help=LazyHelp(lambda: "take the queries and the KV cache in the formats "
                                   "a quantization scheme runs attention in, as tpe sim model "
                                   "lowers it (instead of --q-fmt/--kv-fmt; auto: tpe sim "
                                   "model's default): "
                                   + QUANT_HELP.format(names=scheme_help())))
    att.add_argument("--layers", type=int, default=1,
                     help="identical layers (default 1; at most 2^40)")
    _kv_args(att)
    _run_args(att)
    att.set_defaults(func=run_attention)


def _model_args(model: argparse.ArgumentParser) -> None:
    _arch_args(model)
    model.add_argument("--model", required=True, help="zoo name (e.g. llama-2-7b) or config.json")
    model.add_argument("--phase", required=True, choices=("prefill", "decode"),
                       help="prefill (the whole prompt) or decode (one generation step over "
                            "the cached tokens)")
    model.add_argument("--batch", type=int, required=True,
                       help="sequences, 1 to 2^40 (a prefill's --batch x --seq too)")
    model.add_argument("--seq", type=int, required=True,
                       help="prompt tokens (prefill) or cached tokens (decode), 1 to 2^40")
    model.add_argument("--quant", default="auto",
                       help=LazyHelp(lambda: "quantization scheme: "
                                     + QUANT_HELP.format(names=scheme_help())))
    _kv_args(model)
    model.add_argument("--runtime", choices=("fused", "eager"), default="fused",
                       help="the software running the pass on a GPU preset: fused (a serving "
                            "engine: fused element-wise kernels, the cache written in place; "
                            "the default) or eager (eager PyTorch running transformers' "
                            "LlamaForCausalLM: unfused kernels, each launched from the host, "
                            "the cache appended by concatenation)")
    model.add_argument("--host-launch-us", type=float, default=None, metavar="US",
                       help="with --runtime eager: the host's time to launch one kernel, in us "
                            "(default: measured on the card's host per phase; measure yours "
                            "with python -m sim.gpu.framework, --ops and --fit-eager --timed)")
    par = model.add_argument_group(
        "several devices", "split the pass over devices of the architecture, joined by its "
        "[interconnect] (tensor, pipeline and expert parallelism; docs/scaleout.md)")
    par.add_argument("--devices", type=int, default=None, metavar="N",
                     help="devices in all: --tp x --pp (default: that product; alone, "
                          "--tp N)")
    par.add_argument("--tp", type=int, default=None,
                     help="tensor-parallel devices per pipeline stage (default 1, or "
                          "--devices / --pp)")
    par.add_argument("--pp", type=int, default=1, help="pipeline stages (default 1)")
    par.add_argument("--ep", type=int, default=1,
                     help="expert parallelism of a mixture of experts: 1 (experts split like "
                          "the MLP, the default) or --tp (whole experts per device, tokens "
                          "sent to them all-to-all)")
    par.add_argument("--microbatches", type=int, default=1,
                     help="micro-batches the batch runs as through the pipeline (a divisor "
                          "of --batch; default 1)")
    par.add_argument("--sp", action="store_true",
                     help="sequence parallelism: norms and residual adds on a slice of the "
                          "tokens, each all-reduce a reduce-scatter and an all-gather")
    par.add_argument("--overlap", action="store_true",
                     help="overlap each tensor-parallel collective with the operator "
                     "producing its data (needs --tp above 1; the pipeline's sends are not "
                     "overlapped)")
    model.add_argument("--plot", default=None, metavar="DIR",
                       help="write op_breakdown.png and roofline.png into DIR")
    model.add_argument("--csv", default=None, metavar="FILE",
                       help="write one row per operator to FILE (.csv): shape, time, energy "
                            "and its breakdown, bound, mapping")
    _run_args(model)
    model.set_defaults(func=run_model)


def _kv_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kv-page", type=int, default=0, metavar="TOKENS",
                   help="paged KV cache with pages of TOKENS tokens (default 0: contiguous)")
    p.add_argument("--sparse-block", type=int, default=0, metavar="TOKENS",
                   help="block-sparse attention: key block size (with --sparse-topk)")
    p.add_argument("--sparse-topk", type=int, default=0, metavar="BLOCKS",
                   help="block-sparse attention: key blocks each query block attends to")


def _arch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", required=True, help="preset name or architecture TOML file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec field, e.g. engine.rows=32 (repeatable)")


def _run_args(p: argparse.ArgumentParser) -> None:
    from mapping import OBJECTIVES
    from sim.memory import MEMORY_MODES

    p.add_argument("--memory", choices=MEMORY_MODES, default="real",
                   help="real: buffers and DRAM of the arch; ideal: no stalls (default real)")
    p.add_argument("--objective", choices=OBJECTIVES, default="latency",
                   help="what the mapping search minimises (default latency; a GPU "
                   "preset, which searches no mapping, takes latency only)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _positive(flag: str, value: int) -> int:
    from sim.errors import InputError

    if value < 1:
        raise InputError(f"{flag}: must be a positive integer (got {value})")
    return _bounded(flag, value)


def _bounded(flag: str, value: int) -> int:
    """``value`` unless it exceeds :data:`models.ops.MAX_SIZE` (2^40, the simulator's exactness
    contract: docs/llm_simulator.md)."""
    from sim.errors import InputError

    if value > MAX_SIZE:
        raise InputError(size_error(flag, value))
    return value


def _load(args: argparse.Namespace) -> ArchSpec:
    from hw.spec import load_arch

    return _objective_acts(args, load_arch(args.arch, args.set))


def _objective_acts(args: argparse.Namespace, arch: ArchSpec) -> ArchSpec:
    """``arch``, where ``--objective`` acts on it (:func:`sim.system.objective_error`: on a
    GPU preset an energy or EDP objective would change nothing and is refused), checked before
    anything runs."""
    from sim.system import objective_error

    if (why := objective_error(arch, args.objective)) is not None:
        from sim.errors import InputError

        raise InputError(f"--objective: {why}; drop --objective, or use an engine "
                         "architecture")
    return arch


def run_gemm(args: argparse.Namespace) -> int:
    """``tpe sim gemm``."""
    from sim.errors import FormatError
    from sim.execution import arch_scheme, quant_formats
    from sim.gemm import check_formats
    from sim.system import simulate_op

    M, N, K = (_positive(f"--{d}", getattr(args, d)) for d in ("M", "N", "K"))
    count = _positive("--count", args.count)
    if args.trace is not None:
        from sim.files import output_dir

        output_dir(args.trace, "--trace")
    arch = _load(args)
    scales: dict[str, Any] = {}
    if args.quant is not None:
        from sim.errors import InputError

        if args.a_fmt is not None or args.w_fmt is not None:
            raise InputError("--quant: give either --quant or --a-fmt/--w-fmt")
        scheme = arch_scheme(args.quant, arch).for_op("gemm")
        a_fmt, w_fmt = scheme.a_fmt, scheme.w_fmt
        scales = {"a_group": scheme.a_group, "a_scale_bits": scheme.a_scale_bits,
                  "w_group": scheme.w_group, "w_scale_bits": scheme.w_scale_bits,
                  "a_scale_fmt": scheme.a_scale_fmt, "w_scale_fmt": scheme.w_scale_fmt}
    elif arch.gpu is not None:  # a GPU preset: its kernel model (sim.gpu_model), auto's bf16
        auto = arch_scheme("auto", arch)
        a_fmt, w_fmt = args.a_fmt or auto.a_fmt, args.w_fmt or args.a_fmt or auto.w_fmt
        _check_fmt_flags(("--a-fmt", a_fmt), ("--w-fmt", w_fmt))
    else:
        auto_a, auto_w, _ = quant_formats("auto", arch.engine)
        a_fmt, w_fmt = args.a_fmt or auto_a, args.w_fmt or auto_w
        _check_fmt_flags(("--a-fmt", a_fmt), ("--w-fmt", w_fmt))
        check_formats(arch.engine, a_fmt, w_fmt)
        scales = _native_scales(arch.engine, a_fmt, w_fmt)
    # what a model's GEMM of these operands writes (models.llm.lower), whatever the engine
    out_fmt = accumulator_format(a_fmt, w_fmt)
    if args.o_fmt is not None:
        if arch.gpu is not None:
            from sim.errors import InputError

            raise InputError(f"--o-fmt: {arch.name}'s kernel model writes C in the format its "
                             "kernel writes (a bf16 GEMM's C in bf16, torch._int_mm's in int32) "
                             "whatever --o-fmt says; drop --o-fmt on a GPU preset")
        _check_fmt_flags(("--o-fmt", args.o_fmt))
        out_fmt = args.o_fmt
    op = Gemm(name="gemm", M=M, N=N, K=K, count=count, a_fmt=a_fmt, w_fmt=w_fmt, o_fmt=out_fmt,
              **scales)
    try:
        result = simulate_op(arch, op, memory=args.memory, objective=args.objective)
    except FormatError as err:
        if args.quant is None:
            raise
        raise FormatError(f"--quant: {args.quant}: {err}") from None
    if args.trace is not None:
        import sys

        from sim.report.traces import write_traces

        summary = write_traces(arch, result, args.trace)
        print(f"traces: {args.trace} ({summary['cycles']:,} cycles of one instance; "
              + ", ".join(f"{n.removesuffix('_TRACE.csv')} {c:,}"
                          for n, c in summary["accesses"].items()) + " accesses)",
              file=sys.stderr if args.json else sys.stdout)
    return _print_op(args, arch, result)


def _native_scales(engine, a_fmt: str, w_fmt: str) -> dict[str, int]:
    """On a kind with formats of its own (the MX engine), a floating-point operand given by
    --a-fmt/--w-fmt in one of its element formats is stored as the kind's auto scheme stores
    it: in blocks with their scales (what `tpe sim model` gives the same operand)."""
    from sim.engines import format_hook
    from sim.execution import auto_scheme

    if format_hook(engine.kind, "auto_scheme") is None:
        return {}
    q = auto_scheme(engine)
    blocked = getattr(engine, "element_formats", ())
    out: dict[str, Any] = {}
    if get_format(a_fmt).is_float and get_format(a_fmt).name in blocked:
        out |= {"a_group": q.a_group, "a_scale_bits": q.a_scale_bits,
                "a_scale_fmt": q.a_scale_fmt}
    if get_format(w_fmt).is_float and get_format(w_fmt).name in blocked:
        out |= {"w_group": q.w_group, "w_scale_bits": q.w_scale_bits,
                "w_scale_fmt": q.w_scale_fmt}
    return out


def _nonnegative(flag: str, value: int) -> int:
    from sim.errors import InputError

    if value < 0:
        raise InputError(f"{flag}: must be an integer >= 0 (got {value})")
    return _bounded(flag, value)


def _sparse(args: argparse.Namespace) -> tuple[int, int]:
    from sim.errors import InputError

    block = _nonnegative("--sparse-block", args.sparse_block)
    topk = _nonnegative("--sparse-topk", args.sparse_topk)
    if (block > 0) != (topk > 0):
        raise InputError("--sparse-topk: block-sparse attention needs both --sparse-block and "
                         "--sparse-topk > 0")
    return block, topk


def _plan(args: argparse.Namespace) -> Any:
    """The :class:`models.parallel.ParallelPlan` of the flags, ``None`` for one device."""
    from models.parallel import ParallelPlan
    from sim.errors import InputError

    pp = _positive("--pp", args.pp)
    devices = None if args.devices is None else _positive("--devices", args.devices)
    tp = None if args.tp is None else _positive("--tp", args.tp)
    if tp is None:
        if devices is not None and devices % pp:
            raise InputError(f"--devices: {devices} devices do not split into --pp {pp} "
                             "stages; use a multiple of --pp")
        tp = 1 if devices is None else devices // pp
    if devices is not None and devices != tp * pp:
        raise InputError(f"--devices: {devices} is not --tp {tp} x --pp {pp} = {tp * pp}; "
                         "give a matching --devices or leave it out")
    ep = _positive("--ep", args.ep)
    micro = _positive("--microbatches", args.microbatches)
    if (tp, pp, ep, micro, args.sp, args.overlap) == (1, 1, 1, 1, False, False):
        return None
    if args.overlap and tp == 1:
        raise InputError("--overlap: overlaps the tensor-parallel collectives with the "
                         "operators producing their data; with --tp 1 there are none (the "
                         "pipeline's sends between stages are not overlapped): give --tp above "
                         "1, or drop --overlap")
    try:
        return ParallelPlan(tp=tp, pp=pp, ep=ep, microbatches=micro, sp=args.sp)
    except ModelError as err:
        field = str(err).split(":", 1)[0]
        _as_flag(err, field)
        raise


def run_model(args: argparse.Namespace) -> int:
    """``tpe sim model``."""
    from models.llm import load_model, lower, weight_bytes
    from sim.errors import FormatError
    from sim.execution import arch_scheme
    from sim.files import output_dir, output_file
    from sim.model import simulate_model

    plot = output_dir(args.plot, "--plot") if args.plot else None
    table = output_file(args.csv, "--csv", suffixes=(".csv",)) if args.csv else None
    batch = _positive("--batch", args.batch)
    seq = _positive("--seq", args.seq)
    if args.phase == "prefill" and batch * seq > MAX_SIZE:
        from sim.errors import InputError

        raise InputError(size_error("--batch x --seq", batch * seq, "prompt tokens"))
    page = _nonnegative("--kv-page", args.kv_page)
    block, topk = _sparse(args)
    plan = _plan(args)
    if plan is not None:
        from sim.errors import InputError

        for flag, given in (("--plot", plot), ("--csv", table)):
            if given is not None:
                raise InputError(f"{flag}: writes one device's operators; with several "
                                 "devices use --json (every stage's operators and "
                                 "collectives)")
        if args.runtime != "fused":
            raise InputError("--runtime: several devices are modelled under the fused "
                             "runtime (a serving engine); use --runtime fused")
    from hw.spec import load_arch

    arch = _objective_acts(args, load_arch(args.arch, args.set,
                                           devices=1 if plan is None else plan.devices))
    host_us = _host_launch_us(args, arch)
    scheme = arch_scheme(args.quant, arch)
    try:
        cfg = load_model(args.model)
    except ModelError as err:
        _as_flag(err, "model")
        raise
    if plan is not None:
        return _run_devices(args, arch, cfg, plan, scheme, batch, seq, page, block, topk)
    try:
        ops = lower(cfg, phase=args.phase, batch=batch, seq=seq, quant=scheme,
                    page_tokens=page, sparse_block=block, sparse_topk=topk,
                    runtime=args.runtime)
    except ModelError as err:
        _as_flag(err, "runtime")
        raise
    try:
        result = simulate_model(arch, ops, memory=args.memory, objective=args.objective,
                                name=cfg.name, phase=args.phase, batch=batch, seq=seq,
                                quant=scheme.name, weight_bytes=weight_bytes(cfg, scheme),
                                runtime=args.runtime,
                                host_launch_us=0.0 if host_us is None else host_us[args.phase])
    except FormatError as err:
        raise FormatError(f"--quant: {scheme.name}: {err}") from None
    if plot is not None:
        from sim.report.plots import save_model_plots

        save_model_plots({args.phase: result}, plot)
    if table is not None:
        from sim.report.tables import write_operator_csv

        write_operator_csv(result, table)
    print(json.dumps(result.to_dict()) if args.json else format_model(result))
    return 0


def _run_devices(args: argparse.Namespace, arch: ArchSpec, cfg: Any, plan: Any, scheme: Any,
                 batch: int, seq: int, page: int, block: int, topk: int) -> int:
    """``tpe sim model`` on several devices (:mod:`sim.devices`)."""
    from models.parallel import lower_parallel
    from sim.devices import simulate_devices
    from sim.errors import FormatError

    try:
        work = lower_parallel(cfg, plan, phase=args.phase, batch=batch, seq=seq, quant=scheme,
                              page_tokens=page, sparse_block=block, sparse_topk=topk)
        result = simulate_devices(arch, work, name=cfg.name, phase=args.phase, batch=batch,
                                  seq=seq, quant=scheme.name, memory=args.memory,
                                  objective=args.objective, overlap=args.overlap)
    except ModelError as err:
        field = str(err).split(":", 1)[0]
        if field in ("tp", "pp", "ep", "microbatches", "sp"):
            _as_flag(err, field)
        raise
    except FormatError as err:
        raise FormatError(f"--quant: {scheme.name}: {err}") from None
    print(json.dumps(result.to_dict()) if args.json else format_devices(result))
    return 0


def _as_flag(err: ModelError, field: str) -> None:
    """Raise ``err`` as the input error of the flag of ``field`` when it names that field
    (the library checks a value once; the command names its flag)."""
    prefix = f"{field}: "
    if str(err).startswith(prefix):
        from sim.errors import InputError

        raise InputError(f"--{field.replace('_', '-')}: {str(err)[len(prefix):]}") from None


def _host_launch_us(args: argparse.Namespace, arch: ArchSpec) -> dict[str, float] | None:
    """The host's time per kernel launch by phase under ``--runtime eager`` (``None`` for
    fused: the host keeps ahead of the device); ``--host-launch-us`` only with eager."""
    from sim.errors import InputError

    if args.runtime != "eager":
        if args.host_launch_us is not None:
            raise InputError("--host-launch-us: only with --runtime eager (a fused runtime "
                             "launches from CUDA graphs or a serving engine's loop)")
        return None
    if arch.gpu is None:
        raise InputError(f"--runtime: eager models eager PyTorch on a GPU preset; {arch.name} "
                         "is an engine architecture; use --runtime fused")
    if args.host_launch_us is not None:
        from sim.model import check_host_launch_us

        try:
            check_host_launch_us(args.host_launch_us)
        except ModelError as err:
            _as_flag(err, "host_launch_us")
        return dict.fromkeys(("prefill", "decode"), args.host_launch_us)
    from sim.gpu_model import load_eager

    return load_eager(arch.gpu.calibration).host_launch_us


def run_attention(args: argparse.Namespace) -> int:
    """``tpe sim attention``."""
    from sim.engines import format_hook
    from sim.execution import auto_scheme
    from sim.system import simulate_op

    dims = {f: _positive(f"--{f.replace('_', '-')}", getattr(args, f))
            for f in ("batch", "heads", "kv_heads", "q_len", "kv_len", "head_dim", "layers")}
    v_dim = dims["head_dim"] if args.v_dim is None else _positive("--v-dim", args.v_dim)
    page = _nonnegative("--kv-page", args.kv_page)
    block, topk = _sparse(args)
    arch = _load(args)
    formats: dict[str, Any]
    if args.quant is not None:
        from models.llm import attention_formats
        from sim.errors import InputError
        from sim.execution import arch_scheme

        if args.q_fmt is not None or args.kv_fmt is not None:
            raise InputError("--quant: give either --quant or --q-fmt/--kv-fmt")
        formats = attention_formats(arch_scheme(args.quant, arch))
    else:
        native = (auto_scheme(arch.engine) if format_hook(arch.engine.kind, "auto_scheme")
                  else None)
        q_fmt = args.q_fmt or (native.a_fmt if native is not None else "fp16")
        kv_fmt = args.kv_fmt or q_fmt
        _check_fmt_flags(("--q-fmt", q_fmt), ("--kv-fmt", kv_fmt))
        kv = get_format(kv_fmt)
        if native is not None and kv_fmt == native.kv_fmt:  # the engine's own block format
            kv_group, kv_scale_bits = native.kv_group, native.kv_scale_bits
        else:
            quantized = kv.family in ("int", "uint") and kv.bits < 16
            kv_group = KIVI_GROUP if quantized else 0
            kv_scale_bits = KIVI_SCALE_BITS if quantized else 0
        formats = {"q_fmt": q_fmt, "kv_fmt": kv_fmt, "kv_group": kv_group,
                   "kv_scale_bits": kv_scale_bits}
    att = Attention(
        name="attention", batch=dims["batch"], heads=dims["heads"], kv_heads=dims["kv_heads"],
        q_len=dims["q_len"], kv_len=dims["kv_len"], qk_dim=dims["head_dim"], v_dim=v_dim,
        causal=args.causal, count=dims["layers"], page_tokens=page, sparse_block=block,
        sparse_topk=topk, **formats,
    )
    return _print_op(args, arch, simulate_op(arch, att, memory=args.memory,
                                             objective=args.objective))


def _check_fmt_flags(*flags: tuple[str, str]) -> None:
    """One-line error naming the flag for a format name that does not exist."""
    from sim.errors import InputError

    for flag, fmt in flags:
        try:
            get_format(fmt)
        except ValueError as err:
            raise InputError(f"{flag}: {str(err).split(': ', 1)[-1]}") from None


def _print_op(args: argparse.Namespace, arch: ArchSpec, result: OpResult) -> int:
    """Print one operator's result (``--json``: one object) for ``sim gemm``/``attention``:
    the operator's row as ``tpe sim model`` reports it, with the architecture around it."""
    from hw.spec import spec_to_dict
    from sim.energy import system_area_breakdown
    from sim.system import gpu_validation

    if args.json:
        area = dict(system_area_breakdown(arch))
        print(json.dumps({"arch": arch.name, "engine": spec_to_dict(arch.engine),
                          "cores": arch.cores, "memory": args.memory,
                          "objective": args.objective, **result.to_dict(),
                          "area_um2": sum(area.values()), "area_breakdown_um2": area,
                          **gpu_validation(arch)}))
    else:
        print(format_op(result, arch))
    return 0


def validation_note(arch: ArchSpec) -> list[str]:
    """The line every text output on an unvalidated GPU preset carries."""
    if arch.gpu is None or arch.gpu.validated:
        return []
    return [f"  note: {arch.name} is not validated: no kernels were measured on this card; its "
            f"figures are the {arch.gpu.calibration} calibration scaled by the preset's SMs, "
            "clock and HBM bandwidth"]


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


def _breakdown(energy: collections.abc.Mapping[str, float], total: float) -> list[str]:
    """One row per component with energy, in the result's order (memory levels by name)."""
    return [f"    {k:<16}{_energy(e):>12}  {e / total if total else 0.0:6.1%}"
            for k, e in energy.items() if e]


def _unroll(m: Mapping) -> str:
    return " x ".join(f"{d}{v}" for d, v in m.spatial.items())


def format_op(r: OpResult, arch: ArchSpec) -> str:
    """One operator's result as text: the whole architecture's figures, then (GEMMs on an
    engine) one core's share as the engine model sees it."""
    from sim.energy import system_area_breakdown
    from sim.report.tables import shape_text

    m = dict(r.mapping)
    alone = m.pop("gpu_timed_alone_us", None)
    label = r.kind if r.name == r.kind else f"{r.kind} {r.name}"
    cores = f"{arch.cores} cores" if arch.cores > 1 else "1 core"
    mapping = ", ".join(f"{k} {v}" for k, v in m.items() if not isinstance(v, (dict, list)))
    if r.core is not None:
        c = r.core.mapping
        mapping = (f"{m['cores_used']} of {cores} (split {m['core_split']}"
                   f"{', transposed' if m['transposed'] else ''}), unroll {_unroll(c)}, "
                   f"stream {c.stream_dim}, tile M{c.tile_m} N{c.tile_n} K{c.tile_k}, loops "
                   f"{'>'.join(c.loop_order)} (outer>inner), stationary "
                   f"{c.stationary or 'all'}, {c.folds:,} folds per core")
    lines = [
        f"{label} ({shape_text(r)}, count {r.count}) on {arch.name} [{arch.engine.name}] "
        f"x {cores}",
        f"  cycles        {r.cycles:,}  (compute {r.compute_cycles:,}: engine "
        f"{r.engine_cycles:,}, vector {r.vector_cycles:,}; stall {r.stall_cycles:,})",
        f"  time          {_time(r.seconds)} at {arch.clock_mhz:g} MHz"
        + (f", back to back in a stream (timed alone, as tpe gpu measure and predict time "
           f"it: {_time(alone * 1e-6)})" if alone is not None else ""),
        f"  utilization   {r.utilization:.1%}   bound: {r.bound}",
        f"  {arch.memory[-1].name:<14}{_si(r.dram_bytes, 'B')}",
        f"  mapping       {mapping}",
        f"  area          {sum(system_area_breakdown(arch).values()) / 1e6:.4g} mm^2",
        f"  energy        {_energy(r.energy_pj)}",
        *_breakdown(r.energy_breakdown_pj, r.energy_pj),
    ]
    if r.core is not None:
        g = r.core
        behind = arch.tiers[1][0].name if len(arch.tiers[1]) == 1 else "tier 1"
        lines.append(
            f"  per core      {g.cycles:,} cycles (stall: buffers {g.sram_stall_cycles:,}, "
            f"{behind} {g.dram_stall_cycles:,}); from {behind}: A {_si(g.dram_a_bytes, 'B')}, "
            f"W {_si(g.dram_w_bytes, 'B')}, O {_si(g.dram_o_bytes, 'B')}")
    return "\n".join(lines + validation_note(arch))


def format_devices(r: SystemResult) -> str:
    """The text report of a pass on several devices: per stage (one device of it) its compute,
    communication (all, and what adds to its time), idle time and memory, then its
    collectives."""
    p = r.plan
    ic = r.arch.interconnect
    assert ic is not None or p.devices == 1
    link = ("" if ic is None else
            f", {ic.topology} {ic.bandwidth_gb_per_s:g} GB/s links")
    lines = [
        f"{r.name} {r.phase} (batch {r.batch}, seq {r.seq}, quant {r.quant}) on {p.devices} x "
        f"{r.arch.name}{link}: tp {p.tp}, pp {p.pp}, ep {p.ep}"
        + (", sp" if p.sp else "") + (f", {p.microbatches} micro-batches"
                                      if p.microbatches > 1 else "")
        + (", overlapped" if r.overlap else ""),
        f"{'stage':<7}{'layers':<10}{'devices':>8}{'compute':>12}{'comm':>12}{'exposed':>12}"
        f"{'idle':>12}{'memory':>12}{'of':>10}  fits",
    ]
    for s in r.stages:
        lines.append(
            f"{s.index:<7}{f'{s.layers[0]}-{s.layers[1] - 1}':<10}{s.devices:>8}"
            f"{_time(s.compute_s):>12}{_time(s.communication_s):>12}"
            f"{_time(s.exposed_communication_s):>12}{_time(s.idle_s):>12}"
            f"{_si(s.memory_bytes, 'B'):>12}{_si(s.capacity_bytes, 'B'):>10}  "
            f"{'yes' if s.fits else 'NO'}")
    metric = ("time to first token" if r.phase == "prefill" else "time per output token")
    lines.append(f"  {metric} {_time(r.seconds)}; {r.tokens_per_s:.4g} tokens/s; "
                 f"{_energy(r.energy_per_token_pj)} per token (devices only)")
    for s in r.stages:
        if not s.collectives and s.send is None:
            continue
        lines.append(f"  stage {s.index} collectives per micro-batch (one device):")
        for c in (*s.collectives, *(() if s.send is None else (s.send,))):
            k = c.collective
            lines.append(f"    {k.name:<28}{k.count:>5} x {k.kind:<15}{_si(k.bytes, 'B'):>9}"
                         f" over {k.group}: {_time(c.time.seconds)} ({c.time.algorithm}, "
                         f"{c.time.protocol})")
    for s in r.stages:
        if not s.fits:
            lines.append(f"  warning: stage {s.index}'s devices hold {_si(s.memory_bytes, 'B')}"
                         f" (weights {_si(s.weight_bytes, 'B')}, KV cache "
                         f"{_si(s.kv_cache_bytes, 'B')}, activations "
                         f"{_si(s.activation_bytes, 'B')}), more than the "
                         f"{_si(s.capacity_bytes, 'B')} of {r.arch.memory[-1].name}")
    return "\n".join(lines + validation_note(r.arch))


def format_model(r: ModelResult) -> str:
    from sim.report.tables import shape_text

    gpu = r.arch.gpu is not None  # a GPU preset names the kernel each operator stands for
    header = (f"{'op':<16}{'count':>6}  {'shape':<36}{'time':>11}{'energy':>12}{'util':>7}"
              "  bound" + ("   kernel" if gpu else ""))
    lines = [
        f"{r.name} {r.phase or ''} (batch {r.batch}, seq {r.seq}, quant {r.quant}) on "
        f"{r.arch.name} [{r.arch.engine.name}] x{r.arch.cores}, memory {r.memory}, "
        f"objective {r.objective}",
        header,
    ]
    for op in r.ops:
        lines.append(
            f"{op.name:<16}{op.count:>6}  {shape_text(op):<36}{_time(op.seconds):>11}"
            f"{_energy(op.energy_pj):>12}{op.utilization:>7.1%}  {op.bound}"
            + (f"{'':<{9 - len(op.bound)}}{op.mapping.get('gpu_kernel', '')}" if gpu else "")
        )
    lines += [
        f"{'total':<58}{_time(r.seconds):>11}{_energy(r.energy_pj):>12}{r.utilization:>7.1%}",
        f"  cycles {r.cycles:,} (compute {r.compute_cycles:,}, stall {r.stall_cycles:,}); "
        f"dram {_si(r.dram_bytes, 'B')}; area {r.area_um2 / 1e6:.4g} mm^2",
    ]
    for note in dict.fromkeys(op.mapping["formats"] for op in r.ops
                              if "formats" in op.mapping):
        lines.append(f"  formats on {r.arch.name}: {note}")
    if not r.fits:
        lines.append(f"  warning: weights ({_si(r.weight_bytes, 'B')}) and KV cache "
                     f"({_si(r.kv_cache_bytes, 'B')}) do not fit the {_si(r.capacity_bytes, 'B')}"
                     f" of {r.arch.memory[-1].name}")
    if r.runtime == "eager":
        host_s = r.host_cycles / (r.arch.clock_mhz * 1e6)
        wait_s = r.host_wait_cycles / (r.arch.clock_mhz * 1e6)
        lines.append(f"  runtime eager: {r.launches:,} kernels launched from the host, "
                     f"{_time(host_s)} to launch them; the device waits {_time(wait_s)} "
                     + ("(host-bound)" if wait_s else "(device-bound)"))
    if r.tokens is not None:
        metric = (f"time to first token {_time(r.seconds)}" if r.phase == "prefill"
                  else f"time per output token {_time(r.seconds)}")
        lines.append(f"  {metric}; {r.tokens_per_s:.4g} tokens/s; "
                     f"{_energy(r.energy_per_token_pj or 0.0)} per token")
    lines += ["  energy by component",
              *_breakdown(r.energy_breakdown_pj, r.energy_pj), *validation_note(r.arch)]
    return "\n".join(lines)
