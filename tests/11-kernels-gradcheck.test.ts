// The kernel's gradient against central finite differences of its own loss, for every divergence and teacher kind.

import test from 'ava';
import type { ExecutionContext } from 'ava';
import { type DistillLossSpec, type Divergence, distillLoss } from '../lib';
import { type Random, randomFor, randomLabels, randomTopKTeacher, seedNote } from './helpers/random';
import { referenceDistillLoss } from './helpers/reference-distill-loss';

const ROWS = 2;
const VOCAB = 9;
const K = 3;
/** The step: large enough that fp32 rounding of the loss (~1e-7 relative) stays below the truncation error. */
const H = 1e-2;

type TeacherKind = 'none' | 'dense' | 'topk-tail' | 'topk-renormalize';

function makeSpec(
  random: Random,
  divergence: Divergence,
  teacher: TeacherKind,
  temperature: number,
): DistillLossSpec {
  const spec: DistillLossSpec = {
    student: random.normals(ROWS * VOCAB, 2),
    rows: ROWS,
    vocab: VOCAB,
    labels: randomLabels(random, ROWS, VOCAB),
    divergence,
    jsdBeta: 0.3,
    temperature,
    rowWeights: Float32Array.of(0.5, 1.5),
    labelSmoothing: 0.1,
    zLoss: 0.05,
    reduction: 'mean',
  };
  if (teacher === 'dense') spec.teacher = random.normals(ROWS * VOCAB, 2);
  if (teacher === 'topk-tail') spec.teacher = randomTopKTeacher(random, ROWS, VOCAB, K, 'tail');
  if (teacher === 'topk-renormalize') spec.teacher = randomTopKTeacher(random, ROWS, VOCAB, K, 'renormalize');
  return spec;
}

/** Central differences of `loss` at each student element, stepping in fp32 and dividing by the real step. */
function finiteDifferences(spec: DistillLossSpec, loss: (spec: DistillLossSpec) => number): Float64Array {
  const base = spec.student as Float32Array;
  const out = new Float64Array(base.length);
  for (let i = 0; i < base.length; i++) {
    const plus = base.slice();
    const minus = base.slice();
    plus[i] = Math.fround(base[i] + H);
    minus[i] = Math.fround(base[i] - H);
    const step = plus[i] - minus[i];
    out[i] =
      (loss({ ...spec, student: plus, grad: false }) - loss({ ...spec, student: minus, grad: false })) / step;
  }
  return out;
}

function compare(
  t: ExecutionContext,
  gradient: ArrayLike<number>,
  numeric: Float64Array,
  tolerance: (g: number) => number,
  note: string,
) {
  for (let i = 0; i < numeric.length; i++) {
    const row = Math.floor(i / VOCAB);
    const column = i % VOCAB;
    t.true(
      Math.abs(gradient[i] - numeric[i]) <= tolerance(gradient[i]),
      `d loss / d s[${row}, ${column}]: gradient ${gradient[i]} vs finite difference ${numeric[i]}: ${note}`,
    );
  }
}

const cases: Array<[Divergence, TeacherKind]> = [];
for (const divergence of ['forward-kl', 'reverse-kl', 'jsd'] as const) {
  for (const teacher of ['dense', 'topk-tail', 'topk-renormalize'] as const) {
    // Reverse KL against a renormalised top-k teacher with k < V is infinite (and rejected).
    if (!(divergence === 'reverse-kl' && teacher === 'topk-renormalize')) cases.push([divergence, teacher]);
  }
}
cases.push(['forward-kl', 'none']);

for (const [divergence, teacher] of cases) {
  for (const temperature of [1, 1.7]) {
    const title = `${divergence}, teacher ${teacher}, tau ${temperature} (labels, smoothing, z-loss, weights)`;

    test(`gradient equals finite differences of the loss: ${title}`, (t) => {
      const random = randomFor(`11-kernels-gradcheck/${title}`);
      const spec = makeSpec(random, divergence, teacher, temperature);
      const gradient = distillLoss(spec).grad as Float32Array;
      const numeric = finiteDifferences(spec, (s) => distillLoss(s).loss);
      // Truncation error h²/6·|L'''| and fp32 loss rounding ~1e-7·|L|/h are both ~1e-5 here.
      compare(t, gradient, numeric, (g) => 2e-4 + 1e-3 * Math.abs(g), `${title}; ${seedNote(random)}`);
    });

    test(`reference gradient equals finite differences of the reference loss: ${title}`, (t) => {
      const random = randomFor(`11-kernels-gradcheck/reference/${title}`);
      const spec = makeSpec(random, divergence, teacher, temperature);
      const gradient = referenceDistillLoss(spec).grad;
      const numeric = finiteDifferences(spec, (s) => referenceDistillLoss(s).loss);
      // Float64 loss: only the truncation error (~1e-5 at h = 1e-2) remains.
      compare(t, gradient, numeric, (g) => 1e-4 + 1e-3 * Math.abs(g), `${title}; ${seedNote(random)}`);
    });
  }
}
