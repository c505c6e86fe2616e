"""``tpe sweep``: spec validation, point expansion, Parquet rows, resume after SIGKILL and
SIGINT, the Ray backend, the report."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sim.cli import main
from sim.sweep import (
    METRIC_COLUMNS,
    grid_size,
    load_sweep,
    pareto_mask,
    point_id,
    point_values,
    read_results,
    run_sweep,
    write_report,
)

REPO = Path(__file__).resolve().parents[1]

#: A two-layer Llama-shaped model: a point costs milliseconds, not tens of them.
TINY_MODEL = {"model_type": "llama", "hidden_size": 256, "intermediate_size": 688,
              "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4,
              "vocab_size": 1000, "max_position_embeddings": 2048}

WORKLOAD = """
[workload]
models = ["tiny.json"]
phases = ["prefill", "decode"]
batch = [1]
seq = [64]
quant = ["auto"]
"""


def _spec(tmp_path: Path, body: str, workload: str = WORKLOAD, name: str = "s.toml") -> Path:
    (tmp_path / "tiny.json").write_text(json.dumps(TINY_MODEL))
    path = tmp_path / name
    path.write_text(body + workload)
    return path


def _rows(path: Path) -> list[tuple]:
    """Every row as a tuple of all columns, sorted (order of parts is not part of the
    contract)."""
    t = read_results(path)
    cols = t.to_pydict()
    names = sorted(cols)
    return sorted(tuple(repr(cols[c][i]) for c in names) for i in range(t.num_rows))


def _keys(path: Path) -> list[tuple]:
    cols = read_results(path, columns=["point_id", "model", "phase", "batch", "seq",
                                       "quant"]).to_pydict()
    return list(zip(*cols.values(), strict=True))


# -- validation: one line, exit 2, naming the key ---------------------------------------------

BAD = [
    ('[axes]\n"engine.rowz" = [16]\n', r"axes\.engine\.rowz: unknown key; remove it or check "
     r"its spelling"),
    ('[axes]\n"engine.rows" = []\n', r"axes\.engine\.rows: empty; give at least one value"),
    ("[axes]\nengine.rows = {start = 64, stop = 16, step = 16}\n",
     r"axes\.engine\.rows: empty; give at least one value"),
    ('[axes]\n"engine.rows" = "16"\n', r"axes\.engine\.rows: expected a list of values, .*"
     r"\(got str '16'\)"),
    ('[axes]\n"engine.rows" = [16, 32.5]\n', r"axes\.engine\.rows: .*"),
    ('[axes]\n"engine.rows" = [16, true]\n', r"axes\.engine\.rows: values mix bool and "
     r"number; use one type"),
    ('[axes]\n"engine.rows" = [0]\n', r"axes\.engine\.rows: must be >= 1 \(got 0\)"),
    ("[axes]\nengine.rows = {start = 8, stop = 64, stride = 8}\n",
     r"axes\.engine\.rows\.stride: unknown key; .*"),
    ('[axes]\nbase = ["systolic", "lut"]\n"engine.dataflow" = ["os", "ws"]\n',
     r"axes\.engine\.dataflow: unknown key; remove it or check its spelling \(base 'lut'\)"),
    ('[sweep]\nstrategy = "exhaustive"\n[axes]\n"engine.rows" = [16]\n',
     r"sweep\.strategy: must be one of grid, random, nsga2 \(got 'exhaustive'\)"),
    ('[sweep]\nstrategy = "random"\n[axes]\n"engine.rows" = [16]\n',
     r"sweep\.samples: strategy random needs a positive integer \(got None\)"),
    ('[sweep]\nstrategy = "random"\nsamples = 3\n[axes]\n"engine.rows" = [16, 32]\n',
     r"sweep\.samples: 3 distinct points drawn from a grid of 2; use at most 2, or strategy "
     r"grid"),
    ('[sweep]\nobjectives = ["speed:max"]\n[axes]\n"engine.rows" = [16]\n',
     r"sweep\.objectives: unknown metric 'speed'; known: .*"),
    ('[sweep]\nseeds = 1\n[axes]\n"engine.rows" = [16]\n', r"sweep\.seeds: unknown key; .*"),
    ('[sweep]\nbase = "nonesuch"\n[axes]\n"engine.rows" = [16]\n',
     r"sweep\.base: nonesuch: unknown preset 'nonesuch'; .*"),
    ('[axes]\n"seq" = [16]\n', r"axes\.seq: 'seq' is a column of the results; .*"),
    ("[axes]\n", r"axes: no axes; .*"),
]


@pytest.mark.parametrize(("body", "message"), BAD, ids=[m[:24] for _, m in BAD])
def test_bad_spec_exits_2_naming_the_key(tmp_path, capsys, body, message):
    spec = _spec(tmp_path, body)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert re.fullmatch(r"tpe: error: " + message + "\n", err), err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(("workload", "message"), [
    ('[workload]\nmodels = ["nope-7b"]\n', r"workload\.models: unknown model 'nope-7b'; .*"),
    ('[workload]\nmodels = ["tiny.json"]\nbatch = [0]\n',
     r"workload\.batch: must be positive integers \(got 0\)"),
    ('[workload]\nmodels = ["tiny.json"]\nphases = ["train"]\n',
     r"workload\.phases: must be prefill or decode \(got 'train'\)"),
    ('[workload]\nmodels = ["tiny.json"]\nquant = ["w99"]\n', r"workload\.quant: .*"),
    ('[workload]\nmodels = ["tiny.json"]\nseq = [4096]\n', r"workload\.seq: .*2048.*"),
    ('[workload]\nmodel = ["tiny.json"]\n', r"workload\.model: unknown key; known: .*"),
    # a parallel plan's rule names its key once
    ('[workload]\nmodels = ["tiny.json"]\nphases = ["prefill"]\nbatch = [1]\npp = [99]\n',
     r"workload\.pp: tiny\.json prefill batch 1: 99 pipeline stages for \d+ layers .*"),
    # a combination that cannot run is left out, a value that runs in no workload refused
    ('[workload]\nmodels = ["tiny.json"]\nphases = ["prefill"]\nbatch = [1, 3]\n'
     'microbatches = [1, 2]\npp = [2]\n', r"workload\.microbatches: 2 runs in no workload \(it "
     r"divides none of the batches \[1, 3\]\); drop it or add what it needs"),
    ('[workload]\nmodels = ["tiny.json"]\ntp = [1, 2]\nep = [1, 4]\n',
     r"workload\.ep: 4 runs in no workload \(an ep above 1 needs a model with experts and a tp "
     r"equal to it\); drop it or add what it needs"),
    ('[workload]\nmodels = ["tiny.json"]\nsp = [false, true]\n',
     r"workload\.sp: true runs in no workload \(sequence parallelism needs a tp above 1\); .*"),
    ('[workload]\nmodels = ["tiny.json"]\noverlap = [true]\n',
     r"workload\.overlap: true runs in no workload \(the overlap acts on the tensor-parallel "
     r"collectives: it needs a tp above 1\); .*"),
])
def test_bad_workload_exits_2(tmp_path, capsys, workload, message):
    spec = _spec(tmp_path, '[axes]\n"engine.rows" = [16]\n', workload)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(r"tpe: error: " + message + "\n", err), err


@pytest.mark.parametrize(("body", "message"), [
    ('[sweep]\nbase = "h100"\n[axes]\n"dram.latency_ns" = [0.0, 100.0]\n',
     r"axes\.dram\.latency_ns: a GPU architecture's kernel model does not read this field, so "
     r"it would change nothing; the fields it reads: .*dram\.bandwidth_gb_per_s.*"),
    ('[axes]\nbase = ["systolic", "h200"]\n"a_buffer.capacity_bytes" = [65536]\n',
     r"axes\.a_buffer\.capacity_bytes: a GPU architecture's kernel model does not read this "
     r"field, .* \(base 'h200'\)"),
])
def test_an_axis_a_gpu_base_does_not_read_is_refused(tmp_path, capsys, body, message):
    """A sweep's axis over a field a GPU base's kernel model does not read is refused as
    ``--set`` on it is (hw.spec.unread_by_gpu_model): every point would give the same row."""
    spec = _spec(tmp_path, body)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(r"tpe: error: " + message + "\n", err), err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("name", ["r.csv", "r.JSON", "r.xlsx"])
def test_an_out_named_as_a_table_file_is_refused(tmp_path, capsys, name):
    """A sweep writes a Parquet dataset (a folder): ``--out r.csv`` would make a folder named
    as a CSV file, not a CSV; it is refused (sim.files.output_dir) before anything runs or is
    written."""
    spec = _spec(tmp_path, '[axes]\n"engine.rows" = [16]\n')
    assert main(["sweep", str(spec), "--out", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(r"tpe: error: --out: '.*' names a \.\w+ file, but --out takes a "
                        r"folder; give a folder name, e.g. '.*r'\n", err), err
    assert not (tmp_path / name).exists()


def test_missing_spec_and_results(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "none.toml")]) == 2
    assert capsys.readouterr().err.startswith("tpe: error: ")
    assert main(["sweep", "report", str(tmp_path / "none.parquet")]) == 2
    assert "RESULTS:" in capsys.readouterr().err


def test_plan_combinations_that_cannot_run_are_left_out(tmp_path):
    """The workload table is a product: a micro-batch count that does not divide a batch is
    left out of that batch's workloads (as an ep other than the tp is), not the whole spec."""
    spec = load_sweep(_spec(tmp_path, '[axes]\n"engine.rows" = [16]\n', """
[workload]
models = ["tiny.json"]
phases = ["prefill"]
batch = [1, 2, 3]
pp = [2]
microbatches = [1, 2]
tp = [1, 2]
"""))
    plans = sorted((w.batch, w.tp, w.microbatches) for w in spec.workloads)
    assert plans == [(b, tp, mb) for b in (1, 2, 3) for tp in (1, 2) for mb in (1, 2)
                     if b % mb == 0]


# -- expansion --------------------------------------------------------------------------------


def test_grid_ranges_and_random_sample(tmp_path):
    spec = load_sweep(_spec(tmp_path, """
[axes]
"engine.rows" = {start = 8, stop = 32, step = 8}
"a_buffer.capacity_bytes" = {start = 32768, stop = 262144, factor = 2}
"dram.bandwidth_gb_per_s" = {values = [12.8, 25.6]}
clock_mhz = {start = 0.5e3, stop = 1.0e3, step = 250.0}
"""))
    assert [a.values for a in spec.axes] == [
        (8, 16, 24, 32), (32768, 65536, 131072, 262144), (12.8, 25.6), (500.0, 750.0, 1000.0)]
    assert grid_size(spec) == 4 * 4 * 2 * 3
    assert point_values(spec, 0) == (8, 32768, 12.8, 500.0)
    assert point_values(spec, 1) == (8, 32768, 12.8, 750.0)  # the last axis varies fastest
    assert point_values(spec, grid_size(spec) - 1) == (32, 262144, 25.6, 1000.0)
    ids = {point_id(spec, point_values(spec, i)) for i in range(grid_size(spec))}
    assert len(ids) == grid_size(spec)

    rnd = _spec(tmp_path, '[sweep]\nstrategy = "random"\nsamples = 5\nseed = 3\n'
                '[axes]\n"engine.rows" = [8, 16, 24, 32]\n"engine.cols" = [8, 16, 24]\n',
                name="r.toml")
    out = tmp_path / "rnd"
    summary = run_sweep(load_sweep(rnd), out, workers=1)
    assert summary.points == summary.computed == 5
    assert len(set(read_results(out).column("point_id").to_pylist())) == 5


def test_tasks_cover_the_points_in_aligned_blocks():
    """A grid's tasks start at whole blocks of its last axes (the 10k benchmark: the 20 links
    and clocks of one array and buffer), shrink towards the end, and cover every point once;
    a chunk given by the caller is kept as it is."""
    from sim.sweep.run import _task_sizes

    spec = load_sweep(REPO / "examples" / "sweeps" / "llama7b_10k.toml")
    block = math.prod(len(a.values) for a in spec.axes[-3:])
    assert block == 20
    sizes = list(_task_sizes(spec, grid_size(spec), 2, None))
    assert sum(sizes) == grid_size(spec)
    assert all(s % block == 0 for s in sizes)
    assert max(sizes) <= 256 and sizes[-1] <= sizes[0] // 4
    assert list(_task_sizes(spec, 1000, 2, 64)) == [64] * 15 + [40]
    rnd = dataclasses.replace(spec, strategy="random", samples=1000)
    sizes = list(_task_sizes(rnd, 1000, 2, None))
    assert sum(sizes) == 1000 and sizes[0] == 32  # a sample is not contiguous: no blocks


# -- rows ---------------------------------------------------------------------------------------

SMALL = """
[sweep]
name = "small"
[axes]
base = ["systolic", "lut"]
"engine.rows" = [8, 16]
"dram.bandwidth_gb_per_s" = [12.8, 25.6]
"""


def test_rows_one_per_point_and_workload(tmp_path):
    spec = load_sweep(_spec(tmp_path, SMALL))
    out = tmp_path / "small.parquet"
    summary = run_sweep(spec, out, workers=2)
    assert summary.points == summary.computed == 8
    t = read_results(out)
    assert t.num_rows == 8 * 2
    assert set(t.column_names) >= {"point_id", "base", "engine.rows", "dram.bandwidth_gb_per_s",
                                   "model", "phase", "batch", "seq", "quant", "arch", "engine",
                                   "error", *METRIC_COLUMNS}
    keys = _keys(out)
    assert len(set(keys)) == len(keys) == 16
    cols = t.to_pydict()
    assert all(e is None for e in cols["error"])
    assert set(cols["engine.rows"]) == {8, 16}
    assert set(cols["dram.bandwidth_gb_per_s"]) == {12.8, 25.6}
    for i in range(t.num_rows):
        assert cols["tokens_per_s"][i] > 0 and cols["area_mm2"][i] > 0
        tokens = 64 if cols["phase"][i] == "prefill" else 1
        assert math.isclose(cols["tokens_per_s"][i] * cols["seconds"][i], tokens)
        assert math.isclose(cols["edp_pj_s"][i], cols["energy_pj"][i] * cols["seconds"][i])
    # a rerun into the same directory is refused without --resume
    with pytest.raises(Exception, match=r"--out: .* already holds results; pass --resume"):
        run_sweep(spec, out, workers=1)
    # --resume of a finished sweep computes nothing and writes nothing
    again = run_sweep(spec, out, workers=1, resume=True)
    assert (again.skipped, again.computed, again.rows_written) == (8, 0, 0)
    # a different spec cannot resume into it
    other = load_sweep(_spec(tmp_path, SMALL.replace("[8, 16]", "[8, 32]"), name="o.toml"))
    with pytest.raises(Exception, match=r"--resume: .* was written by another spec"):
        run_sweep(other, out, resume=True)


def test_combination_errors_become_rows(tmp_path):
    # a 256-wide array with 1 KiB buffers: every axis value is valid alone, nothing maps
    spec = load_sweep(_spec(tmp_path, '[axes]\n"engine.cols" = [8, 256]\n'
                            '"w_buffer.capacity_bytes" = [1024, 131072]\n'))
    out = tmp_path / "e"
    run_sweep(spec, out, workers=1)
    cols = read_results(out).to_pydict()
    failed = [i for i, e in enumerate(cols["error"]) if e is not None]
    assert failed and len(failed) < len(cols["error"])
    assert all(cols["tokens_per_s"][i] is None for i in failed)


def test_cycles_beyond_int64_become_an_error_row(tmp_path):
    # 2^40 sequences decoding on an 8x8 array: the tiny model's bytes above 2^53 go into the
    # float64 column rounded; Llama-2-7B's exact cycles exceed the table's int64 column
    workload = (WORKLOAD.replace("batch = [1]", f"batch = [{1 << 40}]")
                .replace('["prefill", "decode"]', '["decode"]')
                .replace('["tiny.json"]', '["tiny.json", "llama-2-7b"]'))
    spec = load_sweep(_spec(tmp_path, '[axes]\n"engine.rows" = [8]\n"engine.cols" = [8]\n',
                            workload=workload))
    out = tmp_path / "big"
    run_sweep(spec, out, workers=1)
    rows = {r["model"]: r for r in read_results(out).to_pylist()}
    tiny, llama = rows["tiny.json"], rows["llama-2-7b"]
    assert tiny["error"] is None and tiny["dram_bytes"] > 2.0 ** 53 and tiny["cycles"] > 0
    assert llama["cycles"] is None and llama["seconds"] is None
    assert re.fullmatch(r"cycles: [\d,]+ exceeds the results table's int64 column "
                        r"\(2\^63 - 1\); use a smaller batch or seq", llama["error"])


# -- resume after a kill ------------------------------------------------------------------------

# Large enough that a signal sent once the first parts exist lands midway (points that share
# an engine are cheap: the simulator reuses their link-independent costs).
KILL = """
[sweep]
name = "kill"
chunk = 1
[axes]
"engine.rows" = {start = 4, stop = 64, step = 4}
"engine.cols" = [8, 16, 24, 32, 40, 48, 56, 64]
"dram.bandwidth_gb_per_s" = [12.8, 25.6, 51.2, 102.4]
"""


@pytest.fixture(scope="module")
def kill_reference(tmp_path_factory):
    """The uninterrupted run of the KILL spec."""
    tmp = tmp_path_factory.mktemp("ref")
    spec = _spec(tmp, KILL)
    run_sweep(load_sweep(spec), tmp / "ref.parquet", workers=2)
    return _rows(tmp / "ref.parquet")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "sim.cli", "sweep", *args]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupted_run(spec: Path, out: Path, sig: int, all_rows: int) -> None:
    """Start the sweep, send ``sig`` once its first parts exist. Under load (CI runs the tests
    two at a time on two cores) this test process can be starved long enough for the sweep to
    finish first; such an attempt proves nothing and is retried in a fresh folder."""
    for _attempt in range(5):
        if out.exists():
            shutil.rmtree(out)
        # pytest-xdist workers ignore SIGINT, and an ignored signal stays ignored across exec
        # (Python then installs no KeyboardInterrupt handler): give the sweep a terminal's
        # default disposition, as a shell does
        proc = subprocess.Popen(_cli(str(spec), "--out", str(out), "--workers", "2",
                                     "--flush-seconds", "0", "--quiet"),
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=_default_sigint)
        deadline = time.monotonic() + 60
        while len(list(out.glob("part-*.parquet"))) < 3 and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        if proc.poll() is None:
            proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
        if proc.returncode == 0 or len(_keys(out)) >= all_rows:
            continue  # finished before the signal took effect: retry
        if sig == signal.SIGINT:
            assert proc.returncode == 130 and err.decode().endswith("tpe: interrupted\n")
        else:
            assert proc.returncode == -signal.SIGKILL
        return
    pytest.fail("the sweep finished before every one of 5 signals")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_resume_after_kill_equals_uninterrupted(tmp_path, kill_reference, sig):
    spec = _spec(tmp_path, KILL)
    out = tmp_path / "r.parquet"
    _interrupted_run(spec, out, sig, len(kill_reference))
    partial = _keys(out)
    assert 0 < len(partial) < len(kill_reference), "the sweep was not interrupted midway"
    assert len(set(partial)) == len(partial)
    done = len(set(k[0] for k in partial))

    rerun = subprocess.run(_cli(str(spec), "--out", str(out), "--workers", "2", "--resume",
                                "--quiet"), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    total = grid_size(load_sweep(spec))
    assert f"{total - done} design points computed, {done} already done" in rerun.stdout
    assert not list(out.glob(".*.tmp"))
    rows = _rows(out)
    assert rows == kill_reference  # same rows, same values, none lost, none twice


def test_killed_workers_do_not_outlive_the_sweep(tmp_path):
    spec = _spec(tmp_path, KILL)
    out = tmp_path / "w.parquet"
    proc = subprocess.Popen(_cli(str(spec), "--out", str(out), "--workers", "2", "--quiet"),
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    children: list[int] = []
    while len(children) < 2 and time.monotonic() < deadline:
        path = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        children = [int(c) for c in path.read_text().split()] if path.exists() else []
        time.sleep(0.02)
    assert len(children) >= 2
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 5

    def alive() -> list[int]:  # exited workers are re-parented and reaped, or zombies
        out = []
        for c in children:
            try:
                if "State:\tZ" not in Path(f"/proc/{c}/status").read_text():
                    out.append(c)
            except FileNotFoundError:
                pass
        return out

    while alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive()


# -- backends, strategies, report ---------------------------------------------------------------


def test_ray_backend_equals_local(tmp_path):
    ray = pytest.importorskip("ray")
    spec = load_sweep(_spec(tmp_path, '[axes]\n"engine.rows" = [8, 16]\n'
                            '"dram.bandwidth_gb_per_s" = [12.8, 25.6]\n'))
    run_sweep(spec, tmp_path / "local", workers=2)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = run_sweep(spec, tmp_path / "ray", backend="ray", workers=2)
    finally:
        ray.shutdown()
    assert summary.computed == 4
    assert _rows(tmp_path / "ray") == _rows(tmp_path / "local")


def test_nsga2_search(tmp_path):
    pytest.importorskip("optuna")
    spec = load_sweep(_spec(tmp_path, """
[sweep]
strategy = "nsga2"
samples = 12
seed = 1
objectives = ["tokens_per_s:max", "area_mm2:min"]
[axes]
"engine.rows" = [8, 16, 32]
"engine.cols" = [8, 16, 32]
"""))
    out = tmp_path / "n"
    summary = run_sweep(spec, out, workers=1)
    t = read_results(out)
    ids = t.column("point_id").to_pylist()
    assert 1 <= len(set(ids)) <= 12 and t.num_rows == 2 * len(set(ids))
    assert summary.computed == len(set(ids))
    again = run_sweep(spec, out, workers=1, resume=True)  # same trials, all known
    assert again.computed == 0
    assert again.skipped == len(set(ids))  # points, not the trials that asked for them


def test_pareto_mask():
    x = np.array([1.0, 2.0, 3.0, 2.0, 1.0, 4.0])
    y = np.array([5.0, 3.0, 1.0, 4.0, 5.0, 1.0])
    assert pareto_mask(x, y).tolist() == [True, True, True, False, False, False]
    # maximise y: larger area must buy more throughput
    area = np.array([1.0, 2.0, 3.0])
    tput = np.array([10.0, 5.0, 20.0])
    assert pareto_mask(area, tput, maximize_y=True).tolist() == [True, False, True]


def test_report_writes_png_and_markdown(tmp_path, capsys):
    spec = _spec(tmp_path, SMALL)
    out = tmp_path / "res.parquet"
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "1", "--quiet",
                 "--report", str(tmp_path / "rep")]) == 0
    stdout = capsys.readouterr().out
    assert "8 design points computed" in stdout and "report: " in stdout
    for d in (tmp_path / "rep", tmp_path / "rep2"):
        if d.name == "rep2":
            assert main(["sweep", "report", str(out), "--out", str(d)]) == 0
        for png in ("pareto_throughput_area.png", "pareto_energy_latency.png"):
            assert (d / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        md = (d / "report.md").read_text()
        assert "8 design points x 2 workloads = 16 rows" in md
        assert "](pareto_throughput_area.png)" in md and "| max tokens_per_s |" in md
    assert write_report(out, tmp_path / "rep3").name == "report.md"


def test_examples_are_valid():
    for path in sorted((REPO / "examples" / "sweeps").glob("*.toml")):
        spec = load_sweep(path)
        assert grid_size(spec) >= 1
    assert grid_size(load_sweep(REPO / "examples" / "sweeps" / "llama7b_10k.toml")) == 10_000
    assert os.path.exists(REPO / "benchmarks" / "sweep_speed.py")


PER_BASE = """
[sweep]
strategy = "grid"
[axes]
base = ["systolic", "cube", "lut"]
"dram.bandwidth_gb_per_s" = [12.8, 25.6]
[axes.systolic]
"engine.rows" = [8, 16]
"engine.cols" = [8, 16, 32]
[axes.cube]
engine.k = [2, 4]
[axes.lut]
"engine.rows" = [16, 32]
"""


def test_axes_of_one_base_each(tmp_path):
    """[axes.<base>]: a base's own axes (engine.k exists on a cube only), the shared ones on
    every base; the grid is the sum over the bases, a point of another base has None there."""
    spec = load_sweep(_spec(tmp_path, PER_BASE))
    assert [a.key for a in spec.axes] == ["base", "dram.bandwidth_gb_per_s", "engine.rows",
                                          "engine.cols", "engine.k"]
    assert grid_size(spec) == 2 * (2 * 3 + 2 + 2)
    points = [point_values(spec, i) for i in range(grid_size(spec))]
    assert len({point_id(spec, p) for p in points}) == len(points)
    by_base = {b: [p for p in points if p[0] == b] for b in ("systolic", "cube", "lut")}
    assert {p[1:] for p in by_base["cube"]} == {(bw, None, None, k) for bw in (12.8, 25.6)
                                                for k in (2, 4)}
    assert {p[2] for p in by_base["lut"]} == {16, 32} and {p[4] for p in by_base["lut"]} == {
        None}
    assert len(by_base["systolic"]) == 12 and all(p[4] is None for p in by_base["systolic"])
    out = tmp_path / "pb"
    run_sweep(spec, out, workers=1)
    cols = read_results(out).to_pydict()
    assert all(e is None for e in cols["error"]) and len(cols["error"]) == 2 * len(points)
    engines = {(b, r, c, k): e for b, r, c, k, e in zip(
        cols["base"], cols["engine.rows"], cols["engine.cols"], cols["engine.k"],
        cols["engine"], strict=True)}
    assert "cube" in engines["cube", None, None, 2] and "lut" in engines["lut", 32, None, None]
    assert "8x16" in engines["systolic", 8, 16, None]
    assert write_report(out, tmp_path / "rep").is_file()


@pytest.mark.parametrize(("body", "message"), [
    (PER_BASE.replace("[12.8, 25.6]\n", '[12.8, 25.6]\n"engine.m" = [8]\n'),
     r"axes\.engine\.m: .*base 'systolic'"),  # a cube's field as an axis of every base
    (PER_BASE.replace("engine.k = [2, 4]", 'engine.k = [2, 4]\n"engine.k" = [8]'),
     r"axes\.cube\.engine\.k: given twice"),
    (PER_BASE + '"dram.bandwidth_gb_per_s" = [1.0]\n',
     r"axes\.lut\.dram\.bandwidth_gb_per_s: also an axis of every base"),
    (PER_BASE.replace("engine.k = [2, 4]", "engine.kk = [2, 4]"), r"axes\.cube\.engine\.kk:"),
])
def test_bad_axes_of_one_base(tmp_path, capsys, body, message):
    code = main(["sweep", str(_spec(tmp_path, body)), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and re.search(message, err), err


def test_nsga2_over_bases_with_their_own_axes(tmp_path):
    pytest.importorskip("optuna")
    body = PER_BASE.replace('strategy = "grid"', 'strategy = "nsga2"\nsamples = 10\nseed = 3')
    spec = load_sweep(_spec(tmp_path, body))
    run_sweep(spec, tmp_path / "n", workers=1)
    cols = read_results(tmp_path / "n").to_pydict()
    for b, k, cc in zip(cols["base"], cols["engine.k"], cols["engine.cols"], strict=True):
        assert (k is not None) == (b == "cube") and (cc is not None) == (b == "systolic")


def test_front_plot_names_every_base_in_its_legend():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from sim.sweep.report import plot_front, readable

    ax = Figure().subplots()
    x, y = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, 4.0])
    plot_front(ax, x, y, pareto_mask(x, y, maximize_y=True), label="w",
               groups=["cube", "lut", "cube", "systolic"])
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["cube", "lut", "systolic", "Pareto front (3 points)"]
    values, unit = readable(np.array([2.5e9, 4e9]), "pJ")
    assert unit == "mJ" and values.tolist() == [2.5, 4.0]
    assert readable(np.array([0.0042]), "s")[1] == "ms"


def test_operator_breakdown_tells_30_operators_apart():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from sim.report.plots import plot_op_breakdown

    ax = Figure().subplots()
    plot_op_breakdown(ax, {"prefill": {f"op{i}": 1.0 + i for i in range(30)}})
    looks = {(tuple(p.get_facecolor()), p.get_hatch()) for p in ax.patches}
    assert len(ax.patches) == 30 and len(looks) == 30
