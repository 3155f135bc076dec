// `sdvp build`'s options and the fix commands: bad flags and SDVP_* values give ERR_SDVP_USAGE naming the
// flag; every fix command sdvp prints is a command the CLI accepts, run from a consumer project.

import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import test from 'ava';
import { buildOptionsFromEnv, parseCudaArch, parsePartSwitch } from '../lib/build/build-options';
import { FIX, REBUILD, shellQuote } from '../lib/build/fix-commands';
import { buildArguments } from '../lib/cli/build-command';
import { SdvpError } from '../lib/errors/sdvp-error';

const root = path.resolve(__dirname, '..', '..');
const cli = path.join(root, 'dist', 'lib', 'cli', 'main.js');

test('part switches read auto / on / off in any case', (t) => {
  t.is(parsePartSwitch('AUTO', 'SDVP_TORCH'), 'auto');
  t.is(parsePartSwitch('On', '--torch'), 'on');
  t.is(parsePartSwitch('OFF', '--cuda'), 'off');
  t.is(parsePartSwitch('0', '--cuda'), 'off');
  const error = t.throws(() => parsePartSwitch('maybe', '--torch'), { instanceOf: SdvpError });
  t.is(error?.code, 'ERR_SDVP_USAGE');
  t.is(error?.field, '--torch');
  t.regex(error?.message ?? '', /'auto', 'on' or 'off', but received 'maybe'/);
});

test('CUDA architectures accept lists and CMake keywords, and nothing else', (t) => {
  t.is(parseCudaArch('90', '--cuda-arch'), '90');
  t.is(parseCudaArch('80,90', '--cuda-arch'), '80;90');
  t.is(parseCudaArch('90a', '--cuda-arch'), '90a');
  t.is(parseCudaArch('native', '--cuda-arch'), 'native');
  for (const bad of ['sm_90', '9', '90;', 'all;90', '']) {
    t.throws(() => parseCudaArch(bad, '--cuda-arch'), { code: 'ERR_SDVP_USAGE' } as never, bad);
  }
});

test('the environment sets the install options, and flags override it', (t) => {
  const env = {
    SDVP_TORCH: 'OFF',
    SDVP_CUDA: 'on',
    SDVP_CUDA_ARCH: '80',
    SDVP_CMAKE_FLAGS: ' --CDX=1  --CDY=2 ',
  };
  const fromEnv = buildOptionsFromEnv(env);
  t.like(fromEnv, {
    torch: 'off',
    cuda: 'on',
    cudaArch: '80',
    cmakeFlags: ['--CDX=1', '--CDY=2'],
    tests: false,
  });
  const parsed = buildArguments(['--torch', 'on', '--cuda=auto', '--cuda-arch', '90', '--clean'], env);
  if (parsed === 'help') return t.fail();
  t.like(parsed.options, { torch: 'on', cuda: 'auto', cudaArch: '90', clean: true });
  t.throws(() => buildOptionsFromEnv({ SDVP_CUDA: 'yes please' }), { code: 'ERR_SDVP_USAGE' } as never);
  t.throws(() => buildOptionsFromEnv({ SDVP_TORCH_PREFIX: path.join(os.tmpdir(), 'no-such-libtorch') }), {
    code: 'ERR_SDVP_USAGE',
  } as never);
});

test('bad build flags are usage errors that name the flag', (t) => {
  for (const [argv, field] of [
    [['--torch', 'yes please'], '--torch'],
    [['--cuda'], '--cuda'],
    [['--cuda-arch', 'hopper'], '--cuda-arch'],
    [['--torch-prefix', '/no/such/dir'], '--torch-prefix'],
    [['--gpu'], '--gpu'],
    [['now'], 'argv'],
  ] as [string[], string][]) {
    const error = t.throws(() => buildArguments(argv, {}), { instanceOf: SdvpError }, argv.join(' '));
    t.is(error?.code, 'ERR_SDVP_USAGE');
    t.is(error?.field, field);
  }
});

test('sdvp build rejects a bad flag before building anything', (t) => {
  const result = spawnSync(process.execPath, [cli, 'build', '--torch', 'sometimes'], { encoding: 'utf8' });
  t.is(result.status, 2);
  t.regex(result.stderr, /--torch must be 'auto', 'on' or 'off', but received 'sometimes'.*ERR_SDVP_USAGE/);
  t.notRegex(result.stderr, /building the native addon/);
});

test('every fix command is `npx sdvp build` with flags the CLI accepts, after optional apt-get', (t) => {
  const commands = [
    FIX.rebuild,
    FIX.addTorch,
    FIX.addCuda,
    FIX.compiler,
    FIX.cmake,
    FIX.highway,
    FIX.everything,
    FIX.torchPrefix(root),
  ];
  for (const command of commands) {
    const match = /^(?:apt-get install -y [a-z0-9+ -]+ && )?npx sdvp build(.*)$/.exec(command);
    t.truthy(match, command);
    const argv = (match?.[1] ?? '').split(' ').filter(Boolean);
    t.notThrows(() => buildArguments(argv, {}), command);
  }
  t.is(REBUILD, 'npx sdvp build');
  t.is(shellQuote('/opt/lib torch'), "'/opt/lib torch'");
  t.is(
    shellQuote('/usr/lib/python3/dist-packages/torch/share/cmake'),
    '/usr/lib/python3/dist-packages/torch/share/cmake',
  );
});

test('sdvp --help lists build and doctor', (t) => {
  const result = spawnSync(process.execPath, [cli, '--help'], { encoding: 'utf8' });
  t.is(result.status, 0);
  t.regex(result.stdout, /^ {2}build /m);
  t.regex(result.stdout, /^ {2}doctor /m);
  const help = spawnSync(process.execPath, [cli, 'build', '--help'], { encoding: 'utf8' });
  t.is(help.status, 0);
  t.regex(help.stdout, /--torch MODE[\s\S]*--cuda MODE[\s\S]*--cuda-arch LIST[\s\S]*--torch-prefix DIR/);
});
