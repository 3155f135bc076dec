// The internal TypeScript type of the raw native module (never exported from the package root).

/** The spec object the addon's distillLoss reads; built only by lib/kernels/validate-spec.ts. */
export interface NativeDistillLossSpec {
  rows: number;
  vocab: number;
  dtype: 0 | 1;
  student: Float32Array | Uint16Array;
  teacherKind: 0 | 1 | 2;
  teacherLogits?: Float32Array | Uint16Array;
  topk: number;
  topkIndices?: Int32Array;
  topkLogprobs?: Float32Array;
  topkMissing: 0 | 1;
  labels?: Int32Array;
  ignoreIndex: number;
  ceWeight: number;
  kdWeight: number;
  temperature: number;
  t2: boolean;
  divergence: 0 | 1 | 2;
  jsdBeta: number;
  labelSmoothing: number;
  zLoss: number;
  rowWeights?: Float32Array;
  reduction: 0 | 1 | 2 | 3;
  normalizer?: number;
  grad?: Float32Array | Uint16Array;
  gradScale: number;
  rowLoss?: Float32Array;
  statsLse?: Float32Array;
  statsCe?: Float32Array;
  statsKd?: Float32Array;
  statsArgmax?: Int32Array;
  threads: number;
  cancel?: Int32Array;
}

/** What the kernel reports; `status` follows sdvp::Status in native/kernels/distill_loss.h. */
export interface NativeDistillLossResult {
  status: number;
  loss: number;
  normalizer: number;
  validRows: number;
  badRow: number;
  badValue: number;
}

export interface NativeCapabilities {
  buildSystem: string;
  simdTarget: string;
  cpuThreads: number;
  cuda: { built: boolean; runtimeVersion: number | null; devices: number };
  torch: { built: boolean; version: string | null; cuda: boolean };
}

export interface NativeBinding {
  capabilities(): NativeCapabilities;
  distillLoss(spec: NativeDistillLossSpec): NativeDistillLossResult;
  distillLossAsync(spec: NativeDistillLossSpec): Promise<NativeDistillLossResult>;
  memoryFloorProbe(a: Float32Array, b: Float32Array, out: Float32Array, threads: number): void;
}

/** Native status codes (sdvp::Status). */
export const NativeStatus = {
  ok: 0,
  labelOutOfRange: 1,
  topkIndexInvalid: 2,
  cancelled: 3,
  invalidSpec: 4,
  cudaError: 5,
} as const;
