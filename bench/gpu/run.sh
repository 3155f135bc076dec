#!/usr/bin/env bash
# One-shot GPU check and benchmark of the CUDA distillation kernels (run from the repo root):
#   bash bench/gpu/run.sh
# Builds native/kernels/cuda/*.cu with a ctypes shim into a shared library (plain nvcc, sm_90), prints
# the ptxas register/spill report, checks the kernels against a float64 PyTorch reference and times
# them against PyTorch eager. With $OUT set, the log and results.json are written there.
set -u -o pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1

BUILD="${SDVP_GPU_BUILD:-build/gpu-bench}"
NVCC="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
PY="${PYTHON:-python3}"
ARCH="${SDVP_CUDA_ARCH:-sm_90}"
LOG=/dev/null
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  LOG="$OUT/log.txt"
fi

build() {
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
}

main() {
  build || return 1
  if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv
  fi
  # Last, so that its closing table is the last thing printed. The time limit turns a hung kernel into
  # a failed run with its log and partial results.json instead of one that eats the machine's budget.
  timeout -k 10 "${SDVP_GPU_TIMEOUT:-270}" "$PY" bench/gpu/check_and_time.py --lib "$BUILD/libsdvp_gpu.so" \
    ${OUT:+--out "$OUT"}
}

main 2>&1 | tee "$LOG"
exit "${PIPESTATUS[0]}"
