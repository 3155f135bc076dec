// Times the ViperGPT sandbox on the corpus: programs run per second with stub modules, beside the parse rate, on
// one thread, each trial in a fresh process.
//
//   node dist/bench/viper-run.bench.js [--mode run|run-async|compile|parse|all] [--programs N] [--trials N] [--json] [--check]
//
// Each trial times its modes in interleaved rounds (so the ratio to the parse rate is steady on a shared machine)
// and reports wall-clock and per-CPU-second rates.
//
// run: compiled once, then run with synchronous stub modules (the interpreter's own speed); run-async: the same with
// stub modules that answer through Promises, as model-backed modules do; compile: @lezer/python parse, step graph
// and compilation; parse: parseViperProgram alone (the decomposition rate). Target (issue 10): run >= 20,000/s.

import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import {
  ViperInterpreter,
  type ViperModules,
  compileViperProgram,
  createImage,
  createStubViperModules,
  createVideo,
  parseViperProgram,
} from '../lib/program';
import { loadCorpus } from '../tests/helpers/corpus';

type Mode = 'run' | 'run-async' | 'compile' | 'parse';
const MODES: Mode[] = ['run', 'run-async', 'compile', 'parse'];
const RUN_TARGET = 20_000;

interface TrialResult {
  mode: Mode;
  programs: number;
  seconds: number;
  programsPerSecond: number;
  /** Programs per second of this process's CPU time (user + system): steadier when other work shares the cores. */
  programsPerCpuSecond: number;
  /** Runs that returned a value (the rest stopped at a diagnostic, as in the corpus test). */
  succeeded: number;
}

function option(argv: string[], name: string): string | undefined {
  const index = argv.indexOf(name);
  return index >= 0 ? argv[index + 1] : undefined;
}

/** The stub modules, each answer wrapped in an already-resolved Promise. */
function asyncStubs(): ViperModules {
  const modules: Record<string, unknown> = {};
  for (const [name, implementation] of Object.entries(createStubViperModules())) {
    modules[name] = (...args: unknown[]) =>
      Promise.resolve((implementation as (...a: unknown[]) => unknown)(...args));
  }
  return modules as ViperModules;
}

/**
 * One fresh-process trial. The modes are timed in interleaved rounds, so that whatever else runs on the machine
 * slows them alike and their ratios hold even when the absolute rates swing.
 */
async function trial(modes: Mode[], count: number): Promise<TrialResult[]> {
  const records = loadCorpus().filter((record) => record.framework === 'viper');
  const image = createImage(64, 48, 3, undefined, 'bench');
  const video = createVideo(
    Array.from({ length: 4 }, (_, i) => createImage(32, 24, 3, undefined, `bench#${i}`)),
  );
  const jobs = records.map((record) => ({
    source: record.program,
    inputs: { image, video, possible_answers: ['one', 'two'], query: record.question ?? record.query ?? '' },
  }));
  const interpreters = {
    sync: new ViperInterpreter({ modules: createStubViperModules() }),
    async: new ViperInterpreter({ modules: asyncStubs() }),
  };
  const compiled = {
    sync: jobs.map((job) => interpreters.sync.compile(job.source)),
    async: jobs.map((job) => interpreters.async.compile(job.source)),
  };
  const once = async (mode: Mode, index: number): Promise<boolean> => {
    const i = index % jobs.length;
    switch (mode) {
      case 'parse':
        return parseViperProgram(jobs[i].source).steps.length >= 0;
      case 'compile':
        return compileViperProgram(jobs[i].source).run !== null;
      case 'run':
        return (await interpreters.sync.run(compiled.sync[i], jobs[i].inputs)).ok;
      default:
        return (await interpreters.async.run(compiled.async[i], jobs[i].inputs)).ok;
    }
  };
  // Warm-up: let the JIT see every program a few times in every mode before the clock starts.
  for (const mode of modes) for (let i = 0; i < jobs.length * 20; i++) await once(mode, i);
  const results = modes.map((mode) => ({ mode, programs: 0, seconds: 0, cpuSeconds: 0, succeeded: 0 }));
  const rounds = 10;
  const batch = Math.max(1, Math.ceil(count / rounds));
  for (let round = 0; round < rounds; round++) {
    for (const result of results) {
      const cpu = process.cpuUsage();
      const started = performance.now();
      for (let i = 0; i < batch; i++) if (await once(result.mode, result.programs + i)) result.succeeded++;
      result.seconds += (performance.now() - started) / 1000;
      const used = process.cpuUsage(cpu);
      result.cpuSeconds += (used.user + used.system) / 1e6;
      result.programs += batch;
    }
  }
  return results.map((result) => ({
    mode: result.mode,
    programs: result.programs,
    seconds: result.seconds,
    programsPerSecond: result.programs / result.seconds,
    programsPerCpuSecond: result.programs / result.cpuSeconds,
    succeeded: result.succeeded,
  }));
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

async function main(argv: string[]): Promise<number> {
  const programs = Number(option(argv, '--programs') ?? 50_000);
  const modeOption = option(argv, '--mode') ?? 'all';
  const modes = modeOption === 'all' ? MODES : (modeOption.split(',') as Mode[]);
  if (argv.includes('--trial')) {
    process.stdout.write(`${JSON.stringify(await trial(modes, programs))}\n`);
    return 0;
  }
  const trials = Number(option(argv, '--trials') ?? 5);
  if (!modes.every((mode) => MODES.includes(mode)) || !(programs > 0) || !(trials > 0)) {
    process.stderr.write(
      'usage: viper-run.bench.js [--mode run|run-async|compile|parse|all] [--programs N] [--trials N] [--json] [--check]\n',
    );
    return 2;
  }
  const perTrial: TrialResult[][] = [];
  for (let i = 0; i < trials; i++) {
    const child = spawnSync(
      process.execPath,
      [__filename, '--trial', '--mode', modes.join(','), '--programs', String(programs)],
      {
        encoding: 'utf8',
      },
    );
    if (child.status !== 0) {
      process.stderr.write(child.stderr);
      return 1;
    }
    perTrial.push(JSON.parse(child.stdout) as TrialResult[]);
  }
  const summaries = modes.map((mode, m) => {
    const results = perTrial.map((results) => results[m]);
    const rates = results.map((result) => result.programsPerSecond);
    return {
      mode,
      programs: results[0].programs,
      trials: rates,
      median: median(rates),
      cpuMedian: median(results.map((result) => result.programsPerCpuSecond)),
      succeeded: results[0].succeeded,
    };
  });
  const parse = modes.indexOf('parse');
  const ratios =
    parse < 0
      ? []
      : modes.map((mode, m) => ({
          mode,
          toParse: median(
            perTrial.map((results) => results[m].programsPerSecond / results[parse].programsPerSecond),
          ),
        }));
  if (argv.includes('--json')) {
    process.stdout.write(`${JSON.stringify({ node: process.version, summaries, ratios }, null, 2)}\n`);
  } else {
    for (const summary of summaries) {
      const all = summary.trials.map((rate) => Math.round(rate).toLocaleString('en-US')).join(', ');
      const ok = summary.mode.startsWith('run')
        ? `, ${summary.succeeded.toLocaleString('en-US')} returned a value`
        : '';
      const ratio = ratios.find((entry) => entry.mode === summary.mode && entry.mode !== 'parse');
      process.stdout.write(
        `viper ${summary.mode.padEnd(9)} ${summary.programs.toLocaleString('en-US')} programs: median ${Math.round(summary.median).toLocaleString('en-US')} programs/s over ${trials} fresh-process trials (${all}); ${Math.round(summary.cpuMedian).toLocaleString('en-US')} per CPU-second${ratio ? `; ${ratio.toParse.toFixed(2)}x the parse rate` : ''}${ok}\n`,
      );
    }
  }
  const run = summaries.find((summary) => summary.mode === 'run');
  if (run) {
    const met = run.median >= RUN_TARGET;
    process.stderr.write(
      `run target ${RUN_TARGET.toLocaleString('en-US')} programs/s: ${met ? 'met' : 'NOT met'} (median ${Math.round(run.median).toLocaleString('en-US')})\n`,
    );
    if (!met && argv.includes('--check')) return 1;
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
