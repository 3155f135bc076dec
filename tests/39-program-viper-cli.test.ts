// `sdvp run`: ViperGPT and VisProg programs from files, images decoded with sharp, text and JSON output, exit codes.

import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import sharp from 'sharp';
import { findRepoRoot } from './helpers/corpus';
import { runPython } from './helpers/python3';

const cli = path.join(findRepoRoot(), 'dist', 'lib', 'cli', 'main.js');
const directory = mkdtempSync(path.join(tmpdir(), 'sdvp-run-'));
test.after.always(() => rmSync(directory, { recursive: true, force: true }));

function file(name: string, content: string): string {
  const target = path.join(directory, name);
  writeFileSync(target, content);
  return target;
}

function run(args: string[]): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [cli, 'run', ...args], { encoding: 'utf8' });
}

const imagePath = path.join(directory, 'scene.png');
const rightPath = path.join(directory, 'right.png');
test.before(async () => {
  await sharp({ create: { width: 80, height: 60, channels: 3, background: { r: 200, g: 30, b: 30 } } })
    .png()
    .toFile(imagePath);
  await sharp({
    create: { width: 40, height: 20, channels: 4, background: { r: 0, g: 0, b: 255, alpha: 1 } },
  })
    .png()
    .toFile(rightPath);
});

const PURE = `def execute_command(image):
    scores = {"a": 3, "b": -7, "c": 3}
    ranked = sorted(scores, key=lambda k: scores[k], reverse=True)
    return [ranked, -7 // 2, -7 % 2, round(2.5), f"{1/3:.4f}", image is None]
`;

test('a pure-Python program runs without an image; its result matches CPython', (t) => {
  const source = file('pure.py', PURE);
  const expected = runPython<string>(
    'import json, sys\nnamespace = {}\nexec(json.load(sys.stdin), namespace)\nprint(json.dumps(repr(namespace["execute_command"](None))))',
    PURE,
  );
  const text = run([source]);
  t.is(text.status, 0, text.stderr);
  t.is(text.stderr, '');
  t.is(text.stdout.split('\n')[0], `viper program ${source}: result ${expected}`);
  const json = run(['--json', source]);
  t.is(json.status, 0);
  t.deepEqual(JSON.parse(json.stdout), {
    ok: true,
    result: [['a', 'c', 'b'], -4, 1, 2, '0.3333', true],
    steps: [],
    diagnostics: [],
  });
});

const FIND = `def execute_command(image):
    image_patch = ImagePatch(image)
    cars = image_patch.find("car")
    return cars[0].simple_query("What color is the car?")
`;

test('--image is decoded with sharp; the trace lists each call with the image reference and crop box', (t) => {
  const source = file('find.py', FIND);
  const text = run([source, '--image', imagePath]);
  t.is(text.status, 0, text.stderr);
  t.deepEqual(text.stdout.split('\n'), [
    `viper program ${source}: result 'yes'`,
    'step  line  module        model  value',
    '0     2     ImagePatch    -      image 80x60',
    '1     3     find          yes    [[0,0,40,30],[40,30,80,60]]',
    '2     4     simple_query  yes    "yes"',
    '',
  ]);
  const json = JSON.parse(run(['--json', source, '--image', imagePath]).stdout);
  t.is(json.ok, true);
  t.is(json.result, 'yes');
  t.deepEqual(json.steps[2].inputs, {
    image: { ref: imagePath, box: [0, 0, 50, 40], width: 50, height: 40 },
    question: 'What color is the car?',
  });
  t.deepEqual(Object.keys(json.steps[0]), [
    'stepId',
    'module',
    'output',
    'line',
    'moduleCalled',
    'inputs',
    'value',
    'error',
    'durationMs',
  ]);
});

test('a program that needs the image it was not given fails with a located diagnostic and exit 1', (t) => {
  const source = file('needs-image.py', FIND);
  const result = run([source]);
  t.is(result.status, 1);
  t.is(
    result.stderr,
    `${source}:2:19: error: TypeError: ImagePatch() got None for its image: no image was given to the program (sdvp run --image PATH) [python-error]\n`,
  );
  const json = JSON.parse(run(['--json', source]).stdout);
  t.false(json.ok);
  t.is(json.result, null);
  t.deepEqual(json.diagnostics[0], {
    severity: 'error',
    line: 2,
    column: 19,
    message:
      'TypeError: ImagePatch() got None for its image: no image was given to the program (sdvp run --image PATH)',
    code: 'python-error',
  });
  t.is(json.steps[0].error, json.diagnostics[0].message.replace(/^TypeError: /, ''));
});

test('syntax errors and refused code stop before anything runs', (t) => {
  const unclosed = file('unclosed.py', 'def execute_command(image):\n    x = foo(1,\n    return x\n');
  const syntax = run([unclosed]);
  t.is(syntax.status, 1);
  t.is(syntax.stderr, `${unclosed}:2:12: error: Python syntax error: '(' was never closed [syntax]\n`);
  const escaping = file('escape.py', 'def execute_command(image):\n    import os\n    return os.getcwd()\n');
  const refused = run([escaping]);
  t.is(refused.status, 1);
  t.regex(
    refused.stderr,
    /escape\.py:2:5: error: the import of 'os' is refused: only math can be imported \[forbidden\]/,
  );
});

test('VisProg programs run with stub modules; --right gives LEFT and RIGHT', (t) => {
  const single = file(
    'count.visprog',
    "BOX0=LOC(image=IMAGE,object='cat')\nANSWER0=COUNT(box=BOX0)\nFINAL=RESULT(var=ANSWER0)\n",
  );
  const json = JSON.parse(run(['--json', single, '--image', imagePath]).stdout);
  t.is(json.ok, true);
  t.is(json.result, 1);
  t.deepEqual(json.steps[0].value, [[20, 15, 60, 45]]);
  const pair = file(
    'nlvr.visprog',
    "ANSWER0=VQA(image=LEFT,question='Is there a dog?')\nANSWER1=VQA(image=RIGHT,question='Is there a dog?')\nANSWER2=EVAL(expr='{ANSWER0} and {ANSWER1}')\nFINAL=RESULT(var=ANSWER2)\n",
  );
  const both = JSON.parse(run(['--json', pair, '--image', imagePath, '--right', rightPath]).stdout);
  t.is(both.ok, true);
  t.is(both.result, true);
  t.deepEqual(both.steps[1].inputs.image, { ref: rightPath, box: null, width: 40, height: 20 });
  const missing = run([pair, '--image', imagePath]);
  t.is(missing.status, 1);
  t.regex(missing.stderr, /undefined variable LEFT/);
});

test('--framework overrides detection', (t) => {
  const source = file('ambiguous.txt', 'x = 1\n');
  const viper = JSON.parse(run(['--json', '--framework', 'viper', source]).stdout);
  t.is(viper.ok, true);
  t.is(viper.result, null);
  const visprog = run(['--framework', 'visprog', source]);
  t.is(visprog.status, 1);
});

test('usage errors exit 2 with the usage text; unknown --modules lists what is available', (t) => {
  const source = file('usage.py', PURE);
  const modules = run([source, '--modules', 'blip2']);
  t.is(modules.status, 2);
  t.regex(modules.stderr, /--modules 'blip2' is not available\. Available: 'stub' \(/);
  const right = run([source, '--right', rightPath]);
  t.is(right.status, 2);
  t.regex(right.stderr, /--right is for VisProg NLVR programs/);
  for (const args of [[], [source, source], ['--framework', 'lisp', source], [source, '--frobnicate']]) {
    const result = run(args);
    t.is(result.status, 2, args.join(' '));
    t.regex(result.stderr, /Usage: sdvp run/);
  }
  const help = run(['--help']);
  t.is(help.status, 0);
  t.regex(help.stdout, /--modules NAME {4}the module implementations \(default stub\):\n {20}stub: /);
});

test('unreadable files are I/O errors with their code', (t) => {
  const missing = run([path.join(directory, 'nope.py')]);
  t.is(missing.status, 1);
  t.regex(missing.stderr, /Cannot read the program file .*nope\.py.* \[ERR_SDVP_IO\]/);
  const source = file('image-missing.py', FIND);
  const image = run([source, '--image', path.join(directory, 'nope.png')]);
  t.is(image.status, 1);
  t.regex(image.stderr, /Cannot read the image '.*nope\.png' \(--image\): .* \[ERR_SDVP_IO\]/);
});
