"""``tpe demo``: the main job on the embedded default."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="generate, verify, synthesize and simulate the default engine")
    p.add_argument("--out", type=Path, default=Path("tpe_demo"), help="report folder")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    raise NotImplementedError("tpe demo: under construction")
