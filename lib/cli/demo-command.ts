// `sdvp demo`: the main job — SDVP end to end on the digit benchmark, with the results table at the end.

import { runDemo } from '../run/demo';
import { formatStages, formatTable } from '../run/report';
import { parseCommandArgs } from './command-args';
import { createProgress } from './progress';

const USAGE = `Usage: sdvp demo [--seed S] [--out DIR] [--scenes N] [--scale F]

Builds the digit-scene benchmark, trains the teachers, pretrains the generalist student, runs SDVP on
digits-qa and digits-pairs with the two ablations (no anti-forgetting; all modules at once), evaluates
every system on the three tasks and writes report.md, report.json and charts into DIR (default
sdvp-demo). Everything is cached in DIR: a second run reuses what is there.

  --seed S      seed of the benchmark, the models and the runs (default 0)
  --out DIR     output folder (default sdvp-demo)
  --scenes N    scenes in the benchmark (default 3000)
  --scale F     multiplies every training length (teachers, pretraining, stages); default 1, e.g. 0.1 for a
                quick smoke run whose figures mean little`;

export async function demoCommand(argv: string[]): Promise<number> {
  const args = parseCommandArgs(argv, {
    seed: { type: 'string' },
    out: { type: 'string' },
    scenes: { type: 'string' },
    scale: { type: 'string' },
  });
  if (args === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const progress = createProgress();
  const report = await runDemo({
    seed: args.integer('seed', 0, 0, 0xffffffff),
    out: args.string('out') ?? 'sdvp-demo',
    scenes: args.integer('scenes', 3000, 10, 1_000_000),
    scale: args.number('scale', 1, 0, 100),
    onPhase: (phase) => {
      progress.stop();
      process.stderr.write(`== ${phase}\n`);
      progress.start(phase, 0);
    },
    onProgress: (done, total, note) => {
      progress.update(done, note, total);
    },
    log: (line) => process.stderr.write(`${line}\n`),
  });
  progress.stop();
  process.stdout.write(
    `\n${formatTable(report)}\n\n${formatStages(report)}\n\nReport: ${report.out}/report.md (${report.seconds.toFixed(0)} s)\n`,
  );
  return 0;
}
