// Data-parallel training throughput of the built-in tiny-vlm (at its defaults, the fused objective
// CE + τ²·KL to a dense teacher, AdamW, as bench/train-step.bench.ts): one global batch per step taken
// by 1 process × 2 threads, 1 process × 1 thread, and 2 processes × 1 thread (a Gloo group on
// loopback, each rank half the batch). It reports samples/s, the exchange time inside the step and its
// share, the bytes all-reduced per step, an all-reduce of the same bytes alone (and of 8 bytes, which
// gives the per-message latency), and a ring all-reduce projection to 8 and 64 workers.
//
// Usage: node dist/bench/ddp.bench.js [--trials 3] [--steps 30] [--warmup 5] [--batch 64]
//          [--bandwidth-gbit 10] [--latency-us 50]

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { median } from '../lib/bench/kernel-benchmark';
import { initProcessGroup, launchWorkers } from '../lib/distributed';
import { createModel, setThreads } from '../lib/models';
import { packageRoot } from '../lib/native/load-native';

interface Options {
  trials: number;
  steps: number;
  warmup: number;
  batch: number;
  bandwidthGbit: number;
  latencyUs: number;
}

interface WorkerReport {
  rank: number;
  stepMs: number[];
  communicationMs: number[];
  bytes: number;
  buckets: number;
  allReduceAloneMs?: number[];
  allReduceTinyMs?: number[];
}

const IMAGE = 32;
const TOKENS = 16;
const OBJECTIVE = { ceWeight: 0.5, kdWeight: 0.5, temperature: 2 };
const OPTIMIZER = { type: 'adamw' as const, lr: 1e-3, weightDecay: 0.01 };
const RESULT = 'RESULT ';

function parseOptions(argv: string[]): Options & { worker?: string } {
  const out: Options & { worker?: string } = {
    trials: 3,
    steps: 30,
    warmup: 5,
    batch: 64,
    bandwidthGbit: 10,
    latencyUs: 50,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => argv[++i];
    if (flag === '--trials') out.trials = Number(value());
    else if (flag === '--steps') out.steps = Number(value());
    else if (flag === '--warmup') out.warmup = Number(value());
    else if (flag === '--batch') out.batch = Number(value());
    else if (flag === '--bandwidth-gbit') out.bandwidthGbit = Number(value());
    else if (flag === '--latency-us') out.latencyUs = Number(value());
    else if (flag === '--worker') out.worker = value();
    else throw new Error(`unknown option ${flag}`);
  }
  return out;
}

/** The same seeded global batch in every process (as bench/train-step.bench.ts makes it). */
function globalBatch(rows: number, tokenVocab: number, vocab: number) {
  let state = 12345;
  const random = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state / 4294967296;
  };
  return {
    images: Float32Array.from({ length: rows * 3 * IMAGE * IMAGE }, () => random()),
    tokens: Int32Array.from({ length: rows * TOKENS }, () => 1 + Math.floor(random() * (tokenVocab - 1))),
    labels: Int32Array.from({ length: rows }, () => Math.floor(random() * vocab)),
    teacher: Float32Array.from({ length: rows * vocab }, () => (random() - 0.5) * 6),
  };
}

/** One process's part: 'single' (no group) or 'ddp' (a rank of the group launchWorkers formed). */
async function worker(mode: string, options: Options): Promise<WorkerReport> {
  const distributed = mode === 'ddp';
  const threads = distributed ? 1 : Number(mode.replace('single', '')) || 2;
  setThreads(threads);
  const group = distributed ? await initProcessGroup({ timeoutMs: 120_000 }) : undefined;
  const rank = group?.rank ?? 0;
  const world = group?.worldSize ?? 1;
  using model = await createModel('tiny-vlm', { seed: 1 });
  const vocab = (model.attributes().answer_vocab as string[]).length;
  const tokenVocab = (model.attributes().token_vocab as string[]).length;
  const data = globalBatch(options.batch, tokenVocab, vocab);
  const rows = options.batch / world;
  const begin = rank * rows;
  const images = {
    data: data.images.subarray(begin * 3 * IMAGE * IMAGE, (begin + rows) * 3 * IMAGE * IMAGE),
    shape: [rows, 3, IMAGE, IMAGE],
  };
  const tokens = {
    data: data.tokens.subarray(begin * TOKENS, (begin + rows) * TOKENS),
    shape: [rows, TOKENS],
  };
  const objective = {
    ...OBJECTIVE,
    labels: data.labels.subarray(begin, begin + rows),
    teacher: data.teacher.subarray(begin * vocab, (begin + rows) * vocab),
  };
  const step = () =>
    model.trainStep({
      method: 'answer',
      inputs: [images, tokens],
      objective,
      optimizer: OPTIMIZER,
      distributed: group,
    });
  for (let i = 0; i < options.warmup; i++) await step();
  const report: WorkerReport = { rank, stepMs: [], communicationMs: [], bytes: 0, buckets: 0 };
  for (let i = 0; i < options.steps; i++) {
    const start = performance.now();
    const result = await step();
    report.stepMs.push(performance.now() - start);
    report.communicationMs.push(result.distributed?.communicationMs ?? 0);
    report.bytes = result.distributed?.bytes ?? 0;
    report.buckets = result.distributed?.buckets ?? 0;
  }
  if (group) {
    // The all-reduce alone: the gradient's bytes, and 8 bytes (the per-message latency).
    const gradient = { data: new Float32Array(report.bytes / 4), shape: [report.bytes / 4] };
    const tiny = { data: new Float32Array(2), shape: [2] };
    report.allReduceAloneMs = [];
    report.allReduceTinyMs = [];
    for (let i = 0; i < options.steps + options.warmup; i++) {
      let start = performance.now();
      await group.allReduce(gradient);
      if (i >= options.warmup) report.allReduceAloneMs.push(performance.now() - start);
      start = performance.now();
      await group.allReduce(tiny);
      if (i >= options.warmup) report.allReduceTinyMs.push(performance.now() - start);
    }
    await group.barrier();
    await group.destroy();
  }
  return report;
}

/** The command-line arguments of one worker process. */
function workerArgs(mode: string, options: Options): string[] {
  return [
    '--worker',
    mode,
    '--steps',
    String(options.steps),
    '--warmup',
    String(options.warmup),
    '--batch',
    String(options.batch),
  ];
}

function runSingle(threads: number, options: Options): WorkerReport {
  const args = [__filename, ...workerArgs(`single${threads}`, options)];
  const child = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (child.status !== 0) throw new Error(`the single-process trial failed:\n${child.stderr}`);
  const line = child.stdout.split('\n').find((l) => l.startsWith(RESULT));
  return JSON.parse((line as string).slice(RESULT.length)) as WorkerReport;
}

async function runDdp(options: Options): Promise<WorkerReport[]> {
  const reports: WorkerReport[] = [];
  await launchWorkers({
    script: __filename,
    args: workerArgs('ddp', options),
    nprocPerNode: 2,
    threadsPerWorker: 1,
    onOutput: (_rank, stream, line) => {
      if (stream === 'stdout' && line.startsWith(RESULT)) reports.push(JSON.parse(line.slice(RESULT.length)));
      else if (stream === 'stderr') process.stderr.write(`${line}\n`);
    },
  });
  return reports.sort((a, b) => a.rank - b.rank);
}

/**
 * Ring all-reduce of `bytes` over `workers`: 2(W−1) messages of bytes/W each in sequence — a
 * reduce-scatter and an all-gather — so 2(W−1)·α + 2(W−1)/W · bytes/β.
 */
function ringAllReduceMs(bytes: number, workers: number, latencyUs: number, bytesPerSecond: number): number {
  if (workers < 2) return 0;
  return (
    2 * (workers - 1) * (latencyUs / 1000) + ((2 * (workers - 1)) / workers) * (bytes / bytesPerSecond) * 1000
  );
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (options.worker) {
    process.stdout.write(`${RESULT}${JSON.stringify(await worker(options.worker, options))}\n`);
    return;
  }
  const trials: { single2: WorkerReport; single1: WorkerReport; ddp: WorkerReport[] }[] = [];
  for (let trial = 0; trial < options.trials; trial++) {
    process.stderr.write(`trial ${trial + 1}/${options.trials}\n`);
    trials.push({
      single2: runSingle(2, options),
      ddp: await runDdp(options),
      single1: runSingle(1, options),
    });
  }
  const med = (pick: (t: (typeof trials)[number]) => number[]) => median(trials.map((t) => median(pick(t))));
  const single2Ms = med((t) => t.single2.stepMs);
  const single1Ms = med((t) => t.single1.stepMs);
  // A data-parallel step ends when the slower rank's does: the larger of the two ranks' medians.
  const ddpMs = median(trials.map((t) => Math.max(...t.ddp.map((r) => median(r.stepMs)))));
  const exchangeMs = med((t) => t.ddp[0].communicationMs);
  const aloneMs = med((t) => t.ddp[0].allReduceAloneMs ?? []);
  const tinyMs = med((t) => t.ddp[0].allReduceTinyMs ?? []);
  const bytes = trials[0].ddp[0].bytes;
  const buckets = trials[0].ddp[0].buckets;

  // The projection: each worker keeps a batch of batch/2 rows and its measured 1-thread compute time
  // (the step without the exchange); the exchange is two ring all-reduces in sequence after the
  // backward pass (the step summary, 8·(3 + 2W) bytes, and the gradients) over the assumed network.
  // The row counts (16 bytes) are exchanged during the forward pass and assumed hidden by it.
  const perWorkerRows = options.batch / 2;
  const computeMs = ddpMs - exchangeMs;
  const bytesPerSecond = (options.bandwidthGbit * 1e9) / 8;
  const gradientBytes = bytes - 16 - 8 * (3 + 2 * 2); // this run's payload less its counts and summary
  const projection = [2, 8, 64].map((workers) => {
    const commMs =
      ringAllReduceMs(gradientBytes, workers, options.latencyUs, bytesPerSecond) +
      ringAllReduceMs(8 * (3 + 2 * workers), workers, options.latencyUs, bytesPerSecond);
    const stepMs = computeMs + commMs;
    return {
      workers,
      communicationMs: commMs,
      stepMs,
      samplesPerSecond: (workers * perWorkerRows * 1000) / stepMs,
      efficiency: computeMs / stepMs,
    };
  });

  const report = {
    batch: options.batch,
    trials: options.trials,
    steps: options.steps,
    cpu: os.cpus()[0]?.model,
    cores: os.availableParallelism(),
    oneProcessTwoThreads: { stepMs: single2Ms, samplesPerSecond: (options.batch * 1000) / single2Ms },
    oneProcessOneThread: { stepMs: single1Ms, samplesPerSecond: (options.batch * 1000) / single1Ms },
    twoProcessesOneThread: {
      stepMs: ddpMs,
      samplesPerSecond: (options.batch * 1000) / ddpMs,
      exchangeMs,
      exchangeShare: exchangeMs / ddpMs,
      bytesPerStep: bytes,
      buckets,
      allReduceAloneMs: aloneMs,
      allReduce8BytesMs: tinyMs,
      loopbackBandwidthGBps: bytes / ((aloneMs - tinyMs) / 1000) / 1e9,
    },
    speedupTwoProcessesOverTwoThreads: single2Ms / ddpMs,
    projection: {
      model:
        'ring all-reduce: 2(W−1)·α + 2(W−1)/W · bytes/β per collective; after the backward pass the summary and the gradients in sequence, not overlapped with compute; the row counts hidden by the forward pass',
      assumedBandwidthGbit: options.bandwidthGbit,
      assumedLatencyUs: options.latencyUs,
      perWorkerRows,
      computeMs,
      points: projection,
    },
  };
  const out = path.join(packageRoot(), 'bench', 'results', 'ddp.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  const two = report.twoProcessesOneThread;
  process.stdout.write(
    [
      `tiny-vlm train step, global batch ${options.batch}, ${options.trials} trials × ${options.steps} steps (medians), ${report.cores} cores`,
      `1 process × 2 threads    ${report.oneProcessTwoThreads.samplesPerSecond.toFixed(0).padStart(6)} samples/s   step ${single2Ms.toFixed(2)} ms`,
      `1 process × 1 thread     ${report.oneProcessOneThread.samplesPerSecond.toFixed(0).padStart(6)} samples/s   step ${single1Ms.toFixed(2)} ms`,
      `2 processes × 1 thread   ${two.samplesPerSecond.toFixed(0).padStart(6)} samples/s   step ${ddpMs.toFixed(2)} ms (Gloo, loopback)  = ${report.speedupTwoProcessesOverTwoThreads.toFixed(2)}× 1 process × 2 threads`,
      `  exchange in the step   ${exchangeMs.toFixed(3)} ms = ${(100 * two.exchangeShare).toFixed(1)}% of the step; ${bytes} bytes all-reduced per step in ${buckets} bucket(s)`,
      `  all-reduce alone       ${aloneMs.toFixed(3)} ms for ${bytes} bytes, ${tinyMs.toFixed(3)} ms for 8 bytes (loopback ≈ ${two.loopbackBandwidthGBps.toFixed(2)} GB/s)`,
      `projection (ring all-reduce, ${options.bandwidthGbit} Gbit/s, ${options.latencyUs} µs per message, ${perWorkerRows} rows and ${computeMs.toFixed(2)} ms of compute per worker):`,
      ...projection.map(
        (p) =>
          `  ${String(p.workers).padStart(2)} workers: exchange ${p.communicationMs.toFixed(2)} ms, ${p.samplesPerSecond.toFixed(0)} samples/s, efficiency ${(100 * p.efficiency).toFixed(0)}%`,
      ),
      `(JSON: ${path.relative(process.cwd(), out)})`,
      '',
    ].join('\n'),
  );
}

main().catch((error) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
