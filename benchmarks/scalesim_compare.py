#!/usr/bin/env python3
"""Compare TPEForge's systolic cycle model with SCALE-Sim 3.0.0 on the same GEMMs.

For every case (a GEMM ``C[M, N] = A[M, K] @ W[K, N]`` on an R x C array) and both dataflows
(OS, WS) this runs

* SCALE-Sim 3.0.0 in its own virtual environment (``.venv-scalesim`` at the repository root;
  SCALE-Sim crashes with numpy 2.4, so it gets ``numpy<2.4`` there), once per case, in a fresh
  subprocess with a per-case timeout, configured so that memory never stalls; its cycles are read
  from the ``Total Cycles`` column of the ``COMPUTE_REPORT.csv`` it writes;
* TPEForge's ``sim.gemm.simulate_gemm(arch, gemm, memory="ideal")``, timed as the median of many
  calls,

checks that

1. our ideal cycles equal ``sim.engines.systolic.gemm_compute_cycles`` (and, when the ``tpe sim
   gemm`` command exists, what it prints with ``--json``);
2. SCALE-Sim reported no stall cycles and mapped the GEMM onto the array as we do
   (OS: rows <- M, cols <- N, stream K; WS: rows <- K, cols <- N, stream M);
3. SCALE-Sim's cycles equal the closed form derived from its code,
   ``F * fold_rows - 1`` with ``fold_rows = K + R + C - 2`` (OS) or ``M + 2R + C - 2`` (WS),
   so that ours - SCALE-Sim = ``F * R + 1`` (OS) or ``F + 1`` (WS), F the number of folds,

and exits 1 if any check fails. docs/scalesim.md explains the closed form and why each side
counts what it counts.

Usage (from the repository root)::

    .venv/bin/python benchmarks/scalesim_compare.py --setup   # once: creates .venv-scalesim
    .venv/bin/python benchmarks/scalesim_compare.py           # default cases, a few minutes
    .venv/bin/python benchmarks/scalesim_compare.py --large   # + 512x4096x4096 on 32x32

Results: a Markdown table on stdout and ``benchmarks/results/scalesim_<date>.csv``.
Exit codes: 0 all checks passed, 1 a check failed, 2 bad input or missing setup.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

if (_here := str(Path(__file__).resolve().parent)) not in sys.path:  # imported, not run
    sys.path.insert(0, _here)
import _peers as peers  # it makes hw/, sim/, models/ importable too
from _peers import Case

SCALESIM_VERSION = "3.0.0"
#: What ``--setup`` installs. numpy 2.4 breaks SCALE-Sim 3.0.0 (docs/scalesim.md).
SCALESIM_REQUIREMENTS = (f"scalesim=={SCALESIM_VERSION}", "numpy<2.4")
DEFAULT_VENV = peers.REPO / ".venv-scalesim"


# -- cases ----------------------------------------------------------------------------------


DEFAULT_CASES = (
    Case(64, 64, 64, 8, 8),
    Case(128, 64, 96, 16, 8),  # non-square array, M, N, K all different: shows the mapping
    Case(100, 60, 50, 16, 8),  # ragged: no dimension divides the array, partial folds
    Case(256, 256, 256, 16, 16),
    Case(512, 512, 512, 32, 32),
)
#: A Llama-2-7B q_proj at 512 tokens; projected at over 40 CPU-minutes for SCALE-Sim.
LARGE_CASES = (Case(512, 4096, 4096, 32, 32),)


# -- closed forms ---------------------------------------------------------------------------


def scalesim_fold_rows(case: Case, dataflow: str) -> int:
    """Rows of SCALE-Sim's demand matrices per fold (one row = one cycle).

    OS (systolic_compute_os.py): the IFMAP demand is T + C - 1 rows (T = K operand rows plus a
    C - 1 gap "to drain"), skewed over R array rows: T + R + C - 2. The OFMAP demand is T - 1
    rows of prefix plus R result rows, skewed over C columns: the same T + R + C - 2.
    WS (systolic_compute_ws.py): IFMAP demand = R rows of weight preload + T = M rows + C - 1,
    skewed over R rows: 2R + C + T - 2; OFMAP = 2R - 1 prefix + T rows skewed over C columns:
    the same 2R + C + T - 2.
    """
    R, C = case.rows, case.cols
    if dataflow == "os":
        return case.K + R + C - 2
    return case.M + 2 * R + C - 2


def scalesim_cycles_closed_form(case: Case, dataflow: str) -> int:
    """SCALE-Sim's ``Total Cycles`` with no stalls.

    Its memory model walks the concatenated demand matrices one row per cycle and reports the
    cycle *index* of the last OFMAP line (double_buffered_scratchpad_mem.py:
    ``total_cycles = max(ofmap_serviced_cycles)``, the line index plus stalls), i.e. the number
    of rows minus one.
    """
    return peers.folds(case, dataflow) * scalesim_fold_rows(case, dataflow) - 1


def diff_closed_form(case: Case, dataflow: str) -> int:
    """Ours minus SCALE-Sim's, with no stalls.

    Per fold, ours (hw.spec.SystolicSpec.fold_cycles) minus SCALE-Sim's rows:
    OS (K + 2R + C - 2) - (K + R + C - 2) = R (our drain of R result rows);
    WS (M + 2R + C - 1) - (M + 2R + C - 2) = 1 (our output register at the bottom of a
    column). Plus 1 overall: we count cycles inclusively, SCALE-Sim reports the last index.
    """
    per_fold = case.rows if dataflow == "os" else 1
    return peers.folds(case, dataflow) * per_fold + 1


def expected_scalesim_mapping(case: Case, dataflow: str) -> dict[str, int]:
    """What SCALE-Sim must put on array rows (Sr), columns (Sc) and in time (T) to match us."""
    if dataflow == "os":
        return {"Sr": case.M, "Sc": case.N, "T": case.K}
    return {"Sr": case.K, "Sc": case.N, "T": case.M}


# -- SCALE-Sim side -------------------------------------------------------------------------

#: Topology CSV in SCALE-Sim's GEMM format (``-i gemm``): name, M, N, K. topology_utils.py turns
#: a row into a convolution with an M x K ifmap, a 1 x K filter, 1 channel and N filters, so
#: the operand matrices are ifmap M x K, filter K x N, ofmap M x N: the same M, N, K as ours.
TOPOLOGY_CSV = "Layer name, M, N, K,\n{name}, {M}, {N}, {K},\n"
#: The layout CSV is only read when a custom layout is enabled, but the file must exist.
LAYOUT_CSV = "Layer name,\n"
#: InterfaceBandwidth = CALC is SCALE-Sim's estimate-bandwidth mode: its read buffers always
#: hit ("In estimate mode, operation is stall free", read_buffer_estimate_bw.py) and the output
#: buffer drains ArrayWidth words a cycle, as fast as the array writes. The SRAMs are sized by
#: :func:`sram_kib`. The benchmark asserts Stall Cycles == 0.
CONFIG_CFG = """\
[general]
run_name = tpeforge_compare

[run_presets]
InterfaceBandwidth = CALC
UseRamulatorTrace = False

[architecture_presets]
ArrayHeight = {rows}
ArrayWidth = {cols}
IfmapSramSzkB = {ifmap_kib}
FilterSramSzkB = {filter_kib}
OfmapSramSzkB = {ofmap_kib}
IfmapOffset = 0
FilterOffset = 100000000
OfmapOffset = 200000000
Dataflow = {dataflow}
ReadRequestBuffer = 1024
WriteRequestBuffer = 1024

[layout]
IfmapCustomLayout = False
IfmapSRAMBankBandwidth = 10
IfmapSRAMBankNum = 10
IfmapSRAMBankPort = 2
FilterCustomLayout = False
FilterSRAMBankBandwidth = 10
FilterSRAMBankNum = 10
FilterSRAMBankPort = 2

[sparsity]
SparsitySupport = False
"""

#: Runs inside the SCALE-Sim venv: ``python -c DRIVER WORKDIR``. Times the simulation alone
#: (construction, which parses the files, plus run_scale; not interpreter start or imports),
#: with traces off (save_disk_space=True) and SCALE-Sim's own printing captured.
DRIVER = r"""
import contextlib, importlib.metadata, io, json, resource, sys, time
work = sys.argv[1]
from scalesim.scale_sim import scalesim
import numpy
out = io.StringIO()
t0 = time.perf_counter()
with contextlib.redirect_stdout(out):
    sim = scalesim(save_disk_space=True, verbose=False, config=work + "/scale.cfg",
                   topology=work + "/topology.csv", layout=work + "/layout.csv",
                   input_type_gemm=True)
    sim.run_scale(top_path=work + "/out")
seconds = time.perf_counter() - t0
layer = sim.runner.single_layer_sim_object_list[0]
items = layer.get_compute_report_items()
cs = layer.compute_system
ifmap_dem, filter_dem, ofmap_dem = cs.get_demand_matrices()
print(json.dumps({
    "seconds": seconds,
    "scalesim_version": importlib.metadata.version("scalesim"),
    "numpy_version": numpy.__version__,
    "total_cycles": int(items[1]),
    "stall_cycles": int(items[2]),
    "Sr": int(cs.Sr), "Sc": int(cs.Sc), "T": int(cs.T),
    "demand_rows": [int(m.shape[0]) for m in (ifmap_dem, filter_dem, ofmap_dem)],
    "report_dir": work + "/out/" + sim.config.get_run_name(),
    "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
}))
"""


@dataclass
class ScaleSimResult:
    #: "ok"; "timeout" or "oom" (stopped by the benchmark's own limits: no result, the time it
    #: ran is a lower bound); "error" (SCALE-Sim failed otherwise: a check failure).
    kind: str
    status: str  # one line for the table: "ok", "timeout after 600 s", ...
    wall_s: float  # parent-side wall time of the subprocess (start, imports, sim, exit)
    detail: str = ""  # the error, for the CSV
    seconds: float | None = None  # the simulation alone, timed inside the driver
    cycles: int | None = None
    stall_cycles: int | None = None
    peak_rss_mib: float | None = None
    mapping: dict[str, int] = field(default_factory=dict)
    demand_rows: list[int] = field(default_factory=list)
    versions: str = ""

    @property
    def ok(self) -> bool:
        return self.kind == "ok"


def _read_compute_report(report_dir: Path) -> dict[str, int]:
    """The official output: ``COMPUTE_REPORT.csv`` (header names have leading spaces)."""
    with open(report_dir / "COMPUTE_REPORT.csv", newline="") as f:
        rows = list(csv.reader(f))
    header = [h.strip() for h in rows[0]]
    values = [v.strip() for v in rows[1]]
    row = dict(zip(header, values, strict=False))
    return {"total_cycles": int(float(row["Total Cycles"])),
            "stall_cycles": int(float(row["Stall Cycles"]))}


def sram_kib(case: Case, fixed_kib: int | None = None) -> dict[str, int]:
    """SRAM sizes (KiB, SCALE-Sim's word is 1 byte) of the SCALE-Sim config.

    Default: each buffer holds its whole operand in its active half (SCALE-Sim's buffers are
    double-buffered with an active fraction of 0.5), the counterpart of our ``memory="ideal"``
    (every operand resident); at least 64 KiB, the size in SCALE-Sim's example config. The
    cycles do not depend on the size in CALC mode, but the run time does: SCALE-Sim pads its
    prefetch traces to the buffer size, so 1 GiB buffers make a 64^3 GEMM take seconds
    (docs/scalesim.md). ``fixed_kib`` gives every buffer that size instead.
    """
    if fixed_kib is not None:
        return {"ifmap_kib": fixed_kib, "filter_kib": fixed_kib, "ofmap_kib": fixed_kib}

    def kib(words: int) -> int:
        return max(64, peers.ceil_div(2 * words, 1024))

    return {"ifmap_kib": kib(case.M * case.K), "filter_kib": kib(case.K * case.N),
            "ofmap_kib": kib(case.M * case.N)}


def run_scalesim(python: Path, case: Case, dataflow: str, timeout_s: float,
                 mem_limit_gib: float, fixed_sram_kib: int | None = None) -> ScaleSimResult:
    with tempfile.TemporaryDirectory(prefix="scalesim_") as tmp:
        work = Path(tmp)
        (work / "scale.cfg").write_text(CONFIG_CFG.format(
            rows=case.rows, cols=case.cols, dataflow=dataflow,
            **sram_kib(case, fixed_sram_kib)))
        (work / "topology.csv").write_text(
            TOPOLOGY_CSV.format(name="gemm", M=case.M, N=case.N, K=case.K))
        (work / "layout.csv").write_text(LAYOUT_CSV)
        run = peers.run_limited([str(python), "-c", DRIVER, str(work)], work, timeout_s,
                                mem_limit_gib)
        proc, wall = run.proc, run.wall_s
        if proc is None:
            return ScaleSimResult("timeout", f"timeout after {timeout_s:g} s", wall_s=wall)
        if proc.returncode != 0:
            last = peers.last_line(proc)
            if "MemoryError" in proc.stderr or "Unable to allocate" in proc.stderr:
                return ScaleSimResult(
                    "oom", f"out of memory ({mem_limit_gib:g} GiB limit) after {wall:.0f} s",
                    wall_s=wall, detail=last)
            return ScaleSimResult("error", f"failed after {wall:.0f} s", wall_s=wall,
                                  detail=last)
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        report = _read_compute_report(Path(data["report_dir"]))
        if (report["total_cycles"], report["stall_cycles"]) != (
                data["total_cycles"], data["stall_cycles"]):
            return ScaleSimResult("error", "COMPUTE_REPORT.csv disagrees", wall_s=wall,
                                  detail=f"COMPUTE_REPORT.csv {report}, simulator object {data}")
        return ScaleSimResult(
            "ok", "ok", wall_s=wall, seconds=data["seconds"], cycles=report["total_cycles"],
            stall_cycles=report["stall_cycles"], peak_rss_mib=data["peak_rss_kib"] / 1024,
            mapping={k: data[k] for k in ("Sr", "Sc", "T")},
            demand_rows=data["demand_rows"],
            versions=f"scalesim {data['scalesim_version']}, numpy {data['numpy_version']}",
        )


def _numpy_below_2_4(venv: Path, more: list[str]) -> str | None:
    (numpy_version,) = more
    major, minor = (int(x) for x in numpy_version.split(".")[:2])
    if (major, minor) >= (2, 4):
        return f"{venv} has numpy {numpy_version}; SCALE-Sim 3.0.0 needs numpy < 2.4"
    return None


#: A venv passes if it has SCALE-Sim 3.0.0 and an older numpy.
PEER = peers.Peer(
    name="SCALE-Sim", dist="scalesim", version=SCALESIM_VERSION,
    requirements=SCALESIM_REQUIREMENTS,
    probe=("import importlib.metadata as m, numpy, scalesim.scale_sim; "
           "print(m.version('scalesim'), numpy.__version__)"),
    check_more=_numpy_below_2_4,
    default_venv=DEFAULT_VENV, prog="scalesim_compare", script=__file__,
)


# -- TPEForge side --------------------------------------------------------------------------


@dataclass
class OursResult:
    cycles: int
    closed_form: int  # gemm_compute_cycles(spec, M, N, K)
    seconds: float  # median of simulate_gemm(arch, gemm, memory="ideal"), caches cleared
    repeats: int
    e2e_seconds: float  # median of load_arch + Gemm + simulate_gemm, caches cleared
    e2e_repeats: int
    table_loaded_seconds: float  # as ``seconds`` but the energy table stays parsed
    warm_seconds: float  # median of simulate_gemm with its result cache warm (a cache hit)
    cli_cycles: int | None  # `tpe sim gemm ... --json`; None when skipped
    cli_note: str  # why the CLI cross-check was skipped, or ""
    caches_cleared: int


def _overrides(case: Case, dataflow: str) -> list[str]:
    return [f"engine.rows={case.rows}", f"engine.cols={case.cols}",
            f"engine.dataflow={dataflow}"]


def _cli_cycles(case: Case, dataflow: str) -> tuple[int | None, str]:
    """``(cycles, "")`` printed by ``tpe sim gemm --json``, or ``(None, why)`` when the command
    cannot run here (e.g. not merged yet). A wrong number is caught by :func:`check`."""
    sets = [a for o in _overrides(case, dataflow) for a in ("--set", o)]
    argv = ["sim", "gemm", "--arch", "systolic", *sets, "--memory", "ideal",
            "--M", str(case.M), "--N", str(case.N), "--K", str(case.K), "--json"]
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from sim.cli import main; sys.exit(main())", *argv],
        capture_output=True, text=True, cwd=peers.REPO)
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        return None, f"`tpe {' '.join(argv[:2])}` failed: {why}"
    try:
        return int(_find_key(json.loads(proc.stdout), "cycles")), ""
    except (ValueError, KeyError) as err:
        return None, f"`tpe sim gemm --json` printed no cycles: {err}"


def _find_key(data: object, key: str) -> object:
    """``data[key]``, looking one level into nested dicts (e.g. ``{"result": {...}}``)."""
    if isinstance(data, dict):
        if key in data:
            return data[key]
        for value in data.values():
            if isinstance(value, dict) and key in value:
                return value[key]
    raise KeyError(f"no {key!r} in the JSON output: {data!r}")


def run_ours(case: Case, dataflow: str, min_repeats: int, min_total_s: float,
             max_repeats: int, use_cli: bool) -> OursResult:
    from hw.spec import load_arch
    from models.ops import Gemm
    from sim import cache_info, clear_caches
    from sim.energy import load_table
    from sim.engines.systolic import gemm_compute_cycles
    from sim.gemm import simulate_gemm

    overrides = _overrides(case, dataflow)
    arch = load_arch("systolic", overrides=overrides)
    gemm = Gemm(name="bench", M=case.M, N=case.N, K=case.K)
    result = simulate_gemm(arch, gemm, memory="ideal")
    closed = gemm_compute_cycles(arch.engine, case.M, case.N, case.K)

    call = functools.partial(simulate_gemm, arch, gemm, memory="ideal")
    # cold: every memo table of hw/sim/mapping/models emptied before each call
    clear = [clear_caches]
    seconds, repeats = peers.median_call_seconds(call, clear, min_repeats, min_total_s, max_repeats)
    # as cold, but the energy table parsed again before the call, as a running process has it
    table_loaded_seconds, _ = peers.median_call_seconds(
        call, [clear_caches, functools.partial(load_table, arch.energy_table)], min_repeats,
        min_total_s, max_repeats)
    call()  # warm the caches: a warm call is a cache hit, not a simulation (CSV only)
    warm_seconds, _ = peers.median_call_seconds(call, (), min_repeats, min_total_s, max_repeats)

    def end_to_end() -> object:
        a = load_arch("systolic", overrides=overrides)
        g = Gemm(name="bench", M=case.M, N=case.N, K=case.K)
        return simulate_gemm(a, g, memory="ideal")

    e2e_seconds, e2e_repeats = peers.median_call_seconds(
        end_to_end, clear, max(10, min_repeats // 10), min_total_s, max_repeats)
    cli_cycles, cli_note = _cli_cycles(case, dataflow) if use_cli else (None, "--no-cli")
    return OursResult(
        cycles=int(result.cycles), closed_form=closed, seconds=seconds, repeats=repeats,
        e2e_seconds=e2e_seconds, e2e_repeats=e2e_repeats,
        table_loaded_seconds=table_loaded_seconds, warm_seconds=warm_seconds,
        cli_cycles=cli_cycles, cli_note=cli_note, caches_cleared=len(cache_info()))


# -- report ---------------------------------------------------------------------------------


@dataclass
class Row(peers.CaseRow):
    ss: ScaleSimResult
    ours: OursResult
    failures: list[str]

    @property
    def diff(self) -> int | None:
        return None if self.ss.cycles is None else self.ours.cycles - self.ss.cycles

    @property
    def ss_seconds_or_bound(self) -> float:
        """The simulation time, or (no result) the wall time it ran before being stopped."""
        return self.ss.seconds if self.ss.seconds is not None else self.ss.wall_s

    @property
    def ratio(self) -> float:
        return self.ss_seconds_or_bound / self.ours.seconds

    @property
    def ratio_e2e(self) -> float:
        return self.ss_seconds_or_bound / self.ours.e2e_seconds


def check(row: Row) -> list[str]:
    """Every check the benchmark makes; an empty list means the case passed."""
    case, df, ss, ours = row.case, row.dataflow, row.ss, row.ours
    bad = []
    if ours.cycles != ours.closed_form:
        bad.append(f"simulate_gemm gives {ours.cycles} cycles, gemm_compute_cycles "
                   f"{ours.closed_form}")
    if ours.cli_cycles is not None and ours.cli_cycles != ours.cycles:
        bad.append(f"tpe sim gemm --json gives {ours.cli_cycles}, simulate_gemm {ours.cycles}")
    if ss.kind == "error":
        bad.append(f"SCALE-Sim {ss.status}: {ss.detail}")
    if not ss.ok:
        return bad  # nothing measured to check (a timeout or out-of-memory is reported)
    if ss.stall_cycles != 0:
        bad.append(f"SCALE-Sim stalled {ss.stall_cycles} cycles: memory is not ideal")
    want = expected_scalesim_mapping(case, df)
    if ss.mapping != want:
        bad.append(f"SCALE-Sim mapped (Sr, Sc, T) = {ss.mapping}, ours is {want}")
    rows = peers.folds(case, df) * scalesim_fold_rows(case, df)
    if any(r != rows for r in ss.demand_rows):
        bad.append(f"SCALE-Sim demand matrices have {ss.demand_rows} rows, closed form {rows}")
    if ss.cycles != scalesim_cycles_closed_form(case, df):
        bad.append(f"SCALE-Sim {ss.cycles} cycles, closed form "
                   f"{scalesim_cycles_closed_form(case, df)}")
    if row.diff != diff_closed_form(case, df):
        bad.append(f"ours - SCALE-Sim = {row.diff}, closed form {diff_closed_form(case, df)}")
    return bad


def _fmt_ratio(r: float, bound: bool) -> str:
    text = f"{r:,.0f}x" if r >= 10 else f"{r:.1f}x"
    return (">= " + text) if bound else text


def markdown_table(rows: Sequence[Row]) -> str:
    head = ("| GEMM MxNxK on RxC | df | folds | SCALE-Sim cycles | our cycles | ours - SCALE-Sim "
            "| closed-form diff | SCALE-Sim time | our time (median of n) | speed ratio |")
    lines = [head, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        ss_ok = r.ss.ok
        lines.append(peers.table_row([
            r.case.name, r.dataflow.upper(), f"{r.folds:,}",
            f"{r.ss.cycles:,}" if ss_ok else r.ss.status,
            f"{r.ours.cycles:,}",
            f"{r.diff:,}" if ss_ok else "-",
            f"{diff_closed_form(r.case, r.dataflow):,}",
            peers.fmt_seconds(r.ss.seconds) if ss_ok else
            f"> {r.ss.wall_s:.0f} s" if r.ss.kind != "error" else "-",
            f"{peers.fmt_seconds(r.ours.seconds)} ({r.ours.repeats})",
            _fmt_ratio(r.ratio, bound=not ss_ok) if r.ss.kind != "error" else "-",
        ]))
    return "\n".join(lines)


CSV_FIELDS = (
    *peers.CASE_CSV_FIELDS,
    "scalesim_status", "scalesim_error", "scalesim_cycles", "scalesim_stall_cycles",
    "scalesim_cycles_closed_form", "ours_cycles", "ours_cycles_closed_form", "diff",
    "diff_closed_form", "scalesim_s", "scalesim_process_wall_s", "scalesim_peak_rss_mib",
    "ours_s_median", "ours_repeats",
    "ours_e2e_s_median", "ours_e2e_repeats", "ours_table_loaded_s_median",
    "ours_warm_cache_s_median",
    "speed_ratio", "speed_ratio_e2e", "speed_ratio_table_loaded",
    "speed_ratio_is_lower_bound", "tpe_cli_cycles", "checks",
)


def _csv_row(r: Row) -> dict[str, object]:
    c = r.case
    return {
        **r.csv_fields(),
        "scalesim_status": r.ss.status, "scalesim_error": r.ss.detail,
        "scalesim_cycles": r.ss.cycles if r.ss.ok else "",
        "scalesim_stall_cycles": r.ss.stall_cycles if r.ss.ok else "",
        "scalesim_cycles_closed_form": scalesim_cycles_closed_form(c, r.dataflow),
        "ours_cycles": r.ours.cycles, "ours_cycles_closed_form": r.ours.closed_form,
        "diff": r.diff if r.ss.ok else "",
        "diff_closed_form": diff_closed_form(c, r.dataflow),
        "scalesim_s": f"{r.ss.seconds:.4f}" if r.ss.ok else "",
        "scalesim_process_wall_s": f"{r.ss.wall_s:.4f}",
        "scalesim_peak_rss_mib":
            "" if r.ss.peak_rss_mib is None else f"{r.ss.peak_rss_mib:.0f}",
        "ours_s_median": f"{r.ours.seconds:.3e}", "ours_repeats": r.ours.repeats,
        "ours_e2e_s_median": f"{r.ours.e2e_seconds:.3e}",
        "ours_e2e_repeats": r.ours.e2e_repeats,
        "ours_table_loaded_s_median": f"{r.ours.table_loaded_seconds:.3e}",
        "ours_warm_cache_s_median": f"{r.ours.warm_seconds:.3e}",
        **({"speed_ratio": f"{r.ratio:.1f}", "speed_ratio_e2e": f"{r.ratio_e2e:.1f}",
            "speed_ratio_table_loaded":
                f"{r.ss_seconds_or_bound / r.ours.table_loaded_seconds:.1f}"}
           if r.ss.kind != "error" else {}),
        "speed_ratio_is_lower_bound": not r.ss.ok,
        "tpe_cli_cycles": "" if r.ours.cli_cycles is None else r.ours.cli_cycles,
        "checks": "pass" if not r.failures else "FAIL: " + "; ".join(r.failures),
    }


# -- main -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Compare TPEForge's systolic cycle model with SCALE-Sim 3.0.0.")
    PEER.add_venv_arguments(p)
    p.add_argument("--large", action="store_true",
                   help="add 512x4096x4096 on 32x32 (SCALE-Sim: over 40 CPU-minutes projected; "
                        "bounded by --timeout)")
    peers.add_run_arguments(p, "SCALE-Sim", timeout_s=900.0, mem_limit_gib=12.0)
    p.add_argument("--sram-kib", type=int,
                   help="give every SCALE-Sim SRAM this size (default: sized to hold the "
                        "whole operand; see sram_kib())")
    peers.add_repeat_arguments(p, per="case")
    p.add_argument("--no-cli", action="store_true",
                   help="skip the `tpe sim gemm --json` cross-check")
    p.add_argument("--out", type=Path,
                   help="CSV path (default benchmarks/results/scalesim_<date>.csv)")
    return p


def _run_case(case: Case, df: str, python: Path, args: argparse.Namespace) -> Row:
    print(f"- {case.name} {df.upper()}: SCALE-Sim ...", end="", flush=True)
    ss = run_scalesim(python, case, df, args.timeout, args.mem_limit_gib, args.sram_kib)
    shown = f"{ss.cycles:,} cycles in {ss.seconds:.2f} s" if ss.ok else ss.status
    print(f" {shown}; ours ...", end="", flush=True)
    ours = run_ours(case, df, args.min_repeats, args.min_time, args.max_repeats,
                    use_cli=not args.no_cli)
    row = Row(case, df, ss, ours, failures=[])
    row.failures = check(row)
    print(f" {ours.cycles:,} cycles, {peers.fmt_seconds(ours.seconds)} median of "
          f"{ours.repeats}", end="", flush=True)
    return row


def report(rows: Sequence[Row]) -> None:
    """The table and what it measured, after the runs."""
    print()
    print(markdown_table(rows))
    print()
    versions = next((r.ss.versions for r in rows if r.ss.versions), "")
    cleared = rows[0].ours.caches_cleared if rows else 0
    skipped = {r.ours.cli_note for r in rows if r.ours.cli_cycles is None}
    cli = ("done for every case" if not skipped else
           "skipped (" + "; ".join(sorted(skipped)) + ")")
    print(f"SCALE-Sim: {versions or 'no successful run'}; seconds = its simulation in-process "
          "(config parse + run_scale, traces off), one run per case. "
          "Ours: median of per-call simulate_gemm(arch, gemm, memory='ideal') times with "
          f"all {cleared} caches of hw/sim/mapping/models emptied by sim.clear_caches() before "
          "every call (cold). `tpe sim gemm --json` cross-check: " + cli + ".")
    bounds = [r for r in rows if r.ss.kind in ("timeout", "oom")]
    for r in bounds:
        print(f"{r.case.name} {r.dataflow.upper()}: SCALE-Sim {r.ss.status}"
              + (f" ({r.ss.detail})" if r.ss.detail else "") + "; predicted "
              f"{scalesim_cycles_closed_form(r.case, r.dataflow):,} cycles by the closed form; "
              f"speed ratio >= {r.ratio:,.0f}x (a lower bound)")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cases = list(args.cases or DEFAULT_CASES)
    if args.large and not args.cases:
        cases += LARGE_CASES
    return PEER.run(args, cases, functools.partial(_run_case, args=args), CSV_FIELDS, _csv_row,
                    report, failed="FAILED the checks", passed="match the closed forms")


if __name__ == "__main__":
    sys.exit(main())
