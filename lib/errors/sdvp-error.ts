// The one error class sdvp throws: every failure carries a stable `code`, and argument errors name the field.

/** Stable error codes. Tools match on these, never on message text. */
export type SdvpErrorCode =
  | 'ERR_SDVP_ARG' // an argument has the wrong type or is missing
  | 'ERR_SDVP_SHAPE' // array lengths or dimensions disagree
  | 'ERR_SDVP_RANGE' // a number is outside its allowed range
  | 'ERR_SDVP_OPTION' // an option value is not one of the allowed ones, or options conflict
  | 'ERR_SDVP_LABEL_RANGE' // a hard label is outside [0, vocab) and is not the ignore index
  | 'ERR_SDVP_TOPK_INDEX' // a top-k teacher index is outside [0, vocab) or repeated in its row
  | 'ERR_SDVP_ABORTED' // an AbortSignal cancelled the operation
  | 'ERR_SDVP_NATIVE_LOAD' // the compiled addon could not be loaded
  | 'ERR_SDVP_NATIVE' // native code reported an unexpected failure
  | 'ERR_SDVP_NO_CUDA' // an API needs CUDA, which this build lacks
  | 'ERR_SDVP_NO_TORCH' // an API needs LibTorch, which this build lacks
  | 'ERR_SDVP_TORCH' // LibTorch raised an error
  | 'ERR_SDVP_MODEL_FILE' // a model file is missing, truncated or not TorchScript
  | 'ERR_SDVP_MODEL_METHOD' // a model lacks the method asked for
  | 'ERR_SDVP_NAN_LOSS' // a training step produced a NaN or infinite loss
  | 'ERR_SDVP_DISPOSED' // a disposed object was used
  | 'ERR_SDVP_IO' // a file could not be read or written
  | 'ERR_SDVP_PARSE' // input text could not be parsed
  | 'ERR_SDVP_NO_GLOO' // the distributed backend 'gloo' is not in this build
  | 'ERR_SDVP_NO_NCCL' // the distributed backend 'nccl' needs a LibTorch built with NCCL
  | 'ERR_SDVP_DIST_PORT' // rank 0 cannot listen on the rendezvous port (it is in use)
  | 'ERR_SDVP_DIST_CONFIG' // the ranks of a group disagree (world size, backend, fingerprint, model)
  | 'ERR_SDVP_DIST_TIMEOUT' // ranks did not arrive, or a collective ran out of time, with no peer to blame
  | 'ERR_SDVP_DIST_PEER' // a collective failed because of another rank (named in the message)
  | 'ERR_SDVP_DIST_WORKER' // a launched worker process failed
  | 'ERR_SDVP_TEACHER' // a teacher failed, answered malformed output, or the wrong number of outputs
  | 'ERR_SDVP_STORE' // a label store is not an sdvp store, is corrupt, or holds stale labels
  | 'ERR_SDVP_CONFIG' // a run configuration is invalid or does not match the run it resumes
  | 'ERR_SDVP_USAGE'; // a CLI command was called wrongly

export interface SdvpErrorDetails {
  /** The parameter or field at fault, as a dotted path (`teacher.indices`). */
  field?: string;
  /** What was expected, in words. */
  expected?: string;
  /** What was received, in words. */
  received?: string;
  /** A shell command that fixes the problem, when there is one. */
  fix?: string;
  cause?: unknown;
}

export class SdvpError extends Error {
  readonly code: SdvpErrorCode;
  readonly field?: string;
  readonly expected?: string;
  readonly received?: string;
  readonly fix?: string;

  constructor(code: SdvpErrorCode, message: string, details: SdvpErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'SdvpError';
    this.code = code;
    this.field = details.field;
    this.expected = details.expected;
    this.received = details.received;
    this.fix = details.fix;
  }
}

/** Describes a value for an error message: its type and, for short things, the value itself. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (ArrayBuffer.isView(value)) {
    const length = (value as unknown as { length?: number }).length ?? value.byteLength;
    return `${value.constructor.name} of length ${length}`;
  }
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (typeof value === 'string')
    return value.length > 40 ? `a string of length ${value.length}` : `'${value}'`;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  if (typeof value === 'function') return 'a function';
  return `an object (${Object.prototype.toString.call(value)})`;
}

/** Builds an argument error whose message names the field, what was expected and what was received. */
export function argError(
  code: SdvpErrorCode,
  field: string,
  expected: string,
  value: unknown,
  extra?: string,
): SdvpError {
  const received = describeValue(value);
  const tail = extra ? ` ${extra}` : '';
  return new SdvpError(code, `${field} must be ${expected}, but received ${received}.${tail}`, {
    field,
    expected,
    received,
  });
}
