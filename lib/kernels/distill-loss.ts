// distillLoss / distillLossAsync: the public entry points of the fused distillation objective.

import { SdvpError, argError } from '../errors/sdvp-error';
import { loadNative } from '../native/load-native';
import { NativeStatus } from '../native/native-binding';
import type { NativeDistillLossResult } from '../native/native-binding';
import type { DistillLossAsyncOptions, DistillLossResult, DistillLossSpec } from './distill-loss-types';
import { type PreparedDistillLoss, prepareDistillLoss } from './validate-spec';

/** Turns a native status into the public result, or throws the matching coded error. */
function finish(prepared: PreparedDistillLoss, result: NativeDistillLossResult): DistillLossResult {
  switch (result.status) {
    case NativeStatus.ok:
      break;
    case NativeStatus.labelOutOfRange:
      throw new SdvpError(
        'ERR_SDVP_LABEL_RANGE',
        `labels[${result.badRow}] is out of range: ${result.badValue}.`,
        {
          field: `labels[${result.badRow}]`,
        },
      );
    case NativeStatus.topkIndexInvalid:
      throw new SdvpError(
        'ERR_SDVP_TOPK_INDEX',
        `teacher.indices row ${result.badRow} holds an invalid index ${result.badValue}.`,
        {
          field: 'teacher.indices',
        },
      );
    case NativeStatus.cancelled:
      throw new SdvpError('ERR_SDVP_ABORTED', 'distillLossAsync was aborted; its outputs are incomplete.');
    default:
      throw new SdvpError(
        'ERR_SDVP_NATIVE',
        `The native kernel rejected the call (status ${result.status}).`,
      );
  }
  const out: DistillLossResult = {
    loss: result.loss,
    normalizer: result.normalizer,
    validRows: result.validRows,
  };
  if (prepared.grad) out.grad = prepared.grad;
  if (prepared.rowLoss) out.rowLoss = prepared.rowLoss;
  if (prepared.stats) out.stats = prepared.stats;
  return out;
}

/**
 * Computes the fused objective α·CE + β·τ²·D(P_T‖P_S) and its gradient with respect to the student
 * logits in one pass over each row, on every CPU core. Blocks until done; see `distillLossAsync`.
 */
export function distillLoss(spec: DistillLossSpec): DistillLossResult {
  const prepared = prepareDistillLoss(spec);
  return finish(prepared, loadNative().distillLoss(prepared.native));
}

/**
 * The same computation on a worker thread: the event loop keeps running. Aborting `options.signal`
 * stops the kernel at its next chunk of rows and rejects with ERR_SDVP_ABORTED. The caller must not
 * change the spec's arrays until the promise settles.
 */
export async function distillLossAsync(
  spec: DistillLossSpec,
  options: DistillLossAsyncOptions = {},
): Promise<DistillLossResult> {
  if (typeof options !== 'object' || options === null) {
    throw argError('ERR_SDVP_ARG', 'options', 'an object such as { signal }', options);
  }
  const { signal } = options;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new SdvpError('ERR_SDVP_ARG', 'options.signal must be an AbortSignal.', {
      field: 'options.signal',
    });
  }
  const prepared = prepareDistillLoss(spec);
  if (signal?.aborted)
    throw new SdvpError('ERR_SDVP_ABORTED', 'distillLossAsync was aborted before it started.');
  const cancel = new Int32Array(1);
  prepared.native.cancel = cancel;
  const onAbort = () => {
    cancel[0] = 1;
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const result = await loadNative().distillLossAsync(prepared.native);
    return finish(prepared, result);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
