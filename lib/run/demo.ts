// `sdvp demo`: SDVP end to end on the digit benchmark — build it, train the teachers, pretrain the generalist
// student, distil it stepwise into digits-qa and digits-pairs, run the two ablations (no anti-forgetting; all
// modules at once), evaluate every system on the three tasks, and write the report. Every artifact is cached
// in the output folder, so a second run only redoes what is missing.

import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Dataset, openDataset } from '../data/dataset';
import { generateDigitBenchmark } from '../data/generate-digits';
import { TARGET_TASKS, TASK_NAMES } from '../data/task-templates';
import { loadModel } from '../models/load-model';
import { defaultThreads, setThreads } from '../models/torch-runtime';
import type { ModuleImplementation } from '../program/interpreter';
import type { Framework } from '../program/step-graph';
import { folderImageSource } from '../teachers/image-source';
import { loadTeacherRegistry, openTeachers } from '../teachers/registry';
import { teacherModules } from '../teachers/teacher-modules';
import { type TeacherMetrics, trainBuiltinTeachers } from '../teachers/train-builtin-teachers';
import { type RunConfigInput, parseRunConfig } from './config';
import { type DistillProgress, type RunState, distill } from './distill';
import { type Evaluation, evaluateSystem } from './evaluate';
import { type PretrainResult, pretrainStudent } from './pretrain-student';
import { type DemoReport, type RunName, type SystemRow, writeDemoReport } from './report';
import { Student } from './student';

export interface DemoOptions {
  seed?: number;
  out?: string;
  /** Scenes of the benchmark. Default 3000. */
  scenes?: number;
  /** Scales every training length (1 = the documented defaults; tests use less). */
  scale?: number;
  signal?: AbortSignal;
  /** Phase changes and progress (the CLI draws bars). */
  onPhase?: (phase: string) => void;
  onProgress?: (done: number, total: number, note?: string) => void;
  log?: (line: string) => void;
}

interface Cached<T> {
  key: string;
  value: T;
}

function readCache<T>(file: string, key: string): T | undefined {
  if (!existsSync(file)) return undefined;
  try {
    const cached = JSON.parse(readFileSync(file, 'utf8')) as Cached<T>;
    return cached.key === key ? cached.value : undefined;
  } catch {
    return undefined;
  }
}

function writeCache<T>(file: string, key: string, value: T): void {
  writeFileSync(file, `${JSON.stringify({ key, value } satisfies Cached<T>, null, 2)}\n`);
}

/** The run configs of the four distillation systems (paths relative to the run's config). */
export function demoRunConfigs(seed: number, scale: number): Record<RunName, RunConfigInput> {
  // One stage is 300 steps of 64 rows (its rows' passes capped there); the joint run has both stages' steps.
  const stageSteps = 300;
  const common: RunConfigInput = {
    data: '../../data',
    student: '../../student/untuned.pt',
    teachers: '../../teachers/teachers.json',
    run: '.',
    seed,
    epochs: 20,
    maxStepsPerStage: Math.max(5, Math.round(stageSteps * scale)),
    batchSize: 64,
    optimizer: { lr: 3e-3, weightDecay: 0.01, warmupSteps: 20, minFactor: 0.1, maxGradNorm: 1 },
    checkpointEvery: 100,
  };
  return {
    sdvp: common,
    'sdvp-no-af': { ...common, antiForgetting: { enabled: false } },
    'sdvp-joint': {
      ...common,
      stages: 'joint',
      maxStepsPerStage: Math.max(5, Math.round(2 * stageSteps * scale)),
    },
    'sdvp-viper': { ...common, framework: 'viper' },
  };
}

export async function runDemo(options: DemoOptions = {}): Promise<DemoReport> {
  const started = performance.now();
  const seed = options.seed ?? 0;
  const scale = options.scale ?? 1;
  const out = resolve(options.out ?? 'sdvp-demo');
  const scenes = options.scenes ?? 3000;
  const say = options.log ?? (() => {});
  const phase = options.onPhase ?? (() => {});
  const progress = options.onProgress ?? (() => {});
  mkdirSync(out, { recursive: true });
  setThreads(defaultThreads());
  const timings: Record<string, number> = {};
  const timed = async <T>(name: string, body: () => Promise<T>): Promise<T> => {
    const t = performance.now();
    const value = await body();
    timings[name] = (performance.now() - t) / 1000;
    return value;
  };

  // 1. The benchmark.
  const dataDir = join(out, 'data');
  await timed('data', async () => {
    const existing = existsSync(join(dataDir, 'dataset.json'))
      ? openDataset(dataDir).manifest.generator
      : undefined;
    if (existing && existing.seed === seed && existing.scenes === scenes)
      return say(`benchmark: cached in ${dataDir}`);
    phase('building the digit benchmark');
    await generateDigitBenchmark({
      out: dataDir,
      scenes,
      seed,
      force: true,
      onProgress: (event) => progress(event.done, event.total, event.phase),
    });
  });
  const dataset = openDataset(dataDir);
  const dataKey = readFileSync(join(dataDir, 'dataset.json'), 'utf8');

  // 2. The teachers.
  const teacherDir = join(out, 'teachers');
  const teacherKey = JSON.stringify({ dataKey, seed, scale });
  const teachers = await timed('teachers', async () => {
    const cached = readCache<TeacherMetrics>(join(out, 'teachers.cache.json'), teacherKey);
    if (cached && existsSync(join(teacherDir, 'teachers.json'))) {
      say('teachers: cached');
      return cached;
    }
    phase('training the teachers');
    const metrics = await trainBuiltinTeachers({
      data: dataDir,
      out: teacherDir,
      seed,
      classifierSteps: Math.max(10, Math.round(2400 * scale)),
      detectorSteps: Math.max(10, Math.round(1500 * scale)),
      signal: options.signal,
      onProgress: ({ teacher, step, steps, loss }) =>
        progress(step, steps, `${teacher} loss ${loss.toFixed(3)}`),
    });
    writeCache(join(out, 'teachers.cache.json'), teacherKey, metrics);
    return metrics;
  });

  // 3. The generalist student.
  const studentFile = join(out, 'student', 'untuned.pt');
  const studentKey = JSON.stringify({ dataKey, seed, scale });
  const pretrain = await timed('student', async () => {
    const cached = readCache<PretrainResult>(join(out, 'student.cache.json'), studentKey);
    if (cached && existsSync(studentFile)) {
      say('student: cached');
      return cached;
    }
    phase('pretraining the generalist student');
    mkdirSync(join(out, 'student'), { recursive: true });
    const result = await pretrainStudent({
      data: dataDir,
      out: studentFile,
      seed,
      steps: Math.max(10, Math.round(1200 * scale)),
      signal: options.signal,
      onProgress: ({ step, steps, loss }) => progress(step, steps, `loss ${loss.toFixed(3)}`),
    });
    writeCache(join(out, 'student.cache.json'), studentKey, result);
    return result;
  });

  // 4. The systems without distillation, in both frameworks.
  const evalKey = JSON.stringify({ dataKey, teacherKey, studentKey });
  type Modules = Record<string, ModuleImplementation>;
  const evaluate = async (
    name: string,
    framework: Framework,
    open: () => Promise<{ modules: Modules; close: () => Promise<void> }>,
  ) => {
    const file = join(out, `eval-${name}-${framework}.cache.json`);
    const cached = readCache<Evaluation>(file, evalKey);
    if (cached) return cached;
    phase(`evaluating: ${name} (${framework})`);
    const system = await open();
    try {
      const evaluation = await evaluateSystem(dataset, system.modules, {
        framework,
        tasks: TASK_NAMES,
        split: 'test',
        submoduleTasks: TARGET_TASKS,
        signal: options.signal,
        onProgress: (done, total) => progress(done, total),
      });
      writeCache(file, evalKey, evaluation);
      return evaluation;
    } finally {
      await system.close();
    }
  };
  const untunedModules = async () => {
    const model = await loadModel(studentFile);
    const student = await Student.of(model);
    return { modules: student.modules(), close: async () => model.dispose() };
  };
  const teacherModulesOf = async () => {
    const opened = await openTeachers(loadTeacherRegistry(join(teacherDir, 'teachers.json')));
    return {
      modules: teacherModules(opened, folderImageSource(dataDir)),
      close: async () => {
        await Promise.all(opened.map((teacher) => teacher.close()));
      },
    };
  };
  const rows: SystemRow[] = [];
  for (const framework of ['visprog', 'viper'] as const) {
    rows.push({
      system: 'untuned',
      framework,
      evaluation: await timed(`evaluate-untuned-${framework}`, () =>
        evaluate('untuned', framework, untunedModules),
      ),
    });
    rows.push({
      system: 'teachers',
      framework,
      evaluation: await timed(`evaluate-teachers-${framework}`, () =>
        evaluate('teachers', framework, teacherModulesOf),
      ),
    });
  }

  // 5. The distillation runs.
  const runs: Partial<Record<RunName, RunState>> = {};
  const configs = demoRunConfigs(seed, scale);
  for (const [name, input] of Object.entries(configs) as Array<[RunName, RunConfigInput]>) {
    const folder = join(out, 'runs', name);
    mkdirSync(folder, { recursive: true });
    const configFile = join(folder, 'config.input.json');
    const runFile = join(folder, 'run.json');
    const runKey = JSON.stringify({ input, dataKey, teacherKey, studentKey });
    const cached = readCache<RunState>(join(folder, 'demo.cache.json'), runKey);
    if (cached?.completed) {
      runs[name] = cached;
      say(`${name}: cached`);
      continue;
    }
    const config = parseRunConfig(input, folder, configFile);
    const resume = existsSync(runFile) && isSameRun(runFile, config);
    if (existsSync(runFile) && !resume) {
      // A finished or different run from an earlier demo: its results are stale, start it again.
      rmSync(folder, { recursive: true, force: true });
      mkdirSync(folder, { recursive: true });
    }
    writeFileSync(configFile, `${JSON.stringify(input, null, 2)}\n`);
    phase(`distilling: ${name}`);
    const result = await timed(`run-${name}`, () =>
      distill(config, {
        resume,
        signal: options.signal,
        log: (line) => say(`[${name}] ${line}`),
        onProgress: (event: DistillProgress) =>
          progress(
            event.done,
            event.total,
            `${event.phase}${event.stage ? ` ${event.stage}` : ''}${event.loss !== undefined ? ` loss ${event.loss.toFixed(3)}` : ''}`,
          ),
      }),
    );
    writeCache(join(folder, 'demo.cache.json'), runKey, result.state);
    runs[name] = result.state;
  }
  for (const name of ['sdvp', 'sdvp-no-af', 'sdvp-joint'] as const)
    rows.push({ system: name, framework: 'visprog', evaluation: runs[name]!.final!, run: name });
  rows.push({
    system: 'sdvp',
    framework: 'viper',
    evaluation: runs['sdvp-viper']!.final!,
    run: 'sdvp-viper',
  });
  rows.sort((a, b) => (a.framework === b.framework ? 0 : a.framework === 'visprog' ? -1 : 1));

  const report: DemoReport = {
    seed,
    seconds: (performance.now() - started) / 1000,
    timings,
    out,
    teachers,
    pretrain,
    rows,
    runs: runs as Record<RunName, RunState>,
    dataset: datasetSummary(dataset),
  };
  phase('writing the report');
  await writeDemoReport(report);
  return report;
}

/** Whether an interrupted run folder was started by this config (so the demo resumes it instead of failing). */
function isSameRun(runFile: string, config: ReturnType<typeof parseRunConfig>): boolean {
  try {
    const state = JSON.parse(readFileSync(runFile, 'utf8')) as RunState;
    const stored = JSON.parse(readFileSync(join(config.run!, 'config.json'), 'utf8'));
    return JSON.stringify(stored) === JSON.stringify(config) && !state.completed;
  } catch {
    return false;
  }
}

function datasetSummary(dataset: Dataset): Record<string, Record<string, number>> {
  return dataset.manifest.counts ?? {};
}
