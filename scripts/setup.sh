#!/usr/bin/env bash
# Installs what sdvp needs on Debian (system packages when missing, npm ci), then builds the addon and
# the TypeScript. Idempotent: a second run only rebuilds what changed. Used by `npm test` and `npm run demo`.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[sdvp setup] %s\n' "$*"; }

# ---- system packages (Debian/Ubuntu) -------------------------------------------------------------------
# libhwy-dev: SIMD kernels; cmake + g++: the build; libtorch-dev: the model runtime; libgloo-dev: the headers
# of LibTorch's Gloo process group (distributed training); python3-torch: the PyTorch baseline for benchmarks
# and reference tests; clang-format: the C++ format check.
packages=(g++ make cmake libhwy-dev libtorch-dev libgloo-dev python3-torch clang-format)
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
  done
fi
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    say "missing system packages: ${missing[*]} (run as root with apt-get, or install them yourself)"
  fi
fi

# ---- npm dependencies ------------------------------------------------------------------------------------
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm ci"
  npm ci --no-audit --no-fund
fi

# ---- native addon (CMake via cmake-js: CPU kernels, CUDA kernels when nvcc is found, LibTorch) ------------
if [ -z "${CUDACXX:-}" ] && ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi
# SDVP_CUDA / SDVP_TORCH (AUTO, ON or OFF) are always passed: CMake would otherwise keep a cached choice.
say "building the native addon (build-cmake/: CUDA ${SDVP_CUDA:-AUTO}, LibTorch ${SDVP_TORCH:-AUTO})"
# `configure` then `build`: cmake-js's `compile` skips configuring an existing build folder.
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
cmake_flags=("--CDSDVP_CUDA=${SDVP_CUDA:-AUTO}" "--CDSDVP_TORCH=${SDVP_TORCH:-AUTO}")
{
  npx cmake-js configure --directory . --out build-cmake "${cmake_flags[@]}" ${SDVP_CMAKE_FLAGS:-} &&
    npx cmake-js build --directory . --out build-cmake "${cmake_flags[@]}" ${SDVP_CMAKE_FLAGS:-}
} >build-cmake.log 2>&1 || {
  tail -40 build-cmake.log
  say "native build failed; the full log is build-cmake.log"
  exit 1
}
grep -E '^-- sdvp:' build-cmake.log || true

# ---- TypeScript ------------------------------------------------------------------------------------------
say "compiling TypeScript"
npx tsc -p tsconfig.json
node scripts/write-esm-entry.js
