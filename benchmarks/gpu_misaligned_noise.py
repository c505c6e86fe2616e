#!/usr/bin/env python3
"""The misaligned GEMMs' held-out misses on every measured run: the model's bias, or the run.

``tpe gpu check`` judges each measured run's held-out categories by the median time of each
kernel timed alone (column ``us``). This prints, from the committed measurements and the
presets (no GPU needed), what sets the misaligned categories' misses:

1. per run and held-out misaligned category: its MAPE, how many of its rows the timing itself
   disqualifies, and the MAPE of the others. A row is *unsteady* where its repetitions spread
   widely (``us_p80`` above 1.3 ``us_p20``: ``benchmarks/gpu_report.py``'s rule, the host's
   launch jitter set the median) and *host-bound* where its time alone exceeds twice its time
   back to back (``us_loop``: replays of a CUDA graph, no host launch between calls) plus the
   calibration's ``stream_overhead_us`` (what timing a kernel alone adds to a short one): the
   host, not the GPU, was the last to finish;
2. the rows whose time differs most between two runs of the same kernels (each run's
   repetitions' spread beside it), and the rows the model misses by more than 20% in every
   run (its bias, not the runs');
3. the energy (column ``mj``, measured back to back): per energy path (``sim.gpu_model.
   energy_class``) the held-out and all rows' energy MAPE, the MAPE the model's power alone
   would give (its energy over its back-to-back time, times the measured ``us_loop``), and the
   error of that back-to-back time against ``us_loop``: where the second is small, the energy
   misses follow the time's.

Usage (repository root): ``.venv/bin/python benchmarks/gpu_misaligned_noise.py`` (seconds).
"""

from __future__ import annotations

import csv
import math
import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
if str(REPO / "benchmarks") not in sys.path:
    sys.path.insert(0, str(REPO / "benchmarks"))

DATA = REPO / "sim" / "data" / "gpu"
#: The measured runs with misaligned GEMMs, and the runs of the same kernels to compare.
RUNS = ("measured_h100_v2.csv", "measured_h100_v2_repeat.csv", "measured_h100_v2e.csv",
        "measured_h200_v2.csv", "measured_h100_misaligned.csv", "measured_h200_misaligned.csv",
        "measured_h200_misaligned_repeat.csv")
PAIRS = (("measured_h100_v2.csv", "measured_h100_v2_repeat.csv", "measured_h100_v2e.csv"),
         ("measured_h200_misaligned.csv", "measured_h200_misaligned_repeat.csv"))
#: A row the model misses by more than this in every run of its kernels is the model's.
BIAS = 0.20
#: A row whose time differs between runs by more than this is listed as the runs'.
RUN_SPREAD = 0.20


def _rows(name: str) -> list[dict[str, str]]:
    with open(DATA / name, newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("status", "ok") == "ok" and r.get("us")]


def _host_bound(r: dict[str, str], overhead_us: float) -> bool:
    """Timed alone, the kernel took more than twice its back-to-back time plus the stream
    overhead (module doc)."""
    return bool(r.get("us_loop")) and float(r["us"]) > 2 * float(r["us_loop"]) + overhead_us


def _label(r: dict[str, str]) -> str:
    return f"{r['dtype']} {r['M']}x{r['N']}x{r['K']}"


def _mape(errs: list[float]) -> str:
    return f"{100 * sum(errs) / len(errs):.1f}%" if errs else "-"


def _predicted(name: str, rows: list[dict[str, str]]) -> tuple[Any, list[Any]]:
    from hw.spec import load_arch
    from sim.cli.gpu import _kernels, _predict

    arch = load_arch("h200" if "h200" in name else "h100")
    return arch, _predict(arch, _kernels(rows, name))


def main() -> int:
    from gpu_report import _unsteady

    from sim.cli.gpu import CATEGORY_MIN_N, TARGET_MAPE, category
    from sim.gpu_model import (
        Kernel,
        arch_calibration,
        energy_class,
        stream_parts_us,
    )

    out = ["## 1. Held-out misaligned categories, with and without the rows the timing "
           "disqualifies", "",
           "| run | category | n | MAPE | unsteady | host-bound | MAPE of the others |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    err_of: dict[str, dict[tuple[str, ...], float]] = {}
    energy: dict[tuple[str, str], list[tuple[float, float, float, bool]]] = {}
    for name in RUNS:
        rows = _rows(name)
        arch, pred = _predicted(name, rows)
        cal = arch_calibration(arch)
        err_of[name] = {}
        groups: dict[str, list[tuple[float, bool, bool]]] = {}
        for r, est in zip(rows, pred, strict=True):
            if r["op"] != "gemm":
                continue
            signed = est.us / float(r["us"]) - 1
            err = abs(signed)
            err_of[name][(r["dtype"], r["M"], r["N"], r["K"])] = signed
            cat = category(r)
            if r["split"] == "held" and cat.endswith("/misaligned"):
                groups.setdefault(cat, []).append(
                    (err, bool(_unsteady([r])), _host_bound(r, cal.stream_overhead_us)))
            if r.get("mj") and r.get("us_loop") and cat.endswith("/misaligned"):
                k = Kernel.from_row(r)
                t_stream = sum(stream_parts_us(cal, k))
                loop = float(r["us_loop"])
                energy.setdefault((name, energy_class(k, cal.sm_count)), []).append(
                    (est.mj / float(r["mj"]) - 1, est.mj / t_stream * loop / float(r["mj"]) - 1,
                     t_stream / loop - 1, r["split"] == "held"))
        for cat, v in sorted(groups.items()):
            if len(v) < CATEGORY_MIN_N:
                continue
            whole = [e for e, _, _ in v]
            kept = [e for e, u, h in v if not (u or h)]
            flag = " (over the target)" if sum(whole) / len(whole) > TARGET_MAPE else ""
            out.append(f"| `{name}` | {cat} | {len(v)} | {_mape(whole)}{flag} | "
                       f"{sum(u for _, u, _ in v)} | {sum(h for _, _, h in v)} | "
                       f"{_mape(kept)} |")

    out += ["", f"## 2. Rows timed more than {RUN_SPREAD:.0%} apart between runs of the same "
            "kernels (misaligned GEMMs), and rows the model misses by more than "
            f"{BIAS:.0%} in every run", ""]
    for runs in PAIRS:
        by = [{(r["dtype"], r["M"], r["N"], r["K"]): r for r in _rows(n) if r["op"] == "gemm"}
              for n in runs]
        out.append(f"{' / '.join(f'`{n}`' for n in runs)} (us, its p20..p80, us_loop):")
        out.append("")
        for key, first in by[0].items():
            if category(first).endswith("/aligned") or any(key not in b for b in by):
                continue
            times = [float(b[key]["us"]) for b in by]
            errs = [err_of[n].get(key, math.nan) for n in runs]
            cells = "; ".join(f"{float(b[key]['us']):.1f} ({float(b[key]['us_p20']):.1f}.."
                              f"{float(b[key]['us_p80']):.1f}, "
                              f"{b[key].get('us_loop') or '-'})" for b in by)
            model = ", ".join(f"{100 * e:+.0f}%" for e in errs)
            if max(times) > (1 + RUN_SPREAD) * min(times):
                out.append(f"- runs apart: {_label(first)} ({first['split']}): {cells}; "
                           f"model {model}")
            elif all(abs(e) > BIAS for e in errs):
                out.append(f"- model's miss: {_label(first)} ({first['split']}): {cells}; "
                           f"model {model}")
        out.append("")

    out += ["## 3. Energy of the misaligned GEMMs per energy path: the energy's error, the "
            "power's alone (the model's energy over its back-to-back time, times the measured "
            "us_loop), and the back-to-back time's against us_loop", "",
            "| run | path | n (held) | mJ MAPE held | mJ MAPE all | power alone MAPE | "
            "back-to-back time MAPE (median signed) |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for (name, cls), path in sorted(energy.items()):
        held = [abs(e) for e, _, _, h in path if h]
        out.append(f"| `{name}` | {cls} | {len(path)} ({len(held)}) | {_mape(held)} | "
                   f"{_mape([abs(e) for e, *_ in path])} | "
                   f"{_mape([abs(p) for _, p, _, _ in path])} | "
                   f"{_mape([abs(t) for _, _, t, _ in path])} "
                   f"({100 * statistics.median(t for _, _, t, _ in path):+.0f}%) |")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
