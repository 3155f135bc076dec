// External-command teachers end to end: a Python teacher (standard library only) over JSON Lines, restarts
// and retries, and every way it can misbehave, each failing with a clear error that quotes it.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { CommandTeacher, type CommandTeacherOptions } from '../lib/teachers/command-teacher';
import { LabelStore } from '../lib/teachers/label-store';
import { LabellingError, labelInstances } from '../lib/teachers/scheduler';
import type { ImageSource } from '../lib/teachers/teacher';
import { findRepoRoot } from './helpers/corpus';
import { fakeInstance } from './helpers/teacher-fixtures';

const root = mkdtempSync(path.join(tmpdir(), 'sdvp-command-'));
test.after.always(() => rmSync(root, { recursive: true, force: true }));
const server = path.join(findRepoRoot(), 'tests', 'fixtures', 'teacher_server.py');
const images: ImageSource = {
  image: () => Promise.reject(new Error('unused')),
  path: (ref) => `/data/${ref.split('#')[0]}`,
};
const logs: string[] = [];
const context = { images, log: (line: string) => logs.push(line) };

function teacher(mode: string[], extra: Partial<CommandTeacherOptions> = {}): CommandTeacher {
  return new CommandTeacher({
    id: `python-${mode[0]}`,
    version: '1',
    module: 'VQA',
    subTask: 'vqa',
    command: ['python3', server, ...mode],
    cwd: root,
    batchSize: 4,
    output: 'classification',
    timeoutMs: 30_000,
    retries: 1,
    ...extra,
  });
}

const batch = (n: number, prefix = 'h') =>
  Array.from({ length: n }, (_, i) => fakeInstance(`${prefix}${String(i).padStart(8, '0')}`));

test('a Python teacher labels batches over JSON Lines; its stderr reaches the log', async (t) => {
  const python = teacher(['good']);
  try {
    const outputs = await python.label(batch(3), context);
    t.is(outputs.length, 3);
    // The fixture's label: the byte sum of the hash, modulo 10.
    const digit = [...Buffer.from('h00000000')].reduce((sum, byte) => sum + byte, 0) % 10;
    t.deepEqual(outputs[0], { labels: [String(digit), String((digit + 1) % 10)], probs: [0.9, 0.1] });
    t.true(logs.some((line) => line.includes('[teacher python-good] batch 1 of 3')));
    const again = await python.label(batch(2, 'f'), context);
    t.is(again.length, 2);
    t.is(python.restarts, 0);
  } finally {
    await python.close();
  }
});

test('a teacher that dies on its first batch is restarted and the batch retried', async (t) => {
  const python = teacher(['flaky', path.join(root, 'flaky-state')]);
  try {
    const outputs = await python.label(batch(2), context);
    t.is(outputs.length, 2);
    t.true(python.restarts >= 1);
  } finally {
    await python.close();
  }
});

for (const [mode, expected] of [
  ['garbage', /not JSON: "this is not json"/],
  ['wrong-count', /1 outputs for 2 instances/],
  ['error', /reported an error: "model server out of memory"/],
  ['hang', /did not answer within 2000 ms/],
] as const) {
  test(`a teacher answering '${mode}' fails after its retries with an error that names it and quotes it`, async (t) => {
    const python = teacher([mode], mode === 'hang' ? { timeoutMs: 2000 } : {});
    try {
      await t.throwsAsync(python.label(batch(2), context), {
        code: 'ERR_SDVP_TEACHER',
        message: new RegExp(`python-${mode}.*${expected.source}`),
      });
    } finally {
      await python.close();
    }
  });
}

test('a command that cannot start is an error naming the teacher', async (t) => {
  const missing = new CommandTeacher({
    ...teacher(['good']),
    id: 'ghost',
    command: ['/nonexistent/teacher'],
    cwd: root,
    version: '1',
    module: 'VQA',
    subTask: 'vqa',
    batchSize: 2,
    output: 'classification',
    retries: 0,
  } as CommandTeacherOptions);
  await t.throwsAsync(missing.label(batch(1), context), {
    code: 'ERR_SDVP_TEACHER',
    message: /ghost.*could not run/,
  });
  await missing.close();
});

test('labels committed before a teacher dies for good stay in the store, and the rest are labelled on the next run', async (t) => {
  const store = LabelStore.open(path.join(root, 'dies.sqlite'));
  const dying = teacher(['die-after', '2', path.join(root, 'dies-state')], { id: 'python-dies', retries: 1 });
  const instances = batch(16);
  const error = await t.throwsAsync(
    labelInstances(instances, [dying], { store, images, concurrency: 1, log: () => {} }),
    { instanceOf: LabellingError },
  );
  await dying.close();
  t.is(error!.summary.teachers['python-dies'].labelled, 8);
  t.is(store.labelledHashes('python-dies', '1').size, 8);
  // The same teacher (same command, so the same fingerprint), healthy again: it answers two more batches.
  rmSync(path.join(root, 'dies-state'));
  const healthy = teacher(['die-after', '2', path.join(root, 'dies-state')], { id: 'python-dies' });
  const summary = await labelInstances(instances, [healthy], { store, images, log: () => {} });
  await healthy.close();
  t.deepEqual(summary.teachers['python-dies'], { covered: 16, reused: 8, labelled: 8, failed: 0 });
  store.close();
});
