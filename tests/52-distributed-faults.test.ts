// Faults of a process group: a killed rank (an ordinary one, or rank 0 with the store) and a hung rank
// make the others fail within the timeout with an error naming the rank; a busy port, mismatched world
// sizes or fingerprints, missing ranks and bad options fail at start; the launcher fails fast.

import * as net from 'node:net';
import test from 'ava';
import {
  distributedBackends,
  findFreePort,
  initProcessGroup,
  launchWorkers,
  resolveProcessGroupOptions,
} from '../lib/distributed';
import { WORKER_SCRIPT, spawnRank } from './helpers/distributed-fixtures';
import { torchSkipReason } from './helpers/model-fixtures';

const skip = torchSkipReason();
if (skip) test.skip(`distributed fault tests skipped: ${skip}`, () => {});
const torchTest = skip ? test.skip : test;

interface FailureReport {
  code?: string;
  message: string;
  afterMs: number;
}

const TIMEOUT_MS = 4000;

for (const victim of [1, 0]) {
  torchTest(`a killed rank ${victim} makes the other fail within the timeout, naming it`, async (t) => {
    const port = await findFreePort();
    const ranks = [0, 1].map((rank) => spawnRank('loop', rank, 2, port, { timeoutMs: TIMEOUT_MS }));
    await Promise.all(ranks.map((r) => r.printed('LOOPING')));
    ranks[victim].child.kill('SIGKILL');
    const report = (await ranks[1 - victim].result) as FailureReport;
    t.log(`${report.code}: ${report.message} (${report.afterMs.toFixed(0)} ms after the last success)`);
    t.is(report.code, 'ERR_SDVP_DIST_PEER');
    t.regex(report.message, new RegExp(`rank ${victim} \\(pid \\d+ on `));
    t.regex(report.message, victim === 0 ? /hosts the group's store/ : /stopped responding/);
    t.true(report.afterMs < TIMEOUT_MS, 'the failure came before the timeout');
  });
}

torchTest('a rank that stays alive but never enters the collective is named after the timeout', async (t) => {
  const port = await findFreePort();
  const timeoutMs = 1500;
  const ranks = [0, 1].map((rank) => spawnRank('loop', rank, 2, port, { timeoutMs, idle: 1 }));
  const report = (await ranks[0].result) as FailureReport;
  ranks[1].child.kill('SIGKILL');
  t.log(`${report.code}: ${report.message}`);
  t.is(report.code, 'ERR_SDVP_DIST_PEER');
  t.regex(
    report.message,
    /rank 1 \(pid \d+ on .*\) has entered only 0 collective\(s\) and is alive but has not reached collective #1/,
  );
  t.true(
    report.afterMs >= timeoutMs * 0.9 && report.afterMs < timeoutMs * 4,
    `failed after ${report.afterMs} ms`,
  );
});

torchTest('rank 0 on a busy port fails at once with ERR_SDVP_DIST_PORT', async (t) => {
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, resolve));
  const port = (blocker.address() as net.AddressInfo).port;
  try {
    const error = await t.throwsAsync(
      initProcessGroup({ rank: 0, worldSize: 2, masterPort: port, timeoutMs: 3000 }),
      {
        code: 'ERR_SDVP_DIST_PORT',
      },
    );
    t.regex(error?.message ?? '', new RegExp(`port ${port}.*in use`));
  } finally {
    blocker.close();
  }
});

torchTest(
  'ranks started with different world sizes or fingerprints fail at start, naming the rank',
  async (t) => {
    const port = await findFreePort();
    const [zero, one] = await Promise.allSettled([
      initProcessGroup({ rank: 0, worldSize: 2, masterPort: port, timeoutMs: 20_000 }),
      initProcessGroup({ rank: 1, worldSize: 3, masterPort: port, timeoutMs: 20_000 }),
    ]);
    for (const outcome of [zero, one]) {
      t.is(outcome.status, 'rejected');
      const reason = (outcome as PromiseRejectedResult).reason;
      t.is(reason.code, 'ERR_SDVP_DIST_CONFIG');
      t.regex(
        reason.message,
        /rank \d \(pid \d+ on .*\) was started with worldSize \d, but this rank \(\d\) with \d/,
      );
    }
    const other = await findFreePort();
    const fingerprints = await Promise.allSettled([
      initProcessGroup({
        rank: 0,
        worldSize: 2,
        masterPort: other,
        timeoutMs: 20_000,
        fingerprint: 'config A',
      }),
      initProcessGroup({
        rank: 1,
        worldSize: 2,
        masterPort: other,
        timeoutMs: 20_000,
        fingerprint: 'config B',
      }),
    ]);
    for (const outcome of fingerprints) {
      t.is((outcome as PromiseRejectedResult).reason?.code, 'ERR_SDVP_DIST_CONFIG');
      t.regex((outcome as PromiseRejectedResult).reason.message, /another configuration/);
    }
  },
);

torchTest('missing ranks fail at the timeout: rank 0 names them, another rank names the store', async (t) => {
  const port = await findFreePort();
  const alone = await t.throwsAsync(
    initProcessGroup({ rank: 0, worldSize: 3, masterPort: port, rendezvousTimeoutMs: 1000 }),
    {
      code: 'ERR_SDVP_DIST_TIMEOUT',
    },
  );
  t.regex(alone?.message ?? '', /only 1 of 3 ranks joined .* ranks not seen: 1, 2/);
  const unreachable = await t.throwsAsync(
    initProcessGroup({ rank: 1, worldSize: 2, masterPort: await findFreePort(), rendezvousTimeoutMs: 1500 }),
    { code: 'ERR_SDVP_DIST_TIMEOUT' },
  );
  t.regex(unreachable?.message ?? '', /rank 1 could not reach the rendezvous store at 127\.0\.0\.1:\d+/);
});

torchTest('options and torchrun variables are checked before anything starts', async (t) => {
  t.deepEqual(
    resolveProcessGroupOptions({
      env: { RANK: '1', WORLD_SIZE: '4', LOCAL_RANK: '1', MASTER_ADDR: 'node-a', MASTER_PORT: '1234' },
    }),
    {
      backend: 'gloo',
      rank: 1,
      worldSize: 4,
      localRank: 1,
      masterAddr: 'node-a',
      masterPort: 1234,
      timeoutMs: 600_000,
      rendezvousTimeoutMs: 600_000,
      fingerprint: '',
      agentStore: false,
      restartCount: 0,
    },
  );
  t.is(
    resolveProcessGroupOptions({ rank: 0, worldSize: 2, env: { RANK: '1' } }).rank,
    0,
    'options win over the environment',
  );
  const bad: [object, string, RegExp][] = [
    [
      { env: { RANK: '0' } },
      'ERR_SDVP_ARG',
      /worldSize is needed: pass options\.worldSize or set WORLD_SIZE/,
    ],
    [{ env: { RANK: 'one', WORLD_SIZE: '2' } }, 'ERR_SDVP_ARG', /RANK must be an integer/],
    [{ rank: 2, worldSize: 2, env: {} }, 'ERR_SDVP_RANGE', /rank must be a rank in \[0, 2\)/],
    [{ rank: 0, worldSize: 2, masterPort: 70000, env: {} }, 'ERR_SDVP_RANGE', /masterPort/],
    [{ rank: 0, worldSize: 2, masterPort: 0, env: {} }, 'ERR_SDVP_RANGE', /masterPort/],
    [{ backend: 'mpi', env: {} }, 'ERR_SDVP_OPTION', /backend must be 'gloo' or 'nccl'/],
    [{ timeoutMs: 5, env: {} }, 'ERR_SDVP_RANGE', /timeoutMs/],
    [{ rendezvousTimeoutMs: '1s', env: {} }, 'ERR_SDVP_ARG', /rendezvousTimeoutMs/],
    [{ fingerprint: 7, env: {} }, 'ERR_SDVP_ARG', /fingerprint/],
  ];
  for (const [options, code, message] of bad) {
    await t.throwsAsync(initProcessGroup(options), { code, message }, JSON.stringify(options));
  }
});

torchTest("backend 'nccl' without a LibTorch built with NCCL is refused by name", async (t) => {
  const backends = distributedBackends();
  t.true(backends.gloo, 'this build has Gloo');
  if (backends.nccl) {
    t.pass('this LibTorch has NCCL: the refusal does not apply');
    return;
  }
  await t.throwsAsync(initProcessGroup({ backend: 'nccl', env: {} }), {
    code: 'ERR_SDVP_NO_NCCL',
    message: /not built with NCCL/,
  });
});

torchTest('launchWorkers sets torchrun variables, and a failing worker stops the others', async (t) => {
  const lines: string[] = [];
  const ok = await launchWorkers({
    script: WORKER_SCRIPT,
    args: ['collectives', '{}'],
    nprocPerNode: 2,
    onOutput: (rank, stream, line) => {
      if (stream === 'stdout') lines.push(`${rank}:${line}`);
    },
  });
  t.deepEqual(
    ok.workers.map((w) => [w.rank, w.code]),
    [
      [0, 0],
      [1, 0],
    ],
  );
  t.is(lines.filter((line) => line.includes('RESULT')).length, 2, 'both ranks formed one group and reported');
  const started = performance.now();
  const error = await t.throwsAsync(
    launchWorkers({
      script: WORKER_SCRIPT,
      args: ['exit', JSON.stringify({ failRank: 1, code: 3 })],
      nprocPerNode: 3,
      onOutput: () => undefined,
      graceMs: 2000,
    }),
    { code: 'ERR_SDVP_DIST_WORKER' },
  );
  t.regex(
    error?.message ?? '',
    /worker rank 1 \(local rank 1, pid \d+\) exited with code 3; the other 2 worker\(s\)/,
  );
  t.true(performance.now() - started < 10_000, 'the others were stopped, not waited for');
  await t.throwsAsync(launchWorkers({ script: WORKER_SCRIPT, nprocPerNode: 0 }), { code: 'ERR_SDVP_RANGE' });
});
