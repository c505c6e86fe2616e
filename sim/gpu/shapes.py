"""The GPU kernel dataset: which GEMM and attention kernels are measured (``shapes.csv``).

Rows follow the shapes.csv format (``op,dtype,M,N,K,B,H,Hkv,S,D``, unused cells
empty) plus ``split``: ``cal`` (calibration: microbenchmark-style constants may be fitted on
these) or ``held`` (held out: only ever predicted and compared). The split is decided here,
before anything is measured or fitted, by a hash of the row, so it never depends on results.

The GEMM shapes are the layers of the zoo's LLMs (``C[M, N] = A[M, K] W[K, N]``, M the tokens
of a batch: 1 for one decode step up to 8192 for a long prefill; N, K a layer's output and input
features), plus misaligned variants (inner dimensions off by one from a multiple of 8), in
bf16, fp16, fp8 and int8; attention is SDPA prefill (causal) and decode over batch, heads, GQA
and sequence length.

Run ``python -m sim.gpu.shapes`` to rewrite ``sim/data/gpu/shapes.csv``.

The second dataset (:func:`v2_shapes`, ``sim/data/gpu/shapes_v2.csv``, written by ``python -m
sim.gpu.shapes --v2``) holds every row of the first and the kernels the first lacks: random
misaligned GEMMs (M, N and K log-uniform in 1..16384, none a multiple of 8) in bf16, fp16, fp8
and int8, and SDPA attention at head dims 32 to 256, causal and not (the ``causal`` column),
multi-head, grouped (GQA) and multi-query (MQA), prefill and decode, up to 16k-token prefills
and 32k-token caches.

The misaligned GEMM dataset (:func:`misaligned_shapes`, ``sim/data/gpu/shapes_misaligned.csv``,
``python -m sim.gpu.shapes --misaligned``) adds what cuBLAS does with odd shapes: more random
GEMMs with M, N and K off a multiple of 8 in every dtype, and sweeps that move one inner
dimension's alignment at a time (by 1, 2 or 4 elements in bf16/fp16; the padded int8 kernel's
8 or 16).

The tile dataset (:func:`tile_shapes`, ``sim/data/gpu/shapes_tiles.csv``, ``python -m
sim.gpu.shapes --tiles``) follows the tile cuBLAS picks for the 8-bit GEMMs as the rows grow
(M from 256 to 2048) at inner dimensions near 4096, aligned and padded.

The decode dataset (:func:`decode_shapes`, ``sim/data/gpu/shapes_decode.csv``, ``python -m
sim.gpu.shapes --decode``) adds SDPA decode at head dim 256 (Gemma's) over multi-head, grouped
and multi-query heads, and multi-query decode at head dims 64 and 128 beside it.

The gemmSN dataset (:func:`gemmsn_shapes`, ``sim/data/gpu/shapes_gemmsn.csv``, ``python -m
sim.gpu.shapes --gemmsn``) probes which kernel cuBLAS runs for bf16 GEMMs of 2 to 17 rows at
vector 1 with K below twice N: its CUDA-core gemmSN kernel or the s1688 tiles.

The sector dataset (:func:`sector_shapes`, ``sim/data/gpu/shapes_sectors.csv``, ``python -m
sim.gpu.shapes --sectors``) runs aligned int8 and fp8 GEMMs at every offset of a row of K to
the L2's 32-byte sectors and 128-byte lines.

The int8 N8 dataset (:func:`int8_n8_shapes`, ``sim/data/gpu/shapes_int8n8.csv``, ``python -m
sim.gpu.shapes --int8n8``) runs int8 GEMMs with K a multiple of 16 and N 8 off one, at tile
counts and K chosen apart, to find what makes cuBLASLt leave its Hopper kernel for CUTLASS's
align-4 tiles: the count of the Hopper kernel's tiles or the multiply-adds.

The store dataset (:func:`store_shapes`, ``sim/data/gpu/shapes_store.csv``, ``python -m
sim.gpu.shapes --store``) runs GEMMs whose C is large against their work (M and N in the
thousands, K from 16 to 2048), in every dtype: where storing C, not the products or the loads,
bounds the kernel, and how that store's rate compares between cards of different HBM.

The long-K dataset (:func:`long_k_shapes`, ``sim/data/gpu/shapes_longk.csv``, ``python -m
sim.gpu.shapes --longk``) runs misaligned bf16 and fp16 GEMMs of few rows (2 to 64) with K long
against N (2000 to 16000): where cuBLAS splits K over the fallback kernels' small tiles and W's
bytes, read once, set the time.

The short-K dataset (:func:`short_k_shapes`, ``sim/data/gpu/shapes_shortk.csv``, ``python -m
sim.gpu.shapes --shortk``) runs aligned bf16 and fp8 GEMMs of the same shapes, C from 2 to 64
MB and K from 16 to 512: how a kernel's time at short K splits between a cost per tile (its
start, its epilogue) and C's stores, and where the fp8 kernels part from the bf16 ones.

The C-store dataset (:func:`c_store_shapes`, ``sim/data/gpu/shapes_cstore.csv``, ``python -m
sim.gpu.shapes --cstore``) runs bf16 GEMMs of C of about 8, 34, 67 and 134 MB at K 32 and 256,
each size with M and N powers of two and apart from them: M or N off a multiple of 64 (C's rows
or its row of tiles off the L2's 128-byte lines) or on 64 but not a power of two; whether C's
stores run at one rate for C of one size. All are aligned but 2000 x 2100 (N a multiple of 4,
not 8: cuBLAS's align-2 fallback kernels).

The long-context dataset (:func:`long_context_shapes`, ``sim/data/gpu/shapes_longctx.csv``,
``python -m sim.gpu.shapes --longctx``) runs attention past the other datasets' contexts: SDPA
decode over caches of 64k and 128k tokens (multi-head, grouped and multi-query, head dims 64 to
256, batch 1 to 16), the project's KIVI decode over int8 and int4 caches of as many tokens, and
SDPA prefill of 32k and 64k tokens, causal and not; every row held out (no fit sees them): how
the attention models, fitted on contexts of at most 32k tokens, carry to a long-context model's.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import math
import random
import sys
from pathlib import Path

from sim.gpu.measure import RETRIES, UNSTEADY_SPREAD

__all__ = ["COLUMNS", "HELD_OUT_SHARE", "c_store_shapes", "decode_shapes", "default_shapes",
           "gemmsn_shapes", "int8_n8_shapes", "long_context_shapes", "long_k_shapes",
           "misaligned_shapes",
           "quant_shapes", "split_of", "store_shapes", "tile_shapes", "v2_shapes",
           "write_shapes"]

COLUMNS = ("op", "dtype", "M", "N", "K", "B", "H", "Hkv", "S", "D")
#: Share of rows held out from calibration.
HELD_OUT_SHARE = 0.4
SHAPES_CSV = Path(__file__).resolve().parents[1] / "data" / "gpu" / "shapes.csv"
SHAPES_V2_CSV = SHAPES_CSV.with_name("shapes_v2.csv")
SHAPES_QUANT_CSV = SHAPES_CSV.with_name("shapes_quant.csv")
SHAPES_MISALIGNED_CSV = SHAPES_CSV.with_name("shapes_misaligned.csv")
SHAPES_DECODE_CSV = SHAPES_CSV.with_name("shapes_decode.csv")
SHAPES_TILES_CSV = SHAPES_CSV.with_name("shapes_tiles.csv")
SHAPES_RANDOM_CSV = SHAPES_CSV.with_name("shapes_random.csv")
SHAPES_UNSEEN_CSV = SHAPES_CSV.with_name("shapes_unseen.csv")
SHAPES_GEMMSN_CSV = SHAPES_CSV.with_name("shapes_gemmsn.csv")
SHAPES_SECTORS_CSV = SHAPES_CSV.with_name("shapes_sectors.csv")
SHAPES_INT8_N8_CSV = SHAPES_CSV.with_name("shapes_int8n8.csv")
SHAPES_STORE_CSV = SHAPES_CSV.with_name("shapes_store.csv")
SHAPES_LONG_K_CSV = SHAPES_CSV.with_name("shapes_longk.csv")
SHAPES_SHORT_K_CSV = SHAPES_CSV.with_name("shapes_shortk.csv")
SHAPES_C_STORE_CSV = SHAPES_CSV.with_name("shapes_cstore.csv")
SHAPES_LONG_CONTEXT_CSV = SHAPES_CSV.with_name("shapes_longctx.csv")
#: The optional cells of the quantized kernels' rows (sim.gpu.measure: ``group`` of the int4
#: weight-only GEMMs, ``kv_dtype`` of decode attention's cache).
QUANT_COLUMNS = ("group", "kv_dtype")
#: Every column of a shapes.csv and of the measured.csv ``tpe gpu measure`` writes from it
#: (``tpe gpu predict`` adds ``us``, ``mj`` and ``gpu``), and what it holds.
COLUMN_MEANINGS: dict[str, str] = {
    "op": "gemm, attn_prefill or attn_decode",
    "dtype": "bf16, fp16, fp8, int8 (GEMMs), w4a16 (PyTorch's int4 weight-only GEMM), "
             "w4a16_triton (the project's Triton W4A16 GEMM); attention: bf16 or fp16",
    "M": "GEMM: rows of A and C (tokens)", "N": "GEMM: columns of W and C",
    "K": "GEMM: the reduction dimension",
    "B": "attention: batch", "H": "attention: query heads", "Hkv": "attention: KV heads",
    "S": "attention: sequence length (prefill: tokens; decode: cached tokens)",
    "D": "attention: head dimension",
    "causal": "attention prefill: 1 causal (empty means 1), 0 not",
    "group": "w4a16: weights per scale group along K (default 128)",
    "kv_dtype": "attention decode: the KV cache's format (int8 or int4: the KIVI kernel; "
                "empty: dtype)",
    "split": "cal (calibration) or held (held out), fixed by a hash of the row",
    "us": "measured (or predicted) time per kernel, microseconds: median of the repetitions",
    "us_stream": "predicted: the kernel's time back to back in a stream of kernels (what tpe "
                 "sim charges it in a model's pass; us less what timing it alone adds), us",
    "us_p20": "20th percentile of the repetitions, us",
    "us_p80": "80th percentile of the repetitions, us",
    "tries": "timings taken (an unsteady one, 80th percentile above "
             f"{UNSTEADY_SPREAD} times the 20th, is taken again, up to {RETRIES} times; the "
             "steadiest kept)",
    "impl": "the implementation that was timed (e.g. torch.matmul, torch._scaled_mm, SDPA)",
    "us_triton": "GEMMs: the project's Triton GEMM's time, us",
    "triton_impl": "the Triton kernel's configuration",
    "triton_rel_err": "the Triton result's largest relative error against torch",
    "rel_err": "the kernel's result against a float32 reference (relative error)",
    "mj": "energy per kernel run back to back, millijoules (NVML energy counter)",
    "watts": "mean board power during the back-to-back loop",
    "sm_mhz": "median SM clock during the loop",
    "us_loop": "time per kernel in the back-to-back loop, us",
    "energy_sets": "input sets the energy loop rotated through (operands from HBM)",
    "status": "ok, or why the kernel was not measured",
    "gpu": "the card's name (measured) or the preset (predicted)",
    "kernels": "every GPU kernel one call launched: profiler name, grid and duration",
}

#: (N, K) of the linear layers of zoo models: Llama-2-7B (q/o 4096x4096, fused qkv 12288,
#: gate/up 11008, down), Llama-3-8B / Mistral-7B / Mixtral experts (k/v 1024, MLP 14336),
#: Llama-2-70B (8192, k/v 1024, MLP 28672), and the Llama-2 LM head (32000).
LAYERS: tuple[tuple[int, int], ...] = (
    (4096, 4096), (12288, 4096), (11008, 4096), (4096, 11008),
    (1024, 4096), (14336, 4096), (4096, 14336),
    (8192, 8192), (1024, 8192), (28672, 8192), (8192, 28672), (32000, 4096),
)
#: Inner dimensions one off a multiple of 8 (alignment effects) and odd token counts.
MISALIGNED: tuple[tuple[int, int], ...] = ((4095, 4096), (4096, 4095), (11007, 4096),
                                            (4096, 11007), (1023, 4097))
TOKENS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
ODD_TOKENS = (1, 7, 33, 100, 257, 1000, 3001)


def _key(row: dict[str, object]) -> tuple[str, ...]:
    """A row's shape cells as text (what identifies a kernel; ``causal`` aside), and its
    :data:`QUANT_COLUMNS` cells where it has them (rows without keep their split)."""
    return (tuple(str(row.get(c, "")) for c in COLUMNS)
            + tuple(f"{c}={row[c]}" for c in QUANT_COLUMNS if row.get(c, "") != ""))


def split_of(row: dict[str, object]) -> str:
    """``held`` for a stable :data:`HELD_OUT_SHARE` of rows (hash of the row), else ``cal``."""
    key = ",".join(_key(row))
    h = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "held" if h < HELD_OUT_SHARE else "cal"


def _gemm(dtype: str, M: int, N: int, K: int) -> dict[str, object]:
    return {"op": "gemm", "dtype": dtype, "M": M, "N": N, "K": K}


def default_shapes() -> list[dict[str, object]]:
    """Every row of the dataset, with its ``split``."""
    rows: list[dict[str, object]] = []
    for N, K in LAYERS:
        rows += [_gemm("bf16", M, N, K) for M in TOKENS]
    for N, K in MISALIGNED:
        rows += [_gemm("bf16", M, N, K) for M in ODD_TOKENS]
    for N, K in LAYERS[:6]:
        rows += [_gemm("fp16", M, N, K) for M in TOKENS[::2]]
    # fp8 (torch._scaled_mm) and int8 (torch._int_mm) need inner dimensions that are multiples
    # of 16 / 8; _int_mm also needs M > 16
    for N, K in LAYERS[:9]:
        rows += [_gemm("fp8", M, N, K) for M in TOKENS if M >= 16]
        rows += [_gemm("int8", M, N, K) for M in TOKENS if M >= 32]
    for B, S in ((1, 512), (1, 1024), (1, 2048), (1, 4096), (1, 8192), (4, 1024), (4, 4096),
                 (8, 512), (16, 2048)):
        for H, Hkv in ((32, 32), (32, 8), (64, 8)):
            rows.append({"op": "attn_prefill", "dtype": "bf16", "B": B, "H": H, "Hkv": Hkv,
                         "S": S, "D": 128})
    for B in (1, 4, 16, 64):
        for S in (512, 2048, 8192, 32768):
            for H, Hkv in ((32, 32), (32, 8), (64, 8)):
                if B * S * Hkv > 64 * 32768 * 8:
                    continue
                rows.append({"op": "attn_decode", "dtype": "bf16", "B": B, "H": H, "Hkv": Hkv,
                             "S": S, "D": 128})
    for row in rows:
        row["split"] = split_of(row)
    return rows


#: Random misaligned GEMMs per dtype in the second dataset (:func:`v2_shapes`).
ODD_GEMMS = {"bf16": 50, "fp16": 30, "fp8": 35, "int8": 35}
#: The seed of their draw (fixed: the dataset is data, not a run).
ODD_SEED = 20261205
#: Attention head dims of the second dataset, 32 to 256 as LLMs use them (Llama's 128,
#: Gemma's 256, small models' 32 and 64, 96 of Phi-style models).
HEAD_DIMS = (32, 64, 96, 128, 256)


def _odd(rng: random.Random) -> int:
    """Log-uniform in 1..16384, not a multiple of 8."""
    while True:
        x = int(math.exp(rng.uniform(0.0, math.log(16384.0))))
        if x % 8:
            return x


def v2_shapes() -> list[dict[str, object]]:
    """Every row of :func:`default_shapes`, then the second dataset's own (module doc), each
    with its ``split``; a row already in the first is not repeated."""
    rows = default_shapes()
    seen = {_key(r) for r in rows}
    new: list[dict[str, object]] = []
    rng = random.Random(ODD_SEED)
    for dtype, n in ODD_GEMMS.items():
        new += [_gemm(dtype, _odd(rng), _odd(rng), _odd(rng)) for _ in range(n)]
    for D in HEAD_DIMS:
        for causal in (1, 0):
            for B, S in ((1, 1024), (1, 4096), (4, 2048), (1, 16384)):
                for H, Hkv in ((32, 32), (32, 8), (32, 1)):
                    new.append({"op": "attn_prefill", "dtype": "bf16", "B": B, "H": H,
                                "Hkv": Hkv, "S": S, "D": D, "causal": causal})
        for B in (1, 16):
            for S in (2048, 32768):
                for H, Hkv in ((32, 32), (32, 8), (32, 1)):
                    new.append({"op": "attn_decode", "dtype": "bf16", "B": B, "H": H,
                                "Hkv": Hkv, "S": S, "D": D})
    for row in new:
        key = _key(row)
        if key in seen and row.get("causal", 1) == 1:
            continue  # the first dataset has it (its prefill rows are causal)
        seen.add(key)
        row["split"] = split_of(row)
        rows.append(row)
    return rows


#: (N, K) of the quantized GEMMs: Llama-2-7B's q/o, gate/up and down, Llama-3-8B's MLP.
QUANT_LAYERS = ((4096, 4096), (11008, 4096), (4096, 11008), (14336, 4096), (4096, 14336))
QUANT_TOKENS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


def quant_shapes() -> list[dict[str, object]]:
    """The quantized kernels' dataset (``sim/data/gpu/shapes_quant.csv``, ``python -m
    sim.gpu.shapes --quant``): W4A16 GEMMs through PyTorch's int4 kernel and the project's
    Triton one (group 128) over :data:`QUANT_TOKENS` x :data:`QUANT_LAYERS`, and decode
    attention over a bf16, int8 and int4 (KIVI) cache, batch 1 to 64, 512 to 32k cached tokens,
    32 heads over 32 or 8 KV heads, head dim 128; each row with its ``split``."""
    rows: list[dict[str, object]] = []
    for dtype in ("w4a16", "w4a16_triton"):
        for N, K in QUANT_LAYERS:
            rows += [_gemm(dtype, M, N, K) | {"group": 128} for M in QUANT_TOKENS]
    for kv in ("bf16", "int8", "int4"):
        for B in (1, 4, 16, 64):
            for S in (512, 2048, 8192, 32768):
                for H, Hkv in ((32, 32), (32, 8)):
                    if B * S * Hkv > 64 * 32768 * 8:
                        continue
                    rows.append({"op": "attn_decode", "dtype": "bf16", "B": B, "H": H,
                                 "Hkv": Hkv, "S": S, "D": 128, "kv_dtype": kv})
    for row in rows:
        row["split"] = split_of(row)
    return rows


def _new_rows(rows: list[dict[str, object]], seen: set[tuple[str, ...]]
              ) -> list[dict[str, object]]:
    """``rows`` but those whose key (:func:`_key`) is in ``seen`` or repeats, each with its
    ``split``."""
    out = []
    for row in rows:
        key = _key(row)
        if key in seen:
            continue
        seen.add(key)
        row["split"] = split_of(row)
        out.append(row)
    return out


#: (H, Hkv) of the decode dataset (:func:`decode_shapes`): Gemma-2B's multi-query 8 over 1,
#: Gemma-2-9B's 16 over 8, Gemma-7B's 16 over 16, and 32 heads over 1, 8 and 32.
DECODE_HEADS = ((8, 1), (16, 8), (16, 16), (32, 1), (32, 8), (32, 32))


def decode_shapes() -> list[dict[str, object]]:
    """The decode-attention dataset (``sim/data/gpu/shapes_decode.csv``, ``python -m
    sim.gpu.shapes --decode``), each row with its ``split``: SDPA decode at head dim 256 over
    :data:`DECODE_HEADS`, batch 1 to 64, 1k to 16k cached tokens, and multi-query decode (one
    KV head) at head dims 64 and 128 beside it, caches of at most 2^31 bytes; a row
    :func:`v2_shapes` already has is left out."""
    seen = {_key(r) for r in v2_shapes()}
    rows: list[dict[str, object]] = []
    for D, heads in ((256, DECODE_HEADS), (128, ((8, 1), (32, 1))), (64, ((8, 1), (32, 1)))):
        for H, Hkv in heads:
            for B in (1, 4, 16, 64):
                for S in (1024, 4096, 16384):
                    if 4 * B * Hkv * S * D > 1 << 31:  # keys and values, bf16
                        continue
                    rows.append({"op": "attn_decode", "dtype": "bf16", "B": B, "H": H,
                                 "Hkv": Hkv, "S": S, "D": D})
    return _new_rows(rows, seen)


#: Random misaligned GEMMs per dtype in the misaligned dataset (:func:`misaligned_shapes`).
MISALIGNED_GEMMS = {"bf16": 60, "fp16": 60, "fp8": 30, "int8": 40}
#: The seed of their draw (fixed: the dataset is data, not a run).
MISALIGNED_SEED = 20261206
#: Token counts of the alignment sweeps (:func:`misaligned_shapes`).
SWEEP_TOKENS = (100, 1000, 6001)
#: (N, K) offsets from 4096 of the bf16/fp16 sweep: one inner dimension (or both) off a
#: multiple of 8 by 1, 2 or 4 elements, the other aligned.
SWEEP_16BIT = ((1, 0), (2, 0), (4, 0), (0, 1), (0, 2), (0, 4), (1, 1))
#: (N, K) offsets from 4096 of the int8 sweep: ``torch._int_mm`` pads N and K to multiples of
#: 8, so 4097 runs as 4104 (8 off a multiple of 16) and 4105 as 4112 (a multiple of 16).
SWEEP_INT8 = ((1, 1), (1, 9), (9, 1), (9, 9))


def misaligned_shapes(seen: set[tuple[str, ...]] | None = None
                      ) -> list[dict[str, object]]:
    """The misaligned GEMM dataset (``sim/data/gpu/shapes_misaligned.csv``, ``python -m
    sim.gpu.shapes --misaligned``), each row with its ``split``: random GEMMs whose M, N and K
    are log-uniform in 1..16384 and none a multiple of 8 (:data:`MISALIGNED_GEMMS` per dtype),
    and alignment sweeps at :data:`SWEEP_TOKENS` rows over (N, K) near 4096 that change one
    inner dimension's alignment at a time (:data:`SWEEP_16BIT` in bf16 and fp16,
    :data:`SWEEP_INT8` in int8). A row :func:`v2_shapes` already has is left out."""
    seen = _seen_before("misaligned") if seen is None else seen
    rows: list[dict[str, object]] = []
    rng = random.Random(MISALIGNED_SEED)
    for dtype, n in MISALIGNED_GEMMS.items():
        rows += [_gemm(dtype, _odd(rng), _odd(rng), _odd(rng)) for _ in range(n)]
    for dtype in ("bf16", "fp16"):
        rows += [_gemm(dtype, M, 4096 + dn, 4096 + dk) for M in SWEEP_TOKENS
                 for dn, dk in SWEEP_16BIT]
    rows += [_gemm("int8", M, 4096 + dn, 4096 + dk) for M in SWEEP_TOKENS
             for dn, dk in SWEEP_INT8]
    return _new_rows(rows, seen)


#: The rows of the tile dataset: from a row count where one wave of 128x256 tiles leaves most
#: SMs idle to one of several waves, denser where the recorded launches of the misaligned
#: dataset switch tile (between 515 and 822 rows at N, K = 4104).
TILE_TOKENS = (256, 320, 384, 437, 512, 515, 576, 640, 704, 768, 822, 896, 1000, 1152, 1536,
               2048)
#: (N, K) of the tile dataset: aligned, 8 off a multiple of 16 (how ``torch._int_mm`` runs
#: 4097) and a multiple of 16 above 4096, and one inner dimension each off.
TILE_NK = ((4096, 4096), (4104, 4104), (4112, 4112), (4104, 4096), (4096, 4104))


def tile_shapes(seen: set[tuple[str, ...]] | None = None
                ) -> list[dict[str, object]]:
    """The tile dataset (``sim/data/gpu/shapes_tiles.csv``, ``python -m sim.gpu.shapes
    --tiles``), each row with its ``split``: int8 and fp8 GEMMs at :data:`TILE_TOKENS` rows over
    :data:`TILE_NK`. A row the other datasets already have is left out."""
    seen = _seen_before("tiles") if seen is None else seen
    rows = [_gemm(dtype, M, N, K) for dtype in ("int8", "fp8") for M in TILE_TOKENS
            for N, K in TILE_NK]
    return _new_rows(rows, seen)


#: GEMMs per (dtype, alignment) of the random dataset (:func:`random_shapes`): ``aligned``
#: draws N and K as multiples of 16 (every dtype's kernel runs them as they are), ``odd``
#: as any integer (bf16/fp16 fall back to narrower kernels, fp8 and int8 run zero-padded).
RANDOM_GEMMS = {("int8", "aligned"): 100, ("int8", "odd"): 50, ("fp8", "aligned"): 100,
                ("fp8", "odd"): 50, ("bf16", "aligned"): 50, ("bf16", "odd"): 80,
                ("fp16", "aligned"): 20, ("fp16", "odd"): 40}
#: The seed of their draw (fixed: the dataset is data, not a run).
RANDOM_SEED = 20261207
#: The seed of the unseen dataset (:func:`unseen_shapes`): drawn after the model was fitted on
#: the random dataset's ``cal`` rows.
UNSEEN_SEED = 20261206


def _log_uniform(rng: random.Random, lo: int, hi: int) -> int:
    return int(math.exp(rng.uniform(math.log(lo), math.log(hi + 1))))


def _random_gemms(seed: int, seen: set[tuple[str, ...]]) -> list[dict[str, object]]:
    """:data:`RANDOM_GEMMS` drawn with ``seed`` (M log-uniform in 1..16384, N and K in
    64..16384, multiples of 16 where ``aligned``), those whose key is in ``seen`` left out."""
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    for (dtype, kind), n in RANDOM_GEMMS.items():
        for _ in range(n):
            M = _log_uniform(rng, 1, 16384)
            N, K = (_log_uniform(rng, 64, 16384) for _ in range(2))
            if kind == "aligned":
                N, K = (max(16, 16 * round(x / 16)) for x in (N, K))
            rows.append(_gemm(dtype, M, N, K))
    return _new_rows(rows, seen)


def random_shapes(seen: set[tuple[str, ...]] | None = None
                  ) -> list[dict[str, object]]:
    """The random GEMM dataset (``sim/data/gpu/shapes_random.csv``, ``python -m
    sim.gpu.shapes --random``), each row with its ``split``: GEMMs drawn apart from every
    other dataset, to see what the library dispatches beyond the shapes the model was fitted
    on: M log-uniform in 1..16384, N and K log-uniform in 64..16384 (multiples of 16 where
    ``aligned``, any where ``odd``), :data:`RANDOM_GEMMS` per dtype and alignment. A row the
    other datasets already have is left out."""
    seen = _seen_before("random") if seen is None else seen
    return _random_gemms(RANDOM_SEED, seen)


def unseen_shapes(seen: set[tuple[str, ...]] | None = None
                  ) -> list[dict[str, object]]:
    """The unseen GEMM dataset (``sim/data/gpu/shapes_unseen.csv``, ``python -m
    sim.gpu.shapes --unseen``): drawn as :func:`random_shapes` with another seed
    (:data:`UNSEEN_SEED`) after the kernel model was fitted on the random dataset's ``cal``
    rows, every row ``held``: a test of the model on shapes no fit has seen. A row another
    dataset has is left out."""
    seen = _seen_before("unseen") if seen is None else seen
    rows = _random_gemms(UNSEEN_SEED, seen)
    for row in rows:
        row["split"] = "held"
    return rows


#: The rows (M), columns of C (N) and K as a share of N of the gemmSN dataset
#: (:func:`gemmsn_shapes`): every row count from 2 to 17 (the calibration rows ran cuBLAS's
#: gemmSN at 12 rows and less with K below twice N, and the s1688 tiles from 18 rows on: the
#: kernels columns of measured_h100_misaligned.csv, measured_h100_v2_gemm_kernels.csv and
#: measured_h100_random.csv, none in between), N and K odd (vector 1), K from half of N to
#: nearly twice it.
GEMMSN_ROWS = tuple(range(2, 18))
GEMMSN_N = (301, 1201, 4001, 12001)
GEMMSN_K_SHARES = (0.5, 1.0, 1.5, 1.9)


def gemmsn_shapes(seen: set[tuple[str, ...]] | None = None
                  ) -> list[dict[str, object]]:
    """The gemmSN dataset (``sim/data/gpu/shapes_gemmsn.csv``, ``python -m sim.gpu.shapes
    --gemmsn``), each row with its ``split``: bf16 GEMMs of few rows at vector 1 with K below
    twice N (:data:`GEMMSN_ROWS`, :data:`GEMMSN_N`, :data:`GEMMSN_K_SHARES`), measured with
    their kernels to find the row count from which cuBLAS runs the s1688 tiles instead of its
    CUDA-core gemmSN kernel (``sim.gpu_model.gemm_family``). A row another dataset has is left
    out."""
    seen = _seen_before("gemmsn") if seen is None else seen
    rows = [_gemm("bf16", M, N, int(N * share) | 1) for M in GEMMSN_ROWS for N in GEMMSN_N
            for share in GEMMSN_K_SHARES]
    return _new_rows(rows, seen)


#: The sector dataset (:func:`sector_shapes`): rows, columns of C, and K from a multiple of
#: 128 in steps of 16 over one line of 128 bytes (every alignment of an int8 row to the L2's
#: 32-byte sectors and 128-byte lines; fp8's rows likewise), at shapes whose tiles' loads from
#: L2 can bound them.
SECTOR_ROWS = (1024, 2048, 4096)
SECTOR_N = (4096, 8192)
SECTOR_K = tuple(4096 + 16 * i for i in range(9))


def sector_shapes(seen: set[tuple[str, ...]] | None = None
                  ) -> list[dict[str, object]]:
    """The sector dataset (``sim/data/gpu/shapes_sectors.csv``, ``python -m sim.gpu.shapes
    --sectors``), each row with its ``split``: aligned int8 and fp8 GEMMs at every offset of a
    row of K to the L2's sectors and lines (:data:`SECTOR_ROWS`, :data:`SECTOR_N`,
    :data:`SECTOR_K`), to test how the L2's line and sector traffic bounds the 8-bit kernels'
    loads (``sim.gpu_model.line_traffic``, ``sim.gpu_model.sector_traffic``). A row another
    dataset has is left out."""
    seen = _seen_before("sectors") if seen is None else seen
    rows = [_gemm(dtype, M, N, K) for dtype in ("int8", "fp8") for M in SECTOR_ROWS
            for N in SECTOR_N for K in SECTOR_K]
    return _new_rows(rows, seen)


#: The int8 N8 dataset (:func:`int8_n8_shapes`): N 8 off a multiple of 16 (9 and 33 columns of
#: the Hopper kernel's 128-column tiles, ``sim.gpu_model.INT8_N8_TILE``), rows for about
#: :data:`INT8_N8_TILE_COUNTS` of its 256-row tiles, each at every K of :data:`INT8_N8_K`: so
#: that the tile count and the multiply-adds vary apart (the recorded launches so far had the
#: Hopper kernel up to 198 tiles and 2.6e10 multiply-adds, CUTLASS's from 264 tiles and 3.4e10,
#: where both bounds separate them).
INT8_N8_N = (1032, 4104)
INT8_N8_TILE_COUNTS = (99, 132, 165, 198, 231, 264, 297, 330, 396)
INT8_N8_K = (128, 1024, 4096, 8192)


def int8_n8_shapes(seen: set[tuple[str, ...]] | None = None
                   ) -> list[dict[str, object]]:
    """The int8 N8 dataset (``sim/data/gpu/shapes_int8n8.csv``, ``python -m sim.gpu.shapes
    --int8n8``), each row with its ``split``: int8 GEMMs with K a multiple of 16 and N 8 off one
    (:data:`INT8_N8_N`, :data:`INT8_N8_TILE_COUNTS`, :data:`INT8_N8_K`; M 8 short of a multiple
    of 256, so that the last row tile is ragged as a user's would be), measured with their
    kernels to find which of the Hopper kernel and CUTLASS's align-4 tiles cuBLASLt runs
    (``sim.gpu_model.INT8_N8_MAX_WAVES``). A row another dataset has is left out."""
    seen = _seen_before("int8n8") if seen is None else seen
    rows = []
    for N in INT8_N8_N:
        cols = -(-N // 128)
        for tiles in INT8_N8_TILE_COUNTS:
            M = 256 * max(1, round(tiles / cols)) - 8
            rows += [_gemm("int8", M, N, K) for K in INT8_N8_K]
    return _new_rows(rows, seen)


#: The store dataset (:func:`store_shapes`): :data:`STORE_RANDOM` rows per dtype and
#: alignment (M and N log-uniform in :data:`STORE_MN`, K in :data:`STORE_K`; N and K multiples
#: of 16 where aligned, odd where not) and, at :data:`STORE_SWEEP_MN` rows and columns, every K
#: of :data:`STORE_SWEEP_K` (from C's store far above the products' time to below it).
STORE_SEED = 20261208
STORE_RANDOM = {("bf16", "aligned"): 24, ("fp16", "aligned"): 24, ("fp8", "aligned"): 24,
                ("int8", "aligned"): 24, ("bf16", "odd"): 12, ("fp16", "odd"): 12}
STORE_MN = (1024, 16384)
STORE_K = (16, 2048)
STORE_SWEEP_MN = (8192, 8192)
STORE_SWEEP_K = (16, 32, 64, 128, 256, 512, 1024, 2048)


def store_shapes(seen: set[tuple[str, ...]] | None = None
                 ) -> list[dict[str, object]]:
    """The store dataset (``sim/data/gpu/shapes_store.csv``, ``python -m sim.gpu.shapes
    --store``), each row with its ``split``: GEMMs whose C is large against their products and
    loads (:data:`STORE_RANDOM`, :data:`STORE_MN`, :data:`STORE_K`, and the K sweep
    :data:`STORE_SWEEP_K` at :data:`STORE_SWEEP_MN`), to find the rate at which the kernels
    store C and whether it follows the card's HBM. A row another dataset has is left out."""
    seen = _seen_before("store") if seen is None else seen
    rng = random.Random(STORE_SEED)
    rows = [_gemm(dtype, *STORE_SWEEP_MN, K) for dtype in ("bf16", "fp16", "fp8", "int8")
            for K in STORE_SWEEP_K]
    for (dtype, kind), n in STORE_RANDOM.items():
        for _ in range(n):
            M, N = (_log_uniform(rng, *STORE_MN) for _ in range(2))
            K = _log_uniform(rng, *STORE_K)
            if kind == "aligned":
                N, K = (max(16, 16 * round(x / 16)) for x in (N, K))
            else:
                M, N, K = (x | 1 for x in (M, N, K))
            rows.append(_gemm(dtype, M, N, K))
    return _new_rows(rows, seen)


#: The long-K dataset (:func:`long_k_shapes`): :data:`LONG_K_RANDOM` rows per dtype, M
#: log-uniform in :data:`LONG_K_ROWS`, N in :data:`LONG_K_N` and K in :data:`LONG_K_K`, all
#: odd (vector 1).
LONG_K_SEED = 20261209
LONG_K_RANDOM = {"bf16": 48, "fp16": 24}
LONG_K_ROWS = (2, 64)
LONG_K_N = (64, 12000)
LONG_K_K = (2000, 16000)


def long_k_shapes(seen: set[tuple[str, ...]] | None = None
                  ) -> list[dict[str, object]]:
    """The long-K dataset (``sim/data/gpu/shapes_longk.csv``, ``python -m sim.gpu.shapes
    --longk``), each row with its ``split``: misaligned (odd) bf16 and fp16 GEMMs of few rows
    and long K (:data:`LONG_K_RANDOM`, :data:`LONG_K_ROWS`, :data:`LONG_K_N`,
    :data:`LONG_K_K`), measured with their kernels: the split-K fallback kernels' time where
    W's bytes bound it. A row another dataset has is left out."""
    seen = _seen_before("longk") if seen is None else seen
    rng = random.Random(LONG_K_SEED)
    rows = []
    for dtype, n in LONG_K_RANDOM.items():
        for _ in range(n):
            M = _log_uniform(rng, *LONG_K_ROWS)
            N, K = (_log_uniform(rng, *r) | 1 for r in (LONG_K_N, LONG_K_K))
            rows.append(_gemm(dtype, M, N, K))
    return _new_rows(rows, seen)


#: The short-K dataset (:func:`short_k_shapes`): every (M, N) of :data:`SHORT_K_MN` at every K
#: of :data:`SHORT_K_K`, in each of :data:`SHORT_K_DTYPES`.
SHORT_K_MN = ((1024, 1024), (2048, 2048), (1024, 8192), (4096, 4096), (2048, 8192),
              (8192, 4096))
SHORT_K_K = (16, 32, 64, 128, 256, 512)
SHORT_K_DTYPES = ("bf16", "fp8")


def short_k_shapes(seen: set[tuple[str, ...]] | None = None
                   ) -> list[dict[str, object]]:
    """The short-K dataset (``sim/data/gpu/shapes_shortk.csv``, ``python -m sim.gpu.shapes
    --shortk``), each row with its ``split``: aligned bf16 and fp8 GEMMs of the same shapes
    (:data:`SHORT_K_MN` x :data:`SHORT_K_K`), measured with their kernels and energy: a cost per
    tile against C's stores at short K. A row another dataset has is left out."""
    seen = _seen_before("shortk") if seen is None else seen
    rows = [_gemm(dtype, M, N, K) for dtype in SHORT_K_DTYPES for M, N in SHORT_K_MN
            for K in SHORT_K_K]
    return _new_rows(rows, seen)


#: The C-store dataset (:func:`c_store_shapes`): (M, N) of C of about 8, 34, 67 and 134 MB in
#: bf16, each size's first a power of two in both and the others off it: N or M 16, 32 or 48
#: off a multiple of 64, or a multiple of 64 that is not a power of two, or both apart (2000 x
#: 2100 misaligned: N a multiple of 4, not 8).
C_STORE_MN = ((2048, 2048), (2048, 2064), (2048, 2112), (2064, 2048), (2000, 2100),
              (4096, 4096), (4096, 4112), (4096, 4128), (4096, 4144), (4096, 4160), (4112, 4096),
              (3968, 4224), (4000, 4200), (2048, 8192), (2048, 8208), (8192, 2064),
              (8192, 4096), (8192, 4112), (8192, 4160), (8000, 4200),
              (8192, 8192), (8192, 8208), (8192, 8256), (8208, 8192), (8000, 8400))
C_STORE_K = (32, 256)


def c_store_shapes(seen: set[tuple[str, ...]] | None = None
                   ) -> list[dict[str, object]]:
    """The C-store dataset (``sim/data/gpu/shapes_cstore.csv``, ``python -m sim.gpu.shapes
    --cstore``), each row with its ``split``: bf16 GEMMs of :data:`C_STORE_MN` at every K of
    :data:`C_STORE_K` (all aligned but 2000 x 2100), measured with their kernels and energy:
    whether C's stores run at one rate for C of one size, its rows and tiles on the L2's lines
    or off them. A row another dataset has is left out."""
    seen = _seen_before("cstore") if seen is None else seen
    rows = [_gemm("bf16", M, N, K) for M, N in C_STORE_MN for K in C_STORE_K]
    return _new_rows(rows, seen)


#: The long-context dataset (:func:`long_context_shapes`): the cached tokens of its decode rows
#: (64k and 128k: Llama-3.1's context is 128k) and the prompt tokens of its prefill rows, past
#: every other dataset's (decode caches of at most 32k tokens, prefills of 16k).
LONG_CONTEXT_DECODE_S = (65536, 131072)
LONG_CONTEXT_PREFILL_S = (32768, 65536)
#: (H, Hkv) of its SDPA decode rows: Llama-2-7B's 32 heads, Llama-3-8B's 32 over 8, Llama-3-70B's
#: 64 over 8, multi-query 32 over 1.
LONG_CONTEXT_HEADS = ((32, 32), (32, 8), (64, 8), (32, 1))
LONG_CONTEXT_BATCH = (1, 4, 16)
#: The largest cache (keys and values, bf16) of a row: 16 GiB.
LONG_CONTEXT_MAX_CACHE = 1 << 34


def long_context_shapes() -> list[dict[str, object]]:
    """The long-context dataset (``sim/data/gpu/shapes_longctx.csv``, ``python -m
    sim.gpu.shapes --longctx``), every row ``held`` (module doc): SDPA decode over
    :data:`LONG_CONTEXT_DECODE_S` cached tokens at head dim 128 over
    :data:`LONG_CONTEXT_HEADS` and :data:`LONG_CONTEXT_BATCH` (caches of at most
    :data:`LONG_CONTEXT_MAX_CACHE` bytes), and at head dims 64 and 256 (32 over 8 heads, batch
    1 and 4); the project's KIVI decode over int8 and int4 caches (32 over 8 heads, head dim
    128, batch 1 to 16); SDPA prefill of :data:`LONG_CONTEXT_PREFILL_S` tokens (batch 1, 32
    over 8 and 32 heads, head dims 64 and 128), causal, and not at the shorter one."""
    rows: list[dict[str, object]] = []

    def decode(B: int, H: int, Hkv: int, S: int, D: int, kv: str = "") -> None:
        if 4 * B * Hkv * S * D <= LONG_CONTEXT_MAX_CACHE:
            rows.append({"op": "attn_decode", "dtype": "bf16", "B": B, "H": H, "Hkv": Hkv,
                         "S": S, "D": D} | ({"kv_dtype": kv} if kv else {}))

    for S in LONG_CONTEXT_DECODE_S:
        for H, Hkv in LONG_CONTEXT_HEADS:
            for B in LONG_CONTEXT_BATCH:
                decode(B, H, Hkv, S, 128)
        for D in (64, 256):
            for B in LONG_CONTEXT_BATCH[:2]:
                decode(B, 32, 8, S, D)
        for kv in ("int8", "int4"):
            for B in LONG_CONTEXT_BATCH:
                decode(B, 32, 8, S, 128, kv)
    for S in LONG_CONTEXT_PREFILL_S:
        for H, Hkv in ((32, 8), (32, 32)):
            for D in (64, 128):
                for causal in (1, 0) if S == LONG_CONTEXT_PREFILL_S[0] else (1,):
                    rows.append({"op": "attn_prefill", "dtype": "bf16", "B": 1, "H": H,
                                 "Hkv": Hkv, "S": S, "D": D, "causal": causal})
    for row in rows:
        row["split"] = "held"
    return rows


#: The GEMM datasets in the order they were drawn: each leaves out every row of the ones
#: before it (:func:`_seen_before`), so that no kernel is measured in two of them.
DRAW_ORDER = ("v2", "misaligned", "tiles", "random", "unseen", "gemmsn", "sectors", "int8n8",
              "store", "longk", "shortk", "cstore")


def _seen_before(dataset: str) -> set[tuple[str, ...]]:
    """The keys (:func:`_key`) of every dataset drawn before ``dataset`` (:data:`DRAW_ORDER`):
    the rows it leaves out. Each earlier dataset is drawn once, in order, given the keys of the
    ones before it (``seen``, to which :func:`_new_rows` adds its own rows' keys), not again
    for every dataset after it."""
    seen = {_key(r) for r in v2_shapes()}
    for earlier in DRAW_ORDER[1:DRAW_ORDER.index(dataset)]:
        DATASETS[earlier][0](seen)
    return seen


#: ``python -m sim.gpu.shapes``'s datasets: option -> (rows, default path, extra columns).
DATASETS = {
    "default": (default_shapes, SHAPES_CSV, ()),
    "v2": (v2_shapes, SHAPES_V2_CSV, ("causal",)),
    "quant": (quant_shapes, SHAPES_QUANT_CSV, QUANT_COLUMNS),
    "misaligned": (misaligned_shapes, SHAPES_MISALIGNED_CSV, ()),
    "decode": (decode_shapes, SHAPES_DECODE_CSV, ()),
    "tiles": (tile_shapes, SHAPES_TILES_CSV, ()),
    "random": (random_shapes, SHAPES_RANDOM_CSV, ()),
    "unseen": (unseen_shapes, SHAPES_UNSEEN_CSV, ()),
    "gemmsn": (gemmsn_shapes, SHAPES_GEMMSN_CSV, ()),
    "sectors": (sector_shapes, SHAPES_SECTORS_CSV, ()),
    "int8n8": (int8_n8_shapes, SHAPES_INT8_N8_CSV, ()),
    "store": (store_shapes, SHAPES_STORE_CSV, ()),
    "longk": (long_k_shapes, SHAPES_LONG_K_CSV, ()),
    "shortk": (short_k_shapes, SHAPES_SHORT_K_CSV, ()),
    "cstore": (c_store_shapes, SHAPES_C_STORE_CSV, ()),
    "longctx": (long_context_shapes, SHAPES_LONG_CONTEXT_CSV, ("causal", *QUANT_COLUMNS)),
}


def write_shapes(path: Path | None = None, dataset: str = "default") -> Path:
    """Write one of :data:`DATASETS` to ``path`` (default: the dataset's own file), whole or
    not at all."""
    rows_of, default, extra = DATASETS[dataset]
    path = path or default
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[*COLUMNS, *extra, "split"], restval="")
        w.writeheader()
        w.writerows(rows_of())
    tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sim.gpu.shapes",
        description="Write one of the GPU kernel datasets (shapes.csv format plus split).")
    which = parser.add_mutually_exclusive_group()
    for name in DATASETS:
        if name != "default":
            which.add_argument(f"--{name}", action="store_true",
                               help=f"the {name} dataset (default path {DATASETS[name][1].name})")
    parser.add_argument("out", nargs="?", type=Path,
                        help=f"the CSV to write (default: the dataset's, e.g. {SHAPES_CSV.name})")
    args = parser.parse_args(argv)
    name = next((n for n in DATASETS if n != "default" and getattr(args, n)), "default")
    out = write_shapes(args.out, name)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
