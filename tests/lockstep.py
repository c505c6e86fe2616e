"""Shared checks of the lock-step tests: a generated design on Verilator through cocotb, and
a GEMM on a design in amaranth.sim."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np
import pytest

from hw.emit import generate
from sim.engines import gemm_compute_cycles, gemm_folds
from sim.verify.amaranth_bench import run_gemm_amaranth
from sim.verify.cxx_opt import DEFAULT_CXX_OPT
from sim.verify.driver import Case, case_operands, reference_gemm
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


def check_gemm_amaranth(spec, case: Case, rng: np.random.Generator, *,
                        stream: int | None = None,
                        operands: Callable[..., Any] = case_operands,
                        reference: Callable[..., Any] = reference_gemm,
                        **stalls: float) -> Any:
    """``case``'s GEMM on ``spec``'s design in amaranth.sim (``stalls``: ``p_idle`` and
    ``p_stall`` of the driver): the results bit exact and the stream protocol kept; without
    stalls, the cycles from the first input beat to the last output beat the model's
    (``gemm_compute_cycles`` and ``gemm_folds``) and every fold ``fold_cycles(stream)``
    (``stream``: the fold's stream length, default K); with stalls, no fewer. ``operands``
    and ``reference``: the kind's own drawing of a case's operands and its reference GEMM,
    where they are not the driver's (the MX engine's block formats). Returns the driver, for
    more checks."""
    A, W = operands(spec, case, rng)
    got, drv = run_gemm_amaranth(spec, A, W, rng, **stalls)
    np.testing.assert_array_equal(got, reference(spec, A, W), err_msg=case.label)
    assert drv.check_protocol() == []
    measured = drv.timing[-1].last_out - drv.timing[0].first_in + 1
    model = gemm_compute_cycles(spec, case.M, case.N, case.K)
    if stalls:
        assert measured >= model, case.label
        return drv
    assert measured == model == gemm_folds(spec, case.M, case.N, case.K).cycles, case.label
    folds = [spec.fold_cycles(case.K if stream is None else stream)] * len(drv.folds)
    assert [t.cycles for t in drv.timing] == folds, case.label
    return drv
