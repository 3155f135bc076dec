// What a teacher answers, in its own label space: a class distribution (labels with probabilities) or
// detections (boxes with scores). Every output from outside is validated before it is stored.

import type { Box } from '../program/image';

export interface ClassificationOutput {
  labels: string[];
  probs: number[];
}

export interface DetectionOutput {
  /** Boxes in the pixels of the image the teacher was given (the crop, when the instance has a box). */
  boxes: Box[];
  scores: number[];
}

export type TeacherOutput = ClassificationOutput | DetectionOutput;
export type TeacherOutputKind = 'classification' | 'detection';

export function isDetection(output: TeacherOutput): output is DetectionOutput {
  return 'boxes' in output;
}

function finite(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

/**
 * Checks one output; returns it normalised (extra fields dropped) or a sentence saying what is wrong.
 * `kind` is what the teacher is declared to produce.
 */
export function checkTeacherOutput(value: unknown, kind: TeacherOutputKind): TeacherOutput | string {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    return 'an output must be a JSON object';
  const record = value as Record<string, unknown>;
  if (kind === 'classification') {
    const { labels, probs } = record;
    if (!Array.isArray(labels) || labels.length === 0 || !labels.every((label) => typeof label === 'string'))
      return "'labels' must be a non-empty array of strings";
    if (!Array.isArray(probs) || probs.length !== labels.length)
      return `'probs' must be an array of ${labels.length} numbers (one per label)`;
    if (!probs.every((p) => finite(p) && p >= 0 && p <= 1 + 1e-6)) return "'probs' must be numbers in [0, 1]";
    if (new Set(labels).size !== labels.length) return "'labels' must not repeat a label";
    return { labels: [...(labels as string[])], probs: [...(probs as number[])] };
  }
  const { boxes, scores } = record;
  if (!Array.isArray(boxes)) return "'boxes' must be an array of [x1, y1, x2, y2] boxes";
  for (const box of boxes) {
    if (!Array.isArray(box) || box.length !== 4 || !box.every(finite) || box[2] < box[0] || box[3] < box[1])
      return "'boxes' must hold [x1, y1, x2, y2] boxes of finite numbers with x2 ≥ x1 and y2 ≥ y1";
  }
  if (!Array.isArray(scores) || scores.length !== boxes.length || !scores.every(finite))
    return `'scores' must be an array of ${boxes.length} numbers (one per box)`;
  return { boxes: boxes.map((box) => [...box] as unknown as Box), scores: [...(scores as number[])] };
}
