// Evaluation of a system (any set of module implementations: the student, the teachers, the oracle): end-to-end
// accuracy per task (the interpreter running every program), and sub-module accuracy against the records'
// ground-truth sub-answers, each module given exactly the input it gets when every step before it is right.
// VQA: the answer; LOC: right when its boxes match the true boxes one to one at IoU ≥ 0.5 (as many, none extra).

import type { Dataset } from '../data/dataset';
import type { SubAnswer, TaskRecord } from '../data/dataset-format';
import { accuracyOf, runPrograms } from '../data/run-programs';
import { matchedBoxes } from '../data/scene';
import { type Box, cropImage } from '../program/image';
import type { ModuleImplementation } from '../program/interpreter';
import type { Framework, Step } from '../program/step-graph';
import { shardRange } from './run-group';

export interface SubmoduleScore {
  correct: number;
  total: number;
  accuracy: number;
}

export interface Evaluation {
  /** End-to-end accuracy per task (fraction). */
  tasks: Record<string, number>;
  /** Programs per task, and how many of them were answered right. */
  counts: Record<string, number>;
  correct: Record<string, number>;
  /** Per module, over the sub-answers of every evaluated task. */
  submodules: Record<string, SubmoduleScore>;
  /** VQA confusion: truth → predicted → count. */
  confusion: Record<string, Record<string, number>>;
  seconds: number;
}

export interface EvaluateOptions {
  tasks: readonly string[];
  split: string;
  /** Which program of each record runs end to end (sub-modules are scored the same way for both). Default visprog. */
  framework?: Framework;
  /** Score sub-modules on these tasks' sub-answers (default: all evaluated tasks). */
  submoduleTasks?: readonly string[];
  concurrency?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
  /** Evaluate only part `index` of `count` contiguous parts of each task's records (a rank's share). */
  shard?: { index: number; count: number };
}

function relative(box: readonly number[], region: Box | null): Box {
  const [ox, oy] = region ?? [0, 0];
  return [box[0] - ox, box[1] - oy, box[2] - ox, box[3] - oy];
}

/** Sub-module accuracy of `modules` on the sub-answers of `records`. */
export async function evaluateSubmodules(
  dataset: Dataset,
  records: readonly TaskRecord[],
  modules: Readonly<Record<string, ModuleImplementation>>,
): Promise<Pick<Evaluation, 'submodules' | 'confusion'>> {
  const submodules: Record<string, SubmoduleScore> = {};
  const confusion: Record<string, Record<string, number>> = {};
  const jobs: Array<Promise<void>> = [];
  const score = (module: string, right: boolean) => {
    submodules[module] ??= { correct: 0, total: 0, accuracy: 0 };
    const entry = submodules[module];
    entry.total++;
    if (right) entry.correct++;
  };
  for (const record of records) {
    for (const sub of record.subAnswers ?? []) {
      const implementation = modules[sub.module];
      if (!implementation || (sub.answer === undefined && sub.boxes === undefined)) continue;
      jobs.push(scoreOne(dataset, record, sub, implementation, score, confusion));
    }
  }
  await Promise.all(jobs);
  for (const entry of Object.values(submodules))
    entry.accuracy = entry.total > 0 ? entry.correct / entry.total : 0;
  return { submodules, confusion };
}

/** The step a sub-answer's call stands for (a module scored alone is not inside a parsed program). */
function subAnswerStep(sub: SubAnswer): Step {
  return {
    id: -1,
    output: null,
    module: sub.module,
    args: {},
    receiver: null,
    deps: [],
    line: sub.line,
    column: 1,
    subTask: sub.module === 'LOC' ? 'grounding' : 'vqa',
    distillable: true,
    control: [],
    repeated: false,
  };
}

async function scoreOne(
  dataset: Dataset,
  record: TaskRecord,
  sub: SubAnswer,
  implementation: ModuleImplementation,
  score: (module: string, right: boolean) => void,
  confusion: Evaluation['confusion'],
): Promise<void> {
  const source = await dataset.image(record.images[sub.input]);
  const image = sub.box ? cropImage(source, sub.box as Box) : source;
  const argument = sub.module === 'LOC' ? 'object' : 'question';
  let value: unknown;
  try {
    value = await implementation(
      { image, [argument]: sub.text },
      { step: subAnswerStep(sub), programId: record.id },
    );
  } catch {
    score(sub.module, false);
    return;
  }
  if (sub.answer !== undefined) {
    const predicted = String(value);
    score(sub.module, predicted.toLowerCase() === sub.answer.toLowerCase());
    confusion[sub.answer] ??= {};
    const row = confusion[sub.answer];
    row[predicted] = (row[predicted] ?? 0) + 1;
    return;
  }
  const truth = sub.boxes!.map((box) => relative(box, (sub.box as Box | null) ?? null));
  const predicted = Array.isArray(value) ? (value as Box[]) : [];
  score(sub.module, predicted.length === truth.length && matchedBoxes(predicted, truth) === truth.length);
}

/** End-to-end and sub-module evaluation of one system on a split. */
export async function evaluateSystem(
  dataset: Dataset,
  modules: Readonly<Record<string, ModuleImplementation>>,
  options: EvaluateOptions,
): Promise<Evaluation> {
  const started = performance.now();
  const tasks: Record<string, number> = {};
  const counts: Record<string, number> = {};
  const correct: Record<string, number> = {};
  const shard = options.shard ?? { index: 0, count: 1 };
  const recordsOf = (task: string) => {
    const all = dataset.records(task, options.split);
    return all.slice(...shardRange(all.length, shard.index, shard.count));
  };
  const records = options.tasks.flatMap(recordsOf);
  let done = 0;
  for (const task of options.tasks) {
    const taskRecords = recordsOf(task);
    const runs = await runPrograms(dataset, taskRecords, modules, {
      framework: options.framework,
      concurrency: options.concurrency,
      signal: options.signal,
      onProgram: () => options.onProgress?.(++done, records.length),
    });
    tasks[task] = accuracyOf(runs);
    counts[task] = runs.length;
    correct[task] = runs.filter((run) => run.correct).length;
  }
  const subTasks = options.submoduleTasks ?? options.tasks;
  const { submodules, confusion } = await evaluateSubmodules(dataset, subTasks.flatMap(recordsOf), modules);
  return { tasks, counts, correct, submodules, confusion, seconds: (performance.now() - started) / 1000 };
}

/** Sub-module scores of disjoint parts of the records (the ranks' shares), as one evaluation of them all. */
export function combineSubmodules(
  parts: ReadonlyArray<Pick<Evaluation, 'submodules' | 'confusion'>>,
): Pick<Evaluation, 'submodules' | 'confusion'> {
  const submodules: Record<string, SubmoduleScore> = {};
  const confusion: Evaluation['confusion'] = {};
  for (const part of parts) {
    for (const [module, score] of Object.entries(part.submodules)) {
      submodules[module] ??= { correct: 0, total: 0, accuracy: 0 };
      submodules[module].correct += score.correct;
      submodules[module].total += score.total;
    }
    for (const [truth, row] of Object.entries(part.confusion)) {
      confusion[truth] ??= {};
      for (const [predicted, count] of Object.entries(row))
        confusion[truth][predicted] = (confusion[truth][predicted] ?? 0) + count;
    }
  }
  for (const entry of Object.values(submodules))
    entry.accuracy = entry.total > 0 ? entry.correct / entry.total : 0;
  return { submodules, confusion };
}

/** End-to-end evaluations of disjoint parts of the records, as one (its time: the slowest part's). */
export function combineEvaluations(parts: readonly Evaluation[]): Evaluation {
  const counts: Record<string, number> = {};
  const correct: Record<string, number> = {};
  for (const part of parts) {
    for (const [task, count] of Object.entries(part.counts)) {
      counts[task] = (counts[task] ?? 0) + count;
      correct[task] = (correct[task] ?? 0) + part.correct[task];
    }
  }
  const tasks = Object.fromEntries(
    Object.keys(counts).map((task) => [task, counts[task] === 0 ? 0 : correct[task] / counts[task]]),
  );
  return {
    tasks,
    counts,
    correct,
    ...combineSubmodules(parts),
    seconds: Math.max(...parts.map((part) => part.seconds)),
  };
}
