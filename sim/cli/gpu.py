"""``tpe gpu measure | predict | check | calibrate``: GPU presets against measured kernels.

* ``measure`` times the kernels of a shapes.csv on the GPU it runs on (:mod:`sim.gpu.measure`;
  needs torch, triton and an NVIDIA GPU; exits 2 saying so otherwise);
* ``predict`` predicts them on a GPU preset (:mod:`sim.gpu_model`; no GPU, no torch): time
  ``us`` and energy ``mj`` per kernel;
* ``check`` compares a measured file with the prediction: MAPE, p90 and max error per op and
  dtype, Spearman rank correlation, separately for the held-out and calibration rows, and a
  predicted-vs-measured plot; the energy's MAPE and p90 beside them where the file has
  measured energy (column ``mj``); exit 1 when the held-out rows miss the targets
  (MAPE <= 10 % and Spearman >= 0.95 for each of gemm and attention; energy MAPE <= 15 %);
* ``calibrate`` fits a calibration file from a measured dataset's calibration rows and the
  card's microbenchmarks, the time and the energy constants.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.caches import memo

if TYPE_CHECKING:
    from hw.spec import ArchSpec

__all__ = ["SHAPE_COLUMNS", "TARGET_ENERGY_MAPE", "TARGET_MAPE", "TARGET_SPEARMAN", "UNSTEADY",
           "check_rows", "finer_verdict", "register"]

#: The targets on held-out kernels, for each of gemm and attention.
TARGET_MAPE = 0.10
TARGET_SPEARMAN = 0.95
TARGET_ENERGY_MAPE = 0.15
#: The finer targets on held-out kernels: every category (op, dtype, aligned or not, head dim,
#: causal or not) of at least :data:`CATEGORY_MIN_N` kernels within :data:`TARGET_MAPE`, and all
#: held-out kernels together within these (reported beside the family targets; the exit status
#: follows the family targets).
TARGET_OVERALL_MAPE = 0.07
TARGET_OVERALL_SPEARMAN = 0.97
CATEGORY_MIN_N = 5
SHAPE_COLUMNS = ("op", "dtype", "M", "N", "K", "B", "H", "Hkv", "S", "D")
#: The group of :func:`check_rows` that holds the rows whose timing stayed unsteady
#: (:func:`sim.gpu.measure.steady`): shown, never judged.
UNSTEADY = "unsteady"


def register(subparsers: Any) -> None:
    gpu = subparsers.add_parser(
        "gpu", help="GPU presets against measured kernels",
        description="Time kernels on a GPU (measure), predict them on a GPU preset without "
        "one (predict), compare the two (check), fit a calibration (calibrate).")
    group = gpu.add_subparsers(dest="gpu_command", metavar="WHAT", parser_class=type(gpu))
    group.required = True

    group.add_parser("measure", help="time a shapes.csv on this machine's GPU",
                     fill=_measure_args)

    group.add_parser("predict", help="predict a shapes.csv on a GPU preset (no GPU needed)",
                     fill=_predict_args)
    group.add_parser("check", help="predicted vs measured: errors, rank correlation, plot",
                     fill=_check_args)

    k = group.add_parser("calibrate", help="fit a calibration from a measured dataset")
    k.add_argument("--measured", required=True, help="measured.csv (its 'cal' rows are used)")
    k.add_argument("--microbench", default=None,
                   help="the card's microbenchmarks (default <measured stem>_microbench.csv)")
    k.add_argument("--energy", default=None,
                   help="measured.csv whose energy (column mj, its 'cal' rows) the energy "
                        "constants are fitted on (default: --measured)")
    k.add_argument("--extra", action="append", default=[], metavar="FILE",
                   help="another measured.csv of the same card whose 'cal' rows join the "
                        "fit, but for kernels --measured (or --energy) has too (repeatable; "
                        "a later file's kernel supersedes an earlier file's; e.g. "
                        "sim/data/gpu/measured_h100_quant.csv, "
                        "sim/data/gpu/measured_h100_misaligned.csv)")
    k.add_argument("--burst", action="append", default=[], metavar="FILE",
                   help="a measured.csv of the same card timed after light load (measured "
                        "with --energy-s 0) whose 'cal' rows fit the clock kernels start at "
                        "(repeatable; e.g. sim/data/gpu/measured_h100.csv)")
    k.add_argument("--hold", action="append", default=[], metavar="NAME",
                   help="a [fitted] parameter kept at its value in the --out file as it is, "
                        "out of the fit, or a group the fit fits together (gemm, gemm_fp8, "
                        "gemm_int8, gemm_fallback, gemm_simt, attn_decode, ...): all its "
                        "parameters (repeatable; e.g. --hold gemm --hold int8_bw_eff)")
    k.add_argument("--out", required=True, help="calibration TOML to write")
    k.set_defaults(func=run_calibrate)


def _measure_args(m: argparse.ArgumentParser) -> None:
    from sim.gpu.measure import add_options  # the options python -m sim.gpu.measure takes

    add_options(m)
    m.set_defaults(func=run_measure)


def _predict_args(p: argparse.ArgumentParser) -> None:
    """``tpe gpu predict``'s options (added when it is chosen: ``--gpu``'s help reads the
    presets)."""
    _gpu_arg(p, required=True)
    p.add_argument("--in", dest="inp", required=True, help="shapes.csv")
    p.add_argument("--out", required=True, help="predicted.csv to write")
    p.add_argument("--after-light-load", action="store_true",
                   help="time the kernels as timed after light load (a cool card, no "
                        "sustained load before them: bf16/fp16/fp8 GEMMs at the burst clock; "
                        "default: the sustained state, as the calibration's kernels ran)")
    p.add_argument("--replayed", action="store_true",
                   help="time the kernels as timed replayed from a CUDA graph of one call "
                        "(tpe gpu measure --graph: bf16/fp16/fp8/int8 GEMMs pay the replay's "
                        "fixed cost; default: launched, as the GEMMs were fitted)")
    p.set_defaults(func=run_predict)


def _check_args(c: argparse.ArgumentParser) -> None:
    """``tpe gpu check``'s options (as :func:`_predict_args`)."""
    c.add_argument("--measured", required=True, help="measured.csv (from tpe gpu measure)")
    _gpu_arg(c, required=False)
    c.add_argument("--plot", default=None, metavar="FILE", help="write predicted vs measured")
    c.set_defaults(func=run_check)


@memo(maxsize=None)
def gpu_presets() -> tuple[str, ...]:
    """The presets with a ``[gpu]`` table (read once, unvalidated: the parser's help needs
    only their names)."""
    from hw.spec import list_presets, load_arch_dict

    return tuple(n for n in list_presets() if "gpu" in load_arch_dict(n))


def _gpu_arg(p: argparse.ArgumentParser, *, required: bool) -> None:
    p.add_argument("--gpu", required=required,
                   help=f"GPU preset ({', '.join(gpu_presets())}) or a TOML with a [gpu] table"
                   + ("" if required else "; default: from the measured file's gpu column"))


def _gpu_arch(name: str) -> ArchSpec:
    from hw.spec import load_arch
    from sim.errors import InputError

    arch = load_arch(name)
    if arch.gpu is None:
        raise InputError(f"--gpu: {name} is not a GPU preset (no [gpu] table); use one of "
                         + ", ".join(gpu_presets()))
    return arch


def _read(path: str, flag: str) -> list[dict[str, str]]:
    from sim.errors import InputError

    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            fields = reader.fieldnames or []
    except OSError as err:
        raise InputError(f"{flag}: cannot read {path!r} ({err.strerror})") from None
    missing = [c for c in SHAPE_COLUMNS if c not in fields]
    if missing:
        raise InputError(f"{flag}: {path}: missing column(s) {', '.join(missing)}; a shapes "
                         f"file has {','.join(SHAPE_COLUMNS)}")
    return rows


def _kernels(rows: list[dict[str, str]], flag: str, lines: list[int] | None = None
             ) -> list[Any]:
    """Each row's kernel, checked; ``lines``: the rows' line numbers in their file (default:
    the rows are the file's, from line 2)."""
    from sim.errors import InputError
    from sim.gpu_model import read_kernel

    out = []
    for line, row in zip(lines or range(2, len(rows) + 2), rows, strict=True):
        try:
            k = read_kernel(row)  # (its ValueErrors name the column)
        except ValueError as err:
            raise InputError(f"{flag}: line {line}: {err}") from None
        out.append(k)
    return out


def _predict(arch: ArchSpec, kernels: list[Any], light_load: bool = False,
             graph: bool = False) -> list[Any]:
    """Each kernel's :class:`sim.gpu_model.KernelEstimate` on the preset; ``light_load``: timed
    after light load, at the burst clock (:func:`sim.gpu_model.after_light_load`); ``graph``:
    timed replayed from a CUDA graph of one call (:func:`sim.gpu_model.replayed`)."""
    from hw.spec import SpecError
    from sim.gpu_model import (
        after_light_load,
        arch_calibration,
        predict_kernel,
        replayed,
        tensor_dtype,
    )

    assert arch.gpu is not None
    cal = arch_calibration(arch)
    if light_load:
        cal = after_light_load(cal)
    if graph:
        cal = replayed(cal)
    out = []
    for k in kernels:
        if tensor_dtype(k) not in arch.gpu.dtypes:
            raise SpecError(f"--gpu: {arch.name} has no {tensor_dtype(k)} tensor cores (it has "
                            f"{', '.join(arch.gpu.dtypes)})")
        out.append(predict_kernel(cal, k, arch.gpu.board_power_w))
    return out


def run_measure(args: argparse.Namespace) -> int:
    from sim.errors import InputError
    from sim.files import output_file
    from sim.gpu.measure import MeasureError, measure, read_shapes, select_rows

    out = output_file(args.out, "--out", suffixes=(".csv",))
    try:
        rows = select_rows(read_shapes(args.inp), args.skip, args.limit)
        measure(rows, out, budget_ms=args.budget_ms, triton_gemm=not args.no_triton,
                micro=not args.no_micro, energy_s=args.energy_s, kernels=args.kernels,
                graph=args.graph, command=" ".join(["tpe gpu measure", *sys.argv[3:]]))
    except MeasureError as err:
        raise InputError(str(err)) from None
    print(f"wrote {args.out}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from sim.files import output_file, replacing

    out = output_file(args.out, "--out", suffixes=(".csv",))
    arch = _gpu_arch(args.gpu)
    rows = _read(args.inp, "--in")
    predicted = _predict(arch, _kernels(rows, "--in"), args.after_light_load, args.replayed)
    # the input's own columns pass through, but for the ones this writes (a measured file's
    # us, mj and gpu are replaced, not repeated); us_stream: the kernel back to back in a
    # stream, what tpe sim charges it in a model's pass
    mine = ("us", "us_stream", "mj", "gpu")
    fields = [*SHAPE_COLUMNS, *[c for c in (rows[0] if rows else {})
                                if c not in SHAPE_COLUMNS and c not in mine], *mine]
    with replacing(out) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for row, est in zip(rows, predicted, strict=True):
            w.writerow({**row, "us": f"{est.us:.3f}", "us_stream": f"{est.stream_us:.3f}",
                        "mj": f"{est.mj:.5g}", "gpu": arch.name})
    print(f"wrote {out} ({len(rows)} kernels on {arch.name})")
    if not arch.gpu.validated:
        from sim.cli.sim import validation_note

        print(validation_note(arch)[0].strip())
    return 0


def _infer_gpu(rows: list[dict[str, str]]) -> str:
    from sim.errors import InputError

    cards = {r.get("gpu", "") for r in rows}
    if len(cards) != 1 or not next(iter(cards)):
        raise InputError("--gpu: the measured file names no single card in its gpu column; "
                         "give --gpu")
    card = next(iter(cards)).lower()
    for name in gpu_presets():
        if name in card.replace(" ", ""):
            return name
    raise InputError(f"--gpu: no preset for the card {next(iter(cards))!r}; give --gpu")


def _ranks(x: list[float]) -> Any:
    """Ranks 1..n, tied values sharing their average rank (as scipy.stats.rankdata)."""
    import numpy as np

    values, inverse, counts = np.unique(np.asarray(x), return_inverse=True, return_counts=True)
    del values
    ends = np.cumsum(counts)
    return ((ends - counts + 1 + ends) / 2.0)[inverse]


def _spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation (Pearson's on the tie-averaged ranks)."""
    import numpy as np

    ra, rb = _ranks(a), _ranks(b)
    if len(a) < 2 or ra.min() == ra.max() or rb.min() == rb.max():
        return math.nan  # undefined: fewer than two kernels, or every value alike
    return float(np.corrcoef(ra, rb)[0, 1])


def _stats(pairs: list[tuple[float, float]]) -> dict[str, float]:
    import numpy as np

    pred = np.array([p for p, _ in pairs])
    meas = np.array([m for _, m in pairs])
    err = np.abs(pred - meas) / meas
    return {"n": len(pairs), "mape": float(err.mean()), "p90": float(np.quantile(err, 0.9)),
            "max": float(err.max()), "spearman": _spearman(list(pred), list(meas))}


def category(row: dict[str, str]) -> str:
    """A measured row's category, finer than ``op/dtype``: a GEMM's alignment
    (``misaligned`` where the library has no kernel for the shape as it is: bf16/fp16 with an
    inner dimension off a multiple of 8, fp8/int8 off their kernels' alignment, run padded),
    attention's head dim and, for prefill, whether it is causal."""
    from sim.gpu_model import Kernel, is_aligned

    k = Kernel.from_row(row)
    base = f"{k.op}/{k.dtype}"
    if k.op == "gemm":
        return f"{base}/{'aligned' if is_aligned(k) else 'misaligned'}"
    mask = "" if k.op != "attn_prefill" else ("/causal" if k.causal else "/noncausal")
    cache = f"/kv_{k.kv_dtype}" if k.kv_dtype in ("int8", "int4") else ""
    return f"{base}/d{k.D}{mask}{cache}"


def check_rows(rows: list[dict[str, str]], predicted: list[Any]
               ) -> dict[tuple[str, str, str], dict[str, float]]:
    """Statistics per (split, family, group): family ``gemm`` or ``attention``, group ``all``,
    ``op/dtype`` or a :func:`category` within it, over the rows whose timing is steady
    (:func:`sim.gpu.measure.steady`); the others in group :data:`UNSTEADY` alone (shown, never
    judged).
    ``predicted``: each row's :class:`sim.gpu_model.KernelEstimate`. The time's ``n``,
    ``mape``, ``p90``, ``max`` and ``spearman``, and the energy's ``mj_n``, ``mj_mape`` and
    ``mj_p90`` over every row of the group with a measured energy (column ``mj``, measured
    over a loop of the kernel, steady timing or not; ``mj_n`` 0 and the others NaN
    without)."""
    import numpy as np

    from sim.gpu.measure import steady

    timed: dict[tuple[str, str, str], list[tuple[Any, dict[str, str]]]] = {}
    metered: dict[tuple[str, str, str], list[tuple[Any, dict[str, str]]]] = {}
    for row, est in zip(rows, predicted, strict=True):
        family = "gemm" if row["op"] == "gemm" else "attention"
        split = row.get("split") or "all"
        keys = ((split, family, "all"), (split, family, f"{row['op']}/{row['dtype']}"),
                (split, family, category(row)))
        for key in keys if steady(row) else ((split, family, UNSTEADY),):
            timed.setdefault(key, []).append((est, row))
        # the energy, measured over a back-to-back loop of the kernel (not the timing's
        # repetitions), judged on every row that has it
        for key in keys if row.get("mj") else ():
            metered.setdefault(key, []).append((est, row))
    out = {}
    for key, pairs in sorted(timed.items()):
        st = _stats([(e.us, float(r["us"])) for e, r in pairs])
        energy = [(e.mj, float(r["mj"])) for e, r in metered.get(key, ())]
        err = np.array([abs(p - m) / m for p, m in energy])
        st |= {"mj_n": len(energy), "mj_mape": float(err.mean()) if energy else math.nan,
               "mj_p90": float(np.quantile(err, 0.9)) if energy else math.nan}
        out[key] = st
    return out


#: The measured columns ``tpe gpu check`` reads, and what each holds (``us`` required).
MEASURED_VALUES = {"us": "microseconds", "mj": "millijoules", "us_p20": "microseconds",
                   "us_p80": "microseconds"}


def _check_measured(row: dict[str, str], line: int) -> None:
    """A measured row's values that the check reads: positive finite numbers (``us``, and
    ``mj``, ``us_p20``, ``us_p80`` where given)."""
    from sim.errors import InputError

    for col, unit in MEASURED_VALUES.items():
        text = row.get(col)
        if col != "us" and not text:
            continue
        try:
            v = float(text or "")
        except ValueError:
            v = math.nan
        if not (math.isfinite(v) and v > 0):
            raise InputError(f"--measured: line {line}: {col}: must be a positive number of "
                             f"{unit} (got {text!r})")


def run_check(args: argparse.Namespace) -> int:
    from sim.errors import InputError
    from sim.files import IMAGE_SUFFIXES, output_file

    plot = output_file(args.plot, "--plot", suffixes=IMAGE_SUFFIXES) if args.plot else None

    picked = [(line, r) for line, r in enumerate(_read(args.measured, "--measured"), start=2)
              if r.get("status", "ok") == "ok" and r.get("us")]
    if not picked:
        raise InputError(f"--measured: {args.measured} has no measured rows (column us)")
    for line, r in picked:
        _check_measured(r, line)
    rows, lines = [r for _, r in picked], [line for line, _ in picked]
    arch = _gpu_arch(args.gpu or _infer_gpu(rows))
    from sim.gpu.measure import timed_after_light_load, timed_replayed

    light = timed_after_light_load(Path(args.measured))
    graph = timed_replayed(Path(args.measured))
    predicted = _predict(arch, _kernels(rows, "--measured", lines), light, graph)
    stats = check_rows(rows, predicted)
    print(f"{args.measured} ({len(rows)} kernels, card {rows[0].get('gpu', '?')}) against "
          f"the {arch.name} preset")
    if light:  # else the sustained state, the calibration's
        print("timed after light load (its _env.json records no energy loop between the "
              "rows): bf16/fp16/fp8 GEMMs at the burst clock")
    if graph:
        print("replayed from CUDA graphs (its _env.json's command has --graph): bf16/fp16/fp8/"
              "int8 GEMMs pay the replay's cost (sim.gpu_model.GRAPH_REPLAY_US)")
    print(f"{'split':<6}{'family':<11}{'group':<32}{'n':>5}{'MAPE':>8}{'p90':>8}{'max':>8}"
          f"{'Spearman':>10}{'mJ MAPE':>9}{'mJ p90':>8}")
    for (split, family, group), s in stats.items():
        energy = (f"{s['mj_mape']:>9.1%}{s['mj_p90']:>8.1%}" if s["mj_n"]
                  else f"{'-':>9}{'-':>8}")
        rho = f"{s['spearman']:>10.3f}" if math.isfinite(s["spearman"]) else f"{'-':>10}"
        print(f"{split:<6}{family:<11}{group:<32}{s['n']:>5}{s['mape']:>8.1%}{s['p90']:>8.1%}"
              f"{s['max']:>8.1%}{rho}{energy}")
    shaky = sum(s["n"] for (_, _, group), s in stats.items() if group == UNSTEADY)
    if shaky:
        print(f"{UNSTEADY}: {shaky} rows whose timing stayed unsteady after the measurement's "
              "retries (80th percentile above 1.3 times the 20th: the host's launch jitter set "
              "the median), shown apart, not judged")
    targets = [s for (split, _, group), s in stats.items() if split == "held" and group == "all"]
    ok = bool(targets) and all(s["mape"] <= TARGET_MAPE and s["spearman"] >= TARGET_SPEARMAN
                               for s in targets)
    if plot is not None:
        _plot(rows, [e.us for e in predicted], plot, arch.name, stats)
        print(f"plot: {plot}")
    verdict = "PASS" if ok else "FAIL"
    print(f"held-out targets (MAPE <= {TARGET_MAPE:.0%}, Spearman >= {TARGET_SPEARMAN} for "
          f"each of gemm and attention): {verdict}")
    if targets and all(s["mj_n"] for s in targets):
        energy_ok = all(s["mj_mape"] <= TARGET_ENERGY_MAPE for s in targets)
        ok = ok and energy_ok
        print(f"held-out energy targets (MAPE <= {TARGET_ENERGY_MAPE:.0%} for each of gemm and "
              f"attention): {'PASS' if energy_ok else 'FAIL'}")
    else:
        print("held-out energy: not checked (the measured file has no energy, column mj)")
    print(f"held-out finer targets (all kernels MAPE <= {TARGET_OVERALL_MAPE:.0%} and Spearman "
          f">= {TARGET_OVERALL_SPEARMAN}, every category of {CATEGORY_MIN_N} or more kernels "
          f"MAPE <= {TARGET_MAPE:.0%}): {finer_verdict(rows, predicted, stats)}")
    return 0 if ok else 1


def finer_verdict(rows: list[dict[str, str]], predicted: list[Any],
                  stats: dict[tuple[str, str, str], dict[str, float]]) -> str:
    """The verdict on the finer targets (:data:`TARGET_OVERALL_MAPE`, every category's
    :data:`TARGET_MAPE`): ``PASS (...)``, or ``FAIL (...)`` naming what misses them, or
    ``not checked (...)``; ``stats`` from :func:`check_rows` of the same rows."""
    from sim.gpu.measure import steady

    held = [(e.us, float(r["us"])) for r, e in zip(rows, predicted, strict=True)
            if r.get("split") == "held" and steady(r)]
    if not held:
        return "not checked (no held-out rows with a steady timing)"
    overall = _stats(held)
    misses = []
    if not math.isfinite(overall["spearman"]):
        # (a NaN compares false: it would pass)
        misses.append(f"all {overall['mape']:.2%}, Spearman undefined over {len(held)} "
                      "held-out kernel(s): it needs two or more of different times")
    elif overall["mape"] > TARGET_OVERALL_MAPE or overall["spearman"] < TARGET_OVERALL_SPEARMAN:
        misses.append(f"all {overall['mape']:.2%}, Spearman {overall['spearman']:.3f}")
    misses += [f"{group} {s['mape']:.1%}" for (split, _, group), s in stats.items()
               if split == "held" and group.count("/") >= 2 and s["n"] >= CATEGORY_MIN_N
               and s["mape"] > TARGET_MAPE]
    if not misses:
        return f"PASS (all {overall['mape']:.1%}, Spearman {overall['spearman']:.3f})"
    return f"FAIL ({'; '.join(misses)})"


def _plot(rows: list[dict[str, str]], predicted: list[float], path: Path, gpu: str,
          stats: dict[tuple[str, str, str], dict[str, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.6), layout="constrained")
    groups: dict[str, list[tuple[float, float, str]]] = {}
    for r, p in zip(rows, predicted, strict=True):
        groups.setdefault(f"{r['op']} {r['dtype']}", []).append(
            (float(r["us"]), p, r.get("split", "")))
    for label, pts in sorted(groups.items()):
        for split, marker in (("held", "o"), ("cal", "x"), ("", ".")):
            sel = [(m, p) for m, p, s in pts if s == split]
            if sel:
                ax.loglog([m for m, _ in sel], [p for _, p in sel], marker, ms=4, alpha=0.75,
                          label=f"{label} ({split or 'all'})")
    lo = min(min(float(r["us"]) for r in rows), min(predicted)) / 1.5
    hi = max(max(float(r["us"]) for r in rows), max(predicted)) * 1.5
    ax.loglog([lo, hi], [lo, hi], "k-", lw=1)
    ax.loglog([lo, hi], [lo * 1.1, hi * 1.1], "k:", lw=0.8)
    ax.loglog([lo, hi], [lo / 1.1, hi / 1.1], "k:", lw=0.8)
    title = ", ".join(f"{fam} {s['mape']:.1%} MAPE, rho {s['spearman']:.3f}"
                      for (split, fam, g), s in stats.items() if split == "held" and g == "all")
    ax.set_title(f"{gpu} preset vs measured ({rows[0].get('gpu', '')})\nheld out: {title}",
                 fontsize=8)
    ax.set_xlabel("measured (us)")
    ax.set_ylabel("predicted (us)")
    ax.legend(fontsize=6, ncol=2)
    from sim.files import replacing

    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=130)
    plt.close(fig)


def _held(names: list[str], out: Path) -> dict[str, float]:
    """``--hold``'s parameters (a group's: all of it, :data:`sim.gpu.calibrate.FIT_GROUPS`)
    and their values in the calibration file ``out`` as it is."""
    import tomllib

    from sim.errors import InputError
    from sim.gpu.calibrate import FIT_GROUPS
    from sim.gpu_model import FIT_PARAMS

    if not names:
        return {}
    unknown = [n for n in names if n not in FIT_PARAMS and n not in FIT_GROUPS]
    if unknown:
        raise InputError(f"--hold: {unknown[0]!r} is neither a fitted parameter nor a group of "
                         f"them; give one of {', '.join(FIT_PARAMS)} or of the groups "
                         f"{', '.join(FIT_GROUPS)}")
    if not out.is_file():
        raise InputError(f"--hold: --out {str(out)!r} does not exist yet (the held values are "
                         "its [fitted] ones); give an existing calibration file")
    names = list(dict.fromkeys(p for n in names for p in FIT_GROUPS.get(n, [n])))
    fitted = tomllib.loads(out.read_text()).get("fitted", {})
    missing = [n for n in names if n not in fitted]
    if missing:
        raise InputError(f"--hold: {out} has no [fitted] {missing[0]}; leave it out of --hold")
    return {n: float(fitted[n]) for n in names}


def run_calibrate(args: argparse.Namespace) -> int:
    from sim.errors import InputError
    from sim.files import output_file, replacing
    from sim.gpu.calibrate import calibrate

    out = output_file(args.out, "--out", suffixes=(".toml",))
    measured = Path(args.measured)
    if not measured.is_file():
        raise InputError(f"--measured: no such file {args.measured!r}")
    mb = Path(args.microbench) if args.microbench else None
    if mb is not None and not mb.is_file():
        raise InputError(f"--microbench: no such file {args.microbench!r}")
    energy = Path(args.energy) if args.energy else None
    if energy is not None and not energy.is_file():
        raise InputError(f"--energy: no such file {args.energy!r}")
    extra = tuple(Path(f) for f in args.extra)
    for f in extra:
        if not f.is_file():
            raise InputError(f"--extra: no such file {str(f)!r}")
    burst = tuple(Path(f) for f in args.burst)
    for f in burst:
        if not f.is_file():
            raise InputError(f"--burst: no such file {str(f)!r}")
    hold = _held(args.hold, out)
    try:
        _, text = calibrate(measured, mb, energy, extra, burst, hold)
    except (KeyError, ValueError, OSError) as err:
        if isinstance(err, ValueError) and str(err).startswith("--"):  # names its flag
            raise InputError(str(err)) from None
        raise InputError(f"--measured: cannot calibrate from {args.measured}: {err}") from None
    with replacing(out) as tmp:
        tmp.write_text(text)
    print(f"wrote {out}")
    return 0
