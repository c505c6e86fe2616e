"""models.llm: config loading (zoo and paths), error messages, lowering of the Llama family
and MAC counts. The other families and the whole zoo: tests/test_zoo.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zoo_helpers import attn, by_name, gemm, lowered, one_line, vec

from models import ModelError
from models.llm import (
    OP_NAMES,
    ModelConfig,
    kv_cache_bytes,
    load_model,
    lower,
    op_names,
    weight_bytes,
    zoo_models,
)
from models.ops import Gemm, Vector
from models.quant import get_scheme

# Published figures, typed here once from the model cards / papers, never derived in code.
LLAMA2_7B_PUBLISHED_PARAMS = 6.74e9
LLAMA2_70B_PUBLISHED_PARAMS = 68.98e9  # HF reports 69B; the Llama 2 paper rounds to 70B

MINIMAL = {
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 172,
    "num_hidden_layers": 2,
    "num_attention_heads": 8,
    "vocab_size": 1000,
    "max_position_embeddings": 128,
}


def write(tmp_path: Path, obj: object, name: str = "config.json") -> Path:
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj, indent=2), encoding="utf-8")
    return p


# ------------------------------------------------------------------------------------------
# Zoo


def test_zoo_lists_bundled_configs() -> None:
    names = zoo_models()
    assert names == sorted(names)
    assert {"llama-2-7b", "llama-2-70b"} <= set(names)


@pytest.mark.parametrize("name", ["llama-2-7b", "llama-2-13b", "llama-2-70b"])
def test_zoo_files_are_hf_llama_configs(name: str) -> None:
    path = Path(__file__).parents[1] / "models" / "configs" / f"{name}.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw["architectures"] == ["LlamaForCausalLM"]
    assert raw["model_type"] == "llama"
    assert raw["hidden_act"] == "silu"
    assert raw["torch_dtype"] == "float16"
    assert raw["tie_word_embeddings"] is False
    assert raw["rms_norm_eps"] == 1e-5
    assert raw["rope_theta"] == 10000.0
    assert raw["vocab_size"] == 32000
    assert raw["max_position_embeddings"] == 4096
    assert raw["_source"].startswith("https://huggingface.co/meta-llama/")


def test_llama2_7b() -> None:
    cfg = load_model("llama-2-7b")
    assert cfg == ModelConfig(
        name="llama-2-7b",
        hidden_size=4096,
        intermediate_size=11008,
        num_layers=32,
        num_heads=32,
        num_kv_heads=32,
        head_dim=128,
        vocab_size=32000,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        model_type="llama",
    )
    assert cfg.family == "llama" and cfg.moe is None and cfg.mla is None
    assert load_model("Llama-2-7B") == cfg  # zoo names are case-insensitive
    assert cfg.num_params == pytest.approx(LLAMA2_7B_PUBLISHED_PARAMS, rel=0.01)
    assert cfg.active_params == cfg.num_params
    assert weight_bytes(cfg, "fp16") == 2 * cfg.num_params
    assert weight_bytes(cfg) == weight_bytes(cfg, get_scheme("fp16"))
    # AWQ w4a16: matrices at 4 bits + a 20-bit scale/zero per 128 weights; embedding and
    # norms (untouched by the scheme) stay fp16
    h, i, L, V = 4096, 11008, 32, 32000
    matrices = L * (4 * h * h + 3 * h * i) + V * h  # + lm_head
    others = V * h + (2 * L + 1) * h
    assert matrices + others == cfg.num_params
    assert weight_bytes(cfg, "w4a16") == pytest.approx(matrices * (4 + 20 / 128) / 8 + others * 2)


def test_llama2_70b_gqa() -> None:
    cfg = load_model("llama-2-70b")
    assert (cfg.hidden_size, cfg.intermediate_size, cfg.num_layers) == (8192, 28672, 80)
    assert (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim) == (64, 8, 128)
    assert cfg.num_params == pytest.approx(LLAMA2_70B_PUBLISHED_PARAMS, rel=0.01)
    for phase, m in (("prefill", 2 * 512), ("decode", 2)):
        ops = lowered(cfg, phase=phase, batch=2, seq=512)
        q, k, v, o = (gemm(ops, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj"))
        assert (q.M, q.N, q.K) == (m, 8192, 8192)
        assert (k.M, k.N, k.K) == (m, 1024, 8192)
        assert (v.M, v.N, v.K) == (m, 1024, 8192)
        assert (o.N, o.K) == (8192, 8192)
        a = attn(ops)
        assert (a.batch, a.heads, a.kv_heads, a.count) == (2, 64, 8, 80)
        assert vec(ops, "rope").elems == m * (8192 + 1024)
    # the KV cache holds num_kv_heads heads: 8x smaller than multi-head attention would need
    assert kv_cache_bytes(cfg, batch=1, seq=4096, quant="fp16") == 2 * 80 * 1024 * 4096 * 2
    # and agrees with the decode attention op that reads it
    dec = attn(lowered(cfg, phase="decode", batch=3, seq=99, quant="w8a8"))
    assert kv_cache_bytes(cfg, batch=3, seq=100, quant="w8a8") == 80 * dec.kv_bytes()


# ------------------------------------------------------------------------------------------
# Loading from paths


def test_load_path_defaults(tmp_path: Path) -> None:
    cfg = load_model(str(write(tmp_path, MINIMAL)))
    assert cfg.num_kv_heads == 8  # defaults to num_attention_heads
    assert cfg.head_dim == 8  # defaults to hidden_size / num_attention_heads
    assert cfg.tie_word_embeddings is False
    assert cfg.name == tmp_path.name  # config.json is named after its folder
    assert load_model(tmp_path) == cfg  # a folder means its config.json
    assert load_model(str(tmp_path)) == cfg
    # unknown keys are ignored, as transformers does
    assert load_model(str(write(tmp_path, {**MINIMAL, "_source": "x", "foo": [1]}))) == cfg
    # model_type defaults to llama
    raw = {k: v for k, v in MINIMAL.items() if k != "model_type"}
    assert load_model(str(write(tmp_path, raw))) == cfg


def test_load_path_explicit_keys_and_mistral(tmp_path: Path) -> None:
    raw = {
        **MINIMAL,
        "model_type": "mistral",
        "architectures": ["MistralForCausalLM"],
        "num_key_value_heads": 2,
        "head_dim": 16,
        "tie_word_embeddings": True,
        "sliding_window": 32,
        "rope_theta": 1e6,
    }
    cfg = load_model(str(write(tmp_path, raw, "tiny-mistral.json")))
    assert cfg.name == "tiny-mistral"
    assert (cfg.model_type, cfg.num_kv_heads, cfg.head_dim) == ("mistral", 2, 16)
    assert cfg.tie_word_embeddings and cfg.sliding_window == 32
    assert cfg.q_size == 128 and cfg.kv_size == 32
    a = attn(lowered(cfg, phase="decode", batch=1, seq=100))
    assert a.kv_len == 32  # capped by the window
    # prefill: the window is not represented, the whole causal triangle is counted
    assert attn(lowered(cfg, phase="prefill", batch=1, seq=100)).kv_len == 100
    assert kv_cache_bytes(cfg, batch=1, seq=100) == kv_cache_bytes(cfg, batch=1, seq=32)
    # a tied LM head is still a GEMM but its weights are counted once
    untied = load_model(str(write(tmp_path, {**raw, "tie_word_embeddings": False}, "u.json")))
    assert untied.num_params - cfg.num_params == 1000 * 64


def test_biases(tmp_path: Path) -> None:
    base = load_model(str(write(tmp_path, MINIMAL)))
    cfg = load_model(str(write(tmp_path, {**MINIMAL, "attention_bias": True, "mlp_bias": True})))
    h, i, L = 64, 172, 2
    assert cfg.num_params - base.num_params == L * (4 * h + 2 * i + h)
    ops = lowered(cfg, phase="decode", batch=1, seq=4)
    assert vec(ops, "attn_residual").ops_per_elem == 2  # + o_proj bias
    assert vec(ops, "act").ops_per_elem == 7  # + gate and up biases
    assert vec(ops, "mlp_residual").table_bytes == 2 * h


# ------------------------------------------------------------------------------------------
# Error messages: one line, naming the field and the fix


def test_unknown_name() -> None:
    with pytest.raises(ModelError) as e:
        load_model("llama-9")
    assert re.fullmatch(
        r"model: unknown model 'llama-9'; choose one of .*llama-2-70b, llama-2-7b.* "
        r"or give a path to an HF-style config\.json",
        one_line(e),
    )


@pytest.mark.parametrize("bad", ["", "   ", None, 7])
def test_not_a_name(bad: object) -> None:
    with pytest.raises(ModelError, match=r"^model: expected a zoo name or a path"):
        load_model(bad)  # type: ignore[arg-type]


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(ModelError) as e:
        load_model(str(missing))
    assert re.fullmatch(
        rf"model: no such file '{re.escape(str(missing))}'; give an existing config\.json "
        r"or a zoo name \(.*llama-2-7b.*\)",
        one_line(e),
    )
    with pytest.raises(ModelError, match=r"^model: no such file '.*config\.json'"):
        load_model(str(tmp_path))  # a folder without config.json


def test_malformed_json(tmp_path: Path) -> None:
    p = write(tmp_path, '{\n  "hidden_size": 64,\n  "vocab_size": 10\n  "x": 1\n}\n')
    with pytest.raises(ModelError) as e:
        load_model(str(p))
    assert re.fullmatch(
        rf"{re.escape(str(p))}: malformed JSON at line 4, column 3: Expecting ',' delimiter; "
        r"fix the file .*",
        one_line(e),
    )


def test_top_level_not_object(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"^.*config\.json: the top level must be a JSON object"):
        load_model(str(write(tmp_path, [1, 2])))


@pytest.mark.parametrize("key", list(MINIMAL)[1:])
def test_missing_required_key(tmp_path: Path, key: str) -> None:
    raw = {k: v for k, v in MINIMAL.items() if k != key}
    with pytest.raises(ModelError) as e:
        load_model(str(write(tmp_path, raw)))
    assert re.fullmatch(
        rf".*config\.json: missing required key '{key}' \(model_type 'llama'\); add it: "
        r"llama configs need hidden_size, intermediate_size, num_hidden_layers, "
        r"num_attention_heads, vocab_size, max_position_embeddings",
        one_line(e),
    )


@pytest.mark.parametrize("model_type", ["gpt2", "qwen2", "LLaMA"])
def test_unknown_model_type_is_rejected(tmp_path: Path, model_type: str) -> None:
    with pytest.raises(ModelError) as e:
        load_model(str(write(tmp_path, {**MINIMAL, "model_type": model_type})))
    assert re.fullmatch(
        rf".*config\.json: model_type: unsupported '{model_type}'; supported: deepseek_v2, "
        r"llama, mistral, mixtral, opt \(set the one whose architecture matches\)",
        one_line(e),
    )


@pytest.mark.parametrize("key", ["num_local_experts", "n_routed_experts"])
def test_experts_need_a_moe_model_type(tmp_path: Path, key: str) -> None:
    with pytest.raises(ModelError) as e:
        load_model(str(write(tmp_path, {**MINIMAL, key: 8})))
    assert re.fullmatch(
        rf".*config\.json: {key}: model_type 'llama' has no experts \(got 8\); use "
        r"model_type 'mixtral' for a mixture-of-experts config",
        one_line(e),
    )
    # 0, 1 or null experts mean a dense model
    assert load_model(str(write(tmp_path, {**MINIMAL, key: 1}))).moe is None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("hidden_size", 0),
        ("intermediate_size", -5),
        ("num_hidden_layers", "32"),
        ("num_attention_heads", 8.0),
        ("vocab_size", True),
        ("max_position_embeddings", None),
        ("num_key_value_heads", 0),
        ("head_dim", "8"),
    ],
)
def test_bad_value(tmp_path: Path, key: str, value: object) -> None:
    with pytest.raises(ModelError) as e:
        load_model(str(write(tmp_path, {**MINIMAL, key: value})))
    assert re.fullmatch(
        rf".*config\.json: {key}: must be a positive integer \(got {re.escape(repr(value))}\)",
        one_line(e),
    )


def test_bad_bool_and_strings(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"tie_word_embeddings: must be true or false \(got 1\)$"):
        load_model(str(write(tmp_path, {**MINIMAL, "tie_word_embeddings": 1})))
    with pytest.raises(ModelError, match=r"attention_bias: must be true or false \(got 'no'\)$"):
        load_model(str(write(tmp_path, {**MINIMAL, "attention_bias": "no"})))
    with pytest.raises(ModelError, match=r"model_type: must be a string \(got 3\)$"):
        load_model(str(write(tmp_path, {**MINIMAL, "model_type": 3})))
    with pytest.raises(ModelError, match=r"sliding_window: must be a positive integer or null"):
        load_model(str(write(tmp_path, {**MINIMAL, "sliding_window": 0})))


def test_hidden_not_divisible_by_heads(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as e:
        load_model(str(write(tmp_path, {**MINIMAL, "num_attention_heads": 7})))
    assert re.fullmatch(
        r".*config\.json: num_attention_heads: hidden_size 64 is not divisible by "
        r"num_attention_heads 7; fix the head count or give head_dim explicitly",
        one_line(e),
    )
    # an explicit head_dim lifts the rule (e.g. Mistral-Nemo: 5120 hidden, 32 x 128 heads)
    cfg = load_model(str(write(tmp_path, {**MINIMAL, "num_attention_heads": 7, "head_dim": 8})))
    assert cfg.q_size == 56


def test_heads_not_divisible_by_kv_heads(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as e:
        load_model(str(write(tmp_path, {**MINIMAL, "num_key_value_heads": 3})))
    assert re.fullmatch(
        r".*config\.json: num_key_value_heads: num_attention_heads 8 is not divisible by "
        r"num_key_value_heads 3; use a divisor of 8",
        one_line(e),
    )


@pytest.mark.parametrize("key", ["hidden_size", "num_hidden_layers", "intermediate_size",
                                 "vocab_size"])
def test_config_size_above_2_40_names_its_key(tmp_path: Path, key: str) -> None:
    # the config's own key, not the first operator whose size it makes too large
    with pytest.raises(ModelError) as e:
        load_model(str(write(tmp_path, {**MINIMAL, key: 10**18})))
    assert re.fullmatch(rf".*config\.json: {key}: 1,000,000,000,000,000,000 exceeds 2\^40 .*",
                        one_line(e))
    cfg = load_model(str(write(tmp_path, {**MINIMAL, "max_position_embeddings": 1 << 40})))
    assert cfg.max_position_embeddings == 1 << 40  # the bound itself is allowed


def test_decode_needs_two_positions(tmp_path: Path) -> None:
    cfg = load_model(str(write(tmp_path, {**MINIMAL, "max_position_embeddings": 1})))
    with pytest.raises(ModelError) as e:
        lower(cfg, phase="decode", batch=1, seq=1)
    assert re.fullmatch(r"phase: .* has max_position_embeddings 1, no position left to decode "
                        r"after a cached token; use --phase prefill or a config with "
                        r"max_position_embeddings >= 2", one_line(e))
    assert lower(cfg, phase="prefill", batch=1, seq=1)


def test_model_config_validates_directly() -> None:
    base = load_model("llama-2-7b")
    fields = {f: getattr(base, f) for f in base.__dataclass_fields__}
    with pytest.raises(ModelError, match=r"^num_layers: must be a positive integer \(got 0\)$"):
        ModelConfig(**{**fields, "num_layers": 0})
    with pytest.raises(ModelError, match=r"^num_kv_heads: num_heads 32 is not divisible by"):
        ModelConfig(**{**fields, "num_kv_heads": 5})
    with pytest.raises(ModelError, match=r"^name: must be a non-empty string"):
        ModelConfig(**{**fields, "name": ""})
    with pytest.raises(ModelError, match=r"^model_type: unsupported 'gpt2'; use one of "
                       r"deepseek_v2, llama, mistral, mixtral, opt$"):
        ModelConfig(**{**fields, "model_type": "gpt2"})
    with pytest.raises(ModelError, match=r"^moe: model_type 'mixtral' needs a MoEConfig"):
        ModelConfig(**{**fields, "model_type": "mixtral"})
    with pytest.raises(ModelError, match=r"^mla: model_type 'deepseek_v2' needs an MLAConfig"):
        ModelConfig(**{**fields, "model_type": "deepseek_v2"})
    with pytest.raises(TypeError):
        ModelConfig("x", 1, 1, 1, 1, 1, 1, 1, 1)  # type: ignore[misc]  # keyword-only


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"phase": "train"}, r"phase: must be 'prefill' or 'decode' \(got 'train'\)"),
        ({"batch": 0}, r"batch: must be an integer >= 1 \(got 0\)"),
        ({"batch": 2.0}, r"batch: must be an integer >= 1 \(got 2\.0\)"),
        ({"seq": -1}, r"seq: must be an integer >= 1 \(got -1\)"),
        ({"seq": True}, r"seq: must be an integer >= 1 \(got True\)"),
        (
            {"seq": 4097},
            r"seq: 4097 prompt tokens exceed max_position_embeddings 4096 of llama-2-7b; "
            r"use seq <= 4096",
        ),
        (
            {"phase": "decode", "seq": 4096},
            r"seq: decoding after 4096 cached tokens needs 4097 positions, more than "
            r"max_position_embeddings 4096 of llama-2-7b; use seq <= 4095",
        ),
        ({"quant": "int99"}, r"--quant: unknown scheme 'int99'; known: fp16, .*"),
        ({"quant": "w4a16+kv5"}, r"--quant: 'w4a16\+kv5': \+kv5 is not a KV-cache width; .*"),
        ({"quant": 8}, r"quant: expected a scheme name or a QuantScheme \(got 8\)"),
        ({"page_tokens": -1}, r"page_tokens: must be an integer >= 0 \(got -1\)"),
        ({"sparse_block": 1.5}, r"sparse_block: must be an integer >= 0 \(got 1\.5\)"),
        (
            {"sparse_block": 64},
            r"sparse_topk: block-sparse attention needs both sparse_block and sparse_topk > 0 "
            r"\(got 64 and 0\); give both or neither",
        ),
    ],
)
def test_lower_errors(kwargs: dict[str, object], pattern: str) -> None:
    args: dict[str, object] = {"phase": "prefill", "batch": 1, "seq": 16, **kwargs}
    with pytest.raises(ModelError) as e:
        lower(load_model("llama-2-7b"), **args)  # type: ignore[arg-type]
    assert re.fullmatch(pattern, one_line(e))


def test_lower_limits_are_inclusive() -> None:
    cfg = load_model("llama-2-7b")
    assert attn(lowered(cfg, phase="prefill", batch=1, seq=4096)).kv_len == 4096
    assert attn(lowered(cfg, phase="decode", batch=1, seq=4095)).kv_len == 4096


# ------------------------------------------------------------------------------------------
# Lowering: shapes and MAC counts computed independently


def test_prefill_shapes_llama2_7b() -> None:
    cfg = load_model("llama-2-7b")
    b, s, h, i, L, V = 4, 1024, 4096, 11008, 32, 32000
    T = b * s
    ops = lower(cfg, phase="prefill", batch=b, seq=s)
    assert tuple(op.name for op in ops) == OP_NAMES == op_names(cfg)
    gemms = {g.name: (g.M, g.N, g.K, g.count) for g in ops if isinstance(g, Gemm)}
    assert gemms == {
        "q_proj": (T, h, h, L),
        "k_proj": (T, h, h, L),
        "v_proj": (T, h, h, L),
        "o_proj": (T, h, h, L),
        "gate_proj": (T, i, h, L),
        "up_proj": (T, i, h, L),
        "down_proj": (T, h, i, L),
        "lm_head": (b, V, h, 1),  # only the last token of each sequence
    }
    assert all(g.b_is_weight for g in ops if isinstance(g, Gemm))
    vectors = {
        v.name: (v.kind, v.elems, v.ops_per_elem, v.count, v.reads, v.table_bytes)
        for v in ops
        if isinstance(v, Vector)
    }
    assert vectors == {
        "embedding": ("embedding", T * h, 0, 1, 1, 2 * T * h),  # T fp16 rows of the table
        "input_norm": ("norm", T * h, 4, L, 1, 2 * h),
        "rope": ("rope", T * 2 * h, 3, L, 1, 0),
        "attn_residual": ("residual", T * h, 1, L, 2, 0),
        "post_norm": ("norm", T * h, 4, L, 1, 2 * h),
        "act": ("activation", T * i, 5, L, 2, 0),
        "mlp_residual": ("residual", T * h, 1, L, 2, 0),
        "final_norm": ("norm", T * h, 4, 1, 1, 2 * h),
        "sampling": ("softmax", b * V, 3, 1, 1, 0),
    }
    assert all(v.fmt == "fp16" for v in ops if isinstance(v, Vector))
    a = attn(by_name(ops))
    assert (a.batch, a.heads, a.kv_heads, a.q_len, a.kv_len, a.qk_dim, a.v_dim) == (
        b, 32, 32, s, s, 128, 128)
    assert (a.count, a.causal, a.kv_shared, a.q_fmt, a.kv_fmt) == (L, True, False, "fp16", "fp16")


def test_decode_shapes_llama2_7b() -> None:
    cfg = load_model("llama-2-7b")
    ops = lowered(cfg, phase="decode", batch=8, seq=1000)
    assert tuple(ops) == OP_NAMES
    assert all(op.M == 8 for op in ops.values() if isinstance(op, Gemm))
    a = attn(ops)
    assert (a.batch, a.q_len, a.kv_len, a.count) == (8, 1, 1001, 32)  # seq cached + itself
    assert vec(ops, "sampling").elems == 8 * 32000


def test_formats_w8a8() -> None:
    cfg = load_model("llama-2-7b")
    h, i = 4096, 11008
    ops = lowered(cfg, phase="decode", batch=2, seq=8, quant="w8a8")
    names = tuple(ops)
    assert names == op_names(cfg, quant="w8a8")
    # a dynamic per-token quantization before every GEMM that reads int8 activations
    for q, g in (("quant_qkv", "q_proj"), ("quant_o", "o_proj"), ("quant_mlp", "gate_proj"),
                 ("quant_down", "down_proj"), ("quant_head", "lm_head")):
        assert names.index(q) < names.index(g)
        assert vec(ops, q).kind == "quantize" and vec(ops, q).ops_per_elem == 3
    assert [vec(ops, n).elems for n in ("quant_qkv", "quant_o", "quant_mlp", "quant_down")] == [
        2 * h, 2 * h, 2 * h, 2 * i]
    assert names.index("rope") < names.index("kv_quant") < names.index("attention")
    assert vec(ops, "kv_quant").elems == 2 * 2 * h  # the new tokens' K and V
    q = gemm(ops, "q_proj")
    assert (q.a_fmt, q.w_fmt, q.o_fmt, q.w_group, q.w_scale_bits, q.a_scale_bits) == (
        "int8", "int8", "int32", 0, 16, 16)
    a = attn(ops)
    assert (a.q_fmt, a.kv_fmt, a.kv_group, a.kv_scale_bits) == ("fp16", "int8", 128, 16)


def test_formats_weight_only_kivi_mixed_fp8_bf16() -> None:
    cfg = load_model("llama-2-7b")
    ops = lowered(cfg, phase="decode", batch=1, seq=8, quant="w4a16+kv2")
    assert "kv_quant" in ops  # the 2-bit cache quantizes the new tokens' K and V
    assert tuple(n for n in ops if n != "kv_quant") == OP_NAMES
    assert not any(n.startswith("quant_") for n in ops)  # fp16 activations: no quantization
    d = gemm(ops, "down_proj")
    assert (d.a_fmt, d.w_fmt, d.o_fmt, d.w_group, d.w_scale_bits, d.a_scale_bits) == (
        "fp16", "int4", "fp32", 128, 20, 0)
    a = attn(ops)  # KIVI: 2-bit cache in groups of 32, newest 128 tokens in fp16
    assert (a.kv_fmt, a.kv_group, a.kv_scale_bits, a.kv_residual) == ("int2", 32, 32, 128)
    # mixed precision: down_proj and lm_head at W8A8, the rest W4A8
    ops = lowered(cfg, phase="prefill", batch=1, seq=8, quant="w4a8-mixed")
    assert (gemm(ops, "up_proj").w_fmt, gemm(ops, "up_proj").w_group) == ("int4", 128)
    assert (gemm(ops, "down_proj").w_fmt, gemm(ops, "down_proj").w_group) == ("int8", 0)
    assert gemm(ops, "lm_head").w_fmt == "int8"
    assert "kv_quant" not in ops  # fp16 KV cache
    # fp8: fp8 queries and cache, accumulation in fp32, element-wise work in fp16
    ops = lowered(cfg, phase="decode", batch=1, seq=8, quant=get_scheme("fp8"))
    assert (attn(ops).q_fmt, attn(ops).kv_fmt) == ("fp8_e4m3", "fp8_e4m3")
    assert gemm(ops, "o_proj").o_fmt == "fp32"
    assert "kv_quant" not in ops and "quant_o" not in ops  # only integer formats quantize
    assert vec(ops, "act").fmt == "fp16"
    ops = lowered(cfg, phase="decode", batch=1, seq=8, quant="bf16")
    assert vec(ops, "act").fmt == "bf16" and attn(ops).q_fmt == "bf16"


def test_weight_gemms_cover_all_weights_but_embedding_and_norms() -> None:
    for name in ("llama-2-7b", "llama-2-70b"):
        cfg = load_model(name)
        ops = lower(cfg, phase="decode", batch=1, seq=1)
        weights = sum(g.N * g.K * g.count for g in ops if isinstance(g, Gemm) and g.b_is_weight)
        norms = (2 * cfg.num_layers + 1) * cfg.hidden_size
        assert weights == cfg.num_params - cfg.vocab_size * cfg.hidden_size - norms
        norm_weights = sum(v.table_bytes * v.count for v in ops
                           if isinstance(v, Vector) and v.kind == "norm")
        assert norm_weights == 2 * norms  # fp16


def test_prefill_macs_llama2_7b() -> None:
    cfg = load_model("llama-2-7b")
    b, s = 2, 2048
    ops = lower(cfg, phase="prefill", batch=b, seq=s)
    gemms = [g for g in ops if isinstance(g, Gemm)]
    proj = sum(g.macs for g in gemms if g.name != "lm_head")
    attention = attn(by_name(ops)).macs
    head = by_name(ops)["lm_head"].macs  # type: ignore[union-attr]
    # independent: per layer 4 h^2 (q, k, v, o; MHA) + 3 h i (gate, up, down), per token
    assert proj == 32 * b * s * (4 * 4096**2 + 3 * 4096 * 11008)
    # QK^T and PV over the causal triangle: s (s + 1) / 2 pairs of 2 * 128 MACs per head
    assert attention == 32 * b * 32 * (s * (s + 1) // 2) * 2 * 128
    assert head == b * 32000 * 4096
    # rule of thumb: forward FLOPs ~ 2 * params * tokens (params without the embedding table)
    non_embedding = cfg.num_params - 2 * 32000 * 4096
    assert 2 * proj == pytest.approx(2 * non_embedding * b * s, rel=0.01)


def test_decode_macs_llama2_7b() -> None:
    cfg = load_model("llama-2-7b")
    b, s = 16, 511
    ops = lower(cfg, phase="decode", batch=b, seq=s)
    total = sum(op.macs for op in ops if not isinstance(op, Vector))
    attention = attn(by_name(ops)).macs
    assert attention == 32 * b * 32 * 2 * (s + 1) * 128
    # decode: every non-embedding weight is used once per sequence, plus attention
    weights_used = cfg.num_params - 32000 * 4096
    assert total - attention == pytest.approx(b * weights_used, rel=0.001)
    # and 2 * params * tokens holds within a few % at this short context
    assert 2 * total == pytest.approx(2 * cfg.num_params * b, rel=0.05)


def test_gqa_reduces_kv_projection_macs() -> None:
    cfg = load_model("llama-2-70b")
    ops = lowered(cfg, phase="prefill", batch=1, seq=256)
    assert gemm(ops, "k_proj").macs * 8 == gemm(ops, "q_proj").macs
    assert gemm(ops, "v_proj").macs == gemm(ops, "k_proj").macs


def test_paged_and_sparse_attention_pass_through() -> None:
    cfg = load_model("llama-2-7b")
    ops = lowered(cfg, phase="decode", batch=1, seq=4000, page_tokens=16,
                        sparse_block=64, sparse_topk=8)
    a = attn(ops)
    assert (a.page_tokens, a.sparse_block, a.sparse_topk) == (16, 64, 8)
    assert a.attended == 8 * 64  # the new token attends only to its top-8 blocks


# ------------------------------------------------------------------------------------------
# Properties

# database=None: tests write only under tmp_path (no .hypothesis/ example database)
_SMALL = settings(max_examples=40, deadline=None, database=None)


@st.composite
def configs(draw: st.DrawFn) -> ModelConfig:
    kv = draw(st.integers(1, 4))
    heads = kv * draw(st.integers(1, 4))
    head_dim = draw(st.sampled_from([8, 16, 64, 128]))
    return ModelConfig(
        name="m",
        hidden_size=heads * head_dim,
        intermediate_size=draw(st.integers(1, 4096)),
        num_layers=draw(st.integers(1, 8)),
        num_heads=heads,
        num_kv_heads=kv,
        head_dim=head_dim,
        vocab_size=draw(st.integers(1, 50_000)),
        max_position_embeddings=draw(st.integers(3, 8192)),
        tie_word_embeddings=draw(st.booleans()),
    )


def total_macs(cfg: ModelConfig, phase: str, batch: int, seq: int) -> int:
    ops = lower(cfg, phase=phase, batch=batch, seq=seq)  # type: ignore[arg-type]
    return sum(op.macs for op in ops if not isinstance(op, Vector))


@_SMALL
@given(cfg=configs(), phase=st.sampled_from(["prefill", "decode"]), data=st.data())
def test_macs_grow_with_seq_and_batch(cfg: ModelConfig, phase: str, data: st.DataObject) -> None:
    top = cfg.max_position_embeddings - (phase == "decode")
    s1 = data.draw(st.integers(1, top - 1))
    s2 = data.draw(st.integers(s1 + 1, top))
    b1 = data.draw(st.integers(1, 16))
    b2 = data.draw(st.integers(b1 + 1, 32))
    assert total_macs(cfg, phase, b1, s1) < total_macs(cfg, phase, b1, s2)
    assert total_macs(cfg, phase, b1, s1) < total_macs(cfg, phase, b2, s1)


@_SMALL
@given(cfg=configs(), batch=st.integers(1, 8), seq=st.integers(1, 64),
       quant=st.sampled_from(["fp16", "w8a8", "w4a16+kv4", "w4a4kv4", "fp8"]))
def test_lowering_invariants(cfg: ModelConfig, batch: int, seq: int, quant: str) -> None:
    seq = min(seq, cfg.max_position_embeddings - 1)
    pre = lowered(cfg, phase="prefill", batch=batch, seq=seq, quant=quant)
    dec = lowered(cfg, phase="decode", batch=batch, seq=seq, quant=quant)
    for ops, tokens in ((pre, batch * seq), (dec, batch)):
        plain = tuple(n for n in ops if not n.startswith("quant_") and n != "kv_quant")
        assert plain == OP_NAMES
        assert gemm(ops, "k_proj").N == gemm(ops, "v_proj").N == cfg.num_kv_heads * cfg.head_dim
        assert gemm(ops, "q_proj").N == gemm(ops, "o_proj").K == cfg.num_heads * cfg.head_dim
        assert gemm(ops, "down_proj").K == gemm(ops, "up_proj").N == cfg.intermediate_size
        proj = [op for n, op in ops.items() if isinstance(op, Gemm) and n != "lm_head"]
        assert all(g.M == tokens and g.count == cfg.num_layers for g in proj)
        assert gemm(ops, "lm_head").M == batch
        a = attn(ops)
        assert (a.heads, a.kv_heads, a.count) == (cfg.num_heads, cfg.num_kv_heads, cfg.num_layers)
        # every layer operator repeats once per layer; embedding and head once
        assert {op.count for op in ops.values()} <= {1, cfg.num_layers}
    # decoding one token costs less than prefilling seq + 1 tokens of the same prompt
    assert sum(op.macs for op in dec.values() if not isinstance(op, Vector)) <= total_macs(
        cfg, "prefill", batch, seq + 1)
    # projections of prefill are exactly seq times those of decode
    for n in ("q_proj", "k_proj", "o_proj", "gate_proj", "down_proj"):
        assert gemm(pre, n).macs == seq * gemm(dec, n).macs


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(cfg=configs(), drop_defaults=st.booleans())
def test_json_round_trip(tmp_path: Path, cfg: ModelConfig, drop_defaults: bool) -> None:
    raw: dict[str, object] = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_kv_heads,
        "head_dim": cfg.head_dim,
        "vocab_size": cfg.vocab_size,
        "max_position_embeddings": cfg.max_position_embeddings,
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "rms_norm_eps": 1e-5,
    }
    if drop_defaults and cfg.num_kv_heads == cfg.num_heads:
        del raw["num_key_value_heads"], raw["head_dim"]
    assert load_model(str(write(tmp_path, raw, "m.json"))) == cfg


# -- the eager runtime -------------------------------------------------------------------------

_GPU_DATA = Path(__file__).resolve().parents[1] / "sim" / "data" / "gpu"


def _measured_launches() -> list[tuple[tuple[str, str, int, int], float]]:
    """Device operators per forward pass of eager transformers, as profiled on the card in
    each profile (``framework_ops_h100*.csv``: the calls of every ATen operator that ran
    device work)."""
    from sim.gpu.framework import profiled_passes

    return [((p["model"], p["phase"], p["batch"], p["seq"]), p["launches"])
            for name in ("framework_ops_h100.csv", "framework_ops_h100_b.csv",
                         "framework_ops_h100_b_after.csv")
            for p in profiled_passes(_GPU_DATA / name)]


def test_eager_lowering_launches_what_transformers_launches() -> None:
    """The eager runtime's kernels per forward pass equal the device operators profiled on the
    card for every measured model, phase, batch and length (within the profiler's averaging
    over passes), and its element-wise work is what the fused lowering's is, unfused: more
    bytes, the same GEMMs but the head's (every position's logits)."""
    measured = _measured_launches()
    assert len(measured) >= 48
    for (name, phase, batch, seq), launches in measured:
        cfg = load_model(name)
        eager = lower(cfg, phase=phase, batch=batch, seq=seq, quant="bf16", runtime="eager")
        fused = lower(cfg, phase=phase, batch=batch, seq=seq, quant="bf16")
        count = sum(getattr(op, "launches", 1) * op.count for op in eager)
        assert count == pytest.approx(launches, abs=0.01), (name, phase, batch, seq)
        gemms = {op.name: op for op in eager if isinstance(op, Gemm)}
        for op in fused:
            if isinstance(op, Gemm) and op.name != "lm_head":
                assert gemms[op.name] == op
        tokens = batch * seq if phase == "prefill" else batch
        assert gemms["lm_head"].M == tokens
        vec_bytes = {op.name: op.bytes * op.count for op in eager if isinstance(op, Vector)}
        for op in fused:
            if isinstance(op, Vector) and op.name in ("input_norm", "rope", "act"):
                assert vec_bytes[op.name] > op.bytes * op.count
        append = next(op for op in eager if op.name == "kv_append")
        cached = batch * (seq + 1 if phase == "decode" else seq)
        assert append.bytes == 2 * 2 * cached * cfg.kv_size * 2  # K and V, read and written


@pytest.mark.parametrize(("model", "quant", "field"), [
    ("opt-6.7b", "fp16", "opt"), ("mixtral-8x7b", "bf16", "mixture of experts"),
    ("llama-2-7b", "w8a8", "bf16"), ("mistral-7b", "bf16", "sliding window"),
])
def test_eager_runtime_refuses_what_it_does_not_model(model, quant, field) -> None:
    with pytest.raises(ModelError, match=rf"^runtime: .*{field}"):
        lower(load_model(model), phase="decode", batch=1, seq=16, quant=quant, runtime="eager")
    with pytest.raises(ModelError, match=r"^runtime: must be one of fused, eager"):
        lower(load_model("llama-2-7b"), phase="decode", batch=1, seq=16, runtime="graph")
