"""docs/reference/ is what the code says (sim.cli.reference): the committed pages equal the
generated ones, every key and flag has a meaning, and every key a command writes is described."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from cli_run import run

from sim.cli.reference import OUT, pages
from sim.gpu.shapes import COLUMN_MEANINGS
from sim.report.outputs import JSON_KEYS, csv_columns

ROOT = Path(__file__).resolve().parents[1]


def test_committed_reference_is_what_the_code_gives() -> None:
    made = pages()
    assert sorted(p.name for p in OUT.glob("*.md")) == sorted(made)
    stale = [name for name, text in made.items() if (OUT / name).read_text() != text]
    assert not stale, (f"docs/reference/{stale[0]} differs from the code: run "
                       ".venv/bin/python -m sim.cli.reference")


def test_every_key_and_flag_has_a_meaning() -> None:
    for name, text in pages().items():
        for line in text.splitlines():
            if line.startswith("| `"):
                assert line.rstrip().endswith("|") and not re.search(r"\|\s*\|$", line), (
                    f"{name}: no meaning in {line}")


def _keys(capsys, argv: list[str]) -> dict:
    code, out, err = run(capsys, [*argv, "--json"])
    assert code == 0, err
    return json.loads(out)


def test_every_json_key_a_command_writes_is_described(capsys) -> None:
    gemm = ["sim", "gemm", "--M", "64", "--N", "96", "--K", "80"]
    attention = ["sim", "attention", "--batch", "1", "--heads", "4", "--kv-heads", "2",
                 "--q-len", "8", "--kv-len", "64", "--head-dim", "32"]
    model = ["sim", "model", "--model", "llama-2-7b", "--phase", "decode", "--batch", "1",
             "--seq", "32"]
    for arch in ("systolic-4core", "h100"):
        quant = ["--quant", "bf16"] if arch == "h100" else []
        for command, argv in (("tpe sim gemm", gemm), ("tpe sim attention", attention),
                              ("tpe sim model", [*model, *quant])):
            d = _keys(capsys, [*argv, "--arch", arch])
            assert set(d) <= set(JSON_KEYS[command]), (command, set(d) - set(JSON_KEYS[command]))
            for op in d.get("ops", []):
                assert set(op) <= set(JSON_KEYS["tpe sim gemm"])


def test_every_csv_column_is_described(tmp_path, capsys) -> None:
    table = tmp_path / "ops.csv"
    code, _, _ = run(capsys, ["sim", "model", "--arch", "systolic", "--model", "llama-2-7b",
                              "--phase", "decode", "--batch", "1", "--seq", "32", "--csv",
                              str(table)])
    assert code == 0
    with open(table, newline="") as f:
        header = next(csv.reader(f))
    described = csv_columns()
    assert all(c in described or re.fullmatch(r"energy_\w+_pj", c) for c in header)
    # and every column a shapes or measured file of the project has
    for path in sorted((ROOT / "sim" / "data" / "gpu").glob("*.csv")):
        if path.name.startswith(("shapes", "measured")) and "microbench" not in path.name:
            with open(path, newline="") as f:
                columns = next(csv.reader(f))
            assert set(columns) <= set(COLUMN_MEANINGS), (path.name,
                                                          set(columns) - set(COLUMN_MEANINGS))
