// The digit-scene benchmark: byte-identical generation from a seed, splits disjoint by MNIST sample, every
// program parsing cleanly and returning its recorded answer with the oracle modules, and bad input.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { openDataset } from '../lib/data/dataset';
import { generateDigitBenchmark } from '../lib/data/generate-digits';
import { loadMnistDigits, splitMnist } from '../lib/data/mnist-digits';
import { oracleModules } from '../lib/data/oracle-modules';
import { parseObjectPhrase, parseQuestion } from '../lib/data/phrases';
import { accuracyOf, runPrograms } from '../lib/data/run-programs';
import { TASK_NAMES, templateNames } from '../lib/data/task-templates';
import { parseViperProgram } from '../lib/program/viper-parser';
import { parseVisProgProgram } from '../lib/program/visprog-parser';
import { findRepoRoot } from './helpers/corpus';

const root = mkdtempSync(path.join(tmpdir(), 'sdvp-data-'));
test.after.always(() => rmSync(root, { recursive: true, force: true }));
const cli = path.join(findRepoRoot(), 'dist', 'lib', 'cli', 'main.js');

function digestTree(folder: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const full = path.join(dir, name);
      if (statSync(full).isDirectory()) walk(full);
      else
        files.set(path.relative(folder, full), createHash('sha256').update(readFileSync(full)).digest('hex'));
    }
  };
  walk(folder);
  return files;
}

const shared = (async () => {
  const out = path.join(root, 'a');
  await generateDigitBenchmark({ out, scenes: 120, seed: 7 });
  return out;
})();

test('the same seed gives byte-identical files (library and CLI); another seed does not', async (t) => {
  const first = await shared;
  const second = path.join(root, 'b');
  const run = spawnSync(
    process.execPath,
    [cli, 'data', 'digits', '--out', second, '--scenes', '120', '--seed', '7'],
    { encoding: 'utf8' },
  );
  t.is(run.status, 0, run.stderr);
  t.regex(run.stdout, /digits-qa train \d+/);
  const a = digestTree(first);
  const b = digestTree(second);
  t.true(a.size > 100);
  t.deepEqual([...b.keys()], [...a.keys()]);
  for (const [file, digest] of a) t.is(b.get(file), digest, file);
  const third = path.join(root, 'c');
  await generateDigitBenchmark({ out: third, scenes: 120, seed: 8 });
  t.not(digestTree(third).get('digits-qa/train.jsonl'), a.get('digits-qa/train.jsonl'));
});

test('no MNIST sample is drawn in two splits, and the train split is the one teachers train on', async (t) => {
  const dataset = openDataset(await shared);
  const bySplit = new Map<string, Set<number>>();
  for (const [image, scene] of dataset.scenes()) {
    const split = image.split('/')[1];
    const set = bySplit.get(split) ?? new Set<number>();
    for (const object of scene.objects) set.add(object.mnist);
    bySplit.set(split, set);
  }
  t.deepEqual([...bySplit.keys()].sort(), ['test', 'train', 'val']);
  const overlap = (a: Set<number>, b: Set<number>) => [...a].filter((x) => b.has(x)).length;
  t.is(overlap(bySplit.get('train')!, bySplit.get('test')!), 0);
  t.is(overlap(bySplit.get('train')!, bySplit.get('val')!), 0);
  t.is(overlap(bySplit.get('val')!, bySplit.get('test')!), 0);
  const split = splitMnist(loadMnistDigits(), 7);
  const train = new Set(split.train);
  for (const index of bySplit.get('train')!) t.true(train.has(index));
  t.is(split.train.length + split.val.length + split.test.length, 10_000);
});

test('every program (VisProg and ViperGPT) parses cleanly and, with the oracle modules, returns the recorded answer', async (t) => {
  const dataset = openDataset(await shared);
  const modules = oracleModules(dataset.sceneLookup());
  const templates = new Set<string>();
  for (const task of TASK_NAMES) {
    for (const split of ['train', 'val', 'test']) {
      const records = dataset.records(task, split);
      t.true(records.length > 5, `${task}/${split}`);
      for (const record of records) {
        const graph = parseVisProgProgram(record.program, { inputs: Object.keys(record.images) });
        t.deepEqual(graph.diagnostics, [], record.id);
        templates.add(`${task}:${record.template}`);
        for (const sub of record.subAnswers ?? []) {
          t.true(
            sub.module === 'LOC' ? parseObjectPhrase(sub.text) !== null : parseQuestion(sub.text) !== null,
          );
        }
      }
      const runs = await runPrograms(dataset, records, modules);
      t.is(
        accuracyOf(runs),
        1,
        `${task}/${split}: ${runs
          .filter((run) => !run.correct)
          .map((run) => run.record.id)
          .join(', ')}`,
      );
    }
  }
  for (const task of TASK_NAMES)
    for (const name of templateNames(task))
      t.true(templates.has(`${task}:${name}`), `${task}:${name} never drawn`);
});

test('sub-answers give the ground truth of every LOC and VQA step the oracle called', async (t) => {
  const dataset = openDataset(await shared);
  const record = dataset.records('digits-qa', 'test').find((r) => r.template === 'relation')!;
  t.truthy(record);
  const modules = record.subAnswers!.map((sub) => sub.module);
  t.deepEqual(modules, ['LOC', 'LOC', 'VQA']);
  const vqa = record.subAnswers![2];
  t.is(vqa.answer, record.answer);
  t.is(vqa.input, 'IMAGE');
  t.truthy(vqa.box);
  t.is(record.subAnswers![1].boxes!.length, 1);
});

test('bad input: too few scenes, a non-empty output folder, a malformed record, a missing image', async (t) => {
  await t.throwsAsync(generateDigitBenchmark({ out: path.join(root, 'x'), scenes: 3 }), {
    code: 'ERR_SDVP_RANGE',
  });
  const busy = path.join(root, 'busy');
  mkdirSync(busy);
  writeFileSync(path.join(busy, 'keep.txt'), 'mine');
  await t.throwsAsync(generateDigitBenchmark({ out: busy, scenes: 20 }), {
    code: 'ERR_SDVP_IO',
    message: /not empty/,
  });
  t.is(readFileSync(path.join(busy, 'keep.txt'), 'utf8'), 'mine');

  const broken = path.join(root, 'broken');
  mkdirSync(path.join(broken, 'qa'), { recursive: true });
  writeFileSync(
    path.join(broken, 'qa', 'test.jsonl'),
    '{"id":"1","task":"qa","images":{"IMAGE":"a.png"},"question":"q","program":"X","answer":"a"}\n{"id":"2","task":"qa"}\n',
  );
  const dataset = openDataset(broken);
  t.deepEqual(dataset.tasks, ['qa']);
  t.throws(() => dataset.records('qa', 'test'), {
    code: 'ERR_SDVP_PARSE',
    message: /test\.jsonl:2: field 'images'/,
  });
  await t.throwsAsync(dataset.image('a.png'), { code: 'ERR_SDVP_IO', message: /a\.png/ });
  t.throws(() => openDataset(path.join(root, 'nowhere')), { code: 'ERR_SDVP_IO' });

  const usage = spawnSync(process.execPath, [cli, 'data', 'digits', '--scenes', 'many'], {
    encoding: 'utf8',
  });
  t.is(usage.status, 2);
  t.regex(usage.stderr, /--out is required|--scenes must be an integer/);
});

test('sdvp run --modules oracle answers a benchmark record in both frameworks', async (t) => {
  const data = await shared;
  const record = openDataset(data).records('digits-qa', 'test')[0];
  const image = path.join(data, record.images.IMAGE);
  for (const [framework, program] of [
    ['visprog', record.program],
    ['viper', record.viperProgram!],
  ] as const) {
    const file = path.join(root, `record.${framework}`);
    writeFileSync(file, program);
    const run = spawnSync(
      process.execPath,
      [cli, 'run', '--framework', framework, file, '--image', image, '--modules', 'oracle', '--json'],
      {
        encoding: 'utf8',
      },
    );
    t.is(run.status, 0, run.stderr);
    const result = JSON.parse(run.stdout);
    t.true(result.ok);
    t.is(
      String(result.result === true ? 'yes' : result.result === false ? 'no' : result.result),
      record.answer,
    );
  }
  const outside = spawnSync(
    process.execPath,
    [
      cli,
      'run',
      path.join(root, 'record.visprog'),
      '--image',
      path.join(findRepoRoot(), 'README.md'),
      '--modules',
      'oracle',
    ],
    {
      encoding: 'utf8',
    },
  );
  t.not(outside.status, 0);
});
