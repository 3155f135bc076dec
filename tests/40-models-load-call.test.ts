// Loading and running TorchScript: a module built and saved from C++ (a built-in architecture) and one
// scripted by Python's PyTorch give the same outputs in sdvp as in LibTorch itself; save → load round
// trip; methods, parameters and attributes.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import test from 'ava';
import { type OutputTensor, createModel, isTensor, loadModel, setThreads } from '../lib/models';
import { randomTensor, torchSkipReason } from './helpers/model-fixtures';
import { findPythonTorch, runPython } from './helpers/python-torch';

const skip = torchSkipReason();
const python = findPythonTorch();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sdvp-40-'));
test.after.always(() => fs.rmSync(dir, { recursive: true, force: true }));
if (!skip) setThreads(2);

const torchTest = skip ? test.skip : test;
const pythonTest = skip || python.skip ? test.skip : test;
if (skip) test.skip(`model tests skipped: ${skip}`, () => {});
if (!skip && python.skip) test.skip(`Python reference tests skipped: ${python.skip}`, () => {});

function writeBinary(file: string, data: ArrayBufferView): void {
  fs.writeFileSync(file, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

torchTest('a built-in model describes its methods, parameters and attributes', async (t) => {
  using model = await createModel('tiny-vlm', {
    channels: [8, 16],
    dim: 16,
    hidden: 16,
    gridSize: 2,
    seed: 1,
  });
  const methods = model.methods().map((m) => m.name);
  for (const name of ['answer', 'ground', 'forward']) t.true(methods.includes(name), name);
  const answer = model.methods().find((m) => m.name === 'answer');
  t.deepEqual(answer?.arguments, ['images: Tensor', 'tokens: Tensor']);
  t.is(answer?.returns, 'Tensor');
  const parameters = model.parameters();
  t.true(
    parameters.some((p) => p.name === 'encoder.conv1.weight' && p.shape.join() === '8,3,3,3' && p.trainable),
  );
  t.true(parameters.some((p) => p.name === 'answer_head.weight'));
  const attributes = model.attributes();
  t.is(attributes.architecture, 'tiny-vlm');
  t.is((attributes.token_vocab as string[])[0], '<pad>');
  t.is(attributes.grid_size, 2);
  t.deepEqual(JSON.parse(attributes.config as string).dim, 16);
  t.is(model.device, 'cpu');
  t.is(model.step, 0);
});

torchTest('the same seed gives the same model; outputs have the contract shapes', async (t) => {
  using a = await createModel('tiny-vlm', { seed: 5 });
  using b = await createModel('tiny-vlm', { seed: 5 });
  const images = randomTensor([3, 3, 32, 32], 1);
  const tokens = { data: new Int32Array([2, 3, 4, 0, 5, 6, 0, 0, 7, 8, 9, 10]), shape: [3, 4] };
  const answer = await a.callTensor('answer', [images, tokens]);
  t.deepEqual(answer.shape, [3, 16]);
  t.deepEqual(
    Array.from(answer.data as Float32Array),
    Array.from((await b.callTensor('answer', [images, tokens])).data as Float32Array),
  );
  const ground = await a.callTensor('ground', [images, tokens]);
  t.deepEqual(ground.shape, [3, 16]);
  using classifier = await createModel('cnn-classifier', { labels: ['a', 'b', 'c'] });
  t.deepEqual((await classifier.callTensor('forward', [images])).shape, [3, 3]);
  using detector = await createModel('grid-detector', { gridSize: 3 });
  t.deepEqual((await detector.callTensor('detect', [images])).shape, [3, 9]);
  t.deepEqual((await detector.callTensor('detect_classes', [images])).shape, [3, 10, 9]);
  t.deepEqual((await detector.callTensor('forward', [images])).shape, [3, 10]);
});

torchTest('save → load gives identical outputs; batched calls equal whole calls', async (t) => {
  using model = await createModel('tiny-vlm', { seed: 9 });
  const images = randomTensor([5, 3, 32, 32], 2);
  const tokens = { data: new BigInt64Array([1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n, 10n]), shape: [5, 2] };
  const before = await model.callTensor('answer', [images, tokens]);
  const file = path.join(dir, 'round-trip.pt');
  await model.save(file);
  t.false(
    fs.readdirSync(dir).some((name) => name.includes('.tmp-')),
    'no temporary file is left behind',
  );
  using loaded = await loadModel(file);
  const after = await loaded.callTensor('answer', [images, tokens]);
  t.deepEqual(Array.from(after.data as Float32Array), Array.from(before.data as Float32Array));
  const fromBytes = await loadModel(new Uint8Array(fs.readFileSync(file)));
  t.deepEqual(
    Array.from((await fromBytes.callTensor('answer', [images, tokens])).data as Float32Array),
    Array.from(before.data as Float32Array),
  );
  fromBytes.dispose();
  const batched = await model.callTensor('answer', [images, tokens], { batchSize: 2 });
  t.deepEqual(batched.shape, before.shape);
  t.true(maxAbsDiff(batched.data as Float32Array, before.data as Float32Array) < 1e-5);
});

pythonTest('a module saved from C++ gives the same outputs in Python PyTorch', async (t) => {
  using model = await createModel('tiny-vlm', { seed: 3 });
  const file = path.join(dir, 'from-cpp.pt');
  await model.save(file);
  const images = randomTensor([4, 3, 32, 32], 7);
  const tokens = { data: new Int32Array([2, 3, 4, 5, 6, 0, 7, 8, 0, 9, 10, 11]), shape: [4, 3] };
  const answer = await model.callTensor('answer', [images, tokens]);
  const ground = await model.callTensor('ground', [images, tokens]);
  writeBinary(path.join(dir, 'images.bin'), images.data);
  writeBinary(path.join(dir, 'tokens.bin'), tokens.data);
  const out = runPython(
    python.python as string,
    `
import json, sys, torch
d = sys.argv[1]
m = torch.jit.load(d + '/from-cpp.pt')
images = torch.frombuffer(bytearray(open(d + '/images.bin', 'rb').read()), dtype=torch.float32).reshape(4, 3, 32, 32)
tokens = torch.frombuffer(bytearray(open(d + '/tokens.bin', 'rb').read()), dtype=torch.int32).reshape(4, 3).long()
with torch.no_grad():
    print(json.dumps({'answer': m.answer(images, tokens).flatten().tolist(), 'ground': m.ground(images, tokens).flatten().tolist(),
                      'vocab': list(m.answer_vocab), 'params': [n for n, _ in m.named_parameters()]}))
`,
    [dir],
  );
  const reference = JSON.parse(out);
  t.true(maxAbsDiff(answer.data as Float32Array, reference.answer) < 1e-5, 'answer');
  t.true(maxAbsDiff(ground.data as Float32Array, reference.ground) < 1e-5, 'ground');
  t.deepEqual(reference.vocab, model.attributes().answer_vocab);
  t.deepEqual(
    [...reference.params].sort(),
    model
      .parameters()
      .map((p) => p.name)
      .sort(),
  );
});

pythonTest(
  'a module scripted by Python PyTorch loads and gives the same outputs (tuples, longs, extra methods)',
  async (t) => {
    const x = randomTensor([5, 4], 11);
    const ids = new Int32Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5]);
    writeBinary(path.join(dir, 'x.bin'), x.data);
    writeBinary(path.join(dir, 'ids.bin'), ids);
    const out = runPython(
      python.python as string,
      `
import json, sys, torch
from typing import Tuple
d = sys.argv[1]
torch.manual_seed(0)
class Scripted(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)
        self.emb = torch.nn.Embedding(10, 4)
        self.labels = ['a', 'b', 'c']
    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        h = self.lin(x + self.emb(ids).mean(1))
        return h, h.argmax(1)
    @torch.jit.export
    def scores(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.lin(x))
    @torch.jit.export
    def mask(self, x: torch.Tensor) -> torch.Tensor:
        return x > 0
m = torch.jit.script(Scripted())
m.save(d + '/scripted.pt')
x = torch.frombuffer(bytearray(open(d + '/x.bin', 'rb').read()), dtype=torch.float32).reshape(5, 4)
ids = torch.frombuffer(bytearray(open(d + '/ids.bin', 'rb').read()), dtype=torch.int32).reshape(5, 3).long()
with torch.no_grad():
    h, a = m(x, ids)
    print(json.dumps({'h': h.flatten().tolist(), 'argmax': a.tolist(), 'scores': m.scores(x).flatten().tolist(),
                      'mask': m.mask(x).flatten().int().tolist()}))
`,
      [dir],
    );
    const reference = JSON.parse(out);
    using model = await loadModel(path.join(dir, 'scripted.pt'));
    t.deepEqual(model.attributes().labels, ['a', 'b', 'c']);
    const result = await model.call('forward', [x, { data: ids, shape: [5, 3] }]);
    t.true(Array.isArray(result), 'a tuple comes back as an array');
    const [h, argmax] = result as OutputTensor[];
    t.deepEqual(h.shape, [5, 3]);
    t.true(maxAbsDiff(h.data as Float32Array, reference.h) < 1e-6);
    t.is(argmax.dtype, 'int64');
    t.deepEqual(Array.from(argmax.data as BigInt64Array, Number), reference.argmax);
    const scores = await model.call('scores', [x]);
    t.true(isTensor(scores));
    t.true(maxAbsDiff((scores as OutputTensor).data as Float32Array, reference.scores) < 1e-6);
    const mask = (await model.call('mask', [x])) as OutputTensor;
    t.is(mask.dtype, 'bool');
    t.deepEqual(Array.from(mask.data as Uint8Array), reference.mask);
  },
);
