// `sdvp teachers train | label | export`: the built-in teachers, labelling instances into a label store, and
// reading the store back as JSON Lines.

import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { SdvpError } from '../errors/sdvp-error';
import { defaultThreads, setThreads } from '../models/torch-runtime';
import type { SubTaskInstance } from '../program/sub-tasks';
import { fileImageSource } from '../teachers/image-source';
import { LabelStore } from '../teachers/label-store';
import { loadTeacherRegistry, openTeachers, selectTeachers } from '../teachers/registry';
import { type LabelSummary, LabellingError, labelInstances } from '../teachers/scheduler';
import { trainBuiltinTeachers } from '../teachers/train-builtin-teachers';
import { parseCommandArgs, usageError } from './command-args';
import { createProgress } from './progress';

const USAGE = `Usage: sdvp teachers train --data DIR --out DIR [--seed S] [--classifier-steps N] [--detector-steps N]
       sdvp teachers label --instances FILE --teachers FILE --store FILE [--teacher ID]... [--concurrency N] [--json]
       sdvp teachers export --store FILE

train   trains the built-in teachers of the digit benchmark on its training split (a digit classifier for
        VQA, a digit detector for LOC) and writes them with a registry (teachers.json) and metrics.json.
label   labels the instances of a JSON Lines file (sdvp instances) with the registry's teachers into a
        label store (SQLite); labels already in the store are reused, so a killed run picks up where it was.
export  prints every label of a store as JSON Lines.`;

const instanceSchema = z.object({
  hash: z.string().min(1),
  framework: z.enum(['visprog', 'viper']).default('visprog'),
  module: z.string().min(1),
  subTask: z.string().min(1),
  input: z.object({
    image: z
      .object({
        ref: z.string(),
        box: z.array(z.number()).length(4).nullable().optional(),
        path: z.string().optional(),
      })
      .nullable(),
    text: z.string().nullable(),
    args: z.record(z.string(), z.unknown()).default({}),
  }),
  programId: z.string().default(''),
  stepId: z.number().nullable().default(null),
  line: z.number().nullable().default(null),
});

/** Reads an instances file; an error names the file, line and field. */
export function readInstances(file: string): SubTaskInstance[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new SdvpError('ERR_SDVP_IO', `Cannot read instances ${file}: ${(error as Error).message}`, {
      field: '--instances',
    });
  }
  return text.split('\n').flatMap((line, i) => {
    if (line.trim() === '') return [];
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw new SdvpError('ERR_SDVP_PARSE', `${file}:${i + 1} is not JSON.`, { field: `${file}:${i + 1}` });
    }
    const parsed = instanceSchema.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new SdvpError(
        'ERR_SDVP_PARSE',
        `${file}:${i + 1}: field '${issue.path.join('.')}': ${issue.message}.`,
        {
          field: `${file}:${i + 1}:${issue.path.join('.')}`,
        },
      );
    }
    return [parsed.data as unknown as SubTaskInstance];
  });
}

function summaryTable(summary: LabelSummary): string {
  const lines = ['teacher                labelled   reused   failed  covered'];
  for (const [id, tally] of Object.entries(summary.teachers)) {
    lines.push(
      `${id.padEnd(22)} ${String(tally.labelled).padStart(8)} ${String(tally.reused).padStart(8)} ${String(tally.failed).padStart(8)} ${String(tally.covered).padStart(8)}`,
    );
  }
  const uncovered = Object.entries(summary.uncoveredByModule)
    .map(([module, n]) => `${module} ${n}`)
    .join(', ');
  lines.push(
    `${summary.instances} distinct instances, ${summary.uncovered} covered by no teacher${uncovered ? ` (${uncovered})` : ''}, ${summary.seconds.toFixed(1)} s`,
  );
  return lines.join('\n');
}

async function label(argv: string[]): Promise<number> {
  const args = parseCommandArgs(argv, {
    instances: { type: 'string' },
    teachers: { type: 'string' },
    store: { type: 'string' },
    teacher: { type: 'string', multiple: true },
    concurrency: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (args === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const instances = readInstances(args.string('instances', true));
  const registry = loadTeacherRegistry(args.string('teachers', true));
  const entries = selectTeachers(registry, args.values.teacher as string[] | undefined);
  const paths = new Map<string, string>();
  for (const instance of instances) {
    const image = instance.input.image as { ref: string; path?: string } | null;
    if (image?.path) paths.set(image.ref, image.path);
  }
  const images = fileImageSource((ref) => {
    const path = paths.get(ref);
    if (!path)
      throw new SdvpError(
        'ERR_SDVP_IO',
        `No file is known for image ref ${ref} (the instances file gives no path).`,
        { field: ref },
      );
    return path;
  });
  const store = LabelStore.open(args.string('store', true));
  setThreads(defaultThreads());
  const teachers = await openTeachers(registry, entries);
  const progress = createProgress();
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.once('SIGINT', onSignal);
  let summary: LabelSummary;
  let code = 0;
  try {
    progress.start('labelling', 0, 'instances');
    let started = false;
    summary = await labelInstances(instances, teachers, {
      store,
      images,
      signal: controller.signal,
      concurrency: args.integer('concurrency', 2, 1, 64),
      log: (line) => process.stderr.write(`${line}\n`),
      onProgress: ({ done, total }) => {
        if (!started) {
          progress.start('labelling', total, 'instances');
          started = true;
        }
        progress.update(done);
      },
    });
  } catch (error) {
    if (!(error instanceof LabellingError)) throw error;
    summary = error.summary;
    progress.stop();
    process.stderr.write(
      `sdvp: ${error.message} [${error.code}]\nLabels committed before the failure are kept in ${store.path}.\n`,
    );
    code = 1;
  } finally {
    progress.stop();
    process.removeListener('SIGINT', onSignal);
    await Promise.all(teachers.map((teacher) => teacher.close()));
    store.close();
  }
  process.stdout.write(args.flag('json') ? `${JSON.stringify(summary)}\n` : `${summaryTable(summary)}\n`);
  return code;
}

async function exportLabels(argv: string[]): Promise<number> {
  const args = parseCommandArgs(argv, { store: { type: 'string' } });
  if (args === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const store = LabelStore.open(args.string('store', true), { readonly: true });
  try {
    for (const entry of store.entries()) {
      process.stdout.write(
        `${JSON.stringify({ teacher: entry.teacher, version: entry.version, hash: entry.hash, ...entry.output })}\n`,
      );
    }
  } finally {
    store.close();
  }
  return 0;
}

async function train(argv: string[]): Promise<number> {
  const args = parseCommandArgs(argv, {
    data: { type: 'string' },
    out: { type: 'string' },
    seed: { type: 'string' },
    'classifier-steps': { type: 'string' },
    'detector-steps': { type: 'string' },
  });
  if (args === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  setThreads(defaultThreads());
  const progress = createProgress();
  let current = '';
  const metrics = await trainBuiltinTeachers({
    data: args.string('data', true),
    out: args.string('out', true),
    seed: args.integer('seed', 0, 0, 0xffffffff),
    classifierSteps: args.integer('classifier-steps', 2400, 1, 1_000_000),
    detectorSteps: args.integer('detector-steps', 1500, 1, 1_000_000),
    onProgress: ({ teacher, step, steps, loss }) => {
      if (teacher !== current) {
        progress.stop();
        progress.start(`training ${teacher}`, steps, 'steps');
        current = teacher;
      }
      progress.update(step, `loss ${loss.toFixed(3)}`);
    },
  });
  progress.stop();
  const { classifier, detector } = metrics;
  process.stdout.write(
    `digit classifier (${classifier.id}, ${classifier.parameters} parameters): test accuracy ${(classifier.testAccuracy * 100).toFixed(2)}% on ${classifier.testDigits} held-out digits\n` +
      `digit detector (${detector.id}, ${detector.parameters} parameters): recall@IoU0.5 ${(detector.recallAny * 100).toFixed(1)}% (any digit), ` +
      `${(detector.recallByDigit * 100).toFixed(1)}% (one class), 'none' right ${(detector.absentAccuracy * 100).toFixed(1)}%, on ${detector.testScenes} test scenes\n` +
      `wrote ${args.string('out', true)}/teachers.json and metrics.json (${metrics.seconds.toFixed(0)} s)\n`,
  );
  return 0;
}

export async function teachersCommand(argv: string[]): Promise<number> {
  switch (argv[0]) {
    case 'train':
      return train(argv.slice(1));
    case 'label':
      return label(argv.slice(1));
    case 'export':
      return exportLabels(argv.slice(1));
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`);
      return 0;
    default:
      throw usageError(`sdvp teachers needs a subcommand: train, label or export.\n\n${USAGE}`);
  }
}
