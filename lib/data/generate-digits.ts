// `sdvp data digits`: builds the digit-scene benchmark — scenes from real MNIST digits split by sample,
// questions with VisProg programs for three tasks, ground-truth sub-answers from the oracle modules — and
// writes it atomically as PNG images and JSON Lines. The same seed gives byte-identical files.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { SdvpError } from '../errors/sdvp-error';
import { viperInputs, viperModulesFromVisProg, visprogModuleOf } from '../program/framework-bridge';
import { type Box, type RasterImage, boxInSource, createImage } from '../program/image';
import { VisProgInterpreter } from '../program/interpreter';
import type { ProgramTrace } from '../program/trace';
import { ViperInterpreter } from '../program/viper-interpreter';
import {
  DATASET_FORMAT,
  DATASET_VERSION,
  type DatasetManifest,
  type SubAnswer,
  type TaskRecord,
  toJsonLines,
} from './dataset-format';
import { type MnistDigits, SPLIT_NAMES, type SplitName, loadMnistDigits, splitMnist } from './mnist-digits';
import { oracleModules } from './oracle-modules';
import { Random } from './random';
import { type Scene, renderScene } from './scene';
import { DEFAULT_LAYOUT, sampleScene } from './scene-layout';
import { TASK_NAMES, type TaskName, draftTask, taskInputs } from './task-templates';

export interface DigitBenchmarkOptions {
  /** Output folder; must not exist or be empty unless `force`. */
  out: string;
  /** Scenes in all (70% train, 10% val, 20% test). Default 3000. */
  scenes?: number;
  seed?: number;
  /** Canvas side. Default 64. */
  imageSize?: number;
  /** Replace an existing dataset folder. */
  force?: boolean;
  onProgress?: (event: { phase: string; done: number; total: number }) => void;
}

export const SCENE_SPLIT_FRACTIONS: Readonly<Record<SplitName, number>> = { train: 0.7, val: 0.1, test: 0.2 };

interface SplitScenes {
  scenes: Scene[];
  paths: string[];
  images: RasterImage[];
  png: Buffer[];
}

function sdvpVersion(): string {
  return (require('../../../package.json') as { version: string }).version;
}

async function encodePng(pixels: Uint8Array, size: number): Promise<Buffer> {
  const sharp = require('sharp') as typeof import('sharp');
  return sharp(Buffer.from(pixels.buffer, pixels.byteOffset, pixels.length), {
    raw: { width: size, height: size, channels: 3 },
  })
    .png({ compressionLevel: 9, adaptiveFiltering: false, palette: false })
    .toBuffer();
}

async function buildScenes(
  split: SplitName,
  count: number,
  pool: number[],
  digits: MnistDigits,
  random: Random,
  imageSize: number,
): Promise<SplitScenes> {
  const result: SplitScenes = { scenes: [], paths: [], images: [], png: [] };
  const layout = { ...DEFAULT_LAYOUT, size: imageSize };
  for (let i = 0; i < count; i++) {
    const scene = sampleScene(random, pool, digits, layout);
    const pixels = renderScene(scene, digits);
    const png = await encodePng(pixels, imageSize);
    const path = `images/${split}/${String(i).padStart(6, '0')}.png`;
    const digest = createHash('sha256').update(png).digest('hex').slice(0, 16);
    result.scenes.push(scene);
    result.paths.push(path);
    result.png.push(png);
    result.images.push(createImage(imageSize, imageSize, 3, pixels, `${path}#${digest}`));
  }
  return result;
}

const TEXT_ARGUMENT: Readonly<Record<string, string>> = {
  LOC: 'object',
  VQA: 'question',
  find: 'object_name',
  simple_query: 'question',
};

/** The grounding and VQA steps of an oracle run (either framework), as sub-answers in the input images' pixels. */
export function subAnswersOf(
  trace: ProgramTrace,
  inputs: Readonly<Record<string, RasterImage>>,
): SubAnswer[] {
  const nameOf = new Map(Object.entries(inputs).map(([name, image]) => [image.ref, name]));
  const answers: SubAnswer[] = [];
  for (const step of trace.steps) {
    const argument = TEXT_ARGUMENT[step.module];
    if (!step.moduleCalled || argument === undefined || step.error !== null) continue;
    const image = step.inputs.image as RasterImage;
    const input = nameOf.get(image.ref ?? image.root?.ref);
    if (input === undefined || step.line === null) continue;
    const text = step.inputs[argument] as string;
    const answer: SubAnswer = {
      line: step.line,
      module: step.module,
      input,
      box: image.region ? [...image.region] : null,
      text,
    };
    if (visprogModuleOf(step.module) === 'VQA') answer.answer = String(step.value);
    else answer.boxes = (step.value as Box[]).map((box) => [...boxInSource(image, box)]);
    answers.push(answer);
  }
  return answers;
}

function normalizeAnswer(value: unknown): string {
  if (value === true) return 'yes';
  if (value === false) return 'no';
  return String(value);
}

/** Builds the benchmark in memory, then writes it to `out` through a temporary folder and a rename. */
export async function generateDigitBenchmark(options: DigitBenchmarkOptions): Promise<DatasetManifest> {
  const total = options.scenes ?? 3000;
  const seed = options.seed ?? 0;
  const imageSize = options.imageSize ?? 64;
  if (!Number.isSafeInteger(total) || total < 10 || total > 1_000_000) {
    throw new SdvpError(
      'ERR_SDVP_RANGE',
      `scenes must be an integer in [10, 1000000], but received ${total}.`,
      { field: 'scenes' },
    );
  }
  if (!Number.isSafeInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new SdvpError(
      'ERR_SDVP_RANGE',
      `seed must be an integer in [0, 4294967295], but received ${seed}.`,
      { field: 'seed' },
    );
  }
  if (!Number.isSafeInteger(imageSize) || imageSize < 32 || imageSize > 1024) {
    throw new SdvpError(
      'ERR_SDVP_RANGE',
      `imageSize must be an integer in [32, 1024], but received ${imageSize}.`,
      {
        field: 'imageSize',
      },
    );
  }
  const out = resolve(options.out);
  if (existsSync(out) && readdirSync(out).length > 0 && !options.force) {
    throw new SdvpError(
      'ERR_SDVP_IO',
      `${out} exists and is not empty; pass force (--force) to replace it.`,
      { field: 'out' },
    );
  }
  const progress = options.onProgress ?? (() => {});
  const digits = loadMnistDigits();
  const split = splitMnist(digits, seed);
  const root = new Random(seed);

  const splits = {} as Record<SplitName, SplitScenes>;
  for (const name of SPLIT_NAMES) {
    const count = Math.max(2, Math.round(total * SCENE_SPLIT_FRACTIONS[name]));
    progress({ phase: `scenes ${name}`, done: 0, total: count });
    splits[name] = await buildScenes(
      name,
      count,
      split[name],
      digits,
      root.fork(`scenes-${name}`),
      imageSize,
    );
    progress({ phase: `scenes ${name}`, done: count, total: count });
  }

  const lookup = new Map<string, Scene>();
  for (const name of SPLIT_NAMES)
    splits[name].images.forEach((image, i) => lookup.set(image.ref!, splits[name].scenes[i]));
  const oracle = oracleModules((ref) => lookup.get(ref));
  const interpreter = new VisProgInterpreter({ modules: oracle });
  const viperInterpreter = new ViperInterpreter({ modules: viperModulesFromVisProg(oracle) });

  const files = new Map<string, string | Buffer>();
  const manifest: DatasetManifest = {
    format: DATASET_FORMAT,
    version: DATASET_VERSION,
    tasks: {},
    scenes: {},
    generator: { name: 'digits', seed, scenes: total, imageSize, sdvpVersion: sdvpVersion() },
    counts: {},
  };
  for (const task of TASK_NAMES) {
    manifest.tasks[task] = {};
    manifest.counts![task] = {};
    for (const name of SPLIT_NAMES) {
      const records = await buildRecords(
        task,
        name,
        splits[name],
        interpreter,
        viperInterpreter,
        root.fork(`${task}-${name}`),
      );
      const file = `${task}/${name}.jsonl`;
      files.set(file, toJsonLines(records));
      manifest.tasks[task][name] = file;
      manifest.counts![task][name] = records.length;
      progress({ phase: `${task} ${name}`, done: records.length, total: records.length });
    }
  }
  for (const name of SPLIT_NAMES) {
    const { scenes, paths, png } = splits[name];
    files.set(`scenes/${name}.jsonl`, toJsonLines(scenes.map((scene, i) => ({ image: paths[i], ...scene }))));
    manifest.scenes![name] = `scenes/${name}.jsonl`;
    paths.forEach((path, i) => files.set(path, png[i]));
  }
  files.set('dataset.json', `${JSON.stringify(manifest, null, 2)}\n`);
  writeFolderAtomically(out, files, options.force ?? false);
  return manifest;
}

async function buildRecords(
  task: TaskName,
  split: SplitName,
  source: SplitScenes,
  interpreter: VisProgInterpreter,
  viperInterpreter: ViperInterpreter,
  random: Random,
): Promise<TaskRecord[]> {
  const records: TaskRecord[] = [];
  const count = source.scenes.length;
  for (let i = 0; i < count; i++) {
    const indices = taskInputs(task).length === 2 ? [i, (i + random.int(1, count - 1)) % count] : [i];
    const names = taskInputs(task);
    const scenes = Object.fromEntries(names.map((name, k) => [name, source.scenes[indices[k]]]));
    const draft = draftTask(task, scenes, random);
    if (!draft) continue;
    const inputs = Object.fromEntries(names.map((name, k) => [name, source.images[indices[k]]]));
    const id = `${task}-${split}-${String(i).padStart(6, '0')}`;
    const trace = await interpreter.run(draft.program, inputs, { programId: id });
    const viperTrace = await viperInterpreter.run(draft.viperProgram, viperInputs(inputs), { programId: id });
    for (const [framework, run] of [
      ['VisProg', trace],
      ['ViperGPT', viperTrace],
    ] as const) {
      const oracleAnswer = run.ok ? normalizeAnswer(run.result) : `error: ${run.error?.message}`;
      if (oracleAnswer !== draft.answer) {
        throw new SdvpError(
          'ERR_SDVP_NATIVE',
          `Internal error: template '${draft.template}' and the oracle's ${framework} run disagree on ${id} (${draft.answer} vs ${oracleAnswer}).`,
        );
      }
    }
    records.push({
      id,
      task,
      template: draft.template,
      images: Object.fromEntries(names.map((name, k) => [name, source.paths[indices[k]]])),
      question: draft.question,
      program: draft.program,
      viperProgram: draft.viperProgram,
      answer: draft.answer,
      subAnswers: subAnswersOf(trace, inputs),
      viperSubAnswers: subAnswersOf(viperTrace, inputs),
    });
  }
  return records;
}

/** Writes every file under a temporary sibling folder, then renames it into place (replacing `out` if `force`). */
export function writeFolderAtomically(
  out: string,
  files: Map<string, string | Buffer>,
  force: boolean,
): void {
  const temporary = join(dirname(out), `.${basename(out)}.partial-${process.pid}-${Date.now()}`);
  try {
    for (const [path, content] of files) {
      const target = join(temporary, path);
      mkdirSync(dirname(target), { recursive: true });
      writeFileSync(target, content);
    }
    if (existsSync(out)) {
      if (!force && readdirSync(out).length > 0)
        throw new SdvpError('ERR_SDVP_IO', `${out} appeared while writing.`);
      const old = `${temporary}.old`;
      renameSync(out, old);
      renameSync(temporary, out);
      rmSync(old, { recursive: true, force: true });
    } else {
      mkdirSync(dirname(out), { recursive: true });
      renameSync(temporary, out);
    }
  } catch (error) {
    rmSync(temporary, { recursive: true, force: true });
    if (error instanceof SdvpError) throw error;
    throw new SdvpError('ERR_SDVP_IO', `Cannot write ${out}: ${(error as Error).message}`, {
      field: 'out',
      cause: error,
    });
  }
}

/** Normalises a program result for comparison with a record's answer (booleans are yes/no). */
export { normalizeAnswer };
