// Training the built-in student: it learns a small visual question task well above chance, a run
// resumed from a checkpoint takes exactly the step the original takes, and the event loop keeps
// ticking while steps run.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import test from 'ava';
import { type Model, type OptimizerOptions, createModel, loadModel, setThreads } from '../lib/models';
import {
  TASK_ANSWERS,
  TASK_MODEL_CONFIG,
  accuracy,
  taskBatch,
  torchSkipReason,
} from './helpers/model-fixtures';

const skip = torchSkipReason();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sdvp-42-'));
test.after.always(() => fs.rmSync(dir, { recursive: true, force: true }));
if (!skip) setThreads(2);
if (skip) test.skip(`training tests skipped: ${skip}`, () => {});
const torchTest = skip ? test.skip : test;

const CONFIG = TASK_MODEL_CONFIG;

const ADAMW: OptimizerOptions = {
  type: 'adamw',
  lr: 3e-3,
  weightDecay: 0.01,
  maxGradNorm: 5,
  schedule: { kind: 'cosine', warmupSteps: 10, totalSteps: 300, minFactor: 0.1 },
};

async function trainSteps(model: Model, steps: number, firstSeed: number): Promise<number[]> {
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    const batch = taskBatch(32, firstSeed + step);
    const result = await model.trainStep({
      method: 'answer',
      inputs: [batch.images, batch.tokens],
      objective: { labels: batch.labels },
      optimizer: ADAMW,
    });
    losses.push(result.loss);
  }
  return losses;
}

function mean(values: number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

torchTest(
  'tiny-vlm learns the quadrant task: the loss falls and held-out accuracy is far above chance',
  async (t) => {
    using model = await createModel('tiny-vlm', { ...CONFIG, seed: 1 });
    const heldOut = taskBatch(300, 999_999);
    const before = await model.callTensor('answer', [heldOut.images, heldOut.tokens]);
    const startAccuracy = accuracy(before.data as Float32Array, heldOut.labels, TASK_ANSWERS.length);
    const losses = await trainSteps(model, 300, 1000);
    const after = await model.callTensor('answer', [heldOut.images, heldOut.tokens]);
    const endAccuracy = accuracy(after.data as Float32Array, heldOut.labels, TASK_ANSWERS.length);
    const first = mean(losses.slice(0, 10));
    const last = mean(losses.slice(-10));
    // Chance: the most frequent answer of any question type is right for about 1/3 of its questions.
    t.log(
      `loss ${first.toFixed(3)} → ${last.toFixed(3)}; held-out accuracy ${startAccuracy.toFixed(3)} → ${endAccuracy.toFixed(3)}`,
    );
    t.true(last < 0.35 * first, 'the loss falls well below its start');
    t.true(endAccuracy > 0.75, 'held-out accuracy is far above chance (about 0.33)');
    t.is(model.step, 300);
  },
);

torchTest('a run resumed from a checkpoint takes exactly the step the original takes', async (t) => {
  using original = await createModel('tiny-vlm', { ...CONFIG, seed: 2 });
  await trainSteps(original, 12, 50);
  const file = path.join(dir, 'resume.pt');
  await original.saveCheckpoint(file);
  using resumed = await loadModel(file);
  t.is(resumed.step, 12);
  t.like(resumed.optimizer(), { type: 'adamw', lr: 3e-3, maxGradNorm: 5 });
  const [a] = await trainSteps(original, 1, 500);
  const [b] = await trainSteps(resumed, 1, 500);
  t.is(a, b, 'the same loss');
  const probe = taskBatch(16, 7);
  const outA = await original.callTensor('answer', [probe.images, probe.tokens]);
  const outB = await resumed.callTensor('answer', [probe.images, probe.tokens]);
  t.deepEqual(
    Array.from(outB.data as Float32Array),
    Array.from(outA.data as Float32Array),
    'the same parameters after it',
  );
  const [c] = await trainSteps(original, 1, 501);
  const [d] = await trainSteps(resumed, 1, 501);
  t.is(c, d, 'and the same step after that');

  // loadCheckpoint into a live model also restores weights, moments and the step counter.
  using live = await createModel('tiny-vlm', { ...CONFIG, seed: 3 });
  await live.loadCheckpoint(file);
  t.is(live.step, 12);
  const [e] = await trainSteps(live, 1, 500);
  t.is(e, a);
});

torchTest('the event loop keeps ticking while train steps run', async (t) => {
  using model = await createModel('tiny-vlm', {
    ...CONFIG,
    channels: [16, 32, 64],
    dim: 64,
    hidden: 128,
    seed: 4,
  });
  let ticks = 0;
  let longestGap = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    longestGap = Math.max(longestGap, now - last);
    last = now;
    ticks++;
  }, 2);
  const started = performance.now();
  const batch = taskBatch(64, 3);
  const steps: Promise<unknown>[] = [];
  for (let i = 0; i < 12; i++) {
    steps.push(
      model.trainStep({
        method: 'answer',
        inputs: [batch.images, batch.tokens],
        objective: { labels: batch.labels },
        optimizer: ADAMW,
      }),
    );
  }
  await Promise.all(steps);
  const elapsed = performance.now() - started;
  clearInterval(timer);
  t.log(`${ticks} ticks in ${elapsed.toFixed(0)} ms; longest gap ${longestGap.toFixed(1)} ms`);
  t.is(model.step, 12, 'queued steps ran one after another');
  // Were the steps run on the main thread, the loop would stall for all of them at once.
  t.true(ticks >= 10, 'timers fired during training');
  t.true(longestGap < elapsed / 3, 'no stall of the event loop as long as a third of the run');
});
