// The collectives of a process group against plain reductions of every rank's input: two Node ranks,
// a Node rank with a Python torch.distributed (gloo) rank in either role, a one-process group, and
// every bad argument.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import test from 'ava';
import { type ProcessGroup, findFreePort, initProcessGroup } from '../lib/distributed';
import type { Tensor } from '../lib/models';
import {
  RESULT_PREFIX,
  WORKER_SCRIPT,
  floatInput,
  intInput,
  longInput,
  spawnRank,
} from './helpers/distributed-fixtures';
import { torchSkipReason } from './helpers/model-fixtures';
import { findPythonTorch } from './helpers/python-torch';

const skip = torchSkipReason();
if (skip) test.skip(`distributed tests skipped: ${skip}`, () => {});
const torchTest = skip ? test.skip : test;

type Plain = { data: (number | string)[]; shape: number[]; dtype: string };
type Reduce = (values: number[]) => number;

const sum: Reduce = (v) => v.reduce((a, b) => a + b, 0);
const max: Reduce = (v) => Math.max(...v);
const min: Reduce = (v) => Math.min(...v);

/** The element-wise reduction of every rank's input, as plain numbers. */
function reduce(input: (rank: number) => Tensor, world: number, op: Reduce): number[] {
  const inputs = Array.from({ length: world }, (_, r) => Array.from(input(r).data as ArrayLike<number>));
  return inputs[0].map((_, i) => op(inputs.map((values) => values[i])));
}

/** Checks one rank's report of every collective against the plain reductions. */
function checkReport(
  t: import('ava').ExecutionContext,
  report: Record<string, unknown>,
  world: number,
): void {
  const values = (key: string) => (report[key] as Plain).data.map(Number);
  t.deepEqual(values('float_sum'), reduce(floatInput, world, sum), 'float sum');
  t.deepEqual(
    values('float_avg'),
    reduce(floatInput, world, sum).map((v) => Math.fround(v / world)),
    'float avg',
  );
  t.deepEqual(values('float_max'), reduce(floatInput, world, max), 'float max');
  t.deepEqual(values('float_min'), reduce(floatInput, world, min), 'float min');
  t.deepEqual((report.float_sum as Plain).shape, [2, 3]);
  t.deepEqual(values('int_sum'), reduce(intInput, world, sum), 'int32 sum');
  t.deepEqual(values('int_max'), reduce(intInput, world, max), 'int32 max');
  t.deepEqual(values('int_min'), reduce(intInput, world, min), 'int32 min');
  t.is((report.int_sum as Plain).dtype, 'int32');
  const longs = Array.from({ length: world }, (_, r) => Array.from(longInput(r).data as BigInt64Array));
  t.deepEqual(
    (report.long_sum as Plain).data,
    longs[0].map((_, i) => longs.reduce((a, values) => a + values[i], 0n).toString()),
    'int64 sum',
  );
  t.deepEqual(
    values('broadcast'),
    Array.from(floatInput(world - 1).data as Float32Array),
    'broadcast from the last rank',
  );
  t.deepEqual(
    (report.gather as Plain[]).map((p) => p.data.map(Number)),
    Array.from({ length: world }, (_, r) => Array.from(intInput(r).data as Int32Array)),
    'allGather in rank order',
  );
}

torchTest(
  'two Node ranks: every collective equals the plain reduction, and inputs are untouched',
  async (t) => {
    const port = await findFreePort();
    const ranks = [0, 1].map((rank) => spawnRank('collectives', rank, 2, port));
    const reports = (await Promise.all(ranks.map((r) => r.result))) as Record<string, unknown>[];
    for (const report of reports) {
      checkReport(t, report, 2);
      t.true(report.inputUntouched, 'allReduce left its input as it was');
      t.deepEqual(report.objects, [
        { rank: 0, text: '', nested: [0, { ok: true }] },
        { rank: 1, text: 'x'.repeat(1000), nested: [1, { ok: true }] },
      ]);
    }
  },
);

// The Python rank: torch.distributed with the gloo backend, the same inputs and collectives.
const PYTHON_RANK = `
import datetime, json, sys
import torch
import torch.distributed as dist
port, rank, world = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=world,
                        timeout=datetime.timedelta(seconds=60))
def float_input(r): return torch.tensor([r * 10 + i / 2 - 1 for i in range(6)], dtype=torch.float32).reshape(2, 3)
def int_input(r): return torch.tensor([(r + 1) * (i + 1) * (-1 if i % 2 else 1) for i in range(4)], dtype=torch.int32)
def long_input(r): return torch.tensor([r * 10**12 + i for i in range(3)], dtype=torch.int64)
def plain(t): return {'data': [str(v) if t.dtype == torch.int64 else v for v in t.flatten().tolist()], 'shape': list(t.shape), 'dtype': str(t.dtype).replace('torch.', '')}
out = {'rank': rank, 'worldSize': world}
ops = {'sum': dist.ReduceOp.SUM, 'max': dist.ReduceOp.MAX, 'min': dist.ReduceOp.MIN}
for name in ['sum', 'avg', 'max', 'min']:
    t = float_input(rank)
    dist.all_reduce(t, op=ops['sum' if name == 'avg' else name])
    out['float_' + name] = plain(t / world if name == 'avg' else t)
for name in ['sum', 'max', 'min']:
    t = int_input(rank); dist.all_reduce(t, op=ops[name]); out['int_' + name] = plain(t)
t = long_input(rank); dist.all_reduce(t); out['long_sum'] = plain(t)
t = float_input(rank); dist.broadcast(t, src=world - 1); out['broadcast'] = plain(t)
parts = [torch.empty(4, dtype=torch.int32) for _ in range(world)]
dist.all_gather(parts, int_input(rank)); out['gather'] = [plain(p) for p in parts]
dist.barrier()
dist.barrier()
dist.destroy_process_group()
print('RESULT ' + json.dumps(out))
`;

/** Runs `script` (Python source) with `python` and arguments; resolves with its exit code and output. */
function runPythonScript(
  python: string,
  script: string,
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sdvp-50-'));
  const file = path.join(dir, 'script.py');
  fs.writeFileSync(file, script);
  return new Promise((resolve) => {
    const child = spawn(python, [file, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, OMP_NUM_THREADS: '1' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.on('close', (code) => {
      fs.rmSync(dir, { recursive: true, force: true });
      resolve({ code, stdout, stderr });
    });
  });
}

/** The RESULT lines of a run's output. */
function results(stdout: string): Record<string, unknown>[] {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith(RESULT_PREFIX))
    .map((line) => JSON.parse(line.slice(RESULT_PREFIX.length)) as Record<string, unknown>);
}

async function runPythonRank(python: string, port: number, rank: number, world: number) {
  const run = await runPythonScript(python, PYTHON_RANK, [String(port), String(rank), String(world)]);
  const [report] = results(run.stdout);
  if (run.code !== 0 || !report) throw new Error(`python rank ${rank} failed (${run.code}):\n${run.stderr}`);
  return report;
}

const pythonTorch = findPythonTorch();
const pythonTest = skip || pythonTorch.skip ? test.skip : test;
if (!skip && pythonTorch.skip) test.skip(`Python interop skipped: ${pythonTorch.skip}`, () => {});

for (const pythonRank of [1, 0]) {
  pythonTest(
    `a Python torch.distributed gloo rank (${pythonRank === 0 ? 'rank 0, hosting the store' : 'rank 1'}) and a Node rank see the same results`,
    async (t) => {
      const python = pythonTorch.python as string;
      const port = await findFreePort();
      const nodeRank = spawnRank('collectives', 1 - pythonRank, 2, port, { objects: false });
      const [fromPython, fromNode] = await Promise.all([
        runPythonRank(python, port, pythonRank, 2),
        nodeRank.result as Promise<Record<string, unknown>>,
      ]);
      checkReport(t, fromNode, 2);
      checkReport(t, fromPython, 2);
      for (const key of [
        'float_sum',
        'float_avg',
        'float_max',
        'int_sum',
        'long_sum',
        'broadcast',
        'gather',
      ]) {
        t.deepEqual(
          JSON.stringify(fromNode[key]),
          JSON.stringify(fromPython[key]),
          `${key}: Node and Python agree`,
        );
      }
    },
  );
}

// torchrun's elastic agent with its default static rendezvous: the agent hosts the store and the
// workers are clients under "/worker/attempt_0". (Debian 12's torchrun command fails on Python 3.11
// before it starts a worker — its -r/-t parsing returns None — so the agent is driven by its API.)
const ELASTIC_AGENT = `
import sys, uuid
from torch.distributed.launcher.api import LaunchConfig, elastic_launch
from torch.distributed.elastic.multiprocessing import Std
port, node, script = int(sys.argv[1]), sys.argv[2], sys.argv[3]
config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=2, run_id=str(uuid.uuid4()),
                      rdzv_backend='static', rdzv_endpoint=f'127.0.0.1:{port}', rdzv_configs={'rank': 0},
                      max_restarts=0, monitor_interval=0.2, redirects=Std.NONE, tee=Std.NONE)
elastic_launch(config, entrypoint=node)(script, *sys.argv[4:])
`;

pythonTest(
  "Node workers under torchrun's elastic agent (it hosts the store): every collective checks out",
  async (t) => {
    const python = pythonTorch.python as string;
    const port = await findFreePort();
    const run = await runPythonScript(python, ELASTIC_AGENT, [
      String(port),
      process.execPath,
      WORKER_SCRIPT,
      'collectives',
      '{}',
    ]);
    t.is(run.code, 0, run.stderr);
    const reports = results(run.stdout);
    t.deepEqual(reports.map((report) => report.rank).sort(), [0, 1]);
    for (const report of reports) checkReport(t, report, 2);
  },
);

torchTest('a one-process group reduces to its own input; its port is picked when 0', async (t) => {
  const group = await initProcessGroup({ env: {} });
  t.is(group.rank, 0);
  t.is(group.worldSize, 1);
  t.true(group.masterPort > 0);
  t.deepEqual(
    Array.from((await group.allReduce(floatInput(0), { op: 'avg' })).data as Float32Array),
    Array.from(floatInput(0).data as Float32Array),
  );
  t.deepEqual((await group.allGatherObject({ a: [1, 'two'] }))[0], { a: [1, 'two'] });
  await group.destroy();
  await group.destroy(); // idempotent
});

torchTest('bad collective arguments reject with a clear error and leave the group usable', async (t) => {
  const group: ProcessGroup = await initProcessGroup({ env: {} });
  await t.throwsAsync(group.allReduce(floatInput(0), { op: 'prod' as 'sum' }), {
    code: 'ERR_SDVP_OPTION',
    message: /options\.op/,
  });
  await t.throwsAsync(group.allReduce(intInput(0), { op: 'avg' }), {
    code: 'ERR_SDVP_ARG',
    message: /float32/,
  });
  await t.throwsAsync(group.broadcast(floatInput(0), { src: 1 }), {
    code: 'ERR_SDVP_RANGE',
    message: /options\.src/,
  });
  await t.throwsAsync(group.allReduce({ data: new Float32Array(3), shape: [2] }), { code: 'ERR_SDVP_SHAPE' });
  await t.throwsAsync(group.allReduce({ data: new Uint8Array(2), shape: [2], dtype: 'bool' }), {
    code: 'ERR_SDVP_ARG',
  });
  await t.throwsAsync(group.allGatherObject(undefined), { code: 'ERR_SDVP_ARG', message: /JSON/ });
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  await t.throwsAsync(group.allGatherObject(cyclic), { code: 'ERR_SDVP_ARG' });
  t.deepEqual(
    Array.from((await group.allReduce(intInput(0), { op: 'max' })).data as Int32Array),
    Array.from(intInput(0).data as Int32Array),
  );
  await group.destroy();
  await t.throwsAsync(group.barrier(), { code: 'ERR_SDVP_DISPOSED' });
  await t.throwsAsync(group.allReduce(floatInput(0)), { code: 'ERR_SDVP_DISPOSED' });
});
