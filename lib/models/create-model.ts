// createModel: the built-in architectures (TorchScript source in the project, initialised natively),
// their configurations and defaults. Defaults train on two CPU cores in seconds to minutes.

import { SdvpError, argError } from '../errors/sdvp-error';
import type { NativeArchitectureConfig } from '../native/native-torch-binding';
import { checkDevice } from './load-model';
import { Model } from './model';
import { toSdvpError, torchBinding } from './torch-runtime';

export type ArchitectureName = 'tiny-vlm' | 'transformer-vlm' | 'cnn-classifier' | 'grid-detector';

interface CommonConfig {
  /** Widths of the convolutional encoder's 3×3 layers (the first keeps the resolution, the others halve it). */
  channels?: number[];
  /** Stride of each convolution (same length as channels). Default: 1 for the first, 2 for the others. */
  strides?: number[];
  /** The image side the model is meant for (recorded; any size runs). Default 32. */
  imageSize?: number;
  /** Seed of the parameter initialisation. Default 0. */
  seed?: number;
  /** `'cpu'` (default), `'cuda'` or `'cuda:N'`. */
  device?: string;
}

/** The student: answer(images, tokens) → [B, A] and ground(images, tokens) → [B, gridSize²]. */
export interface TinyVlmConfig extends CommonConfig {
  /** Token vocabulary; entry 0 must be `'<pad>'` (padding, ignored when pooling the question). */
  tokenVocab?: string[];
  answerVocab?: string[];
  /** Width of cell and query features. Default 64. */
  dim?: number;
  /** Width of the fusion layer. Default 128. */
  hidden?: number;
  /** Cells per side of the grounding grid. Default 4. */
  gridSize?: number;
  /** Longest question in tokens (longer ones are cut). Default 16. */
  maxTokens?: number;
}

/**
 * The transformer student: convolutional patch embeddings pooled to gridSize² cells, the question's tokens and
 * a summary token through pre-norm transformer blocks. answer(images, tokens) → [B, A] from the summary token;
 * ground(images, tokens) → [B, gridSize² + 1]: each cell's match with the summary, then a "nothing matches" score.
 */
export interface TransformerVlmConfig extends Omit<TinyVlmConfig, 'hidden'> {
  /** Width of each block's MLP. Default 128. */
  hidden?: number;
  /** Transformer blocks. Default 2. */
  layers?: number;
  /** Attention heads per block (divides dim). Default 4. */
  heads?: number;
}

/** A teacher for image crops: forward(images) → [B, labels]. */
export interface CnnClassifierConfig extends CommonConfig {
  labels?: string[];
  /** Width of the hidden layer. Default 64. */
  hidden?: number;
}

/**
 * A teacher for localisation: detect(images) → [B, gridSize²], detect_classes → [B, labels, gridSize²], and
 * locate(images, query) → [B, gridSize² + 1] for query 0 (any object) or 1 + a label index: per-cell scores and
 * a "nothing matches" score, the grounding layout the students use.
 */
export interface GridDetectorConfig extends CommonConfig {
  labels?: string[];
  /** Width of the per-cell hidden layer. Default 64. */
  hidden?: number;
  /** Default 4. */
  gridSize?: number;
}

export interface ArchitectureConfigs {
  'tiny-vlm': TinyVlmConfig;
  'transformer-vlm': TransformerVlmConfig;
  'cnn-classifier': CnnClassifierConfig;
  'grid-detector': GridDetectorConfig;
}

const DIGIT_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];
const DIGITS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

/** The default question vocabulary of tiny-vlm (questions about digit scenes). */
export const DEFAULT_TOKEN_VOCAB: readonly string[] = [
  '<pad>',
  '<unk>',
  ...'what which where how many is are there the a an of in on at to and or not digit number object image left right top bottom middle center above below next larger smaller than same different even odd count sum color find ?'.split(
    ' ',
  ),
  ...DIGIT_WORDS,
  ...DIGITS,
];

/** The default answer vocabulary of tiny-vlm. */
export const DEFAULT_ANSWER_VOCAB: readonly string[] = [
  ...DIGITS,
  'yes',
  'no',
  'left',
  'right',
  'top',
  'bottom',
];

/** The default labels of the teachers (digit classes). */
export const DEFAULT_LABELS: readonly string[] = DIGITS;

const TINY_VLM_FIELDS = [
  'channels',
  'strides',
  'imageSize',
  'seed',
  'device',
  'tokenVocab',
  'answerVocab',
  'dim',
  'hidden',
  'gridSize',
  'maxTokens',
];

const FIELDS: Record<ArchitectureName, string[]> = {
  'tiny-vlm': TINY_VLM_FIELDS,
  'transformer-vlm': [...TINY_VLM_FIELDS, 'layers', 'heads'],
  'cnn-classifier': ['channels', 'strides', 'imageSize', 'seed', 'device', 'labels', 'hidden'],
  'grid-detector': ['channels', 'strides', 'imageSize', 'seed', 'device', 'labels', 'hidden', 'gridSize'],
};

function size(field: string, value: unknown, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > max) {
    throw argError(
      typeof value === 'number' ? 'ERR_SDVP_RANGE' : 'ERR_SDVP_ARG',
      field,
      `an integer in [1, ${max}]`,
      value,
    );
  }
  return value;
}

function seedOf(value: unknown): number {
  if (value === undefined) return 0;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw argError(
      typeof value === 'number' ? 'ERR_SDVP_RANGE' : 'ERR_SDVP_ARG',
      'config.seed',
      'a non-negative safe integer',
      value,
    );
  }
  return value;
}

function strings(field: string, value: unknown, fallback: readonly string[]): string[] {
  if (value === undefined) return [...fallback];
  if (!Array.isArray(value) || value.length === 0 || value.some((entry) => typeof entry !== 'string')) {
    throw argError('ERR_SDVP_ARG', field, 'a non-empty array of strings', value);
  }
  if (new Set(value).size !== value.length)
    throw argError('ERR_SDVP_ARG', field, 'an array of distinct strings', value);
  return [...value];
}

/** The full configuration of an architecture with defaults filled in, checked (without device). */
export function architectureConfig<A extends ArchitectureName>(
  architecture: A,
  config: ArchitectureConfigs[A] = {},
): Required<ArchitectureConfigs[A]> {
  if (!(architecture in FIELDS)) {
    throw argError(
      'ERR_SDVP_OPTION',
      'architecture',
      "'tiny-vlm', 'transformer-vlm', 'cnn-classifier' or 'grid-detector'",
      architecture,
    );
  }
  if (typeof config !== 'object' || config === null)
    throw argError('ERR_SDVP_ARG', 'config', 'an object', config);
  for (const key of Object.keys(config)) {
    if (!FIELDS[architecture].includes(key)) {
      throw argError(
        'ERR_SDVP_ARG',
        `config.${key}`,
        `absent (${architecture} options: ${FIELDS[architecture].join(', ')})`,
        key,
      );
    }
  }
  const c = config as TransformerVlmConfig & CnnClassifierConfig & GridDetectorConfig;
  let channels = [16, 32, 64];
  if (c.channels !== undefined) {
    if (!Array.isArray(c.channels) || c.channels.length === 0 || c.channels.length > 8) {
      throw argError('ERR_SDVP_ARG', 'config.channels', 'an array of 1 to 8 widths', c.channels);
    }
    channels = c.channels.map((width, i) => size(`config.channels[${i}]`, width, 1, 4096));
  }
  let strides: number[] = channels.map((_, i) => (i === 0 ? 1 : 2));
  if (c.strides !== undefined) {
    if (!Array.isArray(c.strides) || c.strides.length !== channels.length) {
      throw argError(
        'ERR_SDVP_ARG',
        'config.strides',
        `an array of ${channels.length} strides (one per convolution)`,
        c.strides,
      );
    }
    strides = c.strides.map((stride, i) => size(`config.strides[${i}]`, stride, 1, 8));
  }
  const common = {
    channels,
    strides,
    imageSize: size('config.imageSize', c.imageSize, 32, 4096),
    seed: seedOf(c.seed),
    device: checkDevice(c.device, 'config.device'),
  };
  if (architecture === 'tiny-vlm' || architecture === 'transformer-vlm') {
    const tokenVocab = strings('config.tokenVocab', c.tokenVocab, DEFAULT_TOKEN_VOCAB);
    if (tokenVocab[0] !== '<pad>' || tokenVocab.length < 2) {
      throw argError(
        'ERR_SDVP_ARG',
        'config.tokenVocab',
        "a vocabulary of at least 2 tokens whose entry 0 is '<pad>'",
        tokenVocab[0],
      );
    }
    const student = {
      ...common,
      tokenVocab,
      answerVocab: strings('config.answerVocab', c.answerVocab, DEFAULT_ANSWER_VOCAB),
      dim: size('config.dim', c.dim, 64, 8192),
      hidden: size('config.hidden', c.hidden, 128, 8192),
      gridSize: size('config.gridSize', c.gridSize, 4, 64),
      maxTokens: size('config.maxTokens', c.maxTokens, 16, 4096),
    };
    if (architecture === 'tiny-vlm') return student as unknown as Required<ArchitectureConfigs[A]>;
    const heads = size('config.heads', c.heads, 4, 64);
    if (student.dim % heads !== 0) {
      throw argError('ERR_SDVP_RANGE', 'config.heads', `a divisor of dim (${student.dim})`, heads);
    }
    return { ...student, layers: size('config.layers', c.layers, 2, 32), heads } as unknown as Required<
      ArchitectureConfigs[A]
    >;
  }
  const teacher = {
    ...common,
    labels: strings('config.labels', c.labels, DEFAULT_LABELS),
    hidden: size('config.hidden', c.hidden, 64, 8192),
  };
  if (architecture === 'grid-detector') {
    return { ...teacher, gridSize: size('config.gridSize', c.gridSize, 4, 64) } as unknown as Required<
      ArchitectureConfigs[A]
    >;
  }
  return teacher as unknown as Required<ArchitectureConfigs[A]>;
}

/**
 * Creates a freshly initialised built-in model. `tiny-vlm` is the vision-language student; the two
 * teachers are `cnn-classifier` (image crops) and `grid-detector` (localisation).
 */
export async function createModel<A extends ArchitectureName>(
  architecture: A,
  config: ArchitectureConfigs[A] = {},
): Promise<Model> {
  const full = architectureConfig(architecture, config) as unknown as Required<
    TransformerVlmConfig & CnnClassifierConfig & GridDetectorConfig
  >;
  const { device, ...recorded } = full;
  const native: NativeArchitectureConfig = {
    architecture,
    channels: full.channels,
    strides: full.strides,
    imageSize: full.imageSize,
    dim: full.dim ?? 0,
    hidden: full.hidden,
    gridSize: full.gridSize ?? 1,
    maxTokens: full.maxTokens ?? 1,
    layers: full.layers ?? 1,
    heads: full.heads ?? 1,
    tokenVocab: full.tokenVocab ?? [],
    answerVocab: full.answerVocab ?? [],
    labels: full.labels ?? [],
    seed: full.seed,
    configJson: JSON.stringify({ architecture, ...recorded }),
  };
  const model = new (torchBinding().TorchModel)();
  try {
    await model.create(native, device);
  } catch (error) {
    const converted = toSdvpError(error);
    if (converted instanceof SdvpError) throw converted;
    throw new SdvpError('ERR_SDVP_TORCH', `creating '${architecture}' failed: ${String(error)}`, {
      cause: error,
    });
  }
  return new Model(model);
}
