// A build without LibTorch: every model API throws ERR_SDVP_NO_TORCH saying how to get it. The binding
// is replaced by one without the torch part (as a node-gyp or SDVP_TORCH=OFF build exports).

import test from 'ava';
import { SdvpError } from '../lib/errors/sdvp-error';
import {
  createModel,
  getThreads,
  loadModel,
  setGraphOptimization,
  setThreads,
  torchAvailable,
} from '../lib/models';
import { loadNative } from '../lib/native/load-native';
import type { NativeBinding } from '../lib/native/native-binding';

test.before(() => {
  const withoutTorch = {
    capabilities: () => ({ torch: { built: false, version: null, cuda: false } }),
  } as unknown as NativeBinding;
  loadNative({ native: withoutTorch });
});

test('every model API throws ERR_SDVP_NO_TORCH with the command that fixes it', async (t) => {
  t.false(torchAvailable());
  for (const attempt of [
    () => loadModel('/tmp/model.pt'),
    () => loadModel(new Uint8Array(4)),
    () => createModel('tiny-vlm'),
    () => createModel('cnn-classifier', { labels: ['a', 'b'] }),
  ]) {
    const error = await t.throwsAsync(attempt(), { instanceOf: SdvpError });
    t.is(error?.code, 'ERR_SDVP_NO_TORCH');
    t.regex(error?.message ?? '', /libtorch-dev/);
    t.is(error?.fix, 'apt-get install -y libtorch-dev && npx sdvp build --torch on');
  }
  for (const attempt of [() => setThreads(2), () => getThreads(), () => setGraphOptimization(true)]) {
    t.throws(attempt, { code: 'ERR_SDVP_NO_TORCH' } as never);
  }
});

test('arguments are still checked first', async (t) => {
  await t.throwsAsync(createModel('resnet' as never), { code: 'ERR_SDVP_OPTION' } as never);
  await t.throwsAsync(createModel('tiny-vlm', { dim: -1 }), { code: 'ERR_SDVP_RANGE' } as never);
  t.throws(() => setThreads(0), { code: 'ERR_SDVP_RANGE' } as never);
});
