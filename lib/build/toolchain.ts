// What this machine offers for building and running the addon — C++ compiler, make/ninja, CMake,
// Highway, LibTorch, nvcc, GPUs, cmake-js and node-gyp — each with where it is and its version.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  type CMakeConfigHit,
  defaultCMakePrefixes,
  findCMakeConfig,
  findExecutable,
  readVersion,
} from './probe-helpers';

export interface Tool {
  found: boolean;
  path: string | null;
  version: string | null;
}

export interface GpuInfo {
  name: string;
  /** e.g. '9.0'; null when the driver does not say. */
  computeCapability: string | null;
}

export interface Toolchain {
  node: { version: string; napi: string; abi: string; headers: string | null };
  compiler: Tool;
  make: Tool;
  ninja: Tool;
  cmake: Tool & { usable: boolean };
  highway: Tool;
  libtorch: Tool;
  /** LibTorch installs CMake does not search by default (PyTorch wheels): use --torch-prefix. */
  libtorchElsewhere: { prefix: string; version: string | null }[];
  nvcc: Tool;
  gpus: { devices: GpuInfo[]; source: string | null };
  cmakeJs: Tool;
  nodeGyp: Tool;
}

/** The oldest CMake the CMakeLists.txt accepts (cmake_minimum_required). */
export const MIN_CMAKE_VERSION = '3.18';

export function versionAtLeast(version: string, minimum: string): boolean {
  const have = version.split(/[.-]/).map((part) => Number.parseInt(part, 10) || 0);
  const need = minimum.split('.').map((part) => Number.parseInt(part, 10) || 0);
  for (let i = 0; i < need.length; i++) {
    if ((have[i] ?? 0) !== need[i]) return (have[i] ?? 0) > need[i];
  }
  return true;
}

const missing: Tool = { found: false, path: null, version: null };

function tool(file: string | null, versionArgs: string[], pattern: RegExp): Tool {
  if (!file) return missing;
  return { found: true, path: file, version: readVersion(file, versionArgs, pattern) };
}

function fromConfig(hit: CMakeConfigHit | null): Tool {
  return hit ? { found: true, path: hit.dir, version: hit.version } : missing;
}

/** nvcc as the build looks for it: CUDACXX, then PATH, then /usr/local/cuda/bin. */
export function findNvcc(env: NodeJS.ProcessEnv = process.env): string | null {
  if (env.CUDACXX && findExecutable(env.CUDACXX, env)) return findExecutable(env.CUDACXX, env);
  return findExecutable('nvcc', env) ?? findExecutable('/usr/local/cuda/bin/nvcc', env);
}

/** LibTorch as find_package(Torch) would find it: an explicit prefix only, else Torch_DIR, else defaults. */
export function findLibtorch(torchPrefix?: string, env: NodeJS.ProcessEnv = process.env): Tool {
  if (torchPrefix) return fromConfig(findCMakeConfig('Torch', [torchPrefix]));
  const prefixes = [
    ...(env.Torch_DIR ? [env.Torch_DIR] : []),
    ...defaultCMakePrefixes(env),
    '/opt/libtorch',
    '/usr/local/libtorch',
  ];
  return fromConfig(findCMakeConfig('Torch', prefixes));
}

function findLibtorchInPython(env: NodeJS.ProcessEnv): { prefix: string; version: string | null }[] {
  const python = findExecutable('python3', env);
  if (!python) return [];
  const script = 'import site; print("\\n".join(site.getsitepackages() + [site.getusersitepackages()]))';
  const result = spawnSync(python, ['-c', script], { encoding: 'utf8', timeout: 15_000 });
  if (result.error || result.status !== 0) return [];
  const hits: { prefix: string; version: string | null }[] = [];
  for (const sitePackages of result.stdout.split('\n').filter(Boolean)) {
    const prefix = path.join(sitePackages, 'torch', 'share', 'cmake');
    const hit = findCMakeConfig('Torch', [prefix]);
    if (hit && !hits.some((known) => known.prefix === prefix)) hits.push({ prefix, version: hit.version });
  }
  return hits;
}

/** GPUs from nvidia-smi, else from the driver's /proc entries. */
export function findGpus(env: NodeJS.ProcessEnv = process.env): Toolchain['gpus'] {
  const smi = findExecutable('nvidia-smi', env);
  if (smi) {
    const result = spawnSync(smi, ['--query-gpu=name,compute_cap', '--format=csv,noheader'], {
      encoding: 'utf8',
      timeout: 15_000,
    });
    if (!result.error && result.status === 0) {
      const devices = result.stdout
        .split('\n')
        .filter((line) => line.trim())
        .map((line) => {
          const [name, capability] = line.split(',').map((part) => part.trim());
          return { name, computeCapability: /^\d+\.\d+$/.test(capability ?? '') ? capability : null };
        });
      return { devices, source: 'nvidia-smi' };
    }
  }
  const procDir = '/proc/driver/nvidia/gpus';
  if (fs.existsSync(procDir)) {
    const devices = fs.readdirSync(procDir).map((bus) => {
      let name = bus;
      try {
        const info = fs.readFileSync(path.join(procDir, bus, 'information'), 'utf8');
        name = /^Model:\s*(.+)$/m.exec(info)?.[1]?.trim() ?? bus;
      } catch {
        // an unreadable entry still counts as a GPU
      }
      return { name, computeCapability: null };
    });
    return { devices, source: procDir };
  }
  return { devices: [], source: null };
}

function packageVersion(packageJson: string | null): string | null {
  if (!packageJson) return null;
  try {
    return (JSON.parse(fs.readFileSync(packageJson, 'utf8')) as { version?: string }).version ?? null;
  } catch {
    return null;
  }
}

function resolveFrom(request: string): string | null {
  try {
    return require.resolve(request);
  } catch {
    return null;
  }
}

/** cmake-js's command-line script (a dependency of sdvp). */
export function findCmakeJs(): Tool {
  const packageJson = resolveFrom('cmake-js/package.json');
  if (!packageJson) return missing;
  return { found: true, path: path.join(path.dirname(packageJson), 'bin', 'cmake-js'), version: packageVersion(packageJson) };
}

/**
 * node-gyp: npm's own copy, which npm names in npm_config_node_gyp for install scripts and `npx`, else
 * an installed node-gyp package, else one on PATH.
 */
export function findNodeGyp(env: NodeJS.ProcessEnv = process.env): Tool {
  const fromNpm = env.npm_config_node_gyp;
  if (fromNpm && fs.existsSync(fromNpm)) {
    return { found: true, path: fromNpm, version: packageVersion(path.join(path.dirname(fromNpm), '..', 'package.json')) };
  }
  const packageJson = resolveFrom('node-gyp/package.json');
  if (packageJson) {
    return {
      found: true,
      path: path.join(path.dirname(packageJson), 'bin', 'node-gyp.js'),
      version: packageVersion(packageJson),
    };
  }
  return tool(findExecutable('node-gyp', env), ['--version'], /v?(\d+\.\d+\.\d+)/);
}

/** The Node headers node-gyp uses without downloading (installed beside the node binary). */
function nodeHeaders(): string | null {
  const dir = path.resolve(process.execPath, '..', '..', 'include', 'node');
  return fs.existsSync(path.join(dir, 'node_api.h')) ? dir : null;
}

export interface ProbeOptions {
  torchPrefix?: string;
  env?: NodeJS.ProcessEnv;
}

export function probeToolchain(options: ProbeOptions = {}): Toolchain {
  const env = options.env ?? process.env;
  const compilerPath = env.CXX
    ? findExecutable(env.CXX, env)
    : (findExecutable('c++', env) ?? findExecutable('g++', env) ?? findExecutable('clang++', env));
  const cmake = tool(findExecutable('cmake', env), ['--version'], /cmake version (\S+)/);
  return {
    node: {
      version: process.version,
      napi: process.versions.napi ?? 'unknown',
      abi: process.versions.modules,
      headers: nodeHeaders(),
    },
    compiler: tool(compilerPath, ['--version'], /^(.+)$/m),
    make: tool(findExecutable('make', env), ['--version'], /^GNU Make (\S+)/m),
    ninja: tool(findExecutable('ninja', env), ['--version'], /^(\S+)/),
    cmake: { ...cmake, usable: cmake.found && versionAtLeast(cmake.version ?? '0', MIN_CMAKE_VERSION) },
    highway: fromConfig(
      findCMakeConfig('hwy', [...(env.hwy_DIR ? [env.hwy_DIR] : []), ...defaultCMakePrefixes(env)]),
    ),
    libtorch: findLibtorch(options.torchPrefix, env),
    libtorchElsewhere: findLibtorchInPython(env),
    nvcc: tool(findNvcc(env), ['--version'], /release \S+ V(\S+)/),
    gpus: findGpus(env),
    cmakeJs: findCmakeJs(),
    nodeGyp: findNodeGyp(env),
  };
}
