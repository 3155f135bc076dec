// `sdvp distill`: a stepwise distillation run from a config file, or the continuation of a stopped one.

import { join } from 'node:path';
import { SdvpError } from '../errors/sdvp-error';
import { loadRunConfig } from '../run/config';
import { distill } from '../run/distill';
import { parseCommandArgs, usageError } from './command-args';
import { createProgress } from './progress';

const USAGE = `Usage: sdvp distill --config FILE [--json]
       sdvp distill --resume DIR [--json]

Runs SDVP as the config says (docs/distill.md lists every field): the target programs are executed with
the student, their sub-task instances labelled by the teachers into the run's label store, and the
student distilled stage by stage, with checkpoints, evaluation and metrics in the run folder.
Ctrl-C checkpoints and stops; --resume DIR continues to the result an uninterrupted run reaches.

Options:
  --config FILE   the run's config (JSON)
  --resume DIR    continue the run in DIR (its config.json is used)
  --json          print the final state as JSON
  -h, --help      show this help`;

export async function distillCommand(argv: string[]): Promise<number> {
  const args = parseCommandArgs(argv, {
    config: { type: 'string' },
    resume: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (args === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const resumeDir = args.string('resume');
  const configFile = args.string('config');
  if (!resumeDir === !configFile) throw usageError('Give either --config FILE or --resume DIR.');
  const config = loadRunConfig(resumeDir ? join(resumeDir, 'config.json') : configFile!);
  if (resumeDir) config.run = join(resumeDir);
  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts > 1) process.exit(130);
    process.stderr.write(
      '\nsdvp: stopping after this step (checkpointing); press Ctrl-C again to quit at once\n',
    );
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  const progress = createProgress();
  let current = '';
  try {
    const result = await distill(config, {
      resume: resumeDir !== undefined,
      signal: controller.signal,
      log: (line) => {
        progress.stop();
        current = '';
        process.stderr.write(`${line}\n`);
      },
      onProgress: (event) => {
        const label = `${event.phase}${event.stage ? ` ${event.stage}` : ''}`;
        if (label !== current) {
          progress.stop();
          progress.start(
            label,
            event.total,
            event.phase === 'train' ? 'steps' : event.phase === 'label' ? 'instances' : 'programs',
          );
          current = label;
        }
        const note =
          event.loss !== undefined
            ? `loss ${event.loss.toFixed(3)}, ${event.samplesPerSecond?.toFixed(0)} samples/s`
            : '';
        progress.update(event.done, note);
      },
    });
    progress.stop();
    if (args.flag('json')) process.stdout.write(`${JSON.stringify(result.state)}\n`);
    else {
      const final = result.state.final!;
      const tasks = Object.entries(final.tasks)
        .map(([task, accuracy]) => `${task} ${(accuracy * 100).toFixed(1)}%`)
        .join(', ');
      process.stdout.write(`run ${result.run} done: ${tasks}; student ${result.checkpoint}\n`);
    }
    return 0;
  } catch (error) {
    progress.stop();
    if (error instanceof SdvpError && error.code === 'ERR_SDVP_ABORTED') {
      process.stderr.write(`sdvp: ${error.message}\n`);
      return 130;
    }
    throw error;
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}
