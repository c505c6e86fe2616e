"""No `--set` is silently ignored: for every preset, every key of the architecture either changes
some answer of `tpe sim gemm`, `tpe sim attention` or `tpe sim model`, or exits 2 naming the
key; on GPU presets the kernel model's inputs (SMs, clock, HBM bandwidth) act consistently."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hw.spec import gpu_model_keys, list_presets, load_arch, load_arch_dict
from sim.cli import main

TINY = {"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000,
        "max_position_embeddings": 4096}


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def _commands(preset: str, model: Path) -> list[list[str]]:
    """Workloads that between them touch every part of an architecture: a compute-bound GEMM,
    one in MX blocks (scales a GPU's tensor cores do not take), one too large for an on-chip
    level, a decode GEMV, causal prefill and decode attention (the vector unit's softmax), and
    a model (the capacity check)."""
    return [
        ["sim", "gemm", "--arch", preset, "--M", "1024", "--N", "1024", "--K", "1024"],
        ["sim", "gemm", "--arch", preset, "--M", "1024", "--N", "1024", "--K", "1024",
         "--quant", "mxfp8"],
        ["sim", "gemm", "--arch", preset, "--M", "1", "--N", "4096", "--K", "4096"],
        ["sim", "gemm", "--arch", preset, "--M", "8192", "--N", "16384", "--K", "8192"],
        ["sim", "attention", "--arch", preset, "--batch", "2", "--heads", "8", "--kv-heads", "2",
         "--q-len", "512", "--kv-len", "512", "--head-dim", "64", "--causal"],
        ["sim", "attention", "--arch", preset, "--batch", "1", "--heads", "8", "--kv-heads", "2",
         "--q-len", "1", "--kv-len", "4096", "--head-dim", "128"],
        ["sim", "model", "--arch", preset, "--model", str(model), "--phase", "decode",
         "--batch", "4", "--seq", "1024"],
    ]


def _leaves(d: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def _perturbations(value: Any) -> list[Any]:
    """Other values a field could take (the first valid one that acts is enough)."""
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):  # a buffer may have bandwidth to spare: down to 1/16
        return [value // 2, value * 2, value // 4, value // 16, value + 1]
    if isinstance(value, float):
        return [value / 2, value * 2]
    if isinstance(value, str):
        return [v for v in ("ws", "os", "core", "chip", "other") if v != value]
    return []  # lists (a level's operands): changing them changes the hierarchy's shape


def _context(key: str, raw: dict[str, Any]) -> list[str]:
    """Settings under which a key can matter: a level's ports multiply its width, so they are
    tried with the narrowest width (at the presets' widths the engine, not the port, limits)."""
    parts = key.split(".")
    if parts[0] == "memory" and parts[-1] == "ports" and "gpu" not in raw:
        return [f"{'.'.join(parts[:-1])}.width_bits=8"]
    return []


def _as_toml(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@pytest.mark.parametrize("preset", list_presets())
def test_every_set_key_acts_or_exits_2(preset: str, tmp_path: Path) -> None:
    model = tmp_path / "tiny.json"
    model.write_text(json.dumps(TINY))
    commands = [[*c, "--json"] for c in _commands(preset, model)]
    raw = load_arch_dict(preset)
    baseline: dict[tuple[str, ...], list[str]] = {}

    def answers(context: list[str]) -> list[str]:
        flags = [x for kv in context for x in ("--set", kv)]
        out = []
        for c in commands:
            code, text, err = _run([*c, *flags])
            assert code == 0, f"{preset} with {context}: {err}"
            out.append(text)
        return out

    def verdict(setting: str, context: list[str]) -> str:
        """``acts`` at the first answer that differs from the baseline, else ``refused``
        (checked: exit 2, one line naming the key) or ``INERT``."""
        flags = [x for kv in [*context, setting] for x in ("--set", kv)]
        base = baseline[tuple(context)]
        for c, expected in zip(commands, base, strict=True):
            code, text, err = _run([*c, *flags])
            if code != 0:
                assert code == 2, err
                assert err.count("\n") == 1 and err.startswith("tpe: error: "), err
                leaf = key.split(".")[-1]
                assert leaf in err or key in err, f"--set {setting}: {err!r}"
                return "refused"
            if text != expected:
                return "acts"
        return "INERT"

    walked = acted = refused = 0
    for key, value in _leaves(raw):
        options = _perturbations(value)
        if not options:
            continue
        walked += 1
        context = _context(key, raw)
        if tuple(context) not in baseline:
            baseline[tuple(context)] = answers(context)
        verdicts: list[str] = []
        for new in options:
            verdicts.append(verdict(f"{key}={_as_toml(new)}", context))
            if verdicts[-1] == "acts":
                break
        assert "INERT" not in verdicts or "acts" in verdicts, (
            f"{preset}: --set {key} was accepted and changed no answer ({verdicts})")
        acted += "acts" in verdicts
        refused += "acts" not in verdicts
    assert walked >= 20 and acted >= 8, (walked, acted, refused)


@pytest.mark.parametrize("preset", [p for p in list_presets() if load_arch(p).gpu is not None])
def test_gpu_fields_drive_the_kernel_model(preset: str) -> None:
    """Halving HBM bandwidth slows a decode GEMV about 2x; halving the SMs, the clock or an
    SM's tensor rate slows a large compute-bound GEMM about 2x; fields the kernel model does not
    read are refused."""
    def seconds(m: int, n: int, k: int, *sets: str) -> float:
        flags = [x for kv in sets for x in ("--set", kv)]
        code, out, err = _run(["sim", "gemm", "--arch", preset, "--M", str(m), "--N", str(n),
                               "--K", str(k), "--json", *flags])
        assert code == 0, err
        return float(json.loads(out)["seconds"])

    arch = load_arch(preset)
    hbm = arch.memory[-1]
    gemv = (1, 28672, 8192)  # a Llama-2-70B MLP projection at batch 1: 470 MB of bf16 weights
    slow = seconds(*gemv, f"{hbm.name}.bandwidth_gb_per_s={hbm.bandwidth_gb_per_s / 2}")
    assert 1.9 <= slow / seconds(*gemv) <= 2.0
    big = (16384, 16384, 16384)
    base = seconds(*big)
    for change in (f"cores={arch.cores // 2}", f"clock_mhz={arch.clock_mhz / 2}",
                   f"engine.m={arch.engine.m // 2}"):
        assert 1.8 <= seconds(*big, change) / base <= 2.05, change
    assert "gpu.*" in gpu_model_keys(arch)
    for key in ("energy_table=horowitz45", "tech_nm=3", f"{arch.memory[0].name}.ports=2",
                "vector.lanes=64", "engine.a_bits=8"):
        code, _, err = _run(["sim", "gemm", "--arch", preset, "--M", "64", "--N", "64",
                             "--K", "64", "--set", key])
        assert code == 2 and key.split("=")[0] in err, (key, err)
