#!/usr/bin/env bash
# The package as a consumer gets it: `npm pack`, then `npm install` of the tarball into a new, empty
# project, and from there require and import by name, a strict type-check against the shipped
# declarations, capabilities() with LibTorch, a model created, trained a step and saved, a kernel call,
# `npx sdvp --help` and `npx sdvp doctor`. Then an install with SDVP_TORCH=OFF: a kernel-only package
# whose model error names a fix command, which is run, after which models work.
# Needs what CI has: g++, cmake, libhwy-dev, libtorch-dev (found by find_package(Torch)).
# SDVP_CONSUMER_KEEP=1 keeps the temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=$(mktemp -d "${TMPDIR:-/tmp}/sdvp-consumer.XXXXXX")
if [ "${SDVP_CONSUMER_KEEP:-0}" = 1 ]; then echo "[consumer] keeping $work"; else trap 'rm -rf "$work"' EXIT; fi
say() { printf '[consumer] %s\n' "$*"; }
fail() {
  say "FAILED: $*"
  exit 1
}
# The build settings of the developer's shell must not leak into the consumer's install.
unset SDVP_TORCH SDVP_CUDA SDVP_CUDA_ARCH SDVP_TORCH_PREFIX SDVP_CMAKE_FLAGS SDVP_NATIVE SDVP_SKIP_BUILD

say "npm pack (prepack compiles the TypeScript)"
tarball=$(npm pack --pack-destination "$work" --silent | tail -1)
[ -f "$work/$tarball" ] || fail "npm pack wrote no tarball"
say "packed $tarball ($(du -k "$work/$tarball" | cut -f1) KiB)"

# Installs the tarball into $1 (a new folder); extra environment for the install step follows.
install_into() {
  local app=$1
  shift
  mkdir -p "$app"
  local started ended
  started=$(date +%s.%N)
  (cd "$app" && env "$@" npm install --no-audit --no-fund --foreground-scripts "../$tarball" >install.log 2>&1) || {
    tail -60 "$app/install.log"
    fail "npm install of the tarball failed in $app"
  }
  ended=$(date +%s.%N)
  # The install step must really have run (npm's allowScripts policy could have skipped it).
  [ -f "$app/node_modules/sdvp/sdvp-build.json" ] || {
    tail -30 "$app/install.log"
    fail "sdvp's install step did not run in $app (no sdvp-build.json)"
  }
  local build_seconds
  build_seconds=$(node -p "Math.round(require('$app/node_modules/sdvp/sdvp-build.json').seconds)")
  say "installed in $(node -p "Math.round($ended - $started)") s (sdvp's addon build: ${build_seconds} s)"
  grep -E '^sdvp: |^  (CPU kernels|CUDA kernels|LibTorch) ' "$app/install.log" | sed 's/^/[consumer]   /' || true
}

# ---- 1. a fresh project on this machine (LibTorch installed) --------------------------------------------
app="$work/app"
say "install into an empty project: $app"
install_into "$app"
[ "$(ls -A "$app" | sort | tr '\n' ' ')" = "install.log node_modules package-lock.json package.json " ] ||
  fail "unexpected files in the project: $(ls -A "$app")"
cp scripts/consumer/check-package.cjs scripts/consumer/check-esm.mjs scripts/consumer/check-types.ts "$app/"
cd "$app"

say "require('sdvp'): capabilities() with LibTorch, a kernel call, a model created, trained a step, saved"
SDVP_EXPECT_TORCH=1 node check-package.cjs || fail "the CommonJS checks"
say "import from 'sdvp' (ES module)"
node check-esm.mjs || fail "the ES module checks"
say "tsc --noEmit --strict against the shipped declarations"
node "$repo/node_modules/typescript/bin/tsc" --noEmit --strict --target es2022 --module nodenext \
  --moduleResolution nodenext --types node --typeRoots "$repo/node_modules/@types" check-types.ts ||
  fail "the declarations do not type-check"
say "npx sdvp --help"
npx sdvp --help >help.txt || fail "npx sdvp --help"
grep -q '^  build ' help.txt && grep -q '^  doctor ' help.txt || fail "npx sdvp --help does not list build and doctor"
say "npx sdvp doctor"
npx sdvp doctor >doctor.txt || {
  cat doctor.txt
  fail "npx sdvp doctor"
}
grep -E '^(Addon|  LibTorch|  CUDA kernels)' doctor.txt | sed 's/^/[consumer]   /'

# ---- 2. the same install without LibTorch (SDVP_TORCH=OFF), then the error's fix command ----------------
# The dependencies are copied from the first project (their own install steps, better-sqlite3's compile
# above all, are not what this checks); sdvp itself is installed fresh from the tarball.
kernel_app="$work/app-no-torch"
mkdir -p "$kernel_app/node_modules"
cp "$app/package.json" "$app/package-lock.json" "$kernel_app/"
for dependency in "$app"/node_modules/* "$app"/node_modules/.bin; do
  [ "$(basename "$dependency")" = sdvp ] || cp -a "$dependency" "$kernel_app/node_modules/"
done
say "install with SDVP_TORCH=OFF into $kernel_app"
install_into "$kernel_app" SDVP_TORCH=OFF
cp "$repo/scripts/consumer/check-package.cjs" "$kernel_app/"
cd "$kernel_app"
report=$(SDVP_EXPECT_TORCH=0 node check-package.cjs) || fail "the kernel-only checks"
fix=$(node -p "JSON.parse(process.argv[1]).fix" "$report")
say "kernel-only package: kernels work, createModel throws ERR_SDVP_NO_TORCH; its fix: $fix"
case "$fix" in
  *"npx sdvp build"*) ;;
  *) fail "the fix does not name npx sdvp build: $fix" ;;
esac
if [ "$(id -u)" -ne 0 ] && [[ "$fix" == apt-get* ]]; then
  # apt-get needs root; the library is on this machine already, so run the rest of the command.
  say "not root: running the part after apt-get"
  fix=${fix#*&& }
fi
say "running the fix: $fix"
bash -c "$fix" >fix.log 2>&1 || {
  tail -40 fix.log
  fail "the fix command failed"
}
SDVP_EXPECT_TORCH=1 node check-package.cjs >/dev/null || fail "models do not work after the fix command"
say "after the fix, models work"
say "all consumer checks passed"
