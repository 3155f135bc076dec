// Grounding on a grid: the documented rule that turns a model's grid scores into boxes, and its inverse,
// the target distribution over grid cells that a set of boxes asks for. Students and the built-in
// detector teacher share both, so a teacher's boxes and a student's grid mean the same thing.
//
// Layout: a row of scores has G = gridSize² cells (row-major, cell (i, j) covers rows i·H/n..(i+1)·H/n of the
// image the model saw) and, optionally, one more entry: "nothing matches".
//
// Boxes → distribution: every box's centre is split bilinearly over the four cell centres around it (so the
// centre is recoverable to sub-cell precision), boxes share the mass equally; no box puts all the mass on
// "nothing matches" (and cannot be expressed on a grid without it).
//
// Scores → boxes: softmax over the row; if "nothing matches" holds at least half the mass, no box. Otherwise
// the mass of every 2×2 window of cells is computed; windows holding at least `threshold` of the cells' mass
// are taken greedily, heaviest first, skipping windows that share a cell with one already taken. Each taken
// window is one object: its centre is the mass-weighted mean of its four cell centres, and its box a square
// of side `boxScale` × the source image's shorter side (sizes are not predicted), clamped to the image.
// Boxes come heaviest first (LOC's order: CROP uses the first).

import type { Box } from '../program/image';

export interface GridLayout {
  gridSize: number;
  /** Whether rows carry the "nothing matches" entry after the cells. */
  hasAbsent: boolean;
}

export interface GroundingRuleOptions {
  /** Smallest share of the cells' mass a window needs to count as an object. Default 0.12. */
  threshold?: number;
  /** Box side as a fraction of the source image's shorter side. Default 0.28 (the digit benchmark's digits are 0.25–0.31). */
  boxScale?: number;
}

export const DEFAULT_BOX_SCALE = 0.28;
export const DEFAULT_WINDOW_THRESHOLD = 0.12;

/** The width of a grounding row for a layout. */
export function groundingWidth(layout: GridLayout): number {
  return layout.gridSize * layout.gridSize + (layout.hasAbsent ? 1 : 0);
}

/** The layout of a grounding row of `width` entries on a `gridSize` grid; throws when they do not agree. */
export function layoutFromWidth(gridSize: number, width: number): GridLayout {
  const cells = gridSize * gridSize;
  if (width === cells) return { gridSize, hasAbsent: false };
  if (width === cells + 1) return { gridSize, hasAbsent: true };
  throw new RangeError(
    `a grounding row of ${width} entries does not fit a ${gridSize}×${gridSize} grid (${cells} or ${cells + 1})`,
  );
}

function softmaxRow(scores: ArrayLike<number>, offset: number, width: number, out: Float64Array): void {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < width; i++) max = Math.max(max, scores[offset + i]);
  let sum = 0;
  for (let i = 0; i < width; i++) {
    out[i] = Math.exp(scores[offset + i] - max);
    sum += out[i];
  }
  for (let i = 0; i < width; i++) out[i] /= sum;
}

/**
 * Boxes (in the pixels of the `width` × `height` image the model saw, which is `region` of a source image
 * whose shorter side is `sourceSide`) from one row of grounding scores, with their window masses as scores.
 */
export function boxesFromGrid(
  scores: ArrayLike<number>,
  offset: number,
  layout: GridLayout,
  image: { width: number; height: number; sourceSide: number },
  options: GroundingRuleOptions = {},
): { boxes: Box[]; scores: number[] } {
  const n = layout.gridSize;
  const cells = n * n;
  const p = new Float64Array(groundingWidth(layout));
  softmaxRow(scores, offset, p.length, p);
  if (layout.hasAbsent && p[cells] >= 0.5) return { boxes: [], scores: [] };
  const cellMass = layout.hasAbsent ? 1 - p[cells] : 1;
  const threshold = (options.threshold ?? DEFAULT_WINDOW_THRESHOLD) * cellMass;
  const side = (options.boxScale ?? DEFAULT_BOX_SCALE) * image.sourceSide;
  const cellWidth = image.width / n;
  const cellHeight = image.height / n;
  const windows: Array<{ i: number; j: number; mass: number }> = [];
  const last = Math.max(1, n - 1);
  for (let i = 0; i < last; i++) {
    for (let j = 0; j < last; j++) {
      let mass = 0;
      for (let di = 0; di < Math.min(2, n); di++)
        for (let dj = 0; dj < Math.min(2, n); dj++) mass += p[(i + di) * n + j + dj];
      if (mass >= threshold) windows.push({ i, j, mass });
    }
  }
  windows.sort((a, b) => b.mass - a.mass || a.i - b.i || a.j - b.j);
  const taken: typeof windows = [];
  const boxes: Box[] = [];
  const masses: number[] = [];
  for (const window of windows) {
    if (taken.some((other) => Math.abs(other.i - window.i) <= 1 && Math.abs(other.j - window.j) <= 1))
      continue;
    taken.push(window);
    let cx = 0;
    let cy = 0;
    for (let di = 0; di < Math.min(2, n); di++) {
      for (let dj = 0; dj < Math.min(2, n); dj++) {
        const weight = p[(window.i + di) * n + window.j + dj];
        cx += weight * (window.j + dj + 0.5) * cellWidth;
        cy += weight * (window.i + di + 0.5) * cellHeight;
      }
    }
    cx /= window.mass;
    cy /= window.mass;
    boxes.push([
      Math.max(0, Math.round(cx - side / 2)),
      Math.max(0, Math.round(cy - side / 2)),
      Math.min(image.width, Math.round(cx + side / 2)),
      Math.min(image.height, Math.round(cy + side / 2)),
    ]);
    masses.push(window.mass / cellMass);
  }
  return { boxes, scores: masses };
}

/**
 * The target distribution over a grounding row for boxes in the pixels of a `width` × `height` image, written
 * into `out` at `offset` (groundingWidth(layout) entries). Returns false when it cannot be expressed (no box and
 * no "nothing matches" entry).
 */
export function gridTargetFromBoxes(
  boxes: readonly Box[],
  layout: GridLayout,
  image: { width: number; height: number },
  out: Float32Array,
  offset = 0,
): boolean {
  const n = layout.gridSize;
  const cells = n * n;
  out.fill(0, offset, offset + groundingWidth(layout));
  if (boxes.length === 0) {
    if (!layout.hasAbsent) return false;
    out[offset + cells] = 1;
    return true;
  }
  const share = 1 / boxes.length;
  for (const box of boxes) {
    const gx = Math.min(Math.max(((box[0] + box[2]) / 2 / image.width) * n - 0.5, 0), n - 1);
    const gy = Math.min(Math.max(((box[1] + box[3]) / 2 / image.height) * n - 0.5, 0), n - 1);
    const j = Math.min(Math.floor(gx), Math.max(0, n - 2));
    const i = Math.min(Math.floor(gy), Math.max(0, n - 2));
    const fx = gx - j;
    const fy = gy - i;
    const add = (row: number, column: number, weight: number) => {
      if (weight > 0) out[offset + Math.min(row, n - 1) * n + Math.min(column, n - 1)] += weight * share;
    };
    add(i, j, (1 - fx) * (1 - fy));
    add(i, j + 1, fx * (1 - fy));
    add(i + 1, j, (1 - fx) * fy);
    add(i + 1, j + 1, fx * fy);
  }
  return true;
}
