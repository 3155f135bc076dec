// The gradients trainStep applies equal LibTorch autograd of the same objective written with
// log_softmax / cross_entropy / kl_div (Python PyTorch on the same TorchScript file), for dense and
// top-k teachers and with gradient accumulation: relative error under 1e-5. Also: the objective's
// other options (reduction, row weights, ignored labels, bf16 teachers) reach the kernel.
//
// The applied gradient is read back exactly: plain SGD (no momentum, decay or clipping) with a large
// rate L moves each parameter by -L·g, so g = (before - after) / L to float32 rounding of `after`.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import test from 'ava';
import { bf16ToFloat32, float32ToBf16 } from '../lib/kernels/bf16';
import { type TrainObjective, createModel, setThreads } from '../lib/models';
import { rng, taskBatch, torchSkipReason } from './helpers/model-fixtures';
import { findPythonTorch, runPython } from './helpers/python-torch';

const skip = torchSkipReason();
const python = findPythonTorch();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sdvp-41-'));
test.after.always(() => fs.rmSync(dir, { recursive: true, force: true }));
if (!skip) setThreads(2);
const why = skip ?? python.skip;
if (why) test.skip(`gradient tests skipped: ${why}`, () => {});
const gradTest = why ? test.skip : test;

const ROWS = 12;
const VOCAB = 9;
const LR = 1000;

const REFERENCE = `
import json, sys, torch
import torch.nn.functional as F
d = sys.argv[1]
meta = json.load(open(d + '/meta.json'))
rows, vocab, k = meta['rows'], meta['vocab'], meta['k']
alpha, beta, tau = meta['alpha'], meta['beta'], meta['tau']
def read(name, dtype, shape):
    return torch.frombuffer(bytearray(open(d + '/' + name, 'rb').read()), dtype=dtype).reshape(shape)
images = read('images.bin', torch.float32, (rows, 3, 16, 16))
tokens = read('tokens.bin', torch.int32, (rows, 6)).long()
labels = read('labels.bin', torch.int32, (rows,)).long()
before = torch.jit.load(d + '/before.pt')
after = torch.jit.load(d + '/after.pt')
before.train()
logits = before.answer(images, tokens)
log_q = F.log_softmax(logits / tau, dim=1)
if meta['mode'] == 'dense':
    teacher = read('teacher.bin', torch.float32, (rows, vocab))
    kd = F.kl_div(log_q, F.log_softmax(teacher / tau, dim=1), reduction='batchmean', log_target=True)
else:
    indices = read('indices.bin', torch.int32, (rows, k)).long()
    logprobs = read('logprobs.bin', torch.float32, (rows, k))
    if meta['mode'] == 'topk-renormalize':
        p = torch.zeros(rows, vocab).scatter(1, indices, torch.softmax(logprobs / tau, dim=1))
        kd = F.kl_div(log_q, p, reduction='batchmean')
    else:
        # tail bucket: categories are the k entries plus the rest of the vocabulary as one
        tail = (1 - logprobs.exp().sum(1)).clamp_min(0)
        teacher_logits = torch.cat([logprobs, tail.log().unsqueeze(1)], 1) / tau
        p = torch.softmax(teacher_logits, dim=1)
        log_q_k = log_q.gather(1, indices)
        outside = torch.ones(rows, vocab, dtype=torch.bool).scatter(1, indices, False)
        log_q_tail = torch.logsumexp(log_q.masked_fill(~outside, float('-inf')), dim=1, keepdim=True)
        log_q_cat = torch.cat([log_q_k, log_q_tail], 1)
        kd = (torch.xlogy(p, p) - p * log_q_cat).sum(1).mean()
loss = alpha * F.cross_entropy(logits, labels) + beta * tau * tau * kd
loss.backward()
b = dict(before.named_parameters())
a = dict(after.named_parameters())
errors = {}
num = 0.0
den = 0.0
for name, param in b.items():
    applied = (param.detach().double() - a[name].detach().double()) / meta['lr']
    ref = param.grad.double()
    diff = (applied - ref).norm().item()
    norm = ref.norm().item()
    num += diff * diff
    den += norm * norm
    errors[name] = diff / max(norm, 1e-12)
print(json.dumps({'loss': loss.item(), 'global': (num ** 0.5) / (den ** 0.5), 'perParam': errors}))
`;

interface Reference {
  loss: number;
  global: number;
  perParam: Record<string, number>;
}

function write(folder: string, name: string, data: ArrayBufferView): void {
  fs.writeFileSync(path.join(folder, name), Buffer.from(data.buffer, data.byteOffset, data.byteLength));
}

/** A teacher distribution's top-k (distinct indices, log-probabilities of a random softmax). */
function topK(
  rows: number,
  vocab: number,
  k: number,
  seed: number,
): { indices: Int32Array; logprobs: Float32Array } {
  const next = rng(seed);
  const indices = new Int32Array(rows * k);
  const logprobs = new Float32Array(rows * k);
  for (let r = 0; r < rows; r++) {
    const logits = Array.from({ length: vocab }, () => (next() - 0.5) * 6);
    const max = Math.max(...logits);
    const lse = max + Math.log(logits.reduce((s, x) => s + Math.exp(x - max), 0));
    const order = logits.map((x, i) => [x, i] as const).sort((a, b) => b[0] - a[0]);
    for (let i = 0; i < k; i++) {
      indices[r * k + i] = order[i][1];
      logprobs[r * k + i] = order[i][0] - lse;
    }
  }
  return { indices, logprobs };
}

async function compare(
  mode: 'dense' | 'topk-renormalize' | 'topk-tail',
  accumulate: number,
  seed: number,
): Promise<{ reference: Reference; loss: number }> {
  const sub = fs.mkdtempSync(path.join(dir, `${mode}-`));
  const batch = taskBatch(ROWS, seed);
  using model = await createModel('tiny-vlm', {
    channels: [8, 16],
    dim: 16,
    hidden: 24,
    gridSize: 2,
    maxTokens: 6,
    seed,
    tokenVocab: ['<pad>', '<unk>', 'where', 'is', 'the', 'object', 'what', 'color', 'left', '?'],
    answerVocab: ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'],
  });
  await model.save(path.join(sub, 'before.pt'));
  const k = 4;
  const alpha = 0.6;
  const beta = 1.4;
  const tau = 2;
  const objective: TrainObjective = {
    labels: batch.labels,
    ceWeight: alpha,
    kdWeight: beta,
    temperature: tau,
  };
  if (mode === 'dense') {
    const next = rng(seed + 100);
    const teacher = new Float32Array(ROWS * VOCAB).map(() => (next() - 0.5) * 4);
    objective.teacher = teacher;
    write(sub, 'teacher.bin', teacher);
  } else {
    const { indices, logprobs } = topK(ROWS, VOCAB, k, seed + 200);
    objective.teacher = { indices, logprobs, k, missing: mode === 'topk-tail' ? 'tail' : 'renormalize' };
    write(sub, 'indices.bin', indices);
    write(sub, 'logprobs.bin', logprobs);
  }
  const result = await model.trainStep({
    method: 'answer',
    inputs: [batch.images, batch.tokens],
    objective,
    optimizer: { type: 'sgd', lr: LR, momentum: 0, weightDecay: 0 },
    accumulate,
  });
  await model.save(path.join(sub, 'after.pt'));
  write(sub, 'images.bin', batch.images.data);
  write(sub, 'tokens.bin', batch.tokens.data);
  write(sub, 'labels.bin', batch.labels);
  fs.writeFileSync(
    path.join(sub, 'meta.json'),
    JSON.stringify({ rows: ROWS, vocab: VOCAB, k, alpha, beta, tau, lr: LR, mode }),
  );
  const reference = JSON.parse(runPython(python.python as string, REFERENCE, [sub])) as Reference;
  return { reference, loss: result.loss };
}

for (const [mode, accumulate] of [
  ['dense', 1],
  ['dense', 3],
  ['topk-renormalize', 1],
  ['topk-tail', 2],
] as const) {
  gradTest(
    `trainStep's gradient equals LibTorch autograd: ${mode} teacher, accumulate ${accumulate}`,
    async (t) => {
      const { reference, loss } = await compare(mode, accumulate, 31 + accumulate);
      t.log(
        `loss ${loss} vs ${reference.loss}; global relative gradient error ${reference.global.toExponential(2)}`,
      );
      t.true(Math.abs(loss - reference.loss) <= 1e-5 * Math.abs(reference.loss), 'loss');
      t.true(reference.global < 1e-5, `global relative error ${reference.global}`);
      for (const [name, error] of Object.entries(reference.perParam)) {
        t.true(error < 1e-4, `${name}: relative error ${error}`);
      }
    },
  );
}

const torchTest = skip ? test.skip : test;

torchTest(
  'objective options pass through trainStep: none reduction, row weights, ignored labels, bf16 teacher',
  async (t) => {
    const batch = taskBatch(ROWS, 5);
    const config = {
      channels: [8],
      dim: 8,
      hidden: 8,
      gridSize: 2,
      maxTokens: 6,
      tokenVocab: ['<pad>', '<unk>', 'where', 'is', 'the', 'object', 'what', 'color', 'left', '?'],
      answerVocab: ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'],
    };
    const next = rng(9);
    // Teacher logits exactly representable in bf16, so both forms widen to the same float32 values.
    const teacher = new Float32Array(ROWS * VOCAB).map(() => float32ToBf16Exact((next() - 0.5) * 4));
    const bf16 = float32ToBf16(teacher);
    const sgd = { type: 'sgd' as const, lr: 1e-3, momentum: 0 };
    const inputs = [batch.images, batch.tokens];
    const runs: number[] = [];
    for (const form of [teacher, bf16]) {
      using model = await createModel('tiny-vlm', { ...config, seed: 4 });
      runs.push(
        (
          await model.trainStep({
            method: 'answer',
            inputs,
            objective: { teacher: form, temperature: 3 },
            optimizer: sgd,
          })
        ).loss,
      );
    }
    t.is(runs[0], runs[1], 'a bf16 teacher equals its float32 widening');

    using model = await createModel('tiny-vlm', { ...config, seed: 4 });
    const labels = Int32Array.from(batch.labels);
    labels[0] = -100;
    labels[1] = -100;
    const rowWeights = new Float32Array(ROWS).fill(1);
    rowWeights[2] = 0;
    const none = await model.trainStep({
      method: 'answer',
      inputs,
      objective: { labels, rowWeights, reduction: 'none', labelSmoothing: 0.1, zLoss: 1e-3 },
      optimizer: sgd,
    });
    t.is(none.rowLoss?.length, ROWS);
    const sum = Array.from(none.rowLoss ?? []).reduce((a, b) => a + b, 0);
    t.true(
      Math.abs(sum - none.loss) < 1e-5 * Math.max(1, Math.abs(sum)),
      'the loss is the sum of row losses',
    );
    t.is(none.rowLoss?.[0], 0, 'an ignored row has no loss');
    t.is(none.rowLoss?.[2], 0, 'a zero-weight row has no loss');
    t.is(none.validRows, ROWS - 3);
    const mean = await model.trainStep({
      method: 'answer',
      inputs,
      objective: { labels, rowWeights },
      optimizer: sgd,
    });
    t.is(mean.normalizer, ROWS - 3, 'mean divides by the valid rows');
    t.is(mean.stats.argmax.length, ROWS);
    t.true(mean.stats.lse.every((x) => Number.isFinite(x)));
  },
);

/** Rounds a float to the nearest bf16 value (kept as a float32). */
function float32ToBf16Exact(x: number): number {
  return bf16ToFloat32(float32ToBf16(new Float32Array([x])))[0];
}
