// Sub-task instances: the concrete inputs each distillable module saw in a trace, content-hashed so duplicates merge.

import { createHash } from 'node:crypto';
import { type Box, type ImageReference, boxInSource, imageReference, isRasterImage } from './image';
import { type ModuleRegistry, type SubTaskKind, defaultModuleRegistry } from './module-registry';
import type { Framework } from './step-graph';
import type { ProgramTrace } from './trace';
import { isBox, regionBox } from './visprog-semantics';

/** JSON data. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** What a distillable module was asked: the image (source and crop box), its text, and its other arguments. */
export interface SubTaskInput {
  image: ImageReference | null;
  /** The question, object phrase or property the module was given (its registry `textArgument`), if any. */
  text: string | null;
  /** Every other argument that is data: strings, numbers, option lists, candidate boxes in source pixels. */
  args: Record<string, JsonValue>;
}

/** One distillable call: teachers label its input, and the student is distilled on it. */
export interface SubTaskInstance {
  /** sha256 of the module, sub-task kind and input: identical instances share it. */
  hash: string;
  framework: Framework;
  module: string;
  subTask: SubTaskKind;
  input: SubTaskInput;
  programId: string;
  stepId: number | null;
  line: number | null;
  /** What the module (the current student) answered, when that is JSON data. */
  output?: JsonValue;
}

export interface SubTaskOptions {
  registry?: ModuleRegistry;
}

function isImageReference(value: unknown): value is ImageReference {
  if (value === null || typeof value !== 'object') return false;
  const reference = value as ImageReference;
  return (
    typeof reference.ref === 'string' &&
    (reference.box === null || reference.box === undefined || isBox(reference.box))
  );
}

function toImageReference(value: unknown): ImageReference | null {
  if (isRasterImage(value)) return imageReference(value);
  if (isImageReference(value))
    return { ref: value.ref, box: value.box ? ([...value.box] as unknown as Box) : null };
  return null;
}

/** Converts an argument to JSON data; regions become boxes in source pixels. Undefined when it is not data. */
function toJson(value: unknown, image: unknown, depth = 0): JsonValue | undefined {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (depth > 8) return undefined;
  if (Array.isArray(value)) {
    const items: JsonValue[] = [];
    for (const item of value) {
      const box = regionBox(item);
      if (box && isRasterImage(image)) {
        items.push([...boxInSource(image, box)]);
        continue;
      }
      const converted = box ? [...box] : toJson(item, image, depth + 1);
      if (converted === undefined) return undefined;
      items.push(converted);
    }
    return items;
  }
  if (isRasterImage(value) || isImageReference(value)) {
    const reference = toImageReference(value)!;
    return { ref: reference.ref, box: reference.box ? [...reference.box] : null };
  }
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const result: Record<string, JsonValue> = {};
    for (const [key, entry] of Object.entries(value as Record<string, unknown>)) {
      const converted = toJson(entry, image, depth + 1);
      if (converted !== undefined) result[key] = converted;
    }
    return result;
  }
  return undefined;
}

function canonicalJson(value: JsonValue): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(value[key])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The content hash of a sub-task: equal for equal module, kind, image reference, crop box, text and arguments. */
export function subTaskHash(module: string, subTask: SubTaskKind, input: SubTaskInput): string {
  const image: JsonValue = input.image
    ? { ref: input.image.ref, box: input.image.box ? [...input.image.box] : null }
    : null;
  const content = canonicalJson({ module, subTask, image, text: input.text, args: input.args });
  return createHash('sha256').update(content).digest('hex');
}

/**
 * The distillable sub-task instances of one trace (VisProg runs and imported ViperGPT traces alike): every
 * step whose module is a distillable neural module and whose model was actually called, with its input.
 */
export function subTaskInstances(trace: ProgramTrace, options: SubTaskOptions = {}): SubTaskInstance[] {
  const registry = options.registry ?? defaultModuleRegistry();
  const instances: SubTaskInstance[] = [];
  for (const step of trace.steps) {
    if (!step.moduleCalled) continue;
    const spec = registry.get(trace.framework, step.module);
    if (!spec?.distillable) continue;
    const imageValue = step.inputs.image;
    const image = toImageReference(imageValue);
    const textValue = spec.textArgument ? step.inputs[spec.textArgument] : undefined;
    const text = typeof textValue === 'string' ? textValue : null;
    const args: Record<string, JsonValue> = {};
    for (const [name, value] of Object.entries(step.inputs)) {
      if (name === 'image' || name === spec.textArgument || value === undefined) continue;
      const converted = toJson(value, imageValue);
      if (converted !== undefined) args[name] = converted;
    }
    const input: SubTaskInput = { image, text, args };
    const instance: SubTaskInstance = {
      hash: subTaskHash(spec.name, spec.subTask, input),
      framework: trace.framework,
      module: spec.name,
      subTask: spec.subTask,
      input,
      programId: trace.programId,
      stepId: step.stepId,
      line: step.line,
    };
    const output = step.error === null ? toJson(step.value, imageValue) : undefined;
    if (output !== undefined) instance.output = output;
    instances.push(instance);
  }
  return instances;
}

/** Groups instances by content hash: the first of each group, and how many times each hash occurred. */
export function dedupeSubTaskInstances(instances: Iterable<SubTaskInstance>): {
  unique: SubTaskInstance[];
  occurrences: Map<string, number>;
} {
  const unique: SubTaskInstance[] = [];
  const occurrences = new Map<string, number>();
  for (const instance of instances) {
    const count = occurrences.get(instance.hash) ?? 0;
    if (count === 0) unique.push(instance);
    occurrences.set(instance.hash, count + 1);
  }
  return { unique, occurrences };
}
