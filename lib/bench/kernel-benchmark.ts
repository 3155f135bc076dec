// The kernel benchmark behind `sdvp bench kernels` and `npm run bench`: the fused objective against
// PyTorch eager, a plain TypeScript loop, and this machine's memory floor, all in one run.

import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { distillLoss } from '../kernels/distill-loss';
import { loadNative, packageRoot } from '../native/load-native';
import { findPythonTorch } from './python-torch';
import { tsLoopDistillLoss } from './ts-loop-distill-loss';

export interface KernelBenchmarkOptions {
  /** [rows, vocab] pairs. Default: (256, 32000), (1024, 32000), (512, 128256). */
  sizes?: Array<[number, number]>;
  /** Timed runs of the sdvp kernel and the memory probe per size (median reported). Default 9. */
  runs?: number;
  /** Timed runs of the slow baselines (PyTorch, TypeScript loop). Default 3. */
  baselineRuns?: number;
  /** CPU threads for sdvp, the memory probe and PyTorch. Default: every core. */
  threads?: number;
  torch?: boolean;
  tsLoop?: boolean;
  /** Progress lines go here (default: nowhere). */
  log?: (line: string) => void;
}

export interface KernelBenchmarkRow {
  rows: number;
  vocab: number;
  /** Bytes the call must move: read S and T, write dS (fp32). */
  bytes: number;
  sdvpMs: number;
  sdvpTimesMs: number[];
  floorMs: number;
  torchMs: number | null;
  tsLoopMs: number | null;
  /** sdvp time / memory-floor time. */
  floorRatio: number;
  speedupVsTorch: number | null;
  speedupVsTsLoop: number | null;
  achievedGBs: number;
  floorGBs: number;
  loss: number;
}

export interface KernelBenchmarkReport {
  objective: string;
  threads: number;
  simdTarget: string;
  torchVersion: string | null;
  torchNote: string | null;
  date: string;
  results: KernelBenchmarkRow[];
}

const TEMPERATURE = 2;

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Fills with N(0, 2²) samples from a seeded xorshift generator (Box-Muller). */
function fillNormal(array: Float32Array, seed: number): void {
  let state = seed >>> 0 || 1;
  const uniform = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return ((state >>> 0) + 0.5) / 4294967296;
  };
  for (let i = 0; i < array.length; i += 2) {
    const radius = Math.sqrt(-2 * Math.log(uniform())) * 2;
    const angle = 2 * Math.PI * uniform();
    array[i] = radius * Math.cos(angle);
    if (i + 1 < array.length) array[i + 1] = radius * Math.sin(angle);
  }
}

function timeMs(fn: () => void): number {
  const start = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

function runTorch(python: string, rows: number, vocab: number, runs: number, threads: number): number[] {
  const script = path.join(packageRoot(), 'bench', 'torch_distill_loss.py');
  const child = spawnSync(
    python,
    [script, String(rows), String(vocab), String(runs), String(threads), String(TEMPERATURE)],
    {
      encoding: 'utf8',
      timeout: 600_000,
      maxBuffer: 1 << 20,
    },
  );
  if (child.status !== 0)
    throw new Error(`PyTorch baseline failed: ${child.stderr.trim().split('\n').pop()}`);
  return (JSON.parse(child.stdout) as { times_ms: number[] }).times_ms;
}

export function runKernelBenchmark(options: KernelBenchmarkOptions = {}): KernelBenchmarkReport {
  const native = loadNative();
  const caps = native.capabilities();
  const sizes = options.sizes ?? [
    [256, 32000],
    [1024, 32000],
    [512, 128256],
  ];
  const runs = options.runs ?? 9;
  const baselineRuns = options.baselineRuns ?? 3;
  const threads = options.threads ?? caps.cpuThreads;
  const log = options.log ?? (() => {});
  const torch = options.torch === false ? null : findPythonTorch();
  const torchNote = options.torch === false ? 'disabled' : torch ? null : findPythonTorch.hint;
  if (torchNote && options.torch !== false) log(torchNote);

  const results: KernelBenchmarkRow[] = [];
  for (const [rows, vocab] of sizes) {
    const elements = rows * vocab;
    log(`(${rows}, ${vocab}): preparing ${((3 * elements * 4) / 1e6).toFixed(0)} MB of inputs and outputs`);
    const student = new Float32Array(elements);
    const teacher = new Float32Array(elements);
    const grad = new Float32Array(elements);
    fillNormal(student, 12345 + rows);
    fillNormal(teacher, 54321 + vocab);
    const labels = new Int32Array(rows);
    for (let r = 0; r < rows; r++) labels[r] = (r * 7919) % vocab;
    const spec = {
      student,
      rows,
      vocab,
      teacher,
      labels,
      ceWeight: 0.5,
      kdWeight: 0.5,
      temperature: TEMPERATURE,
      reduction: 'batchmean' as const,
      grad,
      threads,
    };

    // Warm-up once each, then alternate kernel and probe so both see the same machine state.
    let loss = distillLoss(spec).loss;
    native.memoryFloorProbe(student, teacher, grad, threads);
    const sdvpTimes: number[] = [];
    const floorTimes: number[] = [];
    for (let i = 0; i < runs; i++) {
      sdvpTimes.push(
        timeMs(() => {
          loss = distillLoss(spec).loss;
        }),
      );
      floorTimes.push(timeMs(() => native.memoryFloorProbe(student, teacher, grad, threads)));
    }
    const sdvpMs = median(sdvpTimes);
    const floorMs = median(floorTimes);
    log(`  sdvp ${sdvpMs.toFixed(2)} ms, memory floor ${floorMs.toFixed(2)} ms`);

    let tsLoopMs: number | null = null;
    if (options.tsLoop !== false) {
      const times: number[] = [];
      for (let i = 0; i < baselineRuns; i++) {
        times.push(timeMs(() => tsLoopDistillLoss(student, teacher, labels, rows, vocab, TEMPERATURE, grad)));
      }
      tsLoopMs = median(times);
      log(`  TypeScript loop ${tsLoopMs.toFixed(1)} ms`);
    }
    let torchMs: number | null = null;
    if (torch) {
      torchMs = median(runTorch(torch.python, rows, vocab, baselineRuns, threads));
      log(`  PyTorch eager ${torchMs.toFixed(1)} ms`);
    }
    const bytes = 3 * elements * 4;
    results.push({
      rows,
      vocab,
      bytes,
      sdvpMs,
      sdvpTimesMs: sdvpTimes,
      floorMs,
      torchMs,
      tsLoopMs,
      floorRatio: sdvpMs / floorMs,
      speedupVsTorch: torchMs === null ? null : torchMs / sdvpMs,
      speedupVsTsLoop: tsLoopMs === null ? null : tsLoopMs / sdvpMs,
      achievedGBs: bytes / (sdvpMs * 1e6),
      floorGBs: bytes / (floorMs * 1e6),
      loss,
    });
  }
  return {
    objective: `0.5·CE + 0.5·τ²·KL(P_T‖P_S), τ = ${TEMPERATURE}, batchmean, fp32, forward + gradient`,
    threads,
    simdTarget: caps.simdTarget,
    torchVersion: torch?.torchVersion ?? null,
    torchNote,
    date: new Date().toISOString(),
    results,
  };
}

/** A fixed-width table of a report, one row per size. */
export function formatKernelBenchmark(report: KernelBenchmarkReport): string {
  const header = [
    'rows × vocab',
    'sdvp ms',
    'floor ms',
    '×floor',
    'GB/s',
    'torch ms',
    '×torch',
    'TS loop ms',
    '×TS',
  ];
  const lines = report.results.map((row) => [
    `${row.rows} × ${row.vocab}`,
    row.sdvpMs.toFixed(2),
    row.floorMs.toFixed(2),
    row.floorRatio.toFixed(2),
    row.achievedGBs.toFixed(1),
    row.torchMs === null ? '—' : row.torchMs.toFixed(1),
    row.speedupVsTorch === null ? '—' : `${row.speedupVsTorch.toFixed(1)}×`,
    row.tsLoopMs === null ? '—' : row.tsLoopMs.toFixed(0),
    row.speedupVsTsLoop === null ? '—' : `${row.speedupVsTsLoop.toFixed(0)}×`,
  ]);
  const widths = header.map((title, i) => Math.max(title.length, ...lines.map((line) => line[i].length)));
  const format = (cells: string[]) => cells.map((cell, i) => cell.padStart(widths[i])).join('  ');
  const out = [
    `${report.objective}; ${report.threads} threads, SIMD ${report.simdTarget}, PyTorch ${report.torchVersion ?? 'not run'}; medians`,
    format(header),
    ...lines.map(format),
  ];
  if (report.torchNote && report.torchNote !== 'disabled') out.push(report.torchNote);
  return out.join('\n');
}
