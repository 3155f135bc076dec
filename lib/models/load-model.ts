// loadModel: a TorchScript file (or its bytes) into a Model; an sdvp checkpoint also restores its
// optimizer and step counter.

import { argError } from '../errors/sdvp-error';
import { Model } from './model';
import { toSdvpError, torchBinding } from './torch-runtime';

export interface LoadModelOptions {
  /** `'cpu'` (default), `'cuda'` or `'cuda:N'`. */
  device?: string;
}

/** Checks a device string. */
export function checkDevice(device: unknown, field = 'options.device'): string {
  if (device === undefined) return 'cpu';
  if (typeof device !== 'string' || !/^(cpu|cuda(:\d+)?)$/.test(device)) {
    throw argError('ERR_SDVP_ARG', field, "'cpu', 'cuda' or 'cuda:N'", device);
  }
  return device;
}

/**
 * Loads a TorchScript module — a path or the file's bytes — onto a device. A missing, truncated or
 * corrupted file rejects with ERR_SDVP_MODEL_FILE.
 */
export async function loadModel(source: string | Uint8Array, options: LoadModelOptions = {}): Promise<Model> {
  if (typeof source !== 'string' && !(source instanceof Uint8Array)) {
    throw argError('ERR_SDVP_ARG', 'source', 'a file path or a Uint8Array of a TorchScript file', source);
  }
  if (typeof source === 'string' && source.length === 0)
    throw argError('ERR_SDVP_ARG', 'source', 'a file path', source);
  if (typeof options !== 'object' || options === null)
    throw argError('ERR_SDVP_ARG', 'options', 'an object', options);
  const device = checkDevice(options.device);
  const native = new (torchBinding().TorchModel)();
  try {
    await native.load(source, device);
  } catch (error) {
    throw toSdvpError(error);
  }
  return new Model(native);
}
