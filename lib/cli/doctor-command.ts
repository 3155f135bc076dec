// `sdvp doctor`: prints what the machine has for sdvp, what the loaded addon has, and the commands that
// add what is missing. Exit code 1 when the addon does not load.

import * as path from 'node:path';
import { type Diagnosis, diagnose } from '../build/doctor';
import type { Tool } from '../build/toolchain';
import { MIN_CMAKE_VERSION } from '../build/toolchain';
import { parseArgs } from './parse-args';

const USAGE = `Usage: sdvp doctor [--json]

Prints what this machine offers sdvp (Node, C++ compiler, make/ninja, CMake, Highway, LibTorch, nvcc,
GPUs, cmake-js, node-gyp), what the loaded native addon was built with, the last build's record, and
the exact commands that add what is missing. The exit code is 1 when the addon does not load.

Options:
  --json      print the diagnosis as JSON
  -h, --help  show this help`;

function row(label: string, text: string): string {
  return `  ${label.padEnd(14)}${text}`;
}

function toolText(tool: Tool, missingText: string): string {
  if (!tool.found) return missingText;
  return [tool.version ?? 'version unknown', tool.path].filter(Boolean).join('  ');
}

export function formatDiagnosis(diagnosis: Diagnosis): string {
  const { toolchain: t, addon, lastBuild, todo } = diagnosis;
  const lines = [`sdvp ${diagnosis.sdvpVersion}  ${diagnosis.packageRoot}`, '', 'Machine'];
  lines.push(
    row(
      'Node',
      `${t.node.version}  (N-API ${t.node.napi}, ABI ${t.node.abi}; headers ${t.node.headers ?? 'not installed: node-gyp downloads them'})`,
    ),
    row('C++ compiler', toolText(t.compiler, 'not found')),
    row(
      'make / ninja',
      `${t.make.found ? `make ${t.make.version ?? ''}`.trim() : 'no make'} / ${t.ninja.found ? `ninja ${t.ninja.version ?? ''}`.trim() : 'no ninja'}`,
    ),
    row(
      'CMake',
      t.cmake.found && !t.cmake.usable
        ? `${toolText(t.cmake, '')}  (older than ${MIN_CMAKE_VERSION})`
        : toolText(t.cmake, 'not found'),
    ),
    row('Highway', toolText(t.highway, 'not found (libhwy-dev)')),
    row('LibTorch', toolText(t.libtorch, 'not found by find_package(Torch) (libtorch-dev)')),
  );
  for (const other of t.libtorchElsewhere) {
    lines.push(row('', `also PyTorch's LibTorch ${other.version ?? ''} at ${other.prefix} (--torch-prefix)`));
  }
  const gpus = t.gpus.devices.map(
    (gpu) => `${gpu.name}${gpu.computeCapability ? ` (sm ${gpu.computeCapability})` : ''}`,
  );
  lines.push(
    row('nvcc', toolText(t.nvcc, 'not found (CUDACXX, PATH, /usr/local/cuda/bin)')),
    row(
      'GPUs',
      gpus.length > 0
        ? `${gpus.join(', ')}  (from ${t.gpus.source})`
        : 'none visible (no nvidia-smi or /proc/driver/nvidia)',
    ),
    row('cmake-js', toolText(t.cmakeJs, 'not installed (a dependency of sdvp: reinstall sdvp)')),
    row('node-gyp', toolText(t.nodeGyp, 'not found (npm provides it to install scripts and npx)')),
    '',
  );
  if (addon.loaded && addon.capabilities) {
    const caps = addon.capabilities;
    const where = addon.path
      ? path.relative(diagnosis.packageRoot, addon.path) || addon.path
      : 'a module passed to loadNative';
    lines.push(`Addon  ${where} (${caps.buildSystem})`);
    lines.push(row('CPU kernels', `${caps.simdTarget} on this CPU, ${caps.cpuThreads} threads`));
    lines.push(
      row(
        'CUDA kernels',
        caps.cuda.built
          ? `built (CUDA runtime ${caps.cuda.runtimeVersion}, ${caps.cuda.devices} device(s))`
          : 'not built',
      ),
    );
    lines.push(
      row(
        'LibTorch',
        caps.torch.built
          ? `built (${caps.torch.version}${caps.torch.cuda ? ', CUDA' : ', CPU'})`
          : 'not built',
      ),
    );
  } else {
    lines.push('Addon  does not load:');
    for (const line of (addon.error ?? '').split('\n')) lines.push(`  ${line}`);
  }
  if (lastBuild) {
    const status = lastBuild.ok ? `${lastBuild.backend} build` : 'failed build';
    lines.push(
      row(
        'last build',
        `${lastBuild.finishedAt} (${lastBuild.trigger}, ${status}, ${Math.round(lastBuild.seconds)} s), log ${lastBuild.log}`,
      ),
    );
  } else {
    lines.push(
      row('last build', 'none recorded (the install step was skipped, or the addon was built another way)'),
    );
  }
  lines.push('', 'To do');
  if (todo.length === 0) lines.push('  nothing: the addon has everything this machine offers.');
  for (const item of todo) {
    lines.push(`  - ${item.what}`);
    if (item.command) lines.push(`      ${item.command}`);
  }
  return lines.join('\n');
}

export async function doctorCommand(argv: string[]): Promise<number> {
  const args = parseArgs(argv, { flags: ['json', 'help', 'h'], values: [] });
  if (args.flags.has('help') || args.flags.has('h')) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const diagnosis = diagnose();
  process.stdout.write(
    args.flags.has('json') ? `${JSON.stringify(diagnosis, null, 2)}\n` : `${formatDiagnosis(diagnosis)}\n`,
  );
  return diagnosis.addon.loaded ? 0 : 1;
}
