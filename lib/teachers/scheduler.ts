// The teacher scheduler: dedupes sub-task instances by content hash, assigns each to the teachers that
// cover it, skips what the store already holds, batches per teacher, and runs the batches with a global
// concurrency bound (and each teacher's own) in priority order, committing every batch as it lands.
// Library first: `labelInstances`; the CLI (`sdvp teachers label`) is a shell over it.

import { SdvpError } from '../errors/sdvp-error';
import { type SubTaskInstance, dedupeSubTaskInstances } from '../program/sub-tasks';
import type { LabelStore } from './label-store';
import type { ImageSource, Teacher } from './teacher';

export interface TeacherTally {
  /** Instances this teacher covers (after dedupe). */
  covered: number;
  /** Already in the store: not labelled again. */
  reused: number;
  /** Labelled and committed by this call. */
  labelled: number;
  /** In batches that failed. */
  failed: number;
}

export interface LabelSummary {
  /** Distinct instances given. */
  instances: number;
  /** Distinct instances no teacher covers (the student keeps what it has for those). */
  uncovered: number;
  /** Uncovered instances per module. */
  uncoveredByModule: Record<string, number>;
  teachers: Record<string, TeacherTally>;
  seconds: number;
}

export interface LabelProgress {
  teacher: string;
  /** Instances done (labelled or reused) over all teachers, and the total to do. */
  done: number;
  total: number;
  labelled: number;
}

export interface LabelOptions {
  store: LabelStore;
  images: ImageSource;
  signal?: AbortSignal;
  onProgress?: (progress: LabelProgress) => void;
  /** Batches in flight at once over all teachers. Default 2. */
  concurrency?: number;
  /** Priority by module name: lower runs first (the distillation run orders modules by stage). Default 0. */
  priorities?: Readonly<Record<string, number>>;
  /** Where teachers' messages go (an external teacher's stderr). Default: dropped. */
  log?: (line: string) => void;
}

/** A failed labelling; `summary` tells what was committed before the failure. */
export class LabellingError extends SdvpError {
  readonly summary: LabelSummary;

  constructor(cause: unknown, summary: LabelSummary) {
    const inner = cause instanceof SdvpError ? cause : undefined;
    super(inner?.code ?? 'ERR_SDVP_TEACHER', inner?.message ?? String(cause), { cause, field: inner?.field });
    this.summary = summary;
  }
}

interface Batch {
  teacher: Teacher;
  instances: SubTaskInstance[];
  priority: number;
  order: number;
}

/** Labels every instance some teacher covers and the store lacks; resolves to a summary. */
export async function labelInstances(
  instances: Iterable<SubTaskInstance>,
  teachers: readonly Teacher[],
  options: LabelOptions,
): Promise<LabelSummary> {
  const started = Date.now();
  const concurrency = options.concurrency ?? 2;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new SdvpError(
      'ERR_SDVP_RANGE',
      `concurrency must be a positive integer, but received ${concurrency}.`,
      { field: 'concurrency' },
    );
  }
  const ids = new Set<string>();
  for (const teacher of teachers) {
    if (ids.has(teacher.identity.id))
      throw new SdvpError('ERR_SDVP_CONFIG', `Teacher id '${teacher.identity.id}' is given twice.`);
    ids.add(teacher.identity.id);
  }
  const { unique } = dedupeSubTaskInstances(instances);
  const summary: LabelSummary = {
    instances: unique.length,
    uncovered: 0,
    uncoveredByModule: {},
    teachers: {},
    seconds: 0,
  };
  const perTeacher = new Map<Teacher, SubTaskInstance[]>(teachers.map((teacher) => [teacher, []]));
  for (const instance of unique) {
    let covered = false;
    for (const teacher of teachers) {
      if (teacher.covers(instance)) {
        perTeacher.get(teacher)!.push(instance);
        covered = true;
      }
    }
    if (!covered) {
      summary.uncovered++;
      summary.uncoveredByModule[instance.module] = (summary.uncoveredByModule[instance.module] ?? 0) + 1;
    }
  }

  const batches: Batch[] = [];
  let total = 0;
  let done = 0;
  for (const [teacher, covered] of perTeacher) {
    options.store.registerTeacher(teacher.identity);
    const present = options.store.labelledHashes(teacher.identity.id, teacher.identity.version);
    const missing = covered.filter((instance) => !present.has(instance.hash));
    const tally: TeacherTally = {
      covered: covered.length,
      reused: covered.length - missing.length,
      labelled: 0,
      failed: 0,
    };
    summary.teachers[teacher.identity.id] = tally;
    total += covered.length;
    done += tally.reused;
    const priority = options.priorities?.[teacher.identity.module] ?? 0;
    for (let start = 0; start < missing.length; start += teacher.batchSize) {
      batches.push({
        teacher,
        instances: missing.slice(start, start + teacher.batchSize),
        priority,
        order: batches.length,
      });
    }
  }
  batches.sort((a, b) => a.priority - b.priority || a.order - b.order);
  options.onProgress?.({ teacher: '', done, total, labelled: 0 });

  const log = options.log ?? (() => {});
  const inFlight = new Map<Teacher, number>();
  let running = 0;
  let failure: unknown;
  let labelledTotal = 0;
  await new Promise<void>((resolve) => {
    const pump = () => {
      if (failure !== undefined || options.signal?.aborted) {
        if (failure === undefined) failure = new SdvpError('ERR_SDVP_ABORTED', 'Labelling was aborted.');
        if (running === 0) resolve();
        return;
      }
      while (running < concurrency) {
        const index = batches.findIndex(
          (batch) => (inFlight.get(batch.teacher) ?? 0) < batch.teacher.maxInFlight,
        );
        if (index < 0) break;
        const [batch] = batches.splice(index, 1);
        running++;
        inFlight.set(batch.teacher, (inFlight.get(batch.teacher) ?? 0) + 1);
        void runBatch(batch).finally(() => {
          running--;
          inFlight.set(batch.teacher, inFlight.get(batch.teacher)! - 1);
          pump();
        });
      }
      if (running === 0 && batches.length === 0) resolve();
    };
    const runBatch = async (batch: Batch) => {
      const tally = summary.teachers[batch.teacher.identity.id];
      try {
        const outputs = await batch.teacher.label(batch.instances, {
          images: options.images,
          signal: options.signal,
          log,
        });
        if (outputs.length !== batch.instances.length) {
          throw new SdvpError(
            'ERR_SDVP_TEACHER',
            `Teacher '${batch.teacher.identity.id}' returned ${outputs.length} outputs for ${batch.instances.length} instances.`,
          );
        }
        options.store.commit(
          batch.teacher.identity,
          batch.instances.map((instance, i) => ({ instance, output: outputs[i] })),
        );
        tally.labelled += batch.instances.length;
        labelledTotal += batch.instances.length;
        done += batch.instances.length;
        options.onProgress?.({ teacher: batch.teacher.identity.id, done, total, labelled: labelledTotal });
      } catch (error) {
        tally.failed += batch.instances.length;
        if (failure === undefined) failure = error;
      }
    };
    pump();
  });
  summary.seconds = (Date.now() - started) / 1000;
  if (failure !== undefined) {
    for (const batch of batches) summary.teachers[batch.teacher.identity.id].failed += batch.instances.length;
    throw new LabellingError(failure, summary);
  }
  return summary;
}
