"""Design-space sweeps (``tpe sweep``): many architectures x many LLM workloads -> a Parquet
table, Pareto fronts and a report.

One job per module:

- :mod:`sim.sweep.spec`: the sweep spec file (its format is documented there), its
  validation into a :class:`SweepSpec` and its design points (grid, point ids);
- :mod:`sim.sweep.run`: running a sweep (:func:`run_sweep`) on local worker processes or a
  Ray cluster, including the NSGA-II search;
- :mod:`sim.sweep.storage`: the results directory (atomic Parquet parts, the manifest,
  ``--resume``, the lock) and :func:`read_results`;
- :mod:`sim.sweep.report`: Pareto fronts and the Markdown report (:func:`write_report`).

The public names are re-exported here: import them from ``sim.sweep``.
"""

from __future__ import annotations

from sim.sweep.report import pareto_mask, plot_front, write_report
from sim.sweep.run import SweepSummary, run_sweep
from sim.sweep.run import _Evaluator as _Evaluator  # benchmarks/sweep_speed.py times it alone
from sim.sweep.spec import (
    METRIC_COLUMNS,
    METRICS,
    Axis,
    SweepSpec,
    Workload,
    grid_size,
    load_sweep,
    parse_sweep,
    point_id,
    point_values,
)
from sim.sweep.storage import FLUSH_SECONDS as FLUSH_SECONDS  # the CLI's --flush-seconds
from sim.sweep.storage import read_results

__all__ = [
    "METRICS",
    "METRIC_COLUMNS",
    "Axis",
    "SweepSpec",
    "SweepSummary",
    "Workload",
    "grid_size",
    "load_sweep",
    "pareto_mask",
    "parse_sweep",
    "plot_front",
    "point_id",
    "point_values",
    "read_results",
    "run_sweep",
    "write_report",
]
