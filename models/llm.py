"""LLM configs (Hugging Face ``config.json``) and their lowering to operators.

A decoder-only transformer is described by a :class:`ModelConfig`, loaded from the bundled zoo
(``models/configs/*.json``, see :func:`zoo_models`) or from any HF-style ``config.json`` with
:func:`load_model`. Three families, chosen by ``model_type``:

* ``llama``, ``mistral``, ``mixtral``: RMSNorm, SiLU-gated MLP, RoPE, grouped-query attention
  (Mistral v0.1: sliding window; Mixtral: a mixture of experts in every layer);
* ``opt``: LayerNorm, ReLU MLP (``fc1``/``fc2`` of ``ffn_dim``), multi-head attention, learned
  positional embeddings, biases everywhere, tied LM head;
* ``deepseek_v2``: multi-head latent attention (MLA) and DeepSeekMoE (routed plus shared
  experts, the first ``first_k_dense_replace`` layers dense).

:func:`lower` turns one forward pass of the whole model into operators
(:class:`~models.ops.Gemm`, :class:`~models.ops.Attention`, :class:`~models.ops.Vector`), one
entry per distinct operator with ``count`` repetitions, in dataflow order, with the storage
formats of a quantization scheme (:mod:`models.quant`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeGuard

from models import ModelError
from models.formats import accumulator_format, full_precision_format, get_format
from models.ops import MAX_SIZE, Attention, Gemm, Op, Vector, size_error
from models.quant import QuantScheme, get_scheme

__all__ = [
    "OP_NAMES",
    "RUNTIMES",
    "SUPPORTED_MODEL_TYPES",
    "MLAConfig",
    "MoEConfig",
    "ModelConfig",
    "attention_formats",
    "expected_active_experts",
    "kv_cache_bytes",
    "load_model",
    "lower",
    "op_names",
    "query_format",
    "weight_bytes",
    "zoo_models",
]

#: Operators :func:`lower` emits for a dense Llama-family model with floating-point
#: activations and KV cache (e.g. ``quant="fp16"``), in dataflow order: the embedding, one
#: decoder layer (``count = num_layers``), then the head. Other families and schemes: see
#: :func:`op_names`.
OP_NAMES: tuple[str, ...] = (
    "embedding",
    "input_norm",
    "q_proj",
    "k_proj",
    "v_proj",
    "rope",
    "attention",
    "o_proj",
    "attn_residual",
    "post_norm",
    "gate_proj",
    "up_proj",
    "act",
    "down_proj",
    "mlp_residual",
    "final_norm",
    "lm_head",
    "sampling",
)

Family = Literal["llama", "opt", "deepseek_v2"]
_FAMILY: dict[str, Family] = {
    "llama": "llama",
    "mistral": "llama",
    "mixtral": "llama",
    "opt": "opt",
    "deepseek_v2": "deepseek_v2",
}
#: ``model_type`` values :func:`load_model` accepts.
SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(sorted(_FAMILY))

_ZOO_PACKAGE = "models.configs"
#: HF's OPTLearnedPositionalEmbedding has ``max_position_embeddings + 2`` rows (offset 2).
_OPT_POSITION_OFFSET = 2
#: Bytes of one fp16 element (norm weights, biases, embedding tables).
_FP16_BYTES = 2


def _positive_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _nonnegative_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_fields(owner: str, obj: object, positive: tuple[str, ...],
                  nonnegative: tuple[str, ...] = ()) -> None:
    for field in positive:
        v = getattr(obj, field)
        if not _positive_int(v):
            raise ModelError(f"{owner}{field}: must be a positive integer (got {v!r})")
    for field in nonnegative:
        v = getattr(obj, field)
        if not _nonnegative_int(v):
            raise ModelError(f"{owner}{field}: must be an integer >= 0 (got {v!r})")


@dataclass(frozen=True, slots=True, kw_only=True)
class MoEConfig:
    """A mixture of experts replacing the MLP of some layers.

    ``num_experts`` routed SiLU-gated experts of ``intermediate_size`` each; a linear router
    picks ``experts_per_tok`` of them per token. ``num_shared_experts`` experts (DeepSeekMoE)
    process every token, as one MLP of ``num_shared_experts * intermediate_size``. Layer ``i``
    is a MoE layer when ``i >= first_dense_layers`` and ``i % layer_freq == 0`` (DeepSeek-V2's
    rule; Mixtral: every layer), the others keep the dense MLP of the model.
    """

    num_experts: int
    experts_per_tok: int
    intermediate_size: int
    num_shared_experts: int = 0
    first_dense_layers: int = 0
    layer_freq: int = 1

    def __post_init__(self) -> None:
        _check_fields("moe.", self, ("num_experts", "experts_per_tok", "intermediate_size",
                                     "layer_freq"), ("num_shared_experts", "first_dense_layers"))
        if self.experts_per_tok > self.num_experts:
            raise ModelError(f"moe.experts_per_tok: {self.experts_per_tok} exceeds num_experts "
                             f"{self.num_experts}; use at most {self.num_experts}")


@dataclass(frozen=True, slots=True, kw_only=True)
class MLAConfig:
    """Multi-head latent attention (DeepSeek-V2, arXiv:2405.04434).

    Keys and values are compressed into one latent of ``kv_lora_rank`` features per token
    (``kv_a_proj``), plus one decoupled RoPE key of ``qk_rope_head_dim`` shared by all heads;
    that is what the KV cache holds. ``kv_b_proj`` expands the latent into per-head keys
    (``qk_nope_head_dim``) and values (``v_head_dim``). Queries are ``qk_nope_head_dim +
    qk_rope_head_dim`` wide per head, projected directly (``q_lora_rank`` 0) or through a
    rank-``q_lora_rank`` bottleneck.
    """

    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int
    q_lora_rank: int = 0

    def __post_init__(self) -> None:
        _check_fields("mla.", self, ("kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim",
                                     "v_head_dim"), ("q_lora_rank",))

    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    @property
    def cache_width(self) -> int:
        """Elements cached per token and layer: the latent and the shared RoPE key."""
        return self.kv_lora_rank + self.qk_rope_head_dim


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelConfig:
    """Shape of a decoder-only transformer (see the module doc for the families).

    ``head_dim`` is the width of one query/key head: query projections produce
    ``num_heads * head_dim`` features and key/value projections ``num_kv_heads * head_dim``
    (grouped-query attention when ``num_kv_heads < num_heads``); with MLA it is
    ``qk_nope_head_dim + qk_rope_head_dim``. ``intermediate_size`` is the dense MLP's width
    (OPT's ``ffn_dim``). ``sliding_window`` (Mistral v0.1) caps how many cached tokens a
    decoded token attends to; ``None`` means no cap. ``attention_bias``/``mlp_bias``: the
    attention / MLP projections have biases (OPT: both). ``moe``: the mixture of experts
    (Mixtral, DeepSeek-V2), ``mla``: multi-head latent attention (DeepSeek-V2).
    """

    name: str
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    max_position_embeddings: int
    tie_word_embeddings: bool = False
    model_type: str = "llama"
    sliding_window: int | None = None
    attention_bias: bool = False
    mlp_bias: bool = False
    moe: MoEConfig | None = None
    mla: MLAConfig | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ModelError(f"name: must be a non-empty string (got {self.name!r})")
        _check_fields("", self, ("hidden_size", "intermediate_size", "num_layers", "num_heads",
                                 "num_kv_heads", "head_dim", "vocab_size",
                                 "max_position_embeddings"))
        if self.sliding_window is not None and not _positive_int(self.sliding_window):
            raise ModelError(
                f"sliding_window: must be a positive integer or None (got {self.sliding_window!r})"
            )
        for field in ("tie_word_embeddings", "attention_bias", "mlp_bias"):
            v = getattr(self, field)
            if not isinstance(v, bool):
                raise ModelError(f"{field}: must be true or false (got {v!r})")
        if not isinstance(self.model_type, str):
            raise ModelError(f"model_type: must be a string (got {self.model_type!r})")
        if self.model_type not in _FAMILY:
            raise ModelError(f"model_type: unsupported {self.model_type!r}; use one of "
                             + ", ".join(SUPPORTED_MODEL_TYPES))
        if self.num_heads % self.num_kv_heads:
            raise ModelError(
                f"num_kv_heads: num_heads {self.num_heads} is not divisible by num_kv_heads "
                f"{self.num_kv_heads}; use a divisor of {self.num_heads}"
            )
        if self.moe is not None and not isinstance(self.moe, MoEConfig):
            raise ModelError(f"moe: expected a MoEConfig or None (got {self.moe!r})")
        if self.mla is not None and not isinstance(self.mla, MLAConfig):
            raise ModelError(f"mla: expected an MLAConfig or None (got {self.mla!r})")
        with_moe = ("mixtral", "deepseek_v2")
        if self.model_type == "mixtral" and self.moe is None:
            raise ModelError("moe: model_type 'mixtral' needs a MoEConfig; give moe=MoEConfig(...)")
        if self.moe is not None and self.model_type not in with_moe:
            raise ModelError(f"moe: model_type {self.model_type!r} has no experts; use "
                             "model_type 'mixtral' or 'deepseek_v2' for a mixture of experts")
        if (self.model_type == "deepseek_v2") != (self.mla is not None):
            raise ModelError("mla: model_type 'deepseek_v2' needs an MLAConfig and the others "
                             f"none (model_type {self.model_type!r}, mla {self.mla!r})")
        if self.mla is not None and self.head_dim != self.mla.qk_head_dim:
            raise ModelError(f"head_dim: MLA query/key heads are qk_nope_head_dim + "
                             f"qk_rope_head_dim = {self.mla.qk_head_dim} wide (got "
                             f"{self.head_dim}); use head_dim={self.mla.qk_head_dim}")
        if self.moe is not None and self.moe.first_dense_layers > self.num_layers:
            raise ModelError(f"moe.first_dense_layers: {self.moe.first_dense_layers} exceeds "
                             f"num_layers {self.num_layers}; use at most {self.num_layers}")

    # ---- shapes ----------------------------------------------------------------------------

    @property
    def family(self) -> Family:
        """``llama`` (llama, mistral, mixtral), ``opt`` or ``deepseek_v2``."""
        return _FAMILY[self.model_type]

    @property
    def q_size(self) -> int:
        """Output features of the query projection."""
        return self.num_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        """Output features of ``k_proj`` and of ``v_proj`` (not used by MLA)."""
        return self.num_kv_heads * self.head_dim

    @property
    def attn_out_size(self) -> int:
        """Input features of ``o_proj``: all heads' values."""
        if self.mla is not None:
            return self.num_heads * self.mla.v_head_dim
        return self.q_size

    @property
    def kv_cache_width(self) -> int:
        """Elements one token adds to one layer's KV cache (K and V, or MLA's latent)."""
        if self.mla is not None:
            return self.mla.cache_width
        return 2 * self.kv_size

    @property
    def num_moe_layers(self) -> int:
        """Layers whose MLP is a mixture of experts."""
        if self.moe is None:
            return 0
        first, freq = self.moe.first_dense_layers, self.moe.layer_freq
        return sum(1 for i in range(first, self.num_layers) if i % freq == 0)

    @property
    def num_dense_layers(self) -> int:
        """Layers with the dense MLP of ``intermediate_size``."""
        return self.num_layers - self.num_moe_layers

    @property
    def learned_positions(self) -> int:
        """Rows of the learned positional-embedding table (OPT), 0 with RoPE."""
        if self.family == "opt":
            return self.max_position_embeddings + _OPT_POSITION_OFFSET
        return 0

    # ---- parameters ------------------------------------------------------------------------

    @property
    def num_params(self) -> int:
        """All parameters: embeddings, layers (every expert), norms, biases, LM head unless
        tied."""
        matrices = sum(n * k * count for _, n, k, count in _weight_matrices(self))
        return matrices + self._vector_params()

    @property
    def active_params(self) -> int:
        """Parameters one token's forward pass uses: :attr:`num_params` less the routed
        experts it is not sent to."""
        if self.moe is None:
            return self.num_params
        idle = self.moe.num_experts - self.moe.experts_per_tok
        expert = 3 * self.hidden_size * self.moe.intermediate_size
        return self.num_params - self.num_moe_layers * idle * expert

    def _vector_params(self) -> int:
        """Parameters outside weight matrices: embedding tables, norms, biases."""
        h, L = self.hidden_size, self.num_layers
        norm = 2 * h if self.family == "opt" else h  # LayerNorm: weight and bias
        total = self.vocab_size * h + self.learned_positions * h + (2 * L + 1) * norm
        if self.mla is not None:
            total += L * (self.mla.kv_lora_rank + self.mla.q_lora_rank)  # kv_a/q_a norms
        if self.attention_bias:
            total += L * (self.q_size + 2 * self.kv_size + h)
        if self.mlp_bias:
            gated = self.family != "opt"
            total += self.num_dense_layers * ((2 if gated else 1) * self.intermediate_size + h)
        return total


def _weight_matrices(cfg: ModelConfig) -> list[tuple[str, int, int, int]]:
    """Every weight matrix of the model as ``(op name, N, K, count)`` (all experts; MLA in its
    unabsorbed form), named as :func:`lower`'s prefill GEMMs. The LM head is left out when
    tied to the embedding table."""
    h, L, i = cfg.hidden_size, cfg.num_layers, cfg.intermediate_size
    out: list[tuple[str, int, int, int]] = []
    if cfg.mla is not None:
        m, H = cfg.mla, cfg.num_heads
        if m.q_lora_rank:
            out += [("q_a_proj", m.q_lora_rank, h, L), ("q_b_proj", cfg.q_size, m.q_lora_rank, L)]
        else:
            out.append(("q_proj", cfg.q_size, h, L))
        out += [("kv_a_proj", m.cache_width, h, L),
                ("kv_b_proj", H * (m.qk_nope_head_dim + m.v_head_dim), m.kv_lora_rank, L)]
    else:
        out += [("q_proj", cfg.q_size, h, L), ("k_proj", cfg.kv_size, h, L),
                ("v_proj", cfg.kv_size, h, L)]
    out.append(("o_proj", h, cfg.attn_out_size, L))
    dense = cfg.num_dense_layers
    if dense and cfg.family == "opt":
        out += [("fc1", i, h, dense), ("fc2", h, i, dense)]
    elif dense:
        out += [("gate_proj", i, h, dense), ("up_proj", i, h, dense), ("down_proj", h, i, dense)]
    if cfg.moe is not None:
        moe, n = cfg.moe, cfg.num_moe_layers
        mi, E = moe.intermediate_size, moe.num_experts
        out.append(("router", E, h, n))
        if moe.num_shared_experts:
            si = moe.num_shared_experts * mi
            out += [("shared_gate", si, h, n), ("shared_up", si, h, n), ("shared_down", h, si, n)]
        out += [("expert_gate", mi, h, n * E), ("expert_up", mi, h, n * E),
                ("expert_down", h, mi, n * E)]
    if not cfg.tie_word_embeddings:
        out.append(("lm_head", cfg.vocab_size, h, 1))
    return out


def _scheme(quant: object) -> QuantScheme:
    if isinstance(quant, QuantScheme):
        return quant
    if not isinstance(quant, str):
        raise ModelError(f"quant: expected a scheme name or a QuantScheme (got {quant!r})")
    return get_scheme(quant)


def _storage_bits(s: QuantScheme, K: int) -> float:
    """Bits per weight element of a ``K``-deep matrix under ``s``, scales included."""
    groups = -(-K // s.w_group) if s.w_group else 1
    return get_format(s.w_fmt).bits + s.w_scale_bits * groups / K


def weight_bytes(cfg: ModelConfig, quant: str | QuantScheme = "fp16") -> float:
    """Bytes to store every parameter (all experts) under the quantization scheme ``quant``.

    Weight matrices take the storage width of the scheme their operator uses
    (``scheme.for_op(name)``, group scales and zero points included); embedding tables, norms
    and biases stay fp16. A tied LM head shares the embedding table, stored once in fp16.
    """
    scheme = _scheme(quant)
    bits = sum(n * k * count * _storage_bits(scheme.for_op(name), k)
               for name, n, k, count in _weight_matrices(cfg))
    return bits / 8 + cfg._vector_params() * _FP16_BYTES


def kv_cache_bytes(cfg: ModelConfig, *, batch: int, seq: int,
                   quant: str | QuantScheme = "fp16") -> float:
    """Bytes of all layers' KV caches of ``batch`` sequences of ``seq`` tokens under ``quant``.

    Per token and layer the cache holds ``2 * num_kv_heads * head_dim`` elements (K and V), or
    ``kv_lora_rank + qk_rope_head_dim`` with MLA. A sliding window caps the cached tokens (a
    rolling buffer, as in Mistral's reference code). Storage as the decode
    :class:`~models.ops.Attention` op's :meth:`~models.ops.Attention.kv_bytes`: the scheme's
    ``kv_fmt`` with its group scales, the newest ``kv_residual`` tokens in full precision.
    """
    _check_count("batch", batch)
    _check_count("seq", seq)
    scheme = _scheme(quant)
    cached = seq if cfg.sliding_window is None else min(seq, cfg.sliding_window)
    op = _attention(cfg, scheme, phase="decode", batch=batch, q_len=1, kv_len=cached, count=1,
                    page_tokens=0, sparse_block=0, sparse_topk=0)
    return cfg.num_layers * op.kv_bytes()


# --------------------------------------------------------------------------------------------
# Loading


def zoo_models() -> list[str]:
    """Names of the bundled configs (file stems of ``models/configs/*.json``), sorted."""
    root = resources.files(_ZOO_PACKAGE)
    return sorted(p.name[: -len(".json")] for p in root.iterdir() if p.name.endswith(".json"))


def load_model(name_or_path: str | Path) -> ModelConfig:
    """A zoo name (see :func:`zoo_models`, case-insensitive) or a path to an HF ``config.json``.

    A path is anything ending in ``.json``, containing a path separator, or naming an existing
    file or folder (a folder means its ``config.json``). ``model_type`` (default ``llama``)
    picks the family and its required keys:

    * llama, mistral, mixtral: ``hidden_size``, ``intermediate_size``, ``num_hidden_layers``,
      ``num_attention_heads``, ``vocab_size``, ``max_position_embeddings`` (mixtral also
      ``num_local_experts``, ``num_experts_per_tok``); ``num_key_value_heads`` defaults to
      ``num_attention_heads``, ``head_dim`` to ``hidden_size // num_attention_heads``,
      ``tie_word_embeddings``/``attention_bias``/``mlp_bias`` to false;
    * opt: ``ffn_dim`` instead of ``intermediate_size``; ``word_embed_proj_dim`` must equal
      ``hidden_size``; ``enable_bias`` and ``tie_word_embeddings`` default to true;
    * deepseek_v2: also ``kv_lora_rank``, ``qk_nope_head_dim``, ``qk_rope_head_dim``,
      ``v_head_dim``; ``q_lora_rank`` null means a full-rank query projection;
      ``n_routed_experts`` null means dense, else ``num_experts_per_tok`` and
      ``moe_intermediate_size`` are required and ``n_shared_experts``,
      ``first_k_dense_replace``, ``moe_layer_freq`` are read.

    Other keys are ignored, as transformers does. Raises :class:`ModelError` with a one-line
    message naming the key and the fix.
    """
    if isinstance(name_or_path, Path):
        return _load_path(name_or_path)
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise ModelError(
            f"model: expected a zoo name or a path to a config.json (got {name_or_path!r}); "
            f"zoo: {', '.join(zoo_models())}"
        )
    text = name_or_path.strip()
    key = text.lower()
    if key in zoo_models():
        res = resources.files(_ZOO_PACKAGE).joinpath(f"{key}.json")
        return _from_text(res.read_text(encoding="utf-8"), source=f"{key}.json", name=key)
    path = Path(text)
    if text.endswith(".json") or "/" in text or "\\" in text or path.exists():
        return _load_path(path)
    raise ModelError(
        f"model: unknown model {text!r}; choose one of {', '.join(zoo_models())} "
        "or give a path to an HF-style config.json"
    )


def _load_path(path: Path) -> ModelConfig:
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise ModelError(
            f"model: no such file {str(path)!r}; give an existing config.json or a zoo name "
            f"({', '.join(zoo_models())})"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}: cannot read the file ({e.__class__.__name__}: {e})") from None
    stem = path.stem
    name = path.resolve().parent.name if stem == "config" and path.resolve().parent.name else stem
    return _from_text(text, source=str(path), name=name)


_COMMON = ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size",
           "max_position_embeddings")
_REQUIRED: dict[str, tuple[str, ...]] = {
    "llama": ("hidden_size", "intermediate_size", *_COMMON[1:]),
    "mistral": ("hidden_size", "intermediate_size", *_COMMON[1:]),
    "mixtral": ("hidden_size", "intermediate_size", *_COMMON[1:], "num_local_experts",
                "num_experts_per_tok"),
    "opt": ("hidden_size", "ffn_dim", *_COMMON[1:]),
    "deepseek_v2": ("hidden_size", "intermediate_size", *_COMMON[1:], "kv_lora_rank",
                    "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"),
}
#: Keys that would make a Llama/Mistral config a mixture of experts.
_MOE_KEYS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")
_MISSING: Any = object()


def _from_text(text: str, *, source: str, name: str) -> ModelConfig:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise ModelError(
            f"{source}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}; "
            "fix the file (it must be one JSON object like HF's config.json)"
        ) from None
    if not isinstance(raw, dict):
        raise ModelError(
            f"{source}: the top level must be a JSON object of config keys "
            f"(got a {type(raw).__name__})"
        )
    return _from_dict(raw, source=source, name=name)


@dataclass(frozen=True, slots=True)
class _Reader:
    """Typed access to the keys of one raw config, errors naming the source and the key."""

    raw: dict[str, Any]
    source: str

    def pos_int(self, key: str, default: Any = _MISSING) -> Any:
        v = self.raw.get(key)
        if v is None and default is not _MISSING:
            return default
        if not _positive_int(v):
            raise ModelError(f"{self.source}: {key}: must be a positive integer (got {v!r})")
        if v > MAX_SIZE:
            raise ModelError(f"{self.source}: {size_error(key, v)}")
        return v

    def nonneg_int(self, key: str, default: int) -> int:
        v = self.raw.get(key)
        if v is None:
            return default
        if not _nonnegative_int(v):
            raise ModelError(f"{self.source}: {key}: must be an integer >= 0 (got {v!r})")
        if v > MAX_SIZE:
            raise ModelError(f"{self.source}: {size_error(key, v)}")
        return int(v)

    def boolean(self, key: str, default: bool) -> bool:
        v = self.raw.get(key, default)
        if not isinstance(v, bool):
            raise ModelError(f"{self.source}: {key}: must be true or false (got {v!r})")
        return v

    def fail(self, key: str, message: str) -> ModelError:
        return ModelError(f"{self.source}: {key}: {message}")


def _from_dict(raw: dict[str, Any], *, source: str, name: str) -> ModelConfig:
    model_type = raw.get("model_type", "llama")
    if not isinstance(model_type, str):
        raise ModelError(f"{source}: model_type: must be a string (got {model_type!r})")
    if model_type not in _FAMILY:
        raise ModelError(
            f"{source}: model_type: unsupported {model_type!r}; supported: "
            f"{', '.join(SUPPORTED_MODEL_TYPES)} (set the one whose architecture matches)"
        )
    required = _REQUIRED[model_type]
    for key in required:
        if key not in raw:
            raise ModelError(
                f"{source}: missing required key {key!r} (model_type {model_type!r}); add it: "
                f"{model_type} configs need {', '.join(required)}"
            )
    r = _Reader(raw, source)
    family = _FAMILY[model_type]
    hidden = r.pos_int("hidden_size")
    heads = r.pos_int("num_attention_heads")
    common: dict[str, Any] = {
        "name": name,
        "model_type": model_type,
        "hidden_size": hidden,
        "num_layers": r.pos_int("num_hidden_layers"),
        "num_heads": heads,
        "vocab_size": r.pos_int("vocab_size"),
        "max_position_embeddings": r.pos_int("max_position_embeddings"),
    }
    if family == "opt":
        return _opt(r, common)
    if family == "deepseek_v2":
        return _deepseek_v2(r, common)
    return _llama(r, common)


def _split_heads(r: _Reader, hidden: int, heads: int) -> int:
    if r.raw.get("head_dim") is None and hidden % heads:
        raise r.fail("num_attention_heads", f"hidden_size {hidden} is not divisible by "
                     f"num_attention_heads {heads}; fix the head count or give head_dim "
                     "explicitly")
    return int(r.pos_int("head_dim", default=hidden // heads))


def _llama(r: _Reader, common: dict[str, Any]) -> ModelConfig:
    model_type, heads = common["model_type"], common["num_heads"]
    intermediate = r.pos_int("intermediate_size")
    kv_heads = r.pos_int("num_key_value_heads", default=heads)
    head_dim = _split_heads(r, common["hidden_size"], heads)
    if heads % kv_heads:
        raise r.fail("num_key_value_heads", f"num_attention_heads {heads} is not divisible by "
                     f"num_key_value_heads {kv_heads}; use a divisor of {heads}")
    window = r.raw.get("sliding_window")
    if window is not None and not _positive_int(window):
        raise r.fail("sliding_window", f"must be a positive integer or null (got {window!r})")
    moe = None
    if model_type == "mixtral":
        experts = r.pos_int("num_local_experts")
        per_tok = r.pos_int("num_experts_per_tok")
        if per_tok > experts:
            raise r.fail("num_experts_per_tok", f"{per_tok} exceeds num_local_experts "
                         f"{experts}; use at most {experts}")
        moe = MoEConfig(num_experts=experts, experts_per_tok=per_tok,
                        intermediate_size=intermediate)
    else:
        for key in _MOE_KEYS:
            v = r.raw.get(key)
            if v is not None and not (_nonnegative_int(v) and v <= 1):
                raise r.fail(key, f"model_type {model_type!r} has no experts (got {v!r}); use "
                             "model_type 'mixtral' for a mixture-of-experts config")
    return ModelConfig(
        **common,
        intermediate_size=intermediate,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        tie_word_embeddings=r.boolean("tie_word_embeddings", False),
        sliding_window=window,
        attention_bias=r.boolean("attention_bias", False),
        mlp_bias=r.boolean("mlp_bias", False),
        moe=moe,
    )


def _opt(r: _Reader, common: dict[str, Any]) -> ModelConfig:
    hidden, heads = common["hidden_size"], common["num_heads"]
    proj = r.pos_int("word_embed_proj_dim", default=hidden)
    if proj != hidden:
        raise r.fail("word_embed_proj_dim", f"{proj} differs from hidden_size {hidden} (the "
                     "project_in/project_out layers of OPT-350m are not modelled); use a config "
                     "with word_embed_proj_dim equal to hidden_size")
    if hidden % heads:
        raise r.fail("num_attention_heads", f"hidden_size {hidden} is not divisible by "
                     f"num_attention_heads {heads}; fix the head count")
    bias = r.boolean("enable_bias", True)
    return ModelConfig(
        **common,
        intermediate_size=r.pos_int("ffn_dim"),
        num_kv_heads=heads,
        head_dim=hidden // heads,
        tie_word_embeddings=r.boolean("tie_word_embeddings", True),
        attention_bias=bias,
        mlp_bias=bias,
    )


def _deepseek_v2(r: _Reader, common: dict[str, Any]) -> ModelConfig:
    layers = common["num_layers"]
    if r.boolean("attention_bias", False):
        raise r.fail("attention_bias", "biased MLA projections are not modelled (got true); "
                     "use false as the DeepSeek-V2 checkpoints do")
    mla = MLAConfig(
        kv_lora_rank=r.pos_int("kv_lora_rank"),
        q_lora_rank=r.pos_int("q_lora_rank", default=0),
        qk_nope_head_dim=r.pos_int("qk_nope_head_dim"),
        qk_rope_head_dim=r.pos_int("qk_rope_head_dim"),
        v_head_dim=r.pos_int("v_head_dim"),
    )
    moe = None
    experts = r.pos_int("n_routed_experts", default=0)
    if experts:
        for key in ("num_experts_per_tok", "moe_intermediate_size"):
            if r.raw.get(key) is None:
                raise r.fail(key, f"required with n_routed_experts {experts}; add it (or set "
                             "n_routed_experts to null for a dense model)")
        per_tok = r.pos_int("num_experts_per_tok")
        if per_tok > experts:
            raise r.fail("num_experts_per_tok", f"{per_tok} exceeds n_routed_experts "
                         f"{experts}; use at most {experts}")
        first_dense = r.nonneg_int("first_k_dense_replace", 0)
        if first_dense > layers:
            raise r.fail("first_k_dense_replace", f"{first_dense} exceeds num_hidden_layers "
                         f"{layers}; use at most {layers}")
        moe = MoEConfig(
            num_experts=experts,
            experts_per_tok=per_tok,
            intermediate_size=r.pos_int("moe_intermediate_size"),
            num_shared_experts=r.nonneg_int("n_shared_experts", 0),
            first_dense_layers=first_dense,
            layer_freq=r.pos_int("moe_layer_freq", default=1),
        )
    return ModelConfig(
        **common,
        intermediate_size=r.pos_int("intermediate_size"),
        num_kv_heads=common["num_heads"],
        head_dim=mla.qk_head_dim,
        tie_word_embeddings=r.boolean("tie_word_embeddings", False),
        moe=moe,
        mla=mla,
    )


# --------------------------------------------------------------------------------------------
# Lowering


def _check_count(field: str, value: object) -> None:
    if not _positive_int(value):
        raise ModelError(f"{field}: must be an integer >= 1 (got {value!r})")


def _is_int(fmt: str) -> bool:
    return not get_format(fmt).is_float


def query_format(scheme: QuantScheme) -> str:
    """The format of attention's queries and probabilities under ``scheme`` (its
    ``attention`` override's): the activations' block format's elements when activations
    are block-scaled (MX: every activation is quantized to blocks, the queries too), else the
    activation format if floating point, else fp16."""
    s = scheme.for_op("attention")
    return s.a_fmt if s.a_block else full_precision_format(s.a_fmt)


def expected_active_experts(num_experts: int, experts_per_tok: int, tokens: int) -> float:
    """Expected distinct experts ``tokens`` tokens touch when each picks ``experts_per_tok``
    of ``num_experts`` uniformly: ``E * (1 - (1 - k / E) ** T)`` (``k`` at ``T = 1``, towards
    ``E`` for many tokens)."""
    for field, v in (("num_experts", num_experts), ("experts_per_tok", experts_per_tok),
                     ("tokens", tokens)):
        _check_count(field, v)
    if experts_per_tok > num_experts:
        raise ModelError(f"experts_per_tok: {experts_per_tok} exceeds num_experts "
                         f"{num_experts}; use at most {num_experts}")
    E, k = num_experts, experts_per_tok
    return E * (1.0 - (1.0 - k / E) ** tokens)


def _routed(moe: MoEConfig, tokens: int) -> tuple[int, int]:
    """(distinct experts a layer runs, rows each of them gets) for ``tokens`` tokens."""
    E, k = moe.num_experts, moe.experts_per_tok
    e_act = expected_active_experts(E, k, tokens)
    n = max(k, min(E, math.ceil(e_act - 1e-9)))  # 1e-9: float noise must not add an expert
    return n, -(-tokens * k // n)


@dataclass(frozen=True, slots=True)
class _Ctx:
    """What every operator of one lowering shares."""

    cfg: ModelConfig
    scheme: QuantScheme
    phase: str
    batch: int
    tokens: int
    q_len: int
    kv_len: int
    page_tokens: int
    sparse_block: int
    sparse_topk: int
    vec_fmt: str

    def gemm(self, name: str, M: int, N: int, K: int, count: int) -> Gemm:
        """A projection with a weight operand, formats from ``scheme.for_op(name)``."""
        s = self.scheme.for_op(name)
        return Gemm(name=name, M=M, N=N, K=K, count=count, a_fmt=s.a_fmt, w_fmt=s.w_fmt,
                    o_fmt=accumulator_format(s.a_fmt, s.w_fmt), b_is_weight=True,
                    w_group=s.w_group, w_scale_bits=s.w_scale_bits, a_scale_bits=s.a_scale_bits,
                    a_group=s.a_group, w_scale_fmt=s.w_scale_fmt, a_scale_fmt=s.a_scale_fmt)

    def vec(self, name: str, kind: Any, elems: int, ops: float, count: int, *, reads: int = 1,
            table_bytes: float = 0.0) -> Vector:
        return Vector(name=name, kind=kind, elems=elems, ops_per_elem=ops, count=count,
                      reads=reads, fmt=self.vec_fmt, table_bytes=float(table_bytes))

    def quant(self, name: str, elems: int, count: int, *gemms: str) -> list[Op]:
        """Dynamic per-token quantization (absmax, scale, round: SmoothQuant-style) of the
        input of ``gemms``, when any of them reads integer activations."""
        if any(_is_int(self.scheme.for_op(g).a_fmt) for g in gemms):
            return [self.vec(name, "quantize", elems, 3, count)]
        return []

    def norm(self, name: str, width: int, count: int) -> Vector:
        """RMSNorm (4 ops per element, fp16 weight) or OPT's LayerNorm (5 ops, weight and
        bias) over ``tokens x width``."""
        if self.cfg.family == "opt":
            return self.vec(name, "norm", self.tokens * width, 5, count,
                            table_bytes=2 * width * _FP16_BYTES)
        return self.vec(name, "norm", self.tokens * width, 4, count,
                        table_bytes=width * _FP16_BYTES)


def attention_formats(scheme: QuantScheme) -> dict[str, Any]:
    """The formats attention runs in under ``scheme`` (its ``attention`` override's): the
    queries' and probabilities' (:func:`query_format`) and the KV cache's, with its groups,
    scale bits and full-precision residual tokens; the :class:`Attention` fields ``q_fmt``,
    ``kv_fmt``, ``kv_group``, ``kv_scale_bits``, ``kv_residual`` (of a lowered model's
    attention, and of ``tpe sim attention --quant``)."""
    s = scheme.for_op("attention")
    return {"q_fmt": query_format(scheme), "kv_fmt": s.kv_fmt, "kv_group": s.kv_group,
            "kv_scale_bits": s.kv_scale_bits, "kv_residual": s.kv_residual}


def _attention(cfg: ModelConfig, scheme: QuantScheme, *, phase: str, batch: int, q_len: int,
               kv_len: int, count: int, page_tokens: int, sparse_block: int,
               sparse_topk: int) -> Attention:
    cache = attention_formats(scheme)
    q_fmt = cache.pop("q_fmt")
    H, m = cfg.num_heads, cfg.mla
    if m is None:
        kv_heads, qk, v, shared = cfg.num_kv_heads, cfg.head_dim, cfg.head_dim, False
    elif phase == "prefill":
        # K and V come decompressed from kv_b_proj (activations), not from the latent cache
        kv_heads, qk, v, shared = H, m.qk_head_dim, m.v_head_dim, False
        cache = {"kv_fmt": q_fmt, "kv_group": 0, "kv_scale_bits": 0, "kv_residual": 0}
    else:
        # absorbed decode: multi-query attention over the latent cache, V its first
        # kv_lora_rank features
        kv_heads, qk, v, shared = 1, m.cache_width, m.kv_lora_rank, True
    return Attention(name="attention", batch=batch, heads=H, kv_heads=kv_heads,
                     q_len=q_len, kv_len=kv_len, qk_dim=qk, v_dim=v, causal=True, count=count,
                     q_fmt=q_fmt, kv_shared=shared, page_tokens=page_tokens,
                     sparse_block=sparse_block, sparse_topk=sparse_topk,
                     window=cfg.sliding_window or 0, **cache)


def lower(
    cfg: ModelConfig,
    *,
    phase: Literal["prefill", "decode"],
    batch: int,
    seq: int,
    quant: str | QuantScheme = "fp16",
    page_tokens: int = 0,
    sparse_block: int = 0,
    sparse_topk: int = 0,
    runtime: Runtime = "fused",
) -> list[Op]:
    """The operators of one forward pass of the whole model, in dataflow order.

    One entry per distinct operator; ``count`` is how many layers (times heads or experts
    where said) run it. ``batch`` sequences are processed at once, ``T`` tokens in all:

    * prefill: ``seq`` prompt tokens per sequence, ``T = batch * seq``; attention
      ``q_len = kv_len = seq`` (causal), each query seeing at most ``sliding_window`` keys
      (the attention op's ``window``);
    * decode: one new token per sequence after ``seq`` cached ones, ``T = batch``; the new
      token attends to ``kv_len = seq + 1`` tokens (capped at ``sliding_window``), so
      ``seq + 1 <= max_position_embeddings``.

    ``quant`` is a :class:`~models.quant.QuantScheme` or its name (:func:`get_scheme`). Every
    weight GEMM ``name`` takes ``a_fmt``, ``w_fmt``, ``w_group``, ``w_scale_bits``,
    ``a_scale_bits`` from ``scheme.for_op(name)``; its output is fp32 if an operand is
    floating point, else int32. Before GEMMs reading integer activations a ``quant_*``
    :class:`~models.ops.Vector` (per-token dynamic quantization, 3 ops per element) is
    inserted; with an integer KV cache, ``kv_quant`` quantizes the new tokens' keys and values.
    The ``attention`` op (``scheme.for_op("attention")``) reads queries in the scheme's
    activation format if floating (else fp16) and the cache in its ``kv_fmt`` with
    ``kv_group``/``kv_scale_bits``/``kv_residual``; ``page_tokens``, ``sparse_block`` and
    ``sparse_topk`` pass through to it. Element-wise ops run in the same full-precision
    format.

    Per family (``[...]`` only when it applies):

    * llama/mistral: ``embedding``; per layer ``input_norm`` (RMSNorm), ``[quant_qkv]``,
      ``q_proj``, ``k_proj``, ``v_proj``, ``rope``, ``[kv_quant]``, ``attention``,
      ``[quant_o]``, ``o_proj``, ``attn_residual``, ``post_norm``, ``[quant_mlp]``,
      ``gate_proj``, ``up_proj``, ``act`` (SiLU and product), ``[quant_down]``, ``down_proj``,
      ``mlp_residual``; then ``final_norm``, ``[quant_head]``, ``lm_head`` (only the last
      token of each sequence: ``M = batch``), ``sampling`` (softmax over the vocabulary).
    * mixtral: the MLP part is ``[quant_moe]``, ``router`` (``N = num_experts``), ``topk``,
      ``expert_gate``, ``expert_up``, ``expert_act``, ``[quant_expert_down]``,
      ``expert_down``, ``moe_residual`` (weighted sum of the ``k`` expert outputs and the
      residual add).
    * opt: ``embedding``, ``pos_embedding``; LayerNorms; no ``rope``; the MLP is
      ``[quant_mlp]``, ``fc1``, ``act`` (ReLU), ``[quant_down]``, ``fc2``, ``mlp_residual``.
      The biases of ``o_proj``, ``fc1`` and ``fc2`` are added in ``attn_residual``, ``act``
      and ``mlp_residual`` (one more op per element, the bias read as ``table_bytes``); those
      of ``q/k/v_proj`` in the GEMM epilogue (not counted).
    * deepseek_v2 (MLA): ``q_proj`` (or ``q_a_proj``, ``q_a_norm``, ``[quant_q_b]``,
      ``q_b_proj``), ``kv_a_proj`` (``N = kv_lora_rank + qk_rope_head_dim``), ``kv_a_norm``,
      ``rope``, ``[kv_quant]`` (the latent); prefill: ``[quant_kv_b]``, ``kv_b_proj``,
      ``attention`` with ``heads = kv_heads = H``, ``qk_dim = nope + rope``,
      ``v_dim = v_head_dim`` (K/V in the activation format: they are not the cache); decode
      (weight absorption, DeepSeek-V2 paper section 2.1.2): ``[quant_q_absorb]``,
      ``q_absorb`` (``M = T, N = kv_lora_rank, K = nope``, ``count = L * H``), ``attention``
      with ``kv_heads = 1``, ``qk_dim = kv_lora_rank + rope``, ``v_dim = kv_lora_rank``,
      ``kv_shared``, ``[quant_v_absorb]``, ``v_absorb`` (``N = v_head_dim,
      K = kv_lora_rank``, ``count = L * H``); then ``o_proj`` (``K = H * v_head_dim``). The
      first ``first_k_dense_replace`` layers have the dense MLP (entries with ``count`` those
      layers); the MoE layers add ``shared_gate``, ``shared_up``, ``shared_act``,
      ``[quant_shared_down]``, ``shared_down`` (``N = n_shared_experts *
      moe_intermediate_size``) before the routed experts.

    Routed experts: each of ``T`` tokens picks ``k`` of ``E`` experts; assuming uniform,
    independent routing, a layer touches ``E_act = E * (1 - (1 - k / E) ** T)`` distinct
    experts in expectation (``k`` for one token, ``E`` for many). The expert GEMMs are listed
    ``count = moe_layers * ceil(E_act)`` times with ``M = ceil(T * k / ceil(E_act))`` rows each
    (perfect balance among the touched experts; ``M * ceil(E_act) >= T * k``); element-wise
    expert work is sized ``T * k * moe_intermediate_size``.

    ``runtime``: the software that runs the pass. ``"fused"`` (the lists above): a serving
    engine, one fused kernel per norm, RoPE, activation and residual, the new keys and values
    written into the cache in place. ``"eager"``: what eager PyTorch launches for Hugging Face
    transformers' ``LlamaForCausalLM`` (dense Llama-family models in a 16-bit float scheme):
    each RMSNorm as eight kernels (a cast to fp32, square, mean, add, rsqrt, scale, the cast
    back, the weight; :data:`EAGER_NORM_BYTES` per element), RoPE as five kernels per query
    and key tensor (two products, the negated half, its concatenation and a sum), the SiLU and
    the gate product as two, the keys and values appended to the cache by concatenation (each
    step copies the whole cache: ``cache_append``), the logits of every position in prefill
    (``lm_head`` with ``M`` = all tokens) and no sampling (the forward pass returns logits);
    ``launches`` counts the kernels (40 per layer: the two norms' 16, seven projections, RoPE's
    10, two concatenations, attention, the activation's 2, two residual sums).

    Raises :class:`ModelError` (one line) for a bad ``phase``, ``batch``, ``seq`` (also beyond
    ``max_position_embeddings``), scheme, ``page_tokens``, sparse arguments or ``runtime``.
    """
    if not isinstance(cfg, ModelConfig):
        raise TypeError(f"cfg: expected a ModelConfig, got {type(cfg).__name__}")
    if phase not in ("prefill", "decode"):
        raise ModelError(f"phase: must be 'prefill' or 'decode' (got {phase!r})")
    _check_count("batch", batch)
    _check_count("seq", seq)
    for field, v in (("page_tokens", page_tokens), ("sparse_block", sparse_block),
                     ("sparse_topk", sparse_topk)):
        if not _nonnegative_int(v):
            raise ModelError(f"{field}: must be an integer >= 0 (got {v!r})")
    if (sparse_block > 0) != (sparse_topk > 0):
        raise ModelError(f"sparse_topk: block-sparse attention needs both sparse_block and "
                         f"sparse_topk > 0 (got {sparse_block} and {sparse_topk}); give both "
                         "or neither")
    if runtime not in RUNTIMES:
        raise ModelError(f"runtime: must be one of {', '.join(RUNTIMES)} (got {runtime!r})")
    scheme = _scheme(quant)
    if runtime == "eager":
        _check_eager(cfg, scheme, page_tokens, sparse_block)
    limit = cfg.max_position_embeddings
    if phase == "prefill" and seq > limit:
        raise ModelError(
            f"seq: {seq} prompt tokens exceed max_position_embeddings {limit} of {cfg.name}; "
            f"use seq <= {limit}"
        )
    if phase == "decode" and limit < 2:
        raise ModelError(
            f"phase: {cfg.name} has max_position_embeddings {limit}, no position left to decode "
            "after a cached token; use --phase prefill or a config with max_position_embeddings "
            ">= 2"
        )
    if phase == "decode" and seq + 1 > limit:
        raise ModelError(
            f"seq: decoding after {seq} cached tokens needs {seq + 1} positions, more than "
            f"max_position_embeddings {limit} of {cfg.name}; use seq <= {limit - 1}"
        )
    if phase == "prefill":
        tokens, q_len, kv_len = batch * seq, seq, seq
        if tokens > MAX_SIZE:  # the M of every per-token GEMM
            raise ModelError(size_error("batch x seq", tokens, "prompt tokens"))
    else:
        tokens, q_len, kv_len = batch, 1, seq + 1
        if cfg.sliding_window is not None:
            kv_len = min(kv_len, cfg.sliding_window)
    a_fmt = get_format(scheme.a_fmt)
    vec_fmt = scheme.a_fmt if a_fmt.is_float and a_fmt.bits >= 16 else "fp16"
    c = _Ctx(cfg, scheme, phase, batch, tokens, q_len, kv_len, page_tokens, sparse_block,
             sparse_topk, vec_fmt)
    if runtime == "eager":
        return _eager(c)

    T, h = tokens, cfg.hidden_size
    # a lookup reads T rows of the (fp16) table from memory
    row_bytes = T * h * get_format(c.vec_fmt).bits / 8
    ops: list[Op] = [c.vec("embedding", "embedding", T * h, 0, 1, table_bytes=row_bytes)]
    if cfg.learned_positions:
        ops.append(c.vec("pos_embedding", "embedding", T * h, 1, 1, reads=2,
                         table_bytes=row_bytes))
    ops += _attention_block(c)
    if cfg.num_dense_layers:
        ops += _dense_mlp(c, cfg.num_dense_layers)
    if cfg.moe is not None and cfg.num_moe_layers:
        ops += _moe_mlp(c, cfg.moe, cfg.num_moe_layers)
    ops += [
        c.norm("final_norm", h, 1),
        *c.quant("quant_head", batch * h, 1, "lm_head"),
        c.gemm("lm_head", batch, cfg.vocab_size, h, 1),
        c.vec("sampling", "softmax", batch * cfg.vocab_size, 3, 1),
    ]
    return ops


Runtime = Literal["fused", "eager"]
#: The runtimes :func:`lower` models.
RUNTIMES: tuple[str, ...] = ("fused", "eager")
#: Bytes an eager RMSNorm moves per element of a bf16 ``tokens x width`` input (transformers'
#: ``LlamaRMSNorm``): the cast to fp32 (2 read, 4 written), the square (4 + 4), the mean (4
#: read), the scaling by the reciprocal root (4 + 4), the cast back (4 + 2) and the weight's
#: product (2 + 2); the per-row kernels (add, rsqrt) move a row's few bytes.
EAGER_NORM_BYTES = 36
#: An eager RMSNorm's kernels: to(fp32), pow, mean, add, rsqrt, mul, to(bf16), mul.
EAGER_NORM_LAUNCHES = 8
#: Bytes eager RoPE moves per element of the query and key tensors (bf16): x * cos (2 + 2),
#: the negated half (1 + 1 per element of the whole), the halves' concatenation (2 + 2), its
#: product with sin (2 + 2) and the sum (4 + 2); five kernels per tensor.
EAGER_ROPE_BYTES = 20
EAGER_ROPE_LAUNCHES = 10
#: SiLU of the gate (2 + 2) and its product with the up projection (4 + 2), two kernels.
EAGER_ACT_BYTES = 10
EAGER_ACT_LAUNCHES = 2
#: Kernels outside the layers: the embedding, the rotary table (positions, their product with
#: the inverse frequencies, the concatenation, cos, sin, their scaling and casts), the final
#: norm and the head (1301 - 32 x 40 measured, of which the norm's 8, the embedding and the
#: head: 11 for the rotary table).
EAGER_ROTARY_TABLE_LAUNCHES = 11


def _check_eager(cfg: ModelConfig, scheme: QuantScheme, page_tokens: int,
                 sparse_block: int) -> None:
    """``ModelError`` unless the eager runtime models this model and scheme."""
    if cfg.family != "llama" or cfg.moe is not None or cfg.mla is not None:
        raise ModelError(
            f"runtime: eager is modeled for dense Llama-family models (transformers' "
            f"LlamaForCausalLM); {cfg.name} is {cfg.model_type}"
            + (" with a mixture of experts" if cfg.moe is not None else "")
            + "; use --runtime fused")
    fmts = {scheme.a_fmt, scheme.w_fmt, scheme.kv_fmt}
    if fmts - {"bf16", "fp16"} or scheme.overrides or len(fmts) > 1:
        raise ModelError(
            f"runtime: eager models the 16-bit float model as transformers runs it; the "
            f"scheme {scheme.name} stores {', '.join(sorted(fmts))}; use --quant bf16 or "
            "--runtime fused")
    if page_tokens or sparse_block or cfg.sliding_window:
        raise ModelError("runtime: eager models transformers' dense cache (no paging, "
                         "block sparsity or sliding window); use --runtime fused")


def _eager(c: _Ctx) -> list[Op]:
    """The eager runtime's operators (:func:`lower`, ``runtime="eager"``)."""
    cfg, T, L, h = c.cfg, c.tokens, c.cfg.num_layers, c.cfg.hidden_size
    i = cfg.intermediate_size

    def vec(name: str, kind: Any, elems: int, ops_per_elem: float, count: int,
            **kw: Any) -> Vector:
        return Vector(name=name, kind=kind, elems=elems, ops_per_elem=ops_per_elem,
                      count=count, fmt=c.vec_fmt, runtime="eager", **kw)

    def norm(name: str, count: int) -> Vector:
        return vec(name, "norm", T * h, 5, count, elem_bytes=EAGER_NORM_BYTES,
                   table_bytes=h * _FP16_BYTES, launches=EAGER_NORM_LAUNCHES)

    # the cache after the step: every cached token's keys and values read and written anew
    cached = c.batch * (c.kv_len if c.phase == "decode" else c.q_len)
    row_bytes = T * h * _FP16_BYTES
    rope_elems = T * (cfg.q_size + cfg.kv_size)
    ops: list[Op] = [
        vec("embedding", "embedding", T * h, 0, 1, table_bytes=row_bytes),
        vec("rope_table", "rope", T * cfg.head_dim, 2, 1,
            launches=EAGER_ROTARY_TABLE_LAUNCHES),
        norm("input_norm", L),
        c.gemm("q_proj", T, cfg.q_size, h, L),
        c.gemm("k_proj", T, cfg.kv_size, h, L),
        c.gemm("v_proj", T, cfg.kv_size, h, L),
        vec("rope", "rope", rope_elems, 3, L, elem_bytes=EAGER_ROPE_BYTES,
            launches=EAGER_ROPE_LAUNCHES),
        vec("kv_append", "cache_append", 2 * cached * cfg.kv_size, 0, L, launches=2),
        _attention(cfg, c.scheme, phase=c.phase, batch=c.batch, q_len=c.q_len,
                   kv_len=c.kv_len, count=L, page_tokens=0, sparse_block=0, sparse_topk=0),
        c.gemm("o_proj", T, h, cfg.attn_out_size, L),
        vec("attn_residual", "residual", T * h, 1, L, reads=2),
        norm("post_norm", L),
        c.gemm("gate_proj", T, i, h, L),
        c.gemm("up_proj", T, i, h, L),
        vec("act", "activation", T * i, 5, L, elem_bytes=EAGER_ACT_BYTES,
            launches=EAGER_ACT_LAUNCHES),
        c.gemm("down_proj", T, h, i, L),
        vec("mlp_residual", "residual", T * h, 1, L, reads=2),
        norm("final_norm", 1),
        # transformers computes the logits of every position of the pass
        c.gemm("lm_head", T, cfg.vocab_size, h, 1),
    ]
    return ops


def _attention_block(c: _Ctx) -> list[Op]:
    """Input norm to post-attention norm of every layer."""
    cfg, T, L, h = c.cfg, c.tokens, c.cfg.num_layers, c.cfg.hidden_size
    ops: list[Op] = [c.norm("input_norm", h, L)]
    attn_s = c.scheme.for_op("attention")
    cache_int = _is_int(attn_s.kv_fmt)
    attention = _attention(cfg, c.scheme, phase=c.phase, batch=c.batch, q_len=c.q_len,
                           kv_len=c.kv_len, count=L, page_tokens=c.page_tokens,
                           sparse_block=c.sparse_block, sparse_topk=c.sparse_topk)
    if cfg.mla is None:
        ops += [
            *c.quant("quant_qkv", T * h, L, "q_proj", "k_proj", "v_proj"),
            c.gemm("q_proj", T, cfg.q_size, h, L),
            c.gemm("k_proj", T, cfg.kv_size, h, L),
            c.gemm("v_proj", T, cfg.kv_size, h, L),
        ]
        if cfg.family != "opt":
            ops.append(c.vec("rope", "rope", T * (cfg.q_size + cfg.kv_size), 3, L))
        if cache_int:
            ops.append(c.vec("kv_quant", "quantize", T * 2 * cfg.kv_size, 3, L))
        ops.append(attention)
    else:
        m, H = cfg.mla, cfg.num_heads
        first_q = "q_a_proj" if m.q_lora_rank else "q_proj"
        ops += c.quant("quant_qkv", T * h, L, first_q, "kv_a_proj")
        if m.q_lora_rank:
            ops += [
                c.gemm("q_a_proj", T, m.q_lora_rank, h, L),
                c.norm("q_a_norm", m.q_lora_rank, L),
                *c.quant("quant_q_b", T * m.q_lora_rank, L, "q_b_proj"),
                c.gemm("q_b_proj", T, cfg.q_size, m.q_lora_rank, L),
            ]
        else:
            ops.append(c.gemm("q_proj", T, cfg.q_size, h, L))
        ops += [
            c.gemm("kv_a_proj", T, m.cache_width, h, L),
            c.norm("kv_a_norm", m.kv_lora_rank, L),
            c.vec("rope", "rope", T * (H + 1) * m.qk_rope_head_dim, 3, L),
        ]
        if cache_int:
            ops.append(c.vec("kv_quant", "quantize", T * m.cache_width, 3, L))
        if c.phase == "prefill":
            ops += [
                *c.quant("quant_kv_b", T * m.kv_lora_rank, L, "kv_b_proj"),
                c.gemm("kv_b_proj", T, H * (m.qk_nope_head_dim + m.v_head_dim),
                       m.kv_lora_rank, L),
                attention,
            ]
        else:
            ops += [
                *c.quant("quant_q_absorb", T * H * m.qk_nope_head_dim, L, "q_absorb"),
                c.gemm("q_absorb", T, m.kv_lora_rank, m.qk_nope_head_dim, L * H),
                attention,
                *c.quant("quant_v_absorb", T * H * m.kv_lora_rank, L, "v_absorb"),
                c.gemm("v_absorb", T, m.v_head_dim, m.kv_lora_rank, L * H),
            ]
    bias = cfg.attention_bias
    ops += [
        *c.quant("quant_o", T * cfg.attn_out_size, L, "o_proj"),
        c.gemm("o_proj", T, h, cfg.attn_out_size, L),
        c.vec("attn_residual", "residual", T * h, 1 + bias, L, reads=2,
              table_bytes=h * _FP16_BYTES * bias),
        c.norm("post_norm", h, L),
    ]
    return ops


def _dense_mlp(c: _Ctx, layers: int) -> list[Op]:
    cfg, T, h, i = c.cfg, c.tokens, c.cfg.hidden_size, c.cfg.intermediate_size
    bias = cfg.mlp_bias
    if cfg.family == "opt":
        up: list[Op] = [
            *c.quant("quant_mlp", T * h, layers, "fc1"),
            c.gemm("fc1", T, i, h, layers),
            c.vec("act", "activation", T * i, 1 + bias, layers,
                  table_bytes=i * _FP16_BYTES * bias),  # ReLU (+ bias)
        ]
        down = "fc2"
    else:
        up = [
            *c.quant("quant_mlp", T * h, layers, "gate_proj", "up_proj"),
            c.gemm("gate_proj", T, i, h, layers),
            c.gemm("up_proj", T, i, h, layers),
            c.vec("act", "activation", T * i, 5 + 2 * bias, layers, reads=2,
                  table_bytes=2 * i * _FP16_BYTES * bias),  # SiLU(gate) * up (+ biases)
        ]
        down = "down_proj"
    return [
        *up,
        *c.quant("quant_down", T * i, layers, down),
        c.gemm(down, T, h, i, layers),
        c.vec("mlp_residual", "residual", T * h, 1 + bias, layers, reads=2,
              table_bytes=h * _FP16_BYTES * bias),
    ]


def _moe_mlp(c: _Ctx, moe: MoEConfig, layers: int) -> list[Op]:
    T, h, mi = c.tokens, c.cfg.hidden_size, moe.intermediate_size
    E, k, shared = moe.num_experts, moe.experts_per_tok, moe.num_shared_experts
    n_act, rows = _routed(moe, T)
    ops: list[Op] = [
        *c.quant("quant_moe", T * h, layers, "router", "shared_gate", "expert_gate"),
        c.gemm("router", T, E, h, layers),
        c.vec("topk", "router", T * E, 4, layers),  # softmax and top-k selection
    ]
    if shared:
        si = shared * mi
        ops += [
            c.gemm("shared_gate", T, si, h, layers),
            c.gemm("shared_up", T, si, h, layers),
            c.vec("shared_act", "activation", T * si, 5, layers, reads=2),
            *c.quant("quant_shared_down", T * si, layers, "shared_down"),
            c.gemm("shared_down", T, h, si, layers),
        ]
    count = layers * n_act
    ops += [
        c.gemm("expert_gate", rows, mi, h, count),
        c.gemm("expert_up", rows, mi, h, count),
        c.vec("expert_act", "activation", T * k * mi, 5, layers, reads=2),
        *c.quant("quant_expert_down", T * k * mi, layers, "expert_down"),
        c.gemm("expert_down", rows, h, mi, count),
        # per output element: k routing-weight products and k adds (plus the shared experts')
        c.vec("moe_residual", "residual", T * h, 2 * k + (shared > 0), layers,
              reads=1 + k + (shared > 0)),
    ]
    return ops


def op_names(cfg: ModelConfig, *, phase: Literal["prefill", "decode"] = "decode",
             quant: str | QuantScheme = "fp16") -> tuple[str, ...]:
    """Names of the operators :func:`lower` emits for ``cfg``, in order (they do not depend
    on ``batch`` or ``seq``)."""
    return tuple(op.name for op in lower(cfg, phase=phase, batch=1, seq=1, quant=quant))
