// Shared by the distributed tests and their worker processes: each rank's collective inputs (simple
// formulas, also written in the Python rank's script), the training task's global batches, and how
// ranks are spawned and report back (one `RESULT <json>` line on stdout).

import { type ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import type { Tensor } from '../../lib/models';
import { TASK_ANSWERS, TASK_MODEL_CONFIG, rng, taskBatch } from './model-fixtures';

export const RESULT_PREFIX = 'RESULT ';

/** Rank r's float32 [2, 3] input: r·10 + i/2 − 1 (exact in float32). */
export function floatInput(rank: number): Tensor {
  return { data: Float32Array.from({ length: 6 }, (_, i) => rank * 10 + i / 2 - 1), shape: [2, 3] };
}

/** Rank r's int32 [4] input: ±(r+1)(i+1). */
export function intInput(rank: number): Tensor {
  return {
    data: Int32Array.from({ length: 4 }, (_, i) => (rank + 1) * (i + 1) * (i % 2 ? -1 : 1)),
    shape: [4],
  };
}

/** Rank r's int64 [3] input: r·10¹² + i (beyond int32 and float32). */
export function longInput(rank: number): Tensor {
  return {
    data: BigInt64Array.from({ length: 3 }, (_, i) => BigInt(rank) * 1_000_000_000_000n + BigInt(i)),
    shape: [3],
  };
}

/** The model configuration of the training tests (the quadrant task of tests/42). */
export const TRAIN_CONFIG = TASK_MODEL_CONFIG;

export interface TrainVariant {
  reduction: 'mean' | 'sum';
  accumulate: number;
}

export const TRAIN_VARIANTS: TrainVariant[] = [
  { reduction: 'mean', accumulate: 1 },
  { reduction: 'mean', accumulate: 2 },
  { reduction: 'sum', accumulate: 1 },
  { reduction: 'sum', accumulate: 2 },
];

export const TRAIN_STEPS = 4;
export const ROWS_PER_RANK = 8;

export const TRAIN_OPTIMIZER = {
  type: 'adamw' as const,
  lr: 5e-3,
  weightDecay: 0.01,
  maxGradNorm: 0.5, // small enough to clip: the norm must be the group's
};

/**
 * The global batch of a step: the quadrant task, some labels ignored (unevenly over the halves, so the
 * 'mean' normaliser must be the group's), a dense teacher for the 'sum' variants.
 */
export function globalBatch(step: number, rows: number, reduction: 'mean' | 'sum') {
  const batch = taskBatch(rows, 500 + step);
  const labels = Int32Array.from(batch.labels);
  const next = rng(900 + step);
  for (let r = 0; r < rows; r++) if (r < rows / 2 ? next() < 0.4 : next() < 0.1) labels[r] = -100;
  const objective =
    reduction === 'mean'
      ? { labels }
      : {
          labels,
          teacher: Float32Array.from({ length: rows * TASK_ANSWERS.length }, () => (next() - 0.5) * 4),
          ceWeight: 0.5,
          kdWeight: 0.5,
          temperature: 2,
          reduction: 'sum' as const,
        };
  return { images: batch.images, tokens: batch.tokens, objective };
}

/** Rows [begin, end) of a global batch (tensors and every per-row objective array). */
export function shard(batch: ReturnType<typeof globalBatch>, begin: number, end: number) {
  const rows = (tensor: Tensor): Tensor => {
    const per = tensor.data.length / tensor.shape[0];
    return {
      data: tensor.data.subarray(begin * per, end * per) as Tensor['data'],
      shape: [end - begin, ...tensor.shape.slice(1)],
    };
  };
  const objective: Record<string, unknown> = { ...batch.objective };
  objective.labels = batch.objective.labels.subarray(begin, end);
  const teacher = (batch.objective as { teacher?: Float32Array }).teacher;
  if (teacher) {
    const per = teacher.length / batch.objective.labels.length;
    objective.teacher = teacher.subarray(begin * per, end * per);
  }
  return { images: rows(batch.images), tokens: rows(batch.tokens), objective };
}

/** The compiled worker script the tests spawn. */
export const WORKER_SCRIPT = path.join(__dirname, 'distributed-worker.js');

export interface SpawnedRank {
  child: ChildProcess;
  /** Resolves with the rank's RESULT json, or rejects with its stderr when it exits without one. */
  result: Promise<unknown>;
  /** Resolves when the rank printed `line` on stdout. */
  printed(line: string): Promise<void>;
  stderr(): string;
}

/** Spawns one rank of `scenario` with torchrun's variables. */
export function spawnRank(
  scenario: string,
  rank: number,
  worldSize: number,
  port: number,
  settings: Record<string, unknown> = {},
): SpawnedRank {
  const child = spawn(process.execPath, [WORKER_SCRIPT, scenario, JSON.stringify(settings)], {
    env: {
      ...process.env,
      RANK: String(rank),
      WORLD_SIZE: String(worldSize),
      LOCAL_RANK: String(rank),
      MASTER_ADDR: '127.0.0.1',
      MASTER_PORT: String(port),
      OMP_NUM_THREADS: '1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const waiters: { line: string; resolve: () => void }[] = [];
  child.stdout?.setEncoding('utf8');
  child.stderr?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    stdout += chunk;
    for (const waiter of [...waiters]) {
      if (stdout.split('\n').includes(waiter.line)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  });
  child.stderr?.on('data', (chunk: string) => {
    stderr += chunk;
  });
  const result = new Promise<unknown>((resolve, reject) => {
    child.on('close', (code, signal) => {
      const line = stdout.split('\n').find((l) => l.startsWith(RESULT_PREFIX));
      if (line) resolve(JSON.parse(line.slice(RESULT_PREFIX.length)));
      else reject(new Error(`rank ${rank} exited (${code ?? signal}) without a result:\n${stderr}`));
    });
  });
  result.catch(() => undefined);
  return {
    child,
    result,
    printed: (line) =>
      stdout.split('\n').includes(line)
        ? Promise.resolve()
        : new Promise((resolve) => waiters.push({ line, resolve })),
    stderr: () => stderr,
  };
}
