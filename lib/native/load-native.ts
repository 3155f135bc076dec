// The one place that loads the compiled addon: an explicit path (option or SDVP_NATIVE), else the CMake
// build, else the node-gyp build; when nothing loads, one error lists every path tried and the fixes.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { FIX } from '../build/fix-commands';
import { SdvpError } from '../errors/sdvp-error';
import type { NativeBinding } from './native-binding';

let cached: NativeBinding | undefined;
let cachedPath: string | undefined;

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
    path.join(root, 'build-cmake', 'Release', 'sdvp.node'), // the CMake build (sdvp build, the install step)
    path.join(root, 'build', 'Release', 'sdvp.node'), // the node-gyp build (CPU kernels only)
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
    cachedPath = undefined;
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
      cachedPath = candidate;
      return binding;
    } catch (error) {
      failures.push(
        `  ${candidate}: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`,
      );
    }
  }
  throw new SdvpError(
    'ERR_SDVP_NATIVE_LOAD',
    [
      'The sdvp native addon could not be loaded. Tried:',
      ...failures,
      'To fix, from your project (or the sdvp folder):',
      `  ${FIX.rebuild}          (rebuilds it in the installed package: CMake with CUDA and LibTorch when found, else node-gyp)`,
      `  ${FIX.everything}`,
      '                          (Debian/Ubuntu, as root: the compiler, CMake, Highway and LibTorch first)',
      '  npx sdvp doctor         (what this machine has and what is missing)',
      'or point SDVP_NATIVE at a built sdvp.node.',
    ].join('\n'),
    { fix: FIX.rebuild },
  );
}

/** The file the loaded binding came from (undefined before loading, or for a module passed in). */
export function loadedNativePath(): string | undefined {
  return cached ? cachedPath : undefined;
}

/** Forgets the loaded binding (tests use this to exercise the loader). */
export function resetNativeForTests(): void {
  cached = undefined;
  cachedPath = undefined;
}
