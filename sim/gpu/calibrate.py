"""Fitting a GPU calibration on measured kernels (``tpe gpu calibrate``).

The kernel model (:mod:`sim.gpu_model`) has efficiencies (:data:`sim.gpu_model.FIT_PARAMS`)
that are fitted here on the calibration rows of a measured dataset only (held-out rows never
enter the fit), by Nelder-Mead on the mean absolute log error, one group of parameters and the
kernels they govern at a time. Its energy constants (:class:`sim.gpu_model.GpuEnergy`) are
fitted after them, on the calibration rows' measured energy (column ``mj``), by linear least
squares on the relative error, with the time the fitted model predicts (:func:`fit_energy`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import fields
from pathlib import Path

import numpy as np

from sim.gpu.measure import steady
from sim.gpu_model import (
    BURST_DTYPES,
    ELEM_BYTES,
    ENERGY_CLASSES,
    FALLBACK_ENERGY_CLASSES,
    FIT_PARAMS,
    L2_LINE_PJ_PER_BYTE,
    STREAM_OVERHEAD_MAX_US,
    W4A16,
    GpuBurst,
    GpuCalibration,
    GpuEnergy,
    Kernel,
    after_light_load,
    attention_scores,
    dequant_weights,
    energy_work,
    gemm_family,
    is_aligned,
    narrow_c_bytes,
    predict_us,
    stream_parts_us,
)

__all__ = ["FIT_GROUPS", "calibrate", "fit", "fit_burst", "fit_energy", "fit_group",
           "fit_quant_energy", "fit_stream_share"]


def fit_group(k: Kernel) -> str:
    """The group of parameters that governs a kernel's time (:func:`fit`): its op, but the
    quantized kernels' own (``w4a16``, ``w4a16_triton``, ``attn_decode_kivi``), the fallback
    kernels of misaligned bf16/fp16 GEMMs (``gemm_fallback``, fitted after ``gemm``),
    cuBLAS's CUDA-core kernels (``gemm_simt``, family ``gemv``: after ``gemm``, whose fixed
    cost they pay, and ``attn_decode``, whose L2 write-back they share; their parameters
    govern no other kernel), int8's align-4 and Hopper kernels (``gemm_int8_align8``) and the
    aligned fp8 and int8 tiles (``gemm_fp8``, ``gemm_int8``: after ``gemm``, whose fixed cost
    and bandwidth they share)."""
    if k.op == "gemm" and k.dtype in W4A16:
        return k.dtype
    if k.op == "gemm" and gemm_family(k) == "gemv":
        return "gemm_simt"
    if k.op == "gemm" and gemm_family(k) in ("align1", "align2"):
        return "gemm_fallback"
    if k.op == "gemm" and gemm_family(k) == "int8_align8":
        return "gemm_int8_align8"
    if k.op == "gemm" and k.dtype in ("int8", "fp8"):
        return f"gemm_{k.dtype}"
    if k.op == "attn_decode" and k.kv_dtype in ("int8", "int4"):
        return "attn_decode_kivi"
    return k.op


def _loss(cal: GpuCalibration, kernels: list[Kernel], us: np.ndarray, names: list[str],
          x: np.ndarray) -> float:
    params = dict(cal.params)
    for n, v in zip(names, x, strict=True):
        lo, hi = FIT_PARAMS[n][1:]
        params[n] = float(np.clip(v, lo, hi))
    pred = np.array([predict_us(cal, k, params) for k in kernels])
    return float(np.mean(np.abs(np.log(pred / us))))


def _nelder_mead(f, x0: np.ndarray, iters: int = 2000, step: float = 0.2) -> np.ndarray:
    n = len(x0)
    pts = [x0] + [x0 * (1 + step * np.eye(n)[i]) + (step * np.eye(n)[i] if x0[i] == 0 else 0)
                  for i in range(n)]
    vals = [f(p) for p in pts]
    for _ in range(iters):
        order = np.argsort(vals)
        pts = [pts[i] for i in order]
        vals = [vals[i] for i in order]
        if abs(vals[-1] - vals[0]) < 1e-7:
            break
        centroid = np.mean(pts[:-1], axis=0)
        xr = centroid + (centroid - pts[-1])
        fr = f(xr)
        if fr < vals[0]:
            xe = centroid + 2 * (centroid - pts[-1])
            fe = f(xe)
            pts[-1], vals[-1] = (xe, fe) if fe < fr else (xr, fr)
        elif fr < vals[-2]:
            pts[-1], vals[-1] = xr, fr
        else:
            xc = centroid + 0.5 * (pts[-1] - centroid)
            fc = f(xc)
            if fc < vals[-1]:
                pts[-1], vals[-1] = xc, fc
            else:
                pts = [pts[0] + 0.5 * (q - pts[0]) for q in pts]
                vals = [f(q) for q in pts]
    return pts[int(np.argmin(vals))]


#: The Nelder-Mead search of a parameter group restarts (from its best point, clipped to the
#: bounds) until a restart lowers the mean absolute log error by less than RESTART_TOL, at
#: most MAX_RESTARTS times: the fallback kernels' 14 parameters took 6 restarts to settle.
RESTART_TOL = 1e-4
MAX_RESTARTS = 12


#: The parameter groups :func:`fit` fits one after another, each on the kernels of its
#: :func:`fit_group`.
FIT_GROUPS: dict[str, list[str]] = {
    "gemm": ["fixed_us", "eff_128x256", "eff_128x128", "eff_64x128",
             "eff_64x64", "split_cost_us"],
    "gemm_fp8": ["fp8_rate_eff", "fp8_load_gb_per_s", "fp8_tile_k0", "fp8_bw_eff",
                 "fp8_overlap", "fp8_step_ns"],
    "gemm_int8": ["int8_eff_64x64", "int8_eff_64x128", "int8_eff_128x128",
                  "int8_eff_256x128", "int8_tile_k0", "int8_bw_eff",
                  "int8_load_gb_per_s", "int8_store_eff", "int8_overlap"],
    # before the CUDA-core kernels (gemm_simt), which share its L2 write-back
    "attn_decode": ["decode_bw_eff", "decode_fixed_us", "decode_ramp_us", "decode_ramp_mb",
                    "decode_score_rate", "decode_l2_gb_per_s", "decode_combine_us",
                    "decode_combine_split_us", "decode_tile_ns", "decode_cta_us"],
    "gemm_fallback": ["align1_rate_eff", "align1_bw_eff", "align2_rate_eff",
                      "align2_bw_eff", "fallback_fixed_us", "align1_k8_slowdown",
                      "fallback_tile_k0", "fallback_reduce_us",
                      "align1_load_gb_per_s", "align2_load_gb_per_s", "wmma_load_gb_per_s",
                      "align1_lone_step_ns"],
    "gemm_simt": ["gemv_load_gb_per_s", "gemv_ramp_mb", "simt_tflops", "gemmsn_row_ns",
                  "dot_reduce_us", "gemmsn_load_gb_per_s"],
    "gemm_int8_align8": ["int8_align8_eff", "int8_align8_load_gb_per_s", "int8_n8_fixed_us",
                         "int8_n8_eff", "int8_align8_tile_k0"],
    "attn_prefill": ["attn_rate_eff", "attn_fixed_us", "attn_score_rate",
                     "attn_diag_extra"],
    "w4a16": ["w4_bw_eff", "w4_rate_eff", "w4_overlap"],
    "w4a16_triton": ["w4t_step_ops", "w4t_col_ops", "w4t_mac_ops", "w4t_dequant_eff"],
    "attn_decode_kivi": ["kivi_fixed_us", "kivi_bw_eff", "kivi8_token_ops",
                         "kivi4_token_ops", "kivi_lone_programs"],
}


def fit(cal: GpuCalibration, kernels: list[Kernel], us: list[float],
        groups: dict[str, list[str]] | None = None,
        hold: dict[str, float] | None = None) -> dict[str, float]:
    """Fit :data:`FIT_PARAMS` on ``kernels`` (the calibration rows only) by minimizing the mean
    absolute log error, one group of parameters (and the kernels they govern) at a time, each
    search restarted until it settles (:data:`RESTART_TOL`); ``hold``: parameters kept at the
    given values, out of every search."""
    us_arr = np.asarray(us, dtype=np.float64)
    hold = hold or {}
    params = {n: v[0] for n, v in FIT_PARAMS.items()} | dict(cal.params) | hold
    cal = GpuCalibration(**{f.name: getattr(cal, f.name) for f in fields(cal)
                            if f.name != "params"}, params=params)
    groups = groups or FIT_GROUPS
    for op, names in groups.items():
        names = [n for n in names if n not in hold]
        sel = [i for i, k in enumerate(kernels) if fit_group(k) == op]
        if not sel or not names:
            continue
        ks = [kernels[i] for i in sel]
        x0 = np.array([params[n] for n in names], dtype=np.float64)

        def f(x, ks=ks, names=names, sel=sel):
            return _loss(cal, ks, us_arr[sel], names, x)

        lo, hi = (np.array([FIT_PARAMS[n][i] for n in names]) for i in (1, 2))
        best = f(x0)
        for _ in range(MAX_RESTARTS):  # restarted from within the bounds until it settles
            x0 = np.clip(_nelder_mead(f, np.clip(x0, lo, hi)), lo, hi)
            loss = f(x0)
            settled = best - loss < RESTART_TOL
            best = min(best, loss)
            if settled:
                break
        for n, v in zip(names, x0, strict=True):
            lo, hi = FIT_PARAMS[n][1:]
            params[n] = float(np.clip(v, lo, hi))
    return params


#: The burst clock's search (:func:`fit_burst`): its rate from 1 (no burst) to the boost clock
#: over the calibration's sustained clock (``BURST_MAX_MHZ``: the H100's and H200's
#: clocks.max.sm, measured_h100_env.json, measured_h200_env.json) in steps of BURST_RATE_STEP,
#: its length over BURST_US (us, log-spaced: 10 us to 10 ms, and no end).
BURST_MAX_MHZ = 1980.0
BURST_RATE_STEP = 0.01
BURST_US = (*(float(round(10 ** (1 + i / 8), 1)) for i in range(25)), math.inf)


def burst_kernels(kernels: list[Kernel]) -> list[int]:
    """The kernels the burst clock is fitted on: aligned tensor-core GEMMs of
    :data:`sim.gpu_model.BURST_DTYPES`."""
    return [i for i, k in enumerate(kernels) if k.op == "gemm" and k.dtype in BURST_DTYPES
            and is_aligned(k) and gemm_family(k) == "aligned"]


def fit_burst(cal: GpuCalibration, kernels: list[Kernel], us: list[float]) -> GpuBurst:
    """The burst clock (:class:`sim.gpu_model.GpuBurst`) on kernels timed after light load
    (their ``cal`` rows; :func:`burst_kernels`), the fitted time model kept: the rate and length
    of least mean absolute log error over a grid (:data:`BURST_US`, rates in steps of
    :data:`BURST_RATE_STEP` up to :data:`BURST_MAX_MHZ` over the sustained clock; a piecewise
    time, so a grid rather than a descent); the shorter, then the slower, of equals."""
    sel = burst_kernels(kernels)
    if not sel:
        raise ValueError("--burst: no calibration row of an aligned "
                         f"{'/'.join(BURST_DTYPES)} GEMM")
    ks = [kernels[i] for i in sel]
    meas = np.array([us[i] for i in sel])
    top = BURST_MAX_MHZ / cal.sustained_clock_mhz
    rates = np.arange(1.0, top + 1e-9, BURST_RATE_STEP)
    best: tuple[float, float, float] = (math.inf, 1.0, 0.0)
    for length in BURST_US:
        for rate in rates:
            trial = after_light_load(dataclasses.replace(
                cal, burst=GpuBurst(rate=float(rate), us=length)))
            loss = float(np.mean(np.abs(np.log(np.array([predict_us(trial, k) for k in ks])
                                                / meas))))
            if loss < best[0] - 1e-12:
                best = (loss, float(rate), length)
    return GpuBurst(rate=round(best[1], 6), us=best[2])


def fit_energy(cal: GpuCalibration, kernels: list[Kernel], mj: list[float], limit_w: float
               ) -> GpuEnergy:
    """The energy constants (:class:`sim.gpu_model.GpuEnergy`) that best predict ``mj``
    (millijoules per kernel; the calibration rows only) in relative terms, by linear least
    squares, with the time ``cal`` predicts back to back (``sim.gpu_model.stream_parts_us``:
    its fixed cost and its work in a stream); ``limit_w``: the
    card's power limit during the measurement. ``cap_w`` is the highest power the fitted
    model gives one of these kernels (rounded up), so at ``limit_w`` none is stretched.
    ``ValueError`` when a path has no kernel to fit it on or a constant comes out negative.
    The quantized kernels' paths (:data:`QUANT_ENERGY_CLASSES`) are not fitted here
    (:func:`fit_quant_energy`)."""
    classes = {c: i for i, c in enumerate(c for c in ENERGY_CLASSES
                                          if c not in QUANT_ENERGY_CLASSES)}
    narrow = {c: len(classes) + i for i, c in enumerate(FALLBACK_ENERGY_CLASSES)}
    x = np.zeros((len(kernels), 4 + len(classes) + len(narrow)))
    known = np.zeros(len(kernels))  # uJ the model gives without a fitted constant
    for i, k in enumerate(kernels):
        fixed, work = stream_parts_us(cal, k)  # measured back to back
        cls, ops, nbytes, excess = energy_work(cal, k)
        # microseconds (W -> uJ), MB (pJ/byte -> uJ), millions of operations or scores
        # (pJ/op -> uJ)
        x[i, :4] = fixed + work, work, nbytes * 1e-6, attention_scores(k) * 1e-6
        x[i, 4 + classes[cls]] = ops * 1e-6
        if cls in narrow:
            x[i, 4 + narrow[cls]] = narrow_c_bytes(k, cls) * 1e-6
        known[i] = L2_LINE_PJ_PER_BYTE * excess * 1e-6  # a constant of the card, not fitted
    uj = np.asarray(mj, dtype=np.float64) * 1e3
    for c, i in classes.items():
        if not x[:, 4 + i].any():
            raise ValueError(f"no calibration kernel of the {c} path has a measured energy "
                             "(column mj)")
    coef = np.linalg.lstsq(x / uj[:, None], 1.0 - known / uj, rcond=None)[0]
    names = ["static_w", "busy_w", "hbm_pj_per_byte", "pj_per_score",
             *(f"pj_per_op.{c}" for c in classes), *(f"pj_per_c_byte.{c}" for c in narrow)]
    for n, v in zip(names, coef, strict=True):
        if v < 0:
            raise ValueError(f"the energy fit gives {n} = {v:.3g} < 0: the measured energies "
                             "do not follow the model")
    coef = np.array([float(f"{v:.6g}") for v in coef])  # as the TOML file holds them
    cap = float(np.max((x @ coef + known) / x[:, 0]))
    return GpuEnergy(static_w=float(coef[0]), busy_w=float(coef[1]),
                     hbm_pj_per_byte=float(coef[2]), pj_per_score=float(coef[3]),
                     pj_per_op={c: float(coef[4 + i]) for c, i in classes.items()},
                     pj_per_c_byte={c: float(coef[4 + i]) for c, i in narrow.items()},
                     limit_w=limit_w, cap_w=math.ceil(cap * 1e3) / 1e3)


#: The grid :func:`fit_stream_share` searches (shares of the flush's write-back, 0 to 1).
STREAM_SHARE_GRID = tuple(i / 100 for i in range(101))


def fit_stream_share(cal: GpuCalibration, kernels: list[Kernel], us_loop: list[float]
                     ) -> float:
    """The calibration's ``stream_write_back_share`` (:func:`sim.gpu_model.stream_parts_us`):
    the share of the timing's flush write-back, on :data:`STREAM_SHARE_GRID`, whose time back
    to back in a stream best predicts ``us_loop`` (the kernels timed back to back; the energy
    fit's calibration rows) by the mean absolute log error; the smallest such share on a tie
    (the rows that pay no write-back add the same error to every share)."""
    if not kernels:
        raise ValueError("--energy: no calibration kernel of the energy fit was timed back to "
                         "back (column us_loop); measure it with --energy-s above 0")
    loop = np.log(np.asarray(us_loop, dtype=np.float64))

    def times(share: float, ks: list[Kernel]) -> np.ndarray:
        trial = dataclasses.replace(cal, stream_write_back_share=share)
        return np.array([sum(stream_parts_us(trial, k)) for k in ks])

    # a kernel's stream time grows with the share (the write-back only adds to its terms), so
    # one whose time is the same with none and with all of it has that time at every share:
    # its error is computed once, the others' at each share
    lo, hi = times(0.0, kernels), times(1.0, kernels)
    moved = lo != hi
    fixed_err = float(np.sum(np.abs(np.log(lo[~moved]) - loop[~moved])))
    paying = [k for k, m in zip(kernels, moved, strict=True) if m]
    best = (math.inf, 1.0)
    for share in STREAM_SHARE_GRID:
        err = np.abs(np.log(times(share, paying)) - loop[moved]) if paying else np.zeros(0)
        loss = (fixed_err + float(np.sum(err))) / len(kernels)
        if loss < best[0] - 1e-12:
            best = (loss, share)
    return best[1]


def fit_quant_energy(cal: GpuCalibration, e: GpuEnergy, kernels: list[Kernel], mj: list[float]
                     ) -> GpuEnergy:
    """``e`` with the energy per operation of each quantized kernel's path
    (:data:`QUANT_ENERGY_CLASSES`) and, for the int4 GEMMs, per weight their row tiles
    dequantize (:func:`sim.gpu_model.dequant_weights`) fitted on ``kernels`` (calibration rows,
    measured ``mj``), the shared constants (static and busy power, HBM bytes) kept as the other
    kernels fitted them: per path, the least squares on the relative error; where the two
    unknowns of a GEMM path would not both come out positive, the operations' alone."""
    x: dict[str, list[list[float]]] = {c: [] for c in QUANT_ENERGY_CLASSES}
    y: dict[str, list[float]] = {c: [] for c in QUANT_ENERGY_CLASSES}
    for k, m in zip(kernels, mj, strict=True):
        fixed, work = stream_parts_us(cal, k)  # measured back to back
        cls, ops, nbytes, excess = energy_work(cal, k)
        uj = m * 1e3
        base = (e.static_w * (fixed + work) + e.busy_w * work
                + (e.hbm_pj_per_byte * nbytes + e.pj_per_score * attention_scores(k)
                   + L2_LINE_PJ_PER_BYTE * excess) * 1e-6)
        x[cls].append([ops * 1e-6 / uj, dequant_weights(cal, k) * 1e-6 / uj])
        y[cls].append(1.0 - base / uj)
    pj, pj_dequant = dict(e.pj_per_op), dict(e.pj_per_dequant)
    for c in QUANT_ENERGY_CLASSES:
        if not y[c]:
            raise ValueError(f"no calibration kernel of the {c} path has a measured energy "
                             "(column mj)")
        a, b = np.asarray(x[c]), np.asarray(y[c])
        coef = np.zeros(2)
        if c in W4A16:
            coef = np.linalg.lstsq(a, b, rcond=None)[0]
        if not (coef > 0).all():
            coef = np.array([max(0.0, float(a[:, 0] @ b / (a[:, 0] @ a[:, 0]))), 0.0])
        pj[c] = float(f"{coef[0]:.6g}")
        if c in W4A16:
            pj_dequant[c] = float(f"{coef[1]:.6g}")
    return dataclasses.replace(e, pj_per_op=pj, pj_per_dequant=pj_dequant)


# -- calibration files ---------------------------------------------------------------------


def _read_csv(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


#: The parameter groups of the quantized kernels (:func:`fit_group`): the rows of ``extra``
#: files fit these only, and their energy paths.
QUANT_GROUPS = ("w4a16", "w4a16_triton", "attn_decode_kivi")
QUANT_ENERGY_CLASSES = ("w4a16", "w4a16_triton", "attention_kivi")


def calibrate(measured: Path, microbench: Path | None = None, energy: Path | None = None,
              extra: tuple[Path, ...] = (), burst: tuple[Path, ...] = (),
              hold: dict[str, float] | None = None) -> tuple[GpuCalibration, str]:
    """Fit a calibration from a measured dataset (its ``cal`` rows only) and the card's
    microbenchmarks (default: ``<measured stem>_microbench.csv`` beside it, as
    ``sim.gpu.measure`` writes them): the time model on ``measured``'s ``us``, then the energy
    constants on ``energy``'s ``mj`` (default: ``measured``; the card's power limit from
    ``<energy stem>_env.json`` beside it); returns it and its TOML text. ``extra``: measured
    files of the same card whose ``cal`` rows join the fits, but for the kernels ``measured``
    (time) or ``energy`` (energy) has too, which that file governs (e.g. the bf16-cache decode
    rows of ``measured_h100_quant.csv``), and but for the kernels a later ``extra`` file has
    (measured again, e.g. ``measured_h100_quant_graph.csv``'s CUDA-graph timing of the KIVI
    kernels): the time fit of every group, the energy fit of the
    shared constants and the dtype paths, and the quantized kernels' own energy paths
    (:data:`QUANT_ENERGY_CLASSES`, :func:`fit_quant_energy`). ``burst``: runs of the same card
    timed after light load (``sim.gpu.measure.timed_after_light_load``) whose ``cal`` rows fit
    the burst clock, the rest kept (:func:`fit_burst`; none: no ``[burst]`` table).
    ``hold``: [fitted] parameters kept at the given values (e.g. a previous calibration's),
    out of the time fit. The time fit takes the rows whose timing is steady
    (:func:`sim.gpu.measure.steady`), as ``tpe gpu check`` judges only those."""
    if microbench is None:
        microbench = measured.with_name(measured.stem + "_microbench.csv")
    energy = measured if energy is None else energy
    mb = {r["name"]: float(r["value"]) for r in _read_csv(microbench)}
    rows = [r for r in _read_csv(measured) if r.get("status", "ok") == "ok"]
    card = _card(rows, "--measured")
    base = GpuCalibration(
        card=card, sm_count=int(mb.get("sm_count", 0)) or _sm_count(measured),
        read_gb_per_s=mb["read_1gib"],
        peak_tflops={d: mb[f"peak_{d}_8192"] for d in ELEM_BYTES},
        sustained_clock_mhz=mb["sustained_sm_clock_bf16"], launch_us=mb["launch_elementwise"],
        stream_overhead_us=0.0,  # from the energy file, once it is checked (below)
        params={n: v[0] for n, v in FIT_PARAMS.items()},
    )
    e_rows = [r for r in _read_csv(energy) if r.get("status", "ok") == "ok"
              and r.get("split", "cal") == "cal" and r.get("mj")]
    if not e_rows:
        raise ValueError(f"--energy: {energy.name} has no calibration row with a measured "
                         "energy (column mj); give --energy FILE, measured with --energy-s above 0")
    if _card(e_rows, "--energy") != card:
        raise ValueError(f"--energy: {energy.name} was measured on {e_rows[0]['gpu']}, "
                         f"{measured.name} on {card}; give one card's files")
    env = energy.with_name(energy.stem + "_env.json")
    if not env.is_file():
        raise ValueError(f"--energy: no {env.name} beside {energy.name} (the card's power "
                         "limit)")
    limit_w = float(json.loads(env.read_text())["smi_before"]["power.limit"])
    overhead_us, n_short = _stream_overhead_us(energy)
    base = dataclasses.replace(base, stream_overhead_us=overhead_us)
    b_rows = _burst_rows(burst, card, measured.name)
    b_kernels = [Kernel.from_row(r) for r in b_rows]
    cal_rows = [r for r in rows if r.get("split", "cal") == "cal"]
    # the kernels measured and energy have, held out or not: an extra file's row of one of
    # them never joins a fit (its split there can differ from theirs)
    timed = {_kernel(r) for r in rows}
    metered = {_kernel(r) for r in _read_csv(energy) if r.get("status", "ok") == "ok"}
    extra_rows: list[dict[str, str]] = []
    later: set[Kernel] = set()
    for path in reversed(extra):  # a later file's kernel supersedes an earlier file's
        more = [r for r in _read_csv(path) if r.get("status", "ok") == "ok"]
        if _card(more, "--extra") != card:
            raise ValueError(f"--extra: {path.name} was measured on {more[0]['gpu']}, "
                             f"{measured.name} on {card}; give one card's files")
        kernels = {_kernel(r) for r in more}
        extra_rows[:0] = [r | {"_file": path.name} for r in more
                          if r.get("split", "cal") == "cal" and _kernel(r) not in later]
        later |= kernels
    cal_rows += [r for r in extra_rows if _kernel(r) not in timed]
    # a timing the host's launch jitter set (sim.gpu.measure.steady) is no kernel's time: it
    # fits nothing, as the checks judge nothing by it
    cal_rows = [r for r in cal_rows if steady(r)]
    params = fit(base, [Kernel.from_row(r) for r in cal_rows], [float(r["us"]) for r in cal_rows],
                 hold=hold)
    cal = dataclasses.replace(base, params=params)
    e_extra = [r for r in extra_rows if r.get("mj") and _kernel(r) not in metered
               and fit_group(Kernel.from_row(r)) not in QUANT_GROUPS]
    e_rows += e_extra
    looped = [r for r in e_rows if r.get("us_loop") and steady(r)]
    cal = dataclasses.replace(cal, stream_write_back_share=fit_stream_share(
        cal, [Kernel.from_row(r) for r in looped], [float(r["us_loop"]) for r in looped]))
    e = fit_energy(cal, [Kernel.from_row(r) for r in e_rows], [float(r["mj"]) for r in e_rows],
                   limit_w)
    q_rows = [r for r in extra_rows if r.get("mj")
              and fit_group(Kernel.from_row(r)) in QUANT_GROUPS]
    if q_rows:  # the quantized kernels' own paths, the shared constants kept
        e = fit_quant_energy(cal, e, [Kernel.from_row(r) for r in q_rows],
                             [float(r["mj"]) for r in q_rows])
    cal = dataclasses.replace(cal, energy=e)
    if burst:
        cal = dataclasses.replace(cal, burst=fit_burst(
            cal, b_kernels, [float(r["us"]) for r in b_rows]))
    lines = [
        "# GPU kernel-model calibration, written by `tpe gpu calibrate` (sim/gpu_model.py).",
        f"# [measured]: microbenchmarks of the card ({microbench.name}); [fitted]: efficiencies",
        f"# fitted on the {len(cal_rows)} 'cal' rows of "
        + " and ".join(p.name for p in (measured, *extra)) + " only",
        "# (held-out rows never enter the fit)"
        + (f"; held at their previous values: {', '.join(sorted(hold))}" if hold else "")
        + ".",
        f'card = "{card}"',
        "",
        "[measured]",
        f"sm_count = {cal.sm_count}",
        f"read_gb_per_s = {cal.read_gb_per_s:.6g}",
        f"sustained_clock_mhz = {cal.sustained_clock_mhz:.6g}",
        f"launch_us = {cal.launch_us:.6g}",
        f"# median us - us_loop of the {n_short} 'cal' rows of {energy.name} "
        f"under {STREAM_OVERHEAD_MAX_US:g} us",
        f"stream_overhead_us = {cal.stream_overhead_us:.6g}",
        "# the share of the flush's write-back (decode_ramp_us) a kernel pays back to back: the",
        f"# one that best predicts the us_loop of the energy fit's {len(looped)} 'cal' rows",
        f"stream_write_back_share = {cal.stream_write_back_share:.6g}",
        "peak_tflops = { " + ", ".join(f"{d} = {v:.6g}" for d, v in cal.peak_tflops.items())
        + " }",
        "",
        "[fitted]",
        *(f"{n} = {v:.6g}" for n, v in params.items()),
        "",
        "[energy]",
        "# E = static_w t + busy_w t_work + pj_per_op[path] ops + hbm_pj_per_byte bytes"
        + " + pj_per_score scores"
        + (" + pj_per_dequant[path] weights" if e.pj_per_dequant else "")
        + ("\n#     + pj_per_c_byte[path] narrow_c_bytes" if e.pj_per_c_byte else ""),
        f"# (sim/gpu_model.py), fitted on the {len(e_rows) - len(e_extra)} 'cal' rows of "
        f"{energy.name}"
        + (f"\n# and the {len(e_extra)} of "
           + " and ".join(sorted({r["_file"] for r in e_extra}))
           + f" (kernels {energy.name} lacks)" if e_extra else "")
        + " (their",
        "# mj) by least squares on the relative error, with the time [fitted] predicts"
        + (f"; the quantized\n# kernels' paths ({', '.join(QUANT_ENERGY_CLASSES)}) on the "
           f"{len(q_rows)} 'cal' rows of theirs in\n# "
           + " and ".join(sorted({r["_file"] for r in q_rows})) + ", the other constants kept"
           if q_rows else "") + "; limit_w:",
        f"# the card's power limit ({env.name}); cap_w: the highest power E / t of those",
        "# kernels, the power at which the model's cap binds on a card of limit_w.",
        f"static_w = {e.static_w:.6g}",
        f"busy_w = {e.busy_w:.6g}",
        f"hbm_pj_per_byte = {e.hbm_pj_per_byte:.6g}",
        f"pj_per_score = {e.pj_per_score:.6g}",
        "pj_per_op = { " + ", ".join(f"{c} = {v:.6g}" for c, v in e.pj_per_op.items()) + " }",
        *(["pj_per_dequant = { " + ", ".join(f"{c} = {v:.6g}" for c, v
                                              in e.pj_per_dequant.items()) + " }"]
          if e.pj_per_dequant else []),
        *(["pj_per_c_byte = { " + ", ".join(f"{c} = {v:.6g}" for c, v
                                             in e.pj_per_c_byte.items()) + " }"]
          if e.pj_per_c_byte else []),
        f"limit_w = {e.limit_w:.6g}",
        f"cap_w = {e.cap_w!r}",
        "",
    ]
    if cal.burst is not None:
        lines += [
            "[burst]",
            "# the clock kernels start at when timed after light load (sim/gpu_model.py GpuBurst):",
            f"# {'/'.join(BURST_DTYPES)} tensor work `rate` times faster for its first `us` "
            "microseconds; fitted on",
            f"# the {len(burst_kernels(b_kernels))} 'cal' rows of those GEMMs in "
            + " and ".join(p.name for p in burst) + ",",
            "# timed without the energy loop, by the mean absolute log error, [fitted] kept",
            f"rate = {cal.burst.rate:.6g}",
            f"us = {cal.burst.us:.6g}" if math.isfinite(cal.burst.us) else "us = inf",
            "",
        ]
    return cal, "\n".join(lines)


def _burst_rows(burst: tuple[Path, ...], card: str, measured: str) -> list[dict[str, str]]:
    """The ``cal`` rows of the ``--burst`` files, each checked: the card's, and timed after
    light load (``sim.gpu.measure.timed_after_light_load``)."""
    from sim.gpu.measure import timed_after_light_load

    out: list[dict[str, str]] = []
    for path in burst:
        more = [r for r in _read_csv(path) if r.get("status", "ok") == "ok"]
        if _card(more, "--burst") != card:
            raise ValueError(f"--burst: {path.name} was measured on {more[0]['gpu']}, "
                             f"{measured} on {card}; give one card's files")
        if not timed_after_light_load(path):
            raise ValueError(f"--burst: {path.name} was timed with the energy loop between its "
                             "rows (its _env.json records energy); give a run measured with "
                             "--energy-s 0")
        out += [r for r in more if r.get("split", "cal") == "cal"]
    return out


def _stream_overhead_us(energy: Path) -> tuple[float, int]:
    """What timing a kernel alone adds to it (``GpuCalibration.stream_overhead_us``): the
    median of ``us - us_loop`` over the calibration rows of ``energy`` timed alone under
    :data:`STREAM_OVERHEAD_MAX_US` and timed back to back too (column ``us_loop``); and how
    many rows that is."""
    rows = [r for r in _read_csv(energy) if r.get("status", "ok") == "ok"
            and r.get("split", "cal") == "cal" and r.get("us_loop")
            and float(r["us"]) < STREAM_OVERHEAD_MAX_US]
    if not rows:
        raise ValueError(f"--energy: {energy.name} has no calibration row under "
                         f"{STREAM_OVERHEAD_MAX_US:g} us timed back to back (column us_loop); "
                         "measure it with --energy-s above 0")
    return float(np.median([float(r["us"]) - float(r["us_loop"]) for r in rows])), len(rows)


def _kernel(row: dict[str, str]) -> Kernel:
    """The kernel a measured row times, a bf16 KV cache named or not (the same SDPA kernel)."""
    k = Kernel.from_row(row)
    return dataclasses.replace(k, kv_dtype="") if k.kv_dtype == "bf16" else k


def _card(rows: list[dict[str, str]], flag: str) -> str:
    """The one card a measured file's rows name."""
    cards = {r["gpu"] for r in rows}
    if len(cards) != 1:
        raise ValueError(f"{flag}: expected one card, found {sorted(cards)}")
    return cards.pop()


def _sm_count(measured: Path) -> int:
    env = measured.with_name(measured.stem + "_env.json")
    if env.exists():
        import json

        return int(json.loads(env.read_text())["sm_count"])
    raise ValueError(f"--microbench: no sm_count, and no {env.name} beside {measured.name}")
