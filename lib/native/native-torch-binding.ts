// The internal TypeScript type of the addon's LibTorch part (present only in builds with LibTorch).

import type { NativeObjective } from '../kernels/validate-spec';

/** A tensor as the addon reads it: `dtype` only matters for Uint8Array ('bool' makes a bool tensor). */
export interface NativeTensorIn {
  data: Float32Array | Int32Array | BigInt64Array | Uint8Array | Uint16Array;
  shape: number[];
  dtype?: string;
}

/** A tensor as the addon returns it. */
export interface NativeTensorOut {
  data: Float32Array | Int32Array | BigInt64Array | Uint8Array;
  shape: number[];
  dtype: 'float32' | 'int32' | 'int64' | 'uint8' | 'bool';
}

export type NativeValue =
  | NativeTensorOut
  | NativeValue[]
  | number
  | boolean
  | string
  | null
  | { [key: string]: NativeValue };

export interface NativeNamePattern {
  pattern: string;
  regex: boolean;
  lr?: number;
  weightDecay?: number;
}

export interface NativeOptimizerConfig {
  kind: 0 | 1; // 0 AdamW, 1 SGD
  lr: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  momentum: number;
  dampening: number;
  nesterov: boolean;
  maxGradNorm: number;
  schedule: { kind: 0 | 1 | 2; warmupSteps: number; totalSteps: number; minFactor: number };
  groups: NativeNamePattern[];
}

export interface NativeArchitectureConfig {
  architecture: string;
  channels: number[];
  strides: number[];
  imageSize: number;
  dim: number;
  hidden: number;
  gridSize: number;
  maxTokens: number;
  /** transformer-vlm only (1 otherwise). */
  layers: number;
  heads: number;
  tokenVocab: string[];
  answerVocab: string[];
  labels: string[];
  seed: number;
  configJson: string;
}

export interface NativeTrainStepRequest {
  method: string;
  inputs: NativeTensorIn[];
  objective: NativeObjective;
  optimizer?: NativeOptimizerConfig;
  accumulate: number;
  distributed?: { group: NativeProcessGroup; bucketBytes: number };
}

/** What a data-parallel step exchanged. */
export interface NativeDistributedStepInfo {
  worldSize: number;
  rank: number;
  globalRows: number;
  bytes: number;
  buckets: number;
  communicationMs: number;
}

export interface NativeTrainStepResult {
  loss: number;
  normalizer: number;
  validRows: number;
  rows: number;
  vocab: number;
  rowLoss?: Float32Array;
  stats: { lse: Float32Array; ce: Float32Array; kd: Float32Array; argmax: Int32Array };
  gradNorm: number;
  clipped: boolean;
  lr: number;
  step: number;
  timings: { forwardMs: number; lossMs: number; backwardMs: number; optimizerMs: number; totalMs: number };
  distributed?: NativeDistributedStepInfo;
}

export interface NativeParameterInfo {
  name: string;
  shape: number[];
  dtype: string;
  trainable: boolean;
}

export interface NativeMethodInfo {
  name: string;
  arguments: string[];
  returns: string;
  schema: string;
}

/** One TorchScript module; every method that runs the model returns a Promise (a libuv worker). */
export interface NativeTorchModel {
  load(source: string | Uint8Array, device: string): Promise<void>;
  create(config: NativeArchitectureConfig, device: string): Promise<void>;
  call(
    method: string,
    inputs: NativeTensorIn[],
    batchSize: number,
    cancel?: Int32Array,
  ): Promise<NativeValue>;
  trainStep(request: NativeTrainStepRequest, cancel?: Int32Array): Promise<NativeTrainStepResult>;
  joinGroup(group: NativeProcessGroup): Promise<void>;
  abstainFromStep(group: NativeProcessGroup): Promise<void>;
  state(): Promise<Record<string, NativeTensorOut>>;
  save(path: string): Promise<void>;
  saveCheckpoint(path: string): Promise<void>;
  loadCheckpoint(path: string): Promise<void>;
  parameters(): NativeParameterInfo[];
  methods(): NativeMethodInfo[];
  attributes(): Record<string, NativeValue>;
  setTrainable(patterns: NativeNamePattern[], trainable: boolean): number;
  info(): { device: string; step: number; optimizer: NativeOptimizerConfig | null };
  dispose(): void;
}

/** The configuration a process group starts with (every field resolved). */
export interface NativeProcessGroupConfig {
  backend: 'gloo' | 'nccl';
  rank: number;
  worldSize: number;
  localRank: number;
  masterAddr: string;
  masterPort: number;
  timeoutMs: number;
  rendezvousTimeoutMs: number;
  fingerprint: string;
  /** torchrun's static rendezvous: its agent hosts the store (TORCHELASTIC_USE_AGENT_STORE). */
  agentStore: boolean;
  restartCount: number;
}

/** One member of a c10d process group; collectives run on libuv's pool. */
export interface NativeProcessGroup {
  init(config: NativeProcessGroupConfig): Promise<void>;
  allReduce(tensor: NativeTensorIn, op: 'sum' | 'avg' | 'max' | 'min'): Promise<NativeTensorOut>;
  broadcast(tensor: NativeTensorIn, src: number): Promise<NativeTensorOut>;
  /** Every rank's tensor stacked along a new first dimension. */
  allGather(tensor: NativeTensorIn): Promise<NativeTensorOut>;
  barrier(): Promise<void>;
  allGatherBytes(bytes: Uint8Array): Promise<Uint8Array[]>;
  destroy(): Promise<void>;
  info(): { rank: number; worldSize: number; backend: string; port: number };
}

export interface NativeTorchBinding {
  TorchModel: new () => NativeTorchModel;
  TorchProcessGroup: new () => NativeProcessGroup;
  distributedBackends(): { gloo: boolean; nccl: boolean };
  torchSetThreads(threads: number): void;
  torchThreads(): number;
  torchSetGraphOptimization(enabled: boolean): void;
  torchGraphOptimization(): boolean;
}
