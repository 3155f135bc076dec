// Shared fixtures of the model tests: a small synthetic visual question task for tiny-vlm, seeded
// random tensors, and whether this build has the LibTorch runtime.

import { type Tensor, torchAvailable } from '../../lib/models';

/** Why model tests are skipped, or undefined when the LibTorch runtime is present. */
export function torchSkipReason(): string | undefined {
  return torchAvailable()
    ? undefined
    : 'this sdvp build has no LibTorch runtime (apt-get install -y libtorch-dev && npx sdvp build --torch on)';
}

/** A small deterministic PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomTensor(shape: number[], seed: number, scale = 1): Tensor {
  const next = rng(seed);
  const size = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(size);
  for (let i = 0; i < size; i++) data[i] = (next() * 2 - 1) * scale;
  return { data, shape };
}

/** Token and answer vocabularies of the quadrant task. */
export const TASK_TOKENS = ['<pad>', '<unk>', 'where', 'is', 'the', 'object', 'what', 'color', 'left', '?'];
export const TASK_ANSWERS = [
  'top-left',
  'top-right',
  'bottom-left',
  'bottom-right',
  'red',
  'green',
  'blue',
  'yes',
  'no',
];
export const TASK_IMAGE = 16;
const QUESTIONS = [
  ['where', 'is', 'the', 'object', '?'],
  ['what', 'color', 'is', 'the', 'object', '?'],
  ['is', 'the', 'object', 'left', '?'],
];
export const TASK_TOKENS_PER_QUESTION = 6;

/** A small tiny-vlm for the quadrant task (trains in seconds). */
export const TASK_MODEL_CONFIG = {
  channels: [8, 16, 32],
  dim: 32,
  hidden: 64,
  gridSize: 2,
  maxTokens: 6,
  imageSize: 16,
  tokenVocab: TASK_TOKENS,
  answerVocab: TASK_ANSWERS,
};

export interface TaskBatch {
  images: Tensor;
  tokens: Tensor;
  labels: Int32Array;
}

/**
 * The quadrant task: a coloured 4×4 square on a noisy 16×16 image; the question asks where it is, what
 * colour it is, or whether it is on the left. The answer needs both the image and the question.
 */
export function taskBatch(rows: number, seed: number): TaskBatch {
  const next = rng(seed);
  const side = TASK_IMAGE;
  const images = new Float32Array(rows * 3 * side * side);
  const tokens = new Int32Array(rows * TASK_TOKENS_PER_QUESTION);
  const labels = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    const base = r * 3 * side * side;
    for (let i = 0; i < 3 * side * side; i++) images[base + i] = (next() - 0.5) * 0.2;
    const quadrant = Math.floor(next() * 4);
    const color = Math.floor(next() * 3);
    const top = (quadrant >> 1) * (side / 2) + Math.floor(next() * (side / 2 - 4));
    const left = (quadrant & 1) * (side / 2) + Math.floor(next() * (side / 2 - 4));
    for (let y = top; y < top + 4; y++) {
      for (let x = left; x < left + 4; x++) images[base + color * side * side + y * side + x] = 1;
    }
    const kind = Math.floor(next() * 3);
    QUESTIONS[kind].forEach((word, i) => {
      tokens[r * TASK_TOKENS_PER_QUESTION + i] = TASK_TOKENS.indexOf(word);
    });
    labels[r] = kind === 0 ? quadrant : kind === 1 ? 4 + color : (quadrant & 1) === 0 ? 7 : 8;
  }
  return {
    images: { data: images, shape: [rows, 3, side, side] },
    tokens: { data: tokens, shape: [rows, TASK_TOKENS_PER_QUESTION] },
    labels,
  };
}

/** Fraction of rows whose argmax equals the label. */
export function accuracy(logits: Float32Array, labels: Int32Array, classes: number): number {
  let correct = 0;
  for (let r = 0; r < labels.length; r++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (logits[r * classes + c] > logits[r * classes + best]) best = c;
    if (best === labels[r]) correct++;
  }
  return correct / labels.length;
}
