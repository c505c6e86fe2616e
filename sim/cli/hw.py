"""``tpe gen`` and ``tpe verify``: generate a design folder, verify it on Verilator."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

__all__ = ["register"]

def register(sub: argparse._SubParsersAction) -> None:
    from sim.verify.cxx_opt import CXX_OPT_LEVELS, DEFAULT_CXX_OPT
    from sim.verify.options import MAX_CASES, MAX_DIM, RANDOM_GEMMS

    sub.add_parser("gen", help="generate an engine's Verilog and manifest",
                   description="Generate an engine: <out>/<name>/<name>.v, lint.vlt (its "
                   "Verilator waivers, each with its reason) and manifest.json.",
                   fill=_gen_kinds)

    ver = sub.add_parser("verify", help="run a design's cocotb bench on Verilator",
                         description="Build DIR's Verilog with Verilator (every warning "
                         "on but those DIR's lint.vlt waives; any left is listed), run random "
                         "GEMMs through it, check every result against numpy and the cycles "
                         "against the cycle model: an engine's equal to its cycle model; a "
                         "tile's (`tpe gen tile`) on the mapping the system model picks against "
                         "`tpe sim gemm`'s figure for it, equal with an ideal link (no latency, "
                         "a beat a cycle), within 2% when the link limits (random buffer tiles "
                         "reported only). Exit 0 only if everything matches.")
    ver.add_argument("design", metavar="DIR", type=Path, help="a folder written by `tpe gen`")
    ver.add_argument("--seed", type=int, default=1, help="random seed of the bench (default 1)")
    ver.add_argument("--verbose", action="store_true",
                     help="print the simulator's log (to standard error)")
    ver.add_argument("--json", action="store_true",
                     help="print one JSON object: design, verilator, seed, pass, log, warnings "
                     "(Verilator's, beyond the design's lint.vlt waivers) and cases "
                     "(each with case, M, N, K, folds, measured_cycles, model_cycles, "
                     "cycles_checked, results_ok, fold_cycles, problems; a tile's also "
                     "cycle_error, cycle_bound and cycle_bound_why, and read_bytes and "
                     "write_bytes)")
    ver.add_argument("--cxx-opt", choices=CXX_OPT_LEVELS, default=DEFAULT_CXX_OPT,
                     help="g++ optimisation level of the Verilated model (-O0 by default: "
                     "the build, not the short bench, dominates; raise it for a large design "
                     "whose simulation is the slow part)")
    ver.add_argument("--cases", type=int, default=RANDOM_GEMMS, metavar="N",
                     help=f"random GEMMs beside the bench's fixed cases (default {RANDOM_GEMMS}, "
                          f"at most {MAX_CASES:,})")
    ver.add_argument("--max-dim", type=int, default=None, metavar="D",
                     help=f"the random GEMMs' M, N and K log-uniform in 1..D (at most {MAX_DIM}; "
                     "default: up to about two folds of the engine)")
    ver.add_argument("--wave", type=Path, default=None, metavar="FILE",
                     help="trace every signal of the simulation into FILE: .fst (Verilator's "
                     "FST, for GTKWave or Surfer) or .vcd")
    ver.set_defaults(func=_verify)


def _gen_kinds(gen: argparse.ArgumentParser) -> None:
    """``tpe gen KIND``, one per engine kind (filled when ``gen`` is chosen: it loads every
    kind's spec)."""
    from hw.spec import engine_kinds

    kinds = gen.add_subparsers(dest="kind", metavar="KIND", parser_class=type(gen))
    kinds.required = True
    for kind, cls in engine_kinds().items():
        doc = (cls.__doc__ or kind).strip().splitlines()[0].replace("``", "")
        p = kinds.add_parser(kind, help=doc, description=doc)
        _spec_args(p, cls)
        _common_gen(p)
        p.set_defaults(func=_gen, spec_cls=cls)
    _tile_parser(kinds)


def _tile_parser(kinds: argparse._SubParsersAction) -> None:
    """``tpe gen tile``: a whole tile built from an architecture (hw.spec.tile_spec)."""
    from hw.spec.tile import ADDR_BITS, DIM_BITS

    doc = ("a whole tile of an architecture: engine, scratchpads, DMA and loop controller "
           "running a tiled GEMM from external memory")
    p = kinds.add_parser("tile", help=doc, description=doc[0].upper() + doc[1:] + ".")
    p.add_argument("--arch", required=True, help="preset name or architecture TOML file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec field, e.g. engine.rows=16 (repeatable)")
    p.add_argument("--dim-bits", type=int, default=DIM_BITS,
                   help=f"width of the M, N, K registers (default {DIM_BITS})")
    p.add_argument("--addr-bits", type=int, default=ADDR_BITS,
                   help=f"external address width (default {ADDR_BITS})")
    p.add_argument("--out", type=Path, default=Path("rtl_out"),
                   help="output folder; the design goes to OUT/<name>/ (default rtl_out)")
    p.add_argument("--synth", action="store_true",
                   help="also synthesize the logic with Yosys (the scratchpads kept as "
                   "memories, out of the figures) and add to the manifest its figures (generic "
                   "gates, and sky130_fd_sc_hd cells: area_um2, no timing) and the "
                   "scratchpads' SRAM area (the simulator's area_breakdown: bit cells only)")
    p.set_defaults(func=_gen_tile)


def _gen_tile(args: argparse.Namespace) -> int:
    from hw.emit import generate, read_manifest
    from hw.spec import SpecError, load_arch, tile_spec
    from hw.synth import SynthError
    from sim.energy import sram_area
    from sim.files import output_dir

    try:
        spec = tile_spec(load_arch(args.arch, args.set), dim_bits=args.dim_bits,
                         addr_bits=args.addr_bits)
    except SpecError as err:
        field, sep, rest = str(err).partition(":")
        flag = {"dim_bits": "--dim-bits", "addr_bits": "--addr-bits"}.get(field)
        if flag is None:
            raise
        raise SpecError(f"{flag}{sep}{rest}") from None
    output_dir(args.out, "--out")
    try:
        folder = generate(spec, args.out, synth=args.synth, sram=sram_area,
                          progress=_steps("tpe gen tile"))
    except SynthError as err:
        print(f"tpe: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {folder / (spec.name + '.v')}")
    print(f"wrote {folder / 'lint.vlt'}")
    print(f"wrote {folder / 'manifest.json'}")
    manifest = read_manifest(folder)
    t = manifest["tile"]
    pads = ", ".join(
        f"{t[k]['level']} {t[k]['banks']} x {t[k]['bank_lines']} x {t[k]['width_bits']} bits"
        for k in ("a_scratchpad", "w_scratchpad", "o_scratchpad"))
    print(f"tile: {spec.engine.name}; scratchpads {pads}; external port {spec.ext_bytes} "
          f"bytes/beat ({spec.dram_bytes_per_cycle:g} bytes/cycle link)")
    if args.synth:
        s = manifest["synth"]
        sram = s["sram"]
        pads = ", ".join(f"{lv} {um2:,.0f}" for lv, um2 in sram["area_um2"].items())
        print(f"synthesis (logic, scratchpads kept as memories): {s['cells']} cells, "
              f"{s['transistors']} transistors (estimated), longest path "
              f"{s['longest_path_cells']} cells")
        print(_std_cell_line(s))
        print(f"SRAM area: {pads}; total {sram['total_um2']:,.0f} um^2 (bit cells only, "
              f"{sram['um2_per_bit']:g} um^2/bit from {sram['energy_table']} sram_bit: "
              f"{sram['source'].split(':')[0]})")
    return 0


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def _spec_args(p: argparse.ArgumentParser, cls: type) -> None:
    """One option per spec field: ints, choices from Literals, booleans as --x/--no-x
    (``signed`` as --signed/--unsigned), required when the field has no default."""
    for name, info in cls.__pydantic_fields__.items():
        if name == "kind":
            continue
        bounds = {type(m).__name__: m for m in info.metadata}
        rng = ""
        if "Ge" in bounds and "Le" in bounds:
            rng = f", {bounds['Ge'].ge}..{bounds['Le'].le}"
        default = "" if info.is_required() else f" (default {info.default})"
        text = f"{info.description or name}{rng}{default}"
        if name == "signed":
            group = p.add_mutually_exclusive_group()
            group.add_argument("--signed", dest="signed", action="store_true", default=None,
                               help=f"{text}")
            group.add_argument("--unsigned", dest="signed", action="store_false",
                               help="unsigned operands and accumulators")
        elif info.annotation is bool:
            p.add_argument(_flag(name), dest=name, action=argparse.BooleanOptionalAction,
                           default=None, help=text)
        elif getattr(info.annotation, "__origin__", None) is Literal:
            p.add_argument(_flag(name), dest=name, choices=info.annotation.__args__,
                           default=None, help=text)
        else:
            p.add_argument(_flag(name), dest=name, type=info.annotation, default=None,
                           required=info.is_required(), help=text)


def _common_gen(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("rtl_out"),
                   help="output folder; the design goes to OUT/<name>/ (default rtl_out)")
    p.add_argument("--synth", action="store_true",
                   help="also synthesize with Yosys and add the figures to the manifest: "
                   "generic gates (estimated transistors) and sky130_fd_sc_hd standard cells "
                   "(area_um2; no timing)")


def _engine_spec(args: argparse.Namespace):
    """The spec from the options given (the spec's own defaults for the others); errors name
    the option, not the field."""
    from hw.spec import SpecError, engine_from_dict

    names = [n for n in args.spec_cls.__pydantic_fields__ if n != "kind"]
    given = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    try:
        return engine_from_dict({"kind": args.kind, **given}, prefix="")
    except SpecError as err:
        field, _, rest = str(err).partition(":")
        if field == "spec":  # a rule over the whole spec that names its field first
            inner, _, more = rest.strip().partition(":")
            if inner in names:
                field, rest = inner, more
        if field == "signed" and given.get("signed") is False and "True" in rest:
            raise SpecError(f"--unsigned: the {args.kind} engine takes signed operands only; "
                            "drop --unsigned") from None
        flag = "--signed/--unsigned" if field == "signed" else _flag(field)
        raise SpecError(f"{flag if field in names else field}:{rest}") from None


#: Designs of at least this many MACs per cycle (a 32x32 array) print their long steps.
PROGRESS_MACS = 1024


def _progress(spec: Any, synth: bool = False) -> Callable[[str], None]:
    """Progress lines on standard error for a large design (:data:`PROGRESS_MACS`) or a
    synthesis (Yosys takes seconds to minutes): each step as it starts, with the seconds since
    the command began; nothing for a small design without synthesis."""
    if spec.macs_per_cycle < PROGRESS_MACS and not synth:
        return lambda _: None
    return _steps("tpe gen")


def _steps(command: str) -> Callable[[str], None]:
    """A progress printer: each step as it starts, on standard error (standard output stays
    the command's result), with the seconds since it was made."""
    import time

    start = time.perf_counter()
    stream = sys.stderr  # this one, even where a step runs with stderr redirected

    def line(step: str) -> None:
        print(f"{command}: {time.perf_counter() - start:6.1f} s  {step} ...", file=stream,
              flush=True)
    return line


def _gen(args: argparse.Namespace) -> int:
    from hw.emit import generate
    from hw.synth import SynthError
    from sim.files import output_dir

    spec = _engine_spec(args)
    output_dir(args.out, "--out")
    try:
        folder = generate(spec, args.out, synth=args.synth,
                          progress=_progress(spec, args.synth))
    except SynthError as err:
        print(f"tpe: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {folder / (spec.name + '.v')}")
    print(f"wrote {folder / 'lint.vlt'}")
    print(f"wrote {folder / 'manifest.json'}")
    timing = spec.timing_contract()
    print(f"timing: fold_cycles({timing['stream_len']}) = {timing['fold_cycles']}"
          f"; {timing['stream_len']}=64 -> {spec.fold_cycles(64)} cycles")
    piped = int(timing.get("pipeline_cycles", 0))
    if piped:
        print(f"timing: the pipeline registers' latency is {piped} of those cycles "
              "(a beat is still taken every cycle)")
    if "fold_interval" in timing and spec.fold_interval(64) != spec.fold_cycles(64):
        print(f"timing: fold_interval({timing['stream_len']}) = {timing['fold_interval']}"
              f"; {timing['stream_len']}=64 -> {spec.fold_interval(64)} cycles between folds")
    if args.synth:
        from hw.emit import read_manifest

        s = read_manifest(folder)["synth"]
        print(f"synthesis: {s['cells']} cells, {s['transistors']} transistors (estimated), "
              f"longest path {s['longest_path_cells']} cells")
        print(_std_cell_line(s))
    return 0


def _std_cell_line(s: dict[str, Any]) -> str:
    """The standard-cell figures of a manifest's ``synth`` entry, with what they lack."""
    return (f"{s['std_cell_library']['name']}: {s['std_cells']} cells, {s['area_um2']:,.0f} "
            f"um^2, longest path {s['longest_path_std_cells']} cells (area only: the library "
            "has no timing, so no Fmax)")


def _verify(args: argparse.Namespace) -> int:
    from hw.lint import LINT_FILE
    from sim.errors import InputError
    from sim.verify.options import option_error
    from sim.verify.report import format_report
    from sim.verify.runner import VerifyError, verify_design
    from sim.verify.toolchain import ToolchainError, find_verilator

    if not args.design.is_dir():
        raise InputError(f"DIR: {args.design} is not a folder; create one with `tpe gen`")
    if not (args.design / "manifest.json").is_file():
        raise InputError(f"DIR: {args.design} has no manifest.json; create it with `tpe gen`")
    if (bad := option_error(args.cases, args.max_dim, args.wave, args.seed)) is not None:
        raise InputError(f"--{bad[0].replace('_', '-')}: {bad[1]}")
    try:
        tool = find_verilator()
        report = verify_design(args.design, seed=args.seed, verbose=args.verbose,
                               cxx_opt=args.cxx_opt, cases=args.cases, max_dim=args.max_dim,
                               wave=args.wave, progress=_steps("tpe verify"))
    except (ToolchainError, FileNotFoundError) as err:  # no Verilator; a file of DIR missing
        raise InputError(str(err)) from None
    except VerifyError as err:
        if args.json:
            print(json.dumps({"design": args.design.name, "pass": False, "error": str(err),
                              "cases": []}))
        print(f"tpe: verify failed: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({
            "design": report.design, "verilator": tool.version_text, "seed": report.seed,
            "pass": report.passed,
            "log": None if report.log_file is None else str(report.log_file),
            "warnings": report.warnings, "cases": report.cases}))
        return 0 if report.passed else 1
    print(f"design {report.design}: Verilator {tool.version_text} ({tool.source}), "
          f"seed {report.seed}")
    print(format_report(report.cases))
    if report.warnings:  # the verdict is the results' and cycles'; these are shown
        print(f"lint: {len(report.warnings)} Verilator warnings not waived by {LINT_FILE} "
              f"(see {args.design / 'sim_build' / 'build.log'}); the first: "
              f"{report.warnings[0]}")
    checked = [c for c in report.cases if c["cycles_checked"]]
    if report.passed:
        if any("cycle_bound" in c for c in report.cases):  # a tile
            worst = max((abs(c["cycle_error"]) for c in checked), default=0.0)
            cycles = (f"measured cycles within the bound of the model's in {len(checked)} of "
                      f"{len(checked)} GEMMs on the model's mapping (largest error "
                      f"{worst:.2%}); {len(report.cases) - len(checked)} random buffer tiles "
                      "reported only")
        else:
            cycles = (f"measured cycles equal the model's in {len(checked)} of {len(checked)} "
                      "stall-free runs" if checked else
                      "measured cycles reported beside the model's, not checked")
        print(f"PASS: {len(report.cases)} GEMMs bit exact; {cycles}")
        return 0
    for c in report.cases:
        for p in c["problems"]:
            print(f"FAIL: {c['case']}: {p}")
    print(f"log: {report.log_file}")
    return 1
