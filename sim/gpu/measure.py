"""Time GEMM and attention kernels on the GPU this runs on (``tpe gpu measure``).

Each row of a shapes.csv (``op,dtype,M,N,K,B,H,Hkv,S,D``) is run with random data
through the kernel a deployment would use:

* ``gemm`` bf16 / fp16: ``torch.nn.functional.linear`` (cuBLAS; ``x[M, K] @ W[N, K]^T``, the
  weight layout of an LLM), and for bf16 also the project's own Triton GEMM
  (:func:`_triton_matmul`, column ``us_triton``, checked against torch);
* ``gemm`` fp8: ``torch._scaled_mm`` (E4M3 operands, per-tensor fp32 scales, bf16 out);
* ``gemm`` int8: ``torch._int_mm`` (int32 out);
* ``gemm`` w4a16: PyTorch's int4 weight-only GEMM, ``torch.ops.aten._weight_int4pack_mm``
  (bf16 activations; int4 weights packed by ``aten._convert_weight_to_int4pack`` from a
  ``uint8[N, K/2]`` of two codes a byte, the nibble order found at the first row; a bf16
  ``scales_and_zeros[K/group, N, 2]``; group size in the optional ``group`` column, default
  128); ``w4a16_triton``: the project's Triton kernel (:func:`sim.gpu.kernels.w4a16_matmul`).
  Both are checked against the dequantized weights' product in fp32: column ``rel_err``,
  status ``result wrong`` above 2e-2;
* ``attn_prefill`` / ``attn_decode``: ``torch.nn.functional.scaled_dot_product_attention``
  (bf16, ``enable_gqa`` when ``Hkv < H``; decode is one query token per sequence against
  ``S`` cached keys). Prefill is causal unless the optional ``causal`` column says 0. Decode
  with the optional ``kv_dtype`` column int8 or int4 runs the project's KIVI kernel
  (:func:`sim.gpu.kernels.kivi_decode`) over a cache quantized as KIVI does, checked against
  SDPA over the dequantized cache in fp32 (``rel_err``); on a ``kv_dtype`` bf16 row the same
  Triton kernel over the bf16 cache is timed beside SDPA (``us_triton``).

fp8 and int8 kernels refuse shapes off their alignment (``torch._scaled_mm``: K and N
multiples of 16; ``torch._int_mm``: K and N multiples of 8 and M above 16): such a row runs
the kernel on operands zero-padded to the alignment, as a deployment stores them (the padding
is done once, outside the timing), and ``impl`` names the padded shape
(:func:`padded_shape`).

**Energy and clock** (``--energy-s``, on by default): after the timing, the kernel runs back to
back (replays of a CUDA graph of several launches, so short kernels are not spaced by launch
gaps; over as many input sets as make twice the L2, at most :data:`ENERGY_SETS`, column
``energy_sets``, so that the operands come from HBM as in the timing) until NVML's
total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``, millijoules,
updated only every few tens of milliseconds) has changed twice at least that many seconds
apart, while the SM clock (``nvmlDeviceGetClockInfo``) is sampled: columns ``watts`` (the
counter's change between those two updates over the time between them), ``mj`` (board energy
per kernel: that power times ``us_loop``), ``sm_mhz`` (median SM clock) and ``us_loop`` (GPU
time per kernel back to back, no launch gaps and no L2 flush between calls). Needs
``pynvml`` (the ``nvidia-ml-py`` package); without it the columns stay empty and the
environment file says why.

**Kernels** (``--kernels``, off by default): after the timing, one call runs under
``torch.profiler`` and column ``kernels`` lists the GPU kernels it launched, in order, each as
``name grid=(x,y,z) block=(x,y,z) us=D`` (the profiler's name, e.g. a cuBLAS kernel's, which
names its tile, its alignment and whether it splits K; its launch grid; its duration in that
call, L2 not flushed), separated by `` ; ``.

Timing follows the device tool's METHOD.md: warm-up, random inputs, the median of many
repetitions measured with CUDA events by ``triton.testing.do_bench``, which also zeroes a
256 MB buffer before every repetition so that no kernel reads its operands from a warm L2
(columns ``us``, ``us_p20``, ``us_p80``: the median and the 20th and 80th percentiles). A
timing whose repetitions spread widely (:func:`unsteady`: the host's launch jitter set its
median) is taken again, up to :data:`RETRIES` times, and the steadiest kept (column ``tries``).
The card, driver, software versions and clocks (before, after, and sampled under a sustained
bf16 load) go into a JSON file beside the CSV, and microbenchmarks (copy bandwidth, peak
matrix rates per dtype, launch overhead) into ``<out stem>_microbench.csv``.

torch and triton are imported lazily: the rest of TPEForge runs without them. Run as
``tpe gpu measure`` or ``python -m sim.gpu.measure`` (which needs nothing of TPEForge but this
file and ``sim/gpu_model.py``, standard library only, for machines without its dependencies).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# the padded shape fp8 and int8 kernels run, and a shapes row's cells as the model reads them
from sim.gpu_model import GEMM_DTYPES, W4A16, padded_shape, read_kernel, shape_cell

__all__ = ["MeasureError", "add_options", "guarded", "kernel_names", "main", "measure",
           "read_shapes", "select_rows", "steady", "timed_after_light_load", "unsteady"]

COLUMNS = ("op", "dtype", "M", "N", "K", "B", "H", "Hkv", "S", "D")
#: The most input sets the energy loop rotates through (:func:`_energy`): enough for a kernel of
#: 1.6 MB of operands to stream twice the H100's 50 MB L2; smaller ones stay partly in it.
ENERGY_SETS = 64


class MeasureError(ValueError):
    """Bad input or no GPU; ``str`` is one line naming the field and the fix."""


# -- input ---------------------------------------------------------------------------------




def read_shapes(path: Path) -> list[dict[str, Any]]:
    """Rows of a shapes.csv, validated (one-line :class:`MeasureError` otherwise)."""
    try:
        f = open(path, newline="")
    except OSError as err:
        raise MeasureError(f"--in: cannot read {str(path)!r} ({err.strerror})") from None
    with f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise MeasureError(f"--in: {path}: missing column(s) {', '.join(missing)}; a "
                               f"shapes.csv has the columns {','.join(COLUMNS)}")
        rows = []
        for line, row in enumerate(reader, start=2):
            op, dtype = (row.get("op") or "").strip(), (row.get("dtype") or "").strip()
            out: dict[str, Any] = {k: v for k, v in row.items() if k not in COLUMNS}
            out |= {"op": op, "dtype": dtype}
            try:
                k = read_kernel({**row, "op": op, "dtype": dtype})  # as predict reads a row
                for key in ("M", "N", "K", "B", "H", "Hkv", "S", "D"):
                    out[key] = shape_cell(row, key)
            except ValueError as err:
                raise MeasureError(f"line {line}: {err}") from None
            if op == "attn_prefill":
                out["causal"] = int(k.causal)
            if k.group:
                out["group"] = k.group
            if op != "gemm":
                out["Hkv"] = k.Hkv
            rows.append(out)
    return rows


def select_rows(rows: list[dict[str, Any]], skip: int, limit: int) -> list[dict[str, Any]]:
    """``rows`` without the first ``skip``, at most ``limit`` of them (0: all), so that a
    dataset can be measured over several runs; a one-line :class:`MeasureError` naming the
    flag when either is negative or nothing is left."""
    for flag, value in (("--skip", skip), ("--limit", limit)):
        if value < 0:
            raise MeasureError(f"{flag}: must be an integer >= 0 (got {value})")
    if skip >= len(rows):
        raise MeasureError(f"--skip: {skip} leaves none of the {len(rows)} rows; give fewer")
    return rows[skip:skip + limit] if limit else rows[skip:]


# -- the machine -----------------------------------------------------------------------------


def _smi(query: str) -> list[str]:
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    line = out.strip().splitlines()[0] if out.strip() else ""
    return [x.strip() for x in line.split(",")] if line else []


_SMI_FIELDS = ("name", "driver_version", "clocks.sm", "clocks.max.sm", "clocks.mem",
               "power.draw", "power.limit", "temperature.gpu", "pstate")


def smi_state() -> dict[str, str]:
    values = _smi(",".join(_SMI_FIELDS))
    return dict(zip(_SMI_FIELDS, values, strict=False))


class ClockSampler:
    """Samples SM clock and power with nvidia-smi while a load runs."""

    def __init__(self, period_s: float = 0.2) -> None:
        self.period_s = period_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            v = _smi("clocks.sm,power.draw")
            try:
                self.samples.append((float(v[0]), float(v[1])))
            except (IndexError, ValueError):
                pass
            self._stop.wait(self.period_s)

    def __enter__(self) -> ClockSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class Nvml:
    """The board's energy counter and SM clock through NVML (``pynvml``), for the GPU torch
    runs on (matched by UUID). ``reason`` says why not when NVML cannot be used."""

    def __init__(self, torch: Any) -> None:
        self.handle: Any = None
        self.reason = ""
        try:
            import pynvml
        except ImportError:
            self.reason = "pynvml not installed (pip install nvidia-ml-py)"
            return
        self.nv = pynvml
        try:
            pynvml.nvmlInit()
            uuid = str(getattr(torch.cuda.get_device_properties(0), "uuid", "") or "")
            handles = [pynvml.nvmlDeviceGetHandleByIndex(i)
                       for i in range(pynvml.nvmlDeviceGetCount())]
            match = [h for h in handles if uuid and uuid in str(pynvml.nvmlDeviceGetUUID(h))]
            self.handle = match[0] if match else handles[0]
            self.energy_mj()
        except pynvml.NVMLError as err:
            self.handle, self.reason = None, f"NVML: {err}"

    def energy_mj(self) -> int:
        return int(self.nv.nvmlDeviceGetTotalEnergyConsumption(self.handle))

    def sm_mhz(self) -> int:
        return int(self.nv.nvmlDeviceGetClockInfo(self.handle, self.nv.NVML_CLOCK_SM))


def _energy(torch: Any, nvml: Nvml, fns: list[Callable[[], object]], us: float, seconds: float
            ) -> dict[str, str]:
    """Run the kernel (``fns``: one call per input set, about ``us`` microseconds each; the
    sets taken in turn, so that a kernel whose operands would fit in L2 still reads them from
    HBM, as in a model where each layer has its own) back to back, replays of a CUDA graph of
    several calls (a plain loop when the kernel cannot be captured), until NVML's energy
    counter has changed twice ``seconds`` apart. The counter changes only about every 100 ms
    and a read takes milliseconds (both seen on an H100: updates 75 to 128 ms apart, 3.8 ms a
    read), so a thread polls it while the host keeps two chunks of about 10 ms of GPU work
    queued, and the power is the counter's change between two of its own updates over the
    time between them. The energy per call is that power times the GPU time per call (CUDA
    events around the loop); the SM clock is read by the same thread. Columns ``mj``,
    ``watts``, ``sm_mhz``, ``us_loop`` (module doc)."""
    # >= ~200 us a replay, and every input set as often as the others
    per_graph = max(len(fns), min(64, math.ceil(200.0 / max(us, 1e-3))))
    per_graph = -(-per_graph // len(fns)) * len(fns)
    replay: Callable[[], object]
    try:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for fn in fns:  # warm the kernel's workspace on the capture stream
                fn()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for i in range(per_graph):
                fns[i % len(fns)]()
        replay = graph.replay
    except RuntimeError:
        per_graph = len(fns)

        def replay() -> None:
            for fn in fns:
                fn()
    clocks: list[int] = []
    marks: list[tuple[float, int]] = []  # (host time, counter) at each change seen
    done = threading.Event()

    def poll() -> None:
        """Read the counter as often as NVML answers (a call takes milliseconds), every
        fourth read the clock too, until two changes ``seconds`` apart are seen."""
        last, reads = nvml.energy_mj(), 0
        while not done.is_set():
            e = nvml.energy_mj()
            if e != last:
                marks.append((time.perf_counter(), e))
                last = e
                if marks[-1][0] - marks[0][0] >= seconds:
                    done.set()
            reads += 1
            if reads % 4 == 0:
                clocks.append(nvml.sm_mhz())

    for _ in range(3):  # settle: the clock and power respond within milliseconds
        replay()
    torch.cuda.synchronize()
    # launch chunks of about 10 ms of GPU work, keeping two queued: the GPU never waits for
    # the host, and stops soon after the counter's second change
    chunk = max(1, math.ceil(10_000.0 / (max(us, 1e-3) * per_graph)))
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(chunk):
        replay()
    replays = chunk
    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    queued: list[Any] = []
    t0 = time.perf_counter()
    while not done.is_set() and time.perf_counter() - t0 < 4 * seconds + 2:
        for _ in range(chunk):
            replay()
        replays += chunk
        ev = torch.cuda.Event()
        ev.record()
        queued.append(ev)
        if len(queued) > 2:
            queued.pop(0).synchronize()
    end.record()
    end.synchronize()
    done.set()
    thread.join(timeout=5)
    calls = replays * per_graph
    gpu_us = start.elapsed_time(end) * 1e3 / calls
    clocks.sort()
    out = {"sm_mhz": str(clocks[len(clocks) // 2]) if clocks else "",
           "us_loop": f"{gpu_us:.3f}", "mj": "", "watts": ""}
    if len(marks) >= 2 and marks[-1][0] > marks[0][0]:
        watts = (marks[-1][1] - marks[0][1]) / 1e3 / (marks[-1][0] - marks[0][0])
        out |= {"watts": f"{watts:.1f}", "mj": f"{watts * gpu_us * 1e-3:.5g}"}
    return out


def timed_after_light_load(measured: Path) -> bool:
    """Whether a measured run timed its kernels after light load: no energy loop (module doc)
    ran between its rows, so a row's timing did not follow the previous row's 0.2 s or more
    of back-to-back load (its environment file, ``<stem>_env.json``, records no ``energy``, or
    that it was not measured; ``sim.gpu_model.after_light_load``). False without the file."""
    env = _run_env(measured)
    return env is not None and str(env.get("energy", "not measured")).startswith("not measured")


def timed_replayed(measured: Path) -> bool:
    """Whether a measured run timed each call replayed from a CUDA graph (``--graph``: its
    environment file's ``command``; ``sim.gpu_model.replayed``). False without the file."""
    env = _run_env(measured)
    return env is not None and "--graph" in str(env.get("command", "")).split()


def _run_env(measured: Path) -> dict[str, Any] | None:
    """A measured run's environment file (``<stem>_env.json``, written beside it), parsed;
    ``None`` without one."""
    env = measured.with_name(measured.stem + "_env.json")
    return json.loads(env.read_text()) if env.is_file() else None


# -- kernels ---------------------------------------------------------------------------------


def kernel_names(torch: Any, fn: Callable[[], object]) -> str:
    """The GPU kernels one call of ``fn`` launches (column ``kernels``, module doc), read from
    the profiler's trace; ``profiler error: ...`` when the profiler or its trace fails (the
    row's timing is kept)."""
    import tempfile

    from torch.profiler import ProfilerActivity, profile

    def dims(v: Any) -> str:
        return "(" + ",".join(str(x) for x in v) + ")" if isinstance(v, list) else "?"

    torch.cuda.synchronize()
    try:
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            fn()
            torch.cuda.synchronize()
        with tempfile.TemporaryDirectory() as tmp:
            trace = Path(tmp) / "trace.json"
            prof.export_chrome_trace(str(trace))
            events = json.loads(trace.read_text()).get("traceEvents", [])
        kernels = sorted((e for e in events if e.get("cat") == "kernel"),
                         key=lambda e: float(e.get("ts", 0)))
        return " ; ".join(f"{e['name']} grid={dims(e.get('args', {}).get('grid'))} "
                          f"block={dims(e.get('args', {}).get('block'))} "
                          f"us={float(e.get('dur', 0)):.3f}" for e in kernels)
    except Exception as err:  # a profiler failure must not lose the row's timing
        first = str(err).splitlines()[0][:120] if str(err) else ""
        return f"profiler error: {type(err).__name__}: {first}"


def _need_torch() -> tuple[Any, Any]:
    try:
        import torch
    except ImportError:
        raise MeasureError("tpe gpu measure: needs torch (pip install -e '.[torch]') and an "
                           "NVIDIA GPU") from None
    if not torch.cuda.is_available():
        raise MeasureError("tpe gpu measure: no CUDA GPU found (torch.cuda.is_available() is "
                           "False); run it on a machine with an NVIDIA GPU")
    try:
        import triton
        import triton.testing
    except ImportError:
        raise MeasureError("tpe gpu measure: needs triton (installed with CUDA builds of "
                           "torch)") from None
    return torch, triton


def _triton_kernel():  # pragma: no cover - needs a GPU
    import triton
    import triton.language as tl

    configs = [
        triton.Config({"BM": 128, "BN": 256, "BK": 64, "G": 8}, num_stages=3, num_warps=8),
        triton.Config({"BM": 128, "BN": 128, "BK": 64, "G": 8}, num_stages=4, num_warps=4),
        triton.Config({"BM": 64, "BN": 128, "BK": 64, "G": 8}, num_stages=4, num_warps=4),
        triton.Config({"BM": 16, "BN": 128, "BK": 128, "G": 8}, num_stages=4, num_warps=4),
        triton.Config({"BM": 16, "BN": 64, "BK": 256, "G": 8}, num_stages=3, num_warps=4),
    ]

    def bucket(n: int) -> int:
        return 1 << max(0, (n - 1).bit_length())

    def quick_bench(fn, quantiles=None, **_):
        # autotuning picks a config, it does not report: a short budget is enough
        return triton.testing.do_bench(fn, warmup=5, rep=20, quantiles=quantiles)

    @triton.autotune(configs=configs, key=["M_BUCKET", "N", "K"], do_bench=quick_bench)
    @triton.jit
    def matmul_kernel(a_ptr, b_ptr, c_ptr, M, N, K, M_BUCKET,
                      stride_am, stride_ak, stride_bn, stride_bk, stride_cm, stride_cn,
                      BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, G: tl.constexpr):
        """C[M, N] = A[M, K] @ B[N, K]^T (B in the nn.Linear weight layout), fp32 accumulate,
        grouped tile order for L2 reuse (the Triton tutorial's matmul)."""
        pid = tl.program_id(0)
        num_m = tl.cdiv(M, BM)
        num_n = tl.cdiv(N, BN)
        in_group = G * num_n
        group = pid // in_group
        first_m = group * G
        size_m = min(num_m - first_m, G)
        pid_m = first_m + ((pid % in_group) % size_m)
        pid_n = (pid % in_group) // size_m
        rm = pid_m * BM + tl.arange(0, BM)
        rn = pid_n * BN + tl.arange(0, BN)
        rk = tl.arange(0, BK)
        a = a_ptr + rm[:, None] * stride_am + rk[None, :] * stride_ak
        b = b_ptr + rn[None, :] * stride_bn + rk[:, None] * stride_bk
        acc = tl.zeros((BM, BN), dtype=tl.float32)
        for k in range(0, tl.cdiv(K, BK)):
            kk = k * BK + rk
            av = tl.load(a, mask=(rm[:, None] < M) & (kk[None, :] < K), other=0.0)
            bv = tl.load(b, mask=(rn[None, :] < N) & (kk[:, None] < K), other=0.0)
            acc = tl.dot(av, bv, acc)
            a += BK * stride_ak
            b += BK * stride_bk
        c = c_ptr + rm[:, None] * stride_cm + rn[None, :] * stride_cn
        tl.store(c, acc.to(tl.bfloat16), mask=(rm[:, None] < M) & (rn[None, :] < N))

    def run(a, w, c):
        M, K = a.shape
        N = w.shape[0]

        def grid(meta):
            return (triton.cdiv(M, meta["BM"]) * triton.cdiv(N, meta["BN"]),)

        matmul_kernel[grid](a, w, c, M, N, K, bucket(M), a.stride(0), a.stride(1),
                            w.stride(0), w.stride(1), c.stride(0), c.stride(1))
        return c

    return run


#: A timing whose repetitions spread this much (80th over 20th percentile) is unsteady: the
#: host's launch jitter, not the kernel, set its median (on the H100 runs of the second
#: dataset, the rows above it were timed 1.5 to 8 times apart between runs of the same kernel,
#: those below within a few percent; ``benchmarks/gpu_misaligned_noise.py``).
UNSTEADY_SPREAD = 1.3
#: How often an unsteady timing is taken again (the steadiest is kept, column ``tries``).
RETRIES = 2


def unsteady(p20_us: float, p80_us: float) -> bool:
    """Whether a timing's repetitions spread above :data:`UNSTEADY_SPREAD`."""
    return p80_us > UNSTEADY_SPREAD * p20_us


def steady(row: dict[str, str]) -> bool:
    """Whether a measured row's timing is steady enough to judge or fit a model by: not
    :func:`unsteady` (its repetitions' 80th percentile above 1.3 times their 20th) after the
    retries the measurement took (column ``tries``): the host's launch jitter, not the kernel,
    set such a median, and the same kernel timed again lands elsewhere (on the held-out
    ``measured_h100_unseen.csv`` the fp8 GEMMs 33x87x171 and 3x13089x69 took 17.7 and 13.5 us,
    each with its 20th and 80th percentiles 2x and 3x apart, and 5.95 and 7.55 us, steady, in
    ``measured_h100_unseen_repeat.csv``). A row without the percentiles counts as steady."""
    p20, p80 = row.get("us_p20"), row.get("us_p80")
    return not (p20 and p80 and unsteady(float(p20), float(p80)))


def _bench(triton: Any, fn: Callable[[], object], budget_ms: float
           ) -> tuple[float, float, float, int]:
    """(median, p20, p80) in microseconds, and how many timings it took: an unsteady one
    (:func:`unsteady`) is taken again up to :data:`RETRIES` times and the steadiest kept."""
    timings: list[tuple[float, ...]] = []
    while not timings or (unsteady(timings[-1][1], timings[-1][2])
                          and len(timings) <= RETRIES):
        timings.append(tuple(float(x) * 1e3 for x in triton.testing.do_bench(
            fn, warmup=max(5.0, budget_ms / 4), rep=budget_ms, quantiles=[0.5, 0.2, 0.8])))
    med, p20, p80 = min(timings, key=lambda q: q[2] / q[1])
    return med, p20, p80, len(timings)


def graphed(torch: Any, fn: Callable[[], object]) -> Callable[[], object]:
    """The replay of a CUDA graph of one call of ``fn`` (``--graph``): every launch the call
    makes (a Triton kernel's from Python, its allocations, a second kernel) is captured once,
    so that timing the replay (L2 flushed before each, as for any row) gives the GPU's time
    of the call, as a serving engine that replays CUDA graphs sees it, without the host's
    launch cost. ``RuntimeError`` when the call cannot be captured."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # compile and warm on the capture stream
        fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    torch.cuda.synchronize()
    return graph.replay


def _gemm_fn(torch: Any, dtype: str, M: int, N: int, K: int, gen: Any):
    dev = "cuda"
    if dtype in ("bf16", "fp16"):
        dt = torch.bfloat16 if dtype == "bf16" else torch.float16
        a = torch.randn(M, K, device=dev, dtype=dt, generator=gen)
        w = torch.randn(N, K, device=dev, dtype=dt, generator=gen)
        return (lambda: torch.nn.functional.linear(a, w)), "torch.nn.functional.linear", (a, w)
    Mp, Np, Kp = padded_shape(dtype, M, N, K)
    # zero padding beyond the real rows and columns, random data within
    pad = (0, Kp - K)
    note = f" (zero-padded to {Mp}x{Np}x{Kp})" if (Mp, Np, Kp) != (M, N, K) else ""
    if dtype == "fp8":
        a = torch.nn.functional.pad(torch.randn(M, K, device=dev, generator=gen), pad)
        w = torch.nn.functional.pad(torch.randn(N, K, device=dev, generator=gen), pad)
        a = torch.nn.functional.pad(a, (0, 0, 0, Mp - M)).to(torch.float8_e4m3fn)
        w = torch.nn.functional.pad(w, (0, 0, 0, Np - N)).to(torch.float8_e4m3fn)
        one = torch.ones((), device=dev, dtype=torch.float32)
        return (lambda: torch._scaled_mm(a, w.t(), scale_a=one, scale_b=one,
                                         out_dtype=torch.bfloat16)), \
            "torch._scaled_mm" + note, (a, w)
    a = torch.randint(-128, 128, (M, K), device=dev, dtype=torch.int8, generator=gen)
    w = torch.randint(-128, 128, (N, K), device=dev, dtype=torch.int8, generator=gen)
    a = torch.nn.functional.pad(a, (0, Kp - K, 0, Mp - M))
    w = torch.nn.functional.pad(w, (0, Kp - K, 0, Np - N))
    return (lambda: torch._int_mm(a, w.t())), "torch._int_mm" + note, (a, w)


def _w4_codes(torch: Any, N: int, K: int, group: int, gen: Any) -> tuple[Any, Any, Any]:
    """Random int4 codes ``q[N, K]`` (0..15) and bf16 ``scales``, ``zeros`` ``[K // group,
    N]`` of a weight of about unit size."""
    q = torch.randint(0, 16, (N, K), device="cuda", dtype=torch.int32, generator=gen)
    scales = (torch.rand(K // group, N, device="cuda", generator=gen) * 0.02 + 0.1
              ).to(torch.bfloat16)
    zeros = (torch.randn(K // group, N, device="cuda", generator=gen) * 0.1
             ).to(torch.bfloat16)
    return q, scales, zeros


#: How ``torch.ops.aten._convert_weight_to_int4pack`` wants two codes in a byte (seen on the
#: GPU at the first w4a16 row: the order whose product matches the reference).
_INT4PACK: dict[str, Any] = {}


def _w4a16_fn(torch: Any, row: dict[str, Any], gen: Any):
    """A W4A16 GEMM (``x[M, K] W[N, K]^T``, bf16 activations, int4 weights in groups of
    ``group`` along K): PyTorch's ``_weight_int4pack_mm`` (``w4a16``; PyTorch's dequantization
    ``(q - 8) s + z``) or the project's Triton kernel (``w4a16_triton``:
    :func:`sim.gpu.kernels.w4a16_matmul`, ``q s + z``). Returns the kernel, its name, its
    operands and a function giving the result's relative error against the dequantized
    weights' product in fp32."""
    from sim.gpu import kernels

    M, N, K, group = row["M"], row["N"], row["K"], row["group"]
    x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16, generator=gen)
    q, scales, zeros = _w4_codes(torch, N, K, group, gen)
    if row["dtype"] == "w4a16_triton":
        packed = kernels.pack_w4(torch, q)
        out = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)

        def run():
            return kernels.w4a16_matmul(x, packed, scales, zeros, group, out)

        def err() -> float:
            out.fill_(float("nan"))
            ref = kernels.w4a16_reference(torch, x, q, scales, zeros, group)
            return float((run().float() - ref).norm() / ref.norm())

        return run, "tpeforge triton w4a16", (x, packed, scales, zeros), err
    tiles = next(t for t in (8, 4, 2) if K % (16 * t) == 0)
    sz = torch.stack([scales, zeros], dim=2).contiguous()
    refs: list[Any] = []  # computed when first needed (not for the energy's input sets)

    def pack(high_first: bool) -> Any:
        u = q.to(torch.uint8)
        hi, lo = (u[:, 0::2], u[:, 1::2]) if high_first else (u[:, 1::2], u[:, 0::2])
        return torch.ops.aten._convert_weight_to_int4pack((hi << 4 | lo).contiguous(), tiles)

    def rel(packed: Any) -> float:
        if not refs:
            refs.append(kernels.w4a16_reference(torch, x, q - 8, scales, zeros, group))
        got = torch.ops.aten._weight_int4pack_mm(x, packed, group, sz).float()
        return float((got - refs[0]).norm() / refs[0].norm())

    if "high_first" not in _INT4PACK:
        errs = {order: rel(pack(order)) for order in (True, False)}
        _INT4PACK["high_first"] = min(errs, key=lambda o: errs[o])
    packed = pack(_INT4PACK["high_first"])
    impl = (f"torch.ops.aten._weight_int4pack_mm (innerKTiles {tiles}, "
            f"{'high' if _INT4PACK['high_first'] else 'low'} nibble first)")
    return (lambda: torch.ops.aten._weight_int4pack_mm(x, packed, group, sz)), impl, \
        (x, packed, sz), (lambda: rel(packed))


def _kivi_fn(torch: Any, row: dict[str, Any], gen: Any, bits: int):
    """Decode attention over a KIVI cache of ``bits`` (8, 4; 16: the same Triton kernel over
    a bf16 cache): :func:`sim.gpu.kernels.kivi_decode`, its operands and its relative error
    against SDPA in fp32 over the dequantized cache."""
    from sim.gpu import kernels

    B, H, Hkv, S, D = row["B"], row["H"], row["Hkv"], row["S"], row["D"]
    q = torch.randn(B, H, D, device="cuda", dtype=torch.bfloat16, generator=gen)
    k = torch.randn(B, Hkv, S, D, device="cuda", dtype=torch.bfloat16, generator=gen)
    v = torch.randn(B, Hkv, S, D, device="cuda", dtype=torch.bfloat16, generator=gen)
    if bits == 16:
        cache: dict[str, Any] = {"kq": k, "vq": v, "bits": 16, "D": D}
    else:
        cache = kernels.quantize_kv(torch, k, v, bits)
        del k, v
    sms = torch.cuda.get_device_properties(0).multi_processor_count

    def err() -> float:
        # the first two sequences (the reference's fp32 cache of all of them can exceed the
        # card's memory)
        sub = {n: t[:2] if hasattr(t, "numel") else t for n, t in cache.items()}
        kr, vr = ((sub["kq"].float(), sub["vq"].float()) if bits == 16
                  else kernels.dequant_kv(torch, sub))
        ref = torch.nn.functional.scaled_dot_product_attention(
            q[:2].float()[:, :, None], kr, vr, enable_gqa=Hkv != H)[:, :, 0]
        got = kernels.kivi_decode(torch, q, cache, sms)[:2].float()
        return float((got - ref).norm() / ref.norm())

    keep = tuple(t for t in (q, *cache.values()) if hasattr(t, "numel"))
    name = f"tpeforge triton kivi decode ({'bf16' if bits == 16 else f'int{bits}'} cache)"
    return (lambda: kernels.kivi_decode(torch, q, cache, sms)), name, keep, err


def _attn_fn(torch: Any, row: dict[str, Any], gen: Any):
    B, H, Hkv, S, D = row["B"], row["H"], row["Hkv"], row["S"], row["D"]
    dt = torch.bfloat16 if row["dtype"] == "bf16" else torch.float16
    q_len = S if row["op"] == "attn_prefill" else 1
    q = torch.randn(B, H, q_len, D, device="cuda", dtype=dt, generator=gen)
    k = torch.randn(B, Hkv, S, D, device="cuda", dtype=dt, generator=gen)
    v = torch.randn(B, Hkv, S, D, device="cuda", dtype=dt, generator=gen)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    causal = row["op"] == "attn_prefill" and bool(row.get("causal", 1))
    gqa = Hkv != H
    return (lambda: sdpa(q, k, v, is_causal=causal, enable_gqa=gqa)), "sdpa", (q, k, v)


# -- microbenchmarks -------------------------------------------------------------------------


def microbench(torch: Any, triton: Any, budget_ms: float) -> list[dict[str, Any]]:
    """Copy bandwidth, peak matrix rates, launch overhead, sustained clock."""
    gen = torch.Generator(device="cuda").manual_seed(7)
    out: list[dict[str, Any]] = []
    n = 1 << 29  # 1 GiB of bf16
    x = torch.randn(n, device="cuda", dtype=torch.bfloat16, generator=gen)
    y = torch.empty_like(x)
    us = _bench(triton, lambda: y.copy_(x), budget_ms)[0]
    out.append({"name": "copy_1gib", "us": us, "value": 2 * x.numel() * 2 / (us * 1e-6) / 1e9,
                "unit": "GB/s (read + write)"})
    us = _bench(triton, lambda: x.sum(dtype=torch.float32), budget_ms)[0]
    out.append({"name": "read_1gib", "us": us, "value": x.numel() * 2 / (us * 1e-6) / 1e9,
                "unit": "GB/s (read)"})
    x = y = None  # free the 2 GiB before the matrix products
    for dtype in GEMM_DTYPES:
        for size in (8192, 16384) if dtype != "int8" else (8192,):
            fn, impl, keep = _gemm_fn(torch, dtype, size, size, size, gen)
            us = _bench(triton, fn, budget_ms)[0]
            out.append({"name": f"peak_{dtype}_{size}", "us": us,
                        "value": 2 * size**3 / (us * 1e-6) / 1e12, "unit": f"TFLOP/s ({impl})"})
            del keep
    tiny = torch.randn(16, 16, device="cuda", dtype=torch.bfloat16, generator=gen)
    us = _bench(triton, lambda: tiny + 1, budget_ms)[0]
    out.append({"name": "launch_elementwise", "us": us, "value": us, "unit": "us"})
    fn, _, keep = _gemm_fn(torch, "bf16", 16, 16, 16, gen)
    us = _bench(triton, fn, budget_ms)[0]
    out.append({"name": "launch_gemm_16", "us": us, "value": us, "unit": "us"})
    # sustained clock under a dense bf16 load (power cap), sampled by nvidia-smi
    fn, _, keep = _gemm_fn(torch, "bf16", 8192, 8192, 8192, gen)
    with ClockSampler() as sampler:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 6.0:
            for _ in range(20):
                fn()
            torch.cuda.synchronize()
    tail = sampler.samples[len(sampler.samples) // 3:] or [(math.nan, math.nan)]
    clocks = sorted(s[0] for s in tail)
    power = sorted(s[1] for s in tail)
    out.append({"name": "sustained_sm_clock_bf16", "us": "", "value": clocks[len(clocks) // 2],
                "unit": f"MHz (median of {len(tail)} samples, min {clocks[0]}, max {clocks[-1]})"})
    out.append({"name": "sustained_power_bf16", "us": "", "value": power[len(power) // 2],
                "unit": "W (median)"})
    del keep
    return out


# -- the run ---------------------------------------------------------------------------------


def guarded(torch: Any, fn: Callable[[], Any]) -> tuple[Any, str]:
    """``(fn(), "ok")``, or ``(None, status)`` when it runs out of GPU memory or fails on the
    GPU: the one-line status a measured row records."""
    try:
        return fn(), "ok"
    except torch.cuda.OutOfMemoryError:
        return None, "out of memory"
    except RuntimeError as err:
        return None, f"error: {str(err).splitlines()[0][:120]}"


def _measure_row(torch: Any, triton: Any, row: dict[str, Any], gen: Any, tri: Any,
                 nvml: Nvml | None, energy_s: float, budget_ms: float, kernels: bool = False,
                 graph: bool = False) -> dict[str, str]:  # pragma: no cover - needs a GPU
    """One row's measured columns (:func:`measure`); ``graph``: time the replay of a CUDA
    graph of one call (:func:`graphed`)."""
    rec: dict[str, str] = {}
    kv_bits = {"int8": 8, "int4": 4}.get(str(row.get("kv_dtype") or "bf16"), 16)
    check: Callable[[], float] | None = None

    def kernel() -> tuple[Callable[[], object], str, Any]:
        nonlocal check
        if row["dtype"] in W4A16:
            fn, name, keep, check = _w4a16_fn(torch, row, gen)
            return fn, name, keep
        if kv_bits != 16:
            fn, name, keep, check = _kivi_fn(torch, row, gen, kv_bits)
            return fn, name, keep
        if row["op"] == "gemm":
            return _gemm_fn(torch, row["dtype"], row["M"], row["N"], row["K"], gen)
        return _attn_fn(torch, row, gen)

    fn, impl, keep = kernel()
    rec["status"] = "ok"
    if check is not None:  # the quantized kernels, against their dequantized reference
        err = check()
        rec["rel_err"] = f"{err:.2e}"
        if not (math.isfinite(err) and err < 2e-2):
            rec["status"] = "result wrong"
    med, p20, p80, tries = _bench(triton, graphed(torch, fn) if graph else fn, budget_ms)
    rec |= {"us": f"{med:.3f}", "us_p20": f"{p20:.3f}", "us_p80": f"{p80:.3f}",
            "tries": str(tries), "impl": impl}
    if kernels:
        rec["kernels"] = kernel_names(torch, fn)
    if nvml is not None and nvml.handle is not None:
        # input sets enough for twice the L2 together (at most ENERGY_SETS): each call reads
        # its operands from HBM, as the timing (L2 flushed) does
        nbytes = sum(t.numel() * t.element_size() for t in keep if hasattr(t, "numel"))
        l2 = torch.cuda.get_device_properties(0).L2_cache_size
        sets = max(1, min(ENERGY_SETS, math.ceil(2 * l2 / max(nbytes, 1))))
        fns = [fn] + [kernel()[0] for _ in range(sets - 1)]
        rec |= _energy(torch, nvml, fns, med, energy_s)
        rec["energy_sets"] = str(sets)
    if tri is not None and row["op"] == "gemm" and row["dtype"] == "bf16":
        a, wt = keep
        c = torch.empty(row["M"], row["N"], device="cuda", dtype=torch.bfloat16)
        c.fill_(float("nan"))
        tri(a, wt, c)
        ref = torch.nn.functional.linear(a.float(), wt.float())
        err = float((c.float() - ref).norm() / ref.norm())
        rec["triton_rel_err"] = f"{err:.2e}"
        if math.isfinite(err) and err < 2e-2:
            tmed = _bench(triton, lambda: tri(a, wt, c), budget_ms)[0]
            rec |= {"us_triton": f"{tmed:.3f}", "triton_impl": "tpeforge triton"}
        else:
            rec["status"] = "ok; triton result wrong"
    if row.get("kv_dtype") == "bf16" and row["op"] == "attn_decode":
        # the project's decode kernel over the same bf16 cache, beside SDPA
        tfn, tname, tkeep, terr = _kivi_fn(torch, row, gen, 16)
        err = terr()
        rec |= {"triton_rel_err": f"{err:.2e}", "triton_impl": tname}
        if math.isfinite(err) and err < 2e-2:
            timed = graphed(torch, tfn) if graph else tfn
            rec["us_triton"] = f"{_bench(triton, timed, budget_ms)[0]:.3f}"
        del tkeep
    return rec


def measure(rows: list[dict[str, Any]], out: Path, *, budget_ms: float = 60.0,
            triton_gemm: bool = True, micro: bool = True, energy_s: float = 0.3,
            kernels: bool = False, graph: bool = False, command: str = "", log=print) -> Path:
    """Time every row; write ``out`` (rows written as they finish) and its side files.
    ``energy_s``: seconds of back-to-back runs per kernel for its energy and clock (0: none;
    module doc); ``kernels``: record the kernels each row launches (column ``kernels``);
    ``graph``: time each row's call replayed from a CUDA graph (:func:`graphed`: the GPU's
    time, no host launch cost); ``command``: the command line, recorded in the environment
    file."""
    if energy_s < 0:
        raise MeasureError(f"--energy-s: must be >= 0 seconds (got {energy_s})")
    torch, triton = _need_torch()
    gpu = torch.cuda.get_device_name(0)
    env = {"gpu": gpu, "torch": torch.__version__, "triton": triton.__version__,
           "cuda": torch.version.cuda, "python": platform.python_version(),
           "sm_count": torch.cuda.get_device_properties(0).multi_processor_count,
           "smi_before": smi_state(), "budget_ms": budget_ms,
           "method": ("one call captured in a CUDA graph and its replay timed (the GPU's "
                      "time, no host launch cost): " if graph else "")
                     + "triton.testing.do_bench: CUDA events, median of repetitions, 256 MB "
                     "L2 flush before each repetition; random inputs; a timing whose 80th "
                     f"percentile is above {UNSTEADY_SPREAD} times its 20th taken again, up to "
                     f"{RETRIES} times, the steadiest kept (column tries)"}
    if command:
        env["command"] = command
    nvml = Nvml(torch) if energy_s > 0 else None
    if nvml is not None:
        env["energy"] = (f"NVML total energy: the power between two updates of the counter at "
                         f"least {energy_s} s apart, the kernel back to back"
                         if nvml.handle is not None else f"not measured: {nvml.reason}")
        if nvml.handle is None:
            log(f"energy and clock not measured: {nvml.reason}")
    out.parent.mkdir(parents=True, exist_ok=True)
    extra = sorted({k for r in rows for k in r if k not in COLUMNS})
    fields = [*COLUMNS, *extra, "us", "us_p20", "us_p80", "tries", "impl", "us_triton",
              "triton_impl",
              "triton_rel_err", "rel_err", "mj", "watts", "sm_mhz", "us_loop", "energy_sets",
              "status", "gpu", *(("kernels",) if kernels else ())]
    gen = torch.Generator(device="cuda").manual_seed(0)
    tri = _triton_kernel() if triton_gemm else None
    t_start = time.perf_counter()
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, restval="")
        w.writeheader()
        for i, row in enumerate(rows):
            rec = {k: ("" if v is None else v) for k, v in row.items()}
            rec["gpu"] = gpu
            done, status = guarded(torch, lambda row=row: _measure_row(
                torch, triton, row, gen, tri, nvml, energy_s, budget_ms, kernels, graph))
            rec |= done if done is not None else {"status": status}
            w.writerow(rec)
            f.flush()
            torch.cuda.empty_cache()
            if i % 25 == 0:
                log(f"[{i + 1}/{len(rows)}] {time.perf_counter() - t_start:.0f} s "
                    f"{row['op']} {row['dtype']} -> {rec.get('us', '')} us {rec['status']}")
    env["smi_after_rows"] = smi_state()
    env["rows_seconds"] = time.perf_counter() - t_start
    if micro:
        mb = microbench(torch, triton, budget_ms)
        env["smi_after_microbench"] = smi_state()
        mb_path = out.with_name(out.stem + "_microbench.csv")
        with open(mb_path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["name", "us", "value", "unit", "gpu"])
            w.writeheader()
            for r in mb:
                w.writerow({**r, "gpu": gpu})
    out.with_name(out.stem + "_env.json").write_text(json.dumps(env, indent=1))
    return out


def add_options(p: argparse.ArgumentParser) -> None:
    """The options of a measuring run: ``tpe gpu measure`` and ``python -m sim.gpu.measure``
    take the same ones."""
    p.add_argument("--in", dest="inp", type=Path, required=True,
                   help="shapes.csv (columns op,dtype,M,N,K,B,H,Hkv,S,D; optional causal, "
                        "group, kv_dtype)")
    p.add_argument("--out", type=Path, required=True, help="measured.csv to write")
    p.add_argument("--budget-ms", type=float, default=60.0,
                   help="timing budget per kernel (do_bench rep, ms; default 60)")
    p.add_argument("--no-triton", action="store_true", help="skip the project's Triton GEMM")
    p.add_argument("--no-micro", action="store_true", help="skip the microbenchmarks")
    p.add_argument("--energy-s", type=float, default=0.3,
                   help="seconds of back-to-back runs per kernel for its energy (NVML) and SM "
                        "clock: columns mj, watts, sm_mhz, us_loop (default 0.3; 0: skip)")
    p.add_argument("--kernels", action="store_true",
                   help="record the GPU kernels each row launches (torch.profiler; column "
                        "kernels)")
    p.add_argument("--graph", action="store_true",
                   help="time each kernel's call replayed from a CUDA graph (the GPU's time: "
                        "no host launch cost, as a serving engine's CUDA graphs run it)")
    p.add_argument("--skip", type=int, default=0,
                   help="leave out the first N rows (to measure a dataset over several runs)")
    p.add_argument("--limit", type=int, default=0, help="measure at most N rows (default: all)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sim.gpu.measure",
                                description="Time the kernels of a shapes.csv on this GPU.")
    add_options(p)
    args = p.parse_args(argv)
    try:
        rows = select_rows(read_shapes(args.inp), args.skip, args.limit)
        measure(rows, args.out, budget_ms=args.budget_ms, triton_gemm=not args.no_triton,
                micro=not args.no_micro, energy_s=args.energy_s, kernels=args.kernels,
                graph=args.graph,
                command=" ".join(["python -m sim.gpu.measure", *(argv if argv is not None
                                                                 else sys.argv[1:])]))
    except MeasureError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
