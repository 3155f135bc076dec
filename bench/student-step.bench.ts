// The demo student's bare train step: transformer-vlm (the demo's configuration) on batches shaped like a
// distillation stage's (64 stage rows + 32 replayed rows, top-k soft labels, hard labels on half the rows),
// with nothing around it — the reference for the stage samples/s the demo reports (the run's harness share).
//
//   node dist/bench/student-step.bench.js [--trials 5] [--steps 30] [--method answer|ground] [--json]

import { digitAnswerVocab, digitTokenVocab } from '../lib/data/vocabulary';
import { createModel } from '../lib/models/create-model';
import { defaultThreads, setThreads } from '../lib/models/torch-runtime';
import { DEFAULT_STUDENT } from '../lib/run/pretrain-student';

function option(name: string, fallback: string): string {
  const index = process.argv.indexOf(name);
  return index >= 0 ? process.argv[index + 1] : fallback;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function main(): Promise<void> {
  const trials = Number(option('--trials', '5'));
  const steps = Number(option('--steps', '30'));
  const method = option('--method', 'answer') as 'answer' | 'ground';
  setThreads(defaultThreads());
  const rows = 96;
  const k = method === 'answer' ? 5 : 16;
  const tokens = DEFAULT_STUDENT.maxTokens!;
  const side = DEFAULT_STUDENT.imageSize!;
  const images = new Float32Array(rows * 3 * side * side).map((_, i) => ((i * 7919) % 251) / 251);
  const tokenIds = new Int32Array(rows * tokens).map((_, i) => 2 + (i % 7));
  const labels = new Int32Array(rows).map((_, i) => (i % 2 === 0 && i < 64 ? i % 10 : -100));
  const indices = new Int32Array(rows * k).map((_, i) => i % k);
  const logprobs = new Float32Array(rows * k).map((_, i) => Math.log(1 / (k + 1)) - (i % k) * 0.01);
  const perTrial: number[] = [];
  for (let trial = 0; trial < trials; trial++) {
    const model = await createModel('transformer-vlm', {
      ...DEFAULT_STUDENT,
      tokenVocab: digitTokenVocab(),
      answerVocab: digitAnswerVocab(),
      seed: trial,
    });
    const options = {
      method,
      inputs: [
        { data: images, shape: [rows, 3, side, side] },
        { data: tokenIds, shape: [rows, tokens] },
      ],
      objective: {
        labels,
        teacher: { indices, logprobs, k, missing: 'tail' as const },
        ceWeight: 0.5,
        kdWeight: 0.5,
        temperature: 1.5,
        reduction: 'batchmean' as const,
      },
      optimizer: { type: 'adamw' as const, lr: 1e-3, schedule: { kind: 'constant' as const } },
    };
    for (let i = 0; i < 5; i++) await model.trainStep(options);
    const times: number[] = [];
    for (let i = 0; i < steps; i++) {
      const started = performance.now();
      await model.trainStep(options);
      times.push(performance.now() - started);
    }
    model.dispose();
    perTrial.push(median(times));
  }
  const stepMs = median(perTrial);
  const result = {
    method,
    rows,
    threads: defaultThreads(),
    trials,
    steps,
    stepMs,
    samplesPerSecond: (rows / stepMs) * 1000,
  };
  if (process.argv.includes('--json')) process.stdout.write(`${JSON.stringify(result)}\n`);
  else
    process.stdout.write(
      `transformer-vlm ${method} step, ${rows} rows, ${result.threads} threads: ${stepMs.toFixed(1)} ms, ${result.samplesPerSecond.toFixed(0)} samples/s (median of ${trials} × ${steps})\n`,
    );
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
