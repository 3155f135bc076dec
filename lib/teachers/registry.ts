// The teacher registry file: which teachers exist, what each labels and how to run it. Validated with zod;
// relative paths resolve against the file's folder.
//
//   { "teachers": [{ "id": "digit-vqa", "kind": "torchscript" | "precomputed" | "command", "module": "VQA",
//     "subTask": "vqa", "path": "…" | "command": ["python3", "teacher.py"], "batchSize": 64, "version": "1",
//     "accepts": { "texts": [...], "pattern": "…" }, "output": "classification" | "detection", "device": "cpu",
//     "timeoutMs": 60000, "retries": 2, "minScore": 0, "boxScale": 0.28 }] }

import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { zodIssue } from '../data/dataset-format';
import { SdvpError } from '../errors/sdvp-error';
import { SUB_TASK_KINDS } from '../program/module-registry';
import { CommandTeacher } from './command-teacher';
import { PrecomputedTeacher } from './precomputed-teacher';
import type { Teacher } from './teacher';
import type { TeacherOutputKind } from './teacher-output';
import { TorchScriptTeacher } from './torchscript-teacher';

const acceptsSchema = z
  .object({ texts: z.array(z.string()).min(1).optional(), pattern: z.string().min(1).optional() })
  .strict()
  .refine((accepts) => {
    if (accepts.pattern === undefined) return true;
    try {
      new RegExp(accepts.pattern);
      return true;
    } catch {
      return false;
    }
  }, 'pattern must be a valid regular expression');

export const teacherEntrySchema = z
  .object({
    id: z.string().regex(/^[A-Za-z0-9._-]+$/, 'an id of letters, digits, dots, dashes and underscores'),
    kind: z.enum(['torchscript', 'precomputed', 'command']),
    module: z.string().min(1),
    subTask: z.enum(SUB_TASK_KINDS as unknown as [string, ...string[]]),
    version: z.string().min(1).default('1'),
    batchSize: z.number().int().min(1).max(65536).default(64),
    path: z.string().min(1).optional(),
    command: z.array(z.string()).min(1).optional(),
    output: z.enum(['classification', 'detection']).optional(),
    accepts: acceptsSchema.optional(),
    device: z.string().optional(),
    timeoutMs: z.number().int().min(1).optional(),
    retries: z.number().int().min(0).max(100).optional(),
    /** Detection boxes scoring below this are dropped by the adapter. */
    minScore: z.number().min(0).default(0),
    boxScale: z.number().positive().max(1).optional(),
  })
  .strict()
  .superRefine((entry, context) => {
    if ((entry.kind === 'torchscript' || entry.kind === 'precomputed') && entry.path === undefined)
      context.addIssue({ code: 'custom', path: ['path'], message: `a ${entry.kind} teacher needs a path` });
    if (entry.kind === 'command' && entry.command === undefined)
      context.addIssue({
        code: 'custom',
        path: ['command'],
        message: 'a command teacher needs a command array',
      });
  });

export type TeacherEntry = z.infer<typeof teacherEntrySchema>;

export const registrySchema = z.object({ teachers: z.array(teacherEntrySchema) }).strict();

/** A registry's entries with paths made absolute. */
export interface TeacherRegistry {
  file: string;
  folder: string;
  teachers: TeacherEntry[];
}

/** What a teacher produces: detections for grounding, class distributions otherwise (unless the entry says). */
export function outputKindOf(entry: Pick<TeacherEntry, 'output' | 'subTask' | 'module'>): TeacherOutputKind {
  return (
    entry.output ?? (entry.subTask === 'grounding' || entry.module === 'LOC' ? 'detection' : 'classification')
  );
}

/** Parses a registry object (as read from `file`). */
export function parseTeacherRegistry(value: unknown, file: string): TeacherRegistry {
  const parsed = registrySchema.safeParse(value);
  if (!parsed.success) {
    const { field, message } = zodIssue(parsed.error);
    throw new SdvpError('ERR_SDVP_CONFIG', `Teacher registry ${file}: field '${field}': ${message}.`, {
      field,
    });
  }
  const folder = dirname(resolve(file));
  const seen = new Set<string>();
  const teachers = parsed.data.teachers.map((entry, i) => {
    if (seen.has(entry.id)) {
      throw new SdvpError(
        'ERR_SDVP_CONFIG',
        `Teacher registry ${file}: teachers.${i}.id '${entry.id}' is used twice.`,
        {
          field: `teachers.${i}.id`,
        },
      );
    }
    seen.add(entry.id);
    return entry.path !== undefined && !isAbsolute(entry.path)
      ? { ...entry, path: resolve(folder, entry.path) }
      : entry;
  });
  return { file: resolve(file), folder, teachers };
}

/** Reads and validates a registry file. */
export function loadTeacherRegistry(file: string): TeacherRegistry {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ? 'ERR_SDVP_IO' : 'ERR_SDVP_PARSE';
    throw new SdvpError(code, `Teacher registry ${file} cannot be read: ${(error as Error).message}`, {
      field: 'teachers',
    });
  }
  return parseTeacherRegistry(value, file);
}

/** Picks entries by id; an unknown id is an error listing the registry's ids. */
export function selectTeachers(registry: TeacherRegistry, ids?: readonly string[]): TeacherEntry[] {
  if (!ids || ids.length === 0) return registry.teachers;
  return ids.map((id) => {
    const entry = registry.teachers.find((candidate) => candidate.id === id);
    if (!entry) {
      throw new SdvpError(
        'ERR_SDVP_CONFIG',
        `Unknown teacher id '${id}' (registry ${registry.file} has: ${registry.teachers.map((t) => t.id).join(', ') || 'none'}).`,
        { field: 'teacher' },
      );
    }
    return entry;
  });
}

/** Opens the teachers of registry entries (loads models, prepares commands; processes start on first use). */
export async function openTeachers(
  registry: TeacherRegistry,
  entries = registry.teachers,
): Promise<Teacher[]> {
  const teachers: Teacher[] = [];
  try {
    for (const entry of entries) {
      const common = {
        id: entry.id,
        version: entry.version,
        module: entry.module,
        subTask: entry.subTask,
        batchSize: entry.batchSize,
        accepts: entry.accepts,
      };
      if (entry.kind === 'torchscript') {
        teachers.push(
          await TorchScriptTeacher.load({
            ...common,
            path: entry.path!,
            device: entry.device,
            boxScale: entry.boxScale,
          }),
        );
      } else if (entry.kind === 'precomputed') {
        teachers.push(new PrecomputedTeacher({ ...common, path: entry.path!, output: outputKindOf(entry) }));
      } else {
        teachers.push(
          new CommandTeacher({
            ...common,
            command: entry.command!,
            cwd: registry.folder,
            output: outputKindOf(entry),
            timeoutMs: entry.timeoutMs,
            retries: entry.retries,
          }),
        );
      }
    }
  } catch (error) {
    await Promise.all(teachers.map((teacher) => teacher.close()));
    throw error;
  }
  return teachers;
}
