// The build driver's decisions and reports without compiling: reading CMake/ninja/make output, the
// fallback ladder of the install step, the summary, doctor's to-do commands, and `sdvp doctor` itself
// checked against capabilities() and the tools on this machine.

import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import test from 'ava';
import { firstPlan, nextPlan } from '../lib/build/build-addon';
import { defaultBuildOptions } from '../lib/build/build-options';
import { failedPart, failureExcerpt, parseCMakeChoices } from '../lib/build/build-output';
import { type BuildRecord, formatBuildSummary } from '../lib/build/build-record';
import { type AddonState, type Diagnosis, todoList } from '../lib/build/doctor';
import { FIX } from '../lib/build/fix-commands';
import { parsePackageVersion } from '../lib/build/probe-helpers';
import { type Tool, type Toolchain, versionAtLeast } from '../lib/build/toolchain';
import { capabilities } from '../lib/capabilities';
import { SdvpError } from '../lib/errors/sdvp-error';

const root = path.resolve(__dirname, '..', '..');
const cli = path.join(root, 'dist', 'lib', 'cli', 'main.js');

const found = (version: string): Tool => ({ found: true, path: `/usr/bin/${version}`, version });
const absent: Tool = { found: false, path: null, version: null };

function machine(overrides: Partial<Toolchain> = {}): Toolchain {
  return {
    node: { version: 'v20.20.2', napi: '9', abi: '115', headers: '/usr/include/node' },
    compiler: found('12.2.0'),
    make: found('4.3'),
    ninja: absent,
    cmake: { ...found('3.25.1'), usable: true },
    highway: found('1.0.3'),
    libtorch: found('1.13.0'),
    libtorchElsewhere: [],
    nvcc: found('13.0.88'),
    gpus: { devices: [], source: null },
    cmakeJs: found('8.0.0'),
    nodeGyp: found('11.5.0'),
    ...overrides,
  };
}

const fullAddon: AddonState = {
  loaded: true,
  path: '/pkg/build-cmake/Release/sdvp.node',
  error: null,
  capabilities: {
    buildSystem: 'cmake',
    simdTarget: 'AVX3',
    cpuThreads: 2,
    cuda: { built: true, runtimeVersion: 13000, devices: 1 },
    torch: { built: true, version: '1.13.0', cuda: false },
  },
};

test('CMake choices come from the last `-- sdvp:` lines', (t) => {
  const output = [
    '-- sdvp: CUDA kernels OFF (no CUDA compiler found)',
    '-- sdvp: LibTorch runtime ON (1.13.0 at /usr/lib/x86_64-linux-gnu/cmake/Torch)',
    '-- Configuring done',
    '-- sdvp: CUDA kernels ON (architectures 90, nvcc 13.0.88)',
  ].join('\n');
  t.deepEqual(parseCMakeChoices(output), {
    cuda: { on: true, detail: 'architectures 90, nvcc 13.0.88' },
    torch: { on: true, detail: '1.13.0 at /usr/lib/x86_64-linux-gnu/cmake/Torch' },
  });
  t.deepEqual(parseCMakeChoices('-- sdvp: LibTorch runtime OFF (SDVP_TORCH=OFF)\n'), {
    cuda: null,
    torch: { on: false, detail: 'SDVP_TORCH=OFF' },
  });
});

test('a failed build is blamed on the optional part whose target or package failed', (t) => {
  const ninjaTorch =
    'FAILED: native/torch/CMakeFiles/sdvp_torch.dir/train_step.cc.o\n/usr/bin/c++ ... \ntrain_step.cc:12: error: no member';
  const makeCuda =
    'make[2]: *** [CMakeFiles/sdvp_kernels_cuda.dir/build.make:76: CMakeFiles/sdvp_kernels_cuda.dir/native/kernels/cuda/distill_loss_cuda.cu.o] Error 1';
  const cmakeTorch =
    'CMake Error at CMakeLists.txt:80 (message):\n  SDVP_TORCH=ON but find_package(Torch) failed (apt-get install -y libtorch-dev)';
  const loadTorch = 'the built addon does not load: Error: libc10.so: cannot open shared object file';
  const kernels =
    'FAILED: CMakeFiles/sdvp_kernels.dir/native/kernels/cpu/distill_loss_cpu.cc.o\nerror: hwy/highway.h: No such file';
  t.is(failedPart(ninjaTorch), 'torch');
  t.is(failedPart(makeCuda), 'cuda');
  t.is(failedPart(cmakeTorch), 'torch');
  t.is(failedPart(loadTorch), 'torch');
  t.is(failedPart(kernels), null);
  t.regex(failureExcerpt(`noise\n${ninjaTorch}\nmore`), /^FAILED: native\/torch/);
  t.is(failureExcerpt('a\nb\nc', 2), 'b\nc');
  t.is(failureExcerpt(`-- ok\n${cmakeTorch}\n\n-- Configuring incomplete`), cmakeTorch);
  const command = `/usr/bin/c++ ${'-Ifoo '.repeat(200)}-c x.cc`;
  const compile = `FAILED: CMakeFiles/sdvp.dir/native/addon/addon.cc.o\n${command}\n<command-line>: fatal error: ${'x'.repeat(300)}`;
  const excerpt = failureExcerpt(compile).split('\n');
  t.is(excerpt.length, 2);
  t.true(excerpt.every((line) => line.length <= 240));
  // A failure in a file compiled against LibTorch's headers blames LibTorch.
  t.is(
    failedPart(
      'FAILED: CMakeFiles/sdvp.dir/native/addon/torch_model_binding.cc.o\n/usr/include/ATen/core/x.h:3: error: y',
    ),
    'torch',
  );
});

test('the install ladder drops the failing optional part, then falls back to node-gyp', (t) => {
  const options = defaultBuildOptions();
  const toolchain = machine();
  const first = firstPlan(options, toolchain);
  t.deepEqual(first, { backend: 'cmake', torch: 'auto', cuda: 'auto' });
  const bothOn = '-- sdvp: CUDA kernels ON (x)\n-- sdvp: LibTorch runtime ON (y)\n';
  const torchFailed = nextPlan(
    { backend: 'cmake', torch: 'auto', cuda: 'auto' },
    `${bothOn}FAILED: native/torch/CMakeFiles/sdvp_torch.dir/x.cc.o`,
    options,
    toolchain,
  );
  t.like(torchFailed, { backend: 'cmake', torch: 'off', cuda: 'auto' });
  t.deepEqual(torchFailed?.dropped, { part: 'torch', blamed: true });
  // Unattributed failure: CUDA goes first, then LibTorch, then CMake altogether.
  const step1 = nextPlan(
    { backend: 'cmake', torch: 'auto', cuda: 'auto' },
    `${bothOn}error: ?`,
    options,
    toolchain,
  );
  t.like(step1, { torch: 'auto', cuda: 'off', dropped: { part: 'cuda', blamed: false } });
  const step2 = nextPlan({ backend: 'cmake', torch: 'auto', cuda: 'off' }, 'error: ?', options, toolchain);
  t.like(step2, { torch: 'off', cuda: 'off', backend: 'cmake' });
  const step3 = nextPlan({ backend: 'cmake', torch: 'off', cuda: 'off' }, 'error: ?', options, toolchain);
  t.like(step3, { backend: 'node-gyp' });
  t.is(nextPlan({ backend: 'node-gyp', torch: 'off', cuda: 'off' }, 'error: ?', options, toolchain), null);
  // A part demanded with 'on' is never dropped, and node-gyp cannot stand in for it.
  const demanded = { ...options, torch: 'on' as const };
  t.is(
    nextPlan({ backend: 'cmake', torch: 'on', cuda: 'off' }, 'FAILED: sdvp_torch.dir', demanded, toolchain),
    null,
  );
});

test('without CMake the first build is node-gyp, unless LibTorch or CUDA is demanded', (t) => {
  const noCmake = machine({ cmake: { ...absent, usable: false } });
  t.like(firstPlan(defaultBuildOptions(), noCmake), { backend: 'node-gyp', torch: 'off', cuda: 'off' });
  const demanded = firstPlan({ ...defaultBuildOptions(), cuda: 'on' }, noCmake);
  t.true(demanded instanceof SdvpError);
  t.is((demanded as SdvpError).fix, FIX.cmake);
  const oldCmake = machine({ cmake: { ...found('3.10.2'), usable: false } });
  t.like(firstPlan(defaultBuildOptions(), oldCmake), { backend: 'node-gyp' });
});

test('the build summary says what was built and how to add what is missing', (t) => {
  const record: BuildRecord = {
    sdvpVersion: '0.1.0',
    finishedAt: '2026-01-01T00:00:00.000Z',
    trigger: 'install',
    options: defaultBuildOptions(),
    ok: true,
    backend: 'cmake',
    addon: '/pkg/build-cmake/Release/sdvp.node',
    capabilities: null,
    parts: {
      cpu: { built: true, detail: 'Highway 1.0.3, AVX3 on this CPU, 2 threads' },
      cuda: { built: true, detail: 'architectures 90' },
      torch: { built: false, detail: 'find_package(Torch) found no LibTorch', fix: FIX.addTorch },
    },
    attempts: [{ backend: 'cmake', torch: 'auto', cuda: 'auto', ok: true, seconds: 61.4 }],
    seconds: 61.4,
    log: '/pkg/sdvp-build.log',
  };
  const summary = formatBuildSummary(record, '/pkg');
  t.regex(summary, /^sdvp: built the native addon with CMake in 61 s: build-cmake\/Release\/sdvp.node$/m);
  t.regex(
    summary,
    /LibTorch +missing: find_package\(Torch\) found no LibTorch\n +to add it: apt-get install -y libtorch-dev && npx sdvp build --torch on/,
  );
  const failed = formatBuildSummary(
    {
      ...record,
      ok: false,
      addon: null,
      backend: null,
      attempts: [{ ...record.attempts[0], ok: false, error: 'CMake Error at X' }],
    },
    '/pkg',
  );
  t.regex(failed, /^sdvp: no native addon was built/);
  t.regex(failed, /failed attempt \(cmake, torch auto, cuda auto\):\n {4}CMake Error at X/);
});

test('doctor names the command for each missing part', (t) => {
  t.deepEqual(todoList(machine(), fullAddon, null), []);
  const noTorch: AddonState = {
    ...fullAddon,
    capabilities: { ...fullAddon.capabilities!, torch: { built: false, version: null, cuda: false } },
  };
  t.deepEqual(
    todoList(machine(), noTorch, null).map((item) => item.command),
    ['npx sdvp build --torch on'],
  );
  t.deepEqual(
    todoList(machine({ libtorch: absent }), noTorch, null).map((item) => item.command),
    [FIX.addTorch],
  );
  const prefix = '/usr/local/lib/python3.11/dist-packages/torch/share/cmake';
  t.deepEqual(
    todoList(
      machine({ libtorch: absent, libtorchElsewhere: [{ prefix, version: '2.5.1' }] }),
      noTorch,
      null,
    ).map((item) => item.command),
    [`npx sdvp build --torch on --torch-prefix ${prefix}`],
  );
  const notLoaded: AddonState = { loaded: false, path: null, capabilities: null, error: 'no addon' };
  t.deepEqual(
    todoList(machine({ cmake: { ...absent, usable: false }, highway: absent }), notLoaded, null).map(
      (item) => item.command,
    ),
    ['apt-get install -y cmake libhwy-dev && npx sdvp build'],
  );
  const gpus = { devices: [{ name: 'NVIDIA A100', computeCapability: '8.0' }], source: 'nvidia-smi' };
  const record = { options: { ...defaultBuildOptions(), cudaArch: '90' } } as BuildRecord;
  t.deepEqual(
    todoList(machine({ gpus }), fullAddon, record).map((item) => item.command),
    ['npx sdvp build --cuda-arch 90,80'],
  );
  const noCuda: AddonState = {
    ...fullAddon,
    capabilities: { ...fullAddon.capabilities!, cuda: { built: false, runtimeVersion: null, devices: 0 } },
  };
  t.deepEqual(
    todoList(machine(), noCuda, null).map((item) => item.command),
    ['npx sdvp build --cuda on'],
  );
  t.deepEqual(
    todoList(machine({ nvcc: absent }), noCuda, null).map((item) => item.command),
    [null],
  );
});

test('version helpers read CMake config versions and compare dotted versions', (t) => {
  t.is(parsePackageVersion('set(PACKAGE_VERSION "1.13.0")\n'), '1.13.0');
  t.is(parsePackageVersion('set(PACKAGE_VERSION "${X}")'), null);
  t.true(versionAtLeast('3.25.1', '3.18'));
  t.true(versionAtLeast('3.18', '3.18'));
  t.false(versionAtLeast('3.16.3', '3.18'));
  t.true(versionAtLeast('4.0.0-rc1', '3.18'));
});

test('sdvp doctor agrees with capabilities() and with the tools on PATH', (t) => {
  const result = spawnSync(process.execPath, [cli, 'doctor', '--json'], { encoding: 'utf8', cwd: root });
  t.is(result.status, 0, result.stderr);
  const diagnosis = JSON.parse(result.stdout) as Diagnosis;
  const caps = capabilities();
  t.true(diagnosis.addon.loaded);
  t.deepEqual(diagnosis.addon.capabilities?.torch, caps.torch);
  t.is(diagnosis.addon.capabilities?.cuda.built, caps.cuda.built);
  t.is(diagnosis.sdvpVersion, caps.version);
  const cmake = spawnSync('cmake', ['--version'], { encoding: 'utf8' });
  t.is(diagnosis.toolchain.cmake.found, cmake.status === 0);
  if (cmake.status === 0) t.true(cmake.stdout.includes(diagnosis.toolchain.cmake.version ?? '?'));
  t.is(diagnosis.toolchain.node.version, process.version);
  // A LibTorch runtime in the addon implies doctor found a LibTorch CMake could use, of the same version.
  if (caps.torch.built && caps.buildSystem === 'cmake' && diagnosis.toolchain.libtorch.found) {
    t.is(
      diagnosis.toolchain.libtorch.version?.split('.').slice(0, 2).join('.'),
      caps.torch.version?.split('.').slice(0, 2).join('.'),
    );
  }
  t.is(
    diagnosis.todo.some((item) => /LibTorch/.test(item.what)),
    !caps.torch.built,
  );
  const text = spawnSync(process.execPath, [cli, 'doctor'], { encoding: 'utf8', cwd: root });
  t.regex(text.stdout, /^Machine$[\s\S]*^ {2}CMake {9}/m);
  t.regex(text.stdout, /^Addon {2}/m);
  t.regex(text.stdout, /^To do$/m);
});

test('sdvp doctor exits 1 and names the rebuild command when the addon does not load', (t) => {
  const result = spawnSync(process.execPath, [cli, 'doctor'], {
    encoding: 'utf8',
    cwd: root,
    env: { ...process.env, SDVP_NATIVE: path.join(root, 'no-such-dir', 'sdvp.node') },
  });
  t.is(result.status, 1);
  t.regex(result.stdout, /Addon {2}does not load/);
  t.regex(result.stdout, /npx sdvp build/);
});
