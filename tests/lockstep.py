"""Shared checks of the lock-step tests: a generated design on Verilator through cocotb."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

import pytest

from hw.emit import generate
from sim.verify.cxx_opt import DEFAULT_CXX_OPT
from sim.verify.runner import VerifyReport, verify_design


def verify_lockstep(spec, tmp_path) -> VerifyReport:
    """Generate ``spec``, run its bench (seed 3) and assert every result is bit exact and
    every stall-free run's cycles equal the model's; returns the report for more checks."""
    design = generate(spec, tmp_path)
    report = verify_design(design, seed=3)
    # the model is compiled at the default -O0 (make echoes each g++ command)
    assert f"-O{DEFAULT_CXX_OPT}" in (design / "sim_build" / "build.log").read_text()
    problems = [f"{c['case']}: {p}" for c in report.cases for p in c["problems"]]
    assert not problems
    assert report.passed
    # built with every Verilator warning on but the design's lint.vlt waivers: none left
    assert not report.warnings, report.warnings[:5]
    for case in report.cases:
        assert case["results_ok"]
        if case["cycles_checked"]:
            assert case["measured_cycles"] == case["model_cycles"]
    return report


def ci_subset(points: Sequence[Any], ci: Collection[int],
              name: Callable[[Any], str] = lambda s: s.name) -> list[Any]:
    """``points`` as pytest parameters, all but those at the indices ``ci`` marked ``slow``:
    CI runs a representative subset (every kind and option at least once), the full matrix
    runs by hand with ``pytest -m slow``."""
    assert all(0 <= i < len(points) for i in ci), ci
    return [pytest.param(p, id=name(p), marks=() if i in ci else (pytest.mark.slow,))
            for i, p in enumerate(points)]
