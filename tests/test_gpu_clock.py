"""The clock a kernel is timed at (sim.gpu_model: GpuBurst, after_light_load; sim.gpu.calibrate:
fit_burst; tpe gpu check's clock state; benchmarks/gpu_clock_study.py)."""

from __future__ import annotations

import csv
import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hw.spec import SpecError, load_arch
from sim.cli import main
from sim.gpu.measure import timed_after_light_load
from sim.gpu_model import (
    BURST_DTYPES,
    GpuBurst,
    Kernel,
    after_light_load,
    arch_calibration,
    burst_us,
    load_calibration,
    predict_parts_us,
    predict_us,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "sim" / "data" / "gpu"
#: The runs timed after light load that the burst clock is fitted on (their 'cal' rows).
BURST = (DATA / "measured_h100.csv", DATA / "measured_h100_repeat.csv")


def run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_which_runs_were_timed_after_light_load():
    """The runs without the energy loop between their rows (no ``energy`` in their environment
    file) and those with it (its values kept or not)."""
    light = {p.name for p in DATA.glob("measured_*.csv") if timed_after_light_load(p)}
    assert {"measured_h100.csv", "measured_h100_repeat.csv", "measured_h200.csv",
            "measured_h100_v2_gemm_kernels.csv"} <= light
    for name in ("measured_h100_v2.csv", "measured_h100_v2_repeat.csv", "measured_h100_v2e.csv",
                 "measured_h200_v2.csv", "measured_h200_misaligned.csv",
                 "measured_h100_decode.csv"):
        assert name not in light
    # no environment file: the sustained state
    assert not timed_after_light_load(DATA / "shapes.csv")


def test_burst_time():
    """The first ``us`` microseconds of work run ``rate`` times faster, the rest as calibrated."""
    b = GpuBurst(rate=1.25, us=100.0)
    assert burst_us(None, 3e-4) == 3e-4
    assert burst_us(b, 50e-6) == pytest.approx(40e-6)  # all within the burst
    assert burst_us(b, 125e-6) == pytest.approx(100e-6)  # exactly the burst
    assert burst_us(b, 1e-3) == pytest.approx(100e-6 + (1e-3 - 125e-6))
    # never slower, and saving at most (rate - 1) x us
    for t in (1e-6, 1e-4, 1e-2):
        assert t - 25e-6 - 1e-15 <= burst_us(b, t) <= t


def test_the_burst_clock_speeds_up_only_tensor_core_gemms_of_the_capped_dtypes():
    cal = arch_calibration(load_arch("h100"))
    light = after_light_load(cal)
    assert cal.burst is not None and not cal.light_load and light.light_load
    assert 1.0 < cal.burst.rate <= 1980.0 / cal.sustained_clock_mhz and 0 < cal.burst.us < 1e4

    def gain(c, **kw) -> float:
        k = Kernel(op="gemm", **kw)
        return predict_us(cal, k) / predict_us(c, k)

    # a compute-bound GEMM within the burst: its tiles' time shrinks by the rate
    fixed, work = predict_parts_us(cal, Kernel(op="gemm", dtype="bf16", M=1024, N=4096,
                                               K=4096))
    assert work < cal.burst.us * cal.burst.rate
    fast = predict_parts_us(light, Kernel(op="gemm", dtype="bf16", M=1024, N=4096, K=4096))
    assert fast[0] == fixed and fast[1] == pytest.approx(work / cal.burst.rate, rel=0.02)
    for dtype in BURST_DTYPES:
        assert gain(light, dtype=dtype, M=2048, N=4096, K=4096) > 1.05
    # a long one gains only its first microseconds: (rate - 1) x us
    long = Kernel(op="gemm", dtype="bf16", M=8192, N=28672, K=8192)
    assert predict_us(cal, long) - predict_us(light, long) == pytest.approx(
        (cal.burst.rate - 1) * cal.burst.us, rel=0.01)
    # int8 (near the boost clock back to back anyway), memory-bound GEMVs, misaligned
    # fallback kernels and attention keep their time
    for k in (Kernel(op="gemm", dtype="int8", M=2048, N=4096, K=4096),
              Kernel(op="gemm", dtype="bf16", M=1, N=4096, K=4096),
              Kernel(op="gemm", dtype="bf16", M=2048, N=4095, K=4095),
              Kernel(op="attn_prefill", dtype="bf16", B=1, H=32, Hkv=32, S=4096, D=128)):
        assert predict_us(light, k) == predict_us(cal, k)
    # the h200 preset (the H100 calibration scaled) keeps the burst constants
    assert arch_calibration(load_arch("h200")).burst == cal.burst


def test_a_calibration_without_burst_constants_refuses_the_burst_state(tmp_path):
    text = (DATA / "calibration_h100.toml").read_text().split("[burst]")[0]
    path = tmp_path / "old.toml"
    path.write_text(text)
    cal = load_calibration(path)
    assert cal.burst is None
    with pytest.raises(SpecError, match=r"^gpu\.calibration: .* has no \[burst\] table; tpe "
                                        r"gpu calibrate --burst FILE"):
        after_light_load(cal)


def test_check_judges_each_run_in_its_clock_state(capsys):
    """The H200's first run (timed after light load) meets the finer targets at the burst clock;
    the runs with the energy loop are judged in the calibration's sustained state."""
    code, out, err = run(capsys, ["gpu", "check", "--measured",
                                  str(DATA / "measured_h200.csv")])
    assert code == 0, out + err
    assert ("timed after light load (its _env.json records no energy loop between the rows): "
            "bf16/fp16/fp8 GEMMs at the burst clock") in out
    assert re.search(r"^held-out finer targets .*: PASS \(all [0-9.]+%", out, re.M), out
    _, out, _ = run(capsys, ["gpu", "check", "--measured", str(DATA / "measured_h200_v2.csv")])
    assert "timed after light load" not in out


def test_burst_fit_sees_only_cal_rows_and_refuses_a_run_with_the_loop(tmp_path, monkeypatch):
    """fit_burst is given exactly the 'cal' rows of the --burst files (held-out times corrupted,
    the same kernels and times reach it); a run timed with the energy loop is refused before
    any fit, naming the flag."""
    import sim.gpu.calibrate as calibration

    bad = tmp_path / BURST[0].name
    with open(BURST[0], newline="") as f:
        rows = list(csv.DictReader(f))
    with open(bad, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({**r, "us": str(float(r["us"]) * 10)} if r["split"] == "held" else r)
    (tmp_path / f"{BURST[0].stem}_env.json").write_bytes(
        (DATA / f"{BURST[0].stem}_env.json").read_bytes())
    seen: list[tuple[list[Kernel], list[float]]] = []

    def spy(cal, kernels, us):
        seen.append((kernels, us))
        return GpuBurst(rate=1.0, us=0.0)

    monkeypatch.setattr(calibration, "fit_burst", spy)
    monkeypatch.setattr(calibration, "fit", lambda base, kernels, us, hold=None: dict(base.params))
    measured, energy = DATA / "measured_h100_v2.csv", DATA / "measured_h100_v2e.csv"
    calibration.calibrate(measured, energy=energy, burst=(bad,))
    calibration.calibrate(measured, energy=energy, burst=BURST[:1])
    cal_rows = [r for r in rows if r["split"] == "cal" and r.get("status", "ok") == "ok"]
    assert len(seen) == 2 and seen[0] == seen[1]
    assert seen[0][1] == [float(r["us"]) for r in cal_rows] and 0 < len(cal_rows) < len(rows)
    with pytest.raises(ValueError, match=r"^--burst: measured_h100_v2e\.csv was timed with the "
                                         r"energy loop between its rows"):
        calibration.calibrate(measured, energy=energy, burst=(energy,))


def test_the_clock_study_runs(tmp_path):
    out = tmp_path / "study.csv"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_clock_study.py"),
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    for n in range(1, 7):
        assert f"## {n}. " in proc.stdout
    assert "nvjet_sm90_hsh_192x128" in proc.stdout  # the H100's kernel of the H200's miss
    with open(out, newline="") as f:
        got = list(csv.DictReader(f))
    assert {r["run"] for r in got} >= {"measured_h100.csv", "measured_h200.csv"}
    assert all(float(r["us"]) > 0 and float(r["predicted_us"]) > 0 for r in got)


def test_calibration_keeps_the_burst_through_scaling():
    cal = load_calibration("h100")
    again = dataclasses.replace(cal, light_load=True)
    assert after_light_load(cal) == again


def predicted_us(capsys, shapes: Path, out: Path, *extra: str) -> list[float]:
    """``tpe gpu predict --gpu h100`` of ``shapes`` (with the options ``extra``) into ``out``:
    each row's ``us``."""
    code, _, err = run(capsys, ["gpu", "predict", "--gpu", "h100", "--in", str(shapes),
                                "--out", str(out), *extra])
    assert code == 0, err
    with open(out, newline="") as f:
        return [float(r["us"]) for r in csv.DictReader(f)]


def test_predict_after_light_load(capsys, tmp_path):
    """``tpe gpu predict --after-light-load``: the burst clock's times, the rest as without."""
    shapes = tmp_path / "s.csv"
    shapes.write_text("op,dtype,M,N,K,B,H,Hkv,S,D\ngemm,bf16,2048,4096,4096,,,,,\n"
                      "gemm,int8,2048,4096,4096,,,,,\ngemm,bf16,1,4096,4096,,,,,\n")
    sustained, light = (predicted_us(capsys, shapes, tmp_path / f"p{i}.csv", *extra)
                        for i, extra in enumerate(([], ["--after-light-load"])))
    assert light[0] < sustained[0] / 1.05 and light[1:] == sustained[1:]


def test_predict_replayed_is_what_check_compares_a_replayed_run_with(capsys, tmp_path):
    """``tpe gpu predict --replayed``: the GEMMs of the paths fitted on launched timings pay
    GRAPH_REPLAY_US more, the rest as without; and on a run timed replayed
    (measured_h100_random_graph.csv, whose _env.json command has --graph) its times are the
    ones ``tpe gpu check`` compares the run with (one answer for one question)."""
    from sim.cli.gpu import _kernels, _predict
    from sim.gpu.measure import timed_replayed
    from sim.gpu_model import GRAPH_REPLAY_US

    shapes = tmp_path / "s.csv"
    shapes.write_text("op,dtype,M,N,K,B,H,Hkv,S,D,group\ngemm,bf16,2048,4096,4096,,,,,,\n"
                      "gemm,w4a16,1,4096,4096,,,,,,128\n"
                      "attn_decode,bf16,,,,8,32,8,4096,128,\n")
    launched, replayed = (predicted_us(capsys, shapes, tmp_path / f"p{i}.csv", *extra)
                          for i, extra in enumerate(([], ["--replayed"])))
    assert replayed[0] == pytest.approx(launched[0] + GRAPH_REPLAY_US, abs=1e-3)
    assert replayed[1:] == launched[1:]  # W4A16 fitted on replays; attention as fitted

    measured = DATA / "measured_h100_random_graph.csv"
    assert timed_replayed(measured)
    predicted = predicted_us(capsys, measured, tmp_path / "graph.csv", "--replayed")
    with open(measured, newline="") as f:
        rows = list(csv.DictReader(f))
    checked = _predict(load_arch("h100"), _kernels(rows, "--in"), False, True)
    assert predicted == pytest.approx([e.us for e in checked], abs=5e-4)
