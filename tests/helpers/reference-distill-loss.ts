// An independent float64 reference of docs/objective.md (loss, gradient, per-row stats) for the kernel tests.
//
// It follows the document's general category formulation — teacher p_c and student q_c per category,
// g_c = ∂D/∂q_c and ∂D/∂z_j = q_j·(g_c(j) − Σ_c q_c g_c) — and never the kernels' closed forms, so
// an error shared by both would have to be made twice in different ways. Products q_j·g_c are formed
// as their limits where q_c underflows (forward KL: q_j·(−p_c/q_c) = −p_c·q_j/q_c), and 0·log 0 = 0.

import type { DistillLossSpec, LogitArray, TopKTeacher } from '../../lib/kernels/distill-loss-types';

export interface ReferenceResult {
  loss: number;
  /** dL/dS for every element (zeros for invalid rows), scaled as the kernel's. */
  grad: Float64Array;
  /** L_r per row (weighted; 0 for invalid rows). */
  rowLoss: Float64Array;
  stats: { lse: Float64Array; ce: Float64Array; kd: Float64Array; argmax: Int32Array };
  normalizer: number;
  validRows: number;
}

const wideBits = new Uint32Array(1);
const wideFloat = new Float32Array(wideBits.buffer);

/** One logit widened to a double: bf16 bits shifted into a float's high half, or the float itself. */
function logitAt(array: LogitArray, index: number): number {
  if (array instanceof Uint16Array) {
    wideBits[0] = array[index] << 16;
    return wideFloat[0];
  }
  return array[index];
}

/** Row `r` of a [rows, vocab] logits buffer as doubles. */
export function logitRow(array: LogitArray, r: number, vocab: number): Float64Array {
  const out = new Float64Array(vocab);
  for (let j = 0; j < vocab; j++) out[j] = logitAt(array, r * vocab + j);
  return out;
}

/** A whole logits buffer as doubles (bf16 widened exactly). */
export function logitsToFloat64(array: LogitArray): Float64Array {
  const out = new Float64Array(array.length);
  for (let i = 0; i < array.length; i++) out[i] = logitAt(array, i);
  return out;
}

/** log Σ exp(x_i); NaN for a NaN or +inf entry and for all −inf (no distribution). */
function logSumExp(values: ArrayLike<number>): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < values.length; i++) {
    const x = values[i];
    if (Number.isNaN(x) || x === Number.POSITIVE_INFINITY) return Number.NaN;
    if (x > max) max = x;
  }
  if (max === Number.NEGATIVE_INFINITY) return Number.NaN;
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += Math.exp(values[i] - max);
  return max + Math.log(sum);
}

/** x·(a − b) with 0·(anything) = 0, NaN kept (a NaN x is not 0). */
function xTimes(x: number, difference: number): number {
  return x === 0 ? 0 : x * difference;
}

/** The teacher and student of one row as categories: log p_c, log q_c, and each element's category. */
interface RowCategories {
  logP: Float64Array;
  logQ: Float64Array;
  /** category of element j */
  category: Int32Array;
  /** categories with more than one element (the top-k tail) */
  aggregated: boolean[];
}

function denseCategories(logQj: Float64Array, teacherRow: Float64Array, tau: number): RowCategories {
  const V = logQj.length;
  const scaled = teacherRow.map((x) => x / tau);
  const lse = logSumExp(scaled);
  const logP = scaled.map((x) => x - lse);
  const category = new Int32Array(V);
  for (let j = 0; j < V; j++) category[j] = j;
  return { logP, logQ: logQj.slice(), category, aggregated: new Array(V).fill(false) };
}

function topKCategories(logQj: Float64Array, teacher: TopKTeacher, r: number, tau: number): RowCategories {
  const V = logQj.length;
  const k = teacher.k;
  const mode = teacher.missing ?? 'tail';
  const indices = Array.from(teacher.indices.subarray(r * k, (r + 1) * k));
  const logprobs = Array.from(teacher.logprobs.subarray(r * k, (r + 1) * k), Number);
  const position = new Int32Array(V).fill(-1);
  indices.forEach((index, i) => {
    position[index] = i;
  });

  if (mode === 'renormalize') {
    // Over V categories: softmax of ℓ/τ on K, exactly zero elsewhere.
    const lse = logSumExp(logprobs.map((l) => l / tau));
    const logP = new Float64Array(V).fill(Number.NEGATIVE_INFINITY);
    indices.forEach((index, i) => {
      logP[index] = logprobs[i] / tau - lse;
    });
    const category = new Int32Array(V);
    for (let j = 0; j < V; j++) category[j] = j;
    return { logP, logQ: logQj.slice(), category, aggregated: new Array(V).fill(false) };
  }

  // Tail mode: the k entries, plus one tail category when k < V.
  const hasTail = k < V;
  const covered = logprobs.reduce((sum, l) => sum + Math.exp(l), 0);
  const missing = Math.max(0, 1 - covered);
  const teacherLogits = logprobs.map((l) => l / tau);
  if (hasTail) teacherLogits.push(missing > 0 ? Math.log(missing) / tau : Number.NEGATIVE_INFINITY);
  const lse = logSumExp(teacherLogits);
  const logP = Float64Array.from(teacherLogits, (x) => x - lse);
  const categories = k + (hasTail ? 1 : 0);
  const logQ = new Float64Array(categories);
  const category = new Int32Array(V);
  let tailSum = 0;
  for (let j = 0; j < V; j++) {
    if (position[j] >= 0) {
      category[j] = position[j];
      logQ[position[j]] = logQj[j];
    } else {
      category[j] = k;
      tailSum += Math.exp(logQj[j]); // q_tail as the sum of the student's tail probabilities
    }
  }
  if (hasTail) logQ[k] = Math.log(tailSum);
  const aggregated = new Array(categories).fill(false);
  if (hasTail) aggregated[k] = true;
  return { logP, logQ, category, aggregated };
}

/** D over categories and ∂D/∂z_j for each element, by the general chain rule. */
function divergenceAndGradient(
  cats: RowCategories,
  logQj: Float64Array,
  divergence: 'forward-kl' | 'reverse-kl' | 'jsd',
  beta: number,
): { value: number; gradZ: Float64Array } {
  const C = cats.logP.length;
  const p = cats.logP.map(Math.exp);
  const q = cats.logQ.map(Math.exp);
  const logM = new Float64Array(C);
  // q_c·g_c per category, with its 0·∞ limits.
  const qg = new Float64Array(C);
  let value = 0;
  for (let c = 0; c < C; c++) {
    const lp = cats.logP[c];
    const lq = cats.logQ[c];
    if (divergence === 'forward-kl') {
      value += xTimes(p[c], lp - lq);
      qg[c] = -p[c]; // q_c·(−p_c/q_c)
    } else if (divergence === 'reverse-kl') {
      value += xTimes(q[c], lq - lp);
      qg[c] = xTimes(q[c], lq - lp + 1);
    } else {
      const mix = beta * p[c] + (1 - beta) * q[c];
      logM[c] = Math.log(mix);
      const teacherPart = beta === 0 ? 0 : beta * xTimes(p[c], lp - logM[c]);
      const studentPart = beta === 1 ? 0 : (1 - beta) * xTimes(q[c], lq - logM[c]);
      value += teacherPart + studentPart;
      qg[c] = studentPart; // q_c·(1−b)·log(q_c/M_c)
    }
  }
  let meanG = 0;
  for (let c = 0; c < C; c++) meanG += qg[c];

  const V = logQj.length;
  const gradZ = new Float64Array(V);
  for (let j = 0; j < V; j++) {
    const c = cats.category[j];
    const qj = Math.exp(logQj[j]);
    let term: number; // q_j·g_c(j)
    if (divergence === 'forward-kl') {
      // q_j/q_c is 1 for a one-element category (even where q underflows); for the tail, a ratio of sums.
      const ratio = cats.aggregated[c] ? (qj === 0 ? 0 : Math.exp(logQj[j] - cats.logQ[c])) : 1;
      term = -p[c] * ratio;
    } else if (divergence === 'reverse-kl') {
      term = xTimes(qj, cats.logQ[c] - cats.logP[c] + 1);
    } else {
      term = beta === 1 ? 0 : xTimes(qj, (1 - beta) * (cats.logQ[c] - logM[c]));
    }
    gradZ[j] = term - qj * meanG;
  }
  return { value, gradZ };
}

/** Computes docs/objective.md in float64 for a spec as distillLoss takes it (inputs only are read). */
export function referenceDistillLoss(spec: DistillLossSpec): ReferenceResult {
  const { rows: N, vocab: V, student } = spec;
  const labels = spec.labels;
  const ignoreIndex = spec.ignoreIndex ?? -100;
  const teacher = spec.teacher;
  const hasTeacher = teacher !== undefined;
  const alpha = spec.ceWeight ?? (labels ? 1 : 0);
  const beta = spec.kdWeight ?? (hasTeacher ? 1 : 0);
  const tau = spec.temperature ?? 1;
  const kdScale = beta * ((spec.t2 ?? true) ? tau * tau : 1);
  const divergence = spec.divergence ?? 'forward-kl';
  const jsdBeta = spec.jsdBeta ?? 0.5;
  const eps = spec.labelSmoothing ?? 0;
  const zeta = spec.zLoss ?? 0;
  const reduction = spec.reduction ?? 'mean';
  const gradScale = spec.gradScale ?? 1;

  const weightOf = (r: number) => (spec.rowWeights ? spec.rowWeights[r] : 1);
  const hasLabelAt = (r: number) => labels !== undefined && labels[r] !== ignoreIndex;
  let validRows = 0;
  for (let r = 0; r < N; r++) if ((hasLabelAt(r) || hasTeacher) && weightOf(r) > 0) validRows++;
  let normalizer: number;
  if (spec.normalizer !== undefined) normalizer = spec.normalizer;
  else if (reduction === 'mean') normalizer = validRows;
  else if (reduction === 'batchmean') normalizer = N;
  else normalizer = 1;

  const grad = new Float64Array(N * V);
  const rowLoss = new Float64Array(N);
  const stats = {
    lse: new Float64Array(N),
    ce: new Float64Array(N),
    kd: new Float64Array(N),
    argmax: new Int32Array(N),
  };

  for (let r = 0; r < N; r++) {
    const s = logitRow(student, r, V);
    const w = weightOf(r);
    const hasLabel = hasLabelAt(r);
    const valid = (hasLabel || hasTeacher) && w > 0;
    const lse = logSumExp(s);
    stats.lse[r] = lse;
    let best = -1;
    for (let j = 0; j < V; j++) if (!Number.isNaN(s[j]) && (best < 0 || s[j] > s[best])) best = j;
    stats.argmax[r] = best;

    // Cross-entropy at temperature 1.
    let ce = 0;
    const gradCe = new Float64Array(V);
    if (hasLabel) {
      const y = labels![r];
      ce = (1 - eps) * (lse - s[y]) + zeta * lse * lse;
      if (eps !== 0) {
        let sum = 0;
        for (let j = 0; j < V; j++) sum += s[j];
        ce += eps * (lse - sum / V);
      }
      for (let j = 0; j < V; j++) {
        gradCe[j] = Math.exp(s[j] - lse) * (1 + 2 * zeta * lse) - eps / V - (j === y ? 1 - eps : 0);
      }
    }
    stats.ce[r] = ce;

    // Divergence at temperature τ.
    let kd = 0;
    let gradKd = new Float64Array(V);
    if (hasTeacher) {
      const z = s.map((x) => x / tau);
      const lseZ = logSumExp(z);
      const logQj = z.map((x) => x - lseZ);
      const cats = ArrayBuffer.isView(teacher)
        ? denseCategories(logQj, logitRow(teacher, r, V), tau)
        : topKCategories(logQj, teacher, r, tau);
      const { value, gradZ } = divergenceAndGradient(cats, logQj, divergence, jsdBeta);
      kd = value;
      gradKd = gradZ.map((g) => g / tau);
    }
    stats.kd[r] = kd;

    if (!valid) continue;
    rowLoss[r] = w * (alpha * ce + kdScale * kd);
    const coefficient = normalizer > 0 ? (gradScale * w) / normalizer : 0;
    for (let j = 0; j < V; j++) grad[r * V + j] = coefficient * (alpha * gradCe[j] + kdScale * gradKd[j]);
  }

  let total = 0;
  for (let r = 0; r < N; r++) total += rowLoss[r];
  const loss = reduction === 'none' ? total : normalizer > 0 ? total / normalizer : 0;
  return { loss, grad, rowLoss, stats, normalizer, validRows };
}

/** ‖a − b‖∞ and ‖b‖∞ over two arrays of equal length (NaN anywhere gives NaN). */
export function maxNormDifference(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
): { diff: number; norm: number } {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} ≠ ${expected.length}`);
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    if (Number.isNaN(d)) return { diff: Number.NaN, norm: Number.NaN };
    if (d > diff) diff = d;
    const e = Math.abs(expected[i]);
    if (e > norm) norm = e;
  }
  return { diff, norm };
}
