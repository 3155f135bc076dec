// The distillation run end to end on a small benchmark: a stage raises its module's accuracy, a killed run
// resumes to bit-for-bit the result an uninterrupted one reaches, SIGINT checkpoints cleanly, the report is
// written, and bad configs and resumes are refused.

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { loadModel } from '../lib/models/load-model';
import { type RunConfigInput, loadRunConfig, parseRunConfig } from '../lib/run/config';
import { distill } from '../lib/run/distill';
import { findRepoRoot } from './helpers/corpus';
import { torchSkipReason } from './helpers/model-fixtures';
import { type RunFixture, buildRunFixture, writeRunConfig } from './helpers/run-fixture';
import { waitFor } from './helpers/wait-for';

const skip = torchSkipReason();
const root = mkdtempSync(path.join(tmpdir(), 'sdvp-run-'));
test.after.always(() => rmSync(root, { recursive: true, force: true }));
const cli = path.join(findRepoRoot(), 'dist', 'lib', 'cli', 'main.js');
let fixture: Promise<RunFixture> | undefined;
const prepared = () => {
  fixture ??= buildRunFixture(path.join(root, 'fixture'));
  return fixture;
};

function configFile(name: string, extra: Partial<RunConfigInput>, base: RunFixture): string {
  return writeRunConfig(path.join(root, name), base, { maxStepsPerStage: 14, batchSize: 32, ...extra });
}

/** Answer and grounding outputs of a checkpoint on fixed inputs, for bit-for-bit comparisons. */
async function outputsOf(file: string): Promise<Float32Array[]> {
  const model = await loadModel(file);
  try {
    const rows = 4;
    const images = new Float32Array(rows * 3 * 64 * 64).map((_, i) => ((i * 7919) % 255) / 255);
    const tokens = new Int32Array(rows * 10).map((_, i) => (i % 5) + 2);
    const inputs = [
      { data: images, shape: [rows, 3, 64, 64] },
      { data: tokens, shape: [rows, 10] },
    ];
    return [
      (await model.callTensor('answer', inputs)).data as Float32Array,
      (await model.callTensor('ground', inputs)).data as Float32Array,
    ];
  } finally {
    model.dispose();
  }
}

function exitOf(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))),
  );
}

test.serial('a small stepwise run raises the distilled module and writes its report', async (t) => {
  if (skip) return t.pass(skip);
  const base = await prepared();
  const config = loadRunConfig(
    configFile('improve', { stages: ['VQA'], maxStepsPerStage: 60, epochs: 20 }, base),
  );
  const result = await distill(config);
  const [stage] = result.state.reports;
  t.is(stage.name, 'VQA');
  t.true(stage.items.teacherLabelled > 0, JSON.stringify(stage.items));
  t.true(stage.after.VQA >= stage.before.VQA + 0.1, `VQA ${stage.before.VQA} → ${stage.after.VQA}`);
  const report = JSON.parse(readFileSync(path.join(config.run!, 'report.json'), 'utf8'));
  t.is(report.stages.length, 1);
  t.true(readFileSync(path.join(config.run!, 'report.md'), 'utf8').includes('| 1: VQA |'));
  for (const chart of ['loss.png', 'submodules.png'])
    t.is(readFileSync(path.join(config.run!, chart)).subarray(1, 4).toString(), 'PNG');
  const metrics = readFileSync(path.join(config.run!, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));
  t.true(metrics.length >= 3);
  t.true(['hardCe', 'teacherKl', 'antiForgettingKl', 'agreement'].every((key) => key in metrics[0]));
});

test.serial(
  'a run killed mid-stage and resumed ends bit for bit where an uninterrupted run ends',
  async (t) => {
    if (skip) return t.pass(skip);
    const base = await prepared();
    const whole = loadRunConfig(configFile('whole', {}, base));
    const uninterrupted = await distill(whole);
    t.deepEqual(
      uninterrupted.state.stages.map((stage) => stage.name),
      ['LOC', 'VQA'],
    );

    const killedFile = configFile('killed', {}, base);
    const killedRun = path.join(root, 'killed', 'run');
    const child = spawn(process.execPath, [cli, 'distill', '--config', killedFile], { stdio: 'ignore' });
    const state = () => {
      try {
        return JSON.parse(readFileSync(path.join(killedRun, 'run.json'), 'utf8'));
      } catch {
        return undefined;
      }
    };
    // Kill it once the first mid-stage checkpoint is on disk.
    await waitFor(() => (state()?.checkpoint ?? '').includes('-step-'), child, 240_000);
    child.kill('SIGKILL');
    await exitOf(child);
    t.false(state().completed);
    const resumed = spawn(process.execPath, [cli, 'distill', '--resume', killedRun], { stdio: 'ignore' });
    t.is(await exitOf(resumed), 0);
    t.true(state().completed);
    const [a, b] = [
      await outputsOf(uninterrupted.checkpoint),
      await outputsOf(path.join(killedRun, 'ckpt', 'final.pt')),
    ];
    t.deepEqual(b[0], a[0]);
    t.deepEqual(b[1], a[1]);
  },
);

test.serial('Ctrl-C checkpoints and exits cleanly; --resume finishes the run', async (t) => {
  if (skip) return t.pass(skip);
  const base = await prepared();
  const file = configFile('interrupted', {}, base);
  const runDir = path.join(root, 'interrupted', 'run');
  const child = spawn(process.execPath, [cli, 'distill', '--config', file], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  await waitFor(() => existsSync(path.join(runDir, 'stages', '1-LOC', 'items.json')), child, 240_000);
  child.kill('SIGINT');
  t.is(await exitOf(child), 130);
  t.regex(stderr, /checkpointed/);
  const state = JSON.parse(readFileSync(path.join(runDir, 'run.json'), 'utf8'));
  t.false(state.completed);
  t.true(existsSync(path.join(runDir, state.checkpoint ?? 'ckpt/stage-1-start.pt')));
  const resumed = spawn(process.execPath, [cli, 'distill', '--resume', runDir], { stdio: 'ignore' });
  t.is(await exitOf(resumed), 0);
});

test.serial('bad configs and resumes are refused with the field named', async (t) => {
  if (skip) return t.pass(skip);
  const base = await prepared();
  const unknownTask = loadRunConfig(configFile('bad-task', { tasks: ['no-such-task'] }, base));
  await t.throwsAsync(distill(unknownTask), { code: 'ERR_SDVP_CONFIG', message: /no-such-task/ });
  const done = loadRunConfig(path.join(root, 'whole', 'config.json'));
  await t.throwsAsync(distill(done), { code: 'ERR_SDVP_CONFIG', message: /already holds a run/ });
  await t.throwsAsync(distill({ ...done, batchSize: 16 }, { resume: true }), {
    code: 'ERR_SDVP_CONFIG',
    message: /batchSize/,
  });
  await t.throwsAsync(
    distill(
      parseRunConfig(
        { data: base.data, student: base.student, teachers: base.teachers, run: path.join(root, 'fresh') },
        root,
      ),
      { resume: true },
    ),
    {
      code: 'ERR_SDVP_CONFIG',
      message: /no run to resume/,
    },
  );
  const missingTeacher = loadRunConfig(configFile('bad-teacher', { teacherIds: ['nobody'] }, base));
  await t.throwsAsync(distill(missingTeacher), { code: 'ERR_SDVP_CONFIG', message: /nobody/ });
});
