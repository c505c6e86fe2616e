"""The project's own Triton kernels for quantized inference, and their references.

* :func:`w4a16_matmul` (shapes.csv dtype ``w4a16_triton``): ``C[M, N] = A[M, K] W[N, K]^T``
  with bf16 activations and int4 weights, packed two per byte along K (:func:`pack_w4`:
  ``packed[k // 2, n]``, the even k in the low nibble), group-wise asymmetric bf16 scales and
  zeros along K (``W[n, k] = q[n, k] s[k // g, n] + z[k // g, n]``, ``q`` in 0..15): each K
  step loads the packed bytes, unpacks and dequantizes them in registers and feeds the tensor
  cores in bf16, accumulating in fp32. Tiles autotuned per (M bucket, N, K).
* :func:`kivi_decode` (``attn_decode`` with ``kv_dtype`` int8 or int4): one query token per
  sequence against a KIVI-quantized cache (Liu et al., ICML 2024): keys per channel (a scale
  and a minimum per channel for each group of :data:`KV_GROUP` tokens), values per token (one
  per group of :data:`KV_GROUP` channels), both fp16; int4 codes two per byte (channel ``d`` in
  the low nibble, ``d + D/2`` in the high one). Grouped-query heads share their KV head's
  loads; split-KV (FlashDecoding): a first kernel runs the online softmax over a chunk of
  tokens per program, a second combines the chunks. ``bits=16`` runs the same kernel over a
  bf16 cache (the baseline it is compared with).
* :func:`rms_norm`, :func:`rope_cache`, :func:`silu_mul`: a serving engine's fused
  element-wise passes of a Llama layer (``sim.gpu.layer``'s fused layer), one kernel each: the
  norm of a row in one read, RoPE of the query in place with the new keys rotated into the
  cache and the values copied there, the gated activation.

torch and triton are imported inside the functions (the rest of TPEForge runs without them);
the decode kernel's split (:func:`sim.gpu_model.kivi_split`, which the kernel model reads too)
is the only other part of TPEForge it needs, so ``python -m sim.gpu.measure`` can carry it to
a GPU machine with ``sim/gpu_model.py``.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["KV_GROUP", "W4A16_CONFIGS", "dequant_kv", "kivi_decode", "pack_w4", "quantize_kv",
           "rms_norm", "rope_cache", "silu_mul", "w4a16_matmul", "w4a16_reference"]

#: KIVI's group size, tokens per key scale and channels per value scale (models.quant's
#: ``KIVI_GROUP``, held equal by a test).
KV_GROUP = 32
#: The autotuned configurations of :func:`w4a16_matmul`: (BM, BN, BK, stages, warps); the
#: kernel model reads their tiles (``sim.gpu_model.W4A16_TRITON_TILES``, held equal by a test).
W4A16_CONFIGS = ((16, 16, 128, 6, 2), (16, 32, 256, 3, 4), (16, 32, 128, 4, 4),
                 (16, 64, 128, 4, 4), (16, 128, 128, 3, 4), (32, 64, 128, 4, 4),
                 (64, 128, 64, 4, 4), (128, 128, 64, 3, 8), (128, 256, 64, 3, 8))


def pack_w4(torch: Any, q: Any) -> Any:
    """int4 codes ``q[N, K]`` (0..15, any integer dtype) as ``uint8[K // 2, N]``: byte
    ``[j, n]`` holds ``q[n, 2j]`` in its low nibble and ``q[n, 2j + 1]`` in its high one."""
    qt = q.to(torch.uint8).t()
    return (qt[0::2] | (qt[1::2] << 4)).contiguous()


def w4a16_reference(torch: Any, a: Any, q: Any, scales: Any, zeros: Any, group: int) -> Any:
    """``a @ W^T`` in fp32 with ``W[n, k] = q[n, k] s[k // group, n] + z[k // group, n]``."""
    s = scales.float().t().repeat_interleave(group, dim=1)
    z = zeros.float().t().repeat_interleave(group, dim=1)
    return a.float() @ (q.float() * s + z).t()


_W4A16: dict[str, Any] = {}


def _w4a16_kernel() -> Any:  # pragma: no cover - needs a GPU
    if "kernel" in _W4A16:
        return _W4A16["kernel"]
    import triton
    import triton.language as tl

    configs = [triton.Config({"BM": bm, "BN": bn, "BK": bk, "GM": 8}, num_stages=st,
                             num_warps=wa)
               for bm, bn, bk, st, wa in W4A16_CONFIGS]

    def quick_bench(fn, quantiles=None, **_):
        return triton.testing.do_bench(fn, warmup=5, rep=20, quantiles=quantiles)

    @triton.autotune(configs=configs, key=["M_BUCKET", "N", "K", "GROUP"],
                     do_bench=quick_bench)
    @triton.jit
    def kernel(a_ptr, q_ptr, s_ptr, z_ptr, c_ptr, M, N, K, M_BUCKET,
               stride_am, stride_ak, stride_qk, stride_qn, stride_sg, stride_sn,
               stride_cm, stride_cn, GROUP: tl.constexpr,
               BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, GM: tl.constexpr):
        pid = tl.program_id(0)
        num_n = tl.cdiv(N, BN)
        # tiles in groups of GM rows, column by column in a group (L2 reuse of the weights)
        pid_m, pid_n = tl.swizzle2d(pid // num_n, pid % num_n, tl.cdiv(M, BM), num_n, GM)
        rm = pid_m * BM + tl.arange(0, BM)
        rn = pid_n * BN + tl.arange(0, BN)
        rk = tl.arange(0, BK)
        a = a_ptr + rm[:, None] * stride_am + rk[None, :] * stride_ak
        q = q_ptr + (rk[:, None] // 2) * stride_qk + rn[None, :] * stride_qn
        shift = (rk[:, None] % 2) * 4
        acc = tl.zeros((BM, BN), dtype=tl.float32)
        for k0 in range(0, K, BK):
            kk = k0 + rk
            av = tl.load(a, mask=(rm[:, None] < M) & (kk[None, :] < K), other=0.0)
            qv = tl.load(q, mask=(rn[None, :] < N) & (kk[:, None] < K), other=0)
            w = ((qv.to(tl.int32) >> shift) & 0xF).to(tl.float32)
            if GROUP % BK == 0:  # one scale row for the whole K step
                g = k0 // GROUP
                s = tl.load(s_ptr + g * stride_sg + rn * stride_sn, mask=rn < N, other=0.0)
                z = tl.load(z_ptr + g * stride_sg + rn * stride_sn, mask=rn < N, other=0.0)
                w = w * s.to(tl.float32)[None, :] + z.to(tl.float32)[None, :]
            else:
                off = (kk // GROUP)[:, None] * stride_sg + rn[None, :] * stride_sn
                ok = (rn[None, :] < N) & (kk[:, None] < K)
                s = tl.load(s_ptr + off, mask=ok, other=0.0)
                z = tl.load(z_ptr + off, mask=ok, other=0.0)
                w = w * s.to(tl.float32) + z.to(tl.float32)
            acc = tl.dot(av, w.to(tl.bfloat16), acc)
            a += BK * stride_ak
            q += (BK // 2) * stride_qk
        c = c_ptr + rm[:, None] * stride_cm + rn[None, :] * stride_cn
        tl.store(c, acc.to(tl.bfloat16), mask=(rm[:, None] < M) & (rn[None, :] < N))

    _W4A16["kernel"] = kernel
    return kernel


def w4a16_matmul(a: Any, packed: Any, scales: Any, zeros: Any, group: int, out: Any
                 ) -> Any:  # pragma: no cover - needs a GPU
    """``out[M, N] = a[M, K] W^T`` (bf16) with ``W`` int4 (:func:`pack_w4`: ``packed[K // 2,
    N]``), ``scales`` and ``zeros`` ``[K // group, N]`` bf16 (module doc)."""
    import triton

    kernel = _w4a16_kernel()
    M, K = a.shape
    N = packed.shape[1]

    def grid(meta):
        return (triton.cdiv(M, meta["BM"]) * triton.cdiv(N, meta["BN"]),)

    kernel[grid](a, packed, scales, zeros, out, M, N, K, 1 << max(0, (M - 1).bit_length()),
                 a.stride(0), a.stride(1), packed.stride(0), packed.stride(1),
                 scales.stride(0), scales.stride(1), out.stride(0), out.stride(1), group)
    return out


# -- KIVI decode attention ---------------------------------------------------------------------


def quantize_kv(torch: Any, k: Any, v: Any, bits: int) -> dict[str, Any]:
    """KIVI-quantize a cache ``k, v[B, Hkv, S, D]`` (``S`` and ``D`` multiples of
    :data:`KV_GROUP`): keys per channel over groups of tokens, values per token over groups of
    channels, asymmetric (``x = code scale + minimum``), fp16 scales and minima; int4 codes
    packed two per byte (module doc). The tensors :func:`kivi_decode` reads."""
    levels = (1 << bits) - 1
    B, H, S, D = k.shape
    kg = k.float().reshape(B, H, S // KV_GROUP, KV_GROUP, D)
    kmin, kmax = kg.amin(dim=3), kg.amax(dim=3)
    ks = ((kmax - kmin) / levels).clamp_min(1e-6).half()
    kmin = kmin.half()
    kq = ((kg - kmin.float()[:, :, :, None]) / ks.float()[:, :, :, None]).round()
    kq = kq.clamp(0, levels).reshape(B, H, S, D).to(torch.uint8)
    vg = v.float().reshape(B, H, S, D // KV_GROUP, KV_GROUP)
    vmin, vmax = vg.amin(dim=4), vg.amax(dim=4)
    vs = ((vmax - vmin) / levels).clamp_min(1e-6).half()
    vmin = vmin.half()
    vq = ((vg - vmin.float()[..., None]) / vs.float()[..., None]).round()
    vq = vq.clamp(0, levels).reshape(B, H, S, D).to(torch.uint8)
    if bits == 4:
        half = D // 2
        kq = (kq[..., :half] | (kq[..., half:] << 4)).contiguous()
        vq = (vq[..., :half] | (vq[..., half:] << 4)).contiguous()
    return {"kq": kq, "ks": ks, "km": kmin, "vq": vq, "vs": vs, "vm": vmin, "bits": bits,
            "D": D}


def dequant_kv(torch: Any, c: dict[str, Any]) -> tuple[Any, Any]:
    """The fp32 keys and values a quantized cache (:func:`quantize_kv`) stands for."""
    def codes(x: Any) -> Any:
        if c["bits"] == 4:
            return torch.cat([x & 0xF, x >> 4], dim=-1)
        return x

    kq, vq = codes(c["kq"]).float(), codes(c["vq"]).float()
    k = kq * c["ks"].float().repeat_interleave(KV_GROUP, dim=2) \
        + c["km"].float().repeat_interleave(KV_GROUP, dim=2)
    v = vq * c["vs"].float().repeat_interleave(KV_GROUP, dim=3) \
        + c["vm"].float().repeat_interleave(KV_GROUP, dim=3)
    return k, v


_DECODE: dict[str, Any] = {}


def _decode_kernels() -> tuple[Any, Any]:  # pragma: no cover - needs a GPU
    if "kernels" in _DECODE:
        return _DECODE["kernels"]
    import triton
    import triton.language as tl

    @triton.jit
    def split_kernel(q_ptr, kq_ptr, ks_ptr, km_ptr, vq_ptr, vs_ptr, vm_ptr, o_ptr, ml_ptr,
                     S, CHUNK, SPLITS, scale_log2,
                     sq_b, sq_h, sk_b, sk_h, sk_s, sks_b, sks_h, sks_g,
                     svs_b, svs_h, svs_s,
                     HKV: tl.constexpr, G: tl.constexpr, GP: tl.constexpr, D: tl.constexpr,
                     BITS: tl.constexpr, GS: tl.constexpr, BLOCK_N: tl.constexpr):
        pid = tl.program_id(0)
        split = tl.program_id(1)
        b = pid // HKV
        hk = pid % HKV
        DH: tl.constexpr = D // 2
        NGK: tl.constexpr = BLOCK_N // GS
        NGV: tl.constexpr = DH // GS
        i = tl.arange(0, GP)
        heads = hk * G + i
        hmask = i < G
        d = tl.arange(0, DH)
        qb = q_ptr + b * sq_b + heads[:, None] * sq_h
        q_lo = tl.load(qb + d[None, :], mask=hmask[:, None], other=0.0).to(tl.bfloat16)
        q_hi = tl.load(qb + DH + d[None, :], mask=hmask[:, None], other=0.0).to(tl.bfloat16)
        kb = kq_ptr + b * sk_b + hk * sk_h
        vb = vq_ptr + b * sk_b + hk * sk_h
        ksb = ks_ptr + b * sks_b + hk * sks_h
        kmb = km_ptr + b * sks_b + hk * sks_h
        vsb = vs_ptr + b * svs_b + hk * svs_h
        vmb = vm_ptr + b * svs_b + hk * svs_h
        m_i = tl.full((GP,), float("-inf"), tl.float32)
        l_i = tl.zeros((GP,), tl.float32)
        acc_lo = tl.zeros((GP, DH), tl.float32)
        acc_hi = tl.zeros((GP, DH), tl.float32)
        start = split * CHUNK
        end = tl.minimum(start + CHUNK, S)
        for n0 in range(start, end, BLOCK_N):
            n = n0 + tl.arange(0, BLOCK_N)
            nmask = n < end
            toff = n[:, None] * sk_s + d[None, :]
            m2 = nmask[:, None]
            if BITS == 4:  # two channels a byte: d in the low nibble, d + D/2 in the high
                kr = tl.load(kb + toff, mask=m2, other=0).to(tl.int32)
                vr = tl.load(vb + toff, mask=m2, other=0).to(tl.int32)
                k_lo = (kr & 0xF).to(tl.float32)
                k_hi = (kr >> 4).to(tl.float32)
                v_lo = (vr & 0xF).to(tl.float32)
                v_hi = (vr >> 4).to(tl.float32)
            else:
                k_lo = tl.load(kb + toff, mask=m2, other=0).to(tl.float32)
                k_hi = tl.load(kb + toff + DH, mask=m2, other=0).to(tl.float32)
                v_lo = tl.load(vb + toff, mask=m2, other=0).to(tl.float32)
                v_hi = tl.load(vb + toff + DH, mask=m2, other=0).to(tl.float32)
            if BITS != 16:
                # keys: one scale and minimum row per group of GS tokens (NGK groups in the
                # block), values: one per token for each group of GS channels (NGV a half);
                # loaded once and broadcast over their group in registers
                kg = n0 // GS + tl.arange(0, NGK)
                gm = (kg * GS < end)[:, None]
                ko = kg[:, None] * sks_g + d[None, :]
                k_lo = (k_lo * tl.reshape(tl.broadcast_to(tl.load(
                    ksb + ko, mask=gm, other=0.0).to(tl.float32)[:, None, :],
                    (NGK, GS, DH)), (BLOCK_N, DH))
                    + tl.reshape(tl.broadcast_to(tl.load(
                        kmb + ko, mask=gm, other=0.0).to(tl.float32)[:, None, :],
                        (NGK, GS, DH)), (BLOCK_N, DH)))
                k_hi = (k_hi * tl.reshape(tl.broadcast_to(tl.load(
                    ksb + ko + DH, mask=gm, other=0.0).to(tl.float32)[:, None, :],
                    (NGK, GS, DH)), (BLOCK_N, DH))
                    + tl.reshape(tl.broadcast_to(tl.load(
                        kmb + ko + DH, mask=gm, other=0.0).to(tl.float32)[:, None, :],
                        (NGK, GS, DH)), (BLOCK_N, DH)))
                vo = n[:, None] * svs_s + tl.arange(0, NGV)[None, :]
                v_lo = (v_lo * tl.reshape(tl.broadcast_to(tl.load(
                    vsb + vo, mask=m2, other=0.0).to(tl.float32)[:, :, None],
                    (BLOCK_N, NGV, GS)), (BLOCK_N, DH))
                    + tl.reshape(tl.broadcast_to(tl.load(
                        vmb + vo, mask=m2, other=0.0).to(tl.float32)[:, :, None],
                        (BLOCK_N, NGV, GS)), (BLOCK_N, DH)))
                v_hi = (v_hi * tl.reshape(tl.broadcast_to(tl.load(
                    vsb + vo + NGV, mask=m2, other=0.0).to(tl.float32)[:, :, None],
                    (BLOCK_N, NGV, GS)), (BLOCK_N, DH))
                    + tl.reshape(tl.broadcast_to(tl.load(
                        vmb + vo + NGV, mask=m2, other=0.0).to(tl.float32)[:, :, None],
                        (BLOCK_N, NGV, GS)), (BLOCK_N, DH)))
            s = tl.dot(q_lo, tl.trans(k_lo.to(tl.bfloat16)))
            s = tl.dot(q_hi, tl.trans(k_hi.to(tl.bfloat16)), s) * scale_log2
            s = tl.where(nmask[None, :], s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, axis=1))
            alpha = tl.exp2(m_i - m_new)
            p = tl.exp2(s - m_new[:, None])
            l_i = l_i * alpha + tl.sum(p, axis=1)
            pb = p.to(tl.bfloat16)
            acc_lo = tl.dot(pb, v_lo.to(tl.bfloat16), acc_lo * alpha[:, None])
            acc_hi = tl.dot(pb, v_hi.to(tl.bfloat16), acc_hi * alpha[:, None])
            m_i = m_new
        # partial results [B, H, SPLITS, D] and (m, l) [B, H, SPLITS, 2]
        row = (b * HKV * G + heads) * SPLITS + split
        ob = o_ptr + row[:, None] * D
        tl.store(ob + d[None, :], acc_lo, mask=hmask[:, None])
        tl.store(ob + DH + d[None, :], acc_hi, mask=hmask[:, None])
        tl.store(ml_ptr + row * 2, m_i, mask=hmask)
        tl.store(ml_ptr + row * 2 + 1, l_i, mask=hmask)

    @triton.jit
    def combine_kernel(o_ptr, ml_ptr, out_ptr, SPLITS, D: tl.constexpr, SP: tl.constexpr):
        bh = tl.program_id(0)
        sp = tl.arange(0, SP)
        smask = sp < SPLITS
        d = tl.arange(0, D)
        m = tl.load(ml_ptr + (bh * SPLITS + sp) * 2, mask=smask, other=float("-inf"))
        l_s = tl.load(ml_ptr + (bh * SPLITS + sp) * 2 + 1, mask=smask, other=0.0)
        mx = tl.max(m, axis=0)
        w = tl.where(smask, tl.exp2(m - mx), 0.0)
        o = tl.load(o_ptr + (bh * SPLITS + sp)[:, None] * D + d[None, :], mask=smask[:, None],
                    other=0.0)
        res = tl.sum(o * w[:, None], axis=0) / tl.sum(l_s * w, axis=0)
        tl.store(out_ptr + bh * D + d, res.to(tl.bfloat16))

    _DECODE["kernels"] = (split_kernel, combine_kernel)
    return split_kernel, combine_kernel


def kivi_decode(torch: Any, q: Any, cache: dict[str, Any], sm_count: int
                ) -> Any:  # pragma: no cover - needs a GPU
    """Decode attention of ``q[B, H, D]`` (bf16, one token per sequence) over a cache from
    :func:`quantize_kv` (or ``{"kq": k, "vq": v, "bits": 16, "D": D}`` with bf16 ``k, v[B,
    Hkv, S, D]``); returns ``[B, H, D]`` bf16. Two launches (module doc)."""
    from sim.gpu_model import KIVI_BLOCK_N, kivi_split

    split_kernel, combine_kernel = _decode_kernels()
    B, H, D = q.shape
    kq = cache["kq"]
    _, Hkv, S, _ = kq.shape
    G = H // Hkv
    splits, chunk = kivi_split(B, Hkv, S, sm_count)
    o = torch.empty(B * H * splits * D, device=q.device, dtype=torch.float32)
    ml = torch.empty(B * H * splits * 2, device=q.device, dtype=torch.float32)
    out = torch.empty(B, H, D, device=q.device, dtype=torch.bfloat16)
    bits = cache["bits"]
    ks = cache.get("ks", kq)
    vs = cache.get("vs", kq)
    split_kernel[(B * Hkv, splits)](
        q, kq, ks, cache.get("km", kq), cache["vq"], vs, cache.get("vm", kq), o, ml,
        S, chunk, splits, 1.4426950408889634 / math.sqrt(D),
        q.stride(0), q.stride(1), kq.stride(0), kq.stride(1), kq.stride(2),
        ks.stride(0), ks.stride(1), ks.stride(2), vs.stride(0), vs.stride(1), vs.stride(2),
        HKV=Hkv, G=G, GP=max(16, 1 << max(0, (G - 1).bit_length())), D=D, BITS=bits,
        GS=KV_GROUP, BLOCK_N=KIVI_BLOCK_N, num_warps=4, num_stages=2)
    combine_kernel[(B * H,)](o, ml, out, splits, D=D,
                             SP=max(2, 1 << max(0, (splits - 1).bit_length())), num_warps=4)
    return out


# -- a serving engine's fused element-wise passes of a Llama layer -----------------------------

_FUSED: dict[str, Any] = {}


def _fused_kernels() -> dict[str, Any]:  # pragma: no cover - needs a GPU
    if _FUSED:
        return _FUSED
    import triton
    import triton.language as tl

    @triton.jit
    def rms_norm_kernel(x_ptr, w_ptr, y_ptr, H, eps, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        offs = tl.arange(0, BLOCK)
        mask = offs < H
        x = tl.load(x_ptr + row * H + offs, mask=mask, other=0.0).to(tl.float32)
        inv = tl.rsqrt(tl.sum(x * x, axis=0) / H + eps)
        w = tl.load(w_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        tl.store(y_ptr + row * H + offs, (x * inv * w).to(y_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def rope_cache_kernel(q_ptr, k_ptr, v_ptr, cos_ptr, sin_ptr, kc_ptr, vc_ptr, T, start,
                          cap, HQ: tl.constexpr, HKV: tl.constexpr, HALF: tl.constexpr):
        bt = tl.program_id(0).to(tl.int64)  # one token of one sequence
        head = tl.program_id(1)
        b = bt // T
        pos = start + bt % T
        d = tl.arange(0, HALF)
        cos = tl.load(cos_ptr + pos * 2 * HALF + d).to(tl.float32)
        sin = tl.load(sin_ptr + pos * 2 * HALF + d).to(tl.float32)
        if head < HQ:  # a query head, rotated in place
            base = q_ptr + (bt * HQ + head) * 2 * HALF
            x1 = tl.load(base + d).to(tl.float32)
            x2 = tl.load(base + HALF + d).to(tl.float32)
            tl.store(base + d, (x1 * cos - x2 * sin).to(q_ptr.dtype.element_ty))
            tl.store(base + HALF + d, (x2 * cos + x1 * sin).to(q_ptr.dtype.element_ty))
        else:  # a key head, rotated into the cache, and its value head copied there
            j = head - HQ
            src = (bt * HKV + j) * 2 * HALF
            dst = ((b * HKV + j) * cap + pos) * 2 * HALF
            x1 = tl.load(k_ptr + src + d).to(tl.float32)
            x2 = tl.load(k_ptr + src + HALF + d).to(tl.float32)
            tl.store(kc_ptr + dst + d, (x1 * cos - x2 * sin).to(kc_ptr.dtype.element_ty))
            tl.store(kc_ptr + dst + HALF + d, (x2 * cos + x1 * sin).to(kc_ptr.dtype.element_ty))
            tl.store(vc_ptr + dst + d, tl.load(v_ptr + src + d))
            tl.store(vc_ptr + dst + HALF + d, tl.load(v_ptr + src + HALF + d))

    @triton.jit
    def silu_mul_kernel(g_ptr, u_ptr, y_ptr, n, BLOCK: tl.constexpr):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        u = tl.load(u_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        tl.store(y_ptr + offs, (g / (1.0 + tl.exp(-g)) * u).to(y_ptr.dtype.element_ty),
                 mask=mask)

    _FUSED.update(rms_norm=rms_norm_kernel, rope_cache=rope_cache_kernel,
                  silu_mul=silu_mul_kernel)
    return _FUSED


def rms_norm(torch: Any, x: Any, weight: Any, eps: float) -> Any:  # pragma: no cover - GPU
    """RMSNorm of the rows of ``x`` (contiguous, last dimension ``H``) in one pass: each row
    read once, ``x / sqrt(mean(x^2) + eps) * weight`` computed in fp32 and written."""
    import triton

    H = x.shape[-1]
    y = torch.empty_like(x)
    _fused_kernels()["rms_norm"][(x.numel() // H,)](
        x, weight, y, H, eps, BLOCK=triton.next_power_of_2(H), num_warps=8)
    return y


def rope_cache(q: Any, k: Any, v: Any, cos: Any, sin: Any, start: int, k_cache: Any,
               v_cache: Any) -> None:  # pragma: no cover - needs a GPU
    """One pass of rotary embedding and cache append (a serving engine's fused kernel): ``q``
    ``[B, T, HQ, D]`` rotated in place, ``k`` ``[B, T, HKV, D]`` rotated into ``k_cache`` and
    ``v`` copied into ``v_cache`` (``[B, HKV, cap, D]``) at positions ``start`` to ``start +
    T``; ``cos``/``sin`` ``[positions, D]``, both halves equal (Llama's rotate-half form)."""
    B, T, HQ, D = q.shape
    HKV = k.shape[2]
    _fused_kernels()["rope_cache"][(B * T, HQ + HKV)](
        q, k, v, cos, sin, k_cache, v_cache, T, start, k_cache.shape[2], HQ=HQ, HKV=HKV,
        HALF=D // 2, num_warps=1)


def silu_mul(torch: Any, gate: Any, up: Any) -> Any:  # pragma: no cover - needs a GPU
    """``silu(gate) * up`` in one pass (contiguous tensors of one shape)."""
    import triton

    y = torch.empty_like(gate)
    n = gate.numel()
    block = 2048
    _fused_kernels()["silu_mul"][(triton.cdiv(n, block),)](gate, up, y, n, BLOCK=block,
                                                          num_warps=8)
    return y
