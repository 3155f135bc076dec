// The packed file list (`npm pack --dry-run`): what a consumer needs to import sdvp and build its addon,
// and nothing else — no tests, no build folders, no source maps, no development scripts.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'ava';

const root = path.resolve(__dirname, '..', '..');

/** Every packed path must match one of these. */
const ALLOWED: RegExp[] = [
  /^package\.json$/,
  /^README\.md$/,
  /^docs\/[\w-]+\.md$/,
  /^dist\/lib\/([\w-]+\/)*[\w-]+\.(js|d\.ts)$/,
  /^dist\/lib\/index\.mjs$/,
  /^CMakeLists\.txt$/,
  /^binding\.gyp$/,
  /^scripts\/install\.js$/,
  /^native\/addon\/[\w-]+\.(cc|h)$/,
  /^native\/kernels\/[\w-]+\.h$/,
  /^native\/kernels\/cpu\/[\w-]+\.(cc|h)$/,
  /^native\/kernels\/cuda\/[\w-]+\.(cu|cuh|h)$/,
  /^native\/torch\/[\w-]+\.(cc|h)$/,
  /^native\/torch\/CMakeLists\.txt$/,
  /^bench\/torch_distill_loss\.py$/,
];

/** These must be packed: the entries, the CLI, the install step and both build descriptions. */
const REQUIRED = [
  'package.json',
  'README.md',
  'dist/lib/index.js',
  'dist/lib/index.mjs',
  'dist/lib/index.d.ts',
  'dist/lib/cli/main.js',
  'dist/lib/build/install-hook.js',
  'scripts/install.js',
  'CMakeLists.txt',
  'binding.gyp',
  'native/torch/CMakeLists.txt',
];

let packed: string[] = [];

test.before(() => {
  // --ignore-scripts: prepack would recompile the TypeScript, which the test setup has just done.
  const result = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.status !== 0) throw new Error(`npm pack --dry-run failed: ${result.stderr}`);
  const [pack] = JSON.parse(result.stdout) as { files: { path: string }[] }[];
  packed = pack.files.map((file) => file.path).sort();
});

test('every packed file is on the allow-list', (t) => {
  const unexpected = packed.filter((file) => !ALLOWED.some((pattern) => pattern.test(file)));
  t.deepEqual(unexpected, [], `files a consumer does not need: ${unexpected.join(', ')}`);
});

test('the files a consumer needs are packed', (t) => {
  const absent = REQUIRED.filter((file) => !packed.includes(file));
  t.deepEqual(absent, []);
});

test('no tests, build outputs, source maps or development scripts are packed', (t) => {
  const forbidden = packed.filter((file) =>
    /(^|\/)tests?\/|^build|^node_modules\/|\.map$|\.node$|^scripts\/(?!install\.js$)|^dist\/(tests|bench)\//.test(
      file,
    ),
  );
  t.deepEqual(forbidden, []);
});

test('every source the CMake and node-gyp builds name is packed', (t) => {
  // binding.gyp is JSON with '#' comment lines; the CMake files list sources by relative path.
  const gyp = JSON.parse(
    fs
      .readFileSync(path.join(root, 'binding.gyp'), 'utf8')
      .split('\n')
      .filter((line) => !line.trim().startsWith('#'))
      .join('\n'),
  ) as { targets: { sources: string[] }[] };
  const sources = new Set(gyp.targets.flatMap((target) => target.sources));
  const topCMake = fs.readFileSync(path.join(root, 'CMakeLists.txt'), 'utf8');
  for (const match of topCMake.matchAll(/native\/[\w/-]+\.(cc|cu)\b/g)) {
    if (!match[0].includes('/tests/')) sources.add(match[0]);
  }
  const torchCMake = fs.readFileSync(path.join(root, 'native', 'torch', 'CMakeLists.txt'), 'utf8');
  const torchList = /set\(SDVP_TORCH_SOURCES([^)]*)\)/.exec(torchCMake)?.[1] ?? '';
  for (const name of torchList.split(/\s+/).filter(Boolean)) sources.add(`native/torch/${name}`);
  t.true(sources.size > 20, `found only ${sources.size} sources`);
  const absent = [...sources].filter((file) => !packed.includes(file));
  t.deepEqual(absent, []);
  // Every header next to a packed source goes with it (the sources include them).
  const headers = [
    'native/addon',
    'native/kernels',
    'native/kernels/cpu',
    'native/kernels/cuda',
    'native/torch',
  ].flatMap((dir) =>
    fs
      .readdirSync(path.join(root, dir))
      .filter((name) => /\.(h|cuh)$/.test(name))
      .map((name) => `${dir}/${name}`),
  );
  t.deepEqual(
    headers.filter((file) => !packed.includes(file)),
    [],
  );
});
