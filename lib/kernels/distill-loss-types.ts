// The public types of the fused distillation objective: the spec a caller passes and the result it gets.

/** Storage type of logits: `'f32'` in a Float32Array, `'bf16'` as raw bf16 bits in a Uint16Array. */
export type LogitDType = 'f32' | 'bf16';

/** A logits buffer of either dtype. */
export type LogitArray = Float32Array | Uint16Array;

/** Which divergence between the softened teacher P_T and student P_S is used. */
export type Divergence = 'forward-kl' | 'reverse-kl' | 'jsd';

/** How per-row losses are combined into the returned loss. */
export type Reduction = 'mean' | 'sum' | 'batchmean' | 'none';

/**
 * How a top-k teacher's missing mass (1 − Σ exp(logprobs)) is treated:
 * - `'renormalize'`: the teacher is renormalised over its k entries and is zero elsewhere; the student
 *   keeps its full softmax (so `'reverse-kl'` is only allowed with k = vocab);
 * - `'tail'`: the missing mass is one extra category, matched against the student's mass outside the k.
 */
export type TopKMissingMass = 'renormalize' | 'tail';

/** A teacher given as its top-k log-probabilities (at temperature 1) over the student vocabulary. */
export interface TopKTeacher {
  /** [rows, k] student-vocabulary indices, distinct within a row. */
  indices: Int32Array;
  /** [rows, k] teacher log-probabilities at temperature 1. */
  logprobs: Float32Array;
  k: number;
  /** Default `'tail'`. */
  missing?: TopKMissingMass;
}

export interface DistillLossSpec {
  /** Student logits [rows, vocab], row-major. */
  student: LogitArray;
  rows: number;
  vocab: number;
  /** Default: `'bf16'` for a Uint16Array student, `'f32'` for a Float32Array. */
  dtype?: LogitDType;
  /** Dense teacher logits [rows, vocab] in the student's dtype, or a top-k teacher. */
  teacher?: LogitArray | TopKTeacher;
  /** Hard labels [rows]; rows equal to `ignoreIndex` take no CE term. */
  labels?: Int32Array;
  /** Default −100. */
  ignoreIndex?: number;
  /** α, the weight of the cross-entropy term. Default 1 when labels are given. */
  ceWeight?: number;
  /** β, the weight of the divergence term. Default 1 when a teacher is given. */
  kdWeight?: number;
  /** τ > 0, applied to student and teacher in the divergence term. Default 1. */
  temperature?: number;
  /** Multiply the divergence by τ². Default true. */
  t2?: boolean;
  /** Default `'forward-kl'`. */
  divergence?: Divergence;
  /** β of the generalised JSD in [0, 1]. Default 0.5. */
  jsdBeta?: number;
  /** In [0, 1). Default 0. */
  labelSmoothing?: number;
  /** Weight on lse² (PaLM's z-loss), ≥ 0. Default 0. */
  zLoss?: number;
  /** Per-row weights [rows], each ≥ 0. */
  rowWeights?: Float32Array;
  /** Default `'mean'`. */
  reduction?: Reduction;
  /** A positive divisor that overrides the reduction's (for example a token count across workers). */
  normalizer?: number;
  /**
   * Where the gradient dL/dS goes: `false` for none, `true` (default) for a new buffer, a buffer of the
   * student's type and size, or `'in-place'` to overwrite the student logits.
   */
  grad?: boolean | LogitArray | 'in-place';
  /** Multiplies the gradient (for example a loss-scale or 1/accumulation steps). Default 1. */
  gradScale?: number;
  /** Return per-row lse, CE, KD and argmax. Default false. */
  stats?: boolean;
  /** CPU threads; 0 or omitted = every core. */
  threads?: number;
}

export interface DistillLossRowStats {
  /** logsumexp of each student row at temperature 1. */
  lse: Float32Array;
  /** Per-row cross-entropy (with smoothing and z-loss; 0 for ignored rows), unweighted. */
  ce: Float32Array;
  /** Per-row divergence, without τ² or weights. */
  kd: Float32Array;
  /** Index of each row's largest student logit. */
  argmax: Int32Array;
}

export interface DistillLossResult {
  /** The reduced loss (for `'none'`, the sum of `rowLoss`). */
  loss: number;
  /** dL/dS (times gradScale), when asked for; with `'in-place'` it is the student buffer itself. */
  grad?: LogitArray;
  /** Per-row weighted losses, for reduction `'none'`. */
  rowLoss?: Float32Array;
  stats?: DistillLossRowStats;
  /** The divisor applied to the summed row losses. */
  normalizer: number;
  /** Rows with a non-ignored label or a teacher, and a weight > 0. */
  validRows: number;
}

export interface DistillLossAsyncOptions {
  /** Aborting rejects the promise with ERR_SDVP_ABORTED; native work stops at its next chunk of rows. */
  signal?: AbortSignal;
}
