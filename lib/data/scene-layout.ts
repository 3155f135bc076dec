// Samples scene graphs: 2–4 digits of random MNIST samples from one split, each scaled, tinted and placed
// with a gap to its neighbours, so boxes never overlap.

import type { Box } from '../program/image';
import type { MnistDigits } from './mnist-digits';
import type { Random } from './random';
import { COLORS, COLOR_NAMES, type Scene, type SceneObject } from './scene';

export interface SceneLayoutOptions {
  /** Canvas side in pixels. Default 64. */
  size: number;
  minObjects: number;
  maxObjects: number;
  /** Digit box side as a fraction of the canvas side. Defaults 0.25–0.3125 (16–20 px at 64). */
  minScale: number;
  maxScale: number;
  /** Smallest gap between two digit boxes, in pixels. */
  gap: number;
}

export const DEFAULT_LAYOUT: SceneLayoutOptions = {
  size: 64,
  minObjects: 2,
  maxObjects: 4,
  minScale: 0.25,
  maxScale: 0.3125,
  gap: 3,
};

function separated(a: Box, b: Box, gap: number): boolean {
  return a[2] + gap <= b[0] || b[2] + gap <= a[0] || a[3] + gap <= b[1] || b[3] + gap <= a[1];
}

/** One scene whose digits are drawn from `pool` (MNIST sample indices of one split). */
export function sampleScene(
  random: Random,
  pool: readonly number[],
  digits: MnistDigits,
  options: SceneLayoutOptions = DEFAULT_LAYOUT,
): Scene {
  const { size } = options;
  const count = random.int(options.minObjects, options.maxObjects);
  for (;;) {
    const boxes: Box[] = [];
    for (let attempt = 0; attempt < 200 && boxes.length < count; attempt++) {
      const side = Math.round(size * random.uniform(options.minScale, options.maxScale));
      const x = random.int(1, size - 1 - side);
      const y = random.int(1, size - 1 - side);
      const box: Box = [x, y, x + side, y + side];
      if (boxes.every((other) => separated(box, other, options.gap))) boxes.push(box);
    }
    if (boxes.length < count) continue; // crowded: lay the scene out again
    const objects: SceneObject[] = boxes.map((box) => {
      const mnist = random.pick(pool);
      const color = random.pick(COLOR_NAMES);
      const rgb = COLORS[color].map((value) => Math.max(0, Math.min(255, value + random.int(-18, 18)))) as [
        number,
        number,
        number,
      ];
      return { digit: digits.labels[mnist], color, box, mnist, rgb };
    });
    return { width: size, height: size, objects, backgroundSeed: random.nextUint32() };
  }
}
