// One rank of a distributed test, run as its own Node process with torchrun's variables:
// `node distributed-worker.js <scenario> <settings json>`. It prints `RESULT <json>` on stdout.

import { initProcessGroup } from '../../lib/distributed';
import { SdvpError } from '../../lib/errors/sdvp-error';
import { type OutputTensor, createModel, setThreads } from '../../lib/models';
import {
  RESULT_PREFIX,
  ROWS_PER_RANK,
  TRAIN_CONFIG,
  TRAIN_OPTIMIZER,
  TRAIN_STEPS,
  TRAIN_VARIANTS,
  floatInput,
  globalBatch,
  intInput,
  longInput,
  shard,
} from './distributed-fixtures';

type Settings = Record<string, unknown>;

function report(value: unknown): void {
  process.stdout.write(
    `${RESULT_PREFIX}${JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? v.toString() : v))}\n`,
  );
}

function plain(tensor: OutputTensor): { data: (number | string)[]; shape: number[]; dtype: string } {
  return {
    data: Array.from(tensor.data as ArrayLike<number | bigint>, (v) =>
      typeof v === 'bigint' ? v.toString() : v,
    ),
    shape: tensor.shape,
    dtype: tensor.dtype,
  };
}

function describeError(error: unknown): { code?: string; message: string } {
  return error instanceof SdvpError
    ? { code: error.code, message: error.message }
    : { message: String(error) };
}

/** Every collective once, on this rank's inputs (what the Python rank's script does too). */
async function collectives(settings: Settings): Promise<void> {
  const group = await initProcessGroup({ timeoutMs: 60_000 });
  const rank = group.rank;
  const input = floatInput(rank);
  const before = Float32Array.from(input.data as Float32Array);
  const out: Record<string, unknown> = { rank, worldSize: group.worldSize };
  for (const op of ['sum', 'avg', 'max', 'min'] as const)
    out[`float_${op}`] = plain(await group.allReduce(input, { op }));
  out.inputUntouched = before.every((v, i) => v === input.data[i]);
  for (const op of ['sum', 'max', 'min'] as const)
    out[`int_${op}`] = plain(await group.allReduce(intInput(rank), { op }));
  out.long_sum = plain(await group.allReduce(longInput(rank), { op: 'sum' }));
  out.broadcast = plain(await group.broadcast(floatInput(rank), { src: group.worldSize - 1 }));
  out.gather = (await group.allGather(intInput(rank))).map(plain);
  await group.barrier();
  if (settings.objects !== false) {
    out.objects = await group.allGatherObject({
      rank,
      text: 'x'.repeat(rank * 1000),
      nested: [rank, { ok: true }],
    });
  }
  await group.barrier();
  await group.destroy();
  report(out);
}

/** The training variants on this rank's shard, then a non-finite loss and a rejected step on the last rank. */
async function train(): Promise<void> {
  setThreads(1);
  const group = await initProcessGroup({ timeoutMs: 60_000 });
  const { rank, worldSize } = group;
  const last = worldSize - 1;
  const out: Record<string, unknown> = { rank };
  const variants: unknown[] = [];
  for (const variant of TRAIN_VARIANTS) {
    // Each rank starts from its own seed: joining the group must give every rank rank 0's weights.
    using model = await createModel('tiny-vlm', { ...TRAIN_CONFIG, seed: 11 + rank });
    const steps: unknown[] = [];
    for (let step = 0; step < TRAIN_STEPS; step++) {
      const batch = shard(
        globalBatch(step, ROWS_PER_RANK * worldSize, variant.reduction),
        rank * ROWS_PER_RANK,
        (rank + 1) * ROWS_PER_RANK,
      );
      const result = await model.trainStep({
        method: 'answer',
        inputs: [batch.images, batch.tokens],
        objective: batch.objective,
        optimizer: TRAIN_OPTIMIZER,
        accumulate: variant.accumulate,
        distributed: { group, bucketBytes: 16 * 1024 }, // several buckets
      });
      steps.push({
        loss: result.loss,
        normalizer: result.normalizer,
        validRows: result.validRows,
        gradNorm: result.gradNorm,
        clipped: result.clipped,
        distributed: result.distributed,
      });
    }
    const state = await model.state();
    variants.push({
      steps,
      state: Object.fromEntries(
        Object.entries(state).map(([name, t]) => [name, Array.from(t.data as Float32Array)]),
      ),
    });
  }
  out.variants = variants;

  // A step with a non-finite loss on the last rank: every rank skips it.
  using model = await createModel('tiny-vlm', { ...TRAIN_CONFIG, seed: 11 + rank });
  const take = (step: number, poison: boolean, badLabels = false) => {
    const batch = shard(
      globalBatch(step, ROWS_PER_RANK * worldSize, 'mean'),
      rank * ROWS_PER_RANK,
      (rank + 1) * ROWS_PER_RANK,
    );
    const images = batch.images;
    if (poison) (images.data as Float32Array).fill(Number.NaN);
    const objective = badLabels ? { labels: new Int32Array(3) } : batch.objective;
    return model.trainStep({
      method: 'answer',
      inputs: [images, batch.tokens],
      objective,
      optimizer: TRAIN_OPTIMIZER,
      distributed: group,
    });
  };
  await take(0, false);
  const before = await model.state();
  const outcome = async (promise: Promise<unknown>) => promise.then(() => ({ ok: true }), describeError);
  out.nonFinite = await outcome(take(1, rank === last));
  out.rejected = await outcome(take(2, false, rank === last));
  const after = await model.state();
  out.unchangedAfterSkips = Object.keys(before).every((name) =>
    (before[name].data as Float32Array).every((v, i) => v === after[name].data[i]),
  );
  out.stepAfterSkips = model.step;
  out.recovered = await outcome(take(3, false));
  out.stepAfterRecovery = model.step;
  await group.barrier();
  await group.destroy();
  report(out);
}

/** All-reduces in a loop until the group fails (a killed or hung peer); reports the error and its delay. */
async function loop(settings: Settings): Promise<void> {
  const group = await initProcessGroup({
    timeoutMs: Number(settings.timeoutMs),
    rendezvousTimeoutMs: 60_000,
  });
  process.stdout.write('READY\n');
  if (settings.idle === group.rank) {
    setInterval(() => undefined, 1000); // alive, but never enters a collective
    return;
  }
  let last = performance.now();
  for (let i = 0; ; i++) {
    try {
      await group.allReduce(floatInput(group.rank));
      last = performance.now();
      if (i === 20) process.stdout.write('LOOPING\n');
    } catch (error) {
      report({ ...describeError(error), afterMs: performance.now() - last });
      process.exit(0);
    }
  }
}

async function main(): Promise<void> {
  const [scenario, json] = process.argv.slice(2);
  const settings = (json ? JSON.parse(json) : {}) as Settings;
  if (scenario === 'collectives') await collectives(settings);
  else if (scenario === 'train') await train();
  else if (scenario === 'loop') await loop(settings);
  else if (scenario === 'exit') {
    if (Number(process.env.RANK) === settings.failRank) process.exit(Number(settings.code));
    setInterval(() => undefined, 1000); // the others wait to be stopped
  } else throw new Error(`unknown scenario ${scenario}`);
}

main().catch((error) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
