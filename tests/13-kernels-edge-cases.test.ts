// Edge cases of the objective: −inf and NaN logits, empty and ignored batches, V = 1, N = 1, zero weights, custom ignore index, huge logits.

import test from 'ava';
import type { ExecutionContext } from 'ava';
import {
  type DistillLossResult,
  type DistillLossSpec,
  type Divergence,
  distillLoss,
  float32ToBf16,
} from '../lib';
import { randomFor, randomLabels, randomTopKTeacher, seedNote } from './helpers/random';
import { logitsToFloat64, maxNormDifference, referenceDistillLoss } from './helpers/reference-distill-loss';

const NEG_INF = Number.NEGATIVE_INFINITY;

/** Loss within 1e-5 relative and gradient within 1e-5 in max norm of the float64 reference. */
function matchesReference(t: ExecutionContext, spec: DistillLossSpec, what: string): DistillLossResult {
  const result = distillLoss(spec);
  const ref = referenceDistillLoss(spec);
  t.true(Number.isFinite(ref.loss), `the reference loss is finite (${ref.loss}): ${what}`);
  t.true(
    Math.abs(result.loss - ref.loss) <= 1e-5 * Math.abs(ref.loss),
    `loss ${result.loss} vs reference ${ref.loss}: ${what}`,
  );
  const grad = logitsToFloat64(result.grad!);
  const { diff, norm } = maxNormDifference(grad, ref.grad);
  t.true(diff <= 1e-5 * norm, `gradient ‖Δ‖∞ ${diff} against ‖ref‖∞ ${norm}: ${what}`);
  return result;
}

function allFinite(values: ArrayLike<number>): boolean {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return false;
  return true;
}

// ---- −inf logits ----------------------------------------------------------------------------------------

for (const divergence of ['forward-kl', 'reverse-kl', 'jsd'] as const) {
  test(`−inf logits: probability 0 with 0·log 0 = 0 (${divergence}, dense teacher, −inf in both at the same places)`, (t) => {
    const random = randomFor(`13/neg-inf/shared/${divergence}`);
    const rows = 4;
    const vocab = 40;
    const student = random.normals(rows * vocab, 2);
    const teacher = random.normals(rows * vocab, 2);
    for (let i = 0; i < rows * vocab; i += 3) {
      student[i] = NEG_INF;
      teacher[i] = NEG_INF;
    }
    // Labels sit on finite logits (a label on a −inf logit has an infinite CE).
    const labels = Int32Array.from({ length: rows }, (_, r) => ((r * vocab) % 3 === 2 ? 2 : 1));
    for (const temperature of [1, 1.7]) {
      const spec: DistillLossSpec = { student, teacher, rows, vocab, labels, divergence, temperature };
      const result = matchesReference(t, spec, `tau ${temperature}; ${seedNote(random)}`);
      const grad = result.grad as Float32Array;
      for (let i = 0; i < rows * vocab; i += 3) t.is(grad[i], 0, `the gradient at a −inf logit (${i}) is 0`);
    }
  });
}

test('−inf teacher logits where the student is finite: forward KL and JSD stay finite (p = 0 terms vanish)', (t) => {
  const random = randomFor('13/neg-inf/teacher-only');
  const rows = 3;
  const vocab = 33;
  const teacher = random.normals(rows * vocab, 2);
  for (let i = 1; i < rows * vocab; i += 4) teacher[i] = NEG_INF;
  for (const divergence of ['forward-kl', 'jsd'] as const) {
    for (const dtype of ['f32', 'bf16'] as const) {
      const student = random.normals(rows * vocab, 2);
      const spec: DistillLossSpec =
        dtype === 'f32'
          ? { student, teacher, rows, vocab, divergence }
          : { student: float32ToBf16(student), teacher: float32ToBf16(teacher), rows, vocab, divergence };
      const result = distillLoss(spec);
      const ref = referenceDistillLoss(spec);
      const what = `${divergence} ${dtype}; ${seedNote(random)}`;
      t.true(Number.isFinite(result.loss), `finite loss: ${what}`);
      t.true(
        Math.abs(result.loss - ref.loss) <= 1e-5 * Math.abs(ref.loss),
        `loss ${result.loss} vs ${ref.loss}: ${what}`,
      );
      t.true(allFinite(logitsToFloat64(result.grad!)), `finite gradient: ${what}`);
    }
  }
});

test('−inf student logits where the teacher is finite: reverse KL and JSD stay finite (q = 0 terms vanish)', (t) => {
  const random = randomFor('13/neg-inf/student-only');
  const rows = 3;
  const vocab = 33;
  const student = random.normals(rows * vocab, 2);
  for (let i = 2; i < rows * vocab; i += 5) student[i] = NEG_INF;
  for (const divergence of ['reverse-kl', 'jsd'] as const) {
    matchesReference(
      t,
      { student, teacher: random.normals(rows * vocab, 2), rows, vocab, divergence },
      `${divergence}; ${seedNote(random)}`,
    );
  }
});

test('−inf teacher log-probabilities in a top-k teacher (tail and renormalize) are zero-probability categories', (t) => {
  const random = randomFor('13/neg-inf/topk');
  const rows = 3;
  const vocab = 20;
  for (const missing of ['tail', 'renormalize'] as const) {
    for (const divergence of ['forward-kl', 'jsd'] as const) {
      const teacher = randomTopKTeacher(random, rows, vocab, 5, missing);
      teacher.logprobs[1] = NEG_INF;
      teacher.logprobs[7] = NEG_INF;
      const spec: DistillLossSpec = {
        student: random.normals(rows * vocab, 2),
        rows,
        vocab,
        teacher,
        divergence,
      };
      matchesReference(t, spec, `${missing} ${divergence}; ${seedNote(random)}`);
    }
  }
});

test('a row of all −inf logits has no distribution: NaN loss', (t) => {
  const student = Float32Array.of(0, 1, 2, NEG_INF, NEG_INF, NEG_INF);
  const result = distillLoss({ student, rows: 2, vocab: 3, labels: Int32Array.of(1, 0) });
  t.true(Number.isNaN(result.loss));
  const grad = result.grad as Float32Array;
  t.true(allFinite(grad.subarray(0, 3)), 'the other row keeps a finite gradient');
});

// ---- NaN and +inf -------------------------------------------------------------------------------------------

test('a NaN logit gives a NaN loss (student or dense teacher, f32 and bf16), and other rows keep finite gradients', (t) => {
  const random = randomFor('13/nan');
  const rows = 3;
  const vocab = 21;
  for (const dtype of ['f32', 'bf16'] as const) {
    for (const where of ['student', 'teacher'] as const) {
      for (const divergence of ['forward-kl', 'reverse-kl', 'jsd'] as const) {
        const student = random.normals(rows * vocab, 2);
        const teacher = random.normals(rows * vocab, 2);
        (where === 'student' ? student : teacher)[vocab + 4] = Number.NaN; // row 1
        const spec: DistillLossSpec = {
          student: dtype === 'bf16' ? float32ToBf16(student) : student,
          teacher: dtype === 'bf16' ? float32ToBf16(teacher) : teacher,
          rows,
          vocab,
          labels: randomLabels(random, rows, vocab),
          divergence,
          stats: true,
        };
        const what = `${dtype}, NaN in the ${where}, ${divergence}`;
        const result = distillLoss(spec);
        t.true(Number.isNaN(result.loss), `loss is NaN: ${what}`);
        t.true(Number.isNaN(result.stats!.kd[1]), `stats.kd[1] is NaN: ${what}`);
        const grad = logitsToFloat64(result.grad!);
        t.true(
          allFinite(grad.subarray(0, vocab)) && allFinite(grad.subarray(2 * vocab)),
          `rows 0 and 2 stay finite: ${what}`,
        );
      }
    }
  }
});

test('a NaN student logit with labels only (no teacher) gives a NaN loss', (t) => {
  const student = Float32Array.of(0.5, Number.NaN, -1, 2);
  const result = distillLoss({ student, rows: 1, vocab: 4, labels: Int32Array.of(0) });
  t.true(Number.isNaN(result.loss));
});

test('a NaN top-k teacher log-probability is rejected or gives a NaN loss, never a silent finite loss', (t) => {
  for (const divergence of ['forward-kl', 'reverse-kl', 'jsd'] as const) {
    for (const missing of ['tail', 'renormalize'] as const) {
      if (divergence === 'reverse-kl' && missing === 'renormalize') continue; // rejected for k < V
      const teacher = {
        indices: Int32Array.of(0, 2),
        logprobs: Float32Array.of(-0.5, Number.NaN),
        k: 2,
        missing,
      };
      const spec: DistillLossSpec = {
        student: Float32Array.of(1, 2, 3, 4),
        rows: 1,
        vocab: 4,
        teacher,
        divergence,
        stats: true,
      };
      let result: DistillLossResult;
      try {
        result = distillLoss(spec);
      } catch (error) {
        // Rejecting the NaN up front is as good as propagating it.
        t.is((error as { code?: string }).code, 'ERR_SDVP_RANGE', `${divergence}, ${missing}: ${error}`);
        continue;
      }
      const grad = Array.from(result.grad as Float32Array);
      t.true(
        Number.isNaN(result.loss) && Number.isNaN(result.stats!.kd[0]),
        `${divergence}, missing '${missing}': loss ${result.loss}, stats.kd ${result.stats!.kd[0]}, gradient [${grad}]`,
      );
    }
  }
});

test('a +inf logit gives a non-finite loss', (t) => {
  const student = Float32Array.of(0.5, Number.POSITIVE_INFINITY, -1, 2);
  const result = distillLoss({
    student,
    rows: 1,
    vocab: 4,
    labels: Int32Array.of(0),
    teacher: Float32Array.of(0, 1, 2, 3),
  });
  t.false(Number.isFinite(result.loss), `loss ${result.loss}`);
});

test('argmax is the first index of the largest logit, −1 for a row of NaN', (t) => {
  const nan = Number.NaN;
  const student = Float32Array.of(1, 3, 3, 0, nan, nan, nan, nan, -5, -2, -2, NEG_INF);
  const teacher = Float32Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  const result = distillLoss({ student, teacher, rows: 3, vocab: 4, stats: true, grad: false });
  t.deepEqual(Array.from(result.stats!.argmax), [1, -1, 1]);
});

// ---- empty, ignored and zero-weight rows -----------------------------------------------------------------

for (const reduction of ['mean', 'sum', 'batchmean', 'none'] as const) {
  test(`an all-ignored batch without a teacher: loss 0, every gradient element 0, validRows 0 (${reduction})`, (t) => {
    const random = randomFor(`13/all-ignored/${reduction}`);
    for (const dtype of ['f32', 'bf16'] as const) {
      const rows = 5;
      const vocab = 19;
      const values = random.normals(rows * vocab, 2);
      const student = dtype === 'bf16' ? float32ToBf16(values) : values;
      const grad =
        dtype === 'bf16'
          ? new Uint16Array(rows * vocab).fill(0x7fc0)
          : new Float32Array(rows * vocab).fill(Number.NaN);
      const result = distillLoss({
        student,
        rows,
        vocab,
        labels: new Int32Array(rows).fill(-100),
        reduction,
        grad,
      });
      t.is(result.loss, 0, dtype);
      t.is(result.validRows, 0, dtype);
      t.true(
        logitsToFloat64(grad).every((x) => x === 0),
        `${dtype}: every element is written as 0`,
      );
      if (reduction === 'none') t.deepEqual(Array.from(result.rowLoss!), [0, 0, 0, 0, 0]);
    }
  });
}

test('an all-zero-weight batch with a teacher: loss 0, zero gradient, validRows 0', (t) => {
  const random = randomFor('13/all-zero-weight');
  const rows = 3;
  const vocab = 10;
  const result = distillLoss({
    student: random.normals(rows * vocab, 2),
    teacher: random.normals(rows * vocab, 2),
    rows,
    vocab,
    rowWeights: new Float32Array(rows),
  });
  t.is(result.loss, 0);
  t.is(result.validRows, 0);
  t.true((result.grad as Float32Array).every((x) => x === 0));
});

test('rows with weight 0 add nothing, are not counted and get a zero gradient; the others are unchanged', (t) => {
  const random = randomFor('13/zero-weight');
  const rows = 6;
  const vocab = 25;
  const spec: DistillLossSpec = {
    student: random.normals(rows * vocab, 2),
    teacher: random.normals(rows * vocab, 2),
    rows,
    vocab,
    labels: randomLabels(random, rows, vocab),
    reduction: 'sum',
  };
  const weights = Float32Array.of(1, 0, 1, 1, 0, 1);
  const weighted = distillLoss({ ...spec, rowWeights: weights });
  const full = distillLoss({ ...spec, reduction: 'none' });
  t.is(weighted.validRows, 4);
  const expected = [0, 2, 3, 5].reduce((sum, r) => sum + full.rowLoss![r], 0);
  t.true(
    Math.abs(weighted.loss - expected) <= 1e-6 * expected,
    `${weighted.loss} vs ${expected}; ${seedNote(random)}`,
  );
  const grad = weighted.grad as Float32Array;
  const fullGrad = full.grad as Float32Array;
  for (let r = 0; r < rows; r++) {
    const row = grad.subarray(r * vocab, (r + 1) * vocab);
    if (weights[r] === 0)
      t.true(
        row.every((x) => x === 0),
        `row ${r} is zero`,
      );
    else t.deepEqual(row, fullGrad.subarray(r * vocab, (r + 1) * vocab), `row ${r} as without weights`);
  }
});

test('a custom ignore index, inside [0, V) or negative, skips the CE of exactly those rows', (t) => {
  const random = randomFor('13/ignore-index');
  const rows = 4;
  const vocab = 9;
  const student = random.normals(rows * vocab, 2);
  for (const ignoreIndex of [3, -1, 2 ** 31 - 1]) {
    const labels = Int32Array.of(ignoreIndex, 5, ignoreIndex, 0);
    const spec: DistillLossSpec = {
      student,
      rows,
      vocab,
      labels,
      ignoreIndex,
      reduction: 'none',
      stats: true,
    };
    const result = matchesReference(t, spec, `ignoreIndex ${ignoreIndex}; ${seedNote(random)}`);
    t.is(result.validRows, 2);
    t.deepEqual([result.stats!.ce[0], result.stats!.ce[2]], [0, 0]);
    t.true(result.stats!.ce[1] > 0 && result.stats!.ce[3] > 0);
  }
  // With ignoreIndex 3, a label of 3 is ignored, and −100 is no longer the ignore index.
  const error = t.throws(() =>
    distillLoss({ student, rows, vocab, labels: Int32Array.of(-100, 1, 2, 3), ignoreIndex: 3 }),
  );
  t.is((error as { code?: string }).code, 'ERR_SDVP_LABEL_RANGE');
});

// ---- tiny shapes -------------------------------------------------------------------------------------------------

test('V = 1: CE and every divergence are 0 (a one-category distribution), z-loss alone remains', (t) => {
  const random = randomFor('13/v1');
  const rows = 5;
  const student = random.normals(rows, 3);
  const teacher = random.normals(rows, 3);
  const labels = new Int32Array(rows);
  const topk = { indices: new Int32Array(rows), logprobs: new Float32Array(rows), k: 1 };
  for (const divergence of ['forward-kl', 'reverse-kl', 'jsd'] as const) {
    for (const t2Teacher of [teacher, topk]) {
      const result = distillLoss({
        student,
        teacher: t2Teacher,
        rows,
        vocab: 1,
        labels,
        divergence,
        temperature: 1.7,
      });
      // CE = lse − s_y = 0 exactly; D is a difference of equal logsumexps, 0 up to fp32 rounding of |s| ≤ ~10.
      t.true(Math.abs(result.loss) <= 1e-5, `${divergence}: loss ${result.loss}`);
      t.true(
        (result.grad as Float32Array).every((x) => Math.abs(x) <= 1e-6),
        `${divergence}: gradient ~0`,
      );
    }
  }
  const zLoss = 0.1;
  const result = distillLoss({ student, rows, vocab: 1, labels, zLoss, reduction: 'sum' });
  const expected = Array.from(student).reduce((sum, s) => sum + zLoss * s * s, 0);
  t.true(Math.abs(result.loss - expected) <= 1e-6 * expected, `z-loss ${result.loss} vs ${expected}`);
  const grad = result.grad as Float32Array;
  for (let r = 0; r < rows; r++) {
    t.true(
      Math.abs(grad[r] - 2 * zLoss * student[r]) <= 1e-6 * (1 + Math.abs(student[r])),
      `d(z·lse²)/ds at row ${r}`,
    );
  }
});

test('N = 1, V = 2 by hand: CE = log(1 + 3) − log 3 and its gradient (softmax − one-hot)', (t) => {
  const student = Float32Array.of(0, Math.log(3));
  const result = distillLoss({ student, rows: 1, vocab: 2, labels: Int32Array.of(1), stats: true });
  t.true(Math.abs(result.loss - Math.log(4 / 3)) <= 1e-6, `${result.loss}`);
  const grad = result.grad as Float32Array;
  t.true(Math.abs(grad[0] - 0.25) <= 1e-6 && Math.abs(grad[1] + 0.25) <= 1e-6, `${Array.from(grad)}`);
  t.true(Math.abs(result.stats!.lse[0] - Math.log(4)) <= 1e-6);
  t.is(result.stats!.argmax[0], 1);
  t.is(result.stats!.kd[0], 0, 'no teacher: D = 0');
});

test('N = 1, V = 2 by hand: forward KL of Bernoulli(0.5) from Bernoulli(0.25) at tau 2 with t2', (t) => {
  // Teacher logits (0, 0) → p = (½, ½); student logits (0, 2·log 3) at τ = 2 → q = (¼, ¾).
  const student = Float32Array.of(0, 2 * Math.log(3));
  const result = distillLoss({
    student,
    teacher: Float32Array.of(0, 0),
    rows: 1,
    vocab: 2,
    temperature: 2,
    stats: true,
  });
  const kl = 0.5 * Math.log(0.5 / 0.25) + 0.5 * Math.log(0.5 / 0.75);
  t.true(Math.abs(result.stats!.kd[0] - kl) <= 1e-6, `kd ${result.stats!.kd[0]} vs ${kl}`);
  t.true(Math.abs(result.loss - 4 * kl) <= 4e-6, `loss ${result.loss} vs τ²·KL ${4 * kl}`);
  // dD/ds = (q − p)/τ, times τ².
  const grad = result.grad as Float32Array;
  t.true(
    Math.abs(grad[0] - 2 * (0.25 - 0.5)) <= 1e-6 && Math.abs(grad[1] - 2 * (0.75 - 0.5)) <= 1e-6,
    `${Array.from(grad)}`,
  );
});

// ---- large logits ------------------------------------------------------------------------------------------------

for (const divergence of ['forward-kl', 'reverse-kl', 'jsd'] as Divergence[]) {
  test(`logits of ±1e4 stay finite and match the reference (${divergence}, labels, dense teacher, f32 and bf16)`, (t) => {
    const random = randomFor(`13/large/${divergence}`);
    const rows = 4;
    const vocab = 50;
    const big = (n: number) =>
      Float32Array.from({ length: n }, () => (random.next() < 0.5 ? -1e4 : 1e4) + random.normal());
    const student = big(rows * vocab);
    const teacher = big(rows * vocab);
    // Labels on a large logit (rows 0, 2: CE = O(1)) and on a small one (rows 1, 3: CE ≈ 2e4).
    const labels = Int32Array.from({ length: rows }, (_, r) => r);
    for (let r = 0; r < rows; r++) student[r * vocab + r] = (r % 2 === 0 ? 1e4 : -1e4) + random.normal();
    for (const dtype of ['f32', 'bf16'] as const) {
      const spec: DistillLossSpec =
        dtype === 'f32'
          ? { student, teacher, rows, vocab, labels, divergence, stats: true }
          : {
              student: float32ToBf16(student),
              teacher: float32ToBf16(teacher),
              rows,
              vocab,
              labels,
              divergence,
              stats: true,
            };
      const result = distillLoss(spec);
      const what = `${dtype}; ${seedNote(random)}`;
      t.true(Number.isFinite(result.loss), `finite loss ${result.loss}: ${what}`);
      t.true(allFinite(logitsToFloat64(result.grad!)), `finite gradient: ${what}`);
      t.true(allFinite(result.stats!.lse) && allFinite(result.stats!.kd), `finite stats: ${what}`);
      const ref = referenceDistillLoss(spec);
      // Each row's lse ≈ 1e4 is an fp32 number with an ulp of 2^-10 ≈ 1e-3, and CE = lse − s_y inherits a
      // few of those ulps (CE itself is O(1) here when the label sits on a large logit): 4 ulp of lse per row.
      const lseUlps = ref.stats.lse.reduce((sum, lse) => sum + 4 * 2 ** -23 * Math.abs(lse), 0) / rows;
      t.true(
        Math.abs(result.loss - ref.loss) <= 1e-5 * Math.abs(ref.loss) + lseUlps,
        `loss ${result.loss} vs ${ref.loss} (allowed ${1e-5 * Math.abs(ref.loss)} + ${lseUlps}): ${what}`,
      );
      const { diff, norm } = maxNormDifference(logitsToFloat64(result.grad!), ref.grad);
      t.true(
        diff <= (dtype === 'bf16' ? 1e-2 : 1e-5) * norm,
        `gradient ‖Δ‖∞ ${diff} against ${norm}: ${what}`,
      );
    }
  });
}
