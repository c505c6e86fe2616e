"""LLM configs (Hugging Face ``config.json``) and their lowering to GEMMs.

A decoder-only transformer of the Llama/Mistral family is described by a :class:`ModelConfig`,
loaded from the bundled zoo (``models/configs/*.json``) or from any HF-style ``config.json``
with :func:`load_model`. :func:`lower` turns one forward pass of the whole model into a list of
:class:`~models.ops.Gemm`, one entry per distinct operator with ``count`` repetitions.

Only the GEMMs are listed: embeddings (a table lookup), RMSNorm, RoPE, SiLU, the element-wise
gate product, residual adds and softmax are not matrix products and are left out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from models import ModelError
from models.formats import NumberFormat, get_format, known_formats
from models.ops import Gemm

__all__ = [
    "OP_NAMES",
    "ModelConfig",
    "kv_cache_bytes",
    "load_model",
    "lower",
    "weight_bytes",
    "zoo_models",
]

#: Operator names :func:`lower` emits, in dataflow order within one layer (then the LM head).
OP_NAMES: tuple[str, ...] = (
    "q_proj",
    "k_proj",
    "v_proj",
    "attn_qk",
    "attn_pv",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
    "lm_head",
)

_ZOO_PACKAGE = "models.configs"


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelConfig:
    """Shape of a Llama/Mistral-style decoder-only transformer.

    ``head_dim`` is the width of one attention head; query projections produce
    ``num_heads * head_dim`` features and key/value projections ``num_kv_heads * head_dim``
    (grouped-query attention when ``num_kv_heads < num_heads``). ``sliding_window`` (Mistral
    v0.1) caps how many cached tokens a decoded token attends to; ``None`` means no cap.
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

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ModelError(f"name: must be a non-empty string (got {self.name!r})")
        for field in (
            "hidden_size",
            "intermediate_size",
            "num_layers",
            "num_heads",
            "num_kv_heads",
            "head_dim",
            "vocab_size",
            "max_position_embeddings",
        ):
            v = getattr(self, field)
            if not _positive_int(v):
                raise ModelError(f"{field}: must be a positive integer (got {v!r})")
        if self.sliding_window is not None and not _positive_int(self.sliding_window):
            raise ModelError(
                f"sliding_window: must be a positive integer or None (got {self.sliding_window!r})"
            )
        if not isinstance(self.tie_word_embeddings, bool):
            raise ModelError(
                f"tie_word_embeddings: must be true or false (got {self.tie_word_embeddings!r})"
            )
        if not isinstance(self.model_type, str):
            raise ModelError(f"model_type: must be a string (got {self.model_type!r})")
        if self.num_heads % self.num_kv_heads:
            raise ModelError(
                f"num_kv_heads: num_heads {self.num_heads} is not divisible by num_kv_heads "
                f"{self.num_kv_heads}; use a divisor of {self.num_heads}"
            )

    @property
    def q_size(self) -> int:
        """Output features of ``q_proj`` (input features of ``o_proj``)."""
        return self.num_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        """Output features of ``k_proj`` and of ``v_proj``."""
        return self.num_kv_heads * self.head_dim

    @property
    def layer_params(self) -> int:
        """Weights of one decoder layer: attention and MLP projections plus two RMSNorm scales."""
        attn = self.hidden_size * (2 * self.q_size + 2 * self.kv_size)
        mlp = 3 * self.hidden_size * self.intermediate_size
        return attn + mlp + 2 * self.hidden_size

    @property
    def num_params(self) -> int:
        """All parameters: embedding, layers, final norm and (unless tied) the LM head."""
        embed = self.vocab_size * self.hidden_size
        head = 0 if self.tie_word_embeddings else embed
        return embed + self.num_layers * self.layer_params + self.hidden_size + head


def weight_bytes(cfg: ModelConfig, w_fmt: str = "int8") -> float:
    """Bytes to store all ``cfg.num_params`` parameters in ``w_fmt`` (norms included)."""
    return cfg.num_params * _format(w_fmt, "w_fmt").bits / 8


def kv_cache_bytes(cfg: ModelConfig, *, batch: int, seq: int, kv_fmt: str = "int8") -> float:
    """Bytes of the K and V caches of ``batch`` sequences of ``seq`` tokens in ``kv_fmt``."""
    _check_count("batch", batch)
    _check_count("seq", seq)
    elems = 2 * cfg.num_layers * cfg.kv_size * batch * seq
    return elems * _format(kv_fmt, "kv_fmt").bits / 8


# --------------------------------------------------------------------------------------------
# Loading


def zoo_models() -> list[str]:
    """Names of the bundled configs (file stems of ``models/configs/*.json``), sorted."""
    root = resources.files(_ZOO_PACKAGE)
    return sorted(p.name[: -len(".json")] for p in root.iterdir() if p.name.endswith(".json"))


def load_model(name_or_path: str | Path) -> ModelConfig:
    """A zoo name (see :func:`zoo_models`, case-insensitive) or a path to an HF ``config.json``.

    A path is anything ending in ``.json``, containing a path separator, or naming an existing
    file or folder (a folder means its ``config.json``). Required keys: ``hidden_size``,
    ``intermediate_size``, ``num_hidden_layers``, ``num_attention_heads``, ``vocab_size``,
    ``max_position_embeddings``. ``num_key_value_heads`` defaults to ``num_attention_heads``,
    ``head_dim`` to ``hidden_size // num_attention_heads``, ``tie_word_embeddings`` to false.
    Raises :class:`ModelError` with a one-line message naming the field and the fix.
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


_REQUIRED = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "vocab_size",
    "max_position_embeddings",
)
_MOE_KEYS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")


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


def _from_dict(raw: dict[str, Any], *, source: str, name: str) -> ModelConfig:
    model_type = raw.get("model_type", "llama")
    if not isinstance(model_type, str):
        raise ModelError(f"{source}: model_type: must be a string (got {model_type!r})")
    for key in _REQUIRED:
        if key not in raw:
            raise ModelError(
                f"{source}: missing required key {key!r} (model_type {model_type!r}); "
                "only Llama/Mistral-style decoder configs are supported, with keys "
                + ", ".join(_REQUIRED)
            )
    for key in _MOE_KEYS:
        v = raw.get(key)
        if v is not None and not (isinstance(v, int) and v <= 1):
            raise ModelError(
                f"{source}: {key}: mixture-of-experts configs are not supported (got {v!r}); "
                "use a dense Llama/Mistral-style config"
            )

    def pos_int(key: str, default: int | None = None) -> int:
        v = raw.get(key)
        if v is None and default is not None:
            return default
        if not _positive_int(v):
            raise ModelError(f"{source}: {key}: must be a positive integer (got {v!r})")
        return v

    hidden = pos_int("hidden_size")
    heads = pos_int("num_attention_heads")
    values = {k: pos_int(k) for k in _REQUIRED}
    kv_heads = pos_int("num_key_value_heads", default=heads)
    if raw.get("head_dim") is None and hidden % heads:
        raise ModelError(
            f"{source}: num_attention_heads: hidden_size {hidden} is not divisible by "
            f"num_attention_heads {heads}; fix the head count or give head_dim explicitly"
        )
    head_dim = pos_int("head_dim", default=hidden // heads)
    if heads % kv_heads:
        raise ModelError(
            f"{source}: num_key_value_heads: num_attention_heads {heads} is not divisible by "
            f"num_key_value_heads {kv_heads}; use a divisor of {heads}"
        )
    tie = raw.get("tie_word_embeddings", False)
    if not isinstance(tie, bool):
        raise ModelError(f"{source}: tie_word_embeddings: must be true or false (got {tie!r})")
    window = raw.get("sliding_window")
    if window is not None and not _positive_int(window):
        raise ModelError(
            f"{source}: sliding_window: must be a positive integer or null (got {window!r})"
        )
    return ModelConfig(
        name=name,
        hidden_size=values["hidden_size"],
        intermediate_size=values["intermediate_size"],
        num_layers=values["num_hidden_layers"],
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        vocab_size=values["vocab_size"],
        max_position_embeddings=values["max_position_embeddings"],
        tie_word_embeddings=tie,
        model_type=model_type,
        sliding_window=window,
    )


# --------------------------------------------------------------------------------------------
# Lowering


def _check_count(field: str, value: object) -> None:
    if not _positive_int(value):
        raise ModelError(f"{field}: must be an integer >= 1 (got {value!r})")


def _format(name: object, field: str) -> NumberFormat:
    if not isinstance(name, str):
        raise ModelError(f"{field}: must be a format name string (got {name!r})")
    try:
        return get_format(name)
    except ModelError:
        raise ModelError(
            f"{field}: unknown number format {name!r}; known: {', '.join(known_formats())}"
        ) from None


def _acc_fmt(*fmts: str) -> str:
    """Accumulator format: fp32 if any operand is floating point, else int32."""
    return "fp32" if any(get_format(f).family == "fp" for f in fmts) else "int32"


def lower(
    cfg: ModelConfig,
    *,
    phase: Literal["prefill", "decode"],
    batch: int,
    seq: int,
    a_fmt: str = "int8",
    w_fmt: str = "int8",
    kv_fmt: str | None = None,
) -> list[Gemm]:
    """The GEMMs of one forward pass of the whole model, in :data:`OP_NAMES` order.

    ``C[M, N] = A[M, K] @ B[K, N]``, ``count`` times. ``batch`` sequences are processed at once.

    Prefill (``seq`` prompt tokens per sequence, ``T = batch * seq`` tokens):
      * projections ``q/k/v/o_proj``, ``gate/up/down_proj``: ``M = T``, ``count = num_layers``;
        ``k_proj``/``v_proj`` have ``N = num_kv_heads * head_dim`` (grouped-query attention);
      * ``attn_qk`` (Q K^T): ``M = N = seq``, ``K = head_dim``,
        ``count = num_layers * batch * num_heads``; ``attn_pv`` (P V): ``M = seq``,
        ``N = head_dim``, ``K = seq``. The full ``seq x seq`` square is listed although the
        causal mask makes only ``seq * (seq + 1) / 2`` scores useful: a GEMM engine computes
        the whole square and masks it, so this is the work it does (a ``sliding_window``
        narrower than ``seq`` is masked the same way, not skipped);
      * ``lm_head``: only the last token of each sequence is projected (``M = batch``).

    Decode (one new token per sequence after ``seq`` tokens already in the KV cache):
      * projections and ``lm_head``: ``M = batch``;
      * attention: the new token's own key/value is appended to the cache first, so it attends
        to ``kv_len = seq + 1`` tokens (capped at ``sliding_window`` if the config has one):
        ``attn_qk`` is ``M = 1, N = kv_len, K = head_dim`` and ``attn_pv`` is
        ``M = 1, N = head_dim, K = kv_len``, ``count = num_layers * batch * num_heads``.
        Hence ``seq + 1 <= max_position_embeddings``: prefill of S tokens followed by decode
        with ``seq = S`` describes the first generated token.

    Formats: projections read activations ``a_fmt`` and weights ``w_fmt``; attention reads
    Q/P in ``a_fmt`` and K/V (``b_is_weight=False``) in ``kv_fmt`` (default ``a_fmt``).
    Outputs are ``int32`` for integer operands and ``fp32`` when any operand is floating point.
    """
    if not isinstance(cfg, ModelConfig):
        raise TypeError(f"cfg: expected a ModelConfig, got {type(cfg).__name__}")
    if phase not in ("prefill", "decode"):
        raise ModelError(f"phase: must be 'prefill' or 'decode' (got {phase!r})")
    _check_count("batch", batch)
    _check_count("seq", seq)
    _format(a_fmt, "a_fmt")
    _format(w_fmt, "w_fmt")
    kv = a_fmt if kv_fmt is None else kv_fmt
    _format(kv, "kv_fmt")
    limit = cfg.max_position_embeddings
    if phase == "prefill" and seq > limit:
        raise ModelError(
            f"seq: {seq} prompt tokens exceed max_position_embeddings {limit} of {cfg.name}; "
            f"use seq <= {limit}"
        )
    if phase == "decode" and seq + 1 > limit:
        raise ModelError(
            f"seq: decoding after {seq} cached tokens needs {seq + 1} positions, more than "
            f"max_position_embeddings {limit} of {cfg.name}; use seq <= {limit - 1}"
        )

    if phase == "prefill":
        tokens, q_len, kv_len = batch * seq, seq, seq
    else:
        tokens, q_len, kv_len = batch, 1, seq + 1
        if cfg.sliding_window is not None:
            kv_len = min(kv_len, cfg.sliding_window)

    h, i, L = cfg.hidden_size, cfg.intermediate_size, cfg.num_layers
    proj = {"a_fmt": a_fmt, "w_fmt": w_fmt, "o_fmt": _acc_fmt(a_fmt, w_fmt), "count": L}
    attn = {
        "a_fmt": a_fmt,
        "w_fmt": kv,
        "o_fmt": _acc_fmt(a_fmt, kv),
        "count": L * batch * cfg.num_heads,
        "b_is_weight": False,
    }
    return [
        Gemm(name="q_proj", M=tokens, N=cfg.q_size, K=h, **proj),
        Gemm(name="k_proj", M=tokens, N=cfg.kv_size, K=h, **proj),
        Gemm(name="v_proj", M=tokens, N=cfg.kv_size, K=h, **proj),
        Gemm(name="attn_qk", M=q_len, N=kv_len, K=cfg.head_dim, **attn),
        Gemm(name="attn_pv", M=q_len, N=cfg.head_dim, K=kv_len, **attn),
        Gemm(name="o_proj", M=tokens, N=h, K=cfg.q_size, **proj),
        Gemm(name="gate_proj", M=tokens, N=i, K=h, **proj),
        Gemm(name="up_proj", M=tokens, N=i, K=h, **proj),
        Gemm(name="down_proj", M=tokens, N=h, K=i, **proj),
        Gemm(
            name="lm_head",
            M=batch,
            N=cfg.vocab_size,
            K=h,
            a_fmt=a_fmt,
            w_fmt=w_fmt,
            o_fmt=_acc_fmt(a_fmt, w_fmt),
        ),
    ]
