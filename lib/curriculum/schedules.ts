// Schedules over a stage: the distillation temperature and the weights of the hard-label (α) and teacher (β)
// terms move linearly from their start to their end value.

export interface Ramp {
  start: number;
  end: number;
}

/** The value of a ramp at `step` of `steps` (the start at step 0, the end at the last step). */
export function rampAt(ramp: Ramp, step: number, steps: number): number {
  if (steps <= 1) return ramp.end;
  const t = Math.min(1, Math.max(0, step / (steps - 1)));
  return ramp.start + (ramp.end - ramp.start) * t;
}

export interface CosineOptions {
  lr: number;
  warmupSteps: number;
  /** The rate at the last step as a fraction of lr. */
  minFactor: number;
}

/**
 * The learning rate at `step` (0-based) of a stage of `steps`: linear warm-up, then half a cosine down to
 * `minFactor` × lr. Computed here and passed to each step, because the optimizer's own schedules count the
 * model's global steps, and a stage starts wherever the previous one ended.
 */
export function cosineLr(step: number, steps: number, options: CosineOptions): number {
  if (options.warmupSteps > 0 && step < options.warmupSteps)
    return (options.lr * (step + 1)) / options.warmupSteps;
  const span = Math.max(1, steps - options.warmupSteps - 1);
  const progress = Math.min(1, Math.max(0, (step - options.warmupSteps) / span));
  return (
    options.lr * (options.minFactor + (1 - options.minFactor) * 0.5 * (1 + Math.cos(Math.PI * progress)))
  );
}
