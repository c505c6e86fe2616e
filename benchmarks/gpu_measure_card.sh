#!/usr/bin/env bash
# Measure every GPU dataset of the project on this machine's card, in two device calls of at
# most ten minutes each (the device's python3 holds torch, triton, transformers and pynvml):
#
#   bash benchmarks/gpu_measure_card.sh kernels OUTDIR   # at most 9.5 min
#   bash benchmarks/gpu_measure_card.sh models OUTDIR    # at most 9.7 min
#   bash benchmarks/gpu_measure_card.sh layer OUTDIR     # at most 6.5 min
#   bash benchmarks/gpu_measure_card.sh eager OUTDIR     # at most 7 min
#   bash benchmarks/gpu_measure_card.sh dispatch OUTDIR  # at most 6 min
#   bash benchmarks/gpu_measure_card.sh tiles OUTDIR     # at most 8 min
#   bash benchmarks/gpu_measure_card.sh random OUTDIR    # at most 8 min
#   bash benchmarks/gpu_measure_card.sh unseen OUTDIR    # at most 8 min
#   bash benchmarks/gpu_measure_card.sh gemmsn OUTDIR    # at most 4 min
#   bash benchmarks/gpu_measure_card.sh sectors OUTDIR   # at most 4 min
#   bash benchmarks/gpu_measure_card.sh int8n8 OUTDIR    # at most 4 min
#   bash benchmarks/gpu_measure_card.sh int8n8e OUTDIR   # at most 7 min
#   bash benchmarks/gpu_measure_card.sh store OUTDIR     # at most 5 min
#   bash benchmarks/gpu_measure_card.sh longk OUTDIR     # at most 3 min
#   bash benchmarks/gpu_measure_card.sh shortk OUTDIR    # at most 3 min
#   bash benchmarks/gpu_measure_card.sh cstore OUTDIR    # at most 3 min
#   bash benchmarks/gpu_measure_card.sh longctx OUTDIR   # at most 5 min
#
# kernels: shapes_v2.csv (every category of the held-out set: GEMMs aligned and misaligned in
#          four dtypes, attention at head dims 32-256, causal and not, with energy and SM clock)
#          and shapes_misaligned.csv (with the cuBLAS kernels each row launches).
# models:  shapes_decode.csv and shapes_quant.csv replayed from CUDA graphs, the plain-torch
#          decoder layer (sim.gpu.layer), eager transformers (sim.gpu.framework), and the
#          one-GPU half of benchmarks/scaleout_measure.py (the tensor-parallel layer's slices).
# layer:   the decoder layer alone (plain torch and fused) and the one-GPU scale-out slices.
# eager:   eager transformers profiled (--ops: what each pass launches, its host and device
#          time), timed, and profiled again, on one host in one call (the host's launch time,
#          which bounds eager decode, is a property of the machine and of the moment).
# dispatch: the GPU kernels cuBLAS launches for every GEMM of shapes_v2.csv (no energy loop:
#          kernel names, measured_<card>_v2_gemm_kernels.csv), and shapes_misaligned.csv
#          replayed from CUDA graphs with energy and kernels (the GPU's time of each kernel
#          without the host's launch, against the launched times of measured_<card>_misaligned).
# tiles:   shapes_tiles.csv (the 8-bit GEMMs' tile over M near 4096) with energy and kernels,
#          and the GEMMs of shapes_v2.csv replayed from CUDA graphs with energy
#          (measured_<card>_v2_graph.csv: the held-out GEMMs timed without the host's launch).
# random:  shapes_random.csv (GEMMs in four dtypes drawn apart from the other datasets, aligned
#          and not, M 1-16384, N and K 64-16384) with energy and kernels.
# unseen:  shapes_unseen.csv (drawn as the random dataset with another seed, every row held
#          out: no fit has seen them) with energy and kernels.
# gemmsn:  shapes_gemmsn.csv (bf16 GEMMs of 2 to 17 rows at vector 1, K below twice N) with
#          their kernels, no energy loop: the rows from which cuBLAS runs tiles, not gemmSN.
# sectors: shapes_sectors.csv (aligned int8 and fp8 GEMMs, K at every offset of a row to the
#          L2's 32-byte sectors and 128-byte lines) with their kernels, no energy loop.
# int8n8:  shapes_int8n8.csv (int8 GEMMs with K a multiple of 16 and N 8 off one, tile counts and
#          K apart) with their kernels, no energy loop: which of cuBLASLt's Hopper kernel and
#          CUTLASS's align-4 tiles runs.
# int8n8e: the same with each row's energy (measured_<card>_int8n8e.csv): the Hopper int8
#          kernel's and CUTLASS's tiles' energy per operation.
# store:   shapes_store.csv (GEMMs whose C is large against their work: M and N in the thousands,
#          K 16-2048, every dtype) with energy and kernels: the rate at which C is stored.
# longk:   shapes_longk.csv (misaligned bf16/fp16 GEMMs of 2-64 rows, K 2000-16000) with
#          energy and kernels: the split-K fallback kernels where W's bytes set the time.
# shortk:  shapes_shortk.csv (aligned bf16 and fp8 GEMMs of the same shapes, C of 2-64 MB, K
#          16-512) with energy and kernels: a cost per tile against C's stores at short K.
# cstore:  shapes_cstore.csv (bf16 GEMMs, all but one aligned, of C of 8-134 MB at K 32 and
#          256, M and N powers of two and apart from them) with energy and kernels: C's store
#          rate against its rows' and tiles' alignment to the L2's lines.
# longctx: shapes_longctx.csv (SDPA decode over caches of 64k and 128k tokens, KIVI decode over
#          int8 and int4 caches as long, SDPA prefill of 32k and 64k tokens; every row held out)
#          with energy and kernels: the attention models past the contexts they were fitted on.
#
# Files are named measured_<card>_<set>.csv (card h100, h200 or gpu from nvidia-smi's name),
# each with its _env.json; every step runs under its own time limit so that a slow one leaves
# the rest their share, and each CSV is written row by row (a step cut short keeps its rows).
set -uo pipefail
usage="usage: bash benchmarks/gpu_measure_card.sh kernels|models|layer|eager|dispatch|tiles|random|unseen|gemmsn|sectors|int8n8|int8n8e|store|longk|shortk|cstore|longctx OUTDIR"
part=${1:?$usage}
out=${2:?$usage}
name=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)
case "$name" in
  *H100*) card=h100 ;;
  *H200*) card=h200 ;;
  *) card=gpu ;;
esac
mkdir -p "$out"
export PYTHONUNBUFFERED=1
# the GEMM rows of shapes_v2.csv, written to $1
v2_gemms() {
  python3 -c "import csv, sys; r = list(csv.DictReader(open('sim/data/gpu/shapes_v2.csv')));
w = csv.DictWriter(sys.stdout, fieldnames=list(r[0])); w.writeheader(); w.writerows(x for x in r if x['op'] == 'gemm')" > "$1"
}
m() { timeout "$1" python3 -m sim.gpu.measure "${@:2}" --no-triton || echo "step exited $?"; }
# sim/data/gpu/shapes_$1.csv into measured_<card>_$1.csv with the kernels each row launches,
# under time limit $2, with measure's options after them
with_kernels() {
  m "$2" --in "sim/data/gpu/shapes_$1.csv" --out "$out/measured_${card}_$1.csv" "${@:3}" \
    --no-micro --kernels
}
case "$part" in
  kernels)
    m 400 --in sim/data/gpu/shapes_v2.csv --out "$out/measured_${card}_v2.csv" --budget-ms 40
    with_kernels misaligned 150 --budget-ms 40 --energy-s 0.2
    ;;
  models)
    m 90 --in sim/data/gpu/shapes_decode.csv --out "$out/measured_${card}_decode.csv" \
      --graph --kernels --budget-ms 40 --energy-s 0.2 --no-micro
    m 200 --in sim/data/gpu/shapes_quant.csv --out "$out/measured_${card}_quant.csv" \
      --graph --kernels --budget-ms 40 --energy-s 0.2 --no-micro
    timeout 60 python3 -m sim.gpu.layer --out "$out/layer_${card}.csv" || echo "layer exited $?"
    timeout 170 python3 -m sim.gpu.framework --out "$out/framework_${card}.csv" --budget-ms 200 \
      || echo "framework exited $?"
    timeout 60 python3 benchmarks/scaleout_measure.py --single --out "$out/scaleout_single_${card}.csv" \
      || echo "scaleout exited $?"
    ;;
  layer)
    timeout 300 python3 -m sim.gpu.layer --out "$out/layer_${card}.csv" || echo "layer exited $?"
    timeout 90 python3 benchmarks/scaleout_measure.py --single --out "$out/scaleout_single_${card}.csv" \
      || echo "scaleout exited $?"
    ;;
  eager)
    timeout 140 python3 -m sim.gpu.framework --ops --out "$out/framework_ops_${card}.csv" \
      || echo "profile exited $?"
    timeout 140 python3 -m sim.gpu.framework --out "$out/framework_${card}.csv" --budget-ms 200 \
      || echo "framework exited $?"
    timeout 140 python3 -m sim.gpu.framework --ops --out "$out/framework_ops_${card}_after.csv" \
      || echo "profile exited $?"
    ;;
  dispatch)
    v2_gemms "$out/shapes_v2_gemm.csv"
    m 150 --in "$out/shapes_v2_gemm.csv" --out "$out/measured_${card}_v2_gemm_kernels.csv" \
      --budget-ms 40 --energy-s 0 --no-micro --kernels
    rm -f "$out/shapes_v2_gemm.csv"
    m 200 --in sim/data/gpu/shapes_misaligned.csv --out "$out/measured_${card}_misaligned_graph.csv" \
      --graph --kernels --budget-ms 40 --energy-s 0.2 --no-micro
    ;;
  tiles)
    with_kernels tiles 150 --budget-ms 40 --energy-s 0.2
    v2_gemms "$out/shapes_v2_gemm.csv"
    m 320 --in "$out/shapes_v2_gemm.csv" --out "$out/measured_${card}_v2_graph.csv" \
      --graph --budget-ms 40 --energy-s 0.2 --no-micro
    rm -f "$out/shapes_v2_gemm.csv"
    ;;
  random|unseen)
    with_kernels "$part" 470 --budget-ms 40 --energy-s 0.2
    ;;
  gemmsn|sectors|int8n8)
    with_kernels "$part" 230 --budget-ms 20 --energy-s 0
    ;;
  int8n8e)
    m 400 --in sim/data/gpu/shapes_int8n8.csv --out "$out/measured_${card}_int8n8e.csv" \
      --budget-ms 20 --energy-s 0.2 --no-micro --kernels
    ;;
  store)
    with_kernels store 290 --budget-ms 40 --energy-s 0.2
    ;;
  longk)
    with_kernels longk 170 --budget-ms 40 --energy-s 0.2
    ;;
  shortk|cstore)
    with_kernels "$part" 170 --budget-ms 40 --energy-s 0.2
    ;;
  longctx)
    with_kernels longctx 290 --budget-ms 40 --energy-s 0.2
    ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
ls -la "$out"
