// Model: a TorchScript module in the LibTorch runtime — run any method, train with the fused objective,
// freeze parameters, save and checkpoint. Every run is a Promise on a worker thread, and runs of one
// model are queued so two never overlap.

import { type GroupTurn, ProcessGroup, groupInternals } from '../distributed/process-group';
import { SdvpError, argError } from '../errors/sdvp-error';
import {
  type DistillObjectiveOptions,
  type NativeObjective,
  OBJECTIVE_FIELDS,
  prepareObjective,
} from '../kernels/validate-spec';
import type {
  NativeDistributedStepInfo,
  NativeProcessGroup,
  NativeTensorIn,
  NativeTorchModel,
  NativeTrainStepResult,
} from '../native/native-torch-binding';
import { type NamePattern, normalizePatterns } from './name-patterns';
import { type OptimizerOptions, optimizerFromNative, prepareOptimizer } from './optimizer-options';
import { type ModelValue, fromNative, isTensor, sliceRows, validateTensors } from './tensors';
import type { OutputTensor, Tensor } from './tensors';
import { toSdvpError } from './torch-runtime';

export interface ParameterInfo {
  /** Dotted name, e.g. `encoder.conv1.weight`. */
  name: string;
  shape: number[];
  /** LibTorch's name of the element type, e.g. `Float`. */
  dtype: string;
  trainable: boolean;
}

export interface MethodInfo {
  name: string;
  /** `name: Type` for each argument after self. */
  arguments: string[];
  returns: string;
  /** The full TorchScript schema. */
  schema: string;
}

export interface CallOptions {
  /** Aborting rejects with ERR_SDVP_ABORTED; a batched call stops between batches. */
  signal?: AbortSignal;
  /**
   * Runs the inputs in batches of this many rows (along dimension 0) and concatenates the outputs,
   * which bounds memory and lets `signal` stop a long call between batches.
   */
  batchSize?: number;
}

/** The fused objective's options for a train step: the logits come from the method's output. */
export type TrainObjective = Omit<DistillObjectiveOptions, 'stats'>;

export interface TrainStepOptions {
  /** The method giving logits [batch, classes]. Default `'forward'`. */
  method?: string;
  /** The method's inputs, each with the batch as its first dimension. */
  inputs: Tensor[];
  /** Labels, teacher and every option of the fused objective (rows = the batch). */
  objective: TrainObjective;
  /**
   * Configures the optimizer; needed on the first step unless the model came from a checkpoint. The
   * state (moments) is kept when the options are unchanged or only rates/groups change.
   */
  optimizer?: OptimizerOptions;
  /** Splits the batch into this many micro-batches and accumulates their gradients. Default 1. */
  accumulate?: number;
  /** Aborting stops between micro-batches and rejects with ERR_SDVP_ABORTED; nothing is updated. */
  signal?: AbortSignal;
  /**
   * Data parallel over a process group: every rank runs the step on its own batch, the gradients are
   * summed over the ranks (in flat buckets of `bucketBytes`, default 25 MiB) with the group's normaliser
   * before clipping and the update, so W ranks with batch B take the step one process takes with W·B.
   * A model joins the group (takes rank 0's parameters) on its first such step unless joinGroup() was
   * called. Every rank must take the same steps in the same order.
   */
  distributed?: ProcessGroup | { group: ProcessGroup; bucketBytes?: number };
}

/** What a data-parallel step exchanged. */
export type DistributedStepInfo = NativeDistributedStepInfo;

export interface TrainStepResult {
  /** The batch's loss (before the update). */
  loss: number;
  normalizer: number;
  validRows: number;
  rows: number;
  /** The number of classes of the method's logits. */
  vocab: number;
  /** Per-row losses (reduction `'none'` only). */
  rowLoss?: Float32Array;
  /** Per-row logsumexp, CE, divergence and argmax of the logits. */
  stats: { lse: Float32Array; ce: Float32Array; kd: Float32Array; argmax: Int32Array };
  /** Global L2 norm of the gradients before clipping. */
  gradNorm: number;
  clipped: boolean;
  /** The learning rate of the default group for this step. */
  lr: number;
  /** Optimizer steps taken so far, this one included. */
  step: number;
  /** Wall times in milliseconds; `lossMs` is the fused objective (forward and its backward node). */
  timings: { forwardMs: number; lossMs: number; backwardMs: number; optimizerMs: number; totalMs: number };
  /**
   * Data-parallel steps only: the group's size, this rank, the rows of all ranks' batches, the bytes this
   * rank all-reduced, the gradient buckets, and the time of the exchange (waits for slower ranks
   * included). In such a step `loss`, `normalizer` and `validRows` are the group's; `rows` and the
   * per-row outputs are this rank's.
   */
  distributed?: DistributedStepInfo;
}

/** The default flat bucket size of the data-parallel gradient all-reduce (PyTorch DDP's). */
export const DEFAULT_BUCKET_BYTES = 25 * 1024 * 1024;

/** Checks the `distributed` option of a train step. */
function prepareDistributed(
  value: TrainStepOptions['distributed'],
): { group: ProcessGroup; bucketBytes: number } | undefined {
  if (value === undefined) return undefined;
  const group = value instanceof ProcessGroup ? value : (value as { group?: unknown } | null)?.group;
  if (!(group instanceof ProcessGroup)) {
    throw argError(
      'ERR_SDVP_ARG',
      'distributed',
      'a ProcessGroup or { group: ProcessGroup, bucketBytes }',
      value,
    );
  }
  const bucketBytes =
    value instanceof ProcessGroup ? DEFAULT_BUCKET_BYTES : (value.bucketBytes ?? DEFAULT_BUCKET_BYTES);
  if (typeof bucketBytes !== 'number' || !Number.isSafeInteger(bucketBytes) || bucketBytes < 1) {
    throw argError(
      typeof bucketBytes === 'number' ? 'ERR_SDVP_RANGE' : 'ERR_SDVP_ARG',
      'distributed.bucketBytes',
      'a positive integer number of bytes',
      bucketBytes,
    );
  }
  return { group, bucketBytes };
}

function checkSignal(signal: unknown, field: string): AbortSignal | undefined {
  if (signal !== undefined && !(signal instanceof AbortSignal))
    throw argError('ERR_SDVP_ARG', field, 'an AbortSignal', signal);
  return signal;
}

/** Runs `body` with a cancel flag raised when `signal` aborts. */
async function withCancel<T>(
  signal: AbortSignal | undefined,
  what: string,
  body: (flag: Int32Array) => Promise<T>,
): Promise<T> {
  if (signal?.aborted) throw new SdvpError('ERR_SDVP_ABORTED', `${what} was aborted before it started.`);
  const flag = new Int32Array(1);
  const onAbort = () => {
    flag[0] = 1;
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await body(flag);
  } catch (error) {
    throw toSdvpError(error);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

export class Model {
  readonly #native: NativeTorchModel;
  #disposed = false;
  #queue: Promise<unknown> = Promise.resolve();
  /** The optimizer options last sent, as JSON, so an unchanged configuration is not re-sent. */
  #optimizerKey: string | undefined;
  /** Output widths of methods, learnt from a run, for validating objectives before a step. */
  readonly #widths = new Map<string, number>();
  /** The device the model lives on: `'cpu'` or `'cuda:N'`. */
  readonly device: string;

  /** @internal Use loadModel or createModel. */
  constructor(native: NativeTorchModel) {
    this.#native = native;
    this.device = native.info().device;
  }

  /** Whether dispose() was called. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /** Optimizer steps taken (restored from a checkpoint). */
  get step(): number {
    return this.#sync(() => this.#native.info().step);
  }

  /** The root module's methods. */
  methods(): MethodInfo[] {
    return this.#sync(() => this.#native.methods());
  }

  /** Every parameter, with its shape and whether it is trainable. */
  parameters(): ParameterInfo[] {
    return this.#sync(() => this.#native.parameters());
  }

  /** The root module's plain attributes (vocabularies, sizes, the architecture's config...). */
  attributes(): Record<string, ModelValue> {
    return this.#sync(() => this.#native.attributes() as Record<string, ModelValue>);
  }

  /** The optimizer's current options, or undefined when none is configured. */
  optimizer(): OptimizerOptions | undefined {
    return this.#sync(() => {
      const config = this.#native.info().optimizer;
      return config ? optimizerFromNative(config) : undefined;
    });
  }

  /** Stops training the parameters whose names match; returns how many matched. Takes effect from the next run. */
  freeze(patterns: NamePattern | NamePattern[]): number {
    const normalized = normalizePatterns(patterns, 'patterns');
    return this.#sync(() => this.#native.setTrainable(normalized, false));
  }

  /** Makes the parameters whose names match trainable again; returns how many matched. */
  unfreeze(patterns: NamePattern | NamePattern[]): number {
    const normalized = normalizePatterns(patterns, 'patterns');
    return this.#sync(() => this.#native.setTrainable(normalized, true));
  }

  /**
   * Runs `method` on `inputs` without autograd. Resolves to one tensor, or an array for a tuple (other
   * TorchScript values come back as numbers, strings, arrays or objects).
   */
  call(method: string, inputs: Tensor[], options: CallOptions = {}): Promise<ModelValue> {
    if (typeof method !== 'string' || method.length === 0)
      return Promise.reject(argError('ERR_SDVP_ARG', 'method', 'a method name', method));
    let native: NativeTensorIn[];
    let signal: AbortSignal | undefined;
    let batchSize = 0;
    try {
      native = validateTensors(inputs, 'inputs');
      if (typeof options !== 'object' || options === null)
        throw argError('ERR_SDVP_ARG', 'options', 'an object', options);
      signal = checkSignal(options.signal, 'options.signal');
      if (options.batchSize !== undefined) {
        if (
          typeof options.batchSize !== 'number' ||
          !Number.isSafeInteger(options.batchSize) ||
          options.batchSize < 1
        ) {
          throw argError('ERR_SDVP_RANGE', 'options.batchSize', 'an integer ≥ 1', options.batchSize);
        }
        batchSize = options.batchSize;
      }
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#enqueue(() =>
      withCancel(signal, `call('${method}')`, async (flag) =>
        fromNative(await this.#native.call(method, native, batchSize, flag)),
      ),
    );
  }

  /** Like call(), for a method that returns one tensor. */
  async callTensor(
    method: string,
    inputs: Tensor[],
    options: CallOptions = {},
  ): Promise<Tensor & { shape: number[] }> {
    const value = await this.call(method, inputs, options);
    if (!isTensor(value))
      throw new SdvpError('ERR_SDVP_TORCH', `method '${method}' did not return a single tensor.`);
    return value;
  }

  /**
   * One training step: forward `method` on `inputs`, the fused objective on its logits (hard labels,
   * dense or top-k teacher, every option), backward through the model, clipping, optimizer step. A
   * failed step (a NaN loss, bad inputs, an abort) leaves the parameters and the optimizer unchanged.
   */
  trainStep(options: TrainStepOptions): Promise<TrainStepResult> {
    let inputs: NativeTensorIn[];
    let method: string;
    let accumulate: number;
    let signal: AbortSignal | undefined;
    let optimizer: ReturnType<typeof prepareOptimizer> | undefined;
    let optimizerKey: string | undefined;
    let distributed: { native: NativeProcessGroup; turn: GroupTurn; bucketBytes: number } | undefined;
    try {
      if (typeof options !== 'object' || options === null)
        throw argError('ERR_SDVP_ARG', 'options', 'an object', options);
      const settings = prepareDistributed(options.distributed);
      if (settings) {
        // The turn is taken now, so the step keeps its place among the group's operations.
        const internals = settings.group[groupInternals]();
        distributed = {
          native: internals.native,
          turn: internals.reserve(),
          bucketBytes: settings.bucketBytes,
        };
      }
    } catch (error) {
      return Promise.reject(error);
    }
    try {
      for (const key of Object.keys(options)) {
        if (
          !['method', 'inputs', 'objective', 'optimizer', 'accumulate', 'signal', 'distributed'].includes(key)
        ) {
          throw argError(
            'ERR_SDVP_ARG',
            key,
            'absent (trainStep options: method, inputs, objective, optimizer, accumulate, signal, distributed)',
            key,
          );
        }
      }
      method = options.method ?? 'forward';
      if (typeof method !== 'string' || method.length === 0)
        throw argError('ERR_SDVP_ARG', 'method', 'a method name', method);
      inputs = validateTensors(options.inputs, 'inputs');
      if (inputs.length === 0)
        throw argError('ERR_SDVP_ARG', 'inputs', 'at least one tensor', options.inputs);
      const rows = inputs[0].shape[0];
      inputs.forEach((input, i) => {
        if (input.shape.length === 0 || input.shape[0] !== rows) {
          throw argError(
            'ERR_SDVP_SHAPE',
            `inputs[${i}].shape[0]`,
            `the batch size ${rows} (as inputs[0])`,
            input.shape[0],
          );
        }
      });
      if (!(rows >= 1))
        throw argError('ERR_SDVP_SHAPE', 'inputs[0].shape[0]', 'a batch of at least 1 row', rows);
      accumulate = options.accumulate ?? 1;
      if (
        typeof accumulate !== 'number' ||
        !Number.isSafeInteger(accumulate) ||
        accumulate < 1 ||
        accumulate > rows
      ) {
        throw argError(
          'ERR_SDVP_RANGE',
          'accumulate',
          `an integer in [1, ${rows}] (the batch size)`,
          accumulate,
        );
      }
      signal = checkSignal(options.signal, 'signal');
      if (typeof options.objective !== 'object' || options.objective === null) {
        throw argError(
          'ERR_SDVP_ARG',
          'objective',
          'an object of fused-objective options',
          options.objective,
        );
      }
      for (const key of Object.keys(options.objective)) {
        if (!OBJECTIVE_FIELDS.has(key)) {
          throw argError(
            'ERR_SDVP_ARG',
            `objective.${key}`,
            `absent (objective options: ${[...OBJECTIVE_FIELDS].join(', ')})`,
            key,
          );
        }
      }
      if (options.optimizer !== undefined) {
        optimizer = prepareOptimizer(options.optimizer);
        optimizerKey = JSON.stringify(optimizer);
      }
    } catch (error) {
      return distributed ? this.#abstain(distributed, error) : Promise.reject(error);
    }
    const objectiveOptions = options.objective;
    let prepared = false;
    const step = this.#enqueue(() =>
      withCancel(signal, 'trainStep', async (flag) => {
        const rows = inputs[0].shape[0];
        const vocab = await this.#outputWidth(method, inputs, objectiveOptions, rows);
        const teacherIsBf16 = objectiveOptions.teacher instanceof Uint16Array;
        let objective: NativeObjective;
        try {
          objective = prepareObjective(objectiveOptions, rows, vocab, teacherIsBf16 ? 'bf16' : 'f32');
        } catch (error) {
          if (error instanceof SdvpError && error.field && !error.field.startsWith('objective')) {
            throw new SdvpError(error.code, `objective.${error.message}`, {
              field: `objective.${error.field}`,
              expected: error.expected,
              received: error.received,
            });
          }
          throw error;
        }
        const sendOptimizer = optimizer && optimizerKey !== this.#optimizerKey ? optimizer : undefined;
        if (distributed) await distributed.turn.turn;
        prepared = true;
        const result: NativeTrainStepResult = await this.#native.trainStep(
          {
            method,
            inputs,
            objective,
            optimizer: sendOptimizer,
            accumulate,
            distributed: distributed && { group: distributed.native, bucketBytes: distributed.bucketBytes },
          },
          flag,
        );
        if (optimizerKey !== undefined) this.#optimizerKey = optimizerKey;
        this.#widths.set(method, result.vocab);
        return result;
      }),
    );
    if (!distributed) return step;
    const group = distributed;
    // A step rejected before it reached the runtime still takes part, so the other ranks skip it too.
    return step.then(
      (result) => {
        group.turn.release();
        return result;
      },
      (error) => {
        if (!prepared) return this.#abstain(group, error);
        group.turn.release();
        throw error;
      },
    );
  }

  /**
   * Takes part in a distributed step this rank rejected (so every rank skips it rather than wait for
   * this one), then rejects with `error`.
   */
  #abstain(distributed: { native: NativeProcessGroup; turn: GroupTurn }, error: unknown): Promise<never> {
    // Not through this model's queue: a later step queued there may be waiting for this turn.
    return distributed.turn.turn
      .then(() => this.#native.abstainFromStep(distributed.native))
      .catch(() => undefined)
      .then(() => {
        distributed.turn.release();
        throw error;
      });
  }

  /**
   * Joins a process group for data-parallel steps: after checking that every rank holds the same
   * parameters and buffers at the same optimizer step (ERR_SDVP_DIST_CONFIG otherwise), rank 0's values
   * replace the others'. Every rank calls it at the same point, in the group's order of operations. Not
   * needed before the first distributed trainStep, which joins by itself; call it again on every rank
   * after loading other weights on some.
   */
  joinGroup(group: ProcessGroup): Promise<void> {
    let native: NativeProcessGroup;
    let turn: GroupTurn;
    try {
      if (!(group instanceof ProcessGroup)) throw argError('ERR_SDVP_ARG', 'group', 'a ProcessGroup', group);
      const internals = group[groupInternals]();
      native = internals.native;
      turn = internals.reserve();
    } catch (error) {
      return Promise.reject(error);
    }
    const joined = this.#enqueue(async () => {
      await turn.turn;
      try {
        await this.#native.joinGroup(native);
      } catch (error) {
        throw toSdvpError(error);
      }
    });
    joined.then(turn.release, turn.release);
    return joined;
  }

  /** The values of every parameter and buffer, by name (host copies, after the runs queued before). */
  state(): Promise<Record<string, OutputTensor>> {
    return this.#enqueue(async () => {
      try {
        return (await this.#native.state()) as Record<string, OutputTensor>;
      } catch (error) {
        throw toSdvpError(error);
      }
    });
  }

  /** Writes the module as a normal TorchScript file (Python's torch.jit.load reads it), atomically. */
  save(path: string): Promise<void> {
    if (typeof path !== 'string' || path.length === 0)
      return Promise.reject(argError('ERR_SDVP_ARG', 'path', 'a file path', path));
    return this.#enqueue(() => this.#native.save(path).catch((error) => Promise.reject(toSdvpError(error))));
  }

  /**
   * Writes a checkpoint: the TorchScript module plus the optimizer's settings and state, the step
   * counter and the frozen parameters, atomically. loadModel() of it resumes exactly.
   */
  saveCheckpoint(path: string): Promise<void> {
    if (typeof path !== 'string' || path.length === 0)
      return Promise.reject(argError('ERR_SDVP_ARG', 'path', 'a file path', path));
    return this.#enqueue(() =>
      this.#native.saveCheckpoint(path).catch((error) => Promise.reject(toSdvpError(error))),
    );
  }

  /**
   * Replaces the weights and training state with a checkpoint's (of the same architecture). A file
   * that cannot be read, or does not fit, rejects and leaves the model as it was.
   */
  loadCheckpoint(path: string): Promise<void> {
    if (typeof path !== 'string' || path.length === 0)
      return Promise.reject(argError('ERR_SDVP_ARG', 'path', 'a file path', path));
    return this.#enqueue(async () => {
      try {
        await this.#native.loadCheckpoint(path);
      } catch (error) {
        throw toSdvpError(error);
      }
      this.#optimizerKey = undefined;
    });
  }

  /** Frees the native model (after any run in progress). Idempotent; later calls reject with ERR_SDVP_DISPOSED. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#native.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  #checkLive(): void {
    if (this.#disposed) throw new SdvpError('ERR_SDVP_DISPOSED', 'This model was disposed.');
  }

  #sync<T>(body: () => T): T {
    this.#checkLive();
    try {
      return body();
    } catch (error) {
      throw toSdvpError(error);
    }
  }

  /** Queues a run after the ones already queued on this model. */
  #enqueue<T>(run: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(() => {
      this.#checkLive();
      return run();
    });
    this.#queue = next.catch(() => undefined);
    return next;
  }

  /** The method's number of output classes: known, implied by a dense teacher, or from a one-row run. */
  async #outputWidth(
    method: string,
    inputs: NativeTensorIn[],
    objective: TrainObjective,
    rows: number,
  ): Promise<number> {
    const known = this.#widths.get(method);
    if (known !== undefined) return known;
    const teacher = objective.teacher;
    if (ArrayBuffer.isView(teacher) && teacher.length % rows === 0 && teacher.length > 0)
      return teacher.length / rows;
    const probe = await this.#native.call(
      method,
      inputs.map((input) => sliceRows(input, 0, 1)),
      0,
    );
    if (!isTensor(probe) || probe.shape.length !== 2) {
      throw new SdvpError(
        'ERR_SDVP_SHAPE',
        `method '${method}' must return logits of shape [batch, classes] for trainStep.`,
        {
          field: 'method',
        },
      );
    }
    this.#widths.set(method, probe.shape[1]);
    return probe.shape[1];
  }
}
