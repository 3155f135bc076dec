// Tensors as sdvp's model API passes them (a typed array and a shape), with the checks every model
// input goes through before it reaches native code.

import { SdvpError, argError, describeValue } from '../errors/sdvp-error';
import type { NativeTensorIn, NativeValue } from '../native/native-torch-binding';

/** Element types. Int32Array inputs are widened to int64 (what TorchScript index ops want). */
export type TensorDType = 'float32' | 'int32' | 'int64' | 'uint8' | 'bool';

export type TensorData = Float32Array | Int32Array | BigInt64Array | Uint8Array;

/** A dense row-major tensor: images as float32 NCHW, token ids as Int32Array or BigInt64Array. */
export interface Tensor {
  data: TensorData;
  shape: readonly number[];
  /** Only needed for a Uint8Array holding booleans (`'bool'`); otherwise implied by `data`. */
  dtype?: TensorDType;
}

/** A tensor a model returned; `dtype` is always set (bool tensors come back as Uint8Array). */
export interface OutputTensor extends Tensor {
  shape: number[];
  dtype: TensorDType;
}

/** What a method returns: a tensor, a tuple or list of values (an array), a dict, or a scalar. */
export type ModelValue =
  | OutputTensor
  | ModelValue[]
  | number
  | boolean
  | string
  | null
  | { [key: string]: ModelValue };

const DTYPE_OF: [new (...args: never[]) => TensorData, TensorDType[]][] = [
  [Float32Array, ['float32']],
  [Int32Array, ['int32', 'int64']],
  [BigInt64Array, ['int64']],
  [Uint8Array, ['uint8', 'bool']],
];

/** Whether `value` is a tensor object (as a method returns one). */
export function isTensor(value: unknown): value is OutputTensor {
  return (
    typeof value === 'object' &&
    value !== null &&
    ArrayBuffer.isView((value as { data?: unknown }).data) &&
    Array.isArray((value as { shape?: unknown }).shape)
  );
}

/** The number of elements of a shape. */
export function numel(shape: readonly number[]): number {
  return shape.reduce((product, extent) => product * extent, 1);
}

/** Checks a tensor argument and returns the plain object the addon reads (the data are not copied). */
export function validateTensor(value: unknown, field: string): NativeTensorIn {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw argError('ERR_SDVP_ARG', field, 'a tensor { data, shape }', value);
  }
  const { data, shape, dtype } = value as Partial<Tensor>;
  const entry = DTYPE_OF.find(([type]) => data instanceof type);
  if (!entry) {
    throw argError(
      'ERR_SDVP_ARG',
      `${field}.data`,
      'a Float32Array, Int32Array, BigInt64Array or Uint8Array',
      data,
    );
  }
  if (!Array.isArray(shape))
    throw argError('ERR_SDVP_ARG', `${field}.shape`, 'an array of dimensions', shape);
  shape.forEach((extent, i) => {
    if (typeof extent !== 'number' || !Number.isSafeInteger(extent) || extent < 0) {
      throw argError('ERR_SDVP_SHAPE', `${field}.shape[${i}]`, 'a non-negative integer', extent);
    }
  });
  const length = (data as TensorData).length;
  if (numel(shape) !== length) {
    throw new SdvpError(
      'ERR_SDVP_SHAPE',
      `${field} has shape [${shape.join(', ')}] (${numel(shape)} elements), but its data hold ${length}.`,
      { field: `${field}.shape`, expected: `${length} elements`, received: `[${shape.join(', ')}]` },
    );
  }
  if (dtype !== undefined && !entry[1].includes(dtype)) {
    throw argError(
      'ERR_SDVP_ARG',
      `${field}.dtype`,
      `one of ${entry[1].map((d) => `'${d}'`).join(', ')} for ${describeValue(data)}`,
      dtype,
    );
  }
  const native: NativeTensorIn = { data: data as TensorData, shape: [...shape] };
  if (dtype === 'bool') native.dtype = 'bool';
  return native;
}

/** Checks an array of tensor arguments. */
export function validateTensors(value: unknown, field: string): NativeTensorIn[] {
  if (!Array.isArray(value)) throw argError('ERR_SDVP_ARG', field, 'an array of tensors', value);
  return value.map((tensor, i) => validateTensor(tensor, `${field}[${i}]`));
}

/** Makes a tensor, checking that `data` fits `shape`. */
export function tensor(data: TensorData, shape: readonly number[], dtype?: TensorDType): Tensor {
  const out: Tensor = dtype === undefined ? { data, shape: [...shape] } : { data, shape: [...shape], dtype };
  validateTensor(out, 'tensor');
  return out;
}

/** The rows [begin, end) of a tensor along its first dimension (a view, no copy). */
export function sliceRows(input: NativeTensorIn, begin: number, end: number): NativeTensorIn {
  const rowElements = numel(input.shape.slice(1));
  const data = input.data.subarray(begin * rowElements, end * rowElements) as NativeTensorIn['data'];
  return { ...input, data, shape: [end - begin, ...input.shape.slice(1)] };
}

/** The addon's output value as the public type (they share a layout). */
export function fromNative(value: NativeValue): ModelValue {
  return value as ModelValue;
}
