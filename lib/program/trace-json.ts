// Program traces as JSON data: images become `{ ref, box, width, height }`, everything else plain data.

import { type RasterImage, imageReference, isRasterImage } from './image';
import type { JsonValue } from './sub-tasks';
import type { StepTrace } from './trace';

/** An image as JSON: which source image, which box of it, and its size. */
export function imageToJson(image: RasterImage): JsonValue {
  const reference = imageReference(image);
  return {
    ref: reference.ref,
    box: reference.box ? [...reference.box] : null,
    width: image.width,
    height: image.height,
  };
}

/** Any value of a trace as JSON (undefined → null, non-finite numbers → null, images by reference). */
export function traceValueToJson(value: unknown, depth = 0): JsonValue {
  if (value === undefined || value === null) return null;
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'bigint') return value.toString();
  if (depth > 32) return null;
  if (isRasterImage(value)) return imageToJson(value);
  if (Array.isArray(value)) return value.map((item) => traceValueToJson(item, depth + 1));
  if (typeof value === 'object') {
    const object: Record<string, JsonValue> = {};
    for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
      object[key] = traceValueToJson(item, depth + 1);
    }
    return object;
  }
  return null;
}

/** One step of a trace as JSON (the `steps` of `sdvp run --json`). */
export function stepTraceToJson(step: StepTrace): JsonValue {
  return {
    stepId: step.stepId,
    module: step.module,
    output: step.output,
    line: step.line,
    moduleCalled: step.moduleCalled,
    inputs: traceValueToJson(step.inputs),
    value: traceValueToJson(step.value),
    error: step.error,
    durationMs: Number.isFinite(step.durationMs) ? Math.round(step.durationMs * 1000) / 1000 : null,
  };
}
