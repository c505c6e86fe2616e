"""Plot helpers: each takes an ``ax``, draws, returns it; saving is the caller's choice."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["plot_op_breakdown", "plot_roofline"]


def plot_op_breakdown(ax, phases: dict[str, dict[str, float]], *, unit: str = "ms"):
    """Horizontal stacked bars: per phase, the time of each operator (same colour per op)."""
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
        ax.barh(labels, share * 100, left=left, color=cmap(i % 20), label=name)
        left += share * 100
    for y, p in enumerate(labels):
        ax.text(101, y, f"{sum(phases[p].values()):.3g} {unit}", va="center", fontsize=8)
    ax.set_xlim(0, 118)
    ax.set_xlabel("share of time (%)")
    ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.3), frameon=False)
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
