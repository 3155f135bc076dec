// The options of an addon build (`sdvp build` flags, or SDVP_* environment variables at install time),
// validated into one plain object.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { SdvpError } from '../errors/sdvp-error';

/** AUTO builds a part when its toolchain is found; ON requires it; OFF leaves it out. */
export type PartSwitch = 'auto' | 'on' | 'off';

export interface BuildOptions {
  torch: PartSwitch;
  cuda: PartSwitch;
  /** CUDA architectures for CMAKE_CUDA_ARCHITECTURES, e.g. '90' or '80;90'. */
  cudaArch: string;
  /** A LibTorch install prefix (or the folder holding TorchConfig.cmake) for find_package(Torch). */
  torchPrefix?: string;
  /** Builds the C++ tests as well (source checkouts only: the package does not ship them). */
  tests: boolean;
  /** Deletes the CMake build folder first, so no cached choice survives. */
  clean: boolean;
  /** Streams the compiler output instead of only writing it to the log. */
  verbose: boolean;
  /** Extra cmake-js arguments, e.g. `--CDCMAKE_BUILD_TYPE=Debug`. */
  cmakeFlags: string[];
}

export const DEFAULT_CUDA_ARCH = '90';

export function defaultBuildOptions(): BuildOptions {
  return {
    torch: 'auto',
    cuda: 'auto',
    cudaArch: DEFAULT_CUDA_ARCH,
    tests: false,
    clean: false,
    verbose: false,
    cmakeFlags: [],
  };
}

/** Reads AUTO / ON / OFF in any case (also 1/0, true/false); `field` names the flag or variable. */
export function parsePartSwitch(value: string, field: string): PartSwitch {
  const normal = value.trim().toLowerCase();
  if (normal === 'auto') return 'auto';
  if (normal === 'on' || normal === '1' || normal === 'true' || normal === 'yes') return 'on';
  if (normal === 'off' || normal === '0' || normal === 'false' || normal === 'no') return 'off';
  throw new SdvpError('ERR_SDVP_USAGE', `${field} must be 'auto', 'on' or 'off', but received '${value}'.`, {
    field,
    expected: "'auto', 'on' or 'off'",
    received: `'${value}'`,
  });
}

/** CUDA architectures: numbers like 90 or 86, separated by ';' or ',', or CMake's 'native' / 'all'. */
export function parseCudaArch(value: string, field: string): string {
  const normal = value.trim().replace(/,/g, ';');
  if (/^(native|all|all-major)$/.test(normal) || /^\d{2,3}[a-z]?(;\d{2,3}[a-z]?)*$/.test(normal)) return normal;
  throw new SdvpError(
    'ERR_SDVP_USAGE',
    `${field} must be CUDA architectures such as '90' or '80;90' (or 'native'), but received '${value}'.`,
    { field, expected: "CUDA architectures such as '90' or '80;90'", received: `'${value}'` },
  );
}

/** An existing folder, made absolute. */
export function parseTorchPrefix(value: string, field: string): string {
  const resolved = path.resolve(value);
  if (!fs.existsSync(resolved) || !fs.statSync(resolved).isDirectory()) {
    throw new SdvpError('ERR_SDVP_USAGE', `${field} must be an existing folder, but '${resolved}' is not one.`, {
      field,
      expected: 'an existing folder',
      received: `'${value}'`,
    });
  }
  return resolved;
}

/**
 * The options an install picks up from the environment: SDVP_TORCH, SDVP_CUDA (auto/on/off),
 * SDVP_CUDA_ARCH, SDVP_TORCH_PREFIX, SDVP_CMAKE_FLAGS (extra cmake-js arguments, space-separated) and
 * SDVP_BUILD_VERBOSE. `sdvp build` starts from these too, and its flags override them.
 */
export function buildOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): BuildOptions {
  const options = defaultBuildOptions();
  if (env.SDVP_TORCH) options.torch = parsePartSwitch(env.SDVP_TORCH, 'SDVP_TORCH');
  if (env.SDVP_CUDA) options.cuda = parsePartSwitch(env.SDVP_CUDA, 'SDVP_CUDA');
  if (env.SDVP_CUDA_ARCH) options.cudaArch = parseCudaArch(env.SDVP_CUDA_ARCH, 'SDVP_CUDA_ARCH');
  if (env.SDVP_TORCH_PREFIX) options.torchPrefix = parseTorchPrefix(env.SDVP_TORCH_PREFIX, 'SDVP_TORCH_PREFIX');
  if (env.SDVP_CMAKE_FLAGS) options.cmakeFlags = env.SDVP_CMAKE_FLAGS.split(/\s+/).filter(Boolean);
  if (env.SDVP_BUILD_VERBOSE) options.verbose = parsePartSwitch(env.SDVP_BUILD_VERBOSE, 'SDVP_BUILD_VERBOSE') === 'on';
  return options;
}

/** The options as `sdvp build` flags, for messages and the build record. */
export function describeBuildOptions(options: BuildOptions): string {
  const words = [`--torch ${options.torch}`, `--cuda ${options.cuda}`, `--cuda-arch ${options.cudaArch.replace(/;/g, ',')}`];
  if (options.torchPrefix) words.push(`--torch-prefix ${options.torchPrefix}`);
  if (options.tests) words.push('--tests');
  if (options.clean) words.push('--clean');
  if (options.cmakeFlags.length > 0) words.push(`(cmake flags: ${options.cmakeFlags.join(' ')})`);
  return words.join(' ');
}
