// Converts between JavaScript data and sandbox values: program inputs in, results and trace entries out.

import { argError } from '../errors/sdvp-error';
import { type RasterImage, imageReference, isRasterImage } from './image';
import { ImagePatch, patchPixelBox } from './image-patch';
import {
  PyDict,
  PyImage,
  PyRange,
  PySet,
  PyTuple,
  type Value,
  countVisit,
  pyRepr,
  pyStr,
  typeName,
} from './python-values';
import type { JsonValue } from './sub-tasks';
import { PyVideo, VideoSegment, ViperVideo } from './video-segment';

/**
 * A JavaScript input as a program value: null/undefined → None, integers → int, other numbers → float, bigint → int,
 * RasterImage → an image, ViperVideo → a video, arrays → lists, plain objects → dicts with str keys.
 */
export function inputToValue(value: unknown, field: string, depth = 0): Value {
  if (value === null || value === undefined) return null;
  if (depth > 32) throw argError('ERR_SDVP_ARG', field, 'data nested at most 32 levels deep', value);
  switch (typeof value) {
    case 'boolean':
    case 'string':
    case 'bigint':
      return value;
    case 'number':
      return Number.isInteger(value) ? BigInt(value) : value;
  }
  if (isRasterImage(value)) return new PyImage(value);
  if (value instanceof ViperVideo) return new PyVideo(value);
  if (Array.isArray(value)) return value.map((item, i) => inputToValue(item, `${field}[${i}]`, depth + 1));
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const dict = new PyDict();
    for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
      dict.set(key, inputToValue(item, `${field}.${key}`, depth + 1));
    }
    return dict;
  }
  throw argError(
    'ERR_SDVP_ARG',
    field,
    'None, a bool, number, string, RasterImage, video (createVideo), array or plain object',
    value,
  );
}

function imageJson(image: RasterImage): JsonValue {
  const reference = imageReference(image);
  return {
    type: 'Image',
    ref: reference.ref,
    box: reference.box ? [...reference.box] : null,
    width: image.width,
    height: image.height,
  };
}

function numberJson(value: number): JsonValue {
  return Number.isFinite(value) ? value : pyRepr(value);
}

/**
 * The JSON form of a program's value (the `result` of a run): ints as numbers (strings beyond 2^53), non-finite
 * floats as their repr, tuples and sets as arrays, dicts as objects (keys as str()), and ImagePatch as
 * `{ type: 'ImagePatch', left, lower, right, upper, ref, box }` with `box` the pixels it covers in its source image.
 */
export function valueToJson(value: Value, depth = 0): JsonValue {
  countVisit(depth);
  if (value === null) return null;
  switch (typeof value) {
    case 'boolean':
    case 'string':
      return value;
    case 'bigint':
      return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= -BigInt(Number.MAX_SAFE_INTEGER)
        ? Number(value)
        : value.toString();
    case 'number':
      return numberJson(value);
  }
  if (depth > 64) return pyRepr(value);
  if (Array.isArray(value)) return value.map((item) => valueToJson(item, depth + 1));
  if (value instanceof PyTuple) return value.items.map((item) => valueToJson(item, depth + 1));
  if (value instanceof PySet) return value.values().map((item) => valueToJson(item, depth + 1));
  if (value instanceof PyDict) {
    const object: Record<string, JsonValue> = {};
    for (const [key, item] of value.entries.values()) object[pyStr(key)] = valueToJson(item, depth + 1);
    return object;
  }
  if (value instanceof ImagePatch) {
    const reference = imageReference(value.cropped);
    return {
      type: 'ImagePatch',
      left: value.left,
      lower: value.lower,
      right: value.right,
      upper: value.upper,
      ref: reference.ref,
      box: [...patchPixelBox(value)],
    };
  }
  if (value instanceof PyImage) return imageJson(value.image);
  if (value instanceof VideoSegment) return { type: 'VideoSegment', start: value.start, end: value.end };
  if (value instanceof PyRange) return { type: 'range', repr: pyRepr(value) };
  return { type: typeName(value), repr: pyRepr(value) };
}

/**
 * A value as a trace entry records it (StepTrace inputs and values): patches and images as their RasterImage, so
 * sub-task instances name "source image plus crop box"; data as plain JavaScript (ints as numbers).
 */
export function valueToTrace(value: Value, depth = 0): unknown {
  countVisit(depth);
  if (value === null) return null;
  switch (typeof value) {
    case 'boolean':
    case 'string':
    case 'number':
      return value;
    case 'bigint':
      return Number(value);
  }
  if (depth > 16) return pyRepr(value);
  if (value instanceof ImagePatch) return value.cropped;
  if (value instanceof PyImage) return value.image;
  if (Array.isArray(value)) return value.map((item) => valueToTrace(item, depth + 1));
  if (value instanceof PyTuple) return value.items.map((item) => valueToTrace(item, depth + 1));
  if (value instanceof PySet) return value.values().map((item) => valueToTrace(item, depth + 1));
  return valueToJson(value, depth);
}
