// Identities the kernel must keep: top-k k=V = dense, in-place = out-of-place, every output written, thread-count determinism, JSD limits, reductions.

import test from 'ava';
import type { ExecutionContext } from 'ava';
import {
  type DistillLossResult,
  type DistillLossSpec,
  type Divergence,
  distillLoss,
  float32ToBf16,
} from '../lib';
import { type Random, randomFor, randomLabels, randomTopKTeacher, seedNote } from './helpers/random';
import { logitsToFloat64, maxNormDifference } from './helpers/reference-distill-loss';

const DIVERGENCES: readonly Divergence[] = ['forward-kl', 'reverse-kl', 'jsd'];

function sameBits(a: ArrayBufferView, b: ArrayBufferView): number {
  const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  if (x.length !== y.length) return 0;
  const elementSize = (a as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return Math.floor(i / elementSize);
  return -1;
}

/** Asserts two typed arrays hold the same bits, naming the first element that differs. */
function assertSameBits(
  t: ExecutionContext,
  actual: ArrayBufferView,
  expected: ArrayBufferView,
  what: string,
): void {
  const first = sameBits(actual, expected);
  const a = actual as unknown as ArrayLike<number>;
  const e = expected as unknown as ArrayLike<number>;
  t.true(first === -1, `${what}: first difference at element ${first}: ${a[first]} vs ${e[first]}`);
}

function maxAbs(values: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < values.length; i++) max = Math.max(max, Math.abs(values[i]));
  return max;
}

function logits(random: Random, n: number, dtype: 'f32' | 'bf16'): Float32Array | Uint16Array {
  const values = random.normals(n, 2);
  return dtype === 'bf16' ? float32ToBf16(values) : values;
}

function closeRelative(
  t: ExecutionContext,
  actual: number,
  expected: number,
  tolerance: number,
  what: string,
): void {
  t.true(
    Math.abs(actual - expected) <= tolerance * Math.abs(expected),
    `${what}: ${actual} vs ${expected} (relative ${(Math.abs(actual - expected) / Math.abs(expected)).toExponential(2)})`,
  );
}

function gradClose(
  t: ExecutionContext,
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: number,
  what: string,
): void {
  const { diff, norm } = maxNormDifference(actual, expected);
  t.true(diff <= tolerance * norm, `${what}: ‖Δ‖∞ = ${diff} against ‖g‖∞ = ${norm}`);
}

// ---- top-k with k = V is the dense teacher -----------------------------------------------------------

for (const missing of ['tail', 'renormalize'] as const) {
  for (const divergence of DIVERGENCES) {
    test(`top-k with k = V equals the dense teacher t = logprobs: ${divergence}, missing '${missing}'`, (t) => {
      const random = randomFor(`12/topk-k=V/${divergence}/${missing}`);
      const rows = 4;
      const vocab = 50;
      const topk = randomTopKTeacher(random, rows, vocab, vocab, missing);
      // The dense teacher holds each row's log-probabilities at their indices (the top-k order is shuffled).
      const dense = new Float32Array(rows * vocab);
      for (let i = 0; i < rows * vocab; i++)
        dense[Math.floor(i / vocab) * vocab + topk.indices[i]] = topk.logprobs[i];
      const common: DistillLossSpec = {
        student: random.normals(rows * vocab, 2),
        rows,
        vocab,
        labels: randomLabels(random, rows, vocab),
        divergence,
        temperature: 1.7,
        stats: true,
      };
      const note = seedNote(random);
      const viaTopK = distillLoss({ ...common, teacher: topk });
      const viaDense = distillLoss({ ...common, teacher: dense });
      closeRelative(t, viaTopK.loss, viaDense.loss, 1e-5, `loss; ${note}`);
      gradClose(t, viaTopK.grad!, viaDense.grad!, 1e-5, `gradient; ${note}`);
      for (let r = 0; r < rows; r++) {
        t.true(
          Math.abs(viaTopK.stats!.kd[r] - viaDense.stats!.kd[r]) <= 1e-5 * (1 + viaDense.stats!.kd[r]),
          `kd[${r}]; ${note}`,
        );
      }
    });
  }
}

// ---- where the gradient goes -------------------------------------------------------------------------

type TeacherKind = 'none' | 'dense' | 'topk-tail';

function makeSpec(
  random: Random,
  dtype: 'f32' | 'bf16',
  divergence: Divergence,
  teacher: TeacherKind,
  rows = 5,
  vocab = 37,
): DistillLossSpec {
  const spec: DistillLossSpec = {
    student: logits(random, rows * vocab, dtype),
    rows,
    vocab,
    labels: randomLabels(random, rows, vocab, 0.2),
    divergence,
    temperature: 1.7,
    labelSmoothing: 0.1,
    zLoss: 0.01,
  };
  if (teacher === 'dense') spec.teacher = logits(random, rows * vocab, dtype);
  if (teacher === 'topk-tail') spec.teacher = randomTopKTeacher(random, rows, vocab, 6, 'tail');
  return spec;
}

const PLACEMENT_CASES: Array<[Divergence, TeacherKind]> = [
  ['forward-kl', 'none'],
  ...DIVERGENCES.flatMap(
    (d) =>
      [
        [d, 'dense'],
        [d, 'topk-tail'],
      ] as Array<[Divergence, TeacherKind]>,
  ),
];

for (const dtype of ['f32', 'bf16'] as const) {
  for (const [divergence, teacher] of PLACEMENT_CASES) {
    const title = `${dtype}, ${divergence}, teacher ${teacher}, labels`;

    test(`grad 'in-place' equals the out-of-place gradient bit for bit: ${title}`, (t) => {
      const random = randomFor(`12/in-place/${title}`);
      const spec = makeSpec(random, dtype, divergence, teacher);
      const outOfPlace = distillLoss(spec);
      const student = spec.student.slice();
      const inPlace = distillLoss({ ...spec, student, grad: 'in-place' });
      t.is(inPlace.grad, student, 'the gradient is the student buffer itself');
      t.is(inPlace.loss, outOfPlace.loss, `loss; ${seedNote(random)}`);
      const first = sameBits(inPlace.grad!, outOfPlace.grad!);
      const row = Math.floor(first / spec.vocab);
      const where = `row ${row}, column ${first % spec.vocab}; that row's label is ${spec.labels![row]}`;
      assertSameBits(t, inPlace.grad!, outOfPlace.grad!, `in-place gradient (${where}); ${seedNote(random)}`);
    });

    test(`a caller's grad buffer (a view at an offset, NaN-poisoned) is filled exactly, nothing around it: ${title}`, (t) => {
      const random = randomFor(`12/grad-buffer/${title}`);
      const spec = makeSpec(random, dtype, divergence, teacher);
      const fresh = distillLoss(spec);
      const n = spec.rows * spec.vocab;
      const Type = dtype === 'bf16' ? Uint16Array : Float32Array;
      const poison = dtype === 'bf16' ? 0x7fc0 : Number.NaN;
      const sentinel = dtype === 'bf16' ? 0x1234 : 12345.5;
      const backing = new Type(n + 16).fill(sentinel);
      const grad = backing.subarray(5, 5 + n).fill(poison);
      const result = distillLoss({ ...spec, grad });
      t.is(result.grad, grad, 'the result holds the caller buffer');
      t.is(result.loss, fresh.loss);
      assertSameBits(t, grad, fresh.grad!, `caller buffer vs a new one; ${seedNote(random)}`);
      for (const i of [0, 1, 2, 3, 4, n + 5, n + 6, n + 15])
        t.is(backing[i], sentinel, `element ${i} outside the view`);
    });
  }
}

test('every gradient element is written (NaN-poisoned buffers) for awkward V, invalid rows and every teacher kind', (t) => {
  const random = randomFor('12/poison');
  for (const dtype of ['f32', 'bf16'] as const) {
    for (const vocab of [1, 7, 33, 1000]) {
      for (const teacher of ['none', 'dense', 'topk-tail', 'topk-renormalize'] as const) {
        const rows = 6;
        const spec: DistillLossSpec = {
          student: logits(random, rows * vocab, dtype),
          rows,
          vocab,
          labels: Int32Array.from({ length: rows }, (_, r) => (r % 3 === 0 ? -100 : random.int(vocab))),
          rowWeights: Float32Array.from({ length: rows }, (_, r) => (r === 4 ? 0 : 1)),
        };
        if (teacher === 'dense') spec.teacher = logits(random, rows * vocab, dtype);
        if (teacher.startsWith('topk')) {
          spec.teacher = randomTopKTeacher(
            random,
            rows,
            vocab,
            Math.min(vocab, 3),
            teacher === 'topk-tail' ? 'tail' : 'renormalize',
          );
        }
        const grad =
          dtype === 'bf16'
            ? new Uint16Array(rows * vocab).fill(0x7fc0)
            : new Float32Array(rows * vocab).fill(Number.NaN);
        distillLoss({ ...spec, grad });
        const values = logitsToFloat64(grad);
        const bad = values.findIndex((x) => !Number.isFinite(x));
        t.is(
          bad,
          -1,
          `${dtype} V=${vocab} teacher ${teacher}: element ${bad} (row ${Math.floor(bad / vocab)}) not written; ${seedNote(random)}`,
        );
        // Row 4 has weight 0, and rows 0 and 3 are ignored with no teacher: their gradient is exactly 0.
        const zeroRows = teacher === 'none' ? [0, 3, 4] : [4];
        for (const r of zeroRows) {
          t.true(
            values.subarray(r * vocab, (r + 1) * vocab).every((x) => x === 0),
            `${dtype} V=${vocab} teacher ${teacher}: row ${r} is invalid and must be zero`,
          );
        }
      }
    }
  }
});

// ---- determinism across thread counts ----------------------------------------------------------------

for (const [rows, vocab] of [
  [64, 32003], // 8 rows per 256K-element chunk: 8 chunks
  [600, 1000], // 262 rows per chunk: 3 uneven chunks
]) {
  for (const teacher of ['dense', 'topk-tail'] as const) {
    test(`threads 1, 2 and the default give the same bits: N=${rows}, V=${vocab}, teacher ${teacher}`, (t) => {
      const random = randomFor(`12/threads/${rows}/${vocab}/${teacher}`);
      const spec: DistillLossSpec = {
        ...makeSpec(random, 'f32', 'jsd', teacher, rows, vocab),
        reduction: 'none',
        rowWeights: Float32Array.from({ length: rows }, () => random.uniform(0, 2)),
        stats: true,
      };
      const one = distillLoss({ ...spec, threads: 1 });
      for (const threads of [2, 0]) {
        const other = distillLoss({ ...spec, threads });
        const what = `threads ${threads} vs 1; ${seedNote(random)}`;
        t.is(other.loss, one.loss, what);
        assertSameBits(t, other.grad!, one.grad!, `gradient, ${what}`);
        assertSameBits(t, other.rowLoss!, one.rowLoss!, `rowLoss, ${what}`);
        for (const key of ['lse', 'ce', 'kd', 'argmax'] as const)
          assertSameBits(t, other.stats![key], one.stats![key], `stats.${key}, ${what}`);
      }
    });
  }
}

// ---- JSD at the ends of beta ---------------------------------------------------------------------------

for (const teacher of ['dense', 'topk-tail'] as const) {
  test(`JSD is continuous in beta: beta = 1e-6 is close to beta = 0 and 1 - 1e-6 to 1, where D = 0 (teacher ${teacher})`, (t) => {
    const random = randomFor(`12/jsd-ends/${teacher}`);
    const spec: DistillLossSpec = {
      ...makeSpec(random, 'f32', 'jsd', teacher, 8, 100),
      labels: undefined,
      stats: true,
    };
    const at = (jsdBeta: number) => distillLoss({ ...spec, jsdBeta });
    const middle = at(0.5);
    const note = seedNote(random);
    t.true(middle.loss > 1e-3, `beta 0.5 has a real divergence (${middle.loss}); ${note}`);
    const scale = maxAbs(middle.grad!);
    for (const [end, near] of [
      [0, 1e-6],
      [1, 1 - 1e-6],
    ]) {
      const atEnd = at(end);
      const nearEnd = at(near);
      // D = 0 at both ends; fp32 leaves a few ulp of log-probabilities (~1e-6) behind.
      t.true(Math.abs(atEnd.loss) <= 1e-5, `loss at beta ${end} is ${atEnd.loss}; ${note}`);
      t.true(
        Math.abs(nearEnd.loss - atEnd.loss) <= 1e-5,
        `loss at beta ${near} (${nearEnd.loss}) vs ${end} (${atEnd.loss}); ${note}`,
      );
      for (const r of [0, 1])
        t.true(Math.abs(nearEnd.stats!.kd[r]) <= 1e-5, `kd[${r}] at ${near}: ${nearEnd.stats!.kd[r]}`);
      const atEndNorm = maxAbs(atEnd.grad!);
      t.true(
        atEndNorm <= 1e-5 * scale,
        `gradient at beta ${end} is ~0: ‖g‖∞ ${atEndNorm} against ${scale} at 0.5; ${note}`,
      );
      const { diff } = maxNormDifference(nearEnd.grad!, atEnd.grad!);
      t.true(
        diff <= 1e-4 * scale,
        `gradient at beta ${near} vs ${end}: ‖Δ‖∞ ${diff} against ${scale} at 0.5; ${note}`,
      );
    }
  });
}

// ---- reductions ------------------------------------------------------------------------------------------

test('reductions: none sums its rowLoss; sum = mean × validRows = batchmean × N = normalizer × loss', (t) => {
  const random = randomFor('12/reductions');
  const rows = 13;
  const vocab = 101;
  const spec: DistillLossSpec = {
    ...makeSpec(random, 'f32', 'forward-kl', 'dense', rows, vocab),
    labels: randomLabels(random, rows, vocab, 0.3),
    rowWeights: Float32Array.from({ length: rows }, (_, r) => (r === 2 ? 0 : random.uniform(0.5, 1.5))),
  };
  const note = seedNote(random);
  const run = (extra: Partial<DistillLossSpec>): DistillLossResult => distillLoss({ ...spec, ...extra });
  const none = run({ reduction: 'none' });
  const sum = run({ reduction: 'sum' });
  const mean = run({ reduction: 'mean' });
  const batchmean = run({ reduction: 'batchmean' });
  const custom = run({ reduction: 'mean', normalizer: 7.25 });

  const rowSum = none.rowLoss!.reduce((a, b) => a + b, 0);
  closeRelative(t, rowSum, none.loss, 1e-6, `Σ rowLoss vs loss ('none'); ${note}`);
  t.is(none.loss, sum.loss, `'none' and 'sum' give the same loss; ${note}`);
  assertSameBits(t, none.grad!, sum.grad!, `'none' and 'sum' give the same gradient; ${note}`);
  t.is(none.rowLoss![2], 0, 'a weight-0 row has loss 0');
  t.is(mean.validRows, rows - 1);
  t.is(mean.normalizer, rows - 1);
  t.is(batchmean.normalizer, rows);
  t.is(custom.normalizer, 7.25);
  t.is(sum.normalizer, 1);
  closeRelative(t, mean.loss * mean.validRows, sum.loss, 1e-12, `mean × validRows; ${note}`);
  closeRelative(t, batchmean.loss * rows, sum.loss, 1e-12, `batchmean × N; ${note}`);
  closeRelative(t, custom.loss * 7.25, sum.loss, 1e-12, `normalizer × loss; ${note}`);
  const scaled = (grad: ArrayLike<number>, by: number) =>
    Float64Array.from(grad as ArrayLike<number>, (x) => x * by);
  gradClose(t, scaled(mean.grad!, mean.validRows), sum.grad!, 1e-6, `mean gradient × validRows; ${note}`);
  gradClose(t, scaled(batchmean.grad!, rows), sum.grad!, 1e-6, `batchmean gradient × N; ${note}`);
  gradClose(t, scaled(custom.grad!, 7.25), sum.grad!, 1e-6, `normalizer gradient × normalizer; ${note}`);
  const halved = run({ reduction: 'sum', gradScale: 0.5 });
  t.is(halved.loss, sum.loss, 'gradScale leaves the loss alone');
  gradClose(t, scaled(halved.grad!, 2), sum.grad!, 1e-6, `gradScale 0.5 halves the gradient; ${note}`);
});
