// Digit scenes: the scene graph (which digit, which colour, where) and its rendering to RGB pixels from the
// real MNIST samples, tinted and scaled, over a lightly textured background.

import type { Box } from '../program/image';
import { MNIST_SIDE, type MnistDigits, mnistSample } from './mnist-digits';
import { Random } from './random';

/** The named colours digits are tinted with, and their base RGB. */
export const COLORS = {
  red: [225, 45, 40],
  green: [45, 195, 60],
  blue: [55, 95, 245],
  yellow: [235, 215, 45],
  magenta: [215, 55, 215],
  cyan: [45, 205, 215],
} as const satisfies Record<string, readonly [number, number, number]>;

export type ColorName = keyof typeof COLORS;
export const COLOR_NAMES = Object.keys(COLORS) as ColorName[];

/**
 * One digit of a scene. `box` is where the central 20×20 of the MNIST sample (the region MNIST normalises
 * each digit's ink into) lands, `[x1, y1, x2, y2]` in pixels with x2, y2 exclusive; it is square.
 */
export interface SceneObject {
  digit: number;
  color: ColorName;
  box: Box;
  /** The MNIST sample index drawn. */
  mnist: number;
  /** The tint actually used (the named colour with a little per-object jitter). */
  rgb: [number, number, number];
}

export interface Scene {
  width: number;
  height: number;
  objects: SceneObject[];
  /** Seed of the background texture. */
  backgroundSeed: number;
}

/** MNIST keeps a 4-pixel border around the 20×20 box its digits are normalised into. */
const MNIST_BORDER = 4;
const MNIST_CORE = MNIST_SIDE - 2 * MNIST_BORDER;

/** A dark, softly mottled background: value noise on a coarse grid, interpolated bilinearly. */
function renderBackground(scene: Scene, out: Uint8Array): void {
  const random = new Random(scene.backgroundSeed);
  const base = random.int(18, 42);
  const tint = [random.int(-6, 6), random.int(-6, 6), random.int(-6, 6)];
  const grid = 5;
  const noise = new Float32Array((grid + 1) * (grid + 1));
  for (let i = 0; i < noise.length; i++) noise[i] = random.uniform(-14, 14);
  const { width, height } = scene;
  for (let y = 0; y < height; y++) {
    const gy = (y / height) * grid;
    const iy = Math.min(grid - 1, Math.floor(gy));
    const fy = gy - iy;
    for (let x = 0; x < width; x++) {
      const gx = (x / width) * grid;
      const ix = Math.min(grid - 1, Math.floor(gx));
      const fx = gx - ix;
      const n00 = noise[iy * (grid + 1) + ix];
      const n01 = noise[iy * (grid + 1) + ix + 1];
      const n10 = noise[(iy + 1) * (grid + 1) + ix];
      const n11 = noise[(iy + 1) * (grid + 1) + ix + 1];
      const value = base + (n00 * (1 - fx) + n01 * fx) * (1 - fy) + (n10 * (1 - fx) + n11 * fx) * fy;
      const offset = (y * width + x) * 3;
      for (let c = 0; c < 3; c++) out[offset + c] = clampByte(value + tint[c]);
    }
  }
}

function clampByte(value: number): number {
  return value <= 0 ? 0 : value >= 255 ? 255 : Math.round(value);
}

/** Bilinear ink intensity (0–1) of an MNIST sample at fractional sample coordinates; 0 outside. */
function inkAt(sample: Uint8Array, u: number, v: number): number {
  const x0 = Math.floor(u);
  const y0 = Math.floor(v);
  const fx = u - x0;
  const fy = v - y0;
  let sum = 0;
  for (let dy = 0; dy <= 1; dy++) {
    const y = y0 + dy;
    if (y < 0 || y >= MNIST_SIDE) continue;
    const wy = dy === 0 ? 1 - fy : fy;
    for (let dx = 0; dx <= 1; dx++) {
      const x = x0 + dx;
      if (x < 0 || x >= MNIST_SIDE) continue;
      sum += sample[y * MNIST_SIDE + x] * wy * (dx === 0 ? 1 - fx : fx);
    }
  }
  return sum / 255;
}

/** Composites one digit over `out`: its whole 28×28 sample, scaled so the central 20×20 fills `box`. */
function renderObject(scene: Scene, object: SceneObject, digits: MnistDigits, out: Uint8Array): void {
  const sample = mnistSample(digits, object.mnist);
  const [x1, y1, x2] = object.box;
  const scale = (x2 - x1) / MNIST_CORE; // output pixels per sample pixel
  const margin = Math.ceil(MNIST_BORDER * scale);
  const { width, height } = scene;
  for (let y = Math.max(0, y1 - margin); y < Math.min(height, object.box[3] + margin); y++) {
    const v = MNIST_BORDER + (y + 0.5 - y1) / scale - 0.5;
    for (let x = Math.max(0, x1 - margin); x < Math.min(width, x2 + margin); x++) {
      const alpha = inkAt(sample, MNIST_BORDER + (x + 0.5 - x1) / scale - 0.5, v);
      if (alpha <= 0) continue;
      const offset = (y * width + x) * 3;
      for (let c = 0; c < 3; c++)
        out[offset + c] = clampByte(out[offset + c] * (1 - alpha) + object.rgb[c] * alpha);
    }
  }
}

/** Renders a scene to interleaved RGB bytes (`width * height * 3`). */
export function renderScene(scene: Scene, digits: MnistDigits): Uint8Array {
  const out = new Uint8Array(scene.width * scene.height * 3);
  renderBackground(scene, out);
  for (const object of scene.objects) renderObject(scene, object, digits, out);
  return out;
}

/** The fraction of a box's area that lies inside a region `[x1, y1, x2, y2]`. */
export function visibleFraction(box: Box, region: Box): number {
  const w = Math.max(0, Math.min(box[2], region[2]) - Math.max(box[0], region[0]));
  const h = Math.max(0, Math.min(box[3], region[3]) - Math.max(box[1], region[1]));
  const area = (box[2] - box[0]) * (box[3] - box[1]);
  return area > 0 ? (w * h) / area : 0;
}

/** Intersection over union of two boxes. */
export function boxIou(a: Box, b: Box): number {
  const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = w * h;
  const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return union > 0 ? inter / union : 0;
}

/** Greedy one-to-one matching at IoU ≥ 0.5: how many of `truth` some prediction finds. */
export function matchedBoxes(predicted: readonly Box[], truth: readonly Box[]): number {
  const used = new Set<number>();
  let matched = 0;
  for (const target of truth) {
    let best = -1;
    let bestIou = 0.5;
    predicted.forEach((box, i) => {
      const iou = boxIou(box, target);
      if (!used.has(i) && iou >= bestIou) {
        best = i;
        bestIou = iou;
      }
    });
    if (best >= 0) {
      used.add(best);
      matched++;
    }
  }
  return matched;
}
