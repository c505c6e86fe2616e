"""Shared checks of the lock-step tests: a generated design on Verilator through cocotb."""

from __future__ import annotations

from hw.emit import generate
from sim.verify.runner import VerifyReport, verify_design


def verify_lockstep(spec, tmp_path) -> VerifyReport:
    """Generate ``spec``, run its bench (seed 3) and assert every result is bit exact and
    every stall-free run's cycles equal the model's; returns the report for more checks."""
    report = verify_design(generate(spec, tmp_path), seed=3)
    problems = [f"{c['case']}: {p}" for c in report.cases for p in c["problems"]]
    assert not problems
    assert report.passed
    for case in report.cases:
        assert case["results_ok"]
        if case["cycles_checked"]:
            assert case["measured_cycles"] == case["model_cycles"]
    return report
