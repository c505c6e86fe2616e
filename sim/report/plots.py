"""Plot helpers: each takes an ``ax``, draws, returns it; saving is the caller's choice."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["plot_op_breakdown", "plot_roofline", "save_model_plots"]


#: Hatches that tell apart operators past the colour map's 20 colours (100 in all).
_HATCHES = ("", "////", "....", "xxxx", "\\\\")


def plot_op_breakdown(ax, phases: dict[str, dict[str, float]], *, unit: str = "ms"):
    """Horizontal stacked bars: per phase, the time of each operator (same colour and hatch per
    operator, distinct for up to 100 operators)."""
    names: list[str] = []
    for ops in phases.values():
        names += [n for n in ops if n not in names]
    cmap = __import__("matplotlib").colormaps["tab20"]
    labels = list(phases)
    left = np.zeros(len(labels))
    for i, name in enumerate(names):
        vals = np.array([phases[p].get(name, 0.0) for p in labels])
        total = np.array([sum(phases[p].values()) for p in labels])
        share = np.divide(vals, total, out=np.zeros_like(vals), where=total > 0)
        # tab20's 20 colours, then the same colours hatched: no two operators look alike
        ax.barh(labels, share * 100, left=left, color=cmap(i % 20), label=name,
                hatch=_HATCHES[(i // 20) % len(_HATCHES)], edgecolor="white", linewidth=0.3)
        left += share * 100
    for y, p in enumerate(labels):
        ax.text(101, y, f"{sum(phases[p].values()):.3g} {unit}", va="center", fontsize=8)
    ax.set_xlim(0, 118)
    ax.set_xlabel("share of time (%)")
    ax.legend(fontsize=7, ncol=max(1, -(-len(names) // 18)), loc="upper left",
              bbox_to_anchor=(1.01, 1.0), frameon=False)
    return ax


def plot_roofline(
    ax,
    *,
    peak_ops_per_s: float,
    bytes_per_s: float,
    points: Sequence[tuple[str, float, float]],
    title: str = "",
):
    """A roofline (MAC/s vs MACs per DRAM byte) with one labelled point per operator.

    ``points``: (label, intensity in MACs/byte, achieved MAC/s).
    """
    xs = np.array([p[1] for p in points] or [1.0])
    lo = min(xs.min(), peak_ops_per_s / bytes_per_s) / 4
    hi = max(xs.max(), peak_ops_per_s / bytes_per_s) * 4
    grid = np.geomspace(lo, hi, 200)
    ax.loglog(grid, np.minimum(peak_ops_per_s, bytes_per_s * grid), "k-", lw=1.5,
              label="roofline")
    ax.axvline(peak_ops_per_s / bytes_per_s, color="0.7", ls=":", lw=1)
    # Operators that land on (almost) the same spot share one point and one label.
    merged: list[tuple[list[str], float, float]] = []
    for label, x, y in points:
        for group in merged:
            if abs(np.log(group[1] / x)) < 0.05 and abs(np.log(group[2] / y)) < 0.05:
                group[0].append(label)
                break
        else:
            merged.append(([label], x, y))
    for labels, x, y in merged:
        ax.loglog([x], [y], "o", ms=5)
        ax.annotate(", ".join(labels), (x, y), fontsize=7, xytext=(4, -10 if len(labels) > 2
                    else 3), textcoords="offset points")
    ax.set_xlabel("operational intensity (MACs per DRAM byte)")
    ax.set_ylabel("MAC/s")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def save_model_plots(results, out_dir) -> list:
    """Write ``op_breakdown.png`` (time per operator, per phase) and ``roofline.png`` (one
    panel per phase: every operator's MACs per DRAM byte and achieved MAC/s under the
    architecture's roofline) for ``results`` (``{phase label: sim.model.ModelResult}``) into
    ``out_dir``; returns the two paths. Each file is written to a temporary name first."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    first = next(iter(results.values()))
    arch = first.arch
    phases = {label: {k: v * 1e3 for k, v in res.time_by_op().items()}
              for label, res in results.items()}
    paths = []
    names = {n for ops in phases.values() for n in ops}
    legend_cols = -(-len(names) // 18)
    fig, ax = plt.subplots(figsize=(7 + 1.6 * legend_cols,
                                    max(1.6 + 0.5 * len(phases), 0.16 * min(len(names), 18))),
                           layout="constrained")
    plot_op_breakdown(ax, phases)
    ax.set_title(f"{first.name} on {arch.name} [{arch.engine.name}]: time per operator",
                 fontsize=9)
    paths.append(_save(fig, out / "op_breakdown.png"))
    plt.close(fig)

    peak = arch.cores * arch.engine.macs_per_cycle * arch.clock_mhz * 1e6
    bw = arch.dram.bandwidth_gb_per_s * 1e9
    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4),
                             layout="constrained", squeeze=False)
    for ax, (label, res) in zip(axes[0], results.items(), strict=True):
        pts = [(r.name, r.macs / max(r.dram_bytes, 1.0), r.macs / r.seconds)
               for r in res.ops if r.macs and r.seconds > 0]
        plot_roofline(ax, peak_ops_per_s=peak, bytes_per_s=bw, points=pts, title=str(label))
    paths.append(_save(fig, out / "roofline.png"))
    plt.close(fig)
    return paths


def _save(fig, path):
    from sim.files import replacing

    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=130)
    return path
