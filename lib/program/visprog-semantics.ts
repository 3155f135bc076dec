// VisProg's own semantics for its non-neural steps: crop geometry, fixed LOC regions, COUNT (engine/step_interpreters.py).

import type { Box } from './image';

/** Python's int(): truncation toward zero. */
const int = Math.trunc;

/**
 * CROP's box: the first box enlarged `factor` times about its centre (half-sizes and centre truncated to
 * integers), clamped to the image.
 */
export function visprogExpandBox(box: Box, width: number, height: number, factor = 1.5): Box {
  const [x1, y1, x2, y2] = box;
  const halfWidth = int((factor * (x2 - x1)) / 2);
  const halfHeight = int((factor * (y2 - y1)) / 2);
  const cx = int((x1 + x2) / 2);
  const cy = int((y1 + y2) / 2);
  return [
    Math.max(0, cx - halfWidth),
    Math.max(0, cy - halfHeight),
    Math.min(cx + halfWidth, width),
    Math.min(cy + halfHeight, height),
  ];
}

/** The CROP modules that VisProg implements as plain CROP (the depth relations have no geometry of their own). */
export const VISPROG_CROP_LIKE: readonly string[] = Object.freeze([
  'CROP',
  'CROP_FRONTOF',
  'CROP_INFRONTOF',
  'CROP_INFRONT',
  'CROP_BEHIND',
  'CROP_AHEAD',
]);

export const VISPROG_CROP_MODULES: readonly string[] = Object.freeze([
  ...VISPROG_CROP_LIKE,
  'CROP_LEFTOF',
  'CROP_RIGHTOF',
  'CROP_ABOVE',
  'CROP_BELOW',
]);

/**
 * What CROP_ABOVE and CROP_BELOW crop when no box was found. VisProg itself crops the left half of the image
 * for both (`'visprog'`, the default, so traces match VisProg's); `'matching-half'` crops the top or bottom half.
 */
export type AboveBelowFallback = 'visprog' | 'matching-half';

/**
 * The box a CROP-family module crops, for an image of `width` x `height`, or null when the module returns
 * the image unchanged (CROP with no box). `box` is the first box found, or undefined when there was none.
 */
export function visprogCropBox(
  module: string,
  box: Box | undefined,
  width: number,
  height: number,
  aboveBelowFallback: AboveBelowFallback = 'visprog',
): Box | null {
  const w = width;
  const h = height;
  if (VISPROG_CROP_LIKE.includes(module)) return box ? visprogExpandBox(box, w, h) : null;
  const leftHalf: Box = [0, 0, int(w / 2), h - 1];
  switch (module) {
    case 'CROP_RIGHTOF':
      return box ? [int((box[0] + box[2]) / 2), 0, w - 1, h - 1] : [int(w / 2), 0, w - 1, h - 1];
    case 'CROP_LEFTOF':
      return box ? [0, 0, int((box[0] + box[2]) / 2), h - 1] : leftHalf;
    case 'CROP_ABOVE':
      if (box) return [0, 0, w - 1, int((box[1] + box[3]) / 2)];
      return aboveBelowFallback === 'visprog' ? leftHalf : [0, 0, w - 1, int(h / 2)];
    case 'CROP_BELOW':
      if (box) return [0, int((box[1] + box[3]) / 2), w - 1, h - 1];
      return aboveBelowFallback === 'visprog' ? leftHalf : [0, int(h / 2), w - 1, h - 1];
    default:
      throw new RangeError(`${module} is not a VisProg crop module`);
  }
}

/** The fixed box LOC returns for TOP, BOTTOM, LEFT and RIGHT (no detector runs), or undefined for other objects. */
export function visprogLocRegion(object: unknown, width: number, height: number): Box | undefined {
  const w = width;
  const h = height;
  switch (object) {
    case 'TOP':
      return [0, 0, w - 1, int(h / 2)];
    case 'BOTTOM':
      return [0, int(h / 2), w - 1, h - 1];
    case 'LEFT':
      return [0, 0, int(w / 2), h - 1];
    case 'RIGHT':
      return [int(w / 2), 0, w - 1, h - 1];
    default:
      return undefined;
  }
}

/** Whether a value is a box `[x1, y1, x2, y2]` of finite numbers. */
export function isBox(value: unknown): value is Box {
  return (
    Array.isArray(value) &&
    value.length === 4 &&
    value.every((v) => typeof v === 'number' && Number.isFinite(v))
  );
}

/** A detected object as VisProg's SEG/FACEDET/SELECT/CLASSIFY pass them on: a box with optional extras. */
export interface VisualObject {
  box: Box;
  category?: string;
  score?: number;
  /** Class assigned by CLASSIFY. */
  className?: string;
  /** Row-major mask over the image the object was found in (1 = object), when the module gives one. */
  mask?: Uint8Array;
}

export function isVisualObject(value: unknown): value is VisualObject {
  return (
    value !== null && typeof value === 'object' && !Array.isArray(value) && isBox((value as VisualObject).box)
  );
}

/** The box of a list entry that is either a box or an object with a box. */
export function regionBox(value: unknown): Box | undefined {
  if (isBox(value)) return value;
  if (isVisualObject(value)) return value.box;
  return undefined;
}
