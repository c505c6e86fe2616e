"""Time whole LLMs as eager PyTorch runs them: Hugging Face transformers, prefill and decode.

The reference for ``tpe sim model --arch h100``'s eager runtime: ``LlamaForCausalLM`` built
from a bundled config (``models/configs``) with random bf16 weights (the time of a forward
pass does not depend on the values), SDPA attention (transformers' default), its own
``DynamicCache``, no CUDA graphs, no compilation: what ``model(input_ids)`` and
``model.generate`` launch. Per (model, phase, batch, seq):

* ``prefill``: one forward pass over ``batch`` x ``seq`` prompt tokens that fills the cache
  (``use_cache=True``; the logits of every position, as transformers computes them);
* ``decode``: one more token per sequence against a cache of ``seq`` tokens: a forward pass of
  ``batch`` x 1 tokens appending to the cache, as a generation step does. Successive
  repetitions are successive steps (the cache grows by one token each: at most
  :data:`DECODE_STEPS` plus the warm-up, a few percent of ``seq``); cropping the cache back
  after each step would leave it a strided view, which the next step's concatenation copies
  at about a quarter of the bandwidth (measured: 50 of 65 ms of a batch-16 step at 2048
  tokens), a cost no generation loop pays.

Each is timed with CUDA events around the forward pass: the median of repetitions after
warm-up (``--budget-ms`` of repetitions at least, and at least 5). Writes one CSV row per case:
``us`` (median), ``us_p20``, ``us_p80``, ``runtime`` (``eager``), the transformers and torch
versions and the card.

Run as ``python -m sim.gpu.framework --out framework.csv`` on a machine with an NVIDIA GPU,
torch and transformers (the ``trace`` extra).
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["CASES", "fit_eager", "main", "profile_ops", "profiled_passes", "write_eager"]

CONFIGS = Path(__file__).resolve().parents[2] / "models" / "configs"
#: (model, phase, batch, seq): batch 1 to 32, the two Llama generations (MHA and GQA).
CASES: tuple[tuple[str, str, int, int], ...] = (
    ("llama-2-7b", "prefill", 1, 512), ("llama-2-7b", "prefill", 1, 2048),
    ("llama-2-7b", "prefill", 4, 1024), ("llama-2-7b", "prefill", 8, 512),
    ("llama-2-7b", "decode", 1, 1024), ("llama-2-7b", "decode", 8, 1024),
    ("llama-2-7b", "decode", 32, 512), ("llama-2-7b", "decode", 16, 2048),
    ("llama-3-8b", "prefill", 1, 512), ("llama-3-8b", "prefill", 1, 2048),
    ("llama-3-8b", "prefill", 4, 1024), ("llama-3-8b", "prefill", 32, 128),
    ("llama-3-8b", "decode", 1, 1024), ("llama-3-8b", "decode", 8, 2048),
    ("llama-3-8b", "decode", 32, 1024), ("llama-3-8b", "decode", 32, 4096),
)


def _model(torch: Any, name: str):  # pragma: no cover - needs a GPU
    import transformers

    cfg = json.loads((CONFIGS / f"{name}.json").read_text())
    # the config's architecture fields; bookkeeping keys (the source, the dtype it was saved
    # in, the writer's version) are not LlamaConfig arguments
    drop = {"architectures", "torch_dtype", "transformers_version", "model_type"}
    config = transformers.LlamaConfig(**{k: v for k, v in cfg.items()
                                         if not k.startswith("_") and k not in drop})
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda"):
            model = transformers.LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(before)
    return model.eval(), config


#: Decode steps timed per case (after two of warm-up): each appends a token to the cache.
DECODE_STEPS = 12


def _time(torch: Any, fn, budget_ms: float, max_reps: int = 200
          ) -> tuple[float, float, float]:  # pragma: no cover - needs a GPU
    """(median, p20, p80) microseconds of ``fn`` after two of warm-up (at most ``max_reps``
    repetitions)."""
    for _ in range(2):
        fn()
    times: list[float] = []
    t0 = time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - t0) * 1e3 < budget_ms:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e3)
        if len(times) >= max_reps:
            break
    q = statistics.quantiles(times, n=10)
    return statistics.median(times), q[1], q[7]


def _case(torch: Any, model: Any, vocab: int, phase: str, batch: int, seq: int,
          budget_ms: float) -> tuple[float, float, float]:  # pragma: no cover - needs a GPU
    """Time one case (module doc): (median, p20, p80) microseconds."""
    with torch.no_grad():
        fn = _step(torch, model, vocab, phase, batch, seq)
        return _time(torch, fn, budget_ms, DECODE_STEPS if phase == "decode" else 200)


def _step(torch: Any, model: Any, vocab: int, phase: str, batch: int, seq: int
          ) -> Any:  # pragma: no cover - needs a GPU
    """The forward pass of one case (module doc), to time (call it under
    ``torch.no_grad()``)."""
    ids = torch.randint(0, vocab, (batch, seq), device="cuda")
    if phase == "prefill":
        return lambda: model(ids, use_cache=True)
    # filling the cache needs no logits but the last position's
    cache = model(ids, use_cache=True, logits_to_keep=1).past_key_values
    nxt = torch.randint(0, vocab, (batch, 1), device="cuda")
    return lambda: model(nxt, past_key_values=cache, use_cache=True)


#: Forward passes profiled per case by :func:`profile_ops`.
PROFILED_PASSES = 3


def _device_us(e: Any) -> float:
    """A profiler average's own device time in us (``self_device_time_total``; older torch
    names it ``self_cuda_time_total``)."""
    v = getattr(e, "self_device_time_total", None)
    return float(v if v is not None else getattr(e, "self_cuda_time_total", 0.0))


def profile_ops(torch: Any, model: Any, vocab: int, phase: str, batch: int, seq: int
                ) -> list[dict[str, Any]]:  # pragma: no cover - needs a GPU
    """What one case's forward pass launches, per pass: every ATen operator that runs device
    work, by name and input shapes, with its calls, its own device time and its host time
    (``torch.profiler``), and a ``<forward>`` row: the host time of the call alone (the
    Python side returning before the GPU finishes: the launch rate), the device's busy time
    and the wall time to the end of the GPU's work."""
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad():
        fn = _step(torch, model, vocab, phase, batch, seq)
        for _ in range(2):
            fn()
        torch.cuda.synchronize()
        host, wall = [], []
        for _ in range(5):
            t0 = time.perf_counter()
            fn()
            t1 = time.perf_counter()
            torch.cuda.synchronize()
            host.append((t1 - t0) * 1e6)
            wall.append((time.perf_counter() - t0) * 1e6)
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA],
                     record_shapes=True) as prof:
            for _ in range(PROFILED_PASSES):
                fn()
                torch.cuda.synchronize()
    rows: list[dict[str, Any]] = []
    busy = 0.0
    for e in prof.key_averages(group_by_input_shape=True):
        dev = _device_us(e)
        if dev <= 0 or not e.key.startswith("aten::"):
            continue
        busy += dev
        rows.append({"op": e.key, "shapes": str(e.input_shapes)[:400],
                     "calls": f"{e.count / PROFILED_PASSES:g}",
                     "gpu_us": f"{dev / PROFILED_PASSES:.2f}",
                     "cpu_us": f"{e.cpu_time_total / PROFILED_PASSES:.2f}"})
    rows.sort(key=lambda r: -float(r["gpu_us"]))
    rows.insert(0, {"op": "<forward>", "shapes": "", "calls": "1",
                    "gpu_us": f"{busy / PROFILED_PASSES:.2f}",
                    "cpu_us": f"{statistics.median(host):.2f}",
                    "wall_us": f"{statistics.median(wall):.2f}"})
    return rows


def _each_case(torch: Any, cases,
               visit: Callable[[dict[str, Any], Any, int], None]) -> None:  # pragma: no cover
    """``visit(row, model, vocab)`` for every case, the models built one at a time (each freed
    before the next is built), ``row`` the case's identifying columns (model, phase, batch,
    seq, versions, card); the GPU's cache allocator emptied after each case."""
    import transformers

    gpu = torch.cuda.get_device_name(0)
    for name in dict.fromkeys(c[0] for c in cases):
        model, config = _model(torch, name)
        for _, phase, batch, seq in (c for c in cases if c[0] == name):
            visit({"model": name, "phase": phase, "batch": batch, "seq": seq,
                   "transformers": transformers.__version__, "torch": torch.__version__,
                   "gpu": gpu}, model, config.vocab_size)
            torch.cuda.empty_cache()
        del model
        torch.cuda.empty_cache()


def run_ops(out: Path, cases=CASES) -> Path:  # pragma: no cover - needs a GPU
    """:func:`profile_ops` of every case into one CSV."""
    import torch

    from sim.gpu.measure import guarded

    fields = ["model", "phase", "batch", "seq", "op", "shapes", "calls", "gpu_us", "cpu_us",
              "wall_us", "transformers", "torch", "gpu"]
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()

        def visit(base: dict[str, Any], model: Any, vocab: int) -> None:
            rows, status = guarded(torch, functools.partial(
                profile_ops, torch, model, vocab, base["phase"], base["batch"], base["seq"]))
            for r in rows or [{"op": "<forward>", "shapes": status}]:
                w.writerow(base | r)
            f.flush()
            print(*(base[k] for k in ("model", "phase", "batch", "seq")), status,
                  rows[0] if rows else "", flush=True)

        _each_case(torch, cases, visit)
    return out


#: The model whose profiled passes fit the eager constants; the other model's are held out.
EAGER_FIT_MODEL = "llama-2-7b"
#: Device operators that are not element-wise work: the GEMMs (cuBLAS) and attention.
_LIBRARY_OPS = ("aten::mm", "aten::bmm", "aten::addmm", "aten::_cudnn_attention_forward",
                "aten::_flash_attention_forward", "aten::_efficient_attention_forward")


def profiled_passes(path: Path) -> list[dict[str, Any]]:
    """The passes of an ``--ops`` profile: per (model, phase, batch, seq) its device busy,
    host and wall time, kernels launched, and the element-wise kernels' calls and device
    time (every device operator but the GEMMs and attention)."""
    cases: dict[tuple[str, str, int, int], dict[str, Any]] = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            key = (r["model"], r["phase"], int(r["batch"]), int(r["seq"]))
            c = cases.setdefault(key, {"model": key[0], "phase": key[1], "batch": key[2],
                                       "seq": key[3], "launches": 0.0, "elementwise": 0.0,
                                       "elementwise_us": 0.0})
            if r["op"] == "<forward>":
                c |= {"busy_us": float(r["gpu_us"]), "host_us": float(r["cpu_us"]),
                      "wall_us": float(r["wall_us"])}
                continue
            c["launches"] += float(r["calls"])
            if r["op"] not in _LIBRARY_OPS:
                c["elementwise"] += float(r["calls"])
                c["elementwise_us"] += float(r["gpu_us"])
    return list(cases.values())


def _timed(path: Path) -> dict[tuple[str, str, int, int], float]:
    """The timed passes of a :func:`run` CSV: per (model, phase, batch, seq) its median us."""
    with open(path, newline="") as f:
        return {(r["model"], r["phase"], int(r["batch"]), int(r["seq"])): float(r["us"])
                for r in csv.DictReader(f) if r.get("status", "ok") == "ok" and r.get("us")}


def fit_eager(path: Path, read_gb_per_s: float, timed: Path | None = None) -> dict[str, Any]:
    """The eager constants (:class:`sim.gpu_model.EagerCalibration`) from an ``--ops``
    profile: the element-wise kernels' device time of each pass of :data:`EAGER_FIT_MODEL`
    fitted as ``kernels x kernel_us + bytes / (elementwise_eff x read_gb_per_s)`` (least
    squares on relative error; the bytes those of ``lower(..., runtime="eager")``), and the
    host's time per launched kernel: the median over that model's host-bound passes (the
    profile's host time above the device's busy time), its range over every host-bound pass.

    ``timed``: a timed run of the same passes (:func:`run`'s CSV, measured on the same host);
    a host-bound pass's time per kernel is then its timed time over its kernels (what the
    prediction is compared with) instead of the profile's host time (taken under the
    profiler's session, it ran up to 2x above the timed pass on one host)."""
    import numpy as np

    from models.llm import load_model, lower
    from models.ops import Vector

    passes = profiled_passes(path)
    times = _timed(timed) if timed is not None else {}
    rows, rhs = [], []
    for p in passes:
        if p["model"] != EAGER_FIT_MODEL:
            continue
        ops = lower(load_model(p["model"]), phase=p["phase"], batch=p["batch"], seq=p["seq"],
                    quant="bf16", runtime="eager")
        nbytes = sum(op.bytes * op.count for op in ops if isinstance(op, Vector))
        w = 1.0 / p["elementwise_us"]
        rows.append([p["elementwise"] * w, nbytes / (read_gb_per_s * 1e3) * w])
        rhs.append(1.0)
    (kernel_us, inv_eff), *_ = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)
    bound = [p for p in passes if p["host_us"] > p["busy_us"]]

    def host_us(p: dict[str, Any]) -> float:
        if timed is None:
            return p["host_us"]
        key = (p["model"], p["phase"], p["batch"], p["seq"])
        if key not in times:
            raise ValueError(f"--timed: {timed.name} has no timed pass {key} of the profile "
                             f"{path.name}; time the same cases")
        return times[key]

    host: dict[str, float] = {}
    spread: dict[str, list[float]] = {}
    for phase in ("prefill", "decode"):
        per = [host_us(p) / p["launches"] for p in bound if p["phase"] == phase]
        fit = [host_us(p) / p["launches"] for p in bound
               if p["phase"] == phase and p["model"] == EAGER_FIT_MODEL]
        if not fit:
            raise ValueError(f"--fit-eager: {path.name} has no host-bound {phase} pass of "
                             f"{EAGER_FIT_MODEL} (host time above the device's busy time); "
                             "profile a shorter one")
        host[phase] = float(statistics.median(fit))
        spread[phase] = [float(min(per)), float(max(per))]
    return {"kernel_us": float(kernel_us), "elementwise_eff": float(1.0 / inv_eff),
            "host_launch_us": host, "host_launch_us_range": spread,
            "passes": len(passes), "fit_passes": len(rows), "host_bound": len(bound)}


def write_eager(profile: Path, out: Path, calibration: str,
                timed: Path | None = None) -> dict[str, Any]:
    """:func:`fit_eager` on ``profile`` (and ``timed``) with calibration ``calibration``'s
    bandwidth, written as ``out`` (``sim/data/gpu/eager_<calibration>.toml``)."""
    from sim.gpu_model import load_calibration

    cal = load_calibration(calibration)
    with open(profile, newline="") as f:
        first = next(csv.DictReader(f))
    fit = fit_eager(profile, cal.read_gb_per_s, timed)
    host_of = (f"its timed time ({timed.name})" if timed is not None
               else "its profiled host time")
    text = (
        "# Eager-PyTorch constants of the card, written by python -m sim.gpu.framework "
        "--fit-eager\n"
        f"# from {profile.name} (torch.profiler of eager transformers passes; transformers "
        f"{first['transformers']}, torch {first['torch']})"
        + (f" and {timed.name} (the same passes timed).\n" if timed is not None else ".\n")
        + f'card = "{first["gpu"]}"\n'
        f'source = "{profile.name}: {fit["fit_passes"]} passes of {EAGER_FIT_MODEL} fitted, '
        f'{fit["passes"] - fit["fit_passes"]} held out; calibration {calibration}"\n\n'
        "[measured]\n"
        "# host time per launched kernel, per phase: the median over the fitted model's "
        "host-bound\n# passes (profiled host time above the device's busy time) of "
        f"{host_of} over its kernels;\n"
        f"# the range over all {fit['host_bound']} host-bound passes of the phase\n"
        "host_launch_us = { " + ", ".join(
            f"{k} = {v:.4g}" for k, v in fit["host_launch_us"].items()) + " }\n"
        "host_launch_us_range = { " + ", ".join(
            f"{k} = [{lo:.6g}, {hi:.6g}]" for k, (lo, hi) in fit["host_launch_us_range"].items())
        + " }\n\n"
        "[fitted]\n"
        "# element-wise kernel: kernel_us + bytes / (elementwise_eff x read_gb_per_s)\n"
        f"kernel_us = {fit['kernel_us']:.4g}\n"
        f"elementwise_eff = {fit['elementwise_eff']:.4g}\n")
    tmp = out.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(out)
    return fit


def run(out: Path, budget_ms: float = 300.0, cases=CASES) -> Path:  # pragma: no cover
    import torch

    from sim.gpu.measure import guarded

    out.parent.mkdir(parents=True, exist_ok=True)
    fields = ["model", "phase", "batch", "seq", "us", "us_p20", "us_p80", "runtime", "dtype",
              "transformers", "torch", "status", "gpu"]
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()

        def visit(base: dict[str, Any], model: Any, vocab: int) -> None:
            row = base | {"runtime": "eager", "dtype": "bf16"}
            q, status = guarded(torch, functools.partial(
                _case, torch, model, vocab, base["phase"], base["batch"], base["seq"],
                budget_ms))
            row["status"] = status
            if q is not None:
                row |= {"us": f"{q[0]:.1f}", "us_p20": f"{q[1]:.1f}", "us_p80": f"{q[2]:.1f}"}
            w.writerow(row)
            f.flush()
            print({k: row[k] for k in ("model", "phase", "batch", "seq", "us", "status")},
                  flush=True)

        _each_case(torch, cases, visit)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sim.gpu.framework",
                                description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True,
                   help="CSV to write (with --fit-eager: the TOML)")
    p.add_argument("--budget-ms", type=float, default=300.0,
                   help="time spent repeating each case, in ms (at least 5 repetitions)")
    p.add_argument("--ops", action="store_true",
                   help="instead of timing, profile what each case launches (torch.profiler: "
                        "ATen operators with their shapes, calls, device and host time, and "
                        "the forward pass's host and device time)")
    p.add_argument("--fit-eager", type=Path, metavar="OPS_CSV",
                   help="instead of measuring, fit the eager constants from an --ops profile "
                        "and write them to --out (no GPU needed)")
    p.add_argument("--timed", type=Path, metavar="TIMED_CSV",
                   help="with --fit-eager: the same passes timed on the same host (this "
                        "command's CSV without --ops); the host's time per kernel is then a "
                        "timed pass over its kernels, not the profile's host time")
    p.add_argument("--calibration", default="h100",
                   help="with --fit-eager: the card's calibration (its streaming bandwidth)")
    args = p.parse_args(argv)
    if args.timed is not None and args.fit_eager is None:
        print("error: --timed: only with --fit-eager (it times nothing itself)", file=sys.stderr)
        return 2
    if args.fit_eager is not None:
        for flag, path in (("--fit-eager", args.fit_eager), ("--timed", args.timed)):
            if path is not None and not path.is_file():
                print(f"error: {flag}: no file {path}", file=sys.stderr)
                return 2
        try:
            fit = write_eager(args.fit_eager, args.out, args.calibration, args.timed)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"wrote {args.out}: {fit}")
        return 0
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError:
        print("error: needs torch and transformers (pip install -e '.[trace]')",
              file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("error: no CUDA GPU found; run it on a machine with an NVIDIA GPU", file=sys.stderr)
        return 2
    if args.ops:
        run_ops(args.out)
    else:
        run(args.out, args.budget_ms)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
