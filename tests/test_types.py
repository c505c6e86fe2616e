"""The type checker: mypy, configured in pyproject.toml ([tool.mypy]), over CHECKED.

A cold run (a clean clone) takes about 10 s of CPU; later runs reuse .mypy_cache/ at the
repository root (git-ignored) and take about one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parent.parent

#: The simulator's cost core: sim/ without its client subpackages (tests/test_layering.py).
SIM_CORE = (*sorted(str(p.relative_to(ROOT)) for p in (ROOT / "sim").glob("*.py")),
            "sim/engines")
#: Packages and modules (paths from the repository root) that must type-check; add one here.
CHECKED = ("models", "hw/spec", "mapping", *SIM_CORE)


def test_checked_packages_type_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # mypy reports paths relative to the repository root
    stdout, stderr, status = api.run([
        "--config-file", str(ROOT / "pyproject.toml"),
        "--cache-dir", str(ROOT / ".mypy_cache"),
        *CHECKED,
    ])
    assert status == 0, f"mypy exit status {status}:\n{stdout}{stderr}"
