#!/usr/bin/env bash
# Runs the GPU harness's checks on the CPU: the CUDA kernels compiled as C++ against bench/gpu/emu
# (one OS thread per CUDA thread, two running at a time; SDVP_EMU_THREADS changes that), the same
# float64 reference, with the block row kernel and the cluster row kernel (split across 1 to 16
# blocks by small staging budgets). Needs g++ (C++20) and a CPU PyTorch; no GPU, no nvcc. Use it
# before a GPU run. Options go to check_and_time.py, e.g.
#   bash bench/gpu/emulate.sh --check-passes cluster@4096 --only 3,7
#   bash bench/gpu/emulate.sh --timing-smoke --check-passes block   (the timing code, tiny sizes)
set -u -o pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1
BUILD="${SDVP_GPU_BUILD:-build/gpu-bench}"
PY="${PYTHON:-python3}"
mkdir -p "$BUILD"
g++ -std=c++20 -O2 -fPIC -shared -pthread -x c++ -DSDVP_CUDA_EMULATE -I bench/gpu/emu -I native/kernels \
  native/kernels/cuda/distill_loss_cuda.cu bench/gpu/ctypes_shim.cu -o "$BUILD/libsdvp_emu.so" || exit 1
exec "$PY" bench/gpu/check_and_time.py --lib "$BUILD/libsdvp_emu.so" --emulate "$@"
