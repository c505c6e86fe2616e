"""``tpe sim gemm`` / ``tpe sim model``: JSON keys, human output, one-line errors (exit 2)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_run import run

from hw.spec import list_presets, load_arch
from models.llm import load_model, lower, zoo_models
from models.quant import known_schemes
from sim.engines.systolic import gemm_compute_cycles
from sim.execution import auto_scheme

ROOT = Path(__file__).resolve().parents[1]
ACCEPTANCE = ["sim", "gemm", "--arch", "systolic", "--set", "engine.rows=32", "--set",
              "engine.cols=32", "--set", "engine.dataflow=os", "--memory", "ideal",
              "--M", "512", "--N", "4096", "--K", "4096", "--json"]
REQUIRED_KEYS = {"cycles", "compute_cycles", "stall_cycles", "utilization", "energy_pj",
                 "seconds", "breakdown", "mapping", "arch", "engine"}



def test_acceptance_command_prints_one_json_object(capsys):
    code, out, err = run(capsys, ACCEPTANCE)
    assert code == 0, err
    d = json.loads(out)
    assert REQUIRED_KEYS <= set(d)
    spec = load_arch("systolic", ["engine.rows=32", "engine.cols=32",
                                  "engine.dataflow=os"]).engine
    assert d["cycles"] == d["compute_cycles"] == gemm_compute_cycles(spec, 512, 4096, 4096)
    assert d["stall_cycles"] == 0
    assert d["arch"] == "systolic"
    assert d["engine"]["rows"] == 32 and d["engine"]["dataflow"] == "os"
    assert sum(d["breakdown"].values()) == pytest.approx(d["energy_pj"])
    assert d["mapping"]["spatial"] == {"unroll": {"m": 32, "n": 32}, "stream": "k"}
    assert d["mapping"]["kind"] == "systolic"
    assert d["core"]["actions"]["multiply"] == {
        "count": 512 * 4096 * 4096, "component": "mac_multiplier", "unit": "8x8-bit multiplies"}


def test_acceptance_command_through_the_installed_entry_point():
    proc = subprocess.run([sys.executable, "-m", "sim.cli", *ACCEPTANCE], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert REQUIRED_KEYS <= set(json.loads(proc.stdout))


@pytest.mark.parametrize("extra", [[], ["--set", "engine.dataflow=ws", "--objective", "energy"],
                                   ["--a-fmt", "int4", "--w-fmt", "int4", "--objective", "edp"]])
def test_gemm_real_memory_json_and_text(capsys, extra):
    argv = ["sim", "gemm", "--arch", "systolic", "--M", "300", "--N", "700", "--K", "900",
            *extra]
    code, out, err = run(capsys, [*argv, "--json"])
    assert code == 0, err
    d = json.loads(out)
    assert REQUIRED_KEYS <= set(d)
    assert d["cycles"] == d["compute_cycles"] + d["stall_cycles"]
    code, text, err = run(capsys, argv)
    assert code == 0, err
    assert f"{d['cycles']:,}" in text
    assert "energy" in text and "mapping" in text


@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_model_json_lists_every_operator(capsys, phase):
    code, out, err = run(capsys, ["sim", "model", "--arch", "systolic", "--model", "llama-2-7b",
                                  "--phase", phase, "--batch", "2", "--seq", "128", "--json"])
    assert code == 0, err
    d = json.loads(out)
    assert REQUIRED_KEYS <= set(d)
    auto = auto_scheme(load_arch("systolic").engine)
    names = [op.name for op in lower(load_model("llama-2-7b"), phase=phase, batch=2, seq=128,
                                     quant=auto)]
    assert [op["name"] for op in d["ops"]] == names
    assert {"q_proj", "attention", "down_proj", "lm_head"} <= set(names)
    assert d["cycles"] == sum(op["cycles"] for op in d["ops"])
    assert d["ttft_s" if phase == "prefill" else "tpot_s"] == d["seconds"]
    code, text, err = run(capsys, ["sim", "model", "--arch", "systolic", "--model",
                                   "llama-2-7b", "--phase", phase, "--batch", "2", "--seq",
                                   "128", "--quant", "w8a8"])
    assert code == 0, err
    assert all(name in text for name in names)
    assert "tokens/s" in text and "per token" in text


@pytest.mark.parametrize(("quant", "fmts"), [
    ("auto", ("int4", "int4", "int4")), ("w2a4", ("int4", "int2", "int4")),
    ("w2a4kv2", ("int4", "int2", "int2")), ("w4a16+kv4", ("fp16", "int4", "int4")),
    ("fp8", ("fp8_e4m3", "fp8_e4m3", "fp8_e4m3")),
])
def test_quant_schemes_set_the_operator_formats(capsys, quant, fmts):
    code, out, err = run(capsys, ["sim", "model", "--arch", "systolic", "--set",
                                  "engine.a_bits=4", "--set", "engine.w_bits=4", "--model",
                                  "llama-2-7b", "--phase", "decode", "--batch", "1", "--seq",
                                  "16", "--quant", quant, "--json"])
    assert code == 0, err
    ops = {op["name"]: op["shape"] for op in json.loads(out)["ops"]}
    assert (ops["q_proj"]["a_fmt"], ops["q_proj"]["w_fmt"], ops["attention"]["kv_fmt"]) == fmts


def test_every_zoo_model_preset_and_scheme_runs(capsys):
    """The acceptance matrix, thinned: every zoo model, preset and named scheme appears."""
    schemes = [s for s in known_schemes() if "[" not in s and "<" not in s] + ["w3a5kv2",
                                                                              "w4a16+kv2"]
    models, presets = zoo_models(), list_presets()
    n = max(len(models), len(presets), len(schemes))
    for i in range(n):
        model, preset = models[i % len(models)], presets[i % len(presets)]
        quant = schemes[i % len(schemes)]
        for phase in ("prefill", "decode"):
            code, out, err = run(capsys, ["sim", "model", "--arch", preset, "--model", model,
                                          "--phase", phase, "--batch", "2", "--seq", "64",
                                          "--quant", quant, "--json"])
            assert code == 0, (model, preset, quant, phase, err)
            d = json.loads(out)
            assert d["cycles"] > 0 and d["energy_pj"] > 0, (model, preset, quant)


def test_attention_command(capsys):
    argv = ["sim", "attention", "--arch", "systolic", "--batch", "2", "--heads", "32",
            "--kv-heads", "8", "--q-len", "1", "--kv-len", "4096", "--head-dim", "128"]
    code, out, err = run(capsys, [*argv, "--kv-fmt", "int4", "--json"])
    assert code == 0, err
    d = json.loads(out)
    assert REQUIRED_KEYS <= set(d)
    assert d["kind"] == "attention" and d["shape"]["kv_fmt"] == "int4"
    code, out8, err = run(capsys, [*argv, "--kv-fmt", "int8", "--json"])
    assert json.loads(out8)["dram_bytes"] > d["dram_bytes"]
    code, text, err = run(capsys, [*argv, "--causal", "--q-len", "64", "--kv-len", "64"])
    assert code == 0, err
    assert "attention" in text and "tile_rows" in text


def test_model_plot_writes_the_figures(capsys, tmp_path):
    code, _, err = run(capsys, ["sim", "model", "--arch", "lut", "--model", "llama-2-7b",
                                "--phase", "decode", "--batch", "1", "--seq", "128",
                                "--plot", str(tmp_path / "figs")])
    assert code == 0, err
    for name in ("op_breakdown.png", "roofline.png"):
        assert (tmp_path / "figs" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_model_from_a_config_file(capsys, tmp_path):
    cfg = {"hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 2,
           "num_attention_heads": 8, "vocab_size": 1000, "max_position_embeddings": 128}
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(cfg))
    code, out, err = run(capsys, ["sim", "model", "--arch", "systolic", "--model", str(path),
                                  "--phase", "prefill", "--batch", "1", "--seq", "16", "--json"])
    assert code == 0, err
    assert json.loads(out)["model"] == "tiny"


def _bad_toml(tmp_path: Path) -> str:
    path = tmp_path / "bad.toml"
    path.write_text("name = 'x'\n[engine\nkind = 'systolic'\n")
    return str(path)


GEMM = ["sim", "gemm", "--arch", "systolic", "--M", "64", "--N", "64", "--K", "64"]
MODEL = ["sim", "model", "--arch", "systolic", "--model", "llama-2-7b", "--phase", "decode",
         "--batch", "1", "--seq", "16"]


@pytest.mark.parametrize(
    ("argv", "pattern"),
    [
        (["sim", "gemm", "--arch", "systolic", "--M", "0", "--N", "8", "--K", "8"],
         r"^tpe: error: --M: must be a positive integer \(got 0\)$"),
        (["sim", "gemm", "--arch", "systolic", "--M", "8", "--N", "-3", "--K", "8"],
         r"^tpe: error: --N: must be a positive integer \(got -3\)$"),
        (["sim", "gemm", "--arch", "systolic", "--M", "8", "--N", "8", "--K", "0"],
         r"^tpe: error: --K: must be a positive integer \(got 0\)$"),
        (["sim", "gemm", "--arch", "nope", "--M", "8", "--N", "8", "--K", "8"],
         r"^tpe: error: --arch: unknown preset 'nope'; presets: .*systolic"),
        ([*GEMM, "--set", "engine.rows=0"], r"^tpe: error: engine\.rows: must be >= 1 \(got 0\)$"),
        ([*GEMM, "--a-fmt", "fp16"], r"^tpe: error: --a-fmt: fp16 is a floating-point format"),
        ([*GEMM, "--w-fmt", "int12"],
         r"^tpe: error: --w-fmt: int12 needs 12-bit operands but the engine has w_bits=8; "),
        ([*GEMM, "--a-fmt", "float7"], r"^tpe: error: --a-fmt: unknown number format 'float7'"),
        ([*GEMM, "--set", "o_buffer.capacity_bytes=1024"],
         r"^tpe: error: o_buffer: the smallest output tile .* --set o_buffer\.capacity_bytes="),
        ([*GEMM, "--memory", "fast"], r"^tpe sim gemm: error: argument --memory: invalid choice"),
        (["sim", "gemm", "--arch", "systolic", "--M", "x", "--N", "8", "--K", "8"],
         r"^tpe sim gemm: error: argument --M: invalid int value: 'x'"),
        ([*MODEL[:5], "nope", *MODEL[6:]], r"^tpe: error: --model: unknown model 'nope'"),
        ([*MODEL, "--quant", "w4"], r"^tpe: error: --quant: unknown scheme 'w4'; known: "
         r"fp16, bf16, w8a8, "),
        ([*MODEL, "--quant", "w4a17"],
         r"^tpe: error: --quant: 'w4a17': widths must be 1\.\.16 bits$"),
        ([*MODEL, "--quant", "w4a8+kv5"], r"^tpe: error: --quant: 'w4a8\+kv5': \+kv5 is not "),
        ([*MODEL, "--set", "engine.signed=false", "--quant", "w8a8"],
         r"^tpe: error: --quant: w8a8: q_proj\.a_fmt: int8 is signed but the engine is "
         r"unsigned \(engine\.signed=false\); use an unsigned format or --set "
         r"engine\.signed=true$"),
        ([*MODEL, "--sparse-topk", "4"], r"^tpe: error: --sparse-topk: block-sparse attention "
         r"needs both --sparse-block and --sparse-topk > 0$"),
        ([*MODEL, "--kv-page", "-1"], r"^tpe: error: --kv-page: must be an integer >= 0"),
        ([*MODEL, "--set", "vector.lanes=0"], r"^tpe: error: vector\.lanes: must be >= 1"),
        ([*MODEL, "--set", "a_buffer.capacity_bytes=64"], r"^tpe: error: .*a_buffer"),
        (["sim", "attention", "--arch", "systolic", "--batch", "1", "--heads", "32",
          "--kv-heads", "5", "--q-len", "1", "--kv-len", "8", "--head-dim", "64"],
         r"^tpe: error: attention\.kv_heads: 32 query heads are not a multiple of 5 "),
        (["sim", "attention", "--arch", "systolic", "--batch", "1", "--heads", "8",
          "--kv-heads", "8", "--q-len", "9", "--kv-len", "8", "--head-dim", "64"],
         r"^tpe: error: attention\.q_len: 9 queries exceed kv_len 8"),
        (["sim", "attention", "--arch", "systolic", "--batch", "1", "--heads", "8",
          "--kv-heads", "8", "--q-len", "1", "--kv-len", "8", "--head-dim", "64", "--kv-fmt",
          "int33x"], r"^tpe: error: --kv-fmt: unknown number format 'int33x'"),
        ([*MODEL[:9], "0", *MODEL[10:]], r"^tpe: error: --batch: must be a positive integer"),
        ([*MODEL[:11], "0"], r"^tpe: error: --seq: must be a positive integer \(got 0\)$"),
        # a GPU preset's kernel model searches no mapping: an energy or EDP objective would
        # change nothing, so it is refused (in every command, and on several devices too)
        (["sim", "gemm", "--arch", "h100", "--M", "8", "--N", "8", "--K", "8", "--objective",
          "energy"], r"^tpe: error: --objective: h100 is a GPU preset, whose kernel model "
         r"predicts the kernels its library runs \(no mapping to search for energy\); drop "),
        ([*MODEL[:3], "h200", *MODEL[4:], "--objective", "edp"],
         r"^tpe: error: --objective: h200 is a GPU preset, .*edp"),
        ([*MODEL[:3], "h100", *MODEL[4:], "--objective", "edp", "--devices", "2", "--tp", "2"],
         r"^tpe: error: --objective: h100 is a GPU preset, .*edp"),
        (["sim", "attention", "--arch", "a100", "--batch", "1", "--heads", "8", "--kv-heads", "8",
          "--q-len", "1", "--kv-len", "8", "--head-dim", "64", "--objective", "energy"],
         r"^tpe: error: --objective: a100 is a GPU preset, "),
        # nor does it write C in another format than its kernel's (a bf16 GEMM's C in bf16)
        (["sim", "gemm", "--arch", "h100", "--M", "8", "--N", "8", "--K", "8", "--o-fmt",
          "fp32"], r"^tpe: error: --o-fmt: h100's kernel model writes C in the format its "
         r"kernel writes .*; drop --o-fmt on a GPU preset$"),
        # nor does it time a paged or block-sparse cache: the options are refused, not ignored
        (["sim", "attention", "--arch", "h100", "--batch", "4", "--heads", "32", "--kv-heads",
          "8", "--q-len", "1", "--kv-len", "8192", "--head-dim", "128", "--kv-page", "16"],
         r"^tpe: error: attention\.page_tokens: h100's kernel model times attention over a "
         r"contiguous KV cache read whole .*; drop --kv-page on a GPU preset, or use an engine "
         r"architecture$"),
        (["sim", "attention", "--arch", "h200", "--batch", "4", "--heads", "32", "--kv-heads",
          "8", "--q-len", "1", "--kv-len", "8192", "--head-dim", "128", "--sparse-block", "64",
          "--sparse-topk", "8"], r"^tpe: error: attention\.sparse_block: h200's kernel model "),
        ([*MODEL[:3], "h100", *MODEL[4:], "--kv-page", "16"],
         r"^tpe: error: attention\.page_tokens: h100's kernel model "),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, argv, pattern):
    code, out, err = run(capsys, argv)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert re.match(pattern, lines[0]), lines[0]


def test_malformed_arch_toml_exits_2(capsys, tmp_path):
    bad = _bad_toml(tmp_path)
    code, _, err = run(capsys, ["sim", "gemm", "--arch", bad, "--M", "8", "--N", "8", "--K",
                                "8"])
    assert code == 2
    assert err.startswith(f"tpe: error: {bad}: malformed TOML")
    assert len(err.strip().splitlines()) == 1


def test_model_csv_has_one_row_per_operator_as_the_json_has_it(capsys, tmp_path) -> None:
    import csv

    table = tmp_path / "ops.csv"
    code, out, _ = run(capsys, ["sim", "model", "--arch", "systolic-4core", "--model",
                                "llama-2-7b", "--phase", "prefill", "--batch", "1", "--seq", "64",
                                "--quant", "w8a8", "--json", "--csv", str(table)])
    assert code == 0
    ops = json.loads(out)["ops"]
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(ops) > 5
    for row, op in zip(rows, ops, strict=True):
        assert (row["name"], row["kind"], int(row["count"])) == (op["name"], op["kind"],
                                                                  op["count"])
        assert int(row["cycles"]) == op["cycles"] and int(row["dram_bytes"]) == op["dram_bytes"]
        assert float(row["energy_pj"]) == op["energy_pj"] and row["bound"] == op["bound"]
        assert json.loads(row["mapping"]) == op["mapping"]
        assert {k: float(row[f"energy_{k}_pj"]) for k in op["breakdown"]} == op["breakdown"]
        if op["kind"] == "gemm":
            assert [int(row[d]) for d in "MNK"] == [op["shape"][d] for d in "MNK"]


def test_version(capsys) -> None:
    from importlib.metadata import version

    code, out, _ = run(capsys, ["--version"])
    assert code == 0 and out == f"tpe (TPEForge) {version('tpeforge')}\n"


@pytest.mark.parametrize("arch", ["h100", "h200"])
def test_auto_on_a_gpu_preset_is_its_bf16_path(capsys, arch):
    """``--quant auto`` (every command's default) on a GPU preset is bf16, the 16-bit float
    path ``tpe sim gemm`` takes there without --quant: not the engine's int16 widths, which a
    GPU runs as bf16 while the lowering prices their quantization besides."""
    model = ["sim", "model", "--arch", arch, "--model", "llama-2-7b", "--phase", "decode",
             "--batch", "4", "--seq", "2048", "--json"]
    results = []
    for extra in ([], ["--quant", "auto"], ["--quant", "bf16"]):
        code, out, err = run(capsys, [*model, *extra])
        assert code == 0, err
        results.append(json.loads(out))
    fields = ("seconds", "energy_pj", "dram_bytes")
    assert all({f: r[f] for f in fields} == {f: results[2][f] for f in fields}
               for r in results[:2])
    assert {op["shape"]["a_fmt"] for op in results[0]["ops"] if op["kind"] == "gemm"} == {"bf16"}
    gemm = ["sim", "gemm", "--arch", arch, "--M", "8", "--N", "4096", "--K", "4096", "--json"]
    outs = []
    for extra in ([], ["--quant", "auto"]):
        code, out, err = run(capsys, [*gemm, *extra])
        assert code == 0, err
        outs.append(json.loads(out))
    assert outs[0]["shape"] == outs[1]["shape"] and outs[0]["cycles"] == outs[1]["cycles"]
