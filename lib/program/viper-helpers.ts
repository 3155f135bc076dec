// ViperGPT's module-level helpers that need no model: distance, bool_to_yesno, coerce_to_numeric.

import { ImagePatch } from './image-patch';
import { PythonError, raise } from './python-errors';
import { binaryOperation } from './python-operators';
import { type Runtime, type Value, isIntLike, isTruthy, toBigInt, typeName } from './python-values';
import { wordsToNumber } from './word-numbers';

/**
 * ViperGPT's `distance(a, b)`: for two patches, the Euclidean gap between their edges, or, when they touch or overlap,
 * minus their IoU (as torchvision's box_iou over left, lower, right, upper); for numbers, `abs(a - b)`.
 */
export function viperDistance(a: Value, b: Value, runtime: Runtime): Value {
  if (a instanceof ImagePatch && b instanceof ImagePatch) {
    const gaps = [
      Math.max(0, a.left - b.right),
      Math.max(0, a.lower - b.upper),
      Math.max(0, b.left - a.right),
      Math.max(0, b.lower - a.upper),
    ];
    const gap = Math.sqrt(gaps.reduce((sum, value) => sum + value * value, 0));
    if (gap !== 0) return gap;
    const area = (patch: ImagePatch) => (patch.right - patch.left) * (patch.upper - patch.lower);
    const width = Math.max(0, Math.min(a.right, b.right) - Math.max(a.left, b.left));
    const height = Math.max(0, Math.min(a.upper, b.upper) - Math.max(a.lower, b.lower));
    const intersection = width * height;
    return -(intersection / (area(a) + area(b) - intersection));
  }
  const difference = binaryOperation('-', a, b, runtime);
  if (typeof difference === 'number') return Math.abs(difference);
  if (isIntLike(difference)) {
    const integer = toBigInt(difference);
    return integer < 0n ? -integer : integer;
  }
  return raise.type(`bad operand type for abs(): '${typeName(difference)}'`);
}

/** ViperGPT's `bool_to_yesno`. */
export function boolToYesNo(value: Value): string {
  return isTruthy(value) ? 'yes' : 'no';
}

function parseCleaned(text: string): bigint | number | undefined {
  if (text.includes('.')) return /^-?(?:\d+\.?\d*|\.\d+)$/.test(text) ? Number(text) : undefined;
  return /^-?\d+$/.test(text) ? BigInt(text) : undefined;
}

/**
 * ViperGPT's `coerce_to_numeric(string, no_string=False)`: number words ("seven") through word2number's rules, else
 * the digits, points and minus signs of the text ("10-15" gives 10); the text itself (or ValueError with `no_string`)
 * when no number is found. ViperGPT's month-name branch never takes effect (its date call always raises and is
 * caught), so it is left out.
 */
export function coerceToNumeric(value: Value, noString: boolean): Value {
  if (typeof value !== 'string') raise.attribute(`'${typeName(value)}' object has no attribute 'lower'`);
  const text = value as string;
  try {
    return wordsToNumber(text);
  } catch (error) {
    if (!(error instanceof PythonError) || error.pythonType !== 'ValueError') throw error;
  }
  let cleaned = text.replace(/[^0-9.-]/g, '');
  if (cleaned.startsWith('-')) cleaned = `&${cleaned.slice(1)}`;
  if (cleaned.includes('-')) return coerceToNumeric(cleaned.split('-')[0].replace(/&/g, '-'), false);
  cleaned = cleaned.replace(/&/g, '-');
  const number = parseCleaned(cleaned);
  if (number !== undefined) return number;
  if (noString) throw new PythonError('ValueError', '');
  return text;
}
