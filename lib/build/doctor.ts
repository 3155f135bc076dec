// `sdvp doctor`'s diagnosis: what the machine has (toolchain), what the loaded addon has, the last build's
// record, and the exact commands that add what is missing.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { SdvpError } from '../errors/sdvp-error';
import { loadNative, loadedNativePath, packageRoot } from '../native/load-native';
import { type AddonCapabilities, type BuildRecord, readBuildRecord } from './build-record';
import { DEBIAN_PACKAGES, FIX, REBUILD, aptInstall } from './fix-commands';
import { type Toolchain, probeToolchain } from './toolchain';

export interface AddonState {
  loaded: boolean;
  path: string | null;
  capabilities: AddonCapabilities | null;
  /** The loader's error when nothing loads. */
  error: string | null;
}

export interface TodoItem {
  /** What is missing or wrong, in words. */
  what: string;
  /** The command that fixes it, or null when there is nothing to run (e.g. no GPU in the machine). */
  command: string | null;
}

export interface Diagnosis {
  sdvpVersion: string;
  packageRoot: string;
  toolchain: Toolchain;
  addon: AddonState;
  lastBuild: BuildRecord | null;
  todo: TodoItem[];
}

function addonState(): AddonState {
  try {
    const capabilities = loadNative().capabilities() as AddonCapabilities;
    return { loaded: true, path: loadedNativePath() ?? null, capabilities, error: null };
  } catch (error) {
    return {
      loaded: false,
      path: null,
      capabilities: null,
      error: error instanceof SdvpError || error instanceof Error ? error.message : String(error),
    };
  }
}

/** The Debian packages a full build still needs on this machine. */
function missingPackages(toolchain: Toolchain): string[] {
  const packages: string[] = [];
  if (!toolchain.compiler.found || !toolchain.make.found) packages.push(DEBIAN_PACKAGES.compiler);
  if (!toolchain.cmake.usable) packages.push(DEBIAN_PACKAGES.cmake);
  if (!toolchain.highway.found) packages.push(DEBIAN_PACKAGES.highway);
  return packages;
}

function torchFix(toolchain: Toolchain): string {
  if (toolchain.libtorch.found) return `${REBUILD} --torch on`;
  const elsewhere = toolchain.libtorchElsewhere[0];
  return elsewhere ? FIX.torchPrefix(elsewhere.prefix) : FIX.addTorch;
}

/** The architectures a CUDA build was made for, from the last build's record. */
function builtCudaArchitectures(record: BuildRecord | null): string[] {
  return (record?.options.cudaArch ?? '').split(';').filter(Boolean);
}

export function todoList(toolchain: Toolchain, addon: AddonState, record: BuildRecord | null): TodoItem[] {
  const todo: TodoItem[] = [];
  const packages = missingPackages(toolchain);
  const prepare = packages.length > 0 ? `${aptInstall(packages.join(' '))} && ` : '';
  if (!addon.loaded) {
    todo.push({ what: 'the native addon does not load (kernels and models are unavailable)', command: `${prepare}${REBUILD}` });
    return todo;
  }
  const caps = addon.capabilities!;
  if (!caps.torch.built) {
    todo.push({
      what: 'the addon has no LibTorch runtime (models cannot be created, loaded or trained)',
      command: toolchain.cmake.usable ? torchFix(toolchain) : `${prepare}${torchFix(toolchain)}`,
    });
  }
  if (!caps.cuda.built) {
    todo.push(
      toolchain.nvcc.found
        ? { what: 'the addon has no CUDA kernels, and nvcc is installed', command: `${prepare}${FIX.addCuda}` }
        : {
            what: 'the addon has no CUDA kernels: nvcc was not found (install the CUDA toolkit for them)',
            command: null,
          },
    );
  } else if (toolchain.gpus.devices.length === 0 && caps.cuda.devices === 0) {
    todo.push({ what: 'the CUDA kernels are built, but no NVIDIA GPU is visible here (the CPU kernels are used)', command: null });
  } else {
    const built = builtCudaArchitectures(record);
    for (const gpu of toolchain.gpus.devices) {
      const arch = gpu.computeCapability?.replace('.', '');
      if (arch && built.length > 0 && !built.includes(arch) && !built.some((a) => /native|all/.test(a))) {
        todo.push({
          what: `the CUDA kernels were built for ${built.join(';')}, but ${gpu.name} is compute capability ${gpu.computeCapability}`,
          command: `${REBUILD} --cuda-arch ${[...built, arch].join(',')}`,
        });
        break;
      }
    }
  }
  return todo;
}

export function diagnose(): Diagnosis {
  const root = packageRoot();
  const record = readBuildRecord(root);
  const toolchain = probeToolchain({ torchPrefix: record?.options.torchPrefix });
  const addon = addonState();
  let sdvpVersion = 'unknown';
  try {
    sdvpVersion = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    // reported as unknown
  }
  return { sdvpVersion, packageRoot: root, toolchain, addon, lastBuild: record, todo: todoList(toolchain, addon, record) };
}
