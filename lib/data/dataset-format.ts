// The on-disk dataset format (JSON Lines records, scene graphs, manifest), as zod schemas: the generator
// writes it, users bring their own data in it, and every read is validated into errors naming file, line and field.

import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { SdvpError } from '../errors/sdvp-error';

const box = z.tuple([z.number(), z.number(), z.number(), z.number()]);

/** The ground truth of one LOC or VQA step, on the input the step gets when every step before it is right. */
export const subAnswerSchema = z.object({
  /** The program line of the step (1-based). */
  line: z.number().int().positive(),
  module: z.string().min(1),
  /** Which input image the step looks at (IMAGE, LEFT, RIGHT...). */
  input: z.string().min(1),
  /** The crop of that image the step gets, in its pixels; null for the whole image. */
  box: box.nullable(),
  /** The question or object phrase. */
  text: z.string().nullable(),
  /** VQA: the right answer. */
  answer: z.string().optional(),
  /** LOC: the boxes of the matching objects, in the input image's pixels. */
  boxes: z.array(box).optional(),
});
export type SubAnswer = z.infer<typeof subAnswerSchema>;

/** One question: images by program input name, paths relative to the dataset folder. */
export const taskRecordSchema = z.object({
  id: z.string().min(1),
  task: z.string().min(1),
  template: z.string().optional(),
  images: z.record(z.string().regex(/^[A-Z][A-Z0-9_]*$/), z.string().min(1)),
  question: z.string(),
  /** A VisProg program (or a ViperGPT one with framework 'viper'). */
  program: z.string().min(1),
  framework: z.enum(['visprog', 'viper']).optional(),
  /** The same question as a ViperGPT program, when the dataset has one. */
  viperProgram: z.string().optional(),
  answer: z.string(),
  subAnswers: z.array(subAnswerSchema).optional(),
  /** The ground truth of the ViperGPT program's find and simple_query calls (lines of viperProgram). */
  viperSubAnswers: z.array(subAnswerSchema).optional(),
});
export type TaskRecord = z.infer<typeof taskRecordSchema>;

const colorName = z.enum(['red', 'green', 'blue', 'yellow', 'magenta', 'cyan']);

/** A scene graph of the digit-scene benchmark. */
export const sceneRecordSchema = z.object({
  image: z.string().min(1),
  width: z.number().int().positive(),
  height: z.number().int().positive(),
  backgroundSeed: z.number().int().nonnegative(),
  objects: z.array(
    z.object({
      digit: z.number().int().min(0).max(9),
      color: colorName,
      box,
      mnist: z.number().int().nonnegative(),
      rgb: z.tuple([z.number(), z.number(), z.number()]),
    }),
  ),
});
export type SceneRecord = z.infer<typeof sceneRecordSchema>;

export const DATASET_FORMAT = 'sdvp-dataset';
export const DATASET_VERSION = 1;

/** `dataset.json`: what the folder holds. Optional for user data (tasks are then found by folder). */
export const manifestSchema = z.object({
  format: z.literal(DATASET_FORMAT),
  version: z.literal(DATASET_VERSION),
  /** Task name → split name → records file, relative to the folder. */
  tasks: z.record(z.string(), z.record(z.string(), z.string())),
  /** Split name → scene graphs file (the digit benchmark; absent for user data). */
  scenes: z.record(z.string(), z.string()).optional(),
  generator: z
    .object({
      name: z.string(),
      seed: z.number().int(),
      scenes: z.number().int(),
      imageSize: z.number().int(),
      sdvpVersion: z.string(),
    })
    .optional(),
  counts: z.record(z.string(), z.record(z.string(), z.number().int())).optional(),
});
export type DatasetManifest = z.infer<typeof manifestSchema>;

/** Formats the first zod issue as "field: message". */
export function zodIssue(error: z.ZodError): { field: string; message: string } {
  const issue = error.issues[0];
  const field = issue.path.length > 0 ? issue.path.map(String).join('.') : '(record)';
  return { field, message: issue.message };
}

/** Reads and validates a JSON Lines file; an error names the file, the line and the field. */
export function readJsonLines<T>(path: string, schema: z.ZodType<T>): T[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new SdvpError('ERR_SDVP_IO', `Cannot read ${path}: ${(error as Error).message}`, {
      field: path,
      cause: error,
    });
  }
  const rows: T[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      throw new SdvpError('ERR_SDVP_PARSE', `${path}:${i + 1}: not JSON (${(error as Error).message}).`, {
        field: `${path}:${i + 1}`,
      });
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success) {
      const { field, message } = zodIssue(parsed.error);
      throw new SdvpError('ERR_SDVP_PARSE', `${path}:${i + 1}: field '${field}': ${message}.`, {
        field: `${path}:${i + 1}:${field}`,
      });
    }
    rows.push(parsed.data);
  }
  return rows;
}

/** JSON Lines text of rows (one compact JSON object per line, a final newline). */
export function toJsonLines(rows: readonly unknown[]): string {
  return rows.map((row) => JSON.stringify(row)).join('\n') + (rows.length > 0 ? '\n' : '');
}
