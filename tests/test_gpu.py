"""GPU presets: the kernel model against the committed H100 measurements, and the commands."""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import math
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from cli_run import run

from hw.spec import load_arch
from models.llm import load_model, lower
from models.ops import Gemm
from sim.gpu.calibrate import calibrate
from sim.gpu_model import (
    NVJET_TILE_MAX_AREA,
    Kernel,
    arch_calibration,
    load_calibration,
    predict_parts_us,
    predict_us,
)
from sim.model import simulate_model

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "sim" / "data" / "gpu"
#: The calibration's source: the second dataset (sim/data/gpu/shapes_v2.csv) measured on an H100.
MEASURED = DATA / "measured_h100_v2.csv"
#: The energy constants' source: the same kernels, their energy read with the input sets rotated.
ENERGY = DATA / "measured_h100_v2e.csv"
#: The quantized kernels (sim/data/gpu/shapes_quant.csv) measured on the same H100: their own
#: parameter groups are fitted on its 'cal' rows.
QUANT = DATA / "measured_h100_quant.csv"
#: The misaligned GEMMs (sim/data/gpu/shapes_misaligned.csv) measured on the same H100 with the
#: kernels each launched; their 'cal' rows join the fit.
MISALIGNED = DATA / "measured_h100_misaligned.csv"
#: The second dataset's GEMMs timed again with their kernels (kernel names only).
GEMM_KERNELS = DATA / "measured_h100_v2_gemm_kernels.csv"
#: Decode at head dim 256 and multi-query decode (sim/data/gpu/shapes_decode.csv), replayed from
#: CUDA graphs, with the kernels each launched; their 'cal' rows join the fit.
DECODE = DATA / "measured_h100_decode.csv"
#: The quantized file's decode rows again, replayed from CUDA graphs: the KIVI kernels' time
#: and energy are fitted on its 'cal' rows (superseding the quantized file's).
QUANT_GRAPH = DATA / "measured_h100_quant_graph.csv"
#: The quantized file's GEMM rows again, replayed from CUDA graphs, with the kernels each
#: launched: the int4 GEMMs' time and energy are fitted on its 'cal' rows.
QUANT_W4 = DATA / "measured_h100_quant_w4_graph.csv"
#: int8 and fp8 GEMMs of 256 to 2048 rows at N and K near 4096 (aligned, 8 off and padded;
#: sim/data/gpu/shapes_tiles.csv) measured on an H100 with the kernels each launched (it
#: joins no calibration: its rows test the 8-bit tile dispatch).
TILES = DATA / "measured_h100_tiles.csv"
#: The calibration's extra files, in the order later ones supersede earlier ones.
EXTRA = (QUANT, MISALIGNED, DECODE, QUANT_GRAPH, QUANT_W4)
#: Random GEMMs drawn apart from every other dataset (sim/data/gpu/shapes_random.csv), with the
#: kernels each launched: their 'cal' rows join the fit (after EXTRA's).
RANDOM = DATA / "measured_h100_random.csv"
#: GEMMs whose C is large against their work (``python -m sim.gpu.shapes --store``): their 'cal'
#: rows join the fit after RANDOM's (the stores of C: sim.gpu_model.STORE_EFF).
STORE = DATA / "measured_h100_store.csv"
SHORTK = DATA / "measured_h100_shortk.csv"
#: Misaligned bf16/fp16 GEMMs of 2 to 64 rows and K of 2000 to 16000 (``python -m
#: sim.gpu.shapes --longk``): their 'cal' rows join the fit after SHORTK's (the wmma kernels'
#: load bandwidth, sim.gpu_model's wmma_load_gb_per_s).
LONGK = DATA / "measured_h100_longk.csv"
#: Runs measured after the dispatch rules were last read, whose launches no rule is read from
#: yet (none: the store and long-K probes' were read in too, their 'cal' rows fitted).
PENDING_RUNS: tuple[str, ...] = ()
#: The runs whose launches of the split-K 64x64 align-1 tile ALIGN1_SPLIT_STEPS is not fitted
#: on (its comment says why).
SPLIT_STEPS_APART = (LONGK,)
#: Every measured run that recorded the kernels each row launched (column kernels), H100 and
#: H200, the dispatch rules are read from and checked against; not the unseen dataset's runs
#: (``python -m sim.gpu.shapes --unseen``), which judge the model on shapes that no fit and no
#: rule has seen (docs/gpu.md's run table), nor PENDING_RUNS.
KERNEL_RUNS = tuple(f for f in sorted(DATA.glob("measured_*.csv"))
                    if "_unseen" not in f.stem and not any(p in f.stem for p in PENDING_RUNS)
                    and "kernels" in f.read_text().partition("\n")[0].split(","))
#: The first dataset's two H100 runs, timed after light load (no energy loop between their
#: rows): their 'cal' rows fit the burst clock (sim.gpu_model.after_light_load).
BURST = (DATA / "measured_h100.csv", DATA / "measured_h100_repeat.csv")



def rows(path: Path = MEASURED) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def launched_gemms() -> list[dict[str, str]]:
    """Every GEMM row of KERNEL_RUNS with its recorded kernels."""
    return [r for f in KERNEL_RUNS for r in rows(f) if r["op"] == "gemm" and r.get("kernels")]


def test_the_dataset_is_large_varied_and_split_before_fitting():
    shapes = rows(DATA / "shapes_v2.csv")
    measured = rows()
    assert len(measured) >= 800
    assert [r["split"] for r in shapes] == [r["split"] for r in measured]
    for first in ("measured_h100.csv", "measured_h100_repeat.csv", "measured_h200.csv"):
        assert ([r["split"] for r in rows(DATA / first)]
                == [r["split"] for r in rows(DATA / "shapes.csv")])
    # every category the kernel model is held to: odd shapes in every dtype, head dims 32 to
    # 256, causal and not
    assert {r["dtype"] for r in measured if r["op"] == "gemm"
            and all(int(r[d]) % 8 for d in "MNK")} == {"bf16", "fp16", "fp8", "int8"}
    assert {int(r["D"]) for r in measured if r["op"] != "gemm"} == {32, 64, 96, 128, 256}
    assert {r["causal"] for r in measured if r["op"] == "attn_prefill"} == {"0", "1"}
    # energy and clock per kernel, on the same kernels
    energy = rows(ENERGY)
    assert [r["split"] for r in energy] == [r["split"] for r in measured]
    assert all(float(r["mj"]) > 0 and 300 <= int(r["sm_mhz"]) <= 2000
               and 1 <= int(r["energy_sets"]) <= 64 for r in energy)
    assert {r["gpu"] for r in energy} == {"NVIDIA H100 80GB HBM3"}
    ops = {(r["op"], r["dtype"]) for r in measured}
    assert {("gemm", d) for d in ("bf16", "fp8", "int8")} <= ops
    assert {("attn_prefill", "bf16"), ("attn_decode", "bf16")} <= ops
    gemm_m = {int(r["M"]) for r in measured if r["op"] == "gemm"}
    assert min(gemm_m) == 1 and max(gemm_m) >= 8192
    misaligned = [r for r in measured if r["op"] == "gemm" and int(r["N"]) % 8]
    assert misaligned
    assert {r["gpu"] for r in measured} == {"NVIDIA H100 80GB HBM3"}
    assert {r["split"] for r in measured} == {"cal", "held"}
    # the split is a pure function of the row (sim.gpu.shapes), not of any measurement
    from sim.gpu.shapes import split_of

    assert all(split_of(r) == r["split"] for r in shapes)


def test_check_meets_the_targets_on_every_measured_run(capsys, tmp_path):
    """Both H100 runs against the h100 preset, and the H200 run against the h200 preset (the
    H100 calibration scaled by the datasheet bandwidth ratio: fitted on no H200 row)."""
    for name in ("measured_h100.csv", "measured_h100_repeat.csv", "measured_h200.csv",
                 "measured_h100_v2.csv"):
        plot = tmp_path / f"{name}.png"
        code, out, err = run(capsys, ["gpu", "check", "--measured", str(DATA / name),
                                      "--plot", str(plot)])
        assert code == 0, out + err
        assert re.search(r"^held-out targets .*: PASS$", out, re.M)
        assert "held-out energy: not checked" in out  # these files have no energy
        held = [line.split() for line in out.splitlines()
                if line.startswith("held") and " all " in line]
        assert {h[1] for h in held} == {"gemm", "attention"}
        for h in held:
            assert float(h[4].rstrip("%")) <= 10.0
            assert float(h[7]) >= 0.95
        assert plot.read_bytes()[:4] == b"\x89PNG"


def test_the_h200_preset_meets_the_targets_on_the_h200s_v2_run(capsys):
    """The v2 dataset measured on an H200, time and energy, against the h200 preset: the H100
    calibration and energy model scaled by the datasheet bandwidth, fitted on no H200 row."""
    code, out, err = run(capsys, ["gpu", "check", "--measured",
                                  str(DATA / "measured_h200_v2.csv")])
    assert code == 0, out + err
    assert "against the h200 preset" in out and "card NVIDIA H200" in out
    assert re.search(r"^held-out targets .*: PASS$", out, re.M)
    assert re.search(r"^held-out energy targets .*: PASS$", out, re.M)


def test_check_names_every_category_that_misses_the_finer_targets(capsys):
    """The finer line lists exactly the held-out categories of 5 or more kernels whose MAPE in
    the table exceeds 10%, and says PASS only when there are none and all held-out kernels
    together are within 7% at a Spearman of 0.97."""
    for name in ("measured_h100_v2.csv", "measured_h100_decode.csv", "measured_h100_quant.csv",
                 "measured_h200_misaligned.csv"):
        _, out, _ = run(capsys, ["gpu", "check", "--measured", str(DATA / name)])
        table = [line.split() for line in out.splitlines() if line.startswith("held ")]
        over = {h[2] for h in table if h[2].count("/") >= 2 and int(h[3]) >= 5
                and float(h[4].rstrip("%")) > 10.0}
        line = next(x for x in out.splitlines() if x.startswith("held-out finer targets"))
        verdict, _, detail = line.partition("): ")[2].partition(" (")
        named = {m.split()[0] for m in detail.rstrip(")").split("; ") if not m.startswith("all ")}
        if verdict == "PASS":
            assert not over
        else:
            assert verdict == "FAIL" and named == over, (line, over)


def _corrupted(tmp_path: Path, source: Path, column: str) -> Path:
    """A copy of a measured file (and its side files) with ``column`` of every held-out row
    multiplied by 10."""
    measured = rows(source)
    bad = tmp_path / source.name
    with open(bad, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(measured[0]))
        w.writeheader()
        for r in measured:
            w.writerow({**r, column: str(float(r[column]) * 10)} if r["split"] == "held" else r)
    for side in ("_microbench.csv", "_env.json"):
        if (DATA / f"{source.stem}{side}").is_file():
            (tmp_path / f"{source.stem}{side}").write_bytes(
                (DATA / f"{source.stem}{side}").read_bytes())
    return bad


def test_the_fit_never_sees_held_out_rows(tmp_path, monkeypatch):
    """The fits are given exactly the 'cal' rows: with every held-out time corrupted, the time
    fit receives the same kernels and times (seen by a stand-in for it, so the Nelder-Mead
    search runs once, in the next test, not twice), those of the rows whose timing is steady;
    with every held-out energy corrupted, the energy constants come out the same."""
    import sim.gpu.calibrate as calibration
    from sim.gpu.measure import steady

    def corrupted(folder: str, source: Path, column: str) -> Path:
        (tmp_path / folder).mkdir()
        return _corrupted(tmp_path / folder, source, column)

    measured = rows()
    bad = corrupted("t", MEASURED, "us")
    bad_energy = corrupted("e", ENERGY, "mj")
    seen: list[tuple[list[Kernel], list[float]]] = []

    def spy(base, kernels, us, hold=None):
        seen.append((kernels, us))
        return dict(base.params)

    bad_quant = corrupted("q", QUANT, "us")
    bad_misaligned = corrupted("m", MISALIGNED, "us")
    bad_misaligned_energy = corrupted("me", MISALIGNED, "mj")
    bad_decode = corrupted("d", DECODE, "us")
    bad_graph = corrupted("g", QUANT_GRAPH, "us")
    bad_graph_energy = corrupted("ge", QUANT_GRAPH, "mj")
    bad_w4 = corrupted("w", QUANT_W4, "us")
    bad_w4_energy = corrupted("we", QUANT_W4, "mj")
    monkeypatch.setattr(calibration, "fit", spy)
    a, _ = calibrate(bad, energy=bad_energy,
                     extra=(bad_quant, bad_misaligned, bad_decode, bad_graph, bad_w4))
    b, _ = calibrate(MEASURED, energy=ENERGY, extra=EXTRA)
    c, _ = calibrate(MEASURED, energy=ENERGY,
                     extra=(QUANT, bad_misaligned_energy, DECODE, bad_graph_energy,
                            bad_w4_energy))
    assert len(seen) == 3 and seen[0] == seen[1] == seen[2][:1] + seen[2][1:]
    cal = [r for r in measured if r["split"] == "cal" and r.get("status", "ok") == "ok"
           and steady(r)]

    def kivi(r: dict[str, str]) -> bool:
        return r["kv_dtype"] in ("int8", "int4")

    # the quantized file's bf16-cache decode rows are kernels the measured file has, its KIVI
    # rows and its GEMMs kernels the CUDA-graph files (later ones) have: all left out
    assert not {Kernel.from_row(r) for r in rows(QUANT) if r["dtype"] != "bf16"} - {
        Kernel.from_row(r) for r in rows(QUANT_GRAPH) + rows(QUANT_W4)}
    # (a row whose timing is unsteady fits nothing: sim.gpu.measure.steady)
    odd = [r for r in rows(MISALIGNED) if r["split"] == "cal" and r["status"] == "ok"
           and steady(r)]
    decode = [r for r in rows(DECODE) if r["split"] == "cal" and steady(r)]
    graph = [r for r in rows(QUANT_GRAPH) if r["split"] == "cal" and kivi(r) and steady(r)]
    w4 = [r for r in rows(QUANT_W4) if r["split"] == "cal" and steady(r)]
    assert len(odd) < len([r for r in rows(MISALIGNED) if r["split"] == "cal"
                           and r["status"] == "ok"])
    assert 0 < len(cal) < len(measured) and odd and decode and graph and w4
    assert len(seen[0][0]) == len(cal) + len(odd) + len(decode) + len(graph) + len(w4)
    assert seen[0][1] == [float(r["us"]) for r in cal + odd + decode + graph + w4]
    assert a.energy == b.energy == c.energy and a.energy is not None


def test_the_committed_calibration_is_the_fit():
    """The committed file is what its header's command writes: the parameters it names as held
    (``tpe gpu calibrate --hold``) at their committed values, the others fitted."""
    import tomllib

    committed = (DATA / "calibration_h100.toml").read_text()
    held = re.search(r"held at their previous values: ([\w, ]+)\.", committed)
    fitted = tomllib.loads(committed)["fitted"]
    hold = {n: float(fitted[n]) for n in held.group(1).split(", ")} if held else None
    _, text = calibrate(MEASURED, energy=ENERGY, extra=(*EXTRA, RANDOM, STORE, SHORTK, LONGK),
                        burst=BURST, hold=hold)
    assert committed.split("card =", 1)[1] == text.split("card =", 1)[1]


def test_the_model_has_the_mechanisms_the_issue_names():
    cal = load_calibration("h100")

    def us(**kw) -> float:
        return predict_us(cal, Kernel(op="gemm", dtype="bf16", **kw))

    # misaligned inner dimensions run several times slower
    assert us(M=1000, N=4095, K=4096) > 3 * us(M=1000, N=4096, K=4096)
    # wave quantization: bf16's tiles sized to the shape (shape_fitted_tiles) take C in one
    # wave of 132 tiles while it fits the largest tile (NVJET_TILE_MAX_AREA elements: 1024 x
    # 5248 does); past it a second wave (or smaller tiles) costs far more than the added work
    assert 1024 * 5248 <= 132 * NVJET_TILE_MAX_AREA < 1024 * 5376
    assert us(M=1024, N=5376, K=4096) > 1.05 * (5376 / 5248) * us(M=1024, N=5248, K=4096)
    # ... while below it the time grows with the work, not by a whole wave (1152 rows: 8
    # row tiles of 144 by 16 of 256, one wave, where 128x256 tiles would need two)
    assert us(M=1152, N=4096, K=4096) < 1.15 * us(M=1024, N=4096, K=4096)
    # a fixed cost: tiny GEMMs do not take zero time
    assert us(M=1, N=8, K=8) > 2.0
    # skinny GEMMs are memory-bound: time grows with the weight bytes, not with M
    assert us(M=8, N=4096, K=4096) == pytest.approx(us(M=1, N=4096, K=4096), rel=0.05)
    # fp8 halves the bytes and doubles the rate of bf16
    fp8 = predict_us(cal, Kernel(op="gemm", dtype="fp8", M=4096, N=4096, K=4096))
    assert fp8 < 0.7 * us(M=4096, N=4096, K=4096)
    # the calibration's clock is the sustained one under the power cap (1.2-1.45 GHz)
    assert 1200 <= cal.sustained_clock_mhz <= 1450


def _nvjet_tile(kernels: str) -> tuple[int, int, bool] | None:
    """The (rows, columns) of C a recorded nvjet_sm90 kernel's CTA tile covers (its name gives
    cuBLAS's ``m x n``: columns by rows here) and whether it ran split-K."""
    m = re.search(r"nvjet_sm90_\w+?_(\d+)x(\d+)_64x\d+_\dx\d_[hv]_bz_(splitK_)?", kernels)
    return (int(m.group(2)), int(m.group(1)), bool(m.group(3))) if m else None


def test_aligned_tiles_are_sized_to_the_shape_as_recorded():
    """cuBLAS's Hopper kernels size their tile to the shape (sim.gpu_model.shape_fitted_tiles):
    of the random dataset's aligned bf16/fp16 GEMMs of 64 rows and more above 2 GFLOP, run
    unsplit, the recorded tile and its waves are among the model's candidates for at least nine
    in ten, and none of the recorded launches runs fewer waves x tile area than the model's
    best candidate (the model never misses a cheaper tiling that cuBLAS found)."""
    from sim.gpu_model import SPLITS, _cdiv, shape_fitted_tiles

    sm = load_calibration("h100").sm_count
    found = checked = 0
    for r in rows(RANDOM):
        M, N, K = int(r["M"]), int(r["N"]), int(r["K"])
        tile = _nvjet_tile(r["kernels"])
        if (r["dtype"] not in ("bf16", "fp16") or N % 8 or K % 8 or tile is None or tile[2]
                or M < 64 or 2 * M * N * K < 2e9):
            continue
        bm, bn, _ = tile
        waves = _cdiv(_cdiv(M, bm) * _cdiv(N, bn), sm)
        candidates = shape_fitted_tiles(M, N, sm, SPLITS)
        checked += 1
        found += (bm, bn, 1, waves) in candidates
        assert min(w * a * b for a, b, s, w in candidates if s == 1) <= waves * bm * bn, r
    assert checked >= 15 and found >= 0.9 * checked, (found, checked)


def test_the_choices_the_model_weighs_give_its_time():
    """sim.gpu_model.gemm_choices (what benchmarks/gpu_clock_study.py tabulates) lists the
    tiles and splits the GEMM model weighs: its least fixed cost plus work is the model's time
    for every GEMM drawn (any alignment, every dtype, both presets), the CUDA-core kernels
    have none, and every choice's time is at least its compute and its memory time."""
    import random

    from sim.gpu_model import gemm_choices, gemm_family

    rng = random.Random(12)
    for card in ("h100", "h200"):
        cal = arch_calibration(load_arch(card))
        tiled = 0
        for _ in range(400):
            M, N, K = (int(2 ** rng.uniform(0, 14)) for _ in range(3))
            if rng.random() < 0.5:
                N, K = 16 * max(1, N // 16), 16 * max(1, K // 16)
            k = Kernel(op="gemm", dtype=rng.choice(("bf16", "fp16", "fp8", "int8")), M=M, N=N,
                       K=K)
            choices = gemm_choices(cal, k)
            if gemm_family(k) == "gemv":
                assert choices == [], k
                continue
            tiled += 1
            assert min(c.fixed_us + c.us for c in choices) == pytest.approx(
                sum(predict_parts_us(cal, k)), rel=1e-12), k
            assert all(c.us >= min(c.compute_us, c.memory_us) * (1 - 1e-12) for c in choices)
        assert tiled > 300
    with pytest.raises(ValueError, match="gemm_choices"):
        gemm_choices(load_calibration("h100"), Kernel(op="gemm", dtype="w4a16", M=1, N=64,
                                                      K=64))


def test_a_tile_sized_to_the_shape_fills_the_sms():
    """695x3808x14176 bf16 ran 176 x 128 tiles (4 x 30 = 120, one wave;
    measured_h100_random.csv): the model takes it no slower than that one wave at the 128x128
    tile's efficiency, where 128x256 tiles would pad N and 128 rows leave two waves."""
    cal = load_calibration("h100")
    p = cal.params
    one_wave_s = 2 * 176 * 128 * 14176 / (cal.peak_tflops["bf16"] * 1e12 / cal.sm_count
                                          * p["eff_128x128"])
    fixed, work = predict_parts_us(cal, Kernel(op="gemm", dtype="bf16", M=695, N=3808,
                                               K=14176))[:2]
    assert fixed == p["fixed_us"] and work <= one_wave_s * 1e6 * (1 + 1e-9)


def test_bf16_tiles_load_their_rows_from_l2_at_the_fp8_kernels_rate():
    """3272x192x9200 bf16 (measured_h100_random.csv: nvjet 64x80 tiles, 2 x 63 CTAs, K rows of
    18400 bytes, off the L2's line): the model takes it no faster than the cheapest tile's A
    and W rows in line traffic at fp8_load_gb_per_s, the L2 rate fitted on the fp8 kernels (no
    constant of its own); the bound is live: at half that rate it sets its time (fitted with
    C's stores apart from the fp8 kernels' reads, 19 TB/s, it binds on none of the v2, random
    and store datasets' aligned bf16/fp16 GEMMs; fitted with them among the reads, 15 TB/s, it
    bound this one); a GEMM whose products bind (4096 cubed) does not move."""
    import dataclasses

    from sim.gpu_model import L2_LINE_BYTES, NVJET_TILE_BN, TILES, line_traffic

    cal = load_calibration("h100")
    p = cal.params
    M, N, K = 3272, 192, 9200
    assert (K * 2) % L2_LINE_BYTES and line_traffic(K * 2) > 1
    # every tile the model may take, fixed or sized to the shape (at most 256x160 elements)
    rows = min((-(-M // bm)) * (-(-N // bn)) * (bm + bn)
               for bm, bn in (*TILES, *((bm, bn) for bn in NVJET_TILE_BN
                                        for bm in range(64, 257, 8) if bm * bn <= 256 * 160)))
    floor_s = rows * K * 2 * line_traffic(K * 2) / (p["fp8_load_gb_per_s"] * 1e9)
    k = Kernel(op="gemm", dtype="bf16", M=M, N=N, K=K)
    work = predict_parts_us(cal, k)[1]
    assert work >= floor_s * 1e6 * (1 - 1e-9)
    slower = dataclasses.replace(cal, params={**p, "fp8_load_gb_per_s":
                                              p["fp8_load_gb_per_s"] / 2})
    assert predict_parts_us(slower, k)[1] > 1.1 * work
    big = Kernel(op="gemm", dtype="bf16", M=4096, N=4096, K=4096)
    assert predict_parts_us(slower, big) == predict_parts_us(cal, big)


def test_calibrate_holds_what_hold_names(capsys, tmp_path):
    """``--hold`` keeps a fitted parameter, or every parameter of a group the fit fits together
    (``FIT_GROUPS``), at its value in the --out file, out of the search; a name that is
    neither, or an --out file that does not exist or lacks a held parameter, is refused."""
    import tomllib

    from sim.cli.gpu import _held
    from sim.gpu.calibrate import FIT_GROUPS, fit

    cal = load_calibration("h100")
    ks = [Kernel(op="gemm", dtype="bf16", M=m, N=4096, K=4096) for m in (256, 1024, 4096)]
    us = [predict_us(cal, k) * 1.1 for k in ks]
    params = fit(cal, ks, us, groups={"gemm": ["fixed_us", "eff_128x256"]},
                 hold={"eff_128x256": 0.5})
    assert params["eff_128x256"] == 0.5 and params["fixed_us"] != cal.params["fixed_us"]
    committed = DATA / "calibration_h100.toml"
    fitted = tomllib.loads(committed.read_text())["fitted"]
    assert _held(["gemm_fp8", "fixed_us"], committed) == {
        n: fitted[n] for n in (*FIT_GROUPS["gemm_fp8"], "fixed_us")}
    assert not set(FIT_GROUPS) & set(fitted)  # a group's name is never a parameter's
    out = tmp_path / "c.toml"
    code, _, err = run(capsys, ["gpu", "calibrate", "--measured", str(MEASURED), "--hold",
                                "no_such", "--out", str(out)])
    assert code == 2 and ("--hold: 'no_such' is neither a fitted parameter nor a group of "
                          "them; give one of fixed_us,") in err
    code, _, err = run(capsys, ["gpu", "calibrate", "--measured", str(MEASURED), "--hold",
                                "int8_bw_eff", "--out", str(out)])
    assert code == 2 and "--hold: --out" in err and "does not exist yet" in err
    out.write_text(committed.read_text().replace("fp8_step_ns =", "# fp8_step_ns ="))
    code, _, err = run(capsys, ["gpu", "calibrate", "--measured", str(MEASURED), "--hold",
                                "gemm_fp8", "--out", str(out)])
    assert code == 2 and f"--hold: {out} has no [fitted] fp8_step_ns;" in err


def test_predict_needs_no_torch(tmp_path):
    code = (
        "import sys, builtins\n"
        "real = builtins.__import__\n"
        "def guard(name, *a, **k):\n"
        "    if name.split('.')[0] in ('torch', 'triton'):\n"
        "        raise ImportError('no torch here')\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = guard\n"
        "from sim.cli import main\n"
        f"sys.exit(main(['gpu', 'predict', '--gpu', 'h100', '--in', {str(DATA / 'shapes.csv')!r},"
        f" '--out', {str(tmp_path / 'p.csv')!r}]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    predicted = rows(tmp_path / "p.csv")
    assert len(predicted) == len(rows(DATA / "shapes.csv"))
    assert all(float(r["us"]) > 0 and r["gpu"] == "h100" for r in predicted)


@pytest.mark.parametrize(("flags", "pattern"), [
    (["--skip", "-1"], r"^tpe: error: --skip: must be an integer >= 0 \(got -1\)$"),
    (["--limit", "-2"], r"^tpe: error: --limit: must be an integer >= 0 \(got -2\)$"),
    (["--skip", "100000"], r"^tpe: error: --skip: 100000 leaves none of the \d+ rows"),
    (["--energy-s", "-1"], r"^tpe: error: --energy-s: must be >= 0 seconds"),
])
def test_measure_refuses_bad_selections_before_looking_for_a_gpu(capsys, tmp_path, flags,
                                                                 pattern):
    code, out, err = run(capsys, ["gpu", "measure", "--in", str(DATA / "shapes_v2.csv"),
                                  "--out", str(tmp_path / "m.csv"), *flags])
    assert code == 2 and out == ""
    assert re.match(pattern, err.strip()), err
    assert not (tmp_path / "m.csv").exists()


def test_rows_are_selected_in_order():
    from sim.gpu.measure import read_shapes, select_rows

    rows = read_shapes(DATA / "shapes_v2.csv")
    assert select_rows(rows, 0, 0) == rows
    assert select_rows(rows, 400, 0) + select_rows(rows, 0, 400) == rows[400:] + rows[:400]
    assert select_rows(rows, 800, 100) == rows[800:]


def test_measure_without_a_gpu_exits_2(capsys, tmp_path):
    code, out, err = run(capsys, ["gpu", "measure", "--in", str(DATA / "shapes.csv"),
                                  "--out", str(tmp_path / "m.csv")])
    assert code == 2
    assert out == ""
    assert re.match(r"^tpe: error: tpe gpu measure: (no CUDA GPU found|needs torch)", err)
    assert not (tmp_path / "m.csv").exists()


@pytest.mark.parametrize(("argv", "pattern"), [
    (["gpu", "predict", "--gpu", "systolic", "--in", "x.csv", "--out", "y.csv"],
     r"^tpe: error: --gpu: systolic is not a GPU preset"),
    (["gpu", "predict", "--gpu", "h100", "--in", "nope.csv", "--out", "y.csv"],
     r"^tpe: error: --in: cannot read 'nope.csv'"),
    (["gpu", "check", "--measured", "nope.csv"], r"^tpe: error: --measured: cannot read"),
])
def test_bad_input_is_one_line(capsys, argv, pattern):
    code, out, err = run(capsys, argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert re.match(pattern, err), err


def test_bad_shapes_rows_name_the_line(capsys, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("op,dtype,M,N,K,B,H,Hkv,S,D\ngemm,bf16,4,4,4,,,,,\nconv,bf16,1,1,1,,,,,\n")
    code, _, err = run(capsys, ["gpu", "predict", "--gpu", "h100", "--in", str(bad), "--out",
                                str(tmp_path / "p.csv")])
    assert code == 2
    assert re.match(r"^tpe: error: --in: line 3: op: unknown 'conv'", err)
    bad.write_text("op,dtype,M,N,K,B,H,Hkv,S,D\ngemm,fp8,4,4,4,,,,,\n")
    code, _, err = run(capsys, ["gpu", "predict", "--gpu", "a100", "--in", str(bad), "--out",
                                str(tmp_path / "p.csv")])
    assert code == 2
    assert "a100 has no fp8 tensor cores" in err
    # the measurement and the prediction read the shapes with one rule (check_op_dtype): a
    # row one refuses, the other refuses with the same message (attention in fp8 was priced at
    # the fp8 rate while the measurement would have run it in fp16; in w4a16 it raised)
    from sim.gpu.measure import MeasureError, read_shapes

    for row, message in (("attn_decode,fp8,,,,1,32,8,100,128",
                          "dtype: attention runs in bf16 or fp16 (got 'fp8'"),
                         ("attn_prefill,w4a16,,,,1,32,8,1000,128",
                          "dtype: attention runs in bf16 or fp16 (got 'w4a16'"),
                         ("gemm,bf17,4,4,4,,,,,", "dtype: unknown 'bf17'; one of bf16, fp16"),
                         ("conv,bf16,1,1,1,,,,,", "op: unknown 'conv'; one of gemm"),
                         # a size cell, used or not by its op (one rule: shape_cell)
                         ("gemm,bf16,4,x,4,,,,,", "N: must be an integer (got 'x')"),
                         ("gemm,bf16,4,4,4,,1e3,,,", "H: must be an integer (got '1e3')"),
                         ("attn_decode,bf16,-5,,,1,32,8,100,128", "M: must be >= 1 (got -5)"),
                         # the sizes an op needs (one rule: check_kernel_shape)
                         ("gemm,bf16,4,,4,,,,,", "N: required (>= 1) for op gemm"),
                         ("attn_prefill,bf16,,,,1,32,8,,128", "S: required (>= 1) for op "
                          "attn_prefill"),
                         ("attn_decode,bf16,,,,1,32,5,100,128", "Hkv: 32 query heads are not a "
                          "multiple of 5 key/value heads")):
        bad.write_text(f"op,dtype,M,N,K,B,H,Hkv,S,D\n{row}\n")
        code, _, err = run(capsys, ["gpu", "predict", "--gpu", "h100", "--in", str(bad),
                                    "--out", str(tmp_path / "p.csv")])
        assert code == 2 and err.startswith(f"tpe: error: --in: line 2: {message}"), err
        with pytest.raises(MeasureError, match=rf"^line 2: {re.escape(message)}"):
            read_shapes(bad)


def test_predict_on_a_measured_file_replaces_its_time_and_card(capsys, tmp_path):
    out = tmp_path / "p.csv"
    code, _, err = run(capsys, ["gpu", "predict", "--gpu", "h200", "--in", str(MEASURED),
                                "--out", str(out)])
    assert code == 0, err
    header = out.read_text().splitlines()[0].split(",")
    assert header.count("us") == 1 and header.count("gpu") == 1
    assert {r["gpu"] for r in rows(out)} == {"h200"}


def test_the_causal_column(capsys, tmp_path):
    """``causal`` (optional): 1 or 0 on attn_prefill rows, empty elsewhere; a non-causal
    prefill is predicted slower than the causal one (every query sees every key), and a bad
    cell names its line and the column in both readers."""
    from sim.gpu.measure import MeasureError, read_shapes

    head = "op,dtype,M,N,K,B,H,Hkv,S,D,causal\n"
    good = tmp_path / "good.csv"
    good.write_text(head + "attn_prefill,bf16,,,,1,32,8,4096,64,1\n"
                    "attn_prefill,bf16,,,,1,32,8,4096,64,0\n"
                    "attn_prefill,bf16,,,,1,32,8,4096,64,\n"
                    "attn_decode,bf16,,,,1,32,8,4096,64,\n")
    assert [r.get("causal") for r in read_shapes(good)] == [1, 0, 1, ""]
    out = tmp_path / "p.csv"
    code, _, err = run(capsys, ["gpu", "predict", "--gpu", "h100", "--in", str(good), "--out",
                                str(out)])
    assert code == 0, err
    us = [float(r["us"]) for r in rows(out)]
    assert us[1] > 1.5 * us[0] and us[2] == us[0]
    for bad_row, line in (("attn_prefill,bf16,,,,1,32,8,4096,64,2", 2),
                          ("attn_decode,bf16,,,,1,32,8,4096,64,0", 2)):
        bad = tmp_path / "bad.csv"
        bad.write_text(head + bad_row + "\n")
        with pytest.raises(MeasureError, match=rf"^line {line}: causal: 1 or 0"):
            read_shapes(bad)
        code, _, err = run(capsys, ["gpu", "predict", "--gpu", "h100", "--in", str(bad),
                                    "--out", str(out)])
        assert code == 2 and re.match(rf"^tpe: error: --in: line {line}: causal: 1 or 0", err)


def test_low_precision_kernels_run_padded_to_their_alignment():
    from sim.gpu_model import ALIGNMENT, padded_shape

    assert padded_shape("bf16", 3, 5, 7) == (3, 5, 7)
    assert padded_shape("fp8", 3, 5, 17) == (3, 16, 32)
    assert padded_shape("int8", 3, 5, 17) == (17, 8, 24)
    assert padded_shape("int8", 64, 4096, 4096) == (64, 4096, 4096)
    for dtype, (m_above, n_mult, k_mult) in ALIGNMENT.items():
        for M, N, K in ((1, 1, 1), (100, 4095, 4097), (16384, 16383, 9)):
            Mp, Np, Kp = padded_shape(dtype, M, N, K)
            assert Mp > m_above and Np % n_mult == 0 and Kp % k_mult == 0
            assert 0 <= Np - N < n_mult and 0 <= Kp - K < k_mult and Mp >= M


def test_the_second_dataset_keeps_the_first_and_adds_what_it_lacks():
    from sim.gpu.shapes import SHAPES_V2_CSV, default_shapes, v2_shapes

    first, second = default_shapes(), v2_shapes()
    assert second[: len(first)] == first and len(second) >= 800
    new = second[len(first):]
    odd = [r for r in new if r["op"] == "gemm"]
    assert {r["dtype"] for r in odd} == {"bf16", "fp16", "fp8", "int8"}
    assert all(int(r[d]) % 8 and 1 <= int(r[d]) <= 16384 for r in odd for d in "MNK")
    attn = [r for r in new if r["op"] != "gemm"]
    assert {r["D"] for r in attn} == {32, 64, 96, 128, 256}
    assert {r["causal"] for r in attn if r["op"] == "attn_prefill"} == {0, 1}
    assert {r["Hkv"] for r in attn} == {32, 8, 1}
    keys = [tuple(str(r.get(c, "")) for c in ("op", "dtype", "M", "N", "K", "B", "H", "Hkv",
                                                "S", "D", "causal")) for r in second]
    assert len(set(keys)) == len(keys)
    # the committed file is what the code writes
    written = rows(SHAPES_V2_CSV)
    assert len(written) == len(second)
    assert all(str(r.get(c, "")) == w[c] for r, w in zip(second, written, strict=True)
               for c in ("op", "M", "N", "K", "S", "D", "causal", "split"))


def test_an_unvalidated_preset_says_so_in_every_output(capsys, tmp_path):
    """a100 was never measured: its text outputs carry a note and its JSON
    ``gpu_validated: false``; the measured cards' presets carry neither."""
    gemm = ["sim", "gemm", "--M", "64", "--N", "4096", "--K", "4096"]
    model = ["sim", "model", "--model", "llama-2-7b", "--phase", "decode", "--batch", "1",
             "--seq", "128"]
    shapes = tmp_path / "s.csv"
    shapes.write_text("op,dtype,M,N,K,B,H,Hkv,S,D\ngemm,bf16,64,4096,4096,,,,,\n")
    for preset, validated in (("a100", False), ("h100", True), ("h200", True)):
        assert load_arch(preset).gpu.validated is validated
        for argv in (gemm, model):
            code, out, err = run(capsys, [*argv, "--arch", preset])
            assert code == 0, err
            assert ("not validated" in out) is not validated
            code, out, _ = run(capsys, [*argv, "--arch", preset, "--json"])
            assert json.loads(out)["gpu_validated"] is validated
        code, out, _ = run(capsys, ["gpu", "predict", "--gpu", preset, "--in", str(shapes),
                                    "--out", str(tmp_path / "p.csv")])
        assert code == 0 and ("note: a100 is not validated" in out) is not validated
    code, out, _ = run(capsys, [*gemm, "--arch", "systolic", "--json"])
    assert "gpu_validated" not in json.loads(out)


def test_gpu_presets_run_whole_models():
    cfg = load_model("llama-2-7b")
    h100, h200 = load_arch("h100"), load_arch("h200")
    ops = lower(cfg, phase="decode", batch=8, seq=2048, quant="bf16")
    a = simulate_model(h100, ops, phase="decode", batch=8, seq=2048)
    b = simulate_model(h200, ops, phase="decode", batch=8, seq=2048)
    assert b.seconds < a.seconds  # same chip, more bandwidth
    assert a.energy_breakdown_pj["gpu_board"] == pytest.approx(a.energy_pj)
    # each operator instance's energy is the kernel model's prediction for it
    from sim.gpu_model import op_estimate

    assert a.energy_pj == pytest.approx(sum(
        o.op.count * op_estimate(h100, o.op)[0].mj * 1e9 for o in a.ops), rel=1e-12)
    # a decode step draws less than the board's power limit
    assert a.energy_pj < 700.0 * a.seconds * 1e12
    assert {o.bound for o in a.ops if o.kind == "gemm"} == {"memory"}
    pre = simulate_model(h100, lower(cfg, phase="prefill", batch=1, seq=2048, quant="bf16"),
                         phase="prefill", batch=1, seq=2048)
    assert "compute" in {o.bound for o in pre.ops if o.kind == "gemm"}


def test_decoder_layer_measurements_are_committed():
    layer = rows(DATA / "layer_h100.csv")
    assert {r["phase"] for r in layer} == {"prefill", "decode"}
    assert all(float(r["us_graph"]) > 0 for r in layer)
    env = json.loads((DATA / "measured_h100_env.json").read_text())
    assert env["sm_count"] == load_arch("h100").cores


def test_sim_gemm_on_a_gpu_preset_uses_the_kernel_model(capsys):
    code, out, err = run(capsys, ["sim", "gemm", "--arch", "h100", "--M", "4096", "--N",
                                  "4096", "--K", "4096", "--json"])
    assert code == 0, err
    d = json.loads(out)
    for key in ("cycles", "compute_cycles", "stall_cycles", "utilization", "energy_pj",
                "seconds", "breakdown", "mapping"):
        assert key in d
    cal = load_calibration("h100")
    us = predict_us(cal, Kernel(op="gemm", dtype="bf16", M=4096, N=4096, K=4096,
                                a_bytes=2, w_bytes=2))
    # in a stream of kernels: less what timing the kernel alone adds
    assert cal.stream_overhead_us > 0
    assert d["seconds"] == pytest.approx((us - cal.stream_overhead_us) * 1e-6, rel=1e-3)
    assert d["mapping"]["gpu_kernel_model"] == "h100"


@pytest.mark.parametrize("preset", ["h100", "h200", "a100"])
def test_the_library_refuses_what_a_gpu_kernel_model_would_ignore(preset):
    """``simulate_op`` itself, not only the command line, refuses an energy or EDP objective
    and an output format other than the accumulator's on a GPU preset (neither would change
    its figure), naming the field; the accumulator's format and latency run."""
    from sim.errors import INPUT_ERRORS
    from sim.system import simulate_op

    arch = load_arch(preset)
    ok = Gemm(name="proj", M=64, N=256, K=512, a_fmt="bf16", w_fmt="bf16", o_fmt="fp32")
    assert simulate_op(arch, ok).cycles > 0
    for objective in ("energy", "edp"):
        with pytest.raises(INPUT_ERRORS, match=rf"^objective: {preset} is a GPU preset, .*"
                           rf"{objective}\); use objective 'latency'"):
            simulate_op(arch, ok, objective=objective)
    for o_fmt in ("bf16", "int8", "fp16"):
        bad = dataclasses.replace(ok, o_fmt=o_fmt)
        with pytest.raises(INPUT_ERRORS, match=rf"^proj\.o_fmt: {preset}'s kernel model writes "
                           rf"C as its kernel does .*\(got {o_fmt}\); leave o_fmt at fp32, "):
            simulate_op(arch, bad)
    # a GEMM built without o_fmt writes its accumulator's format, and runs
    default = Gemm(name="d", M=64, N=256, K=512, a_fmt="bf16", w_fmt="bf16")
    assert default.o_fmt == "fp32"
    assert simulate_op(arch, default).cycles == simulate_op(arch, ok).cycles
    # an int8 GEMM's accumulator is int32: that runs, fp32 does not
    i8 = Gemm(name="q", M=64, N=256, K=512, a_fmt="int8", w_fmt="int8", o_fmt="int32")
    assert simulate_op(arch, i8).cycles > 0
    with pytest.raises(INPUT_ERRORS, match=r"^q\.o_fmt: .*leave o_fmt at int32"):
        simulate_op(arch, dataclasses.replace(i8, o_fmt="fp32"))


def test_attention_outside_the_measured_head_dims_says_it_is_an_extrapolation(capsys):
    """The measured range is the dataset's head dims; inside it no note, outside it a
    ``gpu_range`` note that names the head dim and the bound."""
    from sim.gpu.shapes import HEAD_DIMS
    from sim.gpu_model import ATTN_HEAD_DIMS_MEASURED

    assert ATTN_HEAD_DIMS_MEASURED == (min(HEAD_DIMS), max(HEAD_DIMS))
    lo, hi = ATTN_HEAD_DIMS_MEASURED
    for d, bound in ((lo, None), (hi, None), (hi + 64, str(hi)), (lo // 2, str(lo))):
        code, out, err = run(capsys, ["sim", "attention", "--arch", "h100", "--batch", "1",
                                      "--heads", "8", "--kv-heads", "8", "--q-len", "1",
                                      "--kv-len", "256", "--head-dim", str(d), "--json"])
        assert code == 0, err
        note = json.loads(out)["mapping"].get("gpu_range")
        if bound is None:
            assert note is None
        else:
            assert f"head dim {d} " in note and bound in note and "extrapolation" in note


def _one_kernel(capsys, tmp_path: Path, row: str, sim: list[str]) -> tuple[float, float, float]:
    """A kernel's energy in mJ as ``tpe gpu predict`` writes it, as ``tpe gpu check`` compares
    it (the statistics of a measured file of that one row, measured as 1 mJ), and as
    ``tpe sim`` charges it (``energy_pj``)."""
    from sim.cli.gpu import _kernels, _predict, check_rows

    shapes = tmp_path / "s.csv"
    shapes.write_text("op,dtype,M,N,K,B,H,Hkv,S,D\n" + row + "\n")
    code, _, err = run(capsys, ["gpu", "predict", "--gpu", "h100", "--in", str(shapes),
                                "--out", str(tmp_path / "p.csv")])
    assert code == 0, err
    predicted = float(rows(tmp_path / "p.csv")[0]["mj"])
    measured = [{**rows(shapes)[0], "us": "1", "mj": "1", "split": "held"}]
    est = _predict(load_arch("h100"), _kernels(measured, "m"))
    checked = 1 + check_rows(measured, est)[("held", "gemm" if "gemm" in row else "attention",
                                              "all")]["mj_mape"]
    assert est[0].mj >= 1  # so that 1 + the error is the prediction
    code, out, err = run(capsys, [*sim, "--arch", "h100", "--json"])
    assert code == 0, err
    return predicted, checked, json.loads(out)["energy_pj"] * 1e-9


def test_one_energy_per_kernel_in_predict_check_and_the_simulator(capsys, tmp_path):
    for row, sim in (
        ("gemm,bf16,4096,4096,4096,,,,,", ["sim", "gemm", "--M", "4096", "--N", "4096",
                                             "--K", "4096"]),
        ("attn_decode,bf16,,,,8,32,8,4096,128",
         ["sim", "attention", "--batch", "8", "--heads", "32", "--kv-heads", "8", "--q-len",
          "1", "--kv-len", "4096", "--head-dim", "128"]),
    ):
        predicted, checked, charged = _one_kernel(capsys, tmp_path, row, sim)
        assert predicted == pytest.approx(charged, rel=1e-4)  # predict writes 5 digits
        assert checked == pytest.approx(charged, rel=1e-12)


def test_one_time_per_kernel_in_predict_and_the_simulator(capsys, tmp_path):
    """A kernel's two times, each from one place (sim.gpu_model.predict_kernel): tpe gpu
    predict's ``us`` (timed alone, as tpe gpu measure times it) is what tpe sim reports as
    ``gpu_timed_alone_us``, and its ``us_stream`` (back to back in a stream) is tpe sim's
    time, on random GEMMs of every dtype and random attention."""
    import random

    rng = random.Random(7)
    cases = []
    for _ in range(6):
        dtype = rng.choice(["bf16", "fp16", "fp8", "int8"])
        M, N, K = rng.choice([1, 7, 300, 4096]), rng.randint(1, 9000), rng.randint(1, 9000)
        cases.append((f"gemm,{dtype},{M},{N},{K},,,,,",
                      ["sim", "gemm", "--M", str(M), "--N", str(N), "--K", str(K), "--a-fmt",
                       dtype, "--w-fmt", dtype]))
    for _ in range(3):
        b, hkv, s, d = rng.randint(1, 16), rng.choice([1, 8]), rng.randint(1, 9000), 128
        op, q = rng.choice([("attn_decode", 1), ("attn_prefill", s)])
        cases.append((f"{op},bf16,,,,{b},32,{hkv},{s},{d}",
                      ["sim", "attention", "--batch", str(b), "--heads", "32", "--kv-heads",
                       str(hkv), "--q-len", str(q), "--kv-len", str(s), "--head-dim", str(d),
                       "--q-fmt", "bf16", "--kv-fmt", "bf16", *(["--causal"] if q > 1 else [])]))
    shapes = tmp_path / "s.csv"
    shapes.write_text("op,dtype,M,N,K,B,H,Hkv,S,D\n" + "\n".join(r for r, _ in cases) + "\n")
    code, _, err = run(capsys, ["gpu", "predict", "--gpu", "h100", "--in", str(shapes),
                                "--out", str(tmp_path / "p.csv")])
    assert code == 0, err
    for (row, sim), p in zip(cases, rows(tmp_path / "p.csv"), strict=True):
        code, out, err = run(capsys, [*sim, "--arch", "h100", "--json"])
        assert code == 0, (row, err)
        j = json.loads(out)
        # (predict writes 3 decimals; tpe sim's time is whole cycles of 1/1980 us)
        assert j["seconds"] * 1e6 == pytest.approx(float(p["us_stream"]), abs=1.1e-3), row
        assert j["mapping"]["gpu_timed_alone_us"] == pytest.approx(float(p["us"]), abs=6e-4)
        assert float(p["us"]) > float(p["us_stream"])  # timing alone adds to the kernel


def test_held_out_energy_meets_the_target():
    """The energy model on the kernels whose energy was never fitted, against the measured
    energy (input sets rotated), and against board power x time, which it replaces."""
    from sim.cli.gpu import TARGET_ENERGY_MAPE, _kernels, _predict, check_rows

    measured = [r for r in rows(ENERGY) if r["status"] == "ok"]
    h100 = load_arch("h100")
    est = _predict(h100, _kernels(measured, "m"))
    stats = check_rows(measured, est)
    for family in ("gemm", "attention"):
        s = stats[("held", family, "all")]
        # every held-out row has its energy judged, those whose timing is unsteady too
        assert s["mj_n"] == sum(r["split"] == "held" and (r["op"] == "gemm") == (family == "gemm")
                                for r in measured) > 50
        assert s["mj_mape"] <= TARGET_ENERGY_MAPE
    held = [(e, r) for e, r in zip(est, measured, strict=True) if r["split"] == "held"]
    board = sum(abs(h100.gpu.board_power_w * e.us * 1e-3 - float(r["mj"])) / float(r["mj"])
                for e, r in held) / len(held)
    ours = sum(abs(e.mj - float(r["mj"])) / float(r["mj"]) for e, r in held) / len(held)
    assert ours < board / 3


def test_check_reports_energy_where_the_file_has_it(capsys):
    code, out, _ = run(capsys, ["gpu", "check", "--measured", str(ENERGY)])
    assert re.search(r"^held-out energy targets \(MAPE <= 15% for each of gemm and "
                     r"attention\): PASS$", out, re.M)
    held = [line.split() for line in out.splitlines()
            if line.startswith("held") and " all " in line]
    assert {h[1] for h in held} == {"gemm", "attention"}
    assert all(float(h[8].rstrip("%")) <= 15.0 for h in held)
    # exit 1 iff a target is missed (this run's own times have host outliers: see docs/gpu.md)
    time_ok = re.search(r"^held-out targets .*: PASS$", out, re.M) is not None
    assert code == (0 if time_ok else 1)


def test_the_power_cap_stretches_kernels_on_a_lower_board_power(capsys):
    """At the measured card's limit no calibration kernel is stretched; at 300 W a large GEMM
    runs at a lower clock, drawing the scaled cap; too little power for any work is refused."""
    from sim.gpu_model import predict_kernel

    cal = load_calibration("h100")
    assert cal.energy is not None and cal.energy.limit_w == 700
    ks = [Kernel.from_row(r) for r in rows(ENERGY) if r["split"] == "cal"]
    assert not any(predict_kernel(cal, k, 700.0).capped for k in ks)
    gemm = ["sim", "gemm", "--arch", "h100", "--M", "8192", "--N", "8192", "--K", "8192",
            "--json"]
    seconds, watts = [], []
    for power in (700, 300):
        code, out, err = run(capsys, [*gemm, "--set", f"gpu.board_power_w={power}"])
        assert code == 0, err
        d = json.loads(out)
        seconds.append(d["seconds"])
        watts.append(d["energy_pj"] * 1e-12 / d["seconds"])
    assert seconds[1] > 1.5 * seconds[0]
    assert watts[0] < cal.energy.cap_w
    assert watts[1] == pytest.approx(cal.energy.cap_w * 300 / 700, rel=1e-3)
    code, out, err = run(capsys, [*gemm, "--set", "gpu.board_power_w=80"])
    assert code == 2 and out == ""
    assert re.match(r"^tpe: error: gpu\.board_power_w: 80 W leaves a kernel no power beyond "
                    r"the card's static power; give at least \d+ W$", err.strip()), err


def test_calibrate_needs_measured_energy(capsys, tmp_path):
    code, out, err = run(capsys, ["gpu", "calibrate", "--measured", str(MEASURED), "--out",
                                  str(tmp_path / "c.toml")])
    assert code == 2 and out == ""
    assert re.match(r"^tpe: error: --energy: measured_h100_v2\.csv has no calibration row with "
                    r"a measured energy \(column mj\); give --energy FILE", err.strip()), err
    assert not (tmp_path / "c.toml").exists()


def test_a_calibration_without_energy_is_refused(tmp_path):
    from hw.spec import SpecError

    text = (DATA / "calibration_h100.toml").read_text().split("[energy]")[0]
    path = tmp_path / "old.toml"
    path.write_text(text)
    with pytest.raises(SpecError, match=r"^gpu\.calibration: .*old\.toml has no \[energy\] "
                                        r"table; tpe gpu calibrate"):
        load_calibration(path)


# -- the eager runtime (tpe sim model --runtime eager) against eager transformers ------------

def _eager_result(r: dict, host_us: float | None = None):
    from sim.gpu_model import load_eager

    arch = load_arch("h100")
    ops = lower(load_model(r["model"]), phase=r["phase"], batch=int(r["batch"]),
                seq=int(r["seq"]), quant="bf16", runtime="eager")
    host = load_eager("h100").host_launch_us[r["phase"]] if host_us is None else host_us
    return simulate_model(arch, ops, phase=r["phase"], batch=int(r["batch"]),
                          seq=int(r["seq"]), runtime="eager", host_launch_us=host)


#: The eager run the constants are fitted on: profiled and timed on one host in one call.
EAGER_PROFILE, EAGER_TIMED = DATA / "framework_ops_h100_b.csv", DATA / "framework_h100_b.csv"


def test_eager_constants_are_what_the_fit_writes(tmp_path):
    """sim/data/gpu/eager_h100.toml is python -m sim.gpu.framework --fit-eager's output on the
    committed profile and its timed passes, byte for byte."""
    from sim.gpu.framework import main

    out = tmp_path / "eager.toml"
    assert main(["--fit-eager", str(EAGER_PROFILE), "--timed", str(EAGER_TIMED),
                 "--out", str(out)]) == 0
    assert out.read_text() == (DATA / "eager_h100.toml").read_text()


def test_eager_fit_refusals(tmp_path, capsys):
    """--timed without --fit-eager, a missing file, and a timed run lacking a profiled pass
    each exit 2 with one line naming the flag; nothing is written."""
    from sim.gpu.framework import main

    out = tmp_path / "eager.toml"
    short = tmp_path / "short.csv"
    lines = EAGER_TIMED.read_text().splitlines()
    short.write_text("\n".join(lines[:-1]) + "\n")
    for argv, flag in ((["--timed", str(EAGER_TIMED)], "--timed"),
                       (["--fit-eager", str(tmp_path / "none.csv")], "--fit-eager"),
                       (["--fit-eager", str(EAGER_PROFILE), "--timed", str(short)], "--timed")):
        assert main([*argv, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: {flag}") and "\n" not in err, err
        assert not out.exists()


def test_eager_runtime_predicts_held_out_transformers_passes():
    """On the model the eager constants were not fitted on (Llama-3-8B), every pass of the
    fit's run is predicted within 25% of its timed eager transformers run, six of the eight
    within 10% (the host's launch time moves by tens of percent from pass to pass and run to
    run: docs/gpu.md); the device's busy time of every pass within 25% of the profile's (the
    element-wise kernels' fixed cost is one constant)."""
    from sim.gpu.framework import EAGER_FIT_MODEL, profiled_passes

    timed = {(r["model"], r["phase"], int(r["batch"]), int(r["seq"])): float(r["us"])
             for r in rows(EAGER_TIMED)}
    held = [p for p in profiled_passes(EAGER_PROFILE) if p["model"] != EAGER_FIT_MODEL]
    assert len(held) >= 8
    errors = []
    for p in held:
        res = _eager_result({k: str(v) for k, v in p.items()})
        device_us = (res.cycles - res.host_wait_cycles) / res.arch.clock_mhz
        assert device_us == pytest.approx(p["busy_us"], rel=0.25), p
        measured = timed[(p["model"], p["phase"], p["batch"], p["seq"])]
        errors.append(abs(res.seconds * 1e6 / measured - 1))
    assert max(errors) <= 0.25, errors
    assert sum(e <= 0.10 for e in errors) >= 6, errors


def test_eager_host_bound_decode_moves_with_the_hosts_launch_time(capsys):
    base = ["sim", "model", "--arch", "h100", "--model", "llama-2-7b", "--phase", "decode",
            "--batch", "1", "--seq", "1024", "--quant", "bf16", "--json"]
    code, out, _ = run(capsys, [*base, "--runtime", "eager", "--host-launch-us", "20"])
    assert code == 0
    slow = json.loads(out)
    code, out, _ = run(capsys, [*base, "--runtime", "eager", "--host-launch-us", "40"])
    fast_host_twice = json.loads(out)
    assert slow["runtime"] == "eager" and slow["launches"] == fast_host_twice["launches"] > 1000
    assert fast_host_twice["host_s"] == pytest.approx(2 * slow["host_s"], rel=1e-6)
    assert fast_host_twice["seconds"] > slow["seconds"] > slow["host_s"] * 0.999
    code, out, _ = run(capsys, base)
    fused = json.loads(out)
    assert fused["runtime"] == "fused" and fused["host_s"] == 0 and fused["host_wait_s"] == 0
    assert fused["seconds"] < slow["seconds"]


@pytest.mark.parametrize(("argv", "flag"), [
    (["--arch", "systolic", "--runtime", "eager"], "--runtime"),
    (["--arch", "h100", "--runtime", "eager", "--quant", "w8a8"], "--runtime"),
    (["--arch", "h100", "--host-launch-us", "5"], "--host-launch-us"),
    (["--arch", "h100", "--runtime", "eager", "--host-launch-us", "-1"], "--host-launch-us"),
])
def test_eager_runtime_refusals_name_the_flag(capsys, argv, flag):
    code, out, err = run(capsys, ["sim", "model", "--model", "llama-2-7b", "--phase", "decode",
                                  "--batch", "1", "--seq", "64", *argv])
    assert code == 2 and not out
    assert err.startswith(f"tpe: error: {flag}: ") and err.count("\n") == 1


# -- quantized kernels (issue 12 item 4) ------------------------------------------------------


def test_the_quantized_kernels_are_measured_checked_and_split_before_fitting():
    from models.quant import KIVI_GROUP
    from sim.gpu.kernels import KV_GROUP
    from sim.gpu.shapes import quant_shapes, split_of

    shapes, measured = rows(DATA / "shapes_quant.csv"), rows(QUANT)
    assert [r["split"] for r in shapes] == [r["split"] for r in measured]
    assert [r["split"] for r in shapes] == [str(r["split"]) for r in quant_shapes()]
    assert all(split_of(r) == r["split"] for r in shapes)
    assert {r["gpu"] for r in measured} == {"NVIDIA H100 80GB HBM3"}
    assert {r["status"] for r in measured} == {"ok"}
    # every quantized kernel was checked against its dequantized reference (bf16-level error)
    quant = [r for r in measured if r["dtype"] != "bf16" or r["kv_dtype"] != "bf16"]
    assert all(0 < float(r["rel_err"]) < 1e-2 for r in quant)
    assert {(r["dtype"], r["kv_dtype"]) for r in measured} == {
        ("w4a16", ""), ("w4a16_triton", ""), ("bf16", "bf16"), ("bf16", "int8"),
        ("bf16", "int4")}
    assert {r["split"] for r in quant} == {"cal", "held"}
    assert all(float(r["mj"]) > 0 for r in measured)
    assert KV_GROUP == KIVI_GROUP


def test_the_kernel_model_reads_the_triton_kernels_own_tiles_and_split():
    from sim.gpu.kernels import W4A16_CONFIGS
    from sim.gpu_model import KIVI_BLOCK_N, W4A16_TRITON_TILES, kivi_split

    assert W4A16_TRITON_TILES == tuple((bm, bn) for bm, bn, *_ in W4A16_CONFIGS)
    for b, hkv, s in ((1, 8, 512), (1, 32, 32768), (64, 8, 8192), (4, 32, 96)):
        splits, chunk = kivi_split(b, hkv, s, 132)
        assert chunk % KIVI_BLOCK_N == 0 and (splits - 1) * chunk < s <= splits * chunk


def _held_out_stats(path: Path) -> dict:
    from sim.cli.gpu import _gpu_arch, _kernels, _predict, check_rows

    measured = rows(path)
    return check_rows(measured, _predict(_gpu_arch("h100"), _kernels(measured, "--measured")))


def test_quantized_kernels_held_out_per_category():
    """The held-out rows of the quantized kernels, per category (``tpe gpu check``'s own
    statistics): the int4 GEMMs and the KIVI decode kernel (timed replayed from CUDA graphs,
    the GPU's time) within the issue's 10 %, their energy within 15 %."""
    from sim.cli.gpu import TARGET_MAPE

    stats = _held_out_stats(QUANT_W4)
    for group in ("gemm/w4a16/aligned", "gemm/w4a16_triton/aligned"):
        s = stats[("held", "gemm", group)]
        assert s["n"] >= 10 and s["mape"] <= TARGET_MAPE and s["spearman"] >= 0.95
        assert s["mj_mape"] <= 0.15
    stats = _held_out_stats(QUANT_GRAPH)
    for cache in ("int8", "int4"):
        s = stats[("held", "attention", f"attn_decode/bf16/d128/kv_{cache}")]
        assert s["n"] >= 10 and s["mape"] <= TARGET_MAPE and s["spearman"] >= 0.95
        assert s["mj_mape"] <= 0.15


def test_the_int4_gemms_carry_no_launch_cost():
    """Replayed from CUDA graphs or launched from Python (the same device call), the int4 GEMMs
    take the same time, at one row too (unlike the KIVI kernels); their kernels column gives
    PyTorch's kernel one row tile of 16 rows (:data:`sim.gpu_model.W4A16_ROW_TILE`)."""
    import re

    from sim.gpu_model import W4A16_ROW_TILE

    graph, launched = rows(QUANT_W4), rows(DATA / "measured_h100_quant_w4_direct.csv")
    assert [r["split"] for r in graph] == [r["split"] for r in rows(QUANT)][:len(graph)]
    assert {r["dtype"] for r in graph} == {"w4a16", "w4a16_triton"}
    for a, b in zip(graph, launched, strict=True):
        assert (a["dtype"], a["M"], a["N"], a["K"]) == (b["dtype"], b["M"], b["N"], b["K"])
        assert float(a["us"]) == pytest.approx(float(b["us"]), rel=0.1)
    for r in graph:
        if r["dtype"] == "w4a16":
            grid = re.search(r"grid=\((\d+),(\d+),(\d+)\)", r["kernels"])
            assert grid and int(grid[3]) == -(-int(r["M"]) // W4A16_ROW_TILE)


def test_the_triton_w4a16_autotuner_never_picked_the_tiles_the_model_leaves_out():
    """The tiles the kernels column's grid and block allow, per recorded launch of the Triton
    W4A16 GEMM: never one of :data:`sim.gpu_model.W4A16_TRITON_UNPICKED`; the model's tile has
    the recorded launch's rows (BM) on most of them."""
    import re

    from sim.gpu.kernels import W4A16_CONFIGS
    from sim.gpu_model import W4A16_TRITON_UNPICKED, _w4a16_triton_tile

    cal = load_calibration("h100")
    launches = [r for r in rows(QUANT_W4) if r["dtype"] == "w4a16_triton"]
    agree = 0
    for r in launches:
        M, N = int(r["M"]), int(r["N"])
        found = re.search(r"grid=\((\d+),1,1\) block=\((\d+),1,1\)", r["kernels"])
        assert found
        ctas, threads = int(found[1]), int(found[2])
        tiles = {(bm, bn) for bm, bn, _, _, warps in W4A16_CONFIGS
                 if -(-M // bm) * -(-N // bn) == ctas and 32 * warps == threads}
        assert tiles and not tiles & set(W4A16_TRITON_UNPICKED)
        bm = _w4a16_triton_tile(cal, Kernel.from_row(r), cal.params)[1]
        agree += any(t[0] == bm for t in tiles)
    assert len(launches) == 60 and agree >= 55


def test_an_int4_gemm_spends_energy_on_every_row_tile_it_dequantizes():
    """A one-row int4 GEMM dequantizes the whole weight as one of 16 rows does; its energy per
    row is far above a 16-row one's (measured: 3.5 mJ at one row, 7.6 at 16, 4096x4096)."""
    from sim.gpu_model import dequant_weights, predict_kernel

    cal = load_calibration("h100")
    assert cal.energy is not None and set(cal.energy.pj_per_dequant) == {"w4a16",
                                                                         "w4a16_triton"}
    for dtype in ("w4a16", "w4a16_triton"):
        def k(m: int, dtype: str = dtype) -> Kernel:
            return Kernel(op="gemm", dtype=dtype, M=m, N=4096, K=4096, group=128)

        assert dequant_weights(cal, k(1)) == dequant_weights(cal, k(16)) == 4096 * 4096
        one, sixteen = (predict_kernel(cal, k(m), 700.0).mj for m in (1, 16))
        assert one > sixteen / 16 * 4
    assert dequant_weights(cal, Kernel(op="gemm", dtype="bf16", M=1, N=64, K=64)) == 0


def test_the_kivi_kernels_are_timed_as_the_gpu_runs_them():
    """The CUDA-graph file times the KIVI kernel without its Python launch: a one-sequence
    cache of at most 2048 tokens took 50 to 90 us launched from Python, 25 to 33 us replayed;
    the environment file says how it was timed, and a repeat agrees."""
    import json

    graph, launched = rows(QUANT_GRAPH), rows(QUANT)
    key = ("B", "H", "Hkv", "S", "D", "kv_dtype")
    before = {tuple(r[c] for c in key): float(r["us"]) for r in launched
              if r["op"] == "attn_decode"}
    assert [r["split"] for r in graph] == [r["split"] for r in launched
                                           if r["op"] == "attn_decode"]
    small = [r for r in graph if r["kv_dtype"] != "bf16" and r["B"] == "1"
             and int(r["S"]) <= 2048]
    assert len(small) == 8
    for r in small:
        assert float(r["us"]) < 0.7 * before[tuple(r[c] for c in key)] and float(r["us"]) < 35
    env = json.loads((DATA / "measured_h100_quant_graph_env.json").read_text())
    assert env["method"].startswith("one call captured in a CUDA graph")
    assert "--graph" in env["command"]
    repeat = {tuple(r[c] for c in key): float(r["us"])
              for r in rows(DATA / "measured_h100_quant_graph_repeat.csv")}
    assert all(abs(repeat[k] / us - 1) < 0.05 for k, us in
               ((tuple(r[c] for c in key), float(r["us"])) for r in small))


def test_the_decode_model_runs_the_grid_sdpa_launched():
    """The kernel model's SDPA decode grid (head groups, head-dim halves, splits) is the one
    cuDNN's decode kernel launched for every recorded decode row (its grid ``(halves x splits,
    groups, B)``; a second, combining kernel exactly when it split), and the decode dataset was
    split by the row hash before measuring."""
    from sim.gpu.shapes import decode_shapes, split_of
    from sim.gpu_model import sdpa_decode_grid

    assert [r["split"] for r in rows(DATA / "shapes_decode.csv")] == [
        str(r["split"]) for r in decode_shapes()]
    recorded = rows(DATA / "measured_h100_v2_decode_kernels.csv") + rows(DECODE)
    assert len(recorded) == 99 + 112 and all(split_of(r) == r["split"] for r in rows(DECODE))
    for r in recorded:
        B, H, Hkv, S, D = (int(r[c]) for c in ("B", "H", "Hkv", "S", "D"))
        kernels = r["kernels"].split(" ; ")
        assert "sdpa" in kernels[0]
        grid = tuple(int(x) for x in kernels[0].split(" grid=(")[1].split(")")[0].split(","))
        groups, halves, splits = sdpa_decode_grid(B, H, Hkv, S, D)
        assert grid == (halves * splits, groups, B), (B, H, Hkv, S, D, grid)
        assert len(kernels) == (2 if splits > 1 else 1)


def test_decode_held_out_per_head_dim():
    """Decode attention held out at every head dim within the issue's 10 % (head dim 256:
    the second dataset's three rows and the decode dataset's 28, multi-query among them);
    multi-query decode at head dim 256 is slower than at 128 by more than its bytes' share
    (two head groups, each loading K and V in both halves of the head dim, from L2); a few
    CTAs walking many key tiles at a small head dim take as long on the H200 as on the H100
    (the walk, not the bytes, sets their time: measured 249 and 257 us), where the same
    kernel at head dim 128 runs at the HBM's pace."""
    from sim.cli.gpu import TARGET_MAPE

    for path, dims in ((MEASURED, (32, 64, 96, 128, 256)), (DECODE, (64, 128, 256))):
        stats = _held_out_stats(path)
        for d in dims:
            s = stats[("held", "attention", f"attn_decode/bf16/d{d}")]
            assert s["n"] >= 3 and s["mape"] <= TARGET_MAPE, (path.name, d, s)
    cal = load_calibration("h100")

    def decode(D: int, Hkv: int) -> float:
        return predict_parts_us(cal, Kernel(op="attn_decode", dtype="bf16", B=16, H=32,
                                            Hkv=Hkv, S=32768, D=D))[1]

    assert decode(256, 1) > 2.3 * decode(128, 1)
    assert decode(256, 8) == pytest.approx(2 * decode(128, 8), rel=0.1)
    h200 = arch_calibration(load_arch("h200"))

    def ratio(D: int) -> float:  # H100 over H200, 128 CTAs of 256 key tiles each
        k = Kernel(op="attn_decode", dtype="bf16", B=16, H=32, Hkv=8, S=32768, D=D)
        return predict_us(cal, k) / predict_us(h200, k)

    assert ratio(32) == pytest.approx(1.0, abs=0.02)
    assert ratio(128) > 1.3


def test_the_quantized_kernels_mechanisms():
    cal = load_calibration("h100")

    def us(dtype: str, M: int, N: int = 4096, K: int = 4096, **kw) -> float:
        return predict_us(cal, Kernel(op="gemm", dtype=dtype, M=M, N=N, K=K, **kw))

    # PyTorch's int4 kernel: a GEMV streams a quarter of bf16's bytes; its time then grows
    # with every row (no tile of rows to fill)
    assert us("w4a16", 1, group=128) < 0.7 * us("bf16", 1)
    assert us("w4a16", 1024, group=128) == pytest.approx(2 * us("w4a16", 512, group=128),
                                                         rel=0.05)
    # the Triton kernel: flat while one tile of rows covers M, far faster than PyTorch's
    # at prefill sizes
    assert us("w4a16_triton", 16, group=128) == pytest.approx(us("w4a16_triton", 1,
                                                                 group=128), rel=0.01)
    assert us("w4a16_triton", 4096, group=128) < 0.2 * us("w4a16", 4096, group=128)

    def decode(kv: str, B: int = 16, S: int = 8192) -> float:
        return predict_us(cal, Kernel(op="attn_decode", dtype="bf16", B=B, H=32, Hkv=8, S=S,
                                      D=128, kv_dtype=kv))

    # the KIVI kernel walks its chunk of tokens: time grows with the cache's length
    assert decode("int8", S=32768) > 3 * decode("int8", S=8192)


def test_the_kivi_programs_run_two_to_an_sm_in_rounds():
    """The KIVI decode kernel's programs share an SM two at a time, handed out in launch order:
    a pair walks its tokens at twice one program's share each, a program alone at the fitted
    lone multiple (between one share and two); so 384 programs on 132 SMs take a round of
    pairs and then a round alone, and 512 two rounds of pairs."""
    from sim.gpu_model import KIVI_RESIDENT_PER_SM, kivi_rounds, kivi_split

    lone = load_calibration("h100").params["kivi_lone_programs"]
    assert KIVI_RESIDENT_PER_SM == 2 and 1.0 < lone <= 2.0
    # B 16 x Hkv 8, 32768 tokens: 3 splits of 11008 (the last 10752): 384 programs, so every
    # SM's first two run as a pair, then 120 of the last split alone
    assert kivi_split(16, 8, 32768, 132) == (3, 11008)
    assert kivi_rounds(16, 8, 32768, 132, lone) == pytest.approx(2 * 11008 + lone * 10752)
    # 512 programs of a whole cache each: two rounds of pairs (3.9 per SM, not 4 in turn)
    assert kivi_split(16, 32, 32768, 132) == (1, 32768)
    assert kivi_rounds(16, 32, 32768, 132, lone) == pytest.approx(2 * 2 * 32768)
    # B 4 x Hkv 8: 9 splits of 3840, the last 2048: the round of pairs holds 8 SMs of a full
    # chunk and a last one, the rest of the last chunks run alone after it
    assert kivi_split(4, 8, 32768, 132) == (9, 3840)
    assert kivi_rounds(4, 8, 32768, 132, lone) == pytest.approx(2 * 3840 + lone * 2048)
    # a few programs: each alone on its SM
    assert kivi_rounds(1, 8, 512, 132, lone) == pytest.approx(lone * 256)


def test_the_h200_writes_the_dirty_l2_back_at_its_own_bandwidth():
    """The decode kernels' ramp (the dirty L2 lines the timing's flush leaves, written back to
    HBM) is a time at the HBM's bandwidth: the h200 preset's is the H100's over the datasheet
    bandwidth ratio; the fallback kernels' path keeps its bytes per second (their fractions of
    the streaming read over the same ratio: FALLBACK_PATH_EFFS), the other fitted constants
    the H100's."""
    from sim.gpu_model import FALLBACK_PATH_EFFS

    h100, h200 = load_calibration("h100"), arch_calibration(load_arch("h200"))
    ratio = h200.read_gb_per_s / h100.read_gb_per_s
    assert ratio == pytest.approx(4800 / 3350)
    assert h200.params["decode_ramp_us"] == pytest.approx(h100.params["decode_ramp_us"] / ratio)
    for name in FALLBACK_PATH_EFFS:
        assert h200.params[name] * h200.read_gb_per_s == pytest.approx(
            h100.params[name] * h100.read_gb_per_s)
    scaled = {"decode_ramp_us", *FALLBACK_PATH_EFFS}
    assert {k: v for k, v in h200.params.items() if k not in scaled} == {
        k: v for k, v in h100.params.items() if k not in scaled}


def test_fallback_path_is_on_the_chip():
    """FALLBACK_PATH_EFFS' record: the align-1/align-2 launches recorded on both cards
    (measured_h100_misaligned.csv, measured_h200_misaligned.csv and their _graph runs) that
    the H200 would run at least 10% faster were their bytes the HBM's (those fractions of the
    streaming read scaled by the datasheets' 4.8 / 3.35) are the 20 its comment names, their
    profiled kernels (warm L2) as long on the H200 as on the H100 (median 1.002; the HBM's
    ratio is 0.70), their timed ratio a median 0.934; and on the H200's timings of them the
    preset errs a mean 3.7% with the path kept, 8.1% with it scaled."""
    import dataclasses

    from sim.gpu_model import FALLBACK_PATH_EFFS, gemm_family

    h100, h200 = load_calibration("h100"), arch_calibration(load_arch("h200"))
    scale = h200.read_gb_per_s / h100.read_gb_per_s
    hbm = dataclasses.replace(h200, params=h200.params | {
        k: h100.params[k] for k in FALLBACK_PATH_EFFS})  # the fractions the HBM's

    def gemms(path: Path) -> dict[tuple[str, str, str, str], dict[str, str]]:
        with open(path, newline="") as f:
            return {(r["dtype"], r["M"], r["N"], r["K"]): r for r in csv.DictReader(f)
                    if r["op"] == "gemm" and r.get("status", "ok") == "ok" and r["us"]}

    def profiled(r: dict[str, str]) -> float:
        return sum(float(x) for x in re.findall(r" us=([\d.]+)", r["kernels"]))

    kernel, timed, err_kept, err_hbm = [], [], [], []
    for run_ in ("misaligned", "misaligned_graph"):
        a = gemms(DATA / f"measured_h100_{run_}.csv")
        b = gemms(DATA / f"measured_h200_{run_}.csv")
        for key in sorted(a.keys() & b.keys()):
            k = Kernel.from_row(a[key])
            if gemm_family(k) not in ("align1", "align2"):
                continue
            if predict_us(hbm, k) > 0.9 * predict_us(h100, k):
                continue
            kernel.append(profiled(b[key]) / profiled(a[key]))
            timed.append(float(b[key]["us"]) / float(a[key]["us"]))
            err_kept.append(abs(predict_us(h200, k) / float(b[key]["us"]) - 1))
            err_hbm.append(abs(predict_us(hbm, k) / float(b[key]["us"]) - 1))
    assert len(kernel) == 20
    assert round(statistics.median(kernel), 3) == 1.002
    assert round(statistics.median(timed), 3) == 0.934
    assert round(1 / scale, 2) == 0.70 and round(4800 / 3350, 2) == round(scale, 2)
    assert (round(statistics.mean(err_kept), 3), round(statistics.mean(err_hbm), 3)) == (
        0.037, 0.081)


def test_aligned_gemms_pay_the_l2_write_back():
    """The aligned bf16/fp16 kernels' memory time (sim/gpu_model.py module doc): over their
    few-row GEMMs (at most 16 rows, K and N multiples of 8) streaming 80 to 500 MB of W, a
    line through the times crosses at 15.2 and 15.4 us and rises at 2.91 and 2.89 TB/s on the
    H100 (measured_h100.csv, measured_h100_v2.csv; the streaming read: 2.94), at 13.5 and
    14.4 us and 4.16 and 4.19 TB/s on the H200 (measured_h200.csv, _v2: the datasheets'
    4.8 / 3.35 = 1.43 times the H100's slope, not the crossing); with the bytes at the read
    and the L2's write-back the model errs a mean 3.7%, 3.0%, 2.0% and 2.4% on them."""
    import numpy as np

    from sim.gpu_model import after_light_load

    want = {"measured_h100.csv": (15.2, 2.91, 0.037), "measured_h100_v2.csv": (15.4, 2.89, 0.030),
            "measured_h200.csv": (13.5, 4.16, 0.020), "measured_h200_v2.csv": (14.4, 4.19, 0.024)}
    fits = {}
    for name, (cross, tb_s, mape) in want.items():
        cal = arch_calibration(load_arch(name.split("_")[1].removesuffix(".csv")))
        if name in ("measured_h100.csv", "measured_h200.csv"):  # timed after light load
            cal = after_light_load(cal)
        w_mb, us, err = [], [], []
        with open(DATA / name, newline="") as f:
            for r in csv.DictReader(f):
                if r["op"] != "gemm" or r["dtype"] not in ("bf16", "fp16") or not r["us"]:
                    continue
                M, N, K = int(r["M"]), int(r["N"]), int(r["K"])
                if M > 16 or N % 8 or K % 8 or not 80e6 <= 2 * N * K <= 500e6:
                    continue
                w_mb.append(2 * N * K / 1e6)
                us.append(float(r["us"]))
                err.append(abs(predict_us(cal, Kernel.from_row(r)) / float(r["us"]) - 1))
        slope, at0 = np.polyfit(w_mb, us, 1)
        assert len(us) == 57, name
        assert (round(float(at0), 1), round(1 / float(slope), 2)) == (cross, tb_s), name
        assert round(statistics.mean(err), 3) == mape, name
        fits[name] = (float(at0), 1 / float(slope))
    # the slope follows the HBM (within 2% of the datasheets' ratio), the crossing does not
    for a, b in (("measured_h100.csv", "measured_h200.csv"),
                 ("measured_h100_v2.csv", "measured_h200_v2.csv")):
        assert abs(fits[b][1] / fits[a][1] / (4800 / 3350) - 1) < 0.02
        assert fits[b][0] / fits[a][0] > 0.85 > 3350 / 4800


def test_sim_model_names_the_kernel_of_every_gpu_operator(capsys):
    for quant, phase, want in (
            ("bf16", "decode", {"cuBLAS bf16", "SDPA decode bf16"}),
            ("w4a16", "decode", {"aten._weight_int4pack_mm"}),
            ("w4a16", "prefill", {"w4a16_triton"}),
            ("w4a16+kv4", "decode", {"kivi_decode_triton (int4 cache)"}),
            ("w4a16+kv8", "decode", {"kivi_decode_triton (int8 cache)"})):
        code, out, err = run(capsys, ["sim", "model", "--arch", "h100", "--model",
                                      "llama-2-7b", "--phase", phase, "--batch", "1", "--seq",
                                      "1024", "--quant", quant, "--json"])
        assert code == 0, err
        kernels = {m["gpu_kernel"] for m in json.loads(out)["mapping"].values()}
        assert want <= kernels, (quant, phase, kernels)
        code, out, err = run(capsys, ["sim", "model", "--arch", "h100", "--model",
                                      "llama-2-7b", "--phase", phase, "--batch", "1", "--seq",
                                      "1024", "--quant", quant])
        assert code == 0 and re.search(r"\bbound\s+kernel$", out, re.M)
        assert all(k in out for k in want)


@pytest.mark.parametrize(("line", "pattern"), [
    ("gemm,w4a16,1,4096,4000,,,,,,,", r"group: 128 does not divide K=4000$"),
    ("gemm,w4a16,1,4096,4096,,,,,,100,", r"group: one of 32, 64, 128, 256 \(got '100'\)$"),
    ("gemm,w4a16_triton,1,4090,4096,,,,,,,", r"N: w4a16_triton needs a multiple of 8"),
    ("gemm,bf16,1,4096,4096,,,,,,128,", r"group: for w4a16 and w4a16_triton GEMMs only"),
    ("gemm,bf16,1,4096,4096,,,,,,,int8", r"kv_dtype: one of bf16, int8, int4, for "
                                         r"attn_decode rows only \(got 'int8' on gemm\)$"),
    ("attn_decode,bf16,,,,1,32,8,1000,128,,int4", r"kv_dtype: a int4 cache needs dtype bf16, "
                                                  r"D one of 32, 64, 128, 256 and S a multiple"),
])
def test_bad_quantized_cells_are_one_line_naming_the_column(capsys, tmp_path, line, pattern):
    from sim.gpu.measure import MeasureError, read_shapes

    bad = tmp_path / "bad.csv"
    bad.write_text(f"op,dtype,M,N,K,B,H,Hkv,S,D,group,kv_dtype\n{line}\n")
    code, out, err = run(capsys, ["gpu", "predict", "--gpu", "h100", "--in", str(bad),
                                  "--out", str(tmp_path / "p.csv")])
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert re.match(r"^tpe: error: --in: line 2: " + pattern, err.strip()), err
    with pytest.raises(MeasureError, match=r"^line 2: " + pattern):
        read_shapes(bad)


def test_the_misaligned_gemms_are_measured_with_their_kernels_and_split_before_fitting():
    from sim.gpu.shapes import misaligned_shapes, split_of

    shapes, measured = rows(DATA / "shapes_misaligned.csv"), rows(MISALIGNED)
    assert [r["split"] for r in shapes] == [str(r["split"]) for r in misaligned_shapes()]
    assert [(r["dtype"], r["M"], r["N"], r["K"], r["split"]) for r in shapes] == [
        (r["dtype"], r["M"], r["N"], r["K"], r["split"]) for r in measured]
    assert all(split_of(r) == r["split"] for r in shapes)
    assert {r["split"] for r in measured} == {"cal", "held"}
    assert {r["gpu"] for r in measured} == {"NVIDIA H100 80GB HBM3"}
    assert {r["status"] for r in measured} == {"ok"}
    assert all(float(r["mj"]) > 0 for r in measured)
    # in every dtype, random shapes with none of M, N, K a multiple of 8, up to 16384
    odd = [r for r in measured if all(int(r[d]) % 8 for d in "MNK")]
    assert {r["dtype"] for r in odd} == {"bf16", "fp16", "fp8", "int8"} and len(odd) >= 180
    assert all(1 <= int(r[d]) <= 16384 for r in measured for d in "MNK")
    # no kernel of the second dataset again
    v2 = {(r["dtype"], r["M"], r["N"], r["K"]) for r in rows() if r["op"] == "gemm"}
    assert not v2 & {(r["dtype"], r["M"], r["N"], r["K"]) for r in measured}
    for path in (MISALIGNED, GEMM_KERNELS):
        assert all(r["kernels"] and "profiler error" not in r["kernels"] for r in rows(path))


def test_vector_width_and_kernel_family_on_hand_checked_shapes():
    from sim.gpu_model import gemm_family, vector_elems

    # the largest power of two dividing N and K, at most 16 bytes
    assert vector_elems("bf16", 4096, 4096) == 8 and vector_elems("bf16", 4096, 4104) == 8
    assert vector_elems("bf16", 4100, 4096) == 4 and vector_elems("fp16", 4096, 4098) == 2
    assert vector_elems("bf16", 4097, 4096) == 1 and vector_elems("bf16", 4098, 4101) == 1
    assert vector_elems("int8", 4104, 4112) == 8 and vector_elems("int8", 4112, 4112) == 16
    assert vector_elems("fp8", 16, 48) == 16

    def family(dtype: str, M: int, N: int, K: int) -> str:
        return gemm_family(Kernel(op="gemm", dtype=dtype, M=M, N=N, K=K))

    assert family("bf16", 1000, 4096, 4096) == "aligned"
    assert family("bf16", 1000, 4100, 4098) == "align2"
    assert family("fp16", 1000, 4096, 4097) == "align1"
    assert family("bf16", 1, 4095, 4096) == "gemv" and family("bf16", 77, 1, 9) == "gemv"
    # fp8 runs padded to 16: its aligned kernels; int8 padded to 8 (4097 -> 4104, 8 off 16)
    assert family("fp8", 1000, 4097, 4097) == "aligned"
    assert family("int8", 1000, 4097, 4097) == "int8_align8"
    assert family("int8", 1000, 4105, 4105) == "aligned"  # padded to 4112
    assert family("w4a16", 16, 4096, 4096) == "aligned"


def test_the_kernel_families_are_the_kernels_cublas_ran():
    """Every GEMM measured with its kernels: the family the model gives its alignment class is
    the family of its GEMM kernel (the longest that is not a split-K reduction; profiler
    names)."""
    from sim.gpu_model import gemm_family

    expect = {
        "aligned": ("nvjet_sm90", "sm90_xmma", "_align16"),
        "align2": ("_align2",),
        "align1": ("_align1", "gemmSN_TN"),
        "gemv": ("gemv", "dot_kernel", "reduce_1Block", "gemmSN_TN", "_align1", "_align2"),
        "int8_align8": ("_align4", "sm90_xmma"),
    }
    seen = set()
    for r in rows(MISALIGNED) + rows(GEMM_KERNELS) + rows(TILES):
        parts = [p.rsplit(" us=", 1) for p in r["kernels"].split(" ; ")]
        name = max(parts, key=lambda x: ("reduce" not in x[0], float(x[1])))[0]
        family = gemm_family(Kernel.from_row(r))
        seen.add(family)
        assert any(tag in name for tag in expect[family]), (family, r["dtype"], r["M"], r["N"],
                                                          r["K"], name[:90])
    assert seen == set(expect)


def test_the_misaligned_kernels_mechanisms():
    cal = load_calibration("h100")

    def us(dtype: str, N: int, K: int, M: int = 6001) -> float:
        return predict_us(cal, Kernel(op="gemm", dtype=dtype, M=M, N=N, K=K))

    # a vector of 2 or 4 elements runs CUTLASS's align-2 kernels, about twice the align-1 rate
    # (measured at 6001 x 4096 x 4098: 261 TFLOP/s; 4097: 128)
    assert us("bf16", 4096, 4097) > 1.7 * us("bf16", 4096, 4098)
    assert us("bf16", 4096, 4100) == pytest.approx(us("bf16", 4096, 4098), rel=0.01)
    # both far below the aligned kernels
    assert us("bf16", 4096, 4098) > 2 * us("bf16", 4096, 4096)
    # int8 padded to 8 but not 16 runs CUTLASS's align-4 kernels, padded to 16 its aligned ones
    assert us("int8", 4105, 4097) > 1.6 * us("int8", 4105, 4105)
    # no fitted rate above the aligned one
    p = cal.params
    assert 0 < p["align1_rate_eff"] < p["align2_rate_eff"] < 1
    # the Hopper int8 kernel's rate at most the datasheet's dense int8 rate (1,979 TOPS at the
    # boost clock) over the measured aligned one; the align-4 kernels' at most the aligned one
    assert 0 < p["int8_n8_eff"] <= 2.64 and 0 < p["int8_align8_eff"] <= 1
    # a CTA's step along K bounded by its tile loads: a 64x64 align-1 CTA (2-byte loads) at
    # the fitted load bandwidth takes about the 16 ns per element of K the recorded single-wave
    # kernels took (measured_h100_v2_gemm_kernels.csv: 14.8 to 19.4 ns, tiles from their
    # names), below the L2 bandwidth bound the decode model uses
    step_ns = (64 + 64) * 2 / (p["align1_load_gb_per_s"] / cal.sm_count)
    assert 12 < step_ns < 20
    for fam in ("align1", "align2", "int8_align8"):
        assert p[f"{fam}_load_gb_per_s"] < p["decode_l2_gb_per_s"]
    # small tiles run below the family's rate: at 64 rows, a K twice as long costs more than
    # the product's rate alone would add
    assert us("bf16", 4097, 8191, M=64) > 1.6 * us("bf16", 4097, 4095, M=64)


def test_cublaslt_leaves_its_hopper_int8_kernel_past_two_waves_of_ctas():
    """INT8_N8_MAX_WAVES: of every recorded launch of an int8 GEMM with K a multiple of 16 and
    N of 8 but not 16 (padded), the Hopper kernel's ran at most two waves of its CTAs on the
    132 SMs and CUTLASS's align-4 ones more, at every K of the int8 N8 probe (whose rows span
    both sides), and int8_n8_hopper says which for each."""
    from sim.gpu_model import INT8_N8_MAX_WAVES, int8_n8_ctas, int8_n8_hopper, padded_shape

    hopper_ctas, cutlass_ctas = [], []
    probe = DATA / "measured_h200_int8n8.csv"
    files = (MISALIGNED, GEMM_KERNELS, TILES, RANDOM, probe)
    by_k: dict[int, set[bool]] = {}
    for path in files:
        for r in rows(path):
            if r["dtype"] != "int8" or not r.get("kernels"):
                continue
            M, N, K = padded_shape("int8", int(r["M"]), int(r["N"]), int(r["K"]))
            if K % 16 or N % 16 == 0:
                continue
            hopper = "sm90_xmma" in r["kernels"]
            assert hopper or "_tn_align4" in r["kernels"], r["kernels"][:80]
            (hopper_ctas if hopper else cutlass_ctas).append(int8_n8_ctas(M, N))
            assert hopper == int8_n8_hopper(132, M, N, K), (path.name, M, N, K)
            if path == probe:
                by_k.setdefault(K, set()).add(hopper)
    assert max(hopper_ctas) < INT8_N8_MAX_WAVES * 132 <= min(cutlass_ctas)
    assert len(by_k) >= 4 and all(v == {True, False} for v in by_k.values())


def test_the_hopper_int8_kernel_pays_its_own_energy_per_operation():
    """energy_class: cuBLASLt's Hopper int8 kernel pays fp8's energy per operation (both
    Hopper warpgroup MMAs), not CUTLASS's align-4 kernels', and the tile dataset's largest
    launch of it (1536x4104x4096, not in the fit) comes out within 10% of its measured energy
    and is not stretched under the power cap (its clock stayed within 5% of the boost
    clock)."""
    from sim.gpu_model import energy_class, predict_kernel

    cal = load_calibration("h100")
    assert cal.energy is not None
    assert cal.energy.pj_per_op["fp8"] < 0.6 * cal.energy.pj_per_op["int8_align8"]
    r = next(r for r in rows(TILES) if (r["dtype"], r["M"], r["N"], r["K"])
             == ("int8", "1536", "4104", "4096"))
    k = Kernel.from_row(r)
    assert energy_class(k, cal.sm_count) == "fp8" and "sm90_xmma" in r["kernels"]
    env = json.loads(TILES.with_name(TILES.stem + "_env.json").read_text())["smi_before"]
    est = predict_kernel(cal, k, float(env["power.limit"]))
    assert not est.capped and float(r["sm_mhz"]) > 0.95 * float(env["clocks.max.sm"])
    assert abs(est.mj / float(r["mj"]) - 1) < 0.1


def test_the_fallback_tiles_are_the_recorded_ones():
    """The CUTLASS fallback kernels the calibration rows recorded (the tile in the kernel's
    name) run tiles of FALLBACK_TILES of their family, in either orientation, but the wmma
    16x16 ones (not modelled: the 32x32 is the smallest tile), and the tiles dataset's int8 ones
    (int8's 128x128 align-4 tile among them); int8 with K a multiple of 16 (padded) ran
    cuBLASLt's Hopper kernel where int8_n8_hopper says, CUTLASS's elsewhere."""
    from sim.gpu_model import FALLBACK_TILES, gemm_family, int8_n8_hopper, padded_shape

    seen = set()
    for r in rows(MISALIGNED) + rows(GEMM_KERNELS):
        k = Kernel.from_row(r)
        family = gemm_family(k)
        name = r["kernels"].split(" ; ")[0]
        tile = re.search(r"gemm_(?:bf16|f16|s8)_(\d+)x(\d+)_", name)
        if r["split"] == "cal" and family in FALLBACK_TILES and tile and "cutlass" in name:
            bm, bn = int(tile.group(1)), int(tile.group(2))
            if (bm, bn) != (16, 16):
                assert {(bm, bn), (bn, bm)} & set(FALLBACK_TILES[family]), (family, name)
                seen.add((family, min(bm, bn), max(bm, bn)))
        if family == "int8_align8":
            hopper = "sm90_xmma" in name
            assert hopper == int8_n8_hopper(132, *padded_shape("int8", k.M, k.N, k.K)), name
    for r in rows(TILES):  # (its align-4 launches at 256 and 320 rows ran a 128x128 tile)
        k = Kernel.from_row(r)
        if gemm_family(k) == "int8_align8":
            name = r["kernels"].split(" ; ")[0]
            hopper = "sm90_xmma" in name
            assert hopper == int8_n8_hopper(132, *padded_shape("int8", k.M, k.N, k.K)), name
            tile = re.search(r"gemm_s8_(\d+)x(\d+)_", name)
            if r["split"] == "cal" and tile:
                bm, bn = int(tile.group(1)), int(tile.group(2))
                assert {(bm, bn), (bn, bm)} & set(FALLBACK_TILES["int8_align8"]), name
                seen.add(("int8_align8", min(bm, bn), max(bm, bn)))
    assert seen == {(f, min(t), max(t)) for f, tiles in FALLBACK_TILES.items() for t in tiles}


def test_the_fallback_dispatch_is_the_recorded_one():
    """The dispatch rules of the fallback kernels hold for every recorded launch (the kernels
    columns of every measured run that has them, KERNEL_RUNS): no bf16 align-1 GEMM ran a
    wmma kernel (WMMA_TILE); a wmma kernel split only from WMMA_SPLIT_K on, and with fewer
    than 16 rows (which ran no other tensor-core kernel where a wmma one exists, but at
    K = 1) only from WMMA_SPLIT_K_FEW_ROWS on, the geometric mean of the recorded neighbours,
    but for one launch; where 128x128 tiles
    leave SMs idle and K is below FALLBACK_SPLIT_K, an align-1 kernel without a split-K
    reduction ran no tile larger than UNDERFILLED_TILE;
    every bf16 GEMM of more than one row and column the model gives cuBLAS's CUDA-core kernels
    (family gemv) ran gemmSN, and so did every bf16 align-1 one of 2 to 15 rows from
    GEMMSN_MIN_K on with K below twice N."""
    from sim.gpu_model import (
        FALLBACK_SPLIT_K,
        GEMMSN_MIN_K,
        UNDERFILLED_TILE,
        WMMA_SPLIT_K,
        WMMA_SPLIT_K_FEW_ROWS,
        gemm_family,
        vector_elems,
    )

    counts = {"wmma_split": 0, "underfilled": 0, "gemmsn": 0}
    few_rows: dict[bool, set[tuple[str, int, int, int]]] = {False: set(), True: set()}
    for r in launched_gemms():
        k = Kernel.from_row(r)
        family = gemm_family(k)
        main = r["kernels"].split(" ; ")[0]
        reduced = "splitKreduce" in r["kernels"]
        if family == "align1" and k.dtype == "bf16":
            assert "wmma" not in main, main
        if k.dtype == "fp16" or family == "align2":
            if 1 < k.M < 16 and k.K > 1 and family in ("align1", "align2"):  # wmma alone
                assert "wmma" in main or "gemmSN_TN" in main, (k, main)
        if "wmma" in main and reduced:
            assert k.K >= WMMA_SPLIT_K or k.M < 16, (k, main)  # fewer rows: few_rows
            counts["wmma_split"] += 1
        if "wmma" in main and k.M < 16 and k.K >= FALLBACK_SPLIT_K:
            few_rows[reduced].add((k.dtype, k.M, k.N, k.K))
        underfilled = -(-k.M // 128) * -(-k.N // 128) < 132
        tile = re.search(r"s1688gemm_(?:bf16|f16)_(\d+)x(\d+)_", main)
        if (family == "align1" and underfilled and k.K < FALLBACK_SPLIT_K and not reduced
                and tile):
            assert int(tile.group(1)) * int(tile.group(2)) <= math.prod(UNDERFILLED_TILE), main
            counts["underfilled"] += 1
        if k.dtype == "bf16" and k.M > 1 and k.N > 1 and family == "gemv":
            assert ("gemmSN_TN" in main) != ((k.M, k.N, k.K) in GEMMSN_MISSES), (k, main)
            counts["gemmsn"] += 1
        if (k.dtype == "bf16" and family in ("align1", "gemv") and 1 < k.M < 6
                and GEMMSN_MIN_K <= k.K < 2 * k.N and vector_elems("bf16", k.N, k.K) == 1):
            # up to five rows (GEMMSN_REACH: from six on, test_gemmsn_reach_is_the_recorded_one)
            assert ("gemmSN_TN" in main) != ((k.M, k.N, k.K) in GEMMSN_FIVE_ROW_TILES), (k, main)
    assert counts["wmma_split"] >= 10 and counts["underfilled"] >= 15 and counts["gemmsn"] >= 10
    # fewer than 16 rows: whole up to K = 2259, split from 2404 on, but for one launch
    whole_k = max(kk for *_, kk in few_rows[False])
    split_k = min(kk for *_, kk in few_rows[True] if kk > whole_k)
    assert WMMA_SPLIT_K_FEW_ROWS == round(math.sqrt(whole_k * split_k))
    assert [s for s in few_rows[True] if s[3] < WMMA_SPLIT_K_FEW_ROWS] == [("bf16", 14, 512, 498)]
    assert len(few_rows[False]) >= 5 and len(few_rows[True]) >= 4


#: The recorded bf16 launches of up to five rows with K from GEMMSN_MIN_K to below twice N that
#: ran the split-K tiles, not gemmSN (sim.gpu_model.GEMMSN_REACH: the rule of fewer rows).
GEMMSN_FIVE_ROW_TILES = {(5, 1201, 1801), (5, 1201, 2281)}
#: The recorded bf16 launches of 6 to 15 rows that fall on the wrong side of GEMMSN_REACH's
#: bounds, as its doc names them (gemmSN where the bound says the tiles, and the reverse).
GEMMSN_REACH_MISSES = {(8, 12001, 22801), (10, 4001, 2001), (14, 301, 571), (15, 301, 571)}
#: Every recorded launch the model gives gemmSN (family gemv) that ran the split-K tiles.
GEMMSN_MISSES = GEMMSN_FIVE_ROW_TILES
#: The recorded bf16 launches of 2 to 15 rows at vector 1 with K at least twice N that fall on
#: the wrong side of GEMMSN_BAND_K (gemmSN outside the band: the long-K probe's 3x2645x13831,
#: where 2x151x9787, 3x175x12579 and 5x223x10793 ran the split-K tiles).
GEMMSN_BAND_MISSES = {(3, 2645, 13831)}


def test_gemmsn_reach_is_the_recorded_one():
    """From six rows on, cuBLAS ran gemmSN for a bf16 GEMM at vector 1 with K from GEMMSN_MIN_K
    to below twice N only up to a K of about c * N**GEMMSN_REACH_POWER (and from ten rows, up to
    a K bound as well): every band's c, and the K bound, is the geometric mean of the
    neighbouring recorded launches at the split with the fewest launches on the wrong side,
    the power the middle of those (in steps of 0.01) whose bands leave the fewest on the wrong
    side, and those are the ones GEMMSN_REACH_MISSES names."""
    from sim.gpu_model import (
        GEMMSN_MIN_K,
        GEMMSN_REACH,
        GEMMSN_REACH_POWER,
        gemm_family,
        vector_elems,
    )

    launches = set()
    for r in launched_gemms():
        k = Kernel.from_row(r)
        if (k.dtype == "bf16" and GEMMSN_REACH[0][0] <= k.M <= GEMMSN_REACH[-1][1]
                and k.N >= 16 and GEMMSN_MIN_K <= k.K < 2 * k.N
                and vector_elems("bf16", k.N, k.K) == 1):
            launches.add((k.M, k.N, k.K, "gemmSN_TN" in r["kernels"].split(" ; ")[0]))

    def fit(band: list[tuple[int, int, int, bool]], power: float, capped: bool
            ) -> tuple[float, float, set[tuple[int, int, int]]]:
        xs = sorted({kk / n ** power for _, n, kk, _ in band})
        ks = sorted({kk for _, _, kk, _ in band}) if capped else [math.inf] * 2
        best = None
        for (a, b), (ka, kb) in itertools.product(itertools.pairwise(xs), itertools.pairwise(ks)):
            cut, k_cut = math.sqrt(a * b), math.sqrt(ka * kb)
            wrong = {(m, n, kk) for m, n, kk, sn in band
                     if (kk <= min(cut * n ** power, k_cut)) != sn}
            if best is None or len(wrong) < len(best[2]):
                best = (cut, k_cut, wrong)
        assert best is not None
        return best

    bands = [[x for x in launches if first <= x[0] <= last] for first, last, _, _ in GEMMSN_REACH]
    assert all(len(band) >= 15 for band in bands)
    wrong_at = {}
    for i in range(100, 201):  # powers 1 to 2
        power = i / 100
        wrong_at[power] = sum(len(fit(band, power, spec[3] is not None)[2])
                              for band, spec in zip(bands, GEMMSN_REACH, strict=True))
    fewest = [pw for pw, n in wrong_at.items() if n == min(wrong_at.values())]
    assert fewest == [pw / 100 for pw in range(round(fewest[0] * 100), round(fewest[-1] * 100) + 1)]
    assert GEMMSN_REACH_POWER == round((fewest[0] + fewest[-1]) / 2, 2)
    misses = set()
    for band, (first, last, c, max_k) in zip(bands, GEMMSN_REACH, strict=True):
        cut, k_cut, wrong = fit(band, GEMMSN_REACH_POWER, max_k is not None)
        assert c == float(f"{cut:.3g}"), (first, last, cut)
        if max_k is not None:
            assert max_k == round(k_cut), (first, last, k_cut)
        misses |= wrong
        for m, n, kk, sn in band:  # the model's family follows the bound
            assert (gemm_family(Kernel(op="gemm", dtype="bf16", M=m, N=n, K=kk)) == "gemv") == (
                sn != ((m, n, kk) in wrong)), (m, n, kk)
    assert misses == GEMMSN_REACH_MISSES


def test_gemmsn_band_and_grid_are_the_recorded_ones():
    """cuBLAS's gemmSN for bf16 of 2 to 15 rows at vector 1 with K at least twice N: every
    recorded launch with K inside GEMMSN_BAND_K ran it, every one outside the split-K tiles
    but those GEMMSN_BAND_MISSES names, and the band's ends are the geometric means of the
    recorded neighbours; every recorded gemmSN launch ran ceil(N / GEMMSN_CTA_COLS) CTAs along
    its grid's x."""
    from sim.gpu_model import GEMMSN_BAND_K, GEMMSN_CTA_COLS, gemm_family, vector_elems

    inside, below, above, grids = [], [], [], 0
    misses: set[tuple[int, int, int]] = set()
    for r in launched_gemms():
        k = Kernel.from_row(r)
        main = r["kernels"].split(" ; ")[0]
        if "gemmSN_TN" in main:
            gx = int(re.search(r"grid=\((\d+),", main).group(1))
            assert gx == -(-k.N // GEMMSN_CTA_COLS), (k, main[-60:])
            grids += 1
        if not (k.dtype == "bf16" and 1 < k.M < 16 and k.N > 1 and k.K >= 2 * k.N
                and vector_elems("bf16", k.N, k.K) == 1):
            continue
        sn = "gemmSN_TN" in main
        if (k.M, k.N, k.K) in GEMMSN_BAND_MISSES:
            assert sn and gemm_family(k) != "gemv", (k, main[:80])
            misses.add((k.M, k.N, k.K))
            continue
        assert sn == (gemm_family(k) == "gemv"), (k, main[:80])
        if GEMMSN_BAND_K[0] <= k.K <= GEMMSN_BAND_K[1]:
            assert sn, (k, main[:80])
            inside.append(k.K)
        else:
            assert not sn and "s1688gemm" in main, (k, main[:80])
            (below if k.K < GEMMSN_BAND_K[0] else above).append(k.K)
    assert len(inside) >= 3 and len(below) >= 3 and len(above) >= 5 and grids >= 15
    assert misses == GEMMSN_BAND_MISSES
    assert GEMMSN_BAND_K == (round(math.sqrt(max(below) * min(inside))),
                             round(math.sqrt(max(inside) * min(above))))


def test_gemmsn_templates_and_speeds_are_the_recorded_ones():
    """Every recorded gemmSN launch ran the template gemmsn_template gives: its CTAs' rows, the
    CTAs along the grid's y (two at GEMMSN_ROW_CTAS's 12, 15 and 16 rows) and its flag (true
    at GEMMSN_EXACT_ROWS only); and GEMMSN_SPEED is each template's rate over its rows, relative
    to the 8-row template's at the same shape, recomputed from the probe's calibration rows
    with N of 4001 and more."""
    from sim.gpu_model import GEMMSN_SPEED, gemmsn_template

    template = re.compile(r"gemmSN_TN_kernel<float, 128, 16, 2, 4, (\d+), \d+, (true|false),"
                          r".*? grid=\((\d+),(\d+),1\).*? us=([0-9.]+)")
    seen = set()
    for r in launched_gemms():
        m = template.search(r["kernels"].split(" ; ")[0])
        if not m:
            continue
        k = Kernel.from_row(r)
        rows_cta, exact, grid_y = int(m.group(1)), m.group(2) == "true", int(m.group(4))
        assert gemmsn_template(k.M) == (rows_cta, grid_y, exact), (k, m.group(0)[:60])
        seen.add(k.M)
    shapes: dict[tuple[int, int], dict[tuple[int, bool], list[float]]] = {}
    for r in rows(DATA / "measured_h100_gemmsn.csv"):
        m = template.search(r["kernels"].split(" ; ")[0])
        if m and r["split"] == "cal" and int(r["N"]) >= 4001:
            rows_cta, n, kk = int(m.group(1)), int(r["N"]), int(r["K"])
            shapes.setdefault((n, kk), {}).setdefault((rows_cta, m.group(2) == "true"), []).append(
                2 * rows_cta * n * kk / float(m.group(5)))
    speeds: dict[tuple[int, bool], list[float]] = {}
    for rates in shapes.values():
        if (8, False) in rates:
            ref = statistics.median(rates[(8, False)])
            for t, v in rates.items():
                speeds.setdefault(t, []).extend(x / ref for x in v)
    # the 2-row template is load-bound there (its rate not its CUDA cores'): no entry
    assert GEMMSN_SPEED == {t: round(statistics.median(v), 3) for t, v in speeds.items()
                            if t[0] not in (2, 8)}
    assert len(speeds[(6, False)]) >= 5


def test_the_store_constants_are_the_fit_of_the_aligned_gemms(monkeypatch):
    """STORE_EFF and STORE_OVERLAP (the aligned bf16/fp16 kernels' stores of C): on the
    calibration rows of the aligned bf16/fp16 GEMMs of measured_h100_v2.csv,
    measured_h100_random.csv, the store probe (measured_h100_store.csv) and the short-K probe
    (measured_h100_shortk.csv), their timing steady, the calibration held, no neighbour on
    their grid (0.01 in each) has a lower mean absolute log error, and the stores wholly under
    the rest or wholly after it fit worse."""
    import sim.gpu_model as gm
    from sim.gpu.measure import steady

    cal = load_calibration("h100")
    cases = []
    for path in (MEASURED, RANDOM, STORE, SHORTK):
        for r in rows(path):
            if (r["split"] != "cal" or r["op"] != "gemm" or r.get("status", "ok") != "ok"
                    or not steady(r)):
                continue
            k = Kernel.from_row(r)
            if k.dtype in ("bf16", "fp16") and gm.gemm_family(k) == "aligned":
                cases.append((k, float(r["us"])))
    assert len(cases) >= 200

    def err(eff: float, overlap: float) -> float:
        monkeypatch.setattr(gm, "STORE_EFF", eff)
        monkeypatch.setattr(gm, "STORE_OVERLAP", overlap)
        return statistics.fmean(abs(math.log(gm.predict_us(cal, k) / us)) for k, us in cases)

    eff, overlap = gm.STORE_EFF, gm.STORE_OVERLAP
    best = err(eff, overlap)
    for de, do in itertools.product((-0.01, 0.0, 0.01), repeat=2):
        if (de, do) != (0.0, 0.0):
            assert err(round(eff + de, 2), round(overlap + do, 2)) >= best, (de, do)
    assert err(eff, 20.0) > best + 0.005 and err(eff, 0.0) > best + 0.005


def test_the_align1_split_steps_are_the_fit_of_their_launches():
    """ALIGN1_SPLIT_STEPS: the (ns per loaded row, start and end) of the split-K 64x64 align-1
    CTAs that fit the profiled kernel times of every recorded H100 launch of that tile but the
    long-K probe's (SPLIT_STEPS_APART: ALIGN1_SPLIT_STEPS' comment says why), at its recorded
    grid (its CTAs per SM, rows inside the matrices), best in mean absolute log error over a
    grid of 0.0001 ns and 0.5 elements; and it fits them within 12% MAPE."""
    from sim.gpu_model import ALIGN1_SPLIT_STEPS

    lone = load_calibration("h100").params["align1_lone_step_ns"]
    tile = re.compile(r"s1688gemm_(?:bf16|f16)_64x64_tn_align1.*?grid=\((\d+),(\d+),(\d+)\)"
                      r".*? us=([0-9.]+)")
    launches = []
    for f in KERNEL_RUNS:
        if (not f.stem.startswith("measured_h100") or f.stem.endswith(("_graph", "_repeat"))
                or f in SPLIT_STEPS_APART):
            continue
        for r in rows(f):
            kernels = r.get("kernels") or ""
            m = tile.search(kernels.split(" ; ")[0])
            if r["op"] != "gemm" or "splitKreduce" not in kernels or not m:
                continue
            M, N, K, z = int(r["M"]), int(r["N"]), int(r["K"]), int(m.group(3))
            per_sm = -(-(-(-M // 64) * -(-N // 64) * z) // 132)
            launches.append((per_sm, min(64, M) + min(64, N), -(-K // z), float(m.group(4))))
    assert len(launches) >= 200

    def err(ns: float, k0: float) -> float:
        total = 0.0
        for per_sm, loaded, k_cta, us in launches:
            step = loaded * ns
            total += abs(math.log(per_sm * (k_cta + k0) * (step + max(lone - step, 0.0) / per_sm)
                                  * 1e-3 / us))
        return total / len(launches)

    coarse = min((err(c / 1e4, k0), c / 1e4, k0) for c in range(1000, 2500, 10)
                 for k0 in range(0, 200, 2))
    fine = min((err(c / 1e4, k0 / 2), c / 1e4, k0 / 2)
               for c in range(round(coarse[1] * 1e4) - 10, round(coarse[1] * 1e4) + 11)
               for k0 in range(round(coarse[2] * 2) - 4, round(coarse[2] * 2) + 5))
    assert ALIGN1_SPLIT_STEPS == {(64, 64): (fine[1], fine[2])}
    ns, k0 = fine[1], fine[2]
    mape = statistics.fmean(
        abs(per_sm * (k_cta + k0) * (loaded * ns + max(lone - loaded * ns, 0.0) / per_sm)
            * 1e-3 / us - 1) for per_sm, loaded, k_cta, us in launches)
    assert mape < 0.12

def _gemmsn_k_slopes(split: tuple[str, ...]) -> dict[tuple[int, int], float]:
    """Per (M, N) of the probe's launched gemmSN rows (measured_h100_gemmsn.csv) of ``split``:
    the least-squares slope of the timed us over K, ns per element of K."""
    pts: dict[tuple[int, int], list[tuple[int, float]]] = {}
    for r in rows(DATA / "measured_h100_gemmsn.csv"):
        if "gemmSN_TN" in r["kernels"].split(" ; ")[0] and r["split"] in split:
            pts.setdefault((int(r["M"]), int(r["N"])), []).append((int(r["K"]), float(r["us"])))
    out = {}
    for key, p in pts.items():
        if len(p) >= 2:
            k_mean = statistics.fmean(k for k, _ in p)
            u_mean = statistics.fmean(u for _, u in p)
            out[key] = 1e3 * (sum((k - k_mean) * (u - u_mean) for k, u in p)
                              / sum((k - k_mean) ** 2 for k, _ in p))
    return out


def test_gemmsn_walks_are_the_recorded_ones():
    """GEMMSN_MIN_WALK_ROWS: where one CTA's walk binds (the probe's N of 301 and 1201), the
    2-row template took per element of K about as long as the 4-row flag-true one (their
    ratio's geometric mean, times 4 rows, to the rows' step), not half; GEMMSN_WALK_SPEED:
    the 4-row flag-false template's walk over the flag-true one's at N = 1201 on the
    calibration rows, times the flag-true template's speed; and the model's walk follows
    them (held out: 2x97x1243 of measured_h100_misaligned.csv and 3x1117x1142 of
    measured_h100_random.csv within 5%, where a walk in proportion to the rows at the rate's
    speed is 20% short). The slopes are taken less the L2 write-back's ramp, which the walk
    waits behind."""
    from sim.gpu_model import (
        GEMMSN_MIN_WALK_ROWS,
        GEMMSN_ROWS_STEP,
        GEMMSN_SPEED,
        GEMMSN_WALK_SPEED,
        gemmsn_walk,
    )

    p = load_calibration("h100").params

    def ramp(n: int) -> float:  # the L2 write-back's ramp per element of K (within its span)
        return p["decode_ramp_us"] * 1e3 * n * 2 / (p["gemv_ramp_mb"] * 1e6)

    every = _gemmsn_k_slopes(("cal", "held"))
    ratios = [(every[(2, n)] - ramp(n)) / (every[(4, n)] - ramp(n)) for n in (301, 1201)]
    assert all(0.75 < x < 1.5 for x in ratios), ratios
    rows_walked = 4 * math.exp(statistics.fmean(math.log(x) for x in ratios))
    assert GEMMSN_MIN_WALK_ROWS == round(rows_walked / GEMMSN_ROWS_STEP) * GEMMSN_ROWS_STEP
    cal = _gemmsn_k_slopes(("cal",))
    assert GEMMSN_WALK_SPEED == {(4, False): round(
        GEMMSN_SPEED[(4, True)] * (cal[(4, 1201)] - ramp(1201)) / (cal[(3, 1201)] - ramp(1201)),
        3)}
    assert gemmsn_walk(2, True) == (4, GEMMSN_SPEED[(4, True)])
    assert gemmsn_walk(4, False) == (4, GEMMSN_WALK_SPEED[(4, False)])
    assert gemmsn_walk(6, False) == (6, GEMMSN_SPEED[(6, False)])
    cal_h100 = load_calibration("h100")
    for run_name, (m, n, kk), speed in (("misaligned", (2, 97, 1243), 1.0),
                                        ("random", (3, 1117, 1142),
                                         GEMMSN_SPEED[(4, False)])):
        measured = next(float(r["us"]) for r in rows(DATA / f"measured_h100_{run_name}.csv")
                        if (r["op"], r["dtype"], r["M"], r["N"], r["K"])
                        == ("gemm", "bf16", str(m), str(n), str(kk)))
        k = Kernel(op="gemm", dtype="bf16", M=m, N=n, K=kk)
        assert abs(predict_us(cal_h100, k) / measured - 1) < 0.05, (k, measured)
        # a walk of its template's rows in proportion, at its rate's speed, falls well short
        walk_us = -(-m // 2) * 2 * kk * p["gemmsn_row_ns"] * 1e-3 / speed
        assert p["fixed_us"] + walk_us < 0.8 * measured, (k, measured)

def test_the_gemv_split_k_is_the_recorded_one():
    """Every recorded launch of a GEMV the model gives cuBLAS's CUDA-core kernels (family
    gemv, one row of A or one column of C, not its dot kernel) split along K (a
    splitKreduce_kernel launch after it) exactly where gemv_splits_k says, and its bounds are
    the geometric means of the recorded neighbours."""
    from sim.gpu_model import (
        DOT_MAX_ROWS,
        GEMV_SPLIT_MAX_LEN,
        GEMV_SPLIT_MIN_K,
        gemm_family,
        gemv_splits_k,
    )

    split, whole = [], []
    for r in launched_gemms():
        k = Kernel.from_row(r)
        if gemm_family(k) != "gemv" or min(k.M, k.N) != 1 or "dot_kernel" in r["kernels"]:
            continue
        assert not (k.N == 1 and k.M <= DOT_MAX_ROWS and k.K > 128), (k, r["kernels"][:80])
        reduced = "splitKreduce" in r["kernels"]
        assert reduced == gemv_splits_k(k.M, k.N, k.K), (k, r["kernels"][:80])
        if reduced:
            assert re.search(r"gemv2T_kernel_val<.*grid=\(\d+,1,8\)", r["kernels"]), k
        (split if reduced else whole).append((k.M * k.N, k.K))
    assert len(split) >= 2 and len(whole) >= 20
    assert GEMV_SPLIT_MIN_K == round(math.sqrt(
        max(kk for _, kk in whole if kk < min(kk for _, kk in split)) * min(kk for _, kk in split)))
    assert GEMV_SPLIT_MAX_LEN == round(math.sqrt(
        max(n for n, _ in split) * min(n for n, kk in whole if kk >= GEMV_SPLIT_MIN_K)))


def test_the_fallback_split_k_below_its_bound_is_either_variant():
    """Where 128x128 and 64x64 tiles both leave SMs idle, every recorded CUTLASS launch of the
    fallback kernels (but wmma's, WMMA_SPLIT_K) from FALLBACK_SPLIT_K on ran the split-K
    variant (a splitKreduce_kernel launch) but one; below it both ran, split from K = 4 on,
    whole up to K = 182, and the model, taking the faster, splits none that ran whole."""
    from sim.gpu_model import FALLBACK_SPLIT_K, UNDERFILLED_TILE, _gemm_plan, gemm_family

    cal = load_calibration("h100")
    above: dict[bool, set[tuple[str, int, int, int]]] = {False: set(), True: set()}
    below: dict[bool, set[tuple[str, int, int, int]]] = {False: set(), True: set()}
    matched = set()
    for r in launched_gemms():
        k = Kernel.from_row(r)
        family = gemm_family(k)
        main = r["kernels"].split(" ; ")[0]
        underfilled = -(-k.M // 128) * -(-k.N // 128) < cal.sm_count
        filled = (-(-k.M // UNDERFILLED_TILE[0]) * -(-k.N // UNDERFILLED_TILE[1])
                  >= cal.sm_count)
        if (family not in ("align1", "align2") or "cutlass" not in main or not underfilled
                or filled or k.K < 2 or (family == "align1" and k.dtype == "bf16" and k.N < 16)):
            continue
        shape = (k.dtype, k.M, k.N, k.K)
        recorded = "splitKreduce" in r["kernels"]
        if k.K >= FALLBACK_SPLIT_K:
            if "wmma" not in main:
                above[recorded].add(shape)
            continue
        model = _gemm_plan(cal, k, cal.params)[0] > cal.params["fallback_fixed_us"]
        assert recorded or not model, (shape, main[:90])
        below[recorded].add(shape)
        if model == recorded:
            matched.add(shape)
    assert above[False] == {("bf16", 3674, 102, 303)} and len(above[True]) >= 10
    assert min(s[3] for s in below[True]) == 4 and max(s[3] for s in below[False]) == 182
    assert (len(below[True]), len(below[False] - below[True]), len(matched)) == (20, 47, 48)


def test_the_split_k_bound_where_64x64_tiles_fill_the_sms_is_the_recorded_one():
    """Where 128x128 tiles leave SMs idle but 64x64 ones fill them, the fallback kernels ran
    their split-K variant (a splitKreduce_kernel launch) only from FALLBACK_SPLIT_K_FILLED on:
    every recorded bf16/fp16 CUTLASS launch so with K of FALLBACK_SPLIT_K and more (but the
    wmma kernels below their own bound, WMMA_SPLIT_K or with fewer than 16 rows
    WMMA_SPLIT_K_FEW_ROWS) ran unsplit below it and split above it, and the bound is the
    geometric mean of the recorded neighbours."""
    from sim.gpu_model import (
        FALLBACK_SPLIT_K,
        FALLBACK_SPLIT_K_FILLED,
        UNDERFILLED_TILE,
        gemm_family,
        wmma_split_k,
    )

    unsplit, split = [], []
    for r in launched_gemms():
        k = Kernel.from_row(r)
        main = r["kernels"].split(" ; ")[0]
        if (gemm_family(k) not in ("align1", "align2") or "cutlass" not in main
                or ("wmma" in main and k.K < wmma_split_k(k.M))):
            continue
        underfilled = -(-k.M // 128) * -(-k.N // 128) < 132
        filled = (-(-k.M // UNDERFILLED_TILE[0]) * -(-k.N // UNDERFILLED_TILE[1])) >= 132
        if underfilled and filled and k.K >= FALLBACK_SPLIT_K:
            (split if "splitKreduce" in r["kernels"] else unsplit).append(k.K)
    assert len(unsplit) >= 4 and len(split) >= 10
    assert max(unsplit) < FALLBACK_SPLIT_K_FILLED <= min(split)
    assert FALLBACK_SPLIT_K_FILLED == round(math.sqrt(max(unsplit) * min(split)))


def _serial_launches() -> dict[tuple[str, int, int, int], tuple[Kernel, tuple[int, int], int, str]]:
    """The recorded launches of the fallback kernels' large tiles (FALLBACK_SERIAL_TILES, as
    rows of M x columns of N: test_cutlass_grid_orientation) without a splitKreduce_kernel
    where 128x128 tiles fill the SMs: (kernel, tile, the grid's z, the run's file) by shape."""
    from sim.gpu_model import FALLBACK_SERIAL_TILES, gemm_family

    out = {}
    for f in KERNEL_RUNS:
        for r in rows(f):
            if r["op"] != "gemm" or not r.get("kernels") or "splitKreduce" in r["kernels"]:
                continue
            k = Kernel.from_row(r)
            main = r["kernels"].split(" ; ")[0]
            name = re.search(r"(?:s1688|s16816)gemm_(?:bf16|f16)_(\d+)x(\d+)_", main)
            if gemm_family(k) not in ("align1", "align2") or not name:
                continue
            tile = (int(name.group(2)), int(name.group(1)))
            if tile in FALLBACK_SERIAL_TILES and -(-k.M // 128) * -(-k.N // 128) >= 132:
                grid = re.search(r"grid=\((\d+),(\d+),(\d+)\)", main)
                assert grid, main
                z = int(grid.group(3))
                key = (k.dtype, k.M, k.N, k.K)
                assert out.get(key, (k, tile, z))[1:3] == (tile, z), (key, f.name)
                out.setdefault(key, (k, tile, z, f.name))
    return out


def test_the_fallback_serial_split_is_the_recorded_one():
    """CUTLASS's serial split-K (the grid's z, no reduction launch) of the fallback kernels'
    large tiles runs in the slices fallback_serial_splits gives: FALLBACK_SERIAL_K0 is the
    midpoint of the K0s at which its rule gives the most recorded launches their z (107 of 113, 19
    of them split), FALLBACK_SERIAL_SLOTS' two 128x128 CTAs per SM matter (one per SM gives at
    most 102 at any K0), and the misses are the ones FALLBACK_SERIAL_K0's comment names."""
    from sim.gpu_model import FALLBACK_SERIAL_K0, fallback_serial_splits

    launches = _serial_launches()
    assert len(launches) == 113 and sum(z > 1 for _, _, z, _ in launches.values()) == 19

    def matched(k0: float, slots: dict[tuple[int, int], int] | None = None) -> int:
        return sum(fallback_serial_splits(132, k.M, k.N, k.K, tile, k0, slots) == z
                   for k, tile, z, _ in launches.values())

    counts = {k0: matched(k0) for k0 in range(0, 600)}
    best = max(counts.values())
    tops = [k0 for k0, n in counts.items() if n == best]
    assert best == 107 and tops == list(range(tops[0], tops[-1] + 1))
    assert FALLBACK_SERIAL_K0 == (tops[0] + tops[-1]) / 2
    assert max(matched(k0, {}) for k0 in range(0, 600)) == 102
    misses = {(k.dtype, k.M, k.N, k.K, z, fallback_serial_splits(132, k.M, k.N, k.K, tile))
              for k, tile, z, _ in launches.values()
              if fallback_serial_splits(132, k.M, k.N, k.K, tile) != z}
    assert misses == {("fp16", 1102, 4274, 980, 1, 3), ("bf16", 5502, 998, 1728, 2, 3),
                      ("bf16", 14659, 515, 3111, 4, 3), ("fp16", 417, 10112, 1466, 2, 3),
                      ("bf16", 9488, 14494, 5123, 2, 1), ("fp16", 11059, 12889, 753, 2, 1)}


def test_a_serial_split_slice_steps_as_fast_as_an_unsplit_tile(monkeypatch):
    """Each slice of a serial split walks its share of K at the tile's unsplit step: at their
    recorded tile and z, the model's time of the split launches the rule matches (14 on the
    H100) is off the profiler's kernel time by a MAPE under 7% (6.3%; the unsplit launches of K
    1000 and more: 4.6%), about half the 11.6% of the same launches modelled whole, and neither
    group is off by 5% on average (geometric mean: the split 2.2% slower, the unsplit 2.3%
    faster than modelled; modelled whole, the split ones are 9.0% faster)."""
    from sim import gpu_model
    from sim.gpu_model import FALLBACK_TILES, fallback_serial_splits, gemm_family

    cal = load_calibration("h100")
    ratios: dict[str, list[float]] = {"split": [], "whole": [], "split as whole": []}
    for k, tile, z, source in _serial_launches().values():
        if "h200" in source or fallback_serial_splits(132, k.M, k.N, k.K, tile) != z:
            continue
        if z == 1 and k.K < 1000:
            continue
        main = next(r for r in rows(DATA / source) if r["op"] == "gemm" and r.get("kernels")
                    and (r["dtype"], int(r["M"]), int(r["N"]), int(r["K"]))
                    == (k.dtype, k.M, k.N, k.K))["kernels"].split(" ; ")[0]
        us = float(re.search(r"us=([\d.]+)", main).group(1))  # type: ignore[union-attr]
        with monkeypatch.context() as m:
            m.setitem(FALLBACK_TILES, gemm_family(k), (tile,))
            ratios["split" if z > 1 else "whole"].append(us / predict_us(cal, k))
            if z > 1:
                m.setattr(gpu_model, "fallback_serial_splits", lambda *_, **__: 1)
                ratios["split as whole"].append(us / predict_us(cal, k))
    assert len(ratios["split"]) == 14 and len(ratios["whole"]) >= 30
    mape = {s: statistics.fmean(abs(x - 1) for x in v) for s, v in ratios.items()}
    assert mape["split"] < 0.07 and mape["split"] < 0.7 * mape["split as whole"]
    for s in ("split", "whole"):
        assert abs(math.exp(statistics.fmean(map(math.log, ratios[s]))) - 1) < 0.05, s


def test_a_lone_align1_cta_steps_no_faster_than_its_cold_loads():
    """align1_lone_step_ns: a one-wave launch of the align-1 s1688 tiles (each CTA alone on its
    SM) steps along K no faster than the fitted floor, above what the recorded one-wave 64x64
    launches took with the L2 warm under the profiler (the calibration rows' launches above
    4 us of kernel: 15 to 22 ns per element of K), and below a 128x128 CTA's step (so it
    binds the small tiles only); a second wave of the same tiles is not held to it."""
    cal = load_calibration("h100")
    p = cal.params
    lone = []  # (K, profiled us) of the one-wave unsplit 64x64 launches
    for r in launched_gemms():
        main = r["kernels"].split(" ; ")[0]
        k = Kernel.from_row(r)
        if (r["split"] == "cal" and "s1688gemm_bf16_64x64_" in main
                and "splitKreduce" not in r["kernels"]
                and -(-k.M // 64) * -(-k.N // 64) <= cal.sm_count):
            lone.append((k.K, float(main.rsplit(" us=", 1)[1])))
    # the kernel's own start and end: the least such launch's time at K of 4 and less
    start = min(us for K, us in lone if K <= 4)
    warm = [(us - start) * 1e3 / (K + p["fallback_tile_k0"]) for K, us in lone if us > 4]
    assert len(warm) >= 5 and max(warm) < p["align1_lone_step_ns"]
    step_128 = (128 + 128) * 2 / (p["align1_load_gb_per_s"] / cal.sm_count)
    assert p["align1_lone_step_ns"] < step_128

    def work(M: int, N: int, K: int) -> float:
        return predict_parts_us(cal, Kernel(op="gemm", dtype="bf16", M=M, N=N, K=K))[1]

    # 64 rows, 131 column tiles of 64 (one wave) against 133 (two): the lone one at the floor
    one = work(64, 64 * 131 - 1, 201)
    assert one >= (201 + p["fallback_tile_k0"]) * p["align1_lone_step_ns"] * 1e-3 * 0.999
    assert work(64, 64 * 133 - 1, 201) < 2 * one


def test_the_cuda_core_kernels_mechanisms():
    """cuBLAS's CUDA-core kernels (family gemv): gemmSN CTAs walk K at no less than the fitted
    time per row of A (a rate of one CTA, not of the chip; at least GEMMSN_MIN_WALK_ROWS
    rows), many of them run at the chip's
    rate on an even number of rows, each template at its speed; GEMVs and gemmSN load at
    bandwidths of their own, below the HBM's, and GEMVs pay the L2 write-back ramp in their
    bytes (gemmSN's walk waits behind it too)."""
    from sim.gpu_model import GEMMSN_CTA_COLS, gemm_family, gemmsn_walk, kernel_bytes_flops

    cal = load_calibration("h100")
    p = cal.params

    def us(M: int, N: int, K: int) -> float:
        k = Kernel(op="gemm", dtype="bf16", M=M, N=N, K=K)
        assert gemm_family(k) == "gemv", k
        return predict_us(cal, k)

    # three CTAs (N = 23): each row of A adds its walk along K, the 2-row template's CTA
    # walking as the 4-row one's (GEMMSN_MIN_WALK_ROWS, gemmsn_walk), and the walk waits
    # behind the write-back's ramp of the bytes (12 more rows of A and of C)
    (r14, s14), (r2, s2) = gemmsn_walk(14, False), gemmsn_walk(2, True)
    assert r2 == 4 and s14 == 1.0
    ramp_a = p["decode_ramp_us"] * 12 * (1156 + 23) * 2 / (p["gemv_ramp_mb"] * 1e6)
    assert us(14, 23, 1156) - us(2, 23, 1156) == pytest.approx(
        (r14 / s14 - r2 / s2) * 1156 * p["gemmsn_row_ns"] * 1e-3 + ramp_a, rel=1e-6)
    # as many CTAs as SMs and more: a CTA that shares its SM walks no faster (7x1201x601:
    # 151 CTAs, 13 us measured); 7 rows take less than 7x the time of 2
    n_many = GEMMSN_CTA_COLS * cal.sm_count + 1  # odd: vector 1
    assert us(7, n_many, 601) < 2 * us(2, n_many, 601)
    nbytes = kernel_bytes_flops(Kernel(op="gemm", dtype="bf16", M=7, N=1201, K=601))[0]
    assert us(7, 1201, 601) == pytest.approx(
        p["fixed_us"] + 8 * 601 * p["gemmsn_row_ns"] * 1e-3
        + p["decode_ramp_us"] * min(1.0, nbytes / (p["gemv_ramp_mb"] * 1e6)), rel=1e-6)
    # its CUDA cores compute an even number of rows: 5 take as long as 6 where the operations
    # bind (12001x12001: 303 and 306 us measured), 4 (the 4-row template, flag true) about a
    # fifth less (250), 3 (the same rows on its predicated path) 1.3 times as long as 4 (321)
    assert us(5, 12001, 12001) == pytest.approx(us(6, 12001, 12001), rel=1e-9)
    assert 0.7 * us(5, 12001, 12001) < us(4, 12001, 12001) < 0.9 * us(5, 12001, 12001)
    assert us(3, 12001, 12001) > 1.25 * us(4, 12001, 12001)
    assert 0 < p["gemv_load_gb_per_s"] < cal.read_gb_per_s
    assert 0 < p["gemmsn_load_gb_per_s"] < cal.read_gb_per_s
    # a GEMV past the ramp's span pays all of it: twice the bytes, twice the load time only
    k1 = int(p["gemv_ramp_mb"] * 1e6 // (2 * 4099)) + 1  # W's bytes just past the span
    k2 = 2 * k1
    t1, t2 = us(1, 4099, k1) - p["fixed_us"], us(1, 4099, k2) - p["fixed_us"]
    assert t2 - t1 == pytest.approx((k2 - k1) * 4099 * 2 / p["gemv_load_gb_per_s"] / 1e3,
                                    rel=0.01)


def test_cutlass_grid_orientation():
    """cuBLAS runs the transposed product (column major), so a recorded CUTLASS kernel's name
    gives its tile as (columns of N, rows of M): its grid is ``ceil(M / BM) x ceil(N / BN)``
    that way round, with a swizzle of 1 to 8 along M, for every recorded launch whose two
    orientations differ; int8's align-4 tiles that ran past K = 8 (a single step along K)
    are FALLBACK_TILES' in that orientation (sim.gpu_model.FALLBACK_TILES)."""
    from sim.gpu_model import FALLBACK_TILES, gemm_family, padded_shape

    checked = 0
    for r in rows(MISALIGNED) + rows(GEMM_KERNELS):
        k = Kernel.from_row(r)
        M, N, K = padded_shape(k.dtype, k.M, k.N, k.K)
        for part in r["kernels"].split(" ; "):
            tile = re.search(r"cutlass_\w*gemm_(?:bf16|f16|s8)_(\d+)x(\d+)_", part)
            if not tile:
                continue
            bn, bm = int(tile.group(1)), int(tile.group(2))
            gx, gy, _ = map(int, re.search(r"grid=\((\d+),(\d+),(\d+)\)", part).groups())

            def fits(bm: int, bn: int, M: int = M, N: int = N, gx: int = gx, gy: int = gy
                     ) -> bool:
                n_tiles = -(-N // bn)
                return any(gx == -(-M // bm) * sw and gy == -(-n_tiles // sw)
                           for sw in (1, 2, 4, 8))

            if fits(bm, bn) != fits(bn, bm):
                assert fits(bm, bn), part
                checked += 1
            if gemm_family(k) == "int8_align8" and K > 8:
                assert (bm, bn) in FALLBACK_TILES["int8_align8"], part
    assert checked > 70


def test_the_aligned_int8_dispatch_is_the_recorded_one():
    """Every recorded launch of an int8 GEMM whose padded shape is aligned (K and N multiples
    of 16: cuBLASLt's CUTLASS align-16 kernels, every one of the four INT8_TILES among them) ran
    the tile int8_tile gives its padded shape, name oriented as test_cutlass_grid_orientation
    finds it (columns of N first), the random dataset's launched and replayed launches too: no
    exception. INT8_256X128_MIN_K is recomputed: the geometric mean of the longest K at which a
    GEMM of at least INT8_256X128_MIN_TILES 256x128 tiles (and more 64x64 tiles than
    INT8_64X64_MAX_WAVES fill) ran 64x128 and the shortest at which one ran 256x128, 13 shapes
    below it, none between."""
    from sim.gpu_model import (
        INT8_64X64_MAX_WAVES,
        INT8_256X128_MIN_K,
        INT8_256X128_MIN_TILES,
        INT8_SMALL_M,
        INT8_TILES,
        gemm_family,
        int8_tile,
        padded_shape,
    )

    seen: dict[tuple[int, int], int] = {}
    many: dict[tuple[int, int], set[tuple[int, int, int]]] = {}
    for path in (MISALIGNED, GEMM_KERNELS, DATA / "measured_h100_v2_gemm_kernels_repeat.csv",
                 DATA / "measured_h200_misaligned.csv", TILES, RANDOM,
                 DATA / "measured_h100_random_graph.csv"):
        for r in rows(path):
            k = Kernel.from_row(r)
            if k.op != "gemm" or k.dtype != "int8" or gemm_family(k) != "aligned":
                continue
            main = r["kernels"].split(" ; ")[0]
            tile = re.search(r"i16832gemm_s8_(\d+)x(\d+)_\d+x\d+_tn_align16", main)
            assert tile, main
            ran = (int(tile.group(2)), int(tile.group(1)))
            shape = padded_shape("int8", k.M, k.N, k.K)
            assert int8_tile(132, *shape) == ran, (k, main)
            seen[ran] = seen.get(ran, 0) + 1
            M, N, _ = shape
            if (M > INT8_SMALL_M and -(-M // 64) * -(-N // 64) > INT8_64X64_MAX_WAVES * 132
                    and -(-M // 256) * -(-N // 128) >= INT8_256X128_MIN_TILES):
                many.setdefault(ran, set()).add(shape)
    assert set(seen) == set(INT8_TILES) and sum(seen.values()) > 400, seen
    assert set(many) == {(64, 128), (256, 128)}, many
    below = max(K for _, _, K in many[(64, 128)])
    above = min(K for _, _, K in many[(256, 128)])
    assert (below, above) == (3680, 3824) and len(many[(64, 128)]) == 13
    assert INT8_256X128_MIN_K == round(math.sqrt(below * above))


def test_the_int8_align4_dispatch_is_the_recorded_one():
    """Every recorded launch of CUTLASS's align-4 int8 kernels for a padded K 8 off a multiple of
    16 (every run of KERNEL_RUNS, both cards) ran the tile int8_align4_tile
    gives its padded shape (name oriented as test_cutlass_grid_orientation finds it, columns of
    N first), but three of the tiles sweep's shapes: 320 rows (N = 4096 and 4104) ran 128x128
    where the rule gives 256x128 (as many tiles of each as 384 rows, which ran 256x128), and
    822x4096 ran 256x128 where it gives 128x256 (822x4104 ran 128x256). The H200 ran the same
    kernel and grid as the H100 at every shape both recorded. The test counts the launches and
    the exceptions, so a change to either shows."""
    from sim.gpu_model import FALLBACK_TILES, int8_align4_tile, padded_shape

    launches: dict[tuple[int, int, int], dict[str, set[str]]] = {}
    matched, missed = 0, set()
    for path in KERNEL_RUNS:
        for r in rows(path):
            if r["op"] != "gemm" or r["dtype"] != "int8":
                continue
            shape = padded_shape("int8", int(r["M"]), int(r["N"]), int(r["K"]))
            for part in r["kernels"].split(" ; "):
                tile = re.search(r"i16832gemm_s8_(\d+)x(\d+)_128x\d+_tn_align4", part)
                if not tile or shape[2] % 16 == 0:
                    continue
                card = "h200" if "h200" in path.name else "h100"
                launches.setdefault(shape, {}).setdefault(card, set()).add(
                    re.sub(r" us=.*", "", part))
                ran = (int(tile.group(2)), int(tile.group(1)))
                assert ran in FALLBACK_TILES["int8_align8"], part
                if int8_align4_tile(132, *shape) == ran:
                    matched += 1
                else:
                    missed.add(shape)
    assert all(len(k) == 1 for by_card in launches.values() for k in by_card.values())
    both = [s for s, by_card in launches.items() if len(by_card) == 2]
    assert len(both) == 33 and all(launches[s]["h100"] == launches[s]["h200"] for s in both)
    assert matched == 288 and len(launches) == 111, (matched, len(launches))
    assert missed == {(320, 4096, 4104), (320, 4104, 4104), (822, 4096, 4104)}


def test_the_int8_align4_step_floor_is_the_recorded_one():
    """INT8_ALIGN4_STEP_NS: the least time per element of K of the recorded single-CTA
    launches of int8's 64x64 align-4 tile at K of 4096 and more (few rows in bounds), well
    below what full 64x64 tiles took there (at least 5 ns per element of K)."""
    from sim.gpu_model import INT8_ALIGN4_STEP_NS, padded_shape

    single, full = [], []
    for r in rows(MISALIGNED) + rows(GEMM_KERNELS):
        name = r["kernels"].split(" ; ")[0]
        if "i16832gemm_s8_64x64_" not in name or "align4" not in name:
            continue
        M, N, K = padded_shape("int8", int(r["M"]), int(r["N"]), int(r["K"]))
        grid = re.search(r"grid=\((\d+),(\d+),(\d+)\)", name)
        ctas = int(grid[1]) * int(grid[2]) * int(grid[3])
        ns = float(name.rsplit(" us=", 1)[1]) * 1e3 / K
        if K >= 4096 and ctas == 1:
            single.append(ns)
        elif K >= 4096 and M >= 64 and N >= 64:
            full.append(ns)
    assert len(single) >= 3 and len(full) >= 2
    assert min(single) == pytest.approx(INT8_ALIGN4_STEP_NS, abs=0.01)
    assert max(single) < 4.1 < 5.0 < min(full)


def test_the_int8_n8_cutlass_steps_are_the_fit_of_their_launches():
    """INT8_N8_CUTLASS_STEPS: K a multiple of 16 ran the 64x128 align-4 tile's three-stage
    variant and K 8 off 16 its six-stage one (every recorded launch of that tile); the (ns per
    loaded row in int8_align4_sectors, start and end) of the three-stage CTAs that fit the
    timed us less the calibration's fixed_us of every recorded launch of it (both cards, at
    ``ceil(tiles / SMs)`` CTAs to the busiest SM) best, in mean absolute log error over a grid
    of 0.00001 ns and 0.5 elements; and it fits them within 4% MAPE."""
    from sim.gpu_model import INT8_N8_CUTLASS_STEPS, int8_align4_sectors, padded_shape

    assert int8_align4_sectors(4104) == 1.1875 and int8_align4_sectors(4112) == 1.125
    assert int8_align4_sectors(4096) == int8_align4_sectors(10688) == 1.0
    fixed = load_calibration("h100").params["fixed_us"]
    tile = re.compile(r"i16832gemm_s8_128x64_128x(\d)_tn_align4")
    launches, stages = [], set()
    for f in KERNEL_RUNS:
        # not the runs of the same shapes again (int8n8e: the H100's int8 N8 probe with energy)
        if f.stem.endswith(("_graph", "_repeat", "_int8n8e")):
            continue
        for r in rows(f):
            m = tile.search((r.get("kernels") or "").split(" ; ")[0])
            if r["op"] != "gemm" or not m:
                continue
            M, N, K = padded_shape("int8", int(r["M"]), int(r["N"]), int(r["K"]))
            stages.add((K % 16, m.group(1)))
            if m.group(1) == "3":
                per_sm = -(-(-(-M // 64) * -(-N // 128)) // 132)
                loaded = (min(64, M) + min(128, N)) * int8_align4_sectors(K)
                launches.append((per_sm, loaded, K, float(r["us"]) - fixed))
    assert stages == {(0, "3"), (8, "6")} and len(launches) >= 69

    def err(ns: float, k0: float) -> float:
        return statistics.fmean(abs(math.log(per_sm * (K + k0) * loaded * ns * 1e-3 / us))
                                for per_sm, loaded, K, us in launches)

    coarse = min((err(c / 1e4, k0), c / 1e4, k0) for c in range(250, 500, 2)
                 for k0 in range(0, 600, 4))
    fine = min((err(c / 1e5, k0 / 2), c / 1e5, k0 / 2)
               for c in range(round(coarse[1] * 1e5) - 20, round(coarse[1] * 1e5) + 21)
               for k0 in range(round(coarse[2] * 2) - 8, round(coarse[2] * 2) + 9))
    assert INT8_N8_CUTLASS_STEPS == {(64, 128): (fine[1], fine[2])}
    ns, k0 = fine[1], fine[2]
    mape = statistics.fmean(abs(per_sm * (K + k0) * loaded * ns * 1e-3 / us - 1)
                            for per_sm, loaded, K, us in launches)
    assert mape < 0.04


def test_the_int8_n8_wave_k0_is_the_fit_of_the_probe():
    """INT8_N8_WAVE_K0: the least-squares fit of the int8 N8 probe's launches of the Hopper
    kernel (its profiled kernel time ``a + (waves - 1) b + waves K c``, K of 128 to 8192 at
    one and two waves of its CTAs) gives a wave's start and end b / c elements of K; the fit is
    within 3% MAPE."""
    import numpy as np

    from sim.gpu_model import INT8_N8_WAVE_K0, int8_n8_ctas, padded_shape

    xs, ys = [], []
    for r in rows(DATA / "measured_h200_int8n8.csv"):
        m = re.search(r"sm90_xmma_gemm_i8i32.*? us=([0-9.]+)", r["kernels"])
        if not m:
            continue
        M, N, K = padded_shape("int8", int(r["M"]), int(r["N"]), int(r["K"]))
        waves = -(-int8_n8_ctas(M, N) // 132)
        xs.append((1.0, waves - 1.0, waves * K))
        ys.append(float(m.group(1)))
    a, y = np.array(xs), np.array(ys)
    assert len(ys) == 40 and {1.0, 2.0} == set(a[:, 1] + 1)
    coef = np.linalg.lstsq(a, y, rcond=None)[0]
    assert INT8_N8_WAVE_K0 == round(coef[1] / coef[2])
    assert float(np.mean(np.abs(a @ coef / y - 1))) < 0.03


def test_misaligned_gemms_held_out_per_category():
    """The held-out misaligned GEMMs, per category (``tpe gpu check``'s statistics), against
    the levels this model reaches (docs/gpu.md), time and energy: all four within the issue's
    10 % (bf16 just: cuBLAS's choice among kernels and split-K counts of one family for small
    shapes is not modelled), energy above its 15 % for bf16 and fp8; held here so that they do
    not get worse."""
    from sim.cli.gpu import _gpu_arch, _kernels, _predict, category, check_rows

    measured = rows(MISALIGNED)
    stats = check_rows(measured, _predict(_gpu_arch("h100"), _kernels(measured, "--measured")))
    for dtype, mape, mj_mape in (("bf16", 0.10, 0.185), ("fp16", 0.07, 0.135), ("fp8", 0.08, 0.19),
                                 ("int8", 0.08, 0.14)):
        group = f"gemm/{dtype}/misaligned"
        s = stats[("held", "gemm", group)]
        assert s["n"] >= 10 and s["mape"] <= mape and s["spearman"] >= 0.9, (dtype, s)
        held = sum(r["split"] == "held" and category(r) == group for r in measured)
        assert s["mj_n"] == held and s["mj_mape"] <= mj_mape, (dtype, s)


def test_every_shapes_dataset_is_written_as_committed_and_the_command_refuses_unknown_options(
        tmp_path, capsys):
    from sim.gpu.shapes import DATASETS, main, random_shapes, split_of, tile_shapes, unseen_shapes

    for name, (_, committed, _) in DATASETS.items():
        out = tmp_path / f"{name}.csv"
        assert main([*([f"--{name}"] if name != "default" else []), str(out)]) == 0
        assert out.read_text() == committed.read_text(), name
    # the tile dataset: int8 and fp8 over the rows near 4096, none measured in another dataset
    tiles = tile_shapes()
    assert {r["dtype"] for r in tiles} == {"int8", "fp8"}
    assert all(split_of(r) == r["split"] for r in tiles)
    others = {(r["dtype"], str(r["M"]), str(r["N"]), str(r["K"]))
              for f in ("shapes_v2.csv", "shapes_misaligned.csv") for r in rows(DATA / f)}
    assert not others & {(r["dtype"], str(r["M"]), str(r["N"]), str(r["K"])) for r in tiles}
    # the unseen dataset: every row held out, none in the random dataset (nor another)
    unseen = unseen_shapes()
    assert len(unseen) >= 400 and {r["split"] for r in unseen} == {"held"}
    drawn = {(r["dtype"], r["M"], r["N"], r["K"]) for r in (*random_shapes(), *tiles)}
    assert not drawn & {(r["dtype"], r["M"], r["N"], r["K"]) for r in unseen}
    # the gemmSN probe: bf16 at vector 1, 2 to 17 rows, K below twice N, none measured before
    from sim.gpu.shapes import gemmsn_shapes
    from sim.gpu_model import vector_elems

    probe = gemmsn_shapes()
    assert {r["M"] for r in probe} == set(range(2, 18))
    assert all(r["dtype"] == "bf16" and vector_elems("bf16", r["N"], r["K"]) == 1
               and r["K"] < 2 * r["N"] for r in probe)
    measured = drawn | {(r["dtype"], r["M"], r["N"], r["K"]) for r in unseen}
    assert not measured & {(r["dtype"], r["M"], r["N"], r["K"]) for r in probe}
    # the int8 N8 probe: K a multiple of 16, N 8 off one; its Hopper tile counts and
    # multiply-adds vary apart (a shape of fewer tiles and more multiply-adds than another)
    from sim.gpu.shapes import int8_n8_shapes
    from sim.gpu_model import INT8_N8_TILE

    n8 = int8_n8_shapes()
    assert all(r["dtype"] == "int8" and r["K"] % 16 == 0 and r["N"] % 16 == 8 for r in n8)
    bm, bn = INT8_N8_TILE
    shapes = [(-(-r["M"] // bm) * -(-r["N"] // bn), r["M"] * r["N"] * r["K"]) for r in n8]
    assert any(t1 < t2 and m1 > m2 for t1, m1 in shapes for t2, m2 in shapes)
    assert not (measured | {(r["dtype"], r["M"], r["N"], r["K"]) for r in probe}) & {
        (r["dtype"], r["M"], r["N"], r["K"]) for r in n8}
    # the long-context probe: every row held out, each context past every other dataset's of
    # its op, each cache within its bound
    from sim.gpu.shapes import LONG_CONTEXT_MAX_CACHE, long_context_shapes

    longctx = long_context_shapes()
    assert {r["split"] for r in longctx} == {"held"}
    for op in ("attn_decode", "attn_prefill"):
        before = max(int(r["S"]) for f in ("shapes_v2.csv", "shapes_decode.csv", "shapes_quant.csv")
                     for r in rows(DATA / f) if r["op"] == op)
        assert all(r["S"] > before for r in longctx if r["op"] == op), op
    assert all(4 * r["B"] * r["Hkv"] * r["S"] * r["D"] <= LONG_CONTEXT_MAX_CACHE
               for r in longctx if r["op"] == "attn_decode")
    assert {r.get("kv_dtype", "") for r in longctx} == {"", "int8", "int4"}
    for bad in (["--help-me"], ["--v2", "--tiles"], ["a.csv", "b.csv"]):
        with pytest.raises(SystemExit) as e:
            main(bad)
        assert e.value.code == 2
    assert not list(tmp_path.glob("--*"))


def test_an_unsteady_timing_is_taken_again_and_the_steadiest_kept():
    import types

    from sim.gpu import measure

    def bench(timings):
        left = iter(timings)
        fake = types.SimpleNamespace(testing=types.SimpleNamespace(
            do_bench=lambda fn, **_: next(left)))
        return measure._bench(fake, lambda: None, 40.0)

    # (median, p20, p80) in ms from do_bench, in us and the number of timings back
    assert bench([[0.010, 0.009, 0.010]]) == (10.0, 9.0, 10.0, 1)
    assert bench([[0.010, 0.005, 0.020], [0.011, 0.010, 0.0105]]) == (11.0, 10.0, 10.5, 2)
    # never more than RETRIES again; the steadiest of all kept, not the last
    runs = [[0.01, 0.005, 0.008], [0.04, 0.005, 0.030], [0.03, 0.005, 0.020]]
    assert measure.RETRIES == 2 and bench(runs) == (10.0, 5.0, 8.0, 3)


def test_the_fp8_tiles_are_the_recorded_ones():
    """Every recorded launch of cuBLASLt's Hopper fp8 kernels ran a tile of NVJET_FP8_TILES,
    oriented as the tile dataset's one-wave launches show (the name's first dimension along N):
    at 320, 437 and 515 rows of 4096 x 4096 the names' 128x80, 128x112 and 128x136 fill 128 of
    the 132 SMs once only so (the other way round, two waves)."""
    from sim.gpu_model import NVJET_FP8_TILES

    seen = set()
    for path in (MISALIGNED, GEMM_KERNELS, DATA / "measured_h100_v2_gemm_kernels_repeat.csv",
                 DATA / "measured_h200_misaligned.csv", TILES):
        for r in rows(path):
            if r["op"] != "gemm" or r["dtype"] != "fp8" or not r.get("kernels"):
                continue
            tile = re.search(r"nvjet_sm90_qqtst_(\d+)x(\d+)_", r["kernels"])
            assert tile, r["kernels"][:90]
            ran = (int(tile.group(2)), int(tile.group(1)))  # (rows of M, columns of N)
            assert ran in NVJET_FP8_TILES, (r["M"], r["N"], r["K"], ran)
            seen.add(ran)
    assert seen == set(NVJET_FP8_TILES)
    for M, (along_n, along_m) in ((320, (128, 80)), (437, (128, 112)), (515, (128, 136))):
        assert -(-4096 // along_n) * -(-M // along_m) == 128
        assert -(-4096 // along_m) * -(-M // along_n) > 132


def test_the_8bit_gemms_mechanisms():
    """The tile dataset's two effects (measured_h100_tiles.csv): fp8's kernels fill the SMs'
    waves with tiles of any multiple of 8 (515 rows took 16.5 us of kernel where 512 took 14.5,
    not a second wave of fixed 128-row tiles), and a row of K off the L2's 128-byte lines costs
    the aligned int8 kernels about twice the load traffic (1000 x 4112 x 4112: 95 us of kernel,
    1000 x 4096 x 4096: 50)."""
    from sim.gpu_model import line_traffic

    cal = load_calibration("h100")

    def us(dtype: str, M: int, N: int, K: int) -> float:
        return predict_us(cal, Kernel(op="gemm", dtype=dtype, M=M, N=N, K=K))

    assert us("fp8", 515, 4096, 4096) < 1.25 * us("fp8", 512, 4096, 4096)
    assert line_traffic(4096) == 1.0 and line_traffic(4112) == 1.875
    assert line_traffic(4160) == 1.5
    assert us("int8", 1000, 4112, 4112) > 1.6 * us("int8", 1000, 4096, 4096)


def test_int8_rows_on_an_l2_sector_cost_no_line_traffic(monkeypatch):
    """The aligned int8 GEMMs of the random and tile datasets that the L2's line traffic would
    bound (more than 16 rows, 3 GFLOP and more): at K an odd multiple of 16 the line traffic
    holds them (33 GEMMs), at K a multiple of 32 (64) but not 128 it makes the model 26% (12%)
    slow where their rows cost as aligned ones (sim.gpu_model.sector_traffic: within 8%)."""
    import statistics

    import sim.gpu_model as gm

    cal = load_calibration("h100")
    p = cal.params
    shapes = []
    for name in ("random", "tiles"):
        for r in rows(DATA / f"measured_h100_{name}.csv"):
            if r.get("status", "ok") != "ok" or r["op"] != "gemm" or r["dtype"] != "int8":
                continue
            M, N, K = int(r["M"]), int(r["N"]), int(r["K"])
            if K % 16 or N % 16 or M <= 16 or 2 * M * N * K < 3e9:
                continue
            bm, bn = gm.int8_tile(cal.sm_count, M, N, K)
            n_tiles = -(-M // bm) * -(-N // bn)
            steps = K + p["int8_tile_k0"]
            rate = cal.peak_tflops["int8"] * 1e12 * p[f"int8_eff_{bm}x{bn}"] / cal.sm_count
            t_c = -(-n_tiles // cal.sm_count) * 2 * bm * bn * steps / rate
            t_l2 = (n_tiles * (bm + bn) * steps * gm.line_traffic(K)
                    / (p["int8_load_gb_per_s"] * 1e9))
            if t_l2 > t_c:
                shapes.append((M, N, K, float(r["us"])))

    def mean_error() -> dict[int, tuple[int, float]]:
        by: dict[int, list[float]] = {}
        for M, N, K, us in shapes:
            pred = predict_us(cal, Kernel(op="gemm", dtype="int8", M=M, N=N, K=K))
            by.setdefault(math.gcd(K, gm.L2_LINE_BYTES), []).append(pred / us - 1)
        return {g: (len(v), statistics.mean(v)) for g, v in by.items()}

    sector = mean_error()
    monkeypatch.setattr(gm, "sector_traffic", gm.line_traffic)
    line = mean_error()
    assert sorted(sector) == [16, 32, 64] and sector[16][0] == 33
    assert (sector[32][0], sector[64][0]) == (7, 3)
    assert abs(line[16][1]) < 0.03 and sector[16] == line[16]
    assert line[32][1] > 0.25 and line[64][1] > 0.1
    assert abs(sector[32][1]) < 0.08 and abs(sector[64][1]) < 0.08


def test_fp8_rows_on_an_l2_sector_pay_between_sector_and_line_traffic(monkeypatch):
    """The random dataset's steady fp8 GEMMs whose padded K is a multiple of 32 but not of 128
    and whose time the L2's traffic moves (by 1% or more between sector and line traffic): the
    model with sector traffic (sim.gpu_model.sector_traffic, as it runs) is too fast by 4.5% on
    average and 6.8% MAPE, with line traffic too slow by 2.8% and 9.4% MAPE: sector traffic
    is the nearer of the two by MAPE (its docstring's figures)."""
    import statistics

    import sim.gpu_model as gm
    from sim.gpu.measure import steady

    cal = load_calibration("h100")
    errors = []
    for r in rows(RANDOM):
        if r["op"] != "gemm" or r["dtype"] != "fp8" or not r["us"] or not steady(r):
            continue
        k = Kernel.from_row(r)
        K = gm.padded_shape("fp8", k.M, k.N, k.K)[2]
        if K % 32 or K % 128 == 0:
            continue
        sector = predict_us(cal, k)
        with monkeypatch.context() as m:
            m.setattr(gm, "sector_traffic", gm.line_traffic)
            line = predict_us(cal, k)
        if abs(line / sector - 1) >= 0.01:
            errors.append((sector / float(r["us"]) - 1, line / float(r["us"]) - 1))
    assert len(errors) == 24
    sector_mean, line_mean = (statistics.mean(e[i] for e in errors) for i in (0, 1))
    sector_mape, line_mape = (statistics.mean(abs(e[i]) for e in errors) for i in (0, 1))
    assert round(sector_mean, 3) == -0.045 and round(line_mean, 3) == 0.028
    assert round(sector_mape, 3) == 0.068 and round(line_mape, 3) == 0.094


def test_l2_line_energy_is_the_tile_datasets_excess():
    """sim.gpu_model.L2_LINE_PJ_PER_BYTE is the least-squares energy per byte of excess line
    traffic over the tile dataset's 'cal' fp8 GEMMs at K = 4112 (rows off the L2's sectors):
    of what they drew beyond the rest of the model's energy (the committed calibration's
    constants, fitted with it). Without it the model gives those GEMMs 19% less energy than
    they drew on average (held out 18%) and the ones at K = 4096 (no excess) within 3%; with
    it, those at K = 4112 within 2% (its comment's figures)."""
    import numpy as np

    import sim.gpu_model as gm

    cal = load_calibration("h100")
    errors: dict[tuple[str, int], list[tuple[float, float]]] = {}
    excess, beyond = [], []
    for r in rows(TILES):
        if r.get("status", "ok") != "ok" or r["dtype"] != "fp8" or not r.get("mj"):
            continue
        k = Kernel.from_row(r)
        l2 = gm.energy_work(cal, k)[3]
        mj = gm.predict_kernel(cal, k, 700.0).mj
        rest = mj - gm.L2_LINE_PJ_PER_BYTE * l2 * 1e-9  # mJ
        K = gm.padded_shape("fp8", k.M, k.N, k.K)[2]
        assert (l2 > 0) == (K == 4112)
        errors.setdefault((r["split"], K), []).append((rest / float(r["mj"]) - 1,
                                                        mj / float(r["mj"]) - 1))
        if r["split"] == "cal" and l2 > 0:
            excess.append(l2)
            beyond.append((float(r["mj"]) - rest) * 1e9)  # pJ
    x, y = np.array(excess), np.array(beyond)
    assert len(x) == 19
    assert round(float(x @ y / (x @ x)), 1) == pytest.approx(gm.L2_LINE_PJ_PER_BYTE, abs=0.2)
    mean = {key: tuple(statistics.mean(e[i] for e in v) for i in (0, 1))
            for key, v in errors.items()}
    assert sorted(mean) == [("cal", 4096), ("cal", 4112), ("held", 4096), ("held", 4112)]
    assert round(mean["cal", 4112][0], 2) == -0.19 and round(mean["held", 4112][0], 2) == -0.18
    assert all(abs(mean[s, 4096][0]) < 0.03 for s in ("cal", "held"))
    assert all(abs(mean[s, 4112][1]) < 0.02 for s in ("cal", "held"))


def test_int8_stores_of_c_drain_at_their_own_efficiency():
    """The aligned int8 GEMMs of the random and v2 datasets whose HBM bytes are nearly all C
    (its int32 stores at least 90% of them, 4 MB and more: K of 11 to 672) the model predicts
    within 5% on average with C's stores at int8_store_eff, but 10% slow or more with them
    at the reads' efficiency (int8_bw_eff), which the fit puts well below it;
    the recorded kernel of the largest moved its bytes at 2.7 TB/s (the module doc's)."""
    import dataclasses
    import statistics

    from sim.gpu_model import gemm_family, kernel_bytes_flops

    cal = load_calibration("h100")
    p = cal.params
    reads_eff = p["int8_bw_eff"]
    assert p["int8_store_eff"] > 1.2 * reads_eff
    split, reads = [], []
    for name in ("random", "v2"):
        for r in rows(DATA / f"measured_h100_{name}.csv"):
            if r.get("status", "ok") != "ok" or r["op"] != "gemm" or r["dtype"] != "int8":
                continue
            k = Kernel.from_row(r)
            nbytes = kernel_bytes_flops(k)[0]
            if gemm_family(k) != "aligned" or k.M * k.N * 4 < 0.9 * nbytes or nbytes < 4e6:
                continue
            us = float(r["us"])
            split.append(predict_us(cal, k) / us - 1)
            reads.append(predict_us(cal, k, p | {"int8_store_eff": reads_eff}) / us - 1)
    assert len(split) == 14
    assert abs(statistics.mean(split)) < 0.05 and statistics.mean(reads) > 0.1
    # the recorded kernel of 7429x5421x29 (padded 7429x5424x32): 162 MB in 60 us, 2.7 TB/s
    (r,) = [r for r in rows(GEMM_KERNELS) if r["dtype"] == "int8" and r["M"] == "7429"]
    k = Kernel.from_row(r)
    nbytes = kernel_bytes_flops(dataclasses.replace(k, N=5424, K=32))[0]
    kernel_us = float(re.search(r"us=([\d.]+)", r["kernels"]).group(1))
    assert round(nbytes / 1e6) == 162 and round(kernel_us) == 60
    assert round(nbytes / kernel_us / 1e6, 1) == 2.7


def test_graph_replay_cost_is_the_recorded_one():
    """GRAPH_REPLAY_US is the median of replayed less launched ``us`` over the short 'cal'
    GEMMs of every launched run and its ``_graph`` replay; only the runs whose env records
    ``--graph`` are replayed, and only the launched-fitted GEMM paths pay it."""
    import dataclasses
    import statistics

    from sim.gpu.measure import timed_replayed
    from sim.gpu_model import GRAPH_REPLAY_US, Kernel, replay_us, replayed

    diffs = []
    for name in ("random", "misaligned", "v2"):
        launched = DATA / f"measured_h100_{name}.csv"
        graph = DATA / f"measured_h100_{name}_graph.csv"
        assert timed_replayed(graph) and not timed_replayed(launched)
        key = ("op", "dtype", "M", "N", "K")
        with open(launched) as f:
            us = {tuple(r[c] for c in key): float(r["us"]) for r in csv.DictReader(f) if r["us"]}
        with open(graph) as f:
            for r in csv.DictReader(f):
                base = us.get(tuple(r[c] for c in key))
                if r["split"] == "cal" and r["us"] and base is not None and base < 10.0:
                    diffs.append(float(r["us"]) - base)
    assert len(diffs) == 229
    assert round(statistics.median(diffs), 3) == GRAPH_REPLAY_US
    c = replayed(arch_calibration(load_arch("h100")))
    gemm = Kernel.from_row({"op": "gemm", "dtype": "bf16", "M": "64", "N": "64", "K": "64"})
    assert replay_us(c, gemm) == GRAPH_REPLAY_US
    assert replay_us(dataclasses.replace(c, replayed=False), gemm) == 0.0
    assert replay_us(c, dataclasses.replace(gemm, dtype="w4a16")) == 0.0


def test_an_unsteady_row_is_shown_apart_and_not_judged():
    """A row whose timing stayed unsteady (sim.gpu.measure.unsteady on its percentiles) is in
    check_rows' UNSTEADY group alone, in no judged group and not in the finer verdict; a
    steady row, or one without percentiles, is judged."""
    from types import SimpleNamespace

    from sim.cli.gpu import UNSTEADY, check_rows, finer_verdict
    from sim.gpu.measure import UNSTEADY_SPREAD, steady

    base = {"op": "gemm", "dtype": "bf16", "M": "64", "N": "64", "K": "64", "split": "held"}
    good = [{**base, "M": str(64 * i), "us": str(10.0 * i), "us_p20": str(9.9 * i),
             "us_p80": str(10.1 * i)} for i in range(1, 7)]
    shaky = {**base, "M": "4096", "us": "500", "us_p20": "100",
             "us_p80": str(100 * UNSTEADY_SPREAD * 1.01)}
    bare = {**base, "M": "8192", "us": "70"}
    assert all(map(steady, [*good, bare])) and not steady(shaky)
    rows = [*good, shaky, bare]
    est = [SimpleNamespace(us=float(r["us"]), mj=0.0) for r in rows]
    est[6] = SimpleNamespace(us=50.0, mj=0.0)  # 90% off: judged, it would fail everything
    stats = check_rows(rows, est)
    assert stats[("held", "gemm", UNSTEADY)]["n"] == 1
    assert stats[("held", "gemm", "all")]["n"] == 7
    assert stats[("held", "gemm", "all")]["mape"] == 0.0
    assert finer_verdict(rows, est, stats).startswith("PASS (all 0.0%")
    # the same row steady is judged
    rows[6] = {**shaky, "us_p80": "101"}
    assert finer_verdict(rows, est, check_rows(rows, est)).startswith("FAIL")


def test_one_held_out_kernel_has_no_spearman_and_passes_no_target():
    """Spearman's rank correlation is undefined over one held-out kernel: the table shows
    '-', and neither verdict passes on it (a NaN compares false against the bound)."""
    from types import SimpleNamespace

    from sim.cli.gpu import check_rows, finer_verdict

    rows = [{"op": "gemm", "dtype": "bf16", "M": "64", "N": "64", "K": "64", "split": "held",
             "us": "10"}]
    est = [SimpleNamespace(us=10.0, mj=0.0)]
    stats = check_rows(rows, est)
    assert math.isnan(stats[("held", "gemm", "all")]["spearman"])
    assert finer_verdict(rows, est, stats) == (
        "FAIL (all 0.00%, Spearman undefined over 1 held-out kernel(s): it needs two or more "
        "of different times)")


@pytest.mark.parametrize(("column", "value"), [
    ("us", "x"), ("us", "-0"), ("us", "inf"), ("mj", "x"), ("mj", "0"), ("us_p20", "nan"),
    ("us_p80", "-3")])
def test_check_refuses_a_measured_value_that_is_not_a_positive_number(
        capsys, tmp_path, column, value):
    """The measured values the check reads are positive finite numbers: another value exits 2
    naming the line and the column (it was a traceback, or a division by zero's NaN)."""
    source = rows(DATA / "measured_h100_random.csv")[:5]
    bad = tmp_path / "m.csv"
    with open(bad, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(source[0]))
        w.writeheader()
        for i, r in enumerate(source):
            w.writerow({**r, column: value} if i == 3 else r)
    code, out, err = run(capsys, ["gpu", "check", "--measured", str(bad)])
    assert code == 2 and not out
    assert err.strip() == (f"tpe: error: --measured: line 5: {column}: must be a positive "
                           f"number of {'millijoules' if column == 'mj' else 'microseconds'} "
                           f"(got {value!r})")


def test_a_gemv_walks_its_k():
    """cuBLAS's gemvx kernel (a warp of 32 lanes per output, four to a CTA) of fewer CTAs than
    SMs takes about a fixed time plus one warp's walk along K: over the recorded launches of
    the fitted runs its kernel times grow with K at gemmSN's fitted time per row and element of
    K (gemmsn_row_ns, within 20%), and the model's GEMV is no faster than that walk."""
    import numpy as np

    from sim.gpu_model import GEMV_SPLIT_MIN_K, gemv_splits_k

    cal = load_calibration("h100")
    row_ns = cal.params["gemmsn_row_ns"]
    pts = {}
    for path in (RANDOM, MISALIGNED, GEMM_KERNELS):
        for r in rows(path):
            hit = re.search(r"gemvx::kernel<.*?grid=\((\d+),1,1\) block=\(32,4,1\) us=([\d.]+)",
                            r.get("kernels", ""))
            if r["op"] == "gemm" and hit and int(hit.group(1)) < cal.sm_count:
                pts[(r["dtype"], r["M"], r["N"], r["K"])] = (int(r["K"]), float(hit.group(2)))
    k = np.array([p[0] for p in pts.values()], dtype=float)
    t = np.array([p[1] for p in pts.values()])
    assert len(pts) >= 10 and k.max() > 3000
    slope = np.polyfit(k, t, 1)[0] * 1e3  # ns per element of K
    assert slope == pytest.approx(row_ns, rel=0.2), slope
    for K in (1060, 3146, GEMV_SPLIT_MIN_K - 1):  # (from GEMV_SPLIT_MIN_K on it splits K)
        kernel = Kernel(op="gemm", dtype="bf16", M=1, N=101, K=K)
        assert not gemv_splits_k(1, 101, K)
        assert predict_us(cal, kernel) >= cal.params["fixed_us"] + K * row_ns * 1e-3


def test_the_fallback_kernels_pay_for_each_byte_of_c_they_store():
    """The misaligned bf16/fp16 fallback kernels store C an element (alignment 1) or a pair
    (alignment 2) at a time: the calibration's ``pj_per_c_byte`` prices those bytes on both
    paths and no other (sim.gpu_model.narrow_c_bytes). Over the paths' rows with an energy in
    the energy fit's files, the model with it is within 12.1% of their energy on average on
    the calibration rows and 13.1% held out, against 13.9% and 15.1% with it zeroed (the
    function's doc); the largest C of the store probe drew 48.2 mJ, 28.6 without it."""
    import dataclasses

    import sim.gpu_model as gm
    from sim.gpu.measure import steady

    cal = load_calibration("h100")
    assert cal.energy is not None
    assert set(cal.energy.pj_per_c_byte) == set(gm.FALLBACK_ENERGY_CLASSES)
    assert all(v > 0 for v in cal.energy.pj_per_c_byte.values())
    # near the HBM's energy per byte for one element an access, less for two
    assert (cal.energy.pj_per_c_byte["align2"] < cal.energy.pj_per_c_byte["align1"]
            < 1.5 * cal.energy.hbm_pj_per_byte)
    aligned = Kernel(op="gemm", dtype="bf16", M=512, N=4096, K=4096)
    odd = Kernel(op="gemm", dtype="bf16", M=513, N=4095, K=4095)
    assert gm.narrow_c_bytes(aligned, gm.energy_class(aligned, cal.sm_count)) == 0
    assert gm.energy_class(odd, cal.sm_count) == "align1"
    assert gm.narrow_c_bytes(odd, "align1") == 513 * 4095 * 2
    zero = dataclasses.replace(cal, energy=dataclasses.replace(cal.energy, pj_per_c_byte={}))
    errors: dict[str, list[tuple[float, float]]] = {"cal": [], "held": []}
    largest = None
    for name in ("v2e", "misaligned", "random", "store", "shortk", "longk"):
        for r in rows(DATA / f"measured_h100_{name}.csv"):
            if (r.get("status", "ok") != "ok" or r["op"] != "gemm" or not r.get("mj")
                    or not steady(r)):
                continue
            k = Kernel.from_row(r)
            if gm.energy_class(k, cal.sm_count) not in gm.FALLBACK_ENERGY_CLASSES:
                continue
            mj = float(r["mj"])
            with_it, without = (gm.predict_kernel(c, k, 700.0).mj for c in (cal, zero))
            errors[r["split"]].append((abs(with_it / mj - 1), abs(without / mj - 1)))
            if (k.M, k.N, k.K) == (5163, 7877, 23):
                largest = (mj, with_it, without)
    mape = {s: tuple(round(100 * statistics.mean(e[i] for e in v), 1) for i in (0, 1))
            for s, v in errors.items()}
    assert (len(errors["cal"]), len(errors["held"])) == (243, 165)
    assert mape == {"cal": (12.1, 13.9), "held": (13.1, 15.1)}
    assert largest is not None
    assert [round(x, 1) for x in largest] == [48.2, 41.9, 28.6]


def test_a_kernel_in_a_stream_pays_a_share_of_the_flush_write_back():
    """A kernel timed alone writes back the dirty lines the timing's L2 flush left; back to back
    in a stream it pays the calibration's share of that (fitted on the H100's back-to-back
    times, sim.gpu_model.stream_parts_us, whose doc's GEMVs are checked here). On the H200's
    runs, which no fit saw, that share predicts the back-to-back times (``us_loop``) better
    than the whole write-back or none, and within 0.002 of the best share (mean absolute log
    error); the fused decoder layers of both cards, timed as ``sim.gpu.layer`` times them
    (sim.gpu_model.timed_alone_us), are within 10% of the prediction (the whole-model
    target), and the H100's, timed back to back as a model's pass runs them
    (``us_fused_loop``), within 5% of ``tpe sim model``'s layer in a stream."""
    import dataclasses
    import math

    import sim.gpu_model as gm
    from models.llm import load_model, lower
    from sim.gpu.measure import steady
    from sim.model import simulate_model

    cal = load_calibration("h100")
    assert 0.0 < cal.stream_write_back_share < 1.0
    # the decode GEMVs of stream_parts_us's doc: back to back, with the share, whole
    whole = dataclasses.replace(cal, stream_write_back_share=1.0)
    loops = {(int(r["M"]), int(r["N"]), int(r["K"])): float(r["us_loop"])
             for r in rows(DATA / "measured_h100_v2e.csv")
             if r["op"] == "gemm" and r["dtype"] == "bf16" and r["M"] == "1"}
    gemvs = [Kernel(op="gemm", dtype="bf16", M=1, N=n, K=4096) for n in (4096, 11008)]
    assert [[round(x, 1) for x in (loops[(1, k.N, k.K)], sum(gm.stream_parts_us(c, k)))]
            for c in (cal, whole) for k in gemvs] == [[15.4, 15.4], [34.7, 36.5],
                                                      [15.4, 19.2], [34.7, 44.6]]
    h200 = load_arch("h200")
    on = gm.arch_calibration(h200)
    assert on.stream_write_back_share == cal.stream_write_back_share
    looped = [(Kernel.from_row(r), float(r["us_loop"]))
              for name in ("v2", "misaligned", "decode")
              for r in rows(DATA / f"measured_h200_{name}.csv")
              if r.get("status", "ok") == "ok" and r.get("us_loop") and steady(r)]
    assert len(looped) > 1000

    def error(share: float) -> float:
        c = dataclasses.replace(on, stream_write_back_share=share)
        return statistics.mean(abs(math.log(sum(gm.stream_parts_us(c, k)) / loop))
                               for k, loop in looped)

    fitted = error(cal.stream_write_back_share)
    assert fitted < error(0.0) - 0.005 and fitted < error(1.0) - 0.015
    assert fitted < min(error(s / 20) for s in range(21)) + 0.002
    back_to_back = 0
    for card in ("h100", "h200"):
        arch = load_arch(card)
        for r in rows(DATA / f"layer_{card}.csv"):
            cfg = load_model(r["model"])
            batch, seq = int(r["batch"]), int(r["seq"])
            res = simulate_model(arch, lower(cfg, phase=r["phase"], batch=batch, seq=seq,
                                             quant="bf16"),
                                 phase=r["phase"], batch=batch, seq=seq)
            layer = [o for o in res.ops
                     if o.count % cfg.num_layers == 0 and o.count >= cfg.num_layers]
            stream = sum(o.seconds for o in layer) / cfg.num_layers * 1e6
            alone = gm.timed_alone_us(gm.arch_calibration(arch), stream,
                                      [gm.arch_kernel(arch, o.op) for o in layer
                                       if o.kind != "vector"])
            assert alone > stream + gm.arch_calibration(arch).stream_overhead_us - 1e-9
            assert abs(alone / float(r["us_fused_graph"]) - 1) < 0.10, (card, r)
            if r.get("us_fused_loop"):  # back to back, as a model's pass runs its layers
                assert abs(stream / float(r["us_fused_loop"]) - 1) < 0.05, (card, r)
                back_to_back += 1
    assert back_to_back == len(rows(DATA / "layer_h100.csv"))


def test_the_stream_share_fit_needs_back_to_back_times_and_breaks_ties_low():
    """fit_stream_share refuses a fit without back-to-back times (naming --energy); where no
    kernel pays the flush's write-back (a small GEMM) every share fits alike: the smallest; a
    decode GEMV timed back to back at its stream time with half the write-back gives 0.5."""
    import dataclasses

    from sim.gpu.calibrate import fit_stream_share
    from sim.gpu_model import stream_parts_us as gm_stream

    cal = load_calibration("h100")
    with pytest.raises(ValueError, match=r"^--energy: .*us_loop"):
        fit_stream_share(cal, [], [])
    small = Kernel(op="gemm", dtype="bf16", M=64, N=64, K=64)
    assert fit_stream_share(cal, [small], [3.0]) == 0.0
    # a decode GEMV pays it: the share whose stream time is its back-to-back time
    gemv = Kernel(op="gemm", dtype="bf16", M=1, N=4096, K=4096)
    half = sum(gm_stream(dataclasses.replace(cal, stream_write_back_share=0.5), gemv))
    assert fit_stream_share(cal, [small, gemv], [3.0, half]) == 0.5
