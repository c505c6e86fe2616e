#!/usr/bin/env python3
"""Measure what the several-device model predicts, on the GPUs of one node, and check it.

**Measure** (on the GPU machine: torch with NCCL only, none of TPEForge's dependencies)::

    NCCL_NVLS_ENABLE=0 torchrun --nproc-per-node 8 benchmarks/scaleout_measure.py \\
        --out scaleout_h100.csv

times, with CUDA events over back-to-back runs after a warm-up, on groups of the first 2, 4
and 8 ranks (as many as there are); the layers replayed from a CUDA graph where it can be
captured (column ``timing``: ``graph``, else ``eager``), as a serving engine runs them:

* NCCL collectives (``torch.distributed``): all-reduce, all-gather, reduce-scatter,
  all-to-all on bf16 buffers of 1 KiB to 1 GiB, and send/receive between ranks 0 and 1;
* one Llama-2-70B decoder layer split Megatron-style over the group (each rank its heads and
  its slice of the MLP, an all-reduce after the attention and after the MLP), in prefill
  (1 x 2048 tokens) and decode (16 sequences after 2048 cached tokens), with and without its
  all-reduces (the per-device compute alone).

``--single`` instead runs the split layer's per-device compute on one GPU for tensor-parallel
degrees 1 to 8 (no collectives: ``python benchmarks/scaleout_measure.py --single --out F``).
NVLink SHARP (in-switch reduction) stays off (``NCCL_NVLS_ENABLE=0``): the model does not
have it. Each row: ``what`` (collective kind, ``layer`` or ``layer_compute``), ``group``,
``bytes`` (collectives), ``phase``, ``batch``, ``seq``, ``us`` (median), ``gpu``.

**Check** (here, with the project installed)::

    .venv/bin/python benchmarks/scaleout_measure.py --check scaleout_h100.csv --arch h100

predicts every row (``sim.collectives.collective_time``; a one-layer Llama-2-70B through
``models.parallel.lower_parallel`` and ``sim.devices.simulate_devices``, embedding and head
left out) and prints the error of each and the mean absolute error per kind (the aim: 10%).
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
from pathlib import Path

COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv")
SIZES = [1 << k for k in range(10, 31, 2)]  # 1 KiB .. 1 GiB
#: Llama-2-70B's layer (its config.json): hidden 8192, 64 heads of 128, 8 KV heads, MLP 28672.
HIDDEN, HEADS, KV_HEADS, HEAD_DIM, MLP = 8192, 64, 8, 128, 28672
#: (phase, batch, seq): prefill of one 2048-token prompt, decode of 16 after 2048 cached.
LAYER_CASES = (("prefill", 1, 2048), ("decode", 16, 2048))
FIELDS = ("what", "group", "bytes", "phase", "batch", "seq", "us", "gpu", "timing")


def _graph_us(fn, sync) -> tuple[float, str]:
    """``fn`` captured once in a CUDA graph and its replays timed (the device's time, as a
    serving engine's graphs run a layer: no host launch gaps), with ``"graph"``; where the
    capture fails (a collective the NCCL build cannot capture), ``fn`` run eagerly, with
    ``"eager"``."""
    import torch

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    sync()
    try:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
    except RuntimeError:
        sync()
        return _time_us(fn, sync), "eager"
    return _time_us(graph.replay, sync), "graph"


def _time_us(fn, sync, iters: int = 20, warmup: int = 5) -> float:
    import torch

    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        sync()
        times.append(start.elapsed_time(end) * 1e3)
    return statistics.median(times)


class _Layer:
    """One rank's share of a Llama decoder layer at tensor-parallel degree ``tp``."""

    def __init__(self, tp: int, phase: str, batch: int, seq: int, device) -> None:
        import torch

        bf = dict(device=device, dtype=torch.bfloat16)
        self.heads, self.kv = HEADS // tp, max(1, KV_HEADS // tp)
        self.tokens = batch * seq if phase == "prefill" else batch
        self.batch, self.seq, self.phase = batch, seq, phase
        q_len = seq if phase == "prefill" else 1
        self.q_len = q_len
        self.x = torch.randn(self.tokens, HIDDEN, **bf)
        self.wqkv = torch.randn(HIDDEN, (self.heads + 2 * self.kv) * HEAD_DIM, **bf) * 0.01
        self.wo = torch.randn(self.heads * HEAD_DIM, HIDDEN, **bf) * 0.01
        self.wgu = torch.randn(HIDDEN, 2 * (MLP // tp), **bf) * 0.01
        self.wd = torch.randn(MLP // tp, HIDDEN, **bf) * 0.01
        self.norm = torch.ones(HIDDEN, **bf)
        if phase == "decode":
            self.k = torch.randn(batch, self.kv, seq + 1, HEAD_DIM, **bf)
            self.v = torch.randn(batch, self.kv, seq + 1, HEAD_DIM, **bf)

    def __call__(self, reduce) -> None:
        import torch.nn.functional as F

        def rms(x):  # one fused kernel, as a serving engine runs it
            return F.rms_norm(x, (HIDDEN,), self.norm, 1e-5)

        h = rms(self.x)
        qkv = h @ self.wqkv
        q, k, v = qkv.split([self.heads * HEAD_DIM, self.kv * HEAD_DIM, self.kv * HEAD_DIM], -1)
        b, ql = self.batch, self.q_len
        q = q.view(b, ql, self.heads, HEAD_DIM).transpose(1, 2)
        if self.phase == "prefill":
            k = k.view(b, ql, self.kv, HEAD_DIM).transpose(1, 2)
            v = v.view(b, ql, self.kv, HEAD_DIM).transpose(1, 2)
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        else:
            o = F.scaled_dot_product_attention(q, self.k, self.v, enable_gqa=True)
        a = o.transpose(1, 2).reshape(self.tokens, self.heads * HEAD_DIM) @ self.wo
        reduce(a)
        h2 = rms(self.x + a)
        g, u = (h2 @ self.wgu).chunk(2, -1)
        m = (F.silu(g) * u) @ self.wd
        reduce(m)


def measure(out: Path, single: bool) -> None:
    import torch

    if single:
        rank, world, device = 0, 1, torch.device("cuda", 0)
        dist = None
    else:
        import torch.distributed as dist

        dist.init_process_group("nccl")
        rank, world = dist.get_rank(), dist.get_world_size()
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    torch.cuda.set_device(device)
    gpu = torch.cuda.get_device_name(device)
    rows: list[dict[str, object]] = []
    sync = torch.cuda.synchronize
    if single:
        for tp in (1, 2, 4, 8):
            for phase, batch, seq in LAYER_CASES:
                layer = _Layer(tp, phase, batch, seq, device)
                us, how = _graph_us(lambda layer=layer: layer(lambda t: None), sync)
                rows.append(dict(what="layer_compute", group=tp, bytes="", phase=phase,
                                 batch=batch, seq=seq, us=f"{us:.3f}", gpu=gpu, timing=how))
                del layer
                torch.cuda.empty_cache()
    else:
        assert dist is not None
        groups = [g for g in (2, 4, 8) if g <= world]
        for g in groups:
            group = dist.new_group(list(range(g)))  # every rank must create every group
            if rank >= g:
                dist.barrier()
                continue

            def both(fn, group=group, graph=False):
                """The slowest member's time (every rank times its own part), and how it
                was timed (``eager``, or ``graph``: replayed from a CUDA graph)."""
                t, how = _graph_us(fn, sync) if graph else (_time_us(fn, sync), "eager")
                us = torch.tensor([t], device=device)
                dist.all_reduce(us, op=dist.ReduceOp.MAX, group=group)
                return float(us.item()), how

            for n in SIZES:
                elems = n // 2
                buf = torch.randn(elems, device=device, dtype=torch.bfloat16)
                shard = buf[: elems // g].clone()
                other = torch.empty_like(buf)
                outs = {
                    "all_reduce": lambda buf=buf, group=group: dist.all_reduce(buf, group=group),
                    "all_gather": lambda buf=buf, shard=shard, group=group: (
                        dist.all_gather_into_tensor(buf, shard, group=group)),
                    "reduce_scatter": lambda buf=buf, shard=shard, group=group: (
                        dist.reduce_scatter_tensor(
                        shard, buf, group=group)),
                    "all_to_all": lambda buf=buf, other=other, group=group: dist.all_to_all_single(
                        other, buf, group=group),
                }
                if g == 2:
                    peer = 1 - rank
                    outs["send_recv"] = (lambda buf=buf, peer=peer: dist.send(buf, peer)
                                         if rank == 0 else dist.recv(buf, peer))
                for kind, fn in outs.items():
                    us, how = both(fn)
                    rows.append(dict(what=kind, group=g, bytes=n, phase="", batch="", seq="",
                                     us=f"{us:.3f}", gpu=gpu, timing=how))
                del buf, shard, other
            for phase, batch, seq in LAYER_CASES:
                layer = _Layer(g, phase, batch, seq, device)
                def summed(t, group=group):
                    dist.all_reduce(t, group=group)

                for what, reduce in (("layer", summed), ("layer_compute", lambda t: None)):
                    us, how = both(lambda layer=layer, reduce=reduce: layer(reduce), graph=True)
                    rows.append(dict(what=what, group=g, bytes="", phase=phase, batch=batch,
                                     seq=seq, us=f"{us:.3f}", gpu=gpu, timing=how))
                del layer
                torch.cuda.empty_cache()
            dist.barrier()
    if rank == 0:
        with open(out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=FIELDS)
            w.writeheader()
            w.writerows(rows)
        print(f"wrote {len(rows)} rows to {out}")
    if dist is not None:
        dist.destroy_process_group()


def _layer_prediction(arch, tp: int, phase: str, batch: int, seq: int, compute_only: bool
                      ) -> float:
    """Seconds of one Llama-2-70B layer split over ``tp`` devices (the model's)."""
    import dataclasses

    from models.llm import load_model
    from models.parallel import _FIRST_ONLY, _LAST_ONLY, ParallelPlan, lower_parallel
    from sim.devices import simulate_devices

    cfg = dataclasses.replace(load_model("llama-2-70b"), num_layers=1)
    work = lower_parallel(cfg, ParallelPlan(tp=tp), phase=phase, batch=batch, seq=seq,
                          quant="bf16")
    stage = work.stages[0]
    skip = {*_FIRST_ONLY, *_LAST_ONLY}
    ops = tuple(op for op in stage.ops if op.name not in skip)
    colls = () if compute_only else tuple(
        c for c in stage.collectives if c.name not in ("embedding_all_reduce",
                                                       "logits_all_gather"))
    one = dataclasses.replace(work, stages=(dataclasses.replace(stage, ops=ops,
                                                                collectives=colls),))
    r = simulate_devices(arch, one, name=cfg.name, phase=phase, batch=batch, seq=seq,
                         quant="bf16")
    return r.seconds


def check(path: Path, arch_name: str) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from hw.spec import load_arch
    from sim.collectives import collective_time

    arch = load_arch(arch_name)
    assert arch.interconnect is not None, f"{arch_name} has no [interconnect]"
    errors: dict[str, list[float]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            measured = float(row["us"]) * 1e-6
            g = int(row["group"])
            if row["what"] in COLLECTIVES:
                predicted = collective_time(arch.interconnect, row["what"], int(row["bytes"]),
                                            g).seconds
                label = f"{row['what']} {int(row['bytes']):>11} B over {g}"
            else:
                predicted = _layer_prediction(arch, g, row["phase"], int(row["batch"]),
                                              int(row["seq"]), row["what"] == "layer_compute")
                label = f"{row['what']} tp {g} {row['phase']}"
            err = predicted / measured - 1
            errors.setdefault(row["what"], []).append(abs(err))
            print(f"{label:<40} measured {measured * 1e6:10.1f} us  predicted "
                  f"{predicted * 1e6:10.1f} us  {err:+.1%}")
    for what, errs in errors.items():
        print(f"{what:<16} mean |error| {statistics.mean(errs):.1%} over {len(errs)} rows")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="measure into this CSV (on the GPU machine)")
    ap.add_argument("--single", action="store_true",
                    help="one GPU: the split layer's per-device compute at tp 1..8")
    ap.add_argument("--check", type=Path, metavar="CSV", help="compare a measured CSV")
    ap.add_argument("--arch", default="h100", help="with --check: the preset (default h100)")
    args = ap.parse_args(argv)
    if args.check:
        return check(args.check, args.arch)
    if not args.out:
        ap.error("give --out CSV (measure) or --check CSV")
    measure(args.out, args.single)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
