"""Operators of a torch ``nn.Module``, found by running its forward pass on meta tensors.

:func:`trace_module` turns one forward pass of a model -- typically a Hugging Face
``transformers`` model built on the meta device, so it has shapes but no weights and costs no
memory -- into the same :data:`~models.ops.Op` list that :func:`models.llm.lower` builds from a
config: one entry per distinct operator, with ``count`` repetitions.

What is recorded (a ``torch.overrides.TorchFunctionMode`` sees every call; forward hooks on the
submodules say which module made it):

* ``torch.nn.functional.linear`` (every ``nn.Linear``) -> :class:`~models.ops.Gemm` named after
  the calling module's leaf name (``model.layers.3.self_attn.q_proj`` -> ``q_proj``; a numeric
  leaf keeps its parent: ``mlp.0``), ``M`` = rows of the input (tokens), ``N`` =
  ``out_features``, ``K`` = ``in_features``, B a weight;
* other matrix products (``matmul``/``@``, ``mm``, ``bmm``, ``addmm``, ``baddbmm``) ->
  :class:`~models.ops.Gemm` named after the calling module, ``count`` multiplied by the
  broadcast batch dimensions; B is a weight when it is an ``nn.Parameter``. Outer products
  (``K == 1``, e.g. RoPE's frequency table) are element-wise work and are left out;
* ``torch.nn.functional.scaled_dot_product_attention`` -> one :class:`~models.ops.Attention`
  named ``attention``: ``batch``, ``heads``, ``q_len``, ``kv_len``, ``qk_dim``, ``v_dim`` from the
  query/key/value shapes. ``kv_heads`` is the key tensor's head count, corrected by the calling
  module's ``config`` (``num_attention_heads``/``num_key_value_heads``) when the model repeated
  the key/value heads before the call (HF's ``repeat_kv``) or folded the query heads of a group
  into the query length (HF's decode-time ``pack_gqa``). ``causal``: the ``is_causal`` flag, a
  single query (``q_len == 1`` sees every cached key, as causal decode does), or a mask passed by
  a module whose ``is_causal`` attribute is true (a meta mask has no values to read).

Not recorded: element-wise and reduction work (norms, activations, softmax, RoPE, embedding
look-ups: :func:`models.llm.lower` lists them as :class:`~models.ops.Vector` ops), ``einsum``,
and attention written out as plain products (``attn_implementation="eager"``), which shows up as
activation GEMMs of the attention module instead of one ``attention`` op.

Formats come from the quantization scheme exactly as :func:`models.llm.lower` applies them,
``get_scheme(quant).for_op(name)`` per operator: a weight GEMM takes the scheme's ``a_fmt``,
``w_fmt``, ``w_group``, ``w_scale_bits``, ``a_scale_bits`` (output fp32 if an operand is floating
point, else int32); ``attention`` takes :func:`models.llm.attention_formats`' (queries in
``a_fmt`` if floating or block-scaled, else fp16; the cache in ``kv_fmt`` with
``kv_group``/``kv_scale_bits``/``kv_residual``). A product of two
activations (no weight) reads both in ``a_fmt`` with ``a_scale_bits``.

torch is an optional extra (``pip install -e '.[trace]'``); it is imported only when a trace
runs, and transformers is never imported here: HF models are recognised by their ``forward``
signature.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal

from models import ModelError
from models.formats import accumulator_format
from models.llm import attention_formats
from models.ops import Attention, Gemm, Op
from models.quant import QuantScheme, get_scheme

__all__ = ["trace_module"]

_NEEDS_TORCH = "trace: needs torch (pip install -e '.[trace]')"
#: Name of the attention operator, as :func:`models.llm.lower` calls it.
_ATTENTION = "attention"


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise ModelError(_NEEDS_TORCH) from None
    return torch


def _leaf(qualname: str, root: str) -> str:
    """``model.layers.3.self_attn.q_proj`` -> ``q_proj``; ``mlp.0`` stays ``mlp.0``."""
    if not qualname:
        return root
    parts = qualname.split(".")
    if parts[-1].isdigit() and len(parts) > 1:
        return ".".join(parts[-2:])
    return parts[-1]


def trace_module(
    module: Any,
    *,
    phase: Literal["prefill", "decode"],
    batch: int,
    seq: int,
    quant: str = "fp16",
    name: str | None = None,
) -> list[Op]:
    """The matrix products and attention of one forward pass of ``module``, as operators.

    ``module`` is a ``torch.nn.Module`` whose parameters and buffers are all on the meta device
    (build it under ``with torch.device("meta"):``); it is called on meta ``input_ids`` of
    shape ``(batch, seq)`` (prefill) and put back in the training mode it had.

    A Hugging Face causal LM (its ``forward`` takes ``input_ids`` and ``use_cache``) is called
    with ``use_cache=True`` and ``logits_to_keep=1`` (``num_logits_to_keep`` on older
    versions), so the LM head projects only the last token (``M = batch``) as ``lower`` counts
    it. Decode first runs, unrecorded, a prefill of ``seq`` tokens to fill the model's own KV
    cache with meta tensors, then records one new token per sequence against it (``kv_len =
    seq + 1``). Any other module is called as ``module(input_ids)`` and supports prefill only.

    Operators are listed in the order of their first call, equal calls merged into ``count``;
    see the module doc for what is recorded and how each is named. ``name`` labels the module
    in messages and names operators the root module calls itself (default: its class name).
    Raises :class:`ModelError` (one line) for bad arguments, a missing torch, a module not on
    the meta device, or a forward pass that needs real data.
    """
    if phase not in ("prefill", "decode"):
        raise ModelError(f"phase: must be 'prefill' or 'decode' (got {phase!r})")
    for field, value in (("batch", batch), ("seq", seq)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ModelError(f"{field}: must be an integer >= 1 (got {value!r})")
    scheme = get_scheme(quant)
    torch = _torch()
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module: expected a torch.nn.Module, got {type(module).__name__}")
    label = name if name is not None else type(module).__name__
    if not isinstance(label, str) or not label:
        raise ModelError(f"name: must be a non-empty string (got {name!r})")
    off_meta = [n for n, t in (*module.named_parameters(), *module.named_buffers())
                if t.device.type != "meta"]
    if off_meta:
        raise ModelError(
            f"trace {label}: {off_meta[0]} is on {_device_of(module, off_meta[0])}, not the meta "
            "device; build the module under `with torch.device('meta'):` or call .to('meta')"
        )

    params = inspect.signature(module.forward).parameters
    is_hf = "input_ids" in params and "use_cache" in params
    if phase == "decode" and not is_hf:
        raise ModelError(
            f"trace {label}: decode needs a module with a KV cache (a Hugging Face model whose "
            "forward takes input_ids, use_cache and cache/past_key_values); trace prefill instead"
        )

    recorder = _Recorder(torch, root=label)
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad():
            if is_hf:
                _run_hf(torch, module, params, recorder, phase=phase, batch=batch, seq=seq)
            else:
                ids = torch.zeros((batch, seq), dtype=torch.long, device="meta")
                with recorder.recording(module):
                    module(ids)
    except ModelError:
        raise
    except (RuntimeError, NotImplementedError, ValueError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(
            f"trace {label}: the forward pass failed on meta tensors ({type(err).__name__}: "
            f"{first}); the module must not need tensor values (e.g. .item() or data-dependent "
            "branches)"
        ) from None
    finally:
        for m, training in modes:
            m.training = training
    return recorder.ops(scheme)


def _device_of(module: Any, qualname: str) -> str:
    tensors = dict(module.named_parameters())
    tensors.update(dict(module.named_buffers()))
    return str(tensors[qualname].device)


def _run_hf(torch: Any, module: Any, params: Any, recorder: _Recorder, *, phase: str,
            batch: int, seq: int) -> None:
    """Prefill (or prefill then one decode step) of an HF causal LM, recording the last call."""
    extra: dict[str, Any] = {"use_cache": True}
    if "logits_to_keep" in params:
        extra["logits_to_keep"] = 1
    elif "num_logits_to_keep" in params:
        extra["num_logits_to_keep"] = 1
    prompt = torch.zeros((batch, seq), dtype=torch.long, device="meta")
    if phase == "prefill":
        with recorder.recording(module):
            module(input_ids=prompt, **extra)
        return
    out = module(input_ids=prompt, **extra)
    cache_arg = "cache" if "cache" in params else "past_key_values"
    cache = None
    for key in ("cache", "past_key_values"):
        if isinstance(out, dict) and out.get(key) is not None:
            cache = out[key]
            break
    if cache is None:
        raise ModelError("trace: the model returned no KV cache after prefill (use_cache=True); "
                         "decode cannot be traced")
    step = torch.zeros((batch, 1), dtype=torch.long, device="meta")
    with recorder.recording(module):
        module(input_ids=step, **{cache_arg: cache}, **extra)


class _Recorder:
    """Collects calls as ``(kind, key)`` records while a forward pass runs."""

    def __init__(self, torch: Any, *, root: str) -> None:
        self._torch = torch
        self._root = root
        self._stack: list[tuple[str, Any]] = []
        self._records: list[tuple[str, tuple[Any, ...]]] = []
        F = torch.nn.functional
        T = torch.Tensor
        self._linear = {F.linear}
        self._matmul = {torch.matmul, T.matmul, T.__matmul__, torch.mm, T.mm, torch.bmm, T.bmm}
        self._rmatmul = {T.__rmatmul__}
        self._addmm = {torch.addmm, T.addmm}
        self._baddbmm = {torch.baddbmm, T.baddbmm}
        self._sdpa = {F.scaled_dot_product_attention}

    # ---- context: hooks on every submodule, a function mode around the call

    def recording(self, module: Any) -> Any:
        torch = self._torch
        recorder = self
        # torch is a value here, not an imported module: name the base class through a variable
        mode_base: Any = torch.overrides.TorchFunctionMode

        class _Mode(mode_base):
            def __torch_function__(self, func: Callable[..., Any], types: Any,
                                   args: tuple[Any, ...] = (),
                                   kwargs: dict[str, Any] | None = None) -> Any:
                kwargs = kwargs or {}
                recorder._see(func, args, kwargs)
                return func(*args, **kwargs)

        class _Context:
            def __enter__(self) -> None:
                recorder._stack.clear()
                self.handles = []
                for qualname, sub in module.named_modules():
                    self.handles.append(sub.register_forward_pre_hook(recorder._enter(qualname)))
                    self.handles.append(sub.register_forward_hook(recorder._leave))
                self.mode = _Mode()
                self.mode.__enter__()

            def __exit__(self, *exc: object) -> None:
                self.mode.__exit__(*exc)
                for h in self.handles:
                    h.remove()
                recorder._stack.clear()

        return _Context()

    # ---- hooks (they must return None: a value would replace the module's input or output)

    def _enter(self, qualname: str) -> Callable[..., None]:
        def hook(sub: Any, _args: Any) -> None:
            self._stack.append((qualname, sub))
        return hook

    def _leave(self, _sub: Any, _args: Any, _out: Any) -> None:
        if self._stack:
            self._stack.pop()

    # ---- one call

    def _caller(self) -> tuple[str, Any]:
        return self._stack[-1] if self._stack else ("", None)

    def _see(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if func in self._linear:
            x, w = _arg(args, kwargs, 0, "input"), _arg(args, kwargs, 1, "weight")
            n, k = w.shape[-2], w.shape[-1]
            self._gemm(m=x.numel() // max(k, 1), n=n, k=k, count=1, weight=True)
        elif func in self._matmul:
            self._product(_arg(args, kwargs, 0, "input"), _arg(args, kwargs, 1, "other"))
        elif func in self._rmatmul:
            self._product(_arg(args, kwargs, 1, "other"), _arg(args, kwargs, 0, "input"))
        elif func in self._addmm:
            self._product(_arg(args, kwargs, 1, "mat1"), _arg(args, kwargs, 2, "mat2"))
        elif func in self._baddbmm:
            self._product(_arg(args, kwargs, 1, "batch1"), _arg(args, kwargs, 2, "batch2"))
        elif func in self._sdpa:
            self._attention(args, kwargs)

    def _product(self, a: Any, b: Any) -> None:
        torch = self._torch
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return
        if a.dim() == 0 or b.dim() == 0:
            return
        a_shape = tuple(a.shape) if a.dim() > 1 else (1, a.shape[0])
        b_shape = tuple(b.shape) if b.dim() > 1 else (b.shape[0], 1)
        m, k = a_shape[-2], a_shape[-1]
        n = b_shape[-1]
        batch = torch.broadcast_shapes(a_shape[:-2], b_shape[:-2])
        count = math.prod(batch)
        if a.dim() > 2 and b.dim() == 2 and isinstance(b, torch.nn.Parameter):
            m, count = m * count, 1  # activations times a weight: one GEMM over all rows
        self._gemm(m=m, n=n, k=k, count=count, weight=isinstance(b, torch.nn.Parameter))

    def _gemm(self, *, m: int, n: int, k: int, count: int, weight: bool) -> None:
        if k <= 1 or m < 1 or n < 1 or count < 1:
            return  # outer products are element-wise work; empty products do nothing
        qualname, _ = self._caller()
        name = _leaf(qualname, self._root)
        self._records.append(("gemm", (name, int(m), int(n), int(k), weight, int(count))))

    def _attention(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        q, k, v = (_arg(args, kwargs, i, key) for i, key in enumerate(("query", "key", "value")))
        mask = _arg(args, kwargs, 3, "attn_mask", None)
        is_causal = bool(_arg(args, kwargs, 5, "is_causal", False))
        q_shape, k_shape, v_shape = tuple(q.shape), tuple(k.shape), tuple(v.shape)
        q_len, kv_len = q_shape[-2], k_shape[-2]
        qk_dim, v_dim = q_shape[-1], v_shape[-1]
        heads = q_shape[-3] if q.dim() >= 4 else 1
        kv_heads = k_shape[-3] if k.dim() >= 4 else 1
        batch = math.prod(q_shape[:-3]) if q.dim() >= 4 else (q_shape[0] if q.dim() == 3 else 1)
        _, caller = self._caller()
        cfg_heads, cfg_kv = _head_counts(caller)
        if cfg_heads and cfg_kv and cfg_kv < cfg_heads:
            group = cfg_heads // cfg_kv
            if heads == cfg_heads and kv_heads in (cfg_heads, cfg_kv):
                kv_heads = cfg_kv  # keys/values repeated per query head (repeat_kv), or GQA
            elif heads == kv_heads == cfg_kv and q_len % group == 0:
                heads, q_len = cfg_heads, q_len // group  # a group's queries folded into q_len
        causal = is_causal or q_len == 1 or (mask is not None
                                             and bool(getattr(caller, "is_causal", False)))
        self._records.append(("attention", (batch, heads, kv_heads, q_len, kv_len, qk_dim, v_dim,
                                            causal)))

    # ---- result

    def ops(self, scheme: QuantScheme) -> list[Op]:
        counts: dict[Op, int] = {}
        for kind, key in self._records:
            op: Op
            if kind == "gemm":
                name, m, n, k, weight, count = key
                op = _gemm_op(scheme, name=name, m=m, n=n, k=k, weight=weight)
                counts[op] = counts.get(op, 0) + count
            else:
                op = _attention_op(scheme, *key)
                counts[op] = counts.get(op, 0) + 1
        return [replace(op, count=c) for op, c in counts.items()]


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, key: str,
         default: Any = ...) -> Any:
    if index < len(args):
        return args[index]
    if key in kwargs:
        return kwargs[key]
    if default is ...:
        raise ModelError(f"trace: a call is missing its {key!r} argument")
    return default


def _head_counts(module: Any) -> tuple[int, int]:
    """Query and key/value heads from an attention module's ``config`` (0 when unknown)."""
    cfg = getattr(module, "config", None)
    heads = getattr(cfg, "num_attention_heads", None)
    kv = getattr(cfg, "num_key_value_heads", None) or heads
    if isinstance(heads, int) and isinstance(kv, int) and heads > 0 and kv > 0:
        return heads, kv
    return 0, 0


def _gemm_op(scheme: QuantScheme, *, name: str, m: int, n: int, k: int, weight: bool) -> Gemm:
    s = scheme.for_op(name)
    if weight:
        return Gemm(name=name, M=m, N=n, K=k, a_fmt=s.a_fmt, w_fmt=s.w_fmt,
                    o_fmt=accumulator_format(s.a_fmt, s.w_fmt), w_group=s.w_group,
                    w_scale_bits=s.w_scale_bits, a_scale_bits=s.a_scale_bits,
                    a_group=s.a_group, w_scale_fmt=s.w_scale_fmt, a_scale_fmt=s.a_scale_fmt)
    # both operands are activations: stored and scaled alike
    return Gemm(name=name, M=m, N=n, K=k, a_fmt=s.a_fmt, w_fmt=s.a_fmt,
                o_fmt=accumulator_format(s.a_fmt), b_is_weight=False,
                w_scale_bits=s.a_scale_bits, w_group=s.a_group, a_scale_bits=s.a_scale_bits,
                a_group=s.a_group, w_scale_fmt=s.a_scale_fmt, a_scale_fmt=s.a_scale_fmt)


def _attention_op(scheme: QuantScheme, batch: int, heads: int, kv_heads: int, q_len: int,
                  kv_len: int, qk_dim: int, v_dim: int, causal: bool) -> Attention:
    # the formats lower() runs attention in (block-scaled activations' queries too)
    return Attention(name=_ATTENTION, batch=batch, heads=heads, kv_heads=kv_heads, q_len=q_len,
                     kv_len=kv_len, qk_dim=qk_dim, v_dim=v_dim, causal=causal,
                     **attention_formats(scheme))
