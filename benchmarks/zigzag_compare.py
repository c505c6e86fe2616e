#!/usr/bin/env python3
"""Compare TPEForge with ZigZag 3.9.1 (PyPI ``zigzag-dse``) on the same GEMMs and arrays.

For every case (a GEMM ``C[M, N] = A[M, K] @ W[K, N]``, INT8 operands, INT32 outputs, on an
R x C systolic array) and both dataflows (OS, WS) this runs

* ZigZag 3.9.1 in its own virtual environment (``.venv-zigzag`` at the repository root), once
  per case, in a fresh subprocess with a per-case timeout: its API
  ``zigzag.api.get_hardware_performance_zigzag(workload, accelerator, mapping, opt="latency")``
  on three YAML files this script writes (see :func:`zigzag_inputs`): the GEMM as a ZigZag
  layer, an accelerator built from TPEForge's ``systolic`` preset (an A, a W and an output
  register in every PE, one SRAM per operand, a DRAM, energies per access taken from our own
  energy model) and a fixed spatial mapping equal to ours (OS: rows <- M, cols <- N; WS:
  rows <- K, cols <- N); ZigZag searches the temporal mapping (LOMA) itself;
* TPEForge's ``sim.gemm.simulate_gemm(arch, gemm, memory="real")`` and ``memory="ideal"``
  on ``hw.spec.load_arch("systolic", ["engine.rows=R", "engine.cols=C",
  "engine.dataflow=os|ws"])``, each timed as the median of many calls, uncached
  (``sim.clear_caches()`` and the energy table parsed again before every call) and cached.

It reports ZigZag's latency and energy next to ours with their ratio, a breakdown of both into
the parts docs/zigzag.md explains, and the speed ratio (ZigZag seconds / our seconds) measured
in the same run. It checks that ZigZag kept our spatial mapping, that its stall-free cycle count
equals the closed form read from its code (:func:`zigzag_compute_closed_form`), and that both
tools charge the same MAC energy.

Usage (from the repository root)::

    .venv/bin/python benchmarks/zigzag_compare.py --setup   # once: creates .venv-zigzag
    .venv/bin/python benchmarks/zigzag_compare.py           # default cases, about 1 min

Results: Markdown tables on stdout and ``benchmarks/results/zigzag_<date>.csv``.
Exit codes: 0 every case ran and passed the checks; 1 a ZigZag run failed or timed out, or a
check failed; 2 bad input or missing setup.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

if (_here := str(Path(__file__).resolve().parent)) not in sys.path:  # imported, not run
    sys.path.insert(0, _here)
import _peers as peers  # it makes hw/, sim/, models/ importable too
from _peers import Case

#: Number formats of every case: INT8 operands, INT32 outputs (our Gemm's default o_fmt).
A_FMT, W_FMT, O_FMT = "int8", "int8", "int32"
O_FINAL_BITS = 32

ZIGZAG_VERSION = "3.9.1"
#: What ``--setup`` installs. zigzag-dse 3.9.1 imports ``six`` (parser/upgraded_validator.py)
#: without declaring it.
ZIGZAG_REQUIREMENTS = (f"zigzag-dse=={ZIGZAG_VERSION}", "six")
DEFAULT_VENV = peers.REPO / ".venv-zigzag"


# -- cases ----------------------------------------------------------------------------------


DEFAULT_CASES = (
    Case(64, 64, 64, 8, 8),
    Case(256, 256, 256, 16, 16),
    Case(512, 512, 512, 32, 32),
    Case(128, 4096, 4096, 32, 32),  # a Llama-2-7B-sized projection at 128 tokens
    Case(1, 4096, 4096, 32, 32),  # decode: one token, DRAM-bound
)

#: Our GEMM dimension -> ZigZag's loop dimension, as ZigZag's own ONNX GEMM parser names them
#: (parser/onnx/gemm_parser.py: ``O[d][k] += I[d][c] * W[c][k]``). ZigZag's K is our N.
ZZ_DIM = {"M": "D", "N": "K", "K": "C"}
ZZ_EQUATION = "O[d][k]+=I[d][c]*W[c][k]"


def expected_spatial(case: Case, dataflow: str) -> dict[str, int]:
    """ZigZag's integer spatial unrolling if it keeps our mapping: ``{its dim: unroll}``. A
    dimension smaller than the array is unrolled by its size (ZigZag clips the factor)."""
    r, c, _ = peers.array_dims(dataflow)
    return {ZZ_DIM[r]: min(case.size(r), case.rows), ZZ_DIM[c]: min(case.size(c), case.cols)}


def zigzag_compute_closed_form(case: Case, dataflow: str) -> tuple[int, int]:
    """``(ideal_temporal_cycle, systolic_drain_cycle)`` of ZigZag 3.9.1 for our spatial mapping.

    cost_model.py ``calc_overall_latency``: ``ideal_temporal_cycle`` is
    ``temporal_mapping.total_cycle``, the product of every temporal loop, one MAC per PE per
    cycle: ``folds * streamed dimension`` (OS ``F * K``, WS ``F * M``) when the spatial
    unrolling divides the GEMM. ``systolic_drain_cycle`` is added once per layer: ``sum over
    the systolic array dimensions of (unrolling - 1)``. Neither has a per-fold fill, drain or
    weight preload.
    """
    r, c, s = peers.array_dims(dataflow)
    spatial = expected_spatial(case, dataflow)
    drain = (spatial[ZZ_DIM[r]] - 1) + (spatial[ZZ_DIM[c]] - 1)
    return peers.folds(case, dataflow) * case.size(s), drain


# -- the ZigZag inputs ----------------------------------------------------------------------


@dataclass(frozen=True)
class UnitCosts:
    """Our energy per action for one architecture (pJ), read back from a GemmResult."""

    mac_pj: float  # one multiply plus one accumulate
    register_bit_pj: float
    a_byte_pj: float
    w_byte_pj: float
    o_byte_pj: float
    dram_byte_pj: float


def unit_costs(result: Any) -> UnitCosts:
    """Per-action energies of ``result.arch``: each component's energy over its action count
    (``simulate_gemm`` prices every action of a component at one energy)."""
    energy = dict(result.energy_breakdown_pj)
    counts = dict(result.actions)

    def per(component: str) -> float:
        if not counts.get(component):
            raise ValueError(f"no {component!r} actions in the result to price ZigZag's with")
        return energy[component] / counts[component]

    return UnitCosts(
        mac_pj=(energy["mac_multiplier"] + energy["mac_adder"]) / result.macs,
        register_bit_pj=per("pe_registers"),
        a_byte_pj=per("a_buffer"), w_byte_pj=per("w_buffer"), o_byte_pj=per("o_buffer"),
        dram_byte_pj=per("dram"),
    )


def _port(name: str, kind: str, min_bits: int, max_bits: int, *alloc: str) -> dict[str, Any]:
    return {"name": name, "type": kind, "bandwidth_min": min_bits, "bandwidth_max": max_bits,
            "allocation": list(alloc)}


def _register(op: str, bits: int, bit_pj: float) -> dict[str, Any]:
    """One register of ``bits`` per PE (``served_dimensions: []``), a read and a write port of
    one word; the output register gets a second pair (the tpu_like example's ``rf_2B``) so that
    a partial sum can arrive and leave in the same cycle, as in a systolic PE."""
    ports = [_port("r_port_1", "read", bits, bits, f"{op}, tl"),
             _port("w_port_1", "write", bits, bits, f"{op}, fh")]
    if op == "O":
        ports += [_port("r_port_2", "read", bits, bits, "O, th"),
                  _port("w_port_2", "write", bits, bits, "O, fl")]
    return {"size": bits, "r_cost": bits * bit_pj, "w_cost": bits * bit_pj, "area": 0.0,
            "latency": 1, "operands": [op], "ports": ports, "served_dimensions": []}


def _sram(op: str, buffer: Any, byte_pj: float, word_bits: int) -> dict[str, Any]:
    """An operand SRAM of our buffer's capacity and width. ZigZag prices an access of
    ``bandwidth_max`` bits and rounds traffic up to ``bandwidth_min`` bits, so a cost of
    ``byte_pj * width / 8`` with a one-word minimum charges ``byte_pj`` per byte, as we do.
    Array side: ``ports`` ports of ``width_bits``; DRAM side: a port of its own (sim.memory
    assumes DRAM fills and write-backs use separate banks/ports)."""
    width = buffer.width_bits
    if op == "O":
        array_side = ([_port("r_port_1", "read", word_bits, width, "O, tl"),
                       _port("w_port_1", "write", word_bits, width, "O, fl")]
                      if buffer.ports >= 2 else
                      [_port("rw_port_1", "read_write", word_bits, width, "O, tl", "O, fl")])
        ports = [*array_side, _port("rw_port_2", "read_write", word_bits, width, "O, th", "O, fh")]
    else:
        ports = [_port("r_port_1", "read", word_bits, width, f"{op}, tl"),
                 _port("w_port_1", "write", word_bits, width, f"{op}, fh")]
    return {"size": buffer.capacity_bytes * 8, "r_cost": byte_pj * width / 8,
            "w_cost": byte_pj * width / 8, "area": 0.0, "latency": 1, "operands": [op],
            "ports": ports, "served_dimensions": ["D1", "D2"]}


def dram_bits_per_cycle(arch: Any) -> int:
    """Our DRAM bandwidth in bits per engine cycle, rounded down: ZigZag's port bandwidths are
    integers (12.8 GB/s at 1 GHz = 102.4 -> 102, 0.4% less)."""
    return math.floor(arch.dram.bandwidth_gb_per_s * 1e9 * 8 / (arch.clock_mhz * 1e6))


def zigzag_inputs(case: Case, dataflow: str, arch: Any, costs: UnitCosts
                  ) -> dict[str, Any]:
    """The accelerator, workload and mapping ZigZag reads, as plain data."""
    spec = arch.engine
    dram_bits = dram_bits_per_cycle(arch)
    dram_cost = costs.dram_byte_pj * dram_bits / 8
    every = [f"{op}, {d}" for op in ("I1", "I2") for d in ("fh", "tl")]
    every += [f"O, {d}" for d in ("fh", "tl", "fl", "th")]
    accelerator = {
        "name": f"tpeforge_systolic_{case.rows}x{case.cols}_{dataflow}",
        "memories": {
            "reg_A": _register("I1", spec.a_bits, costs.register_bit_pj),
            "reg_W": _register("I2", spec.w_bits, costs.register_bit_pj),
            "reg_O": _register("O", spec.acc_bits, costs.register_bit_pj),
            "sram_A": _sram("I1", arch.a_buffer, costs.a_byte_pj, spec.a_bits),
            "sram_W": _sram("I2", arch.w_buffer, costs.w_byte_pj, spec.w_bits),
            "sram_O": _sram("O", arch.o_buffer, costs.o_byte_pj, spec.acc_bits),
            "dram": {
                "size": 10**10, "r_cost": dram_cost, "w_cost": dram_cost, "area": 0.0,
                # ZigZag 3.9.1 parses `latency` but its cost model never reads it.
                "latency": max(1, round(arch.dram.latency_ns * arch.clock_mhz / 1e3)),
                "operands": ["I1", "I2", "O"],
                "ports": [_port("rw_port_1", "read_write", 8, dram_bits, *every)],
                "served_dimensions": ["D1", "D2"],
            },
        },
        "operational_array": {
            "input_precision": [spec.a_bits, spec.w_bits],
            "unit_energy": costs.mac_pj, "unit_area": 0.0,
            "dimensions": ["D1", "D2"], "sizes": [case.rows, case.cols],
            # operands (OS: A and W; WS: A and partial sums) move one PE per cycle along both
            "systolic_dimensions": ["D1", "D2"],
        },
    }
    workload = [{
        "id": 0, "name": "gemm", "operator_type": "Gemm", "equation": ZZ_EQUATION,
        "dimension_relations": [], "loop_dims": ["D", "K", "C"],
        "loop_sizes": [case.M, case.N, case.K],
        "operand_precision": {"I": spec.a_bits, "W": spec.w_bits, "O": spec.acc_bits,
                              "O_final": O_FINAL_BITS},
        "operand_source": {"I": 0, "W": 0},  # the layer's own id: both read from memory
    }]
    r, c, _ = peers.array_dims(dataflow)
    mapping = [{
        "name": "default",
        "spatial_mapping": {"D1": [f"{ZZ_DIM[r]}, {case.rows}"],
                            "D2": [f"{ZZ_DIM[c]}, {case.cols}"]},
        "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"},
    }]
    return {"accelerator": accelerator, "workload": workload, "mapping": mapping}


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        if "e" in text and "." not in text:  # PyYAML reads 1e-05 as a string, 1.0e-05 as float
            text = text.replace("e", ".0e")
        return text
    if isinstance(value, str):
        return json.dumps(value)  # a double-quoted YAML scalar
    raise TypeError(f"cannot write {value!r} to YAML")


def to_yaml(value: Any, indent: int = 0) -> str:
    """Block-style YAML of nested dicts and lists of scalars (our venv has no PyYAML). The
    driver checks that ZigZag's YAML loader reads it back unchanged."""
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, dict):
                lines.append(f"{pad}{k}:" if v else f"{pad}{k}: {{}}")
                if v:
                    lines.append(to_yaml(v, indent + 1))
            elif isinstance(v, list) and any(isinstance(x, dict | list) for x in v):
                lines.append(f"{pad}{k}:")
                lines.append(to_yaml(v, indent + 1))
            elif isinstance(v, list):
                lines.append(f"{pad}{k}: [{', '.join(_yaml_scalar(x) for x in v)}]")
            else:
                lines.append(f"{pad}{k}: {_yaml_scalar(v)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                body = to_yaml(item, indent + 1).splitlines()
                lines.append(f"{pad}- {body[0].lstrip()}")
                lines.extend(body[1:])
            else:
                lines.append(f"{pad}- {_yaml_scalar(item)}")
    else:
        raise TypeError(f"cannot write {value!r} as a YAML document")
    return "\n".join(lines)


# -- ZigZag side ----------------------------------------------------------------------------

#: Runs inside the ZigZag venv: ``python -c DRIVER WORKDIR LPF_LIMIT``. Prints one JSON line.
#: ``import_s``: importing ZigZag (and PyYAML); ``api_s``: the API call, i.e. parsing the three
#: files, the spatial mapping stage, LOMA's temporal-mapping search, a cost-model evaluation per
#: temporal mapping, and ZigZag's own result files (JSON, pickle, loop ordering, a PNG of the
#: memory hierarchy), as a user gets it; ``cme_s``: the time inside CostModelEvaluation.__init__
#: (which runs the cost model), summed over ``cme_count`` evaluations.
DRIVER = r"""
import importlib.metadata, json, sys, time
work, lpf_limit = sys.argv[1], int(sys.argv[2])
t0 = time.perf_counter()
import yaml
from zigzag.api import get_hardware_performance_zigzag
from zigzag.cost_model.cost_model import CostModelEvaluation
import_s = time.perf_counter() - t0
with open(work + "/inputs.json") as f:
    wanted = json.load(f)
for name in ("accelerator", "workload", "mapping"):
    with open(f"{work}/{name}.yaml") as f:
        if yaml.safe_load(f) != wanted[name]:
            sys.exit(f"{name}.yaml does not read back as what the benchmark wrote")
timing = {"count": 0, "s": 0.0}
init = CostModelEvaluation.__init__
def timed_init(self, *args, **kwargs):
    t = time.perf_counter()
    init(self, *args, **kwargs)
    timing["s"] += time.perf_counter() - t
    timing["count"] += 1
CostModelEvaluation.__init__ = timed_init
t0 = time.perf_counter()
energy, latency, cmes = get_hardware_performance_zigzag(
    work + "/workload.yaml", work + "/accelerator.yaml", work + "/mapping.yaml",
    opt="latency", dump_folder=work + "/out", lpf_limit=lpf_limit,
    loma_show_progress_bar=False)
api_s = time.perf_counter() - t0
cme = cmes[0][1][0][0]
mem_energy = {}
for op, per_level in cme.mem_energy_breakdown.items():
    mem_op = cme.memory_operand_links.layer_to_mem_op(op)
    levels = cme.accelerator.memory_hierarchy.get_memory_levels(mem_op=mem_op)
    for level, pj in zip(levels, per_level):
        mem_energy[level.name] = mem_energy.get(level.name, 0.0) + float(pj)
print(json.dumps({
    "zigzag_version": importlib.metadata.version("zigzag-dse"),
    "import_s": import_s, "api_s": api_s,
    "cme_count": timing["count"], "cme_s": timing["s"],
    "api_energy": float(energy), "api_latency": float(latency),
    "latency_total2": float(cme.latency_total2),
    "ideal_cycle": float(cme.ideal_cycle),
    "ideal_temporal_cycle": float(cme.ideal_temporal_cycle),
    "stall_slack_comb": float(cme.stall_slack_comb),
    "data_onloading_cycle": float(cme.data_onloading_cycle),
    "data_offloading_cycle": float(cme.data_offloading_cycle),
    "systolic_drain_cycle": float(cme.systolic_drain_cycle),
    "energy_total": float(cme.energy_total), "mac_energy": float(cme.mac_energy),
    "mem_energy": mem_energy,
    "spatial": {str(d): int(u) for d, u in cme.spatial_mapping_int.spatial_loop_dim_size},
    "temporal_mapping": str(cme.temporal_mapping),
}))
"""


@dataclass
class ZigZagResult:
    #: "ok"; "timeout" (stopped after --timeout s); "error" (ZigZag failed).
    kind: str
    status: str  # one line for the table
    process_s: float  # parent-side wall time of the subprocess: start, imports, run, exit
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)  # the driver's JSON

    @property
    def ok(self) -> bool:
        return self.kind == "ok"

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    @property
    def compute_cycles(self) -> float:
        """Stall-free cycles: the temporal loops plus the one-off systolic drain."""
        return self["ideal_temporal_cycle"] + self["systolic_drain_cycle"]

    def energy_by_part(self) -> dict[str, float]:
        mem = self["mem_energy"]
        return {
            "mac": self["mac_energy"],
            "registers": sum(v for k, v in mem.items() if k.startswith("reg_")),
            "sram": sum(v for k, v in mem.items() if k.startswith("sram_")),
            "dram": mem.get("dram", 0.0),
        }


def write_inputs(work: Path, inputs: dict[str, Any]) -> None:
    work.mkdir(parents=True, exist_ok=True)
    for name, data in inputs.items():
        (work / f"{name}.yaml").write_text(to_yaml(data) + "\n")
    (work / "inputs.json").write_text(json.dumps(inputs, indent=1))


def run_zigzag(python: Path, work: Path, timeout_s: float, lpf_limit: int,
               mem_limit_gib: float) -> ZigZagResult:
    """One ZigZag evaluation of the inputs in ``work`` in a fresh process."""
    run = peers.run_limited([str(python), "-c", DRIVER, str(work), str(lpf_limit)], work,
                            timeout_s, mem_limit_gib)
    proc, wall = run.proc, run.wall_s
    if proc is None:
        return ZigZagResult("timeout", f"timeout after {timeout_s:g} s", process_s=wall)
    if proc.returncode != 0:
        return ZigZagResult("error", f"failed after {wall:.1f} s", process_s=wall,
                            detail=peers.last_line(proc))
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return ZigZagResult("ok", "ok", process_s=wall, data=data)


#: A venv passes if it imports ZigZag 3.9.1 (and PyYAML, which the driver uses).
PEER = peers.Peer(
    name="ZigZag", dist="zigzag-dse", version=ZIGZAG_VERSION, requirements=ZIGZAG_REQUIREMENTS,
    probe="import importlib.metadata as m, yaml, zigzag.api; print(m.version('zigzag-dse'))",
    default_venv=DEFAULT_VENV, prog="zigzag_compare", script=__file__,
)


# -- TPEForge side --------------------------------------------------------------------------


@dataclass
class OursResult:
    real: Any  # GemmResult, memory="real"
    ideal: Any  # GemmResult, memory="ideal"
    costs: UnitCosts
    #: median seconds and repeats, by "real_cold", "real_cached", "ideal_cold", "ideal_cached"
    seconds: dict[str, float]
    repeats: dict[str, int]

    def energy_by_part(self, which: str = "real") -> dict[str, float]:
        e = dict(getattr(self, which).energy_breakdown_pj)
        return {
            "mac": e["mac_multiplier"] + e["mac_adder"],
            "registers": e["pe_registers"],
            "sram": e["a_buffer"] + e["w_buffer"] + e["o_buffer"],
            "dram": e["dram"],
        }


def load_case_arch(case: Case, dataflow: str) -> Any:
    from hw.spec import load_arch

    return load_arch("systolic", [f"engine.rows={case.rows}", f"engine.cols={case.cols}",
                                  f"engine.dataflow={dataflow}"])


def run_ours(case: Case, dataflow: str, min_repeats: int, min_total_s: float,
             max_repeats: int) -> OursResult:
    from models.ops import Gemm
    from sim import clear_caches
    from sim.energy import load_table
    from sim.gemm import simulate_gemm

    arch = load_case_arch(case, dataflow)
    gemm = Gemm(name="bench", M=case.M, N=case.N, K=case.K, a_fmt=A_FMT, w_fmt=W_FMT,
                o_fmt=O_FMT)
    results, seconds, repeats = {}, {}, {}
    for memory in ("real", "ideal"):
        def call(memory: str = memory) -> Any:
            return simulate_gemm(arch, gemm, memory=memory)

        # uncached: every cache emptied before every call, then the energy table parsed
        # again (outside the timed region), as a running `tpe` process has it
        uncached = [clear_caches, functools.partial(load_table, arch.energy_table)]
        s, n = peers.median_call_seconds(call, uncached, min_repeats, min_total_s, max_repeats)
        seconds[f"{memory}_cold"], repeats[f"{memory}_cold"] = s, n
        results[memory] = call()  # and from now on cached
        s, n = peers.median_call_seconds(call, [], min_repeats, min_total_s, max_repeats)
        seconds[f"{memory}_cached"], repeats[f"{memory}_cached"] = s, n
    return OursResult(real=results["real"], ideal=results["ideal"],
                      costs=unit_costs(results["real"]), seconds=seconds, repeats=repeats)


# -- report ---------------------------------------------------------------------------------


@dataclass
class Row(peers.CaseRow):
    zz: ZigZagResult
    ours: OursResult
    failures: list[str]

    @property
    def zz_seconds_or_bound(self) -> float:
        return self.zz["api_s"] if self.zz.ok else self.zz.process_s

    def speed_ratio(self, ours_key: str = "real_cold", process: bool = False) -> float:
        zz = self.zz.process_s if process else self.zz_seconds_or_bound
        return zz / self.ours.seconds[ours_key]


def check(row: Row) -> list[str]:
    """Every check the benchmark makes; an empty list means the case passed."""
    zz, case, df = row.zz, row.case, row.dataflow
    if not zz.ok:
        return [f"ZigZag {zz.status}" + (f": {zz.detail}" if zz.detail else "")]
    bad = []
    want = expected_spatial(case, df)
    spatial_kept = zz["spatial"] == want
    if not spatial_kept:
        bad.append(f"ZigZag unrolled {zz['spatial']} spatially, ours is {want}")
    temporal, drain = zigzag_compute_closed_form(case, df)
    if spatial_kept and (zz["ideal_temporal_cycle"], zz["systolic_drain_cycle"]) != (
            temporal, drain):
        bad.append(f"ZigZag ideal_temporal_cycle, systolic_drain_cycle = "
                   f"{zz['ideal_temporal_cycle']:g}, {zz['systolic_drain_cycle']:g}; closed "
                   f"form {temporal}, {drain}")
    parts = (zz["ideal_temporal_cycle"] + zz["stall_slack_comb"] + zz["data_onloading_cycle"]
             + zz["data_offloading_cycle"] + zz["systolic_drain_cycle"])
    if not math.isclose(parts, zz["latency_total2"], rel_tol=1e-12):
        bad.append(f"ZigZag latency_total2 {zz['latency_total2']:g} is not the sum of its "
                   f"parts {parts:g}")
    ours_mac = row.ours.energy_by_part()["mac"]
    if not math.isclose(zz["mac_energy"], ours_mac, rel_tol=1e-9):
        bad.append(f"MAC energy: ZigZag {zz['mac_energy']:.6g} pJ, ours {ours_mac:.6g} pJ")
    return bad


def _fmt_ratio(r: float) -> str:
    return f"{r:,.0f}x" if r >= 100 else f"{r:.2f}x" if r < 10 else f"{r:.1f}x"


def _fmt_s(s: float) -> str:
    return peers.fmt_seconds(s, ms_digits=2)


def _uj(pj: float) -> str:
    return f"{pj / 1e6:,.2f}" if pj < 1e8 else f"{pj / 1e6:,.0f}"


def markdown_table(rows: Sequence[Row]) -> str:
    head = ("| GEMM MxNxK on RxC | df | ZigZag cycles | our cycles (real) | ZZ/ours "
            "| ZigZag stall-free | our ideal | ZZ/ours | ZigZag energy uJ | our energy uJ "
            "| ZZ/ours | ZigZag time: API (process) | our time real / ideal, uncached "
            "| speed ratio API/real (process/real) |")
    lines = [head, "| --- | --- |" + " ---: |" * 12]
    for r in rows:
        o = r.ours
        zz = r.zz
        if zz.ok:
            zz_cells = [
                f"{zz['latency_total2']:,.0f}", f"{o.real.cycles:,}",
                _fmt_ratio(zz["latency_total2"] / o.real.cycles),
                f"{zz.compute_cycles:,.0f}", f"{o.ideal.cycles:,}",
                _fmt_ratio(zz.compute_cycles / o.ideal.cycles),
                _uj(zz["energy_total"]), _uj(o.real.energy_pj),
                _fmt_ratio(zz["energy_total"] / o.real.energy_pj),
                f"{_fmt_s(zz['api_s'])} ({_fmt_s(zz.process_s)})",
            ]
        else:
            zz_cells = [zz.status, f"{o.real.cycles:,}", "-", "-", f"{o.ideal.cycles:,}", "-",
                        "-", _uj(o.real.energy_pj), "-", f"> {_fmt_s(zz.process_s)}"]
        lines.append(peers.table_row([
            r.case.name, r.dataflow.upper(), *zz_cells,
            f"{_fmt_s(o.seconds['real_cold'])} / {_fmt_s(o.seconds['ideal_cold'])}",
            (f"{_fmt_ratio(r.speed_ratio())} ({_fmt_ratio(r.speed_ratio(process=True))})"
             if zz.kind != "error" else "-"),
        ]))
    return "\n".join(lines)


def cycles_table(rows: Sequence[Row]) -> str:
    """Where the cycles go: ZigZag's parts against ours."""
    head = ("| GEMM | df | folds F | ZZ temporal loops | ZZ drain (once) | our ideal - ZZ "
            "stall-free | per fold | ZZ stalls + on/off-load | our stalls (real) "
            "| ZZ temporal mapping (per operand, innermost level first) |")
    lines = [head, "| --- | --- |" + " ---: |" * 7 + " --- |"]
    for r in rows:
        if not r.zz.ok:
            continue
        zz, o = r.zz, r.ours
        gap = o.ideal.cycles - zz.compute_cycles
        mem = zz["stall_slack_comb"] + zz["data_onloading_cycle"] + zz["data_offloading_cycle"]
        lines.append(peers.table_row([
            r.case.key, r.dataflow.upper(), f"{r.folds:,}",
            f"{zz['ideal_temporal_cycle']:,.0f}", f"{zz['systolic_drain_cycle']:,.0f}",
            f"{gap:,.0f}", f"{gap / r.folds:,.1f}",
            f"{zz['stall_slack_comb']:,.0f} + {zz['data_onloading_cycle']:,.0f} + "
            f"{zz['data_offloading_cycle']:,.0f} = {mem:,.0f}",
            f"{o.real.stall_cycles:,}", f"`{zz['temporal_mapping']}`",
        ]))
    return "\n".join(lines)


PARTS = ("mac", "registers", "sram", "dram")


def energy_table(rows: Sequence[Row]) -> str:
    """Energy by part (uJ), ZigZag / ours (real), and DRAM bytes."""
    head = ("| GEMM | df | MAC | PE registers | SRAMs | DRAM | DRAM MB ZZ / ours |")
    lines = [head, "| --- | --- |" + " ---: |" * 5]
    for r in rows:
        if not r.zz.ok:
            continue
        zz, ours = r.zz.energy_by_part(), r.ours.energy_by_part()
        zz_dram_bytes = zz["dram"] / r.ours.costs.dram_byte_pj
        lines.append(peers.table_row([
            r.case.key, r.dataflow.upper(),
            *(f"{_uj(zz[p])} / {_uj(ours[p])}" for p in PARTS),
            f"{zz_dram_bytes / 1e6:,.2f} / {r.ours.real.dram_bytes / 1e6:,.2f}",
        ]))
    return "\n".join(lines)


CSV_FIELDS = (
    *peers.CASE_CSV_FIELDS,
    "zigzag_status", "zigzag_error", "zigzag_latency_cycles", "zigzag_ideal_temporal_cycles",
    "zigzag_systolic_drain_cycles", "zigzag_stall_cycles", "zigzag_onloading_cycles",
    "zigzag_offloading_cycles", "zigzag_ideal_cycles_full_util",
    "zigzag_temporal_closed_form", "zigzag_drain_closed_form",
    "ours_real_cycles", "ours_real_compute_cycles", "ours_real_stall_cycles",
    "ours_ideal_cycles", "latency_ratio_zz_over_ours_real",
    "compute_ratio_zz_stall_free_over_ours_ideal",
    "zigzag_energy_pj", "ours_real_energy_pj", "ours_ideal_energy_pj",
    "energy_ratio_zz_over_ours_real",
    *(f"zigzag_{p}_pj" for p in PARTS), *(f"ours_real_{p}_pj" for p in PARTS),
    "zigzag_dram_bytes", "ours_real_dram_bytes",
    "zigzag_spatial", "zigzag_temporal_mapping", "ours_real_mapping",
    "zigzag_api_s", "zigzag_process_s", "zigzag_import_s", "zigzag_cme_count",
    "zigzag_cme_s", "zigzag_s_per_cme",
    "ours_real_cold_s_median", "ours_real_cold_repeats", "ours_real_cached_s_median",
    "ours_real_cached_repeats", "ours_ideal_cold_s_median", "ours_ideal_cold_repeats",
    "ours_ideal_cached_s_median", "ours_ideal_cached_repeats",
    "speed_ratio_api_over_real_cold", "speed_ratio_process_over_real_cold",
    "speed_ratio_api_over_ideal_cold", "speed_ratio_per_cme_over_ideal_cold",
    "speed_ratio_is_lower_bound", "checks",
)


def _csv_row(r: Row) -> dict[str, Any]:
    c, zz, o = r.case, r.zz, r.ours
    temporal, drain = zigzag_compute_closed_form(c, r.dataflow)
    out: dict[str, Any] = {
        **r.csv_fields(),
        "zigzag_status": zz.status, "zigzag_error": zz.detail,
        "zigzag_temporal_closed_form": temporal, "zigzag_drain_closed_form": drain,
        "ours_real_cycles": o.real.cycles, "ours_real_compute_cycles": o.real.compute_cycles,
        "ours_real_stall_cycles": o.real.stall_cycles, "ours_ideal_cycles": o.ideal.cycles,
        "ours_real_energy_pj": f"{o.real.energy_pj:.6g}",
        "ours_ideal_energy_pj": f"{o.ideal.energy_pj:.6g}",
        **{f"ours_real_{p}_pj": f"{v:.6g}" for p, v in o.energy_by_part().items()},
        "ours_real_dram_bytes": f"{o.real.dram_bytes:.0f}",
        "ours_real_mapping": json.dumps(o.real.mapping.to_dict(), separators=(",", ":")),
        "zigzag_process_s": f"{zz.process_s:.4f}",
        **{f"ours_{k}_s_median": f"{v:.4e}" for k, v in o.seconds.items()},
        **{f"ours_{k}_repeats": v for k, v in o.repeats.items()},
        "speed_ratio_is_lower_bound": not zz.ok,
        "checks": "pass" if not r.failures else "FAIL: " + "; ".join(r.failures),
    }
    if zz.kind != "error":
        out["speed_ratio_api_over_real_cold"] = f"{r.speed_ratio():.1f}"
        out["speed_ratio_process_over_real_cold"] = f"{r.speed_ratio(process=True):.1f}"
        out["speed_ratio_api_over_ideal_cold"] = f"{r.speed_ratio('ideal_cold'):.1f}"
    if zz.ok:
        parts = zz.energy_by_part()
        out |= {
            "zigzag_latency_cycles": f"{zz['latency_total2']:.0f}",
            "zigzag_ideal_temporal_cycles": f"{zz['ideal_temporal_cycle']:.0f}",
            "zigzag_systolic_drain_cycles": f"{zz['systolic_drain_cycle']:.0f}",
            "zigzag_stall_cycles": f"{zz['stall_slack_comb']:.0f}",
            "zigzag_onloading_cycles": f"{zz['data_onloading_cycle']:.0f}",
            "zigzag_offloading_cycles": f"{zz['data_offloading_cycle']:.0f}",
            "zigzag_ideal_cycles_full_util": f"{zz['ideal_cycle']:.0f}",
            "latency_ratio_zz_over_ours_real": f"{zz['latency_total2'] / o.real.cycles:.4f}",
            "compute_ratio_zz_stall_free_over_ours_ideal":
                f"{zz.compute_cycles / o.ideal.cycles:.4f}",
            "zigzag_energy_pj": f"{zz['energy_total']:.6g}",
            "energy_ratio_zz_over_ours_real": f"{zz['energy_total'] / o.real.energy_pj:.4f}",
            **{f"zigzag_{p}_pj": f"{v:.6g}" for p, v in parts.items()},
            "zigzag_dram_bytes": f"{parts['dram'] / o.costs.dram_byte_pj:.0f}",
            "zigzag_spatial": json.dumps(zz["spatial"], separators=(",", ":")),
            "zigzag_temporal_mapping": zz["temporal_mapping"],
            "zigzag_api_s": f"{zz['api_s']:.4f}", "zigzag_import_s": f"{zz['import_s']:.4f}",
            "zigzag_cme_count": zz["cme_count"], "zigzag_cme_s": f"{zz['cme_s']:.4f}",
            "zigzag_s_per_cme": f"{zz['cme_s'] / max(1, zz['cme_count']):.4e}",
            "speed_ratio_per_cme_over_ideal_cold":
                f"{zz['cme_s'] / max(1, zz['cme_count']) / o.seconds['ideal_cold']:.1f}",
        }
    return out


# -- main -----------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error message (exit 2), as the `tpe` command does."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"zigzag_compare: {message} (see --help)\n")


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(description=f"Compare TPEForge with ZigZag {ZIGZAG_VERSION} on the same GEMMs.")
    PEER.add_venv_arguments(p)
    peers.add_run_arguments(p, "ZigZag", timeout_s=600.0, mem_limit_gib=8.0, number=_positive)
    p.add_argument("--lpf-limit", type=_positive(int), default=6,
                   help="ZigZag's lpf_limit: loop prime factors LOMA permutes (default "
                        "%(default)s, the API's default)")
    peers.add_repeat_arguments(p, per="measurement", number=_positive)
    p.add_argument("--keep", type=Path, metavar="DIR",
                   help="keep each case's ZigZag inputs and outputs in DIR/<case>_<df>/ "
                        "(default: a temporary directory, removed)")
    p.add_argument("--out", type=Path,
                   help="CSV path (default benchmarks/results/zigzag_<date>.csv)")
    return p


def _run_case(case: Case, df: str, python: Path, args: argparse.Namespace) -> Row:
    print(f"- {case.name} {df.upper()}: ours ...", end="", flush=True)
    ours = run_ours(case, df, args.min_repeats, args.min_time, args.max_repeats)
    print(f" {ours.real.cycles:,} cycles (real), {_fmt_s(ours.seconds['real_cold'])}; "
          "ZigZag ...", end="", flush=True)
    inputs = zigzag_inputs(case, df, ours.real.arch, ours.costs)
    if args.keep:
        work = args.keep.resolve() / f"{case.key.replace('@', '_at_')}_{df}"
        write_inputs(work, inputs)
        zz = run_zigzag(python, work, args.timeout, args.lpf_limit, args.mem_limit_gib)
    else:
        with tempfile.TemporaryDirectory(prefix="zigzag_") as tmp:
            write_inputs(Path(tmp), inputs)
            zz = run_zigzag(python, Path(tmp), args.timeout, args.lpf_limit,
                            args.mem_limit_gib)
    row = Row(case, df, zz, ours, failures=[])
    row.failures = check(row)
    shown = (f"{zz['latency_total2']:,.0f} cycles in {_fmt_s(zz['api_s'])} "
             f"({zz['cme_count']} cost-model evaluations)" if zz.ok else zz.status)
    print(f" {shown}", end="", flush=True)
    return row


def report(rows: Sequence[Row], lpf_limit: int) -> None:
    """The tables and what they measured, after the runs."""
    ok = [r for r in rows if r.zz.ok]
    print()
    print(markdown_table(rows))
    if ok:
        print()
        print("Cycles: where they go")
        print()
        print(cycles_table(ok))
        print()
        print("Energy by part, uJ, ZigZag / ours (real)")
        print()
        print(energy_table(ok))
    print()
    version = ok[0].zz["zigzag_version"] if ok else "no successful run"
    print(f"ZigZag: zigzag-dse {version}, get_hardware_performance_zigzag(opt='latency', "
          f"lpf_limit={lpf_limit}), one run per case; API = the call in-process; "
          "process = interpreter start, imports and the call. Ours: median of per-call "
          "simulate_gemm times, uncached = sim.clear_caches() and the energy table parsed "
          "again before every call (cached medians in the CSV). Speed ratio = ZigZag "
          "seconds / our seconds.")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return PEER.run(args, args.cases or DEFAULT_CASES, functools.partial(_run_case, args=args),
                    CSV_FIELDS, _csv_row, functools.partial(report, lpf_limit=args.lpf_limit),
                    failed="FAILED", passed="ran and passed the checks")


if __name__ == "__main__":
    sys.exit(main())
