"""Memory levels as data: one `simulate` answers every command, any hierarchy written in TOML
runs through every command, and a workload that does not fit its memory says so."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from hw.spec import SpecError, arch_from_dict, list_presets, load_arch, load_arch_dict
from sim.cli import main

ROOT = Path(__file__).resolve().parents[1]
FOUR_LEVEL = ROOT / "examples" / "archs" / "four_level.toml"
ENGINE_PRESETS = [p for p in list_presets() if load_arch(p).gpu is None]


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def _drop_names(d: object) -> object:
    if isinstance(d, dict):
        return {k: _drop_names(v) for k, v in d.items() if k != "name"}
    if isinstance(d, list):
        return [_drop_names(v) for v in d]
    return d


@pytest.mark.parametrize("preset", list_presets())
def test_gemm_equals_its_row_in_the_model(preset: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """`tpe sim gemm --json` is the GEMM's row of `tpe sim model` (random model shapes)."""
    rng = random.Random(preset)
    hidden = 64 * rng.randint(1, 6)
    cfg = {"model_type": "llama", "hidden_size": hidden,
           "intermediate_size": 32 * rng.randint(2, 20), "num_hidden_layers": rng.randint(1, 3),
           "num_attention_heads": hidden // 32, "num_key_value_heads": hidden // 64,
           "vocab_size": 1000, "max_position_embeddings": 4096}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    quant = ["--quant", "bf16"] if load_arch(preset).gpu is not None else []
    model = _json(capsys, "sim", "model", "--arch", preset, "--model", str(path), "--phase",
                  "prefill", "--batch", str(rng.randint(1, 3)), "--seq", str(rng.randint(5, 90)),
                  *quant, "--json")
    gemms = [op for op in model["ops"] if op["kind"] == "gemm"]
    assert gemms
    for row in rng.sample(gemms, min(3, len(gemms))):
        s = row["shape"]
        # (the output format by default: what the model's GEMM writes)
        gemm = _json(capsys, "sim", "gemm", "--arch", preset, "--M", str(s["M"]), "--N",
                     str(s["N"]), "--K", str(s["K"]), "--a-fmt", s["a_fmt"], "--w-fmt",
                     s["w_fmt"], "--count", str(row["count"]), "--json")
        assert _drop_names({k: gemm[k] for k in row}) == _drop_names(row), row["name"]
    # under a scheme, tpe sim gemm --quant takes the formats and scales the model's GEMMs do
    for quant in ("w8a8", "w4a16", "fp8"):
        argv = ["sim", "model", "--arch", preset, "--model", str(path), "--phase", "decode",
                "--batch", "2", "--seq", "33", "--quant", quant, "--json"]
        if main(argv) != 0:  # a scheme the engine's model does not take: nothing to compare
            capsys.readouterr()
            continue
        row = next(op for op in json.loads(capsys.readouterr().out)["ops"]
                   if op["kind"] == "gemm")
        s = row["shape"]
        gemm = _json(capsys, "sim", "gemm", "--arch", preset, "--M", str(s["M"]), "--N",
                     str(s["N"]), "--K", str(s["K"]), "--quant", quant, "--count",
                     str(row["count"]), "--json")
        assert _drop_names({k: gemm[k] for k in row}) == _drop_names(row), (quant, row["name"])


@pytest.mark.parametrize("preset", list_presets())
def test_attention_under_a_scheme_equals_its_row_in_the_model(
        preset: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`tpe sim attention --quant S --json` is the attention row of `tpe sim model --quant S`
    (random model shapes and phases; S auto, and a scheme with a quantized KV cache)."""
    rng = random.Random(f"attention {preset}")
    heads = rng.choice([2, 4, 8])
    cfg = {"model_type": "llama", "hidden_size": 32 * heads, "intermediate_size": 128,
           "num_hidden_layers": rng.randint(1, 3), "num_attention_heads": heads,
           "num_key_value_heads": heads // rng.choice([1, 2]), "vocab_size": 1000,
           "max_position_embeddings": 4096}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    gpu = load_arch(preset).gpu is not None
    compared = []
    for quant in ("auto", "bf16" if gpu else "w4a8kv4"):
        phase = rng.choice(["prefill", "decode"])
        argv = ["sim", "model", "--arch", preset, "--model", str(path), "--phase", phase,
                "--batch", str(rng.randint(1, 3)), "--seq", str(rng.randint(5, 300)),
                "--quant", quant, "--json"]
        if main(argv) != 0:  # a scheme the engine does not take (the MX engine's formats)
            assert quant != "auto" and capsys.readouterr().err.startswith("tpe: error: ")
            continue
        model = json.loads(capsys.readouterr().out)
        row = next(op for op in model["ops"] if op["kind"] == "attention")
        s = row["shape"]
        att = _json(capsys, "sim", "attention", "--arch", preset, "--batch", str(s["batch"]),
                    "--heads", str(s["heads"]), "--kv-heads", str(s["kv_heads"]), "--q-len",
                    str(s["q_len"]), "--kv-len", str(s["kv_len"]), "--head-dim",
                    str(s["qk_dim"]), "--layers", str(row["count"]), "--quant", quant,
                    *(["--causal"] if s["causal"] else []), "--json")
        assert _drop_names({k: att[k] for k in row}) == _drop_names(row), (quant, phase)
        compared.append(quant)
    assert "auto" in compared


def test_gemm_output_format_is_the_models_on_any_accumulator(
        capsys: pytest.CaptureFixture[str]) -> None:
    """An engine whose accumulators are not 32 bits wide: tpe sim gemm's default output is the
    model's GEMM's (int32 for integer operands; it was int<acc_bits>, 1% fewer DRAM bytes than
    the model's row of the same GEMM)."""
    acc = ["--set", "engine.acc_bits=24"]
    model = _json(capsys, "sim", "model", "--arch", "systolic", *acc, "--model", "llama-2-7b",
                  "--phase", "prefill", "--batch", "1", "--seq", "64", "--json")
    row = next(op for op in model["ops"] if op["name"] == "q_proj")
    gemm = _json(capsys, "sim", "gemm", "--arch", "systolic", *acc, "--M", "64", "--N", "4096",
                 "--K", "4096", "--count", str(row["count"]), "--json")
    assert gemm["shape"]["o_fmt"] == row["shape"]["o_fmt"] == "int32"
    assert (gemm["cycles"], gemm["dram_bytes"]) == (row["cycles"], row["dram_bytes"])


def test_four_cores_run_a_compute_bound_gemm_3x_faster(capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    args = ["sim", "gemm", "--M", "4096", "--N", "4096", "--K", "4096", "--json"]
    four = _json(capsys, *args, "--arch", "systolic-4core")
    one = _json(capsys, *args, "--arch", "systolic-4core", "--set", "cores=1")
    assert four["bound"] == "compute"
    assert one["cycles"] >= 3 * four["cycles"]
    assert four["mapping"]["cores_used"] == 4


def test_a_four_level_hierarchy_runs_everywhere(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    arch = load_arch(str(FOUR_LEVEL))
    assert [[lv.name for lv in t] for t in arch.tiers] == [
        ["act_out_sram", "weight_sram"], ["l15"], ["l2"], ["llb"], ["dram"]]
    a = str(FOUR_LEVEL)
    g = _json(capsys, "sim", "gemm", "--arch", a, "--M", "512", "--N", "4096", "--K", "4096",
              "--json")
    for level in ("act_out_sram", "weight_sram", "l15", "l2", "llb", "dram"):
        assert g["breakdown"][level] > 0, level
    assert g["cycles"] > 0
    att = _json(capsys, "sim", "attention", "--arch", a, "--batch", "2", "--heads", "8",
                "--kv-heads", "2", "--q-len", "1", "--kv-len", "2048", "--head-dim", "64",
                "--json")
    assert att["breakdown"]["llb"] > 0 and att["cycles"] > 0
    m = _json(capsys, "sim", "model", "--arch", a, "--model", "llama-2-7b", "--phase",
              "decode", "--batch", "1", "--seq", "256", "--json")
    assert m["fits"] is True and m["breakdown"]["l15"] > 0
    # a level's field acts through --set and changes the answer
    bigger = _json(capsys, "sim", "gemm", "--arch", a, "--set", "llb.width_bits=64", "--M",
                   "512", "--N", "4096", "--K", "4096", "--json")
    assert bigger["cycles"] != g["cycles"]
    spec = tmp_path / "sweep.toml"
    spec.write_text(f'[sweep]\nbase = "{a}"\n[axes]\n"l2.capacity_bytes" = [1048576, 4194304]\n'
                    '[workload]\nmodels = ["llama-2-7b"]\nphases = ["decode"]\nbatch = [1]\n'
                    'seq = [128]\n')
    out = tmp_path / "out.parquet"
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "1"]) == 0
    from sim.sweep import read_results

    table = read_results(out)
    assert table.num_rows == 2
    assert all(e is None or e == "" for e in table.column("error").to_pylist())


def test_weights_that_do_not_fit_say_so(capsys: pytest.CaptureFixture[str]) -> None:
    big = _json(capsys, "sim", "model", "--arch", "h100", "--model", "opt-175b", "--phase",
                "decode", "--batch", "1", "--seq", "128", "--quant", "bf16", "--json")
    assert big["fits"] is False and big["weight_bytes"] > big["capacity_bytes"]
    assert main(["sim", "model", "--arch", "h100", "--model", "opt-175b", "--phase", "decode",
                 "--batch", "1", "--seq", "128", "--quant", "bf16"]) == 0
    assert "do not fit" in capsys.readouterr().out
    small = _json(capsys, "sim", "model", "--arch", "h100", "--model", "llama-2-7b", "--phase",
                  "decode", "--batch", "1", "--seq", "128", "--quant", "bf16", "--json")
    assert small["fits"] is True


def test_the_earlier_fixed_tables_still_load() -> None:
    raw = load_arch_dict("systolic")
    legacy = {k: v for k, v in raw.items() if k != "memory"}
    for name, table in raw["memory"].items():
        legacy[name] = {k: v for k, v in table.items()
                        if k not in ("holds", "instances", "off_chip")}
    assert arch_from_dict(legacy) == load_arch("systolic")
    assert load_arch("systolic", ["a_buffer.capacity_bytes=4096"]).a_buffer.capacity_bytes == 4096
    assert (load_arch("systolic", ["memory.dram.bandwidth_gb_per_s=3"]).dram.bandwidth_gb_per_s
            == 3)


@pytest.mark.parametrize(("memory", "message"), [
    ({"a": {"holds": ["A"], "capacity_bytes": 64, "width_bits": 64},
      "d": {"holds": ["A", "W", "O"], "capacity_bytes": 1 << 30, "bandwidth_gb_per_s": 1.0}},
     r"^memory\.a: the levels a form one tier that does not hold O, W; "),
    ({"abc": {"holds": ["A", "W", "O"], "capacity_bytes": 64, "width_bits": 64}},
     r"^memory\.abc: needs a level behind the engine's buffers"),
    ({"abc": {"holds": ["A", "W", "O"], "capacity_bytes": 64, "width_bits": 64,
              "bandwidth_gb_per_s": 3.0},
      "d": {"holds": ["A", "W", "O"], "capacity_bytes": 1 << 30, "bandwidth_gb_per_s": 1.0}},
     r"^abc: set exactly one of width_bits"),
    ({"abc": {"holds": ["A", "W", "O"], "capacity_bytes": 64, "width_bits": 64,
              "instances": "chip"},
      "d": {"holds": ["A", "W", "O"], "capacity_bytes": 1 << 30, "bandwidth_gb_per_s": 1.0}},
     r"^memory\.abc\.instances: the innermost levels feed one engine each"),
    ({"abc": {"holds": ["A", "W", "O"], "capacity_bytes": 64, "width_bits": 64},
      "wa": {"holds": ["A", "W"], "capacity_bytes": 1 << 20, "bandwidth_gb_per_s": 9.0,
             "beat_bytes": 16, "instances": "chip"},
      "o": {"holds": ["O"], "capacity_bytes": 1 << 20, "bandwidth_gb_per_s": 9.0,
            "instances": "chip"},
      "d": {"holds": ["A", "W", "O"], "capacity_bytes": 1 << 30, "bandwidth_gb_per_s": 1.0}},
     r"^memory\.wa\.beat_bytes: a beat is a single port's, .* shares its tier with o: drop "),
])
def test_malformed_hierarchies_name_the_level(memory: dict, message: str) -> None:
    raw = load_arch_dict("systolic")
    raw["memory"] = memory
    with pytest.raises(SpecError, match=message):
        arch_from_dict(raw)


def test_a_level_the_energy_table_prices_out_of_bounds_is_refused(
        capsys: pytest.CaptureFixture[str]) -> None:
    # a 4 TiB on-chip L2: the table's SRAM scaling gives it more than MAX_BYTE_PJ a byte (a
    # given energy_pj_per_byte that large is refused as it loads); every command says so
    # naming the level, never a validation traceback from a view built inside the simulator
    from hw.spec import MAX_BYTE_PJ
    from sim.energy import level_byte_pj

    big = ["l2.capacity_bytes=4398046511104"]
    arch = load_arch(str(FOUR_LEVEL), big)
    with pytest.raises(SpecError, match=r"^memory\.l2: the energy table 'horowitz45' gives "
                       r"[\d,]+ pJ a byte for 4,398,046,511,104 bytes on chip at 45 nm, above "
                       r"the 10,000 pJ a level may take; use a smaller capacity_bytes or give "
                       r"memory\.l2\.energy_pj_per_byte \(with its source\)$"):
        level_byte_pj(arch, arch.tiers[2][0])
    for cmd in (["gemm", "--M", "512", "--N", "4096", "--K", "4096"],
                ["model", "--model", "llama-2-7b", "--phase", "decode", "--batch", "1",
                 "--seq", "128"]):
        assert main(["sim", *cmd, "--arch", str(FOUR_LEVEL), "--set", big[0], "--json"]) == 2
        assert capsys.readouterr().err.startswith("tpe: error: memory.l2: the energy table")
    # with its own energy it runs; the bound is the spec's
    ok = load_arch(str(FOUR_LEVEL), [*big, "l2.energy_pj_per_byte=50"])
    assert level_byte_pj(ok, ok.tiers[2][0]) == 50 < MAX_BYTE_PJ
    with pytest.raises(SpecError, match=r"l2\.energy_pj_per_byte: must be <= 10000"):
        load_arch(str(FOUR_LEVEL), [f"l2.energy_pj_per_byte={MAX_BYTE_PJ * 2}"])
