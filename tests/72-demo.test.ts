// `sdvp demo` end to end at a tiny scale (60 scenes, 2% of every training length): every system of the table
// is evaluated on both frameworks, the report files exist and parse, and a second run reuses every phase.
// The figures of so short a run mean nothing; the full-scale table is in the README.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import sharp from 'sharp';
import { findRepoRoot } from './helpers/corpus';

const cli = path.join(findRepoRoot(), 'dist', 'lib', 'cli', 'main.js');

interface ReportJson {
  table: { system: string; framework: string; accuracy: Record<string, number> }[];
  reused: string[];
  timings: Record<string, number>;
  seed: number;
}

function demo(args: string[]) {
  return spawnSync(process.execPath, [cli, 'demo', ...args], {
    encoding: 'utf8',
    env: { ...process.env, SDVP_THREADS: '1' },
  });
}

test('a tiny demo writes the whole table, its report and charts; a second run reuses every phase', async (t) => {
  const out = mkdtempSync(path.join(tmpdir(), 'sdvp-demo-test-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const args = ['--scenes', '60', '--scale', '0.02', '--seed', '3', '--out', out];
  const first = demo(args);
  t.is(first.status, 0, first.stderr);
  t.regex(first.stdout, /\| VProg \+ SDVP without anti-forgetting \|/);
  t.regex(first.stdout, /\| ViperGPT \+ SDVP \|/);

  const report = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8')) as ReportJson;
  t.is(report.seed, 3);
  t.deepEqual(
    report.table.map((row) => `${row.framework}/${row.system}`),
    [
      'visprog/untuned',
      'visprog/teachers',
      'visprog/sdvp',
      'visprog/sdvp-no-af',
      'visprog/sdvp-joint',
      'viper/untuned',
      'viper/teachers',
      'viper/sdvp',
    ],
  );
  for (const row of report.table) {
    t.deepEqual(Object.keys(row.accuracy).sort(), ['colors-qa', 'digits-pairs', 'digits-qa']);
    for (const value of Object.values(row.accuracy)) t.true(value >= 0 && value <= 1);
  }
  t.deepEqual(report.reused, []);
  t.true(readFileSync(path.join(out, 'report.md'), 'utf8').includes('## Sub-modules, stage by stage'));
  for (const chart of ['accuracy.png', 'submodules.png', 'loss.png']) {
    const metadata = await sharp(path.join(out, chart)).metadata();
    t.is(metadata.format, 'png', chart);
    t.true((metadata.width ?? 0) > 100, chart);
  }
  t.true(existsSync(path.join(out, 'runs', 'sdvp', 'report.json')));

  const second = demo(args);
  t.is(second.status, 0, second.stderr);
  const again = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8')) as ReportJson;
  t.deepEqual(again.table, report.table);
  t.deepEqual([...again.reused].sort(), Object.keys(report.timings).sort());
  t.deepEqual(again.timings, report.timings); // reused phases keep the time they took when computed
});

test('bad demo options are usage errors that name the option', (t) => {
  for (const [args, option] of [
    [['--scale', 'nope'], '--scale'],
    [['--scale', '0'], '--scale'],
    [['--scenes', '5'], '--scenes'],
    [['--seed', '-1'], '--seed'],
    [['--fast'], 'fast'],
  ] as [string[], string][]) {
    const result = demo(args);
    t.is(result.status, 2, args.join(' '));
    t.true(result.stderr.includes(option), `${args.join(' ')}: ${result.stderr}`);
    t.true(result.stderr.includes('ERR_SDVP_USAGE'), args.join(' '));
  }
});
