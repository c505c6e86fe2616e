#!/usr/bin/env python3
"""The clock compute-bound GEMMs are timed at, on the H100 and the H200 (issue 12, "clocks and
power"): what the committed runs say about a per-kernel clock. No GPU needed.

The kernel model's rates (``sim/data/gpu/calibration_h100.toml``) are those of the H100's
second dataset (``measured_h100_v2.csv``), i.e. whatever SM clock its kernels were timed at;
the ``h200`` preset scales only the bandwidth. Four tables, all computed from the committed
measurements and the presets:

1. **Model error by duration, per run.** Every aligned bf16/fp16/fp8 GEMM the model calls
   compute-bound (its tiles' time above its bytes' time, :func:`plan`), the model's signed
   error (predicted / measured - 1, median) by the measured time; int8 apart (its kernels run
   near the boost clock back to back, table 3), and attention prefill (every such kernel).
   Column ``loop``: whether ``tpe gpu measure`` ran each row's back-to-back energy loop
   (0.2 to 0.3 s of the kernel at full load, columns ``us_loop``, ``sm_mhz``) right after
   its timing, so before the next row's timing (its
   ``_env.json``: ``sim.gpu.measure.timed_after_light_load``). The prediction is the
   sustained state's throughout (the calibration's rates, no burst clock), so that the table
   shows what the burst clock (``sim.gpu_model.after_light_load``, fitted on the ``cal`` rows
   of ``measured_h100.csv`` and ``measured_h100_repeat.csv``) is for.
2. **The same kernels, two runs of one card.** The time of each compute-heavy aligned GEMM
   (above 400 TFLOP/s in the first run) in a run with the loop over its time in a run without,
   median by duration: a property of the run, not of the kernel.
3. **The clock back to back** (the loop's ``sm_mhz``) against the model's power (``E / t`` of
   :func:`sim.gpu_model.predict_kernel`, the kernel in a stream), per run with the columns.
4. **The burst clock per run**: the held-out aligned GEMMs' MAPE of every run predicted in
   the sustained state and at the burst clock (:func:`sim.gpu_model.after_light_load`, the
   calibration's ``[burst]``): the state that fits a run is the one it was timed in.
5. **int8 on both cards**: the held-out aligned int8 GEMMs of the second dataset on the H100
   and the H200 (both timed with the loop): the model's signed error on each card, how the two
   correlate per shape, and the H200's time over the H100's (int8's kernels run near the boost
   clock back to back, table 3: its misses are not the clock's).
6. **One kernel taken apart** (default 256x12288x4096 fp16, the H200's largest miss): the
   model's time per tile and split (waves, SMs busy), the tile cuBLAS ran on the H100 (the
   ``kernels`` column of ``measured_h100_v2_gemm_kernels.csv``), and its measured times.

Writes ``results/gpu_clock_study_<date>[_<tag>].csv`` (one row per kernel of table 1: run,
shape, measured and predicted time, the model's compute and memory times, the loop's clock and
power where recorded) and prints the tables (markdown).

Usage (repository root)::

    .venv/bin/python benchmarks/gpu_clock_study.py              # seconds
    .venv/bin/python benchmarks/gpu_clock_study.py --kernel fp16,256,12288,4096 --tag mine
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import math
import re
import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from hw.spec import load_arch  # noqa: E402
from sim import gpu_model as gm  # noqa: E402
from sim.gpu.measure import timed_after_light_load  # noqa: E402

DATA = REPO / "sim" / "data" / "gpu"
RESULTS = REPO / "benchmarks" / "results"
#: Every run that timed the datasets' aligned GEMMs (shapes.csv, shapes_v2.csv), both cards.
RUNS = ("measured_h100.csv", "measured_h100_repeat.csv", "measured_h100_v2.csv",
        "measured_h100_v2_repeat.csv", "measured_h100_v2e.csv",
        "measured_h100_v2_gemm_kernels.csv", "measured_h100_v2_gemm_kernels_repeat.csv",
        "measured_h200.csv", "measured_h200_v2.csv")
#: Measured-time bins (us) of tables 1 and 2.
BINS = (0.0, 30.0, 100.0, 300.0, 1000.0, math.inf)
#: Model power bins (W) of table 3.
POWER_BINS = (0.0, 500.0, 600.0, 650.0, 700.0, 750.0, math.inf)
#: The clock at or above which table 3 counts a kernel at the boost clock (1980 MHz max).
BOOST_MHZ = 1900.0
#: Compute-heavy, for table 2: the first run's rate at least this, TFLOP/s.
HEAVY_TFLOPS = 400.0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Timed:
    """One aligned GEMM of a run, measured and predicted."""

    run: str
    card: str
    loop: bool
    kernel: gm.Kernel
    us: float
    predicted_us: float
    compute_us: float
    memory_us: float
    sm_mhz: float
    watts: float


def plan(cal: gm.GpuCalibration, k: gm.Kernel) -> list[dict[str, Any]]:
    """The model's choices for ``k`` (:func:`sim.gpu_model.gemm_choices`: every tile and split
    its kernel family weighs), fastest first, each with its parts: tile, split, tiles, waves,
    SMs busy in the last wave, compute, memory and whole time (us, the fixed cost
    included)."""
    M, N, _ = gm.padded_shape(k.dtype, k.M, k.N, k.K)
    out = []
    seen = set()  # a tile the model weighs twice (a listed and a shape-fitted one): its best
    for c in sorted(gm.gemm_choices(cal, k), key=lambda c: c.us + (c.fixed_us or 0.0)):
        if (c.tile, c.split) in seen:
            continue
        seen.add((c.tile, c.split))
        bm, bn = c.tile
        tiles = -(-M // bm) * -(-N // bn) * c.split
        waves = -(-tiles // cal.sm_count)
        out.append({"tile": f"{bm}x{bn}", "split": c.split, "tiles": tiles, "waves": waves,
                    "last_wave_sms": tiles - (waves - 1) * cal.sm_count,
                    "compute_us": c.compute_us, "memory_us": c.memory_us,
                    "us": c.us + (c.fixed_us or 0.0)})
    return out


def _float(cell: str | None) -> float:
    return float(cell) if cell not in (None, "") else math.nan


def timed(run: str) -> list[Timed]:
    """The run's aligned bf16/fp16/fp8/int8 GEMMs on their card's preset."""
    with open(DATA / run, newline="") as f:
        rows = list(csv.DictReader(f))
    card = "h200" if "H200" in rows[0]["gpu"] else "h100"
    arch = load_arch(card)
    cal = gm.arch_calibration(arch)
    assert arch.gpu is not None
    loop = not timed_after_light_load(DATA / run)
    out = []
    for r in rows:
        if r["op"] != "gemm" or r["dtype"] not in gm.ELEM_BYTES or r.get("status", "ok") != "ok":
            continue
        k = gm.Kernel.from_row(r)
        if not gm.is_aligned(k) or gm.gemm_family(k) != "aligned":
            continue
        best = min(plan(cal, k), key=lambda c: c["us"])
        out.append(Timed(run=run, card=card, loop=loop, kernel=k, us=float(r["us"]),
                         predicted_us=gm.predict_kernel(cal, k, arch.gpu.board_power_w).us,
                         compute_us=best["compute_us"], memory_us=best["memory_us"],
                         sm_mhz=_float(r.get("sm_mhz")), watts=_float(r.get("watts"))))
    return out


def _bin(x: float, edges: tuple[float, ...]) -> int:
    return next(i for i in range(len(edges) - 1) if edges[i] <= x < edges[i + 1])


def _label(edges: tuple[float, ...], i: int) -> str:
    hi = edges[i + 1]
    return f"{edges[i]:g}-{hi:g}" if hi != math.inf else f">= {edges[i]:g}"


def error_table(runs: dict[str, list[Timed]]) -> list[str]:
    """Table 1."""
    head = " | ".join(f"{_label(BINS, i)} us" for i in range(len(BINS) - 1))
    out = [f"| run | card | loop | dtypes | n | {head} |",
           "| --- | --- | --- | --- | ---: |" + " ---: |" * (len(BINS) - 1)]
    for run, ts in runs.items():
        for dtypes in (("bf16", "fp16", "fp8"), ("int8",)):
            sel = [t for t in ts if t.kernel.dtype in dtypes and t.compute_us > t.memory_us]
            cells = []
            for i in range(len(BINS) - 1):
                e = [t.predicted_us / t.us - 1 for t in sel if _bin(t.us, BINS) == i]
                cells.append(f"{statistics.median(e):+.1%} ({len(e)})" if e else "-")
            out.append(f"| `{run}` | {ts[0].card} | {'yes' if ts[0].loop else 'no'} | "
                       f"{'/'.join(dtypes)} | {len(sel)} | {' | '.join(cells)} |")
        # attention prefill (softmax-bound beside its tensor work), all of the run's
        with open(DATA / run, newline="") as f:
            prefill = [(gm.Kernel.from_row(r), float(r["us"])) for r in csv.DictReader(f)
                       if r["op"] == "attn_prefill" and r.get("status", "ok") == "ok"]
        cal = gm.arch_calibration(load_arch(ts[0].card))
        cells = []
        for i in range(len(BINS) - 1):
            e = [gm.predict_us(cal, k) / us - 1 for k, us in prefill if _bin(us, BINS) == i]
            cells.append(f"{statistics.median(e):+.1%} ({len(e)})" if e else "-")
        if prefill:
            out.append(f"| `{run}` | {ts[0].card} | {'yes' if ts[0].loop else 'no'} | "
                       f"attn_prefill | {len(prefill)} | {' | '.join(cells)} |")
    return out


def run_ratio_table(runs: dict[str, list[Timed]]) -> list[str]:
    """Table 2: for each card, every run with the loop against every run without it."""
    head = " | ".join(f"{_label(BINS, i)} us" for i in range(len(BINS) - 1))
    out = [f"| card | with loop / without | n | {head} |",
           "| --- | --- | ---: |" + " ---: |" * (len(BINS) - 1)]

    def key(t: Timed) -> tuple[Any, ...]:
        return (t.kernel.dtype, t.kernel.M, t.kernel.N, t.kernel.K)

    for card in ("h100", "h200"):
        with_loop = [r for r, ts in runs.items() if ts[0].card == card and ts[0].loop]
        without = [r for r, ts in runs.items() if ts[0].card == card and not ts[0].loop]
        for a in with_loop:
            for b in without:
                base = {key(t): t for t in runs[b] if t.kernel.dtype != "int8"
                        and 2 * t.kernel.M * t.kernel.N * t.kernel.K / t.us / 1e6
                        >= HEAVY_TFLOPS}
                pairs = [(base[key(t)].us, t.us / base[key(t)].us) for t in runs[a]
                         if key(t) in base]
                cells = []
                for i in range(len(BINS) - 1):
                    rs = [x for u, x in pairs if _bin(u, BINS) == i]
                    cells.append(f"{statistics.median(rs):.3f} ({len(rs)})" if rs else "-")
                out.append(f"| {card} | `{a}` / `{b}` | {len(pairs)} | {' | '.join(cells)} |")
    return out


def clock_table(runs: dict[str, list[Timed]]) -> list[str]:
    """Table 3, on every kernel of the runs with the loop's columns (all ops)."""
    out = ["| run | model W (E / t) | n | measured W | SM MHz (median) | p10 | "
           f"at >= {BOOST_MHZ:.0f} MHz |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for run, ts in runs.items():
        if not ts[0].loop or all(math.isnan(t.watts) for t in ts):
            continue
        with open(DATA / run, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("sm_mhz") and r.get("watts")]
        arch = load_arch(ts[0].card)
        cal = gm.arch_calibration(arch)
        assert arch.gpu is not None
        data: dict[int, list[tuple[float, float]]] = {}
        for r in rows:
            k = gm.Kernel.from_row(r)
            est = gm.predict_kernel(cal, k, arch.gpu.board_power_w)
            model_w = est.mj * 1e3 / sum(gm.stream_parts_us(cal, k))
            data.setdefault(_bin(model_w, POWER_BINS), []).append(
                (float(r["watts"]), float(r["sm_mhz"])))
        for i, vals in sorted(data.items()):
            mhz = sorted(v[1] for v in vals)
            out.append(f"| `{run}` | {_label(POWER_BINS, i)} | {len(vals)} | "
                       f"{statistics.median(v[0] for v in vals):.0f} | "
                       f"{statistics.median(mhz):.0f} | {mhz[len(mhz) // 10]:.0f} | "
                       f"{sum(m >= BOOST_MHZ for m in mhz) / len(mhz):.0%} |")
    return out


def burst_table(runs: dict[str, list[Timed]]) -> list[str]:
    """Table 4."""
    out = ["| run | loop | held-out aligned GEMMs | MAPE sustained | MAPE burst clock |",
           "| --- | --- | ---: | ---: | ---: |"]
    for run, ts in runs.items():
        with open(DATA / run, newline="") as f:
            held = {gm.Kernel.from_row(r) for r in csv.DictReader(f) if r["split"] == "held"}
        cal = gm.arch_calibration(load_arch(ts[0].card))
        burst = gm.after_light_load(cal)
        sel = [t for t in ts if t.kernel in held]
        errs = [[abs(gm.predict_us(c, t.kernel) / t.us - 1) for t in sel] for c in (cal, burst)]
        out.append(f"| `{run}` | {'yes' if ts[0].loop else 'no'} | {len(sel)} | "
                   f"{statistics.mean(errs[0]):.2%} | {statistics.mean(errs[1]):.2%} |")
    return out


def int8_table(runs: dict[str, list[Timed]], a: str = "measured_h100_v2.csv",
               b: str = "measured_h200_v2.csv") -> list[str]:
    """Table 5."""
    import numpy as np

    with open(DATA / b, newline="") as f:
        held = {gm.Kernel.from_row(r) for r in csv.DictReader(f) if r["split"] == "held"}
    first = {t.kernel: t for t in runs[a] if t.kernel.dtype == "int8" and t.kernel in held}
    pairs = [(first[t.kernel], t) for t in runs[b] if t.kernel in first]
    ea = np.array([x.predicted_us / x.us - 1 for x, _ in pairs])
    eb = np.array([y.predicted_us / y.us - 1 for _, y in pairs])
    ratio = statistics.median(y.us / x.us for x, y in pairs)
    out = [f"{len(pairs)} kernels: MAPE {np.mean(np.abs(ea)):.1%} on `{a}`, "
           f"{np.mean(np.abs(eb)):.1%} on `{b}`; mean signed error {ea.mean():+.1%} and "
           f"{eb.mean():+.1%}; correlation of the two per kernel {np.corrcoef(ea, eb)[0, 1]:.2f}; "
           f"median time {b} / {a} {ratio:.3f}.", "",
           "| M x N x K | error first | error second | us first | us second | the H100's "
           "kernel |", "| --- | ---: | ---: | ---: | ---: | --- |"]
    names: dict[gm.Kernel, str] = {}
    with open(DATA / "measured_h100_v2_gemm_kernels.csv", newline="") as f:
        for r in csv.DictReader(f):
            tag = re.search(r"(cutlass_\w+?gemm_\w+?_\d+x\d+)_|(nvjet_sm90_\w+?_\d+x\d+)_",
                            r["kernels"])
            names[gm.Kernel.from_row(r)] = (tag[1] or tag[2]) if tag else r["kernels"][:40]
    for (x, y), e1, e2 in sorted(zip(pairs, ea, eb, strict=True), key=lambda z: z[2])[:8]:
        k = x.kernel
        out.append(f"| {k.M}x{k.N}x{k.K} | {e1:+.1%} | {e2:+.1%} | {x.us:.1f} | {y.us:.1f} | "
                   f"`{names.get(k, '-')}` |")
    return out


def kernel_section(runs: dict[str, list[Timed]], spec: str) -> list[str]:
    """Table 6."""
    dtype, M, N, K = spec.split(",")
    k = gm.Kernel(op="gemm", dtype=dtype, M=int(M), N=int(N), K=int(K))
    out = [f"{dtype} {M}x{N}x{K}: measured"]
    for run, ts in runs.items():
        for t in ts:
            if t.kernel == k:
                burst = gm.predict_us(gm.after_light_load(gm.arch_calibration(
                    load_arch(t.card))), k)
                out.append(f"- `{run}` ({t.card}, loop {'yes' if t.loop else 'no'}): "
                           f"{t.us:.1f} us, predicted {t.predicted_us:.1f} "
                           f"({t.predicted_us / t.us - 1:+.1%}; at the burst clock "
                           f"{burst:.1f}, {burst / t.us - 1:+.1%})")
    recorded = ""
    with open(DATA / "measured_h100_v2_gemm_kernels.csv", newline="") as f:
        for r in csv.DictReader(f):
            if (r["op"], r["dtype"], r["M"], r["N"], r["K"]) == ("gemm", dtype, M, N, K):
                recorded = r["kernels"]
                out.append(f"- recorded on the H100: `{recorded}`")
    # an nvjet name's tile: its first dimension along N (cuBLAS computes C^T = W A^T)
    tile = re.match(r"nvjet_sm90_[a-z]+_(\d+)x(\d+)_", recorded)
    if tile:
        bn, bm = int(tile[1]), int(tile[2])
        for card in ("h100", "h200"):
            cal = gm.arch_calibration(load_arch(card))
            # the model's largest tile, unsplit: its rate
            top = max((c for c in plan(cal, k) if c["split"] == 1),
                      key=lambda c: math.prod(int(x) for x in c["tile"].split("x")))
            tiles = -(-k.M // bm) * -(-k.N // bn)
            waves = -(-tiles // cal.sm_count)
            top_bm, top_bn = (int(x) for x in top["tile"].split("x"))
            t_c = top["compute_us"] * (waves * bm * bn) / (top["waves"] * top_bm * top_bn)
            fixed = gm.predict_parts_us(cal, k)[0]
            out.append(f"- the recorded tile ({bm} rows x {bn} columns: {tiles} tiles, {waves} "
                       f"wave(s)) at the model's {top['tile']} rate on the {card} preset: compute "
                       f"{t_c:.1f} us, memory {top['memory_us']:.1f}, time "
                       f"{fixed + max(t_c, top['memory_us']):.1f} us")
    for card in ("h100", "h200"):
        cal = gm.arch_calibration(load_arch(card))
        fixed = gm.predict_parts_us(cal, k)[0]
        out += ["", f"The model's choices on the {card} preset (fixed cost {fixed:.1f} us; the "
                "time is the fixed cost and the compute and memory times together, with a "
                "split's partials):", "",
                "| tile | split | tiles | waves | SMs busy in the last wave | compute us | "
                "memory us | time us |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for c in sorted(plan(cal, k), key=lambda c: c["us"]):
            out.append(f"| {c['tile']} | {c['split']} | {c['tiles']} | {c['waves']} | "
                       f"{c['last_wave_sms']} of {cal.sm_count} | {c['compute_us']:.1f} | "
                       f"{c['memory_us']:.1f} | {c['us']:.1f} |")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernel", default="fp16,256,12288,4096",
                    help="dtype,M,N,K of table 6 (default: %(default)s)")
    ap.add_argument("--tag", default="", help="suffix of the results file's name")
    ap.add_argument("--out", type=Path, help="results CSV (default: results/"
                    "gpu_clock_study_<date>[_<tag>].csv)")
    args = ap.parse_args(argv)
    runs = {run: timed(run) for run in RUNS if (DATA / run).is_file()}
    print("## 1. The model's signed error on compute-bound aligned GEMMs, by measured time\n")
    print("Median of predicted / measured - 1 (kernels in brackets).\n")
    print("\n".join(error_table(runs)))
    print("\n## 2. The same kernels in two runs of one card: time with the loop / without\n")
    print("\n".join(run_ratio_table(runs)))
    print("\n## 3. The clock back to back against the model's power\n")
    print("\n".join(clock_table(runs)))
    burst = gm.arch_calibration(load_arch("h100")).burst
    assert burst is not None
    print(f"\n## 4. The burst clock ({burst.rate:g}x for {burst.us:g} us) per run\n")
    print("\n".join(burst_table(runs)))
    print("\n## 5. int8 on both cards (the 8 largest misses on the second)\n")
    print("\n".join(int8_table(runs)))
    print("\n## 6. One kernel\n")
    print("\n".join(kernel_section(runs, args.kernel)))
    date = datetime.date.today().isoformat()
    out = args.out or RESULTS / (f"gpu_clock_study_{date}" + (f"_{args.tag}" if args.tag
                                                               else "") + ".csv")
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run", "card", "loop", "dtype", "M", "N", "K", "us", "predicted_us",
                    "compute_us", "memory_us", "sm_mhz", "watts"])
        for ts in runs.values():
            for t in ts:
                w.writerow([t.run, t.card, int(t.loop), t.kernel.dtype, t.kernel.M, t.kernel.N,
                            t.kernel.K, f"{t.us:.3f}", f"{t.predicted_us:.3f}",
                            f"{t.compute_us:.3f}", f"{t.memory_us:.3f}",
                            "" if math.isnan(t.sm_mhz) else f"{t.sm_mhz:.0f}",
                            "" if math.isnan(t.watts) else f"{t.watts:.1f}"])
    print(f"\nwrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
