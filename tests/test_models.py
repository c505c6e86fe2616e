"""models.llm: config loading (zoo and paths), error messages, GEMM lowering and MAC counts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models import ModelError
from models.llm import (
    OP_NAMES,
    ModelConfig,
    kv_cache_bytes,
    load_model,
    lower,
    weight_bytes,
    zoo_models,
)
from models.ops import Gemm

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


def by_name(gemms: list[Gemm]) -> dict[str, Gemm]:
    return {g.name: g for g in gemms}


def one_line(e: pytest.ExceptionInfo[ModelError]) -> str:
    msg = str(e.value)
    assert "\n" not in msg, msg
    return msg


# ------------------------------------------------------------------------------------------
# Zoo


def test_zoo_lists_bundled_configs() -> None:
    names = zoo_models()
    assert names == sorted(names)
    assert {"llama-2-7b", "llama-2-70b"} <= set(names)


@pytest.mark.parametrize("name", ["llama-2-7b", "llama-2-70b"])
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
    assert load_model("Llama-2-7B") == cfg  # zoo names are case-insensitive
    assert cfg.num_params == pytest.approx(LLAMA2_7B_PUBLISHED_PARAMS, rel=0.01)
    assert weight_bytes(cfg, "fp16") == 2 * cfg.num_params
    assert weight_bytes(cfg, "int4") == cfg.num_params / 2


def test_llama2_70b_gqa() -> None:
    cfg = load_model("llama-2-70b")
    assert (cfg.hidden_size, cfg.intermediate_size, cfg.num_layers) == (8192, 28672, 80)
    assert (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim) == (64, 8, 128)
    assert cfg.num_params == pytest.approx(LLAMA2_70B_PUBLISHED_PARAMS, rel=0.01)
    for phase, m in (("prefill", 2 * 512), ("decode", 2)):
        ops = by_name(lower(cfg, phase=phase, batch=2, seq=512))
        assert (ops["q_proj"].M, ops["q_proj"].N, ops["q_proj"].K) == (m, 8192, 8192)
        assert (ops["k_proj"].M, ops["k_proj"].N, ops["k_proj"].K) == (m, 1024, 8192)
        assert (ops["v_proj"].M, ops["v_proj"].N, ops["v_proj"].K) == (m, 1024, 8192)
        assert (ops["o_proj"].N, ops["o_proj"].K) == (8192, 8192)
        assert ops["attn_qk"].count == 80 * 2 * 64  # one per query head
    # the KV cache holds num_kv_heads heads: 8x smaller than multi-head attention would need
    assert kv_cache_bytes(cfg, batch=1, seq=4096, kv_fmt="fp16") == 2 * 80 * 1024 * 4096 * 2


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
    ops = by_name(lower(cfg, phase="decode", batch=1, seq=100))
    assert ops["attn_qk"].N == 32 and ops["attn_pv"].K == 32  # capped by the window
    # a tied LM head is still a GEMM but its weights are counted once
    untied = load_model(str(write(tmp_path, {**raw, "tie_word_embeddings": False}, "u.json")))
    assert untied.num_params - cfg.num_params == 1000 * 64


def test_unknown_model_type_with_llama_keys_is_accepted(tmp_path: Path) -> None:
    cfg = load_model(str(write(tmp_path, {**MINIMAL, "model_type": "qwen2"})))
    assert cfg.model_type == "qwen2"


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
        rf".*config\.json: missing required key '{key}' \(model_type 'llama'\); only "
        r"Llama/Mistral-style decoder configs are supported, with keys hidden_size, .*",
        one_line(e),
    )


def test_gpt2_config_is_rejected_clearly(tmp_path: Path) -> None:
    gpt2 = {"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50257}
    with pytest.raises(
        ModelError, match=r"missing required key 'hidden_size' \(model_type 'gpt2'\); only Llama"
    ):
        load_model(str(write(tmp_path, gpt2)))


def test_moe_config_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(
        ModelError,
        match=r"num_local_experts: mixture-of-experts configs are not supported \(got 8\)",
    ):
        load_model(str(write(tmp_path, {**MINIMAL, "num_local_experts": 8})))


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


def test_model_config_validates_directly() -> None:
    base = load_model("llama-2-7b")
    fields = {f: getattr(base, f) for f in base.__dataclass_fields__}
    with pytest.raises(ModelError, match=r"^num_layers: must be a positive integer \(got 0\)$"):
        ModelConfig(**{**fields, "num_layers": 0})
    with pytest.raises(ModelError, match=r"^num_kv_heads: num_heads 32 is not divisible by"):
        ModelConfig(**{**fields, "num_kv_heads": 5})
    with pytest.raises(ModelError, match=r"^name: must be a non-empty string"):
        ModelConfig(**{**fields, "name": ""})
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
        ({"a_fmt": "int99"}, r"a_fmt: unknown number format 'int99'; known: .*"),
        ({"w_fmt": "fp7"}, r"w_fmt: unknown number format 'fp7'; known: .*"),
        ({"kv_fmt": 8}, r"kv_fmt: must be a format name string \(got 8\)"),
    ],
)
def test_lower_errors(kwargs: dict[str, object], pattern: str) -> None:
    args: dict[str, object] = {"phase": "prefill", "batch": 1, "seq": 16, **kwargs}
    with pytest.raises(ModelError) as e:
        lower(load_model("llama-2-7b"), **args)  # type: ignore[arg-type]
    assert re.fullmatch(pattern, one_line(e))


def test_lower_limits_are_inclusive() -> None:
    cfg = load_model("llama-2-7b")
    assert by_name(lower(cfg, phase="prefill", batch=1, seq=4096))["attn_qk"].N == 4096
    assert by_name(lower(cfg, phase="decode", batch=1, seq=4095))["attn_qk"].N == 4096


# ------------------------------------------------------------------------------------------
# Lowering: shapes and MAC counts computed independently


def test_prefill_shapes_llama2_7b() -> None:
    cfg = load_model("llama-2-7b")
    b, s, h, i, L = 4, 1024, 4096, 11008, 32
    ops = lower(cfg, phase="prefill", batch=b, seq=s)
    assert tuple(g.name for g in ops) == OP_NAMES
    shapes = {g.name: (g.M, g.N, g.K, g.count, g.b_is_weight) for g in ops}
    assert shapes == {
        "q_proj": (b * s, h, h, L, True),
        "k_proj": (b * s, h, h, L, True),
        "v_proj": (b * s, h, h, L, True),
        "attn_qk": (s, s, 128, L * b * 32, False),
        "attn_pv": (s, 128, s, L * b * 32, False),
        "o_proj": (b * s, h, h, L, True),
        "gate_proj": (b * s, i, h, L, True),
        "up_proj": (b * s, i, h, L, True),
        "down_proj": (b * s, h, i, L, True),
        "lm_head": (b, 32000, h, 1, True),
    }


def test_decode_shapes_llama2_7b() -> None:
    cfg = load_model("llama-2-7b")
    ops = by_name(lower(cfg, phase="decode", batch=8, seq=1000))
    assert all(ops[n].M == 8 for n in OP_NAMES if n not in ("attn_qk", "attn_pv"))
    qk, pv = ops["attn_qk"], ops["attn_pv"]
    assert (qk.M, qk.N, qk.K, qk.count) == (1, 1001, 128, 32 * 8 * 32)  # seq cached + itself
    assert (pv.M, pv.N, pv.K, pv.count) == (1, 128, 1001, 32 * 8 * 32)


def test_formats() -> None:
    cfg = load_model("llama-2-7b")
    ops = by_name(lower(cfg, phase="decode", batch=1, seq=8, a_fmt="int8", w_fmt="int4"))
    assert (ops["q_proj"].a_fmt, ops["q_proj"].w_fmt, ops["q_proj"].o_fmt) == (
        "int8",
        "int4",
        "int32",
    )
    assert (ops["attn_qk"].w_fmt, ops["attn_pv"].w_fmt) == ("int8", "int8")  # K/V are activations
    ops = by_name(
        lower(cfg, phase="decode", batch=1, seq=8, a_fmt="bf16", w_fmt="fp8", kv_fmt="fp8")
    )
    assert ops["down_proj"].o_fmt == "fp32"
    assert (ops["attn_pv"].a_fmt, ops["attn_pv"].w_fmt) == ("bf16", "fp8")


def test_weight_gemms_cover_all_weights_but_embedding_and_norms() -> None:
    for name in ("llama-2-7b", "llama-2-70b"):
        cfg = load_model(name)
        weights = sum(
            g.N * g.K * g.count for g in lower(cfg, phase="decode", batch=1, seq=1) if g.b_is_weight
        )
        norms = (2 * cfg.num_layers + 1) * cfg.hidden_size
        assert weights == cfg.num_params - cfg.vocab_size * cfg.hidden_size - norms


def test_prefill_macs_llama2_7b() -> None:
    cfg = load_model("llama-2-7b")
    b, s = 2, 2048
    ops = lower(cfg, phase="prefill", batch=b, seq=s)
    proj = sum(g.macs for g in ops if g.b_is_weight and g.name != "lm_head")
    attn = sum(g.macs for g in ops if not g.b_is_weight)
    head = by_name(ops)["lm_head"].macs
    # independent: per layer 4 h^2 (q, k, v, o; MHA) + 3 h i (gate, up, down), per token
    assert proj == 32 * b * s * (4 * 4096**2 + 3 * 4096 * 11008)
    # QK^T and PV: 2 * s^2 * d per head, full square
    assert attn == 32 * b * 32 * 2 * s * s * 128
    assert head == b * 32000 * 4096
    # rule of thumb: forward FLOPs ~ 2 * params * tokens (params without the embedding table)
    non_embedding = cfg.num_params - 2 * 32000 * 4096
    assert 2 * proj == pytest.approx(2 * non_embedding * b * s, rel=0.01)


def test_decode_macs_llama2_7b() -> None:
    cfg = load_model("llama-2-7b")
    b, s = 16, 511
    ops = lower(cfg, phase="decode", batch=b, seq=s)
    total = sum(g.macs for g in ops)
    attn = sum(g.macs for g in ops if not g.b_is_weight)
    assert attn == 32 * b * 32 * 2 * (s + 1) * 128
    # decode: every non-embedding weight is used once per sequence, plus attention
    weights_used = cfg.num_params - 32000 * 4096
    assert total - attn == pytest.approx(b * weights_used, rel=0.001)
    # and 2 * params * tokens holds within a few % at this short context
    assert 2 * total == pytest.approx(2 * cfg.num_params * b, rel=0.05)


def test_gqa_reduces_kv_projection_macs() -> None:
    cfg = load_model("llama-2-70b")
    ops = by_name(lower(cfg, phase="prefill", batch=1, seq=256))
    assert ops["k_proj"].macs * 8 == ops["q_proj"].macs
    assert ops["v_proj"].macs == ops["k_proj"].macs


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
    return sum(g.macs for g in lower(cfg, phase=phase, batch=batch, seq=seq))  # type: ignore[arg-type]


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
@given(cfg=configs(), batch=st.integers(1, 8), seq=st.integers(1, 64))
def test_lowering_invariants(cfg: ModelConfig, batch: int, seq: int) -> None:
    seq = min(seq, cfg.max_position_embeddings - 1)
    pre = by_name(lower(cfg, phase="prefill", batch=batch, seq=seq))
    dec = by_name(lower(cfg, phase="decode", batch=batch, seq=seq))
    for ops, tokens in ((pre, batch * seq), (dec, batch)):
        assert list(ops) == list(OP_NAMES)
        assert ops["k_proj"].N == ops["v_proj"].N == cfg.num_kv_heads * cfg.head_dim
        assert ops["q_proj"].N == ops["o_proj"].K == cfg.num_heads * cfg.head_dim
        assert ops["down_proj"].K == ops["up_proj"].N == cfg.intermediate_size
        assert all(ops[n].M == tokens for n in OP_NAMES[:3] + OP_NAMES[5:9])
        assert ops["lm_head"].M == batch
        # QK^T produces the scores PV consumes
        assert ops["attn_qk"].N == ops["attn_pv"].K and ops["attn_qk"].M == ops["attn_pv"].M
    # decoding one token costs less than prefilling seq + 1 tokens of the same prompt
    assert sum(g.macs for g in dec.values()) <= total_macs(cfg, "prefill", batch, seq + 1)
    # projections of prefill are exactly seq times those of decode
    for n in ("q_proj", "k_proj", "o_proj", "gate_proj", "down_proj"):
        assert pre[n].macs == seq * dec[n].macs


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
