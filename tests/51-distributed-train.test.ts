// Data-parallel training: two ranks with batch B take the steps one process takes with batch 2B (AdamW,
// clipping, 'mean' over uneven valid rows and 'sum', with and without accumulation), the ranks stay
// identical, and a non-finite loss or a rejected step on one rank skips the step on every rank.

import test from 'ava';
import { findFreePort, initProcessGroup } from '../lib/distributed';
import { type Model, createModel, setThreads } from '../lib/models';
import {
  ROWS_PER_RANK,
  TRAIN_CONFIG,
  TRAIN_OPTIMIZER,
  TRAIN_STEPS,
  TRAIN_VARIANTS,
  type TrainVariant,
  globalBatch,
  spawnRank,
} from './helpers/distributed-fixtures';
import { torchSkipReason } from './helpers/model-fixtures';

const skip = torchSkipReason();
if (skip) test.skip(`distributed training tests skipped: ${skip}`, () => {});
const torchTest = skip ? test.skip : test;
if (!skip) setThreads(1);

interface StepReport {
  loss: number;
  normalizer: number;
  validRows: number;
  gradNorm: number;
  clipped: boolean;
  distributed: { worldSize: number; globalRows: number; bytes: number; buckets: number };
}
interface TrainReport {
  rank: number;
  variants: { steps: StepReport[]; state: Record<string, number[]> }[];
  nonFinite: { ok?: boolean; code?: string; message: string };
  rejected: { ok?: boolean; code?: string; message: string };
  unchangedAfterSkips: boolean;
  stepAfterSkips: number;
  recovered: { ok?: boolean };
  stepAfterRecovery: number;
}

/** One process, the whole global batch: the reference. */
async function reference(variant: TrainVariant, world: number) {
  using model: Model = await createModel('tiny-vlm', { ...TRAIN_CONFIG, seed: 11 });
  const steps = [];
  for (let step = 0; step < TRAIN_STEPS; step++) {
    const batch = globalBatch(step, ROWS_PER_RANK * world, variant.reduction);
    steps.push(
      await model.trainStep({
        method: 'answer',
        inputs: [batch.images, batch.tokens],
        objective: batch.objective,
        optimizer: TRAIN_OPTIMIZER,
        accumulate: variant.accumulate,
      }),
    );
  }
  const state = await model.state();
  return { steps, state };
}

torchTest('two ranks with batch B take exactly the steps of one process with batch 2B', async (t) => {
  const port = await findFreePort();
  const ranks = [0, 1].map((rank) => spawnRank('train', rank, 2, port));
  const reports = (await Promise.all(ranks.map((r) => r.result))) as TrainReport[];
  let worst = 0;
  for (const [v, variant] of TRAIN_VARIANTS.entries()) {
    const single = await reference(variant, 2);
    const [rank0, rank1] = reports.map((report) => report.variants[v]);
    const label = `${variant.reduction}, accumulate ${variant.accumulate}`;
    let variantWorst = 0;
    for (const [name, expected] of Object.entries(single.state)) {
      const values = Array.from(expected.data as Float32Array);
      t.deepEqual(rank1.state[name], rank0.state[name], `${label}: ${name} is identical on both ranks`);
      const error = Math.max(...values.map((x, i) => Math.abs(x - rank0.state[name][i])));
      worst = Math.max(worst, error);
      variantWorst = Math.max(variantWorst, error);
      t.true(error <= 1e-6, `${label}: ${name} within 1e-6 of the single process (max error ${error})`);
    }
    single.steps.forEach((step, i) => {
      const got = rank0.steps[i];
      t.true(
        Math.abs(got.loss - step.loss) <= 1e-5 * Math.max(1, Math.abs(step.loss)),
        `${label} step ${i}: the group's loss`,
      );
      t.is(got.validRows, step.validRows, `${label} step ${i}: the group's valid rows`);
      t.is(got.normalizer, step.normalizer, `${label} step ${i}: the group's normaliser`);
      t.true(
        Math.abs(got.gradNorm - step.gradNorm) <= 1e-5 * step.gradNorm,
        `${label} step ${i}: the global gradient norm`,
      );
      t.is(got.clipped, step.clipped);
      t.is(got.distributed.worldSize, 2);
      t.is(got.distributed.globalRows, 2 * ROWS_PER_RANK);
      t.true(got.distributed.buckets > 1, 'a 16 KiB bucket size splits the gradients');
    });
    t.true(
      single.steps.some((step) => step.clipped),
      `${label}: clipping took part`,
    );
    t.log(`${label}: largest parameter difference ${variantWorst.toExponential(2)}`);
  }
  t.log(`largest parameter difference to the single process: ${worst.toExponential(2)}`);

  const [rank0, rank1] = reports;
  t.is(rank1.nonFinite.code, 'ERR_SDVP_NAN_LOSS', 'the rank with the NaN loss');
  t.is(rank0.nonFinite.code, 'ERR_SDVP_NAN_LOSS', 'the other rank skips too');
  t.regex(rank0.nonFinite.message, /not finite on rank\(s\) 1; every rank skipped/);
  t.is(rank1.rejected.code, 'ERR_SDVP_SHAPE', 'the rank whose step was rejected gets its own error');
  t.is(rank0.rejected.code, 'ERR_SDVP_DIST_PEER');
  t.regex(rank0.rejected.message, /rank\(s\) 1 failed their part of this step/);
  for (const report of reports) {
    t.true(report.unchangedAfterSkips, `rank ${report.rank}: the skipped steps changed nothing`);
    t.is(report.stepAfterSkips, 1);
    t.true(report.recovered.ok, `rank ${report.rank}: the group trains on after skipped steps`);
    t.is(report.stepAfterRecovery, 2);
  }
});

torchTest('a one-process group takes exactly the step of no group, and checks its options', async (t) => {
  const group = await initProcessGroup({ env: {} });
  using plainModel = await createModel('tiny-vlm', { ...TRAIN_CONFIG, seed: 3 });
  using grouped = await createModel('tiny-vlm', { ...TRAIN_CONFIG, seed: 3 });
  await grouped.joinGroup(group);
  for (let step = 0; step < 2; step++) {
    const batch = globalBatch(step, 8, 'mean');
    const options = {
      method: 'answer',
      inputs: [batch.images, batch.tokens],
      objective: batch.objective,
      optimizer: TRAIN_OPTIMIZER,
    };
    const a = await plainModel.trainStep(options);
    const b = await grouped.trainStep({ ...options, distributed: group });
    t.is(b.loss, a.loss);
    t.is(b.gradNorm, a.gradNorm);
    t.is(a.distributed, undefined);
    t.is(b.distributed?.worldSize, 1);
  }
  const [sa, sb] = [await plainModel.state(), await grouped.state()];
  for (const name of Object.keys(sa))
    t.deepEqual(sb[name].data, sa[name].data, `${name} is the same to the bit`);
  const batch = globalBatch(0, 8, 'mean');
  const base = { method: 'answer', inputs: [batch.images, batch.tokens], objective: batch.objective };
  await t.throwsAsync(grouped.trainStep({ ...base, distributed: 'group' as never }), {
    code: 'ERR_SDVP_ARG',
    message: /distributed/,
  });
  await t.throwsAsync(grouped.trainStep({ ...base, distributed: { group, bucketBytes: 0 } }), {
    code: 'ERR_SDVP_RANGE',
    message: /bucketBytes/,
  });
  await t.throwsAsync(grouped.joinGroup({} as never), { code: 'ERR_SDVP_ARG' });
  await group.destroy();
  await t.throwsAsync(grouped.trainStep({ ...base, distributed: group }), { code: 'ERR_SDVP_DISPOSED' });
});
