// A training loop over trainStep that builds the next batch in JavaScript while the runtime thread runs the
// current step, so batch assembly overlaps the model's time instead of adding to it.

import type { Model, TrainStepOptions, TrainStepResult } from './model';

export interface TrainLoopOptions {
  model: Model;
  /** Steps to run (numbered from `firstStep`). */
  steps: number;
  firstStep?: number;
  /** The options of step `step` (method, inputs, objective, optimizer). */
  makeStep: (step: number) => Omit<TrainStepOptions, 'signal'>;
  onStep?: (step: number, result: TrainStepResult) => void | Promise<void>;
  signal?: AbortSignal;
}

export interface TrainLoopResult {
  steps: number;
  /** Wall time of the loop, and the part spent inside trainStep's native work. */
  seconds: number;
  trainStepSeconds: number;
  lastLoss: number;
}

export async function runTrainLoop(options: TrainLoopOptions): Promise<TrainLoopResult> {
  const first = options.firstStep ?? 0;
  const started = performance.now();
  let inStep = 0;
  let lastLoss = Number.NaN;
  let next = options.steps > 0 ? options.makeStep(first) : undefined;
  for (let i = 0; i < options.steps; i++) {
    const step = first + i;
    const running = options.model.trainStep({ ...next!, signal: options.signal });
    // Build the next batch while this step runs on the runtime thread.
    next = i + 1 < options.steps ? options.makeStep(step + 1) : undefined;
    const result = await running;
    inStep += result.timings.totalMs;
    lastLoss = result.loss;
    await options.onStep?.(step, result);
  }
  return {
    steps: options.steps,
    seconds: (performance.now() - started) / 1000,
    trainStepSeconds: inStep / 1000,
    lastLoss,
  };
}
