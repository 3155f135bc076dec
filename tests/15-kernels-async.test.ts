// distillLossAsync: the same results as distillLoss, a free event loop while it runs, AbortSignal, concurrent calls.

import test from 'ava';
import type { ExecutionContext } from 'ava';
import {
  type DistillLossResult,
  type DistillLossSpec,
  SdvpError,
  distillLoss,
  distillLossAsync,
  float32ToBf16,
} from '../lib';
import { type Random, randomFor, randomLabels, randomTopKTeacher, seedNote } from './helpers/random';

/** A large call (N = 1024, V = 32000, bf16, dense JSD teacher): 128 chunks of rows, ~50–200 ms on two cores. */
const LARGE_ROWS = 1024;
const LARGE_VOCAB = 32000;

/** n bf16 logits: a random block tiled over the array (random enough, and fast to make at this size). */
function tiledBf16(random: Random, n: number): Uint16Array {
  const block = float32ToBf16(random.normals(1 << 16, 2));
  const out = new Uint16Array(n);
  for (let offset = 0; offset < n; offset += block.length)
    out.set(block.subarray(0, Math.min(block.length, n - offset)), offset);
  return out;
}

let large: DistillLossSpec | undefined;
function largeSpec(): DistillLossSpec {
  if (!large) {
    const random = randomFor('15/large');
    const n = LARGE_ROWS * LARGE_VOCAB;
    // The teacher is the student shifted by one element: a different distribution in every row.
    const student = tiledBf16(random, n + 1);
    large = {
      student: student.subarray(0, n),
      teacher: student.subarray(1, n + 1),
      rows: LARGE_ROWS,
      vocab: LARGE_VOCAB,
      labels: randomLabels(random, LARGE_ROWS, LARGE_VOCAB),
      divergence: 'jsd',
      grad: false,
    };
  }
  return large;
}

function assertSameResult(
  t: ExecutionContext,
  actual: DistillLossResult,
  expected: DistillLossResult,
  what: string,
): void {
  t.is(actual.loss, expected.loss, `loss: ${what}`);
  t.is(actual.validRows, expected.validRows, `validRows: ${what}`);
  t.is(actual.normalizer, expected.normalizer, `normalizer: ${what}`);
  const bytes = (a: ArrayBufferView | undefined) =>
    a ? Buffer.from(a.buffer, a.byteOffset, a.byteLength) : undefined;
  t.true(
    bytes(actual.grad)?.equals(bytes(expected.grad)!) ?? expected.grad === undefined,
    `gradient bits: ${what}`,
  );
  t.deepEqual(actual.rowLoss, expected.rowLoss, `rowLoss: ${what}`);
  t.deepEqual(actual.stats, expected.stats, `stats: ${what}`);
}

function mediumSpec(
  random: Random,
  dtype: 'f32' | 'bf16',
  teacher: 'none' | 'dense' | 'topk',
): DistillLossSpec {
  const rows = 40;
  const vocab = 3001;
  const values = () =>
    dtype === 'bf16' ? float32ToBf16(random.normals(rows * vocab, 2)) : random.normals(rows * vocab, 2);
  const spec: DistillLossSpec = {
    student: values(),
    rows,
    vocab,
    labels: randomLabels(random, rows, vocab, 0.2),
    temperature: 1.7,
    divergence: 'reverse-kl',
    reduction: 'none',
    stats: true,
  };
  if (teacher === 'dense') spec.teacher = values();
  if (teacher === 'topk') spec.teacher = randomTopKTeacher(random, rows, vocab, 20, 'tail');
  return spec;
}

test('distillLossAsync gives the same bits as distillLoss', async (t) => {
  const random = randomFor('15/async-equals-sync');
  for (const dtype of ['f32', 'bf16'] as const) {
    for (const teacher of ['none', 'dense', 'topk'] as const) {
      const spec = mediumSpec(random, dtype, teacher);
      assertSameResult(
        t,
        await distillLossAsync(spec),
        distillLoss(spec),
        `${dtype}, teacher ${teacher}; ${seedNote(random)}`,
      );
    }
  }
});

// Serial: the other tests make synchronous calls, which would block the timers these two count on.
test.serial(
  'the event loop keeps running while a large call works (1 ms interval ticks during the await)',
  async (t) => {
    const spec = largeSpec();
    let ticks = 0;
    const timer = setInterval(() => {
      ticks++;
    }, 1);
    const start = process.hrtime.bigint();
    try {
      const result = await distillLossAsync(spec);
      t.true(Number.isFinite(result.loss));
    } finally {
      clearInterval(timer);
    }
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    t.log(`N=${spec.rows}, V=${spec.vocab}: ${ms.toFixed(1)} ms, ${ticks} ticks`);
    t.true(ticks >= 3, `only ${ticks} ticks in ${ms.toFixed(1)} ms`);
  },
);

test('aborting right after the start rejects with ERR_SDVP_ABORTED, and a later call still works', async (t) => {
  const spec = largeSpec();
  const controller = new AbortController();
  const promise = distillLossAsync(spec, { signal: controller.signal });
  controller.abort();
  const error = await t.throwsAsync(promise, { instanceOf: SdvpError });
  t.is(error?.code, 'ERR_SDVP_ABORTED', error?.message);

  const random = randomFor('15/after-abort');
  const small = mediumSpec(random, 'f32', 'dense');
  assertSameResult(
    t,
    await distillLossAsync(small, { signal: new AbortController().signal }),
    distillLoss(small),
    seedNote(random),
  );
});

test.serial('aborting mid-flight (from a timer) rejects with ERR_SDVP_ABORTED', async (t) => {
  const spec = largeSpec();
  const controller = new AbortController();
  const promise = distillLossAsync(spec, { signal: controller.signal });
  setTimeout(() => controller.abort(), 2);
  const error = await t.throwsAsync(promise, { instanceOf: SdvpError });
  t.is(error?.code, 'ERR_SDVP_ABORTED', error?.message);
});

test('an already-aborted signal rejects with ERR_SDVP_ABORTED and writes nothing', async (t) => {
  const random = randomFor('15/already-aborted');
  const spec = mediumSpec(random, 'f32', 'dense');
  const grad = new Float32Array(spec.rows * spec.vocab).fill(7.25);
  const error = await t.throwsAsync(distillLossAsync({ ...spec, grad }, { signal: AbortSignal.abort() }), {
    instanceOf: SdvpError,
  });
  t.is(error?.code, 'ERR_SDVP_ABORTED', error?.message);
  t.true(
    grad.every((x) => x === 7.25),
    'the caller grad buffer is untouched',
  );
});

test('aborting after the promise settled changes nothing', async (t) => {
  const random = randomFor('15/abort-after');
  const spec = mediumSpec(random, 'f32', 'topk');
  const controller = new AbortController();
  const result = await distillLossAsync(spec, { signal: controller.signal });
  const loss = result.loss;
  controller.abort();
  t.is(result.loss, loss);
  assertSameResult(t, result, distillLoss(spec), seedNote(random));
});

test('two concurrent async calls (and a sync call meanwhile) each give their own correct result', async (t) => {
  const random = randomFor('15/concurrent');
  const a = mediumSpec(random, 'f32', 'dense');
  const b = { ...mediumSpec(random, 'bf16', 'topk'), divergence: 'jsd' as const };
  const c = mediumSpec(random, 'f32', 'none');
  const expectedA = distillLoss(a);
  const expectedB = distillLoss(b);
  const expectedC = distillLoss(c);
  const pending = Promise.all([
    distillLossAsync(a),
    distillLossAsync(b),
    distillLossAsync({ ...a, threads: 1 }),
  ]);
  const sync = distillLoss(c);
  const [resultA, resultB, resultA1] = await pending;
  const note = seedNote(random);
  assertSameResult(t, resultA, expectedA, `first call; ${note}`);
  assertSameResult(t, resultB, expectedB, `second call; ${note}`);
  assertSameResult(t, resultA1, expectedA, `third call (one thread); ${note}`);
  assertSameResult(t, sync, expectedC, `sync call meanwhile; ${note}`);
  t.not(resultA.grad, resultA1.grad, 'each call has its own gradient buffer');
});
