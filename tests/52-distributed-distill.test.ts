// The distillation run on two processes (`sdvp distill --nproc-per-node 2`, Gloo over loopback) ends where
// the same run on one process ends — the same stages, training rows, labels and final accuracy, the same
// parameters to float rounding — also from two launchers (--nnodes 2) and when stopped (Ctrl-C) and resumed;
// a killed worker fails the run at once, naming it (on its machine through the launcher, on another one at
// the next collective); a hung (stopped) worker fails the others within --timeout; ranks started with
// different configs, a busy rendezvous port and bad launch options are refused.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { distributedBackends, findFreePort } from '../lib/distributed';
import { loadModel } from '../lib/models/load-model';
import { type RunConfigInput, loadRunConfig } from '../lib/run/config';
import { type DistillResult, type RunState, distill } from '../lib/run/distill';
import type { StageItem } from '../lib/run/stage-items';
import { findRepoRoot } from './helpers/corpus';
import { torchSkipReason } from './helpers/model-fixtures';
import { type RunFixture, buildRunFixture, writeRunConfig } from './helpers/run-fixture';
import { waitFor } from './helpers/wait-for';

const skip = torchSkipReason() ?? (distributedBackends().gloo ? undefined : 'this build has no Gloo backend');
const root = mkdtempSync(path.join(tmpdir(), 'sdvp-ddp-run-'));
test.after.always(() => rmSync(root, { recursive: true, force: true }));
const cli = path.join(findRepoRoot(), 'dist', 'lib', 'cli', 'main.js');

function configFile(name: string, base: RunFixture, extra: Partial<RunConfigInput> = {}): string {
  return writeRunConfig(path.join(root, name), base, { maxStepsPerStage: 8, batchSize: 16, ...extra });
}

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `sdvp distill` as on machine `node` of two (one worker each), meeting at 127.0.0.1:`port`. */
function onMachineOfTwo(file: string, node: number, port: string): string[] {
  return [
    'distill',
    '--config',
    file,
    '--nproc-per-node',
    '1',
    '--nnodes',
    '2',
    '--node-rank',
    String(node),
    '--master-addr',
    '127.0.0.1',
    '--master-port',
    port,
  ];
}

function finished(child: ChildProcess): Promise<Finished> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

function sdvp(args: string[], env: Record<string, string> = {}): Promise<Finished> {
  return finished(
    spawn(process.execPath, [cli, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
}

/**
 * The attention key biases get a gradient that is zero but for rounding (a softmax does not change when the
 * same number is added to all its logits), and AdamW scales that noise up to steps of about lr, with a sign
 * that depends on how the run rounds: those are compared apart.
 */
const ROUNDING_NOISE_ONLY = /k_proj\.bias$/;

/** The largest absolute differences between two checkpoints' parameters and buffers. */
async function largestDifference(
  a: string,
  b: string,
): Promise<{ difference: number; noiseOnly: number; values: number }> {
  const [first, second] = [await loadModel(a), await loadModel(b)];
  try {
    const [x, y] = [await first.state(), await second.state()];
    const out = { difference: 0, noiseOnly: 0, values: 0 };
    for (const [name, tensor] of Object.entries(x)) {
      const other = y[name].data;
      const key = ROUNDING_NOISE_ONLY.test(name) ? 'noiseOnly' : 'difference';
      tensor.data.forEach((value, i) => {
        out[key] = Math.max(out[key], Math.abs(Number(value) - Number(other[i])));
      });
      out.values += tensor.data.length;
    }
    return out;
  } finally {
    first.dispose();
    second.dispose();
  }
}

let single: Promise<{ base: RunFixture; one: DistillResult }> | undefined;
/** The fixture and the run on one process, shared by the tests. */
const onOneProcess = () => {
  single ??= (async () => {
    const base = await buildRunFixture(path.join(root, 'fixture'));
    return { base, one: await distill(loadRunConfig(configFile('one', base))) };
  })();
  return single;
};

/** Checks that the run in `run` (its final state `state`) is the one-process run `one`, to float rounding. */
async function expectSameRun(t: ExecutionContext, one: DistillResult, run: string, state: RunState) {
  t.deepEqual(
    state.stages.map((stage) => stage.name),
    one.state.stages.map((stage) => stage.name),
  );
  for (const [index, report] of state.reports.entries()) {
    const single = one.state.reports[index];
    t.deepEqual(report.execution, single.execution, `stage ${report.name}: the programs' runs`);
    t.deepEqual(report.items, single.items, `stage ${report.name}: its training rows`);
    t.deepEqual({ ...report.labels, seconds: 0 }, { ...single.labels, seconds: 0 });
    const folder = `stages/${index + 1}-${report.name}/items.json`;
    const [rows, singleRows] = [run, one.run].map(
      (folderOf) => JSON.parse(readFileSync(path.join(folderOf, folder), 'utf8')).items as StageItem[],
    );
    // The teachers labelled other batches on each rank: their float32 outputs may round differently.
    const soft = (item: StageItem) => [item.confidence, ...item.soft.p];
    const exact = (item: StageItem) => ({ ...item, confidence: 0, soft: { ...item.soft, p: [] } });
    t.deepEqual(rows.map(exact), singleRows.map(exact), `stage ${report.name}: the training rows`);
    const labelDifference = Math.max(
      0,
      ...rows.flatMap((item, i) => soft(item).map((p, j) => Math.abs(p - soft(singleRows[i])[j]))),
    );
    t.log(`stage ${report.name}: soft labels differ by at most ${labelDifference.toExponential(2)}`);
    t.true(labelDifference < 1e-6);
  }
  t.deepEqual(state.final!.tasks, one.state.final!.tasks);
  t.deepEqual(state.final!.submodules, one.state.final!.submodules);
  const { difference, noiseOnly, values } = await largestDifference(
    path.join(run, 'ckpt', 'final.pt'),
    one.checkpoint,
  );
  t.log(
    `final parameters: largest difference ${difference.toExponential(2)} over ${values} values ` +
      `(attention key biases, rounding noise only: ${noiseOnly.toExponential(2)})`,
  );
  t.true(difference < 1e-6, `largest parameter difference ${difference}`);
  t.true(noiseOnly < 16 * 1e-3, 'the key biases moved by at most lr per step');
}

test.serial(
  'two processes take the run one process takes: same rows, labels, accuracy and parameters',
  async (t) => {
    if (skip) return t.pass(skip);
    const { base, one } = await onOneProcess();
    const two = await sdvp([
      'distill',
      '--config',
      configFile('two', base),
      '--nproc-per-node',
      '2',
      '--json',
    ]);
    t.is(two.code, 0, two.stderr);
    const run = path.join(root, 'two', 'run');
    await expectSameRun(t, one, run, JSON.parse(two.stdout) as RunState);
    // Rank 0 alone wrote the run folder: one label store, and the logged steps with the group's losses.
    t.true(existsSync(path.join(run, 'labels.sqlite')));
    const [losses, singleLosses] = [run, one.run].map((folder) =>
      readFileSync(path.join(folder, 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line).loss as number),
    );
    t.is(losses.length, singleLosses.length);
    losses.forEach((loss, i) => t.true(Math.abs(loss - singleLosses[i]) <= 1e-5 * Math.abs(singleLosses[i])));
  },
);

test.serial(
  'two launchers of one worker each (--nnodes 2, as on two machines) take the same run',
  async (t) => {
    if (skip) return t.pass(skip);
    const { base, one } = await onOneProcess();
    const file = configFile('nodes', base);
    const port = String(await findFreePort());
    const [first, second] = await Promise.all(
      [0, 1].map((node) => sdvp([...onMachineOfTwo(file, node, port), '--json'])),
    );
    t.is(first.code, 0, first.stderr);
    t.is(second.code, 0, second.stderr);
    t.is(second.stdout, '', 'only rank 0 reports');
    await expectSameRun(t, one, path.join(root, 'nodes', 'run'), JSON.parse(first.stdout) as RunState);
  },
);

test.serial(
  'Ctrl-C stops both workers checkpointed; --resume on two workers ends where one process ends',
  async (t) => {
    if (skip) return t.pass(skip);
    const { base, one } = await onOneProcess();
    const file = configFile('stopped', base);
    const run = path.join(root, 'stopped', 'run');
    const child = spawn(process.execPath, [cli, 'distill', '--config', file, '--nproc-per-node', '2'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const stopped = finished(child);
    await waitFor(() => existsSync(path.join(run, 'stages', '1-LOC', 'items.json')), child, 240_000);
    child.kill('SIGINT');
    const { code, stderr } = await stopped;
    t.is(code, 130, stderr);
    t.regex(stderr, /\[rank 0\] sdvp: The run was stopped .*checkpointed/);
    t.regex(stderr, /\[rank 1\] sdvp: The run was stopped/);
    t.false(JSON.parse(readFileSync(path.join(run, 'run.json'), 'utf8')).completed);
    const resumed = await sdvp(['distill', '--resume', run, '--nproc-per-node', '2', '--json']);
    t.is(resumed.code, 0, resumed.stderr);
    await expectSameRun(t, one, run, JSON.parse(resumed.stdout) as RunState);
  },
);

test.serial(
  'a worker killed on another machine fails the others at their next collective, naming its rank',
  async (t) => {
    if (skip) return t.pass(skip);
    if (process.platform !== 'linux') return t.pass('finding the workers reads /proc');
    const { base } = await onOneProcess();
    const file = configFile('killed-node', base);
    const port = String(await findFreePort());
    const launchers = [0, 1].map((node) =>
      spawn(process.execPath, [cli, ...onMachineOfTwo(file, node, port)], {
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    const ends = launchers.map(finished);
    const run = path.join(root, 'killed-node', 'run');
    await waitFor(() => existsSync(path.join(run, 'stages', '1-LOC', 'items.json')), launchers[0], 240_000);
    const victim = workerPid(launchers[1].pid!, 1);
    t.truthy(victim, 'rank 1 is running');
    process.kill(victim!, 'SIGKILL');
    const killedAt = Date.now();
    const [survivor, victimsMachine] = [await ends[0], await ends[1]];
    t.log(`machine 0 failed ${Date.now() - killedAt} ms after the kill`);
    t.is(survivor.code, 1);
    t.regex(survivor.stderr, /rank 1 \(pid \d+ on [^)]+\) has stopped responding.*\[ERR_SDVP_DIST_PEER\]/);
    t.is(victimsMachine.code, 1);
    t.regex(victimsMachine.stderr, /worker rank 1 .*was killed by SIGKILL/);
  },
);

test.serial('a hung worker (stopped) fails the others within --timeout, naming its rank', async (t) => {
  if (skip) return t.pass(skip);
  if (process.platform !== 'linux') return t.pass('finding the workers reads /proc');
  const { base } = await onOneProcess();
  const file = configFile('hung-node', base);
  const port = String(await findFreePort());
  const launchers = [0, 1].map((node) =>
    spawn(process.execPath, [cli, ...onMachineOfTwo(file, node, port), '--timeout', '8'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  const ends = launchers.map(finished);
  const run = path.join(root, 'hung-node', 'run');
  await waitFor(() => existsSync(path.join(run, 'stages', '1-LOC', 'items.json')), launchers[0], 240_000);
  const victim = workerPid(launchers[1].pid!, 1);
  t.truthy(victim, 'rank 1 is running');
  process.kill(victim!, 'SIGSTOP');
  const stoppedAt = Date.now();
  const survivor = await ends[0];
  const waited = Date.now() - stoppedAt;
  process.kill(victim!, 'SIGKILL');
  await ends[1];
  t.log(`machine 0 failed ${waited} ms after rank 1 stopped`);
  t.is(survivor.code, 1);
  t.regex(survivor.stderr, /rank 1\b.*\[ERR_SDVP_DIST_(TIMEOUT|PEER)\]/s);
  t.true(waited < 60_000, `failed after ${waited} ms`);
});

test('ranks started with different configs are refused at start, naming the field', async (t) => {
  if (skip) return t.pass(skip);
  const port = await findFreePort();
  // The same run folder and files (no need to exist: the configs are compared first), another batch size.
  const fake: RunFixture = { data: '/data', student: '/student.pt', teachers: '/teachers.json' };
  const run = path.join(root, 'mismatch', 'run');
  const files = [
    configFile('mismatch-0', fake, { run }),
    configFile('mismatch-1', fake, { run, batchSize: 8 }),
  ];
  const results = await Promise.all(
    files.map((file, rank) =>
      sdvp(['distill', '--config', file], {
        RANK: String(rank),
        WORLD_SIZE: '2',
        MASTER_ADDR: '127.0.0.1',
        MASTER_PORT: String(port),
      }),
    ),
  );
  for (const result of results) {
    t.is(result.code, 1, result.stderr);
    t.regex(result.stderr, /rank 1 was started with another config than rank 0 \(batchSize differ/);
    t.regex(result.stderr, /ERR_SDVP_DIST_CONFIG/);
  }
});

/** The pid of the worker with RANK `rank` among a launcher's child processes (Linux /proc). */
function workerPid(launcher: number, rank: number): number | undefined {
  const children = readFileSync(`/proc/${launcher}/task/${launcher}/children`, 'utf8').trim().split(' ');
  return children.map(Number).find((pid) => {
    try {
      return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`RANK=${rank}`);
    } catch {
      return false;
    }
  });
}

test.serial(
  'a killed worker fails the run at once, naming its rank; the checkpoint on record is whole',
  async (t) => {
    if (skip) return t.pass(skip);
    if (process.platform !== 'linux') return t.pass('finding the workers reads /proc');
    const { base } = await onOneProcess();
    const run = path.join(root, 'killed', 'run');
    const child = spawn(
      process.execPath,
      [cli, 'distill', '--config', configFile('killed', base), '--nproc-per-node', '2'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const failed = finished(child);
    await waitFor(() => existsSync(path.join(run, 'stages', '1-LOC', 'items.json')), child, 240_000);
    const victim = workerPid(child.pid!, 1);
    t.truthy(victim, 'rank 1 is running');
    process.kill(victim!, 'SIGKILL');
    const { code, stderr } = await failed;
    t.is(code, 1);
    t.regex(
      stderr,
      /worker rank 1 \(local rank 1, pid \d+\) was killed by SIGKILL.*\[ERR_SDVP_DIST_WORKER\]/s,
    );
    const state = JSON.parse(readFileSync(path.join(run, 'run.json'), 'utf8')) as RunState;
    t.false(state.completed);
    const checkpoint = path.join(run, state.checkpoint ?? 'ckpt/stage-1-start.pt');
    const model = await loadModel(checkpoint);
    model.dispose();
  },
);

test('a busy rendezvous port fails the launch at once, naming rank 0 and the port', async (t) => {
  if (skip) return t.pass(skip);
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  try {
    const fake: RunFixture = { data: 'data', student: 'student.pt', teachers: 'teachers.json' };
    const result = await sdvp([
      'distill',
      '--config',
      configFile('busy', fake),
      '--nproc-per-node',
      '2',
      '--master-port',
      String(port),
    ]);
    t.is(result.code, 1);
    t.regex(result.stderr, /ERR_SDVP_DIST_WORKER/);
    t.regex(result.stderr, /worker rank 0/);
    t.regex(result.stderr, new RegExp(`ERR_SDVP_DIST_PORT|port ${port}`));
  } finally {
    server.close();
  }
});

test('bad launch options are usage errors that name the option, before the config is read', (t) => {
  for (const [args, option] of [
    [['--node-rank', '1'], '--node-rank'],
    [['--nproc-per-node', '0'], '--nproc-per-node'],
    [['--nproc-per-node', '1', '--nnodes', '2', '--node-rank', '2'], '--node-rank'],
    [['--nproc-per-node', '2', '--timeout', 'soon'], '--timeout'],
    [['--timeout', '5'], '--timeout'],
  ] as [string[], string][]) {
    const result = spawnSync(process.execPath, [cli, 'distill', '--config', 'no-such.json', ...args], {
      encoding: 'utf8',
    });
    t.is(result.status, 2, args.join(' '));
    t.true(result.stderr.includes(option), `${args.join(' ')}: ${result.stderr}`);
    t.true(result.stderr.includes('ERR_SDVP_USAGE'), args.join(' '));
  }
});
