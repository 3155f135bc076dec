// The teacher contract: bound to one module and sub-task, it labels the instances it covers in batches,
// in its own label space. TorchScript, precomputed and external-command teachers all implement it.

import { visprogModuleOf } from '../program/framework-bridge';
import type { RasterImage } from '../program/image';
import type { SubTaskInstance } from '../program/sub-tasks';
import type { TeacherIdentity } from './label-store';
import type { TeacherOutput } from './teacher-output';

/** Where teachers get pixels: images by ref, and the file behind a ref (for external teachers). */
export interface ImageSource {
  image(ref: string): Promise<RasterImage>;
  /** The absolute path of the file a ref names. */
  path(ref: string): string;
}

export interface LabelContext {
  images: ImageSource;
  signal?: AbortSignal;
  /** Where teachers write what they say besides their answers (an external teacher's stderr). */
  log: (line: string) => void;
}

export interface Teacher {
  readonly identity: TeacherIdentity;
  readonly batchSize: number;
  /** Batches that may be in flight at once for this teacher (the scheduler's per-teacher bound). */
  readonly maxInFlight: number;
  /** Whether the teacher can answer this instance (its module, sub-task and accepted texts). */
  covers(instance: SubTaskInstance): boolean;
  /** One output per instance, in order. Rejects (ERR_SDVP_TEACHER) when it cannot. */
  label(batch: readonly SubTaskInstance[], context: LabelContext): Promise<TeacherOutput[]>;
  close(): Promise<void>;
}

/** What every teacher kind is configured with: its name, what it labels, and its batch size. */
export interface TeacherBinding {
  id: string;
  version: string;
  module: string;
  subTask: string;
  batchSize: number;
  accepts?: AcceptRule;
}

/** Which instance texts a teacher accepts (all, when absent). */
export interface AcceptRule {
  texts?: string[];
  /** A regular expression (JavaScript syntax, case-insensitive) the whole text must match. */
  pattern?: string;
}

/** The coverage test shared by every teacher kind. */
export function coversInstance(
  identity: Pick<TeacherIdentity, 'module' | 'subTask'>,
  accepts: AcceptRule | undefined,
  instance: SubTaskInstance,
): boolean {
  // A teacher of a VisProg module also labels the other framework's calls of the same sub-task (VQA: simple_query).
  if (instance.subTask !== identity.subTask) return false;
  if (instance.module !== identity.module && visprogModuleOf(instance.module) !== identity.module)
    return false;
  if (!accepts) return true;
  const text = (instance.input.text ?? '').trim();
  if (accepts.texts && !accepts.texts.some((accepted) => accepted.toLowerCase() === text.toLowerCase()))
    return false;
  if (accepts.pattern !== undefined && !new RegExp(`^(?:${accepts.pattern})$`, 'i').test(text)) return false;
  return true;
}
