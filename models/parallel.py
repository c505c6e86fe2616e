"""One forward pass of a model split over several devices: the parallel plan, each device's
operators and the collectives between them (hardware-free; ``sim.devices`` costs them).

A :class:`ParallelPlan` runs the model on ``tp * pp`` devices:

* **Tensor parallelism** (``tp``; Megatron-LM, Shoeybi et al. 2019, section 3): inside a
  pipeline stage, ``tp`` devices split every layer. The query, key and value projections and
  the MLP's first GEMMs are split by columns (each device its heads, its slice of the
  intermediate width), the output projection and the MLP's last GEMM by rows, each followed by
  an all-reduce of the ``tokens x hidden`` activations; attention runs each device's heads
  (key/value heads are split too, or each device keeps one when ``tp`` exceeds them, as
  serving engines replicate them); the embedding and the LM head are split over the
  vocabulary (an all-reduce after the embedding, an all-gather of the logits). Norms, residual
  adds and the router run on every device on the whole activations.
* **Sequence parallelism** (``sp``; Korthikanti et al. 2022): the norms and residual adds run
  on ``tokens / tp`` tokens each; every all-reduce becomes a reduce-scatter after the row-split
  GEMM and an all-gather before the next column-split one (the same bytes in two halves).
* **Expert parallelism** (``ep``, 1 or ``tp``; GShard, Lepikhin et al. 2020): with ``ep = tp``
  each device holds ``num_experts / ep`` whole experts; each device routes its ``1 / ep`` of
  the tokens, sends them to their experts' devices (all-to-all), the experts run, the results
  come back (all-to-all) and an all-gather makes the activations whole again (no all-gather
  under ``sp``, where they stay split). With ``ep = 1`` the experts are split like the dense
  MLP.
* **Pipeline parallelism** (``pp``; GPipe, Huang et al. 2019): the layers are cut into ``pp``
  consecutive stages as evenly as possible (the first stages take the remainder), the first
  with the embedding, the last with the final norm and the head; the batch runs as
  ``microbatches`` micro-batches, each stage sending its ``tokens x hidden`` activations of a
  micro-batch to the next (send/receive).

:func:`lower_parallel` lowers each stage with :func:`models.llm.lower` (the stage's layers, a
micro-batch's sequences) and splits every operator by its name's rule (:data:`SPLIT`); an
operator without a rule is refused, so a new operator in :func:`models.llm.lower` must say how
it splits. Per device it also states the memory that must stay resident: the weights of its
slice (every expert it holds), its slice of the KV cache of the whole batch, and the largest
operator's activations.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

from models import ModelError
from models.formats import get_format
from models.llm import ModelConfig, _routed, _storage_bits, _weight_matrices, kv_cache_bytes, lower
from models.ops import Attention, Gemm, Op, Vector
from models.quant import QuantScheme, get_scheme

__all__ = [
    "COLLECTIVE_KINDS",
    "SPLIT",
    "Collective",
    "ParallelPlan",
    "ParallelWorkload",
    "Stage",
    "lower_parallel",
]

CollectiveKind = Literal["all_reduce", "all_gather", "reduce_scatter", "all_to_all",
                         "send_recv"]
#: The collectives a plan places (``send_recv``: a pipeline stage's activations to the next).
COLLECTIVE_KINDS: tuple[str, ...] = ("all_reduce", "all_gather", "reduce_scatter",
                                     "all_to_all", "send_recv")

#: How each operator of :func:`models.llm.lower` splits under tensor parallelism:
#: ``col``: a GEMM split by output columns (``N / tp``); ``row``: split by its reduction
#: (``K / tp``), its output summed over the devices by the block's all-reduce; ``rep``: every
#: device runs it whole; ``heads``: attention over the device's heads; ``width``: element-wise
#: work over a width the columns split (``elems / tp``); ``token``: element-wise work on the
#: whole activations (``elems / tp`` under sequence parallelism); ``vocab``: over the
#: vocabulary (split); ``expert_col``/``expert_row``: routed experts' GEMMs (split like
#: ``col``/``row``, or whole experts under expert parallelism); ``expert_width``: their
#: element-wise work.
SPLIT: dict[str, str] = {
    "embedding": "vocab", "pos_embedding": "token", "input_norm": "token",
    "quant_qkv": "rep", "q_proj": "col", "k_proj": "col", "v_proj": "col",
    "q_a_proj": "rep", "q_a_norm": "rep", "quant_q_b": "rep", "q_b_proj": "col",
    "kv_a_proj": "rep", "kv_a_norm": "rep", "quant_kv_b": "rep", "kv_b_proj": "col",
    "rope": "width", "kv_quant": "width", "attention": "heads",
    "quant_q_absorb": "width", "q_absorb": "heads", "quant_v_absorb": "width",
    "v_absorb": "heads", "quant_o": "width", "o_proj": "row", "attn_residual": "token",
    "post_norm": "token", "quant_mlp": "rep", "gate_proj": "col", "up_proj": "col",
    "fc1": "col", "act": "width", "quant_down": "width", "down_proj": "row", "fc2": "row",
    "mlp_residual": "token", "quant_moe": "rep", "router": "rep", "topk": "rep",
    "shared_gate": "col", "shared_up": "col", "shared_act": "width",
    "quant_shared_down": "width", "shared_down": "row", "expert_gate": "expert_col",
    "expert_up": "expert_col", "expert_act": "expert_width",
    "quant_expert_down": "expert_width", "expert_down": "expert_row",
    "moe_residual": "token", "final_norm": "token", "quant_head": "rep", "lm_head": "vocab",
    "sampling": "vocab",
}
#: The operators only the first stage runs, and only the last.
_FIRST_ONLY = ("embedding", "pos_embedding")
_LAST_ONLY = ("final_norm", "quant_head", "lm_head", "sampling")
#: The GEMM whose output a block's all-reduce (or reduce-scatter) sums: the attention block's
#: and the MLP's last row-split GEMM.
_BLOCK_END = ("o_proj", "down_proj", "fc2", "expert_down")


@dataclass(frozen=True, slots=True, kw_only=True)
class ParallelPlan:
    """How a pass is split over ``tp * pp`` devices (module doc)."""

    tp: int = 1
    pp: int = 1
    ep: int = 1
    microbatches: int = 1
    sp: bool = False

    def __post_init__(self) -> None:
        for field in ("tp", "pp", "ep", "microbatches"):
            v = getattr(self, field)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 4096:
                raise ModelError(f"{field}: must be an integer from 1 to 4096 (got {v!r})")
        if not isinstance(self.sp, bool):
            raise ModelError(f"sp: must be true or false (got {self.sp!r})")
        if self.ep not in (1, self.tp):
            raise ModelError(f"ep: {self.ep} experts-parallel devices; use 1 (experts split "
                             f"like the MLP) or tp = {self.tp} (whole experts per device)")
        if self.sp and self.tp == 1:
            raise ModelError("sp: sequence parallelism splits the tokens over the tensor-"
                             "parallel devices; it needs tp > 1")

    @property
    def devices(self) -> int:
        return self.tp * self.pp


@dataclass(frozen=True, slots=True, kw_only=True)
class Collective:
    """One collective each device of a group of ``group`` takes part in, ``count`` times per
    micro-batch. ``bytes``: the whole buffer (all-reduce: the tensor each device holds and
    gets back summed; all-gather: the gathered result; reduce-scatter: the input before it is
    split; all-to-all: what each device sends out and keeps, its own share included;
    send/receive: what goes to the next stage). ``after``: the operator whose output it moves
    (it can overlap that operator), ``None`` for a stage boundary."""

    name: str
    kind: CollectiveKind
    bytes: int
    group: int
    count: int
    after: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Stage:
    """One pipeline stage: what each of its ``tp`` devices runs per micro-batch, and what each
    keeps resident (bytes)."""

    index: int
    #: Its layers, ``[first, stop)`` of the model's.
    layers: tuple[int, int]
    ops: tuple[Op, ...]
    collectives: tuple[Collective, ...]
    weight_bytes: float
    kv_cache_bytes: float
    activation_bytes: float

    @property
    def memory_bytes(self) -> float:
        return self.weight_bytes + self.kv_cache_bytes + self.activation_bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class ParallelWorkload:
    """A pass under a :class:`ParallelPlan`: its stages in order."""

    plan: ParallelPlan
    stages: tuple[Stage, ...]
    #: Sequences per micro-batch.
    microbatch: int


def _stage_layers(layers: int, pp: int) -> list[tuple[int, int]]:
    base, extra = divmod(layers, pp)
    out, first = [], 0
    for s in range(pp):
        n = base + (s < extra)
        out.append((first, first + n))
        first += n
    return out


def _stage_config(cfg: ModelConfig, first: int, stop: int) -> ModelConfig:
    """``cfg`` with only layers ``[first, stop)``: their count and, with experts, how many of
    them are mixture-of-experts layers (the stage's dense layers first; ``lower`` uses counts)."""
    n = stop - first
    if cfg.moe is None:
        return dataclasses.replace(cfg, num_layers=n)
    m = cfg.moe
    moe_layers = sum(1 for i in range(max(first, m.first_dense_layers), stop)
                     if i % m.layer_freq == 0)
    moe = dataclasses.replace(m, first_dense_layers=n - moe_layers, layer_freq=1)
    return dataclasses.replace(cfg, num_layers=n, moe=moe)


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _kv_heads_per_device(heads: int, kv_heads: int, tp: int, name: str) -> int:
    if heads % tp:
        raise ModelError(f"tp: {name} has {heads} query heads, not a multiple of tp = {tp}; "
                         "use a divisor of the heads")
    if kv_heads % tp and tp % kv_heads:
        raise ModelError(f"tp: {name} has {kv_heads} key/value heads; tp = {tp} must divide "
                         "them or be a multiple of them (each device then keeps one)")
    return max(1, kv_heads // tp)


def _split_op(op: Op, rule: str, plan: ParallelPlan, kv_dev: int, head_dim: int,
              n_act: int) -> Op:
    """One device's share of ``op`` under its rule (:data:`SPLIT`)."""
    tp, ep = plan.tp, plan.ep
    if rule == "rep" or tp == 1:
        return op
    if isinstance(op, Gemm):
        if op.name in ("k_proj", "v_proj"):  # the device's key/value heads
            return dataclasses.replace(op, N=kv_dev * head_dim)
        if rule in ("col", "vocab") or (rule == "expert_col" and ep == 1):
            return dataclasses.replace(op, N=_ceil(op.N, tp))
        if rule == "row" or (rule == "expert_row" and ep == 1):
            return dataclasses.replace(op, K=_ceil(op.K, tp))
        if rule in ("expert_col", "expert_row"):  # whole experts, ceil(n_act / ep) here
            layers = op.count // n_act
            return dataclasses.replace(op, count=layers * _ceil(n_act, ep))
        if rule == "heads":  # per-head GEMMs (MLA's absorbed projections), count = L x H
            return dataclasses.replace(op, count=_ceil(op.count, tp))
    if isinstance(op, Attention):
        kv = op.kv_heads if op.kv_shared else kv_dev
        return dataclasses.replace(op, heads=op.heads // tp, kv_heads=min(kv, op.heads // tp))
    if isinstance(op, Vector):
        if op.kind == "embedding" and rule == "vocab":  # its rows of the table, whole output
            return dataclasses.replace(op, table_bytes=op.table_bytes / tp)
        split = (rule in ("width", "vocab", "expert_width") or (rule == "token" and plan.sp))
        if split:
            return dataclasses.replace(op, elems=_ceil(op.elems, tp),
                                       table_bytes=op.table_bytes / tp)
        return op
    raise ModelError(f"{op.name}: no rule splits a {type(op).__name__} by {rule!r}")


def _act_bytes(ops: list[Op]) -> float:
    """Bytes per element of the activations the devices exchange (the element-wise ops'
    full-precision format)."""
    for op in ops:
        if isinstance(op, Vector):
            return get_format(op.fmt).bits / 8
    return 2.0


def _collectives(ops: list[Op], plan: ParallelPlan, cfg: ModelConfig, stage_cfg: ModelConfig,
                 tokens: int, act: float, last: bool) -> list[Collective]:
    """The collectives of one stage per micro-batch (module doc)."""
    tp, h = plan.tp, cfg.hidden_size
    names = {op.name: op for op in ops}
    out: list[Collective] = []
    whole = math.ceil(tokens * h * act)  # one tokens x hidden activation

    def block_sum(name: str, after: str, count: int) -> None:
        if plan.sp:
            out.append(Collective(name=f"{name}_reduce_scatter", kind="reduce_scatter",
                                  bytes=whole, group=tp, count=count, after=after))
            out.append(Collective(name=f"{name}_all_gather", kind="all_gather",
                                  bytes=whole, group=tp, count=count, after=None))
        else:
            out.append(Collective(name=f"{name}_all_reduce", kind="all_reduce", bytes=whole,
                                  group=tp, count=count, after=after))

    if tp > 1:
        if "embedding" in names:  # vocabulary-parallel embedding: the rows summed
            block_sum("embedding", "embedding", 1)
        L = stage_cfg.num_layers
        block_sum("attention", "o_proj", L)
        dense = stage_cfg.num_dense_layers
        moe_layers = stage_cfg.num_moe_layers
        if dense:
            block_sum("mlp", "fc2" if "fc2" in names else "down_proj", dense)
        if moe_layers:
            assert cfg.moe is not None
            k = cfg.moe.experts_per_tok
            if plan.ep > 1:
                routed = math.ceil(_ceil(tokens, plan.ep) * k * h * act) * plan.ep
                out.append(Collective(name="expert_dispatch", kind="all_to_all", bytes=routed,
                                      group=plan.ep, count=moe_layers, after=None))
                out.append(Collective(name="expert_combine", kind="all_to_all", bytes=routed,
                                      group=plan.ep, count=moe_layers, after="expert_down"))
                if not plan.sp:
                    out.append(Collective(name="moe_all_gather", kind="all_gather",
                                          bytes=whole, group=tp, count=moe_layers,
                                          after=None))
                if cfg.moe.num_shared_experts:  # the shared experts are split like the MLP
                    block_sum("shared_expert", "shared_down", moe_layers)
            else:
                block_sum("moe", "expert_down", moe_layers)
        if "lm_head" in names:  # vocabulary-parallel head: the logits gathered
            head = names["lm_head"]
            assert isinstance(head, Gemm)
            out.append(Collective(name="logits_all_gather", kind="all_gather",
                                  bytes=math.ceil(head.M * cfg.vocab_size * act), group=tp,
                                  count=1, after="lm_head"))
    if plan.pp > 1 and not last:
        out.append(Collective(name="stage_send", kind="send_recv", bytes=whole, group=2,
                              count=1, after=None))
    return out


def _device_weight_bytes(cfg: ModelConfig, stage_cfg: ModelConfig, scheme: QuantScheme,
                         plan: ParallelPlan, kv_dev: int, first: bool, last: bool) -> float:
    """Resident weight bytes on one device of a stage: each weight matrix of its layers as its
    rule splits it (every expert it holds), the fp16 norms of its layers, the embedding table's
    vocabulary slice on the first stage and the head's on the last (a tied head keeps its own
    copy of the table's slice when it is on another stage)."""
    tp, h = plan.tp, cfg.hidden_size
    bits = 0.0
    for name, n, k, count in _weight_matrices(stage_cfg):
        if name == "lm_head":
            continue
        rule = SPLIT[name]
        if name in ("k_proj", "v_proj"):
            n = kv_dev * cfg.head_dim
        elif rule in ("col",) or (rule == "expert_col" and plan.ep == 1):
            n = _ceil(n, tp)
        elif rule == "row" or (rule == "expert_row" and plan.ep == 1):
            k = _ceil(k, tp)
        elif rule in ("expert_col", "expert_row"):
            count = count // cfg.moe.num_experts * _ceil(cfg.moe.num_experts, plan.ep)  # type: ignore[union-attr]
        bits += n * k * count * _storage_bits(scheme.for_op(name), k)
    vocab = _ceil(cfg.vocab_size, tp)
    if last:
        bits += vocab * h * _storage_bits(scheme.for_op("lm_head"), h) if not (
            cfg.tie_word_embeddings) else 0.0
    fp16 = 16
    norm = 2 * h if cfg.family == "opt" else h
    vec = 2 * stage_cfg.num_layers * norm + (norm if last else 0)
    if cfg.mla is not None:
        vec += stage_cfg.num_layers * (cfg.mla.kv_lora_rank + cfg.mla.q_lora_rank)
    if first or (last and cfg.tie_word_embeddings):
        vec += vocab * h
    if first and cfg.learned_positions:
        vec += cfg.learned_positions * h
    if cfg.attention_bias:
        vec += stage_cfg.num_layers * (_ceil(cfg.q_size, tp) + 2 * kv_dev * cfg.head_dim + h)
    if cfg.mlp_bias:
        gated = 2 if cfg.family != "opt" else 1
        vec += stage_cfg.num_dense_layers * (gated * _ceil(cfg.intermediate_size, tp) + h)
    return (bits + vec * fp16) / 8


def lower_parallel(
    cfg: ModelConfig,
    plan: ParallelPlan,
    *,
    phase: Literal["prefill", "decode"],
    batch: int,
    seq: int,
    quant: str | QuantScheme = "fp16",
    page_tokens: int = 0,
    sparse_block: int = 0,
    sparse_topk: int = 0,
) -> ParallelWorkload:
    """One pass of ``cfg`` under ``plan`` (module doc): the stages' per-device operators of one
    micro-batch of ``batch / plan.microbatches`` sequences, their collectives and resident
    bytes. Raises :class:`ModelError` (one line, naming the plan's field) when the plan does
    not fit the model: ``tp`` not dividing the heads, ``pp`` above the layers, ``ep`` not
    dividing the experts, ``microbatches`` not dividing ``batch``."""
    if not isinstance(plan, ParallelPlan):
        raise TypeError(f"plan: expected a ParallelPlan, got {type(plan).__name__}")
    scheme = quant if isinstance(quant, QuantScheme) else get_scheme(quant)
    if plan.pp > cfg.num_layers:
        raise ModelError(f"pp: {plan.pp} pipeline stages for {cfg.num_layers} layers of "
                         f"{cfg.name}; use at most {cfg.num_layers}")
    if batch % plan.microbatches:
        raise ModelError(f"microbatches: {plan.microbatches} does not divide the batch of "
                         f"{batch} sequences; use a divisor of {batch}")
    if plan.ep > 1:
        if cfg.moe is None:
            raise ModelError(f"ep: {cfg.name} has no experts; use ep = 1")
        if cfg.moe.num_experts % plan.ep:
            raise ModelError(f"ep: {cfg.moe.num_experts} experts of {cfg.name} do not divide "
                             f"over ep = {plan.ep} devices; use a divisor")
    kv_dev = _kv_heads_per_device(cfg.num_heads, cfg.num_kv_heads, plan.tp, cfg.name)
    widths = [("MLP", cfg.intermediate_size)] if cfg.num_dense_layers else []
    if cfg.moe is not None and plan.ep == 1:
        widths.append(("expert", cfg.moe.intermediate_size))
    for what, width in widths:
        if width % plan.tp:
            raise ModelError(f"tp: the {what} width {width} of {cfg.name} does not divide "
                             f"over tp = {plan.tp}; use a divisor")
    mb = batch // plan.microbatches
    tokens = mb * seq if phase == "prefill" else mb
    stages = []
    ranges = _stage_layers(cfg.num_layers, plan.pp)
    for s, (first_layer, stop) in enumerate(ranges):
        first, last = s == 0, s == plan.pp - 1
        stage_cfg = _stage_config(cfg, first_layer, stop)
        ops = lower(stage_cfg, phase=phase, batch=mb, seq=seq, quant=scheme,
                    page_tokens=page_tokens, sparse_block=sparse_block,
                    sparse_topk=sparse_topk)
        ops = [op for op in ops if (first or op.name not in _FIRST_ONLY)
               and (last or op.name not in _LAST_ONLY)]
        n_act = _routed(cfg.moe, tokens)[0] if cfg.moe is not None else 1
        split: list[Op] = []
        for op in ops:
            if op.name not in SPLIT:
                raise ModelError(f"{op.name}: no tensor-parallel rule for this operator "
                                 "(models.parallel.SPLIT)")
            split.append(_split_op(op, SPLIT[op.name], plan, kv_dev, cfg.head_dim, n_act))
        act = _act_bytes(ops)
        colls = _collectives(split, plan, cfg, stage_cfg, tokens, act, last)
        # the whole batch's cache (every micro-batch's sequences) on the device's KV heads
        kv = kv_cache_bytes(stage_cfg, batch=batch, seq=seq, quant=scheme)
        if cfg.mla is None:
            kv = kv * kv_dev / cfg.num_kv_heads
        act_peak = max((op.M * op.K * get_format(op.a_fmt).bits
                        + op.M * op.N * get_format(op.o_fmt).bits) / 8
                       for op in split if isinstance(op, Gemm))
        stages.append(Stage(
            index=s, layers=(first_layer, stop), ops=tuple(split), collectives=tuple(colls),
            weight_bytes=_device_weight_bytes(cfg, stage_cfg, scheme, plan, kv_dev, first,
                                              last),
            kv_cache_bytes=kv, activation_bytes=act_peak))
    return ParallelWorkload(plan=plan, stages=tuple(stages), microbatch=mb)
