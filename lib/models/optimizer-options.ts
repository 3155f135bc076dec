// Optimizer options (AdamW, SGD with momentum), learning-rate schedules and parameter groups: the public
// types, their defaults and their validation into the addon's form.

import { SdvpError, argError } from '../errors/sdvp-error';
import { optionalFiniteNumber } from '../errors/validators';
import type { NativeOptimizerConfig } from '../native/native-torch-binding';
import { type NamePattern, normalizePatterns } from './name-patterns';

/** The rate multiplies the base rate of every group; steps count from 1. */
export type LrSchedule =
  | { kind: 'constant' }
  /** Rises linearly from 0 to the base rate over `warmupSteps`, then stays. */
  | { kind: 'linear-warmup'; warmupSteps: number }
  /** Optional linear warm-up, then half a cosine down to `minFactor` × base at `totalSteps` (then flat). */
  | { kind: 'cosine'; totalSteps: number; warmupSteps?: number; minFactor?: number };

/** Parameters whose name matches `match` (the first matching group wins) take these settings. */
export interface ParamGroup {
  match: NamePattern | NamePattern[];
  lr?: number;
  weightDecay?: number;
}

interface CommonOptions {
  lr: number;
  /** Default: 0.01 for AdamW (decoupled), 0 for SGD (added to the gradient). */
  weightDecay?: number;
  schedule?: LrSchedule;
  groups?: ParamGroup[];
  /** Clip the global L2 norm of the gradients to this before the step. Default: no clipping. */
  maxGradNorm?: number;
}

export interface AdamWOptions extends CommonOptions {
  type: 'adamw';
  /** Default [0.9, 0.999]. */
  betas?: [number, number];
  /** Default 1e-8. */
  eps?: number;
}

export interface SgdOptions extends CommonOptions {
  type: 'sgd';
  /** Default 0.9. */
  momentum?: number;
  /** Default 0. */
  dampening?: number;
  /** Default false. */
  nesterov?: boolean;
}

export type OptimizerOptions = AdamWOptions | SgdOptions;

const SCHEDULES = { constant: 0, 'linear-warmup': 1, cosine: 2 } as const;

function stepCount(field: string, value: unknown, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw argError(
      typeof value === 'number' ? 'ERR_SDVP_RANGE' : 'ERR_SDVP_ARG',
      field,
      `an integer ≥ ${min}`,
      value,
    );
  }
  return value;
}

function checkKeys(value: object, field: string, allowed: string[]): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      throw argError('ERR_SDVP_ARG', `${field}.${key}`, `absent (allowed: ${allowed.join(', ')})`, key);
    }
  }
}

function prepareSchedule(value: unknown, field: string): NativeOptimizerConfig['schedule'] {
  if (value === undefined) return { kind: 0, warmupSteps: 0, totalSteps: 0, minFactor: 0 };
  if (typeof value !== 'object' || value === null)
    throw argError('ERR_SDVP_ARG', field, 'a schedule object', value);
  const schedule = value as Partial<{
    kind: string;
    warmupSteps: number;
    totalSteps: number;
    minFactor: number;
  }>;
  if (typeof schedule.kind !== 'string' || !(schedule.kind in SCHEDULES)) {
    throw argError(
      'ERR_SDVP_OPTION',
      `${field}.kind`,
      "'constant', 'linear-warmup' or 'cosine'",
      schedule.kind,
    );
  }
  const kind = SCHEDULES[schedule.kind as keyof typeof SCHEDULES];
  if (kind === 0) {
    checkKeys(schedule, field, ['kind']);
    return { kind, warmupSteps: 0, totalSteps: 0, minFactor: 0 };
  }
  if (kind === 1) {
    checkKeys(schedule, field, ['kind', 'warmupSteps']);
    if (schedule.warmupSteps === undefined)
      throw argError('ERR_SDVP_ARG', `${field}.warmupSteps`, 'an integer ≥ 1', undefined);
    return {
      kind,
      warmupSteps: stepCount(`${field}.warmupSteps`, schedule.warmupSteps, 0, 1),
      totalSteps: 0,
      minFactor: 0,
    };
  }
  checkKeys(schedule, field, ['kind', 'totalSteps', 'warmupSteps', 'minFactor']);
  if (schedule.totalSteps === undefined)
    throw argError('ERR_SDVP_ARG', `${field}.totalSteps`, 'an integer ≥ 1', undefined);
  const totalSteps = stepCount(`${field}.totalSteps`, schedule.totalSteps, 0, 1);
  const warmupSteps = stepCount(`${field}.warmupSteps`, schedule.warmupSteps, 0, 0);
  if (warmupSteps >= totalSteps) {
    throw new SdvpError(
      'ERR_SDVP_RANGE',
      `${field}.warmupSteps (${warmupSteps}) must be below totalSteps (${totalSteps}).`,
      {
        field: `${field}.warmupSteps`,
      },
    );
  }
  const minFactor = optionalFiniteNumber(
    `${field}.minFactor`,
    schedule.minFactor,
    0,
    (x) => x >= 0 && x <= 1,
    'a number in [0, 1]',
  );
  return { kind, warmupSteps, totalSteps, minFactor };
}

/** Checks optimizer options and fills their defaults, in the addon's form. */
export function prepareOptimizer(value: unknown, field = 'optimizer'): NativeOptimizerConfig {
  if (typeof value !== 'object' || value === null)
    throw argError('ERR_SDVP_ARG', field, 'an optimizer options object', value);
  const options = value as {
    type?: unknown;
    lr?: unknown;
    weightDecay?: unknown;
    maxGradNorm?: unknown;
    betas?: unknown[];
    eps?: unknown;
    momentum?: unknown;
    dampening?: unknown;
    nesterov?: unknown;
    schedule?: unknown;
    groups?: unknown;
  };
  if (options.type !== 'adamw' && options.type !== 'sgd') {
    throw argError('ERR_SDVP_OPTION', `${field}.type`, "'adamw' or 'sgd'", options.type);
  }
  const common = ['type', 'lr', 'weightDecay', 'schedule', 'groups', 'maxGradNorm'];
  checkKeys(
    options,
    field,
    options.type === 'adamw' ? [...common, 'betas', 'eps'] : [...common, 'momentum', 'dampening', 'nesterov'],
  );
  if (options.lr === undefined)
    throw argError('ERR_SDVP_ARG', `${field}.lr`, 'a learning rate > 0', undefined);
  const lr = optionalFiniteNumber(`${field}.lr`, options.lr, 0, (x) => x > 0, 'a finite number > 0');
  const adamw = options.type === 'adamw';
  const weightDecay = optionalFiniteNumber(
    `${field}.weightDecay`,
    options.weightDecay,
    adamw ? 0.01 : 0,
    (x) => x >= 0,
    'a finite number ≥ 0',
  );
  const maxGradNorm = optionalFiniteNumber(
    `${field}.maxGradNorm`,
    options.maxGradNorm,
    0,
    (x) => x > 0,
    'a finite number > 0',
  );
  let beta1 = 0.9;
  let beta2 = 0.999;
  if (options.betas !== undefined) {
    if (!Array.isArray(options.betas) || options.betas.length !== 2) {
      throw argError('ERR_SDVP_ARG', `${field}.betas`, 'a pair [beta1, beta2]', options.betas);
    }
    beta1 = optionalFiniteNumber(
      `${field}.betas[0]`,
      options.betas[0],
      0.9,
      (x) => x >= 0 && x < 1,
      'a number in [0, 1)',
    );
    beta2 = optionalFiniteNumber(
      `${field}.betas[1]`,
      options.betas[1],
      0.999,
      (x) => x >= 0 && x < 1,
      'a number in [0, 1)',
    );
  }
  const eps = optionalFiniteNumber(`${field}.eps`, options.eps, 1e-8, (x) => x > 0, 'a finite number > 0');
  const momentum = optionalFiniteNumber(
    `${field}.momentum`,
    options.momentum,
    adamw ? 0 : 0.9,
    (x) => x >= 0 && x < 1,
    'a number in [0, 1)',
  );
  const dampening = optionalFiniteNumber(
    `${field}.dampening`,
    options.dampening,
    0,
    (x) => x >= 0 && x <= 1,
    'a number in [0, 1]',
  );
  if (options.nesterov !== undefined && typeof options.nesterov !== 'boolean') {
    throw argError('ERR_SDVP_ARG', `${field}.nesterov`, 'a boolean', options.nesterov);
  }
  const nesterov = (options.nesterov as boolean | undefined) ?? false;
  if (nesterov && (momentum === 0 || dampening !== 0)) {
    throw new SdvpError('ERR_SDVP_OPTION', `${field}.nesterov needs momentum > 0 and dampening 0.`, {
      field: `${field}.nesterov`,
    });
  }
  const groups: NativeOptimizerConfig['groups'] = [];
  if (options.groups !== undefined) {
    if (!Array.isArray(options.groups))
      throw argError('ERR_SDVP_ARG', `${field}.groups`, 'an array of parameter groups', options.groups);
    options.groups.forEach((group: unknown, i) => {
      const groupField = `${field}.groups[${i}]`;
      if (typeof group !== 'object' || group === null)
        throw argError('ERR_SDVP_ARG', groupField, 'a { match, lr?, weightDecay? } object', group);
      checkKeys(group, groupField, ['match', 'lr', 'weightDecay']);
      const { match, lr: groupLr, weightDecay: groupDecay } = group as ParamGroup;
      const settings: { lr?: number; weightDecay?: number } = {};
      if (groupLr !== undefined)
        settings.lr = optionalFiniteNumber(
          `${groupField}.lr`,
          groupLr,
          0,
          (x) => x >= 0,
          'a finite number ≥ 0',
        );
      if (groupDecay !== undefined) {
        settings.weightDecay = optionalFiniteNumber(
          `${groupField}.weightDecay`,
          groupDecay,
          0,
          (x) => x >= 0,
          'a finite number ≥ 0',
        );
      }
      for (const pattern of normalizePatterns(match, `${groupField}.match`))
        groups.push({ ...pattern, ...settings });
    });
  }
  return {
    kind: adamw ? 0 : 1,
    lr,
    weightDecay,
    beta1,
    beta2,
    eps,
    momentum,
    dampening,
    nesterov,
    maxGradNorm,
    schedule: prepareSchedule(options.schedule, `${field}.schedule`),
    groups,
  };
}

/** The public form of a configuration the addon reports (for example one restored from a checkpoint). */
export function optimizerFromNative(native: NativeOptimizerConfig): OptimizerOptions {
  const schedule: LrSchedule =
    native.schedule.kind === 0
      ? { kind: 'constant' }
      : native.schedule.kind === 1
        ? { kind: 'linear-warmup', warmupSteps: native.schedule.warmupSteps }
        : {
            kind: 'cosine',
            totalSteps: native.schedule.totalSteps,
            warmupSteps: native.schedule.warmupSteps,
            minFactor: native.schedule.minFactor,
          };
  const groups: ParamGroup[] = native.groups.map((group) => {
    const out: ParamGroup = { match: group.regex ? new RegExp(group.pattern) : group.pattern };
    if (group.lr !== undefined) out.lr = group.lr;
    if (group.weightDecay !== undefined) out.weightDecay = group.weightDecay;
    return out;
  });
  const common = { lr: native.lr, weightDecay: native.weightDecay, schedule, groups };
  const clip = native.maxGradNorm > 0 ? { maxGradNorm: native.maxGradNorm } : {};
  if (native.kind === 0)
    return { type: 'adamw', ...common, ...clip, betas: [native.beta1, native.beta2], eps: native.eps };
  return {
    type: 'sgd',
    ...common,
    ...clip,
    momentum: native.momentum,
    dampening: native.dampening,
    nesterov: native.nesterov,
  };
}
