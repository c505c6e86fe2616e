"""Shared helpers of the model tests (tests/test_models.py, tests/test_zoo.py): lowered
operators by name and of the expected kind, one-line config errors."""

from __future__ import annotations

from typing import Any, TypeVar

import pytest

from models import ModelError
from models.llm import ModelConfig, lower
from models.ops import Attention, Gemm, Op, Vector


def by_name(ops: list[Op]) -> dict[str, Op]:
    out = {op.name: op for op in ops}
    assert len(out) == len(ops), ("operator names must be unique", [op.name for op in ops])
    return out


def lowered(cfg: ModelConfig, **kwargs: Any) -> dict[str, Op]:
    """``lower(cfg, **kwargs)`` by operator name."""
    return by_name(lower(cfg, **kwargs))


T = TypeVar("T", bound=Op)


def _of_kind(ops: dict[str, Op], name: str, kind: type[T]) -> T:
    op = ops[name]
    assert isinstance(op, kind), op
    return op


def gemm(ops: dict[str, Op], name: str) -> Gemm:
    return _of_kind(ops, name, Gemm)


def attn(ops: dict[str, Op]) -> Attention:
    return _of_kind(ops, "attention", Attention)


def vec(ops: dict[str, Op], name: str) -> Vector:
    return _of_kind(ops, name, Vector)


def one_line(e: pytest.ExceptionInfo[ModelError]) -> str:
    msg = str(e.value)
    assert "\n" not in msg, msg
    return msg
