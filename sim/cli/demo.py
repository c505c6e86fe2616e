"""``tpe demo``: the main job on the embedded default (the work is in
:func:`sim.report.demo.run_demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="generate, verify, synthesize and simulate the default engine",
        description="Generate a 16x16 INT8 systolic array, verify it on Verilator, synthesize "
        "it, simulate Llama-2-7B prefill and decode on it, and write a Markdown report.")
    p.add_argument("--out", type=Path, default=Path("tpe_demo"),
                   help="report folder (default tpe_demo)")
    p.add_argument("--no-synth", action="store_true", help="skip the Yosys synthesis step")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from sim.files import output_dir
    from sim.report.demo import run_demo

    output_dir(args.out, "--out")

    report, ok = run_demo(args.out, synth=not args.no_synth, log=print)
    print(f"report: {report}")
    return 0 if ok else 1
