"""Time one Llama decoder layer on the GPU (prefill and decode), in plain torch and fused.

The end-to-end check of the GPU presets: the same layer that ``tpe sim model`` lowers
(RMSNorm, q/k/v projections, RoPE, SDPA with grouped-query attention against a KV cache,
o projection, residual, RMSNorm, SiLU-gated MLP, residual), in bf16, timed with CUDA events
(median of repetitions after warm-up, L2 flushed before each, as ``sim.gpu.measure``), in two
versions:

* plain torch (``F.rms_norm``, RoPE from tables computed once as slices, a concatenation and
  products, the cache updated in place, SiLU and the gate product as two kernels), eager
  (column ``us``) and replayed from a CUDA graph (``us_graph``);
* fused, as a serving engine runs it and as ``tpe sim model``'s default lowering counts it
  (``--runtime fused``): the same GEMMs and SDPA, and one kernel per element-wise pass (the
  project's Triton kernels, ``sim.gpu.kernels``: each RMSNorm, RoPE with the cache append, the
  gated activation; the residual adds are one torch kernel each), replayed from a CUDA graph
  (``us_fused_graph``); ``fused_rel_err`` is its output's relative error against the plain
  layer's on the same inputs and weights.

Each is timed as one call alone, after the L2 flush, as ``sim.gpu.measure`` times a kernel. The
fused layer is also timed back to back, as the layers of a model's pass run
(``us_fused_loop``): a CUDA graph of :data:`LOOP_LAYERS` calls of it, replayed and timed as
one call, less the one call's time, over the calls it adds (the flush and the timing
counted once, in the one call).

Writes one CSV row per (model, phase, batch, seq), each as it is measured.

Run as ``python -m sim.gpu.layer --out layer.csv`` (torch and triton only; the model shapes
are read from the bundled config files with the standard library).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["main"]

CONFIGS = Path(__file__).resolve().parents[2] / "models" / "configs"
CASES = (  # (model, phase, batch, seq)
    ("llama-2-7b", "prefill", 1, 512), ("llama-2-7b", "prefill", 1, 2048),
    ("llama-2-7b", "prefill", 4, 1024), ("llama-2-7b", "prefill", 8, 512),
    ("llama-2-7b", "decode", 1, 2048), ("llama-2-7b", "decode", 8, 2048),
    ("llama-2-7b", "decode", 32, 1024),
    ("llama-3-8b", "prefill", 1, 512), ("llama-3-8b", "prefill", 1, 2048),
    ("llama-3-8b", "prefill", 4, 1024), ("llama-3-8b", "decode", 1, 4096),
    ("llama-3-8b", "decode", 16, 4096),
)


#: The calls of the fused layer in the CUDA graph that times it back to back
#: (``us_fused_loop``).
LOOP_LAYERS = 8


def _layer(torch: Any, cfg: dict[str, Any]):  # pragma: no cover - needs a GPU
    from sim.gpu import kernels

    nn, F = torch.nn, torch.nn.functional
    h = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    kv_heads = cfg.get("num_key_value_heads", heads)
    hd = cfg.get("head_dim") or h // heads
    inter = cfg["intermediate_size"]
    eps = cfg.get("rms_norm_eps", 1e-5)
    theta = cfg.get("rope_theta", 10000.0)

    class RMSNorm(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.ones(h))

        def forward(self, x):
            return F.rms_norm(x, (h,), self.weight, eps)

    class Layer(nn.Module):
        """As a serving engine runs it: fused RMSNorm (``F.rms_norm``), RoPE from tables
        computed once (``set_rope``), the cache written in place."""

        def __init__(self) -> None:
            super().__init__()
            self.input_norm, self.post_norm = RMSNorm(), RMSNorm()
            self.q = nn.Linear(h, heads * hd, bias=False)
            self.k = nn.Linear(h, kv_heads * hd, bias=False)
            self.v = nn.Linear(h, kv_heads * hd, bias=False)
            self.o = nn.Linear(heads * hd, h, bias=False)
            self.gate = nn.Linear(h, inter, bias=False)
            self.up = nn.Linear(h, inter, bias=False)
            self.down = nn.Linear(inter, h, bias=False)
            self.cos = self.sin = None

        def set_rope(self, positions: int, device, dtype) -> None:
            inv = 1.0 / (theta ** (torch.arange(0, hd, 2, device=device).float() / hd))
            ang = torch.arange(positions, device=device).float()[:, None] * inv[None, :]
            ang = torch.cat([ang, ang], dim=-1)
            self.cos, self.sin = ang.cos().to(dtype), ang.sin().to(dtype)

        def rope(self, x, start: int):
            T = x.shape[-2]
            cos, sin = self.cos[start:start + T], self.sin[start:start + T]
            half = torch.cat([-x[..., hd // 2:], x[..., : hd // 2]], dim=-1)
            return x * cos + half * sin

        def fused(self, x, k_cache, v_cache, start: int):
            """The same layer with one kernel per element-wise pass (module doc)."""
            B, T, _ = x.shape
            r = x
            x = kernels.rms_norm(torch, x, self.input_norm.weight, eps)
            q = self.q(x).view(B, T, heads, hd)
            kernels.rope_cache(q, self.k(x).view(B, T, kv_heads, hd),
                               self.v(x).view(B, T, kv_heads, hd), self.cos, self.sin, start,
                               k_cache, v_cache)
            keys, values = k_cache[:, :, : start + T], v_cache[:, :, : start + T]
            a = F.scaled_dot_product_attention(q.transpose(1, 2), keys, values,
                                               is_causal=T > 1, enable_gqa=kv_heads != heads)
            x = r + self.o(a.transpose(1, 2).reshape(B, T, heads * hd))
            r = x
            x = kernels.rms_norm(torch, x, self.post_norm.weight, eps)
            return r + self.down(kernels.silu_mul(torch, self.gate(x), self.up(x)))

        def forward(self, x, k_cache, v_cache, start: int):
            B, T, _ = x.shape
            r = x
            x = self.input_norm(x)
            q = self.q(x).view(B, T, heads, hd).transpose(1, 2)
            k = self.k(x).view(B, T, kv_heads, hd).transpose(1, 2)
            v = self.v(x).view(B, T, kv_heads, hd).transpose(1, 2)
            q, k = self.rope(q, start), self.rope(k, start)
            k_cache[:, :, start:start + T] = k
            v_cache[:, :, start:start + T] = v
            keys, values = k_cache[:, :, : start + T], v_cache[:, :, : start + T]
            a = F.scaled_dot_product_attention(q, keys, values, is_causal=T > 1,
                                               enable_gqa=kv_heads != heads)
            x = r + self.o(a.transpose(1, 2).reshape(B, T, heads * hd))
            r = x
            x = self.post_norm(x)
            return r + self.down(F.silu(self.gate(x)) * self.up(x))

    return Layer, kv_heads, hd, h


def _graph_us(torch: Any, triton: Any, step: Any, budget_ms: float
              ) -> str:  # pragma: no cover - needs a GPU
    """The median time of ``step`` replayed from a CUDA graph (``sim.gpu.measure.graphed``),
    us (as text; the error's first line when it cannot be captured)."""
    from sim.gpu.measure import graphed

    try:
        us = triton.testing.do_bench(graphed(torch, step), warmup=25, rep=budget_ms,
                                     return_mode="median")
    except RuntimeError as err:
        return f"error: {str(err).splitlines()[0][:80]}"
    return f"{us * 1e3:.3f}"


def run(out: Path, budget_ms: float = 100.0) -> Path:  # pragma: no cover - needs a GPU
    import torch
    import triton
    import triton.testing

    gpu = torch.cuda.get_device_name(0)
    torch.manual_seed(0)
    out.parent.mkdir(parents=True, exist_ok=True)
    fields = ["model", "phase", "batch", "seq", "us", "us_graph", "us_fused_graph",
              "us_fused_loop", "fused_rel_err", "dtype", "gpu"]
    with open(out, "w", newline="") as f:  # row by row: a run cut short keeps its rows
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for model, phase, batch, seq in CASES:
            cfg = json.loads((CONFIGS / f"{model}.json").read_text())
            Layer, kv_heads, hd, h = _layer(torch, cfg)
            layer = Layer().to("cuda", torch.bfloat16).eval()
            for p in layer.parameters():
                torch.nn.init.normal_(p, std=0.02)
            T = seq if phase == "prefill" else 1
            start = 0 if phase == "prefill" else seq
            cap = start + T
            layer.set_rope(cap, "cuda", torch.bfloat16)
            k_cache = torch.randn(batch, kv_heads, cap, hd, device="cuda", dtype=torch.bfloat16)
            v_cache = torch.randn_like(k_cache)
            x = torch.randn(batch, T, h, device="cuda", dtype=torch.bfloat16)

            def step(x=x, layer=layer, k_cache=k_cache, v_cache=v_cache, start=start):
                with torch.no_grad():
                    return layer(x, k_cache, v_cache, start)

            def fused_step(x=x, layer=layer, k_cache=k_cache, v_cache=v_cache, start=start):
                with torch.no_grad():
                    return layer.fused(x, k_cache, v_cache, start)

            def fused_steps(x=x, layer=layer, k_cache=k_cache, v_cache=v_cache, start=start):
                with torch.no_grad():
                    y = x
                    for _ in range(LOOP_LAYERS):  # each call's output the next one's input
                        y = layer.fused(y, k_cache, v_cache, start)
                    return y

            # the fused layer's output against the plain one's, each on its own copy of the cache
            with torch.no_grad():
                ref = layer(x, k_cache.clone(), v_cache.clone(), start).float()
                got = layer.fused(x, k_cache.clone(), v_cache.clone(), start).float()
            rel_err = float((got - ref).norm() / ref.norm())
            eager = triton.testing.do_bench(step, warmup=25, rep=budget_ms, return_mode="median")
            graph_us = _graph_us(torch, triton, step, budget_ms)
            fused_us = _graph_us(torch, triton, fused_step, budget_ms)
            steps_us = _graph_us(torch, triton, fused_steps, budget_ms)
            captured = not (steps_us.startswith("error") or fused_us.startswith("error"))
            loop_us = (f"{(float(steps_us) - float(fused_us)) / (LOOP_LAYERS - 1):.3f}"
                       if captured else "")
            row = {"model": model, "phase": phase, "batch": batch, "seq": seq,
                   "us": f"{eager * 1e3:.3f}", "us_graph": graph_us, "us_fused_graph": fused_us,
                   "us_fused_loop": loop_us, "fused_rel_err": f"{rel_err:.2e}", "dtype": "bf16",
                   "gpu": gpu}
            w.writerow(row)
            f.flush()
            print(row, flush=True)
            del layer, k_cache, v_cache, x
            torch.cuda.empty_cache()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sim.gpu.layer",
                                description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--budget-ms", type=float, default=100.0)
    args = p.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("error: needs torch", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("error: no CUDA GPU found; run it on a machine with an NVIDIA GPU", file=sys.stderr)
        return 2
    run(args.out, args.budget_ms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
