"""Run ``tpe`` in-process for the tests: exit code, stdout and stderr."""

from __future__ import annotations

from sim.cli import main


def run(capsys, argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)``'s exit code (argparse's usage errors included) and what it printed."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err
