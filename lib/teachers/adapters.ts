// Adapters: teacher outputs (in the teacher's label space) → what the student is trained on. Pure functions.
//
// - A class distribution becomes top-k log-probabilities over the student's answer vocabulary: the k most
//   probable labels the student has. Labels the student lacks, and those beyond k, are left out, so their
//   mass becomes the fused kernel's 'tail' category (missing: 'tail'): the student is pushed to put that much
//   probability on its other answers, without saying which. Unused slots are padded with unused indices at
//   log-probability −∞ (probability 0).
// - Detections become a distribution over the student's grounding grid (lib/models/grounding.ts): box centres
//   split bilinearly over cells, "nothing matches" when no box scores at least `minScore`.

import { type GridLayout, gridTargetFromBoxes, groundingWidth } from '../models/grounding';
import type { ClassificationOutput, DetectionOutput } from './teacher-output';

export interface TopKRows {
  indices: Int32Array;
  logprobs: Float32Array;
  k: number;
  missing: 'tail';
}

/** Writes row `row` of a top-k teacher from one class distribution. */
export function classificationToTopKRow(
  output: ClassificationOutput,
  answerIndex: ReadonlyMap<string, number>,
  target: TopKRows,
  row: number,
): void {
  const { k, indices, logprobs } = target;
  const kept = output.labels
    .map((label, i) => ({ index: answerIndex.get(label), p: output.probs[i] }))
    .filter((entry): entry is { index: number; p: number } => entry.index !== undefined && entry.p > 0)
    .sort((a, b) => b.p - a.p || a.index - b.index)
    .slice(0, k);
  const used = new Set<number>();
  let slot = 0;
  for (const entry of kept) {
    indices[row * k + slot] = entry.index;
    logprobs[row * k + slot] = Math.log(entry.p);
    used.add(entry.index);
    slot++;
  }
  for (let candidate = 0; slot < k; candidate++) {
    if (used.has(candidate)) continue;
    indices[row * k + slot] = candidate;
    logprobs[row * k + slot] = Number.NEGATIVE_INFINITY;
    slot++;
  }
}

/** A top-k teacher for a batch of class distributions. `k` must not exceed the vocabulary size. */
export function classificationToTopK(
  outputs: readonly ClassificationOutput[],
  answerVocab: readonly string[],
  k: number,
): TopKRows {
  if (!Number.isInteger(k) || k < 1 || k > answerVocab.length) {
    throw new RangeError(`k must be an integer in [1, ${answerVocab.length}], but is ${k}`);
  }
  const index = new Map(answerVocab.map((answer, i) => [answer, i]));
  const target: TopKRows = {
    indices: new Int32Array(outputs.length * k),
    logprobs: new Float32Array(outputs.length * k),
    k,
    missing: 'tail',
  };
  outputs.forEach((output, row) => classificationToTopKRow(output, index, target, row));
  return target;
}

/** How sure a teacher is of one output (for pacing): the top probability, or the mean box score (1 for "none"). */
export function teacherConfidence(output: ClassificationOutput | DetectionOutput): number {
  if ('boxes' in output) {
    if (output.scores.length === 0) return 1;
    return (
      output.scores.reduce((sum, score) => sum + Math.min(1, Math.max(0, score)), 0) / output.scores.length
    );
  }
  return output.probs.reduce((best, p) => Math.max(best, p), 0);
}

/**
 * Writes the grid distribution of one detection output into `out` at `offset` (groundingWidth(layout) entries):
 * boxes in the pixels of the `width` × `height` image the teacher and the student both saw. Returns false when
 * the output cannot be expressed (no box and no "nothing matches" entry).
 */
export function detectionToGrid(
  output: DetectionOutput,
  layout: GridLayout,
  image: { width: number; height: number },
  out: Float32Array,
  offset = 0,
  minScore = 0,
): boolean {
  const boxes = output.boxes.filter((_, i) => output.scores[i] >= minScore);
  return gridTargetFromBoxes(boxes, layout, image, out, offset);
}

/** Natural logs of a distribution as dense teacher logits (−∞ where the probability is 0). */
export function distributionToLogits(
  distribution: Float32Array,
  out: Float32Array = new Float32Array(distribution.length),
): Float32Array {
  for (let i = 0; i < distribution.length; i++)
    out[i] = distribution[i] > 0 ? Math.log(distribution[i]) : Number.NEGATIVE_INFINITY;
  return out;
}

export { groundingWidth };
