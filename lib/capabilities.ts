// capabilities(): what the native addon was built with (SIMD target, CUDA, LibTorch) and found at run time.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadNative, packageRoot } from './native/load-native';

export interface Capabilities {
  /** 'cmake' or 'node-gyp'. */
  buildSystem: string;
  /** The Highway target chosen for this CPU at run time, e.g. 'AVX3', 'AVX2', 'SSE4'. */
  simdTarget: string;
  /** Threads the CPU kernels use by default. */
  cpuThreads: number;
  cuda: { built: boolean; runtimeVersion: number | null; devices: number };
  torch: { built: boolean; version: string | null; cuda: boolean };
  /** The sdvp package version. */
  version: string;
}

export function capabilities(): Capabilities {
  const native = loadNative().capabilities();
  const { version } = JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as {
    version: string;
  };
  return { ...native, version };
}
