// A seeded PRNG for the kernel tests (mulberry32 + Box-Muller), so every random failure reproduces from its seed.

/**
 * The run's base seed: SDVP_TEST_SEED when set (decimal or 0x-hex), else the current time. Each test
 * derives its own generator from it and a label, and prints the seed in its failure messages.
 */
export const BASE_SEED: number = (() => {
  const fromEnv = process.env.SDVP_TEST_SEED;
  if (fromEnv !== undefined && fromEnv !== '') {
    const parsed = Number(fromEnv);
    if (!Number.isFinite(parsed))
      throw new Error(`SDVP_TEST_SEED must be a number, but received '${fromEnv}'.`);
    return parsed >>> 0;
  }
  return Date.now() >>> 0;
})();

/** 32-bit FNV-1a of a label: mixes a test's name into the base seed. */
function hashLabel(label: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < label.length; i++) {
    hash ^= label.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** A small deterministic generator: uniform, normal, integers, shuffles, picks. */
export class Random {
  readonly seed: number;
  private state: number;
  private spare: number | undefined;

  constructor(seed: number) {
    this.seed = seed >>> 0;
    this.state = this.seed;
  }

  /** Uniform in [0, 1) (mulberry32). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let x = this.state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  }

  /** Standard normal (Box-Muller, the second value kept for the next call). */
  normal(): number {
    if (this.spare !== undefined) {
      const value = this.spare;
      this.spare = undefined;
      return value;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    const radius = Math.sqrt(-2 * Math.log(u));
    this.spare = radius * Math.sin(2 * Math.PI * v);
    return radius * Math.cos(2 * Math.PI * v);
  }

  /** Uniform in [low, high). */
  uniform(low: number, high: number): number {
    return low + (high - low) * this.next();
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  /** A Float32Array of n normals with the given mean and standard deviation. */
  normals(n: number, std = 1, mean = 0): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = mean + std * this.normal();
    return out;
  }

  /** k distinct integers of [0, n), in random order (partial Fisher-Yates over a sparse map). */
  distinct(n: number, k: number): Int32Array {
    const swapped = new Map<number, number>();
    const out = new Int32Array(k);
    for (let i = 0; i < k; i++) {
      const j = i + this.int(n - i);
      const atJ = swapped.get(j) ?? j;
      const atI = swapped.get(i) ?? i;
      swapped.set(j, atI);
      out[i] = atJ;
    }
    return out;
  }
}

/** A generator for one test: the base seed mixed with the test's label. */
export function randomFor(label: string): Random {
  return new Random((BASE_SEED ^ hashLabel(label)) >>> 0);
}

/** A line to append to failure messages: how to rerun with the same inputs. */
export function seedNote(random: Random): string {
  return `seed ${random.seed} (base SDVP_TEST_SEED=${BASE_SEED})`;
}

/**
 * A top-k teacher over [rows, vocab]: k distinct random indices per row (in random order, so the kernel
 * must sort them) whose logits are lifted by `lift` so they hold most of the mass, with log-probabilities
 * taken from a full softmax at temperature 1 — the missing mass is what a real top-k teacher leaves out.
 */
export function randomTopKTeacher(
  random: Random,
  rows: number,
  vocab: number,
  k: number,
  missing?: 'tail' | 'renormalize',
  { std = 2, lift = 3 } = {},
): { indices: Int32Array; logprobs: Float32Array; k: number; missing?: 'tail' | 'renormalize' } {
  const indices = new Int32Array(rows * k);
  const logprobs = new Float32Array(rows * k);
  const logits = new Float64Array(vocab);
  for (let r = 0; r < rows; r++) {
    const chosen = random.distinct(vocab, k);
    for (let j = 0; j < vocab; j++) logits[j] = std * random.normal();
    for (const j of chosen) logits[j] += lift;
    let max = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < vocab; j++) max = Math.max(max, logits[j]);
    let sum = 0;
    for (let j = 0; j < vocab; j++) sum += Math.exp(logits[j] - max);
    const lse = max + Math.log(sum);
    for (let i = 0; i < k; i++) {
      indices[r * k + i] = chosen[i];
      logprobs[r * k + i] = Math.min(0, logits[chosen[i]] - lse);
    }
  }
  return missing === undefined ? { indices, logprobs, k } : { indices, logprobs, k, missing };
}

/** Hard labels in [0, vocab), with about `ignoredFraction` of them set to `ignoreIndex`. */
export function randomLabels(
  random: Random,
  rows: number,
  vocab: number,
  ignoredFraction = 0,
  ignoreIndex = -100,
): Int32Array {
  const labels = new Int32Array(rows);
  for (let r = 0; r < rows; r++)
    labels[r] = random.next() < ignoredFraction ? ignoreIndex : random.int(vocab);
  return labels;
}
