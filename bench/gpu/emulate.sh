#!/usr/bin/env bash
# Runs the GPU harness's checks on the CPU: the CUDA kernels compiled as C++ against bench/gpu/emu
# (one OS thread per CUDA thread), the same float64 reference. Needs g++ (C++20) and a CPU PyTorch;
# no GPU, no nvcc. Use it before a GPU run: a logic error shows up here in about a minute.
#   bash bench/gpu/emulate.sh [--only 3,7]
set -u -o pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1
BUILD="${SDVP_GPU_BUILD:-build/gpu-bench}"
PY="${PYTHON:-python3}"
mkdir -p "$BUILD"
g++ -std=c++20 -O2 -fPIC -shared -pthread -x c++ -DSDVP_CUDA_EMULATE -I bench/gpu/emu -I native/kernels \
  native/kernels/cuda/distill_loss_cuda.cu bench/gpu/ctypes_shim.cu -o "$BUILD/libsdvp_emu.so" || exit 1
exec "$PY" bench/gpu/check_and_time.py --lib "$BUILD/libsdvp_emu.so" --emulate "$@"
