// Optimizers: AdamW and SGD with momentum both train; learning-rate schedules give the documented rates;
// parameter groups by name pattern and freezing/unfreezing by pattern control which weights move.

import test from 'ava';
import { type Model, type OptimizerOptions, createModel, setThreads } from '../lib/models';
import { TASK_ANSWERS, TASK_TOKENS, taskBatch, torchSkipReason } from './helpers/model-fixtures';

const skip = torchSkipReason();
if (!skip) setThreads(2);
if (skip) test.skip(`optimizer tests skipped: ${skip}`, () => {});
const torchTest = skip ? test.skip : test;

const CONFIG = {
  channels: [8, 16],
  dim: 16,
  hidden: 32,
  gridSize: 2,
  maxTokens: 6,
  tokenVocab: TASK_TOKENS,
  answerVocab: TASK_ANSWERS,
};
// Every parameter ground() uses; answer() adds fuse.* and answer_head.*.
const GROUNDING = [
  'encoder.**',
  'cell_proj.*',
  'cell_position',
  'token_embedding.*',
  'position_embedding',
  'query_proj.*',
];

async function step(model: Model, optimizer: OptimizerOptions, seed: number) {
  const batch = taskBatch(16, seed);
  return model.trainStep({
    method: 'answer',
    inputs: [batch.images, batch.tokens],
    objective: { labels: batch.labels },
    optimizer,
  });
}

async function output(model: Model, method: 'answer' | 'ground'): Promise<number[]> {
  const probe = taskBatch(4, 77);
  return Array.from((await model.callTensor(method, [probe.images, probe.tokens])).data as Float32Array);
}

for (const optimizer of [
  { type: 'adamw', lr: 5e-3 },
  { type: 'sgd', lr: 0.2, momentum: 0.9, nesterov: true },
  { type: 'sgd', lr: 0.2, momentum: 0.9, weightDecay: 1e-4, dampening: 0.1 },
] as OptimizerOptions[]) {
  torchTest(`${optimizer.type} ${JSON.stringify(optimizer)} lowers the loss on a fixed batch`, async (t) => {
    using model = await createModel('tiny-vlm', { ...CONFIG, seed: 8 });
    const losses: number[] = [];
    for (let i = 0; i < 40; i++) losses.push((await step(model, optimizer, 123)).loss);
    t.log(`loss ${losses[0].toFixed(3)} → ${losses[losses.length - 1].toFixed(3)}`);
    t.true(losses[losses.length - 1] < 0.5 * losses[0]);
    t.like(model.optimizer(), { type: optimizer.type, lr: optimizer.lr });
  });
}

torchTest('learning-rate schedules: constant, linear warm-up, cosine with warm-up', async (t) => {
  const cases: [OptimizerOptions['schedule'], number[]][] = [
    [{ kind: 'constant' }, [0.1, 0.1, 0.1, 0.1, 0.1, 0.1]],
    [{ kind: 'linear-warmup', warmupSteps: 4 }, [0.025, 0.05, 0.075, 0.1, 0.1, 0.1]],
    [
      { kind: 'cosine', warmupSteps: 2, totalSteps: 6, minFactor: 0.2 },
      [
        0.05,
        0.1,
        0.1 * (0.2 + 0.8 * 0.5 * (1 + Math.cos(Math.PI / 4))),
        0.06,
        0.1 * (0.2 + 0.8 * 0.5 * (1 + Math.cos((3 * Math.PI) / 4))),
        0.02,
      ],
    ],
  ];
  for (const [schedule, expected] of cases) {
    using model = await createModel('tiny-vlm', CONFIG);
    const rates: number[] = [];
    for (let i = 0; i < expected.length; i++)
      rates.push((await step(model, { type: 'sgd', lr: 0.1, momentum: 0, schedule }, i)).lr);
    rates.forEach((rate, i) =>
      t.true(
        Math.abs(rate - expected[i]) < 1e-12,
        `${schedule?.kind} step ${i + 1}: ${rate} vs ${expected[i]}`,
      ),
    );
  }
});

torchTest('a parameter group with rate 0 keeps its weights; the rest move', async (t) => {
  using model = await createModel('tiny-vlm', { ...CONFIG, seed: 9 });
  const ground = await output(model, 'ground');
  const answer = await output(model, 'answer');
  const optimizer: OptimizerOptions = {
    type: 'adamw',
    lr: 1e-2,
    groups: [
      { match: GROUNDING, lr: 0 },
      { match: /^fuse\./, weightDecay: 0 },
    ],
  };
  for (let i = 0; i < 3; i++) await step(model, optimizer, i);
  t.deepEqual(await output(model, 'ground'), ground, 'the grounding path did not move');
  t.notDeepEqual(await output(model, 'answer'), answer, 'the answer head moved');
  const groups = model.optimizer()?.groups ?? [];
  t.is(groups.length, GROUNDING.length + 1);
  t.true(groups[groups.length - 1].match instanceof RegExp);
});

torchTest('freeze and unfreeze by name pattern', async (t) => {
  using model = await createModel('tiny-vlm', { ...CONFIG, seed: 10 });
  const optimizer: OptimizerOptions = { type: 'sgd', lr: 0.05 };
  const count = model.freeze(GROUNDING);
  const frozen = model
    .parameters()
    .filter((p) => !p.trainable)
    .map((p) => p.name);
  t.is(count, frozen.length);
  t.true(frozen.includes('encoder.conv1.weight') && frozen.includes('position_embedding'));
  t.false(frozen.includes('answer_head.weight'));
  const ground = await output(model, 'ground');
  for (let i = 0; i < 3; i++) await step(model, optimizer, i);
  t.deepEqual(await output(model, 'ground'), ground, 'frozen weights did not move');
  t.is(model.unfreeze('encoder.**'), 4);
  t.true(model.parameters().find((p) => p.name === 'encoder.conv2.bias')?.trainable);
  await step(model, optimizer, 9);
  t.notDeepEqual(await output(model, 'ground'), ground, 'unfrozen weights moved');
  t.is(model.freeze(/no-such-parameter/), 0);
  model.freeze('**');
  await t.throwsAsync(step(model, optimizer, 10), { code: 'ERR_SDVP_ARG', message: /trainable/ } as never);
  t.throws(() => model.freeze([]), { code: 'ERR_SDVP_ARG' } as never);
  t.throws(() => model.freeze(/x/i), { code: 'ERR_SDVP_OPTION' } as never);
});

torchTest('invalid optimizer options name the field', async (t) => {
  using model = await createModel('tiny-vlm', CONFIG);
  const bad: [unknown, string, RegExp][] = [
    [{ type: 'adamw' }, 'ERR_SDVP_ARG', /optimizer\.lr/],
    [{ type: 'adamw', lr: -1 }, 'ERR_SDVP_RANGE', /optimizer\.lr/],
    [{ type: 'adamw', lr: 1, betas: [0.9, 1] }, 'ERR_SDVP_RANGE', /betas\[1\]/],
    [{ type: 'sgd', lr: 1, eps: 1 }, 'ERR_SDVP_ARG', /optimizer\.eps/],
    [{ type: 'sgd', lr: 1, nesterov: true, momentum: 0 }, 'ERR_SDVP_OPTION', /nesterov/],
    [
      { type: 'sgd', lr: 1, schedule: { kind: 'cosine', totalSteps: 5, warmupSteps: 5 } },
      'ERR_SDVP_RANGE',
      /warmupSteps/,
    ],
    [{ type: 'sgd', lr: 1, schedule: { kind: 'step' } }, 'ERR_SDVP_OPTION', /schedule\.kind/],
    [{ type: 'sgd', lr: 1, groups: [{ match: 3 }] }, 'ERR_SDVP_ARG', /groups\[0\]\.match/],
  ];
  for (const [optimizer, code, pattern] of bad) {
    await t.throwsAsync(
      step(model, optimizer as OptimizerOptions, 1),
      { code, message: pattern } as never,
      JSON.stringify(optimizer),
    );
  }
});
