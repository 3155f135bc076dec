// Run inside a consumer project by scripts/consumer-test.sh: sdvp required by name; capabilities(), a
// kernel call checked against a hand computation, and with SDVP_EXPECT_TORCH=1 a model created, trained
// a step, saved and reloaded; without it, the ERR_SDVP_NO_TORCH error whose fix is printed as JSON.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const sdvp = require('sdvp');

function checkKernel() {
  // Cross-entropy of two rows against hard labels, mean over rows: mean(lse(row) - row[label]).
  const student = Float32Array.from([1, 2, 3, 0.5, -1, 0]);
  const labels = Int32Array.from([2, 0]);
  const { loss, grad } = sdvp.distillLoss({ student, rows: 2, vocab: 3, labels });
  const lse = (row) => Math.log(row.reduce((sum, x) => sum + Math.exp(x), 0));
  const expected = (lse([1, 2, 3]) - 3 + (lse([0.5, -1, 0]) - 0.5)) / 2;
  assert.ok(Math.abs(loss - expected) < 1e-6, `kernel loss ${loss}, expected ${expected}`);
  assert.equal(grad.length, 6);
  return loss;
}

async function checkModel() {
  sdvp.setThreads(2);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sdvp-consumer-'));
  try {
    const config = {
      tokenVocab: ['<pad>', 'is', 'it', '?'],
      answerVocab: ['yes', 'no'],
      imageSize: 8,
      seed: 1,
    };
    const model = await sdvp.createModel('tiny-vlm', config);
    const rows = 4;
    const images = {
      data: new Float32Array(rows * 3 * 8 * 8).map((_, i) => Math.sin(i)),
      shape: [rows, 3, 8, 8],
    };
    const tokens = { data: Int32Array.from({ length: rows * 3 }, (_, i) => (i % 3) + 1), shape: [rows, 3] };
    const step = await model.trainStep({
      method: 'answer',
      inputs: [images, tokens],
      objective: { labels: Int32Array.from([0, 1, 0, 1]) },
      optimizer: { type: 'adamw', lr: 1e-3 },
    });
    assert.ok(Number.isFinite(step.loss) && step.loss > 0, `train step loss ${step.loss}`);
    assert.equal(step.step, 1);
    const saved = path.join(dir, 'student.pt');
    await model.save(saved);
    assert.ok(fs.statSync(saved).size > 1000, 'the saved TorchScript file is too small');
    const checkpoint = path.join(dir, 'student-ckpt.pt');
    await model.saveCheckpoint(checkpoint);
    const reloaded = await sdvp.loadModel(checkpoint);
    assert.equal(reloaded.step, 1);
    const before = await model.callTensor('answer', [images, tokens]);
    const after = await reloaded.callTensor('answer', [images, tokens]);
    assert.deepEqual(Array.from(after.data), Array.from(before.data));
    model.dispose();
    reloaded.dispose();
    return { loss: step.loss, savedBytes: fs.statSync(saved).size };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  const expectTorch = process.env.SDVP_EXPECT_TORCH === '1';
  const caps = sdvp.capabilities();
  assert.equal(caps.torch.built, expectTorch, `capabilities().torch: ${JSON.stringify(caps.torch)}`);
  const kernelLoss = checkKernel();
  if (expectTorch) {
    const model = await checkModel();
    console.log(JSON.stringify({ capabilities: caps, kernelLoss, model }));
    return;
  }
  const error = await sdvp.createModel('tiny-vlm').then(
    () => assert.fail('createModel worked in a build without LibTorch'),
    (e) => e,
  );
  assert.ok(error instanceof sdvp.SdvpError, String(error));
  assert.equal(error.code, 'ERR_SDVP_NO_TORCH');
  assert.ok(error.message.includes(error.fix), 'the message names the fix');
  console.log(JSON.stringify({ capabilities: caps, kernelLoss, fix: error.fix }));
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
