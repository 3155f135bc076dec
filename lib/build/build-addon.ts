// Builds the native addon inside the package folder: the CMake build (cmake-js) with CUDA and LibTorch as
// asked, else the node-gyp CPU build; checks the result loads, records it and says what was left out.
// With `fallback` (npm's install step) a failed build is retried without the optional part it broke on.

import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SdvpError } from '../errors/sdvp-error';
import { packageRoot } from '../native/load-native';
import { type BuildOptions, describeBuildOptions } from './build-options';
import { type OptionalPart, failedPart, failureExcerpt, parseCMakeChoices } from './build-output';
import {
  type AddonCapabilities,
  BUILD_LOG_FILE,
  type Backend,
  type BuildAttempt,
  type BuildRecord,
  type PartOutcome,
  writeBuildRecord,
} from './build-record';
import { FIX, REBUILD } from './fix-commands';
import { findCMakeConfig } from './probe-helpers';
import { type Toolchain, probeToolchain } from './toolchain';

export const CMAKE_OUT = 'build-cmake';
export const GYP_OUT = 'build';

export interface BuildRunOptions {
  /** Retry without a failing optional part, then with node-gyp (the install step). */
  fallback: boolean;
  trigger: BuildRecord['trigger'];
  /** The package folder (default: the one this file belongs to). */
  root?: string;
  /** Progress lines (default: stderr). */
  report?: (line: string) => void;
}

/** One build attempt: the backend and the switches it runs with. */
export interface Plan {
  backend: Backend;
  torch: BuildOptions['torch'];
  cuda: BuildOptions['cuda'];
  reason?: string;
  /** The optional part this attempt left out after the previous one failed, and whether it was to blame. */
  dropped?: { part: OptionalPart; blamed: boolean };
}

interface AttemptOutcome {
  attempt: BuildAttempt;
  output: string;
  capabilities: AddonCapabilities | null;
}

function addonPath(root: string, backend: Backend): string {
  return path.join(root, backend === 'cmake' ? CMAKE_OUT : GYP_OUT, 'Release', 'sdvp.node');
}

/** The folder holding TorchConfig.cmake below --torch-prefix (passed as Torch_DIR, which CMake caches). */
function torchDirFor(prefix: string): string {
  const hit = findCMakeConfig('Torch', [prefix]);
  if (!hit) {
    throw new SdvpError(
      'ERR_SDVP_USAGE',
      `--torch-prefix '${prefix}' holds no TorchConfig.cmake (looked in it, Torch/, share/cmake/Torch and lib/cmake/Torch). ` +
        "For PyTorch's LibTorch use: --torch-prefix \"$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')\"",
      { field: '--torch-prefix', expected: 'a LibTorch prefix', received: `'${prefix}'` },
    );
  }
  return hit.dir;
}

/** Whether the CMake cache holds CMAKE_CUDA_COMPILER as NOTFOUND (check_language found none then). */
function cachedCudaCompilerMissing(root: string): boolean {
  try {
    const cache = fs.readFileSync(path.join(root, CMAKE_OUT, 'CMakeCache.txt'), 'utf8');
    return /^CMAKE_CUDA_COMPILER:\w+=.*NOTFOUND\s*$/m.test(cache);
  } catch {
    return false;
  }
}

function cmakeArguments(root: string, options: BuildOptions, plan: Plan, toolchain: Toolchain): string[] {
  const definitions = [
    `--CDSDVP_TORCH=${plan.torch.toUpperCase()}`,
    `--CDSDVP_CUDA=${plan.cuda.toUpperCase()}`,
    `--CDSDVP_CUDA_ARCHITECTURES=${options.cudaArch}`,
    `--CDSDVP_TESTS=${options.tests ? 'ON' : 'OFF'}`,
  ];
  if (plan.torch !== 'off' && options.torchPrefix) definitions.push(`--CDTorch_DIR=${torchDirFor(options.torchPrefix)}`);
  // CMake caches a CUDA compiler it did not find: name the one installed since. (Only then: naming a
  // different path than the cached one makes CMake throw its cache away and rebuild everything.)
  if (plan.cuda !== 'off' && toolchain.nvcc.path && cachedCudaCompilerMissing(root)) {
    definitions.push(`--CDCMAKE_CUDA_COMPILER=${toolchain.nvcc.path}`);
  }
  return ['--directory', root, '--out', path.join(root, CMAKE_OUT), ...definitions, ...options.cmakeFlags];
}

/** Runs a command, appending its output to the log (and to stderr when verbose); resolves to its output. */
function runLogged(
  command: string,
  args: string[],
  cwd: string,
  log: fs.WriteStream,
  verbose: boolean,
): Promise<{ code: number; output: string }> {
  log.write(`\n$ ${[command, ...args].join(' ')}\n`);
  return new Promise((resolve) => {
    const chunks: string[] = [];
    const child = spawn(command, args, {
      cwd,
      // make builds serially unless told otherwise; ninja would use every core anyway.
      env: { ...process.env, CMAKE_BUILD_PARALLEL_LEVEL: process.env.CMAKE_BUILD_PARALLEL_LEVEL ?? String(os.availableParallelism()) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const take = (chunk: Buffer) => {
      const text = chunk.toString();
      chunks.push(text);
      log.write(text);
      if (verbose) process.stderr.write(text);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('error', (error) => {
      chunks.push(`${command}: ${error.message}\n`);
      resolve({ code: 127, output: chunks.join('') });
    });
    child.on('close', (code) => resolve({ code: code ?? 1, output: chunks.join('') }));
  });
}

/** Loads a freshly built addon in a child process (a broken one must not take this process down). */
function probeAddon(file: string): { capabilities: AddonCapabilities | null; error?: string } {
  if (!fs.existsSync(file)) return { capabilities: null, error: `${file} was not produced` };
  const script = `process.stdout.write(JSON.stringify(require(${JSON.stringify(file)}).capabilities()))`;
  const result = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 120_000 });
  if (result.status === 0) {
    try {
      return { capabilities: JSON.parse(result.stdout) as AddonCapabilities };
    } catch {
      // fall through to the error below
    }
  }
  return { capabilities: null, error: `the built addon does not load: ${(result.stderr || result.stdout).trim().split('\n').slice(0, 6).join('\n')}` };
}

async function runAttempt(
  root: string,
  plan: Plan,
  options: BuildOptions,
  toolchain: Toolchain,
  log: fs.WriteStream,
): Promise<AttemptOutcome> {
  const started = Date.now();
  const steps: [string, string[]][] = [];
  if (plan.backend === 'cmake') {
    const cmakeJs = toolchain.cmakeJs.path!;
    const args = cmakeArguments(root, options, plan, toolchain);
    // `configure` then `build`: cmake-js's `compile` skips configuring an existing build folder.
    steps.push([process.execPath, [cmakeJs, 'configure', ...args]], [process.execPath, [cmakeJs, 'build', ...args]]);
  } else {
    const gyp = toolchain.nodeGyp.path!;
    const gypArgs = ['rebuild', '--directory', root, '--jobs', 'max'];
    steps.push(gyp.endsWith('.js') ? [process.execPath, [gyp, ...gypArgs]] : [gyp, gypArgs]);
  }
  let output = '';
  let failure: string | undefined;
  for (const [command, args] of steps) {
    const result = await runLogged(command, args, root, log, options.verbose);
    output += result.output;
    if (result.code !== 0) {
      failure = failureExcerpt(result.output);
      break;
    }
  }
  let capabilities: AddonCapabilities | null = null;
  if (!failure) {
    const probe = probeAddon(addonPath(root, plan.backend));
    capabilities = probe.capabilities;
    if (probe.error) {
      failure = probe.error;
      output += `\n${probe.error}\n`;
      log.write(`\n${probe.error}\n`);
    }
  }
  const attempt: BuildAttempt = {
    backend: plan.backend,
    torch: plan.torch,
    cuda: plan.cuda,
    ok: failure === undefined,
    seconds: (Date.now() - started) / 1000,
    ...(plan.reason ? { reason: plan.reason } : {}),
    ...(plan.dropped ? { dropped: plan.dropped } : {}),
    ...(failure ? { error: failure } : {}),
  };
  return { attempt, output, capabilities };
}

/** The attempt after a failed one, or null when nothing is left to try (exported for the tests). */
export function nextPlan(failed: Plan, output: string, options: BuildOptions, toolchain: Toolchain): Plan | null {
  if (failed.backend === 'node-gyp') return null;
  const choices = parseCMakeChoices(output);
  // A part CMake did not get to report on (configure stopped earlier) may have been the cause too.
  const builtWith = (part: OptionalPart) => failed[part] !== 'off' && (choices[part]?.on ?? true);
  const droppable = (part: OptionalPart) => options[part] === 'auto' && builtWith(part);
  const blamed = failedPart(output);
  const order: OptionalPart[] = blamed === 'torch' ? ['torch', 'cuda'] : ['cuda', 'torch'];
  for (const part of order) {
    if (droppable(part)) {
      const label = part === 'torch' ? 'LibTorch' : 'CUDA';
      const reason =
        blamed === part
          ? `the build failed on ${label}; retrying without it`
          : `the build failed (on no part in particular); retrying without ${label}`;
      return { ...failed, [part]: 'off', reason, dropped: { part, blamed: blamed === part } };
    }
  }
  if (options.torch !== 'on' && options.cuda !== 'on' && toolchain.nodeGyp.found) {
    return { backend: 'node-gyp', torch: 'off', cuda: 'off', reason: 'the CMake build failed; retrying with node-gyp (CPU kernels only)' };
  }
  return null;
}

/** The first attempt: CMake when it is usable, else node-gyp unless a CMake-only part is demanded. */
export function firstPlan(options: BuildOptions, toolchain: Toolchain): Plan | SdvpError {
  if (toolchain.cmake.usable && toolchain.cmakeJs.found) return { backend: 'cmake', torch: options.torch, cuda: options.cuda };
  const cmakeProblem = toolchain.cmake.found
    ? `CMake ${toolchain.cmake.version} is older than the ${'3.18'} the build needs`
    : 'CMake was not found';
  if (options.torch === 'on' || options.cuda === 'on') {
    return new SdvpError(
      'ERR_SDVP_USAGE',
      `LibTorch and the CUDA kernels need the CMake build, but ${cmakeProblem}. Fix: ${FIX.cmake}`,
      { fix: FIX.cmake },
    );
  }
  if (toolchain.nodeGyp.found) return { backend: 'node-gyp', torch: 'off', cuda: 'off', reason: `${cmakeProblem}; using node-gyp (CPU kernels only)` };
  return new SdvpError('ERR_SDVP_USAGE', `${cmakeProblem} and node-gyp is not available. Fix: ${FIX.cmake}`, { fix: FIX.cmake });
}

function describePart(
  part: OptionalPart,
  options: BuildOptions,
  toolchain: Toolchain,
  final: { backend: Backend | null; capabilities: AddonCapabilities | null; output: string },
  attempts: BuildAttempt[],
  trigger: BuildRecord['trigger'],
): PartOutcome {
  const caps = final.capabilities;
  const label = part === 'torch' ? 'LibTorch' : 'CUDA';
  const flag = part === 'torch' ? '--torch' : '--cuda';
  if (!caps) {
    if (failedPart(final.output) !== part) return { built: false, detail: 'no addon was built' };
    if (part === 'torch' && !toolchain.libtorch.found) {
      return { built: false, detail: 'find_package(Torch) found no LibTorch', fix: FIX.addTorch };
    }
    if (part === 'cuda' && !toolchain.nvcc.found) {
      return { built: false, detail: 'nvcc not found', fix: `install the CUDA toolkit (nvcc), then ${FIX.addCuda}` };
    }
    return {
      built: false,
      detail: `the build failed on ${label} (the error is below and in the log)`,
      fix: `${REBUILD} ${flag} off   (builds without it)`,
    };
  }
  if (part === 'cuda' && caps.cuda.built) {
    const devices = caps.cuda.devices > 0 ? `${caps.cuda.devices} GPU(s) visible` : 'no GPU visible now';
    return { built: true, detail: `architectures ${options.cudaArch}, nvcc ${toolchain.nvcc.version ?? '?'}; ${devices}` };
  }
  if (part === 'torch' && caps.torch.built) {
    return { built: true, detail: `LibTorch ${caps.torch.version ?? '?'}${caps.torch.cuda ? ' with CUDA' : ' (CPU)'}` };
  }
  if (options[part] === 'off') {
    const how = trigger === 'install' ? `SDVP_${part.toUpperCase()}=OFF at install` : `${flag} off`;
    return { built: false, detail: `turned off (${how})`, fix: `${REBUILD} ${flag} on` };
  }
  const dropped = attempts.find((attempt) => attempt.dropped?.part === part)?.dropped;
  if (dropped) {
    return {
      built: false,
      detail: dropped.blamed
        ? `found, but the build failed on ${label}, so it was left out (the error is below and in the log)`
        : `left out after a build with it failed on no part in particular (the error is below and in the log)`,
      fix: `${REBUILD} ${flag} on --verbose   (shows the error)`,
    };
  }
  if (final.backend === 'node-gyp') {
    return { built: false, detail: 'the node-gyp build has the CPU kernels only (CMake was not used)', fix: FIX.cmake };
  }
  if (part === 'cuda') {
    return {
      built: false,
      detail: 'nvcc not found (looked at CUDACXX, PATH and /usr/local/cuda/bin)',
      fix: `install the CUDA toolkit (nvcc), then ${FIX.addCuda}`,
    };
  }
  const elsewhere = toolchain.libtorchElsewhere[0];
  return {
    built: false,
    detail: options.torchPrefix ? `no usable LibTorch under ${options.torchPrefix}` : 'find_package(Torch) found no LibTorch',
    fix: elsewhere ? `${FIX.torchPrefix(elsewhere.prefix)}   (PyTorch ${elsewhere.version ?? ''}), or ${FIX.addTorch}` : FIX.addTorch,
  };
}

function describeCpu(toolchain: Toolchain, capabilities: AddonCapabilities | null): PartOutcome {
  if (capabilities) {
    const highway = toolchain.highway.version ? `Highway ${toolchain.highway.version}, ` : '';
    return { built: true, detail: `${highway}${capabilities.simdTarget} on this CPU, ${capabilities.cpuThreads} threads` };
  }
  if (!toolchain.compiler.found) return { built: false, detail: 'no C++ compiler found', fix: FIX.compiler };
  if (!toolchain.highway.found) return { built: false, detail: 'Highway (libhwy-dev) not found', fix: FIX.highway };
  return { built: false, detail: 'the build failed (see the log)', fix: `${REBUILD} --verbose   (shows the error)` };
}

function sdvpVersion(root: string): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** Builds the addon as `options` ask; never throws for a failed build (the record says what happened). */
export async function buildAddon(options: BuildOptions, run: BuildRunOptions): Promise<BuildRecord> {
  const root = run.root ?? packageRoot();
  const report = run.report ?? ((line: string) => process.stderr.write(`${line}\n`));
  if (options.tests && !fs.existsSync(path.join(root, 'native', 'kernels', 'tests'))) {
    throw new SdvpError('ERR_SDVP_USAGE', '--tests needs the C++ test sources, which only a source checkout has.', {
      field: '--tests',
    });
  }
  const toolchain = probeToolchain({ torchPrefix: options.torchPrefix });
  if (options.torchPrefix) torchDirFor(options.torchPrefix); // a bad prefix is a usage error, before any work
  const started = Date.now();
  const logPath = path.join(root, BUILD_LOG_FILE);
  const log = fs.createWriteStream(logPath);
  log.write(`sdvp ${sdvpVersion(root)} addon build (${run.trigger}): ${describeBuildOptions(options)}\n`);

  const attempts: BuildAttempt[] = [];
  let final: { backend: Backend | null; capabilities: AddonCapabilities | null; output: string } = {
    backend: null,
    capabilities: null,
    output: '',
  };
  const first = toolchain.compiler.found
    ? firstPlan(options, toolchain)
    : new SdvpError(
        'ERR_SDVP_USAGE',
        `no C++ compiler found (${process.env.CXX ? `CXX=${process.env.CXX}` : 'c++, g++ or clang++ on PATH'}). Fix: ${FIX.compiler}`,
        { fix: FIX.compiler },
      );
  let plan: Plan | null = first instanceof SdvpError ? null : first;
  if (first instanceof SdvpError) log.write(`${first.message}\n`);
  if (plan?.backend === 'cmake' && options.clean) fs.rmSync(path.join(root, CMAKE_OUT), { recursive: true, force: true });
  while (plan) {
    const withWhat = plan.backend === 'cmake' ? `LibTorch ${plan.torch}, CUDA ${plan.cuda}` : 'CPU kernels only';
    report(`sdvp: building the native addon with ${plan.backend === 'cmake' ? 'CMake' : 'node-gyp'} (${withWhat})${plan.reason ? `: ${plan.reason}` : ''}; log: ${logPath}`);
    const outcome = await runAttempt(root, plan, options, toolchain, log);
    attempts.push(outcome.attempt);
    final = { backend: plan.backend, capabilities: outcome.capabilities, output: outcome.output };
    if (outcome.attempt.ok) break;
    plan = run.fallback ? nextPlan(plan, outcome.output, options, toolchain) : null;
  }
  await new Promise<void>((resolve) => log.end(resolve));

  const ok = attempts.length > 0 && attempts[attempts.length - 1].ok;
  const addon = ok && final.backend ? addonPath(root, final.backend) : null;
  // The loader tries the CMake build first: after a node-gyp build an older CMake addon must not shadow it.
  if (ok && final.backend === 'node-gyp') fs.rmSync(addonPath(root, 'cmake'), { force: true });
  const outcomeOf = ok ? final : { ...final, capabilities: null };
  const record: BuildRecord = {
    sdvpVersion: sdvpVersion(root),
    finishedAt: new Date().toISOString(),
    trigger: run.trigger,
    options,
    ok,
    backend: ok ? final.backend : null,
    addon,
    capabilities: outcomeOf.capabilities,
    parts: {
      cpu: ok ? describeCpu(toolchain, final.capabilities) : describeCpu(toolchain, null),
      cuda: describePart('cuda', options, toolchain, outcomeOf, attempts, run.trigger),
      torch: describePart('torch', options, toolchain, outcomeOf, attempts, run.trigger),
    },
    attempts,
    seconds: (Date.now() - started) / 1000,
    log: logPath,
  };
  if (first instanceof SdvpError) record.parts.cpu = { built: false, detail: first.message.replace(/ Fix: .*$/, ''), fix: first.fix };
  writeBuildRecord(root, record);
  return record;
}

/** Whether the record misses a part the options demanded (`on`): the one case a build counts as failed. */
export function missingDemandedParts(record: BuildRecord): string[] {
  const missing: string[] = [];
  if (!record.ok) missing.push('the addon');
  if (record.options.torch === 'on' && !record.parts.torch.built) missing.push('LibTorch');
  if (record.options.cuda === 'on' && !record.parts.cuda.built) missing.push('CUDA');
  return missing;
}
