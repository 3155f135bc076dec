// The configuration of a distillation run: JSON, validated with zod into errors that name the field.
// Every field, its meaning and its default are documented in docs/distill.md; paths resolve against the
// config file's folder.

import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { SdvpError } from '../errors/sdvp-error';

const ramp = z.union([
  z.number().min(0),
  z.object({ start: z.number().min(0), end: z.number().min(0) }).strict(),
]);

export const runConfigSchema = z
  .object({
    /** Dataset folder. */
    data: z.string().min(1),
    /** The student: a TorchScript file meeting the model contract (an sdvp checkpoint keeps its optimizer state). */
    student: z.string().min(1),
    /** Teacher registry file. */
    teachers: z.string().min(1),
    /** Only these teachers of the registry (default: all). */
    teacherIds: z.array(z.string().min(1)).min(1).optional(),
    /** The run's folder (default: `run` beside the config file). */
    run: z.string().min(1).optional(),
    seed: z.number().int().min(0).max(0xffffffff).default(0),
    /** Which program of each record runs: the VisProg program or the record's ViperGPT version. */
    framework: z.enum(['visprog', 'viper']).default('visprog'),
    /** Target tasks whose programs are distilled. */
    tasks: z.array(z.string().min(1)).min(1).default(['digits-qa', 'digits-pairs']),
    /** Tasks evaluated end to end (targets and retention). */
    evalTasks: z.array(z.string().min(1)).min(1).default(['digits-qa', 'digits-pairs', 'colors-qa']),
    trainSplit: z.string().min(1).default('train'),
    evalSplit: z.string().min(1).default('test'),
    /** 'dependency' (one stage per module, the programs' dependency order), 'joint' (all at once) or a module list. */
    stages: z
      .union([z.literal('dependency'), z.literal('joint'), z.array(z.string().min(1)).min(1)])
      .default('dependency'),
    /** Passes over a stage's instances (the step count of a stage is epochs × instances / batchSize). */
    epochs: z.number().positive().max(1000).default(3),
    /** A cap on a stage's steps. */
    maxStepsPerStage: z.number().int().positive().optional(),
    batchSize: z.number().int().min(1).max(8192).default(64),
    optimizer: z
      .object({
        lr: z.number().positive().default(1e-3),
        weightDecay: z.number().min(0).default(0.01),
        warmupSteps: z.number().int().min(0).default(20),
        /** The learning rate at a stage's end, as a fraction of lr (cosine decay). */
        minFactor: z.number().min(0).max(1).default(0.1),
        maxGradNorm: z.number().positive().default(1),
      })
      .strict()
      .default({ lr: 1e-3, weightDecay: 0.01, warmupSteps: 20, minFactor: 0.1, maxGradNorm: 1 }),
    objective: z
      .object({
        /** α: weight of the cross-entropy on ground-truth sub-answers (a number, or a ramp over the stage). */
        hardWeight: ramp.default(0.5),
        /** β: weight of the divergence from the teacher's soft labels. */
        teacherWeight: ramp.default(0.5),
        /** τ of the divergence. */
        temperature: ramp.default({ start: 2, end: 1 }),
        /** Soft labels kept per row (top-k with the tail mass): answers, grid cells. */
        topKAnswers: z.number().int().min(1).default(5),
        topKCells: z.number().int().min(1).default(16),
        /** IoU a run's crop needs with the record's ground-truth crop for its sub-answer to be a hard label. */
        hardLabelIou: z.number().min(0).max(1).default(0.5),
      })
      .strict()
      .default({
        hardWeight: 0.5,
        teacherWeight: 0.5,
        temperature: { start: 2, end: 1 },
        topKAnswers: 5,
        topKCells: 16,
        hardLabelIou: 0.5,
      }),
    pacing: z
      .object({ start: z.number().gt(0).max(1).default(0.3), fullAt: z.number().min(0).max(1).default(0.5) })
      .strict()
      .default({ start: 0.3, fullAt: 0.5 }),
    antiForgetting: z
      .object({
        enabled: z.boolean().default(true),
        /** λ: weight of a replayed row relative to a stage row. */
        weight: z.number().min(0).default(1),
        /** Replayed rows per stage row in a step. */
        replayFraction: z.number().gt(0).max(4).default(0.5),
        /** Every this many steps, a replay-only step on the head the stage does not train (0: never). */
        otherHeadEvery: z.number().int().min(0).default(2),
      })
      .strict()
      .default({ enabled: true, weight: 1, replayFraction: 0.5, otherHeadEvery: 2 }),
    /** Checkpoint every this many steps (and at every stage end). */
    checkpointEvery: z.number().int().min(1).default(200),
    /** Programs in flight when executing them. */
    concurrency: z.number().int().min(1).default(64),
    /** CPU threads of LibTorch (0: every core). */
    threads: z.number().int().min(0).default(0),
  })
  .strict();

export type RunConfig = z.infer<typeof runConfigSchema>;
export type RunConfigInput = z.input<typeof runConfigSchema>;

/** Validates a config object; `base` is the folder relative paths resolve against. */
export function parseRunConfig(value: unknown, base: string, source = 'config'): RunConfig {
  const parsed = runConfigSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue.path.map(String).join('.') || '(config)';
    throw new SdvpError('ERR_SDVP_CONFIG', `${source}: field '${field}': ${issue.message}.`, { field });
  }
  const config = parsed.data;
  const absolute = (path: string) => (isAbsolute(path) ? path : resolve(base, path));
  return {
    ...config,
    data: absolute(config.data),
    student: absolute(config.student),
    teachers: absolute(config.teachers),
    run: absolute(config.run ?? 'run'),
  };
}

/** Reads and validates a config file. */
export function loadRunConfig(file: string): RunConfig {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ? 'ERR_SDVP_IO' : 'ERR_SDVP_PARSE';
    throw new SdvpError(code, `Run config ${file} cannot be read: ${(error as Error).message}`, {
      field: 'config',
    });
  }
  return parseRunConfig(value, dirname(resolve(file)), file);
}
