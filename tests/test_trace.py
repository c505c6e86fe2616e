"""models.trace: a torch module traced on meta tensors gives the operators lower() lists."""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

import pytest

from models import ModelError
from models.llm import ModelConfig, load_model, lower
from models.ops import Attention, Gemm, Vector
from models.trace import trace_module


def _torch() -> Any:
    return pytest.importorskip("torch")


def _hf_llama(cfg: ModelConfig) -> Any:
    """A transformers LlamaForCausalLM with ``cfg``'s shapes on the meta device (no weights)."""
    torch = _torch()
    transformers = pytest.importorskip("transformers")
    hf = transformers.LlamaConfig(
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        head_dim=cfg.head_dim,
        vocab_size=cfg.vocab_size,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=cfg.tie_word_embeddings,
    )
    with torch.device("meta"):
        return transformers.LlamaForCausalLM(hf)


@pytest.fixture(scope="module")
def llama7b() -> tuple[ModelConfig, Any]:
    cfg = load_model("llama-2-7b")
    return cfg, _hf_llama(cfg)


def _by_name(ops: list[Any]) -> dict[str, Any]:
    kept = [op for op in ops if isinstance(op, Gemm | Attention)]
    out = {op.name: op for op in kept}
    assert len(out) == len(kept), [op.name for op in kept]  # one entry per operator name
    return out


@pytest.mark.parametrize("quant", ["fp16", "w8a8", "w4a8-mixed", "w4a16+kv4", "mxint8"])
@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_llama_trace_matches_lower(llama7b: tuple[ModelConfig, Any], phase: str,
                                   quant: str) -> None:
    cfg, model = llama7b
    traced = trace_module(model, phase=phase, batch=2, seq=16, quant=quant)
    lowered = lower(cfg, phase=phase, batch=2, seq=16, quant=quant)
    assert not any(isinstance(op, Vector) for op in traced)
    assert _by_name(traced) == _by_name(lowered)


@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_llama_trace_shapes(llama7b: tuple[ModelConfig, Any], phase: str) -> None:
    """The traced shapes, spelled out from the config (independent of lower)."""
    cfg, model = llama7b
    batch, seq = 2, 16
    ops = _by_name(trace_module(model, phase=phase, batch=batch, seq=seq))
    tokens = batch * seq if phase == "prefill" else batch
    h, i, L = cfg.hidden_size, cfg.intermediate_size, cfg.num_layers
    expected = {
        "q_proj": (tokens, cfg.q_size, h, L), "k_proj": (tokens, cfg.kv_size, h, L),
        "v_proj": (tokens, cfg.kv_size, h, L), "o_proj": (tokens, h, cfg.q_size, L),
        "gate_proj": (tokens, i, h, L), "up_proj": (tokens, i, h, L),
        "down_proj": (tokens, h, i, L), "lm_head": (batch, cfg.vocab_size, h, 1),
    }
    gemms = {n: (op.M, op.N, op.K, op.count) for n, op in ops.items() if isinstance(op, Gemm)}
    assert gemms == expected
    assert all(op.b_is_weight and (op.a_fmt, op.w_fmt, op.o_fmt) == ("fp16", "fp16", "fp32")
               for op in ops.values() if isinstance(op, Gemm))
    att = ops["attention"]
    q_len, kv_len = (seq, seq) if phase == "prefill" else (1, seq + 1)
    assert (att.batch, att.heads, att.kv_heads, att.q_len, att.kv_len, att.qk_dim, att.v_dim,
            att.causal, att.count) == (batch, cfg.num_heads, cfg.num_kv_heads, q_len, kv_len,
                                       cfg.head_dim, cfg.head_dim, True, L)
    assert list(ops) == ["q_proj", "k_proj", "v_proj", "attention", "o_proj", "gate_proj",
                         "up_proj", "down_proj", "lm_head"]  # order of first call


@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_grouped_query_attention(phase: str) -> None:
    cfg = ModelConfig(name="tiny-gqa", hidden_size=64, intermediate_size=96, num_layers=2,
                      num_heads=8, num_kv_heads=2, head_dim=8, vocab_size=50,
                      max_position_embeddings=64)
    model = _hf_llama(cfg)
    att = _by_name(trace_module(model, phase=phase, batch=3, seq=5))["attention"]
    assert (att.heads, att.kv_heads, att.batch, att.count) == (8, 2, 3, 2)
    assert (att.q_len, att.kv_len) == ((5, 5) if phase == "prefill" else (1, 6))


def _sdpa_module(torch: Any, *, fold: bool) -> Any:
    """Attention over 8 query heads and 2 KV heads written the two ways HF may hand it to SDPA:
    KV heads repeated per query head, or (one query) the group's queries folded into q_len."""
    F = torch.nn.functional

    class Attn(torch.nn.Module):
        is_causal = True

        def __init__(self) -> None:
            super().__init__()
            self.config = SimpleNamespace(num_attention_heads=8, num_key_value_heads=2)

        def forward(self, x: Any) -> Any:
            b = x.shape[0]
            k = torch.zeros((b, 2, 7, 16), device="meta")
            if fold:
                q = torch.zeros((b, 2, 4, 16), device="meta")  # 8 heads x 1 query
                return F.scaled_dot_product_attention(q, k, k)
            q = torch.zeros((b, 8, 7, 16), device="meta")
            k = k.repeat_interleave(4, dim=1)
            return F.scaled_dot_product_attention(q, k, k, is_causal=True)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.self_attn = Attn()

        def forward(self, ids: Any) -> Any:
            return self.self_attn(ids)

    return Net()


@pytest.mark.parametrize("fold", [False, True])
def test_kv_heads_from_module_config(fold: bool) -> None:
    torch = _torch()
    (att,) = trace_module(_sdpa_module(torch, fold=fold), phase="prefill", batch=2, seq=7)
    assert isinstance(att, Attention)
    assert (att.batch, att.heads, att.kv_heads, att.kv_len, att.causal) == (2, 8, 2, 7, True)
    assert att.q_len == (1 if fold else 7)


def _custom_net(torch: Any) -> Any:
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(100, 32)
            self.mlp = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 32))
            self.adapter = nn.Linear(32, 48, bias=False)
            self.mixer = nn.Parameter(torch.empty(48, 24))

        def forward(self, ids: Any) -> Any:
            x = self.adapter(self.mlp(self.embed(ids)))
            y = x @ self.mixer  # a weight used through matmul, by the root module
            scores = y @ y.transpose(-1, -2)  # activations times activations
            return scores

    with torch.device("meta"):
        return Net()


def test_unknown_linears_keep_their_names() -> None:
    torch = _torch()
    net = _custom_net(torch)
    net.train()
    ops = trace_module(net, phase="prefill", batch=2, seq=5, quant="w8a8", name="net")
    assert [(op.name, op.M, op.N, op.K, op.count, op.b_is_weight) for op in ops] == [
        ("mlp.0", 10, 64, 32, 1, True),
        ("mlp.2", 10, 32, 64, 1, True),
        ("adapter", 10, 48, 32, 1, True),
        ("net", 10, 24, 48, 1, True),
        ("net", 5, 5, 24, 2, False),
    ]
    assert all((op.a_fmt, op.o_fmt, op.a_scale_bits) == ("int8", "int32", 16) for op in ops)
    assert [op.w_fmt for op in ops] == ["int8"] * 5
    assert net.training and all(m.training for m in net.modules())  # mode given back


def test_decode_needs_a_kv_cache() -> None:
    torch = _torch()
    with pytest.raises(ModelError, match=r"^trace Net: decode needs a module with a KV cache"):
        trace_module(_custom_net(torch), phase="decode", batch=1, seq=4)


def test_module_off_meta_is_refused() -> None:
    torch = _torch()
    lin = torch.nn.Linear(4, 4)
    with pytest.raises(ModelError, match=r"^trace Linear: weight is on cpu, not the meta"):
        trace_module(lin, phase="prefill", batch=1, seq=1)


def test_data_dependent_forward_is_one_line() -> None:
    torch = _torch()

    class Branchy(torch.nn.Module):
        def forward(self, ids: Any) -> Any:
            return ids + 1 if ids.sum().item() > 0 else ids

    with pytest.raises(ModelError, match=r"^trace Branchy: the forward pass failed on meta") as e:
        trace_module(Branchy(), phase="prefill", batch=1, seq=2)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"phase": "train"}, r"^phase: must be 'prefill' or 'decode' \(got 'train'\)$"),
    ({"batch": 0}, r"^batch: must be an integer >= 1 \(got 0\)$"),
    ({"seq": True}, r"^seq: must be an integer >= 1 \(got True\)$"),
    ({"quant": "w99"}, r"unknown scheme 'w99'"),
])
def test_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"phase": "prefill", "batch": 1, "seq": 1, **kwargs}
    with pytest.raises(ModelError, match=match):
        trace_module(object(), **args)


def test_missing_torch_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    with pytest.raises(ModelError, match=r"^trace: needs torch \(pip install -e '\.\[trace\]'\)$"):
        trace_module(object(), phase="prefill", batch=1, seq=1)
