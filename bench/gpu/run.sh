#!/usr/bin/env bash
# One-shot GPU check and benchmark (run from the repo root on a machine with an NVIDIA GPU, nvcc and a
# CUDA PyTorch; no Node, no network):
#   OUT=/some/folder bash bench/gpu/run.sh
# 1. builds native/kernels/cuda/*.cu with the ctypes shim (plain nvcc, sm_90) and prints the ptxas
#    report (registers, spills) and, when cuobjdump is there, a SASS summary per kernel;
# 2. builds the LibTorch train-step harness (bench/gpu/train_step_bench.cc) against this machine's
#    PyTorch in the background (Highway from $HWY_ROOT, else from .gpu-torch/root when present:
#    see docs/gpu.md for preparing it where the machine reaches no registry);
# 3. runs check_and_time.py: the checks against float64 with the block and the cluster row kernel,
#    the timings (copy bandwidth, both kernels, PyTorch eager, torch.compile), the train step, and
#    one table last. With $OUT set, log.txt and results.json are written there.
# SDVP_GPU_BUDGET (s, default 210): after it the harness skips its remaining torch.compile,
# train-step and crossover phases; SDVP_GPU_TIMEOUT (s, default 330) stops a hung run.
set -u -o pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1

BUILD="${SDVP_GPU_BUILD:-build/gpu-bench}"
HARNESS_BUILD="${SDVP_GPU_HARNESS_BUILD:-build/gpu-harness}"
NVCC="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
PY="${PYTHON:-python3}"
ARCH="${SDVP_CUDA_ARCH:-sm_90}"
LOG=/dev/null
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  LOG="$OUT/log.txt"
fi
if [ -z "${HWY_ROOT:-}" ] && [ -d .gpu-torch/root/usr/lib/x86_64-linux-gnu/cmake/hwy ]; then
  HWY_ROOT="$PWD/.gpu-torch/root"
fi
if [ -n "${HWY_ROOT:-}" ]; then
  export LD_LIBRARY_PATH="$HWY_ROOT/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
fi

build_kernels() {
  echo "== build: $("$NVCC" --version | tail -1)"
  mkdir -p "$BUILD"
  # The same code-generation flags as the CMake target sdvp_kernels_cuda.
  local flags=(-std=c++17 -O3 --use_fast_math -lineinfo "-arch=$ARCH" -Xcompiler -fPIC -I native/kernels)
  local start=$SECONDS
  "$NVCC" "${flags[@]}" -Xptxas=-v -c native/kernels/cuda/distill_loss_cuda.cu -o "$BUILD/distill_loss_cuda.o" \
    2> "$BUILD/ptxas.log" &
  local kernels=$!
  "$NVCC" "${flags[@]}" -c bench/gpu/ctypes_shim.cu -o "$BUILD/ctypes_shim.o" &
  local shim=$!
  local rc=0
  wait "$kernels" || rc=1
  wait "$shim" || rc=1
  # Compiler diagnostics other than ptxas's per-kernel report.
  grep -v "^ptxas info\|bytes stack frame\|^$" "$BUILD/ptxas.log" || true
  if [ "$rc" -ne 0 ]; then
    echo "BUILD FAILED"
    return 1
  fi
  "$NVCC" -shared "-arch=$ARCH" "$BUILD/distill_loss_cuda.o" "$BUILD/ctypes_shim.o" -o "$BUILD/libsdvp_gpu.so" || {
    echo "LINK FAILED"
    return 1
  }
  echo "build: $((SECONDS - start)) s -> $BUILD/libsdvp_gpu.so"
  echo "== ptxas report"
  "$PY" bench/gpu/ptxas_summary.py "$BUILD/ptxas.log"
  local objdump
  objdump="$(command -v cuobjdump || echo /usr/local/cuda/bin/cuobjdump)"
  if [ -x "$objdump" ]; then
    echo "== SASS summary (static instruction counts)"
    "$objdump" --dump-sass "$BUILD/distill_loss_cuda.o" > "$BUILD/sass.txt" 2>&1 &&
      "$PY" bench/gpu/sass_summary.py "$BUILD/sass.txt"
  fi
}

# The train-step harness against this machine's PyTorch; writes its exit status to $BUILD/harness.status.
build_harness() {
  local start=$SECONDS prefix rc
  prefix=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')
  local extra=()
  [ -n "${HWY_ROOT:-}" ] && extra+=("-Dhwy_DIR=$HWY_ROOT/usr/lib/x86_64-linux-gnu/cmake/hwy")
  command -v ninja > /dev/null && extra+=(-G Ninja)
  if [ -z "${CUDACXX:-}" ] && ! command -v nvcc > /dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
    export CUDACXX=/usr/local/cuda/bin/nvcc
  fi
  local jobs=$(($(nproc) > 4 ? $(nproc) - 2 : 2))
  {
    cmake -S . -B "$HARNESS_BUILD" -DCMAKE_BUILD_TYPE=Release -DSDVP_ADDON=OFF -DSDVP_TESTS=OFF -DSDVP_CUDA=ON \
      -DSDVP_TORCH=ON -DSDVP_BENCH=ON "-DSDVP_CUDA_ARCHITECTURES=${ARCH#sm_}" "-DCMAKE_PREFIX_PATH=$prefix" \
      "${extra[@]}" &&
      cmake --build "$HARNESS_BUILD" --target sdvp_train_step_bench -j "$jobs"
  } > "$BUILD/harness-build.log" 2>&1
  rc=$?
  echo "harness build: exit $rc after $((SECONDS - start)) s (log $BUILD/harness-build.log)" >> "$BUILD/harness-build.log"
  echo "$rc" > "$BUILD/harness.status"
}

main() {
  build_kernels || return 1
  if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv
  fi
  rm -f "$BUILD/harness.status"
  # Its own log; not the pipe to tee, which would otherwise wait for the build after the harness ends.
  build_harness < /dev/null > /dev/null 2>&1 &
  # Last, so that its closing table is the last thing printed. The time limit turns a hung kernel into
  # a failed run with its log and partial results.json instead of one that eats the machine's budget.
  timeout -k 10 "${SDVP_GPU_TIMEOUT:-330}" "$PY" bench/gpu/check_and_time.py --lib "$BUILD/libsdvp_gpu.so" \
    --budget-s "${SDVP_GPU_BUDGET:-210}" --step-bin "$HARNESS_BUILD/sdvp_train_step_bench" \
    --step-build-status "$BUILD/harness.status" --step-build-log "$BUILD/harness-build.log" \
    --step-dir "$BUILD/train-step" ${OUT:+--out "$OUT"}
  local rc=$?
  [ -n "${OUT:-}" ] && cp "$BUILD/harness-build.log" "$OUT/harness-build.log" 2> /dev/null
  return "$rc"
}

main 2>&1 | tee "$LOG"
exit "${PIPESTATUS[0]}"
