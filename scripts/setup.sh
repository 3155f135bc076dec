#!/usr/bin/env bash
# Installs what sdvp needs on Debian (system packages when missing, npm ci), then compiles the TypeScript and
# builds the addon with `sdvp build`. Idempotent: a second run only rebuilds what changed. Used by `npm test`
# and `npm run demo`.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[sdvp setup] %s\n' "$*"; }

# ---- system packages (Debian/Ubuntu) -------------------------------------------------------------------
# libhwy-dev: SIMD kernels; cmake + g++: the build; libtorch-dev: the model runtime; libgloo-dev: the headers
# of LibTorch's Gloo process group (distributed training); libopenblas0-openmp: the BLAS LibTorch's linear
# layers run on (without it Debian's libtorch falls back to the reference BLAS, which made the student's
# train step 3.7 times slower); python3-torch: the PyTorch baseline for benchmarks and reference tests;
# clang-format: the C++ format check.
packages=(g++ make cmake libhwy-dev libtorch-dev libgloo-dev libopenblas0-openmp python3-torch clang-format)
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

# ---- TypeScript (first: the addon build below is sdvp's own `sdvp build`) ----------------------------------
say "compiling TypeScript"
npx tsc -p tsconfig.json
node scripts/write-esm-entry.js

# ---- native addon (`sdvp build`: CMake via cmake-js, CUDA kernels when nvcc is found, LibTorch when found) --
# SDVP_CUDA / SDVP_TORCH (auto, on or off), SDVP_CUDA_ARCH, SDVP_TORCH_PREFIX and SDVP_CMAKE_FLAGS are read
# by the build; every choice is passed to CMake on each run, so no cached one survives. Unlike the install
# step, `sdvp build` does not fall back: a part that is found but fails to build fails the setup.
say "building the native addon (build-cmake/: CUDA ${SDVP_CUDA:-auto}, LibTorch ${SDVP_TORCH:-auto}, C++ tests)"
node dist/lib/cli/main.js build --tests || {
  tail -40 sdvp-build.log
  say "native build failed; the full log is sdvp-build.log"
  exit 1
}
