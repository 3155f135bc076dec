// Every bad argument to distillLoss fails with its code and a message naming the field, and writes nothing.

import test from 'ava';
import { type DistillLossSpec, SdvpError, type SdvpErrorCode, distillLoss, distillLossAsync } from '../lib';

const ROWS = 3;
const VOCAB = 8;
const K = 3;
const SENTINEL = 42.5;

/** A valid call with every kind of input: student, dense teacher, labels, weights. */
function validSpec(): DistillLossSpec {
  const student = Float32Array.from({ length: ROWS * VOCAB }, (_, i) => Math.sin(i));
  const teacher = Float32Array.from({ length: ROWS * VOCAB }, (_, i) => Math.cos(i));
  return {
    student,
    teacher,
    rows: ROWS,
    vocab: VOCAB,
    labels: Int32Array.of(0, 7, -100),
    rowWeights: Float32Array.of(1, 0.5, 2),
  };
}

/** A valid top-k teacher: rows of distinct indices with log-probabilities summing below 1. */
function topK(
  overrides: Partial<{ indices: Int32Array; logprobs: Float32Array; k: unknown; missing: unknown }> = {},
) {
  return {
    indices: Int32Array.of(0, 3, 5, 1, 2, 7, 6, 4, 0),
    logprobs: new Float32Array(ROWS * K).fill(Math.log(0.2)),
    k: K,
    ...overrides,
  };
}

interface BadCase {
  name: string;
  /** Changes to the valid spec (a value of undefined deletes the key). */
  change: Record<string, unknown>;
  code: SdvpErrorCode;
  /** The field the error names: in `error.field` and in the message. */
  field: string;
  /** More text the message must hold (for example the offending row). */
  mentions?: string[];
}

const f32 = (n: number) => new Float32Array(n);

const CASES: BadCase[] = [
  // Unknown keys and wrong types.
  {
    name: 'an unknown option (typo of temperature)',
    change: { temprature: 2 },
    code: 'ERR_SDVP_ARG',
    field: 'temprature',
  },
  {
    name: 'an unknown option (typo of labels)',
    change: { label: Int32Array.of(0, 1, 2) },
    code: 'ERR_SDVP_ARG',
    field: 'label',
  },
  { name: 'student missing', change: { student: undefined }, code: 'ERR_SDVP_ARG', field: 'student' },
  {
    name: 'student a plain array',
    change: { student: Array.from({ length: ROWS * VOCAB }, () => 0) },
    code: 'ERR_SDVP_ARG',
    field: 'student',
  },
  {
    name: 'student a Float64Array',
    change: { student: new Float64Array(ROWS * VOCAB) },
    code: 'ERR_SDVP_ARG',
    field: 'student',
  },
  {
    name: "dtype 'bf16' with a Float32Array student",
    change: { dtype: 'bf16' },
    code: 'ERR_SDVP_ARG',
    field: 'student',
  },
  { name: 'rows a string', change: { rows: '3' }, code: 'ERR_SDVP_ARG', field: 'rows' },
  { name: 'vocab missing', change: { vocab: undefined }, code: 'ERR_SDVP_ARG', field: 'vocab' },
  { name: 'teacher null', change: { teacher: null }, code: 'ERR_SDVP_ARG', field: 'teacher' },
  {
    name: 'top-k indices a plain array',
    change: { teacher: topK({ indices: [0, 3, 5, 1, 2, 7, 6, 4, 0] as unknown as Int32Array }) },
    code: 'ERR_SDVP_ARG',
    field: 'teacher.indices',
  },
  { name: 'teacher a number', change: { teacher: 5 }, code: 'ERR_SDVP_ARG', field: 'teacher' },
  {
    name: 'dense teacher of the other dtype',
    change: { teacher: new Uint16Array(ROWS * VOCAB) },
    code: 'ERR_SDVP_ARG',
    field: 'teacher',
  },
  {
    name: 'labels a Float32Array',
    change: { labels: Float32Array.of(0, 1, 2) },
    code: 'ERR_SDVP_ARG',
    field: 'labels',
  },
  { name: 'labels a plain array', change: { labels: [0, 1, 2] }, code: 'ERR_SDVP_ARG', field: 'labels' },
  {
    name: 'ignoreIndex a string',
    change: { ignoreIndex: '-100' },
    code: 'ERR_SDVP_ARG',
    field: 'ignoreIndex',
  },
  { name: 'ceWeight a string', change: { ceWeight: '1' }, code: 'ERR_SDVP_ARG', field: 'ceWeight' },
  { name: 'kdWeight a boolean', change: { kdWeight: true }, code: 'ERR_SDVP_ARG', field: 'kdWeight' },
  { name: 't2 a string', change: { t2: 'yes' }, code: 'ERR_SDVP_ARG', field: 't2' },
  { name: 'stats a number', change: { stats: 1 }, code: 'ERR_SDVP_ARG', field: 'stats' },
  {
    name: 'rowWeights a Float64Array',
    change: { rowWeights: new Float64Array(ROWS) },
    code: 'ERR_SDVP_ARG',
    field: 'rowWeights',
  },
  { name: "grad 'inplace' (typo)", change: { grad: 'inplace' }, code: 'ERR_SDVP_ARG', field: 'grad' },
  {
    name: 'grad of the other dtype',
    change: { grad: new Uint16Array(ROWS * VOCAB) },
    code: 'ERR_SDVP_ARG',
    field: 'grad',
  },
  { name: 'threads a string', change: { threads: '2' }, code: 'ERR_SDVP_ARG', field: 'threads' },
  {
    name: 'neither labels nor teacher',
    change: { labels: undefined, teacher: undefined },
    code: 'ERR_SDVP_ARG',
    field: 'labels',
    mentions: ['teacher'],
  },

  // Wrong lengths.
  {
    name: 'student too short',
    change: { student: f32(ROWS * VOCAB - 1) },
    code: 'ERR_SDVP_SHAPE',
    field: 'student',
    mentions: [`${ROWS * VOCAB}`],
  },
  {
    name: 'student too long (rows × vocab disagree)',
    change: { rows: 2 },
    code: 'ERR_SDVP_SHAPE',
    field: 'student',
  },
  {
    name: 'dense teacher too short',
    change: { teacher: f32(VOCAB) },
    code: 'ERR_SDVP_SHAPE',
    field: 'teacher',
  },
  {
    name: 'labels too long',
    change: { labels: new Int32Array(ROWS + 1) },
    code: 'ERR_SDVP_SHAPE',
    field: 'labels',
  },
  {
    name: 'rowWeights too short',
    change: { rowWeights: f32(ROWS - 1) },
    code: 'ERR_SDVP_SHAPE',
    field: 'rowWeights',
  },
  { name: 'grad too short', change: { grad: f32(ROWS * VOCAB - 1) }, code: 'ERR_SDVP_SHAPE', field: 'grad' },
  {
    name: 'top-k indices too short',
    change: { teacher: topK({ indices: new Int32Array(ROWS * K - 1) }) },
    code: 'ERR_SDVP_SHAPE',
    field: 'teacher.indices',
  },
  {
    name: 'top-k logprobs too long',
    change: { teacher: topK({ logprobs: f32(ROWS * K + 1) }) },
    code: 'ERR_SDVP_SHAPE',
    field: 'teacher.logprobs',
  },

  // Labels and top-k indices.
  {
    name: 'label = vocab',
    change: { labels: Int32Array.of(0, 1, VOCAB) },
    code: 'ERR_SDVP_LABEL_RANGE',
    field: 'labels[2]',
  },
  {
    name: 'label negative (not the ignore index)',
    change: { labels: Int32Array.of(0, -5, 1) },
    code: 'ERR_SDVP_LABEL_RANGE',
    field: 'labels[1]',
  },
  {
    name: '−100 once the ignore index is −1',
    change: { labels: Int32Array.of(-100, 1, 2), ignoreIndex: -1 },
    code: 'ERR_SDVP_LABEL_RANGE',
    field: 'labels[0]',
  },
  {
    name: 'top-k index = vocab',
    change: { teacher: topK({ indices: Int32Array.of(0, 3, 5, 1, 2, 7, 6, VOCAB, 0) }) },
    code: 'ERR_SDVP_TOPK_INDEX',
    field: 'teacher.indices',
    mentions: ['row 2'],
  },
  {
    name: 'top-k index negative',
    change: { teacher: topK({ indices: Int32Array.of(0, 3, 5, -1, 2, 7, 6, 4, 0) }) },
    code: 'ERR_SDVP_TOPK_INDEX',
    field: 'teacher.indices',
    mentions: ['row 1'],
  },
  {
    name: 'top-k index repeated in a row',
    change: { teacher: topK({ indices: Int32Array.of(0, 3, 5, 1, 2, 7, 6, 4, 6) }) },
    code: 'ERR_SDVP_TOPK_INDEX',
    field: 'teacher.indices',
    mentions: ['row 2', '6'],
  },

  // Enums.
  { name: "dtype 'fp16'", change: { dtype: 'fp16' }, code: 'ERR_SDVP_OPTION', field: 'dtype' },
  { name: "divergence 'kl'", change: { divergence: 'kl' }, code: 'ERR_SDVP_OPTION', field: 'divergence' },
  {
    name: "divergence 'Forward-KL' (case)",
    change: { divergence: 'Forward-KL' },
    code: 'ERR_SDVP_OPTION',
    field: 'divergence',
  },
  { name: 'divergence a number', change: { divergence: 0 }, code: 'ERR_SDVP_OPTION', field: 'divergence' },
  { name: "reduction 'avg'", change: { reduction: 'avg' }, code: 'ERR_SDVP_OPTION', field: 'reduction' },
  {
    name: "teacher.missing 'drop'",
    change: { teacher: topK({ missing: 'drop' }) },
    code: 'ERR_SDVP_OPTION',
    field: 'teacher.missing',
  },
  {
    name: "reverse-kl with teacher.missing 'renormalize' and k < V",
    change: { teacher: topK({ missing: 'renormalize' }), divergence: 'reverse-kl' },
    code: 'ERR_SDVP_OPTION',
    field: 'divergence',
    mentions: ['renormalize'],
  },

  // Numbers out of range.
  { name: 'rows 0', change: { rows: 0 }, code: 'ERR_SDVP_RANGE', field: 'rows' },
  { name: 'rows 1.5', change: { rows: 1.5 }, code: 'ERR_SDVP_RANGE', field: 'rows' },
  { name: 'vocab −8', change: { vocab: -8 }, code: 'ERR_SDVP_RANGE', field: 'vocab' },
  { name: 'ignoreIndex 0.5', change: { ignoreIndex: 0.5 }, code: 'ERR_SDVP_RANGE', field: 'ignoreIndex' },
  { name: 'temperature 0', change: { temperature: 0 }, code: 'ERR_SDVP_RANGE', field: 'temperature' },
  { name: 'temperature −1', change: { temperature: -1 }, code: 'ERR_SDVP_RANGE', field: 'temperature' },
  {
    name: 'temperature NaN',
    change: { temperature: Number.NaN },
    code: 'ERR_SDVP_RANGE',
    field: 'temperature',
  },
  {
    name: 'temperature Infinity',
    change: { temperature: Number.POSITIVE_INFINITY },
    code: 'ERR_SDVP_RANGE',
    field: 'temperature',
  },
  { name: 'jsdBeta −0.1', change: { jsdBeta: -0.1 }, code: 'ERR_SDVP_RANGE', field: 'jsdBeta' },
  { name: 'jsdBeta 1.5', change: { jsdBeta: 1.5 }, code: 'ERR_SDVP_RANGE', field: 'jsdBeta' },
  { name: 'jsdBeta NaN', change: { jsdBeta: Number.NaN }, code: 'ERR_SDVP_RANGE', field: 'jsdBeta' },
  {
    name: 'labelSmoothing 1',
    change: { labelSmoothing: 1 },
    code: 'ERR_SDVP_RANGE',
    field: 'labelSmoothing',
  },
  {
    name: 'labelSmoothing −0.1',
    change: { labelSmoothing: -0.1 },
    code: 'ERR_SDVP_RANGE',
    field: 'labelSmoothing',
  },
  {
    name: 'labelSmoothing NaN',
    change: { labelSmoothing: Number.NaN },
    code: 'ERR_SDVP_RANGE',
    field: 'labelSmoothing',
  },
  { name: 'zLoss −1', change: { zLoss: -1 }, code: 'ERR_SDVP_RANGE', field: 'zLoss' },
  { name: 'ceWeight NaN', change: { ceWeight: Number.NaN }, code: 'ERR_SDVP_RANGE', field: 'ceWeight' },
  {
    name: 'kdWeight Infinity',
    change: { kdWeight: Number.POSITIVE_INFINITY },
    code: 'ERR_SDVP_RANGE',
    field: 'kdWeight',
  },
  {
    name: 'a negative row weight',
    change: { rowWeights: Float32Array.of(1, -0.5, 1) },
    code: 'ERR_SDVP_RANGE',
    field: 'rowWeights[1]',
  },
  {
    name: 'a NaN row weight',
    change: { rowWeights: Float32Array.of(1, 1, Number.NaN) },
    code: 'ERR_SDVP_RANGE',
    field: 'rowWeights[2]',
  },
  {
    name: 'an infinite row weight',
    change: { rowWeights: Float32Array.of(Number.POSITIVE_INFINITY, 1, 1) },
    code: 'ERR_SDVP_RANGE',
    field: 'rowWeights[0]',
  },
  { name: 'normalizer 0', change: { normalizer: 0 }, code: 'ERR_SDVP_RANGE', field: 'normalizer' },
  { name: 'normalizer −2', change: { normalizer: -2 }, code: 'ERR_SDVP_RANGE', field: 'normalizer' },
  { name: 'normalizer NaN', change: { normalizer: Number.NaN }, code: 'ERR_SDVP_RANGE', field: 'normalizer' },
  { name: 'gradScale NaN', change: { gradScale: Number.NaN }, code: 'ERR_SDVP_RANGE', field: 'gradScale' },
  { name: 'threads −1', change: { threads: -1 }, code: 'ERR_SDVP_RANGE', field: 'threads' },
  { name: 'threads 2000', change: { threads: 2000 }, code: 'ERR_SDVP_RANGE', field: 'threads' },
  {
    name: 'rows × vocab beyond a safe integer',
    change: { rows: 2 ** 27, vocab: 2 ** 27 },
    code: 'ERR_SDVP_SHAPE',
    field: 'rows * vocab',
  },
  { name: 'threads 1.5', change: { threads: 1.5 }, code: 'ERR_SDVP_RANGE', field: 'threads' },
  {
    name: 'teacher.k 0',
    change: { teacher: topK({ k: 0, indices: new Int32Array(0), logprobs: f32(0) }) },
    code: 'ERR_SDVP_RANGE',
    field: 'teacher.k',
  },
  {
    name: 'teacher.k > vocab',
    change: { teacher: topK({ k: VOCAB + 1 }) },
    code: 'ERR_SDVP_RANGE',
    field: 'teacher.k',
  },
  {
    name: 'teacher.k 2.5',
    change: { teacher: topK({ k: 2.5 }) },
    code: 'ERR_SDVP_RANGE',
    field: 'teacher.k',
  },
  {
    name: 'teacher.k a string',
    change: { teacher: topK({ k: '3' }) },
    code: 'ERR_SDVP_ARG',
    field: 'teacher.k',
  },
  {
    name: 'a positive top-k log-probability',
    change: { teacher: topK({ logprobs: Float32Array.of(-1, -1, -1, -1, 0.5, -1, -1, -1, -1) }) },
    code: 'ERR_SDVP_RANGE',
    field: 'teacher.logprobs[4]',
  },
  {
    name: 'an unknown top-k teacher key',
    change: { teacher: { ...topK(), kk: 3 } },
    code: 'ERR_SDVP_ARG',
    field: 'teacher.kk',
  },
];

/** The valid spec with a case's changes, writing into a caller grad buffer filled with a sentinel. */
function badSpec(c: BadCase): { spec: DistillLossSpec; grad?: Float32Array } {
  const spec: Record<string, unknown> = { ...validSpec() };
  let grad: Float32Array | undefined;
  if (!('grad' in c.change)) {
    grad = new Float32Array(ROWS * VOCAB).fill(SENTINEL);
    spec.grad = grad;
  }
  for (const [key, value] of Object.entries(c.change)) {
    if (value === undefined) delete spec[key];
    else spec[key] = value;
  }
  return { spec: spec as unknown as DistillLossSpec, grad };
}

for (const c of CASES) {
  test(`${c.code} for ${c.name}: the message names ${c.field}, nothing is written`, (t) => {
    const { spec, grad } = badSpec(c);
    const error = t.throws(() => distillLoss(spec), { instanceOf: SdvpError });
    t.is(error?.code, c.code, error?.message);
    t.is(error?.field, c.field, error?.message);
    t.true(error?.message.includes(c.field), `the message names ${c.field}: ${error?.message}`);
    for (const text of c.mentions ?? [])
      t.true(error?.message.includes(text), `the message mentions '${text}': ${error?.message}`);
    if (grad)
      t.true(
        grad.every((x) => x === SENTINEL),
        'the caller grad buffer is untouched',
      );
  });
}

test('distillLossAsync rejects (never throws synchronously) with the same codes', async (t) => {
  for (const c of CASES.filter((_, i) => i % 5 === 0)) {
    const { spec, grad } = badSpec(c);
    let promise: Promise<unknown> | undefined;
    t.notThrows(() => {
      promise = distillLossAsync(spec);
    }, c.name);
    const error = await t.throwsAsync(promise!, { instanceOf: SdvpError }, c.name);
    t.is(error?.code, c.code, `${c.name}: ${error?.message}`);
    t.is(error?.field, c.field, `${c.name}: ${error?.message}`);
    if (grad)
      t.true(
        grad.every((x) => x === SENTINEL),
        `${c.name}: the caller grad buffer is untouched`,
      );
  }
});

test('the spec itself must be an object', (t) => {
  for (const spec of [null, undefined, 5, 'spec']) {
    const error = t.throws(() => distillLoss(spec as unknown as DistillLossSpec), { instanceOf: SdvpError });
    t.is(error?.code, 'ERR_SDVP_ARG');
    t.true(error?.message.includes('spec'), error?.message);
  }
});

test('a grad buffer that overlaps the student, without grad: "in-place", is refused and nothing is written', (t) => {
  const backing = new Float32Array(ROWS * VOCAB + 4);
  for (let i = 0; i < backing.length; i++) backing[i] = Math.sin(i);
  const before = backing.slice();
  const student = backing.subarray(0, ROWS * VOCAB);
  for (const grad of [
    student,
    backing.subarray(4, 4 + ROWS * VOCAB),
    new Float32Array(backing.buffer, 0, ROWS * VOCAB),
  ]) {
    const spec = { ...validSpec(), student, grad };
    const error = t.throws(() => distillLoss(spec), { instanceOf: SdvpError });
    t.is(error?.code, 'ERR_SDVP_ARG');
    t.is(error?.field, 'grad');
    t.true(
      error?.message.includes('in-place'),
      `the message says how to overwrite on purpose: ${error?.message}`,
    );
    t.deepEqual(backing, before, 'the student and the buffer are untouched');
  }
  // A buffer in the same ArrayBuffer that does not overlap is fine.
  const shared = new Float32Array(2 * ROWS * VOCAB);
  const result = distillLoss({
    ...validSpec(),
    student: shared.subarray(0, ROWS * VOCAB),
    grad: shared.subarray(ROWS * VOCAB),
  });
  t.true(Number.isFinite(result.loss));
});

test('reverse-kl with a renormalised top-k teacher is allowed when k = V', (t) => {
  const indices = new Int32Array(ROWS * VOCAB);
  for (let i = 0; i < indices.length; i++) indices[i] = i % VOCAB;
  const teacher = {
    indices,
    logprobs: new Float32Array(ROWS * VOCAB).fill(-Math.log(VOCAB)),
    k: VOCAB,
    missing: 'renormalize' as const,
  };
  const result = distillLoss({ ...validSpec(), teacher, divergence: 'reverse-kl' });
  t.true(Number.isFinite(result.loss));
});

test('a bad AbortSignal is refused with ERR_SDVP_ARG naming options.signal', async (t) => {
  for (const signal of [{}, 'abort', { aborted: true }]) {
    const error = await t.throwsAsync(
      distillLossAsync(validSpec(), { signal } as unknown as { signal: AbortSignal }),
      {
        instanceOf: SdvpError,
      },
    );
    t.is(error?.code, 'ERR_SDVP_ARG');
    t.true(error?.message.includes('options.signal'), error?.message);
  }
});

test('distillLossAsync options that are not an object are refused with ERR_SDVP_ARG naming options', async (t) => {
  // null reaches `const { signal } = options` and fails with a TypeError (no code) instead of an SdvpError.
  for (const options of [null, 5]) {
    const error = await t.throwsAsync(
      distillLossAsync(validSpec(), options as unknown as { signal?: AbortSignal }),
    );
    t.true(
      error instanceof SdvpError,
      `options ${options}: got ${error?.constructor.name}: ${error?.message}`,
    );
    t.is((error as SdvpError).code, 'ERR_SDVP_ARG', `options ${options}`);
    t.true(error?.message.includes('options'), error?.message);
  }
});
