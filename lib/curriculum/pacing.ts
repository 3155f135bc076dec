// Pacing inside a stage (a competence-based curriculum): instances are ranked easy → hard by the teacher's
// confidence, and training draws from the easiest fraction, which grows linearly from `start` to the whole
// set at `fullAt` of the stage's steps.

export interface PacingOptions {
  /** Fraction of the instances available at the first step. Default 0.3. */
  start: number;
  /** Fraction of the stage's steps after which every instance is available. Default 0.5. */
  fullAt: number;
}

export const DEFAULT_PACING: PacingOptions = { start: 0.3, fullAt: 0.5 };

/** The fraction of the ranked instances available at `step` of `steps`. */
export function pacingFraction(step: number, steps: number, options: PacingOptions = DEFAULT_PACING): number {
  if (steps <= 1 || options.fullAt <= 0) return 1;
  const progress = step / (steps * options.fullAt);
  return Math.min(1, options.start + (1 - options.start) * Math.max(0, progress));
}

/** How many of `count` ranked instances are available at `step` (at least one). */
export function pacedCount(
  count: number,
  step: number,
  steps: number,
  options: PacingOptions = DEFAULT_PACING,
): number {
  return Math.max(1, Math.min(count, Math.ceil(count * pacingFraction(step, steps, options))));
}

/** Indices of `confidences`, most confident first (ties by index: the order is deterministic). */
export function rankByConfidence(confidences: ArrayLike<number>): number[] {
  return Array.from({ length: confidences.length }, (_, i) => i).sort(
    (a, b) => confidences[b] - confidences[a] || a - b,
  );
}
