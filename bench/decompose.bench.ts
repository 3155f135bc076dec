// Times program decomposition over the public corpus repeated to 100,000 programs, each trial in a fresh process.
//
//   node dist/bench/decompose.bench.js [--mode visprog|viper|corpus|all] [--programs N] [--trials N] [--json] [--check]
//
// Target (issue 3): at least 50,000 VisProg programs per second, parse and graph, one thread.

import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { type Framework, decomposeProgram } from '../lib/program';
import { loadCorpus } from '../tests/helpers/corpus';

type Mode = 'visprog' | 'viper' | 'corpus';

interface TrialResult {
  mode: Mode;
  programs: number;
  steps: number;
  seconds: number;
  programsPerSecond: number;
}

const VISPROG_TARGET = 50_000;

function option(argv: string[], name: string): string | undefined {
  const index = argv.indexOf(name);
  return index >= 0 ? argv[index + 1] : undefined;
}

/** One timed trial: the corpus programs of `mode`, cycled until `count` programs have been decomposed. */
function trial(mode: Mode, count: number): TrialResult {
  const records = loadCorpus().filter((record) => mode === 'corpus' || record.framework === mode);
  const programs = records.map((record) => ({
    source: record.program,
    framework: record.framework as Framework,
  }));
  // Warm-up: let the JIT see every program a few times before the clock starts.
  for (let round = 0; round < 20; round++)
    for (const program of programs) decomposeProgram(program.source, program);
  let steps = 0;
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    const program = programs[i % programs.length];
    steps += decomposeProgram(program.source, { framework: program.framework }).steps.length;
  }
  const seconds = (performance.now() - started) / 1000;
  return { mode, programs: count, steps, seconds, programsPerSecond: count / seconds };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

function main(argv: string[]): number {
  const programs = Number(option(argv, '--programs') ?? 100_000);
  if (argv.includes('--trial')) {
    const mode = option(argv, '--trial') as Mode;
    process.stdout.write(`${JSON.stringify(trial(mode, programs))}\n`);
    return 0;
  }
  const trials = Number(option(argv, '--trials') ?? 5);
  const modeOption = option(argv, '--mode') ?? 'all';
  const modes: Mode[] = modeOption === 'all' ? ['visprog', 'viper', 'corpus'] : [modeOption as Mode];
  if (
    !modes.every((mode) => ['visprog', 'viper', 'corpus'].includes(mode)) ||
    !(programs > 0) ||
    !(trials > 0)
  ) {
    process.stderr.write(
      'usage: decompose.bench.js [--mode visprog|viper|corpus|all] [--programs N] [--trials N] [--json] [--check]\n',
    );
    return 2;
  }
  const summaries: Array<{ mode: Mode; programs: number; trials: number[]; median: number }> = [];
  for (const mode of modes) {
    const rates: number[] = [];
    for (let i = 0; i < trials; i++) {
      const child = spawnSync(
        process.execPath,
        [__filename, '--trial', mode, '--programs', String(programs)],
        {
          encoding: 'utf8',
        },
      );
      if (child.status !== 0) {
        process.stderr.write(child.stderr);
        return 1;
      }
      rates.push((JSON.parse(child.stdout) as TrialResult).programsPerSecond);
    }
    const summary = { mode, programs, trials: rates, median: median(rates) };
    summaries.push(summary);
    if (!argv.includes('--json')) {
      const all = rates.map((rate) => Math.round(rate).toLocaleString('en-US')).join(', ');
      process.stdout.write(
        `decompose ${mode.padEnd(7)} ${programs.toLocaleString('en-US')} programs: median ${Math.round(summary.median).toLocaleString('en-US')} programs/s over ${trials} fresh-process trials (${all})\n`,
      );
    }
  }
  if (argv.includes('--json'))
    process.stdout.write(`${JSON.stringify({ node: process.version, summaries }, null, 2)}\n`);
  const visprog = summaries.find((summary) => summary.mode === 'visprog');
  if (visprog) {
    const met = visprog.median >= VISPROG_TARGET;
    process.stderr.write(
      `VisProg target ${VISPROG_TARGET.toLocaleString('en-US')} programs/s: ${met ? 'met' : 'NOT met'} (median ${Math.round(visprog.median).toLocaleString('en-US')})\n`,
    );
    if (!met && argv.includes('--check')) return 1;
  }
  return 0;
}

process.exitCode = main(process.argv.slice(2));
