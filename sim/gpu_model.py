"""Kernel-time model of a GPU (``tpe gpu predict``): GEMMs, attention and element-wise kernels.

A GPU preset is an ordinary architecture (``hw/presets/h100.toml``: ``cores`` = SMs, the engine
one SM's tensor cores, shared memory and registers as its buffers, L2 as the global buffer,
HBM as DRAM) with a ``[gpu]`` table naming its calibration file
(``sim/data/gpu/calibration_<card>.toml``). This module predicts what library kernels (cuBLAS,
FlashAttention-style SDPA) take on it; every term is a mechanism of those kernels:

**GEMM** ``C[M, N] = A[M, K] W[N, K]^T``:

* tiles and waves: the library picks, among CTA tiles ``BM x BN`` (128x256, 128x128, 64x128,
  64x64; for bf16/fp16 also tiles sized to the shape, :func:`shape_fitted_tiles`: cuBLAS's
  Hopper kernels spread ``M`` over the fewest row tiles that fill their waves, at each tile
  width, as recorded on random shapes) and split-K factors ``s`` (1, 2, 4, 8), the fastest; a
  choice runs
  ``ceil(ceil(M/BM) ceil(N/BN) s / SMs)`` waves, each as long as one tile's
  ``2 BM BN ceil(K/s)`` operations at the SM's rate times the tile's efficiency (smaller tiles
  reuse less and run below the rate: efficiencies fitted per tile size). Padding of partial tiles
  and the last, partial wave is what makes small and skinny GEMMs slow;
* rate: the tensor cores' rate for the dtype as measured on 8192^3 GEMMs, i.e. at the clock
  the card sustains under dense load (the power cap: about 1.35 GHz on the H100 at 700 W,
  sampled by ``sim.gpu.measure``), divided over the SMs;
* memory: every operand once from HBM (L2 keeps the re-reads) at the *achieved* bandwidth
  (the streaming read bandwidth measured on the card, times a fitted efficiency; the aligned
  bf16/fp16 kernels at the streaming read itself, plus the write-back of the dirty L2 lines
  their reads evict, as the decode kernels' below, :func:`l2_write_back_us`: measured, a
  line through the times of their few-row GEMMs streaming 80 to 500 MB of W crosses at
  15.2-15.4 us and rises at 2.89-2.91 TB/s on the H100, the streaming read's 2.94, and at
  13.5-14.4 us and 4.16-4.19 TB/s on the H200, the datasheets' 1.43 times: a fitted
  fraction of the read alone put the H100's mid-sized ones below and its large ones above,
  and on the H200, whose write-back is shorter but not by the HBM's whole ratio, the
  mid-sized ones further below; ``test_aligned_gemms_pay_the_l2_write_back``);
* time ``= fixed + max(compute, memory)`` (split-K adds the reduction's traffic); but the
  aligned bf16/fp16 and fp8 kernels' stores of C are not in their memory time: they drain at
  their own rate and overlap the rest in part (:data:`STORE_EFF`, :data:`STORE_OVERLAP`:
  measured, a short-K GEMM whose bytes are nearly all C's stored them faster than the reads'
  rate, and from K of about 512 on the stores did not all hide under the products);
* alignment (:func:`vector_elems`, :func:`gemm_family`): the library's kernels load A and W
  (rows of ``K``, their leading dimension) and store C (rows of ``N``) in vectors of up to 16
  bytes, so the kernel family follows the widest vector both allow: the largest power of two
  dividing ``N`` and ``K``, capped at 16 bytes. As ``sim.gpu.measure --kernels`` recorded it on
  the H100 (column ``kernels`` of ``sim/data/gpu/measured_h100_misaligned.csv`` and
  ``measured_h100_v2_gemm_kernels.csv``): bf16/fp16 at 8 elements run the Hopper kernels
  (``nvjet_sm90``); at 2 or 4 CUTLASS's Ampere ones (``cutlass_80_tensorop_s16816gemm_*
  _align2``, mma.sync with 4-byte loads: at most about 280 TFLOP/s measured); at 1 its Turing
  ones (``cutlass_75_tensorop_s1688gemm_*_align1`` and ``wmma`` ones, 2-byte loads: at most
  about 135 TFLOP/s). Each family runs its own tiles (:data:`FALLBACK_TILES`, as recorded) in
  waves over the SMs; a CTA's step along K takes the slower of its ``2 BM BN`` products at the
  family's fitted rate and its ``BM + BN`` loaded elements at the family's fitted load bandwidth
  (their narrow loads from L2 into shared memory, not the aligned kernels' 16-byte TMA copies):
  measured, a 64x64 align-1 CTA takes about 16 ns per element of K, a 128x128 one 32 and a
  128x256 one 62, and the align-2 kernels' 128x64 and 128x128 CTAs about as long as their
  128x256 ones, so small tiles run far below the family's rate (but the align-1 split-K
  variant's 64x64 CTAs load only the rows inside the matrices, at their own time per row, the
  latency of a CTA alone on its SM hidden as more share it: :data:`ALIGN1_SPLIT_STEPS`, fitted
  on its recorded launches; and the align-1 wmma kernels' CTAs, fp16's :data:`WMMA_TILE`,
  load their tiles at a fitted bandwidth of their own, ``wmma_load_gb_per_s``, above the
  family's: measured, their long-K launches of few rows ran about a fifth faster than the
  family's load bandwidth gave them). Each family also has its own bandwidth for the bytes it
  moves (a fitted fraction of the card's streaming read; a path on the chip, its narrow loads
  and stores, not the HBM: the same bytes per second on a card of more HBM bandwidth,
  :data:`FALLBACK_PATH_EFFS`), and a
  tile's prologue and epilogue (``fallback_tile_k0``: elements of K its loop would walk meanwhile),
  which short-K shapes pay for; these kernels (CUTLASS 2.x, one main loop then the epilogue, no
  producer warps streaming the next tile meanwhile) store C after their loop, so C's bytes come
  after the slower of the loop and the operands' reads, not under it (measured, a short-K GEMM with
  a large C: 6708x7822x226 bf16 took 178 us of kernel, where 13 waves of its 256x128 tiles at the 31
  ns per element of K they took at K = 4096 walk its 226 elements in 92 us; its C is 105 MB); where
  a launch's CTAs fit one wave, each alone on its SM, an align-1 CTA of the Turing s1688 tiles
  steps along K no faster than a fitted
  ``align1_lone_step_ns`` (timed after the L2 flush its loads come from HBM, and neither its
  two-stage pipeline nor another CTA hides their latency: measured, 31x8143x182 bf16 took
  2.6 us more beyond its profiled warm-L2 kernel than small kernels do); CUTLASS runs its
  split-K variant (fp32 partials, then a
  ``splitKreduce_kernel`` launch; any count of splits, the model's the fastest for its tiles)
  whenever 128x128 tiles would leave SMs idle and ``K`` is at least
  :data:`FALLBACK_SPLIT_K` (:data:`FALLBACK_SPLIT_K_FILLED` where 64x64 tiles fill the SMs),
  and for bf16 at vector 1 whenever C has fewer than 16 columns (the
  recorded dispatch, not a choice by speed), but the wmma kernels, which split only from
  :data:`WMMA_SPLIT_K` on (below it they run whole beside the others' split-K variant: the
  faster of the two; fewer than 16 rows run them alone, split from
  :data:`WMMA_SPLIT_K_FEW_ROWS` on); where 128x128
  tiles would leave SMs idle and K is short (no split), the align-1 kernels run no tile
  larger than 64x64 (:data:`UNDERFILLED_TILE`); bf16 at vector 1 has no wmma kernel
  (:data:`WMMA_TILE`: Turing's WMMA has no bf16). Where 128x128 tiles fill the SMs, the
  large tiles (:data:`FALLBACK_SERIAL_TILES`) run whole or in CUTLASS's serial split-K (no
  reduction launch: the slices of a tile add into C in turn), in the slices
  :func:`fallback_serial_splits` gives (the recorded grids' z): each slice's CTAs step at the
  unsplit step over their share of K, in waves of all the slices' CTAs, and each slice stores
  its partial tile of C (all but the first reading the one before's). At vector 1 a ``K``
  that is a multiple of 8 (only ``N`` odd) runs slower still (measured at K = 4096: about
  25%; a fitted factor, the cause not established). Fewer than 16 rows of bf16 at vector 1 run
  cuBLAS's CUDA-core kernel (``gemmSN``: no tensor cores, any alignment; family ``gemv``) from
  :data:`GEMMSN_MIN_K` on, but where ``K`` is at least twice ``N`` (the split-K tiles run, as
  recorded) and, from six rows on, past a K that grows as a power of ``N`` and shrinks with
  the rows (:data:`GEMMSN_REACH`), and with fewer than 16 columns of C at any K below twice N;
  fp16 never ran it on the calibration rows (its wmma kernels did); also where ``K`` is at
  least twice ``N`` but within :data:`GEMMSN_BAND_K`, as recorded. These CUDA-core kernels
  (family ``gemv``) load their bytes at a fitted load bandwidth of their own (below the HBM's;
  gemmSN at another, and its CUDA cores compute the rows of A rounded up to even:
  :data:`GEMMSN_ROWS_STEP`, each template at its own speed, :data:`GEMMSN_SPEED`: 3 rows run
  the 4-row template's predicated path, 1.3 times as long as 4), plus the write-back of the
  dirty L2 lines their reads evict (the decode kernels' ramp, below, over a fitted span of
  bytes: a large GEMV timed alone took 14 to 16 us beyond its profiled kernel); gemmSN runs
  one CTA per :data:`GEMMSN_CTA_COLS` columns of C over its template's rows of A (all of them,
  or half: :data:`GEMMSN_ROW_CTAS`) and the whole of K, and no faster than one CTA's walk, a
  fitted time per row of A and element of K (14x23x1156 bf16, three CTAs, each alone on its
  SM, its loads' latency unhidden, took 20.9 us), of at least :data:`GEMMSN_MIN_WALK_ROWS`
  rows (the 2-row template's CTA walks K no faster than the 4-row one's) and at the
  template's walk speed (:data:`GEMMSN_WALK_SPEED`: the 4-row template's predicated path
  walks K 2.2 times as long as its flag-true one, more than it costs the SM's throughput),
  its loads waiting behind the L2's write-back (the ramp above adds to the walk as to the
  bytes' time), which a CTA that shares its SM does not beat
  (at N = 1201, 151 CTAs on 132 SMs, every gemmSN launch of measured_h100_gemmsn.csv took
  longer than its operations and bytes: 13 us for 7x1201x601). A GEMV with one column of C
  and few rows runs a dot product per row and then a reduction kernel
  (:data:`DOT_MAX_ROWS`). fp8 and int8 kernels take no shape off their alignment at all
  (:data:`ALIGNMENT`): their operands run zero-padded to it (fp8 to 16, already its widest
  vector: the aligned kernels run); int8, padded to 8 with ``K`` off 16, runs CUTLASS's
  ``i16832gemm_*_align4`` kernels: the tile cuBLAS dispatches
  (:func:`int8_align4_tile`: by tile counts and rows, as recorded, not the fastest; of its
  256-by-128 tile the faster orientation, :data:`INT8_ALIGN4_LARGE_TILES`) with 4-byte loads,
  as the bf16 fallbacks (their own rate and load bandwidth), but a CTA loads only the rows of
  A and W inside the matrices (a tile over 8 columns of N loads a fraction of a full one's) and
  a step along K takes at least its loop's latency (:data:`INT8_ALIGN4_STEP_NS`); with only ``N``
  off 16, cuBLASLt's Hopper kernel (``sm90_xmma_gemm_i8i32``, one 256x128 tile in clusters of
  two along N: :data:`INT8_N8_TILE`) at its own fitted rate and fixed cost (about 5.5 us of
  kernel for the smallest shapes, against 3.3 for CUTLASS's), each wave of its CTAs past the
  first adding its start and end (:data:`INT8_N8_WAVE_K0`), its int32 stores of C at the
  efficiency of cuBLASLt's other int8 kernels' (``int8_store_eff``, below: on the H200's
  int8 N8 probe, ``measured_h200_int8n8.csv``, its ``cal`` rows at K = 128 and N = 4104,
  whose bytes are nearly all C, took 15.7 and 16.4 us at 1016 and 1528 rows, where C at the
  reads' efficiency makes the second 17.4), but where its CTAs take more
  than two waves of the SMs CUTLASS's 128x64 align-4 tile, as recorded
  (:data:`INT8_N8_MAX_WAVES`): its three-stage variant, three CTAs to an SM, at its own step
  per loaded row in the L2 sectors the rows span (:data:`INT8_N8_CUTLASS_STEPS`,
  :func:`int8_align4_sectors`), not the K-off kernels' load bandwidth.
  Aligned int8 (K and N multiples of 16) runs CUTLASS's Ampere ``i16832gemm_s8_*_align16``
  kernels, never a Hopper one: one of four tiles (:data:`INT8_TILES`), chosen by cuBLASLt's
  heuristic as recorded (:func:`int8_tile`: by rows, tile count and K, not the fastest), never
  split, each tile at its own fitted rate with a prologue and epilogue of ``int8_tile_k0``
  elements of K (the 64x64 tile, which runs every GEMM of at most 32 rows, well below the
  larger ones: a 32-row GEMM is as slow as a 128-row one), and no faster than their CTAs load
  A and W (K bytes a row: the prologue and epilogue load none) from L2 at a fitted whole-chip
  bandwidth (``int8_load_gb_per_s``) in the L2's line traffic: a row of K bytes that does
  not start on a 128-byte line spans two lines per segment (:func:`line_traffic`: at K = 4112
  seven in eight rows, 1.875 times the traffic; measured, 1000x4112x4112 took 95 us of kernel
  where 1000x4096x4096 took 50, the time growing with the count of tiles rather than by
  waves: ``measured_h100_tiles.csv``), but a row that starts on a 32-byte sector costs no
  more than an aligned one (:func:`sector_traffic`); that work overlapping in part
  (``int8_overlap``, as fp8's) the HBM's time for their bytes, the reads of A and W at int8's
  fitted efficiency and the int32 stores of C at their own
  (``int8_store_eff``, fitted: about 0.90 of the measured streaming read, where the reads get
  about 0.72): the GEMMs whose bytes are nearly all C (K of 11 to 672, many 64x128 tiles) ran
  as fast as their stores drain (7429x5424x32: 162 MB in 60 us of kernel, 2.7 TB/s:
  ``measured_h100_v2_gemm_kernels.csv``), some 14% faster on average than at the reads'
  efficiency (``measured_h100_random.csv`` and ``measured_h100_v2.csv``: tests/test_gpu.py).
  fp8 runs cuBLASLt's Hopper kernels (``nvjet_sm90_qqtst_*``: persistent, one CTA per SM),
  whose tiles (:data:`NVJET_FP8_TILES`, as recorded) are a multiple of 64 one way and of 8 the
  other, so cuBLASLt fills the SMs' waves (at 4096 x 4096: 128x80 at 320 rows, 128x136 at
  515, 128 tiles each): the fastest of them, whole or split along K, each CTA's step along K
  its products at fp8's fitted rate and its A and W rows loaded from L2 (a fitted whole-chip
  bandwidth, in :func:`sector_traffic`: K = 4112 ran 24-48% longer than 4096 at the same tiles)
  overlapping in part (``fp8_overlap``, as the tiles' work and the HBM's time do), and at
  least a fitted shortest step (``fp8_step_ns``: a small tile's CTA walks K no faster); its
  reads of A and W at a fitted fraction of the streaming read plus the L2's write-back (as
  bf16/fp16's), and C's stores (bf16) apart, at the rate and overlap of bf16/fp16's
  (:data:`STORE_EFF`, :data:`STORE_OVERLAP`; with C among the reads at one efficiency the
  store probe's fp8 rows at 8192 x 8192 came out +22% at K = 64 and -20% at K = 1024). Each
  8-bit dtype's constants are its own (fit groups ``gemm_int8``, ``gemm_fp8``), the fixed cost,
  HBM efficiency and split cost shared with bf16/fp16.

**Attention** (SDPA). Prefill: query tiles of 128 rows per (sequence, head), each streaming the
key tiles it can see (causal, the diagonal tiles masked at an extra cost), scheduled over the
SMs (the longest tile list bounds the time: causal imbalance); a tile pair costs the slower of
its tensor-core work at the kernel's head dim (a multiple of :data:`ATTN_HEAD_DIM_STEP`) and
the softmax of its scores (at a fitted score rate: the special-function units' exp), which
overlap. Decode (:func:`sdpa_decode_grid`; torch's SDPA runs cuDNN's flash decode kernel on the
H100, as ``sim.gpu.measure --kernels`` recorded it: ``measured_h100_v2_decode_kernels.csv``,
``measured_h100_decode.csv``): a CTA takes up to 16 query heads of one KV head and one half of
a head dim over 128 (at head dim 256 two CTAs each write 128 of the output's columns, both
reading all of K for the scores), and its share of the cache's tokens (split-KV when the
(sequence, head group) pairs leave SMs idle, then a second kernel combines the splits). Each
CTA walks its share of the cache in key tiles of 128 tokens, loading for every tile K and V at
the tile's head dim (the recorded kernels' ``16x128xD`` tiles: :func:`_kernel_head_dim`, so
head dim 32 loads as 64, 96 as 128, and each of the two CTAs of head dim 256 loads all of V).
The time: the largest of the cache read once from HBM at the achieved bandwidth; the busiest
SM's CTAs, their tiles loaded at the SM's share of the L2's bandwidth to the SMs (fitted, at
least what a recorded kernel's SMs loaded) and each CTA's own start and end in turn; and one
CTA's walk, its tiles one after another at a fitted time per tile (held out, a CTA alone on
its SM stepped through a tile in about 0.95 us: head dim 32 over 32768 tokens, 128 CTAs,
took 249 us on the H100 and 257 on the H200, whose HBM streams its cache in 178 and 124).
Plus the softmax's work per score, a second cost that ramps in with the bytes up to about the
L2's size (``decode_ramp_mb``, fitted: about 70 MB; the L2 holds 50) and then stays
(``decode_ramp_us``, fitted: about 11 us on the H100, some 34 MB at its decode bandwidth): read
as the dirty lines the timing's L2 flush (``tpe gpu measure`` zeroes a 256 MB buffer before
each call) leaves, which the kernel's reads evict and the L2 writes back to HBM, a time at the
HBM's bandwidth that a card of more bandwidth spends less of (:func:`scaled`; held out on the
H200, ``measured_h200_decode.csv``, it brings the head dims 64 and 128 closer); and the
combine kernel, its cost growing with the splits and the head dim (measured: 2 to 6.5 us).
The SMs' loads are what make multi-query decode slow at large head
dims: 32 query heads over one KV head are two head groups, each loading the whole cache (at
head dim 256 twice), at the L2's bandwidth and not the HBM's (so as slow on the H200 as on the
H100); the walk is what makes a few long CTAs slow at small head dims.

**Quantized kernels** (``sim/data/gpu/measured_h100_quant.csv``; the decode rows again in
``measured_h100_quant_graph.csv`` and the GEMM rows in ``measured_h100_quant_w4_graph.csv``,
each call replayed from a CUDA graph: the GPU's time, not the Triton kernels' Python launch;
each term fitted on the ``cal`` rows):

* both int4 GEMMs pay the cuBLAS GEMMs' fixed cost (``fixed_us``: what a kernel timed in
  isolation, L2 flushed, takes beyond its own run; replayed from a CUDA graph or launched from
  Python they take the same time, ``measured_h100_quant_w4_graph.csv`` and ``..._direct.csv``,
  and at one row PyTorch's takes 4.7 us more than the profiler's kernel time, whose own
  intercept over the weight bytes is about 1.6 us);
* ``w4a16``, PyTorch's int4 weight-only GEMM (``aten._weight_int4pack_mm``): it streams the
  int4 weights with their group scales and zeros and runs tensor-core work that grows with
  every row of ``M`` (measured: no padding to a tile of rows, about 30 TFLOP/s however large
  ``M``); the two overlap only in part: ``fixed + (t_mem^p + t_mma^p)^(1/p)``, ``p`` fitted;
* ``w4a16_triton``, the project's Triton kernel (:mod:`sim.gpu.kernels`): the autotuner picks,
  among its tiles (:data:`W4A16_TRITON_TILES`, but one it never picked:
  :data:`W4A16_TRITON_UNPICKED`), the fastest; a tile's CTA walks K serially at a
  cost per K element that grows with the tile (a fixed step, the ``BN`` columns it dequantizes,
  the ``BM x BN`` products), in waves over the SMs; every row tile dequantizes its whole weight
  slice again (a whole-chip dequantization rate bounds it), and the bytes bound it from below;
* decode attention over an int8 or int4 KIVI cache (``kv_dtype``), the project's split-KV Triton
  kernel (:func:`kivi_rounds`): its programs (:func:`kivi_split`) run two at a time on an SM
  (:data:`KIVI_RESIDENT_PER_SM`), handed out in launch order (split-major: every head's first
  chunk, then every head's second, the short last chunks last), one to each SM and then a
  second; each round of resident programs takes as long as its busiest SM: two programs
  sharing an SM walk their tokens at a fitted cost per token each (per cache width), the SM's
  throughput split between them, and a program alone on its SM (the last round's, or the rest
  of the longer of a pair) at a fitted multiple of that share (``kivi_lone_programs``: a lone
  program's loop is latency-bound, so two on an SM take less than twice as long); the
  cache's bytes at the achieved bandwidth below.

**Element-wise / vector** kernels: bytes at the achieved bandwidth plus the fixed cost.

**Energy** (:func:`predict_kernel`; millijoules per kernel, run back to back, as ``tpe gpu
measure`` reads them from the board's energy counter): static power over the kernel's whole
time back to back (:func:`stream_parts_us`), more while
its work runs (its time beyond the fixed cost), an energy per operation of
the path it takes (the tensor cores' dtype, the bf16/fp16 fallback kernels of misaligned
shapes, cuBLAS's CUDA-core kernels, attention: :func:`energy_class`) and one per HBM byte;
the int4 weight-only GEMMs also one per weight their row tiles dequantize
(:func:`dequant_weights`: each row tile reads the whole weight slice from L2 and unpacks it
again, so a kernel of one row spends it as one of 16), the attention kernels one per score
(its softmax: :func:`attention_scores`), the misaligned bf16/fp16 fallback kernels one per
byte of C they store in accesses of one or two elements (:func:`narrow_c_bytes`), and the
8-bit GEMMs one per byte of L2 line traffic beyond what their tiles load (rows off the L2's
sectors: :func:`sector_traffic`, :data:`L2_LINE_PJ_PER_BYTE`, a constant measured on the fp8
GEMMs at K = 4112)::

    E = static_w t + busy_w t_work + pj_per_op[class] ops + hbm_pj_per_byte bytes
        + pj_per_dequant[class] weights + pj_per_score scores
        + pj_per_c_byte[class] narrow_c_bytes + L2_LINE_PJ_PER_BYTE excess_l2_bytes

**Alone and in a stream.** The model predicts a kernel as ``tpe gpu measure`` times it: alone,
CUDA events around one call after the L2 flush (``tpe gpu predict``, ``tpe gpu check``). In a
model's pass the kernels run back to back, without what timing one call alone adds: the
calibration's ``stream_overhead_us`` (measured: the median of ``us - us_loop`` over the short
calibration kernels, :data:`STREAM_OVERHEAD_MAX_US`), which :func:`in_stream` takes off a
kernel's fixed cost, and most of the write-back of the dirty lines the timing's L2 flush left
(:func:`l2_write_back_us`): a kernel back to back pays the calibration's
``stream_write_back_share`` of it, fitted on the back-to-back times (:func:`stream_parts_us`);
the simulator's operators (:func:`op_estimate`: ``tpe sim gemm``, ``attention``, ``model``,
sweeps) are priced so, and the energy (measured back to back) is that time's. A sequence of
kernels timed as one call alone (a decoder layer, ``sim.gpu.layer``) pays the timing's
overhead and the flush's write-back once (:func:`timed_alone_us`).

**Power cap.** The time model is fitted on kernels that ran under the measured card's power
limit (``limit_w``), so at that limit it needs no correction; the model's power ``E / t`` at
that limit reaches at most ``cap_w`` on the calibration kernels. A preset whose
``gpu.board_power_w`` is lower scales that cap by ``board_power_w / limit_w``; a kernel whose
power exceeds it runs at a lower clock: its work time stretches until the power equals the
cap (the energy of its operations and bytes unchanged, the static power drawn for longer).

**The clock a kernel is timed at.** The calibration's rates are those its kernels ran at when
timed by ``tpe gpu measure`` with its energy loop: each row's kernel runs back to back for 0.2
to 0.3 s after its timing, at the card's power limit when it is compute-bound, right before the
next row's timing, whose clock has not recovered in the tens of milliseconds the timing takes
(the sustained state, the default: that of a compute-bound stretch of a model's pass). Timed
after light load instead (no energy loop between the rows: ``measure --energy-s 0`` and the
first runs; ``tpe gpu check`` reads it from the run's environment file), the same bf16, fp16
and fp8 tensor-core GEMMs ran 8-15% faster from 30 us to 1 ms of kernel and alike from 1 ms on,
on both cards (``benchmarks/gpu_clock_study.py``, tables 1 and 2): a kernel starts at a
higher clock, which the power limit pulls down within a fraction of a millisecond of full load
(the fitted ``[burst] us``). :class:`GpuBurst` models it (:func:`after_light_load`): the tiles'
tensor work runs ``rate`` times faster for its first ``us`` microseconds, then at the
calibrated rate (fitted on the H100's two runs of the first dataset, ``tpe gpu calibrate
--burst``; held out on the H200's); int8's kernels, whose clock stays near the
boost clock back to back too (about 1.8 GHz at the limit where bf16's drops to about 1.4), and
the fallback, attention and vector kernels keep their rate.

Constants: the calibration file holds (a) microbenchmark results of the card (copy bandwidth,
peak matrix rates per dtype, launch cost, sustained clock), (b) the fitted efficiencies,
fitted by :func:`fit` on the ``cal`` rows of the measured dataset only, and (c) the energy
constants, fitted on the ``cal`` rows' measured energy (``sim.gpu.calibrate``); the ``held``
rows are never seen by either fit.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.caches import memo

__all__ = [
    "ATTN_DTYPES",
    "BURST_DTYPES",
    "ENERGY_CLASSES",
    "FALLBACK_ENERGY_CLASSES",
    "FIT_PARAMS",
    "GEMM_DTYPES",
    "GEMM_FAMILIES",
    "GRAPH_REPLAY_US",
    "INT8_TILES",
    "KV_DTYPES",
    "L2_LINE_PJ_PER_BYTE",
    "NVJET_FP8_TILES",
    "SHAPE_OPS",
    "STREAM_OVERHEAD_MAX_US",
    "W4A16",
    "W4A16_ROW_TILE",
    "W4A16_TRITON_TILES",
    "W4A16_TRITON_UNPICKED",
    "GpuBurst",
    "GpuCalibration",
    "GpuEnergy",
    "Kernel",
    "KernelEstimate",
    "TileChoice",
    "after_light_load",
    "aligned_memory_s",
    "arch_calibration",
    "arch_kernel",
    "attention_scores",
    "block_scale_ops",
    "block_scale_us",
    "burst_us",
    "c_store_s",
    "check_kernel_shape",
    "check_op_dtype",
    "dequant_weights",
    "energy_class",
    "energy_work",
    "gemm_choices",
    "gemm_family",
    "gemv_splits_k",
    "in_stream",
    "int8_align4_sectors",
    "int8_align4_tile",
    "int8_tile",
    "kernel_bytes_flops",
    "kernel_name",
    "kivi_rounds",
    "kivi_split",
    "line_traffic",
    "load_calibration",
    "narrow_c_bytes",
    "op_estimate",
    "op_kernel",
    "predict_kernel",
    "predict_parts_us",
    "predict_us",
    "replay_us",
    "replayed",
    "scaled",
    "sdpa_decode_grid",
    "shape_cell",
    "stream_params",
    "stream_parts_us",
    "tensor_dtype",
    "timed_alone_us",
    "vector_elems",
]

CAL_DIR = Path(__file__).resolve().parent / "data" / "gpu"
ELEM_BYTES = {"bf16": 2, "fp16": 2, "fp8": 1, "int8": 1}
OUT_BYTES = {"bf16": 2, "fp16": 2, "fp8": 2, "int8": 4, "w4a16": 2, "w4a16_triton": 2}
#: The int4 weight-only GEMMs (bf16 activations): PyTorch's and the project's Triton kernel.
W4A16 = ("w4a16", "w4a16_triton")
#: Group sizes (weights along K sharing a scale and zero) PyTorch's int4 kernel takes (its
#: ``_weight_int4pack_mm`` checks qGroupSize in 32, 64, 128, 256).
W4_GROUPS = (32, 64, 128, 256)
#: KV-cache formats of decode attention (shapes.csv column ``kv_dtype``).
KV_DTYPES = ("bf16", "int8", "int4")
#: The ops of a shapes.csv row, and the dtypes each runs in (:func:`check_op_dtype`): GEMMs on
#: the tensor-core paths and the int4 weight-only kernels; attention (SDPA, and the KIVI kernel
#: over a cache of ``kv_dtype``) in bf16 or fp16.
SHAPE_OPS = ("gemm", "attn_prefill", "attn_decode")
GEMM_DTYPES = ("bf16", "fp16", "fp8", "int8", *W4A16)
ATTN_DTYPES = ("bf16", "fp16")


def check_op_dtype(op: str, dtype: str) -> None:
    """A shapes.csv row's ``op`` and ``dtype`` (:data:`SHAPE_OPS`, :data:`GEMM_DTYPES`,
    :data:`ATTN_DTYPES`), as ``tpe gpu measure`` runs and ``tpe gpu predict`` and ``check``
    price them; ``ValueError`` naming the column otherwise."""
    if op not in SHAPE_OPS:
        raise ValueError(f"op: unknown {op!r}; one of {', '.join(SHAPE_OPS)}")
    if dtype not in GEMM_DTYPES:
        raise ValueError(f"dtype: unknown {dtype!r}; one of {', '.join(GEMM_DTYPES)}")
    if op != "gemm" and dtype not in ATTN_DTYPES:
        raise ValueError(f"dtype: attention runs in {' or '.join(ATTN_DTYPES)} (got {dtype!r}; "
                         "a quantized KV cache is the kv_dtype column)")
#: (BM, BN) of the autotuned configurations of the project's Triton W4A16 GEMM (the
#: ``configs`` of ``sim/gpu/kernels.py``; a test holds them equal).
W4A16_TRITON_TILES = ((16, 16), (16, 32), (16, 32), (16, 64), (16, 128), (32, 64), (64, 128),
                      (128, 128), (128, 256))
#: Tiles of :data:`W4A16_TRITON_TILES` the autotuner never picked: none of the 60 launches
#: ``measured_h100_quant_w4_graph.csv`` recorded (column ``kernels``: grid and block) ran 64x128
#: (4 warps, BK 64), where the tiles' cost per K step made it the fastest at M 64 to 256; there
#: the autotuner ran 16x128 or 32x64, or 128x128 and 128x256 (slower, as measured, than the
#: model's 64x128). The model leaves it out.
W4A16_TRITON_UNPICKED = ((64, 128),)
#: The project's split-KV decode kernel (``sim/gpu/kernels.py`` reads these, a design choice of
#: that kernel): its chunks of tokens are multiples of KIVI_MIN_CHUNK, at most
#: KIVI_PROGRAMS_PER_SM programs per SM where the cache allows, KIVI_BLOCK_N tokens a loop step.
KIVI_MIN_CHUNK = 256
KIVI_PROGRAMS_PER_SM = 2
KIVI_BLOCK_N = 64
#: Programs of the split-KV decode kernel resident on one SM at a time (:func:`kivi_rounds`):
#: the two its split is sized for, as the measured times show (int8 at head dim 128, less the
#: fitted ``kivi_fixed_us``: 512 programs of 32768 tokens, 3.9 per SM, and 2048 of 8192, 15.5
#: per SM, take 0.081 and 0.080 us per token of each round of pairs on the H100,
#: ``measured_h100_quant_graph.csv``, 0.076 and 0.076 on the H200, ``measured_h200_quant.csv``;
#: 384 programs of 11008, 2.9 per SM, a round of pairs and then programs alone, take 1.69 and
#: 1.73x as long per token of their chunk as 256 programs of 1024, 1.9 per SM, not the 1.5x of
#: three programs sharing an SM's throughput).
KIVI_RESIDENT_PER_SM = 2
TILES = ((128, 256), (128, 128), (64, 128), (64, 64))
SPLITS = (1, 2, 4, 8)
#: cuBLAS's Hopper kernels for aligned bf16/fp16 (``nvjet_sm90_*``) size their CTA tile to the
#: shape (:func:`shape_fitted_tiles`), beside the fixed :data:`TILES`: as the ``kernels`` column
#: of ``sim/data/gpu/measured_h100_random.csv`` recorded (a kernel's name gives its tile as
#: cuBLAS's ``m x n``, i.e. columns of C by rows of C here), 695x3808x14176 ran 176 rows by 128
#: columns (4 x 30 = 120 tiles, one wave; 128x256 would pad N to 3840 and 128 rows would leave
#: 6 x 30 = 180 tiles, two waves), 1223x1920x3808 96 by 192 (13 x 10 = 130 tiles), 11736x3680x
#: 10976 152 by 256 and 16008x592x7200 128 by 304. Their columns, every multiple of 16 from
#: NVJET_TILE_BN's first to its last as recorded (64, 96, 112, 128, 144, 192, 224, 256, 304
#: among the GEMMs above 2 GFLOP); their rows a multiple of NVJET_TILE_ROWS_STEP (72, 80, 96,
#: 104, 120, 128, 136, 152, 160, 176, 192, 208 recorded), at least NVJET_TILE_MIN_ROWS (fewer
#: rows than that run the fixed tiles' padding in the model); a tile at most
#: NVJET_TILE_MAX_AREA elements of C (the largest recorded: 256x160, then 192x208 and 304x128:
#: the fp32 accumulators of two consumer warp groups).
NVJET_TILE_BN = tuple(range(64, 305, 16))
NVJET_TILE_ROWS_STEP = 8
NVJET_TILE_MIN_ROWS = 64
NVJET_TILE_MAX_AREA = 256 * 160
#: The split-K variant of the fallback kernels (:func:`gemm_family` align1, align2): its
#: splits (any count: 3, 5, 11, 17, 27, 56 and more were recorded, not only powers of two),
#: a second kernel (the reduction) even unsplit, and the K from which it always runs where
#: the tiles leave SMs idle (128x128 tiles and 64x64 ones fewer than the SMs; every such
#: recorded launch of the s1688/s16816 kernels of K 256 and more but 3674x102x303 bf16). Below
#: it cuBLAS ran either (the kernels columns of every measured run that has them): bf16 align-1
#: launches split from K = 4 on (37x147x81 in 11 splits, 10x97x218 in 28, 71x101x146 in 19,
#: 35x183x181 in 23, 231x156x207 in 3, 69x405x65, 6269x25x9, 22x461x4) and ran whole up to
#: K = 182 (31x8143x182, 131x1513x180, 20x8033x157, 2x614x141 and on), no bound of K, M, N or
#: their tile counts parting them: the model takes the faster of the two there
#: (tests/test_gpu.py counts the recorded launches it matches).
FALLBACK_SPLITS = tuple(range(1, 65))
FALLBACK_SPLIT_K = 256
#: ... but where the 64x64 tiles (UNDERFILLED_TILE) alone fill the SMs, the shortest K it runs
#: for is longer: every such recorded launch (the kernels columns of measured_h100_misaligned.csv,
#: measured_h100_v2_gemm_kernels.csv and measured_h100_random.csv) with K of 934 and less ran
#: unsplit (199x5670x273 bf16, 1433x956x312 bf16, 5426x102x508 fp16, 668x990x934 fp16), every
#: one with K of 1310 and more split (1510x582x1310 bf16, 1541x958x1413 fp16, 3490x333x1514
#: bf16 and on); the bound is their geometric mean, round(sqrt(934 * 1310))
#: (tests/test_gpu.py recomputes it). 1433x956x312 and 5426x102x508 are held-out rows: their
#: recorded kernels, not their times, were read in setting it.
FALLBACK_SPLIT_K_FILLED = 1106
#: CUTLASS's serial split-K of the fallback kernels (:func:`gemm_family` align1, align2): no
#: splitKreduce_kernel; the launch's grid is z slices deep, each slice walks its share of K and
#: the slices of a tile add into C in turn (a semaphore: each slice reads the partial tile the
#: one before stored, adds its own and stores it). cuBLAS ran it for the large tiles
#: (:data:`FALLBACK_SERIAL_TILES`) where 128x128 tiles fill the SMs (else the split-K variant
#: and its reduction run: FALLBACK_SPLIT_K) and the launch's tiles are at least the SMs (none
#: of fewer split: 1180x1972x2276 fp16, 80 256x128 tiles, ran whole), z as
#: :func:`fallback_serial_splits` picks it: the fewest waves of CTAs times each slice's walk,
#: its share of K plus FALLBACK_SERIAL_K0 elements, with FALLBACK_SERIAL_SLOTS CTAs of a tile
#: resident per SM. Of the 113 such recorded launches (the kernels columns of
#: measured_h100_random.csv, measured_h100_misaligned.csv, measured_h100_v2_gemm_kernels.csv and
#: their _graph/_repeat runs, measured_h100_store.csv's 20 and measured_h100_cstore.csv's
#: 2000x2100x256; 19 of them with z of 2 to 6: 1097x2114x4477 bf16 in 5, 3001x1023x4097 in 4,
#: 9471x2010x8023 fp16 in 2, ...) the rule gives the recorded z of 107 for any
#: FALLBACK_SERIAL_K0 from 135 to 147 (the midpoint: 141; tests/test_gpu.py recomputes it and
#: names the misses: 1102x4274x980 fp16 and 5502x998x1728 bf16 in 3 slices for 1 and 2,
#: 14659x515x3111 bf16 in 3 for 4, 417x10112x1466 fp16 in 3 for 2, 9488x14494x5123 bf16 and
#: the store probe's 11059x12889x753 fp16 whole for 2).
#: Measured, each z slice's CTAs step along K as fast as unsplit ones of the tile, in waves of
#: all the slices' CTAs, and each slice stores its partial tile of C (all but the first read
#: one): at their recorded tile and z the model is off the profiler's kernel times of the 14
#: H100 split launches the rule matches by 6.3% (MAPE; 2.2% too fast on average), where
#: modelled whole it is off by 11.6% (9.0% too slow): tests/test_gpu.py recomputes both.
FALLBACK_SERIAL_TILES = ((128, 128), (128, 256), (256, 128))
FALLBACK_SERIAL_K0 = 141
#: ... CTAs of a 128x128 tile resident per SM (two: CUTLASS's s1688/s16816 128x128 kernels run
#: 128 threads; the 128x256 and 256x128 ones 256 threads, one per SM), as the rule counts its
#: waves: one per SM for every tile matches at most 102 of the 113 launches above (at any
#: FALLBACK_SERIAL_K0).
FALLBACK_SERIAL_SLOTS = {(128, 128): 2}
#: A misaligned bf16/fp16 GEMM with one column of C ran cuBLAS's dot_kernel and then its
#: reduce_1Block_kernel (two launches) for one row, and for at most DOT_MAX_ROWS rows with K
#: above DOT_MIN_K (the calibration rows: dot at 30, 41 rows and K 924 to 14486, one row and
#: K 2 to 251; gemvx at 158 rows and more, and at 3 rows with K 69).
DOT_MAX_ROWS = 64
DOT_MIN_K = 128
#: A misaligned bf16/fp16 GEMV (one row of A, or one column of C) cuBLAS split along K, its
#: gemv2T kernel's grid 8 deep along z, then cuBLASLt's splitKreduce_kernel (a second
#: launch), from GEMV_SPLIT_MIN_K on where C has at most GEMV_SPLIT_MAX_LEN elements: the
#: recorded launches (the kernels columns of measured_h100_random.csv and
#: measured_h100_v2_gemm_kernels.csv) split 1x85x7448 and 1x4096x11007 and no GEMV of K 4097
#: or less (1x1023x4097, 1x11007x4096, 5777x1x4031), nor 1x8972x9078; the bounds are the
#: geometric means of those neighbours, round(sqrt(4097 * 7448)) and round(sqrt(4096 * 8972))
#: (tests/test_gpu.py recomputes them).
GEMV_SPLIT_MIN_K = 5524
GEMV_SPLIT_MAX_LEN = 6062
#: The shortest K at which cuBLAS ran its CUDA-core kernel (gemmSN_TN_kernel) for a bf16 GEMM
#: of fewer than 16 rows at vector 1 with K below twice N: 7x5143x149 (recorded on the H100:
#: the kernels columns of measured_h100_misaligned.csv and measured_h100_v2_gemm_kernels.csv);
#: at K of 141 and less (2x614x141, 4x3036x39, 2x1587x3) it ran the s1688 64x64 tiles, and
#: from 149 on, every such GEMM recorded ran gemmSN, slower than the tiles would have been
#: (7x11007x4096: 156 us, where 7x4096x11007 ran split-K tiles in 102); with fewer than 16
#: columns of C too, at any K below twice N (10x5x4; 3x2x925 ran the split-K tiles, as did
#: every GEMM of C's fewer than 16 columns from 16 rows on).
GEMMSN_MIN_K = 149
#: ... and with K at least twice N (where the split-K tiles run) in a band of K: every such
#: bf16 GEMM of 2 to 15 rows recorded with K from 1156 to 1276 ran gemmSN (2x97x1243,
#: 6x17x1276, 14x23x1156), every one with K of 925 and less or 1663 and more the split-K
#: tiles (3x2x925, 2x63x513, 7x69x346; 10x151x1663, 5x162x2915, 7x1023x4097, 7x231x5283,
#: 6x23x6785, 7x4096x11007, and the long-K probe's 19 others of K 2297 to 15375) but
#: one (the probe's 3x2645x13831 ran gemmSN: the only such launch of fewer than 7 rows and
#: more than 1000 columns, too few to read a bound from); the band's ends are the geometric
#: means of those neighbours, round(sqrt(925 * 1156)) and round(sqrt(1276 * 1663))
#: (tests/test_gpu.py recomputes them and names the one exception).
GEMMSN_BAND_K = (1034, 1457)
#: ... but from six rows on, with K below twice N, only up to a K that grows as a power of N
#: (GEMMSN_REACH_POWER): the probe of 256 bf16 GEMMs of 2 to 17 rows at vector 1
#: (``python -m sim.gpu.shapes --gemmsn``, measured_h100_gemmsn.csv: N of 301 to 12001, K from
#: half N to 1.9 N) ran gemmSN at every shape of 2 to 4 rows, but from 6 rows on the split-K
#: tiles once K passed a bound of about ``c * N**GEMMSN_REACH_POWER`` (6 and 7 rows: gemmSN at
#: 6x1201x601, 6x4001x4001 and the long-K probe's 7x8133x13313, the nearest below the bound,
#: the tiles at 6x1201x1201, 6x4001x6001 and 6x301x151, the nearest above it), with
#: ``c`` smaller for more rows, and its own for 8 and for 9 rows (9 rows run the 10-row
#: template, 8 the 8-row one: at 12001 columns gemmSN ran 8x12001x18001, the tiles
#: 9x12001x18001); from 10 rows on also no further than K of 535 (12x1377x501 ran gemmSN,
#: 11x1201x601, 11x4001x2001 and 11x12001x6001 the tiles). Each ``c`` (and the 535) is the
#: geometric mean of the neighbouring recorded launches' ``K / N**GEMMSN_REACH_POWER`` (K) at
#: the split with the fewest launches on the wrong side (tests/test_gpu.py recomputes them over
#: every recorded launch and names the four that fall on the wrong side: 8x12001x22801 ran
#: gemmSN, 10x4001x2001 and two 301-column GEMMs of 14 and 15 rows gemmSN). Five rows follow
#: the rule of fewer (5x1201x1801 and 5x1201x2281 ran the tiles: two of 21 five-row launches).
#: cuBLAS's choice is its own heuristic's, not the faster kernel's: 9x12001x12001 ran gemmSN
#: in 463 us, 10x12001x12001 the tiles in 219.
#: Per band of rows: (first rows, last rows, c, the longest K or None).
GEMMSN_REACH: tuple[tuple[int, int, float, int | None], ...] = (
    (6, 7, 0.0413, None), (8, 8, 0.0299, None), (9, 9, 0.0272, None), (10, 15, 0.0184, 535))
#: ... the power of N in GEMMSN_REACH's bound: the middle of the powers (in steps of 0.01) at
#: which its bands' bounds leave the fewest recorded launches on the wrong side (four, from
#: 1.37 to 1.47; at 1.5, where 8 and 9 rows shared a band, five: 9x12001x18001 then ran the
#: tiles where the bound gave gemmSN, 2.3 times the time; tests/test_gpu.py recomputes it).
GEMMSN_REACH_POWER = 1.42
#: The columns of C one CTA of cuBLAS's gemmSN kernel computes, over the whole of K: its grid
#: was ceil(N / 8) CTAs along N in every recorded launch (273 at N = 2178, 3 at N = 23, 1376
#: at N = 11007: the kernels columns of measured_h100_misaligned.csv and
#: measured_h100_v2_gemm_kernels.csv), each over all rows of A (its template's row count: M
#: rounded up to even) but at 12 rows, two CTAs of 6 each along the grid's y.
GEMMSN_CTA_COLS = 8
#: The rows of A gemmSN computes come in steps of two: each recorded launch's template computes
#: M rounded up to even (its template's row parameter 2 at 2 rows, 4 at 3 and 4, 6 at 5 and 6,
#: 8 at 7 and 8, 10 at 9 and 10, 14 at 14; two CTAs of 8 along the grid's y at 15 and 16: the
#: kernels column of measured_h100_gemmsn.csv), and 5 rows took as long as 6 (303 and 306 us
#: at 12001x12001), 7 as long as 8 (442 and 446 us).
GEMMSN_ROWS_STEP = 2
#: The rows at which cuBLAS ran a gemmSN template whose last flag is true: 2 and 4, each with
#: its row parameter equal to M (``gemmSN_TN_kernel<float, 128, 16, 2, 4, 2, 2, true>`` and
#: ``<..., 4, 4, true>``); every other row count ran a template with the flag false, 3 rows the
#: same 4-row template as 4 (``<..., 4, 4, false>``), 5 and 6 the 6-row one, 7 and 8 the 8-row
#: one, 9 and 10 the 10-row one (the kernels column of measured_h100_gemmsn.csv, and of
#: measured_h100_misaligned.csv, measured_h100_random.csv, measured_h100_v2_gemm_kernels.csv:
#: tests/test_gpu.py checks every recorded launch). The flag-false 4-row template ran 3 rows
#: 1.30 times as long as the flag-true one ran 4 (309 and 238 us of kernel at 12001x12001):
#: the rows past M predicated off in its loop (GEMMSN_SPEED).
GEMMSN_EXACT_ROWS = (2, 4)
#: The rate of each gemmSN template's CUDA cores over the rows it computes
#: (:func:`gemmsn_template`), relative to the 8-row template's, the template of the largest
#: calibration row the fitted ``simt_tflops`` serves (7x11007x4096): over the probe's
#: calibration rows with N of 4001 and more (measured_h100_gemmsn.csv, split ``cal``: 501 CTAs
#: and more, four to eleven to an SM, where the operations bind, not one CTA's walk), the
#: median of ``2 R N K`` over the profiled kernel time (``R`` the template's rows) divided by
#: the 8-row template's at the same N and K: the 4-row template 0.905 with its flag true, 0.691
#: with it false (its predicated path: 3.73 TFLOP/s where the flag-true one ran 4.83 and the
#: 8-row one 5.35, at 12001x12001), the 6-row one 1.10 (seven shapes), the 10-row one 1.09
#: (one shape, 10x4001x2001). Templates without an entry run at 1: the 2-row one is load-bound
#: there (its rate not its CUDA cores'), the larger ones have no such calibration row.
#: tests/test_gpu.py recomputes the table.
GEMMSN_SPEED: dict[tuple[int, bool], float] = {
    (4, False): 0.691, (4, True): 0.905, (6, False): 1.099, (10, False): 1.094}


#: The rows of A at which cuBLAS's gemmSN launches ran two CTAs along the grid's y for each
#: GEMMSN_CTA_COLS columns of C, each over half of the rows: 12 (two of the 6-row template),
#: 15 and 16 (two of the 8-row one); every other recorded row count ran one (14 one of the
#: 14-row template: the kernels columns of measured_h100_gemmsn.csv,
#: measured_h100_misaligned.csv and measured_h100_v2_gemm_kernels.csv; tests/test_gpu.py
#: checks every recorded launch).
GEMMSN_ROW_CTAS = {12: 2, 15: 2, 16: 2}


#: The fewest rows a gemmSN CTA walks K as: the 2-row template's CTA walks no faster than the
#: 4-row flag-true one's (its loop's latency per element of K, not its two rows' products,
#: sets its pace). Timed, the probe's launches where one CTA's walk binds (measured_h100_gemmsn.csv,
#: N of 301 and 1201: 38 and 151 CTAs on 132 SMs) took per element of K (least squares of the
#: time over K, less the L2 write-back's ramp over K that the walk waits behind) 1.27 and 0.89
#: times as long at 2 rows as at 4, where a walk in proportion to the rows would take 0.5: the
#: rows of the 4-row template's walk that time is, 4 times their geometric mean (4.26), to the
#: template rows' step (GEMMSN_ROWS_STEP), is 4 (tests/test_gpu.py recomputes it). Held out on
#: another run: 2x97x1243 bf16 (13 CTAs, each alone on its SM, measured_h100_misaligned.csv)
#: took 11.6 us, where the walk in proportion to its rows predicted 8.5.
GEMMSN_MIN_WALK_ROWS = 4
#: The speed of a gemmSN template's walk along K where it is not its rate's (GEMMSN_SPEED),
#: relative to the 8-row template's: the 4-row template with its flag false (3 rows,
#: GEMMSN_EXACT_ROWS) walks K 2.2 times as long as with its flag true, where its rate over
#: many CTAs is 1.31 times as low (its predicated path lengthens each step of its loop more
#: than it costs the SM's throughput): on the probe's calibration rows at N = 1201 (151 CTAs,
#: at most two to an SM: the walk binds), the least-squares time per element of K of the
#: 3-row GEMMs over the 4-row ones', each less the ramp's (10.97 and 5.81 ns, less 1.53),
#: times the 4-row flag-true template's speed (tests/test_gpu.py recomputes it). Held out on
#: another run: 3x1117x1142 bf16 (measured_h100_random.csv) took 18.7 us, where the walk at
#: GEMMSN_SPEED's 0.691 and without the ramp predicted 12.7.
GEMMSN_WALK_SPEED: dict[tuple[int, bool], float] = {(4, False): 0.410}


def gemmsn_walk(rows: int, exact: bool) -> tuple[int, float]:
    """(rows, speed) of one gemmSN CTA's walk along K for its template's ``rows`` and flag
    (:func:`gemmsn_template`): at least :data:`GEMMSN_MIN_WALK_ROWS` rows (those of the
    flag-true template of that many), at the template's walk speed
    (:data:`GEMMSN_WALK_SPEED`, else its rate's, :data:`GEMMSN_SPEED`, else 1)."""
    if rows < GEMMSN_MIN_WALK_ROWS:
        rows, exact = GEMMSN_MIN_WALK_ROWS, True
    key = (rows, exact)
    return rows, GEMMSN_WALK_SPEED.get(key, GEMMSN_SPEED.get(key, 1.0))


def gemmsn_template(M: int) -> tuple[int, int, bool]:
    """(rows, CTAs along y, exact) of the gemmSN template cuBLAS runs for ``M`` rows of A: the
    rows each of its CTAs computes (all of them rounded up to even, :data:`GEMMSN_ROWS_STEP`,
    over :data:`GEMMSN_ROW_CTAS`), how many CTAs share the rows, and whether its flag is true
    (:data:`GEMMSN_EXACT_ROWS`); (rows, exact) is the key of :data:`GEMMSN_SPEED`."""
    ctas = GEMMSN_ROW_CTAS.get(M, 1)
    rows = -(-M // (GEMMSN_ROWS_STEP * ctas)) * GEMMSN_ROWS_STEP
    return rows, ctas, M in GEMMSN_EXACT_ROWS


#: The CTA tiles (rows of M, columns of N) of each fallback family's kernels, as
#: ``sim.gpu.measure --kernels`` recorded them on the H100 (the kernels columns of
#: ``sim/data/gpu/measured_h100_misaligned.csv`` and ``measured_h100_v2_gemm_kernels.csv``: the
#: tile in the kernel's name, its orientation from the launched grid): ``align1`` CUTLASS's
#: s1688 64x64, 128x128 and 128x256 tiles and the wmma 32x32 one; ``align2`` its s16816
#: 128x64, 64x128, 128x128, 128x256 and 256x128 and the wmma 32x32; ``int8_align8`` its i16832
#: align-4 tiles as they ran: cuBLAS computes the transposed product (``C^T = W A^T``, column
#: major), so a CUTLASS name's first tile dimension runs along N (every recorded CUTLASS launch's
#: grid is ``ceil(M / BM) x ceil(N / BN)`` so, with the kernel's swizzle:
#: ``test_cutlass_grid_orientation`` in tests/test_gpu.py): ``_64x64_``, ``_128x64_`` (64 rows
#: of M, 128 columns of N), ``_128x128_``, ``_256x128_`` (128 x 256) and ``_128x256_``
#: (256 x 128), one of them as cuBLAS dispatches it (:func:`int8_align4_tile`; the
#: ``_128x128_`` tile ran on the random and tiles datasets, 86x14424x232 to 4053x296x2936).
FALLBACK_TILES: dict[str, tuple[tuple[int, int], ...]] = {
    "align1": ((128, 256), (128, 128), (64, 64), (32, 32)),
    "align2": ((256, 128), (128, 256), (128, 128), (128, 64), (64, 128), (32, 32)),
    "int8_align8": ((128, 256), (256, 128), (128, 128), (64, 128), (64, 64)),
}
#: The CTAs of the align-1 kernels' split-K variant (fp32 partials, then splitKreduce_kernel) of
#: these tiles step along K by their own measure, (ns per loaded row and element of K, the
#: CTA's start and end in elements of K), not the family's load bandwidth and
#: fallback_tile_k0: a CTA loads only the rows of A and W inside the matrices (its predicated
#: loads of the rows past M issue no reads: at 5 to 17 rows a 64x64 CTA loads 69 to 81 rows,
#: not 128) at that time per row where its SM runs enough CTAs to hide their loads' latency,
#: and alone on its SM at align1_lone_step_ns, the excess shared among the CTAs an SM runs
#: (:func:`_loaded_tiles_us`). Fitted (least mean absolute log error, the lone step the
#: calibration's) on the profiled kernel times of every recorded H100 launch of the split-K
#: 64x64 align-1 tile (221: the kernels columns of measured_h100_gemmsn.csv,
#: measured_h100_misaligned.csv, measured_h100_random.csv, measured_h100_v2_gemm_kernels.csv;
#: at their recorded grids): 11.6% MAPE, where the family's 16.6 ns per element of K for
#: every such CTA and its 32 of start and end leave the probe's 12001-column GEMMs of 9 to 17
#: rows 23% slow (the model ran them in 128x256 tiles, the recorded launches ran 64x64:
#: 10x12001x12001, 3008 CTAs, 23 to an SM, 208 us of kernel). tests/test_gpu.py refits them.
#: The long-K probe's 40 such launches (measured_h100_longk.csv: one to four CTAs to an SM)
#: are not among them: this step leaves them 15% slow on average (a CTA's step along K, about
#: 24 ns alone on its SM, was 13.7 with two to an SM, 12 with three and 10.5 with four, where
#: the lone step's excess shared among them gives 18, 15 and 13), and with them the fit moves
#: to (0.1284, 94.5) at 12.2% MAPE, which times the gemmSN probe's kernels worse than this one
#: (measured_h100_gemmsn.csv 6.5% -> 6.8%, measured_h200_gemmsn.csv 7.2% -> 7.6%). A step that
#: fits all 261 at 9.3% (the SM's CTAs' steps summed and the lone step in a p-norm, 0.147 ns,
#: 117 elements, exponent 5) was tried and not kept: fitted on the profiler's kernel times
#: (the L2 warm), it timed the runs' kernels (after the L2's flush) worse still, refitted
#: family parameters and all (measured_h100_gemmsn.csv 7.8%, measured_h100_longk.csv 12.3%).
ALIGN1_SPLIT_STEPS = {(64, 64): (0.132, 95.0)}
#: The tile of the fallback families' wmma kernels (``cutlass_75_wmma_tensorop_*`` at vector
#: 1, ``cutlass_80_wmma_tensorop_*`` at 2 or 4). Turing's (sm_75) WMMA has no bf16 fragments
#: (bf16 ``wmma`` came with sm_80: CUDA C++ Programming Guide, warp matrix functions), so bf16
#: at vector 1 runs only the s1688 tiles: none of the bf16 align-1 launches recorded ran a
#: wmma kernel (the kernels columns of measured_h100_misaligned.csv and
#: measured_h100_v2_gemm_kernels.csv), where fp16's ran them from 2 to 13657 rows.
WMMA_TILE = (32, 32)
#: The shortest K at which the wmma kernels ran split (their split-K variant and the
#: reduction kernel), as recorded on the H100: 36x18x717 fp16 in 8 splits; below it they ran
#: whole even where 128x128 tiles leave SMs idle and K is past FALLBACK_SPLIT_K (47x154x274
#: and 581x2x788 bf16, 12x314x429 fp16), where the s1688/s16816 kernels split; from it on
#: they ran split or whole (7239x25x918 fp16 whole).
WMMA_SPLIT_K = 717
#: ... and with fewer than 16 rows, only from a longer K: where a wmma kernel exists (fp16,
#: and bf16 at vector 2 or 4), GEMMs of fewer than 16 rows ran it (its 16x16 or 32x32 tiles,
#: no tensor-op tile of 64 rows and more; but at K = 1, 7x16111x1 fp16 ran 64x64, and one
#: held-out fp16 row, 9x836x429, ran gemmSN). Of the recorded launches so with K of
#: FALLBACK_SPLIT_K and more (the kernels columns of every measured run that has one), those
#: of K 2259 and less ran whole (4x171x2259 fp16 of the long-K probe, 5x73x1150 and 5x124x861
#: fp16, 12x7423x956 fp16, 4x236x380 bf16 and on) but 14x512x498 bf16 (8 splits), and every
#: one from K = 2404 on split (8x5652x2404 fp16 in 3, 2x910x2497 fp16 in 15, 15x453x2783 fp16
#: in 16, 13x148x5466 bf16 in 16); the bound is the geometric mean of those neighbours,
#: round(sqrt(2259 * 2404)) (tests/test_gpu.py recomputes it and counts the one exception).
WMMA_SPLIT_K_FEW_ROWS = 2330


def wmma_split_k(M: int) -> int:
    """The shortest K from which the wmma kernels run split for a GEMM of ``M`` rows:
    :data:`WMMA_SPLIT_K_FEW_ROWS` below 16 rows, else :data:`WMMA_SPLIT_K`."""
    return WMMA_SPLIT_K_FEW_ROWS if M < 16 else WMMA_SPLIT_K


#: The largest CTA tile the align-1 kernels ran whole (no split-K reduction) where 128x128
#: tiles would leave SMs idle: the s1688 64x64 tile. All 40 such recorded align-1 launches
#: with K below FALLBACK_SPLIT_K (the kernels columns of measured_h100_misaligned.csv and
#: measured_h100_v2_gemm_kernels.csv) ran 64x64 tiles or, in fp16, the wmma ones:
#: 1639x939x148 and 2259x809x222 bf16 among them, 104 and 126 such tiles, where 128x128 tiles
#: would take one wave; with as many tiles as SMs or more the model takes the fastest (they
#: ran 128x128 at 5435x545x54 fp16, 215 tiles, and 646x6639x2 bf16, 312).
UNDERFILLED_TILE = (64, 64)
#: The tile of cuBLASLt's Hopper int8 kernel for K a multiple of 16 and N off 16
#: (``sm90_xmma_gemm_i8i32_i8i32_i32_tn_n_tilesize256x128x128``: 256 rows of M, 128 columns of
#: N, as its grid was recorded), launched in clusters of two along N.
INT8_N8_TILE = (256, 128)
#: ... while its CTAs (one per tile, in clusters of two along N) fit this many waves of the
#: SMs; beyond, cuBLASLt ran CUTLASS's 128x64 align-4 tile (:data:`INT8_N8_CUTLASS_TILE`),
#: whatever K. Every recorded launch: ``measured_h200_int8n8.csv`` (72 GEMMs at N = 1032 and
#: 4104, K of 128 to 8192, its rows spaced in tile counts: the Hopper kernel up to 260 CTAs,
#: 3832 to 6648 rows at N = 1032 among them, CUTLASS from 272, at every K alike) and the H100's
#: (``measured_h100_tiles.csv``: 1536x4104x4096, 204 CTAs, the Hopper kernel, 2048x4104x4096,
#: 272, CUTLASS; the random and misaligned datasets' launches, 58 CTAs at most): two waves of
#: the 132 SMs, 264 CTAs, lie between the two (tests/test_gpu.py checks every launch). An
#: earlier bound on multiply-adds (2.98e10, from the two tile-dataset launches alone) put
#: 6648x1032x8192 on CUTLASS (the model 5.8 times its 91 us) and 7416x1032x1024 on the Hopper
#: kernel (0.42 times its 70 us).
INT8_N8_MAX_WAVES = 2
#: CUTLASS's 128x64 align-4 tile as :data:`FALLBACK_TILES` orients it (64 rows of M, 128 columns
#: of N), where cuBLASLt leaves its Hopper kernel (:data:`INT8_N8_MAX_WAVES`).
INT8_N8_CUTLASS_TILE = ((64, 128),)
#: ... its CTAs' step along K by their own measure, (ns per loaded row, in
#: :func:`int8_align4_sectors`, and element of K; the CTA's start and end in elements of K), not
#: the K-off kernels' fitted load bandwidth and int8_align8_tile_k0: there (K a multiple of 16)
#: cuBLASLt runs that tile's three-stage variant (``i16832gemm_s8_128x64_128x3_tn_align4``: 72 KB
#: of shared memory, three CTAs to an SM), where at K 8 off 16 it ran the six-stage one
#: (``_128x64_128x6_``, 144 KB, one CTA to an SM: every recorded launch of the 64x128 tile,
#: 100x4104x4104 and 205x2496x56 among them); and their rows of K bytes start on a 32-byte
#: sector wherever K is a multiple of 32, where the K-off rows never do. Measured, the probe's
#: 32 launches of it took 6.7 to 7.4 ns per element of K per wave of 64x128 tiles at K of 4096
#: and 8192 (``measured_h200_int8n8.csv``, and 2048x4104x4096 on the H100 7.2:
#: ``measured_h100_tiles.csv``), where the K-off path's load bandwidth gives 7.7, and the
#: launches at K an odd multiple of 16 (6001x4104x4112: 8.0) about one in eight more. Fitted
#: (least mean absolute log error, as :data:`ALIGN1_SPLIT_STEPS`, at ``ceil(tiles / SMs)`` CTAs
#: to the busiest SM) on every recorded launch of that kernel (69: the kernels columns of
#: measured_h200_int8n8.csv, measured_h100_int8n8.csv, measured_h100_tiles.csv,
#: measured_h100_misaligned.csv, measured_h200_misaligned.csv, measured_h100_random.csv and
#: measured_h100_v2_gemm_kernels.csv), their timed us less the calibration's fixed_us (the
#: model's composition: a kernel's own start is in fixed_us; fitted on the profiled kernel times
#: instead, 0.03546 ns and 266.5 elements, the probe's K = 128 rows came out 10% slow, its
#: timed rows 3.1 to 4.2 us beyond their kernels where fixed_us is 6.0): 2.9% MAPE, where the
#: K-off path's constants left the probe's rows 13 to 26% slow. tests/test_gpu.py refits them.
INT8_N8_CUTLASS_STEPS = {(64, 128): (0.03459, 233.0)}
#: A wave of the Hopper int8 kernel's CTAs (:data:`INT8_N8_TILE`) past the first adds its
#: start and end (its C tile, 256x128 int32, 128 KB a CTA, stored; the next tile's pipeline
#: filled) as this many elements of K at its step: 706, the least-squares fit of the probe's
#: 40 launches of it (``measured_h200_int8n8.csv``, kernels column: K of 128 to 8192 at one
#: wave, 102 and 110 CTAs, and at two, 136 to 260; profiled kernel time ``a + (waves - 1) b +
#: waves K c``: b = 3.39 us, c = 4.80 ns per element of K, 2.2% MAPE; k0 = b / c). With
#: ``fallback_tile_k0`` (32) a wave alone, the two-wave launches at K = 1024 ran 15 to 22% longer
#: than the model gave (tests/test_gpu.py refits it).
INT8_N8_WAVE_K0 = 706
#: The aligned bf16/fp16 kernels' stores of C, and the fp8 kernels' (a bf16 C; their fit group
#: gemm_fp8 fitted with C's stores apart, below) (``nvjet_sm90``: each CTA stores its C tile from
#: shared memory by TMA while it or the next CTA on its SM runs the next tile's main loop): they
#: drain at STORE_EFF times the card's streaming read (:func:`c_store_s`) and overlap the tiles'
#: work and the operands' reads in part, as the p-norm of exponent ``1 + STORE_OVERLAP``
#: (:func:`_overlapped`: 0 would add them, a large value take the larger). Measured on the H100
#: (``python -m sim.gpu.shapes --store``, measured_h100_store.csv: M and N in the thousands, K 16 to
#: 2048), at 8192x8192 a bf16/fp16 GEMM of K 16 to 64, its bytes nearly all C's 134 MB, took 54.6 to
#: 56.1 us (C at 2.7 TB/s less the fixed cost, where C's bytes at the reads' 2.94 TB/s plus the L2's
#: write-back gave 63.4 to 63.9 us), and from K 512 to 2048 the larger of its products and all its
#: bytes was 9 to 21% short (the stores do not all hide under the main loop). Fitted (least mean
#: absolute log error over a grid of 0.01 in each, the calibration held) on the calibration rows,
#: their timing steady, of the aligned bf16/fp16 GEMMs of measured_h100_v2.csv,
#: measured_h100_random.csv, measured_h100_store.csv and the short-K probe's
#: measured_h100_shortk.csv (``python -m sim.gpu.shapes --shortk``: C of 2 to 64 MB, K 16 to 512;
#: 224 rows): their error 0.051, where the previous fit without the short-K rows (1.10 and 0.19)
#: gave 0.053 and the stores as bytes of the reads 0.059 or more. Held out, the short-K probe's rows
#: 0.105 -> 0.064 (its run's MAPE 9.8 -> 6.3%), the C-store probe's (``--cstore``,
#: measured_h100_cstore.csv, in no fit) 0.110 -> 0.091, the store probe's 0.061 -> 0.065, v2's 0.035
#: -> 0.036, random's 0.064 -> 0.063. The fp8 kernels' group (gemm_fp8) stays at its fit with the
#: previous constants: refitted with these and the short-K rows, its L2 rate (fp8_load_gb_per_s,
#: which bounds the bf16/fp16 tiles' loads too) fell from 19.2 to 15.1 TB/s and the v2, random and
#: H200 held-out runs came out worse. What is left: the C-store probe's kernels store at a rate of
#: their own tile (C of 34 MB at K = 32: 12.5 us of kernel at 128x256 tiles, 17.8 us at 4000x4200's
#: 128x144 and 16.7 us at 2048x8208's 168x128; 8000x4200 in 192x192 tiles 42.7 us, where 8192x4096
#: took 26.6), which one rate does not follow. tests/test_gpu.py checks that no neighbour on the
#: grid fits better.
STORE_EFF = 1.12
STORE_OVERLAP = 0.32


def int8_n8_ctas(M: int, N: int) -> int:
    """The CTAs of cuBLASLt's Hopper int8 kernel for ``M x N`` (padded): one per
    :data:`INT8_N8_TILE`, in clusters of two along N."""
    bm, bn = INT8_N8_TILE
    return _cdiv(M, bm) * 2 * _cdiv(N, 2 * bn)


def int8_n8_hopper(sm_count: int, M: int, N: int, K: int) -> bool:
    """Whether an int8 GEMM of family ``int8_align8`` (padded ``M x N x K``) runs cuBLASLt's
    Hopper kernel: K a multiple of 16 and its CTAs within :data:`INT8_N8_MAX_WAVES` waves of
    the SMs; else CUTLASS's align-4 kernels."""
    return K % VECTOR_BYTES == 0 and int8_n8_ctas(M, N) <= INT8_N8_MAX_WAVES * sm_count
#: The CTA tiles (rows of M, columns of N) cuBLASLt dispatches for an aligned int8 GEMM (K and
#: N multiples of 16: torch._int_mm), as ``sim.gpu.measure --kernels`` recorded them on the
#: H100 (the kernels columns of ``measured_h100_v2_gemm_kernels.csv``, its _repeat and
#: ``measured_h100_misaligned.csv``): CUTLASS's sm80 i16832 align-16 kernels, oriented as
#: :data:`FALLBACK_TILES` (``_64x64_`` 64 x 64, ``_128x64_`` 64 x 128, ``_128x128_``,
#: ``_128x256_`` 256 x 128); never a Hopper (sm90) kernel. Which one runs is
#: :func:`int8_tile` (rules checked against every recorded launch by tests/test_gpu.py).
INT8_TILES = ((64, 64), (64, 128), (128, 128), (256, 128))
#: The most rows of M for which the 64x64 tile ran however many tiles it takes: 32 (every
#: recorded launch of 32 rows or fewer ran it, up to 224 tiles at 32x14336x4096; 64x11008x4096,
#: 172 tiles, ran 64x128).
INT8_SMALL_M = 32
#: The most waves of 64x64 tiles over the SMs at which that tile ran from 33 rows on: 170
#: tiles on the H100's 132 SMs, the geometric mean of 168 (5344x80x2848 ran it, as did
#: 358x1680x80 at 162 and 1247x496x656 at 160: ``measured_h100_random.csv``) and 172
#: (64x11008x4096 ran 64x128).
INT8_64X64_MAX_WAVES = math.sqrt(168 * 172) / 132
#: The fewest 256x128 tiles at which that tile ran: 256 (8192x1024x4096 and seven more shapes at
#: exactly 256 ran it; 512x11008x4096 at 172 and 1000x4112x4112 at 132 did not), and only with K
#: at least :data:`INT8_256X128_MIN_K`.
INT8_256X128_MIN_TILES = 256
#: ... the shortest K at which it ran there: every recorded launch of at least
#: :data:`INT8_256X128_MIN_TILES` such tiles (and more than :data:`INT8_64X64_MAX_WAVES`) at K
#: of 3824 and more ran 256x128 (8440x8464x3824, 2211 tiles: ``measured_h100_random.csv``; the
#: v2 kernels', tiles', misaligned and random datasets' at 4096 to 14336), every one at 3680 and
#: less 64x128 (3769x9184x3680, 1080 tiles; 907x11104x3376, 348; down to 7429x5424x32, 1290:
#: ``measured_h100_v2_gemm_kernels.csv`` and the random dataset, 13 shapes); the bound is
#: their geometric mean.
INT8_256X128_MIN_K = round(math.sqrt(3680 * 3824))
#: The K step of the int8 align-16 tiles (their names' ``_128x3``, ``_128x5``, ``_128x6``: 128
#: elements of K per stage).
INT8_BK = 128
#: The shortest K at which the 128x128 tile ran rather than 64x128 (where neither of the rules
#: above applies): every such recorded launch at K of 8192 and more ran 128x128 (141x6064x8336
#: too), every one at 6768 and less 64x128 (544x6080x6768, 1314x2672x5840, 788x5744x4672:
#: ``measured_h100_random.csv``); the bound is their geometric mean.
INT8_128X128_MIN_K = round(math.sqrt(6768 * 8192))
#: The most waves of 64x64 tiles over the SMs at which int8's align-4 kernels (K padded to 8 off
#: 16: :func:`int8_align4_tile`) ran that tile: 116.8 tiles on the H100's 132 SMs, the geometric
#: mean of 105 (427x960x8 ran it; 5778x64x8 at 91, 285x776x1400 at 65) and 130 (100x4104x4104,
#: padded, ran 64x128; 9852x64x24 at 154, 205x2496x56 at 156): the kernels columns of
#: measured_h100_misaligned.csv, measured_h100_v2_gemm_kernels.csv and measured_h100_random.csv.
INT8_ALIGN4_64X64_MAX_WAVES = math.sqrt(105 * 130) / 132
#: ... and where M or N is at most 32 (a 64-wide tile at most half full along it): 229.4 tiles,
#: the geometric mean of 222 (17x14208x968 ran 64x64; 14047x8x24 at 220) and 237 (17x15152x40
#: ran 64x128; 15860x8x8 at 248).
INT8_ALIGN4_64X64_MAX_WAVES_THIN = math.sqrt(222 * 237) / 132
#: The most waves of 128x128 tiles at which the align-4 kernels ran 64x128 rather than a larger
#: tile (as they also did wherever M or N is at most 64): 51.8 tiles on 132 SMs, the geometric
#: mean of 42 (351x1744x8, 794x712x168 and 5327x128x40 ran 64x128) and 64 (256x4096x4104 ran
#: 128x128: measured_h100_tiles.csv).
INT8_ALIGN4_64X128_MAX_WAVES = math.sqrt(42 * 64) / 132
#: The fewest waves of 256x128 tiles at which the align-4 kernels ran that tile where 128x128
#: tiles fit one wave: 56.9 tiles on 132 SMs, the geometric mean of 54 (1313x1080x248 ran
#: 128x128, as did 4053x296x2936 at 48 and 3467x312x8 at 42) and 60 (1089x1456x4216 ran
#: 256x128, as did 384 to 512 rows at N = 4104, K = 4104, 64 and 66 tiles:
#: measured_h100_tiles.csv; but 320 rows, 66 tiles, ran 128x128).
INT8_ALIGN4_256X128_MIN_WAVES = math.sqrt(54 * 60) / 132
#: The most rows of M for which the align-4 kernels ran 256x128 rather than 128x256 where
#: 128x128 tiles take more than one wave: 795, the geometric mean of 768 (the most rows
#: measured_h100_tiles.csv's sweep at K = 4104 ran it at both N, three row tiles of 256) and 822
#: (which ran 128x256 at N = 4104 and at 822x6840x8, but 256x128 at N = 4096), as did every
#: recorded launch from 822 rows on (896 to 9434 rows).
INT8_ALIGN4_256X128_MAX_M = round(math.sqrt(768 * 822))
#: The align-4 kernels' 256-by-128 tile, either way round: where :func:`int8_align4_tile` gives
#: one of them the model times the faster, not the one dispatched. Its waves (``ceil(tiles /
#: SMs)``) overcharge a short last wave of that tile: 1000x4104x4104 (padded) ran 136 of its
#: 128x256 tiles on 132 SMs in 109 us of kernel, 1.5 times the 72 us one wave of them took at
#: 896 rows, not 2 (2048x4104x4104, 272 tiles, 2.6 times; but 1152x4096x4104, 144 tiles, 1.9:
#: measured_h100_tiles.csv), so the one dispatched, timed in whole waves, predicted those rows
#: 46% and 28% slow, and with gemm_int8_align8 refitted the held-out int8 of the misaligned
#: and tiles runs worse (measured_h100_misaligned.csv 7.4% -> 8.3%, measured_h100_tiles.csv
#: 9.3% -> 11.0%); the faster of the two takes one wave there.
INT8_ALIGN4_LARGE_TILES = ((256, 128), (128, 256))
#: The shortest step along K (ns per element of K) a CTA of int8's align-4 kernels takes however
#: few rows of A and W it loads (its main loop's own latency): the recorded single-CTA launches
#: of their 64x64 tile at K of 4096 and more, over 17 to 33 rows of M and 8 to 32 columns of N
#: (padded), took 3.37 to 4.06 ns per element of K, prologue and epilogue included, where full
#: 64x64 tiles took 5.3 to 5.8 (the kernels columns of measured_h100_misaligned.csv and
#: measured_h100_v2_gemm_kernels.csv; their least, as tests/test_gpu.py recomputes it).
INT8_ALIGN4_STEP_NS = 3.37
#: Query and key tile of the attention kernels (FlashAttention-2/3 on Hopper use 128).
ATTN_TILE = 128
#: The head dims the attention kernels run at are multiples of this: measured on the H100
#: (sim/data/gpu/measured_h100_v2.csv), head dim 96 takes as long per score as 128, and 32 as
#: long as 64 (there the softmax, not the tensor cores, sets the pace).
ATTN_HEAD_DIM_STEP = 64
#: The smallest and largest head dim of the measured attention kernels (the second dataset's
#: ``sim.gpu.shapes.HEAD_DIMS``; a test holds them equal). 256 is also the largest head dim
#: PyTorch's flash SDPA kernels take; above it SDPA runs other kernels, which were not measured.
ATTN_HEAD_DIMS_MEASURED = (32, 256)


@dataclass(frozen=True, slots=True)
class Kernel:
    """One row of a shapes.csv (unused fields 0)."""

    op: str
    dtype: str
    M: int = 0
    N: int = 0
    K: int = 0
    B: int = 0
    H: int = 0
    Hkv: int = 0
    S: int = 0
    D: int = 0
    #: Query tokens of attention (0: ``S`` for prefill, 1 for decode) and the causal mask
    #: (shapes.csv prefill rows are causal self-attention).
    Q: int = 0
    causal: bool = True
    #: Stored bytes per element of A, W (KV cache for attention) and C; 0: the dtype's.
    a_bytes: float = 0.0
    w_bytes: float = 0.0
    o_bytes: float = 0.0
    #: Weights along K sharing a scale and zero (``w4a16`` GEMMs; 0 elsewhere) and the KV
    #: cache's format of decode attention (``bf16``, ``int8``, ``int4``; empty: bf16).
    group: int = 0
    kv_dtype: str = ""

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Kernel:
        """The kernel of a shapes.csv row; ``ValueError`` naming the column on a bad
        ``causal``, ``group`` or ``kv_dtype`` cell (:func:`parse_quant`)."""
        def num(k: str) -> int:
            v = shape_cell(row, k)
            return 0 if v is None else v

        hkv = num("Hkv") or num("H")
        op, dtype = str(row["op"]), str(row["dtype"])
        causal = parse_causal(op, row.get("causal"))
        group, kv = parse_quant(op, dtype, num("N"), num("K"), num("S"), num("D"),
                                row.get("group"), row.get("kv_dtype"))
        return cls(op=op, dtype=dtype, M=num("M"), N=num("N"), K=num("K"), B=num("B"),
                   H=num("H"), Hkv=hkv, S=num("S"), D=num("D"), causal=causal, group=group,
                   kv_dtype=kv)


def shape_cell(row: dict[str, Any], key: str) -> int | None:
    """A shapes.csv row's size cell ``key`` (``M``, ``N``, ``K``, ``B``, ``H``, ``Hkv``,
    ``S``, ``D``): None where empty, else an integer >= 1; ``ValueError`` naming the column
    otherwise. The one rule of ``tpe gpu measure``'s reader and :meth:`Kernel.from_row`."""
    cell = row.get(key)
    raw = str(cell if cell is not None else "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{key}: must be an integer (got {raw!r})") from None
    if value < 1:
        raise ValueError(f"{key}: must be >= 1 (got {value})")
    return value


def check_kernel_shape(k: Kernel) -> None:
    """The sizes ``k``'s op needs (``M``, ``N``, ``K`` of a GEMM; ``B``, ``H``, ``S``, ``D``
    of attention, whose ``H`` is a multiple of ``Hkv``); ``ValueError`` naming the column
    otherwise. The one rule of ``tpe gpu measure``'s reader and of predict and check."""
    for n in (("M", "N", "K") if k.op == "gemm" else ("B", "H", "S", "D")):
        if getattr(k, n) < 1:
            raise ValueError(f"{n}: required (>= 1) for op {k.op}")
    if k.op != "gemm" and k.H % k.Hkv:
        raise ValueError(f"Hkv: {k.H} query heads are not a multiple of {k.Hkv} key/value "
                         "heads")


def read_kernel(row: dict[str, Any]) -> Kernel:
    """The kernel of a shapes.csv row, every cell checked in one order: ``op`` and ``dtype``
    (:func:`check_op_dtype`), the causal mask (:func:`parse_causal`), the size, group and
    ``kv_dtype`` cells (:meth:`Kernel.from_row`), the sizes its op needs
    (:func:`check_kernel_shape`); ``ValueError`` naming the column otherwise. The one reader of
    ``tpe gpu measure`` and of ``predict`` and ``check``."""
    op = str(row.get("op", ""))
    check_op_dtype(op, str(row.get("dtype", "")))
    parse_causal(op, row.get("causal"))
    k = Kernel.from_row(row)
    check_kernel_shape(k)
    return k


def parse_causal(op: str, cell: Any) -> bool:
    """The optional ``causal`` cell of a shapes.csv row: ``1`` or ``0`` on ``attn_prefill``
    rows (empty means causal), empty on the others (decode and GEMMs have no mask to choose);
    ``ValueError`` (the message names the column and the fix) otherwise."""
    raw = str(cell if cell is not None else "").strip()
    if raw and (op != "attn_prefill" or raw not in ("0", "1")):
        raise ValueError(f"causal: 1 or 0, for attn_prefill rows only (got {raw!r} on {op}); "
                         "leave it empty elsewhere")
    return raw != "0"


def parse_quant(op: str, dtype: str, N: int, K: int, S: int, D: int, group_cell: Any,
                kv_cell: Any) -> tuple[int, str]:
    """The optional ``group`` and ``kv_dtype`` cells of a shapes.csv row: ``group`` on
    ``w4a16``/``w4a16_triton`` GEMMs only (one of :data:`W4_GROUPS`, dividing ``K``; empty
    means 128; ``N`` a multiple of 8), ``kv_dtype`` on ``attn_decode`` only (one of
    :data:`KV_DTYPES`; int8 and int4 need ``D`` in 32..256 a power of two and ``S`` a
    multiple of KIVI's group). ``ValueError`` (one line naming the column) otherwise."""
    g_raw = str(group_cell if group_cell is not None else "").strip()
    kv = str(kv_cell if kv_cell is not None else "").strip()
    group = 0
    if dtype in W4A16 and op == "gemm":
        group = int(g_raw) if g_raw.isdigit() else 128 if not g_raw else 0
        if group not in W4_GROUPS:
            raise ValueError(f"group: one of {', '.join(map(str, W4_GROUPS))} (got {g_raw!r})")
        if K % group:
            raise ValueError(f"group: {group} does not divide K={K}")
        if N % 8:
            raise ValueError(f"N: {dtype} needs a multiple of 8 (got {N})")
    elif g_raw:
        raise ValueError(f"group: for w4a16 and w4a16_triton GEMMs only (got {g_raw!r} on "
                         f"{op} {dtype}); leave it empty elsewhere")
    if kv and (op != "attn_decode" or kv not in KV_DTYPES):
        raise ValueError(f"kv_dtype: one of {', '.join(KV_DTYPES)}, for attn_decode rows only "
                         f"(got {kv!r} on {op})")
    if kv in ("int8", "int4"):
        from models.quant import KIVI_GROUP

        if dtype != "bf16" or D not in (32, 64, 128, 256) or S % KIVI_GROUP:
            raise ValueError(f"kv_dtype: a {kv} cache needs dtype bf16, D one of 32, 64, 128, "
                             f"256 and S a multiple of {KIVI_GROUP} (got {dtype}, D={D}, S={S})")
    return group, kv


#: Fitted parameters (name -> (initial value, lower bound, upper bound)).
FIT_PARAMS: dict[str, tuple[float, float, float]] = {
    "fixed_us": (5.0, 0.5, 30.0),
    "eff_128x256": (0.95, 0.3, 1.3),
    "eff_128x128": (0.85, 0.2, 1.3),
    "eff_64x128": (0.7, 0.1, 1.3),
    "eff_64x64": (0.5, 0.05, 1.3),
    "split_cost_us": (2.0, 0.0, 30.0),
    # cuBLASLt's Hopper fp8 kernels (NVJET_FP8_TILES): their rate (of the measured fp8 peak),
    # the whole chip's bandwidth (GB/s of L2 line traffic) at which their CTAs load A and W,
    # and a tile's prologue and epilogue in elements of K
    "fp8_rate_eff": (1.0, 0.2, 1.6),
    "fp8_load_gb_per_s": (10000.0, 1000.0, 60000.0),
    "fp8_tile_k0": (128.0, 0.0, 4096.0),
    # ... and how far a CTA's products and loads, and the tiles' work and the HBM's time,
    # overlap (the p-norm's exponent minus one: 0 adds them, large takes the larger)
    "fp8_overlap": (4.0, 0.0, 20.0),
    # ... and the shortest step along K (ns per element) a CTA takes however small its tile
    # (its pipeline's latency: a small tile's CTA walks K no faster)
    "fp8_step_ns": (0.5, 0.0, 5.0),
    # the fraction of the streaming read at which the 8-bit kernels' bytes move (int8; fp8's
    # reads below, plus the L2's write-back, C's stores apart: STORE_EFF; the aligned
    # bf16/fp16 kernels' reads move at the read itself plus the write-back: module doc)
    "int8_bw_eff": (0.7, 0.2, 1.5),
    # aligned int8 (cuBLASLt's CUTLASS align-16 kernels: INT8_TILES, int8_tile): each tile's
    # rate, a multiple of the aligned int8 rate measured at the sustained clock (up to the
    # datasheet's 1,979 dense TOPS at the boost clock over the measured 751: 2.64), and its
    # prologue and epilogue in elements of K (3 to 6 stages of INT8_BK)
    "int8_eff_64x64": (0.6, 0.05, 2.64),
    "int8_eff_64x128": (0.8, 0.05, 2.64),
    "int8_eff_128x128": (0.9, 0.05, 2.64),
    "int8_eff_256x128": (1.0, 0.05, 2.64),
    "int8_tile_k0": (128.0, 0.0, 4096.0),
    # ... and the whole chip's bandwidth (GB/s of L2 line traffic: line_traffic) at which their
    # CTAs load their A and W tiles from L2
    "int8_load_gb_per_s": (10000.0, 1000.0, 30000.0),
    # ... and the HBM's efficiency (of the measured streaming read) at which their int32
    # stores of C drain, beside their reads' (int8_bw_eff); the misaligned int8
    # kernels (gemm_int8_align8) keep int8_bw_eff for all their bytes (split for them too,
    # their group held, the random and unseen runs predicted worse)
    "int8_store_eff": (0.8, 0.2, 1.5),
    # ... and how far their tiles' work and the HBM's time overlap (the p-norm's exponent
    # minus one, as fp8_overlap)
    "int8_overlap": (4.0, 0.0, 20.0),
    # fp8's reads of A and W (C's stores apart, STORE_EFF), plus the L2's write-back: fitted
    # about 1.12 of the measured streaming read, 3.3 TB/s, under the HBM's datasheet 3.35 (the
    # streaming read is a copy's; with C's stores among them at one efficiency it fitted 0.75)
    "fp8_bw_eff": (0.75, 0.2, 1.5),
    # the fallback kernels of misaligned bf16/fp16 GEMMs (gemm_family): rate (of the dtype's
    # measured peak) and bandwidth (of the measured streaming read) of the align-1 and the
    # align-2/4 families, their fixed cost, and how much slower align 1 runs when K is a
    # multiple of 8 (only N odd)
    # (initial values: where the search settles lowest; from 0.2 for align1_bw_eff, 0.35 for
    # align2_rate_eff and 128 for fallback_tile_k0 it stopped at a mean absolute log error
    # of the group's calibration rows about 0.003 higher, a local minimum)
    "align1_rate_eff": (0.15, 0.01, 1.0),
    "align1_bw_eff": (0.8, 0.02, 1.0),
    "align2_rate_eff": (0.7, 0.01, 1.0),
    "align2_bw_eff": (0.4, 0.02, 1.0),
    "fallback_fixed_us": (10.0, 0.5, 100.0),
    "align1_k8_slowdown": (1.25, 1.0, 3.0),
    # a fallback tile's prologue and epilogue (its pipeline filled, its C tile written), in
    # elements of K its main loop would walk in that time
    "fallback_tile_k0": (40.0, 0.0, 4096.0),
    # the split-K variant's second kernel (splitKreduce_kernel: its launch and pass)
    "fallback_reduce_us": (4.0, 0.0, 30.0),
    # the shortest step along K (ns per element of K) of an align-1 CTA of CUTLASS's Turing
    # s1688 tiles alone on its SM (a launch's CTAs all in one wave): timed after the L2 flush,
    # its loads come from HBM, and neither its two-stage pipeline nor another CTA on the SM
    # hides their latency (the kernels column, profiled with the L2 warm: the one-wave 64x64
    # launches ran 15 to 22 ns per element of K, and timed, the calibration rows 31x8143x182
    # and 66x1691x139 bf16 took 6.1 and 4.9 us beyond their profiled kernels where small
    # kernels took 3.5; the Ampere align-2 kernels' three to six stages hid it: 668x990x934
    # fp16, 88 CTAs, took 3.3; the wmma tile's longer steps are left out, WMMA_TILE).
    # The split-K variant's 64x64 CTAs share its excess among an SM's CTAs, at their own
    # step and start and end (ALIGN1_SPLIT_STEPS: about 95 elements of K, not
    # fallback_tile_k0's 32). Not so for every tile and variant: a step of max(throughput
    # step, this / CTAs resident per SM, at most 2 to 4) for every launch, refitted, never
    # binds (this / 2 stays under the 16.6 ns load step) or, with the loads clipped to the rows
    # inside the matrices (as int8's align-4 kernels), binds but turned measured_h100_v2.csv,
    # measured_h100_misaligned.csv and measured_h200_misaligned.csv FAIL; ALIGN1_SPLIT_STEPS'
    # step for the unsplit 64x64 launches too turned measured_h100_v2.csv FAIL (fp16
    # misaligned 11.1%), and the clipped loads with the family's refitted load bandwidth,
    # or with a fitted partial overlap of products and loads (it went to its bound, the
    # larger of the two), left measured_h100_random.csv FAIL
    "align1_lone_step_ns": (24.0, 0.0, 200.0),
    # the reduction kernel after cuBLAS's dot_kernel (DOT_MAX_ROWS): its launch and pass, us
    "dot_reduce_us": (2.0, 0.0, 10.0),
    # cuBLAS's CUDA-core kernels of misaligned GEMMs of fewer than 16 rows (gemmSN, gemv):
    # their rate, TFLOP/s; at least what gemmSN_TN_kernel itself ran at on the largest
    # calibration rows it served (kernels column of measured_h100_v2_gemm_kernels.csv and
    # measured_h100_misaligned.csv: 4.5 at 7x11007x4096, 5.2 at 5x8094x3587, less its launch),
    # at most the H100's non-tensor FP32 peak (about 67 by the datasheet)
    "simt_tflops": (4.0, 3.5, 60.0),
    # the bytes per second (whole chip, GB/s) at which the fallback kernels' CTAs load their
    # A and W tiles from L2 into shared memory (cp.async / ld of 2 bytes for align1, 4 for
    # align2 and int8's align-4 kernels, instead of the aligned kernels' 16-byte TMA loads): a
    # CTA's step along K moves (BM + BN) elements and takes at least their bytes at its SM's
    # share of it (FALLBACK_TILES); at most 8 TB/s, about what the decode kernels' SMs load
    # from L2 at the most (decode_l2_gb_per_s)
    "align1_load_gb_per_s": (2000.0, 200.0, 8000.0),
    "align2_load_gb_per_s": (2500.0, 200.0, 8000.0),
    # ... and the align-1 family's wmma kernels' (WMMA_TILE: cutlass_75_wmma_tensorop_*, fp16
    # at vector 1), kernels of their own whose CTAs stepped along K faster than the family's
    # load bandwidth gives them (the long-K probe's fp16 GEMMs of few rows, up to 28% over
    # their measured time at the family's)
    "wmma_load_gb_per_s": (2000.0, 200.0, 8000.0),
    # int8 padded to 8 with K off 16 (CUTLASS's i16832 align-4 kernels): their tensor-core
    # rate (a fraction of the aligned int8 one) and their load path's bandwidth
    "int8_align8_eff": (0.5, 0.05, 1.0),
    "int8_align8_load_gb_per_s": (2500.0, 200.0, 8000.0),
    # their tile's prologue and epilogue in elements of K (their deeper pipelines: 3 to 6
    # stages of 128; measured, a second wave of CTAs at K = 8 to 22 adds 2 to 6 us)
    "int8_align8_tile_k0": (128.0, 0.0, 4096.0),
    # ... where only C is off (K a multiple of 16, N of 8 but not 16): cuBLASLt's Hopper
    # kernel (sm90_xmma_gemm_i8i32 tilesize256x128x128: INT8_N8_TILE): its fixed cost and its
    # tile's rate, a multiple of the aligned int8 rate measured at the sustained clock (up to
    # the datasheet's 1,979 dense TOPS at the boost clock over the measured 751: 2.64)
    "int8_n8_fixed_us": (8.0, 0.5, 30.0),
    "int8_n8_eff": (0.8, 0.05, 2.64),
    # the bytes per second (whole chip, GB/s) at which cuBLAS's CUDA-core kernels (gemv,
    # gemmSN) load their operands: their SMs' load path, below the HBM's (the profiler's
    # kernel times of the calibration rows' gemv2T launches: 1.8 to 2.5 TB/s, where the
    # card streams 2.94), the achieved HBM read bandwidth above it
    "gemv_load_gb_per_s": (1500.0, 200.0, 8000.0),
    # ... and gemmSN's (more than one row and column): its CTAs stream W once for all rows of
    # A (2x12001x12001 took 182 us for W's 288 MB: 1.58 TB/s, measured_h100_gemmsn.csv)
    "gemmsn_load_gb_per_s": (1500.0, 200.0, 8000.0),
    # the bytes over which their write-back of dirty L2 lines (decode_ramp_us, the decode
    # kernels' own) ramps in, MB: measured, a gemv2T call took 14 to 16 us beyond its
    # profiled kernel from 28 MB of operands on (1x5269x2724 to 1x11007x4096), 8 us at 11 MB
    "gemv_ramp_mb": (30.0, 1.0, 2000.0),
    # one gemmSN CTA's walk along K (8 columns of C over all rows of A), ns per
    # row of A per element of K: its loop's dependent loads, which few CTAs do not hide
    # (14x23x1156 bf16, three CTAs, took 20.9 us where its bytes and FMAs take under 1)
    "gemmsn_row_ns": (0.5, 0.01, 20.0),
    "attn_rate_eff": (0.6, 0.1, 1.3),
    "attn_fixed_us": (8.0, 0.5, 50.0),
    # softmax of one score (max, exp, sum, rescale), scores per ns per SM: the H100's
    # special-function units give 16 exp2 per clock per SM (CUDA C++ Programming Guide,
    # arithmetic instruction throughput, compute capability 9.0), about 22 per ns at the
    # sustained clock, and a score takes several instructions besides its exp
    "attn_score_rate": (12.0, 0.5, 100.0),
    # a diagonal (masked) tile of causal attention costs this much more than a full one
    "attn_diag_extra": (0.3, 0.0, 4.0),
    "decode_bw_eff": (0.9, 0.2, 1.3),
    "decode_fixed_us": (8.0, 0.5, 50.0),
    "decode_ramp_us": (8.0, 0.0, 50.0),
    "decode_ramp_mb": (100.0, 1.0, 2000.0),
    # decode scores per ns, whole chip (the softmax's work beside streaming the cache)
    "decode_score_rate": (500.0, 10.0, 100000.0),
    # the bandwidth of the L2 to the SMs, whole chip, GB/s, of which each SM has an even share
    # for its decode CTAs' tile loads (K and V of every key tile at the kernel's head dim:
    # _decode_us): fitted (the L2's own bandwidth was not measured here); at least what the
    # busiest SMs loaded in a calibration row's recorded kernel (B16 H32 Hkv1 S32768 D256,
    # measured_h100_v2_decode_kernels.csv: 512 CTAs, so 4 on an SM, each 32 tiles of 128 KiB,
    # in 277.3 us: 60.5 GB/s an SM, 7.99 TB/s over 132), at most what the SMs' shared memory
    # takes in (128 B per clock per SM, whitepaper, at the sustained 1350 MHz: 22.8 TB/s)
    "decode_l2_gb_per_s": (10000.0, 7987.0, 22800.0),
    # one decode CTA's step over a key tile (its loads, products and softmax in sequence), ns
    "decode_tile_ns": (900.0, 100.0, 5000.0),
    # a decode CTA's own start and end (its queries in, its output or partial out), us, which
    # the CTAs one SM runs pay in turn: one key tile a CTA took 6.0 us over 128 CTAs (one per
    # SM) and 14.1 over 512 (B1 and B16, H32 Hkv1 D256, kernels of measured_h100_decode.csv)
    "decode_cta_us": (1.0, 0.0, 10.0),
    # the split-KV combine kernel (cuDNN's lean_reduction_kernel): its fixed cost, and its
    # cost per split per 128 of the head dim (measured 1.8 to 6.5 us: the kernels columns of
    # measured_h100_decode.csv)
    "decode_combine_us": (2.0, 0.0, 10.0),
    "decode_combine_split_us": (0.05, 0.0, 1.0),
    # PyTorch's int4 GEMM (aten._weight_int4pack_mm; its fixed cost the cuBLAS GEMMs'
    # fixed_us): bandwidth efficiency, its tensor-core rate (a fraction of the bf16 rate; its
    # time grows linearly with M) and how far the two overlap (the p-norm's exponent minus
    # one: 0 adds them, large takes the larger)
    "w4_bw_eff": (0.7, 0.1, 1.5),
    "w4_rate_eff": (0.04, 0.001, 1.5),
    "w4_overlap": (1.0, 0.0, 20.0),
    # the project's Triton W4A16 GEMM (its fixed cost the cuBLAS GEMMs' fixed_us): a CTA's
    # cost per K element, in operations of one SM's bf16 rate: a fixed step, per dequantized
    # column of its tile, per product of its tile; the whole chip's dequantization rate
    # (weights per operation of its bf16 rate)
    "w4t_step_ops": (17000.0, 10.0, 1e6),
    "w4t_col_ops": (50.0, 0.01, 1e4),
    "w4t_mac_ops": (4.6, 1e-3, 1e3),
    "w4t_dequant_eff": (0.0018, 1e-5, 1.0),
    # the project's KIVI decode kernel (kivi_rounds): fixed cost, bandwidth efficiency, an SM's
    # time per token of one program's chunk at head dim 128 while two share the SM (operations
    # of one SM's bf16 rate; int8 and int4 caches), and how many such shares a program alone
    # on its SM takes per token (its loop latency-bound: at least one share, at most the two
    # of a pair, or a pair would walk faster than one program alone)
    "kivi_fixed_us": (20.0, 0.0, 100.0),
    "kivi_bw_eff": (0.8, 0.1, 1.5),
    "kivi8_token_ops": (1.9e5, 1e3, 1e8),
    "kivi4_token_ops": (1.8e5, 1e3, 1e8),
    "kivi_lone_programs": (1.5, 1.0, 2.0),
}


#: The paths whose energy per operation the energy model tells apart (:func:`energy_class`).
ENERGY_CLASSES = ("bf16", "fp16", "fp8", "int8", "align1", "align2", "int8_align8", "simt",
                  "attention", "w4a16", "w4a16_triton", "attention_kivi")


@dataclass(frozen=True, slots=True, kw_only=True)
class GpuEnergy:
    """A card's energy constants (the calibration's ``[energy]`` table; module doc)."""

    #: Board power over a kernel's whole time, W.
    static_w: float
    #: Board power beyond ``static_w`` while the kernel's work runs (not its fixed cost), W.
    busy_w: float
    #: Energy per HBM byte moved (the kernel's compulsory bytes), pJ.
    hbm_pj_per_byte: float
    #: Energy per useful operation of each :data:`ENERGY_CLASSES` path, pJ (= J per TFLOP).
    pj_per_op: dict[str, float]
    #: Energy per weight a row tile of an int4 weight-only GEMM dequantizes (its read from L2
    #: and its unpacking; :func:`dequant_weights`), pJ, per path (:data:`W4A16`); a path
    #: missing (a calibration without them) spends none.
    pj_per_dequant: dict[str, float] = field(default_factory=dict)
    #: Energy per attention score (query-key pair) a kernel computes (:func:`attention_scores`:
    #: its softmax, beside the two products' operations that ``pj_per_op`` counts), pJ; a
    #: calibration without it spends none.
    pj_per_score: float = 0.0
    #: Energy per byte of C a fallback kernel stores in accesses of one or two elements
    #: (:func:`narrow_c_bytes`), beyond the HBM byte's, pJ, per path
    #: (:data:`FALLBACK_ENERGY_CLASSES`); a path missing (a calibration without them) spends
    #: none.
    pj_per_c_byte: dict[str, float] = field(default_factory=dict)
    #: The card's power limit while its energy was measured, W.
    limit_w: float
    #: The highest power (``E / t``) the model gives a calibration kernel: at ``limit_w`` no
    #: calibration kernel is stretched; a lower board power scales it.
    cap_w: float


@dataclass(frozen=True, slots=True, kw_only=True)
class GpuBurst:
    """The clock a compute-bound kernel starts at when timed after light load (the
    calibration's ``[burst]`` table; module doc): its tensor work runs ``rate`` times the
    calibrated rate for its first ``us`` microseconds."""

    rate: float
    us: float


#: The tensor-core GEMMs the burst clock speeds up (module doc): the dtypes whose kernels the
#: power limit holds at about 1.4 GHz back to back (``benchmarks/gpu_clock_study.py``, table 3:
#: ``measured_h100_v2e.csv``, bf16 1425 MHz, fp16 1365, fp8 1410 median at 600 W and more of
#: the model's power; int8 1800).
BURST_DTYPES = ("bf16", "fp16", "fp8")


@dataclass(frozen=True, slots=True, kw_only=True)
class GpuCalibration:
    """A card's measured constants and fitted efficiencies (see the module doc)."""

    card: str
    sm_count: int
    #: Streaming read bandwidth measured on the card (a 1 GiB reduction), GB/s.
    read_gb_per_s: float
    #: Dense tensor rate per dtype (ops/s) measured on 8192^3 GEMMs (sustained clock).
    peak_tflops: dict[str, float]
    sustained_clock_mhz: float
    launch_us: float
    #: What timing a kernel alone (``tpe gpu measure``: CUDA events around one call after the
    #: L2 flush) adds to it that the same kernel pays not in a stream of kernels (a model's
    #: layers, replayed back to back), us: the median of ``us - us_loop`` over the calibration
    #: kernels shorter than :data:`STREAM_OVERHEAD_MAX_US` (``sim.gpu.calibrate``).
    stream_overhead_us: float
    params: dict[str, float]
    #: The energy constants; None only inside ``tpe gpu calibrate`` before they are fitted.
    energy: GpuEnergy | None = None
    #: The burst clock's constants (``[burst]``); None in a calibration without them.
    burst: GpuBurst | None = None
    #: Whether kernels are timed after light load (:func:`after_light_load`), at the burst
    #: clock; False: the sustained state the rates were fitted in.
    light_load: bool = False
    #: Whether kernels are timed replayed from a CUDA graph of one call (:func:`replayed`):
    #: the cuBLAS/CUTLASS GEMMs then pay :data:`GRAPH_REPLAY_US` more than launched.
    replayed: bool = False
    #: The share of the write-back of dirty L2 lines that a kernel timed alone pays after the
    #: timing's L2 flush (:func:`l2_write_back_us`, the GEMVs' ramp: ``decode_ramp_us``) that
    #: the same kernel pays back to back in a stream (a model's pass, where the lines left
    #: dirty are the kernels' before it, far fewer than the flush's): fitted by ``tpe gpu
    #: calibrate`` on the back-to-back times (``us_loop``) of the energy fit's calibration
    #: rows (:func:`stream_parts_us`); 1.0 in a calibration without it (the whole write-back).
    stream_write_back_share: float = 1.0


#: What replaying a CUDA graph of one cuBLAS/CUTLASS GEMM call (``sim.gpu.measure --graph``)
#: adds to its timing, us, over launching the call (the stream launch these GEMM paths were
#: fitted on): the median of ``us`` replayed less ``us`` launched over the 229 'cal' rows
#: shorter than 10 us launched of measured_h100_random, _misaligned and _v2 and their
#: ``_graph`` runs (0.32, 0.59 and 0.38 us each; tests/test_gpu.py recomputes it); every GEMM
#: family paid it alike (0.28 to 0.61 us). Past 10 us the difference shrinks into the runs'
#: noise (0.0 to 0.3 us at 10-15 us); the cause of that is not established, the cost is
#: kept whole. The W4A16 paths were fitted on replayed timings
#: (measured_h100_quant_w4_graph.csv), so carry it already; attention is left as fitted (the
#: decode kernels replayed ran 0.51 us faster than launched, their several launches no longer
#: spaced by the host: measured_h100_decode.csv against _decode_direct.csv; no prefill
#: kernel was replayed).
GRAPH_REPLAY_US = 0.384


#: The longest kernels (us, timed alone) whose ``us - us_loop`` gives the calibration's
#: ``stream_overhead_us``: in longer ones the difference also holds their clock under the power
#: cap when back to back and the L2 the flush left dirty (it spreads from -150 to +80 us above
#: 100 us on the H100, and sits at 3.4-3.6 us below 10 us on the H100 and the H200:
#: measured_h100_v2e.csv, measured_h200_v2.csv).
STREAM_OVERHEAD_MAX_US = 10.0


@dataclass(frozen=True, slots=True)
class TileChoice:
    """One tile and split-K factor the GEMM model weighs (:func:`gemm_choices`): the CTA
    tile (rows of M, columns of N), the split, the CTAs' waves over the SMs (the busiest
    SM's CTAs), and in microseconds the CTAs' work, the memory time (of the aligned bf16,
    fp16 and fp8 kernels, their reads: their stores of C are in ``us``, :func:`c_store_s`),
    the two together with the split's partials (``us``, the kernel's work) and the fixed cost
    of the launches (``fixed_us``: the family's, and a split's reduction kernel): the model's
    time is the least ``fixed_us + us``."""

    tile: tuple[int, int]
    split: int
    waves: int
    compute_us: float
    memory_us: float
    us: float
    fixed_us: float | None = None


@dataclass(frozen=True, slots=True)
class KernelEstimate:
    """A kernel's predicted time and energy on a preset (:func:`predict_kernel`)."""

    #: Time in microseconds (stretched when the power cap binds): the kernel timed alone, as
    #: ``tpe gpu measure`` times it (:func:`predict_kernel`), or, for element-wise work and
    #: ideal memory (:func:`op_estimate`), its time in a stream.
    us: float
    #: Energy per kernel in millijoules, run back to back.
    mj: float
    #: Whether the power cap stretched the time.
    capped: bool
    #: Its time back to back in a stream of kernels (:func:`stream_parts_us`, stretched as
    #: ``us`` is): what a model's pass charges it (``tpe sim``), less than ``us`` by what
    #: timing it alone adds.
    stream_us: float

    @property
    def watts(self) -> float:
        """Mean board power while it runs."""
        return self.mj / self.us * 1e3


def load_calibration(name_or_path: str | Path) -> GpuCalibration:
    """``sim/data/gpu/calibration_<name>.toml`` or a path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CAL_DIR / f"calibration_{name_or_path}.toml"
        if not path.is_file():
            from hw.spec import SpecError

            known = sorted(p.stem.removeprefix("calibration_")
                           for p in CAL_DIR.glob("calibration_*.toml"))
            raise SpecError(f"gpu.calibration: no calibration {str(name_or_path)!r}; known: "
                            f"{', '.join(known)} (tpe gpu calibrate writes one)")
    return _load(str(path))


@memo(maxsize=16)
def _load(path: str) -> GpuCalibration:
    with open(path, "rb") as f:
        raw = tomllib.load(f)
    m = raw["measured"]
    if "stream_overhead_us" not in m:
        from hw.spec import SpecError

        raise SpecError(f"gpu.calibration: {path} has no [measured] stream_overhead_us; tpe gpu "
                        "calibrate --measured FILE --energy FILE --out writes one")
    if "energy" not in raw:
        from hw.spec import SpecError

        raise SpecError(f"gpu.calibration: {path} has no [energy] table; tpe gpu calibrate "
                        "--measured FILE --energy FILE --out writes one")
    e = raw["energy"]
    return GpuCalibration(
        card=raw["card"], sm_count=int(m["sm_count"]), read_gb_per_s=float(m["read_gb_per_s"]),
        peak_tflops={k: float(v) for k, v in m["peak_tflops"].items()},
        sustained_clock_mhz=float(m["sustained_clock_mhz"]), launch_us=float(m["launch_us"]),
        stream_overhead_us=float(m["stream_overhead_us"]),
        stream_write_back_share=float(m.get("stream_write_back_share", 1.0)),
        params={k: float(v) for k, v in raw["fitted"].items()},
        energy=GpuEnergy(static_w=float(e["static_w"]), busy_w=float(e["busy_w"]),
                         hbm_pj_per_byte=float(e["hbm_pj_per_byte"]),
                         pj_per_op={k: float(v) for k, v in e["pj_per_op"].items()},
                         pj_per_dequant={k: float(v) for k, v
                                         in e.get("pj_per_dequant", {}).items()},
                         pj_per_score=float(e.get("pj_per_score", 0.0)),
                         pj_per_c_byte={k: float(v) for k, v
                                        in e.get("pj_per_c_byte", {}).items()},
                         limit_w=float(e["limit_w"]), cap_w=float(e["cap_w"])),
        burst=(GpuBurst(rate=float(raw["burst"]["rate"]), us=float(raw["burst"]["us"]))
               if "burst" in raw else None),
    )


def after_light_load(cal: GpuCalibration) -> GpuCalibration:
    """``cal`` for kernels timed after light load, at the burst clock (module doc); a
    ``SpecError`` if the calibration has no ``[burst]`` constants."""
    if cal.burst is None:
        from hw.spec import SpecError

        raise SpecError(f"gpu.calibration: the calibration of {cal.card} has no [burst] table; "
                        "tpe gpu calibrate --burst FILE fits one")
    return dataclasses.replace(cal, light_load=True)


def replayed(cal: GpuCalibration) -> GpuCalibration:
    """``cal`` for kernels timed replayed from a CUDA graph of one call
    (:data:`GRAPH_REPLAY_US`)."""
    return dataclasses.replace(cal, replayed=True)


def replay_us(cal: GpuCalibration, k: Kernel) -> float:
    """What the graph replay adds to ``k``'s timing: :data:`GRAPH_REPLAY_US` for the GEMM paths
    fitted on launched timings (not W4A16) when ``cal`` is :func:`replayed`, else 0."""
    launched = k.op == "gemm" and k.dtype in ("bf16", "fp16", "fp8", "int8")
    return GRAPH_REPLAY_US if cal.replayed and launched else 0.0


def burst_us(burst: GpuBurst | None, t_s: float) -> float:
    """Seconds that ``t_s`` seconds of tensor work at the calibrated rate take at the burst
    clock: ``burst.rate`` times faster for the first ``burst.us`` microseconds, then at the
    calibrated rate (unchanged for None)."""
    if burst is None:
        return t_s
    fast_s = burst.us * 1e-6
    return min(t_s / burst.rate, fast_s) + max(0.0, t_s - fast_s * burst.rate)


@dataclass(frozen=True, slots=True, kw_only=True)
class EagerCalibration:
    """Eager PyTorch on a card (``sim/data/gpu/eager_<calibration>.toml``, written by
    ``python -m sim.gpu.framework --fit-eager``): what its element-wise kernels cost on the
    device and what launching a kernel costs the host, measured on whole eager passes."""

    card: str
    #: Where the constants come from (the profiled passes and the fit).
    source: str
    #: Device time of an eager element-wise kernel beyond moving its bytes, us.
    kernel_us: float
    #: Fraction of the card's streaming read bandwidth (``read_gb_per_s``) its bytes move at.
    elementwise_eff: float
    #: Host time to launch one kernel (Python, the dispatcher, the launch), us, per phase
    #: (``prefill``, ``decode``: transformers runs more Python per kernel in a decode step):
    #: the median of the host-bound passes; ``host_launch_us_range`` their spread.
    host_launch_us: dict[str, float]
    host_launch_us_range: dict[str, tuple[float, float]]


def load_eager(name: str) -> EagerCalibration:
    """The eager-runtime constants measured with calibration ``name``'s card."""
    path = CAL_DIR / f"eager_{name}.toml"
    if not path.is_file():
        from hw.spec import SpecError

        raise SpecError(f"--runtime: eager needs sim/data/gpu/eager_{name}.toml, the eager "
                        f"constants of card {name!r} (python -m sim.gpu.framework --fit-eager "
                        "writes it); use --runtime fused")
    return _load_eager(str(path))


@memo(maxsize=16)
def _load_eager(path: str) -> EagerCalibration:
    with open(path, "rb") as f:
        raw = tomllib.load(f)
    m = raw["measured"]
    return EagerCalibration(
        card=raw["card"], source=raw["source"], kernel_us=float(raw["fitted"]["kernel_us"]),
        elementwise_eff=float(raw["fitted"]["elementwise_eff"]),
        host_launch_us={k: float(v) for k, v in m["host_launch_us"].items()},
        host_launch_us_range={k: (float(v[0]), float(v[1]))
                              for k, v in m["host_launch_us_range"].items()})


def idle_pj(arch: Any, seconds: float) -> float:
    """Energy of a GPU preset's card waiting ``seconds`` with no kernel running (for the host
    to launch the next): its static power (``[energy] static_w``) times the time, pJ."""
    return _energy(arch_calibration(arch)).static_w * seconds * 1e12


def _aligned(k: Kernel) -> bool:
    return k.N % 8 == 0 and k.K % 8 == 0


#: The widest vector (bytes) the library's GEMM kernels load operands and store results with.
VECTOR_BYTES = 16


def vector_elems(dtype: str, N: int, K: int) -> int:
    """The widest vector (elements) a GEMM kernel can move A, W (rows of ``K``) and C (rows of
    ``N``) in: the largest power of two dividing both ``N`` and ``K``, at most
    :data:`VECTOR_BYTES` (8 bf16/fp16 elements, 16 fp8/int8 ones). Give fp8/int8 the
    padded shape (:func:`padded_shape`)."""
    return math.gcd(N, K, VECTOR_BYTES // ELEM_BYTES[dtype])


#: The GEMM kernel families (:func:`gemm_family`).
GEMM_FAMILIES = ("aligned", "gemv", "align2", "align1", "int8_align8")


def gemm_family(k: Kernel) -> str:
    """The kernel family the library runs a GEMM with (module doc): ``aligned`` (its fastest,
    at a vector of 16 bytes; fp8 always, padded), ``gemv`` (cuBLAS's CUDA-core kernels: a
    misaligned bf16/fp16 matrix-vector product, and bf16 of fewer than 16 rows at vector 1
    where its gemmSN kernel runs: :data:`GEMMSN_MIN_K`), ``align2`` (bf16/fp16 at a vector
    of 2 or 4 elements), ``align1`` (bf16/fp16 at 1), ``int8_align8`` (int8 padded to a
    vector of 8 but not 16). The int4 weight-only kernels are ``aligned`` (their own
    models)."""
    if k.dtype not in ELEM_BYTES:
        return "aligned"
    M, N, K = padded_shape(k.dtype, k.M, k.N, k.K)
    width = vector_elems(k.dtype, N, K)
    if width * ELEM_BYTES[k.dtype] >= VECTOR_BYTES:
        return "aligned"
    if k.dtype == "int8":
        return "int8_align8"
    if k.dtype == "fp8":  # padded to 16: never narrower
        return "aligned"
    if M == 1 or N == 1:
        return "gemv"
    if width == 1 and k.dtype == "bf16" and M < 16 and (
            (K < 2 * N and (N < 16 or GEMMSN_MIN_K <= K <= gemmsn_max_k(M, N)))
            or (K >= 2 * N and GEMMSN_BAND_K[0] <= K <= GEMMSN_BAND_K[1])):
        return "gemv"  # cuBLAS's gemmSN (GEMMSN_MIN_K, GEMMSN_BAND_K, GEMMSN_REACH)
    return "align1" if width == 1 else "align2"


def gemmsn_max_k(M: int, N: int) -> float:
    """The longest K (below twice N) at which cuBLAS runs its gemmSN kernel for a bf16 GEMM of
    ``M`` rows and ``N`` columns at vector 1 (:data:`GEMMSN_REACH`): no bound below its first
    band of rows, none past its last."""
    if M < GEMMSN_REACH[0][0]:
        return math.inf
    for first, last, c, max_k in GEMMSN_REACH:
        if first <= M <= last:
            bound = c * N ** GEMMSN_REACH_POWER
            return bound if max_k is None else min(bound, max_k)
    return 0.0


def gemv_splits_k(M: int, N: int, K: int) -> bool:
    """Whether cuBLAS splits a GEMV (family ``gemv``, ``M`` or ``N`` 1) along ``K`` and reduces
    the parts in a second launch (:data:`GEMV_SPLIT_MIN_K`): ``K`` long and ``C`` short."""
    return min(M, N) == 1 and K >= GEMV_SPLIT_MIN_K and M * N <= GEMV_SPLIT_MAX_LEN


def is_aligned(k: Kernel) -> bool:
    """Whether the library has a kernel for the GEMM's shape as it is: bf16/fp16 with both
    inner dimensions multiples of 8 (else a slower fallback kernel runs), fp8/int8 at their
    kernels' alignment (else the operands run zero-padded: :func:`padded_shape`)."""
    if k.dtype in ALIGNMENT:
        return padded_shape(k.dtype, k.M, k.N, k.K) == (k.M, k.N, k.K)
    return _aligned(k)


#: Alignment each low-precision GEMM kernel needs, (M above, N multiple, K multiple):
#: ``torch._scaled_mm`` (fp8) asks for K and N multiples of 16, ``torch._int_mm`` (int8) for K
#: and N multiples of 8 and more than 16 rows (PyTorch's checks in its cuBLASLt wrappers).
#: They have no fallback kernel: a deployment stores the operands zero-padded (as
#: ``sim.gpu.measure`` times them).
ALIGNMENT: dict[str, tuple[int, int, int]] = {"fp8": (0, 16, 16), "int8": (16, 8, 8)}


def padded_shape(dtype: str, M: int, N: int, K: int) -> tuple[int, int, int]:
    """The GEMM shape ``dtype``'s kernel runs for ``M x N x K``: each dimension zero-padded up
    to the kernel's alignment (:data:`ALIGNMENT`); unchanged for bf16 and fp16, whose
    libraries take any shape."""
    if dtype not in ALIGNMENT:
        return M, N, K
    m_above, n_mult, k_mult = ALIGNMENT[dtype]
    return max(M, m_above + 1), -(-N // n_mult) * n_mult, -(-K // k_mult) * k_mult


@memo(maxsize=4096)
def shape_fitted_tiles(M: int, N: int, sm_count: int, splits: tuple[int, ...]
                       ) -> tuple[tuple[int, int, int, int], ...]:
    """The tiles cuBLAS's Hopper kernels size to a GEMM's shape (:data:`NVJET_TILE_BN`):
    ``(BM, BN, split, waves)``. For each width ``BN`` and split ``s``, the fewest waves its
    ``ceil(N / BN)`` column tiles allow with rows of at most :data:`NVJET_TILE_MAX_AREA` / BN,
    and one wave more, each with the fewest rows (a multiple of
    :data:`NVJET_TILE_ROWS_STEP`, at least :data:`NVJET_TILE_MIN_ROWS`) whose row tiles fit
    them: ``M`` spread evenly over the tiles, not padded up to a fixed tile."""
    step = NVJET_TILE_ROWS_STEP
    out = []
    for bn in NVJET_TILE_BN:
        n_tiles = _cdiv(N, bn)
        bm_max = NVJET_TILE_MAX_AREA // bn // step * step
        if bm_max < NVJET_TILE_MIN_ROWS:
            continue
        for s in splits:
            if s > 1 and n_tiles * s > 2 * sm_count:
                break
            first = _cdiv(_cdiv(M, bm_max) * n_tiles * s, sm_count)
            for waves in (first, first + 1):
                m_tiles = max(1, waves * sm_count // (n_tiles * s))
                bm = max(NVJET_TILE_MIN_ROWS, _cdiv(_cdiv(M, m_tiles), step) * step)
                tiles = _cdiv(M, bm) * n_tiles * s
                if bm > bm_max or (s > 1 and tiles > 2 * sm_count):
                    continue
                out.append((bm, bn, s, _cdiv(tiles, sm_count)))
    return tuple(out)


def _tile_eff(effs: tuple[float, ...], area: int) -> float:
    """A shape-fitted tile's efficiency (:func:`shape_fitted_tiles`): the best fitted one of
    the :data:`TILES` no larger than it (a larger tile reuses each loaded element more)."""
    return max(e for (bm, bn), e in zip(TILES, effs, strict=True) if bm * bn <= area)


def aligned_memory_s(cal: GpuCalibration, p: dict[str, float], dtype: str,
                     nbytes: float, c_bytes: float = 0.0) -> float:
    """Seconds the aligned tensor-core GEMMs' ``nbytes`` of HBM traffic take under the
    parameters ``p`` (:func:`_gemm_plan`'s memory time): int8's at its fitted fraction of the
    card's streaming read (``int8_bw_eff``), but ``c_bytes`` of them, cuBLASLt's int8 kernels'
    int32 stores of C, at their own (``int8_store_eff``; module doc); bf16/fp16's at the read
    itself and fp8's at their fitted fraction of it (``fp8_bw_eff``), plus the write-back of
    the dirty L2 lines their reads evict, ramping in with the bytes as the decode kernels'
    (:func:`l2_write_back_us`; module doc), all but ``c_bytes``, their stores of C
    (:func:`c_store_s`, which the caller overlaps with the rest)."""
    bw = cal.read_gb_per_s * 1e9
    if dtype == "int8" and c_bytes:
        return ((nbytes - c_bytes) / (bw * p["int8_bw_eff"])
                + c_bytes / (bw * p["int8_store_eff"]))
    if dtype == "int8":
        return nbytes / (bw * p["int8_bw_eff"])
    eff = p["fp8_bw_eff"] if dtype == "fp8" else 1.0
    return (nbytes - c_bytes) / (bw * eff) + l2_write_back_us(p, nbytes) * 1e-6


def c_store_s(cal: GpuCalibration, c_bytes: float) -> float:
    """Seconds the aligned bf16/fp16/fp8 kernels' stores of ``c_bytes`` of C take, at
    :data:`STORE_EFF` times the card's streaming read; they overlap the rest of the kernel in
    part (:data:`STORE_OVERLAP`)."""
    return c_bytes / (cal.read_gb_per_s * 1e9 * STORE_EFF)


def _tiled_us(cal: GpuCalibration, M: int, N: int, K: int, sm_rate: float, t_m: float,
              effs: tuple[float, ...], splits: tuple[int, ...], p: dict[str, float],
              k0: float = 0.0, split_us: float | None = None,
              burst: GpuBurst | None = None, fitted: bool = False,
              elem_bytes: int = 0, trace: list[TileChoice] | None = None,
              c_store: float = 0.0) -> float:
    """Fastest tile and split-K choice: waves of tiles at ``sm_rate`` (ops/s per SM) times the
    tile's efficiency, against the memory time ``t_m`` (seconds); each tile's prologue and
    epilogue cost as much as ``k0`` more elements of K; a split costs ``split_us`` (default
    ``split_cost_us``) and its partial results' traffic; ``burst``: the tiles' work at the
    burst clock (:func:`burst_us`); ``fitted``: also the tiles sized to the shape
    (:func:`shape_fitted_tiles`); ``elem_bytes`` (0: no such bound): every tile's A and W rows,
    ``(BM + BN) K`` elements of that many bytes, loaded from L2 in line traffic
    (:func:`line_traffic`) at the whole chip's L2 load bandwidth, ``fp8_load_gb_per_s``: the
    L2 and the SMs' load path are the same hardware whatever the dtype, so the rate fitted on
    the fp8 kernels (module doc) bounds these tiles too, a constant of the card, not refitted
    here (however split, a tile's rows are loaded once over its K); ``c_store``: the seconds
    C's stores take, overlapping the larger of the tiles' work and ``t_m`` in part
    (:data:`STORE_OVERLAP`); ``trace``: a list that every choice weighed is appended to
    (:class:`TileChoice`)."""
    split_s = (p["split_cost_us"] if split_us is None else split_us) * 1e-6
    bw = cal.read_gb_per_s * 1e9
    l2_s_per_elem = (elem_bytes * line_traffic(K * elem_bytes) / (p["fp8_load_gb_per_s"] * 1e9)
                     if elem_bytes else 0.0)
    choices = []
    for (bm, bn), eff in zip(TILES, effs, strict=True):
        tiles = -(-M // bm) * -(-N // bn)
        for s in splits:
            if s > 1 and tiles * s > 2 * cal.sm_count:
                break
            choices.append((bm, bn, s, -(-(tiles * s) // cal.sm_count), eff))
    if fitted:
        choices += [(bm, bn, s, waves, _tile_eff(effs, bm * bn))
                    for bm, bn, s, waves in shape_fitted_tiles(M, N, cal.sm_count, splits)]
    best = math.inf
    for bm, bn, s, waves, eff in choices:
        t_c = burst_us(burst, waves * 2 * bm * bn * (-(-K // s) + k0) / (sm_rate * eff))
        t_l2 = -(-M // bm) * -(-N // bn) * (bm + bn) * K * l2_s_per_elem
        extra = 0.0
        if s > 1:  # partial results written and reduced
            extra = split_s + 2 * s * M * N * 4 / bw
        t = _overlapped(max(t_c, t_m, t_l2), c_store, STORE_OVERLAP) + extra
        best = min(best, t)
        if trace is not None:
            trace.append(TileChoice((bm, bn), s, waves, max(t_c, t_l2) * 1e6, t_m * 1e6,
                                    t * 1e6))
    return best


def _gemm_us(cal: GpuCalibration, k: Kernel, p: dict[str, float]) -> tuple[float, float]:
    fixed, work = _gemm_plan(cal, k, p)[:2]
    return fixed, work


def gemm_choices(cal: GpuCalibration, k: Kernel) -> list[TileChoice]:
    """Every tile and split-K factor the model weighs for the GEMM ``k`` (bf16, fp16, fp8 or
    int8) on the calibration ``cal``, in the kernel family it runs (:func:`gemm_family`), each
    with its parts (:class:`TileChoice`): the model's time is the least ``fixed_us + us``
    (:func:`predict_parts_us`). Empty for the CUDA-core kernels (family ``gemv``), which have
    no tiles."""
    if k.op != "gemm" or k.dtype not in ELEM_BYTES:
        raise ValueError(f"gemm_choices: a bf16/fp16/fp8/int8 GEMM, not {k.op} {k.dtype}")
    trace: list[TileChoice] = []
    _gemm_plan(cal, k, cal.params, trace)
    # the fallback kernels and the Hopper int8 kernel state their own fixed costs; every other
    # tensor-core kernel pays the fitted fixed_us
    fixed = cal.params["fixed_us"]
    return [c if c.fixed_us is not None else dataclasses.replace(c, fixed_us=fixed)
            for c in trace]


def _gemm_plan(cal: GpuCalibration, k: Kernel, p: dict[str, float],
               trace: list[TileChoice] | None = None) -> tuple[float, float, float, float]:
    """(fixed cost, work, tensor-core operations executed, L2 line traffic beyond the bytes
    loaded) of a GEMM: the operations are the useful ones but for the fallback families',
    whose chosen tiles and splits execute their partial tiles whole
    (:func:`_loaded_tiles_us`); the excess traffic that of the 8-bit kernels' chosen tiles,
    whose loads of rows off the L2's sectors move whole lines (:func:`sector_traffic`; none
    counted for the other kernels). ``trace``: a list that every tile and split the chosen
    kernel family weighs is appended to (:class:`TileChoice`; none for the CUDA-core
    kernels)."""
    M, N, K = padded_shape(k.dtype, k.M, k.N, k.K)
    if (M, N, K) != (k.M, k.N, k.K):
        # no misaligned fp8/int8 kernel: the padded GEMM runs, moving the padded operands
        k = dataclasses.replace(k, M=M, N=N, K=K)
    nbytes = kernel_bytes_flops(k)[0]
    bw = cal.read_gb_per_s * 1e9
    peak = cal.peak_tflops[k.dtype] * 1e12
    effs = (p["eff_128x256"], p["eff_128x128"], p["eff_64x128"], p["eff_64x64"])
    family = gemm_family(k)
    useful = 2.0 * M * N * K
    if family == "gemv":  # a GEMV (or gemmSN) kernel takes any alignment
        # cuBLAS's CUDA-core kernels (gemv, gemmSN): no tensor cores; the bytes at their load
        # path's bandwidth, the operations at the CUDA cores' rate; the bytes' time
        # plus the write-back of the dirty L2 lines its reads evict, ramping in with the bytes
        # as the decode kernels' (module doc); gemmSN's CTAs (GEMMSN_CTA_COLS columns of C
        # each, over its template's rows and all of K) no faster than one CTA's walk along K
        # (its loop's latency: fitted on CTAs fewer than the SMs, each alone on its SM, and a
        # CTA that shares its SM walks no faster), a fitted time per row and element of K;
        # gemmSN computes an even number of rows (GEMMSN_ROWS_STEP, gemmsn_template), each
        # template at its own speed (GEMMSN_SPEED: its operations, and its walk where
        # GEMMSN_WALK_SPEED has no entry), and loads at
        # a fitted bandwidth of its own; a CTA's walk is that of at least GEMMSN_MIN_WALK_ROWS
        # rows, at its template's walk speed (gemmsn_walk: GEMMSN_WALK_SPEED), and waits
        # behind the L2's write-back as the loads do (its loads miss to the HBM the
        # write-back occupies: the ramp adds to it)
        ramp = p["decode_ramp_us"] * 1e-6 * min(1.0, nbytes / (p["gemv_ramp_mb"] * 1e6))
        sn = M > 1 and N > 1
        cta_rows, row_ctas, exact = gemmsn_template(M) if sn else (M, 1, True)
        rows = cta_rows * row_ctas  # all the rows its CTAs compute
        speed = GEMMSN_SPEED.get((cta_rows, exact), 1.0) if sn else 1.0
        dot = N == 1 and (M == 1 or (M <= DOT_MAX_ROWS and K > DOT_MIN_K))
        # ... and a GEMV's (gemvx: a warp per output, over all of K unless it splits K) no
        # faster than one warp's walk along K, one row's at gemmSN's time per row and element
        # (its kernel times: 3.2 us at 1x88x1060, 3.9 at 1x114x1653, 4.8 at 1x164x3146,
        # about 2.1 us plus 0.89 ns per element of K over 14 such launches of fewer CTAs than
        # SMs; test_a_gemv_walks_its_k)
        lone_warp = not (sn or dot or gemv_splits_k(M, N, K))
        walk_rows, walk_speed = gemmsn_walk(cta_rows, exact) if sn else (1, 1.0)
        walk = (walk_rows * K * p["gemmsn_row_ns"] * 1e-9 / walk_speed if sn or lone_warp
                else 0.0)
        load = min(bw, p["gemmsn_load_gb_per_s" if sn else "gemv_load_gb_per_s"] * 1e9)
        simt = (p["fixed_us"], max(nbytes / load + ramp,
                                   useful * rows / M / (p["simt_tflops"] * 1e12 * speed),
                                   walk + (ramp if sn else 0.0)) * 1e6,
                useful)
        if dot:
            # one dot product per row (cuBLAS's dot_kernel), then reduce_1Block_kernel: a
            # second launch
            return simt[0] + p["dot_reduce_us"], simt[1], useful, 0.0
        if gemv_splits_k(M, N, K):
            # split along K (GEMV_SPLIT_MIN_K): cuBLASLt's splitKreduce_kernel after it, the
            # reduction the tensor-core kernels' splits launch too (split_cost_us)
            return simt[0] + p["split_cost_us"], simt[1], useful, 0.0
        return (*simt, 0.0)
    if family in ("align1", "align2"):
        # the fallback kernels: their own tiles (FALLBACK_TILES), each CTA's step along K the
        # slower of its products at the family's rate and its tile loads at the family's load
        # bandwidth (module doc)
        rate_eff, bw_eff = p[f"{family}_rate_eff"], p[f"{family}_bw_eff"]
        slow = p["align1_k8_slowdown"] if family == "align1" and K % 8 == 0 else 1.0
        sm_rate = peak * rate_eff / (slow * cal.sm_count)
        sm_load = p[f"{family}_load_gb_per_s"] * 1e9 / (slow * cal.sm_count)
        out = M * N * OUT_BYTES[k.dtype]  # C, stored after the main loop (module doc)
        t_m = (nbytes - out) * slow / (bw * bw_eff)
        t_store = out * slow / (bw * bw_eff)
        # CUTLASS's split-K variant (fp32 partials, then a splitKreduce_kernel launch; its
        # CTAs of ALIGN1_SPLIT_STEPS' tiles step by their own measure) runs
        # whenever 128x128 tiles would leave SMs idle and K is long, and for bf16 whenever C
        # has fewer than 16 columns (as recorded: the kernels column of
        # sim/data/gpu/measured_h100_misaligned.csv and measured_h100_v2_gemm_kernels.csv);
        # where they fill the SMs, the large tiles' serial split-K (fallback_serial_splits)
        underfilled = _cdiv(M, 128) * _cdiv(N, 128) < cal.sm_count
        # ... but where even UNDERFILLED_TILE's tiles fill the SMs, only from
        # FALLBACK_SPLIT_K_FILLED on
        filled = _cdiv(M, UNDERFILLED_TILE[0]) * _cdiv(N, UNDERFILLED_TILE[1]) >= cal.sm_count
        split = ((underfilled and K >= (FALLBACK_SPLIT_K_FILLED if filled else FALLBACK_SPLIT_K))
                 or (family == "align1" and k.dtype == "bf16" and N < 16 and K > 1))
        # below FALLBACK_SPLIT_K, where even 64x64 tiles leave SMs idle, cuBLAS ran either
        # variant: the faster of the two
        variants = (False, True) if underfilled and not filled and not split else (split,)
        fixed = p["fallback_fixed_us"]
        # a lone align-1 CTA's step along K: at least align1_lone_step_ns
        lone_step = p["align1_lone_step_ns"] * 1e-9 if family == "align1" else 0.0
        # the align-1 wmma kernels' CTAs load at their own bandwidth (wmma_load_gb_per_s)
        wmma_load = ({WMMA_TILE: p["wmma_load_gb_per_s"] * 1e9 / (slow * cal.sm_count)}
                     if family == "align1" else None)
        choices = []
        for split in variants:
            tiles = FALLBACK_TILES[family]
            if family == "align1" and k.dtype == "bf16":  # no bf16 wmma at vector 1 (WMMA_TILE)
                tiles = tuple(t for t in tiles if t != WMMA_TILE)
            if family == "align1" and underfilled and not split:  # UNDERFILLED_TILE
                tiles = tuple(t for t in tiles if t[0] * t[1] <= math.prod(UNDERFILLED_TILE))
            if M < 16 and K > 1 and WMMA_TILE in tiles:  # WMMA_SPLIT_K_FEW_ROWS
                tiles = (WMMA_TILE,)
            # the wmma kernels split only from WMMA_SPLIT_K on: below it they run whole, beside
            # the other kernels' split-K variant (the faster of the two)
            whole = (WMMA_TILE,) if split and K < wmma_split_k(M) and WMMA_TILE in tiles else ()
            for group, splitting in (([t for t in tiles if t not in whole], split),
                                     (whole, False)):
                if group:
                    weighed: list[TileChoice] | None = [] if trace is not None else None
                    t, ops, _ = _loaded_tiles_us(cal, M, N, K, tuple(group),
                                                 ELEM_BYTES[k.dtype], sm_rate, sm_load, t_m,
                                                 FALLBACK_SPLITS if splitting else (1,),
                                                 p["fallback_tile_k0"], t_store=t_store,
                                                 lone_step=lone_step,
                                                 tile_steps=(ALIGN1_SPLIT_STEPS
                                                             if family == "align1" and splitting
                                                             else None),
                                                 serial=not splitting and not underfilled,
                                                 tile_loads=wmma_load, trace=weighed)
                    reduce_us = p["fallback_reduce_us"] if splitting else 0.0
                    choices.append((fixed + reduce_us, t * 1e6, ops, 0.0))
                    if trace is not None and weighed is not None:  # the reduction's launch
                        trace += [dataclasses.replace(c, fixed_us=fixed + reduce_us)
                                  for c in weighed]
        return min(choices, key=lambda c: c[0] + c[1])
    # the aligned kernels' memory time: cuBLASLt's int8 kernels store their int32 C at
    # int8_store_eff beside the reads; the bf16/fp16/fp8 ones' stores of C (c_store_s) are
    # apart from it, overlapping the rest in part (STORE_OVERLAP)
    c_bytes = M * N * (k.o_bytes or OUT_BYTES[k.dtype])
    t_m = aligned_memory_s(cal, p, k.dtype, nbytes, c_bytes)
    c_store = c_store_s(cal, c_bytes)
    if family == "int8_align8":
        if not int8_n8_hopper(cal.sm_count, M, N, K):
            # CUTLASS's align-4 kernels: tiles, rate, load path
            sm_rate = peak * p["int8_align8_eff"] / cal.sm_count
            sm_load = p["int8_align8_load_gb_per_s"] * 1e9 / cal.sm_count
            # the tile cuBLAS dispatches (int8_align4_tile), not the fastest; but of the
            # 256-by-128 tile either orientation (INT8_ALIGN4_LARGE_TILES); K a multiple of 16
            # (past the Hopper kernel's waves) runs the 64x128 tile's three-stage variant, at
            # its own step in the sectors its rows span (INT8_N8_CUTLASS_STEPS)
            tiles, own_steps = INT8_N8_CUTLASS_TILE, None
            if K % VECTOR_BYTES:
                tiles = (int8_align4_tile(cal.sm_count, M, N, K),)
                if tiles[0] in INT8_ALIGN4_LARGE_TILES:
                    tiles = INT8_ALIGN4_LARGE_TILES
            else:
                own_steps = {t: (ns * int8_align4_sectors(K), k0)
                             for t, (ns, k0) in INT8_N8_CUTLASS_STEPS.items()}
            # (their bytes all at int8_bw_eff, C's too)
            t, ops, _ = _loaded_tiles_us(cal, M, N, K, tiles, 1, sm_rate, sm_load,
                                         aligned_memory_s(cal, p, k.dtype, nbytes), (1,),
                                         p["int8_align8_tile_k0"], clipped_loads=True,
                                         step_floor=INT8_ALIGN4_STEP_NS * 1e-9,
                                         tile_steps=own_steps, trace=trace)
            return p["fixed_us"], t * 1e6, ops, 0.0
        # only N off 16: cuBLASLt's Hopper kernel, one tile, its own fixed cost and rate; its
        # int32 stores of C at int8_store_eff, as cuBLASLt's other int8 kernels' (module doc)
        sm_rate = peak * p["int8_n8_eff"] / cal.sm_count
        bm, bn = INT8_N8_TILE
        ctas = int8_n8_ctas(M, N)
        # each wave past the first adds its CTAs' start and end (INT8_N8_WAVE_K0)
        waves = _cdiv(ctas, cal.sm_count)
        t_c = (2 * bm * bn * (waves * (K + p["fallback_tile_k0"]) + (waves - 1) * INT8_N8_WAVE_K0)
               / sm_rate)
        executed = _cdiv(M, bm) * _cdiv(N, bn) * 2.0 * bm * bn * K
        if trace is not None:
            trace.append(TileChoice((bm, bn), 1, waves, t_c * 1e6, t_m * 1e6,
                                    max(t_c, t_m) * 1e6, p["int8_n8_fixed_us"]))
        return p["int8_n8_fixed_us"], max(t_c, t_m) * 1e6, executed, 0.0
    if k.dtype == "int8":
        # cuBLASLt's int8 kernels (torch._int_mm): the tile it dispatches (int8_tile), never
        # split along K, at that tile's rate; the CTAs' loads of A and W from L2 (K bytes a
        # row) bound it too (L2_LINE_BYTES, sector_traffic); that work overlaps in part
        # (int8_overlap) the HBM's time, its int32 stores of C at their own efficiency
        # (int8_store_eff)
        bm, bn = int8_tile(cal.sm_count, M, N, K)
        rate = peak * p[f"int8_eff_{bm}x{bn}"] / cal.sm_count
        n_tiles = _cdiv(M, bm) * _cdiv(N, bn)
        steps = K + p["int8_tile_k0"]
        t_c = _cdiv(n_tiles, cal.sm_count) * 2 * bm * bn * steps / rate
        t_l2 = (n_tiles * (bm + bn) * K * sector_traffic(K * ELEM_BYTES[k.dtype])
                / (p["int8_load_gb_per_s"] * 1e9))
        excess = n_tiles * (bm + bn) * K * (sector_traffic(K * ELEM_BYTES[k.dtype]) - 1.0)
        t = _overlapped(max(t_c, t_l2), t_m, p["int8_overlap"])
        if trace is not None:
            trace.append(TileChoice((bm, bn), 1, _cdiv(n_tiles, cal.sm_count),
                                    max(t_c, t_l2) * 1e6, t_m * 1e6, t * 1e6))
        return p["fixed_us"], t * 1e6, useful, excess
    burst = cal.burst if cal.light_load and k.dtype in BURST_DTYPES else None
    if k.dtype == "fp8":
        # cuBLASLt's Hopper fp8 kernels (nvjet): the fastest of their tiles (NVJET_FP8_TILES),
        # whole or split along K (then the split's cost), each CTA's step along K the slower of
        # its products at fp8's rate and its A and W rows loaded from L2 in line traffic
        # where a row is off the sectors (sector_traffic, as for int8's loads)
        sm_rate = peak * p["fp8_rate_eff"] / cal.sm_count
        sm_load = p["fp8_load_gb_per_s"] * 1e9 / (cal.sm_count * sector_traffic(K))
        # ... against their reads (fp8_bw_eff, and the L2's write-back) and, apart, C's stores
        # in part under the rest, as the bf16/fp16 kernels' (STORE_EFF, STORE_OVERLAP)
        plans = []
        for splits, extra in (((1,), 0.0), (SPLITS, p["split_cost_us"] * 1e-6)):
            weighed = [] if trace is not None else None
            t, _, loaded = _loaded_tiles_us(cal, M, N, K, NVJET_FP8_TILES, 1, sm_rate, sm_load,
                                            t_m, splits, p["fp8_tile_k0"], burst=burst,
                                            overlap=p["fp8_overlap"],
                                            step_floor=p["fp8_step_ns"] * 1e-9,
                                            c_store=c_store, trace=weighed)
            plans.append((t + extra, loaded))
            if trace is not None and weighed is not None:  # a split pays its cost
                trace += [dataclasses.replace(c, us=c.us + extra * 1e6) if c.split > 1 else c
                          for c in weighed if c.split > 1 or splits == (1,)]
        t, loaded = min(plans)
        return p["fixed_us"], t * 1e6, useful, loaded * (sector_traffic(K) - 1.0)
    # bf16/fp16's Hopper kernels size their tiles to the shape (NVJET_TILE_BN), and store C in
    # part under the rest (STORE_EFF, STORE_OVERLAP)
    t = _tiled_us(cal, M, N, K, peak / cal.sm_count, t_m, effs, SPLITS, p, burst=burst,
                  fitted=k.dtype in ("bf16", "fp16"), elem_bytes=ELEM_BYTES[k.dtype], trace=trace,
                  c_store=c_store)
    return p["fixed_us"], t * 1e6, useful, 0.0


#: The CTA tiles (rows of M, columns of N) of cuBLASLt's Hopper fp8 kernels
#: (``nvjet_sm90_qqtst_<A>x<B>_*``, persistent: one CTA per SM walking its tiles), as
#: ``sim.gpu.measure --kernels`` recorded them on the H100 and the H200 (the kernels columns of
#: ``measured_h100_v2_gemm_kernels.csv``, its _repeat, ``measured_h100_misaligned.csv``,
#: ``measured_h200_misaligned.csv`` and ``measured_h100_tiles.csv``): the name's ``A`` runs along
#: N and ``B`` along M (``_128x80_`` at 320 x 4096: 32 x 4 = 128 tiles, one wave; 80 along N
#: would be 52 x 3 = 156, two), one of them a multiple of 64 (the warpgroups' rows) and the
#: other a multiple of 8 (wgmma's N). cuBLASLt picks the tile that fills the SMs' waves:
#: 128x80, 128x112, 128x136 and 128x160 (the names') at 320, 437, 515 and 576 rows.
NVJET_FP8_TILES = ((8, 64), (16, 64), (16, 128), (24, 64), (32, 64), (32, 128), (48, 64),
                   (64, 8), (64, 16), (64, 24), (64, 40), (64, 48), (64, 64), (64, 88), (64, 96),
                   (64, 112), (64, 128), (72, 128), (80, 128), (96, 64), (104, 128), (112, 128),
                   (120, 128), (128, 16), (128, 32), (128, 64), (128, 80), (128, 96), (128, 112),
                   (128, 128), (128, 144), (128, 160), (136, 128), (152, 128), (160, 128),
                   (168, 64), (192, 96), (208, 64), (304, 64))
#: The L2's line (bytes; the H100's and H200's L2 caches in 128-byte lines of four 32-byte
#: sectors: NVIDIA's Hopper tuning guide, and the CUDA C++ Best Practices Guide's coalescing
#: section).
L2_LINE_BYTES = 128
#: ... and its sector, the unit a line moves in (32 bytes: the same sources).
L2_SECTOR_BYTES = 32


def _span_traffic(row_bytes: int, unit: int, segment: int) -> float:
    """The units (L2 lines or sectors, ``unit`` bytes) a CTA's loads of rows ``row_bytes`` long
    touch per unit's worth of bytes, each row loaded in segments of ``segment`` bytes: the rows'
    starts cycle over the multiples of ``gcd(row_bytes, unit)``, one of them on a unit, and a
    segment that starts off a unit spans one unit more:
    ``1 + (1 - gcd(row_bytes, unit) / unit) * unit / segment``."""
    return 1.0 + (1.0 - math.gcd(row_bytes, unit) / unit) * unit / segment


def line_traffic(row_bytes: int) -> float:
    """The L2 line traffic of a CTA's loads of rows ``row_bytes`` long (A and W: rows of K)
    per byte it loads: 1 where every row starts on a line (a multiple of
    :data:`L2_LINE_BYTES`), else each of its line-long segments of a row that does not start on
    a line spans two lines: ``1 + (1 - gcd(row_bytes, line) / line)`` (rows of 4112 bytes:
    seven in eight rows off the line, 1.875). Measured: aligned int8 at K = 4112 (N = 4112)
    ran its 64x128 tiles about twice as long as at K = 4096, the time growing with the count of
    tiles rather than by waves (``measured_h100_tiles.csv``: 1000 rows 95 us of kernel against
    50 at 4096), the whole chip's L2 bandwidth the bound."""
    return _span_traffic(row_bytes, L2_LINE_BYTES, L2_LINE_BYTES)


def int8_align4_sectors(row_bytes: int) -> float:
    """The L2 sectors the loads of int8's align-4 kernels (CUTLASS's ``cp.async`` of 4 bytes)
    touch per sector's worth of a row ``row_bytes`` long (A and W: rows of K), relative to a row
    on a sector: each stage's :data:`INT8_BK` bytes of a row that does not start on a sector
    (a multiple of :data:`L2_SECTOR_BYTES`) span one sector more: ``1 + (1 - gcd(row_bytes,
    sector) / sector) * sector / INT8_BK`` (K 8 off 16: 1.1875; an odd multiple of 16: 1.125).
    Their CTAs load rows at this cost (:data:`INT8_N8_CUTLASS_STEPS`), not whole lines as the
    align-16 kernels' 16-byte copies (:func:`sector_traffic`): measured, the 64x128 tile's
    three-stage launches at K an odd multiple of 16 (6001x4104x4112, 12130x2296x11472) took
    8.0 and 8.8 ns per element of K per wave, at a multiple of 32 6.7 to 7.6; every K-off
    launch pays the same 1.1875, within the K-off kernels' fitted load bandwidth."""
    return _span_traffic(row_bytes, L2_SECTOR_BYTES, INT8_BK)


def sector_traffic(row_bytes: int) -> float:
    """:func:`line_traffic` for the loads of the 8-bit kernels (CUTLASS's Ampere int8 kernels'
    ``cp.async``, 16 bytes a thread, and the Hopper fp8 kernels' TMA boxes): none extra where
    every row starts on an L2 sector (a multiple of :data:`L2_SECTOR_BYTES`), a line's worth
    where one does not. Measured on the aligned int8 GEMMs bound by their L2 loads (the random
    dataset's ``measured_h100_random.csv`` and the tile dataset's): at K an odd multiple of 16
    the line traffic held them (mean error -1.7%, 33 GEMMs); at K a multiple of 32 but not of
    128 the model with line traffic ran slow by 12% (K a multiple of 64, 3 GEMMs) and 26% (of
    32 only, 7) on average, with sector traffic within 8%, as it would if their rows cost no
    more than aligned ones. fp8's L2-bound GEMMs of the random dataset at K a multiple of 32 but
    not of 128 lie between the two: 6.8% MAPE with sector traffic (mean -4.5%), 9.4% with line
    traffic (mean +2.8%; ``tests/test_gpu.py`` recomputes these), and the large fp8 GEMMs at
    such K ran up to 29% faster than line traffic let them (6104x4893x4125 at 1,242 TFLOP/s).
    bf16 and fp16 keep :func:`line_traffic` (sector traffic for them too was tried and made the
    held-out fp16 aligned GEMMs worse)."""
    return 1.0 if row_bytes % L2_SECTOR_BYTES == 0 else line_traffic(row_bytes)


def int8_tile(sm_count: int, M: int, N: int, K: int) -> tuple[int, int]:
    """The tile (rows of M, columns of N) cuBLASLt runs an aligned int8 GEMM of the padded
    shape ``M x N x K`` with (:data:`INT8_TILES`): 64x64 for at most :data:`INT8_SMALL_M`
    rows or where its tiles fill at most :data:`INT8_64X64_MAX_WAVES` waves of ``sm_count``
    SMs; else 256x128 from :data:`INT8_256X128_MIN_TILES` of them on (K at least
    :data:`INT8_256X128_MIN_K`); else 128x128 from K = :data:`INT8_128X128_MIN_K` on; else
    64x128."""
    if (M <= INT8_SMALL_M
            or _cdiv(M, 64) * _cdiv(N, 64) <= INT8_64X64_MAX_WAVES * sm_count):
        return 64, 64
    if K >= INT8_256X128_MIN_K and _cdiv(M, 256) * _cdiv(N, 128) >= INT8_256X128_MIN_TILES:
        return 256, 128
    return (128, 128) if K >= INT8_128X128_MIN_K else (64, 128)


def fallback_serial_splits(sm_count: int, M: int, N: int, K: int, tile: tuple[int, int],
                           k0: float = FALLBACK_SERIAL_K0,
                           slots: dict[tuple[int, int], int] | None = None) -> int:
    """The slices along K (the grid's z) cuBLAS runs a fallback kernel of ``tile`` (rows of M,
    columns of N) in, unsplit or CUTLASS's serial split-K (:data:`FALLBACK_SERIAL_K0`), where
    its split-K variant and reduction do not run: 1 but for :data:`FALLBACK_SERIAL_TILES` of
    at least as many tiles as SMs; for those the count of the fewest waves of CTAs
    (:data:`FALLBACK_SERIAL_SLOTS` resident per SM) times each slice's walk, its share of K
    plus FALLBACK_SERIAL_K0, the fewer slices on a tie (at most FALLBACK_SPLITS' largest, each
    at least 8 elements of K). ``k0`` and ``slots`` (CTAs resident per SM by tile, 1 for those
    it omits) replace the recorded constants (their test recomputes them)."""
    n_tiles = _cdiv(M, tile[0]) * _cdiv(N, tile[1])
    if tile not in FALLBACK_SERIAL_TILES or n_tiles < sm_count:
        return 1
    resident = sm_count * (FALLBACK_SERIAL_SLOTS if slots is None else slots).get(tile, 1)
    best, best_z = math.inf, 1
    for z in FALLBACK_SPLITS:
        if z > 1 and _cdiv(K, z) < 8:
            break
        walk = _cdiv(n_tiles * z, resident) * (_cdiv(K, z) + k0)
        if walk < best:
            best, best_z = walk, z
    return best_z


def int8_align4_tile(sm_count: int, M: int, N: int, K: int) -> tuple[int, int]:
    """The tile (rows of M, columns of N) cuBLAS runs an int8 GEMM of the padded shape
    ``M x N x K`` with where ``K`` is 8 off a multiple of 16 (CUTLASS's align-4 kernels,
    :data:`FALLBACK_TILES`), as recorded, not the fastest: 64x64 where its tiles fill at most
    :data:`INT8_ALIGN4_64X64_MAX_WAVES` waves of ``sm_count`` SMs
    (:data:`INT8_ALIGN4_64X64_MAX_WAVES_THIN` with M or N at most 32); else 64x128 with M or N
    at most 64 or where 128x128 tiles fill at most :data:`INT8_ALIGN4_64X128_MAX_WAVES`; else,
    where 128x128 tiles fit one wave, 256x128 if its tiles fill at least
    :data:`INT8_ALIGN4_256X128_MIN_WAVES` and are fewer (M above 128), else 128x128; else
    256x128 up to :data:`INT8_ALIGN4_256X128_MAX_M` rows, 128x256 beyond (no recorded
    launch's tile turned on ``K``)."""
    thin = min(M, N) <= 32
    max_64x64 = INT8_ALIGN4_64X64_MAX_WAVES_THIN if thin else INT8_ALIGN4_64X64_MAX_WAVES
    if _cdiv(M, 64) * _cdiv(N, 64) <= max_64x64 * sm_count:
        return 64, 64
    n_128 = _cdiv(M, 128) * _cdiv(N, 128)
    if min(M, N) <= 64 or n_128 <= INT8_ALIGN4_64X128_MAX_WAVES * sm_count:
        return 64, 128
    if n_128 <= sm_count:
        n_256 = _cdiv(M, 256) * _cdiv(N, 128)
        return ((256, 128) if INT8_ALIGN4_256X128_MIN_WAVES * sm_count <= n_256 < n_128
                else (128, 128))
    return (256, 128) if M <= INT8_ALIGN4_256X128_MAX_M else (128, 256)


def _loaded_tiles_us(cal: GpuCalibration, M: int, N: int, K: int,
                     tiles: tuple[tuple[int, int], ...], elem_bytes: int, sm_rate: float,
                     sm_load: float, t_m: float, splits: tuple[int, ...], k0: float,
                     clipped_loads: bool = False, step_floor: float = 0.0,
                     t_store: float = 0.0, lone_step: float = 0.0, serial: bool = False,
                     burst: GpuBurst | None = None,
                     overlap: float = math.inf,
                     tile_steps: dict[tuple[int, int], tuple[float, float]] | None = None,
                     c_store: float = 0.0,
                     tile_loads: dict[tuple[int, int], float] | None = None,
                     trace: list[TileChoice] | None = None) -> tuple[float, float, float]:
    """Fastest of a fallback family's tiles and split-K factors: (seconds, the tensor-core
    operations its CTAs execute, partial tiles whole, the bytes of A and W its CTAs load, each
    tile's rows once over K): waves of CTAs over
    the SMs, each CTA's step along K the slower of its ``2 BM BN`` operations at ``sm_rate``
    (ops/s per SM) and its ``(BM + BN)`` loaded elements at ``sm_load`` (bytes/s per SM), for
    its share of K plus ``k0`` elements (the prologue and epilogue); against the memory time
    ``t_m``; a split adds its fp32 partials' traffic (the reduction's launch is the
    caller's). ``clipped_loads``: a CTA loads only the rows of A and W inside the matrices
    (int8's align-4 kernels: their cp.async copies of the rows past M or N are predicated off,
    zero-filled without a read), so the slowest CTA's step loads ``min(BM, M) + min(BN, N)``
    rows; ``step_floor``: the shortest step (seconds per element of K) however few it loads;
    ``t_store``: the time C's stores take after the loop (unsplit; a split's partials are its
    traffic above); ``lone_step``: the shortest step (seconds per element of K) where all the
    CTAs fit one wave, each alone on its SM (its loads' latency unhidden), but the wmma tile's
    (:data:`WMMA_TILE`); ``serial``: in place of ``splits``, each tile runs in the
    slices cuBLAS picks for it (:func:`fallback_serial_splits`: CUTLASS's serial split-K), whose
    partial tiles of C each slice but the first reads and each stores in turn (``t_store``
    each); ``burst``: the CTAs' work at the burst clock (:func:`burst_us`);
    ``overlap``: how far a step's products and loads, and the CTAs' work and the memory time,
    overlap (:func:`_overlapped`; default: wholly, the slower of the two); ``tile_steps``:
    tiles whose CTAs load only the rows inside the matrices at their own time per row and
    element of K and start and end in their own elements of K (:data:`ALIGN1_SPLIT_STEPS`),
    each stepping at that step plus ``lone_step``'s excess over it shared among the CTAs on
    its SM; ``tile_loads``: tiles whose CTAs load at their own bytes per second per SM in
    place of ``sm_load`` (the align-1 wmma kernels', ``wmma_load_gb_per_s``); ``c_store``:
    the seconds the stores of C take apart from ``t_m`` (the aligned
    fp8 kernels', :func:`c_store_s`), overlapping the rest in part (:data:`STORE_OVERLAP`);
    ``trace``: a list that every choice weighed is appended to (:class:`TileChoice`)."""
    bw = cal.read_gb_per_s * 1e9
    best, ops, loaded = math.inf, 0.0, 0.0
    for bm, bn in tiles:
        n_tiles = _cdiv(M, bm) * _cdiv(N, bn)
        own = tile_steps.get((bm, bn)) if tile_steps else None
        rows = min(bm, M) + min(bn, N) if clipped_loads or own else bm + bn
        tile_load = tile_loads.get((bm, bn), sm_load) if tile_loads else sm_load
        load = rows * own[0] * 1e-9 if own else rows * elem_bytes / tile_load
        tk0 = own[1] if own else k0
        step = max(_overlapped(2.0 * bm * bn / sm_rate, load, overlap), step_floor)
        tile_splits = ((fallback_serial_splits(cal.sm_count, M, N, K, (bm, bn)),) if serial
                       else splits)
        for s in tile_splits:
            # no split below 8 elements of K; nor once the CTAs' work alone, which grows with
            # s (each pays k0), exceeds the best
            if s > 1 and (_cdiv(K, s) < 8
                          or n_tiles * (K + s * tk0) * step / cal.sm_count > best):
                break
            lone = n_tiles * s <= cal.sm_count
            per_sm = _cdiv(n_tiles * s, cal.sm_count)
            cta_step = (step + max(lone_step - step, 0.0) / per_sm if own
                        else max(step, lone_step) if lone and (bm, bn) != WMMA_TILE
                        else step)
            t_c = burst_us(burst, per_sm * (_cdiv(K, s) + tk0) * cta_step)
            if serial or s == 1:  # C's stores (a serial split's partial tiles: in turn)
                extra = (2 * s - 1) * t_store
            else:  # the split-K variant's fp32 partials, written and read back
                extra = 2 * s * M * N * 4 / bw
            t = _overlapped(_overlapped(t_c, t_m, overlap), c_store, STORE_OVERLAP) + extra
            if trace is not None:
                trace.append(TileChoice((bm, bn), s, per_sm, t_c * 1e6, t_m * 1e6, t * 1e6))
            if t < best:
                best, ops = t, n_tiles * s * 2.0 * bm * bn * _cdiv(K, s)
                loaded = float(n_tiles * rows * elem_bytes * K)
    return best, ops, loaded


def _overlapped(a: float, b: float, overlap: float) -> float:
    """Two times that overlap in part: ``(a^q + b^q)^(1/q)``, ``q = 1 + overlap`` (0 adds
    them; ``math.inf``, the larger)."""
    if math.isinf(overlap):
        return max(a, b)
    q = 1.0 + overlap
    hi = max(a, b)
    if hi <= 0.0:
        return 0.0
    return hi * ((a / hi) ** q + (b / hi) ** q) ** (1.0 / q)


def _w4a16_us(cal: GpuCalibration, k: Kernel, p: dict[str, float]) -> tuple[float, float]:
    """PyTorch's int4 GEMM (module doc): the weight stream and the tensor-core work that grows
    with every row, overlapped in part (a p-norm)."""
    t_m = kernel_bytes_flops(k)[0] / (cal.read_gb_per_s * 1e9 * p["w4_bw_eff"])
    t_c = 2.0 * k.M * k.N * k.K / (cal.peak_tflops["bf16"] * 1e12 * p["w4_rate_eff"])
    q = 1.0 + p["w4_overlap"]
    return p["fixed_us"], (t_m**q + t_c**q) ** (1.0 / q) * 1e6


def _w4a16_triton_us(cal: GpuCalibration, k: Kernel, p: dict[str, float]
                     ) -> tuple[float, float]:
    """The project's Triton W4A16 GEMM (module doc): the fastest of its tiles."""
    return p["fixed_us"], _w4a16_triton_tile(cal, k, p)[0] * 1e6


def _w4a16_triton_tile(cal: GpuCalibration, k: Kernel, p: dict[str, float]
                       ) -> tuple[float, int]:
    """(seconds, BM) of the fastest of the Triton W4A16 GEMM's tiles (module doc)."""
    t_m = kernel_bytes_flops(k)[0] / (cal.read_gb_per_s * 1e9)
    peak = cal.peak_tflops["bf16"] * 1e12
    best = (math.inf, W4A16_TRITON_TILES[0][0])
    for bm, bn in W4A16_TRITON_TILES:
        if (bm, bn) in W4A16_TRITON_UNPICKED:
            continue
        row_tiles = _cdiv(k.M, bm)
        waves = _cdiv(row_tiles * _cdiv(k.N, bn), cal.sm_count)
        walk = waves * k.K * (p["w4t_step_ops"] + bn * p["w4t_col_ops"]
                              + bm * bn * p["w4t_mac_ops"]) / (peak / cal.sm_count)
        dequant = row_tiles * k.N * k.K / (peak * p["w4t_dequant_eff"])
        best = min(best, (max(walk, dequant, t_m), bm))
    return best


#: Rows of one row tile of PyTorch's int4 GEMM (``aten._weight_int4pack_mm``): its grid's third
#: dimension is ``ceil(M / 16)`` (``measured_h100_quant_w4_graph.csv``, column ``kernels``).
W4A16_ROW_TILE = 16


def dequant_weights(cal: GpuCalibration, k: Kernel) -> float:
    """Weights an int4 weight-only GEMM's row tiles dequantize: each tile of rows (16 for
    PyTorch's kernel, :data:`W4A16_ROW_TILE`; the chosen tile's ``BM`` for the Triton kernel,
    as its time picks it) reads and unpacks the whole ``N x K`` weight again; 0 for other
    kernels."""
    if k.op != "gemm" or k.dtype not in W4A16:
        return 0.0
    rows = (W4A16_ROW_TILE if k.dtype == "w4a16"
            else _w4a16_triton_tile(cal, k, cal.params)[1])
    return float(_cdiv(k.M, rows) * k.N * k.K)


def kivi_split(batch: int, kv_heads: int, kv_len: int, sm_count: int) -> tuple[int, int]:
    """(programs per sequence and KV head, tokens per program) of the project's split-KV decode
    kernel: chunks of a multiple of :data:`KIVI_MIN_CHUNK` tokens, the shortest that give at
    most :data:`KIVI_PROGRAMS_PER_SM` programs per SM; so a longer cache never gets shorter
    chunks (its time never drops as the cache grows)."""
    want = _cdiv(KIVI_PROGRAMS_PER_SM * sm_count, max(1, batch * kv_heads))
    chunk = KIVI_MIN_CHUNK * _cdiv(kv_len, KIVI_MIN_CHUNK * want)
    return _cdiv(kv_len, chunk), chunk


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def kivi_rounds(batch: int, kv_heads: int, kv_len: int, sm_count: int, lone: float
                ) -> float:
    """The split-KV decode kernel's walk over the SMs, in tokens of one program's share of an
    SM (module doc): its programs in launch order (every head's chunk of a split, split after
    split: ``(splits - 1) x heads`` full chunks, then the ``heads`` last ones, shorter) fill
    :data:`KIVI_RESIDENT_PER_SM` slots per SM, one per SM and then a second, in rounds; a round
    lasts as long as its busiest SM: a pair of ``L1 >= L2`` tokens ``2 L2 + lone (L1 - L2)``,
    a program alone ``lone L``. The rounds are taken one after another (a short chunk's slot is
    not refilled early)."""
    splits, chunk = kivi_split(batch, kv_heads, kv_len, sm_count)
    heads = batch * kv_heads
    programs = heads * splits
    full = programs - heads  # the chunks before each head's last one
    last = kv_len - (splits - 1) * chunk

    def length(i: int) -> int:
        return chunk if i < full else last

    slots = KIVI_RESIDENT_PER_SM * sm_count
    total = 0.0
    for start in range(0, programs, slots):
        # the first SM holds the round's longest programs (lengths never grow along the launch)
        first, second = start, start + sm_count
        t = 0.0
        if second < programs:
            l1, l2 = length(first), length(second)
            t = 2 * l2 + lone * (l1 - l2)
        alone = max(first, programs - sm_count)  # the first SM of the round with one program
        if alone < second:
            t = max(t, lone * length(alone))
        total += t
    return total


def _kivi_us(cal: GpuCalibration, k: Kernel, p: dict[str, float]) -> tuple[float, float]:
    """Decode attention over a KIVI cache, the project's kernel (module doc): its programs'
    rounds on the SMs (:func:`kivi_rounds`), the cache's bytes below."""
    tokens = kivi_rounds(k.B, k.Hkv, k.S, cal.sm_count, p["kivi_lone_programs"])
    per_token = p["kivi8_token_ops" if k.kv_dtype == "int8" else "kivi4_token_ops"]
    walk = tokens * per_token * k.D / 128 / (cal.peak_tflops["bf16"] * 1e12 / cal.sm_count)
    t_m = kernel_bytes_flops(k)[0] / (cal.read_gb_per_s * 1e9 * p["kivi_bw_eff"])
    return p["kivi_fixed_us"], max(walk, t_m) * 1e6


def _prefill_us(cal: GpuCalibration, k: Kernel, p: dict[str, float]) -> tuple[float, float]:
    q_len = k.Q or k.S
    q_tiles = -(-q_len // ATTN_TILE)
    kv_tiles = -(-k.S // ATTN_TILE)
    offset = kv_tiles - q_tiles  # the queries are the last q_len tokens
    # query tile i sees offset + i + 1 key tiles (causal) or all of them; the last sees all
    per_unit = (q_tiles * offset + q_tiles * (q_tiles + 1) / 2 if k.causal
                else float(q_tiles * kv_tiles))
    if k.causal:  # the diagonal tiles are masked, at an extra cost
        per_unit += q_tiles * p["attn_diag_extra"]
    longest = float(kv_tiles)
    units = k.B * k.H
    sm_rate = cal.peak_tflops[k.dtype] * 1e12 * p["attn_rate_eff"] / cal.sm_count
    # one tile pair: QK^T and PV on the tensor cores at the kernel's head dim (a multiple of
    # ATTN_HEAD_DIM_STEP), overlapped with the softmax of its scores; the slower of the two
    head_dim = _kernel_head_dim(k.D)
    pair = max(4 * ATTN_TILE * ATTN_TILE * head_dim / sm_rate,
               ATTN_TILE * ATTN_TILE / (p["attn_score_rate"] * 1e9))
    # longest-first over the SMs: the busiest SM does at least the average and the longest
    # single query tile's key tiles
    total_pairs = units * per_unit
    t_c = max(total_pairs / cal.sm_count, longest) * pair
    t_m = kernel_bytes_flops(k)[0] / (cal.read_gb_per_s * 1e9)
    return p["attn_fixed_us"], max(t_c, t_m) * 1e6


def _kernel_head_dim(D: int) -> int:
    """The head dim the prefill kernel's tensor cores work at: ``D`` rounded up to a multiple
    of :data:`ATTN_HEAD_DIM_STEP`."""
    return -(-D // ATTN_HEAD_DIM_STEP) * ATTN_HEAD_DIM_STEP


#: Query heads one CTA of the SDPA decode kernel takes (of one KV head), and the head dim one
#: CTA writes (recorded grids: ``sdpa_decode_grid``).
DECODE_HEADS_PER_CTA = 16
DECODE_HALF_DIM = 128
#: The split-KV decode's shortest chunk of tokens, its most splits and its most CTAs (head
#: groups x splits) before it splits no further, as recorded; no split at 512 tokens or fewer.
DECODE_MIN_CHUNK = 128
DECODE_MAX_SPLITS = 64
DECODE_MAX_CTAS = 256


def sdpa_decode_grid(B: int, H: int, Hkv: int, S: int, D: int) -> tuple[int, int, int]:
    """(head groups, head-dim halves, splits) of SDPA's decode kernel on the H100 (cuDNN's
    flash decode, as ``sim.gpu.measure --kernels`` recorded its grid: ``(halves x splits,
    groups, B)``): each KV head's query heads in groups of :data:`DECODE_HEADS_PER_CTA`, the
    head dim in halves of :data:`DECODE_HALF_DIM`, and the tokens split (a second kernel then
    combines them) while the ``B x groups`` CTAs are fewer than 128: into chunks of at least
    :data:`DECODE_MIN_CHUNK` tokens, at most :data:`DECODE_MAX_SPLITS` splits and
    :data:`DECODE_MAX_CTAS` CTAs (none at 512 tokens or fewer)."""
    groups = Hkv * _cdiv(H // max(Hkv, 1), DECODE_HEADS_PER_CTA)
    halves = _cdiv(D, DECODE_HALF_DIM)
    units = B * groups
    splits = 1
    if units < 128 and S > 512:
        splits = max(1, min(S // DECODE_MIN_CHUNK, DECODE_MAX_SPLITS, DECODE_MAX_CTAS // units))
    return groups, halves, splits


def l2_write_back_us(p: dict[str, float], nbytes: float) -> float:
    """What a kernel that reads ``nbytes`` from HBM after the timing's L2 flush pays for the
    dirty lines the flush left, which its reads evict and the L2 writes back to HBM: the fitted
    ``decode_ramp_us``, ramping in with the bytes over ``decode_ramp_mb`` (module doc; a time
    at the HBM's bandwidth, :func:`scaled`). The decode kernels and the aligned bf16/fp16 GEMMs
    pay it (module doc)."""
    return p["decode_ramp_us"] * min(1.0, nbytes / (p["decode_ramp_mb"] * 1e6))


def _decode_us(cal: GpuCalibration, k: Kernel, p: dict[str, float]) -> tuple[float, float]:
    nbytes = kernel_bytes_flops(k)[0]  # the cache, the query and the output
    bw = cal.read_gb_per_s * 1e9 * p["decode_bw_eff"]
    groups, halves, splits = sdpa_decode_grid(k.B, k.H, k.Hkv, k.S, k.D)
    # every CTA walks its split's key tiles, loading K and V of each at the kernel's head dim;
    # the busiest SM's CTAs load theirs at its share of the L2's bandwidth to the SMs and pay
    # their own start and end in turn, and a CTA steps through its tiles no faster than
    # decode_tile_ns each
    tiles = _cdiv(k.S, splits * ATTN_TILE)
    tile_bytes = 2 * ATTN_TILE * _kernel_head_dim(k.D) * (k.w_bytes or _stored_bytes(k))
    per_sm = _cdiv(k.B * groups * halves * splits, cal.sm_count)
    t_sm = per_sm * (tiles * tile_bytes / (p["decode_l2_gb_per_s"] * 1e9 / cal.sm_count)
                     + p["decode_cta_us"] * 1e-6)
    t_read = max(nbytes / bw, t_sm, tiles * p["decode_tile_ns"] * 1e-9)
    # the write-back of the dirty L2 lines the kernel's reads evict, ramping in with the bytes
    # (module doc), and the split-KV combine kernel
    ramp = l2_write_back_us(p, nbytes)
    combine = (p["decode_combine_us"] + p["decode_combine_split_us"] * splits * k.D
               / DECODE_HALF_DIM) if splits > 1 else 0.0
    scores = k.B * k.H * k.S / (p["decode_score_rate"] * 1e9)
    return p["decode_fixed_us"], ramp + combine + (t_read + scores) * 1e6


def predict_parts_us(cal: GpuCalibration, k: Kernel, params: dict[str, float] | None = None
                     ) -> tuple[float, float]:
    """The kernel's time in microseconds as (fixed cost, work): the fixed cost is its path's
    fitted ``*fixed_us`` term (launch, prologue, tail), the work the rest (tiles and waves,
    bytes, the split-KV combine)."""
    p = cal.params if params is None else params
    if k.op == "gemm":
        if k.dtype == "w4a16":
            return _w4a16_us(cal, k, p)
        if k.dtype == "w4a16_triton":
            return _w4a16_triton_us(cal, k, p)
        return _gemm_us(cal, k, p)
    if k.op == "attn_prefill":
        return _prefill_us(cal, k, p)
    if k.op == "attn_decode":
        if k.kv_dtype in ("int8", "int4"):
            return _kivi_us(cal, k, p)
        return _decode_us(cal, k, p)
    raise ValueError(f"op: unknown {k.op!r}")


def predict_us(cal: GpuCalibration, k: Kernel, params: dict[str, float] | None = None) -> float:
    """Predicted kernel time in microseconds, as the time model is fitted: the kernel alone
    under the measured card's power limit (:func:`predict_kernel` adds the preset's cap)."""
    fixed, work = predict_parts_us(cal, k, params)
    return fixed + work


def energy_class(k: Kernel, sm_count: int) -> str:
    """The path whose energy per operation a kernel pays (:data:`ENERGY_CLASSES`) on a card of
    ``sm_count`` SMs: attention, each family of fallback kernels of misaligned bf16/fp16 GEMMs
    (``align1``, ``align2``: :func:`gemm_family`), cuBLAS's CUDA-core kernels (family
    ``gemv``: ``simt``, their FMAs on the CUDA cores, not the tensor cores: a gemmSN GEMM of 7
    rows drew about 35% more energy than the bf16 tensor-core path's energy per operation gives
    it, ``measured_h100_v2e.csv``), int8 padded to 8 but not 16 (``int8_align8``: CUTLASS's
    align-4 mma.sync kernels, which drew about 600 W where the aligned int8 path's energy per
    operation gave 320: ``measured_h100_misaligned.csv``; but where cuBLASLt runs its Hopper
    kernel, :func:`int8_n8_hopper`, the ``fp8`` path: both run Hopper's 8-bit warpgroup MMAs, at
    the same peak rate; fitted apart, the Hopper int8 kernel's energy per operation came out
    within 7% of fp8's, 0.47 pJ against 0.44, about half the align-4 kernels'; with the align-4
    path's, 1536x4104x4096 came out at 68.5 mJ, its time stretched 36% under the power cap,
    where it drew 38.5 mJ in 54 us, ``measured_h100_tiles.csv``), else the GEMM's dtype
    (fp8/int8 run padded, never on the 16-bit fallback kernels)."""
    if k.op != "gemm":
        return "attention_kivi" if k.kv_dtype in ("int8", "int4") else "attention"
    if k.dtype in W4A16:  # each int4 kernel its own (dequantization, tiles)
        return k.dtype
    family = gemm_family(k)
    if family == "gemv":
        return "simt"
    if family == "int8_align8" and int8_n8_hopper(sm_count, *padded_shape(k.dtype, k.M, k.N,
                                                                          k.K)):
        return "fp8"
    return family if family in ("align1", "align2", "int8_align8") else k.dtype


def energy_work(cal: GpuCalibration, k: Kernel) -> tuple[str, float, float, float]:
    """(:func:`energy_class`, operations, HBM bytes, L2 line traffic beyond the loaded bytes)
    a kernel spends energy on: what the kernel runs (fp8/int8 GEMMs padded to their
    alignment, :func:`padded_shape`; the fallback families' tensor-core operations as their
    chosen tiles execute them, partial tiles whole, as ``cal`` times them; a prefill's
    operations at the head dim its tensor cores work at, as its time, its bytes at its own);
    the excess line traffic of the 8-bit GEMMs' chosen tiles as ``cal`` times them
    (:func:`_gemm_plan`, :data:`L2_LINE_PJ_PER_BYTE`)."""
    cls = energy_class(k, cal.sm_count)
    if k.op == "gemm":
        M, N, K = padded_shape(k.dtype, k.M, k.N, k.K)
        k = dataclasses.replace(k, M=M, N=N, K=K)
    nbytes, ops = kernel_bytes_flops(k)
    if k.op == "attn_prefill":
        ops = kernel_bytes_flops(dataclasses.replace(k, D=_kernel_head_dim(k.D)))[1]
    excess = 0.0
    if (k.op == "gemm" and k.dtype in ("fp8", "int8")) or cls in FALLBACK_ENERGY_CLASSES:
        _, _, executed, excess = _gemm_plan(cal, k, cal.params)
        if cls in FALLBACK_ENERGY_CLASSES:
            ops = executed
    return cls, float(ops), float(nbytes), float(excess)


#: Energy per byte of L2 line traffic beyond the bytes a kernel's tiles load (pJ): the whole
#: lines an 8-bit GEMM's loads of rows off the L2's sectors move (:func:`sector_traffic`,
#: :func:`energy_work`). Measured (``measured_h100_tiles.csv``, the same fp8 shapes at K = 4096
#: and 4112): the model without it gives the GEMMs at K = 4112 (rows off the sectors, 1.875
#: times the line traffic) 19% less energy than they drew on average ('cal' rows; held out
#: 18%), those at K = 4096 within 3%; the least-squares energy per excess byte over its 'cal'
#: fp8 rows at K = 4112, the calibration's energy constants fitted with it (tests/test_gpu.py
#: recomputes it; with it, -1.7% and held out +0.5%). Held out, the same constant brings the
#: int8 GEMMs' energy and the other runs' fp8 energy off the sectors closer (held-out mJ MAPE,
#: ``measured_h100_random.csv``: fp8 15.8% to 13.5%, int8 12.8% to 10.6%).
L2_LINE_PJ_PER_BYTE = 23.3


#: The energy paths whose operations are counted as their tiles execute them (energy_work).
FALLBACK_ENERGY_CLASSES = ("align1", "align2")


def _estimate(e: GpuEnergy, fixed_us: float, work_us: float, dynamic_pj: float,
              board_power_w: float) -> KernelEstimate:
    """Energy of a kernel of ``fixed_us + work_us`` whose operations and bytes cost
    ``dynamic_pj``, its work stretched under the power cap (module doc)."""
    dynamic_uj = dynamic_pj * 1e-6
    cap_w = e.cap_w * board_power_w / e.limit_w
    if cap_w <= e.static_w + e.busy_w:
        from hw.spec import SpecError

        least = (e.static_w + e.busy_w) * e.limit_w / e.cap_w
        raise SpecError(f"gpu.board_power_w: {board_power_w:g} W leaves a kernel no power "
                        f"beyond the card's static power; give at least {least:.0f} W")
    uj = e.static_w * (fixed_us + work_us) + e.busy_w * work_us + dynamic_uj
    capped = uj > cap_w * (fixed_us + work_us)
    if capped:  # a lower clock: the work takes as long as the cap allows its energy
        work_us = (dynamic_uj + (e.static_w - cap_w) * fixed_us) / (cap_w - e.static_w
                                                                     - e.busy_w)
        uj = e.static_w * (fixed_us + work_us) + e.busy_w * work_us + dynamic_uj
    return KernelEstimate(us=fixed_us + work_us, mj=uj * 1e-3, capped=capped,
                          stream_us=fixed_us + work_us)


def _energy(cal: GpuCalibration) -> GpuEnergy:
    if cal.energy is None:
        raise ValueError(f"calibration of {cal.card}: no energy constants (tpe gpu calibrate "
                         "--energy fits them)")
    return cal.energy


def predict_kernel(cal: GpuCalibration, k: Kernel, board_power_w: float,
                   extra_work_us: float = 0.0) -> KernelEstimate:
    """Predicted time and energy of a kernel on a card of ``board_power_w`` (the preset's
    ``gpu.board_power_w``): :func:`predict_us`, stretched under the power cap, and the energy
    model (module doc); its time timed alone (``us``) and back to back in a stream
    (``stream_us``). ``tpe gpu predict``, ``tpe gpu check`` and the simulator's GPU operators
    (:func:`op_estimate`) all read this. ``extra_work_us``: work the kernel model does not
    see, added to both (an operator's block scales: :func:`block_scale_us`)."""
    e = _energy(cal)
    fixed, work = predict_parts_us(cal, k)
    cls, ops, nbytes, excess = energy_work(cal, k)
    # the energy of the kernel back to back (as measured: its time in a stream), the time of
    # the kernel alone (as timed), stretched as its time in a stream is under the power cap
    s_fixed, s_work = stream_parts_us(cal, k)
    s_work += extra_work_us
    est = _estimate(e, s_fixed, s_work, _dynamic_pj(cal, e, k, cls, ops) + e.hbm_pj_per_byte
                    * nbytes + L2_LINE_PJ_PER_BYTE * excess, board_power_w)
    stretch = est.us - s_fixed - s_work
    return dataclasses.replace(
        est, us=fixed + (work + extra_work_us) + stretch + replay_us(cal, k))


def _dynamic_pj(cal: GpuCalibration, e: GpuEnergy, k: Kernel, cls: str, ops: float) -> float:
    """A kernel's energy of its operations, an attention kernel's scores and an int4 GEMM's
    dequantized weights."""
    dequant = e.pj_per_dequant.get(cls, 0.0) * dequant_weights(cal, k) if cls in W4A16 else 0.0
    narrow = e.pj_per_c_byte.get(cls, 0.0) * narrow_c_bytes(k, cls)
    return _pj_per_op(e, cls) * ops + e.pj_per_score * attention_scores(k) + dequant + narrow


def narrow_c_bytes(k: Kernel, cls: str) -> float:
    """The bytes of C a kernel of energy path ``cls`` stores in accesses of one or two
    elements: all of C for the misaligned bf16/fp16 fallback kernels
    (:data:`FALLBACK_ENERGY_CLASSES`, CUTLASS's alignment-1 and -2 tiles, whose epilogue
    stores each element, or pair, as an access of its own through the SMs and the L2), none
    for the other kernels (whole sectors: the Hopper kernels' tensor-memory stores, the 8-bit
    kernels' vectors). The energy model's ``pj_per_c_byte`` multiplies them, beside the HBM's
    energy for the same bytes; fitted with the other energy constants (``tpe gpu calibrate``),
    it comes out near the HBM's per byte on the alignment-1 path and a third of it on the
    alignment-2 path (accesses of two elements). Without it the model left the fallback GEMMs
    of a large C and a short K well under what they drew (``measured_h100_store.csv``,
    5163x7877x23 bf16: 48.2 mJ drawn, 28.6 predicted without it, 41.9 with it). Over those
    paths' rows with an energy in the energy fit's files (``measured_h100_v2e.csv`` and the
    misaligned, random, store, short-K and long-K runs), the mean error with the term zeroed
    and with it: 13.9% -> 12.1% on the 243 calibration rows, 15.1% -> 13.1% on the 165 held out
    (``test_the_fallback_kernels_pay_for_each_byte_of_c_they_store``); a term per byte of C
    beyond the L2's capacity (write-backs of partial sectors) or per byte of the operands fit
    the calibration rows worse."""
    if cls not in FALLBACK_ENERGY_CLASSES:
        return 0.0
    return float(k.M * k.N * (k.o_bytes or OUT_BYTES[k.dtype]))


def attention_scores(k: Kernel) -> float:
    """The attention scores (query-key pairs, each a softmax exponent and its share of the row's
    maximum, sum and rescale) an attention kernel computes, a causal prefill's masked half left
    out; none for a GEMM. The energy model's ``pj_per_score`` multiplies them: fitted beside the
    products' energy per operation, it brings the prefills' energy at every head dim within
    the other kernels' error (without it, the operations' energy alone left the ``cal``
    prefills of ``measured_h100_v2e.csv`` at head dims 32 and 64 11 to 14% under their measured
    energy on average and those at 256 11 to 19% over: a score's softmax costs the same at
    every head dim, its products grow with it)."""
    if k.op == "gemm":
        return 0.0
    return kernel_bytes_flops(k)[1] / (4.0 * k.D)


def _pj_per_op(e: GpuEnergy, cls: str) -> float:
    """The energy per operation of a path; a quantized kernel's path that a calibration has not
    fitted (``tpe gpu calibrate`` without ``--extra``) takes the path its tensor cores run."""
    if cls in e.pj_per_op:
        return e.pj_per_op[cls]
    return e.pj_per_op["attention" if cls.startswith("attention") else "bf16"]


#: The fitted parameters that are a fraction of the measured card's streaming read
#: (``read_gb_per_s``) but a path on the chip, not the HBM: the fallback kernels' (align1,
#: align2: CUTLASS's Turing and Ampere kernels of misaligned bf16/fp16) bytes, their operands
#: read and C stored in 2- and 4-byte accesses through the SMs and L2 (module doc), at
#: 0.82 and 0.52 of the H100's streaming read. :func:`scaled` keeps their bytes per second
#: on a card of another HBM. Recorded on both cards (the kernels column of
#: ``measured_h100_misaligned.csv``, ``measured_h200_misaligned.csv`` and their ``_graph``
#: runs): of the 20 launches that the H100's time with these scaled by the HBM's
#: 4.8 / 3.35 put at least 10% faster on the H200 (short K and a large C, as 5315x3486x5
#: fp16 and 6708x7822x226 bf16; W read once, as 21x2574x6262 bf16), the H200's profiled
#: kernels took a median 1.002 times the H100's (warm L2; the HBM's ratio would be 0.70),
#: and timed after the L2 flush, 0.934 (the cold reads and the split-K variant's fp32
#: partials are the HBM's: ``_loaded_tiles_us``); the h200 preset's mean error on those
#: timings is 3.7% with the path kept, 8.1% with it scaled
#: (``test_fallback_path_is_on_the_chip``).
FALLBACK_PATH_EFFS: tuple[str, ...] = ("align1_bw_eff", "align2_bw_eff")


def scaled(cal: GpuCalibration, *, sm_count: int, bandwidth_scale: float,
           compute_scale: float) -> GpuCalibration:
    """The calibration of a sibling card: ``sm_count`` SMs, bandwidth and whole-chip rates
    scaled (datasheet ratios); the fitted efficiencies and the energy constants are kept, and
    the fitted times that are bytes at the HBM's bandwidth scale with it (the decode kernels'
    write-back of the dirty L2, ``decode_ramp_us``: module doc); but the fallback kernels'
    bytes keep their bytes per second (:data:`FALLBACK_PATH_EFFS`: a path on the chip)."""
    params = cal.params
    if "decode_ramp_us" in params:
        params = params | {"decode_ramp_us": params["decode_ramp_us"] / bandwidth_scale}
    params = params | {k: params[k] / bandwidth_scale for k in FALLBACK_PATH_EFFS
                       if k in params}
    return GpuCalibration(
        card=cal.card, sm_count=sm_count, read_gb_per_s=cal.read_gb_per_s * bandwidth_scale,
        peak_tflops={d: v * compute_scale for d, v in cal.peak_tflops.items()},
        sustained_clock_mhz=cal.sustained_clock_mhz, launch_us=cal.launch_us,
        stream_overhead_us=cal.stream_overhead_us,
        stream_write_back_share=cal.stream_write_back_share,
        params=params, energy=cal.energy, burst=cal.burst, light_load=cal.light_load,
        replayed=cal.replayed)


# -- the simulator's operators on a GPU preset ------------------------------------------------


@memo(maxsize=64)
def arch_calibration(arch: Any) -> GpuCalibration:
    """The calibration of a GPU architecture (``arch.gpu``), scaled from the card it was
    measured on to ``arch`` by the architecture's own fields.

    The measured card is described by the preset named like the calibration
    (``hw/presets/<calibration>.toml``). Its measured rates scale by what the fields change:
    the whole-chip tensor rate by SMs (``cores``) x clock (``clock_mhz``) x one SM's MACs per
    clock (the engine's ``macs_per_cycle``), times ``gpu.compute_scale``; the achieved HBM
    bandwidth by the last memory level's ``bandwidth_gb_per_s``, times
    ``gpu.bandwidth_scale``. The fitted efficiencies are kept. The fields this reads are
    :data:`hw.spec.GPU_MODEL_KEYS`; ``--set`` on any other field of a GPU is refused."""
    from hw.spec import SpecError, list_presets, load_arch

    g = arch.gpu
    cal = load_calibration(g.calibration)
    if g.calibration not in list_presets():
        raise SpecError(f"gpu.calibration: no preset {g.calibration!r} describes the card the "
                        f"calibration was measured on; add hw/presets/{g.calibration}.toml")
    ref = load_arch(g.calibration)
    compute = (arch.cores * arch.clock_mhz * arch.engine.macs_per_cycle
               / (ref.cores * ref.clock_mhz * ref.engine.macs_per_cycle)) * g.compute_scale
    bandwidth = (arch.dram.bandwidth_gb_per_s / ref.dram.bandwidth_gb_per_s) * g.bandwidth_scale
    if (arch.cores, compute, bandwidth) == (cal.sm_count, 1.0, 1.0):
        return cal
    return scaled(cal, sm_count=arch.cores, bandwidth_scale=bandwidth, compute_scale=compute)


def _gemm_dtype(a_fmt: str, w_fmt: str) -> str:
    """The tensor-core path a GEMM's formats take (see :func:`op_kernel`)."""
    from models.formats import get_format

    a, w = get_format(a_fmt), get_format(w_fmt)
    if a.family == "fp" and a.bits == 8 and w.bits <= 8:
        return "fp8"
    if a.family != "fp" and a.bits <= 8 and w.bits <= 8:
        return "int8"
    if a.name == "fp16":
        return "fp16"
    return "bf16"


def op_kernel(op: Any) -> Kernel:
    """The kernel a GPU runs for one instance of a ``models.ops`` operator.

    GEMMs run on the tensor-core path of their activation format (bf16/fp16; fp8 when both are
    8-bit floats; int8 when both are integers of at most 8 bits). 4-bit integer weights with
    16-bit float activations run an int4 weight-only kernel (``w4a16``: PyTorch's; a GPU preset
    takes the faster of it and the project's Triton kernel per shape, :func:`arch_kernel`);
    other narrower stored weights (W8A16 and the like) move their real bytes at the 16-bit
    path's rate, as weight-only kernels (e.g. Marlin) do. Attention: the SDPA prefill kernel
    for several queries (causal or not, the queries the last ``q_len`` of ``kv_len`` tokens),
    decode for one, in bf16 with the KV cache at its stored width; decode over an int8 or int4
    cache is the project's KIVI kernel (``kv_dtype``); a sliding window is in its ``kv_len``
    (the tokens a query sees), a paged or block-sparse cache is refused (:func:`arch_kernel`).
    """
    from models.formats import get_format
    from models.ops import Attention, Gemm

    if isinstance(op, Gemm):
        dtype = _gemm_dtype(op.a_fmt, op.w_fmt)
        w, a = get_format(op.w_fmt), get_format(op.a_fmt)
        group = 0
        if w.family == "int" and w.bits == 4 and a.family == "fp" and a.bits == 16:
            dtype, group = "w4a16", op.w_group if op.w_group in W4_GROUPS else 128
        return Kernel(op="gemm", dtype=dtype, M=op.M, N=op.N, K=op.K,
                      a_bytes=op.a_storage_bits / 8, w_bytes=op.w_storage_bits / 8,
                      group=group)
    if isinstance(op, Attention):
        phase = "attn_prefill" if op.q_len > 1 else "attn_decode"
        kv = op.kv_fmt if phase == "attn_decode" and op.kv_fmt in ("int8", "int4") else ""
        return Kernel(op=phase, dtype="bf16", B=op.batch, H=op.heads, Hkv=op.kv_heads,
                      S=op.kv_len, D=-(-(op.qk_dim + op.v_dim) // 2), Q=op.q_len,
                      causal=op.causal, a_bytes=get_format(op.q_fmt).bits / 8,
                      w_bytes=op.kv_storage_bits / 8, kv_dtype=kv)
    raise TypeError(f"op: no GPU kernel for {type(op).__name__}")


def arch_kernel(arch: Any, op: Any) -> Kernel:
    """The kernel a GPU preset runs for ``op`` (:func:`op_kernel`): a dtype the card has no
    tensor cores for (fp8 on an A100) is widened to the 16-bit path as its operands load (as
    weight-only fp8 kernels on Ampere do), moving their stored bytes; an int4 weight-only GEMM
    runs the faster, for its shape, of PyTorch's kernel and the project's Triton one (as a
    deployment that dispatches per shape would). Attention over a paged KV cache or block-sparse
    attention raises :class:`hw.spec.SpecError` naming the field: the kernel model times SDPA
    and the project's KIVI kernel over a contiguous cache read whole, and no paged or sparse
    kernel was measured, so neither would change its figure. So does a GEMM whose ``o_fmt`` is not
    its operands' accumulator format (:func:`models.formats.accumulator_format`, what a model's
    GEMMs have): the kernel writes C in its own format, so ``o_fmt`` would change nothing."""
    from models.ops import Attention, Gemm

    if isinstance(op, Attention) and (op.page_tokens or op.sparse_block):
        from hw.spec import SpecError

        field, flag = (("page_tokens", "--kv-page") if op.page_tokens
                       else ("sparse_block", "--sparse-block/--sparse-topk"))
        raise SpecError(f"{op.name}.{field}: {arch.name}'s kernel model times attention over a "
                        "contiguous KV cache read whole (no paged or block-sparse kernel was "
                        f"measured on it); drop {flag} on a GPU preset, or use an engine "
                        "architecture")
    if isinstance(op, Gemm):
        from models.formats import accumulator_format

        if op.o_fmt != (acc := accumulator_format(op.a_fmt, op.w_fmt)):
            from hw.spec import SpecError

            raise SpecError(f"{op.name}.o_fmt: {arch.name}'s kernel model writes C as its "
                            "kernel does (a bf16 GEMM's in bf16, torch._int_mm's in int32) "
                            f"whatever o_fmt says (got {op.o_fmt}); leave o_fmt at {acc}, its "
                            "operands' accumulator format, on a GPU preset")
    k = op_kernel(op)
    if tensor_dtype(k) not in arch.gpu.dtypes:
        wide = "bf16" if "bf16" in arch.gpu.dtypes else arch.gpu.dtypes[0]
        return dataclasses.replace(k, dtype=wide, a_bytes=k.a_bytes or ELEM_BYTES[k.dtype],
                                   w_bytes=k.w_bytes or ELEM_BYTES[k.dtype], group=0)
    if k.dtype in W4A16:
        cal = arch_calibration(arch)
        return min((dataclasses.replace(k, dtype=d) for d in W4A16),
                   key=lambda c: predict_us(cal, c))
    return k


def exact_widths(op: Any) -> tuple[Any, Any]:
    """Stored bytes per element of the A and W operands of :func:`op_kernel` ``(op)``, exactly
    (:data:`models.ops.Exact`; the kernel holds their floats)."""
    from models.formats import get_format
    from models.ops import Gemm, exact_div

    if isinstance(op, Gemm):
        return exact_div(op.exact_a_storage_bits, 8), exact_div(op.exact_w_storage_bits, 8)
    return exact_div(get_format(op.q_fmt).bits, 8), exact_div(op.exact_kv_storage_bits, 8)


def op_estimate(arch: Any, op: Any, memory: str = "real") -> tuple[KernelEstimate, bool, Any]:
    """(time and energy, memory-bound?, HBM bytes) of one instance of a ``models.ops`` operator
    on a GPU preset, as it runs in a stream of kernels (a model's, replayed back to back): the
    estimate's ``stream_us``. A GEMM or attention is :func:`predict_kernel` on the preset's
    calibration and board power, its time back to back (:func:`stream_parts_us`: less the
    ``stream_overhead_us`` that timing it alone adds and the share of the flush's write-back a
    kernel in a stream does not pay; its energy is that time's already) and its ``us`` the time
    alone that ``tpe gpu predict`` gives; vector work is ``op.launches`` element-wise kernels:
    their launch cost, each less that overhead, plus the bytes at the streaming bandwidth
    (eager PyTorch's kernels: :class:`EagerCalibration`, whose costs were measured in its
    passes), its energy the static power and the bytes'.
    ``memory="ideal"``: infinite HBM bandwidth (compute, the paths on the chip: the fitted
    load paths and :data:`FALLBACK_PATH_EFFS`, and fixed costs only), no HBM bytes. The
    bytes are exact (:func:`exact_widths`)."""
    from models.ops import Vector

    cal = arch_calibration(arch)
    power = arch.gpu.board_power_w
    if memory == "ideal":
        cal = scaled(cal, sm_count=cal.sm_count, bandwidth_scale=1e9, compute_scale=1.0)
    e = _energy(cal)
    if isinstance(op, Vector):
        nbytes = 0 if memory == "ideal" else op.exact_bytes
        fixed = op.launches * in_stream(cal, cal.launch_us)
        work = op.bytes / (cal.read_gb_per_s * 1e9) * 1e6
        if op.runtime == "eager":  # eager PyTorch's kernels, as measured in its passes
            eager = load_eager(arch.gpu.calibration)
            fixed = op.launches * eager.kernel_us
            work = op.bytes / (cal.read_gb_per_s * 1e9 * eager.elementwise_eff) * 1e6
        est = _estimate(e, fixed, work, e.hbm_pj_per_byte * float(nbytes), power)
        return est, True, nbytes
    k = arch_kernel(arch, op)
    nbytes, flops = kernel_bytes_flops(k)
    memory_bound = nbytes / (cal.read_gb_per_s * 1e9) > flops / (
        cal.peak_tflops[tensor_dtype(k)] * 1e12)
    if memory == "ideal":  # the operands on chip: no HBM bytes, nor their energy
        fixed, work = stream_parts_us(cal, k)
        work += block_scale_us(arch, op)
        cls, ops, _, excess = energy_work(cal, k)
        l2_pj = L2_LINE_PJ_PER_BYTE * excess  # on chip: spent whether the operands are or not
        return (_estimate(e, fixed, work, _dynamic_pj(cal, e, k, cls, ops) + l2_pj, power),
                memory_bound, 0)
    # the kernel as tpe gpu predict has it: timed alone (us) and in a stream (stream_us)
    est = predict_kernel(cal, k, power, block_scale_us(arch, op))
    return est, memory_bound, kernel_bytes_flops(k, widths=exact_widths(op))[0]


def in_stream(cal: GpuCalibration, fixed_us: float) -> float:
    """A kernel's fixed cost (``fixed_us``, as timed alone) in a stream of kernels: less the
    calibration's ``stream_overhead_us``, never below zero."""
    return max(0.0, fixed_us - cal.stream_overhead_us)


def stream_parts_us(cal: GpuCalibration, k: Kernel) -> tuple[float, float]:
    """The kernel's time back to back in a stream of kernels (a model's pass; what the energy,
    measured over a back-to-back loop, is drawn over) as (fixed cost, work): its fixed cost
    less the timing's :func:`in_stream`, and its work with the share of the flush's write-back
    the calibration's ``stream_write_back_share`` gives (the dirty lines a timing's L2 flush
    leaves, which a kernel alone writes back as its reads evict them: :func:`l2_write_back_us`;
    in a stream the kernels before it leave far fewer). Fitted (``tpe gpu calibrate``) on the
    back-to-back times of the energy fit's calibration rows, the share comes out well below one
    (the calibration's rerun in ``tests/test_gpu.py`` refits it): a decode step's bf16 GEMVs,
    back to back (``measured_h100_v2e.csv``'s ``us_loop``), took 15.4 us at 1x4096x4096 and
    34.7 at 1x11008x4096, the model 15.4 and 36.5 with the share, 19.2 and 44.6 with the whole
    write-back."""
    fixed, work = predict_parts_us(cal, k, stream_params(cal))
    return in_stream(cal, fixed), work


def timed_alone_us(cal: GpuCalibration, stream_us: float, kernels: list[Kernel]) -> float:
    """What timing a sequence of kernels as one call alone gives (``tpe gpu measure``: CUDA
    events around the call after the L2 flush; ``sim.gpu.layer`` times a decoder layer so),
    the kernels taking ``stream_us`` back to back in a stream: the timing's
    ``stream_overhead_us`` once, and the write-back of the dirty lines the flush left once, as
    the kernel of the sequence that pays the most of it alone pays it beyond its stream time
    (:func:`stream_parts_us`; the lines are written back once, by the reads that evict
    them)."""
    flush = max((predict_parts_us(cal, k)[1] - stream_parts_us(cal, k)[1] for k in kernels),
                default=0.0)
    return stream_us + cal.stream_overhead_us + max(0.0, flush)


def stream_params(cal: GpuCalibration) -> dict[str, float]:
    """``cal``'s fitted parameters with the flush's write-back (``decode_ramp_us``) at the share
    a kernel pays back to back in a stream (:func:`stream_parts_us`)."""
    p = cal.params
    share = cal.stream_write_back_share
    if share == 1.0 or "decode_ramp_us" not in p:
        return p
    return p | {"decode_ramp_us": p["decode_ramp_us"] * share}


def block_scale_ops(op: Any) -> int:
    """FP32 operations per instance that apply a GEMM's block scales along K (MX's E8M0,
    NVFP4's E4M3), which no GPU preset's tensor cores take (Hopper's FP8 takes one scale per
    tensor): each block's partial sums are scaled on the CUDA cores as they leave the tensor
    cores (as DeepSeek's DeepGEMM promotes its FP8 partial sums per 128-element block), one
    FMA per output and block, one more multiply when both operands carry block scales; 0
    without block scales."""
    from models.ops import Gemm

    if not isinstance(op, Gemm):
        return 0
    groups = [g for g, bits, fmt in ((op.a_group, op.a_scale_bits, op.a_scale_fmt),
                                     (op.w_group, op.w_scale_bits, op.w_scale_fmt))
              if g and bits and fmt]
    if not groups:
        return 0
    return op.M * op.N * -(-op.K // math.gcd(*groups)) * len(groups)


def block_scale_us(arch: Any, op: Any) -> float:
    """Microseconds of :func:`block_scale_ops` at the card's FP32 rate (``gpu.fp32_lanes_per_sm``
    FMAs per SM and clock), in series with the kernel's work (an upper bound: a kernel that
    overlaps them with the tensor cores hides part of it)."""
    n = block_scale_ops(op)
    if not n:
        return 0.0
    return n / (arch.gpu.fp32_lanes_per_sm * arch.cores * arch.clock_mhz)


def tensor_dtype(k: Kernel) -> str:
    """The tensor-core path a kernel runs on: its dtype, bf16 for the W4A16 GEMMs (their
    weights dequantized to bf16)."""
    return "bf16" if k.dtype in W4A16 else k.dtype


def _stored_bytes(k: Kernel) -> float:
    """Stored bytes per weight (GEMM) or cached element (attention) when the kernel does not
    say: int4 weights with a bf16 scale and zero per ``group``; a KIVI cache's codes with an
    fp16 scale and minimum per group of KIVI's size; else the dtype's width."""
    if k.dtype in W4A16:
        return 0.5 + 4 / (k.group or 128)
    if k.kv_dtype in ("int8", "int4"):
        from models.quant import KIVI_GROUP, KIVI_SCALE_BITS

        return (8 if k.kv_dtype == "int8" else 4) / 8 + KIVI_SCALE_BITS / 8 / KIVI_GROUP
    return ELEM_BYTES[k.dtype]


#: The number formats each tensor-core path takes as they are (the card's own formats).
NATIVE_FORMATS = {"bf16": ("bf16",), "fp16": ("fp16",), "fp8": ("fp8", "fp8_e4m3", "fp8_e5m2"),
                  "int8": ("int8",)}


def format_note(op: Any, k: Kernel) -> str:
    """What a GEMM's formats become on the GPU preset whose kernel for ``op`` is ``k``
    (:func:`arch_kernel`) when its tensor cores do not take them as
    they are: formats it has no tensor cores for (the 4- and 6-bit floats, narrow integers)
    are converted to the path's format as they load while moving their stored bytes (as
    weight-only kernels do); block scales along K (MX, NVFP4) are applied outside the tensor
    cores (:func:`block_scale_ops`, timed by :func:`block_scale_us`). ``""`` when the
    formats are native (and for the int4 weight-only kernels, which are measured as they
    are)."""
    from models.ops import Attention, Gemm

    if isinstance(op, Attention):
        if k.kv_dtype or op.kv_fmt in NATIVE_FORMATS.get(k.dtype, ()):
            return ""  # the KIVI kernel takes its int8/int4 cache as it is
        scales = f" with {op.kv_scale_bits}-bit scales" if op.kv_scale_bits else ""
        return (f"attention's {op.kv_fmt} KV cache{scales} converted to {k.dtype} as it "
                "loads (its stored bytes moved)")
    if not isinstance(op, Gemm) or k.dtype in W4A16:
        return ""
    path = tensor_dtype(k)
    odd = sorted({f for f in (op.a_fmt, op.w_fmt) if f not in NATIVE_FORMATS.get(path, ())})
    notes = []
    if odd:
        notes.append(f"{' and '.join(odd)} run on the {path} tensor cores, converted as they "
                     "load (their stored bytes moved)")
    if block_scale_ops(op):
        notes.append("block scales along K applied to each block's partial sums on the CUDA "
                     "cores (one FMA per output and block, one more multiply for a second "
                     "operand's scales; in series with the kernel)")
    return "; ".join(notes)


def range_note(k: Kernel) -> str:
    """Where a prediction leaves the measured kernels: an attention head dim outside
    :data:`ATTN_HEAD_DIMS_MEASURED` (an extrapolation of the model); ``""`` inside."""
    lo, hi = ATTN_HEAD_DIMS_MEASURED
    if k.op == "gemm" or lo <= k.D <= hi:
        return ""
    if k.D > hi:
        return (f"head dim {k.D} is above {hi}, the largest measured and the largest PyTorch's "
                "flash SDPA kernels take: an extrapolation of the kernel model")
    return (f"head dim {k.D} is below {lo}, the smallest measured: an extrapolation of the "
            "kernel model")


def kernel_name(k: Kernel) -> str:
    """The library kernel (or the project's) a prediction stands for."""
    if k.op == "gemm":
        return {"w4a16": "aten._weight_int4pack_mm", "w4a16_triton": "w4a16_triton",
                "fp8": "cuBLASLt fp8 (torch._scaled_mm)",
                "int8": "cuBLASLt int8 (torch._int_mm)"}.get(k.dtype, f"cuBLAS {k.dtype}")
    if k.op == "attn_decode" and k.kv_dtype in ("int8", "int4"):
        return f"kivi_decode_triton ({k.kv_dtype} cache)"
    return f"SDPA {'prefill' if k.op == 'attn_prefill' else 'decode'} {k.dtype}"


def kernel_bytes_flops(k: Kernel, *, widths: tuple[Any, Any] | None = None
                       ) -> tuple[Any, float]:
    """Compulsory HBM bytes and useful operations of a kernel (roofline coordinates).
    ``widths``: bytes per element of A and W instead of the kernel's (exact fractions give
    exact bytes: :func:`exact_widths`)."""
    ab = k.a_bytes or ELEM_BYTES[tensor_dtype(k)]
    wb = k.w_bytes or _stored_bytes(k)
    if widths is not None:
        ab, wb = widths
    if k.op == "gemm":
        ob = k.o_bytes or OUT_BYTES[k.dtype]
        return k.M * k.K * ab + k.N * k.K * wb + k.M * k.N * ob, 2.0 * k.M * k.N * k.K
    q = (k.Q or k.S) if k.op == "attn_prefill" else 1
    nbytes = 2 * k.B * k.H * q * k.D * ab + 2 * k.B * k.Hkv * k.S * k.D * wb
    if k.op == "attn_prefill" and k.causal:
        pairs = q * (k.S - q) + q * (q + 1) / 2
    else:
        pairs = q * k.S
    return nbytes, 4.0 * k.B * k.H * pairs * k.D
