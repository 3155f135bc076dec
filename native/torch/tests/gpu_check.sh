#!/usr/bin/env bash
# GPU-machine check of the LibTorch runtime against PyTorch's own LibTorch (2.x, CUDA): configures the
# top-level CMake without the addon, builds sdvp_torch (with the CUDA fused kernel) and its C++ tests,
# and runs them (CPU and CUDA gradients against LibTorch autograd, tiny-vlm training on cuda).
# Highway comes from HWY_ROOT (an unpacked libhwy-dev/libhwy1) when the machine has none. The GPU
# machines here reach no registry, so prepare it on a Debian machine first and carry it along:
#   mkdir -p .gpu-torch && (cd .gpu-torch && apt-get download libhwy-dev libhwy1 &&
#     for deb in *.deb; do dpkg -x "$deb" root; done)
#   HWY_ROOT=$PWD/.gpu-torch/root bash native/torch/tests/gpu_check.sh      (logs to $OUT when set)
set -u -o pipefail
cd "$(dirname "$0")/../../.."
PY="${PYTHON:-python3}"
BUILD="${SDVP_TORCH_GPU_BUILD:-/tmp/sdvp-torch-gpu}"
LOG="${OUT:-/tmp}/torch-gpu-check.log"
exec > >(tee "$LOG") 2>&1

prefix=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')
echo "== torch $("$PY" -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))')"
extra=()
if [ -n "${HWY_ROOT:-}" ]; then
  extra+=("-Dhwy_DIR=$HWY_ROOT/usr/lib/x86_64-linux-gnu/cmake/hwy")
  export LD_LIBRARY_PATH="$HWY_ROOT/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
fi
if [ -z "${CUDACXX:-}" ] && ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi
start=$SECONDS
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSDVP_ADDON=OFF -DSDVP_TESTS=ON -DSDVP_CUDA=ON \
  -DSDVP_TORCH=ON -DSDVP_CUDA_ARCHITECTURES=90 "-DCMAKE_PREFIX_PATH=$prefix" "${extra[@]}" 2>&1 | grep -E "sdvp:|Error|error|CMake Warning" 
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "CONFIGURE FAILED"; exit 1; }
cmake --build "$BUILD" --target sdvp_torch_tests -j "$(nproc)" 2>&1 | grep -E "error|warning: .*deprecated|FAILED" | head -40
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "BUILD FAILED"; exit 1; }
echo "== build: $((SECONDS - start)) s"
"$BUILD/native/torch/sdvp_torch_tests"
