"""The model zoo: every bundled config loads, matches its published size and lowers; the
families beyond Llama (Mixtral's experts, OPT, DeepSeek-V2's MLA and shared experts) and their
config errors."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from zoo_helpers import attn, gemm, lowered, one_line, vec

from models import ModelError
from models.llm import (
    SUPPORTED_MODEL_TYPES,
    ModelConfig,
    expected_active_experts,
    kv_cache_bytes,
    load_model,
    op_names,
    weight_bytes,
    zoo_models,
)
from models.ops import Gemm

CONFIGS = Path(__file__).parents[1] / "models" / "configs"

# Published parameter counts, typed here once from the model cards / papers / HF hub pages.
PUBLISHED_PARAMS = {
    "llama-2-7b": 6.74e9,
    "llama-2-13b": 13.0e9,
    "llama-2-70b": 70e9,  # Llama 2 paper (HF: 69B)
    "llama-3-8b": 8.0e9,
    "llama-3-70b": 70.6e9,
    "mistral-7b": 7.24e9,
    "mixtral-8x7b": 46.7e9,  # Mixtral paper: 47B total, 13B active
    "opt-6.7b": 6.7e9,
    "opt-30b": 30e9,
    "opt-66b": 66e9,
    "opt-175b": 175e9,
    "deepseek-v2-lite": 15.7e9,  # DeepSeek-V2 paper: 15.7B total, 2.4B activated
}
PUBLISHED_ACTIVE = {"mixtral-8x7b": 12.9e9, "deepseek-v2-lite": 2.4e9}
SCHEMES = ("fp16", "w8a8", "w4a16+kv4", "w4a8-mixed", "fp8", "w4a4kv4")


def matrix_params_per_token(cfg: ModelConfig) -> int:
    """Weights of the layer GEMMs one token multiplies with (routed experts: the k it picks),
    from the config's numbers alone. MLA decode: kv_b_proj is absorbed (same weights)."""
    h, i, L = cfg.hidden_size, cfg.intermediate_size, cfg.num_layers
    if cfg.mla is not None:
        m, H = cfg.mla, cfg.num_heads
        q = h * m.q_lora_rank + m.q_lora_rank * H * m.qk_head_dim if m.q_lora_rank else (
            h * H * m.qk_head_dim)
        attn_w = q + h * (m.kv_lora_rank + m.qk_rope_head_dim)
        attn_w += m.kv_lora_rank * H * (m.qk_nope_head_dim + m.v_head_dim)
        attn_w += H * m.v_head_dim * h
    else:
        attn_w = 2 * h * cfg.q_size + 2 * h * cfg.kv_size
    dense_mlp = (2 if cfg.family == "opt" else 3) * h * i
    if cfg.moe is None:
        return L * (attn_w + dense_mlp)
    moe = cfg.moe
    moe_mlp = h * moe.num_experts + 3 * h * moe.intermediate_size * (
        moe.experts_per_tok + moe.num_shared_experts)
    return L * attn_w + cfg.num_dense_layers * dense_mlp + cfg.num_moe_layers * moe_mlp


# ------------------------------------------------------------------------------------------
# Every zoo model


def test_zoo_has_the_models_of_the_issue() -> None:
    assert set(zoo_models()) == set(PUBLISHED_PARAMS)
    for name in zoo_models():
        raw = json.loads((CONFIGS / f"{name}.json").read_text(encoding="utf-8"))
        assert raw["model_type"] in SUPPORTED_MODEL_TYPES
        assert raw["_source"].startswith("https://")


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_num_params_match_published_sizes(name: str) -> None:
    cfg = load_model(name)
    assert cfg.num_params == pytest.approx(PUBLISHED_PARAMS[name], rel=0.02)
    if name in PUBLISHED_ACTIVE:
        active = cfg.active_params
        if name == "deepseek-v2-lite":  # DeepSeek counts activated params without the embedding
            active -= cfg.vocab_size * cfg.hidden_size
        assert active == pytest.approx(PUBLISHED_ACTIVE[name], rel=0.03)
    else:
        assert cfg.active_params == cfg.num_params
    # every parameter (all experts) is stored: fp16 weighs 2 bytes each
    assert weight_bytes(cfg, "fp16") == 2 * cfg.num_params
    assert weight_bytes(cfg, "w4a16") < weight_bytes(cfg, "w8a16") < weight_bytes(cfg)


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_every_model_lowers(name: str, phase: str) -> None:
    cfg = load_model(name)
    for quant in SCHEMES:
        ops = lowered(cfg, phase=phase, batch=2, seq=300, quant=quant)
        names = list(ops)  # unique: lowered() checks
        assert names[0] == "embedding" and names[-2:] == ["lm_head", "sampling"]
        assert names.index("final_norm") > names.index("attention")
        assert tuple(names) == op_names(cfg, phase=phase, quant=quant)  # type: ignore[arg-type]
        for op in ops.values():
            assert op.count in (1, cfg.num_layers, cfg.num_dense_layers, cfg.num_moe_layers) or (
                op.name in ("expert_gate", "expert_up", "expert_down", "q_absorb", "v_absorb"))
        assert attn(ops).count == cfg.num_layers


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_weight_macs_are_tokens_times_weights_used(name: str) -> None:
    """Sum of the layers' weight-GEMM MACs = T x (weights a token multiplies with). T=1 decode
    and a long prompt (every expert busy, ``T*k`` divisible by ``E``) make it exact."""
    cfg = load_model(name)
    for phase, batch, seq, T in (("decode", 1, 100, 1), ("decode", 3, 100, 3),
                                 ("prefill", 1, 2048, 2048)):
        ops = lowered(cfg, phase=phase, batch=batch, seq=seq)
        macs = sum(op.macs for op in ops.values()
                   if isinstance(op, Gemm) and op.b_is_weight and op.name != "lm_head")
        expected = T * matrix_params_per_token(cfg)
        if cfg.moe is not None and T == 3:
            # 3 tokens: the ceil(E_act) touched experts get ceil(T k / ceil(E_act)) rows each,
            # a padded upper bound (Mixtral 5 x 2 rows for 6, DeepSeek 17 x 2 for 18)
            assert expected <= macs < 2 * expected
        else:
            assert macs == expected
        assert ops["lm_head"].macs == batch * cfg.vocab_size * cfg.hidden_size


# ------------------------------------------------------------------------------------------
# Mixture of experts


def test_expected_active_experts() -> None:
    assert expected_active_experts(8, 2, 1) == pytest.approx(2)
    assert expected_active_experts(64, 6, 1) == pytest.approx(6)
    assert expected_active_experts(8, 2, 2) == pytest.approx(8 * (1 - 0.75**2))
    assert expected_active_experts(8, 2, 10_000) == pytest.approx(8)
    values = [expected_active_experts(64, 6, t) for t in range(1, 200)]
    assert values == sorted(values) and values[-1] < 64
    with pytest.raises(ModelError, match=r"^experts_per_tok: 9 exceeds num_experts 8; "):
        expected_active_experts(8, 9, 1)


def test_mixtral_experts() -> None:
    cfg = load_model("mixtral-8x7b")
    assert cfg.moe is not None and (cfg.moe.num_experts, cfg.moe.experts_per_tok) == (8, 2)
    assert cfg.num_moe_layers == 32 and cfg.num_dense_layers == 0
    h, mi, L = 4096, 14336, 32
    # one token: exactly its k = 2 experts, one row each
    ops = lowered(cfg, phase="decode", batch=1, seq=10)
    for n in ("expert_gate", "expert_up", "expert_down"):
        assert (gemm(ops, n).M, gemm(ops, n).count) == (1, L * 2)
    assert "gate_proj" not in ops and "mlp_residual" not in ops
    r = gemm(ops, "router")
    assert (r.M, r.N, r.K, r.count) == (1, 8, h, L)
    assert (vec(ops, "topk").kind, vec(ops, "topk").elems) == ("router", 8)
    assert vec(ops, "expert_act").elems == 2 * mi
    assert (vec(ops, "moe_residual").elems, vec(ops, "moe_residual").reads) == (h, 3)
    # 4 sequences: E_act = 8 (1 - 0.75^4) = 5.47 -> 6 experts of ceil(8 / 6) = 2 rows
    ops = lowered(cfg, phase="decode", batch=4, seq=10)
    assert (gemm(ops, "expert_up").M, gemm(ops, "expert_up").count) == (2, L * 6)
    assert vec(ops, "expert_act").elems == 4 * 2 * mi
    # a long prompt: every expert, T k / E rows each
    ops = lowered(cfg, phase="prefill", batch=1, seq=1000)
    assert (gemm(ops, "expert_down").M, gemm(ops, "expert_down").count) == (250, L * 8)
    assert (gemm(ops, "expert_down").N, gemm(ops, "expert_down").K) == (h, mi)
    # GQA attention as Mistral's (no window in Mixtral's config)
    assert cfg.sliding_window is None
    assert attn(lowered(cfg, phase="decode", batch=1, seq=9000)).kv_len == 9001


def test_mistral_sliding_window() -> None:
    cfg = load_model("mistral-7b")
    assert cfg.sliding_window == 4096 and cfg.max_position_embeddings == 32768
    assert attn(lowered(cfg, phase="decode", batch=1, seq=9000)).kv_len == 4096
    assert attn(lowered(cfg, phase="prefill", batch=1, seq=9000)).kv_len == 9000
    assert kv_cache_bytes(cfg, batch=1, seq=9000) == 32 * 4096 * 2 * 1024 * 2


# ------------------------------------------------------------------------------------------
# OPT


def test_opt_ops() -> None:
    cfg = load_model("opt-6.7b")
    assert (cfg.family, cfg.intermediate_size, cfg.num_kv_heads, cfg.head_dim) == (
        "opt", 16384, 32, 128)
    assert cfg.tie_word_embeddings and cfg.attention_bias and cfg.mlp_bias
    assert cfg.learned_positions == 2050
    assert op_names(cfg) == (
        "embedding", "pos_embedding", "input_norm", "q_proj", "k_proj", "v_proj", "attention",
        "o_proj", "attn_residual", "post_norm", "fc1", "act", "fc2", "mlp_residual",
        "final_norm", "lm_head", "sampling",
    )
    assert op_names(cfg, quant="w8a8") == (
        "embedding", "pos_embedding", "input_norm", "quant_qkv", "q_proj", "k_proj", "v_proj",
        "kv_quant", "attention", "quant_o", "o_proj", "attn_residual", "post_norm", "quant_mlp",
        "fc1", "act", "quant_down", "fc2", "mlp_residual", "final_norm", "quant_head",
        "lm_head", "sampling",
    )
    h, f, T = 4096, 16384, 2 * 64
    ops = lowered(cfg, phase="prefill", batch=2, seq=64)
    assert (gemm(ops, "fc1").N, gemm(ops, "fc1").K, gemm(ops, "fc2").N, gemm(ops, "fc2").K) == (
        f, h, h, f)
    # LayerNorm: 5 ops per element, weight and bias; ReLU + bias; residual + bias
    assert (vec(ops, "input_norm").ops_per_elem, vec(ops, "input_norm").table_bytes) == (5, 4 * h)
    assert (vec(ops, "act").elems, vec(ops, "act").ops_per_elem, vec(ops, "act").reads) == (
        T * f, 2, 1)
    assert vec(ops, "act").table_bytes == 2 * f
    assert vec(ops, "mlp_residual").ops_per_elem == 2
    assert (vec(ops, "pos_embedding").kind, vec(ops, "pos_embedding").elems) == (
        "embedding", T * h)
    a = attn(ops)
    assert (a.heads, a.kv_heads, a.qk_dim) == (32, 32, 128)
    # tied head: num_params counts the table once, plus 2050 learned positions
    L = 32
    layer = 4 * h * h + 4 * h + 2 * h * f + f + h + 2 * 2 * h
    assert cfg.num_params == 50272 * h + 2050 * h + L * layer + 2 * h
    assert kv_cache_bytes(cfg, batch=1, seq=2048) == L * 2 * h * 2048 * 2


# ------------------------------------------------------------------------------------------
# DeepSeek-V2: MLA and shared experts


def test_deepseek_v2_lite_shapes() -> None:
    cfg = load_model("deepseek-v2-lite")
    assert cfg.mla is not None and cfg.moe is not None
    m, moe = cfg.mla, cfg.moe
    assert (m.kv_lora_rank, m.q_lora_rank, m.qk_nope_head_dim, m.qk_rope_head_dim,
            m.v_head_dim) == (512, 0, 128, 64, 128)
    assert (moe.num_experts, moe.experts_per_tok, moe.num_shared_experts,
            moe.intermediate_size, moe.first_dense_layers) == (64, 6, 2, 1408, 1)
    assert (cfg.num_dense_layers, cfg.num_moe_layers, cfg.head_dim) == (1, 26, 192)
    h, H, L, T = 2048, 16, 27, 3 * 50
    ops = lowered(cfg, phase="prefill", batch=3, seq=50)
    shapes = {n: (g.M, g.N, g.K, g.count) for n, g in ops.items() if isinstance(g, Gemm)}
    assert shapes["q_proj"] == (T, H * 192, h, L)
    assert shapes["kv_a_proj"] == (T, 512 + 64, h, L)
    assert shapes["kv_b_proj"] == (T, H * (128 + 128), 512, L)
    assert shapes["o_proj"] == (T, h, H * 128, L)
    assert shapes["gate_proj"] == (T, 10944, h, 1)  # the first, dense layer
    assert shapes["router"] == (T, 64, h, 26)
    assert shapes["shared_gate"] == (T, 2 * 1408, h, 26)
    assert shapes["shared_down"] == (T, h, 2 * 1408, 26)
    n_act = math.ceil(64 * (1 - (1 - 6 / 64) ** T))
    assert shapes["expert_gate"] == (math.ceil(T * 6 / n_act), 1408, h, 26 * n_act)
    assert vec(ops, "kv_a_norm").elems == T * 512
    assert vec(ops, "rope").elems == T * (H + 1) * 64  # per-head query part + shared key
    assert vec(ops, "act").count == 1 and vec(ops, "expert_act").count == 26
    a = attn(ops)
    assert (a.heads, a.kv_heads, a.qk_dim, a.v_dim, a.kv_shared) == (H, H, 192, 128, False)
    names = list(ops)
    assert names.index("post_norm") < names.index("gate_proj") < names.index("router")


def test_deepseek_v2_absorbed_decode() -> None:
    cfg = load_model("deepseek-v2-lite")
    H, L, b, s = 16, 27, 4, 1000
    ops = lowered(cfg, phase="decode", batch=b, seq=s, quant="w8a8")
    assert "kv_b_proj" not in ops
    qa, va = gemm(ops, "q_absorb"), gemm(ops, "v_absorb")
    assert (qa.M, qa.N, qa.K, qa.count, qa.b_is_weight) == (b, 512, 128, L * H, True)
    assert (va.M, va.N, va.K, va.count, va.b_is_weight) == (b, 128, 512, L * H, True)
    names = list(ops)
    assert names.index("q_absorb") < names.index("attention") < names.index("v_absorb")
    assert names.index("v_absorb") < names.index("o_proj")
    assert gemm(ops, "o_proj").K == H * 128
    a = attn(ops)
    assert (a.heads, a.kv_heads, a.qk_dim, a.v_dim, a.kv_shared) == (H, 1, 576, 512, True)
    assert (a.q_len, a.kv_len, a.kv_fmt) == (1, s + 1, "int8")
    # the cache holds kv_lora_rank + qk_rope_head_dim = 576 elements per token and layer
    assert vec(ops, "kv_quant").elems == b * 576
    assert a.kv_bytes() == b * (s + 1) * 576 * (8 + 16 / 128) / 8  # int8, fp16 scale per 128
    assert kv_cache_bytes(cfg, batch=b, seq=s) == L * b * s * 576 * 2
    # ~8.9x smaller than the decompressed per-head K (192 wide) and V (128) would be
    assert kv_cache_bytes(cfg, batch=1, seq=s) * 8 < L * s * H * (192 + 128) * 2
    assert cfg.kv_cache_width == 576


def test_mla_with_query_compression(tmp_path: Path) -> None:
    raw = json.loads((CONFIGS / "deepseek-v2-lite.json").read_text(encoding="utf-8"))
    raw.update(q_lora_rank=1536, n_routed_experts=None)
    p = tmp_path / "config.json"
    p.write_text(json.dumps(raw), encoding="utf-8")
    cfg = load_model(p)
    assert cfg.moe is None and cfg.num_dense_layers == 27
    ops = lowered(cfg, phase="prefill", batch=1, seq=8, quant="w8a8")
    names = list(ops)
    assert "q_proj" not in ops and "router" not in ops
    for a, b in (("quant_qkv", "q_a_proj"), ("q_a_proj", "q_a_norm"), ("q_a_norm", "quant_q_b"),
                 ("quant_q_b", "q_b_proj"), ("q_b_proj", "kv_a_proj")):
        assert names.index(a) < names.index(b)
    assert (gemm(ops, "q_a_proj").N, gemm(ops, "q_b_proj").K) == (1536, 1536)
    assert gemm(ops, "q_b_proj").N == 16 * 192
    h, mi, q = 2048, 1408, 16 * 192
    moe_minus_dense = 64 * 3 * h * mi + 64 * h + 2 * 3 * h * mi - 3 * h * 10944
    q_lora_minus_q = h * 1536 + 1536 + 1536 * q - h * q
    lite = load_model("deepseek-v2-lite").num_params
    assert cfg.num_params == lite - 26 * moe_minus_dense + 27 * q_lora_minus_q


# ------------------------------------------------------------------------------------------
# Config errors per family: one line naming the key and the fix


def broken(tmp_path: Path, zoo: str, **changes: object) -> Path:
    raw = json.loads((CONFIGS / f"{zoo}.json").read_text(encoding="utf-8"))
    for k, v in changes.items():
        if v is KeyError:
            del raw[k]
        else:
            raw[k] = v
    p = tmp_path / "config.json"
    p.write_text(json.dumps(raw), encoding="utf-8")
    return p


def _missing(key: str, model_type: str, needs: str) -> tuple[dict[str, object], str]:
    return {key: KeyError}, (rf"missing required key '{key}' \(model_type '{model_type}'\); "
                             rf"add it: {model_type} configs need {needs}")


def _not_positive(key: str, value: object, shown: str) -> tuple[dict[str, object], str]:
    return {key: value}, rf"{key}: must be a positive integer \(got {shown}\)"


#: Per zoo config: (changes to its JSON, the error after "<path>: " as a regex).
CONFIG_ERRORS: dict[str, list[tuple[dict[str, object], str]]] = {
    "mixtral-8x7b": [
        _missing("num_experts_per_tok", "mixtral", ".*num_local_experts, num_experts_per_tok"),
        ({"num_experts_per_tok": 9},
         r"num_experts_per_tok: 9 exceeds num_local_experts 8; use at most 8"),
        _not_positive("num_local_experts", "8", "'8'"),
    ],
    "opt-6.7b": [
        _missing("ffn_dim", "opt", "hidden_size, ffn_dim, .*"),
        ({"word_embed_proj_dim": 512},
         r"word_embed_proj_dim: 512 differs from hidden_size 4096 \(the project_in/project_out "
         r"layers of OPT-350m are not modelled\); use a config with word_embed_proj_dim equal "
         r"to hidden_size"),
        ({"enable_bias": "yes"}, r"enable_bias: must be true or false \(got 'yes'\)"),
        ({"num_attention_heads": 30},
         r"num_attention_heads: hidden_size 4096 is not divisible by num_attention_heads 30; "
         r"fix the head count"),
    ],
    "deepseek-v2-lite": [
        _missing("kv_lora_rank", "deepseek_v2",
                 ".*kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim, v_head_dim"),
        _not_positive("qk_rope_head_dim", 64.0, r"64\.0"),
        _not_positive("q_lora_rank", 0, "0"),
        ({"num_experts_per_tok": None},
         r"num_experts_per_tok: required with n_routed_experts 64; add it \(or set "
         r"n_routed_experts to null for a dense model\)"),
        ({"moe_intermediate_size": KeyError},
         r"moe_intermediate_size: required with n_routed_experts 64; add it .*"),
        ({"n_shared_experts": -1}, r"n_shared_experts: must be an integer >= 0 \(got -1\)"),
        ({"first_k_dense_replace": 28},
         r"first_k_dense_replace: 28 exceeds num_hidden_layers 27; use at most 27"),
        ({"attention_bias": True},
         r"attention_bias: biased MLA projections are not modelled \(got true\); use false as "
         r"the DeepSeek-V2 checkpoints do"),
    ],
    "llama-3-8b": [
        ({"model_type": "gemma"},
         r"model_type: unsupported 'gemma'; supported: deepseek_v2, llama, mistral, mixtral, "
         r"opt \(set the one whose architecture matches\)"),
    ],
}


@pytest.mark.parametrize(
    ("zoo", "changes", "pattern"),
    [(zoo, changes, pattern) for zoo, cases in CONFIG_ERRORS.items()
     for changes, pattern in cases],
)
def test_config_errors(tmp_path: Path, zoo: str, changes: dict[str, object],
                       pattern: str) -> None:
    p = broken(tmp_path, zoo, **changes)
    with pytest.raises(ModelError) as e:
        load_model(p)
    assert re.fullmatch(re.escape(str(p)) + ": " + pattern, one_line(e))


def test_moe_layer_frequency(tmp_path: Path) -> None:
    cfg = load_model(broken(tmp_path, "deepseek-v2-lite", moe_layer_freq=2,
                            first_k_dense_replace=3))
    # layers 4, 6, ..., 26 are MoE (index >= 3 and even): 12 of 27
    assert (cfg.num_moe_layers, cfg.num_dense_layers) == (12, 15)
    ops = lowered(cfg, phase="decode", batch=1, seq=4)
    assert gemm(ops, "down_proj").count == 15 and gemm(ops, "router").count == 12
