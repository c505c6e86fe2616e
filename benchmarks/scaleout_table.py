#!/usr/bin/env python3
"""The tables of docs/scaleout.md: Llama-2-70B and Mixtral-8x7B on 1 to 8 devices of the h100
(bf16) and npu-hbm (int8) presets, decode and prefill, each figure computed by the simulator
(``models.parallel.lower_parallel`` and ``sim.devices.simulate_devices``, what ``tpe sim model
--devices`` runs).

Usage (repository root)::

    .venv/bin/python benchmarks/scaleout_table.py                     # print the tables
    .venv/bin/python benchmarks/scaleout_table.py --write docs/scaleout.md

``--write`` replaces the text between the page's ``<!-- scaleout-table -->`` markers
(tests/test_scaleout.py checks that the committed page is what this gives).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from hw.spec import load_arch  # noqa: E402
from models.llm import load_model  # noqa: E402
from models.parallel import ParallelPlan, lower_parallel  # noqa: E402
from sim.devices import simulate_devices  # noqa: E402
from sim.execution import arch_scheme  # noqa: E402

MARK = "<!-- scaleout-table -->"
#: (preset, --quant): the GPU in bf16, the TPU-like NPU at its own int8.
ARCHS = (("h100", "bf16"), ("npu-hbm", "auto"))
MODELS = ("llama-2-70b", "mixtral-8x7b")
#: (tp, pp, ep, microbatches): tensor parallelism alone, then pipeline and expert variants.
PLANS = ((1, 1, 1, 1), (2, 1, 1, 1), (4, 1, 1, 1), (8, 1, 1, 1), (4, 2, 1, 2), (1, 8, 1, 8),
         (8, 1, 8, 1))
#: The workload: 16 sequences, decode after 2048 cached tokens; prefill of 2048-token prompts.
BATCH, SEQ = 16, 2048


def _si(x: float) -> str:
    for f, p in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= f:
            return f"{x / f:.3g} {p}"
    return f"{x:.3g} "


def _time(s: float) -> str:
    return f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"


def table() -> str:
    lines: list[str] = []
    for arch_name, quant in ARCHS:
        arch = load_arch(arch_name)
        scheme = arch_scheme(quant, arch)
        assert arch.interconnect is not None
        ic = arch.interconnect
        lines += [f"### {arch_name} ({scheme.name}; {ic.topology}, "
                  f"{ic.bandwidth_gb_per_s:g} GB/s links)", "",
                  "| model | devices | tp | pp | ep | micro-batches | phase | time | tokens/s "
                  "| energy/token | communication | exposed | idle | memory/device | fits |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: "
                  "| ---: | ---: | ---: | --- |"]
        for name in MODELS:
            cfg = load_model(name)
            for tp, pp, ep, mb in PLANS:
                if ep > 1 and cfg.moe is None:
                    continue
                plan = ParallelPlan(tp=tp, pp=pp, ep=ep, microbatches=mb)
                for phase in ("decode", "prefill"):
                    work = lower_parallel(cfg, plan, phase=phase, batch=BATCH, seq=SEQ,
                                          quant=scheme)
                    r = simulate_devices(arch, work, name=name, phase=phase, batch=BATCH,
                                         seq=SEQ, quant=scheme.name)
                    worst = max(r.stages, key=lambda s: s.memory_bytes)
                    comm = max(s.communication_s for s in r.stages)
                    exposed = max(s.exposed_communication_s for s in r.stages)
                    idle = max(s.idle_s for s in r.stages)
                    lines.append(
                        f"| {name} | {plan.devices} | {tp} | {pp} | {ep} | {mb} | {phase} | "
                        f"{_time(r.seconds)} | {r.tokens_per_s:.4g} | "
                        f"{_si(r.energy_per_token_pj * 1e-12)}J | {_time(comm)} | "
                        f"{_time(exposed)} | {_time(idle)} | {_si(worst.memory_bytes)}B | "
                        f"{'yes' if r.fits else 'no'} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write(page: Path) -> None:
    text = page.read_text()
    head, sep, rest = text.partition(MARK)
    _, sep2, tail = rest.partition(MARK)
    if not sep or not sep2:
        raise SystemExit(f"{page}: needs two {MARK} lines around the table")
    page.write_text(f"{head}{MARK}\n{table()}{MARK}{tail}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", type=Path, default=None, metavar="PAGE")
    args = ap.parse_args(argv)
    if args.write:
        write(args.write)
    else:
        print(table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
