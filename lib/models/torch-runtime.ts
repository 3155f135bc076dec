// Access to the addon's LibTorch runtime, with ERR_SDVP_NO_TORCH when the build lacks it, and the
// process-wide runtime settings (threads, graph optimisation).

import { FIX } from '../build/fix-commands';
import { SdvpError, argError } from '../errors/sdvp-error';
import { loadNative } from '../native/load-native';
import type { NativeTorchBinding } from '../native/native-torch-binding';

/** The LibTorch part of the addon; throws ERR_SDVP_NO_TORCH when the addon was built without it. */
export function torchBinding(): NativeTorchBinding {
  const binding = loadNative() as unknown as Partial<NativeTorchBinding>;
  if (typeof binding.TorchModel !== 'function' || typeof binding.torchSetThreads !== 'function') {
    throw new SdvpError(
      'ERR_SDVP_NO_TORCH',
      'This sdvp build has no LibTorch runtime, so models cannot be loaded, created or trained. ' +
        `Install LibTorch and rebuild the addon: ${FIX.addTorch} (CMake finds LibTorch with find_package(Torch); ` +
        'for a LibTorch elsewhere add --torch-prefix DIR; npx sdvp doctor shows what this machine has).',
      { fix: FIX.addTorch },
    );
  }
  return binding as NativeTorchBinding;
}

/** Whether this build can run models. */
export function torchAvailable(): boolean {
  try {
    torchBinding();
    return true;
  } catch {
    return false;
  }
}

/** Converts an error from the addon (an Error with an ERR_SDVP_* code) into an SdvpError. */
export function toSdvpError(error: unknown): unknown {
  if (error instanceof SdvpError) return error;
  if (error instanceof Error) {
    const code = (error as Error & { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('ERR_SDVP_')) {
      return new SdvpError(code as SdvpError['code'], error.message, { cause: error });
    }
  }
  return error;
}

/**
 * Sets the intra-op threads LibTorch (and the fused objective) use for model runs that follow, in this
 * process. `threads` ≥ 1.
 */
export function setThreads(threads: number): void {
  if (typeof threads !== 'number' || !Number.isInteger(threads) || threads < 1 || threads > 1024) {
    throw argError(
      typeof threads === 'number' ? 'ERR_SDVP_RANGE' : 'ERR_SDVP_ARG',
      'threads',
      'an integer in [1, 1024]',
      threads,
    );
  }
  torchBinding().torchSetThreads(threads);
}

/** The intra-op threads model runs use. */
export function getThreads(): number {
  return torchBinding().torchThreads();
}

/**
 * Turns TorchScript's optimising graph executor on or off for later runs (default off). Off, a method
 * gives the same numbers on every run, so a run resumed from a checkpoint in a new process repeats the
 * original's next step exactly; on, large graphs may run faster after their first runs.
 */
export function setGraphOptimization(enabled: boolean): void {
  if (typeof enabled !== 'boolean') throw argError('ERR_SDVP_ARG', 'enabled', 'a boolean', enabled);
  torchBinding().torchSetGraphOptimization(enabled);
}

/**
 * The LibTorch thread count commands use: $SDVP_THREADS when set (a positive integer), else every core.
 * On a machine other work keeps busy, one thread avoids OpenMP teams waiting on descheduled members.
 */
export function defaultThreads(): number {
  const fromEnvironment = Number(process.env.SDVP_THREADS);
  if (Number.isSafeInteger(fromEnvironment) && fromEnvironment > 0) return fromEnvironment;
  return require('node:os').availableParallelism();
}
