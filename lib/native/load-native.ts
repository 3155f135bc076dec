// The one place that loads the compiled addon: an explicit path (option or SDVP_NATIVE), else the CMake
// build, else the node-gyp build; when nothing loads, one error lists every path tried and the fixes.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { SdvpError } from '../errors/sdvp-error';
import type { NativeBinding } from './native-binding';

let cached: NativeBinding | undefined;

/** The package root (the folder holding package.json), found from this file in lib/ or dist/lib/. */
export function packageRoot(): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'CMakeLists.txt')))
      return dir;
    dir = path.dirname(dir);
  }
  return path.resolve(__dirname, '..', '..', '..');
}

/** Paths tried, in order, when no explicit path is given. */
export function candidatePaths(): string[] {
  const root = packageRoot();
  return [
    path.join(root, 'build-cmake', 'Release', 'sdvp.node'), // npm run build:native (cmake-js)
    path.join(root, 'build', 'Release', 'sdvp.node'), // npm run build:gyp (node-gyp)
  ];
}

export interface LoadNativeOptions {
  /** A path to a `.node` file, or an already-loaded native module. Overrides SDVP_NATIVE. */
  native?: string | NativeBinding;
}

/**
 * Loads (once) and returns the native binding. With `options.native` or the environment variable
 * SDVP_NATIVE only that path is tried.
 */
export function loadNative(options: LoadNativeOptions = {}): NativeBinding {
  if (options.native !== undefined && typeof options.native !== 'string') {
    cached = options.native;
    return cached;
  }
  if (cached && options.native === undefined) return cached;
  const explicit = options.native ?? process.env.SDVP_NATIVE;
  // LibTorch runs its own OpenMP team; an OpenMP-threaded OpenBLAS inside it oversubscribes the cores (seen: a
  // 30 ms train step took 6 s on a busy two-core machine). OpenBLAS reads this when the addon loads it.
  process.env.OPENBLAS_NUM_THREADS ??= '1';
  const candidates = explicit ? [path.resolve(explicit)] : candidatePaths();
  const failures: string[] = [];
  for (const candidate of candidates) {
    if (!fs.existsSync(candidate)) {
      failures.push(`  ${candidate}: no such file`);
      continue;
    }
    try {
      const binding = require(candidate) as NativeBinding;
      cached = binding;
      return binding;
    } catch (error) {
      failures.push(
        `  ${candidate}: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`,
      );
    }
  }
  const fix = 'npm run build:native   (CMake: kernels, CUDA when nvcc is found, LibTorch when installed)';
  throw new SdvpError(
    'ERR_SDVP_NATIVE_LOAD',
    [
      'The sdvp native addon could not be loaded. Tried:',
      ...failures,
      'To fix, build it from the package folder with one of:',
      `  ${fix}`,
      '  npm run build:gyp      (node-gyp: CPU kernels only, no CMake needed)',
      '  bash scripts/setup.sh  (installs the system packages first, then builds)',
      'or point SDVP_NATIVE at a built sdvp.node.',
    ].join('\n'),
    { fix },
  );
}

/** Forgets the loaded binding (tests use this to exercise the loader). */
export function resetNativeForTests(): void {
  cached = undefined;
}
