#!/usr/bin/env bash
# Checks (or with --fix, applies) clang-format on the C++ and CUDA sources under native/ and bench/gpu/.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null 2>&1; then
  echo "clang-format is not installed (apt-get install -y clang-format)" >&2
  exit 1
fi
mapfile -t files < <(find native bench/gpu -type f \( -name '*.cc' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) | sort)
if [ "${1:-}" = "--fix" ]; then
  clang-format -i "${files[@]}"
else
  clang-format --dry-run -Werror "${files[@]}"
fi
