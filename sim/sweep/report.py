"""The sweep report (``tpe sweep report``): per workload, the Pareto fronts of :data:`FRONTS`
over a results table (:mod:`sim.sweep.storage`) as PNG, and ``report.md`` with a summary
table and the best point per objective (:func:`write_report`). matplotlib is imported only
when a report is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sim.files import replacing
from sim.sweep.spec import PLAN_FLAGS, PLAN_KEYS, RESERVED, WORKLOAD_COLUMNS
from sim.sweep.storage import read_results


def pareto_mask(x: np.ndarray, y: np.ndarray, *, maximize_x: bool = False,
                maximize_y: bool = False) -> np.ndarray:
    """Boolean mask of the points no other point dominates in (``x``, ``y``) (each minimised
    unless its ``maximize_*``); of identical points, the first is kept."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D arrays of one length (got {x.shape}, {y.shape})")
    a = -x if maximize_x else x
    b = -y if maximize_y else y
    order = np.lexsort((np.arange(len(a)), b, a))  # by a, then b, then position
    mask = np.zeros(len(a), dtype=bool)
    best = np.inf
    for i in order:
        if b[i] < best:
            mask[i] = True
            best = b[i]
    return mask


def plot_front(ax: Any, x: np.ndarray, y: np.ndarray, mask: np.ndarray, *, label: str,
               groups: Sequence[str] | None = None) -> Any:
    """The points (coloured and marked by ``groups``, e.g. each point's base architecture, when
    given; grey otherwise), the front as a line through them; a legend outside the axes
    that names every group and the front. Returns ``ax``."""
    if groups is None:
        ax.scatter(x[~mask], y[~mask], s=6, color="0.75", label="design points")
    else:
        names = list(dict.fromkeys(groups))
        tags = np.array(groups, dtype=object)
        for j, name in enumerate(names):
            sel = tags == name
            ax.scatter(x[sel], y[sel], s=14, marker=_MARKERS[j % len(_MARKERS)],
                       color=f"C{j % 10}", alpha=0.75, linewidths=0.5, label=name)
    order = np.argsort(x[mask])
    ax.plot(x[mask][order], y[mask][order], "-", color="black", lw=1.0, zorder=3,
            label=f"Pareto front ({int(mask.sum())} points)")
    ax.scatter(x[mask], y[mask], s=28, facecolors="none", edgecolors="black", lw=0.8,
               zorder=4)
    ax.set_title(label, fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return ax


#: Markers of the groups of :func:`plot_front`, in turn (with the colours C0..C9).
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")


#: Units a metric's values may be shown in, each with its factor from the stored unit.
_LADDERS = {
    "pJ": (("pJ", 1.0), ("nJ", 1e-3), ("uJ", 1e-6), ("mJ", 1e-9), ("J", 1e-12)),
    "s": (("ns", 1e9), ("us", 1e6), ("ms", 1e3), ("s", 1.0)),
}


def readable(values: np.ndarray, unit: str) -> tuple[np.ndarray, str]:
    """``values`` (stored in ``unit``: ``pJ`` or ``s``; any other unit is left as it is) in
    the largest unit of :data:`_LADDERS` in which their median is at least 1, and that
    unit."""
    ladder = _LADDERS.get(unit)
    if ladder is None or not len(values):
        return values, unit
    median = float(np.median(np.abs(values)))
    name, factor = ladder[0]
    for n, f in ladder:
        if median * f >= 1.0:
            name, factor = n, f
    return values * factor, name


#: The report's fronts: (file stem, title, x, maximise x, y, maximise y).
FRONTS = (
    ("pareto_throughput_area", "throughput vs area", "area_mm2", False, "tokens_per_s", True),
    ("pareto_energy_latency", "energy per token vs latency", "seconds", False,
     "energy_per_token_pj", False),
)
#: Axis labels and the unit each metric is stored in (rescaled by :func:`readable`).
_LABELS = {"area_mm2": ("area", "mm$^2$"), "tokens_per_s": ("throughput", "tokens/s"),
           "seconds": ("latency", "s"), "energy_per_token_pj": ("energy per token", "pJ")}


#: The unit each metric is stored in, where the report shows it rescaled (:func:`readable`).
_UNITS = {"energy_per_token_pj": "pJ", "seconds": "s"}


def _show(value: float, unit: str) -> str:
    """``value`` (in ``unit``) as text in a readable unit (:func:`readable`)."""
    if not unit:
        return f"{value:.4g}"
    scaled, shown = readable(np.array([value], dtype=np.float64), unit)
    return f"{scaled[0]:.4g} {shown}"


def _count(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def write_report(results: str | Path, out_dir: str | Path) -> Path:
    """Pareto fronts (throughput vs area, energy per token vs latency) per workload as PNG,
    and ``report.md`` with a summary table and the best point per objective. Returns the
    Markdown file's path."""
    import pyarrow as pa
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    # rows in a fixed order (the parts are written as chunks finish): ties between points
    # (the best point per objective) then go the same way on every run
    table = read_results(results)
    # results written before the plan's columns: every pass on one device
    for keys, value, kind in ((PLAN_KEYS, 1, pa.int64()), (PLAN_FLAGS, False, pa.bool_())):
        for k in keys:
            if k not in table.column_names:
                table = table.append_column(k, pa.array([value] * table.num_rows, kind))
    table = table.sort_by([("point_id", "ascending"),
                           *((k, "ascending") for k in WORKLOAD_COLUMNS)])
    cols = table.to_pydict()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    axis_keys = [c for c in table.column_names if c not in RESERVED]
    n = table.num_rows
    workloads: dict[tuple[Any, ...], list[int]] = {}
    for i in range(n):
        workloads.setdefault(tuple(cols[k][i] for k in WORKLOAD_COLUMNS), []).append(i)
    ok = np.array([e is None for e in cols["error"]], dtype=bool)
    lines = [f"# Sweep report: {Path(results).name}", "",
             f"{_count(len(set(cols['point_id'])), 'design point')} x "
             f"{_count(len(workloads), 'workload')} = "
             f"{n} rows; {int((~ok).sum())} rows with errors (mapping or format does not fit).",
             "", f"Axes: {', '.join(f'`{k}`' for k in axis_keys)}.", ""]
    summary = ["| workload | points | errors | front: tokens/s vs area | front: energy/token vs"
               " latency | best tokens/s | best energy/token | least mm^2 |",
               "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    best_lines: list[str] = []
    fronts: dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray,
                                 list[str] | None]]] = {
        f[0]: [] for f in FRONTS}
    for wl, rows in workloads.items():
        label = "{} {} b{} s{} {}".format(*wl[:5])
        if tuple(wl[5:]) != (1, 1, 1, 1, False, False):
            label += " tp{} pp{} ep{} mb{}".format(*wl[5:9])
            label += " sp" * bool(wl[9]) + " overlap" * bool(wl[10])
        idx = np.array([i for i in rows if ok[i]], dtype=np.int64)
        if len(idx) == 0:
            summary.append(f"| {label} | {len(rows)} | {len(rows)} | 0 | 0 | - | - | - |")
            continue
        metric = {k: np.array([cols[k][i] for i in idx], dtype=np.float64)
                  for k in ("tokens_per_s", "energy_per_token_pj", "area_mm2", "seconds",
                            "edp_pj_s")}
        # points marked by their base architecture when the sweep has several
        groups = ([str(cols["base"][i]) for i in idx]
                  if "base" in cols and len(set(cols["base"])) > 1 else None)
        sizes = []
        for stem, _title, xk, mx, yk, my in FRONTS:
            mask = pareto_mask(metric[xk], metric[yk], maximize_x=mx, maximize_y=my)
            fronts[stem].append((label, metric[xk], metric[yk], mask, groups))
            sizes.append(int(mask.sum()))
        summary.append(
            f"| {label} | {len(rows)} | {len(rows) - len(idx)} | {sizes[0]} | {sizes[1]} | "
            f"{metric['tokens_per_s'].max():.4g} | "
            f"{_show(metric['energy_per_token_pj'].min(), 'pJ')} | "
            f"{metric['area_mm2'].min():.4g} |")
        best_lines += [f"### {label}", "",
                       "| best | value | tokens/s | energy/token | latency | mm^2 | "
                       + " | ".join(f"`{k}`" for k in axis_keys) + " |",
                       "| --- | ---: | ---: | ---: | ---: | ---: | "
                       + " | ".join("---" for _ in axis_keys) + " |"]
        for m, direction in (("tokens_per_s", "max"), ("energy_per_token_pj", "min"),
                             ("seconds", "min"), ("area_mm2", "min"), ("edp_pj_s", "min")):
            j = int(np.argmax(metric[m]) if direction == "max" else np.argmin(metric[m]))
            i = int(idx[j])
            best_lines.append(
                f"| {direction} {m} | {_show(metric[m][j], _UNITS.get(m, ''))} | "
                f"{cols['tokens_per_s'][i]:.4g} | "
                f"{_show(cols['energy_per_token_pj'][i], 'pJ')} | "
                f"{_show(cols['seconds'][i], 's')} | "
                f"{cols['area_mm2'][i]:.4g} | "
                + " | ".join("-" if cols[k][i] is None else str(cols[k][i])
                             for k in axis_keys) + " |")
        best_lines.append("")
    lines += ["## Summary", "", *summary, ""]
    for stem, title, xk, mx, yk, my in FRONTS:
        panels = fronts[stem]
        lines += [f"## {title[0].upper()}{title[1:]}", ""]
        if not panels:
            lines += ["No point without errors: nothing to plot.", ""]
            continue
        ncols = min(2, len(panels))
        nrows = math.ceil(len(panels) / ncols)
        fig = Figure(figsize=(5.5 * ncols, 4.0 * nrows), layout="constrained")
        FigureCanvasAgg(fig)
        axs = fig.subplots(nrows, ncols, squeeze=False)
        for ax, (label, x, y, mask, groups) in zip(axs.flat, panels, strict=False):
            (x, xu), (y, yu) = readable(x, _LABELS[xk][1]), readable(y, _LABELS[yk][1])
            plot_front(ax, x, y, mask, label=label, groups=groups)
            ax.set_xlabel(f"{_LABELS[xk][0]} ({xu})")
            ax.set_ylabel(f"{_LABELS[yk][0]} ({yu})")
            for values, axis, setter in ((x, ax.xaxis, ax.set_xscale),
                                         (y, ax.yaxis, ax.set_yscale)):
                if values.min() > 0 and values.max() > 10 * values.min():
                    setter("log")  # ticks at 1, 2 and 5 of each decade, plain numbers
                    axis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
                    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                    axis.set_minor_formatter(NullFormatter())
        for ax in list(axs.flat)[len(panels):]:
            ax.set_visible(False)
        fig.suptitle(f"{title} ({'max' if mx else 'min'} x, {'max' if my else 'min'} y)")
        with replacing(out_dir / f"{stem}.png") as tmp:
            fig.savefig(tmp, dpi=110)
        lines += [f"![{title}]({stem}.png)", ""]
    lines += ["## Best points per objective", "", *best_lines]
    report = out_dir / "report.md"
    with replacing(report) as tmp:
        tmp.write_text("\n".join(lines))
    return report
