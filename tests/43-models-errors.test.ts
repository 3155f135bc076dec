// Every bad input is a coded JavaScript error with LibTorch's message and no C++ backtrace, Node never
// aborts, and a failed train step (NaN loss, bad objective, abort) leaves the model and optimizer as
// they were.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import test from 'ava';
import { SdvpError, type SdvpErrorCode } from '../lib/errors/sdvp-error';
import { type Model, type OptimizerOptions, createModel, loadModel, setThreads } from '../lib/models';
import { TASK_ANSWERS, TASK_TOKENS, taskBatch, torchSkipReason } from './helpers/model-fixtures';

const skip = torchSkipReason();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sdvp-43-'));
test.after.always(() => fs.rmSync(dir, { recursive: true, force: true }));
if (!skip) setThreads(2);
if (skip) test.skip(`model error tests skipped: ${skip}`, () => {});
const torchTest = skip ? test.skip : test;

const CONFIG = {
  channels: [8, 16],
  dim: 16,
  hidden: 16,
  gridSize: 2,
  maxTokens: 6,
  tokenVocab: TASK_TOKENS,
  answerVocab: TASK_ANSWERS,
};
const SGD: OptimizerOptions = { type: 'sgd', lr: 0.05, momentum: 0.9 };

function noBacktrace(error: unknown): boolean {
  const message = error instanceof Error ? error.message : '';
  return !/Exception raised from|frame #\d+|\.so\(/.test(message);
}

async function expectCode(
  t: import('ava').ExecutionContext,
  promise: Promise<unknown>,
  code: SdvpErrorCode,
  pattern?: RegExp,
): Promise<SdvpError> {
  const error = await t.throwsAsync(promise, { instanceOf: SdvpError });
  t.is(error?.code, code, error?.message);
  t.true(noBacktrace(error), 'no C++ backtrace in the message');
  if (pattern) t.regex(error?.message ?? '', pattern);
  return error as SdvpError;
}

async function answers(model: Model, seed = 5): Promise<number[]> {
  const probe = taskBatch(8, seed);
  return Array.from((await model.callTensor('answer', [probe.images, probe.tokens])).data as Float32Array);
}

torchTest('missing, corrupted and truncated files reject with ERR_SDVP_MODEL_FILE', async (t) => {
  await expectCode(
    t,
    loadModel(path.join(dir, 'missing.pt')),
    'ERR_SDVP_MODEL_FILE',
    /missing\.pt.*No such file/,
  );
  const garbage = path.join(dir, 'garbage.pt');
  fs.writeFileSync(garbage, Buffer.from('this is not a zip archive, let alone TorchScript'));
  await expectCode(t, loadModel(garbage), 'ERR_SDVP_MODEL_FILE', /cannot load/);
  using model = await createModel('tiny-vlm', CONFIG);
  const good = path.join(dir, 'good.pt');
  await model.save(good);
  const bytes = fs.readFileSync(good);
  const truncated = path.join(dir, 'truncated.pt');
  fs.writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)));
  await expectCode(t, loadModel(truncated), 'ERR_SDVP_MODEL_FILE');
  await expectCode(t, loadModel(new Uint8Array(bytes.subarray(0, 100))), 'ERR_SDVP_MODEL_FILE');
  const flipped = Buffer.from(bytes);
  for (let i = 0; i < 2000; i++) flipped[Math.floor(flipped.length * 0.3) + i] ^= 0xff;
  const corrupted = path.join(dir, 'corrupted.pt');
  fs.writeFileSync(corrupted, flipped);
  await expectCode(t, loadModel(corrupted), 'ERR_SDVP_MODEL_FILE');
  await t.throwsAsync(loadModel(42 as never), { code: 'ERR_SDVP_ARG' } as never);
  await t.throwsAsync(loadModel(good, { device: 'tpu' }), { code: 'ERR_SDVP_ARG' } as never);
});

torchTest('a corrupt checkpoint does not change the live model', async (t) => {
  using model = await createModel('tiny-vlm', CONFIG);
  const batch = taskBatch(8, 1);
  await model.trainStep({
    method: 'answer',
    inputs: [batch.images, batch.tokens],
    objective: { labels: batch.labels },
    optimizer: SGD,
  });
  const before = await answers(model);
  const bad = path.join(dir, 'bad-checkpoint.pt');
  fs.writeFileSync(bad, Buffer.from('PK\u0003\u0004 broken'));
  await expectCode(t, model.loadCheckpoint(bad), 'ERR_SDVP_MODEL_FILE');
  using other = await createModel('tiny-vlm', { ...CONFIG, dim: 8 });
  const otherFile = path.join(dir, 'other.pt');
  await other.saveCheckpoint(otherFile);
  await expectCode(t, model.loadCheckpoint(otherFile), 'ERR_SDVP_MODEL_FILE', /does not fit/);
  t.deepEqual(await answers(model), before);
  t.is(model.step, 1);
});

torchTest(
  'a missing method, wrong inputs and wrong shapes are coded errors with LibTorch messages',
  async (t) => {
    using model = await createModel('tiny-vlm', CONFIG);
    const batch = taskBatch(4, 2);
    await expectCode(
      t,
      model.call('segment', [batch.images]),
      'ERR_SDVP_MODEL_METHOD',
      /no method 'segment'.*answer/,
    );
    await expectCode(t, model.call('answer', [batch.images]), 'ERR_SDVP_ARG', /takes 2 input/);
    const gray = { data: new Float32Array(4 * 16 * 16), shape: [4, 1, 16, 16] };
    await expectCode(
      t,
      model.call('answer', [gray, batch.tokens]),
      'ERR_SDVP_TORCH',
      /expected input\[4, 1, 16, 16\] to have 3 channels/,
    );
    const floatTokens = { data: new Float32Array(4 * 6), shape: [4, 6] };
    await expectCode(
      t,
      model.call('answer', [batch.images, floatTokens]),
      'ERR_SDVP_TORCH',
      /Long, Int|indices/,
    );
    const outOfVocab = { data: new Int32Array(4 * 6).fill(999), shape: [4, 6] };
    await expectCode(
      t,
      model.call('answer', [batch.images, outOfVocab]),
      'ERR_SDVP_TORCH',
      /out of range|index/i,
    );
    await t.throwsAsync(model.call('answer', [{ data: new Float32Array(5), shape: [2, 3] }, batch.tokens]), {
      code: 'ERR_SDVP_SHAPE',
    } as never);
    await t.throwsAsync(model.call('answer', [{ data: [1, 2, 3], shape: [3] } as never]), {
      code: 'ERR_SDVP_ARG',
    } as never);
    await t.throwsAsync(model.call('answer', [batch.images, batch.tokens], { batchSize: 0 }), {
      code: 'ERR_SDVP_RANGE',
    } as never);
    // Still usable after every failure.
    t.is((await answers(model)).length, 8 * TASK_ANSWERS.length);
  },
);

torchTest('bad train-step arguments are rejected before anything changes', async (t) => {
  using model = await createModel('tiny-vlm', CONFIG);
  const batch = taskBatch(6, 3);
  const inputs = [batch.images, batch.tokens];
  const base = { method: 'answer', inputs, optimizer: SGD };
  await t.throwsAsync(model.trainStep({ ...base, objective: {} }), { code: 'ERR_SDVP_ARG' } as never);
  await expectCode(
    t,
    model.trainStep({ ...base, objective: { labels: new Int32Array([0, 1, 2, 3, 4, 99]) } }),
    'ERR_SDVP_LABEL_RANGE',
  );
  await expectCode(
    t,
    model.trainStep({ ...base, objective: { labels: new Int32Array(5) } }),
    'ERR_SDVP_SHAPE',
  );
  await expectCode(
    t,
    model.trainStep({ ...base, objective: { labels: batch.labels, temperature: 0 } }),
    'ERR_SDVP_RANGE',
  );
  await expectCode(
    t,
    model.trainStep({ ...base, objective: { labels: batch.labels, bogus: 1 } as never }),
    'ERR_SDVP_ARG',
  );
  await expectCode(
    t,
    model.trainStep({
      ...base,
      objective: {
        teacher: { indices: new Int32Array(6).fill(50), logprobs: new Float32Array(6).fill(-1), k: 1 },
      },
    }),
    'ERR_SDVP_TOPK_INDEX',
  );
  await expectCode(
    t,
    model.trainStep({ ...base, method: 'nothing', objective: { labels: batch.labels } }),
    'ERR_SDVP_MODEL_METHOD',
  );
  await expectCode(
    t,
    model.trainStep({ ...base, accumulate: 7, objective: { labels: batch.labels } }),
    'ERR_SDVP_RANGE',
  );
  await expectCode(
    t,
    model.trainStep({ method: 'answer', inputs, objective: { labels: batch.labels } }),
    'ERR_SDVP_ARG',
    /optimizer/,
  );
  await expectCode(
    t,
    model.trainStep({ ...base, optimizer: { type: 'adam' } as never, objective: { labels: batch.labels } }),
    'ERR_SDVP_OPTION',
  );
  await expectCode(
    t,
    model.trainStep({
      ...base,
      optimizer: { type: 'adamw', lr: 1, groups: [{ match: /(?<=x)y/, lr: 0 }] },
      objective: { labels: batch.labels },
    }),
    'ERR_SDVP_OPTION',
    /not a valid regular expression/,
  );
  await expectCode(
    t,
    model.trainStep({
      ...base,
      inputs: [batch.images, { data: new Int32Array(5 * 6), shape: [5, 6] }],
      objective: { labels: batch.labels },
    }),
    'ERR_SDVP_SHAPE',
  );
  t.is(model.step, 0, 'no step was taken');
  t.is(model.optimizer(), undefined, 'no optimizer was configured by a failed step');
});

torchTest(
  'a NaN loss throws ERR_SDVP_NAN_LOSS and leaves the parameters and the optimizer unchanged',
  async (t) => {
    using model = await createModel('tiny-vlm', CONFIG);
    using twin = await createModel('tiny-vlm', CONFIG);
    const batch = taskBatch(8, 4);
    const step = (m: Model, images = batch.images) =>
      m.trainStep({
        method: 'answer',
        inputs: [images, batch.tokens],
        objective: { labels: batch.labels },
        optimizer: SGD,
      });
    await step(model);
    await step(twin);
    const before = await answers(model);
    const poisoned = {
      data: Float32Array.from(batch.images.data as Float32Array),
      shape: batch.images.shape,
    };
    (poisoned.data as Float32Array)[17] = Number.NaN;
    await expectCode(t, step(model, poisoned), 'ERR_SDVP_NAN_LOSS', /left unchanged/);
    t.deepEqual(await answers(model), before, 'parameters unchanged');
    t.is(model.step, 1, 'step counter unchanged');
    // The momentum buffers are unchanged too: the next step matches a twin that never saw the NaN batch.
    const a = await step(model);
    const b = await step(twin);
    t.is(a.loss, b.loss);
    t.deepEqual(await answers(model), await answers(twin));
  },
);

torchTest('an abort between micro-batches rejects with ERR_SDVP_ABORTED and updates nothing', async (t) => {
  using model = await createModel('tiny-vlm', { ...CONFIG, channels: [16, 32, 64], dim: 64, hidden: 128 });
  const batch = taskBatch(64, 5);
  const before = await answers(model);
  const controller = new AbortController();
  const pending = model.trainStep({
    method: 'answer',
    inputs: [batch.images, batch.tokens],
    objective: { labels: batch.labels },
    optimizer: SGD,
    accumulate: 64,
    signal: controller.signal,
  });
  setTimeout(() => controller.abort(), 5);
  await expectCode(t, pending, 'ERR_SDVP_ABORTED');
  t.deepEqual(await answers(model), before);
  t.is(model.step, 0);
  const aborted = new AbortController();
  aborted.abort();
  await expectCode(
    t,
    model.call('answer', [batch.images, batch.tokens], { signal: aborted.signal }),
    'ERR_SDVP_ABORTED',
  );
});

torchTest(
  'dispose is idempotent, Symbol.dispose works, and a disposed model rejects with ERR_SDVP_DISPOSED',
  async (t) => {
    const model = await createModel('cnn-classifier', { channels: [4], hidden: 8 });
    const images = taskBatch(2, 6).images;
    const pending = model.callTensor('forward', [images]);
    model.dispose();
    model.dispose();
    t.true(model.disposed);
    await t.throwsAsync(pending, { code: 'ERR_SDVP_DISPOSED' } as never);
    await expectCode(t, model.call('forward', [images]), 'ERR_SDVP_DISPOSED');
    t.throws(() => model.parameters(), { code: 'ERR_SDVP_DISPOSED' } as never);
    let scoped: Model | undefined;
    {
      using inner = await createModel('cnn-classifier', { channels: [4], hidden: 8 });
      scoped = inner;
      t.false(inner.disposed);
    }
    t.true(scoped.disposed);
  },
);
