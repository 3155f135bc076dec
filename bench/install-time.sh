#!/usr/bin/env bash
# Install time of the packed package on this machine: `npm install <tarball>` into a new, empty project,
# with LibTorch found (the default) and with SDVP_TORCH=OFF, alternating, RUNS times each (default 3).
# Prints every run and the medians of the whole install and of sdvp's own addon build (the `seconds` of
# node_modules/sdvp/sdvp-build.json); writes bench/results/install-time.json. The whole install includes
# the dependencies' install steps (better-sqlite3 compiles SQLite when no prebuilt binary can be fetched).
# npm's cache is warm after the first install, so downloads are not what is timed.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
work=$(mktemp -d "${TMPDIR:-/tmp}/sdvp-install-time.XXXXXX")
trap 'rm -rf "$work"' EXIT
unset SDVP_TORCH SDVP_CUDA SDVP_CUDA_ARCH SDVP_TORCH_PREFIX SDVP_CMAKE_FLAGS SDVP_NATIVE SDVP_SKIP_BUILD

tarball=$(npm pack --pack-destination "$work" --silent | tail -1)
results="$work/results.jsonl"
for run in $(seq 1 "$runs"); do
  for variant in libtorch no-libtorch; do
    app="$work/$variant-$run"
    mkdir "$app"
    env_args=()
    [ "$variant" = no-libtorch ] && env_args=(SDVP_TORCH=OFF)
    started=$(date +%s.%N)
    (cd "$app" && env "${env_args[@]}" npm install --no-audit --no-fund "../$tarball" >install.log 2>&1)
    ended=$(date +%s.%N)
    node -e '
      const [file, variant, run, started, ended] = process.argv.slice(1);
      const record = require(file);
      const row = { variant, run: Number(run), installSeconds: Number(ended) - Number(started),
        addonBuildSeconds: record.seconds, torch: record.parts.torch.built, cuda: record.parts.cuda.built };
      console.log(JSON.stringify(row));
    ' "$app/node_modules/sdvp/sdvp-build.json" "$variant" "$run" "$started" "$ended" | tee -a "$results"
    rm -rf "$app"
  done
done

mkdir -p bench/results
node -e '
  const fs = require("node:fs");
  const rows = fs.readFileSync(process.argv[1], "utf8").trim().split("\n").map((line) => JSON.parse(line));
  const median = (values) => {
    const sorted = [...values].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  };
  const summary = {};
  for (const variant of ["libtorch", "no-libtorch"]) {
    const mine = rows.filter((row) => row.variant === variant);
    summary[variant] = {
      runs: mine.length,
      medianInstallSeconds: median(mine.map((row) => row.installSeconds)),
      medianAddonBuildSeconds: median(mine.map((row) => row.addonBuildSeconds)),
      torch: mine.every((row) => row.torch),
      cuda: mine.every((row) => row.cuda),
    };
  }
  const ratio = summary.libtorch.medianInstallSeconds / summary["no-libtorch"].medianInstallSeconds;
  console.log("variant       runs  install (median s)  addon build (median s)  torch  cuda");
  for (const [variant, s] of Object.entries(summary)) {
    console.log(`${variant.padEnd(13)} ${String(s.runs).padStart(4)}  ${s.medianInstallSeconds.toFixed(1).padStart(18)}  ${s.medianAddonBuildSeconds.toFixed(1).padStart(22)}  ${String(s.torch).padEnd(5)}  ${s.cuda}`);
  }
  console.log(`install with LibTorch / without: ${ratio.toFixed(2)}x`);
  fs.writeFileSync("bench/results/install-time.json", JSON.stringify({ date: new Date().toISOString(), rows, summary }, null, 2) + "\n");
' "$results"
