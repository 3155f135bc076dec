// Runs a dataset's programs — VisProg's, or the records' ViperGPT versions — with a set of module
// implementations (oracle, teachers, a student), many at a time so batched modules fill their batches, and
// collects their traces and sub-task instances.

import { SdvpError } from '../errors/sdvp-error';
import { viperInputs, viperModulesFromVisProg } from '../program/framework-bridge';
import { type ModuleImplementation, VisProgInterpreter } from '../program/interpreter';
import type { Framework } from '../program/step-graph';
import { type SubTaskInstance, subTaskInstances } from '../program/sub-tasks';
import type { ProgramTrace } from '../program/trace';
import { ViperInterpreter } from '../program/viper-interpreter';
import type { Dataset } from './dataset';
import type { TaskRecord } from './dataset-format';
import { normalizeAnswer } from './generate-digits';

export interface ProgramRun {
  record: TaskRecord;
  trace: ProgramTrace;
  /** The program's answer as text (booleans as yes/no), or null when the run failed. */
  answer: string | null;
  correct: boolean;
}

export interface RunProgramsOptions {
  /** Which program of each record runs: its VisProg program (default) or its ViperGPT program. */
  framework?: Framework;
  /** Programs in flight at once. Default 64. */
  concurrency?: number;
  signal?: AbortSignal;
  /** Called after each finished program. */
  onProgram?: (done: number, total: number) => void;
}

/** The source of a record's program in a framework, or an error saying the record has none. */
export function programOf(record: TaskRecord, framework: Framework): string {
  if (framework === (record.framework ?? 'visprog')) return record.program;
  if (framework === 'viper' && record.viperProgram !== undefined) return record.viperProgram;
  throw new SdvpError(
    'ERR_SDVP_ARG',
    `Record ${record.id} has no ${framework === 'viper' ? 'ViperGPT' : 'VisProg'} program.`,
    {
      field: framework === 'viper' ? 'viperProgram' : 'program',
    },
  );
}

/**
 * Runs one program of every record and scores its answer. `modules` are VisProg-style implementations by module
 * name (LOC, VQA...); ViperGPT programs get them as find and simple_query.
 */
export async function runPrograms(
  dataset: Dataset,
  records: readonly TaskRecord[],
  modules: Readonly<Record<string, ModuleImplementation>>,
  options: RunProgramsOptions = {},
): Promise<ProgramRun[]> {
  const framework = options.framework ?? 'visprog';
  const visprog = new VisProgInterpreter({ modules });
  const viper =
    framework === 'viper' ? new ViperInterpreter({ modules: viperModulesFromVisProg(modules) }) : undefined;
  const concurrency = options.concurrency ?? 64;
  const results = new Array<ProgramRun>(records.length);
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < records.length) {
      const index = next++;
      const record = records[index];
      const program = programOf(record, framework);
      const inputs = await dataset.inputs(record);
      const trace = viper
        ? await viper.run(program, viperInputs(inputs), { programId: record.id, signal: options.signal })
        : await visprog.run(program, inputs, { programId: record.id, signal: options.signal });
      const answer = trace.ok ? normalizeAnswer(trace.result) : null;
      results[index] = {
        record,
        trace,
        answer,
        correct: answer !== null && answer.toLowerCase() === record.answer.toLowerCase(),
      };
      options.onProgram?.(++done, records.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, records.length) }, worker));
  return results;
}

/** The sub-task instances of program runs, each image reference carrying the absolute path of its file. */
export function runInstances(dataset: Dataset, runs: readonly ProgramRun[]): SubTaskInstance[] {
  const instances: SubTaskInstance[] = [];
  for (const run of runs) {
    for (const instance of subTaskInstances(run.trace)) {
      if (instance.input.image) {
        (instance.input.image as { path?: string }).path = dataset.imagePath(instance.input.image.ref);
      }
      instances.push(instance);
    }
  }
  return instances;
}

/** Accuracy of program runs (fraction correct). */
export function accuracyOf(runs: readonly ProgramRun[]): number {
  return runs.length === 0 ? 0 : runs.filter((run) => run.correct).length / runs.length;
}
