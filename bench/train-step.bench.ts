// Training-step throughput of the built-in tiny-vlm (batch 64, fused objective: CE + τ²·KL to a dense
// teacher, AdamW) in sdvp, against the same TorchScript file trained from Python's PyTorch with
// F.cross_entropy + F.kl_div. Each trial runs in a fresh process, sdvp and PyTorch alternating; the
// report gives medians over trials of each trial's median step, and of the loss part (forward and
// backward of the objective) inside the step and alone (on a module that only returns the logits).
//
// Usage: node dist/bench/train-step.bench.js [--trials 3] [--steps 30] [--warmup 5] [--batch 64]
//          [--threads 2] [--graph-optimization]

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { findPythonTorch } from '../lib/bench/python-torch';
import { createModel, loadModel, setGraphOptimization, setThreads } from '../lib/models';
import { packageRoot } from '../lib/native/load-native';

interface Options {
  trials: number;
  steps: number;
  warmup: number;
  batch: number;
  threads: number;
  graphOptimization: boolean;
}

interface TrialResult {
  stepMs: number[];
  lossMs: number[];
  lossAloneMs: number[];
  losses: number[];
  torch?: string;
}

const IMAGE = 32;
const TOKENS = 16;
const OBJECTIVE = { ceWeight: 0.5, kdWeight: 0.5, temperature: 2 };
const OPTIMIZER = { lr: 1e-3, weightDecay: 0.01 };

function parseOptions(argv: string[]): Options & { trial?: string; dir?: string } {
  const out: Options & { trial?: string; dir?: string } = {
    trials: 3,
    steps: 30,
    warmup: 5,
    batch: 64,
    threads: 2,
    graphOptimization: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => argv[++i];
    if (flag === '--trials') out.trials = Number(value());
    else if (flag === '--steps') out.steps = Number(value());
    else if (flag === '--warmup') out.warmup = Number(value());
    else if (flag === '--batch') out.batch = Number(value());
    else if (flag === '--threads') out.threads = Number(value());
    else if (flag === '--graph-optimization') out.graphOptimization = true;
    else if (flag === '--trial') out.trial = value();
    else if (flag === '--dir') out.dir = value();
    else throw new Error(`unknown option ${flag}`);
  }
  return out;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function readFloat32(file: string): Float32Array {
  const bytes = fs.readFileSync(file);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

function readInt32(file: string): Int32Array {
  const bytes = fs.readFileSync(file);
  return new Int32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

/** Writes the model (the built-in tiny-vlm at its defaults) and one seeded batch for both sides. */
async function prepare(dir: string, options: Options): Promise<void> {
  using model = await createModel('tiny-vlm', { seed: 1 });
  await model.save(path.join(dir, 'model.pt'));
  const vocab = (model.attributes().answer_vocab as string[]).length;
  const tokenVocab = (model.attributes().token_vocab as string[]).length;
  let state = 12345;
  const random = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state / 4294967296;
  };
  const rows = options.batch;
  const images = Float32Array.from({ length: rows * 3 * IMAGE * IMAGE }, () => random());
  const tokens = Int32Array.from(
    { length: rows * TOKENS },
    () => 1 + Math.floor(random() * (tokenVocab - 1)),
  );
  const labels = Int32Array.from({ length: rows }, () => Math.floor(random() * vocab));
  const teacher = Float32Array.from({ length: rows * vocab }, () => (random() - 0.5) * 6);
  for (const [name, data] of [
    ['images.bin', images],
    ['tokens.bin', tokens],
    ['labels.bin', labels],
    ['teacher.bin', teacher],
  ] as const) {
    fs.writeFileSync(path.join(dir, name), Buffer.from(data.buffer));
  }
  const meta = { rows, imageSize: IMAGE, tokens: TOKENS, vocab, ...OBJECTIVE, ...OPTIMIZER };
  fs.writeFileSync(path.join(dir, 'meta.json'), JSON.stringify(meta));
}

/** One sdvp trial (in its own process). */
async function sdvpTrial(dir: string, options: Options): Promise<TrialResult> {
  setThreads(options.threads);
  setGraphOptimization(options.graphOptimization);
  using model = await loadModel(path.join(dir, 'model.pt'));
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8'));
  const rows = meta.rows as number;
  const images = { data: readFloat32(path.join(dir, 'images.bin')), shape: [rows, 3, IMAGE, IMAGE] };
  const tokens = { data: readInt32(path.join(dir, 'tokens.bin')), shape: [rows, TOKENS] };
  const objective = {
    ...OBJECTIVE,
    labels: readInt32(path.join(dir, 'labels.bin')),
    teacher: readFloat32(path.join(dir, 'teacher.bin')),
  };
  const optimizer = { type: 'adamw' as const, ...OPTIMIZER };
  const step = () => model.trainStep({ method: 'answer', inputs: [images, tokens], objective, optimizer });
  for (let i = 0; i < options.warmup; i++) await step();
  const result: TrialResult = { stepMs: [], lossMs: [], lossAloneMs: [], losses: [] };
  for (let i = 0; i < options.steps; i++) {
    const start = performance.now();
    const out = await step();
    result.stepMs.push(performance.now() - start);
    result.lossMs.push(out.timings.lossMs);
    result.losses.push(out.loss);
  }
  // The fused objective alone: a module that only returns a [rows, vocab] parameter.
  using alone = await loadModel(path.join(dir, 'loss-alone.pt'));
  const broadcast = { data: new Float32Array(rows), shape: [rows, 1] };
  const tiny = { type: 'sgd' as const, lr: 1e-9, momentum: 0 };
  for (let i = 0; i < 50 * options.steps; i++) {
    const out = await alone.trainStep({ method: 'forward', inputs: [broadcast], objective, optimizer: tiny });
    result.lossAloneMs.push(out.timings.lossMs);
  }
  return result;
}

function runChild(command: string, args: string[]): TrialResult {
  const child = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, env: process.env });
  if (child.status !== 0) throw new Error(`${command} ${args.join(' ')} failed:\n${child.stderr}`);
  const lines = child.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]) as TrialResult;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (options.trial === 'sdvp') {
    process.stdout.write(`${JSON.stringify(await sdvpTrial(options.dir as string, options))}\n`);
    return;
  }
  const python = findPythonTorch();
  if (!python) throw new Error(findPythonTorch.hint);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sdvp-train-bench-'));
  try {
    await prepare(dir, options);
    const script = path.join(packageRoot(), 'bench', 'train_step_torch.py');
    const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8'));
    const made = spawnSync(
      python.python,
      [script, '--make-loss-module', dir, String(meta.rows), String(meta.vocab)],
      {
        encoding: 'utf8',
      },
    );
    if (made.status !== 0) throw new Error(`making the loss-alone module failed:\n${made.stderr}`);
    const sdvp: TrialResult[] = [];
    const torch: TrialResult[] = [];
    const childArgs = [
      '--dir',
      dir,
      '--steps',
      String(options.steps),
      '--warmup',
      String(options.warmup),
      '--threads',
      String(options.threads),
    ];
    if (options.graphOptimization) childArgs.push('--graph-optimization');
    for (let trial = 0; trial < options.trials; trial++) {
      process.stderr.write(`trial ${trial + 1}/${options.trials}\n`);
      sdvp.push(runChild(process.execPath, [__filename, '--trial', 'sdvp', ...childArgs]));
      torch.push(
        runChild(python.python, [
          script,
          dir,
          String(options.steps),
          String(options.warmup),
          String(options.threads),
        ]),
      );
    }
    const summarize = (trials: TrialResult[]) => {
      const stepMs = median(trials.map((t) => median(t.stepMs)));
      const bestStepMs = Math.min(...trials.map((t) => median(t.stepMs)));
      const lossMs = median(trials.map((t) => median(t.lossMs)));
      const lossAloneMs = median(trials.map((t) => median(t.lossAloneMs)));
      return {
        stepMs,
        bestStepMs,
        lossMs,
        lossAloneMs,
        samplesPerSecond: (options.batch * 1000) / stepMs,
        bestSamplesPerSecond: (options.batch * 1000) / bestStepMs,
        trialStepMs: trials.map((t) => median(t.stepMs)),
        firstLoss: trials[0].losses[0],
      };
    };
    const ours = summarize(sdvp);
    const theirs = summarize(torch);
    const report = {
      batch: options.batch,
      threads: options.threads,
      trials: options.trials,
      steps: options.steps,
      graphOptimization: options.graphOptimization,
      pytorch: torch[0].torch,
      sdvp: ours,
      torch: theirs,
      endToEndSpeedup: theirs.stepMs / ours.stepMs,
      bestTrialSpeedup: theirs.bestStepMs / ours.bestStepMs,
      lossPartSpeedup: theirs.lossMs / ours.lossMs,
      lossAloneSpeedup: theirs.lossAloneMs / ours.lossAloneMs,
      cpu: os.cpus()[0]?.model,
    };
    const out = path.join(packageRoot(), 'bench', 'results', 'train-step.json');
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
    const row = (name: string, r: typeof ours) =>
      `${name.padEnd(22)} ${r.samplesPerSecond.toFixed(0).padStart(8)} samples/s   step ${r.stepMs.toFixed(2).padStart(7)} ms (best trial ${r.bestStepMs.toFixed(2)})   loss part in the step ${(r.lossMs * 1000).toFixed(1).padStart(6)} µs, alone ${(r.lossAloneMs * 1000).toFixed(1).padStart(6)} µs`;
    process.stdout.write(
      [
        `tiny-vlm train step, batch ${options.batch}, ${options.threads} threads, ${options.trials} trials × ${options.steps} steps (medians)`,
        row('sdvp (fused, LibTorch)', ours),
        row(`PyTorch ${torch[0].torch}`, theirs),
        `end to end: sdvp ${report.endToEndSpeedup.toFixed(2)}× PyTorch's throughput (best trials: ${report.bestTrialSpeedup.toFixed(2)}×); loss part: ${report.lossAloneSpeedup.toFixed(1)}× faster alone, ${report.lossPartSpeedup.toFixed(1)}× inside the step`,
        `(JSON: ${path.relative(process.cwd(), out)})`,
        '',
      ].join('\n'),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
