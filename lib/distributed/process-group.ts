// ProcessGroup: one member of a c10d process group (Gloo on CPU, NCCL on GPU) and its collectives on
// tensors. Operations run off the event loop and are issued in the order they are called, which is
// the order every rank must call them in.

import { SdvpError, argError } from '../errors/sdvp-error';
import { type OutputTensor, type Tensor, validateTensor } from '../models/tensors';
import { toSdvpError } from '../models/torch-runtime';
import type { NativeProcessGroup, NativeProcessGroupConfig } from '../native/native-torch-binding';

export type ReduceOpName = 'sum' | 'avg' | 'max' | 'min';
export type DistributedBackend = 'gloo' | 'nccl';

const REDUCE_OPS: readonly ReduceOpName[] = ['sum', 'avg', 'max', 'min'];

/** The most bytes of JSON allGatherObject sends per rank (it is meant for small values). */
export const MAX_OBJECT_BYTES = 16 * 1024 * 1024;

/** A turn in a group's order of operations: `turn` resolves when the earlier ones are done. */
export interface GroupTurn {
  turn: Promise<void>;
  release: () => void;
}

/** @internal What a Model needs of a group to take distributed steps in the group's order. */
export const groupInternals = Symbol('sdvp.processGroup.internals');

export class ProcessGroup {
  /** This process's rank in [0, worldSize). */
  readonly rank: number;
  readonly worldSize: number;
  readonly backend: DistributedBackend;
  /** The rank within this machine (torchrun's LOCAL_RANK); NCCL's CUDA device. */
  readonly localRank: number;
  readonly masterAddr: string;
  /** The rendezvous store's port (the one picked, when 0 was asked for with worldSize 1). */
  readonly masterPort: number;
  /** How long the rendezvous and each collective may wait for the other ranks. */
  readonly timeoutMs: number;
  readonly #native: NativeProcessGroup;
  #tail: Promise<void> = Promise.resolve();
  #destroyed = false;

  /** @internal Use initProcessGroup. */
  constructor(native: NativeProcessGroup, config: NativeProcessGroupConfig) {
    this.#native = native;
    this.rank = config.rank;
    this.worldSize = config.worldSize;
    this.backend = config.backend;
    this.localRank = config.localRank;
    this.masterAddr = config.masterAddr;
    this.masterPort = config.masterPort;
    this.timeoutMs = config.timeoutMs;
  }

  /** Whether destroy() was called. */
  get destroyed(): boolean {
    return this.#destroyed;
  }

  /**
   * The element-wise reduction of every rank's tensor (same shape and type on every rank). Resolves to
   * a new tensor; the input is not changed. `'avg'` needs float32 data.
   */
  allReduce(tensor: Tensor, options: { op?: ReduceOpName } = {}): Promise<OutputTensor> {
    return this.#tensorOp('allReduce', tensor, () => {
      const op = options?.op ?? 'sum';
      if (!REDUCE_OPS.includes(op))
        throw argError('ERR_SDVP_OPTION', 'options.op', "'sum', 'avg', 'max' or 'min'", op);
      return (native, input) => native.allReduce(input, op);
    });
  }

  /** Rank `src`'s tensor, on every rank (each passes a tensor of the same shape and type). */
  broadcast(tensor: Tensor, options: { src?: number } = {}): Promise<OutputTensor> {
    return this.#tensorOp('broadcast', tensor, () => {
      const src = options?.src ?? 0;
      if (typeof src !== 'number' || !Number.isInteger(src) || src < 0 || src >= this.worldSize)
        throw argError('ERR_SDVP_RANGE', 'options.src', `a rank in [0, ${this.worldSize})`, src);
      return (native, input) => native.broadcast(input, src);
    });
  }

  /** Every rank's tensor (same shape and type on every rank), in rank order. */
  allGather(tensor: Tensor): Promise<OutputTensor[]> {
    return this.#tensorOp('allGather', tensor, () => async (native, input) => {
      const stacked = await native.allGather(input);
      const size = input.data.length;
      return Array.from({ length: this.worldSize }, (_, rank) => ({
        data: stacked.data.subarray(rank * size, (rank + 1) * size) as OutputTensor['data'],
        shape: [...input.shape],
        dtype: stacked.dtype,
      }));
    });
  }

  /** Resolves once every rank has called barrier(). */
  barrier(): Promise<void> {
    return this.#schedule(() => this.#native.barrier());
  }

  /** Every rank's JSON value (each at most 16 MiB of JSON), in rank order. */
  allGatherObject<T>(value: T): Promise<T[]> {
    let bytes: Uint8Array;
    try {
      const text = JSON.stringify(value);
      if (text === undefined) throw argError('ERR_SDVP_ARG', 'value', 'a JSON-serialisable value', value);
      bytes = new TextEncoder().encode(text);
      if (bytes.length > MAX_OBJECT_BYTES) {
        throw argError(
          'ERR_SDVP_RANGE',
          'value',
          `at most ${MAX_OBJECT_BYTES} bytes of JSON (allGatherObject is for small values)`,
          `${bytes.length} bytes`,
        );
      }
    } catch (error) {
      return Promise.reject(
        error instanceof SdvpError
          ? error
          : argError('ERR_SDVP_ARG', 'value', 'a JSON-serialisable value', value),
      );
    }
    return this.#schedule(async () => {
      const parts = await this.#native.allGatherBytes(bytes);
      const decoder = new TextDecoder();
      return parts.map((part) => JSON.parse(decoder.decode(part)) as T);
    });
  }

  /**
   * Leaves the group: stops the heartbeat, releases the backend and (on rank 0) the rendezvous store,
   * after the operations already issued. Idempotent. Rank 0 hosts the store, so it should destroy last
   * (a barrier() first does that).
   */
  destroy(): Promise<void> {
    if (this.#destroyed) return Promise.resolve();
    this.#destroyed = true;
    const turn = this.#reserve();
    return turn.turn
      .then(() => this.#native.destroy())
      .catch((error) => Promise.reject(toSdvpError(error)))
      .finally(turn.release);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.destroy();
  }

  /** @internal The native group and a turn in this group's order, for Model.trainStep and joinGroup. */
  [groupInternals](): { native: NativeProcessGroup; reserve: () => GroupTurn } {
    this.#checkLive();
    return { native: this.#native, reserve: () => this.#reserve() };
  }

  #checkLive(): void {
    if (this.#destroyed) throw new SdvpError('ERR_SDVP_DISPOSED', 'This process group was destroyed.');
  }

  /** A turn after every operation issued so far; `release` lets the next one go. */
  #reserve(): GroupTurn {
    let release!: () => void;
    const finished = new Promise<void>((resolve) => {
      release = resolve;
    });
    const turn = this.#tail;
    this.#tail = turn.then(() => finished);
    return { turn, release };
  }

  /** Runs `run` in this group's order; errors become SdvpErrors. */
  #schedule<T>(run: () => Promise<T>): Promise<T> {
    try {
      this.#checkLive();
    } catch (error) {
      return Promise.reject(error);
    }
    const turn = this.#reserve();
    return turn.turn
      .then(run)
      .catch((error) => Promise.reject(toSdvpError(error)))
      .finally(turn.release);
  }

  /** Validates a tensor and the options (synchronously), then runs the collective in order. */
  #tensorOp<T>(
    name: string,
    tensor: Tensor,
    prepare: () => (native: NativeProcessGroup, input: ReturnType<typeof validateTensor>) => Promise<T>,
  ): Promise<T> {
    let input: ReturnType<typeof validateTensor>;
    let run: (native: NativeProcessGroup, input: ReturnType<typeof validateTensor>) => Promise<T>;
    try {
      input = validateTensor(tensor, 'tensor');
      if (input.dtype === 'bool')
        throw argError('ERR_SDVP_ARG', 'tensor.dtype', `numeric data for ${name}`, 'bool');
      run = prepare();
      // The data are copied now: the caller may reuse its array as soon as this returns.
      input = { ...input, data: input.data.slice() as typeof input.data };
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#schedule(() => run(this.#native, input));
  }
}
