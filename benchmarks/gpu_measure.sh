#!/usr/bin/env bash
# Measure the GPU kernel dataset on this machine's GPU, in one call (the device's python3 holds
# torch, triton and pynvml): every kernel of sim/data/gpu/shapes_v2.csv timed, with its energy
# and SM clock (tpe gpu measure's columns), the microbenchmarks and the environment beside it.
#
#   bash benchmarks/gpu_measure.sh OUTDIR [more python -m sim.gpu.measure options]
#
# Writes OUTDIR/measured_<card>_v2.csv (card h100, h200 or gpu, from nvidia-smi's name) and its
# _microbench.csv and _env.json. The project's Triton GEMM is left out (--no-triton): each new
# odd shape would recompile its autotuning configs, minutes the device call does not have.
set -euo pipefail
out=${1:?usage: bash benchmarks/gpu_measure.sh OUTDIR [options]}
shift
name=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)
case "$name" in
  *H100*) card=h100 ;;
  *H200*) card=h200 ;;
  *) card=gpu ;;
esac
mkdir -p "$out"
PYTHONUNBUFFERED=1 python3 -m sim.gpu.measure --in sim/data/gpu/shapes_v2.csv \
  --out "$out/measured_${card}_v2.csv" --no-triton "$@"
