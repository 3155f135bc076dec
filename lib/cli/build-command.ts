// `sdvp build`: rebuilds the native addon inside the installed package (CMake with CUDA and LibTorch as
// asked, else node-gyp) and prints what was built and why a part was left out.

import { buildAddon, missingDemandedParts } from '../build/build-addon';
import {
  type BuildOptions,
  buildOptionsFromEnv,
  parseCudaArch,
  parsePartSwitch,
  parseTorchPrefix,
} from '../build/build-options';
import { formatBuildSummary } from '../build/build-record';
import { SdvpError } from '../errors/sdvp-error';
import { packageRoot } from '../native/load-native';
import { parseArgs } from './parse-args';

const USAGE = `Usage: sdvp build [--torch auto|on|off] [--cuda auto|on|off] [--cuda-arch 90] [--torch-prefix DIR]
                  [--clean] [--verbose] [--json]

Rebuilds the native addon inside the installed sdvp package, the way the install step does: the CMake
build (cmake-js) with the LibTorch model runtime when find_package(Torch) finds it and the CUDA kernels
when nvcc is found (also at /usr/local/cuda/bin), else the node-gyp build of the CPU kernels. Prints what
was built and, for each part left out, why and the command that adds it. Run it from your project:
npx sdvp build.

Options (each overrides the SDVP_TORCH, SDVP_CUDA, SDVP_CUDA_ARCH, SDVP_TORCH_PREFIX variables):
  --torch MODE       LibTorch runtime: auto (when found, the default), on (fail without it), off
  --cuda MODE        CUDA kernels: auto (when nvcc is found, the default), on, off
  --cuda-arch LIST   CUDA architectures, e.g. 90 or 80,90, or native (default 90)
  --torch-prefix DIR a LibTorch install to use, e.g. PyTorch's:
                     "$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')"
  --clean            delete the CMake build folder first (forget every cached choice)
  --verbose          stream the compiler output (it always goes to sdvp-build.log)
  --tests            also build the C++ tests (source checkouts only)
  --json             print the build record as JSON instead of the summary
  -h, --help         show this help

The exit code is 1 when no addon was built, or a part asked for with 'on' is missing.`;

/** The build options `argv` asks for, starting from the SDVP_* variables in `env`; 'help' for --help. */
export function buildArguments(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): { options: BuildOptions; json: boolean } | 'help' {
  const args = parseArgs(argv, {
    flags: ['clean', 'verbose', 'tests', 'json', 'help', 'h'],
    values: ['torch', 'cuda', 'cuda-arch', 'torch-prefix'],
  });
  if (args.flags.has('help') || args.flags.has('h')) return 'help';
  if (args.positionals.length > 0) {
    throw new SdvpError(
      'ERR_SDVP_USAGE',
      `sdvp build takes no arguments, but received '${args.positionals.join(' ')}'.`,
      {
        field: 'argv',
      },
    );
  }
  const options = buildOptionsFromEnv(env);
  const { values } = args;
  if (values.torch !== undefined) options.torch = parsePartSwitch(values.torch, '--torch');
  if (values.cuda !== undefined) options.cuda = parsePartSwitch(values.cuda, '--cuda');
  if (values['cuda-arch'] !== undefined) options.cudaArch = parseCudaArch(values['cuda-arch'], '--cuda-arch');
  if (values['torch-prefix'] !== undefined)
    options.torchPrefix = parseTorchPrefix(values['torch-prefix'], '--torch-prefix');
  options.clean = args.flags.has('clean');
  options.verbose = options.verbose || args.flags.has('verbose');
  options.tests = args.flags.has('tests');
  return { options, json: args.flags.has('json') };
}

export async function buildCommand(argv: string[]): Promise<number> {
  const parsed = buildArguments(argv);
  if (parsed === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const root = packageRoot();
  const record = await buildAddon(parsed.options, { fallback: false, trigger: 'sdvp build', root });
  process.stdout.write(
    parsed.json ? `${JSON.stringify(record, null, 2)}\n` : `${formatBuildSummary(record, root)}\n`,
  );
  return missingDemandedParts(record).length > 0 ? 1 : 0;
}
