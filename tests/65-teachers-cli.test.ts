// The labelling commands end to end: instances from the oracle, `sdvp teachers label` killed mid-way and
// restarted (nothing lost, nothing labelled twice), export, training the built-in teachers, and bad input.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import Database from 'better-sqlite3';
import { generateDigitBenchmark } from '../lib/data/generate-digits';
import { findRepoRoot } from './helpers/corpus';
import { torchSkipReason } from './helpers/model-fixtures';

const root = mkdtempSync(path.join(tmpdir(), 'sdvp-label-cli-'));
test.after.always(() => rmSync(root, { recursive: true, force: true }));
const repo = findRepoRoot();
const cli = path.join(repo, 'dist', 'lib', 'cli', 'main.js');
const data = path.join(root, 'data');
const ready = generateDigitBenchmark({ out: data, scenes: 60, seed: 4 });
const sdvp = (args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

function registry(name: string, mode: string): string {
  const file = path.join(root, `${name}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      teachers: [
        {
          id: 'python-vqa',
          kind: 'command',
          module: 'VQA',
          subTask: 'vqa',
          command: ['python3', path.join(repo, 'tests', 'fixtures', 'teacher_server.py'), mode],
          batchSize: 4,
          timeoutMs: 60000,
        },
        {
          id: 'python-loc',
          kind: 'command',
          module: 'LOC',
          subTask: 'grounding',
          command: ['python3', path.join(repo, 'tests', 'fixtures', 'teacher_server.py'), mode],
          batchSize: 8,
          timeoutMs: 60000,
        },
      ],
    }),
  );
  return file;
}

function labelRows(store: string): Array<{ hash: string; teacher_id: string; labelled_at: number }> {
  const db = new Database(store, { readonly: true, fileMustExist: true });
  try {
    return db
      .prepare('SELECT teacher_id, hash, labelled_at FROM labels ORDER BY teacher_id, hash')
      .all() as Array<{ hash: string; teacher_id: string; labelled_at: number }>;
  } finally {
    db.close();
  }
}

function exitOf(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

test.serial(
  'instances from the oracle, then a killed labelling resumed with nothing lost or labelled twice',
  async (t) => {
    await ready;
    const instances = path.join(root, 'instances.jsonl');
    const made = sdvp([
      'instances',
      '--data',
      data,
      '--split',
      'train',
      '--modules',
      'oracle',
      '--out',
      instances,
    ]);
    t.is(made.status, 0, made.stderr);
    t.regex(made.stdout, /100\.0% answered right/);
    const lines = readFileSync(instances, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    t.true(lines.length > 50);
    t.true(lines.every((line) => line.input.image.path.startsWith(data)));
    const distinct = new Set(lines.map((line) => line.hash)).size;

    const store = path.join(root, 'labels.sqlite');
    const slow = registry('slow', 'slow');
    const child = spawn(
      process.execPath,
      [cli, 'teachers', 'label', '--instances', instances, '--teachers', slow, '--store', store],
      { stdio: 'ignore' },
    );
    await new Promise<void>((resolve, reject) => {
      const timer = setInterval(() => {
        try {
          if (labelRows(store).length >= 12) {
            clearInterval(timer);
            resolve();
          }
        } catch {
          // the store is not created yet
        }
        if (child.exitCode !== null) {
          clearInterval(timer);
          reject(new Error('the labelling ended before it could be killed'));
        }
      }, 50);
    });
    child.kill('SIGKILL');
    await exitOf(child);
    const before = labelRows(store);
    t.true(before.length >= 12 && before.length < distinct, `${before.length} of ${distinct}`);

    const again = sdvp([
      'teachers',
      'label',
      '--instances',
      instances,
      '--teachers',
      registry('fast', 'slow'),
      '--store',
      store,
      '--json',
    ]);
    t.is(again.status, 0, again.stderr);
    const summary = JSON.parse(again.stdout);
    const after = labelRows(store);
    t.is(after.length, distinct);
    const reused = summary.teachers['python-vqa'].reused + summary.teachers['python-loc'].reused;
    const labelled = summary.teachers['python-vqa'].labelled + summary.teachers['python-loc'].labelled;
    t.is(reused, before.length);
    t.is(reused + labelled, distinct);
    // The labels committed before the kill are the same rows, untouched.
    const byKey = new Map(after.map((row) => [`${row.teacher_id}/${row.hash}`, row.labelled_at]));
    for (const row of before) t.is(byKey.get(`${row.teacher_id}/${row.hash}`), row.labelled_at);

    const exported = sdvp(['teachers', 'export', '--store', store]);
    t.is(exported.status, 0);
    const rows = exported.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    t.is(rows.length, distinct);
    t.true(rows.some((row) => Array.isArray(row.labels)) && rows.some((row) => Array.isArray(row.boxes)));
  },
);

test.serial(
  'bad input: an unknown teacher id, a foreign store, garbage instances, a missing image',
  async (t) => {
    await ready;
    const instances = path.join(root, 'instances.jsonl');
    const slow = registry('slow', 'slow');
    const unknown = sdvp([
      'teachers',
      'label',
      '--instances',
      instances,
      '--teachers',
      slow,
      '--store',
      path.join(root, 'x.sqlite'),
      '--teacher',
      'nobody',
    ]);
    t.is(unknown.status, 1);
    t.regex(unknown.stderr, /Unknown teacher id 'nobody'.*python-vqa, python-loc.*ERR_SDVP_CONFIG/);

    const foreign = path.join(root, 'foreign.sqlite');
    const db = new Database(foreign);
    db.exec('CREATE TABLE t (x)');
    db.close();
    const refused = sdvp([
      'teachers',
      'label',
      '--instances',
      instances,
      '--teachers',
      slow,
      '--store',
      foreign,
    ]);
    t.is(refused.status, 1);
    t.regex(refused.stderr, /not an sdvp label store.*ERR_SDVP_STORE/);

    const garbage = path.join(root, 'garbage.jsonl');
    writeFileSync(garbage, '{"hash": "a", "module": "VQA"}\n');
    const parsed = sdvp([
      'teachers',
      'label',
      '--instances',
      garbage,
      '--teachers',
      slow,
      '--store',
      path.join(root, 'y.sqlite'),
    ]);
    t.is(parsed.status, 1);
    t.regex(parsed.stderr, /garbage\.jsonl:1: field 'subTask'/);

    const broken = path.join(root, 'broken');
    rmSync(broken, { recursive: true, force: true });
    await generateDigitBenchmark({ out: broken, scenes: 20, seed: 4 });
    unlinkSync(path.join(broken, 'images', 'train', '000000.png'));
    const missing = sdvp([
      'instances',
      '--data',
      broken,
      '--modules',
      'oracle',
      '--out',
      path.join(root, 'z.jsonl'),
    ]);
    t.is(missing.status, 1);
    t.regex(missing.stderr, /images\/train\/000000\.png.*ERR_SDVP_IO/);
  },
);

test.serial(
  'sdvp teachers train writes both teachers, a registry that loads and their metrics',
  async (t) => {
    const skip = torchSkipReason();
    if (skip) return t.pass(skip);
    await ready;
    const out = path.join(root, 'teachers');
    const trained = sdvp([
      'teachers',
      'train',
      '--data',
      data,
      '--out',
      out,
      '--classifier-steps',
      '20',
      '--detector-steps',
      '10',
    ]);
    t.is(trained.status, 0, trained.stderr);
    t.regex(trained.stdout, /test accuracy [0-9.]+% on \d+ held-out digits/);
    const metrics = JSON.parse(readFileSync(path.join(out, 'metrics.json'), 'utf8'));
    t.is(metrics.classifier.steps, 20);
    t.true(metrics.detector.recallAny >= 0 && metrics.detector.recallAny <= 1);
    const registryFile = path.join(out, 'teachers.json');
    const instances = path.join(root, 'instances.jsonl');
    const labelled = sdvp([
      'teachers',
      'label',
      '--instances',
      instances,
      '--teachers',
      registryFile,
      '--store',
      path.join(root, 'builtin.sqlite'),
      '--json',
    ]);
    t.is(labelled.status, 0, labelled.stderr);
    const summary = JSON.parse(labelled.stdout);
    t.true(summary.teachers['digit-vqa'].labelled > 0);
    t.true(summary.teachers['digit-loc'].labelled > 0);
    // Colour phrases are LOC instances no built-in teacher covers.
    t.true(summary.uncoveredByModule.LOC > 0);
  },
);
