// `sdvp decompose`: table and JSON output, stdin, JSON Lines records, diagnostics on stderr and exit codes.

import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { findRepoRoot } from './helpers/corpus';

const cli = path.join(findRepoRoot(), 'dist', 'lib', 'cli', 'main.js');
const directory = mkdtempSync(path.join(tmpdir(), 'sdvp-cli-'));
test.after.always(() => rmSync(directory, { recursive: true, force: true }));

function file(name: string, content: string): string {
  const target = path.join(directory, name);
  writeFileSync(target, content);
  return target;
}

function decompose(args: string[], input?: string): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [cli, 'decompose', ...args], { encoding: 'utf8', input });
}

const VISPROG = "BOX0=LOC(image=IMAGE,object='cat')\nANSWER0=COUNT(box=BOX0)\nFINAL=RESULT(var=ANSWER0)\n";
const VIPER = 'def execute_command(image):\n    patch = ImagePatch(image)\n    return patch.exists("cat")\n';

test('the default output is a table of the steps, and a clean program exits 0 with nothing on stderr', (t) => {
  const result = decompose([file('clean.visprog', VISPROG)]);
  t.is(result.status, 0);
  t.is(result.stderr, '');
  t.is(
    result.stdout,
    [
      'visprog program: 3 steps, 0 errors, 0 warnings',
      'id  line:col  output   module  sub-task   distil  deps  control  arguments',
      " 0  1:1       BOX0     LOC     grounding  yes     -     -        image=IMAGE, object='cat'",
      ' 1  2:1       ANSWER0  COUNT   logic      -       0     -        box=BOX0',
      ' 2  3:1       FINAL    RESULT  logic      -       1     -        var=ANSWER0',
      '',
      '',
    ].join('\n'),
  );
});

test('--json prints the stable schema; ViperGPT is detected, with receivers and control', (t) => {
  const result = decompose(['--json', file('program.py', VIPER)]);
  t.is(result.status, 0);
  t.deepEqual(JSON.parse(result.stdout), {
    framework: 'viper',
    steps: [
      {
        id: 0,
        output: 'patch',
        module: 'ImagePatch',
        args: { image: { kind: 'variable', name: 'image' } },
        deps: [],
        line: 2,
        column: 13,
        subTask: 'image-op',
        distillable: false,
        control: [],
        receiver: null,
      },
      {
        id: 1,
        output: null,
        module: 'exists',
        args: { object_name: { kind: 'literal', value: 'cat' } },
        deps: [0],
        line: 3,
        column: 18,
        subTask: 'grounding',
        distillable: true,
        control: [],
        receiver: { kind: 'variable', name: 'patch' },
      },
    ],
    diagnostics: [],
  });
});

test('a program with errors exits 1 and reports file:line:column diagnostics on stderr', (t) => {
  const program = file(
    'broken.visprog',
    "A=VQA(image=IMAGE,question='q')\nB=FOO(x=A)\nC=RESULT(var=MISSING)\n",
  );
  const result = decompose([program]);
  t.is(result.status, 1);
  t.deepEqual(result.stderr.trimEnd().split('\n'), [
    `${program}:2:1: warning: B (the output of FOO) is never used [unused-variable]`,
    `${program}:2:3: error: unknown module FOO [unknown-module]`,
    `${program}:3:14: error: undefined variable MISSING [undefined-variable]`,
  ]);
  const json = JSON.parse(decompose(['--json', program]).stdout);
  t.deepEqual(json.diagnostics[1], {
    severity: 'error',
    line: 2,
    column: 3,
    message: 'unknown module FOO',
    code: 'unknown-module',
  });
});

test('warnings alone exit 0', (t) => {
  const result = decompose([
    file('warn.visprog', "A=VQA(image=IMAGE,question='q')\nB=VQA(image=IMAGE,question='r')\n"),
  ]);
  t.is(result.status, 0);
  t.regex(result.stderr, /warning: A \(the output of VQA\) is never used/);
});

test('- reads the program from stdin', (t) => {
  const result = decompose(['--json', '-'], VISPROG);
  t.is(result.status, 0);
  t.is(JSON.parse(result.stdout).steps.length, 3);
  const table = decompose(['-'], VIPER);
  t.regex(table.stdout, /^viper program: 2 steps/);
  t.regex(table.stdout, /patch\.exists/);
});

test('--framework overrides detection', (t) => {
  const result = decompose(['--json', '--framework', 'viper', '-'], VISPROG);
  const json = JSON.parse(result.stdout);
  // VisProg lines are valid Python assignments, but read as Python their names are undefined.
  t.is(json.framework, 'viper');
  t.is(json.steps.length, 0);
  t.is(result.status, 1);
  t.regex(result.stderr, /undefined variable IMAGE/);
  t.is(JSON.parse(decompose(['--json', '--framework=visprog', '-'], VISPROG).stdout).framework, 'visprog');
});

test('JSON Lines input: one output object per record, bad records reported, exit 1 if any record fails', (t) => {
  const records = [
    JSON.stringify({ framework: 'visprog', question: 'How many cats?', program: VISPROG }),
    '',
    JSON.stringify({ program: VIPER }),
    'not json',
    JSON.stringify({ question: 'no program here' }),
    JSON.stringify({ program: "X=LOC(image=IMAGE,object='a'" }),
  ].join('\n');
  const input = file('records.jsonl', records);
  const result = decompose(['--json', input]);
  t.is(result.status, 1);
  const lines = result.stdout
    .trimEnd()
    .split('\n')
    .map((line) => JSON.parse(line));
  t.deepEqual(
    lines.map((line) => [
      line.framework,
      line.steps.length,
      line.diagnostics.map((d: { code: string }) => d.code),
    ]),
    [
      ['visprog', 3, []],
      ['viper', 2, []],
      [null, 0, ['syntax']],
      [null, 0, ['syntax']],
      ['visprog', 0, ['syntax']],
    ],
  );
  t.regex(
    result.stderr,
    new RegExp(`${input.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}#4: error: not valid JSON`),
  );
  t.regex(result.stderr, /#5: error: the record has no string 'program' field/);
  t.regex(result.stderr, /#6:1:29: error: expected ',' or '\)'/);
  t.regex(result.stderr, /5 programs: 3 with errors, 0 with warnings only\n$/);
  const table = decompose([input]);
  t.regex(table.stdout, /^record 1 \(.*#1\): visprog, 3 steps, 0 errors, 0 warnings - How many cats\?$/m);
  t.regex(table.stdout, /^record 2 \(.*#3\): viper, 2 steps/m);
});

test('usage errors exit 2 with the usage text; --help exits 0', (t) => {
  for (const args of [
    [],
    ['--bogus', 'x'],
    ['--framework', 'python', 'x'],
    ['a', 'b'],
    ['--slot', 'novalue', 'x'],
    ['--framework'],
  ]) {
    const result = decompose(args);
    t.is(result.status, 2, args.join(' '));
    t.regex(result.stderr, /Usage: sdvp decompose/);
  }
  const help = decompose(['--help']);
  t.is(help.status, 0);
  t.regex(help.stdout, /^Usage: sdvp decompose \[--framework visprog\|viper\] \[--json\]/);
});

test('a missing file is an I/O error with its code', (t) => {
  const result = decompose([path.join(directory, 'does-not-exist.txt')]);
  t.is(result.status, 1);
  t.regex(result.stderr, /Cannot read the program file .*does-not-exist\.txt.*\[ERR_SDVP_IO\]/);
});
