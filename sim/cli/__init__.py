"""The ``tpe`` command line.

Every subcommand lives in a module that exposes ``register(subparsers)``; each registered
parser sets ``func`` (called with the parsed namespace, returning the exit code).

Exit codes: 0 success, 1 a check failed, 2 bad input (one line on stderr naming the field).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from sim.errors import INPUT_ERRORS, InputError

__all__ = ["InputError", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from sim.cli import demo, gpu, hw, sim, sweep

    parser = _Parser(
        prog="tpe",
        description="TPEForge: generate, verify and simulate tensor processing engines.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in (demo, hw, sim, gpu, sweep):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except INPUT_ERRORS as err:
        print(f"tpe: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tpe: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader (e.g. `| head`) went away: not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


