"""The README's and the docs' console examples are what the commands print (sim.report.console):
every example is run and compared, wall-clock figures masked."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.report.console import DOCUMENTS, blocks, check_file, matches, workspace, write_block

ROOT = Path(__file__).resolve().parents[1]
DOCS = list(DOCUMENTS)


def test_elisions_and_masks() -> None:
    actual = ["head", "a 1", "b 2", "c 3", "sweep x: 9 points (12.5 points/s)", "tail"]
    assert matches(["head", "...", "c 3", "...", "tail"], actual)
    assert matches(["head", "a 1", "...", "sweep x: 9 points (3 points/s)", "tail"], actual)
    assert matches(["...", "tail"], actual) and matches(["head", "...", "..."], actual)
    assert matches(["head", "a ...", "...", "tail"], actual)  # inside a line too
    assert not matches(["head", "c 3", "...", "tail"], actual)  # no elision, no skipping
    assert not matches(["head", "...", "c 4", "...", "tail"], actual)
    assert not matches(["head", "...", "sweep x: 8 points (12.5 points/s)", "tail"], actual)


def test_writing_keeps_an_examples_shape() -> None:
    expected = ["header", "...", "held gemm all  10.0%", "...", "held gemm int8  12.0%", "...",
                "verdict PASS"]
    actual = ["header", "cal gemm all  9.1%", "held gemm all  10.5%", "held gemm bf16  8.0%",
              "held gemm int8  13.0%", "held gemm int8/misaligned  20%", "verdict FAIL"]
    new, stale = write_block(expected, actual)
    assert new == ["header", "...", "held gemm all  10.5%", "...", "held gemm int8  13.0%",
                   "...", "verdict FAIL"] and not stale
    assert matches(new, actual)
    assert write_block(["x 1", "y"], ["x 2", "y", "z"]) == (["x 2", "y", "z"], [])
    assert write_block(["{a: 1, ...}"], ["{a: 2, b: 3}"])[1] == ["{a: 1, ...}"]  # by hand


def test_every_console_example_is_what_the_commands_print(tmp_path: Path) -> None:
    """Every ``$ tpe ...`` of the README and docs/ run in order in a scratch folder; a
    difference is shown as a diff (fix it with ``python -m sim.report.console --write``)."""
    files = [f for f in DOCS if any(b.commands for b in blocks(f.read_text().splitlines()))]
    assert ROOT / "README.md" in files
    problems = []
    root = workspace(tmp_path)
    for path in files:
        problems += check_file(path, root, write=False)
    if problems:
        pytest.fail("\n\n".join(problems) + "\n\nupdate with: .venv/bin/python -m "
                    "sim.report.console --write README.md docs/*.md")
