// Validates a public DistillLossSpec and turns it into the flat spec the addon reads, with its outputs.
// Every check the native code relies on happens here, each failure an SdvpError naming the field.

import { SdvpError, argError, describeValue } from '../errors/sdvp-error';
import { optionalFiniteNumber } from '../errors/validators';
import type { NativeDistillLossSpec } from '../native/native-binding';
import type {
  DistillLossRowStats,
  DistillLossSpec,
  Divergence,
  LogitArray,
  Reduction,
  TopKMissingMass,
  TopKTeacher,
} from './distill-loss-types';

/** The option fields of the objective (everything but the logits, outputs and threads). */
export const OBJECTIVE_FIELDS: ReadonlySet<string> = new Set([
  'teacher',
  'labels',
  'ignoreIndex',
  'ceWeight',
  'kdWeight',
  'temperature',
  't2',
  'divergence',
  'jsdBeta',
  'labelSmoothing',
  'zLoss',
  'rowWeights',
  'reduction',
  'normalizer',
  'gradScale',
]);

const SPEC_FIELDS = new Set([
  ...OBJECTIVE_FIELDS,
  'student',
  'rows',
  'vocab',
  'dtype',
  'grad',
  'stats',
  'threads',
]);

const DIVERGENCES: Record<Divergence, 0 | 1 | 2> = { 'forward-kl': 0, 'reverse-kl': 1, jsd: 2 };
const REDUCTIONS: Record<Reduction, 0 | 1 | 2 | 3> = { mean: 0, sum: 1, batchmean: 2, none: 3 };
const MISSING: Record<TopKMissingMass, 0 | 1> = { renormalize: 0, tail: 1 };
const INT32_MAX = 2 ** 31 - 1;

/** The flat native spec plus the output buffers the caller will read back. */
export interface PreparedDistillLoss {
  native: NativeDistillLossSpec;
  grad?: LogitArray;
  rowLoss?: Float32Array;
  stats?: DistillLossRowStats;
}

/** What a caller outside lib/kernels (the torch runtime) needs: options without the logits. */
export type DistillObjectiveOptions = Omit<
  DistillLossSpec,
  'student' | 'rows' | 'vocab' | 'dtype' | 'grad' | 'threads'
>;

function requireInteger(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw argError(
      typeof value === 'number' ? 'ERR_SDVP_RANGE' : 'ERR_SDVP_ARG',
      field,
      `an integer in [${min}, ${max}]`,
      value,
    );
  }
  return value;
}

function optionalEnum<T extends string>(
  field: string,
  value: unknown,
  table: Record<T, number>,
  fallback: T,
): T {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !(value in table)) {
    const allowed = Object.keys(table)
      .map((key) => `'${key}'`)
      .join(', ');
    throw argError('ERR_SDVP_OPTION', field, `one of ${allowed}`, value);
  }
  return value as T;
}

function requireArray<T extends ArrayBufferView>(
  field: string,
  value: unknown,
  type: { new (length: number): T; name: string },
  length: number,
): T {
  if (!(value instanceof type)) throw argError('ERR_SDVP_ARG', field, `a ${type.name}`, value);
  const actual = (value as unknown as { length: number }).length;
  if (actual !== length) {
    throw argError('ERR_SDVP_SHAPE', field, `of length ${length}`, value);
  }
  return value;
}

function overlaps(a: ArrayBufferView, b: ArrayBufferView): boolean {
  if (a.buffer !== b.buffer) return false;
  return a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}

function isTopK(teacher: unknown): teacher is TopKTeacher {
  return typeof teacher === 'object' && teacher !== null && !ArrayBuffer.isView(teacher);
}

function validateTopK(
  teacher: TopKTeacher,
  rows: number,
  vocab: number,
  native: NativeDistillLossSpec,
): void {
  for (const key of Object.keys(teacher)) {
    if (!['indices', 'logprobs', 'k', 'missing'].includes(key)) {
      throw argError(
        'ERR_SDVP_ARG',
        `teacher.${key}`,
        'absent (a top-k teacher has indices, logprobs, k, missing)',
        key,
      );
    }
  }
  const k = requireInteger('teacher.k', teacher.k, 1, vocab);
  const indices = requireArray('teacher.indices', teacher.indices, Int32Array, rows * k);
  const logprobs = requireArray('teacher.logprobs', teacher.logprobs, Float32Array, rows * k);
  const missing = optionalEnum('teacher.missing', teacher.missing, MISSING, 'tail');
  // Range and uniqueness per row, with a stamp array instead of a set per row.
  const stamp = new Int32Array(vocab).fill(-1);
  for (let r = 0; r < rows; r++) {
    for (let i = r * k; i < (r + 1) * k; i++) {
      const index = indices[i];
      if (index < 0 || index >= vocab) {
        throw new SdvpError(
          'ERR_SDVP_TOPK_INDEX',
          `teacher.indices[${i}] (row ${r}) must be in [0, ${vocab}), but received ${index}.`,
          { field: 'teacher.indices', expected: `in [0, ${vocab})`, received: String(index) },
        );
      }
      if (stamp[index] === r) {
        throw new SdvpError(
          'ERR_SDVP_TOPK_INDEX',
          `teacher.indices row ${r} repeats index ${index}; the k indices of a row must be distinct.`,
          {
            field: 'teacher.indices',
            expected: 'distinct indices within each row',
            received: `${index} twice`,
          },
        );
      }
      stamp[index] = r;
      if (!(logprobs[i] <= 1e-4)) {
        throw argError(
          'ERR_SDVP_RANGE',
          `teacher.logprobs[${i}]`,
          'a log-probability (≤ 0, not NaN)',
          logprobs[i],
        );
      }
    }
  }
  native.teacherKind = 2;
  native.topk = k;
  native.topkIndices = indices;
  native.topkLogprobs = logprobs;
  native.topkMissing = MISSING[missing];
}

/** The objective's fields of the native spec: everything but the logits, outputs and threads. */
export type NativeObjective = Omit<
  NativeDistillLossSpec,
  | 'rows'
  | 'vocab'
  | 'dtype'
  | 'student'
  | 'grad'
  | 'rowLoss'
  | 'statsLse'
  | 'statsCe'
  | 'statsKd'
  | 'statsArgmax'
  | 'threads'
  | 'cancel'
>;

/**
 * Checks the objective options for logits of [rows, vocab] (teacher, labels, weights, divergence and
 * the rest) and returns their native form. The torch runtime uses this for the model's output logits.
 */
export function prepareObjective(
  spec: DistillObjectiveOptions,
  rows: number,
  vocab: number,
  dtype: 'f32' | 'bf16' = 'f32',
): NativeObjective {
  if (typeof spec !== 'object' || spec === null)
    throw argError('ERR_SDVP_ARG', 'objective', 'an object', spec);
  const LogitType = dtype === 'bf16' ? Uint16Array : Float32Array;
  const elements = rows * vocab;
  const native = { teacherKind: 0, topk: 0, topkMissing: 1 } as NativeDistillLossSpec;

  if (spec.teacher !== undefined) {
    if (ArrayBuffer.isView(spec.teacher)) {
      native.teacherKind = 1;
      native.teacherLogits = requireArray<LogitArray>('teacher', spec.teacher, LogitType as never, elements);
    } else if (isTopK(spec.teacher)) {
      validateTopK(spec.teacher, rows, vocab, native);
    } else {
      throw argError(
        'ERR_SDVP_ARG',
        'teacher',
        `a ${LogitType.name} of dense logits or { indices, logprobs, k }`,
        spec.teacher,
      );
    }
  }

  native.ignoreIndex =
    spec.ignoreIndex === undefined
      ? -100
      : requireInteger('ignoreIndex', spec.ignoreIndex, -(2 ** 31), INT32_MAX);
  if (spec.labels !== undefined) {
    const labels = requireArray('labels', spec.labels, Int32Array, rows);
    for (let r = 0; r < rows; r++) {
      const label = labels[r];
      if (label !== native.ignoreIndex && (label < 0 || label >= vocab)) {
        throw new SdvpError(
          'ERR_SDVP_LABEL_RANGE',
          `labels[${r}] must be in [0, ${vocab}) or the ignore index ${native.ignoreIndex}, but received ${label}.`,
          {
            field: `labels[${r}]`,
            expected: `in [0, ${vocab}) or ${native.ignoreIndex}`,
            received: String(label),
          },
        );
      }
    }
    native.labels = labels;
  }
  if (native.labels === undefined && native.teacherKind === 0) {
    throw new SdvpError(
      'ERR_SDVP_ARG',
      'distillLoss needs labels, a teacher, or both; it received neither.',
      {
        field: 'labels',
        expected: 'labels and/or teacher',
        received: 'neither',
      },
    );
  }

  const finite = (x: number) => Number.isFinite(x);
  native.ceWeight = optionalFiniteNumber(
    'ceWeight',
    spec.ceWeight,
    native.labels ? 1 : 0,
    finite,
    'a finite number',
  );
  native.kdWeight = optionalFiniteNumber(
    'kdWeight',
    spec.kdWeight,
    native.teacherKind ? 1 : 0,
    finite,
    'a finite number',
  );
  native.temperature = optionalFiniteNumber(
    'temperature',
    spec.temperature,
    1,
    (x) => finite(x) && x > 0,
    'a finite number > 0',
  );
  if (spec.t2 !== undefined && typeof spec.t2 !== 'boolean')
    throw argError('ERR_SDVP_ARG', 't2', 'a boolean', spec.t2);
  native.t2 = spec.t2 ?? true;
  const divergence = optionalEnum('divergence', spec.divergence, DIVERGENCES, 'forward-kl');
  native.divergence = DIVERGENCES[divergence];
  native.jsdBeta = optionalFiniteNumber(
    'jsdBeta',
    spec.jsdBeta,
    0.5,
    (x) => x >= 0 && x <= 1,
    'a number in [0, 1]',
  );
  native.labelSmoothing = optionalFiniteNumber(
    'labelSmoothing',
    spec.labelSmoothing,
    0,
    (x) => x >= 0 && x < 1,
    'a number in [0, 1)',
  );
  native.zLoss = optionalFiniteNumber(
    'zLoss',
    spec.zLoss,
    0,
    (x) => finite(x) && x >= 0,
    'a finite number ≥ 0',
  );
  if (
    native.teacherKind === 2 &&
    native.topkMissing === 0 &&
    native.divergence === 1 &&
    native.topk < vocab
  ) {
    throw new SdvpError(
      'ERR_SDVP_OPTION',
      "divergence 'reverse-kl' with teacher.missing 'renormalize' and k < vocab is infinite (the teacher is zero outside its k entries); use teacher.missing 'tail' or another divergence.",
      {
        field: 'divergence',
        expected: "'forward-kl' or 'jsd', or teacher.missing 'tail'",
        received: "'reverse-kl'",
      },
    );
  }
  if (spec.rowWeights !== undefined) {
    const weights = requireArray('rowWeights', spec.rowWeights, Float32Array, rows);
    for (let r = 0; r < rows; r++) {
      if (!(weights[r] >= 0 && Number.isFinite(weights[r]))) {
        throw argError('ERR_SDVP_RANGE', `rowWeights[${r}]`, 'a finite number ≥ 0', weights[r]);
      }
    }
    native.rowWeights = weights;
  }
  const reduction = optionalEnum('reduction', spec.reduction, REDUCTIONS, 'mean');
  native.reduction = REDUCTIONS[reduction];
  if (spec.normalizer !== undefined) {
    native.normalizer = optionalFiniteNumber(
      'normalizer',
      spec.normalizer,
      1,
      (x) => finite(x) && x > 0,
      'a finite number > 0',
    );
  }
  native.gradScale = optionalFiniteNumber('gradScale', spec.gradScale, 1, finite, 'a finite number');
  return native;
}

/** Checks a whole distillLoss spec and builds the native call with its output buffers. */
export function prepareDistillLoss(spec: DistillLossSpec): PreparedDistillLoss {
  if (typeof spec !== 'object' || spec === null) throw argError('ERR_SDVP_ARG', 'spec', 'an object', spec);
  for (const key of Object.keys(spec)) {
    if (!SPEC_FIELDS.has(key)) {
      throw argError(
        'ERR_SDVP_ARG',
        key,
        `absent: it is not a distillLoss option (options: ${[...SPEC_FIELDS].join(', ')})`,
        key,
      );
    }
  }
  const rows = requireInteger('rows', spec.rows, 1, Number.MAX_SAFE_INTEGER);
  const vocab = requireInteger('vocab', spec.vocab, 1, INT32_MAX);
  const dtype = spec.dtype ?? (spec.student instanceof Uint16Array ? 'bf16' : 'f32');
  if (dtype !== 'f32' && dtype !== 'bf16')
    throw argError('ERR_SDVP_OPTION', 'dtype', "'f32' or 'bf16'", dtype);
  const LogitType = dtype === 'bf16' ? Uint16Array : Float32Array;
  const elements = rows * vocab;
  if (!Number.isSafeInteger(elements))
    throw argError('ERR_SDVP_SHAPE', 'rows * vocab', 'a safe integer', elements);
  const student = requireArray<LogitArray>('student', spec.student, LogitType as never, elements);
  const { reduction: reductionName } = spec;
  const native: NativeDistillLossSpec = {
    ...prepareObjective(spec, rows, vocab, dtype),
    rows,
    vocab,
    dtype: dtype === 'bf16' ? 1 : 0,
    student,
    threads: spec.threads === undefined ? 0 : requireInteger('threads', spec.threads, 0, 1024),
  };
  const reduction = reductionName ?? 'mean';

  const prepared: PreparedDistillLoss = { native };
  const grad = spec.grad ?? true;
  if (grad === 'in-place') {
    native.grad = student;
    prepared.grad = student;
  } else if (grad === true) {
    prepared.grad = new LogitType(elements);
    native.grad = prepared.grad;
  } else if (ArrayBuffer.isView(grad)) {
    const buffer = requireArray<LogitArray>('grad', grad, LogitType as never, elements);
    if (overlaps(buffer, student)) {
      throw argError(
        'ERR_SDVP_ARG',
        'grad',
        "a buffer separate from student (pass grad: 'in-place' to overwrite the logits)",
        grad,
      );
    }
    native.grad = buffer;
    prepared.grad = buffer;
  } else if (grad !== false) {
    throw argError(
      'ERR_SDVP_ARG',
      'grad',
      `true, false, 'in-place' or a ${LogitType.name}`,
      describeValue(grad),
    );
  }
  if (reduction === 'none') {
    prepared.rowLoss = new Float32Array(rows);
    native.rowLoss = prepared.rowLoss;
  }
  if (spec.stats !== undefined && typeof spec.stats !== 'boolean')
    throw argError('ERR_SDVP_ARG', 'stats', 'a boolean', spec.stats);
  if (spec.stats) {
    prepared.stats = {
      lse: new Float32Array(rows),
      ce: new Float32Array(rows),
      kd: new Float32Array(rows),
      argmax: new Int32Array(rows),
    };
    native.statsLse = prepared.stats.lse;
    native.statsCe = prepared.stats.ce;
    native.statsKd = prepared.stats.kd;
    native.statsArgmax = prepared.stats.argmax;
  }
  return prepared;
}
