// The package as users load it: ESM import and CommonJS require by name, shipped declarations,
// capabilities(), and the loader's one error listing what it tried.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'ava';

const root = path.resolve(__dirname, '..', '..');

function node(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', env: { ...process.env, ...env } });
}

test('ESM import by package name gives the same functions as require', (t) => {
  const script = [
    "import { distillLoss, capabilities, SdvpError } from 'sdvp';",
    "import { createRequire } from 'node:module';",
    "const cjs = createRequire(import.meta.url)('sdvp');",
    'if (cjs.distillLoss !== distillLoss || cjs.SdvpError !== SdvpError) process.exit(3);',
    'const r = distillLoss({ student: new Float32Array([1, 2, 3]), rows: 1, vocab: 3, labels: new Int32Array([2]) });',
    'console.log(JSON.stringify({ loss: r.loss, simd: capabilities().simdTarget }));',
  ].join('\n');
  const result = node(['--input-type=module', '-e', script]);
  t.is(result.status, 0, result.stderr);
  const out = JSON.parse(result.stdout) as { loss: number; simd: string };
  const expected = Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3)) - 3;
  t.true(Math.abs(out.loss - expected) < 1e-6);
  t.true(out.simd.length > 0);
});

test('type declarations ship with the build', (t) => {
  const declarations = fs.readFileSync(path.join(root, 'dist', 'lib', 'index.d.ts'), 'utf8');
  t.regex(declarations, /kernels/);
  const kernelTypes = fs.readFileSync(path.join(root, 'dist', 'lib', 'kernels', 'distill-loss.d.ts'), 'utf8');
  t.regex(kernelTypes, /export declare function distillLoss\(spec: DistillLossSpec\): DistillLossResult/);
});

test('capabilities() reports the build', (t) => {
  const { capabilities } = require('../lib/index') as typeof import('../lib/index');
  const caps = capabilities();
  t.true(['cmake', 'node-gyp'].includes(caps.buildSystem));
  t.regex(caps.simdTarget, /^[A-Z0-9_]+$/);
  t.true(caps.cpuThreads >= 1);
  t.is(typeof caps.cuda.built, 'boolean');
  t.is(typeof caps.torch.built, 'boolean');
  t.regex(caps.version, /^\d+\.\d+\.\d+/);
});

test('an addon that cannot load gives one coded error listing the path and the fixes', (t) => {
  const missing = path.join(root, 'no-such-dir', 'sdvp.node');
  const script =
    "try { require('./dist/lib/index.js').capabilities(); } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }";
  const result = node(['-e', script], { SDVP_NATIVE: missing });
  t.is(result.status, 0, result.stderr);
  const error = JSON.parse(result.stdout) as { code: string; message: string };
  t.is(error.code, 'ERR_SDVP_NATIVE_LOAD');
  t.true(error.message.includes(missing));
  t.regex(error.message, /npx sdvp build /);
  t.regex(error.message, /apt-get install -y g\+\+ make cmake libhwy-dev libtorch-dev && npx sdvp build/);
  t.regex(error.message, /npx sdvp doctor/);
});
