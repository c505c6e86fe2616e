"""The console examples of the project's Markdown (the README, docs/): run, checked and written
from real runs.

A console example is a fenced block of kind ``console``: lines starting with ``$ tpe `` are
commands, the lines after each command up to the next are what it prints. What a command
prints is its standard output, followed by its standard error when it fails (exit status not
0): progress lines on standard error do not belong to a successful command's output. In the
expected text,

- a line ``...`` stands for any number of lines (none included), and ``...`` inside a line
  for any text (``{"arch": "systolic", ..., "cycles": 8581120, ...}``);
- wall-clock figures (:data:`MASKS`: a sweep's points per second) are masked on both sides.

The commands of a file run one after another in one scratch folder (later ones use what
earlier ones wrote) that holds links to the repository's ``examples`` and ``sim`` (for the
data files the examples read), an empty ``docs/figures`` and ``rtl_out``, so that a check
writes nothing into the repository.

``python -m sim.report.console [FILE...]`` checks the files (default :data:`DOCUMENTS`: the
README and every page of docs/; exit 1 on a difference, printed
as a unified diff); ``--write`` rewrites each differing example from the run: a block without
elisions is replaced by what the commands printed, one with elisions keeps its shape (its
first lines, its last lines and, between elisions, the lines starting as before, taken from
the run); a line elided inside itself that no longer matches is reported for a hand edit.
With ``--write``, the figures the commands drew under ``docs/figures`` are copied into the
repository's.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DOCUMENTS", "MASKS", "Block", "blocks", "matches", "run_block", "write_block"]

REPO = Path(__file__).resolve().parents[2]
#: Wall-clock figures, masked in the expected and the actual text alike.
MASKS = ((re.compile(r"\d[\d,]*(\.\d+)? points/s"), "N points/s"),)
ELISION = "..."


@dataclass(frozen=True)
class Block:
    """One console example: its commands with their expected output lines, and where it sits
    in its file (``start``: the index of its first line after the fence, ``end``: of the
    closing fence)."""

    start: int
    end: int
    commands: tuple[tuple[str, tuple[str, ...]], ...]


def blocks(lines: Sequence[str]) -> Iterator[Block]:
    """The console examples of a Markdown file's ``lines``."""
    i = 0
    while i < len(lines):
        if lines[i].strip() != "```console":
            i += 1
            continue
        start = i + 1
        end = start
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        commands: list[tuple[str, list[str]]] = []
        for line in lines[start:end]:
            if line.startswith("$ "):
                commands.append((line[2:], []))
            elif commands:
                commands[-1][1].append(line)
            else:
                raise ValueError(f"line {start + 1}: a console example starts with a $ command")
        yield Block(start=start, end=end,
                    commands=tuple((c, tuple(out)) for c, out in commands))
        i = end + 1


def _mask(text: str) -> str:
    for pattern, repl in MASKS:
        text = pattern.sub(repl, text)
    return text


def _line_pattern(line: str) -> str:
    return ".*?".join(re.escape(part) for part in _mask(line).split(ELISION))


def matches(expected: Sequence[str], actual: Sequence[str]) -> bool:
    """Whether ``actual`` lines are what ``expected`` says (elisions and masks: module doc)."""
    pattern = "".join(r"(?:[^\n]*\n)*?" if line.strip() == ELISION
                      else _line_pattern(line) + r"\n" for line in expected)
    text = "".join(_mask(line) + "\n" for line in actual)
    return re.fullmatch(pattern, text) is not None


def workspace(root: Path) -> Path:
    """Make ``root`` the scratch folder the examples run in (module doc)."""
    for name in ("examples", "sim"):
        link = root / name
        if not link.exists():
            link.symlink_to(REPO / name, target_is_directory=True)
    (root / "docs" / "figures").mkdir(parents=True, exist_ok=True)
    (root / "rtl_out").mkdir(exist_ok=True)
    return root


def run_command(command: str, cwd: Path, timeout: float = 900.0) -> list[str]:
    """What ``command`` (``tpe ...``) prints, run in ``cwd`` by this interpreter: standard
    output, then standard error if it failed."""
    args = shlex.split(command)
    if not args or args[0] != "tpe":
        raise ValueError(f"{command!r}: a console example runs tpe commands only")
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "100"}
    proc = subprocess.run([sys.executable, "-m", "sim.cli", *args[1:]], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)
    text = proc.stdout + (proc.stderr if proc.returncode != 0 else "")
    return text.splitlines()


def run_block(block: Block, cwd: Path) -> list[tuple[str, list[str]]]:
    """Every command of ``block`` with what it printed."""
    return [(command, run_command(command, cwd)) for command, _ in block.commands]


def write_block(expected: Sequence[str], actual: Sequence[str]) -> tuple[list[str], list[str]]:
    """``expected`` brought up to date from ``actual`` (module doc), and the lines elided
    inside themselves that no longer match (for a hand edit)."""
    if not any(ELISION in line for line in expected):
        return list(actual), []
    segments: list[list[str]] = [[]]
    for line in expected:
        if line.strip() == ELISION:
            segments.append([])
        else:
            segments[-1].append(line)
    out: list[str] = []
    stale: list[str] = []
    pos = 0
    for n, seg in enumerate(segments):
        if n:
            out.append(ELISION)
        if not seg:
            continue
        if n == 0:
            at = 0
        elif n == len(segments) - 1:
            at = max(pos, len(actual) - len(seg))
        else:  # the first line after pos that starts with the same words
            head = _anchor(seg[0])
            at = next((j for j in range(pos, len(actual)) if _anchor(actual[j]) == head), pos)
        for k, line in enumerate(seg):
            new = actual[at + k] if at + k < len(actual) else ""
            if ELISION not in line:
                out.append(new)
                continue
            out.append(line)  # elided inside: kept, and reported when it no longer matches
            if not matches([line], [new]):
                stale.append(line)
        pos = at + len(seg)
    return out, stale


_NUMBER = re.compile(r"^[-+]?[\d.,]+%?$")


def _anchor(line: str) -> tuple[str, ...]:
    """The words a line starts with before its first number (a table row's key: ``held gemm
    gemm/bf16/misaligned``, ``q_proj``)."""
    words = []
    for word in line.split():
        if _NUMBER.match(word):
            break
        words.append(word)
    return tuple(words)


def check_file(path: Path, root: Path, write: bool) -> list[str]:
    """Run every example of ``path`` in ``root``; returns the differences (diff text), and
    rewrites the file when ``write``."""
    lines = path.read_text().splitlines()
    problems: list[str] = []
    new_lines = list(lines)
    shift = 0
    for block in blocks(lines):
        body: list[str] = []
        for (command, expected), (_, actual) in zip(block.commands, run_block(block, root),
                                                    strict=True):
            body.append(f"$ {command}")
            if matches(expected, actual):
                body += expected
                continue
            diff = "\n".join(difflib.unified_diff(list(expected), actual, "README",
                                                  "run", lineterm="", n=1))
            problems.append(f"{path.name}: $ {command}\n{diff}")
            if write:
                updated, stale = write_block(expected, actual)
                body += updated
                problems += [f"{path.name}: $ {command}: edit by hand: {s}" for s in stale]
            else:
                body += expected
        new_lines[block.start + shift:block.end + shift] = body
        shift += len(body) - (block.end - block.start)
    if write and new_lines != lines:
        path.write_text("\n".join(new_lines) + "\n")
    return problems


#: The files whose console examples are checked: the README and every page of docs/.
DOCUMENTS = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sim.report.console", description=__doc__
                                .split("\n\n")[0])
    p.add_argument("files", nargs="*", type=Path, default=list(DOCUMENTS),
                   help="Markdown files (default: the README and every docs/*.md, as the "
                        "tests check them)")
    p.add_argument("--write", action="store_true",
                   help="rewrite differing examples from the run (and copy the figures drawn)")
    args = p.parse_args(argv)
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tpe_console_") as tmp:
        root = workspace(Path(tmp))
        for path in args.files:
            problems += check_file(path, root, args.write)
        if args.write:
            shutil.copytree(root / "docs" / "figures", REPO / "docs" / "figures",
                            dirs_exist_ok=True)
    for text in problems:
        print(text)
    verdict = "rewritten" if args.write else "differ"
    print(f"{len(problems)} example(s) {verdict}" if problems else "every example matches")
    return 1 if problems and not args.write else 0


if __name__ == "__main__":
    sys.exit(main())
