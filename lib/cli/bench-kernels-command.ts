// `sdvp bench kernels [--json] [--sizes RxV,...] [--runs N] [--threads N] [--out FILE] [--no-torch] [--no-ts-loop]`

import * as fs from 'node:fs';
import { formatKernelBenchmark, runKernelBenchmark } from '../bench/kernel-benchmark';
import { SdvpError } from '../errors/sdvp-error';
import { parseArgs } from './parse-args';

const HELP = `Usage: sdvp bench kernels [options]

Times forward + gradient of 0.5·CE + 0.5·τ²·KL (τ = 2, batchmean, fp32) with the fused kernel against
PyTorch eager (python3-torch), a plain TypeScript loop, and the memory floor of this machine.

Options:
  --sizes R×V,...   sizes as ROWSxVOCAB (default 256x32000,1024x32000,512x128256)
  --runs N          timed runs of the kernel per size (default 9; baselines run 3 times)
  --threads N       CPU threads (default: every core)
  --json            print the report as JSON instead of a table
  --out FILE        also write the JSON report to FILE
  --no-torch        skip the PyTorch baseline
  --no-ts-loop      skip the TypeScript-loop baseline`;

function parseSizes(text: string): Array<[number, number]> {
  return text.split(',').map((part) => {
    const match = /^(\d+)[x×](\d+)$/.exec(part.trim());
    if (!match) {
      throw new SdvpError(
        'ERR_SDVP_USAGE',
        `--sizes takes ROWSxVOCAB pairs separated by commas, but received '${part}'.`,
        {
          field: '--sizes',
        },
      );
    }
    return [Number(match[1]), Number(match[2])];
  });
}

export async function benchKernelsCommand(argv: string[]): Promise<number> {
  const args = parseArgs(argv, {
    flags: ['json', 'no-torch', 'no-ts-loop', 'help'],
    values: ['sizes', 'runs', 'threads', 'out'],
  });
  if (args.flags.has('help')) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  if (args.positionals.length > 0) {
    throw new SdvpError(
      'ERR_SDVP_USAGE',
      `sdvp bench kernels takes no positional arguments (received '${args.positionals[0]}').`,
    );
  }
  const json = args.flags.has('json');
  const report = runKernelBenchmark({
    sizes: args.values.sizes ? parseSizes(args.values.sizes) : undefined,
    runs: args.values.runs ? args.integer('runs', 1, 1000) : undefined,
    threads: args.values.threads ? args.integer('threads', 1, 1024) : undefined,
    torch: !args.flags.has('no-torch'),
    tsLoop: !args.flags.has('no-ts-loop'),
    log: json ? undefined : (line) => process.stderr.write(`${line}\n`),
  });
  const text = JSON.stringify(report, null, 2);
  if (args.values.out) fs.writeFileSync(args.values.out, `${text}\n`);
  process.stdout.write(json ? `${text}\n` : `${formatKernelBenchmark(report)}\n`);
  return 0;
}
