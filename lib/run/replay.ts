// Anti-forgetting: self-distillation from a frozen copy of the student as it was before the stage, on inputs
// replayed from the student's general training mix (never an evaluation split). The frozen model's soft
// labels for a whole stage are computed up front in large batches, so the training loop only trains.

import type { GeneralMix } from '../data/general-mix';
import type { StudentMethod } from './stage-items';
import type { Student, StudentView } from './student';

export interface ReplaySet {
  method: StudentMethod;
  views: StudentView[];
  /** The frozen model's top-k log-probabilities per view (k entries each), the rest being the tail. */
  indices: Int32Array;
  logprobs: Float32Array;
  k: number;
}

function topK(
  logits: Float32Array,
  rows: number,
  width: number,
  k: number,
): { indices: Int32Array; logprobs: Float32Array } {
  const indices = new Int32Array(rows * k);
  const logprobs = new Float32Array(rows * k);
  const order = new Array<number>(width);
  for (let row = 0; row < rows; row++) {
    const base = row * width;
    let max = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < width; j++) max = Math.max(max, logits[base + j]);
    let sum = 0;
    for (let j = 0; j < width; j++) sum += Math.exp(logits[base + j] - max);
    const lse = max + Math.log(sum);
    for (let j = 0; j < width; j++) order[j] = j;
    order.sort((a, b) => logits[base + b] - logits[base + a] || a - b);
    for (let i = 0; i < k; i++) {
      indices[row * k + i] = order[i];
      logprobs[row * k + i] = Math.min(0, logits[base + order[i]] - lse);
    }
  }
  return { indices, logprobs };
}

/** Draws `count` replay inputs for one head from the mix (in the mix's order: the same on every rank). */
export function drawReplayViews(mix: GeneralMix, method: StudentMethod, count: number): StudentView[] {
  const views: StudentView[] = [];
  for (let i = 0; i < count; i++) {
    const sample = method === 'answer' ? mix.answer() : mix.ground();
    views.push({ image: sample.image, region: sample.region, text: sample.text });
  }
  return views;
}

/** The frozen student's top-k log-probabilities of replay inputs (k at most the head's width). */
export async function labelReplayViews(
  frozen: Student,
  views: StudentView[],
  method: StudentMethod,
  k: number,
  signal?: AbortSignal,
): Promise<Pick<ReplaySet, 'indices' | 'logprobs' | 'k'>> {
  const logits =
    method === 'answer' ? await frozen.answerLogits(views, signal) : await frozen.groundScores(views, signal);
  const width = views.length > 0 ? logits.length / views.length : 1;
  const kept = Math.min(k, width);
  return { ...topK(logits, views.length, width, kept), k: kept };
}

/** Draws `count` replay inputs for one head and labels them with the frozen student. */
export async function buildReplaySet(
  frozen: Student,
  mix: GeneralMix,
  method: StudentMethod,
  count: number,
  k: number,
  signal?: AbortSignal,
): Promise<ReplaySet> {
  const views = drawReplayViews(mix, method, count);
  return { method, views, ...(await labelReplayViews(frozen, views, method, k, signal)) };
}
